"""The streaming, sans-I/O RDB reader: bytes in, `model` events out.

This module owns the RDB record grammar (`src/rdb.c` `rdbLoadRioWithLoadingCtx` and
`rdbLoadObject`): the header, opcodes, object types and their value layouts, for RDB versions
1-12 (`REDIS0001`..`REDIS0012`) and Valkey 9 (`VALKEY080`). The blob formats inside values
(ziplist, listpack, intset, zipmap, LZF, CRC64) live in `encodings`; the value and event
shapes in `model`. It never opens files or sockets: `read_file`/`iter_file` are thin loops
that feed an `RDBReader`.

Design, for speed and bounded memory:

* Fast mode: a fed chunk is parsed straight from the `bytes` object with an integer
  position. Every record (one opcode, or one `type key value`) is decoded only when all its
  bytes are present; the common `string key -> short string value` record has an inline path.
* Slow mode: when a record is cut by the end of a chunk, its bytes move to a `bytearray`
  tail. If the next chunk is at least as big as the tail, parsing just restarts on the joined
  bytes (the retry costs no more than the new bytes). Otherwise a resumable *scanner* (a
  generator walking the same grammar without decoding) learns where the record ends as
  bytes arrive, and the record is decoded once, when all of it is there: feeding a 1 GB value
  in 1-byte chunks stays linear, and the reader holds no more than the record being decoded.
  Should the scanner and the decoder ever disagree, the reader falls back to waiting until
  the buffered size doubles, which is still linear.
* The CRC64 is computed over consumed bytes as they are dropped, one C call per chunk.
* Sink mode (`RDBReader(sink=KeySink(dbs, expires))`): keys go straight into per-DB dicts
  instead of becoming `KeyEntry` events (IDLE/FREQ are dropped); every other record is still
  an event. There the optional C accelerator `_speedups.load_records` parses runs of simple
  key records (strings, plain and compact collections) into the dicts and stops at anything
  else, including any malformation: this module then parses that record itself, so it stays
  the reference for values and the only source of errors. `REPLPROXY_NO_SPEEDUPS=1` (read
  when a reader is made) turns the accelerator off.

Redis behaviours kept on purpose: empty collections are skipped like `rdbLoadObject` does
(counted in `skipped_empty_keys`); duplicate members, NaN scores in types 3/5 and consumer
PEL entries missing from their group PEL are corruption. Dialect rule for the colliding type
numbers 22/23: a `VALKEY` file means Valkey's HASH_2 (22); a `REDIS` file of version >= 12
means the Redis 7.4 release-candidate hash-with-TTL types; types 22-25 are refused in older
`REDIS` files. RDB 13-15 (Redis 8.6+) are refused: their new types are not documented here.
"""

from __future__ import annotations

import gc
import os
import struct
from collections.abc import Callable, Generator, Iterator
from typing import BinaryIO, Final, NoReturn

from replproxy.rdb.encodings import (
    crc64,
    decode_intset,
    decode_listpack,
    decode_ziplist,
    decode_zipmap,
    lzf_decompress,
)
from replproxy.rdb.model import (
    RDB_VERSION_MAX_REDIS,
    RDB_VERSION_VALKEY_9,
    Aux,
    End,
    Event,
    Function,
    HashValue,
    Header,
    KeyEntry,
    ModuleAux,
    OrderedSet,
    RDBChecksumError,
    RDBError,
    RDBUnsupportedError,
    ResizeDB,
    SelectDB,
    SlotInfo,
    StreamConsumer,
    StreamGroup,
    StreamID,
    StreamPendingEntry,
    StreamValue,
    Value,
    ZSetValue,
    module_value,
)
from replproxy.speedups import c_function

__all__ = [
    "KeySink",
    "RDBReader",
    "RDBSinkError",
    "decode_value",
    "decode_value_prefix",
    "iter_file",
    "module_name",
    "read_file",
    "type_encoding_name",
]

_u64: Final = struct.Struct("<Q").unpack_from
_i64: Final = struct.Struct("<q").unpack_from
_i32: Final = struct.Struct("<i").unpack_from
_i16: Final = struct.Struct("<h").unpack_from
_f64: Final = struct.Struct("<d").unpack_from
_u32be: Final = struct.Struct(">I").unpack_from
_u64be: Final = struct.Struct(">Q").unpack_from
_id_be: Final = struct.Struct(">QQ").unpack_from

_UINT64_MAX: Final = (1 << 64) - 1
_MODULE_CHARSET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_CHUNK: Final = 1 << 14  # iter_file read size: small feeds keep fresh objects in CPU caches
_GC_PAUSE_MIN: Final = 1 << 18  # feeds this big are parsed with the cyclic GC paused

# load_records(buf, pos, db, expire, dbs, expires, zset_type, set_type)
#   -> (pos, expire, stored, skipped)
_LoadRecords = Callable[
    [bytes, int, int, int | None, list, list, type, type], tuple[int, int | None, int, int]
]


def _load_speedups() -> _LoadRecords | None:
    """The C sink-mode fast path, or None (not built, or REPLPROXY_NO_SPEEDUPS set)."""
    fn: _LoadRecords | None = c_function("replproxy.rdb._speedups", "load_records")
    return fn


def speedups_available() -> bool:
    """True when the C accelerator is built and not disabled by REPLPROXY_NO_SPEEDUPS."""
    return _load_speedups() is not None


class KeySink:
    """Where a sink-mode `RDBReader` stores keys: `dbs[db][key] = value` and, for keys with an
    expiry, `expires[db][key] = ms`, in file order (a repeated key is overwritten, its old
    expiry kept unless replaced, as a loop over `KeyEntry` events would do). `keys` counts the
    keys stored. Sorted sets are stored as `ZSetValue`, hashes with field TTLs as `HashValue`.
    """

    __slots__ = ("dbs", "expires", "keys")

    def __init__(self, dbs: list[dict[bytes, Value]], expires: list[dict[bytes, int]]) -> None:
        if len(expires) != len(dbs):
            raise ValueError("a KeySink needs as many expires dicts as DB dicts")
        self.dbs = dbs
        self.expires = expires
        self.keys = 0


class RDBSinkError(RDBError, ValueError):
    """A sink-mode reader met a key its sink cannot hold (a DB number beyond its dicts)."""

# What each object type number is called, for messages and `replproxy rdb info`.
_TYPE_ENCODINGS: Final = {
    0: ("string", "string"),
    1: ("list", "linkedlist"),
    2: ("set", "hashtable"),
    3: ("zset", "skiplist (string scores)"),
    4: ("hash", "hashtable"),
    5: ("zset", "skiplist"),
    6: ("module", "module (4.0 RC)"),
    7: ("module", "module"),
    9: ("hash", "zipmap"),
    10: ("list", "ziplist"),
    11: ("set", "intset"),
    12: ("zset", "ziplist"),
    13: ("hash", "ziplist"),
    14: ("list", "quicklist"),
    15: ("stream", "stream listpacks"),
    16: ("hash", "listpack"),
    17: ("zset", "listpack"),
    18: ("list", "quicklist v2"),
    19: ("stream", "stream listpacks v2"),
    20: ("set", "listpack"),
    21: ("stream", "stream listpacks v3"),
    22: ("hash", "hashtable with field TTLs (7.4 RC)"),
    23: ("hash", "listpack with field TTLs (7.4 RC)"),
    24: ("hash", "hashtable with field TTLs"),
    25: ("hash", "listpack with field TTLs"),
}
_VALKEY_TYPE_ENCODINGS: Final = {22: ("hash", "hashtable with field TTLs (HASH_2)")}


