"""replproxy's own snapshot in `--dir`: the restart state, written the way Redis writes dump.rdb.

This module owns two files and nothing else:

- `<dbfilename>` (default `replproxy.rdb`): the keyspace as an RDB in the master's own RDB
  version, keeping the master's `redis-ver`/`valkey-ver` AUX field (the appliers read it), with
  the AUX fields `repl-id`, `repl-offset` and `repl-stream-db` that `rdbPopulateSaveInfo`
  writes - so a plain redis-server could restart from it too.
- `<dbfilename>.json`: what an RDB has no field for (replid2, second_replid_offset, the
  upstream, keys marked unsupported), tied to its RDB by the RDB's CRC64. Written second: a
  state file that does not match its RDB is ignored (the RDB alone is a valid restart state).

It reads the keyspace and the replication position (`Replication` stays their one owner) and
changes them only at start-up, through `Keyspace.new_loader()` and `Replication.restore()`.
The upstream link's `upstream.rdb` is not a restart state and is never read here.

Writing. `BGSAVE`, the `--save` policy and the shutdown save fork, as `rdbSaveBackground`
does: the child writes the RDB from its copy-on-write image of the keyspace and leaves with
`os._exit`; the parent keeps streaming and serving, and reaps it from its cron
(`checkChildrenDone`, 10 times a second). The image is exactly the state at `repl_offset`:
the replication core applies whole transactions between two trio checkpoints and the fork
happens between two checkpoints. `SAVE` writes in the foreground and blocks, as in Redis.
Files appear atomically (temp file named after the writing pid, fsync, rename, fsync of the
directory): a crash or a killed child at any moment leaves the previous snapshot whole.

Start-up (`load_at_startup`). The snapshot is read through the keyspace loader, CRC verified,
while clients get `-LOADING`. A file that does not load is reported, renamed aside
(`<dbfilename>.corrupt-<time>`) and never served; replproxy then full-syncs. A good one
restores the replication position, so the link asks `PSYNC <repl-id> <repl-offset+1>`.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import gc
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from replproxy.config import Config, SavePoint
from replproxy.rdb.model import (
    RDB_VERSION_VALKEY_9,
    Event,
    KeyEntry,
    ResizeDB,
    SelectDB,
)
from replproxy.rdb.writer import write_rdb

if TYPE_CHECKING:
    from replproxy.keyspace import Keyspace
    from replproxy.replication import Replication

log = logging.getLogger("replproxy.persistence")

STATE_FORMAT = 1
# The version written when the master's version is unknown (no version AUX field seen yet).
DEFAULT_RDB_VERSION = 11
CRON_PERIOD = 0.1  # serverCron runs at hz 10
BGSAVE_RETRY_DELAY = 5.0  # CONFIG_BGSAVE_RETRY_DELAY: after a failed save, policy retries wait
LOAD_CHUNK = 1 << 20
LOAD_PROGRESS_PERIOD = 1.0
CHILD_POLL = 0.02
_REPORT_MAX = 60_000  # a child's report must fit in the pipe buffer (64 KB): it never blocks

# What each Redis release writes (rdb.h RDB_VERSION): 8.6+ 13, 7.4-8.4 12, 7.2 11, 7.0 10,
# 5.0-6.2 9, 4.0 8.
_REDIS_RDB_VERSIONS = (
    ((8, 6), 13),
    ((7, 4), 12),
    ((7, 2), 11),
    ((7, 0), 10),
    ((5, 0), 9),
    ((4, 0), 8),
)
_VERSION_AUX = (b"redis-ver", b"valkey-ver")


class SaveError(Exception):
    """A save could not be done (the reason is logged)."""


class SaveInProgress(SaveError):
    """Only one save at a time, as Redis: "Background save already in progress"."""


# ---- what a snapshot holds ----


@dataclass(frozen=True)
class Position:
    """The replication position a snapshot is taken at, captured with the keyspace image."""

    replid: str | None  # None: no position in the master's history (never synced)
    repl_offset: int
    stream_db: int
    replid2: str
    second_replid_offset: int

    @classmethod
    def of(cls, repl: Replication) -> Position:
        return cls(
            repl.replid if repl.has_history else None,
            repl.repl_offset,
            repl.stream_db,
            repl.replid2,
            repl.second_replid_offset,
        )


def _major_minor(raw: bytes) -> tuple[int, int] | None:
    try:
        parts = raw.decode().split(".")
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except (UnicodeDecodeError, ValueError):
        return None


def snapshot_format(aux: dict[bytes, bytes]) -> tuple[int, bool]:
    """(RDB version, Valkey dialect) the master writes, from its snapshot's version AUX field.

    The restart snapshot is written as the master would have written it, so every value of
    the master's dataset is representable and a downstream replica of the master's version
    could load it.
    """
    if b"valkey-ver" in aux:
        mm = _major_minor(aux[b"valkey-ver"])
        return (RDB_VERSION_VALKEY_9 if mm is not None and mm[0] >= 9 else 11), True
    raw = aux.get(b"redis-ver")
    mm = _major_minor(raw) if raw is not None else None
    if mm is None:
        return DEFAULT_RDB_VERSION, False
    for since, version in _REDIS_RDB_VERSIONS:
        if mm >= since:
            return version, False
    return 7, False


def keyspace_events(ks: Keyspace) -> Iterator[Event]:
    """The keyspace as writer events, in Redis's file order: functions, then DB by DB."""
    yield from ks.functions.values()
    for db, keys in enumerate(ks.dbs):
        if not keys:
            continue
        expires = ks.expires[db]
        yield SelectDB(db)
        yield ResizeDB(len(keys), len(expires))
        for key, value in keys.items():
            yield KeyEntry(db, key, value, expires.get(key))


