"""replproxy as the master of real redis-server / valkey-server replicas (issue 6).

master -> replproxy -> replicas, every process real. The proofs are what the servers report:
the master's INFO (it sees one replica, one full sync), the replicas' logs and INFO, replproxy's
INFO stats (`sync_*` count what replproxy SERVED, as on a Redis master) and DEBUG DIGEST of
everyone.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import kind_by_name
from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, ServerKind, start_server, wait_for
from tests.harness.workload import Workload

pytestmark = [pytest.mark.timeout(180), pytest.mark.one_kind]

DBS = 3
PARTIAL_ACCEPTED = "accepted a Partial Resynchronization"  # Master|Primary (Valkey)


def replica_kinds(kind: ServerKind, n: int) -> list[ServerKind]:
    """Mix kinds where the RDB version allows: Valkey 8.1 loads Redis 7.0's RDB 10 (not the
    other way round: Redis 7.0 cannot load Valkey's RDB 11)."""
    kinds = [kind] * n
    valkey = kind_by_name("valkey8")
    if kind.name == "redis7" and valkey is not None:
        kinds[-1] = valkey
    return kinds


def replicate_from(replica: RedisServer, host_port: tuple[str, int]) -> None:
    with replica.client() as c:
        c.execute_command("REPLICAOF", *host_port)


def offset_of(server: RedisServer | RelayProcess) -> int:
    info = server.info("replication")
    key = "master_repl_offset" if info.get("role") == "master" else "slave_repl_offset"
    return int(info[key])


def stats(server: RedisServer | RelayProcess) -> tuple[int, int, int]:
    s: dict[str, Any] = server.info("stats")
    return int(s["sync_full"]), int(s["sync_partial_ok"]), int(s["sync_partial_err"])


def wait_replicas_synced(
    master: RedisServer, replicas: list[RedisServer], timeout: float = 60
) -> None:
    def synced() -> bool:
        target = offset_of(master)
        for r in replicas:
            info = r.info("replication")
            if info.get("master_link_status") != "up" or offset_of(r) != target:
                return False
        return True

    wait_for(synced, timeout, interval=0.1, what="every downstream replica at the master's offset")


def digest(server: RedisServer | RelayProcess) -> bytes:
    with server.client() as c:
        return c.execute_command("DEBUG", "DIGEST")


def dbsizes(server: RedisServer) -> list[int]:
    out = []
    for db in range(DBS):
        with server.client(db=db) as c:
            out.append(int(c.dbsize()))
    return out


def assert_same_digests(
    master: RedisServer, relay: RelayProcess, replicas: list[RedisServer]
) -> None:
    """Eventually equal: the master's active expiry keeps sending DELs after writes stop."""
    seen: list[object] = []

    # DEBUG DIGEST is not comparable across kinds (Valkey 8.1 and Redis 7.0 hash some values
    # differently), so a replica of another kind is compared by its key counts per DB.
    same = [r for r in replicas if r.kind == master.kind]
    other = [r for r in replicas if r.kind != master.kind]

    def equal() -> bool:
        wait_replicas_synced(master, replicas)
        digests = [digest(master), digest(relay), *(digest(r) for r in same)]
        sizes = [dbsizes(master), *(dbsizes(r) for r in other)]
        seen[:] = [digests, sizes]
        return len(set(digests)) == 1 and all(x == sizes[0] for x in sizes)

    try:
        wait_for(equal, 30, interval=0.5, what="equal DEBUG DIGEST everywhere")
    except AssertionError:
        raise AssertionError(f"digests master, relay, replicas: {seen}") from None


def chain(
    start: Any, relays: list[RelayProcess], kinds: list[ServerKind], *relay_args: str
) -> tuple[RedisServer, RelayProcess, list[RedisServer]]:
    master = start(extra={"repl-diskless-sync": "yes", "repl-diskless-sync-delay": "0"})
    relay = start_relay(upstream_url(master), *relay_args)
    relays.append(relay)
    replicas = [start(kind=k) for k in kinds]
    return master, relay, replicas


