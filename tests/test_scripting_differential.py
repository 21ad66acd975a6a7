"""Scripting, differentially: hundreds of scripts and functions sent to a REAL read-only
replica (the oracle) and to the relay, replicas of the same master, compared byte for byte
in RESP2 and RESP3 (tests/harness/scripting_cases.py lists them).

Per server kind (module-scoped): a master gets data of every type and a function library;
a real replica and the relay sync from it (the library reaches both in the snapshot); a
second and a third library are loaded on the master (they reach both through the stream).
The cases then run in one order on each side, each on its own connection: math.random's
sequence and cjson's settings carry over between scripts alike on both sides.

Not compared byte for byte, with why: replies listing several libraries (FUNCTION LIST,
FUNCTION DUMP) come in a hash table's order on a real server, so they are compared as sets;
against Valkey, the cases of `ORDER_DEPENDENT` are compared as unordered data (Valkey's Lua
hashes strings with murmur32, the relay's Lua 5.1 as stock Lua and Redis do; see
docs/scripting.md).

Also here: a busy script makes another client get -BUSY and SCRIPT KILL (FUNCTION KILL for
a function) ends it, on the relay as on the replica; and the relay's scripts see data the
stream changes between them, and none during one.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import hiredis
import pytest

from replproxy.keyspace.t_function import parse_function_dump
from replproxy.resp.request import encode_command
from tests.conftest import KINDS
from tests.harness.readcheck import read_reply
from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.scripting_cases import (
    DATA,
    ORDER_DEPENDENT,
    SINGLE_LIBRARY,
    SNAPSHOT_LIBRARY,
    STREAM_LIBRARY,
    UNORDERED,
    cases,
)
from tests.harness.servers import RedisServer, ServerKind, start_server, wait_for

pytestmark = pytest.mark.client_dialect

SCRIPT_KINDS = [k for k in KINDS if k.major >= 7]
BUSY_MS = 100


class Conn:
    """One raw connection: RESP bytes in and out."""

    def __init__(self, port: int, proto: int = 2, timeout: float = 30) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        if proto == 3:
            self.call([b"HELLO", b"3"])

    def send(self, argv: list[bytes]) -> None:
        self.sock.sendall(encode_command(argv))

    def read(self) -> bytes:
        return read_reply(self.sock, self.buf)

    def call(self, argv: list[bytes]) -> bytes:
        self.send(argv)
        return self.read()

    def close(self) -> None:
        self.sock.close()


def _b(argv: list[str]) -> list[bytes]:
    return [a.encode("latin-1") for a in argv]


@dataclass
class Pair:
    kind: ServerKind
    master: RedisServer
    replica: RedisServer
    relay: RelayProcess


def _synced(master: RedisServer, replica: RedisServer, relay: RelayProcess) -> None:
    target = int(master.info("replication")["master_repl_offset"])

    def done() -> bool:
        r = replica.info("replication")
        return (
            r.get("master_link_status") == "up"
            and int(r["slave_repl_offset"]) >= target
            and int(relay.info()["slave_repl_offset"]) >= target
        )

    wait_for(done, 60, what="replica and relay to catch up")


@pytest.fixture(scope="module", params=SCRIPT_KINDS, ids=[k.name for k in SCRIPT_KINDS])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    kind: ServerKind = request.param
    master = start_server(kind)
    replica = relay = None
    try:
        with master.client() as c:
            for cmd in DATA:
                c.execute_command(*cmd)
            c.execute_command("FUNCTION", "LOAD", SNAPSHOT_LIBRARY)
        replica = start_server(
            kind,
            extra={"replicaof": f"127.0.0.1 {master.port}", "busy-reply-threshold": str(BUSY_MS)},
        )
        relay = start_relay(upstream_url(master), "--busy-reply-threshold", str(BUSY_MS))
        _synced(master, replica, relay)
        with master.client() as c:
            c.execute_command("FUNCTION", "LOAD", STREAM_LIBRARY)
            c.execute_command("FUNCTION", "LOAD", SINGLE_LIBRARY)
        _synced(master, replica, relay)
        yield Pair(kind, master, replica, relay)
    finally:
        for s in (relay, replica, master):
            if s is not None:
                s.stop()


def _normalized(reply: bytes) -> object:
    """A multi-library reply without the order a hash table gives it: FUNCTION LIST as a
    sorted list of libraries with sorted functions, FUNCTION DUMP as its sorted libraries."""
    r = hiredis.Reader(notEnoughData=None)
    r.feed(reply)
    value = r.gets()
    if isinstance(value, bytes):  # FUNCTION DUMP
        return sorted(f.code for f in parse_function_dump(value)), value[-10:-8]

    def freeze(v: object) -> object:
        if isinstance(v, list):
            return tuple(freeze(x) for x in v)
        if isinstance(v, dict):
            return tuple(sorted((freeze(k), freeze(x)) for k, x in v.items()))
        return v

    libs = []
    for lib in value:
        items = list(lib.items()) if isinstance(lib, dict) else list(zip(lib[::2], lib[1::2]))
        fixed = []
        for k, v in items:
            if k == b"functions":
                v = sorted(freeze(f) for f in v)
            fixed.append((k, freeze(v)))
        libs.append(tuple(fixed))
    return sorted(libs)


def _cases(pair: Pair) -> list[list[str]]:
    return cases(redis70=not pair.kind.is_valkey and pair.kind.version < (7, 2, 0))


def _unordered(reply: bytes) -> object:
    """A reply as data with every order taken out: arrays as sorted lists, JSON texts as
    their (key-sorted) data, other strings as their sorted bytes (msgpack maps)."""
    r = hiredis.Reader(notEnoughData=None)
    r.feed(reply)
    value = r.gets()

    def canon(v: object) -> object:
        if isinstance(v, list):
            return sorted(repr(canon(x)) for x in v)
        if isinstance(v, dict):
            return sorted(repr((canon(k), canon(x))) for k, x in v.items())
        if isinstance(v, set):
            return sorted(repr(canon(x)) for x in v)
        if isinstance(v, bytes):
            try:
                return json.dumps(json.loads(v), sort_keys=True)
            except ValueError:
                return bytes(sorted(v))
        return repr(v)

    return canon(value)


def _run_cases(pair: Pair, port: int, proto: int) -> list[bytes]:
    out = []
    conn = Conn(port, proto)
    try:
        for argv in _cases(pair):
            out.append(conn.call(_b(argv)))
    finally:
        conn.close()
    return out


def test_scripts_and_functions_answer_as_on_a_replica(pair: Pair) -> None:
    """Every case, in RESP2 then RESP3, gets the replica's bytes from the relay."""
    all_cases = _cases(pair)
    assert len(all_cases) > 500
    mismatches = []
    for proto in (2, 3):
        oracle = _run_cases(pair, pair.replica.port, proto)
        sut = _run_cases(pair, pair.relay.port, proto)
        for argv, o, s in zip(all_cases, oracle, sut, strict=True):
            if o == s:
                continue
            if argv in UNORDERED and _normalized(o) == _normalized(s):
                continue
            if (
                pair.kind.is_valkey
                and tuple(argv) in ORDER_DEPENDENT
                and _unordered(o) == _unordered(s)
            ):
                continue
            mismatches.append(
                f"RESP{proto} {argv!r}\n  replica: {o[:300]!r}\n  relay:   {s[:300]!r}"
            )
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:40])


