"""`replproxy rdb verify|info` vs rdbtools vs a redis-server load, on the same file, in one run.

Builds a 1.2M-key dataset on a real Redis 7.0 (`DEBUG POPULATE` for 1M small strings, a Lua
loop for 50k each of small hashes, lists, sets and sorted sets, and one 300k-element sorted
set, list and hash), saves it (RDB 10), and re-writes it at RDB 9 with replproxy's writer so
that rdbtools (which stops at RDB 9) can read it. Then, on the RDB 9 file:

1. `replproxy rdb verify FILE` and `replproxy rdb info FILE`, each as its own process
   (`python -m replproxy rdb ...`, so start-up and import time count, as a user sees it);
2. rdbtools 0.1.15: `rdb --command justkeys FILE` (a process, output to /dev/null) and its
   parser with counting callbacks (in this process, parse only);
3. redis-server 7.0 loading the same file: time from process start until `INFO persistence`
   answers `loading:0`.

It prints the times and the ratios the bars judge: replproxy at least 5x faster than rdbtools
and at most 1.5x a redis-server load. The same two commands on the native RDB 10 file are
timed for reference. Each timing is the best of `--repeat` runs. Next to each wall time it
prints the CPU time the process used (user + system: from the kernel's accounting of the
child process, and of redis-server from /proc at `loading:0`), which other work on a shared
machine disturbs much less than wall time.

Usage:  python benchmarks/rdb_cli.py [--quick] [--repeat N] [--keep DIR]

`--quick` builds a tenth of the dataset (100k strings, 5k of each small type, 30k-element big
keys) and runs each timing once: a smoke run, not a measurement.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from benchmarks.fullsync import FILL_BIG_LUA, FILL_SMALL_LUA
from replproxy.rdb.reader import read_file, speedups_available
from replproxy.rdb.writer import write_rdb
from tests.harness.servers import ServerKind, all_kinds, free_port, start_server

ROOT = Path(__file__).resolve().parent.parent


def build(kind: ServerKind, out: Path, strings: int, each: int, big: int) -> int:
    """Fill a fresh server, SAVE, copy its dump.rdb to `out`; returns the key count."""
    server = start_server(kind)
    try:
        c = server.client(socket_timeout=600)
        c.execute_command("DEBUG", "POPULATE", strings)
        c.eval(FILL_SMALL_LUA, 0, 1, each)
        step = 10_000
        for start in range(1, big + 1, step):
            c.eval(FILL_BIG_LUA, 0, start, min(start + step - 1, big))
        keys = int(c.dbsize())
        c.save()
        shutil.copy(server.dir / "dump.rdb", out)
        return keys
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


Timing = tuple[float, float]  # (wall s, CPU s)


def best(repeat: int, fn: Callable[[], Timing]) -> Timing:
    return min(fn() for _ in range(repeat))


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_process(argv: list[str]) -> Timing:
    """Wall and CPU time of a process run to completion, output discarded; it must succeed."""
    c0 = _children_cpu()
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - t0, _children_cpu() - c0


def replproxy_cmd(command: str, path: Path) -> list[str]:
    return [sys.executable, "-m", "replproxy", "rdb", command, str(path)]


def time_rdbtools_parse(path: Path) -> tuple[float, float, int]:
    """rdbtools' parser with callbacks that only count keys (no output at all)."""
    from rdbtools import RdbCallback, RdbParser

    class Count(RdbCallback):
        def __init__(self) -> None:
            super().__init__(string_escape=None)
            self.n = 0

        def set(self, key, value, expiry, info):
            self.n += 1

        def start_hash(self, key, length, expiry, info):
            self.n += 1

        def start_list(self, key, expiry, info):
            self.n += 1

        def start_set(self, key, cardinality, expiry, info):
            self.n += 1

        def start_sorted_set(self, key, length, expiry, info):
            self.n += 1

    cb = Count()
    gc.collect()
    c0 = time.process_time()
    t0 = time.perf_counter()
    RdbParser(cb).parse(str(path))
    return time.perf_counter() - t0, time.process_time() - c0, cb.n


