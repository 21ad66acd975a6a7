"""Decoders for the compact blobs an RDB file embeds, and the checksum/compression helpers.

This module owns the byte layouts Redis stores as one opaque string inside an RDB value:
ziplist (`src/ziplist.c`), listpack (`src/listpack.c`), intset (`src/intset.c`) and zipmap
(`src/zipmap.c`), plus LZF decompression (`src/lzf_d.c`, through the `lzf` C extension) and
Redis's CRC64 variant (`src/crc64.c`, through `anycrc`). It knows nothing about RDB records,
keys or streaming: every function here is pure, takes one complete blob and either returns
Python values or raises `model.RDBError` whose `offset` is relative to the start of that blob.

Every decoder is bounds-checked: a corrupt header or entry length can never index past the
blob, loop forever or allocate more than a small multiple of the blob's own size.

Integer entries: ziplists and listpacks store integer-looking strings as integers. The
`*_strings` functions (and `raw_ints=False`) give them back as the decimal `bytes` Redis
would reply with; `raw_ints=True` keeps them as `int` (needed for stream metadata and hash
field TTLs, which are integers by nature).
"""

from __future__ import annotations

import struct
from typing import Final

import anycrc
import lzf

from replproxy.rdb.model import RDBError

__all__ = [
    "crc64",
    "decode_intset",
    "decode_listpack",
    "decode_ziplist",
    "decode_zipmap",
    "listpack_strings",
    "lzf_decompress",
    "ziplist_strings",
]

_CRC64: Final = anycrc.Model("CRC64-REDIS")
_crc_calc = _CRC64.calc

_u16: Final = struct.Struct("<H").unpack_from
_u32: Final = struct.Struct("<I").unpack_from
_u32be: Final = struct.Struct(">I").unpack_from
_i16: Final = struct.Struct("<h").unpack_from
_i32: Final = struct.Struct("<i").unpack_from
_i64: Final = struct.Struct("<q").unpack_from
_ziplist_header: Final = struct.Struct("<IIH").unpack_from
_listpack_header: Final = struct.Struct("<IH").unpack_from
_intset_header: Final = struct.Struct("<II").unpack_from

# liblzf's best case: a 3-byte back-reference expands to 264 bytes. A declared uncompressed
# length beyond this ratio cannot be honest, so it is refused before anything is allocated.
_LZF_MAX_RATIO: Final = 88


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Redis's CRC64 (Jones polynomial, reflected, init 0) of `data`, continuing from `crc`."""
    return int(_crc_calc(data, crc))


def lzf_decompress(data: bytes, expected_len: int) -> bytes:
    """Decompress one LZF-encoded RDB string whose uncompressed length is `expected_len`.

    Like `rdbLoadLzfStringObject`, the output must be exactly `expected_len` bytes.
    """
    if expected_len == 0:
        return b""
    if expected_len > len(data) * _LZF_MAX_RATIO:
        raise RDBError(
            f"LZF string claims {expected_len} bytes from {len(data)} compressed bytes "
            f"(more than LZF can expand)",
            0,
        )
    try:
        out = lzf.decompress(bytes(data), expected_len)
    except ValueError:
        out = None
    if out is None or len(out) != expected_len:
        raise RDBError(f"invalid LZF compressed string (expected {expected_len} bytes)", 0)
    return bytes(out)


# ---- ziplist (src/ziplist.c) ----


