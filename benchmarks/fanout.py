"""Fan-out benchmark: replproxy vs a redis-server chained replica, side by side in one run.

1. End-to-end lag: a writer sets an increasing sequence number on the master (with a
   background write load); one reader polls the last replica of each chain
   (master -> replproxy -> replica, master -> redis chained replica -> replica) and records
   when each number first appears. Lag = seen time - write time; p50/p99/max.
2. Fan-out: 8 replicas told at once to replicate from the relay (resp. from the chained
   replica), on a master holding --keys keys: time until all 8 are online at the master's
   offset, and the master's own full-sync count (1 for the relay chain whatever the fan-out).

`--fanouts 1,8,32` repeats step 2 for each count (the growth table of issue 18); `--quick`
is 50k keys, 3 s of lag samples.

Usage:  python benchmarks/fanout.py [--quick] [--keys 200000] [--seconds 10] [--fanouts 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness.relay import start_relay, upstream_url
from tests.harness.servers import RedisServer, available_kinds, start_server, wait_for


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def measure_lag(
    master: RedisServer, ends: dict[str, RedisServer], seconds: float, rate: int
) -> dict[str, list[float]]:
    written: dict[int, float] = {}
    seen: dict[str, dict[int, float]] = {name: {} for name in ends}
    stop = threading.Event()

    def reader(name: str, server: RedisServer) -> None:
        c = server.client()
        last = -1
        while not stop.is_set():
            v = c.get("seq")
            now = time.perf_counter()
            if v is not None and int(v) != last:
                last = int(v)
                seen[name].setdefault(last, now)

    def load() -> None:  # background writes, so the stream is not idle
        c = master.client()
        i = 0
        while not stop.is_set():
            p = c.pipeline(transaction=False)
            for _ in range(50):
                p.set(f"bg:{i % 10000}", "x" * 100)
                i += 1
            p.execute()
            time.sleep(0.005)

    threads = [threading.Thread(target=reader, args=(n, s)) for n, s in ends.items()]
    threads.append(threading.Thread(target=load))
    for t in threads:
        t.start()
    c = master.client()
    t_end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < t_end:
        i += 1
        written[i] = time.perf_counter()
        c.set("seq", i)
        time.sleep(1 / rate)
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join()
    # Only numbers every reader saw count (a reader may skip one overwritten quickly).
    lags: dict[str, list[float]] = {}
    for name in ends:
        lags[name] = [seen[name][k] - written[k] for k in written if k in seen[name]]
    return lags


def fanout_time(master: RedisServer, source: tuple[str, int], n: int) -> tuple[float, int]:
    replicas = [start_server(master.kind) for _ in range(n)]
    try:
        full_before = int(master.info("stats")["sync_full"])
        t0 = time.perf_counter()
        for r in replicas:
            r.client().execute_command("REPLICAOF", *source)

        def all_online() -> bool:
            target = int(master.info("replication")["master_repl_offset"])
            for r in replicas:
                info = r.info("replication")
                if (
                    info.get("master_link_status") != "up"
                    or int(info["slave_repl_offset"]) < target
                ):
                    return False
            return True

        wait_for(all_online, 300, interval=0.02, what="all replicas online")
        return time.perf_counter() - t0, int(master.info("stats")["sync_full"]) - full_before
    finally:
        for r in replicas:
            r.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=200, help="sequence writes per second")
    ap.add_argument("--fanouts", default="8", help="comma-separated replica counts")
    ap.add_argument("--quick", action="store_true", help="--keys 50000 --seconds 3")
    args = ap.parse_args()
    if args.quick:
        args.keys, args.seconds = 50_000, 3.0
    fanouts = [int(x) for x in args.fanouts.split(",")]
    load = os.getloadavg()
    kind = {k.name: k for k in available_kinds()}["redis7"]
    master = start_server(kind)
    # Same gathering delay as the test servers' (0): neither side waits for more replicas.
    relay = start_relay(upstream_url(master), "--repl-diskless-sync-delay", "0")
    chained = start_server(kind, extra={"replicaof": f"127.0.0.1 {master.port}"})
    end_relay = start_server(kind, extra={"replicaof": f"127.0.0.1 {relay.port}"})
    end_chain = start_server(kind, extra={"replicaof": f"127.0.0.1 {chained.port}"})
    try:
        for s in (end_relay, end_chain):
            wait_for(lambda s=s: s.info("replication").get("master_link_status") == "up", 60)
        lags = measure_lag(
            master, {"replproxy": end_relay, "redis chain": end_chain}, args.seconds, args.rate
        )
        end_relay.stop()
        end_chain.stop()
        # Real writes (DEBUG POPULATE is not replicated), so both chains hold the dataset.
        with master.client(socket_timeout=300) as c:
            for start in range(0, args.keys, 1000):
                c.mset({f"key:{i}": f"value:{i:0>90}" for i in range(start, start + 1000)})
        relay.wait_in_sync_with(master, timeout=300)
        wait_for(
            lambda: (
                chained.info("replication")["slave_repl_offset"]
                == master.info("replication")["master_repl_offset"]
            ),
            300,
        )
        rows = []
        for n in fanouts:
            t_relay, full_relay = fanout_time(master, ("127.0.0.1", relay.port), n)
            t_chain, full_chain = fanout_time(master, ("127.0.0.1", chained.port), n)
            rows.append((n, t_relay, full_relay, t_chain, full_chain))
    finally:
        for s in (end_relay, end_chain, chained, master):
            s.stop()
        relay.stop()
    print(
        f"# Fan-out: redis-server {'.'.join(map(str, kind.version))}, "
        f"{args.seconds:g} s of sequence writes at {args.rate}/s + background load\n"
    )
    print("| chain | samples | lag p50 (ms) | lag p99 (ms) | lag max (ms) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, xs in lags.items():
        print(
            f"| master -> {name} -> replica | {len(xs)} | {pct(xs, 0.5) * 1e3:.2f} "
            f"| {pct(xs, 0.99) * 1e3:.2f} | {max(xs) * 1e3:.2f} |"
        )
    p99_ratio = pct(lags["replproxy"], 0.99) / pct(lags["redis chain"], 0.99)
    print(f"\np99 ratio replproxy / redis chain = {p99_ratio:.2f} (bar: <= 1.5)\n")
    print(
        f"# command: `python benchmarks/fanout.py {' '.join(sys.argv[1:])}`; load average "
        f"before the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
    )
    print(
        f"| replicas full-syncing at once ({args.keys} keys) | from replproxy (s) "
        "| from a redis chained replica (s) | ratio | master full syncs (relay / chain) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: |")
    for n, t_relay, full_relay, t_chain, full_chain in rows:
        print(
            f"| {n} | {t_relay:.2f} | {t_chain:.2f} | {t_relay / t_chain:.2f} "
            f"| {full_relay} / {full_chain} |"
        )
    print("\nfan-out time ratio replproxy / redis chain per row (bar: <= 1)")


if __name__ == "__main__":
    main()
