"""The command table and the COMMAND command, judged against the real servers.

Every error `CommandTable.resolve` produces (unknown command, unknown subcommand, wrong
arity) is compared byte for byte with what the server of each kind from 7.0 on (Redis 7.0,
8.2, Valkey 8.1) replies to the same argv, and every COMMAND reply with the server's, in
RESP2 and RESP3, using the table `table_for` picks for that server's version. The tables of
Redis 5.0 and 6.2 (no subcommands, key specs or COMMAND DOCS) are judged through the relay
against real replicas in tests/test_commandtable_relay.py; the data files of every kind
against a fresh capture here.

Order: the server lists commands (COMMAND, COMMAND INFO / DOCS without names, COMMAND LIST)
and a container's subcommands in hash-table order, which changes with every process. Those
are compared as multisets, a container's entry with its subcommands put in name order;
everything else (COMMAND INFO a b c, COMMAND DOCS a b, GETKEYS, errors) byte for byte.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from replproxy.commandtable.replies import command_command
from replproxy.commandtable.spec import CommandSpec, ResolveError
from replproxy.commandtable.table import CommandTable, table_for
from replproxy.glob import stringmatch
from replproxy.resp import reply
from tests.conftest import KINDS
from tests.harness.readcheck import RawConnection, reply_end
from tests.harness.servers import RedisServer, ServerKind, start_server

# The kinds whose table has the 7.0 shape (subcommands, key specs, COMMAND DOCS).
MODERN = [k for k in KINDS if k.version >= (7, 0, 0)]


class Server:
    """One real server with a RESP2 and a RESP3 raw connection."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.kind = server.kind
        self.table = table_for("valkey" if server.kind.is_valkey else "redis", server.kind.version)
        self.conns = {2: RawConnection(server, 2), 3: RawConnection(server, 3)}

    def call(self, argv: Sequence[bytes | str], proto: int = 2) -> bytes:
        return self.conns[proto].call(argv)

    def mine(self, argv: Sequence[bytes | str], proto: int = 2) -> bytes:
        return command_command(self.table, [_b(a) for a in argv], proto)


@pytest.fixture(scope="module", params=MODERN, ids=[k.name for k in MODERN])
def master(request: pytest.FixtureRequest) -> Iterator[Server]:
    """One real master per kind for the whole module (nothing here writes data)."""
    server = start_server(request.param)
    try:
        yield Server(server)
    finally:
        server.stop()


def _b(a: bytes | str) -> bytes:
    return a if isinstance(a, bytes) else a.encode()


# --- comparing replies whose order is a hash order --------------------------------------------


def spans(buf: bytes, pos: int = 0) -> list[tuple[int, int]]:
    nl = buf.index(b"\r\n", pos)
    n = int(buf[pos + 1 : nl])
    if buf[pos : pos + 1] == b"%":
        n *= 2
    out = []
    at = nl + 2
    for _ in range(max(n, 0)):
        end = reply_end(buf, at)
        assert end is not None
        out.append((at, end))
        at = end
    return out


def parts(buf: bytes, pos: int = 0) -> list[bytes]:
    return [buf[a:b] for a, b in spans(buf, pos)]


def canonical_info(entry: bytes) -> bytes:
    """A COMMAND INFO entry with its subcommand entries (element 10) sorted."""
    if entry[:1] != b"*" or entry.startswith(b"*-1"):
        return entry
    el = spans(entry)
    if len(el) < 10:  # before Redis 7.0: no subcommands
        return entry
    sub_at = el[9][0]
    head = entry[:sub_at]
    subs = entry[sub_at:]
    return head + subs[: subs.index(b"\r\n") + 2] + b"".join(sorted(parts(subs)))


def canonical_docs(docs: bytes) -> bytes:
    """A COMMAND DOCS map with its `subcommands` map's pairs sorted."""
    items = parts(docs)
    out = [docs[: docs.index(b"\r\n") + 2]]
    for k, v in zip(items[::2], items[1::2]):
        if k == b"$11\r\nsubcommands\r\n":
            inner = parts(v)
            pairs = sorted(a + b for a, b in zip(inner[::2], inner[1::2]))
            v = v[: v.index(b"\r\n") + 2] + b"".join(pairs)
        out += [k, v]
    return b"".join(out)


