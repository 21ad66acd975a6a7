"""The streaming RDB reader: records, dialects, errors, chunking, and files real servers write.

Small files are built here byte by byte (an independent encoder of the RDB record layout), so
each opcode, type and error path is exercised on purpose; bigger files come from real
servers (SAVE) and are compared with what the same server serves.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import struct
import time
import tracemalloc
from pathlib import Path

import anycrc
import lzf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replproxy.rdb import (
    Aux,
    End,
    Event,
    Function,
    HashValue,
    Header,
    KeyEntry,
    ModuleAux,
    ModuleValue,
    RDBChecksumError,
    RDBError,
    RDBReader,
    RDBUnsupportedError,
    ResizeDB,
    SelectDB,
    SlotInfo,
    StreamValue,
    ZSetValue,
    decode_value,
    decode_value_prefix,
    module_name,
    read_file,
)
from tests.conftest import SHARED_RDB
from tests.harness.servers import RedisServer, ServerKind, start_server
from tests.test_rdb_encodings import make_listpack, make_ziplist
from tests.test_rdb_fixtures import assert_matches_server, served_keyspace

_CRC = anycrc.Model("CRC64-REDIS")

# ---- an independent encoder for test files (rdb.c's save side, simplified) ----


def rlen(n: int) -> bytes:
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | n >> 8, n & 0xFF])
    if n < 2**32:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def rstr(b: bytes) -> bytes:
    return rlen(len(b)) + b


def rkey(rdb_type: int, key: bytes, value: bytes) -> bytes:
    return bytes([rdb_type]) + rstr(key) + value


def rdb(*records: bytes, version: int = 11, magic: bytes = b"REDIS", crc: bool = True) -> bytes:
    digits = f"{version:04d}" if magic == b"REDIS" else f"{version:03d}"
    data = magic + digits.encode() + b"".join(records) + b"\xff"
    if version >= 5:
        data += (_CRC.calc(data) if crc else 0).to_bytes(8, "little")
    return data


def module_id(name: str, encver: int) -> int:
    charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    mid = 0
    for ch in name:
        mid = (mid << 6) | charset.index(ch)
    return (mid << 10) | encver


def parse(data: bytes, verify_checksum: bool = True) -> list[Event]:
    reader = RDBReader(verify_checksum)
    reader.feed(data)
    reader.feed_eof()
    return reader.next_events()


def keys(events: list[Event]) -> list[KeyEntry]:
    return [e for e in events if isinstance(e, KeyEntry)]


def feed_in_chunks(
    data: bytes, sizes: list[int] | int, reader: RDBReader | None = None
) -> tuple[list[Event], RDBReader]:
    reader = reader or RDBReader()
    events: list[Event] = []
    i = 0
    sizes_iter = iter(sizes) if isinstance(sizes, list) else itertools.repeat(sizes)
    while i < len(data):
        n = next(sizes_iter, len(data))
        reader.feed(data[i : i + n])
        events += reader.next_events()
        i += n
    reader.feed_eof()
    events += reader.next_events()
    return events, reader


# ---- records ----


def test_header_aux_db_records_and_end_in_file_order() -> None:
    data = rdb(
        b"\xfa" + rstr(b"redis-ver") + rstr(b"7.2.4"),
        b"\xfa" + rstr(b"redis-bits") + b"\xc0\x40",
        b"\xfe\x00",
        b"\xfb\x02\x01",
        rkey(0, b"k", rstr(b"v")),
        b"\xfe" + rlen(300),
        b"\xf4" + rlen(1234) + b"\x01\x00",
        rkey(0, b"k2", rstr(b"v2")),
    )
    events = parse(data)
    assert events == [
        Header(b"REDIS", 11),
        Aux(b"redis-ver", b"7.2.4"),
        Aux(b"redis-bits", b"64"),
        SelectDB(0),
        ResizeDB(2, 1),
        KeyEntry(0, b"k", b"v", rdb_type=0),
        SelectDB(300),
        SlotInfo(1234, 1, 0),
        KeyEntry(300, b"k2", b"v2", rdb_type=0),
        End(_CRC.calc(data[:-8])),
    ]


@pytest.mark.parametrize(
    ("encoded", "value"),
    [
        (rstr(b""), b""),
        (rstr(b"x" * 63), b"x" * 63),
        (rstr(b"x" * 64), b"x" * 64),
        (rstr(b"y" * 70000), b"y" * 70000),
        (b"\x81" + (5).to_bytes(8, "big") + b"abcde", b"abcde"),
        (b"\xc0\x80", b"-128"),
        (b"\xc1\xff\x7f", b"32767"),
        (b"\xc2\x00\x00\x00\x80", b"-2147483648"),
        (
            b"\xc3" + rlen(len(lzf.compress(b"ab" * 500))) + rlen(1000) + lzf.compress(b"ab" * 500),
            b"ab" * 500,
        ),
    ],
)
def test_string_encodings(encoded: bytes, value: bytes) -> None:
    (entry,) = keys(parse(rdb(rkey(0, b"key", encoded), rkey(0, b"k" * 100, encoded))))[:1]
    assert entry.value == value
    assert keys(parse(rdb(rkey(0, b"k" * 100, encoded))))[0].value == value


def test_expiry_idle_and_freq_apply_to_the_next_key_only() -> None:
    data = rdb(
        b"\xfd" + struct.pack("<i", 1700000000) + rkey(0, b"a", rstr(b"1")),
        b"\xfc" + struct.pack("<q", 1700000000123) + b"\xf8" + rlen(77) + rkey(0, b"b", rstr(b"2")),
        b"\xf9\x05" + rkey(1, b"c", rlen(1) + rstr(b"x")),
        rkey(0, b"d", rstr(b"3")),
        version=9,
    )
    a, b, c, d = keys(parse(data))
    assert (a.expire_ms, a.idle, a.freq) == (1700000000000, None, None)
    assert (b.expire_ms, b.idle, b.freq) == (1700000000123, 77, None)
    assert (c.expire_ms, c.idle, c.freq, c.value) == (None, None, 5, [b"x"])
    assert (d.expire_ms, d.idle, d.freq) == (None, None, None)


def test_collections_in_plain_encodings() -> None:
    data = rdb(
        rkey(1, b"list", rlen(3) + rstr(b"a") + b"\xc0\x07" + rstr(b"c" * 100)),
        rkey(2, b"set", rlen(2) + rstr(b"m1") + rstr(b"m2")),
        rkey(
            3,
            b"zset",
            rlen(4)
            + rstr(b"a")
            + b"\x031.5"
            + rstr(b"b")
            + b"\xfe"
            + rstr(b"c")
            + b"\xff"
            + rstr(b"d")
            + b"\x02-2",
        ),
        rkey(4, b"hash", rlen(2) + rstr(b"f") + rstr(b"v") + rstr(b"n") + b"\xc0\x01"),
        rkey(
            5,
            b"zset2",
            rlen(2) + rstr(b"x") + struct.pack("<d", 0.25) + rstr(b"y") + struct.pack("<d", -1e300),
        ),
    )
    values = {e.key: e.value for e in keys(parse(data))}
    assert values[b"list"] == [b"a", b"7", b"c" * 100]
    assert values[b"set"] == {b"m1", b"m2"}
    assert values[b"zset"] == {b"a": 1.5, b"b": float("inf"), b"c": float("-inf"), b"d": -2.0}
    assert isinstance(values[b"zset"], ZSetValue)
    assert values[b"hash"] == {b"f": b"v", b"n": b"1"}
    assert values[b"zset2"] == {b"x": 0.25, b"y": -1e300}


def test_collections_in_compact_encodings() -> None:
    intset = struct.pack("<II", 2, 3) + struct.pack("<3h", -5, 1, 300)
    data = rdb(
        rkey(10, b"l-zl", rstr(make_ziplist([b"a", 5, b"b"]))),
        rkey(11, b"s-is", rstr(intset)),
        rkey(12, b"z-zl", rstr(make_ziplist([b"m", b"1.5", b"n", 2]))),
        rkey(13, b"h-zl", rstr(make_ziplist([b"f", b"v"]))),
        rkey(14, b"l-ql", rlen(2) + rstr(make_ziplist([b"a"])) + rstr(make_ziplist([b"b", 3]))),
        rkey(16, b"h-lp", rstr(make_listpack([b"f", 1, 2, b"v"]))),
        rkey(17, b"z-lp", rstr(make_listpack([b"m", -3, b"n", b"inf"]))),
        rkey(
            18,
            b"l-ql2",
            rlen(2) + rlen(2) + rstr(make_listpack([b"a", 1])) + rlen(1) + rstr(b"P" * 100),
        ),
        rkey(20, b"s-lp", rstr(make_listpack([b"x", 9]))),
        rkey(9, b"h-zm", rstr(b"\x01\x01a\x02\x00bb\xff")),
    )
    values = {e.key: e.value for e in keys(parse(data))}
    assert values == {
        b"l-zl": [b"a", b"5", b"b"],
        b"s-is": {b"-5", b"1", b"300"},
        b"z-zl": {b"m": 1.5, b"n": 2.0},
        b"h-zl": {b"f": b"v"},
        b"l-ql": [b"a", b"b", b"3"],
        b"h-lp": {b"f": b"1", b"2": b"v"},
        b"z-lp": {b"m": -3.0, b"n": float("inf")},
        b"l-ql2": [b"a", b"1", b"P" * 100],
        b"s-lp": {b"x", b"9"},
        b"h-zm": {b"a": b"bb"},
    }


def test_empty_collections_are_skipped_and_counted() -> None:
    data = rdb(
        rkey(1, b"l", rlen(0)),
        rkey(2, b"s", rlen(0)),
        rkey(4, b"h", rlen(0)),
        rkey(16, b"hl", rstr(make_listpack([]))),
        rkey(18, b"ql", rlen(1) + rlen(2) + rstr(make_listpack([]))),
        rkey(0, b"empty-string-is-a-value", rstr(b"")),
    )
    reader = RDBReader()
    reader.feed(data)
    assert [e.key for e in keys(reader.next_events())] == [b"empty-string-is-a-value"]
    assert reader.skipped_empty_keys == 5
    assert decode_value(1, rlen(0)) == []  # decode_value returns what is there


def test_module_value_and_module_aux_are_kept_raw() -> None:
    mid = module_id("test__rdb", 1)
    assert module_name(mid) == "test__rdb"
    packed = lzf.compress(b"z" * 300)
    stream = (
        rlen(2) + rlen(7)  # UINT
        + rlen(1) + rlen(300)  # SINT
        + rlen(3) + struct.pack("<f", 1.5)  # FLOAT
        + rlen(4) + struct.pack("<d", 2.5)  # DOUBLE
        + rlen(5) + rstr(b"abc")  # STRING
        + rlen(5) + b"\xc3" + rlen(len(packed)) + rlen(300) + packed  # LZF STRING
        + rlen(0)
    )  # fmt: skip
    aux_raw = rlen(2) + rlen(1) + rlen(2) + rlen(9) + rlen(0)
    data = rdb(
        b"\xf7" + rlen(mid) + aux_raw,
        rkey(7, b"mod", rlen(mid) + stream),
    )
    events = parse(data)
    assert ModuleAux(mid, "test__rdb", 1, aux_raw) in events
    (entry,) = keys(events)
    assert entry.value == ModuleValue(mid, "test__rdb", 1, stream)
    with pytest.raises(RDBUnsupportedError, match="type 6"):
        parse(rdb(rkey(6, b"m", rlen(mid) + stream)))
    with pytest.raises(RDBError, match="unknown module opcode 9"):
        parse(rdb(rkey(7, b"m", rlen(mid) + rlen(9) + rlen(0))))
    with pytest.raises(RDBError, match="not 2"):
        parse(rdb(b"\xf7" + rlen(mid) + rlen(1) + rlen(1) + rlen(0)))


def test_functions_ga_and_70_release_candidate() -> None:
    code = b"#!lua name=lib\nredis.register_function('f', function() return 1 end)"
    events = parse(
        rdb(
            b"\xf5" + rstr(code),
            b"\xf6" + rstr(b"lib") + rstr(b"LUA") + rlen(1) + rstr(b"a desc") + rstr(b"return 1"),
            b"\xf6" + rstr(b"lib2") + rstr(b"LUA") + rlen(0) + rstr(b"return 2"),
            version=10,
        )
    )
    assert [e for e in events if isinstance(e, Function)] == [
        Function(code),
        Function(b"return 1", b"lib", b"LUA", b"a desc"),
        Function(b"return 2", b"lib2", b"LUA", None),
    ]


def test_redis_74_hash_field_ttl_types() -> None:
    min_expire = 1_900_000_000_000
    # 24: minExpire, then (ttl relative to minExpire + 1 or 0, field, value) per field.
    meta = (
        struct.pack("<Q", min_expire)
        + rlen(2)
        + rlen(0)
        + rstr(b"a")
        + rstr(b"1")
        + rlen(6)
        + rstr(b"b")
        + rstr(b"2")
    )
    lp_ex = struct.pack("<Q", min_expire) + rstr(
        make_listpack([b"a", b"1", 0, b"b", 2, min_expire + 5])
    )
    pre_ga = rlen(1) + rlen(min_expire + 9) + rstr(b"c") + rstr(b"3")
    no_ttl = struct.pack("<Q", 0) + rlen(1) + rlen(0) + rstr(b"d") + rstr(b"4")
    data = rdb(
        rkey(24, b"meta", meta),
        rkey(25, b"lpex", lp_ex),
        rkey(22, b"pre22", pre_ga),
        rkey(23, b"pre23", rstr(make_listpack([b"c", b"3", min_expire + 9]))),
        rkey(24, b"plain", no_ttl),
        version=12,
    )
    v = {e.key: e.value for e in keys(parse(data))}
    assert v[b"meta"] == HashValue({b"a": b"1", b"b": b"2"}, expires={b"b": min_expire + 5})
    assert v[b"lpex"] == HashValue({b"a": b"1", b"b": b"2"}, expires={b"b": min_expire + 5})
    assert v[b"pre22"] == HashValue({b"c": b"3"}, expires={b"c": min_expire + 9})
    assert v[b"pre23"] == v[b"pre22"]
    assert type(v[b"plain"]) is dict and v[b"plain"] == {b"d": b"4"}


def test_valkey_9_hash_with_field_ttls() -> None:
    hash2 = (
        rlen(2)
        + rstr(b"f")
        + rstr(b"v")
        + struct.pack("<q", -1)
        + rstr(b"g")
        + rstr(b"w")
        + struct.pack("<q", 1_900_000_000_000)
    )
    reader = RDBReader()
    reader.feed(rdb(rkey(22, b"h", hash2), version=80, magic=b"VALKEY"))
    reader.feed_eof()
    events = reader.next_events()
    assert events[0] == Header(b"VALKEY", 80)
    assert reader.valkey and reader.version == 80
    (entry,) = keys(events)
    assert entry.value == HashValue({b"f": b"v", b"g": b"w"}, expires={b"g": 1_900_000_000_000})
    assert decode_value(22, hash2, rdb_version=80, valkey=True) == entry.value


def test_dialect_of_the_colliding_type_numbers() -> None:
    with pytest.raises(RDBUnsupportedError, match="object type 22 in a RDB version 11"):
        parse(rdb(rkey(22, b"h", rlen(0))))
    with pytest.raises(RDBUnsupportedError, match="object type 24 in a VALKEY080"):
        parse(rdb(rkey(24, b"h", rlen(0)), version=80, magic=b"VALKEY"))
    with pytest.raises(RDBUnsupportedError, match="opcode 243"):
        parse(rdb(b"\xf3" + rlen(0), version=12))
    with pytest.raises(RDBUnsupportedError, match="object type 26"):
        parse(rdb(rkey(26, b"x", rlen(0)), version=12))


@pytest.mark.parametrize(
    ("head", "cls", "words"),
    [
        (b"REDIS0014", RDBUnsupportedError, "RDB version 14"),
        (b"REDIS0015", RDBUnsupportedError, "RDB version 15"),
        (b"REDIS0000", RDBUnsupportedError, "RDB version 0"),
        (b"VALKEY079", RDBUnsupportedError, "Valkey RDB version 79"),
        (b"REDIS00x1", RDBError, "not a number"),
        (b"HELLO0011", RDBError, "not an RDB file"),
    ],
)
def test_header_refusals(head: bytes, cls: type[RDBError], words: str) -> None:
    with pytest.raises(cls, match=words) as info:
        parse(head + b"\xff" + bytes(8))
    assert info.value.offset is not None


def test_corruption_is_reported_with_the_key_and_offset() -> None:
    good = rkey(0, b"ok", rstr(b"v"))
    bad = rkey(16, b"broken", rstr(b"\x10\x00\x00\x00\x01\x00\x81a\x02\xff"))
    data = rdb(good, bad)
    with pytest.raises(RDBError, match="broken") as info:
        parse(data)
    assert info.value.offset == data.index(b"broken") + 6


@pytest.mark.parametrize(
    ("record", "words"),
    [
        (rkey(2, b"s", rlen(2) + rstr(b"a") + rstr(b"a")), "duplicate set members"),
        (
            rkey(4, b"h", rlen(2) + rstr(b"a") + rstr(b"1") + rstr(b"a") + rstr(b"2")),
            "duplicate hash fields",
        ),
        (rkey(5, b"z", rlen(1) + rstr(b"a") + struct.pack("<d", float("nan"))), "NaN"),
        (rkey(3, b"z", rlen(1) + rstr(b"a") + b"\x03abc"), "invalid zset score"),
        (rkey(13, b"h", rstr(make_ziplist([b"a", b"1", b"b"]))), "odd number"),
        (rkey(18, b"l", rlen(1) + rlen(3) + rstr(b"x")), "container 3"),
        (rkey(0, b"k", b"\xc7"), "invalid string encoding"),
        (rkey(1, b"k", b"\xc0"), "invalid length encoding"),
        (b"\x08" + rstr(b"k"), "object type 8"),
    ],
)
def test_malformed_values_are_errors(record: bytes, words: str) -> None:
    with pytest.raises(RDBError, match=words):
        parse(rdb(record))


def _stream(groups: bytes, entries: bytes = rlen(0), meta: bytes = rlen(0) * 3) -> bytes:
    return entries + meta + groups


def test_stream_pel_consistency_is_checked() -> None:
    group = rstr(b"g") + rlen(1) + rlen(1)  # name, last_id 1-1
    pel = rlen(1) + struct.pack(">QQ", 1, 1) + struct.pack("<q", 1000) + rlen(2)
    consumer = rstr(b"c") + struct.pack("<q", 2000) + rlen(1) + struct.pack(">QQ", 1, 1)
    ok = _stream(rlen(1) + group + pel + rlen(1) + consumer)
    (entry,) = keys(parse(rdb(rkey(15, b"s", ok), version=9)))
    s = entry.value
    assert isinstance(s, StreamValue)
    (g,) = s.groups
    assert g.pel[(1, 1)].delivery_count == 2 and g.consumers[0].pending == [(1, 1)]
    stray = rstr(b"c") + struct.pack("<q", 2000) + rlen(1) + struct.pack(">QQ", 9, 9)
    with pytest.raises(RDBError, match="not in the PEL"):
        parse(rdb(rkey(15, b"s", _stream(rlen(1) + group + pel + rlen(1) + stray)), version=9))
    with pytest.raises(RDBError, match="no listpacks"):
        parse(rdb(rkey(15, b"s", _stream(rlen(0), meta=rlen(3) + rlen(0) + rlen(0))), version=9))


def test_stream_listpack_entries_samefields_and_deleted() -> None:
    # master entry: count 2, deleted 1, 2 fields (a, b), 0; then entries (flags, ms, seq, ...)
    lp = make_listpack(
        [2, 1, 2, b"a", b"b", 0,
         2, 0, 0, b"1", b"2", 5,  # SAMEFIELDS
         3, 1, 0, b"x", b"y", 5,  # deleted + SAMEFIELDS
         0, 2, 0, 1, b"c", 7, 6]  # own field list: 1 field (c=7)
    )  # fmt: skip
    entries = rlen(1) + rstr(struct.pack(">QQ", 100, 0)) + rstr(lp)
    meta = rlen(2) + rlen(102) + rlen(0)
    (entry,) = keys(parse(rdb(rkey(15, b"s", _stream(rlen(0), entries, meta)), version=9)))
    s = entry.value
    assert isinstance(s, StreamValue)
    assert s.entries == {(100, 0): [(b"a", b"1"), (b"b", b"2")], (102, 0): [(b"c", b"7")]}
    assert (s.first_id, s.entries_added, s.max_deleted_id) == ((100, 0), 2, (0, 0))


# ---- errors, truncation, end of the RDB ----


def test_every_truncation_is_reported_as_truncated() -> None:
    data = rdb(
        b"\xfa" + rstr(b"redis-ver") + rstr(b"7.0.0"),
        rkey(0, b"k", rstr(b"v" * 100)),
        rkey(14, b"l", rlen(1) + rstr(make_ziplist([b"a", b"b"]))),
        b"\xfc" + struct.pack("<q", 5) + rkey(4, b"h", rlen(1) + rstr(b"f") + rstr(b"v")),
    )
    for n in range(len(data)):
        reader = RDBReader()
        reader.feed(data[:n])
        with pytest.raises(RDBError, match="truncated") as info:
            reader.feed_eof()
        assert info.value.offset is not None and info.value.offset <= n


def test_events_before_an_error_are_still_delivered() -> None:
    data = rdb(rkey(0, b"a", rstr(b"1")), rkey(0, b"b", rstr(b"2")), b"\x08")
    reader = RDBReader()
    with pytest.raises(RDBUnsupportedError):
        reader.feed(data)
    assert [e.key for e in keys(reader.next_events())] == [b"a", b"b"]
    with pytest.raises(RDBUnsupportedError):
        reader.next_events()
    with pytest.raises(RDBUnsupportedError):
        reader.feed(b"more")


def test_bytes_after_the_checksum_are_unused_data() -> None:
    data = rdb(rkey(0, b"k", rstr(b"v")))
    mark = b"0123456789" * 4  # a diskless transfer's EOF mark
    reader = RDBReader()
    reader.feed(data + mark[:15])
    reader.feed(mark[15:])
    assert isinstance(reader.next_events()[-1], End)
    assert reader.done and reader.offset == len(data)
    assert reader.unused_data == mark
    reader.feed_eof()  # nothing to do after End


def test_checksum_variants() -> None:
    data = bytearray(rdb(rkey(0, b"k", rstr(b"v"))))
    reader = RDBReader()
    reader.feed(bytes(data))
    assert reader.computed_checksum == int.from_bytes(data[-8:], "little")
    data[-1] ^= 1
    with pytest.raises(RDBChecksumError) as info:
        parse(bytes(data))
    assert info.value.offset == len(data) - 8
    assert isinstance(parse(bytes(data), verify_checksum=False)[-1], End)
    disabled = rdb(rkey(0, b"k", rstr(b"v")), crc=False)
    assert parse(disabled)[-1] == End(0)
    old = rdb(rkey(0, b"k", rstr(b"v")), version=4)
    assert parse(old)[-1] == End(None)


def test_offset_counts_consumed_bytes() -> None:
    data = rdb(rkey(0, b"k", rstr(b"v" * 50)))
    reader = RDBReader()
    reader.feed(data[:20])
    assert reader.offset == 9  # the header; the key record is not complete yet
    reader.feed(data[20:])
    assert reader.offset == len(data)


def test_decode_value_for_dump_payloads() -> None:
    assert decode_value(0, rstr(b"hello")) == b"hello"
    assert decode_value_prefix(0, rstr(b"hello") + b"rest") == (b"hello", 6)
    with pytest.raises(RDBError, match="unexpected bytes"):
        decode_value(0, rstr(b"hello") + b"rest")
    with pytest.raises(RDBError, match="truncated"):
        decode_value(1, rlen(3) + rstr(b"a"))
    with pytest.raises(RDBUnsupportedError, match="object type 99"):
        decode_value(99, b"")
    with pytest.raises(RDBUnsupportedError, match="object type 22 in a RDB version 11"):
        decode_value(22, rlen(0), rdb_version=11)


# ---- chunking and streaming cost ----

CHUNKED = [
    "librdb/stream_v11.rdb",
    "librdb/misc_with_stream.rdb",
    "librdb/module_aux_v12.rdb",
    "librdb/function2.rdb",
    "librdb/hash_lp_with_hexpire_v12.rdb",
    "librdb/quicklist2_v11.rdb",
    "librdb/100_lists.rdb",
    "rdbtools/redis_40_with_module.rdb",
    "rdbtools/zipmap_with_big_values.rdb",
    "rdbtools/regular_sorted_set.rdb",
    "rdbtools/non_ascii_values.rdb",
    "valkey/encodings.rdb",
    "valkey/corrupt_empty_keys.rdb",
]


@pytest.mark.parametrize("name", CHUNKED)
def test_any_chunking_gives_the_same_events(shared_rdb: Path, name: str) -> None:
    data = (shared_rdb / name).read_bytes()
    whole, reader = feed_in_chunks(data, len(data))
    rng = random.Random(name)
    for sizes in ([1] * len(data), [rng.randint(1, 700) for _ in range(len(data))]):
        events, chunked = feed_in_chunks(data, sizes)
        assert events == whole
        assert chunked.unused_data == reader.unused_data
        assert chunked.skipped_empty_keys == reader.skipped_empty_keys


def test_chunked_errors_match_whole_file_errors(shared_rdb: Path) -> None:
    for name in ("valkey/corrupt_ziplist.rdb", "librdb/invalid_chksum_v8.rdb"):
        data = (shared_rdb / name).read_bytes()
        messages = set()
        for size in (len(data), 1, 7, 100):
            with pytest.raises(RDBError) as info:
                feed_in_chunks(data, size)
            messages.add(str(info.value))
        assert len(messages) == 1


def count_decoded(reader: RDBReader) -> list[int]:
    """Counts the bytes `reader` hands its record decoder (`[bytes, calls]`, kept up to date):
    the work of decoding, whatever the machine's speed."""
    counts = [0, 0]
    decode = reader._run

    def counting(buf: bytes, after_scan: bool = False) -> None:
        counts[0] += len(buf)
        counts[1] += 1
        decode(buf, after_scan)

    reader._run = counting  # type: ignore[method-assign]
    return counts


