"""Client-side caching against a REAL replica of the same master: the relay's clients get
the same invalidation messages, in the same order, byte for byte.

For each master kind a real replica and the relay follow one master; on each of them the
same clients track keys (a RESP3 connection in default mode, a RESP2 connection redirecting
to a RESP2 `__redis__:invalidate` subscriber, an OPTIN one, an OPTOUT one and BCAST ones
with prefixes), and the master writes: every type, transactions, a script, DEL, RENAME,
MOVE, SWAPDB, keys expiring (the master's DEL), FLUSHDB, FLUSHALL, then a full resync (the
master restarts empty with a new replication ID). The master is quiet while the clients
read, and every step waits until both replicas applied it, so each server sees the reads
and the writes in the same order; the transcripts (every byte each client received) must
be equal.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from tests.harness.servers import RedisServer, ServerKind
from tests.harness.taps import Tap, first_difference
from tests.harness.triple import Triple, triple

# Every version: the older ones too (Redis 6.2; a 5.0 master skips, see CLIENT_DIALECT_SKIP).
pytestmark = [pytest.mark.client_dialect, pytest.mark.every_version]

KEYS = [f"{p}:{i}" for p in ("s", "h", "l", "set", "z", "x", "n") for i in range(4)] + [
    "s:0r",
    "solo",
    "tmp",
]


@pytest.fixture
def three(server_kind: ServerKind) -> Iterator[Triple]:
    with triple(server_kind) as t:
        yield t


class Clients:
    """One server's tracking clients."""

    def __init__(self, port: int) -> None:
        self.default = Tap(port, proto=3)
        self.default.call(["CLIENT", "TRACKING", "ON"])
        self.sub = Tap(port)
        (sub_id,) = self.sub.call(["CLIENT", "ID"], keep=False)
        self.sub.call(["SUBSCRIBE", "__redis__:invalidate"])
        self.redirecting = Tap(port)
        self.redirecting.call(
            ["CLIENT", "TRACKING", "ON", "REDIRECT", sub_id], ["CLIENT", "GETREDIR"], keep=False
        )
        self.optin = Tap(port, proto=3)
        self.optin.call(["CLIENT", "TRACKING", "ON", "OPTIN"])
        self.optout = Tap(port, proto=3)
        self.optout.call(["CLIENT", "TRACKING", "ON", "OPTOUT", "NOLOOP"])
        self.bcast = Tap(port, proto=3)
        self.bcast.call(
            ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "s:", "PREFIX", "h", "PREFIX", "z:1"]
        )
        self.bcast_all = Tap(port)  # RESP2 BCAST without redirection: tracked, never told
        self.bcast_all.call(["CLIENT", "TRACKING", "ON", "BCAST"])
        self.taps = [
            self.default,
            self.sub,
            self.redirecting,
            self.optin,
            self.optout,
            self.bcast,
            self.bcast_all,
        ]

    def read(self, round_no: int) -> None:
        """Every client reads (tracks) the keys, each its own way."""
        reads = [["TYPE", k] for k in KEYS] + [
            ["EXISTS", "s:0", "s:1", "solo"],
            ["MGET", "s:2", "s:3"],
            ["STRLEN", "n:0"],
        ]
        self.default.call(*reads)
        self.redirecting.call(*reads)
        # OPTIN: only the command right after CLIENT CACHING yes (and a transaction).
        self.optin.call(
            ["CLIENT", "CACHING", "YES"],
            ["TYPE", KEYS[round_no % len(KEYS)]],
            ["TYPE", "solo"],
            ["CLIENT", "CACHING", "YES"],
            ["MULTI"],
            ["TYPE", "h:1"],
            ["EXISTS", "x:2", "l:0"],
            ["EXEC"],
        )
        # OPTOUT: all but the command after CLIENT CACHING no.
        self.optout.call(
            ["CLIENT", "CACHING", "NO"],
            ["TYPE", "s:0"],
            ["TYPE", "s:1"],
            ["TYPE", "z:2"],
            ["CLIENT", "TRACKINGINFO"],
        )
        self.bcast.call(["TYPE", "s:0"], ["CLIENT", "TRACKINGINFO"])

    def drain(self) -> None:
        for t in self.taps:
            t.drain(0.15)


