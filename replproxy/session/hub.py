"""What the client sessions share, and the checks every command passes (`SessionHub`).

Every request goes through `SessionHub.dispatch`, which applies Redis's `processCommand`
checks in Redis's order, driven by the master's command table (`replproxy.commandtable`,
captured from the real server of the master's version, so arity, flags and error texts are
the master's):

1. unknown command / subcommand, wrong arity (inside MULTI these also doom the EXEC);
2. a protected command (DEBUG, REPLICAOF) its `enable-*-command` option refuses;
3. `NOAUTH` unless the command may run unauthenticated;
4. `no-multi` commands inside MULTI;
5. `NOPERM` when the user's ACL forbids the command, a key or a channel (`replproxy.acl`);
6. `-READONLY` for every write-flagged command: the relay is a read-only replica;
7. RESP2 subscribers may only (un)subscribe, PING, QUIT and RESET;
8. `-MASTERDOWN` / `-LOADING`, as the serving gate says (`replproxy.gate`);
9. inside MULTI the command is queued (`+QUEUED`), else it runs.

A refused EXEC discards its transaction and says why (`execCommandAbort`).

Handlers are the per-type read commands (`READ_COMMANDS`, in the keyspace modules) and the
connection/server commands (`SERVER_COMMANDS`, in `replproxy.session.commands`); both take
`(session, argv)` and return the encoded reply. A handler runs synchronously, and EXEC runs
its whole queue in one go, so a reader never sees half of a replicated transaction.

The hub owns the sessions' registry (CLIENT LIST/KILL), Pub/Sub, the keys clients WATCH or
block on (`KeyWatches`, told of the stream's writes through `Keyspace.on_key_modified`), the
command table of the master's dialect (refreshed when a snapshot loads), and the client
counters of INFO. It never touches a socket: the trio shell is `replproxy.server`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from replproxy.commandtable.spec import CommandSpec, ResolveError
from replproxy.commandtable.table import CommandTable
from replproxy.errors import ReplyError
from replproxy.keyspace.reads import READ_COMMANDS, BlockingRead
from replproxy.resp import reply
from replproxy.resp.request import RequestParser
from replproxy.session import acl_commands, commands  # noqa: F401 - register their handlers
from replproxy.session.client import ClientSession, ShutdownWait
from replproxy.session.pubsub import PubSub, unregister
from replproxy.session.registry import SERVER_COMMANDS
from replproxy.session.security import (
    PROTECTED,
    build_acl,
    command_denied,
    connection_denied,
    peer_host,
    protected_denied,
    set_acl_context,
)

if TYPE_CHECKING:
    from replproxy.config import Config
    from replproxy.gate import ServingGate
    from replproxy.interfaces import Control, Downstream, StatusView
    from replproxy.keyspace import Keyspace

log = logging.getLogger("replproxy.session")

Handler = Callable[[ClientSession, list[bytes]], bytes]

READONLY = reply.error(b"READONLY You can't write against a read only replica.")
NOAUTH = reply.error(b"NOAUTH Authentication required.")
NO_MULTI = reply.error(b"ERR Command not allowed inside a transaction")
QUEUED = b"+QUEUED\r\n"
MAX_CLIENTS = reply.error(b"ERR max number of clients reached")

# What RESP2 subscribers may still run (`processCommand`).
_PUBSUB_OK = frozenset(
    [b"ping", b"subscribe", b"ssubscribe", b"unsubscribe", b"sunsubscribe", b"psubscribe",
     b"punsubscribe", b"quit", b"reset"]
)
# Run at once even inside MULTI.
_MULTI_CONTROL = frozenset([b"exec", b"discard", b"multi", b"watch", b"quit", b"reset"])


class Entry:
    """A command as dispatch needs it: the table's spec (arity, flags) and our handler."""

    __slots__ = ("arity", "handler", "loading", "name", "noauth", "nomulti", "spec", "stale",
                 "write")

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


def not_supported(c: ClientSession, argv: list[bytes]) -> bytes:
    # `last_cmd` is the full name (`memory|stats`), set by `SessionHub.call`.
    name = c.last_cmd.decode("utf-8", "replace")
    raise ReplyError(f"ERR replproxy does not support the '{name}' command".encode())


def _help_handler(text: bytes) -> Handler:
    """`<container> HELP`: the master's own text, captured with the command table."""
    return lambda c, argv: text


def build_entries(table: CommandTable) -> dict[bytes, Entry]:
    """Every command and subcommand of `table`, with the handler that serves it."""
    entries: dict[bytes, Entry] = {}

    def add(spec: CommandSpec) -> None:
        # Module commands keep the case they were registered with (`VCARD`, Redis 8's
        # vector sets); read handlers are registered lowercase.
        handler: Handler | None = SERVER_COMMANDS.get(spec.name) or READ_COMMANDS.get(
            spec.name.lower())
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


@dataclass
class ClientStats:
    """The client counters of INFO stats and /metrics."""

    total_connections: int = 0
    total_commands: int = 0
    rejected_connections: int = 0


