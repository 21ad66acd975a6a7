"""The RDB writer's bytes: encoders, encoding choice per target version, file framing.

The strongest checks here run against real servers: with `rdbcompression no`, a server's own
DUMP of a value and `dump_payload` of the same value are byte-for-byte identical (listpack,
ziplist, intset and quicklist layouts, stream listpack nodes with their master entries and
delta-encoded ids, consumer groups, CRC64), which pins the writer to Redis's real layout
rather than to our own reading of it.
"""

from __future__ import annotations

import importlib.util
import io
import math
import os
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import lzf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replproxy.rdb import encode as enc
from replproxy.rdb.dump import dump_payload
from replproxy.rdb.model import (
    Function,
    HashValue,
    KeyEntry,
    ModuleAux,
    ModuleValue,
    SelectDB,
    SlotInfo,
    StreamValue,
    Value,
    ZSetValue,
)
from replproxy.rdb.writer import (
    CRC64,
    RDBEncodeError,
    RDBWriter,
    Target,
    encode_object,
    stream_listpacks,
    write_rdb,
)
from tests.conftest import KINDS
from tests.harness.servers import RedisServer, start_server
from tests.test_rdb_roundtrip import native_version, raw, read_stream

HAVE_ENCODINGS = importlib.util.find_spec("replproxy.rdb.encodings") is not None


# ---- encoders ----


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "00"),
        (63, "3f"),
        (64, "4040"),
        (16383, "7fff"),
        (16384, "8000004000"),
        (2**32 - 1, "80ffffffff"),
        (2**32, "810000000100000000"),
        (2**64 - 1, "81ffffffffffffffff"),
    ],
)
def test_rdb_length_uses_the_shortest_form(n: int, expected: str) -> None:
    assert enc.rdb_length(n).hex() == expected


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        (b"0", "c000"),
        (b"-128", "c080"),
        (b"127", "c07f"),
        (b"128", "c18000"),
        (b"-32768", "c10080"),
        (b"32768", "c200800000"),
        (b"2147483647", "c2ffffff7f"),
        (b"-2147483648", "c200000080"),  # 11 characters: still tried
    ],
)
def test_canonical_int32_strings_are_stored_as_integers(s: bytes, expected: str) -> None:
    assert enc.rdb_string(s).hex() == expected


@pytest.mark.parametrize(
    "s",
    [
        b"2147483648",
        b"-2147483649",
        b"12345678901",
        b"007",
        b"-0",
        b"+1",
        b" 1",
        b"1 ",
        b"",
        b"0x1",
        b"1.0",
        b"-",
        b"9223372036854775807",
    ],
)
def test_other_strings_stay_strings(s: bytes) -> None:
    assert enc.rdb_string(s) == enc.rdb_length(len(s)) + s


def test_lzf_only_above_20_bytes_and_when_it_saves_4() -> None:
    assert enc.rdb_string(b"a" * 20) == b"\x14" + b"a" * 20
    packed = enc.rdb_string(b"a" * 21)
    assert packed[0] == 0xC3
    assert enc.rdb_string(b"a" * 21, compress=False) == b"\x15" + b"a" * 21
    noise = os.urandom(200)
    assert enc.rdb_string(noise) == enc.rdb_length(200) + noise


@settings(max_examples=200)
@given(st.one_of(st.binary(min_size=21, max_size=300), st.binary(max_size=8).map(lambda b: b * 40)))
def test_lzf_strings_decompress_and_save_at_least_4_bytes(s: bytes) -> None:
    out = enc.rdb_string(s)
    if out[0] == 0xC3:
        # c3, clen, ulen (each a 1/2-byte length here), then clen bytes
        rest = out[1:]
        clen, rest = _len(rest)
        ulen, rest = _len(rest)
        assert ulen == len(s) and clen == len(rest) and clen <= len(s) - 4
        assert lzf.decompress(rest, ulen) == s
    else:
        assert out == enc.rdb_length(len(s)) + s


