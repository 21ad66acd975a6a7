"""Seeded random READ commands for a differential test, and the rules to compare replies.

`ReadGen(catalog, seed).generate(n)` produces `Step`s: one or more `Call`s (argv, comparison
rule, how many replies) drawn at random over every command a read-only replica serves
(notes/commands.md section 4), with edge-case arguments: missing keys, keys of the wrong type,
logically expired keys, negative and out-of-range indexes, bad numbers, option combinations,
wrong arity, unknown commands and subcommands, and write commands (which a replica refuses with
`-READONLY`). The generator reads nothing from the servers: given the same `Catalog` (built
once from the oracle with `build_catalog`) and seed, it yields the same commands, so the same
stream can be sent to a real replica and to the system under test, in RESP2 and in RESP3. Half
the typed key picks go to the few edge-case keys of `add_edge_keys`; rare branches
(subcommands) are taken in turn, so every command of `REQUIRED` appears in a few thousand
steps.

Reads that change a real replica: SORT/SORT_RO turns a listpack zset into a skiplist, so its
ZSCAN order becomes hash order (`generate` then compares it as a set; on Valkey its ZSCAN
scores also start printing as %.17g, which the SUT must reproduce), and PFCOUNT stores the
refreshed cached cardinality in the HyperLogLog (see the test's master cross-check).

`compare(call, proto, oracle_replies, sut_replies, env)` applies the call's rule and returns
None or a one-line reason. Rules (see notes section 4b for why each is needed):

- `exact`: byte-identical (the default, and always when either reply is an error);
- `multiset` / `pairs`: the same elements (or field/value pairs) in any order, for replies in
  hash-table iteration order (SMEMBERS, SINTER, HGETALL of big hashes, KEYS, COMMAND LIST);
  `deep`: the same with nested arrays too (COMMAND INFO/DOCS list subcommands in hash order);
- `ttl` / `pttl`: equal when negative, else within 1 s;
- `srandmember` / `hrandfield` / `zrandmember` / `randomkey`: shape, count, uniqueness and
  membership against the key's content;
- `time`, `int`, `int_or_null`, `kind`, `encoding`, `memory`, `dump` (both payloads restorable
  to the same value), `role`, `info`, `client_info`, `hello`: properties only;
- `masked`: equal after hiding time-dependent fields (XINFO idle/seen-time, XPENDING idle);
- `scan`: full iterations compared as sets (run by the test: it needs several round trips).
"""

from __future__ import annotations

import contextlib
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from replproxy.dialect import MasterDialect

Node = tuple[str, Any]
Argv = list[bytes]

# ---------------------------------------------------------------------------------------------
# RESP parsing (both replies are parsed only when a rule needs more than bytes)


def parse(raw: bytes) -> Node:
    node, _ = _parse(raw, 0)
    return node


def _parse(b: bytes, pos: int) -> tuple[Node, int]:
    nl = b.index(b"\r\n", pos)
    kind = chr(b[pos])
    head = b[pos + 1 : nl]
    after = nl + 2
    if kind in "$=!":
        n = int(head)
        if n < 0:
            return (kind, None), after
        return (kind, bytes(b[after : after + n])), after + n + 2
    if kind in "*~>":
        n = int(head)
        if n < 0:
            return (kind, None), after
        items = []
        for _ in range(n):
            item, after = _parse(b, after)
            items.append(item)
        return (kind, tuple(items)), after
    if kind in "%|":
        pairs = []
        for _ in range(int(head)):
            k, after = _parse(b, after)
            v, after = _parse(b, after)
            pairs.append((k, v))
        if kind == "|":  # an attribute precedes the real reply
            return _parse(b, after)
        return ("%", tuple(pairs)), after
    if kind == ":":
        return (":", int(head)), after
    return (kind, bytes(head)), after  # + - , # _ (


def is_error(raw: bytes) -> bool:
    return raw[:1] in (b"-", b"!")


def _elems(n: Node) -> tuple[Node, ...] | None:
    return n[1] if n[0] in "*~>" and n[1] is not None else None


def _text(n: Node) -> bytes | None:
    """A bulk/simple/verbatim string's bytes (verbatim without its `txt:` prefix)."""
    if n[0] in "$+" and n[1] is not None:
        return n[1]
    if n[0] == "=" and n[1] is not None:
        return n[1][4:]
    return None


def _pairs(n: Node) -> list[tuple[Node, Node]] | None:
    """A map's pairs: RESP3 `%` or a RESP2 flat [k, v, k, v...] array."""
    if n[0] == "%":
        return list(n[1])
    items = _elems(n)
    if items is None or len(items) % 2:
        return None
    return [(items[i], items[i + 1]) for i in range(0, len(items), 2)]


def _num(n: Node) -> float | None:
    t = n[1]
    if n[0] in "$+,=" and t is not None:
        try:
            return float(t)
        except ValueError:
            return None
    if n[0] == ":":
        return float(t)
    return None


# ---------------------------------------------------------------------------------------------
# What the generator knows about the data (read once from the oracle)


@dataclass
class KeyInfo:
    name: bytes
    type: str  # string list set hash zset stream
    encoding: str
    content: Any  # bytes | list | set | dict (hash) | dict member->float (zset) | StreamInfo
    # Its members come in another order from a second real replica of the same master
    # (a hash table's seeded order, or a listpack filled from one): see `mark_variance`.
    varies: bool = False

    @property
    def ordered(self) -> bool:
        """Whether replies listing its members must come in the oracle's order."""
        return self.compact and not self.varies

    @property
    def compact(self) -> bool:
        """Encoded in one buffer (not a hash table): its elements come in a defined order
        and a *SCAN answers them all with cursor 0."""
        return self.encoding in ("listpack", "listpackex", "ziplist", "intset")


@dataclass
class StreamInfo:
    ids: list[bytes]
    groups: dict[bytes, list[bytes]]  # group -> consumers


@dataclass
class DbCatalog:
    keys: list[KeyInfo] = field(default_factory=list)
    by_type: dict[str, list[KeyInfo]] = field(default_factory=dict)
    edge_by_type: dict[str, list[KeyInfo]] = field(default_factory=dict)  # add_edge_keys'
    expired: list[bytes] = field(default_factory=list)  # logically expired, not deleted
    names: set[bytes] = field(default_factory=set)  # live key names

    def add(self, k: KeyInfo) -> None:
        self.keys.append(k)
        self.names.add(k.name)
        edge = k.name.startswith((b"e:", b"t:"))
        for t in (k.type, _subtype(k)):
            if t:
                self.by_type.setdefault(t, []).append(k)
                if edge:
                    self.edge_by_type.setdefault(t, []).append(k)


def _subtype(k: KeyInfo) -> str | None:
    if k.type == "string" and isinstance(k.content, bytes) and k.content.startswith(b"HYLL"):
        return "hll"
    if k.type == "zset" and k.content and len(set(k.content.values())) == 1:
        return "lexzset"  # all scores equal: lex ranges are defined
    if k.type == "zset" and (k.name.startswith(b"g:") or b"geo" in k.name):
        return "geo"
    return None


@dataclass
class Catalog:
    dbs: dict[int, DbCatalog]
    databases: int = 16

    def db(self, n: int) -> DbCatalog:
        return self.dbs.get(n) or DbCatalog()


def mark_variance(
    catalog: Catalog,
    oracle: Callable[[int, list[bytes]], bytes],
    twin: Callable[[int, list[bytes]], bytes],
) -> int:
    """Mark the sets and hashes whose members a second real replica of the same master
    lists in another order (`KeyInfo.varies`): their replies are compared as multisets,
    since two real replicas disagree there. Returns how many were marked."""
    marked = 0
    for db, cat in catalog.dbs.items():
        for k in cat.keys:
            if k.type in ("set", "hash"):
                argv = [b"smembers" if k.type == "set" else b"hgetall", k.name]
                if oracle(db, argv) != twin(db, argv):
                    k.varies = True
                    marked += 1
    return marked


def build_catalog(
    client_for_db: Callable[[int], redis.Redis],
    dbs: list[int],
    expired: dict[int, list[bytes]],
    databases: int = 16,
) -> Catalog:
    """Every live key of `dbs` with its type, encoding and content, read from the oracle
    (a replica: reading there changes nothing the comparison depends on)."""
    out: dict[int, DbCatalog] = {}
    for db in dbs:
        cat = out[db] = DbCatalog(expired=list(expired.get(db, [])))
        with client_for_db(db) as c:
            names = sorted(set(c.scan_iter(count=1000)))
            p = c.pipeline(transaction=False)
            for k in names:
                p.type(k)
                p.object("encoding", k)
            meta = p.execute()
            p = c.pipeline(transaction=False)
            for i, k in enumerate(names):
                t = meta[2 * i].decode()
                if t == "string":
                    p.get(k)
                elif t == "list":
                    p.lrange(k, 0, -1)
                elif t == "set":
                    p.smembers(k)
                elif t == "hash":
                    p.hgetall(k)
                elif t == "zset":
                    p.zrange(k, 0, -1, withscores=True)
                elif t == "stream":
                    p.xrange(k)
                elif t == "vectorset":
                    p.execute_command("VRANDMEMBER", k, 100_000)  # every element, once
                else:
                    p.type(k)
            contents = p.execute()
            for i, k in enumerate(names):
                t, enc = meta[2 * i].decode(), (meta[2 * i + 1] or b"").decode()
                content: Any = contents[i]
                if t == "zset":
                    content = dict(content)
                elif t == "stream":
                    groups: dict[bytes, list[bytes]] = {}
                    for g in c.xinfo_groups(k):
                        consumers = c.xinfo_consumers(k, g["name"])
                        groups[g["name"]] = [x["name"] for x in consumers]
                    content = StreamInfo([e[0] for e in content], groups)
                cat.add(KeyInfo(k, t, enc, content))
    return Catalog(out, databases)


# ---------------------------------------------------------------------------------------------
# Steps


@dataclass
class Call:
    argv: Argv
    rule: str = "exact"
    arg: Any = None
    nreplies: tuple[int, int] = (1, 1)  # replies in RESP2, in RESP3

    @property
    def label(self) -> str:
        """The command's name for grouping reports: `get`, `object|encoding`..."""
        if not self.argv:
            return "<empty>"
        name = self.argv[0].decode(errors="replace").lower()
        if name in CONTAINERS and len(self.argv) > 1:
            return name + "|" + self.argv[1].decode(errors="replace").lower()
        return name


Step = list[Call]

CONTAINERS = {
    "object",
    "memory",
    "xinfo",
    "config",
    "client",
    "command",
    "pubsub",
    "xgroup",
    "function",
    "script",
}

# The read commands the generator must cover (notes section 4), checked by the test.
_REQUIRED_TEXT = """
get mget getrange substr strlen lcs getbit bitcount bitpos bitfield_ro pfcount exists type ttl
pttl expiretime pexpiretime keys scan randomkey dump touch sort_ro object|encoding object|freq
object|idletime object|refcount memory|usage hget hmget hgetall hkeys hvals hlen hexists
hstrlen hrandfield hscan httl hpttl hexpiretime hpexpiretime lindex llen lpos lrange scard
sismember smismember smembers sinter sunion sdiff sintercard srandmember sscan zcard zcount
zlexcount zscore zmscore zrange zrangebyscore zrangebylex zrevrange zrevrangebyscore
zrevrangebylex zrank zrevrank zrandmember zdiff zinter zunion zintercard zscan xlen xrange
xrevrange xread xpending xinfo|stream xinfo|groups xinfo|consumers geopos geodist geohash
geosearch georadius_ro georadiusbymember_ro ping echo select auth client|getname client|setname
client|id client|info info role time lastsave dbsize command|count command|info command|docs
command|list command|getkeys config|get multi exec discard watch unwatch subscribe unsubscribe
psubscribe punsubscribe pubsub|channels pubsub|numsub pubsub|numpat readonly readwrite wait
"""
REQUIRED = frozenset(_REQUIRED_TEXT.split())
# Connection and server commands every version answers (not flagged readonly).
_SESSION_TEXT = """
ping echo select auth client|getname client|setname client|id info role time lastsave
dbsize command|count command|info command|getkeys config|get multi exec discard watch
unwatch subscribe unsubscribe psubscribe punsubscribe pubsub|channels pubsub|numsub
pubsub|numpat readonly readwrite wait
"""
# Readonly-flagged table entries that are not client reads: replication handshakes, the
# security traps, containers (their subcommands are counted), and the Lua reads the relay
# documents as unsupported (generated among the writes, compared to that error).
_NOT_CLIENT_READS = frozenset(
    {
        "psync",
        "sync",
        "host:",
        "post",
        "memory",
        "object",
        "xinfo",
        "eval_ro",
        "evalsha_ro",
        "fcall_ro",
    }
)