def test_a_huge_record_fed_in_tiny_chunks_stays_linear() -> None:
    """The work is counted, not timed (benchmarks/rdb_chunked.py times it): re-decoding the
    600 KB list from its start at every 5-byte chunk would hand the decoder ~36 GB."""
    n = 60_000
    big_list = rkey(1, b"big", rlen(n) + b"".join(rstr(b"%08d" % i) for i in range(n)))
    big_string = rkey(0, b"s", rstr(b"x" * 3_000_000))
    data = rdb(big_list, big_string)
    reader = RDBReader()
    decoded = count_decoded(reader)
    events, _ = feed_in_chunks(data, [5] * 110_000 + [1000] * 3000, reader)
    lst, s = keys(events)
    assert isinstance(lst.value, list)
    assert len(lst.value) == n and lst.value[-1] == b"%08d" % (n - 1)
    assert s.value == b"x" * 3_000_000
    # Each byte is decoded about once (the scanner waits for whole records; retrying a cut
    # record only once the buffered bytes double would cost at most 4x): linear.
    assert decoded[0] <= 4 * len(data) and decoded[1] < 100, decoded


def test_memory_stays_bounded_while_streaming() -> None:
    """Peak memory under tracemalloc, which makes each allocation ~6x slower: 25,000 records of
    175 bytes (a 4.3 MB file) against a bound of a quarter of the file. Holding the file, or
    its events, breaks the bound; so does keeping any new object per record (25,000 of them
    at 40 bytes or more)."""
    records = b"".join(rkey(0, b"key:%07d" % i, rstr(b"%07d:" % i * 20)) for i in range(25_000))
    data = rdb(records)
    reader = RDBReader()
    tracemalloc.start()
    try:
        for i in range(0, len(data), 65536):
            reader.feed(data[i : i + 65536])
            reader.next_events()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reader.done
    assert len(data) > 4_000_000
    assert peak < 1_000_000  # a few chunks and their events, never the whole file


