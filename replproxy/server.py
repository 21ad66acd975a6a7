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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from replproxy.info import info_text
from replproxy.keyspace.digest import DigestUnavailable, digest, digest_value
from replproxy.keyspace.util import now_ms
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


Handler = Callable[["RespServer", Client, list[bytes]], bytes]


@dataclass(frozen=True)
class Command:
    name: str
    arity: int  # Redis convention: n = exactly n args incl. name, -n = at least n
    handler: Handler


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
    up = relay.config.upstream
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


def _read_string(srv: RespServer, c: Client, key: bytes) -> bytes | Exception | None:
    ks = srv.relay.keyspace
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
    if isinstance(v, Exception):
        return WRONGTYPE
    return reply.null(c.proto) if v is None else reply.bulk(v)


def cmd_mget(srv: RespServer, c: Client, argv: list[bytes]) -> bytes:
    out = []
    for key in argv[1:]:
        v = _read_string(srv, c, key)
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


COMMANDS: dict[bytes, Command] = {
    c.name.encode(): c
    for c in [
        Command("ping", -1, cmd_ping),
        Command("echo", 2, cmd_echo),
        Command("quit", -1, cmd_quit),
        Command("info", -1, cmd_info),
        Command("role", 1, cmd_role),
        Command("dbsize", 1, cmd_dbsize),
        Command("client", -2, cmd_client),
        Command("select", 2, cmd_select),
        Command("get", 2, cmd_get),
        Command("mget", -2, cmd_mget),
        Command("debug", -2, cmd_debug),
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

    def dispatch(self, client: Client, argv: list[bytes]) -> bytes:
        self.relay.total_commands += 1
        cmd = COMMANDS.get(argv[0].lower())
        if cmd is None:
            return unknown_command(argv)
        if not _arity_ok(cmd, len(argv)):
            return reply.error(f"ERR wrong number of arguments for '{cmd.name}' command".encode())
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
                                out.append(self.dispatch(client, argv))
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
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self.handle, listeners)
            task_status.started(listeners)


def _peer(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"
