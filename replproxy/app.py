"""The process: one `Relay` wires the parts together and runs them under one nursery.

Owned tasks: the client RESP server (plain and TLS ports), the metrics/health HTTP server, the
signal watcher, and the replication service (the start-up snapshot load, then the upstream
link, the save policy and, with Sentinels, the `+switch-master` watch). Nothing runs outside
this nursery; cancelling it stops everything. SIGHUP reloads the TLS certificates.

`Relay` is the composition root: it builds every part and hands each only what it needs
(the serving gate, the `Control` and `StatusView` interfaces of `replproxy.interfaces`, the
forker); no part holds the relay itself.

Shutdown (SIGTERM/SIGINT or `SHUTDOWN`) is one path, `Relay.shutdown`, in the order Redis's
`prepareForShutdown` and a Kubernetes sidecar need: readiness off, stop replicating (the state
is now final), let downstream replicas drain (a hook, for the downstream server), persist,
stop accepting clients, exit - all within `--shutdown-timeout`. A second signal exits at once.
The drain has its own bound (`DRAIN_SHARE` of the timeout, as Redis's `shutdown-timeout` bounds
its wait for replica ACKs and then proceeds): a replica that never ACKs cannot cost the save.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from functools import partial

import trio

from replproxy.cluster.node import ClusterNode
from replproxy.config import Config, Upstream
from replproxy.disklog import DiskLog, TieredBacklog
from replproxy.downstream.server import Downstream, DownstreamReplica, DownstreamStats
from replproxy.fork import Forker
from replproxy.gate import ServingGate
from replproxy.http import HttpServer
from replproxy.interfaces import LinkClient
from replproxy.keyspace import Keyspace
from replproxy.link.driver import LinkStatus, UpstreamLink
from replproxy.persistence import Persistence
from replproxy.probe import MasterProbe
from replproxy.progress import watch_sync
from replproxy.replication import Replication
from replproxy.sentinel import SentinelClient
from replproxy.server import RespServer
from replproxy.session.hub import SessionHub
from replproxy.startup import listen, startup_line
from replproxy.tls import TlsContexts

log = logging.getLogger("replproxy")

# The part of --shutdown-timeout the shutdown may spend waiting for downstream replicas to
# acknowledge the final offset; the rest is the final save's.
DRAIN_SHARE = 0.5


@dataclass(frozen=True)
class BoundPorts:
    port: int  # the plain client port (0 when disabled: `--port 0` with a `--tls-port`)
    metrics_port: int
    tls_port: int = 0


class Relay:
    def __init__(self, config: Config) -> None:
        config.validate()
        self.config = config
        self.run_id = os.urandom(20).hex()
        self.keyspace = Keyspace()
        backlog = None
        if config.repl_backlog_disk_size > 0:
            backlog = TieredBacklog(
                config.repl_backlog_size,
                DiskLog(
                    config.dir / "backlog",
                    config.repl_backlog_disk_size,
                    config.repl_backlog_disk_ttl,
                ),
            )
        self.replication = Replication(self.keyspace, config.repl_backlog_size, backlog)
        sentinel = config.sentinel
        # Built (and so checked) now: a certificate that does not load stops the start-up.
        self.tls = TlsContexts(
            config.tls, client=config.tls.replication or bool(sentinel and sentinel.tls)
        )
        self.sentinel = (
            SentinelClient(
                sentinel,
                lambda: self.tls.client,
                config.reconnect_backoff_min,
                config.reconnect_backoff_max,
            )
            if sentinel is not None
            else None
        )
        self.link = UpstreamLink(
            config,
            self.replication,
            self.keyspace,
            tls_context=(lambda: self.tls.client) if config.tls.replication else None,
            find_master=self.sentinel.master_address if self.sentinel is not None else None,
        )
        self.forker = Forker()
        self.persistence = Persistence(
            config, self.keyspace, self.replication, self.forker, lambda: self.link.upstream
        )
        self.probe = MasterProbe(self)  # the lag behind the master (metrics, INFO, /readyz)
        self.gate = ServingGate(
            config,
            self.replication,
            self.link.status,
            lambda: self.persistence.loading,
            self.probe.lag,
        )
        self.downstream = Downstream(
            config, self.replication, self.keyspace, self.gate, self.link.status, self.forker
        )
        self.sessions = SessionHub(
            config, self.keyspace, self.gate, control=self, view=self, downstream=self.downstream
        )
        self.replication.snapshot_listeners.append(self.sessions.dialect_changed)
        # The cluster read endpoint (replproxy.cluster), with --cluster-topology.
        self.cluster = (
            ClusterNode(config, self.keyspace, self, self)
            if config.cluster_topology is not None
            else None
        )
        self.sessions.cluster = self.cluster
        # Tracking invalidations, MONITOR and notifications follow the applied stream.
        self.sessions.attach_stream(self.replication, self.link.status)
        self.resp_server = RespServer(
            self.sessions, self, self.downstream, tls_context=lambda: self.tls.server
        )
        self.exit_code = 0  # the process exit status once run() returns
        self.started_at = time.time()
        self.bound_port: int | None = None
        self._nursery: trio.Nursery | None = None
        self._replication_scope: trio.CancelScope | None = None
        self._replication_stopped = trio.Event()
        self._started_up = False  # the start-up snapshot load happened
        self._shutdown_in_progress = False
        self._exit_even_if_save_fails = False  # a signal arrived during a SHUTDOWN
        self._signals = 0

    # ---- StatusView (replproxy.interfaces): what INFO, /metrics and probes read ----

    @property
    def shutting_down(self) -> bool:
        return self.gate.shutting_down

    @property
    def upstream(self) -> Upstream:
        return self.link.upstream

    @property
    def link_status(self) -> LinkStatus:
        return self.link.status

    @property
    def downstream_stats(self) -> DownstreamStats:
        return self.downstream.stats

    @property
    def downstream_replicas(self) -> list[DownstreamReplica]:
        return self.downstream.replicas

    def link_clients(self) -> list[LinkClient]:
        out: list[LinkClient] = []
        link = self.link
        if link.status.up:
            now = time.monotonic()
            out.append(
                LinkClient(
                    key=f"master:{link.status.connect_attempts}",
                    flags="M",
                    addr=link.conn_addr,
                    laddr=link.conn_laddr,
                    ctime=link.conn_since,
                    last_active=link.status.last_io or now,
                    db=self.replication.stream_db,
                    last_cmd="replconf",
                    user="(superuser)",
                    net_in=link.bytes_received,
                    net_out=0,
                    commands=self.replication.stats.commands_applied,
                )
            )
        for r in self.downstream.replicas:
            out.append(
                LinkClient(
                    key=f"replica:{r.id}",
                    flags="S",
                    addr=r.peer,
                    laddr=r.laddr,
                    ctime=r.ctime,
                    last_active=r.ack_time,
                    db=0,
                    last_cmd="replconf",
                    user="default",
                    net_in=0,
                    net_out=0,
                    commands=r.input.acks,
                    out_bytes=r.unsent(self.replication.repl_offset),
                )
            )
        return out

    # ---- Control (replproxy.interfaces): what clients may ask ----

    def kill_link(self, key: str) -> bool:
        kind, _, ident = key.partition(":")
        if kind == "master":
            return ident == str(self.link.status.connect_attempts) and self.link.kill()
        return kind == "replica" and self.downstream.kill(int(ident))

    def repoint(self, host: str, port: int) -> bool:
        return self.link.repoint(host, port)

    def save(self) -> None:
        self.persistence.save()

    def bgsave(self) -> int:
        return self.persistence.bgsave()

    async def run(
        self,
        *,
        task_status: trio.TaskStatus[BoundPorts] = trio.TASK_STATUS_IGNORED,
        handle_signals: bool = True,
    ) -> None:
        cfg = self.config
        cfg.dir.mkdir(parents=True, exist_ok=True)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.downstream.run)
                if self.cluster is not None:  # the topology, before the first client
                    await nursery.start(self.cluster.run)
                http_listeners = await listen(
                    nursery,
                    "--metrics-port",
                    HttpServer(self, self.gate, lambda: self.tls.metrics).serve,
                    cfg.metrics_port,
                    cfg.metrics_bind,
                )
                plain, secure = await listen(
                    nursery,
                    "--port" if not cfg.tls.port else "--port or --tls-port",
                    partial(self.resp_server.serve, tls_port=cfg.tls.port),
                    cfg.port if cfg.plain_port_enabled else None,
                    cfg.bind,
                )
                self.forker.listening([*http_listeners, *plain, *secure])
                if handle_signals:
                    nursery.start_soon(self._watch_signals)
                ports = BoundPorts(_port_of(plain), _port_of(http_listeners), _port_of(secure))
                # INFO's tcp_port: the plain port, else the TLS one (as Redis).
                self.bound_port = ports.port or ports.tls_port
                master = (
                    f"{cfg.sentinel.master_name!r} (from the Sentinels)"
                    if cfg.sentinel
                    else str(cfg.upstream)
                )
                log.info(
                    "%s",
                    startup_line(
                        plain,
                        secure,
                        http_listeners,
                        cfg.tls.metrics,
                        master,
                        self.run_id,
                        cfg.master_offset_probe,
                    ),
                )
                task_status.started(ports)
                nursery.start_soon(self.probe.run)
                nursery.start_soon(watch_sync, self)
                await nursery.start(self._replicate)
        finally:
            self.persistence.kill_child("replproxy is exiting")

    async def _replicate(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """The replication service: the start-up load (once), then the link and `--save`.

        Cancelled by the shutdown path (`_stop_replication`) so the state it persists is final;
        started again if a `SHUTDOWN` fails.
        """
        self._replication_stopped = trio.Event()
        try:
            with trio.CancelScope() as scope:
                self._replication_scope = scope
                task_status.started()
                if not self._started_up:
                    await self.persistence.load_at_startup()
                    self._started_up = True
                    known = self.persistence.known_master
                    if known is not None:
                        self.link.use_master(
                            *known, why="the master followed before the restart (state file)"
                        )
                if self.cluster is not None:  # its shard's primary comes with the topology
                    await self.cluster.placed.wait()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self.link.run)
                    nursery.start_soon(self.persistence.run_save_policy)
                    if self.sentinel is not None:
                        nursery.start_soon(self.sentinel.watch, self.link.repoint)
        finally:
            self._replication_stopped.set()

    async def _stop_replication(self) -> None:
        if self._replication_scope is not None:
            self._replication_scope.cancel()
        await self._replication_stopped.wait()
        # A transaction cut in the middle is dropped; the master re-sends it after a PSYNC.
        self.replication.link_lost()

    async def drain_downstream_replicas(self) -> None:
        """Shutdown hook: let downstream replicas receive everything applied before we exit.

        Waits until every online replica has acknowledged `replication.repl_offset`, for at
        most `DRAIN_SHARE` of --shutdown-timeout (Redis 7 waits `shutdown-timeout` for replica
        ACKs, then logs the lagging ones and goes on to save).
        """
        budget = self.config.shutdown_timeout * DRAIN_SHARE
        with trio.move_on_after(budget):
            await self.downstream.drain()
            return
        lagging = self.downstream.lagging()
        target = self.replication.repl_offset
        for r in lagging:
            log.warning(
                "Lagging replica %s reported offset %d behind master, lag=%d, state=%s.",
                r.name,
                r.input.ack_offset,
                target - r.input.ack_offset,
                r.state.value,
            )
        total = len(self.downstream.replicas)
        log.warning(
            "%d of %d replicas are in sync when shutting down (waited %gs, the rest of "
            "--shutdown-timeout is the save's).",
            total - len(lagging),
            total,
            budget,
        )

    async def shutdown(
        self, *, save: bool | None = None, force: bool = False, now: bool = False, reason: str
    ) -> bool:
        """Stop gracefully: readiness off, stop replicating, drain, persist, stop accepting.

        `save` None follows `--save` (no rules, no shutdown save: Redis's rule); while the
        start-up load runs nothing is saved (it would overwrite the snapshot with a partial
        dataset). Everything is bounded by `--shutdown-timeout`. On success this does not
        return normally: the relay's nursery is cancelled. On failure it returns False and the
        relay keeps running (Redis's `SHUTDOWN`), unless `force` (signals force: a sidecar
        must exit within its grace period; a failed save then exits with status 1).
        """
        if self._shutdown_in_progress:
            if force:
                self._exit_even_if_save_fails = True
            log.warning("%s: a shutdown is already in progress", reason)
            return False
        self._shutdown_in_progress = True
        cfg = self.config
        if save is None:
            save = bool(cfg.save)
        if save and not self._started_up:
            log.warning("the snapshot is still loading: exiting without saving")
            save = False
        log.warning("%s: shutting down%s", reason, "" if save else " without saving")
        self.gate.shutting_down = True  # /readyz answers 503 from now on
        ok = True
        with trio.move_on_after(cfg.shutdown_timeout) as deadline:
            if force:
                self.resp_server.stop_accepting()
            await self._stop_replication()
            if not now:
                await self.drain_downstream_replicas()
            if save:
                ok = await self.persistence.final_save()
        if deadline.cancelled_caught:
            ok = False
            log.error(
                "shutdown did not finish within --shutdown-timeout %gs; the previous snapshot "
                "(if any) is kept",
                cfg.shutdown_timeout,
            )
        if not ok and not (force or self._exit_even_if_save_fails):
            log.warning("Errors trying to shut down: resuming service. Check the logs.")
            self.gate.shutting_down = False
            self._shutdown_in_progress = False
            assert self._nursery is not None
            await self._nursery.start(self._replicate)
            return False
        if not ok:
            self.exit_code = 1
        self.resp_server.stop_accepting()
        log.warning("replproxy is now ready to exit, bye bye...")
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()
        return True

    async def _watch_signals(self) -> None:
        assert self._nursery is not None
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if signum == signal.SIGHUP:
                    # Redis ignores SIGHUP; here it reloads the certificates (Kubernetes
                    # secrets and cert-manager renew the files in place).
                    self.tls.reload()
                    continue
                self._signals += 1
                if self._signals == 1:
                    self._nursery.start_soon(
                        partial(
                            self.shutdown,
                            force=True,
                            reason=f"received {name} (a second signal exits at once)",
                        )
                    )
                    continue
                log.warning("received %s again: exiting now, without waiting", name)
                self.gate.shutting_down = True
                self.exit_code = 1
                self._nursery.cancel_scope.cancel()  # run()'s finally kills a save child
                return


def _port_of(listeners: list[trio.SocketListener]) -> int:
    return int(listeners[0].socket.getsockname()[1]) if listeners else 0
