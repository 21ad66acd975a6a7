"""The fault proxy itself (tests/harness/faultproxy.py), against a plain echo server.

Fault tests are only as good as their proxy: each fault is checked here for what the peers
observe (EOF, RST, silence, exactly n bytes), without timing assertions.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.harness.faultproxy import DOWN, UP, FaultProxy, ProxyConnection
from tests.harness.servers import wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()
    stop.set()
    srv.close()
    t.join(5)


def connect(proxy: FaultProxy) -> tuple[socket.socket, ProxyConnection]:
    n = len(proxy.connections)
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    wait_for(lambda: len(proxy.connections) > n, 10, what="the proxy to accept")
    return s, proxy.connections[-1]


def recv_exactly(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def test_forwards_both_ways_and_tells_replication_connections_apart(echo) -> None:
    with FaultProxy(echo) as proxy:
        a, ca = connect(proxy)
        a.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert recv_exactly(a, 14) == b"*1\r\n$4\r\nPING\r\n"
        b, cb = connect(proxy)
        psync = b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n"
        b.sendall(psync)
        recv_exactly(b, len(psync))
        c, cc = connect(proxy)
        c.sendall(b"SYNC\r\n")
        recv_exactly(c, 6)
        assert (ca.is_replication, cb.is_replication, cc.is_replication) == (False, True, True)
        assert proxy.replication_conn() is cc
        assert ca.forwarded(UP) == ca.forwarded(DOWN) == 14
        for s in (a, b, c):
            s.close()


def test_cut_gives_eof_and_reset_gives_rst(echo) -> None:
    with FaultProxy(echo) as proxy:
        a, ca = connect(proxy)
        ca.cut()
        assert a.recv(10) == b""
        b, cb = connect(proxy)
        cb.reset()
        with pytest.raises(ConnectionResetError):
            b.recv(10)
            b.sendall(b"x")  # an RST may show on the next call instead
            b.recv(10)
        a.close()
        b.close()


def test_truncate_forwards_exactly_n_bytes_then_cuts(echo) -> None:
    with FaultProxy(echo) as proxy:
        a, ca = connect(proxy)
        ca.truncate(1000, DOWN)
        a.sendall(b"x" * 5000)
        assert recv_exactly(a, 5000) == b"x" * 1000
        assert ca.closed.wait(5) and ca.how_closed == "truncated down"
        a.close()


def test_stall_holds_bytes_until_resume_and_half_open_stops_one_direction(echo) -> None:
    with FaultProxy(echo) as proxy:
        a, ca = connect(proxy)
        ca.stall()
        a.sendall(b"hello")
        a.settimeout(0.3)
        with pytest.raises(TimeoutError):
            a.recv(10)
        assert ca.forwarded(UP) == 0
        ca.resume()
        a.settimeout(10)
        assert recv_exactly(a, 5) == b"hello"
        ca.half_open(DOWN)  # the echo server gets our bytes, we get nothing back
        a.sendall(b"world")
        ca.wait_forwarded(UP, 10)
        a.settimeout(0.3)
        with pytest.raises(TimeoutError):
            a.recv(10)
        ca.resume(DOWN)
        a.settimeout(10)
        assert recv_exactly(a, 5) == b"world"
        a.close()


def test_delay_and_throttle_still_deliver_every_byte(echo) -> None:
    with FaultProxy(echo) as proxy:
        a, ca = connect(proxy)
        ca.delay(0.05, UP)
        ca.throttle(200_000, DOWN)
        data = bytes(range(256)) * 200
        a.sendall(data)
        assert recv_exactly(a, len(data)) == data
        a.close()


def test_refuse_closes_new_connections(echo) -> None:
    with FaultProxy(echo) as proxy:
        proxy.refuse()
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        assert s.recv(10) == b""
        s.close()
        proxy.refuse(False)
        a, _ = connect(proxy)
        a.sendall(b"ok")
        assert recv_exactly(a, 2) == b"ok"
        a.close()
