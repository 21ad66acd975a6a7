"""replproxy's own snapshot in `--dir`: the restart state, written the way Redis writes dump.rdb.

This module owns two files and nothing else:

- `<dbfilename>` (default `replproxy.rdb`): the keyspace as an RDB in the master's own RDB
  version, keeping the master's `redis-ver`/`valkey-ver` AUX field (the appliers read it), with
  the AUX fields `repl-id`, `repl-offset` and `repl-stream-db` that `rdbPopulateSaveInfo`
  writes - so a plain redis-server could restart from it too.
- `<dbfilename>.json`: what an RDB has no field for (replid2, second_replid_offset, the
  master followed and the configured one, keys marked unsupported), tied to its RDB by the
  RDB's CRC64. Written second: a state file that does not match its RDB is ignored (the RDB
  alone is a valid restart state).

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
It also tells which master to connect to (`known_master`): the one followed when the state was
saved, if a failover (`REPLICAOF`, Sentinel) moved the relay away from the configured
`--upstream` since - as a Redis replica whose config Sentinel rewrote - or, with Sentinels,
as the fallback when none of them answers.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from replproxy.config import Config, SavePoint, Upstream
from replproxy.fork import Child, ChildResult, Forker
from replproxy.rdb.model import (
    Event,
    KeyEntry,
    ResizeDB,
    SelectDB,
)
from replproxy.rdb.writer import write_rdb
from replproxy.replication import Position

if TYPE_CHECKING:
    from replproxy.keyspace.store import Keyspace
    from replproxy.replication import Replication

log = logging.getLogger("replproxy.persistence")

STATE_FORMAT = 1
CRON_PERIOD = 0.1  # serverCron runs at hz 10
BGSAVE_RETRY_DELAY = 5.0  # CONFIG_BGSAVE_RETRY_DELAY: after a failed save, policy retries wait
LOAD_CHUNK = 1 << 20
LOAD_PROGRESS_PERIOD = 1.0
CHILD_POLL = 0.02

_VERSION_AUX = (b"redis-ver", b"valkey-ver")


class SaveError(Exception):
    """A save could not be done (the reason is logged)."""


class SaveInProgress(SaveError):
    """Only one save at a time, as Redis: "Background save already in progress"."""


# ---- what a snapshot holds ----


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


# The keys the relay could not apply, also inside the RDB (an AUX field, which Redis ignores
# as the AUX contract says): a crash between the RDB's rename and the state file's leaves the
# new RDB with the old state file, and the marks must not be lost with it.
MARKS_AUX = b"replproxy-unsupported-keys"


def _marks_json(marks: set[tuple[int, bytes]] | frozenset[tuple[int, bytes]]) -> list[list[Any]]:
    return [[db, base64.b64encode(key).decode()] for db, key in sorted(marks)]


def _marks_from(pairs: object) -> frozenset[tuple[int, bytes]]:
    if not isinstance(pairs, list):
        return frozenset()
    return frozenset((int(db), base64.b64decode(key)) for db, key in pairs)


def _aux_of(ks: Keyspace) -> dict[bytes, bytes]:
    aux = {k: ks.loaded_aux[k] for k in _VERSION_AUX if k in ks.loaded_aux}
    if ks.unsupported_keys:
        aux[MARKS_AUX] = json.dumps(_marks_json(ks.unsupported_keys)).encode()
    return aux


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


def write_snapshot(
    path: Path, ks: Keyspace, position: Position, upstream: str, configured: str | None = None
) -> dict[str, Any]:
    """Write the RDB and its state file atomically; return the state written.

    Both go to temp files first (fsynced), then the RDB is renamed into place, then the state
    file, then the directory is fsynced. On any error both temp files are removed and the
    previous snapshot is untouched.
    """
    pid = os.getpid()
    state_path = state_path_of(path)
    tmp, state_tmp = temp_path_of(path, pid), temp_path_of(state_path, pid)
    version, valkey = ks.dialect.rdb_version, ks.dialect.valkey
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
                aux=_aux_of(ks),
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
            "upstream": upstream,  # the master followed (after any failover)
            "configured_upstream": configured,  # --upstream at the time
            "saved_at": time.time(),
            "unsupported_keys": _marks_json(ks.unsupported_keys),
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


def parse_host_port(text: object) -> tuple[str, int] | None:
    """`host:port` as the state file writes a master (None when it names none)."""
    if not isinstance(text, str):
        return None
    host, _, port = text.rpartition(":")
    try:
        n = int(port)
    except ValueError:
        return None
    return (host, n) if host and 0 < n < 65536 else None


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


# ---- the trio side ----


class Persistence:
    """Saves (foreground, forked, by policy, at shutdown) and the start-up load, with INFO state."""

    def __init__(
        self,
        config: Config,
        keyspace: Keyspace,
        replication: Replication,
        forker: Forker,
        current_master: Callable[[], Upstream] | None = None,
    ) -> None:
        self.config = config
        self.keyspace = keyspace
        self.replication = replication
        self.forker = forker
        self.path = config.dbfile_path
        self.state_path = state_path_of(self.path)
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
        self.child: Child | None = None
        # What "changes since the last save" restarts from when the running child's save
        # succeeds (Redis's dirty_before_bgsave), and the temp files it writes.
        self._child_marks = (0, 0)
        self._child_temp_files: tuple[Path, ...] = ()
        self._last_try = -BGSAVE_RETRY_DELAY  # monotonic time of the last save attempt
        self._saved_marks = self._marks()
        # The master followed now (the link's, after REPLICAOF or a Sentinel switch), and the
        # one the start-up state says to connect to (`load_at_startup`).
        self.current_master: Callable[[], Upstream] = current_master or (lambda: config.upstream)
        self.known_master: tuple[str, int] | None = None

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
        return str(self.current_master())

    def _configured(self) -> str | None:
        up = self.config.upstream
        return str(up) if up.host else None

    # ---- saving ----

    def save(self) -> None:
        """`SAVE`: write the snapshot now, in the foreground (everything else waits)."""
        if self.child is not None:
            raise SaveInProgress("Background save already in progress")
        marks, started = self._marks(), time.monotonic()
        self._last_try = started
        try:
            state = write_snapshot(
                self.path,
                self.keyspace,
                Position.of(self.replication),
                self._upstream(),
                self._configured(),
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
        configured = self._configured()
        # Captured with the fork, between two checkpoints: the image and the position agree.
        position, marks = Position.of(self.replication), self._marks()
        self._last_try = time.monotonic()
        try:
            child = self.forker.fork(
                lambda: write_snapshot(path, ks, position, upstream, configured)
            )
        except OSError as e:
            self.last_bgsave_ok = False
            log.error("Can't save in background: fork: %s", e)
            raise SaveError(f"fork: {e}") from e
        self.child = child
        self._child_marks = marks
        self._child_temp_files = (
            temp_path_of(path, child.pid),
            temp_path_of(self.state_path, child.pid),
        )
        log.info("Background saving started by pid %d (offset %d)", child.pid, position.repl_offset)
        return child.pid

    def check_child(self) -> bool | None:
        """Reap the save child if it has exited: its success, or None while it runs."""
        child = self.child
        if child is None:
            return None
        result = child.poll()
        return None if result is None else self._child_exited(result)

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
        self._child_exited(child.kill())

    def _child_exited(self, result: ChildResult) -> bool:
        self.child = None
        if result.ok:
            self._saved(self._child_marks, result.report, result.seconds)
            log.info("DB saved on disk: %s", _describe(result.report))
            log.info("Background saving terminated with success")
            return True
        for p in self._child_temp_files:
            with contextlib.suppress(OSError):
                p.unlink()
        self.last_bgsave_ok = False
        log.error("Background saving error: %s", result.error)
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
                if MARKS_AUX in loader.aux:
                    unsupported = _marks_from(json.loads(loader.aux[MARKS_AUX]))
            else:
                position = Position(
                    replid,
                    offset,
                    stream_db,
                    str(state.get("replid2") or "0" * 40),
                    int(state.get("second_replid_offset", -1)),
                )
                unsupported = _marks_from(state.get("unsupported_keys"))
                self.known_master = self._master_to_resume(state)
                resume = self.known_master or (self.config.upstream.host, self.config.upstream.port)
                if parse_host_port(state.get("upstream")) != resume and not self.config.sentinel:
                    log.warning(
                        "snapshot was taken from master %s, now replicating from %s:%d: the "
                        "master decides whether the position continues its history",
                        state.get("upstream"),
                        *resume,
                    )
        # Swapped in with its position in one step, before the next checkpoint.
        self.replication.load_restart(loader, position, unsupported)
        return LoadedSnapshot(loader.keys, size, position, unsupported, note)

    def _master_to_resume(self, state: dict[str, Any]) -> tuple[str, int] | None:
        """The master a restart connects to, when the state file decides it (see the module
        docstring): None to use `--upstream`."""
        followed = parse_host_port(state.get("upstream"))
        if followed is None:
            return None
        if self.config.sentinel is not None:
            return followed  # the fallback when no Sentinel answers
        configured = self._configured()
        if configured is None or state.get("configured_upstream") != configured:
            return None  # --upstream changed since: the operator's choice wins
        return None if followed == parse_host_port(configured) else followed

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
