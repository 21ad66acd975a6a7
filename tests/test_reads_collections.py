"""Read commands of lists, hashes and sets, judged against real masters (Redis 7.0, Valkey 8.1).

One master per kind for the whole module, filled with seeded random data: small collections
(listpack / intset on the master, so their order is deterministic and replies must be
byte-identical) and big ones (hashtable: order is the master's hash seed, so those replies
are compared as multisets, see notes 4b), integer-only sets, binary members and fields,
empty strings, wrong-type and missing keys. Each command is then called hundreds of times
with random and edge arguments (negative and out-of-range indexes, huge and zero counts,
malformed numbers, option combinations) in RESP2 and RESP3. Random commands (SRANDMEMBER,
HRANDFIELD) are checked by properties; errors are always byte-identical.

Hash field TTLs and HTTL & co. do not exist on these servers (Redis 7.4+), so they are
unit-tested on a keyspace built directly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from replproxy.keyspace import Keyspace
from replproxy.keyspace.reads import READ_COMMANDS, ReadContext, ReplyError
from replproxy.keyspace.t_hash import MAX_RANDOM_REPLY
from replproxy.rdb.model import HashValue
from replproxy.resp import reply
from tests.harness.appliers import run
from tests.harness.mirror import Mirror
from tests.harness.readcheck import Agg, ReadCheck, parse_reply
from tests.harness.servers import RedisServer, ServerKind, available_kinds, start_server

# Redis 5 has neither RESP3 nor most of these commands (LPOS, HRANDFIELD, SMISMEMBER...).
KINDS = [k for k in available_kinds() if k.major >= 7]
LLONG_MAX = 2**63 - 1
LLONG_MIN = -(2**63)

# Integers in every form a parser may get wrong.
BAD_NUMBERS = [
    "abc",
    "",
    "1.5",
    "+1",
    "01",
    " 1",
    "1 ",
    "-0",
    "0x10",
    "1e3",
    "9223372036854775808",
    "-9223372036854775809",
    "--1",
    "-",
]
EDGE_INDEXES = [
    "0",
    "1",
    "-1",
    "2",
    "-2",
    "5",
    "-5",
    "11",
    "12",
    "13",
    "-12",
    "-13",
    "1999",
    "2000",
    "-2000",
    "-2001",
    str(LLONG_MAX),
    str(LLONG_MIN),
    str(LLONG_MAX - 1),
    str(LLONG_MIN + 1),
    *BAD_NUMBERS,
]
EDGE_COUNTS = [
    "0",
    "1",
    "-1",
    "2",
    "-2",
    "3",
    "7",
    "-7",
    "19",
    "20",
    "21",
    "-20",
    "100",
    "-100",
    "300",
    "1000",
    str(LLONG_MAX),
    str(-LLONG_MAX),
    str(LLONG_MIN),
    str(LLONG_MAX // 2),
    str(LLONG_MAX // 2 + 1),
    str(-(LLONG_MAX // 2)),
    str(-(LLONG_MAX // 2) - 1),
    *BAD_NUMBERS,
]

# ---- a small RESP parser that keeps the reply kinds (hiredis merges sets into lists) ----


def canon(v: Any) -> Any:
    """A reply with every aggregate's order forgotten (a multiset), kinds kept."""
    if isinstance(v, Agg) and v.kind == "%":  # a map: a multiset of (field, value) pairs
        pairs = zip(v.items[::2], v.items[1::2])
        return ("%", tuple(sorted(((canon(k), canon(x)) for k, x in pairs), key=repr)))
    if isinstance(v, Agg):
        return (v.kind, tuple(sorted((canon(x) for x in v.items), key=repr)))
    if isinstance(v, tuple):
        return tuple(canon(x) for x in v)
    return v


def same_multiset(rc: ReadCheck, *argv: Any) -> bool:
    """Equal as multisets in RESP2 and RESP3 (byte-identical when it is an error)."""
    for proto in (2, 3):
        mine, theirs = rc.both(argv, proto)
        if mine == theirs:
            continue
        if theirs[:1] == b"-" or canon(parse_reply(mine)) != canon(parse_reply(theirs)):
            print(f"RESP{proto} {argv!r}:\n  replproxy {mine!r}\n  master    {theirs!r}")
            return False
    return True


# ---- the data ----


@dataclass
class Env:
    server: RedisServer
    mirror: Mirror
    rc: ReadCheck
    kind: ServerKind
    lists: dict[str, list[bytes]]
    hashes: dict[str, dict[bytes, bytes]]
    sets: dict[str, set[bytes]]

    def encoding(self, key: str) -> bytes:
        with self.server.client() as c:
            return c.object("encoding", key)


