"""Fuzz target: the client request parser (`replproxy/resp/request.py`).

Any bytes, under any of the parser's modes, must give Redis's outcome or a clean protocol
error, never another exception; and the outcome must not depend on how the bytes are chunked
or on whether hiredis's fast lane ran (the exact scanner is the reference).
"""

from __future__ import annotations

from typing import Any

from replproxy.resp.request import ProtocolError, QueryBufferLimitError, RequestParser
from tests.fuzz.common import Input, chunks


def parse(payload: bytes, pieces: list[bytes] | None, flags: int, hiredis: bool) -> Any:
    parser = RequestParser(
        max_query_buffer=1 << 20,
        proto_max_bulk_len=(1 << 20) if flags & 1 else 512 * 1024 * 1024,
        max_inline=1024 if flags & 2 else 64 * 1024,
        max_multibulk_len=(1024 * 1024) if flags & 4 else 2**31 - 1,
        auth_required=bool(flags & 8),
        sticky_blank_inline=bool(flags & 16),
        strict_crlf=bool(flags & 32),
        use_hiredis=hiredis,
    )
    out: list[list[bytes]] = []
    error: tuple[str, str] | None = None
    try:
        for piece in pieces if pieces is not None else [payload]:
            parser.feed(piece)
            while reqs := parser.next_requests():  # auth_required: one at a time
                out += reqs
        while reqs := parser.next_requests():
            out += reqs
    except ProtocolError as e:
        error = ("protocol", e.message)
        assert e.reply.startswith(b"-ERR Protocol error: ") and e.reply.endswith(b"\r\n")
        assert b"\r" not in e.reply[:-2] and b"\n" not in e.reply[:-2]
    except QueryBufferLimitError as e:
        error = ("querybuf", str(e.limit))
    for argv in out:
        assert argv and all(type(a) is bytes for a in argv)
    return out, error


def check(data: bytes) -> None:
    inp = Input(data)
    flags, seed = inp.byte(), inp.int(2)
    payload = inp.rest()
    reference = parse(payload, None, flags, hiredis=False)
    assert parse(payload, None, flags, hiredis=True) == reference
    # A query-buffer overflow depends on chunking by design (Redis checks per read).
    got = parse(payload, list(chunks(payload, seed)), flags, hiredis=bool(seed & 1))
    assert got == reference, (got, reference)


SEEDS = [
    b"\x00\x01\x00*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
    b"\x00\x02\x00PING\r\nSET a 'b c' \"d\\x41\"\r\n",
    b"\x08\x03\x00*1\r\n$4\r\nAUTH\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
    b"\x20\x04\x00*1\r\n$4\r\nPINGxy",
    b"\x10\x05\x00   \r\n*1\r\n$4\r\nPING\r\n\n",
    b"\x00\x06\x00*2\r\n$3\r\nGET\r\n:1\r\n",
]