def test_three_downstream_replicas_under_workload_match_the_master(
    start: Any, server_kind: ServerKind, relays: list[RelayProcess]
) -> None:
    master, relay, replicas = chain(start, relays, replica_kinds(server_kind, 3))
    w = Workload(master, seed=61, dbs=DBS)
    w.run(300)
    replicate_from(replicas[0], ("127.0.0.1", relay.port))
    w.run(700)
    # The other two join mid-run: full syncs from the kept upstream snapshot + the backlog.
    for r in replicas[1:]:
        replicate_from(r, ("127.0.0.1", relay.port))
    w.run(1000)
    assert w.sent > 1500
    assert_same_digests(master, relay, replicas)

    m_info = master.info("replication")
    assert m_info["connected_slaves"] == 1  # the master only ever sees replproxy
    assert stats(master)[0] == 1
    r_info = relay.info("replication")
    assert r_info["connected_slaves"] == 3
    # slaveN lines follow the order the replicas connected in; the last two join together.
    lines: list[dict[str, Any]] = [r_info[f"slave{i}"] for i in range(3)]
    assert all(line["state"] == "online" for line in lines)
    assert sorted(line["port"] for line in lines) == sorted(rep.port for rep in replicas)
    wait_for(
        lambda: all(
            relay.info("replication")[f"slave{i}"]["offset"] == offset_of(master) for i in range(3)
        ),
        10,
        what="ACKed offsets in replproxy's slave lines",
    )
    assert stats(relay)[0] == 3  # served: one full sync per replica
    m = relay.metrics()
    assert m['replproxy_downstream_replicas{state="online"}'] == 3
    assert m["replproxy_downstream_sync_full_total"] == 3
    assert m["replproxy_resyncs_full_total"] == 1  # replproxy's own, with the master
    assert m["replproxy_downstream_snapshots_made_total"] == 0  # the upstream's was reused
    assert m["replproxy_downstream_snapshots_reused_total"] == 3
    assert m["replproxy_downstream_snapshot_waits_total"] == 0


def test_downstream_replica_link_killed_partially_resyncs(
    start: Any, server_kind: ServerKind, relays: list[RelayProcess]
) -> None:
    master, relay, (replica,) = chain(start, relays, [server_kind])
    Workload(master, seed=5, dbs=DBS).run(200)
    replicate_from(replica, ("127.0.0.1", relay.port))
    wait_replicas_synced(master, [replica])
    full, partial, _ = stats(relay)
    with replica.client() as c:
        assert c.execute_command("CLIENT", "KILL", "TYPE", "master") == 1
    Workload(master, seed=6, dbs=DBS).run(200)
    wait_for(lambda: stats(relay)[1] == partial + 1, 30, what="a partial resync served")
    assert_same_digests(master, relay, [replica])
    assert stats(relay)[0] == full  # no second full sync
    assert PARTIAL_ACCEPTED in replica.log()
    assert "Partial resynchronization request from" in relay.log()
    assert stats(master)[0] == 1


def test_downstream_replica_repointed_to_master_gets_continue(
    start: Any, server_kind: ServerKind, relays: list[RelayProcess]
) -> None:
    """PSYNC2 transparency: replproxy hands out the master's own replid and offsets."""
    master, relay, (replica,) = chain(start, relays, [server_kind])
    Workload(master, seed=9, dbs=DBS).run(300)
    replicate_from(replica, ("127.0.0.1", relay.port))
    wait_replicas_synced(master, [replica])
    m_full, m_partial, _ = stats(master)
    replicate_from(replica, (master.host, master.port))
    wait_for(lambda: stats(master)[1] == m_partial + 1, 30, what="the master to accept a PSYNC")
    Workload(master, seed=10, dbs=DBS).run(100)
    assert_same_digests(master, relay, [replica])
    assert stats(master)[0] == m_full
    assert replica.log().count(PARTIAL_ACCEPTED) == 1


def test_downstream_full_sync_from_a_fresh_snapshot_shared_by_replicas(
    start: Any, server_kind: ServerKind, relays: list[RelayProcess]
) -> None:
    """The backlog no longer holds the upstream snapshot's offset: a forked child writes
    replproxy's own keyspace at the current offset, once, for both replicas."""
    master, relay, replicas = chain(start, relays, [server_kind] * 2, "--repl-backlog-size", "16kb")
    Workload(master, seed=3, dbs=DBS).run(600)  # far more than 16 kB of stream
    relay.wait_in_sync_with(master)
    for r in replicas:
        replicate_from(r, ("127.0.0.1", relay.port))
    assert_same_digests(master, relay, replicas)
    m = relay.metrics()
    assert m["replproxy_downstream_snapshots_made_total"] == 1
    assert m["replproxy_downstream_sync_full_total"] == 2
    # The first asked before any usable snapshot existed: it waited for the one made, it did
    # not reuse one (the second may have joined it or come after it was made).
    waits = m["replproxy_downstream_snapshot_waits_total"]
    assert waits >= 1 and waits + m["replproxy_downstream_snapshots_reused_total"] == 2
    assert relay.log().count("Starting BGSAVE for downstream SYNC") == 1
    assert stats(master)[0] == 1
    # A later replica reuses the snapshot made then (the backlog still covers it).
    late = start(kind=server_kind)
    replicate_from(late, ("127.0.0.1", relay.port))
    assert_same_digests(master, relay, [*replicas, late])
    m2 = relay.metrics()
    assert m2["replproxy_downstream_snapshots_made_total"] == 1
    assert m2["replproxy_downstream_snapshots_reused_total"] == (
        m["replproxy_downstream_snapshots_reused_total"] + 1
    )