def _rand_bytes(rng: random.Random, lo: int, hi: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randint(lo, hi)))


def _make_data(
    rng: random.Random,
) -> tuple[dict[str, list[bytes]], dict[str, dict[bytes, bytes]], dict[str, set[bytes]]]:
    alphabet = [b"a", b"b", b"c", b"1", b"2", b"-3", b"", b"\x00\xff", b"a b", b"x" * 100]
    lists = {
        "l:small": [rng.choice(alphabet[:8]) for _ in range(12)],
        "l:big": [rng.choice(alphabet) for _ in range(2000)],
        "l:one": [b"x"],
        "l:ints": [
            str(rng.choice([0, 1, -1, 7, LLONG_MAX, LLONG_MIN, 2**40])).encode() for _ in range(50)
        ],
    }
    hashes = {
        "h:small": {
            b"f%d" % i: rng.choice([b"v%d" % i, b"%d" % rng.randint(-99, 99), b"", b"\x00\xff\r\n"])
            for i in range(20)
        },
        "h:big": {b"field:%d" % i: b"value:%d" % rng.randrange(10**6) for i in range(700)},
        "h:mid": {b"field:%d" % i: b"%d" % rng.randrange(10**6) for i in range(300)},
        "h:wide": {b"a": b"1", b"b": b"y" * 100, b"c": b"", b"d": b"-5", b"e": b"e"},
        "h:one": {b"only": b"one"},
        "h:bin": {_rand_bytes(rng, 1, 6): _rand_bytes(rng, 0, 8) for _ in range(60)},
    }
    ints = [0, 1, -1, 2, 10, -5, 3, 77, LLONG_MAX, LLONG_MIN, 2**32, -(2**32), 123456789]
    sets = {
        "s:int": {
            str(x).encode() for x in ints + [rng.randint(-(10**12), 10**12) for _ in range(90)]
        },
        "s:int2": {str(x).encode() for x in ints[:8] + [rng.randint(-50, 50) for _ in range(30)]},
        "s:int3": {b"3", b"10", b"77", b"0", b"1000"},
        "s:intbig": {str(rng.randint(-(10**9), 10**9)).encode() for _ in range(600)},
        "s:str": {rng.choice([b"m%d" % i, b"%d" % i]) for i in range(20)} | {b"0", b"1"},
        "s:strbig": {b"member:%d" % rng.randrange(10**6) for _ in range(400)} | {b"0", b"3"},
        "s:bin": {_rand_bytes(rng, 0, 5) for _ in range(40)} | {b"", b"\n", b"1\n2"},
        "s:mixed": {b"1", b"2", b"3", b"x"},
        "s:one": {b"lonely"},
    }
    return lists, hashes, sets


def _fill(
    server: RedisServer,
    lists: dict[str, list[bytes]],
    hashes: dict[str, dict[bytes, bytes]],
    sets: dict[str, set[bytes]],
) -> None:
    with server.client() as c:
        p = c.pipeline(transaction=False)
        for k, lst in lists.items():
            p.rpush(k, *lst)
        for k, h in hashes.items():
            p.hset(k, mapping=h)
        for k, s in sets.items():
            members = sorted(s)
            random.Random(k).shuffle(members)
            p.sadd(k, *members)
        p.set("str", "a string")
        p.zadd("z", {"m": 1})
        p.execute()


@pytest.fixture(scope="module", params=KINDS, ids=[k.name for k in KINDS])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    kind: ServerKind = request.param
    server = start_server(kind)
    try:
        lists, hashes, sets = _make_data(random.Random(20240601))
        _fill(server, lists, hashes, sets)
        with Mirror(server) as mir:
            mir.sync()
            rc = ReadCheck(server, mir)
            try:
                yield Env(server, mir, rc, kind, lists, hashes, sets)
            finally:
                rc.close()
    finally:
        server.stop()


OTHER_KEYS = ["missing", "str", "z"]


# ---- lists ----


def test_llen_lindex_lrange(env: Env) -> None:
    rc = env.rc
    rng = random.Random(1)
    keys = [*env.lists, *OTHER_KEYS, "h:small", "s:int"]
    for k in keys:
        assert rc.same("llen", k)
    for k in keys:
        for i in EDGE_INDEXES:
            assert rc.same("lindex", k, i)
    for k in [*env.lists, "missing", "str"]:
        for a in EDGE_INDEXES:
            for b in rng.sample(EDGE_INDEXES, 8):
                assert rc.same("lrange", k, a, b)
    for _ in range(300):
        k = rng.choice(list(env.lists))
        n = len(env.lists[k])
        assert rc.same("lrange", k, rng.randint(-n - 3, n + 3), rng.randint(-n - 3, n + 3))
    assert rc.same("lrange", "l:big", "0", "-1")


