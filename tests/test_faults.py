"""Faults between real parties: master -> proxy -> relay -> proxy -> downstream replicas.

Every party is real (redis-server / valkey-server master and replicas, the replproxy process);
the fault proxies (tests/harness/faultproxy.py) sit on both links and cut, reset, stall,
throttle or truncate the connections, and the parties' processes get SIGKILL / SIGSTOP /
SIGCONT. Each test ends with equal `DEBUG DIGEST` on every party and the expected number of
full syncs, from the master's INFO `sync_full`, the relay's counters and the PSYNC answers the
proxies saw: zero beyond the unavoidable ones wherever a partial resync is possible.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from tests.harness.faultproxy import DOWN, UP, FaultProxy, ProxyConnection
from tests.harness.relay import RelayProcess, start_relay
from tests.harness.servers import RedisServer, ServerKind, wait_for
from tests.harness.workload import Workload

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow, pytest.mark.one_kind]

RELAY_ARGS = (
    "--repl-timeout",
    "3",
    "--reconnect-backoff-max",
    "0.5",
    "--repl-backlog-size",
    "64mb",
)


@pytest.fixture
def kind(server_kind: ServerKind) -> ServerKind:
    if server_kind.major < 7:
        pytest.skip(
            "fault tests use DEBUG POPULATE/DIGEST and a master that keeps its "
            "history over a restart (Redis >= 7.0, Valkey)"
        )
    return server_kind


@dataclass
class Chain:
    """master <- up proxy <- relay <- down proxy <- replicas."""

    master: RedisServer
    up: FaultProxy
    relay: RelayProcess
    down: FaultProxy
    replicas: list[RedisServer] = field(default_factory=list)
    relay_args: tuple[str, ...] = ()

    def all(self) -> list[Any]:
        return [self.master, self.relay, *self.replicas]

    def restart_relay(self, relays: list[RelayProcess]) -> None:
        old = self.relay
        self.relay = start_relay(
            f"redis://127.0.0.1:{self.up.port}",
            *self.relay_args,
            dir=old.dir,
            port=old.port,
            wait_ready=False,
        )
        relays.append(self.relay)


@pytest.fixture
def proxies() -> Iterator[list[FaultProxy]]:
    made: list[FaultProxy] = []
    yield made
    for p in made:
        p.close()


def build_chain(
    start: Callable[..., RedisServer],
    relays: list[RelayProcess],
    proxies: list[FaultProxy],
    *,
    master_extra: dict[str, str] | None = None,
    relay_args: tuple[str, ...] = (),
    replicas: int = 1,
    keys: int = 0,
    up_on_connect: Callable[[ProxyConnection], None] | None = None,
) -> Chain:
    # A PING every second keeps a quiet link alive under the relay's 3 s repl-timeout (as
    # redis.conf asks: repl-timeout above repl-ping-replica-period).
    master = start(
        extra={"repl-backlog-size": "64mb", "repl-ping-replica-period": "1", **(master_extra or {})}
    )
    if keys:
        with master.client() as c:
            c.execute_command("DEBUG", "POPULATE", keys, "key", 100)
    up = FaultProxy(("127.0.0.1", master.port))
    proxies.append(up)
    up.on_connect = up_on_connect
    args = (*RELAY_ARGS, *relay_args)
    relay = start_relay(f"redis://127.0.0.1:{up.port}", *args)
    relays.append(relay)
    down = FaultProxy(("127.0.0.1", relay.port))
    proxies.append(down)
    chain = Chain(master, up, relay, down, relay_args=args)
    for _ in range(replicas):
        chain.replicas.append(start(extra={"replicaof": f"127.0.0.1 {down.port}"}))
    return chain


def offset_of(server: RedisServer | RelayProcess) -> int:
    info = server.info("replication")
    key = "master_repl_offset" if info.get("role") == "master" else "slave_repl_offset"
    return int(info[key])


def sync_stats(server: RedisServer | RelayProcess) -> tuple[int, int]:
    s = server.info("stats")
    return int(s["sync_full"]), int(s["sync_partial_ok"])


def digest(server: RedisServer | RelayProcess) -> bytes:
    with server.client() as c:
        return c.execute_command("DEBUG", "DIGEST")


def settle(chain: Chain, timeout: float = 90) -> None:
    """Every party at the master's offset, links up, and the same DEBUG DIGEST everywhere.

    The master may still expire keys (its DELs move the offset), so a comparison counts only
    when the master's offset did not move while the digests were taken."""

    def synced() -> int | None:
        try:
            target = offset_of(chain.master)
            parties: list[RedisServer | RelayProcess] = [chain.relay, *chain.replicas]
            for p in parties:
                info = p.info("replication")
                if info.get("master_link_status") != "up" or offset_of(p) != target:
                    return None
            return target
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            return None

    def state() -> str:
        out = []
        for p in chain.all():
            try:
                info = p.info("replication")
                slaves = [v for k, v in info.items() if k.startswith("slave")]
                out.append(
                    f"{type(p).__name__}:{p.port} offset {offset_of(p)} link "
                    f"{info.get('master_link_status', '-')} slaves {slaves}"
                )
            except redis.RedisError as e:
                out.append(f"{type(p).__name__}:{p.port} {e!r}")
        return "; ".join(out)

    deadline = time.monotonic() + timeout
    while True:
        try:
            target = wait_for(
                synced,
                max(1, deadline - time.monotonic()),
                interval=0.1,
                what="every party at the master's offset",
            )
        except AssertionError as e:
            raise AssertionError(
                f"{e}: {state()}; up {chain.up.connections}; down {chain.down.connections}"
            ) from None
        digests = {f"{type(p).__name__}:{p.port}": digest(p) for p in chain.all()}
        if len(set(digests.values())) == 1:
            return
        if synced() == target or time.monotonic() > deadline:
            ref = digests[f"RedisServer:{chain.master.port}"]
            bad = [p for p in chain.all() if digest(p) != ref]
            raise AssertionError(
                f"digests differ at offset {target}: {digests}; first "
                f"differences: {[(p.port, differences(chain.master, p)) for p in bad]}"
            )


