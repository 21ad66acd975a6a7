"""Full sync and memory: replproxy against a real redis-server replica of the same master.

A user's question: "how long from starting the follower until it serves the master's data,
and how much memory does it hold then?" Each follower is measured ALONE against the same
master (the other is not running), alternating replica / relay for `--runs` rounds:

- the master (redis-server, `repl-diskless-sync yes`, delay 0) holds the dataset: `--keys`
  small strings (DEBUG POPULATE), `--each` small hashes, lists, sets and zsets each, and one
  `--big`-element zset, list and hash (Lua loops);
- time: from just before the follower's process is started to the first time it reports
  `master_link_status:up` with `slave_repl_offset` equal to the master's offset (polled
  every 10 ms over INFO replication); the relay's time includes its Python start-up;
- memory: the follower process's RSS (VmRSS from /proc) once caught up and settled 1 s, and
  its peak (VmHWM), in MiB.

Ratios relay / replica are printed against the bars: time <= 1.3x, RSS <= 1.3x.

`--scales 1,3,10` repeats it with `--keys` x each scale (the growth table: 1M, 3M, 10M keys);
`--quick` is 100k keys, 5k each, 30k big, one pair. `--profile DIR` also records one relay
full sync under py-spy and prints its hottest functions. `--no-speedups` runs the relay with
REPLPROXY_NO_SPEEDUPS=1.

Usage:  python benchmarks/fullsync.py [--quick] [--keys 1000000] [--runs 3] [--scales 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from benchmarks.lag import py_spy_record, py_spy_top
from tests.harness.relay import start_relay, upstream_url
from tests.harness.servers import RedisServer, ServerKind, available_kinds, start_server

TIME_BAR = 1.3
RSS_BAR = 1.3

# The datasets' small keys (ARGV: the first and last index) and three big ones (members
# from..to), also filled by rdb_cli.py and rdb_load.py.
FILL_SMALL_LUA = """
local from, to = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = from, to do
  redis.call('HSET', 'hash:' .. i, 'f1', 'v1', 'f2', 'v2', 'f3', i)
  redis.call('RPUSH', 'list:' .. i, 'a', 'b', 'c', i)
  redis.call('SADD', 'set:' .. i, 'm1', 'm2', i)
  redis.call('ZADD', 'zset:' .. i, 1, 'a', 2, 'b', i, 'c')
end
return to
"""

FILL_BIG_LUA = """
local from, to = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = from, to do
  redis.call('ZADD', 'big:zset', i, 'member:' .. i)
  redis.call('RPUSH', 'big:list', 'element:' .. i)
  redis.call('HSET', 'big:hash', 'field:' .. i, 'value:' .. i)