def _len(b: bytes) -> tuple[int, bytes]:
    if b[0] < 0x40:
        return b[0], b[1:]
    if b[0] < 0x80:
        return ((b[0] & 0x3F) << 8) | b[1], b[2:]
    return struct.unpack(">I", b[1:5])[0], b[5:]


@pytest.mark.parametrize(
    ("e", "expected"),
    [
        (b"0", "0001"),
        (b"127", "7f01"),
        (b"128", "c08002"),
        (b"-1", "dfff02"),
        (b"-4096", "d00002"),
        (b"4096", "f1001003"),
        (b"-32769", "f2ff7fff04"),
        (b"8388608", "f30000800005"),
        (b"2147483648", "f4000000800000000009"),
        (b"9223372036854775807", "f4ffffffffffffff7f09"),
        (b"9223372036854775808", "93" + b"9223372036854775808".hex() + "14"),
        (b"-0", "822d3003"),
        (b"007", "8330303704"),
        (b"", "8001"),
        (255, "c0ff02"),
    ],
)
def test_listpack_entries_use_lpStringToInt64_and_the_smallest_integer(
    e: bytes | int, expected: str
) -> None:
    assert enc.lp_entry(e).hex() == expected


def test_listpack_string_lengths_and_backlen() -> None:
    e63, e64 = enc.lp_entry(b"x" * 63), enc.lp_entry(b"x" * 64)
    assert e63[0] == 0x80 | 63 and e63[-1] == 64
    assert e64[:2] == b"\xe0\x40" and e64[-1] == 66
    e200 = enc.lp_entry(b"z" * 200)
    assert e200[-2:] == bytes((202 >> 7, (202 & 127) | 128))
    e4096 = enc.lp_entry(b"y" * 4096)
    assert e4096[:5] == b"\xf0" + struct.pack("<I", 4096)
    lp = enc.listpack([b"a", 1])
    assert struct.unpack_from("<IH", lp) == (len(lp), 2) and lp[-1] == 0xFF
    many = enc.listpack([1] * 70000)
    assert struct.unpack_from("<IH", many) == (len(many), 65535)


def test_ziplist_layout() -> None:
    big = b"b" * 300
    zl = enc.ziplist([b"5", big, b"x", b"-100000", b"1" * 31, b"70000", b"12", b"13"])
    zlbytes, zltail, zllen = struct.unpack_from("<IIH", zl)
    assert zlbytes == len(zl) and zllen == 8 and zl[-1] == 0xFF
    assert zl[10:12] == b"\x00\xf6"  # immediate 5
    assert zl[12:15] == b"\x02\x41\x2c"  # prevlen 2, 14-bit big-endian length 300
    after_big = 12 + 3 + 300
    assert zl[after_big : after_big + 5] == b"\xfe" + struct.pack("<I", 303)  # 5-byte prevlen
    assert enc.zl_body(b"-100000") == b"\xf0" + (-100000 & 0xFFFFFF).to_bytes(3, "little")
    assert enc.zl_body(b"1" * 31)[0] == 31  # 31 digits overflow int64: a string
    assert enc.zl_body(b"70000")[0] == 0xF0 and enc.zl_body(b"13") == b"\xfe\x0d"
    last = zl[zltail:-1]
    assert last[1:] == b"\xfe\x0d"
    assert enc.ziplist([]) == struct.pack("<IIH", 11, 10, 0) + b"\xff"


@pytest.mark.skipif(not HAVE_ENCODINGS, reason="replproxy.rdb.encodings not present")
@settings(max_examples=100)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.integers(-(2**63), 2**63 - 1).map(lambda i: str(i).encode()),
            st.sampled_from([b"-0", b"007", b"+3", b"12", b"13"]),
        ),
        max_size=50,
    )
)
def test_listpack_and_ziplist_decode_to_the_same_strings(items: list[bytes]) -> None:
    from replproxy.rdb.encodings import listpack_strings, ziplist_strings

    assert listpack_strings(enc.listpack(items)) == items
    assert ziplist_strings(enc.ziplist(items)) == items


