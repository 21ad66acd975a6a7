"""The HNSW graph of a Redis 8 vector set, and the module's exact vector arithmetic
(`modules/vector-sets/hnsw.c`, Redis 8.2.3).

This module owns the in-memory vector set structure below the element names: nodes with
their quantized vectors, levels and bidirectional links, the node list, the entry point and
the id counter; insertion and deletion (`hnsw_insert` / `hnsw_delete_node`: the node list,
ids and vectors at once, the links deferred to `HNSW.ensure_graph`, with the module's
neighbour selection and deletion repair over candidates measured exactly rather than found
by a walk); the serialized node form (`hnsw_serialize_node` / `hnsw_insert_serialized`);
and the float arithmetic of normalization, quantization and distances. It knows nothing of
keys, replies or RDB framing (`t_vset` and `vset_codec` do).

Exactness. Every distance and every stored vector is computed with the module's own float32
operations in the module's order, so scores and quantized bytes match a real replica bit for
bit (the 8.2.3 build has no FMA and no SIMD reordering in these functions):

- normalize: `l2 = 0; l2 += ((x0*x0 + x1*x1) + x2*x2) + x3*x3` per 4 components, then the
  remainder one by one; `l2 = sqrtf(l2)`; `x /= l2`; an all-zero vector is left as is and its
  l2 stays 1.
- Q8: `max_abs = max |x|`; `scale = 127.0f / max_abs`; `q = (int8)roundf(x * scale)`; the
  range saved is max_abs (0 for a zero vector, then all quants 0). BIN: bit j of 64-bit word
  j/64 is set when x_j > 0 (unused bits 0).
- distance: float `1 - dot` with `dot0 += ((p0+p1)+p2)+p3`, `dot1 += ((p4+p5)+p6)+p7` per 8
  components, the rest into dot0, `1.0f - (dot0 + dot1)` (NOQUANT); Q8 `1 - (float)(int
  dot) * ((ra/127) * (rb/127))` clamped to [0, 2], and 1 when a range is 0; BIN
  `(float)differing_bits * 2 / dim`.

What legitimately differs from a real replica: the level of a node inserted from the stream
(`random_level` uses the server's `rand()`), hence the links of the graph. This module
reproduces the algorithm (so the graph is a valid HNSW graph with Redis's parameters, which
a real server accepts when it loads the relay's snapshot), not the random choices.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

QUANT_NONE = 0
QUANT_Q8 = 1
QUANT_BIN = 2

DEFAULT_M = 16
MIN_M = 4
MAX_M = 4096
HNSW_P = 0.25
MAX_LEVEL = 16
EF_C = 200  # HNSW_EF_C: reconnection search after a deletion
MAX_CANDIDATES = 256
SERIALIZATION_VERSION = 1
WORSTLINK_MISSING = 0xFFFFFFFF

F32 = np.float32
F32Array = npt.NDArray[np.float32]
_ONE = F32(1.0)
_ZERO = F32(0.0)

# rand() stands in for the server's: only levels and random walks depend on it.
_rng = random.Random()
RAND_MAX = 2**31 - 1


def _rand() -> int:
    return _rng.getrandbits(31)


def seed(n: int) -> None:
    """Seed the stand-in for `rand()` (tests that want repeatable graphs)."""
    _rng.seed(n)


def random_level() -> int:
    """`random_level`: while rand() < 0.25*RAND_MAX (as an int) and level < 16, level++."""
    threshold = int(HNSW_P * RAND_MAX)
    level = 0
    while _rand() < threshold and level < MAX_LEVEL:
        level += 1
    return level


# ---- exact float32 arithmetic ----


def _acc(groups: F32Array) -> F32Array:
    """Sequential float32 sum over axis 1 of (rows, k): s = 0; s = s + g[i] for each i."""
    if groups.shape[1] == 0:
        return np.zeros(groups.shape[0], dtype=F32)
    return np.add.accumulate(groups, axis=1, dtype=F32)[:, -1]


def norm2(vecs: F32Array) -> F32Array:
    """The squared norm of each row, summed as `hnsw_normalize_vector` does."""
    rows, dim = vecs.shape
    sq = vecs * vecs
    n4 = dim - dim % 4
    q = sq[:, :n4].reshape(rows, n4 // 4, 4)
    groups = ((q[:, :, 0] + q[:, :, 1]) + q[:, :, 2]) + q[:, :, 3]
    total = _acc(groups)
    for i in range(n4, dim):
        total = total + sq[:, i]
    return total


def normalize(vec: F32Array) -> tuple[F32Array, float | None]:
    """`hnsw_normalize_vector`: (normalized copy, l2) or (copy, None) for a zero vector."""
    l2sq = norm2(vec.reshape(1, -1))[0]
    if l2sq == 0:
        return vec.copy(), None
    l2 = np.sqrt(l2sq, dtype=F32)
    return (vec / l2).astype(F32), float(l2)


def roundf(x: F32Array) -> F32Array:
    """C `roundf`: halves away from zero (numpy rounds them to even)."""
    t = np.trunc(x)
    frac = np.abs(x - t)
    return (t + np.where(frac >= F32(0.5), np.sign(x), _ZERO)).astype(F32)


def quantize_q8(vec: F32Array) -> tuple[bytes, float]:
    """`quantize_to_q8`: (int8 quants, range)."""
    # `if (x > max_abs)`: a NaN component never wins.
    mag = np.abs(vec)
    max_abs = F32(np.max(np.where(np.isnan(mag), _ZERO, mag))) if vec.size else _ZERO
    if not max_abs > 0:  # 0 (or NaN: `x > max_abs` never true)
        return bytes(len(vec)), 0.0
    scale = F32(127.0) / max_abs
    q = roundf((vec * scale).astype(F32)).astype(np.int8)
    return q.tobytes(), float(max_abs)


def quantize_bin(vec: F32Array) -> bytes:
    """`quantize_to_bin`: 64-bit little-endian words, bit j%64 of word j/64 when x_j > 0."""
    dim = len(vec)
    words = (dim + 63) // 64
    bits = np.zeros(words * 64, dtype=np.uint8)
    bits[:dim] = vec > 0
    return np.packbits(bits, bitorder="little").tobytes()


def quants_bytes(quant: int, dim: int) -> int:
    """`hnsw_quants_bytes`."""
    if quant == QUANT_NONE:
        return dim * 4
    if quant == QUANT_Q8:
        return dim
    return (dim + 63) // 64 * 8


def dequantize(quant: int, dim: int, raw: bytes, l2: float, qrange: float) -> F32Array:
    """`hnsw_get_node_vector`: the approximate original vector of a node."""
    if quant == QUANT_NONE:
        vec = np.frombuffer(raw, dtype="<f4").astype(F32)
    elif quant == QUANT_Q8:
        q = np.frombuffer(raw, dtype=np.int8).astype(F32)
        vec = ((q * F32(qrange)).astype(F32) / F32(127)).astype(F32)
    else:
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")[:dim]
        return np.where(bits == 1, _ONE, F32(-1.0)).astype(F32)
    return (vec * F32(l2)).astype(F32)


def project(matrix: F32Array, vec: F32Array) -> F32Array:
    """`applyProjection`: out[i] = sum_j row_i[j] * in[j], summed left to right in float."""
    prods = (matrix * vec[np.newaxis, :]).astype(F32)
    return _acc(prods)


def projection_matrix(input_dim: int, output_dim: int) -> F32Array:
    """`createProjectionMatrix`: +-1/sqrt(input_dim) by the parity of popcount(i & j)."""
    scale = F32(1.0 / np.sqrt(np.float64(input_dim)))  # `1.0f / sqrt(n)`: a double division
    i = np.arange(output_dim, dtype=np.uint32)[:, np.newaxis]
    j = np.arange(input_dim, dtype=np.uint32)[np.newaxis, :]
    odd = np.bitwise_count(i & j) % 2 == 1
    return np.where(odd, -scale, scale).astype(F32)


class Vectors:
    """The quantized vectors of one graph, one row per node slot, and the distances between
    them (`hnsw_distance`), vectorized over many rows at once."""

    def __init__(self, quant: int, dim: int) -> None:
        self.quant = quant
        self.dim = dim
        self.nbytes = quants_bytes(quant, dim)
        width = {QUANT_NONE: dim, QUANT_Q8: dim, QUANT_BIN: self.nbytes // 8}[quant]
        dtype = {QUANT_NONE: F32, QUANT_Q8: np.int8, QUANT_BIN: np.uint64}[quant]
        self.rows: npt.NDArray = np.zeros((16, width), dtype=dtype)
        self.ranges: F32Array = np.zeros(16, dtype=F32)
        # Per slot: the node's level, and whether it is linked into the graph (the
        # candidates of a new link are searched among those).
        self.levels = np.zeros(16, dtype=np.int32)
        self.live = np.zeros(16, dtype=bool)
        self.free: list[int] = []
        self.used = 0

    def add(self, raw: bytes, qrange: float) -> int:
        if self.free:
            slot = self.free.pop()
        else:
            slot = self.used
            self.used += 1
            if slot == len(self.rows):
                self.rows = np.concatenate([self.rows, np.zeros_like(self.rows)])
                self.ranges = np.concatenate([self.ranges, np.zeros_like(self.ranges)])
                self.levels = np.concatenate([self.levels, np.zeros_like(self.levels)])
                self.live = np.concatenate([self.live, np.zeros_like(self.live)])
        dtype = self.rows.dtype.newbyteorder("<")
        self.rows[slot] = np.frombuffer(raw, dtype=dtype)
        self.ranges[slot] = qrange
        self.live[slot] = False
        return slot

    def release(self, slot: int) -> None:
        self.live[slot] = False
        self.free.append(slot)

    def raw(self, slot: int) -> bytes:
        row = self.rows[slot]
        return row.astype(row.dtype.newbyteorder("<")).tobytes()

    def distances(
        self, q: npt.NDArray, qrange: float, slots: Sequence[int] | npt.NDArray
    ) -> F32Array:
        """`hnsw_distance` from a query row to the rows at `slots`, as float32 (in blocks,
        so a scan of a big set needs little temporary memory)."""
        idx = np.asarray(slots, dtype=np.intp)
        if idx.size > _BLOCK:
            return np.concatenate(
                [self.distances(q, qrange, idx[i : i + _BLOCK]) for i in range(0, idx.size, _BLOCK)]
            )
        if self.quant == QUANT_NONE:
            return float_distances(self.rows[idx], q)
        if self.quant == QUANT_Q8:
            return q8_distances(self.rows[idx], self.ranges[idx], q, F32(qrange))
        return bin_distances(self.rows[idx], q, self.dim)


_BLOCK = 8192  # rows per vectorized distance pass


def float_distances(rows: F32Array, q: F32Array) -> F32Array:
    """`vectors_distance_float` of each row against `q`."""
    n, dim = rows.shape
    p = (rows * q[np.newaxis, :]).astype(F32)
    n8 = dim - dim % 8
    r = p[:, :n8].reshape(n, n8 // 8, 8)
    g0 = ((r[:, :, 0] + r[:, :, 1]) + r[:, :, 2]) + r[:, :, 3]
    g1 = ((r[:, :, 4] + r[:, :, 5]) + r[:, :, 6]) + r[:, :, 7]
    dot0 = _acc(g0)
    dot1 = _acc(g1)
    for i in range(n8, dim):
        dot0 = dot0 + p[:, i]
    return (_ONE - (dot0 + dot1)).astype(F32)


def q8_distances(
    rows: npt.NDArray, ranges: F32Array, q: npt.NDArray, qrange: np.float32
) -> F32Array:
    """`vectors_distance_q8` of each row (with its range) against `q` (with `qrange`)."""
    # The integer dot product, exactly: float32 BLAS is exact while |dot| < 2**24 (127*127
    # per component: up to 1040 dimensions), float64 beyond.
    wide = np.float32 if rows.shape[1] <= 1040 else np.float64
    dots = rows.astype(wide) @ q.astype(wide)
    scale = ((ranges / F32(127)).astype(F32) * (qrange / F32(127))).astype(F32)
    dist = (_ONE - (dots.astype(F32) * scale).astype(F32)).astype(F32)
    dist = np.clip(dist, _ZERO, F32(2.0)).astype(F32)
    zero = (ranges == 0) | (qrange == 0)
    return np.where(zero, _ONE, dist).astype(F32)


def bin_distances(rows: npt.NDArray, q: npt.NDArray, dim: int) -> F32Array:
    """`vectors_distance_bin` of each row against `q`."""
    opposite = np.bitwise_count(rows ^ q[np.newaxis, :]).sum(axis=1)
    return ((opposite.astype(F32) * F32(2)).astype(F32) / F32(dim)).astype(F32)


# ---- the graph ----


class Node:
    """`hnswNode`, with links per layer as lists of nodes."""

    __slots__ = (
        "attrib",
        "id",
        "item",
        "l2",
        "level",
        "links",
        "max_links",
        "next",
        "prev",
        "qrange",
        "slot",
        "worst_dist",
        "worst_idx",
    )

    def __init__(
        self, node_id: int, level: int, slot: int, l2: float, qrange: float, m: int
    ) -> None:
        self.id = node_id
        self.level = level
        self.slot = slot
        self.l2 = l2
        self.qrange = qrange
        self.links: list[list[Node]] = [[] for _ in range(level + 1)]
        self.max_links = [m * 2 if i == 0 else m for i in range(level + 1)]
        self.worst_dist = [0.0] * (level + 1)
        self.worst_idx = [0] * (level + 1)
        self.item: bytes = b""
        self.attrib: bytes | None = None
        self.prev: Node | None = None
        self.next: Node | None = None


class _PQ:
    """The module's bounded priority queue: `items[0]` is the farthest, the nearest last,
    with its exact tie rules (a push into a queue with room goes nearer than equal
    distances; a push into a full queue goes farther than them; an equal to the worst of a
    full queue is dropped)."""

    __slots__ = ("cap", "items")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.items: list[tuple[float, Node]] = []

    def __len__(self) -> int:
        return len(self.items)

    def push(self, node: Node, d: float) -> None:
        items = self.items
        if len(items) < self.cap:
            i = len(items)
            while i > 0 and items[i - 1][0] < d:
                i -= 1
            items.insert(i, (d, node))
            return
        if d >= items[0][0]:
            return
        i = 0
        while i < self.cap - 1 and items[i + 1][0] > d:
            i += 1
        del items[0]
        items.insert(i, (d, node))

    def pop(self) -> tuple[float, Node]:
        return self.items.pop()

    def max_distance(self) -> float:
        return self.items[0][0] if self.items else float("inf")

    def nearest_first(self) -> list[tuple[float, Node]]:
        return self.items[::-1]


class HNSW:
    """One vector set's graph (`struct HNSW`): quantization, M, dimension, the node list
    (`head`, newest first, as `hnsw_add_node` prepends), the entry point and `last_id`."""

    def __init__(self, dim: int, quant: int, m: int) -> None:
        if m == 0:
            m = DEFAULT_M
        elif m > MAX_M:
            m = MAX_M
        self.M = m
        self.quant = quant
        self.dim = dim
        self.vectors = Vectors(quant, dim)
        self.by_slot: dict[int, Node] = {}
        self.head: Node | None = None
        self.node_count = 0
        self.enter_point: Node | None = None
        self.max_level = 0
        self.last_id = 0
        # Graph changes not applied yet, in order: (node, ef) links an inserted node,
        # (node, -1) takes a deleted one out (see `ensure_graph`).
        self.pending: list[tuple[Node, int]] = []

    # -- the node list --

    def nodes(self) -> Iterator[Node]:
        """Nodes from `head`: the order of RDB saves, digests and VSIM's linear scans."""
        n = self.head
        while n is not None:
            yield n
            n = n.next

    def _add_node(self, node: Node) -> None:
        node.next = self.head
        node.prev = None
        if self.head is not None:
            self.head.prev = node
        self.head = node
        self.node_count += 1

    # -- distances --

    def query(self, node: Node) -> tuple[npt.NDArray, float]:
        return self.vectors.rows[node.slot], float(self.vectors.ranges[node.slot])

    def dists(self, node: Node, others: Sequence[Node]) -> list[float]:
        if not others:
            return []
        q, qr = self.query(node)
        return self.vectors.distances(q, qr, [o.slot for o in others]).tolist()

    def dist(self, a: Node, b: Node) -> float:
        return self.dists(a, [b])[0]

    # -- search --

    def _join(self, node: Node) -> None:
        """The node is now part of the graph: a candidate for later links."""
        self.by_slot[node.slot] = node
        self.vectors.levels[node.slot] = node.level
        self.vectors.live[node.slot] = True

    def candidates(self, query: Node, ef: int, layer: int) -> _PQ:
        """The `ef` nodes of the graph nearest to `query` at `layer` or above, as the queue
        `search_layer` fills. The module walks the graph from the entry point (greedily on
        the upper layers, with `ef` on this one); here every node of the layer is measured,
        so the candidates are the true nearest, which is what the walk finds whenever it
        reaches them (always on a layer of at most `ef` nodes). The walk's misses are random
        anyway (they follow the levels, from `rand()`), and the linking that follows is the
        module's. One vectorized pass instead of a walk keeps an insert in the stream at
        well under a millisecond for sets of thousands of elements."""
        v = self.vectors
        used = v.used
        idx = np.flatnonzero(v.live[:used] & (v.levels[:used] >= layer))
        pq = _PQ(ef)
        if idx.size == 0:
            return pq
        q, qr = self.query(query)
        d = v.distances(q, qr, idx)
        if idx.size > ef:
            part = np.argpartition(d, ef - 1)[:ef]
            idx, d = idx[part], d[part]
        order = np.argsort(-d, kind="stable")
        by_slot = self.by_slot
        pq.items = [(float(d[i]), by_slot[int(idx[i])]) for i in order]
        return pq

    # -- worst neighbor bookkeeping --

    def _update_worst(self, node: Node, layer: int) -> None:
        worst_dist, worst_idx = 0.0, 0
        for i, d in enumerate(self.dists(node, node.links[layer])):
            if d > worst_dist:
                worst_dist, worst_idx = d, i
        node.worst_dist[layer] = worst_dist
        node.worst_idx[layer] = worst_idx

    @staticmethod
    def _worst_on_add(node: Node, layer: int, idx: int, d: float) -> None:
        if len(node.links[layer]) == 1 or d > node.worst_dist[layer]:
            node.worst_dist[layer] = d
            node.worst_idx[layer] = idx

    def _worst_on_remove(self, node: Node, layer: int, removed: int) -> None:
        if not node.links[layer]:
            node.worst_dist[layer] = 0.0
            node.worst_idx[layer] = 0
        elif removed == node.worst_idx[layer]:
            self._update_worst(node, layer)
        elif removed < node.worst_idx[layer]:
            node.worst_idx[layer] -= 1

    def _link(self, a: Node, b: Node, layer: int, d: float) -> None:
        a.links[layer].append(b)
        self._worst_on_add(a, layer, len(a.links[layer]) - 1, d)

    # -- insertion --

    def select_neighbors(
        self, candidates: _PQ, new: Node, layer: int, required: int, aggressive: int
    ) -> None:
        """`select_neighbors`: link `new` to candidates, bidirectionally."""
        m = self.M
        for dist, neighbor in candidates.nearest_first():
            if neighbor is new:
                continue
            mine = new.links[layer]
            if len(mine) >= new.max_links[layer] or len(mine) >= required:
                return
            if aggressive and any(x is neighbor for x in mine):
                continue
            if not aggressive and any(ld < dist for ld in self.dists(neighbor, mine)):
                continue
            theirs = neighbor.links[layer]
            if len(theirs) < neighbor.max_links[layer]:
                self._link(neighbor, new, layer, dist)
                self._link(new, neighbor, layer, dist)
                continue
            if not aggressive and dist >= neighbor.worst_dist[layer]:
                continue
            worst = theirs[neighbor.worst_idx[layer]]
            if aggressive == 0 and len(worst.links[layer]) <= m // 2:
                continue
            if aggressive == 1 and len(worst.links[layer]) <= m // 4:
                continue
            if aggressive == 2 and len(worst.links[layer]) <= m // 4:
                found: Node | None = None
                found_idx, max_dist = 0, 0.0
                for j, to_drop in enumerate(theirs):
                    if len(to_drop.links[layer]) <= m // 4:
                        continue
                    ld = self.dist(neighbor, to_drop)
                    if found is None or ld > max_dist:
                        found, max_dist, found_idx = to_drop, ld, j
                if found is not None:
                    worst = found
                    neighbor.worst_dist[layer] = max_dist
                    neighbor.worst_idx[layer] = found_idx
                else:
                    limit = m * 3 if layer == 0 else m * 2
                    if neighbor.max_links[layer] >= limit:
                        continue
                    neighbor.max_links[layer] += 1
                    self._link(neighbor, new, layer, dist)
                    self._link(new, neighbor, layer, dist)
                    continue
            wl = worst.links[layer]
            for j, x in enumerate(wl):
                if x is neighbor:
                    del wl[j]
                    self._worst_on_remove(worst, layer, j)
                    break
            theirs[neighbor.worst_idx[layer]] = new
            self._update_worst(neighbor, layer)
            self._link(new, neighbor, layer, dist)

    def new_node(self, vec: F32Array, normalize_it: bool = True) -> Node:
        """`hnsw_node_new` from a float vector (normalized, then quantized)."""
        level = random_level()
        l2 = 1.0
        if normalize_it:
            vec, norm = normalize(vec)
            if norm is not None:
                l2 = norm
        qrange = 0.0
        if self.quant == QUANT_NONE:
            raw = vec.astype("<f4").tobytes()
        elif self.quant == QUANT_Q8:
            raw, qrange = quantize_q8(vec)
        else:
            raw = quantize_bin(vec)
        self.last_id += 1
        slot = self.vectors.add(raw, qrange)
        return Node(self.last_id, level, slot, l2, qrange, self.M)

    def insert(self, vec: F32Array, item: bytes, attrib: bytes | None, ef: int) -> Node:
        """`hnsw_insert`: the node (id, level, vector) is made and put at the head of the
        list now; linking it into the graph waits for `ensure_graph` (see `pending`)."""
        node = self.new_node(vec)
        node.item, node.attrib = item, attrib
        self._add_node(node)
        self.pending.append((node, ef))
        return node

    def delete(self, node: Node) -> None:
        """`hnsw_delete_node`: out of the list now; out of the graph (unlink, then reconnect
        the orphaned neighbours per layer) at the next `ensure_graph`. A node that never
        reached the graph just goes (its neighbours-to-be link among the others)."""
        if node.prev is not None:
            node.prev.next = node.next
        else:
            self.head = node.next
        if node.next is not None:
            node.next.prev = node.prev
        node.prev = node.next = None
        self.node_count -= 1
        if self.vectors.live[node.slot]:
            self.pending.append((node, -1))
        else:
            self.pending = [(n, ef) for n, ef in self.pending if n is not node]
            self.vectors.release(node.slot)

    def ensure_graph(self) -> None:
        """Apply the pending graph changes, in their order. The stream only needs the node
        list, names and vectors (VSIM scans the vectors), so links are built when something
        reads them: VLINKS, VRANDMEMBER, VINFO's max-level, a snapshot (written by a forked
        child, which pays for it there)."""
        pending, self.pending = self.pending, []
        for node, ef in pending:
            if ef < 0:
                self._unlink(node)
                for j in range(node.level + 1):
                    self._reconnect(node.links[j], j)
                self.vectors.release(node.slot)
            else:
                self._link_in(node, ef)

    def _link_in(self, node: Node, ef: int) -> None:
        """`hnsw_commit_insert_nolock` after the candidates of `hnsw_prepare_insert`."""
        level = node.level
        if self.enter_point is None:
            self.enter_point = node
            self.max_level = level
            self._join(node)
            return
        top = min(level, self.max_level)
        queues = {lc: self.candidates(node, ef, lc) for lc in range(top, -1, -1)}
        m = self.M
        for lc in range(top, -1, -1):
            q = queues[lc]
            self.select_neighbors(q, node, lc, m, 0)
            if lc == 0 and len(node.links[0]) < m // 2:
                self.select_neighbors(q, node, lc, m, 1)
                if len(node.links[0]) < m // 4:
                    self.select_neighbors(q, node, lc, m // 4, 2)
        if level > self.max_level:
            self.enter_point = node
            self.max_level = level
        self._join(node)

    def _unlink(self, node: Node) -> None:
        """`hnsw_unlink_node`, for the graph (the node already left the list)."""
        self.vectors.live[node.slot] = False
        self.by_slot.pop(node.slot, None)
        for level in range(node.level + 1):
            for linked in node.links[level]:
                ll = linked.links[level]
                for j, x in enumerate(ll):
                    if x is node:
                        del ll[j]
                        self._worst_on_remove(linked, level, j)
                        break
        if node is self.enter_point:
            self.enter_point = None
            self.max_level = 0
            for level in range(node.level, -1, -1):
                if node.links[level]:
                    self.enter_point = node.links[level][0]
                    break
            if self.enter_point is None:
                best = 0
                for cur in self.by_slot.values():  # the nodes in the graph
                    if cur.level >= best:
                        best = cur.level
                        self.enter_point = cur
            if self.enter_point is not None:
                self.max_level = self.enter_point.level

    def _reconnect(self, nodes: list[Node], layer: int) -> None:
        """`hnsw_reconnect_nodes`: pair the former neighbours of a deleted node greedily by
        `0.7 * (2 - d(i,j)) + 0.3 * (mean distance i and j lose)`, best first (scanning i
        then j), among pairs not yet linked and with room; link each node left over through
        `select_neighbors`, first among those nodes (aggressiveness 1), then among the
        graph's nearest (1, or 2 when it has at most M/2 links)."""
        count = len(nodes)
        if count <= 0:
            return
        dist = np.zeros((count, count), dtype=F32)
        for i in range(count - 1):
            dist[i, i + 1 :] = self.dists(nodes[i], nodes[i + 1 :])
            dist[i + 1 :, i] = dist[i, i + 1 :]
        if count > 1:
            row_avgs = (dist.sum(axis=1, dtype=F32) / F32(count - 1)).astype(F32)
        else:
            row_avgs = np.zeros(count, dtype=F32)
        if count > 2:
            lost = (row_avgs[:, None] * F32(count - 1) - dist) / F32(count - 2)
            future = ((lost + lost.T) / F32(2)).astype(F32)
        else:
            future = np.zeros((count, count), dtype=F32)
        scores = (F32(0.7) * (F32(2) - dist) + F32(0.3) * future).astype(F32)
        index = {id(n): k for k, n in enumerate(nodes)}
        for i, n in enumerate(nodes):
            scores[i, i] = -1
            for x in n.links[layer]:
                j = index.get(id(x))
                if j is not None:
                    scores[i, j] = -1
        used = np.zeros(count, dtype=bool)
        while True:
            room = np.array([len(n.links[layer]) < n.max_links[layer] for n in nodes])
            ok = (~used & room)[:, None] & (~used & room)[None, :] & (scores >= 0)
            if not ok.any():
                break
            masked = np.where(ok, scores, F32(-2))
            flat = int(np.argmax(masked))  # the first best, in the module's scan order
            bi, bj = divmod(flat, count)
            d = float(dist[bi, bj])
            self._link(nodes[bi], nodes[bj], layer, d)
            self._link(nodes[bj], nodes[bi], layer, d)
            used[bi] = used[bj] = True
        for i in range(count):
            node = nodes[i]
            if used[i] or len(node.links[layer]) >= node.max_links[layer]:
                continue
            local = _PQ(count)
            for j in range(count):
                if i != j and len(nodes[j].links[layer]) < nodes[j].max_links[layer]:
                    local.push(nodes[j], float(dist[i, j]))
            wanted = len(node.links[layer]) + 1
            if local.items:
                self.select_neighbors(local, node, layer, wanted, 1)
            if len(node.links[layer]) == wanted or self.enter_point is None:
                continue
            cands = self.candidates(node, EF_C, layer)
            aggressive = 1 if len(node.links[layer]) > self.M // 2 else 2
            self.select_neighbors(cands, node, layer, wanted, aggressive)

    # -- random walks --

    def random_node(self) -> Node | None:
        """`hnsw_random_node`: a random descent, then log2(N+1)*3 (+0/1) random steps."""
        import math

        self.ensure_graph()
        if self.node_count == 0 or self.enter_point is None:
            return None
        current = self.enter_point
        for level in range(self.max_level, 0, -1):
            if current.level < level or not current.links[level]:
                continue
            current = current.links[level][_rand() % len(current.links[level])]
        walks = int(math.log2(self.node_count + 1) * 3) + (_rand() & 1)
        for _ in range(walks):
            if not current.links[0]:
                return current
            current = current.links[0][_rand() % len(current.links[0])]
        return current

    # -- serialization --

    def serialize(self, node: Node) -> list[int]:
        """`hnsw_serialize_node`'s params (version 1); call `ensure_graph` first."""
        params = [node.id, (node.level & 0xFF) | (SERIALIZATION_VERSION << 24)]
        for i in range(node.level + 1):
            links = node.links[i]
            params.append(len(links))
            params.append(node.max_links[i])
            params.extend(x.id for x in links)
            wbits = struct.unpack("<I", struct.pack("<f", node.worst_dist[i]))[0]
            params.append((wbits << 32) | node.worst_idx[i])
        l2bits = struct.unpack("<I", struct.pack("<f", node.l2))[0]
        rbits = struct.unpack("<I", struct.pack("<f", node.qrange))[0]
        params.append((rbits << 32) | l2bits)
        return params

    def insert_serialized(self, raw: bytes, params: Sequence[int]) -> tuple[Node, list[list[int]]]:
        """`hnsw_insert_serialized`: the node (linked into the list, its links still ids,
        returned beside it) from its vector and params. Raises ValueError when the params
        do not describe a node."""
        if len(params) < 2:
            raise ValueError("vector set node params too short")
        node_id, meta = params[0], params[1]
        level = meta & 0xFF
        version = (meta & 0xFF000000) >> 24
        if version > SERIALIZATION_VERSION:
            raise ValueError(f"vector set node serialization version {version}")
        if len(raw) != self.vectors.nbytes:
            raise ValueError("Mismatching vector dimension")
        if node_id >= self.last_id:
            self.last_id = node_id
        node = Node(node_id, level, 0, 1.0, 0.0, self.M)
        link_ids: list[list[int]] = []
        p = 2
        for i in range(level + 1):
            if p + 2 + (version > 0) > len(params):
                raise ValueError("vector set node params truncated")
            num, mx = params[p], params[p + 1]
            p += 2
            if num > mx or mx > MAX_M * 4:
                raise ValueError("vector set node links beyond their maximum")
            node.max_links[i] = max(mx, node.max_links[i])
            if p + num + (version > 0) > len(params):
                raise ValueError("vector set node params truncated")
            link_ids.append(list(params[p : p + num]))
            p += num
            if version > 0:
                wi = params[p]
                p += 1
                node.worst_idx[i] = wi & 0xFFFFFFFF
                node.worst_dist[i] = struct.unpack("<f", struct.pack("<I", wi >> 32))[0]
                if num > 0 and node.worst_idx[i] >= num:
                    raise ValueError("vector set node worst link out of range")
            else:
                node.worst_idx[i] = WORSTLINK_MISSING
        if p >= len(params):
            raise ValueError("vector set node params truncated")
        packed = params[p]
        node.l2 = struct.unpack("<f", struct.pack("<I", packed & 0xFFFFFFFF))[0]
        node.qrange = struct.unpack("<f", struct.pack("<I", packed >> 32))[0]
        node.slot = self.vectors.add(raw, node.qrange)
        self._add_node(node)
        self._join(node)
        if self.enter_point is None or level > self.max_level:
            self.max_level = level
            self.enter_point = node
        return node, link_ids

    def resolve_links(self, pending: list[tuple[Node, list[list[int]]]]) -> None:
        """`hnsw_deserialize_index`: link ids to nodes; a link to a missing node, to itself,
        to a node without that layer, a duplicate or a one-way link is corruption."""
        by_id = {node.id: node for node, _ in pending}
        if len(by_id) != len(pending):
            raise ValueError("duplicate vector set node id")
        seen: set[tuple[int, int, int]] = set()
        for node, layers in pending:
            for i, ids in enumerate(layers):
                if len(set(ids)) != len(ids):
                    raise ValueError("duplicate vector set link")
                links = []
                for lid in ids:
                    other = by_id.get(lid)
                    if lid == node.id or other is None or other.level < i:
                        raise ValueError("unresolved vector set link")
                    links.append(other)
                    seen.add((i, node.id, lid))
                node.links[i] = links
        for i, a, b in seen:
            if (i, b, a) not in seen:
                raise ValueError("vector set links are not reciprocal")
        for node, layers in pending:
            for i in range(len(layers)):
                if node.worst_idx[i] == WORSTLINK_MISSING:
                    self._update_worst(node, i)
