"""The disk-backed log with real servers: a replica away for longer than the memory backlog
covers (and across a restart of replproxy) still partially resyncs."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import redis

from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, ServerKind, start_server, wait_for
from tests.test_downstream_integration import PARTIAL_ACCEPTED, assert_same_digests, stats

pytestmark = [pytest.mark.timeout(300), pytest.mark.one_kind]

VALUE = b"v" * 100_000


def write_mb(master: RedisServer, mb: int) -> None:
    """`mb` megabytes of stream: 100 kB SETs over a few keys (the master stays small)."""
    with master.client(socket_timeout=120) as c:
        for batch in range(mb // 5):
            p = c.pipeline(transaction=False)
            for i in range(50):
                p.set(f"big:{(batch * 50 + i) % 20}", VALUE)
            p.execute()


def test_replica_away_for_200mb_and_a_relay_restart_partially_resyncs_from_disk(
    start: Any, server_kind: ServerKind, relays: list[RelayProcess]
) -> None:
    master = start(extra={"repl-backlog-size": "64mb"})
    disk_flags = ("--repl-backlog-size", "1mb", "--repl-backlog-disk-size", "1gb")
    relay = start_relay(upstream_url(master), *disk_flags)
    relays.append(relay)
    # A replica that persists its dataset and replication position, as in production.
    replica = start(extra={"replicaof": f"127.0.0.1 {relay.port}", "save": "3600 1"})
    write_mb(master, 5)
    wait_for(
        lambda: replica.info("replication").get("master_link_status") == "up",
        60,
        what="the replica online",
    )
    wait_for(
        lambda: (
            int(replica.info("replication")["slave_repl_offset"])
            == int(master.info("replication")["master_repl_offset"])
        ),
        60,
        what="the replica caught up",
    )
    # The server closes the connection as it exits: no reply to wait for.
    with replica.client() as c, contextlib.suppress(redis.ConnectionError):
        c.execute_command("SHUTDOWN", "SAVE")
    replica.proc.wait(30)
    served_full, served_partial, _ = stats(relay)

    write_mb(master, 100)  # far past the 1 MB memory backlog
    relay.wait_in_sync_with(master, timeout=120)
    relay.stop()  # the relay restarts meanwhile; its disk log survives
    relay = start_relay(upstream_url(master), *disk_flags, dir=relay.dir, port=relay.port)
    relays.append(relay)
    write_mb(master, 100)

    back = start_server(
        server_kind,
        port=replica.port,
        dir=replica.dir,
        extra={"replicaof": f"127.0.0.1 {relay.port}", "save": "3600 1"},
    )
    try:
        wait_for(
            lambda: PARTIAL_ACCEPTED in back.log(),
            120,
            what="the returning replica to continue from the disk log",
        )
        assert_same_digests(master, relay, [back])
        full, partial, _ = stats(relay)  # counters of the restarted relay
        assert full == 0 and partial == 1
        assert served_full == 1 and served_partial == 0  # before: its one first full sync
    finally:
        back.stop()