def info_multiset(r: bytes) -> list[bytes]:
    return sorted(canonical_info(e) for e in parts(r))


def docs_pairs(r: bytes) -> list[bytes]:
    items = parts(r)
    return [k + canonical_docs(v) for k, v in zip(items[::2], items[1::2])]


def same_info_list(s: Server, argv: list[str | bytes]) -> None:
    """COMMAND INFO with names: entries in argument order, each identical (canonical for a
    container, whose subcommand order is the server's hash order)."""
    for proto in (2, 3):
        theirs, mine = s.call(argv, proto), s.mine(argv, proto)
        assert mine[: mine.index(b"\r\n")] == theirs[: theirs.index(b"\r\n")], argv
        got, want = parts(mine), parts(theirs)
        assert [canonical_info(e) for e in got] == [canonical_info(e) for e in want], argv
        if not any(is_container(s.table, n) for n in argv[2:]):
            assert mine == theirs, argv


def is_container(t: CommandTable, name: str | bytes) -> bool:
    spec = t.lookup(_b(name))
    return spec is not None and spec.is_container


# --- resolve: unknown commands and subcommands, arity --------------------------------------


def error_of(table: CommandTable, argv: list[bytes]) -> bytes:
    r = table.resolve(argv)
    assert isinstance(r, ResolveError), (argv, r)
    return reply.error(r.msg)


def test_resolve_finds_every_command_and_subcommand(master: Server) -> None:
    t = master.table
    for top in t:
        n = top.arity if top.arity > 0 else -top.arity
        if top.subcommands:
            for sub, spec in top.subcommands.items():
                m = spec.arity if spec.arity > 0 else -spec.arity
                argv = [top.name.upper(), sub.swapcase()] + [b"x"] * (m - 2)
                assert t.resolve(argv) is spec
                assert spec.container == top.name
                assert spec.name == top.name + b"|" + sub
        else:
            assert t.resolve([top.name.title()] + [b"x"] * (n - 1)) is top
            assert top.container is None


def wrong_arity_argvs(t: CommandTable) -> list[list[bytes]]:
    out: list[list[bytes]] = []
    for top in t:
        if top.subcommands:
            if top.arity > 1 or top.arity < -1:
                out.append([top.name])  # a container without its subcommand
            for sub, spec in top.subcommands.items():
                m = spec.arity
                counts = [m - 1, m + 1] if m > 0 else [-m - 1]
                for c in counts:
                    if c >= 2:
                        out.append([top.name, sub] + [b"k"] * (c - 2))
        else:
            m = top.arity
            counts = [m - 1, m + 1] if m > 0 else [-m - 1]
            for c in counts:
                if c >= 1:
                    out.append([top.name] + [b"k"] * (c - 1))
    return out


def test_wrong_arity_errors_match_the_server(master: Server) -> None:
    rnd = random.Random(5)
    argvs = wrong_arity_argvs(master.table)
    assert len(argvs) > 300
    for argv in argvs:
        # Any spelling of the name: the error names the command by its full lowercase name.
        argv = [a.upper() if rnd.random() < 0.3 else a for a in argv]
        assert error_of(master.table, argv) == master.call(argv), argv


UNKNOWN_COMMANDS: list[list[bytes]] = [
    [b"nosuch"],
    [b"nosuch", b"a", b"b"],
    [b"NoSuch", b"", b""],
    [b""],
    [b"", b"x"],
    [b"x" * 127, b"a"],
    [b"x" * 128, b"a"],
    [b"x" * 129],
    [b"y" * 500, b"z" * 500],
    [b"foo", b"a" * 125],
    [b"foo", b"a" * 126, b"b"],
    [b"foo", b"a" * 124, b"b", b"c"],
    [b"foo", b"a" * 200, b"b"],
    [b"foo", *[b"%d" % i for i in range(100)]],
    [b"foo", *[b"ab"] * 40],
    [b"foo", b"\xff\xfe\x80", b"\xc3\xa9t\xc3\xa9"],
    [b"\xe2\x82\xac\xff", b"x"],
    [b"foo", b"a\x00b", b"c"],
    [b"f\x00oo", b"x"],
    [b"\x00get", b"x"],
    [b"foo\r\nbar", b"a\rb\nc"],
    [b"foo bar", b" ", b"'"],
    [b"object|encoding", b"k"],
    [b"get|", b"k"],
    [b"|", b"k"],
    [b"getx", b"k"],
    [b"ge", b"k"],
    [b"foo", b"", b"", b"", b""],
    [b"foo", b"x" * 60, b"y" * 60, b"z" * 60, b"w"],
]