def _proc_cpu(pid: int) -> float:
    """utime + stime of a live process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_server_load(kind: ServerKind, path: Path) -> Timing:
    """From starting redis-server on a copy of `path` until INFO says `loading:0`."""
    d = Path(tempfile.mkdtemp(prefix="bench-rdb-cli-load-"))
    shutil.copy(path, d / "load.rdb")
    port = free_port()
    t0 = time.perf_counter()
    server = start_server(kind, port=port, dir=d, dbfilename="load.rdb", wait=False)
    try:
        c = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        while True:
            try:
                if c.info("persistence").get("loading") == 0:
                    return time.perf_counter() - t0, _proc_cpu(server.proc.pid)
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                pass
            if server.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited while loading: {server.log()[-2000:]}")
            time.sleep(0.002)
    finally:
        server.stop()
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the data, one run each")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per timing")
    ap.add_argument("--keep", type=Path, help="keep the generated files in this directory")
    args = ap.parse_args()

    scale = 10 if args.quick else 1
    repeat = 1 if args.quick else args.repeat
    strings, each, big = 1_000_000 // scale, 50_000 // scale, 300_000 // scale
    kinds = {k.name: k for k in all_kinds()}
    redis7 = kinds["redis7"]

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-rdb-cli-"))
    work.mkdir(parents=True, exist_ok=True)
    native, v9 = work / "bench_native.rdb", work / "bench_v9.rdb"
    keys = build(redis7, native, strings, each, big)
    write_rdb(v9, read_file(native), version=9)

    verify_t = best(repeat, lambda: time_process(replproxy_cmd("verify", v9)))
    info_t = best(repeat, lambda: time_process(replproxy_cmd("info", v9)))
    justkeys_t = best(repeat, lambda: time_process(["rdb", "--command", "justkeys", str(v9)]))
    parse_runs = [time_rdbtools_parse(v9) for _ in range(repeat)]
    parse_t = min((wall, cpu) for wall, cpu, _ in parse_runs)
    assert all(n == keys for _, _, n in parse_runs), (parse_runs, keys)
    load_t = best(repeat, lambda: time_server_load(redis7, v9))
    native_verify = best(repeat, lambda: time_process(replproxy_cmd("verify", native)))
    native_info = best(repeat, lambda: time_process(replproxy_cmd("info", native)))
    rows: list[tuple[str, Timing]] = [
        ("replproxy rdb verify", verify_t),
        ("replproxy rdb info", info_t),
        ("rdbtools `rdb --command justkeys`", justkeys_t),
        ("rdbtools parser, counting callbacks (in process)", parse_t),
        (f"redis-server {'.'.join(map(str, redis7.version))} load (start to loading:0)", load_t),
    ]

    fast = "on" if speedups_available() else "off (pure Python)"
    print(
        f"# replproxy rdb CLI: {keys:,} keys, RDB 9 file {v9.stat().st_size / 1e6:.1f} MB"
        f" (Redis 7.0 data re-written at v9){' [--quick]' if args.quick else ''}\n"
    )
    print(f"C loader: {fast}; best of {repeat} run(s) each\n")
    print("| command | wall (s) | keys/s | CPU (s) |")
    print("| --- | ---: | ---: | ---: |")
    for name, (wall, cpu) in rows:
        print(f"| {name} | {wall:.3f} | {keys / wall:,.0f} | {cpu:.3f} |")
    print()
    for name, (wall, cpu) in (("verify", verify_t), ("info", info_t)):
        print(
            f"{name}: {justkeys_t[0] / wall:.2f}x faster than rdbtools justkeys, "
            f"{parse_t[0] / wall:.2f}x its bare parser (bar: >= 5); "
            f"{wall / load_t[0]:.2f}x the redis-server load time (bar: <= 1.5); "
            f"by CPU time {justkeys_t[1] / cpu:.2f}x, {parse_t[1] / cpu:.2f}x and "
            f"{cpu / load_t[1]:.2f}x"
        )
    print(
        f"on the native RDB 10 file ({native.stat().st_size / 1e6:.1f} MB): "
        f"verify {native_verify[0]:.3f} s, info {native_info[0]:.3f} s"
    )
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    if os.environ.get("REPLPROXY_NO_SPEEDUPS"):
        print("(REPLPROXY_NO_SPEEDUPS is set: the pure-Python path was measured)")


if __name__ == "__main__":
    main()
