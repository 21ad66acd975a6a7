"""Fuzz target: the RDB reader, its C sink-mode path (`rdb/_loader.c`) against Python.

The pure-Python reader is the reference. On any bytes, fed whole or in chunks, with or
without checksum verification, the C path must leave the same keyspace (values, types, float
bits, order, expiries), the same counts, the same non-key events and the same error (type,
message, offset) as the Python path; and neither may raise anything but `RDBError`.
"""

from __future__ import annotations

import io
from typing import Any

from replproxy.rdb.model import KeyEntry, ZSetValue
from replproxy.rdb.reader import speedups_available
from tests.fuzz.common import Input, chunks
from tests.harness.rdbpaths import Outcome

NDBS = 4


def load(data: bytes, fast: bool, sizes: list[int] | None, verify: bool) -> tuple[Any, ...]:
    """One load of `data` (whole, or in pieces of `sizes`) as harness.rdbpaths.Outcome; the
    offset compared as it is, error or not."""
    out = Outcome(data, fast, sizes, NDBS, verify)
    assert not any(isinstance(e, KeyEntry) for e in out.events)
    return (
        out.dbs,
        out.expires,
        out.keys,
        out.skipped,
        out.error,
        [repr(e) for e in out.events],
        out.offset,
        out.crc,
        out.unused,
    )


def check(data: bytes) -> None:
    inp = Input(data)
    flags, seed = inp.byte(), inp.int(2)
    payload = inp.rest()
    verify = not flags & 1
    reference = load(payload, False, None, verify)
    if not speedups_available():
        return  # nothing to compare with (REPLPROXY_NO_SPEEDUPS, or not built)
    assert load(payload, True, None, verify) == reference
    pieces = [len(piece) for piece in chunks(payload, seed)]
    assert load(payload, True, pieces, verify) == reference
    assert load(payload, False, pieces, verify) == reference


def make_seeds() -> list[bytes]:
    """Small files from the writer: every type, compact and big encodings, versions 9-12."""
    from replproxy.rdb.writer import write_rdb

    values: list[Any] = [
        b"plain",
        b"12345",
        b"x" * 70,
        [b"a", b"b", b"c"],
        [b"%d" % i for i in range(200)],
        {b"m", b"n"},
        {b"1", b"2", b"3"},
        {b"s%d" % i for i in range(150)},
        ZSetValue({b"a": 1.5, b"b": float("inf"), b"c": -0.0}),
        ZSetValue({b"z%d" % i: i / 3 for i in range(150)}),
        {b"f": b"v", b"g": b"1"},
        {b"f%d" % i: b"v" * (i % 70) for i in range(150)},
    ]
    out = []
    for version in (9, 10, 11, 12):
        keys = [
            KeyEntry(i % 2, b"k%d" % i, v, expire_ms=(2**41 + i) if i % 3 == 0 else None)
            for i, v in enumerate(values)
        ]
        buf = io.BytesIO()
        write_rdb(buf, keys, version=version, valkey=version == 11)
        out.append(bytes([0, version, 0]) + buf.getvalue())
    return out
