"""The master's internal structures, emulated where clients can see them.

A replica's answers to `OBJECT ENCODING`, `MEMORY USAGE` and XINFO STREAM's
`radix-tree-keys`/`radix-tree-nodes` depend on how the master lays values out in memory,
which the relay does not copy (it keeps Python values). This module computes those layouts
from the values, as a server with default thresholds would: the encoding a value would have
(`object_encoding`), the bytes `objectComputeSize` would count with jemalloc's size classes
(`memory_usage`), and the listpack nodes and rax a stream's entries would fill (`StreamLayout`,
`rax_nodes`). It reads values and never changes them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import cast

from replproxy.dialect import MasterDialect
from replproxy.keyspace.t_hash import is_listpack_hash
from replproxy.keyspace.t_set import (
    SET_MAX_INTSET_ENTRIES,
    SET_MAX_LISTPACK_ENTRIES,
    SET_MAX_LISTPACK_VALUE,
)
from replproxy.keyspace.t_zset import listpack_score_text
from replproxy.keyspace.values import (
    HASHTABLE,
    INTSET,
    LISTPACK,
    ZSET_MAX_LISTPACK_ENTRIES,
    ZSET_MAX_LISTPACK_VALUE,
    SetValue,
    ZSet,
)
from replproxy.rdb.encode import LP_EMPTY_SIZE, double_to_int64, lp_entry, parse_int64
from replproxy.rdb.model import (
    HashValue,
    ModuleValue,
    StreamID,
    StreamValue,
    Value,
    ZSetValue,
)
from replproxy.resp.request import string2ll

_SET_ENCODINGS = {INTSET: b"intset", LISTPACK: b"listpack", HASHTABLE: b"hashtable"}
_OBJ_SHARED_INTEGERS = 10_000
_OBJ_SHARED_REFCOUNT = 2_147_483_647
_LIST_MAX_LISTPACK_BYTES = 8192  # list-max-listpack-size -2
_EMBSTR_SIZE_LIMIT = 44
_LFU_NOT_SELECTED = (
    b"ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
    b"that when switching between policies at runtime LRU and LFU data will take some time to "
    b"adjust."
)


def is_int_string(v: bytes) -> bool:
    """`tryObjectEncoding`'s test: up to 20 chars and `string2l` (a long is 64 bits), both
    checked by `parse_int64`."""
    return parse_int64(v) is not None


def _listpack_bytes(items: Iterable[bytes], limit: int) -> int:
    """Bytes of a listpack holding `items`, counted until it passes `limit`."""
    total = LP_EMPTY_SIZE
    for item in items:
        total += len(lp_entry(item))
        if total > limit:
            break
    return total


def object_encoding(
    key: bytes, value: Value, dialect: MasterDialect, has_ttl: bool, mark: bytes | None = None
) -> bytes:
    """The encoding the master holds `value` in, with the default thresholds
    (`*-max-listpack-*`, `set-max-intset-entries`): what its content gives, unless its
    history left a bigger one (`mark`, from `Keyspace.encodings`; sets and sorted sets
    carry theirs). A server never converts back: a string written in place stays raw, a
    hash or a set that once outgrew its compact form stays a hash table."""
    if mark is not None:  # a bigger encoding the value's history left (`Keyspace.encodings`)
        return mark
    compact_lists = dialect.listpack_lists
    if type(value) is bytes:
        if is_int_string(value):
            return b"int"
        return b"embstr" if len(value) <= dialect.embstr_limit(len(key), has_ttl) else b"raw"
    if isinstance(value, list | deque):
        if not compact_lists:
            return b"quicklist"
        if _listpack_bytes(value, _LIST_MAX_LISTPACK_BYTES) <= _LIST_MAX_LISTPACK_BYTES:
            return b"listpack"
        return b"quicklist"
    if isinstance(value, SetValue):
        return _SET_ENCODINGS[value.enc]
    if isinstance(value, set):
        n = len(value)
        if n <= SET_MAX_INTSET_ENTRIES and all(parse_int64(m) is not None for m in value):
            return b"intset"
        if (
            compact_lists
            and n <= SET_MAX_LISTPACK_ENTRIES
            and all(len(m) <= SET_MAX_LISTPACK_VALUE for m in value)
        ):
            return b"listpack"
        return b"hashtable"
    if isinstance(value, ZSet):  # it knows (a zset never converts back)
        return dialect.small_encoding if value.listpack else b"skiplist"
    if isinstance(value, ZSetValue):
        if len(value) <= ZSET_MAX_LISTPACK_ENTRIES and all(
            len(m) <= ZSET_MAX_LISTPACK_VALUE for m in value
        ):
            return dialect.small_encoding
        return b"skiplist"
    if isinstance(value, dict):
        h = cast("dict[bytes, bytes]", value)
        if is_listpack_hash(h):
            if isinstance(h, HashValue) and dialect.listpackex:
                return b"listpackex"  # a Redis 7.4+ hash that had field TTLs: it stays
            return dialect.small_encoding
        return b"hashtable"
    if isinstance(value, StreamValue):
        return dialect.stream_encoding_name
    return b"raw"  # a module value (createModuleObject keeps the default encoding)


def je_size(n: int) -> int:
    """jemalloc's size class for a request of n bytes (4 classes per doubling)."""
    if n <= 8:
        return 8
    if n <= 128:
        return (n + 15) & ~15
    step = 1 << ((n - 1).bit_length() - 3)
    return (n + step - 1) // step * step


