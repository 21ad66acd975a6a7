"""The trio shell around `ReplicaLink`: sockets, timeouts, the snapshot file, reconnects.

This module owns the upstream connection's lifetime and nothing else. It moves bytes between
the socket and the sans-I/O `ReplicaLink`, writes the received snapshot to `--dir`, loads it
into the dataset, hands stream commands to `Replication` (the owner of offsets), and sends
ACKs. Every wait has a `repl-timeout` deadline, as `replicationCron` enforces one on every
phase; a failed connection is retried with capped exponential backoff, and each retry asks
for a partial resync when the replication state allows one.

With TLS (`rediss://` or `--tls-replication yes`) the socket is wrapped with the client
context of `replproxy.tls` before the handshake; a failed TLS handshake is a failed attempt
like any other (logged with its reason, retried with backoff). With Sentinels, `find_master`
(`replproxy.sentinel`) is asked where the master is before each attempt that follows a
failure; a re-point (`REPLICAOF`, `+switch-master`) is trusted for the attempt it starts.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import logging
import math
import os
import random
import shutil
import ssl
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from replproxy import tls
from replproxy.config import Config, Upstream
from replproxy.keyspace import Keyspace, KeyspaceLoader
from replproxy.link.protocol import (
    Commands,
    FullResync,
    LinkConfig,
    LinkError,
    LinkLog,
    LinkState,
    PartialResync,
    ReplicaLink,
    SnapshotBegin,
    SnapshotData,
    SnapshotEnd,
)
from replproxy.rdb.model import RDBError
from replproxy.replication import Replication
from replproxy.resp.quote import quote_master_bytes

log = logging.getLogger("replproxy.link")

RECV_SIZE = 256 * 1024
LOAD_CHUNK = 1024 * 1024
ACK_PERIOD = 1.0
LOADING_KEEPALIVE_PERIOD = 1.0


class LinkFailure(Exception):
    """This connection attempt is over; the reason is logged and the link retries."""


@dataclass
class LinkStatus:
    """What INFO, ROLE, /metrics and the health checks read about the upstream link."""

    state: LinkState = LinkState.CONNECT
    initial_sync_done: bool = False
    sync_in_progress: bool = False
    last_io: float | None = None  # trio/monotonic time of the last byte from the master
    down_since: float | None = field(default_factory=time.monotonic)
    up_since: float | None = None  # monotonic time the link last came up (INFO, Redis 8)
    transfer_size: int | None = None  # -1/None for a diskless transfer of unknown size
    transfer_read: int = 0
    transfer_last_io: float | None = None
    load_read: int = 0  # bytes of the received snapshot loaded so far (progress.py)
    last_error: str | None = None
    connect_attempts: int = 0
    master_offset_seen: int = 0  # the highest master offset we know of (read offset)
    # The master's address as this link's socket sees it (ip:port): MONITOR shows the
    # master's commands with it, as a replica shows its master client.
    master_addr: str = ""

    @property
    def up(self) -> bool:
        """`master_link_status:up`: Redis's REPL_STATE_CONNECTED, and only that."""
        return self.state is LinkState.CONNECTED


class Backoff:
    """Capped exponential backoff with jitter, reset once a sync succeeds."""

    def __init__(self, initial: float, cap: float) -> None:
        self.initial, self.cap = initial, cap
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.initial * math.pow(2, self.attempt))
        self.attempt += 1
        return delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self.attempt = 0


def _addresses(stream: trio.abc.Stream) -> tuple[str, str]:
    """(peer, local) "ip:port" of a TCP stream."""
    sock = getattr(stream, "socket", None)
    try:
        peer, local = sock.getpeername()[:2], sock.getsockname()[:2]  # type: ignore[union-attr]
    except (AttributeError, OSError):
        return "?", "?"
    return f"{peer[0]}:{peer[1]}", f"{local[0]}:{local[1]}"