def _lpos_argv(rng: random.Random, key: str, elements: list[bytes]) -> list[Any]:
    argv: list[Any] = ["lpos", key, rng.choice([*elements, b"nope", b"A"])]
    values = {
        "RANK": [
            "1",
            "2",
            "3",
            "-1",
            "-2",
            "-3",
            "0",
            "100",
            "-100",
            str(LLONG_MAX),
            str(-LLONG_MAX),
            str(LLONG_MIN),
            *rng.sample(BAD_NUMBERS, 2),
        ],
        "COUNT": [
            "0",
            "1",
            "2",
            "3",
            "5",
            "1000",
            "-1",
            str(LLONG_MAX),
            str(LLONG_MIN),
            *rng.sample(BAD_NUMBERS, 2),
        ],
        "MAXLEN": [
            "0",
            "1",
            "2",
            "5",
            "10",
            "1999",
            "100000",
            "-1",
            str(LLONG_MAX),
            *rng.sample(BAD_NUMBERS, 2),
        ],
    }
    for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4])):
        opt = rng.choice(list(values))
        argv += [rng.choice([opt, opt.lower(), opt.title()]), rng.choice(values[opt])]
    if rng.random() < 0.05:
        argv.append(rng.choice(["RANK", "COUNT", "maxlen", "FOO"]))  # option without value
    if rng.random() < 0.03:
        argv[3:3] = ["BAR", "1"]
    return argv


def test_lpos(env: Env) -> None:
    rc = env.rc
    rng = random.Random(2)
    for _ in range(600):
        key = rng.choice([*env.lists, *env.lists, *OTHER_KEYS])
        elements = sorted(set(env.lists.get(key, [b"a"])))
        assert rc.same(*_lpos_argv(rng, key, elements))
    # RANK LONG_MIN: Redis 7.0 acts on it (every match from the tail), 7.2+/Valkey refuse it
    for extra in ([], ["COUNT", "0"], ["COUNT", "1"], ["COUNT", "2", "MAXLEN", "1500"]):
        assert rc.same("lpos", "l:big", "a", "RANK", str(LLONG_MIN), *extra)


# ---- hashes ----


def test_hash_field_reads(env: Env) -> None:
    rc = env.rc
    rng = random.Random(3)
    keys = [*env.hashes, *OTHER_KEYS, "l:small", "s:int"]
    for k in keys:
        fields = list(env.hashes.get(k, {}))
        probes = [*rng.sample(fields, min(5, len(fields))), b"", b"nope", b"F0"]
        assert rc.same("hlen", k)
        for f in probes:
            assert rc.same("hget", k, f)
            assert rc.same("hexists", k, f)
            assert rc.same("hstrlen", k, f)
        for _ in range(10):
            assert rc.same("hmget", k, *rng.choices([*fields, b"nope", b""], k=rng.randint(1, 8)))


def test_hgetall_hkeys_hvals(env: Env) -> None:
    rc = env.rc
    for k in env.hashes:
        listpack = env.encoding(k) in (b"listpack", b"ziplist")
        assert listpack == (k not in ("h:big", "h:wide")), k
        for cmd in ("hgetall", "hkeys", "hvals"):
            # listpack hashes keep insertion order on the master and here: byte-identical
            if listpack:
                assert rc.same(cmd, k)
            else:
                assert same_multiset(rc, cmd, k)
    for k in [*OTHER_KEYS, "l:one", "s:one"]:
        for cmd in ("hgetall", "hkeys", "hvals"):
            assert rc.same(cmd, k)