@pytest.mark.parametrize(
    ("values", "width"), [([3, 1, 2, 2], 2), ([-32768, 32767], 2), ([70000], 4), ([-(2**40)], 8)]
)
def test_intset_picks_the_narrowest_width_and_sorts(values: list[int], width: int) -> None:
    blob = enc.intset(values)
    ordered = sorted(set(values))
    fmt = {2: "h", 4: "i", 8: "q"}[width]
    assert blob == struct.pack(f"<II{len(ordered)}{fmt}", width, len(ordered), *ordered)


@settings(max_examples=300)
@given(st.floats())
def test_score_text_reads_back_as_the_same_double(x: float) -> None:
    text = enc.format_double(x)
    back = float(text)
    assert (math.isnan(x) and math.isnan(back)) or (
        back == x and math.copysign(1, back) == math.copysign(1, x)
    )


def test_score_text_matches_redis_d2string_for_integral_scores() -> None:
    assert enc.format_double(3.0) == b"3"
    assert enc.format_double(-0.0) == b"-0"
    assert enc.format_double(2.0**62) == b"4611686018427387904"
    assert enc.format_double(2.0**62 + 1024) == repr(2.0**62 + 1024).encode()
    assert enc.rdb_string_double(float("inf")) == b"\xfe"
    assert enc.rdb_string_double(float("-inf")) == b"\xff"
    assert enc.rdb_string_double(float("nan")) == b"\xfd"
    assert enc.rdb_string_double(1.5) == b"\x031.5"


# ---- encoding choice per target version ----

SMALL_HASH = {b"f": b"v", b"n": b"1"}
ENCODING_TABLE = [
    # (value, {version: expected type})
    (b"x", {7: 0, 9: 0, 10: 0, 11: 0, 12: 0}),
    ([b"a", b"b"], {7: 14, 9: 14, 10: 18, 11: 18, 12: 18}),
    ({b"1", b"-2"}, {9: 11, 10: 11, 11: 11}),
    ({b"a", b"b"}, {9: 2, 10: 2, 11: 20, 12: 20}),
    ({b"x" * 65, b"b"}, {11: 2}),
    ({str(i).encode() for i in range(513)}, {9: 2, 11: 2}),
    ({str(i).encode() for i in range(129)} | {b"a"}, {11: 2}),
    ({b"007"}, {10: 2, 11: 20}),
    (ZSetValue({b"a": 1.0}), {7: 12, 9: 12, 10: 17, 12: 17}),
    (ZSetValue({b"a" * 65: 1.0}), {7: 3, 8: 5, 9: 5, 10: 5}),
    (ZSetValue({b"m%d" % i: i for i in range(129)}), {10: 5}),
    (SMALL_HASH, {7: 13, 9: 13, 10: 16, 12: 16}),
    ({b"f": b"v" * 65}, {9: 4, 10: 4}),
    ({b"f%d" % i: b"v" for i in range(129)}, {9: 4, 11: 4}),
    (HashValue(SMALL_HASH, expires={}), {10: 16}),
    (StreamValue(), {9: 15, 10: 19, 11: 21, 12: 21}),
]


@pytest.mark.parametrize(("value", "by_version"), ENCODING_TABLE, ids=lambda v: type(v).__name__)
def test_encoding_choice_per_version(value: object, by_version: dict[int, int]) -> None:
    for version, expected in by_version.items():
        rdb_type, _ = encode_object(value, Target(version))  # type: ignore[arg-type]
        assert rdb_type == expected, version


def test_valkey_dialect_versions() -> None:
    assert encode_object(StreamValue(), Target(80, valkey=True))[0] == 21
    assert Target(80, valkey=True).magic == b"VALKEY080"
    assert Target(11, valkey=True).magic == b"REDIS0011"


@pytest.mark.parametrize(
    ("version", "valkey"), [(6, False), (14, False), (80, False), (12, True), (79, True), (9, True)]
)
def test_unsupported_target_versions_are_refused_clearly(version: int, valkey: bool) -> None:
    with pytest.raises(RDBEncodeError, match=f"unsupported target version {version}"):
        RDBWriter(version, valkey)