def _sds_alloc(n: int, min_type8: bool = False) -> int:
    """zmalloc size of an sds of n bytes (header by `sdsReqType`, + NUL)."""
    if n < 32 and not min_type8:
        hdr = 1
    elif n < 256:
        hdr = 3
    elif n < 65536:
        hdr = 5
    elif n < 1 << 32:
        hdr = 9
    else:
        hdr = 17
    return je_size(hdr + n + 1)


def _dict_slots(n: int) -> int:
    size = 4
    while size < n:
        size <<= 1
    return size


_ROBJ = 16
_DICT = 56
_DICT_ENTRY = 24


def _sampled(total: int, costs: Iterable[int], samples: int) -> int:
    """`objectComputeSize`'s sampling: the mean cost of the first `samples` elements,
    times the element count."""
    n = 0
    s = 0
    for cost in costs:
        s += cost
        n += 1
        if n >= samples:
            break
    return int(s / n * total) if n else 0


def memory_usage(
    key: bytes,
    value: Value,
    samples: int,
    dialect: MasterDialect,
    has_ttl: bool,
    mark: bytes | None = None,
) -> int:
    """An estimate of MEMORY USAGE: `objectComputeSize` (the encoding `object_encoding`
    guesses, element sizes sampled the same way, jemalloc's size classes) plus what the
    key itself takes. Redis keeps a key in a dict entry (24 bytes) and its own sds; Valkey
    8 embeds it, with the TTL, in the value's object and uses its own hash table (64-byte
    buckets of 7) for big sets, hashes and sorted sets. Where a value's history on the
    master matters (stream nodes preallocated, big encodings kept after shrinking, sds
    slack, an allocator other than jemalloc) the master's figure can differ by tens of
    percent either way."""
    enc = object_encoding(key, value, dialect, has_ttl, mark)
    if enc == b"ziplist":
        enc = b"listpack"  # (before 7.0: a ziplist, sized here as the listpack it became)
    if dialect.embedded_keys:
        head = _ROBJ + 1 + _sds_len(len(key)) + (8 if has_ttl else 0)  # object + key
        if type(value) is bytes:
            if enc == b"int":
                return je_size(head)
            if enc == b"embstr":
                return je_size(head + 3 + len(value) + 1)
            return je_size(head) + _sds_alloc(len(value))
        return je_size(head) + _container_usage(value, enc, samples, dialect)
    keypart = _sds_alloc(len(key)) + _DICT_ENTRY
    if type(value) is bytes:
        if enc == b"int":
            return keypart + _ROBJ
        if enc == b"embstr":
            return keypart + je_size(_ROBJ + 3 + len(value) + 1)
        return keypart + _ROBJ + _sds_alloc(len(value))
    return keypart + _ROBJ + _container_usage(value, enc, samples, dialect)


