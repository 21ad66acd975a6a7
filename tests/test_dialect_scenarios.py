"""Version behaviours, scenario by scenario, against real servers of every kind.

For each kind (one module-scoped fixture): a real master, a REAL replica of it (the oracle)
and a replproxy relay. Each test writes a scripted sequence on the master, waits until both
replicas applied it, then reads every key it touched on the replica and on the relay, RESP2
and RESP3 (RESP2 only for Redis 5.0), and compares byte for byte: the type and OBJECT
ENCODING, the whole value in the server's own order, the scenario's own reads (XINFO,
HTTL, ZRANK WITHSCORE...), and each key's DEBUG DIGEST-VALUE. The master's version decides
what the oracle answers (a command it does not know is an error on both sides); where a
whole scenario needs a version (Redis 8.2's stream options), it is skipped on the others,
saying why.

What the random differential (test_reads_differential) samples, these sequences pin down:
Redis 8.2's XADD/XTRIM ACKED, KEEPREF and DELREF trimming, XDELEX and XACKDEL, the
ENTRIESREAD clamp, XREAD `+`; listpack sets (Redis 7.2+, Valkey) in insertion order through
every conversion; listpackex hashes ordered by field expiry (Redis 7.4+); Redis 8's
HGETEX/HSETEX/HGETDEL; strings, hashes and sorted sets that never convert back; a key the
relay could not apply staying refused through later partial writes.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
import redis

from replproxy.resp.request import encode_command
from tests.conftest import KINDS
from tests.harness.readcheck import read_reply
from tests.harness.readgen import Call, Catalog, Env, compare
from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, ServerKind, start_server, wait_for

# The keyspace and differential suites run against the older versions too (conftest.py).
pytestmark = pytest.mark.every_version


class Raw:
    """One raw RESP connection (RESP2 or RESP3)."""

    def __init__(self, port: int, proto: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = bytearray()
        if proto == 3:
            self.call([b"hello", b"3"])

    def call(self, argv: list[bytes]) -> bytes:
        self.sock.sendall(encode_command(argv))
        return read_reply(self.sock, self.buf)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Trio:
    kind: ServerKind
    master: RedisServer
    replica: RedisServer
    relay: RelayProcess

    @property
    def protos(self) -> tuple[int, ...]:
        return (2, 3) if self.kind.dialect.resp3 else (2,)


def _offset(info: dict[str, object], key: str) -> int:
    return int(info.get(key, -1))  # type: ignore[call-overload]


def synced(t: Trio) -> None:
    """Both replicas applied everything the master produced so far."""
    target = _offset(t.master.info("replication"), "master_repl_offset")

    def done() -> bool:
        for info in (t.replica.info("replication"), t.relay.info("replication")):
            if (
                info.get("master_link_status") != "up"
                or _offset(info, "slave_repl_offset") < target
            ):
                return False
        return True

    wait_for(done, 60, what="the replica and the relay to catch up")


def _start(kind: ServerKind, extra: dict[str, str] | None = None) -> Iterator[Trio]:
    started: list[RedisServer] = []
    relay: RelayProcess | None = None
    try:
        master = start_server(kind, extra=extra)
        started.append(master)
        with master.client() as c:
            c.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0")
        replica = start_server(kind, extra={"replicaof": f"{master.host} {master.port}"})
        started.append(replica)
        relay = start_relay(upstream_url(master))
        t = Trio(kind, master, replica, relay)
        synced(t)
        yield t
    finally:
        if relay is not None:
            relay.stop()
        for s in reversed(started):
            s.stop()


@pytest.fixture(scope="module", params=KINDS, ids=[k.name for k in KINDS])
def trio(request: pytest.FixtureRequest) -> Iterator[Trio]:
    yield from _start(request.param)


def write(t: Trio, *commands: str | Sequence[object]) -> None:
    """Run commands on the master (errors are part of the game: only what ran is
    propagated), then wait for both replicas."""
    with t.master.client() as c:
        for cmd in commands:
            argv = cmd.split() if isinstance(cmd, str) else cmd
            with contextlib.suppress(redis.ResponseError):
                c.execute_command(*argv)
    synced(t)


def _reads_of(t: Trio, key: bytes) -> list[Call]:
    """The whole value of `key` as the replica holds it, read in every way that shows order
    or encoding: exactly, but a hash table's members come in each server's own seeded order,
    so its replies are compared as multisets (two real replicas differ there too)."""
    with t.replica.client() as c:
        kind = c.type(key).decode()
        fields = sorted(c.hkeys(key)) if kind == "hash" else []
        groups = [g["name"] for g in c.xinfo_groups(key)] if kind == "stream" else []
        enc = (c.object("encoding", key) or b"").decode()
    hashed = enc in ("hashtable", "skiplist")
    calls = [
        Call([b"type", key]),
        Call([b"object", b"encoding", key]),
        Call([b"debug", b"digest-value", key]),
        Call([b"exists", key]),
    ]
    full = {
        "string": [[b"get", key], [b"strlen", key]],
        "list": [[b"lrange", key, b"0", b"-1"]],
        "set": [
            [b"smembers", key],
            [b"sscan", key, b"0", b"COUNT", b"1000"],
            [b"srandmember", key, b"1000"],
        ],
        "zset": [
            [b"zrange", key, b"0", b"-1", b"WITHSCORES"],
            [b"zscan", key, b"0", b"COUNT", b"1000"],
        ],
        "hash": [
            [b"hgetall", key],
            [b"hscan", key, b"0", b"COUNT", b"1000"],
            [b"hexpiretime", key, b"FIELDS", b"%d" % len(fields), *fields],
        ],
        "stream": [
            [b"xrange", key, b"-", b"+"],
            [b"xinfo", b"stream", key],
            [b"xinfo", b"stream", key, b"FULL"],
            [b"xinfo", b"groups", key],
        ]
        + [[b"xpending", key, g, b"-", b"+", b"100"] for g in groups],
    }.get(kind, [])
    out = []
    for argv in full:
        rule = (
            "masked" if argv[0] == b"xinfo" else "xpending" if argv[0] == b"xpending" else "exact"
        )
        if hashed and argv[0] in (b"smembers", b"srandmember"):
            rule = "multiset"
        elif hashed and argv[0] == b"hgetall":
            rule = "pairs"
        elif hashed and argv[0] in (b"sscan", b"hscan", b"zscan"):
            continue  # cursors over each server's own table: the full reads above suffice
        out.append(Call(argv, rule))
    return calls + out


def same_reads(
    t: Trio,
    keys: list[str],
    extra: list[list[str]] | None = None,
    unordered: list[list[str]] | None = None,
) -> None:
    """Every read of `keys`, and the `extra` commands, answers the same on the replica and
    on the relay, byte for byte (times masked in XINFO/XPENDING); the `unordered` commands
    reply in a hash table's order and are compared as multisets."""
    calls: list[Call] = []
    for k in keys:
        calls += _reads_of(t, k.encode())
    calls += [Call([a.encode() for a in argv]) for argv in extra or []]
    calls += [Call([a.encode() for a in argv], "multiset") for argv in unordered or []]
    env = Env(catalog=Catalog({}), sut_is_relay=True)
    problems: list[str] = []
    for proto in t.protos:
        o = Raw(t.replica.port, proto)
        s = Raw(t.relay.port, proto)
        try:
            for call in calls:
                a, b = o.call(call.argv), s.call(call.argv)
                why = compare(call, proto, [a], [b], env)
                if why is not None:
                    problems.append(
                        f"RESP{proto} {b' '.join(call.argv)[:120]!r}: {why}\n"
                        f"    replica {a[:300]!r}\n    relay   {b[:300]!r}"
                    )
        finally:
            o.close()
            s.close()
    assert not problems, "\n".join(problems)


