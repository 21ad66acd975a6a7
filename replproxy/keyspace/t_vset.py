"""Vector sets (Redis 8's built-in `vectorset` module type): the value, the appliers of what
the master propagates, and the V* read commands (`modules/vector-sets/vset.c`, 8.2.3).

This module owns `VectorSet` values and every V* command; it touches no other type. The
graph and the float arithmetic live in `vset_hnsw`, the RDB bytes in `vset_codec`, FILTER
expressions in `vset_filter`. docs/keyspace.md says what is exact and where a real replica
may legitimately answer otherwise.

The value. A `VectorSet` is a `ModuleValue` (module type `vectorset`, encoding version 0)
whose `raw` opcode stream is kept as read from the snapshot (or a RESTORE payload) and
decoded on first use; once written it is re-encoded on demand (`raw` is a property), so the
RDB writer, DUMP, TYPE, SCAN, RENAME... handle it as any module value. The reader builds one
for every module value named `vectorset` (the `MODULE_TYPES` hook of `rdb.model`). Each new
object takes the next `uid` of a per-process counter, as the module's `VectorSetTypeNextId`
(VINFO's `vset-uid`): objects are made in the same order as on a replica that loads the same
snapshot and applies the same stream (one per vector set in the file, per VADD creating a
key, per RESTORE).

What arrives from the master (`RedisModule_ReplicateVerbatim` in vset.c):

- VADD key [REDUCE dim] FP32 blob|VALUES n v... element [CAS] [NOQUANT|BIN|Q8] [EF n]
  [SETATTR json] [M n], verbatim, only when it ADDED an element (an update of an existing
  element's vector is not replicated by 8.2.3, so a replica keeps the old vector: so does
  the relay). A replica drops CAS. A new key is created with the options' quantization (Q8
  by default), M (16) and, with REDUCE, the Hadamard projection matrix; the vector is
  projected, normalized, quantized and inserted into the graph with the given EF (200).
  SETATTR "" on a new element stores an empty attribute (which the next snapshot drops).
- VREM key element (when it removed one; the key goes with its last element), VSETATTR
  key element json (when the element exists; "" removes the attribute).

Reads: VCARD, VDIM, VEMB [RAW], VGETATTR, VINFO, VISMEMBER, VLINKS [WITHSCORES],
VRANDMEMBER [count], VSIM (ELE|FP32|VALUES, WITHSCORES, WITHATTRIBS, COUNT, EPSILON, EF,
FILTER, FILTER-EF, TRUTH, NOTHREAD) with the module's argument order, errors and reply
shapes. VSIM answers by an exact scan of the (quantized) vectors with the module's
arithmetic and its priority queue's tie order, which is what a real replica's HNSW search
returns whenever it reaches the true neighbours (always for a set of at most EF elements,
EF being max(COUNT, EF option or 100)); TRUTH is the module's own linear scan, so it is
exact in all cases.
"""

from __future__ import annotations

import bisect
import itertools
import math
from typing import ClassVar

import numpy as np

from replproxy.args import c_string
from replproxy.keyspace.internals import je_size
from replproxy.keyspace.reads import (
    WRONGTYPE,
    ReadContext,
    ReplyError,
    peek,
    read_command,
    unsupported_key_error,
)
from replproxy.keyspace.registry import ApplyError, write_command
from replproxy.keyspace.store import Keyspace
from replproxy.keyspace.vset_codec import MAX_DIM, VsetData, decode, encode
from replproxy.keyspace.vset_filter import (
    Expr,
    ExprSyntaxError,
    compile_expr,
    strtod_whole,
    syntax_error_text,
)
from replproxy.keyspace.vset_hnsw import (
    HNSW,
    MAX_M,
    MIN_M,
    QUANT_BIN,
    QUANT_NONE,
    QUANT_Q8,
    F32Array,
    Node,
    dequantize,
    normalize,
    project,
    projection_matrix,
    quantize_bin,
    quantize_q8,
)
from replproxy.rdb.model import MODULE_TYPES, ModuleValue
from replproxy.resp import reply
from replproxy.resp.request import string2ll