def test_psync_refused_with_nomasterlink_when_configured_and_link_down(
    start: Any, relays: list[RelayProcess]
) -> None:
    master = start()
    relay = start_relay(
        upstream_url(master),
        "--replica-serve-psync-when-down",
        "no",
        "--reconnect-backoff-max",
        "1",
    )
    relays.append(relay)
    master.stop()
    wait_for(lambda: relay.info()["master_link_status"] == "down", 30, what="link down")
    with relay.client() as c, pytest.raises(Exception, match="NOMASTERLINK"):
        c.execute_command("PSYNC", "?", "-1")


def test_downstream_replicas_of_a_restarted_relay_partially_resync(
    start: Any, server_kind: ServerKind, relays: list[RelayProcess]
) -> None:
    """SIGTERM lets the replicas take every byte and saves the position; the restarted relay
    continues the master's history, so its replicas continue too (issue 7)."""
    master, relay, replicas = chain(start, relays, [server_kind, server_kind])
    w = Workload(master, seed=71, dbs=DBS)
    w.run(400)
    for r in replicas:
        replicate_from(r, ("127.0.0.1", relay.port))
    wait_replicas_synced(master, replicas)
    m_full, m_partial, _ = stats(master)
    relay.stop()  # SIGTERM: drain replicas, save, exit
    assert relay.proc.returncode == 0
    w.run(300)  # the master moves on while the relay is away
    restarted = start_relay(upstream_url(master), dir=relay.dir, port=relay.port)
    relays.append(restarted)
    w.run(300)
    assert_same_digests(master, restarted, replicas)
    assert stats(master)[:2] == (m_full, m_partial + 1)  # the relay itself: partial
    full, partial, _ = stats(restarted)
    assert full == 0 and partial == len(replicas)  # served: partial resyncs only
    for r in replicas:
        assert r.log().count(PARTIAL_ACCEPTED) >= 1


def slave_lines(relay: RelayProcess) -> list[dict[str, Any]]:
    info = relay.info("replication")
    return [info[f"slave{i}"] for i in range(int(info["connected_slaves"]))]


def test_eight_downstream_replicas_at_once_share_one_snapshot(
    start: Any, server_kind: ServerKind, relays: list[RelayProcess]
) -> None:
    """A reconnect storm: 8 replicas ask at once; the backlog no longer covers the upstream
    snapshot, so one forked snapshot is made and every replica is served from it."""
    master, relay, replicas = chain(
        start, relays, replica_kinds(server_kind, 8), "--repl-backlog-size", "16kb"
    )
    Workload(master, seed=81, dbs=DBS).run(600)
    relay.wait_in_sync_with(master)
    for r in replicas:  # tight loop: all within the --repl-diskless-sync-delay window
        replicate_from(r, ("127.0.0.1", relay.port))
    assert_same_digests(master, relay, replicas)
    wait_for(
        lambda: [s["state"] for s in slave_lines(relay)] == ["online"] * 8,
        10,
        what="8 online slave lines",
    )
    assert sorted(s["port"] for s in slave_lines(relay)) == sorted(r.port for r in replicas)
    m = relay.metrics()
    assert m["replproxy_downstream_snapshots_made_total"] == 1
    # Every sync was served from it: those that asked before it was done waited for it.
    waits = m["replproxy_downstream_snapshot_waits_total"]
    assert waits >= 1 and waits + m["replproxy_downstream_snapshots_reused_total"] == 8
    assert m["replproxy_downstream_sync_full_total"] == 8
    assert m['replproxy_downstream_replicas{state="online"}'] == 8
    assert relay.log().count("Starting BGSAVE for downstream SYNC") == 1
    assert stats(master)[0] == 1  # the master untouched
    assert master.info("replication")["connected_slaves"] == 1


