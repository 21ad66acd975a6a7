"""Fuzz target: what the relay answers a downstream replica (`replproxy/downstream/psync.py`).

A replica's bytes (any) are parsed as a client's; REPLCONF goes to `replconf`, SYNC/PSYNC to
`parse_sync` and `decide` against a history drawn from the input, the rest to `ReplicaInput`
(ACKs). Nothing may raise but the parser's protocol errors; every reply must be one RESP line;
`decide` must agree with the rule of `masterTryPartialResynchronization`, restated here
independently: continue only from our id (or our previous one up to the switch point) with
every byte from the requested offset in the backlog.
"""

from __future__ import annotations

from replproxy.downstream.psync import (
    Continue,
    History,
    NeedFullResync,
    ReplicaHandshake,
    ReplicaInput,
    SyncRequest,
    decide,
    parse_sync,
    replconf,
)
from replproxy.resp.request import ProtocolError, QueryBufferLimitError, RequestParser
from tests.fuzz.common import Input

IDS = ["a" * 40, "B" * 40, "0000000000000000000000000000000000000000", "?"]


def oracle(req: SyncRequest, hist: History) -> bool:
    """True when a partial resync must be accepted."""
    if not req.psync:
        return False
    rid = req.replid.lower()
    ours = rid == hist.replid.lower()
    previous = rid == hist.replid2.lower() and req.offset <= hist.second_replid_offset
    if not (ours or previous):
        return False
    first, n = hist.backlog_first_byte, hist.backlog_histlen
    return first <= req.offset <= first + n


def one_line(reply: bytes) -> None:
    assert reply[:1] in (b"+", b"-") and reply.endswith(b"\r\n"), reply
    assert b"\r" not in reply[:-2] and b"\n" not in reply[:-2], reply


def check(data: bytes) -> None:
    inp = Input(data)
    hist = History(
        replid=IDS[inp.byte() % 3],
        replid2=IDS[inp.byte() % 3],
        second_replid_offset=inp.int(2) - 1,
        backlog_first_byte=inp.int(2),
        backlog_histlen=inp.int(2),
    )
    parser = RequestParser(use_hiredis=False)
    try:
        parser.feed(inp.rest())
        requests = parser.next_requests()
    except (ProtocolError, QueryBufferLimitError):
        return
    hs = ReplicaHandshake()
    acks = ReplicaInput()
    for argv in requests:
        name = argv[0].lower()
        if name == b"replconf":
            reply = replconf(hs, argv)
            if reply:
                one_line(reply)
        elif name in (b"sync", b"psync"):
            req = parse_sync(argv)
            if isinstance(req, bytes):
                one_line(req)
                continue
            for capa in (False, True):
                d = decide(req, hist, capa)
                assert isinstance(d, Continue) == oracle(req, hist), (req, hist, d)
                if isinstance(d, Continue):
                    assert d.offset == req.offset
                    one_line(d.line)
                    assert (hist.replid.encode() in d.line) == capa
                else:
                    assert isinstance(d, NeedFullResync)
                    # Our ids never start with "?": `PSYNC ?...` is a requested full sync,
                    # any other refused PSYNC a failed partial one (sync_partial_err).
                    requested = not req.psync or req.forced_full
                    assert (d.reason == "requested") == requested, (req, d)
        else:
            before = acks.ack_offset
            got = acks.process([argv])
            assert acks.ack_offset >= before
            assert all(a.offset <= acks.ack_offset for a in got)


SEEDS = [
    bytes([0, 1, 10, 0, 1, 0, 100, 0])
    + b"*3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n$4\r\n6380\r\n"
    + b"*5\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$4\r\ncapa\r\n$6\r\npsync2\r\n"
    + b"*3\r\n$5\r\nPSYNC\r\n$40\r\n"
    + b"a" * 40
    + b"\r\n$2\r\n50\r\n",
    bytes([1, 0, 60, 0, 1, 0, 100, 0]) + b"PSYNC " + b"a" * 40 + b" 55\r\nPSYNC ? -1\r\nSYNC\r\n",
    bytes([0, 0, 0, 0, 0, 0, 0, 0]) + b"REPLCONF ACK 5 FACK 3\r\nREPLCONF ack x\r\n\n",
    bytes([0, 0, 0, 0, 0, 0, 0, 0]) + b'REPLCONF rdb-filter-only "functions" ip-address x\r\n',
]