def test_values_an_old_target_cannot_hold_raise_with_the_key_named() -> None:
    w = RDBWriter(8)
    w.header()
    with pytest.raises(
        RDBEncodeError, match=r"key b'st'.*stream cannot be represented in Redis RDB version 8"
    ):
        w.key(KeyEntry(0, b"st", StreamValue()))
    w7 = RDBWriter(7)
    w7.header()
    with pytest.raises(RDBEncodeError, match="module value"):
        w7.key(KeyEntry(0, b"m", ModuleValue(1 << 10, "x", 0, b"\x00")))
    with pytest.raises(RDBEncodeError, match="NaN"):
        encode_object(ZSetValue({b"a": math.nan}), Target(10))


def test_hash_field_ttls_per_target() -> None:
    h = HashValue(
        {b"a": b"1", b"b": b"2", b"c": b"3"},
        expires={b"c": 2_000_000_000_000, b"a": 1_900_000_000_000},
    )
    for version, valkey in [(9, False), (10, False), (11, False), (11, True)]:
        with pytest.raises(RDBEncodeError, match=r"field TTLs.*drop_field_ttls=True"):
            encode_object(h, Target(version, valkey))
    t, body = encode_object(h, Target(11), drop_field_ttls=True)
    assert (t, body) == encode_object(dict(h), Target(11))
    # Redis 7.4 HASH_LISTPACK_EX: minExpire, then triples ordered by TTL, no-TTL fields last
    t, body = encode_object(h, Target(12), compress=False)
    assert t == 25
    assert body[:8] == struct.pack("<Q", 1_900_000_000_000)
    assert body[8:] == enc.rdb_string(
        enc.listpack([b"a", b"1", 1_900_000_000_000, b"c", b"3", 2_000_000_000_000, b"b", b"2", 0]),
        False,
    )
    # big: HASH_METADATA with TTLs relative to minExpire (+1), 0 = none, TTL before the field
    big = HashValue({b"f%d" % i: b"v" for i in range(200)}, expires={b"f1": 1000, b"f2": 1500})
    t, body = encode_object(big, Target(12), compress=False)
    assert t == 24
    assert body.startswith(struct.pack("<Q", 1000) + enc.rdb_length(200))
    assert b"\x00\x02f0\x01v\x01\x02f1\x01v" + enc.rdb_length(501) + b"\x02f2\x01v" in body
    # Valkey 9 HASH_2: field, value, int64 expire (-1 none)
    t, body = encode_object(h, Target(80, valkey=True), compress=False)
    assert t == 22
    assert body == (
        b"\x03"
        + b"\x01a\xc0\x01"
        + struct.pack("<q", 1_900_000_000_000)
        + b"\x01b\xc0\x02"
        + struct.pack("<q", -1)
        + b"\x01c\xc0\x03"
        + struct.pack("<q", 2_000_000_000_000)
    )


def _quicklist_containers(body: bytes) -> list[tuple[int, int]]:
    """(container, element count) per node of a QUICKLIST_2 body written with compress=False."""
    n, rest = _len(body)
    out = []
    for _ in range(n):
        container, rest = _len(rest)
        size, rest = _len(rest)
        blob, rest = rest[:size], rest[size:]
        out.append((container, 1 if container == 1 else struct.unpack_from("<H", blob, 4)[0]))
    assert rest == b""
    return out


def test_large_list_elements_7_0_packed_node_7_2_plain_node() -> None:
    items = [b"a", b"x" * 8192, b"b", b"y" * 8193, b"c"]
    _, v10 = encode_object(items, Target(10), compress=False)
    assert _quicklist_containers(v10) == [(2, 1), (2, 1), (2, 1), (2, 1), (2, 1)]
    _, v11 = encode_object(items, Target(11), compress=False)
    assert _quicklist_containers(v11) == [(2, 1), (2, 1), (2, 1), (1, 1), (2, 1)]
    _, small = encode_object([b"%d" % i for i in range(5000)], Target(11), compress=False)
    nodes = _quicklist_containers(small)
    assert len(nodes) > 1 and sum(c for _, c in nodes) == 5000


# ---- file framing ----