_CHARSET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def module_type_id(name: str, encver: int) -> int:
    """`moduleTypeEncodeId`: 9 chars of 6 bits each, then the 10-bit encoding version."""
    mid = 0
    for ch in name:
        mid = (mid << 6) | _CHARSET.index(ch)
    return (mid << 10) | encver


VSET_NAME = "vectorset"
VSET_MODULE_ID = module_type_id(VSET_NAME, 0)
DEFAULT_EF = 200  # VSET_DEFAULT_C_EF
DEFAULT_SEARCH_EF = 100  # VSET_DEFAULT_SEARCH_EF
DEFAULT_COUNT = 10  # VSET_DEFAULT_COUNT
_QUANT_NAMES = {QUANT_NONE: b"f32", QUANT_Q8: b"int8", QUANT_BIN: b"bin"}

# VectorSetTypeNextId: a per-process counter, as the module's static.
_next_uid = itertools.count()

# MEMORY USAGE (VectorSetMemUsage): sizeof of the module's structs in the 8.2.3 build.
_SIZEOF_VSET, _SIZEOF_HNSW, _SIZEOF_NODE, _SIZEOF_LAYER = 112, 1672, 312, 24


class VectorSet(ModuleValue):
    """A `vectorset` module value: raw opcode stream and/or decoded graph (see the module
    docstring). Mutate only through `data` and then `modified()`."""

    name: str = VSET_NAME
    module_id: int = VSET_MODULE_ID
    encver: int = 0
    _fields: ClassVar[tuple[str, ...]] = ("_raw", "_data", "uid")

    def __init__(
        self,
        module_id: int = VSET_MODULE_ID,
        name: str = VSET_NAME,
        encver: int = 0,
        raw: bytes | None = None,
        data: VsetData | None = None,
    ) -> None:
        if raw is None and data is None:
            raise ValueError("a VectorSet needs its raw bytes or its data")
        self._raw = raw
        self._data = data
        self.uid = next(_next_uid)

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            assert self._data is not None
            self._raw = encode(self._data)
        return self._raw

    @raw.setter
    def raw(self, value: bytes) -> None:
        self._raw, self._data = value, None

    @property
    def data(self) -> VsetData:
        """The decoded set (decoded from `raw` on first use; ValueError when corrupt)."""
        if self._data is None:
            assert self._raw is not None
            self._data = decode(self._raw)
        return self._data

    def modified(self) -> None:
        """The data changed: `raw` is re-encoded when next asked for."""
        self._raw = None

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (VectorSet, (VSET_MODULE_ID, VSET_NAME, 0, self.raw))

    def __repr__(self) -> str:
        state = "decoded" if self._data is not None else f"{len(self._raw or b'')} raw bytes"
        return f"VectorSet(uid={self.uid}, {state})"

    def mem_usage(self) -> int:
        """`VectorSetMemUsage`: the module's own estimate (struct sizes of the 8.2.3 build,
        a 4/3 layer factor, names and attributes sampled from the first 20 nodes)."""
        d = self.data
        h = d.hnsw
        size = _SIZEOF_VSET + _SIZEOF_HNSW
        if d.proj is not None:
            size += 4 * d.proj_input * h.dim
        head = h.head
        if head is None:
            return size
        n = h.node_count
        size += _SIZEOF_NODE * n + h.vectors.nbytes * n
        size += _SIZEOF_LAYER * n * 4 // 3
        l0 = head.max_links[0]
        size += 8 * l0 * n + (8 * (l0 // 2) * n) // 3
        items = attribs = items_n = attribs_n = 0
        for node in itertools.islice(h.nodes(), 20):
            items += _string_alloc(len(node.item))
            items_n += 1
            if node.attrib is not None:
                attribs += _string_alloc(len(node.attrib))
                attribs_n += 1
        if items_n:
            size += items // items_n * n
        if attribs_n == 0:
            attribs_n, attribs = 1, 64
        size += attribs // attribs_n * d.numattribs
        return size + len(d.by_item) * 16


def _string_alloc(n: int) -> int:
    """`RedisModule_MallocSizeString` of an n-byte string: an embstr object up to 44 bytes,
    else a robj plus an sds (jemalloc size classes)."""
    if n <= 44:
        return je_size(16 + 3 + n + 1)
    return je_size(16) + je_size(9 + n + 1)


def _from_rdb(module_id: int, name: str, encver: int, raw: bytes) -> ModuleValue:
    if encver != 0:
        return ModuleValue(module_id, name, encver, raw)
    return VectorSet(module_id, name, encver, raw)


MODULE_TYPES[VSET_NAME] = _from_rdb


# ---- vectors from arguments ----


_C_SPACE = b" \t\n\v\f\r"


def _to_double(raw: bytes) -> float | None:
    """`RedisModule_StringToDouble` (`string2d`... `getDoubleFromObject`): the whole string
    by strtod, no leading space, no NaN, no overflow or inexact underflow."""
    text = raw
    if not text or text[:1] in _C_SPACE or text[-1:] in _C_SPACE or b"\0" in text:
        return None
    try:
        v = float(text) if b"_" not in text else None  # Python's float: no `_` in C
    except ValueError:
        v = strtod_whole(text)  # hex floats
    if v is None or v != v:
        return None
    low = text.lower().lstrip(b"+-")
    if math.isinf(v) and not low.startswith(b"inf"):
        return None  # ERANGE overflow
    if v == 0 and any(ch in b"123456789" for ch in text.split(b"e")[0].split(b"E")[0]):
        return None  # ERANGE underflow to zero
    return v


class _VecArgs:
    """`parseVector`'s result: the float vector, its dimension, REDUCE's and how many
    arguments it took."""

    __slots__ = ("consumed", "dim", "reduce", "vec")

    def __init__(self, vec: F32Array, reduce: int, consumed: int) -> None:
        self.vec = vec
        self.dim = len(vec)
        self.reduce = reduce
        self.consumed = consumed


def parse_vector(argv: list[bytes], start: int, allow_reduce: bool) -> _VecArgs | None:
    """`parseVector`: [REDUCE dim] FP32 blob | VALUES n v1..vn; None where it fails."""
    argc = len(argv)
    consumed = 0
    reduce = 0
    if allow_reduce and argc > start + 2 and c_string(argv[start]).lower() == b"reduce":
        rdim = string2ll(argv[start + 1])
        if rdim is None or rdim <= 0:
            return None
        reduce = rdim & 0xFFFFFFFF
        start += 2
        consumed += 2
    if start >= argc:
        return None
    fmt = c_string(argv[start]).lower()
    if fmt == b"fp32":
        if argc < start + 2:
            return None
        blob = argv[start + 1]
        if len(blob) % 4 or len(blob) < 4 or len(blob) // 4 > MAX_DIM:
            return None
        vec = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        consumed += 2
    elif fmt == b"values":
        if argc < start + 2:
            return None
        vdim = string2ll(argv[start + 1])
        if vdim is None or vdim < 1 or vdim > MAX_DIM or argc < start + 2 + vdim:
            return None
        vals = []
        for raw in argv[start + 2 : start + 2 + vdim]:
            v = _to_double(raw)
            if v is None:
                return None
            vals.append(v)
        vec = np.array(vals, dtype=np.float64).astype(np.float32)
        consumed += vdim + 2
    else:
        return None
    if reduce and reduce > len(vec):
        return None
    return _VecArgs(vec, reduce, consumed)


# ---- the appliers ----


def _vset(ks: Keyspace, db: int, key: bytes) -> VectorSet | None:
    v = ks.get(db, key)
    if v is None or isinstance(v, VectorSet):
        return v
    raise ApplyError(f"WRONGTYPE: {key!r} holds a {type(v).__name__}, not a vector set")


def _insert(d: VsetData, vec: F32Array, item: bytes, attrib: bytes | None, ef: int) -> bool:
    """`vectorSetInsert` with update=1: True when added."""
    h = d.hnsw
    node = d.by_item.get(item)
    if node is not None:
        old_attrib = node.attrib
        h.delete(node)
        node = h.insert(vec, item, old_attrib, ef)
        d.by_item[item] = node
        if attrib is not None:
            new = attrib or None
            if new is not None:
                d.numattribs += 1
            if node.attrib is not None:
                d.numattribs -= 1
            node.attrib = new
        return False
    node = h.insert(vec, item, attrib, ef)
    if attrib is not None:
        d.numattribs += 1
    d.by_item[item] = node
    return True


@write_command("vadd")
def vadd(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    va = parse_vector(argv, 2, allow_reduce=True)
    if va is None or len(argv) - 2 - va.consumed < 1:
        raise ApplyError("VADD: invalid vector specification")
    ef, m, quant = DEFAULT_EF, 16, QUANT_Q8
    attrib: bytes | None = None
    j = 2 + va.consumed + 1
    while j < len(argv):
        opt = c_string(argv[j]).lower()
        if opt == b"cas":
            pass  # dropped on a replica (REDISMODULE_CTX_FLAGS_REPLICATED)
        elif opt == b"ef" and j + 1 < len(argv):
            v = string2ll(argv[j + 1])
            if v is None or v <= 0 or v > 1_000_000:
                raise ApplyError("VADD: invalid EF")
            ef = v
            j += 1
        elif opt == b"m" and j + 1 < len(argv):
            v = string2ll(argv[j + 1])
            if v is None or v < MIN_M or v > MAX_M:
                raise ApplyError("VADD: invalid M")
            m = v
            j += 1
        elif opt == b"setattr" and j + 1 < len(argv):
            attrib = argv[j + 1]
            j += 1
        elif opt == b"noquant":
            quant = QUANT_NONE
        elif opt == b"bin":
            quant = QUANT_BIN
        elif opt == b"q8":
            quant = QUANT_Q8
        else:
            raise ApplyError(f"VADD: invalid option {argv[j]!r}")
        j += 1
    item = argv[2 + va.consumed]
    vs = _vset(ks, db, key)
    vec, dim = va.vec, va.dim
    if vs is None:
        d = VsetData(HNSW(va.reduce or dim, quant, m))
        if va.reduce:
            d.proj = projection_matrix(dim, va.reduce)
            d.proj_input = dim
            vec = project(d.proj, vec)
        vs = VectorSet(data=d)
        _insert(d, vec, item, attrib, ef)
        ks.set(db, key, vs)
        return
    d = vs.data
    h = d.hnsw
    if h.quant != quant or m != h.M:
        raise ApplyError("VADD: quantization or M mismatch with the existing vector set")
    if (d.proj is None and h.dim != dim) or (d.proj is not None and h.dim != va.reduce):
        raise ApplyError("VADD: vector dimension mismatch")
    if va.reduce and (d.proj is None or va.reduce != h.dim):
        raise ApplyError("VADD: projection mismatch")
    if d.proj is not None:
        if dim != d.proj_input:
            raise ApplyError("VADD: input dimension mismatch for the projection")
        vec = project(d.proj, vec)
    _insert(d, vec, item, attrib, ef)
    vs.modified()
    ks.touched(db, key)


@write_command("vrem")
def vrem(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    if len(argv) != 3:
        raise ApplyError("VREM: wrong number of arguments")
    key, item = argv[1], argv[2]
    vs = _vset(ks, db, key)
    if vs is None:
        return
    d = vs.data
    node = d.by_item.pop(item, None)
    if node is None:
        return
    if node.attrib is not None:
        d.numattribs -= 1
    d.hnsw.delete(node)
    if not d.by_item:
        ks.delete(db, key)
        return
    vs.modified()
    ks.touched(db, key)


@write_command("vsetattr")
def vsetattr(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    if len(argv) != 4:
        raise ApplyError("VSETATTR: wrong number of arguments")
    vs = _vset(ks, db, argv[1])
    if vs is None:
        return
    d = vs.data
    node = d.by_item.get(argv[2])
    if node is None:
        return
    new = argv[3]
    if not new:
        if node.attrib is not None:
            d.numattribs -= 1
            node.attrib = None
    else:
        if node.attrib is None:
            d.numattribs += 1
        node.attrib = new
    vs.modified()
    ks.touched(db, argv[1])


# ---- reads ----


def wrong_arity(argv: list[bytes]) -> ReplyError:
    """`RedisModule_WrongArity`: the command name as the client sent it."""
    return ReplyError(b"ERR wrong number of arguments for '%b' command" % c_string(argv[0]))


def lookup_vset(c: ReadContext, key: bytes) -> VsetData | None:
    """The decoded set at `key` (None when missing), WRONGTYPE for any other value."""
    v = peek(c, key)
    if v is None:
        return None
    if not isinstance(v, VectorSet):
        raise ReplyError(WRONGTYPE)
    try:
        return v.data
    except (ValueError, IndexError, KeyError) as e:
        raise ReplyError(unsupported_key_error(key) + b" (%b)" % str(e).encode()) from None


def _double(c: ReadContext, x: float) -> bytes:
    return reply.double(float(x), c.proto, c.dstyle)


@read_command("vcard")
def vcard(c: ReadContext, argv: list[bytes]) -> bytes:
    d = lookup_vset(c, argv[1])
    return reply.integer(0 if d is None else d.hnsw.node_count)


@read_command("vdim")
def vdim(c: ReadContext, argv: list[bytes]) -> bytes:
    d = lookup_vset(c, argv[1])
    if d is None:
        raise ReplyError(b"ERR key does not exist")
    return reply.integer(d.hnsw.dim)


@read_command("vismember")
def vismember(c: ReadContext, argv: list[bytes]) -> bytes:
    d = lookup_vset(c, argv[1])
    return reply.boolean(d is not None and argv[2] in d.by_item, c.proto)


@read_command("vgetattr")
def vgetattr(c: ReadContext, argv: list[bytes]) -> bytes:
    d = lookup_vset(c, argv[1])
    node = None if d is None else d.by_item.get(argv[2])
    if node is None or node.attrib is None:
        return reply.null(c.proto)
    return reply.bulk(node.attrib)


def node_vector(h: HNSW, node: Node) -> F32Array:
    """`hnsw_get_node_vector`."""
    return dequantize(h.quant, h.dim, h.vectors.raw(node.slot), node.l2, node.qrange)


@read_command("vemb")
def vemb(c: ReadContext, argv: list[bytes]) -> bytes:
    raw = False
    for opt in argv[3:]:
        if c_string(opt).lower() == b"raw":
            raw = True
        else:
            raise ReplyError(b"ERR invalid option")
    d = lookup_vset(c, argv[1])
    node = None if d is None else d.by_item.get(argv[2])
    if d is None or node is None:
        return reply.null(c.proto)
    h = d.hnsw
    if raw:
        parts = [
            reply.simple_string(_QUANT_NAMES[h.quant]),
            reply.bulk(h.vectors.raw(node.slot)),
            _double(c, node.l2),
        ]
        if h.quant == QUANT_Q8:
            parts.append(_double(c, node.qrange))
        return reply.array_len(len(parts)) + b"".join(parts)
    vec = node_vector(h, node)
    return reply.array_len(len(vec)) + b"".join(_double(c, float(x)) for x in vec)


@read_command("vinfo")
def vinfo(c: ReadContext, argv: list[bytes]) -> bytes:
    d = lookup_vset(c, argv[1])
    if d is None:
        return reply.null_array(c.proto)
    v = peek(c, argv[1])
    assert isinstance(v, VectorSet)
    h = d.hnsw
    # max-level without building pending links: the top level of the nodes (what the
    # entry point has once they are linked, short of deletions moving it lower).
    max_level = h.max_level
    if h.pending:
        max_level = max((n.level for n in h.nodes()), default=0)
    fields = [
        (b"quant-type", reply.simple_string(_QUANT_NAMES[h.quant])),
        (b"hnsw-m", reply.integer(h.M)),
        (b"vector-dim", reply.integer(h.dim)),
        (b"projection-input-dim", reply.integer(d.proj_input)),
        (b"size", reply.integer(h.node_count)),
        (b"max-level", reply.integer(max_level)),
        (b"attributes-count", reply.integer(d.numattribs)),
        (b"vset-uid", reply.integer(v.uid)),
        (b"hnsw-max-node-uid", reply.integer(h.last_id)),
    ]
    return reply.map_len(len(fields), c.proto) + b"".join(
        reply.simple_string(k) + val for k, val in fields
    )


@read_command("vlinks")
def vlinks(c: ReadContext, argv: list[bytes]) -> bytes:
    if len(argv) > 4:
        raise wrong_arity(argv)
    withscores = False
    if len(argv) == 4:
        if c_string(argv[3]).lower() != b"withscores":
            raise wrong_arity(argv)
        withscores = True
    d = lookup_vset(c, argv[1])
    node = None if d is None else d.by_item.get(argv[2])
    if d is None or node is None:
        return reply.null(c.proto)
    h = d.hnsw
    h.ensure_graph()
    out = [reply.array_len(node.level + 1)]
    for level in range(node.level, -1, -1):
        links = node.links[level]
        if withscores:
            out.append(reply.map_len(len(links), c.proto))
            for other, dist in zip(links, h.dists(node, links), strict=True):
                sim = np.float32(1.0 - float(np.float32(dist)) / 2.0)
                out.append(reply.bulk(other.item) + _double(c, float(sim)))
        else:
            out.append(reply.array_len(len(links)))
            out.extend(reply.bulk(other.item) for other in links)
    return b"".join(out)


@read_command("vrandmember")
def vrandmember(c: ReadContext, argv: list[bytes]) -> bytes:
    if len(argv) not in (2, 3):
        raise wrong_arity(argv)
    with_count = len(argv) == 3
    count = 1
    if with_count:
        n = string2ll(argv[2])
        if n is None:
            raise ReplyError(b"ERR COUNT value is not an integer")
        if n == 0:
            return reply.EMPTY_ARRAY
        count = n
    d = lookup_vset(c, argv[1])
    if d is None or d.hnsw.node_count == 0:
        return reply.EMPTY_ARRAY if with_count else reply.null(c.proto)
    h = d.hnsw
    if not with_count:
        node = h.random_node()
        return reply.null(c.proto) if node is None else reply.bulk(node.item)
    size = h.node_count
    dups = count < 0
    want = -count if dups else count
    if not dups and want > size:
        want = size
    picked: list[bytes] = []
    if dups:
        for _ in range(want):
            node = h.random_node()
            assert node is not None
            picked.append(node.item)
    elif want <= size * 0.2:
        seen: set[bytes] = set()
        while len(picked) < want:
            node = h.random_node()
            assert node is not None
            if node.item not in seen:
                seen.add(node.item)
                picked.append(node.item)
    else:
        cur = h.random_node()
        while len(picked) < want:
            if cur is None:
                cur = h.head
            assert cur is not None
            picked.append(cur.item)
            cur = cur.next
    return reply.array_len(len(picked)) + b"".join(reply.bulk(x) for x in picked)


# ---- VSIM ----


def query_row(h: HNSW, vec: F32Array) -> tuple[np.ndarray, float]:
    """`hnsw_init_tmp_node` (not normalized yet): the query's row in the set's encoding."""
    vec, _ = normalize(vec)
    if h.quant == QUANT_NONE:
        return vec, 0.0
    if h.quant == QUANT_Q8:
        q, qrange = quantize_q8(vec)
        return np.frombuffer(q, dtype=np.int8), qrange
    return np.frombuffer(quantize_bin(vec), dtype="<u8").astype(np.uint64), 0.0


def nearest(h: HNSW, vec: F32Array, k: int, flt: Expr | None) -> list[tuple[float, Node]]:
    """The k nearest nodes to `vec` (distance, node), nearest first, as
    `hnsw_ground_truth_with_filter` finds them: every node from the head of the list
    (passing the filter) pushed in turn into a queue of k, with the queue's tie rules."""
    if k <= 0 or h.node_count == 0:
        return []
    q, qrange = query_row(h, vec)
    if flt is not None:
        quick = _nearest_filtered(h, q, qrange, k, flt)
        if quick is not None:
            return quick
    nodes = [n for n in h.nodes() if flt is None or flt.run(n.attrib)]
    if not nodes:
        return []
    dists = h.vectors.distances(q, qrange, [n.slot for n in nodes])
    if len(nodes) > k:
        threshold = np.partition(dists, k - 1)[k - 1]
        order = np.nonzero(dists <= threshold)[0].tolist()
    else:
        order = list(range(len(nodes)))
    keys: list[float] = []  # ascending distances, nearest first
    vals: list[Node] = []
    for i in order:
        dist = float(dists[i])
        if i < k:  # the queue still has room when this one is pushed
            pos = bisect.bisect_left(keys, dist)
        else:
            if len(keys) >= k:
                if dist >= keys[-1]:
                    continue
                keys.pop()
                vals.pop()
            pos = bisect.bisect_right(keys, dist)
        keys.insert(pos, dist)
        vals.insert(pos, nodes[i])
    return list(zip(keys, vals, strict=True))


def _nearest_filtered(
    h: HNSW, q: np.ndarray, qrange: float, k: int, flt: Expr
) -> list[tuple[float, Node]] | None:
    """`nearest` with a filter, evaluating it in distance order until k elements pass
    (a FILTER costs a JSON parse per element it looks at). Without ties among the distances
    looked at, the queue's answer is just these in distance order; with ties the queue's
    placement depends on how many passing elements came earlier in the list, so None asks
    for the full scan."""
    nodes = list(h.nodes())
    dists = h.vectors.distances(q, qrange, [n.slot for n in nodes])
    out: list[tuple[float, Node]] = []
    for i in np.argsort(dists, kind="stable").tolist():
        d = float(dists[i])
        if len(out) == k and d != out[-1][0]:
            return out
        if flt.run(nodes[i].attrib):
            if out and d == out[-1][0]:
                return None  # a tie the queue may order (or keep) otherwise
            out.append((d, nodes[i]))
    return out


def _count_arg(raw: bytes, msg: bytes, lo: int, hi: int | None) -> int:
    v = string2ll(raw)
    if v is None or v < lo or (hi is not None and v > hi):
        raise ReplyError(msg)
    return v


@read_command("vsim")
def vsim(c: ReadContext, argv: list[bytes]) -> bytes:
    argc = len(argv)
    d = lookup_vset(c, argv[1])
    if d is None:
        return reply.EMPTY_ARRAY
    h = d.hnsw
    kind = c_string(argv[2]).lower()
    if kind == b"ele":
        node = d.by_item.get(argv[3])
        if node is None:
            raise ReplyError(b"ERR element not found in set")
        vec = node_vector(h, node)
        dim = h.dim
        vector_args = 2
    else:
        va = parse_vector(argv, 2, allow_reduce=False)
        if va is None:
            raise ReplyError(b"ERR invalid vector specification")
        vec, dim = va.vec, va.dim
        if d.proj is not None and dim != h.dim:
            if dim != d.proj_input:
                raise ReplyError(
                    b"ERR Input dimension mismatch for projection - got %d but projection "
                    b"expects %d" % (dim, d.proj_input)
                )
            vec = project(d.proj, vec)
            dim = h.dim
        if kind == b"fp32":
            vector_args = 2
        else:
            vdim = string2ll(argv[3])
            assert vdim is not None  # parse_vector read it
            vector_args = 2 + vdim
    if dim != h.dim:
        raise ReplyError(b"ERR Vector dimension mismatch - got %d but set has %d" % (dim, h.dim))
    # TRUTH and FILTER-EF change only how far an HNSW search looks: the scan here is exact.
    withscores = withattribs = False
    count, ef = DEFAULT_COUNT, 0
    epsilon = 2.0
    flt: Expr | None = None
    j = 2 + vector_args
    while j < argc:
        opt = c_string(argv[j]).lower()
        has_arg = j + 1 < argc
        if opt == b"withscores":
            withscores = True
        elif opt == b"withattribs":
            withattribs = True
        elif opt in (b"truth", b"nothread"):
            pass
        elif opt == b"count" and has_arg:
            count = _count_arg(argv[j + 1], b"ERR invalid COUNT", 1, None)
            j += 1
        elif opt == b"epsilon" and has_arg:
            eps = _to_double(argv[j + 1])
            if eps is None or eps <= 0:
                raise ReplyError(b"ERR invalid EPSILON")
            epsilon = eps
            j += 1
        elif opt == b"ef" and has_arg:
            ef = _count_arg(argv[j + 1], b"ERR invalid EF", 1, None)  # no upper bound in 8.2
            j += 1
        elif opt == b"filter-ef" and has_arg:
            _count_arg(argv[j + 1], b"ERR invalid FILTER-EF", 1, None)
            j += 1
        elif opt == b"filter" and has_arg:
            text = argv[j + 1]
            try:
                flt = compile_expr(text)
            except ExprSyntaxError as e:
                raise ReplyError(syntax_error_text(text, e.pos)) from None
            j += 1
        else:
            raise ReplyError(b"ERR syntax error in VSIM command")
        j += 1
    if ef == 0:
        ef = DEFAULT_SEARCH_EF
    ef = max(ef, count)
    ef = min(ef, h.node_count)
    found = nearest(h, vec, ef, flt)
    eps32 = np.float32(epsilon)
    resp3 = c.proto == 3
    out: list[bytes] = []
    n = 0
    for dist, node in found[:count]:
        if np.float32(dist) / np.float32(2) > eps32:
            break
        n += 1
        out.append(reply.bulk(node.item))
        if resp3 and withscores and withattribs:
            out.append(reply.array_len(2))
        if withscores:
            out.append(_double(c, 1.0 - float(np.float32(dist)) / 2.0))
        if withattribs:
            out.append(reply.null(c.proto) if node.attrib is None else reply.bulk(node.attrib))
    if resp3 and (withscores or withattribs):
        head = reply.map_len(n, c.proto)
    else:
        head = reply.array_len(n * (1 + withscores + withattribs))
    return head + b"".join(out)


# ---- DEBUG DIGEST ----


def vset_digest(d: VsetData) -> bytes:
    """`VectorSetDigest`: the 20 bytes of the digest context's `x`. One sequence of the
    node count and dimension (as `ll2string` text), then one per node: its quantized
    vector, its name and, when it has one, its attributes. Sequences are xored together
    (`RedisModule_DigestEndSequence`), so the node order does not matter."""
    from replproxy.keyspace.digest import _bytes, _h, _mix

    h = d.hnsw
    o = _mix(_mix(0, b"%d" % h.node_count), b"%d" % h.dim)
    x = _h(_bytes(o))
    raw = h.vectors.raw
    for node in h.nodes():
        o = _mix(_mix(0, raw(node.slot)), node.item)
        if node.attrib is not None:
            o = _mix(o, node.attrib)
        x ^= _h(_bytes(o))
    return _bytes(x)