def required_reads(dialect: MasterDialect) -> frozenset[str]:
    """Every read command of the master's version (its command table's `readonly`
    commands, subcommands by `container|sub`), plus the connection and server commands a
    replica answers: what a stream of `ReadGen(..., dialect)` must cover."""
    table = dialect.command_table
    names = set(_SESSION_TEXT.split())
    if dialect.at_least((7, 0), (0,)):
        names |= {
            "command|docs",
            "command|list",
            "function|list",
            "function|dump",
            "function|stats",
        }
    for spec in table:
        for s in (spec, *spec.subcommands.values()):
            if "readonly" in s.flags and "write" not in s.flags:
                names.add(s.name.decode())
    return frozenset(names - _NOT_CLIENT_READS)


BAD_INTS = [
    "abc",
    "1.5",
    "",
    " 1",
    "+1",
    "0x10",
    "1e3",
    "nan",
    "-0",
    "007",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999999",
]
BAD_FLOATS = [
    "abc",
    "",
    "nan",
    "1.5.5",
    "1e400",
    "0x10",
    " 1",
    "1 ",
    "--1",
    "inf",
    "-inf",
    "+inf",
    "1e-400",
    "1e308",
]
UNITS = ["m", "km", "ft", "mi", "KM", "Mi", "yd", ""]

# Write commands a replica refuses (arity-correct, so the READONLY check is what answers).
WRITES: list[list[str]] = [
    ["SET", "{k}", "v"],
    ["SETNX", "{k}", "v"],
    ["SETEX", "{k}", "10", "v"],
    ["DEL", "{k}"],
    ["UNLINK", "{k}", "{k}"],
    ["HSET", "{k}", "f", "v"],
    ["HDEL", "{k}", "f"],
    ["LPUSH", "{k}", "a"],
    ["RPOP", "{k}"],
    ["LPOP", "{k}", "2"],
    ["SADD", "{k}", "m"],
    ["SREM", "{k}", "m"],
    ["SPOP", "{k}"],
    ["ZADD", "{k}", "1", "m"],
    ["ZINCRBY", "{k}", "1", "m"],
    ["ZPOPMIN", "{k}"],
    ["XADD", "{k}", "*", "f", "v"],
    ["XDEL", "{k}", "1-1"],
    ["XTRIM", "{k}", "MAXLEN", "1"],
    ["XGROUP", "CREATE", "{k}", "g", "$"],
    ["XGROUP", "DESTROY", "{k}", "g"],
    ["XREADGROUP", "GROUP", "g1", "c1", "STREAMS", "{k}", ">"],
    ["XACK", "{k}", "g1", "1-1"],
    ["XCLAIM", "{k}", "g1", "c1", "0", "1-1"],
    ["XAUTOCLAIM", "{k}", "g1", "c1", "0", "0"],
    ["SORT", "{k}"],
    ["SORT", "{k}", "ALPHA"],
    ["SORT", "{k}", "STORE", "dst"],
    ["GEORADIUS", "{k}", "15", "37", "200", "km"],
    ["GEORADIUSBYMEMBER", "{k}", "Palermo", "100", "km"],
    ["GEOADD", "{k}", "1", "1", "m"],
    ["GEOSEARCHSTORE", "dst", "{k}", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "km"],
    ["PFADD", "{k}", "a"],
    ["PFMERGE", "dst", "{k}"],
    ["SETBIT", "{k}", "1", "1"],
    ["BITFIELD", "{k}", "GET", "u8", "0"],
    ["BITOP", "AND", "dst", "{k}"],
    ["INCR", "{k}"],
    ["INCRBYFLOAT", "{k}", "1.5"],
    ["APPEND", "{k}", "x"],
    ["SETRANGE", "{k}", "0", "x"],
    ["GETSET", "{k}", "v"],
    ["GETDEL", "{k}"],
    ["GETEX", "{k}"],
    ["GETEX", "{k}", "PERSIST"],
    ["EXPIRE", "{k}", "10"],
    ["PEXPIREAT", "{k}", "1"],
    ["PERSIST", "{k}"],
    ["RENAME", "{k}", "x"],
    ["RENAMENX", "{k}", "x"],
    ["MOVE", "{k}", "1"],
    ["COPY", "{k}", "dst"],
    ["SWAPDB", "0", "1"],
    ["FLUSHDB"],
    ["FLUSHALL", "ASYNC"],
    ["MSET", "{k}", "1", "b", "2"],
    ["MSETNX", "{k}", "1"],
    ["LSET", "{k}", "0", "x"],
    ["LINSERT", "{k}", "BEFORE", "a", "b"],
    ["LTRIM", "{k}", "0", "1"],
    ["LMOVE", "{k}", "dst", "LEFT", "RIGHT"],
    ["RPOPLPUSH", "{k}", "dst"],
    ["BLPOP", "{k}", "1"],
    ["BRPOP", "{k}", "0.01"],
    ["BZPOPMIN", "{k}", "1"],
    ["BLMOVE", "{k}", "dst", "LEFT", "LEFT", "1"],
    ["LMPOP", "1", "{k}", "LEFT"],
    ["ZUNIONSTORE", "dst", "1", "{k}"],
    ["ZRANGESTORE", "dst", "{k}", "0", "-1"],
    ["SINTERSTORE", "dst", "{k}"],
    ["SMOVE", "{k}", "dst", "m"],
    ["HINCRBY", "{k}", "f", "1"],
    ["HINCRBYFLOAT", "{k}", "f", "1"],
    ["HSETNX", "{k}", "f", "v"],
    ["HMSET", "{k}", "f", "v"],
    ["RESTORE", "{k}", "0", "garbage"],
    ["DECRBY", "{k}", "2"],
    ["ZREMRANGEBYRANK", "{k}", "0", "1"],
    ["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('x', function() end)"],
    ["FUNCTION", "DELETE", "wl"],
    ["FUNCTION", "FLUSH"],
    ["EVAL", "return redis.call('set', KEYS[1], 'x')", "1", "{k}"],
    ["FCALL", "wl_write", "2", "n:1", "l:1", "1", "x"],
]
# Not writes, but answered by a replica and listed with the writes' family: a read-only
# script, an unknown script, PUBLISH (a replica delivers to its own subscribers).
WRITE_LIKE: list[list[str]] = [
    ["EVAL", "return redis.call('get', KEYS[1])", "1", "{k}"],
    ["EVAL", "return 1", "0"],
    ["EVALSHA", "0000000000000000000000000000000000000000", "0"],
    ["EVAL_RO", "return redis.call('exists', KEYS[1])", "1", "{k}"],
    ["PUBLISH", "nobody", "msg"],
    ["SPUBLISH", "nobody", "msg"],
]


# Read commands with their arity (negative: at least), for wrong-arity calls.
ARITY: dict[str, int] = {
    "get": 2,
    "mget": -2,
    "getrange": 4,
    "substr": 4,
    "strlen": 2,
    "lcs": -3,
    "getbit": 3,
    "bitcount": -2,
    "bitpos": -3,
    "bitfield_ro": -2,
    "pfcount": -2,
    "exists": -2,
    "type": 2,
    "ttl": 2,
    "pttl": 2,
    "expiretime": 2,
    "pexpiretime": 2,
    "keys": 2,
    "scan": -2,
    "randomkey": 1,
    "dump": 2,
    "touch": -2,
    "sort_ro": -2,
    "hget": 3,
    "hmget": -3,
    "hgetall": 2,
    "hkeys": 2,
    "hvals": 2,
    "hlen": 2,
    "hexists": 3,
    "hstrlen": 3,
    "hrandfield": -2,
    "hscan": -3,
    "lindex": 3,
    "llen": 2,
    "lpos": -3,
    "lrange": 4,
    "scard": 2,
    "sismember": 3,
    "smismember": -3,
    "smembers": 2,
    "sinter": -2,
    "sunion": -2,
    "sdiff": -2,
    "sintercard": -3,
    "srandmember": -2,
    "sscan": -3,
    "zcard": 2,
    "zcount": 4,
    "zlexcount": 4,
    "zscore": 3,
    "zmscore": -3,
    "zrange": -4,
    "zrangebyscore": -4,
    "zrangebylex": -4,
    "zrevrange": -4,
    "zrevrangebyscore": -4,
    "zrevrangebylex": -4,
    "zrank": -3,
    "zrevrank": -3,
    "zrandmember": -2,
    "zdiff": -3,
    "zinter": -3,
    "zunion": -3,
    "zintercard": -3,
    "zscan": -3,
    "xlen": 2,
    "xrange": -4,
    "xrevrange": -4,
    "xread": -4,
    "xpending": -3,
    "geopos": -2,
    "geodist": -4,
    "geohash": -2,
    "geosearch": -7,
    "georadius_ro": -6,
    "georadiusbymember_ro": -5,
    "ping": -1,
    "echo": 2,
    "select": 2,
    "time": 1,
    "lastsave": 1,
    "dbsize": 1,
    "role": 1,
    "info": -1,
    "watch": -2,
    "unwatch": 1,
    "multi": 1,
    "exec": 1,
    "discard": 1,
    "wait": 3,
    "readonly": 1,
    "readwrite": 1,
    "auth": -2,
    "hello": -1,
    "object|encoding": 3,
    "object|idletime": 3,
    "object|freq": 3,
    "object|refcount": 3,
    "memory|usage": -3,
    "xinfo|stream": -3,
    "xinfo|groups": 3,
    "xinfo|consumers": 4,
    "config|get": -3,
    "client|getname": 2,
    "client|id": 2,
    "command|count": 2,
    "command|getkeys": -3,
    "pubsub|numpat": 2,
}

# Valid OBJECT ENCODING answers per type (encodings differ between replicas legitimately).
ENCODINGS = {
    "string": {b"int", b"embstr", b"raw"},
    "list": {b"quicklist", b"listpack", b"ziplist"},
    "set": {b"intset", b"listpack", b"hashtable"},
    "hash": {b"listpack", b"ziplist", b"hashtable", b"listpackex"},
    "zset": {b"listpack", b"ziplist", b"skiplist"},
    "stream": {b"stream"},
}


def _is_int(m: bytes) -> bool:
    """An intset member: `string2ll` succeeds (canonical decimal in the int64 range)."""
    try:
        v = int(m)
    except ValueError:
        return False
    return str(v).encode() == m and -(2**63) <= v < 2**63


def b(x: object) -> bytes:
    if isinstance(x, bytes):
        return x
    if isinstance(x, float):
        return repr(x).encode()
    return str(x).encode()


