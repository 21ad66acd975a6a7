"""RDB load benchmark: replproxy vs rdbtools vs redis-server, on the same file, in one run.

Builds a ~1.2M-key dataset on a real server (1M strings by DEBUG POPULATE + 50k each of small
hashes, lists, sets and zsets by a Lua loop), saves it as RDB v9 (written by Redis 5 when a
binary is given, else re-written at v9 by replproxy's own writer from a newer server's file),
then times:

1. replproxy: a fresh keyspace's loader fed the file 1 MiB at a time (what a full sync does:
   a sink-mode reader storing keys straight into the new dicts, with the C fast path when
   built; REPLPROXY_NO_SPEEDUPS=1 measures the pure-Python path);
2. rdbtools 0.1.15: `RdbParser` with callbacks that only count keys (v9 is its newest);
3. redis-server: loading the same file at start-up (its own "DB loaded from disk" figure).

Also times replproxy on the newer server's native file (v10/v11) for reference.

Usage:  python benchmarks/rdb_load.py [--redis5 /path/to/redis-server] [--keys 1000000]
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fullsync import FILL_SMALL_LUA
from replproxy.keyspace import Keyspace
from replproxy.rdb.reader import read_file, speedups_available
from replproxy.rdb.writer import write_rdb
from tests.harness.servers import ServerKind, available_kinds, start_server


def build(kind: ServerKind, out: Path, strings: int, each: int) -> int:
    server = start_server(kind)
    try:
        c = server.client(socket_timeout=600)
        c.execute_command("DEBUG", "POPULATE", strings)
        c.eval(FILL_SMALL_LUA, 0, 1, each)
        keys = int(c.dbsize())
        c.save()
        shutil.copy(server.dir / "dump.rdb", out)
        return keys
    finally:
        server.stop()


def time_replproxy(path: Path) -> tuple[float, int]:
    gc.collect()
    t0 = time.perf_counter()
    loader = Keyspace().new_loader()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            loader.feed(chunk)  # a sink-mode reader: keys go straight into the new dicts
    loader.feed_eof()
    loader.commit()
    return time.perf_counter() - t0, loader.keys


def time_rdbtools(path: Path) -> tuple[float, int]:
    from rdbtools import RdbCallback, RdbParser

    class Count(RdbCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(string_escape=None)
            self.n = 0

        def set(self, key, value, expiry, info):  # type: ignore[no-untyped-def]
            self.n += 1

        def start_hash(self, key, length, expiry, info):  # type: ignore[no-untyped-def]
            self.n += 1

        def start_list(self, key, expiry, info):  # type: ignore[no-untyped-def]
            self.n += 1

        def start_set(self, key, cardinality, expiry, info):  # type: ignore[no-untyped-def]
            self.n += 1

        def start_sorted_set(self, key, length, expiry, info):  # type: ignore[no-untyped-def]
            self.n += 1

    cb = Count()
    gc.collect()
    t0 = time.perf_counter()
    RdbParser(cb).parse(str(path))
    return time.perf_counter() - t0, cb.n


def time_server_load(kind: ServerKind, path: Path) -> float:
    """The server's own figure from its log: 'DB loaded from disk: 1.030 seconds'."""
    d = Path(tempfile.mkdtemp(prefix="bench-load-"))
    shutil.copy(path, d / "load.rdb")
    server = start_server(kind, dir=d, dbfilename="load.rdb")
    try:
        while "DB loaded from disk" not in server.log():
            time.sleep(0.05)
        m = re.search(r"DB loaded from disk: ([0-9.]+) seconds", server.log())
        assert m, server.log()
        return float(m.group(1))
    finally:
        server.stop()
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--redis5",
        default=os.environ.get("REPLPROXY_TEST_REDIS5"),
        help="a Redis 5 redis-server to write the v9 file and load it",
    )
    ap.add_argument("--keys", type=int, default=1_000_000, help="string keys")
    ap.add_argument("--each", type=int, default=50_000, help="hashes/lists/sets/zsets each")
    args = ap.parse_args()

    kinds = {k.name: k for k in available_kinds()}
    work = Path(tempfile.mkdtemp(prefix="bench-rdb-"))
    v9 = work / "bench_v9.rdb"
    if args.redis5:
        r5 = ServerKind("redis5", args.redis5, (5, 0, 7))
        keys = build(r5, v9, args.keys, args.each)
        loader_kind, v9_origin = r5, "written by Redis 5.0.7"
    else:
        r5 = None
        native = work / "native.rdb"
        keys = build(kinds["redis7"], native, args.keys, args.each)
        write_rdb(v9, read_file(native), version=9)
        loader_kind, v9_origin = kinds["redis7"], "re-written at v9 by replproxy's writer"
    size = v9.stat().st_size

    rp_t, rp_n = time_replproxy(v9)
    rt_t, rt_n = time_rdbtools(v9)
    srv_t = time_server_load(loader_kind, v9)
    assert rp_n == rt_n == keys, (rp_n, rt_n, keys)

    native_rows = []
    for name in ("redis7", "valkey8"):
        if name in kinds:
            f = work / f"{name}.rdb"
            build(kinds[name], f, args.keys, args.each)
            t, n = time_replproxy(f)
            native_rows.append((name, kinds[name].version, f.stat().st_size, t, n))

    fast = "on" if speedups_available() else "off (pure Python)"
    print(f"# RDB load: {keys} keys, v9 file {size / 1e6:.1f} MB ({v9_origin})\n")
    print(f"replproxy C fast path: {fast}\n")
    print("| reader | time (s) | keys/s | vs replproxy |")
    print("| --- | ---: | ---: | ---: |")
    for name, t in (
        ("replproxy (reader + keyspace)", rp_t),
        ("rdbtools 0.1.15 (parse only)", rt_t),
        (f"{loader_kind.name} {'.'.join(map(str, loader_kind.version))} load", srv_t),
    ):
        print(f"| {name} | {t:.3f} | {keys / t:,.0f} | {t / rp_t:.2f}x |")
    print()
    print(f"replproxy keys/s / rdbtools keys/s = {rt_t / rp_t:.2f} (bar: >= 3)")
    print(f"replproxy time / redis-server load time = {rp_t / srv_t:.2f} (bar: <= 2)")
    for name, ver, sz, t, n in native_rows:
        print(
            f"replproxy on {name} {'.'.join(map(str, ver))}'s own file ({sz / 1e6:.1f} MB): "
            f"{t:.3f} s, {n / t:,.0f} keys/s"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
