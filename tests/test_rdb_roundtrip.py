"""The RDB writer against real servers: what we write loads into Redis/Valkey as the same data.

Every test here builds a dataset on a real server (every type, every encoding a server picks,
TTLs, several DBs, streams with deletions, consumer groups and PELs, functions), reads it back
with plain commands, writes an RDB with `replproxy.rdb.writer`, starts a second real server
on that file and compares: `DEBUG DIGEST` (values and expiries of every DB), key counts per
DB, `FUNCTION LIST`, and a per-key snapshot (values, exact expire times, stream groups,
consumers and PELs, `OBJECT ENCODING`). With the reader present it also re-writes the
source server's own RDB and checks write -> read round trips of random values (hypothesis).
"""

from __future__ import annotations

import importlib.util
import io
import math
import os
import random
import re
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.typing import EncodableT, FieldT

from replproxy.rdb.model import (
    Aux,
    Function,
    HashValue,
    KeyEntry,
    ModuleAux,
    ModuleValue,
    SlotInfo,
    StreamConsumer,
    StreamGroup,
    StreamPendingEntry,
    StreamValue,
    Value,
    ZSetValue,
)
from replproxy.rdb.writer import CRC64, dump_rdb, write_rdb
from tests.conftest import KINDS
from tests.harness.servers import RedisServer, ServerKind, start_server
from tests.harness.soak import rounds

HAVE_READER = importlib.util.find_spec("replproxy.rdb.reader") is not None
needs_reader = pytest.mark.skipif(not HAVE_READER, reason="replproxy.rdb.reader not present yet")

LIBRARY = "#!lua name=rplib\nredis.register_function('rp_one', function(keys, args) return 1 end)"
FAR_TTL_MS = 3_000_000  # well beyond any test's lifetime


def native_version(kind: ServerKind) -> int:
    """The RDB version a server of `kind` writes (and the newest it loads)."""
    if kind.is_valkey:
        return 80 if kind.major >= 9 else 11
    if kind.version >= (7, 4, 0):
        return 12
    if kind.version >= (7, 2, 0):
        return 11
    return 10 if kind.major >= 7 else 9


# ---- talking to servers without redis-py's reply reshaping ----


def raw(server: RedisServer, db: int = 0) -> redis.Redis:
    """A client whose replies are exactly what the server sent (bytes, ints, lists, None)."""
    c = server.client(db=db)
    c.response_callbacks.clear()
    return c


def keyspace(server: RedisServer) -> dict[int, tuple[int, int]]:
    """db -> (keys, expires) from INFO keyspace."""
    out: dict[int, tuple[int, int]] = {}
    info = raw(server).execute_command("INFO", "keyspace").decode()
    for line in info.splitlines():
        if line.startswith("db"):
            name, fields = line.split(":", 1)
            kv = dict(f.split("=") for f in fields.split(","))
            out[int(name[2:])] = (int(kv["keys"]), int(kv["expires"]))
    return out


def digest(server: RedisServer) -> bytes:
    return bytes(raw(server).execute_command("DEBUG", "DIGEST"))


def functions(server: RedisServer) -> list[bytes]:
    if server.kind.major < 7:
        return []
    libs = raw(server).execute_command("FUNCTION", "LIST", "WITHCODE")
    return sorted(bytes(pairs(lib)[b"library_code"]) for lib in libs)


def pairs(flat: list[Any]) -> dict[bytes, Any]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def sid(b: bytes) -> tuple[int, int]:
    ms, seq = b.split(b"-")
    return int(ms), int(seq)


# ---- the dataset ----


