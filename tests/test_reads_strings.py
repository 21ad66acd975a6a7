"""Read commands of strings, bitmaps and HyperLogLogs (t_string, t_bitmap, t_hll) against a
real master: GET MGET GETRANGE SUBSTR STRLEN LCS GETBIT BITCOUNT BITPOS BITFIELD_RO PFCOUNT.

One master per server kind (module-scoped), filled with seeded random strings (short, long,
integers, binary), bitmaps of several sizes, HyperLogLogs (sparse, dense, merged, cached
and not, and values corrupted by SET), keys of the other types, then compared reply by
reply, RESP2 and RESP3, with `ReadCheck.same`: hundreds of seeded random invocations plus
the edge cases each command's C code branches on.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from replproxy.keyspace import t_hll
from tests.conftest import KINDS
from tests.harness.mirror import Mirror
from tests.harness.readcheck import ReadCheck
from tests.harness.servers import RedisServer, ServerKind, start_server
from tests.test_keyspace_hll import element_for

LLONG_MAX = 2**63 - 1
LLONG_MIN = -(2**63)


@dataclass
class Env:
    kind: ServerKind
    master: RedisServer
    mirror: Mirror
    rc: ReadCheck
    strings: list[bytes]  # string keys of every flavour (bitmaps and HLLs included)
    bitmaps: list[bytes]
    hlls: list[bytes]
    others: list[bytes]  # keys of other types
    lcs_keys: list[bytes]

    def check(self, *argv: Any) -> None:
        assert self.rc.same(*argv), argv


def _hll_header(cache: int | None, encoding: int) -> bytes:
    """An HLL header: `cache` None = invalid cache."""
    card = (cache or 0).to_bytes(8, "little")
    if cache is None:
        card = card[:7] + bytes((card[7] | 0x80,))
    return b"HYLL" + bytes((encoding, 0, 0, 0)) + card


def _fill(c: Any, rnd: random.Random) -> dict[str, list[bytes]]:
    strings: list[bytes] = []
    bitmaps: list[bytes] = []
    hlls: list[bytes] = []

    def put(key: bytes, value: bytes, into: list[bytes]) -> None:
        c.set(key, value)
        into.append(key)

    # Strings: short text and binary, empty, integers, long.
    put(b"s:empty", b"", strings)
    put(b"s:hello", b"hello", strings)
    put(b"s:crlf", b"a\r\nb\x00c\r\n", strings)
    for i in range(40):
        n = rnd.choice((1, 2, 3, 5, 8, 13, 20, 44))
        put(b"s:short:%d" % i, rnd.randbytes(n), strings)
        put(b"s:text:%d" % i, bytes(rnd.choice(b"abcdefgh ") for _ in range(n)), strings)
    for i, n in enumerate(
        (0, 1, -1, 7, 10, 12345, -987654321, LLONG_MAX, LLONG_MIN, 2**64, 10**30)
    ):
        put(b"s:int:%d" % i, b"%d" % n, strings)
    put(b"s:int:lead0", b"007", strings)
    put(b"s:int:float", b"3.14", strings)
    for i, n in enumerate((45, 300, 4096, 70000)):
        put(b"s:long:%d" % i, rnd.randbytes(n), strings)
    c.append(b"s:appended", b"abc")
    c.append(b"s:appended", b"def" * 50)
    strings.append(b"s:appended")
    c.incrby(b"s:counter", 41)
    c.incr(b"s:counter")
    strings.append(b"s:counter")
    c.setrange(b"s:ranged", 10, b"tail")
    strings.append(b"s:ranged")
    c.set(b"s:ttl", b"with a ttl", px=10**8)
    strings.append(b"s:ttl")

    # Bitmaps: SETBIT at random offsets, whole bytes of ones and zeros, far bits.
    for i, size in enumerate((1, 2, 7, 8, 9, 16, 100, 4096)):
        k = b"b:rand:%d" % i
        for _ in range(max(1, size * 3)):
            c.setbit(k, rnd.randrange(size * 8), 1)
        c.setbit(k, size * 8 - 1, rnd.getrandbits(1))
        bitmaps.append(k)
    put(b"b:ones:1", b"\xff", bitmaps)
    put(b"b:ones:9", b"\xff" * 9, bitmaps)
    put(b"b:ones:100", b"\xff" * 100, bitmaps)
    put(b"b:zeros:9", b"\x00" * 9, bitmaps)
    put(b"b:zeros:100", b"\x00" * 100, bitmaps)
    put(b"b:ones_then_zero", b"\xff" * 17 + b"\xfe", bitmaps)
    put(b"b:zero_then_one", b"\x00" * 17 + b"\x01", bitmaps)
    put(b"b:edge", b"\x80" + b"\x00" * 10 + b"\x01", bitmaps)
    put(b"b:alt", b"\xaa\x55" * 40, bitmaps)
    c.setbit(b"b:far", 100_000, 1)
    c.setbit(b"b:far", 3, 1)
    bitmaps.append(b"b:far")
    c.execute_command(
        "BITFIELD",
        b"b:fields",
        "SET",
        "i5",
        3,
        -7,
        "SET",
        "u63",
        20,
        2**62 + 12345,
        "SET",
        "i64",
        90,
        -(2**63) + 5,
        "SET",
        "u8",
        "#20",
        200,
    )
    bitmaps.append(b"b:fields")
    strings += bitmaps

    # HyperLogLogs: empty, sparse, dense (many elements, or one register > 32), merged.
    c.pfadd(b"h:empty")
    hlls.append(b"h:empty")
    for i, n in enumerate((1, 5, 40, 300)):
        k = b"h:sparse:%d" % i
        c.pfadd(k, *[rnd.randbytes(rnd.choice((1, 8, 9, 20))) for _ in range(n)])
        hlls.append(k)
    c.pfadd(b"h:dense:big", *[b"e%d" % j for j in range(6000)])
    c.pfadd(b"h:dense:big", *[b"f%d" % j for j in range(3000)])
    hlls.append(b"h:dense:big")
    c.pfadd(b"h:dense:count", element_for(77, 40, rnd), element_for(5, 51, rnd), b"x")
    hlls.append(b"h:dense:count")
    c.pfmerge(b"h:merged:sparse", b"h:sparse:0", b"h:sparse:1", b"h:sparse:2")
    c.pfmerge(b"h:merged:dense", b"h:sparse:3", b"h:dense:big")
    hlls += [b"h:merged:sparse", b"h:merged:dense"]
    # Cached: a single-key PFCOUNT stores the cardinality (the master propagates it).
    c.pfadd(b"h:cached", *[b"c%d" % j for j in range(123)])
    c.pfcount(b"h:cached")
    c.pfadd(b"h:cached:dense", *[b"d%d" % j for j in range(5000)])
    c.pfcount(b"h:cached:dense")
    hlls += [b"h:cached", b"h:cached:dense"]
    # Crafted by SET: a dense value of random registers (values up to 63), a stale cache
    # over garbage opcodes, and sparse values the C walks judge differently.
    put(b"h:dense:random", _hll_header(None, 0) + rnd.randbytes(12288), hlls)
    put(b"h:dense:cached", _hll_header(424242, 0) + rnd.randbytes(12288), hlls)
    xzero_all = b"\x7f\xff"
    put(b"h:bad:cached", _hll_header(12345, 1) + b"\x01\x02", hlls)
    put(b"h:bad:short", _hll_header(None, 1) + b"\x7f\x00", hlls)  # 16129 registers
    put(b"h:bad:zero_over", _hll_header(None, 1) + xzero_all + b"\x00", hlls)
    # A VAL past the last register: unpatched 7.0 `hllMerge` stopped there and accepted
    # it; the CVE-2025-32023 fix refuses it, as `hllSparseRegHisto` always did.
    put(b"h:bad:val_over", _hll_header(None, 1) + xzero_all + b"\x80", hlls)
    # A cut XZERO: both walks read the NUL terminator as its second byte (16383 + 1).
    put(b"h:cut_xzero", _hll_header(None, 1) + b"\x7f\xfe\x40", hlls)
    put(b"h:cut_xzero:val", _hll_header(None, 1) + b"\x88\x7f\xfd\x40", hlls)
    strings += hlls
    # Strings that are not HLLs.
    for k, v in (
        (b"n:magic", b"HYLX" + bytes(20)),
        (b"n:enc2", _hll_header(None, 2) + b"x"),
        (b"n:dense_len", _hll_header(None, 0) + bytes(100)),
        (b"n:tiny", b"HYLL"),
        (b"n:header_only", _hll_header(None, 1)),
    ):
        put(k, v, strings)

    # LCS material: small alphabets make long common subsequences and many ranges.
    lcs_keys = []
    for i in range(12):
        alpha = rnd.choice((b"ab", b"abc", b"acgt", b"xyz01"))
        n = rnd.choice((0, 1, 3, 10, 40, 120, 700))
        k = b"l:%d" % i
        c.set(k, bytes(rnd.choice(alpha) for _ in range(n)))
        lcs_keys.append(k)
    c.set(b"l:ohmytext", b"ohmytext")
    c.set(b"l:mynewtext", b"mynewtext")
    c.set(b"l:big:0", bytes(rnd.choice(b"acgt") for _ in range(3000)))
    c.set(b"l:big:1", bytes(rnd.choice(b"acgt") for _ in range(2500)))
    lcs_keys += [b"l:ohmytext", b"l:mynewtext", b"l:big:0", b"l:big:1"]
    strings += lcs_keys

    # Other types.
    c.rpush(b"o:list", b"a", b"b")
    c.hset(b"o:hash", b"f", b"v")
    c.sadd(b"o:set", b"m")
    c.zadd(b"o:zset", {b"m": 1.5})
    c.xadd(b"o:stream", {b"f": b"v"})
    others = [b"o:list", b"o:hash", b"o:set", b"o:zset", b"o:stream"]
    return {"strings": strings, "bitmaps": bitmaps, "hlls": hlls, "others": others, "lcs": lcs_keys}


@pytest.fixture(scope="module", params=KINDS, ids=[k.name for k in KINDS])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    kind: ServerKind = request.param
    server = start_server(kind)
    mirror: Mirror | None = None
    rc: ReadCheck | None = None
    try:
        with server.client() as c:
            keys = _fill(c, random.Random(f"reads-strings-{kind.name}"))
        mirror = Mirror(server)
        mirror.sync()
        rc = ReadCheck(server, mirror)
        yield Env(
            kind,
            server,
            mirror,
            rc,
            keys["strings"],
            keys["bitmaps"],
            keys["hlls"],
            keys["others"],
            keys["lcs"],
        )
    finally:
        if rc is not None:
            rc.close()
        if mirror is not None:
            mirror.close()
        server.stop()


# Numbers that hit the index arithmetic's branches, and text string2ll refuses.
_EDGE_INTS = [
    0,
    1,
    -1,
    2,
    -2,
    3,
    7,
    8,
    9,
    -7,
    -8,
    -9,
    15,
    16,
    17,
    -16,
    -17,
    100,
    -100,
    1000,
    -1000,
    100_000,
    2**31,
    -(2**31),
    2**32,
    LLONG_MAX,
    LLONG_MIN,
    LLONG_MAX - 1,
    LLONG_MIN + 1,
]
_BAD_INTS = [
    b"abc",
    b"",
    b"1.5",
    b" 1",
    b"1 ",
    b"+1",
    b"01",
    b"-0",
    b"0x10",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"1\x00",
]


def _num(rnd: random.Random, scale: int) -> bytes | int:
    r = rnd.random()
    if r < 0.45:
        return rnd.randint(-2 * scale - 3, 2 * scale + 3)
    if r < 0.93:
        return rnd.choice(_EDGE_INTS)
    return rnd.choice(_BAD_INTS)


def _any_key(env: Env, rnd: random.Random, pool: list[bytes]) -> bytes:
    r = rnd.random()
    if r < 0.75:
        return rnd.choice(pool)
    if r < 0.85:
        return b"missing:%d" % rnd.randrange(5)
    if r < 0.95:
        return rnd.choice(env.others)
    return rnd.choice(env.strings)


def _strlen_of(env: Env, key: bytes) -> int:
    v = env.mirror.keyspace.dbs[0].get(key)
    return len(v) if isinstance(v, bytes) else 10


# ---- strings ----


def test_get_strlen_every_key(env: Env) -> None:
    for k in [*env.strings, *env.others, b"missing", b""]:
        env.check("get", k)
        env.check("strlen", k)


def test_mget_random_key_lists(env: Env) -> None:
    rnd = random.Random(1)
    pool = [*env.strings, *env.others, b"missing:1", b"missing:2"]
    env.check("mget", b"missing")
    env.check("mget", b"o:list")
    env.check("mget", *env.strings)
    for _ in range(60):
        keys = [rnd.choice(pool) for _ in range(rnd.randint(1, 12))]
        env.check("mget", *keys)


def test_getrange_and_substr(env: Env) -> None:
    rnd = random.Random(2)
    fixed = [
        (0, -1),
        (0, 0),
        (-1, -1),
        (-10, -7),
        (3, -7),
        (-1, -2),
        (-2, -1),
        (5, 3),
        (LLONG_MIN, LLONG_MAX),
        (LLONG_MAX, LLONG_MIN),
        (-100, 100),
        (100, 200),
        (0, LLONG_MAX),
        (LLONG_MIN, -1),
        (-3, 2),
    ]
    for k in (b"s:hello", b"s:empty", b"s:int:5", b"s:long:2", b"missing", b"o:hash"):
        for start, end in fixed:
            env.check("getrange", k, start, end)
    for bad in _BAD_INTS:
        env.check("getrange", b"s:hello", bad, 1)
        env.check("getrange", b"s:hello", 1, bad)
        env.check("getrange", b"o:list", bad, 1)  # the numbers are parsed before the type
        env.check("getrange", b"missing", 0, bad)
    for _ in range(250):
        k = _any_key(env, rnd, env.strings)
        n = _strlen_of(env, k)
        env.check(rnd.choice(("getrange", "substr", "GETRANGE")), k, _num(rnd, n), _num(rnd, n))


def test_lcs_options_and_errors(env: Env) -> None:
    rnd = random.Random(3)
    a, b = b"l:ohmytext", b"l:mynewtext"
    option_sets: list[list[Any]] = [
        [],
        ["LEN"],
        ["IDX"],
        ["idx", "withmatchlen"],
        ["IDX", "MINMATCHLEN", 4],
        ["IDX", "MINMATCHLEN", 2, "WITHMATCHLEN"],
        ["MINMATCHLEN", -5, "IDX"],
        ["LEN", "MINMATCHLEN", 3],
        ["WITHMATCHLEN"],
        ["IDX", "IDX", "WITHMATCHLEN"],
        ["LEN", "LEN"],
        ["MinMatchLen", 0, "idx"],
        # errors
        ["LEN", "IDX"],
        ["IDX", "LEN"],
        ["FOO"],
        ["MINMATCHLEN"],
        ["IDX", "MINMATCHLEN"],
        ["MINMATCHLEN", "x"],
        ["MINMATCHLEN", "1.5", "LEN", "IDX"],
        ["LEN", "IDX", "FOO"],
        ["IDX\x00junk"],
        ["LENGTH"],
    ]
    for opts in option_sets:
        env.check("lcs", a, b, *opts)
        env.check("lcs", b, a, *opts)
        env.check("lcs", a, b"missing", *opts)
        env.check("lcs", b"o:list", a, *opts)  # the type error comes before the options
        env.check("lcs", a, b"o:zset", *opts)
        env.check("lcs", b"missing", b"missing2", *opts)
        env.check("lcs", a, a, *opts)
    for _ in range(120):
        x = _any_key(env, rnd, env.lcs_keys)
        y = _any_key(env, rnd, env.lcs_keys)
        opts = rnd.choice(option_sets[:12])
        if rnd.random() < 0.4:
            opts = ["IDX", "MINMATCHLEN", rnd.randint(-1, 6)] + (
                ["WITHMATCHLEN"] if rnd.random() < 0.5 else []
            )
        env.check("lcs", x, y, *opts)
    env.check("lcs", b"l:big:0", b"l:big:1")
    env.check("lcs", b"l:big:0", b"l:big:1", "IDX", "MINMATCHLEN", 5, "WITHMATCHLEN")
    env.check("lcs", b"l:big:1", b"s:long:2", "LEN")


def test_lcs_crafted_pairs(env: Env) -> None:
    """Pairs that end the walk on a string's first byte, share prefixes or suffixes, hold
    one another, or have ties everywhere (the traceback's left-before-up choice)."""
    rnd = random.Random(9)
    pairs: list[tuple[bytes, bytes]] = []
    for _ in range(25):
        x = bytes(rnd.choice(b"abc") for _ in range(rnd.randint(1, 60)))
        y = bytearray(x)
        for _ in range(rnd.randint(0, 6)):
            pos = rnd.randrange(len(y) + 1)
            if rnd.random() < 0.5 or not y:
                y[pos:pos] = bytes((rnd.choice(b"abcd"),))
            else:
                del y[min(pos, len(y) - 1)]
        pairs += [(x, bytes(y)), (x, x), (x, x[3:]), (x[:-3], x), (x, x[::-1]), (b"", x)]
    pairs += [
        (b"ab" * 30, b"ba" * 30),
        (b"\x00\xff" * 9, b"\xff\x00" * 9),
        (b"aaaa", b"aaaaaaaa"),
        (b"abcabc", b"cbacba"),
        (b"a", b"a"),
        (b"a", b"b"),
    ]
    with env.master.client() as c:
        for i, (x, z) in enumerate(pairs):
            c.mset({b"lp:%d:a" % i: x, b"lp:%d:b" % i: z})
    env.mirror.sync()
    for i in range(len(pairs)):
        a, b = b"lp:%d:a" % i, b"lp:%d:b" % i
        env.check("lcs", a, b)
        env.check("lcs", b, a, "LEN")
        env.check("lcs", a, b, "IDX", "WITHMATCHLEN")
        env.check("lcs", b, a, "IDX", "MINMATCHLEN", rnd.randint(0, 4))


def test_lcs_table_over_proto_max_bulk_len(env: Env) -> None:
    """(len(a)+1) * (len(b)+1) * 4 > 512 MB: refused before any work, options first."""
    with env.master.client() as c:
        c.set(b"l:huge:0", b"a" * 11600)
        c.set(b"l:huge:1", b"b" * 11600)
    env.mirror.sync()
    env.check("lcs", b"l:huge:0", b"l:huge:1")
    env.check("lcs", b"l:huge:0", b"l:huge:1", "LEN")
    env.check("lcs", b"l:huge:0", b"l:huge:1", "BAD")
    env.check("lcs", b"l:huge:0", b"s:short:1", "IDX")


# ---- bitmaps ----


def test_getbit(env: Env) -> None:
    rnd = random.Random(4)
    offsets: list[Any] = [
        0,
        1,
        7,
        8,
        9,
        4294967295,
        4294967296,
        2**40,
        -1,
        LLONG_MAX,
        "abc",
        "",
        "#1",
        "1.0",
        "+1",
        "01",
        "-0",
    ]
    for k in [*env.bitmaps, b"s:int:5", b"s:empty", b"missing", b"o:set"]:
        for off in offsets:
            env.check("getbit", k, off)
    for _ in range(300):
        k = _any_key(env, rnd, env.bitmaps)
        n = _strlen_of(env, k) * 8
        env.check("getbit", k, rnd.choice((rnd.randrange(n + 20), rnd.randrange(n + 1) - 1)))


def _bitcount_argv(rnd: random.Random, key: bytes, n: int) -> list[Any]:
    shape = rnd.random()
    unit = rnd.choice(("BIT", "BYTE", "bit", "byte", "Bit", "bits", "", "BYTE\x00x"))
    scale = n * 8 if unit.lower().startswith("bit") else n
    if shape < 0.1:
        return [key]
    if shape < 0.25:
        return [key, _num(rnd, scale)]  # a lone start: Valkey 8 only
    if shape < 0.6:
        return [key, _num(rnd, scale), _num(rnd, scale)]
    if shape < 0.95:
        return [key, _num(rnd, scale), _num(rnd, scale), unit]
    return [key, 1, 2, "BIT", "extra"]


def test_bitcount(env: Env) -> None:
    rnd = random.Random(5)
    for k in [*env.bitmaps, b"s:empty", b"s:int:5", b"missing", b"o:zset"]:
        env.check("bitcount", k)
        for start, end in [
            (0, -1),
            (0, 0),
            (-1, -1),
            (-5, -1),
            (-1, -5),
            (1, 0),
            (2, 2),
            (LLONG_MIN, LLONG_MAX),
            (-100, 100),
        ]:
            env.check("bitcount", k, start, end)
            env.check("bitcount", k, start, end, "BIT")
            env.check("bitcount", k, start, end, "BYTE")
        env.check("bitcount", k, 1)
        env.check("bitcount", k, -3)
        env.check("bitcount", k, "x")
        env.check("bitcount", k, -1, -5, "FOO")  # 7.0: 0 before the unit is checked
        env.check("bitcount", k, 1, "x", "FOO")
        env.check("bitcount", k, "x", 1, "BIT")
        env.check("bitcount", k, 1, 2, "BIT", "more")
    for _ in range(400):
        k = _any_key(env, rnd, env.bitmaps)
        env.check("bitcount", *_bitcount_argv(rnd, k, _strlen_of(env, k)))


def _bitpos_argv(rnd: random.Random, key: bytes, n: int) -> list[Any]:
    bit: Any = rnd.choice((0, 1, 0, 1, 0, 1, 2, -1, "x", "01"))
    unit = rnd.choice(("BIT", "BYTE", "bit", "byte", "bite", "BIT\x00"))
    scale = n * 8 if unit.lower().startswith("bit") else n
    shape = rnd.random()
    if shape < 0.15:
        return [key, bit]
    if shape < 0.35:
        return [key, bit, _num(rnd, scale)]
    if shape < 0.6:
        return [key, bit, _num(rnd, scale), _num(rnd, scale)]
    if shape < 0.97:
        return [key, bit, _num(rnd, scale), _num(rnd, scale), unit]
    return [key, bit, 0, -1, "BIT", "extra"]


def test_bitpos(env: Env) -> None:
    rnd = random.Random(6)
    for k in [*env.bitmaps, b"s:empty", b"s:int:5", b"missing", b"o:list"]:
        for bit in (0, 1):
            env.check("bitpos", k, bit)
            for start in (0, 1, 2, -1, -2, 100, -100):
                env.check("bitpos", k, bit, start)
            for start, end in [
                (0, -1),
                (0, 0),
                (1, 1),
                (-1, -1),
                (2, 1),
                (1, 3),
                (-3, -2),
                (7, 8),
                (3, 12),
                (8, 15),
                (9, 9),
                (0, 7),
                (1, 6),
                (6, 70),
                (-9, -1),
                (LLONG_MIN, LLONG_MAX),
            ]:
                env.check("bitpos", k, bit, start, end)
                env.check("bitpos", k, bit, start, end, "BIT")
                env.check("bitpos", k, bit, start, end, "BYTE")
        env.check("bitpos", k, 2)
        env.check("bitpos", k, "x", 0, "x")
        env.check("bitpos", k, 1, "x")
        env.check("bitpos", k, 0, 1, "x")
        env.check("bitpos", k, 0, 1, 2, "FOO")
        env.check("bitpos", k, 0, "x", 2, "FOO")
        env.check("bitpos", k, 0, 1, 2, "BIT", "more")
    for _ in range(500):
        k = _any_key(env, rnd, env.bitmaps)
        env.check("bitpos", *_bitpos_argv(rnd, k, _strlen_of(env, k)))


_TYPES = ["i1", "u1", "i5", "u5", "i8", "u8", "i16", "u16", "i31", "u32", "i63", "u63", "i64"]
_BAD_TYPES = [
    "u64",
    "i65",
    "i0",
    "u0",
    "x8",
    "I8",
    "U8",
    "i",
    "",
    "i-1",
    "i08",
    "i 8",
    "i8\x00zz",
    "u63\x00",
]


def _bitfield_ro_argv(rnd: random.Random, key: bytes, n: int) -> list[Any]:
    argv: list[Any] = [key]
    for _ in range(rnd.randint(0, 5)):
        r = rnd.random()
        t = rnd.choice(_TYPES) if rnd.random() < 0.93 else rnd.choice(_BAD_TYPES)
        bits = max(1, int(t[1:])) if t[1:].isdigit() else 8
        if r < 0.75:
            if rnd.random() < 0.25:
                off: Any = f"#{rnd.randint(0, max(1, n // bits + 2))}"
            elif rnd.random() < 0.05:
                off = rnd.choice(
                    (
                        "#-1",
                        "#x",
                        "#",
                        "-1",
                        "x",
                        4294967295,
                        4294967296,
                        "#2305843009213693952",
                        "#2305843009213693953",
                        "##1",
                    )
                )
            else:
                off = rnd.randint(0, n + 70)
            argv += ["GET" if rnd.random() < 0.8 else "get", t, off]
        elif r < 0.85:
            argv += ["OVERFLOW", rnd.choice(("WRAP", "SAT", "fail", "BAD"))]
        elif r < 0.95:
            argv += [rnd.choice(("SET", "INCRBY")), t, rnd.randint(0, 64), rnd.choice((5, -3, "x"))]
        else:
            argv += rnd.choice((["GET", "i8"], ["NOPE", "i8", 0], ["OVERFLOW"], ["SET", "i8", 0]))
    return argv


def test_bitfield_ro(env: Env) -> None:
    rnd = random.Random(7)
    k = b"b:fields"
    env.check("bitfield_ro", k)
    env.check("bitfield_ro", b"missing")
    env.check("bitfield_ro", b"o:hash")
    env.check("bitfield_ro", b"o:hash", "GET", "i8", 0)
    env.check("bitfield_ro", b"missing", "GET", "i64", 0, "GET", "u63", 1)
    env.check(
        "bitfield_ro",
        k,
        "GET",
        "i5",
        3,
        "GET",
        "u63",
        20,
        "GET",
        "i64",
        90,
        "GET",
        "u8",
        "#20",
        "GET",
        "i64",
        0,
        "GET",
        "u1",
        0,
    )
    env.check("bitfield_ro", k, "SET", "u8", 0, 1)
    env.check("bitfield_ro", b"o:hash", "SET", "u8", 0, 1)  # the GET-only error wins
    env.check("bitfield_ro", k, "INCRBY", "u8", 0, 1, "GET", "u8", 0)
    env.check("bitfield_ro", k, "GET", "u8", 0, "SET", "u8", 0, "x")
    env.check("bitfield_ro", k, "OVERFLOW", "SAT", "GET", "u8", 0)
    env.check("bitfield_ro", k, "OVERFLOW", "nope", "GET", "u8", 0)
    env.check("bitfield_ro", k, "GET", "u8")
    env.check("bitfield_ro", k, "GET")
    env.check("bitfield_ro", k, "get\x00x", "u8", 0)
    for t in _TYPES + _BAD_TYPES:
        env.check("bitfield_ro", k, "GET", t, 17)
        env.check("bitfield_ro", k, "GET", t, "#3")
    for off in (
        "#2305843009213693952",
        "#2305843009213693953",
        "#-1",
        "#x",
        "-1",
        4294967295,
        4294967296,
        "#536870911",
        "#536870912",
    ):
        env.check("bitfield_ro", b"s:hello", "GET", "u8", off)
        env.check("bitfield_ro", b"s:hello", "GET", "i64", off)
    for _ in range(300):
        key = _any_key(env, rnd, env.bitmaps)
        env.check("bitfield_ro", *_bitfield_ro_argv(rnd, key, _strlen_of(env, key) * 8))


# ---- HyperLogLog ----


def test_pfcount_single_and_union(env: Env) -> None:
    rnd = random.Random(8)
    for k in [
        *env.hlls,
        *env.strings[:5],
        b"n:magic",
        b"n:enc2",
        b"n:dense_len",
        b"n:tiny",
        b"n:header_only",
        b"s:int:5",
        b"missing",
        *env.others,
    ]:
        env.check("pfcount", k)
    env.mirror.sync()  # the master's PFCOUNTs stored caches: now both sides have them
    ks = env.mirror.keyspace
    assert ks.apply_errors == {} and ks.unsupported_keys == set()
    with env.master.client() as c:
        for k in env.hlls:
            assert c.get(k) == ks.dbs[0][k], k  # cut XZERO values included
    for k in env.hlls:
        env.check("pfcount", k)
    env.check("pfcount", b"missing", b"missing2")
    env.check("pfcount", b"h:bad:val_over", b"h:sparse:1")
    env.check("pfcount", b"h:bad:cached", b"h:sparse:1")
    env.check("pfcount", b"h:sparse:1", b"o:list", b"h:bad:short")
    env.check("pfcount", b"h:sparse:1", b"h:bad:short", b"o:list")
    env.check("pfcount", b"h:sparse:1", b"n:magic")
    pool = [*env.hlls, *env.hlls, b"missing", b"n:magic", b"o:set", b"s:hello"]
    for _ in range(120):
        env.check("pfcount", *[rnd.choice(pool) for _ in range(rnd.randint(2, 5))])
    good = [k for k in env.hlls if not k.startswith(b"h:bad")]
    env.check("pfcount", *good)


def test_pfcount_caches_its_count_as_a_replica_does(env: Env) -> None:
    """A client's single-key PFCOUNT with an invalid cache stores the count in the relay's
    copy, as `pfcountCommand` does on a real replica: the bytes become what the master's own
    PFCOUNT makes of its copy (and then replicates, changing nothing more here). A
    multi-key PFCOUNT stores nothing anywhere."""
    with env.master.client() as c:
        c.pfadd(b"h:fresh", *[b"z%d" % j for j in range(77)])
        c.pfadd(b"h:fresh:dense", *[b"y%d" % j for j in range(4000)])
    env.mirror.sync()
    ks = env.mirror.keyspace
    for k in (b"h:fresh", b"h:fresh:dense"):
        before = ks.dbs[0][k]
        assert isinstance(before, bytes) and t_hll.cached_count(before) is None
        mine_union = env.rc.relay_reply(["pfcount", k, b"h:sparse:2"])
        assert ks.dbs[0][k] is before  # a union is computed, never stored
        mine = env.rc.relay_reply(["pfcount", k])
        cached = ks.dbs[0][k]
        assert isinstance(cached, bytes) and t_hll.cached_count(cached) == int(mine[1:-2])
        assert ks.encodings[0].get(k) == b"raw"
        theirs = env.rc.master_reply(["pfcount", k])  # the master stores its cache too
        assert mine == theirs
        assert mine_union == env.rc.master_reply(["pfcount", k, b"h:sparse:2"])
        with env.master.client() as c:
            assert c.get(k) == cached
        env.mirror.sync()
        assert ks.dbs[0][k] == cached


# ---- logically expired keys ----


def test_expired_keys_read_as_missing(env: Env) -> None:
    """Keys whose TTL passed while the master's active expiry was off: still in the mirror
    (no DEL came), still in the master's dict; every read must see them missing. Reading
    them on the master deletes them there, so each comparison runs before any sync."""
    names = [b"x:str", b"x:bitmap", b"x:hll", b"x:int"]
    with env.master.client() as c:
        c.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 0)
        try:
            c.set(b"x:str", b"expired value")
            c.setbit(b"x:bitmap", 77, 1)
            c.pfadd(b"x:hll", b"a", b"b", b"c")
            c.set(b"x:int", b"12345")
            for k in names:
                c.pexpire(k, 1)
            env.mirror.sync()
            time.sleep(0.05)
            ks = env.mirror.keyspace
            assert all(k in ks.dbs[0] for k in names)
            for k in names:
                env.check("get", k)
                env.check("strlen", k)
                env.check("getrange", k, 0, -1)
                env.check("getbit", k, 77)
                env.check("bitcount", k)
                env.check("bitcount", k, 0, -1, "BIT")
                env.check("bitpos", k, 1)
                env.check("bitpos", k, 0, 0, -1)
                env.check("bitfield_ro", k, "GET", "u8", 0)
                if not ks.dialect.pfcount_sees_expired_keys:
                    # (before 7.0 a replica's PFCOUNT finds the key, the master's deletes
                    # it: test_reads_differential checks that against a real replica)
                    env.check("pfcount", k)
                env.check("pfcount", k, b"h:sparse:1")
                env.check("lcs", k, b"s:hello", "IDX")
                env.check("mget", k, b"s:hello", k)
            assert all(k in ks.dbs[0] for k in names)  # read as missing, never deleted
        finally:
            c.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 1)
    env.mirror.sync()


