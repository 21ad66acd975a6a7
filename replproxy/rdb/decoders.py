"""The RDB value decoders: one function per object type, plus the primitives they share.

This module owns the layout of every object value (`src/rdb.c` `rdbLoadObject`): strings,
plain and compact collections (ziplist, listpack, intset, zipmap blobs are decoded by
`encodings`), quicklists, hashes with field TTLs, streams, module values. Each decoder is
`(buf, p, end, rdb_type) -> (value, new p)` over an immutable buffer with an integer position;
it raises `Incomplete(need)` when the value runs past `end` (the caller waits for more bytes)
and `RDBError` for anything malformed, with a position in `buf`. It knows nothing of files,
records, opcodes or feeding: that is `reader` (the record grammar and the driver) and
`scanner` (finding where a record cut by a chunk boundary ends).

Which types a file may hold depends on its dialect and version (`value_readers`): the type
number 22 means Valkey's HASH_2 in a `VALKEY` file; 22-25 are Redis's hash-with-TTL types
in a `REDIS` file of version >= 12, 26 its stream with IDMP state from version 13. The two
records numbered 243 are decoded here too: KEY_META (`read_key_meta`, Redis RDB 13) and
SLOT_IMPORT (`read_slot_import`, Valkey 9).

Module values: `decode_module_value` is the one place that turns a module-value record
(type 7) into a value: a module type the keyspace models (`model.MODULE_TYPES`, the vector
set) gets its own value, any other stays a raw `ModuleValue`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final, TypeVar

from replproxy.rdb.encodings import (
    decode_intset,
    decode_listpack,
    decode_ziplist,
    decode_zipmap,
    lzf_decompress,
)
from replproxy.rdb.model import (
    KEY_META_MAX_CLASSES,
    HashValue,
    KeyMeta,
    OrderedSet,
    RDBError,
    RDBUnsupportedError,
    SlotImport,
    StreamConsumer,
    StreamGroup,
    StreamID,
    StreamIdmp,
    StreamPendingEntry,
    StreamValue,
    Value,
    ZSetValue,
    module_value,
)

__all__ = [
    "Incomplete",
    "ValueReader",
    "decode_module_value",
    "describe",
    "module_name",
    "module_stream_end",
    "read_fixed",
    "read_key_meta",
    "read_len",
    "read_slot_import",
    "read_string",
    "rebased",
    "skip_string",
    "type_encoding_name",
    "unknown_type",
    "value_readers",
]

_u64: Final = struct.Struct("<Q").unpack_from
_u32: Final = struct.Struct("<I").unpack_from
_i64: Final = struct.Struct("<q").unpack_from
_i32: Final = struct.Struct("<i").unpack_from
_i16: Final = struct.Struct("<h").unpack_from
_f64: Final = struct.Struct("<d").unpack_from
_u32be: Final = struct.Struct(">I").unpack_from
_u64be: Final = struct.Struct(">Q").unpack_from
_id_be: Final = struct.Struct(">QQ").unpack_from

_UINT64_MAX: Final = (1 << 64) - 1
_MODULE_CHARSET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

_T = TypeVar("_T")

ValueReader = Callable[[bytes, int, int, int], tuple[Value, int]]
"""A value decoder: (buf, p, end, rdb_type) -> (value, position after it)."""

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
    26: ("stream", "stream listpacks v4 (IDMP)"),
}
_VALKEY_TYPE_ENCODINGS: Final = {22: ("hash", "hashtable with field TTLs (HASH_2)")}


def type_encoding_name(rdb_type: int, valkey: bool = False) -> tuple[str, str]:
    """(Redis type, encoding) an RDB object type number stands for, e.g. 16 -> hash/listpack."""
    if valkey and rdb_type in _VALKEY_TYPE_ENCODINGS:
        return _VALKEY_TYPE_ENCODINGS[rdb_type]
    return _TYPE_ENCODINGS.get(rdb_type, ("unknown", f"type {rdb_type}"))


def describe(rdb_type: int, valkey: bool) -> str:
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


class Incomplete(Exception):
    """Internal: the record needs bytes up to (buffer) index `need` - 1."""

    __slots__ = ("need",)

    def __init__(self, need: int):
        self.need = need


def rebased(e: RDBError, delta: int, prefix: str = "") -> RDBError:
    """The same error with its offset moved by `delta` and an optional context prefix."""
    offset = None if e.offset is None else e.offset + delta
    return type(e)(f"{prefix}{e.reason}", offset)


# ---- primitives: (buf, p, end) -> (value, new p); raise Incomplete or RDBError ----


def read_len(buf: bytes | bytearray, p: int, end: int) -> tuple[int, int]:
    """An RDB length (`rdbLoadLen`); the encoded-string forms are refused here."""
    if p >= end:
        raise Incomplete(p + 1)
    b = buf[p]
    if b < 0x40:
        return b, p + 1
    if b < 0x80:
        if p + 2 > end:
            raise Incomplete(p + 2)
        return ((b & 0x3F) << 8) | buf[p + 1], p + 2
    if b == 0x80:
        if p + 5 > end:
            raise Incomplete(p + 5)
        return _u32be(buf, p + 1)[0], p + 5
    if b == 0x81:
        if p + 9 > end:
            raise Incomplete(p + 9)
        return _u64be(buf, p + 1)[0], p + 9
    raise RDBError(f"invalid length encoding 0x{b:02x}", p)


def read_string(buf: bytes, p: int, end: int) -> tuple[bytes, int]:
    """An RDB string (`rdbGenericLoadStringObject`): raw, int-encoded (as decimal) or LZF."""
    if p >= end:
        raise Incomplete(p + 1)
    b = buf[p]
    if b < 0x40:
        s = p + 1
        e = s + b
    elif b < 0x80:
        if p + 2 > end:
            raise Incomplete(p + 2)
        s = p + 2
        e = s + (((b & 0x3F) << 8) | buf[p + 1])
    elif b == 0x80:
        if p + 5 > end:
            raise Incomplete(p + 5)
        s = p + 5
        e = s + _u32be(buf, p + 1)[0]
    elif b == 0x81:
        if p + 9 > end:
            raise Incomplete(p + 9)
        s = p + 9
        e = s + _u64be(buf, p + 1)[0]
    elif b == 0xC0:
        if p + 2 > end:
            raise Incomplete(p + 2)
        v = buf[p + 1]
        return b"%d" % (v - 256 if v > 127 else v), p + 2
    elif b == 0xC1:
        if p + 3 > end:
            raise Incomplete(p + 3)
        return b"%d" % _i16(buf, p + 1)[0], p + 3
    elif b == 0xC2:
        if p + 5 > end:
            raise Incomplete(p + 5)
        return b"%d" % _i32(buf, p + 1)[0], p + 5
    elif b == 0xC3:
        clen, q = read_len(buf, p + 1, end)
        ulen, q = read_len(buf, q, end)
        e = q + clen
        if e > end:
            raise Incomplete(e)
        try:
            return lzf_decompress(buf[q:e], ulen), e
        except RDBError as err:
            raise RDBError(err.reason, p) from None
    elif b > 0xC3:
        raise RDBError(f"invalid string encoding 0x{b:02x}", p)
    else:
        raise RDBError(f"invalid length encoding 0x{b:02x}", p)
    if e > end:
        raise Incomplete(e)
    return buf[s:e], e


def skip_string(buf: bytes | bytearray, p: int, end: int) -> int:
    """Where the RDB string at `p` ends, without reading its content (for the scanner)."""
    if p >= end:
        raise Incomplete(p + 1)
    b = buf[p]
    if b < 0x40:
        return p + 1 + b
    if b < 0xC0:
        n, q = read_len(buf, p, end)
        return q + n
    if b == 0xC0:
        return p + 2
    if b == 0xC1:
        return p + 3
    if b == 0xC2:
        return p + 5
    if b == 0xC3:
        clen, q = read_len(buf, p + 1, end)
        _, q = read_len(buf, q, end)
        return q + clen
    raise RDBError(f"invalid string encoding 0x{b:02x}", p)


def read_fixed(p: int, n: int, end: int) -> int:
    e = p + n
    if e > end:
        raise Incomplete(e)
    return e


def _read_string_double(buf: bytes, p: int, end: int) -> tuple[float, int]:
    """A score of the old ZSET type 3 (`rdbLoadDoubleValue`): length byte + ASCII."""
    if p >= end:
        raise Incomplete(p + 1)
    b = buf[p]
    if b == 253:
        return float("nan"), p + 1
    if b == 254:
        return float("inf"), p + 1
    if b == 255:
        return float("-inf"), p + 1
    e = p + 1 + b
    if e > end:
        raise Incomplete(e)
    try:
        return float(buf[p + 1 : e]), e
    except ValueError:
        raise RDBError(f"invalid zset score {buf[p + 1 : e]!r}", p) from None


# ---- value readers: (buf, p, end, rdb_type) -> (value, new p) ----


def _v_string(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    return read_string(buf, p, end)


def _v_list(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    n, p = read_len(buf, p, end)
    out: list[bytes] = []
    append = out.append
    rs = read_string
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
    n, p = read_len(buf, p, end)
    out: dict[bytes, bytes] = {}
    rs = read_string
    for _ in range(n):
        f, p = rs(buf, p, end)
        out[f], p = rs(buf, p, end)
    if len(out) != n:
        raise RDBError("duplicate hash fields", start)
    return out, p


def _v_zset(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    start = p
    n, p = read_len(buf, p, end)
    out = ZSetValue()
    rs = read_string
    binary = t == 5
    for _ in range(n):
        m, p = rs(buf, p, end)
        if binary:
            if p + 8 > end:
                raise Incomplete(p + 8)
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


def module_stream_end(buf: bytes, p: int, end: int) -> int:
    """Walk a module opcode stream (`rdbLoadCheckModuleValue`) to just after its EOF (0)."""
    while True:
        op, p = read_len(buf, p, end)
        if op == 0:
            return p
        if op == 1 or op == 2:
            _, p = read_len(buf, p, end)
        elif op == 3:
            p = read_fixed(p, 4, end)
        elif op == 4:
            p = read_fixed(p, 8, end)
        elif op == 5:
            p = skip_string(buf, p, end)
            if p > end:
                raise Incomplete(p)
        else:
            raise RDBError(f"unknown module opcode {op}", p - 1)


def _v_module(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    if t == 6:
        raise RDBUnsupportedError(
            "module value in the Redis 4.0 release-candidate format (type 6) is not supported", p
        )
    mid, p = read_len(buf, p, end)
    raw_start = p
    p = module_stream_end(buf, p, end)
    return decode_module_value(mid, buf[raw_start:p]), p


def decode_module_value(module_id: int, raw: bytes) -> Value:
    """The value of a module-value record (type 7): module id and its raw opcode stream.

    `raw` runs from after the module id through the terminating module opcode 0, and has
    already been walked (`module_stream_end`), so its opcodes are well formed. This is the
    one place where a module's own decoder turns it into a native value (`model.MODULE_TYPES`:
    the keyspace registers the vector set's); without one the value stays a `ModuleValue`,
    kept whole so it can be written out again.
    """
    return module_value(module_id, module_name(module_id), module_id & 1023, raw)


def _blob_error(e: RDBError, what: str, p: int) -> RDBError:
    """An error found inside a blob, re-anchored at the blob's string header `p`."""
    return type(e)(f"{what}: {e.reason} (at byte {e.offset} of the blob)", p)