UNKNOWN_SUBCOMMANDS: list[list[bytes]] = [
    [b"object", b"nosuch"],
    [b"OBJECT", b"nosuch", b"k"],
    [b"oBjEcT", b"x"],
    [b"config", b""],
    [b"client", b"x" * 300],
    [b"client", b"x" * 128],
    [b"xinfo", b"a\x00b"],
    [b"memory", b"\xff\xfe"],
    [b"command", b"a\r\nb"],
    [b"function", b"encoding"],
    [b"object", b"encoding|x", b"k"],
    [b"script", b"help2"],
    [b"acl", b" help"],
    [b"cluster", b"x"],
    [b"pubsub", b"x"],
    [b"xgroup", b"x"],
    [b"module", b"x"],
    [b"latency", b"x"],
    [b"slowlog", b"x"],
    [b"debugx", b"x"],
]


@pytest.mark.parametrize(
    "argv", UNKNOWN_COMMANDS + UNKNOWN_SUBCOMMANDS, ids=lambda a: repr(b" ".join(a)[:40])
)
def test_unknown_command_errors_match_the_server(master: Server, argv: list[bytes]) -> None:
    assert error_of(master.table, argv) == master.call(argv)


def test_random_unknown_commands_match_the_server(master: Server) -> None:
    rnd = random.Random(7)
    alphabet = b"abc\x00\xff\r\n '|xyz"
    for _ in range(300):
        name = b"zz" + bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, 200)))
        args = [
            bytes(rnd.choice(alphabet) for _ in range(rnd.choice([0, 1, 5, 40, 130])))
            for _ in range(rnd.randint(0, 8))
        ]
        argv = [name, *args]
        assert error_of(master.table, argv) == master.call(argv), argv


def test_exec_with_arguments_aborts_like_the_server(master: Server) -> None:
    for argv in ([b"exec", b"x"], [b"EXEC", b"a", b"b"]):
        assert error_of(master.table, argv) == master.call(argv)
        assert master.table.resolve(argv).kind == "arity"  # type: ignore[union-attr]


def test_resolve_is_case_insensitive_for_ascii_only(master: Server) -> None:
    t = master.table
    assert t.resolve([b"GeT", b"k"]) is t.get(b"get")
    assert isinstance(t.resolve([b"G\xc9T", b"k"]), ResolveError)  # no Latin-1 folding


# --- the spec objects -----------------------------------------------------------------------


def test_spec_fields_are_what_command_info_says(master: Server) -> None:
    t = master.table
    get, set_ = t.get(b"get"), t.get(b"set")
    assert isinstance(get, CommandSpec) and isinstance(set_, CommandSpec)
    assert (get.arity, get.first_key, get.last_key, get.key_step) == (2, 1, 1, 1)
    assert get.flags == {"readonly", "fast"} and not get.is_write and get.is_readonly
    assert get.acl_categories == ("@read", "@string", "@fast")
    assert set_.is_write and "denyoom" in set_.flags
    enc = t.lookup(b"OBJECT|Encoding")
    assert enc is not None and enc.name == b"object|encoding" and enc.container == b"object"
    obj = t.get(b"object")
    assert obj is not None and obj.is_container and obj.subcommands[b"encoding"] is enc
    assert t.lookup(b"object|encoding|x") is None and t.lookup(b"get|x") is None
    assert t.lookup(b"") is None and t.lookup(b"|") is None
    stem = f"{t.server}-{'.'.join(t.version.split('.')[:2])}"
    assert CommandTable.load(stem) is t
    assert table_for("Valkey" if t.server == "valkey" else "redis", master.kind.version) is t
    assert len(list(t)) == len(t) == int(master.call(["command", "count"])[1:-2])


