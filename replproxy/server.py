"""The client RESP endpoint on `--port`: connection handling and command dispatch.

This module owns client connections: reading requests (pipelined, through the sans-I/O
`RequestParser`), per-client state, and writing replies. A malformed request gets
`-ERR Protocol error: ...` and closes that client only; an exception in one connection never
reaches the others. Command semantics live in the command table (`COMMANDS`), not here.

For now the table holds the connection and introspection commands an operator needs to watch
the link (PING, ECHO, INFO, ROLE, DBSIZE, QUIT, CLIENT SETINFO/SETNAME); the full read-only
command set is added by the read path.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from replproxy.downstream.psync import ReplicaHandshake
from replproxy.downstream.server import cmd_replconf, cmd_sync
from replproxy.info import info_text
from replproxy.keyspace.digest import DigestUnavailable, digest, digest_value
from replproxy.keyspace.util import now_ms
from replproxy.persistence import SaveError, SaveInProgress
from replproxy.resp import reply
from replproxy.resp.request import ProtocolError, QueryBufferLimitError, RequestParser, string2ll

if TYPE_CHECKING:
    from replproxy.app import Relay

log = logging.getLogger("replproxy.server")

RECV_SIZE = 64 * 1024


@dataclass
class Client:
    id: int
    addr: str
    db: int = 0
    proto: int = 2
    name: bytes = b""
    closing: bool = False
    # Set by a command that must wait (SHUTDOWN): the connection awaits it for the reply.
    pending: Callable[[], Awaitable[bytes]] | None = None
    # REPLCONF state, then (SYNC/PSYNC) who owns the connection from now on: replproxy.downstream.
    replica: ReplicaHandshake | None = None
    takeover: Callable[[trio.SocketStream, RequestParser], Awaitable[None]] | None = None


Handler = Callable[["RespServer", Client, list[bytes]], bytes]


@dataclass(frozen=True)
class Command:
    name: str
    arity: int  # Redis convention: n = exactly n args incl. name, -n = at least n
    handler: Handler
    # Redis's `loading` flag: allowed while the start-up snapshot loads (else -LOADING).
    ok_loading: bool = False


LOADING = reply.error(b"LOADING Redis is loading the dataset in memory")


def _arity_ok(cmd: Command, argc: int) -> bool:
    return argc == cmd.arity if cmd.arity >= 0 else argc >= -cmd.arity


def cmd_ping(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    if len(argv) > 2:
        return reply.error(b"ERR wrong number of arguments for 'ping' command")
    return reply.simple_string(b"PONG") if len(argv) == 1 else reply.bulk(argv[1])


def cmd_echo(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    return reply.bulk(argv[1])


def cmd_quit(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    c.closing = True
    return reply.simple_string(b"OK")


def cmd_info(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    text = info_text(srv.relay, [a.decode("utf-8", "replace") for a in argv[1:]])
    return reply.verbatim(text.encode(), c.proto)


def cmd_role(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    relay = srv.relay
    up = relay.link.upstream
    st = relay.link.status
    return reply.array(
        [
            reply.bulk(b"slave"),
            reply.bulk(up.host.encode()),
            reply.integer(up.port),
            reply.bulk(st.state.role_state.encode()),
            reply.integer(relay.replication.repl_offset),
        ]
    )


def cmd_dbsize(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    return reply.integer(srv.relay.keyspace.dbsize(c.db))


def cmd_client(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    sub = argv[1].lower()
    if sub == b"setinfo" and len(argv) == 4:
        return reply.simple_string(b"OK")
    if sub == b"setname" and len(argv) == 3:
        c.name = argv[2]
        return reply.simple_string(b"OK")
    if sub == b"getname" and len(argv) == 2:
        return reply.bulk(c.name) if c.name else reply.null(c.proto)
    if sub == b"id" and len(argv) == 2:
        return reply.integer(c.id)
    sub_name = argv[1].decode("utf-8", "replace")
    return reply.error(f"ERR unknown subcommand '{sub_name}'. Try CLIENT HELP.".encode())


def cmd_select(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    db = string2ll(argv[1])
    if db is None:
        return reply.error(b"ERR value is not an integer or out of range")
    if not 0 <= db < srv.relay.keyspace.databases:
        return reply.error(b"ERR DB index is out of range")
    c.db = db
    return reply.simple_string(b"OK")


def unsupported_key_error(key: bytes) -> bytes:
    """The reply for a key whose last write replproxy could not apply: never serve it stale."""
    return reply.error(
        b"ERR replproxy cannot serve key '" + key.replace(b"\r", b" ").replace(b"\n", b" ")
        + b"': a command from the master touching it could not be applied (see the "
        b"replproxy_unsupported_commands_total metric)"
    )


def _read_string(srv: RespServer, c: Client, key: bytes) -> bytes | Exception | None:
    ks = srv.relay.keyspace
    if (c.db, key) in ks.unsupported_keys:
        return LookupError(key)
    value = ks.get(c.db, key)
    if value is None:
        return None
    exp = ks.get_expire(c.db, key)
    if exp is not None and exp <= now_ms():
        return None  # logically expired: a replica hides it until the master's DEL
    if not isinstance(value, bytes):
        return Exception()
    return value


WRONGTYPE = reply.error(b"WRONGTYPE Operation against a key holding the wrong kind of value")


def cmd_get(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    v = _read_string(srv, c, argv[1])
    if isinstance(v, LookupError):
        return unsupported_key_error(argv[1])
    if isinstance(v, Exception):
        return WRONGTYPE
    return reply.null(c.proto) if v is None else reply.bulk(v)


def cmd_mget(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    out = []
    for key in argv[1:]:
        v = _read_string(srv, c, key)
        if isinstance(v, LookupError):
            return unsupported_key_error(key)
        out.append(None if v is None or isinstance(v, Exception) else v)
    return reply.bulk_array(out, c.proto)


def cmd_debug(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    ks = srv.relay.keyspace
    sub = argv[1].lower()
    style = srv.relay.digest_style()
    try:
        if sub == b"digest" and len(argv) == 2:
            return reply.simple_string(digest(ks, style))
        if sub == b"digest-value":
            return reply.array(
                [reply.simple_string(digest_value(ks, c.db, k, style)) for k in argv[2:]]
            )
    except DigestUnavailable as e:
        return reply.error(f"ERR {e}".encode())
    return reply.error(b"ERR DEBUG subcommand not supported by replproxy (DIGEST, DIGEST-VALUE)")


# ---- persistence (replproxy.persistence does the work; these are Redis's replies) ----

SAVE_IN_PROGRESS = reply.error(b"ERR Background save already in progress")
SYNTAX_ERROR = reply.error(b"ERR syntax error")


def cmd_save(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    try:
        srv.relay.persistence.save()
    except SaveInProgress:
        return SAVE_IN_PROGRESS
    except SaveError:
        return reply.error(b"ERR")
    return reply.simple_string(b"OK")


def cmd_bgsave(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    # SCHEDULE only matters when another kind of child runs; replproxy has none.
    if len(argv) > 2 or (len(argv) == 2 and argv[1].lower() != b"schedule"):
        return SYNTAX_ERROR
    try:
        srv.relay.persistence.bgsave()
    except SaveInProgress:
        return SAVE_IN_PROGRESS
    except SaveError:
        return reply.error(b"ERR")
    return reply.simple_string(b"Background saving started")


def cmd_lastsave(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    return reply.integer(int(srv.relay.persistence.lastsave))


def cmd_shutdown(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
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
            return SYNTAX_ERROR
    relay = srv.relay

    async def shutdown() -> bytes:
        await relay.shutdown(save=save, force=force, now=now, reason=f"SHUTDOWN from {c.addr}")
        # Reached only when it failed: on success the relay is stopping.
        return reply.error(b"ERR Errors trying to SHUTDOWN. Check logs.")

    c.pending = shutdown
    return b""


def cmd_replicaof(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    """REPLICAOF host port: follow a failover to another master, keeping our history.

    `REPLICAOF NO ONE` would make replproxy a master that takes writes: a relay never does.
    """
    if argv[1].lower() == b"no" and argv[2].lower() == b"one":
        return reply.error(b"ERR replproxy is a relay and always replicates from a master: "
                           b"REPLICAOF NO ONE is not supported")
    port = string2ll(argv[2])
    if port is None or not 0 < port < 65536:
        return reply.error(b"ERR Invalid master port")
    host = argv[1].decode("utf-8", "replace")
    if not srv.relay.link.repoint(host, port):
        return reply.simple_string(b"OK Already connected to specified master")
    return reply.simple_string(b"OK")


COMMANDS: dict[bytes, Command] = {
    c.name.encode(): c
    for c in [
        Command("ping", -1, cmd_ping),
        Command("echo", 2, cmd_echo),
        Command("quit", -1, cmd_quit, ok_loading=True),
        Command("info", -1, cmd_info, ok_loading=True),
        Command("role", 1, cmd_role, ok_loading=True),
        Command("dbsize", 1, cmd_dbsize),
        Command("client", -2, cmd_client, ok_loading=True),
        Command("select", 2, cmd_select, ok_loading=True),
        Command("get", 2, cmd_get),
        Command("mget", -2, cmd_mget),
        Command("debug", -2, cmd_debug, ok_loading=True),
        Command("save", 1, cmd_save),
        Command("bgsave", -1, cmd_bgsave),
        Command("lastsave", 1, cmd_lastsave, ok_loading=True),
        Command("shutdown", -1, cmd_shutdown, ok_loading=True),
        Command("replconf", -1, cmd_replconf, ok_loading=True),
        Command("sync", 1, cmd_sync),
        Command("psync", -3, cmd_sync),
        Command("replicaof", 3, cmd_replicaof, ok_loading=True),
        Command("slaveof", 3, cmd_replicaof, ok_loading=True),
    ]
}


def unknown_command(argv: list[bytes]) -> bytes:
    args = " ".join(f"'{a.decode('utf-8', 'replace')}'" for a in argv[1:])
    name = argv[0].decode("utf-8", "replace")
    return reply.error(f"ERR unknown command '{name}', with args beginning with: {args}".encode())


class RespServer:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self._next_id = 1
        self._accepting = trio.CancelScope()

    def dispatch(self, client: Client, argv: list[bytes]) -> bytes:
        self.relay.total_commands += 1
        cmd = COMMANDS.get(argv[0].lower())
        if cmd is None:
            return unknown_command(argv)
        if not _arity_ok(cmd, len(argv)):
            return reply.error(f"ERR wrong number of arguments for '{cmd.name}' command".encode())
        if not cmd.ok_loading and self.relay.persistence.loading:
            return LOADING
        return cmd.handler(self, client, argv)

    async def handle(self, stream: trio.SocketStream) -> None:
        relay = self.relay
        client = Client(self._next_id, _peer(stream))
        self._next_id += 1
        relay.connected_clients += 1
        relay.total_connections += 1
        parser = RequestParser()
        try:
            async with stream:
                while not client.closing:
                    data = await stream.receive_some(RECV_SIZE)
                    if not data:
                        return
                    parser.feed(data)
                    out: list[bytes] = []
                    try:
                        for argv in parser.next_requests():
                            if argv:
                                answer = self.dispatch(client, argv)
                                if client.pending is not None:
                                    pending, client.pending = client.pending, None
                                    if out:
                                        await stream.send_all(b"".join(out))
                                        out = []
                                    answer = await pending()
                                out.append(answer)
                                if client.takeover is not None:
                                    # SYNC/PSYNC: the connection is a replica's from here on
                                    # (requests pipelined after it are dropped: a replica
                                    # sends none before the reply). Replicas are not clients.
                                    if data := b"".join(out):
                                        await stream.send_all(data)
                                    relay.connected_clients -= 1
                                    try:
                                        await client.takeover(stream, parser)
                                    finally:
                                        relay.connected_clients += 1
                                    return
                            if client.closing:
                                break
                    except QueryBufferLimitError:
                        log.warning("closing client %s: query buffer limit reached", client.addr)
                        client.closing = True
                    except ProtocolError as e:
                        out.append(e.reply)
                        client.closing = True
                    if out:
                        await stream.send_all(b"".join(out))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        except Exception:  # one client's bug never takes the server down
            log.exception("error serving client %s", client.addr)
        finally:
            relay.connected_clients -= 1

    async def serve(
        self, port: int, host: str, *, task_status: trio.TaskStatus[list[trio.SocketListener]]
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        # Connections live in this nursery, the accept loop in its own scope: stopping
        # accepting (shutdown) closes the listeners and leaves connected clients alone.
        async with trio.open_nursery() as connections:
            connections.start_soon(self._accept, listeners, connections)
            task_status.started(listeners)

    async def _accept(self, listeners: list[trio.SocketListener], nursery: trio.Nursery) -> None:
        with self._accepting:
            await trio.serve_listeners(self.handle, listeners, handler_nursery=nursery)

    def stop_accepting(self) -> None:
        """Close the listening sockets (new clients are refused); connected ones stay."""
        self._accepting.cancel()


def _peer(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"
