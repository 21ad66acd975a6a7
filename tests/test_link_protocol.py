"""The replica link state machine, fed bytes directly: no sockets, no servers.

Every exchange is also replayed split at every byte position (two chunks) and one byte at a
time: the events, the snapshot bytes and the bytes we send must not depend on chunking.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replproxy.link.protocol import (
    Commands,
    FullResync,
    LinkConfig,
    LinkError,
    LinkLog,
    LinkState,
    PartialResync,
    ReplicaLink,
    SnapshotBegin,
    SnapshotData,
    encode_command,
)

REPLID = "a" * 40
NEWID = "b" * 40
MARK = b"0123456789abcdef0123456789abcdef01234567"
CFG = LinkConfig(listening_port=6380)


def cmd(*args: str) -> bytes:
    return encode_command(*args)


@dataclass
class Outcome:
    events: list[object] = field(default_factory=list)
    snapshot: bytes = b""
    commands: list[tuple[list[bytes], bytes, int]] = field(default_factory=list)
    sent: bytes = b""
    state: LinkState = LinkState.CONNECT

    def kinds(self) -> list[str]:
        """Event kinds with consecutive SnapshotData/Commands merged (chunking-independent)."""
        out: list[str] = []
        for e in self.events:
            k = type(e).__name__
            if k in ("SnapshotData", "Commands") and out and out[-1] == k:
                continue
            out.append(k)
        return out


def drive(
    chunks: list[bytes],
    config: LinkConfig = CFG,
    replid: str = "?",
    offset: int = -1,
    load: bool = True,
) -> Outcome:
    """Feed the master's bytes chunk by chunk, loading the snapshot when the link asks."""
    link = ReplicaLink(config, replid, offset)
    link.initiate()
    out = Outcome()
    out.sent += link.data_to_send()
    for chunk in chunks:
        link.receive_data(chunk)
        for ev in link.next_events():
            out.events.append(ev)
            if isinstance(ev, SnapshotData):
                out.snapshot += ev.data
            if isinstance(ev, Commands):
                out.commands += [(c.argv, c.raw, c.end_offset) for c in ev.commands]
        if load and link.state is LinkState.LOADING:
            link.snapshot_loaded()
            for ev in link.next_events():
                out.events.append(ev)
                if isinstance(ev, Commands):
                    out.commands += [(c.argv, c.raw, c.end_offset) for c in ev.commands]
        out.sent += link.data_to_send()
    out.state = link.state
    return out


def splits(data: bytes) -> list[list[bytes]]:
    """The whole input, every two-chunk split, and one byte at a time."""
    ways = [[data]]
    ways += [[data[:i], data[i:]] for i in range(1, len(data))]
    ways.append([data[i : i + 1] for i in range(len(data))])
    return ways


def assert_chunking_invariant(data: bytes, **kw: object) -> Outcome:
    whole = drive([data], **kw)  # type: ignore[arg-type]
    for chunks in splits(data)[1:]:
        got = drive(chunks, **kw)  # type: ignore[arg-type]
        assert got.kinds() == whole.kinds(), chunks
        assert got.snapshot == whole.snapshot
        assert got.commands == whole.commands
        assert got.sent == whole.sent
        assert got.state == whole.state
    return whole


HANDSHAKE_OK = b"+PONG\r\n+OK\r\n+OK\r\n"
STREAM = cmd("SELECT", "0") + cmd("SET", "k", "v") + cmd("ping")


def test_handshake_sends_ping_then_replconf_then_psync_after_all_replies() -> None:
    link = ReplicaLink(CFG)
    link.initiate()
    assert link.data_to_send() == b"PING\r\n"
    link.receive_data(b"+PONG\r\n")
    assert link.data_to_send() == (
        cmd("REPLCONF", "listening-port", "6380") + cmd("REPLCONF", "capa", "eof", "capa", "psync2")
    )
    link.receive_data(b"+OK\r\n")
    assert link.data_to_send() == b""  # PSYNC waits for every earlier reply
    link.receive_data(b"+OK\r\n")
    assert link.data_to_send() == cmd("PSYNC", "?", "-1")
    assert link.state is LinkState.RECEIVE_PSYNC