def _generator() -> Any:
    script = Path(__file__).resolve().parent.parent / "scripts" / "gen_command_table.py"
    spec = importlib.util.spec_from_file_location("gen_command_table", script)
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_data_file_is_what_the_generator_captures_now(kind: ServerKind) -> None:
    """The package data equals a fresh capture from this server: same version, same bytes
    (the generator is deterministic, so a server upgrade shows up here)."""
    gen = _generator()
    fresh = gen.capture(kind)
    stored = json.loads(
        gzip.decompress(gen.data_path(fresh["server"], fresh["version"]).read_bytes())
    )
    assert stored["version"] == fresh["version"] == ".".join(map(str, kind.version))
    assert stored == fresh


# --- COMMAND ----------------------------------------------------------------------------------


def test_command_count_and_help(master: Server) -> None:
    for proto in (2, 3):
        for argv in (["command", "count"], ["COMMAND", "HELP"]):
            assert master.mine(argv, proto) == master.call(argv, proto)


def test_command_all_entries(master: Server) -> None:
    for proto in (2, 3):
        for argv in (["command"], ["command", "info"]):
            theirs, mine = master.call(argv, proto), master.mine(argv, proto)
            assert mine[: mine.index(b"\r\n")] == theirs[: theirs.index(b"\r\n")]
            assert info_multiset(mine) == info_multiset(theirs)


def test_command_info_with_names(master: Server) -> None:
    t = master.table
    names = sorted(n.decode() for n in t.full_names())
    rnd = random.Random(3)
    cases: list[list[str | bytes]] = [
        ["get"],
        ["get", "set", "nosuch", "hgetall"],
        ["GET", "Object|Encoding", "client|list", "xinfo|stream"],
        ["", "|", "get|", "object|", "a||b", "object|encoding|x", "|get", "object|nosuch"],
        ["get", "get", b"g\x00et", b"\xff"],
        ["object"],
        ["config", "get", "client"],
    ]
    for _ in range(30):
        cases.append(rnd.sample(names, rnd.randint(1, 8)))
    for case in cases:
        same_info_list(master, ["command", "info", *case])
    # Plain commands and subcommands come back byte for byte.
    plain = [n for n in names if not is_container(t, n)]
    for proto in (2, 3):
        argv = ["command", "info", *plain]
        assert master.mine(argv, proto) == master.call(argv, proto)


def test_command_docs(master: Server) -> None:
    t = master.table
    for proto in (2, 3):
        theirs, mine = (
            master.call(["command", "docs"], proto),
            master.mine(["command", "docs"], proto),
        )
        assert mine[: mine.index(b"\r\n")] == theirs[: theirs.index(b"\r\n")]
        assert sorted(docs_pairs(mine)) == sorted(docs_pairs(theirs))
    plain = [n for n in t.full_names() if not is_container(t, n)]
    rnd = random.Random(11)
    cases: list[list[bytes]] = [
        [b"get"],
        [b"nosuch"],
        [b"GET", b"nosuch", b"Object|Encoding", b"get"],
        [b"", b"|", b"get|", b"object|x"],
        [b"object", b"client", b"config"],
        plain,
    ]
    for _ in range(20):
        cases.append(rnd.sample(plain, rnd.randint(1, 6)))
    for case in cases:
        argv = [b"command", b"docs", *case]
        for proto in (2, 3):
            theirs, mine = master.call(argv, proto), master.mine(argv, proto)
            if any(is_container(t, n) for n in case):
                assert docs_pairs(mine) == docs_pairs(theirs), case
                assert mine[: mine.index(b"\r\n")] == theirs[: theirs.index(b"\r\n")]
            else:
                assert mine == theirs, case