def _sds_len(n: int) -> int:
    """Bytes (not rounded) of an sds of n bytes: header + data + NUL."""
    return (1 if n < 32 else 3 if n < 256 else 5 if n < 65536 else 9) + n + 1


def _table(n: int, valkey: bool) -> int:
    """A hash table's own allocations for n elements: Redis's dict (struct + a power of
    two of 8-byte slots), Valkey's hashtable (64-byte buckets of 7 entries)."""
    if valkey:
        buckets = 1
        while buckets * 6 < n:
            buckets <<= 1
        return 64 + 64 * buckets
    return _DICT + 8 * _dict_slots(n)


def _container_usage(value: Value, enc: bytes, samples: int, dialect: MasterDialect) -> int:
    valkey = dialect.valkey_hashtable
    if isinstance(value, list | deque):
        items = value
        if enc == b"listpack":
            return je_size(_listpack_bytes(items, 1 << 62))
        # Quicklist: 40-byte header, then per node a 32-byte node plus its listpack, the
        # nodes filled up to 8 KB (`_quicklistNodeAllowInsert`).
        nodes: list[int] = []
        size = LP_EMPTY_SIZE
        count = 0  # items in the nodes measured
        for item in items:
            entry = len(lp_entry(item))
            if size > LP_EMPTY_SIZE and size + len(item) + 11 > _LIST_MAX_LISTPACK_BYTES:
                nodes.append(size)
                if len(nodes) >= samples:
                    break
                size = LP_EMPTY_SIZE
            size += entry
            count += 1
        else:
            nodes.append(size)
        per_node = sum(32 + je_size(s) for s in nodes) / len(nodes)
        per_item = count / len(nodes) if count >= len(nodes) else 1
        node_count = max(1, math.ceil(len(items) / per_item))
        return 40 + int(per_node * node_count)
    if isinstance(value, set):
        n = len(value)
        if enc == b"intset":
            ints = [int(m) for m in value]
            width = 2
            if any(not -(1 << 15) <= x < 1 << 15 for x in ints):
                width = 4 if all(-(1 << 31) <= x < 1 << 31 for x in ints) else 8
            return je_size(8 + width * n)
        if enc == b"listpack":
            return je_size(_listpack_bytes(value, 1 << 62))
        entry = 0 if valkey else _DICT_ENTRY  # Valkey's buckets point at the sds itself
        return _table(n, valkey) + _sampled(
            n, (entry + _sds_alloc(len(m), True) for m in value), samples
        )
    if isinstance(value, ZSetValue):
        n = len(value)
        if enc == b"listpack":
            # Each score as that version's listpack (or ziplist) holds it.
            style, ziplist = dialect.double_style, not dialect.zset_listpack_drops_zero_sign
            flat: list[bytes | int] = []
            for m, s in value.items():
                i = None if ziplist else double_to_int64(s)
                flat += (m, i if i is not None else listpack_score_text(s, style, ziplist))
            return je_size(LP_EMPTY_SIZE + sum(len(lp_entry(e)) for e in flat))
        # zset + skiplist + table, the 32-level header node, then per element its sds, a
        # table entry and a skiplist node (1.33 levels on average).
        entry = 0 if valkey else _DICT_ENTRY
        header = je_size(24 + 16 * dialect.skiplist_max_level)
        return (
            16
            + 32
            + _table(n, valkey)
            + header
            + _sampled(n, (_sds_alloc(len(m), True) + entry + 48 for m in value), samples)
        )
    if isinstance(value, dict):
        h = cast("dict[bytes, bytes]", value)
        n = len(h)
        if enc in (b"listpack", b"listpackex"):
            return je_size(_listpack_bytes((x for kv in h.items() for x in kv), 1 << 62))
        if valkey:  # one allocation per entry: field and value embedded
            costs = (je_size(8 + _sds_len(len(f)) + _sds_len(len(v))) for f, v in h.items())
        else:
            costs = (
                _sds_alloc(len(f), True) + _sds_alloc(len(v), True) + _DICT_ENTRY
                for f, v in h.items()
            )
        return _table(n, valkey) + _sampled(n, costs, samples)
    if isinstance(value, StreamValue):
        return _stream_usage(value, dialect.stream_nodes_preallocated)
    if isinstance(value, ModuleValue):
        # A module type the relay models answers its module's own estimate (mem_usage).
        mem_usage = getattr(value, "mem_usage", None)
        return mem_usage() if mem_usage is not None else len(value.raw)
    return 0