class ReadGen:
    """Random read commands over the catalogue's data; `steps(n)` yields n steps."""

    def __init__(self, catalog: Catalog, seed: int, dialect: MasterDialect | None = None) -> None:
        self.cat = catalog
        self.dialect = dialect or MasterDialect()
        self.rng = random.Random(seed)
        self.db = 0
        self.dbs = sorted(catalog.dbs)
        self._turns: dict[str, int] = {}
        self._sorted_zsets: set[tuple[int, bytes]] = set()
        fams: list[tuple[float, Callable[[], Step]]] = [
            (9, self.f_string),
            (4, self.f_bitmap),
            (2, self.f_hll),
            (8, self.f_keys),
            (8, self.f_hash),
            (7, self.f_list),
            (8, self.f_set),
            (12, self.f_zset),
            (6, self.f_stream),
            (4, self.f_geo),
            (7, self.f_server),
            (3, self.f_write),
            (1.5, self.f_unknown),
            (3, self.f_arity),
            (2, self.f_transaction),
            (0.5, self.f_pubsub),
            (3, self.f_scan),
            (2, self.f_select),
            (2, self.f_misc),
        ]
        if self.dialect.at_least((8, 0), None):
            fams.append((4, self.f_vset))
        self.fams = fams
        self.total = sum(w for w, _ in fams)

    # ---- the stream ----

    def generate(self, n: int) -> list[Step]:
        """n steps. A ZSCAN of a small zset is compared byte for byte (a listpack gives
        everything in order in one reply) unless a SORT_RO of the stream may have turned it
        into a skiplist before: then by the set of elements."""
        steps = list(self.steps(n))
        for step in steps:
            for call in step:
                if (
                    call.rule == "scan"
                    and call.argv[0].lower() == b"zscan"
                    and (call.arg["db"], call.argv[1]) in self._sorted_zsets
                ):
                    call.arg["exact_first"] = False
        return steps

    def steps(self, n: int) -> Iterator[Step]:
        for _ in range(n):
            pick = self.rng.uniform(0, self.total)
            chosen = self.fams[-1][1]
            for w, fn in self.fams:
                pick -= w
                if pick <= 0:
                    chosen = fn
                    break
            yield chosen()

    # ---- helpers ----

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def name(self, cmd: str) -> bytes:
        """The command name, now and then in odd case (Redis is case-insensitive)."""
        r = self.rng.random()
        if r < 0.08:
            return cmd.upper().encode()
        if r < 0.12:
            return "".join(ch.upper() if self.rng.random() < 0.5 else ch for ch in cmd).encode()
        return cmd.encode()

    def call(self, cmd: str, *args: object, rule: str = "exact", arg: Any = None) -> Step:
        return [Call([self.name(cmd), *(b(a) for a in args)], rule, arg)]

    def pick(self, t: str) -> tuple[bytes, KeyInfo | None]:
        """A key for a command on type `t`: mostly one of that type in the current DB,
        sometimes missing, of another type, logically expired, or from another DB."""
        db = self.cat.db(self.db)
        pool = db.by_type.get(t)
        r = self.rng.random()
        if pool and r < 0.72:
            # Half the time one of the edge-case keys (few, but each one chosen to matter).
            edge = db.edge_by_type.get(t)
            k = self.rng.choice(edge if edge and self.chance(0.5) else pool)
            return k.name, k
        if r < 0.80 or not db.keys:
            return self.rng.choice([b"nokey", b"missing:1", b"", b"s:99999"]), None
        if r < 0.91:
            k = self.rng.choice(db.keys)
            return k.name, k
        if r < 0.96 and db.expired:
            return self.rng.choice(db.expired), None
        other = self.cat.db(self.rng.choice(self.dbs))
        if other.keys:
            k = self.rng.choice(other.keys)
            if k.name not in db.names:
                return k.name, None
            return k.name, next(x for x in db.keys if x.name == k.name)
        return b"nokey", None

    def key(self, t: str) -> bytes:
        return self.pick(t)[0]

    def keys(self, t: str, lo: int = 1, hi: int = 4) -> list[bytes]:
        return [self.key(t) for _ in range(self.rng.randint(lo, hi))]

    def bad_int(self) -> str:
        return self.rng.choice(BAD_INTS)

    def index(self, n: int) -> str:
        """An index into a sequence of length n: in range, negative, past either end, huge,
        or not a number."""
        r = self.rng.random()
        if r < 0.55:
            return str(self.rng.randint(-n - 2, n + 2))
        if r < 0.75:
            return self.rng.choice(["0", "-1", "1", "-2", str(n - 1), str(n), str(-n)])
        if r < 0.92:
            return self.rng.choice(
                ["9223372036854775807", "-9223372036854775808", "1000000", "-1000000", "4294967296"]
            )
        return self.bad_int()

    def count(self) -> str:
        """A count for SRANDMEMBER / HRANDFIELD / ZRANDMEMBER."""
        r = self.rng.random()
        if r < 0.6:
            return str(self.rng.choice([0, 1, 2, 3, 5, 10, 50, 1000]))
        if r < 0.85:
            return str(self.rng.choice([-1, -2, -5, -50]))
        bad = self.bad_int()
        if bad == "-9223372036854775808" and not self.dialect.at_least((7, 0), (0,)):
            # Before 7.0 there is no range check: a real replica crashes on LLONG_MIN
            # (6.2.5) or builds a reply of 2^63 elements (5.0). Nothing to compare.
            return "-1000"
        return bad

    def member(self, info: KeyInfo | None) -> bytes:
        """An element of the key (member, field, list element, stream id...) or not one."""
        if info is not None and self.chance(0.8):
            c = info.content
            if isinstance(c, StreamInfo):
                if c.ids:
                    return self.rng.choice(c.ids)
            elif isinstance(c, (list, set, dict)) and c:
                seq = c if isinstance(c, list) else sorted(c)
                return self.rng.choice(seq)
            elif isinstance(c, bytes) and c:
                return c
        return self.rng.choice([b"nomember", b"", b"m1", b"1", b"f1", b"a", b"-1", b"x" * 70])

    def members(self, info: KeyInfo | None, lo: int = 1, hi: int = 4) -> list[bytes]:
        return [self.member(info) for _ in range(self.rng.randint(lo, hi))]

    def length(self, info: KeyInfo | None) -> int:
        if info is None:
            return 3
        c = info.content
        if isinstance(c, StreamInfo):
            return len(c.ids)
        return len(c) if c is not None else 0

    def score(self, info: KeyInfo | None) -> str:
        r = self.rng.random()
        if r < 0.45 and info is not None and info.type == "zset" and info.content:
            s = float(self.rng.choice(list(info.content.values())))
            if s != s or s in (float("inf"), float("-inf")):
                txt = str(s)
            elif s.is_integer() and abs(s) < 1e15:
                txt = str(int(s))
            else:
                txt = repr(s)
            return ("(" if self.chance(0.3) else "") + txt
        if r < 0.75:
            return self.rng.choice(
                [
                    "-inf",
                    "+inf",
                    "inf",
                    "(-inf",
                    "(+inf",
                    "0",
                    "(0",
                    "-1",
                    "1.5",
                    "(2",
                    "100",
                    "-100",
                    "1e6",
                    "-1e6",
                    "(-50",
                ]
            )
        if r < 0.9:
            return str(self.rng.randint(-60, 60))
        # The forms strtod and Redis 8's fast_float read differently: blanks, hex, overflow.
        return self.rng.choice(
            [
                "abc",
                "(",
                "((1",
                "nan",
                "",
                "1e400",
                "(abc",
                "[1",
                " 5",
                "( 5",
                "0x1A",
                "(0x10",
                "1e-400",
                "-1e400",
                "+.5",
                "5.",
                "1e",
                "Infinity",
                "nan(1)",
            ]
        )

    def lex(self, info: KeyInfo | None) -> bytes:
        r = self.rng.random()
        if r < 0.5 and info is not None and info.type == "zset" and info.content:
            m = self.rng.choice(sorted(info.content))
            return (b"[" if self.chance(0.5) else b"(") + m
        if r < 0.85:
            return self.rng.choice(
                [b"-", b"+", b"[", b"(", b"[a", b"(lex1", b"[lex5", b"[m", b"(z", b"[\xff"]
            )
        return self.rng.choice([b"a", b"", b"abc", b"*", b"-inf"])

    def stream_id(self, info: KeyInfo | None, special: tuple[str, ...] = ("-", "+")) -> bytes:
        r = self.rng.random()
        ids = info.content.ids if info is not None and isinstance(info.content, StreamInfo) else []
        if r < 0.5 and ids:
            i = self.rng.choice(ids)
            if self.chance(0.2):
                ms, seq = i.split(b"-")
                return ms + b"-" + b(int(seq) + self.rng.choice([-1, 1]) if int(seq) else 1)
            if self.chance(0.15):
                return b"(" + i
            if self.chance(0.1):
                return i.split(b"-")[0]
            return i
        if r < 0.8:
            return self.rng.choice(special).encode()
        return self.rng.choice(
            [
                b"0",
                b"0-0",
                b"0-1",
                b"1",
                b"abc",
                b"1-abc",
                b"-1",
                b"1-",
                b"18446744073709551615-18446744073709551615",
                b"1-18446744073709551616",
                b"99999999999999",
                b"(0-0",
                b"(",
            ]
        )

    def db_choice(self) -> int:
        return self.rng.choice(self.dbs) if self.chance(0.9) else self.rng.choice([3, 9, 14])

    # ---- families ----

    def f_select(self) -> Step:
        r = self.rng.random()
        if r < 0.85:
            self.db = self.db_choice()
            return self.call("select", self.db)
        return self.call(
            "select", self.rng.choice(["16", "-1", "abc", "1.0", "99999999999999999999", "", "0x1"])
        )

    def f_string(self) -> Step:
        k, info = self.pick("string")
        n = self.length(info)
        c = self.rng.randrange(7)
        if c == 0:
            return self.call("get", k)
        if c == 1:
            return self.call("mget", *self.keys("string", 1, 8))
        if c == 2:
            return self.call(
                self.rng.choice(["getrange", "substr"]), k, self.index(n), self.index(n)
            )
        if c == 3:
            return self.call("strlen", k)
        if c == 4:
            return self.f_lcs()
        if c == 5:
            return self.call("get", k) if info is None else self.call("exists", k)
        return self.call("getrange", k, 0, -1)

    def f_lcs(self) -> Step:
        # Small strings only: LCS is quadratic, and the point is the reply format.
        db = self.cat.db(self.db)
        small = [x for x in db.by_type.get("string", []) if len(x.content) <= 300]

        def one() -> bytes:
            if small and self.chance(0.85):
                return self.rng.choice(small).name
            return self.key("string")

        args: list[object] = [one(), one()]
        r = self.rng.random()
        if r < 0.3:
            args.append("LEN")
        elif r < 0.8:
            args.append("IDX")
            if self.chance(0.5):
                args += ["MINMATCHLEN", self.rng.choice(["0", "1", "2", "4", "-1", "abc"])]
            if self.chance(0.5):
                args.append("WITHMATCHLEN")
        elif r < 0.9:
            args += ["LEN", "IDX"]
        else:
            args.append(self.rng.choice(["FOO", "MINMATCHLEN", "WITHMATCHLEN"]))
        return self.call("lcs", *args)

    def f_bitmap(self) -> Step:
        k, info = self.pick("string")
        n = self.length(info)
        c = self.rng.randrange(4)
        if c == 0:
            off = self.rng.choice(
                [
                    str(self.rng.randrange(0, n * 8 + 20)),
                    "0",
                    "-1",
                    "4294967295",
                    "4294967296",
                    "abc",
                    "1.5",
                ]
            )
            return self.call("getbit", k, off)
        if c == 1:
            args: list[object] = [k]
            if self.chance(0.8):
                args += [self.index(n), self.index(n)]
                if self.chance(0.5):
                    args.append(self.rng.choice(["BYTE", "BIT", "bit", "byte", "FOO"]))
            elif self.chance(0.5):
                args.append(self.index(n))  # start without end: a syntax error
            return self.call("bitcount", k, *args[1:])
        if c == 2:
            args = [k, self.rng.choice(["0", "1", "0", "1", "2", "-1", "abc"])]
            if self.chance(0.7):
                args.append(self.index(n))
                if self.chance(0.6):
                    args.append(self.index(n))
                    if self.chance(0.5):
                        args.append(self.rng.choice(["BYTE", "BIT", "bit", "FOO"]))
            return self.call("bitpos", *args)
        args = [k]
        for _ in range(self.rng.randint(0, 4)):
            r = self.rng.random()
            if r < 0.8:
                t = self.rng.choice(
                    [
                        "u1",
                        "u8",
                        "i8",
                        "u16",
                        "i16",
                        "i32",
                        "u32",
                        "i64",
                        "u63",
                        "u64",
                        "i65",
                        "x8",
                        "u0",
                        "I8",
                        "U8",
                    ]
                )
                off = self.rng.choice(
                    [
                        str(self.rng.randrange(0, n * 8 + 10)),
                        "#0",
                        "#3",
                        "0",
                        "-1",
                        "#-1",
                        "abc",
                        "4294967296",
                    ]
                )
                args += ["GET", t, off]
            elif r < 0.9:
                args += ["SET", "u8", "0", "1"]
            else:
                args += [self.rng.choice(["OVERFLOW", "INCRBY", "FOO"]), "WRAP"]
        return self.call("bitfield_ro", *args)

    def f_hll(self) -> Step:
        keys = self.keys("hll", 1, 3)
        if self.chance(0.3):
            return self.call("get", keys[0])  # the cached cardinality bytes after PFCOUNT
        if self.chance(0.1):
            return self.call("strlen", keys[0])
        return self.call("pfcount", *keys)

    def f_keys(self) -> Step:
        t = self.rng.choice(["string", "list", "set", "hash", "zset", "stream"])
        k, info = self.pick(t)
        c = self.rng.randrange(16)
        if c == 0:
            return self.call("exists", *self.keys(t, 1, 5))
        if c == 1:
            return self.call("type", k)
        if c == 2:
            return self.call("ttl", k, rule="ttl")
        if c == 3:
            return self.call("pttl", k, rule="pttl")
        if c == 4:
            return self.call(self.rng.choice(["expiretime", "pexpiretime"]), k)
        if c == 5:
            pat = self.rng.choice(
                [
                    b"*",
                    b"s:1*",
                    b"h:?",
                    b"[sh]:1",
                    b"*:[0-9]",
                    b"nokey*",
                    b"e:*",
                    b"t:*",
                    b"exp:*",
                    b"a\\*b",
                    b"*\\[*",
                    b"[^s]*",
                    b"",
                    b"?",
                    b"*geo*",
                    b"z:*",
                    b"[a-c]*",
                    b"\\",
                ]
            )
            return self.call("keys", pat, rule="multiset")
        if c == 6:
            return self.call("randomkey", rule="randomkey", arg=self.db)
        if c == 7:
            return self.call("dump", k, rule="dump")
        if c == 8:
            return self.call("touch", *self.keys(t, 1, 4))
        if c == 9:
            return self.f_sort()
        if c == 10:
            sub = self.rotate(
                "object",
                ["encoding", "idletime", "freq", "refcount", "encoding", "help", "foo", "ENCODING"],
            )
            # Idle times run with each server's clock; everything else is exact (OBJECT
            # ENCODING included: the relay models each value's conversion history).
            rule = "int_or_null" if sub.lower() == "idletime" else "exact"
            args: list[object] = [sub] if sub == "help" else [sub, k]
            if sub == "help" and self.chance(0.3):
                args.append("extra")
            return self.call(
                "object", *args, rule=rule, arg=info.type if info is not None else None
            )
        if c == 11:
            args = ["usage", k]
            if self.chance(0.4):
                args += ["SAMPLES", self.rng.choice(["0", "5", "-1", "abc", "100"])]
            elif self.chance(0.1):
                args.append("FOO")
            return self.call("memory", *args, rule="memory")
        if c == 12:
            return self.call("dbsize")
        if c == 13 and info is not None and info.type == "string":
            return self.call("object", "refcount", k)
        if c == 14:
            return self.call("exists", k, k, "nokey", k)
        return self.call("type", self.key("hll"))

    def f_sort(self) -> Step:
        t = self.rng.choice(["list", "set", "zset", "list", "string"])
        k, info = self.pick(t)
        args: list[object] = [k]
        is_set = info is not None and info.type == "set"
        is_zset = info is not None and info.type == "zset"
        if is_zset:
            # SORT converts a listpack zset to a skiplist, even SORT_RO on a replica: from
            # then on its ZSCAN order is hash order (see `generate`).
            self._sorted_zsets.add((self.db, k))
        weighted = False
        if self.chance(0.4):
            by = self.rng.choice(
                [b"nosort", b"nokey_*", b"s:*", b"h:*->f1", b"e:h*->num", b"weight_*"]
            )
            if is_set and by == b"nosort":
                by = b"nokey_*"  # nosort on a set returns hash-table order
            weighted = by != b"nosort"
            args += ["BY", by]
        if self.chance(0.3):
            args += ["LIMIT", self.index(10), self.rng.choice(["1", "3", "-1", "0", "abc"])]
        for _ in range(self.rng.choice([0, 0, 1, 2])):
            args += [
                "GET",
                self.rng.choice([b"#", b"s:*", b"h:*->f1", b"nokey_*", b"#->x", b"e:hsmall->f1"]),
            ]
        if self.chance(0.4):
            args.append(self.rng.choice(["ASC", "DESC"]))
        # ALPHA with BY compares the weights only: ties keep the input order, which for a
        # set or a zset is its hash-table iteration order. Without ALPHA, equal weights are
        # ordered by the elements themselves. A set without BY needs ALPHA (or has numbers).
        if is_set or is_zset:
            alpha = not weighted and (is_set or self.chance(0.6))
        else:
            alpha = self.chance(0.6)
        if alpha:
            args.append("ALPHA")
        if self.chance(0.05):
            args += ["STORE", "dst"]  # SORT_RO has no STORE: a syntax error
        return self.call("sort_ro", *args)

    def f_hash(self) -> Step:
        k, info = self.pick("hash")
        c = self.rng.randrange(13)
        unordered = info is not None and info.type == "hash" and not info.ordered
        if c == 0:
            return self.call("hget", k, self.member(info))
        if c == 1:
            return self.call("hmget", k, *self.members(info, 1, 6))
        if c == 2:
            return self.call("hgetall", k, rule="pairs" if unordered else "exact")
        if c == 3:
            return self.call(
                self.rng.choice(["hkeys", "hvals"]), k, rule="multiset" if unordered else "exact"
            )
        if c == 4:
            return self.call("hlen", k)
        if c == 5:
            return self.call("hexists", k, self.member(info))
        if c == 6:
            return self.call("hstrlen", k, self.member(info))
        if c == 7 or c == 8:
            args: list[object] = [k]
            if self.chance(0.8):
                args.append(self.count())
                if self.chance(0.5):
                    args.append(self.rng.choice(["WITHVALUES", "WITHVALUES", "withvalues", "FOO"]))
            return self.call(
                "hrandfield",
                *args,
                rule="hrandfield",
                arg=info.content if info is not None and info.type == "hash" else None,
            )
        if c == 9:
            return self.scan_call("hscan", k, info)
        if c == 10:
            # Hash-field TTLs: Redis 7.4+ / Valkey 9 only; older servers say unknown command.
            cmd = self.rotate("hfe", ["httl", "hpttl", "hexpiretime", "hpexpiretime"])
            fs = self.members(info, 1, 3)
            n = self.rng.choice([str(len(fs)), str(len(fs)), "0", "5", "abc"])
            # HPTTL's milliseconds run on while the two servers are asked in turn (a CI flake).
            rule = "hpttl" if cmd == "hpttl" else "exact"
            return self.call(cmd, k, "FIELDS", n, *fs, rule=rule)
        if c == 11:
            return self.call("hget", k, self.rng.choice([b"", b"nofield", b"f" * 200]))
        return self.call("hlen", self.key("string"))

    def f_list(self) -> Step:
        k, info = self.pick("list")
        n = self.length(info)
        c = self.rng.randrange(6)
        if c == 0:
            return self.call("lindex", k, self.index(n))
        if c == 1:
            return self.call("llen", k)
        if c == 2 or c == 3:
            return self.call("lrange", k, self.index(n), self.index(n))
        if c == 4:
            return self.call("lrange", k, 0, -1)
        args: list[object] = [k, self.member(info)]
        for _ in range(self.rng.choice([0, 1, 1, 2, 3])):
            opt = self.rng.choice(["RANK", "COUNT", "MAXLEN", "rank", "FOO"])
            if opt.upper() == "RANK":
                v = self.rng.choice(
                    [
                        "1",
                        "2",
                        "-1",
                        "-2",
                        "0",
                        "3",
                        "-100",
                        "abc",
                        "-9223372036854775808",
                        "9223372036854775807",
                    ]
                )
            elif opt == "COUNT":
                v = self.rng.choice(["0", "1", "2", "5", "-1", "abc"])
            elif opt == "MAXLEN":
                v = self.rng.choice(["0", "1", "3", "10", "-1", "abc"])
            else:
                v = "1"
            args += [opt, v]
        return self.call("lpos", *args)

    def f_set(self) -> Step:
        k, info = self.pick("set")
        c = self.rng.randrange(13)
        # Intsets are sorted and listpack sets (7.2+, Valkey) keep insertion order: a
        # defined order the relay must follow. Hash tables iterate in each server's own
        # (seeded) order, which differs between any two real replicas.
        ordered = info is None or info.type != "set" or info.ordered
        if c == 0:
            return self.call("scard", k)
        if c == 1:
            return self.call("sismember", k, self.member(info))
        if c == 2:
            return self.call("smismember", k, *self.members(info, 1, 6))
        if c == 3:
            return self.call("smembers", k, rule="exact" if ordered else "multiset")
        if c in (4, 5):
            cmd = self.rng.choice(["sinter", "sunion", "sdiff"])
            keys = self.keys("set", 1, 4)
            return self.call(
                cmd, *keys, rule="exact" if self.setop_ordered(cmd, keys) else "multiset"
            )
        if c == 6:
            keys = self.keys("set", 1, 4)
            nk = self.rng.choice([str(len(keys))] * 4 + ["0", "-1", str(len(keys) + 1), "abc"])
            args: list[object] = [nk, *keys]
            if self.chance(0.4):
                args += ["LIMIT", self.rng.choice(["0", "1", "2", "5", "-1", "abc"])]
            elif self.chance(0.05):
                args.append("FOO")
            return self.call("sintercard", *args)
        if c in (7, 8):
            args = [k]
            if self.chance(0.75):
                args.append(self.count())
            return self.call(
                "srandmember",
                *args,
                rule="srandmember",
                arg=info.content if info is not None and info.type == "set" else None,
            )
        if c == 9:
            return self.scan_call("sscan", k, info)
        if c == 10:
            k2, i2 = self.pick("zset")
            return self.call(
                "smembers",
                k2,
                rule="multiset"
                if i2 is not None and i2.type == "set" and not i2.ordered
                else "exact",
            )
        if c == 11:
            return self.call(
                "sismember", k, self.rng.choice([b"1", b"0", b"-1", b"01", b"1.0", b"nomember"])
            )
        return self.call("scard", self.key("list"))

    def f_zset(self) -> Step:
        c = self.rng.randrange(18)
        if c < 3:
            return self.f_zrange()
        k, info = self.pick("zset")
        n = self.length(info)
        if c == 3:
            return self.call("zcard", k)
        if c == 4:
            return self.call("zcount", k, self.score(info), self.score(info))
        if c == 5:
            lk, linfo = self.pick("lexzset")
            if linfo is not None and linfo.type == "zset" and _subtype(linfo) != "lexzset":
                lk, linfo = b"nokey", None
            return self.call("zlexcount", lk, self.lex(linfo), self.lex(linfo))
        if c == 6:
            return self.call("zscore", k, self.member(info))
        if c == 7:
            return self.call("zmscore", k, *self.members(info, 1, 5))
        if c == 8:
            cmd = self.rng.choice(["zrangebyscore", "zrevrangebyscore"])
            args: list[object] = [k, self.score(info), self.score(info)]
            opts: list[list[object]] = []
            if self.chance(0.5):
                opts.append(["WITHSCORES"])
            if self.chance(0.4):
                opts.append(
                    ["LIMIT", self.index(n), self.rng.choice(["1", "3", "-1", "0", "abc", "100"])]
                )
            self.rng.shuffle(opts)
            for o in opts:
                args += o
            return self.call(cmd, *args)
        if c == 9:
            lk, linfo = self.pick("lexzset")
            if linfo is not None and linfo.type == "zset" and _subtype(linfo) != "lexzset":
                lk, linfo = b"nokey", None
            cmd = self.rng.choice(["zrangebylex", "zrevrangebylex"])
            args = [lk, self.lex(linfo), self.lex(linfo)]
            if self.chance(0.4):
                args += [
                    "LIMIT",
                    self.index(self.length(linfo)),
                    self.rng.choice(["1", "3", "-1", "0", "abc"]),
                ]
            elif self.chance(0.05):
                args.append("WITHSCORES")
            return self.call(cmd, *args)
        if c == 10:
            args = [k, self.index(n), self.index(n)]
            if self.chance(0.5):
                args.append(self.rng.choice(["WITHSCORES", "withscores", "FOO"]))
            return self.call("zrevrange", *args)
        if c == 11:
            args = [k, self.member(info)]
            if self.chance(0.3):
                args.append(self.rng.choice(["WITHSCORE", "withscore", "FOO"]))
            return self.call(self.rng.choice(["zrank", "zrevrank"]), *args)
        if c == 12:
            args = [k]
            if self.chance(0.8):
                args.append(self.count())
                if self.chance(0.5):
                    args.append(self.rng.choice(["WITHSCORES", "WITHSCORES", "FOO"]))
            return self.call(
                "zrandmember",
                *args,
                rule="zrandmember",
                arg=info.content if info is not None and info.type == "zset" else None,
            )
        if c in (13, 14):
            return self.f_zsetop()
        if c == 15:
            return self.scan_call("zscan", k, info)
        if c == 16:
            keys = [
                self.key(self.rng.choice(["zset", "set"])) for _ in range(self.rng.randint(1, 3))
            ]
            nk = self.rng.choice([str(len(keys))] * 4 + ["0", str(len(keys) + 1), "abc"])
            args = [nk, *keys]
            if self.chance(0.4):
                args += ["LIMIT", self.rng.choice(["0", "1", "3", "-1", "abc"])]
            return self.call("zintercard", *args)
        return self.call("zscore", k, self.rng.choice([b"", b"nomember", b"lex1"]))

    def f_zrange(self) -> Step:
        mode = self.rng.choice(["index", "index", "score", "score", "lex"])
        if mode == "lex":
            k, info = self.pick("lexzset")
            if info is not None and info.type == "zset" and _subtype(info) != "lexzset":
                k, info = b"nokey", None
        else:
            k, info = self.pick("zset")
        n = self.length(info)
        if mode == "index":
            lo, hi = self.index(n).encode(), self.index(n).encode()
        elif mode == "score":
            lo, hi = self.score(info).encode(), self.score(info).encode()
        else:
            lo, hi = self.lex(info), self.lex(info)
        opts: list[list[object]] = []
        if mode == "score" or (mode == "index" and self.chance(0.05)):
            opts.append(["BYSCORE"])
        if mode == "lex" or (mode == "index" and self.chance(0.03)):
            opts.append(["BYLEX"])  # with index bounds: always a range syntax error
        if self.chance(0.35):
            opts.append(["REV"])
        if self.chance(0.35 if mode != "index" else 0.05):
            opts.append(
                ["LIMIT", self.index(n), self.rng.choice(["1", "2", "-1", "0", "5", "abc"])]
            )
        if self.chance(0.45 if mode != "lex" else 0.05):
            opts.append(["WITHSCORES"])
        self.rng.shuffle(opts)
        args: list[object] = [k, lo, hi]
        for o in opts:
            args += o
        return self.call("zrange", *args)

    def f_zsetop(self) -> Step:
        cmd = self.rng.choice(["zunion", "zinter", "zdiff"])
        keys = [
            self.key(self.rng.choice(["zset", "zset", "set"]))
            for _ in range(self.rng.randint(1, 3))
        ]
        nk = self.rng.choice([str(len(keys))] * 6 + ["0", "-1", str(len(keys) + 1), "abc"])
        args: list[object] = [nk, *keys]
        if cmd != "zdiff":
            if self.chance(0.4):
                args.append("WEIGHTS")
                for _ in keys:
                    args.append(self.rng.choice(["1", "2", "0", "-1", "0.5", "inf", "-inf", "abc"]))
            if self.chance(0.4):
                args += ["AGGREGATE", self.rng.choice(["SUM", "MIN", "MAX", "max", "FOO"])]
        if self.chance(0.6):
            args.append("WITHSCORES")
        return self.call(cmd, *args)

    def f_stream(self) -> Step:
        k, info = self.pick("stream")
        s = info.content if info is not None and isinstance(info.content, StreamInfo) else None
        groups = sorted(s.groups) if s is not None else []

        def group() -> bytes:
            if groups and self.chance(0.85):
                return self.rng.choice(groups)
            return b"nogroup"

        c = self.rng.randrange(10)
        if c == 0:
            return self.call("xlen", k)
        if c in (1, 2):
            rev = self.chance(0.4)
            a, z = self.stream_id(info), self.stream_id(info)
            args: list[object] = [k, a, z]
            if self.chance(0.5):
                args += ["COUNT", self.rng.choice(["0", "1", "3", "10", "-1", "abc"])]
            elif self.chance(0.05):
                args.append("FOO")
            return self.call("xrevrange" if rev else "xrange", *args)
        if c == 3:
            keys = [k] + ([self.key("stream")] if self.chance(0.4) else [])
            ids = [self.stream_id(self.pick("stream")[1], ("0", "$", "0-0", "+")) for _ in keys]
            if self.chance(0.08):
                ids = ids[:-1] or [b"0"] * 2  # unbalanced
            args = []
            if self.chance(0.5):
                args += ["COUNT", self.rng.choice(["1", "2", "5", "0", "-1", "abc"])]
            if self.chance(0.15):
                args += ["BLOCK", self.rng.choice(["1", "5", "-1", "abc"])]
            return self.call("xread", *args, "STREAMS", *keys, *ids)
        if c in (4, 5):
            args = [k, group()]
            rule = "exact"
            if self.chance(0.6):
                rule = "xpending"
                if self.chance(0.3):
                    args += ["IDLE", self.rng.choice(["0", "1", "999999999", "-1", "abc"])]
                args += [
                    self.stream_id(info),
                    self.stream_id(info),
                    self.rng.choice(["10", "1", "0", "-1", "abc", "100"]),
                ]
                if self.chance(0.4):
                    cons = s.groups.get(args[1], []) if s is not None else []  # type: ignore[call-overload]
                    args.append(self.rng.choice(cons) if cons and self.chance(0.8) else b"nobody")
            elif self.chance(0.05):
                args += ["-", "+"]  # start and end without a count
            return self.call("xpending", *args, rule=rule)
        if c == 6:
            args = ["stream", k]
            if self.chance(0.4):
                args.append("FULL")
                if self.chance(0.5):
                    args += ["COUNT", self.rng.choice(["0", "1", "5", "-1", "abc"])]
            elif self.chance(0.05):
                args.append("FOO")
            return self.call("xinfo", *args, rule="masked")
        if c == 7:
            return self.call("xinfo", "groups", k, rule="masked")
        if c == 8:
            return self.call("xinfo", "consumers", k, group(), rule="masked")
        return self.call(
            "xinfo", self.rng.choice(["help", "foo", "STREAM"]), *([k] if self.chance(0.5) else [])
        )

    def f_geo(self) -> Step:
        k, info = self.pick("geo")
        c = self.rng.randrange(8)

        def lonlat() -> list[object]:
            if self.chance(0.9):
                return [round(self.rng.uniform(-180, 180), 4), round(self.rng.uniform(-85, 85), 4)]
            return self.rng.choice(
                [[200, 0], [0, 86], ["abc", 0], [15, 37], [13.361389, 38.115556]]
            )

        def radius() -> object:
            return self.rng.choice([0, 1, 100, 500, 2000, 6000, 20000, 0.5, -1, "abc"])

        def opts(ro: bool) -> list[object]:
            out: list[list[object]] = []
            for o in ("WITHCOORD", "WITHDIST", "WITHHASH"):
                if self.chance(0.35):
                    out.append([o])
            if self.chance(0.5):
                out.append([self.rng.choice(["ASC", "DESC"])])
            if self.chance(0.4):
                cnt: list[object] = ["COUNT", self.rng.choice(["1", "2", "5", "0", "-1", "abc"])]
                if self.chance(0.3):
                    cnt.append("ANY")
                out.append(cnt)
            if ro and self.chance(0.03):
                out.append(["STORE", "dst"])
            self.rng.shuffle(out)
            return [x for o in out for x in o]

        if c == 0:
            return self.call("geopos", k, *self.members(info, 1, 4))
        if c == 1:
            args: list[object] = [k, self.member(info), self.member(info)]
            if self.chance(0.6):
                args.append(self.rng.choice(UNITS))
            return self.call("geodist", *args)
        if c == 2:
            # Redis 5.0 leaves GEOHASH's hash uninitialized for a score outside the geo
            # ranges (`geohashEncode` fails): whatever its stack held. Only keys of geo
            # points are exact there.
            ub = not self.dialect.at_least((6, 0), (0,)) and (
                info is None or _subtype(info) != "geo"
            )
            return self.call(
                "geohash", k, *self.members(info, 0, 4), rule="kind" if ub else "exact"
            )
        if c in (3, 4):
            args = [k]
            if self.chance(0.5):
                args += ["FROMMEMBER", self.member(info)]
            else:
                args += ["FROMLONLAT", *lonlat()]
            if self.chance(0.03):
                args += ["FROMMEMBER", self.member(info)]
            if self.chance(0.6):
                args += ["BYRADIUS", radius(), self.rng.choice(UNITS)]
            else:
                args += ["BYBOX", radius(), radius(), self.rng.choice(UNITS)]
            return self.call("geosearch", *args, *opts(False))
        if c == 5:
            return self.call(
                "georadius_ro", k, *lonlat(), radius(), self.rng.choice(UNITS), *opts(True)
            )
        if c == 6:
            return self.call(
                "georadiusbymember_ro",
                k,
                self.member(info),
                radius(),
                self.rng.choice(UNITS),
                *opts(True),
            )
        return self.call("geopos", self.key("zset"), self.member(info))

    def rotate(self, name: str, options: list[str]) -> str:
        """The options in turn (seeded start): rare branches are all reached."""
        i = self._turns.get(name)
        if i is None:
            i = self.rng.randrange(len(options))
        self._turns[name] = i + 1
        return options[i % len(options)]

    def f_server(self) -> Step:
        c = int(self.rotate("server", [str(i) for i in range(30)]))
        r = self.rng
        if c == 0:
            return self.call("ping")
        if c == 1:
            return self.call("ping", r.choice([b"hello", b"", b"a b\r\nc"]))
        if c == 2:
            return self.call("echo", r.choice([b"x", b"", b"\x00\xff", b"e" * 300]))
        if c == 3:
            return self.call("time", rule="time")
        if c == 4:
            return self.call("dbsize")
        if c == 5:
            return self.call("lastsave", rule="int")
        if c == 6:
            return self.call(
                "info",
                *r.choice(
                    [
                        [],
                        ["keyspace"],
                        ["replication"],
                        ["server"],
                        ["nosuchsection"],
                        ["keyspace", "server"],
                        ["KEYSPACE"],
                        ["all"],
                        ["default"],
                    ]
                ),
                rule="info",
            )
        if c == 7:
            return self.call("role", rule="role")
        if c == 8:
            param = r.choice(
                [
                    "databases",
                    "databases",
                    "maxmemory-policy",
                    "appendonly",
                    "save",
                    "timeout",
                    "proto-max-bulk-len",
                    "repl-backlog-size",
                    "hash-max-listpack-entries",
                    "no-such-param",
                    "DATABASES",
                    "*max-listpack*",
                    "databases maxmemory",
                ]
            )
            # The relay's own persistence and backlog settings are not the replica's.
            own = param in ("save", "repl-backlog-size")
            return self.call("config", "get", *param.split(), rule="same_keys" if own else "pairs")
        if c in (9, 23, 24):
            sub = self.rotate(
                "command", ["count", "info", "docs", "getkeys", "list", "help", "foo"]
            )
            if sub == "info":
                names = r.sample(
                    ["get", "hgetall", "zrange", "xinfo|stream", "nosuch", "set", "object"],
                    r.randint(0, 3),
                )
                # Without names: every command, in the command table's hash order.
                # Subcommands come in their table's hash order, and without names so do
                # the commands themselves.
                return self.call("command", "info", *names, rule="deep")
            if sub == "docs":
                return self.call(
                    "command",
                    "docs",
                    r.choice(["get", "zrange", "nosuch", "object", "config"]),
                    rule="deep",
                )
            if sub == "getkeys":
                return self.call(
                    "command",
                    "getkeys",
                    *r.choice(
                        [
                            ["get", "k"],
                            ["mget", "a", "b"],
                            ["set", "a", "b"],
                            ["nosuch", "x"],
                            ["zunion", "2", "a", "b"],
                            ["xread", "STREAMS", "a", "b", "0", "0"],
                            ["ping"],
                            ["sort_ro", "k"],
                            ["get"],
                        ]
                    ),
                )
            if sub == "list":
                return self.call(
                    "command",
                    "list",
                    *r.choice(
                        [
                            [],
                            ["FILTERBY", "ACLCAT", "read"],
                            ["FILTERBY", "PATTERN", "z*"],
                            ["FILTERBY", "FOO", "x"],
                        ]
                    ),
                    rule="multiset",
                )
            return self.call("command", sub)
        if c in (10, 21, 22):
            sub = self.rotate(
                "client", ["getname", "setname", "setname", "id", "info", "foo", "help", "GETNAME"]
            )
            if sub == "setname":
                return self.call(
                    "client", "setname", r.choice([b"me", b"", b"a b", b"x\n", b"name-1"])
                )
            rule = {"id": "int", "info": "client_info"}.get(sub, "exact")
            return self.call("client", sub, rule=rule)
        if c == 11:
            return self.call("auth", *r.choice([["x"], ["default", "x"], ["a", "b"]]))
        if c == 12:
            return self.call(self.rotate("rorw", ["readonly", "readwrite"]))
        if c == 13:
            return self.call("wait", *r.choice([["0", "0"], ["1", "10"], ["abc", "0"]]))
        if c == 14:
            return self.call("watch", *self.keys("string", 1, 3))
        if c == 15:
            return self.call("unwatch")
        if c in (16, 25, 26):
            return self.call(
                "pubsub",
                *self.rotate(
                    "pubsub",
                    [
                        "channels",
                        "channels c*",
                        "numsub",
                        "numsub a b",
                        "numpat",
                        "shardchannels",
                        "shardnumsub a",
                        "foo",
                        "help",
                    ],
                ).split(),
            )
        if c == 17:
            return self.call("type", self.key(r.choice(["string", "list", "hash"])))
        if c == 18:
            return self.call(r.choice(["exec", "discard"]))  # without MULTI
        if c == 19:
            # Not MALLOC-STATS: its reply depends on the allocator a server was built with
            # (jemalloc: verbatim statistics; libc, like the relay: a bulk "not supported").
            sub = r.choice(["help", "foo", "doctor", "stats"])
            return self.call(
                "memory",
                sub,
                rule="kind" if sub in ("doctor", "stats", "malloc-stats") else "exact",
            )
        if c == 20:
            return self.call("config", r.choice(["help", "foo"]))
        return self.call(
            r.choice(["ping", "echo", "dbsize"]), *([b"z"] if self.chance(0.3) else [])
        )

    def f_write(self) -> Step:
        r = self.rng
        t = r.choice(["string", "list", "set", "hash", "zset", "stream", "geo", "hll"])
        k = self.key(t)
        tpl = r.choice(WRITES) if self.chance(0.85) else r.choice(WRITE_LIKE)
        argv = [self.name(tpl[0].lower()), *(k if a == "{k}" else a.encode() for a in tpl[1:])]
        if self.chance(0.05):
            argv = argv[:1]  # wrong arity answers before READONLY
            return [Call(argv)]
        if tpl[0].startswith(("EVAL", "FCALL")) and self.dialect.script_error_wrapped:
            return [Call(argv, rule="script_error_core")]  # see `_script_error_core`
        return [Call(argv)]

    def f_unknown(self) -> Step:
        r = self.rng
        name = r.choice(
            [
                b"gett",
                b"hgetalll",
                b"foo",
                b"",
                b"sort_rw",
                b"GETX",
                b"x" * 200,
                b"get\r\nx",
                b"\xc3\xa9t\xc3\xa9",
                b"a b",
                b"zrange_ro",
                b"xinfo2",
            ]
        )
        args = [
            r.choice([b"k", b"", b"a\r\nb", b"y" * 150, b"'q'", b"\x00"])
            for _ in range(r.randint(0, 4))
        ]
        return [Call([name, *args])]

    def f_arity(self) -> Step:
        r = self.rng
        name = r.choice(sorted(ARITY))
        arity = ARITY[name]
        parts = name.split("|")
        if arity > 0:
            n = r.choice([arity - 1, arity + 1, 1]) if arity > 1 else arity + 1
        else:
            n = r.randint(1, -arity - 1) if -arity > 1 else None  # type: ignore[assignment]
            if n is None:
                return self.call("ping", "a", "b")
        n = max(n, len(parts))
        if n == arity:  # a subcommand alone can have the right arity: make it one too many
            n += 1
        argv = [p.encode() for p in parts] + [b"a"] * (n - len(parts))
        argv[0] = self.name(parts[0])
        return [Call(argv)]

    def f_transaction(self) -> Step:
        r = self.rng
        calls = [Call([self.name("multi")])]
        kind = r.random()
        if kind < 0.1:
            calls.append(Call([b"multi"]))  # nested: an error, the transaction goes on
        body: list[Call] = []
        size = r.randint(1, 5)
        while len(body) < size:
            fam = r.choice(
                [
                    self.f_string,
                    self.f_hash,
                    self.f_list,
                    self.f_set,
                    self.f_zset,
                    self.f_stream,
                    self.f_bitmap,
                ]
            )
            step = fam()
            if all(c.rule == "exact" and c.argv[0].lower() not in (b"xinfo",) for c in step):
                body += step
        calls += body
        if kind < 0.25:
            calls.append(Call([b"set", b"k", b"v"]))  # refused at queue time: EXECABORT
        elif kind < 0.3:
            calls.append(Call([b"get"]))  # wrong arity at queue time: EXECABORT
        elif kind < 0.35:
            calls.append(Call([b"watch", b"k"]))  # not allowed inside MULTI
        calls.append(Call([b"discard" if r.random() < 0.15 else b"exec"]))
        return calls

    def f_pubsub(self) -> Step:
        # RESP2: a subscriber may only (un)subscribe, PING, QUIT, RESET. RESP3: anything.
        # Channel names are fixed so the counts in the replies are deterministic.
        return [
            Call([b"subscribe", b"ch1", b"ch2"], nreplies=(2, 2)),
            Call([b"ping"]),
            Call([b"ping", b"hi"]),
            Call([b"get", b"e:int"]),
            Call([b"psubscribe", b"p*"]),
            Call([b"pubsub", b"numsub", b"ch1"]),
            Call([b"ssubscribe", b"sh1"]),
            Call([b"sunsubscribe", b"sh1"]),
            Call([b"punsubscribe", b"p*"]),
            Call([b"unsubscribe", b"ch1", b"ch2"], nreplies=(2, 2)),
            Call([b"unsubscribe"]),
            Call([b"ping"]),
        ]

    def setop_ordered(self, cmd: str, keys: list[bytes]) -> bool:
        """Whether SINTER/SUNION/SDIFF of `keys` answers in an order two real replicas
        share: SINTER walks its smallest set, SUNION/SDIFF fill a new set (an intset while
        every member is an integer, then a listpack on 7.2+/Valkey, then a hash table) from
        the sources in their order; a hash table anywhere on the way makes it hash order."""
        db = self.cat.db(self.db)
        infos = {k.name: k for k in db.keys}
        sets = [infos.get(k) for k in keys]
        live = [i for i in sets if i is not None]
        if any(i.type != "set" for i in live):
            return True  # WRONGTYPE: an error, compared exactly
        if cmd == "sinter":
            if len(live) < len(sets) or not live:
                return True  # a missing key: empty
            least = min(len(i.content) for i in live)
            return all(i.ordered for i in live if len(i.content) == least)
        if not all(i.ordered for i in live):
            return False
        if cmd == "sdiff" and (not sets or sets[0] is None):
            return True  # nothing to subtract from: empty
        if self.dialect.setop_reply_hashtable and any(i.encoding != "intset" for i in live):
            return False  # collected in a hash table (Redis 8, Valkey 8)
        result: set[bytes] = set()
        for i in live:
            result |= i.content
        if all(_is_int(m) for m in result) and len(result) <= 512:
            return True
        return (
            self.dialect.listpack_sets and len(result) <= 128 and all(len(m) <= 64 for m in result)
        )

    def f_misc(self) -> Step:
        """Reads few clients use but a replica answers: LOLWUT, STRALGO (6.2), the function
        reads (7.0+), CLIENT NO-TOUCH / SETINFO / NO-EVICT, OBJECT FREQ."""
        r = self.rng
        c = int(self.rotate("misc", [str(i) for i in range(10)]))
        if c == 0:
            return self.call(
                "lolwut",
                *r.choice(
                    [
                        [],
                        ["VERSION", "5"],
                        ["VERSION", "6"],
                        ["VERSION", "7"],
                        ["VERSION", "8"],
                        ["VERSION", "abc"],
                        ["foo"],
                    ]
                ),
                rule="lolwut",
            )
        if c == 1:
            k1, k2 = self.key("string"), self.key("string")
            args: list[object] = r.choice(
                [
                    ["LCS", "KEYS", k1, k2],
                    ["LCS", "KEYS", k1, k2, "LEN"],
                    ["LCS", "STRINGS", "ohmytext", "mynewtext", "IDX", "WITHMATCHLEN"],
                    ["FOO"],
                    ["LCS", "STRINGS", "a"],
                ]
            )
            return self.call("stralgo", *args)
        if c in (2, 3, 8):
            # Scripting reads (FUNCTION LIST/DUMP/STATS...): exact.
            sub = self.rotate(
                "function",
                [
                    "list",
                    "list withcode",
                    "list libraryname w*",
                    "list libraryname nolib",
                    "dump",
                    "stats",
                    "help",
                    "list foo",
                ],
            )
            return self.call("function", *sub.split())
        if c == 4:
            return self.call("client", "no-touch", r.choice(["on", "off", "maybe"]))
        if c == 5:
            return self.call(
                "client",
                "setinfo",
                *r.choice(
                    [
                        ["lib-name", "redis-py"],
                        ["lib-ver", "1.2.3"],
                        ["lib-name", "a b"],
                        ["foo", "x"],
                        ["lib-name"],
                    ]
                ),
            )
        if c == 6:
            return self.call("client", "no-evict", r.choice(["on", "off", "x"]))
        if c == 7:
            return self.call("object", "freq", self.key(r.choice(["string", "hash"])))
        return self.call("touch", *self.keys(r.choice(["string", "zset"]), 1, 3))

    def f_vset(self) -> Step:
        """Vector set reads (Redis 8). Exact where two replicas agree (elements, vectors,
        attributes, exact similarity with TRUTH); by properties where each server's own
        random HNSW levels decide (VLINKS, VRANDMEMBER, VSIM's walk, VINFO max-level)."""
        k, info = self.pick("vectorset")
        els = info.content if info is not None and isinstance(info.content, list) else []

        def el() -> bytes:
            return self.rng.choice(els) if els and self.chance(0.85) else b"nosuch"

        c = self.rng.randrange(9)
        if c == 0:
            return self.call("vcard", k)
        if c == 1:
            return self.call("vdim", k)
        if c == 2:
            return self.call("vemb", k, el(), *(["RAW"] if self.chance(0.3) else []))
        if c == 3:
            return self.call("vgetattr", k, el())
        if c == 4:
            return self.call("vismember", k, el())
        if c == 5:
            return self.call("vinfo", k, rule="vinfo")
        if c == 6:
            args: list[object] = [k, "ELE", el(), "TRUTH"]
            if self.chance(0.5):
                args += ["WITHSCORES"]
            if self.chance(0.4):
                args += ["COUNT", self.rng.choice(["1", "3", "10", "0", "-1", "abc"])]
            if self.chance(0.3):
                args += ["FILTER", self.rng.choice([".n > 50", ".n == 1", '.s == "x"', "bad ("])]
            return self.call("vsim", *args)
        if c == 7:
            return self.call(
                "vrandmember",
                k,
                *([self.rng.choice(["1", "3", "-3", "100"])] if self.chance(0.7) else []),
                rule="vrandmember",
                arg=set(els),
            )
        return self.call(
            "vlinks", k, el(), *(["WITHSCORES"] if self.chance(0.4) else []), rule="kind"
        )

    def scan_call(self, cmd: str, k: bytes, info: KeyInfo | None) -> Step:
        args: list[object] = [k, "0"]
        if self.chance(0.1):
            args[1] = self.rng.choice(["abc", "1.5", "", "18446744073709551616", "0x1"])
        if self.chance(0.4):
            args += [
                "MATCH",
                self.rng.choice(
                    [
                        b"*",
                        b"f1*",
                        b"m*",
                        b"*1",
                        b"?",
                        b"[a-f]*",
                        b"lex*",
                        b"1*",
                        b"nomatch",
                        b"*\\*",
                    ]
                ),
            ]
        if self.chance(0.4):
            args += ["COUNT", self.rng.choice(["1", "10", "100", "1000", "0", "-1", "abc"])]
        # NOVALUES (HSCAN: Redis 7.4+, Valkey 8), NOSCORES (ZSCAN: Valkey 8 only), each an
        # error of its own text or a syntax error elsewhere, as the version has them.
        own, other = ("NOVALUES", "NOSCORES") if cmd == "hscan" else ("NOSCORES", "NOVALUES")
        if cmd != "sscan" and self.chance(0.15):
            args.append(own)
        if self.chance(0.04):
            args.append(other)
        if self.chance(0.03):
            args.append("FOO")
        compact = info is not None and info.ordered
        pairs = cmd in ("hscan", "zscan") and own not in args
        return self.call(
            cmd,
            *args,
            rule="scan",
            arg={"cursor": 2, "pairs": pairs, "exact_first": compact, "db": self.db},
        )

    def f_scan(self) -> Step:
        if self.chance(0.4):
            return self.scan_call(
                self.rng.choice(["hscan", "sscan", "zscan"]),
                *self.pick(self.rng.choice(["hash", "set", "zset"])),
            )
        args: list[object] = ["0"]
        if self.chance(0.1):
            args[0] = self.rng.choice(["abc", "1.5", "", "18446744073709551616"])
        if self.chance(0.4):
            args += [
                "MATCH",
                self.rng.choice(
                    [b"*", b"s:*", b"e:*", b"*1", b"h:?", b"nomatch", b"exp:*", b"[lz]:*"]
                ),
            ]
        if self.chance(0.4):
            args += ["COUNT", self.rng.choice(["1", "10", "100", "1000", "0", "-1", "abc"])]
        if self.chance(0.3):
            args += [
                "TYPE",
                self.rng.choice(
                    ["string", "list", "set", "zset", "hash", "stream", "STRING", "foo"]
                ),
            ]
        if self.chance(0.04):
            args.append(self.rng.choice(["NOVALUES", "NOSCORES"]))
        return self.call(
            "scan", *args, rule="scan", arg={"cursor": 1, "pairs": False, "exact_first": False}
        )