def populate(server: RedisServer) -> None:
    """Data of every type and encoding in db 0, 1 and 5 (and a function library on 7+)."""
    rng = random.Random(1234)
    major = server.kind.major
    c = server.client()
    p = c.pipeline(transaction=False)
    # strings: int-encodable, plain, non-canonical integers, big, compressible, binary, empty
    for k, v in {
        "s:int": "12345",
        "s:neg": "-42",
        "s:int64": "9223372036854775807",
        "s:bigint": "123456789012345678901234567890",
        "s:007": "007",
        "s:-0": "-0",
        "s:plus": "+1",
        "s:float": "3.14",
        "s:small": "hello",
        "s:empty": "",
        "s:compressible": "ab" * 5000,
        "s:utf8": "žluťoučký kůň",
    }.items():
        p.set(k, v)
    p.set("s:binary", bytes(rng.getrandbits(8) for _ in range(3000)))
    p.pfadd("hll:sparse", *[f"e{i}" for i in range(200)])
    p.pfadd("hll:dense", *[f"e{i}" for i in range(20000)])
    # lists: small, long (several nodes), elements around and above the 8 KB node size
    p.rpush("l:small", "a", "1", "-1", "007", "-0", "4294967296", "x" * 70)
    p.rpush("l:long", *[str(i) if i % 3 else f"item-{i}" for i in range(20000)])
    p.rpush("l:big", "x" * 10000, "small", "y" * 8192, "z" * 8193, "1", "w" * 100000, "tail")
    # sets: intset, intset of int64, listpack-sized strings, big strings, > 512 integers
    p.sadd("set:ints", *range(-50, 50), -(2**63), 2**63 - 1)
    p.sadd("set:ints16", 1, 2, 3)
    p.sadd("set:small", "a", "b", "c", "10", "007")
    p.sadd("set:long-members", "m" * 65, "n")
    p.sadd("set:large", *[f"member-{i}" for i in range(1000)])
    p.sadd("set:many-ints", *range(1000))
    # zsets: small with special scores, long, long member
    p.zadd(
        "z:small",
        {
            "inf": float("inf"),
            "-inf": float("-inf"),
            "frac": 0.1,
            "neg": -2.5,
            "zero": 0,
            "big": 1e300,
            "int": 42,
            "tiny": 5e-324,
            "i64": 2.0**62,
        },
    )
    p.zadd("z:large", {f"m{i}": rng.uniform(-1e6, 1e6) for i in range(500)})
    p.zadd("z:ties", {f"t{i}": 1.0 for i in range(200)})
    p.zadd("z:long-member", {"q" * 100: 1, "short": 2})
    # hashes: small, with integer-looking values, large, long value
    p.hset("h:small", mapping={"f1": "v1", "n": "123", "neg": "-0", "lead": "007"})
    p.hset("h:large", mapping={f"field{i}": f"value{i}" for i in range(500)})
    p.hset("h:long-value", mapping={"a": "v" * 65, "b": "1"})
    # keys with TTLs
    p.set("ttl:string", "bye", px=FAR_TTL_MS)
    p.hset("ttl:hash", mapping={"a": "1"})
    p.pexpire("ttl:hash", FAR_TTL_MS + 1000)
    p.rpush("ttl:list", "a", "b")
    p.pexpire("ttl:list", FAR_TTL_MS + 2000)
    p.execute()

    # streams: several nodes, varying fields, deleted entries, groups, PELs, claims
    for i in range(1, 260):
        fields: dict[FieldT, EncodableT] = (
            {"a": str(i), "b": "x" * (i % 7)} if i % 5 else {"other": str(i), "c": "1"}
        )
        c.xadd("st:main", fields, id=f"{1000 + i // 3}-{i}")
    c.xdel("st:main", "1000-1", "1003-10", "1010-30", "1086-259")
    c.xgroup_create("st:main", "g1", id="0")
    c.xgroup_create("st:main", "g2", id="$")
    c.xgroup_create("st:main", "g0", id="1005-15")
    c.xreadgroup("g1", "alice", {"st:main": ">"}, count=5)
    c.xreadgroup("g1", "bob", {"st:main": ">"}, count=7)
    c.xreadgroup("g0", "carol", {"st:main": ">"}, count=3)
    c.xack("st:main", "g1", "1001-3")
    c.xclaim("st:main", "g1", "dave", 0, ["1001-4", "1002-6"])
    c.xdel("st:main", "1001-5")  # pending but deleted
    if server.kind.version >= (6, 2, 0):
        c.execute_command("XGROUP", "CREATECONSUMER", "st:main", "g2", "idle-consumer")
    c.xadd("st:small", {"k": "v"}, id="5-0")
    c.xgroup_create("st:empty", "g", id="$", mkstream=True)
    c.xadd("st:drained", {"k": "v"}, id="7-1")
    c.xgroup_create("st:drained", "g", id="0")
    c.xreadgroup("g", "c", {"st:drained": ">"})
    c.xdel("st:drained", "7-1")
    if major >= 7:
        c.execute_command("XSETID", "st:drained", "9-9", "ENTRIESADDED", 5, "MAXDELETEDID", "8-0")
    c.xadd("st:trimmed", {"v": "1"}, id="1-1")
    for i in range(2, 40):
        c.xadd("st:trimmed", {"v": str(i)}, id=f"1-{i}")
    c.xtrim("st:trimmed", maxlen=10, approximate=False)

    c1 = server.client(db=1)
    c1.set("db1:s", "one")
    c1.rpush("db1:l", "x", "y")
    c1.set("db1:ttl", "t", px=FAR_TTL_MS)
    c5 = server.client(db=5)
    c5.zadd("db5:z", {"a": 1})
    c5.hset("db5:h", mapping={"f": "v"})
    if major >= 7:
        c.execute_command("FUNCTION", "LOAD", LIBRARY)


# ---- reading a server's data back as KeyEntry values ----


