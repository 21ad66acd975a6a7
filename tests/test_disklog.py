"""The disk-backed replication log, without servers: offsets, trimming, restarts."""

from __future__ import annotations

import contextlib
import errno
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replproxy import disklog
from replproxy.disklog import DiskLog, TieredBacklog
from replproxy.replication import NULL_REPLID, Replication
from tests.test_replication import Recorder, c, split


class FullDisk:
    """Segment files whose writes fail with ENOSPC while `full` is set, after writing half of
    what they were given (a short write, then the error, as a filling disk does)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        real_open = open

        def faulty_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            return _FaultyFile(self, real_open(path, mode, *args, **kwargs))

        monkeypatch.setattr(disklog, "open", faulty_open, raising=False)


class _FaultyFile:
    def __init__(self, disk: FullDisk, f: Any) -> None:
        self._disk, self._f = disk, f

    def write(self, data: bytes) -> int | None:
        if self._disk.full:
            self._f.write(bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._f.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> _FaultyFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


def read_to_end(log: DiskLog, offset: int) -> bytes:
    got = b""
    while chunk := log.read_some(offset, 3):
        got += chunk
        offset += len(chunk)
    return got


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


def test_a_failed_write_never_shifts_later_offsets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FullDisk(monkeypatch)
    now = [1000.0]
    log = DiskLog(tmp_path, max_bytes=1000, segment_size=8, clock=lambda: now[0])
    log.reset(1, "a" * 40)
    stream = b"AAAABBBBCCCCDDDD"
    for i in range(0, len(stream), 4):
        disk.full = stream[i : i + 4] == b"BBBB"
        with contextlib.suppress(OSError):  # before the fix the error escaped
            log.append(stream[i : i + 4])
    disk.full = False
    # The log may have lost what it held, never the order: whatever offset it still covers
    # reads the stream's own bytes from there, and it ends where the stream ends.
    for offset in range(log.first_byte_offset, log.next_offset + 1):
        assert log.covers(offset)
        assert read_to_end(log, offset) == stream[offset - 1 :], offset
    assert log.next_offset == len(stream) + 1
    assert not any(p.stat().st_size == 0 for p in tmp_path.glob("*.seg"))
    # Writes work again: the log goes on from the stream's end (after its retry delay).
    now[0] += 3600
    log.append(b"EEEE")
    assert read_to_end(log, len(stream) + 1) == b"EEEE"
    # A restart finds only whole, contiguous history on disk.
    log._close()
    again = DiskLog(tmp_path, max_bytes=1000, segment_size=8)
    assert again.next_offset == len(stream) + 5
    for offset in range(again.first_byte_offset, again.next_offset):
        assert read_to_end(again, offset) == (stream + b"EEEE")[offset - 1 :]


def test_a_full_disk_keeps_the_stream_and_the_memory_backlog_going(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    disk = FullDisk(monkeypatch)
    now = [1000.0]
    backlog = TieredBacklog(
        10**6, DiskLog(tmp_path, max_bytes=10**6, segment_size=64, clock=lambda: now[0])
    )
    repl = Replication(Recorder(), backlog=backlog)
    repl.full_resync("a" * 40, 100, 0)
    sent = b""
    with caplog.at_level(logging.WARNING, logger="replproxy.disklog"):
        for i in range(20):
            disk.full = 5 <= i < 15  # the disk fills up for a while, then has room again
            data = c("SET", f"k{i}", "v" * i)
            repl.process(split(data, 100 + len(sent)))  # never raises: the link stays up
            sent += data
            now[0] += 0.1
    assert repl.repl_offset == 100 + len(sent)
    assert backlog.read_from(101) == sent  # the memory ring has every byte
    assert backlog.disk.write_errors >= 1
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(failures) == 1, [r.getMessage() for r in failures]  # one line, not one a batch
    assert "No space left on device" in failures[0].getMessage()
    disk_log = backlog.disk
    assert disk_log.next_offset == 101 + len(sent)
    for offset in range(disk_log.first_byte_offset, disk_log.next_offset + 1):
        assert read_to_end(disk_log, offset) == sent[offset - 101 :]


def test_a_failed_meta_write_never_pairs_segments_with_another_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    log = DiskLog(tmp_path, max_bytes=1000, segment_size=16, clock=lambda: now[0])
    log.reset(1, "a" * 40)
    log.append(b"x" * 40)

    def no_space(*args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(Path, "write_text", no_space)
        log.reset(1, "b" * 40)  # a full resync while meta.json cannot be written
        log._close()
        # meta.json still saying "a" would let a restart of history "a" serve history "b".
        assert DiskLog(tmp_path, max_bytes=1000, segment_size=16).replids == []
    now[0] += 3600
    log.append(b"y" * 40)  # the disk has room again: meta.json is written with it
    log._close()
    again = DiskLog(tmp_path, max_bytes=1000, segment_size=16)
    assert again.replids == ["b" * 40]
    assert not again.resume(41, ["a" * 40])


def test_resume_at_the_first_segment_start_leaves_no_duplicate_segment(tmp_path: Path) -> None:
    log = DiskLog(tmp_path, max_bytes=48, segment_size=16)
    log.reset(101, "a" * 40)
    for _ in range(3):
        log.append(b"o" * 16)
    log._close()
    again = DiskLog(tmp_path, max_bytes=48, segment_size=16)
    # The snapshot was taken at offset 100: nothing of the log is kept, but the history is.
    assert again.resume(101, ["a" * 40])
    assert again.histlen == 0
    new = b"".join(bytes([65 + i]) * 16 for i in range(3))
    for i in range(0, len(new), 16):
        again.append(new[i : i + 16])  # fills the log to its limit: the oldest goes
    assert again.next_offset == 101 + len(new)
    assert read_to_end(again, again.first_byte_offset) == new[again.first_byte_offset - 101 :]


def test_an_empty_segment_left_by_a_crash_is_not_registered_twice(tmp_path: Path) -> None:
    log = DiskLog(tmp_path, max_bytes=48, segment_size=16)
    log.reset(1, "a" * 40)
    log.append(b"o" * 16)
    log._close()
    (tmp_path / f"{17:020d}.seg").touch()  # opened, then the process died
    again = DiskLog(tmp_path, max_bytes=48, segment_size=16)
    new = b"".join(bytes([65 + i]) * 16 for i in range(3))
    for i in range(0, len(new), 16):
        again.append(new[i : i + 16])
    assert read_to_end(again, again.first_byte_offset) == new[again.first_byte_offset - 17 :]


def test_no_second_replid_is_not_a_history(tmp_path: Path) -> None:
    log = DiskLog(tmp_path, max_bytes=1000, segment_size=16)
    log.reset(1, "a" * 40)
    log.append(b"0123456789" * 5)
    # A restart of history "a" without a second replid (replid2 is all zeros).
    assert log.resume(51, ["a" * 40, NULL_REPLID])
    assert NULL_REPLID not in log.replids
    log._close()
    # Another history, also without a second replid, shares nothing with it.
    again = DiskLog(tmp_path, max_bytes=1000, segment_size=16)
    assert not again.resume(51, ["b" * 40, NULL_REPLID])
    assert again.histlen == 0
