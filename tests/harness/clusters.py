"""Real Redis/Valkey clusters and `replproxy cluster` supervisors for tests.

A cluster is `2 * shards` real servers started with `--cluster-enabled yes` on free ports
(the bus port chosen with `cluster-port`, so it is free too), joined with the kind's own
`redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes` (valkey-cli for Valkey),
then waited for until every node agrees and every replica is in sync.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.harness.servers import RedisServer, ServerKind, free_port, start_server, wait_for


def cli_binary(kind: ServerKind) -> str:
    """valkey-cli beside valkey-server for Valkey; Debian's redis-cli 7.0 for Redis."""
    if kind.is_valkey:
        return str(Path(kind.binary).with_name("valkey-cli"))
    found = shutil.which("redis-cli")
    assert found, "redis-cli is needed to create clusters"
    return found


@dataclass
class Cluster:
    kind: ServerKind
    nodes: list[RedisServer]
    dir: Path

    def cli(self, *args: str, timeout: float = 120) -> str:
        out = subprocess.run(
            [cli_binary(self.kind), *args], capture_output=True, text=True, timeout=timeout
        )
        if out.returncode != 0:
            raise RuntimeError(f"{args}: {out.stdout[-2000:]} {out.stderr[-2000:]}")
        return out.stdout

    def by_port(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def node_lines(self, via: RedisServer | None = None) -> list[list[str]]:
        via = via or self.nodes[0]
        with via.client(decode_responses=True) as c:
            text = c.execute_command("CLUSTER", "NODES")
        return [line.split() for line in text.splitlines() if line.strip()]

    def myid(self, node: RedisServer) -> str:
        with node.client(decode_responses=True) as c:
            return str(c.execute_command("CLUSTER", "MYID"))

    def primaries(self) -> list[RedisServer]:
        """The primaries that own slots, in slot order, as their own ROLE says."""
        out = []
        for n in self.nodes:
            if not n.alive():
                continue
            with n.client() as c:
                if c.execute_command("ROLE")[0] != b"master":
                    continue
                slots = [line for line in self.node_lines(n) if "myself" in line[2]]
            if slots and len(slots[0]) > 8:
                first = int(slots[0][8].split("-")[0])
                out.append((first, n))
        return [n for _, n in sorted(out, key=lambda x: x[0])]

    def replicas_of(self, primary: RedisServer) -> list[RedisServer]:
        out = []
        for n in self.nodes:
            if n is primary or not n.alive():
                continue
            with n.client() as c:
                role = c.execute_command("ROLE")
            if role[0] == b"slave" and int(role[2]) == primary.port:
                out.append(n)
        return out

    def wait_stable(self, timeout: float = 60) -> None:
        """Every node sees all slots covered, the same slot owners, every replica synced."""

        def stable() -> bool:
            views = set()
            for n in self.nodes:
                if not n.alive():
                    continue
                with n.client(decode_responses=True) as c:
                    info = c.execute_command("CLUSTER", "INFO")
                    if "cluster_state:ok" not in info:
                        return False
                lines = self.node_lines(n)
                if any("fail" in line[2] or "handshake" in line[2] for line in lines):
                    return False
                views.add(
                    tuple(
                        sorted(
                            (line[0], tuple(x for x in line[8:] if not x.startswith("[")))
                            for line in lines
                            if "master" in line[2]
                        )
                    )
                )
            if len(views) != 1:
                return False
            for p in self.primaries():
                off = int(p.info("replication")["master_repl_offset"])
                for r in self.replicas_of(p):
                    rinfo = r.info("replication")
                    if (
                        rinfo.get("master_link_status") != "up"
                        or int(rinfo["slave_repl_offset"]) != off
                    ):
                        return False
            return True

        wait_for(stable, timeout, interval=0.2, what="the cluster to settle")

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


def start_cluster(kind: ServerKind, shards: int = 3) -> Cluster:
    root = Path(tempfile.mkdtemp(prefix=f"replproxy-cluster-{kind.name}-"))
    nodes: list[RedisServer] = []
    try:
        for i in range(2 * shards):
            d = root / f"node{i}"
            d.mkdir()
            extra = {
                "cluster-enabled": "yes",
                "cluster-config-file": "nodes.conf",
                "cluster-node-timeout": "5000",
            }
            port = None
            if kind.version >= (7, 0, 0):
                extra["cluster-port"] = str(free_port())
            else:  # no cluster-port before 7.0: the bus is port + 10000, free it too
                port = _port_with_free_bus()
            nodes.append(start_server(kind, dir=d, port=port, extra=extra))
        cluster = Cluster(kind, nodes, root)
        cluster.cli(
            "--cluster",
            "create",
            *(f"127.0.0.1:{n.port}" for n in nodes),
            "--cluster-replicas",
            "1",
            "--cluster-yes",
        )
        cluster.wait_stable()
        return cluster
    except BaseException:
        for n in nodes:
            n.stop()
        raise


def _port_with_free_bus() -> int:
    for _ in range(100):
        p = free_port()
        if p + 10000 < 65536:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p + 10000))
                return p
            except OSError:
                continue
    raise RuntimeError("no port with a free bus port")