def _master_can_answer(key_exists: bool, count: str, withvalues: bool = False) -> bool:
    """False for a huge negative count on an existing key: the master would stream that many
    random elements (replproxy refuses, see the last test)."""
    try:
        n = int(count)
    except ValueError:
        return True
    if n < -LLONG_MAX or (withvalues and n < -(LLONG_MAX // 2)) or str(n) != count:
        return True  # refused while parsing
    return not key_exists or n >= -1000


def _check_hrandfield_shape(
    env: Env, key: str, count: int, withvalues: bool, proto: int, raw: bytes
) -> None:
    h = env.hashes.get(key, {})
    v = parse_reply(raw)
    assert isinstance(v, Agg) and v.kind == "*", raw
    if withvalues and proto == 3:
        assert all(isinstance(p, Agg) and p.kind == "*" and len(p.items) == 2 for p in v.items)
        pairs = [tuple(p.items) for p in v.items]
    elif withvalues:
        assert len(v.items) % 2 == 0
        pairs = list(zip(v.items[::2], v.items[1::2]))
    else:
        pairs = [(f, h.get(f)) for f in v.items]
    fields = [f for f, _ in pairs]
    assert all(h.get(f) == val for f, val in pairs), raw
    if count >= 0:
        assert len(fields) == min(count, len(h))
        assert len(set(fields)) == len(fields)  # no repeats with a positive count
    else:
        assert len(fields) == (-count if h else 0)


def test_hrandfield(env: Env) -> None:
    rc = env.rc
    rng = random.Random(4)
    keys = [*env.hashes, *OTHER_KEYS, "l:one"]
    for k in keys:
        assert rc.same("hrandfield", k, "1", "withvalues", "extra")
        assert rc.same("hrandfield", k, "1", "withscores")
        for count in EDGE_COUNTS:
            for extra in ([], ["WITHVALUES"], ["withvalues"]):
                argv = ["hrandfield", k, count, *extra]
                if not _master_can_answer(
                    k in env.hashes or k in OTHER_KEYS[1:], count, bool(extra)
                ):
                    continue
                for proto in (2, 3):
                    mine, theirs = rc.both(argv, proto)
                    if theirs[:1] == b"-" or k not in env.hashes:
                        assert mine == theirs, (argv, mine, theirs)
                        continue
                    n = int(count)
                    _check_hrandfield_shape(env, k, n, bool(extra), proto, mine)
                    _check_hrandfield_shape(env, k, n, bool(extra), proto, theirs)
                    if n >= len(env.hashes[k]) and k != "h:big" and k != "h:wide":
                        assert mine == theirs  # the whole listpack hash, in its order
        # no count: one field, or null
        for proto in (2, 3):
            mine, theirs = rc.both(["hrandfield", k], proto)
            if k in env.hashes:
                assert parse_reply(mine) in env.hashes[k] and parse_reply(theirs) in env.hashes[k]
            else:
                assert mine == theirs
    # negative counts repeat fields: a 1-field hash answers the same field n times
    assert rc.same("hrandfield", "h:one", "-5", "withvalues")
    for _ in range(100):
        k = rng.choice(list(env.hashes))
        n = rng.randint(-400, 400)
        wv = rng.random() < 0.5
        proto = rng.choice([2, 3])
        argv = ["hrandfield", k, str(n)] + (["withvalues"] if wv else [])
        _check_hrandfield_shape(env, k, n, wv, proto, rc.relay_reply(argv, proto))


# ---- HSCAN / SSCAN ----


CURSORS = [
    "abc",
    "1.5",
    " 1",
    "1 ",
    "0x1",
    "18446744073709551616",
    "",
    "-",
    "+0",
    "-0",
    "00",
    "-1",
    "+1",
    "0\x001",
    "\t0",
    str(2**64 - 1),
    "-18446744073709551615",
]


def _scan_errors(env: Env, cmd: str, key: str, small: bool) -> None:
    """Cursor forms and bad options. A cursor the master accepts on a big key is a position
    in its own hash table, so there only errors must agree."""
    rc = env.rc
    for cur in CURSORS:
        for proto in (2, 3):
            mine, theirs = rc.both([cmd, key, cur], proto)
            if small or theirs[:1] == b"-" or cur in ("", "+0", "-0", "00"):
                assert mine[:1] == theirs[:1], (cur, mine, theirs)
                if small or theirs[:1] == b"-":
                    assert mine == theirs, (cur, mine, theirs)
    for opts in (
        ["COUNT", "0"],
        ["COUNT", "-1"],
        ["COUNT", "abc"],
        ["COUNT"],
        ["MATCH"],
        ["TYPE", "string"],
        ["NOVALUES"],
        ["novalues", "COUNT", "2"],
        ["NOSCORES"],
        ["FOO"],
        ["MATCH", "a", "MATCH", "*", "COUNT", "3"],
        ["count", "1", "junk"],
        ["COUNT", str(LLONG_MAX)],
        ["COUNT", str(LLONG_MIN)],
        ["COUNT", "1.0"],
    ):
        for key_ in (key, "missing", "str"):
            if small or key_ != key:
                assert rc.same(cmd, key_, "0", *opts)
                continue
            for proto in (2, 3):
                mine, theirs = rc.both([cmd, key_, "0", *opts], proto)
                assert mine == theirs if theirs[:1] == b"-" else mine[:1] == b"*"


def _rand_pattern(rng: random.Random, alphabet: bytes) -> bytes:
    parts = []
    for _ in range(rng.randint(0, 5)):
        r = rng.random()
        if r < 0.2:
            parts.append(b"*" * rng.randint(1, 2))
        elif r < 0.3:
            parts.append(b"?")
        elif r < 0.5:
            body = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 3)))
            if rng.random() < 0.3:
                body = bytes([body[0] if body else 0x61, 0x2D, rng.choice(alphabet)]) + body
            parts.append(
                b"["
                + (b"^" if rng.random() < 0.3 else b"")
                + body
                + (b"]" if rng.random() < 0.9 else b"")
            )
        elif r < 0.55:
            parts.append(b"\\" + bytes([rng.choice(alphabet)]))
        else:
            parts.append(bytes([rng.choice(alphabet)]))
    return b"".join(parts)