def test_file_framing_header_aux_db_key_prefixes_eof_crc() -> None:
    chunks: list[bytes] = []
    w = RDBWriter(
        10,
        aux={b"ctime": b"1700000000", b"custom": b"x"},
        write=chunks.append,
        repl_id=b"r" * 40,
        repl_offset=77,
        repl_stream_db=0,
    )
    out = w.header()
    assert out.startswith(b"REDIS0010\xfa\x09redis-ver\x067.0.15\xfa\x0aredis-bits\xc0\x40")
    aux_keys = [
        b"redis-ver",
        b"redis-bits",
        b"ctime",
        b"used-mem",
        b"repl-stream-db",
        b"repl-id",
        b"repl-offset",
        b"aof-base",
        b"custom",
    ]
    positions = [out.index(b"\xfa" + enc.rdb_string(k)) for k in aux_keys]
    assert positions == sorted(positions)
    out += w.function(
        Function(b"#!lua name=l\nredis.register_function('f', function() return 1 end)")
    )
    out += w.select_db(2, 5, 1)
    assert out.endswith(b"\xfe\x02\xfb\x05\x01")
    key_bytes = w.key(KeyEntry(2, b"k", b"v", expire_ms=1_700_000_000_123, idle=70, freq=5))
    assert (
        key_bytes
        == b"\xfc" + struct.pack("<q", 1_700_000_000_123) + b"\xf8\x40\x46\xf9\x05\x00\x01k\x01v"
    )
    out += key_bytes
    out += w.key(KeyEntry(3, b"k", b"1"))  # a new db without select_db: SELECTDB is written
    assert out.endswith(b"\xfe\x03\x00\x01k\xc0\x01")
    out += w.end()
    assert out == b"".join(chunks) and w.bytes_written == len(out)
    assert (
        out[-9] == 0xFF and struct.unpack("<Q", out[-8:])[0] == CRC64.calc(out[:-8]) == w.checksum
    )
    with pytest.raises(RuntimeError, match="already ended"):
        w.key(KeyEntry(0, b"k", b"v"))


def test_writer_refuses_records_before_the_header() -> None:
    w = RDBWriter(10)
    with pytest.raises(RuntimeError, match="header"):
        w.key(KeyEntry(0, b"k", b"v"))
    w.header()
    with pytest.raises(RuntimeError, match="already written"):
        w.header()


def test_old_targets_skip_functions_idle_freq_and_slot_info() -> None:
    w = RDBWriter(9)
    w.header()
    assert w.function(Function(b"#!lua name=l\n")) == b"" and w.skipped_functions == 1
    assert w.slot_info(SlotInfo(1, 2, 0)) == b"" and w.skipped_slot_info == 1
    w8 = RDBWriter(8)
    w8.header()
    assert w8.key(KeyEntry(0, b"k", b"v", idle=5, freq=3)) == b"\xfe\x00\x00\x01k\x01v"
    w12 = RDBWriter(12)
    w12.header()
    assert w12.slot_info(SlotInfo(1, 2, 0)) == b"\xf4\x01\x02\x00"


def test_pre_ga_function_records_get_their_shebang() -> None:
    w = RDBWriter(10, compress=False)
    w.header()
    out = w.function(
        Function(b"redis.register_function('f', function() return 1 end)", b"lib", b"LUA", None)
    )
    assert out[0] == 245 and b"#!lua name=lib\nredis.register_function" in out


def test_module_records_are_written_verbatim() -> None:
    w = RDBWriter(10)
    w.header()
    mid = 0x123456789ABCDEF
    assert w.module_aux(ModuleAux(mid, "x", 2, b"\x02\x02\x05\x01a\x00")) == (
        b"\xf7\x81" + struct.pack(">Q", mid) + b"\x02\x02\x05\x01a\x00"
    )
    assert w.key(KeyEntry(0, b"m", ModuleValue(mid, "x", 0, b"\x02\x07\x00"))).endswith(
        b"\x07\x01m\x81" + struct.pack(">Q", mid) + b"\x02\x07\x00"
    )


