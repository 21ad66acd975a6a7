"""The master-side PSYNC decision and handshake replies (replproxy.downstream.psync), no sockets.

Every rule is `masterTryPartialResynchronization` / `replconfCommand` from Redis's
replication.c; byte inputs are fed whole and split at every position.
"""

from __future__ import annotations

import pytest

from replproxy.downstream.psync import (
    NOMASTERLINK,
    Ack,
    Continue,
    History,
    NeedFullResync,
    RdbFilter,
    ReplicaHandshake,
    ReplicaInput,
    SyncRequest,
    bulk_header,
    continue_line,
    eof_header,
    fullresync_line,
    new_eof_mark,
    parse_sync,
    replconf,
)
from replproxy.replication import Backlog
from replproxy.resp.request import RequestParser, encode_command

ID1 = "a" * 40
ID2 = "b" * 40


def hist(first: int = 101, histlen: int = 100, replid2: str = ID2, second: int = 150) -> History:
    return History(ID1, replid2, second, first, histlen)


def psync(replid: str, offset: int) -> SyncRequest:
    return SyncRequest(True, replid, offset)


# ---- the decision ----


@pytest.mark.parametrize("offset", [101, 150, 200, 201])
def test_continue_when_replid_is_ours_and_backlog_covers(offset: int) -> None:
    d = decide_(psync(ID1, offset))
    assert isinstance(d, Continue) and d.offset == offset
    assert d.line == f"+CONTINUE {ID1}\r\n".encode()


def decide_(req: SyncRequest, h: History | None = None, psync2: bool = True):
    from replproxy.downstream.psync import decide

    return decide(req, h or hist(), psync2)


def test_offset_just_past_the_end_is_legal_and_sends_nothing() -> None:
    # offset == master_repl_offset + 1 (first + histlen): a fully caught-up replica.
    b = Backlog(1000)
    b.reset(101)
    b.append(b"x" * 100)
    assert b.covers(201) and b.read_from(201) == b""
    assert isinstance(decide_(psync(ID1, 201)), Continue)


@pytest.mark.parametrize("offset", [100, 202, 1])
def test_full_resync_when_backlog_does_not_cover(offset: int) -> None:
    d = decide_(psync(ID1, offset))
    assert isinstance(d, NeedFullResync) and d.reason == "backlog" and d.counts_as_error


def test_replid_compare_ignores_case() -> None:
    assert isinstance(decide_(psync(ID1.upper(), 150)), Continue)


@pytest.mark.parametrize("offset,ok", [(149, True), (150, True), (151, False)])
def test_replid2_only_up_to_second_replid_offset(offset: int, ok: bool) -> None:
    d = decide_(psync(ID2, offset))
    if ok:
        # The replica learns the new id from the +CONTINUE line.
        assert isinstance(d, Continue) and d.line == f"+CONTINUE {ID1}\r\n".encode()
    else:
        assert isinstance(d, NeedFullResync) and d.reason == "replid2-offset"
        assert "Requested offset for second ID was 151, but I can reply up to 150" in d.message


def test_replid2_still_needs_the_backlog() -> None:
    d = decide_(psync(ID2, 120), hist(first=130))
    assert isinstance(d, NeedFullResync) and d.reason == "backlog"


def test_unknown_replid_is_a_failed_partial() -> None:
    d = decide_(psync("c" * 40, 150))
    assert isinstance(d, NeedFullResync) and d.reason == "replid" and d.counts_as_error
    assert "Replication ID mismatch" in d.message


def test_question_mark_forces_full_without_counting_an_error() -> None:
    d = decide_(psync("?", -1))
    assert isinstance(d, NeedFullResync) and not d.counts_as_error


def test_null_replid2_never_matches_a_real_request() -> None:
    d = decide_(psync("0" * 40, 120), hist(replid2="0" * 40, second=-1))
    assert isinstance(d, NeedFullResync) and d.reason == "replid2-offset"


def test_sync_is_always_full() -> None:
    d = decide_(SyncRequest(psync=False))
    assert isinstance(d, NeedFullResync) and not d.counts_as_error


def test_bare_continue_without_capa_psync2() -> None:
    d = decide_(psync(ID1, 150), psync2=False)
    assert isinstance(d, Continue) and d.line == b"+CONTINUE\r\n"
    assert continue_line(ID1, False) == b"+CONTINUE\r\n"


def test_history_of_a_replication_core() -> None:
    from replproxy.replication import Replication

    class _DS:
        databases = 16

        def apply(self, db: int, argv: list[bytes]) -> None: ...
        def apply_transaction(self, db: int, commands: object) -> int:
            return db

    repl = Replication(_DS(), 1024)
    repl.full_resync(ID1, 500, 0)
    h = History.of(repl)
    assert (h.replid, h.backlog_first_byte, h.backlog_histlen) == (ID1, 501, 0)
    assert isinstance(decide_(psync(ID1, 501), h), Continue)
    assert isinstance(decide_(psync(ID1, 500), h), NeedFullResync)


# ---- lines and framing ----


def test_reply_lines() -> None:
    assert fullresync_line(ID1, 42) == f"+FULLRESYNC {ID1} 42\r\n".encode()
    assert bulk_header(868) == b"$868\r\n"
    mark = new_eof_mark()
    assert len(mark) == 40 and mark != new_eof_mark()
    assert eof_header(mark) == b"$EOF:" + mark + b"\r\n"
    assert NOMASTERLINK == b"-NOMASTERLINK Can't SYNC while not connected with my master\r\n"