@dataclass(eq=False)
class KeyWatches:
    """The keys clients WATCH or block on, told of every write the stream makes to them."""

    keyspace: Keyspace
    watchers: dict[tuple[int, bytes], dict[int, ClientSession]] = field(default_factory=dict)
    blocked: dict[tuple[int, bytes], dict[int, ClientSession]] = field(default_factory=dict)
    blocked_clients: int = 0

    def _hook(self) -> None:
        """Keep `on_key_modified` installed only while someone needs it: the stream's hot
        path skips the call otherwise."""
        need = bool(self.watchers or self.blocked)
        self.keyspace.on_key_modified = self._key_modified if need else None

    def _key_modified(self, db: int, key: bytes) -> None:
        k = (db, key)
        watching = self.watchers.get(k)
        if watching:
            for c in watching.values():
                c.watch_dirty = True
        waiting = self.blocked.get(k)
        if waiting:
            for c in list(waiting.values()):
                c.wakeup()

    def watch(self, c: ClientSession, keys: list[bytes]) -> None:
        ks = self.keyspace
        if not c.watched:
            c.watch_epoch = ks.epoch
        for key in keys:
            k = (c.db, key)
            if k in c.watched:
                continue
            value = ks.dbs[c.db].get(key)
            expire = ks.expires[c.db].get(key)
            c.watched[k] = value is not None and (expire is None or expire > c.now)
            self.watchers.setdefault(k, {})[c.id] = c
        self._hook()

    def unwatch(self, c: ClientSession) -> None:
        for k in c.watched:
            unregister(self.watchers, k, c.id)
        c.watched = {}
        c.watch_dirty = False
        self._hook()

    def watch_failed(self, c: ClientSession) -> bool:
        """EXEC must abort: a watched key was written, the dataset was replaced, or a key
        live at WATCH time has expired since (`isWatchedKeyExpired`)."""
        if c.watch_dirty:
            return True
        ks = self.keyspace
        if c.watched and c.watch_epoch != ks.epoch:
            return True
        for (db, key), was_live in c.watched.items():
            if was_live:
                expire = ks.expires[db].get(key)
                if expire is not None and expire <= c.now:
                    return True
        return False

    def block(self, c: ClientSession, keys: list[tuple[int, bytes]]) -> None:
        # Registered once for the whole wait: the retries run between two checkpoints, so no
        # write can land while they run.
        for k in keys:
            self.blocked.setdefault(k, {})[c.id] = c
        self.blocked_clients += 1
        self._hook()

    def unblock(self, c: ClientSession, keys: list[tuple[int, bytes]]) -> None:
        for k in keys:
            unregister(self.blocked, k, c.id)
        self.blocked_clients -= 1
        self._hook()