def read_stream(server: RedisServer, c: redis.Redis, key: bytes) -> StreamValue:
    entries = {
        sid(i): list(zip(fv[::2], fv[1::2])) for i, fv in c.execute_command("XRANGE", key, "-", "+")
    }
    if server.kind.version >= (7, 0, 0):
        info = pairs(c.execute_command("XINFO", "STREAM", key, "FULL", "COUNT", 0))
        groups = []
        for graw in info[b"groups"]:
            g = pairs(graw)
            pel = {sid(p[0]): StreamPendingEntry(p[2], p[3]) for p in g[b"pending"]}
            consumers = []
            for craw in g[b"consumers"]:
                cons = pairs(craw)
                consumers.append(
                    StreamConsumer(
                        cons[b"name"],
                        cons[b"seen-time"],
                        cons.get(b"active-time"),
                        [sid(p[0]) for p in cons[b"pending"]],
                    )
                )
            er = g[b"entries-read"]
            groups.append(
                StreamGroup(
                    g[b"name"],
                    sid(g[b"last-delivered-id"]),
                    -1 if er is None else er,
                    pel,
                    consumers,
                )
            )
        return StreamValue(
            entries,
            info[b"length"],
            sid(info[b"last-generated-id"]),
            sid(info[b"recorded-first-entry-id"]),
            sid(info[b"max-deleted-entry-id"]),
            info[b"entries-added"],
            groups,
        )
    # Redis 5/6.0: no FULL; times come back as idle durations, so they are approximate.
    now = int(time.time() * 1000)
    info = pairs(c.execute_command("XINFO", "STREAM", key))
    groups = []
    for graw in c.execute_command("XINFO", "GROUPS", key):
        g = pairs(graw)
        pending = c.execute_command("XPENDING", key, g[b"name"], "-", "+", 1_000_000)
        pel = {sid(p[0]): StreamPendingEntry(now - p[2], p[3]) for p in pending}
        consumers = []
        for craw in c.execute_command("XINFO", "CONSUMERS", key, g[b"name"]):
            cons = pairs(craw)
            owned = [sid(p[0]) for p in pending if p[1] == cons[b"name"]]
            consumers.append(StreamConsumer(cons[b"name"], now - cons[b"idle"], None, owned))
        groups.append(StreamGroup(g[b"name"], sid(g[b"last-delivered-id"]), None, pel, consumers))
    first = next(iter(entries), (0, 0))
    return StreamValue(
        entries,
        info[b"length"],
        sid(info[b"last-generated-id"]),
        first,
        (0, 0),
        len(entries),
        groups,
    )


def read_value(server: RedisServer, c: redis.Redis, key: bytes) -> Value:
    t = c.execute_command("TYPE", key)
    if t == b"string":
        return bytes(c.execute_command("GET", key))
    if t == b"list":
        return list(c.execute_command("LRANGE", key, 0, -1))
    if t == b"set":
        return set(c.execute_command("SMEMBERS", key))
    if t == b"zset":
        flat = c.execute_command("ZRANGE", key, 0, -1, "WITHSCORES")
        return ZSetValue({m: float(s) for m, s in zip(flat[::2], flat[1::2])})
    if t == b"hash":
        flat = c.execute_command("HGETALL", key)
        return dict(zip(flat[::2], flat[1::2]))
    if t == b"stream":
        return read_stream(server, c, key)
    raise AssertionError(f"unexpected type {t!r} of {key!r}")


def snapshot(server: RedisServer) -> tuple[list[KeyEntry], list[Function]]:
    """Every key of every DB (sorted by db, key) and every function library, via commands."""
    entries: list[KeyEntry] = []
    for db in sorted(keyspace(server)):
        c = raw(server, db)
        keys = sorted(c.execute_command("KEYS", "*"))
        for key in keys:
            value = read_value(server, c, key)
            expire: int | None = None
            if server.kind.major >= 7:
                t = c.execute_command("PEXPIRETIME", key)
                expire = t if t >= 0 else None
            else:
                t = c.execute_command("PTTL", key)
                expire = int(time.time() * 1000) + t if t >= 0 else None
            entries.append(KeyEntry(db, bytes(key), value, expire_ms=expire))
    return entries, [Function(code) for code in functions(server)]


def encodings(server: RedisServer) -> dict[tuple[int, bytes], bytes]:
    out = {}
    for db in keyspace(server):
        c = raw(server, db)
        for key in c.execute_command("KEYS", "*"):
            out[(db, bytes(key))] = bytes(c.execute_command("OBJECT", "ENCODING", key))
    return out


