"""The relay's side of scripting: `Scripting` wired to the RESP server (the trio shell).

This module owns the glue only: the command handlers (EVAL, EVALSHA, EVAL_RO, EVALSHA_RO,
SCRIPT LOAD|EXISTS|FLUSH|KILL|SHOW|DEBUG, FCALL, FCALL_RO, FUNCTION LIST|DUMP|STATS|KILL),
registered in `SERVER_COMMANDS`; the script client, one per relay like Redis's Lua client,
through which a script's commands run with the relay's own handlers; and what the
dispatcher asks before running anything: a script's effective flags and the -BUSY reply.

While a script runs past busy-reply-threshold the engine calls `_serve_others` every
100,000 Lua instructions: it serves, synchronously, the clients parked on the reactor's
epoll set (Redis's processEventsWhileBlocked), whose commands then meet the dispatcher's
-BUSY check (SCRIPT KILL, FUNCTION KILL, FUNCTION STATS and the other allow_busy commands
run). Trio does not run in between: the replication stream waits, so the script sees no
write land, as on a replica. New connections are accepted once the script ends.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from replproxy.commandtable import CommandSpec
from replproxy.dialect import MasterDialect
from replproxy.keyspace.reads import ReplyError
from replproxy.link.protocol import LinkState
from replproxy.scripting.script import EVAL_COMMANDS, FCALL_COMMANDS, Caller
from replproxy.scripting.scripting import Scripting
from replproxy.server_commands import command

if TYPE_CHECKING:
    from replproxy.server import Client, Entry, RespServer

log = logging.getLogger("replproxy.scripting")

SCRIPT_COMMANDS = EVAL_COMMANDS | FCALL_COMMANDS


class RelayScripting:
    """The RESP server's scripting: built with it, refreshed when the master changes."""

    def __init__(self, srv: RespServer) -> None:
        self.srv = srv
        self.scripting: Scripting | None = None
        self._dialect: MasterDialect | None = None
        self._script_client: Client | None = None
        self._caller: Client | None = None

    def refresh(self) -> None:
        """The server's identity was refreshed (a snapshot loaded): a new master kind or
        version gets fresh Lua states, as a replica of that version starts with."""
        srv = self.srv
        relay = srv.relay
        dialect = MasterDialect.from_aux(relay.keyspace.loaded_aux)
        if self.scripting is None:
            from replproxy.persistence import snapshot_format

            self.scripting = Scripting(
                dialect,
                srv.table,
                clock=time.monotonic,
                libraries=lambda: relay.keyspace.functions,
                rdb_version=lambda: snapshot_format(relay.keyspace.loaded_aux)[0],
                busy_reply_threshold=relay.config.busy_reply_threshold,
                on_busy=self._serve_others,
            )
        elif dialect != self._dialect or self.scripting.table is not srv.table:
            self.scripting.reset(dialect, srv.table)
        self._dialect = dialect

    # ---- dispatcher hooks

    @property
    def busy(self) -> bool:
        """A script runs past busy-reply-threshold (the GET fast lane must stand aside)."""
        return self.scripting is not None and self.scripting.busy

    def flags(self, e: Entry, argv: list[bytes]) -> tuple[bool, bool]:
        """(write, stale) of an EVAL/FCALL-family command once its script's flags count."""
        assert self.scripting is not None
        flags = self.scripting.command_flags(e.name, argv, e.spec.flags)
        return "write" in flags, "stale" in flags

    def busy_reply(self, e: Entry) -> bytes | None:
        """-BUSY while a script runs past busy-reply-threshold, for commands without the
        allow_busy flag."""
        s = self.scripting
        if s is None or not s.busy or "allow_busy" in e.spec.flags:
            return None
        return s.busy_error()

    # ---- running scripts for a client

    def caller(self, c: Client) -> Caller:
        relay = self.srv.relay
        stale = (
            not relay.config.replica_serve_stale_data
            and relay.link.status.state is not LinkState.CONNECTED
        )
        return Caller(
            c.proto, lambda spec, argv, resp: self._call(c, spec, argv, resp), stale=stale
        )

    def _script_client_for(self, c: Client) -> Client:
        """The Lua client (one per relay): the caller's DB, user and time at the script's
        start; it never blocks."""
        sc = self._script_client
        if sc is None:
            from replproxy.server import Client

            sc = self._script_client = Client(self.srv, 0, "lua", "lua")
            sc.name = b""
        sc.db = c.db
        sc.dstyle = self.srv.dstyle
        sc.user = c.user
        sc.authed = True
        sc.now = c.now
        sc.can_block = False
        sc.multi = None
        return sc

    def _call(self, c: Client, spec: CommandSpec, argv: list[bytes], resp: int) -> bytes:
        sc = self._script_client
        assert sc is not None
        sc.proto = resp
        srv = self.srv
        return srv.call(sc, srv.entries[spec.name], argv)

    def run(self, c: Client, fn_name: str, argv: list[bytes], **kw: bool) -> bytes:
        """EVAL*/FCALL*: the script client set up for `c`, then the script."""
        s = self.scripting
        assert s is not None
        prev = self._caller
        self._caller = c
        self._script_client_for(c)
        try:
            out: bytes = getattr(s, fn_name)(self.caller(c), argv, **kw)
            return out
        finally:
            self._caller = prev

    def command(self, c: Client, fn_name: str, argv: list[bytes]) -> bytes:
        """SCRIPT / FUNCTION subcommands (which may run while a script is busy)."""
        s = self.scripting
        assert s is not None
        out: bytes = getattr(s, fn_name)(self.caller(c), argv)
        return out

    # ---- processEventsWhileBlocked

    def _serve_others(self) -> None:
        reactor = self.srv.reactor
        if reactor is None:
            return
        caller = self._caller
        for fd, _ in reactor.epoll.poll(0):
            entry = reactor.parked.get(fd)
            if entry is None:
                continue
            c, done = entry
            # protectClient: the script's own client is not read until the script ends.
            if c is caller or done.is_set() or c.closing:
                continue
            try:
                keep = self.srv.serve_ready(c)
            except Exception:
                log.exception("error serving client %s during a busy script", c.addr)
                c.kill()
                keep = False
            if not keep:
                done.set()


