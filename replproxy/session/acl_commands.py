"""The ACL command as a replica of the master's version answers it, and SORT_RO's ACL rule.

The ACL subcommands answer as the master's version would; SETUSER, DELUSER, LOAD and SAVE
change users only when the relay runs with `--acl-writable` (its users are configuration:
they come from `--aclfile` and `--requirepass`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replproxy.acl import (
    GENPASS_MAX_BITS,
    Acl,
    AclLoadError,
    genpass,
    has_spaces,
)
from replproxy.errors import NOT_INTEGER, ReplyError
from replproxy.keyspace.reads import READ_COMMANDS
from replproxy.resp import reply
from replproxy.resp.request import string2ll
from replproxy.session.registry import Client, command

if TYPE_CHECKING:
    from replproxy.session.hub import SessionHub


# ---- the ACL command ----


def _acl(c: Client) -> Acl:
    return c.hub.acl


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
    spec = c.hub.table.find(cmd_argv)
    if spec is None:
        raise ReplyError(b"ERR Command '" + cmd_argv[0] + b"' not found")
    n = len(cmd_argv)
    if (spec.arity > 0 and spec.arity != n) or n < -spec.arity:
        raise ReplyError(b"ERR wrong number of arguments for '" + spec.name + b"' command")
    return acl.dryrun(user, spec, cmd_argv)


# ---- changing users: only with --acl-writable ----


def _writable(c: Client, argv: list[bytes]) -> None:
    if not c.hub.config.acl_writable:
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


def _close_clients_of(hub: SessionHub, names: set[bytes], me: Client) -> None:
    """`ACLFreeUserAndKillClients`: a client of a deleted user is closed (after its reply,
    for the one that asked)."""
    for x in list(hub.clients.values()):
        if x.user in names:
            x.user = b"default"
            x.authed = False
            if x is me:
                x.closing = True
            else:
                x.kill("its ACL user was deleted")


def _drop_revoked_subscribers(hub: SessionHub, name: bytes, old: object, new: object) -> None:
    """`ACLKillPubsubClientsIfNeeded`: subscribers of `name` that lost one of their
    channels are closed."""
    revoked = hub.acl.channels_revoked(old, new)  # type: ignore[arg-type]
    if revoked is None:
        return
    for x in list(hub.clients.values()):
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
        _drop_revoked_subscribers(c.hub, name, old, new)
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
    _close_clients_of(c.hub, gone, c)
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
    _close_clients_of(c.hub, gone, c)
    for name, u in acl.users.items():
        if name in old:
            _drop_revoked_subscribers(c.hub, name, old[name], u)
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


# ---- SORT_RO's BY and GET patterns read keys no key spec names ----


@command("sort_ro")
def cmd_sort_ro(c: Client, argv: list[bytes]) -> bytes:
    """`sortCommandGeneric`'s ACL rule: a BY pattern with `*` or any GET pattern reads keys
    the ACL check could not see, so they need read access to every key. The options are
    walked as Redis parses them, so an earlier option's error still comes first (from the
    read handler)."""
    handler = READ_COMMANDS[b"sort_ro"]
    acl = c.hub.acl
    if acl.unrestricted(c.user):
        return handler(c, argv)
    spec = c.hub.table.get(b"sort_ro")
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