def comparable(entries: list[KeyEntry], version: int, approx_times: bool) -> list[KeyEntry]:
    """Drop what an RDB of `version` does not carry (Redis re-derives it on load), and the
    times Redis 5 only reports as durations when `approx_times`."""
    keep_meta = version >= 10 and not approx_times  # stream v2 metadata, known exactly
    out = []
    for e in entries:
        v = e.value
        expire = e.expire_ms
        if approx_times and expire is not None:
            expire = 1  # Redis 5 tells only the remaining TTL: compare presence, not the ms
        if isinstance(v, StreamValue):
            groups = []
            for g in v.groups:
                pel = g.pel
                consumers = g.consumers
                if version < 11 or approx_times:
                    consumers = [replace(c, active_time=None) for c in consumers]
                if approx_times:
                    pel = {i: replace(p, delivery_time=0) for i, p in pel.items()}
                    consumers = [replace(c, seen_time=0) for c in consumers]
                entries_read = g.entries_read if keep_meta else None
                groups.append(replace(g, pel=pel, consumers=consumers, entries_read=entries_read))
            v = replace(v, groups=groups)
            if not keep_meta:
                v = replace(v, first_id=(0, 0), max_deleted_id=(0, 0), entries_added=0)
        out.append(KeyEntry(e.db, e.key, v, expire_ms=expire))
    return out


# ---- fixtures ----