LIST_CASES: list[list[str | bytes]] = [
    [],
    ["filterby", "aclcat", "read"],
    ["FILTERBY", "ACLCAT", "READ"],
    ["filterby", "aclcat", "@read"],
    ["filterby", "aclcat", "keyspace"],
    ["filterby", "aclcat", "dangerous"],
    ["filterby", "aclcat", "nosuch"],
    ["filterby", "aclcat", b"read\x00x"],
    ["filterby", "aclcat", ""],
    ["filterby", "module", "x"],
    ["filterby", "pattern", "*"],
    ["filterby", "pattern", "obj*"],
    ["filterby", "pattern", "OBJECT|*"],
    ["filterby", "pattern", "*|*"],
    ["filterby", "pattern", "?et"],
    ["filterby", "pattern", "[a-c]*"],
    ["filterby", "pattern", "[c-a]*"],
    ["filterby", "pattern", "[^a-x]*"],
    ["filterby", "pattern", "*e[n-p]*"],
    ["filterby", "pattern", "x["],
    ["filterby", "pattern", "[get"],
    ["filterby", "pattern", "g\\et"],
    ["filterby", "pattern", "*\\"],
    ["filterby", "pattern", "*|[\\e]*"],
    ["filterby", "pattern", b"[\xff-a]et"],
    ["filterby", "pattern", "z**"],
    ["filterby", "pattern", "*a*b*c*"],
    ["filterby", "pattern", ""],
    ["filterby", "pattern", "GET"],
    ["filterby", "pattern", "[G]et"],
    ["filterby", "pattern", "[!g]et"],
    ["filterby", "pattern", "h[a-z]ll?"],
    ["filterby", "pattern", "ge[s-"],
    ["filterby", "pattern", "get[-"],
    ["filterby", "pattern", "*[z-"],
    ["filterby", "pattern", "*[t-]"],
    ["filterby", "pattern", "*[\\]"],
    ["filterby", "pattern", "[^"],
    ["foo"],
    ["filterby"],
    ["filterby", "aclcat"],
    ["filterby", "foo", "bar"],
    ["filterby", "aclcat", "read", "extra"],
    ["filterby", "aclcat", "read", "filterby", "aclcat", "write"],
]


@pytest.mark.parametrize("args", LIST_CASES, ids=lambda a: repr(a)[:40])
def test_command_list(master: Server, args: list[str | bytes]) -> None:
    argv = ["command", "list", *args]
    for proto in (2, 3):
        theirs, mine = master.call(argv, proto), master.mine(argv, proto)
        if theirs[:1] == b"-":
            assert mine == theirs
        else:
            assert mine[: mine.index(b"\r\n")] == theirs[: theirs.index(b"\r\n")]
            assert sorted(parts(mine)) == sorted(parts(theirs))


def test_stringmatch_against_command_list(master: Server) -> None:
    """Random glob patterns over every command name (COMMAND LIST uses replproxy.glob)."""
    rnd = random.Random(13)
    names = master.table.full_names()
    alphabet = b"abcegilnorstx|*?[]^-\\"
    for _ in range(150):
        pat = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(1, 7)))
        theirs = master.call(["command", "list", "filterby", "pattern", pat])
        assert sorted(parts(theirs)) == sorted(
            reply.bulk(n) for n in names if stringmatch(pat, n, nocase=True)
        ), pat


def test_command_subcommand_errors(master: Server) -> None:
    for argv in (
        ["command", "nosuch"],
        ["command", "count", "x"],
        ["command", "help", "x"],
        ["command", "getkeys"],
        ["COMMAND", "GetKeysAndFlags"],
        ["command", ""],
    ):
        for proto in (2, 3):
            assert master.mine(argv, proto) == master.call(argv, proto), argv


# --- COMMAND GETKEYS / GETKEYSANDFLAGS --------------------------------------------------------

