"""`replproxy cluster`: one relay process per shard of a Redis/Valkey Cluster, supervised.

The supervisor owns the relay processes, the shard names (a shard keeps its name, hence its
ports and its `--dir`, across failovers and restarts: `match_shards`), the topology file
the relays read, and its own HTTP endpoint (`/livez`, `/readyz`, `/metrics`, `/topology`).
It never touches a relay's data: each relay is a `replproxy run` process (Python runs one
core per process) that replicates its shard's primary like any relay, with its own
persistence, backlog, downstream replicas and metrics.

The loop, once a second:

1. When a refresh is due (every `--refresh-interval`, or at once when a relay asks through
   the notify socket: it answered a -MOVED, its link dropped, its master's replid
   changed), read the topology from the cluster (`discovery.discover`).
2. Name the shards: a shard continues the one it shares its primary or nodes with;
   a new one takes the lowest free index. A shard missing for `--shard-removal-grace`
   seconds loses its relay (a view that briefly lacks a shard stops nothing).
3. Probe each relay's `/startupz`: a relay is `online` once it has synced, `loading`
   before, `fail` while its process is down; clients are only sent to online relays.
4. When what clients would see changed (`same_routing`), write the topology file (atomic
   rename, generation + 1), then start the relays of new shards. A relay re-points itself
   to its shard's new primary when it reads the new file.

Relay processes are restarted when they exit, after a capped exponential backoff. SIGTERM
or SIGINT stops the loop, sends SIGTERM to every relay (each saves and drains as `replproxy
run` does), waits up to `--shutdown-timeout`, kills what is left; a second signal kills at
once. Exit status: 0 when every relay exited 0, else 1; 2 for a configuration error.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from replproxy.cluster.discovery import DiscoveryError, discover
from replproxy.cluster.http_client import http_get
from replproxy.cluster.topology import (
    Node,
    Shard,
    Topology,
    TopologyError,
    former_primaries,
    from_json,
    match_shards,
    relay_node_id,
    same_routing,
    to_json,
)
from replproxy.config import ConfigError, Upstream

log = logging.getLogger("replproxy.cluster")

TICK = 1.0
MIN_REFRESH_GAP = 0.5  # notifications never make refreshes closer than this
PROBE_TIMEOUT = 2.0
RESTART_BACKOFF_MIN = 0.5
RESTART_RESET_AFTER = 60.0  # a relay that ran this long restarts at the minimum backoff
KILL_GRACE = 5.0  # after --shutdown-timeout, how long a SIGKILLed relay may take to go
EXTERNAL_DOWN_AFTER = 3  # failed probes in a row that mark a relay elsewhere down


@dataclass(frozen=True)
class PortPlan:
    """Ports of the relays: `base + step * index`, or the listed ones by index (step 0: the
    same port everywhere, for relays on hosts of their own)."""

    base: int | None = None
    listed: tuple[int, ...] = ()
    step: int = 1

    def port(self, index: int) -> int | None:
        if self.listed:
            return self.listed[index] if index < len(self.listed) else None
        assert self.base is not None
        p = self.base + self.step * index
        return p if p < 65536 else None

    @classmethod
    def parse(cls, base: int | None, listed: str | None, what: str, step: int = 1) -> PortPlan:
        if listed:
            try:
                ports = tuple(int(p) for p in listed.replace(",", " ").split())
            except ValueError:
                raise ConfigError(f"--{what}s must be port numbers, got {listed!r}") from None
            if not ports or any(not 0 < p < 65536 for p in ports):
                raise ConfigError(f"--{what}s must be port numbers 1..65535, got {listed!r}")
            return cls(listed=ports)
        if base is None or not 0 < base < 65536:
            raise ConfigError(f"--{what}-base must be 1..65535, got {base!r}")
        if step < 0:
            raise ConfigError(f"--port-step must be >= 0, got {step}")
        return cls(base=base, step=step)


@dataclass(frozen=True)
class SupervisorConfig:
    seeds: tuple[Upstream, ...]
    dir: Path
    ports: PortPlan
    metrics_ports: PortPlan
    bind: str = "127.0.0.1"
    metrics_bind: str = "0.0.0.0"
    announce_host: str = "127.0.0.1"
    http_port: int = 9480
    http_bind: str = "0.0.0.0"
    refresh_interval: float = 10.0
    restart_backoff_max: float = 30.0
    removal_grace: float = 30.0
    shutdown_timeout: float = 15.0
    relay_args: tuple[str, ...] = ()
    log_level: str = "info"
    log_format: str = "text"
    python: str = sys.executable
    # False: the relays run elsewhere (a StatefulSet, one pod per shard); the supervisor
    # only publishes the topology and probes them at the announced addresses.
    spawn: bool = True

    @property
    def topology_path(self) -> Path:
        return self.dir / "topology.json"

    def validate(self) -> None:
        if not self.seeds:
            raise ConfigError("give at least one --seed redis://host:port")
        if self.refresh_interval <= 0 or self.removal_grace < 0 or self.shutdown_timeout < 0:
            raise ConfigError("--refresh-interval must be > 0, the grace and timeout >= 0")
        if self.restart_backoff_max < RESTART_BACKOFF_MIN:
            raise ConfigError(f"--restart-backoff-max must be >= {RESTART_BACKOFF_MIN}")
        if self.announce_host in ("0.0.0.0", "::", ""):
            raise ConfigError(
                "--announce-host: the address clients reach the relays at "
                "(the bind address is a wildcard)"
            )
        if (
            not self.spawn
            and "{shard}" not in self.announce_host
            and self.ports.step == 0
            and not self.ports.listed
        ):
            raise ConfigError(
                "with --relays external on one port, --announce-host must name each relay's "
                "host with {shard} (e.g. replproxy-{shard}.replproxy)"
            )

    def announce(self, shard: str) -> str:
        """Where clients reach the relay of `shard` (`{shard}` in --announce-host replaced)."""
        return self.announce_host.replace("{shard}", shard)


# --- naming shards (pure) ---------------------------------------------------------------------


def name_shards(
    known: Sequence[Shard], current: Sequence[Shard], reserved: Sequence[str] = ()
) -> list[str]:
    """A name for each current shard: the name of the known shard it continues, else the
    lowest index not in use (`reserved`: names of relays still running); "" for a former
    primary in transition (no relay for it)."""
    mapping = match_shards(known, current)
    names = [known[mapping[i]].name if i in mapping else "" for i in range(len(current))]
    skip = former_primaries(known, current, mapping)
    used = {n for n in names if n} | set(reserved)
    index = 0
    for i, n in enumerate(names):
        if n or i in skip:
            continue
        while str(index) in used:
            index += 1
        names[i] = str(index)
        used.add(names[i])
    return names


# --- one relay process ------------------------------------------------------------------------


@dataclass
class RelayProcess:
    name: str
    port: int
    metrics_port: int
    state: str = "starting"  # starting | online | down | stopped
    restarts: int = 0
    last_exit: int | None = None
    removed_since: float | None = None  # trio time its shard went missing
    probe_failures: int = 0
    stopping: bool = False
    proc: trio.Process | None = None
    wake: trio.Event = field(default_factory=trio.Event)
    done: trio.Event = field(default_factory=trio.Event)

    @property
    def index(self) -> int:
        return int(self.name)


class Supervisor:
    def __init__(self, config: SupervisorConfig) -> None:
        config.validate()
        self.config = config
        self.relays: dict[str, RelayProcess] = {}
        # The last shards seen, by name (a shard missing from the cluster stays here during
        # the removal grace, so it keeps its name if it comes back).
        self.known: dict[str, Shard] = {}
        self.discovered: Topology | None = None
        self.published: Topology | None = None
        self.generation = 0
        self.exit_code = 0
        self.refreshes_ok = 0
        self.refresh_errors = 0
        self.last_refresh_ok: float | None = None  # trio time
        self.notifications: dict[str, int] = {}
        self._portless: set[str] = set()  # shards logged as having no relay port
        self._next_refresh = 0.0
        self._last_refresh = -MIN_REFRESH_GAP
        self._wake = trio.Event()
        self._stopping = False
        self.notify_port = 0
        self.http_port: int | None = None
        self._nursery: trio.Nursery | None = None

    # ---- lifecycle ----

    async def run(
        self,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
        handle_signals: bool = True,
    ) -> None:
        cfg = self.config
        cfg.dir.mkdir(parents=True, exist_ok=True)
        self._load_previous()
        notify = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        # Relays of ours ask on loopback; relays elsewhere on the endpoint's port, in UDP.
        await notify.bind(("127.0.0.1", 0) if cfg.spawn else (cfg.http_bind, cfg.http_port))
        self.notify_port = notify.getsockname()[1]
        async with trio.open_nursery() as relays:
            self._nursery = relays
            async with trio.open_nursery() as service:
                listeners = await service.start(self._serve_http)
                self.http_port = listeners[0].socket.getsockname()[1]
                service.start_soon(self._notifications, notify)
                if handle_signals:
                    service.start_soon(self._watch_signals, service.cancel_scope)
                log.info(
                    "replproxy cluster: seeds %s, topology %s, endpoint :%d",
                    ", ".join(map(str, cfg.seeds)),
                    cfg.topology_path,
                    self.http_port,
                )
                task_status.started()
                await self._loop()
                service.cancel_scope.cancel()
            await self._stop_all()
        notify.close()
        codes = [r.last_exit for r in self.relays.values()]
        if any(c not in (0, None) for c in codes):
            self.exit_code = max(self.exit_code, 1)
        log.warning(
            "replproxy cluster: all relays stopped (exit codes %s), bye",
            {n: r.last_exit for n, r in sorted(self.relays.items())},
        )

    def stop(self) -> None:
        """Begin the shutdown: the loop ends, then every relay gets SIGTERM."""
        self._stopping = True
        self._wake.set()

    async def _watch_signals(self, scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            first = True
            async for signum in signals:
                name = signal.Signals(signum).name
                if first:
                    log.warning(
                        "received %s: stopping every relay (a second signal kills them)", name
                    )
                    first = False
                    self.stop()
                    continue
                log.warning("received %s again: killing every relay", name)
                self.exit_code = 1
                for r in self.relays.values():
                    if r.proc is not None and r.proc.returncode is None:
                        r.proc.kill()
                return

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self.tick()
            except Exception:  # a bug in one round must not stop every relay: log, go on
                log.exception("error in the supervisor's loop")
            with trio.move_on_after(TICK):
                await self._wake.wait()
            self._wake = trio.Event()

    def request_refresh(self, reason: str) -> None:
        self.notifications[reason] = self.notifications.get(reason, 0) + 1
        self._next_refresh = min(self._next_refresh, self._last_refresh + MIN_REFRESH_GAP)
        self._wake.set()

    async def tick(self) -> None:
        """One round: refresh when due, probe the relays, publish, start new relays."""
        now = trio.current_time()
        if now >= self._next_refresh:
            await self._refresh()
        await self._probe_all()
        self._publish()
        self._start_new()

    # ---- the cluster ----

    def _candidates(self) -> list[Upstream]:
        """Nodes to ask, best first: known primaries, their replicas, then the seeds (with
        the seeds' credentials)."""
        seed = self.config.seeds[0]
        out: list[Upstream] = []
        shards = self.discovered.shards if self.discovered else ()
        for s in shards:
            if not s.primary.failed:
                out.append(Upstream(s.primary.ip, s.primary.port, seed.username, seed.password))
        for s in shards:
            for r in s.replicas:
                if not r.failed:
                    out.append(Upstream(r.ip, r.port, seed.username, seed.password))
        return [*out, *self.config.seeds]

    async def _refresh(self) -> None:
        now = trio.current_time()
        self._last_refresh = now
        self._next_refresh = now + self.config.refresh_interval
        try:
            topology = await discover(self._candidates())
        except DiscoveryError as e:
            self.refresh_errors += 1
            log.warning("cluster topology refresh failed: %s", e)
            return
        self.refreshes_ok += 1
        self.last_refresh_ok = now
        names = name_shards(list(self.known.values()), topology.shards, [*self.relays, *self.known])
        shards = tuple(replace(s, name=n) for s, n in zip(topology.shards, names))
        self.discovered = replace(topology, shards=shards)
        present = set(names)
        gone: list[str] = []
        for s in shards:
            if s.name:
                self.known[s.name] = s
        for name, r in self.relays.items():
            if name in present:
                r.removed_since = None
            elif r.removed_since is None:
                r.removed_since = now
                log.warning(
                    "shard %s is not in the cluster's topology any more; its relay "
                    "stops in %gs unless it comes back",
                    name,
                    self.config.removal_grace,
                )
            elif now - r.removed_since >= self.config.removal_grace and not r.stopping:
                log.warning("shard %s is gone: stopping its relay", name)
                self._stop_relay(r)
                if not self.config.spawn:
                    gone.append(name)
        for name in gone:
            del self.relays[name]
        for name in list(self.known):
            if name not in present and name not in self.relays:
                del self.known[name]

    def _load_previous(self) -> None:
        """Shard names from the last run's topology file: each shard gets its own ports and
        directory (and so its own replication state) back."""
        try:
            previous = from_json(self.config.topology_path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, TopologyError) as e:
            log.warning("ignoring the previous topology %s: %s", self.config.topology_path, e)
            return
        self.generation = previous.generation
        for s in previous.shards:
            if s.name.isdigit():
                self.known[s.name] = s

    # ---- what the relays read ----

    def relay_node(self, shard: Shard) -> Node | None:
        """The relay of `shard` as clients see it (None: no port left for one). A relay not
        started yet is listed as loading, so that it finds itself when it starts."""
        if not shard.name:
            return None
        port = self.config.ports.port(int(shard.name))
        if port is None or self.config.metrics_ports.port(int(shard.name)) is None:
            return None
        r = self.relays.get(shard.name)
        state = r.state if r is not None else "starting"
        online = state == "online"
        down = state in ("down", "stopped")
        host = self.config.announce(shard.name)
        return Node(
            id=relay_node_id(host, port),
            ip=host,
            port=port,
            cport=0,
            health="online" if online else "fail" if down else "loading",
            flags=("fail",) if down else (),
            config_epoch=shard.primary.config_epoch,
            repl_offset=shard.primary.repl_offset if online else 0,
        )

    def compose(self) -> Topology | None:
        """The topology the relays serve: the cluster's, each shard with its relay."""
        t = self.discovered
        if t is None:
            return None
        return replace(t, shards=tuple(replace(s, relay=self.relay_node(s)) for s in t.shards))

    def _port(self, name: str) -> int:
        p = self.config.ports.port(int(name))
        assert p is not None
        return p

    def _metrics_port(self, name: str) -> int:
        p = self.config.metrics_ports.port(int(name))
        assert p is not None
        return p

    def _publish(self) -> None:
        t = self.compose()
        if t is None or (self.published is not None and same_routing(t, self.published)):
            return
        self.generation += 1
        t = replace(t, generation=self.generation)
        path = self.config.topology_path
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(to_json(t))
        os.replace(tmp, path)
        self.published = t
        log.info(
            "topology generation %d: %s",
            t.generation,
            "; ".join(
                f"shard {s.name}: {s.primary.ip}:{s.primary.port} {s.slot_count} slots"
                + (f", relay :{s.relay.port} {s.relay.health}" if s.relay else ", no relay")
                for s in t.shards
            ),
        )

    # ---- relay processes ----

    def _start_new(self) -> None:
        if self._stopping or self.discovered is None or self._nursery is None:
            return
        for s in self.discovered.shards:
            if not s.name or s.name in self.relays:
                continue
            port = self.config.ports.port(int(s.name))
            mport = self.config.metrics_ports.port(int(s.name))
            if port is None or mport is None:
                if s.name not in self._portless:
                    log.error(
                        "no port left for the relay of shard %s (--ports/"
                        "--metrics-ports list fewer): its reads go to its primary",
                        s.name,
                    )
                    self._portless.add(s.name)
                continue
            r = RelayProcess(s.name, port, mport)
            self.relays[s.name] = r
            if self.config.spawn:
                self._nursery.start_soon(self._run_relay, r)
            else:
                r.done.set()  # nothing to stop: probed at its address until its shard goes

    def _command(self, r: RelayProcess) -> list[str]:
        cfg = self.config
        return [
            cfg.python,
            "-m",
            "replproxy",
            "run",
            "--port",
            str(r.port),
            "--bind",
            cfg.bind,
            "--metrics-port",
            str(r.metrics_port),
            "--metrics-bind",
            cfg.metrics_bind,
            "--dir",
            str(cfg.dir / f"shard-{r.name}"),
            "--cluster-topology",
            str(cfg.topology_path),
            "--cluster-shard",
            r.name,
            "--cluster-notify",
            f"127.0.0.1:{self.notify_port}",
            "--log-level",
            cfg.log_level,
            "--log-format",
            cfg.log_format,
            *cfg.relay_args,
        ]

    def _upstream_url(self, name: str) -> str:
        """The shard's current primary, with the seeds' credentials: passed in the
        environment, so a password never shows in a process list."""
        s = self.known[name]
        seed = self.config.seeds[0]
        cred = ""
        if seed.password is not None:
            cred = f"{quote(seed.username or '', safe='')}:{quote(seed.password, safe='')}@"
        return f"redis://{cred}{s.primary.ip}:{s.primary.port}"

    async def _run_relay(self, r: RelayProcess) -> None:
        backoff = RESTART_BACKOFF_MIN
        try:
            while not r.stopping:
                env = {**os.environ, "REPLPROXY_UPSTREAM": self._upstream_url(r.name)}
                started = trio.current_time()
                r.state = "starting"
                r.proc = await trio.lowlevel.open_process(self._command(r), env=env)
                log.info("relay of shard %s started (pid %d, port %d)", r.name, r.proc.pid, r.port)
                r.last_exit = await r.proc.wait()
                if r.stopping:
                    break
                r.state = "down"
                r.restarts += 1
                if trio.current_time() - started > RESTART_RESET_AFTER:
                    backoff = RESTART_BACKOFF_MIN
                log.warning(
                    "relay of shard %s exited with status %s; restarting in %.1fs",
                    r.name,
                    r.last_exit,
                    backoff,
                )
                self._wake.set()
                with trio.move_on_after(backoff):
                    await r.wake.wait()
                r.wake = trio.Event()
                backoff = min(backoff * 2, self.config.restart_backoff_max)
        finally:
            with trio.CancelScope(shield=True):
                await self._terminate(r)
            r.state = "stopped"
            r.done.set()
            if r.removed_since is not None and not self._stopping:
                # Its shard left the cluster: the name (ports, directory) is free again.
                self.relays.pop(r.name, None)
                self.known.pop(r.name, None)

    async def _terminate(self, r: RelayProcess) -> None:
        proc = r.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(self.config.shutdown_timeout):
            r.last_exit = await proc.wait()
            return
        log.error(
            "relay of shard %s did not stop within %gs: killing it",
            r.name,
            self.config.shutdown_timeout,
        )
        proc.kill()
        with trio.move_on_after(KILL_GRACE):
            await proc.wait()
        r.last_exit = proc.returncode if proc.returncode is not None else -9

    def _stop_relay(self, r: RelayProcess) -> None:
        r.stopping = True
        r.wake.set()
        if r.proc is not None and r.proc.returncode is None:
            r.proc.send_signal(signal.SIGTERM)

    async def _stop_all(self) -> None:
        for r in self.relays.values():
            self._stop_relay(r)
        for r in self.relays.values():
            await r.done.wait()

    async def _probe(self, r: RelayProcess) -> None:
        spawn = self.config.spawn
        if spawn and (r.proc is None or r.proc.returncode is not None or r.stopping):
            return
        host = "127.0.0.1" if spawn else self.config.announce(r.name)
        try:
            status, _ = await http_get(f"http://{host}:{r.metrics_port}/startupz", PROBE_TIMEOUT)
        except (OSError, trio.TooSlowError):
            # A process of ours is not listening yet (or busy): its state stays. A relay
            # elsewhere that does not answer a few probes in a row is down.
            r.probe_failures += 1
            if not spawn and r.probe_failures >= EXTERNAL_DOWN_AFTER:
                r.state = "down"
            return
        r.probe_failures = 0
        r.state = "online" if status == 200 else "starting"

    async def _probe_all(self) -> None:
        async with trio.open_nursery() as n:
            for r in self.relays.values():
                n.start_soon(self._probe, r)

    # ---- notifications and the HTTP endpoint ----

    async def _notifications(self, sock: trio.socket.SocketType) -> None:
        while True:
            data, _ = await sock.recvfrom(512)
            shard, _, reason = data.decode("utf-8", "replace").partition(" ")
            log.debug("relay of shard %s asks for a topology refresh (%s)", shard, reason)
            self.request_refresh(reason or "unknown")

    async def _serve_http(self, *, task_status: trio.TaskStatus[list[trio.SocketListener]]) -> None:
        listeners = await trio.open_tcp_listeners(self.config.http_port, host=self.config.http_bind)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_SupervisorCollector(self))
        async with trio.open_nursery() as n:
            n.start_soon(trio.serve_listeners, http_handler(self, registry), listeners)
            task_status.started(listeners)

    def route(self, path: str, registry: CollectorRegistry) -> tuple[str, str, bytes]:
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(registry)
        if path in ("/livez", "/healthz"):
            return "200 OK", "text/plain", b"ok\n"
        if path == "/topology":
            if self.published is None:
                return "503 Service Unavailable", "text/plain", b"no topology yet\n"
            return "200 OK", "application/json", to_json(self.published).encode()
        if path == "/readyz":
            ok, why = self.readiness()
            return (
                ("200 OK" if ok else "503 Service Unavailable"),
                "text/plain",
                why.encode() + b"\n",
            )
        return "404 Not Found", "text/plain", b"not found\n"

    def readiness(self) -> tuple[bool, str]:
        if self._stopping:
            return False, "shutting down"
        if self.last_refresh_ok is None:
            return False, "the cluster's topology was never read"
        age = trio.current_time() - self.last_refresh_ok
        if age > 3 * self.config.refresh_interval + 5:
            return False, f"the topology was last read {age:.0f}s ago"
        waiting = {n for n, r in self.relays.items() if r.state != "online"}
        # A shard found by the last refresh whose relay is not started yet: `tick` awaits the
        # probes between the refresh and `_start_new`, and this endpoint answers meanwhile
        # (it said ready then, before the first topology file and any relay existed).
        if self.discovered is not None:
            waiting.update(
                s.name
                for s in self.discovered.shards
                if s.name
                and s.name not in self.relays
                and self.config.ports.port(int(s.name)) is not None
                and self.config.metrics_ports.port(int(s.name)) is not None
            )
        if waiting:
            return False, "relays not online: " + ", ".join(sorted(waiting))
        return True, "ready"


