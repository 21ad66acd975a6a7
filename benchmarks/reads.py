"""Reads benchmark: redis-benchmark against replproxy and against a real read-only replica.

A real Redis master (redis-server from PATH, 7.0 on Debian) is filled with the keys
redis-benchmark's own tests use, in the shapes its write tests leave them in: `key:<12 digits>`
strings of 3 bytes (its SET test with -r), `mylist` (LPUSH mylist xxx, as its "LPUSH (needed
to benchmark LRANGE)" step does), `myhash` (HSET myhash element:__rand_int__ xxx) and `myzset`
(ZADD myzset __rand_int__ element:__rand_int__). The data is written by real commands, so it
reaches both the replica and the relay through replication. Then, for each test and pipeline
depth, redis-benchmark runs against the replica and right after against the relay:

  GET          redis-benchmark -t get -r KEYS                (GET key:__rand_int__)
  MGET (10)    MGET key:__rand_int__ x 10 -r KEYS            (no built-in MGET test)
  HGETALL      HGETALL myhash                                (100 fields)
  HGETALL 50   HGETALL hash50                                (50 fields of 10-byte values)
  LRANGE_100   LRANGE mylist 0 99                            (-t lrange_100 would LPUSH first:
                                                              a write, refused by both)
  LRANGE 100   LRANGE list100 0 99                           (a 100-element list of 10-byte
                                                              strings)
  ZRANGE_100   ZRANGE myzset 0 99 WITHSCORES

each with -c 50 and -P 1 / -P 16, in `--rounds` back-to-back pairs (replica, then relay);
a row reports the medians, and the ratio is the median of the pairs' ratios (their range is
shown: on a shared 2-core machine single pairs move by 10-40 %). The bar: relay req/s /
replica req/s >= 0.8 on every row (issue 18).

--profile FILE also runs the GET -P 16 test once more against a relay started under cProfile
and prints its top functions (the profile is written to FILE for pstats/snakeviz).

Usage:  python benchmarks/reads.py [--quick] [--keys 100000] [--requests 200000]
                                  [--rounds 3] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, available_kinds, free_port, start_server, wait_for

BENCH = "redis-benchmark"
BAR = 0.8
HASH_FIELDS = 100
LIST_LEN = 1000
ZSET_LEN = 1000


@dataclass(frozen=True)
class Test:
    name: str
    args: tuple[str, ...]  # redis-benchmark arguments after the common ones


def tests(keys: int) -> list[Test]:
    return [
        Test("GET", ("-r", str(keys), "-t", "get")),
        Test("MGET (10 keys)", ("-r", str(keys), "MGET", *["key:__rand_int__"] * 10)),
        Test(f"HGETALL ({HASH_FIELDS} fields)", ("HGETALL", "myhash")),
        Test("HGETALL (50 fields of 10 bytes)", ("HGETALL", "hash50")),
        Test("LRANGE_100", ("LRANGE", "mylist", "0", "99")),
        Test("LRANGE 0 99 (100 x 10 bytes)", ("LRANGE", "list100", "0", "99")),
        Test("ZRANGE_100 WITHSCORES", ("ZRANGE", "myzset", "0", "99", "WITHSCORES")),
    ]


def fill(master: RedisServer, keys: int) -> None:
    """redis-benchmark's keys, written through real commands so replication carries them."""
    with master.client(socket_timeout=300) as c:
        for start in range(0, keys, 1000):
            c.mset({f"key:{i:012d}": "xxx" for i in range(start, min(keys, start + 1000))})
        c.lpush("mylist", *["xxx"] * LIST_LEN)
        c.hset(
            "myhash", mapping={f"element:{i * 7919 % keys:012d}": "xxx" for i in range(HASH_FIELDS)}
        )
        c.zadd(
            "myzset",
            {f"element:{i * 7919 % keys:012d}": i * 104729 % keys for i in range(ZSET_LEN)},
        )
        # The shapes of issue 18's comparison: a 100-element list of 10-byte strings and a
        # 50-field hash.
        c.rpush("list100", *[f"element{i:03d}" for i in range(100)])
        c.hset("hash50", mapping={f"field:{i:04d}": f"value:{i:04d}" for i in range(50)})


def wait_replica(master: RedisServer, replica: RedisServer) -> None:
    def synced() -> bool:
        off = int(master.info("replication")["master_repl_offset"])  # type: ignore[call-overload]
        info = replica.info("replication")
        return info["master_link_status"] == "up" and int(info["slave_repl_offset"]) >= off  # type: ignore[call-overload]

    wait_for(synced, 300, what="replica in sync")


@dataclass
class Result:
    rps: float
    p50_ms: float


def run_benchmark(port: int, test: Test, pipeline: int, requests: int, clients: int) -> Result:
    cmd = [
        BENCH,
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-c",
        str(clients),
        "-n",
        str(requests),
        "-P",
        str(pipeline),
        "--csv",
        *test.args,
    ]
    # Generous: even a relay at 5k req/s finishes; a hang must not hang the benchmark.
    timeout = 120 + requests / 5000
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    rows = [r for r in csv.reader(io.StringIO(p.stdout)) if r and r[0] != "test"]
    if p.returncode != 0 or not rows or "Error" in p.stderr + p.stdout:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    row = rows[-1]
    return Result(float(row[1]), float(row[4]))


