"""A fault-injecting TCP proxy for tests: real sockets on loopback, faults on command.

Put it between two real parties (master and relay, relay and a downstream replica): every
connection a client makes to `proxy.port` is accepted, a connection to the target is opened,
and two pump threads move the bytes, one per direction (`UP` client->server, `DOWN`
server->client). A test picks a connection (`proxy.replication_conn()`: the newest one whose
client sent PSYNC or SYNC; or any of `proxy.connections`) and injects, on it:

- `cut()`: close both sides (each peer sees a clean FIN);
- `reset()`: close both sides with SO_LINGER 0 (each peer sees an RST);
- `stall()` / `resume()`: stop reading and forwarding in both directions (the bytes pile up in
  the kernel's buffers, as on a frozen network); the peers see silence, not a close;
- `half_open(direction)`: stop reading one direction only, the other keeps flowing;
- `delay(seconds, direction)`: forward each chunk that much later;
- `throttle(bytes_per_second, direction)`: at most that rate;
- `truncate(n, direction)`: forward `n` more bytes in that direction, then cut.

`on_connect(conn)` (settable) runs for each new connection before any byte moves, so a fault
can be armed for the next connection (`proxy.on_connect = lambda c: c.truncate(...)`);
`refuse(True)` makes the proxy close new connections at once (a master that is down).

Pumps poll with a short timeout, so every control takes effect within ~20 ms; nothing here
depends on timing for correctness. `close()` ends every connection and thread.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

UP = "up"  # client -> server
DOWN = "down"  # server -> client
BOTH = "both"

_POLL = 0.02
_CHUNK = 64 * 1024
# A replication connection is one whose client sent PSYNC or SYNC (multibulk or inline).
_PSYNC_ARGS = re.compile(
    rb"\$5\r\nPSYNC\r\n\$[0-9]+\r\n([^\r]*)\r\n\$[0-9]+\r\n(-?[0-9]+)\r\n", re.I
)
_SYNC_RE = re.compile(rb"(?:^|\r\n|\n)(?:\*[0-9]+\r\n\$[45]\r\n)?P?SYNC(?:\r|\n| )", re.I)


class _Direction:
    def __init__(self) -> None:
        self.paused = False
        self.delay = 0.0
        self.rate: float | None = None
        self.budget: int | None = None  # bytes still forwarded before a cut
        self.forwarded = 0


class ProxyConnection:
    """One client connection and its connection to the target."""

    def __init__(
        self, proxy: FaultProxy, client: socket.socket, server: socket.socket, index: int
    ) -> None:
        self.proxy = proxy
        self.index = index
        self.client = client
        self.server = server
        self.dirs = {UP: _Direction(), DOWN: _Direction()}
        self.head = bytearray()  # the first bytes the client sent, to tell connections apart
        self.down_head = bytearray()  # the first bytes the server sent (its PSYNC reply)
        self.is_replication = False
        self.closed = threading.Event()
        self.how_closed = ""
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        kind = "replication" if self.is_replication else "client"
        state = f"closed ({self.how_closed})" if self.closed.is_set() else "open"
        return (
            f"<conn #{self.index} {kind} {state} up={self.dirs[UP].forwarded} "
            f"down={self.dirs[DOWN].forwarded}>"
        )

    # ---- faults ----

    def _each(self, direction: str) -> list[_Direction]:
        return list(self.dirs.values()) if direction == BOTH else [self.dirs[direction]]

    def cut(self) -> None:
        """Close both sides: each peer reads EOF."""
        self._close("cut", rst=False)

    def reset(self) -> None:
        """Close both sides with SO_LINGER 0: each peer gets an RST."""
        self._close("reset", rst=True)

    def stall(self, direction: str = BOTH) -> None:
        for d in self._each(direction):
            d.paused = True

    def half_open(self, direction: str) -> None:
        """Stop reading `direction` only: its sender's writes pile up, the other flows."""
        self.stall(direction)

    def resume(self, direction: str = BOTH) -> None:
        for d in self._each(direction):
            d.paused = False

    def delay(self, seconds: float, direction: str = BOTH) -> None:
        for d in self._each(direction):
            d.delay = seconds

    def throttle(self, bytes_per_second: float | None, direction: str = BOTH) -> None:
        for d in self._each(direction):
            d.rate = bytes_per_second

    def truncate(self, n: int, direction: str = DOWN) -> None:
        """Forward `n` more bytes in `direction`, then cut the connection."""
        for d in self._each(direction):
            d.budget = n

    def clear(self) -> None:
        """No fault any more (a stalled direction resumes)."""
        for d in self.dirs.values():
            d.paused, d.delay, d.rate, d.budget = False, 0.0, None, None

    @property
    def sync_reply(self) -> str | None:
        """ "full" or "partial" when the server answered this connection's PSYNC with
        +FULLRESYNC or +CONTINUE: the proxy counts resyncs whatever the parties' counters."""
        if not self.is_replication:
            return None
        if b"+FULLRESYNC" in self.down_head:
            return "full"
        if b"+CONTINUE" in self.down_head:
            return "partial"
        return None

    @property
    def psync(self) -> tuple[str, int] | None:
        """The (replid, offset) this connection's client asked with PSYNC, if it did."""
        m = _PSYNC_ARGS.search(self.head)
        return (m.group(1).decode(errors="replace"), int(m.group(2))) if m else None

    @property
    def avoidable_full_sync(self) -> bool:
        """A +FULLRESYNC to a PSYNC that named a history (not `PSYNC ? -1`): with the
        backlogs these tests configure, a partial resync was possible there."""
        asked = self.psync
        return self.sync_reply == "full" and asked is not None and asked[0] != "?"

    def forwarded(self, direction: str) -> int:
        return self.dirs[direction].forwarded

    def wait_forwarded(self, direction: str, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.dirs[direction].forwarded < n:
            if self.closed.is_set():
                raise ConnectionError(f"{self!r} closed before {n} bytes went {direction}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self!r}: {n} bytes did not go {direction}")
            time.sleep(0.01)

    # ---- machinery ----

    def _start(self) -> None:
        for direction, src, dst in (
            (UP, self.client, self.server),
            (DOWN, self.server, self.client),
        ):
            t = threading.Thread(
                target=self._pump,
                args=(direction, src, dst),
                daemon=True,
                name=f"faultproxy-{self.index}-{direction}",
            )
            self._threads.append(t)
            t.start()

    def _close(self, how: str, rst: bool) -> None:
        with self._lock:
            if self.closed.is_set():
                return
            self.how_closed = how
            for s in (self.client, self.server):
                with contextlib.suppress(OSError):
                    if rst:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    else:
                        s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()
            self.closed.set()

    def _pump(self, direction: str, src: socket.socket, dst: socket.socket) -> None:
        d = self.dirs[direction]
        try:
            while not self.closed.is_set():
                if d.paused:
                    time.sleep(_POLL)
                    continue
                ready, _, _ = select.select([src], [], [], _POLL)
                if not ready or d.paused:
                    continue
                want = _CHUNK
                if d.budget is not None:
                    want = max(1, min(want, d.budget))
                if d.rate is not None:
                    want = max(1, min(want, int(d.rate * 0.1) or 1))
                data = src.recv(want)
                if not data:
                    self._close(f"{'client' if direction == UP else 'server'} closed", False)
                    return
                if direction == UP and not self.is_replication and len(self.head) < 65536:
                    self.head += data
                    if _SYNC_RE.search(self.head):
                        self.is_replication = True
                if direction == DOWN and len(self.down_head) < 4096:
                    self.down_head += data
                if d.delay:
                    time.sleep(d.delay)
                if d.budget is not None:
                    data = data[: d.budget]
                dst.sendall(data)
                d.forwarded += len(data)
                if d.rate:
                    time.sleep(len(data) / d.rate)
                if d.budget is not None:
                    d.budget -= len(data)
                    if d.budget <= 0:
                        self._close(f"truncated {direction}", False)
                        return
        except (OSError, ValueError):  # ValueError: select() on a socket closed meanwhile
            self._close(f"{direction} error", False)


class FaultProxy:
    """Listens on 127.0.0.1 and forwards each connection to `target` (host, port)."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.port: int = self.listener.getsockname()[1]
        self.connections: list[ProxyConnection] = []
        self.on_connect: Callable[[ProxyConnection], None] | None = None
        self._refuse = False
        self._stop = threading.Event()
        self._accepter = threading.Thread(target=self._accept, daemon=True, name="faultproxy")
        self._accepter.start()

    def _accept(self) -> None:
        self.listener.settimeout(_POLL * 5)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._refuse:
                with contextlib.suppress(OSError):
                    client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()  # the target is down: so is the proxy, for this client
                continue
            for s in (client, server):
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = ProxyConnection(self, client, server, len(self.connections))
            if self.on_connect is not None:
                self.on_connect(conn)
            self.connections.append(conn)
            conn._start()

    def refuse(self, on: bool = True) -> None:
        """Close new connections at once (the target looks down) until `refuse(False)`."""
        self._refuse = on

    def open_connections(self) -> list[ProxyConnection]:
        return [c for c in self.connections if not c.closed.is_set()]

    def replication_conn(self, timeout: float = 30, after: int = -1) -> ProxyConnection:
        """The newest open replication connection (client sent PSYNC/SYNC), index > `after`."""
        deadline = time.monotonic() + timeout
        while True:
            for c in reversed(self.connections):
                if c.index > after and c.is_replication and not c.closed.is_set():
                    return c
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no replication connection through :{self.port}: {self.connections}"
                )
            time.sleep(0.02)

    def avoidable_full_syncs(self) -> list[ProxyConnection]:
        return [c for c in self.connections if c.avoidable_full_sync]

    def resyncs(self) -> tuple[int, int]:
        """(full, partial): the PSYNC answers seen on every connection so far."""
        replies = [c.sync_reply for c in self.connections]
        return replies.count("full"), replies.count("partial")

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        self._accepter.join(5)
        for c in self.connections:
            c.cut()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
