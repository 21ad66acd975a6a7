"""Sorted sets and geo: every zset write a master sends, and every geo search that stores,
is applied exactly.

The oracle is a real master (Redis 7.0, Valkey 8.1, Redis 5.0 when available): each test
drives one with redis-py, lets `Mirror` apply the real replication stream through replproxy's
own link and keyspace, and asks `compare_with_master` for differences; zero scores are also
compared by sign, which a float comparison cannot see, and every key by DEBUG DIGEST-VALUE.
Sequences are seeded and random, over small (listpack/ziplist) and large (skiplist: more
than 128 members, members over 64 bytes) zsets, equal scores (lex order), -0, +-inf and
exponent forms, TTLs (long ones, and short ones the master expires mid-run), MULTI/EXEC and
Lua.

Geo searches are recomputed by the relay, so the geo tests aim at the boundaries where a
one-ulp difference in the port of geohash.c / geo.c would change the stored result: radii and
boxes equal to a member's exact distance, members on the centre's longitude (the 7.0
latitude-only shortcut), equally distant members cut by COUNT (which of them survive is
`pqsort`'s choice) and COUNT ... ANY.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from replproxy.keyspace import Keyspace, t_geo
from replproxy.keyspace.digest import digest_value
from replproxy.keyspace.t_geo import (
    V50,
    V60,
    V62,
    V70,
    V627,
    decode_score,
    geo_variant,
    geohash_align52,
    geohash_encode,
)
from replproxy.keyspace.values import ZSet
from tests.harness.appliers import run
from tests.harness.mirror import Mirror, compare_with_master, raw_client, send
from tests.harness.mirror import assert_mirrors as _assert_mirrors
from tests.harness.servers import RedisServer, wait_for

# ---- helpers ----


def assert_mirrors(mirror: Mirror) -> None:
    """Also the sign of zero scores and the per-key digests, which values alone miss."""
    _assert_mirrors(mirror, lambda m: _signed_zero_diffs(m) or _digest_diffs(m))


def zget(ks: Keyspace, key: str, db: int = 0) -> dict[bytes, float] | None:
    v = ks.get(db, key.encode())
    if v is None:
        return None
    assert type(v) is ZSet
    assert list(v.index) == sorted((s, m) for m, s in v.items())  # the index is in step
    return dict(v)


def _signed_zero_diffs(mirror: Mirror) -> list[str]:
    """-0 and 0 are equal floats: compare their sign through the master's own text."""
    diffs = []
    ks = mirror.keyspace
    for db, keys in enumerate(ks.dbs):
        with raw_client(mirror.server, db) as c:
            for key, v in keys.items():
                if type(v) is not ZSet:
                    continue
                for member, score in v.items():
                    if score == 0:
                        text = c.execute_command("ZSCORE", key, member)
                        if text is not None and (text[:1] == b"-") != (math.copysign(1, score) < 0):
                            diffs.append(
                                f"db{db} {key!r} {member!r}: master {text!r}, mirror {score!r}"
                            )
    return diffs


def _digest_diffs(mirror: Mirror) -> list[str]:
    """DEBUG DIGEST-VALUE of every live key (score texts included) against the relay's."""
    kind = mirror.server.kind
    style = kind.dialect.double_style
    diffs = []
    now_ms = time.time() * 1000
    with raw_client(mirror.server) as c:
        for key in list(mirror.keyspace.dbs[0]):
            exp = mirror.keyspace.get_expire(0, key)
            if exp is not None and exp < now_ms + 1000:
                continue
            theirs = c.execute_command("DEBUG", "DIGEST-VALUE", key)
            theirs = theirs[0] if isinstance(theirs, list) else theirs
            if theirs != digest_value(mirror.keyspace, 0, key, style):
                diffs.append(f"db0 {key!r}: DEBUG DIGEST-VALUE differs")
    return diffs


def at_least(server: RedisServer, *version: int) -> bool:
    return server.kind.version >= version


SCORE_FORMS = [
    "0",
    "-0",
    "1",
    "-1",
    "2.5",
    "1e3",
    "-1.5E-3",
    "7e-320",
    "inf",
    "-inf",
    "+inf",
    "+3",
    ".5",
    "5.",
    "0x1p3",
    "1e308",
    "-1e308",
    "123456789012345678",
]


