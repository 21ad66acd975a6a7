"""The trio shell of downstream replication: replproxy as the master of its own replicas.

A client on the RESP port that sends `SYNC`/`PSYNC` stops being a client: its session asks
`Downstream.refusal` first, then the client shell (`replproxy.server`) hands the stream to
`Downstream.serve`, which owns it until it closes. This module owns the replica
connections, the snapshots made for them and the counters of what was served. It reads the
replication position from `Replication` (the one owner of replid/offsets/backlog) and never
changes it; the decisions and byte framing are `replproxy.downstream.psync`'s (sans-I/O).

One replica, one task (plus a reader for its ACKs), reading the shared backlog by offset:

- partial resync: `+CONTINUE`, then every backlog byte from the asked offset, then the live
  stream as `Replication` appends it (a listener wakes the senders; only whole transactions
  are ever appended, so a replica never sees half of one);
- full sync: the newest usable snapshot - the kept upstream snapshot (`upstream.rdb` +
  `.json`) or the last one made here - when its history is ours and the backlog still holds
  every byte after its offset; otherwise a fresh one of replproxy's own keyspace, written by
  a forked child at the current offset (the copy-on-write image is exactly the state at
  `repl_offset`: the stream applies whole transactions between two trio checkpoints, and the
  fork happens between two). Replicas asking while one is being made share it; the first
  waits `--repl-diskless-sync-delay` for company. `\\n` every second while they wait. Then
  `+FULLRESYNC <replid> <offset>`, the RDB (`$<len>` or, for `capa eof`, `$EOF:<mark>` ...
  `<mark>` with the stream held until the first ACK), and the stream from `offset + 1`.

A replica is dropped - never slowing the others - when its unsent bytes pass the hard output
limit (at once) or the soft one for its seconds, when it falls out of the backlog, when no ACK
came for `--repl-timeout`, or when the history changes under it (an upstream full resync, or
a new replid after an upstream failover: it reconnects and learns the new id by `+CONTINUE`).
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import trio

from replproxy.downstream.backoff import FullSyncBackoff
from replproxy.downstream.psync import (
    FILTER_NEEDS_EOF,
    NOMASTERLINK,
    Continue,
    History,
    RdbFilter,
    ReplicaHandshake,
    ReplicaInput,
    SyncRequest,
    bulk_header,
    decide,
    eof_header,
    fullresync_line,
    new_eof_mark,
)
from replproxy.link.protocol import LinkState
from replproxy.persistence import keyspace_events
from replproxy.rdb.model import Event, Function
from replproxy.rdb.writer import write_rdb
from replproxy.resp import reply
from replproxy.resp.request import RequestError, RequestParser

if TYPE_CHECKING:
    from replproxy.config import Config
    from replproxy.fork import Forker
    from replproxy.gate import ServingGate
    from replproxy.keyspace import Keyspace
    from replproxy.link.driver import LinkStatus
    from replproxy.replication import Replication

log = logging.getLogger("replproxy.downstream")

RECV_SIZE = 16 * 1024
SEND_CHUNK = 1024 * 1024  # stream bytes per write: bounds one replica's turn
FILE_CHUNK = 1024 * 1024
KEEPALIVE_PERIOD = 1.0  # `\n` to replicas waiting for a snapshot (replicationCron)
CRON_PERIOD = 1.0
CHILD_POLL = 0.02
_VERSION_AUX = (b"redis-ver", b"valkey-ver")


_IO_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class ReplicaState(enum.Enum):
    """The INFO `slaveN:state=` words (`SLAVE_STATE_*`)."""

    WAIT_BGSAVE = "wait_bgsave"
    SEND_BULK = "send_bulk"
    ONLINE = "online"


class ReplicaDropped(Exception):
    """This replica connection ends; the reason is logged."""


@dataclass(eq=False)
class DownstreamReplica:
    """One replica connection: what INFO shows and what the limits are checked against."""

    id: int
    peer: str  # "ip:port" of the socket
    hs: ReplicaHandshake
    psync: bool  # False for an old `SYNC` replica: it sends no ACKs
    epoch: int  # Replication.history_epoch its position belongs to
    input: ReplicaInput
    state: ReplicaState = ReplicaState.WAIT_BGSAVE
    # Offset of the last stream byte written to its socket; None before +FULLRESYNC.
    sent_offset: int | None = None
    ack_time: float = field(default_factory=time.monotonic)
    soft_since: float | None = None
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    first_ack: trio.Event = field(default_factory=trio.Event)
    drop_reason: str | None = None
    full_sync: bool = False  # a snapshot was sent: its outcome feeds the backoff
    laddr: str = "?"  # our end of the connection (CLIENT LIST)
    ctime: float = field(default_factory=time.monotonic)

    @property
    def ip(self) -> str:
        return self.hs.ip_address or self.peer.rpartition(":")[0]

    @property
    def name(self) -> str:
        """As `replicationGetSlaveName`: ip:listening-port."""
        port = self.hs.listening_port
        return f"{self.ip}:{port}" if port else f"{self.ip}:<unknown-replica-port>"

    def unsent(self, repl_offset: int) -> int:
        return 0 if self.sent_offset is None else repl_offset - self.sent_offset

    def drop(self, reason: str) -> None:
        if self.drop_reason is None:
            self.drop_reason = reason
        self.scope.cancel()


@dataclass(frozen=True)
class Snapshot:
    """An RDB file holding the stream up to `offset` of the history of `epoch`."""

    path: Path
    replid: str
    offset: int
    epoch: int
    origin: str  # "upstream" or "fresh"


@dataclass(eq=False)
class _Job:
    """A fresh snapshot being made; every replica waiting on it shares it."""

    filter: RdbFilter | None
    done: trio.Event = field(default_factory=trio.Event)
    result: Snapshot | None = None
    error: str | None = None


@dataclass
class DownstreamStats:
    """What replproxy served, as a Redis master counts it (INFO stats `sync_*`)."""

    sync_full: int = 0
    sync_partial_ok: int = 0
    sync_partial_err: int = 0
    net_output_bytes: int = 0
    snapshots_made: int = 0  # fresh snapshots forked for full syncs
    # Full syncs served from a snapshot that already existed when the replica asked (the
    # kept upstream one, or an earlier fresh one)...
    snapshots_reused: int = 0
    # ...and full syncs that waited for a fresh one (made for them, maybe shared).
    snapshot_waits: int = 0
    # Full syncs held back because the same replica failed the previous ones
    # (`replproxy.downstream.backoff`).
    full_sync_backoffs: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


# ---- the component ----


class Downstream:
    def __init__(
        self,
        config: Config,
        replication: Replication,
        keyspace: Keyspace,
        gate: ServingGate,
        link_status: LinkStatus,
        forker: Forker,
    ) -> None:
        self.config = config
        self.replication = replication
        self.keyspace = keyspace
        self.gate = gate
        self.link_status = link_status
        self.forker = forker
        self.replicas: list[DownstreamReplica] = []
        self.stats = DownstreamStats()
        self._next_id = 1
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._jobs: dict[RdbFilter | None, _Job] = {}
        self._made: dict[RdbFilter | None, Snapshot] = {}
        self.replication.listeners.append(self._on_stream)
        self.backoff = FullSyncBackoff(config.repl_full_sync_backoff_max)
        self._backoff_logged: dict[str, float] = {}

    @property
    def hard_limit(self) -> int:
        """Redis raises a replica's hard limit to the backlog size (`checkClientOutputBuffer`)."""
        hard = self.config.client_output_buffer_limit_replica.hard
        return max(hard, self.replication.backlog.size) if hard else 0

    # ---- lifecycle ----

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own snapshot jobs and the replica cron (timeouts, soft limit) until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                while True:
                    self._cron(time.monotonic())
                    await trio.sleep(CRON_PERIOD)
        finally:
            self._nursery = None
            for snap in self._made.values():
                with contextlib.suppress(OSError):
                    snap.path.unlink()

    def lagging(self) -> list[DownstreamReplica]:
        """Online replicas that have not acknowledged everything applied yet."""
        target = self.replication.repl_offset
        return [
            r
            for r in self.replicas
            if r.state is ReplicaState.ONLINE and r.psync and r.input.ack_offset < target
        ]

    async def drain(self) -> None:
        """Wait until every online replica acknowledged everything applied (shutdown). The
        caller bounds the wait: a replica that never ACKs would hold it forever."""
        while self.lagging():
            await trio.sleep(0.05)

    def refusal(self, hs: ReplicaHandshake) -> bytes | None:
        """The error a SYNC/PSYNC gets before anything else happens, in `syncCommand`'s order."""
        if not self.gate.serves_psync():
            # No position in the master's history yet: nothing a replica could continue from.
            return NOMASTERLINK
        if hs.rdb_filter is not None and not hs.capa_eof:
            return FILTER_NEEDS_EOF
        return None

    def kill(self, replica_id: int) -> bool:
        """CLIENT KILL of a downstream replica: dropped, as Redis frees a replica client."""
        for r in self.replicas:
            if r.id == replica_id:
                self._drop(r, "killed by CLIENT KILL", "killed")
                return True
        return False

    # ---- the stream's listener (synchronous: runs inside Replication.process) ----

    def _on_stream(self) -> None:
        if not self.replicas:
            return  # only replicas' senders wait on `_wake`: nothing to do per batch
        self._wake.set()
        self._wake = trio.Event()
        hard = self.hard_limit
        if not hard:
            return
        offset = self.replication.repl_offset
        for r in self.replicas:
            if r.unsent(offset) > hard:
                self._drop(r, "overcoming of output buffer hard limit", "output_limit")

    def _drop(self, r: DownstreamReplica, reason: str, kind: str) -> None:
        if r.drop_reason is None:
            self.stats.dropped[kind] = self.stats.dropped.get(kind, 0) + 1
        r.drop(reason)

    def _cron(self, now: float) -> None:
        limit = self.config.client_output_buffer_limit_replica
        offset = self.replication.repl_offset
        timeout = self.config.repl_timeout
        for r in list(self.replicas):
            if limit.soft and r.unsent(offset) > limit.soft:
                if r.soft_since is None:
                    r.soft_since = now
                elif now - r.soft_since > limit.soft_seconds:
                    self._drop(r, "overcoming of output buffer soft limit", "output_limit")
            else:
                r.soft_since = None
            if (
                r.state is ReplicaState.ONLINE
                and r.psync
                and not r.hs.rdb_only
                and now - r.ack_time > timeout
            ):
                self._drop(r, "Disconnecting timedout replica (streaming sync)", "timeout")

    # ---- one replica ----

    async def serve(
        self,
        hs: ReplicaHandshake,
        req: SyncRequest,
        peer: str,
        stream: trio.abc.Stream,
        parser: RequestParser,
    ) -> None:
        """Serve a replica on `stream` until it closes or is dropped. Never raises for it."""
        r = DownstreamReplica(
            self._next_id,
            peer,
            hs,
            req.psync,
            self.replication.history_epoch,
            ReplicaInput(parser),
        )
        self._next_id += 1
        # The socket under a plain stream, or under a TLS stream's transport.
        sock = getattr(stream, "socket", None) or getattr(
            getattr(stream, "transport_stream", None), "socket", None
        )
        if sock is not None:
            with contextlib.suppress(OSError):
                host, port = sock.getsockname()[:2]
                r.laddr = f"{host}:{port}"
        self.replicas.append(r)
        log.info("Replica %s asks for synchronization", r.name)
        try:
            with r.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read_acks, r, stream)
                    try:
                        await self._sync(r, stream, req)
                    except ReplicaDropped as e:
                        r.drop(str(e))
                    except _IO_ERRORS as e:
                        r.drop(f"I/O error: {e}")
                    nursery.cancel_scope.cancel()
        finally:
            self.replicas.remove(r)
            if r.full_sync and not r.hs.rdb_only:
                self.backoff.ended(r.name, time.monotonic(), loaded=r.input.acks > 0)
            log.warning("Connection with replica %s lost: %s", r.name, r.drop_reason or "done")

    async def _read_acks(self, r: DownstreamReplica, stream: trio.abc.Stream) -> None:
        while True:
            try:
                data = await stream.receive_some(RECV_SIZE)
            except _IO_ERRORS as e:
                r.drop(f"I/O error: {e}")
                return
            if not data:
                r.drop("connection closed by replica")
                return
            try:
                acks = r.input.receive_data(bytes(data))  # TLS gives bytearrays
            except RequestError as e:
                r.drop(f"protocol error from replica: {e}")
                return
            if acks:
                r.ack_time = time.monotonic()
                r.first_ack.set()

    async def _sync(self, r: DownstreamReplica, stream: trio.abc.Stream, req: SyncRequest) -> None:
        repl = self.replication
        decision = None
        if not r.hs.rdb_only and r.hs.rdb_filter is None:
            decision = decide(req, History.of(repl), r.hs.capa_psync2)
        if isinstance(decision, Continue):
            self.stats.sync_partial_ok += 1
            r.state, r.sent_offset, r.ack_time = (
                ReplicaState.ONLINE,
                decision.offset - 1,
                (time.monotonic()),
            )
            log.info(
                "Partial resynchronization request from %s accepted. Sending %d bytes of "
                "backlog starting from offset %d.",
                r.name,
                repl.repl_offset - r.sent_offset,
                decision.offset,
            )
            await stream.send_all(decision.line)
            await self._stream(r, stream)
            return
        if decision is not None:
            if decision.counts_as_error:
                self.stats.sync_partial_err += 1
            log.info("%s (replica %s)", decision.message, r.name)
        self.stats.sync_full += 1
        await self._full_sync(r, stream, req)

    async def _full_sync(
        self, r: DownstreamReplica, stream: trio.abc.Stream, req: SyncRequest
    ) -> None:
        repl = self.replication
        await self._backoff(r, stream)
        r.full_sync = True
        snap, f = await self._snapshot_for(r, stream)
        with f:
            if snap.epoch != repl.history_epoch:
                raise ReplicaDropped("the history changed while the snapshot was made")
            r.epoch = snap.epoch
            size = os.fstat(f.fileno()).st_size
            if req.psync:
                await stream.send_all(fullresync_line(repl.replid, snap.offset))
            r.sent_offset = snap.offset
            r.state = ReplicaState.SEND_BULK
            mark = new_eof_mark() if r.hs.capa_eof else None
            log.info(
                "Starting full sync of replica %s from the %s snapshot at offset %d (%d bytes, %s)",
                r.name,
                snap.origin,
                snap.offset,
                size,
                "$EOF" if mark else "$len",
            )
            await stream.send_all(eof_header(mark) if mark else bulk_header(size))
            while chunk := f.read(FILE_CHUNK):
                # A replica that stops reading mid-snapshot is dropped after repl-timeout
                # without progress, as replicationCron does for SEND_BULK replicas.
                with trio.move_on_after(self.config.repl_timeout) as cs:
                    await stream.send_all(chunk)
                if cs.cancelled_caught:
                    self._drop(r, "Disconnecting timedout replica (full sync)", "timeout")
                    raise ReplicaDropped("no progress sending the snapshot")
                self.stats.net_output_bytes += len(chunk)
            if mark:
                await stream.send_all(mark)
        if r.hs.rdb_only:
            r.drop("RDB transfer completed, rdb only replica disconnected")
            return
        r.state, r.ack_time = ReplicaState.ONLINE, time.monotonic()
        if mark:
            # `$EOF:` has no length: the replica cannot tell the stream from the RDB's tail,
            # so nothing more goes out before its first ACK (repl_start_cmd_stream_on_ack).
            # An old-style SYNC client that asked for `capa eof` waits the same way:
            # redis-cli --replica sends `REPLCONF ACK 0` once it found the mark, and a stream
            # byte sent before would land in the read that holds the mark, which it then
            # never finds.
            with trio.move_on_after(self.config.repl_timeout):
                await r.first_ack.wait()
            if not r.first_ack.is_set():
                raise ReplicaDropped("no ACK after the snapshot")
        log.info("Synchronization with replica %s succeeded", r.name)
        await self._stream(r, stream)

    async def _backoff(self, r: DownstreamReplica, stream: trio.abc.Stream) -> None:
        """Hold a full sync back while the replica's previous ones failed (see
        `replproxy.downstream.backoff`); `\n` keeps it waiting as for a snapshot."""
        now = time.monotonic()
        wait = self.backoff.delay(r.name, now)
        if wait <= 0:
            return
        self.stats.full_sync_backoffs += 1
        last = self._backoff_logged.get(r.name)
        if last is None or now - last >= self.backoff.cap:  # once per interval
            self._backoff_logged[r.name] = now
            log.warning(
                "Replica %s failed its last %d full syncs (it never acknowledged the stream): "
                "the next one waits %.1fs (backoff, up to --repl-full-sync-backoff-max %gs)",
                r.name,
                self.backoff.failures(r.name),
                wait,
                self.backoff.cap,
            )
        deadline = now + wait
        while (left := deadline - time.monotonic()) > 0:
            await trio.sleep(min(left, KEEPALIVE_PERIOD))
            await stream.send_all(b"\n")

    async def _stream(self, r: DownstreamReplica, stream: trio.abc.Stream) -> None:
        """Send the stream from `sent_offset + 1` forever, as the backlog grows."""
        repl, backlog = self.replication, self.replication.backlog
        assert r.sent_offset is not None
        while True:
            if r.epoch != repl.history_epoch:
                self._drop(r, "the upstream history changed (full resync or new replid)", "history")
                return
            nxt = r.sent_offset + 1
            if nxt > repl.repl_offset:
                await self._wake.wait()
                continue
            if not backlog.covers(nxt):
                self._drop(r, f"offset {nxt} is no longer in the backlog", "backlog")
                return
            data = backlog.read_some(nxt, SEND_CHUNK)
            await stream.send_all(data)
            r.sent_offset += len(data)
            self.stats.net_output_bytes += len(data)

    # ---- snapshots ----

    async def _snapshot_for(
        self, r: DownstreamReplica, stream: trio.abc.Stream
    ) -> tuple[Snapshot, IO[bytes]]:
        """A usable snapshot, opened; makes (or joins) a fresh one when none is usable."""
        filt = r.hs.rdb_filter
        # An rdb-only replica (`redis-cli --rdb`) gets no stream after the snapshot: only one
        # at the current offset will do, never an older one plus the backlog.
        at = self.replication.repl_offset if r.hs.rdb_only else None
        waited = False
        while True:
            found = self._usable(filt, at)
            if found is not None:
                if waited:
                    self.stats.snapshot_waits += 1
                else:
                    self.stats.snapshots_reused += 1
                return found
            waited = True
            job = self._jobs.get(filt)
            if job is None:
                if self._nursery is None:
                    raise ReplicaDropped("replproxy is shutting down")
                job = self._jobs[filt] = _Job(filt)
                self._nursery.start_soon(self._make_snapshot, job)
            while not job.done.is_set():
                with trio.move_on_after(KEEPALIVE_PERIOD):
                    await job.done.wait()
                if not job.done.is_set():
                    await stream.send_all(b"\n")
            if job.error is not None:
                await stream.send_all(reply.error(b"ERR BGSAVE failed, replication can't continue"))
                raise ReplicaDropped(f"snapshot failed: {job.error}")
            if at is not None and job.result is not None:
                at = job.result.offset  # the one made for it, even if the stream moved on

    def _covers(self, snap: Snapshot) -> bool:
        repl = self.replication
        return snap.epoch == repl.history_epoch and repl.backlog.covers(snap.offset + 1)

    def _usable(
        self, filt: RdbFilter | None, at: int | None = None
    ) -> tuple[Snapshot, IO[bytes]] | None:
        """The newest snapshot the backlog can continue from (or exactly at offset `at`)."""
        candidates = []
        made = self._made.get(filt)
        if made is not None and self._covers(made):
            candidates.append(made)
        if filt is None:
            upstream = self._upstream_snapshot()
            if upstream is not None and self._covers(upstream):
                candidates.append(upstream)
        if at is not None:
            candidates = [s for s in candidates if s.offset == at]
        for snap in sorted(candidates, key=lambda s: -s.offset):
            try:
                f = open(snap.path, "rb")  # noqa: SIM115 - the caller closes it
            except OSError:
                continue
            if snap.origin == "upstream" and not self._upstream_pairs(f):
                f.close()
                continue
            return snap, f
        return None

    def _upstream_snapshot(self) -> Snapshot | None:
        """The snapshot the link kept, when its `.json` names a position in our history."""
        if self.link_status.state in (LinkState.TRANSFER, LinkState.LOADING):
            return None  # a new upstream.rdb may already be in place, its .json not yet
        path = self.config.snapshot_path
        try:
            meta = json.loads(path.with_name(path.name + ".json").read_text())
            replid, offset = str(meta["replid"]), int(meta["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        repl = self.replication
        if replid != repl.replid and not (
            replid == repl.replid2 and offset + 1 <= repl.second_replid_offset
        ):
            return None
        return Snapshot(path, replid, offset, repl.history_epoch, "upstream")

    def _upstream_pairs(self, f: IO[bytes]) -> bool:
        """The opened upstream.rdb is the one its .json describes (written after the rename)."""
        path = self.config.snapshot_path
        try:
            meta_path = path.with_name(path.name + ".json")
            meta = json.loads(meta_path.read_text())
            st = os.fstat(f.fileno())
            return bool(
                meta.get("size") == st.st_size and meta_path.stat().st_mtime_ns >= st.st_mtime_ns
            )
        except (OSError, ValueError):
            return False

    async def _make_snapshot(self, job: _Job) -> None:
        """Fork a child writing the keyspace at the current offset; share the result."""
        try:
            if self.config.repl_diskless_sync_delay:
                await trio.sleep(self.config.repl_diskless_sync_delay)
            job.result = await self._fork_and_write(job.filter)
            old = self._made.get(job.filter)
            self._made[job.filter] = job.result
            if old is not None and old.path != job.result.path:
                with contextlib.suppress(OSError):
                    old.path.unlink()  # replicas still reading it keep their open file
            self.stats.snapshots_made += 1
        except Exception as e:  # a failed snapshot fails its waiters, not the relay
            log.exception("snapshot for downstream replicas failed")
            job.error = str(e) or type(e).__name__
        finally:
            del self._jobs[job.filter]
            job.done.set()

    async def _fork_and_write(self, filt: RdbFilter | None) -> Snapshot:
        repl, ks = self.replication, self.keyspace
        # Captured between two checkpoints, with the fork: the image and the position agree.
        replid, offset, stream_db, epoch = (
            repl.replid,
            repl.repl_offset,
            repl.stream_db,
            repl.history_epoch,
        )
        name = (
            "downstream.rdb"
            if filt is None
            else ("downstream-functions.rdb" if filt.functions else "downstream-empty.rdb")
        )
        path = self.config.dir / name
        version, valkey = ks.dialect.rdb_version, ks.dialect.valkey
        aux = {k: ks.loaded_aux[k] for k in _VERSION_AUX if k in ks.loaded_aux}
        if ks.unsupported_keys and filt is None:
            log.warning(
                "%d keys could not be kept up to date (unsupported commands): the snapshot "
                "for downstream replicas holds their last known values",
                len(ks.unsupported_keys),
            )

        def work() -> dict[str, object]:
            tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
            with open(tmp, "wb", buffering=1 << 20) as f:
                write_rdb(
                    f,
                    _events(ks, filt),
                    version,
                    replid,
                    offset,
                    stream_db,
                    valkey=valkey,
                    aux=aux,
                )
            os.replace(tmp, path)
            return {}

        child = self.forker.fork(work)
        log.info(
            "Starting BGSAVE for downstream SYNC (pid %d, offset %d, RDB version %d)",
            child.pid,
            offset,
            version,
        )
        try:
            result = await child.wait()  # killed if the wait is cancelled
        finally:
            if child.result is None or not child.result.ok:
                with contextlib.suppress(OSError):
                    path.with_name(f"{path.name}.tmp-{child.pid}").unlink()
        if not result.ok:
            raise RuntimeError(f"snapshot child failed: {result.error}")
        log.info(
            "Snapshot for downstream replicas done: %s, %d bytes in %.2fs",
            path,
            path.stat().st_size,
            result.seconds,
        )
        return Snapshot(path, replid, offset, epoch, "fresh")


def _events(ks: Keyspace, filt: RdbFilter | None) -> Iterator[Event]:
    events = keyspace_events(ks)
    if filt is None:
        return events
    # `rdb-filter-only`: never the keys; the functions only when asked for.
    return (e for e in events if filt.functions and isinstance(e, Function))