end
return to
"""


def fill(master: RedisServer, strings: int, each: int, big: int) -> int:
    c = master.client(socket_timeout=1200)
    c.execute_command("DEBUG", "POPULATE", strings)
    step = 10_000
    for start in range(1, each + 1, step):
        c.eval(FILL_SMALL_LUA, 0, start, min(start + step - 1, each))
    for start in range(1, big + 1, step):
        c.eval(FILL_BIG_LUA, 0, start, min(start + step - 1, big))
    n = int(c.dbsize())
    c.close()
    return n


def proc_mem(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            fields[k] = int(v.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def master_offset(master: RedisServer) -> int:
    with master.client() as c:
        return int(c.info("replication")["master_repl_offset"])


@dataclass
class Sync:
    seconds: float
    rss: float
    peak: float


def wait_caught_up(
    client_factory: Callable[..., redis.Redis],
    master: RedisServer,
    t0: float,
    proc: subprocess.Popen[bytes],
    timeout: float = 1200,
) -> float:
    target = master_offset(master)
    c = None
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the follower exited ({proc.returncode})")
        try:
            if c is None:
                c = client_factory(socket_timeout=5)
            info = c.info("replication")
            if (
                info.get("master_link_status") == "up"
                and int(info.get("slave_repl_offset", -1)) >= target
            ):
                done = time.perf_counter() - t0
                c.close()
                return done
        except Exception:  # not listening yet, LOADING...: keep polling
            if c is not None:
                c.close()
            c = None
        time.sleep(0.01)
    raise RuntimeError("the follower did not catch up")


def sync_replica(kind: ServerKind, master: RedisServer) -> Sync:
    t0 = time.perf_counter()
    replica = start_server(kind, extra={"replicaof": f"{master.host} {master.port}"}, wait=False)
    try:
        secs = wait_caught_up(replica.client, master, t0, replica.proc)
        time.sleep(1.0)
        rss, peak = proc_mem(replica.proc.pid)
        return Sync(secs, rss, peak)
    finally:
        replica.stop()


def sync_relay(
    master: RedisServer, env: dict[str, str] | None, profile: Path | None = None
) -> Sync:
    t0 = time.perf_counter()
    relay = start_relay(upstream_url(master), wait_ready=False, env=env)
    spy = None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        raw = profile / "relay-fullsync.txt"
        spy = py_spy_record(relay.proc.pid, raw)
    try:
        secs = wait_caught_up(relay.client, master, t0, relay.proc)
        time.sleep(1.0)
        rss, peak = proc_mem(relay.proc.pid)
        return Sync(secs, rss, peak)
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
            print(f"# py-spy, relay full sync:\n{py_spy_top(raw)}", file=sys.stderr)
        relay.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=1_000_000, help="small strings")
    ap.add_argument("--each", type=int, default=50_000, help="small hashes/lists/sets/zsets")
    ap.add_argument("--big", type=int, default=300_000, help="elements of the big zset/list/hash")
    ap.add_argument("--runs", type=int, default=3, help="replica/relay pairs per scale")
    ap.add_argument("--scales", default="1", help="comma-separated multipliers of --keys")
    ap.add_argument("--kind", default="redis7")
    ap.add_argument("--quick", action="store_true", help="100k keys, 5k each, 30k big, 1 pair")
    ap.add_argument("--profile", type=Path, help="py-spy one more relay full sync")
    ap.add_argument("--no-speedups", action="store_true", help="relay without its C lanes")
    args = ap.parse_args()
    if args.quick:
        args.keys, args.each, args.big, args.runs = 100_000, 5_000, 30_000, 1
    kind = {k.name: k for k in available_kinds()}[args.kind]
    env = {"REPLPROXY_NO_SPEEDUPS": "1"} if args.no_speedups else None
    load = os.getloadavg()
    note = (
        f"{os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}, load average before the run {load[0]:.2f} "
        f"{load[1]:.2f} {load[2]:.2f}"
    )
    rows = []
    for scale in [float(x) for x in args.scales.split(",")]:
        master = start_server(
            kind,
            extra={
                "repl-diskless-sync": "yes",
                "repl-diskless-sync-delay": "0",
                "repl-backlog-size": "64mb",
            },
        )
        try:
            keys = fill(master, int(args.keys * scale), args.each, args.big)
            with master.client() as c:
                mmem = int(c.info("memory")["used_memory"]) / 2**20
            pairs = []
            for r in range(args.runs):
                rep = sync_replica(kind, master)
                rel = sync_relay(master, env)
                pairs.append((rep, rel))
                print(
                    f"# {keys:,} keys, run {r + 1}: replica {rep.seconds:.2f} s "
                    f"{rep.rss:.0f} MiB; relay {rel.seconds:.2f} s {rel.rss:.0f} MiB",
                    file=sys.stderr,
                )
            if args.profile is not None:
                sync_relay(master, env, args.profile)
            rows.append((keys, mmem, pairs))
        finally:
            master.stop()

    print(f"# Full sync: `python benchmarks/fullsync.py {' '.join(sys.argv[1:])}`".rstrip())
    print(
        f"# master {kind.name} {'.'.join(map(str, kind.version))}, diskless sync; each "
        "follower alone; time = process start to in sync; RSS once in sync (+1 s)"
        f"{'; relay WITHOUT C speedups' if args.no_speedups else ''}"
    )
    print(f"# machine: {note}\n")
    print(
        "| keys | master used_memory (MiB) | run | replica (s) | relay (s) | time ratio "
        "| replica RSS (MiB) | relay RSS (MiB) | RSS ratio | relay peak RSS (MiB) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    verdicts = []
    for keys, mmem, pairs in rows:
        for i, (rep, rel) in enumerate(pairs, 1):
            print(
                f"| {keys:,} | {mmem:.0f} | {i} | {rep.seconds:.2f} | {rel.seconds:.2f} "
                f"| {rel.seconds / rep.seconds:.2f} | {rep.rss:.0f} | {rel.rss:.0f} "
                f"| {rel.rss / rep.rss:.2f} | {rel.peak:.0f} |"
            )
        tr = statistics.median(rel.seconds / rep.seconds for rep, rel in pairs)
        mr = statistics.median(rel.rss / rep.rss for rep, rel in pairs)
        verdicts.append((keys, tr, mr))
    print()
    for keys, tr, mr in verdicts:
        print(
            f"- {keys:,} keys: median time ratio {tr:.2f} (bar <= {TIME_BAR}: "
            f"{'met' if tr <= TIME_BAR else 'NOT met'}); median RSS ratio {mr:.2f} "
            f"(bar <= {RSS_BAR}: {'met' if mr <= RSS_BAR else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
