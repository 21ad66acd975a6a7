"""Upstream failover: the relay follows a promoted replica without a full sync, and so do
the relay's own replicas (PSYNC2 through replid2 at every link of the chain)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import ServerKind, wait_for
from tests.harness.workload import Workload
from tests.test_downstream_integration import (
    DBS,
    PARTIAL_ACCEPTED,
    assert_same_digests,
    offset_of,
    replicate_from,
    stats,
)

pytestmark = pytest.mark.timeout(180)


def test_relay_repointed_to_a_promoted_replica_continues_and_its_replicas_follow(
    start: Any, server_kind: ServerKind, relays: list[RelayProcess]
) -> None:
    old_master = start()
    standby = start()  # a real replica of the master, to be promoted
    replicate_from(standby, ("127.0.0.1", old_master.port))
    relay = start_relay(upstream_url(old_master))
    relays.append(relay)
    downstream = start()
    replicate_from(downstream, ("127.0.0.1", relay.port))
    w = Workload(old_master, seed=81, dbs=DBS)
    w.run(500)

    def all_at(offset: int) -> bool:
        return all(offset_of(s) == offset for s in (standby, relay, downstream))

    # A managed failover: the old master stops writing (active expiry and pings too), and
    # the standby, the relay and its replica reach the same offset before the promotion.
    with old_master.client() as c:
        if server_kind.version >= (6, 2, 0):
            c.execute_command("CLIENT", "PAUSE", 60000, "WRITE")
        else:  # CLIENT PAUSE would block our INFO too; stopping active expiry is enough
            c.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 0)
    wait_for(lambda: all_at(offset_of(old_master)), 60, what="everyone at the master's offset")
    old_id = old_master.info("replication")["master_replid"]

    # Failover: the standby is promoted, the old master goes away, the relay is re-pointed.
    with standby.client() as c:
        c.execute_command("REPLICAOF", "NO", "ONE")
    old_master.stop()
    served_full, served_partial, _ = stats(relay)
    with relay.client() as c:
        assert c.execute_command("REPLICAOF", "127.0.0.1", standby.port) == b"OK"
        assert (
            c.execute_command("REPLICAOF", "127.0.0.1", standby.port)
            == b"OK Already connected to specified master"
        )
        with pytest.raises(Exception, match="REPLICAOF NO ONE is not supported"):
            c.execute_command("REPLICAOF", "NO", "ONE")
    new_id = standby.info("replication")["master_replid"]
    assert new_id != old_id

    Workload(standby, seed=82, dbs=DBS).run(300)
    wait_for(
        lambda: relay.info("replication")["master_replid"] == new_id,
        60,
        what="the relay to adopt the promoted master's replid",
    )
    info = relay.info("replication")
    assert info["master_port"] == standby.port
    assert info["master_replid2"] == old_id  # our old history stays continuable
    # The promoted master continued us (no full sync of the relay) ...
    s_full, s_partial = (int(standby.info("stats")[k]) for k in ("sync_full", "sync_partial_ok"))
    assert (s_full, s_partial) == (0, 1)
    assert relay.metrics()["replproxy_resyncs_full_total"] == 1
    # ... and the relay continued its own replica through replid2, learning the new id.
    wait_for(
        lambda: downstream.info("replication")["master_replid"] == new_id,
        60,
        what="the downstream replica to learn the new replid",
    )
    assert_same_digests(standby, relay, [downstream])
    full, partial, _ = stats(relay)
    assert full == served_full and partial >= served_partial + 1
    assert downstream.log().count(PARTIAL_ACCEPTED) >= 1
