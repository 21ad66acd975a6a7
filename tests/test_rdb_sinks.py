"""The counting and collecting sinks (`KeyCounter`, `KeyCollector`) against the event path.

`replproxy rdb verify|info` count keys and `dump` collects them through these sinks, with the
C loader (`count_records`, `collect_records` in `replproxy/rdb/_loader.c`) when it is built.
Whatever the path, they must report exactly what a loop over `KeyEntry` events would: the
same keys (counted by DB, type byte and expiry; collected in file order with their values),
the same other events, the same error with the same offset. Checked on the corpus of
`test_rdb_speedups` (every type the C path handles, all encodings), the shared fixture files,
thousands of truncated or bit-flipped copies, and random chunkings.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from replproxy.rdb import encode as enc
from replproxy.rdb.model import ZSetValue, type_name
from replproxy.rdb.reader import (
    COUNT_SLOTS,
    KeyCollector,
    KeyCounter,
    RDBReader,
    speedups_available,
)
from tests.harness.rdbpaths import canon, feed, speedups
from tests.harness.soak import rounds
from tests.test_rdb_speedups import (
    corpus,
    key,
    mutations,
    random_chunks,
    rdb_file,
)


def expected(data: bytes, chunks: list[int] | None) -> dict[str, Any]:
    """What the event path says: keys as tuples, counts, module types, other events, error."""
    events, error = feed(RDBReader(), data, chunks)
    keys = [(e.db, e.key, e.value, e.expire_ms) for e in events if type(e).__name__ == "KeyEntry"]
    counts: Counter[tuple[int, int, bool]] = Counter()
    modules: Counter[tuple[int, str]] = Counter()
    for e in events:
        if type(e).__name__ == "KeyEntry":
            counts[(e.db, e.rdb_type, e.expire_ms is not None)] += 1
            if e.rdb_type == 7:
                modules[(e.db, type_name(e.value))] += 1
    others = [repr(e) for e in events if type(e).__name__ != "KeyEntry"]
    return {"keys": keys, "counts": counts, "modules": modules, "others": others, "error": error}


def counted(data: bytes, chunks: list[int] | None, fast: bool) -> dict[str, Any]:
    counter = KeyCounter()
    with speedups(fast):
        reader = RDBReader(sink=counter)
    assert (reader._fast is not None) == fast
    events, error = feed(reader, data, chunks)
    counts: Counter[tuple[int, int, bool]] = Counter()
    for db, slots in counter.counts.items():
        assert len(slots) == COUNT_SLOTS
        for i, n in enumerate(slots):
            if n:
                counts[(db, i // 2, bool(i & 1))] += n
    assert counter.keys == sum(counts.values())
    return {
        "counts": counts,
        "modules": counter.module_types,
        "others": [repr(e) for e in events],
        "error": error,
    }


def collected(data: bytes, chunks: list[int] | None, fast: bool) -> dict[str, Any]:
    collector = KeyCollector()
    with speedups(fast):
        reader = RDBReader(sink=collector)
    assert (reader._fast is not None) == fast
    events, error = feed(reader, data, chunks)
    assert collector.keys == len(collector.keys_out)
    return {"keys": collector.keys_out, "others": [repr(e) for e in events], "error": error}


def canon_keys(keys: list[Any]) -> list[Any]:
    return [(db, k, canon(v), x) for db, k, v, x in keys]


def check(data: bytes, chunks: list[int] | None = None) -> dict[str, Any]:
    """Counting and collecting equal the event path, on the Python path and (if built) C."""
    want = expected(data, chunks)
    want_keys = canon_keys(want["keys"])
    for fast in (False, True) if speedups_available() else (False,):
        got = counted(data, chunks, fast)
        for field in ("counts", "modules", "others", "error"):
            assert got[field] == want[field], (field, fast)
        got = collected(data, chunks, fast)
        assert canon_keys(got["keys"]) == want_keys, fast
        assert (got["others"], got["error"]) == (want["others"], want["error"]), fast
    return want


def test_corpus_counts_and_collects_like_events() -> None:
    rng = random.Random(5)
    for data in corpus():
        want = check(data)
        assert want["error"] is None and want["keys"]
        for _ in range(5):
            check(data, random_chunks(rng, len(data)))


def test_corrupted_files_count_and_collect_like_events() -> None:
    """100 mutations of each corpus file; REPLPROXY_TEST_SOAK=N runs N times as many."""
    rng = random.Random(6)
    errors = total = 0
    for data in corpus():
        for bad in mutations(data, rng, rounds(100)):
            errors += check(bad)["error"] is not None
            total += 1
            if rng.random() < 0.1:
                check(bad, random_chunks(rng, len(bad)))
    # Most mutations break the file (more than 600 of 1,250 at 250 per file).
    assert errors * 25 > total * 12


def test_shared_fixtures_count_and_collect_like_events(shared_rdb: Path) -> None:
    rng = random.Random(7)
    files = sorted(shared_rdb.rglob("*.rdb"))
    assert len(files) > 50
    modules = 0
    for path in files:
        data = path.read_bytes()
        modules += sum(check(data)["modules"].values())
        check(data, random_chunks(rng, len(data)))
    assert modules > 0  # the module fixtures are counted by their module's name


def test_big_values_cut_by_chunks_count_and_collect_like_events() -> None:
    """Values far bigger than the chunks: the C path retries them at C speed until whole. A
    90 KB list, a 140 KB sorted set and a 200 KB string, so even 64 KiB chunks cut each."""
    n = 10_000
    big_list = key(
        1, b"big", enc.rdb_length(n) + b"".join(enc.rdb_string(b"%08d" % i) for i in range(n))
    )
    zs = ZSetValue({b"m%d" % i: float(i) for i in range(n)})
    big_zset = key(
        5,
        b"z",
        enc.rdb_length(len(zs))
        + b"".join(enc.rdb_string(m) + enc.rdb_binary_double(s) for m, s in zs.items()),
    )
    big_string = key(0, b"s", enc.rdb_string(b"x" * 200_000, compress=False))
    small = b"".join(key(0, b"k%d" % i, enc.rdb_string(b"v%d" % i)) for i in range(500))
    data = rdb_file(small, big_list, big_zset, big_string, small)
    for size in (7, 1000, 65536):
        want = check(data, [size] * (len(data) // size + 1))
        assert want["error"] is None and len(want["keys"]) == 1003
    assert min(len(big_list), len(big_zset), len(big_string)) > 65536
    # Cut off inside the big list: the same truncation error everywhere.
    cut = data[: data.index(big_list) + len(big_list) // 2]
    want = check(cut, [4096] * (len(cut) // 4096 + 1))
    assert want["error"] is not None and "truncated" in want["error"][1]
