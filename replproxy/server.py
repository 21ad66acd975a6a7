"""The client RESP endpoint on `--port`: connections, per-client state and command dispatch.

Every request goes through `RespServer.dispatch`, which applies Redis's `processCommand`
checks in Redis's order, driven by the upstream's command table (`replproxy.commandtable`,
captured from the real server, so arity, flags and error texts are the master's):

1. unknown command / subcommand, wrong arity (inside MULTI these also doom the EXEC);
2. `NOAUTH` unless the command may run unauthenticated;
3. `no-multi` commands inside MULTI;
4. `-READONLY` for every write-flagged command: the relay is a read-only replica;
5. RESP2 subscribers may only (un)subscribe, PING, QUIT and RESET;
6. `-MASTERDOWN` when the link is down and `--replica-serve-stale-data no`, for commands
   without the `stale` flag; `-LOADING` until the first snapshot is loaded, for commands
   without the `loading` flag;
7. inside MULTI the command is queued (`+QUEUED`), else it runs.

Handlers are the per-type read commands (`READ_COMMANDS`, in the keyspace modules) and the
connection/server commands (`SERVER_COMMANDS`, in `replproxy.server_commands`); both take
`(client, argv)` and return the encoded reply. A handler runs synchronously between two trio
checkpoints, and EXEC runs its whole queue in one go, so a reader never sees half of a
replicated transaction, and MULTI/EXEC on the relay is atomic too. Writes from the stream
touch keys (`Keyspace.on_key_modified`): that invalidates WATCH and wakes blocked XREADs.

Each connection is one task that reads, dispatches and writes its replies in order
(pipelining: a chunk's replies go out in one send). Pushes that arrive on their own (Pub/Sub
messages) go through a per-client queue and a writer task, started at the first push; from
then on replies use the same queue, so order is kept. A malformed request gets `-ERR Protocol
error: ...` and closes that client only; an exception in one connection never reaches others.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

import trio

from replproxy.commandtable import CommandSpec, CommandTable, ResolveError, table_for
from replproxy.downstream.psync import ReplicaHandshake
from replproxy.keyspace.reads import (
    READ_COMMANDS,
    BlockingRead,
    ReadContext,
    ReplyError,
    upstream_identity,
)
from replproxy.keyspace.util import now_ms
from replproxy.link.protocol import LinkState
from replproxy.pubsub import PubSub, unregister
from replproxy.resp import reply
from replproxy.resp.request import ProtocolError, QueryBufferLimitError, RequestParser
from replproxy.scripting.commands import SCRIPT_COMMANDS, RelayScripting

if TYPE_CHECKING:
    from replproxy.app import Relay

log = logging.getLogger("replproxy.server")

RECV_SIZE = 64 * 1024

Handler = Callable[["Client", list[bytes]], bytes]

LOADING = reply.error(b"LOADING Redis is loading the dataset in memory")
MASTERDOWN = reply.error(
    b"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
)
READONLY = reply.error(b"READONLY You can't write against a read only replica.")
NOAUTH = reply.error(b"NOAUTH Authentication required.")
NO_MULTI = reply.error(b"ERR Command not allowed inside a transaction")
QUEUED = b"+QUEUED\r\n"

# What RESP2 subscribers may still run (`processCommand`).
_PUBSUB_OK = frozenset(
    [b"ping", b"subscribe", b"ssubscribe", b"unsubscribe", b"sunsubscribe", b"psubscribe",
     b"punsubscribe", b"quit", b"reset"]
)
# Run at once even inside MULTI.
_MULTI_CONTROL = frozenset([b"exec", b"discard", b"multi", b"watch", b"quit", b"reset"])


class Client(ReadContext):
    """One connection's state (Redis's `client`): what CLIENT LIST shows and MULTI, WATCH,
    Pub/Sub and blocking reads need."""

    def __init__(self, srv: RespServer, cid: int, addr: str, laddr: str) -> None:
        super().__init__(srv.relay.keyspace, dstyle=srv.dstyle, now=now_ms())
        self.srv = srv
        self.id = cid
        self.addr = addr
        self.laddr = laddr
        self.ctime = time.monotonic()
        self.last_active = self.ctime
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self.user = b"default"
        self.authed = not srv.users.default_needs_auth
        self.last_cmd = b"NULL"
        self.commands = 0
        self.net_in = 0
        self.net_out = 0
        self.no_evict = False
        self.no_touch = False
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
        # Pub/Sub (dicts as ordered sets).
        self.channels: dict[bytes, None] = {}
        self.patterns: dict[bytes, None] = {}
        self.shard_channels: dict[bytes, None] = {}
        # A blocked XREAD: set to wake it; CLIENT UNBLOCK leaves its reply in `unblock`.
        self.blocked = False
        self.wake: trio.Event | None = None
        self.unblock: bytes | None = None
        # Set by a command that must wait (SHUTDOWN, XREAD BLOCK): awaited for the reply.
        self.pending: Callable[[], Awaitable[bytes]] | None = None
        # REPLCONF state, then (SYNC/PSYNC) who owns the connection from now on.
        self.replica: ReplicaHandshake | None = None
        self.takeover: Callable[[trio.SocketStream, RequestParser], Awaitable[None]] | None = None
        # Output: direct sends until the first push, then a queue drained by a writer task.
        self.out: list[bytes] = []
        self.out_bytes = 0
        self.soft_since: float | None = None
        self.writer_active = False
        self.writer_wake: trio.Event | None = None
        self.sending = False
        self.send_done: trio.Event | None = None
        self.scope: trio.CancelScope | None = None
        self.nursery: trio.Nursery | None = None
        self.stream: trio.SocketStream | None = None
        # Input: the socket, its parser, and parsed requests not run yet (`RespServer._run`).
        self.fd = -1
        self.parser: RequestParser | None = None
        self.todo: list[list[bytes]] = []
        self.todo_i = 0
        # Left by the reactor for the client's task: output the socket did not take, and
        # whether the peer closed.
        self.unsent = b""
        self.eof = False

    @property
    def subscribed(self) -> bool:
        return bool(self.channels or self.patterns or self.shard_channels)

    def kill(self, why: str = "") -> None:
        """Close this connection (CLIENT KILL, output limits, idle timeout)."""
        if why:
            log.info("closing client id=%d addr=%s: %s", self.id, self.addr, why)
        self.closing = True
        if self.scope is not None:
            self.scope.cancel()

    def push(self, data: bytes) -> None:
        """Queue bytes for the writer task (Pub/Sub messages; then every reply)."""
        self.out.append(data)
        self.out_bytes += len(data)
        self._check_output_limit()
        if not self.writer_active and self.nursery is not None and self.stream is not None:
            self.writer_active = True
            self.nursery.start_soon(self.srv._writer, self)
        wake = self.writer_wake
        if wake is not None:
            self.writer_wake = None
            wake.set()

    def _check_output_limit(self) -> None:
        cfg = self.srv.relay.config
        limit = (cfg.client_output_buffer_limit_pubsub if self.subscribed
                 else cfg.client_output_buffer_limit_normal)
        used = self.out_bytes
        if limit.hard and used > limit.hard:
            self.kill(f"output buffer of {used} bytes over the hard limit {limit.hard}")
        elif limit.soft and used > limit.soft:
            now = time.monotonic()
            if self.soft_since is None:
                self.soft_since = now
            elif now - self.soft_since > limit.soft_seconds:
                self.kill(f"output buffer over the soft limit {limit.soft} for "
                          f"{limit.soft_seconds} s")
        else:
            self.soft_since = None


class Entry:
    """A command as dispatch needs it: the table's spec (arity, flags) and our handler."""

    __slots__ = ("arity", "handler", "loading", "name", "noauth", "nomulti", "script", "spec",
                 "stale", "write")

    def __init__(self, spec: CommandSpec, handler: Handler) -> None:
        self.spec = spec
        self.name = spec.name
        self.arity = spec.arity
        self.handler = handler
        flags = spec.flags
        self.write = "write" in flags
        self.stale = "stale" in flags
        self.loading = "loading" in flags
        self.noauth = "no_auth" in flags
        self.nomulti = "no_multi" in flags
        # EVAL / FCALL: the script's own flags replace write and stale (getCommandFlags).
        self.script = spec.name in SCRIPT_COMMANDS