def _full_scan(
    rc: ReadCheck, where: str, cmd: str, key: str, opts: list[Any], proto: int
) -> list[bytes]:
    """Every element a whole scan returns (cursor 0 until the reply's cursor is 0)."""
    cursor = b"0"
    out: list[bytes] = []
    for _ in range(100000):
        argv = [cmd, key, cursor, *opts]
        raw = rc.relay_reply(argv, proto) if where == "relay" else rc.master_reply(argv, proto)
        v = parse_reply(raw)
        assert isinstance(v, Agg) and v.kind == "*" and len(v.items) == 2, raw
        cursor, items = v.items
        assert isinstance(items, Agg) and items.kind == "*"
        out += items.items
        if cursor == b"0":
            return out
    raise AssertionError("scan did not end")


def _pairs(flat: list[bytes]) -> set[tuple[bytes, bytes]]:
    assert len(flat) % 2 == 0
    return set(zip(flat[::2], flat[1::2]))


def test_hscan(env: Env) -> None:
    rc = env.rc
    rng = random.Random(5)
    _scan_errors(env, "hscan", "h:small", small=True)
    _scan_errors(env, "hscan", "h:big", small=False)
    novalues = env.kind.dialect.scan_novalues
    # listpack hashes: everything in one reply, cursor 0 whatever the cursor
    for k in ("h:small", "h:one", "h:bin"):
        for cur in ("0", "+0", "00", "1", "12345", str(2**64 - 1)):
            assert rc.same("hscan", k, cur)
            assert rc.same("hscan", k, cur, "COUNT", "1", "MATCH", "f1*")
            if novalues:
                assert rc.same("hscan", k, cur, "NOVALUES")
    alphabet = bytes(sorted({b for f in env.hashes["h:bin"] for b in f}))[:40] + b"f1*?[]^-\\"
    for _ in range(400):
        pat = _rand_pattern(rng, alphabet)
        assert rc.same("hscan", "h:bin", "0", "MATCH", pat)
    for _ in range(100):
        pat = _rand_pattern(rng, b"f0123456789")
        extra: list[bytes | str] = ["NOVALUES"] if novalues and rng.random() < 0.5 else []
        assert rc.same("hscan", "h:small", "0", "MATCH", pat, *extra)
    # hashtable hashes: every field once at least, whatever the batches
    opts: list[str]
    for opts in (
        [],
        ["COUNT", "1"],
        ["COUNT", "7"],
        ["COUNT", "1000"],
        ["MATCH", "field:1*"],
        ["MATCH", "*:2?", "COUNT", "50"],
        ["MATCH", "nothing*"],
    ):
        for proto in (2, 3):
            mine = _full_scan(rc, "relay", "hscan", "h:big", opts, proto)
            theirs = _full_scan(rc, "master", "hscan", "h:big", opts, proto)
            assert _pairs(mine) == _pairs(theirs)
            assert len(mine) == 2 * len(_pairs(mine))  # no field twice (the master may, if
            # its table is rehashing)
    if novalues:
        mine = _full_scan(rc, "relay", "hscan", "h:big", ["NOVALUES", "COUNT", "20"], 3)
        theirs = _full_scan(rc, "master", "hscan", "h:big", ["NOVALUES", "COUNT", "20"], 3)
        assert sorted(mine) == sorted(theirs) == sorted(env.hashes["h:big"])
    assert same_multiset(rc, "hscan", "h:wide", "0", "MATCH", "[ab]")  # hashtable: any order


def test_sscan(env: Env) -> None:
    rc = env.rc
    rng = random.Random(7)
    _scan_errors(env, "sscan", "s:int", small=True)
    _scan_errors(env, "sscan", "s:strbig", small=False)
    for k in ("s:int", "s:int2", "s:int3"):
        assert env.encoding(k) == b"intset"
        for cur in ("0", "1", "99"):
            assert rc.same("sscan", k, cur)
            assert rc.same("sscan", k, cur, "MATCH", "1*", "COUNT", "1")
        for _ in range(50):
            assert rc.same("sscan", k, "0", "MATCH", _rand_pattern(rng, b"-0123456789"))
    lp_sets = env.kind.dialect.listpack_sets
    if lp_sets:  # listpack sets: one reply, cursor 0, insertion order
        for k in ("s:str", "s:bin", "s:mixed", "s:one"):
            assert env.encoding(k) == b"listpack"
            assert rc.same("sscan", k, "0")
            assert rc.same("sscan", k, "7", "MATCH", "m1*")
    for k in ("s:intbig", "s:strbig", *([] if lp_sets else ["s:str", "s:bin"])):
        assert env.encoding(k) == b"hashtable"
        for opts in ([], ["COUNT", "1"], ["COUNT", "33"], ["MATCH", "*1*"], ["MATCH", "-*"]):
            mine = _full_scan(rc, "relay", "sscan", k, opts, 3)
            theirs = _full_scan(rc, "master", "sscan", k, opts, 2)
            assert set(mine) == set(theirs) and len(mine) == len(set(mine))