def start_profiled_relay(upstream: str, profile: Path) -> RelayProcess:
    """replproxy under cProfile, started like tests.harness.relay.start_relay starts it."""
    d = Path(tempfile.mkdtemp(prefix="replproxy-prof-"))
    port, mport = free_port(), free_port()
    logfile = d / "relay.log"
    cmd = [
        sys.executable,
        "-m",
        "cProfile",
        "-o",
        str(profile),
        "-m",
        "replproxy",
        "run",
        "--upstream",
        upstream,
        "--port",
        str(port),
        "--metrics-port",
        str(mport),
        "--metrics-bind",
        "127.0.0.1",
        "--dir",
        str(d),
    ]
    with open(logfile, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    relay = RelayProcess(port, mport, d, proc, logfile)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"profiled replproxy exited: {relay.log()[-3000:]}")
        try:
            return relay.http("/startupz")[0] == 200
        except OSError:
            return False

    wait_for(ready, 120, what="profiled replproxy's initial sync")
    return relay


def profile_relay(
    master: RedisServer, test: Test, requests: int, clients: int, out: Path
) -> tuple[float, str]:
    relay = start_profiled_relay(upstream_url(master), out)
    try:
        relay.wait_in_sync_with(master, timeout=300)
        res = run_benchmark(relay.port, test, 16, requests, clients)
    finally:
        relay.stop()  # SIGTERM: a clean exit, so cProfile writes its file
    wait_for(lambda: out.exists() and out.stat().st_size > 0, 30, what="the profile file")
    buf = io.StringIO()
    stats = pstats.Stats(str(out), stream=buf)
    stats.strip_dirs().sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)
    return res.rps, buf.getvalue()


def machine_note() -> str:
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, "
        f"load average before the run {load[0]:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=100_000, help="keyspace of key:__rand_int__")
    ap.add_argument("--requests", type=int, default=200_000, help="requests per run (-n)")
    ap.add_argument("--clients", type=int, default=50, help="connections (-c)")
    ap.add_argument("--pipelines", default="1,16", help="comma-separated -P values")
    ap.add_argument("--only", default="", help="run only tests whose name contains this")
    ap.add_argument("--rounds", type=int, default=3, help="replica/relay pairs per row")
    ap.add_argument("--profile", type=Path, help="also profile the relay under GET -P 16")
    ap.add_argument("--quick", action="store_true", help="--requests 50000 --rounds 1")
    args = ap.parse_args()
    if args.quick:
        args.requests, args.rounds = 50_000, 1
    pipelines = [int(x) for x in args.pipelines.split(",")]
    chosen = [t for t in tests(args.keys) if args.only.lower() in t.name.lower()]
    kind = {k.name: k for k in available_kinds()}["redis7"]
    note = machine_note()

    master = start_server(kind)
    replica: RedisServer | None = None
    relay: RelayProcess | None = None
    results: list[tuple[Test, int, list[Result], list[Result]]] = []
    profile_out: tuple[float, str] | None = None
    try:
        t0 = time.perf_counter()
        fill(master, args.keys)
        replica = start_server(kind, extra={"replicaof": f"{master.host} {master.port}"})
        relay = start_relay(upstream_url(master))
        wait_replica(master, replica)
        relay.wait_in_sync_with(master, timeout=300)
        print(f"# filled and synced in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        for test in chosen:
            for p in pipelines:
                theirs, mine = [], []
                for _ in range(args.rounds):
                    theirs.append(run_benchmark(replica.port, test, p, args.requests, args.clients))
                    mine.append(run_benchmark(relay.port, test, p, args.requests, args.clients))
                    print(
                        f"# {test.name} -P {p}: replica {theirs[-1].rps:,.0f}/s, relay "
                        f"{mine[-1].rps:,.0f}/s",
                        file=sys.stderr,
                    )
                results.append((test, p, theirs, mine))
        if args.profile:
            relay.stop()  # one relay at a time: the profiled one gets the same CPU
            get = tests(args.keys)[0]
            profile_out = profile_relay(master, get, args.requests, args.clients, args.profile)
    finally:
        if relay is not None:
            relay.stop()
        if replica is not None:
            replica.stop()
        master.stop()

    print(f"# Reads: `python benchmarks/reads.py {' '.join(sys.argv[1:])}`".rstrip())
    print(
        f"# redis-benchmark -c {args.clients} -n {args.requests}, {args.rounds} "
        "rounds (medians), "
        f"redis-server {'.'.join(map(str, kind.version))} replica vs replproxy "
        f"({args.keys} keys)"
    )
    print(f"# machine: {note}; master, replica, relay and redis-benchmark all on it\n")
    print(
        "| test | pipeline | replica req/s | relay req/s | ratio | ratio range "
        "| replica p50 (ms) | relay p50 (ms) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios: list[float] = []
    for test, p, theirs, mine in results:
        pairs = sorted(m.rps / t.rps for t, m in zip(theirs, mine))
        ratio = statistics.median(pairs)
        ratios.append(ratio)
        print(
            f"| {test.name} | {p} | {statistics.median(t.rps for t in theirs):,.0f} "
            f"| {statistics.median(m.rps for m in mine):,.0f} | {ratio:.2f} "
            f"| {pairs[0]:.2f}-{pairs[-1]:.2f} "
            f"| {statistics.median(t.p50_ms for t in theirs):.3f} "
            f"| {statistics.median(m.p50_ms for m in mine):.3f} |"
        )
    if results:
        worst = min(ratios)
        verdict = "met" if worst >= BAR else "NOT met"
        print(f"\nworst ratio relay / replica = {worst:.2f} (bar: >= {BAR}) - {verdict}")
    if profile_out is not None:
        rps, text = profile_out
        print(
            f"\n# relay under cProfile, GET -P 16: {rps:,.0f} req/s (profile in {args.profile})\n"
        )
        print(text)


if __name__ == "__main__":
    main()
