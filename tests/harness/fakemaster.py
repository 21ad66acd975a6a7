"""A fake master for fault injection: a REAL TCP server speaking the replication protocol.

It is a protocol peer, not a mock of Redis: it listens on 127.0.0.1, reads the relay's real
commands off the socket (PING, AUTH, REPLCONF, PSYNC, ACKs) and answers with bytes a test
chooses, including the faults a misbehaving master could send (a garbage PING reply,
`+CONTINUE` to `PSYNC ? -1`, inline commands in the stream, a 100 GB snapshot length...).
Tests with a well-behaved master use real redis-server / valkey-server processes instead.

Each accepted connection runs the test's `script(peer)` in its own thread; `peers` keeps
every connection in accept order, so a test sees how often and how the relay reconnected
(`peer.psync` is the PSYNC it sent).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

from replproxy.rdb.writer import RDBWriter
from replproxy.resp.request import encode_command

REPLID = "f" * 40


def empty_rdb(version: int = 10) -> bytes:
    """A valid snapshot with no keys (the relay loads it for real)."""
    w = RDBWriter(version)
    return w.header() + w.end()


class PeerClosed(Exception):
    """The relay closed the connection."""


class MasterPeer:
    """One connection from the relay, seen from the master's side."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.commands: list[list[bytes]] = []  # every command the relay sent, in order
        self.psync: list[bytes] | None = None
        self.closed = threading.Event()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        except OSError as e:
            self.closed.set()
            raise PeerClosed() from e
        if not data:
            self.closed.set()
            raise PeerClosed()
        self.buf += data

    def read_command(self, timeout: float = 30) -> list[bytes]:
        """The relay's next command (multibulk or inline; bare newlines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            argv = self._parse()
            if argv is not None:
                self.commands.append(argv)
                return argv
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no command from the relay")
            self._fill(min(left, 0.5))

    def _parse(self) -> list[bytes] | None:
        buf = self.buf
        while buf[:1] == b"\n":  # loading keep-alives
            del buf[:1]
        if not buf:
            return None
        if buf[:1] != b"*":
            nl = buf.find(b"\n")
            if nl < 0:
                return None
            line = bytes(buf[:nl]).rstrip(b"\r")
            del buf[: nl + 1]
            return line.split()
        pos = buf.find(b"\r\n")
        if pos < 0:
            return None
        n = int(buf[1:pos])
        pos += 2
        argv = []
        for _ in range(n):
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return None
            size = int(buf[pos + 1 : end])
            start = end + 2
            if len(buf) < start + size + 2:
                return None
            argv.append(bytes(buf[start : start + size]))
            pos = start + size + 2
        del buf[:pos]
        return argv

    def handshake(self, ping_reply: bytes = b"+PONG\r\n") -> list[bytes]:
        """Answer PING with `ping_reply` and every REPLCONF/AUTH with +OK; return the PSYNC."""
        argv = self.read_command()
        assert argv[0].upper() == b"PING", argv
        self.send(ping_reply)
        while True:
            argv = self.read_command()
            if argv[0].upper() in (b"PSYNC", b"SYNC"):
                self.psync = argv
                return argv
            self.send(b"+OK\r\n")

    def full_sync(
        self,
        rdb: bytes | None = None,
        offset: int = 0,
        replid: str = REPLID,
        diskless: bool = False,
    ) -> None:
        """+FULLRESYNC and a snapshot, disk (`$<len>`) or diskless (`$EOF:`) form."""
        rdb = empty_rdb() if rdb is None else rdb
        self.send(f"+FULLRESYNC {replid} {offset}\r\n".encode())
        if diskless:
            mark = b"m" * 40
            self.send(b"$EOF:" + mark + b"\r\n" + rdb + mark)
        else:
            self.send(b"$%d\r\n" % len(rdb) + rdb)

    def wait_ack(self, timeout: float = 30) -> int:
        """The offset of the relay's next REPLCONF ACK."""
        deadline = time.monotonic() + timeout
        while True:
            argv = self.read_command(max(0.1, deadline - time.monotonic()))
            if argv[:2] == [b"REPLCONF", b"ACK"]:
                return int(argv[2])

    def wait_closed(self, timeout: float = 30) -> bool:
        """Read (and keep) whatever the relay sends until it closes the connection."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self._fill(0.2)
                while self._parse_into_commands():
                    pass
        except PeerClosed:
            return True
        return False

    def _parse_into_commands(self) -> bool:
        argv = self._parse()
        if argv is not None:
            self.commands.append(argv)
        return argv is not None


class FakeMaster:
    """A listening socket whose every connection is served by `script(peer)` in a thread."""

    def __init__(self, script: Callable[[MasterPeer], None]) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.host = "127.0.0.1"
        self.peers: list[MasterPeer] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            peer = MasterPeer(sock)
            self.peers.append(peer)
            t = threading.Thread(target=self._serve, args=(peer,), daemon=True)
            t.start()  # before close() can see it: joining a thread not started raises
            self._threads.append(t)

    def _serve(self, peer: MasterPeer) -> None:
        try:
            self.script(peer)
            peer.wait_closed(timeout=3600 if not self._stop.is_set() else 0)
        except PeerClosed:
            pass
        except BaseException as e:  # reported by close(): a broken script is a test failure
            if not self._stop.is_set():
                self.errors.append(e)
        finally:
            peer.closed.set()
            peer.sock.close()

    def wait_peers(self, n: int, timeout: float = 60) -> list[MasterPeer]:
        deadline = time.monotonic() + timeout
        while len(self.peers) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the relay connected {len(self.peers)} times, not {n}")
            time.sleep(0.05)
        return self.peers

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for p in self.peers:
            with contextlib.suppress(OSError):
                p.sock.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            t.join(5)
        self._accepter.join(5)
        if self.errors:
            raise self.errors[0]

    def __enter__(self) -> FakeMaster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def command(*args: bytes | str) -> bytes:
    return encode_command([a if isinstance(a, bytes) else a.encode() for a in args])
