"""Generic key commands: deletion, expiry, renames, moves and copies across DBs, SWAPDB,
flushes, RESTORE, SORT ... STORE and PUBLISH are applied exactly as the master did.

The oracle is a real master (Redis 7.0, Valkey 8.1, and Redis 5.0 when REPLPROXY_TEST_REDIS5
is set: it sends EXPIRE/PEXPIRE/EXPIREAT and RESTORE with RELATIVE times). Containers of
every type (lists, sets, sorted sets, hashes, streams with consumer groups, small and large
encodings) are created BEFORE the mirror attaches, so they reach it through the snapshot;
afterwards the stream carries only this module's commands (and RESTOREs of DUMPs the master
itself produced), in plain commands, MULTI/EXEC transactions and Lua scripts.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

import pytest

from replproxy.keyspace import ApplyError, Keyspace
from replproxy.keyspace.keys import duplicate
from replproxy.keyspace.sort import _sort_score
from replproxy.keyspace.values import ZSet
from replproxy.rdb.dump import dump_payload
from replproxy.rdb.model import (
    Function,
    HashValue,
    ModuleValue,
    StreamConsumer,
    StreamGroup,
    StreamPendingEntry,
    StreamValue,
)
from tests.harness.appliers import FixedClock, run
from tests.harness.mirror import Mirror, assert_mirrors, send
from tests.harness.servers import RedisServer

DBS = 4

# ---- helpers ----


LUA_RUN = """
local i = 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.pcall(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
"""


def script(c: Any, commands: list[list[object]]) -> None:
    """One EVAL running the commands: on every version its effects arrive as MULTI/EXEC."""
    flat: list[object] = []
    for argv in commands:
        flat += [len(argv), *argv]
    send(c, "EVAL", LUA_RUN, 0, *flat)


# ---- a dataset of every type, made before the mirror attaches ----

WORDS = ["apple", "pear", "fig", "kiwi", "plum", "lime", "date", "yuzu", "sloe", "nut"]


def seed_dataset(master: RedisServer, rng: random.Random) -> None:
    """Lists, sets, sorted sets, hashes and streams, small and large, in DBs 0..3, plus the
    string and hash keys SORT's BY and GET patterns point at."""
    for db in range(DBS):
        with master.client(db=db) as c:
            c.rpush("L0", *[str(rng.randrange(-50, 50)) for _ in range(6)])
            c.rpush("L1", *[str(rng.randrange(1000)) for _ in range(300)])  # quicklist
            c.rpush("L2", *rng.sample(WORDS, 6), *rng.sample(WORDS, 3))  # duplicates
            c.rpush("L3", *[f"{rng.random() * 100:.3f}" for _ in range(50)])
            c.sadd("S0", *[str(rng.randrange(100)) for _ in range(8)])  # intset
            c.sadd("S1", *rng.sample(WORDS, 5))
            c.sadd("S2", *[str(rng.randrange(10**6)) for _ in range(600)])  # hashtable
            c.zadd("Z0", {w: rng.randrange(10) for w in WORDS[:6]})
            c.zadd("Z1", {str(i): rng.random() for i in range(300)})  # skiplist
            c.hset("H0", mapping={"a": "1", "b": "x"})
            c.hset(
                "H1", mapping={f"f{i}": rng.randbytes(rng.randrange(1, 100)) for i in range(300)}
            )
            c.xadd("X0", {"a": "1"}, id="1-1")
            c.xadd("X0", {"b": "2", "c": "3"}, id="2-1")
            c.xadd("X0", {"d": rng.randbytes(80)})
            c.xgroup_create("X0", "g1", id="0")
            c.xgroup_create("X0", "g2", id="$")
            c.xreadgroup("g1", "alice", {"X0": ">"}, count=2)
            c.xreadgroup("g1", "bob", {"X0": ">"}, count=1)
            c.set("k0", rng.randbytes(20))
            c.set("k1", "plain", ex=10_000)
            c.set("k2", rng.randbytes(3000), px=9_000_000)
            # BY/GET targets: weights for numbers and words, some missing, a few hashes.
            for e in sorted(
                {
                    *c.lrange("L0", 0, -1),
                    *c.lrange("L1", 0, 40),
                    *c.smembers("S0"),
                    *c.lrange("L3", 0, -1),
                }
            ):
                if rng.random() < 0.8:
                    c.set(b"w_" + e, str(rng.randrange(-20, 20)))
                if rng.random() < 0.7:
                    c.set(b"o_" + e, rng.choice(WORDS))
            for w in WORDS:
                if rng.random() < 0.8:
                    c.set(f"w_{w}", rng.choice(["1", "2", "3", "10", "-4.5", "1e2"]))
                c.set(f"a_{w}", rng.choice(["b", "a", "c", "aa"]))  # ALPHA weights with ties
                c.hset(f"h_{w}", mapping={"n": str(rng.randrange(5)), "s": rng.choice(WORDS)})


CONTAINERS = ["L0", "L1", "L2", "L3", "S0", "S1", "S2", "Z0", "Z1", "H0", "H1", "X0"]
STRINGS = ["k0", "k1", "k2", "k3"]
DESTS = ["d0", "d1", "d2"]
ALL_KEYS = CONTAINERS + STRINGS + DESTS


def dumps_of(master: RedisServer) -> list[bytes]:
    out = []
    with master.client() as c:
        for k in CONTAINERS + STRINGS[:3]:
            out.append(c.dump(k))
    return out


class GenericWorkload:
    def __init__(self, master: RedisServer, seed: int, payloads: list[bytes]) -> None:
        self.v = master.kind.version
        self.rng = random.Random(seed)
        self.clients = [master.client(db=d) for d in range(DBS)]
        self.payloads = payloads

    def close(self) -> None:
        for c in self.clients:
            c.close()

    def key(self) -> str:
        return self.rng.choice(ALL_KEYS)

    def command(self, c: Any) -> list[object]:
        rng, v = self.rng, self.v
        r = rng.randrange(100)
        now = int(time.time() * 1000)
        if r < 8:
            return [rng.choice(["DEL", "UNLINK"]), *rng.sample(ALL_KEYS, rng.randrange(1, 3))]
        if r < 24:
            name = rng.choice(["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"])
            short = rng.random() < 0.25  # expires during the run
            if name == "EXPIRE":
                t = rng.randrange(1, 3) if short else rng.randrange(10, 10**5)
            elif name == "PEXPIRE":
                t = rng.randrange(50, 800) if short else rng.randrange(10**4, 10**8)
            elif name == "EXPIREAT":
                t = now // 1000 + (2 if short else rng.randrange(10, 10**5))
            else:
                t = now + (rng.randrange(50, 800) if short else rng.randrange(10**4, 10**8))
            argv: list[object] = [name, self.key(), t]
            if v >= (7, 0, 0) and rng.random() < 0.5:
                argv.append(rng.choice(["NX", "XX", "GT", "LT"]))
                if rng.random() < 0.2:
                    argv.append(rng.choice(["XX", "GT", "LT"]))
            return argv
        if r < 28:
            return ["PERSIST", self.key()]
        if r < 36:
            return [rng.choice(["RENAME", "RENAMENX"]), self.key(), self.key()]
        if r < 41:
            return ["MOVE", self.key(), rng.randrange(DBS)]
        if r < 49:
            if v < (6, 2, 0):
                return ["MOVE", self.key(), rng.randrange(DBS)]
            argv = ["COPY", self.key(), self.key()]
            if rng.random() < 0.5:
                argv += ["DB", rng.randrange(DBS)]
            if rng.random() < 0.5:
                argv.append("REPLACE")
            return argv
        if r < 51:
            return ["SWAPDB", rng.randrange(DBS), rng.randrange(DBS)]
        if r < 52:
            return ["FLUSHDB"] if rng.random() < 0.8 else ["FLUSHDB", "ASYNC"]
        if r < 64:
            return self.restore(c, now)
        if r < 82:
            return self.sort(c)
        if r < 90:
            return ["SET", rng.choice(STRINGS), rng.randbytes(rng.randrange(0, 200))]
        w = rng.choice(WORDS)
        return ["SET", f"w_{w}", rng.choice(["5", "-1", "0", "7.5", "10", "2"])]

    def restore(self, c: Any, now: int) -> list[object]:
        rng = self.rng
        if rng.random() < 0.3:
            payload = c.dump(self.key())  # whatever the key holds right now
            if payload is None:
                payload = rng.choice(self.payloads)
        else:
            payload = rng.choice(self.payloads)
        ttl: object = 0
        opts: list[object] = []
        r = rng.random()
        if r < 0.3:
            ttl = rng.choice([rng.randrange(50, 800), rng.randrange(10**4, 10**8)])
        elif r < 0.5:
            ttl = now + rng.randrange(10**4, 10**8)
            opts.append("ABSTTL")
        if rng.random() < 0.7:
            opts.append("REPLACE")
        if rng.random() < 0.2:
            opts += ["IDLETIME", rng.randrange(0, 1000)]
        return ["RESTORE", rng.choice(ALL_KEYS), ttl, payload, *opts]

    def sort(self, c: Any) -> list[object]:
        rng = self.rng
        src = rng.choice(CONTAINERS[:9])  # lists, sets, sorted sets
        kind = c.type(src)
        argv: list[object] = ["SORT", src]
        alpha = rng.random() < 0.4
        by = None
        r = rng.random()
        if r < 0.15:
            by = "nosort"
        elif r < 0.5:
            by = rng.choice(["w_*", "h_*->n", "w_*->x"] + (["a_*", "h_*->s"] if alpha else []))
            if alpha and kind != b"list":
                # Ties of ALPHA BY weights keep the input order, which for sets and sorted
                # sets is the hash table's: not even two real replicas agree on it.
                by = None
        if by:
            argv += ["BY", by]
        if rng.random() < 0.4:
            argv += ["LIMIT", rng.randrange(-2, 12), rng.choice([-1, 0, 1, 3, 10, 400])]
        for _ in range(rng.choice([0, 0, 1, 2])):
            argv += ["GET", rng.choice(["#", "o_*", "w_*", "h_*->s", "nostar", "h_*->"])]
        if rng.random() < 0.5:
            argv.append(rng.choice(["ASC", "DESC"]))
        if alpha:
            argv.append("ALPHA")
        argv += ["STORE", rng.choice([*DESTS, "L0", "k0"])]
        return argv


@pytest.fixture
def seeded(master: RedisServer) -> tuple[RedisServer, list[bytes]]:
    seed_dataset(master, random.Random(1))
    return master, dumps_of(master)


def test_generic_commands_are_mirrored(seeded: tuple[RedisServer, list[bytes]]) -> None:
    master, payloads = seeded
    with Mirror(master) as mirror:
        wl = GenericWorkload(master, seed=3, payloads=payloads)
        try:
            for _ in range(1200):
                db = wl.rng.randrange(DBS)
                c = wl.clients[db]
                r = wl.rng.random()
                if r < 0.08:
                    with c.pipeline(transaction=True) as p:
                        for _ in range(wl.rng.randrange(1, 5)):
                            p.execute_command(*wl.command(c))
                        p.execute(raise_on_error=False)
                elif r < 0.13:
                    cmds = [wl.command(c) for _ in range(wl.rng.randrange(1, 5))]
                    script(c, [a for a in cmds if a[0] not in ("RESTORE", "SWAPDB")])
                else:
                    send(c, *wl.command(c))
        finally:
            wl.close()
        assert_mirrors(mirror)


# ---- SORT ... STORE ----


def test_sort_store_forms_are_mirrored(seeded: tuple[RedisServer, list[bytes]]) -> None:
    master, _ = seeded
    with master.client() as c:
        c.rpush("nums", "  5", "3", "", "1e1", "0x1A", "-2.5", "3", "inf", "-inf")
        c.rpush("ties", *[WORDS[i % 10] for i in range(60)])  # ALPHA BY a_*: many ties
        c.rpush("big", *[str(i % 37) for i in range(200)])
        c.set("d0", "has a ttl", ex=1000)
    sorts: list[list[object]] = [
        ["SORT", "L0", "STORE", "d0"],
        ["SORT", "L0", "DESC", "STORE", "d1"],
        ["SORT", "L1", "LIMIT", 10, 20, "STORE", "d2"],
        ["SORT", "L1", "DESC", "LIMIT", 290, 50, "STORE", "d3"],
        ["SORT", "L1", "LIMIT", -5, 3, "STORE", "d4"],
        ["SORT", "L1", "LIMIT", 400, 3, "STORE", "d5"],  # past the end: empty, deleted
        ["SORT", "L2", "ALPHA", "STORE", "d6"],
        ["SORT", "L2", "ALPHA", "DESC", "LIMIT", 1, 4, "STORE", "d7"],
        ["SORT", "L2", "BY", "nosort", "STORE", "d8"],
        [
            "SORT",
            "L2",
            "BY",
            "nosort",
            "DESC",
            "LIMIT",
            2,
            3,
            "GET",
            "#",
            "GET",
            "w_*",
            "STORE",
            "d9",
        ],
        ["SORT", "S0", "STORE", "e0"],
        ["SORT", "S1", "BY", "nosort", "STORE", "e1"],  # a set: sorted ALPHA all the same
        ["SORT", "S2", "DESC", "LIMIT", 0, 25, "STORE", "e2"],
        ["SORT", "Z0", "BY", "nosort", "STORE", "e3"],
        ["SORT", "Z1", "BY", "nosort", "DESC", "LIMIT", 5, 7, "STORE", "e4"],
        ["SORT", "Z0", "ALPHA", "STORE", "e5"],
        ["SORT", "L0", "BY", "w_*", "STORE", "e6"],  # missing weights count as 0
        ["SORT", "L0", "BY", "w_*", "DESC", "GET", "o_*", "GET", "#", "STORE", "e7"],
        ["SORT", "L1", "BY", "w_*", "LIMIT", 3, 9, "STORE", "e8"],  # pqsort
        ["SORT", "S0", "BY", "w_*", "LIMIT", 1, 4, "GET", "#", "STORE", "e9"],
        ["SORT", "L2", "BY", "h_*->n", "GET", "h_*->s", "GET", "nothere_*", "STORE", "f0"],
        ["SORT", "L2", "BY", "a_*", "ALPHA", "STORE", "f1"],  # stable ties
        ["SORT", "L2", "BY", "a_*", "ALPHA", "DESC", "STORE", "f2"],
        ["SORT", "ties", "BY", "a_*", "ALPHA", "STORE", "f3"],
        ["SORT", "ties", "BY", "a_*", "ALPHA", "LIMIT", 7, 20, "STORE", "f4"],  # pqsort ties
        ["SORT", "ties", "BY", "a_*", "ALPHA", "DESC", "LIMIT", 0, 45, "STORE", "f5"],
        ["SORT", "ties", "BY", "h_*->s", "ALPHA", "LIMIT", 1, 58, "GET", "#", "STORE", "f6"],
        ["SORT", "big", "BY", "w_*", "LIMIT", 50, 30, "STORE", "f7"],
        ["SORT", "nums", "STORE", "f8"],
        ["SORT", "nums", "DESC", "GET", "#", "GET", "#", "STORE", "f9"],
        ["SORT", "missing", "STORE", "d0"],  # empty: the destination is deleted
        ["SORT", "L0", "GET", "nostar", "STORE", "g0"],  # GET without `*`: empty strings
        ["SORT", "L0", "LIMIT", 0, 0, "STORE", "g1"],
        ["SORT", "L2", "BY", "w_*->", "ALPHA", "STORE", "g2"],  # `->` with no field
        ["SORT", "L0", "STORE", "L0"],  # onto itself
    ]
    with Mirror(master) as mirror, master.client() as c:
        for argv in sorts:
            send(c, *argv)
        with c.pipeline(transaction=True) as p:
            p.execute_command("SORT", "L3", "BY", "w_*", "STORE", "h0")
            p.execute_command("SORT", "L3", "ALPHA", "DESC", "STORE", "h1")
            p.execute(raise_on_error=False)
        script(c, [["SORT", "S1", "ALPHA", "STORE", "h2"], ["SORT", "Z1", "STORE", "h3"]])
        mirror.sync()
        ks = mirror.keyspace
        assert ks.get(0, b"d0") is None and ks.get(0, b"d5") is None
        # Redis 8 reads SORT's scores with fast_float: "  5" and "0x1A" are errors there.
        assert ks.dialect.fast_float_ranges or ks.get(0, b"f8") == [
            b"-inf",
            b"-2.5",
            b"",
            b"3",
            b"3",
            b"  5",
            b"1e1",
            b"0x1A",
            b"inf",
        ]
        assert ks.get(0, b"g0") == [b""] * 6
        assert_mirrors(mirror)


def test_sort_score_reads_like_strtod() -> None:
    assert _sort_score(b"  5") == 5.0
    assert _sort_score(b"") == 0.0
    assert _sort_score(b"0x1A") == 26.0
    assert _sort_score(b"1e1") == 10.0
    assert _sort_score(b"7\x00junk") == 7.0
    for bad in (b"nan", b"5 ", b"  ", b"abc", b"1e", b"1e400"):
        with pytest.raises(ApplyError):
            _sort_score(bad)


def test_sort_score_reads_like_fast_float_on_redis_8() -> None:
    assert _sort_score(b"", True) == 0.0
    assert _sort_score(b"+.5", True) == 0.5
    assert _sort_score(b"1e400", True) == math.inf  # no ERANGE from fast_float
    assert _sort_score(b"Infinity", True) == math.inf
    for bad in (b"  5", b"0x1A", b"nan", b"1e", b"5 ", b"+-5"):
        with pytest.raises(ApplyError):
            _sort_score(bad, True)


def test_sort_failure_marks_only_the_destination() -> None:
    ks = Keyspace()
    ks.set(0, b"l", [b"1", b"x"])
    ks.apply(0, [b"SORT", b"l", b"STORE", b"dst"])
    assert ks.unsupported_keys == {(0, b"dst")}
    ks.apply(0, [b"SORT", b"l", b"ALPHA", b"STORE", b"dst"])
    assert ks.unsupported_keys == set() and ks.get(0, b"dst") == [b"1", b"x"]


# ---- RESTORE ----


def test_restore_of_dumps_of_every_type(seeded: tuple[RedisServer, list[bytes]]) -> None:
    master, payloads = seeded
    now = int(time.time() * 1000)
    with Mirror(master) as mirror, master.client(db=1) as c:
        for i, payload in enumerate(payloads):
            send(c, "RESTORE", f"r{i}", 0, payload)
            send(c, "RESTORE", f"t{i}", 5_000_000 + i, payload)  # relative on 5.x: ABSTTL 7+
            send(c, "RESTORE", f"a{i}", now + 6_000_000, payload, "ABSTTL", "IDLETIME", 10)
            send(c, "RESTORE", f"s{i}", 200, payload)  # expires during the run
            send(c, "RESTORE", "L0", 0, payload, "REPLACE")  # over a key of another type
        send(c, "RESTORE", "k1", 0, payloads[0])  # BUSYKEY: not propagated
        c.config_set("maxmemory-policy", "allkeys-lfu")  # FREQ needs an LFU policy
        send(c, "RESTORE", "freq", 0, payloads[2], "FREQ", 100)
        mirror.sync()
        ks = mirror.keyspace
        assert isinstance(ks.get(1, b"r7"), ZSet) and isinstance(ks.get(1, b"r11"), StreamValue)
        exp = ks.get_expire(1, b"t3")
        assert exp is not None and abs(exp - (now + 5_000_003)) < 3000
        assert ks.get_expire(1, b"a3") == now + 6_000_000
        assert ks.get(1, b"freq") is not None and ks.get(1, b"freq") == ks.get(1, b"r2")
        time.sleep(0.3)
        assert_mirrors(mirror)


def test_restore_relative_and_absolute_ttl_direct() -> None:
    ks = FixedClock(now=10_000)
    payload = dump_payload(b"hello", 10)
    run(ks, "RESTORE", "a", 0, payload)
    run(ks, "RESTORE", "b", 500, payload)
    run(ks, "RESTORE", "c", 500, payload, "ABSTTL", "FREQ", 5)
    run(ks, "RESTORE", "d", 1, payload, "ABSTTL")  # already past: kept, as on a replica
    assert ks.get(0, b"a") == b"hello" and ks.get_expire(0, b"a") is None
    assert ks.get_expire(0, b"b") == 10_500
    assert ks.get_expire(0, b"c") == 500
    assert ks.get(0, b"d") == b"hello" and ks.get_expire(0, b"d") == 1


# ---- expiry ----


def test_expire_forms_and_conditions(master: RedisServer) -> None:
    with master.client() as c:
        for k in "abcdefgh":
            c.set(k, "v")
    with Mirror(master) as mirror, master.client() as c:
        now = int(time.time() * 1000)
        c.expire("a", 1000)
        c.pexpire("b", 2_000_000)
        c.expireat("c", now // 1000 + 3000)
        c.pexpireat("d", now + 4_000_000)
        c.expire("e", 100)
        c.persist("e")
        c.pexpire("f", 300)  # gone during the run: the master's DEL arrives
        c.expire("g", -1)  # arrives as DEL
        if master.kind.version >= (7, 0, 0):
            c.set("h", "v", ex=100)
            send(c, "EXPIRE", "h", 50, "GT")  # not greater: nothing
            send(c, "EXPIRE", "h", 200, "GT")
            send(c, "EXPIRE", "h", 300, "NX")  # has one: nothing
            send(c, "PEXPIRE", "h", 150_000, "LT", "XX")
        mirror.sync()
        ks = mirror.keyspace
        now = int(time.time() * 1000)
        for key, ttl in (
            (b"a", 1_000_000),
            (b"b", 2_000_000),
            (b"c", 3_000_000),
            (b"d", 4_000_000),
        ):
            exp = ks.get_expire(0, key)
            assert exp is not None and abs(exp - now - ttl) < 3000, key
        assert ks.get_expire(0, b"e") is None and ks.get(0, b"g") is None
        if master.kind.version >= (7, 0, 0):
            exp = ks.get_expire(0, b"h")
            assert exp is not None and abs(exp - now - 150_000) < 3000
        assert_mirrors(mirror)
        deadline = time.monotonic() + 10
        while ks.get(0, b"f") is not None and time.monotonic() < deadline:
            time.sleep(0.1)  # the master's active expiry will send the DEL
            mirror.sync()
        assert ks.get(0, b"f") is None


def test_expire_conditions_direct() -> None:
    ks = FixedClock(now=1000)
    ks.set(0, b"k", b"v")
    run(ks, "PEXPIREAT", "k", 5000, "XX")
    assert ks.get_expire(0, b"k") is None  # XX: no TTL yet
    run(ks, "PEXPIREAT", "k", 5000, "GT")
    assert ks.get_expire(0, b"k") is None  # GT against no TTL (infinite) fails
    run(ks, "PEXPIREAT", "k", 5000, "LT")
    assert ks.get_expire(0, b"k") == 5000  # LT against infinite succeeds
    run(ks, "PEXPIREAT", "k", 6000, "NX")
    run(ks, "PEXPIREAT", "k", 6000, "LT")
    assert ks.get_expire(0, b"k") == 5000
    run(ks, "PEXPIREAT", "k", 6000, "XX", "GT")
    assert ks.get_expire(0, b"k") == 6000
    run(ks, "PEXPIREAT", "k", 10)  # in the past: stored, the master sends the DEL
    assert ks.get(0, b"k") == b"v" and ks.get_expire(0, b"k") == 10
    run(ks, "EXPIRE", "k", 5)
    run(ks, "PEXPIRE", "missing", 5)
    assert ks.get_expire(0, b"k") == 6000 and ks.get(0, b"missing") is None
    run(ks, "EXPIREAT", "k", 7)
    assert ks.get_expire(0, b"k") == 7000
    run(ks, "PERSIST", "k")
    assert ks.get_expire(0, b"k") is None


# ---- renames, moves, copies, SWAPDB, flushes ----


def test_key_moves_across_dbs_are_mirrored(seeded: tuple[RedisServer, list[bytes]]) -> None:
    master, _ = seeded
    v = master.kind.version
    with Mirror(master) as mirror, master.client() as c:
        c.set("ttl", "v", ex=1000)
        c.rename("ttl", "renamed")  # the TTL moves with it
        c.rename("L0", "k1")  # over a key with a TTL: the source's (none) wins
        c.renamenx("S0", "k0")  # exists: nothing
        c.renamenx("S0", "S0-new")
        c.move("Z0", 2)  # exists in DB 2: nothing
        c.move("renamed", 3)
        c.move("H1", 5)
        if v >= (6, 2, 0):
            c.copy("X0", "X0-copy")  # a stream with groups, consumers and PELs
            c.copy("Z1", "Z1-copy", destination_db=7)
            c.copy("H1", "H1-copy", replace=True)
            c.copy("L1", "L2", replace=True)
            c.copy("k2", "k2-copy", destination_db=1)  # the TTL is copied too
            c.copy("S2", "S1")  # exists, no REPLACE: nothing
            c.xack("X0", "g1", "1-1")  # the copy's PEL must not change
            c.xgroup_destroy("X0", "g2")
        c.swapdb(0, 1)
        c.swapdb(1, 3)
        with c.pipeline(transaction=True) as p:
            p.execute_command("SELECT", 2)
            p.execute_command("RENAME", "L1", "L1-in-2")
            p.execute_command("SWAPDB", 2, 0)
            p.execute_command("FLUSHDB")
            p.execute(raise_on_error=False)
        mirror.sync()
        assert_mirrors(mirror)
        c.flushall()
        with master.client(db=9) as c9:
            c9.set("after", "flushall")
        assert_mirrors(mirror)


def test_copy_is_deep() -> None:
    stream = StreamValue(
        entries={(1, 1): [(b"a", b"1")]},
        length=1,
        last_id=(1, 1),
        groups=[
            StreamGroup(
                b"g",
                (1, 1),
                1,
                pel={(1, 1): StreamPendingEntry(5, 1)},
                consumers=[StreamConsumer(b"c", 5, 5, [(1, 1)])],
            )
        ],
    )
    values: list[Any] = [
        b"s",
        [b"a", b"b"],
        {b"x", b"y"},
        {b"f": b"v"},
        ZSet({b"m": 1.0, b"n": 2.0}),
        HashValue({b"f": b"v"}, expires={b"f": 99}),
        stream,
        ModuleValue(1, "mymodule0", 1, b"\x00"),
    ]
    for v in values:
        d = duplicate(v)
        assert d == v and type(d) is type(v)
        if not isinstance(v, bytes):
            assert d is not v
    z = duplicate(values[4])
    assert isinstance(z, ZSet)
    z.add(b"o", 0.5)
    assert b"o" not in values[4] and z.rank(b"o") == 0
    h = duplicate(values[5])
    assert isinstance(h, HashValue)
    h.expires[b"f"] = 1
    assert values[5].expires[b"f"] == 99
    s = duplicate(stream)
    assert isinstance(s, StreamValue)
    s.groups[0].consumers[0].pending.clear()
    s.groups[0].pel.clear()
    assert stream.groups[0].pel and stream.groups[0].consumers[0].pending == [(1, 1)]


def test_unsupported_marks_travel_with_their_values() -> None:
    ks = Keyspace()
    ks.set(0, b"a", b"1")
    ks.set(0, b"b", b"2")
    ks.set(0, b"c", [b"z"])
    ks.unsupported_keys |= {(0, b"a"), (0, b"b"), (0, b"c")}
    run(ks, "RENAME", "a", "a2")
    run(ks, "MOVE", "b", 1)
    run(ks, "COPY", "c", "c2", "DB", 2)
    run(ks, "SORT", "c", "ALPHA", "STORE", "c3")
    assert ks.unsupported_keys == {(0, b"a2"), (1, b"b"), (0, b"c"), (2, b"c2"), (0, b"c3")}
    run(ks, "SWAPDB", 0, 2)
    assert ks.unsupported_keys == {(2, b"a2"), (1, b"b"), (2, b"c"), (0, b"c2"), (2, b"c3")}
    run(ks, "SET", "c2", "fresh")  # a write that replaces the value clears the mark
    run(ks, "FLUSHDB", db=2)
    assert ks.unsupported_keys == {(1, b"b")}


def test_swapdb_tells_watchers_about_every_key_of_both_dbs() -> None:
    ks = Keyspace()
    ks.set(0, b"a", b"1")
    ks.set(1, b"b", b"2")
    seen: list[tuple[int, bytes]] = []
    ks.on_key_modified = lambda db, key: seen.append((db, key))
    run(ks, "SWAPDB", 0, 1)
    assert sorted(seen) == [(0, b"a"), (0, b"b"), (1, b"a"), (1, b"b")]
    assert ks.get(0, b"b") == b"2" and ks.get(1, b"a") == b"1"


def test_flushall_keeps_functions_and_script_is_a_noop() -> None:
    ks = Keyspace()
    ks.functions[b"lib"] = Function(b"#!lua name=lib\n")
    ks.set(3, b"k", b"v")
    run(ks, "SCRIPT", "LOAD", "return 1")
    run(ks, "SCRIPT", "FLUSH")
    run(ks, "FLUSHALL", "ASYNC")
    assert ks.total_keys() == 0 and b"lib" in ks.functions


def test_rename_of_a_missing_key_is_an_apply_error() -> None:
    ks = Keyspace()
    with pytest.raises(ApplyError):
        run(ks, "RENAME", "nope", "x")
    ks.apply(0, [b"RENAME", b"nope", b"x"])
    assert (0, b"x") in ks.unsupported_keys


# ---- PUBLISH ----


def test_publish_reaches_on_publish_and_touches_no_key(master: RedisServer) -> None:
    """Also: 5.x propagates SCRIPT LOAD/FLUSH, which are applied as no-ops (not reported)."""
    with Mirror(master) as mirror, master.client() as c:
        c.script_load("return 1")
        c.script_flush()
        c.publish("news", "hello")
        with c.pipeline(transaction=True) as p:
            p.set("k", "v")
            p.publish("news", b"\x00bin")
            p.execute()
        mirror.sync()
        assert mirror.published == [(b"news", b"hello"), (b"news", b"\x00bin")]
        assert mirror.keyspace.get(0, b"news") is None
        assert_mirrors(mirror)
