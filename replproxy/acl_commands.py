"""The client endpoint's side of `replproxy.acl`: the ACL command, authentication, and the
security checks the dispatcher and the accept loop call, in Redis's order.

`replproxy.acl` decides (sans-I/O); this module applies its decisions to a client: it knows
`Client` (its user, address, MULTI state, CLIENT LIST line) and the relay's configuration,
and it closes clients whose user was deleted or lost a channel. Hooks, in `processCommand`'s
order (see `replproxy.server.RespServer.dispatch`):

1. `connection_denied(srv, peer_host)` when a connection is accepted (protected mode, after
   the maxclients check, as `clientAcceptHandler`);
2. `protected_denied(c, name)` after the command lookup and arity check (`enable-debug-command`,
   and the relay's own `enable-replicaof-command`), before NOAUTH;
3. `command_denied(c, spec, argv)` after NOAUTH and the no-multi check, before READONLY
   (`ACLCheckAllPerm`);
4. `exec_denied(c, spec, argv)` for each queued command when EXEC runs it (`execCommand`).

The ACL subcommands answer as the master's version would; SETUSER, DELUSER, LOAD and SAVE
change users only when the relay runs with `--acl-writable` (its users are configuration:
they come from `--aclfile` and `--requirepass`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from replproxy.acl import (
    ACL_DENIED_CMD,
    ACL_OK,
    GENPASS_MAX_BITS,
    WRONGPASS,
    Acl,
    AclDialect,
    AclLoadError,
    AclRuleError,
    allow_protected,
    denied_text,
    genpass,
    has_spaces,
    is_local_host,
    protected_command_error,
)
from replproxy.commandtable import CommandSpec, CommandTable, table_for
from replproxy.config import Config, ConfigError
from replproxy.dialect import MasterDialect
from replproxy.keyspace.reads import NOT_INTEGER, ReplyError, upstream_identity
from replproxy.resp import reply
from replproxy.resp.request import string2ll
from replproxy.server_commands import client_line, command

if TYPE_CHECKING:
    from replproxy.keyspace import Keyspace
    from replproxy.server import Client, RespServer

log = logging.getLogger("replproxy.acl")


def peer_host(addr: str) -> str:
    """The host part of a client's `ip:port` (IPv6 addresses have colons of their own)."""
    return addr.rpartition(":")[0]


# ---- hooks for the accept loop and the dispatcher ----


def connection_denied(srv: RespServer, host: str) -> bytes | None:
    """Protected mode (`clientAcceptHandler`): the `-DENIED` line for a peer that is not
    local while the default user has no password, else None."""
    acl = srv.acl
    if not srv.relay.config.protected_mode or not acl.default_user.nopass:
        return None
    if is_local_host(host, acl.dialect):
        return None
    return denied_text(acl.dialect)


# The commands an `enable-*-command` option guards: Redis's DEBUG, and the relay's REPLICAOF
# (a remote client re-pointing the relay makes it send its master credentials there).
PROTECTED = frozenset([b"debug", b"replicaof", b"slaveof"])


def protected_denied(c: Client, name: bytes) -> bytes | None:
    """`processCommand`'s protected-command check (`allowProtectedAction`)."""
    cfg = c.srv.relay.config
    dialect = c.srv.acl.dialect
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
    acl = c.srv.acl
    if acl.unrestricted(c.user):
        return None
    result, idx = acl.check(c.user, spec, argv)
    if result == ACL_OK:
        return None
    c.last_cmd = spec.name  # Redis sets `lastcmd` at the lookup: CLIENT LIST shows it
    obj = spec.name if result == ACL_DENIED_CMD else argv[idx]
    context = "multi" if c.multi is not None else "toplevel"
    acl.add_log(result, context, obj, c.user, c.now, _cinfo(c))
    return acl.noperm(result, c.user, spec)


def exec_denied(c: Client, spec: CommandSpec, argv: Sequence[bytes]) -> bytes | None:
    """EXEC checks each queued command again: AUTH inside the transaction (or an ACL change)
    may have taken a permission away since it was queued."""
    acl = c.srv.acl
    if acl.unrestricted(c.user):
        return None
    result, idx = acl.check(c.user, spec, argv)
    if result == ACL_OK:
        return None
    obj = spec.name if result == ACL_DENIED_CMD else argv[idx]
    acl.add_log(result, "multi", obj, c.user, c.now, _cinfo(c))
    return acl.exec_noperm(result)


# ---- authentication ----


def authenticate(c: Client, user: bytes, password: bytes, command_name: bytes) -> None:
    """`ACLAuthenticateUser`: log the client in as `user`, or log the failure and raise
    WRONGPASS."""
    acl = c.srv.acl
    if not acl.check_credentials(user, password):
        acl.log_auth_failure(command_name, user, c.multi is not None, c.now, _cinfo(c))
        raise ReplyError(WRONGPASS)
    c.user = user
    c.authed = True


# ---- the ACL command ----


def _acl(c: Client) -> Acl:
    return c.srv.acl