def decode_ziplist(blob: bytes, *, raw_ints: bool = False) -> list[bytes | int]:
    """The entries of a ziplist, head first.

    Checks what `ziplistValidateIntegrity(..., deep=1)` checks: header size, the end marker,
    each entry's `prevlen` against the previous entry's size, `zltail` and the entry count.
    """
    n = len(blob)
    if n < 11:
        raise RDBError(f"ziplist of {n} bytes is shorter than its 11-byte header+end", 0)
    zlbytes, zltail, zllen = _ziplist_header(blob, 0)
    if zlbytes != n:
        raise RDBError(f"ziplist header says {zlbytes} bytes but the blob has {n}", 0)
    end = n - 1
    if blob[end] != 0xFF:
        raise RDBError("ziplist does not end with the 0xFF end marker", end)
    out: list[bytes | int] = []
    append = out.append
    p = 10
    prev_size = 0
    while p < end:
        b = blob[p]
        e = blob[p + 1]  # p < end, so at worst this is the end marker
        if e < 0x40 and b == prev_size < 254:
            # The common entry: 1-byte prevlen, string of up to 63 bytes. Overrunning the
            # end is caught by the `p != end` check after the loop.
            s = p + 2
            p = s + e
            append(blob[s:p])
            prev_size = e + 2
            continue
        start = p
        if b < 254:
            if b != prev_size:
                raise RDBError(
                    f"ziplist entry prevlen {b} does not match the previous entry's "
                    f"size {prev_size}",
                    start,
                )
            p += 1
        elif b == 254:
            if p + 5 > end:
                raise RDBError("ziplist entry prevlen runs past the end", p)
            prevlen = _u32(blob, p + 1)[0]
            if prevlen != prev_size:
                raise RDBError(
                    f"ziplist entry prevlen {prevlen} does not match the previous entry's "
                    f"size {prev_size}",
                    start,
                )
            p += 5
        else:
            raise RDBError("ziplist end marker 0xFF found before the end of the blob", p)
        # p <= end here and blob[end] is 0xFF, so indexing p and p + 1 stays in range.
        e = blob[p]
        if e < 0x40:  # string up to 63 bytes
            s = p + 1
            p = s + e
            if p > end:
                raise RDBError(f"ziplist string entry of {e} bytes runs past the end", start)
            append(blob[s:p])
        elif e < 0xC0:
            if e < 0x80:
                s = p + 2
                ln = ((e & 0x3F) << 8) | blob[p + 1]
            else:
                s = p + 5
                if s > end:
                    raise RDBError("ziplist entry length runs past the end", p)
                ln = _u32be(blob, p + 1)[0]
            p = s + ln
            if p > end:
                raise RDBError(f"ziplist string entry of {ln} bytes runs past the end", start)
            append(blob[s:p])
        else:
            if 0xF1 <= e <= 0xFD:
                v = (e & 0x0F) - 1
                p += 1
            elif e == 0xFE:
                if p + 2 > end:
                    raise RDBError("ziplist int8 entry runs past the end", start)
                v = blob[p + 1]
                if v > 127:
                    v -= 256
                p += 2
            elif e == 0xC0:
                if p + 3 > end:
                    raise RDBError("ziplist int16 entry runs past the end", start)
                v = _i16(blob, p + 1)[0]
                p += 3
            elif e == 0xD0:
                if p + 5 > end:
                    raise RDBError("ziplist int32 entry runs past the end", start)
                v = _i32(blob, p + 1)[0]
                p += 5
            elif e == 0xE0:
                if p + 9 > end:
                    raise RDBError("ziplist int64 entry runs past the end", start)
                v = _i64(blob, p + 1)[0]
                p += 9
            elif e == 0xF0:
                if p + 4 > end:
                    raise RDBError("ziplist int24 entry runs past the end", start)
                v = int.from_bytes(blob[p + 1 : p + 4], "little", signed=True)
                p += 4
            else:
                raise RDBError(f"invalid ziplist entry encoding 0x{e:02x}", p)
            append(v if raw_ints else b"%d" % v)
        prev_size = p - start
    if p != end:
        raise RDBError("ziplist entries run past the end marker", end)
    if zllen != 0xFFFF and zllen != len(out):
        raise RDBError(f"ziplist header says {zllen} entries but it holds {len(out)}", 8)
    if out and zltail != p - prev_size:
        raise RDBError(f"ziplist tail offset {zltail} is not the last entry ({p - prev_size})", 4)
    return out


def ziplist_strings(blob: bytes) -> list[bytes]:
    """The entries of a ziplist as bytes (integers in decimal), head first."""
    return decode_ziplist(blob)  # type: ignore[return-value]


# ---- listpack (src/listpack.c) ----


def _backlen_size(entry_size: int) -> int:
    """Bytes of the backlen field that follows an entry of `entry_size` (`lpEncodeBacklen`)."""
    if entry_size <= 127:
        return 1
    if entry_size < 16383:
        return 2
    if entry_size < 2097151:
        return 3
    if entry_size < 268435455:
        return 4
    return 5


