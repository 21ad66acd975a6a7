"""The trio shell of the client endpoint on `--port`: sockets, tasks, waits, the reactor.

Everything a client's bytes mean is the sans-I/O session's (`replproxy.session`): this module
only moves bytes between sockets and `ClientSession.feed`, writes what comes back, and does
what a session asks of the event loop (`wait`: a blocked read, a SHUTDOWN; `takeover`: a
replica's SYNC/PSYNC; `closing`). It owns the listening sockets, one task per connection,
the writer task of a connection that receives pushes, and the reactor.

Each connection is one task that reads, feeds and writes its replies in order (pipelining:
a chunk's replies go out in one send). Pushes that arrive on their own (Pub/Sub messages) go
through the session's outbox and a writer task, started at the first push; from then on
replies use the same queue, so order is kept. An exception in one connection never reaches
others.

While a client is idle its task parks it with the `Reactor`, which serves every idle client
from one task, as Redis's event loop does; a client goes back to its own task when a request
must wait, its socket does not take the whole reply, or it closes.

TLS connections (`--tls-port`) take the stream path: the handshake first (`replproxy.tls`),
then reads and writes through the `trio.SSLStream`, never the reactor nor the raw fd (the
bytes on the socket are not the client's). Plain connections keep the fast path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import ssl
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import trio

from replproxy import tls
from replproxy.args import now_ms
from replproxy.session.client import BlockedWait, ClientSession, ShutdownWait
from replproxy.session.commands import shutdown_reply

if TYPE_CHECKING:
    from replproxy.downstream.server import Downstream
    from replproxy.interfaces import Control
    from replproxy.session.hub import SessionHub

log = logging.getLogger("replproxy.server")

RECV_SIZE = 64 * 1024


class Connection:
    """The I/O side of one client: its socket, its task's scope and its writer's state."""

    def __init__(
        self, session: ClientSession, stream: trio.abc.Stream, nursery: trio.Nursery
    ) -> None:
        self.session = session
        self.stream = stream
        # A TLS connection goes through its stream; a plain one straight to its fd.
        self.tls = isinstance(stream, trio.SSLStream)
        self.fd = _socket_of(stream).fileno()
        self.nursery = nursery
        self.scope = nursery.cancel_scope
        # Output: direct sends until the first push, then the session's outbox, drained by a
        # writer task.
        self.writer_active = False
        self.writer_wake: trio.Event | None = None
        self.sending = False
        self.send_done: trio.Event | None = None
        # Left by the reactor for the client's task: output the socket did not take, and
        # whether the peer closed.
        self.unsent = b""
        self.eof = False
        self.wake: trio.Event | None = None
        session.on_output = self._output_queued
        session.on_kill = self.scope.cancel
        session.on_wake = self._woken

    def _output_queued(self) -> None:
        if not self.writer_active:
            self.writer_active = True
            self.nursery.start_soon(self._writer)
        wake = self.writer_wake
        if wake is not None:
            self.writer_wake = None
            wake.set()

    def _woken(self) -> None:
        if self.wake is not None:
            self.wake.set()

    async def send(self, data: bytes) -> None:
        if self.writer_active:
            self.session.requeue(data)
            return
        self.sending = True
        try:
            if self.tls:
                await self.stream.send_all(data)
            else:
                await _send_all(self.fd, data)
            self.session.sent(len(data))
        finally:
            self.sending = False
            done = self.send_done
            if done is not None:
                self.send_done = None
                done.set()

    async def _writer(self) -> None:
        c = self.session
        while True:
            while not c.outbox:
                wake = self.writer_wake = trio.Event()
                await wake.wait()
            while self.sending:  # a direct send started before the first push
                done = self.send_done = trio.Event()
                await done.wait()
            data = b"".join(c.outbox)
            c.outbox.clear()
            if self.tls:
                await self.stream.send_all(data)
            else:
                await _send_all(self.fd, data)
            c.sent(len(data))

    async def receive_tls(self) -> bytes:
        """Up to RECV_SIZE bytes a TLS client sent (b"" when it closed)."""
        try:
            return bytes(await self.stream.receive_some(RECV_SIZE))
        except trio.BrokenResourceError:
            # Most clients close without a TLS close_notify: an end of stream all the same.
            return b""

    async def drain(self) -> None:
        """QUIT after pushes: let the writer send what is queued before the close."""
        with trio.move_on_after(5):
            while self.session.outbox:
                await trio.sleep(0.01)


class RespServer:
    def __init__(
        self,
        hub: SessionHub,
        control: Control,
        downstream: Downstream,
        tls_context: Callable[[], ssl.SSLContext | None] = lambda: None,
    ) -> None:
        self.hub = hub
        self.control = control
        self.downstream = downstream
        self._accepting = trio.CancelScope()
        # Set while `serve` runs (Linux, unless REPLPROXY_NO_REACTOR is set); without it
        # every client task does its own I/O.
        self.reactor: Reactor | None = None
        # The TLS port's context of the moment (it changes when certificates are reloaded).
        self.tls_context = tls_context

    async def handle_tls(self, stream: trio.SocketStream) -> None:
        """A connection to the TLS port: the handshake, then the same service as `handle`."""
        ctx = self.tls_context()
        if ctx is None:
            await stream.aclose()
            return
        peer = _peer(stream)
        try:
            secure = await tls.accept(stream, ctx, "the client")
        except tls.TlsHandshakeError as e:
            log.info("TLS connection from %s refused: %s", peer, e)
            await trio.aclose_forcefully(stream)
            return
        await self.handle(secure)

    async def handle(self, stream: trio.abc.Stream) -> None:
        c = self.hub.open_session(_peer(stream), _local(stream))
        if isinstance(c, bytes):  # refused: maxclients, protected mode
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await stream.send_all(c)
            await stream.aclose()
            return
        try:
            async with stream, trio.open_nursery() as nursery:
                conn = Connection(c, stream, nursery)
                await self._serve(conn)
                nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        except Exception:  # one client's bug never takes the server down
            log.exception("error serving client %s", c.addr)
        finally:
            self.hub.close_session(c)

    async def _serve(self, conn: Connection) -> None:
        c = conn.session
        reactor = self.reactor
        while not c.closing:
            if conn.unsent:
                data, conn.unsent = conn.unsent, b""
                await conn.send(data)
                continue
            if c.wait is not None:
                answer = await self._wait(conn)
                if answer:
                    await conn.send(answer)
                data = b""  # then run the requests pipelined behind it
            elif c.takeover is not None:
                # SYNC/PSYNC: the connection is a replica's from here on (requests pipelined
                # after it are dropped: a replica sends none before the reply). Replicas are
                # not clients.
                hs, req = c.takeover
                self.hub.close_session(c)
                await self.downstream.serve(hs, req, c.addr, conn.stream, c.parser)
                c.closing = True
                return
            elif c.more:
                data = b""  # the rest of a pipeline, now that its first replies went out
            elif reactor is not None and not conn.tls:
                # Idle: the reactor reads and answers this client until a request needs the
                # event loop (or the socket's send buffer is full, or the peer closed).
                await reactor.park(conn)
                if conn.eof:
                    break
                continue
            else:
                data = await conn.receive_tls() if conn.tls else await _receive(conn.fd)
                if not data:
                    break
            payload = c.feed(data, now_ms(), time.monotonic())
            if payload:
                await conn.send(payload)
        if conn.writer_active:
            await conn.drain()

    async def _wait(self, conn: Connection) -> bytes:
        """Resolve what the session waits for; the reply to send for it."""
        c = conn.session
        w = c.wait
        if isinstance(w, ShutdownWait):
            ok = await self.control.shutdown(
                save=w.save, force=w.force, now=w.now, reason=f"SHUTDOWN from {c.addr}"
            )
            return c.finish_wait(shutdown_reply(c, ok))
        assert isinstance(w, BlockedWait)
        while True:
            wake = conn.wake = trio.Event()
            if c.woken or c.unblock is not None:
                wake.set()
            deadline = (
                float("inf")
                if w.deadline is None
                else trio.current_time() + (w.deadline - time.monotonic())
            )
            with trio.move_on_at(deadline):
                await wake.wait()
            conn.wake = None
            answer = c.retry_blocked(now_ms(), timed_out=not wake.is_set())
            if answer is not None:
                return answer

    def run_ready(self, conn: Connection) -> bytes | None:
        """Read what a readable parked client sent and run it: the reply to write (b"" for
        none), or None when the client goes back to its task (end of stream)."""
        c = conn.session
        try:
            data = os.read(conn.fd, RECV_SIZE)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            conn.eof = True
            return None
        return c.feed(data, now_ms(), time.monotonic())

    def deliver(self, conn: Connection, payload: bytes) -> bool:
        """Write a reply `run_ready` made; False to hand the client back to its task."""
        c = conn.session
        if payload:
            if conn.writer_active:
                c.requeue(payload)
            else:
                try:
                    n = os.write(conn.fd, payload)
                except BlockingIOError:
                    n = 0
                except OSError:
                    conn.eof = True
                    return False
                c.sent(n)
                if n < len(payload):
                    conn.unsent = payload[n:]
        return not (
            c.closing or conn.unsent or c.more or c.wait is not None or c.takeover is not None
        )

    async def serve(
        self,
        port: int | None,
        host: str,
        *,
        tls_port: int = 0,
        task_status: trio.TaskStatus[tuple[list[trio.SocketListener], list[trio.SocketListener]]],
    ) -> None:
        """Listen on `port` (None: no plain port) and `tls_port` (0: none); the listeners
        (plain, TLS) are what `task_status` gets."""
        plain = await trio.open_tcp_listeners(port, host=host) if port is not None else []
        secure = await trio.open_tcp_listeners(tls_port, host=host) if tls_port else []
        # Connections live in this nursery, the accept loop in its own scope: stopping
        # accepting (shutdown) closes the listeners and leaves connected clients alone.
        async with trio.open_nursery() as connections:
            if hasattr(select, "epoll") and os.environ.get("REPLPROXY_NO_REACTOR", "") in ("", "0"):
                self.reactor = Reactor(self)
                connections.start_soon(self.reactor.run)
                # A busy script serves the idle clients from inside its run.
                self.hub.scripting.serve_while_busy = self.reactor.serve_round
            connections.start_soon(self._accept, plain, secure, connections)
            connections.start_soon(self._cron)
            task_status.started((plain, secure))

    async def _accept(
        self,
        plain: list[trio.SocketListener],
        secure: list[trio.SocketListener],
        nursery: trio.Nursery,
    ) -> None:
        with self._accepting:
            async with trio.open_nursery() as accepting:
                for handler, listeners in ((self.handle, plain), (self.handle_tls, secure)):
                    if listeners:
                        accepting.start_soon(
                            partial(
                                trio.serve_listeners, handler, listeners, handler_nursery=nursery
                            )
                        )

    async def _cron(self) -> None:
        while True:
            await trio.sleep(1)
            self.hub.cron(time.monotonic())

    def stop_accepting(self) -> None:
        """Close the listening sockets (new clients are refused); connected ones stay."""
        self._accepting.cancel()


class Reactor:
    """Serves every idle client from one task, as Redis's event loop does.

    A client task that waits for its own socket costs a trip through trio's scheduler per
    request (register the fd, sleep, wake, switch): at `-P 1` that was most of a GET. Idle
    clients are parked here instead: one epoll set, registered once per park, and one wait
    for all of them; each readable client is read and run synchronously
    (`RespServer.run_ready`), in the order epoll reports them, and the round's replies are
    written after (`RespServer.deliver`; see `serve_round`). A client
    goes back to its own task when a request must wait (XREAD BLOCK, SHUTDOWN, a
    replica's PSYNC), its socket does not take the whole reply, or it closes; its task owns
    the connection all along, so cancelling it (CLIENT KILL, shutdown) unparks it."""

    def __init__(self, srv: RespServer) -> None:
        self.srv = srv
        self.epoll = select.epoll()
        self.parked: dict[int, tuple[Connection, trio.Event]] = {}
        # Clients run in a round whose reply is not written yet, and the replies of the
        # rounds under way (a busy script's rounds run inside another; see `serve_round`).
        self._pending: set[int] = set()
        self._rounds: list[list[tuple[Connection, trio.Event, bytes]]] = []

    async def park(self, conn: Connection) -> None:
        """Until the reactor hands `conn` back (or the task is cancelled)."""
        done = trio.Event()
        self.parked[conn.fd] = (conn, done)
        self.epoll.register(conn.fd, select.EPOLLIN)
        try:
            await done.wait()
        finally:
            del self.parked[conn.fd]
            # OSError: the fd is gone; ValueError: the reactor stopped and closed its epoll.
            with contextlib.suppress(OSError, ValueError):
                self.epoll.unregister(conn.fd)

    async def run(self) -> None:
        epoll = self.epoll
        try:
            while True:
                await trio.lowlevel.wait_readable(epoll.fileno())
                self.serve_round()
        finally:
            self.srv.reactor = None
            self.srv.hub.scripting.serve_while_busy = None
            epoll.close()

    def serve_round(self, busy: ClientSession | None = None) -> None:
        """Serve every parked client that is readable now, once: each is read and run
        first, then every reply is written (as Redis's beforeSleep does): a reply written
        at once wakes its client, which on a small machine then takes the CPU from the
        clients still to be served.

        `busy`: a Lua script of that client runs past busy-reply-threshold
        (`processEventsWhileBlocked`, from inside the round that runs it): first the replies
        of the rounds it interrupted are written (that function runs beforeSleep too: a
        client answered before the script began must not wait for its end), then the others
        are served (and get -BUSY, or run SCRIPT KILL); the script's own client is not read
        until the script ends (`protectClient`)."""
        run_ready = self.srv.run_ready
        parked = self.parked
        pending = self._pending
        if busy is not None:
            for held in self._rounds:
                self._deliver(held)
        replies: list[tuple[Connection, trio.Event, bytes]] = []
        self._rounds.append(replies)
        try:
            for fd, _ in self.epoll.poll(0):
                entry = parked.get(fd)
                if entry is None or fd in pending:
                    continue
                conn, done = entry
                if done.is_set() or conn.session.closing or conn.session is busy:
                    continue
                pending.add(fd)
                try:
                    payload = run_ready(conn)
                except Exception:  # one client's bug never takes the server down
                    log.exception("error serving client %s", conn.session.addr)
                    conn.session.kill()
                    payload = None
                if payload is None:
                    pending.discard(fd)
                    done.set()
                else:
                    replies.append((conn, done, payload))
        finally:
            self._rounds.pop()
        self._deliver(replies)

    def _deliver(self, replies: list[tuple[Connection, trio.Event, bytes]]) -> None:
        """Write a round's replies (emptying the list: a busy script's round may have
        written them already)."""
        deliver = self.srv.deliver
        pending = self._pending
        held = replies[:]
        replies.clear()
        for conn, done, payload in held:
            pending.discard(conn.fd)
            try:
                keep = deliver(conn, payload)
            except Exception:
                log.exception("error answering client %s", conn.session.addr)
                conn.session.kill()
                keep = False
            if not keep:
                done.set()


# Client I/O goes straight to the socket's file descriptor (trio owns and closes it): a
# SocketStream's receive_some/send_all cost two scheduler round trips each even when the
# data is ready, which was a third of a pipelined GET. Fairness is kept by one checkpoint
# per batch: a client whose data is always ready still yields between batches.


async def _receive(fd: int) -> bytes:
    """Up to RECV_SIZE bytes (b"" at end of stream), waiting for them if needed."""
    try:
        data = os.read(fd, RECV_SIZE)
    except BlockingIOError:
        pass
    else:
        await trio.lowlevel.checkpoint()
        return data
    while True:
        await trio.lowlevel.wait_readable(fd)
        try:
            return os.read(fd, RECV_SIZE)
        except BlockingIOError:
            continue  # a spurious wakeup


async def _send_all(fd: int, data: bytes) -> None:
    """All of `data`, waiting for the socket to drain when its buffer is full."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(fd)
            continue
        view = view[n:]


def _socket_of(stream: trio.abc.Stream) -> trio.socket.SocketType:
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    assert isinstance(stream, trio.SocketStream)
    return stream.socket


def _peer(stream: trio.abc.Stream) -> str:
    try:
        host, port = _socket_of(stream).getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"


def _local(stream: trio.abc.Stream) -> str:
    try:
        host, port = _socket_of(stream).getsockname()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"