def test_handshake_with_password_user_and_announce_ip() -> None:
    cfg = LinkConfig(
        listening_port=7000, announce_ip="10.1.2.3", username="repl", password="s3cret"
    )
    link = ReplicaLink(cfg, REPLID, 1234)
    link.initiate()
    link.data_to_send()
    link.receive_data(b"-NOAUTH Authentication required.\r\n")  # PING before AUTH: fine
    assert link.data_to_send() == (
        cmd("AUTH", "repl", "s3cret")
        + cmd("REPLCONF", "listening-port", "7000")
        + cmd("REPLCONF", "ip-address", "10.1.2.3")
        + cmd("REPLCONF", "capa", "eof", "capa", "psync2")
    )
    link.receive_data(b"+OK\r\n+OK\r\n+OK\r\n+OK\r\n")
    assert link.data_to_send() == cmd("PSYNC", REPLID, "1234")


def test_password_only_auth() -> None:
    link = ReplicaLink(LinkConfig(6380, password="pw"))
    link.initiate()
    link.data_to_send()
    link.receive_data(b"+PONG\r\n")
    assert link.data_to_send().startswith(cmd("AUTH", "pw"))


def test_auth_error_ends_the_attempt_with_a_clear_reason() -> None:
    out = drive(
        [b"+PONG\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n"],
        LinkConfig(6380, password="bad"),
    )
    err = [e for e in out.events if isinstance(e, LinkError)]
    assert err and err[0].auth and 'Unable to AUTH to MASTER: "-WRONGPASS' in err[0].reason
    assert out.state is LinkState.CLOSED


@pytest.mark.parametrize(
    "reply", [b"-NOAUTH Authentication required.", b"-NOPERM no", b"-ERR operation not permitted"]
)
def test_ping_errors_that_mean_auth_comes_next_are_accepted(reply: bytes) -> None:
    out = drive([reply + b"\r\n"], LinkConfig(6380, password="x"))
    assert out.state is LinkState.HANDSHAKE


def test_other_ping_error_aborts() -> None:
    out = drive([b"-ERR something else\r\n"])
    assert isinstance(out.events[0], LinkError)
    assert 'Error reply to PING from master: "-ERR something else"' in out.events[0].reason


def test_replconf_errors_are_not_critical() -> None:
    out = drive([b"+PONG\r\n-ERR unknown\r\n-ERR nope\r\n"])
    logs = [e for e in out.events if isinstance(e, LinkLog)]
    assert len(logs) == 2 and "Non critical" in logs[0].message
    assert out.sent.endswith(cmd("PSYNC", "?", "-1"))


def test_full_resync_disk_payload_then_stream_with_offsets() -> None:
    rdb = b"REDIS0011" + b"x" * 20
    data = (
        HANDSHAKE_OK
        + b"\n\n"
        + f"+FULLRESYNC {REPLID} 100\r\n".encode()
        + b"\n"
        + b"$%d\r\n" % len(rdb)
        + rdb
        + STREAM
    )
    out = assert_chunking_invariant(data)
    assert out.kinds() == ["FullResync", "SnapshotBegin", "SnapshotData", "SnapshotEnd", "Commands"]
    assert out.events[0] == FullResync(REPLID, 100)
    assert out.events[1] == SnapshotBegin(len(rdb))
    assert out.snapshot == rdb
    ends = [c[2] for c in out.commands]
    sizes = [len(cmd("SELECT", "0")), len(cmd("SET", "k", "v")), len(cmd("ping"))]
    assert ends == [100 + sizes[0], 100 + sizes[0] + sizes[1], 100 + sum(sizes)]
    assert b"".join(c[1] for c in out.commands) == STREAM
    # The first ACK goes out as soon as the snapshot is loaded, with the FULLRESYNC offset.
    assert cmd("REPLCONF", "ACK", "100") in out.sent
    assert out.state is LinkState.CONNECTED


