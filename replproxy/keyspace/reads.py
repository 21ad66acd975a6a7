"""The read side of the keyspace: what a read command sees, how it fails, how it is registered.

Read commands live in the per-type modules beside their appliers (`t_hash.py` holds HGET as
well as HSET), registered with `@read_command("hget")`. A handler takes the client's
`ReadContext` and the full argv (argv[0] is the command name as sent) and returns the
encoded reply. The server's dispatcher has already checked the arity, the LOADING/MASTERDOWN
states, auth and MULTI, using the command table (`replproxy.commandtable`), so a handler
checks only what the command itself checks (syntax, numbers, types).

Errors are raised as `ReplyError(b"ERR ...")`: the dispatcher turns one into the `-ERR ...`
reply. Inside a handler, nothing may be half-written: a handler builds its whole reply and
returns it, or raises before returning anything.

Keys are read as a Redis replica reads them (`lookupKeyRead` on a replica): a key whose TTL
has passed reads as missing but is NOT deleted (the master's DEL will come through the
stream); a key whose last write replproxy could not apply is refused with an error rather
than served stale (`Keyspace.unsupported_keys`). A key found missing (or expired) reports a
`keymiss` keyspace notification when those are on (`lookupKey`), except for OBJECT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from replproxy.errors import (
    NOT_INTEGER,
    WRONGTYPE,
    ReplyError,
)
from replproxy.keyspace.notify import KEY_MISS
from replproxy.keyspace.values import ListValue, SetValue
from replproxy.rdb.model import OrderedSet, StreamValue, Value, ZSetValue
from replproxy.resp.reply import DoubleStyle
from replproxy.resp.request import string2ll

if TYPE_CHECKING:
    from replproxy.keyspace.store import Keyspace
    from replproxy.keyspace.values import ZSet


# The error reply and shared texts live in `replproxy.errors`; re-exported here because every
# read command raises them.
# The reply of a SCAN-family command with nothing to return: cursor 0, no elements.
EMPTY_SCAN = b"*2\r\n$1\r\n0\r\n*0\r\n"
# The master's `proto-max-bulk-len` bounds bit offsets and LCS tables; the relay cannot read
# the master's setting, so it assumes the default.
PROTO_MAX_BULK_LEN = 512 * 1024 * 1024


class ReadContext:
    """What a read handler sees: one per client connection (the server's client state
    extends it). `now` is the command's time in unix ms, fixed for the whole command (and
    for a whole EXEC), as Redis's `commandTimeSnapshot`."""

    def __init__(self, ks: Keyspace, db: int = 0, proto: int = 2, now: int = 0) -> None:
        self.ks = ks
        self.db = db
        self.proto = proto
        self.now = now
        # False inside EXEC (and scripts): a blocking command then answers at once, as Redis.
        self.can_block = True
        # True for a script's calls on a Redis 5.0/6.2 replica: its `lookupKeyRead` hides a
        # logically expired key only from a CMD_READONLY command, and EVAL is none
        # (`MasterDialect.scripts_see_expired_keys`).
        self.sees_expired = False

    @property
    def dstyle(self) -> DoubleStyle:
        """How doubles are printed: the master's style (`%.17g` up to Redis 7.0)."""
        return self.ks.dialect.double_style


class BlockingRead(Exception):
    """Raised by a blocking read (XREAD BLOCK) that has nothing to return yet.

    The server parks the client until one of `keys` (in the client's DB) is written or
    `timeout_ms` passes (0 = forever), then calls the handler again with `retry`: the same
    command without BLOCK and with ids like `$` made concrete, so a retry that still finds
    nothing returns its "nothing" reply and the server waits again. On timeout the client
    gets a null array (`*-1` / `_`).
    """

    def __init__(self, keys: list[bytes], timeout_ms: int, retry: list[bytes]) -> None:
        super().__init__(keys, timeout_ms)
        self.keys = keys
        self.timeout_ms = timeout_ms
        self.retry = retry


ReadHandler = Callable[[ReadContext, list[bytes]], bytes]

# Lowercase name -> handler. A subcommand is registered as "container|sub" ("object|encoding",
# "xinfo|stream"), as Redis names them in COMMAND INFO.
READ_COMMANDS: dict[bytes, ReadHandler] = {}