# ---- sets ----


def test_set_membership(env: Env) -> None:
    rc = env.rc
    rng = random.Random(8)
    keys = [*env.sets, *OTHER_KEYS, "l:one", "h:one"]
    for k in keys:
        members = sorted(env.sets.get(k, set()))
        probes = [*rng.sample(members, min(6, len(members))), b"", b"nope", b"01", b"-0"]
        assert rc.same("scard", k)
        for m in probes:
            assert rc.same("sismember", k, m)
        for _ in range(8):
            assert rc.same("smismember", k, *rng.choices(probes, k=rng.randint(1, 6)))


def _set_intset_only(env: Env, keys: list[str]) -> bool:
    return all(env.encoding(k) == b"intset" for k in keys if k in env.sets)


def test_smembers(env: Env) -> None:
    rc = env.rc
    for k in env.sets:
        if env.encoding(k) == b"intset":
            assert rc.same("smembers", k)  # intset order: ascending as int64
        else:
            assert same_multiset(rc, "smembers", k)
    for k in [*OTHER_KEYS, "l:one"]:
        assert rc.same("smembers", k)


def test_sinter_sunion_sdiff(env: Env) -> None:
    rc = env.rc
    rng = random.Random(9)
    pool = [
        *env.sets,
        *env.sets,
        "s:int",
        "s:int2",
        "s:int3",
        "missing",
        "missing",
        "str",
        "z",
        "l:one",
    ]
    for _ in range(300):
        keys = rng.choices(pool, k=rng.randint(1, 4))
        for cmd in ("sinter", "sunion", "sdiff"):
            theirs = rc.master_reply([cmd, *keys])
            deterministic = _set_intset_only(env, keys) and (
                theirs[:1] == b"-" or len(parse_reply(theirs).items) <= 512
            )
            if deterministic:
                assert rc.same(cmd, *keys)
            else:
                assert same_multiset(rc, cmd, *keys)


def test_sintercard(env: Env) -> None:
    rc = env.rc
    rng = random.Random(10)
    pool = [*env.sets, "s:int", "s:int2", "missing", "str", "l:one"]
    for _ in range(400):
        keys = rng.choices(pool, k=rng.randint(1, 4))
        numkeys = rng.choice(
            [str(len(keys))] * 4
            + [
                "0",
                "-1",
                str(len(keys) + 1),
                str(max(1, len(keys) - 1)),
                "abc",
                "1.0",
                str(LLONG_MAX),
                str(LLONG_MIN),
            ]
        )
        argv: list[Any] = ["sintercard", numkeys, *keys]
        for _ in range(rng.choice([0, 0, 1, 1, 2])):
            argv += [
                rng.choice(["LIMIT", "limit"]),
                rng.choice(["0", "1", "2", "5", "1000", "-1", str(LLONG_MAX), "x", ""]),
            ]
        if rng.random() < 0.05:
            argv.append(rng.choice(["LIMIT", "FOO"]))
        assert rc.same(*argv)


def test_srandmember(env: Env) -> None:
    rc = env.rc
    keys = [*env.sets, *OTHER_KEYS, "l:one"]
    for k in keys:
        assert rc.same("srandmember", k, "1", "2")
        s = env.sets.get(k)
        for count in EDGE_COUNTS:
            if not _master_can_answer(s is not None, count):
                continue
            for proto in (2, 3):
                mine, theirs = rc.both(["srandmember", k, count], proto)
                if theirs[:1] == b"-" or s is None:
                    assert mine == theirs, (k, count, mine, theirs)
                    continue
                n = int(count)
                for raw in (mine, theirs):
                    v = parse_reply(raw)
                    assert isinstance(v, Agg) and v.kind == "*"  # an array even in RESP3
                    assert set(v.items) <= s
                    if n >= 0:
                        assert len(v.items) == min(n, len(s))
                        assert len(set(v.items)) == len(v.items)
                    else:
                        assert len(v.items) == -n
                if n >= len(s) and env.encoding(k) == b"intset":
                    assert mine == theirs  # the whole intset, in order
        for proto in (2, 3):
            mine, theirs = rc.both(["srandmember", k], proto)
            if s is None:
                assert mine == theirs
            else:
                assert parse_reply(mine) in s and parse_reply(theirs) in s