def step(
    t: Triple,
    clients: dict[str, Clients],
    *commands: list[object],
    db: int = 0,
    read: int | None = None,
) -> None:
    """The master runs `commands` (one at a time, each applied by both replicas before
    the next: BCAST batches follow the master's writes), then every client drains and, if
    `read` is given, reads again."""
    with t.master.client(db=db) as m:
        for cmd in commands:
            with contextlib.suppress(Exception):  # a refused command writes nothing
                m.execute_command(*cmd)
            t.sync()
    if not commands:
        t.sync()
    for cl in clients.values():
        cl.drain()
    if read is not None:
        for cl in clients.values():
            cl.read(read)


def transaction(master: RedisServer, *commands: list[object]) -> None:
    with master.client() as m:
        p = m.pipeline(transaction=True)
        for c in commands:
            p.execute_command(*c)
        p.execute(raise_on_error=False)


def test_invalidations_match_a_real_replica(three: Triple) -> None:
    t = three
    clients = {name: Clients(port) for name, port in t.ports.items()}
    step(t, clients, read=0)
    step(
        t,
        clients,
        ["SET", "s:0", "a"],
        ["SET", "solo", "1"],
        ["INCR", "n:0"],
        ["HSET", "h:1", "f", "v"],
        ["LPUSH", "l:0", "a", "b"],
        ["SADD", "set:1", "m"],
        ["ZADD", "z:1", "1", "m"],
        ["XADD", "x:2", "1-1", "f", "v"],
        read=1,
    )
    step(
        t,
        clients,
        ["APPEND", "s:0", "b"],
        ["MSET", "s:1", "1", "s:2", "2", "zz", "3"],
        ["HSET", "h:1", "g", "w"],
        ["RPOP", "l:0"],
        ["SREM", "set:1", "m"],
        read=2,
    )
    transaction(
        t.master,
        ["SET", "s:3", "x"],
        ["ZADD", "z:1", "2", "n"],
        ["DEL", "solo"],
        ["HSET", "h:2", "a", "b"],
    )
    step(
        t,
        clients,
        ["EVAL", "redis.call('SET', KEYS[1], 'v') redis.call('INCR', KEYS[2])", "2", "tmp", "n:1"],
        read=3,
    )
    # Another DB: keys are tracked by name whatever the DB.
    step(
        t,
        clients,
        ["SET", "s:0", "other-db"],
        ["SWAPDB", "0", "5"],
        ["SWAPDB", "0", "5"],
        db=5,
        read=4,
    )
    step(
        t,
        clients,
        ["RENAME", "s:0", "s:0r"],
        ["MOVE", "h:1", "3"],
        ["PUBLISH", "c", "m"],
        ["SET", "s:1", "t", "PX", "150"],
        read=5,
    )
    # The master's DEL of the expired key (lazily, on its own GET), then a flush of one DB.
    with t.master.client() as m:
        time.sleep(0.2)
        m.get("s:1")
    step(t, clients, ["PEXPIRE", "s:2", "50"], read=6)
    with t.master.client() as m:
        time.sleep(0.1)
        m.exists("s:2")
    step(t, clients, ["FLUSHDB"], read=7)
    step(t, clients, ["SET", "s:0", "1"], ["SET", "z:10", "1"], ["FLUSHALL"], read=8)
    step(t, clients, ["SET", "h", "1"], ["SET", "hh", "2"], read=9)
    # A full resync: the master restarts empty (a new history); both replicas empty their
    # dataset, which is a null invalidation for every tracking client.
    t.master.restart()
    step(t, clients)  # both resynced (a write before that would be in their snapshot)
    step(t, clients, ["SET", "s:0", "new"], read=10)

    relay, replica = clients["relay"], clients["replica"]
    names = ["default", "sub", "redirecting", "optin", "optout", "bcast", "bcast_all"]
    for name, a, b in zip(names, relay.taps, replica.taps):
        assert bytes(a.transcript) == bytes(b.transcript), (
            name + ": " + first_difference(bytes(a.transcript), bytes(b.transcript))
        )
    # Not vacuous: invalidations of every kind went out.
    assert b"invalidate" in relay.default.transcript
    assert b"__redis__:invalidate" in relay.sub.transcript
    assert b">2\r\n$10\r\ninvalidate\r\n_\r\n" in relay.default.transcript  # null (flush)
    assert b">2\r\n$10\r\ninvalidate\r\n*2\r\n" in relay.bcast.transcript  # a batch


