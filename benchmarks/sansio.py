"""Sans-I/O costs the unit tests used to time: no server, no network, in one process.

The unit suite asserts behaviour only (house rule: speed is measured here, never asserted as
a timing in a test). What some of its tests once timed is measured by this script instead:

1. Chunked feeding stays linear (tests/test_rdb_reader.py and tests/test_rdb_speedups.py
   `..._fed_in_tiny_chunks_stay_linear` count the bytes handed to the decoder): a file with
   one huge list (60k x SCALE items, fed in 5-byte chunks) and one huge string (1 MB x
   SCALE, fed in 1000-byte chunks), read by the event path, and loaded into a keyspace by
   the pure-Python path and by the C path. Reported per scale: CPU seconds, MB/s and the
   bytes decoded per file byte; then the CPU per MB at the largest scale over that at
   scale 1 (bar: <= 1.5, linear; quadratic re-decoding would multiply it by the scale).
2. The C sink-mode loader against the pure-Python reader it accelerates: one file of small
   strings and small hashes, lists, sets and sorted sets, loaded in 64 KiB chunks both ways,
   the best of 3 loads each (bar: Python CPU / C CPU >= 2).
3. PFADD of 1000 elements on a new key (tests/test_keyspace_hll.py once printed it): the
   median of 21 runs.

CPU time (time.process_time) is what the ratios use, so other load on a shared machine
moves them little; wall time is printed beside it. `--quick`: scales 1 and 2, a fifth of
the keys.

Usage:  python benchmarks/sansio.py [--quick] [--scales 1,2,4] [--keys 200000]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import replproxy.speedups
from replproxy.keyspace import Keyspace, t_hll
from replproxy.rdb import encode as enc
from replproxy.rdb.model import KeyEntry, ZSetValue
from replproxy.rdb.reader import KeySink, RDBReader, speedups_available
from replproxy.rdb.writer import CRC64, dump_rdb

NDBS = 16


def huge_records(scale: int) -> tuple[bytes, int]:
    """An RDB 9 file: a 60k x scale list of 8-byte items, then a 1 MB x scale string; and
    where the list ends (what is fed in 5-byte chunks)."""
    n = 60_000 * scale
    big_list = (
        b"\x01"
        + enc.rdb_string(b"big", compress=False)
        + enc.rdb_length(n)
        + b"".join(enc.rdb_length(8) + b"%08d" % i for i in range(n))
    )
    big_string = (
        b"\x00"
        + enc.rdb_string(b"s", compress=False)
        + enc.rdb_string(b"x" * (1_000_000 * scale), compress=False)
    )
    head = b"REDIS0009\xfe\x00"
    body = head + big_list + big_string + b"\xff"
    return body + CRC64.calc(body).to_bytes(8, "little"), len(head) + len(big_list)


def new_reader(path: str) -> RDBReader:
    """`event`: the event path (Python); `python` / `c`: a sink-mode load without / with C."""
    if path == "event":
        return RDBReader()
    enabled = replproxy.speedups.ENABLED  # read by each reader when it is made
    replproxy.speedups.ENABLED = path == "c"
    try:
        sink = KeySink([{} for _ in range(NDBS)], [{} for _ in range(NDBS)])
        reader = RDBReader(sink=sink)
    finally:
        replproxy.speedups.ENABLED = enabled
    assert (reader._fast is not None) == (path == "c"), path
    return reader


def feed(reader: RDBReader, data: bytes, chunks: list[tuple[int, int]]) -> int:
    """Feeds `data` in (upto, size) runs of chunks; returns the bytes handed to the decoder."""
    decoded = [0]
    decode = reader._run

    def counting(buf: bytes, after_scan: bool = False) -> None:
        decoded[0] += len(buf)
        decode(buf, after_scan)

    reader._run = counting  # type: ignore[method-assign]
    i = 0
    for upto, size in chunks:
        while i < upto:
            n = min(size, upto - i)
            reader.feed(data[i : i + n])
            reader.next_events()
            i += n
    reader.feed_eof()
    reader.next_events()
    assert reader.done
    return decoded[0]


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def linearity(
    scales: list[int], paths: list[str]
) -> list[tuple[str, int, int, float, float, float]]:
    rows = []
    for scale in scales:
        data, list_end = huge_records(scale)
        for path in paths:
            reader = new_reader(path)
            wall, cpu, decoded = timed(
                functools.partial(feed, reader, data, [(list_end, 5), (len(data), 1000)])
            )
            assert isinstance(decoded, int)
            rows.append((path, scale, len(data), wall, cpu, decoded / len(data)))
            print(f"# {path} x{scale}: {cpu:.3f} s CPU", file=sys.stderr)
    return rows


def small_keys_file(keys: int) -> bytes:
    rng = random.Random(1)
    entries: list[KeyEntry] = [
        KeyEntry(0, b"key:%d" % i, b"value:%d" % rng.randrange(10**9)) for i in range(keys)
    ]
    each = keys // 20
    for i in range(each):
        entries.append(KeyEntry(0, b"h:%d" % i, {b"f%d" % j: b"v%d" % j for j in range(5)}))
        entries.append(KeyEntry(0, b"l:%d" % i, [b"e%d" % j for j in range(5)]))
        entries.append(KeyEntry(0, b"s:%d" % i, {b"m%d" % j for j in range(5)}))
        entries.append(KeyEntry(0, b"z:%d" % i, ZSetValue({b"m%d" % j: j / 3 for j in range(5)})))
    return dump_rdb(entries, version=9)


def load(data: bytes, path: str) -> int:
    reader = new_reader(path)
    feed(reader, data, [(len(data), 65536)])
    sink = reader.sink
    assert isinstance(sink, KeySink)
    return sink.keys


def pfadd_ms(runs: int = 21) -> float:
    rnd = random.Random(3)
    els = [rnd.randbytes(rnd.choice((0, 1, 3, 7, 8, 9, 15, 16, 33))) for _ in range(1000)]
    times = []
    for _ in range(runs):
        ks = Keyspace()
        t0 = time.perf_counter()
        t_hll.pfadd(ks, 0, [b"PFADD", b"k", *els])
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", default="1,2,4", help="sizes of the huge-record file")
    ap.add_argument("--keys", type=int, default=200_000, help="small string keys to load")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.scales, args.keys = "1,2", args.keys // 5
    scales = [int(x) for x in args.scales.split(",")]
    paths = ["event", "python"] + (["c"] if speedups_available() else [])
    load_avg = os.getloadavg()

    rows = linearity(scales, paths)
    data = small_keys_file(args.keys)
    loads: dict[str, tuple[float, float, int]] = {}
    for _ in range(3):  # the best of 3 each, alternating
        for path in ("python", "c") if speedups_available() else ("python",):
            wall, cpu, n = timed(functools.partial(load, data, path))
            assert isinstance(n, int)
            if path not in loads or cpu < loads[path][1]:
                loads[path] = (wall, cpu, n)
    pfadd = pfadd_ms()

    print(f"# Sans-I/O costs: `python benchmarks/sansio.py {' '.join(sys.argv[1:])}`".rstrip())
    print(
        f"# machine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}, load average before the run {load_avg[0]:.2f} "
        f"{load_avg[1]:.2f} {load_avg[2]:.2f}; C accelerator "
        f"{'built' if speedups_available() else 'not built (pure Python only)'}\n"
    )
    print("## Huge records fed in tiny chunks\n")
    print("| path | scale | file (MB) | wall (s) | CPU (s) | MB/s (CPU) | decoded / file |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for path, scale, size, wall, cpu, ratio in rows:
        print(
            f"| {path} | {scale} | {size / 1e6:.2f} | {wall:.3f} | {cpu:.3f} | "
            f"{size / 1e6 / cpu:.1f} | {ratio:.2f} |"
        )
    print()
    for path in paths:
        mine = [(s, size, cpu) for p, s, size, _, cpu, _ in rows if p == path]
        (s0, size0, cpu0), (s1, size1, cpu1) = mine[0], mine[-1]
        growth = (cpu1 / size1) / (cpu0 / size0)
        verdict = "met" if growth <= 1.5 else "NOT met"
        print(
            f"- {path}: CPU per MB at scale {s1} / at scale {s0} = {growth:.2f} "
            f"(bar: <= 1.5, linear) - {verdict}"
        )
    print(f"\n## Loading {len(data) / 1e6:.1f} MB of small keys in 64 KiB chunks\n")
    print("| path | keys | wall (s) | CPU (s) | keys/s (CPU) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for path, (wall, cpu, n) in loads.items():
        print(f"| {path} | {n:,} | {wall:.3f} | {cpu:.3f} | {n / cpu:,.0f} |")
    if "c" in loads:
        ratio = loads["python"][1] / loads["c"][1]
        verdict = "met" if ratio >= 2 else "NOT met"
        print(f"\n- Python CPU / C CPU = {ratio:.2f} (bar: >= 2) - {verdict}")
    print(f"\n## PFADD of 1000 elements on a new key\n\nmedian of 21 runs: {pfadd:.2f} ms")


if __name__ == "__main__":
    main()
