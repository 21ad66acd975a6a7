"""The session's side of scripting: `Scripting` wired to the hub and its clients.

`replproxy.scripting` runs scripts (sans-I/O); this module is the glue: the command
handlers (EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT LOAD|EXISTS|FLUSH|KILL|SHOW, FCALL,
FCALL_RO, FUNCTION LIST|DUMP|STATS|KILL), registered in `SERVER_COMMANDS`; the script
client, one per relay like Redis's Lua client, through which a script's commands run with
the hub's own entries (ACL-checked as the caller's user, logged with context `lua`); and
what the dispatcher asks before it runs anything: a script's effective flags and -BUSY.

While a script runs past busy-reply-threshold the engine calls back every 100,000 Lua
instructions; the hub passes that on to `serve_while_busy`, which the shell sets: it serves
the idle clients synchronously (Redis's `processEventsWhileBlocked`), whose commands then
meet the dispatcher's -BUSY check (SCRIPT KILL, FUNCTION KILL, FUNCTION STATS and the other
`allow_busy` commands run). The event loop does not run in between: the replication stream
waits, so the script sees no write land, as on a replica.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from replproxy.commandtable.spec import CommandSpec
from replproxy.scripting import Caller, Scripting
from replproxy.scripting.script import EVAL_COMMANDS, FCALL_COMMANDS
from replproxy.session.client import ClientSession
from replproxy.session.registry import command
from replproxy.session.security import script_denied

if TYPE_CHECKING:
    from replproxy.session.hub import Entry, SessionHub

log = logging.getLogger("replproxy.scripting")

Client = ClientSession

# EVAL / FCALL and their variants: the script's own flags replace `write` and `stale`.
SCRIPT_COMMANDS = EVAL_COMMANDS | FCALL_COMMANDS


class SessionScripting:
    """The hub's scripting: built with it, told when the master's dialect changes."""

    def __init__(self, hub: SessionHub, clock: Callable[[], float]) -> None:
        self.hub = hub
        ks = hub.keyspace
        self.scripting = Scripting(
            ks.dialect,
            hub.table,
            clock=clock,
            libraries=lambda: ks.functions,
            rdb_version=lambda: ks.dialect.rdb_version,
            busy_reply_threshold=hub.config.busy_reply_threshold,
            on_busy=self._serve_others,
        )
        self._dialect = ks.dialect
        # The Lua client (one per relay, as Redis's): not in the hub's client registry;
        # MONITOR shows its commands as `[db lua]`.
        self._script_client = ClientSession(hub, 0, "lua", "", clock())
        self._caller: ClientSession | None = None
        # Set by the shell: serve the other clients while a script is busy.
        self.serve_while_busy: Callable[[ClientSession], None] | None = None

    def dialect_changed(self) -> None:
        """A snapshot loaded: a master of another kind or version gets fresh Lua states, as
        a replica of that version starts with."""
        hub = self.hub
        dialect = hub.keyspace.dialect
        if dialect != self._dialect or self.scripting.table is not hub.table:
            self.scripting.reset(dialect, hub.table)
            self._dialect = dialect

    # ---- dispatcher hooks

    @property
    def busy(self) -> bool:
        """A script runs past busy-reply-threshold (the GET fast lane stands aside)."""
        return self.scripting.busy

    def flags(self, e: Entry, argv: list[bytes]) -> tuple[bool, bool]:
        """(write, stale) of an EVAL/FCALL-family command once its script's flags count
        (`getCommandFlags`)."""
        flags = self.scripting.command_flags(e.name, argv, e.spec.flags)
        return "write" in flags, "stale" in flags

    def busy_reply(self, e: Entry) -> bytes | None:
        """-BUSY while a script runs past busy-reply-threshold, for commands without the
        allow_busy flag."""
        s = self.scripting
        if not s.busy or "allow_busy" in e.spec.flags:
            return None
        return s.busy_error()

    # ---- running scripts for a client

    def _caller_of(self, c: Client) -> Caller:
        sc = self._script_client
        return Caller(
            c.proto,
            self._call,
            stale=self.hub.gate.refusal(False, True) is not None,
            acl=lambda spec, argv, log: script_denied(sc, c, spec, argv, log),
        )

    def _prepare_script_client(self, c: Client) -> None:
        """The Lua client takes the caller's DB, user and time at the script's start; it
        never blocks (a blocking read answers at once, as in EXEC)."""
        sc = self._script_client
        sc.db = c.db
        sc.user = c.user
        sc.authed = True
        sc.now = c.now
        sc.sees_expired = self.hub.keyspace.dialect.scripts_see_expired_keys
        sc.can_block = False
        sc.multi = None
        sc.name = b""

    def _call(self, spec: CommandSpec, argv: list[bytes], resp: int) -> bytes:
        sc = self._script_client
        sc.proto = resp
        hub = self.hub
        e = hub.entries[spec.name]
        out = hub.call(sc, e, argv)
        # `call()` remembers the keys a script's read-only command fetched for the client
        # that ran the script (`server.current_client`), not for the script client.
        caller = self._caller
        if (
            caller is not None
            and (st := caller.tracking) is not None
            and e.readonly
            and not st.bcast
        ):
            hub.tracking.remember(caller, spec, argv)
        return out

    def run(self, c: Client, fn_name: str, argv: list[bytes], **kw: bool) -> bytes:
        """EVAL*/FCALL*: the script client set up for `c`, then the script."""
        s = self.scripting
        s.busy_reply_threshold = self.hub.config.busy_reply_threshold  # CONFIG SET
        prev = self._caller
        self._caller = c
        self._prepare_script_client(c)
        try:
            out: bytes = getattr(s, fn_name)(self._caller_of(c), argv, **kw)
            return out
        finally:
            self._caller = prev

    def command(self, c: Client, fn_name: str, argv: list[bytes]) -> bytes:
        """SCRIPT / FUNCTION subcommands (which may run while a script is busy)."""
        out: bytes = getattr(self.scripting, fn_name)(self._caller_of(c), argv)
        return out

    def _serve_others(self) -> None:
        serve = self.serve_while_busy
        if serve is not None and self._caller is not None:
            serve(self._caller)

    # ---- INFO

    def cached_scripts(self) -> int:
        return self.scripting.script_count()

    def memory(self) -> int:
        return self.scripting.memory()


def _s(c: Client) -> SessionScripting:
    return c.hub.scripting


@command("eval")
def cmd_eval(c: Client, argv: list[bytes]) -> bytes:
    return _s(c).run(c, "eval", argv, evalsha=False, ro=False)


@command("eval_ro")
def cmd_eval_ro(c: Client, argv: list[bytes]) -> bytes:
    return _s(c).run(c, "eval", argv, evalsha=False, ro=True)


@command("evalsha")
def cmd_evalsha(c: Client, argv: list[bytes]) -> bytes:
    return _s(c).run(c, "eval", argv, evalsha=True, ro=False)


@command("evalsha_ro")
def cmd_evalsha_ro(c: Client, argv: list[bytes]) -> bytes:
    return _s(c).run(c, "eval", argv, evalsha=True, ro=True)


@command("fcall")
def cmd_fcall(c: Client, argv: list[bytes]) -> bytes:
    return _s(c).run(c, "fcall", argv, ro=False)


@command("fcall_ro")
def cmd_fcall_ro(c: Client, argv: list[bytes]) -> bytes:
    return _s(c).run(c, "fcall", argv, ro=True)


@command("script|load", "script|exists", "script|flush", "script|kill", "script|show")
def cmd_script(c: Client, argv: list[bytes]) -> bytes:
    return _s(c).command(c, "script", argv)


@command("function|list", "function|dump", "function|stats", "function|kill")
def cmd_function(c: Client, argv: list[bytes]) -> bytes:
    return _s(c).command(c, "function", argv)
