"""MONITOR of the relay's own clients, against a REAL replica of the same master: the same
lines (timestamps and client addresses masked) for the same client commands, and the same
replies to the monitors themselves.

Covered: a command's line follows it (and its reply, for the monitor's own commands);
refused commands (unknown, READONLY, arity, a monitor reading keys) are not shown; admin
commands (CLIENT LIST, CONFIG GET) are not shown; AUTH and HELLO AUTH show `(redacted)`;
arguments are escaped as `sdscatrepr`; the DB is the one after the command (SELECT); a
transaction shows MULTI, its commands at EXEC, then EXEC, and a refused EXEC shows EXEC;
CLIENT REPLY OFF silences a monitor; a second MONITOR gets no reply; RESET ends it; RESP3
monitors get the same lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.harness.servers import ServerKind
from tests.harness.taps import Tap, first_difference
from tests.harness.triple import Triple, triple

# Every version: the older ones too (Redis 6.2; a 5.0 master skips, see CLIENT_DIALECT_SKIP).
pytestmark = [pytest.mark.client_dialect, pytest.mark.every_version]

_MASK = re.compile(rb"\+\d+\.\d{6} \[(\d+) [^\]]+\]")


def masked(raw: bytes) -> bytes:
    return _MASK.sub(rb"+T [\1 ADDR]", raw)


@pytest.fixture
def three(server_kind: ServerKind) -> Iterator[Triple]:
    with triple(server_kind, master_extra={"repl-ping-replica-period": "3600"}) as t:
        with t.master.client() as m:
            m.set("k", "v")
            m.xadd("s", {"f": "v"}, id="1-1")
        t.sync()
        yield t


WORKER: list[list[str | bytes]] = [
    ["PING"],
    ["ECHO", b'a"b\\c\n\r\t\x07\x08\x01\xff z'],
    ["SELECT", "2"],
    ["GET", "k"],
    ["SELECT", "0"],
    ["MGET", "k", "nokey"],
    ["AUTH", "secret"],
    ["AUTH", "user", "secret"],
    ["AUTH", "a", "b", "c"],
    ["HELLO", "2", "AUTH", "default", "pw", "SETNAME", "w"],
    ["HELLO", "9", "AUTH", "default", "pw"],
    ["CLIENT", "LIST"],
    ["CONFIG", "GET", "maxmemory"],
    ["SET", "k", "v"],
    ["NOSUCHCOMMAND", "x"],
    ["GET"],
    ["MULTI"],
    ["GET", "k"],
    ["PING", "in-multi"],
    ["EXEC"],
    ["MULTI"],
    ["SET", "k", "x"],
    ["EXEC"],
    ["XREAD", "BLOCK", "50", "STREAMS", "s", "$"],
    ["TYPE", "k"],
    ["CLIENT", "REPLY", "OFF"],
    ["PING", "unseen reply"],
    ["CLIENT", "REPLY", "ON"],
    ["SUBSCRIBE", "ch"],
    ["UNSUBSCRIBE", "ch"],
    ["PUBLISH", "ch", "m"],
    ["RESET"],
]


def run_on(port: int) -> tuple[bytes, bytes, bytes, bytes]:
    watcher = Tap(port)
    watcher.call(["MONITOR"])
    watcher3 = Tap(port, proto=3)
    watcher3.call(["MONITOR"])
    # A monitor's own commands: its line follows its reply; reads are refused.
    self_mon = Tap(port)
    self_mon.call(["MONITOR"], ["PING"], ["GET", "k"], ["EXISTS", "k"], ["ECHO", "me"])
    self_mon.sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")  # already one: no reply at all
    worker = Tap(port)
    for cmd in WORKER:
        if cmd == ["CLIENT", "REPLY", "OFF"]:
            worker.sock.sendall(b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n")
            continue
        if cmd == ["PING", "unseen reply"]:
            worker.sock.sendall(b"*2\r\n$4\r\nPING\r\n$12\r\nunseen reply\r\n")
            continue
        worker.call(cmd)
    self_mon.call(["SELECT", "3"], ["RESET"], ["PING", "after reset"])
    for tap in (watcher, watcher3, self_mon, worker):
        tap.drain(0.3)
    return (
        bytes(watcher.transcript),
        bytes(watcher3.transcript),
        bytes(self_mon.transcript),
        bytes(worker.transcript),
    )


def test_client_lines_match_a_real_replica(three: Triple) -> None:
    relay = run_on(three.relay.port)
    replica = run_on(three.replica.port)
    names = ["monitor (RESP2)", "monitor (RESP3)", "monitoring client", "worker"]
    for name, a, b in zip(names, relay, replica):
        if name == "worker":
            # Replies naming the server or the clients (HELLO's id, and its module list on
            # Redis 8.2: vector sets; CLIENT LIST; CONFIG GET) are compared elsewhere.
            for pattern, token in (
                (rb"\*14\r\n\$6\r\nserver.*?(?=-NOPROTO)", b"HELLO"),
                (rb"\$\d+\r\nid=.*?\n\r\n", b"LIST"),
                (rb"\$9\r\nmaxmemory\r\n\$\d+\r\n\d+\r\n", b"MAXMEM"),
            ):
                a, b = (re.sub(pattern, token, x, flags=re.S) for x in (a, b))
        a, b = masked(a), masked(b)
        assert a == b, name + ": " + first_difference(a, b) + f"\n{a!r}\n{b!r}"
    assert b'"AUTH" "(redacted)" "(redacted)"' in masked(relay[0])
    assert b'"ECHO" "a\\"b\\\\c\\n\\r\\t\\a\\b\\x01\\xff z"' in masked(relay[0])
