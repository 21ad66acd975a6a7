"""Fuzz target: the replica-link state machine (`replproxy/link/protocol.py`).

The link is first driven to one of its states with a well-formed exchange (waiting for PONG,
for the handshake replies, for the PSYNC reply, for the snapshot header, inside a disk or a
diskless payload, streaming after a full or a partial resync), then fed arbitrary bytes.
Whatever they are, it must only ever produce events (a `LinkError` ends it, in state CLOSED,
and nothing follows), the commands it hands out must be exactly a prefix of the stream with
exact offsets, everything it sends must be well-formed, and, outside a diskless payload (where
Redis too finds the end mark only at the end of a read), chunking must not matter.
"""

from __future__ import annotations

from typing import Any

from replproxy.link.protocol import (
    Commands,
    FullResync,
    LinkConfig,
    LinkError,
    LinkState,
    PartialResync,
    ReplicaLink,
    SnapshotData,
    encode_command,
)
from replproxy.resp.request import RequestParser
from tests.fuzz.common import Input, chunks

REPLID = "9" * 40
MARK = b"M" * 40
HANDSHAKE = b"+PONG\r\n+OK\r\n+OK\r\n"
AUTH_HANDSHAKE = b"-NOAUTH Authentication required.\r\n+OK\r\n+OK\r\n+OK\r\n"

# (name, config has a password, psync history, prefix driving the link to its state)
SCENARIOS: list[tuple[str, bool, bool, bytes]] = [
    ("pong", False, False, b""),
    ("auth-pong", True, False, b""),
    ("handshake", False, False, b"+PONG\r\n"),
    ("psync-full", False, False, HANDSHAKE),
    ("psync-partial", False, True, HANDSHAKE),
    ("bulk-header", False, False, HANDSHAKE + f"+FULLRESYNC {REPLID} 100\r\n".encode()),
    (
        "disk-payload",
        False,
        False,
        HANDSHAKE + f"+FULLRESYNC {REPLID} 100\r\n".encode() + b"$20\r\nREDIS0011",
    ),
    (
        "diskless-payload",
        False,
        False,
        HANDSHAKE + f"+FULLRESYNC {REPLID} 100\r\n".encode() + b"$EOF:" + MARK + b"\r\nREDIS",
    ),
    (
        "stream-after-full",
        False,
        False,
        HANDSHAKE + f"+FULLRESYNC {REPLID} 100\r\n".encode() + b"$3\r\nabc",
    ),
    ("stream-after-continue", True, True, AUTH_HANDSHAKE + f"+CONTINUE {REPLID}\r\n".encode()),
]


def drive(name: str, password: bool, history: bool, pieces: list[bytes]) -> dict[str, Any]:
    cfg = LinkConfig(
        6380, announce_ip="127.0.0.1" if password else None, password="pw" if password else None
    )
    link = ReplicaLink(cfg, REPLID if history else "?", 5001 if history else -1)
    link.initiate()
    sent = bytearray(link.data_to_send())
    kinds: list[str] = []
    snapshot = bytearray()
    commands: list[tuple[Any, ...]] = []
    closed = False
    for piece in pieces:
        link.receive_data(piece)
        events = link.next_events()
        if link.state is LinkState.LOADING:
            link.send_loading_keepalive()
            link.snapshot_loaded()
            events += link.next_events()
        for ev in events:
            assert not closed, f"event after the link closed: {ev!r}"
            k = type(ev).__name__
            if not (kinds and kinds[-1] == k and k in ("SnapshotData", "Commands")):
                kinds.append(k)
            if isinstance(ev, LinkError):
                closed = True
                assert link.state is LinkState.CLOSED
                assert "\x1b" not in ev.reason and "\x00" not in ev.reason
            elif isinstance(ev, SnapshotData):
                snapshot += ev.data
            elif isinstance(ev, Commands):
                commands += [tuple(c) for c in ev.commands]
            elif isinstance(ev, PartialResync):
                assert history, "+CONTINUE accepted after PSYNC ? -1"
            elif isinstance(ev, FullResync):
                assert ev.replid is None or len(ev.replid) == 40
        sent += link.data_to_send()
    link.send_ack(link.stream_offset)  # once: ACKs per read would depend on the chunking
    sent += link.data_to_send()
    # Whatever we sent parses as commands (and `\n` keep-alives).
    parser = RequestParser(use_hiredis=False)
    parser.feed(bytes(sent))
    parser.next_requests()
    return {
        "kinds": kinds,
        "snapshot": bytes(snapshot),
        "commands": commands,
        "sent": bytes(sent),
        "state": link.state,
        "offset": link.stream_offset,
    }


def check(data: bytes) -> None:
    inp = Input(data)
    which, seed = inp.byte(), inp.int(2)
    name, password, history, prefix = SCENARIOS[which % len(SCENARIOS)]
    payload = inp.rest()
    whole = drive(name, password, history, [prefix, payload])
    for k in whole["commands"]:
        assert type(k[0]) is list
    if whole["commands"]:
        raws = b"".join(c[1] for c in whole["commands"])
        first_end = whole["commands"][0][2]
        stream_start = first_end - len(whole["commands"][0][1])
        assert whole["commands"][-1][2] == stream_start + len(raws)
        assert raws in prefix + payload  # the stream bytes, in order, none invented
    if name == "diskless-payload":
        return
    cut = drive(name, password, history, [prefix, *chunks(payload, seed)])
    assert cut == whole, (cut, whole)


SEEDS = [
    bytes([i, 1, 0]) + p
    for i, p in enumerate(
        [
            b"+PONG\r\n+OK\r\n",
            b"-NOAUTH x\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n",
            b"+OK\r\n+OK\r\n",
            f"+FULLRESYNC {REPLID} 7\r\n\n$5\r\nREDISabc".encode(),
            f"+CONTINUE {'8' * 40}\r\n".encode() + encode_command("SET", "k", "v"),
            b"\n$EOF:" + MARK + b"\r\nREDIS0011xyz" + MARK,
            b"REDIS0011xyz" + encode_command("PING"),
            b"0011xyzabc" + MARK,
            encode_command("SELECT", "1") + encode_command("REPLCONF", "GETACK", "*") + b"\n",
            encode_command("SET", "a", "1") + b"SET evil 1\r\n",
        ]
    )
]