# ---------------------------------------------------------------------------------------------
# Comparison


@dataclass
class Env:
    """What property rules need besides the two replies."""

    catalog: Catalog
    restore: Callable[[bytes], bytes | None] | None = None  # DUMP payload -> value digest
    sut_is_relay: bool = False  # documented deviations apply to the relay only


MASKED = {b"seen-time", b"active-time", b"idle", b"inactive"}


def _mask(n: Node) -> Node:
    """Hide time-dependent values: XINFO's `idle`/`seen-time`... and XPENDING's idle."""
    kind, v = n
    if kind == "%":
        return (kind, tuple((k, ("?", None) if _text(k) in MASKED else _mask(x)) for k, x in v))
    if kind in "*~>" and v is not None:
        out = []
        mask_next = False
        for x in v:
            out.append(("?", None) if mask_next else _mask(x))
            mask_next = _text(x) in MASKED
        return (kind, tuple(out))
    return n


def _xpending_mask(n: Node) -> Node:
    items = _elems(n)
    if items is None:
        return n
    out = []
    for e in items:
        sub = _elems(e)
        if sub is not None and len(sub) == 4:
            e = (e[0], (sub[0], sub[1], ("?", None), sub[3]))
        out.append(e)
    return (n[0], tuple(out))


def _canon(n: Node) -> object:
    """A reply with every array, set and map made order-free (deep multiset)."""
    kind, v = n
    if kind in "*~>" and v is not None:
        return (kind, tuple(sorted((_canon(x) for x in v), key=repr)))
    if kind == "%":
        return (kind, tuple(sorted(((_canon(a), _canon(z)) for a, z in v), key=repr)))
    return n