def test_full_resync_diskless_eof_mark_never_reaches_the_snapshot() -> None:
    rdb = b"REDIS0010" + bytes(range(256)) + MARK[:39]  # ends like the mark, minus one byte
    data = (
        HANDSHAKE_OK
        + f"+FULLRESYNC {REPLID} 7\r\n".encode()
        + b"$EOF:"
        + MARK
        + b"\r\n"
        + rdb
        + MARK
    )
    out = assert_chunking_invariant(data)
    assert out.events[1] == SnapshotBegin(None)
    assert out.snapshot == rdb
    assert out.state is LinkState.CONNECTED
    assert out.sent.endswith(cmd("REPLCONF", "ACK", "7"))


def test_empty_disk_payload() -> None:
    out = drive([HANDSHAKE_OK + f"+FULLRESYNC {REPLID} 0\r\n$0\r\n".encode()])
    assert out.kinds() == ["FullResync", "SnapshotBegin", "SnapshotEnd"]


def test_link_does_not_go_online_until_the_snapshot_is_loaded() -> None:
    data = HANDSHAKE_OK + f"+FULLRESYNC {REPLID} 5\r\n$3\r\nabc".encode() + STREAM
    out = drive([data], load=False)
    assert out.state is LinkState.LOADING
    assert not out.commands  # stream bytes are held while loading
    assert b"ACK" not in out.sent


def test_loading_keepalive_newline() -> None:
    link = ReplicaLink(CFG)
    link.initiate()
    link.receive_data(HANDSHAKE_OK + f"+FULLRESYNC {REPLID} 5\r\n$3\r\nabc".encode())
    link.data_to_send()
    link.send_loading_keepalive()
    assert link.data_to_send() == b"\n"


@pytest.mark.parametrize(
    "line,new_id",
    [(f"+CONTINUE {REPLID}", REPLID), (f"+CONTINUE {NEWID}", NEWID), ("+CONTINUE", None)],
)
def test_partial_resync_stream_follows_in_the_same_packet(line: str, new_id: str | None) -> None:
    data = HANDSHAKE_OK + line.encode() + b"\r\n" + STREAM
    out = assert_chunking_invariant(data, replid=REPLID, offset=501)
    assert out.events[0] == PartialResync(new_id)
    assert out.commands[0][2] == 500 + len(cmd("SELECT", "0"))
    assert out.commands[-1][2] == 500 + len(STREAM)
    assert out.state is LinkState.CONNECTED


@pytest.mark.parametrize(
    "reply",
    [
        b"-NOMASTERLINK Can't SYNC while not connected with my master",
        b"-LOADING Redis is loading the dataset in memory",
    ],
)
def test_try_later_replies(reply: bytes) -> None:
    out = drive([HANDSHAKE_OK + reply + b"\r\n"])
    err = out.events[-1]
    assert isinstance(err, LinkError) and err.retry_later
    assert out.state is LinkState.CLOSED


def test_psync_unknown_falls_back_to_sync() -> None:
    rdb = b"REDIS0006" + b"y" * 10
    data = HANDSHAKE_OK + b"-ERR unknown command 'PSYNC'\r\n" + b"$%d\r\n" % len(rdb) + rdb + STREAM
    out = assert_chunking_invariant(data)
    assert out.sent.endswith(cmd("REPLCONF", "ACK", "0")) or b"SYNC\r\n" in out.sent
    assert b"SYNC\r\n" in out.sent
    full = next(e for e in out.events if isinstance(e, FullResync))
    assert full == FullResync(None, -1)
    assert out.snapshot == rdb
    assert out.commands[-1][2] == len(STREAM)


def test_master_abort_during_bulk_wait() -> None:
    out = drive([HANDSHAKE_OK + f"+FULLRESYNC {REPLID} 1\r\n".encode() + b"\n-ERR oops\r\n"])
    assert isinstance(out.events[-1], LinkError)
    assert 'MASTER aborted replication with an error: "ERR oops"' in out.events[-1].reason


def test_bad_first_byte_of_payload() -> None:
    out = drive([HANDSHAKE_OK + f"+FULLRESYNC {REPLID} 1\r\n".encode() + b"+WHAT\r\n"])
    assert isinstance(out.events[-1], LinkError)
    assert "the first byte is not '$'" in out.events[-1].reason


def test_unexpected_psync_reply() -> None:
    out = drive([HANDSHAKE_OK + b"hello\r\n"])
    assert isinstance(out.events[-1], LinkError)
    assert 'Unexpected reply to PSYNC from master: "hello"' in out.events[-1].reason