def not_supported(c: Client, argv: list[bytes]) -> bytes:
    # `last_cmd` is the full name (`memory|stats`), set by `RespServer.call`.
    name = c.last_cmd.decode("utf-8", "replace")
    raise ReplyError(f"ERR replproxy does not support the '{name}' command".encode())


def _reply_dropped(c: Client) -> bool:
    """CLIENT REPLY OFF / SKIP: whether the reply of the command that just ran is dropped
    (SKIP counts down over its own command and the next one)."""
    if c.skip:
        c.skip -= 1
        return True
    return c.reply_off


def _help_handler(text: bytes) -> Handler:
    """`<container> HELP`: the upstream's own text, captured with the command table."""
    return lambda c, argv: text


def _build_entries(table: CommandTable) -> dict[bytes, Entry]:
    from replproxy.server_commands import SERVER_COMMANDS

    entries: dict[bytes, Entry] = {}

    def add(spec: CommandSpec) -> None:
        handler = SERVER_COMMANDS.get(spec.name) or READ_COMMANDS.get(spec.name)
        if handler is None and spec.container is not None and spec.name.endswith(b"|help"):
            text = table.subcommand_help(spec.container)
            if text is not None:
                handler = _help_handler(text)
        if handler is None:
            # A subcommand may be served by its container's handler (CLIENT, CONFIG...).
            if spec.container is not None:
                handler = SERVER_COMMANDS.get(spec.container) or READ_COMMANDS.get(
                    spec.container)
            if handler is None:
                handler = not_supported
        entries[spec.name] = Entry(spec, handler)
        for sub in spec.subcommands.values():
            add(sub)

    for spec in table:
        add(spec)
    return entries