@dataclass
class SupervisorProcess:
    """`replproxy cluster` as a user runs it."""

    proc: subprocess.Popen[bytes]
    dir: Path
    ports: list[int]
    metrics_ports: list[int]
    http_port: int
    logfile: Path
    relays_pids: dict[str, int] = field(default_factory=dict)

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")

    def relay(self, shard: str | int) -> redis.Redis:
        return redis.Redis(port=self.ports[int(shard)], protocol=2, socket_timeout=30)

    def http(self, path: str, port: int | None = None) -> tuple[int, str]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port or self.http_port}{path}", timeout=10
            ) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def start_supervisor(
    cluster: Cluster,
    *relay_args: str,
    shards: int = 3,
    refresh_interval: float = 2.0,
    extra: tuple[str, ...] = (),
    save: str = "",
    again: SupervisorProcess | None = None,
) -> SupervisorProcess:
    """`replproxy cluster` beside `cluster`; `again`: a stopped one to start anew with the
    same directory and ports (its relays find their saved state)."""
    if again is not None:
        d, ports, mports = again.dir, again.ports, again.metrics_ports
    else:
        d = Path(tempfile.mkdtemp(prefix="replproxy-supervisor-"))
        # Room for a shard more than the cluster has (a test may add one).
        ports = [free_port() for _ in range(shards + 1)]
        mports = [free_port() for _ in range(shards + 1)]
    http_port = free_port()
    seed = cluster.nodes[0]
    logfile = d / f"supervisor-{http_port}.log"
    # fmt: off
    cmd = [
        sys.executable, "-m", "replproxy", "cluster",
        "--seed", f"redis://127.0.0.1:{seed.port}",
        "--dir", str(d),
        "--ports", ",".join(map(str, ports)),
        "--metrics-ports", ",".join(map(str, mports)),
        "--metrics-port", str(http_port), "--metrics-bind", "127.0.0.1",
        "--refresh-interval", str(refresh_interval),
        "--shard-removal-grace", "5",
        *extra,
        "--", "--save", save, "--repl-backlog-size", "16mb", *relay_args,
    ]
    # fmt: on
    with open(logfile, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    sup = SupervisorProcess(proc, d, ports, mports, http_port, logfile)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"replproxy cluster exited {proc.returncode}: {sup.log()[-3000:]}")
        try:
            return sup.http("/readyz")[0] == 200
        except OSError:
            return False

    try:
        wait_for(ready, 180, interval=0.2, what="every relay of the cluster to be ready")
    except BaseException:
        sup.stop()
        raise
    return sup


def wait_relays_in_sync(cluster: Cluster, sup: SupervisorProcess, timeout: float = 60) -> None:
    """Every shard's relay has applied exactly its primary's offset."""

    def synced() -> bool:
        topo = current_topology(sup)
        for s in (s for s in topo["shards"] if s["relay"]):
            p = cluster.by_port(s["primary"]["port"])
            off = int(p.info("replication")["master_repl_offset"])
            with sup.relay(s["name"]) as r:
                info = r.info("replication")
            if (
                info["master_link_status"] != "up"
                or info["master_port"] != p.port
                or int(info["slave_repl_offset"]) != off
            ):
                return False
        return True

    wait_for(synced, timeout, interval=0.1, what="every relay at its primary's offset")


def current_topology(sup: SupervisorProcess) -> dict:
    import json

    return json.loads((sup.dir / "topology.json").read_text())