def type_encoding_name(rdb_type: int, valkey: bool = False) -> tuple[str, str]:
    """(Redis type, encoding) an RDB object type number stands for, e.g. 16 -> hash/listpack."""
    if valkey and rdb_type in _VALKEY_TYPE_ENCODINGS:
        return _VALKEY_TYPE_ENCODINGS[rdb_type]
    return _TYPE_ENCODINGS.get(rdb_type, ("unknown", f"type {rdb_type}"))


def _describe(rdb_type: int, valkey: bool) -> str:
    kind, encoding = type_encoding_name(rdb_type, valkey)
    return f"type {rdb_type}, {kind}" + ("" if encoding == kind else f" {encoding}")


def module_name(module_id: int) -> str:
    """The 9-character module type name packed in the top 54 bits of a module id."""
    x = module_id >> 10
    chars = []
    for _ in range(9):
        chars.append(_MODULE_CHARSET[x & 63])
        x >>= 6
    return "".join(reversed(chars))


_U64 = (1 << 64) - 1


class _Incomplete(Exception):
    """Internal: the record needs bytes up to (buffer) index `need` - 1."""

    __slots__ = ("need",)

    def __init__(self, need: int):
        self.need = need


def _rebased(e: RDBError, delta: int, prefix: str = "") -> RDBError:
    """The same error with its offset moved by `delta` and an optional context prefix."""
    offset = None if e.offset is None else e.offset + delta
    return type(e)(f"{prefix}{e.reason}", offset)


# ---- primitives: (buf, p, end) -> (value, new p); raise _Incomplete or RDBError ----


def _read_len(buf: bytes | bytearray, p: int, end: int) -> tuple[int, int]:
    """An RDB length (`rdbLoadLen`); the encoded-string forms are refused here."""
    if p >= end:
        raise _Incomplete(p + 1)
    b = buf[p]
    if b < 0x40:
        return b, p + 1
    if b < 0x80:
        if p + 2 > end:
            raise _Incomplete(p + 2)
        return ((b & 0x3F) << 8) | buf[p + 1], p + 2
    if b == 0x80:
        if p + 5 > end:
            raise _Incomplete(p + 5)
        return _u32be(buf, p + 1)[0], p + 5
    if b == 0x81:
        if p + 9 > end:
            raise _Incomplete(p + 9)
        return _u64be(buf, p + 1)[0], p + 9
    raise RDBError(f"invalid length encoding 0x{b:02x}", p)


def _read_string(buf: bytes, p: int, end: int) -> tuple[bytes, int]:
    """An RDB string (`rdbGenericLoadStringObject`): raw, int-encoded (as decimal) or LZF."""
    if p >= end:
        raise _Incomplete(p + 1)
    b = buf[p]
    if b < 0x40:
        s = p + 1
        e = s + b
    elif b < 0x80:
        if p + 2 > end:
            raise _Incomplete(p + 2)
        s = p + 2
        e = s + (((b & 0x3F) << 8) | buf[p + 1])
    elif b == 0x80:
        if p + 5 > end:
            raise _Incomplete(p + 5)
        s = p + 5
        e = s + _u32be(buf, p + 1)[0]
    elif b == 0x81:
        if p + 9 > end:
            raise _Incomplete(p + 9)
        s = p + 9
        e = s + _u64be(buf, p + 1)[0]
    elif b == 0xC0:
        if p + 2 > end:
            raise _Incomplete(p + 2)
        v = buf[p + 1]
        return b"%d" % (v - 256 if v > 127 else v), p + 2
    elif b == 0xC1:
        if p + 3 > end:
            raise _Incomplete(p + 3)
        return b"%d" % _i16(buf, p + 1)[0], p + 3
    elif b == 0xC2:
        if p + 5 > end:
            raise _Incomplete(p + 5)
        return b"%d" % _i32(buf, p + 1)[0], p + 5
    elif b == 0xC3:
        clen, q = _read_len(buf, p + 1, end)
        ulen, q = _read_len(buf, q, end)
        e = q + clen
        if e > end:
            raise _Incomplete(e)
        try:
            return lzf_decompress(buf[q:e], ulen), e
        except RDBError as err:
            raise RDBError(err.reason, p) from None
    elif b > 0xC3:
        raise RDBError(f"invalid string encoding 0x{b:02x}", p)
    else:
        raise RDBError(f"invalid length encoding 0x{b:02x}", p)
    if e > end:
        raise _Incomplete(e)
    return buf[s:e], e


def _skip_string(buf: bytes | bytearray, p: int, end: int) -> int:
    """Where the RDB string at `p` ends, without reading its content (for the scanner)."""
    if p >= end:
        raise _Incomplete(p + 1)
    b = buf[p]
    if b < 0x40:
        return p + 1 + b
    if b < 0xC0:
        n, q = _read_len(buf, p, end)
        return q + n
    if b == 0xC0:
        return p + 2
    if b == 0xC1:
        return p + 3
    if b == 0xC2:
        return p + 5
    if b == 0xC3:
        clen, q = _read_len(buf, p + 1, end)
        _, q = _read_len(buf, q, end)
        return q + clen
    raise RDBError(f"invalid string encoding 0x{b:02x}", p)


def _read_fixed(p: int, n: int, end: int) -> int:
    e = p + n
    if e > end:
        raise _Incomplete(e)
    return e


def _read_string_double(buf: bytes, p: int, end: int) -> tuple[float, int]:
    """A score of the old ZSET type 3 (`rdbLoadDoubleValue`): length byte + ASCII."""
    if p >= end:
        raise _Incomplete(p + 1)
    b = buf[p]
    if b == 253:
        return float("nan"), p + 1
    if b == 254:
        return float("inf"), p + 1
    if b == 255:
        return float("-inf"), p + 1
    e = p + 1 + b
    if e > end:
        raise _Incomplete(e)
    try:
        return float(buf[p + 1 : e]), e
    except ValueError:
        raise RDBError(f"invalid zset score {buf[p + 1 : e]!r}", p) from None


# ---- value readers: (buf, p, end, rdb_type) -> (value, new p) ----


