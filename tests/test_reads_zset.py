"""Sorted-set and geo read commands, judged byte for byte against a real master.

One master per server kind for the whole module, filled with seeded random sorted sets (small
listpack ones and big skiplist ones, written before the mirror exists so they come from the
snapshot, and after so they come from the stream), equal-score sets for lex ranges, scores
whose text differs between `%.17g` and the shortest form, -0/inf/-inf, binary members, plain
sets for ZUNION and friends, geo sets with real coordinates, wrong types and missing keys.
Every invocation is compared in RESP2 and RESP3 (`ReadCheck.same`); ZRANDMEMBER and the
hash-ordered ZSCAN of big sets are checked by their properties.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import KINDS
from tests.harness.mirror import Mirror, raw_client
from tests.harness.readcheck import ReadCheck, reply_end
from tests.harness.servers import RedisServer, ServerKind, start_server

# ---- data ----

SPECIAL_SCORES = [
    "inf",
    "-inf",
    "0",
    "1e-300",
    "1e300",
    "0.1",
    "2.5e-8",
    "1e21",
    "-1.5e-7",
    "123456789012345678",
    "4611686018427387904",
    "4611686018427387905",
    "9007199254740993",
    "0.30000000000000004",
    "1.7976931348623157e308",
    "5e-324",
    "100",
    "-100",
    "3.141592653589793",
    "1e16",
    "1e-5",
    "123e-20",
]


def rand_score(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.2:
        return str(rng.randint(-1000, 1000))
    if r < 0.35:
        return repr(rng.uniform(-1e6, 1e6))  # 16-17 significant digits
    if r < 0.45:
        return repr(rng.random() / 3)
    if r < 0.55:
        return rng.choice(SPECIAL_SCORES)
    if r < 0.7:
        return str(rng.randint(-3, 3))  # many equal scores
    if r < 0.8:
        return repr(rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30))
    return repr(round(rng.uniform(-100, 100), rng.randint(0, 6)))


def rand_member(rng: random.Random, i: int) -> bytes:
    r = rng.random()
    if r < 0.6:
        return b"m%d" % i
    if r < 0.75:
        return rng.choice([b"%d" % rng.randint(-(10**6), 10**6), b"0%d" % i, b" %d" % i])
    if r < 0.9:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + b"%d" % i
    return rng.choice([b"a\r\nb", b"x\x00y", b"\xff\xfe", b"*", b"[", b"\\"]) + b"%d" % i


def make_zset(rng: random.Random, n: int) -> dict[bytes, str]:
    return {rand_member(rng, i): rand_score(rng) for i in range(n)}


CITIES = [
    ("Paris", 2.3522219, 48.856614),
    ("London", -0.1277583, 51.5073509),
    ("Berlin", 13.404954, 52.5200066),
    ("Madrid", -3.7037902, 40.4167754),
    ("Rome", 12.4963655, 41.9027835),
    ("Lisbon", -9.1393366, 38.7222524),
    ("Vienna", 16.3738189, 48.2081743),
    ("Prague", 14.4378005, 50.0755381),
    ("Warsaw", 21.0122287, 52.2296756),
    ("Dublin", -6.2603097, 53.3498053),
    ("Amsterdam", 4.8951679, 52.3702157),
    ("Brussels", 4.3517103, 50.8503396),
    ("Zurich", 8.541694, 47.3768866),
    ("Oslo", 10.7522454, 59.9138688),
    ("Stockholm", 18.0685808, 59.3293235),
    ("Helsinki", 24.9383791, 60.1698557),
    ("Athens", 23.7275388, 37.9838096),
    ("Istanbul", 28.9783589, 41.0082376),
    ("NewYork", -74.0059728, 40.7127753),
    ("Tokyo", 139.6917064, 35.6894875),
    ("Sydney", 151.2092955, -33.8688197),
    ("SaoPaulo", -46.6333094, -23.5505199),
    ("Reykjavik", -21.9426354, 64.146582),
    ("Anchorage", -149.9002778, 61.2180556),
    ("Suva", 178.4417, -18.1416),
    ("Apia", -171.7514, -13.8333),
    ("McMurdo", 166.6863, -77.8419),
    ("Longyearbyen", 15.6356, 78.2232),
    ("Quito", -78.4678, -0.1807),
    ("Greenwich", 0.0, 51.4779),
    ("Twin1", 2.2945, 48.8584),
    ("Twin2", 2.2945, 48.8584),
    ("Twin3", 2.2945, 48.8584),
    ("Edge1", 180.0, 85.05112878),
    ("Edge2", -180.0, -85.05112878),
    ("Meridian", 2.3522219, 47.0),
]


@dataclass
class Env:
    kind: ServerKind
    server: RedisServer
    mirror: Mirror
    rc: ReadCheck
    zsets: dict[bytes, dict[bytes, str]]
    noscores: bool  # ZSCAN NOSCORES (Valkey 8)

    def same(self, *argv: Any) -> None:
        assert self.rc.same(*argv), argv


def _fill_zsets(c: Any, rng: random.Random, prefix: str) -> dict[bytes, dict[bytes, str]]:
    zsets: dict[bytes, dict[bytes, str]] = {}
    sizes = {"lp": 25, "lp2": 120, "sk": 300, "sk2": 1000}
    for name, n in sizes.items():
        zsets[f"{prefix}{name}".encode()] = make_zset(rng, n)
    # Members over 64 bytes make a skiplist of a handful of members.
    long_zset = {b"L" * 70: "1.5", b"a": "0.1", b"b": "2", b"c": "-0", b"d": "-inf"}
    zsets[f"{prefix}skshort".encode()] = long_zset
    zsets[f"{prefix}eq".encode()] = {b"%c%d" % (97 + i % 26, i): "0" for i in range(40)}
    eqbig = {rand_member(rng, i): "7" for i in range(300)}
    eqbig.update({b"": "7", b"a": "7", b"b": "7", b"ab": "7", b"\xff": "7"})
    zsets[f"{prefix}eqbig".encode()] = eqbig
    zsets[f"{prefix}ints".encode()] = {b"%d" % v: str(v % 7) for v in range(-20, 20)}
    for key, z in zsets.items():
        items = list(z.items())
        # The long member first: on 7.0 the first member decides the encoding.
        if key.endswith(b"skshort"):
            items.sort(key=lambda kv: -len(kv[0]))
        for j in range(0, len(items), 100):
            c.execute_command("ZADD", key, *[x for m, s in items[j : j + 100] for x in (s, m)])
    # A -0 kept by a skiplist (a listpack stores 0).
    c.execute_command("ZADD", f"{prefix}sk".encode(), "-0", b"negzero")
    zsets[f"{prefix}sk".encode()][b"negzero"] = "-0"
    return zsets


def _fill_other(c: Any, rng: random.Random) -> None:
    c.execute_command("SADD", "set:a", *[b"m%d" % i for i in range(0, 60, 2)], b"x", b"y")
    c.execute_command("SADD", "set:i", *range(0, 30))
    c.execute_command("SADD", "set:big", *[b"m%d" % i for i in range(0, 600, 3)])
    c.execute_command("SET", "str", "hello")
    c.execute_command("RPUSH", "list", "a", "b")
    c.execute_command("HSET", "hash", "f", "v")
    args: list[Any] = []
    for name, lon, lat in CITIES:
        args += [lon, lat, name]
    c.execute_command("GEOADD", "geo:cities", *args)
    pts: list[Any] = []
    for i in range(400):
        pts += [rng.uniform(-5, 8), rng.uniform(42, 51), f"p{i}"]
        if rng.random() < 0.1:
            pts += [pts[-3], pts[-2], f"twin{i}"]
    c.execute_command("GEOADD", "geo:big", *pts)
    c.execute_command("GEOADD", "geo:small", *pts[:60])
    # A zset that GEOADD did not make: GEOPOS & co decode whatever the score is.
    c.execute_command(
        "ZADD",
        "geo:weird",
        "-1",
        "a",
        "1e30",
        "b",
        "-1e30",
        "c",
        "inf",
        "d",
        "-inf",
        "e",
        "9223372036854775808",
        "f",
        "1.5",
        "g",
        "18446744073709551616",
        "h",
        "13835058055282163712",
        "i",
        "-9223372036854775809",
        "j",
        "3471579339700058",
        "k",
    )


@pytest.fixture(scope="module", params=KINDS, ids=[k.name for k in KINDS])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    kind: ServerKind = request.param
    server = start_server(kind)
    try:
        rng = random.Random(20240607)
        with raw_client(server) as c:
            zsets = _fill_zsets(c, rng, "pre:")  # these reach the mirror in the snapshot
            _fill_other(c, rng)
            mirror = Mirror(server)
            zsets.update(_fill_zsets(c, rng, "z:"))  # these through the stream
            c.execute_command("ZADD", "z:sk2", "1", "added-later")
            c.execute_command("ZADD", "z:glob", *[x for m in GLOB_MEMBERS for x in (0, m)])
            zsets[b"z:sk2"][b"added-later"] = "1"
        mirror.sync()
        rc = ReadCheck(server, mirror)
        yield Env(kind, server, mirror, rc, zsets, kind.dialect.scan_noscores)
        rc.close()
        mirror.close()
    finally:
        server.stop()


ZKEYS = [
    b"pre:lp",
    b"pre:lp2",
    b"pre:sk",
    b"pre:skshort",
    b"z:lp",
    b"z:lp2",
    b"z:sk",
    b"z:sk2",
    b"z:skshort",
    b"z:ints",
    b"pre:ints",
]
EQKEYS = [b"pre:eq", b"pre:eqbig", b"z:eq", b"z:eqbig"]
OTHER = [b"nokey", b"str", b"list", b"hash", b"set:a"]


def members_of(env: Env, key: bytes) -> list[bytes]:
    return list(env.zsets.get(key, {}))


# ---- a tiny RESP parser for property checks ----


def parse(buf: bytes) -> Any:
    """RESP2/RESP3 to Python: bulk -> bytes, `,x` -> ("double", x), `:n` -> int, null -> None,
    arrays -> lists."""
    value, end = _parse(buf, 0)
    assert end == len(buf)
    return value


def _parse(buf: bytes, pos: int) -> tuple[Any, int]:
    end = reply_end(buf, pos)
    assert end is not None
    nl = buf.index(b"\r\n", pos)
    kind, head = buf[pos : pos + 1], buf[pos + 1 : nl]
    if kind == b"$":
        n = int(head)
        return (None if n < 0 else buf[nl + 2 : nl + 2 + n]), end
    if kind == b",":
        return ("double", head), end
    if kind == b":":
        return int(head), end
    if kind == b"_":
        return None, end
    if kind == b"*":
        n = int(head)
        if n < 0:
            return None, end
        items = []
        p = nl + 2
        for _ in range(n):
            item, p = _parse(buf, p)
            items.append(item)
        return items, end
    return (kind, head), end


# ---- ZCARD ZSCORE ZMSCORE ZRANK ZREVRANK ----


def test_cards_scores_and_ranks(env: Env) -> None:
    for key in ZKEYS + EQKEYS + OTHER + [b"geo:cities", b"set:i"]:
        env.same("zcard", key)
        members = [*members_of(env, key)[:60], b"missing", b""]
        for m in members:
            env.same("zscore", key, m)
            env.same("zrank", key, m)
            env.same("zrevrank", key, m)
            env.same("zrank", key, m, "WITHSCORE")
            env.same("zrevrank", key, m, "withscore")
        env.same("zmscore", key, *members)
        env.same("zmscore", key, b"missing")
    env.same("zrank", "z:lp", "m1", "withscores")
    env.same("zrank", "z:lp", "m1", "withscore", "x")
    env.same("zrank", "nokey", "m1", "bad")
    env.same("zrank", "str", "m1", "withscore")
    env.same("zscore", "pre:sk", "negzero")


# ---- the ZRANGE family ----

SCORE_BOUNDS = [
    "-inf",
    "+inf",
    "inf",
    "(-inf",
    "(inf",
    "0",
    "(0",
    "-0",
    "(-0",
    "1",
    "(1",
    "-1",
    "1.5",
    "(2.5",
    " 3",
    "0x10",
    "(0x1p-2",
    "1e400",
    "(-1e400",
    "",
    "(",
    "1e-400",
    "infinity",
    "-Infinity",
    "100",
    "(100",
    "-100",
    "1e21",
    "0.1",
    "(0.1",
    "4611686018427387904",
]
BAD_SCORE_BOUNDS = [
    "abc",
    "nan",
    "(nan",
    "1 ",
    "1_0",
    "((1",
    "--1",
    "1e",
    "0x",
    "1.2.3",
    "inf1",
    "[1",
    "1\x00x",
]
LEX_BOUNDS = [
    "-",
    "+",
    "[a",
    "(a",
    "[b",
    "(b",
    "[",
    "(",
    "[m1",
    "(m2",
    "[z",
    "[ab",
    "(ab",
    "[\xff",
    "[m",
    "+\x00x",
    "-\x00",
]
BAD_LEX_BOUNDS = ["a", "", "++", "-a", "+a", "{a", "1"]


def _score_bound(rng: random.Random, scores: list[str]) -> str:
    r = rng.random()
    if r < 0.35 and scores:  # exactly a member's score: inclusive and exclusive edges
        return ("(" if rng.random() < 0.4 else "") + rng.choice(scores)
    if r < 0.7:
        return rng.choice(SCORE_BOUNDS)
    v = rng.choice(
        [
            str(rng.randint(-5, 5)),
            repr(rng.uniform(-1e6, 1e6)),
            repr(rng.random()),
            str(rng.randint(-1000, 1000)),
        ]
    )
    return ("(" if rng.random() < 0.3 else "") + v


def test_zrange_by_rank(env: Env) -> None:
    rng = random.Random(1)
    idx = [
        "0",
        "1",
        "-1",
        "-2",
        "5",
        "-5",
        "10",
        "100",
        "-100",
        "1000",
        "-1000",
        "9223372036854775807",
        "-9223372036854775808",
        "24",
        "25",
        "299",
        "300",
        "301",
    ]
    for key in ZKEYS + EQKEYS + [b"nokey"]:
        for _ in range(25):
            a, b = rng.choice(idx), rng.choice(idx)
            opts = [o for o in ("WITHSCORES", "REV") if rng.random() < 0.5]
            rng.shuffle(opts)
            env.same("zrange", key, a, b, *opts)
            env.same("zrevrange", key, a, b, *(["withscores"] if rng.random() < 0.5 else []))
        env.same("zrange", key, 0, -1, "withscores")
        env.same("zrevrange", key, 0, -1, "withscores")


def test_zrange_by_score(env: Env) -> None:
    rng = random.Random(2)
    for key in [*ZKEYS, b"nokey", b"pre:eq"]:
        scores = list(env.zsets.get(key, {}).values())
        for _ in range(40):
            lo, hi = _score_bound(rng, scores), _score_bound(rng, scores)
            opts: list[Any] = []
            if rng.random() < 0.5:
                opts += [
                    "LIMIT",
                    rng.choice([0, 1, 3, 10, -1, -2, -7, -100, 500]),
                    rng.choice([0, 1, 5, 20, -1, -5, 1000]),
                ]
            if rng.random() < 0.5:
                opts.insert(rng.choice([0, len(opts)]), "WITHSCORES")
            env.same("zrangebyscore", key, lo, hi, *opts)
            env.same("zrevrangebyscore", key, hi, lo, *opts)
            env.same("zrange", key, lo, hi, "BYSCORE", *opts)
            env.same("zrange", key, hi, lo, "byscore", "rev", *opts)
            env.same("zcount", key, lo, hi)
        env.same("zrangebyscore", key, "-inf", "+inf", "withscores")
        env.same("zcount", key, "-inf", "+inf")


def test_zrange_by_lex_on_equal_scores(env: Env) -> None:
    rng = random.Random(3)
    for key in [*EQKEYS, b"nokey"]:
        members = members_of(env, key)

        def bound(members: list[bytes] = members) -> Any:
            if rng.random() < 0.5 and members:
                return rng.choice([b"[", b"("]) + rng.choice(members)
            return rng.choice(LEX_BOUNDS)

        for _ in range(40):
            lo, hi = bound(), bound()
            opts: list[Any] = []
            if rng.random() < 0.5:
                opts += [
                    "LIMIT",
                    rng.choice([0, 1, 3, -1, -2, -9, 50, -1000]),
                    rng.choice([0, 2, 10, -1, -3]),
                ]
            env.same("zrangebylex", key, lo, hi, *opts)
            env.same("zrevrangebylex", key, hi, lo, *opts)
            env.same("zrange", key, lo, hi, "BYLEX", *opts)
            env.same("zrange", key, hi, lo, "REV", "BYLEX", *opts)
            env.same("zlexcount", key, lo, hi)


def test_zrange_errors(env: Env) -> None:
    cases: list[list[Any]] = [
        ["zrange", "z:lp", 0, -1, "LIMIT", 0, 1],
        ["zrange", "z:lp", 0, -1, "LIMIT", 0, -1],  # count -1 is "no LIMIT": accepted
        ["zrange", "z:lp", 0, -1, "LIMIT", 5, -1],
        ["zrange", "z:lp", "[a", "[b", "BYLEX", "WITHSCORES"],
        ["zrangebylex", "z:eq", "-", "+", "WITHSCORES"],
        ["zrange", "z:lp", 0, -1, "BYSCORE", "BYLEX"],
        ["zrange", "z:lp", 0, -1, "REV", "REV"],
        ["zrange", "z:lp", 0, -1, "BYSCORE", "BYSCORE"],
        ["zrange", "z:lp", 0, -1, "LIMIT", 1],
        ["zrange", "z:lp", 0, -1, "BYSCORE", "LIMIT", "x", 1],
        ["zrange", "z:lp", 0, -1, "BYSCORE", "LIMIT", 1, "1.5"],
        ["zrange", "z:lp", 0, -1, "BYSCORE", "LIMIT", "9223372036854775808", 1],
        ["zrange", "z:lp", "a", -1],
        ["zrange", "z:lp", "0", "1.0"],
        ["zrange", "z:lp", "01", "1"],
        ["zrange", "z:lp", "+1", "1"],
        ["zrange", "str", 0, -1],
        ["zrange", "str", "x", -1],
        ["zrange", "str", 0, -1, "bad"],
        ["zrange", "nokey", "x", 0],
        ["zrange", "nokey", 0, 1, "bad"],
        ["zrange", "z:lp", 0, -1, "withscores\x00junk"],
        ["zrevrange", "z:lp", 0, -1, "REV"],
        ["zrevrange", "z:lp", 0, -1, "BYSCORE"],
        ["zrevrange", "z:lp", 0, -1, "LIMIT", 0, 1],
        ["zrangebyscore", "z:lp", 0, 1, "BYSCORE"],
        ["zrangebyscore", "z:lp", 0, 1, "REV"],
        ["zrangebyscore", "z:lp", 0, 1, "LIMIT", 0],
        ["zrangebyscore", "z:lp", 0, 1, "LIMIT", 0, 1, "WITHSCORES", "LIMIT", 1, 2],
        ["zrangebyscore", "str", 0, 1],
        ["zrangebyscore", "str", "x", 1],
        ["zrangebylex", "z:eq", "-", "+", "BYLEX"],
        ["zrangebylex", "str", "-", "+"],
        ["zrangebylex", "str", "x", "+"],
        ["zrangebylex", "nokey", "x", "+"],
        ["zrevrangebylex", "z:eq", "+", "-", "LIMIT", 2, 3],
        ["zrange", "z:lp", 0, -1, "WITHSCORES", "WITHSCORES"],
        ["zcount", "str", 0, 1],
        ["zcount", "str", "x", 1],
        ["zcount", "nokey", 0, "x"],
        ["zlexcount", "str", "-", "+"],
        ["zlexcount", "str", "x", "+"],
        ["zlexcount", "nokey", "-", "x"],
    ]
    for bad in BAD_SCORE_BOUNDS:
        cases += [
            ["zrangebyscore", "z:lp", bad, 1],
            ["zrange", "z:lp", 1, bad, "BYSCORE"],
            ["zcount", "z:sk", bad, "+inf"],
            ["zrevrangebyscore", "nokey", bad, 0],
        ]
    for bad in BAD_LEX_BOUNDS:
        cases += [
            ["zrangebylex", "z:eq", bad, "+"],
            ["zrange", "z:eq", "-", bad, "BYLEX"],
            ["zlexcount", "z:eq", bad, "+"],
            ["zrevrangebylex", "nokey", "+", bad],
        ]
    for argv in cases:
        env.same(*argv)


# ---- ZRANDMEMBER ----


def _needs(env: Env, command: bytes) -> None:
    """Skip a test of a command the master's version does not have (the differential
    test checks that the relay answers it as an unknown command there)."""
    if env.kind.dialect.command_table.get(command) is None:
        pytest.skip(f"{command.decode()} is not a command of {env.kind.name}")


def test_zrandmember(env: Env) -> None:
    _needs(env, b"zrandmember")
    rc = env.rc
    for key in [b"z:lp", b"z:sk", b"pre:lp2", b"z:skshort"]:
        zset = env.zsets[key]
        size = len(zset)
        # Scores as the master prints them, per protocol.
        texts = {p: {m: rc.master_reply(["zscore", key, m], p) for m in zset} for p in rc.protos}
        for _ in range(5):
            m = parse(rc.relay_reply(["zrandmember", key]))
            assert m in zset
        for count in [1, 2, 5, size - 1, size, size + 5, -1, -3, -size, -3 * size]:
            for withscores in (False, True):
                argv: list[Any] = ["zrandmember", key, count]
                if withscores:
                    argv.append("WITHSCORES")
                if count >= size:  # the whole zset, in rank order: deterministic
                    env.same(*argv)
                for proto in env.rc.protos:
                    got = parse(rc.relay_reply(argv, proto))
                    n = abs(count) if count < 0 else min(count, size)
                    if withscores and proto == 2:
                        assert len(got) == 2 * n
                        pairs = list(zip(got[::2], got[1::2]))
                        for m, s in pairs:
                            assert texts[2][m] == b"$%d\r\n%b\r\n" % (len(s), s)
                        got = [m for m, _ in pairs]
                    elif withscores:
                        assert len(got) == n and all(len(x) == 2 for x in got)
                        for m, (tag, text) in got:
                            assert tag == "double" and texts[3][m] == b",%b\r\n" % text
                        got = [m for m, _ in got]
                    assert len(got) == n and set(got) <= set(zset)
                    if count > 0:
                        assert len(set(got)) == n
    for argv in (
        ["zrandmember", "nokey"],
        ["zrandmember", "nokey", 5],
        ["zrandmember", "nokey", 5, "withscores"],
        ["zrandmember", "z:lp", 0],
        ["zrandmember", "z:lp", 0, "withscores"],
        ["zrandmember", "str"],
        ["zrandmember", "str", 1],
        ["zrandmember", "z:lp", "x"],
        ["zrandmember", "z:lp", "1.5"],
        ["zrandmember", "z:lp", 1, "bad"],
        ["zrandmember", "z:lp", 1, "withscores", "x"],
        ["zrandmember", "z:lp", "-9223372036854775808"],
        ["zrandmember", "nokey", "-9223372036854775808"],
        ["zrandmember", "z:lp", "9223372036854775807", "withscores"],
        ["zrandmember", "z:lp", "-4611686018427387904", "withscores"],
        ["zrandmember", "z:lp", "4611686018427387904", "withscores"],
        ["zrandmember", "str", "4611686018427387904", "withscores"],
        ["zrandmember", "str", "x"],
        ["zrandmember", "nokey", 1, "bad"],
    ):
        env.same(*argv)


# ---- ZUNION ZINTER ZDIFF ZINTERCARD ----

WEIGHTS = [
    "1",
    "2",
    "0",
    "-1",
    "0.5",
    "inf",
    "-inf",
    "1e300",
    "-0",
    "3.3333333333333335",
    "0x10",
    "1e-320",
]


def test_zset_algebra(env: Env) -> None:
    rng = random.Random(4)
    pool = ZKEYS + EQKEYS + [b"set:a", b"set:i", b"set:big", b"nokey", b"geo:cities"]
    for _ in range(150):
        keys = [rng.choice(pool) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.2:
            keys.append(keys[0])  # the same key twice
        opts: list[Any] = []
        if rng.random() < 0.5:
            opts += ["WEIGHTS", *[rng.choice(WEIGHTS) for _ in keys]]
        if rng.random() < 0.5:
            opts += ["AGGREGATE", rng.choice(["SUM", "min", "MAX", "sum"])]
        ws = ["WITHSCORES"] if rng.random() < 0.6 else []
        env.same("zunion", len(keys), *keys, *opts, *ws)
        env.same("zinter", len(keys), *keys, *ws, *opts)
        env.same("zdiff", len(keys), *keys, *ws)
        limit = ["LIMIT", rng.choice([0, 1, 3, 100])] if rng.random() < 0.5 else []
        env.same("zintercard", len(keys), *keys, *limit)
    cases: list[list[Any]] = [
        ["zunion", 0, "z:lp"],
        ["zinter", -1, "z:lp"],
        ["zdiff", 0, "z:lp"],
        ["zintercard", 0, "z:lp"],
        ["zunion", "x", "z:lp"],
        ["zunion", 3, "z:lp", "z:sk"],
        ["zunion", 2, "z:lp", "str"],
        ["zunion", 2, "str", "nokey", "bad"],
        ["zunion", 1, "z:lp", "WEIGHTS", "x"],
        ["zunion", 1, "z:lp", "WEIGHTS", "nan"],
        ["zunion", 1, "z:lp", "WEIGHTS", "1e400"],
        ["zunion", 1, "z:lp", "WEIGHTS", " 1"],
        ["zunion", 1, "z:lp", "WEIGHTS", "1e-400"],
        ["zunion", 2, "z:lp", "z:sk", "WEIGHTS", 1],
        ["zunion", 1, "z:lp", "AGGREGATE", "avg"],
        ["zunion", 1, "z:lp", "AGGREGATE"],
        ["zunion", 1, "z:lp", "WITHSCORES", "WITHSCORES"],
        ["zunion", 1, "z:lp", "LIMIT", 1],
        ["zdiff", 1, "z:lp", "WEIGHTS", 1],
        ["zdiff", 1, "z:lp", "AGGREGATE", "sum"],
        ["zdiff", 2, "z:lp", "z:lp", "withscores"],
        ["zinter", 1, "z:lp", "bad"],
        ["zintercard", 1, "z:lp", "LIMIT", -1],
        ["zintercard", 1, "z:lp", "LIMIT", "x"],
        ["zintercard", 1, "z:lp", "LIMIT"],
        ["zintercard", 1, "z:lp", "WITHSCORES"],
        ["zintercard", 1, "z:lp", "WEIGHTS", 1],
        ["zintercard", 2, "z:lp", "str"],
        ["zintercard", 1, "str", "LIMIT", -1],
        ["zinter", 2, "set:a", "set:i", "withscores"],
        ["zunion", 2, "set:a", "set:i", "withscores"],
        ["zunion", 1, "nokey", "withscores"],
        ["zinter", 2, "z:sk", "pre:sk", "WEIGHTS", "inf", "0", "WITHSCORES"],
        ["zunion", 2, "z:sk", "pre:sk", "WEIGHTS", "inf", "-inf", "WITHSCORES"],
        ["zunion", 2, "z:sk", "pre:sk", "AGGREGATE", "MIN", "WITHSCORES"],
        ["zunion", "1", "z:lp", "weights\x00", "2", "withscores"],
    ]
    for argv in cases:
        env.same(*argv)


# ---- ZSCAN ----

PATTERNS = [
    b"*",
    b"m1*",
    b"*1",
    b"m?",
    b"m[0-9]",
    b"m[^0-9]*",
    b"[a-",
    b"*[",
    b"\\*",
    b"m\\",
    b"[z-a]*",
    b"*\xff*",
    b"[\x80-\xff]*",
    b"[\\]]*",
    b"h[ae]llo",
    b"*m*1*2*",
    b"",
    b"m[1",
    b"[^",
    b"?*?",
    b"*\x00*",
    b"\\m1",
    b"[m]1*",
    b"a\r\n*",
    b"[-]*",
]


def _full_scan(reply_of: Any, key: bytes, opts: list[Any]) -> list[bytes]:
    cursor = b"0"
    out: list[bytes] = []
    for _ in range(10000):
        cur, items = parse(reply_of(["zscan", key, cursor, *opts]))
        out += items
        cursor = cur
        if cursor == b"0":
            return out
    raise AssertionError("scan did not finish")


def test_zscan(env: Env) -> None:
    rc = env.rc
    lp_keys = [
        b"z:lp",
        b"z:lp2",
        b"pre:lp",
        b"pre:lp2",
        b"z:eq",
        b"pre:eq",
        b"z:ints",
        b"pre:ints",
        b"geo:cities",
        b"geo:small",
    ]
    for key in [*lp_keys, b"nokey", b"str", b"set:a"]:
        env.same("zscan", key, 0)
        env.same("zscan", key, 0, "COUNT", 1)
        for pat in PATTERNS:
            env.same("zscan", key, 0, "MATCH", pat)
            env.same("zscan", key, 0, "match", pat, "count", 1000)
        if env.noscores:
            env.same("zscan", key, 0, "NOSCORES", "MATCH", "m*")
    for cursor in [
        b"",
        b"-1",
        b"+0",
        b" 0",
        b"0 ",
        b"x",
        b"18446744073709551615",
        b"18446744073709551616",
        b"-0",
        b"-01",
        b"0\x00x",
        b"00",
        b"+",
        b"-",
    ]:
        env.same("zscan", "z:lp", cursor)
        env.same("zscan", "nokey", cursor)
        env.same("zscan", "str", cursor)
    for opts in (
        ["COUNT", 0],
        ["COUNT", -1],
        ["COUNT", "x"],
        ["COUNT"],
        ["MATCH"],
        ["TYPE", "zset"],
        ["NOVALUES"],
        ["NOSCORES"],
        ["bad"],
        ["count", 5, "x"],
    ):
        env.same("zscan", "z:lp", 0, *opts)
        env.same("zscan", "nokey", 0, *opts)
        if opts != ["NOSCORES"] or not env.noscores:  # (a valid scan of a skiplist is hash-ordered)
            env.same("zscan", "z:sk", 0, *opts)
    # Skiplist zsets: hash order on the master, so compare what a full scan returns.
    for key in [
        b"z:sk",
        b"z:sk2",
        b"pre:sk",
        b"pre:sk2",
        b"z:skshort",
        b"pre:skshort",
        b"z:eqbig",
        b"geo:big",
        b"geo:weird",
    ]:
        full_scans: list[list[object]] = [
            [],
            ["COUNT", 1],
            ["COUNT", 7],
            ["COUNT", 1000],
            ["MATCH", "m1*"],
            ["MATCH", "*[0-4]", "COUNT", 3],
        ]
        if env.noscores:
            full_scans.append(["NOSCORES"])
        for opts in full_scans:
            for proto in env.rc.protos:
                mine = _full_scan(lambda a, p=proto: rc.relay_reply(a, p), key, opts)
                theirs = _full_scan(lambda a, p=proto: rc.master_reply(a, p), key, opts)
                if "NOSCORES" in opts:
                    assert sorted(mine) == sorted(set(theirs)), (key, opts)
                else:
                    m_pairs = dict(zip(mine[::2], mine[1::2]))
                    t_pairs = dict(zip(theirs[::2], theirs[1::2]))
                    assert len(m_pairs) == len(mine) // 2  # each member once
                    assert m_pairs == t_pairs, (key, opts)
    # A cursor replproxy never handed out names no snapshot (Redis would resume at that
    # bucket): the error Redis gives a bad cursor.
    assert rc.relay_reply(["zscan", "z:sk", "12345"]) == b"-ERR invalid cursor\r\n"


GLOB_MEMBERS = [
    b"",
    b"a",
    b"-",
    b"x[",
    b"x",
    b"*",
    b"m\\",
    b"q",
    b"]",
    b"\x90",
    b"ab",
    b"xaybzc",
    b"xaybz",
    b"\\",
    b"[",
    b"^",
    b"A",
    b"hello",
    b"hallo",
    b"h\x00llo",
    b"\xff\x80",
    b"a\r\nb",
]
GLOB_PATTERNS = [
    b"*",
    b"**",
    b"",
    b"a*",
    b"[a-",
    b"*[",
    b"[^",
    b"[^a",
    b"\\*",
    b"m\\",
    b"[z-a]",
    b"[\\]]",
    b"[\x80-\xff]*",
    b"[\x00-\x7f]",
    b"[-]",
    b"a**b",
    b"*a*b*c*",
    b"*a*b*z",
    b"?",
    b"??",
    b"[]",
    b"[]]",
    b"[!a]",
    b"\\",
    b"[\\",
    b"[a-c-e]",
    b"h[ae]llo",
    b"h?llo",
    b"h*o",
    b"*\x00*",
    b"[^-]",
    b"[a-]",
    b"[-a]",
    b"A",
    b"[A-Z]",
    b"[\xff-\x80]?",
    b"*\\",
    b"[\\-]",
    b"\\[",
    b"x[[]",
    b"*?*?*?*",
]


def test_match_patterns_as_redis(env: Env) -> None:
    """MATCH against the master's own matcher, through ZSCAN on a listpack."""
    for pat in GLOB_PATTERNS:
        env.same("zscan", "z:glob", 0, "MATCH", pat)


