"""Client-side caching: CLIENT TRACKING and the invalidation messages (`tracking.c`).

A tracking client is told when a key it may have cached changes, which on a relay means:
the master's stream wrote it (every write the keyspace reports through `on_key_modified`,
the master's DEL of an expired or evicted key included), FLUSHDB/FLUSHALL emptied a DB, or
a full resync replaced the dataset (both a "null" invalidation: every key, as
`trackingInvalidateKeysOnFlush` sends). Modes, as Redis:

- default: the keys of every read-only command the client ran (`trackingRememberKeys`,
  after the command, with the keys `getKeysFromCommand` finds: the command's own
  `*GetKeys` procedure, else its first/last/step range) go into the tracking table
  (key -> client ids); a write to one sends `invalidate [key]` to each and forgets them.
  OPTIN tracks only after `CLIENT CACHING yes`, OPTOUT stops after `CLIENT CACHING no`,
  for the next command (or transaction); NOLOOP only matters for a client's own writes,
  which a relay never takes.
- BCAST with PREFIXes: every key written that starts with a prefix is remembered per
  prefix, and after each batch of the stream (Redis: before it sleeps) each prefix's
  clients get one message with its keys in byte order.

Messages go to the client itself as RESP3 pushes (`>2 invalidate <keys>`), or to its
REDIRECT client: RESP3 pushes, or a RESP2 Pub/Sub `message` on `__redis__:invalidate`
when that client is in Pub/Sub mode; a RESP2 client without redirection gets nothing. A
redirection to a client that is gone sets `broken_redirect` and, for RESP3, pushes
`tracking-redir-broken`. Keys are DB-less, as in Redis.

The table is bounded by `tracking-table-max-keys` (0: no bound): above it, keys are
forgotten and their clients invalidated as if written (`trackingLimitUsedSlots`), before
the next command runs; Redis picks them by a random walk, the relay oldest first.

This module owns the tracking table, the prefix table and each client's tracking state;
it touches no socket (messages go through `ClientSession.push`) and no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from replproxy.commandtable.keyspecs import GETKEYS_PROCS
from replproxy.errors import SYNTAX, ReplyError
from replproxy.resp import reply
from replproxy.resp.request import string2ll
from replproxy.session.registry import Client, command

if TYPE_CHECKING:
    from replproxy.commandtable.spec import CommandSpec

INVALIDATE_CHANNEL = b"__redis__:invalidate"
_PUSH_INVALIDATE = b">2\r\n$10\r\ninvalidate\r\n"
_PUBSUB_INVALIDATE = b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n"
_NULL = {2: b"$-1\r\n", 3: b"_\r\n"}


@dataclass(eq=False)
class TrackingState:
    """A tracking client's `CLIENT_TRACKING*` flags, redirection and BCAST prefixes."""

    redirect: int = 0
    bcast: bool = False
    optin: bool = False
    optout: bool = False
    noloop: bool = False
    broken_redirect: bool = False
    # CLIENT CACHING yes/no given: it applies to the next command (or transaction).
    caching: bool = False
    # The command that ran last was CLIENT ...: the CACHING flag survives it.
    after_client: bool = False
    prefixes: dict[bytes, None] = field(default_factory=dict)


@dataclass(eq=False)
class _Bcast:
    """One prefix (`bcastState`): keys written since the last broadcast, and its clients."""

    keys: set[bytes] = field(default_factory=set)
    clients: dict[int, Client] = field(default_factory=dict)


def tracked_keys(spec: CommandSpec, argv: list[bytes]) -> list[bytes]:
    """`getKeysFromCommand`: the command's `*GetKeys` procedure if it has one, else its
    legacy first/last/step range (COMMAND INFO's), as `trackingRememberKeys` asks."""
    if spec.getkeys_proc is not None:
        return [argv[pos] for pos, _ in GETKEYS_PROCS[spec.getkeys_proc](argv)]
    first = spec.first_key
    if first <= 0:
        return []
    last, step = spec.last_key, spec.key_step
    argc = len(argv)
    if last < 0:
        last = argc + last
    if last >= argc or step <= 0:
        return []  # too few arguments: the command itself refuses them
    return argv[first : last + 1 : step]


