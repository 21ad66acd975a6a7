"""What operators rely on from a replica, checked against a real replica of the same master.

INFO (sections, fields, order; counters against the workload), CONFIG GET *, CLIENT LIST and
CLIENT KILL of the replication links, SLOWLOG and LATENCY, redis_exporter's metric families
(the Debian `prometheus-redis-exporter`), `redis-cli --replica`, the backoff of full syncs to
a replica that cannot load them, and client output memory under clients that do not read.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import KINDS
from tests.harness.relay import RelayProcess, parse_metrics, start_relay, upstream_url
from tests.harness.servers import (
    RedisServer,
    ServerKind,
    all_kinds,
    free_port,
    start_server,
    wait_for,
)

# ---- helpers ----


def raw_info(port: int, *sections: str) -> str:
    """INFO's text as sent, over a raw socket (redis-py would parse it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        args = ["INFO", *sections]
        s.sendall(
            b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args)
        )
        buf = b""
        while True:
            buf += s.recv(1 << 20)
            if buf.startswith(b"$"):
                head, _, rest = buf.partition(b"\r\n")
                if len(rest) >= int(head[1:]) + 2:
                    return rest[: int(head[1:])].decode()


def parse_sections(text: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for line in text.split("\r\n"):
        if line.startswith("# "):
            out.append((line[2:], []))
        elif line and out:
            out[-1][1].append(line)
    return out


def info_values(port: int, section: str) -> dict[str, str]:
    return dict(
        line.split(":", 1) for _, lines in parse_sections(raw_info(port, section)) for line in lines
    )


# Lines whose presence follows the traffic or the dataset, compared by name pattern only.
DYNAMIC = re.compile(r"^(cmdstat_|errorstat_|latency_percentiles_usec_|db\d+|slave\d+)")
# Fields a real replica has that the relay leaves out on purpose, and the relay's own.
RELAY_ONLY = re.compile(r"^replproxy_")


def field_names(lines: list[str]) -> list[str]:
    return [ln.split(":", 1)[0] for ln in lines if not DYNAMIC.match(ln)]


@pytest.fixture
def trio_of(
    server_kind: ServerKind, relays: list[RelayProcess]
) -> Iterator[tuple[RedisServer, RedisServer, RelayProcess]]:
    """A master, a real replica of it and a relay of it, synced, with a small dataset."""
    master = start_server(server_kind)
    replica = start_server(server_kind, extra={"replicaof": f"127.0.0.1 {master.port}"})
    try:
        with master.client() as c:
            for i in range(100):
                c.set(f"k{i}", i)
            c.rpush("list", *range(20))
            c.hset("h", mapping={"a": 1, "b": 2})
        relay = start_relay(upstream_url(master))
        relays.append(relay)
        relay.wait_in_sync_with(master)
        wait_for(lambda: replica.info("replication")["master_link_status"] == "up", 30)
        yield master, replica, relay
    finally:
        replica.stop()
        master.stop()


# ---- INFO / CONFIG against a real replica ----


def test_info_sections_and_fields_as_a_real_replica(
    trio_of: tuple[RedisServer, RedisServer, RelayProcess],
) -> None:
    _, replica, relay = trio_of
    for port in (replica.port, relay.port):
        with redis.Redis(port=port) as c:
            c.get("k1")
            c.get("nosuch")
            with pytest.raises(redis.ResponseError):
                c.execute_command("NOSUCHCOMMAND")
    for which in ("everything", "default", "all", "replication", "modules", "keyspace"):
        real = parse_sections(raw_info(replica.port, which))
        ours = parse_sections(raw_info(relay.port, which))
        assert [t for t, _ in ours] == [t for t, _ in real], which
        for (title, real_lines), (_, our_lines) in zip(real, ours):
            # replproxy's own fields (`replproxy_version`, `replproxy_master_*`) are extra.
            names = [n for n in field_names(our_lines) if not RELAY_ONLY.match(n)]
            assert names == field_names(real_lines), (which, title)
    our_values = info_values(relay.port, "all")  # `everything` is nothing before Redis 6.0
    real_values = info_values(replica.port, "all")
    # Values that follow the dataset and the link are the real replica's.
    for name in (
        "role",
        "master_link_status",
        "connected_slaves",
        "db0",
        "slave_read_only",
        "master_failover_state",
        "cluster_enabled",
        "redis_version",
        "maxmemory",
    ):
        if name in real_values:
            assert our_values[name] == real_values[name], name
    assert our_values["master_repl_offset"] == real_values["master_repl_offset"]
    with redis.Redis(port=relay.port) as c:
        c.ping()  # redis-py's own handshake (CLIENT SETINFO: an error on 7.0) done first
        before = c.info("all")
        with pytest.raises(redis.ResponseError):
            c.execute_command("NOSUCHCOMMAND")
        with pytest.raises(redis.ResponseError):
            c.set("k1", "x")  # -READONLY: a rejected call
        after = c.info("all")
    if "total_error_replies" in real_values:  # Redis 6.2 and later
        assert after["errorstat_ERR"]["count"] == before["errorstat_ERR"]["count"] + 1
        assert after["total_error_replies"] == before["total_error_replies"] + 2
        assert after["errorstat_READONLY"]["count"] == 1
        assert after["cmdstat_set"]["rejected_calls"] == 1
    assert our_values["cmdstat_get"].startswith("calls=2,")
    assert int(our_values["used_memory_dataset"]) > 100 * 20  # 100 small strings at least
    assert int(our_values["used_memory_rss"]) > 0


def test_config_get_names_as_a_real_replica(
    trio_of: tuple[RedisServer, RedisServer, RelayProcess],
) -> None:
    _, replica, relay = trio_of
    with replica.client() as c:
        real = c.config_get("*")
    with relay.client() as c:
        ours = c.config_get("*")
        assert set(ours) == set(real)
        for name in (
            "hash-max-listpack-entries",
            "lazyfree-lazy-eviction",
            "hz",
            "latency-tracking-info-percentiles",
            "maxmemory-clients",
        ):
            if name in real:
                assert ours[name] == real[name], name
        assert ours["masterauth"] == ""
        # CONFIG SET of what the relay uses; others refused with a clear error.
        assert c.config_set("slowlog-log-slower-than", 0)
        assert c.config_get("slowlog-log-slower-than") == {"slowlog-log-slower-than": "0"}
        with pytest.raises(redis.ResponseError, match="does not change 'hz'"):
            c.config_set("hz", 20)
        with replica.client() as r, pytest.raises(redis.ResponseError) as real_error:
            r.config_set("no-such-param", 1)  # its version's text ("Unknown option..." 7.0+)
        with pytest.raises(redis.ResponseError, match=re.escape(str(real_error.value))):
            c.config_set("no-such-param", 1)
        c.execute_command("CONFIG", "RESETSTAT")
        assert c.info("stats")["total_commands_processed"] <= 1


def test_hits_misses_and_commandstats_follow_the_workload(
    trio_of: tuple[RedisServer, RedisServer, RelayProcess],
) -> None:
    _, replica, relay = trio_of
    n, m = 37, 23
    before = info_values(relay.port, "stats")
    with relay.client() as c:
        pipe = c.pipeline(transaction=False)  # the GET/MGET fast lane
        for i in range(n):
            pipe.get(f"k{i}")
        for i in range(m):
            pipe.get(f"missing{i}")
        pipe.execute()
        c.mget("k1", "k2", "nope")  # 2 hits, 1 miss
        c.hget("h", "a")  # hit (a read outside the fast lane)
        c.lrange("nolist", 0, -1)  # miss
        with pytest.raises(redis.ResponseError):
            c.get("list")  # WRONGTYPE: a hit that fails
    after = info_values(relay.port, "stats")
    assert int(after["keyspace_hits"]) - int(before["keyspace_hits"]) == n + 2 + 1 + 1
    assert int(after["keyspace_misses"]) - int(before["keyspace_misses"]) == m + 1 + 1
    stats = info_values(relay.port, "commandstats")
    assert stats["cmdstat_get"].startswith(f"calls={n + m + 1},")
    if parse_sections(raw_info(replica.port, "errorstats")):  # Redis 6.2 and later
        assert "failed_calls=1" in stats["cmdstat_get"]
        errors = info_values(relay.port, "errorstats")
        assert errors["errorstat_WRONGTYPE"] == "count=1"
    assert int(after["total_net_input_bytes"]) > int(before["total_net_input_bytes"])
    assert int(after["total_net_output_bytes"]) > int(before["total_net_output_bytes"])
    if parse_sections(raw_info(replica.port, "latencystats")):  # Redis 7.0 and later
        lat = info_values(relay.port, "latencystats")
        assert re.fullmatch(
            r"p50=[\d.]+,p99=[\d.]+,p99\.9=[\d.]+", lat["latency_percentiles_usec_get"]
        )


@pytest.mark.client_dialect  # Redis 5.0's SLOWLOG HELP is not in its command table's shapes
def test_slowlog_and_latency(trio_of: tuple[RedisServer, RedisServer, RelayProcess]) -> None:
    _, replica, relay = trio_of
    with relay.client() as c, replica.client() as real:
        # Empty answers as a real replica's (redis_exporter reads LATENCY LATEST).
        for cmd in (
            ("LATENCY", "LATEST"),
            ("SLOWLOG", "GET"),
            ("LATENCY", "HISTORY", "command"),
            ("SLOWLOG", "LEN"),
            ("LATENCY", "DOCTOR"),
            ("SLOWLOG", "HELP"),
            ("LATENCY", "HELP"),
        ):
            if cmd == ("SLOWLOG", "GET") or cmd == ("SLOWLOG", "LEN"):
                real.execute_command("SLOWLOG", "RESET")
                c.execute_command("SLOWLOG", "RESET")
            assert c.execute_command(*cmd) == real.execute_command(*cmd), cmd
        c.config_set("slowlog-log-slower-than", 0)
        c.config_set("latency-monitor-threshold", 1)
        c.execute_command("CLIENT", "SETNAME", "tester")
        c.lrange("list", 0, -1)
        entries = c.execute_command("SLOWLOG", "GET", "1")
        assert entries[0][3] == [b"LRANGE", b"list", b"0", b"-1"]
        assert entries[0][5] == b"tester"
        assert c.execute_command("SLOWLOG", "LEN") >= 2
        try:
            real.execute_command("LATENCY", "HISTOGRAM", "get")
        except redis.ResponseError as e:  # before Redis 7.0: no such subcommand
            with pytest.raises(redis.ResponseError, match=re.escape(str(e))):
                c.execute_command("LATENCY", "HISTOGRAM", "lrange")
        else:
            hist = c.execute_command("LATENCY", "HISTOGRAM", "lrange")
            assert hist[0] == b"lrange" and hist[1][1] == 1
        with pytest.raises(redis.ResponseError, match="No samples available"):
            c.execute_command("LATENCY", "GRAPH", "command")


def test_client_list_and_kill_of_the_replication_links(
    trio_of: tuple[RedisServer, RedisServer, RelayProcess],
) -> None:
    master, replica, relay = trio_of
    down = start_server(replica.kind, extra={"replicaof": f"127.0.0.1 {relay.port}"})
    try:
        wait_for(lambda: down.info("replication")["master_link_status"] == "up", 60)
        with relay.client() as c, replica.client() as real:
            ours = c.client_list()
            flags = [x["flags"] for x in ours]
            assert "M" in flags and "S" in flags
            link = next(x for x in ours if x["flags"] == "M")
            real_link = next(x for x in real.client_list() if x["flags"] == "M")
            assert list(link) == list(real_link)  # the same fields, in order
            assert link.get("user") == real_link.get("user")  # "(superuser)" since 6.0
            assert link["addr"] == f"127.0.0.1:{master.port}"
            assert [x["flags"] for x in c.client_list(_type="master")] == ["M"]
            assert [x["flags"] for x in c.client_list(_type="replica")] == ["S"]
            synced = relay.info()["master_repl_offset"]
            assert c.client_kill_filter(_type="master") == 1
            wait_for(
                lambda: (
                    relay.info()["master_link_status"] == "up"
                    and relay.info()["master_repl_offset"] >= synced
                ),
                30,
            )
            assert "killed by CLIENT KILL" in relay.log()
            assert c.client_kill_filter(_type="replica") == 1
            # The replica is dropped and comes back (PSYNC).
            wait_for(lambda: down.info("replication")["master_link_status"] == "up", 60)
    finally:
        down.stop()


# ---- redis_exporter ----


# What redis_exporter may read from a real replica that the relay does not have: allocator
# (jemalloc), active defrag, AOF and io-threads internals (docs/metrics.md).
EXPORTER_EXCEPTIONS = re.compile(
    r"^redis_(allocator_|active_defrag|defrag|aof_|io_thread|io_threaded|mem_allocator)"
)


def _exporter(redis_port: int, logdir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    path = shutil.which("prometheus-redis-exporter")
    assert path, "prometheus-redis-exporter is needed (Debian's package)"
    addr = f"127.0.0.1:{free_port()}"
    log = open(logdir / f"exporter-{redis_port}.log", "wb")  # noqa: SIM115 - the process's
    proc = subprocess.Popen(
        [path, f"--redis.addr=redis://127.0.0.1:{redis_port}", f"--web.listen-address={addr}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_for(lambda: _scrape(addr) is not None, 20, what="redis_exporter")
    return addr, proc


def _scrape(addr: str) -> dict[str, float] | None:
    try:
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return None
    return parse_metrics(text)


def _families(samples: dict[str, float]) -> set[str]:
    return {re.split(r"[{ ]", k, maxsplit=1)[0] for k in samples}


def test_redis_exporter_sees_the_relay_as_a_replica(
    trio_of: tuple[RedisServer, RedisServer, RelayProcess], tmp_path: Path
) -> None:
    _, replica, relay = trio_of
    procs = []
    try:
        ours_addr, p1 = _exporter(relay.port, tmp_path)
        real_addr, p2 = _exporter(replica.port, tmp_path)
        procs += [p1, p2]
        for port in (relay.port, replica.port):
            with redis.Redis(port=port) as c:
                c.get("k1")
                c.lrange("list", 0, 3)
        ours, real = _scrape(ours_addr), _scrape(real_addr)
        assert ours is not None and real is not None
        missing = {f for f in _families(real) - _families(ours) if not EXPORTER_EXCEPTIONS.match(f)}
        assert not missing, sorted(missing)
        assert ours["redis_up"] == 1
        log = (tmp_path / f"exporter-{relay.port}.log").read_text()
        assert "level=error" not in log, log[-2000:]
        # Hits and misses counted: N GETs of existing keys, M of missing ones.
        n, m = 11, 7
        with relay.client() as c:
            for i in range(n):
                c.get(f"k{i}")
            for i in range(m):
                c.get(f"gone{i}")
        after = _scrape(ours_addr)
        assert after is not None
        assert after["redis_keyspace_hits_total"] - ours["redis_keyspace_hits_total"] == n
        assert after["redis_keyspace_misses_total"] - ours["redis_keyspace_misses_total"] == m
        assert after['redis_commands_total{cmd="get"}'] >= n + m
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


# ---- redis-cli --replica ----


def test_redis_cli_replica_never_hangs(relays: list[RelayProcess]) -> None:
    """50 runs in a row: each finds the end of the EOF-marked snapshot and prints the first
    stream command after a write (the stream waits for its `REPLCONF ACK 0`)."""
    kind = KINDS[0]
    master = start_server(kind)
    try:
        relay = start_relay(upstream_url(master))
        relays.append(relay)
        relay.wait_in_sync_with(master)
        cli = shutil.which("redis-cli")
        assert cli
        for run in range(50):
            proc = subprocess.Popen(
                [cli, "-p", str(relay.port), "--replica"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            assert proc.stdout is not None
            os.set_blocking(proc.stdout.fileno(), False)
            seen = b""
            marker = f"run{run}".encode()
            deadline = time.monotonic() + 30
            wrote = False
            try:
                while marker not in seen:
                    assert time.monotonic() < deadline, f"run {run} hung: {seen[-500:]!r}"
                    chunk = proc.stdout.read() or b""
                    seen += chunk
                    if not wrote and b"Logging commands from master" in seen:
                        with master.client() as c:
                            c.set(f"run{run}", run)
                        wrote = True
                    time.sleep(0.02)
            finally:
                proc.kill()
                proc.wait(10)
    finally:
        master.stop()


# ---- full syncs that keep failing ----


def test_full_syncs_to_a_replica_that_cannot_load_them_back_off(relays: list[RelayProcess]) -> None:
    # Whatever REPLPROXY_TEST_KINDS says: the point is one kind feeding the other.
    installed = {k.name: k for k in all_kinds()}
    new, old = installed.get("redis8"), installed.get("redis7")
    assert new is not None and old is not None, "needs redis8 (RDB 12) and redis7"
    master = start_server(new)
    down = None
    try:
        with master.client() as c:
            c.set("k", "v")
        relay = start_relay(upstream_url(master), "--repl-full-sync-backoff-max", "4")
        relays.append(relay)
        relay.wait_in_sync_with(master)
        down = start_server(old, extra={"replicaof": f"127.0.0.1 {relay.port}"})
        window = 20.0
        time.sleep(window)
        served = relay.metrics()
        syncs = served["replproxy_downstream_sync_full_total"]
        held = served["replproxy_downstream_full_sync_backoff_total"]
        # 1 + 2 + 4 s, then every 4 s: a handful in the window, never a tight loop.
        assert 3 <= syncs <= 3 + window / 4 + 2, syncs
        assert held >= syncs - 2
        assert "the next one waits" in relay.log()
        assert down.info("replication")["master_link_status"] == "down"
    finally:
        if down is not None:
            down.stop()
        master.stop()


# ---- client output memory ----


def _rss(pid: int) -> int:
    """The process's peak resident set size (VmHWM): a transient peak counts too."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def test_clients_that_do_not_read_keep_memory_bounded(relays: list[RelayProcess]) -> None:
    kind = KINDS[0]
    master = start_server(kind)
    budget = 1024 * 1024
    try:
        with master.client() as c:
            c.rpush("big", *[f"element-{i:06d}" for i in range(10_000)])
            for i in range(200):
                c.set(f"k{i}", f"v{i}")
        # All clients' output over 1 MB: the biggest are evicted; one client's over 256 KB
        # for 2 s: it is closed.
        relay = start_relay(
            upstream_url(master),
            "--maxmemory-clients",
            "1mb",
            "--client-output-buffer-limit-normal",
            "0 256kb 2",
        )
        relays.append(relay)
        relay.wait_in_sync_with(master)
        with relay.client() as c:
            expected = c.lrange("big", 0, -1)
        base = _rss(relay.proc.pid)
        peak = base
        # Four clients pipeline 2000 LRANGEs of the whole list (2000 x ~180 KB) and never
        # read; 50 others keep checking their answers meanwhile.
        request = b"*4\r\n$6\r\nLRANGE\r\n$3\r\nbig\r\n$1\r\n0\r\n$2\r\n-1\r\n" * 2000
        hostile = []
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", relay.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(request)
            hostile.append(s)
        errors: list[str] = []
        stop = threading.Event()

        def well_behaved(i: int) -> None:
            try:
                with relay.client() as c:
                    while not stop.is_set():
                        assert c.get(f"k{i % 200}") == f"v{i % 200}".encode()
                        if i % 10 == 0:
                            assert c.lrange("big", 0, 99) == expected[:100]
            except Exception as e:  # reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=well_behaved, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        addrs = {"{}:{}".format(*s.getsockname()[:2]) for s in hostile}

        def still_connected() -> set[str]:
            with relay.client() as c:
                return addrs & {x["addr"] for x in c.client_list()}

        deadline = time.monotonic() + 30
        cut = False
        while time.monotonic() < deadline and not cut:
            peak = max(peak, _rss(relay.proc.pid))
            cut = not still_connected()
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(30)
        assert not errors, errors[:3]
        assert cut, still_connected()
        assert "client evicted" in relay.log()  # maxmemory-clients chose the biggest
        assert peak - base < budget + 32 * 1024 * 1024, (base, peak)
        for s in hostile:
            s.close()
    finally:
        master.stop()


def test_a_reply_over_the_client_limits_is_refused_before_it_is_built(
    relays: list[RelayProcess],
) -> None:
    """LRANGE of a 100k-element list (about 2 MB) with a 1 MB hard limit: the client is
    closed without the reply being encoded; the reply fits once the limit allows it."""
    kind = KINDS[0]
    master = start_server(kind)
    try:
        with master.client() as c:
            for start in range(0, 100_000, 10_000):
                c.rpush("big", *[f"element-{i:06d}" for i in range(start, start + 10_000)])
        relay = start_relay(upstream_url(master), "--client-output-buffer-limit-normal", "1mb 0 0")
        relays.append(relay)
        relay.wait_in_sync_with(master)
        with relay.client() as c:
            assert len(c.lrange("big", 0, 999)) == 1000  # small ranges are served
            with pytest.raises(redis.ConnectionError):
                c.lrange("big", 0, -1)
        assert "output limits: a reply of at least" in relay.log()
        with relay.client() as c:
            c.config_set("client-output-buffer-limit", "normal 4mb 0 0")
            assert len(c.lrange("big", 0, -1)) == 100_000
            assert relay.info("stats")["total_connections_received"] >= 2
    finally:
        master.stop()
