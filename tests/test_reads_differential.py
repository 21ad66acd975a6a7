"""The read endpoint, differentially, for every master version: thousands of seeded random
read commands over raw sockets to a REAL read-only replica (the oracle) and to the system
under test, compared reply by reply in RESP2 and in RESP3 (RESP2 only for Redis 5.0, which
has no RESP3).

Setup, per server kind (one module-scoped fixture: Redis 5.0, 6.2, 7.0, 8.2 and Valkey 8.1,
as `REPLPROXY_TEST_KINDS` selects): a real master is filled by the seeded workload with every
write its version has (tests/harness/workload.py `every_write`: hash field TTLs, Redis 8's hash and
stream commands and options, vector sets, functions, geo stores, HyperLogLogs...) and by
edge-case keys (`readgen.add_edge_keys`), with its active expiry off so nothing changes
under the test; then a real replica and the system under test sync from it; more workload
and edge keys arrive through the replication stream; TTLs that would run out during the test
are pushed away, and a few keys are made logically expired (a replica still holds them,
reads them as missing). Both sides then hold the same data: DEBUG DIGEST and every key's
DIGEST-VALUE are equal, and the relay applied every command.

The generator covers every read command of the master's version (`readgen.required_reads`:
the readonly commands of its command table plus the connection and server commands).
Replies are compared byte for byte, element order of small collections included (intsets,
listpacks, listpackex hashes by field expiry) and OBJECT ENCODING as each value's conversion
history leaves it. Only where two real replicas of the same master disagree with each other
are replies compared by properties (see `readgen.compare`): hash-table iteration order of
big collections and of the command table, random picks (SRANDMEMBER, RANDOMKEY, VRANDMEMBER,
LOLWUT's art), clocks (TTLs, idle times, TIME), each server's own connection ids and random
HNSW levels (VLINKS, VINFO max-level). Documented deviations of the relay (docs/clients.md:
MEMORY USAGE and DUMP bytes as estimates, its own persistence settings) are checked as
documented.

The system under test is the replproxy relay, or (`READS_DIFF_AGAINST=replica`) a second real
replica of the same master: that mode proves the comparison rules themselves are sound (two
real replicas must agree under them). `READS_DIFF_SEED` and `READS_DIFF_STEPS` change the
stream. Every mismatch is collected, grouped by command and reported at the end (the full
list goes to a file in the temp directory), so one run shows everything.

Why the oracle is a replica and not the master: a replica never deletes expired keys itself
and answers writes with -READONLY, exactly as the relay must; it also departs from its master
where the relay must too (its own PFCOUNT caches a HyperLogLog's cardinality in its copy; a
Redis 7.0 replica keeps a stale consumer group read counter).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from replproxy.resp.request import encode_command
from tests.conftest import KINDS
from tests.harness.readcheck import read_reply
from tests.harness.readgen import (
    WRITE_LIKE,
    WRITES,
    Call,
    Catalog,
    Env,
    ReadGen,
    Step,
    add_edge_keys,
    add_expired_keys,
    build_catalog,
    compare,
    is_error,
    mark_variance,
    parse,
    required_reads,
)
from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, ServerKind, start_server, wait_for
from tests.harness.workload import Workload

# The keyspace and differential suites run against the older versions too (conftest.py).
pytestmark = pytest.mark.every_version

AGAINST = os.environ.get("READS_DIFF_AGAINST", "relay")
SEED = int(os.environ.get("READS_DIFF_SEED", "5150"))
STEPS = int(os.environ.get("READS_DIFF_STEPS", "4000"))
WORKLOAD_DBS = 3
EDGE_DBS = (0, 1, 5)  # edge keys: the workload's DBs 0/1 and a DB only they use
SHOW = 60  # mismatches shown in detail in the failure message


@dataclass
class Endpoint:
    name: str
    host: str
    port: int


SORT_SCORE_ERROR_REPLY = b"-ERR One or more scores can't be converted into double\r\n"


class Conn:
    """One raw client connection: RESP bytes in and out, nothing interpreted."""

    def __init__(self, ep: Endpoint, proto: int, db: int, timeout: float = 10) -> None:
        self.ep = ep
        self.sock = socket.create_connection((ep.host, ep.port), timeout=timeout)
        self.buf = bytearray()
        if proto == 3:
            self.send([b"hello", b"3"])
            self.read()
        if db:
            self.send([b"select", str(db).encode()])
            self.read()

    def send(self, argv: list[bytes]) -> None:
        self.sock.sendall(encode_command(argv))

    def read(self) -> bytes:
        return read_reply(self.sock, self.buf)

    def call(self, argv: list[bytes]) -> bytes:
        self.send(argv)
        return self.read()

    def closed_by_peer(self, timeout: float = 3) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()


@dataclass
class Mismatch:
    label: str
    proto: int
    db: int
    argv: list[bytes]
    oracle: bytes
    sut: bytes
    reason: str


@dataclass
class Setup:
    kind: ServerKind
    master: RedisServer
    oracle: Endpoint
    sut: Endpoint
    catalog: Catalog
    scratch: RedisServer
    relay: RelayProcess | None = None
    expired: set[bytes] = field(default_factory=set)  # never read these on the master

    def env(self) -> Env:
        """Property rules' helpers; DUMP payloads are restored on a scratch server of the
        same kind and compared by DEBUG DIGEST-VALUE (encodings may differ, values not)."""
        sc = self.scratch.client()

        def restore(payload: bytes) -> bytes | None:
            try:
                sc.execute_command("RESTORE", "dumped", 0, payload, "REPLACE")
            except redis.ResponseError:
                return None
            return bytes(sc.execute_command("DEBUG", "DIGEST-VALUE", "dumped")[0])

        return Env(self.catalog, restore, sut_is_relay=self.relay is not None)


def _offset(info: dict[str, object], key: str) -> int:
    return int(info.get(key, -1))  # type: ignore[call-overload]


def wait_caught_up(
    master: RedisServer, replica_info: list[Callable[[], dict[str, object]]], timeout: float = 60
) -> None:
    """Until every replica's applied offset reaches what the master had produced when we
    started waiting (the master's own pings move its offset on: never wait for equality)."""
    target = _offset(master.info("replication"), "master_repl_offset")

    def done() -> bool:
        for info in replica_info:
            r = info()
            if r.get("master_link_status") != "up" or _offset(r, "slave_repl_offset") < target:
                return False
        return True

    wait_for(done, timeout, what="replicas to catch up with the master")


def settle_expiry(
    master: RedisServer, dbs: list[int], rng: random.Random
) -> dict[int, list[bytes]]:
    """Make the data hold still for the test, with the master's active expiry off: a full
    SCAN on the master deletes every key whose TTL has already passed (the DELs replicate);
    then keys whose TTL would run out during the test get a long one, or expire now (the
    master never touches them again, so replicas keep them, logically expired). Returns the
    names made to expire, per DB: they must not be read on the master."""
    expired: dict[int, list[bytes]] = {}
    for db in dbs:
        with master.client(db=db) as mc:
            names = list(mc.scan_iter(count=1000))
            p = mc.pipeline(transaction=False)
            for k in names:
                p.pttl(k)
            ttls = p.execute()
            p = mc.pipeline(transaction=False)
            for k, t in zip(names, ttls):
                if 0 <= t < 900_000:
                    if rng.random() < 0.3:
                        p.pexpire(k, 1)
                        expired.setdefault(db, []).append(k)
                    else:
                        p.pexpire(k, 3_600_000 + rng.randrange(10**6))
            p.execute()
    return expired


def _start_sut(
    master: RedisServer, kind: ServerKind
) -> tuple[Endpoint, RelayProcess | None, RedisServer | None]:
    if AGAINST == "replica":
        s = start_server(kind, extra={"replicaof": f"{master.host} {master.port}"})
        return Endpoint("replica2", s.host, s.port), None, s
    relay = start_relay(upstream_url(master))
    return Endpoint("relay", "127.0.0.1", relay.port), relay, None


@pytest.fixture(scope="module", params=KINDS, ids=[k.name for k in KINDS])
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    kind: ServerKind = request.param
    started: list[RedisServer] = []
    relay: RelayProcess | None = None
    try:
        master = start_server(kind)
        started.append(master)
        rng = random.Random(SEED)
        with master.client() as c:
            c.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0")
        wl = Workload(master, SEED, dbs=WORKLOAD_DBS, every_write=True)
        wl.run(1800)
        for db in EDGE_DBS:
            with master.client(db=db) as c:
                add_edge_keys(c, "e:", SEED + db)
        # The oracle, and the system under test, start from a snapshot of all that...
        oracle = start_server(kind, extra={"replicaof": f"{master.host} {master.port}"})
        started.append(oracle)
        # A second real replica: where it and the oracle list members in different orders,
        # replies are compared as multisets (`readgen.mark_variance`).
        twin = start_server(kind, extra={"replicaof": f"{master.host} {master.port}"})
        started.append(twin)
        sut, relay, sut_server = _start_sut(master, kind)
        if sut_server is not None:
            started.append(sut_server)
        sut_info = relay.info if relay is not None else sut_server.info  # type: ignore[union-attr]
        infos = [
            lambda: oracle.info("replication"),
            lambda: twin.info("replication"),
            lambda: sut_info("replication"),
        ]
        wait_caught_up(master, infos)
        # ...then more arrives through the replication stream.
        wl.select(0)
        wl.run(500)
        with master.client() as c:
            add_edge_keys(c, "t:", SEED + 100)
        wait_caught_up(master, infos)
        dbs = sorted(set(range(WORKLOAD_DBS)) | set(EDGE_DBS))
        expired = settle_expiry(master, dbs, rng)
        for db in (0, 1):
            with master.client(db=db) as c:
                expired.setdefault(db, []).extend(add_expired_keys(c, "exp:"))
        time.sleep(0.05)
        wait_caught_up(master, infos)
        catalog = build_catalog(lambda db: oracle.client(db=db), dbs, expired)
        with contextlib.ExitStack() as stack:
            o_conn = stack.enter_context(
                contextlib.closing(Conn(Endpoint("replica", oracle.host, oracle.port), 2, 0))
            )
            t_conn = stack.enter_context(
                contextlib.closing(Conn(Endpoint("twin", twin.host, twin.port), 2, 0))
            )

            def at(conn: Conn) -> Callable[[int, list[bytes]], bytes]:
                def call(db: int, argv: list[bytes]) -> bytes:
                    conn.call([b"select", str(db).encode()])
                    return conn.call(argv)

                return call

            mark_variance(catalog, at(o_conn), at(t_conn))
        twin.stop()  # nothing else needs it: spare the machine
        scratch = start_server(kind)
        started.append(scratch)
        yield Setup(
            kind,
            master,
            Endpoint("replica", oracle.host, oracle.port),
            sut,
            catalog,
            scratch,
            relay,
            {k for ks in expired.values() for k in ks},
        )
    finally:
        if relay is not None:
            relay.stop()
        for s in reversed(started):
            s.stop()


# ---------------------------------------------------------------------------------------------
# Running steps on both sides


class Runner:
    def __init__(self, setup: Setup, proto: int) -> None:
        self.setup = setup
        self.proto = proto
        self.env = setup.env()
        self.db = 0
        self.mismatches: list[Mismatch] = []
        self.calls = 0
        self.o, self.s = self._connect()

    def _connect(self) -> tuple[Conn, Conn]:
        return (
            Conn(self.setup.oracle, self.proto, self.db),
            Conn(self.setup.sut, self.proto, self.db),
        )

    def reconnect(self) -> None:
        """Fresh connections on both sides (same protocol and DB), after a mismatch: the
        system under test may have left replies unread or kept other client state."""
        self.o.close()
        self.s.close()
        relay = self.setup.relay
        if relay is not None and not relay.alive():
            raise AssertionError("the relay died: " + relay.log()[-3000:])
        self.o, self.s = self._connect()

    def close(self) -> None:
        self.o.close()
        self.s.close()

    def record(self, call: Call, oracle: bytes, sut: bytes, reason: str) -> None:
        self.mismatches.append(
            Mismatch(call.label, self.proto, self.db, call.argv, oracle, sut, reason)
        )

    def run(self, step: Step) -> None:
        before = len(self.mismatches)
        for call in step:
            self.calls += 1
            if call.rule == "scan":
                self.run_scan(call)
                continue
            n = call.nreplies[self.proto == 3]
            self.o.send(call.argv)
            self.s.send(call.argv)
            try:
                ours = [self.o.read() for _ in range(n)]
            except (OSError, ConnectionError) as e:
                raise AssertionError(
                    f"the oracle gave no reply to {call.argv!r} (RESP"
                    f"{self.proto}, db{self.db}): {e}"
                ) from e
            theirs: list[bytes] = []
            try:
                for _ in range(n):
                    theirs.append(self.s.read())
            except (OSError, ConnectionError) as e:
                self.record(
                    call, b"".join(ours), b"".join(theirs), f"no reply: {type(e).__name__}: {e}"
                )
                break
            reason = compare(call, self.proto, ours, theirs, self.env)
            if reason is not None and len(step) == 1 and ours == [SORT_SCORE_ERROR_REPLY]:
                ours = self.retry_after_stale_erange(call, n)
                reason = compare(call, self.proto, ours, theirs, self.env)
            if reason is not None:
                if len(step) > 1:  # a transaction: say what was queued
                    reason += " in: " + " / ".join(
                        b" ".join(x.argv).decode(errors="replace")[:80] for x in step
                    )
                self.record(call, b"".join(ours), b"".join(theirs), reason)
            if call.argv[0].lower() == b"select" and ours == [b"+OK\r\n"]:
                self.db = int(call.argv[1])
        if len(self.mismatches) > before:
            self.reconnect()

    def _scan_all(
        self, conn: Conn, argv: list[bytes], ci: int, first: bytes, pairs: bool
    ) -> set[object] | str:
        """Every element a full SCAN-family iteration returns, starting from `first`."""
        seen: set[object] = set()
        reply = first
        for _ in range(200_000):
            node = parse(reply)
            if node[0] != "*" or len(node[1]) != 2 or node[1][1][0] not in "*":
                return "not a [cursor, elements] reply: " + reply[:200].decode(errors="replace")
            cursor, elems = node[1][0][1], node[1][1][1]
            if pairs:
                if len(elems) % 2:
                    return "odd number of elements"
                seen.update((elems[i][1], elems[i + 1][1]) for i in range(0, len(elems), 2))
            else:
                seen.update(e[1] for e in elems)
            if cursor == b"0":
                return seen
            nxt = list(argv)
            nxt[ci] = cursor
            reply = conn.call(nxt)
            if is_error(reply):
                return "error mid-iteration: " + reply[:200].decode(errors="replace")
        return "the iteration never ended"

    def retry_after_stale_erange(self, call: Call, n: int) -> list[bytes]:
        """`sortCommand` (SORT_RO) tests `errno == ERANGE` after strtod without clearing
        errno first, so a replica refuses every non-integer score while an earlier command
        of ANY client left ERANGE behind (a score bound or a weight of `1e400`, which
        zslParseRange and string2d let through or refuse without clearing it) and no
        failing system call has overwritten it since: its reply hangs on its own process
        history, where two real replicas differ. A failing chdir (CONFIG SET dir to a
        missing directory: ENOENT) clears the stale value; then the oracle answers again."""
        with socket.create_connection(
            (self.setup.oracle.host, self.setup.oracle.port), timeout=10
        ) as sock:
            sock.sendall(encode_command([b"config", b"set", b"dir", b"/nonexistent/errno"]))
            read_reply(sock, bytearray())
        self.o.send(call.argv)
        return [self.o.read() for _ in range(n)]

    def run_scan(self, call: Call) -> None:
        ci, pairs, exact_first = call.arg["cursor"], call.arg["pairs"], call.arg["exact_first"]
        argv = call.argv
        try:
            o_first = self.o.call(argv)
            s_first = self.s.call(argv)
        except (OSError, ConnectionError) as e:
            self.record(call, b"", b"", f"no reply: {e}")
            self.reconnect()
            return
        if is_error(o_first) or is_error(s_first) or exact_first:
            if o_first != s_first:
                self.record(call, o_first, s_first, "first replies differ")
                self.reconnect()
            return
        mine = self._scan_all(self.o, argv, ci, o_first, pairs)
        assert not isinstance(mine, str), mine
        theirs = self._scan_all(self.s, argv, ci, s_first, pairs)
        if isinstance(theirs, str):
            self.record(call, o_first, s_first, theirs)
            self.reconnect()
        elif mine != theirs:
            missing, extra = mine - theirs, theirs - mine
            self.record(
                call,
                repr(sorted(missing, key=repr)[:5]).encode(),
                repr(sorted(extra, key=repr)[:5]).encode(),
                f"full iterations differ: {len(missing)} missing, {len(extra)} extra "
                "(oracle column: missing; SUT column: extra)",
            )
            self.reconnect()


def report(
    setup: Setup, mismatches: list[Mismatch], calls: int, title: str, what: str = "mismatches"
) -> str:
    by_label: dict[str, list[Mismatch]] = defaultdict(list)
    for m in mismatches:
        by_label[m.label].append(m)
    lines = [
        f"{len(mismatches)} {what} in {calls} calls ({title}, {setup.kind.name}, "
        f"oracle = real replica, SUT = {setup.sut.name}); by command:"
    ]
    for label, ms in sorted(by_label.items(), key=lambda kv: -len(kv[1])):
        protos = Counter(m.proto for m in ms)
        lines.append(f"  {label}: {len(ms)} (RESP2 {protos[2]}, RESP3 {protos[3]})")
    detail = []
    for _label, ms in sorted(by_label.items(), key=lambda kv: -len(kv[1])):
        for m in ms[:3]:
            detail.append(m)
    full = []
    for m in mismatches:
        full.append(_fmt(m, 100_000))
    path = (
        Path(tempfile.gettempdir()) / f"reads_diff_{setup.kind.name}_{setup.sut.name}_"
        f"{title.replace(' ', '_')}.txt"
    )
    path.write_text("\n".join(lines) + "\n\n" + "\n".join(full))
    lines.append(f"details (up to 3 per command; all {len(mismatches)} in {path}):")
    lines += [_fmt(m, 400) for m in detail[:SHOW]]
    return "\n".join(lines)


def _fmt(m: Mismatch, limit: int) -> str:
    def cut(x: bytes) -> str:
        r = repr(x)
        return r if len(r) <= limit else r[:limit] + f"... ({len(x)} bytes)"

    argv = " ".join(repr(a)[1:] if len(a) < 80 else repr(a[:80])[1:] + "..." for a in m.argv)
    return (
        f"- [{m.label}] RESP{m.proto} db{m.db}: {argv}\n    why:    {m.reason}\n"
        f"    oracle: {cut(m.oracle)}\n    SUT:    {cut(m.sut)}"
    )


def protocols(kind: ServerKind) -> tuple[int, ...]:
    """RESP2 and RESP3, or RESP2 alone where the version has no RESP3 (Redis 5.0)."""
    return (2, 3) if kind.dialect.resp3 else (2,)


def run_stream(setup: Setup, steps: list[Step], title: str) -> None:
    mismatches: list[Mismatch] = []
    calls = 0
    for proto in protocols(setup.kind):
        runner = Runner(setup, proto)
        try:
            for step in steps:
                runner.run(step)
        finally:
            runner.close()
        mismatches += runner.mismatches
        calls += runner.calls
    assert not mismatches, report(setup, mismatches, calls, title)


# ---------------------------------------------------------------------------------------------
# Tests


def test_generator_covers_every_read_command(setup: Setup) -> None:
    """The stream exercises every read command of the master's version (and is
    repeatable)."""
    steps = ReadGen(setup.catalog, SEED, setup.kind.dialect).generate(STEPS)
    again = ReadGen(setup.catalog, SEED, setup.kind.dialect).generate(STEPS)
    assert [c.argv for s in steps for c in s] == [c.argv for s in again for c in s]
    labels = {c.label for s in steps for c in s}
    required = required_reads(setup.kind.dialect)
    assert not required - labels, f"never generated: {sorted(required - labels)}"
    rules = Counter(c.rule for s in steps for c in s)
    assert rules["exact"] > sum(rules.values()) / 2, rules  # mostly byte-for-byte


def test_both_sides_hold_the_same_data(setup: Setup) -> None:
    """Before any read: DEBUG DIGEST and each key's DIGEST-VALUE equal on the replica and
    the relay, and the relay applied every command of the stream (no unsupported key)."""
    o = Conn(setup.oracle, 2, 0)
    s = Conn(setup.sut, 2, 0)
    try:
        assert o.call([b"debug", b"digest"]) == s.call([b"debug", b"digest"])
        for db in sorted(setup.catalog.dbs):
            names = [k.name for k in setup.catalog.db(db).keys]
            for conn in (o, s):
                conn.call([b"select", str(db).encode()])
            for i in range(0, len(names), 50):
                argv = [b"debug", b"digest-value", *names[i : i + 50]]
                assert o.call(argv) == s.call(argv), f"db{db}: {names[i : i + 50]}"
    finally:
        o.close()
        s.close()
    if setup.relay is not None:
        # Each command the relay could not apply is logged once, by name (keyspace.store).
        log = setup.relay.log()
        bad = [
            line
            for line in log.splitlines()
            if "cannot be applied" in line or "failed to apply" in line
        ]
        assert not bad, "\n".join(bad)


def key_sweep(setup: Setup) -> list[Step]:
    """Every key of every DB (and the logically expired ones), read whole: its type,
    encoding, TTL, every member in the server's own order, its stream groups and PELs,
    scans from cursor 0, random picks of the whole collection, DUMP and MEMORY USAGE."""
    steps: list[Step] = []
    hfe = setup.kind.dialect.at_least((7, 4), (9, 0))

    def one(*argv: bytes | str | int, rule: str = "exact", arg: object = None) -> None:
        steps.append(
            [Call([a if isinstance(a, bytes) else str(a).encode() for a in argv], rule, arg)]
        )

    for db in sorted(setup.catalog.dbs):
        cat = setup.catalog.db(db)
        one("select", db)
        for name in cat.expired:
            one("exists", name)
            one("object", "encoding", name)
            one("type", name)
        for k in cat.keys:
            n = k.name
            one("type", n)
            one("object", "encoding", n)
            one("object", "refcount", n)
            one("pttl", n, rule="pttl")
            one("expiretime", n)
            one("dump", n, rule="dump")
            one("memory", "usage", n, rule="memory")
            order = "exact" if k.ordered else "multiset"
            if k.type == "string":
                one("get", n)
                one("strlen", n)
                one("bitcount", n)
            elif k.type == "list":
                one("lrange", n, 0, -1)
                one("llen", n)
            elif k.type == "set":
                one("smembers", n, rule=order)
                one("srandmember", n, 100_000, rule=order)
                one("scard", n)
                one(
                    "sscan",
                    n,
                    0,
                    "COUNT",
                    1000,
                    rule="scan",
                    arg={"cursor": 2, "pairs": False, "exact_first": k.ordered, "db": db},
                )
            elif k.type == "hash":
                one("hgetall", n, rule="exact" if k.ordered else "pairs")
                one("hkeys", n, rule=order)
                one("hvals", n, rule=order)
                one("hrandfield", n, 100_000, "WITHVALUES", rule="exact" if k.ordered else "deep")
                one(
                    "hscan",
                    n,
                    0,
                    "COUNT",
                    1000,
                    rule="scan",
                    arg={"cursor": 2, "pairs": True, "exact_first": k.ordered, "db": db},
                )
                if hfe:
                    fields = sorted(k.content)
                    one("hpttl", n, "FIELDS", len(fields), *fields, rule="hpttl")
                    one("hexpiretime", n, "FIELDS", len(fields), *fields)
            elif k.type == "zset":
                listpack = k.encoding in ("listpack", "ziplist")
                one("zrange", n, 0, -1, "WITHSCORES")
                one(
                    "zrandmember",
                    n,
                    100_000,
                    "WITHSCORES",
                    rule="exact" if listpack else "zrandmember",
                    arg=k.content,
                )
                one(
                    "zscan",
                    n,
                    0,
                    "COUNT",
                    1000,
                    rule="scan",
                    arg={"cursor": 2, "pairs": True, "exact_first": listpack, "db": db},
                )
            elif k.type == "stream":
                one("xrange", n, "-", "+")
                one("xinfo", "stream", n, rule="masked")
                one("xinfo", "stream", n, "FULL", rule="masked")
                one("xinfo", "groups", n, rule="masked")
                for g in sorted(k.content.groups):
                    one("xinfo", "consumers", n, g, rule="masked")
                    one("xpending", n, g)
                    one("xpending", n, g, "-", "+", 1000, rule="xpending")
            elif k.type == "vectorset":
                one("vcard", n)
                one("vdim", n)
                one("vinfo", n, rule="vinfo")
    return steps


def test_every_key_reads_the_same(setup: Setup) -> None:
    """Every key, read whole (`key_sweep`), answers as on the real replica: what the random
    reads sample, here exhaustively (encodings, member orders, TTLs, stream metadata)."""
    run_stream(setup, key_sweep(setup), "key sweep")


def test_random_reads_match_a_real_replica(setup: Setup) -> None:
    steps = ReadGen(setup.catalog, SEED, setup.kind.dialect).generate(STEPS)
    run_stream(setup, steps, "random reads")


def test_write_commands_are_refused_like_a_replica(setup: Setup) -> None:
    """Every write (and script/publish) template once per key type, in RESP2 and RESP3."""
    keys = [
        b"e:int",
        b"e:list",
        b"e:hsmall",
        b"e:setsmall",
        b"e:zsmall",
        b"e:stream",
        b"e:geo",
        b"e:hll",
        b"nokey",
    ]
    steps: list[Step] = []
    # A script's error on a 5.0/6.2 master: the same error (docs/scripting.md).
    pre70 = setup.kind.dialect.script_error_wrapped
    for i, tpl in enumerate(WRITES + WRITE_LIKE):
        k = keys[i % len(keys)]
        argv = [tpl[0].encode(), *(k if a == "{k}" else a.encode() for a in tpl[1:])]
        script = tpl[0].upper().startswith(("EVAL", "FCALL"))
        steps.append([Call(argv, rule="script_error_core" if pre70 and script else "exact")])
    # Inside MULTI: refused at queue time, then EXECABORT.
    steps.append(
        [
            Call([b"multi"]),
            Call([b"get", b"e:int"]),
            Call([b"set", b"e:int", b"1"]),
            Call([b"exec"]),
        ]
    )
    steps.append([Call([b"multi"]), Call([b"sort", b"e:list"]), Call([b"discard"])])
    run_stream(setup, steps, "writes")


def test_hello_reset_quit_like_a_replica(setup: Setup) -> None:
    """HELLO in every form (the map's keys and server/proto/mode/role/modules must match; id
    and version may not), RESET back to RESP2 and DB 0, QUIT closing the connection."""
    h = "hello"
    seq = [
        Call([b"hello", b"3"], h),
        Call([b"hello"], h),
        Call([b"get", b"nokey"]),
        Call([b"hgetall", b"e:hsmall"]),
        Call([b"zscore", b"e:zsmall", b"f"]),
        Call([b"smembers", b"e:intset"]),
        Call([b"hello", b"2"], h),
        Call([b"hgetall", b"e:hsmall"]),
        Call([b"hello", b"3", b"SETNAME", b"conn1"], h),
        Call([b"client", b"getname"]),
        Call([b"hello", b"4"]),
        Call([b"hello", b"1"]),
        Call([b"hello", b"abc"]),
        Call([b"hello", b"3", b"FOO"]),
        # The default user has no password: any password is accepted.
        Call([b"hello", b"3", b"AUTH", b"default", b"any"], h),
        Call([b"hello", b"3", b"SETNAME", b"a b"]),
        Call([b"hello", b"3", b"AUTH", b"x"]),
        Call([b"hello", b"2", b"setname", b"n2"], h),
        Call([b"client", b"getname"]),
        Call([b"select", b"1"]),
        Call([b"hello", b"3"], h),
        Call([b"reset"]),
        Call([b"get", b"nokey"]),
        Call([b"client", b"getname"]),
        Call([b"dbsize"]),
        Call([b"hello", b"3"], h),
        Call([b"multi"]),
        Call([b"reset"]),
        Call([b"ping"]),
        Call([b"hello", b"3"], h),
        Call([b"subscribe", b"c"]),
        Call([b"reset"]),
        Call([b"ping"]),
        Call([b"quit"]),
    ]
    for proto in protocols(setup.kind):
        runner = Runner(setup, proto)
        try:
            for call in seq:
                runner.run([call])
                if runner.mismatches:
                    break
            else:
                assert runner.o.closed_by_peer(), "the oracle did not close after QUIT"
                if not runner.s.closed_by_peer():
                    runner.record(
                        Call([b"quit"]),
                        b"<closed>",
                        b"<still open>",
                        "the connection stays open after QUIT",
                    )
        finally:
            runner.close()
        assert not runner.mismatches, report(
            setup, runner.mismatches, runner.calls, f"hello RESP{proto}"
        )
