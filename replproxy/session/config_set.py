"""CONFIG SET of the parameters a running relay changes: `notify-keyspace-events` and
`tracking-table-max-keys`, with Redis's checks and error texts (`configSetCommand`:
all-or-nothing, a parameter named twice refused). Every other parameter is refused: the
relay is configured by its command line, environment and file (docs/configuration.md).

Owns only the parsing; the values live where they act: the keyspace's notification flags
(`Keyspace.notify_config`) and the tracking table's bound (`Tracking.max_keys`).
"""

from __future__ import annotations

from collections.abc import Callable

from replproxy.errors import ReplyError
from replproxy.keyspace import notify as ksn
from replproxy.resp import reply
from replproxy.resp.request import string2ll
from replproxy.session.registry import Client, command

LLONG_MAX = 2**63 - 1


def _failed(c: Client, name: bytes, value: bytes, why: str, old_why: bool = True) -> ReplyError:
    if not c.ks.dialect.config_set_failed_text:  # before Redis 7.0
        text = b"ERR Invalid argument '" + value + b"' for CONFIG SET '" + name + b"'"
        return ReplyError(text + b" - " + why.encode() if old_why else text)
    return ReplyError(
        b"ERR CONFIG SET failed (possibly related to argument '" + name + b"') - " + why.encode()
    )


def _notify(c: Client, name: bytes, raw: bytes) -> Callable[[], None]:
    flags = ksn.parse_flags(raw.decode("latin-1"), c.ks.dialect)
    if flags is None:
        why = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
        raise _failed(c, name, raw, why, old_why=False)
    return lambda: c.ks.set_notify_flags(flags)


def _tracking_max_keys(c: Client, name: bytes, raw: bytes) -> Callable[[], None]:
    v = string2ll(raw)
    if v is None:
        raise _failed(c, name, raw, "argument couldn't be parsed into an integer")
    if v < 0:
        raise _failed(
            c,
            name,
            raw,
            "argument must be greater or equal to 0"
            if c.ks.dialect.config_unsigned_min_text
            else f"argument must be between 0 and {LLONG_MAX} inclusive",
        )

    def apply() -> None:
        tr = c.hub.tracking
        tr.max_keys = v
        tr.over_limit = bool(v) and len(tr.table) > v

    return apply


SETTABLE: dict[bytes, Callable[[Client, bytes, bytes], Callable[[], None]]] = {
    b"notify-keyspace-events": _notify,
    b"tracking-table-max-keys": _tracking_max_keys,
}


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
    seen: set[bytes] = set()
    todo: list[Callable[[], None]] = []
    for i in range(2, len(argv), 2):
        name = argv[i].lower()
        parse = SETTABLE.get(name)
        if parse is None:
            raise ReplyError(
                b"ERR CONFIG SET failed (possibly related to argument '"
                + argv[i]
                + b"') - replproxy takes its configuration from its command line, "
                b"environment and file; at run time only notify-keyspace-events and "
                b"tracking-table-max-keys can be set"
            )
        if name in seen:
            raise _failed(c, argv[i], argv[i + 1], "duplicate parameter")
        seen.add(name)
        todo.append(parse(c, argv[i], argv[i + 1]))
    for apply in todo:
        apply()
    return reply.OK
