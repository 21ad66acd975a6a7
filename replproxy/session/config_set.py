"""CONFIG SET: the parameters that mean something on a running relay, with Redis's checks
and error texts (`configSetCommand`): all or nothing (every value is checked before any is
applied), a parameter named twice refused, one parameter per call before Redis 7.0.

A parameter the master's version does not know gets that version's unknown-parameter error;
one it knows but the relay does not change at run time (it is configured by its command
line, environment and file: docs/configuration.md) gets a clear refusal naming what can be
set. Owns only the parsing: each value lives where it acts (the hub's `config`, SLOWLOG and
LATENCY settings, client memory, the keyspace's notification flags, the tracking table).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from replproxy.config import ConfigError, OutputLimit, parse_maxmemory_clients, parse_size
from replproxy.errors import ReplyError
from replproxy.keyspace import notify as ksn
from replproxy.replica_defaults import for_dialect
from replproxy.resp import reply
from replproxy.resp.request import string2ll
from replproxy.session.registry import Client, command

LLONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1

# A parsed value: what applies it once every value of the call was checked.
Apply = Callable[[], None]
Parser = Callable[[Client, bytes, bytes], Apply]


class _Invalid(Exception):
    """A value CONFIG SET refuses: `why` (Redis's words), shown after the parameter's name
    (7.0+), or after the value in 6.2's text when `old_why`."""

    def __init__(self, why: str, old_why: bool = True) -> None:
        super().__init__(why)
        self.why = why
        self.old_why = old_why


def _failed(c: Client, name: bytes, value: bytes, why: str, old_why: bool = True) -> ReplyError:
    if not c.ks.dialect.config_set_failed_text:  # before Redis 7.0
        text = b"ERR Invalid argument '" + value + b"' for CONFIG SET '" + name + b"'"
        return ReplyError(text + b" - " + why.encode() if old_why else text)
    return ReplyError(
        b"ERR CONFIG SET failed (possibly related to argument '" + name + b"') - " + why.encode()
    )


def _integer(c: Client, raw: bytes, lo: int, hi: int) -> int:
    """`numericConfigSet`'s checks of an integer parameter in [lo, hi]."""
    v = string2ll(raw)
    if v is None:
        raise _Invalid("argument couldn't be parsed into an integer")
    if not lo <= v <= hi:
        if lo == 0 and v < 0 and c.ks.dialect.config_unsigned_min_text:
            raise _Invalid("argument must be greater or equal to 0")
        raise _Invalid(f"argument must be between {lo} and {hi} inclusive")
    return v


def _replace(c: Client, **changes: Any) -> None:
    """The settings the sessions read from `hub.config` (frozen): a new one replaces it."""
    c.hub.config = dataclasses.replace(c.hub.config, **changes)


def _config_int(field: str, lo: int, hi: int) -> Parser:
    """An integer the sessions read from `hub.config` (`timeout`, `maxclients`,
    `busy-reply-threshold`: the next script to start reads it)."""

    def parse(c: Client, name: bytes, raw: bytes) -> Apply:
        v = _integer(c, raw, lo, hi)
        return lambda: _replace(c, **{field: v})

    return parse


def _slowlog_slower_than(c: Client, name: bytes, raw: bytes) -> Apply:
    v = _integer(c, raw, -1, LLONG_MAX)
    return lambda: setattr(c.hub.slowlog, "slower_than", v)


def _slowlog_max_len(c: Client, name: bytes, raw: bytes) -> Apply:
    v = _integer(c, raw, 0, LLONG_MAX)

    def apply() -> None:
        log = c.hub.slowlog
        log.max_len = v
        while len(log.entries) > v:
            log.entries.pop()

    return apply


def _latency_threshold(c: Client, name: bytes, raw: bytes) -> Apply:
    v = _integer(c, raw, 0, LLONG_MAX)
    return lambda: setattr(c.hub.latency, "threshold_ms", v)


def _maxmemory_clients(c: Client, name: bytes, raw: bytes) -> Apply:
    value = raw.decode("latin-1")
    try:
        parse_maxmemory_clients(value)
    except ConfigError as e:
        raise _Invalid(str(e)) from None

    def apply() -> None:
        c.hub.memory.configure(value)
        c.hub.memory.check()

    return apply


_CLASSES = {"normal": "normal", "slave": "replica", "replica": "replica", "pubsub": "pubsub"}


def _output_limits(c: Client, name: bytes, raw: bytes) -> Apply:
    """`<class> <hard> <soft> <seconds>` groups; the replica class is the downstream
    server's (--client-output-buffer-limit-replica) and cannot change at run time."""
    words = raw.decode("latin-1").split()
    if not words or len(words) % 4:
        raise _Invalid("Wrong number of arguments in buffer limit configuration.")
    changes: dict[str, Any] = {}
    cfg = c.hub.config
    for i in range(0, len(words), 4):
        cls = _CLASSES.get(words[i].lower())
        if cls is None:
            raise _Invalid("Invalid client class specified in buffer limit configuration.")
        try:
            hard, soft = parse_size(words[i + 1]), parse_size(words[i + 2])
            secs = int(words[i + 3])
        except (ConfigError, ValueError):
            raise _Invalid(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration."
            ) from None
        limit = OutputLimit(hard, soft, secs)
        if cls == "replica":
            if limit != cfg.client_output_buffer_limit_replica:
                raise _Invalid(
                    "replproxy sets the replica class at start "
                    "(--client-output-buffer-limit-replica)"
                )
            continue
        changes[f"client_output_buffer_limit_{cls}"] = limit
    return lambda: _replace(c, **changes)


def _notify(c: Client, name: bytes, raw: bytes) -> Apply:
    flags = ksn.parse_flags(raw.decode("latin-1"), c.ks.dialect)
    if flags is None:
        raise _Invalid("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.", old_why=False)
    return lambda: c.ks.set_notify_flags(flags)


def _tracking_max_keys(c: Client, name: bytes, raw: bytes) -> Apply:
    v = _integer(c, raw, 0, LLONG_MAX)

    def apply() -> None:
        tr = c.hub.tracking
        tr.max_keys = v
        tr.over_limit = bool(v) and len(tr.table) > v

    return apply


# What a running relay changes, by redis.conf name.
SETTABLE: dict[bytes, Parser] = {
    b"slowlog-log-slower-than": _slowlog_slower_than,
    b"slowlog-max-len": _slowlog_max_len,
    b"latency-monitor-threshold": _latency_threshold,
    b"maxmemory-clients": _maxmemory_clients,
    b"client-output-buffer-limit": _output_limits,
    b"timeout": _config_int("timeout", 0, INT_MAX),
    b"maxclients": _config_int("maxclients", 1, INT_MAX),
    b"busy-reply-threshold": _config_int("busy_reply_threshold", 0, LLONG_MAX),
    b"lua-time-limit": _config_int("busy_reply_threshold", 0, LLONG_MAX),
    b"notify-keyspace-events": _notify,
    b"tracking-table-max-keys": _tracking_max_keys,
}


def _unknown(c: Client, name: bytes) -> ReplyError:
    if not c.ks.dialect.config_set_failed_text:  # before Redis 7.0
        return ReplyError(b"ERR Unsupported CONFIG parameter: " + name)
    return ReplyError(b"ERR Unknown option or number of arguments for CONFIG SET - '" + name + b"'")


@command("config|set")
def cmd_config_set(c: Client, argv: list[bytes]) -> bytes:
    if not c.ks.dialect.config_set_failed_text and len(argv) != 4:
        # Before Redis 7.0 CONFIG SET takes one parameter (`configCommand`).
        raise ReplyError(
            b"ERR Unknown subcommand or wrong number of arguments for '"
            + argv[1]
            + b"'. Try CONFIG HELP."
        )
    if len(argv) % 2:
        raise ReplyError(b"ERR wrong number of arguments for 'config|set' command")
    known = for_dialect(c.ks.dialect).config
    seen: set[bytes] = set()
    todo: list[Apply] = []
    for i in range(2, len(argv), 2):
        name = argv[i].lower()
        if name.decode("latin-1") not in known:
            raise _unknown(c, argv[i])
        parse = SETTABLE.get(name)
        if parse is None:
            settable = b", ".join(sorted(n for n in SETTABLE if n.decode() in known))
            raise ReplyError(
                b"ERR CONFIG SET failed (possibly related to argument '"
                + argv[i]
                + b"') - replproxy does not change '"
                + name
                + b"' at run time (it takes its "
                b"configuration from its command line, environment and file; settable: "
                + settable
                + b")"
            )
        if name in seen:
            raise _failed(c, argv[i], argv[i + 1], "duplicate parameter")
        seen.add(name)
        try:
            todo.append(parse(c, argv[i], argv[i + 1]))
        except _Invalid as e:
            raise _failed(c, argv[i], argv[i + 1], e.why, e.old_why) from None
    for apply in todo:
        apply()
    return reply.OK
