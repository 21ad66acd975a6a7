"""The relay holds exactly the master's data after any workload: the issue's end-to-end proofs.

Oracles: the master's own `DEBUG DIGEST` / `DEBUG DIGEST-VALUE` against the relay process's,
a key-by-key dump (type, value, TTL) of the master against the relay's, both read over RESP,
and the same dump of an in-process replica built from the same code.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.harness.mirror import Mirror, compare_servers, compare_with_master
from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, wait_for
from tests.harness.workload import Workload

pytestmark = [pytest.mark.timeout(300), pytest.mark.every_version]

DBS = 3


def digest_of(client_factory, what: list[str] | None = None) -> object:
    with client_factory() as c:
        if what is None:
            return c.execute_command("DEBUG", "DIGEST")
        return c.execute_command("DEBUG", "DIGEST-VALUE", *what)


def assert_same_dataset(master: RedisServer, relay: RelayProcess, timeout: float = 30) -> None:
    """Eventually equal: the master's active expiry keeps sending DELs after writes stop."""
    last: list[object] = []

    def equal() -> bool:
        relay.wait_in_sync_with(master)
        m, r = digest_of(master.client), digest_of(relay.client)
        last[:] = [m, r]
        return m == r

    try:
        wait_for(equal, timeout, interval=0.5, what="DEBUG DIGEST equal on master and relay")
    except AssertionError:
        # Say which keys differ, per DB, to make a failure actionable.
        diffs = []
        for db in range(DBS):
            with master.client(db=db) as mc, relay.client(db=db) as rc:
                keys = sorted(mc.keys("*"))
                if keys:
                    md = mc.execute_command("DEBUG", "DIGEST-VALUE", *keys)
                    rd = rc.execute_command("DEBUG", "DIGEST-VALUE", *keys)
                    diffs += [(db, k, mc.type(k)) for k, a, b in zip(keys, md, rd) if a != b]
        raise AssertionError(f"digests {last}; differing keys: {diffs[:20]}") from None
    # The same, read key by key as a client sees it, against the relay process itself.
    assert compare_servers(master, relay, range(DBS)) == []


def test_workload_leaves_relay_identical_to_master(
    master: RedisServer, relays: list[RelayProcess]
) -> None:
    relay = start_relay(upstream_url(master))
    relays.append(relay)
    w = Workload(master, seed=42, dbs=DBS)
    w.run(3000)
    assert w.sent > 2500
    assert_same_dataset(master, relay)
    with master.client() as c:
        assert c.execute_command("WAIT", 1, 5000) == 1
    # Every key, compared by content too, through an in-process replica of the same code.
    with Mirror(master) as mirror:
        w.run(500)
        mirror.sync()
        assert compare_with_master(mirror, range(DBS)) == []
        assert not mirror.keyspace.unsupported_commands
        assert not mirror.keyspace.apply_errors
    assert_same_dataset(master, relay)
    m = relay.metrics()
    assert not [k for k in m if k.startswith("replproxy_unsupported_commands_total{")]


def test_relay_joining_mid_workload_converges(
    master: RedisServer, relays: list[RelayProcess]
) -> None:
    w = Workload(master, seed=7, dbs=DBS)
    w.run(1000)
    stop = threading.Event()

    def drive() -> None:
        w2 = Workload(master, seed=8, dbs=DBS)
        while not stop.is_set():
            w2.run(50)

    t = threading.Thread(target=drive)
    t.start()
    try:
        relay = start_relay(upstream_url(master))  # full sync while writes go on
        relays.append(relay)
        time.sleep(1)
    finally:
        stop.set()
        t.join(30)
    assert_same_dataset(master, relay)


def test_forced_partial_resync_mid_workload(
    master: RedisServer, relays: list[RelayProcess]
) -> None:
    relay = start_relay(upstream_url(master))
    relays.append(relay)
    w = Workload(master, seed=99, dbs=DBS)
    w.run(1000)
    with master.client() as c:
        c.execute_command("CLIENT", "KILL", "TYPE", master.kind.replica_type)
    w.run(1000)
    assert_same_dataset(master, relay)
    assert relay.metrics()["replproxy_resyncs_partial_total"] >= 1
    assert relay.metrics()["replproxy_resyncs_full_total"] == 1


