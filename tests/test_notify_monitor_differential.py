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

import contextlib
import time

import pytest

from tests.harness.servers import ServerKind
from tests.harness.taps import Tap, first_difference, monitor_lines
from tests.harness.triple import Triple, triple
from tests.harness.workload import Workload

# Every version: the older ones too (Redis 6.2; a 5.0 master skips, see CLIENT_DIALECT_SKIP).
pytestmark = [pytest.mark.client_dialect, pytest.mark.every_version]


def flags_for(kind: ServerKind) -> str:
    new = "n" if kind.is_valkey or kind.version >= (7, 0, 0) else ""
    return "AKE" + new + ("oc" if kind.name == "redis8" else "")


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
        used = int(m.info("memory")["used_memory"])
        m.config_set("maxmemory-policy", "allkeys-random")
        m.config_set("maxmemory", used + 400_000)
        for i in range(120):
            try:
                m.set(f"big:{i}", "x" * 20_000)
            except Exception:  # OOM once nothing is left to evict
                break
        m.config_set("maxmemory", 0)
        return int(m.info("stats")["evicted_keys"])


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
        with t.master.client() as m:  # no more expiry: nothing may land between two drains
            m.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0")
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
        for i, (relay_line, replica_line) in enumerate(zip(relay_lines, replica_lines)):
            assert relay_line == replica_line, (
                f"MONITOR line {i}: {relay_line!r} != {replica_line!r}"
            )
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
            b"$5\r\npfadd\r\n",
            b"$6\r\nsetbit\r\n",
        ):
            assert ev in events, ev
        assert len(relay_lines) > 500
        if "n" in flags:
            assert b"$3\r\nnew\r\n" in events
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