GETKEYS_CASES: list[str] = [
    # strings and keys
    "get k",
    "GET k",
    "set k v",
    "set k v get",
    "set k v GET",
    "set k v ex 10 get",
    "set k v nx",
    "set k v get\x00x",
    "mset a 1 b 2",
    "mset a 1 b",
    "msetnx a 1 b 2",
    "mget a b c",
    "del a b",
    "unlink a",
    "exists a b",
    "expire k 10",
    "ttl k",
    "type k",
    "rename a b",
    "renamenx a b",
    "copy a b",
    "copy a b db 1",
    "move a 1",
    "dump k",
    "restore k 0 v",
    "incr k",
    "incrby k 1",
    "append k v",
    "getrange k 0 1",
    "setrange k 0 v",
    "strlen k",
    "getex k",
    "getdel k",
    "lcs a b",
    "touch a b",
    "object encoding k",
    "OBJECT FREQ k",
    "memory usage k",
    "memory usage k samples 5",
    # hashes, lists, sets
    "hset h f v",
    "hget h f",
    "hmget h a b",
    "hgetall h",
    "hscan h 0",
    "lpush l a",
    "lrange l 0 -1",
    "lmove a b left right",
    "blmove a b left right 0",
    "brpoplpush a b 0",
    "rpoplpush a b",
    "blpop a b 0",
    "brpop a 0",
    "lpos l a",
    "lmpop 2 a b left",
    "lmpop 0 a left",
    "lmpop x a left",
    "lmpop 3 a b left",
    "lmpop 2abc a b left",
    "blmpop 0 2 a b left",
    "blmpop 0 1 a left count 2",
    "sadd s a",
    "smembers s",
    "sinter a b",
    "sinterstore d a b",
    "sunionstore d a b",
    "sdiff a b",
    "smove a b m",
    "sintercard 2 a b",
    "sintercard 2 a b limit 1",
    "sintercard 0 a",
    "sintercard -1 a",
    "sintercard 3 a b",
    # sorted sets
    "zadd z 1 a",
    "zrange z 0 -1",
    "zrangestore d z 0 -1",
    "zunion 2 a b",
    "zunion 2 a b weights 1 2",
    "zunionstore d 2 a b",
    "zinterstore d 2 a b aggregate sum",
    "zdiffstore d 1 a",
    "zdiff 2 a b withscores",
    "zinter 1 a",
    "zintercard 2 a b",
    "zmpop 1 z min",
    "bzmpop 0 2 a b min",
    "bzpopmin a b 0",
    "zunion abc a b",
    "zunion -1 a",
    "zunion 5 a b",
    "zunion 2abc a b",
    "zunion  2 a b",
    "zunion +2 a b",
    "zunion 99999999999 a b",
    "zunion 4294967298 a b c",
    "zunionstore d 0 a",
    "zunionstore d x a",
    "zinter 00 a",
    "zdiff 1\x002 a b",
    # scripting
    "eval s 0",
    "eval s 2 a b c",
    "eval s 1 a",
    "eval s 3 a",
    "evalsha x 1 k",
    "eval_ro s 1 k",
    "evalsha_ro s 0",
    "fcall f 1 k a",
    "fcall_ro f 0",
    "eval s -1",
    "eval s x",
    "fcall f 2 a",
    # sort, migrate, geo
    "sort k",
    "sort k store d",
    "sort k by w get g store d",
    "sort k limit 0 1 store d",
    "sort k store",
    "sort k STORE a store b",
    "sort k get store store d",
    "sort_ro k",
    "sort_ro k by w",
    "sort k limit store d",
    "migrate h p k 0 1000",
    "migrate h p '' 0 1000 keys a b",
    "migrate h p '' 0 1000 copy replace keys a b",
    "migrate h p '' 0 1000 auth pw keys a",
    "migrate h p '' 0 1000 auth2 u pw keys a b",
    "migrate h p k 0 1000 keys a",
    "migrate h p '' 0 1000 auth2 keys keys keys a b",
    "migrate h p '' 0 1000 auth keys keys a",
    "migrate h p '' 0 1000 copy keys",
    "migrate h p '' 0 1000 keys",
    "migrate h p '' 0 1000",
    "georadius k 0 0 1 km",
    "georadius k 0 0 1 km store d",
    "georadius k 0 0 1 km storedist d",
    "georadius k 0 0 1 km store",
    "georadius k 0 0 1 km store a storedist b",
    "georadiusbymember k m 1 km store d",
    "georadius_ro k 0 0 1 km",
    "geosearch k frommember m byradius 1 km",
    "geosearchstore d s frommember m byradius 1 km",
    "geoadd k 0 0 m",
    "geodist k a b",
    "geohash k a",
    "geopos k a",
    # streams
    "xread streams a b 0 0",
    "xread count 1 block 0 streams a 0",
    "xread streams a",
    "xread streams a b 0",
    "xreadgroup group g c streams a 0",
    "xreadgroup group g c count 1 noack streams a b 0 0",
    "xread foo streams a 0",
    "xread STREAMS streams 0",
    "xadd s * f v",
    "xrange s - +",
    "xlen s",
    "xinfo stream s",
    "xinfo groups s",
    "xgroup create s g $",
    "xack s g 1",
    "xautoclaim s g c 0 0",
    "xpending s g",
    "xtrim s maxlen 1",
    "xdel s 1",
    "xsetid s 1-1",
    # bitmaps, hll
    "bitfield k get u8 0",
    "bitfield k set u8 0 1",
    "bitfield k overflow sat get u8 0",
    "bitfield k incrby u8 0 1",
    "bitfield k foo",
    "bitfield k get u8",
    "bitfield k",
    "bitfield_ro k get u8 0",
    "bitcount k",
    "bitop and d a b",
    "bitpos k 1",
    "setbit k 0 1",
    "getbit k 0",
    "pfadd h a",
    "pfcount a b",
    "pfmerge d a b",
    # others and errors
    "watch a b",
    "ping",
    "publish c m",
    "spublish c m",
    "wait 0 0",
    "exec",
    "config get x",
    "client list",
    "nosuch x",
    "get a b",
    "object nosuch k",
    "object encoding",
    "object",
    "hrandfield h",
    "zrandmember z",
    "srandmember s",
    "linsert l before a b",
    "psetex k 1 v",
    "getset k v",
    "hincrbyfloat h f 1",
    "randomkey",
    "keys *",
    "scan 0",
    "debug object k",
    # 6.2's own *GetKeys functions (memoryGetKeys, lcsGetKeys) and its containers' ranges
    "memory doctor",
    "memory usage",
    "memory USAGE k",
    "stralgo lcs keys a b",
    "stralgo lcs keys a b len",
    "stralgo lcs strings a b",
    "stralgo lcs strings a keys b c",
    "stralgo lcs keys a",
    "stralgo lcs idx keys a b",
    "STRALGO",
    "object help",
    "xinfo help",
    "georadiusbymember_ro k m 1 km store d",
]