# ---- without a server: field TTLs, HTTL & co., limits ----


def _call(ks: Keyspace, now: int, proto: int, *argv: Any) -> bytes:
    args = [a if isinstance(a, bytes) else str(a).encode() for a in argv]
    ctx = ReadContext(ks, proto=proto, now=now)
    try:
        return READ_COMMANDS[args[0].lower()](ctx, args)
    except ReplyError as e:
        return reply.error(e.msg)


NOW = 1_700_000_000_000


def _ttl_keyspace() -> Keyspace:
    ks = Keyspace()
    run(ks, "hset", "h", "gone", "1", "soon", "22", "keep", "333", "edge", "4")
    run(ks, "hpexpireat", "h", NOW - 1, "FIELDS", 1, "gone")
    run(ks, "hpexpireat", "h", NOW + 1500, "FIELDS", 1, "soon")
    run(ks, "hpexpireat", "h", NOW, "FIELDS", 1, "edge")  # expires == now: still alive
    run(ks, "set", "str", "x")
    assert type(ks.get(0, b"h")) is HashValue
    return ks


def test_hash_fields_past_their_ttl_are_hidden_but_counted() -> None:
    ks = _ttl_keyspace()
    for proto in (2, 3):

        def call(*argv: Any, proto: int = proto) -> bytes:
            return _call(ks, NOW, proto, *argv)

        nul = reply.null(proto)
        assert call("hget", "h", "gone") == nul
        assert call("hget", "h", "soon") == b"$2\r\n22\r\n"
        assert call("hget", "h", "edge") == b"$1\r\n4\r\n"
        assert call("hlen", "h") == b":4\r\n"
        assert call("hexists", "h", "gone") == b":0\r\n"
        assert call("hexists", "h", "keep") == b":1\r\n"
        assert call("hstrlen", "h", "gone") == b":0\r\n"
        assert call("hstrlen", "h", "keep") == b":3\r\n"
        assert call("hmget", "h", "gone", "keep") == reply.bulk_array([None, b"333"], proto)
        # A listpackex (Redis 7.4+) lists the fields with a TTL first, by expiry.
        live = [b"edge", b"4", b"soon", b"22", b"keep", b"333"]
        assert call("hgetall", "h") == reply.bulk_map(live, proto)
        assert call("hkeys", "h") == reply.bulk_array(live[::2])
        assert call("hvals", "h") == reply.bulk_array(live[1::2])
        assert call("hscan", "h", "0") == b"*2\r\n$1\r\n0\r\n" + reply.bulk_array(live)
        for _ in range(50):
            assert call("hrandfield", "h") != reply.bulk(b"gone")
            picked = parse_reply(call("hrandfield", "h", "-10", "withvalues"))
            pairs = (
                [tuple(p.items) for p in picked.items]
                if proto == 3
                else list(zip(picked.items[::2], picked.items[1::2]))
            )
            assert len(pairs) == 10
            assert all(
                (f, v) in {(b"soon", b"22"), (b"keep", b"333"), (b"edge", b"4")} for f, v in pairs
            )
            flat = parse_reply(call("hrandfield", "h", "10"))
            assert set(flat.items) == {b"soon", b"keep", b"edge"}
            many = parse_reply(call("hrandfield", "h", "-30"))
            assert len(many.items) == 30 and b"gone" not in many.items
    # a moment later "soon" and "edge" are hidden too; once every field is, the hash reads
    # empty (but HLEN still counts them: the master's HDELs have not come)
    assert _call(ks, NOW + 1501, 2, "hkeys", "h") == reply.bulk_array([b"keep"])
    run(ks, "hpexpireat", "h", NOW + 10, "FIELDS", 1, "keep")
    later = NOW + 5000
    assert _call(ks, later, 3, "hgetall", "h") == b"%0\r\n"
    assert _call(ks, later, 3, "hrandfield", "h") == b"_\r\n"
    assert _call(ks, later, 2, "hrandfield", "h", "-3") == b"*0\r\n"
    assert _call(ks, later, 2, "hlen", "h") == b":4\r\n"