def differences(
    a: Any, b: Any, dbs: int = 3, limit: int = 10
) -> list[tuple[int, bytes, bytes, bytes]]:
    """(db, key, type on a, type on b) whose DEBUG DIGEST-VALUE differs between two parties
    (a diagnosis aid)."""
    out: list[tuple[int, bytes, bytes, bytes]] = []
    for db in range(dbs):
        with a.client(db=db) as ca, b.client(db=db) as cb:
            keys = set(ca.scan_iter(count=1000)) | set(cb.scan_iter(count=1000))
            for k in sorted(keys):
                va = ca.execute_command("DEBUG", "DIGEST-VALUE", k)
                vb = cb.execute_command("DEBUG", "DIGEST-VALUE", k)
                if va != vb:
                    out.append((db, k, ca.type(k), cb.type(k)))
                    if len(out) >= limit:
                        return out
    return out


def write_some(master: RedisServer, n: int = 300, prefix: str = "w") -> None:
    with master.client() as c:
        p = c.pipeline(transaction=False)
        for i in range(n):
            p.set(f"{prefix}:{i}", i)
            p.hset(f"{prefix}:h:{i % 7}", f"f{i}", "v" * (i % 50))
        p.execute()


# --- cuts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("diskless", ["no", "yes"])
def test_cut_mid_snapshot_retries_and_ends_equal(
    start,
    kind: ServerKind,
    relays: list[RelayProcess],
    proxies: list[FaultProxy],
    diskless: str,
) -> None:
    """The first transfer is truncated 300 kB into a ~2.5 MB snapshot: the relay discards it
    and asks again; one snapshot is ever loaded."""

    def truncate_first(conn: ProxyConnection) -> None:
        if conn.index == 0:
            conn.truncate(300_000, DOWN)

    chain = build_chain(
        start,
        relays,
        proxies,
        keys=20_000,
        up_on_connect=truncate_first,
        master_extra={"repl-diskless-sync": diskless},
    )
    first = chain.up.connections[0]
    assert first.how_closed == "truncated down" and first.sync_reply == "full"
    write_some(chain.master)
    settle(chain)
    form = r"\(diskless\)" if diskless == "yes" else r"\([0-9]+ bytes\)"
    assert re.search(f"receiving snapshot {form}", chain.relay.log())  # the payload's form
    assert sync_stats(chain.master)[0] == 2  # the cut transfer, then the whole one
    assert chain.up.resyncs() == (2, 0)
    assert chain.relay.metrics()["replproxy_resyncs_full_total"] == 1  # loaded once
    assert chain.relay.metrics()["replproxy_downstream_sync_full_total"] == 1  # the replica


