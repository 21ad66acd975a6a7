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
   in cluster mode, then the slot checks of `getNodeByQuery` (`replproxy.cluster`: -MOVED,
   -ASK, -CROSSSLOT...), where `processCommand` runs them;
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
client-side caching tables (`replproxy.session.tracking`: a read-only command's keys are
remembered after it ran, as `call()` does), the monitors (`replproxy.session.monitor`: fed
after each command, and with the master's commands as the stream applies them), the
command table of the master's dialect (refreshed when a snapshot loads), and the client
counters of INFO: `call` times every command and counts it, its errors and the rejections
into `replproxy.session.stats` (commandstats, errorstats, latencystats, SLOWLOG, LATENCY;
the GET/MGET fast lane once per batch, `fast_lane_ran`), and the clients' unsent output is
bounded by `replproxy.session.clientmem` (maxmemory-clients) and each client's limits,
checked as replies are built (a reply over them is refused before it is encoded:
`reply.output_budget`). The replication connections (master link, downstream replicas) get
client ids for CLIENT LIST/KILL (`links`) through `StatusView.link_clients`. It never
touches a socket: the trio shell is `replproxy.server`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import replproxy.cluster.commands  # noqa: F401 - registers CLUSTER and ASKING
from replproxy.commandtable.spec import CommandSpec, ResolveError
from replproxy.commandtable.table import CommandTable
from replproxy.config import ConfigError
from replproxy.errors import ReplyError
from replproxy.keyspace import notify as ksn
from replproxy.keyspace.reads import READ_COMMANDS, BlockingRead
from replproxy.resp import reply
from replproxy.resp.request import RequestParser
from replproxy.session import (  # noqa: F401 - register their handlers
    acl_commands,
    commands,
    config_set,
    monitor,
    ops_commands,
    tracking,
)
from replproxy.session.client import ClientSession, ShutdownWait
from replproxy.session.clientinfo import LinkEntry
from replproxy.session.clientmem import ClientMemory
from replproxy.session.monitor import Monitors, logged_args
from replproxy.session.pubsub import PubSub, unregister
from replproxy.session.registry import SERVER_COMMANDS
from replproxy.session.scripting import SCRIPT_COMMANDS, SessionScripting
from replproxy.session.security import (
    PROTECTED,
    build_acl,
    command_denied,
    connection_denied,
    peer_host,
    protected_denied,
    set_acl_context,
)
from replproxy.session.stats import CommandStats, LatencyMonitor, RateSampler, SlowLog
from replproxy.session.tracking import Tracking, caching_step

if TYPE_CHECKING:
    from replproxy.cluster.node import ClusterNode
    from replproxy.config import Config
    from replproxy.gate import ServingGate
    from replproxy.interfaces import Control, Downstream, StatusView
    from replproxy.keyspace import Keyspace
    from replproxy.link.driver import LinkStatus
    from replproxy.replication import Replication
    from replproxy.resp.stream import StreamCommand

log = logging.getLogger("replproxy.session")

Handler = Callable[[ClientSession, list[bytes]], bytes]

READONLY = reply.error(b"READONLY You can't write against a read only replica.")
NOAUTH = reply.error(b"NOAUTH Authentication required.")
NO_MULTI = reply.error(b"ERR Command not allowed inside a transaction")
QUEUED = b"+QUEUED\r\n"
MAX_CLIENTS = reply.error(b"ERR max number of clients reached")

# What RESP2 subscribers may still run (`processCommand`).
_PUBSUB_OK = frozenset(
    [
        b"ping",
        b"subscribe",
        b"ssubscribe",
        b"unsubscribe",
        b"sunsubscribe",
        b"psubscribe",
        b"punsubscribe",
        b"quit",
        b"reset",
    ]
)
# The read lane times a batch, not each command: below this slowlog-log-slower-than (in
# microseconds, far above what one lane command costs) every command goes through `call()`,
# so SLOWLOG sees each one as Redis would log it.
_LANE_SLOWLOG_FLOOR_US = 1000

# The read lane's commands, in `RequestParser.lane_ran`'s order.
_LANE_COMMANDS = (b"get", b"mget", b"lrange", b"hgetall")
# Run at once even inside MULTI.
_MULTI_CONTROL = frozenset([b"exec", b"discard", b"multi", b"watch", b"quit", b"reset"])
# Commands flagged `may_replicate` (the table hides the flag): with the read-only and write
# ones, what a monitor may not run (`processCommand`).
_MAY_REPLICATE = frozenset([b"eval", b"evalsha", b"fcall", b"pfcount", b"publish", b"spublish"])
# Read-only commands whose keys are not tracked themselves (`call()`: a read-only script
# tracks the keys of the commands it runs).
_UNTRACKED = frozenset([b"eval_ro", b"evalsha_ro", b"fcall_ro"])


class Entry:
    """A command as dispatch needs it: the table's spec (arity, flags) and our handler."""

    __slots__ = (
        "arity",
        "handler",
        "keyspace",
        "loading",
        "monitored",
        "name",
        "noauth",
        "nomulti",
        "readonly",
        "script",
        "spec",
        "stale",
        "stat_name",
        "write",
    )

    def __init__(
        self, spec: CommandSpec, handler: Handler, legacy: CommandSpec | None = None
    ) -> None:
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
        # Tracked after it ran (CLIENT TRACKING); refused to monitors; shown to them. Before
        # Redis 7.0 a container's own flags decide (`legacy`: its spec; the table's
        # subcommand specs are 7.0's).
        cflags = legacy.flags if legacy is not None else flags
        # INFO commandstats counts a subcommand under its container before Redis 7.0
        # (`c->cmd`, the whole command), under its full name (`client|list`) after.
        self.stat_name = legacy.name if legacy is not None else spec.name
        self.readonly = "readonly" in cflags and spec.name not in _UNTRACKED
        self.keyspace = "readonly" in cflags or "write" in cflags or spec.name in _MAY_REPLICATE
        self.monitored = not ("admin" in cflags or "skip_monitor" in cflags)


def not_supported(c: ClientSession, argv: list[bytes]) -> bytes:
    # `last_cmd` is the full name (`memory|stats`), set by `SessionHub.call`.
    name = c.last_cmd.decode("utf-8", "replace")
    raise ReplyError(f"ERR replproxy does not support the '{name}' command".encode())


def _raiser(msg: bytes) -> Handler:
    """A handler that answers `msg` (a legacy container's own subcommand error)."""

    def handler(c: ClientSession, argv: list[bytes]) -> bytes:
        raise ReplyError(msg)

    return handler


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
            spec.name.lower()
        )
        if handler is None and spec.container is not None and spec.name.endswith(b"|help"):
            text = table.subcommand_help(spec.container)
            if text is not None:
                handler = _help_handler(text)
        if handler is None:
            # A subcommand may be served by its container's handler (CLIENT, CONFIG...).
            if spec.container is not None:
                handler = SERVER_COMMANDS.get(spec.container) or READ_COMMANDS.get(spec.container)
            if handler is None:
                handler = not_supported
        legacy = table.get(spec.container) if table.legacy and spec.container else None
        entries[spec.name] = Entry(spec, handler, legacy)
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
    # Bytes read from / written to clients that are gone (the live ones keep their own).
    closed_net_input: int = 0
    closed_net_output: int = 0
    evicted_clients: int = 0  # closed by maxmemory-clients
    output_limit_disconnections: int = 0  # closed by client-output-buffer-limit


