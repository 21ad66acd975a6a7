"""Loading one RDB input on the pure-Python reader and on its C fast path
(`replproxy/rdb/_loader.c`), to compare what each left behind: shared by the C path's tests
(`tests/test_rdb_speedups.py`, `tests/test_rdb_sinks.py`) and its fuzz target
(`tests/fuzz/fuzz_rdb.py`).

`speedups(fast)` makes readers take one path or the other; `feed` feeds one input whole or in
chunks and keeps the events and the error; `Outcome` is one sink-mode load, its keyspace made
comparable by `canon` (Python types, order and float bits kept).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import replproxy.speedups
from replproxy.rdb.model import (
    HashValue,
    ModuleValue,
    OrderedSet,
    RDBError,
    StreamValue,
    Value,
    ZSetValue,
)
from replproxy.rdb.reader import KeySink, RDBReader, speedups_available


@contextmanager
def speedups(enabled: bool) -> Iterator[None]:
    """Readers made inside use the C path (skip the test if it is not built) or not."""
    if enabled and not speedups_available():
        pytest.skip("replproxy.rdb._loader is not built (or REPLPROXY_NO_SPEEDUPS is set)")
    # The process-wide switch (REPLPROXY_NO_SPEEDUPS, read once at import), flipped for the
    # readers made inside: each looks the C path up when it is made.
    old = replproxy.speedups.ENABLED
    replproxy.speedups.ENABLED = enabled
    try:
        yield
    finally:
        replproxy.speedups.ENABLED = old


_DOUBLE = struct.Struct("<d").pack


def canon(v: Any) -> Any:
    """`v` as a comparable structure that keeps Python types, order and float bits. A `bytes`
    stands for itself (every other value becomes a tagged tuple, never equal to a `bytes`);
    the members of collections, nearly always `bytes`, are taken as they are without a call."""
    t = type(v)
    if t is bytes:
        return v
    if t is list:
        return ("list", [x if type(x) is bytes else canon(x) for x in v])
    if t is set:  # a member other than bytes makes a tuple, which sorted() refuses beside bytes
        return ("set", sorted([x if type(x) is bytes else canon(x) for x in v]))
    if t is OrderedSet:  # the file's order and type too
        return (
            "orderedset",
            [x if type(x) is bytes else canon(x) for x in v.order],
            v.rdbtype,
            sorted(v),
        )
    if t is ZSetValue:
        return (
            "zset",
            [(m if type(m) is bytes else canon(m), _DOUBLE(s), type(s)) for m, s in v.items()],
        )
    if t is dict:
        return (
            "dict",
            [
                (k if type(k) is bytes else canon(k), x if type(x) is bytes else canon(x))
                for k, x in v.items()
            ],
        )
    if t is HashValue:
        return ("hashvalue", canon(dict(v)), sorted(v.expires.items()))
    if t is StreamValue or t is ModuleValue:
        return (t.__name__, repr(v))
    raise AssertionError(f"unexpected value type {t.__name__}")


def feed(
    reader: RDBReader, data: bytes, chunks: list[int] | None
) -> tuple[list[Any], tuple[str, str, int | None] | None]:
    """Events and error (type, reason, offset) of `data` fed in `chunks` (default: whole)."""
    events: list[Any] = []
    error = None
    try:
        i = 0
        sizes = iter(chunks or [])
        while i < len(data):
            n = next(sizes, len(data))
            reader.feed(data[i : i + n])
            events += reader.next_events()
            i += n
        reader.feed_eof()
    except RDBError as e:
        error = (type(e).__name__, e.reason, e.offset)
    with contextlib.suppress(RDBError):
        events += reader.next_events()
    return events, error


class Outcome:
    """What one load left behind, and how many keys the C path stored."""

    def __init__(
        self, data: bytes, fast: bool, chunks: list[int] | None, ndbs: int, verify: bool = True
    ) -> None:
        dbs: list[dict[bytes, Value]] = [{} for _ in range(ndbs)]
        expires: list[dict[bytes, int]] = [{} for _ in range(ndbs)]
        sink = KeySink(dbs, expires)
        with speedups(fast):
            reader = RDBReader(verify, sink=sink)
        assert (reader._fast is not None) == fast
        self.c_stored = 0
        if reader._fast is not None:
            real = reader._fast

            def counting(*args: Any) -> Any:
                res = real(*args)
                self.c_stored += res[2]
                return res

            reader._fast = counting
        self.events, self.error = feed(reader, data, chunks)
        self.dbs = [[(k, canon(v)) for k, v in d.items()] for d in dbs]
        self.expires = [list(x.items()) for x in expires]
        self.keys = sink.keys
        self.skipped = reader.skipped_empty_keys
        self.offset = reader.offset
        self.crc = reader.computed_checksum
        self.unused = reader.unused_data
        self.raw_dbs = dbs

    def state(self) -> tuple[Any, ...]:
        return (
            self.dbs,
            self.expires,
            self.keys,
            self.skipped,
            self.error,
            [repr(e) for e in self.events],
            # After an error, `offset` is where the buffer that failed began, which depends on
            # when the reader chose to decode: the C path retries a cut record only once the
            # buffered bytes double, so it may meet the same error (same message, same file
            # offset, same events before it) in a later feed. A sound load ends at the file's
            # length on both paths.
            self.offset if self.error is None else None,
            self.crc,
            self.unused,
        )
