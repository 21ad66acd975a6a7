"""Strings and bitmaps: every write a master sends for them is applied exactly.

The oracle is a real master (Redis 7.0, Valkey 8.1, and Redis 5.0 when
REPLPROXY_TEST_REDIS5 is set: its relative `SET EX`/`SETEX`/`PSETEX`/`GETSET` forms matter):
each mirror test drives one with redis-py through seeded random sequences, in plain
commands, MULTI/EXEC transactions and Lua scripts (whose effects arrive wrapped in
MULTI/EXEC), and `compare_with_master` lists every difference of value and TTL with what
`Mirror` built from the real replication stream.

The tricky arithmetic (BITFIELD overflow, INCRBYFLOAT's long doubles, SETRANGE padding) is
also checked by calling the appliers directly, against the answers the same master gives.
"""

from __future__ import annotations

import random
import time

import pytest
import redis

from replproxy.keyspace import ApplyError, Keyspace
from tests.harness.appliers import FixedClock, run
from tests.harness.mirror import Mirror, assert_mirrors, send
from tests.harness.servers import RedisServer, ServerKind

# ---- helpers ----


# ---- the random workload ----

KEYS = [f"s{i}" for i in range(12)]
NUMBERS = ["n0", "n1", "n2"]  # only numbers are written there: INCR* keep succeeding


