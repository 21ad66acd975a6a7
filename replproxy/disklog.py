"""The disk-backed replication log: the applied stream kept in `--dir/backlog/` segment files.

An in-memory backlog covers a short absence; this log covers hours (x-pipe's keeper keeps
its command files for the same reason): a downstream replica that comes back after
`--repl-backlog-disk-size` bytes or `--repl-backlog-disk-ttl` seconds of writes at most still
partially resyncs. It also survives a restart of replproxy, so replicas that were behind when
it stopped can still continue.

Layout: `<first offset, 20 digits>.seg` files holding the stream bytes from that offset on,
each up to `segment_size`; `meta.json` names the replication ids whose history the offsets
belong to (a full resync starts a new history and empties the log). Whole segments are
dropped from the head when the size or age limit is passed; the newest is never dropped.

The log is best effort, the memory ring is not: a write that fails (a full disk, an I/O
error) must neither stop the stream nor leave a hole the offsets do not know of, so the log
drops what it holds and starts again at the stream's end once writes work again (tried every
`RETRY_AFTER` seconds). Its offsets are then always those of the bytes in its files.

`TieredBacklog` puts the memory ring in front of this log behind the `Backlog` interface
the PSYNC server already reads (`covers`, `read_from`, `read_some`, `first_byte_offset`,
`histlen`), so serving a replica from disk needs no code of its own.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeGuard

from replproxy.replication import NULL_REPLID, Backlog

log = logging.getLogger("replproxy.disklog")

SEGMENT_SIZE = 64 * 1024 * 1024
# Seconds between attempts to write again after a write failed.
RETRY_AFTER = 1.0


def _is_history(replid: str | None) -> TypeGuard[str]:
    """Whether `replid` names a history: the all-zeros id is "no second replid" (replid2 when
    there is none), which any two unrelated histories share."""
    return bool(replid) and replid != NULL_REPLID


class DiskLog:
    def __init__(
        self,
        dir: Path,
        max_bytes: int,
        ttl: float = 0.0,
        segment_size: int = SEGMENT_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("disk log size must be positive")
        self.dir = dir
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.segment_size = max(1, min(segment_size, max_bytes))
        self.clock = clock
        dir.mkdir(parents=True, exist_ok=True)
        self._starts: list[int] = []  # first offset of each segment, ascending
        self._sizes: list[int] = []
        self._file: BinaryIO | None = None  # the newest segment, open for appends
        self.replids: list[str] = []
        # Failed writes (segments and meta.json): the log dropped what it held each time.
        self.write_errors = 0
        self._failed_at: float | None = None  # when the last write failed, until one works
        self._meta_stale = False  # meta.json could not be written: try again
        self._scan()

    # ---- state ----

    def _scan(self) -> None:
        """Pick up the segments a previous run left, keeping only a contiguous run."""
        segs = sorted(p for p in self.dir.glob("*.seg") if p.stem.isdigit())
        for p in segs:
            start, size = int(p.stem), p.stat().st_size
            if size == 0:  # created, never written (a crash): its start is the next one's
                p.unlink(missing_ok=True)
                continue
            if self._starts and start != self._starts[-1] + self._sizes[-1]:
                log.warning("disk log: gap before %s; dropping older segments", p.name)
                self._drop_all_files(keep=p)
                self._starts, self._sizes = [], []
            self._starts.append(start)
            self._sizes.append(size)
        try:
            meta = json.loads((self.dir / "meta.json").read_text())
            self.replids = [str(x) for x in meta.get("replids", []) if _is_history(str(x))]
        except (OSError, ValueError):
            self.replids = []
        self.next_offset = self._starts[-1] + self._sizes[-1] if self._starts else 1

    @property
    def first_byte_offset(self) -> int:
        return self._starts[0] if self._starts else self.next_offset

    @property
    def histlen(self) -> int:
        return self.next_offset - self.first_byte_offset

    def covers(self, offset: int) -> bool:
        return self.first_byte_offset <= offset <= self.next_offset

    def _write_meta(self) -> None:
        tmp, meta = self.dir / "meta.json.tmp", self.dir / "meta.json"
        try:
            tmp.write_text(json.dumps({"replids": self.replids[-8:]}))
            os.replace(tmp, meta)
        except OSError as e:
            # A meta.json naming the ids of before would pair the segments with that history
            # at a restart: without one, a restart keeps nothing of the log.
            for p in (tmp, meta):
                with contextlib.suppress(OSError):
                    p.unlink(missing_ok=True)
            self._meta_stale = True
            self._write_failed(e, meta)
        else:
            self._meta_stale = False

    def _drop_all_files(self, keep: Path | None = None) -> None:
        self._close()
        for p in self.dir.glob("*.seg"):
            if p != keep:
                p.unlink(missing_ok=True)

    def _close(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()

    # ---- history changes ----

    def reset(self, next_offset: int, replid: str | None) -> None:
        """A new history (full resync): nothing before `next_offset` means anything now."""
        self._drop_all_files()
        self._starts, self._sizes = [], []
        self.next_offset = next_offset
        self.replids = [replid] if _is_history(replid) else []
        self._write_meta()

    def add_replid(self, replid: str) -> None:
        """The master's id changed (`+CONTINUE <new>`): same offsets, one more name."""
        if _is_history(replid) and replid not in self.replids:
            self.replids.append(replid)
            self._write_meta()

    def resume(self, next_offset: int, replids: list[str]) -> bool:
        """After a restart from a snapshot at `next_offset - 1`: keep what the log has of
        that history up to there (bytes past it were applied after the snapshot and will
        come again from the master). Returns False (and empties the log) when it cannot."""
        same_history = any(_is_history(r) and r in self.replids for r in replids)
        if same_history and self.first_byte_offset <= next_offset <= self.next_offset:
            self._truncate(next_offset)
            for r in replids:
                self.add_replid(r)
            return True
        self.reset(next_offset, replids[0] if replids else None)
        return False

    def _truncate(self, next_offset: int) -> None:
        self._close()
        # Segments from `next_offset` on go whole, the first one too: an empty file kept
        # there would be registered again by the next append, the same start twice.
        while self._starts and self._starts[-1] >= next_offset:
            self._path(self._starts.pop()).unlink(missing_ok=True)
            self._sizes.pop()
        if self._starts:
            keep = next_offset - self._starts[-1]
            with open(self._path(self._starts[-1]), "r+b") as f:
                f.truncate(keep)
            self._sizes[-1] = keep
        self.next_offset = next_offset

    # ---- the stream ----

    def _path(self, start: int) -> Path:
        return self.dir / f"{start:020d}.seg"

    def append(self, data: bytes) -> None:
        """Log the stream's next bytes. Never raises for the disk's sake: a failed write drops
        the log (see `_write_failed`); the stream and the memory ring go on."""
        if not data:
            return
        if self._failed_at is not None:
            now = self.clock()
            if self._failed_at <= now < self._failed_at + RETRY_AFTER:
                self.next_offset += len(data)  # empty: it starts again at the stream's end
                return
        try:
            self._write(data)
        except OSError as e:
            self._write_failed(e, self._path(self.next_offset), len(data))
            return
        if self._failed_at is not None:
            self._failed_at = None
            log.info(
                "disk log: writing to %s works again; it holds the stream from offset %d on",
                self.dir,
                self.first_byte_offset,
            )
        if self._meta_stale:
            self._write_meta()
        self._trim()

    def _write(self, data: bytes) -> None:
        if self._file is None or self._sizes[-1] >= self.segment_size:
            self._close()
            # A newest segment starting here is empty (left by a failed write): reuse it.
            if not self._starts or self._starts[-1] != self.next_offset:
                self._starts.append(self.next_offset)
                self._sizes.append(0)
            # Unbuffered: what a write did not take never reaches the file later, uncounted.
            self._file = open(self._path(self.next_offset), "ab", buffering=0)  # noqa: SIM115
        view = memoryview(data)
        while view:  # readers open the files separately: nothing to flush
            n = self._file.write(view)
            if not n:
                raise OSError(errno.EIO, "the disk took none of the bytes written")
            view = view[n:]
        self._sizes[-1] += len(data)
        self.next_offset += len(data)

    def _write_failed(self, error: OSError, path: Path, skipped: int = 0) -> None:
        """A write failed: the bytes it was given (`skipped`) are not in the log, and some of
        them may be in the file. Drop everything, so no offset past the hole is ever served,
        and start again at the stream's end once writes work (Redis never leaves a hole in
        its AOF either: flushAppendOnlyFile truncates a short write away)."""
        self.write_errors += 1
        first = self._failed_at is None
        self._failed_at = self.clock()
        had = self.histlen
        with contextlib.suppress(OSError):
            self._close()
        for start in self._starts:
            with contextlib.suppress(OSError):
                self._path(start).unlink(missing_ok=True)
        self._starts, self._sizes = [], []
        self.next_offset += skipped
        if first:
            log.warning(
                "disk log: writing %s failed: %s; dropped the %d bytes it held: until writes "
                "work again (retried every %gs) partial resyncs are served from the memory "
                "backlog only",
                path,
                error.strerror or error,
                had,
                RETRY_AFTER,
            )

    def _trim(self) -> None:
        total = self.next_offset - self.first_byte_offset
        while len(self._starts) > 1:
            oldest = self._path(self._starts[0])
            too_big = total - self._sizes[0] >= self.max_bytes or total > self.max_bytes
            too_old = self.ttl > 0 and self._age(oldest) > self.ttl
            if not (too_big or too_old):
                break
            with contextlib.suppress(OSError):  # left behind, it is older than the rest
                oldest.unlink(missing_ok=True)
            total -= self._sizes[0]
            self._starts.pop(0)
            self._sizes.pop(0)

    def _age(self, path: Path) -> float:
        try:
            return self.clock() - path.stat().st_mtime
        except OSError:
            return 0.0

    def read_some(self, offset: int, max_bytes: int) -> bytes:
        if not self.covers(offset):
            raise ValueError(f"offset {offset} not in the disk log")
        i = bisect.bisect_right(self._starts, offset) - 1
        if i < 0 or offset == self.next_offset:
            return b""
        with open(self._path(self._starts[i]), "rb") as f:
            f.seek(offset - self._starts[i])
            return f.read(min(max_bytes, self._starts[i] + self._sizes[i] - offset))


