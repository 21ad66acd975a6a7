"""The lag behind the master, measured against real masters (issue 17).

`replproxy_master_lag_bytes` / `_seconds` come from the master offset probe (a second
connection reading the master's INFO every second). Checked here against what the test itself
reads from the master's INFO: under redis-benchmark, and with the replication connection ALONE
stalled by a proxy (the probe's connection passes), where the lag grows, /readyz turns 503 at
each threshold and everything returns to 0 once the link flows again. Without the probe, the
master's PINGs give the lag in seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

import pytest

from tests.harness.psync_stall_proxy import PsyncStallProxy
from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, start_server, wait_for

pytestmark = [pytest.mark.timeout(240), pytest.mark.one_kind]

PROBE_INTERVAL = 1.0  # replproxy.probe.PROBE_INTERVAL
PROBE_TIMEOUT = 2.0  # replproxy.probe.PROBE_TIMEOUT
# How much later than the master's move the probe may notice it: one interval, plus room
# for a machine shared with other work (the relay is applying a benchmark's stream).
NOTICE_SLACK = PROBE_INTERVAL + 2.0


@dataclass(frozen=True)
class Reading:
    sent: float  # time.monotonic() before the INFO request (same clock as the relay's)
    received: float
    offset: int


class Offsets:
    """The test's own view, every 50 ms: the master's master_repl_offset and the relay's
    applied offset (slave_repl_offset), each with when it was asked."""

    def __init__(self, master: RedisServer, relay: RelayProcess) -> None:
        self.master, self.relay = master, relay
        self.masters: list[Reading] = []
        self.applied: list[Reading] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self.master.client() as m, self.relay.client() as r:
            while not self._stop.is_set():
                for client, field, out in (
                    (m, "master_repl_offset", self.masters),
                    (r, "slave_repl_offset", self.applied),
                ):
                    sent = time.monotonic()
                    off = int(client.info("replication")[field])
                    out.append(Reading(sent, time.monotonic(), off))
                time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def assert_brackets(
    readings: list[Reading], value: int, at: tuple[float, float], slack: float
) -> None:
    """`value` was read from a growing offset between `at[0] - slack` and `at[1]`: every
    reading asked after that is at least it, every reading answered before is at most it."""
    for r in readings:
        if r.sent > at[1]:
            assert r.offset >= value, (r, value, at)
        if r.received < at[0] - slack:
            assert r.offset <= value, (r, value, at)


def lag_metrics(relay: RelayProcess) -> tuple[float, float, dict[str, float]]:
    t0 = time.monotonic()
    m = relay.metrics()
    return t0, time.monotonic(), m


def readyz(relay: RelayProcess) -> tuple[int, str]:
    return relay.http("/readyz")


def test_lag_tracks_the_master_under_redis_benchmark(master: RedisServer) -> None:
    bench_bin = shutil.which("redis-benchmark")
    assert bench_bin, "redis-benchmark (Debian redis-tools) is needed"
    relay = start_relay(upstream_url(master))
    offsets: Offsets | None = None
    bench = None
    try:
        relay.wait_in_sync_with(master)
        offsets = Offsets(master, relay)
        time.sleep(0.3)
        bench = subprocess.Popen(
            [
                bench_bin,
                "-h",
                master.host,
                "-p",
                str(master.port),
                "-t",
                "set",
                "-n",
                "100000000",
                "-r",
                "100000",
                "-d",
                "100",
                "-c",
                "4",
                "-P",
                "16",
                "-q",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        scrapes = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            scrapes.append(lag_metrics(relay))
            time.sleep(0.3)
        bench.terminate()
        bench.wait(10)
        time.sleep(0.3)
        offsets.stop()

        seen_behind = 0
        for t0, t1, m in scrapes:
            assert m['replproxy_master_lag_source{source="probe"}'] == 1
            applied = int(m["replproxy_master_repl_offset"])
            probed = int(m["replproxy_master_probed_repl_offset"])
            lag_b = int(m["replproxy_master_lag_bytes"])
            lag_s = m["replproxy_master_lag_seconds"]
            age = m["replproxy_master_offset_probe_age_seconds"]
            probed_at = (t0 - age, t1 - age)
            # The probed offset is the master's own at the probe, no older than one probe
            # interval (plus slack) before the probe answered...
            assert_brackets(offsets.masters, probed, probed_at, NOTICE_SLACK)
            # ...and the bytes are it minus the relay's applied offset read just before
            # asking (within the probe's own timeout).
            if lag_b > 0:
                assert_brackets(
                    offsets.applied, probed - lag_b, probed_at, 2 * PROBE_TIMEOUT + NOTICE_SLACK
                )
                seen_behind += 1
            # The seconds: the master first went past `applied` (as of the scrape) between
            # the last reading at or below it and the first above it; the relay says "now
            # minus that moment", noticed up to one probe interval late.
            at_or_below = [r.sent for r in offsets.masters if r.offset <= applied]
            above = [r.received for r in offsets.masters if r.offset > applied]
            if at_or_below:
                assert lag_s <= t1 - max(at_or_below) + 0.1
            if above:
                assert lag_s >= t0 - min(above) - NOTICE_SLACK
        # A relay applying a benchmark's stream is a little behind at every probe.
        assert seen_behind >= len(scrapes) // 2, (seen_behind, len(scrapes))

        # Once the master is quiet, both return to 0.
        relay.wait_in_sync_with(master)

        def caught_up() -> bool:
            m = relay.metrics()
            return (m["replproxy_master_lag_bytes"], m["replproxy_master_lag_seconds"]) == (0, 0)

        wait_for(caught_up, 30, what="lag back to 0")
    finally:
        if bench is not None and bench.poll() is None:
            bench.kill()
            bench.wait()
        if offsets is not None:
            offsets.stop()
        relay.stop()


class Writer:
    """Slow, steady writes to the master (about 1 kB/s) until stopped."""

    def __init__(self, master: RedisServer) -> None:
        self.master = master
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        with self.master.client() as c:
            while not self._stop.is_set():
                c.set(f"slow:{i % 50}", "v" * 100)
                i += 1
                time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_stalled_replication_connection_lag_grows_readyz_503_then_recovers(
    master: RedisServer,
) -> None:
    proxy = PsyncStallProxy(master.host, master.port)
    relay = start_relay(
        f"redis://127.0.0.1:{proxy.port}",
        "--ready-max-lag-seconds",
        "4",
        "--ready-max-lag-bytes",
        "64kb",
        "--repl-timeout",
        "120",
    )
    replica = start_server(master.kind)
    writer: Writer | None = None
    try:
        with replica.client() as c:
            c.execute_command("REPLICAOF", "127.0.0.1", relay.port)
        relay.wait_in_sync_with(master)
        wait_for(
            lambda: (
                relay.info()["connected_slaves"] == 1
                and relay.info()["slave0"]["state"] == "online"
            ),
            60,
            what="replica online",
        )
        wait_for(lambda: readyz(relay)[0] == 200, 30, what="/readyz 200")
        assert proxy.replication_connections == 1
        writer = Writer(master)
        time.sleep(1)
        proxy.stall()

        samples = []

        def not_ready() -> str | None:
            samples.append(relay.metrics())
            code, body = readyz(relay)
            return body if code == 503 else None

        body = wait_for(not_ready, 60, interval=0.5, what="/readyz 503 on lag seconds")
        assert "over --ready-max-lag-seconds 4" in body, body
        m = relay.metrics()
        assert m['replproxy_master_lag_source{source="probe"}'] == 1  # the probe still passes
        assert m["replproxy_master_link_up"] == 1  # the link looks up: nothing says otherwise
        assert m["replproxy_repl_lag_bytes"] == 0  # the old metric sees nothing
        assert 0 < m["replproxy_master_lag_bytes"] < 64 * 1024
        assert m["replproxy_master_lag_seconds"] > 4
        first = next(s for s in samples if s["replproxy_master_lag_bytes"] > 0)
        assert m["replproxy_master_lag_bytes"] > first["replproxy_master_lag_bytes"]
        assert m["replproxy_master_lag_seconds"] > first["replproxy_master_lag_seconds"]
        # The downstream replica has everything the relay has, and is as far behind the
        # master as the relay.
        name = f"127.0.0.1:{replica.port}"
        assert m[f'replproxy_downstream_replica_lag_bytes{{behind="relay",replica="{name}"}}'] == 0
        assert m[f'replproxy_downstream_replica_lag_bytes{{behind="master",replica="{name}"}}'] > 0
        assert (
            m[f'replproxy_downstream_replica_lag_seconds{{behind="master",replica="{name}"}}'] > 4
        )
        info = relay.info()
        assert info["replproxy_master_lag_source"] == "probe"
        assert float(info["replproxy_master_lag_seconds"]) > 4

        # Past the bytes threshold too: that is the reason given now (checked first).
        with master.client() as c:
            for i in range(100):
                c.set(f"burst:{i}", "x" * 1024)

        def bytes_reason() -> str | None:
            code, body = readyz(relay)
            return body if code == 503 and "bytes over" in body else None

        body = wait_for(bytes_reason, 30, interval=0.5, what="/readyz 503 on lag bytes")
        assert "over --ready-max-lag-bytes 65536" in body, body

        writer.stop()
        proxy.resume()
        relay.wait_in_sync_with(master)

        def recovered() -> bool:
            m = relay.metrics()
            return (
                readyz(relay)[0] == 200
                and m["replproxy_master_lag_bytes"] == 0
                and m["replproxy_master_lag_seconds"] == 0
            )

        wait_for(recovered, 30, interval=0.2, what="lag back to 0 and /readyz 200")
        assert relay.metrics()["replproxy_resyncs_full_total"] == 1  # no resync was needed
    finally:
        if writer is not None:
            writer.stop()
        proxy.resume()
        relay.stop()
        replica.stop()
        proxy.close()


def test_without_the_probe_the_master_pings_give_the_lag(master: RedisServer) -> None:
    with master.client() as c:
        c.config_set("repl-ping-replica-period", 1)
    proxy = PsyncStallProxy(master.host, master.port)
    relay = start_relay(
        f"redis://127.0.0.1:{proxy.port}",
        "--master-offset-probe",
        "no",
        "--ready-max-lag-seconds",
        "3",
        "--repl-timeout",
        "120",
    )
    try:
        relay.wait_in_sync_with(master)
        time.sleep(5)  # a few PINGs, one a second: the relay learns the period
        m = relay.metrics()
        assert m['replproxy_master_lag_source{source="ping"}'] == 1
        assert "replproxy_master_lag_bytes" not in m  # bytes need the probe
        assert m["replproxy_master_offset_probe_up"] == 0
        assert m["replproxy_master_lag_seconds"] == 0
        assert proxy.replication_connections == 1
        proxy.stall()
        body = wait_for(
            lambda: (r := readyz(relay))[0] == 503 and r[1],
            60,
            interval=0.5,
            what="/readyz 503 from the PING estimate",
        )
        assert "(ping) over --ready-max-lag-seconds 3" in body, body
        assert relay.metrics()["replproxy_master_lag_seconds"] > 3
        proxy.resume()
        relay.wait_in_sync_with(master)
        wait_for(
            lambda: (
                relay.metrics()["replproxy_master_lag_seconds"] == 0 and readyz(relay)[0] == 200
            ),
            30,
            what="lag back to 0",
        )
    finally:
        proxy.resume()
        relay.stop()
        proxy.close()