def read_command(*names: str) -> Callable[[ReadHandler], ReadHandler]:
    """Register a read command handler under one or more names (lowercase, `a|b` for
    subcommands)."""

    def register(fn: ReadHandler) -> ReadHandler:
        for n in names:
            b = n.lower().encode()
            if b in READ_COMMANDS:
                raise RuntimeError(f"read command {n!r} registered twice")
            READ_COMMANDS[b] = fn
        return fn

    return register


def unsupported_key_error(key: bytes) -> bytes:
    """The error for a key whose last write replproxy could not apply: never serve it stale."""
    return (
        b"ERR replproxy cannot serve key '"
        + key.replace(b"\r", b" ").replace(b"\n", b" ")
        + b"': a command from the master touching it could not be applied (see the "
        b"replproxy_unsupported_commands_total metric)"
    )


def peek(c: ReadContext, key: bytes, db: int | None = None, notify: bool = True) -> Value | None:
    """The value at `key` as a replica's `lookupKeyRead` sees it: None when missing or
    logically expired (not deleted, and `keymiss` reported unless `notify` is False, as
    LOOKUP_NONOTIFY); `ReplyError` when the key is unsupported. A sorted set loaded from a
    snapshot is returned as it is (EXISTS, TYPE, TTL... need no index)."""
    ks = c.ks
    if db is None:
        db = c.db
    if ks.unsupported_keys and (db, key) in ks.unsupported_keys:
        raise ReplyError(unsupported_key_error(key))
    v = ks.dbs[db].get(key)
    if v is not None:
        expires = ks.expires[db]
        if not expires:
            ks.stat_keyspace_hits += 1
            return v
        when = expires.get(key)
        if when is None or when > c.now or c.sees_expired:
            ks.stat_keyspace_hits += 1
            return v
    ks.stat_keyspace_misses += 1
    if notify and ks.notify_flags & KEY_MISS:
        ks.notify(KEY_MISS, b"keymiss", db, key)
    return None


def lookup(c: ReadContext, key: bytes, db: int | None = None, notify: bool = True) -> Value | None:
    """`peek`, with a sorted set's index built on first use (ranks and ranges need it) and
    a loaded set's encoding settled (`Keyspace.get`)."""
    v = peek(c, key, db, notify)
    t = type(v)
    if t is ZSetValue or t is OrderedSet or t is set:
        v = c.ks.get(c.db if db is None else db, key)
    return v


def arg_long(raw: bytes, msg: bytes = NOT_INTEGER) -> int:
    """`getLongLongFromObjectOrReply` (a long is a long long on 64-bit Linux): `msg` is the
    error for anything `string2ll` refuses."""
    v = string2ll(raw)
    if v is None:
        raise ReplyError(msg)
    return v


def lookup_string(c: ReadContext, key: bytes) -> bytes | None:
    v = lookup(c, key)
    if v is None or type(v) is bytes:
        return v
    raise ReplyError(WRONGTYPE)


def lookup_list(c: ReadContext, key: bytes) -> list[bytes] | ListValue | None:
    """A plain list (as loaded from a snapshot) or a `ListValue` (once written)."""
    v = lookup(c, key)
    if v is None or type(v) is ListValue or type(v) is list:
        return v
    raise ReplyError(WRONGTYPE)


def lookup_set(c: ReadContext, key: bytes) -> SetValue | None:
    v = lookup(c, key)
    if v is None or type(v) is SetValue:
        return v
    raise ReplyError(WRONGTYPE)


def lookup_hash(c: ReadContext, key: bytes) -> dict[bytes, bytes] | None:
    """A hash is a `dict` or a `HashValue` (with `.expires` for field TTLs); a sorted set
    is a dict subclass too, and is not a hash."""
    v = lookup(c, key)
    if v is None or (isinstance(v, dict) and not isinstance(v, ZSetValue)):
        return v
    raise ReplyError(WRONGTYPE)


def lookup_zset(c: ReadContext, key: bytes) -> ZSet | None:
    from replproxy.keyspace.values import ZSet

    v = lookup(c, key)
    if v is None or isinstance(v, ZSet):
        return v
    raise ReplyError(WRONGTYPE)


def lookup_stream(c: ReadContext, key: bytes) -> StreamValue | None:
    v = lookup(c, key)
    if v is None or type(v) is StreamValue:
        return v
    raise ReplyError(WRONGTYPE)
