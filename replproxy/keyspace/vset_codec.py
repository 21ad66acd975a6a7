"""The RDB serialization of Redis 8's `vectorset` module type (`VectorSetRdbSave` /
`VectorSetRdbLoad` in `modules/vector-sets/vset.c`, Redis 8.2.3), both ways.

This module owns the bytes of a vector set value after its module id (the module opcode
stream, RDB type 7): it turns them into the graph (`vset_hnsw.HNSW` plus the element map,
projection matrix and attribute count, `VsetData`) and back. It touches no keyspace and no
reply. docs/rdb.md states the layout in full.

Layout (every number a module UINT: opcode 2 then an RDB length; every blob a module
STRING: opcode 5 then an RDB string, which may be int-encoded or LZF-compressed):
dim, element count, `quant | (M << 8)` (M 0 means 16), flags (1: projection, 2:
attributes); with a projection its input dimension and the dim x input float32 matrix
(row major); then per element, from the head of the node list: the name, the attributes
(only when flag 2; empty = none), the quantized vector, the number of params and the params
(`hnsw_serialize_node`); then the EOF opcode 0.

Loading, like the module: elements are inserted at the head of the node list, so the list
(and a re-save) is in the reverse order of the file; the entry point is the first node of
the highest level; `last_id` is the highest node id; an empty attribute reads as none.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from replproxy.keyspace.vset_hnsw import (
    HNSW,
    QUANT_BIN,
    QUANT_NONE,
    QUANT_Q8,
    F32Array,
    Node,
)
from replproxy.rdb.encode import rdb_length, rdb_string
from replproxy.rdb.encodings import lzf_decompress

MAX_DIM = 1 << 16  # VSET_MAX_VECTOR_DIM
FLAG_PROJECTION = 1
FLAG_ATTRIBS = 2

OP_EOF, OP_SINT, OP_UINT, OP_FLOAT, OP_DOUBLE, OP_STRING = range(6)


@dataclass
class VsetData:
    """A decoded vector set (`struct vsetObject` less its locks)."""

    hnsw: HNSW
    by_item: dict[bytes, Node] = field(default_factory=dict)
    proj: F32Array | None = None  # output_dim x input_dim
    proj_input: int = 0
    numattribs: int = 0


# ---- reading the module opcode stream ----


def _len(raw: bytes, p: int) -> tuple[int, int]:
    b = raw[p]
    kind = b >> 6
    if kind == 0:
        return b, p + 1
    if kind == 1:
        return ((b & 0x3F) << 8) | raw[p + 1], p + 2
    if b == 0x80:
        return struct.unpack_from(">I", raw, p + 1)[0], p + 5
    if b == 0x81:
        return struct.unpack_from(">Q", raw, p + 1)[0], p + 9
    raise ValueError(f"invalid RDB length byte 0x{b:02x}")


def _string(raw: bytes, p: int) -> tuple[bytes, int]:
    b = raw[p]
    if b == 0xC0:
        return b"%d" % struct.unpack_from("<b", raw, p + 1)[0], p + 2
    if b == 0xC1:
        return b"%d" % struct.unpack_from("<h", raw, p + 1)[0], p + 3
    if b == 0xC2:
        return b"%d" % struct.unpack_from("<i", raw, p + 1)[0], p + 5
    if b == 0xC3:
        clen, q = _len(raw, p + 1)
        ulen, q = _len(raw, q)
        return lzf_decompress(raw[q : q + clen], ulen), q + clen
    n, q = _len(raw, p)
    if q + n > len(raw):
        raise ValueError("truncated module string")
    return raw[q : q + n], q + n


class _Stream:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.p = 0

    def op(self, want: int) -> None:
        op, self.p = _len(self.raw, self.p)
        if op != want:
            raise ValueError(f"vector set: module opcode {op} where {want} was expected")

    def uint(self) -> int:
        self.op(OP_UINT)
        v, self.p = _len(self.raw, self.p)
        return v

    def string(self) -> bytes:
        self.op(OP_STRING)
        s, self.p = _string(self.raw, self.p)
        return s


def decode(raw: bytes) -> VsetData:
    """`VectorSetRdbLoad` (encver 0) over the opcode stream `raw` (ending with EOF); a
    ValueError says why it is not a vector set."""
    try:
        return _decode(raw)
    except (IndexError, struct.error) as e:
        raise ValueError(f"truncated vector set serialization ({e})") from None


def _decode(raw: bytes) -> VsetData:
    s = _Stream(raw)
    dim = s.uint() & 0xFFFFFFFF
    elements = s.uint()
    config = s.uint() & 0xFFFFFFFF
    quant, m = config & 0xFF, (config >> 8) & 0xFFFF
    if dim == 0 or dim > MAX_DIM:
        raise ValueError(f"Invalid vector dimension in RDB: dim={dim}")
    if quant not in (QUANT_NONE, QUANT_Q8, QUANT_BIN):
        raise ValueError(f"vector set quantization type {quant}")
    data = VsetData(HNSW(dim, quant, m or 16))
    flags = s.uint()
    if flags & FLAG_PROJECTION:
        input_dim = s.uint() & 0xFFFFFFFF
        if input_dim == 0 or input_dim > MAX_DIM or dim > input_dim:
            raise ValueError("Invalid projection matrix dimensions")
        blob = s.string()
        if len(blob) != 4 * input_dim * dim:
            raise ValueError("Mismatching projection matrix length")
        data.proj = np.frombuffer(blob, dtype="<f4").astype(np.float32).reshape(dim, input_dim)
        data.proj_input = input_dim
    has_attribs = bool(flags & FLAG_ATTRIBS)
    h = data.hnsw
    pending = []
    for _ in range(elements):
        item = s.string()
        attrib: bytes | None = None
        if has_attribs:
            attrib = s.string() or None
        vector = s.string()
        params = [s.uint() for _ in range(s.uint())]
        node, links = h.insert_serialized(vector, params)
        node.item, node.attrib = item, attrib
        if item in data.by_item:
            raise ValueError("Duplicate vector set element name")
        data.by_item[item] = node
        if attrib is not None:
            data.numattribs += 1
        pending.append((node, links))
    h.resolve_links(pending)
    s.op(OP_EOF)
    if s.p != len(raw):
        raise ValueError("bytes after the vector set's EOF opcode")
    return data


# ---- writing ----


def _uint(v: int) -> bytes:
    return b"\x02" + rdb_length(v)


def _str(v: bytes) -> bytes:
    return b"\x05" + rdb_string(v, compress=False)


def encode(data: VsetData) -> bytes:
    """`VectorSetRdbSave`: the opcode stream after the module id, EOF included."""
    h = data.hnsw
    h.ensure_graph()
    out = [_uint(h.dim), _uint(h.node_count), _uint((h.quant & 0xFF) | ((h.M & 0xFFFF) << 8))]
    flags = (FLAG_PROJECTION if data.proj is not None else 0) | (
        FLAG_ATTRIBS if data.numattribs else 0
    )
    out.append(_uint(flags))
    if data.proj is not None:
        out.append(_uint(data.proj_input))
        out.append(_str(data.proj.astype("<f4").tobytes()))
    vectors = h.vectors
    for node in h.nodes():
        out.append(_str(node.item))
        if data.numattribs:
            out.append(_str(node.attrib or b""))
        out.append(_str(vectors.raw(node.slot)))
        params = h.serialize(node)
        out.append(_uint(len(params)))
        out.extend(_uint(p) for p in params)
    out.append(b"\x00")
    return b"".join(out)