def _rax_usage(elements: int) -> int:
    """`streamRadixTreeMemoryUsage`, taking as many nodes as elements plus the root."""
    nodes = elements + 1 if elements else 1
    return elements * 16 + nodes * (4 + 8 * 30)


def _stream_usage(s: StreamValue, preallocated: bool = True) -> int:
    """The stream header, its radix tree of listpacks (nodes of up to 100 entries or 4 KB;
    full ones shrunk to fit, the last one as XADD preallocated it, 4 KB, from 7.0; before,
    `lpBytes` of each), and the consumer groups with their PELs."""
    nodes = 0
    lp_total = 0
    node_bytes = 0
    node_entries = 0
    for fields in s.entries.values():
        # flags, id deltas, values (the fields too unless the node's first entry had the
        # same ones), the entry's length; small integers take 2 bytes.
        size = 8 + sum(len(v) + 2 for _f, v in fields)
        if node_entries >= 100 or (node_entries and node_bytes + size > 4096):
            lp_total += je_size(node_bytes)
            nodes += 1
            node_bytes = node_entries = 0
        if not node_entries:
            node_bytes = LP_EMPTY_SIZE + 12 + sum(len(f) + 2 for f, _v in fields)
        node_bytes += size
        node_entries += 1
    if node_entries:
        lp_total += je_size(max(node_bytes, 4096)) if preallocated else node_bytes
        nodes += 1
    usage = 80 + _rax_usage(nodes) + lp_total
    for g in s.groups:
        usage += 48 + _rax_usage(len(g.pel)) + 40 * len(g.pel)
        for consumer in g.consumers:
            usage += 56 + len(consumer.name) + _rax_usage(len(consumer.pending))
    return usage


# ---- streams: the listpack nodes and the rax behind XINFO STREAM's radix-tree counts ----

_UINT64_MAX = 2**64 - 1
_ZERO_ID: StreamID = (0, 0)

# The defaults of stream-node-max-bytes / stream-node-max-entries (the master's own settings
# are not known here).
_NODE_MAX_BYTES = 4096
_NODE_MAX_ENTRIES = 100


def _lp_int_size(v: int) -> int:
    """Bytes of a listpack integer entry (`lpEncodeIntegerGetType` + the backlen byte)."""
    if 0 <= v <= 127:
        return 2
    if -4096 <= v <= 4095:
        return 3
    if -0x8000 <= v <= 0x7FFF:
        return 4
    if -0x800000 <= v <= 0x7FFFFF:
        return 5
    if -0x80000000 <= v <= 0x7FFFFFFF:
        return 6
    return 10


