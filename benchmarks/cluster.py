"""Cluster reads benchmark: the relays of a 3-shard cluster together, against one relay of a
single master holding the same data, and against real replicas of the shards.

Setup (Redis 7.0 from PATH): a 3-primary cluster with one replica each (`redis-cli --cluster
create`), `replproxy cluster` beside it (3 relay processes); a single master with the same
keys and one `replproxy run` relay; and one standalone `redis-server --replicaof` per shard
primary (the real-replica column: redis-benchmark cannot send READONLY, without which a
cluster-mode replica redirects every read, so the real replicas here are plain replicas of
the shard primaries: same binary, same data, no cluster checks).

Keys: each shard gets `--keys` keys `{tag}:key:<12 digits>` (3-byte values) whose hash tag
puts them in that shard's slots, so redis-benchmark's `__rand_int__` addresses one shard
and a relay answers every request (no -MOVED). The single master holds all of them.

For each test and pipeline depth, three redis-benchmark processes run at once (one per
shard's key set, `-c` clients each), against: the 3 relays (one each), the single relay
(all three at it), the 3 real replicas (one each). A row reports the summed req/s (medians
over `--rounds`) and the ratios.

Usage:  python benchmarks/cluster.py [--keys 50000] [--requests 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.reads import Result, Test, machine_note, run_benchmark, wait_replica
from replproxy.cluster.slots import key_hash_slot
from tests.harness.clusters import (
    current_topology,
    start_cluster,
    start_supervisor,
    wait_relays_in_sync,
)
from tests.harness.relay import start_relay, upstream_url
from tests.harness.servers import RedisServer, available_kinds, start_server


def tag_for(slots: list[tuple[int, int]]) -> str:
    """A hash tag whose slot is in `slots`."""
    for i in range(100_000):
        t = f"s{i}"
        if any(a <= key_hash_slot(t.encode()) <= b for a, b in slots):
            return t
    raise RuntimeError("no tag found")


def fill(server: RedisServer, tag: str, keys: int) -> None:
    with server.client(socket_timeout=300) as c:
        for start in range(0, keys, 1000):
            c.mset(
                {f"{{{tag}}}:key:{i:012d}": "xxx" for i in range(start, min(keys, start + 1000))}
            )


def tests(tag: str, keys: int) -> list[Test]:
    k = f"{{{tag}}}:key:__rand_int__"
    return [
        Test("GET", ("-r", str(keys), "GET", k)),
        Test("MGET (10 keys, one slot)", ("-r", str(keys), "MGET", *[k] * 10)),
    ]


def together(targets: list[tuple[int, Test]], pipeline: int, requests: int, clients: int) -> float:
    """redis-benchmark at each (port, test) at once; the summed req/s."""
    with ThreadPoolExecutor(len(targets)) as ex:
        results: list[Result] = list(
            ex.map(lambda pt: run_benchmark(pt[0], pt[1], pipeline, requests, clients), targets)
        )
    return sum(r.rps for r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=50_000, help="keys per shard")
    ap.add_argument("--requests", type=int, default=100_000, help="requests per process (-n)")
    ap.add_argument("--clients", type=int, default=20, help="connections per process (-c)")
    ap.add_argument("--pipelines", default="1,16", help="comma-separated -P values")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    pipelines = [int(x) for x in args.pipelines.split(",")]
    kind = {k.name: k for k in available_kinds()}["redis7"]
    note = machine_note()

    cluster = start_cluster(kind)
    stoppers: list = []  # type: ignore[type-arg]
    rows: list[tuple[str, int, list[float], list[float], list[float]]] = []
    try:
        t0 = time.perf_counter()
        primaries = cluster.primaries()
        tags = []
        for p in primaries:
            with p.client(decode_responses=True) as c:
                line = next(
                    x.split()
                    for x in c.execute_command("CLUSTER", "NODES").splitlines()
                    if "myself" in x
                )
            slots = [
                tuple(int(v) for v in (w.split("-") * 2)[:2])
                for w in line[8:]
                if not w.startswith("[")
            ]
            tags.append(tag_for(slots))  # type: ignore[arg-type]
        for p, tag in zip(primaries, tags):
            fill(p, tag, args.keys)
        sup = start_supervisor(cluster, shards=3)
        stoppers.append(sup.stop)
        single = start_server(kind)
        stoppers.append(single.stop)
        for tag in tags:
            fill(single, tag, args.keys)
        relay = start_relay(upstream_url(single), "--save", "")
        stoppers.append(relay.stop)
        replicas = []
        for p in primaries:
            r = start_server(kind, extra={"replicaof": f"{p.host} {p.port}"})
            stoppers.append(r.stop)
            replicas.append(r)
        for p, r in zip(primaries, replicas):
            wait_replica(p, r)
        wait_relays_in_sync(cluster, sup, timeout=600)
        relay.wait_in_sync_with(single, timeout=600)
        relay_of = {}
        for s in current_topology(sup)["shards"]:
            relay_of[int(s["primary"]["port"])] = int(s["relay"]["port"])
        print(f"# filled and synced in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        for i in range(len(tests(tags[0], args.keys))):
            for pl in pipelines:
                per = [tests(tag, args.keys)[i] for tag in tags]
                name = per[0].name
                three, one, real = [], [], []
                for _ in range(args.rounds):
                    three.append(
                        together(
                            [(relay_of[p.port], t) for p, t in zip(primaries, per)],
                            pl,
                            args.requests,
                            args.clients,
                        )
                    )
                    one.append(
                        together([(relay.port, t) for t in per], pl, args.requests, args.clients)
                    )
                    real.append(
                        together(
                            [(r.port, t) for r, t in zip(replicas, per)],
                            pl,
                            args.requests,
                            args.clients,
                        )
                    )
                    print(
                        f"# {name} -P {pl}: 3 relays {three[-1]:,.0f}/s, 1 relay "
                        f"{one[-1]:,.0f}/s, 3 replicas {real[-1]:,.0f}/s",
                        file=sys.stderr,
                    )
                rows.append((name, pl, three, one, real))
    finally:
        for stop in reversed(stoppers):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                stop()
        cluster.stop()

    med = statistics.median
    print(
        f"# Cluster reads: 3 redis-benchmark processes at once, -c {args.clients} -n "
        f"{args.requests} each, {args.rounds} rounds (medians of the summed req/s), "
        f"redis-server {'.'.join(map(str, kind.version))}, {args.keys} keys per shard"
    )
    print(f"# machine: {note}; the cluster, the relays and redis-benchmark all on it\n")
    print(
        "| test | pipeline | 3 relays (cluster) req/s | 1 relay (single master) req/s "
        "| 3 real replicas req/s | 3 relays / 1 relay | 3 relays / 3 replicas |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, pl, three, one, real in rows:
        print(
            f"| {name} | {pl} | {med(three):,.0f} | {med(one):,.0f} | {med(real):,.0f} "
            f"| {med(three) / med(one):.2f} | {med(three) / med(real):.2f} |"
        )


if __name__ == "__main__":
    main()