def test_empty_collections_are_skipped_and_counted() -> None:
    w = RDBWriter(10)
    w.header()
    empties: tuple[Value, ...] = ([], set(), {}, ZSetValue())
    for v in empties:
        assert w.key(KeyEntry(0, b"e", v)) == b""
    assert w.skipped_empty_keys == 4 and w.keys_written == 0
    assert w.key(KeyEntry(0, b"s", StreamValue())) != b""  # an empty stream is a real key


def test_write_rdb_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "dump.rdb"
    target.write_bytes(b"old")

    def events() -> Iterator[object]:
        yield SelectDB(0)
        yield KeyEntry(0, b"a", b"1")
        raise OSError("source went away")

    with pytest.raises(OSError, match="source went away"):
        write_rdb(target, events(), version=10)  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dump.rdb"]
    write_rdb(target, [KeyEntry(0, b"a", b"1")], version=10)
    assert target.read_bytes().startswith(b"REDIS0010")
    buf = io.BytesIO()
    write_rdb(buf, [KeyEntry(0, b"a", b"1")], version=9)
    assert buf.getvalue().startswith(b"REDIS0009")


# ---- byte-for-byte against the servers' own DUMP ----


def _dump_cases(server: RedisServer) -> dict[bytes, object]:
    """Create values on the server; return key -> the same value in the model."""
    c = server.client()
    p = c.pipeline(transaction=False)
    cases: dict[bytes, object] = {}

    def add(key: str, value: object, *cmds: tuple[object, ...]) -> None:
        cases[key.encode()] = value
        for cmd in cmds:
            p.execute_command(*cmd)

    add("s:int", b"12345", ("SET", "s:int", "12345"))
    add("s:big", b"9223372036854775807", ("SET", "s:big", "9223372036854775807"))
    add("s:007", b"007", ("SET", "s:007", "007"))
    add("s:long", b"ab" * 500, ("SET", "s:long", "ab" * 500))
    small = [b"a", b"1", b"-1", b"-0", b"007", b"4294967296", b"x" * 70, b"y" * 5000]
    add("l:small", small, ("RPUSH", "l:small", *small))
    long_list = [b"%d" % i for i in range(3000)] + [b"item-%d" % i for i in range(3000)]
    add("l:long", long_list, ("RPUSH", "l:long", *long_list))
    big = [b"x" * 10000, b"small", b"y" * 8192, b"z" * 8193, b"1", b"tail"]
    add("l:big", big, ("RPUSH", "l:big", *big))
    ints = {b"%d" % i for i in [*range(-20, 20), 2**40, -(2**63)]}
    add("set:ints", ints, ("SADD", "set:ints", *ints))
    add("set:one", {b"solo"}, ("SADD", "set:one", "solo"))
    h = {b"f1": b"v1", b"n": b"123", b"neg": b"-0", b"e": b""}
    add("h:small", h, ("HSET", "h:small", *[x for kv in h.items() for x in kv]))
    z = {
        b"a": 1.0,
        b"b": 1.5,
        b"c": math.inf,
        b"d": -2.25,
        b"e": -math.inf,
        b"f": 3e15,
        b"g": 0.0,
        b"h": 1.0,
    }
    add(
        "z:small",
        ZSetValue(z),
        ("ZADD", "z:small", *[x for m, s in z.items() for x in (repr(s), m)]),
    )
    zbig = {b"m%03d" % i: (i % 17) * 0.25 - 2 for i in range(300)}
    add(
        "z:big",
        ZSetValue(zbig),
        ("ZADD", "z:big", *[x for m, s in zbig.items() for x in (repr(s), m)]),
    )
    p.execute()
    # streams: several nodes, entries with and without the master's fields, ids far apart
    for i in range(1, 260):
        fields = ["a", str(i), "b", "x" * (i % 7)] if i % 5 else ["other", str(i)]
        c.execute_command("XADD", "st:nodes", f"{1000 + i // 3}-{i}", *fields)
    c.execute_command("XADD", "st:wrap", "1-5", "f", "v")
    c.execute_command("XADD", "st:wrap", f"1-{2**64 - 1}", "f", "w")
    c.execute_command("XADD", "st:wrap", f"{2**64 - 1}-0", "f", "x")
    if server.kind.major >= 7:  # exact group times need XINFO STREAM FULL
        c.execute_command("XGROUP", "CREATE", "st:nodes", "g1", "0")
        c.execute_command("XGROUP", "CREATE", "st:nodes", "g0", "1010-30")
        c.execute_command(
            "XREADGROUP", "GROUP", "g1", "alice", "COUNT", 5, "STREAMS", "st:nodes", ">"
        )
        c.execute_command(
            "XREADGROUP", "GROUP", "g1", "bob", "COUNT", 3, "STREAMS", "st:nodes", ">"
        )
        c.execute_command("XCLAIM", "st:nodes", "g1", "carol", 0, "1001-4")
        c.execute_command("XGROUP", "CREATE", "st:empty", "g", "$", "MKSTREAM")
    rc = raw(server)
    for key in (b"st:nodes", b"st:wrap", b"st:empty"):
        if rc.execute_command("EXISTS", key):
            cases[key] = read_stream(server, rc, key)
    return cases


