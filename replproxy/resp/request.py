"""Client requests: bytes in, argv lists out, exactly as Redis's `processInputBuffer` splits them.

This module owns the request side of RESP: Redis's two request forms (multibulk
`*<n>\\r\\n$<len>...` and inline lines split by `sdssplitargs`), their limits and their
protocol-error texts. It does no I/O and keeps no clock; it never replies - the server writes
`ProtocolError.reply` and closes.

Fidelity (read from `src/networking.c` of Redis 7.0 - 8.0, checked against redis-server 7.0;
Valkey 8.1's differences are `RequestParser` flags):

- `processMultibulkBuffer`: header lines end at the first `\\r` found by `strchr` (so a NUL byte
  hides it: Redis then waits for more input) and the byte after that `\\r` is skipped whatever it
  is; lengths are parsed by `string2ll` (no sign but `-`, no leading zero); the two bytes after a
  bulk are skipped unchecked. A count <= 0 is an empty command, silently ignored.
- `processInlineBuffer`: a line ends at the first `\\n` (again `strchr`), one `\\r` before it is
  dropped, `sdssplitargs` splits it; an empty line or a line of blanks is ignored.
- Limits: an unterminated header or inline line longer than `PROTO_INLINE_MAX_SIZE` (64 KiB, the
  whole unparsed buffer is measured), a count > INT_MAX (7.0+; 1024*1024 in 6.2 and older, see
  `max_multibulk_len`), a bulk length > `proto-max-bulk-len`, and while authentication is
  required a count > 10 or a bulk length > 16384. `client-query-buffer-limit` is checked on each
  read (`feed`) against the unparsed bytes, before they are parsed, as `readQueryFromClient` does;
  Redis closes such a client without a reply, hence a separate `QueryBufferLimitError`.

Speed: `hiredis` parses runs of complete commands in C; it reports no consumed byte count and
accepts a superset of Redis's syntax, so each run is re-encoded canonically (`pack_command`, C)
and compared with the buffer in one `startswith`: a canonical encoding parses the same way in
Redis, so a match proves the result. Anything else - partial commands, inline commands,
non-canonical or invalid input - goes through `_InputScanner`, a byte-exact transcription of
Redis's state machine (which also serves `stream.StreamSplitter`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis

from replproxy.resp.reply import c_speedup

__all__ = [
    "INT_MAX",
    "PROTO_INLINE_MAX_SIZE",
    "ProtocolError",
    "QueryBufferLimitError",
    "RequestError",
    "RequestParser",
    "encode_command",
    "split_args",
    "string2ll",
]

INT_MAX = 2**31 - 1
PROTO_INLINE_MAX_SIZE = 64 * 1024  # server.h
PROTO_MAX_BULK_LEN = 512 * 1024 * 1024  # proto-max-bulk-len default
CLIENT_MAX_QUERYBUF_LEN = 1024 * 1024 * 1024  # client-query-buffer-limit default
_UNAUTH_MAX_MULTIBULK = 10  # processMultibulkBuffer, while authRequired(c)
_UNAUTH_MAX_BULK = 16384

# hiredis's stub types pack_command as taking a 1-tuple
_pack_command = cast(Callable[[tuple[Any, ...]], bytes], hiredis.pack_command)
_HiredisProtocolError = hiredis.ProtocolError


class RequestError(Exception):
    """Base of the errors that end a client connection."""


class ProtocolError(RequestError):
    """Malformed request. `message` is Redis's text after `Protocol error: `."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def reply(self) -> bytes:
        """The exact error line Redis writes before closing the connection.

        The text may hold one raw byte (`expected '$', got '<byte>'`); latin-1 maps it back.
        """
        return b"-ERR Protocol error: " + self.message.encode("latin-1") + b"\r\n"


class QueryBufferLimitError(RequestError):
    """The unparsed input exceeded `client-query-buffer-limit`: Redis closes without a reply."""

    def __init__(self, query_buffer_len: int, limit: int) -> None:
        super().__init__(f"query buffer of {query_buffer_len} bytes exceeds the limit of {limit}")
        self.query_buffer_len = query_buffer_len
        self.limit = limit