def needs(
    t: Trio, redis_since: tuple[int, ...] | None, valkey_since: tuple[int, ...] | None, what: str
) -> None:
    if not t.kind.dialect.at_least(redis_since, valkey_since):
        pytest.skip(f"{t.kind.name} {t.kind.version} has no {what}")


# ---- streams ----


def test_redis_82_stream_trimming_with_acked_keepref_delref(trio: Trio) -> None:
    """The sequence that served silent wrong data (XLEN 2 instead of 3), then every trim
    policy over PELs of two groups, XDELEX and XACKDEL."""
    t = trio
    needs(t, (8, 2), None, "XADD/XTRIM KEEPREF|DELREF|ACKED")
    write(t, "XADD sa:k * a 0", "XADD sa:k ACKED MAXLEN 5 * a 1", "XADD sa:k * b 2")
    cmds: list[str | list[object]] = [f"XADD sa:x {i}-0 f {i}" for i in range(1, 13)]
    cmds += [
        "XGROUP CREATE sa:x g 0",
        "XGROUP CREATE sa:x h 0",
        "XREADGROUP GROUP g c COUNT 6 STREAMS sa:x >",
        "XREADGROUP GROUP h d COUNT 3 STREAMS sa:x >",
        "XACK sa:x g 1-0 3-0 4-0",
        "XACK sa:x h 1-0",
        "XTRIM sa:x ACKED MAXLEN 3",
        "XADD sa:x ACKED MINID 6 13-0 f 13",
        "XTRIM sa:x KEEPREF MAXLEN 9",
        "XADD sa:x DELREF MAXLEN 8 14-0 f 14",
        "XDELEX sa:x ACKED IDS 3 5-0 9-0 10-0",
        "XDELEX sa:x DELREF IDS 1 11-0",
        "XACKDEL sa:x g KEEPREF IDS 2 12-0 13-0",
        "XACKDEL sa:x h ACKED IDS 1 14-0",
        "XTRIM sa:x ACKED MAXLEN 0",
    ]
    write(t, *cmds)
    same_reads(t, ["sa:k", "sa:x"], [["XLEN", "sa:k"], ["XLEN", "sa:x"]])
    with t.relay.client() as c:
        assert c.xlen("sa:k") == 3


