"""Run the coverage-guided fuzz targets (atheris, libFuzzer underneath).

    python -m tests.fuzz.run                       # every target, 60 s each
    python -m tests.fuzz.run link rdb --seconds 600
    python -m tests.fuzz.run stream --runs 20000 --seed 1
    python -m tests.fuzz.run --write-seeds         # (re)write the seed files of the corpus

Each target runs in its own process (atheris exits the process when it is done), with the
kept corpus `tests/fuzz_corpus/<target>/` as input (read only) and a work directory
(`--workdir`, default `.fuzz-work/<target>/`) that receives the new interesting inputs and
any crash, timeout or leak artifact. A crash is a finding: reproduce it with
`python -m tests.fuzz.run <target> --replay <file>`, fix the code, and keep the input as a
regression in `tests/fuzz_corpus/<target>/` (the normal suite replays every file there).
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import traceback
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fuzz_corpus"
TARGETS = ("request", "stream", "link", "psync", "rdb")
_D = Path(__file__).resolve().parent / "dicts"
DICTS = {t: _D / ("rdb.dict" if t == "rdb" else "resp.dict") for t in TARGETS}


def target_module(name: str) -> ModuleType:
    return importlib.import_module(f"tests.fuzz.fuzz_{name}")


def seeds_of(mod: ModuleType) -> list[bytes]:
    make = getattr(mod, "make_seeds", None)
    return list(make()) if make is not None else list(mod.SEEDS)


def write_seeds() -> None:
    for name in TARGETS:
        d = CORPUS / name
        d.mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(seeds_of(target_module(name))):
            (d / f"seed-{i:02d}").write_bytes(data)
        print(f"{name}: {len(list(d.iterdir()))} files in {d}")


def replay(name: str, files: list[Path]) -> int:
    """Run the target's check on each file (no atheris): 0 when every one passes."""
    mod = target_module(name)
    failed = 0
    for f in files:
        try:
            mod.check(f.read_bytes())
        except Exception:
            failed += 1
            print(f"FAIL {name} {f}", file=sys.stderr)
            traceback.print_exc()
    return 1 if failed else 0


def child(name: str, libfuzzer_args: list[str]) -> None:
    """In the fuzzing process: instrument, then hand over to libFuzzer (never returns)."""
    import atheris

    with atheris.instrument_imports(include=["replproxy", "tests.fuzz"]):
        mod = target_module(name)
    check = mod.check
    atheris.Setup([sys.argv[0], *libfuzzer_args], check)
    atheris.Fuzz()


def fuzz(
    name: str,
    *,
    seconds: float | None,
    runs: int | None,
    seed: int | None,
    workdir: Path,
    extra: list[str],
) -> int:
    work = workdir / name
    (work / "corpus").mkdir(parents=True, exist_ok=True)
    args = [
        f"-artifact_prefix={work}/",
        "-timeout=20",
        "-rss_limit_mb=4096",
        "-print_final_stats=1",
        f"-dict={DICTS[name]}",
    ]
    if seconds is not None:
        args.append(f"-max_total_time={int(seconds)}")
    if runs is not None:
        args.append(f"-runs={runs}")
    if seed is not None:
        args.append(f"-seed={seed}")
    args += [*extra, str(work / "corpus"), str(CORPUS / name)]
    cmd = [sys.executable, "-m", "tests.fuzz.run", "--child", name, "--", *args]
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    rc = subprocess.run(cmd, cwd=ROOT).returncode
    found = sorted(
        p for p in work.iterdir() if p.name.startswith(("crash-", "timeout-", "leak-", "oom-"))
    )
    if rc != 0 or found:
        print(
            f"== {name}: FINDINGS (exit {rc}): {[str(p) for p in found]}\n"
            f"   reproduce: python -m tests.fuzz.run {name} --replay <file>; after the fix "
            f"keep the input in tests/fuzz_corpus/{name}/",
            flush=True,
        )
        return rc or 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        rest = argv[2:]
        child(argv[1], rest[1:] if rest[:1] == ["--"] else rest)
        return 0
    p = argparse.ArgumentParser(
        prog="python -m tests.fuzz.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "targets",
        nargs="*",
        choices=[[], *TARGETS],
        default=[],
        help=f"which targets (default: all of {', '.join(TARGETS)})",
    )
    p.add_argument("--seconds", type=float, default=None, help="time per target (default 60)")
    p.add_argument("--runs", type=int, default=None, help="iterations per target")
    p.add_argument("--seed", type=int, default=None, help="libFuzzer's random seed")
    p.add_argument("--workdir", type=Path, default=ROOT / ".fuzz-work")
    p.add_argument("--replay", type=Path, nargs="+", help="run these inputs through the check")
    p.add_argument("--write-seeds", action="store_true", help="write the seed corpus files")
    p.add_argument(
        "--libfuzzer",
        nargs=argparse.REMAINDER,
        default=[],
        help="more libFuzzer flags (e.g. -jobs=2 -max_len=8192)",
    )
    ns = p.parse_args(argv)
    if ns.write_seeds:
        write_seeds()
        return 0
    targets = ns.targets or list(TARGETS)
    if ns.replay:
        return max(replay(t, ns.replay) for t in targets)
    seconds = ns.seconds if ns.seconds is not None or ns.runs is not None else 60
    rcs = [
        fuzz(t, seconds=seconds, runs=ns.runs, seed=ns.seed, workdir=ns.workdir, extra=ns.libfuzzer)
        for t in targets
    ]
    return max(rcs)


if __name__ == "__main__":
    sys.exit(main())