@dataclass(eq=False)
class KeyWatches:
    """The keys clients WATCH or block on, told of every write the stream makes to them
    (`signalModifiedKey`: with the tracking table's invalidations when there is one)."""

    keyspace: Keyspace
    tracking: Tracking | None = None
    watchers: dict[tuple[int, bytes], dict[int, ClientSession]] = field(default_factory=dict)
    blocked: dict[tuple[int, bytes], dict[int, ClientSession]] = field(default_factory=dict)
    blocked_clients: int = 0

    def _hook(self) -> None:
        """Keep `on_key_modified` installed only while someone needs it: the stream's hot
        path skips the call otherwise."""
        watch = bool(self.watchers or self.blocked)
        tr = self.tracking
        hook: Callable[[int, bytes], None] | None
        if tr is not None and tr.active:
            hook = self._key_modified_tracked if watch else tr.key_modified
        else:
            hook = self._key_modified if watch else None
        self.keyspace.on_key_modified = hook

    def _key_modified_tracked(self, db: int, key: bytes) -> None:
        self._key_modified(db, key)
        assert self.tracking is not None
        self.tracking.key_modified(db, key)

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

    def flushed(self, db: int) -> None:
        """`touchAllWatchedKeysInDb` before DB `db` (-1: all) is emptied: watched keys that
        exist there are dirty; readers blocked on them retry (and wait on)."""
        dbs = self.keyspace.dbs
        for table, mark in ((self.watchers, True), (self.blocked, False)):
            for (d, key), clients in list(table.items()):
                if (db == -1 or d == db) and key in dbs[d]:
                    for c in list(clients.values()):
                        if mark:
                            c.watch_dirty = True
                        else:
                            c.wakeup()

    def swapped(self, a: int, b: int) -> None:
        """SWAPDB (`touchAllWatchedKeysInDb` both ways): a key watched in either DB that
        exists in either is dirty; readers blocked there retry."""
        dbs = self.keyspace.dbs
        for table, mark in ((self.watchers, True), (self.blocked, False)):
            for (d, key), clients in list(table.items()):
                if d in (a, b) and (key in dbs[a] or key in dbs[b]):
                    for c in list(clients.values()):
                        if mark:
                            c.watch_dirty = True
                        else:
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
        """EXEC must abort: a watched key was written, the dataset was replaced, or a
        watched key has expired (`isWatchedKeyExpired`: since WATCH from 7.0, at all on
        6.0.15/6.2.5, never before; `MasterDialect.exec_expired_watch_rule`)."""
        if c.watch_dirty:
            return True
        ks = self.keyspace
        if c.watched and c.watch_epoch != ks.epoch:
            return True
        rule = ks.dialect.exec_expired_watch_rule
        if rule == "never":
            return False
        for (db, key), was_live in c.watched.items():
            if was_live or rule == "any":
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
        perf: Callable[[], int] = time.perf_counter_ns,
        wall: Callable[[], float] = time.time,
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
        # Keyspace notifications go out through the same Pub/Sub (`Keyspace.notify`), and
        # are built only while someone subscribes to something.
        notify = ksn.parse_flags(config.notify_keyspace_events)
        if notify is None:
            raise ConfigError(
                f"--notify-keyspace-events {config.notify_keyspace_events!r}: invalid event "
                "class character; use the letters of 'Ag$lshzxeKEtmdnoc' (o and c need Redis "
                "8.2)"
            )
        keyspace.set_notify_flags(notify)
        keyspace.notify_listened(False)
        self.pubsub.on_listened = keyspace.notify_listened
        self.tracking = Tracking(self.clients, config.tracking_table_max_keys)
        self.watches = KeyWatches(keyspace, self.tracking)
        self.tracking.on_change = self.watches._hook
        keyspace.on_flush = self._db_flushed
        keyspace.on_swapdb = self.watches.swapped
        self.monitors = Monitors(time.time)
        self.monitors.on_change = self._monitoring
        # The stream's side, when attached (`attach_stream`): MONITOR shows the master's
        # commands with the master's address.
        self._replication: Replication | None = None
        self._link_status: LinkStatus | None = None
        self.stats = ClientStats()
        # The cluster read endpoint (replproxy.cluster.node), in cluster mode.
        self.cluster: ClusterNode | None = None
        # Command counters, SLOWLOG and LATENCY (`replproxy.session.stats`): `perf` times
        # each call, `wall` dates slow log entries and latency samples.
        self.perf = perf
        self.wall = wall
        self.cmdstats = CommandStats()
        self.slowlog = SlowLog(config.slowlog_log_slower_than, config.slowlog_max_len)
        self.latency = LatencyMonitor(config.latency_monitor_threshold)
        self.rates = {name: RateSampler() for name in ("ops", "in", "out", "repl_in", "repl_out")}
        self.memory = ClientMemory(self, config.maxmemory_clients)
        # Client ids given to replication connections (`links`), by `LinkClient.key`.
        self.link_ids: dict[str, int] = {}
        self._next_id = 1
        # The master's dialect: its command table and our entries for it.
        self.table: CommandTable
        self.entries: dict[bytes, Entry] = {}
        self.fast: dict[bytes, Entry] = {}
        self._follow_table()
        # EVAL, FCALL, SCRIPT, FUNCTION (`replproxy.session.scripting`).
        self.scripting = SessionScripting(self, clock)

    # ---- the master's dialect ----

    def dialect_changed(self) -> None:
        """A snapshot loaded: follow the master's kind and version (its command table, its
        Lua states)."""
        self._follow_table()
        self.scripting.dialect_changed()

    def _follow_table(self) -> None:
        dialect = self.keyspace.dialect
        table = dialect.command_table
        set_acl_context(self.acl, dialect)
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

    # ---- the stream's side: tracking, notifications, MONITOR ----

    def attach_stream(self, replication: Replication, link_status: LinkStatus) -> None:
        """Follow the master's stream: after each batch the BCAST invalidations go out (as
        Redis does before it sleeps), and monitors see the master's commands."""
        self._replication = replication
        self._link_status = link_status
        replication.listeners.append(self._stream_batch_done)
        replication.snapshot_listeners.append(self.dataset_replaced)
        if self.monitors.clients:
            self._monitoring(True)

    def _stream_batch_done(self) -> None:
        tr = self.tracking
        if tr.prefixes:
            tr.broadcast()
        if tr.over_limit:
            tr.limit()

    def dataset_replaced(self) -> None:
        """A snapshot replaced the dataset (a full resync): as `emptyData` before a load,
        every tracking client gets a null invalidation."""
        self.tracking.flushed()

    def _db_flushed(self, db: int) -> None:
        """FLUSHDB / FLUSHALL from the master (`signalFlushedDb`), before the DB empties."""
        self.watches.flushed(db)
        self.tracking.flushed()

    def _monitoring(self, on: bool) -> None:
        """Install the stream's MONITOR feed while there are monitors (none: no cost)."""
        repl = self._replication
        if repl is not None:
            repl.monitor = self._monitor_stream if on else None

    def _monitor_stream(self, batch: Sequence[StreamCommand], db: int, in_multi: bool) -> None:
        st = self._link_status
        addr = st.master_addr if st is not None else ""
        self.monitors.feed_stream(batch, db, in_multi, addr.encode(), self.table)

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
        if self.clients.pop(c.id, None) is not None:
            self.stats.closed_net_input += c.net_in
            self.stats.closed_net_output += c.net_out
            self.memory.released(c)
        self.pubsub.drop_client(c)
        self.watches.unwatch(c)
        self.tracking.disable(c)
        self.monitors.remove(c)
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

    def links(self) -> list[LinkEntry]:
        """The replication connections (master link, downstream replicas) with the client
        ids they keep while they live, from the same counter as clients'."""
        infos = self.view.link_clients()
        live = {i.key for i in infos}
        for key in [k for k in self.link_ids if k not in live]:
            del self.link_ids[key]
        out = []
        for info in infos:
            cid = self.link_ids.get(info.key)
            if cid is None:
                cid = self.link_ids[info.key] = self._next_id
                self._next_id += 1
            out.append(LinkEntry(cid, info))
        return out

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
        if self.tracking.tracking_clients:
            self.tracking.limit()
        idle = self.config.timeout
        self.rates["ops"].sample(self.total_commands(), now)
        self.rates["in"].sample(self.net_input_bytes, now)
        self.rates["out"].sample(self.net_output_bytes, now)
        view = self.view
        self.rates["repl_in"].sample(view.replication.stats.net_repl_input_bytes, now)
        self.rates["repl_out"].sample(view.downstream_stats.net_output_bytes, now)
        for c in list(self.clients.values()):
            if c.out_bytes:
                c.check_output_limit(now)
            if idle and not c.blocked and not c.subscribed and now - c.last_active > idle:
                c.kill("idle timeout")

    # ---- dispatch ----

    def dispatch(self, c: ClientSession, argv: list[bytes]) -> bytes:
        if c.tracking is not None:
            if c.tracking.caching:
                caching_step(c, argv[0])
            if self.tracking.over_limit:  # `trackingLimitUsedSlots` before a command
                self.tracking.limit()
        e = self.fast.get(argv[0])
        if e is None or not (len(argv) == e.arity if e.arity >= 0 else len(argv) >= -e.arity):
            resolved = self.table.resolve(argv)
            if isinstance(resolved, ResolveError):
                if resolved.kind != "unknown_subcommand" or not self.table.legacy:
                    return self._resolve_error(c, argv, resolved)
                # Before 7.0 a container parses its subcommand when it runs: the error
                # comes after NOAUTH and the ACL (which judge the container), or at EXEC.
                # CLUSTER's captured error is a standalone server's ("cluster support
                # disabled"): in cluster mode its own handler parses the subcommand.
                if self.cluster is not None and argv[0].lower() == b"cluster":
                    e = self.entries[b"cluster"]
                else:
                    e = Entry(self.entries[argv[0].lower()].spec, _raiser(resolved.msg))
            else:
                e = self.entries[resolved.name]
        if e.name in PROTECTED and (err := protected_denied(c, e.name)) is not None:
            return self._reject(c, e, err, argv)
        if not c.authed and not e.noauth and self.acl.auth_required(c.authed):
            return self._reject(c, e, NOAUTH, argv)
        if c.multi is not None and e.nomulti:
            return self._reject(c, e, NO_MULTI, argv)
        if (err := command_denied(c, e.spec, argv)) is not None:
            return self._reject(c, e, err, argv)
        if self.cluster is not None and (moved := self.cluster.check(c, e, argv)):
            return moved  # `getNodeByQuery`: -MOVED, -ASK, -CROSSSLOT, -CLUSTERDOWN...
        write, stale = e.write, e.stale
        if e.script:
            write, stale = self.scripting.flags(e, argv)
        if write:
            # Before 6.0 a replica's READONLY refusal did not doom the transaction (no
            # `flagTransaction`): EXEC then runs what was queued.
            return self._reject(c, e, READONLY, argv, self.keyspace.dialect.rejections_abort_exec)
        if (
            c.proto == 2
            and (c.channels or c.patterns or c.shard_channels)
            and e.name not in _PUBSUB_OK
        ):
            return self._reject(
                c,
                e,
                reply.error(
                    self.keyspace.dialect.subscriber_context_error(e.name.split(b"|")[0], e.name)
                ),
                argv,
            )
        if not (stale and e.loading):
            refused = self.gate.refusal(stale, e.loading)
            if refused is not None:
                return self._reject(c, e, refused, argv)
        if self.scripting.busy and (busy := self.scripting.busy_reply(e)) is not None:
            return self._reject(c, e, busy, argv)
        if e.keyspace and c.monitor:
            return self._reject(c, e, self.keyspace.dialect.replica_keyspace_error, argv)
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
            log.warning(
                "possible security attack: %r sent to the client port by %s; connection closed",
                argv[0],
                c.addr,
            )
            c.closing = True
            return b""
        self.cmdstats.error_reply(err.msg if err.msg.startswith(b"-") else b"-" + err.msg)
        if c.multi is not None:
            c.multi_dirty = True
            if name == b"exec":  # EXEC with arguments discards the transaction (EXECABORT)
                c.multi = None
                c.multi_dirty = False
                self.watches.unwatch(c)
                if self.monitors.clients:  # `execCommandAbort` shows the EXEC
                    return self.monitors.feed_client(c, name, argv, reply.error(err.msg))
        return reply.error(err.msg)

    def _reject(
        self, c: ClientSession, e: Entry, err: bytes, argv: list[bytes], flag: bool = True
    ) -> bytes:
        """`rejectCommand`: flag the transaction (unless `flag` is False); a refused EXEC
        discards it instead and says why (`execCommandAbort`)."""
        self.cmdstats.stat(e.stat_name).rejected += 1
        self.cmdstats.error_reply(err)
        if e.name == b"exec":
            c.multi = None
            c.multi_dirty = False
            self.watches.unwatch(c)
            out = reply.error(b"EXECABORT Transaction discarded because of: " + err[1:-2])
            if self.monitors.clients:  # `execCommandAbort` shows the EXEC
                out = self.monitors.feed_client(c, e.name, argv, out)
            return out
        if c.multi is not None and flag:
            c.multi_dirty = True  # `flagTransaction`
        return err

    def call(self, c: ClientSession, e: Entry, argv: list[bytes]) -> bytes:
        # `c.now` was set once for the whole read (`ClientSession.feed`).
        c.last_cmd = e.name
        c.commands += 1
        self.stats.total_commands += 1
        perf = self.perf
        budget = c.output_budget()
        if budget is not None:
            reply.output_budget = budget
        t0 = perf()
        try:
            out = e.handler(c, argv)
        except ReplyError as err:
            out = reply.error(err.msg)
        except BlockingRead as br:
            c.block(e, br, self.clock())
            out = b""
        except reply.OutputBudgetExceeded as over:
            # Redis would build the reply and close the client at the next check; the relay
            # closes it without building a reply it could never send.
            self.stats.output_limit_disconnections += 1
            c.kill(f"output limits: {over}", cut=True)
            out = b""
        finally:
            reply.output_budget = None
        ns = perf() - t0
        self.cmdstats.record(e.stat_name, ns)
        if out[:1] == b"-":
            self.cmdstats.commands[e.stat_name].failed += 1
            self.cmdstats.error_reply(out)
        us = ns // 1000
        if 0 <= self.slowlog.slower_than <= us or 0 < self.latency.threshold_ms * 1000 <= us:
            self.slow_call(c, e, argv, ns)
        # What `call()` does after the command, failed or blocked alike: remember the keys
        # a tracking client read, show the command to the monitors.
        if c.tracking is not None and e.readonly and not c.tracking.bcast:
            self.tracking.remember(c, e.spec, argv)
        if e.monitored and self.monitors.clients:
            out = self.monitors.feed_client(c, e.name, argv, out)
        return out

    def slow_call(self, c: ClientSession, e: Entry, argv: list[bytes], ns: int) -> None:
        """A call long enough for SLOWLOG or LATENCY (`call()`'s tail)."""
        if "skip_slowlog" not in e.spec.flags:
            self.slowlog.maybe_add(
                logged_args(e.name, argv), ns // 1000, self.wall(), c.addr, c.name
            )
        event = "fast-command" if "fast" in e.spec.flags else "command"
        self.latency.maybe_add(event, ns // 1_000_000, self.wall())

    def fast_lane_ran(self, c: ClientSession, parser: RequestParser, n: int, ns: int) -> None:
        """The read lane ran `n` commands in `ns`: count them as `call()` would, once per
        batch (the lane's speed is the point)."""
        ks = self.keyspace
        ks.stat_keyspace_misses += parser.lane_misses
        ks.stat_keyspace_hits += parser.lane_lookups - parser.lane_misses
        stats = self.cmdstats
        for name, ran, wrong in zip(
            _LANE_COMMANDS, parser.lane_ran, parser.lane_wrongtype, strict=True
        ):
            if ran:
                stats.record(name, ns * ran // n, ran)
                if wrong:
                    stats.commands[name].failed += wrong
                    stats.error_reply(b"-WRONGTYPE ", wrong)

    @property
    def net_input_bytes(self) -> int:
        """INFO total_net_input_bytes: what clients sent (replicas' links excluded)."""
        return self.stats.closed_net_input + sum(c.net_in for c in self.clients.values())

    @property
    def net_output_bytes(self) -> int:
        return self.stats.closed_net_output + sum(c.net_out for c in self.clients.values())

    def stream_calls(self) -> dict[bytes, tuple[int, int]]:
        """The master's commands as a replica of its version counts them in INFO
        commandstats (`ReplStats.calls`): full name -> (calls, nanoseconds). Before Redis
        7.0 (a legacy table) a container counts under its own name."""
        out: dict[bytes, tuple[int, int]] = {}
        legacy = self.table.legacy
        for key, (n, ns) in self.view.replication.stats.calls.items():
            name = key.lower()
            if legacy:
                name = name.split(b"|", 1)[0]
            calls, total_ns = out.get(name, (0, 0))
            out[name] = (calls + n, total_ns + ns)
        return out

    def total_commands(self) -> int:
        """INFO total_commands_processed: the clients' commands and the master's."""
        return self.stats.total_commands + sum(
            n for n, _ in self.view.replication.stats.calls.values()
        )

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT: what INFO counts starts again from zero."""
        self.cmdstats.reset()
        self.view.replication.stats.calls.clear()
        self.stats.total_connections = self.stats.total_commands = 0
        self.stats.rejected_connections = self.stats.evicted_clients = 0
        self.stats.closed_net_input = -sum(c.net_in for c in self.clients.values())
        self.stats.closed_net_output = -sum(c.net_out for c in self.clients.values())
        self.keyspace.stat_keyspace_hits = self.keyspace.stat_keyspace_misses = 0
        self.slowlog.reset()
        self.latency.reset()

    def plain(self, c: ClientSession) -> bool:
        """Whether a GET/MGET from `c` would run now, answered by the command alone: every
        `dispatch` check passes and the reply is sent (the GET/MGET fast lane's condition)."""
        return (
            c.authed
            and self.acl.unrestricted(c.user)
            and c.multi is None
            and (self.cluster is None or self.cluster.lane_slots(c) is not None)
            and not (c.reply_off or c.skip or c.channels or c.patterns or c.shard_channels)
            and c.tracking is None
            and not self.monitors.clients
            and not self.keyspace.notify_flags & ksn.KEY_MISS
            and not self.keyspace.unsupported_keys
            and not self.scripting.busy
            and not 0 <= self.slowlog.slower_than < _LANE_SLOWLOG_FLOOR_US
            and self.gate.serves_plain_reads()
        )
