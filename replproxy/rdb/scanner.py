"""The resumable record scanner: where does a record cut by the end of a chunk end?

`RDBReader` decodes a record only when all its bytes are present. When a record is bigger
than the chunks it is fed (a 500 MB list arriving 64 KiB at a time), retrying the decoder on
every chunk would cost quadratic time; instead `scan_record` walks the same grammar as the
decoders WITHOUT decoding anything (lengths and string headers only), as a generator that
yields how many bytes it needs next. The reader resumes it as bytes arrive and decodes the
record once, when the scanner says it is complete. The scanner never raises for bad input: it
answers "the record is what you have" and lets the decoder report the precise error.

It owns no state of its own and must stay in step with `decoders` (same layouts) and with
the record grammar of `reader` (same opcodes); if it ever disagrees, the reader falls back to
waiting until its buffer doubles, which is still linear.
"""

from __future__ import annotations

from collections.abc import Container, Generator

from replproxy.rdb.decoders import Incomplete, read_len, skip_string
from replproxy.rdb.model import RDBError

__all__ = ["ScanGen", "scan_record"]

ScanGen = Generator[int, None, int]
"""Yields the buffer length it needs next; returns the record's length."""


def _g_len(tail: bytearray, p: int) -> Generator[int, None, tuple[int, int]]:
    while True:
        try:
            return read_len(tail, p, len(tail))
        except Incomplete as inc:
            yield inc.need


def _g_str(tail: bytearray, p: int) -> ScanGen:
    while True:
        try:
            return skip_string(tail, p, len(tail))
        except Incomplete as inc:
            yield inc.need


def _skip_items(
    tail: bytearray, p: int, count: int, pattern: tuple[str | int, ...]
) -> tuple[int, int, int]:
    """Skip up to `count` items of `pattern` ("S" string, "L" length, "D" string double,
    int = fixed bytes); returns (p, items left, bytes needed to go on)."""
    end = len(tail)
    try:
        while count:
            q = p
            for op in pattern:
                if op == "S":
                    q = skip_string(tail, q, end)
                elif op == "L":
                    _, q = read_len(tail, q, end)
                elif op == "D":
                    if q >= end:
                        raise Incomplete(q + 1)
                    b = tail[q]
                    q += 1 if b >= 253 else 1 + b
                else:
                    q += op  # type: ignore[operator]
            p = q
            count -= 1
    except Incomplete as inc:
        return p, count, inc.need
    return p, 0, 0


def _g_items(tail: bytearray, p: int, count: int, pattern: tuple[str | int, ...]) -> ScanGen:
    while True:
        p, count, need = _skip_items(tail, p, count, pattern)
        if not count:
            return p
        yield need


def _g_need(tail: bytearray, p: int) -> ScanGen:
    while len(tail) < p:
        yield p
    return p


def _g_module_stream(tail: bytearray, p: int) -> ScanGen:
    while True:
        op, p = yield from _g_len(tail, p)
        if op == 0:
            return p
        if op == 1 or op == 2:
            _, p = yield from _g_len(tail, p)
        elif op == 3:
            p += 4
        elif op == 4:
            p += 8
        elif op == 5:
            p = yield from _g_str(tail, p)
        else:
            raise RDBError(f"unknown module opcode {op}", p)


def _g_stream(tail: bytearray, p: int, t: int) -> ScanGen:
    n, p = yield from _g_len(tail, p)
    p = yield from _g_items(tail, p, n, ("S", "S"))
    # length, last_id; v19+: first_id, max_deleted_id, entries_added
    p = yield from _g_items(tail, p, 1, ("L",) * (8 if t >= 19 else 3))
    n_groups, p = yield from _g_len(tail, p)
    for _ in range(n_groups):
        p = yield from _g_items(tail, p, 1, ("S", "L", "L", "L")[: 4 if t >= 19 else 3])
        n, p = yield from _g_len(tail, p)
        p = yield from _g_items(tail, p, n, (24, "L"))
        n_consumers, p = yield from _g_len(tail, p)
        for _ in range(n_consumers):
            p = yield from _g_str(tail, p)
            p += 16 if t >= 21 else 8  # seen_time [+ active_time]
            n, p = yield from _g_len(tail, p)
            p += 16 * n
    if t >= 26:  # IDMP: duration, max entries, producers (pid, n, n x (iid, ms, seq)), 2 counters
        p = yield from _g_items(tail, p, 1, ("L", "L"))
        n_producers, p = yield from _g_len(tail, p)
        for _ in range(n_producers):
            p = yield from _g_str(tail, p)
            n, p = yield from _g_len(tail, p)
            p = yield from _g_items(tail, p, n, ("S", "L", "L"))
        p = yield from _g_items(tail, p, 1, ("L", "L"))
    return p


