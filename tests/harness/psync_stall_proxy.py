"""A minimal TCP proxy that stalls the replication connection alone (for tests).

Put in front of a master, it forwards every connection both ways. A connection whose client
sent `SYNC` or `PSYNC` is a replication connection: `stall()` stops forwarding those (both
directions; the bytes wait in the kernel's buffers, as on a congested or half-dead link)
until `resume()`, while every other connection - the relay's master offset probe, the
test's own clients - goes on. That is the failure the lag metrics exist for: the link is
"up", nothing arrives, the master moves on.

Named for this one job so it can be merged with the general fault proxy (another branch)
later: `PsyncStallProxy(host, port)`, `.port`, `.stall()`, `.resume()`, `.close()`.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import threading
from dataclasses import dataclass, field

# `SYNC` or `PSYNC` as a RESP bulk string, any case: the replication handshake's last step.
_SYNC = re.compile(rb"\$4\r\nsync\r\n|\$5\r\npsync\r\n", re.IGNORECASE)
_SNIFF_LIMIT = 64 * 1024  # a handshake is a few hundred bytes


@dataclass(eq=False)
class _Conn:
    client: socket.socket
    server: socket.socket
    replication: bool = False
    sniffed: bytearray = field(default_factory=bytearray)


class PsyncStallProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._running = threading.Event()
        self._running.set()
        self._flowing = threading.Event()  # cleared while replication connections stall
        self._flowing.set()
        self._lock = threading.Lock()
        self._conns: list[_Conn] = []
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    @property
    def replication_connections(self) -> int:
        with self._lock:
            return sum(1 for c in self._conns if c.replication)

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._running.clear()
        self._flowing.set()
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            for s in (c.client, c.server):
                with contextlib.suppress(OSError):
                    s.close()
        for t in self._threads:
            t.join(5)

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while self._running.is_set():
            try:
                r, _, _ = select.select([self._listener], [], [], 0.1)
                if not r:
                    continue
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            conn = _Conn(client, server)
            with self._lock:
                self._conns.append(conn)
            self._spawn(self._pump, conn, client, server, True)
            self._spawn(self._pump, conn, server, client, False)

    def _pump(self, conn: _Conn, src: socket.socket, dst: socket.socket, upward: bool) -> None:
        try:
            while self._running.is_set():
                if conn.replication and not self._flowing.is_set():
                    self._flowing.wait(0.1)
                    continue
                r, _, _ = select.select([src], [], [], 0.1)
                if not r:
                    continue
                data = src.recv(65536)
                if not data:
                    break
                if upward and not conn.replication and len(conn.sniffed) < _SNIFF_LIMIT:
                    conn.sniffed += data
                    if _SYNC.search(conn.sniffed):
                        conn.replication = True
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