class SessionHub:
    def __init__(
        self,
        config: Config,
        keyspace: Keyspace,
        gate: ServingGate,
        control: Control,
        view: StatusView,
        downstream: Downstream,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.keyspace = keyspace
        self.gate = gate
        self.control = control
        self.view = view
        self.downstream = downstream
        self.clock = clock
        self.acl = build_acl(config, keyspace)
        self.clients: dict[int, ClientSession] = {}
        self.pubsub = PubSub()
        keyspace.on_publish = self.pubsub.publish
        keyspace.on_spublish = self.pubsub.spublish
        self.watches = KeyWatches(keyspace)
        self.stats = ClientStats()
        self._next_id = 1
        # The master's dialect: its command table and our entries for it.
        self.table: CommandTable
        self.entries: dict[bytes, Entry] = {}
        self.fast: dict[bytes, Entry] = {}
        self.dialect_changed()

    # ---- the master's dialect ----

    def dialect_changed(self) -> None:
        """A snapshot loaded: follow the master's kind and version (its command table)."""
        dialect = self.keyspace.dialect
        table = dialect.command_table
        set_acl_context(self.acl, table, dialect)
        if self.entries and table is self.table:
            return
        self.table = table
        self.entries = build_entries(table)
        # Exact spellings clients send, so the hot path skips `.lower()`; containers
        # (CLIENT, OBJECT...) go through the table's resolution.
        self.fast = {}
        for key, e in self.entries.items():
            if table.needs_resolve(e.spec):
                continue
            self.fast[key] = self.fast[key.upper()] = e

    @property
    def valkey(self) -> bool:
        return self.keyspace.dialect.valkey

    # ---- sessions ----

    def open_session(self, addr: str, laddr: str) -> ClientSession | bytes:
        """A new connection's session, or the error line the shell sends before it closes
        the connection: `maxclients` are connected, or protected mode refuses the peer."""
        if len(self.clients) >= self.config.maxclients:
            self.stats.rejected_connections += 1
            return MAX_CLIENTS
        denied = connection_denied(self, peer_host(addr))
        if denied is not None:  # protected mode (`clientAcceptHandler`)
            self.stats.rejected_connections += 1
            return denied
        c = ClientSession(self, self._next_id, addr, laddr, self.clock())
        self._next_id += 1
        self.clients[c.id] = c
        self.stats.total_connections += 1
        return c

    def close_session(self, c: ClientSession) -> None:
        """The connection is gone (or became a replica's): forget everything of it."""
        self.clients.pop(c.id, None)
        self.pubsub.drop_client(c)
        self.watches.unwatch(c)
        w = c.wait
        if w is not None and not isinstance(w, ShutdownWait):
            self.watches.unblock(c, w.keys)
            c.wait = None

    def new_parser(self, c: ClientSession) -> RequestParser:
        cfg = self.config
        valkey = self.valkey
        return RequestParser(
            cfg.client_query_buffer_limit,
            cfg.proto_max_bulk_len,
            auth_required=not c.authed,
            strict_crlf=valkey,
            sticky_blank_inline=valkey,
        )

    @property
    def pubsub_clients(self) -> int:
        """Clients subscribed to something (INFO pubsub_clients)."""
        return sum(1 for c in self.clients.values() if c.subscribed)

    @property
    def clients_out_bytes(self) -> int:
        """Output queued for clients (INFO mem_clients_normal, MEMORY STATS clients.normal)."""
        return sum(c.out_bytes for c in self.clients.values())

    def cron(self, now: float) -> None:
        """Once a second (`clientsCron`): close idle clients (`timeout`) and enforce the soft
        output limits of subscribers that stopped reading."""
        idle = self.config.timeout
        for c in list(self.clients.values()):
            if c.outbox:
                c.check_output_limit(now)
            if idle and not c.blocked and not c.subscribed and now - c.last_active > idle:
                c.kill("idle timeout")

    # ---- dispatch ----

    def dispatch(self, c: ClientSession, argv: list[bytes]) -> bytes:
        e = self.fast.get(argv[0])
        if e is None or not (len(argv) == e.arity if e.arity >= 0 else len(argv) >= -e.arity):
            resolved = self.table.resolve(argv)
            if isinstance(resolved, ResolveError):
                return self._resolve_error(c, argv, resolved)
            e = self.entries[resolved.name]
        if e.name in PROTECTED and (err := protected_denied(c, e.name)) is not None:
            return self._reject(c, e, err)
        if not c.authed and not e.noauth and self.acl.auth_required(c.authed):
            return self._reject(c, e, NOAUTH)
        if c.multi is not None and e.nomulti:
            return self._reject(c, e, NO_MULTI)
        if (err := command_denied(c, e.spec, argv)) is not None:
            return self._reject(c, e, err)
        if e.write:
            # Before 6.0 a replica's READONLY refusal did not doom the transaction (no
            # `flagTransaction`): EXEC then runs what was queued.
            return self._reject(c, e, READONLY, self.keyspace.dialect.rejections_abort_exec)
        if c.proto == 2 and (c.channels or c.patterns or c.shard_channels) \
                and e.name not in _PUBSUB_OK:
            return self._reject(c, e, reply.error(self.keyspace.dialect.subscriber_context_error(
                e.name.split(b"|")[0], e.name)))
        if not (e.stale and e.loading):
            refused = self.gate.refusal(e.stale, e.loading)
            if refused is not None:
                return self._reject(c, e, refused)
        if c.multi is not None and e.name not in _MULTI_CONTROL:
            c.multi.append((e, argv))
            return QUEUED
        return self.call(c, e, argv)

    def _resolve_error(self, c: ClientSession, argv: list[bytes], err: ResolveError) -> bytes:
        name = argv[0].lower()
        if name == b"quit":
            # Before 7.0 QUIT is no command of the table: `processCommand` answers it first,
            # whatever follows and whatever the client's state.
            c.closing = True
            return b"+OK\r\n"
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
                self.watches.unwatch(c)
        return reply.error(err.msg)

    def _reject(self, c: ClientSession, e: Entry, err: bytes, flag: bool = True) -> bytes:
        """`rejectCommand`: flag the transaction (unless `flag` is False); a refused EXEC
        discards it instead and says why (`execCommandAbort`)."""
        if e.name == b"exec":
            c.multi = None
            c.multi_dirty = False
            self.watches.unwatch(c)
            return reply.error(b"EXECABORT Transaction discarded because of: " + err[1:-2])
        if c.multi is not None and flag:
            c.multi_dirty = True  # `flagTransaction`
        return err

    def call(self, c: ClientSession, e: Entry, argv: list[bytes]) -> bytes:
        # `c.now` was set once for the whole read (`ClientSession.feed`).
        c.last_cmd = e.name
        c.commands += 1
        self.stats.total_commands += 1
        try:
            return e.handler(c, argv)
        except ReplyError as err:
            return reply.error(err.msg)
        except BlockingRead as br:
            c.block(e, br, self.clock())
            return b""

    def plain(self, c: ClientSession) -> bool:
        """Whether a GET/MGET from `c` would run now, answered by the command alone: every
        `dispatch` check passes and the reply is sent (the GET/MGET fast lane's condition)."""
        return (
            c.authed
            and self.acl.unrestricted(c.user)
            and c.multi is None
            and not (c.reply_off or c.skip or c.channels or c.patterns or c.shard_channels)
            and not self.keyspace.unsupported_keys
            and self.gate.serves_plain_reads()
        )
