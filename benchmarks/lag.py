"""Stream lag: replproxy against a real redis-server replica of the same master, side by side.

A user's question: "if I run the relay instead of a chained replica, how far behind is it?"
Each follower is measured ALONE against the same Redis master (the other is not running),
with the same sampler, in one run, alternating replica / relay for `--runs` rounds:

1. the master is flushed, the follower is started and waits until it is in sync;
2. `redis-benchmark -P 16 -c 50 -r 100000 -n N -t TESTS` writes to the master at full speed;
3. every `--interval` (20 ms) the sampler reads the master's `master_repl_offset` and the
   follower's `slave_repl_offset` (INFO replication), until the benchmark has ended and the
   follower has caught up.

The time lag of a follower sample (t, offset) is how long before t the master FIRST reached
that offset in the sampler's eyes (0 when the follower had the master's offset of the same
round of samples): a follower within one sample of the master shows 0.00 s. The byte lag is
the master's offset minus the follower's, from the same round. Reported per follower: p50,
p99 and max of both, the master's stream rate, and the ratio relay p99 / replica p99 against
the bar: relay p99 <= max(2 x replica p99, 50 ms).

`--tests mix` (default) is redis-benchmark's ten write tests in one run; `--tests each` runs
every one of them alone as well (the SET-only, INCR-only... streams; LPOP and SPOP pop what
LPUSH / SADD wrote before the follower started).

`--profile DIR` records the relay under py-spy (`pip install py-spy`) during its first run
of each test and prints its hottest functions (the raw stacks stay in DIR for a flame graph).

Usage:  python benchmarks/lag.py [--quick] [--requests 300000] [--runs 3]
                                 [--tests mix|each|set,incr] [--profile DIR]
"""

from __future__ import annotations

import argparse
import bisect
import collections
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, ServerKind, available_kinds, start_server, wait_for

MIX = "set,incr,lpush,rpush,sadd,hset,zadd,lpop,spop,mset"
# A pop on an empty key writes nothing: LPOP and SPOP run alone on what LPUSH / SADD wrote
# before the follower started (it full-syncs that, then streams only the pops).
PREFILL = {"lpop": "lpush", "spop": "sadd"}
FLOOR = 0.050  # the bar: p99 at most max(2 x the replica's, 50 ms)


@dataclass
class Run:
    follower: str
    test: str
    lag: list[float]  # seconds, one per follower sample
    byte_lag: list[int]
    seconds: float
    stream_bytes: int

    def pct(self, q: float, xs: list[float] | list[int] | None = None) -> float:
        xs = sorted(self.lag if xs is None else xs)
        return float(xs[min(len(xs) - 1, int(q * len(xs)))]) if xs else 0.0


def write_load(
    host: str, port: int, requests: int, tests: str, exe: str | None = None
) -> list[str]:
    """The command of the write load: redis-benchmark's `tests` (-t), `requests` each, 16
    commands a pipeline on 50 connections, keys among 100000 (-r), quiet."""
    return [
        exe or shutil.which("redis-benchmark") or "redis-benchmark",
        "-h",
        host,
        "-p",
        str(port),
        "-P",
        "16",
        "-c",
        "50",
        "-n",
        str(requests),
        "-r",
        "100000",
        "-t",
        tests,
        "-q",
    ]


def offset(client: redis.Redis, field: str) -> int:
    return int(client.info("replication")[field])