def _same_kind(po: Node, ps: Node) -> str | None:
    if po[0] != ps[0]:
        return f"reply types differ ({po[0]!r} vs {ps[0]!r})"
    if (po[1] is None) != (ps[1] is None):
        return "one reply is null"
    return None


def _random_rule(call: Call, po: Node, ps: Node, proto: int) -> str | None:
    """SRANDMEMBER / HRANDFIELD / ZRANDMEMBER: the same shape and size as the oracle's
    reply, elements of the key (with their real values/scores), no repeats for a positive
    count, and a member's score printed exactly as the oracle prints it."""
    if (err := _same_kind(po, ps)) is not None:
        return err
    content = call.arg
    argv = call.argv
    if len(argv) == 2:  # one element or null
        if ps[1] is not None and (content is None or ps[1] not in content):
            return f"{ps[1]!r} is not an element of the key"
        return None
    count = int(argv[2])
    withv = len(argv) > 3
    oi, si = _elems(po), _elems(ps)
    if oi is None or si is None:
        return "not an array"
    if len(oi) != len(si):
        return f"{len(si)} elements, the oracle has {len(oi)}"

    def split(items: tuple[Node, ...]) -> list[tuple[bytes | None, Node | None]] | None:
        if not withv:
            return [(_text(e), None) for e in items]
        if proto == 3:
            out: list[tuple[bytes | None, Node | None]] = []
            for e in items:
                pair = _elems(e)
                if pair is None or len(pair) != 2:
                    return None
                out.append((_text(pair[0]), pair[1]))
            return out
        if len(items) % 2:
            return None
        return [(_text(items[i]), items[i + 1]) for i in range(0, len(items), 2)]

    got, want = split(si), split(oi)
    if got is None or want is None:
        return "not (element, value) pairs"
    theirs = {m: v for m, v in want}
    for m, v in got:
        if content is None or m not in content:
            return f"{m!r} is not an element of the key"
        if v is None:
            continue
        ov = theirs.get(m)
        if ov is not None and ov != v:
            return f"value of {m!r}: {v!r}, the oracle says {ov!r}"
        if want and want[0][1] is not None and v[0] != want[0][1][0]:
            return "value types differ"
        if isinstance(content, dict) and call.rule == "hrandfield" and _text(v) != content[m]:
            return f"value of {m!r} is {v!r}, not {content[m]!r}"
        if call.rule == "zrandmember" and _num(v) != content[m]:
            return f"score of {m!r} is {v!r}, not {content[m]!r}"
    if count > 0 and len({m for m, _ in got}) != len(got):
        return "repeated elements for a positive count"
    return None