def _v_string(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    return _read_string(buf, p, end)


def _v_list(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    n, p = _read_len(buf, p, end)
    out: list[bytes] = []
    append = out.append
    rs = _read_string
    for _ in range(n):
        if p < end:
            b = buf[p]
            if b < 64:
                e = p + 1 + b
                if e <= end:
                    append(buf[p + 1 : e])
                    p = e
                    continue
        v, p = rs(buf, p, end)
        append(v)
    return out, p


def _v_set(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    start = p
    items, p = _v_list(buf, p, end, t)
    out = OrderedSet(items, 2)  # type: ignore[arg-type]
    if len(out) != len(items):  # type: ignore[arg-type]
        raise RDBError("duplicate set members", start)
    return out, p


def _v_hash(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    start = p
    n, p = _read_len(buf, p, end)
    out: dict[bytes, bytes] = {}
    rs = _read_string
    for _ in range(n):
        f, p = rs(buf, p, end)
        out[f], p = rs(buf, p, end)
    if len(out) != n:
        raise RDBError("duplicate hash fields", start)
    return out, p


def _v_zset(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    start = p
    n, p = _read_len(buf, p, end)
    out = ZSetValue()
    rs = _read_string
    binary = t == 5
    for _ in range(n):
        m, p = rs(buf, p, end)
        if binary:
            if p + 8 > end:
                raise _Incomplete(p + 8)
            s = _f64(buf, p)[0]
            p += 8
        else:
            s, p = _read_string_double(buf, p, end)
        if s != s:
            raise RDBError(f"zset member {m!r} has a NaN score", p)
        out[m] = s
    if len(out) != n:
        raise RDBError("duplicate zset members", start)
    return out, p


def _module_stream_end(buf: bytes, p: int, end: int) -> int:
    """Walk a module opcode stream (`rdbLoadCheckModuleValue`) to just after its EOF (0)."""
    while True:
        op, p = _read_len(buf, p, end)
        if op == 0:
            return p
        if op == 1 or op == 2:
            _, p = _read_len(buf, p, end)
        elif op == 3:
            p = _read_fixed(p, 4, end)
        elif op == 4:
            p = _read_fixed(p, 8, end)
        elif op == 5:
            p = _skip_string(buf, p, end)
            if p > end:
                raise _Incomplete(p)
        else:
            raise RDBError(f"unknown module opcode {op}", p - 1)


def _v_module(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    if t == 6:
        raise RDBUnsupportedError(
            "module value in the Redis 4.0 release-candidate format (type 6) is not supported", p
        )
    mid, p = _read_len(buf, p, end)
    raw_start = p
    p = _module_stream_end(buf, p, end)
    return module_value(mid, module_name(mid), mid & 1023, buf[raw_start:p]), p


def _blob_error(e: RDBError, what: str, p: int) -> RDBError:
    """An error found inside a blob, re-anchored at the blob's string header `p`."""
    return type(e)(f"{what}: {e.reason} (at byte {e.offset} of the blob)", p)


def _pairs_to_dict(items: list, what: str, p: int) -> dict[bytes, bytes]:
    if len(items) & 1:
        raise RDBError(f"{what} holds an odd number of entries ({len(items)})", p)
    it = iter(items)
    out = dict(zip(it, it))
    if len(out) * 2 != len(items):
        raise RDBError(f"{what} has duplicate fields", p)
    return out


def _pairs_to_zset(items: list, what: str, p: int) -> ZSetValue:
    """(member, score) entries, integers already in decimal: float() parses both forms."""
    if len(items) & 1:
        raise RDBError(f"{what} holds an odd number of entries ({len(items)})", p)
    try:
        out = ZSetValue(zip(items[0::2], map(float, items[1::2])))
    except ValueError:
        raise RDBError(f"{what} has a score that is not a number", p) from None
    if len(out) * 2 != len(items):
        raise RDBError(f"{what} has duplicate members", p)
    return out


def _v_hash_zipmap(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    blob, q = _read_string(buf, p, end)
    try:
        pairs = decode_zipmap(blob)
    except RDBError as e:
        raise _blob_error(e, "hash zipmap", p) from None
    out = dict(pairs)
    if len(out) != len(pairs):
        raise RDBError("hash zipmap has duplicate fields", p)
    return out, q


def _v_list_ziplist(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    blob, q = _read_string(buf, p, end)
    try:
        return decode_ziplist(blob), q  # type: ignore[return-value]
    except RDBError as e:
        raise _blob_error(e, "list ziplist", p) from None


def _v_set_intset(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    blob, q = _read_string(buf, p, end)
    try:
        ints = decode_intset(blob)
    except RDBError as e:
        raise _blob_error(e, "set intset", p) from None
    return {b"%d" % v for v in ints}, q


def _v_set_listpack(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    blob, q = _read_string(buf, p, end)
    try:
        items = decode_listpack(blob)
    except RDBError as e:
        raise _blob_error(e, "set listpack", p) from None
    out = OrderedSet(items, 20)  # type: ignore[arg-type]
    if len(out) != len(items):
        raise RDBError("set listpack has duplicate members", p)
    return out, q


def _v_zset_ziplist(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    blob, q = _read_string(buf, p, end)
    try:
        items = decode_ziplist(blob)
    except RDBError as e:
        raise _blob_error(e, "zset ziplist", p) from None
    return _pairs_to_zset(items, "zset ziplist", p), q


def _v_zset_listpack(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    blob, q = _read_string(buf, p, end)
    try:
        items = decode_listpack(blob)
    except RDBError as e:
        raise _blob_error(e, "zset listpack", p) from None
    return _pairs_to_zset(items, "zset listpack", p), q


def _v_hash_ziplist(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    blob, q = _read_string(buf, p, end)
    try:
        items = decode_ziplist(blob)
    except RDBError as e:
        raise _blob_error(e, "hash ziplist", p) from None
    return _pairs_to_dict(items, "hash ziplist", p), q


def _v_hash_listpack(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    blob, q = _read_string(buf, p, end)
    try:
        items = decode_listpack(blob)
    except RDBError as e:
        raise _blob_error(e, "hash listpack", p) from None
    return _pairs_to_dict(items, "hash listpack", p), q


def _v_quicklist(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    """Types 14 (ziplist nodes) and 18 (`container` + PLAIN element or PACKED listpack)."""
    n, p = _read_len(buf, p, end)
    v2 = t == 18
    decode = decode_listpack if v2 else decode_ziplist
    out: list[bytes] = []
    for _ in range(n):
        node = p
        if v2:
            container, p = _read_len(buf, p, end)
            if container != 2:
                if container != 1:
                    raise RDBError(f"quicklist node container {container} is neither 1 nor 2", node)
                blob, p = _read_string(buf, p, end)
                if not blob:
                    raise RDBError("empty quicklist node", node)
                out.append(blob)
                continue
        blob, p = _read_string(buf, p, end)
        try:
            items = decode(blob)
        except RDBError as e:
            what = "quicklist listpack node" if v2 else "quicklist ziplist node"
            raise _blob_error(e, what, node) from None
        if n == 1:
            return items, p  # type: ignore[return-value]
        out += items  # type: ignore[arg-type]
    return out, p


def _hash_with_ttls(out: dict[bytes, bytes], expires: dict[bytes, int]) -> Value:
    return HashValue(out, expires=expires) if expires else out


def _v_hash_metadata(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    """Types 24 and 22 (Redis 7.4 RC): [minExpire] then (ttl, field, value) per field."""
    start = p
    min_expire = 0
    if t == 24:
        p = _read_fixed(p, 8, end)
        min_expire = _u64(buf, p - 8)[0]
    n, p = _read_len(buf, p, end)
    out: dict[bytes, bytes] = {}
    expires: dict[bytes, int] = {}
    rs = _read_string
    for _ in range(n):
        ttl, p = _read_len(buf, p, end)
        f, p = rs(buf, p, end)
        out[f], p = rs(buf, p, end)
        if ttl:
            expires[f] = ttl + min_expire - 1 if t == 24 else ttl
    if len(out) != n:
        raise RDBError("duplicate hash fields", start)
    return _hash_with_ttls(out, expires), p


def _v_hash_listpack_ex(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    """Types 25 and 23 (Redis 7.4 RC): [minExpire] then a listpack of (field, value, ttl)."""
    if t == 25:
        p = _read_fixed(p, 8, end)
    blob, q = _read_string(buf, p, end)
    try:
        items = decode_listpack(blob, raw_ints=True)
    except RDBError as e:
        raise _blob_error(e, "hash listpack-ex", p) from None
    if len(items) % 3:
        raise RDBError(f"hash listpack-ex holds {len(items)} entries, not triples", p)
    out: dict[bytes, bytes] = {}
    expires: dict[bytes, int] = {}
    for i in range(0, len(items), 3):
        f, v, ttl = _as_bytes(items[i]), _as_bytes(items[i + 1]), items[i + 2]
        out[f] = v
        if not isinstance(ttl, int):
            raise RDBError(f"hash listpack-ex field {f!r} has a non-integer TTL", p)
        if ttl:
            expires[f] = ttl
    if len(out) * 3 != len(items):
        raise RDBError("hash listpack-ex has duplicate fields", p)
    # A HashValue even without a TTL left: the server holds a listpackex, which a hash
    # never leaves (it lists fields by expiry, and OBJECT ENCODING says so).
    return HashValue(out, expires=expires), q


def _v_valkey_hash2(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    """Valkey 9 HASH_2: (field, value, int64 expire ms or -1) per field."""
    start = p
    n, p = _read_len(buf, p, end)
    out: dict[bytes, bytes] = {}
    expires: dict[bytes, int] = {}
    rs = _read_string
    for _ in range(n):
        f, p = rs(buf, p, end)
        out[f], p = rs(buf, p, end)
        p = _read_fixed(p, 8, end)
        exp = _i64(buf, p - 8)[0]
        if exp != -1:
            expires[f] = exp
    if len(out) != n:
        raise RDBError("duplicate hash fields", start)
    return _hash_with_ttls(out, expires), p


def _stream_int(items: list, i: int, what: str) -> int:
    if i >= len(items):
        raise RDBError(f"stream listpack ends before the {what}", 0)
    v = items[i]
    if not isinstance(v, int):
        raise RDBError(f"stream listpack {what} is not an integer: {v!r}", 0)
    return v


def _as_bytes(v: bytes | int) -> bytes:
    return v if isinstance(v, bytes) else b"%d" % v


def _stream_listpack_entries(
    blob: bytes, ms: int, seq: int, entries: dict[StreamID, list[tuple[bytes, bytes]]]
) -> None:
    """Add the live entries of one stream node listpack (`t_stream.c` layout) to `entries`.

    Master entry: count, deleted, num_fields, fields..., 0. Then per entry: flags, ms_diff,
    seq_diff, [num_fields, (field, value)... | values... with SAMEFIELDS], lp_count.
    """
    items = decode_listpack(blob, raw_ints=True)
    if not items:
        raise RDBError("empty listpack inside stream", 0)
    count = _stream_int(items, 0, "entry count")
    deleted = _stream_int(items, 1, "deleted count")
    nmf = _stream_int(items, 2, "master field count")
    if nmf < 0 or 3 + nmf >= len(items):
        raise RDBError(f"stream master entry claims {nmf} fields", 0)
    master_fields = [_as_bytes(f) for f in items[3 : 3 + nmf]]
    if _stream_int(items, 3 + nmf, "master entry terminator") != 0:
        raise RDBError("stream master entry is not terminated by 0", 0)
    i = 4 + nmf
    n_items = len(items)
    for _ in range(count + deleted):
        flags = _stream_int(items, i, "entry flags")
        ms_diff = _stream_int(items, i + 1, "entry id")
        seq_diff = _stream_int(items, i + 2, "entry id")
        i += 3
        if flags & 2:  # STREAM_ITEM_FLAG_SAMEFIELDS
            nf = nmf
            if i + nf > n_items:
                raise RDBError("stream entry runs past its listpack", 0)
            fields = list(zip(master_fields, [_as_bytes(v) for v in items[i : i + nf]]))
            i += nf
            expected_count = nf + 3
        else:
            nf = _stream_int(items, i, "entry field count")
            i += 1
            if nf < 0 or i + 2 * nf > n_items:
                raise RDBError("stream entry runs past its listpack", 0)
            kv = [_as_bytes(v) for v in items[i : i + 2 * nf]]
            fields = list(zip(kv[0::2], kv[1::2]))
            i += 2 * nf
            expected_count = 2 * nf + 4
        if _stream_int(items, i, "entry lp-count") != expected_count:
            raise RDBError("stream entry lp-count does not match its field count", 0)
        i += 1
        if not flags & 1:  # not STREAM_ITEM_FLAG_DELETED
            # Deltas are int64 and the sums wrap as uint64 (`streamGetEdgeID`: master id +
            # delta in unsigned arithmetic), so ids past 2**63 come back right.
            eid = ((ms + ms_diff) & _U64, (seq + seq_diff) & _U64)
            if eid in entries:
                raise RDBError(f"duplicate stream entry id {eid[0]}-{eid[1]}", 0)
            entries[eid] = fields
    if i != n_items:
        raise RDBError("stream listpack has entries beyond its master entry counts", 0)


def _read_id_lens(buf: bytes, p: int, end: int) -> tuple[StreamID, int]:
    ms, p = _read_len(buf, p, end)
    seq, p = _read_len(buf, p, end)
    return (ms, seq), p


def _v_stream(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    """Types 15/19/21 (`rdbLoadObject`, RDB_TYPE_STREAM_LISTPACKS*)."""
    n_lp, p = _read_len(buf, p, end)
    entries: dict[StreamID, list[tuple[bytes, bytes]]] = {}
    for _ in range(n_lp):
        node = p
        nodekey, p = _read_string(buf, p, end)
        if len(nodekey) != 16:
            raise RDBError(f"stream node key is {len(nodekey)} bytes, not a 16-byte id", node)
        ms, seq = _id_be(nodekey, 0)
        lp_at = p
        lp, p = _read_string(buf, p, end)
        try:
            _stream_listpack_entries(lp, ms, seq, entries)
        except RDBError as e:
            raise RDBError(f"stream node {ms}-{seq}: {e.reason}", lp_at) from None
    s = StreamValue(entries=dict(sorted(entries.items())))
    s.length, p = _read_len(buf, p, end)
    s.last_id, p = _read_id_lens(buf, p, end)
    if t >= 19:
        s.first_id, p = _read_id_lens(buf, p, end)
        s.max_deleted_id, p = _read_id_lens(buf, p, end)
        s.entries_added, p = _read_len(buf, p, end)
    else:
        # What rdbLoadObject derives for a v1 stream (streamGetEdgeID; the model's (0,0)
        # stands for "no entry").
        s.first_id = next(iter(s.entries), (0, 0))
        s.entries_added = s.length
    if s.length and not n_lp:
        raise RDBError("stream length is non-zero but it has no listpacks", p)
    n_groups, p = _read_len(buf, p, end)
    names: set[bytes] = set()
    for _ in range(n_groups):
        at = p
        name, p = _read_string(buf, p, end)
        if name in names:
            raise RDBError(f"duplicate stream consumer group {name!r}", at)
        names.add(name)
        last_id, p = _read_id_lens(buf, p, end)
        entries_read: int | None = None
        if t >= 19:
            entries_read, p = _read_len(buf, p, end)
            if entries_read == _UINT64_MAX:
                entries_read = -1
        group = StreamGroup(name, last_id, entries_read)
        pel = group.pel
        n_pel, p = _read_len(buf, p, end)
        for _ in range(n_pel):
            if p + 24 > end:
                raise _Incomplete(p + 24)
            eid = _id_be(buf, p)
            delivery_time = _i64(buf, p + 16)[0]
            count, q = _read_len(buf, p + 24, end)
            if eid in pel:
                raise RDBError(f"duplicate PEL entry {eid[0]}-{eid[1]} in group {name!r}", p)
            pel[eid] = StreamPendingEntry(delivery_time, count)
            p = q
        n_consumers, p = _read_len(buf, p, end)
        cnames: set[bytes] = set()
        for _ in range(n_consumers):
            at = p
            cname, p = _read_string(buf, p, end)
            if cname in cnames:
                raise RDBError(f"duplicate consumer {cname!r} in group {name!r}", at)
            cnames.add(cname)
            p = _read_fixed(p, 8, end)
            seen = _i64(buf, p - 8)[0]
            active = None
            if t >= 21:
                p = _read_fixed(p, 8, end)
                active = _i64(buf, p - 8)[0]
            consumer = StreamConsumer(cname, seen, active)
            n_cpel, p = _read_len(buf, p, end)
            if p + 16 * n_cpel > end:
                raise _Incomplete(p + 16 * n_cpel)
            owned = consumer.pending
            for _ in range(n_cpel):
                eid = _id_be(buf, p)
                if eid not in pel:
                    raise RDBError(
                        f"consumer {cname!r} owns {eid[0]}-{eid[1]}, which is not in the PEL "
                        f"of group {name!r}",
                        p,
                    )
                owned.append(eid)
                p += 16
            if len(set(owned)) != len(owned):
                raise RDBError(f"duplicate PEL entry in consumer {cname!r}", at)
            group.consumers.append(consumer)
        s.groups.append(group)
    return s, p


_COMMON_READERS: Final[dict[int, Callable[[bytes, int, int, int], tuple[Value, int]]]] = {
    0: _v_string,
    1: _v_list,
    2: _v_set,
    3: _v_zset,
    4: _v_hash,
    5: _v_zset,
    6: _v_module,
    7: _v_module,
    9: _v_hash_zipmap,
    10: _v_list_ziplist,
    11: _v_set_intset,
    12: _v_zset_ziplist,
    13: _v_hash_ziplist,
    14: _v_quicklist,
    15: _v_stream,
    16: _v_hash_listpack,
    17: _v_zset_listpack,
    18: _v_quicklist,
    19: _v_stream,
    20: _v_set_listpack,
    21: _v_stream,
}


def _value_readers(
    version: int, valkey: bool
) -> dict[int, Callable[[bytes, int, int, int], tuple[Value, int]]]:
    """The object types a file of this dialect/version may hold, with their readers."""
    readers = dict(_COMMON_READERS)
    if valkey:
        readers[22] = _v_valkey_hash2
    elif version >= 12:
        readers[22] = _v_hash_metadata
        readers[23] = _v_hash_listpack_ex
        readers[24] = _v_hash_metadata
        readers[25] = _v_hash_listpack_ex
    return readers


def _unknown_type(
    t: int, version: int, valkey: bool, at: int, *, is_type: bool = False
) -> RDBUnsupportedError:
    """The error for a byte that is no known type or opcode (`is_type`: known to be a type)."""
    dialect = f"VALKEY{version:03d}" if valkey else f"RDB version {version}"
    if is_type or t < 64:
        return RDBUnsupportedError(f"unsupported object type {t} in a {dialect} file", at)
    return RDBUnsupportedError(f"unsupported opcode {t} (0x{t:02x}) in a {dialect} file", at)


def decode_value_prefix(
    rdb_type: int, payload: bytes, *, rdb_version: int = 12, valkey: bool = False
) -> tuple[Value, int]:
    """Decode the value at the start of `payload`: (value, bytes consumed).

    `payload` holds what follows the type byte in an RDB key record or a DUMP payload.
    Empty collections are returned as such (the reader, not this function, skips them).
    """
    buf = bytes(payload)
    reader = _value_readers(rdb_version, valkey).get(rdb_type)
    if reader is None:
        raise _unknown_type(rdb_type, rdb_version, valkey, 0, is_type=True)
    try:
        return reader(buf, 0, len(buf), rdb_type)
    except _Incomplete as inc:
        raise RDBError(
            f"truncated value: {inc.need - len(buf)} more bytes needed", len(buf)
        ) from None
    except (IndexError, ValueError, TypeError, OverflowError, struct.error) as e:
        raise RDBError(f"malformed value ({type(e).__name__}: {e})", 0) from None


def decode_value(
    rdb_type: int, payload: bytes, *, rdb_version: int = 12, valkey: bool = False
) -> Value:
    """Decode ONE object value that fills `payload` exactly (see `decode_value_prefix`)."""
    value, used = decode_value_prefix(rdb_type, payload, rdb_version=rdb_version, valkey=valkey)
    if used != len(payload):
        raise RDBError(f"{len(payload) - used} unexpected bytes after the value", used)
    return value


# ---- the resumable scanner (slow mode): finds where a cut record ends ----

_ScanGen = Generator[int, None, int]


def _g_len(tail: bytearray, p: int) -> Generator[int, None, tuple[int, int]]:
    while True:
        try:
            return _read_len(tail, p, len(tail))
        except _Incomplete as inc:
            yield inc.need


def _g_str(tail: bytearray, p: int) -> _ScanGen:
    while True:
        try:
            return _skip_string(tail, p, len(tail))
        except _Incomplete as inc:
            yield inc.need


def _skip_items(
    tail: bytearray, p: int, count: int, pattern: tuple[str | int, ...]
) -> tuple[int, int, int]:
    """Skip up to `count` items of `pattern` ("S" string, "L" length, "D" string double,
    int = fixed bytes); returns (p, items left, bytes needed to go on)."""
    end = len(tail)
    try:
        while count:
            q = p
            for op in pattern:
                if op == "S":
                    q = _skip_string(tail, q, end)
                elif op == "L":
                    _, q = _read_len(tail, q, end)
                elif op == "D":
                    if q >= end:
                        raise _Incomplete(q + 1)
                    b = tail[q]
                    q += 1 if b >= 253 else 1 + b
                else:
                    q += op  # type: ignore[operator]
            p = q
            count -= 1
    except _Incomplete as inc:
        return p, count, inc.need
    return p, 0, 0


def _g_items(tail: bytearray, p: int, count: int, pattern: tuple[str | int, ...]) -> _ScanGen:
    while True:
        p, count, need = _skip_items(tail, p, count, pattern)
        if not count:
            return p
        yield need


def _g_need(tail: bytearray, p: int) -> _ScanGen:
    while len(tail) < p:
        yield p
    return p


def _g_module_stream(tail: bytearray, p: int) -> _ScanGen:
    while True:
        op, p = yield from _g_len(tail, p)
        if op == 0:
            return p
        if op == 1 or op == 2:
            _, p = yield from _g_len(tail, p)
        elif op == 3:
            p += 4
        elif op == 4:
            p += 8
        elif op == 5:
            p = yield from _g_str(tail, p)
        else:
            raise RDBError(f"unknown module opcode {op}", p)


def _g_stream(tail: bytearray, p: int, t: int) -> _ScanGen:
    n, p = yield from _g_len(tail, p)
    p = yield from _g_items(tail, p, n, ("S", "S"))
    # length, last_id; v19+: first_id, max_deleted_id, entries_added
    p = yield from _g_items(tail, p, 1, ("L",) * (8 if t >= 19 else 3))
    n_groups, p = yield from _g_len(tail, p)
    for _ in range(n_groups):
        p = yield from _g_items(tail, p, 1, ("S", "L", "L", "L")[: 4 if t >= 19 else 3])
        n, p = yield from _g_len(tail, p)
        p = yield from _g_items(tail, p, n, (24, "L"))
        n_consumers, p = yield from _g_len(tail, p)
        for _ in range(n_consumers):
            p = yield from _g_str(tail, p)
            p += 16 if t >= 21 else 8  # seen_time [+ active_time]
            n, p = yield from _g_len(tail, p)
            p += 16 * n
    return p


def _g_value(tail: bytearray, p: int, t: int, valkey: bool) -> _ScanGen:
    if t == 0 or t in (9, 10, 11, 12, 13, 16, 17, 20) or (t == 23 and not valkey):
        return (yield from _g_str(tail, p))
    if t in (1, 2, 14):
        n, p = yield from _g_len(tail, p)
        return (yield from _g_items(tail, p, n, ("S",)))
    if t == 3:
        n, p = yield from _g_len(tail, p)
        return (yield from _g_items(tail, p, n, ("S", "D")))
    if t == 4:
        n, p = yield from _g_len(tail, p)
        return (yield from _g_items(tail, p, n, ("S", "S")))
    if t == 5:
        n, p = yield from _g_len(tail, p)
        return (yield from _g_items(tail, p, n, ("S", 8)))
    if t == 7:
        _, p = yield from _g_len(tail, p)
        return (yield from _g_module_stream(tail, p))
    if t == 18:
        n, p = yield from _g_len(tail, p)
        return (yield from _g_items(tail, p, n, ("L", "S")))
    if t in (15, 19, 21):
        return (yield from _g_stream(tail, p, t))
    if t == 22 and valkey:
        n, p = yield from _g_len(tail, p)
        return (yield from _g_items(tail, p, n, ("S", "S", 8)))
    if t == 22 or t == 24:
        p += 8 if t == 24 else 0
        n, p = yield from _g_len(tail, p)
        return (yield from _g_items(tail, p, n, ("L", "S", "S")))
    if t == 25:
        return (yield from _g_str(tail, p + 8))
    raise RDBError(f"type {t}", p)  # let the decoder report it


# ---- the reader ----


class RDBReader:
    """A sans-I/O RDB parser: `feed()` bytes, `feed_eof()` at the end, take `next_events()`.

    Events come in file order: `Header`, then `Aux`, `ModuleAux`, `Function`, `SelectDB`,
    `ResizeDB`, `SlotInfo` and `KeyEntry` records, then `End`. After `End` the reader takes no
    more records; whatever follows the checksum (e.g. the 40-byte EOF mark of a diskless
    transfer) accumulates in `unused_data`.

    With `sink=KeySink(dbs, expires)` keys are stored into those dicts instead (see `KeySink`)
    and produce no event; IDLE/FREQ are dropped; a key of a DB the sink has no dict for is an
    `RDBSinkError` (also a `ValueError`). All other events are produced as usual.

    Errors are `RDBError` (malformed or truncated), `RDBUnsupportedError` (unknown version,
    type or opcode) or `RDBChecksumError`, each with the file byte offset. They are raised by
    the `feed()`/`feed_eof()` call that finds them; events completed before the error are
    still returned by `next_events()`, which then raises the same error again.
    """

    def __init__(self, verify_checksum: bool = True, *, sink: KeySink | None = None) -> None:
        self.verify_checksum = verify_checksum
        # Sink mode: keys are stored into `sink` instead of becoming KeyEntry events.
        self.sink = sink
        self._fast: _LoadRecords | None = _load_speedups() if sink is not None else None
        self.version: int | None = None
        self.valkey = False
        self.skipped_empty_keys = 0
        # CRC64 of the bytes up to the EOF opcode, once End was reached (None before RDB 5).
        self.computed_checksum: int | None = None
        self._events: list[Event] = []
        self._base = 0  # file offset of the current buffer's first byte
        self._crc = 0  # CRC64 of the file bytes before _base
        self._rec_start = 0
        self._db = 0
        self._expire: int | None = None
        self._idle: int | None = None
        self._freq: int | None = None
        self._readers: dict[int, Callable[[bytes, int, int, int], tuple[Value, int]]] = {}
        self._tail: bytearray | None = None  # slow mode: the bytes of a cut record
        self._scanner: _ScanGen | None = None
        self._scan_failed = False
        self._need = 0  # slow mode: tail length at which to resume
        self._eof = False
        self._done = False
        self._error: RDBError | None = None
        self._unused = bytearray()

    # -- public API --

    @property
    def offset(self) -> int:
        """Bytes of the file consumed so far (the RDB's length once `End` was produced)."""
        return self._base

    @property
    def done(self) -> bool:
        """True once the EOF opcode (and checksum) were read."""
        return self._done

    @property
    def unused_data(self) -> bytes:
        """Bytes fed after the end of the RDB (after its checksum)."""
        return bytes(self._unused)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Give the reader the next bytes of the file (any size, including 1)."""
        if self._error is not None:
            raise self._error
        if self._done:
            self._unused += data
            return
        if self._eof:
            raise RuntimeError("feed() after feed_eof()")
        if not data:
            return
        tail = self._tail
        if tail is not None:
            if len(data) >= len(tail):
                # The buffer at least doubles: retrying the decoder costs no more than the
                # new bytes (amortised linear), and a cut small record needs nothing else.
                self._tail = None
                self._scanner = None
                self._run(b"".join((tail, data)))
                return
            tail += data
            if len(tail) >= self._need:
                self._resume()
            return
        self._run(data if isinstance(data, bytes) else bytes(data))

    def feed_eof(self) -> None:
        """No more bytes will come: parse what is buffered, raise if the RDB is incomplete."""
        if self._error is not None:
            raise self._error
        if self._done or self._eof:
            return
        self._eof = True
        if self._tail is not None:
            buf = bytes(self._tail)
            self._tail = None
            self._scanner = None
            self._run(buf)
            return
        self._fail(
            RDBError(
                "truncated RDB: the input ends before the EOF opcode"
                if self.version is not None
                else "truncated RDB: the input ends before the 9-byte header",
                self._base,
            )
        )

    def next_events(self) -> list[Event]:
        """The events completed since the last call (empty when more bytes are needed)."""
        events = self._events
        if events:
            self._events = []
            return events
        if self._error is not None:
            raise self._error
        return []

    # -- driver --

    def _fail(self, err: RDBError) -> NoReturn:
        self._error = err
        raise err

    def _resume(self) -> None:
        """Slow mode, enough bytes for the next step: scan on, or decode the whole record."""
        tail = self._tail
        assert tail is not None
        if self._scanner is None and not self._scan_failed:
            self._scanner = self._scan_record(tail)
        scanner = self._scanner
        if scanner is not None:
            try:
                self._need = scanner.send(None)
                return
            except StopIteration as stop:
                self._scanner = None
                if len(tail) < stop.value:
                    self._need = stop.value
                    return
        self._tail = None
        self._run(bytes(tail), after_scan=True)

    def _run(self, buf: bytes, after_scan: bool = False) -> None:
        """Parse `buf` (starting at file offset `_base`) as far as it goes."""
        try:
            if len(buf) >= _GC_PAUSE_MIN and gc.isenabled():
                # Tens of thousands of new container objects that hold no reference cycle:
                # the cyclic collector would only re-scan them (~20% of the time on 1 MiB).
                gc.disable()
                try:
                    pos = self._parse(buf)
                finally:
                    gc.enable()
            else:
                pos = self._parse(buf)
        except _Incomplete as inc:
            rec = self._rec_start
            self._consume(buf, rec)
            if self._eof:
                self._fail(
                    RDBError(
                        f"truncated RDB: the input ends inside the record at byte {self._base}"
                        f" ({inc.need - len(buf)} more bytes needed at least)",
                        self._base + len(buf) - rec,
                    )
                )
            self._tail = tail = bytearray(memoryview(buf)[rec:])
            self._scanner = None
            need = inc.need - rec
            # Did the scanner call this record complete while the decoder wants more? Then
            # stop trusting the scanner for it and wait until the buffer doubles.
            self._scan_failed = after_scan and rec == 0
            self._need = max(need, 2 * len(tail)) if self._scan_failed else need
            return
        except RDBError as e:
            self._fail(_rebased(e, self._base))
        except (IndexError, ValueError, TypeError, OverflowError, KeyError, struct.error) as e:
            self._fail(
                RDBError(
                    f"malformed record ({type(e).__name__}: {e})", self._base + self._rec_start
                )
            )
        if not self._done:
            self._consume(buf, pos)

    def _consume(self, buf: bytes, upto: int) -> None:
        self._crc = crc64(memoryview(buf)[:upto], self._crc)
        self._base += upto

    def _scan_record(self, tail: bytearray) -> _ScanGen:
        """Generator: yields the tail length it needs next, returns the record's length."""
        try:
            if self.version is None:
                return (yield from _g_need(tail, 9))
            version = self.version
            t = tail[0]
            p = 1
            if t < 64:
                if t not in self._readers:
                    return len(tail)
                p = yield from _g_str(tail, p)
                p = yield from _g_value(tail, p, t, self.valkey)
            elif t == 255:
                p = 9 if version >= 5 else 1
            elif t == 252:
                p = 9
            elif t == 253:
                p = 5
            elif t == 249:
                p = 2
            elif t in (254, 248):
                p = yield from _g_items(tail, p, 1, ("L",))
            elif t == 251:
                p = yield from _g_items(tail, p, 1, ("L", "L"))
            elif t == 244:
                p = yield from _g_items(tail, p, 1, ("L", "L", "L"))
            elif t == 250:
                p = yield from _g_items(tail, p, 1, ("S", "S"))
            elif t == 245:
                p = yield from _g_str(tail, p)
            elif t == 246:
                p = yield from _g_items(tail, p, 1, ("S", "S"))
                has_desc, p = yield from _g_len(tail, p)
                p = yield from _g_items(tail, p, 2 if has_desc else 1, ("S",))
            elif t == 247:
                p = yield from _g_items(tail, p, 1, ("L", "L", "L"))
                p = yield from _g_module_stream(tail, p)
            else:
                return len(tail)
            return (yield from _g_need(tail, p))
        except RDBError:
            return len(tail)  # malformed: let the decoder raise the precise error

    # -- the record parser --

    def _parse(self, buf: bytes) -> int:
        """Decode complete records of `buf` from 0; return where the last one ended."""
        end = len(buf)
        pos = 0
        events = self._events
        append = events.append
        db = self._db
        expire = self._expire
        idle = self._idle
        freq = self._freq
        readers = self._readers
        key_entry = KeyEntry
        rs = _read_string
        # Sink mode: `kd`/`kx` are the current DB's dicts (None: the sink has no such DB).
        sink = self.sink
        fast = self._fast
        sdbs: list[dict[bytes, Value]] = []
        sexp: list[dict[bytes, int]] = []
        kd: dict[bytes, Value] | None = None
        kx: dict[bytes, int] = {}
        if sink is not None:
            sdbs, sexp = sink.dbs, sink.expires
            if db < len(sdbs):
                kd, kx = sdbs[db], sexp[db]
        stored = 0
        skipped = 0
        try:
            if self.version is None:
                pos = self._parse_header(buf, end)
                readers = self._readers
            version: int = self.version  # type: ignore[assignment]
            while pos < end:
                if fast is not None:
                    # The C path stores a run of simple key records and stops at the first
                    # record (prefixes included) it leaves to the code below.
                    pos, expire, n, n_skipped = fast(buf, pos, db, expire, sdbs, sexp, ZSetValue,
                                                     OrderedSet)
                    stored += n
                    skipped += n_skipped
                    if pos >= end:
                        break
                t = buf[pos]
                if t == 0:
                    # The common record: string key and string value, both < 64 bytes. Reading
                    # past the end raises IndexError and leaves it to the general path.
                    try:
                        b = buf[pos + 1]
                        if b < 64:
                            ke = pos + 2 + b
                            c = buf[ke]
                            if c < 64:
                                ve = ke + 1 + c
                                if ve <= end:
                                    if sink is None:
                                        append(
                                            key_entry(
                                                db,
                                                buf[pos + 2 : ke],
                                                buf[ke + 1 : ve],
                                                expire,
                                                idle,
                                                freq,
                                                0,
                                            )
                                        )
                                    elif kd is not None:
                                        key = buf[pos + 2 : ke]
                                        kd[key] = buf[ke + 1 : ve]
                                        if expire is not None:
                                            kx[key] = expire
                                        stored += 1
                                    else:
                                        raise self._no_db(db, len(sdbs), pos)
                                    pos = ve
                                    expire = idle = freq = None
                                    continue
                    except IndexError:
                        pass
                if t < 64:
                    reader = readers.get(t)
                    if reader is None:
                        raise _unknown_type(t, version, self.valkey, pos)
                    p = pos + 1
                    b = buf[p] if p < end else 0xFF
                    if b < 64 and p + 1 + b <= end:
                        key = buf[p + 1 : p + 1 + b]
                        p += 1 + b
                    else:
                        key, p = rs(buf, p, end)
                    try:
                        value, p = reader(buf, p, end, t)
                    except RDBError as e:
                        raise _rebased(
                            e, 0, f"key {key!r} ({_describe(t, self.valkey)}): "
                        ) from None
                    if not value and value.__class__ is not bytes:
                        skipped += 1
                    elif sink is None:
                        append(key_entry(db, key, value, expire, idle, freq, t))
                    elif kd is not None:
                        kd[key] = value
                        if expire is not None:
                            kx[key] = expire
                        stored += 1
                    else:
                        raise self._no_db(db, len(sdbs), pos)
                    pos = p
                    expire = idle = freq = None
                elif t == 252:  # EXPIRETIME_MS
                    if pos + 9 > end:
                        raise _Incomplete(pos + 9)
                    expire = _i64(buf, pos + 1)[0]
                    pos += 9
                elif t == 253:  # EXPIRETIME (seconds)
                    if pos + 5 > end:
                        raise _Incomplete(pos + 5)
                    expire = _i32(buf, pos + 1)[0] * 1000
                    pos += 5
                elif t == 249:  # FREQ
                    if pos + 2 > end:
                        raise _Incomplete(pos + 2)
                    freq = buf[pos + 1]
                    pos += 2
                elif t == 248:  # IDLE
                    idle, pos = _read_len(buf, pos + 1, end)
                elif t == 254:  # SELECTDB
                    db, p = _read_len(buf, pos + 1, end)
                    append(SelectDB(db))
                    pos = p
                    if sink is not None:
                        if db < len(sdbs):
                            kd, kx = sdbs[db], sexp[db]
                        else:
                            kd = None
                elif t == 251:  # RESIZEDB
                    size, p = _read_len(buf, pos + 1, end)
                    expires, p = _read_len(buf, p, end)
                    append(ResizeDB(size, expires))
                    pos = p
                elif t == 250:  # AUX
                    k, p = rs(buf, pos + 1, end)
                    v, p = rs(buf, p, end)
                    append(Aux(k, v))
                    pos = p
                elif t == 255:  # EOF
                    return self._parse_eof(buf, pos, end, version)
                else:
                    pos = self._parse_rare_opcode(buf, pos, end, t, version)
            return pos
        finally:
            self._rec_start = pos
            self._db = db
            self._expire = expire
            self._idle = idle
            self._freq = freq
            self.skipped_empty_keys += skipped
            if sink is not None:
                sink.keys += stored

    @staticmethod
    def _no_db(db: int, ndbs: int, pos: int) -> RDBSinkError:
        return RDBSinkError(f"snapshot has DB {db} but only {ndbs} databases are configured", pos)

    def _parse_header(self, buf: bytes, end: int) -> int:
        if end < 9:
            raise _Incomplete(9)
        head = buf[:9]
        if head.startswith(b"REDIS"):
            magic, digits = b"REDIS", head[5:]
        elif head.startswith(b"VALKEY"):
            magic, digits = b"VALKEY", head[6:]
        else:
            raise RDBError(
                f"not an RDB file: header {head!r} starts with neither REDIS nor VALKEY", 0
            )
        if not digits.isdigit():
            raise RDBError(f"bad RDB header {head!r}: the version is not a number", 0)
        version = int(digits)
        valkey = magic == b"VALKEY"
        if valkey:
            if version != RDB_VERSION_VALKEY_9:
                raise RDBUnsupportedError(
                    f"unsupported Valkey RDB version {version} "
                    f"(known: VALKEY{RDB_VERSION_VALKEY_9:03d})",
                    len(magic),
                )
        elif 13 <= version <= 15:
            raise RDBUnsupportedError(
                f"unsupported RDB version {version} (Redis 8.6+): its new object types and "
                f"opcodes are not supported; this reader knows RDB 1-{RDB_VERSION_MAX_REDIS} "
                f"and VALKEY080",
                5,
            )
        elif not 1 <= version <= RDB_VERSION_MAX_REDIS:
            raise RDBUnsupportedError(
                f"unsupported RDB version {version} (this reader knows RDB "
                f"1-{RDB_VERSION_MAX_REDIS} and VALKEY080)",
                5,
            )
        self.version = version
        self.valkey = valkey
        self._readers = _value_readers(version, valkey)
        self._events.append(Header(magic, version))
        return 9

    def _parse_eof(self, buf: bytes, pos: int, end: int, version: int) -> int:
        after = pos + 1
        checksum = None
        if version >= 5:
            after = pos + 9
            if after > end:
                raise _Incomplete(after)
            checksum = _u64(buf, pos + 1)[0]
            computed = crc64(memoryview(buf)[: pos + 1], self._crc)
            self.computed_checksum = computed
            if self.verify_checksum and checksum != 0 and checksum != computed:
                raise RDBChecksumError(
                    f"CRC64 mismatch: the file stores 0x{checksum:016x} but its bytes give "
                    f"0x{computed:016x}",
                    pos + 1,
                )
        self._events.append(End(checksum))
        self._done = True
        self._unused += memoryview(buf)[after:]
        self._base += after
        return after

    def _parse_rare_opcode(self, buf: bytes, pos: int, end: int, t: int, version: int) -> int:
        rs = _read_string
        append = self._events.append
        if t == 245:  # FUNCTION2
            code, p = rs(buf, pos + 1, end)
            append(Function(code))
            return p
        if t == 246:  # FUNCTION (7.0 RC): name, engine, has_desc, [desc], code
            name, p = rs(buf, pos + 1, end)
            engine, p = rs(buf, p, end)
            has_desc, p = _read_len(buf, p, end)
            desc = None
            if has_desc:
                desc, p = rs(buf, p, end)
            code, p = rs(buf, p, end)
            append(Function(code, name, engine, desc))
            return p
        if t == 247:  # MODULE_AUX
            mid, p = _read_len(buf, pos + 1, end)
            raw_start = p
            when_opcode, p = _read_len(buf, p, end)
            if when_opcode != 2:
                raise RDBError(f"module aux 'when' opcode is {when_opcode}, not 2 (UINT)", p)
            when, p = _read_len(buf, p, end)
            try:
                p = _module_stream_end(buf, p, end)
            except RDBError as e:
                raise _rebased(e, 0, f"module aux of {module_name(mid)!r}: ") from None
            append(ModuleAux(mid, module_name(mid), when, buf[raw_start:p]))
            return p
        if t == 244:  # SLOT_INFO
            slot, p = _read_len(buf, pos + 1, end)
            size, p = _read_len(buf, p, end)
            expires, p = _read_len(buf, p, end)
            append(SlotInfo(slot, size, expires))
            return p
        raise _unknown_type(t, version, self.valkey, pos)


# ---- files ----


def iter_file(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    verify_checksum: bool = True,
    chunk_size: int = _CHUNK,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[Event]:
    """The events of an RDB file (a path or a binary file object), read `chunk_size` at a time.

    `on_progress(n)` is called with the number of bytes fed after each chunk.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            yield from iter_file(
                f, verify_checksum=verify_checksum, chunk_size=chunk_size, on_progress=on_progress
            )
        return
    reader = RDBReader(verify_checksum=verify_checksum)
    while not reader.done:
        data = source.read(chunk_size)
        if not data:
            break
        try:
            reader.feed(data)
        except RDBError:
            yield from reader.next_events()
            raise
        if on_progress is not None:
            on_progress(len(data))
        yield from reader.next_events()
    if not reader.done:
        try:
            reader.feed_eof()
        except RDBError:
            yield from reader.next_events()
            raise
    yield from reader.next_events()


def read_file(
    path: str | os.PathLike[str] | BinaryIO,
    verify_checksum: bool = True,
    *,
    chunk_size: int = _CHUNK,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[Event]:
    """The events of the RDB file at `path` (see `iter_file`)."""
    return iter_file(
        path, verify_checksum=verify_checksum, chunk_size=chunk_size, on_progress=on_progress
    )