def _lp_size(b: bytes) -> int:
    """Bytes of a listpack entry holding `b` (`lpAppend`: integers when canonical)."""
    n = len(b)
    if n and n <= 20 and b[0] in b"-0123456789":
        v = string2ll(b)
        if v is not None:
            return _lp_int_size(v)
    body = n + (1 if n < 64 else 2 if n < 4096 else 5)
    return body + (
        1
        if body <= 127
        else 2
        if body < 16383
        else 3
        if body < 2097151
        else 4
        if body < 268435455
        else 5
    )


def _i64(v: int) -> int:
    """A uint64 difference as the int64 Redis appends to the listpack."""
    v &= _UINT64_MAX
    return v - (1 << 64) if v >> 63 else v


class StreamLayout:
    """The listpack nodes `streamAppendItem` builds: their master IDs, and the tail node's
    state (entries, bytes, master ID and fields) to place the next XADD."""

    __slots__ = ("count", "keys", "lp_bytes", "master_fields", "master_id")

    def __init__(self) -> None:
        self.keys: list[StreamID] = []
        self.count = 0
        self.lp_bytes = 0
        self.master_id = _ZERO_ID
        self.master_fields: list[bytes] = []

    def append(self, sid: StreamID, fields: list[tuple[bytes, bytes]]) -> None:
        totelelen = sum([len(f) + len(v) for f, v in fields])
        if self.count and (
            self.lp_bytes + totelelen >= _NODE_MAX_BYTES or self.count >= _NODE_MAX_ENTRIES
        ):
            self.count = 0
        if not self.count:
            self.keys.append(sid)
            self.master_id = sid
            master_fields = self.master_fields = [f for f, _ in fields]
            # Header and end byte (7), then the master entry: count, deleted, #fields,
            # fields..., 0 (the counters stay one-byte integers: at most 100 entries).
            self.lp_bytes = 7 + 6 + _lp_int_size(len(master_fields))
            self.lp_bytes += sum([_lp_size(f) for f in master_fields])
            same = True
        else:
            master_fields = self.master_fields
            same = len(fields) == len(master_fields) and all(
                f == m for (f, _), m in zip(fields, master_fields)
            )
        master = self.master_id
        # flags, ms and seq deltas, the values (SAMEFIELDS) or #fields and the pairs,
        # then the entry's own element count.
        size = 2 + _lp_int_size(_i64(sid[0] - master[0])) + _lp_int_size(_i64(sid[1] - master[1]))
        if same:
            size += sum([_lp_size(v) for _, v in fields]) + _lp_int_size(len(fields) + 3)
        else:
            size += _lp_int_size(len(fields)) + _lp_int_size(2 * len(fields) + 4)
            size += sum([_lp_size(f) + _lp_size(v) for f, v in fields])
        self.lp_bytes += size
        self.count += 1


def rax_nodes(keys: list[StreamID]) -> int:
    """`rax->numnodes` of a rax holding these keys (16-byte big-endian IDs, sorted).

    rax keeps itself compressed: each run of single-child nodes is one node, so the count is
    that of the compact trie - one node per branching point, one per edge longer than its
    first byte (the rest of the edge), one per key, and the head.
    """
    if not keys:
        return 1  # the empty head
    raw = [ms.to_bytes(8, "big") + seq.to_bytes(8, "big") for ms, seq in keys]

    def node(lo: int, hi: int, depth: int) -> int:  # raw[lo:hi] share raw[:depth]
        if depth == 16:
            return 1  # the key's leaf
        if hi - lo == 1:
            return 2  # the rest of the key as one node, then the leaf
        a, b = raw[lo], raw[hi - 1]
        p = depth
        while a[p] == b[p]:
            p += 1
        return (1 if p > depth else 0) + branch(lo, hi, p)

    def branch(lo: int, hi: int, depth: int) -> int:
        total = 1
        i = lo
        while i < hi:
            byte = raw[i][depth]
            j = i + 1
            while j < hi and raw[j][depth] == byte:
                j += 1
            total += node(i, j, depth + 1)
            i = j
        return total

    return node(0, len(raw), 0)
