"""Stream apply per command kind, sans-I/O: splitter + replication core + keyspace, no server.

For each of the hot writes redis-benchmark sends (SET, MSET of 10 pairs, INCR, LPUSH,
HSET), a stream of N such commands is cut in 64 KiB reads, split (SET runs merged, as the
link does) and applied by `Replication.process`; the best of `--rounds` runs is reported as
commands/s. It isolates the per-command cost of the apply path, which the live benchmark
(`benchmarks/apply.py`) measures among the noise of real servers; with `--tree PATH` it runs
against another checkout (built in place) in the same process set-up, so before and after
can be compared in one run, alternating.

Usage:  python benchmarks/apply_kinds.py [--commands 24000] [--rounds 15] [--tree PATH ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

# Runs inside the tree measured (its own replproxy on sys.path).
_MEASURE = r"""
import json, sys, time
from replproxy.keyspace import Keyspace
from replproxy.link.protocol import encode_command as c
from replproxy.replication import Replication
from replproxy.resp.stream import StreamSplitter

n, rounds = int(sys.argv[1]), int(sys.argv[2])


def stream(kind):
    if kind == "set":
        return b"".join(c("SET", f"key:{i % 100000:012d}", "xxx") for i in range(n))
    if kind == "mset":
        return b"".join(
            c("MSET", *[x for j in range(10) for x in (f"key:{(i * 10 + j) % 100000:012d}", "x")])
            for i in range(n)
        )
    if kind == "incr":
        return b"".join(c("INCR", "counter:rand") for _ in range(n))
    if kind == "lpush":
        return b"".join(c("LPUSH", "mylist", "xxx") for _ in range(n))
    return b"".join(c("HSET", "myhash", f"f{i % 1000}", "xxx") for i in range(n))


out = {}
for kind in ("set", "mset", "incr", "lpush", "hset"):
    data = stream(kind)
    best = float("inf")
    for _ in range(rounds):
        ks = Keyspace(databases=16)
        r = Replication(ks)
        r.full_resync("a" * 40, 0, stream_db=0)
        s = StreamSplitter(0, merge_sets=True)
        t = time.perf_counter()
        for k in range(0, len(data), 65536):
            s.feed(data[k : k + 65536])
            r.process(s.next_commands())
        best = min(best, time.perf_counter() - t)
    out[kind] = n / best
print(json.dumps(out))
"""


def measure(tree: Path, commands: int, rounds: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(commands), str(rounds)],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commands", type=int, default=24000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--tree", action="append", default=[], help="another checkout to compare")
    ap.add_argument("--alternations", type=int, default=2)
    args = ap.parse_args()
    trees = [HERE, *(Path(t).resolve() for t in args.tree)]
    best: dict[Path, dict[str, float]] = {t: {} for t in trees}
    for _ in range(args.alternations):
        for t in trees:
            for kind, rate in measure(t, args.commands, args.rounds).items():
                best[t][kind] = max(best[t].get(kind, 0.0), rate)
    kinds = list(best[HERE])
    print("| tree | " + " | ".join(kinds) + " |")
    print("| --- | " + " | ".join("---:" for _ in kinds) + " |")
    for t in trees:
        row = " | ".join(f"{best[t][k] / 1000:,.0f}k" for k in kinds)
        print(f"| {t} | {row} |")
    for t in trees[1:]:
        ratios = " | ".join(f"{best[HERE][k] / best[t][k]:.2f}" for k in kinds)
        print(f"| this tree / {t.name} | {ratios} |")


if __name__ == "__main__":
    main()