def _syntax(argv: list[bytes]) -> ReplyError:
    """`addReplySubcommandSyntaxError`."""
    return ReplyError(
        b"ERR unknown subcommand or wrong number of arguments for '"
        + argv[1][:128]
        + b"'. Try "
        + argv[0].upper()
        + b" HELP."
    )


@command("acl|whoami")
def cmd_acl_whoami(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) != 2:
        raise _syntax(argv)
    return reply.bulk(c.user)


@command("acl|users")
def cmd_acl_users(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) != 2:
        raise _syntax(argv)
    return _acl(c).users_reply()


@command("acl|list")
def cmd_acl_list(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) != 2:
        raise _syntax(argv)
    return _acl(c).list_reply()


@command("acl|getuser")
def cmd_acl_getuser(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) != 3:
        raise _syntax(argv)
    return _acl(c).getuser_reply(argv[2], c.proto)


@command("acl|cat")
def cmd_acl_cat(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) > 3:
        raise _syntax(argv)
    try:
        return _acl(c).cat_reply(argv[2] if len(argv) == 3 else None)
    except ValueError as e:
        raise ReplyError(b"ERR " + str(e).encode("utf-8", "surrogateescape")) from None


@command("acl|genpass")
def cmd_acl_genpass(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) > 3:
        raise _syntax(argv)
    bits = 256
    if len(argv) == 3:
        v = string2ll(argv[2])
        if v is None:
            raise ReplyError(NOT_INTEGER)
        bits = v
    if bits <= 0 or bits > GENPASS_MAX_BITS:
        raise ReplyError(
            b"ERR ACL GENPASS argument must be the number of bits for the output "
            b"password, a positive number up to %d" % GENPASS_MAX_BITS
        )
    return reply.bulk(genpass(bits))


@command("acl|log")
def cmd_acl_log(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) > 3:
        raise _syntax(argv)
    acl = _acl(c)
    count = 10
    if len(argv) == 3:
        if argv[2].lower() == b"reset":
            acl.log.clear()
            return reply.OK
        v = string2ll(argv[2])
        if v is None:
            raise ReplyError(NOT_INTEGER)
        count = max(v, 0)
    return acl.log_reply(count, c.now, c.proto, c.dstyle)


@command("acl|dryrun")
def cmd_acl_dryrun(c: Client, argv: list[bytes]) -> bytes:
    acl = _acl(c)
    if not acl.dialect.dryrun:
        raise _syntax(argv)
    user = argv[2]
    if user not in acl.users:
        raise ReplyError(b"ERR User '" + user + b"' not found")
    cmd_argv = argv[3:]
    spec = c.srv.table.find(cmd_argv)
    if spec is None:
        raise ReplyError(b"ERR Command '" + cmd_argv[0] + b"' not found")
    n = len(cmd_argv)
    if (spec.arity > 0 and spec.arity != n) or n < -spec.arity:
        raise ReplyError(b"ERR wrong number of arguments for '" + spec.name + b"' command")
    return acl.dryrun(user, spec, cmd_argv)


# ---- changing users: only with --acl-writable ----


def _writable(c: Client, argv: list[bytes]) -> None:
    if not c.srv.relay.config.acl_writable:
        raise ReplyError(
            b"ERR ACL " + argv[1].upper() + b" is refused: replproxy's users come from its "
            b"--aclfile and --requirepass; start it with --acl-writable to change them at run "
            b"time"
        )


def _no_aclfile(c: Client) -> ReplyError:
    if _acl(c).dialect.valkey:
        return ReplyError(
            b"ERR This instance is not configured to use an ACL file. You may want to specify "
            b"users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you "
            b"have a configuration file set) in order to store users in the configuration."
        )
    return ReplyError(
        b"ERR This Redis instance is not configured to use an ACL file. You may want to "
        b"specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming "
        b"you have a Redis configuration file set) in order to store users in the Redis "
        b"configuration."
    )


def _close_clients_of(srv: RespServer, names: set[bytes], me: Client) -> None:
    """`ACLFreeUserAndKillClients`: a client of a deleted user is closed (after its reply,
    for the one that asked)."""
    for x in list(srv.clients.values()):
        if x.user in names:
            x.user = b"default"
            x.authed = False
            if x is me:
                x.closing = True
            else:
                x.kill("its ACL user was deleted")


def _drop_revoked_subscribers(srv: RespServer, name: bytes, old: object, new: object) -> None:
    """`ACLKillPubsubClientsIfNeeded`: subscribers of `name` that lost one of their
    channels are closed."""
    revoked = srv.acl.channels_revoked(old, new)  # type: ignore[arg-type]
    if revoked is None:
        return
    for x in list(srv.clients.values()):
        if x.user != name or not x.subscribed:
            continue
        if (
            any(revoked(p, True) for p in x.patterns)
            or any(revoked(ch, False) for ch in x.channels)
            or any(revoked(ch, False) for ch in x.shard_channels)
        ):
            x.kill("its ACL user lost a channel it subscribed to")