def test_parse_sync() -> None:
    assert parse_sync([b"SYNC"]) == SyncRequest(psync=False)
    assert parse_sync([b"psync", b"?", b"-1"]) == SyncRequest(True, "?", -1)
    assert parse_sync([b"PSYNC", ID1.encode(), b"1234"]) == SyncRequest(True, ID1, 1234)
    assert parse_sync([b"psync", b"?", b"x"]) == (
        b"-ERR value is not an integer or out of range\r\n"
    )


# ---- the handshake ----


def test_replconf_records_the_handshake_and_answers_ok() -> None:
    hs = ReplicaHandshake()
    for argv in (
        [b"REPLCONF", b"listening-port", b"6390"],
        [b"replconf", b"ip-address", b"10.0.0.7"],
        [b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"],
        [b"REPLCONF", b"version", b"8.1.1"],
    ):
        assert replconf(hs, argv) == b"+OK\r\n"
    assert (hs.listening_port, hs.ip_address, hs.capa_eof, hs.capa_psync2, hs.version) == (
        6390,
        "10.0.0.7",
        True,
        True,
        "8.1.1",
    )


@pytest.mark.parametrize("capa", [b"dual-channel", b"rdb-channel-repl", b"whatever"])
def test_unknown_capas_are_ignored(capa: bytes) -> None:
    hs = ReplicaHandshake()
    assert replconf(hs, [b"REPLCONF", b"capa", capa, b"capa", b"eof"]) == b"+OK\r\n"
    assert hs.capa_eof and not hs.capa_psync2


def test_ack_before_sync_gets_no_reply() -> None:
    assert replconf(ReplicaHandshake(), [b"REPLCONF", b"ACK", b"100"]) == b""
    assert replconf(ReplicaHandshake(), [b"REPLCONF", b"GETACK", b"*"]) == b""


@pytest.mark.parametrize(
    "argv,error",
    [
        ([b"REPLCONF", b"capa"], b"-ERR syntax error\r\n"),
        (
            [b"REPLCONF", b"listening-port", b"x"],
            b"-ERR value is not an integer or out of range\r\n",
        ),
        (
            [b"REPLCONF", b"rdb-only", b"2"],
            b"-ERR value is out of range, value must between 0 and 1\r\n",
        ),
        (
            [b"REPLCONF", b"rdb-filter-only", b"keys"],
            b"-ERR Unsupported rdb-filter-only option: keys\r\n",
        ),
        ([b"REPLCONF", b"nope", b"1"], b"-ERR Unrecognized REPLCONF option: nope\r\n"),
        (
            [b"REPLCONF", b"ip-address", b"x" * 256],
            b"-ERR REPLCONF ip-address provided by replica instance is too long: 256 bytes\r\n",
        ),
    ],
)
def test_replconf_errors_as_redis(argv: list[bytes], error: bytes) -> None:
    assert replconf(ReplicaHandshake(), argv) == error


def test_options_before_a_bad_one_are_applied() -> None:
    hs = ReplicaHandshake()
    replconf(hs, [b"REPLCONF", b"listening-port", b"1", b"nope", b"x"])
    assert hs.listening_port == 1


def test_rdb_only_and_filters() -> None:
    hs = ReplicaHandshake()
    assert replconf(hs, [b"REPLCONF", b"rdb-only", b"1"]) == b"+OK\r\n" and hs.rdb_only
    assert replconf(hs, [b"REPLCONF", b"rdb-filter-only", b""]) == b"+OK\r\n"
    assert hs.rdb_filter == RdbFilter(functions=False)
    assert replconf(hs, [b"REPLCONF", b"rdb-filter-only", b"functions"]) == b"+OK\r\n"
    assert hs.rdb_filter == RdbFilter(functions=True)
    assert replconf(hs, [b"REPLCONF", b"rdb-only", b"0"]) == b"+OK\r\n" and not hs.rdb_only


# ---- a replica's input: ACKs, fed at every split ----

ACK_BYTES = (
    b"\n\n"  # keep-alives while the replica loads
    + encode_command([b"REPLCONF", b"ACK", b"0"])
    + encode_command([b"REPLCONF", b"ACK", b"1500", b"FACK", b"1400"])
    + encode_command([b"PING"])  # anything else is ignored, never answered
    + encode_command([b"REPLCONF", b"ACK", b"notanumber"])
    + encode_command([b"REPLCONF", b"ACK", b"1200"])  # never lowers the recorded offset
)
EXPECTED_ACKS = [Ack(0), Ack(1500, 1400), Ack(1200)]


def test_acks_fed_whole() -> None:
    inp = ReplicaInput()
    assert inp.receive_data(ACK_BYTES) == EXPECTED_ACKS
    assert (inp.ack_offset, inp.aof_offset, inp.acks) == (1500, 1400, 3)


@pytest.mark.parametrize("split", range(1, len(ACK_BYTES)))
def test_acks_split_at_every_position(split: int) -> None:
    inp = ReplicaInput(RequestParser())
    got = inp.receive_data(ACK_BYTES[:split]) + inp.receive_data(ACK_BYTES[split:])
    assert got == EXPECTED_ACKS
    assert inp.ack_offset == 1500


def test_acks_byte_by_byte() -> None:
    inp = ReplicaInput()
    got: list[Ack] = []
    for i in range(len(ACK_BYTES)):
        got += inp.receive_data(ACK_BYTES[i : i + 1])
    assert got == EXPECTED_ACKS