def score(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.3:
        return rng.choice(SCORE_FORMS)
    if r < 0.6:
        return str(rng.randrange(-20, 20))
    return repr(rng.uniform(-1e6, 1e6))


def member(rng: random.Random, big: bool) -> str:
    if big and rng.random() < 0.1:
        return "L" * rng.randrange(65, 200) + str(rng.randrange(10))  # > 64 bytes
    if rng.random() < 0.2:
        return str(rng.randrange(-30, 300))  # integer-looking: listpack integer entries
    return f"m{rng.randrange(300 if big else 25)}"


def score_bound(rng: random.Random) -> str:
    s = rng.choice(
        [
            "-inf",
            "+inf",
            "inf",
            "-0",
            "0",
            str(rng.randrange(-20, 20)),
            repr(rng.uniform(-1e6, 1e6)),
            " 5",
            "1e999",
        ]
    )
    return ("(" + s) if rng.random() < 0.4 else s


def lex_bound(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.15:
        return "-"
    if r < 0.3:
        return "+"
    return rng.choice("[(") + f"m{rng.randrange(25)}"[: rng.randrange(1, 4)]


# ---- unit: ZADD and ZINCRBY ----


def test_zadd_flags_follow_zsetadd() -> None:
    ks = Keyspace()
    run(ks, "ZADD", "z", 1, "a", 2, "b")
    run(ks, "ZADD", "z", "NX", 10, "a", 3, "c")
    assert zget(ks, "z") == {b"a": 1, b"b": 2, b"c": 3}
    run(ks, "ZADD", "z", "XX", "CH", 10, "a", 4, "d")
    assert zget(ks, "z") == {b"a": 10, b"b": 2, b"c": 3}
    run(ks, "ZADD", "z", "GT", 5, "a", 5, "b", 7, "e")  # GT: only upward, new ones added
    assert zget(ks, "z") == {b"a": 10, b"b": 5, b"c": 3, b"e": 7}
    run(ks, "ZADD", "z", "LT", "XX", 1, "a", 9, "c", 1, "f")
    assert zget(ks, "z") == {b"a": 1, b"b": 5, b"c": 3, b"e": 7}
    run(ks, "ZADD", "z", "INCR", "2.5", "a")
    run(ks, "zincrby", "z", "-1e1", "b")
    run(ks, "ZADD", "z", "gt", "incr", "-1", "c")  # 3-1 < 3: GT refuses after the addition
    run(ks, "ZADD", "z", "XX", "INCR", "1", "missing")
    assert zget(ks, "z") == {b"a": 3.5, b"b": -5, b"c": 3, b"e": 7}
    run(ks, "ZADD", "nokey", "XX", 1, "a")
    assert ks.get(0, b"nokey") is None


def _signs(ks: Keyspace, key: str) -> dict[str, str]:
    zs = ks.get(0, key.encode())
    assert isinstance(zs, ZSet)
    return {
        m.decode()[:3]: "-" if math.copysign(1, s) < 0 else "+" for m, s in zs.items() if s == 0
    }


def test_zadd_scores_parse_as_strtod_and_zero_keeps_its_sign() -> None:
    ks = Keyspace()
    ks.loaded_aux = {b"redis-ver": b"6.2.14"}  # before 7.0 a ziplist keeps "-0" as text
    run(ks, "ZADD", "z", "+inf", "a", "-inf", "b", "1.5e3", "c", "0x1p3", "d", "-0", "e")
    assert zget(ks, "z") == {b"a": math.inf, b"b": -math.inf, b"c": 1500, b"d": 8, b"e": 0}
    run(ks, "ZADD", "z", "0", "e")  # 0 == -0: zsetAdd keeps the old score, sign included
    assert _signs(ks, "z") == {"e": "-"}
    run(ks, "ZINCRBY", "z", "0", "e")  # -0 + 0 = 0, equal again: unchanged
    assert _signs(ks, "z") == {"e": "-"}


def test_zero_sign_follows_the_masters_listpack_encoding() -> None:
    """7.0+: a -0 written into a listpack zset is stored as the integer 0."""
    long = "L" * 65
    for aux, expected in [
        ({b"redis-ver": b"5.0.7"}, {"a": "-", "LLL": "-"}),  # ziplist keeps "-0"
        ({b"redis-ver": b"7.0.15"}, {"a": "+", "LLL": "-"}),  # converted at the long one
        ({b"redis-ver": b"7.2.4"}, {"a": "+", "LLL": "-"}),  # sized by the first member
        ({b"redis-ver": b"7.2.4", b"valkey-ver": b"8.1.0"}, {"a": "-", "LLL": "-"}),
    ]:
        ks = Keyspace()
        ks.loaded_aux = aux
        run(ks, "ZADD", "z", "-0", "a", "-0", long)
        assert _signs(ks, "z") == expected, aux
        run(ks, "ZADD", "small", 1, "x")
        run(ks, "ZINCRBY", "small", "-0", "y")
        run(ks, "ZADD", "small", "-0", "x")
        drops = aux.get(b"redis-ver") != b"5.0.7"
        assert _signs(ks, "small") == ({"x": "+", "y": "+"} if drops else {"x": "-", "y": "-"})
        # 129 members: a skiplist, whose -0 stays -0 even after shrinking back.
        run(ks, "ZADD", "big", *[x for i in range(129) for x in (i, f"m{i}")])
        run(ks, "ZREMRANGEBYRANK", "big", 0, 120)
        run(ks, "ZADD", "big", "-0", "neg")
        assert _signs(ks, "big") == {"neg": "-"}
        run(ks, "ZUNIONSTORE", "u", 1, "big")  # a small result: converted to a listpack
        assert _signs(ks, "u") == {"neg": "+" if drops else "-"}


def test_geoadd_rewrite_is_an_ordinary_zadd() -> None:
    """GEOADD k CH NX lon lat m propagates as `zadd k CH NX <geohash> m` (lowercase)."""
    ks = Keyspace()
    run(ks, "zadd", "g", "CH", "NX", "3479099956230698", "Palermo")
    run(ks, "GEOADD", "g", "15.087269", "37.502669", "Catania")
    assert zget(ks, "g") == {b"Palermo": 3479099956230698, b"Catania": 3479447370796909}


def test_zadd_keeps_ttl_and_store_drops_it() -> None:
    ks = Keyspace()
    run(ks, "ZADD", "z", 1, "a")
    ks.set_expire(0, b"z", 10**13)
    ks.set(0, b"dst", b"old")
    ks.set_expire(0, b"dst", 10**13)
    run(ks, "ZADD", "z", 2, "b")
    run(ks, "ZREM", "z", "a")
    assert ks.get_expire(0, b"z") == 10**13
    run(ks, "ZUNIONSTORE", "dst", 1, "z")
    assert zget(ks, "dst") == {b"b": 2} and ks.get_expire(0, b"dst") is None


# ---- unit: removals and ranges ----


def test_zrem_and_range_removals_delete_empty_keys() -> None:
    ks = Keyspace()
    run(ks, "ZADD", "z", *[x for i in range(10) for x in (i, f"m{i}")])
    run(ks, "ZREMRANGEBYSCORE", "z", "(1", "3")
    assert sorted(zget(ks, "z") or ()) == [b"m0", b"m1", b"m4", b"m5", b"m6", b"m7", b"m8", b"m9"]
    run(ks, "ZREMRANGEBYRANK", "z", -2, -1)
    run(ks, "ZREMRANGEBYRANK", "z", 5, 1)  # empty range
    run(ks, "ZREMRANGEBYSCORE", "z", "(4", "(4")
    assert sorted(zget(ks, "z") or ()) == [b"m0", b"m1", b"m4", b"m5", b"m6", b"m7"]
    run(ks, "ZREMRANGEBYSCORE", "z", " -inf", "(5")
    assert sorted(zget(ks, "z") or ()) == [b"m5", b"m6", b"m7"]
    run(ks, "ZREM", "z", "m5", "nope", "m6")
    run(ks, "ZREMRANGEBYRANK", "z", 0, -1)
    assert ks.get(0, b"z") is None


def test_score_ranges_honour_exclusive_infinite_and_signed_zero_bounds() -> None:
    ks = Keyspace()
    run(ks, "ZADD", "z", "-inf", "a", "-0", "b", "0", "c", "1", "d", "inf", "e")
    zs = ks.get(0, b"z")
    assert isinstance(zs, ZSet)
    cases = {
        ("-inf", "+inf"): "abcde",
        ("(-inf", "(inf"): "bcd",
        ("(inf", "+inf"): "",
        ("inf", "inf"): "e",
        ("-inf", "-inf"): "a",
        ("(0", "1"): "d",
        ("-0", "0"): "bc",
        ("(-0", "(1"): "",
        ("1", "0"): "",
        ("(1", "(1"): "",
        ("1e999", "inf"): "e",
    }
    from replproxy.keyspace.t_zset import parse_score_bound

    for (lo, hi), expected in cases.items():
        a, b = zs.score_range(*parse_score_bound(lo.encode()), *parse_score_bound(hi.encode()))
        assert "".join(m.decode() for _, m in zs.index[a:b]) == expected, (lo, hi)


def test_lex_ranges_with_minus_plus_and_exclusive_items() -> None:
    ks = Keyspace()
    run(ks, "ZADD", "z", *[x for m in "abcdefg" for x in (0, m)])
    cases = {
        ("-", "+"): "abcdefg",
        ("[b", "(e"): "bcd",
        ("(b", "[e"): "cde",
        ("+", "-"): "",
        ("-", "-"): "",
        ("[c", "[c"): "c",
        ("(c", "[c"): "",
        ("[e", "[b"): "",
        ("[", "[b"): "ab",
        ("(g", "+"): "",
        ("[d", "+"): "defg",
    }
    from replproxy.keyspace.t_zset import parse_lex_bound

    zs = ks.get(0, b"z")
    assert isinstance(zs, ZSet)
    for (lo, hi), expected in cases.items():
        for rev in (False, True):
            a, b = zs.lex_range(parse_lex_bound(lo.encode()), parse_lex_bound(hi.encode()), rev)
            assert "".join(m.decode() for _, m in zs.index[a:b]) == expected, (lo, hi, rev)
    run(ks, "ZREMRANGEBYLEX", "z", "(b", "[d")
    assert sorted(zget(ks, "z") or ()) == [b"a", b"b", b"e", b"f", b"g"]


def test_zpop_min_max_with_counts() -> None:
    ks = Keyspace()
    run(ks, "ZADD", "z", 1, "a", 2, "b", 3, "c", 4, "d")
    run(ks, "ZPOPMIN", "z")
    run(ks, "ZPOPMAX", "z", 2)
    assert zget(ks, "z") == {b"b": 2}
    run(ks, "ZPOPMAX", "z", 0)
    run(ks, "ZPOPMIN", "z", 5)
    assert ks.get(0, b"z") is None


# ---- unit: the STORE commands ----


def test_zunionstore_aggregates_in_cardinality_order_and_nan_is_zero() -> None:
    ks = Keyspace()
    run(ks, "ZADD", "a", "inf", "x", 1, "y", "-0", "z")
    run(ks, "ZADD", "b", "-inf", "x", 2, "y", 0, "z", 5, "w")
    run(ks, "SADD", "s", "x", "y", "v")
    run(ks, "ZUNIONSTORE", "u", 3, "a", "b", "s")
    # Order a, s (3 each, as given), b: x = (inf + 1) + -inf = NaN -> 0.
    assert zget(ks, "u") == {b"x": 0, b"y": 4, b"z": 0, b"w": 5, b"v": 1}
    run(ks, "ZUNIONSTORE", "u", 2, "a", "b", "WEIGHTS", 0, 1, "AGGREGATE", "MAX")
    assert zget(ks, "u") == {b"x": 0, b"y": 2, b"z": 0, b"w": 5}  # inf*0 -> 0
    run(ks, "ZINTERSTORE", "i", 3, "a", "b", "s", "aggregate", "min")
    assert zget(ks, "i") == {b"x": -math.inf, b"y": 1}
    run(ks, "ZINTERSTORE", "a", 2, "a", "a", "WEIGHTS", 2, 3)  # destination is a source
    assert zget(ks, "a") == {b"x": math.inf, b"y": 5, b"z": 0}
    run(ks, "ZDIFFSTORE", "d", 2, "b", "s")
    assert zget(ks, "d") == {b"z": 0, b"w": 5}
    run(ks, "ZDIFFSTORE", "d", 2, "b", "b")
    run(ks, "ZINTERSTORE", "i", 2, "a", "missing")
    assert ks.get(0, b"d") is None and ks.get(0, b"i") is None
    # SUM is not associative: the smallest source is added first (stable on ties).
    run(ks, "ZADD", "p", "1e16", "k", 0, "p1", 0, "p2")
    run(ks, "ZADD", "q", "1", "k")
    run(ks, "ZADD", "r", "-1e16", "k", 0, "r1")
    run(ks, "ZUNIONSTORE", "u", 3, "p", "r", "q")  # order q, r, p: (1 + -1e16) + 1e16
    assert zget(ks, "u") == {b"k": (1.0 + -1e16) + 1e16, b"p1": 0, b"p2": 0, b"r1": 0}


def test_zrangestore_rank_score_lex_rev_and_limit() -> None:
    ks = Keyspace()
    run(ks, "ZADD", "z", *[x for i in range(10) for x in (i, f"m{i}")])
    run(ks, "ZADD", "l", *[x for m in "abcdefgh" for x in (0, m)])

    def stored(*args: object) -> list[str]:
        run(ks, "ZRANGESTORE", "dst", *args)
        zs = ks.get(0, b"dst")
        return [] if zs is None else sorted(m.decode() for m in zs)  # type: ignore[union-attr]

    assert stored("z", 2, -5) == ["m2", "m3", "m4", "m5"]
    assert stored("z", 0, 1, "REV") == ["m8", "m9"]
    assert stored("z", "(3", 6, "BYSCORE", "LIMIT", 1, 2) == ["m5", "m6"]
    assert stored("z", 6, "(3", "BYSCORE", "REV", "LIMIT", 1, -1) == ["m4", "m5"]
    assert stored("z", "-inf", "+inf", "BYSCORE", "LIMIT", -1, 3) == []
    assert stored("z", "-inf", "+inf", "BYSCORE", "LIMIT", 10, 3) == []
    assert stored("l", "[b", "(f", "BYLEX", "LIMIT", 1, 2) == ["c", "d"]
    assert stored("l", "+", "[f", "BYLEX", "REV", "LIMIT", 0, 2) == ["g", "h"]
    assert stored("missing", 0, -1) == []


# ---- unit: geo math ----


def test_geohash_matches_known_scores() -> None:
    # GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania (Redis docs)
    for lon, lat, expected in [
        (13.361389, 38.115556, 3479099956230698),
        (15.087269, 37.502669, 3479447370796909),
    ]:
        bits = geohash_encode(lon, lat, 26)
        assert bits is not None and geohash_align52(bits, 26) == expected
    lon, lat = decode_score(3479099956230698, clamp=True)
    assert abs(lon - 13.361389) < 1e-5 and abs(lat - 38.115556) < 1e-5
    assert geohash_encode(180.1, 0, 26) is None


def test_geo_variant_follows_the_snapshot_version() -> None:
    ks = Keyspace()
    for aux, expected in [
        ({}, V70),
        ({b"redis-ver": b"5.0.7"}, V50),
        ({b"redis-ver": b"6.0.20"}, V60),
        ({b"redis-ver": b"6.2.5"}, V62),
        ({b"redis-ver": b"6.2.6"}, V62),
        ({b"redis-ver": b"6.2.7"}, V627),  # 7.0's choice of the search step, backported
        ({b"redis-ver": b"6.2.14"}, V627),
        ({b"redis-ver": b"7.0.15"}, V70),
        ({b"redis-ver": b"7.4.0"}, V70),
        ({b"redis-ver": b"7.2.4", b"valkey-ver": b"8.1.0"}, V70),
    ]:
        ks.loaded_aux = aux
        assert geo_variant(ks) == expected


def test_pqsort_sorts_exactly_the_requested_prefix() -> None:
    rng = random.Random(7)
    for _ in range(300):
        n = rng.randrange(1, 120)
        pts = [(float(rng.randrange(20)), 0.0, str(i).encode()) for i in range(n)]
        want = sorted(p[0] for p in pts)
        k = rng.randrange(1, n + 1)
        v = list(pts)
        t_geo.pqsort(v, t_geo._cmp_asc, 0, k - 1)
        assert sorted(v) == sorted(pts)
        assert [p[0] for p in v[:k]] == want[:k]


# ---- mirror: random zset writes ----


def _random_write(c: redis.Redis, rng: random.Random, server: RedisServer) -> None:
    v62, v70 = at_least(server, 6, 2), at_least(server, 7, 0)
    small = [f"z{i}" for i in range(4)]
    big = ["big0", "big1"]
    lex = ["lex0", "lex1"]
    key = rng.choice(small + big)
    is_big = key in big
    r = rng.random()
    if r < 0.32:
        flags: list[str] = []
        if rng.random() < 0.4:
            flags = rng.choice(
                [["NX"], ["XX"], ["CH"], ["XX", "CH"], ["NX", "CH"]]
                + ([["GT"], ["LT"], ["XX", "GT", "CH"], ["LT", "CH"]] if v62 else [])
            )
        if rng.random() < 0.1:
            send(c, "ZADD", key, *flags, "INCR", score(rng), member(rng, is_big))
            return
        pairs = [
            x
            for _ in range(rng.randrange(1, 40 if is_big else 6))
            for x in (score(rng), member(rng, is_big))
        ]
        send(c, "ZADD", key, *flags, *pairs)
    elif r < 0.40:
        send(c, "ZINCRBY", key, score(rng), member(rng, is_big))
    elif r < 0.48:
        send(c, "ZREM", key, *[member(rng, is_big) for _ in range(rng.randrange(1, 6))])
    elif r < 0.53:
        send(c, "ZREMRANGEBYSCORE", key, score_bound(rng), score_bound(rng))
    elif r < 0.57:
        send(c, "ZREMRANGEBYRANK", key, rng.randrange(-8, 8), rng.randrange(-8, 8))
    elif r < 0.66:
        lk = rng.choice(lex)
        if rng.random() < 0.6:
            send(
                c,
                "ZADD",
                lk,
                *[x for _ in range(rng.randrange(1, 30)) for x in ("0", member(rng, lk == "lex1"))],
            )
        else:
            send(c, "ZREMRANGEBYLEX", lk, lex_bound(rng), lex_bound(rng))
    elif r < 0.72:
        cmd = rng.choice(["ZPOPMIN", "ZPOPMAX"])
        if rng.random() < 0.5:
            send(c, cmd, key)
        else:
            send(c, cmd, key, rng.randrange(0, 5))
    elif r < 0.75:
        send(c, rng.choice(["BZPOPMIN", "BZPOPMAX"]), key, rng.choice(small), "0.01")
    elif r < 0.77 and v70:
        timeout = ["0.01"] if rng.random() < 0.5 else []
        send(
            c,
            "BZMPOP" if timeout else "ZMPOP",
            *timeout,
            2,
            key,
            rng.choice(small),
            rng.choice(["MIN", "MAX"]),
            "COUNT",
            rng.randrange(1, 4),
        )
    elif r < 0.87:
        dst = rng.choice([*small, "dst0", "dst1"])
        srcs = rng.sample(small + big + ["s0", "s1", "nokey"], rng.randrange(1, 4))
        op = rng.choice(["ZUNIONSTORE", "ZINTERSTORE"] + (["ZDIFFSTORE"] if v62 else []))
        opts: list[object] = []
        if op != "ZDIFFSTORE":
            if rng.random() < 0.5:
                opts += [
                    "WEIGHTS",
                    *[rng.choice(["1", "0", "-1", "2.5", "inf", "-inf", "1e308"]) for _ in srcs],
                ]
            if rng.random() < 0.5:
                opts += ["AGGREGATE", rng.choice(["SUM", "MIN", "MAX", "sum"])]
        send(c, op, dst, len(srcs), *srcs, *opts)
    elif r < 0.93 and v62:
        dst = rng.choice(["dst0", "dst1", rng.choice(small)])
        src = rng.choice(small + big + lex)
        form = rng.random()
        if src in lex:  # lex ranges are defined only over equal scores
            form = max(form, 0.66)
        elif form >= 0.66:
            form = 0.5
        if form < 0.33:
            args: list[object] = [rng.randrange(-10, 10), rng.randrange(-10, 10)]
        elif form < 0.66:
            args = [score_bound(rng), score_bound(rng), "BYSCORE"]
        else:
            args = [lex_bound(rng), lex_bound(rng), "BYLEX"]
        if rng.random() < 0.3:
            args.append("REV")
        if form >= 0.33 and rng.random() < 0.5:
            args += ["LIMIT", rng.randrange(-1, 5), rng.randrange(-1, 8)]
        send(c, "ZRANGESTORE", dst, src, *args)
    elif r < 0.96:
        send(c, "SADD", rng.choice(["s0", "s1"]), *[member(rng, False) for _ in range(4)])
    elif r < 0.98:
        # Mostly long TTLs (kept by in-place writes, dropped by STOREs), some that expire
        # mid-run: the master then sends DEL before its next write to the key.
        ttl = rng.randrange(60_000, 120_000) if rng.random() < 0.8 else rng.randrange(1, 30)
        send(c, "PEXPIRE", rng.choice([*small, *big, "dst0"]), ttl)
    else:
        send(c, "PERSIST", rng.choice(small + big))


def test_zset_random_writes_mirror(master: RedisServer) -> None:
    rng = random.Random(20240611)
    with raw_client(master) as c, Mirror(master) as mirror:
        # Seed a few large keys before the snapshot: skiplist-encoded from the RDB on.
        send(c, "ZADD", "big0", *[x for i in range(200) for x in (i % 17, f"m{i}")])
        send(c, "ZADD", "lex1", *[x for i in range(150) for x in (0, f"m{i}")])
        mirror.sync()
        for step in range(4000):
            _random_write(c, rng, master)
            if step % 500 == 499:
                assert_mirrors(mirror)
        assert_mirrors(mirror)


def test_zset_stores_over_large_sets_and_sets_mirror(master: RedisServer) -> None:
    rng = random.Random(99)
    with raw_client(master) as c, Mirror(master) as mirror:
        for k in ("a", "b", "c"):
            n = rng.choice([5, 150, 400])
            send(c, "ZADD", k, *[x for _ in range(n) for x in (score(rng), member(rng, True))])
        send(c, "SADD", "iset", *range(0, 300, 3))  # intset -> members as decimal strings
        send(c, "SADD", "hset", *[member(rng, True) for _ in range(200)])
        send(c, "PEXPIRE", "a", 100_000)
        send(c, "SET", "dst", "a string with a TTL", "PX", 100_000)
        for _ in range(60):
            srcs = rng.sample(["a", "b", "c", "iset", "hset", "a", "nokey"], rng.randrange(1, 5))
            weights = ["WEIGHTS", *[rng.choice(["1", "-2", "0.1", "inf", "0"]) for _ in srcs]]
            aggr = ["AGGREGATE", rng.choice(["SUM", "MIN", "MAX"])]
            send(
                c,
                rng.choice(["ZUNIONSTORE", "ZINTERSTORE"]),
                rng.choice(["dst", "a", "c"]),
                len(srcs),
                *srcs,
                *weights,
                *aggr,
            )
            if at_least(master, 6, 2):
                send(c, "ZDIFFSTORE", rng.choice(["dst", "b"]), len(srcs), *srcs)
                send(
                    c,
                    "ZRANGESTORE",
                    "dst",
                    rng.choice(["a", "b", "c"]),
                    "-inf",
                    "+inf",
                    "BYSCORE",
                    "LIMIT",
                    rng.randrange(0, 200),
                    rng.randrange(-1, 300),
                )
        assert_mirrors(mirror)


def test_zset_transactions_scripts_and_blocked_pops_mirror(master: RedisServer) -> None:
    with raw_client(master) as c, Mirror(master) as mirror:
        with c.pipeline(transaction=True) as p:
            p.execute_command("ZADD", "t", 1, "a", 2, "b", 3, "c")
            p.execute_command("ZINCRBY", "t", "-inf", "a")
            p.execute_command("ZUNIONSTORE", "u", 2, "t", "t", "WEIGHTS", 1, -1)
            p.execute_command("ZPOPMAX", "t")
            p.execute_command("PEXPIRE", "u", 100_000)
            p.execute()
        c.execute_command(
            "EVAL",
            "redis.call('ZADD', KEYS[1], 5, 'x', 6, 'y', '-0', 'z');"
            "redis.call('ZREM', KEYS[1], 'y');"
            "redis.call('ZINTERSTORE', KEYS[2], 2, KEYS[1], KEYS[1], 'AGGREGATE', 'MAX');"
            "return redis.call('ZPOPMIN', KEYS[1])",
            2,
            "lua",
            "lua2",
        )
        # A client blocked in BZPOPMIN is served by a later ZADD: the master propagates
        # the ZADD, then the pop as ZPOPMIN.
        result: list[Any] = []

        def pop() -> None:
            with master.client() as other:
                result.append(other.execute_command("BZPOPMIN", "waiting", 10))

        blocked = threading.Thread(target=pop)
        blocked.start()
        wait_for(lambda: master.info("clients")["blocked_clients"] == 1, what="a blocked pop")
        c.execute_command("ZADD", "waiting", 1, "first", 2, "second")
        blocked.join(10)
        assert result and result[0][1] == b"first"
        assert_mirrors(mirror)


def test_zero_sign_follows_the_masters_encoding_mirror(master: RedisServer) -> None:
    """-0 scores around every listpack/skiplist decision: creation by the first or longest
    member and by the number of pairs, conversion at the 129th member or at a member over
    64 bytes, STORE results converted back to a listpack, ZRANGESTORE's growing result."""
    long = "L" * 70
    with raw_client(master) as c, Mirror(master) as mirror:
        send(c, "ZADD", "a", "-0", "x", "-0", long)
        send(c, "ZADD", "b", "-0", "x")
        send(c, "ZADD", "b", "-0", "y", "1", "w")
        send(c, "ZINCRBY", "b", "-0", "z")
        send(c, "ZADD", "b", "-0", "w")
        send(c, "ZADD", "c", *[x for i in range(140) for x in ("-0", f"m{i:03}")])
        send(c, "ZADD", "d", 1, "m005")
        send(c, "ZADD", "d", *[x for i in range(130) for x in ("-0", f"m{i:03}")])
        send(c, "ZADD", "e", 1, "k")
        send(c, "ZADD", "e", "-0", "k2", "-0", long)
        send(c, "ZADD", "f", *[x for i in range(120) for x in ("-0", f"m{i:03}")])
        send(c, "ZADD", "f", *[x for i in range(120, 135) for x in ("-0", f"m{i:03}")])
        send(c, "ZUNIONSTORE", "u1", 1, "c")
        send(c, "ZUNIONSTORE", "u2", 2, "b", "b", "AGGREGATE", "MIN")
        send(c, "ZINTERSTORE", "u3", 2, "a", "e", "AGGREGATE", "MAX")
        send(c, "ZUNIONSTORE", "u4", 1, "e")
        if at_least(master, 6, 2):
            send(c, "ZRANGESTORE", "r1", "c", 0, -1)
            send(c, "ZRANGESTORE", "r2", "c", "-inf", "+inf", "BYSCORE")
            send(c, "ZRANGESTORE", "r3", "c", "+inf", "-inf", "BYSCORE", "REV")
            send(c, "ZRANGESTORE", "r4", "e", 0, -1)
            send(c, "ZRANGESTORE", "r5", "e", 0, -1, "REV")
            send(c, "ZRANGESTORE", "r6", "c", "[m010", "+", "BYLEX", "LIMIT", 0, 5)
            send(c, "ZRANGESTORE", "r7", "c", 5, 200)
        assert_mirrors(mirror)


# ---- mirror: geo ----


def _geo_points(rng: random.Random, n: int) -> list[tuple[float, float, str]]:
    pts: list[tuple[float, float, str]] = []
    for i in range(n):
        lon = round(rng.uniform(-3, 3), rng.randrange(1, 7))
        lat = round(rng.uniform(44, 48), rng.randrange(1, 7))
        pts.append((lon, lat, f"p{i}"))
        if rng.random() < 0.15:  # a twin: equally distant from everything
            pts.append((lon, lat, f"twin{i}"))
        if rng.random() < 0.1:  # on the same meridian as p{i}
            pts.append((lon, round(rng.uniform(44, 48), 5), f"mer{i}"))
    return pts


def _geoadd(c: redis.Redis, key: str, pts: list[tuple[float, float, str]]) -> None:
    for j in range(0, len(pts), 50):
        c.execute_command("GEOADD", key, *[x for p in pts[j : j + 50] for x in p])


def _world_points(rng: random.Random, n: int) -> list[tuple[float, float, str]]:
    """Anywhere, a third of them on the edges of the geohash grid (+-180, +-85.05112878)."""
    lons = [-180.0, 180.0, -179.9999999, 179.9999999, 0.0]
    lats = [-85.05112878, 85.05112878, -85.0511287, 85.0511287, 0.0, 80.1, -80.1, 66.5]
    pts = []
    for i in range(n):
        if rng.random() < 0.3:
            pts.append((rng.choice(lons), rng.choice(lats), f"w{i}"))
        else:
            pts.append((rng.uniform(-180, 180), rng.uniform(-85.05112878, 85.05112878), f"w{i}"))
    return pts


def test_geo_random_searches_mirror(master: RedisServer) -> None:
    rng = random.Random(4242)
    v62 = at_least(master, 6, 2)
    with raw_client(master) as c:
        pts = _geo_points(rng, 300)
        _geoadd(c, "g", pts)  # > 128 members: skiplist
        _geoadd(c, "small", pts[:40])  # listpack
        world = _world_points(rng, 200)
        _geoadd(c, "world", world)
        pts += world
        with Mirror(master) as mirror:
            if v62:
                send(c, "GEOADD", "small", "CH", "XX", "2.5", "45.5", "p1", "1", "46", "newp")
                send(c, "GEOADD", "small", "NX", "2.5", "45.5", "p2", "1.5", "46", "newq")
            for t in range(600):
                src = rng.choice(["g", "g", "small", "world", "nokey"])
                lon, lat = rng.uniform(-4, 4), rng.uniform(43, 49)
                if src == "world" or rng.random() < 0.1:
                    lon, lat = rng.choice(world)[:2]
                    if rng.random() < 0.5:
                        lon, lat = rng.uniform(-180, 180), rng.uniform(-85, 85)
                unit, scale = rng.choice(
                    [("m", 1000.0), ("km", 1.0), ("ft", 3280.0), ("mi", 0.62), ("KM", 1.0)]
                )
                radius = rng.choice([0, 1, 10, 50, 200, 800, 5000]) * rng.random() * scale
                opts: list[object] = []
                if rng.random() < 0.5:
                    opts += ["COUNT", rng.randrange(1, 40)]
                    if v62 and rng.random() < 0.3:
                        opts.append("ANY")
                if rng.random() < 0.5:
                    opts.append(rng.choice(["ASC", "DESC"]))
                if src == "world":
                    radius *= rng.choice([1, 10, 100])
                dst = rng.choice(["d0", "d1", "d2", "small"])
                mlon, mlat, member_name = rng.choice(pts)
                if (mlon == 180 or mlat == 85.05112878) and not at_least(master, 6, 0):
                    # 5.0 does not clamp the decoded cell centre: a search from a member on
                    # the top edge would encode an out-of-range point (undefined in C).
                    member_name = pts[0][2]
                form = rng.random()
                if v62 and form < 0.5:
                    frm = (
                        ["FROMLONLAT", lon, lat]
                        if rng.random() < 0.6
                        else ["FROMMEMBER", member_name]
                    )
                    by = (
                        ["BYRADIUS", radius, unit]
                        if rng.random() < 0.5
                        else [
                            "BYBOX",
                            radius * rng.uniform(0.2, 3),
                            radius * rng.uniform(0.2, 3),
                            unit,
                        ]
                    )
                    send(
                        c,
                        "GEOSEARCHSTORE",
                        dst,
                        src,
                        *frm,
                        *by,
                        *opts,
                        *(["STOREDIST"] if rng.random() < 0.5 else []),
                    )
                elif form < 0.75:
                    send(
                        c,
                        "GEORADIUS",
                        src,
                        lon,
                        lat,
                        radius,
                        unit,
                        *opts,
                        rng.choice(["STORE", "STOREDIST"]),
                        dst,
                    )
                else:
                    send(
                        c,
                        "GEORADIUSBYMEMBER",
                        src,
                        member_name,
                        radius,
                        unit,
                        *opts,
                        rng.choice(["STORE", "STOREDIST"]),
                        dst,
                    )
                if t % 100 == 99:
                    assert_mirrors(mirror)
            assert_mirrors(mirror)


def _boundary_workload(master: RedisServer, check: Callable[[Mirror], None]) -> None:
    """Radii and boxes equal (to the ulp) to a member's distance as the master's version
    computes it, centres on a member's meridian, and ties at the COUNT cut; `check` runs
    after every batch."""
    rng = random.Random(777)
    v62 = at_least(master, 6, 2)
    with raw_client(master) as c:
        pts = _geo_points(rng, 250)
        # Two crowds of members at one point each: COUNT cuts through equal distances.
        pts += [(1.0, 46.0, f"crowd{i}") for i in range(40)]
        pts += [(1.02, 46.01, f"other{i}") for i in range(25)]
        _geoadd(c, "g", pts)
        with Mirror(master) as mirror:
            variant = geo_variant(mirror.keyspace)
            clamp = variant >= V60
            distance = t_geo.distance_v70 if variant >= V70 else t_geo.distance_v50
            decoded = {m: decode_score(float(c.zscore("g", m)), clamp) for _, _, m in pts}
            names = list(decoded)
            for t in range(300):
                ox, oy = decoded[rng.choice(names)]
                if rng.random() < 0.5:
                    # On the member's meridian: 7.0's latitude-only shortcut, which rounds
                    # differently from the full haversine now and then (a few % of the
                    # centres tens of degrees away): look for such a centre.
                    clon = ox
                    for _ in range(400):
                        clat = min(max(oy + rng.uniform(-60, 60), -84.0), 84.0)
                        if t_geo.distance_v50(clon, clat, ox, oy) != t_geo.lat_distance(oy, clat):
                            break
                else:
                    clon, clat = ox + rng.uniform(-0.3, 0.3), oy + rng.uniform(-0.3, 0.3)
                if rng.random() < 0.15:
                    send(
                        c,
                        "GEORADIUS",
                        "g",
                        rng.uniform(0.98, 1.04),
                        rng.uniform(45.99, 46.02),
                        rng.choice([5, 50]),
                        "km",
                        "COUNT",
                        rng.randrange(1, 70),
                        rng.choice(["ASC", "DESC"]),
                        rng.choice(["STORE", "STOREDIST"]),
                        f"crowd{t % 3}",
                    )
                d = distance(clon, clat, ox, oy)
                d_other = t_geo.distance_v50(clon, clat, ox, oy)
                r = rng.choice(
                    [d, math.nextafter(d, 0), math.nextafter(d, math.inf), min(d, d_other)]
                )
                opts: list[object] = []
                if rng.random() < 0.6:
                    opts += ["COUNT", rng.randrange(1, 25)]
                    if v62 and rng.random() < 0.2:
                        opts.append("ANY")
                if rng.random() < 0.6:
                    opts.append(rng.choice(["ASC", "DESC"]))
                dst = f"d{t % 7}"
                if v62 and rng.random() < 0.4:
                    if variant >= V70:
                        hd = t_geo.lat_distance(oy, clat)
                        wd = t_geo.distance_v70(ox, oy, clon, oy)
                    else:
                        hd = t_geo.distance_v50(ox, oy, ox, clat)
                        wd = t_geo.distance_v50(ox, oy, clon, oy)
                    w = rng.choice([2 * wd, math.nextafter(2 * wd, 0), 2 * wd * 1.5])
                    h = rng.choice([2 * hd, math.nextafter(2 * hd, 0), 2 * hd * 1.5])
                    send(
                        c,
                        "GEOSEARCHSTORE",
                        dst,
                        "g",
                        "FROMLONLAT",
                        repr(clon),
                        repr(clat),
                        "BYBOX",
                        repr(w),
                        repr(h),
                        "m",
                        *opts,
                        "STOREDIST",
                    )
                elif rng.random() < 0.2 and v62:
                    send(
                        c,
                        "GEOSEARCHSTORE",
                        dst,
                        "g",
                        "FROMMEMBER",
                        rng.choice(names),
                        "BYRADIUS",
                        repr(r / 1000),
                        "km",
                        *opts,
                        *(["STOREDIST"] if rng.random() < 0.5 else []),
                    )
                else:
                    send(
                        c,
                        "GEORADIUS",
                        "g",
                        repr(clon),
                        repr(clat),
                        repr(r),
                        "m",
                        *opts,
                        rng.choice(["STORE", "STOREDIST"]),
                        dst,
                    )
                if t % 60 == 59:
                    check(mirror)


def test_geo_searches_on_exact_boundaries_mirror(master: RedisServer) -> None:
    _boundary_workload(master, assert_mirrors)


def _stable_sort_instead_of_pqsort(v: list[Any], cmp: Any, lrange: int, rrange: int) -> None:
    v.sort(key=lambda p: p[0], reverse=cmp is t_geo._cmp_desc)


@pytest.mark.parametrize("wrong", ["5.0 geo code", "6.2 geo code", "a stable sort"])
def test_geo_boundaries_tell_versions_apart(
    master: RedisServer, wrong: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Applying the boundary workload with another version's geo code (or a stable sort
    where 6.2+ runs pqsort) makes the mirror differ: the passing tests prove something."""
    real = V50 if master.kind.version < (6, 0) else V70
    if wrong == "a stable sort":
        if real == V50:
            pytest.skip("5.0 sorts with glibc's stable qsort")
        monkeypatch.setattr(t_geo, "pqsort", _stable_sort_instead_of_pqsort)
    else:
        variant = V50 if wrong.startswith("5.0") else V62
        if variant == real:
            pytest.skip("this master's own geo code")
        monkeypatch.setattr(t_geo, "geo_variant", lambda ks: variant)
    found: list[str] = []

    def collect(mirror: Mirror) -> None:
        mirror.sync()
        found.extend(compare_with_master(mirror))

    _boundary_workload(master, collect)
    assert found


@pytest.mark.parametrize("resort_max", [200_000, 50], ids=["re-sort", "apply-queue"])
def test_lazy_index_matches_the_members_whatever_the_interleaving(
    monkeypatch: pytest.MonkeyPatch, resort_max: int
) -> None:
    """ZSet queues index changes until a read (or re-sorts after many): ranks and ranges
    must always be those of the members and scores, however writes and reads interleave."""
    from replproxy.keyspace import values

    monkeypatch.setattr(values, "_ZSET_RESORT_MAX", resort_max)
    monkeypatch.setattr(values, "_ZSET_PENDING_MAX", 40)
    rng = random.Random(3)
    zs = ZSet()
    for step in range(6000):
        r = rng.random()
        member = b"m%d" % rng.randrange(300)
        if r < 0.6:
            zs.add(member, float(rng.choice([rng.randrange(50), -0.0, 0.0, 1.5])))
        elif r < 0.8:
            zs.discard(member)
        elif r < 0.85 and len(zs):
            zs.zpop(rng.randint(1, 3), highest=rng.random() < 0.5)
        elif r < 0.9 and len(zs):
            a = rng.randrange(len(zs))
            zs.remove_range(a, min(len(zs), a + rng.randint(1, 4)))
        if r > 0.995 or step % 997 == 0:  # reads rare enough for long queues
            expected = sorted((s, m) for m, s in zs.items())
            assert list(zs.index) == expected
            if expected:
                s, m = expected[len(expected) // 2]
                assert zs.rank(m) == len(expected) // 2
                lo, hi = zs.score_range(s, False, s, False)
                assert [x for x in expected if x[0] == s] == list(zs.index[lo:hi])


def test_score_bounds_read_as_the_masters_parser_reads_them() -> None:
    """strtod up to Redis 7.x and on Valkey; fast_float on Redis 8: no blanks, no hex, an
    overflow is infinity (measured on 8.2.3)."""
    from replproxy.errors import ReplyError
    from replproxy.keyspace.t_zset import read_score_bound

    assert read_score_bound(b" 5") == (5.0, False)
    assert read_score_bound(b"(0x1A") == (26.0, True)
    assert read_score_bound(b"1e400", True) == (math.inf, False)
    assert read_score_bound(b"(+.5", True) == (0.5, True)
    assert read_score_bound(b"", True) == (0.0, False)
    for bad in (b" 5", b"0x1A", b"nan", b"1e", b"5 ", b"(nan", b"nan(1)"):
        with pytest.raises(ReplyError):
            read_score_bound(bad, True)


def test_a_ziplist_holds_the_text_of_its_versions_d2string() -> None:
    """Before 7.0 `d2string` prints integers only strictly inside +-2^52 (else "%.17g"),
    and a ziplist keeps "-0"; a listpack holds an integer up to 2^62."""
    from replproxy.keyspace.t_zset import listpack_score_text

    assert listpack_score_text(2.0**62, "g17", ziplist=True) == b"4.6116860184273879e+18"
    assert listpack_score_text(2.0**62, "g17") == b"4611686018427387904"
    assert listpack_score_text(2.0**52 - 1, "g17", ziplist=True) == b"4503599627370495"
    assert listpack_score_text(-0.0, "g17", ziplist=True) == b"-0"
    assert listpack_score_text(-0.0, "g17") == b"0"