def test_httl_hpttl_hexpiretime_hpexpiretime() -> None:
    ks = _ttl_keyspace()
    run(ks, "hset", "plain", "a", "1")

    def call(*argv: Any) -> bytes:
        return _call(ks, NOW, 2, *argv)

    fields = ["gone", "soon", "keep", "edge", "nope"]
    n = len(fields)
    assert call("httl", "h", "FIELDS", n, *fields) == b"*5\r\n:-2\r\n:2\r\n:-1\r\n:0\r\n:-2\r\n"
    assert call("hpttl", "h", "fields", n, *fields) == (
        b"*5\r\n:-2\r\n:1500\r\n:-1\r\n:0\r\n:-2\r\n"
    )
    assert call("hexpiretime", "h", "FIELDS", n, *fields) == (
        b"*5\r\n:-2\r\n:%d\r\n:-1\r\n:%d\r\n:-2\r\n"
        % ((NOW + 1500 + 999) // 1000, (NOW + 999) // 1000)
    )
    assert call("hpexpiretime", "h", "FIELDS", n, *fields) == (
        b"*5\r\n:-2\r\n:%d\r\n:-1\r\n:%d\r\n:-2\r\n" % (NOW + 1500, NOW)
    )
    assert call("httl", "plain", "FIELDS", 2, "a", "b") == b"*2\r\n:-1\r\n:-2\r\n"
    assert call("httl", "missing", "FIELDS", 2, "a", "b") == b"*2\r\n:-2\r\n:-2\r\n"
    # errors, in httlGenericCommand's order: type, FIELDS, numfields, count of fields
    wrongtype = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    assert call("httl", "str", "FIELDS", 0, "a") == wrongtype
    assert call("httl", "h", "FIELD", 1, "a") == (
        b"-ERR Mandatory argument FIELDS is missing or not at the right position\r\n"
    )
    for bad in ("0", "-1", "x", ""):
        assert call("hpttl", "h", "FIELDS", bad, "a") == (
            b"-ERR Number of fields must be a positive integer\r\n"
        )
    for num in ("2", "3"):
        assert call("hexpiretime", "missing", "FIELDS", num, "a") == (
            b"-ERR The `numfields` parameter must match the number of arguments\r\n"
        )


def test_huge_negative_random_counts_are_refused() -> None:
    ks = Keyspace()
    run(ks, "hset", "h", "a", "1")
    run(ks, "sadd", "s", "a")
    refused = _call(ks, NOW, 2, "hrandfield", "h", str(-MAX_RANDOM_REPLY - 1))
    assert refused.startswith(b"-ERR replproxy refuses")
    assert _call(ks, NOW, 2, "srandmember", "s", str(-LLONG_MAX)).startswith(b"-ERR replproxy")
    assert _call(ks, NOW, 2, "srandmember", "s", "-3") == b"*3\r\n" + b"$1\r\na\r\n" * 3


def test_option_words_are_compared_as_c_strings(env: Env) -> None:
    """Options are matched with strcasecmp, which stops at a NUL byte."""
    rc = env.rc
    assert rc.same("lpos", "l:small", "a", "RANK\x00junk", "-1", "count\x00", "0")
    assert rc.same("lpos", "l:small", "a", "\x00RANK", "1")
    assert rc.same("hrandfield", "h:one", "2", "WITHVALUES\x00x")
    assert rc.same("hscan", "h:small", "0", "COUNT\x00?", "2", "match\x00", "f1*")
    assert rc.same("sscan", "s:int", "0\x00garbage", "MATCH", "1*")
    assert rc.same("sintercard", "2", "s:int", "s:int2", "LIMIT\x00x", "3")
    assert rc.same("sscan", "s:int", "0", "MATCH", "1\x00*")  # the pattern itself is binary


def test_a_scan_cursor_belongs_to_its_command_and_key() -> None:
    """HSCAN/SSCAN cursors name a snapshot of ONE collection: reusing one for another key or
    another command is an invalid cursor, not a page of somebody else's elements."""
    from replproxy.keyspace import Keyspace
    from replproxy.keyspace.reads import READ_COMMANDS, ReadContext, ReplyError

    ks = Keyspace()
    for name in (b"h1", b"h2"):
        ks.set(0, name, {b"f%d" % i: b"v" for i in range(600)})  # beyond listpack size
    ks.set(0, b"s1", {b"m%d" % i for i in range(600)})
    c = ReadContext(ks)
    first = READ_COMMANDS[b"hscan"](c, [b"hscan", b"h1", b"0", b"COUNT", b"10"])
    cursor = first.split(b"\r\n")[2]
    assert cursor != b"0"
    READ_COMMANDS[b"hscan"](c, [b"hscan", b"h1", cursor])  # the same key: fine
    for cmd, key in ((b"hscan", b"h2"), (b"sscan", b"s1")):
        with pytest.raises(ReplyError) as e:
            READ_COMMANDS[cmd](c, [cmd, key, cursor])
        assert e.value.msg == b"ERR invalid cursor"