def sample(
    master: RedisServer, follower: redis.Redis, test: str, requests: int, interval: float
) -> tuple[list[tuple[float, int]], list[tuple[float, int, int]], float]:
    """Run the write load; return master samples (t, off), follower samples (t, off, master
    off of the same round) and the load's wall time."""
    tests = MIX if test == "mix" else test
    mc = master.client()
    ms: list[tuple[float, int]] = []
    fs: list[tuple[float, int, int]] = []
    proc = subprocess.Popen(
        write_load(master.host, master.port, requests, tests),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    t0 = time.perf_counter()
    done_at = 0.0
    k = 0
    try:
        while True:
            mo = offset(mc, "master_repl_offset")
            tm = time.perf_counter() - t0
            fo = offset(follower, "slave_repl_offset")
            tf = time.perf_counter() - t0
            ms.append((tm, mo))
            fs.append((tf, fo, mo))
            if proc.poll() is not None:
                done_at = done_at or tf
                if fo >= mo:
                    break
                if tf - done_at > 120:
                    raise RuntimeError("the follower did not catch up within 120 s")
            k += 1
            delay = t0 + k * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        mc.close()
    return ms, fs, done_at


def lags(
    ms: list[tuple[float, int]], fs: list[tuple[float, int, int]]
) -> tuple[list[float], list[int]]:
    m_times = [t for t, _ in ms]
    m_offs = [o for _, o in ms]  # non-decreasing
    lag: list[float] = []
    byte_lag: list[int] = []
    for tf, fo, mo in fs:
        byte_lag.append(max(0, mo - fo))
        if fo >= mo:
            lag.append(0.0)
            continue
        i = bisect.bisect_left(m_offs, fo)  # the first master sample at or past fo
        lag.append(max(0.0, tf - m_times[i]) if i < len(m_offs) else 0.0)
    return lag, byte_lag


def wait_synced(master: RedisServer, follower: redis.Redis) -> None:
    """In sync AND streaming: a diskless master sends the stream only after the replica's
    first REPLCONF ACK, so a write must have come through before the load starts."""
    mc = master.client()
    mc.set("lag:sentinel", "1")

    def ok() -> bool:
        info = follower.info("replication")
        return info.get("master_link_status") == "up" and int(info["slave_repl_offset"]) >= offset(
            mc, "master_repl_offset"
        )

    try:
        wait_for(ok, 300, what="follower in sync")
    finally:
        mc.close()


def py_spy_record(pid: int, raw: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling process `pid` at 250 Hz into `raw` (collapsed stacks) until SIGINT."""
    return subprocess.Popen(
        [
            "py-spy",
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def py_spy_top(raw: Path, top: int = 25) -> str:
    """Self and inclusive shares from py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    if not total:
        return "(no samples)"
    out = [f"{total} samples; self:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    out.append("inclusive:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(top)]
    return "\n".join(out)


def one_run(
    kind: ServerKind,
    master: RedisServer,
    who: str,
    test: str,
    requests: int,
    interval: float,
    profile: Path | None,
) -> Run:
    with master.client() as c:
        c.flushall()
    if test in PREFILL:
        subprocess.run(
            write_load(master.host, master.port, requests, PREFILL[test]),
            check=True,
            capture_output=True,
        )
    replica: RedisServer | None = None
    relay: RelayProcess | None = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        if who == "replica":
            replica = start_server(kind, extra={"replicaof": f"{master.host} {master.port}"})
            fc = replica.client()
        else:
            relay = start_relay(upstream_url(master))
            fc = relay.client()
        wait_synced(master, fc)
        if relay is not None and profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            raw = profile / f"relay-{test.replace(',', '+')}.txt"
            spy = py_spy_record(relay.proc.pid, raw)
            time.sleep(1.0)  # py-spy attaches
        ms, fs, seconds = sample(master, fc, test, requests, interval)
        fc.close()
        lag, byte_lag = lags(ms, fs)
        return Run(who, test, lag, byte_lag, seconds, ms[-1][1] - ms[0][1])
    finally:
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its file
            spy.wait(60)
            print(f"# py-spy, relay, {test}:\n{py_spy_top(raw)}", file=sys.stderr)
        if relay is not None:
            relay.stop()
        if replica is not None:
            replica.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300_000, help="-n of redis-benchmark")
    ap.add_argument("--runs", type=int, default=3, help="replica/relay pairs per test")
    ap.add_argument(
        "--tests",
        default="mix",
        help="'mix' (the ten tests in one run), 'each' (mix + each alone), or a "
        "comma-separated list of redis-benchmark tests to run alone",
    )
    ap.add_argument("--interval", type=float, default=0.020, help="sampling period (s)")
    ap.add_argument(
        "--kind", default="redis7", help="master and replica binary (tests.harness.servers)"
    )
    ap.add_argument("--quick", action="store_true", help="-n 60000, one pair per test")
    ap.add_argument("--profile", type=Path, help="py-spy the relay's first run of each test")
    args = ap.parse_args()
    if args.quick:
        args.requests, args.runs = 60_000, 1
    if args.tests == "mix":
        tests = ["mix"]
    elif args.tests == "each":
        tests = ["mix", *MIX.split(",")]
    else:
        tests = args.tests.split(",")
    kind = {k.name: k for k in available_kinds()}[args.kind]
    load = os.getloadavg()
    note = (
        f"{os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}, load average before the run {load[0]:.2f} "
        f"{load[1]:.2f} {load[2]:.2f}"
    )
    master = start_server(kind, extra={"repl-backlog-size": "512mb"})
    results: dict[str, list[tuple[Run, Run]]] = {}
    try:
        for test in tests:
            for r in range(args.runs):
                rep = one_run(kind, master, "replica", test, args.requests, args.interval, None)
                rel = one_run(
                    kind,
                    master,
                    "relay",
                    test,
                    args.requests,
                    args.interval,
                    args.profile if r == 0 else None,
                )
                results.setdefault(test, []).append((rep, rel))
                print(
                    f"# {test} run {r + 1}: replica p99 {rep.pct(0.99):.3f} s max "
                    f"{max(rep.lag):.3f}; relay p99 {rel.pct(0.99):.3f} s max "
                    f"{max(rel.lag):.3f} ({rel.stream_bytes / rel.seconds / 1e6:.1f} MB/s)",
                    file=sys.stderr,
                )
    finally:
        master.stop()

    print(f"# Stream lag: `python benchmarks/lag.py {' '.join(sys.argv[1:])}`".rstrip())
    print(
        f"# redis-benchmark -P 16 -c 50 -r 100000 -n {args.requests}; master and replica "
        f"{kind.name} {'.'.join(map(str, kind.version))}; offsets every "
        f"{args.interval * 1000:.0f} ms; each follower alone"
    )
    print(f"# machine: {note}\n")
    print(
        "| test | run | follower | stream MB/s | lag p50 (s) | lag p99 (s) | lag max (s) "
        "| byte lag p99 | byte lag max | bar (s) | verdict |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    verdicts: list[bool] = []
    for test, pairs in results.items():
        for i, (rep, rel) in enumerate(pairs, 1):
            bar = max(2 * rep.pct(0.99), FLOOR)
            ok = rel.pct(0.99) <= bar
            verdicts.append(ok)
            for run in (rep, rel):
                mbs = run.stream_bytes / run.seconds / 1e6 if run.seconds else 0.0
                tail = f"{bar:.3f} | {'met' if ok else 'NOT met'}" if run is rel else " | "
                print(
                    f"| {test} | {i} | {run.follower} | {mbs:.1f} | {run.pct(0.5):.3f} "
                    f"| {run.pct(0.99):.3f} | {max(run.lag):.3f} "
                    f"| {run.pct(0.99, run.byte_lag):,.0f} | {max(run.byte_lag):,} "
                    f"| {tail} |"
                )
    print()
    for test, pairs in results.items():
        rel99 = [rel.pct(0.99) for _, rel in pairs]
        rep99 = [rep.pct(0.99) for rep, _ in pairs]
        print(
            f"- {test}: relay p99 {', '.join(f'{x:.3f}' for x in rel99)} s; replica p99 "
            f"{', '.join(f'{x:.3f}' for x in rep99)} s; median relay p99 "
            f"{statistics.median(rel99):.3f} s against the bar max(2 x "
            f"{statistics.median(rep99):.3f}, {FLOOR:.3f})"
        )
    print(
        f"\nbar (relay p99 <= max(2 x replica p99, {FLOOR * 1000:.0f} ms)) met in "
        f"{sum(verdicts)} of {len(verdicts)} runs"
    )


if __name__ == "__main__":
    main()
