"""The replica side of Redis replication, as a sans-I/O state machine.

This module owns the byte-level conversation with the master on ONE connection: the
handshake (`syncWithMaster`), the PSYNC reply (`slaveTryPartialResynchronization`), the
snapshot framing (`readSyncBulkPayload`: `$<len>` and `$EOF:<mark>`) and, once online, the
splitting of the command stream. It does no I/O and reads no clock: the driver feeds it bytes
(`receive_data`), takes the bytes it must send (`data_to_send`) and acts on its events
(`next_events`). It does not own offsets or replid: it is told what to PSYNC with, and reports
what the master said. Timeouts, reconnects and loading are the driver's business.

A connection's life:

    CONNECT --initiate()--> RECEIVE_PONG --> HANDSHAKE (AUTH, REPLCONF replies, in order)
      --> RECEIVE_PSYNC --+CONTINUE--> CONNECTED (stream)
                          +FULLRESYNC / SYNC fallback --> TRANSFER_WAIT_BULK --> TRANSFER
                            --> LOADING (driver loads; calls snapshot_loaded()) --> CONNECTED
    any fatal reply or framing error --> CLOSED (a LinkError event says why)

The master is not trusted blindly: a reply that does not fit the state it arrives in is a
protocol error that ends the connection (a PING reply that is neither `+...` nor an auth
error, a handshake reply that is neither `+` nor `-`, `+CONTINUE` to `PSYNC ? -1`, a
snapshot header that is not `$<len>`/`$EOF:<mark>`), and so is an inline or malformed command
in the stream (`processInlineBuffer` / `processMultibulkBuffer` for a master client): the
commands before it are handed out, the bad one never is. Every byte of the master's quoted in
a message goes through `quote_master_bytes` (escaped, cut short).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from replproxy.resp.quote import quote_master_bytes
from replproxy.resp.request import encode_command as _encode_argv
from replproxy.resp.stream import StreamCommand, StreamProtocolError, StreamSplitter

EOF_MARK_SIZE = 40  # CONFIG_RUN_ID_SIZE
MAX_LINE = 64 * 1024  # a handshake reply longer than this is not a Redis master talking


class LinkState(enum.Enum):
    CONNECT = "connect"
    RECEIVE_PONG = "receive_pong"
    HANDSHAKE = "handshake"
    RECEIVE_PSYNC = "receive_psync"
    TRANSFER_WAIT_BULK = "transfer_wait_bulk"
    TRANSFER = "transfer"
    LOADING = "loading"
    CONNECTED = "connected"
    CLOSED = "closed"

    @property
    def role_state(self) -> str:
        """The state word ROLE shows for a replica (`replstateToString`)."""
        return _ROLE_STATES[self]


_ROLE_STATES = {
    LinkState.CONNECT: "connect",
    LinkState.RECEIVE_PONG: "handshake",
    LinkState.HANDSHAKE: "handshake",
    LinkState.RECEIVE_PSYNC: "handshake",
    LinkState.TRANSFER_WAIT_BULK: "sync",
    LinkState.TRANSFER: "sync",
    LinkState.LOADING: "sync",
    LinkState.CONNECTED: "connected",
    LinkState.CLOSED: "connect",
}


@dataclass(frozen=True)
class LinkConfig:
    listening_port: int
    announce_ip: str | None = None
    username: str | None = None  # ACL user (masteruser); needs a password
    password: str | None = None  # masterauth


# ---- events ----


@dataclass(frozen=True, slots=True)
class LinkLog:
    """Something worth a log line that does not end the connection."""

    message: str


@dataclass(frozen=True, slots=True)
class LinkError:
    """The connection is finished. `retry_later` marks `-LOADING`/`-NOMASTERLINK`-type refusals."""

    reason: str
    retry_later: bool = False
    auth: bool = False  # the master refused our credentials


@dataclass(frozen=True, slots=True)
class FullResync:
    """`+FULLRESYNC <replid> <offset>`; replid None after a plain `SYNC` (pre-PSYNC master)."""

    replid: str | None
    offset: int


@dataclass(frozen=True, slots=True)
class SnapshotBegin:
    size: int | None  # None: diskless `$EOF:` transfer of unknown size


@dataclass(frozen=True, slots=True)
class SnapshotData:
    data: bytes


@dataclass(frozen=True, slots=True)
class SnapshotEnd:
    pass


@dataclass(frozen=True, slots=True)
class PartialResync:
    """`+CONTINUE [replid]`; replid None from masters older than PSYNC2."""

    replid: str | None


@dataclass(frozen=True, slots=True)
class Commands:
    commands: list[StreamCommand]


LinkEvent = (
    LinkLog
    | LinkError
    | FullResync
    | SnapshotBegin
    | SnapshotData
    | SnapshotEnd
    | PartialResync
    | Commands
)


def encode_command(*args: str | bytes | int) -> bytes:
    """A command as the master expects it (multibulk), from mixed str/bytes/int arguments."""
    return _encode_argv([a if isinstance(a, bytes) else str(a).encode() for a in args])


class ReplicaLink:
    """One connection to the master, from the first PING to the streaming phase."""

    def __init__(self, config: LinkConfig, psync_replid: str = "?", psync_offset: int = -1):
        self.config = config
        self.psync_replid = psync_replid
        self.psync_offset = psync_offset
        self.state = LinkState.CONNECT
        self._in = bytearray()
        self._out: list[bytes] = []
        self._events: list[LinkEvent] = []
        self._pending_replies: list[str] = []  # what each awaited handshake reply answers
        self._transfer_left = 0  # disk form: payload bytes still to come
        self._eof_mark: bytes | None = None
        self._tail = b""  # diskless: the last EOF_MARK_SIZE bytes seen, held back
        self._stream_offset = 0  # offset of the last byte before the stream we will receive
        self._splitter: StreamSplitter | None = None
        self.transfer_read = 0
        self.transfer_size: int | None = None
        self.used_sync_fallback = False

    # ---- driver API ----

    def initiate(self) -> None:
        """The TCP connection is up: start the handshake."""
        self._expect(LinkState.CONNECT)
        self._out.append(b"PING\r\n")
        self.state = LinkState.RECEIVE_PONG

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def next_events(self) -> list[LinkEvent]:
        ev = self._events
        self._events = []
        return ev

    def receive_data(self, data: bytes) -> None:
        if self.state is LinkState.CLOSED or not data:
            return
        if self.state is LinkState.CONNECTED:
            self._feed_stream(data)
            return
        self._in += data
        self._advance()

    def snapshot_loaded(self) -> None:
        """The driver loaded the snapshot: go online and ACK at once.

        With a diskless transfer the master sends nothing after the EOF mark until this first
        ACK (`replicaPutOnline` waits for it), so it must not wait for the once-a-second timer.
        """
        self._expect(LinkState.LOADING)
        self.state = LinkState.CONNECTED
        self._splitter = StreamSplitter(self._stream_offset, merge_sets=True)
        self.send_ack(self._stream_offset)
        rest = bytes(self._in)
        self._in.clear()
        if rest:
            self._feed_stream(rest)

    def send_ack(self, offset: int) -> None:
        if self.state is LinkState.CONNECTED:
            self._out.append(encode_command("REPLCONF", "ACK", offset))

    def send_loading_keepalive(self) -> None:
        """A `\\n` to the master while we load, so it sees us alive.

        As `replicationSendNewlineToMaster` does from Redis's loading progress callback.
        """
        if self.state in (LinkState.TRANSFER, LinkState.LOADING):
            self._out.append(b"\n")

    @property
    def stream_offset(self) -> int:
        """Offset of the last stream byte split into a complete command so far."""
        return self._splitter.offset if self._splitter else self._stream_offset

    # ---- internals ----

    def _expect(self, state: LinkState) -> None:
        if self.state is not state:
            raise RuntimeError(f"link is {self.state.value}, expected {state.value}")

    def _fail(self, reason: str, retry_later: bool = False, auth: bool = False) -> None:
        self.state = LinkState.CLOSED
        self._events.append(LinkError(reason, retry_later, auth))

    def _read_line(self) -> bytes | None:
        """One reply line without its terminator, or None when incomplete.

        Like `connSyncReadLine`, a line ends at `\\n` and a trailing `\\r` is dropped, so a bare
        `\\n` keep-alive reads as the empty line.
        """
        nl = self._in.find(b"\n")
        if nl < 0:
            if len(self._in) > MAX_LINE:
                self._fail(
                    f"reply line from master longer than {MAX_LINE} bytes: "
                    f"{quote_master_bytes(self._in)}"
                )
            return None
        line = bytes(self._in[:nl])
        del self._in[: nl + 1]
        if line.endswith(b"\r"):
            line = line[:-1]
        return line

    def _advance(self) -> None:
        while self.state is not LinkState.CLOSED:
            before = (self.state, len(self._in))
            if self.state is LinkState.RECEIVE_PONG:
                self._on_pong()
            elif self.state is LinkState.HANDSHAKE:
                self._on_handshake_reply()
            elif self.state is LinkState.RECEIVE_PSYNC:
                self._on_psync_reply()
            elif self.state is LinkState.TRANSFER_WAIT_BULK:
                self._on_bulk_header()
            elif self.state is LinkState.TRANSFER:
                self._on_payload()
            else:
                return
            if (self.state, len(self._in)) == before:
                return  # needs more bytes

    def _on_pong(self) -> None:
        line = self._read_line()
        if line is None:
            return
        # `syncWithMaster` accepts a status reply (+PONG) or an auth error: a master with
        # requirepass answers PING with -NOAUTH (-NOPERM for an ACL user); AUTH comes next.
        # Anything else (another error, a bulk, garbage, a blank line) is not a master.
        if line.startswith(b"-"):
            if not line[1:].startswith((b"NOAUTH", b"NOPERM", b"ERR operation not permitted")):
                self._fail(f"Error reply to PING from master: {quote_master_bytes(line)}")
                return
        elif not line.startswith(b"+"):
            self._fail(f"Unexpected reply to PING from master: {quote_master_bytes(line)}")
            return
        cfg = self.config
        if cfg.password is not None:
            if cfg.username:
                self._out.append(encode_command("AUTH", cfg.username, cfg.password))
            else:
                self._out.append(encode_command("AUTH", cfg.password))
            self._pending_replies.append("auth")
        self._out.append(encode_command("REPLCONF", "listening-port", cfg.listening_port))
        self._pending_replies.append("listening-port")
        if cfg.announce_ip:
            self._out.append(encode_command("REPLCONF", "ip-address", cfg.announce_ip))
            self._pending_replies.append("ip-address")
        self._out.append(encode_command("REPLCONF", "capa", "eof", "capa", "psync2"))
        self._pending_replies.append("capa")
        self.state = LinkState.HANDSHAKE

    def _on_handshake_reply(self) -> None:
        line = self._read_line()
        if line is None:
            return
        what = self._pending_replies.pop(0)
        if line.startswith(b"-"):
            if what == "auth":
                self._fail(f"Unable to AUTH to MASTER: {quote_master_bytes(line)}", auth=True)
                return
            # Errors to REPLCONF are not critical (`syncWithMaster` logs and goes on).
            self._events.append(
                LinkLog(
                    f"(Non critical) Master does not understand REPLCONF {what}: "
                    f"{quote_master_bytes(line)}"
                )
            )
        elif not line.startswith(b"+"):
            # AUTH and REPLCONF answer +OK or an error; anything else (a blank line, a bulk,
            # garbage) means the replies are out of step with our commands.
            name = "AUTH" if what == "auth" else f"REPLCONF {what}"
            self._fail(f"Unexpected reply to {name} from master: {quote_master_bytes(line)}")
            return
        if not self._pending_replies:
            # PSYNC only after every earlier reply was read: a master refuses it with
            # "-ERR SYNC and PSYNC are invalid with pending output" otherwise.
            self._out.append(encode_command("PSYNC", self.psync_replid, self.psync_offset))
            self.state = LinkState.RECEIVE_PSYNC

    def _on_psync_reply(self) -> None:
        line = self._read_line()
        if line is None:
            return
        if line == b"":
            return  # keep-alive newline while the master prepares the snapshot
        if line.startswith(b"+FULLRESYNC"):
            parts = line.split(b" ")
            replid: str | None = None
            offset = -1
            if (
                len(parts) == 3
                and _is_replid(parts[1])
                and _is_int(parts[2])
                and int(parts[2]) >= 0
            ):
                replid, offset = parts[1].decode(), int(parts[2])
            else:
                # As Redis: go on with the full sync but with no history to PSYNC from later.
                self._events.append(
                    LinkLog(
                        f"Master replied with wrong +FULLRESYNC syntax: {quote_master_bytes(line)}"
                    )
                )
            self._events.append(FullResync(replid, offset))
            self._stream_offset = max(offset, 0)
            self.state = LinkState.TRANSFER_WAIT_BULK
        elif line.startswith(b"+CONTINUE"):
            if self.psync_offset < 1 or self.psync_replid == "?":
                # We asked `PSYNC ? -1`: there is no history to continue. Going online here
                # would serve an empty dataset as if it were the master's.
                self._fail(
                    "Protocol error: master answered +CONTINUE to PSYNC ? -1 "
                    f"(a full resync was asked): {quote_master_bytes(line)}"
                )
                return
            parts = line.split(b" ")
            new_id = parts[1].decode() if len(parts) > 1 and _is_replid(parts[1]) else None
            self._events.append(PartialResync(new_id))
            self._stream_offset = self.psync_offset - 1
            self.state = LinkState.CONNECTED
            self._splitter = StreamSplitter(self._stream_offset, merge_sets=True)
            rest = bytes(self._in)
            self._in.clear()
            if rest:  # stream bytes can follow the +CONTINUE line in the same packet
                self._feed_stream(rest)
        elif line.startswith((b"-NOMASTERLINK", b"-LOADING")):
            self._fail(
                "Master is currently unable to PSYNC but should be in the future: "
                f"{quote_master_bytes(line)}",
                retry_later=True,
            )
        elif line.startswith(b"-"):
            # A master without PSYNC: fall back to the old SYNC (no replid, no offsets).
            self._events.append(
                LinkLog(
                    "Master does not support PSYNC or is in error state (reply: "
                    f"{quote_master_bytes(line)}); falling back to SYNC"
                )
            )
            self.used_sync_fallback = True
            self._out.append(b"SYNC\r\n")
            self._events.append(FullResync(None, -1))
            self._stream_offset = 0
            self.state = LinkState.TRANSFER_WAIT_BULK
        else:
            self._fail(f"Unexpected reply to PSYNC from master: {quote_master_bytes(line)}")

    def _on_bulk_header(self) -> None:
        line = self._read_line()
        if line is None:
            return
        if line == b"":
            return  # keep-alive newline before the payload
        if line.startswith(b"-"):
            self._fail(f"MASTER aborted replication with an error: {quote_master_bytes(line[1:])}")
            return
        if not line.startswith(b"$"):
            self._fail(
                f"Bad protocol from MASTER, the first byte is not '$' (we received "
                f"{quote_master_bytes(line)}), are you sure the host and port are right?"
            )
            return
        if line.startswith(b"$EOF:") and len(line) >= 5 + EOF_MARK_SIZE:
            self._eof_mark = line[5 : 5 + EOF_MARK_SIZE]
            self.transfer_size = None
            self._events.append(SnapshotBegin(None))
        elif _is_int(line[1:]) and int(line[1:]) >= 0:
            self._eof_mark = None
            self._transfer_left = int(line[1:])
            self.transfer_size = self._transfer_left
            self._events.append(SnapshotBegin(self._transfer_left))
        else:
            self._fail(f"Bad snapshot length from MASTER: {quote_master_bytes(line)}")
            return
        self.transfer_read = 0
        self.state = LinkState.TRANSFER
        if self._eof_mark is None and self._transfer_left == 0:
            self._finish_transfer()

    def _on_payload(self) -> None:
        if not self._in:
            return
        if self._eof_mark is None:
            take = min(self._transfer_left, len(self._in))
            chunk = bytes(self._in[:take])
            del self._in[:take]
            self._transfer_left -= take
            self.transfer_read += take
            self._events.append(SnapshotData(chunk))
            if self._transfer_left == 0:
                self._finish_transfer()
            return
        # Diskless: the payload ends with the mark. Hold back the last 40 bytes seen until
        # more arrive, so the mark itself never reaches the snapshot file. The master sends
        # nothing after the mark until our first ACK, so the mark is always at the end.
        mark = self._eof_mark
        data = self._tail + bytes(self._in)
        self._in.clear()
        done = data.endswith(mark)
        keep = EOF_MARK_SIZE if done else min(EOF_MARK_SIZE, len(data))
        body, self._tail = data[: len(data) - keep], data[len(data) - keep :]
        if body:
            self.transfer_read += len(body)
            self._events.append(SnapshotData(body))
        if done:
            self._tail = b""
            self._finish_transfer()

    def _finish_transfer(self) -> None:
        self._events.append(SnapshotEnd())
        self.state = LinkState.LOADING

    def _feed_stream(self, data: bytes) -> None:
        splitter = self._splitter
        assert splitter is not None
        splitter.feed(data)
        try:
            commands = splitter.next_commands()
        except StreamProtocolError as e:
            self._stream_error(e)
            return
        if commands:
            self._events.append(Commands(commands))
        if splitter.error is not None:
            # The commands before the bad one are handed out first (Redis executes them
            # too); the bad one and everything after it never are.
            self._stream_error(splitter.error)

    def _stream_error(self, e: StreamProtocolError) -> None:
        self._fail(
            f"Protocol error from master in the replication stream: "
            f"{quote_master_bytes(e.message, 200, quotes=False)} at offset {e.offset}, "
            f"command {quote_master_bytes(e.data, total=e.size)}"
        )


_INT = re.compile(rb"-?[0-9]+")
_REPLID = re.compile(rb"[0-9a-zA-Z]{40}")


def _is_int(s: bytes) -> bool:
    return _INT.fullmatch(s) is not None


def _is_replid(s: bytes) -> bool:
    return _REPLID.fullmatch(s) is not None
