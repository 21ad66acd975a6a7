"""One client connection's state and its request loop, sans I/O (`ClientSession`).

A session is fed the bytes its socket received (`feed`) and returns the replies to send, in
order; pushes that arrive on their own (Pub/Sub messages, tracking invalidations, MONITOR
lines) go to its `outbox`, and the shell is told through `on_output`. It never touches a
socket, trio or the clock: the shell passes the time of each read in, and reads `closing`,
`wait` and `takeover` after each call to learn what the connection must do next:

- `closing`: send what was returned, then close (QUIT, CLIENT KILL, a protocol error, an
  output limit);
- `wait`: a request must wait for the event loop before its reply (`BlockedWait`: XREAD
  BLOCK until a key is written or the timeout; `ShutdownWait`: SHUTDOWN runs the relay's
  shutdown); the shell resolves it (`finish_wait`) and feeds nothing until then; requests
  pipelined behind it stay queued and run at the next `feed(b"")`;
- `takeover`: SYNC/PSYNC made the connection a replica's; the shell hands the socket and
  the parser (which may hold the replica's next bytes) to the downstream server;
- `more`: `feed` built FEED_CHUNK of replies and stopped; the shell sends them, then calls
  `feed(b"")` for the rest of the pipeline (a client that does not read holds little).

What `feed` returns counts as the client's output (`out_bytes`) until the shell reports it
sent (`sent`): the output limits and maxmemory-clients are checked against it.

This module owns the per-connection state Redis keeps in `client` (name, db, protocol, auth,
MULTI queue, WATCHed keys, subscriptions, CLIENT TRACKING state, MONITOR mode, CLIENT REPLY
mode, output buffer) and the order in
which a connection's requests run. The checks made before a command runs, and everything
shared between connections, are the hub's (`replproxy.session.hub`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from replproxy.errors import ReplyError
from replproxy.keyspace.reads import BlockingRead, ReadContext
from replproxy.resp import reply
from replproxy.resp.request import ProtocolError, QueryBufferLimitError

if TYPE_CHECKING:
    from collections.abc import Callable

    from replproxy.config import OutputLimit
    from replproxy.downstream.psync import ReplicaHandshake, SyncRequest
    from replproxy.session.hub import Entry, SessionHub
    from replproxy.session.tracking import TrackingState

log = logging.getLogger("replproxy.session")

# Replies one `feed` builds before it hands them to the shell: the rest of a pipeline waits
# (parsed, or still in the parser) until they are sent, so a client that does not read holds
# at most this plus one reply, however much it pipelined (see `ClientSession.more`).
FEED_CHUNK = 256 * 1024
# The read lane's last command (`RequestParser.string_reads`'s kind) as CLIENT LIST names it.
_LANE_NAMES = (b"", b"get", b"mget", b"lrange", b"hgetall")


@dataclass(eq=False)
class BlockedWait:
    """XREAD BLOCK with nothing to return yet: wait for a write to `keys` (in the client's
    DB) or until `deadline` (monotonic seconds; None waits forever)."""

    entry: Entry
    retry: list[bytes]  # the command to run again (no BLOCK, `$` made concrete)
    keys: list[tuple[int, bytes]]
    deadline: float | None


@dataclass(eq=False)
class ShutdownWait:
    """SHUTDOWN: the relay's shutdown runs; success closes the connection without a reply."""

    save: bool | None
    force: bool
    now: bool


Wait = BlockedWait | ShutdownWait


