"""MONITOR: every command the relay runs, as a line per command (`replicationFeedMonitors`).

A monitor client receives, as simple strings, `+<unix s>.<us> [<db> <addr>] "arg" ...` for
every command run after it asked: its own and other clients' commands (`[db ip:port]` of
the client, after the command ran, as `call()` feeds them since Redis 7.0: refused commands
are not shown, EXEC follows the commands it ran), and the master's commands as the stream
applies them (`[db master-ip:port]`, the master's address as the relay's link sees it, as a
replica shows its master client): SELECT, PING, MULTI, the transaction's commands, EXEC,
PUBLISH, every write. Commands flagged `admin` or `skip_monitor` in the master's command
table (CONFIG, CLIENT LIST, REPLCONF, DEBUG...) are never shown; AUTH's and HELLO AUTH's
credentials show as `(redacted)`. Arguments are escaped as `sdscatrepr` does.

A monitor is a normal client (CLIENT LIST flag `O`) that may not read keys ("Replica can't
interact with the keyspace": the hub refuses them); RESET or closing ends it. Lines reach
other monitors through their outbox (`ClientSession.push`); a monitor's own command's line
follows its reply in the same write, as in Redis. This module owns the set of monitors and
the line format; it reads no clock of its own (the wall clock is passed in) and touches no
socket.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from replproxy.commandtable.spec import ResolveError
from replproxy.errors import ReplyError
from replproxy.resp import reply
from replproxy.resp.stream import StreamCommand, StreamSplitter
from replproxy.session.registry import Client, command

if TYPE_CHECKING:
    from replproxy.commandtable.table import CommandTable

REDACTED = b"(redacted)"

# `sdscatrepr`: each byte as it is printed between the quotes.
_REPR = [b"\\x%02x" % b for b in range(256)]
for _i in range(0x20, 0x7F):
    _REPR[_i] = bytes((_i,))
for _c, _e in (
    (b"\\", b"\\\\"),
    (b'"', b'\\"'),
    (b"\n", b"\\n"),
    (b"\r", b"\\r"),
    (b"\t", b"\\t"),
    (b"\a", b"\\a"),
    (b"\b", b"\\b"),
):
    _REPR[_c[0]] = _e
_PLAIN = frozenset(range(0x20, 0x7F)) - {ord("\\"), ord('"')}


def sdscatrepr(arg: bytes) -> bytes:
    """`arg` quoted and escaped as Redis's `sdscatrepr`."""
    if _PLAIN.issuperset(arg):
        return b'"' + arg + b'"'
    return b'"' + b"".join([_REPR[b] for b in arg]) + b'"'


def monitor_line(now: float, db: int, addr: bytes, argv: Sequence[bytes]) -> bytes:
    """One MONITOR line: `+<s>.<us> [<db> <addr>] "arg" "arg"\\r\\n`."""
    us = round(now * 1_000_000)
    return b"+%d.%06d [%d %s] %s\r\n" % (
        us // 1_000_000,
        us % 1_000_000,
        db,
        addr,
        b" ".join([sdscatrepr(a) for a in argv]),
    )


# `SENSITIVE_CONFIG` parameters: CONFIG SET redacts their values (`configSetCommand`).
SENSITIVE_CONFIGS = frozenset([b"masteruser", b"masterauth", b"requirepass"])


def logged_args(name: bytes, argv: list[bytes]) -> list[bytes]:
    """The arguments SLOWLOG and MONITOR keep of a command (`c->original_argv` after
    `redactClientCommandArgument`): AUTH's and HELLO AUTH's credentials, everything after
    ACL SETUSER, and CONFIG SET's values of sensitive parameters are `(redacted)`."""
    base = name.split(b"|", 1)[0]
    if base in (b"auth", b"hello"):
        return redacted(base, argv)
    if base == b"acl" and len(argv) >= 3 and argv[1].lower() == b"setuser":
        return [argv[0], argv[1], *([REDACTED] * (len(argv) - 2))]
    if base == b"config" and len(argv) >= 4 and argv[1].lower() == b"set":
        out = list(argv)
        for i in range(2, len(argv) - 1, 2):
            if argv[i].lower() in SENSITIVE_CONFIGS:
                out[i + 1] = REDACTED
        return out
    return argv


def redacted(name: bytes, argv: list[bytes]) -> list[bytes]:
    """The arguments MONITOR shows for AUTH and HELLO AUTH (`redactClientCommandArgument`):
    the credentials replaced once the command got past its syntax checks."""
    if name == b"auth":
        if len(argv) > 3:
            return argv  # a syntax error, answered before anything is redacted
        return [argv[0], *([REDACTED] * (len(argv) - 1))]
    # hello: the version is parsed first; the options are redacted as they are met.
    out = list(argv)
    i = 1
    if len(argv) >= 2:
        v = argv[1]
        if not (v.isdigit() and v in (b"2", b"3")):
            return out
        i = 2
    while i < len(argv):
        more = len(argv) - 1 - i
        opt = argv[i].lower()
        if opt == b"auth" and more >= 2:
            out[i + 1] = out[i + 2] = REDACTED
            i += 3
        elif opt == b"setname" and more >= 1:
            i += 2
        else:
            break
    return out


