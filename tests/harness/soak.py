"""How many rounds the randomized unit tests run.

The sans-I/O suite (`pytest -m unit`) must fit in a minute on two cores, so its randomized
and property tests (hypothesis examples, seeded mutations of RDB files, seeded command
streams) run the counts given in their code: sized so every case class they generate is met
many times, from the same seeds. A soak runs them longer:

    REPLPROXY_TEST_SOAK=10 python -m pytest -q -m unit -n 2

multiplies each of those counts by 10 (a seeded test replays the same first cases, then goes
on with the same generator). docs/testing.md lists the tests that take it.
"""

from __future__ import annotations

import os


def _factor() -> int:
    raw = os.environ.get("REPLPROXY_TEST_SOAK", "").strip()
    if not raw:
        return 1
    n = int(raw)
    if n < 1:
        raise ValueError(f"REPLPROXY_TEST_SOAK must be a whole number >= 1, not {raw!r}")
    return n


SOAK = _factor()


def rounds(n: int) -> int:
    """`n` for the normal run, `n` times REPLPROXY_TEST_SOAK in a soak."""
    return n * SOAK