def http_handler(
    sup: Supervisor, registry: CollectorRegistry
) -> Callable[[trio.SocketStream], Awaitable[None]]:
    """The HTTP handler of the supervisor's endpoint (one request per connection)."""

    async def handle(stream: trio.SocketStream) -> None:
        try:
            async with stream:
                with trio.move_on_after(10):
                    buf = b""
                    while b"\r\n\r\n" not in buf and b"\n\n" not in buf and len(buf) < 8192:
                        data = await stream.receive_some(4096)
                        if not data:
                            return
                        buf += data
                    parts = buf.split(b"\n", 1)[0].decode("latin-1").split()
                    if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
                        status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET\n"
                    else:
                        status, ctype, body = sup.route(parts[1].split("?", 1)[0], registry)
                    head = (
                        f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                    )
                    await stream.send_all(head.encode() + body)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        except Exception:  # never take the supervisor down for one request
            log.exception("error serving an HTTP request")

    return handle


class _SupervisorCollector(Collector):
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup

    def collect(self) -> list[GaugeMetricFamily | CounterMetricFamily]:
        sup = self.sup
        out: list[GaugeMetricFamily | CounterMetricFamily] = []
        shards = sup.published.shards if sup.published else ()
        out.append(
            GaugeMetricFamily(
                "replproxy_cluster_shards", "Shards in the published topology.", len(shards)
            )
        )
        states = GaugeMetricFamily(
            "replproxy_cluster_relays", "Relay processes by state.", labels=["state"]
        )
        for st in ("starting", "online", "down", "stopped"):
            states.add_metric([st], sum(1 for r in sup.relays.values() if r.state == st))
        out.append(states)
        restarts = CounterMetricFamily(
            "replproxy_cluster_relay_restarts",
            "Relay processes restarted after they exited.",
            labels=["shard"],
        )
        for name, r in sorted(sup.relays.items()):
            restarts.add_metric([name], r.restarts)
        out.append(restarts)
        refreshes = CounterMetricFamily(
            "replproxy_cluster_topology_refreshes",
            "Reads of the cluster's topology.",
            labels=["result"],
        )
        refreshes.add_metric(["ok"], sup.refreshes_ok)
        refreshes.add_metric(["error"], sup.refresh_errors)
        out.append(refreshes)
        out.append(
            GaugeMetricFamily(
                "replproxy_cluster_topology_generation",
                "Generation of the published topology.",
                sup.generation,
            )
        )
        age = trio.current_time() - sup.last_refresh_ok if sup.last_refresh_ok is not None else -1
        out.append(
            GaugeMetricFamily(
                "replproxy_cluster_topology_age_seconds",
                "Seconds since the topology was last read (-1: never).",
                age,
            )
        )
        notes = CounterMetricFamily(
            "replproxy_cluster_refresh_requests",
            "Refreshes asked for by relays, by reason.",
            labels=["reason"],
        )
        for reason, n in sorted(sup.notifications.items()):
            notes.add_metric([reason], n)
        out.append(notes)
        return out
