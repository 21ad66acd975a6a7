"""Keyspace notifications and MONITOR against a REAL replica of the same master.

A real replica and the relay follow one master, both with the same `notify-keyspace-events`
(every class, `new` keys, and Redis 8.2's `overwritten`/`type_changed`); on each, a RESP2
and a RESP3 client PSUBSCRIBE to everything and a client runs MONITOR. The master runs the
random workload of every type (transactions, scripts, functions, blocking pops served,
RESTORE, SORT STORE, SWAPDB, FLUSHDB, keys expiring mid-run), hash field TTLs where the
master has them, PUBLISH, and evictions (a small maxmemory with a random policy: the
master's DELs). The Pub/Sub transcripts must be equal byte for byte, and the MONITOR lines
of the master's commands equal once timestamps are masked.
"""

from __future__ import annotations

import time

import pytest

from tests.servers import ServerKind
from tests.taps import Tap, first_difference, monitor_lines
from tests.triple import Triple, triple
from tests.workload import Workload

pytestmark = pytest.mark.client_dialect


def flags_for(kind: ServerKind) -> str:
    return "AKEn" + ("oc" if kind.name == "redis8" else "")


def hash_field_ttls(t: Triple) -> None:
    """Hash field TTLs (Redis 7.4+): set, persist, expire (the master's HDELs)."""
    with t.master.client() as m:
        m.hset("hf", mapping={"a": "1", "b": "2", "c": "3", "d": "4"})
        m.execute_command("HEXPIRE", "hf", 100, "FIELDS", 2, "a", "zz")
        m.execute_command("HPERSIST", "hf", "FIELDS", 1, "a")
        m.execute_command("HPEXPIRE", "hf", 30, "FIELDS", 2, "b", "c")
        if t.kind.version >= (8, 0, 0):
            m.execute_command("HSETEX", "hf2", "PX", 60000, "FIELDS", 2, "x", "1", "y", "2")
            m.execute_command("HSETEX", "hf2", "KEEPTTL", "FIELDS", 1, "x", "3")
            m.execute_command("HGETEX", "hf2", "PERSIST", "FIELDS", 1, "y")
            m.execute_command("HGETDEL", "hf2", "FIELDS", 1, "x")
            m.execute_command("HINCRBYFLOAT", "hf2", "y", "1.5")
        time.sleep(0.1)
        m.hgetall("hf")


def evictions(t: Triple) -> int:
    """Keys the master evicts under maxmemory arrive as DELs; how many it evicted."""
    with t.master.client() as m:
        used = int(m.info("memory")["used_memory"])  # type: ignore[call-overload]
        m.config_set("maxmemory-policy", "allkeys-random")
        m.config_set("maxmemory", used + 400_000)
        for i in range(120):
            try:
                m.set(f"big:{i}", "x" * 20_000)
            except Exception:  # OOM once nothing is left to evict
                break
        m.config_set("maxmemory", 0)
        return int(m.info("stats")["evicted_keys"])  # type: ignore[call-overload]