_WRAPPED_SCRIPT_ERROR = re.compile(
    rb"-ERR Error running script \(call to f_[0-9a-f]{40}\): (.*?)\s*\r\n", re.S
)
_SCRIPT_ERROR_WHERE = re.compile(rb"-(.*?) script: [0-9a-f]{40}, on @user_script:\d+\.\r\n")
_WHERE = re.compile(rb"^(?:@user_script: ?\d+: )+-?")


def _script_error(reply: bytes) -> bytes | None:
    """The error a script raised, without where it was raised: from 5.0/6.2's wrapping
    (`ERR Error running script (call to f_<sha>): @user_script:1: ...`) or 7.0's suffix."""
    m = _WRAPPED_SCRIPT_ERROR.fullmatch(reply)
    if m is not None:
        return _WHERE.sub(b"", m.group(1)).strip()
    m = _SCRIPT_ERROR_WHERE.fullmatch(reply)
    return None if m is None else m.group(1).strip()


def _script_error_core(o: bytes, s: bytes) -> str | None:
    """A script's error on a 5.0/6.2 master (docs/scripting.md): the relay runs scripts with
    Redis 7.0's Lua and wraps their errors as 5.0/6.2 do, but where a frame still differs
    (an error the script raised itself, pcall's tables) the error itself must be the same;
    anything else exactly."""
    if o == s:
        return None
    eo, es = _script_error(o), _script_error(s)
    if eo is None or es is None:
        return "replies differ"
    return None if eo == es else "different script errors"