@pytest.fixture(scope="module", params=KINDS, ids=[k.name for k in KINDS])
def source(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A real server of each available kind holding the whole dataset (and its own RDB)."""
    server = start_server(request.param)
    try:
        populate(server)
        raw(server).execute_command("SAVE")
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def source_data(source: RedisServer) -> tuple[list[KeyEntry], list[Function]]:
    return snapshot(source)


def load(kind: ServerKind, rdb: Path) -> RedisServer:
    """A real server of `kind` started on `rdb` (it refuses to start if it cannot load it)."""
    return start_server(kind, dir=rdb.parent, dbfilename=rdb.name)


def kinds_loading(version: int) -> list[ServerKind]:
    """Server kinds that load an RDB of `version` (a newer server loads older versions)."""
    return [k for k in KINDS if version <= native_version(k)]


def assert_same_dataset(src: RedisServer, dst: RedisServer, version: int, src_data: Any) -> None:
    assert keyspace(dst) == keyspace(src)
    if src.kind.is_valkey == dst.kind.is_valkey and (src.kind.major >= 8) == (dst.kind.major >= 8):
        # Valkey's digest prints zset scores differently from Redis's "%.17g", and so does
        # Redis 8's (ZADD z 1.5 a digests differently on 7.0 and 8.2): digests compare
        # within a family only; the per-key snapshot below compares across them.
        assert digest(dst) == digest(src)
    approx = src.kind.major < 7 or dst.kind.major < 7
    dst_entries, dst_functions = snapshot(dst)
    assert comparable(dst_entries, version, approx) == comparable(src_data[0], version, approx)
    if dst.kind.major >= 7:
        assert dst_functions == (src_data[1] if version >= 10 else [])


# ---- the tests ----


def test_writer_output_loads_with_equal_digest_at_native_version(
    source: RedisServer, source_data: Any, tmp_path: Path
) -> None:
    version = native_version(source.kind)
    entries, fns = source_data
    rdb = tmp_path / "written.rdb"
    writer = write_rdb(rdb, [*fns, *entries], version=version, valkey=source.kind.is_valkey)
    assert writer.keys_written == len(entries)
    assert rdb.read_bytes()[:9] == b"REDIS%04d" % version
    dst = load(source.kind, rdb)
    try:
        assert_same_dataset(source, dst, version, source_data)
        # Same in-memory encodings as the source: the writer chose what the server would.
        assert encodings(dst) == encodings(source)
    finally:
        dst.stop()


@pytest.mark.parametrize("version", [9, 10])
def test_older_version_loads_into_newer_servers(
    source: RedisServer, source_data: Any, tmp_path: Path, version: int
) -> None:
    """An RDB 9 (Redis 5/6 encodings: ziplists, quicklist, stream v1) or 10 file written from
    any source loads into every server kind new enough, as the same dataset."""
    targets = kinds_loading(version)
    if not targets:
        pytest.skip(f"no server kind here loads RDB {version}")
    entries, fns = source_data
    rdb = tmp_path / "old.rdb"
    writer = write_rdb(rdb, [*fns, *entries], version=version)
    assert writer.skipped_functions == (len(fns) if version < 10 else 0)
    for kind in targets:
        dst = load(kind, rdb)
        try:
            assert_same_dataset(source, dst, version, source_data)
        finally:
            dst.stop()


def test_writer_rdb_with_repl_aux_fields(source: RedisServer, tmp_path: Path) -> None:
    """repl-id / repl-offset / repl-stream-db are written as AUX fields a server accepts."""
    rdb = tmp_path / "repl.rdb"
    keys = [
        KeyEntry(0, b"k", b"v"),
        KeyEntry(3, b"k3", [b"a"], expire_ms=int(time.time() * 1000) + FAR_TTL_MS),
    ]
    write_rdb(
        rdb,
        keys,
        version=native_version(source.kind),
        repl_id="a" * 40,
        repl_offset=12345,
        repl_stream_db=3,
        compress=False,
    )
    data = rdb.read_bytes()
    for field in (
        b"\x07repl-id(" + b"a" * 40,
        b"\x0brepl-offset\xc19\x30",
        b"\x0erepl-stream-db\xc0\x03",
    ):
        assert field in data
    dst = load(source.kind, rdb)
    try:
        assert keyspace(dst) == {0: (1, 0), 3: (1, 1)}
        assert raw(dst, 3).execute_command("LRANGE", "k3", 0, -1) == [b"a"]
    finally:
        dst.stop()


@needs_reader
def test_source_server_rdb_rewritten_loads_with_equal_digest(
    source: RedisServer, source_data: Any, tmp_path: Path
) -> None:
    """The server's own SAVE output, read by RDBReader and re-written, loads as the same data
    (streams with groups and functions included)."""
    from replproxy.rdb.reader import read_file

    version = native_version(source.kind)
    rdb = tmp_path / "rewritten.rdb"
    writer = write_rdb(
        rdb, read_file(source.dir / "dump.rdb"), version=version, valkey=source.kind.is_valkey
    )
    assert writer.keys_written == len(source_data[0])
    dst = load(source.kind, rdb)
    try:
        assert_same_dataset(source, dst, version, source_data)
        assert encodings(dst) == encodings(source)
    finally:
        dst.stop()
    if version > 9:  # and down-converted to Redis 5/6 encodings
        rdb9 = tmp_path / "rewritten9.rdb"
        write_rdb(rdb9, read_file(source.dir / "dump.rdb"), version=9)
        dst = load(source.kind, rdb9)
        try:
            assert_same_dataset(source, dst, 9, source_data)
        finally:
            dst.stop()


# ---- random values: server load (no reader needed) and write -> read (reader) ----


def random_values(rng: random.Random) -> dict[bytes, Value]:
    """Values of every type with the edge cases that trip integer and float encodings."""

    def s() -> bytes:
        kind = rng.randrange(8)
        if kind == 0:
            return str(rng.randint(-(2**63), 2**63 - 1)).encode()
        if kind == 1:
            return rng.choice(
                [b"-0", b"007", b"+5", b" 1", b"1 ", b"0", b"-", b"", b"1e3", b"0x10"]
            )
        if kind == 2:
            return str(rng.randint(-(2**70), 2**70)).encode()
        if kind == 3:
            return bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80)))
        if kind == 4:
            return rng.choice([b"a", b"bb", b"x" * 300]) * rng.randrange(1, 30)
        return str(rng.randint(-5000, 5000)).encode()

    def score() -> float:
        return rng.choice(
            [
                math.inf,
                -math.inf,
                0.0,
                rng.uniform(-1e9, 1e9),
                rng.randint(-(2**53), 2**53),
                rng.random(),
                1e-300,
                2.0**62 + 2**10,
            ]
        )

    out: dict[bytes, Value] = {}
    for i in range(40):
        n = rng.choice([1, 3, 20, 150, 700])
        out[b"str%d" % i] = s()
        out[b"list%d" % i] = [s() for _ in range(n)]
        out[b"set%d" % i] = {s() for _ in range(n)}
        out[b"iset%d" % i] = {str(rng.randint(-(2**63), 2**63 - 1)).encode() for _ in range(n)}
        out[b"zset%d" % i] = ZSetValue({s(): score() for _ in range(n)})
        out[b"hash%d" % i] = {s(): s() for _ in range(n)}
        entries = {}
        ms = rng.randint(1, 2**40)
        for j in range(rng.choice([1, 5, 150])):
            ms += rng.choice([0, 1, 1000])
            names = rng.choice([[b"a", b"b"], [b"a"], [s(), s()]])
            entries[(ms, j)] = [(f, s()) for f in names]
        out[b"stream%d" % i] = StreamValue(entries)
    return {k: v for k, v in out.items() if not (isinstance(v, list | set | dict) and not v)}


def insert_with_commands(server: RedisServer, values: dict[bytes, Value]) -> None:
    c = server.client()
    p = c.pipeline(transaction=False)
    for key, v in values.items():
        if isinstance(v, bytes):
            p.set(key, v)
        elif isinstance(v, list):
            p.rpush(key, *v)
        elif isinstance(v, set):
            p.sadd(key, *v)
        elif isinstance(v, ZSetValue):
            p.zadd(key, dict(v))
        elif isinstance(v, dict):
            # A fresh dict: redis-py wants Mapping[EncodableT, ...], whose key type is invariant.
            p.hset(key, mapping={f: x for f, x in v.items()})
        elif isinstance(v, StreamValue):
            for (ms, seq), fields in v.entries.items():
                p.execute_command("XADD", key, f"{ms}-{seq}", *[x for kv in fields for x in kv])
    p.execute()


@pytest.mark.parametrize("version", [9, 10, 11])
def test_random_values_load_like_the_same_values_written_by_commands(
    server_kind: ServerKind, version: int
) -> None:
    if version > native_version(server_kind):
        pytest.skip(f"{server_kind.name} does not load RDB {version}")
    values = random_values(random.Random(version))
    reference = start_server(server_kind)
    tmp = Path(tempfile.mkdtemp(prefix="replproxy-rdbw-"))
    try:
        insert_with_commands(reference, values)
        rdb = tmp / "random.rdb"
        write_rdb(rdb, [KeyEntry(0, k, v) for k, v in values.items()], version=version)
        dst = load(server_kind, rdb)
        try:
            assert keyspace(dst) == keyspace(reference)
            assert digest(dst) == digest(reference)
        finally:
            dst.stop()
    finally:
        reference.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(reference.dir, ignore_errors=True)


def module_id(name: str, encver: int) -> int:
    charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    mid = 0
    for ch in name:
        mid = (mid << 6) | charset.index(ch)
    return (mid << 10) | encver


# hypothesis strategies
blobs = st.one_of(
    st.binary(max_size=40),
    st.integers(-(2**64), 2**64).map(lambda i: str(i).encode()),
    st.sampled_from(
        [
            b"-0",
            b"007",
            b"+1",
            b" 1",
            b"",
            b"0",
            b"-",
            b"9223372036854775808",
            b"-9223372036854775808",
        ]
    ),
    st.binary(min_size=60, max_size=300),
    st.integers(1, 20).map(lambda n: b"ab" * n * 10),
)
small_blobs = st.one_of(
    st.binary(max_size=8), st.integers(-300, 300).map(lambda i: str(i).encode())
)
scores = st.floats(allow_nan=False)
int_members = st.integers(-(2**63), 2**63 - 1).map(lambda i: str(i).encode())


@st.composite
def streams(draw: st.DrawFn, version: int) -> StreamValue:
    # Ids below 2**63 keep every delta inside int64; wrapped deltas have their own test
    # (test_stream_ids_beyond_int64_survive_write_then_read).
    part = st.integers(0, 2**63 - 1)
    ids = sorted(draw(st.sets(st.tuples(part, part), max_size=30)))
    names = draw(st.lists(small_blobs, min_size=1, max_size=3))
    entries = {}
    for i in ids:
        fields = (
            names if draw(st.booleans()) else draw(st.lists(small_blobs, min_size=1, max_size=3))
        )
        entries[i] = [(f, draw(blobs)) for f in fields]
    last_id = ids[-1] if ids else draw(st.tuples(st.integers(0, 2**40), st.integers(0, 9)))
    groups = []
    for name in draw(st.sets(small_blobs, max_size=2)):
        pel_ids = draw(st.lists(st.sampled_from(ids), unique=True)) if ids else []
        consumer_names = sorted(draw(st.sets(small_blobs, min_size=1, max_size=3)))
        owners: dict[bytes, list[tuple[int, int]]] = {c: [] for c in consumer_names}
        pel = {}
        for pid in sorted(pel_ids):
            owners[draw(st.sampled_from(consumer_names))].append(pid)
            pel[pid] = StreamPendingEntry(draw(st.integers(0, 2**50)), draw(st.integers(0, 2**32)))
        consumers = [
            StreamConsumer(
                c,
                draw(st.integers(0, 2**50)),
                draw(st.integers(0, 2**50)) if version >= 11 else None,
                owners[c],
            )
            for c in consumer_names
        ]
        entries_read = draw(st.integers(-1, 2**40)) if version >= 10 else None
        groups.append(StreamGroup(name, last_id, entries_read, pel, consumers))
    groups.sort(key=lambda g: g.name)
    first_id = ids[0] if ids else (0, 0)
    if version >= 10:
        max_deleted = draw(st.sampled_from([(0, 0), first_id]))
        added = len(ids) + draw(st.integers(0, 100))
    else:
        max_deleted, added = (0, 0), len(ids)
    return StreamValue(entries, len(entries), last_id, first_id, max_deleted, added, groups)


@st.composite
def values(draw: st.DrawFn, version: int, valkey: bool) -> Value:
    kind = draw(
        st.sampled_from(
            ["string", "list", "set", "intset", "zset", "hash", "stream", "module", "hash-ttl"]
        )
    )
    if kind == "string":
        return draw(blobs)
    if kind == "list":
        return draw(
            st.lists(
                st.one_of(blobs, st.binary(min_size=8190, max_size=8200)), min_size=1, max_size=60
            )
        )
    if kind == "set":
        return draw(st.sets(blobs, min_size=1, max_size=150))
    if kind == "intset":
        return draw(st.sets(int_members, min_size=1, max_size=600))
    if kind == "zset":
        return ZSetValue(draw(st.dictionaries(blobs, scores, min_size=1, max_size=140)))
    if kind == "hash":
        return draw(st.dictionaries(blobs, blobs, min_size=1, max_size=140))
    if kind == "stream":
        return draw(streams(version))
    if kind == "module":
        name = draw(st.text(alphabet="abcdefXYZ019-_", min_size=9, max_size=9))
        encver = draw(st.integers(0, 1023))
        raw_ops = b"\x02\x05\x05\x03abc\x00"  # UINT 5, STRING "abc", EOF
        return ModuleValue(module_id(name, encver), name, encver, raw_ops)
    # hash with field TTLs where the target can hold them, else a plain hash
    h = draw(st.dictionaries(blobs, blobs, min_size=1, max_size=140))
    if version == 12 or (valkey and version == 80):
        ttl_fields = draw(st.lists(st.sampled_from(sorted(h)), unique=True, min_size=1))
        return HashValue(h, expires={f: draw(st.integers(1, 2**46)) for f in ttl_fields})
    return h


TARGETS = [(9, False), (10, False), (11, False), (11, True), (12, False), (80, True)]


# 40 files of 1-4 keys per target: each of the 9 kinds about 11 times per target, 65 times
# over the 6; REPLPROXY_TEST_SOAK=N writes N times as many (tests/harness/soak.py).
@needs_reader
@pytest.mark.parametrize(
    ("version", "valkey"), TARGETS, ids=[f"{'valkey' if vk else 'redis'}-v{v}" for v, vk in TARGETS]
)
@settings(
    max_examples=rounds(40),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_random_values_survive_write_then_read(
    version: int, valkey: bool, data: st.DataObject
) -> None:
    from replproxy.rdb.reader import read_file

    keys = data.draw(st.lists(values(version, valkey), min_size=1, max_size=4))
    entries = [
        KeyEntry(
            i % 3, b"key%d" % i, v, expire_ms=data.draw(st.one_of(st.none(), st.integers(1, 2**50)))
        )
        for i, v in enumerate(keys)
    ]
    fd, name = tempfile.mkstemp(suffix=".rdb")
    os.close(fd)
    try:
        write_rdb(name, entries, version=version, valkey=valkey)
        got = [e for e in read_file(name) if isinstance(e, KeyEntry)]
    finally:
        os.unlink(name)
    expected = sorted(entries, key=lambda e: (e.db, e.key))
    assert [(e.db, e.key, e.expire_ms) for e in got] == [
        (e.db, e.key, e.expire_ms) for e in expected
    ]
    for g, e in zip(got, expected):
        if isinstance(e.value, StreamValue) and isinstance(g.value, StreamValue):
            assert g.value.entries == e.value.entries, e.key
        assert g.value == e.value, e.key


@needs_reader
def test_stream_ids_beyond_int64_survive_write_then_read(tmp_path: Path) -> None:
    """Redis stores an id's difference from its node's master id as int64, wrapping when the
    difference exceeds it (the writer's bytes equal Redis's DUMP, see test_rdb_writer)."""
    from replproxy.rdb.reader import read_file

    entries = {
        (1, 5): [(b"f", b"v")],
        (1, 2**64 - 1): [(b"f", b"w")],
        (2**64 - 1, 0): [(b"f", b"x")],
    }
    value = StreamValue(entries, 3, (2**64 - 1, 0), (1, 5), (0, 0), 3)
    write_rdb(tmp_path / "wrap.rdb", [KeyEntry(0, b"st", value)], version=11)
    got = [e for e in read_file(tmp_path / "wrap.rdb") if isinstance(e, KeyEntry)]
    assert got[0].value == value


def _comparable_events(events: list[Any], version: int) -> list[Any]:
    """Events as a re-written file at `version` keeps them: what the target derives or
    cannot hold (stream v2/v3 metadata, field TTLs below 12, functions below 10) is dropped."""
    out: list[Any] = []
    for ev in events:
        if isinstance(ev, KeyEntry):
            v = ev.value
            if isinstance(v, StreamValue):
                v = comparable([KeyEntry(0, b"", v)], version if version >= 10 else 9, False)[
                    0
                ].value
                assert isinstance(v, StreamValue)
                # A file without entries-read / active-time gets Redis's load-time estimates.
                v = replace(
                    v,
                    groups=[
                        replace(
                            g,
                            entries_read=None,
                            consumers=[replace(c, active_time=None) for c in g.consumers],
                        )
                        for g in v.groups
                    ],
                )
            elif isinstance(v, HashValue) and version < 12:
                v = dict(v)
            idle_freq = (ev.idle, ev.freq) if version >= 9 else (None, None)
            if not (isinstance(v, list | set | dict) and not v):
                out.append((ev.db, ev.key, v, ev.expire_ms, idle_freq))
        elif isinstance(ev, Function):
            if version >= 10:
                out.append(("function", ev.code if ev.code.startswith(b"#!") else ev.name))
        elif isinstance(ev, ModuleAux | SlotInfo) or (isinstance(ev, Aux) and ev.key == b"lua"):
            out.append(ev)
    return out


@needs_reader
@pytest.mark.parametrize("version", [9, 12])
def test_fixture_corpus_rewrites_to_the_same_events(
    shared_rdb: Path, tmp_path: Path, version: int
) -> None:
    """Every readable file of the shared corpus (RDB 2..12, zipmaps, modules, module aux,
    functions, scripts, field TTLs) re-written at `version` reads back as the same events."""
    from replproxy.rdb.model import RDBError
    from replproxy.rdb.reader import read_file

    checked = 0
    for path in sorted(shared_rdb.rglob("*.rdb")):
        try:
            events = list(read_file(path))
        except RDBError:
            continue  # the corpus holds deliberately broken and future files
        out = tmp_path / path.name
        write_rdb(out, events, version=version, drop_field_ttls=True)
        again = list(read_file(out))
        if version < 12:
            again = [e for e in again if not isinstance(e, SlotInfo)]
            events = [e for e in events if not isinstance(e, SlotInfo)]
        assert _comparable_events(again, version) == _comparable_events(events, version), path.name
        checked += 1
    assert checked > 50


def _essence(value: Value) -> Any:
    """A value with stream metadata reduced to what every version keeps exactly."""
    if isinstance(value, StreamValue):
        return (
            value.entries,
            value.last_id,
            [
                (
                    g.name,
                    g.last_id,
                    sorted(g.pel),
                    [(c.name, sorted(c.pending)) for c in g.consumers],
                )
                for g in value.groups
            ],
        )
    if isinstance(value, HashValue):
        return dict(value)
    return value


@needs_reader
def test_fixture_corpus_loads_into_real_servers(shared_rdb: Path, server_kind: ServerKind) -> None:
    """Keys of every readable corpus file (zipmaps, RDB 2 ziplists, linked lists, ...),
    re-encoded for the server's own version in one file, load as the same values."""
    from replproxy.rdb.model import RDBError
    from replproxy.rdb.reader import read_file

    now = int(time.time() * 1000)
    keys: list[KeyEntry] = []
    libraries: dict[bytes, Function] = {}
    for path in sorted(shared_rdb.rglob("*.rdb")):
        try:
            events = list(read_file(path))
        except RDBError:
            continue
        if any(
            isinstance(e, ModuleAux) or isinstance(getattr(e, "value", None), ModuleValue)
            for e in events
        ):
            continue  # no module is loaded in the test servers
        for e in events:
            if isinstance(e, KeyEntry) and (e.expire_ms is None or e.expire_ms > now + 60_000):
                keys.append(replace(e, key=path.stem.encode() + b"/" + e.key, idle=None, freq=None))
            elif isinstance(e, Function) and (m := re.match(rb"#!\S+\s+name=(\S+)", e.code)):
                libraries[m.group(1)] = e  # a library name may exist only once
    version = native_version(server_kind)
    tmp = Path(tempfile.mkdtemp(prefix="replproxy-corpus-"))
    try:
        rdb = tmp / "corpus.rdb"
        writer = write_rdb(rdb, [*libraries.values(), *keys], version=version, drop_field_ttls=True)
        dst = load(server_kind, rdb)
        try:
            loaded, fns = snapshot(dst)
            expected = {
                (k.db, k.key): k
                for k in keys
                if not (isinstance(k.value, list | set | dict) and not k.value)
            }
            assert len(loaded) == len(expected) == writer.keys_written
            approx = server_kind.major < 7
            for got in loaded:
                want = expected[(got.db, got.key)]
                assert _essence(got.value) == _essence(want.value), got.key
                assert (got.expire_ms is None) == (want.expire_ms is None), got.key
                if not approx:
                    assert got.expire_ms == want.expire_ms, got.key
            if server_kind.major >= 7:
                assert len(fns) == len(libraries)
        finally:
            dst.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_dump_rdb_and_write_rdb_to_file_object_agree() -> None:
    keys = [KeyEntry(0, b"a", b"1"), KeyEntry(2, b"b", [b"x", b"y"])]
    buf = io.BytesIO()
    writer = write_rdb(buf, keys, version=10, aux={b"ctime": b"1"})
    data = buf.getvalue()
    assert data == dump_rdb(keys, version=10, aux={b"ctime": b"1"})
    assert writer.bytes_written == len(data)
    assert CRC64.calc(data[:-8]) == struct.unpack("<Q", data[-8:])[0] == writer.checksum