REPLIES = [
    ["CLIENT", "GETREDIR"],
    ["CLIENT", "TRACKINGINFO"],
    ["CLIENT", "CACHING", "YES"],
    ["CLIENT", "TRACKING", "MAYBE"],
    ["CLIENT", "TRACKING", "ON", "PREFIX", "a"],
    ["CLIENT", "TRACKING", "ON", "BCAST", "OPTIN"],
    ["CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT"],
    ["CLIENT", "TRACKING", "ON", "REDIRECT", "abc"],
    ["CLIENT", "TRACKING", "ON", "REDIRECT", "999999"],
    ["CLIENT", "TRACKING", "ON", "REDIRECT", "ME", "REDIRECT", "2"],
    ["CLIENT", "TRACKING", "ON", "NOSUCHOPTION"],
    ["CLIENT", "TRACKING", "ON", "PREFIX"],
    ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ab", "PREFIX", "a"],
    ["CLIENT", "TRACKING", "ON", "OPTIN"],
    ["CLIENT", "TRACKINGINFO"],
    ["CLIENT", "CACHING", "NO"],
    ["CLIENT", "CACHING", "MAYBE"],
    ["CLIENT", "CACHING", "YES"],
    ["CLIENT", "TRACKINGINFO"],
    ["CLIENT", "TRACKING", "ON", "OPTOUT"],
    ["CLIENT", "TRACKING", "ON", "BCAST"],
    ["CLIENT", "TRACKING", "OFF"],
    ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "b", "PREFIX", "a", "NOLOOP"],
    ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "bc"],
    ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "c"],
    ["CLIENT", "TRACKINGINFO"],
    ["CLIENT", "GETREDIR"],
    ["CLIENT", "TRACKING", "OFF"],
    ["CLIENT", "TRACKING", "OFF"],
    ["CLIENT", "TRACKINGINFO"],
    ["CONFIG", "SET", "notify-keyspace-events", "Q"],
    ["CONFIG", "SET", "notify-keyspace-events", "KEA", "notify-keyspace-events", "E"],
    ["CONFIG", "SET", "tracking-table-max-keys", "-1"],
    ["CONFIG", "SET", "tracking-table-max-keys", "x1"],
    ["CONFIG", "SET", "tracking-table-max-keys", "5", "notify-keyspace-events", "Kx$"],
    ["CONFIG", "GET", "notify-keyspace-events"],
    ["CONFIG", "GET", "tracking-table-max-keys"],
    ["CONFIG", "SET", "notify-keyspace-events", "AKEn", "tracking-table-max-keys", "1000000"],
    ["CONFIG", "GET", "notify-keyspace-events"],
    ["CONFIG", "SET", "notify-keyspace-events", ""],
]


@pytest.mark.parametrize("proto", [2, 3])
def test_tracking_commands_answer_as_a_replica(three: Triple, proto: int) -> None:
    """CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO and the two settable CONFIG
    parameters: the same replies, errors included, in the same order."""
    got = {}
    for name, port in three.ports.items():
        tap = Tap(port, proto=proto)
        (me,) = tap.call(["CLIENT", "ID"], keep=False)
        tap.call(*[[str(me) if a == "ME" else a for a in cmd] for cmd in REPLIES])
        got[name] = bytes(tap.transcript)
    assert got["relay"] == got["replica"], first_difference(got["relay"], got["replica"])


def test_a_blocked_read_tracks_its_keys_as_a_replica(three: Triple) -> None:
    """XREAD BLOCK tracks its stream; woken by the master's XADD it is invalidated, and on
    7.2+ (which runs the woken command again) tracked again, so the next XADD invalidates
    it once more; on 7.0 it does not."""
    t = three
    with t.master.client() as m:
        m.xadd("st", {"f": "v"}, id="1-1")
    t.sync()
    taps = {}
    for name, port in t.ports.items():
        tap = Tap(port, proto=3)
        tap.call(["CLIENT", "TRACKING", "ON"])
        tap.sock.sendall(
            b"*6\r\n$5\r\nXREAD\r\n$5\r\nBLOCK\r\n$1\r\n0\r\n$7\r\nSTREAMS\r\n"
            b"$2\r\nst\r\n$1\r\n$\r\n"
        )
        taps[name] = tap
    time.sleep(0.3)
    with t.master.client() as m:
        m.xadd("st", {"f": "w"}, id="2-1")
        t.sync()
        for tap in taps.values():
            tap.drain(0.3)
        m.xadd("st", {"f": "x"}, id="3-1")
        t.sync()
    got = {}
    for name, tap in taps.items():
        tap.drain(0.3)
        got[name] = bytes(tap.transcript)
    assert got["relay"] == got["replica"], first_difference(got["relay"], got["replica"])
    assert b"invalidate" in got["relay"]