def compare(call: Call, proto: int, oracle: list[bytes], sut: list[bytes], env: Env) -> str | None:
    """None when the SUT's replies are acceptable, else why not."""
    if len(oracle) != len(sut):
        return f"{len(sut)} replies, the oracle gave {len(oracle)}"
    if len(oracle) != 1 or call.rule == "exact":
        return None if oracle == sut else "replies differ"
    o, s = oracle[0], sut[0]
    if o == s:
        return None
    if call.rule == "lolwut":
        return _lolwut_rule(parse(o), parse(s))
    if call.rule == "script_error_core" and env.sut_is_relay:
        return _script_error_core(o, s)
    if is_error(o) or is_error(s):
        return "replies differ"
    po, ps = parse(o), parse(s)
    rule = call.rule
    if rule in ("multiset", "pairs"):
        if (err := _same_kind(po, ps)) is not None:
            return err
        if rule == "pairs":
            a, z = _pairs(po), _pairs(ps)
            if a is None or z is None:
                return "not a map"
            return None if Counter(a) == Counter(z) else "different field/value pairs"
        oi, si = _elems(po), _elems(ps)
        if oi is None or si is None:
            return "replies differ"
        return None if Counter(oi) == Counter(si) else "different elements (as multisets)"
    if rule == "same_keys":
        a, z = _pairs(po), _pairs(ps)
        if a is None or z is None:
            return "not a map"
        return None if [k for k, _ in a] == [k for k, _ in z] else "different parameters"
    if rule == "deep":
        return None if _canon(po) == _canon(ps) else "different (compared order-free)"
    if rule == "hpttl":
        # HPTTL: per field, the remaining time runs with each server's clock.
        oi, si = _elems(po), _elems(ps)
        if oi is None or si is None or len(oi) != len(si):
            return "different shapes"
        for to, ts in zip(oi, si):
            if (
                to[0] != ":"
                or ts[0] != ":"
                or ((to[1] < 0 or ts[1] < 0) and to[1] != ts[1])
                or abs(to[1] - ts[1]) > 1000
            ):
                return "field TTLs differ"
        return None
    if rule in ("ttl", "pttl"):
        if po[0] != ":" or ps[0] != ":":
            return "not integers"
        if po[1] < 0 or ps[1] < 0:
            return None if po[1] == ps[1] else "replies differ"
        tol = 1 if rule == "ttl" else 1000
        return None if abs(po[1] - ps[1]) <= tol else f"differ by more than {tol}"
    if rule in ("srandmember", "hrandfield", "zrandmember"):
        return _random_rule(call, po, ps, proto)
    if rule == "randomkey":
        if (err := _same_kind(po, ps)) is not None:
            return err
        live = env.catalog.db(call.arg).names
        if ps[1] is not None and ps[1] not in live and po[1] in live:
            return f"{ps[1]!r} is not a live key of db {call.arg}"
        return None
    if rule == "time":
        oi, si = _elems(po), _elems(ps)
        if oi is None or si is None or len(si) != 2 or ps[0] != po[0]:
            return "not a 2-element array"
        try:
            secs = int(_text(si[0]) or b"x")
            int(_text(si[1]) or b"x")
        except ValueError:
            return "not two integers"
        return None if abs(secs - int(_text(oi[0]) or b"0")) <= 2 else "clock differs"
    if rule == "kind":
        return _same_kind(po, ps)
    if rule == "int":
        return None if ps[0] == ":" == po[0] else "not an integer"
    if rule == "int_or_null":
        return _same_kind(po, ps) or (None if ps[0] in ":_$*" else "not an integer")
    if rule == "encoding":
        if (err := _same_kind(po, ps)) is not None or ps[1] is None:
            return err
        ok = ENCODINGS.get(call.arg or "", set())
        return None if ps[1] in ok else f"{ps[1]!r} is not an encoding of a {call.arg}"
    if rule == "memory":
        if po[0] == ":" and ps[0] == ":":
            return None if ps[1] > 0 else "not positive"
        return _same_kind(po, ps) or "replies differ"
    if rule == "dump":
        if (err := _same_kind(po, ps)) is not None or ps[1] is None:
            return err
        assert env.restore is not None
        want, got = env.restore(po[1]), env.restore(ps[1])
        if got is None:
            return "the payload cannot be restored"
        return None if got == want else "the payload restores to a different value"
    if rule == "masked":
        return None if _mask(po) == _mask(ps) else "replies differ (idle/seen fields masked)"
    if rule == "xpending":
        return None if _xpending_mask(po) == _xpending_mask(ps) else "replies differ (idle masked)"
    if rule == "role":
        oi, si = _elems(po), _elems(ps)
        if oi is None or si is None or len(oi) != len(si):
            return "different shapes"
        if oi[:4] != si[:4]:
            return "role/master/state differ"
        return None if len(si) < 5 or si[4][0] == ":" else "offset not an integer"
    if rule == "info":
        return _info_rule(po, ps)
    if rule == "client_info":
        if po[0] != ps[0]:
            return "reply types differ"
        fo, fs = _fields(_text(po) or b""), _fields(_text(ps) or b"")
        for f in (b"name", b"db", b"resp", b"multi", b"sub", b"psub"):
            if f in fo and fo.get(f) != fs.get(f):
                return f"field {f.decode()} differs"
        return None
    if rule == "hello":
        return _hello_rule(po, ps)
    if rule == "vinfo":
        return (
            None
            if _vinfo_mask(po) == _vinfo_mask(ps)
            else "replies differ (max-level, vset-uid masked)"
        )
    if rule == "vrandmember":
        return _vrandmember_rule(call, po, ps)
    return "unknown rule " + rule