def decode_listpack(blob: bytes, *, raw_ints: bool = False) -> list[bytes | int]:
    """The entries of a listpack, head first.

    Checks what `lpValidateIntegrity(..., deep=1)` checks: total bytes, the end marker, every
    entry's extent and the element count (65535 = unknown).
    """
    n = len(blob)
    if n < 7:
        raise RDBError(f"listpack of {n} bytes is shorter than its 7-byte header+end", 0)
    total, count = _listpack_header(blob, 0)
    if total != n:
        raise RDBError(f"listpack header says {total} bytes but the blob has {n}", 0)
    end = n - 1
    if blob[end] != 0xFF:
        raise RDBError("listpack does not end with the 0xFF end marker", end)
    out: list[bytes | int] = []
    append = out.append
    p = 6
    while p < end:
        b = blob[p]
        if b < 0x80:  # 7-bit unsigned int
            p += 2
            append(b if raw_ints else b"%d" % b)
            continue
        if b < 0xC0:  # string up to 63 bytes
            s = p + 1
            p = s + (b & 0x3F)
            append(blob[s:p])
            p += 1
            continue
        if b < 0xE0:  # 13-bit signed int
            v = ((b & 0x1F) << 8) | blob[p + 1]
            if v >= 4096:
                v -= 8192
            p += 3
        elif b < 0xF0:  # string up to 4095 bytes
            ln = ((b & 0x0F) << 8) | blob[p + 1]
            s = p + 2
            p = s + ln
            if p > end:
                raise RDBError(f"listpack string entry of {ln} bytes runs past the end", s - 2)
            append(blob[s:p])
            p += 1 if ln + 2 <= 127 else 2
            continue
        elif b == 0xF0:  # string with 32-bit length
            if p + 5 > end:
                raise RDBError("listpack string length runs past the end", p)
            ln = _u32(blob, p + 1)[0]
            s = p + 5
            p = s + ln
            if p > end:
                raise RDBError(f"listpack string entry of {ln} bytes runs past the end", s - 5)
            append(blob[s:p])
            p += _backlen_size(ln + 5)
            continue
        elif b == 0xF1:
            if p + 3 > end:
                raise RDBError("listpack int16 entry runs past the end", p)
            v = _i16(blob, p + 1)[0]
            p += 4
        elif b == 0xF2:
            if p + 4 > end:
                raise RDBError("listpack int24 entry runs past the end", p)
            v = int.from_bytes(blob[p + 1 : p + 4], "little", signed=True)
            p += 5
        elif b == 0xF3:
            if p + 5 > end:
                raise RDBError("listpack int32 entry runs past the end", p)
            v = _i32(blob, p + 1)[0]
            p += 6
        elif b == 0xF4:
            if p + 9 > end:
                raise RDBError("listpack int64 entry runs past the end", p)
            v = _i64(blob, p + 1)[0]
            p += 10
        elif b == 0xFF:
            raise RDBError("listpack end marker 0xFF found before the end of the blob", p)
        else:
            raise RDBError(f"invalid listpack entry encoding 0x{b:02x}", p)
        append(v if raw_ints else b"%d" % v)
    if p != end:
        raise RDBError("listpack entries run past the end marker", end)
    if count != 0xFFFF and count != len(out):
        raise RDBError(f"listpack header says {count} entries but it holds {len(out)}", 4)
    return out


def listpack_strings(blob: bytes) -> list[bytes]:
    """The entries of a listpack as bytes (integers in decimal), head first."""
    return decode_listpack(blob)  # type: ignore[return-value]


# ---- intset (src/intset.c) ----

_INTSET_CODES: Final = {2: "h", 4: "i", 8: "q"}


def decode_intset(blob: bytes) -> list[int]:
    """The integers of an intset, ascending. Refuses unsorted or duplicate members."""
    n = len(blob)
    if n < 8:
        raise RDBError(f"intset of {n} bytes is shorter than its 8-byte header", 0)
    enc, count = _intset_header(blob, 0)
    code = _INTSET_CODES.get(enc)
    if code is None:
        raise RDBError(f"invalid intset encoding {enc} (expected 2, 4 or 8)", 0)
    if 8 + enc * count != n:
        raise RDBError(
            f"intset header says {count} members of {enc} bytes but the blob has {n} bytes", 4
        )
    values = list(struct.unpack_from(f"<{count}{code}", blob, 8))
    if values != sorted(set(values)):
        raise RDBError("intset members are not sorted and unique", 8)
    return values


# ---- zipmap (src/zipmap.c, Redis 2.2-2.4 hashes) ----


def _zipmap_len(blob: bytes, p: int, n: int) -> tuple[int, int]:
    b = blob[p]
    if b < 254:
        return b, p + 1
    if b == 254:
        if p + 5 > n - 1:
            raise RDBError("zipmap length runs past the end", p)
        return _u32(blob, p + 1)[0], p + 5
    raise RDBError("zipmap end marker where a value length was expected", p)


def decode_zipmap(blob: bytes) -> list[tuple[bytes, bytes]]:
    """The (field, value) pairs of a zipmap in stored order (`zipmapValidateIntegrity`)."""
    n = len(blob)
    if n < 2:
        raise RDBError(f"zipmap of {n} bytes is shorter than its header+end", 0)
    if blob[n - 1] != 0xFF:
        raise RDBError("zipmap does not end with the 0xFF end marker", n - 1)
    last = n - 1
    out: list[tuple[bytes, bytes]] = []
    p = 1
    while True:
        if p > last:
            raise RDBError("zipmap entry runs past the end", p)
        if blob[p] == 0xFF:
            break
        start = p
        ln, p = _zipmap_len(blob, p, n)
        field = blob[p : p + ln]
        p += ln
        if p > last:
            raise RDBError("zipmap field runs past the end", start)
        ln, p = _zipmap_len(blob, p, n)
        if p > last:
            raise RDBError("zipmap value header runs past the end", start)
        free = blob[p]
        p += 1
        value = blob[p : p + ln]
        p += ln + free
        if p > last:
            raise RDBError("zipmap value runs past the end", start)
        out.append((field, value))
    if not out:
        raise RDBError("empty zipmap", 0)
    if blob[0] < 254 and blob[0] != len(out):
        raise RDBError(f"zipmap header says {blob[0]} entries but it holds {len(out)}", 0)
    return out
