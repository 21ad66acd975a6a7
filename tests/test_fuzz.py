"""The fuzz targets (tests/fuzz/) in the normal suite.

- Every input kept in `tests/fuzz_corpus/<target>/` (seeds and the regressions of every bug
  fuzzing found) is replayed through its target's check, without atheris.
- Each target also runs under atheris (coverage-guided, libFuzzer) for a bounded number of
  iterations from a fixed seed, starting from that corpus: a short run in CI. The longer run
  is `python -m tests.fuzz.run --seconds 600` (docs/testing.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.run import CORPUS, ROOT, TARGETS, target_module

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_replays(target: str) -> None:
    files = sorted((CORPUS / target).iterdir())
    assert files, f"no corpus for {target}"
    check = target_module(target).check
    for f in files:
        try:
            check(f.read_bytes())
        except Exception as e:
            raise AssertionError(f"{f.relative_to(ROOT)}: {e!r}") from e


# Iterations per target in CI: about 5-10 s each on this machine's 2 cores.
CI_RUNS = {"request": 4000, "stream": 3000, "link": 2000, "psync": 5000, "rdb": 300}


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_briefly(target: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    cmd = [
        sys.executable,
        "-m",
        "tests.fuzz.run",
        target,
        "--runs",
        str(CI_RUNS[target]),
        "--seed",
        "1",
        "--workdir",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=280)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "Done" in out and f"stat::number_of_executed_units: {CI_RUNS[target]}" in out, out[
        -3000:
    ]