def _g_value(tail: bytearray, p: int, t: int, valkey: bool) -> ScanGen:
    if t == 0 or t in (9, 10, 11, 12, 13, 16, 17, 20) or (t == 23 and not valkey):
        return (yield from _g_str(tail, p))
    if t in (1, 2, 14):
        n, p = yield from _g_len(tail, p)
        return (yield from _g_items(tail, p, n, ("S",)))
    if t == 3:
        n, p = yield from _g_len(tail, p)
        return (yield from _g_items(tail, p, n, ("S", "D")))
    if t == 4:
        n, p = yield from _g_len(tail, p)
        return (yield from _g_items(tail, p, n, ("S", "S")))
    if t == 5:
        n, p = yield from _g_len(tail, p)
        return (yield from _g_items(tail, p, n, ("S", 8)))
    if t == 7:
        _, p = yield from _g_len(tail, p)
        return (yield from _g_module_stream(tail, p))
    if t == 18:
        n, p = yield from _g_len(tail, p)
        return (yield from _g_items(tail, p, n, ("L", "S")))
    if t in (15, 19, 21, 26):
        return (yield from _g_stream(tail, p, t))
    if t == 22 and valkey:
        n, p = yield from _g_len(tail, p)
        return (yield from _g_items(tail, p, n, ("S", "S", 8)))
    if t == 22 or t == 24:
        p += 8 if t == 24 else 0
        n, p = yield from _g_len(tail, p)
        return (yield from _g_items(tail, p, n, ("L", "S", "S")))
    if t == 25:
        return (yield from _g_str(tail, p + 8))
    raise RDBError(f"type {t}", p)  # let the decoder report it


def scan_record(
    tail: bytearray, version: int | None, valkey: bool, types: Container[int]
) -> ScanGen:
    """Generator over the bytes of ONE record (`tail`, which grows between steps).

    It yields the tail length it needs before it can go on and returns the record's length.
    `version` is None before the header was read (the record is then the 9-byte header);
    `types` are the object types the file may hold. Anything malformed or unknown returns
    `len(tail)`: "decode what you have", so the decoder raises the precise error.
    """
    try:
        if version is None:
            return (yield from _g_need(tail, 9))
        t = tail[0]
        p = 1
        if t < 64:
            if t not in types:
                return len(tail)
            p = yield from _g_str(tail, p)
            p = yield from _g_value(tail, p, t, valkey)
        elif t == 255:
            p = 9 if version >= 5 else 1
        elif t == 252:
            p = 9
        elif t == 253:
            p = 5
        elif t == 249:
            p = 2
        elif t in (254, 248):
            p = yield from _g_items(tail, p, 1, ("L",))
        elif t == 251:
            p = yield from _g_items(tail, p, 1, ("L", "L"))
        elif t == 244:
            p = yield from _g_items(tail, p, 1, ("L", "L", "L"))
        elif t == 250:
            p = yield from _g_items(tail, p, 1, ("S", "S"))
        elif t == 245:
            p = yield from _g_str(tail, p)
        elif t == 246:
            p = yield from _g_items(tail, p, 1, ("S", "S"))
            has_desc, p = yield from _g_len(tail, p)
            p = yield from _g_items(tail, p, 2 if has_desc else 1, ("S",))
        elif t == 247:
            p = yield from _g_items(tail, p, 1, ("L", "L", "L"))
            p = yield from _g_module_stream(tail, p)
        elif t == 243 and valkey:  # SLOT_IMPORT: name, n, n x (start, end)
            p = yield from _g_str(tail, p)
            n, p = yield from _g_len(tail, p)
            p = yield from _g_items(tail, p, n, ("L", "L"))
        elif t == 243 and version >= 13:  # KEY_META: n, n x (4-byte spec, module stream)
            n, p = yield from _g_len(tail, p)
            for _ in range(n):
                p = yield from _g_need(tail, p + 4)
                p = yield from _g_module_stream(tail, p)
        else:
            return len(tail)
        return (yield from _g_need(tail, p))
    except RDBError:
        return len(tail)  # malformed: let the decoder raise the precise error
