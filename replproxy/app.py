"""The process: one `Relay` wires the parts together and runs them under one nursery.

Owned tasks: the upstream link, the client RESP server, the metrics/health HTTP server and
the signal watcher. Nothing runs outside this nursery; cancelling it stops everything.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass

import trio

from replproxy.config import Config
from replproxy.http import HttpServer
from replproxy.keyspace import Keyspace
from replproxy.keyspace.digest import DigestStyle, digest_style_for
from replproxy.link.driver import UpstreamLink
from replproxy.replication import Replication
from replproxy.server import RespServer

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
        self.replication = Replication(self.keyspace, config.repl_backlog_size)
        self.link = UpstreamLink(config, self.replication, self.keyspace)
        self.shutting_down = False
        self.started_at = time.time()
        self.bound_port: int | None = None
        # Client-side counters for INFO (owned here, bumped by the RESP server).
        self.connected_clients = 0
        self.total_connections = 0
        self.total_commands = 0

    async def run(
        self,
        *,
        task_status: trio.TaskStatus[BoundPorts] = trio.TASK_STATUS_IGNORED,
        handle_signals: bool = True,
    ) -> None:
        cfg = self.config
        cfg.dir.mkdir(parents=True, exist_ok=True)
        async with trio.open_nursery() as nursery:
            http_listeners = await nursery.start(
                HttpServer(self).serve, cfg.metrics_port, cfg.metrics_bind
            )
            resp_listeners = await nursery.start(RespServer(self).serve, cfg.port, cfg.bind)
            await nursery.start(self.link.run)
            if handle_signals:
                nursery.start_soon(self._watch_signals, nursery.cancel_scope)
            ports = BoundPorts(_port_of(resp_listeners), _port_of(http_listeners))
            self.bound_port = ports.port
            log.info(
                "replproxy %s serving clients on %s:%d, metrics on %s:%d, master %s",
                self.run_id[:8],
                cfg.bind,
                ports.port,
                cfg.metrics_bind,
                ports.metrics_port,
                cfg.upstream,
            )
            task_status.started(ports)

    def digest_style(self) -> DigestStyle:
        """How DEBUG DIGEST formats scores: as the upstream's version does (from its RDB)."""
        aux = self.keyspace.loaded_aux
        if b"valkey-ver" in aux:
            name, raw = "valkey", aux[b"valkey-ver"]
        else:
            name, raw = "redis", aux.get(b"redis-ver", b"7.2.0")
        try:
            parts = [int(x) for x in raw.decode().split(".")[:3]]
            version = [*parts, 0, 0, 0][:3]
        except ValueError:
            version = [7, 2, 0]
        return digest_style_for(name, (version[0], version[1], version[2]))

    async def _watch_signals(self, scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("received %s: shutting down", signal.Signals(signum).name)
                self.shutting_down = True
                scope.cancel()
                return


def _port_of(listeners: list[trio.SocketListener]) -> int:
    return int(listeners[0].socket.getsockname()[1])
