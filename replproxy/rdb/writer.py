"""The RDB writer: snapshot events and values in, RDB bytes out, for a chosen target version.

This module owns the choice of object encoding per target version (what a real server of that
version would have saved: listpacks and quicklist 2 for Redis 7+, ziplists and quicklist for
Redis 5/6, intsets, streams as Redis lays out its listpack nodes) and the file-level framing
(header, AUX, FUNCTION2, MODULE_AUX, SELECTDB/RESIZEDB, per-key prefixes, EOF + CRC64). It is
sans-I/O: every method returns the bytes it produced and, when given a `write` callable,
also hands them to it; the only function touching the file system is `write_rdb`. Byte-level
building blocks live in `encode.py`; decoding belongs to the reader, never here.

Target versions: Redis dialect 7..13; Valkey dialect 11 (Valkey 7.2-8.1 write `REDIS0011`
with `valkey-ver`) and 80 (`VALKEY080`). A value the target cannot represent raises
`RDBEncodeError` naming the key, type and version; functions below RDB 10 are skipped and
counted instead, because a server of that version has no functions at all.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anycrc

from replproxy.rdb import encode as enc
from replproxy.rdb.model import (
    RDB_OPCODE_AUX,
    RDB_OPCODE_EOF,
    RDB_OPCODE_EXPIRETIME_MS,
    RDB_OPCODE_FREQ,
    RDB_OPCODE_FUNCTION2,
    RDB_OPCODE_IDLE,
    RDB_OPCODE_KEY_META,
    RDB_OPCODE_MODULE_AUX,
    RDB_OPCODE_RESIZEDB,
    RDB_OPCODE_SELECTDB,
    RDB_OPCODE_SLOT_IMPORT,
    RDB_OPCODE_SLOT_INFO,
    RDB_TYPE_HASH,
    RDB_TYPE_HASH_LISTPACK,
    RDB_TYPE_HASH_LISTPACK_EX,
    RDB_TYPE_HASH_METADATA,
    RDB_TYPE_HASH_ZIPLIST,
    RDB_TYPE_LIST_QUICKLIST,
    RDB_TYPE_LIST_QUICKLIST_2,
    RDB_TYPE_MODULE_2,
    RDB_TYPE_SET,
    RDB_TYPE_SET_INTSET,
    RDB_TYPE_SET_LISTPACK,
    RDB_TYPE_STREAM_LISTPACKS,
    RDB_TYPE_STREAM_LISTPACKS_2,
    RDB_TYPE_STREAM_LISTPACKS_3,
    RDB_TYPE_STREAM_LISTPACKS_4,
    RDB_TYPE_STRING,
    RDB_TYPE_VALKEY_HASH_2,
    RDB_TYPE_ZSET,
    RDB_TYPE_ZSET_2,
    RDB_TYPE_ZSET_LISTPACK,
    RDB_TYPE_ZSET_ZIPLIST,
    RDB_VERSION_MAX_REDIS,
    RDB_VERSION_VALKEY_9,
    SET_ENC_HASHTABLE,
    SET_ENC_LISTPACK,
    Aux,
    End,
    Event,
    Function,
    HashValue,
    Header,
    KeyEntry,
    ModuleAux,
    ModuleValue,
    ResizeDB,
    SelectDB,
    SlotImport,
    SlotInfo,
    StreamConsumer,
    StreamGroup,
    StreamID,
    StreamIdmp,
    StreamValue,
    Value,
    ZSetValue,
)

CRC64 = anycrc.Model("CRC64-REDIS")

RDB_VERSION_MIN_WRITE = 7  # 3.2: quicklist, AUX; below it lists would need other encodings

# Server defaults that decide encodings (redis.conf of every version since 3.2/7.0).
HASH_MAX_LISTPACK_ENTRIES = 128  # hash-max-listpack-entries / hash-max-ziplist-entries
HASH_MAX_LISTPACK_VALUE = 64
ZSET_MAX_LISTPACK_ENTRIES = 128
ZSET_MAX_LISTPACK_VALUE = 64
SET_MAX_INTSET_ENTRIES = 512
SET_MAX_LISTPACK_ENTRIES = 128  # Redis 7.2+ / RDB 11
SET_MAX_LISTPACK_VALUE = 64
LIST_MAX_NODE_BYTES = 8192  # list-max-listpack-size -2 (8 KB per quicklist node)
QUICKLIST_SIZE_ESTIMATE_OVERHEAD = 8  # quicklist.c SIZE_ESTIMATE_OVERHEAD (7.0+)
QUICKLIST_PACKED_THRESHOLD_7_0 = 1 << 30  # 7.0: only elements >= 1 GB get a PLAIN node
STREAM_NODE_MAX_BYTES = 4096
STREAM_NODE_MAX_ENTRIES = 100

_TYPE_BYTE = [bytes((i,)) for i in range(256)]

QUICKLIST_NODE_CONTAINER_PLAIN = 1
QUICKLIST_NODE_CONTAINER_PACKED = 2
STREAM_ITEM_FLAG_SAMEFIELDS = 2

# What `redis-ver` / `valkey-ver` says for a version: a release that writes that version.
REDIS_VER_FOR_RDB = {
    7: b"3.2.13",
    8: b"4.0.14",
    9: b"5.0.7",
    10: b"7.0.15",
    11: b"7.2.4",
    12: b"7.4.0",
    13: b"8.6.0",
}
VALKEY_VER_FOR_RDB = {11: b"8.1.0", RDB_VERSION_VALKEY_9: b"9.0.0"}


class RDBEncodeError(ValueError):
    """A value or record the target RDB version (or dialect) cannot represent."""


@dataclass(frozen=True, slots=True)
class Target:
    """An RDB version plus dialect: what the file claims and which encodings it may use."""

    version: int
    valkey: bool = False

    def __post_init__(self) -> None:
        v = self.version
        if self.valkey:
            if v not in VALKEY_VER_FOR_RDB:
                raise RDBEncodeError(
                    f"unsupported target version {v} for the Valkey dialect: Valkey writes RDB "
                    f"11 (7.2-8.1) and {RDB_VERSION_VALKEY_9} (9.x); older versions are "
                    "common to both, write them in the Redis dialect"
                )
        elif not RDB_VERSION_MIN_WRITE <= v <= RDB_VERSION_MAX_REDIS:
            hint = " (RDB 80 is Valkey's: pass valkey=True)" if v == RDB_VERSION_VALKEY_9 else ""
            raise RDBEncodeError(
                f"unsupported target version {v} for the Redis dialect "
                f"(supported: {RDB_VERSION_MIN_WRITE}..{RDB_VERSION_MAX_REDIS}){hint}"
            )

    @property
    def magic(self) -> bytes:
        if self.version >= RDB_VERSION_VALKEY_9:
            return b"VALKEY%03d" % self.version
        return b"REDIS%04d" % self.version

    @property
    def listpacks(self) -> bool:
        """Redis 7.0+ (RDB 10): listpack hashes/zsets and QUICKLIST_2 lists."""
        return self.version >= 10

    @property
    def set_listpack(self) -> bool:
        return self.version >= 11

    @property
    def plain_threshold(self) -> int:
        """Elements above this many bytes get their own PLAIN quicklist node."""
        # 7.2 made every element larger than the node size limit PLAIN (isLargeElement);
        # 7.0 only did so from 1 GB and kept big elements in single-entry PACKED nodes.
        return LIST_MAX_NODE_BYTES if self.version >= 11 else QUICKLIST_PACKED_THRESHOLD_7_0 - 1


def _type_error(what: str, target: Target) -> RDBEncodeError:
    dialect = "Valkey" if target.valkey else "Redis"
    return RDBEncodeError(f"{what} cannot be represented in {dialect} RDB version {target.version}")


# ---- object encodings (the value part after the type byte) ----


def encode_object(
    value: Value,
    target: Target,
    *,
    drop_field_ttls: bool = False,
    compress: bool = True,
) -> tuple[int, bytes]:
    """The RDB object type and encoded value a server of `target` would save for `value`."""
    if isinstance(value, bytes | bytearray | memoryview):
        return RDB_TYPE_STRING, enc.rdb_string(bytes(value), compress)
    if isinstance(value, list | deque):  # a deque: the keyspace's ListValue
        return _encode_list(value, target, compress)
    if isinstance(value, set | frozenset):
        return _encode_set(value, target, compress)
    if isinstance(value, ZSetValue):
        return _encode_zset(value, target, compress)
    if isinstance(value, HashValue) and value.expires:
        return _encode_hash_with_ttls(value, target, drop_field_ttls, compress)
    if isinstance(value, dict):
        return _encode_hash(value, target, compress)  # type: ignore[arg-type]
    if isinstance(value, StreamValue):
        return _encode_stream(value, target, compress)
    if isinstance(value, ModuleValue):
        if target.version < 8:
            raise _type_error(f"module value ({value.name})", target)
        return RDB_TYPE_MODULE_2, enc.rdb_length(value.module_id) + value.raw
    raise TypeError(f"not an RDB value: {type(value).__name__}")


def is_empty_collection(value: Value) -> bool:
    """An empty list/set/zset/hash: no server keeps one, and loaders skip or reject it."""
    # Streams and module values are always truthy; only an empty string is a real key.
    return not value and not isinstance(value, bytes | bytearray | memoryview)


def _encode_list(items: Iterable[bytes], target: Target, compress: bool) -> tuple[int, bytes]:
    if target.listpacks:
        nodes = _quicklist_nodes(items, target.plain_threshold, listpack=True)
        parts = [enc.rdb_length(len(nodes))]
        for container, blob in nodes:
            parts.append(enc.rdb_length(container))
            parts.append(enc.rdb_string(blob, compress))
        return RDB_TYPE_LIST_QUICKLIST_2, b"".join(parts)
    nodes = _quicklist_nodes(items, None, listpack=False)
    parts = [enc.rdb_length(len(nodes))]
    parts.extend(enc.rdb_string(blob, compress) for _, blob in nodes)
    return RDB_TYPE_LIST_QUICKLIST, b"".join(parts)


def _quicklist_nodes(
    items: Iterable[bytes], plain_threshold: int | None, *, listpack: bool
) -> list[tuple[int, bytes]]:
    """Split a list into quicklist nodes the way `quicklistPushTail` fills them (fill -2)."""
    nodes: list[tuple[int, bytes]] = []
    current: list[bytes] = []  # encoded listpack entries, or ziplist entry bodies
    size = 0  # bytes of the node being filled, as lpBytes / ziplistBlobLen would say
    prevlen = 0  # ziplist: size of the previous entry (decides its successor's prevlen)

    def flush() -> None:
        if current:
            if listpack:
                blob = enc.listpack_from_entries(current, size)
            else:
                blob = enc.ziplist_from_bodies(current)
            nodes.append((QUICKLIST_NODE_CONTAINER_PACKED, blob))
            current.clear()

    for item in items:
        sz = len(item)
        if plain_threshold is not None and sz > plain_threshold:
            flush()
            nodes.append((QUICKLIST_NODE_CONTAINER_PLAIN, item))
            continue
        if listpack:
            # 7.0+ `_quicklistNodeAllowInsert`: node bytes + element + SIZE_ESTIMATE_OVERHEAD.
            new_sz = size + sz + QUICKLIST_SIZE_ESTIMATE_OVERHEAD
            if not current or new_sz > LIST_MAX_NODE_BYTES:
                flush()
                size = enc.LP_EMPTY_SIZE
            entry = enc.lp_entry(item)
            current.append(entry)
            size += len(entry)
        else:
            # Redis 5/6 `_quicklistNodeAllowInsert`: node bytes + element + ziplist overhead.
            new_sz = size + sz + enc.ziplist_entry_overhead(sz)
            if not current or new_sz > LIST_MAX_NODE_BYTES:
                flush()
                size = enc.ZL_EMPTY_SIZE
                prevlen = 0
            body = enc.zl_body(item)
            current.append(body)
            prevlen = enc.zl_entry_size(body, prevlen)
            size += prevlen
    flush()
    return nodes


def _encode_set(
    members: set[bytes] | frozenset[bytes], target: Target, compress: bool
) -> tuple[int, bytes]:
    n = len(members)
    # A keyspace set knows the encoding its master holds it in, and its iteration order
    # (`keyspace.values.SetValue`): saved so, a replica loading the file gets the same.
    known = getattr(members, "enc", None)
    order = getattr(members, "members", None)
    if order is not None:
        members = order()
    if known == SET_ENC_LISTPACK and target.set_listpack:
        return RDB_TYPE_SET_LISTPACK, enc.rdb_string(enc.listpack(members), compress)
    if known == SET_ENC_HASHTABLE:
        parts = [enc.rdb_length(n)]
        parts.extend(enc.rdb_string(m, compress) for m in members)
        return RDB_TYPE_SET, b"".join(parts)
    if n <= SET_MAX_INTSET_ENTRIES:
        ints = []
        for m in members:
            v = enc.parse_int64(m)
            if v is None:
                break
            ints.append(v)
        else:
            return RDB_TYPE_SET_INTSET, enc.rdb_string(enc.intset(ints), compress)
    if (
        target.set_listpack
        and n <= SET_MAX_LISTPACK_ENTRIES
        and all(len(m) <= SET_MAX_LISTPACK_VALUE for m in members)
    ):
        return RDB_TYPE_SET_LISTPACK, enc.rdb_string(enc.listpack(members), compress)
    parts = [enc.rdb_length(n)]
    parts.extend(enc.rdb_string(m, compress) for m in members)
    return RDB_TYPE_SET, b"".join(parts)


def zset_score_entry(score: float, listpack: bool = True) -> enc.Entry:
    # zzlInsertAt: an integral score (double2ll) is appended as an integer, else as d2string.
    # A ziplist (before 7.0) stores d2string's text, which keeps a zero's sign ("-0" is no
    # integer to `zipTryEncoding`); a listpack stores -0 as the integer 0.
    if not listpack and score == 0 and math.copysign(1.0, score) < 0:
        return b"-0"
    i = enc.double_to_int64(score)
    return i if i is not None else enc.format_double(score)


def _encode_zset(zset: ZSetValue, target: Target, compress: bool) -> tuple[int, bytes]:
    for member, score in zset.items():
        if math.isnan(score):
            raise RDBEncodeError(f"sorted set member {member!r} has a NaN score")
    ordered = sorted(zset.items(), key=lambda ms: (ms[1], ms[0]))
    if len(ordered) <= ZSET_MAX_LISTPACK_ENTRIES and all(
        len(m) <= ZSET_MAX_LISTPACK_VALUE for m, _ in ordered
    ):
        flat: list[enc.Entry] = []
        for member, score in ordered:
            flat.append(member)
            flat.append(zset_score_entry(score, target.listpacks))
        if target.listpacks:
            return RDB_TYPE_ZSET_LISTPACK, enc.rdb_string(enc.listpack(flat), compress)
        return RDB_TYPE_ZSET_ZIPLIST, enc.rdb_string(enc.ziplist(flat), compress)
    # The skiplist is saved from its tail: highest score first (rdbSaveObject).
    parts = [enc.rdb_length(len(ordered))]
    if target.version >= 8:
        for member, score in reversed(ordered):
            parts.append(enc.rdb_string(member, compress))
            parts.append(enc.rdb_binary_double(score))
        return RDB_TYPE_ZSET_2, b"".join(parts)
    for member, score in reversed(ordered):
        parts.append(enc.rdb_string(member, compress))
        parts.append(enc.rdb_string_double(score))
    return RDB_TYPE_ZSET, b"".join(parts)


def _hash_is_small(h: dict[bytes, bytes]) -> bool:
    return len(h) <= HASH_MAX_LISTPACK_ENTRIES and all(
        len(f) <= HASH_MAX_LISTPACK_VALUE and len(v) <= HASH_MAX_LISTPACK_VALUE
        for f, v in h.items()
    )


def _encode_hash(h: dict[bytes, bytes], target: Target, compress: bool) -> tuple[int, bytes]:
    if _hash_is_small(h):
        flat: list[enc.Entry] = []
        for f, v in h.items():
            flat.append(f)
            flat.append(v)
        if target.listpacks:
            return RDB_TYPE_HASH_LISTPACK, enc.rdb_string(enc.listpack(flat), compress)
        return RDB_TYPE_HASH_ZIPLIST, enc.rdb_string(enc.ziplist(flat), compress)
    parts = [enc.rdb_length(len(h))]
    for f, v in h.items():
        parts.append(enc.rdb_string(f, compress))
        parts.append(enc.rdb_string(v, compress))
    return RDB_TYPE_HASH, b"".join(parts)


def _encode_hash_with_ttls(
    h: HashValue, target: Target, drop_field_ttls: bool, compress: bool
) -> tuple[int, bytes]:
    if target.valkey and target.version == RDB_VERSION_VALKEY_9:
        # Valkey 9 HASH_2: length, then field, value, int64 LE expire (-1 = none) each.
        parts = [enc.rdb_length(len(h))]
        for f, v in h.items():
            parts.append(enc.rdb_string(f, compress))
            parts.append(enc.rdb_string(v, compress))
            parts.append(enc.rdb_millisecond_time(h.expires.get(f, -1)))
        return RDB_TYPE_VALKEY_HASH_2, b"".join(parts)
    if not target.valkey and target.version >= 12:
        return _encode_redis_hash_with_ttls(h, compress)
    if drop_field_ttls:
        return _encode_hash(dict(h), target, compress)
    raise _type_error(
        f"hash with field TTLs ({len(h.expires)} volatile fields; pass drop_field_ttls=True "
        "to write it without them)",
        target,
    )


def _encode_redis_hash_with_ttls(h: HashValue, compress: bool) -> tuple[int, bytes]:
    expires = {f: t for f, t in h.expires.items() if f in h}
    if not expires:
        return _encode_hash(dict(h), Target(12), compress)
    min_expire = min(expires.values())
    if min_expire <= 0:
        raise RDBEncodeError(f"hash field expire times must be positive, got {min_expire}")
    if _hash_is_small(h):
        # HASH_LISTPACK_EX: minExpire, then (field, value, ttl) triples ordered by TTL with
        # the non-volatile fields (ttl 0) last, as listpackExAddNew keeps them.
        volatile = sorted((t, f) for f, t in expires.items())
        flat: list[enc.Entry] = []
        for t, f in volatile:
            flat += [f, h[f], t]
        for f, v in h.items():
            if f not in expires:
                flat += [f, v, 0]
        blob = enc.listpack(flat)
        return RDB_TYPE_HASH_LISTPACK_EX, enc.rdb_millisecond_time(min_expire) + enc.rdb_string(
            blob, compress
        )
    # HASH_METADATA: minExpire, length, then (ttl relative to minExpire + 1, or 0) field value.
    parts = [enc.rdb_millisecond_time(min_expire), enc.rdb_length(len(h))]
    for f, v in h.items():
        expire_at = expires.get(f)
        parts.append(enc.rdb_length(0 if expire_at is None else expire_at - min_expire + 1))
        parts.append(enc.rdb_string(f, compress))
        parts.append(enc.rdb_string(v, compress))
    return RDB_TYPE_HASH_METADATA, b"".join(parts)


# ---- streams (t_stream.c streamAppendItem, rdb.c rdbSaveObject) ----


def _stream_id_key(sid: StreamID) -> bytes:
    return struct.pack(">QQ", sid[0], sid[1])


def _int64_wrap(v: int) -> int:
    # Redis subtracts uint64 ids and appends the result as int64.
    v &= enc.UINT64_MAX
    return v - (1 << 64) if v > enc.INT64_MAX else v


def stream_listpacks(
    entries: Iterable[tuple[StreamID, list[tuple[bytes, bytes]]]],
) -> list[tuple[bytes, bytes]]:
    """(node key, listpack) pairs holding `entries` (id order) as XADD would have built them."""
    nodes: list[tuple[bytes, bytes]] = []
    master_id: StreamID = (0, 0)
    master_fields: list[bytes] = []
    body: list[bytes] = []  # encoded entries after the master entry
    body_size = 0
    count = 0

    def flush() -> None:
        if count:
            master = [enc.lp_entry(count), enc.lp_entry(0), enc.lp_entry(len(master_fields))]
            master += [enc.lp_entry(f) for f in master_fields]
            master.append(enc.lp_entry(0))
            nodes.append((_stream_id_key(master_id), enc.listpack_from_entries(master + body)))

    master_size = 0  # bytes of the master entry (count, deleted, num-fields, fields, 0)
    for sid, fields in entries:
        totelelen = sum(len(f) + len(v) for f, v in fields)
        lp_bytes = enc.LP_EMPTY_SIZE + master_size + body_size
        if count and (
            lp_bytes + totelelen >= STREAM_NODE_MAX_BYTES or count >= STREAM_NODE_MAX_ENTRIES
        ):
            flush()
            count = 0
        if not count:
            master_id = sid
            master_fields = [f for f, _ in fields]
            body = []
            body_size = 0
            head: list[enc.Entry] = [1, 0, len(master_fields), *master_fields, 0]
            master_size = sum(len(enc.lp_entry(e)) for e in head)
            same = True
        else:
            same = len(fields) == len(master_fields) and all(
                f == m for (f, _), m in zip(fields, master_fields)
            )
        flags = STREAM_ITEM_FLAG_SAMEFIELDS if same else 0
        parts: list[enc.Entry] = [
            flags,
            _int64_wrap(sid[0] - master_id[0]),
            _int64_wrap(sid[1] - master_id[1]),
        ]
        if same:
            parts += [v for _, v in fields]
            lp_count = len(fields) + 3
        else:
            parts.append(len(fields))
            for f, v in fields:
                parts += [f, v]
            lp_count = 2 * len(fields) + 4
        parts.append(lp_count)
        encoded = [enc.lp_entry(p) for p in parts]
        body += encoded
        body_size += sum(map(len, encoded))
        count += 1
    flush()
    return nodes


def _estimate_entries_read(
    s: StreamValue,
    ordered_ids: list[StreamID],
    last_id: StreamID,
    first_id: StreamID,
    entries_added: int,
    gid: StreamID,
) -> int:
    """`streamEstimateDistanceFromFirstEverEntry`: what Redis derives for a group on load."""
    length = len(ordered_ids)
    if not entries_added:
        return 0
    if not length and gid <= last_id:
        return entries_added
    if gid != (0, 0) and gid < s.max_deleted_id:
        return -1
    if gid == last_id:
        return entries_added
    if gid > last_id:
        return -1
    if s.max_deleted_id == (0, 0) or s.max_deleted_id < first_id:
        if gid < first_id:
            return entries_added - length
        if gid == first_id:
            return entries_added - length + 1
    return -1


def _encode_stream(s: StreamValue, target: Target, compress: bool) -> tuple[int, bytes]:
    if target.version < 9:
        raise _type_error("stream", target)
    items = sorted(s.entries.items())
    ids = [sid for sid, _ in items]
    last_id = max(s.last_id, ids[-1]) if ids else s.last_id
    first_id = ids[0] if ids else s.first_id
    entries_added = max(s.entries_added, len(ids))
    nodes = stream_listpacks(items)
    parts = [enc.rdb_length(len(nodes))]
    for key, lp in nodes:
        parts.append(enc.rdb_string(key, compress))
        parts.append(enc.rdb_string(lp, compress))
    parts += [enc.rdb_length(len(ids)), enc.rdb_length(last_id[0]), enc.rdb_length(last_id[1])]
    if target.version >= 10:
        parts += [
            enc.rdb_length(first_id[0]),
            enc.rdb_length(first_id[1]),
            enc.rdb_length(s.max_deleted_id[0]),
            enc.rdb_length(s.max_deleted_id[1]),
            enc.rdb_length(entries_added),
        ]
    groups = sorted(s.groups, key=lambda g: g.name)
    parts.append(enc.rdb_length(len(groups)))
    for g in groups:
        parts.append(
            _encode_stream_group(g, s, target, ids, last_id, first_id, entries_added, compress)
        )
    idmp = s.idmp
    if target.version >= 13 and not target.valkey:
        # Redis 8.6 saves every stream as type 26; one loaded from an older file has the
        # default IDMP settings and nothing tracked.
        rdb_type = RDB_TYPE_STREAM_LISTPACKS_4
        parts.append(_encode_stream_idmp(idmp or StreamIdmp(), compress))
    elif idmp is not None and idmp != StreamIdmp():
        raise _type_error("stream IDMP state (XADD IDMP producers, settings or counters)", target)
    elif target.version >= 11:
        rdb_type = RDB_TYPE_STREAM_LISTPACKS_3
    elif target.version == 10:
        rdb_type = RDB_TYPE_STREAM_LISTPACKS_2
    else:
        rdb_type = RDB_TYPE_STREAM_LISTPACKS
    return rdb_type, b"".join(parts)


def _encode_stream_idmp(idmp: StreamIdmp, compress: bool) -> bytes:
    """The IDMP section of a type-26 stream, after its consumer groups (see the reader)."""
    parts = [
        enc.rdb_length(idmp.duration),
        enc.rdb_length(idmp.max_entries),
        enc.rdb_length(len(idmp.producers)),
    ]
    for pid, tracked in idmp.producers.items():
        parts += [enc.rdb_string(pid, compress), enc.rdb_length(len(tracked))]
        for iid, (ms, seq) in tracked:
            parts += [enc.rdb_string(iid, compress), enc.rdb_length(ms), enc.rdb_length(seq)]
    parts += [enc.rdb_length(idmp.iids_added), enc.rdb_length(idmp.iids_duplicates)]
    return b"".join(parts)


def _encode_stream_group(
    g: StreamGroup,
    s: StreamValue,
    target: Target,
    ids: list[StreamID],
    last_id: StreamID,
    first_id: StreamID,
    entries_added: int,
    compress: bool,
) -> bytes:
    parts = [
        enc.rdb_string(g.name, compress),
        enc.rdb_length(g.last_id[0]),
        enc.rdb_length(g.last_id[1]),
    ]
    if target.version >= 10:
        entries_read = g.entries_read
        if entries_read is None:
            entries_read = _estimate_entries_read(
                s, ids, last_id, first_id, entries_added, g.last_id
            )
        parts.append(enc.rdb_length(entries_read & enc.UINT64_MAX))
    pel = sorted(g.pel.items())
    parts.append(enc.rdb_length(len(pel)))
    for sid, nack in pel:
        parts.append(_stream_id_key(sid))
        parts.append(enc.rdb_millisecond_time(nack.delivery_time))
        parts.append(enc.rdb_length(nack.delivery_count))
    consumers = sorted(g.consumers, key=lambda c: c.name)
    parts.append(enc.rdb_length(len(consumers)))
    for c in consumers:
        parts.append(_encode_stream_consumer(c, target, compress))
    return b"".join(parts)


def _encode_stream_consumer(c: StreamConsumer, target: Target, compress: bool) -> bytes:
    parts = [enc.rdb_string(c.name, compress), enc.rdb_millisecond_time(c.seen_time)]
    if target.version >= 11:
        active = c.active_time if c.active_time is not None else c.seen_time
        parts.append(enc.rdb_millisecond_time(active))
    pending = sorted(c.pending)
    parts.append(enc.rdb_length(len(pending)))
    parts.extend(_stream_id_key(sid) for sid in pending)
    return b"".join(parts)


# ---- the file writer ----


class RDBWriter:
    """Writes one RDB file for a target version, computing the CRC64 as it goes.

    Call `header()` first and `end()` last; in between `aux`, `module_aux`, `function`,
    `select_db`, `key` and `slot_info` in the order Redis writes them (AUX, MODULE_AUX,
    FUNCTION2, then per database SELECTDB/RESIZEDB and its keys). Each returns the bytes it
    produced and, when `write` was given, also passes them to it.

    `header()` writes the magic and the AUX fields a server of that version writes
    (`redis-ver`/`valkey-ver`, `redis-bits`, `ctime`, `used-mem`, `repl-stream-db`, `repl-id`,
    `repl-offset` when given, `aof-base`); `aux` adds or overrides fields.
    """

    def __init__(
        self,
        version: int = RDB_VERSION_MAX_REDIS,
        valkey: bool = False,
        aux: dict[bytes, bytes] | None = None,
        *,
        write: Callable[[bytes], object] | None = None,
        repl_id: bytes | str | None = None,
        repl_offset: int | None = None,
        repl_stream_db: int | None = None,
        drop_field_ttls: bool = False,
        compress: bool = True,
    ):
        self.target = Target(version, valkey)
        self.drop_field_ttls = drop_field_ttls
        self.compress = compress
        self._write = write
        self._aux = self._default_aux(repl_id, repl_offset, repl_stream_db)
        self._aux.update(aux or {})
        self._crc = 0
        self._state = "new"  # new -> open -> closed
        self._db: int | None = None
        self.aux_written: set[bytes] = set()
        self.bytes_written = 0
        self.keys_written = 0
        self.skipped_functions = 0  # functions a pre-7.0 target cannot hold
        self.skipped_empty_keys = 0  # empty collections (no server has them)
        self.skipped_slot_info = 0  # SLOT_INFO records a non-Redis-7.4 target has no opcode for
        self.skipped_slot_imports = 0  # SLOT_IMPORT records a non-Valkey-9 target cannot hold
        self.skipped_key_meta = 0  # ignorable KEY_META classes a pre-RDB-13 target drops

    @property
    def version(self) -> int:
        return self.target.version

    def _default_aux(
        self, repl_id: bytes | str | None, repl_offset: int | None, repl_stream_db: int | None
    ) -> dict[bytes, bytes]:
        t = self.target
        if t.valkey:
            ver_key, ver = b"valkey-ver", VALKEY_VER_FOR_RDB[t.version]
        else:
            ver_key, ver = b"redis-ver", REDIS_VER_FOR_RDB[t.version]
        aux = {
            ver_key: ver,
            b"redis-bits": b"64",
            b"ctime": b"%d" % int(time.time()),
            b"used-mem": b"0",
        }
        if repl_stream_db is not None or repl_id is not None or repl_offset is not None:
            aux[b"repl-stream-db"] = b"%d" % (repl_stream_db or 0)
            rid = repl_id.encode() if isinstance(repl_id, str) else repl_id
            aux[b"repl-id"] = rid if rid is not None else b"0" * 40
            aux[b"repl-offset"] = b"%d" % (repl_offset if repl_offset is not None else 0)
        aux[b"aof-base"] = b"0"
        return aux

    def _emit(self, data: bytes) -> bytes:
        if data:
            self._crc = CRC64.calc(data, self._crc)
            self.bytes_written += len(data)
            if self._write is not None:
                self._write(data)
        return data

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(
                "RDBWriter: call header() first"
                if self._state == "new"
                else "RDBWriter: already ended"
            )

    def header(self) -> bytes:
        if self._state != "new":
            raise RuntimeError("RDBWriter: header() already written")
        self._state = "open"
        parts = [self._emit(self.target.magic)]
        parts += [self.aux(k, v) for k, v in self._aux.items()]
        return b"".join(parts)

    def aux(self, key: bytes, value: bytes) -> bytes:
        self._check_open()
        self.aux_written.add(key)
        return self._emit(
            bytes((RDB_OPCODE_AUX,))
            + enc.rdb_string(key, self.compress)
            + enc.rdb_string(value, self.compress)
        )

    def function(self, fn: Function) -> bytes:
        """A FUNCTION2 record (RDB 10+); below 10 the library is skipped and counted."""
        self._check_open()
        if self.target.version < 10:
            self.skipped_functions += 1
            return b""
        code = fn.code
        if not code.startswith(b"#!") and fn.name and fn.engine:
            # A 7.0 RC record (opcode 246) keeps the body without its shebang line.
            code = b"#!%s name=%s\n%s" % (fn.engine.lower(), fn.name, code)
        return self._emit(bytes((RDB_OPCODE_FUNCTION2,)) + enc.rdb_string(code, self.compress))

    def module_aux(self, record: ModuleAux) -> bytes:
        """A MODULE_AUX record (RDB 9+): module id then `raw` (when-opcode, when, data, EOF)."""
        self._check_open()
        if self.target.version < 9:
            raise _type_error(f"MODULE_AUX of module {record.name}", self.target)
        return self._emit(
            bytes((RDB_OPCODE_MODULE_AUX,)) + enc.rdb_length(record.module_id) + record.raw
        )

    def select_db(
        self, db: int, db_size: int | None = None, expires_size: int | None = None
    ) -> bytes:
        """SELECTDB, plus the RESIZEDB hint when the sizes are known."""
        self._check_open()
        self._db = db
        data = bytes((RDB_OPCODE_SELECTDB,)) + enc.rdb_length(db)
        if db_size is not None:
            data += (
                bytes((RDB_OPCODE_RESIZEDB,))
                + enc.rdb_length(db_size)
                + enc.rdb_length(expires_size or 0)
            )
        return self._emit(data)

    def slot_info(self, info: SlotInfo) -> bytes:
        """SLOT_INFO (Redis RDB 12 only; skipped and counted for other targets)."""
        self._check_open()
        if self.target.valkey or self.target.version < 12:
            self.skipped_slot_info += 1
            return b""
        return self._emit(
            bytes((RDB_OPCODE_SLOT_INFO,))
            + enc.rdb_length(info.slot)
            + enc.rdb_length(info.slot_size)
            + enc.rdb_length(info.expires_slot_size)
        )

    def slot_import(self, job: SlotImport) -> bytes:
        """SLOT_IMPORT (Valkey RDB 80 only; skipped and counted for other targets, as a
        Valkey 9 saving an older version does)."""
        self._check_open()
        if not (self.target.valkey and self.target.version >= RDB_VERSION_VALKEY_9):
            self.skipped_slot_imports += 1
            return b""
        parts = [
            bytes((RDB_OPCODE_SLOT_IMPORT,)),
            enc.rdb_string(job.name, self.compress),
            enc.rdb_length(len(job.ranges)),
        ]
        for first, last in job.ranges:
            parts += [enc.rdb_length(first), enc.rdb_length(last)]
        return self._emit(b"".join(parts))

    def _key_meta(self, entry: KeyEntry) -> bytes:
        """KEY_META before the type byte (Redis RDB 13+). An older target cannot hold it: a
        class whose flags allow ignoring it is dropped (as a server without it would), any
        other is an `RDBEncodeError`."""
        t = self.target
        if t.valkey or t.version < 13:
            for m in entry.meta:
                if not m.allow_ignore:
                    raise RDBEncodeError(
                        f"key {entry.key!r} (db {entry.db}): module metadata class "
                        f"{m.name!r} cannot be represented in "
                        f"{'Valkey' if t.valkey else 'Redis'} RDB version {t.version}"
                    )
            self.skipped_key_meta += len(entry.meta)
            return b""
        parts = [bytes((RDB_OPCODE_KEY_META,)), enc.rdb_length(len(entry.meta))]
        for m in entry.meta:
            parts += [struct.pack("<I", m.class_spec), m.raw]
        return b"".join(parts)

    def key(self, entry: KeyEntry) -> bytes:
        """One key with its expire / IDLE / FREQ prefixes; SELECTDB first if its db changed."""
        if self._state != "open":
            self._check_open()
        value = entry.value
        if type(value) is bytes:  # most keys: skip the type dispatch
            rdb_type, payload = RDB_TYPE_STRING, enc.rdb_string(value, self.compress)
        elif is_empty_collection(value):
            self.skipped_empty_keys += 1
            return b""
        else:
            try:
                rdb_type, payload = encode_object(
                    value,
                    self.target,
                    drop_field_ttls=self.drop_field_ttls,
                    compress=self.compress,
                )
            except RDBEncodeError as e:
                raise RDBEncodeError(f"key {entry.key!r} (db {entry.db}): {e}") from None
        out = b"" if entry.db == self._db else self.select_db(entry.db)
        record = _TYPE_BYTE[rdb_type] + enc.rdb_string(entry.key, self.compress) + payload
        if entry.meta:
            record = self._key_meta(entry) + record
        if entry.expire_ms is not None or entry.idle is not None or entry.freq is not None:
            record = self._key_prefixes(entry) + record
        self.keys_written += 1
        return out + self._emit(record)

    def _key_prefixes(self, entry: KeyEntry) -> bytes:
        parts: list[bytes] = []
        if entry.expire_ms is not None:
            parts.append(
                bytes((RDB_OPCODE_EXPIRETIME_MS,)) + enc.rdb_millisecond_time(entry.expire_ms)
            )
        if self.target.version >= 9:  # IDLE and FREQ arrived with RDB 9
            if entry.idle is not None:
                parts.append(bytes((RDB_OPCODE_IDLE,)) + enc.rdb_length(entry.idle))
            if entry.freq is not None:
                parts.append(bytes((RDB_OPCODE_FREQ, entry.freq & 0xFF)))
        return b"".join(parts)

    def end(self) -> bytes:
        """EOF and the CRC64 of every byte before it (little-endian)."""
        self._check_open()
        eof = self._emit(bytes((RDB_OPCODE_EOF,)))
        self._state = "closed"
        trailer = struct.pack("<Q", self._crc)
        self.bytes_written += len(trailer)
        if self._write is not None:
            self._write(trailer)
        return eof + trailer

    @property
    def checksum(self) -> int:
        """The CRC64 of everything emitted so far."""
        return self._crc


# ---- convenience: whole files ----


def _db_grouped(keys: list[KeyEntry]) -> Iterator[Event]:
    by_db: dict[int, list[KeyEntry]] = {}
    for k in keys:
        by_db.setdefault(k.db, []).append(k)
    for db in sorted(by_db):
        entries = [k for k in by_db[db] if not is_empty_collection(k.value)]
        yield SelectDB(db)
        yield ResizeDB(len(entries), sum(1 for k in entries if k.expire_ms is not None))
        yield from by_db[db]


def write_events(writer: RDBWriter, events_or_keys: Iterable[Event]) -> None:
    """Feed a reader's event stream (or bare KeyEntry objects) through `writer`, header to end.

    The source's Header and End are replaced by the writer's own; source AUX fields the
    writer already wrote (version, ctime, repl-*) are dropped, others (e.g. `lua`) pass.
    """
    events: Iterable[Event] = events_or_keys
    if isinstance(events_or_keys, list | tuple):
        keys = [e for e in events_or_keys if isinstance(e, KeyEntry)]
        if len(keys) == len(events_or_keys):
            events = _db_grouped(keys)
    writer.header()
    pending_db: int | None = None
    for ev in events:
        if isinstance(ev, KeyEntry):
            if pending_db is not None:
                writer.select_db(pending_db)
                pending_db = None
            writer.key(ev)
        elif isinstance(ev, SelectDB):
            if pending_db is not None:
                writer.select_db(pending_db)
            pending_db = ev.db
        elif isinstance(ev, ResizeDB):
            if pending_db is not None:
                writer.select_db(pending_db, ev.db_size, ev.expires_size)
                pending_db = None
        elif isinstance(ev, Aux):
            if ev.key not in writer.aux_written and ev.key not in _SOURCE_ONLY_AUX:
                writer.aux(ev.key, ev.value)
        elif isinstance(ev, Function):
            writer.function(ev)
        elif isinstance(ev, ModuleAux):
            writer.module_aux(ev)
        elif isinstance(ev, SlotInfo):
            if pending_db is not None:
                writer.select_db(pending_db)
                pending_db = None
            writer.slot_info(ev)
        elif isinstance(ev, SlotImport):
            writer.slot_import(ev)
        elif isinstance(ev, Header | End):
            continue
        else:
            raise TypeError(f"not an RDB event: {type(ev).__name__}")
    writer.end()


# AUX fields describing the source server that a re-written file must not carry over: the
# version and creation facts are the writer's own, and another dialect's version key would
# contradict them.
_SOURCE_ONLY_AUX = frozenset(
    {
        b"redis-ver",
        b"valkey-ver",
        b"redis-bits",
        b"ctime",
        b"used-mem",
        b"aof-base",
        b"repl-stream-db",
        b"repl-id",
        b"repl-offset",
        b"aof-preamble",
    }
)


def write_rdb(
    path_or_file: str | os.PathLike[str] | BinaryIO,
    events_or_keys: Iterable[Event],
    version: int = RDB_VERSION_MAX_REDIS,
    repl_id: bytes | str | None = None,
    repl_offset: int | None = None,
    repl_stream_db: int | None = None,
    *,
    valkey: bool = False,
    aux: dict[bytes, bytes] | None = None,
    drop_field_ttls: bool = False,
    compress: bool = True,
) -> RDBWriter:
    """Write a whole RDB file from events or keys (see `write_events`); returns the writer.

    Given a path, the file appears atomically or not at all: a temp file in the same
    directory, fsync, rename over the target, fsync of the directory. Given a binary file
    object, the bytes are written to it as they are produced.
    """

    def make(write: Callable[[bytes], object]) -> RDBWriter:
        return RDBWriter(
            version,
            valkey,
            aux,
            write=write,
            repl_id=repl_id,
            repl_offset=repl_offset,
            repl_stream_db=repl_stream_db,
            drop_field_ttls=drop_field_ttls,
            compress=compress,
        )

    if not isinstance(path_or_file, str | os.PathLike):
        writer = make(path_or_file.write)
        write_events(writer, events_or_keys)
        return writer
    path = Path(path_or_file)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            writer = make(f.write)
            write_events(writer, events_or_keys)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return writer


def dump_rdb(
    events_or_keys: Iterable[Event],
    version: int = RDB_VERSION_MAX_REDIS,
    repl_id: bytes | str | None = None,
    repl_offset: int | None = None,
    repl_stream_db: int | None = None,
    *,
    valkey: bool = False,
    aux: dict[bytes, bytes] | None = None,
    drop_field_ttls: bool = False,
    compress: bool = True,
) -> bytes:
    """A whole RDB file as bytes (see `write_rdb`)."""
    buf = io.BytesIO()
    write_rdb(
        buf,
        events_or_keys,
        version,
        repl_id,
        repl_offset,
        repl_stream_db,
        valkey=valkey,
        aux=aux,
        drop_field_ttls=drop_field_ttls,
        compress=compress,
    )
    return buf.getvalue()