class TieredBacklog(Backlog):
    """The memory ring in front, the disk log behind: what PSYNC can be served from."""

    def __init__(self, size: int, disk: DiskLog) -> None:
        super().__init__(size)
        self.disk = disk

    def new_history(self, next_offset: int, replid: str | None) -> None:
        super().new_history(next_offset, replid)
        self.disk.reset(next_offset, replid)

    def resume(self, next_offset: int, replids: list[str]) -> None:
        super().resume(next_offset, replids)
        if self.disk.resume(next_offset, replids):
            log.info(
                "disk log kept: replicas can continue from offset %d", self.disk.first_byte_offset
            )

    def renamed(self, replid: str) -> None:
        self.disk.add_replid(replid)

    def append(self, data: bytes) -> None:
        super().append(data)
        self.disk.append(data)

    def covers(self, offset: int) -> bool:
        return super().covers(offset) or self.disk.covers(offset)

    def read_some(self, offset: int, max_bytes: int) -> bytes:
        if super().covers(offset):
            return super().read_some(offset, max_bytes)
        return self.disk.read_some(offset, max_bytes)

    def read_from(self, offset: int) -> bytes:
        out: list[bytes] = []
        while True:
            data = self.read_some(offset, 1 << 20)
            if not data:
                return b"".join(out)
            out.append(data)
            offset += len(data)

    @property
    def servable_first_byte_offset(self) -> int:
        return min(self.first_byte_offset, self.disk.first_byte_offset)

    @property
    def servable_histlen(self) -> int:
        return self.first_byte_offset + self.histlen - self.servable_first_byte_offset