def test_entries_read_is_clamped_where_the_master_clamps_it(trio: Trio) -> None:
    t = trio
    needs(t, (7, 0), (0,), "ENTRIESREAD")
    write(
        t,
        "XADD er:x 1-0 a 1",
        "XADD er:x 2-0 a 2",
        "XGROUP CREATE er:x g 0 ENTRIESREAD 100",
        "XGROUP CREATE er:x h 1-0 ENTRIESREAD 1",
        "XGROUP SETID er:x h $ ENTRIESREAD 7",
        "XGROUP CREATE er:y g $ MKSTREAM ENTRIESREAD 5",
    )
    same_reads(t, ["er:x", "er:y"])


def test_xread_plus_on_empty_and_tail_deleted_streams(trio: Trio) -> None:
    t = trio
    needs(t, (7, 4), (8, 0), "XREAD +")
    write(
        t,
        "XGROUP CREATE xp:empty g $ MKSTREAM",
        "XADD xp:x 1-0 a 1",
        "XADD xp:x 2-0 a 2",
        "XDEL xp:x 2-0",
        "XADD xp:gone 5-0 a 1",
        "XDEL xp:gone 5-0",
    )
    same_reads(
        t,
        ["xp:x"],
        [["XREAD", "STREAMS", k, "+"] for k in ("xp:empty", "xp:x", "xp:gone", "xp:none")]
        + [["XREAD", "COUNT", "1", "STREAMS", "xp:x", "xp:empty", "+", "+"]],
    )


# ---- sets ----


