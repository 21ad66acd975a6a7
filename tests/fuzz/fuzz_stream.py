"""Fuzz target: the replication stream splitter (`replproxy/resp/stream.py`), C and Python.

The splitter has three lanes: the C splitter of canonical commands (`_lanes.c`
`split_commands`), hiredis proved by re-encoding, and the exact Python scanner. Whatever the
bytes, every lane and every chunking must give the same commands (argv, raw bytes, end
offsets) and the same protocol error; the raw bytes must be exactly the stream's prefix; and
merged SET/MSET runs must carry the same bytes and command count as the plain split.
"""

from __future__ import annotations

from typing import Any

from replproxy.resp import stream
from replproxy.resp.stream import StreamProtocolError, StreamSplitter
from tests.fuzz.common import Input, chunks


def split(
    payload: bytes,
    start: int,
    pieces: list[bytes] | None,
    *,
    c: bool,
    hiredis: bool,
    strict: bool,
    merge: bool = False,
) -> tuple[list[Any], Any]:
    saved = stream._C_SPLIT
    if not c:
        stream._C_SPLIT = None
    try:
        s = StreamSplitter(start, strict_crlf=strict, use_hiredis=hiredis, merge_sets=merge)
        out: list[Any] = []
        error = None
        for piece in pieces if pieces is not None else [payload]:
            s.feed(piece)
            try:
                out += s.next_commands()
            except StreamProtocolError as e:
                error = (e.message, e.offset)
                break
        if error is None and s.error is not None:
            error = (s.error.message, s.error.offset)
    finally:
        stream._C_SPLIT = saved
    return [tuple(cmd) for cmd in out], error


def check(data: bytes) -> None:
    inp = Input(data)
    flags, seed, start = inp.byte(), inp.int(2), inp.int(3)
    strict = bool(flags & 1)
    payload = inp.rest()
    ref_cmds, ref_err = split(payload, start, None, c=False, hiredis=False, strict=strict)
    raw = b"".join(c[1] for c in ref_cmds)
    assert payload.startswith(raw)
    end = start
    for _argv, r, end_offset, n in ref_cmds:
        end += len(r)
        assert end_offset == end and n == 1
    if ref_err is not None:
        assert ref_err[1] == start + len(raw) + 1
    pieces = list(chunks(payload, seed))
    for c, hiredis, cut in (
        (True, False, None),
        (True, True, pieces),
        (False, True, pieces),
        (True, False, pieces),
    ):
        got = split(payload, start, cut, c=c, hiredis=hiredis, strict=strict)
        assert got == (ref_cmds, ref_err), (c, hiredis, cut is not None, got, ref_cmds, ref_err)
    merged, merr = split(
        payload,
        start,
        pieces if flags & 2 else None,
        c=True,
        hiredis=True,
        strict=strict,
        merge=True,
    )
    assert merr == ref_err
    assert b"".join(m[1] for m in merged) == raw
    assert sum(m[3] for m in merged) == len(ref_cmds)
    ends = {c[2] for c in ref_cmds}
    assert all(m[2] in ends for m in merged)


def _enc(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


SEEDS = [
    b"\x00\x01\x00\x00\x00\x00" + _enc(b"SELECT", b"0") + _enc(b"SET", b"k", b"v"),
    b"\x02\x02\x00\x10\x00\x00"
    + _enc(b"SET", b"a", b"1")
    + _enc(b"MSET", b"b", b"2", b"c", b"3")
    + _enc(b"SET", b"a", b"1", b"PX", b"100")
    + _enc(b"set", b"d", b"4"),
    b"\x00\x03\x00\x00\x00\x00\n\r\n*0\r\n*-1\r\n" + _enc(b"ping"),
    b"\x01\x04\x00\x00\x00\x00*1\r\n$4\r\nPINGxy",
    b"\x00\x05\x00\x00\x00\x00" + _enc(b"MULTI") + _enc(b"INCR", b"n") + _enc(b"EXEC"),
    b"\x00\x06\x00\x00\x00\x00" + _enc(b"SET", b"k", b"v") + b"SET x 1\r\n",
    b"\x00\x07\x00\x00\x00\x00*2\r\n$3\r\nDEL\r\n:1\r\n",
]
