"""The master's command stream cut into commands, each with its exact bytes and end offset.

This module owns the framing of the replication stream after the snapshot: which bytes form
which command and the replication offset each command ends at. It does not apply commands,
does not keep the backlog and does not know MULTI/EXEC (the stream's consumers do); no I/O.

Byte counting follows a Redis replica reading from its master (`processMultibulkBuffer` with
CLIENT_MASTER): no `proto-max-bulk-len` limit, a header line ends at its first `\\r` and the byte
after it is skipped, the two bytes after a bulk are skipped unchecked, `*0` / `*-1` are empty
commands. Every byte belongs to exactly one `StreamCommand`, so `b"".join(c.raw ...)` is the
stream and `end_offset`s are exact whatever the chunking. Commands whose argv is empty (`*0`,
`*-1`, a bare `\\n` or `\\r\\n`) carry bytes that count but do nothing. As Redis does
(`processInlineBuffer` for CLIENT_MASTER), any other inline line is a protocol error ("Master
using the inline protocol. Desync?"): a master only sends multibulk commands, so inline bytes
mean the stream is desynchronized, and applying or relaying them would spread the damage.

Speed: runs of complete canonically encoded commands are cut by the C splitter (`_lanes.c`),
or, without it, parsed by hiredis and proved by their re-encoding (`raw` is that re-encoding,
equal to the stream bytes); partial, inline and non-canonical commands go through the exact
scanner shared with `request.py`. With `merge_sets`, the splitter (C, or its Python twin
`merge_set_runs`) hands out a run of
consecutive plain SETs, or of consecutive MSETs, as one MSET item (`commands` says how many
it was): at full write speed they are the bulk of the stream, and one item costs one
dispatch and one batch of dict stores instead of one of each per command. The two kinds of
run are never mixed and are named apart (`SET_RUN`, `MSET_RUN`), so INFO commandstats
counts what an item stood for as a real replica counts the commands (`count_key`).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate
from typing import NamedTuple

from replproxy.resp.reply import c_speedup
from replproxy.resp.request import (
    _FAST_ATTEMPTS_PER_CALL,
    _STAR,
    INT_MAX,
    PROTO_INLINE_MAX_SIZE,
    _InputScanner,
    _ScanError,
)

__all__ = ["StreamCommand", "StreamProtocolError", "StreamSplitter", "count_key"]


class StreamCommand(NamedTuple):
    """One command of the replication stream."""

    argv: list[bytes]
    raw: bytes  # its exact bytes in the stream
    end_offset: int  # replication offset of its last byte
    # How many of the master's commands this is: more than 1 only for a merged run of plain
    # SETs or of MSETs (`StreamSplitter(merge_sets=True)`), whose argv is then one MSET.
    commands: int = 1


# A merged item's name: its argv is an MSET either way (one write), but INFO commandstats
# must count what it stood for (replication.py `ReplStats.calls`, the keyspace's run lane):
# `commands` SETs for SET_RUN, MSETs for MSET_RUN. The master's own MSET, any spelling, is
# never merged alone (a run of one is left as it came), so the names tell them apart.
SET_RUN = b"MSET"
MSET_RUN = b"mset"
MERGED_SETS_KEY = b"set"


def count_key(name: bytes, commands: int) -> bytes:
    """What INFO commandstats counts an item under (before its case is folded): its name as
    sent, or `set` for a merged run of SETs."""
    return MERGED_SETS_KEY if commands > 1 and name == SET_RUN else name


class StreamProtocolError(Exception):
    """The stream is malformed. `offset` is the replication offset of the first byte of the
    command that cannot be parsed (the splitter's `offset` + 1); `message` is Redis's text;
    `data` the first bytes of that command (at most `ERROR_DATA_MAX`) and `size` how many bytes
    of it were received, for a log line that shows what came."""

    def __init__(self, message: str, offset: int, data: bytes = b"", size: int = 0) -> None:
        super().__init__(f"{message} (command starting at replication offset {offset})")
        self.message = message
        self.offset = offset
        self.data = data
        self.size = max(size, len(data))


ERROR_DATA_MAX = 256


# NamedTuple's generated __new__ is a Python-level wrapper; tuple.__new__ builds the same
# object at C speed (this runs once per stream command).
_new_command = tuple.__new__
# The C splitter of canonical commands (`_lanes.c`), or None: the scanner below is exact.
_C_SPLIT: (
    Callable[[bytearray, int, int, type, bool], tuple[list[StreamCommand], int, int]] | None
) = c_speedup("split_commands")


# A merged run stops growing at this many arguments: one item stays a bounded list (the C
# splitter's RUN_MAX_ARGS).
RUN_MAX_ARGS = 65536


def _plain_set(argv: list[bytes]) -> bytes | None:
    """The merged name of a run `argv` may join (`plain_set_at` in the C splitter): SET_RUN
    for a SET without options, MSET_RUN for an MSET, else None."""
    n = len(argv)
    if n < 3 or n % 2 == 0:
        return None
    name = argv[0]
    if n == 3 and len(name) == 3 and name.lower() == b"set":
        return SET_RUN
    return MSET_RUN if len(name) == 4 and name.lower() == b"mset" else None


def merge_set_runs(commands: list[StreamCommand]) -> list[StreamCommand]:
    """The pure-Python twin of the C splitter's merging: each run of consecutive plain SETs,
    or of consecutive MSETs, in `commands` (canonical commands, one split's worth) becomes
    one item whose argv is `MSET k1 v1 ...` (`mset k1 v1 ...` for MSETs: `count_key`) with
    every pair in order, whose raw bytes are the run's and whose `commands` counts them; a
    run of one stays as it was. A plain SET and an MSET are the same write (store the
    string, drop the TTL, whatever the key held), so applying the merged item is applying
    the run."""
    out: list[StreamCommand] = []
    run: list[StreamCommand] = []
    run_args = 0
    run_name = SET_RUN

    def flush() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            argv = [run_name]
            for cmd in run:
                argv += cmd[0][1:]
            raw = b"".join([cmd[1] for cmd in run])
            out.append(_new_command(StreamCommand, (argv, raw, run[-1][2], len(run))))
        run.clear()

    for cmd in commands:
        argv = cmd[0]
        name = _plain_set(argv)
        if name is None:
            flush()
            run_args = 0
            out.append(cmd)
            continue
        if run and (name is not run_name or run_args + len(argv) > RUN_MAX_ARGS):
            flush()
        if not run:
            run_args = len(argv)
            run_name = name
        else:
            run_args += len(argv) - 1
        run.append(cmd)
    flush()
    return out


class StreamSplitter:
    """Sans-I/O splitter of the master's command stream.

    `start_offset` is the replication offset of the last byte already accounted (the
    `+FULLRESYNC` offset, or the replica's offset on `+CONTINUE`). `feed(data)`, then
    `next_commands()` returns every complete command in order. After a malformed command, the
    commands before it are returned first, then every call raises `StreamProtocolError`.
    `strict_crlf` refuses what Valkey 8.1 refuses: a header `\r` or a bulk not followed by
    `\r\n` ("invalid CRLF in request"). `merge_sets` merges runs of plain SETs, and of MSETs
    (`merge_set_runs`, in C or Python; see the module's docstring); bytes and offsets stay
    exact.
    """

    def __init__(
        self,
        start_offset: int,
        *,
        max_inline: int = PROTO_INLINE_MAX_SIZE,
        strict_crlf: bool = False,
        use_hiredis: bool = True,
        merge_sets: bool = False,
    ) -> None:
        self._offset = start_offset
        self._merge_sets = merge_sets
        self._scan = _InputScanner(
            master=True,
            max_bulk_len=0,  # not checked for a master
            max_multibulk_len=INT_MAX,
            max_inline=max_inline,
            use_hiredis=use_hiredis,
        )
        self._scan.strict_crlf = strict_crlf
        self._error: StreamProtocolError | None = None

    @property
    def offset(self) -> int:
        """Replication offset of the last byte handed out in a complete command."""
        return self._offset

    @property
    def error(self) -> StreamProtocolError | None:
        """The protocol error found, if any: the next `next_commands()` raises it."""
        return self._error

    @property
    def pending_bytes(self) -> int:
        """Bytes fed but not yet handed out (the start of an incomplete command)."""
        scan = self._scan
        return len(scan.buf) - (scan.pos if scan.at_boundary else scan.start)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes received from the master (ignored once the stream is known malformed)."""
        if self._error is None:
            self._scan.buf += data

    def next_commands(self) -> list[StreamCommand]:
        """Every complete command received so far, in stream order."""
        if self._error is not None:
            raise self._error
        scan = self._scan
        buf = scan.buf
        out: list[StreamCommand] = []
        # hiredis's lane accepts only canonical commands, like the C splitter: where the C
        # one stopped (an incomplete command, usually) hiredis would stop too.
        fast_attempts = _FAST_ATTEMPTS_PER_CALL if scan.use_hiredis and _C_SPLIT is None else 0
        try:
            while scan.pos < len(buf):
                if _C_SPLIT is not None and scan.at_boundary and buf[scan.pos] == _STAR:
                    split, scan.pos, self._offset = _C_SPLIT(
                        buf, scan.pos, self._offset, StreamCommand, self._merge_sets
                    )
                    scan.start = scan.pos
                    out.extend(split)
                    # It stops only where it cannot go on: the exact scanner takes that.
                    if scan.pos >= len(buf):
                        break
                if fast_attempts and scan.at_boundary and buf[scan.pos] == _STAR:
                    fast_attempts -= 1
                    cmds, raws, to_the_end = scan.fast_batch()
                    if to_the_end:
                        fast_attempts = 0
                    if cmds:
                        ends = accumulate(map(len, raws), initial=self._offset)
                        next(ends)
                        batch = [
                            _new_command(StreamCommand, (*t, 1)) for t in zip(cmds, raws, ends)
                        ]
                        out.extend(merge_set_runs(batch) if self._merge_sets else batch)
                        self._offset = out[-1].end_offset
                        continue
                argv = scan.parse_one()
                if argv is None:
                    break
                with memoryview(buf) as view:  # one copy, even for a 512 MB value
                    raw = view[scan.start : scan.pos].tobytes()
                self._offset += len(raw)
                out.append(_new_command(StreamCommand, (argv, raw, self._offset, 1)))
        except _ScanError as e:
            bad = scan.buf[scan.start : scan.start + ERROR_DATA_MAX]
            self._error = StreamProtocolError(
                e.message, self._offset + 1, bytes(bad), len(scan.buf) - scan.start
            )
        finally:
            scan.discard_before(scan.pos if scan.at_boundary else scan.start)
        if self._error is not None and not out:
            raise self._error
        return out
