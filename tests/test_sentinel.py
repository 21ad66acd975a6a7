"""The Sentinel-aware upstream (issue 15): three real Sentinels, a master, its replica, and the
relay started with `--sentinel` and no `--upstream`.

SIGKILL of the master makes the Sentinels promote the replica; the relay follows it from the
`+switch-master` message with a partial resync through the promoted server's replid2. The
relay announces a port nobody listens on, so the Sentinels cannot reconfigure it themselves
(their `SLAVEOF` to known replicas): what moves it is its own subscription.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from replproxy.config import parse_sentinel_addrs
from replproxy.sentinel import switch_master_target
from tests.harness.relay import RelayProcess, start_relay
from tests.harness.servers import RedisServer, available_kinds, free_port, start_server, wait_for
from tests.harness.tlsutil import Certs
from tests.harness.workload import Workload
from tests.test_downstream_integration import DBS, offset_of

pytestmark = pytest.mark.timeout(240)

MASTER_NAME = "mymaster"


def test_switch_master_messages_and_addresses() -> None:
    msg = b"mymaster 127.0.0.1 6379 127.0.0.1 6380"
    assert switch_master_target(msg, "mymaster") == ("127.0.0.1", 6380)
    assert switch_master_target(msg, "other") is None
    assert switch_master_target(b"mymaster 1 2 3", "mymaster") is None
    assert parse_sentinel_addrs("a:1, b ,[::1]:3") == (("a", 1), ("b", 26379), ("::1", 3))


@dataclass
class Sentinel:
    port: int
    proc: subprocess.Popen[bytes]
    logfile: Path

    def client(self) -> redis.Redis:
        return redis.Redis("127.0.0.1", self.port, socket_timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def start_sentinel(
    master: RedisServer, dir: Path, extra: str = "", client_kwargs: dict[str, Any] | None = None
) -> Sentinel:
    port = free_port()
    conf = dir / f"sentinel-{port}.conf"
    logfile = dir / f"sentinel-{port}.log"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndaemonize no\nlogfile {logfile}\ndir {dir}\n"
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 2\n"
        f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
        f"sentinel failover-timeout {MASTER_NAME} 5000\n" + extra.replace("{port}", str(port))
    )
    proc = subprocess.Popen(
        [master.kind.binary, str(conf), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    s = Sentinel(port, proc, logfile)

    def up() -> bool:
        try:
            with redis.Redis("127.0.0.1", port, socket_timeout=10, **(client_kwargs or {})) as c:
                return bool(c.ping())
        except redis.ConnectionError:
            return False

    wait_for(up, 20, what="a sentinel to answer")
    return s


@pytest.fixture
def stack() -> Iterator[list[object]]:
    """Everything started, stopped at the end in reverse order."""
    started: list[object] = []
    try:
        yield started
    finally:
        for thing in reversed(started):
            thing.stop()  # type: ignore[attr-defined]


@pytest.mark.slow
def test_relay_follows_a_sentinel_failover_with_a_partial_resync_and_restarts_there(
    stack: list[object],
) -> None:
    kind = next(k for k in available_kinds() if k.major >= 7)
    master = start_server(kind)
    stack.append(master)
    standby = start_server(kind, extra={"replicaof": f"127.0.0.1 {master.port}"})
    stack.append(standby)
    dir = Path(tempfile.mkdtemp(prefix="replproxy-sentinels-"))
    sentinels = [start_sentinel(master, dir) for _ in range(3)]
    stack.extend(sentinels)
    addrs = ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
    args = (
        "--sentinel",
        addrs,
        "--sentinel-master",
        MASTER_NAME,
        "--replica-announce-port",
        str(free_port()),
        "--reconnect-backoff-max",
        "1",
    )
    relay = start_relay("", *args)
    stack.append(relay)
    assert relay.info("replication")["master_port"] == master.port  # as the Sentinels said
    Workload(master, seed=171, dbs=DBS).run(400)

    def sentinels_ready() -> bool:
        for s in sentinels:
            with s.client() as c:
                replicas = c.sentinel_slaves(MASTER_NAME)
                others = c.sentinel_sentinels(MASTER_NAME)
            if len(others) != 2 or standby.port not in [r["port"] for r in replicas]:
                return False
        return True

    wait_for(sentinels_ready, 60, interval=0.5, what="the Sentinels to know each other")
    # The master stops producing (writes, PINGs, the Sentinels' hellos) so that the standby
    # and the relay hold the same history when it dies.
    with master.client() as c:
        c.execute_command("CLIENT", "PAUSE", 60000, "WRITE")
    wait_for(
        lambda: offset_of(standby) == offset_of(relay) == offset_of(master),
        60,
        what="the standby and the relay at the master's offset",
    )
    old_id = master.info("replication")["master_replid"]
    master.kill()

    wait_for(
        lambda: relay.info("replication")["master_port"] == standby.port,
        90,
        interval=0.2,
        what="the relay to follow the promoted standby",
    )
    new_id = standby.info("replication")["master_replid"]
    assert standby.info("replication")["role"] == "master" and new_id != old_id
    wait_for(
        lambda: relay.info("replication")["master_link_status"] == "up",
        60,
        what="the link up with the new master",
    )
    log = relay.log()
    assert f"+switch-master {MASTER_NAME} 127.0.0.1 {master.port} 127.0.0.1 {standby.port}" in log
    info = relay.info("replication")
    assert (info["master_replid"], info["master_replid2"]) == (new_id, old_id)
    m = relay.metrics()
    assert (m["replproxy_resyncs_full_total"], m["replproxy_resyncs_partial_total"]) == (1, 1)
    s_stats = standby.info("stats")
    assert (s_stats["sync_full"], s_stats["sync_partial_ok"]) == (0, 1)

    w = Workload(standby, seed=172, dbs=DBS)
    w.run(300)
    relay.wait_in_sync_with(standby)
    _same_digest(standby, relay)

    # A restart - with every Sentinel down - connects to the master it followed last (the
    # state file), not to the stale one, and continues with a partial resync.
    relay.stop()
    for s in sentinels:
        s.stop()
    w.run(100)
    again = start_relay("", *args, dir=relay.dir, port=relay.port)
    stack.append(again)
    assert again.info("replication")["master_port"] == standby.port
    again.wait_in_sync_with(standby)
    assert standby.info("stats")["sync_full"] == 0
    assert standby.info("stats")["sync_partial_ok"] == 2
    assert "the master followed before the restart (state file)" in again.log()
    _same_digest(standby, again)
    assert "Traceback" not in relay.log() + again.log()


def _same_digest(server: RedisServer, relay: RelayProcess) -> None:
    def digests() -> bool:
        with server.client() as a, relay.client() as b:
            return bool(
                a.execute_command("DEBUG", "DIGEST") == b.execute_command("DEBUG", "DIGEST")
            )

    wait_for(digests, 30, interval=0.5, what="equal DEBUG DIGEST")


def test_sentinels_over_tls_with_a_password(stack: list[object]) -> None:
    """`--sentinel-tls yes` and `--sentinel-password`: a TLS-only Sentinel that wants AUTH
    tells the relay where the master is."""
    kind = next(k for k in available_kinds() if k.major >= 7)
    master = start_server(kind)
    stack.append(master)
    dir = Path(tempfile.mkdtemp(prefix="replproxy-sentinels-"))
    certs = Certs(dir)
    cert, key = certs.issue("sentinel")
    # Its TLS port is the one chosen for it; the plain port is off.
    extra = (
        f"tls-port {{port}}\nport 0\ntls-cert-file {cert}\ntls-key-file {key}\n"
        f"tls-ca-cert-file {certs.ca_file}\nrequirepass s3cret\n"
    )
    tls_sentinel = start_sentinel(
        master, dir, extra, client_kwargs={**certs.client_kwargs(), "password": "s3cret"}
    )
    stack.append(tls_sentinel)
    relay_cert, relay_key = certs.issue("relay-client")
    relay = start_relay(
        "",
        "--sentinel",
        f"127.0.0.1:{tls_sentinel.port}",
        "--sentinel-master",
        MASTER_NAME,
        "--sentinel-tls",
        "yes",
        "--sentinel-password",
        "s3cret",
        "--tls-cert-file",
        str(relay_cert),
        "--tls-key-file",
        str(relay_key),
        "--tls-ca-cert-file",
        str(certs.ca_file),
    )
    stack.append(relay)
    assert relay.info("replication")["master_port"] == master.port
    assert f"sentinel 127.0.0.1:{tls_sentinel.port}: master 'mymaster' is at" in relay.log()


@pytest.mark.slow
def test_a_restart_after_a_failover_follows_the_new_master_unless_upstream_changed(
    stack: list[object],
) -> None:
    """Without Sentinels: the relay re-pointed the way Sentinel reconfigures a replica (its
    MULTI / SLAVEOF / CONFIG REWRITE / CLIENT KILL / EXEC) restarts on the new master while
    `--upstream` still names the old one, and on the configured one once it changes."""
    kind = next(k for k in available_kinds() if k.major >= 7)
    old = start_server(kind)
    stack.append(old)
    new = start_server(kind, extra={"replicaof": f"127.0.0.1 {old.port}"})
    stack.append(new)
    relay = start_relay(f"redis://127.0.0.1:{old.port}")
    stack.append(relay)
    Workload(old, seed=173, dbs=DBS).run(200)
    wait_for(
        lambda: offset_of(new) == offset_of(relay) == offset_of(old),
        60,
        what="the standby and the relay at the master's offset",
    )
    with new.client() as c:
        c.execute_command("REPLICAOF", "NO", "ONE")
    with relay.client() as c:
        p = c.pipeline(transaction=True)
        p.execute_command("SLAVEOF", "127.0.0.1", new.port)
        p.execute_command("CONFIG", "REWRITE")
        p.execute_command("CLIENT", "KILL", "TYPE", "normal")
        p.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        replies = p.execute(raise_on_error=False)
    assert replies[0] in (True, b"OK")  # redis-py turns +OK into True
    assert isinstance(replies[1], redis.ResponseError)  # CONFIG REWRITE: not offered
    wait_for(
        lambda: relay.info("replication")["master_port"] == new.port,
        30,
        what="the relay re-pointed",
    )
    relay.wait_in_sync_with(new)
    relay.stop()  # SIGTERM: the final save records the master followed

    again = start_relay(f"redis://127.0.0.1:{old.port}", dir=relay.dir, port=relay.port)
    stack.append(again)
    assert again.info("replication")["master_port"] == new.port
    assert "the master followed before the restart (state file)" in again.log()
    again.stop()

    # A changed --upstream is the operator's new choice: it wins over the state file.
    other = start_server(kind, extra={"replicaof": f"127.0.0.1 {new.port}"})
    stack.append(other)
    wait_for(lambda: offset_of(other) == offset_of(new), 60, what="the chained replica")
    third = start_relay(f"redis://127.0.0.1:{other.port}", dir=relay.dir, port=relay.port)
    stack.append(third)
    assert third.info("replication")["master_port"] == other.port