def test_malformed_fullresync_is_logged_and_syncs_without_history() -> None:
    out = drive([HANDSHAKE_OK + b"+FULLRESYNC nonsense\r\n$0\r\n"])
    assert isinstance(out.events[0], LinkLog)
    assert out.events[1] == FullResync(None, -1)


def test_getack_and_ack_encoding() -> None:
    data = HANDSHAKE_OK + f"+CONTINUE {REPLID}\r\n".encode() + cmd("REPLCONF", "GETACK", "*")
    out = drive([data], replid=REPLID, offset=11)
    assert out.commands[0][0] == [b"REPLCONF", b"GETACK", b"*"]
    link = ReplicaLink(CFG, REPLID, 11)
    link.initiate()
    link.receive_data(HANDSHAKE_OK + f"+CONTINUE {REPLID}\r\n".encode())
    link.data_to_send()
    link.send_ack(12345)
    assert link.data_to_send() == b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$5\r\n12345\r\n"


def test_overlong_reply_line_is_refused() -> None:
    out = drive([b"+" + b"x" * 70000])
    assert isinstance(out.events[-1], LinkError)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(1, 40), max_size=20))
def test_random_master_bytes_never_crash(garbage: bytes, cuts: list[int]) -> None:
    data = HANDSHAKE_OK + garbage
    chunks, pos = [], 0
    for c in cuts:
        chunks.append(data[pos : pos + c])
        pos += c
    chunks.append(data[pos:])
    out = drive(chunks)  # must only ever produce events, never raise
    assert out.state in set(LinkState)


# --- a master that is not trusted blindly -----------------------------------------------------


def error_of(out: Outcome) -> LinkError:
    errors = [e for e in out.events if isinstance(e, LinkError)]
    assert errors, out.events
    assert out.state is LinkState.CLOSED
    return errors[-1]


@pytest.mark.parametrize("reply", [b"PONG", b"$4", b":1", b"", b"\x1b[2Jgarbage", b"*1"])
def test_garbage_ping_reply_is_a_protocol_error(reply: bytes) -> None:
    out = drive([reply + b"\r\n"])
    assert "Unexpected reply to PING from master" in error_of(out).reason
    assert out.sent == b"PING\r\n"  # nothing more was sent to it


@pytest.mark.parametrize("reply", [b"", b"OK", b"$2", b":0"])
def test_handshake_reply_that_is_neither_status_nor_error_is_a_protocol_error(
    reply: bytes,
) -> None:
    out = drive([b"+PONG\r\n" + reply + b"\r\n+OK\r\n"])
    assert "Unexpected reply to REPLCONF listening-port from master" in error_of(out).reason
    assert b"PSYNC" not in out.sent
    out = drive([b"+PONG\r\n" + reply + b"\r\n"], LinkConfig(6380, password="pw"))
    assert "Unexpected reply to AUTH from master" in error_of(out).reason


@pytest.mark.parametrize("line", [b"+CONTINUE", f"+CONTINUE {REPLID}".encode()])
def test_continue_to_psync_question_mark_is_a_protocol_error(line: bytes) -> None:
    """Without history we asked for a full resync: going online on +CONTINUE would serve an
    empty dataset as the master's (and /readyz would say ready while reads get LOADING)."""
    out = drive([HANDSHAKE_OK + line + b"\r\n" + STREAM])
    err = error_of(out)
    assert "+CONTINUE to PSYNC ? -1" in err.reason and not err.retry_later
    assert not any(isinstance(e, (PartialResync, Commands)) for e in out.events)


def test_negative_fullresync_offset_syncs_without_history() -> None:
    out = drive([HANDSHAKE_OK + f"+FULLRESYNC {REPLID} -5\r\n$0\r\n".encode()])
    assert isinstance(out.events[0], LinkLog)
    assert out.events[1] == FullResync(None, -1)


