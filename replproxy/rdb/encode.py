"""Byte-level encoders of the RDB format: lengths, strings, doubles, listpack, ziplist, intset.

This module owns the small building blocks every RDB object is made of, each written the way
Redis writes it (`rdbSaveLen`, `rdbSaveRawString`, `lpInsert`, `__ziplistInsert`,
`intsetAdd`), so that a server loading our bytes sees what it would have saved itself. It
knows nothing about keys, databases, object types or target versions (that is `writer.py`)
and never decodes (that is the reader's `encodings.py`). No I/O.

Integer-looking strings: Redis stores a string that is the canonical decimal form of an
int64 (`string2ll` / `lpStringToInt64`: no `+`, no leading zero, no `-0`, no spaces) as an
integer inside listpacks, ziplists and intsets, and as an int8/16/32 special string in the
RDB itself. A non-canonical form ("007", "-0", "+1", " 1") must stay a string or it would
come back as a different value. `parse_int64` is that single rule.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Sequence

import lzf

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1

_CANONICAL_INT = re.compile(rb"0|-?[1-9][0-9]{0,18}")
_INT_FIRST_BYTES = frozenset(b"-0123456789")

_pack_b = struct.Struct("<b").pack
_pack_h = struct.Struct("<h").pack
_pack_i = struct.Struct("<i").pack
_pack_q = struct.Struct("<q").pack
_pack_I = struct.Struct("<I").pack
_pack_Q = struct.Struct("<Q").pack
_pack_d = struct.Struct("<d").pack
_pack_be_I = struct.Struct(">I").pack
_pack_be_Q = struct.Struct(">Q").pack
_pack_lp_header = struct.Struct("<IH").pack
_pack_zl_header = struct.Struct("<IIH").pack
_pack_intset_header = struct.Struct("<II").pack

_ONE_BYTE = [bytes((i,)) for i in range(256)]


def parse_int64(s: bytes) -> int | None:
    """The int64 `s` canonically spells (Redis's `string2ll`/`lpStringToInt64`), else None."""
    if not s or len(s) > 20 or s[0] not in _INT_FIRST_BYTES or not _CANONICAL_INT.fullmatch(s):
        return None
    v = int(s)
    return v if INT64_MIN <= v <= INT64_MAX else None


# ---- RDB lengths, strings, times, doubles (rdb.c) ----


def rdb_length(n: int) -> bytes:
    """`rdbSaveLen`: 6-bit, 14-bit big-endian, 0x80 + u32 BE, 0x81 + u64 BE."""
    if n < 0x40:
        if n < 0:
            raise ValueError(f"negative RDB length {n}")
        return _ONE_BYTE[n]
    if n < 0x4000:
        return bytes((0x40 | (n >> 8), n & 0xFF))
    if n <= 0xFFFFFFFF:
        return b"\x80" + _pack_be_I(n)
    if n <= UINT64_MAX:
        return b"\x81" + _pack_be_Q(n)
    raise ValueError(f"RDB length {n} does not fit 64 bits")


def rdb_int_string(v: int) -> bytes | None:
    """`rdbEncodeInteger`: the int8/16/32 special string form of `v`, None when it does not fit."""
    if -0x80 <= v <= 0x7F:
        return b"\xc0" + _pack_b(v)
    if -0x8000 <= v <= 0x7FFF:
        return b"\xc1" + _pack_h(v)
    if -0x80000000 <= v <= 0x7FFFFFFF:
        return b"\xc2" + _pack_i(v)
    return None


def rdb_string(s: bytes, compress: bool = True) -> bytes:
    """`rdbSaveRawString`: integer form, else LZF (> 20 bytes, saving >= 4), else verbatim."""
    n = len(s)
    if n <= 11:
        v = parse_int64(s)
        if v is not None:
            enc = rdb_int_string(v)
            if enc is not None:
                return enc
    if compress and n > 20:
        # Redis gives lzf_compress an output buffer of len-4 bytes: "we require at least
        # four bytes compression for this to be worth it" (rdbSaveLzfStringObject).
        packed = lzf.compress(bytes(s), n - 4)
        if packed is not None:
            return b"\xc3" + rdb_length(len(packed)) + rdb_length(n) + packed
    return rdb_length(n) + s


def rdb_millisecond_time(t: int) -> bytes:
    """`rdbSaveMillisecondTime`: 8 bytes little-endian; -1 and 2**64-1 are the same bytes."""
    return _pack_Q(t & UINT64_MAX)


def rdb_binary_double(x: float) -> bytes:
    """`rdbSaveBinaryDoubleValue` (ZSET_2 scores)."""
    return _pack_d(x)


def rdb_string_double(x: float) -> bytes:
    """`rdbSaveDoubleValue` (type 3 scores, RDB < 8): 253 nan, 254 +inf, 255 -inf, else text."""
    if math.isnan(x):
        return b"\xfd"
    if math.isinf(x):
        return b"\xfe" if x > 0 else b"\xff"
    text = format_double(x)
    return _ONE_BYTE[len(text)] + text


def double_to_int64(x: float) -> int | None:
    """`double2ll`: the integer `x` holds exactly, if within +-2**62 (Redis's safe range)."""
    if not (-4611686018427387904.0 <= x <= 4611686018427387904.0):
        return None  # also NaN
    i = int(x)
    return i if i == x else None


def format_double(x: float) -> bytes:
    """Text of a score that `strtod` reads back exactly (the role of Redis's `d2string`).

    Redis prints "%.17g"; Python's shortest round-trip repr is read back to the same double.
    """
    if math.isnan(x):
        return b"nan"
    if math.isinf(x):
        return b"inf" if x > 0 else b"-inf"
    if x == 0:
        return b"-0" if math.copysign(1.0, x) < 0 else b"0"
    i = double_to_int64(x)
    if i is not None:
        return str(i).encode()
    return repr(x).encode()


# ---- listpack (listpack.c) ----

Entry = bytes | int
"""A listpack/ziplist element: a string, or an integer Redis appended as an integer."""


def _lp_int(v: int) -> bytes:
    """`lpEncodeIntegerGetType`."""
    if 0 <= v <= 127:
        return _ONE_BYTE[v]
    if -4096 <= v <= 4095:
        u = v & 0x1FFF
        return bytes((0xC0 | (u >> 8), u & 0xFF))
    if -0x8000 <= v <= 0x7FFF:
        return b"\xf1" + _pack_h(v)
    if -0x800000 <= v <= 0x7FFFFF:
        return b"\xf2" + (v & 0xFFFFFF).to_bytes(3, "little")
    if -0x80000000 <= v <= 0x7FFFFFFF:
        return b"\xf3" + _pack_i(v)
    if INT64_MIN <= v <= INT64_MAX:
        return b"\xf4" + _pack_q(v)
    raise ValueError(f"listpack integer {v} does not fit int64")


def _lp_backlen(n: int) -> bytes:
    """`lpEncodeBacklen`: 7-bit groups, the first byte without the continuation bit."""
    if n <= 127:
        return _ONE_BYTE[n]
    if n < 16383:
        return bytes((n >> 7, (n & 127) | 128))
    if n < 2097151:
        return bytes((n >> 14, ((n >> 7) & 127) | 128, (n & 127) | 128))
    if n < 268435455:
        return bytes((n >> 21, ((n >> 14) & 127) | 128, ((n >> 7) & 127) | 128, (n & 127) | 128))
    return bytes(
        (
            n >> 28,
            ((n >> 21) & 127) | 128,
            ((n >> 14) & 127) | 128,
            ((n >> 7) & 127) | 128,
            (n & 127) | 128,
        )
    )


def lp_entry(e: Entry) -> bytes:
    """One listpack entry (encoding + data + backlen) as `lpAppend`/`lpAppendInteger` write it."""
    if isinstance(e, int):
        body = _lp_int(e)
    else:
        n = len(e)
        v = parse_int64(e) if n <= 20 else None
        if v is not None:
            body = _lp_int(v)
        elif n < 64:
            body = _ONE_BYTE[0x80 | n] + e
        elif n < 4096:
            body = bytes((0xE0 | (n >> 8), n & 0xFF)) + e
        else:
            body = b"\xf0" + _pack_I(n) + e
    return body + _lp_backlen(len(body))


LP_EMPTY_SIZE = 7  # 6-byte header + 0xFF terminator


def listpack_from_entries(encoded: Sequence[bytes], size: int | None = None) -> bytes:
    """Wrap already encoded entries (from `lp_entry`) into a listpack blob."""
    if size is None:
        size = LP_EMPTY_SIZE + sum(map(len, encoded))
    count = len(encoded)
    return _pack_lp_header(size, count if count < 65535 else 65535) + b"".join(encoded) + b"\xff"


def listpack(entries: Iterable[Entry]) -> bytes:
    """A listpack holding `entries` in order."""
    return listpack_from_entries([lp_entry(e) for e in entries])


# ---- ziplist (ziplist.c, what Redis <= 6.2 keeps small hashes, zsets and list nodes in) ----


def zl_body(e: Entry) -> bytes:
    """Encoding + data of a ziplist entry (`zipTryEncoding`, `zipStoreEntryEncoding`)."""
    if isinstance(e, int):
        return _zl_int(e)
    n = len(e)
    v = parse_int64(e) if 0 < n < 32 else None
    if v is not None:
        return _zl_int(v)
    if n <= 0x3F:
        return _ONE_BYTE[n] + e
    if n <= 0x3FFF:
        return bytes((0x40 | (n >> 8), n & 0xFF)) + e
    return b"\x80" + _pack_be_I(n) + e


def _zl_int(v: int) -> bytes:
    if 0 <= v <= 12:
        return _ONE_BYTE[0xF1 + v]
    if -0x80 <= v <= 0x7F:
        return b"\xfe" + _pack_b(v)
    if -0x8000 <= v <= 0x7FFF:
        return b"\xc0" + _pack_h(v)
    if -0x800000 <= v <= 0x7FFFFF:
        return b"\xf0" + (v & 0xFFFFFF).to_bytes(3, "little")
    if -0x80000000 <= v <= 0x7FFFFFFF:
        return b"\xd0" + _pack_i(v)
    if INT64_MIN <= v <= INT64_MAX:
        return b"\xe0" + _pack_q(v)
    raise ValueError(f"ziplist integer {v} does not fit int64")


ZL_HEADER_SIZE = 10
ZL_EMPTY_SIZE = 11


def ziplist(entries: Iterable[Entry]) -> bytes:
    """A ziplist holding `entries` in order, each prevlen in its shortest form."""
    return ziplist_from_bodies([zl_body(e) for e in entries])


def zl_entry_size(body: bytes, prevlen: int) -> int:
    """Bytes an entry with this `zl_body` takes after an entry of `prevlen` bytes."""
    return (1 if prevlen < 254 else 5) + len(body)


def ziplist_from_bodies(bodies: Iterable[bytes]) -> bytes:
    """A ziplist of entries already encoded by `zl_body` (prevlens are added here)."""
    parts: list[bytes] = []
    prevlen = 0
    offset = tail = ZL_HEADER_SIZE
    for body in bodies:
        if prevlen < 254:
            entry = _ONE_BYTE[prevlen] + body
        else:
            entry = b"\xfe" + _pack_I(prevlen) + body
        parts.append(entry)
        tail = offset
        prevlen = len(entry)
        offset += prevlen
    count = len(parts)
    header = _pack_zl_header(offset + 1, tail, count if count < 65535 else 65535)
    return header + b"".join(parts) + b"\xff"


def ziplist_entry_overhead(sz: int) -> int:
    """Redis 5's estimate of the bytes a `sz`-byte element adds to a ziplist node."""
    return (1 if sz < 254 else 5) + (1 if sz < 64 else 2 if sz < 16384 else 5)


# ---- intset (intset.c) ----


def intset(values: Iterable[int]) -> bytes:
    """An intset of `values`: u32 width, u32 count, sorted little-endian integers."""
    ordered = sorted(set(values))
    if not ordered:
        width, fmt = 2, "h"
    else:
        lo, hi = ordered[0], ordered[-1]
        if lo >= -0x8000 and hi <= 0x7FFF:
            width, fmt = 2, "h"
        elif lo >= -0x80000000 and hi <= 0x7FFFFFFF:
            width, fmt = 4, "i"
        elif lo >= INT64_MIN and hi <= INT64_MAX:
            width, fmt = 8, "q"
        else:
            raise ValueError("intset members must fit int64")
    n = len(ordered)
    return _pack_intset_header(width, n) + struct.pack(f"<{n}{fmt}", *ordered)
