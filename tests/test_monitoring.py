"""The monitoring stack (issue 17): docker-compose.yml's structure, the Prometheus config and
alert rules (docs/prometheus/), the Grafana dashboard (docs/grafana/).

There is no Docker engine here, so the compose file is checked for structure; everything
it runs that exists on this machine runs for real: Prometheus 2.42 (Debian `prometheus`)
with the stack's own scrape config (targets rewritten to this test's ports) scraping a real
relay and two real redis_exporter (Debian `prometheus-redis-exporter`), `promtool` on the
rules (and a compressed-time run of a stalled link), and every dashboard query against that
Prometheus.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import KINDS
from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, free_port, start_server, wait_for

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
PROM_DIR = ROOT / "docs" / "prometheus"
DASHBOARD = ROOT / "docs" / "grafana" / "replproxy-dashboard.json"


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is needed (Debian: prometheus, prometheus-redis-exporter)"
    return path


# ---- the compose file ----


def test_compose_file_runs_the_whole_stack() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    services: dict[str, Any] = spec["services"]
    assert set(services) == {
        "master",
        "replproxy",
        "replica1",
        "replica2",
        "redis-exporter-relay",
        "redis-exporter-master",
        "prometheus",
        "grafana",
    }
    relay = services["replproxy"]
    env = relay["environment"]
    assert env["REPLPROXY_UPSTREAM"] == "redis://master:6379"
    # Both ports listen on 127.0.0.1 by default: a container must say 0.0.0.0.
    assert env["REPLPROXY_BIND"] == env["REPLPROXY_METRICS_BIND"] == "0.0.0.0"
    port, mport = env["REPLPROXY_PORT"], env["REPLPROXY_METRICS_PORT"]
    assert f"{port}:{port}" in relay["ports"] and f"{mport}:{mport}" in relay["ports"]
    assert f"http://127.0.0.1:{mport}/readyz" in " ".join(relay["healthcheck"]["test"])

    for name in ("master", "replproxy", "replica1", "replica2", "prometheus"):
        hc = services[name]["healthcheck"]
        assert hc["test"][0] in ("CMD", "CMD-SHELL") and hc["retries"] > 0, name
    for name in ("replica1", "replica2"):
        cmd = services[name]["command"]
        assert cmd[cmd.index("--replicaof") + 1 :][:2] == ["replproxy", port]
        assert services[name]["depends_on"]["replproxy"]["condition"] == "service_healthy"
    assert relay["depends_on"]["master"]["condition"] == "service_healthy"
    exporters = {
        "redis-exporter-relay": f"redis://replproxy:{port}",
        "redis-exporter-master": "redis://master:6379",
    }
    for name, addr in exporters.items():
        assert services[name]["environment"]["REDIS_ADDR"] == addr
        target = addr.split("//")[1].split(":")[0]
        assert target in services[name]["depends_on"]
    assert services["prometheus"]["depends_on"]["replproxy"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    # The grace period covers --shutdown-timeout (default 10 s) and its final save.
    assert int(relay["stop_grace_period"].rstrip("s")) > 10

    # Every file mounted from the repository exists.
    mounted = []
    for svc in services.values():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (ROOT / src).exists(), src
                mounted.append(src)
    assert "./docs/prometheus/prometheus.yml" in mounted
    assert "./docs/prometheus/alerts.yml" in mounted
    assert "./docs/grafana/provisioning" in mounted
    assert "./docs/grafana/replproxy-dashboard.json" in mounted

    # Prometheus scrapes services of this file, on the ports they serve.
    prom = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    targets = [
        t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    ]
    assert sorted(targets) == sorted(
        [f"replproxy:{mport}", "redis-exporter-relay:9121", "redis-exporter-master:9121"]
    )
    assert prom["rule_files"] == ["/etc/prometheus/alerts.yml"]
    ds = yaml.safe_load(
        (ROOT / "docs/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert ds["url"] == "http://prometheus:9090" and ds["uid"] == "prometheus"
    provider = yaml.safe_load(
        (ROOT / "docs/grafana/provisioning/dashboards/replproxy.yml").read_text()
    )["providers"][0]
    dash_mount = next(v for v in services["grafana"]["volumes"] if "dashboard.json" in v)
    assert dash_mount.split(":")[1].startswith(provider["options"]["path"] + "/")


# ---- the rules ----


def test_alert_rules_load_and_a_stalled_link_fires_the_lag_alert() -> None:
    promtool = tool("promtool")
    check = subprocess.run(
        [promtool, "check", "rules", "alerts.yml"], cwd=PROM_DIR, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 9 rules found" in check.stdout
    # Compressed time: the replication connection stalls at 2m, the link still looks up.
    run = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"], cwd=PROM_DIR, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


# ---- a real Prometheus against a real relay and redis_exporter ----


@dataclass
class Stack:
    master: RedisServer
    relay: RelayProcess
    replica: RedisServer
    exporters: dict[str, str]  # compose service -> host:port here
    prometheus: str  # host:port
    procs: list[subprocess.Popen[bytes]]

    def api(self, path: str, **params: str) -> Any:
        url = f"http://{self.prometheus}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _start_exporter(redis_port: int, logdir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    addr = f"127.0.0.1:{free_port()}"
    log = open(logdir / f"exporter-{redis_port}.log", "wb")  # noqa: SIM115 - the process's
    proc = subprocess.Popen(
        [
            tool("prometheus-redis-exporter"),
            f"--redis.addr=redis://127.0.0.1:{redis_port}",
            f"--web.listen-address={addr}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_for(lambda: _http_ok(f"http://{addr}/metrics"), 20, what="redis_exporter")
    return addr, proc


def prometheus_config_for(stack_ports: dict[str, str], tmp: Path) -> Path:
    """The stack's prometheus.yml with this test's targets, rules and a 1 s interval."""
    spec = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    spec["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    spec["rule_files"] = [str(PROM_DIR / "alerts.yml")]
    for job in spec["scrape_configs"]:
        for sc in job["static_configs"]:
            sc["targets"] = [stack_ports[t] for t in sc["targets"]]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    kind = next((k for k in KINDS if k.name == "redis7"), KINDS[0])
    tmp = Path(tempfile.mkdtemp(prefix="replproxy-monitoring-"))
    master = start_server(kind)
    relay = start_relay(upstream_url(master), "--repl-backlog-disk-size", "8mb")
    replica = start_server(kind)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with replica.client() as c:
            c.execute_command("REPLICAOF", "127.0.0.1", relay.port)
        with master.client() as c:
            for i in range(200):
                c.set(f"k{i}", i)
        relay.wait_in_sync_with(master)
        wait_for(
            lambda: (
                relay.info()["connected_slaves"] == 1
                and relay.info()["slave0"]["state"] == "online"
            ),
            60,
            what="replica online",
        )
        relay_exp, p1 = _start_exporter(relay.port, tmp)
        master_exp, p2 = _start_exporter(master.port, tmp)
        procs += [p1, p2]
        prom = f"127.0.0.1:{free_port()}"
        config = prometheus_config_for(
            {
                f"replproxy:{9480}": f"127.0.0.1:{relay.metrics_port}",
                "redis-exporter-relay:9121": relay_exp,
                "redis-exporter-master:9121": master_exp,
            },
            tmp,
        )
        check = subprocess.run(
            [tool("promtool"), "check", "config", str(config)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 - the process's
        procs.append(
            subprocess.Popen(
                [
                    tool("prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address={prom}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        wait_for(lambda: _http_ok(f"http://{prom}/-/ready"), 60, what="Prometheus ready")
        s = Stack(master, relay, replica, {"relay": relay_exp, "master": master_exp}, prom, procs)

        def all_up() -> bool:
            active = s.api("targets")["activeTargets"]
            return len(active) == 3 and all(t["health"] == "up" for t in active)

        wait_for(all_up, 60, interval=0.5, what="every target up")
        time.sleep(3)  # a few scrapes: rates need two samples
        yield s
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        replica.stop()
        relay.stop()
        master.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_prometheus_scrapes_the_relay_and_redis_exporter(stack: Stack) -> None:
    active = stack.api("targets")["activeTargets"]
    assert {t["labels"]["job"] for t in active} == {"replproxy", "redis"}
    assert all(t["health"] == "up" and not t["lastError"] for t in active)
    # redis_exporter reads the relay's INFO as any Redis's (replproxy's own fields come
    # after Redis's and confuse nothing): the relay is up, a replica of the master, with
    # its replica.
    up = {r["metric"]["role"]: r["value"][1] for r in stack.query("redis_up")}
    assert up == {"relay": "1", "master": "1"}
    link = stack.query('redis_master_link_up{role="relay"}')
    assert [r["value"][1] for r in link] == ["1"]
    slaves = {r["metric"]["role"]: r["value"][1] for r in stack.query("redis_connected_slaves")}
    assert slaves == {"relay": "1", "master": "1"}
    # The same offset, seen by both: the exporter on the relay and the relay's own metric.
    offset = stack.relay.info()["slave_repl_offset"]
    got = stack.query('redis_slave_repl_offset{role="relay"}')
    assert got and int(float(got[0]["value"][1])) <= int(offset)
    lag = stack.query("replproxy_master_lag_bytes")
    assert len(lag) == 1 and lag[0]["metric"]["job"] == "replproxy"
    # The rules are loaded and evaluated.
    groups = stack.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 9 and all(r["health"] == "ok" for r in rules), rules


def _metric_names(text: str) -> tuple[set[str], set[str]]:
    """(every family/sample name declared, the names with at least one sample)."""
    declared, sampled = set(), set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            declared.add(line.split()[2])
        elif line and not line.startswith("#"):
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            sampled.add(name)
    return declared | sampled, sampled


_NOT_METRICS = {"rate", "increase", "on", "by", "sum", "instance", "job", "role", "le"}


def test_dashboard_queries_metrics_that_exist_and_run(stack: Stack) -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "replproxy" and dash["templating"]["list"][0]["name"] == "instance"
    targets = [
        (p["title"], t["expr"]) for p in dash["panels"] if p["type"] != "row" for t in p["targets"]
    ]
    assert len(targets) > 20
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "prometheus", p["title"]

    with urllib.request.urlopen(f"http://127.0.0.1:{stack.relay.metrics_port}/metrics") as r:
        relay_declared, relay_sampled = _metric_names(r.read().decode())
    exporter_declared: set[str] = set()
    for addr in stack.exporters.values():
        with urllib.request.urlopen(f"http://{addr}/metrics") as r:
            exporter_declared |= _metric_names(r.read().decode())[0]

    titles = {p["title"] for p in dash["panels"]}
    for wanted in (
        "Lag (seconds)",
        "Lag (bytes)",
        "Offsets",
        "Syncs with the master",
        "Backlog in memory",
        "Backlog on disk",
        "Replica lag (seconds)",
        "Clients",
        "Memory",
    ):
        assert wanted in titles

    for title, expr in targets:
        names = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?=\{|\[|\)|$| ==)", expr))
        names = {n for n in names if "_" in n and n not in _NOT_METRICS}
        assert names, (title, expr)
        for n in names:
            if n.startswith("redis_"):
                assert n in exporter_declared, (title, n)
            else:
                assert n in relay_declared, (title, n)
        # Each query runs in Prometheus as Grafana would send it, with every relay selected;
        # it has data unless the relay itself has no sample for its metric yet (no replica
        # was dropped, say).
        concrete = expr.replace("$__rate_interval", "1m").replace('"$instance"', '".+"')
        result = stack.query(concrete)
        if all(n in relay_sampled or n.startswith("redis_") for n in names):
            assert result, (title, concrete)


def test_kubernetes_manifests_probe_what_the_relay_serves(stack: Stack) -> None:
    """docs/kubernetes.md: its manifests parse, the probes name endpoints the relay answers,
    the grace period covers --shutdown-timeout, the PodMonitor scrapes the metrics port."""
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    docs = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    by_kind = {d["kind"]: d for d in docs}
    assert set(by_kind) == {"Deployment", "PodMonitor"}
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "replproxy")
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert pod["terminationGracePeriodSeconds"] > float(env["REPLPROXY_SHUTDOWN_TIMEOUT"])
    assert env["REPLPROXY_METRICS_BIND"] == "0.0.0.0"
    port_names = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        http = sidecar[probe]["httpGet"]
        assert http["port"] in port_names
        status, _ = stack.relay.http(http["path"])
        assert status == 200, (probe, http["path"])
    endpoint = by_kind["PodMonitor"]["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
    assert by_kind["PodMonitor"]["spec"]["selector"] == by_kind["Deployment"]["spec"]["selector"]