@pytest.mark.parametrize("seed", [14, 15])
def test_notifications_and_monitor_match_a_real_replica(server_kind: ServerKind, seed: int) -> None:
    flags = flags_for(server_kind)
    # No keepalive PING mid-comparison: one landing between the two drains would show on one
    # side only.
    with triple(
        server_kind,
        "--notify-keyspace-events",
        flags,
        replica_extra={"notify-keyspace-events": flags},
        master_extra={"repl-ping-replica-period": "3600"},
    ) as t:
        taps = {}
        for name, port in t.ports.items():
            sub2 = Tap(port)
            sub2.call(["PSUBSCRIBE", "*"])
            sub3 = Tap(port, proto=3)
            sub3.call(["PSUBSCRIBE", "__key*"])
            mon = Tap(port)
            mon.call(["MONITOR"])
            taps[name] = (sub2, sub3, mon)

        w = Workload(t.master, seed=seed, dbs=3, keys=40)
        w.run(500)
        with t.master.client() as m:
            m.publish("news", "hello")
        if not t.kind.is_valkey and t.kind.version >= (7, 4, 0):
            hash_field_ttls(t)
        evicted = evictions(t)
        time.sleep(3.5)  # the workload's EX 1-3 keys expire: the master's DELs
        t.sync()
        for group in taps.values():
            for tap in group:
                tap.drain(0.5)

        (r2, r3, rmon), (p2, p3, pmon) = taps["replica"], taps["relay"]
        for name, a, b in (("RESP2", p2, r2), ("RESP3", p3, r3)):
            assert bytes(a.transcript) == bytes(b.transcript), (
                name + ": " + first_difference(bytes(a.transcript), bytes(b.transcript))
            )
        relay_lines = monitor_lines(bytes(pmon.transcript), t.master_addr)
        replica_lines = monitor_lines(bytes(rmon.transcript), t.master_addr)
        for i, (a, b) in enumerate(zip(relay_lines, replica_lines)):
            assert a == b, f"MONITOR line {i}: {a!r} != {b!r}"
        assert len(relay_lines) == len(replica_lines), (
            relay_lines[len(replica_lines) :][:5],
            replica_lines[len(relay_lines) :][:5],
        )
        # Not vacuous: every kind of event went by.
        events = bytes(p2.transcript)
        for ev in (
            b"$3\r\nset\r\n",
            b"$5\r\nlpush\r\n",
            b"$4\r\nhset\r\n",
            b"$4\r\nsadd\r\n",
            b"$4\r\nzadd\r\n",
            b"$4\r\nxadd\r\n",
            b"$3\r\ndel\r\n",
            b"$6\r\nexpire\r\n",
            b"$3\r\nnew\r\n",
            b"$5\r\npfadd\r\n",
            b"$6\r\nsetbit\r\n",
        ):
            assert ev in events, ev
        assert len(relay_lines) > 500
        assert evicted > 0
        if "o" in flags:
            assert b"$11\r\noverwritten\r\n" in events


READS = [
    ["GET", "missing"],
    ["GET", "str"],
    ["GET", "gone"],  # logically expired: the master has not deleted it yet
    ["MGET", "str", "missing", "gone", "lst"],
    ["EXISTS", "missing", "str", "gone"],
    ["TYPE", "missing"],
    ["TTL", "gone"],
    ["STRLEN", "missing"],
    ["HGET", "missing", "f"],
    ["LRANGE", "lst", "0", "-1"],
    ["LRANGE", "missing", "0", "-1"],
    ["SMEMBERS", "missing"],
    ["ZSCORE", "missing", "m"],
    ["XRANGE", "missing", "-", "+"],
    ["OBJECT", "ENCODING", "missing"],  # LOOKUP_NONOTIFY: no event
    ["DUMP", "missing"],
    ["SELECT", "1"],
    ["GET", "str"],
]


def test_keymiss_events_of_reads(server_kind: ServerKind) -> None:
    """`m`: the reads of the relay's own clients report missing and expired keys as a
    replica's do (OBJECT excepted), and the GET/MGET fast lane steps aside for it."""
    with triple(
        server_kind,
        "--notify-keyspace-events",
        "Em",
        replica_extra={"notify-keyspace-events": "Em"},
    ) as t:
        with t.master.client() as m:
            m.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0")
            m.set("str", "v")
            m.rpush("lst", "a")
            m.set("gone", "x", px=1)
        time.sleep(0.05)
        t.sync()
        got = {}
        for name, port in t.ports.items():
            sub = Tap(port)
            sub.call(["SUBSCRIBE", "__keyevent@0__:keymiss", "__keyevent@1__:keymiss"])
            reader = Tap(port, proto=3)
            reader.call(*READS)
            sub.drain(0.3)
            got[name] = (bytes(sub.transcript), bytes(reader.transcript))
        assert got["relay"] == got["replica"], first_difference(got["relay"][0], got["replica"][0])
        assert got["relay"][0].count(b"$7\r\nmissing\r\n") == 11