def test_unsupported_key_is_refused_not_served_stale(env: Env) -> None:
    """A key whose last write could not be applied is an error on every read of it (MGET
    included), never its stale value; the other keys of an MGET do not matter."""
    from replproxy.keyspace.reads import unsupported_key_error
    from replproxy.resp import reply

    ks = env.mirror.keyspace
    key = b"s:hello"
    ks.unsupported_keys.add((0, key))
    try:
        expected = reply.error(unsupported_key_error(key))
        calls: list[list[bytes | str | int]] = [
            ["get", key],
            ["mget", b"s:short:1", key, b"missing"],
            ["strlen", key],
            ["getrange", key, 0, -1],
            ["substr", key, 0, 1],
            ["lcs", key, b"l:1"],
            ["lcs", b"l:1", key, "LEN"],
            ["getbit", key, 3],
            ["bitcount", key],
            ["bitcount", key, 0, -1, "BIT"],
            ["bitpos", key, 1],
            ["bitpos", key, 0, 1, 2],
            ["bitfield_ro", key, "GET", "u8", 0],
            ["pfcount", key],
            ["pfcount", b"h:sparse:1", key],
        ]
        table = ks.dialect.command_table
        for argv in calls:
            if table.get(str(argv[0]).encode()) is None:  # LCS, BITFIELD_RO: 7.0+, 6.0+
                continue
            for proto in env.rc.protos:
                assert env.rc.relay_reply(argv, proto) == expected, argv
        assert env.rc.relay_reply(["mget", b"s:short:1"]) == env.rc.master_reply(
            ["mget", b"s:short:1"]
        )
    finally:
        ks.unsupported_keys.discard((0, key))