def _rs(c: Client) -> RelayScripting:
    rs: RelayScripting = c.srv.scripting
    return rs


@command("eval")
def cmd_eval(c: Client, argv: list[bytes]) -> bytes:
    return _rs(c).run(c, "eval", argv, evalsha=False, ro=False)


@command("eval_ro")
def cmd_eval_ro(c: Client, argv: list[bytes]) -> bytes:
    return _rs(c).run(c, "eval", argv, evalsha=False, ro=True)


@command("evalsha")
def cmd_evalsha(c: Client, argv: list[bytes]) -> bytes:
    return _rs(c).run(c, "eval", argv, evalsha=True, ro=False)


@command("evalsha_ro")
def cmd_evalsha_ro(c: Client, argv: list[bytes]) -> bytes:
    return _rs(c).run(c, "eval", argv, evalsha=True, ro=True)


@command("fcall")
def cmd_fcall(c: Client, argv: list[bytes]) -> bytes:
    return _rs(c).run(c, "fcall", argv, ro=False)


@command("fcall_ro")
def cmd_fcall_ro(c: Client, argv: list[bytes]) -> bytes:
    return _rs(c).run(c, "fcall", argv, ro=True)


@command("script|load", "script|exists", "script|flush", "script|kill", "script|show")
def cmd_script(c: Client, argv: list[bytes]) -> bytes:
    return _rs(c).command(c, "script", argv)


@command("script|debug")
def cmd_script_debug(c: Client, argv: list[bytes]) -> bytes:
    # The Lua debugger (LDB) is an interactive session a relay does not offer.
    raise ReplyError(b"ERR replproxy does not support the 'script|debug' command")


@command("function|list", "function|dump", "function|stats", "function|kill")
def cmd_function(c: Client, argv: list[bytes]) -> bytes:
    return _rs(c).command(c, "function", argv)
