"""Connection and server commands of the client endpoint (`SERVER_COMMANDS`).

The per-type read commands live with their data types (`replproxy.keyspace.t_*`); these are
the ones about the connection (PING, AUTH, HELLO, CLIENT, SELECT, RESET, QUIT), transactions
(MULTI, EXEC, DISCARD, WATCH), Pub/Sub, and the server (INFO, ROLE, CONFIG GET, COMMAND, TIME,
DBSIZE, persistence, replication). Each answers as a read-only Redis replica of the
upstream's kind and version would; where Redis 7.0 and Valkey 8 differ (texts, CLIENT LIST
fields), the master's dialect (`c.ks.dialect`) picks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from replproxy.commandtable.errors import unknown_subcommand_error
from replproxy.commandtable.replies import command_command
from replproxy.dialect import MasterDialect
from replproxy.downstream.psync import ReplicaHandshake, parse_sync, replconf
from replproxy.errors import SYNTAX
from replproxy.info import info_text, rss_bytes
from replproxy.keyspace.digest import DigestUnavailable, digest, digest_value
from replproxy.keyspace.reads import NOT_INTEGER, ReplyError, arg_long
from replproxy.persistence import SaveError, SaveInProgress
from replproxy.resp import reply
from replproxy.resp.request import string2ll
from replproxy.session.client import ClientSession, ShutdownWait
from replproxy.session.clientinfo import LinkEntry, client_line, link_line
from replproxy.session.registry import Client, command
from replproxy.session.security import authenticate, exec_denied

if TYPE_CHECKING:
    from replproxy.session.hub import SessionHub

log = logging.getLogger("replproxy.session")

OK = reply.OK


def _s(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def _unknown_sub(argv: list[bytes]) -> ReplyError:
    # A subcommand the table knows (dispatch refused the others) that the handler does not
    # serve: ASCII names, short, without NUL or CR/LF.
    return ReplyError(unknown_subcommand_error(argv))


# ---- connection ----


@command("ping")
def cmd_ping(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) > 2:
        raise ReplyError(b"ERR wrong number of arguments for 'ping' command")
    if c.proto == 2 and c.subscribed:
        return b"*2\r\n$4\r\npong\r\n" + reply.bulk(argv[1] if len(argv) == 2 else b"")
    return reply.PONG if len(argv) == 1 else reply.bulk(argv[1])


@command("echo")
def cmd_echo(c: Client, argv: list[bytes]) -> bytes:
    return reply.bulk(argv[1])


@command("quit")
def cmd_quit(c: Client, argv: list[bytes]) -> bytes:
    c.closing = True
    return OK


@command("select")
def cmd_select(c: Client, argv: list[bytes]) -> bytes:
    if c.ks.dialect.before_6_0_commands:
        # 5.0 reads a long ("invalid DB index") and passes it to `selectDb(int)`.
        db = arg_long(argv[1], b"ERR invalid DB index")
        db = (db + 2**31) % 2**32 - 2**31
    else:
        db = arg_long(argv[1])
    if not -(2**31) <= db < 2**31:
        raise ReplyError(NOT_INTEGER)
    if db != 0 and c.hub.cluster is not None:
        raise ReplyError(b"ERR SELECT is not allowed in cluster mode")
    if not 0 <= db < c.ks.databases:
        raise ReplyError(b"ERR DB index is out of range")
    c.db = db
    return OK


@command("auth")
def cmd_auth(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) == 3 and c.ks.dialect.before_6_0_commands and c.hub.acl.aclfile is None:
        # Redis 5.0's AUTH takes a password only; the relay accepts `AUTH user pass` there
        # only when it has users of its own (--aclfile), which no 5.0 replica could have.
        raise ReplyError(b"ERR wrong number of arguments for 'auth' command")
    if len(argv) > 3:
        raise ReplyError(SYNTAX)
    if len(argv) == 2:
        if c.hub.acl.default_user.nopass and c.ks.dialect.before_6_0_commands:
            raise ReplyError(b"ERR Client sent AUTH, but no password is set")
        if c.hub.acl.default_user.nopass:
            raise ReplyError(
                b"ERR AUTH <password> called without any password configured for the default "
                b"user. Are you sure your configuration is correct?"
            )
        authenticate(c, b"default", argv[1], argv[0])
    else:
        authenticate(c, argv[1], argv[2], argv[0])
    return OK


BAD_NAME = b"ERR Client names cannot contain spaces, newlines or special characters."


def _valid_name(name: bytes) -> bool:
    return all(33 <= b <= 126 for b in name)


@command("hello")
def cmd_hello(c: Client, argv: list[bytes]) -> bytes:
    proto = c.proto
    i = 1
    if len(argv) >= 2:
        ver = string2ll(argv[1])
        if ver is None:
            raise ReplyError(b"ERR Protocol version is not an integer or out of range")
        if ver < 2 or ver > 3:
            raise ReplyError(b"NOPROTO unsupported protocol version")
        proto = ver
        i = 2
    setname: bytes | None = None
    auth: tuple[bytes, bytes] | None = None
    while i < len(argv):
        more = len(argv) - i - 1
        opt = argv[i].lower()
        if opt == b"auth" and more >= 2:
            auth = (argv[i + 1], argv[i + 2])
            i += 3
        elif opt == b"setname" and more >= 1:
            setname = argv[i + 1]
            i += 2
        else:
            raise ReplyError(f"ERR Syntax error in HELLO option '{_s(argv[i])}'".encode())
    if auth is not None:
        authenticate(c, *auth, argv[0])
    if not c.authed:
        raise ReplyError(
            b"NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            b"HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
            b"select the RESP protocol version at the same time"
        )
    if setname is not None:
        if not _valid_name(setname):
            raise ReplyError(BAD_NAME)
        c.name = setname
    c.proto = proto
    d = c.ks.dialect
    return b"".join(
        [
            reply.map_len(7, proto),
            reply.bulk(b"server"),
            reply.bulk(d.server.encode()),
            reply.bulk(b"version"),
            reply.bulk(d.version_text.encode()),
            reply.bulk(b"proto"),
            reply.integer(proto),
            reply.bulk(b"id"),
            reply.integer(c.id),
            reply.bulk(b"mode"),
            reply.bulk(b"standalone" if c.hub.cluster is None else b"cluster"),
            reply.bulk(b"role"),
            reply.bulk(b"replica"),
            reply.bulk(b"modules"),
            _module_list(d, proto),
        ]
    )


@command("module|list")
def cmd_module_list(c: Client, argv: list[bytes]) -> bytes:
    return _module_list(c.ks.dialect, c.proto)


def _module_list(d: MasterDialect, proto: int) -> bytes:
    """`addReplyLoadedModules`: a map per module (name, ver, path, args)."""
    out = [reply.array_len(len(d.builtin_modules))]
    for name, ver in d.builtin_modules:
        out += [
            reply.map_len(4, proto),
            reply.bulk(b"name"),
            reply.bulk(name),
            reply.bulk(b"ver"),
            reply.integer(ver),
            reply.bulk(b"path"),
            reply.bulk(b""),
            reply.bulk(b"args"),
            reply.EMPTY_ARRAY,
        ]
    return b"".join(out)


@command("reset")
def cmd_reset(c: Client, argv: list[bytes]) -> bytes:
    """`clearClientConnectionState`: as if the connection were new (but keep it)."""
    hub = c.hub
    c.multi = None
    c.multi_dirty = False
    hub.watches.unwatch(c)
    hub.pubsub.drop_client(c)
    c.db = 0
    c.proto = 2
    c.name = b""
    c.reply_off = False
    c.skip = 0
    c.no_evict = c.no_touch = False
    c.readonly, c.asking = None, False  # `clearClientConnectionState`
    hub.tracking.disable(c)
    hub.monitors.remove(c)
    c.user = b"default"
    c.authed = hub.acl.default_authenticated()
    return b"+RESET\r\n"


@command("readonly", "readwrite")
def cmd_readonly(c: Client, argv: list[bytes]) -> bytes:
    if c.hub.cluster is not None:  # as on a cluster replica (replproxy.cluster)
        c.readonly = argv[0].lower() == b"readonly"
        return OK
    d = c.ks.dialect
    if d.valkey or (d.readwrite_outside_cluster and argv[0].lower() == b"readwrite"):
        return OK  # Valkey accepts both outside cluster mode; Redis < 7.0 READWRITE
    raise ReplyError(b"ERR This instance has cluster support disabled")


@command("wait")
def cmd_wait(c: Client, argv: list[bytes]) -> bytes:
    if c.ks.dialect.valkey:
        raise ReplyError(
            b"ERR WAIT cannot be used with replica instances. Please also note that if a replica "
            b"is configured to be writable (which is not the default) writes to replicas are "
            b"just local and are not propagated."
        )
    raise ReplyError(
        b"ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 "
        b"if a replica is configured to be writable (which is not the default) writes to "
        b"replicas are just local and are not propagated."
    )


# ---- CLIENT ----


def _client_type(raw: bytes) -> bytes:
    """The TYPE of CLIENT LIST / CLIENT KILL, lowercase."""
    kind = raw.lower()
    if kind not in (b"normal", b"master", b"replica", b"slave", b"pubsub", b"primary"):
        raise ReplyError(f"ERR Unknown client type '{_s(raw)}'".encode())
    return kind


def _client_type_matches(c: Client | LinkEntry, kind: bytes) -> bool:
    if isinstance(c, LinkEntry):  # the master link, a downstream replica
        return c.kind == {b"slave": b"replica", b"primary": b"master"}.get(kind, kind)
    if kind == b"normal":
        return not c.subscribed
    if kind == b"pubsub":
        return c.subscribed
    return False


def _everyone(hub: SessionHub) -> list[Client | LinkEntry]:
    """Clients and replication connections, in id order (CLIENT LIST / KILL)."""
    out: list[Client | LinkEntry] = [*hub.clients.values(), *hub.links()]
    out.sort(key=lambda x: x.id)
    return out


def _line(x: Client | LinkEntry, me: Client) -> str:
    return link_line(x, me) if isinstance(x, LinkEntry) else client_line(x, me)


@command("client")
def cmd_client(c: Client, argv: list[bytes]) -> bytes:
    sub = argv[1].lower()
    n = len(argv)
    hub = c.hub
    if sub == b"id" and n == 2:
        return reply.integer(c.id)
    if sub == b"setname" and n == 3:
        if not _valid_name(argv[2]):
            raise ReplyError(BAD_NAME)
        c.name = argv[2]
        return OK
    if sub == b"getname" and n == 2:
        return reply.bulk(c.name) if c.name else reply.null(c.proto)
    if sub == b"setinfo" and n == 4:
        attr = argv[2].lower()
        if attr not in (b"lib-name", b"lib-ver"):
            raise ReplyError(f"ERR Unrecognized option '{_s(argv[2])}'".encode())
        if not _valid_name(argv[3]):
            raise ReplyError(
                f"ERR {_s(attr)} cannot contain spaces, newlines or special characters.".encode()
            )
        if attr == b"lib-name":
            c.lib_name = argv[3]
        else:
            c.lib_ver = argv[3]
        return OK
    if sub == b"info" and n == 2:
        return reply.verbatim(client_line(c, c).encode(), c.proto)
    if sub == b"list":
        chosen = _everyone(hub)
        i = 2
        while i < n:
            opt = argv[i].lower()
            if opt == b"type" and i + 1 < n:
                kind = _client_type(argv[i + 1])
                chosen = [x for x in chosen if _client_type_matches(x, kind)]
                i += 2
            elif opt == b"id" and i + 1 < n:
                ids = []
                for raw in argv[i + 1 :]:
                    v = string2ll(raw)
                    if v is None or v <= 0:
                        raise ReplyError(b"ERR Invalid client ID")
                    ids.append(v)
                chosen = [x for x in chosen if x.id in ids]
                i = n
            else:
                raise ReplyError(SYNTAX)
        text = "".join(_line(x, c) for x in chosen)
        return reply.verbatim(text.encode(), c.proto)
    if sub == b"kill":
        return _client_kill(c, argv)
    if sub in (b"no-evict", b"no-touch") and n == 3:
        mode = argv[2].lower()
        if mode not in (b"on", b"off"):
            raise ReplyError(SYNTAX)
        if sub == b"no-evict":
            c.no_evict = mode == b"on"
        else:
            c.no_touch = mode == b"on"
        return OK
    if sub == b"reply" and n == 3:
        mode = argv[2].lower()
        if mode == b"on":
            c.reply_off = False
            c.skip = 0
            return OK
        if mode == b"off":
            c.reply_off = True
            return b""
        if mode == b"skip":
            c.skip = 2  # this command's (empty) reply and the next one
            return b""
        raise ReplyError(SYNTAX)
    if sub == b"unblock" and n in (3, 4):
        target_id = arg_long(argv[2])
        how = argv[3].lower() if n == 4 else b"timeout"
        if how not in (b"timeout", b"error"):
            raise ReplyError(b"ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
        target = hub.clients.get(target_id)
        if target is None or not target.blocked:
            return reply.integer(0)
        target.unblock = (
            reply.null_array(target.proto)
            if how == b"timeout"
            else reply.error(b"UNBLOCKED client unblocked via CLIENT UNBLOCK")
        )
        target.wakeup()
        return reply.integer(1)
    if sub in (b"pause", b"unpause"):
        # A relay takes no writes from clients; pausing its readers is not offered.
        raise ReplyError(b"ERR replproxy does not support CLIENT PAUSE")
    raise _unknown_sub(argv)


def _client_kill(c: Client, argv: list[bytes]) -> bytes:
    hub = c.hub
    n = len(argv)
    if n == 3:  # old form: CLIENT KILL addr
        for x in _everyone(hub):
            if x.addr == _s(argv[2]):
                _kill(c, x)
                return OK
        raise ReplyError(b"ERR No such client")
    if n % 2:
        raise ReplyError(SYNTAX)
    chosen = _everyone(hub)
    skipme = True
    for i in range(2, n, 2):
        opt, val = argv[i].lower(), argv[i + 1]
        if opt == b"id":
            v = string2ll(val)
            if v is None or v <= 0:
                raise ReplyError(b"ERR client-id should be greater than 0")
            chosen = [x for x in chosen if x.id == v]
        elif opt == b"type":
            kind = _client_type(val)
            chosen = [x for x in chosen if _client_type_matches(x, kind)]
        elif opt == b"addr":
            chosen = [x for x in chosen if x.addr == _s(val)]
        elif opt == b"laddr":
            chosen = [x for x in chosen if x.laddr == _s(val)]
        elif opt == b"user":
            if val not in hub.acl.users:
                raise ReplyError(f"ERR No such user '{_s(val)}'".encode())
            chosen = [x for x in chosen if x.user == val]
        elif opt == b"skipme":
            low = val.lower()
            if low not in (b"yes", b"no"):
                raise ReplyError(SYNTAX)
            skipme = low == b"yes"
        elif opt == b"maxage":
            v = arg_long(val)
            now = time.monotonic()
            chosen = [x for x in chosen if now - x.ctime >= v]
        else:
            raise ReplyError(SYNTAX)
    killed = 0
    for x in chosen:
        if x is c and skipme:
            continue
        _kill(c, x)
        killed += 1
    return reply.integer(killed)


def _kill(me: Client, target: Client | LinkEntry) -> None:
    if isinstance(target, LinkEntry):
        log.info(
            "CLIENT KILL of the %s connection %s from %s",
            target.kind.decode(),
            target.addr,
            me.addr,
        )
        me.hub.control.kill_link(target.info.key)
    elif target is me:
        me.closing = True  # after this reply, as Redis's CLIENT_CLOSE_AFTER_REPLY
    else:
        target.kill(f"CLIENT KILL from {me.addr}")


# ---- transactions ----


@command("multi")
def cmd_multi(c: Client, argv: list[bytes]) -> bytes:
    if c.multi is not None:
        raise ReplyError(b"ERR MULTI calls can not be nested")
    c.used_multi = True
    c.multi = []
    c.multi_dirty = False
    return OK


@command("discard")
def cmd_discard(c: Client, argv: list[bytes]) -> bytes:
    if c.multi is None:
        raise ReplyError(b"ERR DISCARD without MULTI")
    c.multi = None
    c.multi_dirty = False
    c.hub.watches.unwatch(c)
    return OK


@command("exec")
def cmd_exec(c: Client, argv: list[bytes]) -> bytes:
    hub = c.hub
    if c.multi is None:
        raise ReplyError(b"ERR EXEC without MULTI")
    queued, dirty = c.multi, c.multi_dirty
    c.multi = None
    c.multi_dirty = False
    failed = not dirty and hub.watches.watch_failed(c)
    hub.watches.unwatch(c)
    if dirty:
        raise ReplyError(b"EXECABORT Transaction discarded because of previous errors.")
    if failed:
        return reply.null_array(c.proto)
    # All queued commands run now, with no checkpoint in between: nothing from the stream
    # lands inside the transaction. Blocking reads answer at once, as in Redis.
    c.can_block = False
    try:
        replies = [exec_denied(c, e.spec, a) or hub.call(c, e, a) for e, a in queued]
    finally:
        c.can_block = True
    return reply.array(replies)


@command("watch")
def cmd_watch(c: Client, argv: list[bytes]) -> bytes:
    if c.multi is not None:
        raise ReplyError(b"ERR WATCH inside MULTI is not allowed")
    c.hub.watches.watch(c, argv[1:])
    return OK


@command("unwatch")
def cmd_unwatch(c: Client, argv: list[bytes]) -> bytes:
    c.hub.watches.unwatch(c)
    return OK


# ---- Pub/Sub ----


@command("subscribe")
def cmd_subscribe(c: Client, argv: list[bytes]) -> bytes:
    return c.hub.pubsub.subscribe(c, argv[1:])


@command("unsubscribe")
def cmd_unsubscribe(c: Client, argv: list[bytes]) -> bytes:
    return c.hub.pubsub.unsubscribe(c, argv[1:])


@command("ssubscribe")
def cmd_ssubscribe(c: Client, argv: list[bytes]) -> bytes:
    return c.hub.pubsub.subscribe(c, argv[1:], shard=True)


@command("sunsubscribe")
def cmd_sunsubscribe(c: Client, argv: list[bytes]) -> bytes:
    return c.hub.pubsub.unsubscribe(c, argv[1:], shard=True)


@command("psubscribe")
def cmd_psubscribe(c: Client, argv: list[bytes]) -> bytes:
    return c.hub.pubsub.psubscribe(c, argv[1:])


@command("punsubscribe")
def cmd_punsubscribe(c: Client, argv: list[bytes]) -> bytes:
    return c.hub.pubsub.punsubscribe(c, argv[1:])


@command("publish")
def cmd_publish(c: Client, argv: list[bytes]) -> bytes:
    # Not a write: on a replica it reaches the replica's own subscribers only.
    return reply.integer(c.hub.pubsub.publish(argv[1], argv[2]))


@command("spublish")
def cmd_spublish(c: Client, argv: list[bytes]) -> bytes:
    return reply.integer(c.hub.pubsub.spublish(argv[1], argv[2]))


@command("pubsub")
def cmd_pubsub(c: Client, argv: list[bytes]) -> bytes:
    ps = c.hub.pubsub
    sub = argv[1].lower()
    n = len(argv)
    if sub in (b"channels", b"shardchannels") and n in (2, 3):
        names = ps.active_channels(argv[2] if n == 3 else None, shard=sub == b"shardchannels")
        return reply.bulk_array(names, c.proto)
    if sub in (b"numsub", b"shardnumsub"):
        pairs = ps.numsub(argv[2:], shard=sub == b"shardnumsub")
        # An array of name, count pairs even in RESP3 (`pubsubCommand`).
        out = [reply.array_len(2 * len(pairs))]
        for ch, count in pairs:
            out.append(reply.bulk(ch) + reply.integer(count))
        return b"".join(out)
    if sub == b"numpat" and n == 2:
        return reply.integer(ps.numpat())
    raise _unknown_sub(argv)


# ---- server ----


@command("info")
def cmd_info(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) > 2 and not c.ks.dialect.info_multiple_sections:
        raise ReplyError(SYNTAX)
    text = info_text(c.hub.view, [_s(a) for a in argv[1:]])
    return reply.verbatim(text.encode(), c.proto)


@command("lolwut")
def cmd_lolwut(c: Client, argv: list[bytes]) -> bytes:
    """LOLWUT [VERSION v] [art arguments] (`lolwutCommand`): the version line where the
    server prints only that; the generative art (Schotter for 5, the 8-bit skyline for 6,
    Redis 8's poem), drawn with the server's own random numbers, is not reproduced (its
    arguments are checked first, as the art's own command does)."""
    d = c.ks.dialect
    args = argv[1:]
    if not d.lolwut_versions:
        art = 5  # 5.0 draws Schotter whatever it is given
    else:
        v = d.version_text
        if len(argv) >= 3 and argv[1].lower() == b"version":
            v = f"{arg_long(argv[2]) & 0xFFFFFFFF}.0.0"  # `snprintf("%u.0.0", ver)`
            args = argv[3:]
        art = int(v[0]) if v[1:2] == "." and v[0] in "568" else 0
        if art == 8 and not d.lolwut_poem:
            art = 0  # no poem before Redis 8 (nor on Valkey)
    if art:
        for a in args[: 3 if art == 5 else 2 if art == 6 else 0]:
            arg_long(a)
        raise ReplyError(b"ERR replproxy does not support the 'lolwut' command")
    return reply.verbatim(b"Redis ver. %b\n" % d.version_text.encode(), c.proto)


@command("role")
def cmd_role(c: Client, argv: list[bytes]) -> bytes:
    view = c.hub.view
    up = view.upstream
    return reply.array(
        [
            reply.bulk(b"slave"),
            reply.bulk(up.host.encode()),
            reply.integer(up.port),
            reply.bulk(view.link_status.state.role_state.encode()),
            reply.integer(view.replication.repl_offset),
        ]
    )


@command("time")
def cmd_time(c: Client, argv: list[bytes]) -> bytes:
    now = time.time_ns() // 1000
    return reply.bulk_array([b"%d" % (now // 1_000_000), b"%d" % (now % 1_000_000)])


@command("dbsize")
def cmd_dbsize(c: Client, argv: list[bytes]) -> bytes:
    return reply.integer(c.ks.dbsize(c.db))


@command("lastsave")
def cmd_lastsave(c: Client, argv: list[bytes]) -> bytes:
    return reply.integer(int(c.hub.view.persistence.lastsave))


@command("post", "host:")
def cmd_security_warning(c: Client, argv: list[bytes]) -> bytes:
    """`securityWarningCommand`: before Redis 7.0, POST and HOST: are commands of the
    table (7.0 catches them as unknown commands, `SessionHub._resolve_error`). Either way
    an HTTP request on the RESP port closes the connection without a reply."""
    log.warning(
        "possible security attack: %r sent to the client port by %s; connection closed",
        argv[0],
        c.addr,
    )
    c.closing = True
    return b""


@command("command")
def cmd_command(c: Client, argv: list[bytes]) -> bytes:
    return command_command(c.hub.table, argv, c.proto)


@command("memory|doctor")
def cmd_memory_doctor(c: Client, argv: list[bytes]) -> bytes:
    return reply.verbatim(
        b"Hi Sam, I can't find any memory issue in your instance. I can only account for what "
        b"occurs on this base.\n",
        c.proto,
    )


@command("memory|malloc-stats")
def cmd_memory_malloc_stats(c: Client, argv: list[bytes]) -> bytes:
    # What Redis answers when not built with jemalloc: Python's allocator keeps no such stats.
    return reply.bulk(b"Stats not supported for the current allocator")


@command("memory|stats")
def cmd_memory_stats(c: Client, argv: list[bytes]) -> bytes:
    """MEMORY STATS with the fields the relay can know (RSS stands for allocated memory)."""
    view = c.hub.view
    rss = rss_bytes()
    ks = c.ks
    keys = ks.total_keys()
    out = [reply.map_len(8 + sum(1 for d in ks.dbs if d), c.proto)]
    for name, value in (
        (b"peak.allocated", rss),
        (b"total.allocated", rss),
        (b"replication.backlog", view.replication.backlog.histlen),
        (b"clients.slaves", 0),
        (b"clients.normal", c.hub.clients_out_bytes),
    ):
        out.append(reply.bulk(name) + reply.integer(value))
    for i, d in enumerate(ks.dbs):
        if d:
            out.append(
                reply.bulk(b"db.%d" % i)
                + reply.map_len(2, c.proto)
                + reply.bulk(b"overhead.hashtable.main")
                + reply.integer(len(d) * 8)
                + reply.bulk(b"overhead.hashtable.expires")
                + reply.integer(len(ks.expires[i]) * 8)
            )
    out.append(reply.bulk(b"keys.count") + reply.integer(keys))
    out.append(reply.bulk(b"keys.bytes-per-key") + reply.integer(rss // keys if keys else 0))
    out.append(reply.bulk(b"dataset.bytes") + reply.integer(rss))
    return b"".join(out)


@command("debug")
def cmd_debug(c: Client, argv: list[bytes]) -> bytes:
    ks = c.ks
    sub = argv[1].lower()
    style = ks.dialect.double_style
    try:
        if sub == b"digest" and len(argv) == 2:
            return reply.simple_string(digest(ks, style))
        if sub == b"digest-value":
            return reply.array(
                [reply.simple_string(digest_value(ks, c.db, k, style)) for k in argv[2:]]
            )
    except DigestUnavailable as e:
        raise ReplyError(f"ERR {e}".encode()) from e
    raise ReplyError(b"ERR DEBUG subcommand not supported by replproxy (DIGEST, DIGEST-VALUE)")


# ---- persistence (replproxy.persistence does the work; these are Redis's replies) ----

SAVE_IN_PROGRESS = b"ERR Background save already in progress"


def _start_save(start: Callable[[], object]) -> None:
    try:
        start()
    except SaveInProgress:
        raise ReplyError(SAVE_IN_PROGRESS) from None
    except SaveError:
        raise ReplyError(b"ERR") from None


@command("save")
def cmd_save(c: Client, argv: list[bytes]) -> bytes:
    _start_save(c.hub.control.save)
    return OK


@command("bgsave")
def cmd_bgsave(c: Client, argv: list[bytes]) -> bytes:
    # SCHEDULE only matters when another kind of child runs; replproxy has none.
    if len(argv) > 2 or (len(argv) == 2 and argv[1].lower() != b"schedule"):
        raise ReplyError(SYNTAX)
    _start_save(c.hub.control.bgsave)
    return reply.simple_string(b"Background saving started")


@command("shutdown")
def cmd_shutdown(c: Client, argv: list[bytes]) -> bytes:
    """SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]: the relay's graceful exit (`Relay.shutdown`).

    On success the process exits and the connection closes without a reply, as in Redis.
    """
    save: bool | None = None
    now = force = False
    for arg in argv[1:]:
        word = arg.lower()
        if word in (b"nosave", b"save") and save is None:
            save = word == b"save"
        elif word == b"now":
            now = True
        elif word == b"force":
            force = True
        else:
            raise ReplyError(SYNTAX)
    # The shell runs the relay's shutdown (it must wait for the event loop): on success the
    # connection closes without a reply, else `SHUTDOWN_FAILED` (`shutdown_reply`).
    c.wait = ShutdownWait(save, force, now)
    return b""


SHUTDOWN_FAILED = reply.error(b"ERR Errors trying to SHUTDOWN. Check logs.")


def shutdown_reply(c: ClientSession, ok: bool) -> bytes:
    """What a SHUTDOWN that waited answers: nothing on success (the connection closes)."""
    if ok:
        c.closing = True  # the relay is stopping
        return b""
    return SHUTDOWN_FAILED


# ---- replication ----


@command("replicaof", "slaveof")
def cmd_replicaof(c: Client, argv: list[bytes]) -> bytes:
    """REPLICAOF host port: follow a failover to another master, keeping our history.

    `REPLICAOF NO ONE` would make replproxy a master that takes writes: a relay never does.
    """
    if argv[1].lower() == b"no" and argv[2].lower() == b"one":
        raise ReplyError(
            b"ERR replproxy is a relay and always replicates from a master: "
            b"REPLICAOF NO ONE is not supported"
        )
    port = string2ll(argv[2])
    if port is None or not 0 < port < 65536:
        raise ReplyError(b"ERR Invalid master port")
    host = _s(argv[1])
    if not c.hub.control.repoint(host, port):
        return reply.simple_string(b"OK Already connected to specified master")
    return OK


@command("replconf")
def cmd_replconf(c: Client, argv: list[bytes]) -> bytes:
    if c.replica is None:
        c.replica = ReplicaHandshake()
    return replconf(c.replica, argv)


@command("sync", "psync")
def cmd_sync(c: Client, argv: list[bytes]) -> bytes:
    """SYNC / PSYNC: refuse, or make the connection a replica's (`ClientSession.takeover`)."""
    hs = c.replica or ReplicaHandshake()
    refused = c.hub.downstream.refusal(hs)
    if refused is not None:
        return refused
    req = parse_sync(argv)
    if isinstance(req, bytes):
        return req
    c.takeover = (hs, req)
    return b""