class Monitors:
    """The clients in MONITOR mode (`server.monitors`) and what they are fed."""

    def __init__(self, wallclock: Callable[[], float]) -> None:
        self.wallclock = wallclock
        self.clients: dict[int, Client] = {}
        # The master's commands of a transaction not closed yet (shown at its EXEC, after
        # MULTI, as a replica runs them); None outside one.
        self._pending: list[bytes] | None = None
        self._splitter: StreamSplitter | None = None
        # The master's command table, and which command spellings monitors are shown.
        self._table: CommandTable | None = None
        self._shown: dict[bytes, bool] = {}
        # Called with True/False when the first monitor arrives / the last one leaves (the
        # stream's feed is installed only while someone watches).
        self.on_change: Callable[[bool], None] | None = None

    def __bool__(self) -> bool:
        return bool(self.clients)

    def add(self, c: Client) -> None:
        self.clients[c.id] = c
        c.monitor = True
        if len(self.clients) == 1 and self.on_change is not None:
            self.on_change(True)

    def remove(self, c: Client) -> None:
        if self.clients.pop(c.id, None) is not None:
            c.monitor = False
            if not self.clients:
                self._pending = None
                if self.on_change is not None:
                    self.on_change(False)

    def _send(self, line: bytes, me: Client | None = None) -> None:
        for m in list(self.clients.values()):
            # A monitor with CLIENT REPLY OFF/SKIP gets nothing (`prepareClientToWrite`).
            if m is not me and not (m.reply_off or m.skip):
                m.push(line)

    # ---- the relay's clients ----

    def feed_client(self, c: Client, name: bytes, argv: list[bytes], out: bytes) -> bytes:
        """After client `c` ran `argv` (`call()`): the line goes to every monitor; a
        monitor's own line follows its reply, so it is returned appended to `out`."""
        args = logged_args(name, argv)
        line = monitor_line(self.wallclock(), c.db, c.addr.encode(), args)
        self._send(line, c)
        if c.monitor:
            return out + line
        return out

    # ---- the master's stream ----

    def feed_stream(
        self,
        commands: Sequence[StreamCommand],
        db: int,
        in_multi: bool,
        addr: bytes,
        table: CommandTable,
    ) -> None:
        """The master's commands of one batch, before the relay applies them (`db`: the
        stream's DB before the batch; `in_multi`: a transaction is open): each as a
        replica's `call()` shows it once it ran. The batch's lines go to each monitor in one
        push, stamped with the batch's time (the relay applies it at once)."""
        if not in_multi:
            self._pending = None
        if table is not self._table:
            self._table, self._shown = table, {}
        stamp = b"+%d.%06d [" % divmod(round(self.wallclock() * 1_000_000), 1_000_000)
        tail = b" " + addr + b"] "
        out: list[bytes] = []
        for cmd in commands:
            argv = cmd[0]
            if not argv:
                continue
            if cmd[3] > 1:  # a merged run of SETs: the master's own commands, one by one
                for one in self._split(cmd[1]):
                    db = self._stream_command(one, db, stamp, tail, out)
            else:
                db = self._stream_command(argv, db, stamp, tail, out)
        if out:
            self._send(b"".join(out))

    def _stream_command(
        self, argv: list[bytes], db: int, stamp: bytes, tail: bytes, out: list[bytes]
    ) -> int:
        name = argv[0].lower()
        if name == b"select" and len(argv) == 2:
            db = _db(argv[1], db)
        pending = self._pending
        if pending is not None:
            if name == b"exec":
                self._pending = None
                out += pending
                target = out
            else:
                target = pending
        else:
            if name == b"multi":
                self._pending = []
            target = out
        shown = self._shown.get(argv[0])
        if shown is None:
            shown = self._is_shown(argv)
        if shown:
            target.append(
                b"%s%d%s%s\r\n" % (stamp, db, tail, b" ".join([sdscatrepr(a) for a in argv]))
            )
        return db

    def _is_shown(self, argv: list[bytes]) -> bool:
        """Whether a replica's `call()` feeds the command to monitors (not `admin` nor
        `skip_monitor`), remembered by spelling for commands without subcommands."""
        table = self._table
        assert table is not None
        spec = table.resolve(argv)
        if isinstance(spec, ResolveError):
            return False  # a replica refuses it before `call()`
        if table.legacy and spec.container is not None:  # before 7.0: the container's flags
            spec = table.get(spec.container) or spec
        shown = not ("admin" in spec.flags or "skip_monitor" in spec.flags)
        if spec.container is None and len(self._shown) < 1024:
            self._shown[argv[0]] = shown
        return shown

    def _split(self, raw: bytes) -> list[list[bytes]]:
        if self._splitter is None:
            self._splitter = StreamSplitter(0)
        sp = self._splitter
        sp.feed(raw)
        return [c[0] for c in sp.next_commands()]


def _db(raw: bytes, current: int) -> int:
    try:
        return int(raw)
    except ValueError:
        return current


@command("monitor")
def cmd_monitor(c: Client, argv: list[bytes]) -> bytes:
    if not c.can_block:  # inside EXEC: CLIENT_DENY_BLOCKING
        raise ReplyError(b"ERR MONITOR isn't allowed for DENY BLOCKING client")
    if c.monitor:
        return b""  # already monitoring: ignored, without a reply
    c.hub.monitors.add(c)
    return reply.OK