class ClientSession(ReadContext):
    """One connection's state (Redis's `client`): what CLIENT LIST shows and MULTI, WATCH,
    Pub/Sub and blocking reads need."""

    def __init__(self, hub: SessionHub, cid: int, addr: str, laddr: str, now: float) -> None:
        super().__init__(hub.keyspace)
        self.hub = hub
        self.id = cid
        self.addr = addr
        self.laddr = laddr
        self.ctime = now
        self.last_active = now
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self.user = b"default"
        self.authed = hub.acl.default_authenticated()
        self.last_cmd = b"NULL"
        self.commands = 0
        self.net_in = 0
        self.net_out = 0
        self.no_evict = False
        self.no_touch = False
        # Cluster mode: READONLY/READWRITE (None: the relay's default) and ASKING.
        self.readonly: bool | None = None
        self.asking = False
        # CLIENT REPLY OFF, and SKIP (counts down over its own and the next command).
        self.reply_off = False
        self.skip = 0
        self.closing = False
        # MULTI: the queue (None outside MULTI), and whether an error dooms the EXEC.
        self.multi: list[tuple[Entry, list[bytes]]] | None = None
        self.multi_dirty = False
        self.used_multi = False
        # WATCH: (db, key) -> the key was live at WATCH time; dirty once one is touched.
        self.watched: dict[tuple[int, bytes], bool] = {}
        self.watch_dirty = False
        self.watch_epoch = 0
        # CLIENT TRACKING (None: off; `replproxy.session.tracking`) and MONITOR mode.
        self.tracking: TrackingState | None = None
        self.monitor = False
        # Pub/Sub (dicts as ordered sets).
        self.channels: dict[bytes, None] = {}
        self.patterns: dict[bytes, None] = {}
        self.shard_channels: dict[bytes, None] = {}
        # What the connection waits for before the next reply, and the blocked read's state:
        # `woken` once a watched key was written, `unblock` the reply CLIENT UNBLOCK left.
        self.wait: Wait | None = None
        self.woken = False
        self.unblock: bytes | None = None
        # REPLCONF state, then (SYNC/PSYNC) the request that makes it a replica's connection.
        self.replica: ReplicaHandshake | None = None
        self.takeover: tuple[ReplicaHandshake, SyncRequest] | None = None
        # Output queued for the shell's writer (pushes; then every reply, to keep order).
        self.outbox: list[bytes] = []
        # Output built and not yet sent: the outbox, and what `feed` / `finish_wait`
        # returned until the shell reports it sent (`sent`). What the limits are checked
        # against (client-output-buffer-limit, maxmemory-clients).
        self.out_bytes = 0
        # `feed` stopped with requests left (FEED_CHUNK of replies built): the shell calls
        # `feed(b"")` again once what it returned is sent.
        self.more = False
        # Replies built by the `feed` running now, not yet returned (`output_budget`).
        self.batch = 0
        # Closed by an output limit or client eviction: what was built is dropped.
        self.cut = False
        self.soft_since: float | None = None
        # The shell's hooks: output was queued; the connection must close now; a blocked
        # read was woken. None in a session driven without a shell (tests).
        self.on_output: Callable[[], None] | None = None
        self.on_kill: Callable[[], None] | None = None
        self.on_wake: Callable[[], None] | None = None
        # Input: the parser, and parsed requests not run yet.
        self.parser = hub.new_parser(self)
        self.todo: list[list[bytes]] = []
        self.todo_i = 0

    @property
    def subscribed(self) -> bool:
        return bool(self.channels or self.patterns or self.shard_channels)

    @property
    def blocked(self) -> bool:
        return type(self.wait) is BlockedWait

    # ---- what the shell calls ----

    def feed(self, data: bytes, now_ms: int, now: float) -> bytes:
        """Feed `data` (b"" to resume) and run every request that can complete now, in order;
        returns their replies (none when over the normal clients' hard output limit: the
        client is then closed). Stops early, leaving the rest queued, when a request must
        wait (`wait`) or hands the connection over (`takeover`)."""
        parser = self.parser
        hub = self.hub
        out: list[bytes] = []
        batch = self.batch = 0
        self.more = False
        try:
            if data:
                # `now` is the time of the whole read: expiry is judged at millisecond
                # precision, and a clock read per command costs as much as a GET.
                self.last_active = now
                self.now = now_ms
                self.net_in += len(data)
                parser.feed(data)
            # The GET/MGET lane can only take whole commands at the head of the input: after
            # next_requests() has parsed everything complete it has nothing left to take,
            # unless the parser went one command at a time (an unauthenticated client).
            try_fast = True
            while not self.closing:
                todo = self.todo
                if self.todo_i >= len(todo):
                    if try_fast and hub.plain(self):
                        ks = hub.keyspace
                        cluster = hub.cluster
                        t0 = hub.perf()
                        replies, n, last = parser.string_reads(
                            ks.dbs[self.db],
                            ks.expires[self.db],
                            self.now,
                            reply.null(self.proto),
                            FEED_CHUNK - batch,
                            cluster.lane_slots(self) if cluster is not None else None,
                            self.proto,
                        )
                        if n:
                            hub.fast_lane_ran(self, parser, n, hub.perf() - t0)
                            out.append(replies)
                            batch += len(replies)
                            self.batch = batch
                            self.commands += n
                            hub.stats.total_commands += n
                            self.last_cmd = _LANE_NAMES[last]
                            if batch >= FEED_CHUNK:
                                self.more = True
                                break
                    # Re-evaluated after every batch: AUTH may have succeeded (Redis parses
                    # unauthenticated clients one command at a time with tighter limits).
                    parser.auth_required = try_fast = not self.authed
                    todo = self.todo = parser.next_requests()
                    self.todo_i = 0
                    if not todo:
                        break
                argv = todo[self.todo_i]
                self.todo_i += 1
                answer = hub.dispatch(self, argv)
                if self.wait is not None:
                    break
                if (self.reply_off or self.skip) and self.reply_dropped():
                    answer = b""  # the test spares a call
                if answer:
                    out.append(answer)
                    batch += len(answer)
                    self.batch = batch
                    if batch >= FEED_CHUNK:
                        self.more = True
                        break
                if self.takeover is not None:
                    break
        except QueryBufferLimitError:
            log.warning("closing client %s: query buffer limit reached", self.addr)
            self.closing = True
        except ProtocolError as e:
            out.append(e.reply)
            self.closing = True
        self.batch = 0
        payload = b"".join(out)
        if self.cut:
            return b""
        if payload and not self.output_allowed(payload, now):
            return b""
        return payload

    def finish_wait(self, answer: bytes) -> bytes:
        """The waiting request's reply is `answer` (from `BlockedWait` / `ShutdownWait`
        handling): returns what to send for it, after CLIENT REPLY and the output limit."""
        self.wait = None
        if self.reply_dropped():
            answer = b""
        if answer and not self.output_allowed(answer, self.hub.clock()):
            return b""
        return answer

    def reply_dropped(self) -> bool:
        """CLIENT REPLY OFF / SKIP: whether the reply of the command that just ran is dropped
        (SKIP counts down over its own command and the next one)."""
        if self.skip:
            self.skip -= 1
            return True
        return self.reply_off

    # ---- blocked reads ----

    def block(self, entry: Entry, br: BlockingRead, now: float) -> None:
        """Park this client on `br` (`BlockingRead` from a handler): see `BlockedWait`."""
        deadline = None if br.timeout_ms == 0 else now + br.timeout_ms / 1000
        keys = [(self.db, k) for k in br.keys]
        self.woken = False
        self.unblock = None
        self.wait = BlockedWait(entry, br.retry, keys, deadline)
        self.hub.watches.block(self, keys)

    def wakeup(self) -> None:
        """A key this client waits on was written (or CLIENT UNBLOCK): retry soon."""
        self.woken = True
        if self.on_wake is not None:
            self.on_wake()

    def retry_blocked(self, now_ms: int, timed_out: bool) -> bytes | None:
        """Called by the shell when a blocked client was woken or its deadline passed: the
        reply to send, or None to keep waiting."""
        w = self.wait
        assert type(w) is BlockedWait
        nothing = reply.null_array(self.proto)
        answer: bytes | None = None
        if self.unblock is not None:
            answer = self.unblock
        elif self.woken:
            self.woken = False
            self.now = now_ms
            try:
                out = w.entry.handler(self, w.retry)
            except BlockingRead:
                out = nothing
            except ReplyError as err:
                # The key came back as another type: Redis wakes blocked stream readers for
                # stream keys only, so the client keeps waiting.
                out = nothing if err.msg.startswith(b"WRONGTYPE") else reply.error(err.msg)
            st = self.tracking
            if st is not None and not st.bcast and self.ks.dialect.blocked_commands_rerun:
                # Redis 7.2+ runs the woken command again through `call()`, which tracks
                # its keys again (the write that woke it invalidated them).
                self.hub.tracking.remember(self, w.entry.spec, w.retry)
            if out != nothing:
                answer = out
        if answer is None and timed_out:
            answer = nothing
        if answer is None:
            return None
        self.hub.watches.unblock(self, w.keys)
        return self.finish_wait(answer)

    # ---- output ----

    def push(self, data: bytes, now: float | None = None) -> None:
        """Queue bytes for the shell's writer (Pub/Sub messages; then every reply)."""
        self.outbox.append(data)
        self.grow(len(data))
        self.check_output_limit(self.hub.clock() if now is None else now)
        self.hub.memory.check(self)
        if self.on_output is not None:
            self.on_output()

    def requeue(self, data: bytes) -> None:
        """Queue for the writer bytes `feed`/`finish_wait` returned (counted already)."""
        self.outbox.append(data)
        if self.on_output is not None:
            self.on_output()

    def grow(self, n: int) -> None:
        self.out_bytes += n
        self.hub.memory.total += n

    def sent(self, n: int) -> None:
        """The shell sent `n` bytes of what was returned or queued."""
        self.net_out += n
        n = min(n, self.out_bytes)
        self.out_bytes -= n
        self.hub.memory.total -= n
        if self.out_bytes <= 0:
            self.soft_since = None

    def output_budget(self) -> int | None:
        """The bytes the next reply may take before it passes this client's hard limit or
        maxmemory-clients (None: no limit applies)."""
        hard = self.output_limit().hard
        mem = self.hub.memory
        if not hard and not mem.limit:
            return None
        used = self.out_bytes + self.batch
        room = hard - used if hard else 1 << 62
        if mem.limit:
            room = min(room, mem.limit - mem.total - self.batch)
        return max(room, 0)

    def output_limit(self) -> OutputLimit:
        cfg = self.hub.config
        return (
            cfg.client_output_buffer_limit_pubsub
            if self.subscribed
            else cfg.client_output_buffer_limit_normal
        )

    def check_output_limit(self, now: float) -> None:
        """`checkClientOutputBuffer`: over the hard limit, or over the soft one for its
        seconds, the client is closed."""
        limit = self.output_limit()
        used = self.out_bytes
        if self.closing:
            return
        if limit.hard and used > limit.hard:
            self.hub.stats.output_limit_disconnections += 1
            kind = "pubsub" if self.subscribed else "normal"
            self.kill(
                f"output buffer of {used} bytes over the {kind} clients' hard limit {limit.hard}",
                cut=True,
            )
        elif limit.soft and used > limit.soft:
            if self.soft_since is None:
                self.soft_since = now
            elif now - self.soft_since > limit.soft_seconds:
                self.hub.stats.output_limit_disconnections += 1
                self.kill(
                    f"output buffer over the soft limit {limit.soft} for {limit.soft_seconds} s",
                    cut=True,
                )
        else:
            self.soft_since = None

    def output_allowed(self, payload: bytes, now: float) -> bool:
        """Count `payload` as this client's output until sent, and check the limits with it
        (the client's own, and maxmemory-clients): a client over them is closed and gets
        nothing more."""
        self.grow(len(payload))
        if self.closing:  # QUIT, a protocol error: the reply goes out, then the close
            return True
        self.check_output_limit(now)
        if not self.closing:
            self.hub.memory.check(self)
        if self.cut:
            n = len(payload)
            self.out_bytes -= n
            self.hub.memory.total -= n
            return False
        return True

    def kill(self, why: str = "", *, cut: bool = False) -> None:
        """Close this connection (CLIENT KILL, output limits, idle timeout); `cut`: by an
        output limit or client eviction, so nothing more is sent to it."""
        if why:
            log.info("closing client id=%d addr=%s: %s", self.id, self.addr, why)
        self.cut = self.cut or cut
        self.closing = True
        if self.on_kill is not None:
            self.on_kill()
