"""The values and events the RDB reader produces and the RDB writer consumes.

This module owns the in-memory shape of a snapshot: one plain Python type per Redis type,
chosen so that building a keyspace from a 1M-key snapshot creates no wrapper object per
value (strings are `bytes`, lists are `list`, sets are `set`, hashes are `dict`). Types that
have no native Python equivalent (sorted sets keep a member->score dict, streams, module
values) get small classes here. It holds no parsing or encoding logic.

Value model (what `KeyEntry.value` holds, by Redis type):

| Redis type | Python value |
| --- | --- |
| string (also HyperLogLog) | `bytes` |
| list | `list[bytes]` (head first) |
| set | `set[bytes]` |
| zset | `ZSetValue` (dict member -> float score) |
| hash | `dict[bytes, bytes]`; `HashValue` (a dict with per-field expiry) when a field has a TTL |
| stream | `StreamValue` (its IDMP state, RDB 13, in `StreamIdmp`) |
| module value | `ModuleValue` (opaque raw bytes, kept so it can be written out again) |
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# RDB object type numbers (src/rdb.h). The number also tells the encoding a file used.
RDB_TYPE_STRING = 0
RDB_TYPE_LIST = 1
RDB_TYPE_SET = 2
RDB_TYPE_ZSET = 3
RDB_TYPE_HASH = 4
RDB_TYPE_ZSET_2 = 5
RDB_TYPE_MODULE_PRE_GA = 6
RDB_TYPE_MODULE_2 = 7
RDB_TYPE_HASH_ZIPMAP = 9
RDB_TYPE_LIST_ZIPLIST = 10
RDB_TYPE_SET_INTSET = 11
RDB_TYPE_ZSET_ZIPLIST = 12
RDB_TYPE_HASH_ZIPLIST = 13
RDB_TYPE_LIST_QUICKLIST = 14
RDB_TYPE_STREAM_LISTPACKS = 15
RDB_TYPE_HASH_LISTPACK = 16
RDB_TYPE_ZSET_LISTPACK = 17
RDB_TYPE_LIST_QUICKLIST_2 = 18
RDB_TYPE_STREAM_LISTPACKS_2 = 19
RDB_TYPE_SET_LISTPACK = 20
RDB_TYPE_STREAM_LISTPACKS_3 = 21
# 22/23 mean different things in REDIS (7.4 RC hash-with-TTL) and VALKEY (HASH_2) files.
RDB_TYPE_HASH_METADATA_PRE_GA = 22
RDB_TYPE_HASH_LISTPACK_EX_PRE_GA = 23
RDB_TYPE_VALKEY_HASH_2 = 22
RDB_TYPE_HASH_METADATA = 24
RDB_TYPE_HASH_LISTPACK_EX = 25
RDB_TYPE_STREAM_LISTPACKS_4 = 26  # RDB 13 (Redis 8.6): streams with IDMP state

# Opcodes (src/rdb.h).
# 243 means different things in REDIS (RDB 13+: KEY_META) and VALKEY (SLOT_IMPORT) files.
RDB_OPCODE_KEY_META = 243
RDB_OPCODE_SLOT_IMPORT = 243
RDB_OPCODE_SLOT_INFO = 244
RDB_OPCODE_FUNCTION2 = 245
RDB_OPCODE_FUNCTION_PRE_GA = 246
RDB_OPCODE_MODULE_AUX = 247
RDB_OPCODE_IDLE = 248
RDB_OPCODE_FREQ = 249
RDB_OPCODE_AUX = 250
RDB_OPCODE_RESIZEDB = 251
RDB_OPCODE_EXPIRETIME_MS = 252
RDB_OPCODE_EXPIRETIME = 253
RDB_OPCODE_SELECTDB = 254
RDB_OPCODE_EOF = 255

# Newest RDB versions each dialect writes that this project reads.
RDB_VERSION_MAX_REDIS = 13  # Redis 8.6
RDB_VERSION_VALKEY_9 = 80

# KEY_META (RDB 13): at most 7 module metadata classes per key (keymeta.h
# KEY_META_MAX_NUM_MODULES); a class spec's flag bit 0 is KEY_META_FLAG_ALLOW_IGNORE.
KEY_META_MAX_CLASSES = 7
KEY_META_FLAG_ALLOW_IGNORE = 1
# The 6-bit alphabet of metadata class names (keymeta.c keyMetaCharSet; note "_-", where
# module type names use "-_").
KEY_META_CHARSET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
# IDMP defaults a Redis 8.6 stream has when none were saved (stream-idmp-duration,
# stream-idmp-maxsize).
STREAM_IDMP_DEFAULT_DURATION = 100
STREAM_IDMP_DEFAULT_MAX_ENTRIES = 100

StreamID = tuple[int, int]
"""A stream entry id as (ms, seq)."""


class ZSetValue(dict[bytes, float]):
    """A sorted set as read from or written to an RDB: member -> score.

    Order is not meaningful here; consumers that need rank order sort by (score, member).
    """

    __slots__ = ()


# A set's encodings, smallest first: what `keyspace.values.SetValue.enc` holds, and what
# the writer saves such a set as (a set without one is saved by its content).
SET_ENC_INTSET, SET_ENC_LISTPACK, SET_ENC_HASHTABLE = 0, 1, 2


class OrderedSet(set[bytes]):
    """A set as a snapshot lists it: `order` holds its members in the file's order (a
    listpack's order, or the order a hash table was saved in) and `rdbtype` how the file
    encoded it (2 hash table, 20 listpack). A server loading the file keeps that order for
    the sets it holds as listpacks (Redis 7.2+, Valkey); the keyspace reads it when it
    first uses the set. Otherwise an ordinary set: equal to any set of the same members.
    """

    __slots__ = ("order", "rdbtype")

    def __init__(self, members: list[bytes] | tuple[bytes, ...] = (), rdbtype: int = 2) -> None:
        super().__init__(members)
        self.order: list[bytes] | tuple[bytes, ...] = members
        self.rdbtype = rdbtype


class HashValue(dict[bytes, bytes]):
    """A hash with per-field expiry (Redis 7.4+ / Valkey 9 hash field TTLs).

    `expires` maps a field to its absolute expiry time in unix milliseconds; fields without a
    TTL are absent from it. A hash with no field TTL is read as a plain `dict` instead,
    unless the file saved it as a listpack with TTLs (a listpackex, whose last TTL went).
    """

    __slots__ = ("expires",)

    def __init__(self, *args: object, expires: dict[bytes, int] | None = None, **kw: bytes):
        super().__init__(*args, **kw)
        self.expires: dict[bytes, int] = expires if expires is not None else {}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HashValue):
            return dict.__eq__(self, other) and self.expires == other.expires
        if isinstance(other, dict):
            return not self.expires and dict.__eq__(self, other)
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"HashValue({dict.__repr__(self)}, expires={self.expires!r})"


@dataclass(eq=True)
class StreamConsumer:
    name: bytes
    seen_time: int  # ms; the consumer's last interaction
    # ms of the last successful read/claim; RDB 11+ (stream v3). None when the file has none.
    active_time: int | None
    pending: list[StreamID] = field(default_factory=list)  # ids owned, in PEL order


@dataclass(eq=True)
class StreamPendingEntry:
    delivery_time: int  # ms
    delivery_count: int


@dataclass(eq=True)
class StreamGroup:
    name: bytes
    last_id: StreamID
    # -1 when unknown (stored as 2**64-1); None when the file predates v19 (stream v2).
    entries_read: int | None
    pel: dict[StreamID, StreamPendingEntry] = field(default_factory=dict)  # id order
    consumers: list[StreamConsumer] = field(default_factory=list)


@dataclass(eq=True)
class StreamIdmp:
    """A stream's idempotent-producer state (XADD IDMP, Redis 8.6; stream type 26).

    `producers` maps a producer id to its tracked (idempotency id, entry id) pairs, both in
    file order.
    """

    duration: int = STREAM_IDMP_DEFAULT_DURATION  # seconds an IID is remembered
    max_entries: int = STREAM_IDMP_DEFAULT_MAX_ENTRIES  # IIDs remembered per producer
    producers: dict[bytes, list[tuple[bytes, StreamID]]] = field(default_factory=dict)
    iids_added: int = 0  # all-time count of entries added with an IID
    iids_duplicates: int = 0  # all-time count of duplicate IIDs detected


@dataclass(eq=True)
class StreamValue:
    entries: dict[StreamID, list[tuple[bytes, bytes]]] = field(default_factory=dict)  # id order
    length: int = 0  # number of live entries (== len(entries) for a sound file)
    last_id: StreamID = (0, 0)
    # v19+ metadata; for older files the reader fills what Redis derives on load
    # (first_id = first entry or (0,0), max_deleted = (0,0), entries_added = length).
    first_id: StreamID = (0, 0)
    max_deleted_id: StreamID = (0, 0)
    entries_added: int = 0
    groups: list[StreamGroup] = field(default_factory=list)
    # IDMP state from a type-26 stream (RDB 13+); None when the file predates it.
    idmp: StreamIdmp | None = None
    # Indexes the read commands derive from `entries` (replproxy.keyspace.t_stream): not
    # part of the value, so equality and repr ignore them.
    read_cache: object = field(default=None, compare=False, repr=False)


@dataclass(eq=True)
class ModuleValue:
    """A module's value, kept as the raw bytes of its opcode stream so it can be re-written.

    `raw` is everything after the 64-bit module id up to and including the terminating
    opcode 0 (RDB_MODULE_OPCODE_EOF), exactly as in the file.
    """

    module_id: int
    name: str  # 9-char module name decoded from the id
    encver: int  # low 10 bits of the id
    raw: bytes


# Module types the keyspace models itself, by 9-char type name: the reader builds the value
# of such a module through its factory (module id, name, encoding version, raw) instead of
# a plain `ModuleValue` (e.g. `replproxy.keyspace.t_vset` registers "vectorset").
MODULE_TYPES: dict[str, Callable[[int, str, int, bytes], ModuleValue]] = {}


def module_value(module_id: int, name: str, encver: int, raw: bytes) -> ModuleValue:
    """The value of a module record: a registered model of its type, else kept opaque."""
    factory = MODULE_TYPES.get(name)
    if factory is not None:
        return factory(module_id, name, encver, raw)
    return ModuleValue(module_id, name, encver, raw)


# A list is a `list`; the keyspace keeps lists it has written as deques (`ListValue`).
Value = (
    bytes
    | list[bytes]
    | deque[bytes]
    | set[bytes]
    | dict[bytes, bytes]
    | ZSetValue
    | StreamValue
    | ModuleValue
)


def type_name(value: Value) -> str:
    """The name `TYPE` answers for a value (a module value answers its module's name)."""
    if isinstance(value, bytes):
        return "string"
    if isinstance(value, list | deque):  # the keyspace's ListValue is a deque
        return "list"
    if isinstance(value, set):
        return "set"
    if isinstance(value, ZSetValue):
        return "zset"
    if isinstance(value, dict):
        return "hash"
    if isinstance(value, StreamValue):
        return "stream"
    if isinstance(value, ModuleValue):
        return value.name
    raise TypeError(f"not an RDB value: {type(value).__name__}")


# ---- Events yielded by the reader (and accepted by the writer) ----


@dataclass(frozen=True, slots=True)
class Header:
    magic: bytes  # b"REDIS" or b"VALKEY"
    version: int


@dataclass(frozen=True, slots=True)
class Aux:
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class ModuleAux:
    """A MODULE_AUX record (opcode 247), kept raw: `raw` follows the module id, ends with EOF 0."""

    module_id: int
    name: str
    when: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class Function:
    """A function library. `code` is the source (`#!lua name=...`) of a FUNCTION2 record.

    For the 7.0 RC opcode 246 the reader fills `name`, `engine` and `desc` too.
    """

    code: bytes
    name: bytes | None = None
    engine: bytes | None = None
    desc: bytes | None = None


@dataclass(frozen=True, slots=True)
class SelectDB:
    db: int


@dataclass(frozen=True, slots=True)
class ResizeDB:
    db_size: int
    expires_size: int


@dataclass(frozen=True, slots=True)
class SlotInfo:
    slot: int
    slot_size: int
    expires_slot_size: int


@dataclass(frozen=True, slots=True)
class SlotImport:
    """Valkey 9 SLOT_IMPORT (opcode 243 in a VALKEY file): a slot import job in progress.

    `name` is the job's 40-character name; `ranges` its (start, end) slot ranges, inclusive.
    """

    name: bytes
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class KeyMeta:
    """One module metadata class attached to a key (KEY_META, RDB 13), kept raw.

    `class_spec` is the 32-bit spec as stored: the class's 4-character name (24 bits, 6 per
    character, first character highest), its version (5 bits) and flags (3 bits, bit 0 =
    ALLOW_IGNORE: a server without the class skips it). `raw` is the value: a module opcode
    stream through its EOF opcode (0), as in the file.
    """

    class_spec: int
    raw: bytes

    @property
    def name(self) -> str:
        x = self.class_spec >> 8
        return "".join(KEY_META_CHARSET[(x >> shift) & 63] for shift in (18, 12, 6, 0))

    @property
    def version(self) -> int:
        return (self.class_spec >> 3) & 31

    @property
    def flags(self) -> int:
        return self.class_spec & 7

    @property
    def allow_ignore(self) -> bool:
        return bool(self.class_spec & KEY_META_FLAG_ALLOW_IGNORE)


@dataclass(slots=True)
class KeyEntry:
    db: int
    key: bytes
    value: Value
    expire_ms: int | None = None  # absolute unix ms
    idle: int | None = None  # seconds (LRU), from the IDLE opcode
    freq: int | None = None  # LFU counter, from the FREQ opcode
    rdb_type: int = -1  # the object type byte as found in the file (tells the encoding)
    meta: tuple[KeyMeta, ...] = ()  # module metadata classes (KEY_META, RDB 13)


@dataclass(frozen=True, slots=True)
class End:
    """EOF reached. `checksum` is the stored CRC64 (0 = disabled) or None before RDB 5."""

    checksum: int | None


Event = (
    Header
    | Aux
    | ModuleAux
    | Function
    | SelectDB
    | ResizeDB
    | SlotInfo
    | SlotImport
    | KeyEntry
    | End
)


class RDBError(Exception):
    """A snapshot that cannot be read: malformed, truncated, corrupt or unsupported.

    `offset` is the byte offset in the file where the problem was found.
    """

    def __init__(self, message: str, offset: int | None = None):
        self.reason = message
        self.offset = offset
        super().__init__(message if offset is None else f"{message} (at byte offset {offset})")


class RDBUnsupportedError(RDBError):
    """A well-formed file using a version, type or opcode this reader does not know."""


class RDBChecksumError(RDBError):
    """The CRC64 stored at the end does not match the file's bytes."""
