"""Fuzz target: the RDB reader, its C sink-mode path (`rdb/_loader.c`) against Python.

The pure-Python reader is the reference. On any bytes, fed whole or in chunks, with or
without checksum verification, the C path must leave the same keyspace (values, types, float
bits, order, expiries), the same counts, the same non-key events and the same error (type,
message, offset) as the Python path; and neither may raise anything but `RDBError`.
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Iterator
from typing import Any

import replproxy.speedups
from replproxy.rdb.model import (
    HashValue,
    KeyEntry,
    ModuleValue,
    OrderedSet,
    RDBError,
    StreamValue,
    ZSetValue,
)
from replproxy.rdb.reader import KeySink, RDBReader, speedups_available
from tests.fuzz.common import Input, chunks

NDBS = 4


@contextlib.contextmanager
def speedups(enabled: bool) -> Iterator[None]:
    """Readers made inside use the C path or not (the process-wide switch, read once at
    import, flipped: each reader looks the C path up when it is made)."""
    old = replproxy.speedups.ENABLED
    replproxy.speedups.ENABLED = enabled
    try:
        yield
    finally:
        replproxy.speedups.ENABLED = old


def canon(v: Any) -> Any:
    t = type(v)
    if t is bytes:
        return ("bytes", v)
    if t is list:
        return ("list", [canon(x) for x in v])
    if t is set:
        return ("set", sorted(canon(x) for x in v))
    if t is OrderedSet:  # the file's order and encoding are part of what was read
        return ("orderedset", v.rdbtype, [canon(x) for x in v.order])
    if t is ZSetValue:
        return ("zset", [(canon(m), struct.pack("<d", s), type(s).__name__) for m, s in v.items()])
    if t is dict:
        return ("dict", [(canon(k), canon(x)) for k, x in v.items()])
    if t is HashValue:
        return ("hashvalue", canon(dict(v)), sorted(v.expires.items()))
    if t is StreamValue or t is ModuleValue:
        return (t.__name__, repr(v))
    raise AssertionError(f"unexpected value type {t.__name__}")


def load(data: bytes, fast: bool, pieces: list[bytes] | None, verify: bool) -> tuple[Any, ...]:
    dbs: list[dict[bytes, Any]] = [{} for _ in range(NDBS)]
    expires: list[dict[bytes, int]] = [{} for _ in range(NDBS)]
    sink = KeySink(dbs, expires)
    with speedups(fast):
        reader = RDBReader(verify, sink=sink)
    assert (reader._fast is not None) == fast
    events: list[Any] = []
    error = None
    try:
        for piece in pieces if pieces is not None else [data]:
            reader.feed(piece)
            events += reader.next_events()
        reader.feed_eof()
    except RDBError as e:
        error = (type(e).__name__, e.reason, e.offset)
    with contextlib.suppress(RDBError):
        events += reader.next_events()
    assert not any(isinstance(e, KeyEntry) for e in events)
    return (
        [[(k, canon(v)) for k, v in d.items()] for d in dbs],
        [list(x.items()) for x in expires],
        sink.keys,
        reader.skipped_empty_keys,
        error,
        [repr(e) for e in events],
        reader.offset,
        reader.computed_checksum,
        reader.unused_data,
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
    pieces = list(chunks(payload, seed))
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