def test_cut_mid_command_and_mid_transaction_resume_partially_never_half_applied(
    start,
    kind: ServerKind,
    relays: list[RelayProcess],
    proxies: list[FaultProxy],
) -> None:
    chain = build_chain(start, relays, proxies)
    write_some(chain.master)
    settle(chain)
    m = chain.master

    # Mid-command: 100 kB into a 1 MB SET.
    conn = chain.up.replication_conn()
    conn.truncate(100_000, DOWN)
    with m.client() as c:
        c.set("big", "x" * 1_000_000)
    assert conn.closed.wait(30) and conn.how_closed == "truncated down"
    settle(chain)
    assert sync_stats(m) == (1, 1)

    # Mid-transaction: cut inside MULTI ... EXEC and keep the relay away while we look.
    conn = chain.up.replication_conn()
    conn.truncate(100_000, DOWN)
    chain.up.refuse()
    with m.client() as c:
        p = c.pipeline(transaction=True)
        p.set("t1", "a").set("t2", "y" * 500_000).incr("t3").execute()
    assert conn.closed.wait(30)
    with chain.relay.client() as c:
        assert c.get("t1") is None and c.get("t3") is None  # never half-applied
    for r in chain.replicas:
        with r.client() as c:
            assert c.get("t1") is None
    chain.up.refuse(False)
    settle(chain)
    with chain.relay.client() as c:
        assert c.get("t1") == b"a" and c.get("t3") == b"1"
    assert sync_stats(m) == (1, 2)
    assert chain.up.resyncs() == (1, 2)
    assert chain.relay.metrics()["replproxy_resyncs_full_total"] == 1
    assert chain.relay.metrics()["replproxy_downstream_sync_full_total"] == 1


def test_reset_and_cut_downstream_links_resume_partially(
    start,
    kind: ServerKind,
    relays: list[RelayProcess],
    proxies: list[FaultProxy],
) -> None:
    chain = build_chain(start, relays, proxies, replicas=2)
    write_some(chain.master)
    settle(chain)
    for conn in chain.down.open_connections():
        if conn.is_replication:
            conn.reset() if conn.index % 2 else conn.cut()
    write_some(chain.master, prefix="after")
    settle(chain)
    assert chain.down.resyncs() == (2, 2)
    assert sync_stats(chain.relay) == (2, 2)  # what the relay served
    assert sync_stats(chain.master) == (1, 0)


# --- stalls and process faults -----------------------------------------------------------------


def test_stall_past_repl_timeout_reconnects_with_partial_resync(
    start,
    kind: ServerKind,
    relays: list[RelayProcess],
    proxies: list[FaultProxy],
) -> None:
    chain = build_chain(start, relays, proxies)
    settle(chain)
    conn = chain.up.replication_conn()
    conn.stall()
    write_some(chain.master)
    chain.up.replication_conn(after=conn.index, timeout=30)  # it timed out and came back
    assert "MASTER timeout: no data nor PING received" in chain.relay.log()
    conn.cut()  # the stalled connection, still open on the master's side
    settle(chain)
    assert sync_stats(chain.master) == (1, 1)
    assert chain.up.resyncs() == (1, 1)
    assert chain.relay.metrics()["replproxy_resyncs_full_total"] == 1


def test_master_restart_with_persistence_partially_resyncs_everyone(
    start,
    kind: ServerKind,
    relays: list[RelayProcess],
    proxies: list[FaultProxy],
) -> None:
    """A master restarted from its RDB comes back with its old replid as replid2: the relay
    continues (+CONTINUE <new id>) and its replicas continue through the relay's replid2."""
    extra = {"save": "3600 1", "repl-backlog-size": "64mb", "repl-ping-replica-period": "1"}
    chain = build_chain(start, relays, proxies, master_extra=extra, replicas=1)
    write_some(chain.master)
    settle(chain)
    old_id = chain.master.info("replication")["master_replid"]
    chain.master.restart(extra=extra)
    info = chain.master.info("replication")
    assert info["master_replid2"] == old_id
    write_some(chain.master, prefix="after")
    settle(chain)
    assert sync_stats(chain.master) == (0, 1)  # the restarted master's counters
    assert chain.up.resyncs() == (1, 1)
    assert chain.relay.info("replication")["master_replid"] == info["master_replid"]
    assert chain.relay.metrics()["replproxy_resyncs_full_total"] == 1
    assert chain.down.resyncs()[0] == 1  # the replica only ever full-synced once