class StringWorkload:
    """Random string/bitmap commands a master of `kind` accepts, with small and large
    values, numbers, TTLs short enough to expire mid-run and absolute times in the past."""

    def __init__(self, kind: ServerKind, c: redis.Redis, seed: int) -> None:
        self.v = kind.version
        self.valkey = kind.is_valkey
        self.c = c
        self.rng = random.Random(seed)

    def key(self) -> str:
        return self.rng.choice(KEYS)

    def value(self) -> bytes:
        r = self.rng.random()
        if r < 0.3:
            return str(self.rng.randrange(-(10**6), 10**6)).encode()
        if r < 0.4:
            return str(self.rng.randrange(-(2**63), 2**63)).encode()
        if r < 0.45:
            return b"%.3f" % (self.rng.random() * 1000)
        if r < 0.55:
            return self.rng.randbytes(self.rng.randrange(100, 5000))
        return self.rng.randbytes(self.rng.randrange(0, 30))

    def expiry(self) -> list[object]:
        rng = self.rng
        r = rng.random()
        if r < 0.2:
            return ["PX", rng.randrange(1, 400)]  # expires during the run
        if r < 0.5:
            return ["EX", rng.randrange(1, 1000)]
        if r < 0.7:
            return ["PX", rng.randrange(1000, 10**6)]
        if self.v >= (6, 2, 0):
            now = int(time.time() * 1000)
            if r < 0.8:
                return ["EXAT", now // 1000 + rng.randrange(2, 1000)]
            if r < 0.95:
                return ["PXAT", now + rng.randrange(1, 10**6)]
            return ["PXAT", now - rng.randrange(1, 10**6)]  # already past
        return ["EX", rng.randrange(1, 1000)]

    def command(self) -> list[object]:
        rng, k, v = self.rng, self.key(), self.version_ok
        r = rng.randrange(100)
        if r < 22:
            argv: list[object] = ["SET", k, self.value()]
            if rng.random() < 0.15:
                argv[1:3] = [rng.choice(NUMBERS), rng.randrange(-(10**6), 10**6)]
            cond = rng.random()
            if cond < 0.15:
                argv.append("NX")
            elif cond < 0.3:
                argv.append("XX")
            elif cond < 0.4 and self.valkey and self.v >= (8, 1, 0):
                current = self.c.get(k)
                argv += [
                    "IFEQ",
                    current if current is not None and rng.random() < 0.7 else self.value(),
                ]
            ttl = rng.random()
            if ttl < 0.4:
                argv += self.expiry()
            elif ttl < 0.55 and v((6, 0, 0)):
                argv.append("KEEPTTL")
            if v((6, 2, 0)) and rng.random() < 0.15 and "NX" not in argv:
                argv.append("GET")
            return argv
        if r < 26:
            return ["SETNX", k, self.value()]
        if r < 30:
            return ["SETEX", k, rng.randrange(1, 1000), self.value()]
        if r < 33:
            return [
                "PSETEX",
                k,
                rng.choice([rng.randrange(1, 400), rng.randrange(1000, 10**6)]),
                self.value(),
            ]
        if r < 36:
            return ["GETSET", k, self.value()]
        if r < 38 and v((6, 2, 0)):
            return ["GETDEL", k]
        if r < 41 and v((6, 2, 0)):
            opt: list[object] = rng.choice([[], ["PERSIST"], self.expiry()])
            return ["GETEX", k, *opt]
        if r < 45:
            argv = ["MSET"]
            for _ in range(rng.randrange(1, 4)):
                argv += [self.key(), self.value()]
            return argv
        if r < 48:
            argv = ["MSETNX"]
            for _ in range(rng.randrange(1, 3)):
                argv += [self.key(), self.value()]
            return argv
        if r < 53:
            return ["APPEND", k, self.value()]
        if r < 58:
            offset = rng.choice([0, rng.randrange(0, 40), rng.randrange(0, 3000)])
            value = b"" if rng.random() < 0.1 else self.value()[:50]
            return ["SETRANGE", k, offset, value]
        if r < 66:
            if rng.random() < 0.8:
                k = rng.choice(NUMBERS)
            name = rng.choice(["INCR", "DECR", "INCRBY", "DECRBY"])
            if name in ("INCR", "DECR"):
                return [name, k]
            return [
                name,
                k,
                rng.choice([rng.randrange(-1000, 1000), rng.randrange(-(2**62), 2**62)]),
            ]
        if r < 70:
            if rng.random() < 0.5:
                k = rng.choice(NUMBERS)
            if self.v < (6, 0, 0) and self.c.pttl(k) >= 0:
                # 5.0 propagates INCRBYFLOAT as `SET k v`: a real 5.0 replica drops the TTL
                # the master keeps. Not something a relay can (or should) paper over.
                return ["INCRBYFLOAT", "nottl", "1.5"]
            return [
                "INCRBYFLOAT",
                k,
                rng.choice(["1.5", "-0.1", "3.0e3", "1e-5", "10", "0.30000000000000004", "-7.25"]),
            ]
        if r < 78:
            return [
                "SETBIT",
                k,
                rng.choice([rng.randrange(64), rng.randrange(40000), rng.randrange(400000)]),
                rng.randrange(2),
            ]
        if r < 88:
            return self.bitfield(k)
        op = rng.choice(["AND", "OR", "XOR", "NOT"])
        srcs = [self.key() for _ in range(1 if op == "NOT" else rng.randrange(1, 4))]
        if rng.random() < 0.2:
            srcs.append("missing")
        if op == "NOT":
            srcs = srcs[:1]
        return ["BITOP", op, self.key(), *srcs]

    def version_ok(self, at_least: tuple[int, int, int]) -> bool:
        return self.v >= at_least

    def bitfield(self, k: str) -> list[object]:
        rng = self.rng
        argv: list[object] = ["BITFIELD", k]
        fail = False
        for _ in range(rng.randrange(1, 5)):
            r = rng.random()
            if r < 0.2:
                mode = rng.choice(["WRAP", "SAT", "FAIL"])
                fail = fail or mode == "FAIL"
                argv += ["OVERFLOW", mode]
                continue
            signed = rng.random() < 0.5
            bits = rng.randrange(1, 65 if signed else 64)
            if rng.random() < 0.3:
                bits = rng.choice([1, 8, 63, 64] if signed else [1, 8, 62, 63])
            typ = f"{'i' if signed else 'u'}{bits}"
            offset = (
                f"#{rng.randrange(0, 40)}"
                if rng.random() < 0.3
                else str(rng.choice([rng.randrange(0, 100), rng.randrange(0, 5000)]))
            )
            if r < 0.35:
                argv += ["GET", typ, offset]
            elif r < 0.65:
                argv += ["SET", typ, offset, self.bf_value(signed, bits)]
            else:
                argv += ["INCRBY", typ, offset, self.bf_value(signed, bits)]
        if fail:
            # Redis pads (or creates) the string even when every write FAILs, yet then does
            # not propagate the command: real replicas diverge too. A last write that cannot
            # fail makes the master propagate whenever it padded.
            argv += ["OVERFLOW", "WRAP", "INCRBY", "u1", "0", "0"]
        return argv

    def bf_value(self, signed: bool, bits: int) -> int:
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            return rng.randrange(-3, 4)
        if r < 0.6:
            lim = 1 << (bits - 1 if signed else bits)
            return rng.randrange(-2 * lim, 2 * lim)
        if r < 0.8:
            return rng.randrange(-(2**63), 2**63)
        return rng.choice([2**63 - 1, -(2**63), (1 << bits) - 1, -(1 << (bits - 1))])

    def script(self, commands: list[list[object]]) -> None:
        """One EVAL running the commands: on every version its effects arrive as MULTI/EXEC."""
        flat: list[object] = []
        for argv in commands:
            flat += [len(argv), *argv]
        send(self.c, "EVAL", LUA_RUN, 0, *flat)


LUA_RUN = """
local i = 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.pcall(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
"""


def test_string_and_bitmap_commands_are_mirrored(master: RedisServer) -> None:
    with master.client() as c, Mirror(master) as mirror:
        wl = StringWorkload(master.kind, c, seed=7)
        for _ in range(1500):
            r = wl.rng.random()
            if r < 0.08:
                with c.pipeline(transaction=True) as p:
                    for _ in range(wl.rng.randrange(1, 6)):
                        p.execute_command(*wl.command())
                    p.execute(raise_on_error=False)
            elif r < 0.13:
                wl.script([wl.command() for _ in range(wl.rng.randrange(1, 6))])
            else:
                send(c, *wl.command())
        assert_mirrors(mirror)


def test_string_sequences_with_other_seeds(master: RedisServer) -> None:
    with master.client() as c, Mirror(master) as mirror:
        for seed in (11, 12, 13):
            wl = StringWorkload(master.kind, c, seed=seed)
            for _ in range(400):
                send(c, *wl.command())
            mirror.sync()
        assert_mirrors(mirror)


def test_relative_expiry_forms_count_from_the_relay_clock(master: RedisServer) -> None:
    """5.0 sends `SET EX`, `SETEX`, `PSETEX` as given; 7.x sends `SET ... PXAT`: either way
    the mirror's TTLs land where the master's are."""
    with master.client() as c, Mirror(master) as mirror:
        c.set("a", "1", ex=100)
        c.set("b", "1", px=200_000, nx=True)
        c.execute_command("SETEX", "c", 300, "v")
        c.execute_command("PSETEX", "d", 400_000, "v")
        c.set("e", "1", ex=100)
        c.getset("e", "2")  # drops the TTL
        c.set("f", "1", ex=100)
        c.append("f", "2")  # keeps it
        c.incr("f")
        mirror.sync()
        ks = mirror.keyspace
        now = int(time.time() * 1000)
        for key, ttl in ((b"a", 100_000), (b"b", 200_000), (b"c", 300_000), (b"d", 400_000)):
            exp = ks.get_expire(0, key)
            assert exp is not None and abs(exp - now - ttl) < 2000
        assert ks.get_expire(0, b"e") is None
        assert ks.get(0, b"f") == b"13"
        assert ks.get_expire(0, b"f") is not None
        assert_mirrors(mirror)


def test_incrbyfloat_arrives_as_set_and_keeps_the_ttl_from_6_0(master: RedisServer) -> None:
    with master.client() as c, Mirror(master) as mirror:
        c.set("f", "10.5")
        c.incrbyfloat("f", 0.1)
        c.incrbyfloat("g", "5.0e3")
        c.set("h", "1", ex=1000)
        c.incrbyfloat("h", "2.5")
        mirror.sync()
        ks = mirror.keyspace
        assert ks.get(0, b"f") == b"10.6"
        assert ks.get(0, b"g") == b"5000"
        assert ks.get(0, b"h") == b"3.5"
        # 5.0 propagates `SET h 3.5`: its replicas drop the TTL (the master keeps it).
        assert (ks.get_expire(0, b"h") is None) == (master.kind.version < (6, 0, 0))
        if master.kind.version >= (6, 0, 0):
            assert_mirrors(mirror)


def test_bitop_results_and_empty_result_deletes_destination(master: RedisServer) -> None:
    with master.client() as c, Mirror(master) as mirror:
        c.set("x", b"\xff\x0f\x00abc")
        c.set("y", b"\xf0")
        c.set("dest", "old", ex=1000)
        for op in ("AND", "OR", "XOR"):
            c.bitop(op, f"{op}-xy", "x", "y", "missing")
        c.bitop("NOT", "not-x", "x")
        c.bitop("AND", "dest", "x", "y")  # replaces: no TTL any more
        c.set("dest2", "v")
        c.bitop("OR", "dest2", "missing", "missing2")  # empty: deleted
        c.bitop("NOT", "dest3", "missing")  # empty, absent: nothing
        mirror.sync()
        ks = mirror.keyspace
        assert ks.get(0, b"dest2") is None
        assert ks.get(0, b"not-x") == b"\x00\xf0\xff" + bytes(255 - ch for ch in b"abc")
        assert ks.get_expire(0, b"dest") is None
        assert_mirrors(mirror)


# ---- direct unit tests: tricky cases against known answers ----


def test_setrange_pads_with_zeros_and_keeps_the_ttl() -> None:
    ks = FixedClock()
    run(ks, "SETRANGE", "k", 5, "hi")
    assert ks.get(0, b"k") == b"\0\0\0\0\0hi"
    run(ks, "SET", "k", "hello world", "PX", 5000)
    run(ks, "SETRANGE", "k", 6, "Redis")
    assert ks.get(0, b"k") == b"hello Redis"
    run(ks, "SETRANGE", "k", 2, "XY")
    assert ks.get(0, b"k") == b"heXYo Redis"
    run(ks, "SETRANGE", "k", 14, "!")
    assert ks.get(0, b"k") == b"heXYo Redis\0\0\0!"
    assert ks.get_expire(0, b"k") == 1_005_000
    run(ks, "SETRANGE", "k", 100, "")  # empty: nothing changes
    assert ks.get(0, b"k") == b"heXYo Redis\0\0\0!"
    run(ks, "SETRANGE", "empty", 3, "")  # empty on a missing key: no key
    assert ks.get(0, b"empty") is None
    run(ks, "APPEND", "app", "")  # APPEND creates even an empty string
    assert ks.get(0, b"app") == b""


def test_set_options_relative_absolute_keepttl_and_conditions() -> None:
    ks = FixedClock(now=5_000)
    run(ks, "SET", "a", "1", "EX", 10)
    assert ks.get_expire(0, b"a") == 15_000
    run(ks, "SET", "a", "2", "PX", 10)
    assert ks.get_expire(0, b"a") == 5_010
    run(ks, "SET", "a", "3", "KEEPTTL")
    assert ks.get_expire(0, b"a") == 5_010 and ks.get(0, b"a") == b"3"
    run(ks, "SET", "a", "4", "EXAT", 7)
    assert ks.get_expire(0, b"a") == 7_000
    run(ks, "SET", "a", "5", "pxat", 1)  # in the past: stored as such on a replica
    assert ks.get(0, b"a") == b"5" and ks.get_expire(0, b"a") == 1
    run(ks, "SET", "a", "6")
    assert ks.get_expire(0, b"a") is None
    run(ks, "SET", "a", "7", "NX")
    run(ks, "SET", "b", "7", "XX")
    assert ks.get(0, b"a") == b"6" and ks.get(0, b"b") is None
    run(ks, "SET", "a", "8", "XX", "GET", "EX", 1)
    assert ks.get(0, b"a") == b"8" and ks.get_expire(0, b"a") == 6_000
    run(ks, "SET", "a", "9", "IFEQ", "nope")
    run(ks, "SET", "c", "9", "IFEQ", "x")
    assert ks.get(0, b"a") == b"8" and ks.get(0, b"c") is None
    run(ks, "SET", "a", "9", "IFEQ", "8")
    assert ks.get(0, b"a") == b"9"
    run(ks, "SET", "a", "10", "IFNE", "9")
    run(ks, "SET", "d", "10", "IFNE", "9")
    assert ks.get(0, b"a") == b"9" and ks.get(0, b"d") == b"10"
    run(ks, "SETEX", "e", 3, "v")
    run(ks, "PSETEX", "f", 3, "v")
    assert ks.get_expire(0, b"e") == 8_000 and ks.get_expire(0, b"f") == 5_003
    run(ks, "GETEX", "e", "PERSIST")
    run(ks, "GETEX", "f", "EX", 2)
    assert ks.get_expire(0, b"e") is None and ks.get_expire(0, b"f") == 7_000
    run(ks, "GETDEL", "f")
    assert ks.get(0, b"f") is None
    with pytest.raises(ApplyError):
        run(ks, "SET", "a", "1", "IFDEQ", "0123456789abcdef")


def test_msetnx_sets_all_or_nothing() -> None:
    ks = FixedClock()
    run(ks, "MSETNX", "a", "1", "b", "2")
    run(ks, "MSETNX", "b", "3", "c", "4")
    assert (ks.get(0, b"a"), ks.get(0, b"b"), ks.get(0, b"c")) == (b"1", b"2", None)
    run(ks, "SET", "t", "v", "EX", 5)
    run(ks, "MSET", "t", "x", "t", "y")
    assert ks.get(0, b"t") == b"y" and ks.get_expire(0, b"t") is None


def test_incr_family_and_overflow() -> None:
    ks = FixedClock()
    run(ks, "INCR", "n")
    run(ks, "INCRBY", "n", 41)
    run(ks, "DECRBY", "n", -8)
    run(ks, "DECR", "n")
    assert ks.get(0, b"n") == b"49"
    run(ks, "SET", "m", str(2**63 - 2), "PX", 100)
    run(ks, "INCR", "m")
    assert ks.get(0, b"m") == b"9223372036854775807" and ks.get_expire(0, b"m") == 1_000_100
    with pytest.raises(ApplyError):
        run(ks, "INCR", "m")
    ks.set(0, b"spaced", b" 1")  # string2ll refuses blanks: the master never sends this
    with pytest.raises(ValueError):
        run(ks, "INCR", "spaced")
    with pytest.raises(ApplyError):
        run(ks, "DECRBY", "n", -(2**63))
    ks.set(0, b"l", [b"x"])
    with pytest.raises(ApplyError):
        run(ks, "APPEND", "l", "x")


def test_bitfield_documentation_example_wrap_then_sat() -> None:
    """The BITFIELD page's example: u2 at 100 wraps, u2 at 102 saturates (replies 1 1, 2 2,
    3 3, 0 3)."""
    ks = FixedClock()
    argv = ("BITFIELD", "k", "INCRBY", "u2", 100, 1, "OVERFLOW", "SAT", "INCRBY", "u2", 102, 1)
    for last_byte in (0b0101, 0b1010, 0b1111, 0b0011):
        run(ks, *argv)
        assert ks.get(0, b"k") == b"\x00" * 12 + bytes([last_byte])


def _bitfield_get(value: bytes, signed: bool, bits: int, offset: int) -> int:
    raw = int.from_bytes(value + bytes(16), "big")
    total = (len(value) + 16) * 8
    field = (raw >> (total - offset - bits)) & ((1 << bits) - 1)
    if signed and field >> (bits - 1):
        field -= 1 << bits
    return field


def test_bitfield_signed_unsigned_wrap_sat_fail() -> None:
    ks = FixedClock()
    run(ks, "BITFIELD", "k", "SET", "i8", 0, 127, "INCRBY", "i8", 0, 1)  # wraps to -128
    assert ks.get(0, b"k") == b"\x80"
    run(ks, "BITFIELD", "k", "OVERFLOW", "SAT", "INCRBY", "i8", 0, -1)  # -129 -> -128
    assert ks.get(0, b"k") == b"\x80"
    run(ks, "BITFIELD", "k", "OVERFLOW", "FAIL", "INCRBY", "i8", 0, -1, "SET", "u4", "#1", 7)
    assert ks.get(0, b"k") == b"\x87"
    run(ks, "BITFIELD", "k", "SET", "u8", 0, -1)  # WRAP: low 8 bits of the two's complement
    assert ks.get(0, b"k") == b"\xff"
    run(ks, "BITFIELD", "k", "OVERFLOW", "SAT", "SET", "u8", 0, -1)  # SAT: the maximum
    assert ks.get(0, b"k") == b"\xff"
    run(ks, "BITFIELD", "k", "OVERFLOW", "SAT", "SET", "u8", 0, 256, "SET", "u3", 21, 9)
    assert ks.get(0, b"k") == b"\xff\x00\x07"
    run(ks, "BITFIELD", "s", "SET", "i64", 3, -(2**63), "INCRBY", "i64", 3, -1)
    assert _bitfield_get(ks.get(0, b"s"), True, 64, 3) == 2**63 - 1  # type: ignore[arg-type]
    run(ks, "BITFIELD", "s", "OVERFLOW", "SAT", "INCRBY", "i64", 3, 1)
    assert _bitfield_get(ks.get(0, b"s"), True, 64, 3) == 2**63 - 1  # type: ignore[arg-type]
    # FAIL still pads the string up to the farthest write, as lookupStringForBitCommand does.
    run(ks, "BITFIELD", "f", "OVERFLOW", "FAIL", "SET", "u2", 30, 9, "INCRBY", "u1", 0, 0)
    assert ks.get(0, b"f") == b"\x00" * 4
    run(ks, "BITFIELD", "g", "GET", "u8", 0)  # GET only: nothing written, nothing created
    assert ks.get(0, b"g") is None


def test_bitfield_matches_the_master_directly(master: RedisServer) -> None:
    """Random BITFIELDs run on the master and applied directly to a keyspace holding the same
    value: the resulting strings are identical (every overflow path, every width)."""
    ks = Keyspace()
    wl = StringWorkload(master.kind, None, seed=3)  # type: ignore[arg-type]
    with master.client() as c:
        # What a snapshot's AUX tells the keyspace: 5.x computes i64 fields its own way.
        ks.loaded_aux = {b"redis-ver": c.info("server")["redis_version"].encode()}
        for i in range(600):
            argv = wl.bitfield("bf")
            if i % 50 == 0:
                start = wl.rng.randbytes(wl.rng.randrange(0, 20))
                c.set("bf", start)
                ks.set(0, b"bf", start)
            try:
                c.execute_command(*argv)
            except redis.ResponseError:  # a value outside int64: the master refuses it whole
                with pytest.raises(ValueError):
                    run(ks, *argv)
                continue
            run(ks, *argv)
            assert ks.get(0, b"bf") == c.get("bf"), argv


def test_setbit_matches_the_master_directly(master: RedisServer) -> None:
    ks = Keyspace()
    rng = random.Random(5)
    with master.client() as c:
        for _ in range(300):
            argv = [
                "SETBIT",
                "b",
                rng.choice([rng.randrange(16), rng.randrange(3000)]),
                rng.randrange(2),
            ]
            c.execute_command(*argv)
            run(ks, *argv)
        assert ks.get(0, b"b") == c.get("b")


@pytest.mark.parametrize(
    ("start", "incr"),
    [
        ("10.5", "0.1"),
        ("5.0e3", "2.0e2"),
        ("0.1", "0.2"),
        (None, "3.0"),
        ("1", "-1"),
        ("-0", "0"),
        ("3", "1e-20"),
        ("1.1", "2.2"),
        ("1e300", "1e300"),
        ("123456789", "0.5"),
        ("0.30000000000000004", "1"),
        ("17", "-17.0000000000000001"),
        ("1e-15", "1e-16"),
        ("99999999999999999999", "1"),
        ("0x10", "1"),
        ("-5.5", "5.5"),
        ("2", "1.5e-7"),
    ],
)
def test_incrbyfloat_computes_like_the_master(
    master: RedisServer, start: str | None, incr: str
) -> None:
    """If an INCRBYFLOAT ever arrived verbatim, the long-double result and its `%.17Lf`
    text are the master's own."""
    ks = Keyspace()
    with master.client() as c:
        if start is not None:
            c.set("f", start)
            ks.set(0, b"f", start.encode())
        try:
            c.execute_command("INCRBYFLOAT", "f", incr)
            expected = c.get("f")
        except redis.ResponseError:
            with pytest.raises((ApplyError, ValueError)):
                run(ks, "INCRBYFLOAT", "f", incr)
            return
    run(ks, "INCRBYFLOAT", "f", incr)
    assert ks.get(0, b"f") == expected


def test_bitop_new_operations_of_redis_8_2() -> None:
    ks = FixedClock()
    ks.set(0, b"x", bytes([0b11110000, 0xFF]))
    ks.set(0, b"y1", bytes([0b11000000]))
    ks.set(0, b"y2", bytes([0b00110011]))
    run(ks, "BITOP", "DIFF", "d", "x", "y1", "y2")
    assert ks.get(0, b"d") == bytes([0b00000000, 0xFF])
    run(ks, "BITOP", "DIFF1", "d1", "x", "y1", "y2")
    assert ks.get(0, b"d1") == bytes([0b00000011, 0x00])
    run(ks, "BITOP", "ANDOR", "a", "x", "y1", "y2")
    assert ks.get(0, b"a") == bytes([0b11110000, 0x00])
    run(ks, "BITOP", "ONE", "o", "x", "y1", "y2")
    assert ks.get(0, b"o") == bytes([0b00000011, 0xFF])
    run(ks, "BITOP", "ONE", "o", "missing")
    assert ks.get(0, b"o") is None
    with pytest.raises(ApplyError):
        run(ks, "BITOP", "NOT", "n", "x", "y1")