class Tracking:
    """The tracking table (`TrackingTable`) and prefix table (`PrefixTable`)."""

    def __init__(self, clients: dict[int, Client], max_keys: int) -> None:
        self.clients = clients  # the hub's registry, by id (`lookupClientByID`)
        self.max_keys = max_keys
        self.table: OrderedDict[bytes, dict[int, None]] = OrderedDict()
        self.prefixes: dict[bytes, _Bcast] = {}
        self.tracking_clients = 0
        self.total_items = 0  # ids stored across the table (INFO tracking_total_items)
        self._effort = 0  # `timeout_counter` of trackingLimitUsedSlots
        # Called when the table or the prefix table becomes empty or not: the hub keeps the
        # keyspace's modification hook installed only while there is something to track.
        self.on_change: Callable[[], None] | None = None
        # Set when the table may be over `max_keys`: the hub evicts before the next command.
        self.over_limit = False

    @property
    def active(self) -> bool:
        """Whether a key write may have to be reported."""
        return bool(self.table or self.prefixes)

    def _changed(self, was_active: bool) -> None:
        if was_active != self.active and self.on_change is not None:
            self.on_change()

    # ---- enabling and disabling ----

    def enable(
        self,
        c: Client,
        redirect: int,
        bcast: bool,
        optin: bool,
        optout: bool,
        noloop: bool,
        prefixes: list[bytes],
    ) -> None:
        """`enableTracking`: also when already on (the options are replaced, the prefixes
        added to)."""
        was = self.active
        st = c.tracking
        if st is None:
            st = c.tracking = TrackingState()
            self.tracking_clients += 1
        st.broken_redirect = st.bcast = st.optin = st.optout = st.noloop = False
        st.redirect = redirect
        if bcast:
            st.bcast = True
            for p in prefixes or [b""]:
                bs = self.prefixes.get(p)
                if bs is None:
                    bs = self.prefixes[p] = _Bcast()
                if c.id not in bs.clients:
                    bs.clients[c.id] = c
                    st.prefixes[p] = None
        st.optin, st.optout, st.noloop = optin, optout, noloop
        self._changed(was)

    def disable(self, c: Client) -> None:
        """`disableTracking`: leave every prefix; the table forgets the client lazily (its
        id is skipped when a key of it is invalidated)."""
        st = c.tracking
        if st is None:
            return
        was = self.active
        for p in st.prefixes:
            bs = self.prefixes.get(p)
            if bs is not None:
                bs.clients.pop(c.id, None)
                if not bs.clients:
                    del self.prefixes[p]
        c.tracking = None
        self.tracking_clients -= 1
        self._changed(was)

    # ---- reads ----

    def remember(self, c: Client, spec: CommandSpec, argv: list[bytes]) -> None:
        """`trackingRememberKeys` after a read-only command of `c` (not in BCAST mode)."""
        st = c.tracking
        assert st is not None
        if (st.optin and not st.caching) or (st.optout and st.caching):
            return
        if "pubsub" in spec.flags:
            return  # shard channels are keys for COMMAND, not cached data
        keys = tracked_keys(spec, argv)
        if not keys:
            return
        was = self.active
        table = self.table
        cid = c.id
        for key in keys:
            ids = table.get(key)
            if ids is None:
                ids = table[key] = {}
            if cid not in ids:
                ids[cid] = None
                self.total_items += 1
        if self.max_keys and len(table) > self.max_keys:
            self.over_limit = True
        self._changed(was)

    # ---- invalidation ----

    def key_modified(self, db: int, key: bytes) -> None:
        """`trackingInvalidateKey(c, key, bcast=1)`: a write to `key` (the keyspace's
        `on_key_modified`, on the stream's path: a key nobody tracks costs one lookup; keys
        are DB-less)."""
        if self.prefixes:
            for prefix, bs in self.prefixes.items():
                if key.startswith(prefix):
                    bs.keys.add(key)
        ids = self.table.pop(key, None)
        if ids is not None:
            self._invalidated(key, ids)

    def _invalidate(self, key: bytes) -> None:
        ids = self.table.pop(key, None)
        if ids is not None:
            self._invalidated(key, ids)

    def _invalidated(self, key: bytes, ids: dict[int, None]) -> None:
        """`key` left the table: tell each of its clients still tracking (not in BCAST)."""
        clients = self.clients
        payload = b"*1\r\n$%d\r\n%b\r\n" % (len(key), key)
        for cid in ids:
            target = clients.get(cid)
            if target is None or target.tracking is None or target.tracking.bcast:
                continue
            self.send(target, payload)
        self.total_items -= len(ids)
        if not self.table:
            self._changed(True)

    def flushed(self) -> None:
        """`trackingInvalidateKeysOnFlush`: FLUSHDB, FLUSHALL or a new dataset: a null
        invalidation to every tracking client (BCAST ones too), and the table is emptied."""
        if self.tracking_clients:
            for c in list(self.clients.values()):
                if c.tracking is not None:
                    self.send(c, _NULL[3 if c.proto >= 3 else 2])
        if self.table:
            self.table = OrderedDict()
            self.total_items = 0
            self._changed(True)

    def broadcast(self) -> None:
        """`trackingBroadcastInvalidationMessages`: after a batch of the stream, each
        prefix's keys, in byte order, to each of its clients."""
        for _, bs in sorted(self.prefixes.items()):
            if not bs.keys:
                continue
            keys = sorted(bs.keys)
            bs.keys = set()
            payload = b"*%d\r\n" % len(keys) + b"".join(
                [b"$%d\r\n%b\r\n" % (len(k), k) for k in keys]
            )
            for c in list(bs.clients.values()):
                self.send(c, payload)

    def limit(self) -> None:
        """`trackingLimitUsedSlots`: forget keys until the table is within `max_keys`,
        invalidating them for their clients, with an effort that grows while it stays
        over the limit."""
        self.over_limit = False
        max_keys = self.max_keys
        table = self.table
        if not max_keys or len(table) <= max_keys:
            self._effort = 0
            return
        effort = 100 * (self._effort + 1)
        while effort > 0 and table:
            effort -= 1
            key = next(iter(table))
            self._invalidate(key)
            if len(table) <= max_keys:
                self._effort = 0
                return
        self._effort += 1
        self.over_limit = True

    def send(self, c: Client, payload: bytes) -> None:
        """`sendTrackingMessage`: `payload` (an array of keys, or a null) to `c` or to its
        redirection."""
        st = c.tracking
        assert st is not None
        target = c
        redirected = False
        if st.redirect:
            target_ = self.clients.get(st.redirect)
            if target_ is None:
                st.broken_redirect = True
                if c.proto >= 3:
                    c.push(b">2\r\n$21\r\ntracking-redir-broken\r\n" + reply.integer(st.redirect))
                return
            target = target_
            redirected = True
        if target.proto >= 3:
            target.push(_PUSH_INVALIDATE + payload)
        elif redirected and target.subscribed:
            target.push(_PUBSUB_INVALIDATE + payload)

    # ---- INFO ----

    def keys(self) -> int:
        return len(self.table)

    def total_prefixes(self) -> int:
        return len(self.prefixes)