def test_relay_sigkill_during_a_downstream_full_sync_then_restart(
    start,
    kind: ServerKind,
    relays: list[RelayProcess],
    proxies: list[FaultProxy],
) -> None:
    """The relay saved its state, then dies (SIGKILL) while a throttled replica receives its
    snapshot. Restarted from that state it continues with the master (no full sync there);
    the replica, which never had a whole dataset, full-syncs once more."""
    chain = build_chain(start, relays, proxies, keys=20_000, replicas=0)

    def saved() -> bool:
        with chain.relay.client() as c:
            try:
                return bool(c.execute_command("SAVE"))
            except redis.ResponseError as e:  # its --save policy may be saving right now
                assert "Background save already in progress" in str(e)
                return False

    wait_for(saved, 60, interval=0.2, what="the relay to SAVE")
    write_some(chain.master)
    chain.down.on_connect = lambda conn: conn.throttle(200_000, DOWN)
    replica = start(extra={"replicaof": f"127.0.0.1 {chain.down.port}"})
    chain.replicas.append(replica)
    rconn = chain.down.replication_conn()
    rconn.wait_forwarded(DOWN, 300_000)  # mid-transfer of a ~2.5 MB snapshot
    chain.relay.proc.send_signal(signal.SIGKILL)
    chain.relay.proc.wait(10)
    chain.down.on_connect = None
    rconn.cut()
    chain.restart_relay(relays)
    write_some(chain.master, prefix="after")
    settle(chain)
    assert sync_stats(chain.master) == (1, 1)  # the restarted relay continued
    assert chain.up.resyncs() == (1, 1)
    assert sync_stats(chain.relay)[0] == 1  # the replica's new full sync, after the restart
    assert chain.down.resyncs()[0] == 2


# --- chaos ---------------------------------------------------------------------------------------


class Writer(threading.Thread):
    """A write load on the master that survives the faults (reconnects, keeps its DB)."""

    def __init__(self, master: RedisServer, seed: int) -> None:
        super().__init__(daemon=True)
        self.wl = Workload(master, seed=seed, dbs=3, big_every=40)
        self.stop_event = threading.Event()
        self.errors = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.wl.run(10)
            except redis.RedisError:  # the master stopped, or a connection cut mid-command
                self.errors += 1
                time.sleep(0.1)
                try:
                    self.wl.client.close()
                    self.wl.client = self.wl.server.client(socket_timeout=30)
                    self.wl.client.execute_command("SELECT", self.wl.db)
                except redis.RedisError:
                    pass
            time.sleep(0.005)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(60)


def chaos_seconds(config: pytest.Config) -> float:
    opt = config.getoption("--chaos-seconds", None)
    env = os.environ.get("REPLPROXY_CHAOS_SECONDS")
    return float(opt or env or 60)