def test_small_sets_keep_insertion_order_through_their_conversions(trio: Trio) -> None:
    """An intset, a listpack (7.2+, Valkey: insertion order, the intset's integers sorted
    first), a hash table past 128 members or 64 bytes, never back; the stores' builders."""
    t = trio
    write(
        t,
        "SADD so:a 5 3 9",
        "SADD so:a w z",
        "SADD so:a 1 y",
        "SREM so:a z 3",
        "SADD so:b b a c",
        "SADD so:b " + " ".join(f"m{i}" for i in range(130)),
        "SREM so:b " + " ".join(f"m{i}" for i in range(130)),
        "SADD so:c x",
        ["SADD", "so:c", "v" * 65],
        ["SREM", "so:c", "v" * 65],
        "SADD so:d 10 2 7",
        "SADD so:e z 7 a 2",
        "SINTERSTORE so:i so:e so:a so:d",
        "SUNIONSTORE so:u so:d so:e so:a",
        "SDIFFSTORE so:f so:e so:d",
        "SDIFFSTORE so:g so:a so:e",
        "SMOVE so:e so:m z",
        "SMOVE so:a so:m 9",
        "SADD so:n 1 2 3",
        "SMOVE so:e so:n a",
    )
    keys = ["so:a", "so:b", "so:c", "so:d", "so:e", "so:i", "so:u", "so:f", "so:g", "so:m", "so:n"]
    # A set operation answers in its sources' order while they are intsets or listpacks;
    # a hash table's order is each server's own, and from Redis 8 / Valkey 8 SUNION and
    # SDIFF collect into a hash table unless every source is an intset.
    with t.replica.client() as c:
        enc = {k: c.object("encoding", k) for k in keys}
    ordered: list[list[str]] = []
    unordered: list[list[str]] = []
    for op in (["SINTER", "so:a", "so:u"], ["SDIFF", "so:u", "so:e"], ["SUNION", "so:d", "so:n"]):
        compact = all(enc[k] in (b"intset", b"listpack") for k in op[1:])
        if op[0] != "SINTER" and t.kind.dialect.setop_reply_hashtable:
            compact = all(enc[k] == b"intset" for k in op[1:])
        (ordered if compact else unordered).append(op)
    same_reads(t, keys, ordered, unordered)


# ---- hashes ----


def test_hash_field_ttls_order_a_listpackex_by_expiry(trio: Trio) -> None:
    t = trio
    needs(t, (7, 4), (9, 0), "hash field TTLs")
    far = int(time.time()) + 100_000
    write(
        t,
        "HSET hx:a a 1 b 2 c 3 d 4",
        f"HEXPIREAT hx:a {far + 100} FIELDS 1 c",
        f"HEXPIREAT hx:a {far + 50} FIELDS 1 a",
        f"HEXPIREAT hx:a {far + 200} FIELDS 1 b",
        "HSET hx:a e 5",
        "HPERSIST hx:a FIELDS 1 a",
        "HSET hx:a c 33",
        f"HEXPIREAT hx:a {far + 100} FIELDS 1 d",
        "HPERSIST hx:a FIELDS 3 b c d",
        f"HEXPIREAT hx:a {far + 100} FIELDS 2 e a",
        "HINCRBY hx:a a 5",
        "HSET hx:b f v g w",
        "HPEXPIREAT hx:b 1 FIELDS 1 f",  # gone: a listpackex left
        "HSET hx:c f v",
        f"HEXPIREAT hx:c {far} FIELDS 1 f",
        "HSET hx:c " + " ".join(f"k{i} v" for i in range(600)),
    )
    same_reads(t, ["hx:a", "hx:b", "hx:c"])


def test_redis_8_hash_commands_are_applied(trio: Trio) -> None:
    t = trio
    needs(t, (8, 0), (9, 0), "HGETEX/HSETEX/HGETDEL")
    write(
        t,
        "HSET h8:a a 1 b 2 c 3 d 4",
        "HGETEX h8:a EX 100000 FIELDS 2 b d",
        "HGETEX h8:a PERSIST FIELDS 1 b",
        "HSETEX h8:a FNX EX 5000 FIELDS 1 e 5",
        "HSETEX h8:a FXX KEEPTTL FIELDS 1 d 44",
        "HSETEX h8:a FIELDS 1 a 11",
        "HGETDEL h8:a FIELDS 2 c nosuch",
        "HSETEX h8:b PX 9000000 FIELDS 2 x 1 y 2",
        "HGETDEL h8:c FIELDS 1 x",
        "HINCRBYFLOAT h8:b x 1.5",
    )
    same_reads(t, ["h8:a", "h8:b"], [["HGETALL", "h8:c"]])