def curated(kind: ServerKind) -> list[list[object]]:
    """Writes the random workload rarely or never produces, each form once."""
    cmds: list[list[object]] = [
        ["SET", "a", "1"],
        ["SET", "a", "2", "KEEPTTL"],
        ["SETNX", "a", "3"],
        ["SETEX", "b", "100", "x"],
        ["GETSET", "b", "y"],
        ["GETDEL", "b"],
        ["MSETNX", "m1", "1", "m2", "2"],
        ["MSETNX", "m1", "1", "m3", "3"],
        ["APPEND", "a", "z"],
        ["SETRANGE", "a", "5", "q"],
        ["SETRANGE", "new", "0", ""],
        ["INCRBYFLOAT", "f", "1.5"],
        ["INCRBY", "n", "5"],
        ["DECRBY", "n", "1"],
        ["SETBIT", "bits", "7", "1"],
        ["BITFIELD", "bits", "SET", "u8", "8", "200"],
        ["BITOP", "NOT", "bits2", "bits"],
        ["BITOP", "AND", "bits2", "nokey"],
        ["RPUSH", "l", "a", "b", "c", "d"],
        ["LINSERT", "l", "BEFORE", "c", "x"],
        ["LSET", "l", "0", "z"],
        ["LREM", "l", "0", "x"],
        ["LTRIM", "l", "0", "1"],
        ["LMOVE", "l", "l2", "LEFT", "RIGHT"],
        ["RPOPLPUSH", "l", "l"],
        ["LPUSHX", "nol", "a"],
        ["LPOP", "l", "5"],
        ["SADD", "s", "a", "b", "c"],
        ["SADD", "s", "a"],
        ["SREM", "s", "zz"],
        ["SMOVE", "s", "s2", "a"],
        ["SMOVE", "s", "s2", "b"],
        ["SPOP", "s", "5"],
        ["SINTERSTORE", "s3", "s2", "nokey"],
        ["SDIFFSTORE", "s3", "s2", "nokey"],
        ["HSET", "h", "a", "1", "b", "2"],
        ["HSETNX", "h", "a", "9"],
        ["HINCRBY", "h", "n", "2"],
        ["HINCRBYFLOAT", "h", "x", "0.5"],
        ["HDEL", "h", "zz"],
        ["HDEL", "h", "a", "b", "n", "x"],
        ["ZADD", "z", "1", "a", "2", "b", "3", "c"],
        ["ZADD", "z", "XX", "GT", "0", "a"],
        ["ZINCRBY", "z", "1", "a"],
        ["ZREM", "z", "zz"],
        ["ZREMRANGEBYLEX", "z", "-", "(b"],
        ["ZREMRANGEBYRANK", "z", "5", "9"],
        ["ZDIFFSTORE", "z2", "2", "z", "nokey"],
        ["ZRANGESTORE", "z3", "z", "0", "0"],
        ["ZRANGESTORE", "z3", "nokey", "0", "0"],
        ["ZPOPMAX", "z", "10"],
        ["BZPOPMIN", "z2", "1"],
        ["XADD", "x", "1-1", "f", "v"],
        ["XADD", "x", "MAXLEN", "1", "2-1", "f", "v"],
        ["XADD", "x", "NOMKSTREAM", "3-1", "f", "v"],
        ["XADD", "nox", "NOMKSTREAM", "*", "f", "v"],
        ["XGROUP", "CREATE", "x", "g", "0"],
        ["XGROUP", "CREATECONSUMER", "x", "g", "c"],
        ["XGROUP", "SETID", "x", "g", "$"],
        ["XSETID", "x", "5-0"],
        ["XGROUP", "DELCONSUMER", "x", "g", "c"],
        ["XGROUP", "DESTROY", "x", "g"],
        ["XGROUP", "CREATE", "x2", "g", "$", "MKSTREAM"],
        ["XTRIM", "x", "MAXLEN", "0"],
        ["XDEL", "x", "9-9"],
        ["PFADD", "hll", "a", "b"],
        ["PFMERGE", "hll2", "hll", "nokey"],
        ["GEOADD", "g", "1", "1", "m", "2", "2", "n"],
        ["GEOSEARCHSTORE", "g2", "g", "FROMLONLAT", "1", "1", "BYRADIUS", "500", "km", "STOREDIST"],
        ["GEOSEARCHSTORE", "g2", "g", "FROMLONLAT", "100", "80", "BYRADIUS", "1", "km"],
        ["SORT", "nokey", "STORE", "srt"],
        ["RPUSH", "sl", "3", "1", "2"],
        ["SORT", "sl", "STORE", "srt"],
        ["SORT", "sl", "LIMIT", "5", "1", "STORE", "srt"],
        ["EXPIRE", "a", "100", "NX"],
        ["EXPIRE", "a", "50", "NX"],
        ["PEXPIRE", "a", "99999"],
        ["PERSIST", "a"],
        ["PERSIST", "a"],
        ["EXPIREAT", "m1", "4000000000"],
        ["RENAME", "m1", "m1r"],
        ["RENAMENX", "m1r", "m2"],
        ["RENAMENX", "m1r", "m9"],
        ["COPY", "m2", "m2c"],
        ["COPY", "m2", "m2c", "REPLACE"],
        ["COPY", "m2", "m2c", "DB", "1"],
        ["COPY", "h", "m2c", "REPLACE"],
        ["MOVE", "m2", "1"],
        ["MOVE", "m2c", "1"],
        ["SET", "o", "1"],
        ["SET", "o", "2"],
        ["LPUSH", "o2", "x"],
        ["SET", "o2", "s"],
        ["SWAPDB", "0", "1"],
        ["SWAPDB", "0", "1"],
        ["UNLINK", "o", "o2", "nokey"],
        ["FLUSHDB"],
        ["SET", "after", "1"],
    ]
    if not kind.is_valkey and kind.version >= (7, 4, 0):
        cmds += [
            ["HSET", "hf", "a", "1", "b", "2"],
            ["HPEXPIRE", "hf", "100000", "FIELDS", "1", "a"],
            ["HPERSIST", "hf", "FIELDS", "2", "a", "zz"],
        ]
    if kind.name == "redis8":
        cmds += [
            ["XADD", "x8", "1-1", "f", "v"],
            ["XADD", "x8", "2-1", "f", "v"],
            ["XDELEX", "x8", "IDS", "1", "1-1"],
            ["XGROUP", "CREATE", "x8", "g", "0"],
            ["XREADGROUP", "GROUP", "g", "c", "STREAMS", "x8", ">"],
            ["XACKDEL", "x8", "g", "IDS", "1", "2-1"],
            ["BITOP", "DIFF", "bd", "bits", "bits2"],
            ["VADD", "v", "VALUES", "2", "1", "2", "e1"],
            ["VREM", "v", "e1"],
        ]
    return cmds


def test_every_write_reports_as_a_replica(server_kind: ServerKind) -> None:
    flags = flags_for(server_kind)
    with triple(
        server_kind,
        "--notify-keyspace-events",
        flags,
        replica_extra={"notify-keyspace-events": flags},
        master_extra={"repl-ping-replica-period": "3600"},
    ) as t:
        subs = {name: Tap(port) for name, port in t.ports.items()}
        for tap in subs.values():
            tap.call(["PSUBSCRIBE", "*"])
        with t.master.client() as m:
            for cmd in curated(t.kind):
                with contextlib.suppress(Exception):  # refused: nothing propagated
                    m.execute_command(*cmd)
            m.hset("rh", mapping={"a": "1"})
            payload = m.dump("rh")
            m.set("rs", "x")
            m.restore("rs", 0, payload, replace=True)
            m.restore("rs2", 100000, payload)
        t.sync()
        for tap in subs.values():
            tap.drain(0.3)
        a, b = bytes(subs["relay"].transcript), bytes(subs["replica"].transcript)
        assert a == b, first_difference(a, b)
        assert a.count(b"pmessage") > 150
