"""The table of connection and server commands: `@command` fills `SERVER_COMMANDS`.

Handlers of the session's own commands (`commands`, `acl_commands`) register here; the hub
builds its dispatch entries from this table and the keyspace's `READ_COMMANDS`. Apart, so
that modules of handlers can register without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable

from replproxy.session.client import ClientSession

# Handlers take the session (named `c`, Redis's `client *c`).
Client = ClientSession
Handler = Callable[[ClientSession, list[bytes]], bytes]
SERVER_COMMANDS: dict[bytes, Handler] = {}


def command(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler under one or more names (lowercase, `a|b` for subcommands)."""

    def register(fn: Handler) -> Handler:
        for n in names:
            b = n.encode()
            if b in SERVER_COMMANDS:
                raise RuntimeError(f"command {n!r} registered twice")
            SERVER_COMMANDS[b] = fn
        return fn

    return register