def test_stopped_downstream_replica_dropped_at_output_limit_others_keep_up(
    start: Any, server_kind: ServerKind, relays: list[RelayProcess]
) -> None:
    """A SIGSTOP-ed replica reads nothing: its unsent bytes pass the soft limit for its
    seconds and replproxy drops it, while the other replica keeps streaming."""
    master, relay, (stopped, live) = chain(
        start,
        relays,
        [server_kind] * 2,
        "--client-output-buffer-limit-replica",
        "1mb 512kb 2",
        "--repl-backlog-size",
        "64mb",  # the hard limit is raised to it: the soft one acts
    )
    Workload(master, seed=91, dbs=DBS).run(200)
    for r in (stopped, live):
        replicate_from(r, ("127.0.0.1", relay.port))
    wait_replicas_synced(master, [stopped, live])
    _, partial, _ = stats(relay)
    stopped.proc.send_signal(signal.SIGSTOP)
    try:
        value = b"x" * (256 * 1024)
        with master.client() as c:
            for i in range(48):  # 12 MB: more than the kernel's socket buffers absorb
                c.set(f"big:{i}", value)
        wait_for(
            lambda: (
                relay.metrics().get('replproxy_downstream_dropped_total{reason="output_limit"}')
                == 1
            ),
            20,
            what="the stopped replica dropped at its output limit",
        )
        assert [s["port"] for s in slave_lines(relay)] == [live.port]
        assert slave_lines(relay)[0]["state"] == "online"
        assert "overcoming of output buffer soft limit" in relay.log()
        Workload(master, seed=92, dbs=DBS).run(100)
        assert_same_digests(master, relay, [live])
    finally:
        stopped.proc.send_signal(signal.SIGCONT)
    # Back, it continues from the backlog (64 MB holds what it missed).
    wait_for(lambda: stats(relay)[1] == partial + 1, 30, what="the stopped one to PSYNC")
    assert_same_digests(master, relay, [live, stopped])
    assert stats(master)[0] == 1


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not on PATH")
def test_redis_cli_rdb_against_replproxy_gives_a_loadable_snapshot(
    start: Any, server_kind: ServerKind, relays: list[RelayProcess], tmp_path: Any
) -> None:
    """`redis-cli --rdb` (REPLCONF rdb-only 1, then SYNC): the snapshot only, then closed."""
    master, relay, _ = chain(start, relays, [])
    w = Workload(master, seed=101, dbs=DBS)
    w.run(300)
    relay.wait_in_sync_with(master)
    w.run(200)  # past the upstream snapshot: it + the backlog would be stale without a stream
    relay.wait_in_sync_with(master)
    out = tmp_path / "dump.rdb"
    cli = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(relay.port), "--rdb", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    verify = subprocess.run(
        [sys.executable, "-m", "replproxy", "rdb", "verify", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    wait_for(lambda: not slave_lines(relay), 10, what="the rdb-only replica gone")
    m = relay.metrics()
    assert m["replproxy_downstream_snapshots_made_total"] == 1
    assert m["replproxy_downstream_snapshot_waits_total"] == 1  # made for it: not a reuse
    assert m["replproxy_downstream_snapshots_reused_total"] == 0
    loaded = start_server(server_kind, dir=tmp_path, dbfilename="dump.rdb")
    try:
        assert_same_digests(master, relay, [])
        wait_for(lambda: digest(loaded) == digest(master), 10, what="the loaded digest")
    finally:
        loaded.stop()
    assert stats(master)[0] == 1


def test_upstream_full_resync_drops_downstream_replicas_they_full_sync_again(
    start: Any, server_kind: ServerKind, relays: list[RelayProcess]
) -> None:
    """The master restarts empty (no persistence): a new history. replproxy full-syncs, drops
    its replicas (their position is in the old history) and serves them a full sync."""
    master, relay, replicas = chain(
        start, relays, [server_kind] * 2, "--reconnect-backoff-max", "1"
    )
    Workload(master, seed=111, dbs=DBS).run(300)
    for r in replicas:
        replicate_from(r, ("127.0.0.1", relay.port))
    assert_same_digests(master, relay, replicas)
    full, partial, _ = stats(relay)
    old_replid = master.info("replication")["master_replid"]
    master.restart(extra={"repl-diskless-sync": "yes", "repl-diskless-sync-delay": "0"})
    assert master.info("replication")["master_replid"] != old_replid
    w = Workload(master, seed=112, dbs=DBS)
    w.run(300)
    wait_for(lambda: stats(relay)[0] == full + 2, 60, what="two more full syncs served")
    w.run(200)
    assert_same_digests(master, relay, replicas)
    assert stats(relay)[1] == partial  # no partial resync into the new history
    m = relay.metrics()
    assert m['replproxy_downstream_dropped_total{reason="history"}'] == 2
    assert m["replproxy_resyncs_full_total"] == 2  # replproxy's own: before and after
    assert stats(master)[0] == 1  # the restarted master: one full sync, replproxy's
    assert master.info("replication")["connected_slaves"] == 1
    for r in replicas:
        rid = r.info("replication")["master_replid"]
        assert rid == master.info("replication")["master_replid"]