@pytest.mark.parametrize(
    "bad",
    [
        b"SET evil 1\r\n",
        b"  \r\n",
        b"*2\r\n$3\r\nDEL\r\n:1\r\n",
        b"*1\r\n$-5\r\n",
        b"*x\r\n",
    ],
)
def test_inline_or_malformed_stream_command_drops_the_link_unapplied(bad: bytes) -> None:
    before = cmd("SET", "k", "v") + b"\n"  # a keep-alive newline is fine
    after = cmd("SET", "k2", "v2")
    data = HANDSHAKE_OK + f"+CONTINUE {REPLID}\r\n".encode() + before + bad + after
    out = assert_chunking_invariant(data, replid=REPLID, offset=101)
    err = error_of(out)
    assert "Protocol error from master in the replication stream" in err.reason
    assert f"at offset {100 + len(before) + 1}" in err.reason
    # The good command before it is handed out, with its offset; the bad one and the rest never.
    assert [c[1] for c in out.commands] == [cmd("SET", "k", "v"), b"\n"]
    assert out.commands[-1][2] == 100 + len(before)


def test_stream_error_after_a_complete_batch_is_reported_at_once() -> None:
    """The splitter hands out the good commands first, then the error: the link must fail
    in the same `receive_data`, not wait for more bytes that may never come."""
    link = ReplicaLink(CFG, REPLID, 11)
    link.initiate()
    link.receive_data(HANDSHAKE_OK + f"+CONTINUE {REPLID}\r\n".encode())
    link.next_events()
    link.receive_data(cmd("SET", "a", "1") + b"GARBAGE\r\n")
    kinds = [type(e).__name__ for e in link.next_events()]
    assert kinds == ["Commands", "LinkError"] and link.state is LinkState.CLOSED


def test_master_bytes_in_reasons_are_escaped_and_cut_short() -> None:
    evil = b"\x1b[31mred\x00" + b"z" * 5000
    out = drive([evil + b"\r\n"])
    reason = error_of(out).reason
    assert "\x1b" not in reason and "\x00" not in reason
    assert "\\x1b[31mred\\x00" in reason and "more bytes)" in reason
    assert len(reason) < 200
    data = HANDSHAKE_OK + f"+CONTINUE {REPLID}\r\n".encode() + b"\x07\xff" * 3000 + b"\n"
    reason = error_of(drive([data], replid=REPLID, offset=1)).reason
    assert "\\a\\xff" in reason and len(reason) < 400 and "\xff" not in reason


def test_quote_master_bytes() -> None:
    from replproxy.resp.quote import quote_master_bytes

    assert quote_master_bytes(b'a"\\\r\n\t\x00\x7f\x80') == '"a\\"\\\\\\r\\n\\t\\x00\\x7f\\x80"'
    assert quote_master_bytes(b"x" * 70) == '"' + "x" * 64 + '..."(+6 more bytes)'
    assert quote_master_bytes(b"ab", total=10) == '"ab..."(+8 more bytes)'
    assert quote_master_bytes("got '\x01'", quotes=False) == "got '\\x01'"


def test_snapshot_space_check() -> None:
    from pathlib import Path

    from replproxy.link.driver import snapshot_space_error

    assert snapshot_space_error(100, 100, Path("/d")) is None
    why = snapshot_space_error(100 * 2**30, 5 * 2**30, Path("/var/lib/replproxy"))
    assert why is not None
    assert f"snapshot of {100 * 2**30} bytes but only {5 * 2**30} bytes are free" in why
    assert "/var/lib/replproxy" in why


def test_disk_full_while_writing_a_snapshot_is_a_clear_link_failure(tmp_path) -> None:
    """ENOSPC (here from /dev/full) while a diskless payload is written ends the attempt
    with a line that says so, and the partial file is discarded."""
    from replproxy.link.driver import LinkFailure, _SnapshotFile

    snap = _SnapshotFile(tmp_path / "upstream.rdb")
    snap.f.close()
    # Unbuffered on purpose (FileIO, not the BufferedWriter the class opens): the first
    # write must meet ENOSPC.
    snap.f = open("/dev/full", "wb", buffering=0)  # type: ignore[assignment]  # noqa: SIM115 - closed by discard()
    with pytest.raises(LinkFailure, match=r"no space left in .* for the snapshot from master"):
        snap.write(b"x" * 4096)
    snap.discard()
    assert not (tmp_path / "upstream.rdb.incoming").exists()
