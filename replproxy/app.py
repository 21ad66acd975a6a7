"""The process: one `Relay` wires the parts together and runs them under one nursery.

Owned tasks: the client RESP server, the metrics/health HTTP server, the signal watcher, and
the replication service (the start-up snapshot load, then the upstream link and the save
policy). Nothing runs outside this nursery; cancelling it stops everything.

`Relay` is the composition root: it builds every part and hands each only what it needs
(the serving gate, the `Control` and `StatusView` interfaces of `replproxy.interfaces`, the
forker); no part holds the relay itself.

Shutdown (SIGTERM/SIGINT or `SHUTDOWN`) is one path, `Relay.shutdown`, in the order Redis's
`prepareForShutdown` and a Kubernetes sidecar need: readiness off, stop replicating (the state
is now final), let downstream replicas drain (a hook, for the downstream server), persist,
stop accepting clients, exit - all within `--shutdown-timeout`. A second signal exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from functools import partial

import trio

from replproxy.config import Config, Upstream
from replproxy.disklog import DiskLog, TieredBacklog
from replproxy.downstream.server import Downstream, DownstreamReplica, DownstreamStats
from replproxy.fork import Forker
from replproxy.gate import ServingGate
from replproxy.http import HttpServer
from replproxy.keyspace import Keyspace
from replproxy.link.driver import LinkStatus, UpstreamLink
from replproxy.persistence import Persistence
from replproxy.probe import MasterProbe
from replproxy.progress import watch_sync
from replproxy.replication import Replication
from replproxy.server import RespServer
from replproxy.session.hub import SessionHub
from replproxy.startup import listen, startup_line

log = logging.getLogger("replproxy")


@dataclass(frozen=True)
class BoundPorts:
    port: int
    metrics_port: int


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
                DiskLog(config.dir / "backlog", config.repl_backlog_disk_size,
                        config.repl_backlog_disk_ttl),
            )
        self.replication = Replication(self.keyspace, config.repl_backlog_size, backlog)
        self.link = UpstreamLink(config, self.replication, self.keyspace)
        self.forker = Forker()
        self.persistence = Persistence(config, self.keyspace, self.replication, self.forker)
        self.probe = MasterProbe(self)  # the lag behind the master (metrics, INFO, /readyz)
        self.gate = ServingGate(
            config, self.replication, self.link.status, lambda: self.persistence.loading,
            self.probe.lag,
        )
        self.downstream = Downstream(
            config, self.replication, self.keyspace, self.gate, self.link.status, self.forker
        )
        self.sessions = SessionHub(
            config, self.keyspace, self.gate, control=self, view=self, downstream=self.downstream
        )
        self.replication.snapshot_listeners.append(self.sessions.dialect_changed)
        self.sessions.attach_stream(self.replication, self.link.status)
        self.resp_server = RespServer(self.sessions, self, self.downstream)
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

    # ---- Control (replproxy.interfaces): what clients may ask ----

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
                http_listeners = await listen(
                    nursery, "--metrics-port", HttpServer(self, self.gate).serve,
                    cfg.metrics_port, cfg.metrics_bind,
                )
                resp_listeners = await listen(
                    nursery, "--port", self.resp_server.serve, cfg.port, cfg.bind
                )
                self.forker.listening([*http_listeners, *resp_listeners])
                if handle_signals:
                    nursery.start_soon(self._watch_signals)
                ports = BoundPorts(_port_of(resp_listeners), _port_of(http_listeners))
                self.bound_port = ports.port
                log.info("%s", startup_line(resp_listeners, http_listeners, str(cfg.upstream),
                                            self.run_id, cfg.master_offset_probe))
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
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self.link.run)
                    nursery.start_soon(self.persistence.run_save_policy)
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

        Waits (within --shutdown-timeout, as Redis 7 waits for replica ACKs) until every
        online replica has acknowledged `replication.repl_offset`.
        """
        await self.downstream.drain()

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
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
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
    return int(listeners[0].socket.getsockname()[1])
