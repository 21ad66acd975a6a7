"""Growth: how the relay's costs scale, against a real redis-server replica of the same master.

Two tables (issue 18, part 5; full sync at 1M/3M/10M keys is benchmarks/fullsync.py
`--scales 1,3,10`, and 1/8/32 downstream replicas benchmarks/fanout.py `--fanouts 1,8,32`):

1. Big collections: the master holds one zset, hash and list of N members each (N = 10k,
   100k, 1M by default). For each N, redis-benchmark (`-c 10 -P 1`) reads windows of 100
   from the replica, then from the relay:
     ZRANGE z mid mid+99      (a rank window in the middle)
     LRANGE l mid mid+99      (an index window in the middle)
     LRANGE l 0 99            (the head)
     HSCAN h 0 COUNT 100      (the first page of a new scan)
   Reported: req/s of each and the ratio relay / replica. A cost growing with N shows as
   falling req/s down a column.
2. Idle clients: 1k and 10k connections opened to each follower (each having answered a
   PING, then left idle): RSS before and after, and the bytes per client.

`--quick`: N = 10k and 100k, 2k requests per row, 1k clients only.

Usage:  python benchmarks/growth.py [--quick] [--sizes 10000,100000,1000000]
                                    [--clients 1000,10000]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from benchmarks.fullsync import proc_mem
from tests.harness.relay import start_relay, upstream_url
from tests.harness.servers import RedisServer, ServerKind, available_kinds, start_server, wait_for

FILL_LUA = """
local from, to = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = from, to do
  redis.call('ZADD', 'z', i, 'member:' .. i)
  redis.call('RPUSH', 'l', 'element:' .. i)
  redis.call('HSET', 'h', 'field:' .. i, 'value:' .. i)
end
return to
"""


def rps(port: int, requests: int, *command: str) -> float:
    p = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(port),
            "-c",
            "10",
            "-n",
            str(requests),
            "-P",
            "1",
            "--csv",
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    rows = [r for r in csv.reader(io.StringIO(p.stdout)) if r and r[0] != "test"]
    if p.returncode != 0 or not rows:
        raise RuntimeError(f"redis-benchmark failed: {p.stdout} {p.stderr}")
    return float(rows[-1][1])


def in_sync(master: RedisServer, port: int) -> bool:
    with master.client() as mc, redis.Redis(port=port, socket_timeout=30) as fc:
        off = int(mc.info("replication")["master_repl_offset"])
        info = fc.info("replication")
        return info.get("master_link_status") == "up" and int(info["slave_repl_offset"]) >= off


def windows(
    kind: ServerKind, sizes: list[int], requests: int
) -> list[tuple[int, str, float, float]]:
    out = []
    for n in sizes:
        master = start_server(kind)
        try:
            with master.client(socket_timeout=600) as c:
                for start in range(1, n + 1, 10_000):
                    c.eval(FILL_LUA, 0, start, min(start + 9_999, n))
            replica = start_server(kind, extra={"replicaof": f"{master.host} {master.port}"})
            relay = start_relay(upstream_url(master))
            try:
                for port in (replica.port, relay.port):
                    wait_for(lambda port=port, m=master: in_sync(m, port), 600, what="in sync")
                mid = n // 2
                for name, cmd in (
                    ("ZRANGE z mid mid+99", ("ZRANGE", "z", str(mid), str(mid + 99))),
                    ("LRANGE l mid mid+99", ("LRANGE", "l", str(mid), str(mid + 99))),
                    ("LRANGE l 0 99", ("LRANGE", "l", "0", "99")),
                    ("HSCAN h 0 COUNT 100", ("HSCAN", "h", "0", "COUNT", "100")),
                ):
                    # One read first: the relay indexes a loaded zset on its first rank
                    # read (a one-time O(n log n), reported by itself below).
                    t0 = time.perf_counter()
                    with redis.Redis(port=relay.port, socket_timeout=600) as rc:
                        rc.execute_command(*cmd)
                    first = time.perf_counter() - t0
                    # The relay's HSCAN 0 copies the hash's fields (see docs/performance.md):
                    # fewer of those on a big hash, or one row takes minutes.
                    k = max(200, requests * 10_000 // n) if cmd[0] == "HSCAN" else requests
                    a = rps(replica.port, k, *cmd)
                    b = rps(relay.port, k, *cmd)
                    out.append((n, name, a, b, first))
                    print(f"# {n:,} {name}: replica {a:,.0f}/s relay {b:,.0f}/s", file=sys.stderr)
            finally:
                relay.stop()
                replica.stop()
        finally:
            master.stop()
    return out


def idle_clients(kind: ServerKind, counts: list[int]) -> list[tuple[str, int, float, float]]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(counts) + 200
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    out = []
    master = start_server(kind)
    try:
        replica = start_server(
            kind,
            extra={
                "replicaof": f"{master.host} {master.port}",
                "maxclients": str(max(counts) + 100),
            },
        )
        relay = start_relay(upstream_url(master), "--maxclients", str(max(counts) + 100))
        try:
            for who, port, pid in (
                ("replica", replica.port, replica.proc.pid),
                ("relay", relay.port, relay.proc.pid),
            ):
                for n in counts:
                    time.sleep(0.5)
                    before = proc_mem(pid)[0]
                    socks = []
                    for _ in range(n):
                        s = socket.create_connection(("127.0.0.1", port))
                        s.sendall(b"PING\r\n")
                        socks.append(s)
                    for s in socks:
                        assert s.recv(64).startswith(b"+PONG")
                    time.sleep(1.0)
                    after = proc_mem(pid)[0]
                    out.append((who, n, before, after))
                    print(f"# {who} {n} clients: {before:.1f} -> {after:.1f} MiB", file=sys.stderr)
                    for s in socks:
                        s.close()
        finally:
            relay.stop()
            replica.stop()
    finally:
        master.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--clients", default="1000,10000")
    ap.add_argument("--requests", type=int, default=20_000, help="per row and follower")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.clients, args.requests = "10000,100000", "1000", 2_000
    kind = {k.name: k for k in available_kinds()}["redis7"]
    load = os.getloadavg()
    rows = windows(kind, [int(x) for x in args.sizes.split(",")], args.requests)
    clients = idle_clients(kind, [int(x) for x in args.clients.split(",")])
    print(f"# Growth: `python benchmarks/growth.py {' '.join(sys.argv[1:])}`".rstrip())
    print(
        f"# machine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}, load average before the run {load[0]:.2f} "
        f"{load[1]:.2f} {load[2]:.2f}; master and followers redis-server "
        f"{'.'.join(map(str, kind.version))}\n"
    )
    print(
        "| members | read (redis-benchmark -c 10 -P 1) | replica req/s | relay req/s | ratio "
        "| relay's first read (ms) |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for n, name, a, b, first in rows:
        print(f"| {n:,} | `{name}` | {a:,.0f} | {b:,.0f} | {b / a:.2f} | {first * 1e3:.1f} |")
    print("\n| follower | idle clients | RSS before (MiB) | RSS after (MiB) | bytes per client |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for who, n, before, after in clients:
        print(
            f"| {who} | {n:,} | {before:.1f} | {after:.1f} | {(after - before) * 2**20 / n:,.0f} |"
        )


if __name__ == "__main__":
    main()
