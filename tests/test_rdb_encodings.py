"""The blob decoders (ziplist, listpack, intset, zipmap), LZF and CRC64.

Blobs are built here by a small independent encoder following Redis's own choice of
encodings, taken from real servers with DUMP, and broken on purpose: a malformed blob must
give `RDBError`, never an IndexError, a hang or a huge allocation.
"""

from __future__ import annotations

import contextlib
import struct

import lzf
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from replproxy.rdb import RDBError, decode_value
from replproxy.rdb.decoders import read_string
from replproxy.rdb.encodings import (
    crc64,
    decode_intset,
    decode_listpack,
    decode_ziplist,
    decode_zipmap,
    listpack_strings,
    lzf_decompress,
    ziplist_strings,
)
from tests.harness.servers import RedisServer

# ---- an independent encoder for test blobs (ziplist.c / listpack.c / intset.c / zipmap.c) ----


def zl_entry_encoding(e: bytes | int) -> bytes:
    if isinstance(e, int):
        if 0 <= e <= 12:
            return bytes([0xF1 + e])
        for code, fmt, lo, hi in (
            (0xFE, "<b", -(2**7), 2**7 - 1),
            (0xC0, "<h", -(2**15), 2**15 - 1),
            (0xF0, None, -(2**23), 2**23 - 1),
            (0xD0, "<i", -(2**31), 2**31 - 1),
            (0xE0, "<q", -(2**63), 2**63 - 1),
        ):
            if lo <= e <= hi:
                body = e.to_bytes(3, "little", signed=True) if fmt is None else struct.pack(fmt, e)
                return bytes([code]) + body
        raise ValueError(e)
    n = len(e)
    if n < 64:
        return bytes([n]) + e
    if n < 16384:
        return bytes([0x40 | n >> 8, n & 0xFF]) + e
    return b"\x80" + n.to_bytes(4, "big") + e


def make_ziplist(entries: list[bytes | int]) -> bytes:
    body = b""
    prev = 0
    tail = 10
    for e in entries:
        tail = 10 + len(body)
        prevlen = bytes([prev]) if prev < 254 else b"\xfe" + prev.to_bytes(4, "little")
        entry = prevlen + zl_entry_encoding(e)
        prev = len(entry)
        body += entry
    total = 10 + len(body) + 1
    return struct.pack("<IIH", total, tail, min(len(entries), 0xFFFF)) + body + b"\xff"


def _backlen(n: int) -> bytes:
    """lpEncodeBacklen: 7 bits per byte, most significant group first in the file."""
    groups = []
    while True:
        groups.append(n & 127)
        n >>= 7
        if not n:
            break
    out = [g | (128 if i else 0) for i, g in enumerate(groups)]
    return bytes(reversed(out))


def lp_entry(e: bytes | int) -> bytes:
    if isinstance(e, int):
        if 0 <= e <= 127:
            enc = bytes([e])
        elif -4096 <= e <= 4095:
            v = e & 0x1FFF
            enc = bytes([0xC0 | v >> 8, v & 0xFF])
        elif -(2**15) <= e < 2**15:
            enc = b"\xf1" + struct.pack("<h", e)
        elif -(2**23) <= e < 2**23:
            enc = b"\xf2" + e.to_bytes(3, "little", signed=True)
        elif -(2**31) <= e < 2**31:
            enc = b"\xf3" + struct.pack("<i", e)
        else:
            enc = b"\xf4" + struct.pack("<q", e)
    else:
        n = len(e)
        if n < 64:
            enc = bytes([0x80 | n]) + e
        elif n < 4096:
            enc = bytes([0xE0 | n >> 8, n & 0xFF]) + e
        else:
            enc = b"\xf0" + n.to_bytes(4, "little") + e
    return enc + _backlen(len(enc))


def make_listpack(entries: list[bytes | int], count: int | None = None) -> bytes:
    body = b"".join(lp_entry(e) for e in entries)
    n = len(entries) if count is None else count
    return struct.pack("<IH", 6 + len(body) + 1, min(n, 0xFFFF)) + body + b"\xff"


def make_intset(values: list[int], width: int) -> bytes:
    code = {2: "h", 4: "i", 8: "q"}[width]
    return struct.pack("<II", width, len(values)) + struct.pack(f"<{len(values)}{code}", *values)


def make_zipmap(pairs: list[tuple[bytes, bytes]], free: int = 0) -> bytes:
    def zlen(n: int) -> bytes:
        return bytes([n]) if n < 254 else b"\xfe" + n.to_bytes(4, "little")

    out = bytes([len(pairs) if len(pairs) < 254 else 254])
    for f, v in pairs:
        out += zlen(len(f)) + f + zlen(len(v)) + bytes([free]) + v + b"\x00" * free
    return out + b"\xff"


MIXED: list[bytes | int] = [
    b"",
    b"a",
    b"x" * 63,
    b"y" * 64,
    b"z" * 5000,
    0,
    12,
    13,
    -1,
    127,
    128,
    -128,
    255,
    4095,
    -4096,
    32767,
    -32768,
    2**23 - 1,
    -(2**23),
    2**31 - 1,
    -(2**31),
    2**62,
    -(2**63),
]


