"""The one owner of replication identity and position: replid, replid2, offsets, backlog.

Everything that needs to know "where are we in the master's history" asks this module:
the upstream link (what to PSYNC with), the keyspace applier (which DB the stream is in),
INFO/ROLE/metrics, and later the downstream PSYNC server (what it can continue from).

It is sans-I/O: it is fed the commands the link split out of the stream and hands them, whole
transactions at once, to the dataset; it never touches a socket or the clock (callers pass
`now` in where time matters).

Offsets follow Redis exactly (`src/replication.c`): `repl_offset` is the offset of the last
byte applied (`master_repl_offset` on a replica); `read_offset` the last byte received
(`slave_read_repl_offset`). Inside MULTI the applied offset does not move: a transaction is
applied and acknowledged as one unit (`commandProcessed`). The backlog holds exactly the bytes
applied, in order, so `backlog.first_byte_offset + histlen - 1 == repl_offset`.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from replproxy.args import selected_db
from replproxy.resp.stream import StreamCommand, count_key

if TYPE_CHECKING:
    from replproxy.keyspace import KeyspaceLoader

NULL_REPLID = "0" * 40


def random_replid() -> str:
    """A fresh 40-hex-char replication id, as `changeReplicationId` makes one."""
    return os.urandom(20).hex()


# Stream commands that count bytes but change no data. A lone EXEC happens with Redis 5: a
# transaction whose only writing command is flagged read-only (PFCOUNT refreshing its cache)
# propagates that command and EXEC but no MULTI; a real replica answers the EXEC with an
# error it never sends, i.e. it does nothing. (An empty command `*0` only counts bytes too.)
_NO_EFFECT = frozenset({b"ping", b"exec", b"discard"})
# Names the replication core handles itself instead of handing to the dataset.
_SPECIAL = _NO_EFFECT | {b"multi", b"select", b"replconf"}
# Writes with subcommands: INFO commandstats names them `xgroup|create` (from Redis 7.0).
_CONTAINERS = frozenset({b"xgroup", b"function", b"script"})
# The kind `_special_name` gives a container's spellings: applied as any write, counted
# with its subcommand.
_CONTAINER = b"|"


# Spelling as sent -> its lowercase name if the core handles it, else b"": one dict lookup
# per command instead of a `.lower()` (masters send a handful of spellings).
_SPECIAL_SPELLINGS: dict[bytes, bytes] = {}


def _count_key(argv: list[bytes], ncommands: int) -> bytes:
    """The count key of a command (`ReplStats.calls`), b"" for none (an empty `*0`)."""
    if not argv:
        return b""
    if len(argv) > 1 and argv[0].lower() in _CONTAINERS:
        return argv[0] + b"|" + argv[1]
    return count_key(argv[0], ncommands)


def _special_name(spelling: bytes) -> bytes:
    name = spelling.lower()
    kind = name if name in _SPECIAL else _CONTAINER if name in _CONTAINERS else b""
    if len(_SPECIAL_SPELLINGS) < 1024:
        _SPECIAL_SPELLINGS[spelling] = kind
    return kind


class Dataset(Protocol):
    """What the replication core needs from the keyspace (filled in by the keyspace module)."""

    databases: int

    def apply(self, db: int, argv: list[bytes]) -> None:
        """Apply one write command from the master to DB `db`."""

    def apply_transaction(self, db: int, commands: Sequence[list[bytes]]) -> int:
        """Apply a MULTI...EXEC body atomically; return the DB selected at its end."""
        ...

    # Optional (the keyspace has it): `apply_run(db, commands, start, keep, calls) -> (next,
    # applied)` applies a run of commands outside MULTI in one call, appending their raw
    # bytes to `keep` and counting them in `calls` (`ReplStats.calls`), and stops before
    # the first it does not take (`keyspace.lane`).


class Backlog:
    """The replication backlog: the last `size` bytes of the stream, as a ring of chunks.

    Chunks are kept as the immutable bytes objects the stream produced, so appending costs no
    copy; trimming drops whole chunks and slices at most one. `first_byte_offset` is the
    offset of the oldest byte held (Redis's `repl_backlog_off`).
    """

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError("backlog size must be positive")
        self.size = size
        self._chunks: deque[bytes] = deque()
        self.histlen = 0
        self.first_byte_offset = 1  # the next byte appended will be this offset when empty

    def reset(self, next_offset: int) -> None:
        """Drop history; the next byte appended has offset `next_offset`."""
        self._chunks.clear()
        self.histlen = 0
        self.first_byte_offset = next_offset

    # History events, so a backlog with a persistent tier (disklog.TieredBacklog) can keep
    # what stays valid; the memory ring just starts over.

    def new_history(self, next_offset: int, replid: str | None) -> None:
        """A full resync: a new history starts at `next_offset`."""
        self.reset(next_offset)

    def resume(self, next_offset: int, replids: list[str]) -> None:
        """A restart from a snapshot at `next_offset - 1` of the history named `replids`."""
        self.reset(next_offset)

    def renamed(self, replid: str) -> None:
        """The same history goes on under one more replication id (a failover)."""

    def append(self, data: bytes) -> None:
        if not data:
            return
        self._chunks.append(data)
        self.histlen += len(data)
        excess = self.histlen - self.size
        while excess > 0:
            head = self._chunks[0]
            if len(head) <= excess:
                self._chunks.popleft()
                cut = len(head)
            else:
                self._chunks[0] = head[excess:]
                cut = excess
            self.histlen -= cut
            self.first_byte_offset += cut
            excess -= cut

    @property
    def last_offset(self) -> int:
        return self.first_byte_offset + self.histlen - 1

    @property
    def servable_first_byte_offset(self) -> int:
        """The oldest offset a partial resync can start from (a disk tier reaches further)."""
        return self.first_byte_offset

    @property
    def servable_histlen(self) -> int:
        return self.histlen

    def covers(self, offset: int) -> bool:
        """Whether a replica asking for `offset` (first byte it lacks) can continue from here."""
        return self.first_byte_offset <= offset <= self.first_byte_offset + self.histlen

    def read_from(self, offset: int) -> bytes:
        """Every byte from `offset` to the end. `offset` must be covered."""
        if not self.covers(offset):
            raise ValueError(f"offset {offset} not in backlog")
        skip = offset - self.first_byte_offset
        out: list[bytes] = []
        for chunk in self._chunks:
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            out.append(chunk[skip:] if skip else chunk)
            skip = 0
        return b"".join(out)

    def read_some(self, offset: int, max_bytes: int) -> bytes:
        """About `max_bytes` (at least one chunk's worth) from `offset`, which must be covered.

        For downstream senders: a caught-up replica asks for the newest bytes, a lagging one
        for old ones, so the chunk holding `offset` is searched from the nearer end.
        """
        if not self.covers(offset):
            raise ValueError(f"offset {offset} not in backlog")
        chunks = self._chunks
        if offset - self.first_byte_offset <= self.histlen // 2:
            start, it = self.first_byte_offset, iter(chunks)
            for chunk in it:
                if start + len(chunk) > offset:
                    break
                start += len(chunk)
            else:
                return b""
            first, rest = chunk, it
        else:
            tail: list[bytes] = []
            start = self.first_byte_offset + self.histlen
            for chunk in reversed(chunks):
                start -= len(chunk)
                tail.append(chunk)
                if start <= offset:
                    break
            tail.reverse()
            first, rest = tail[0], iter(tail[1:])
        out = [first[offset - start :]]
        n = len(out[0])
        for chunk in rest:
            if n >= max_bytes:
                break
            out.append(chunk)
            n += len(chunk)
        return b"".join(out)


@dataclass
class ReplStats:
    """Counters shown in INFO stats and /metrics."""

    sync_full: int = 0  # full resyncs this relay did with its upstream
    sync_partial_ok: int = 0  # partial resyncs accepted (upstream +CONTINUE)
    sync_partial_err: int = 0
    net_repl_input_bytes: int = 0
    commands_applied: int = 0
    # The stream's commands as a replica's `call()` counts them (INFO commandstats,
    # total_commands_processed): count key (as sent: `SET`, `set`, `XGROUP|create`; a
    # merged run of SETs under `set`) -> [calls, nanoseconds]; the time is each batch's,
    # shared among its commands. MULTI, EXEC, SELECT and the master's PINGs count too.
    calls: dict[bytes, list[int]] = field(default_factory=dict)
    transactions_applied: int = 0
    # The master's keepalive PINGs applied: the lag estimate without the probe (probe.py).
    pings_applied: int = 0
    unsupported_commands: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Position:
    """A position in the master's history, as a snapshot holds it (with its keyspace image)."""

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


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """What processing a batch of stream commands asks of the caller."""

    # One entry per `REPLCONF GETACK` seen: the applied offset to ACK with (before the GETACK).
    acks: tuple[int, ...] = ()


class Replication:
    """Owner of replid/replid2/offsets/backlog and of the stream's current DB."""

    def __init__(
        self, dataset: Dataset, backlog_size: int = 64 * 1024 * 1024, backlog: Backlog | None = None
    ) -> None:
        self.dataset = dataset
        self.replid = random_replid()
        self.replid2 = NULL_REPLID
        self.second_replid_offset = -1
        self.repl_offset = 0
        self.read_offset = 0
        # True when (replid, repl_offset) name a position in the master's history we hold,
        # so the link may PSYNC with it (Redis's "cached master").
        self.has_history = False
        self.stream_db = 0
        self.backlog = backlog if backlog is not None else Backlog(backlog_size)
        self.stats = ReplStats()
        self._multi: list[StreamCommand] | None = None
        # Called with no argument after bytes were appended to the backlog or the history
        # changed: the downstream server wakes its senders there. `history_epoch` moves
        # when positions served before mean nothing any more (a full resync, a restore, a
        # new replid): downstream replicas must reconnect.
        self.listeners: list[Callable[[], None]] = []
        self.history_epoch = 0
        # Called with no argument after a snapshot replaced the dataset (a full sync, or the
        # start-up load): its AUX fields named the master's dialect, which may have changed.
        self.snapshot_listeners: list[Callable[[], None]] = []
        # MONITOR: called with each batch before it is applied, the stream's DB and whether
        # a transaction is open; None (the stream's cost) while nobody monitors.
        self.monitor: Callable[[Sequence[StreamCommand], int, bool], None] | None = None

    def _notify(self) -> None:
        for listener in self.listeners:
            listener()

    def _new_history(self) -> None:
        self.history_epoch += 1
        self._notify()

    # ---- snapshots: the dataset and the position change together ----

    def load_full_sync(self, loader: KeyspaceLoader, replid: str | None, offset: int) -> None:
        """The master's snapshot at `offset` is whole in `loader`: swap it in and restart our
        history there (`full_resync`), as one step."""
        loader.commit()
        self.full_resync(replid, offset, loader.stream_db)
        self._snapshot_loaded()

    def load_restart(
        self,
        loader: KeyspaceLoader,
        position: Position | None,
        unsupported_keys: frozenset[tuple[int, bytes]] = frozenset(),
    ) -> None:
        """Our own snapshot, whole in `loader`, is the dataset at `position` (a restart):
        swap it in, keep the keys it marks unsupported, and resume that position (`restore`)
        when it has one."""
        loader.commit()
        if unsupported_keys:
            loader.target.unsupported_keys = set(unsupported_keys)
        if position is not None and position.replid is not None:
            self.restore(
                position.replid,
                position.repl_offset,
                position.stream_db,
                position.replid2,
                position.second_replid_offset,
            )
        self._snapshot_loaded()

    def _snapshot_loaded(self) -> None:
        for listener in self.snapshot_listeners:
            listener()

    # ---- identity changes driven by the upstream link ----

    def psync_args(self) -> tuple[str, int]:
        """The `PSYNC <replid> <offset>` arguments: `? -1` when we hold no usable history."""
        if not self.has_history:
            return "?", -1
        return self.replid, self.repl_offset + 1

    def full_resync(self, replid: str | None, offset: int, stream_db: int) -> None:
        """The upstream snapshot at `offset` was loaded: our history restarts there.

        A master that only speaks SYNC gives no replid/offset: we then count from 0 under a
        random id and never try a partial resync with it (Redis's CLIENT_PRE_PSYNC master).
        """
        self.stats.sync_full += 1
        self._multi = None
        if replid is None:
            self.replid = random_replid()
            self.repl_offset = self.read_offset = 0
            self.has_history = False
        else:
            self.replid = replid
            self.repl_offset = self.read_offset = offset
            self.has_history = True
        self.replid2 = NULL_REPLID
        self.second_replid_offset = -1
        self.stream_db = stream_db
        self.backlog.new_history(self.repl_offset + 1, replid)
        self._new_history()

    def restore(
        self,
        replid: str,
        offset: int,
        stream_db: int,
        replid2: str = NULL_REPLID,
        second_replid_offset: int = -1,
    ) -> None:
        """A persisted snapshot of history `replid` at `offset` was loaded (a restart).

        As a Redis replica restarting from an RDB with `repl-id`/`repl-offset` AUX fields
        (`replicationCacheMasterUsingMyself`): that position is our cached master, so the link
        asks `PSYNC <replid> <offset+1>`. The backlog restarts empty after `offset`. Not a
        sync: the counters do not move.
        """
        self._multi = None
        self.replid = replid
        self.repl_offset = self.read_offset = offset
        self.replid2 = replid2
        self.second_replid_offset = second_replid_offset
        self.stream_db = stream_db
        self.has_history = True
        self.backlog.resume(offset + 1, [replid, replid2])
        self._new_history()

    def partial_resync(self, new_replid: str | None) -> bool:
        """The upstream answered `+CONTINUE [replid]`. Returns True when the replid changed.

        A changed id means the master was promoted/failed over: shift our id to replid2 with
        `second_replid_offset = offset + 1`, exactly as `replicationResurrectProvisionalMaster`
        / `shiftReplicationId` do, so our own replicas can still continue through replid2.
        """
        self.stats.sync_partial_ok += 1
        # Bytes read but not applied (a transaction cut by the disconnect) are re-sent by the
        # master from repl_offset + 1.
        self._multi = None
        self.read_offset = self.repl_offset
        if new_replid is None or new_replid == self.replid:
            return False
        self.replid2 = self.replid
        self.second_replid_offset = self.repl_offset + 1
        self.replid = new_replid
        self.backlog.renamed(new_replid)
        self._new_history()
        return True

    def link_lost(self) -> None:
        """A broken link discards a half-received transaction (the master re-sends it)."""
        self._multi = None
        self.read_offset = self.repl_offset

    # ---- the stream ----

    def process(self, commands: Sequence[StreamCommand]) -> ProcessResult:
        """Apply commands in order; append applied bytes to the backlog; advance offsets.

        This is the stream's hot path: state lives in locals for the batch and is written
        back once at the end (nothing else runs in between: it is synchronous).
        """
        started = time.perf_counter_ns()
        if self.monitor is not None:
            self.monitor(commands, self.stream_db, self._multi is not None)
        # This batch's commands by count key (`ReplStats.calls`).
        calls: dict[bytes, int] = {}
        count = calls.get
        acks: list[int] = []
        applied_raw: list[bytes] = []
        keep = applied_raw.append
        apply = self.dataset.apply
        db = self.stream_db
        multi = self._multi
        applied_offset = self.repl_offset
        applied = 0
        pings = 0
        # The dataset's lane for runs of plain hot writes (`Keyspace.apply_run`), if any: it
        # applies as many commands as it can in one call and stops before any other one,
        # which the loop below takes (MULTI, SELECT... and every less common write).
        run = getattr(self.dataset, "apply_run", None)
        i = 0
        n = len(commands)
        while i < n:
            if run is not None and multi is None:
                j, ran = run(db, commands, i, applied_raw, calls)  # counts in `calls` too
                if j > i:
                    applied += ran
                    applied_offset = commands[j - 1][2]
                    i = j
                    if i >= n:
                        break
            cmd = commands[i]
            i += 1
            argv, raw, end, ncommands = cmd
            if multi is not None:
                multi.append(cmd)
                if argv and argv[0].lower() == b"exec":
                    body = [c[0] for c in multi[1:-1]]
                    db = self.dataset.apply_transaction(db, body)
                    applied_raw.extend([c[1] for c in multi])
                    applied_offset = end
                    self.stats.transactions_applied += 1
                    applied += sum([c[3] for c in multi[1:-1]])
                    for c in multi:
                        key = _count_key(c[0], c[3])
                        if key:
                            calls[key] = count(key, 0) + c[3]
                    multi = None
                continue
            if argv:
                name = _SPECIAL_SPELLINGS.get(argv[0])
                if name is None:
                    name = _special_name(argv[0])
                if not name:
                    apply(db, argv)
                    applied += ncommands
                    key = argv[0] if ncommands == 1 else count_key(argv[0], ncommands)
                    calls[key] = count(key, 0) + ncommands
                elif name == _CONTAINER:
                    apply(db, argv)
                    applied += 1
                    key = _count_key(argv, 1)
                    calls[key] = count(key, 0) + 1
                elif name == b"multi":
                    multi = [cmd]
                    continue
                else:
                    calls[name] = count(name, 0) + 1
                    if name == b"select" and len(argv) == 2:
                        db = selected_db(argv[1], db, self.dataset.databases)
                    elif name == b"ping":
                        pings += 1
                    elif name == b"replconf" and len(argv) >= 2 and argv[1].lower() == b"getack":
                        acks.append(applied_offset)
            keep(raw)
            applied_offset = end
        if commands:
            self.read_offset = commands[-1][2]
        self.repl_offset = applied_offset
        self.stream_db = db
        self._multi = multi
        self.stats.commands_applied += applied
        if pings:
            self.stats.pings_applied += pings
        if applied_raw:
            self.backlog.append(b"".join(applied_raw))
            if self.listeners:
                self._notify()
        if calls:
            self._count_calls(calls, time.perf_counter_ns() - started)
        return ProcessResult(tuple(acks))

    def _count_calls(self, calls: dict[bytes, int], ns: int) -> None:
        """Add a batch's counts to `stats.calls`, its time shared among its commands."""
        total = sum(calls.values())
        into = self.stats.calls
        for key, n in calls.items():
            entry = into.get(key)
            if entry is None:
                entry = into[key] = [0, 0]
            entry[0] += n
            entry[1] += ns * n // total
