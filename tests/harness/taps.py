"""Raw client connections whose every received byte is kept (a transcript), for comparing
what the relay and a real replica send a client byte for byte: replies, RESP3 pushes,
Pub/Sub messages, MONITOR lines.

`Tap.call` sends commands and reads exactly their replies (nothing else may arrive while it
reads: callers keep the master quiet meanwhile); `Tap.drain` reads what is pending until
the connection stays quiet. Both append to `transcript`.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Sequence

import hiredis


def encode(*args: object) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)


class Tap:
    def __init__(self, port: int, proto: int = 2) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.transcript = bytearray()
        self._reader = hiredis.Reader()
        if proto == 3:
            self.call(["HELLO", "3"], keep=False)

    def close(self) -> None:
        self.sock.close()

    def call(self, *commands: Sequence[object], keep: bool = True) -> list[object]:
        """Send `commands` pipelined; return their replies (parsed), once all arrived."""
        self.sock.sendall(b"".join(encode(*c) for c in commands))
        replies: list[object] = []
        raw = bytearray()
        while len(replies) < len(commands):
            r = self._reader.gets()
            if r is not False:
                replies.append(r)
                continue
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("connection closed")
            raw += data
            self._reader.feed(data)
        if keep:
            self.transcript += raw
        return replies

    def drain(self, quiet: float = 0.25) -> bytes:
        """Everything the server sends until `quiet` seconds pass without a byte."""
        got = bytearray()
        self.sock.settimeout(quiet)
        try:
            while True:
                try:
                    data = self.sock.recv(1 << 20)
                except TimeoutError:
                    break
                if not data:
                    break
                got += data
        finally:
            self.sock.settimeout(30)
        self.transcript += got
        self._reader = hiredis.Reader()  # drained bytes are not replies to wait for
        return bytes(got)


def messages(raw: bytes) -> list[object]:
    """`raw` as parsed messages (replies and pushes alike), for a readable difference."""
    r = hiredis.Reader()
    r.feed(raw)
    out = []
    while (m := r.gets()) is not False:
        out.append(repr(m) if isinstance(m, Exception) else m)
    return out


def first_difference(a: bytes, b: bytes) -> str:
    """Where two transcripts part, message by message (the assertion's explanation)."""
    ma, mb = messages(a), messages(b)
    for i, (x, y) in enumerate(zip(ma, mb)):
        if x != y:
            return f"message {i}: {x!r} != {y!r}; before: {ma[max(0, i - 3) : i]!r}"
    return f"{len(ma)} messages != {len(mb)}: tail {ma[len(mb) :][:3]!r} / {mb[len(ma) :][:3]!r}"


_TIMESTAMP = re.compile(rb"^\+\d+\.\d{6} ", re.M)


def monitor_lines(raw: bytes, addr: str | None = None) -> list[bytes]:
    """MONITOR output as lines without their timestamps; only those of `addr` if given."""
    lines = _TIMESTAMP.sub(b"+T ", raw).split(b"\r\n")
    out = [ln for ln in lines if ln]
    if addr is not None:
        tag = b" " + addr.encode() + b"] "
        out = [ln for ln in out if tag in ln]
    return out


def wait_quiet(*taps: Tap, quiet: float = 0.25) -> None:
    for t in taps:
        t.drain(quiet)


def until(pred, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