# ---- ziplist ----


def test_ziplist_decodes_every_entry_encoding() -> None:
    entries: list[bytes | int] = list(MIXED)
    assert decode_ziplist(make_ziplist(entries), raw_ints=True) == entries
    assert ziplist_strings(make_ziplist(entries)) == [
        e if isinstance(e, bytes) else str(e).encode() for e in entries
    ]


def test_ziplist_with_5_byte_prevlen_after_a_long_entry() -> None:
    entries: list[bytes | int] = [b"q" * 300, b"after", 7, b"r" * 70000, b"end"]
    assert decode_ziplist(make_ziplist(entries), raw_ints=True) == entries


def test_empty_ziplist() -> None:
    assert decode_ziplist(make_ziplist([])) == []


def test_ziplist_count_unknown_marker_is_accepted() -> None:
    zl = bytearray(make_ziplist([b"a", b"b"]))
    zl[8:10] = b"\xff\xff"
    assert decode_ziplist(bytes(zl)) == [b"a", b"b"]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda z: z[:-1], "header says"),
        (lambda z: z[:-1] + b"\x00", "end marker"),
        (lambda z: z[:4] + (99).to_bytes(4, "little") + z[8:], "tail offset"),
        (lambda z: z[:8] + (3).to_bytes(2, "little") + z[10:], "entries"),
        (lambda z: z[:10] + b"\x05" + z[11:], "prevlen"),
        (lambda z: z[:11] + b"\x3f" + z[12:], "past the end"),
        (lambda z: z[:11] + b"\xc5" + z[12:], "invalid ziplist entry encoding"),
        (lambda z: b"\x05\x00\x00", "shorter"),
    ],
)
def test_malformed_ziplist_is_refused(mutate, reason: str) -> None:
    good = make_ziplist([b"abc", b"defg"])
    bad = bytes(mutate(good))
    with pytest.raises(RDBError, match=reason):
        decode_ziplist(bad)


# ---- listpack ----


def test_listpack_decodes_every_entry_encoding() -> None:
    entries: list[bytes | int] = [*MIXED, b"w" * 200000]
    assert decode_listpack(make_listpack(entries), raw_ints=True) == entries
    assert listpack_strings(make_listpack([1, b"b", -5])) == [b"1", b"b", b"-5"]


def test_listpack_count_unknown_marker_is_accepted() -> None:
    assert decode_listpack(make_listpack([b"a"] * 3, count=0xFFFF)) == [b"a"] * 3


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (make_listpack([b"abc"])[:-1], "header says"),
        (make_listpack([b"abc"], count=2), "2 entries"),
        (b"\x08\x00\x00\x00\x01\x00\x85\xff", "past the end"),
        (b"\x08\x00\x00\x00\x01\x00\xf9\xff", "invalid listpack entry encoding"),
        (b"\x09\x00\x00\x00\x01\x00\xff\x00\xff", "end marker"),
        (b"\x07\x00\x00\x00\x00\x00\x00", "end marker"),
        (b"\x0c\x00\x00\x00\x01\x00\xf0\xff\xff\xff\x7f\xff", "past the end"),
        (b"\x01\x00", "shorter"),
    ],
)
def test_malformed_listpack_is_refused(blob: bytes, reason: str) -> None:
    with pytest.raises(RDBError, match=reason):
        decode_listpack(blob)


# ---- intset ----


@pytest.mark.parametrize(
    ("values", "width"),
    [([-3, 0, 32767], 2), ([-(2**31), 5, 2**31 - 1], 4), ([-(2**63), 0, 2**63 - 1], 8), ([], 2)],
)
def test_intset_widths(values: list[int], width: int) -> None:
    assert decode_intset(make_intset(values, width)) == values


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (make_intset([1, 2], 2)[:-1], "header says"),
        (struct.pack("<II", 3, 1) + b"\x00\x00\x00", "encoding 3"),
        (make_intset([2, 1], 2), "sorted"),
        (make_intset([1, 1], 4), "sorted"),
        (struct.pack("<II", 8, 2**32 - 1), "header says"),
        (b"\x02\x00", "shorter"),
    ],
)
def test_malformed_intset_is_refused(blob: bytes, reason: str) -> None:
    with pytest.raises(RDBError, match=reason):
        decode_intset(blob)


# ---- zipmap ----


def test_zipmap_with_free_bytes_and_long_values() -> None:
    pairs = [(b"f1", b"v1"), (b"f" * 300, b"v" * 1000), (b"", b"x")]
    assert decode_zipmap(make_zipmap(pairs, free=3)) == pairs


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (make_zipmap([(b"a", b"b")])[:-1], "end marker"),
        (b"\x01\x05ab\xff", "past the end"),
        (b"\x00\xff", "empty"),
        (b"\x02\x01a\x01\x00b\xff", "2 entries"),
        (b"\x01\x01a\xff\xff", "end marker where a value length"),
    ],
)
def test_malformed_zipmap_is_refused(blob: bytes, reason: str) -> None:
    with pytest.raises(RDBError, match=reason):
        decode_zipmap(blob)


