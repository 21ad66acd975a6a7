"""Stream-apply benchmark: is the relay ever the bottleneck?

Two measurements in one run, against a real master:

1. Replay: a mixed write stream (strings, hashes, lists, sorted sets, sets, counters) is
   produced by `redis-benchmark -P 16` on a real master and captured off the replication link;
   the captured bytes are then replayed through replproxy's splitter, replication core and
   keyspace with no network in between: sustained applied commands/s.
2. Live: a replproxy process replicates from the master while `redis-benchmark -P 16` writes
   at full speed; the master's offset and the relay's applied offset are sampled every 50 ms.
   Reported: the byte lag, and the time lag (how long after the master reached an offset the
   relay had applied it), p50/p99/max, and the master's own write rate for scale.

Usage:  python benchmarks/apply.py [--requests 300000]
"""

from __future__ import annotations

import argparse
import bisect
import gc
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.lag import write_load
from replproxy.cli import GC_THRESHOLD
from replproxy.keyspace import Keyspace
from replproxy.link.protocol import LinkConfig, LinkState, ReplicaLink
from replproxy.replication import Replication
from replproxy.resp.stream import StreamSplitter
from tests.harness.relay import start_relay, upstream_url
from tests.harness.servers import RedisServer, available_kinds, start_server

TESTS = "set,incr,lpush,rpush,sadd,hset,zadd,lpop,spop,mset"


def redis_benchmark(server: RedisServer, requests: int) -> float:
    """Run redis-benchmark's write tests with -P 16; return wall seconds."""
    exe = shutil.which("redis-benchmark")
    if exe is None:
        raise SystemExit("redis-benchmark not found (Debian package redis-tools)")
    t0 = time.perf_counter()
    subprocess.run(
        write_load(server.host, server.port, requests, TESTS, exe),
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def capture_stream(server: RedisServer, requests: int) -> tuple[bytes, int]:
    """Attach as a replica, run the write load, return (stream bytes, start offset)."""
    sock = socket.create_connection((server.host, server.port))
    link = ReplicaLink(LinkConfig(listening_port=1))
    link.initiate()
    sock.sendall(link.data_to_send())
    while link.state is not LinkState.LOADING:
        link.receive_data(sock.recv(1 << 20))
        link.next_events()
        sock.sendall(link.data_to_send())
    start = link.stream_offset
    link.snapshot_loaded()
    sock.sendall(link.data_to_send())
    redis_benchmark(server, requests)
    with server.client() as c:
        target = int(c.info("replication")["master_repl_offset"])
    chunks: list[bytes] = []
    got = 0
    sock.settimeout(0.5)
    deadline = time.monotonic() + 120
    while start + got < target and time.monotonic() < deadline:
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            # A diskless master may have ignored our first ACK (sent before it saw its child
            # finish); a real replica ACKs every second.
            link.send_ack(start + got)
            sock.sendall(link.data_to_send())
            continue
        chunks.append(data)
        got += len(data)
    sock.close()
    return b"".join(chunks)[: target - start], start


def replay(stream: bytes, start: int) -> tuple[int, float]:
    ks = Keyspace()
    repl = Replication(ks)
    repl.full_resync("0" * 40, start, 0)
    splitter = StreamSplitter(start, merge_sets=True)  # as the link splits
    t0 = time.perf_counter()
    for i in range(0, len(stream), 64 * 1024):  # as the link receives it
        splitter.feed(stream[i : i + 64 * 1024])
        cmds = splitter.next_commands()
        repl.process(cmds)
    dt = time.perf_counter() - t0
    n = repl.stats.commands_applied  # the master's commands (a merged SET run counts each)
    assert repl.repl_offset == start + len(stream)
    assert not ks.unsupported_commands and not ks.apply_errors
    return n, dt


def live_lag(server: RedisServer, requests: int) -> dict[str, float]:
    relay = start_relay(upstream_url(server))
    try:
        samples_m: list[tuple[float, int]] = []
        samples_r: list[tuple[float, int]] = []
        proc = subprocess.Popen(
            write_load(server.host, server.port, requests, TESTS),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        t0 = time.perf_counter()
        mc = server.client()
        rc = relay.client()
        while True:
            now = time.perf_counter() - t0
            samples_m.append((now, int(mc.info("replication")["master_repl_offset"])))
            samples_r.append(
                (time.perf_counter() - t0, int(rc.info("replication")["slave_repl_offset"]))
            )
            if proc.poll() is not None and samples_r[-1][1] >= samples_m[-1][1]:
                break
            time.sleep(0.05)
        bench_time = time.perf_counter() - t0
        r_times = [t for t, _ in samples_r]
        r_offs = [o for _, o in samples_r]
        lags, byte_lags = [], []
        for t, off in samples_m:
            i = bisect.bisect_left(r_offs, off)
            if i < len(r_offs):
                lags.append(max(0.0, r_times[i] - t))
        for (_, mo), (_, ro) in zip(samples_m, samples_r):
            byte_lags.append(max(0, mo - ro))
        lags.sort()
        byte_lags.sort()
        pct = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731
        total = samples_m[-1][1]
        return {
            "p50": pct(lags, 0.5),
            "p99": pct(lags, 0.99),
            "max": lags[-1],
            "bytes_p99": pct(byte_lags, 0.99),
            "bytes_max": byte_lags[-1],
            "seconds": bench_time,
            "stream_mb": total / 1e6,
            "stream_mb_s": total / 1e6 / bench_time,
        }
    finally:
        relay.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300_000, help="per redis-benchmark test")
    args = ap.parse_args()
    gc.set_threshold(GC_THRESHOLD, 20, 100)  # the replay runs as the relay process does
    kinds = {k.name: k for k in available_kinds()}
    print(
        "| master | replay: commands | replay: s | applied commands/s | live: stream MB/s "
        "| lag p50 (s) | lag p99 (s) | lag max (s) | byte lag p99 | byte lag max |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in ("redis7", "valkey8"):
        if name not in kinds:
            continue
        server = start_server(kinds[name], extra={"repl-backlog-size": "256mb"})
        try:
            stream, start = capture_stream(server, args.requests // 4)
            n, dt = replay(stream, start)
            live = live_lag(server, args.requests)
        finally:
            server.stop()
        print(
            f"| {name} | {n:,} | {dt:.2f} | {n / dt:,.0f} | {live['stream_mb_s']:.1f} "
            f"| {live['p50']:.3f} | {live['p99']:.3f} | {live['max']:.3f} "
            f"| {live['bytes_p99']:,.0f} | {live['bytes_max']:,.0f} |"
        )


if __name__ == "__main__":
    main()
