"""The upstream link against real masters of every available kind.

Each test starts a real redis-server / valkey-server and a real replproxy process, and judges
the link by what the MASTER reports (INFO replication, sync counters, WAIT) and by what the
relay reports (INFO, /metrics, its log).
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, ServerKind, wait_for

pytestmark = [pytest.mark.timeout(300), pytest.mark.one_kind]


def write_some(master: RedisServer, n: int = 200, prefix: str = "k") -> None:
    with master.client() as c:
        p = c.pipeline(transaction=False)
        for i in range(n):
            p.set(f"{prefix}:{i}", f"value-{i}")
            p.hset(f"{prefix}:h:{i % 10}", f"f{i}", i)
        p.execute()


def slave0(master: RedisServer) -> dict[str, Any]:
    info = master.info("replication")
    return info.get("slave0", {})


def master_offset(master: RedisServer) -> int:
    return int(master.info("replication")["master_repl_offset"])


def stats(master: RedisServer) -> tuple[int, int]:
    s = master.info("stats")
    return int(s["sync_full"]), int(s["sync_partial_ok"])


def wait_master_sees_online(master: RedisServer, timeout: float = 60) -> None:
    def ok() -> bool:
        s = slave0(master)
        return s.get("state") == "online" and s.get("offset") == master_offset(master)

    wait_for(ok, timeout, what="master to list the relay online at its offset")


@pytest.mark.parametrize("diskless", ["yes", "no"])
def test_master_lists_relay_online_with_equal_offsets(
    start, server_kind: ServerKind, relays: list[RelayProcess], diskless: str
) -> None:
    master = start(extra={"repl-diskless-sync": diskless, "repl-diskless-sync-delay": "0"})
    write_some(master)
    relay = start_relay(upstream_url(master))
    relays.append(relay)
    write_some(master, prefix="after")  # streamed, not in the snapshot
    off = relay.wait_in_sync_with(master)
    wait_master_sees_online(master)
    assert slave0(master)["port"] == relay.port
    m = relay.metrics()
    assert m["replproxy_master_link_up"] == 1
    assert m["replproxy_master_repl_offset"] >= off
    assert m['replproxy_master_link_state{state="connected"}'] == 1
    assert relay.info("replication")["master_replid"] == master.info("replication")["master_replid"]
    # The snapshot is kept on disk for later downstream full syncs.
    assert (relay.dir / "upstream.rdb").stat().st_size > 0
    assert "snapshot loaded: 210 keys" in relay.log()  # every key of the snapshot


def test_wait_on_master_is_answered_by_getack(
    master: RedisServer, relays: list[RelayProcess]
) -> None:
    relays.append(start_relay(upstream_url(master)))
    wait_master_sees_online(master)
    with master.client() as c:
        c.set("x", "1")
        assert c.execute_command("WAIT", 1, 5000) == 1


def test_client_kill_replica_gives_partial_resync(
    master: RedisServer, server_kind: ServerKind, relays: list[RelayProcess]
) -> None:
    write_some(master)
    relay = start_relay(upstream_url(master))
    relays.append(relay)
    wait_master_sees_online(master)
    full, partial = stats(master)
    with master.client() as c:
        assert c.execute_command("CLIENT", "KILL", "TYPE", server_kind.replica_type) >= 1
    write_some(master, prefix="during")
    wait_for(lambda: stats(master)[1] == partial + 1, 30, what="a partial resync on the master")
    relay.wait_in_sync_with(master)
    assert stats(master) == (full, partial + 1)
    assert relay.metrics()["replproxy_resyncs_partial_total"] == 1
    assert relay.metrics()["replproxy_resyncs_full_total"] == 1


def test_requirepass_master(start, relays: list[RelayProcess]) -> None:
    master = start(password="hunter2")
    relay = start_relay(upstream_url(master))
    relays.append(relay)
    write_some(master)
    relay.wait_in_sync_with(master)
    wait_master_sees_online(master)


def test_acl_user_master(start, server_kind: ServerKind, relays: list[RelayProcess]) -> None:
    if server_kind.major < 6:
        pytest.skip("ACL users exist from Redis 6")
    master = start(password="adminpw")
    with master.client() as c:
        c.execute_command(
            "ACL", "SETUSER", "relay", "on", ">relaypw", "+psync", "+replconf", "+ping", "+sync"
        )
    relay = start_relay(upstream_url(master, username="relay", password="relaypw"))
    relays.append(relay)
    write_some(master)
    relay.wait_in_sync_with(master)
    wait_master_sees_online(master)


def test_wrong_password_logs_clearly_and_retries_with_backoff(
    start, relays: list[RelayProcess]
) -> None:
    master = start(password="right")
    relay = start_relay(
        upstream_url(master, password="wrong"), "--reconnect-backoff-max", "1", wait_ready=False
    )
    relays.append(relay)
    wait_for(
        lambda: relay.log().count("Unable to AUTH to MASTER") >= 3,
        30,
        what="several failed AUTH attempts in the log",
    )
    assert relay.alive()
    assert relay.http("/livez")[0] == 200
    status, body = relay.http("/readyz")
    assert status == 503 and "initial sync not complete" in body
    assert relay.metrics()["replproxy_link_connect_attempts_total"] >= 3
    assert "Traceback" not in relay.log()


def test_master_restarted_without_persistence_full_resyncs(
    start, relays: list[RelayProcess]
) -> None:
    master = start()
    write_some(master)
    relay = start_relay(upstream_url(master), "--reconnect-backoff-max", "1")
    relays.append(relay)
    relay.wait_in_sync_with(master)
    old_id = master.info("replication")["master_replid"]
    master.restart()  # no RDB, no AOF: a brand-new history
    write_some(master, n=50, prefix="new")

    def adopted_new_history() -> bool:
        # A master changes its replid again when its first replica attaches, so compare with
        # the id it has now.
        now_id = master.info("replication")["master_replid"]
        return now_id != old_id and relay.info("replication")["master_replid"] == now_id

    wait_for(adopted_new_history, 60, what="the relay to adopt the restarted master's replid")
    relay.wait_in_sync_with(master)
    assert relay.metrics()["replproxy_resyncs_full_total"] == 2
    assert relay.log().count("snapshot loaded:") == 2


@pytest.mark.slow
def test_snapshot_over_100mb_transfers_with_right_offsets(
    start, relays: list[RelayProcess]
) -> None:
    # rdbcompression off: DEBUG POPULATE's padded values would otherwise compress to little.
    master = start(extra={"rdbcompression": "no", "repl-diskless-sync": "no"})
    with master.client(socket_timeout=120) as c:
        c.execute_command("DEBUG", "POPULATE", 100_000, "big", 1100)
    write_some(master, n=100, prefix="tail")
    relay = start_relay(upstream_url(master))
    relays.append(relay)
    write_some(master, n=10, prefix="streamed")
    relay.wait_in_sync_with(master, timeout=120)
    size = (relay.dir / "upstream.rdb").stat().st_size
    assert size >= 100 * 1024 * 1024
    m = relay.metrics()
    assert m["replproxy_master_sync_read_bytes"] == m["replproxy_master_sync_total_bytes"] == size
    assert "snapshot loaded: 100110 keys" in relay.log()
    wait_master_sees_online(master)


def test_stalled_master_times_out_and_link_comes_back_with_partial_resync(
    master: RedisServer, relays: list[RelayProcess]
) -> None:
    write_some(master)
    relay = start_relay(upstream_url(master), "--repl-timeout", "2", "--reconnect-backoff-max", "1")
    relays.append(relay)
    relay.wait_in_sync_with(master)
    full, partial = stats(master)
    master.proc.send_signal(signal.SIGSTOP)  # alive but silent: only a timeout can tell
    try:
        wait_for(
            lambda: relay.metrics()["replproxy_master_link_up"] == 0,
            30,
            what="the relay to notice the silent master",
        )
        assert "MASTER timeout: no data nor PING received" in relay.log()
        assert relay.http("/readyz")[0] == 503
    finally:
        master.proc.send_signal(signal.SIGCONT)
    write_some(master, prefix="after")
    relay.wait_in_sync_with(master)
    assert stats(master) == (full, partial + 1)