def test_unordered_replies_hold_several_libraries(pair: Pair) -> None:
    """The set comparison above is not vacuous: both sides list the three libraries."""
    for port in (pair.replica.port, pair.relay.port):
        conn = Conn(port)
        listed = conn.call(_b(["FUNCTION", "LIST"]))
        conn.close()
        assert all(lib.encode() in listed for lib in ("snaplib", "streamlib", "single"))


# Serving other clients while a script runs (-BUSY, SCRIPT KILL) is the reactor's: with one
# task per client (REPLPROXY_NO_REACTOR=1, a reference mode) a busy script holds the event
# loop until it ends (docs/scripting.md), so those tests cannot run there.
needs_reactor = pytest.mark.skipif(
    os.environ.get("REPLPROXY_NO_REACTOR", "") not in ("", "0"),
    reason="a busy script serves other clients through the reactor only",
)


def _busy(port: int, argv: list[bytes], kill: list[bytes]) -> tuple[bytes, ...]:
    """Client A runs a script that loops; client B sees -BUSY once it runs past the
    threshold, FUNCTION STATS (its shape), a wrong KILL, then the right KILL; A gets the
    kill error. Returns every reply, for the comparison."""
    a, b = Conn(port), Conn(port)
    try:
        # Both connections established (the relay serves clients waiting on its reactor
        # while a script is busy; one still being accepted waits for the script's end).
        assert a.call([b"PING"]) == b.call([b"PING"]) == b"+PONG\r\n"
        a.send(argv)
        # Until A's script runs (a PING that gets in first is answered PONG), B's command
        # waits for the script to pass the threshold and gets -BUSY.
        deadline = time.monotonic() + 30
        while True:
            busy = b.call([b"PING"])
            if busy.startswith(b"-BUSY") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        get = b.call([b"GET", b"str"])
        stats = b.call([b"FUNCTION", b"STATS"])
        if stats.startswith(b"*") or stats.startswith(b"%"):
            # duration_ms differs from run to run: keep the reply's shape and names
            stats = b"stats:" + bytes(stats.split(b"duration_ms")[0])
        wrong = b.call([b"FUNCTION" if kill[0] == b"SCRIPT" else b"SCRIPT", b"KILL"])
        killed = b.call(kill)
        result = a.read()
        after = b.call([b"PING"])
        notbusy = b.call(kill)
        return busy, get, stats, wrong, killed, result, after, notbusy
    finally:
        a.close()
        b.close()