# ---- geo ----

GEO_KEYS = [b"geo:cities", b"geo:small", b"geo:big", b"geo:weird", b"nokey", b"str"]


def test_geopos_geohash_geodist(env: Env) -> None:
    rng = random.Random(5)
    for key in [*GEO_KEYS, b"z:lp", b"z:sk"]:
        members = [
            m.encode() if isinstance(m, str) else m
            for m in (
                [c[0] for c in CITIES]
                if key == b"geo:cities"
                else [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h", b"i", b"j", b"k"]
                if key == b"geo:weird"
                else members_of(env, key)[:40] or [b"p%d" % i for i in range(40)]
            )
        ]
        members.append(b"missing")
        env.same("geopos", key, *members)
        if env.kind.major < 6:
            # 5.0 does not clamp a decoded position: a first member off the map (a score
            # not made by GEOADD) gets whatever hash the stack held, where the relay
            # answers zeros; the members after one get the previous member's hash, as on 5.0.
            for proto in env.rc.protos:
                mine, theirs = (parse(r) for r in env.rc.both(["geohash", key, *members], proto))
                while mine and mine[0] == b"00000000000":
                    mine, theirs = mine[1:], theirs[1:]
                assert mine == theirs, key
        else:
            env.same("geohash", key, *members)
        env.same("geopos", key, "missing")
        for _ in range(30):
            a, b = rng.choice(members), rng.choice(members)
            unit = rng.choice([[], ["m"], ["km"], ["FT"], ["mi"], ["Mi"]])
            env.same("geodist", key, a, b, *unit)
    for argv in (
        ["geodist", "geo:cities", "Paris", "London", "yd"],
        ["geodist", "nokey", "a", "b", "yd"],
        ["geodist", "str", "a", "b"],
        ["geodist", "geo:cities", "Paris", "London", "km", "x"],
        ["geodist", "str", "a", "b", "km", "x"],
        ["geodist", "str", "a", "b", "yd"],
        ["geodist", "geo:cities", "Paris", "Paris"],
        ["geodist", "geo:cities", "Twin1", "Twin2", "km"],
        ["geodist", "geo:cities", "Edge1", "Edge2", "mi"],
    ):
        env.same(*argv)


def _geo_opts(rng: random.Random, v62: bool) -> list[Any]:
    opts: list[Any] = []
    for flag in ("WITHDIST", "WITHHASH", "WITHCOORD"):
        if rng.random() < 0.4:
            opts.append(flag if rng.random() < 0.8 else flag.lower())
    if rng.random() < 0.5:
        opts += ["COUNT", rng.choice([1, 2, 3, 5, 10, 50, 1000])]
        if v62 and rng.random() < 0.3:
            opts.append("ANY")
    if rng.random() < 0.6:
        opts.append(rng.choice(["ASC", "DESC", "asc"]))
    rng.shuffle(opts)
    # Keep COUNT next to its number after the shuffle.
    out: list[Any] = []
    pending: list[Any] = []
    for o in opts:
        if isinstance(o, int):
            pending.append(o)
        else:
            out.append(o)
    if "COUNT" in out:
        out.insert(out.index("COUNT") + 1, pending[0])
    return out


def test_geosearch_random(env: Env) -> None:
    rng = random.Random(6)
    cities = [c[0] for c in CITIES]
    for _ in range(300):
        key = rng.choice([b"geo:cities", b"geo:big", b"geo:small", b"geo:big", b"nokey"])
        names = cities if key == b"geo:cities" else [f"p{i}" for i in range(60)]
        unit, scale = rng.choice(
            [("m", 1000.0), ("km", 1.0), ("ft", 3280.0), ("mi", 0.62), ("KM", 1.0)]
        )
        radius = rng.choice([0, 1, 10, 50, 200, 800, 2000, 20000]) * rng.random() * scale
        if key == b"geo:cities":
            lon, lat = rng.uniform(-180, 180), rng.uniform(-85, 85)
        else:
            lon, lat = rng.uniform(-6, 9), rng.uniform(41, 52)
        opts = _geo_opts(rng, True)
        member = rng.choice(names)
        frm = ["FROMLONLAT", lon, lat] if rng.random() < 0.5 else ["FROMMEMBER", member]
        by = (
            ["BYRADIUS", radius, unit]
            if rng.random() < 0.5
            else ["BYBOX", radius * rng.uniform(0.2, 3), radius * rng.uniform(0.2, 3), unit]
        )
        args = [frm, by]
        rng.shuffle(args)
        env.same("geosearch", key, *args[0], *args[1], *opts)
        env.same("georadius_ro", key, lon, lat, radius, unit, *opts)
        env.same("georadiusbymember_ro", key, member, radius, unit, *opts)
    # Centres decoded from scores GEOADD would never make (clamped to the grid's edges).
    for member in "abcdefghijk":
        env.same(
            "geosearch",
            "geo:weird",
            "FROMMEMBER",
            member,
            "BYRADIUS",
            "inf",
            "km",
            "WITHCOORD",
            "WITHHASH",
            "WITHDIST",
        )
        env.same(
            "geosearch",
            "geo:cities",
            "FROMLONLAT",
            180,
            85.05112878,
            "BYBOX",
            5000,
            300,
            "km",
            "WITHCOORD",
            "ASC",
        )
        env.same("georadiusbymember_ro", "geo:weird", member, 20000, "km", "WITHDIST", "DESC")
    # Everything within reach, sorted or not: the order of the whole result.
    for key in (b"geo:cities", b"geo:big", b"geo:weird"):
        for sort in ([], ["ASC"], ["DESC"]):
            env.same(
                "geosearch",
                key,
                "FROMLONLAT",
                0,
                0,
                "BYRADIUS",
                30000,
                "km",
                "WITHDIST",
                "WITHHASH",
                "WITHCOORD",
                *sort,
            )
            env.same("georadius_ro", key, 2.35, 48.85, 500, "km", "WITHDIST", *sort)
            env.same(
                "geosearch",
                key,
                "FROMMEMBER",
                "Twin1" if key == b"geo:cities" else "p1",
                "BYBOX",
                2000,
                1000,
                "km",
                "WITHCOORD",
                *sort,
            )


def test_geo_errors(env: Env) -> None:
    cases: list[list[Any]] = [
        ["geosearch", "geo:cities", "FROMMEMBER", "Paris", "ASC", "WITHDIST", "WITHHASH"],
        ["geosearch", "geo:cities", "BYRADIUS", 10, "km", "ASC", "WITHHASH"],
        ["GeoSearch", "geo:cities", "BYRADIUS", 10, "km", "DESC", "WITHHASH"],
        ["geosearch", "nokey", "BYRADIUS", 10, "km", "DESC", "WITHHASH"],
        ["geosearch", "geo:cities", "FROMMEMBER", "Nowhere", "BYRADIUS", 10, "km"],
        ["geosearch", "nokey", "FROMMEMBER", "Nowhere", "BYRADIUS", 10, "km"],
        ["geosearch", "str", "FROMMEMBER", "Paris", "BYRADIUS", 10, "km"],
        ["geosearch", "str", "bad", 1, 2, 3, 4],
        ["geosearch", "geo:cities", "FROMMEMBER", "Paris", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "FROMMEMBER", "Paris", "BYRADIUS", 1, "m"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "FROMLONLAT", 1, 1, "BYRADIUS", 9000, "km"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m", "BYBOX", 1, 1, "m"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYBOX", 1, 1, "m", "BYRADIUS", 1, "m"],
        ["geosearch", "geo:cities", "FROMLONLAT", 200, 0, "BYRADIUS", 1, "m"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 86, "BYRADIUS", 1, "m"],
        ["geosearch", "geo:cities", "FROMLONLAT", "x", 0, "BYRADIUS", 1, "m"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, "1e400", "BYRADIUS", 1, "m"],
        ["geosearch", "geo:cities", "FROMLONLAT", "-inf", 0, "BYRADIUS", 1, "m"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYRADIUS", -1, "m"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYRADIUS", "x", "m"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "yd"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYRADIUS", "inf", "km", "COUNT", 3],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYBOX", -1, 1, "m"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYBOX", 1, -1, "m"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYBOX", "x", 1, "m"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYBOX", 1, "x", "m"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYBOX", 1, 1, "parsec"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m", "ANY"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m", "COUNT", 0],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m", "COUNT", -3],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m", "COUNT", "x"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m", "COUNT"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "ASC"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYBOX", 1, 1],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m", "STORE", "x"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m", "STOREDIST"],
        ["geosearch", "nokey", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m", "ANY"],
        ["geosearch", "nokey", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m", "WITHDIST"],
        ["geosearch", "geo:cities", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "m"],
        ["georadius_ro", "geo:cities", 0, 0, 1, "m", "STORE", "x"],
        ["georadius_ro", "geo:cities", 0, 0, 1, "m", "FROMMEMBER", "Paris"],
        ["georadius_ro", "geo:cities", 0, 0, 1, "m", "BYRADIUS", 1, "m"],
        ["georadius_ro", "geo:cities", 200, 0, 1, "m"],
        ["georadius_ro", "geo:cities", 0, 0, -1, "m"],
        ["georadius_ro", "geo:cities", 0, 0, 1, "parsec"],
        ["georadius_ro", "str", 200, 0, 1, "m"],
        ["georadius_ro", "nokey", 200, 0, 1, "m"],
        ["georadius_ro", "nokey", 0, 0, 1, "m", "bad"],
        ["georadius_ro", "geo:cities", 2.35, 48.85, 100, "km", "ANY"],
        ["georadius_ro", "geo:cities", 2.35, 48.85, 5000, "km", "COUNT", 2, "ANY"],
        ["georadiusbymember_ro", "geo:cities", "Nowhere", 1, "m"],
        ["georadiusbymember_ro", "geo:cities", "Paris", "x", "m"],
        ["georadiusbymember_ro", "geo:cities", "Paris", 1, "yd"],
        ["georadiusbymember_ro", "nokey", "Paris", "x", "yd"],
        ["georadiusbymember_ro", "nokey", "Paris", "x", "yd", "bad"],
        ["georadiusbymember_ro", "str", "Paris", 1, "m"],
        ["georadiusbymember_ro", "geo:cities", "Paris", 1, "m", "STOREDIST", "x"],
        ["georadiusbymember_ro", "geo:cities", "Paris", 300, "km", "WITHDIST", "ASC"],
        ["georadiusbymember_ro", "geo:weird", "g", 1, "km", "WITHHASH", "WITHCOORD"],
        ["georadiusbymember_ro", "geo:weird", "k", 100, "km", "WITHHASH", "WITHCOORD"],
        ["geopos", "str", "a"],
        ["geohash", "str", "a"],
        ["geopos", "nokey", "a", "b"],
        ["geohash", "nokey", "a"],
    ]
    arity = {
        "geosearch": 7,
        "georadius_ro": 6,
        "georadiusbymember_ro": 5,
        "geopos": 2,
        "geohash": 2,
    }
    for argv in cases:
        assert len(argv) >= arity[argv[0].lower()], argv  # else the dispatcher answers
        env.same(*argv)


def test_zrangestore_negative_offsets_then_reads(env: Env) -> None:
    """From 7.4 (and in Valkey) a skiplist finds a LIMIT's first element by rank, where a
    negative offset counts from the other end: the applier stores what the master stored."""
    _needs(env, b"zrangestore")
    rng = random.Random(7)
    with raw_client(env.server) as c:
        for i in range(60):
            src = rng.choice([b"z:sk", b"z:lp", b"z:eqbig", b"pre:sk2"])
            by = rng.choice([["BYSCORE"], ["BYLEX"]]) if src == b"z:eqbig" else [["BYSCORE"]][0]
            lo, hi = (
                ("-", "+")
                if by == ["BYLEX"]
                else (rng.choice(["-inf", "-5", "(0"]), rng.choice(["+inf", "5", "(100"]))
            )
            rev = ["REV"] if rng.random() < 0.5 else []
            if rev:
                lo, hi = hi, lo
            offset, count = rng.choice([-1, -2, -5, -50, 0, 3]), rng.choice([-1, 1, 4, 100])
            c.execute_command(
                "ZRANGESTORE", b"dst%d" % i, src, lo, hi, *by, *rev, "LIMIT", offset, count
            )
    env.mirror.sync()
    for i in range(60):
        env.same("zrange", b"dst%d" % i, 0, -1, "WITHSCORES")


def test_zscan_follows_the_masters_encoding(env: Env) -> None:
    """A skiplist that shrinks stays a skiplist on the master (cursor scans, `%.17g`
    scores); a listpack that grows becomes one. The stream tells the mirror which."""
    rng = random.Random(8)
    with raw_client(env.server) as c:
        c.execute_command(
            "ZADD", "shrink", *[x for i in range(200) for x in (rand_score(rng), b"s%d" % i)]
        )
        c.execute_command("ZREMRANGEBYRANK", "shrink", 0, 189)
        c.execute_command(
            "ZADD", "grow", *[x for i in range(100) for x in (rand_score(rng), b"g%d" % i)]
        )
        c.execute_command(
            "ZADD", "grow", *[x for i in range(100, 140) for x in (rand_score(rng), b"g%d" % i)]
        )
        c.execute_command(
            "ZADD", "stay", *[x for i in range(100) for x in (rand_score(rng), b"t%d" % i)]
        )
    env.mirror.sync()
    env.same("zscan", "stay", 0)
    for key in (b"shrink", b"grow"):
        for proto in env.rc.protos:
            for opts in ([], ["COUNT", 3]):
                mine = _full_scan(lambda a, p=proto: env.rc.relay_reply(a, p), key, opts)
                theirs = _full_scan(lambda a, p=proto: env.rc.master_reply(a, p), key, opts)
                assert dict(zip(mine[::2], mine[1::2])) == dict(zip(theirs[::2], theirs[1::2]))
        first = parse(env.rc.relay_reply(["zscan", key, 0, "COUNT", 2]))
        assert first[0] != b"0" and len(first[1]) == 4  # a cursor scan, two at a time