# ---- strings and sorted sets ----


def test_strings_never_convert_back(trio: Trio) -> None:
    t = trio
    write(
        t,
        "SET st:a 5",
        "APPEND st:a 1",
        "SET st:b abc",
        "SETRANGE st:c 0 xy",
        "SETBIT st:d 3 1",
        "PFADD st:e a b",
        "INCR st:f",
        "INCRBYFLOAT st:g 1.5",
        "APPEND st:h new",
        "SET st:i " + "x" * 30,
        "EXPIRE st:i 100000",
        "PERSIST st:i",
        "SET st:j 77",
        "COPY st:a st:k",
        "RENAME st:c st:l",
        "BITOP OR st:m st:b st:b",
        "SET st:n " + "y" * 20 + " EX 100000",
    )
    keys = ["st:" + c for c in "abdefghijklmn"]
    same_reads(t, keys, [["OBJECT", "REFCOUNT", k] for k in keys] + [["PFCOUNT", "st:e"]])
    same_reads(t, ["st:e"])  # the replica's PFCOUNT made it raw and cached its count


def test_sorted_sets_never_convert_back_and_sort_converts_them(trio: Trio) -> None:
    t = trio
    write(
        t,
        "ZADD zs:a 1 a 2 b -0 c",
        "ZADD zs:b " + " ".join(f"{i} m{i}" for i in range(130)),
        "ZREMRANGEBYRANK zs:b 0 125",
        "ZADD zs:c 1 x 2 y",
        "SORT zs:c BY nosort STORE zs:l",
        "ZADD zs:d 1 " + "q" * 65,
        "ZREM zs:d " + "q" * 65,
        "ZADD zs:d 3 z",
        "ZADD zs:e 1 a 2 b 3 c",
    )
    same_reads(
        t,
        ["zs:a", "zs:b", "zs:c", "zs:d", "zs:e"],
        [
            ["ZRANK", "zs:e", "b", "WITHSCORE"],
            ["ZREVRANK", "zs:e", "a", "WITHSCORE"],
            ["ZRANGE", "zs:b", "-inf", "+inf", "BYSCORE", "LIMIT", "-2", "1"],
            ["GEOPOS", "zs:e", "a"],
            ["GETRANGE", "zs:a", "0", "-1"],
        ],
    )
    # A client's SORT_RO converts the replica's listpack to a skiplist, for good.
    same_reads(t, [], [["SORT_RO", "zs:e", "BY", "nosort"], ["OBJECT", "ENCODING", "zs:e"]])
    same_reads(t, ["zs:e"])


def test_numbers_and_options_each_version_reads_its_own_way(trio: Trio) -> None:
    """Score ranges and SORT scores (strtod up to 7.x and on Valkey, fast_float on Redis 8:
    blanks, hex, overflow), the scan options a version has (NOVALUES 7.4+, NOSCORES on
    Valkey 8 only), PFCOUNT of a corrupt sparse HyperLogLog."""
    t = trio
    forms = [" 5", "0x1A", "1e400", "1e-400", "+.5", "5.", "Infinity", "", "nan", "1e"]
    write(
        t,
        "ZADD nz:a 1 a 5 b 26 c 100 d",
        "HSET nz:h f v",
        "SADD nz:s a b",
        *[["RPUSH", f"nz:l{i}", "3", form, "-2.5"] for i, form in enumerate(forms)],
        *[["SORT", f"nz:l{i}", "STORE", f"nz:d{i}"] for i in range(len(forms))],
    )
    # Each SORT_RO after clearing the replica's errno: its `sortCommand` tests a stale
    # ERANGE that an earlier overflowing score (a bound, another SORT's) leaves behind (see
    # test_reads_differential's retry_after_stale_erange): on a real server the order of
    # reads matters.
    for i in range(len(forms)):
        with t.replica.client() as c, contextlib.suppress(redis.ResponseError):
            c.execute_command("CONFIG", "SET", "dir", "/nonexistent/errno")  # errno: ENOENT
        same_reads(t, [], [["SORT_RO", f"nz:l{i}"]])
    extra: list[list[str]] = []
    for form in forms:
        extra += [
            ["ZCOUNT", "nz:a", form, "+inf"],
            ["ZCOUNT", "nz:a", "(" + form, "inf"],
            ["ZRANGEBYSCORE", "nz:a", "-inf", form],
        ]
    extra += [["EXISTS", f"nz:d{i}"] for i in range(len(forms))]
    extra += [
        ["HSCAN", "nz:h", "0", "NOVALUES"],
        ["HSCAN", "nz:h", "0", "NOSCORES"],
        ["ZSCAN", "nz:a", "0", "NOSCORES"],
        ["ZSCAN", "nz:a", "0", "NOVALUES"],
        ["SSCAN", "nz:s", "0", "NOVALUES"],
        ["SCAN", "0", "NOVALUES"],
        ["SCAN", "0", "NOSCORES"],
    ]
    same_reads(t, [f"nz:d{i}" for i in range(len(forms))], extra)


