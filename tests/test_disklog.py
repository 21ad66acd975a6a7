"""The disk-backed replication log, without servers: offsets, trimming, restarts."""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from replproxy.disklog import DiskLog, TieredBacklog
from replproxy.replication import Replication
from tests.test_replication import Recorder


def test_appends_read_back_across_segments(tmp_path: Path) -> None:
    log = DiskLog(tmp_path, max_bytes=1000, segment_size=10)
    log.reset(101, "a" * 40)
    data = bytes(range(50))
    for i in range(0, 50, 7):
        log.append(data[i : i + 7])
    assert (log.first_byte_offset, log.next_offset) == (101, 151)
    got, off = b"", 101
    while chunk := log.read_some(off, 8):
        got += chunk
        off += len(chunk)
    assert got == data
    assert log.read_some(151, 10) == b"" and log.covers(151) and not log.covers(152)


def test_trims_whole_segments_by_size_and_age(tmp_path: Path) -> None:
    now = [time.time()]  # segment ages come from file mtimes
    log = DiskLog(tmp_path, max_bytes=30, segment_size=10, clock=lambda: now[0])
    log.reset(1, "a" * 40)
    log.append(b"x" * 55)  # one write, one segment: never drops the newest
    for _ in range(6):
        log.append(b"y" * 10)
    assert log.histlen <= 30 + 10
    assert log.read_some(log.first_byte_offset, 5) in (b"yyyyy",)
    aged = DiskLog(tmp_path / "b", max_bytes=10**6, ttl=60, segment_size=10, clock=lambda: now[0])
    aged.reset(1, "a" * 40)
    aged.append(b"1" * 10)
    aged.append(b"2" * 10)
    now[0] += 10**6  # every segment is old now ...
    aged.append(b"3" * 10)
    assert aged.first_byte_offset == 21  # ... but the newest one stays


def test_restart_keeps_the_history_up_to_the_snapshot(tmp_path: Path) -> None:
    log = DiskLog(tmp_path, max_bytes=1000, segment_size=16)
    log.reset(1, "a" * 40)
    log.append(b"0123456789" * 5)  # offsets 1..50
    log._close()
    again = DiskLog(tmp_path, max_bytes=1000, segment_size=16)
    assert (again.first_byte_offset, again.next_offset) == (1, 51)
    # The snapshot was taken at offset 30: bytes after it come again from the master.
    assert again.resume(31, ["a" * 40])
    assert again.next_offset == 31
    assert again.read_some(21, 100) == b"0123456789"
    # Another history: nothing of the log can be served.
    assert not again.resume(31, ["b" * 40])
    assert again.histlen == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), max_size=40), st.integers(1, 25))
def test_tiered_backlog_serves_what_memory_lost(chunks: list[bytes], mem: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        backlog = TieredBacklog(mem, DiskLog(Path(d), max_bytes=10**6, segment_size=17))
        repl = Replication(Recorder(), backlog=backlog)
        repl.full_resync("a" * 40, 0, 0)
        for ch in chunks:
            backlog.append(ch)
        whole = b"".join(chunks)
        assert backlog.covers(1) and backlog.read_from(1) == whole
        assert backlog.read_from(1 + len(whole) // 2) == whole[len(whole) // 2 :]