def state_path_of(rdb: Path) -> Path:
    return rdb.with_name(rdb.name + ".json")


def temp_path_of(path: Path, pid: int) -> Path:
    """Where `pid` writes `path` before renaming it (Redis: `temp-<pid>.rdb`)."""
    return path.with_name(f"{path.name}.tmp-{pid}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_snapshot(path: Path, ks: Keyspace, position: Position, upstream: str) -> dict[str, Any]:
    """Write the RDB and its state file atomically; return the state written.

    Both go to temp files first (fsynced), then the RDB is renamed into place, then the state
    file, then the directory is fsynced. On any error both temp files are removed and the
    previous snapshot is untouched.
    """
    pid = os.getpid()
    state_path = state_path_of(path)
    tmp, state_tmp = temp_path_of(path, pid), temp_path_of(state_path, pid)
    version, valkey = snapshot_format(ks.loaded_aux)
    history = position.replid is not None
    try:
        with open(tmp, "wb", buffering=1 << 20) as f:
            writer = write_rdb(
                f,
                keyspace_events(ks),
                version,
                position.replid if history else None,
                position.repl_offset if history else None,
                position.stream_db if history else None,
                valkey=valkey,
                aux={k: ks.loaded_aux[k] for k in _VERSION_AUX if k in ks.loaded_aux},
            )
            f.flush()
            os.fsync(f.fileno())
        state = {
            "format": STATE_FORMAT,
            "rdb": path.name,
            "crc64": f"{writer.checksum:016x}",
            "size": writer.bytes_written,
            "keys": writer.keys_written,
            "rdb_version": version,
            "valkey": valkey,
            "replid": position.replid,
            "repl_offset": position.repl_offset,
            "repl_stream_db": position.stream_db,
            "replid2": position.replid2,
            "second_replid_offset": position.second_replid_offset,
            "upstream": upstream,
            "saved_at": time.time(),
            "unsupported_keys": [
                [db, base64.b64encode(key).decode()] for db, key in sorted(ks.unsupported_keys)
            ],
        }
        with open(state_tmp, "w") as f:
            json.dump(state, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        os.replace(state_tmp, state_path)
    except BaseException:
        for p in (tmp, state_tmp):
            with contextlib.suppress(OSError):
                p.unlink()
        raise
    _fsync_dir(path.parent)
    return state


# ---- reading it back ----


@dataclass(frozen=True)
class LoadedSnapshot:
    keys: int
    size: int
    position: Position | None  # None: the RDB holds no replication position
    unsupported_keys: frozenset[tuple[int, bytes]]
    state_note: str | None  # why the state file was not used, when it was not


def position_from_aux(aux: dict[bytes, bytes]) -> tuple[str, int, int] | None:
    """(repl-id, repl-offset, repl-stream-db) when the RDB names a usable position."""
    try:
        replid = aux[b"repl-id"].decode("ascii")
        offset = int(aux[b"repl-offset"])
        stream_db = int(aux.get(b"repl-stream-db", b"0"))
    except (KeyError, UnicodeDecodeError, ValueError):
        return None
    if len(replid) != 40 or replid == "0" * 40 or offset < 0 or stream_db < 0:
        return None
    try:
        int(replid, 16)
    except ValueError:
        return None
    return replid, offset, stream_db


def read_state(path: Path) -> dict[str, Any] | None:
    """The state file as a dict, or None when absent or unreadable (the reason is logged)."""
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("state file %s cannot be read (%s): ignored", path, e)
        return None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        log.warning("state file %s has an unknown format: ignored", path)
        return None
    return state


def _stored_crc(path: Path) -> int:
    with open(path, "rb") as f:
        f.seek(-8, os.SEEK_END)
        return int.from_bytes(f.read(8), "little")


def _match_state(
    state: dict[str, Any] | None, rdb: Path, replid: str, offset: int
) -> tuple[dict[str, Any] | None, str | None]:
    """The state file when it belongs to this RDB, else (None, why)."""
    if state is None:
        return None, "no state file"
    crc = f"{_stored_crc(rdb):016x}"
    if state.get("crc64") != crc or state.get("rdb") != rdb.name:
        return None, f"state file is for another snapshot (crc64 {state.get('crc64')}, rdb {crc})"
    if state.get("replid") != replid or state.get("repl_offset") != offset:
        return None, "state file names another replication position"
    return state, None


def _unsupported_from(state: dict[str, Any]) -> frozenset[tuple[int, bytes]]:
    out = set()
    for db, key in state.get("unsupported_keys", []):
        out.add((int(db), base64.b64decode(key)))
    return frozenset(out)


# ---- the --save policy ----


def save_point_due(
    points: tuple[SavePoint, ...],
    changes: int,
    seconds_since_save: float,
    retry_allowed: bool,
) -> SavePoint | None:
    """The first `save <seconds> <changes>` rule that asks for a snapshot now (serverCron)."""
    if not retry_allowed:
        return None
    for seconds, min_changes in points:
        if changes >= min_changes and seconds_since_save > seconds:
            return seconds, min_changes
    return None


# ---- the fork ----


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _detach(parent: int, close_fds: list[int]) -> None:
    """First thing in the child: it must not act on the parent's signals, sockets or event loop.

    Python-level signal handlers would write to trio's wakeup fd, shared with the parent;
    closing the listening sockets frees the ports if the parent dies first (Redis closes
    them in its child too); a garbage collection would write into every object header and
    turn the copy-on-write image into a full copy. On Linux the child dies with its parent.
    """
    gc.disable()
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
    for fd in close_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _child_main(
    work: Callable[[], dict[str, Any]], parent: int, report_fd: int, close_fds: list[int]
) -> NoReturn:
    """Run `work` in the forked child, write its report to the pipe and `_exit`: never returns."""
    code = 1
    report: dict[str, Any] = {"error": "the child failed before starting"}
    try:
        _detach(parent, close_fds)
        report = work()
        code = 0
    except BaseException as e:
        report = {"error": f"{type(e).__name__}: {e}"[:4096]}
    finally:
        try:
            os.write(report_fd, json.dumps(report).encode()[:_REPORT_MAX])
        finally:
            os._exit(code)


@dataclass
class _Child:
    pid: int
    report_fd: int
    started: float  # monotonic
    # (commands applied, full syncs) when forked: what "changes since the last save" restarts
    # from when this save succeeds (Redis's dirty_before_bgsave).
    marks: tuple[int, int]
    temp_files: tuple[Path, ...]


def _read_report(fd: int) -> dict[str, Any]:
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        report = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


# ---- the trio side ----


class Persistence:
    """Saves (foreground, forked, by policy, at shutdown) and the start-up load, with INFO state."""

    def __init__(self, config: Config, keyspace: Keyspace, replication: Replication) -> None:
        self.config = config
        self.keyspace = keyspace
        self.replication = replication
        self.path = config.dbfile_path
        self.state_path = state_path_of(self.path)
        # File descriptors a forked child closes at once (the listening sockets), asked for at
        # each fork because listeners close and their numbers get reused.
        self.child_close_fds: Callable[[], list[int]] = list
        # Start-up load, for -LOADING and INFO persistence.
        self.loading = False
        self.loading_started = 0.0  # unix time
        self.loading_total_bytes = 0
        self.loading_loaded_bytes = 0
        self.last_load_keys = 0
        # Save state, as Redis's INFO persistence shows it. At start-up the data counts as
        # saved (Redis sets lastsave to the start time).
        self.lastsave = time.time()
        self.last_bgsave_ok = True
        self.last_bgsave_seconds = -1
        self.saves = 0
        self.child: _Child | None = None
        self._last_try = -BGSAVE_RETRY_DELAY  # monotonic time of the last save attempt
        self._saved_marks = self._marks()

    # ---- counters ----

    def _marks(self) -> tuple[int, int]:
        s = self.replication.stats
        return s.commands_applied, s.sync_full

    def changes_since_last_save(self) -> int:
        """Keyspace writes applied since the last successful save (Redis's `dirty`).

        Every applied write counts one; a full sync replaced the whole dataset, so it counts
        as many changes as it loaded keys (at least one).
        """
        applied, full_syncs = self._marks()
        changes = applied - self._saved_marks[0]
        if full_syncs != self._saved_marks[1]:
            changes += max(1, self.keyspace.total_keys())
        return changes

    @property
    def bgsave_in_progress(self) -> bool:
        return self.child is not None

    def current_bgsave_seconds(self) -> int:
        child = self.child
        return -1 if child is None else int(time.monotonic() - child.started)

    def _upstream(self) -> str:
        return str(self.config.upstream)

    # ---- saving ----

    def save(self) -> None:
        """`SAVE`: write the snapshot now, in the foreground (everything else waits)."""
        if self.child is not None:
            raise SaveInProgress("Background save already in progress")
        marks, started = self._marks(), time.monotonic()
        self._last_try = started
        try:
            state = write_snapshot(
                self.path, self.keyspace, Position.of(self.replication), self._upstream()
            )
        except Exception as e:
            self.last_bgsave_ok = False
            log.error("Failed saving the DB to %s: %s", self.path, e)
            raise SaveError(str(e)) from e
        self._saved(marks, state, time.monotonic() - started)
        log.info("DB saved on disk: %s", _describe(state))

    def bgsave(self) -> int:
        """`BGSAVE`: fork a child that writes the snapshot; returns its pid."""
        if self.child is not None:
            raise SaveInProgress("Background save already in progress")
        ks, path, upstream = self.keyspace, self.path, self._upstream()
        # Captured with the fork, between two checkpoints: the image and the position agree.
        position, marks = Position.of(self.replication), self._marks()
        self._last_try = time.monotonic()
        parent = os.getpid()
        read_fd, write_fd = os.pipe()
        close_fds = [fd for fd in self.child_close_fds() if fd not in (read_fd, write_fd)]
        try:
            pid = os.fork()
        except OSError as e:
            os.close(read_fd)
            os.close(write_fd)
            self.last_bgsave_ok = False
            log.error("Can't save in background: fork: %s", e)
            raise SaveError(f"fork: {e}") from e
        if pid == 0:
            os.close(read_fd)
            _child_main(
                lambda: write_snapshot(path, ks, position, upstream), parent, write_fd, close_fds
            )
        os.close(write_fd)
        self.child = _Child(
            pid,
            read_fd,
            time.monotonic(),
            marks,
            (temp_path_of(path, pid), temp_path_of(self.state_path, pid)),
        )
        log.info("Background saving started by pid %d (offset %d)", pid, position.repl_offset)
        return pid

    def check_child(self) -> bool | None:
        """Reap the save child if it has exited: its success, or None while it runs."""
        child = self.child
        if child is None:
            return None
        pid, status = os.waitpid(child.pid, os.WNOHANG)
        if pid == 0:
            return None
        return self._child_exited(child, status)

    async def wait_child(self) -> bool:
        """Wait for the running save child (if any); the outcome of the last save."""
        while self.child is not None:
            done = self.check_child()
            if done is not None:
                return done
            await trio.sleep(CHILD_POLL)
        return self.last_bgsave_ok

    def kill_child(self, why: str) -> None:
        """Stop a running save child (its temp files are removed; the previous file stays)."""
        child = self.child
        if child is None:
            return
        log.warning("killing the background save child %d: %s", child.pid, why)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        _, status = os.waitpid(child.pid, 0)
        self._child_exited(child, status)

    def _child_exited(self, child: _Child, status: int) -> bool:
        self.child = None
        report = _read_report(child.report_fd)
        elapsed = time.monotonic() - child.started
        code = os.waitstatus_to_exitcode(status)
        if code == 0 and "error" not in report:
            self._saved(child.marks, report, elapsed)
            log.info("DB saved on disk: %s", _describe(report))
            log.info("Background saving terminated with success")
            return True
        for p in child.temp_files:
            with contextlib.suppress(OSError):
                p.unlink()
        self.last_bgsave_ok = False
        if code < 0:
            log.error("Background saving terminated by signal %d", -code)
        else:
            log.error("Background saving error: %s", report.get("error", f"exit code {code}"))
        return False

    def _saved(self, marks: tuple[int, int], state: dict[str, Any], elapsed: float) -> None:
        self._saved_marks = marks
        self.lastsave = time.time()
        self.last_bgsave_ok = True
        self.last_bgsave_seconds = int(elapsed)
        self.saves += 1

    def save_due(self) -> str | None:
        """Why a save should start now (for the log), or None.

        The `--save` rules, plus one rule of a relay's own: after a full sync the snapshot is
        written at once (when `--save` is not empty), as a Redis replica keeps the master's
        RDB as its dump.rdb after a disk-based sync - a restart right after a deploy must
        not cost a second full sync.
        """
        if self.child is not None or self.loading or not self.config.save:
            return None
        if not self.last_bgsave_ok and time.monotonic() - self._last_try <= BGSAVE_RETRY_DELAY:
            return None
        if self._marks()[1] != self._saved_marks[1]:
            return "Full sync done. Saving..."
        point = save_point_due(
            self.config.save, self.changes_since_last_save(), time.time() - self.lastsave, True
        )
        if point is None:
            return None
        return f"{point[1]} changes in {point[0]} seconds. Saving..."

    async def run_save_policy(self) -> None:
        """The persistence part of `serverCron`: reap a finished child, apply `--save`."""
        while True:
            self.check_child()
            why = self.save_due()
            if why is not None:
                log.info("%s", why)
                with contextlib.suppress(SaveError):  # logged; retried after the delay
                    self.bgsave()
            await trio.sleep(CRON_PERIOD)

    async def final_save(self) -> bool:
        """The shutdown save: a fresh child for the final state; killed if cancelled."""
        # As prepareForShutdown: a save in progress is of an older state; start over.
        self.kill_child("a shutdown save of the final state replaces it")
        try:
            self.bgsave()
        except SaveError:
            return False
        try:
            return await self.wait_child()
        finally:
            self.kill_child("the shutdown did not wait for it")

    # ---- start-up ----

    async def load_at_startup(self) -> None:
        """Load `<dir>/<dbfilename>` if present and resume the replication position it names.

        Clients get `-LOADING` meanwhile. A snapshot that does not load (truncated, CRC
        mismatch, any format error) is renamed aside and reported; replproxy then starts
        empty and full-syncs.
        """
        self._remove_stale_temp_files()
        path = self.path
        if not path.exists():
            log.info("no snapshot %s: the first sync will be a full sync", path)
            return
        self.loading = True
        self.loading_started = time.time()
        self.loading_loaded_bytes = 0
        try:
            loaded = await self._load(path)
        except Exception as e:
            self._set_aside(path, e)
            return
        finally:
            self.loading = False
        self.last_load_keys = loaded.keys
        if loaded.unsupported_keys:
            self.keyspace.unsupported_keys = set(loaded.unsupported_keys)
        pos = loaded.position
        elapsed = time.time() - self.loading_started
        if pos is None or pos.replid is None:
            log.warning(
                "snapshot %s loaded: %d keys in %.2fs, but it holds no replication position "
                "(repl-id/repl-offset): the first sync will be a full sync",
                path,
                loaded.keys,
                elapsed,
            )
            return
        if loaded.state_note is not None:
            log.warning(
                "%s: using the RDB's replication position without replid2 (%s)",
                path,
                loaded.state_note,
            )
        self.replication.restore(
            pos.replid, pos.repl_offset, pos.stream_db, pos.replid2, pos.second_replid_offset
        )
        log.info(
            "snapshot %s loaded: %d keys in %.2fs; replid %s offset %d: asking the master "
            "for a partial resync (PSYNC %s %d)",
            path,
            loaded.keys,
            elapsed,
            pos.replid,
            pos.repl_offset,
            pos.replid,
            pos.repl_offset + 1,
        )

    async def _load(self, path: Path) -> LoadedSnapshot:
        size = path.stat().st_size
        self.loading_total_bytes = size
        log.info("loading snapshot %s (%d bytes)", path, size)
        loader = self.keyspace.new_loader()
        last_log = time.monotonic()
        with open(path, "rb") as f:
            while chunk := f.read(LOAD_CHUNK):
                loader.feed(chunk)
                self.loading_loaded_bytes += len(chunk)
                now = time.monotonic()
                if now - last_log >= LOAD_PROGRESS_PERIOD:
                    last_log = now
                    log.info(
                        "loading snapshot: %d%% (%d of %d bytes, %d keys)",
                        self.loading_loaded_bytes * 100 // max(size, 1),
                        self.loading_loaded_bytes,
                        size,
                        loader.keys,
                    )
                await trio.sleep(0)  # clients (-LOADING), probes and signals keep running
            loader.feed_eof()
        aux_position = position_from_aux(loader.aux)
        position: Position | None = None
        unsupported: frozenset[tuple[int, bytes]] = frozenset()
        note: str | None = None
        if aux_position is not None:
            replid, offset, stream_db = aux_position
            state, note = _match_state(read_state(self.state_path), path, replid, offset)
            if state is None:
                position = Position(replid, offset, stream_db, "0" * 40, -1)
            else:
                position = Position(
                    replid,
                    offset,
                    stream_db,
                    str(state.get("replid2") or "0" * 40),
                    int(state.get("second_replid_offset", -1)),
                )
                unsupported = _unsupported_from(state)
                if state.get("upstream") != self._upstream():
                    log.warning(
                        "snapshot was taken from master %s, now replicating from %s: the "
                        "master decides whether the position continues its history",
                        state.get("upstream"),
                        self._upstream(),
                    )
        loader.commit()
        return LoadedSnapshot(loader.keys, size, position, unsupported, note)

    def _set_aside(self, path: Path, error: Exception) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
            n += 1
        try:
            os.replace(path, aside)
            if self.state_path.exists():
                os.replace(self.state_path, aside.with_name(aside.name + ".json"))
            where = f"moved aside to {aside}"
        except OSError as e:
            where = f"and it could not be moved aside ({e})"
        log.error(
            "snapshot %s is unusable: %s; %s; NOT serving it: starting empty, the first sync "
            "will be a full sync",
            path,
            error,
            where,
        )

    def _remove_stale_temp_files(self) -> None:
        """Temp files of a save that died with its process (Redis removes temp-<pid>.rdb)."""
        for pattern in (f"{self.path.name}.tmp-*", f"{self.state_path.name}.tmp-*"):
            for p in self.path.parent.glob(pattern):
                log.info("removing %s, left by an interrupted save", p)
                with contextlib.suppress(OSError):
                    p.unlink()


def _describe(state: dict[str, Any]) -> str:
    return (
        f"{state.get('keys')} keys, {state.get('size')} bytes, RDB {state.get('rdb_version')}, "
        f"replid {state.get('replid')} offset {state.get('repl_offset')}"
    )