def caching_step(c: Client, argv0: bytes) -> None:
    """Before each command of a client with CLIENT CACHING given: the flag lasts for one
    command or transaction (`resetClient`: it survives a CLIENT command and MULTI's
    queueing, and is cleared after anything else)."""
    st = c.tracking
    assert st is not None
    if not (st.after_client or c.multi is not None):
        st.caching = False
    st.after_client = argv0.lower() == b"client"


# ---- CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO ----


def _prefix_collision(c: Client, prefixes: list[bytes]) -> bytes | None:
    """`checkPrefixCollisionsOrReply`: two prefixes that would report the same key."""

    def overlap(a: bytes, b: bytes) -> bool:
        n = min(len(a), len(b))
        return a[:n] == b[:n]

    existing: Iterable[bytes] = c.tracking.prefixes if c.tracking is not None else ()
    for i, p in enumerate(prefixes):
        for e in sorted(existing):
            if overlap(e, p):
                return (
                    b"ERR Prefix '"
                    + _cstr(p)
                    + b"' overlaps with an existing prefix '"
                    + _cstr(e)
                    + b"'. Prefixes for a single client must not overlap."
                )
        for q in prefixes[i + 1 :]:
            if overlap(p, q):
                return (
                    b"ERR Prefix '"
                    + _cstr(p)
                    + b"' overlaps with another provided prefix '"
                    + _cstr(q)
                    + b"'. Prefixes for a single client must not overlap."
                )
    return None


def _cstr(b: bytes) -> bytes:
    """A `%s` of an sds: up to the first NUL."""
    return b.split(b"\0", 1)[0]