# ---- LZF and CRC64 ----


def test_lzf_round_trip_and_exact_length() -> None:
    data = b"abcabcabc" * 500 + bytes(range(256))
    packed = lzf.compress(data)
    assert lzf_decompress(packed, len(data)) == data
    with pytest.raises(RDBError, match="invalid LZF"):
        lzf_decompress(packed, len(data) + 1)
    with pytest.raises(RDBError, match="invalid LZF"):
        lzf_decompress(b"\xe0\xff\xff", 50)


def test_lzf_refuses_an_impossible_length_before_allocating() -> None:
    with pytest.raises(RDBError, match="more than LZF can expand"):
        lzf_decompress(b"\x00a", 2**60)


def test_crc64_is_redis_jones_variant_and_incremental() -> None:
    assert crc64(b"123456789") == 0xE9C6D914C4B8D9CA
    assert crc64(b"56789", crc64(b"1234")) == 0xE9C6D914C4B8D9CA
    assert crc64(memoryview(b"x123456789")[1:]) == 0xE9C6D914C4B8D9CA


# ---- fuzz: any bytes give values or RDBError ----

_DECODERS = [decode_ziplist, decode_listpack, decode_intset, decode_zipmap]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_DECODERS), st.binary(max_size=200))
def test_random_blobs_never_crash(decoder, blob: bytes) -> None:
    with contextlib.suppress(RDBError):
        decoder(blob)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.binary(max_size=80), st.integers(-(2**63), 2**63 - 1)), max_size=12),
    st.integers(0, 10_000),
    st.integers(0, 7),
)
def test_bit_flipped_blobs_never_crash(entries: list, where: int, bit: int) -> None:
    for blob in (make_ziplist(entries), make_listpack(entries)):
        broken = bytearray(blob)
        broken[where % len(broken)] ^= 1 << bit
        for decoder in (decode_ziplist, decode_listpack):
            with contextlib.suppress(RDBError):
                decoder(bytes(broken))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=300), st.integers(-(2**63), 2**63 - 1)), max_size=30))
def test_built_blobs_round_trip(entries: list) -> None:
    assert decode_ziplist(make_ziplist(entries), raw_ints=True) == entries
    assert decode_listpack(make_listpack(entries), raw_ints=True) == entries


# ---- blobs written by real servers (DUMP payloads) ----


def _dump(client: redis.Redis, key: str) -> bytes:
    """DUMP of a key the test wrote: it exists."""
    payload = client.dump(key)
    assert payload is not None, key
    return payload


def _dump_blob(client: redis.Redis, key: str) -> tuple[int, bytes, int]:
    """(type, the value's first string - the blob for encoded types, rdb version) of a key."""
    payload = _dump(client, key)
    version = int.from_bytes(payload[-10:-8], "little")
    body = payload[1:-10]
    blob, _ = read_string(body, 0, len(body))
    return payload[0], blob, version


def test_server_written_blobs(master: RedisServer) -> None:
    c = master.client()
    c.rpush("list", "a", "b", 7, -300, 70000, "x" * 100)
    c.hset("hash", mapping={"f": "v", "n": 12, "big": 2**40})
    c.sadd("ints", 1, -2, 2**40)
    c.zadd("zset", {"a": 1.5, "b": -2, "c": 3})
    expected_list = [b"a", b"b", b"7", b"-300", b"70000", b"x" * 100]

    t, blob, version = _dump_blob(c, "list")
    if t == 18:  # quicklist 2: container, then the node string
        body = _dump(c, "list")[1:-10]
        assert body[1] == 2  # PACKED
        blob, _ = read_string(body, 2, len(body))
        assert listpack_strings(blob) == expected_list
    elif t == 14:
        body = _dump(c, "list")[1:-10]
        blob, _ = read_string(body, 1, len(body))
        assert ziplist_strings(blob) == expected_list
    else:
        raise AssertionError(f"unexpected list encoding {t}")

    t, blob, version = _dump_blob(c, "hash")
    decoder = {16: decode_listpack, 13: decode_ziplist}[t]
    assert decoder(blob) == [b"f", b"v", b"n", b"12", b"big", str(2**40).encode()]

    t, blob, _ = _dump_blob(c, "ints")
    assert t == 11
    assert decode_intset(blob) == [-2, 1, 2**40]

    t, blob, _ = _dump_blob(c, "zset")
    decoder = {17: decode_listpack, 12: decode_ziplist}[t]
    assert decoder(blob, raw_ints=True) == [b"b", -2, b"a", b"1.5", b"c", 3]

    # The whole DUMP payload through decode_value gives what the server serves.
    for key in ("list", "hash", "ints", "zset"):
        payload = _dump(c, key)
        version = int.from_bytes(payload[-10:-8], "little")
        value = decode_value(payload[0], payload[1:-10], rdb_version=version)
        if key == "list":
            assert value == c.lrange(key, 0, -1)
        elif key == "hash":
            assert value == c.hgetall(key)
        elif key == "ints":
            assert value == c.smembers(key)
        else:
            assert dict(value) == dict(c.zrange(key, 0, -1, withscores=True))  # type: ignore[arg-type]
