"""The master side of Redis replication, sans-I/O: what replproxy answers a downstream replica.

This module owns the byte-level decisions a master makes for one replica connection, as
`replconfCommand`, `syncCommand`, `masterTryPartialResynchronization` and
`replicationSetupSlaveForFullResync` make them in Redis's `src/replication.c`:

- the handshake (`REPLCONF listening-port|ip-address|capa|rdb-only|rdb-filter-only|version`),
  recorded in a `ReplicaHandshake` and answered `+OK` (unknown capas are ignored, so a replica
  offering Valkey's `dual-channel` or Redis 8's `rdb-channel-repl` falls back to the classic
  sync);
- the PSYNC decision (`decide`): continue from the backlog, or a full resync;
- the lines and framing that follow (`+CONTINUE`, `+FULLRESYNC`, `$<len>`, `$EOF:<mark>`);
- once the connection is a replica, what it sends us (`ReplicaInput`: `REPLCONF ACK <offset>
  [FACK <aofoffset>]`, never answered; `\n` keep-alives while it loads).

It does no I/O, reads no clock (`now` is passed in) and owns no replication state: the replid,
offsets and backlog are `Replication`'s, seen here through a `History` snapshot of them.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from replproxy.resp import reply
from replproxy.resp.request import RequestParser, string2ll

if TYPE_CHECKING:
    from replproxy.replication import Replication

EOF_MARK_SIZE = 40  # CONFIG_RUN_ID_SIZE: the `$EOF:` delimiter's length
NET_HOST_STR_LEN = 256  # longest `REPLCONF ip-address` accepted (server.h)

OK = reply.simple_string(b"OK")
SYNTAX_ERROR = reply.error(b"ERR syntax error")
NOT_AN_INTEGER = reply.error(b"ERR value is not an integer or out of range")
# `addReplyError(c, "-NOMASTERLINK ...")`: the leading dash makes it the error code.
NOMASTERLINK = reply.error(b"NOMASTERLINK Can't SYNC while not connected with my master")
FILTER_NEEDS_EOF = reply.error(b"ERR Filtered replica requires EOF capability")


# ---- the handshake ----


@dataclass(frozen=True)
class RdbFilter:
    """`REPLCONF rdb-filter-only`: the snapshot keeps only what is listed (never the keys)."""

    functions: bool


@dataclass
class ReplicaHandshake:
    """What a replica told us before SYNC/PSYNC (Redis keeps it on the client)."""

    listening_port: int = 0
    ip_address: str | None = None
    capa_eof: bool = False
    capa_psync2: bool = False
    rdb_only: bool = False
    rdb_filter: RdbFilter | None = None
    version: str | None = None  # Valkey 8+ replicas send `REPLCONF version <x.y.z>`


def replconf(hs: ReplicaHandshake, argv: list[bytes]) -> bytes:
    """Answer one `REPLCONF` from a client that is not (yet) a replica; b"" means no reply.

    Exactly `replconfCommand`: options are applied in order up to the first bad one (whose
    error is the reply); `ack`/`getack` from a non-replica are silently ignored.
    """
    if len(argv) % 2 == 0:
        return SYNTAX_ERROR
    for j in range(1, len(argv), 2):
        opt, value = argv[j].lower(), argv[j + 1]
        if opt == b"listening-port":
            port = string2ll(value)
            if port is None:
                return NOT_AN_INTEGER
            hs.listening_port = port
        elif opt == b"ip-address":
            if len(value) >= NET_HOST_STR_LEN:
                return reply.error(
                    b"ERR REPLCONF ip-address provided by replica instance is too long: "
                    b"%d bytes" % len(value)
                )
            hs.ip_address = value.decode("utf-8", "replace")
        elif opt == b"capa":
            capa = value.lower()
            if capa == b"eof":
                hs.capa_eof = True
            elif capa == b"psync2":
                hs.capa_psync2 = True
        elif opt in (b"ack", b"getack"):
            return b""  # not a replica yet: nothing to record, and never a reply
        elif opt == b"rdb-only":
            flag = string2ll(value)
            if flag is None:
                return NOT_AN_INTEGER
            if not 0 <= flag <= 1:
                return reply.error(b"ERR value is out of range, value must between 0 and 1")
            hs.rdb_only = flag == 1
        elif opt == b"rdb-filter-only":
            try:
                filters = shlex.split(value.decode("utf-8", "replace"))
            except ValueError:
                return reply.error(b"ERR Missing rdb-filter-only values")
            for f in filters:
                if f.lower() != "functions":
                    return reply.error(f"ERR Unsupported rdb-filter-only option: {f}".encode())
            hs.rdb_filter = RdbFilter(functions=bool(filters))
        elif opt == b"version":
            hs.version = value.decode("ascii", "replace")
        else:
            name = argv[j].decode("utf-8", "replace")
            return reply.error(f"ERR Unrecognized REPLCONF option: {name}".encode())
    return OK


# ---- SYNC / PSYNC ----


@dataclass(frozen=True)
class SyncRequest:
    """A parsed `SYNC` or `PSYNC <replid> <offset>` (offset: the first byte the replica lacks)."""

    psync: bool
    replid: str = "?"
    offset: int = -1

    @property
    def forced_full(self) -> bool:
        """`PSYNC ? -1` asks for a full sync on purpose: not a failed partial resync."""
        return self.replid.startswith("?")


def parse_sync(argv: list[bytes]) -> SyncRequest | bytes:
    """The request, or the error reply (Redis replies before any sync state changes)."""
    if argv[0].lower() == b"sync":
        if len(argv) != 1:
            return reply.error(b"ERR wrong number of arguments for 'sync' command")
        return SyncRequest(psync=False)
    if len(argv) < 3:
        return reply.error(b"ERR wrong number of arguments for 'psync' command")
    offset = string2ll(argv[2])
    if offset is None:
        return NOT_AN_INTEGER
    return SyncRequest(True, argv[1].decode("utf-8", "replace"), offset)


@dataclass(frozen=True)
class History:
    """The replication position a PSYNC is judged against (a copy of `Replication`'s state)."""

    replid: str
    replid2: str
    second_replid_offset: int
    backlog_first_byte: int
    backlog_histlen: int

    @classmethod
    def of(cls, repl: Replication) -> History:
        b = repl.backlog
        return cls(
            repl.replid,
            repl.replid2,
            repl.second_replid_offset,
            b.servable_first_byte_offset,
            b.servable_histlen,
        )


FullReason = Literal["requested", "replid", "replid2-offset", "backlog"]


@dataclass(frozen=True)
class Continue:
    """Partial resync accepted: send `line`, then the stream from `offset`."""

    offset: int
    line: bytes


@dataclass(frozen=True)
class NeedFullResync:
    """Partial resync refused; `counts_as_error` feeds `sync_partial_err`."""

    reason: FullReason
    message: str

    @property
    def counts_as_error(self) -> bool:
        return self.reason != "requested"


def decide(req: SyncRequest, hist: History, capa_psync2: bool) -> Continue | NeedFullResync:
    """`masterTryPartialResynchronization`: continue when the id and the backlog allow it.

    Continue only if (1) the id is ours, or our previous one and the offset is not past the
    point where the histories diverged (`second_replid_offset`), and (2) the backlog holds
    every byte from `offset` on: `first_byte <= offset <= first_byte + histlen` (the upper
    bound is the next byte to be produced: a replica fully caught up gets zero bytes). The
    ids compare case-insensitively (`strcasecmp`).
    """
    if not req.psync:
        return NeedFullResync("requested", "SYNC: an old-protocol replica")
    rid, offset = req.replid.lower(), req.offset
    if rid != hist.replid.lower() and (
        rid != hist.replid2.lower() or offset > hist.second_replid_offset
    ):
        if req.forced_full:
            return NeedFullResync("requested", "Full resync requested by replica")
        if rid not in (hist.replid.lower(), hist.replid2.lower()):
            return NeedFullResync(
                "replid",
                "Partial resynchronization not accepted: Replication ID mismatch (Replica "
                f"asked for '{req.replid}', my replication IDs are '{hist.replid}' and "
                f"'{hist.replid2}')",
            )
        return NeedFullResync(
            "replid2-offset",
            "Partial resynchronization not accepted: Requested offset for second ID was "
            f"{offset}, but I can reply up to {hist.second_replid_offset}",
        )
    first = hist.backlog_first_byte
    if not first <= offset <= first + hist.backlog_histlen:
        return NeedFullResync(
            "backlog",
            f"Unable to partial resync with replica for lack of backlog (Replica request was: "
            f"{offset}; backlog holds {first}..{first + hist.backlog_histlen - 1})",
        )
    return Continue(offset, continue_line(hist.replid, capa_psync2))


def continue_line(replid: str, capa_psync2: bool) -> bytes:
    """`+CONTINUE <replid>`, or a bare `+CONTINUE` to a replica that cannot change ids."""
    return f"+CONTINUE {replid}\r\n".encode() if capa_psync2 else b"+CONTINUE\r\n"


def fullresync_line(replid: str, offset: int) -> bytes:
    """`+FULLRESYNC <replid> <offset>`: `offset` is the last stream byte the snapshot holds."""
    return f"+FULLRESYNC {replid} {offset}\r\n".encode()


def new_eof_mark() -> bytes:
    """40 random chars delimiting a `$EOF:` payload (Redis uses 40 random hex-ish bytes)."""
    return os.urandom(EOF_MARK_SIZE // 2).hex().encode()


def bulk_header(size: int) -> bytes:
    """Disk form: `$<len>\\r\\n`, then exactly `len` bytes and no trailing CRLF."""
    return b"$%d\r\n" % size


def eof_header(mark: bytes) -> bytes:
    """Diskless form: `$EOF:<mark>\\r\\n`, then the RDB, then the mark itself."""
    return b"$EOF:" + mark + b"\r\n"


# ---- a replica's input once it is one ----


@dataclass(frozen=True, slots=True)
class Ack:
    """`REPLCONF ACK <offset> [FACK <aofoffset>]`: the replica applied up to `offset`."""

    offset: int
    fack: int | None = None


class ReplicaInput:
    """Parses what a replica sends after SYNC/PSYNC: ACKs count, everything else is ignored.

    Redis never writes a reply to a replica client (`prepareClientToWrite` refuses), so
    commands other than `REPLCONF ACK` produce nothing. `\\n` keep-alives a replica sends
    while loading are empty inline commands: dropped by the parser. An ACK only ever raises
    the recorded offset (`if (offset > c->repl_ack_off)`).
    """

    def __init__(self, parser: RequestParser | None = None) -> None:
        self.parser = parser or RequestParser()
        self.ack_offset = 0
        self.aof_offset = 0
        self.acks = 0  # ACKs received (the first one releases a `$EOF:` replica's stream)

    def receive_data(self, data: bytes) -> list[Ack]:
        """Feed bytes; return the ACKs they completed, in order. Raises the parser's errors."""
        self.parser.feed(data)
        return self.process(self.parser.next_requests())

    def process(self, requests: list[list[bytes]]) -> list[Ack]:
        out: list[Ack] = []
        for argv in requests:
            if len(argv) < 3 or argv[0].lower() != b"replconf" or argv[1].lower() != b"ack":
                continue
            offset = string2ll(argv[2])
            if offset is None:
                continue  # `getLongLongFromObject` failed: silently ignored
            fack = None
            if len(argv) >= 5 and argv[3].lower() == b"fack":
                fack = string2ll(argv[4])
                if fack is None:
                    continue
                self.aof_offset = max(self.aof_offset, fack)
            self.ack_offset = max(self.ack_offset, offset)
            self.acks += 1
            out.append(Ack(offset, fack))
        return out