def encode_command(argv: Sequence[bytes]) -> bytes:
    """The canonical multibulk encoding of `argv` (what redis-cli and masters send)."""
    return _pack_command(tuple(argv))


# --- Redis's string2ll and sdssplitargs -----------------------------------------------------

_LL_RE = re.compile(rb"0|-?[1-9][0-9]*")
_LLONG_MIN = -(2**63)
_LLONG_MAX = 2**63 - 1


def string2ll(s: bytes | bytearray) -> int | None:
    """`util.c` string2ll: optional `-`, no leading zero, no `+`, no blanks, fits a long long."""
    if not 0 < len(s) < 21 or _LL_RE.fullmatch(s) is None:
        return None
    v = int(s)
    return v if _LLONG_MIN <= v <= _LLONG_MAX else None


_ISSPACE = frozenset(b" \t\n\v\f\r")  # C isspace() in the C locale; bytes >= 0x80 are not
_TOKEN_END = frozenset(b" \n\r\t")  # sdssplitargs ends an unquoted token on these (and NUL)
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = frozenset(b"0123456789abcdefABCDEF")
_NEEDS_SLOW_SPLIT = re.compile(rb"[\"'\v\f\x00]")


def split_args(line: bytes) -> list[bytes] | None:
    """`sds.c` sdssplitargs: None on unbalanced quotes or a closing quote glued to a token.

    The line is a C string: it ends at its first NUL byte (Redis never passes one: the `strchr`
    that finds the end of an inline request stops there too).
    """
    if _NEEDS_SLOW_SPLIT.search(line) is None:
        # Without quotes, \v, \f or NUL, sdssplitargs splits on runs of " \t\n\r" - which is
        # what bytes.split() does when \v and \f are absent.
        return line.split()
    nul = line.find(b"\0")
    if nul >= 0:
        line = line[:nul]
    n = len(line)
    out: list[bytes] = []
    i = 0
    while True:
        while i < n and line[i] in _ISSPACE:
            i += 1
        if i >= n:
            return out
        cur = bytearray()
        inq = insq = False
        while True:
            c = line[i] if i < n else 0
            if inq:
                if (
                    c == 0x5C  # backslash, then x and two hex digits
                    and i + 3 < n
                    and line[i + 1] == 0x78
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    cur.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 0x5C and i + 1 < n:
                    i += 1
                    cur.append(_ESCAPES.get(line[i], line[i]))
                elif c == 0x22:  # closing "
                    if i + 1 < n and line[i + 1] not in _ISSPACE:
                        return None
                    i += 1
                    break
                elif c == 0:
                    return None  # unterminated quotes
                else:
                    cur.append(c)
            elif insq:
                if c == 0x5C and i + 1 < n and line[i + 1] == 0x27:
                    i += 1
                    cur.append(0x27)
                elif c == 0x27:  # closing '
                    if i + 1 < n and line[i + 1] not in _ISSPACE:
                        return None
                    i += 1
                    break
                elif c == 0:
                    return None
                else:
                    cur.append(c)
            else:
                if c == 0 or c in _TOKEN_END:
                    if c:
                        i += 1
                    break
                if c == 0x22:
                    inq = True
                elif c == 0x27:
                    insq = True
                else:
                    cur.append(c)
            i += 1
        out.append(bytes(cur))


# --- the scanner shared with stream.py ------------------------------------------------------

_STAR = 0x2A
_DOLLAR = 0x24
_REQ_NONE, _REQ_INLINE, _REQ_MULTIBULK = 0, 1, 2
# The client read lane (`RequestParser.string_reads`).
_Counts = tuple[int, int, int, int]
_C_STRING_READS = cast(
    Callable[..., tuple[int, bytes, int, int, _Counts, _Counts, int, int]] | None,
    c_speedup("string_reads"),
)

_FAST_ATTEMPTS_PER_CALL = 4  # bounds hiredis re-feeds on pathological (non-canonical) input


# hiredis-py preallocates a list of the announced size for `*`, `~`, `>` and `|` headers (and
# clears it element by element when dropped): `*2000000000` costs seconds and gigabytes before
# a single element arrived. hiredis never sees such a header: the exact scanner takes over there.
_HUGE_STAR = re.compile(rb"\*[0-9]{6}")
_HUGE_AGGREGATE = re.compile(rb"[*~>|][0-9]{6}")


def _huge_aggregate_at(buf: bytearray, pos: int) -> int:
    """Index of the first possible aggregate header of >= 100000 elements (else len(buf))."""
    if buf.find(b"~", pos) >= 0 or buf.find(b">", pos) >= 0 or buf.find(b"|", pos) >= 0:
        m = _HUGE_AGGREGATE.search(buf, pos)
    else:
        m = _HUGE_STAR.search(buf, pos)  # a literal first byte: a much faster search
    return m.start() if m else len(buf)


class _ScanError(Exception):
    """A protocol error at the command starting at `_InputScanner.start`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _InputScanner:
    """Redis's `processInputBuffer` over one growing buffer, one command at a time.

    `buf[start:]` holds the bytes of the command being parsed and beyond; `pos` is Redis's
    `qb_pos`. The owner appends to `buf`, calls `parse_one` / `fast_batch`, and trims the buffer
    with `discard_before`.
    """

    __slots__ = (
        "args",
        "auth_required",
        "buf",
        "bulk_len",
        "master",
        "max_bulk_len",
        "max_inline",
        "max_multibulk_len",
        "mbulk_left",
        "pos",
        "reqtype",
        "start",
        "sticky_blank_inline",
        "strict_crlf",
        "use_hiredis",
    )

    def __init__(
        self,
        *,
        master: bool,
        max_bulk_len: int,
        max_multibulk_len: int,
        max_inline: int,
        use_hiredis: bool,
    ) -> None:
        self.master = master
        self.max_bulk_len = max_bulk_len
        self.max_multibulk_len = max_multibulk_len
        self.max_inline = max_inline
        self.use_hiredis = use_hiredis
        self.auth_required = False
        self.sticky_blank_inline = False
        self.strict_crlf = False
        self.buf = bytearray()
        self.pos = 0
        self.start = 0
        self.reqtype = _REQ_NONE
        self.mbulk_left = 0  # c->multibulklen
        self.bulk_len = -1  # c->bulklen
        self.args: list[bytes] = []

    @property
    def at_boundary(self) -> bool:
        return self.reqtype == _REQ_NONE

    def discard_before(self, index: int) -> None:
        """Forget `buf[:index]` (index <= start, or <= pos when the raw bytes are not needed)."""
        if index:
            del self.buf[:index]  # O(1): CPython moves the start of a bytearray
            self.pos -= index
            self.start -= index

    def _find(self, byte: bytes) -> int:
        """`strchr(querybuf+qb_pos, byte)`: -1 when absent or behind a NUL byte."""
        buf = self.buf
        i = buf.find(byte, self.pos)
        if i > self.pos and buf.find(b"\0", self.pos, i) >= 0:
            return -1
        return i

    def parse_one(self) -> list[bytes] | None:
        """Advance by at most one command: its argv ([] for an ignored empty command), or None
        when more input is needed. Raises _ScanError with Redis's text."""
        if self.reqtype == _REQ_NONE:
            if self.pos >= len(self.buf):
                return None
            self.start = self.pos
            self.reqtype = _REQ_MULTIBULK if self.buf[self.pos] == _STAR else _REQ_INLINE
        if self.reqtype == _REQ_INLINE:
            return self._inline()
        return self._multibulk()

    def _inline(self) -> list[bytes] | None:
        buf, pos = self.buf, self.pos
        nl = self._find(b"\n")
        if nl < 0:
            if len(buf) - pos > self.max_inline:
                raise _ScanError("too big inline request")
            return None
        end = nl - 1 if nl != pos and buf[nl - 1] == 0x0D else nl
        if self.master and end != pos:
            # `processInlineBuffer` for CLIENT_MASTER: a master sends only multibulk commands
            # and bare newlines (keep-alives); anything else is a desynchronized stream.
            raise _ScanError("Master using the inline protocol. Desync?")
        argv = split_args(bytes(buf[pos:end]))
        if argv is None:
            raise _ScanError("unbalanced quotes in request")
        self.pos = nl + 1
        if argv or end == pos or not self.sticky_blank_inline:
            self.reqtype = _REQ_NONE
        return argv

    def _multibulk(self) -> list[bytes] | None:
        buf = self.buf
        if self.mbulk_left == 0:
            pos = self.pos
            cr = self._find(b"\r")
            if cr < 0:
                if len(buf) - pos > self.max_inline:
                    raise _ScanError("too big mbulk count string")
                return None
            if cr + 1 >= len(buf):  # the byte after \r must be there too
                return None
            if self.strict_crlf and buf[cr + 1] != 0x0A:
                raise _ScanError("invalid CRLF in request")
            ll = string2ll(buf[pos + 1 : cr])
            if ll is None or ll > self.max_multibulk_len:
                raise _ScanError("invalid multibulk length")
            if ll > _UNAUTH_MAX_MULTIBULK and self.auth_required:
                raise _ScanError("unauthenticated multibulk length")
            self.pos = cr + 2
            if ll <= 0:
                self.reqtype = _REQ_NONE
                return []
            self.mbulk_left = ll
            self.args = []
        args = self.args
        while self.mbulk_left:
            pos = self.pos
            if self.bulk_len == -1:
                cr = self._find(b"\r")
                if cr < 0:
                    if len(buf) - pos > self.max_inline:
                        raise _ScanError("too big bulk count string")
                    return None
                if cr + 1 >= len(buf):
                    return None
                if buf[pos] != _DOLLAR:
                    # addReplyErrorFormat turns \r and \n into spaces; other bytes stay raw
                    got = " " if buf[pos] in (0x0D, 0x0A) else chr(buf[pos])
                    raise _ScanError(f"expected '$', got '{got}'")
                if self.strict_crlf and buf[cr + 1] != 0x0A:
                    raise _ScanError("invalid CRLF in request")
                ll = string2ll(buf[pos + 1 : cr])
                if ll is None or ll < 0 or (not self.master and ll > self.max_bulk_len):
                    raise _ScanError("invalid bulk length")
                if ll > _UNAUTH_MAX_BULK and self.auth_required:
                    raise _ScanError("unauthenticated bulk length")
                pos = self.pos = cr + 2
                self.bulk_len = ll
            n = self.bulk_len
            if len(buf) - pos < n + 2:
                return None
            if self.strict_crlf and not buf.startswith(b"\r\n", pos + n):
                raise _ScanError("invalid CRLF in request")
            if n < 4096:
                args.append(bytes(buf[pos : pos + n]))
            else:
                with memoryview(buf) as view:  # one copy instead of two for big arguments
                    args.append(view[pos : pos + n].tobytes())
            self.pos = pos + n + 2
            self.bulk_len = -1
            self.mbulk_left -= 1
        self.reqtype = _REQ_NONE
        self.args = []
        return args

    def fast_batch(self) -> tuple[list[list[bytes]], list[bytes], bool]:
        """At a command boundary on a `*`: the longest run of complete, canonically encoded
        commands, parsed by hiredis and proved by re-encoding. Returns (argvs, encodings,
        to_the_end) and moves `pos` past them. `to_the_end`: every byte up to an incomplete
        last command was handled, so another hiredis attempt in this round would be wasted."""
        buf, pos = self.buf, self.pos
        reader = hiredis.Reader()
        end = _huge_aggregate_at(buf, pos)
        reader.feed(buf, pos, end - pos)  # type: ignore[arg-type]  # any buffer is accepted
        gets = reader.gets
        cmds: list[list[bytes]] = []
        append = cmds.append
        to_the_end = end == len(buf)
        try:
            while (reply := gets()) is not False:
                append(reply)
        except _HiredisProtocolError:
            to_the_end = False  # the exact scanner finds Redis's own error, or accepts it
        if not cmds:
            return [], [], to_the_end
        try:
            packed = list(map(_pack_command, map(tuple, cmds)))
            joined = b"".join(packed)
            ok = buf.startswith(joined, pos)
        except TypeError:  # an element that is no bulk string: nested, nil, integer...
            ok = False
        if not ok:
            cmds, packed = self._verified_prefix(cmds)
            joined = b"".join(packed)
            to_the_end = False
        if not self.master and (
            len(joined) > self.max_bulk_len or len(joined) > 6 * self.max_multibulk_len
        ):
            cmds, packed = self._within_limits(cmds, packed)
            joined = b"".join(packed)
            to_the_end = False
        self.pos = pos + len(joined)
        return cmds, packed, to_the_end

    def _verified_prefix(self, cmds: list[list[bytes]]) -> tuple[list[list[bytes]], list[bytes]]:
        buf, at = self.buf, self.pos
        packed: list[bytes] = []
        for argv in cmds:
            try:
                enc = _pack_command(tuple(argv))
            except TypeError:
                break
            if not buf.startswith(enc, at):
                break
            packed.append(enc)
            at += len(enc)
        return cmds[: len(packed)], packed

    def _within_limits(
        self, cmds: list[list[bytes]], packed: list[bytes]
    ) -> tuple[list[list[bytes]], list[bytes]]:
        for i, argv in enumerate(cmds):
            if len(argv) > self.max_multibulk_len or (
                argv and max(map(len, argv)) > self.max_bulk_len
            ):
                return cmds[:i], packed[:i]
        return cmds, packed


# --- the client request parser ---------------------------------------------------------------


class RequestParser:
    """Sans-I/O parser of one client connection's requests (Redis `processInputBuffer`).

    Usage: `feed(data)` after each read, then `next_requests()` for the complete commands, in
    order; empty commands are dropped as Redis drops them. After a protocol error the commands
    before it are returned first, then every call raises the `ProtocolError`; the server writes
    `error.reply` and closes. `feed` raises `QueryBufferLimitError` (close, no reply).

    While `auth_required` is set (requirepass / default user without nopass, not yet
    authenticated) Redis parses with tighter limits and re-evaluates them after executing each
    command (AUTH may succeed), so `next_requests()` then returns at most one command per call:
    execute it, update `auth_required`, call again.

    Server flavours (defaults = Redis 7.0 - 8.0):
    - `max_multibulk_len`: 1024*1024 for Redis <= 6.2.
    - `strict_crlf` (Valkey 8.1; reportedly also the later 7.2.x / 8.0.x patch releases): the
      byte after a header's `\r` and the two bytes after a bulk must be `\r\n`, else
      "invalid CRLF in request" (checked after the `$` check, before the length is parsed).
    - `sticky_blank_inline` (Valkey 8, `handleParseResults`): an inline line of blanks (not an
      empty line) does not reset the request type, so the next request is read as inline even
      if it starts with `*`, until a non-empty command or an empty line. Redis resets.
    """

    def __init__(
        self,
        max_query_buffer: int = CLIENT_MAX_QUERYBUF_LEN,
        proto_max_bulk_len: int = PROTO_MAX_BULK_LEN,
        max_inline: int = PROTO_INLINE_MAX_SIZE,
        *,
        max_multibulk_len: int = INT_MAX,
        auth_required: bool = False,
        sticky_blank_inline: bool = False,
        strict_crlf: bool = False,
        use_hiredis: bool = True,
    ) -> None:
        self.max_query_buffer = max_query_buffer
        self._scan = _InputScanner(
            master=False,
            max_bulk_len=proto_max_bulk_len,
            max_multibulk_len=max_multibulk_len,
            max_inline=max_inline,
            use_hiredis=use_hiredis,
        )
        self._scan.auth_required = auth_required
        self._scan.sticky_blank_inline = sticky_blank_inline
        self._scan.strict_crlf = strict_crlf
        self._error: RequestError | None = None
        # What the last `string_reads` did, for INFO: how many of each kind (GET, MGET,
        # LRANGE, HGETALL) ran, how many of each were answered WRONGTYPE, keys looked up,
        # lookups that found nothing.
        self.lane_ran: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.lane_wrongtype: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.lane_lookups = self.lane_misses = 0

    @property
    def auth_required(self) -> bool:
        return self._scan.auth_required

    @auth_required.setter
    def auth_required(self, value: bool) -> None:
        self._scan.auth_required = value

    @property
    def query_buffer_len(self) -> int:
        """Unparsed bytes, Redis's `qbuf` (a partial command's parsed arguments are not in it)."""
        return len(self._scan.buf) - self._scan.pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes read from the client. Bytes fed after an error are ignored."""
        if self._error is not None:
            if isinstance(self._error, QueryBufferLimitError):
                raise self._error
            return
        qlen = self.query_buffer_len + len(data)
        if qlen > self.max_query_buffer:
            self._error = QueryBufferLimitError(qlen, self.max_query_buffer)
            raise self._error
        self._scan.buf += data

    def string_reads(
        self,
        db: dict[bytes, Any],
        expires: dict[bytes, int],
        now: int,
        null: bytes,
        max_out: int = 1 << 62,
        slots: bytes | None = None,
        proto: int = 0,
    ) -> tuple[bytes, int, int]:
        """Run the GET/MGET commands at the head of the buffer without building their argv
        (the C read lane; see `_lanes.c`): (replies, how many ran, the last one's kind: 1
        GET, 2 MGET, 3 LRANGE, 4 HGETALL). With `proto` (2 or 3: the client's protocol) it
        also runs `LRANGE key start stop` and `HGETALL key` of plain lists and hashes up to
        1024 elements. Stops at anything else, which `next_requests` then parses exactly.
        The caller has checked that nothing but the command itself decides these replies.
        Stops once `max_out` bytes of replies are built (the rest waits for the next call);
        in cluster mode, `slots` (16384 bytes) marks the slots served here: a command with a
        key elsewhere, or keys in two slots, stops the lane too."""
        scan = self._scan
        if (
            _C_STRING_READS is None
            or self._error is not None
            or scan.auth_required
            or not scan.at_boundary
            or scan.pos >= len(scan.buf)
        ):
            return b"", 0, 0
        (
            pos,
            replies,
            count,
            last,
            self.lane_ran,
            self.lane_wrongtype,
            self.lane_lookups,
            self.lane_misses,
        ) = _C_STRING_READS(
            scan.buf,
            scan.pos,
            db,
            expires,
            now,
            null,
            scan.max_bulk_len,
            scan.max_multibulk_len,
            max_out,
            slots,
            proto,
        )
        if count:
            scan.start = scan.pos = pos
            scan.discard_before(pos)
        return replies, count, last

    def next_requests(self) -> list[list[bytes]]:
        """Every complete command parsed so far (see the class docstring for errors)."""
        if self._error is not None:
            raise self._error
        scan = self._scan
        out: list[list[bytes]] = []
        fast_attempts = _FAST_ATTEMPTS_PER_CALL if scan.use_hiredis else 0
        one_at_a_time = scan.auth_required
        buf = scan.buf
        try:
            while scan.pos < len(buf):
                if (
                    fast_attempts
                    and not one_at_a_time
                    and scan.at_boundary
                    and buf[scan.pos] == _STAR
                ):
                    fast_attempts -= 1
                    cmds, _, to_the_end = scan.fast_batch()
                    if to_the_end:
                        fast_attempts = 0
                    if cmds:
                        out.extend(cmds)
                        continue
                argv = scan.parse_one()
                if argv is None:
                    break
                if argv:
                    out.append(argv)
                    if one_at_a_time:
                        break
        except _ScanError as e:
            self._error = ProtocolError(e.message)
        finally:
            scan.discard_before(scan.pos)
        if not all(out):  # hiredis kept `*0` commands, which Redis ignores
            out = [argv for argv in out if argv]
        if self._error is not None and not out:
            raise self._error
        return out