@needs_reactor
@pytest.mark.parametrize("script", ["eval", "fcall"])
def test_busy_script_gets_busy_and_script_kill(pair: Pair, script: str) -> None:
    """A script looping past busy-reply-threshold: others get -BUSY (or run the allow_busy
    commands), the wrong KILL is refused, the right one ends it with the kill error."""
    if script == "eval":
        argv = _b(["EVAL", "local i = 0 while true do i = i + 1 end", "0"])
        kill = _b(["SCRIPT", "KILL"])
    else:
        with pair.master.client() as c:
            c.execute_command(
                "FUNCTION",
                "LOAD",
                "REPLACE",
                "#!lua name=looplib\n"
                "redis.register_function{function_name='loop', flags={'no-writes'},"
                " callback=function() local i = 0 while true do i = i + 1 end end}",
            )
        _synced(pair.master, pair.replica, pair.relay)
        argv = _b(["FCALL_RO", "loop", "0"])
        kill = _b(["FUNCTION", "KILL"])
    oracle = _busy(pair.replica.port, argv, kill)
    sut = _busy(pair.relay.port, argv, kill)
    assert oracle[0].startswith(b"-BUSY")
    assert b"killed by user" in oracle[5]
    assert sut == oracle


@needs_reactor
def test_busy_script_in_a_coroutine_is_killed(pair: Pair) -> None:
    """The count hook reaches a loop inside a coroutine (Lua does not pass a hook on to new
    threads by itself)."""
    argv = _b(["EVAL", "local co = coroutine.wrap(function() while true do end end) co()", "0"])
    kill = _b(["SCRIPT", "KILL"])
    oracle = _busy(pair.replica.port, argv, kill)
    sut = _busy(pair.relay.port, argv, kill)
    assert sut == oracle


@needs_reactor
def test_pcall_cannot_keep_a_killed_script_alive(pair: Pair) -> None:
    argv = _b(["EVAL", "while true do pcall(function() while true do end end) end", "0"])
    kill = _b(["SCRIPT", "KILL"])
    oracle = _busy(pair.replica.port, argv, kill)
    sut = _busy(pair.relay.port, argv, kill)
    assert sut == oracle


def test_scripts_see_the_stream_between_runs(pair: Pair) -> None:
    """A script reads what the master wrote before it ran (through the stream)."""
    with pair.master.client() as c:
        c.set("streamed", "one")
    _synced(pair.master, pair.replica, pair.relay)
    argv = _b(["EVAL", "return redis.call('GET', 'streamed')", "0"])
    for port in (pair.replica.port, pair.relay.port):
        conn = Conn(port)
        assert conn.call(argv) == b"$3\r\none\r\n"
        conn.close()
    with pair.master.client() as c:
        c.set("streamed", "two")
    _synced(pair.master, pair.replica, pair.relay)
    conn = Conn(pair.relay.port)
    assert conn.call(argv) == b"$3\r\ntwo\r\n"
    conn.close()
