"""A real replproxy process for integration tests, started through its CLI like a user would.

Running the relay as its own process (not in the test's event loop) keeps blocking redis-py
calls in tests from stalling it, and exercises the real entry point, signals and logging.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.harness.servers import RedisServer, free_port, wait_for


def parse_metrics(text: str) -> dict[str, float]:
    """A Prometheus text exposition's samples by name (`name{labels}` when labelled), as
    floats; comments (# HELP, # TYPE) skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


@dataclass
class RelayProcess:
    port: int
    metrics_port: int
    dir: Path
    proc: subprocess.Popen[bytes]
    logfile: Path
    # Set for a relay serving HTTPS (`--metrics-tls yes`): what verifies its certificate.
    http_context: ssl.SSLContext | None = None

    def client(self, **kw: object) -> redis.Redis:
        opts: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.port,
            "protocol": 2,
            "socket_timeout": 30,
        }
        opts.update(kw)
        return redis.Redis(**opts)  # type: ignore[arg-type]

    def info(self, section: str = "replication") -> dict[str, Any]:
        with self.client() as c:
            return c.info(section)

    def http(self, path: str) -> tuple[int, str]:
        scheme = "https" if self.http_context is not None else "http"
        try:
            with urllib.request.urlopen(
                f"{scheme}://127.0.0.1:{self.metrics_port}{path}",
                timeout=10,
                context=self.http_context,
            ) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self) -> dict[str, float]:
        """Unlabelled samples plus `name{labels}` keys, as floats."""
        _, text = self.http("/metrics")
        return parse_metrics(text)

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def wait_in_sync_with(self, master: RedisServer, timeout: float = 60) -> int:
        """Wait until the relay applied exactly what the master has produced; return it."""

        def synced() -> tuple[int] | None:
            m = master.info("replication")
            r = self.info("replication")
            off = int(m["master_repl_offset"])
            # A tuple: offset 0 (no write since the first replica connected) is a sync too,
            # and wait_for takes a falsy value as "not yet" (that waited for the master's
            # first PING, 10 s later).
            in_sync = r["slave_repl_offset"] == off and r["master_link_status"] == "up"
            return (off,) if in_sync else None

        return int(wait_for(synced, timeout, what="relay offset == master offset")[0])

    def wait_saved(self, timeout: float = 30) -> dict[str, Any]:
        """Until a save completed and covers every write applied so far (the relay also
        saves after each full sync, which a replica does not: SAVE and BGSAVE answer
        "already in progress" meanwhile); INFO persistence then."""

        def saved() -> dict[str, Any] | None:
            i = self.info("persistence")
            # rdb_saves is Redis 7.0's; a 5.0/6.2 replica's INFO (which the relay shows for
            # such a master) has only the time of the last save.
            saves = i.get("rdb_saves", i["rdb_last_save_time"])
            done = saves and not i["rdb_bgsave_in_progress"]
            return i if done and i["rdb_changes_since_last_save"] == 0 else None

        return wait_for(saved, timeout, 0.02, "a save covering every applied write")


def upstream_url(
    master: RedisServer, username: str | None = None, password: str | None = None
) -> str:
    password = password if password is not None else master.password
    cred = ""
    if password is not None:
        cred = f"{username or ''}:{password}@"
    return f"redis://{cred}{master.host}:{master.port}"


def start_relay(
    upstream: str,
    *args: str,
    dir: Path | None = None,
    wait_ready: bool = True,
    port: int | None = None,
    env: dict[str, str] | None = None,
    http_context: ssl.SSLContext | None = None,
    metrics_port: int | None = None,
) -> RelayProcess:
    """Start replproxy; `port` to come back where its downstream replicas expect it; `env`
    added to the environment (REPLPROXY_NO_SPEEDUPS...); `http_context` to reach an HTTPS
    metrics port."""
    dir = dir or Path(tempfile.mkdtemp(prefix="replproxy-relay-"))
    port, mport = port or free_port(), metrics_port or free_port()
    logfile = dir / f"relay-{port}.log"
    cmd = [
        sys.executable,
        "-m",
        "replproxy",
        "run",
        "--upstream",
        upstream,
        "--port",
        str(port),
        "--metrics-port",
        str(mport),
        "--metrics-bind",
        "127.0.0.1",
        "--dir",
        str(dir),
        *args,
    ]
    with open(logfile, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env} if env else None
        )
    relay = RelayProcess(port, mport, dir, proc, logfile, http_context)

    def listening() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"replproxy exited {proc.returncode}: {relay.log()[-3000:]}")
        try:
            return relay.http("/livez")[0] == 200
        except OSError:
            return False

    try:
        wait_for(listening, 30, what="replproxy to listen")
        if wait_ready:
            wait_for(
                lambda: relay.http("/startupz")[0] == 200, 120, what="replproxy's initial sync"
            )
    except BaseException:
        relay.stop()  # a relay that did not come up must not outlive the test
        raise
    return relay