# ---- fuzz: never anything but RDBError, never a hang ----

_FUZZ_BASES = [
    "librdb/stream_v11.rdb",
    "librdb/misc_with_stream.rdb",
    "librdb/module_aux_v12.rdb",
    "librdb/hash_lp_with_hexpire_v12.rdb",
    "librdb/zset_lp_v11.rdb",
    "rdbtools/redis_50_with_streams.rdb",
    "valkey/encodings.rdb",
]


def _fixture_bytes(name: str) -> bytes:
    path = SHARED_RDB / name
    if path.exists():
        return path.read_bytes()
    return rdb(rkey(0, b"k", rstr(b"v")), rkey(14, b"l", rlen(1) + rstr(make_ziplist([b"a", 1]))))


def _parse_allowing_errors(data: bytes, chunk: int = 0) -> None:
    reader = RDBReader()
    with contextlib.suppress(RDBError):
        if chunk:
            for i in range(0, len(data), chunk):
                reader.feed(data[i : i + chunk])
                reader.next_events()
        else:
            reader.feed(data)
        reader.feed_eof()
        reader.next_events()


@pytest.mark.timeout(120)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=400),
    st.sampled_from([b"REDIS0009", b"REDIS0011", b"REDIS0012", b"VALKEY080", b""]),
)
def test_random_bytes_only_raise_rdberror(body: bytes, head: bytes) -> None:
    _parse_allowing_errors(head + body)
    with contextlib.suppress(RDBError):
        decode_value_prefix(body[0] if body else 0, body[1:])