def _read_blob(
    buf: bytes, p: int, end: int, decode: Callable[[bytes], _T], what: str
) -> tuple[_T, int]:
    """The blob string at `p` (a zipmap, ziplist, intset or listpack) decoded by `decode`,
    and the position after it; an error inside the blob is reported at `p`, as `what`."""
    blob, q = read_string(buf, p, end)
    try:
        return decode(blob), q
    except RDBError as e:
        raise _blob_error(e, what, p) from None


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
    pairs, q = _read_blob(buf, p, end, decode_zipmap, "hash zipmap")
    out = dict(pairs)
    if len(out) != len(pairs):
        raise RDBError("hash zipmap has duplicate fields", p)
    return out, q


def _v_list_ziplist(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    items, q = _read_blob(buf, p, end, decode_ziplist, "list ziplist")
    return items, q  # type: ignore[return-value]


def _v_set_intset(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    ints, q = _read_blob(buf, p, end, decode_intset, "set intset")
    return {b"%d" % v for v in ints}, q


def _v_set_listpack(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    items, q = _read_blob(buf, p, end, decode_listpack, "set listpack")
    out = OrderedSet(items, 20)  # type: ignore[arg-type]
    if len(out) != len(items):
        raise RDBError("set listpack has duplicate members", p)
    return out, q


def _v_zset_ziplist(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    items, q = _read_blob(buf, p, end, decode_ziplist, "zset ziplist")
    return _pairs_to_zset(items, "zset ziplist", p), q


def _v_zset_listpack(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    items, q = _read_blob(buf, p, end, decode_listpack, "zset listpack")
    return _pairs_to_zset(items, "zset listpack", p), q


def _v_hash_ziplist(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    items, q = _read_blob(buf, p, end, decode_ziplist, "hash ziplist")
    return _pairs_to_dict(items, "hash ziplist", p), q


def _v_hash_listpack(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    items, q = _read_blob(buf, p, end, decode_listpack, "hash listpack")
    return _pairs_to_dict(items, "hash listpack", p), q


def _v_quicklist(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    """Types 14 (ziplist nodes) and 18 (`container` + PLAIN element or PACKED listpack)."""
    n, p = read_len(buf, p, end)
    v2 = t == 18
    decode = decode_listpack if v2 else decode_ziplist
    out: list[bytes] = []
    for _ in range(n):
        node = p
        if v2:
            container, p = read_len(buf, p, end)
            if container != 2:
                if container != 1:
                    raise RDBError(f"quicklist node container {container} is neither 1 nor 2", node)
                blob, p = read_string(buf, p, end)
                if not blob:
                    raise RDBError("empty quicklist node", node)
                out.append(blob)
                continue
        blob, p = read_string(buf, p, end)
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
        p = read_fixed(p, 8, end)
        min_expire = _u64(buf, p - 8)[0]
    n, p = read_len(buf, p, end)
    out: dict[bytes, bytes] = {}
    expires: dict[bytes, int] = {}
    rs = read_string
    for _ in range(n):
        ttl, p = read_len(buf, p, end)
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
        p = read_fixed(p, 8, end)
    items, q = _read_blob(
        buf, p, end, lambda blob: decode_listpack(blob, raw_ints=True), "hash listpack-ex"
    )
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
    n, p = read_len(buf, p, end)
    out: dict[bytes, bytes] = {}
    expires: dict[bytes, int] = {}
    rs = read_string
    for _ in range(n):
        f, p = rs(buf, p, end)
        out[f], p = rs(buf, p, end)
        p = read_fixed(p, 8, end)
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
    ms, p = read_len(buf, p, end)
    seq, p = read_len(buf, p, end)
    return (ms, seq), p


def _v_stream(buf: bytes, p: int, end: int, t: int) -> tuple[Value, int]:
    """Types 15/19/21/26 (`rdbLoadObject`, RDB_TYPE_STREAM_LISTPACKS*)."""
    n_lp, p = read_len(buf, p, end)
    entries: dict[StreamID, list[tuple[bytes, bytes]]] = {}
    for _ in range(n_lp):
        node = p
        nodekey, p = read_string(buf, p, end)
        if len(nodekey) != 16:
            raise RDBError(f"stream node key is {len(nodekey)} bytes, not a 16-byte id", node)
        ms, seq = _id_be(nodekey, 0)
        lp_at = p
        lp, p = read_string(buf, p, end)
        try:
            _stream_listpack_entries(lp, ms, seq, entries)
        except RDBError as e:
            raise RDBError(f"stream node {ms}-{seq}: {e.reason}", lp_at) from None
    s = StreamValue(entries=dict(sorted(entries.items())))
    s.length, p = read_len(buf, p, end)
    s.last_id, p = _read_id_lens(buf, p, end)
    if t >= 19:
        s.first_id, p = _read_id_lens(buf, p, end)
        s.max_deleted_id, p = _read_id_lens(buf, p, end)
        s.entries_added, p = read_len(buf, p, end)
    else:
        # What rdbLoadObject derives for a v1 stream (streamGetEdgeID; the model's (0,0)
        # stands for "no entry").
        s.first_id = next(iter(s.entries), (0, 0))
        s.entries_added = s.length
    if s.length and not n_lp:
        raise RDBError("stream length is non-zero but it has no listpacks", p)
    n_groups, p = read_len(buf, p, end)
    names: set[bytes] = set()
    for _ in range(n_groups):
        at = p
        name, p = read_string(buf, p, end)
        if name in names:
            raise RDBError(f"duplicate stream consumer group {name!r}", at)
        names.add(name)
        last_id, p = _read_id_lens(buf, p, end)
        entries_read: int | None = None
        if t >= 19:
            entries_read, p = read_len(buf, p, end)
            if entries_read == _UINT64_MAX:
                entries_read = -1
        group = StreamGroup(name, last_id, entries_read)
        pel = group.pel
        n_pel, p = read_len(buf, p, end)
        for _ in range(n_pel):
            if p + 24 > end:
                raise Incomplete(p + 24)
            eid = _id_be(buf, p)
            delivery_time = _i64(buf, p + 16)[0]
            count, q = read_len(buf, p + 24, end)
            if eid in pel:
                raise RDBError(f"duplicate PEL entry {eid[0]}-{eid[1]} in group {name!r}", p)
            pel[eid] = StreamPendingEntry(delivery_time, count)
            p = q
        n_consumers, p = read_len(buf, p, end)
        cnames: set[bytes] = set()
        for _ in range(n_consumers):
            at = p
            cname, p = read_string(buf, p, end)
            if cname in cnames:
                raise RDBError(f"duplicate consumer {cname!r} in group {name!r}", at)
            cnames.add(cname)
            p = read_fixed(p, 8, end)
            seen = _i64(buf, p - 8)[0]
            active = None
            if t >= 21:
                p = read_fixed(p, 8, end)
                active = _i64(buf, p - 8)[0]
            consumer = StreamConsumer(cname, seen, active)
            n_cpel, p = read_len(buf, p, end)
            if p + 16 * n_cpel > end:
                raise Incomplete(p + 16 * n_cpel)
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
    if t >= 26:
        s.idmp, p = _read_stream_idmp(buf, p, end)
    return s, p


def _read_stream_idmp(buf: bytes, p: int, end: int) -> tuple[StreamIdmp, int]:
    """The IDMP section of a type-26 stream (RDB 13), after its consumer groups.

    duration, max_entries, n_producers; per producer: pid string, n_entries, then per entry
    an iid string and the entry id (ms, seq lengths); then iids_added, iids_duplicates.
    """
    duration, p = read_len(buf, p, end)
    max_entries, p = read_len(buf, p, end)
    n_producers, p = read_len(buf, p, end)
    producers: dict[bytes, list[tuple[bytes, StreamID]]] = {}
    for _ in range(n_producers):
        at = p
        pid, p = read_string(buf, p, end)
        if pid in producers:
            raise RDBError(f"duplicate stream IDMP producer {pid!r}", at)
        n_entries, p = read_len(buf, p, end)
        tracked: list[tuple[bytes, StreamID]] = []
        seen: set[bytes] = set()
        for _ in range(n_entries):
            at = p
            iid, p = read_string(buf, p, end)
            if iid in seen:
                raise RDBError(f"duplicate IDMP id {iid!r} of producer {pid!r}", at)
            seen.add(iid)
            eid, p = _read_id_lens(buf, p, end)
            tracked.append((iid, eid))
        producers[pid] = tracked
    iids_added, p = read_len(buf, p, end)
    iids_duplicates, p = read_len(buf, p, end)
    return StreamIdmp(duration, max_entries, producers, iids_added, iids_duplicates), p


_COMMON_READERS: Final[dict[int, ValueReader]] = {
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

KEY_META_SPEC_SIZE: Final = 4  # a class spec: 32 bits, native (little-endian) order


def read_key_meta(buf: bytes, p: int, end: int) -> tuple[tuple[KeyMeta, ...], int]:
    """A KEY_META record after its opcode (RDB 13, `rdbLoadKeyMetadata`): the classes.

    n_classes (at most 7), then per class: the 4-byte class spec and its value, a module
    opcode stream through its EOF (0).
    """
    start = p
    n, p = read_len(buf, p, end)
    if n > KEY_META_MAX_CLASSES:
        raise RDBError(
            f"key metadata lists {n} classes, more than the {KEY_META_MAX_CLASSES} that exist",
            start,
        )
    classes = []
    for _ in range(n):
        p = read_fixed(p, KEY_META_SPEC_SIZE, end)
        spec = _u32(buf, p - KEY_META_SPEC_SIZE)[0]
        value_start = p
        try:
            p = module_stream_end(buf, p, end)
        except RDBError as e:
            raise rebased(e, 0, f"key metadata class {KeyMeta(spec, b'').name!r}: ") from None
        classes.append(KeyMeta(spec, buf[value_start:p]))
    return tuple(classes), p


SLOT_IMPORT_NAME_LEN: Final = 40  # CLUSTER_NAMELEN: a job name is 40 hex characters
CLUSTER_SLOTS: Final = 16384


def read_slot_import(buf: bytes, p: int, end: int) -> tuple[SlotImport, int]:
    """A Valkey 9 SLOT_IMPORT record after its opcode (`clusterRDBLoadSlotImport`).

    The job name (a string of exactly 40 bytes), n_ranges, then (start, end) slot lengths
    per range with 0 <= start <= end < 16384; Valkey refuses anything else, so does this.
    """
    at = p
    name, p = read_string(buf, p, end)
    if len(name) != SLOT_IMPORT_NAME_LEN:
        raise RDBError(
            f"invalid slot import job name length {len(name)} "
            f"(a job name has {SLOT_IMPORT_NAME_LEN} characters)",
            at,
        )
    n, p = read_len(buf, p, end)
    ranges = []
    for _ in range(n):
        at = p
        first, p = read_len(buf, p, end)
        last, p = read_len(buf, p, end)
        if not first <= last < CLUSTER_SLOTS:
            raise RDBError(f"invalid slot import range: start={first} end={last}", at)
        ranges.append((first, last))
    return SlotImport(name, tuple(ranges)), p


def value_readers(version: int, valkey: bool) -> dict[int, ValueReader]:
    """The object types a file of this dialect/version may hold, with their readers."""
    readers = dict(_COMMON_READERS)
    if valkey:
        readers[22] = _v_valkey_hash2
    elif version >= 12:
        readers[22] = _v_hash_metadata
        readers[23] = _v_hash_listpack_ex
        readers[24] = _v_hash_metadata
        readers[25] = _v_hash_listpack_ex
        if version >= 13:
            readers[26] = _v_stream
    return readers


def unknown_type(
    t: int, version: int, valkey: bool, at: int, *, is_type: bool = False
) -> RDBUnsupportedError:
    """The error for a byte that is no known type or opcode (`is_type`: known to be a type)."""
    dialect = f"VALKEY{version:03d}" if valkey else f"RDB version {version}"
    if is_type or t < 64:
        return RDBUnsupportedError(f"unsupported object type {t} in a {dialect} file", at)
    return RDBUnsupportedError(f"unsupported opcode {t} (0x{t:02x}) in a {dialect} file", at)