class RespServer:
    def __init__(self, relay: Relay) -> None:
        from replproxy.auth import Users

        self.relay = relay
        cfg = relay.config
        self.users = Users(cfg.requirepass, cfg.aclfile)
        self._next_id = 1
        self._accepting = trio.CancelScope()
        self.clients: dict[int, Client] = {}
        self.pubsub = PubSub()
        relay.keyspace.on_publish = self.pubsub.publish
        relay.keyspace.on_spublish = self.pubsub.spublish
        self.watchers: dict[tuple[int, bytes], dict[int, Client]] = {}
        self.blocked: dict[tuple[int, bytes], dict[int, Client]] = {}
        self.blocked_clients = 0
        self.rejected_connections = 0
        # The upstream's dialect, set by `_refresh_identity`.
        self._aux: object
        self.server_name = ""
        self.server_version: str
        self.dstyle: reply.DoubleStyle
        self.table: CommandTable
        self.entries: dict[bytes, Entry] = {}
        self.fast: dict[bytes, Entry] = {}
        self.scripting = RelayScripting(self)
        self._refresh_identity()
        # Set while `serve` runs (Linux, unless REPLPROXY_NO_REACTOR is set); without it
        # every client task does its own I/O.
        self.reactor: Reactor | None = None

    # ---- the upstream decides the dialect ----

    def _refresh_identity(self) -> None:
        """Follow the master's kind and version (from its snapshot): command table, error
        texts, double formatting."""
        ks = self.relay.keyspace
        self._aux = ks.loaded_aux
        name, version = upstream_identity(ks)
        raw = ks.loaded_aux.get(b"valkey-ver" if name == "valkey" else b"redis-ver")
        self.server_version = raw.decode("ascii", "replace") if raw else "7.0.15"
        self.dstyle = reply.double_style(name, version)
        for c in self.clients.values():
            c.dstyle = self.dstyle
        table = table_for(name, version)
        if name != self.server_name or not self.entries or table is not self.table:
            self.server_name = name
            self.table = table
            self.entries = _build_entries(self.table)
            # Exact spellings clients send, so the hot path skips `.lower()`; containers
            # (CLIENT, OBJECT...) go through the table's resolution.
            self.fast = {}
            for key, e in self.entries.items():
                if b"|" in key or e.spec.subcommands:
                    continue
                self.fast[key] = self.fast[key.upper()] = e
        self.scripting.refresh()

    @property
    def valkey(self) -> bool:
        return self.server_name == "valkey"

    @property
    def pubsub_clients(self) -> int:
        """Clients subscribed to something (INFO pubsub_clients)."""
        return sum(1 for c in self.clients.values() if c.subscribed)

    @property
    def clients_out_bytes(self) -> int:
        """Output queued for clients (INFO mem_clients_normal, MEMORY STATS clients.normal)."""
        return sum(c.out_bytes for c in self.clients.values())

    # ---- dispatch ----

    def dispatch(self, c: Client, argv: list[bytes]) -> bytes:
        relay = self.relay
        if relay.keyspace.loaded_aux is not self._aux:
            self._refresh_identity()
        e = self.fast.get(argv[0])
        if e is None or not (len(argv) == e.arity if e.arity >= 0 else len(argv) >= -e.arity):
            resolved = self.table.resolve(argv)
            if isinstance(resolved, ResolveError):
                return self._resolve_error(c, argv, resolved)
            e = self.entries[resolved.name]
        if not c.authed and not e.noauth:
            return self._reject(c, NOAUTH)
        if c.multi is not None and e.nomulti:
            return self._reject(c, NO_MULTI)
        write, stale = e.write, e.stale
        if e.script:
            write, stale = self.scripting.flags(e, argv)
        if write:
            return self._reject(c, READONLY)
        if c.proto == 2 and (c.channels or c.patterns or c.shard_channels) \
                and e.name not in _PUBSUB_OK:
            name = e.name.decode("utf-8", "replace")
            return self._reject(c, reply.error(
                f"ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
                "QUIT / RESET are allowed in this context".encode()))
        if not stale and not relay.config.replica_serve_stale_data \
                and relay.link.status.state is not LinkState.CONNECTED:
            return self._reject(c, MASTERDOWN)
        if not e.loading and (relay.persistence.loading or not relay.replication.has_history):
            return self._reject(c, LOADING)
        busy = self.scripting.busy_reply(e)
        if busy is not None:
            return self._reject(c, busy)
        if c.multi is not None and e.name not in _MULTI_CONTROL:
            c.multi.append((e, argv))
            return QUEUED
        return self.call(c, e, argv)

    def _resolve_error(self, c: Client, argv: list[bytes], err: ResolveError) -> bytes:
        name = argv[0].lower()
        if name in (b"host:", b"post"):
            # An HTTP request sent to the RESP port (a cross-protocol attack): Redis closes
            # the connection without a reply (`securityWarningCommand`).
            log.warning("possible security attack: %r sent to the client port by %s; "
                        "connection closed", argv[0], c.addr)
            c.closing = True
            return b""
        if c.multi is not None:
            c.multi_dirty = True
            if name == b"exec":  # EXEC with arguments discards the transaction (EXECABORT)
                c.multi = None
                c.multi_dirty = False
                self.unwatch(c)
        return reply.error(err.msg)

    def _reject(self, c: Client, err: bytes) -> bytes:
        if c.multi is not None:
            c.multi_dirty = True  # `flagTransaction`
        return err

    def call(self, c: Client, e: Entry, argv: list[bytes]) -> bytes:
        # `c.now` was set once for the whole read (`_run`).
        c.last_cmd = e.name
        c.commands += 1
        self.relay.total_commands += 1
        try:
            return e.handler(c, argv)
        except ReplyError as err:
            return reply.error(err.msg)
        except BlockingRead as br:
            c.pending = partial(self._block, c, e, br)
            return b""

    # ---- keys touched by the stream: WATCH and blocked reads ----

    def _hook(self) -> None:
        """Keep `on_key_modified` installed only while someone needs it: the stream's hot
        path skips the call otherwise."""
        need = bool(self.watchers or self.blocked)
        self.relay.keyspace.on_key_modified = self._key_modified if need else None

    def _key_modified(self, db: int, key: bytes) -> None:
        k = (db, key)
        watching = self.watchers.get(k)
        if watching:
            for c in watching.values():
                c.watch_dirty = True
        waiting = self.blocked.get(k)
        if waiting:
            for c in waiting.values():
                if c.wake is not None:
                    c.wake.set()

    def watch(self, c: Client, keys: list[bytes]) -> None:
        if not c.watched:
            c.watch_epoch = self.relay.keyspace.epoch
        for key in keys:
            k = (c.db, key)
            if k in c.watched:
                continue
            value = self.relay.keyspace.dbs[c.db].get(key)
            expire = self.relay.keyspace.expires[c.db].get(key)
            c.watched[k] = value is not None and (expire is None or expire > now_ms())
            self.watchers.setdefault(k, {})[c.id] = c
        self._hook()

    def unwatch(self, c: Client) -> None:
        for k in c.watched:
            unregister(self.watchers, k, c.id)
        c.watched = {}
        c.watch_dirty = False
        self._hook()

    def watch_failed(self, c: Client) -> bool:
        """EXEC must abort: a watched key was written, the dataset was replaced, or a key
        live at WATCH time has expired since (`isWatchedKeyExpired`)."""
        if c.watch_dirty:
            return True
        if c.watched and c.watch_epoch != self.relay.keyspace.epoch:
            return True
        now = now_ms()
        ks = self.relay.keyspace
        for (db, key), was_live in c.watched.items():
            if was_live:
                expire = ks.expires[db].get(key)
                if expire is not None and expire <= now:
                    return True
        return False

    async def _block(self, c: Client, e: Entry, br: BlockingRead) -> bytes:
        keys = [(c.db, k) for k in br.keys]
        deadline = (float("inf") if br.timeout_ms == 0
                    else trio.current_time() + br.timeout_ms / 1000)
        nothing = reply.null_array(c.proto)
        c.blocked = True
        c.unblock = None
        self.blocked_clients += 1
        try:
            # Registered once for the whole wait: the retries below run between two
            # checkpoints, so no write can land while they run.
            for k in keys:
                self.blocked.setdefault(k, {})[c.id] = c
            self._hook()
            while True:
                wake = c.wake = trio.Event()
                with trio.move_on_at(deadline):
                    await wake.wait()
                if c.unblock is not None:
                    return c.unblock
                if not wake.is_set():
                    return nothing
                c.now = now_ms()
                try:
                    out = e.handler(c, br.retry)
                except ReplyError as err:
                    if err.msg.startswith(b"WRONGTYPE"):
                        # The key came back as another type: Redis wakes blocked stream
                        # readers for stream keys only, so the client keeps waiting.
                        continue
                    return reply.error(err.msg)
                except BlockingRead:
                    continue
                if out != nothing:
                    return out
        finally:
            for k in keys:
                unregister(self.blocked, k, c.id)
            self._hook()
            c.blocked = False
            c.wake = None
            self.blocked_clients -= 1

    # ---- connections ----

    def _new_parser(self, c: Client) -> RequestParser:
        cfg = self.relay.config
        return RequestParser(
            cfg.client_query_buffer_limit,
            cfg.proto_max_bulk_len,
            auth_required=not c.authed,
            strict_crlf=self.valkey,
            sticky_blank_inline=self.valkey,
        )

    async def handle(self, stream: trio.SocketStream) -> None:
        relay = self.relay
        if len(self.clients) >= relay.config.maxclients:
            self.rejected_connections += 1
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await stream.send_all(b"-ERR max number of clients reached\r\n")
            await stream.aclose()
            return
        c = Client(self, self._next_id, _peer(stream), _local(stream))
        self._next_id += 1
        self.clients[c.id] = c
        relay.total_connections += 1
        try:
            async with stream, trio.open_nursery() as nursery:
                c.scope = nursery.cancel_scope
                c.nursery = nursery
                c.stream = stream
                await self._serve_client(c, stream)
                nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        except Exception:  # one client's bug never takes the server down
            log.exception("error serving client %s", c.addr)
        finally:
            self.clients.pop(c.id, None)
            self.pubsub.drop_client(c)
            self.unwatch(c)

    async def _serve_client(self, c: Client, stream: trio.SocketStream) -> None:
        c.parser = self._new_parser(c)
        fd = c.fd = stream.socket.fileno()
        reactor = self.reactor
        while not c.closing:
            if c.unsent:
                data, c.unsent = c.unsent, b""
                await self._send(c, data)
                continue
            if c.pending is not None:
                pending, c.pending = c.pending, None
                answer = await pending()
                if _reply_dropped(c):
                    answer = b""
                if answer and self._output_allowed(c, answer):
                    await self._send(c, answer)
                data = b""  # then run the requests pipelined behind it
            elif c.takeover is not None:
                # SYNC/PSYNC: the connection is a replica's from here on (requests pipelined
                # after it are dropped: a replica sends none before the reply). Replicas are
                # not clients.
                self.clients.pop(c.id, None)
                await c.takeover(stream, c.parser)
                c.closing = True
                return
            elif reactor is not None:
                # Idle: the reactor reads and answers this client until a request needs the
                # event loop (or the socket's send buffer is full, or the peer closed).
                await reactor.park(c)
                if c.eof:
                    break
                continue
            else:
                data = await _receive(fd)
                if not data:
                    break
            payload = self._run(c, data)
            if payload:
                await self._send(c, payload)
        if c.writer_active:
            await self._drain(c)

    def _run(self, c: Client, data: bytes) -> bytes:
        """Feed `data` and run every request that can complete now, in order; returns their
        replies (none when over the normal clients' hard output limit: the client is then
        closed). Stops early, leaving the rest in `c.todo`, when a request must wait for the
        event loop (`c.pending`: XREAD BLOCK, SHUTDOWN) or hands the connection over
        (`c.takeover`)."""
        parser = c.parser
        assert parser is not None
        out: list[bytes] = []
        try:
            if data:
                # `c.now` is the time of the whole read: expiry is judged at millisecond
                # precision, and a clock read per command costs as much as a GET.
                c.last_active = time.monotonic()
                c.now = now_ms()
                c.net_in += len(data)
                parser.feed(data)
            # The GET/MGET lane can only take whole commands at the head of the input: after
            # next_requests() has parsed everything complete it has nothing left to take,
            # unless the parser went one command at a time (an unauthenticated client).
            try_fast = True
            while not c.closing:
                todo = c.todo
                if c.todo_i >= len(todo):
                    if try_fast and self._plain(c):
                        ks = self.relay.keyspace
                        replies, n, last = parser.string_reads(
                            ks.dbs[c.db], ks.expires[c.db], c.now, reply.null(c.proto))
                        if n:
                            out.append(replies)
                            c.commands += n
                            self.relay.total_commands += n
                            c.last_cmd = b"get" if last == 1 else b"mget"
                    # Re-evaluated after every batch: AUTH may have succeeded (Redis parses
                    # unauthenticated clients one command at a time with tighter limits).
                    parser.auth_required = try_fast = not c.authed
                    todo = c.todo = parser.next_requests()
                    c.todo_i = 0
                    if not todo:
                        break
                argv = todo[c.todo_i]
                c.todo_i += 1
                answer = self.dispatch(c, argv)
                if c.pending is not None:
                    break
                if (c.reply_off or c.skip) and _reply_dropped(c):  # the test spares a call
                    answer = b""
                if answer:
                    out.append(answer)
                if c.takeover is not None:
                    break
        except QueryBufferLimitError:
            log.warning("closing client %s: query buffer limit reached", c.addr)
            c.closing = True
        except ProtocolError as e:
            out.append(e.reply)
            c.closing = True
        payload = b"".join(out)
        if payload and not self._output_allowed(c, payload):
            return b""
        return payload

    def _plain(self, c: Client) -> bool:
        """Whether a GET/MGET from `c` would run now, answered by the command alone: every
        `dispatch` check passes and the reply is sent (the GET/MGET fast lane's condition)."""
        relay = self.relay
        ks = relay.keyspace
        return (
            c.authed
            and c.multi is None
            and not (c.reply_off or c.skip or c.channels or c.patterns or c.shard_channels)
            and not ks.unsupported_keys
            and not self.scripting.busy
            and ks.loaded_aux is self._aux
            and not relay.persistence.loading
            and relay.replication.has_history
            and (relay.config.replica_serve_stale_data
                 or relay.link.status.state is LinkState.CONNECTED)
        )

    def _output_allowed(self, c: Client, payload: bytes) -> bool:
        limit = self.relay.config.client_output_buffer_limit_normal.hard
        if limit and len(payload) > limit and not c.closing:
            c.kill(f"output of {len(payload)} bytes over the normal clients' hard limit {limit}")
            return False
        return True

    def serve_ready(self, c: Client) -> bool:
        """The reactor's turn for a parked client whose socket is readable: read, run and
        answer synchronously. Returns False to hand the client back to its task."""
        try:
            data = os.read(c.fd, RECV_SIZE)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            c.eof = True
            return False
        payload = self._run(c, data)
        if payload:
            if c.writer_active:
                c.push(payload)
            else:
                try:
                    n = os.write(c.fd, payload)
                except BlockingIOError:
                    n = 0
                except OSError:
                    c.eof = True
                    return False
                c.net_out += n
                if n < len(payload):
                    c.unsent = payload[n:]
        return not (c.closing or c.unsent or c.pending is not None or c.takeover is not None)

    async def _send(self, c: Client, data: bytes) -> None:
        if c.writer_active:
            c.push(data)
            return
        stream = c.stream
        assert stream is not None
        c.sending = True
        try:
            await _send_all(stream.socket.fileno(), data)
            c.net_out += len(data)
        finally:
            c.sending = False
            done = c.send_done
            if done is not None:
                c.send_done = None
                done.set()

    async def _writer(self, c: Client) -> None:
        stream = c.stream
        assert stream is not None
        while True:
            while not c.out:
                wake = c.writer_wake = trio.Event()
                await wake.wait()
            while c.sending:  # a direct send started before the first push
                done = c.send_done = trio.Event()
                await done.wait()
            data = b"".join(c.out)
            c.out.clear()
            await _send_all(stream.socket.fileno(), data)
            c.out_bytes -= len(data)
            c.net_out += len(data)
            if c.out_bytes <= 0:
                c.out_bytes = 0
                c.soft_since = None

    async def _drain(self, c: Client) -> None:
        """QUIT after pushes: let the writer send what is queued before the close."""
        with trio.move_on_after(5):
            while c.out:
                await trio.sleep(0.01)

    async def serve(
        self, port: int, host: str, *, task_status: trio.TaskStatus[list[trio.SocketListener]]
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        # Connections live in this nursery, the accept loop in its own scope: stopping
        # accepting (shutdown) closes the listeners and leaves connected clients alone.
        async with trio.open_nursery() as connections:
            if hasattr(select, "epoll") and os.environ.get("REPLPROXY_NO_REACTOR", "") in ("", "0"):
                self.reactor = Reactor(self)
                connections.start_soon(self.reactor.run)
            connections.start_soon(self._accept, listeners, connections)
            connections.start_soon(self._cron)
            task_status.started(listeners)

    async def _accept(self, listeners: list[trio.SocketListener], nursery: trio.Nursery) -> None:
        with self._accepting:
            await trio.serve_listeners(self.handle, listeners, handler_nursery=nursery)

    async def _cron(self) -> None:
        """Once a second: close idle clients (`timeout`) and enforce the soft output limits
        of subscribers that stopped reading (`clientsCron`)."""
        while True:
            await trio.sleep(1)
            idle = self.relay.config.timeout
            now = time.monotonic()
            for c in list(self.clients.values()):
                if c.out:
                    c._check_output_limit()
                if idle and not c.blocked and not c.subscribed and now - c.last_active > idle:
                    c.kill("idle timeout")

    def stop_accepting(self) -> None:
        """Close the listening sockets (new clients are refused); connected ones stay."""
        self._accepting.cancel()


class Reactor:
    """Serves every idle client from one task, as Redis's event loop does.

    A client task that waits for its own socket costs a trip through trio's scheduler per
    request (register the fd, sleep, wake, switch): at `-P 1` that was most of a GET. Idle
    clients are parked here instead: one epoll set, registered once per park, and one wait
    for all of them; each readable client is read, run and answered synchronously
    (`RespServer.serve_ready`), in the order epoll reports them, once per round. A client
    goes back to its own task when a request must wait (XREAD BLOCK, SHUTDOWN, a
    replica's PSYNC), its socket does not take the whole reply, or it closes; its task owns
    the connection all along, so cancelling it (CLIENT KILL, shutdown) unparks it."""

    def __init__(self, srv: RespServer) -> None:
        self.srv = srv
        self.epoll = select.epoll()
        self.parked: dict[int, tuple[Client, trio.Event]] = {}

    async def park(self, c: Client) -> None:
        """Until the reactor hands `c` back (or the task is cancelled)."""
        done = trio.Event()
        self.parked[c.fd] = (c, done)
        self.epoll.register(c.fd, select.EPOLLIN)
        try:
            await done.wait()
        finally:
            del self.parked[c.fd]
            with contextlib.suppress(OSError):
                self.epoll.unregister(c.fd)

    async def run(self) -> None:
        epoll = self.epoll
        serve_ready = self.srv.serve_ready
        parked = self.parked
        try:
            while True:
                await trio.lowlevel.wait_readable(epoll.fileno())
                for fd, _ in epoll.poll(0):
                    entry = parked.get(fd)
                    if entry is None:
                        continue
                    c, done = entry
                    if done.is_set() or c.closing:
                        continue
                    try:
                        keep = serve_ready(c)
                    except Exception:  # one client's bug never takes the server down
                        log.exception("error serving client %s", c.addr)
                        c.kill()
                        keep = False
                    if not keep:
                        done.set()
        finally:
            self.srv.reactor = None
            epoll.close()


# Client I/O goes straight to the socket's file descriptor (trio owns and closes it): a
# SocketStream's receive_some/send_all cost two scheduler round trips each even when the
# data is ready, which was a third of a pipelined GET. Fairness is kept by one checkpoint
# per batch: a client whose data is always ready still yields between batches.


async def _receive(fd: int) -> bytes:
    """Up to RECV_SIZE bytes (b"" at end of stream), waiting for them if needed."""
    try:
        data = os.read(fd, RECV_SIZE)
    except BlockingIOError:
        pass
    else:
        await trio.lowlevel.checkpoint()
        return data
    while True:
        await trio.lowlevel.wait_readable(fd)
        try:
            return os.read(fd, RECV_SIZE)
        except BlockingIOError:
            continue  # a spurious wakeup


async def _send_all(fd: int, data: bytes) -> None:
    """All of `data`, waiting for the socket to drain when its buffer is full."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(fd)
            continue
        view = view[n:]


def _peer(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"


def _local(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getsockname()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"
