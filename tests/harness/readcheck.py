"""Read handlers judged against a real master, in process: the same argv to both, raw bytes.

`ReadCheck(master, mirror)` sends a command over a raw socket to the real server (RESP2, or
RESP3 after `HELLO 3`) and calls replproxy's handler from `READ_COMMANDS` on the mirror's
keyspace (a `tests.harness.mirror.Mirror` synced from that master), and returns both replies as
bytes, exactly as they would go on the wire. The dispatcher's own checks (arity, unknown
commands) are not involved: those are tested through a running relay.

    rc = ReadCheck(master, mirror)
    assert rc.same("hget", "h", "f")            # byte-identical in RESP2 and RESP3
    mine, theirs = rc.both(["zrange", "z", "0", "-1"], proto=3)
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from replproxy.args import now_ms
from replproxy.commandtable.spec import ResolveError
from replproxy.keyspace.reads import READ_COMMANDS, ReadContext, ReplyError
from replproxy.resp import reply
from replproxy.resp.request import encode_command
from tests.harness.mirror import Mirror
from tests.harness.servers import RedisServer


def read_reply(sock: socket.socket, buf: bytearray) -> bytes:
    """One complete RESP2/RESP3 reply from `sock` (bytes left over stay in `buf`)."""
    while True:
        end = reply_end(buf, 0)
        if end is not None:
            out = bytes(buf[:end])
            del buf[:end]
            return out
        data = sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        buf += data


def reply_end(buf: bytes | bytearray, pos: int) -> int | None:
    """Where the reply starting at `pos` ends, or None if it is incomplete."""
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return None
    kind = buf[pos : pos + 1]
    head = bytes(buf[pos + 1 : nl])
    after = nl + 2
    if kind in (b"$", b"=", b"!"):
        n = int(head)
        if n < 0:
            return after
        return after + n + 2 if len(buf) >= after + n + 2 else None
    if kind in (b"*", b"~", b">", b"%", b"|"):
        n = int(head)
        if n < 0:
            return after
        if kind in (b"%", b"|"):
            n *= 2
        for _ in range(n):
            end = reply_end(buf, after)
            if end is None:
                return None
            after = end
        if kind == b"|":  # attribute: followed by the actual reply
            return reply_end(buf, after)
        return after
    return after  # + - : _ , # (


@dataclass
class Agg:
    """A parsed aggregate reply that keeps its RESP kind (hiredis merges sets into lists)."""

    kind: str  # "*" array, "~" set, ">" push, "%" map (items flat: k, v, k, v)
    items: list[Any]


def parse_reply(buf: bytes) -> Any:
    """One whole reply: bytes for bulks, int, None for nulls, `Agg` for aggregates, and
    `(kind, text)` for simple strings and errors (`("-", b"ERR ...")`)."""
    value, end = _parse(buf, 0)
    assert end == len(buf), buf
    return value


def _parse(buf: bytes, pos: int) -> tuple[Any, int]:
    nl = buf.index(b"\r\n", pos)
    kind, head, after = chr(buf[pos]), buf[pos + 1 : nl], nl + 2
    if kind == "$":
        n = int(head)
        if n < 0:
            return None, after
        return buf[after : after + n], after + n + 2
    if kind in "*~%>":
        n = int(head)
        if n < 0:
            return None, after
        items = []
        for _ in range(2 * n if kind == "%" else n):
            v, after = _parse(buf, after)
            items.append(v)
        return Agg(kind, items), after
    if kind == ":":
        return int(head), after
    if kind == "_":
        return None, after
    if kind in "-+,":
        return (kind, head), after
    raise AssertionError(f"unexpected reply {buf[pos:]!r}")


class RawConnection:
    def __init__(self, server: RedisServer, proto: int = 2, db: int = 0) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=30)
        self.buf = bytearray()
        if server.password:
            assert self.call(["auth", server.password]) == b"+OK\r\n"
        if proto == 3:
            self.call(["hello", "3"])
        if db:
            self.call(["select", str(db)])

    def call(self, argv: Sequence[bytes | str | int]) -> bytes:
        self.sock.sendall(encode_command([_b(a) for a in argv]))
        return read_reply(self.sock, self.buf)

    def close(self) -> None:
        self.sock.close()


def _b(a: bytes | str | int | float) -> bytes:
    return a if isinstance(a, bytes) else str(a).encode()


class ReadCheck:
    def __init__(self, master: RedisServer, mirror: Mirror) -> None:
        self.master = master
        self.mirror = mirror
        self._conns: dict[tuple[int, int], RawConnection] = {}

    def close(self) -> None:
        for c in self._conns.values():
            c.close()

    def master_reply(self, argv: Sequence[bytes | str | int], proto: int = 2, db: int = 0) -> bytes:
        conn = self._conns.get((proto, db))
        if conn is None:
            conn = self._conns[(proto, db)] = RawConnection(self.master, proto, db)
        return conn.call(argv)

    def relay_reply(self, argv: Sequence[bytes | str | int], proto: int = 2, db: int = 0) -> bytes:
        args = [_b(a) for a in argv]
        ks = self.mirror.keyspace
        # A command the master's version does not have (LCS on 5.0) is unknown, as the
        # relay's dispatcher answers before any handler runs.
        resolved = ks.dialect.command_table.resolve(args)
        if isinstance(resolved, ResolveError) and resolved.kind == "unknown_command":
            return reply.error(resolved.msg)
        handler = READ_COMMANDS.get(args[0].lower())
        if handler is None and len(args) > 1:
            handler = READ_COMMANDS.get(args[0].lower() + b"|" + args[1].lower())
        assert handler is not None, f"no read handler for {args[0]!r}"
        ctx = ReadContext(ks, db=db, proto=proto, now=now_ms())
        try:
            return handler(ctx, args)
        except ReplyError as e:
            return reply.error(e.msg)

    def both(
        self, argv: Sequence[bytes | str | int], proto: int = 2, db: int = 0
    ) -> tuple[bytes, bytes]:
        """(replproxy's reply, the master's reply)."""
        return self.relay_reply(argv, proto, db), self.master_reply(argv, proto, db)

    @property
    def protos(self) -> tuple[int, ...]:
        """The protocols the master speaks: RESP2 and RESP3, RESP2 alone before Redis 6."""
        return (2, 3) if self.master.kind.dialect.resp3 else (2,)

    def same(self, *argv: bytes | str | int, db: int = 0) -> bool:
        """Byte-identical replies in RESP2 and in RESP3 (where the master has it); prints
        the first difference."""
        for proto in self.protos:
            mine, theirs = self.both(argv, proto, db)
            if mine != theirs:
                print(f"RESP{proto} {argv!r}:\n  replproxy {mine!r}\n  master    {theirs!r}")
                return False
        return True