_BRAILLE = re.compile("[\u2800-\u28ff]")


def _lolwut_rule(po: Node, ps: Node) -> str | None:
    """LOLWUT: the version line exactly; the art (Schotter, the skyline, Redis 8's poem)
    is drawn with each server's own random numbers and the relay documents it as not
    reproduced: its documented error is accepted where the replica drew art."""
    to, ts = _text(po), _text(ps)
    art = to is not None and not to.startswith(b"Redis ver. ")
    if art and ps == ("-", b"ERR replproxy does not support the 'lolwut' command"):
        return None
    if art and ts is not None and not ts.startswith(b"Redis ver. ") and po[0] == ps[0]:
        return None  # two real servers: each its own random art
    if po[0] != ps[0]:
        return f"reply types differ ({po[0]!r} vs {ps[0]!r})"
    if to is None or ts is None:
        return "not a string"
    mo = _BRAILLE.sub("?", to.decode("utf-8", "replace"))
    ms = _BRAILLE.sub("?", ts.decode("utf-8", "replace"))
    return None if mo == ms else "different text (art masked)"


def _vinfo_mask(n: Node) -> Node:
    """VINFO with the fields decided by each server's own randomness or process masked."""
    pairs = _pairs(n)
    if pairs is None:
        return n
    return (
        "%",
        tuple((k, ("?", None) if _text(k) in (b"max-level", b"vset-uid") else v) for k, v in pairs),
    )


def _vrandmember_rule(call: Call, po: Node, ps: Node) -> str | None:
    """VRANDMEMBER walks the server's own graph: members of the set, the same count, and
    distinct for a positive count."""
    if (err := _same_kind(po, ps)) is not None:
        return err
    members = call.arg or set()
    if len(call.argv) == 2:
        return None if ps[1] is None or ps[1] in members else f"{ps[1]!r} is not a member"
    oi, si = _elems(po), _elems(ps)
    if oi is None or si is None or len(oi) != len(si):
        return "different sizes"
    got = [_text(e) for e in si]
    if any(m not in members for m in got):
        return "not members of the set"
    if int(call.argv[2]) > 0 and len(set(got)) != len(got):
        return "repeated members for a positive count"
    return None


def _fields(line: bytes) -> dict[bytes, bytes]:
    out = {}
    for part in line.split():
        k, _, v = part.partition(b"=")
        out[k] = v
    return out


def _info_rule(po: Node, ps: Node) -> str | None:
    """INFO: the same reply type; the keyspace counts (keys, expires per DB) equal when the
    oracle shows them; `role:slave` when the oracle shows a role."""
    if po[0] != ps[0]:
        return f"reply types differ ({po[0]!r} vs {ps[0]!r})"
    to, ts = _text(po), _text(ps)
    if to is None or ts is None:
        return "not a string"

    def keyspace(t: bytes) -> dict[bytes, tuple[bytes, bytes]]:
        out = {}
        for line in t.split(b"\r\n"):
            if line.startswith(b"db") and b":keys=" in line:
                name, _, rest = line.partition(b":")
                f = dict(x.split(b"=", 1) for x in rest.split(b","))
                out[name] = (f[b"keys"], f[b"expires"])
        return out

    if keyspace(to) != keyspace(ts):
        return "keyspace counts differ"
    if b"\r\nrole:" in to and b"\r\nrole:slave\r\n" not in ts:
        return "no role:slave"
    if not to and ts:
        return "the oracle's reply is empty"
    return None


def _hello_rule(po: Node, ps: Node) -> str | None:
    """HELLO: the same keys in the same order; server, version, proto, mode, role and
    modules equal (the relay reports its master's); id an integer (each server numbers its
    own connections)."""
    if po[0] != ps[0]:
        return f"reply types differ ({po[0]!r} vs {ps[0]!r})"
    a, z = _pairs(po), _pairs(ps)
    if a is None or z is None:
        return "not a map"
    if [k for k, _ in a] != [k for k, _ in z]:
        return "different keys"
    da, dz = dict(a), dict(z)
    for k in (b"server", b"version", b"proto", b"mode", b"role", b"modules"):
        key = ("$", k)
        if da.get(key) != dz.get(key):
            return f"{k.decode()} differs"
    if dz.get(("$", b"id"), ("?",))[0] != ":":
        return "id is not an integer"
    if dz.get(("$", b"version"), ("?",))[0] != "$":
        return "version is not a bulk string"
    return None


# ---------------------------------------------------------------------------------------------
# Edge-case data, written to the master next to the random workload


def add_edge_keys(c: redis.Redis, prefix: str, seed: int) -> None:
    """Values at the edges of each type: empty and binary strings, integers at the limits,
    tiny and big (non-listpack) collections, equal-score zsets (for lex ranges), scores at
    inf/-0/fractions, a stream with groups, pending entries and deletions, geo points (two at
    the same place), sparse/dense/corrupt HyperLogLogs, keys with long TTLs, odd key names."""
    rng = random.Random(seed)
    p = prefix

    def k(name: str) -> str:
        return p + name

    c.mset(
        {
            k("empty"): "",
            k("int"): "12345",
            k("negint"): "-17",
            k("bigint"): "9223372036854775807",
            k("float"): "3.14159",
            k("bin"): b"\x00\xff\r\n\x80abc",
            k("long"): "x" * 100,
            k("huge"): "y" * 20000,
            k("bits"): b"\xff\xf0\x00\x0f",
            k("zeros"): b"\x00" * 10,
            k("ones"): b"\xff" * 10,
            k("utf"): "h\u00e9llo w\u00f6rld",
            k("lcs1"): "ohmytext",
            k("lcs2"): "mynewtext",
            k("space"): "a b c",
            k("small"): "7",
        }
    )
    c.set(b"", b"the empty name")
    for name in (b"a*b", b"[x]", b"sp ace", b"nl\nkey", b"\xff\xfe"):
        c.set(p.encode() + name, b"odd name")
    c.rpush(k("list1"), "a")
    c.rpush(k("list"), *["a", "b", "c", "a", "b", "a", "1", "2", "3", "-1", "10"])
    c.rpush(k("listbig"), *[str(rng.randrange(40)) for _ in range(300)])
    c.rpush(k("listlong"), *["L" * 100 + str(i) for i in range(5)])
    # Numbers SORT reads with strtod (Redis < 8) or fast_float (Redis 8): one list each
    # form, as one bad element makes the whole SORT an error.
    for i, form in enumerate([" 5", "0x1A", "1e400", "1e-400", "+.5", "5.", "Infinity"]):
        c.rpush(k(f"nums{i}"), "3", form, "-2.5", "")
    c.hset(k("hsmall"), mapping={"f1": "v1", "f2": "", "num": "10", "": "emptyfield", "neg": "-3"})
    c.hset(k("hbig"), mapping={f"f{i}": f"v{i}" for i in range(200)})
    c.hset(k("hbigval"), mapping={"f": "x" * 100, "g": "1"})
    c.sadd(k("intset"), 1, 2, 3, -5, 100)
    c.sadd(k("setsmall"), "a", "b", "c")
    c.sadd(k("setmix"), "1", "a", "-2")
    c.sadd(k("setbig"), *[f"m{i}" for i in range(300)])
    c.sadd(k("intsetbig"), *range(600))
    c.zadd(
        k("zsmall"),
        {
            "a": 1,
            "b": 2,
            "c": 2,
            "d": float("inf"),
            "e": float("-inf"),
            "f": 0.1,
            "g": 1.5e10,
            "h": -0.0,
            "i": 1e-7,
            "j": 123456789.125,
        },
    )
    c.zadd(
        k("zbig"),
        {
            f"m{i}": rng.choice([rng.randrange(-100, 100), rng.uniform(-1e3, 1e3)])
            for i in range(300)
        },
    )
    c.zadd(k("lexsmall"), {f"lex{i}": 0 for i in range(10)})
    c.zadd(k("lexbig"), {f"lex{i:03d}": 0 for i in range(200)})
    c.zadd(k("lexeq"), {"a": 7, "b": 7, "c": 7, "bb": 7, "\xff": 7})
    c.zadd(k("zone"), {"only": 5})
    for i in range(1, 21):
        c.xadd(k("stream"), {"f": f"v{i}", "n": str(i)}, id=f"{i}-{i % 3}")
    c.xgroup_create(k("stream"), "g1", id="0")
    c.xgroup_create(k("stream"), "g2", id="$")
    c.xgroup_create(k("stream"), "g3", id="5-0")
    c.xreadgroup("g1", "c1", {k("stream"): ">"}, count=5)
    c.xreadgroup("g1", "c2", {k("stream"): ">"}, count=3)
    c.xack(k("stream"), "g1", "2-2")
    with contextlib.suppress(redis.ResponseError):  # Redis 6.2+
        c.xgroup_createconsumer(k("stream"), "g3", "lazy")
    c.xdel(k("stream"), "7-1", "8-2")
    c.xadd(k("xempty"), {"f": "v"}, id="5-5")
    c.xdel(k("xempty"), "5-5")
    c.xadd(k("xone"), {"only": "entry"}, id="1000-0")
    c.geoadd(
        k("geo"),
        [
            13.361389,
            38.115556,
            "Palermo",
            15.087269,
            37.502669,
            "Catania",
            2.3522,
            48.8566,
            "Paris",
            2.3522,
            48.8566,
            "Paris2",
            -122.4194,
            37.7749,
            "SF",
            0,
            0,
            "Null",
        ],
    )
    c.pfadd(k("hll"), "a", "b", "c")
    c.pfadd(k("hlldense"), *[f"e{i}" for i in range(3000)])
    c.pfadd(k("hllcached"), "x", "y")
    c.pfcount(k("hllcached"))
    # Sparse, cache marked invalid, then two XZERO opcodes covering 32768 registers.
    c.set(k("hllbad"), b"HYLL\x01\x00\x00\x00" + b"\x00" * 7 + b"\x80" + b"\x7f\xff\x7f\xff")
    c.set(k("notahll"), b"HYLLnotreally")
    c.set(k("ttl:s"), "v", ex=3600)
    c.hset(k("ttl:h"), "f", "v")
    c.pexpire(k("ttl:h"), 7200000)
    c.zadd(k("ttl:z"), {"m": 1})
    c.expireat(k("ttl:z"), 4102444800)  # 2100-01-01


def add_expired_keys(c: redis.Redis, prefix: str) -> list[bytes]:
    """One logically expired key of each type (the master's active expiry must be off, and
    nobody may read them on the master, or it deletes them)."""
    names = []
    for t, fill in (
        ("s", lambda n: c.set(n, "gone")),
        ("l", lambda n: c.rpush(n, "a", "b")),
        ("h", lambda n: c.hset(n, "f", "v")),
        ("set", lambda n: c.sadd(n, "a")),
        ("z", lambda n: c.zadd(n, {"a": 1})),
        ("x", lambda n: c.xadd(n, {"f": "v"}, id="1-1")),
    ):
        name = f"{prefix}{t}".encode()
        fill(name)
        c.pexpire(name, 1)
        names.append(name)
    return names