@command("client|tracking")
def cmd_client_tracking(c: Client, argv: list[bytes]) -> bytes:
    """CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT]
    [NOLOOP], checked in `clientCommand`'s order with its error texts."""
    redirect = 0
    bcast = optin = optout = noloop = False
    prefixes: list[bytes] = []
    hub = c.hub
    j, n = 3, len(argv)
    while j < n:
        opt = argv[j].lower()
        more = n - 1 - j
        if opt == b"redirect" and more:
            j += 1
            if redirect != 0:
                raise ReplyError(b"ERR A client can only redirect to a single other client")
            v = string2ll(argv[j])
            if v is None:
                raise ReplyError(b"ERR value is not an integer or out of range")
            redirect = v
            if redirect not in hub.clients:
                raise ReplyError(b"ERR The client ID you want redirect to does not exist")
        elif opt == b"bcast":
            bcast = True
        elif opt == b"optin":
            optin = True
        elif opt == b"optout":
            optout = True
        elif opt == b"noloop":
            noloop = True
        elif opt == b"prefix" and more:
            j += 1
            prefixes.append(argv[j])
        else:
            raise ReplyError(SYNTAX)
        j += 1
    mode = argv[2].lower()
    st = c.tracking
    if mode == b"on":
        if not bcast and prefixes:
            raise ReplyError(b"ERR PREFIX option requires BCAST mode to be enabled")
        if st is not None and st.bcast != bcast:
            raise ReplyError(
                b"ERR You can't switch BCAST mode on/off before disabling tracking for this "
                b"client, and then re-enabling it with a different mode."
            )
        if bcast and (optin or optout):
            raise ReplyError(b"ERR OPTIN and OPTOUT are not compatible with BCAST")
        if optin and optout:
            raise ReplyError(b"ERR You can't specify both OPTIN mode and OPTOUT mode")
        if st is not None and ((optin and st.optout) or (optout and st.optin)):
            raise ReplyError(
                b"ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this "
                b"client, and then re-enabling it with a different mode."
            )
        if bcast:
            err = _prefix_collision(c, prefixes)
            if err is not None:
                raise ReplyError(err)
        hub.tracking.enable(c, redirect, bcast, optin, optout, noloop, prefixes)
    elif mode == b"off":
        hub.tracking.disable(c)
    else:
        raise ReplyError(SYNTAX)
    return reply.OK


@command("client|caching")
def cmd_client_caching(c: Client, argv: list[bytes]) -> bytes:
    st = c.tracking
    if st is None:
        raise ReplyError(
            b"ERR CLIENT CACHING can be called only when the client is in "
            b"tracking mode with OPTIN or OPTOUT mode enabled"
        )
    opt = argv[2].lower()
    if opt == b"yes":
        if not st.optin:
            raise ReplyError(
                b"ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode."
            )
    elif opt == b"no":
        if not st.optout:
            raise ReplyError(
                b"ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."
            )
    else:
        raise ReplyError(SYNTAX)
    st.caching = True
    st.after_client = True
    return reply.OK


@command("client|getredir")
def cmd_client_getredir(c: Client, argv: list[bytes]) -> bytes:
    st = c.tracking
    return reply.integer(st.redirect if st is not None else -1)


@command("client|trackinginfo")
def cmd_client_trackinginfo(c: Client, argv: list[bytes]) -> bytes:
    st = c.tracking
    flags = [b"on" if st is not None else b"off"]
    if st is not None:
        if st.bcast:
            flags.append(b"bcast")
        if st.optin:
            flags.append(b"optin")
            if st.caching:
                flags.append(b"caching-yes")
        if st.optout:
            flags.append(b"optout")
            if st.caching:
                flags.append(b"caching-no")
        if st.noloop:
            flags.append(b"noloop")
        if st.broken_redirect:
            flags.append(b"broken_redirect")
    proto = c.proto
    prefixes = sorted(st.prefixes) if st is not None else []
    return b"".join(
        [
            reply.map_len(3, proto),
            reply.bulk(b"flags"),
            reply.set_len(len(flags), proto),
            *[reply.bulk(f) for f in flags],
            reply.bulk(b"redirect"),
            reply.integer(st.redirect if st is not None else -1),
            reply.bulk(b"prefixes"),
            reply.array_len(len(prefixes)),
            *[reply.bulk(p) for p in prefixes],
        ]
    )