def test_transaction_is_never_half_visible(master: RedisServer, relays: list[RelayProcess]) -> None:
    relay = start_relay(upstream_url(master))
    relays.append(relay)
    with master.client() as c:
        c.mset({"a": 0, "b": 0})
    relay.wait_in_sync_with(master)
    stop = threading.Event()
    # One list per reader: only a single connection's reads are ordered in time.
    seen: list[list[tuple[int, int]]] = []

    def read() -> None:
        mine: list[tuple[int, int]] = []
        seen.append(mine)
        with relay.client() as rc:
            while not stop.is_set():
                a, b = rc.mget("a", "b")
                mine.append((int(a), int(b)))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        with master.client() as c:
            for _ in range(2000):
                p = c.pipeline(transaction=True)
                p.incr("a")
                p.incr("b")
                p.execute()
        relay.wait_in_sync_with(master)
    finally:
        stop.set()
        for t in readers:
            t.join(10)
    reads = [x for mine in seen for x in mine]
    assert len(reads) > 100
    assert all(a == b for a, b in reads), [x for x in reads if x[0] != x[1]][:5]
    # A connection never sees the dataset go back in time.
    assert all(mine == sorted(mine) for mine in seen)
    # Once the relay reports the master's offset, a read sees every transaction. (A reader's
    # last read may have been answered before that, so it is not the proof.)
    with relay.client() as rc:
        assert rc.mget("a", "b") == [b"2000", b"2000"]


def test_hyperloglog_bytes_identical(master: RedisServer, relays: list[RelayProcess]) -> None:
    relay = start_relay(upstream_url(master))
    relays.append(relay)
    with master.client() as c:
        c.pfadd("small", *[f"e{i}" for i in range(50)])
        c.pfadd("big", *[f"e{i}" for i in range(20000)])
        c.pfadd("other", *[f"x{i}" for i in range(700)])
        c.pfmerge("merged", "small", "other")
        c.pfmerge("merged_big", "big", "small")
        for k in ("small", "big", "merged"):
            c.pfcount(k)  # refreshes the cached cardinality: propagated
        c.pfadd("small", "late")
    relay.wait_in_sync_with(master)
    with master.client() as mc, relay.client() as rc:
        for k in ("small", "big", "other", "merged", "merged_big"):
            assert rc.get(k) == mc.get(k), k


def _commandstats(server: RedisServer | RelayProcess) -> tuple[int, dict[str, int]]:
    """(total_commands_processed, calls by command) without INFO's own calls, which the
    test makes a different number of times on each side while it waits."""
    with server.client() as c:
        stats, cmds = c.info("stats"), c.info("commandstats")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in cmds.items()}
    info = calls.pop("info", 0)
    return int(stats["total_commands_processed"]) - info, calls


def test_the_masters_commands_count_as_a_replica_counts_them(
    master: RedisServer, start, relays: list[RelayProcess]
) -> None:
    """INFO commandstats and total_commands_processed count the stream's commands, as a
    replica's `call()` does: merged runs of SETs one by one, MSET, MULTI/EXEC and what they
    hold, SELECT, a container by its subcommand from Redis 7.0 (`xgroup|create`) and by its
    own name before. Oracle: a real replica of the same master."""
    replica = start(extra={"replicaof": f"127.0.0.1 {master.port}"})
    relay = start_relay(upstream_url(master))
    relays.append(relay)
    with master.client() as c:
        c.set("warm", "up")
    relay.wait_in_sync_with(master)
    wait_for(
        lambda: replica.info("replication")["master_link_status"] == "up",
        30,
        what="the replica's link",
    )
    for side in (replica, relay):
        with side.client() as c:
            c.config_resetstat()
    with master.client() as c:
        p = c.pipeline(transaction=False)
        for i in range(300):  # a run of plain SETs: the relay merges it into one item
            p.execute_command("SET" if i % 3 else "set", f"k{i}", "v")
        p.execute()
        c.mset({"m1": 1, "m2": 2})
        c.execute_command("SET", "opt", "v", "EX", "1000")  # options: counted as SET too
        for _ in range(5):
            c.incr("n")
        c.rpush("l", "a", "b", "c")
        c.hset("h", mapping={"f": "1", "g": "2"})
        c.xadd("s", {"f": "v"})
        c.execute_command("XGROUP", "CREATE", "s", "g", "$")
        tx = c.pipeline(transaction=True)
        tx.set("t1", "x")
        tx.incr("n")
        tx.execute()
        with master.client(db=1) as c1:
            c1.set("other-db", "x")  # SELECT 1, then SELECT back for the next write
        c.set("back", "x")
    offset = relay.wait_in_sync_with(master)
    wait_for(
        lambda: int(replica.info("replication")["slave_repl_offset"]) >= offset,
        30,
        what="the replica at the master's offset",
    )
    theirs, mine = _commandstats(replica), _commandstats(relay)
    assert mine == theirs
    assert theirs[1]["set"] >= 300 and theirs[1]["select"] >= 2  # not vacuous