@pytest.mark.timeout(120)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_FUZZ_BASES), st.data())
def test_bit_flips_and_truncations_only_raise_rdberror(name: str, data: st.DataObject) -> None:
    original = _fixture_bytes(name)
    broken = bytearray(original)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(broken) - 1))
        broken[i] ^= 1 << data.draw(st.integers(0, 7))
    cut = data.draw(st.integers(0, len(broken)))
    chunk = data.draw(st.sampled_from([0, 1, 13]))
    _parse_allowing_errors(bytes(broken), chunk)
    _parse_allowing_errors(bytes(broken[:cut]), chunk)


# ---- files written by real servers ----


def _populate(server: RedisServer) -> None:
    kind = server.kind
    c = server.client()
    c.config_set("list-compress-depth", 1)
    with contextlib.suppress(Exception):  # Redis 7.0+: elements this big become PLAIN nodes
        c.execute_command("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "10000")
    c.set("s:int", 123456)
    c.set("s:neg", -42)
    c.set("s:raw", "hello world")
    c.set("s:empty", "")
    c.set("s:bin", bytes(range(256)))
    c.set("s:lzf", "abcdefgh" * 4000)
    c.set("s:big-int-like", "12345678901234567890")
    c.rpush("l:small", "a", "b", 1, -2, 2**40)
    c.rpush("l:big", *[b"elem-%06d-" % i + b"x" * 80 for i in range(3000)])
    c.rpush("l:plain", "head", b"P" * 20_000, "tail")
    c.sadd("set:ints", *range(-5, 20))
    c.sadd("set:small", "a", "b", "c")
    c.sadd("set:big", *[f"member-{i}" for i in range(600)])
    c.zadd("z:small", {"a": 1.5, "b": -2.25, "inf": float("inf"), "ninf": float("-inf"), "zero": 0})
    c.zadd(
        "z:big",
        {f"m{i}": i / 7 for i in range(300)} | {"top": float("inf"), "bottom": float("-inf")},
    )
    c.hset("h:small", mapping={"f1": "v1", "n": 12, "neg": -1})
    c.hset("h:big", mapping={f"field-{i}": f"value-{i}" * 3 for i in range(600)})
    c.hset("h:longval", mapping={"f": "v" * 1000})
    for i in range(40):
        c.xadd("st:main", {"n": i, "kind": "same"}, id=f"{1000 + i}-0")
    c.xadd("st:main", {"other": "fields", "x": 1}, id="2000-5")
    c.xdel("st:main", "1003-0", "1010-0")
    c.xgroup_create("st:main", "g1", id="0")
    c.xgroup_create("st:main", "g2", id="1020-0")
    c.xreadgroup("g1", "alice", {"st:main": ">"}, count=5)
    c.xreadgroup("g1", "bob", {"st:main": ">"}, count=3)
    c.xack("st:main", "g1", "1001-0")
    c.xreadgroup("g2", "carol", {"st:main": ">"}, count=2)
    c.xadd("st:emptied", {"a": 1}, id="5-5")
    c.xdel("st:emptied", "5-5")
    c.pexpire("s:raw", 3_600_000)
    c.pexpire("h:small", 7_200_000)
    c.expire("l:small", 100_000)
    with server.client(db=3) as c3:
        c3.set("in-db-3", "yes")
        c3.rpush("list-in-db-3", "x")
    if kind.major >= 7:
        c.function_load(
            "#!lua name=mylib\nredis.register_function('myfunc', function(k, a) return 1 end)"
        )


def test_reads_what_a_real_server_saved(master: RedisServer) -> None:
    _populate(master)
    c = master.client()
    c.save()
    path = master.dir / "dump.rdb"
    events = list(read_file(path))
    assert isinstance(events[0], Header) and isinstance(events[-1], End)
    entries = keys(events)
    now_ms = int(time.time() * 1000)
    assert_matches_server(entries, served_keyspace(master), now_ms)
    by_key = {e.key: e for e in entries}
    assert by_key[b"s:bin"].value == bytes(range(256))
    assert by_key[b"l:plain"].value[1] == b"P" * 20_000  # type: ignore[index]
    assert {e.rdb_type for e in entries if e.key.startswith(b"st:")} <= {15, 19, 21}
    emptied = by_key[b"st:emptied"].value
    assert isinstance(emptied, StreamValue) and emptied.length == 0 and emptied.last_id == (5, 5)
    if master.kind.major >= 7:
        (fn,) = [e for e in events if isinstance(e, Function)]
        (lib,) = c.function_list(withcode=True)
        fields = dict(zip(lib[0::2], lib[1::2]))  # RESP2: a flat field/value list
        assert fn.code == fields[b"library_code"]
    # The same file read in odd chunk sizes gives the same events.
    data = path.read_bytes()
    assert feed_in_chunks(data, 4093)[0] == events


def test_parses_a_big_server_snapshot(server_kind: ServerKind, tmp_path: Path) -> None:
    """Every key of a 100k-key snapshot. How fast: benchmarks/rdb_load.py (against rdbtools
    and redis-server) and benchmarks/rdb_chunked.py, not a timing here."""
    server = start_server(server_kind, dir=tmp_path)
    try:
        c = server.client()
        c.execute_command("DEBUG", "POPULATE", 100_000, "key", 16)
        c.save()
    finally:
        server.stop()
    entries = [e for e in read_file(tmp_path / "dump.rdb") if isinstance(e, KeyEntry)]
    assert len(entries) == 100_000
    assert {e.key for e in entries} == {b"key:%d" % i for i in range(100_000)}