# ---- geo ----

# Points around a 5000 km circle where the search step differs: Redis 6.2.0-6.2.6 choose it
# by distances (as 5.0 does) and search one step finer, finding 18 members; 6.2.7 and 7.0
# choose it by the bounding box and find 30 (found by a seeded search over such circles).
GEO_EDGE_POINTS = (
    "-99.304480 48.170128 0 -90.039050 43.290073 1 "
    "-97.725958 62.541766 2 -62.308371 84.412349 3 "
    "-29.682904 7.565728 4 -106.198552 50.891480 5 "
    "-80.808680 72.998776 6 11.538466 49.749182 7 "
    "-99.168245 22.651775 8 -14.185636 14.187687 9 "
    "15.759684 45.721040 10 -13.723730 16.203682 11 "
    "-45.343507 1.897533 12 -60.623350 80.980370 13 "
    "-87.061441 21.610936 14 -73.350166 73.238127 15 "
    "-87.453358 73.360134 16 -99.606715 74.121458 17 "
    "-99.345584 27.114297 18 9.754815 22.998442 19 "
    "-108.550479 50.856886 20 -83.214434 16.706602 21 "
    "-82.436163 21.322810 22 -86.276198 18.801236 23 "
    "18.503889 32.026248 24 -5.283958 13.059214 25 "
    "-18.061325 11.288030 26 -74.624629 77.774290 27 "
    "-60.858035 5.222792 28 -92.439719 39.583978 29 "
    "-13.329844 14.978915 30 -90.822797 55.481282 31 "
    "-108.458157 46.088944 32 -92.742679 66.195927 33 "
    "-69.626822 22.388540 34 -113.341309 46.790949 35 "
    "-63.935211 13.700343 36 -66.270836 10.873048 37 "
    "-29.441567 82.459645 38 -1.984220 25.440247 39 "
)


def test_a_geo_search_picks_its_step_as_the_masters_version_does(trio: Trio) -> None:
    """GEORADIUS ... STORE, which the master propagates as it is, so the relay searches its
    own copy: it must search the cells the master's version searches."""
    t = trio
    write(
        t,
        ["GEOADD", "geo:edge", *GEO_EDGE_POINTS.split()],
        ["GEORADIUS", "geo:edge", "-42.932729", "48.876623", "5000", "km", "STORE", "geo:found"],
    )
    same_reads(
        t,
        ["geo:found"],
        [
            ["ZCARD", "geo:found"],
            ["GEORADIUS_RO", "geo:edge", "-42.932729", "48.876623", "5000", "km", "ASC"],
        ],
    )


# ---- transactions ----