def _split(case: str) -> list[bytes]:
    return [b"" if w == "''" else w.encode() for w in case.split(" ")]


def test_getkeys_covers_enough_commands() -> None:
    assert len({c.split(" ")[0].lower() for c in GETKEYS_CASES}) >= 60


def test_getkeys_matches_the_server(master: Server) -> None:
    for case in GETKEYS_CASES:
        for sub in ("getkeys", "getkeysandflags"):
            argv = [b"command", sub.encode(), *_split(case)]
            for proto in (2, 3):
                assert master.mine(argv, proto) == master.call(argv, proto), (case, proto)


def test_getkeys_on_every_command_with_filler_arguments(master: Server) -> None:
    """Each command with a plausible number of `k1 k2 ...` arguments: key specs generically."""
    cases: list[list[bytes]] = []
    for spec in master.table:
        subs = list(spec.subcommands.values()) or [spec]
        for s in subs:
            head = s.name.split(b"|")
            base = max(abs(s.arity), len(head))
            for extra in (0, 1, 2, 5):
                args = [
                    b"%d" % (i % 3) if i % 4 == 3 else b"k%d" % i
                    for i in range(base - len(head) + extra)
                ]
                cases.append([*head, *args])
    assert len(cases) > 1000
    for argv in cases:
        full = [b"command", b"getkeysandflags", *argv]
        assert master.mine(full, 3) == master.call(full, 3), argv


@pytest.mark.parametrize("stem", ["redis-5.0", "redis-6.2"])
def test_legacy_tables_carry_their_versions_getkeys_functions(stem: str) -> None:
    """Before 7.0 a command has movable keys exactly when it has a `*GetKeys` function
    (COMMAND INFO's `movablekeys`), and a routing subcommand finds the keys its container
    finds: the version's own, for the ACL and cluster routing alike."""
    table = CommandTable.load(stem)
    assert table.legacy
    for spec in table:
        assert ("movablekeys" in spec.flags) == (spec.getkeys_proc is not None), spec
        for sub in spec.subcommands.values():
            assert (sub.first_key, sub.last_key, sub.key_step) == (
                spec.first_key,
                spec.last_key,
                spec.key_step,
            ), sub
            assert sub.getkeys_proc == spec.getkeys_proc and not sub.key_specs, sub
            assert sub.acl_categories == spec.acl_categories, sub