@pytest.mark.timeout(0)  # bounded inside: --chaos-seconds, then settle()'s own timeout
def test_chaos_random_faults_under_write_load(
    start,
    kind: ServerKind,
    relays: list[RelayProcess],
    proxies: list[FaultProxy],
    request: pytest.FixtureRequest,
) -> None:
    """Random faults from the list above for --chaos-seconds (default 60 per server kind,
    so 2 minutes over Redis 7.0 + Valkey 8.1 in CI), under a write load. No fault here
    destroys history the relay needs, so the master must never full-sync again; the
    replicas full-sync only after their own SIGKILL (they run without persistence)."""
    seconds = chaos_seconds(request.config)
    seed = int(os.environ.get("REPLPROXY_CHAOS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    chain = build_chain(start, relays, proxies, replicas=2)
    writer = Writer(chain.master, seed)
    writer.start()
    log: list[str] = []
    replica_kills = 0
    faults: list[tuple[str, Callable[[], str]]] = []

    def up_conn() -> ProxyConnection | None:
        conns = [c for c in chain.up.open_connections() if c.is_replication]
        return conns[-1] if conns else None

    def down_conn() -> ProxyConnection | None:
        conns = [c for c in chain.down.open_connections() if c.is_replication]
        return rng.choice(conns) if conns else None

    def on_conn(pick: Callable[[], ProxyConnection | None], act: str) -> Callable[[], str]:
        def run() -> str:
            conn = pick()
            if conn is None:
                return "no connection"
            if act == "cut":
                conn.cut()
            elif act == "reset":
                conn.reset()
            elif act == "truncate":
                n = rng.randrange(1, 20_000)
                conn.truncate(n, rng.choice([UP, DOWN]))
                return f"{conn!r} truncate after {n}"
            elif act == "stall":
                conn.stall()
                time.sleep(rng.uniform(0.5, 5))  # past repl-timeout (3 s) sometimes
                conn.resume()
            elif act == "half_open":
                d = rng.choice([UP, DOWN])
                conn.half_open(d)
                time.sleep(rng.uniform(0.5, 4))
                conn.resume()
                return f"{conn!r} half-open {d}"
            elif act == "delay":
                conn.delay(rng.uniform(0.01, 0.3))
                time.sleep(rng.uniform(0.5, 3))
                conn.delay(0)
            elif act == "throttle":
                conn.throttle(rng.choice([2_000, 20_000, 200_000]))
                time.sleep(rng.uniform(0.5, 3))
                conn.throttle(None)
            return repr(conn)

        return run

    def pause(proc: Any, lo: float, hi: float) -> Callable[[], str]:
        def run() -> str:
            d = rng.uniform(lo, hi)
            p = proc()  # once: SIGCONT must go to the process that got SIGSTOP
            p.send_signal(signal.SIGSTOP)
            time.sleep(d)
            p.send_signal(signal.SIGCONT)
            return f"pid {p.pid} {d:.1f}s"

        return run

    def kill_replica() -> str:
        nonlocal replica_kills
        r = rng.choice(chain.replicas)
        r.kill()
        r.restart(extra={"replicaof": f"127.0.0.1 {chain.down.port}"})
        replica_kills += 1
        return f"replica :{r.port}"

    for act in ("cut", "reset", "truncate", "stall", "half_open", "delay", "throttle"):
        faults.append((f"up {act}", on_conn(up_conn, act)))
        faults.append((f"down {act}", on_conn(down_conn, act)))
    faults.append(("SIGSTOP master", pause(lambda: chain.master.proc, 0.2, 2)))
    faults.append(("SIGSTOP relay", pause(lambda: chain.relay.proc, 0.2, 4)))
    faults.append(("SIGSTOP replica", pause(lambda: rng.choice(chain.replicas).proc, 0.2, 3)))
    faults.append(("SIGKILL replica", kill_replica))

    began = time.monotonic()
    try:
        while time.monotonic() - began < seconds:
            name, fault = rng.choice(faults)
            at = time.monotonic() - began
            what = fault()
            log.append(f"{at:6.1f}s {name}: {what}")
            time.sleep(rng.uniform(0.2, 1.5))
    finally:
        writer.stop()
        report = "\n".join(log)
        print(f"\nchaos seed {seed}, {seconds:.0f}s, {len(log)} faults:\n{report}")
    for c in chain.up.connections + chain.down.connections:
        c.clear()
    settle(chain, timeout=120)
    up_full, up_partial = chain.up.resyncs()
    down_full, down_partial = chain.down.resyncs()
    print(
        f"master->relay: {up_full} full, {up_partial} partial (master INFO "
        f"{sync_stats(chain.master)}); relay->replicas: {down_full} full, {down_partial} "
        f"partial (relay INFO {sync_stats(chain.relay)}); replica kills {replica_kills}; "
        f"writes {writer.wl.sent}, write errors {writer.errors}"
    )
    assert sync_stats(chain.master)[0] == up_full == 1  # never again after the first
    assert chain.relay.metrics()["replproxy_resyncs_full_total"] == 1
    # Downstream, a full sync is right only for a replica that asked PSYNC ? -1 (its first
    # sync, after a SIGKILL without persistence, or after a full sync cut short).
    # (A SIGKILLed replica may also restart from the RDB it loaded and continue partially.)
    assert chain.down.avoidable_full_syncs() == []
    assert down_full >= len(chain.replicas)
    assert sync_stats(chain.relay)[0] == down_full
