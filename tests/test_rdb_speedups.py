"""The C fast path of sink-mode loading (`replproxy/rdb/_loader.c`) against the pure-Python
reader it accelerates.

The Python reader is the reference: on every input both paths must leave the same keyspace
(values of the same Python types, float scores bit for bit, file order, expiries, key and
empty-key counts), the same non-key events and the same error (type, message, offset). The
inputs: the shared fixture corpus, files saved by real servers, hypothesis datasets written
by `replproxy.rdb.writer` at versions 9-12, hypothesis files built record by record (every
string encoding, odd score texts, duplicates, empty values), and thousands of truncated or
bit-flipped copies of valid files, fed whole and in random chunks. Some tests also check the C
path really did the work (a test passing because C refused everything would prove nothing).
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anycrc
import lzf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replproxy.keyspace import Keyspace
from replproxy.rdb import encode as enc
from replproxy.rdb.model import (
    KeyEntry,
    StreamValue,
    Value,
    ZSetValue,
)
from replproxy.rdb.reader import (
    RDBReader,
    RDBSinkError,
    read_file,
)
from replproxy.rdb.writer import dump_rdb
from tests.harness.rdbpaths import Outcome, canon, speedups
from tests.harness.servers import RedisServer, ServerKind, start_server
from tests.harness.soak import rounds

CRC64 = anycrc.Model("CRC64-REDIS")
NDBS = 16

# ---- loading one input both ways ----


def both(data: bytes, chunks: list[int] | None = None, ndbs: int = NDBS) -> tuple[Outcome, Outcome]:
    """Load `data` on the pure-Python and on the C path; assert identical outcomes."""
    py = Outcome(data, False, chunks, ndbs)
    c = Outcome(data, True, chunks, ndbs)
    assert c.state() == py.state()
    assert not any(isinstance(e, KeyEntry) for e in py.events)
    return py, c


def random_chunks(rng: random.Random, n: int) -> list[int]:
    out = []
    while n > 0:
        k = rng.choice((1, 2, 3, 7, 16, 64, 300, 4096))
        out.append(k)
        n -= k
    return out


C_TYPES = frozenset((0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 16, 17, 18, 20))


def c_typed_keys(data: bytes) -> int:
    """Non-empty keys of the types the C path handles, by the event path of a sound file."""
    reader = RDBReader()
    reader.feed(data)
    reader.feed_eof()
    return sum(1 for e in reader.next_events() if isinstance(e, KeyEntry) and e.rdb_type in C_TYPES)


# ---- hand-built files ----


def rdb_file(*records: bytes, version: int = 9) -> bytes:
    body = b"REDIS%04d" % version + b"\xfe\x00" + b"".join(records) + b"\xff"
    return body + struct.pack("<Q", CRC64.calc(body))


def key(t: int, k: bytes, value: bytes, prefix: bytes = b"") -> bytes:
    return prefix + bytes((t,)) + enc.rdb_string(k) + value


def lzf_string(s: bytes) -> bytes:
    packed = lzf.compress(s, len(s) + 64)
    return b"\xc3" + enc.rdb_length(len(packed)) + enc.rdb_length(len(s)) + packed


def test_every_handled_type_is_stored_by_c_with_python_values() -> None:
    zl_scores = enc.ziplist([b"a", 1, b"b", b"2.5", b"c", b"-inf", b"d", b" 7 ", b"e", b"1_0"])
    records = [
        key(0, b"s:raw", enc.rdb_string(b"hello")),
        key(0, b"s:int8", b"\xc0\x80"),
        key(0, b"s:int16", b"\xc1\x00\x80"),
        key(0, b"s:int32", b"\xc2\x00\x00\x00\x80"),
        key(0, b"s:lzf", lzf_string(b"abc" * 100)),
        key(0, b"s:empty", b"\x00"),
        key(0, b"s:14bit", enc.rdb_length(300) + b"x" * 300),
        key(0, b"s:32bit", b"\x80" + struct.pack(">I", 5) + b"12345"),
        key(0, b"s:64bit", b"\x81" + struct.pack(">Q", 3) + b"abc"),
        key(0, b"12", b"\xc0\x01"),  # rdb_string int-encodes the key
        key(1, b"l:plain", b"\x03" + b"".join(map(enc.rdb_string, (b"a", b"12", b"c" * 70)))),
        key(2, b"set:plain", b"\x02" + enc.rdb_string(b"x") + enc.rdb_string(b"-5")),
        key(
            3,
            b"z:text",
            b"\x04"
            + enc.rdb_string(b"a")
            + b"\x031.5"
            + enc.rdb_string(b"b")
            + b"\xfe"
            + enc.rdb_string(b"c")
            + b"\xff"
            + enc.rdb_string(b"d")
            + b"\x04 -0 ",
        ),
        key(4, b"h:plain", b"\x01" + enc.rdb_string(b"f") + enc.rdb_string(b"v")),
        key(
            5,
            b"z:bin",
            b"\x02"
            + enc.rdb_string(b"a")
            + struct.pack("<d", -0.0)
            + enc.rdb_string(b"b")
            + struct.pack("<d", 1e300),
        ),
        key(
            10,
            b"l:zl",
            enc.rdb_string(
                enc.ziplist(
                    [b"a", 0, 12, -1, 200, -200, 70000, -70000, 2**31, -(2**63), b"q" * 300]
                )
            ),
        ),
        key(11, b"set:is16", enc.rdb_string(enc.intset([-3, 0, 5]))),
        key(11, b"set:is64", enc.rdb_string(enc.intset([-(2**63), 2**63 - 1]))),
        key(12, b"z:zl", enc.rdb_string(zl_scores, compress=False)),
        key(13, b"h:zl", lzf_string(enc.ziplist([b"f1", b"v1", b"f2", 99]))),
        key(
            14,
            b"l:ql",
            b"\x02" + enc.rdb_string(enc.ziplist([b"a", 1])) + enc.rdb_string(enc.ziplist([])),
        ),
        key(
            16,
            b"h:lp",
            enc.rdb_string(
                enc.listpack(
                    [
                        b"f",
                        1,
                        b"g",
                        b"x" * 100,
                        b"f2",
                        b"y" * 126,
                        b"f3",
                        b"z" * 5000,
                        b"f4",
                        b"w" * 20000,
                    ]
                )
            ),
        ),
        key(
            13,
            b"h:zl:long",
            enc.rdb_string(enc.ziplist([b"f", b"x" * 300, b"g", b"y" * 17000, b"h", 1])),
        ),
        key(17, b"z:lp", enc.rdb_string(enc.listpack([b"m", b"1e3", b"n", -5, b"o", b"nan"]))),
        key(
            18,
            b"l:ql2",
            b"\x03"
            + b"\x02"
            + enc.rdb_string(enc.listpack([b"a", 4095, -4096]))
            + b"\x01"
            + enc.rdb_string(b"plain-element")
            + b"\x01"
            + b"\xc0\x07",
        ),
        key(20, b"set:lp", enc.rdb_string(enc.listpack([b"a", 7, 100000]))),
        # prefixes: expiry in ms and seconds, IDLE, FREQ (dropped in sink mode)
        key(0, b"ttl:ms", enc.rdb_string(b"v"), b"\xfc" + struct.pack("<q", 1234567890123)),
        key(0, b"ttl:s", enc.rdb_string(b"v"), b"\xfd" + struct.pack("<i", -5) + b"\xf8\x10"),
        key(0, b"lfu", enc.rdb_string(b"v"), b"\xf9\x07"),
        # empty collections: skipped and counted
        key(1, b"empty:list", b"\x00"),
        key(11, b"empty:intset", enc.rdb_string(enc.intset([]))),
        key(17, b"empty:zset", enc.rdb_string(enc.listpack([]))),
    ]
    data = rdb_file(*records)
    py, c = both(data)
    assert py.error is None and py.skipped == 3
    assert c.c_stored == py.keys == len(records) - 3
    db: dict[bytes, Any] = dict(py.raw_dbs[0])
    assert db[b"s:int8"] == b"-128" and db[b"s:int16"] == b"-32768"
    assert db[b"s:lzf"] == b"abc" * 100 and db[b"12"] == b"1"
    assert db[b"z:text"] == {b"a": 1.5, b"b": math.inf, b"c": -math.inf, b"d": -0.0}
    assert math.copysign(1, db[b"z:text"][b"d"]) == -1
    assert db[b"z:zl"] == {b"a": 1.0, b"b": 2.5, b"c": -math.inf, b"d": 7.0, b"e": 10.0}
    assert math.isnan(db[b"z:lp"][b"o"])
    assert db[b"l:ql2"] == [b"a", b"4095", b"-4096", b"plain-element", b"7"]
    assert db[b"set:is64"] == {b"-9223372036854775808", b"9223372036854775807"}
    assert db[b"h:lp"][b"f3"] == b"z" * 5000 and db[b"h:zl:long"][b"g"] == b"y" * 17000
    assert type(db[b"z:bin"]) is ZSetValue and type(db[b"h:lp"]) is dict
    assert py.expires[0] == [(b"ttl:ms", 1234567890123), (b"ttl:s", -5000)]
    # whole and chunked feeds agree too
    rng = random.Random(5)
    for _ in range(20):
        chunks = random_chunks(rng, len(data))
        py2, _ = both(data, chunks)
        assert py2.state() == py.state()


def zl_prevlen_254() -> bytes:
    """A ziplist whose entry after a 254-byte one claims a 1-byte prevlen of 254 (0xFE, which
    means "4-byte prevlen follows")."""
    good = enc.ziplist([b"x" * 251, b"a"])
    five = b"\xfe" + struct.pack("<I", 254)
    assert good.count(five) == 1
    body = good[10:-1].replace(five, b"\xfe")
    return struct.pack("<IIH", len(body) + 11, 10 + 254, 2) + body + b"\xff"


BAD_RECORDS = [
    # (what, record): the C path must leave each to Python, which raises its own error
    ("set duplicate", key(2, b"k", b"\x02" + enc.rdb_string(b"x") * 2)),
    ("hash duplicate", key(4, b"k", b"\x02" + (enc.rdb_string(b"f") + enc.rdb_string(b"v")) * 2)),
    ("zset NaN text", key(3, b"k", b"\x01" + enc.rdb_string(b"m") + b"\xfd")),
    ("zset nan text", key(3, b"k", b"\x01" + enc.rdb_string(b"m") + b"\x03nan")),
    ("zset bad text", key(3, b"k", b"\x01" + enc.rdb_string(b"m") + b"\x03abc")),
    ("zset2 NaN", key(5, b"k", b"\x01" + enc.rdb_string(b"m") + struct.pack("<d", math.nan))),
    ("zset duplicate", key(5, b"k", b"\x02" + (enc.rdb_string(b"m") + bytes(8)) * 2)),
    ("ziplist zset bad score", key(12, b"k", enc.rdb_string(enc.ziplist([b"m", b"x1"])))),
    ("ziplist zset odd", key(12, b"k", enc.rdb_string(enc.ziplist([b"m", 1, b"n"])))),
    ("ziplist hash dup", key(13, b"k", enc.rdb_string(enc.ziplist([b"f", 1, b"f", 2])))),
    ("listpack set dup", key(20, b"k", enc.rdb_string(enc.listpack([b"a", b"a"])))),
    ("intset unsorted", key(11, b"k", enc.rdb_string(struct.pack("<IIhh", 2, 2, 5, 1)))),
    ("intset width", key(11, b"k", enc.rdb_string(struct.pack("<IIh", 3, 1, 5)))),
    ("ziplist as int", key(10, b"k", b"\xc0\x05")),
    ("ziplist 1-byte prevlen 254", key(10, b"k", enc.rdb_string(zl_prevlen_254(), compress=False))),
    ("quicklist2 container", key(18, b"k", b"\x01\x03" + enc.rdb_string(b"x"))),
    ("quicklist2 empty plain", key(18, b"k", b"\x01\x01\x00")),
    ("lzf bad backref", key(0, b"k", b"\xc3\x02\x05\x20\x00")),
    ("lzf short output", key(0, b"k", b"\xc3\x02\x05\x00a")),
    ("lzf ratio", key(0, b"k", b"\xc3\x01" + enc.rdb_length(1000) + b"\x00")),
    ("length encoding", key(1, b"k", b"\xc5")),
    ("string encoding", key(0, b"k", b"\xc7")),
    ("unknown type", b"\x08" + enc.rdb_string(b"k") + b"\x00"),
]


@pytest.mark.parametrize("what,record", BAD_RECORDS, ids=[w for w, _ in BAD_RECORDS])
def test_malformed_records_are_left_to_python(what: str, record: bytes) -> None:
    good = key(0, b"before", enc.rdb_string(b"v"))
    py, c = both(rdb_file(good, b"\xfc" + bytes(8), record, good))
    assert py.error is not None, what
    assert c.c_stored == 1


def test_zset_text_scores_parse_like_float() -> None:
    texts = [
        b"1",
        b"-0",
        b"+3",
        b" 4",
        b"5 ",
        b"1_000",
        b"1e400",
        b"-1e400",
        b"Infinity",
        b"-inf",
        b"1.5e-320",
        b"0x10",
        b"",
        b"1__0",
        b"\t2\n",
        b".5",
        b"5.",
        b"e5",
        b"1-2",
        b"1e",
        b"1.2.3",
        b"--1",
        b"+",
        b".",
        b"e",
        b"1e+",
        b"nan",
        b"-nan",
        b"1\x00",
    ]
    for text in texts:
        for record in (
            key(3, b"z", b"\x01" + enc.rdb_string(b"m") + bytes((len(text),)) + text),
            key(
                12,
                b"z",
                enc.rdb_string(
                    enc.ziplist_from_bodies([enc.zl_body(b"m"), bytes((len(text),)) + text]),
                    compress=False,
                ),
            ),
            key(
                17,
                b"z",
                enc.rdb_string(
                    enc.listpack_from_entries(
                        [enc.lp_entry(b"m"), bytes((0x80 | len(text),)) + text + b"\x01"]
                    ),
                    compress=False,
                ),
            ),
        ):
            both(rdb_file(record))


def test_out_of_range_db_is_a_sink_error_on_both_paths() -> None:
    data = rdb_file(
        key(0, b"a", enc.rdb_string(b"1")),
        b"\xfe\x14",
        b"\xfc" + bytes(8) + key(0, b"b", enc.rdb_string(b"2")),
    )
    py, c = both(data)
    assert py.error == (
        "RDBSinkError",
        "snapshot has DB 20 but only 16 databases are configured",
        len(b"REDIS0009\xfe\x00") + len(key(0, b"a", enc.rdb_string(b"1"))) + 2 + 9,
    )
    assert issubclass(RDBSinkError, ValueError)
    assert py.keys == c.c_stored == 1


# ---- the shared fixture corpus ----


def test_shared_fixtures_load_identically(shared_rdb: Path) -> None:
    files = sorted(shared_rdb.rglob("*.rdb"))
    assert len(files) > 50
    rng = random.Random(1)
    stored = 0
    for path in files:
        data = path.read_bytes()
        py, c = both(data)
        both(data, random_chunks(rng, len(data)))
        if py.error is None:
            assert c.c_stored == c_typed_keys(data), path.name
        stored += c.c_stored
    assert stored > 200


# ---- files written by real servers ----


def fill(server: RedisServer) -> None:
    """Every type and encoding the C path handles, plus a stream and a function (records it
    leaves to Python) in between, in three DBs, some keys with TTLs."""
    rng = random.Random(7)
    v = server.kind.version
    c = server.client()
    p = c.pipeline(transaction=False)
    for i in range(300):
        p.set(f"s:{i}", i if i % 3 == 0 else f"value-{i}" * (1 + i % 5))
    p.set("s:neg", -123456)
    p.set("s:big", "9223372036854775807")
    p.set("s:lzf", "abcd" * 2000)
    p.set("s:bin", bytes(rng.getrandbits(8) for _ in range(500)))
    p.set("s:empty", "")
    p.rpush("l:small", "a", 1, -1, 70000, 2**40, "x" * 70)
    p.rpush("l:long", *[f"item-{i}" if i % 2 else i for i in range(3000)])
    p.rpush("l:compress", *["same-text-again"] * 500)
    p.rpush("l:bigelems", "x" * 10000, "s", "y" * 9000)
    p.sadd("set:i16", 1, 2, 3)
    p.sadd("set:i32", 100000, -5)
    p.sadd("set:i64", 2**40, -(2**62))
    p.sadd("set:small", "a", "b", "7")
    p.sadd("set:large", *[f"m{i}" for i in range(600)])
    p.zadd(
        "z:small",
        {
            "a": 1,
            "b": 2.5,
            "c": -0.125,
            "inf": float("inf"),
            "ninf": float("-inf"),
            "big": 1e300,
            "tiny": 5e-324,
            "neg0": -0.0,
            "i": 2**53 + 1,
        },
    )
    p.zadd("z:large", {f"m{i}": rng.uniform(-1e9, 1e9) for i in range(300)})
    p.hset("h:small", mapping={"f": "v", "n": 12, "neg": -7, "long": 2**62})
    p.hset("h:large", mapping={f"f{i}": f"v{i}" for i in range(300)})
    p.hset("h:bigvalue", mapping={"a": "v" * 100})
    p.set("ttl:s", "v", px=10_000_000)
    p.rpush("ttl:l", "a")
    p.pexpire("ttl:l", 20_000_000)
    p.execute()
    c.xadd("st", {"f": "v"})
    if v >= (7, 0, 0):
        c.execute_command(
            "FUNCTION", "LOAD", "#!lua name=lib\nredis.register_function('f', function() end)"
        )
    c1 = server.client(db=1)
    c1.set("db1:s", "x")
    c1.zadd("db1:z", {"m": 3})
    c9 = server.client(db=9)
    c9.hset("db9:h", "f", "v")
    c9.set("db9:ttl", "t", px=30_000_000)


def test_server_saved_files_load_identically(server_kind: ServerKind, tmp_path: Path) -> None:
    server = start_server(server_kind)
    try:
        fill(server)
        server.client().save()
        data = (server.dir / "dump.rdb").read_bytes()
    finally:
        server.stop()
    py, c = both(data)
    assert py.error is None and py.keys > 300
    # everything but the stream went through C
    assert c.c_stored == c_typed_keys(data) == py.keys - 1
    # and the same keyspace as the event path
    events = {
        (e.db, e.key): (e.value, e.expire_ms)
        for e in read_file(server_path(tmp_path, data))
        if isinstance(e, KeyEntry)
    }
    for db, d in enumerate(py.raw_dbs):
        for k, val in d.items():
            assert canon(events[(db, k)][0]) == canon(val)
    rng = random.Random(2)
    for _ in range(3):
        both(data, random_chunks(rng, len(data)))
    # the same data written at v9 (ziplists) by replproxy's writer
    v9 = dump_rdb(
        (e for e in read_file(server_path(tmp_path, data)) if isinstance(e, KeyEntry)), version=9
    )
    both(v9)


def server_path(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "server.rdb"
    path.write_bytes(data)
    return path


# ---- hypothesis: writer-made datasets at versions 9-12 ----

member = st.one_of(
    st.binary(max_size=12),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: b"%d" % i),
    st.sampled_from([b"0", b"-0", b"007", b"12", b"-1", b"4294967296"]),
    st.binary(min_size=60, max_size=120),
)
score = st.one_of(
    st.floats(allow_nan=False),
    st.integers(-(2**53), 2**53).map(float),
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, 0.1, 5e-324]),
)
repeated = st.binary(min_size=20, max_size=3000).map(lambda b: b[:10] * (len(b) // 10 or 1))
value = st.one_of(
    member,
    repeated,
    st.lists(member, max_size=40),
    st.lists(st.binary(min_size=8000, max_size=9000), min_size=1, max_size=2),
    st.sets(member, max_size=40),
    st.sets(st.integers(-(2**63), 2**63 - 1).map(lambda i: b"%d" % i), max_size=600),
    st.dictionaries(member, member, max_size=30),
    st.dictionaries(member, score, max_size=30).map(ZSetValue),
    st.dictionaries(member, score, min_size=129, max_size=140).map(ZSetValue),
)


# The examples' cost is hypothesis drawing the big collections (the loads take a few ms):
# 40 examples here, REPLPROXY_TEST_SOAK=N draws N times as many (tests/harness/soak.py).
@settings(
    max_examples=rounds(40),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    version=st.sampled_from([9, 10, 11, 12]),
    values=st.lists(value, min_size=1, max_size=12),
    ttls=st.lists(st.one_of(st.none(), st.integers(0, 2**50)), min_size=12, max_size=12),
    data=st.data(),
)
def test_writer_datasets_load_identically(
    version: int, values: list[Value], ttls: list[int | None], data: st.DataObject
) -> None:
    entries = [KeyEntry(i % 3, b"key:%d" % i, v, expire_ms=ttls[i]) for i, v in enumerate(values)]
    rdb = dump_rdb(entries, version=version)
    py, c = both(rdb)
    assert py.error is None
    assert c.c_stored == py.keys == sum(1 for v in values if v or isinstance(v, bytes))
    chunks = data.draw(st.lists(st.integers(1, 400), max_size=60))
    both(rdb, chunks)


# ---- hypothesis: files built record by record ----

prefix = st.lists(
    st.one_of(
        st.integers(-(2**63), 2**63 - 1).map(lambda t: b"\xfc" + struct.pack("<q", t)),
        st.integers(-(2**31), 2**31 - 1).map(lambda t: b"\xfd" + struct.pack("<i", t)),
        st.integers(0, 2**40).map(lambda t: b"\xf8" + enc.rdb_length(t)),
        st.integers(0, 255).map(lambda t: b"\xf9" + bytes((t,))),
    ),
    max_size=2,
).map(b"".join)


@st.composite
def rdb_str(draw: st.DrawFn, s: bytes) -> bytes:
    """`s` in any of the encodings a reader must accept for it."""
    forms = [enc.rdb_length(len(s)) + s, b"\x80" + struct.pack(">I", len(s)) + s]
    if s:
        forms.append(lzf_string(s))
    forms.append(enc.rdb_string(s))
    return draw(st.sampled_from(forms))


score_text = st.one_of(
    st.floats().map(lambda f: repr(f).encode()),
    st.integers(-(10**20), 10**20).map(lambda i: b"%d" % i),
    st.sampled_from([b"inf", b"-inf", b"nan", b" 1", b"1_0", b"x", b"", b"1e999", b"+.5e-3"]),
)
int64 = st.integers(-(2**63), 2**63 - 1)
entry = st.one_of(st.binary(max_size=70), int64, st.binary(min_size=120, max_size=300))


@st.composite
def record(draw: st.DrawFn) -> bytes:
    t = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 16, 17, 18, 20]))
    k = draw(rdb_str(draw(member)))
    ms = draw(st.lists(member, max_size=6))
    if t == 0:
        # The string branches of `value` (filtering `value` drew, then dropped, big collections).
        v = draw(rdb_str(draw(st.one_of(member, repeated))))
    elif t in (1, 2):
        v = enc.rdb_length(len(ms)) + b"".join(draw(rdb_str(m)) for m in ms)
    elif t == 4:
        pairs = ms[: len(ms) // 2 * 2]
        v = enc.rdb_length(len(pairs) // 2) + b"".join(draw(rdb_str(m)) for m in pairs)
    elif t == 3:
        v = enc.rdb_length(len(ms)) + b"".join(
            draw(rdb_str(m))
            + draw(
                st.one_of(
                    st.sampled_from([b"\xfd", b"\xfe", b"\xff"]),
                    score_text.map(lambda s: bytes((len(s),)) + s),
                )
            )
            for m in ms
        )
    elif t == 5:
        v = enc.rdb_length(len(ms)) + b"".join(
            draw(rdb_str(m)) + struct.pack("<d", draw(st.floats())) for m in ms
        )
    elif t == 11:
        v = draw(rdb_str(enc.intset(draw(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=8)))))
    elif t in (14, 18):
        nodes = []
        for node in draw(st.lists(st.lists(entry, max_size=5), max_size=3)):
            if t == 18 and draw(st.booleans()):
                nodes.append(b"\x01" + draw(rdb_str(draw(st.binary(max_size=30)))))
            else:
                blob = enc.listpack(node) if t == 18 else enc.ziplist(node)
                nodes.append((b"\x02" if t == 18 else b"") + draw(rdb_str(blob)))
        v = enc.rdb_length(len(nodes)) + b"".join(nodes)
    else:
        items: list[bytes | int] = list(draw(st.lists(entry, max_size=8)))
        if t in (12, 17):
            items = [x for m in ms for x in (m, draw(st.one_of(score_text, int64)))]
        blob = enc.ziplist(items) if t in (10, 12, 13) else enc.listpack(items)
        v = draw(rdb_str(blob))
    return draw(prefix) + bytes((t,)) + k + v


opcode = st.sampled_from(
    [
        b"\xfe\x01",
        b"\xfe\x00",
        b"\xfb\x03\x01",
        b"\xfa" + enc.rdb_string(b"aux") + b"\x00",
        b"\xfe\x11",  # a DB beyond the 16 configured
    ]
)


# 100 files of up to 10 records (each record of the 15 types in its many forms); a soak
# (REPLPROXY_TEST_SOAK=N) builds N times as many.
@settings(
    max_examples=rounds(100),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    records=st.lists(st.one_of(record(), record(), record(), opcode), min_size=1, max_size=10),
    version=st.sampled_from([3, 9, 11]),
    data=st.data(),
)
def test_built_records_load_identically(
    records: list[bytes], version: int, data: st.DataObject
) -> None:
    rdb = rdb_file(*records, version=version)
    both(rdb)
    both(rdb, data.draw(st.lists(st.integers(1, 64), max_size=40)))


# ---- corrupted files: truncations, bit flips, overwritten bytes ----


def corpus() -> list[bytes]:
    rng = random.Random(3)
    zs = ZSetValue({b"a": 1.0, b"b": 2.5, b"c": -math.inf})
    entries = [
        KeyEntry(0, b"s", b"value"),
        KeyEntry(0, b"n", b"12345"),
        KeyEntry(0, b"lzf", b"abcabcabc" * 30, expire_ms=1 << 40),
        KeyEntry(0, b"l", [b"a", b"1", b"-70000", b"x" * 80]),
        KeyEntry(1, b"set:i", {b"1", b"2", b"99999999999"}),
        KeyEntry(1, b"set:s", {b"a", b"b"}),
        KeyEntry(1, b"z", zs),
        KeyEntry(2, b"h", {b"f": b"v", b"g": b"12"}),
        KeyEntry(2, b"z:big", ZSetValue({b"m%d" % i: rng.random() for i in range(150)})),
        KeyEntry(2, b"h:big", {b"f%d" % i: b"v" * (i % 90) for i in range(150)}),
        KeyEntry(0, b"l:big", [b"item-%d" % i for i in range(700)]),
    ]
    files = [dump_rdb(entries, version=v) for v in (9, 10, 11, 12)]
    files.append(
        rdb_file(
            key(1, b"l", b"\x02" + enc.rdb_string(b"a") + lzf_string(b"b" * 50)),
            key(
                3,
                b"z",
                b"\x02" + enc.rdb_string(b"a") + b"\x031.5" + enc.rdb_string(b"b") + b"\xfe",
            ),
            key(4, b"h", b"\x01" + enc.rdb_string(b"f") + enc.rdb_string(b"v")),
            key(5, b"z2", b"\x01" + enc.rdb_string(b"a") + struct.pack("<d", 2.0)),
            key(14, b"q", b"\x01" + enc.rdb_string(enc.ziplist([b"a", 5, -300]), compress=False)),
            key(
                18,
                b"q2",
                b"\x02\x02"
                + enc.rdb_string(enc.listpack([b"a", 5]), compress=False)
                + b"\x01"
                + enc.rdb_string(b"plain"),
            ),
        )
    )
    return files


def mutations(data: bytes, rng: random.Random, n: int) -> Iterator[bytes]:
    for _ in range(n):
        kind = rng.random()
        if kind < 0.25:
            yield data[: rng.randrange(len(data))]
        elif kind < 0.6:
            b = bytearray(data)
            for _ in range(rng.choice((1, 1, 2, 4))):
                i = rng.randrange(9, len(b))
                b[i] ^= 1 << rng.randrange(8)
            yield bytes(b)
        else:
            b = bytearray(data)
            i = rng.randrange(9, len(b))
            special = (0, 0x3F, 0x40, 0x7F, 0x80, 0x81, 0xC0, 0xC3, 0xFE, 0xFF, rng.randrange(256))
            b[i : i + rng.choice((1, 2, 4))] = bytes(
                rng.choice(special) for _ in range(rng.choice((1, 2, 4)))
            )
            yield bytes(b)


def test_corrupted_files_never_crash_and_fail_identically() -> None:
    """400 mutations of each corpus file (each kind of mutation about a hundred times or more
    per file); REPLPROXY_TEST_SOAK=N runs N times as many (tests/harness/soak.py)."""
    rng = random.Random(11)
    outcomes = {"ok": 0, "error": 0}
    for data in corpus():
        for bad in mutations(data, rng, rounds(400)):
            py, _ = both(bad)
            outcomes["error" if py.error else "ok"] += 1
            if rng.random() < 0.1:
                both(bad, random_chunks(rng, len(bad)))
    # Most mutations break the file (over half: more than 3000 of 6000 at 1200 per file).
    assert outcomes["error"] * 2 > sum(outcomes.values())


def test_corrupted_files_with_checksum_off_fail_identically() -> None:
    """With the CRC not stored (0), corrupt values are met by the parsers, not the CRC check.
    350 mutations of each corpus file; REPLPROXY_TEST_SOAK=N runs N times as many."""
    rng = random.Random(12)
    for data in corpus():
        unchecked = data[:-8] + bytes(8)
        for bad in mutations(unchecked[:-8], rng, rounds(350)):
            both(bad + bytes(8))


# ---- streaming: any feed sizes, linear cost ----


def test_huge_records_fed_in_tiny_chunks_stay_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    """The work is counted, not timed (benchmarks/rdb_chunked.py times it): the bytes each path
    hands its record decoder."""
    n = 60_000
    big_list = key(
        1, b"big", enc.rdb_length(n) + b"".join(enc.rdb_length(8) + b"%08d" % i for i in range(n))
    )
    big_string = key(0, b"s", enc.rdb_length(2_000_000) + b"x" * 2_000_000)
    small = b"".join(key(0, b"k%d" % i, enc.rdb_string(b"v%d" % i)) for i in range(2000))
    data = rdb_file(small, big_list, big_string, small)
    chunks = [5] * 110_000 + [1000] * 2500
    decoded = {False: 0, True: 0}  # by path: C or not
    decode = RDBReader._run

    def counting(self: RDBReader, buf: bytes, after_scan: bool = False) -> None:
        decoded[self._fast is not None] += len(buf)
        decode(self, buf, after_scan)

    monkeypatch.setattr(RDBReader, "_run", counting)
    py, c = both(data, chunks)
    # Python decodes each byte about once (its scanner waits for whole records), C about
    # twice: a cut record is retried once the buffered bytes double, which costs at most 4x
    # the record. Re-decoding the 540 KB list from its start at each 5-byte chunk: ~30 GB.
    assert 0 < decoded[False] <= 4 * len(data) and 0 < decoded[True] <= 4 * len(data), decoded
    assert py.error is None and c.c_stored == py.keys == 4002  # the small keys twice
    big = py.raw_dbs[0][b"s"]
    assert isinstance(big, bytes) and len(big) == 2_000_000


# ---- the keyspace loader ----


def test_python_sink_mode_equals_the_event_path() -> None:
    """Runs without the C module too: sink mode stores what KeyEntry events carry."""
    data = corpus()[0]
    reader = RDBReader()
    reader.feed(data)
    reader.feed_eof()
    events = reader.next_events()
    py = Outcome(data, False, None, NDBS)
    assert py.error is None and py.keys == sum(isinstance(e, KeyEntry) for e in events)
    assert [repr(e) for e in events if not isinstance(e, KeyEntry)] == [repr(e) for e in py.events]
    for e in events:
        if isinstance(e, KeyEntry):
            assert canon(py.raw_dbs[e.db][e.key]) == canon(e.value)
            assert dict(py.expires[e.db]).get(e.key) == e.expire_ms


def test_loader_feed_equals_add_on_both_paths(tmp_path: Path) -> None:
    entries = [
        KeyEntry(0, b"a", b"1", expire_ms=5),
        KeyEntry(3, b"z", ZSetValue({b"m": 1.0})),
        KeyEntry(15, b"h", {b"f": b"v"}),
        KeyEntry(0, b"st", StreamValue()),
    ]
    data = dump_rdb(entries, version=11, repl_stream_db=3)
    path = tmp_path / "x.rdb"
    path.write_bytes(data)
    by_events = Keyspace().new_loader()
    by_events.add(read_file(path))
    results = []
    for fast in (False, True):
        with speedups(fast):
            loader = Keyspace().new_loader()
            for i in range(0, len(data), 7):
                loader.feed(data[i : i + 7])
            loader.feed_eof()
        assert (loader.reader is not None) and (loader.reader._fast is not None) == fast
        results.append(loader)
    for loader in results:
        assert loader.keys == by_events.keys == 4
        assert loader.dbs == by_events.dbs and loader.expires == by_events.expires
        assert loader.aux == by_events.aux and loader.stream_db == 3
        assert type(loader.dbs[3][b"z"]) is ZSetValue
        ks = loader.target
        loader.commit()
        assert ks.dbs[15][b"h"] == {b"f": b"v"}


def test_loader_refuses_a_db_beyond_its_databases() -> None:
    data = dump_rdb([KeyEntry(20, b"k", b"v")], version=9)
    for fast in (False, True):
        with speedups(fast):
            loader = Keyspace().new_loader()
            with pytest.raises(ValueError, match="snapshot has DB 20 but only 16"):
                loader.feed(data)
                loader.feed_eof()