@command("acl|setuser")
def cmd_acl_setuser(c: Client, argv: list[bytes]) -> bytes:
    _writable(c, argv)
    acl = _acl(c)
    name = argv[2]
    if has_spaces(name):
        raise ReplyError(b"ERR Usernames can't contain spaces or null characters")
    old = acl.users.get(name)
    try:
        new = acl.set_user(name, argv[3:])
    except ValueError as e:
        msg = str(e).encode("utf-8", "surrogateescape").replace(b"\r", b" ").replace(b"\n", b" ")
        raise ReplyError(b"ERR " + msg) from None
    if old is not None:
        _drop_revoked_subscribers(c.srv, name, old, new)
    return reply.OK


@command("acl|deluser")
def cmd_acl_deluser(c: Client, argv: list[bytes]) -> bytes:
    _writable(c, argv)
    names = argv[2:]
    if b"default" in names:
        raise ReplyError(b"ERR The 'default' user cannot be removed")
    acl = _acl(c)
    gone = {n for n in names if n in acl.users}
    deleted = acl.del_users(names)
    _close_clients_of(c.srv, gone, c)
    return reply.integer(deleted)


@command("acl|load")
def cmd_acl_load(c: Client, argv: list[bytes]) -> bytes:
    _writable(c, argv)
    acl = _acl(c)
    if acl.aclfile is None:
        raise _no_aclfile(c)
    if len(argv) != 2:
        raise _syntax(argv)
    old = dict(acl.users)
    try:
        gone = acl.load()
    except AclLoadError as e:
        raise ReplyError(b"ERR " + e.errors.encode("utf-8", "surrogateescape")) from None
    _close_clients_of(c.srv, gone, c)
    for name, u in acl.users.items():
        if name in old:
            _drop_revoked_subscribers(c.srv, name, old[name], u)
    return reply.OK


@command("acl|save")
def cmd_acl_save(c: Client, argv: list[bytes]) -> bytes:
    _writable(c, argv)
    acl = _acl(c)
    if acl.aclfile is None:
        raise _no_aclfile(c)
    if len(argv) != 2:
        raise _syntax(argv)
    if not acl.save():
        raise ReplyError(
            b"ERR There was an error trying to save the ACLs. Please check the "
            b"server logs for more information"
        )
    return reply.OK


# ---- building and following the users ----


def build_acl(cfg: Config, ks: Keyspace) -> Acl:
    """The users at start-up: `--requirepass` and `--aclfile` (a file Redis would refuse is
    a configuration error), judged against the command table of the master known so far."""
    name, version = upstream_identity(ks)
    try:
        return Acl(
            table_for(name, version),
            AclDialect.of(MasterDialect.from_aux(ks.loaded_aux)),
            aclfile=cfg.aclfile,
            requirepass=cfg.requirepass,
            log_max_len=cfg.acllog_max_len,
        )
    except AclLoadError as e:
        raise ConfigError(f"--aclfile: {e.errors}") from None


def set_acl_context(acl: Acl, table: CommandTable, aux: dict[bytes, bytes]) -> None:
    """The master is known (or changed): judge users by its command table and version."""
    try:
        acl.set_context(table, AclDialect.of(MasterDialect.from_aux(aux)))
    except (AclRuleError, AclLoadError) as e:
        why = e.message if isinstance(e, AclRuleError) else e.errors
        log.error(
            "the ACL users' rules are not valid for this master's version (%s); the "
            "previous rules stay in force",
            why,
        )


# ---- SORT_RO's BY and GET patterns read keys no key spec names ----


@command("sort_ro")
def cmd_sort_ro(c: Client, argv: list[bytes]) -> bytes:
    """`sortCommandGeneric`'s ACL rule: a BY pattern with `*` or any GET pattern reads keys
    the ACL check could not see, so they need read access to every key. The options are
    walked as Redis parses them, so an earlier option's error still comes first (from the
    read handler)."""
    from replproxy.keyspace.reads import READ_COMMANDS

    handler = READ_COMMANDS[b"sort_ro"]
    acl = c.srv.acl
    if acl.unrestricted(c.user):
        return handler(c, argv)
    spec = c.srv.table.get(b"sort_ro")
    assert spec is not None
    full: bool | None = None
    j = 2
    while j < len(argv):
        left = len(argv) - j - 1
        word = argv[j].lower()
        if word in (b"asc", b"desc", b"alpha"):
            pass
        elif word == b"limit" and left >= 2:
            if string2ll(argv[j + 1]) is None or string2ll(argv[j + 2]) is None:
                break  # the handler's error
            j += 2
        elif word in (b"by", b"get") and left >= 1:
            if word == b"get" or b"*" in argv[j + 1]:
                if full is None:
                    full = acl.unrestricted_key_access(c.user, spec, argv, ("access",))
                if not full:
                    raise ReplyError(
                        b"ERR " + word.upper() + b" option of SORT denied due to "
                        b"insufficient ACL permissions."
                    )
            j += 1
        else:
            break  # the handler's syntax error
        j += 1
    return handler(c, argv)