def test_exec_after_a_watched_key_expired(trio: Trio) -> None:
    """EXEC after a WATCHed key logically expired (the master, with active expiry off, has not
    deleted it): Redis 7.0 and Valkey fail EXEC only for a key live at WATCH time, 6.2.5 for
    any expired watched key, 5.0 never (`isWatchedKeyExpired`). Each side's replies, from
    WATCH to EXEC, are compared byte for byte."""
    t = trio
    write(t, "SET wx:old v PX 100", "SET wx:live v PX 3000", "SET wx:plain v")

    def pttl(key: str) -> int:
        with t.replica.client() as c:
            return int(c.pttl(key))

    wait_for(lambda: pttl("wx:old") == -2, 10, what="wx:old to expire logically")
    sides = {"replica": t.replica.port, "relay": t.relay.port}
    conns = {(name, key): Raw(port, 2) for name, port in sides.items() for key in ("old", "live")}
    replies: dict[tuple[str, str], list[bytes]] = {k: [] for k in conns}
    try:
        for (name, key), conn in conns.items():
            for argv in ([b"WATCH", b"wx:" + key.encode(), b"wx:plain"], [b"MULTI"]):
                replies[name, key].append(conn.call(argv))
            replies[name, key].append(conn.call([b"GET", b"wx:plain"]))
        left = pttl("wx:live")
        assert left > 0, f"wx:live expired before both sides watched it ({left})"
        for (name, key), conn in conns.items():
            if key == "old":
                replies[name, key].append(conn.call([b"EXEC"]))
        time.sleep(left / 1000 + 0.3)
        for (name, key), conn in conns.items():
            if key == "live":
                replies[name, key].append(conn.call([b"EXEC"]))
    finally:
        for conn in conns.values():
            conn.close()
    for key in ("old", "live"):
        assert replies["relay", key] == replies["replica", key], key
    # What each version's replica said (the oracle above), so a change of oracle shows.
    rule = t.kind.dialect.exec_expired_watch_rule
    nil = b"*-1\r\n"
    assert (replies["replica", "old"][-1] == nil) == (rule == "any"), replies
    assert (replies["replica", "live"][-1] == nil) == (rule != "never"), replies


# ---- what the relay cannot apply ----


@pytest.fixture(
    scope="module",
    params=[k for k in KINDS if k.version < (7, 0, 0)],
    ids=[k.name for k in KINDS if k.version < (7, 0, 0)],
)
def verbatim_scripts(request: pytest.FixtureRequest) -> Iterator[Trio]:
    """A master before 7.0 set to replicate Lua scripts verbatim: its EVAL reaches the
    relay as EVAL, which it cannot run."""
    yield from _start(request.param, {"lua-replicate-commands": "no"})


def test_a_write_the_relay_cannot_apply_never_serves_wrong_data(
    verbatim_scripts: Trio,
) -> None:
    """An EVAL the relay cannot run marks the keys it names; a later write to part of a
    value (RPUSH, HSET, APPEND, XADD) leaves the relay's copy wrong, so the key stays
    refused with an error; a write replacing the whole value (SET, DEL) makes it
    trustworthy again, and it then reads exactly as on the real replica."""
    t = verbatim_scripts
    script = (
        "redis.call('rpush', KEYS[1], 'x') redis.call('hset', KEYS[2], 'f', 'v') "
        "redis.call('append', KEYS[3], 'z') return 1"
    )
    write(
        t,
        "RPUSH ev:l a",
        "HSET ev:h g w",
        "SET ev:s abc",
        ["EVAL", script, 3, "ev:l", "ev:h", "ev:s"],
        "RPUSH ev:l b",
        "HSET ev:h k q",
        "APPEND ev:s y",
        "SET ev:fresh 1",
    )
    refused = re.compile(rb"^-(ERR )?replproxy cannot serve key 'ev:[lhs]'")
    with t.relay.client() as c:
        for cmd in (["LRANGE", "ev:l", "0", "-1"], ["HGETALL", "ev:h"], ["GET", "ev:s"]):
            try:
                got = c.execute_command(*cmd)
            except redis.ResponseError as e:
                assert refused.match(b"-" + str(e).encode()), e
            else:
                raise AssertionError(f"{cmd} served {got!r} after a write it missed")
    write(t, "DEL ev:l", "SET ev:h replaced", "SET ev:s whole")
    same_reads(t, ["ev:h", "ev:s", "ev:fresh"], [["EXISTS", "ev:l"]])