@pytest.fixture(params=KINDS, ids=[k.name for k in KINDS])
def uncompressed_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    server = start_server(request.param, extra={"rdbcompression": "no"})
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


def test_dump_payload_is_byte_identical_to_the_servers_dump(
    uncompressed_server: RedisServer,
) -> None:
    server = uncompressed_server
    version = native_version(server.kind)
    cases = _dump_cases(server)
    rc = raw(server)
    for key, value in cases.items():
        theirs = rc.execute_command("DUMP", key)
        ours = dump_payload(value, version, compress=False)  # type: ignore[arg-type]
        assert ours == theirs, (key, ours[:64].hex(), theirs[:64].hex())


def test_stream_ids_beyond_int64_are_delta_encoded_with_wraparound() -> None:
    """Ids whose difference from the node's master id exceeds int64 are stored as the
    wrapped int64, exactly as Redis does (uint64 subtraction cast to int64)."""
    nodes = stream_listpacks(
        [
            ((1, 5), [(b"f", b"v")]),
            ((1, 2**64 - 1), [(b"f", b"w")]),
            ((2**64 - 1, 0), [(b"f", b"x")]),
        ]
    )
    assert len(nodes) == 1
    key, lp = nodes[0]
    assert key == struct.pack(">QQ", 1, 5)
    # entry 2: flags SAMEFIELDS, ms delta 0, seq delta 2**64-1-5 -> -6, value, lp-count 4
    entry2: list[bytes | int] = [2, 0, -6, b"w", 4]
    assert b"".join(enc.lp_entry(e) for e in entry2) in lp
    # entry 3: ms delta 2**64-2 -> -2, seq delta 0-5 = -5
    entry3: list[bytes | int] = [2, -2, -5, b"x", 4]
    assert b"".join(enc.lp_entry(e) for e in entry3) in lp


def test_freshly_written_file_loads_and_time_is_not_in_the_past() -> None:
    """ctime is now, and a file of every small type loads into a real server of each kind."""
    for kind in KINDS:
        keys = [
            KeyEntry(0, b"s", b"v"),
            KeyEntry(0, b"l", [b"a"]),
            KeyEntry(0, b"h", {b"f": b"v"}),
            KeyEntry(1, b"z", ZSetValue({b"m": 1.0})),
            KeyEntry(1, b"set", {b"1"}),
        ]
        server = start_server(kind)
        try:
            path = server.dir / "w.rdb"
            write_rdb(path, keys, version=native_version(kind), valkey=kind.is_valkey)
            data = path.read_bytes()
            i = data.index(b"\x05ctime") + 6
            assert (
                data[i] == 0xC2 and abs(struct.unpack_from("<i", data, i + 1)[0] - time.time()) < 60
            )
        finally:
            server.stop()
        loaded = start_server(kind, dir=server.dir, dbfilename="w.rdb")
        try:
            assert raw(loaded).execute_command("DBSIZE") == 3
            assert raw(loaded, 1).execute_command("ZSCORE", "z", "m") == b"1"
        finally:
            loaded.stop()
            shutil.rmtree(server.dir, ignore_errors=True)