def _leaf(exc: BaseException) -> BaseException:
    """The first real exception inside (possibly nested) exception groups from nurseries."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def snapshot_space_error(size: int, free: int, where: Path) -> str | None:
    """Why a snapshot of `size` bytes cannot be received with `free` bytes free, or None.

    The master announces the length before the payload (`$<len>`): a bogus or hostile length
    (100 GB from a small master) must not fill the disk byte by byte until writes fail. The
    previous snapshot stays in place until the new one is whole, so the new one needs its own
    room.
    """
    if size <= free:
        return None
    return (
        f"the master announced a snapshot of {size} bytes but only {free} bytes are free in "
        f"{where}: not receiving it (free some space or point --dir elsewhere)"
    )


def incoming_path(snapshot: Path) -> Path:
    """Where the snapshot being received is written until it is whole."""
    return snapshot.with_name(snapshot.name + ".incoming")


def snapshot_room(snapshot: Path) -> int:
    """The bytes a snapshot received into `snapshot` can take: the free space there, plus what
    an `.incoming` file left by a failed transfer (or a crash) holds, which the transfer
    truncates before writing. Left uncounted, a leftover that filled the disk would refuse
    every later transfer, even after a restart."""
    free = shutil.disk_usage(snapshot.parent).free
    try:
        st = incoming_path(snapshot).lstat()
    except FileNotFoundError:
        return free
    return free + st.st_size if stat.S_ISREG(st.st_mode) else free


def _peer_id(stream: trio.SocketStream) -> str:
    """`getClientPeerId`: ip:port, an IPv6 address in brackets."""
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?:0"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def snapshot_meta_path(snapshot: Path) -> Path:
    return snapshot.with_name(snapshot.name + ".json")


class UpstreamLink:
    """Replicates from the configured master for as long as it runs."""

    def __init__(
        self,
        config: Config,
        replication: Replication,
        keyspace: Keyspace,
        tls_context: Callable[[], ssl.SSLContext | None] | None = None,
        find_master: Callable[[], Awaitable[tuple[str, int] | None]] | None = None,
    ) -> None:
        self.config = config
        # The TLS client context of the moment (certificates reload on SIGHUP), or None.
        self._tls_context = tls_context
        # Where the master is now (Sentinel), asked before an attempt that follows a failure.
        self.find_master = find_master
        self.replication = replication
        self.keyspace = keyspace
        self.status = LinkStatus()
        self.backoff = Backoff(config.reconnect_backoff_min, config.reconnect_backoff_max)
        self._send_lock = trio.StrictFIFOLock()
        self._stream: trio.abc.Stream | None = None
        self._link: ReplicaLink | None = None
        self._pending_full: FullResync | None = None
        # The snapshot loaded while it is received (`_LiveLoad`), if that went well.
        self._live: _LiveLoad | None = None
        self.bytes_received = 0
        # The master we replicate from: the configured one until `REPLICAOF` re-points us
        # (a failover), keeping the credentials.
        self.upstream: Upstream = config.upstream
        self._session_scope: trio.CancelScope | None = None
        self._repointed = trio.Event()
        self._killed = False
        # The connection as CLIENT LIST shows it (addresses, when it was made).
        self.conn_addr = self.conn_laddr = ""
        self.conn_since = 0.0

    # ---- lifecycle ----

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        ask = True
        while True:
            self.status.connect_attempts += 1
            self._repointed = trio.Event()
            try:
                with trio.CancelScope() as self._session_scope:
                    await self._session(ask)
                reason = (
                    "re-pointed to a new master"
                    if self._session_scope.cancelled_caught
                    else "connection closed by master"
                )
                if self._killed:
                    reason = "killed by CLIENT KILL"
            except Exception as exc:
                err = _leaf(exc)
                if isinstance(err, LinkFailure):
                    reason = str(err)
                elif isinstance(err, (OSError, trio.BrokenResourceError, trio.ClosedResourceError)):
                    reason = f"I/O error: {err}"
                else:
                    log.exception("unexpected error on the link with the master")
                    reason = f"internal error: {err!r}"
            self._killed = False
            self._mark_down(reason)
            delay = 0.0 if self._repointed.is_set() else self.backoff.next_delay()
            log.warning(
                "link with master %s down: %s; retrying in %.2fs",
                self.upstream,
                reason,
                delay,
            )
            with trio.move_on_after(delay):
                await self._repointed.wait()  # a REPLICAOF cuts the wait short
            # Right after a re-point the new address is the news: Sentinels may not all know it
            # yet. After a failure, ask them again.
            ask = not self._repointed.is_set()

    def repoint(self, host: str, port: int) -> bool:
        """Replicate from another master from now on (`REPLICAOF host port` after a failover).

        The next connection asks `PSYNC <our replid> <offset+1>`: a promoted replica of the old
        master knows our history through its replid2 and answers `+CONTINUE <its new id>`.
        Returns False when that is already the master.
        """
        if (host, port) == (self.upstream.host, self.upstream.port):
            return False
        old = self.upstream
        self.upstream = Upstream(host, port, old.username, old.password)
        log.info("re-pointed from master %s to %s", old, self.upstream)
        self.backoff.reset()
        self._repointed.set()
        if self._session_scope is not None:
            self._session_scope.cancel()
        return True

    def use_master(self, host: str, port: int, why: str) -> None:
        """Connect to `host:port` from the next attempt on (a restart's or a Sentinel's
        answer), keeping the credentials; the current connection, if any, is left alone."""
        if (host, port) == (self.upstream.host, self.upstream.port):
            return
        old = self.upstream
        self.upstream = Upstream(host, port, old.username, old.password)
        was = str(old) if old.host else "unknown"
        log.info("master is now %s (was %s): %s", self.upstream, was, why)

    def kill(self) -> bool:
        """CLIENT KILL TYPE master: drop the connection; it reconnects (PSYNC), as a
        replica whose master client was killed does."""
        if self._stream is None or self._session_scope is None:
            return False
        self._killed = True
        self._session_scope.cancel()
        return True

    def _mark_down(self, reason: str) -> None:
        st = self.status
        if st.up or st.down_since is None:
            st.down_since = time.monotonic()
        st.sync_in_progress = False
        st.state = LinkState.CONNECT
        st.last_error = reason
        self.replication.link_lost()
        self._stream = None
        self._link = None

    # ---- one connection ----

    async def _session(self, ask: bool = True) -> None:
        cfg = self.config
        self.status.state = LinkState.CONNECT
        if self.find_master is not None and ask:
            found = await self.find_master()
            if found is not None:
                self.use_master(*found, why="as the Sentinels say")
            elif not self.upstream.host:
                raise LinkFailure("no Sentinel could tell where the master is")
        up = self.upstream
        log.info("connecting to master %s", up)
        stream: trio.abc.Stream
        with trio.move_on_after(cfg.repl_timeout) as cs:
            tcp = await trio.open_tcp_stream(up.host, up.port)
        if cs.cancelled_caught:
            raise LinkFailure("Timeout connecting to the MASTER")
        stream = tcp
        # MONITOR shows the master's commands with this address (the TCP peer, TLS or not).
        self.status.master_addr = _peer_id(tcp)
        ctx = self._tls_context() if self._tls_context is not None else None
        if ctx is not None:
            try:
                stream = await tls.connect(stream, ctx, up.host, "the master", cfg.repl_timeout)
            except tls.TlsHandshakeError as e:
                await trio.aclose_forcefully(stream)
                raise LinkFailure(f"TLS handshake with the master failed: {e}") from e
        async with stream:
            replid, offset = self.replication.psync_args()
            link = ReplicaLink(
                LinkConfig(cfg.listening_port, cfg.replica_announce_ip, up.username, up.password),
                replid,
                offset,
            )
            self._stream, self._link = stream, link
            self.conn_addr, self.conn_laddr = _addresses(stream)
            self.conn_since = time.monotonic()
            link.initiate()
            await self._flush()
            log.info("master %s: connected; PSYNC %s %d", up, replid, offset)
            await self._handshake_and_transfer(link, stream)
            if link.state is LinkState.LOADING:
                await self._load_snapshot(link)
                await self._flush()
            self._online()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ack_loop, link)
                await self._stream_loop(link, stream)
                nursery.cancel_scope.cancel()

    async def _flush(self) -> None:
        link, stream = self._link, self._stream
        if link is None or stream is None:
            return
        async with self._send_lock:
            data = link.data_to_send()
            if data:
                await stream.send_all(data)

    async def _receive(self, stream: trio.abc.Stream, what: str) -> bytes:
        with trio.move_on_after(self.config.repl_timeout) as cs:
            data = await stream.receive_some(RECV_SIZE)
        if cs.cancelled_caught:
            raise LinkFailure(
                f"Timeout {what} (no data from master for {self.config.repl_timeout}s)"
            )
        if not data:
            raise LinkFailure("connection closed by master")
        now = time.monotonic()
        self.status.last_io = now
        self.bytes_received += len(data)
        self.replication.stats.net_repl_input_bytes += len(data)
        return bytes(data)

    async def _handshake_and_transfer(self, link: ReplicaLink, stream: trio.abc.Stream) -> None:
        snapshot: _SnapshotFile | None = None
        try:
            while link.state not in (LinkState.LOADING, LinkState.CONNECTED, LinkState.CLOSED):
                self.status.state = link.state
                what = (
                    "receiving bulk data from MASTER"
                    if link.state is LinkState.TRANSFER
                    else "during the handshake with MASTER"
                )
                link.receive_data(await self._receive(stream, what))
                for ev in link.next_events():
                    if isinstance(ev, LinkLog):
                        log.warning("master %s: %s", self.upstream, ev.message)
                    elif isinstance(ev, LinkError):
                        self.status.last_error = ev.reason
                        raise LinkFailure(ev.reason)
                    elif isinstance(ev, FullResync):
                        self._pending_full = ev
                        self.status.sync_in_progress = True
                        log.info(
                            "master %s: full resync from replid %s offset %d",
                            self.upstream,
                            ev.replid,
                            ev.offset,
                        )
                    elif isinstance(ev, SnapshotBegin):
                        where = self.config.snapshot_path.parent
                        where.mkdir(parents=True, exist_ok=True)
                        if ev.size is not None and (
                            why := snapshot_space_error(
                                ev.size, snapshot_room(self.config.snapshot_path), where
                            )
                        ):
                            raise LinkFailure(why)
                        snapshot = _SnapshotFile(self.config.snapshot_path)
                        self._live = _LiveLoad(self.keyspace.new_loader(), trio.current_time())
                        self.status.transfer_size = ev.size
                        self.status.transfer_read = 0
                        log.info(
                            "master %s: receiving snapshot (%s)",
                            self.upstream,
                            f"{ev.size} bytes" if ev.size is not None else "diskless",
                        )
                    elif isinstance(ev, SnapshotData):
                        assert snapshot is not None
                        snapshot.write(ev.data)
                        if self._live is not None:
                            self._live.feed(ev.data)
                            self.status.load_read = self._live.fed
                        self.status.transfer_read += len(ev.data)
                        self.status.transfer_last_io = time.monotonic()
                    elif isinstance(ev, SnapshotEnd):
                        assert snapshot is not None
                        await snapshot.finish()
                        snapshot = None
                        if self._live is not None:
                            self._live.finish()
                    elif isinstance(ev, PartialResync):
                        changed = self.replication.partial_resync(ev.replid)
                        log.info(
                            "master %s: partial resync accepted (+CONTINUE%s)%s",
                            self.upstream,
                            f" {ev.replid}" if ev.replid else "",
                            "; replid changed, previous id kept as replid2" if changed else "",
                        )
                    elif isinstance(ev, Commands):
                        # Stream bytes that arrived with +CONTINUE.
                        await self._process(link, ev)
                await self._flush()
        finally:
            if snapshot is not None:
                snapshot.discard()
                self._live = None

    async def _load_snapshot(self, link: ReplicaLink) -> None:
        """Load the received snapshot into a fresh dataset, swapping it in only when whole:
        the one loaded while it was received when that went well, else from its file (which
        then also reports what is wrong with it)."""
        full = self._pending_full
        assert full is not None, "a snapshot always follows +FULLRESYNC (or the SYNC fallback)"
        path = self.config.snapshot_path
        self.status.state = LinkState.LOADING
        live, self._live = self._live, None
        if live is not None and live.done and live.loader is not None:
            self._commit_snapshot(link, live.loader, full, live.started)
            return
        loader = self.keyspace.new_loader()
        started = last_keepalive = trio.current_time()
        self.status.load_read = 0
        try:
            with open(path, "rb") as f:
                while True:
                    # The loader's sink-mode reader stores keys straight into the new dicts.
                    chunk = f.read(LOAD_CHUNK)
                    if not chunk:
                        loader.feed_eof()
                        break
                    loader.feed(chunk)
                    self.status.load_read += len(chunk)
                    now = trio.current_time()
                    if now - last_keepalive >= LOADING_KEEPALIVE_PERIOD:
                        link.send_loading_keepalive()
                        await self._flush()
                        last_keepalive = now
                    await trio.sleep(0)  # let clients, metrics and health checks run
        except (RDBError, ValueError) as e:
            path.unlink(missing_ok=True)
            why = quote_master_bytes(str(e), 300, quotes=False)  # may quote the snapshot's bytes
            raise LinkFailure(f"snapshot from master refused, will ask again: {why}") from e
        self._commit_snapshot(link, loader, full, started)

    def _commit_snapshot(
        self, link: ReplicaLink, loader: KeyspaceLoader, full: FullResync, started: float
    ) -> None:
        path = self.config.snapshot_path
        self.replication.load_full_sync(loader, full.replid, full.offset)
        # The dataset's containers (millions after a big snapshot) hold no reference cycle
        # and live until the next full sync: out of the cyclic collector's generations, no
        # collection re-scans them (a full one took ~0.1 s per 200k small collections,
        # a pause of the stream each time). Objects frozen this way are still freed by
        # reference counting when the dataset is replaced.
        gc.freeze()
        self.status.initial_sync_done = True
        _write_meta(path, full.replid, full.offset, loader.stream_db)
        log.info(
            "master %s: snapshot loaded: %d keys in %.2fs; replid %s offset %d",
            self.upstream,
            loader.keys,
            trio.current_time() - started,
            full.replid,
            full.offset,
        )
        link.snapshot_loaded()

    def _online(self) -> None:
        st = self.status
        st.down_since = None
        st.up_since = time.monotonic()
        st.sync_in_progress = False
        st.state = LinkState.CONNECTED
        st.last_error = None
        st.initial_sync_done = True
        self.backoff.reset()
        log.info(
            "master %s: link up, streaming from offset %d",
            self.upstream,
            self.replication.repl_offset,
        )

    async def _stream_loop(self, link: ReplicaLink, stream: trio.abc.Stream) -> None:
        while True:
            data = await self._receive(stream, "MASTER timeout: no data nor PING received")
            link.receive_data(data)
            for ev in link.next_events():
                if isinstance(ev, Commands):
                    await self._process(link, ev)
                elif isinstance(ev, LinkError):
                    raise LinkFailure(ev.reason)
            await self._flush()

    async def _process(self, link: ReplicaLink, ev: Commands) -> None:
        result = self.replication.process(ev.commands)
        self.status.master_offset_seen = self.replication.read_offset
        for offset in result.acks:
            link.send_ack(offset)
        if result.acks:
            await self._flush()

    async def _ack_loop(self, link: ReplicaLink) -> None:
        while True:
            link.send_ack(self.replication.repl_offset)
            await self._flush()
            await trio.sleep(ACK_PERIOD)


class _LiveLoad:
    """The snapshot loaded as its bytes arrive (a disk or a diskless transfer alike): the
    load overlaps the transfer instead of following it, as Redis's diskless load does. Any
    error stops it quietly; the file, written all the same, is then loaded after the transfer
    and reports the error (the exact text, as before)."""

    def __init__(self, loader: KeyspaceLoader, started: float) -> None:
        self.loader: KeyspaceLoader | None = loader
        self.started = started
        self.fed = 0
        self.done = False

    def feed(self, data: bytes) -> None:
        if self.loader is None:
            return
        try:
            self.loader.feed(data)
        except (RDBError, ValueError):
            self.loader = None
            return
        self.fed += len(data)

    def finish(self) -> None:
        if self.loader is None:
            return
        try:
            self.loader.feed_eof()
        except (RDBError, ValueError):
            self.loader = None
            return
        self.done = True


class _SnapshotFile:
    """The snapshot being received: written to a temp file, renamed into place when whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = incoming_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.tmp, "wb")  # noqa: SIM115 - closed by finish()/discard()

    def write(self, data: bytes) -> None:
        # Small sequential writes into the page cache: cheaper than a thread hop per chunk.
        try:
            self.f.write(data)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise LinkFailure(
                    f"no space left in {self.path.parent} for the snapshot from master "
                    f"after {self.f.tell()} bytes: {e.strerror}"
                ) from e
            raise

    async def finish(self) -> None:
        self.f.flush()
        await trio.to_thread.run_sync(os.fsync, self.f.fileno())
        self.f.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        """Drop the partial snapshot (Redis's replicationAbortSyncTransfer unlinks it). Closing
        flushes what the buffer holds, which fails again on a full disk: the file goes all
        the same, or it keeps the space it took and the next transfer finds the disk full."""
        with contextlib.suppress(OSError):
            self.f.close()
        try:
            self.tmp.unlink(missing_ok=True)
        except OSError as e:  # the transfer's own error is the one to report
            log.warning("could not remove the partial snapshot %s: %s", self.tmp, e)


def _write_meta(snapshot: Path, replid: str | None, offset: int, stream_db: int) -> None:
    meta = {
        "replid": replid,
        "offset": offset,
        "stream_db": stream_db,
        "size": snapshot.stat().st_size,
        "received_at": time.time(),
    }
    tmp = snapshot_meta_path(snapshot).with_suffix(".tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, snapshot_meta_path(snapshot))
