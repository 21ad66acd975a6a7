"""The client session's side of `replproxy.acl`: the security checks the hub makes, in
Redis's order, and authentication.

`replproxy.acl` decides (sans-I/O); this module applies its decisions to a session: it knows
the session (its user, address, MULTI state, CLIENT LIST line) and the relay's
configuration. Hooks, in `processCommand`'s order (see `SessionHub.dispatch`):

1. `connection_denied(hub, peer_host)` when a connection opens (protected mode, after the
   maxclients check, as `clientAcceptHandler`);
2. `protected_denied(c, name)` after the command lookup and arity check
   (`enable-debug-command`, and the relay's own `enable-replicaof-command`), before NOAUTH;
3. `command_denied(c, spec, argv)` after NOAUTH and the no-multi check, before READONLY
   (`ACLCheckAllPerm`);
4. `exec_denied(c, spec, argv)` for each queued command when EXEC runs it (`execCommand`);
5. `script_denied(...)` for each command a Lua script runs (`scriptVerifyACL`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from replproxy.acl import (
    Acl,
    AclDialect,
    AclLoadError,
    AclRuleError,
    allow_protected,
    denied_text,
    is_local_host,
    protected_command_error,
)
from replproxy.commandtable.spec import CommandSpec
from replproxy.config import Config, ConfigError
from replproxy.dialect import MasterDialect
from replproxy.errors import ReplyError
from replproxy.resp import reply
from replproxy.session.client import ClientSession as Client
from replproxy.session.clientinfo import client_line

if TYPE_CHECKING:
    from replproxy.keyspace import Keyspace
    from replproxy.session.hub import SessionHub

log = logging.getLogger("replproxy.acl")


def peer_host(addr: str) -> str:
    """The host part of a client's `ip:port` (IPv6 addresses have colons of their own)."""
    return addr.rpartition(":")[0]


# ---- hooks for the accept loop and the dispatcher ----


def connection_denied(hub: SessionHub, host: str) -> bytes | None:
    """Protected mode (`clientAcceptHandler`): the `-DENIED` line for a peer that is not
    local while the default user has no password, else None."""
    acl = hub.acl
    if not hub.config.protected_mode or not acl.default_user.nopass:
        return None
    if is_local_host(host, acl.dialect):
        return None
    return denied_text(acl.dialect)


# The commands an `enable-*-command` option guards: Redis's DEBUG, and the relay's REPLICAOF
# (a remote client re-pointing the relay makes it send its master credentials there).
PROTECTED = frozenset([b"debug", b"replicaof", b"slaveof"])


def protected_denied(c: Client, name: bytes) -> bytes | None:
    """`processCommand`'s protected-command check (`allowProtectedAction`)."""
    cfg = c.hub.config
    dialect = c.hub.acl.dialect
    if name == b"debug":
        if not dialect.protected_commands:
            return None  # Redis 6.2 had no enable-debug-command
        setting, option = cfg.enable_debug_command, "enable-debug-command"
    else:
        setting, option = cfg.enable_replicaof_command, "enable-replicaof-command"
    if allow_protected(setting, peer_host(c.addr), dialect):
        return None
    return reply.error(protected_command_error(name.decode().upper(), option))


def _cinfo(c: Client) -> bytes:
    return client_line(c, c).rstrip("\n").encode()


def command_denied(c: Client, spec: CommandSpec, argv: Sequence[bytes]) -> bytes | None:
    """The ACL check of `processCommand`: None, or the NOPERM reply (logged in ACL LOG)."""
    acl = c.hub.acl
    if acl.unrestricted(c.user):
        return None
    d = acl.denial(c.user, spec, argv)
    if d is None:
        return None
    c.last_cmd = spec.name  # Redis sets `lastcmd` at the lookup: CLIENT LIST shows it
    context = "multi" if c.multi is not None else "toplevel"
    acl.add_log(d.result, context, d.obj, c.user, c.now, _cinfo(c))
    return acl.noperm(d.result, c.user, d.spec)


def script_denied(
    c: Client, caller: Client, spec: CommandSpec, argv: Sequence[bytes], log: bool
) -> bytes | None:
    """A command a script runs (`scriptVerifyACL`): judged as the script's user, logged
    with context `lua` and the calling client's info; the text Lua is given, else None.
    `redis.acl_check_cmd` asks without logging."""
    acl = c.hub.acl
    if acl.unrestricted(c.user):
        return None
    d = acl.denial(c.user, spec, argv)
    if d is None:
        return None
    if log:
        acl.add_log(d.result, "lua", d.obj, c.user, c.now, _cinfo(caller))
    return acl.script_noperm(d.result, c.user, d.spec)


def exec_denied(c: Client, spec: CommandSpec, argv: Sequence[bytes]) -> bytes | None:
    """EXEC checks each queued command again: AUTH inside the transaction (or an ACL change)
    may have taken a permission away since it was queued."""
    acl = c.hub.acl
    if acl.unrestricted(c.user):
        return None
    d = acl.denial(c.user, spec, argv)
    if d is None:
        return None
    acl.add_log(d.result, "multi", d.obj, c.user, c.now, _cinfo(c))
    return acl.exec_noperm(d.result)


# ---- authentication ----


def authenticate(c: Client, user: bytes, password: bytes, command_name: bytes) -> None:
    """`ACLAuthenticateUser`: log the client in as `user`, or log the failure and raise
    WRONGPASS."""
    acl = c.hub.acl
    if not acl.check_credentials(user, password):
        acl.log_auth_failure(command_name, user, c.multi is not None, c.now, _cinfo(c))
        err = c.ks.dialect.wrongpass_error
        if acl.aclfile is not None and not err.startswith(b"WRONGPASS"):
            # A 5.0 master's replica has no users: the relay's own (--aclfile) are judged
            # as Redis 7.0 judges them, texts included (docs/security.md).
            err = b"WRONGPASS invalid username-password pair or user is disabled."
        raise ReplyError(err)
    c.user = user
    c.authed = True


# ---- building and following the users ----


def build_acl(cfg: Config, ks: Keyspace) -> Acl:
    """The users at start-up: `--requirepass` and `--aclfile` (a file Redis would refuse is
    a configuration error), judged against the command table of the master known so far."""
    try:
        return Acl(
            ks.dialect.acl_command_table,
            AclDialect.of(ks.dialect),
            aclfile=cfg.aclfile,
            requirepass=cfg.requirepass,
            log_max_len=cfg.acllog_max_len,
        )
    except AclLoadError as e:
        raise ConfigError(f"--aclfile: {e.errors}") from None


def set_acl_context(acl: Acl, dialect: MasterDialect) -> None:
    """The master is known (or changed): judge users by its version and the command table
    its ACL uses (`MasterDialect.acl_command_table`: 7.0's for a master older than 6.2)."""
    try:
        acl.set_context(dialect.acl_command_table, AclDialect.of(dialect))
    except (AclRuleError, AclLoadError) as e:
        why = e.message if isinstance(e, AclRuleError) else e.errors
        log.error(
            "the ACL users' rules are not valid for this master's version (%s); the "
            "previous rules stay in force",
            why,
        )
