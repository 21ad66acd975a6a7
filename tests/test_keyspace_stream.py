"""Streams: every stream write a master sends is applied exactly, metadata included.

The oracle is a real master (Redis 7.0, Valkey 8.1, Redis 5.0 when available): each test
drives one with random but seeded sequences, lets `Mirror` apply the real replication stream
and asks `compare_with_master` for differences - entries, length, last ID, and on 7.0+ the
metadata XINFO shows (entries-added, max-deleted-entry-id, recorded-first-entry-id, each
group's entries-read and lag), every group's last delivered ID, PEL (owner and delivery
count of each pending ID) and consumers.

The workloads stay clear of the places where Redis's own replicas diverge from their master,
which no replica can reproduce from the stream:
- XREADGROUP with an explicit ID (history) bumps delivery counts without propagating it;
- a consumer that XREADGROUP (7.2+: also XCLAIM/XAUTOCLAIM) creates without delivering or
  claiming anything is not propagated (nor, on 5.0, one created by a NOACK read): consumers
  are created explicitly first (XGROUP CREATECONSUMER, or on 5.0 by a delivering read);
- on Redis 7.0-7.2 a client's `XCLAIM ... LASTID` moves the group without its read counter,
  which the stream cannot tell from an XREADGROUP (see t_stream's docstring).
Direct unit tests cover what no server here sends (Redis 8.2 XDELEX/XACKDEL, approximate
trimming arriving untouched, other masters' versions).
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict

import pytest
import redis

from replproxy.keyspace import ApplyError, Keyspace
from replproxy.keyspace.t_stream import (
    MAX_ID,
    consumer_group_lag,
    estimate_distance_from_first_ever_entry,
    parse_stream_id,
)
from replproxy.rdb.model import StreamValue
from tests.harness.appliers import run
from tests.harness.mirror import Mirror, raw_client, send, settle
from tests.harness.servers import RedisServer, ServerKind

# ---- helpers ----


def assert_mirrors(mirror: Mirror) -> None:
    assert settle(mirror, tries=10) == []
    assert mirror.keyspace.apply_errors == {}
    # Some tests here feed forms replproxy refuses on purpose (`~` trimming): only stream
    # commands must all have applied.
    assert not any(n.startswith("x") for n in mirror.keyspace.unsupported_commands)


def stream(ks: Keyspace, key: bytes = b"s") -> StreamValue:
    v = ks.get(0, key)
    assert isinstance(v, StreamValue)
    return v


def claim(ks: Keyspace, group: str, consumer: str, sid: str, ms: int = 1, count: int = 1) -> None:
    """The XCLAIM every master propagates for XREADGROUP/XCLAIM/XAUTOCLAIM (14 arguments)."""
    argv = ["XCLAIM", "s", group, consumer, 0, sid, "TIME", ms, "RETRYCOUNT", count]
    run(ks, *argv, "FORCE", "JUSTID", "LASTID", sid)


class Features:
    """What the master under test accepts and propagates."""

    def __init__(self, kind: ServerKind) -> None:
        v, valkey = kind.version, kind.is_valkey
        self.v62 = v >= (6, 2, 0)  # MINID, LIMIT, NOMKSTREAM, XAUTOCLAIM, CREATECONSUMER
        self.v70 = v >= (7, 0, 0)  # ms-*, ENTRIESREAD, XSETID options, XINFO metadata
        # A client's XCLAIM LASTID is indistinguishable from XREADGROUP on Redis 7.0-7.2.
        self.lastid = valkey or not ((7, 0, 0) <= v < (7, 4, 0))


def last_id(c: redis.Redis, key: bytes) -> tuple[int, int]:
    try:
        info = c.execute_command("XINFO", "STREAM", key)
    except redis.ResponseError:
        return (0, 0)
    kv = dict(zip(info[::2], info[1::2]))
    ms, seq = kv[b"last-generated-id"].split(b"-")
    return int(ms), int(seq)


def entry_ids(c: redis.Redis, key: bytes) -> list[bytes]:
    try:
        return [e[0] for e in c.execute_command("XRANGE", key, "-", "+")]
    except redis.ResponseError:
        return []


def value(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.3:
        return str(rng.randrange(-1000, 100000)).encode()
    if r < 0.4:
        return rng.choice([b"007", b"-0", b"+1", b"1e3", b"", b" 12", b"9223372036854775808"])
    if r < 0.9:
        return rng.randbytes(rng.randrange(1, 40))
    return rng.randbytes(rng.randrange(200, 3000))  # large values: big listpack nodes


def fields(rng: random.Random) -> list[bytes]:
    names = [b"f", b"g", b"h", b"sensor", b"1"]
    out: list[bytes] = []
    for name in rng.sample(names, rng.randrange(1, 4)):
        out += [name, value(rng)]
    return out


# ---- stream IDs ----


@pytest.mark.parametrize(
    ("raw", "strict", "expected"),
    [
        (b"1526919030474-55", True, (1526919030474, 55)),
        (b"5", True, (5, 0)),
        (b"007-08", True, (7, 8)),  # strtoull takes leading zeros
        (b"+5-1", True, (5, 1)),
        (b" 5-1", True, (5, 1)),  # strtoull skips leading blanks...
        (b"5 -1", True, None),  # ... but nothing may follow the digits
        (b"5--1", True, None),  # string2ll reads -1: negative, refused
        (b"5--01", True, (5, 2**64 - 1)),  # strtoull negates modulo 2**64
        (b"5--0", True, (5, 0)),
        (b"18446744073709551615-18446744073709551615", True, MAX_ID),
        (b"18446744073709551616-0", True, None),
        (b"-", True, None),
        (b"-", False, (0, 0)),
        (b"+", False, MAX_ID),
        (b"", True, None),
        (b"0x10-0", True, None),
        (b"1" * 128, True, None),  # longer than streamGenericParseIDOrReply's buffer
        (b"5-*", True, None),
        (b"7-1\0junk", True, (7, 1)),  # C strings end at NUL
    ],
)
def test_stream_ids_parse_as_redis_does(
    raw: bytes, strict: bool, expected: tuple[int, int] | None
) -> None:
    assert parse_stream_id(raw, strict=strict) == expected


# ---- direct appliers ----


def test_xadd_generates_the_sequence_and_keeps_metadata() -> None:
    ks = Keyspace()
    run(ks, "XADD", "s", "5-*", "f", "v")
    run(ks, "XADD", "s", "5-*", "f", "v2")
    run(ks, "XADD", "s", "7", "g", "w", "h", "x")
    s = stream(ks)
    assert list(s.entries) == [(5, 0), (5, 1), (7, 0)]
    assert s.entries[(7, 0)] == [(b"g", b"w"), (b"h", b"x")]
    assert (s.length, s.last_id, s.first_id, s.entries_added) == (3, (7, 0), (5, 0), 3)
    run(ks, "XADD", "s", "MAXLEN", "=", "1", "LIMIT", "100", "8-0", "f", "v")  # LIMIT ignored
    assert (list(s.entries), s.first_id, s.entries_added) == ([(8, 0)], (8, 0), 4)
    assert s.max_deleted_id == (0, 0)  # trimming is no XDEL
    run(ks, "XADD", "nope", "NOMKSTREAM", "1-1", "f", "v")
    assert ks.get(0, b"nope") is None


def test_xadd_refuses_what_a_replica_cannot_reproduce() -> None:
    ks = Keyspace()
    run(ks, "XADD", "s", "1-1", "f", "v")
    for argv in (
        ["XADD", "s", "*", "f", "v"],  # a master always sends the generated ID
        ["XADD", "s", "MAXLEN", "~", "1", "2-1", "f", "v"],  # node-granular trimming
        ["XADD", "s", "1-1", "f", "v"],  # not above the top item
        ["XADD", "s", "2-1", "f"],
    ):
        with pytest.raises(ApplyError):
            run(ks, *argv)
    assert list(stream(ks).entries) == [(1, 1)]
    ks.apply(0, [b"xtrim", b"s", b"MINID", b"~", b"5"])
    assert (0, b"s") in ks.unsupported_keys and ks.apply_errors == {"xtrim": 1}


def test_xdel_and_trims_maintain_first_and_max_deleted_ids() -> None:
    ks = Keyspace()
    for i in range(1, 11):
        run(ks, "XADD", "s", f"{i}-0", "f", i)
    s = stream(ks)
    run(ks, "XDEL", "s", "5-0", "1-0", "99-0")
    assert (s.length, s.first_id, s.max_deleted_id) == (8, (2, 0), (5, 0))
    run(ks, "XDEL", "s", "3-0")
    assert (s.first_id, s.max_deleted_id) == ((2, 0), (5, 0))
    run(ks, "XTRIM", "s", "MINID", "4")
    assert (list(s.entries)[:2], s.first_id, s.length) == ([(4, 0), (6, 0)], (4, 0), 6)
    run(ks, "XTRIM", "s", "MAXLEN", "=", "2")
    assert (list(s.entries), s.first_id, s.length) == ([(9, 0), (10, 0)], (9, 0), 2)
    assert isinstance(s.entries, OrderedDict)  # trimmed from the head: O(1) pops from now on
    run(ks, "XDEL", "s", "9-0", "10-0")
    assert (s.length, s.first_id, s.max_deleted_id, s.last_id) == (0, (0, 0), (10, 0), (10, 0))
    assert ks.get(0, b"s") is s  # an empty stream stays
    run(ks, "XSETID", "s", "20-0", "ENTRIESADDED", "50", "MAXDELETEDID", "15-0")
    assert (s.last_id, s.entries_added, s.max_deleted_id) == ((20, 0), 50, (15, 0))


def test_groups_consumers_and_pel_follow_xclaim_and_xack() -> None:
    ks = Keyspace()
    ks.now_ms = lambda: 1_000_000  # type: ignore[method-assign]
    for i in range(1, 6):
        run(ks, "XADD", "s", f"{i}-0", "f", i)
    run(ks, "XGROUP", "CREATE", "s", "zz", "$")
    run(ks, "XGROUP", "CREATE", "s", "aa", "0", "ENTRIESREAD", "0")
    s = stream(ks)
    assert [g.name for g in s.groups] == [b"aa", b"zz"]  # rax order
    assert s.groups[1].last_id == (5, 0)
    g = s.groups[0]
    # XREADGROUP of 2-0 and 1-0 by "bob", as propagated.
    for sid in ("1-0", "2-0"):
        claim(ks, "aa", "bob", sid, ms=999_000)
    run(ks, "XGROUP", "CREATECONSUMER", "s", "aa", "alice")
    assert [c.name for c in g.consumers] == [b"alice", b"bob"]
    bob = g.consumers[1]
    assert (g.last_id, list(g.pel), bob.pending) == ((2, 0), [(1, 0), (2, 0)], [(1, 0), (2, 0)])
    assert (bob.seen_time, bob.active_time, g.consumers[0].active_time) == (1_000_000,) * 2 + (-1,)
    assert g.pel[(1, 0)].delivery_time == 999_000
    # A claim by alice; a TIME beyond the relay's clock is clamped to it (xclaimCommand).
    claim(ks, "aa", "alice", "2-0", ms=5_000_000, count=4)
    assert (bob.pending, g.consumers[0].pending) == ([(1, 0)], [(2, 0)])
    assert (g.pel[(2, 0)].delivery_time, g.pel[(2, 0)].delivery_count) == (1_000_000, 4)
    # FORCE below the PEL's last ID keeps it in ID order; IDLE counts from the relay clock.
    run(ks, "XCLAIM", "s", "aa", "bob", 0, "0-5", "4-0", "3-0", "IDLE", 500, "FORCE")
    assert list(g.pel) == [(1, 0), (2, 0), (3, 0), (4, 0)]  # 0-5 is no entry: no PEL entry
    assert bob.pending == [(1, 0), (3, 0), (4, 0)]
    assert (g.pel[(3, 0)].delivery_time, g.pel[(3, 0)].delivery_count) == (999_500, 2)
    run(ks, "XACK", "s", "aa", "3-0", "1-0", "9-0")
    assert (list(g.pel), bob.pending) == ([(2, 0), (4, 0)], [(4, 0)])
    run(ks, "XGROUP", "DELCONSUMER", "s", "aa", "bob")
    assert (list(g.pel), [c.name for c in g.consumers]) == ([(2, 0)], [b"alice"])
    run(ks, "XGROUP", "SETID", "s", "aa", "-")
    assert (g.last_id, g.entries_read) == ((0, 0), -1)
    run(ks, "XGROUP", "SETID", "s", "aa", "$", "ENTRIESREAD", "5")
    assert (g.last_id, g.entries_read) == ((5, 0), 5)
    run(ks, "XGROUP", "DESTROY", "s", "zz")
    assert [x.name for x in s.groups] == [b"aa"]
    run(ks, "XGROUP", "CREATE", "new", "g", "$", "MKSTREAM")
    assert stream(ks, b"new").groups[0].last_id == (0, 0)


@pytest.mark.parametrize(
    ("aux", "dropped"),
    [
        ({b"redis-ver": b"6.2.14"}, False),
        ({b"redis-ver": b"5.0.7"}, False),
        ({b"redis-ver": b"7.0.15"}, True),
        ({b"valkey-ver": b"8.1.1"}, True),
        ({}, True),
    ],
)
def test_xclaim_of_a_deleted_entry_follows_the_masters_version(
    aux: dict[bytes, bytes], dropped: bool
) -> None:
    ks = Keyspace()
    ks.loaded_aux = aux
    run(ks, "XADD", "s", "1-0", "f", "v")
    run(ks, "XGROUP", "CREATE", "s", "g", "0")
    claim(ks, "g", "a", "1-0")
    run(ks, "XDEL", "s", "1-0")
    claim(ks, "g", "a", "1-0", ms=2, count=2)
    g = stream(ks).groups[0]
    expected = ([], []) if dropped else ([(1, 0)], [(1, 0)])
    assert (list(g.pel), g.consumers[0].pending) == expected


@pytest.mark.parametrize(
    "aux",
    [
        {b"redis-ver": b"7.0.15"},
        {b"redis-ver": b"7.2.6"},
        {b"valkey-ver": b"7.2.7"},
        {b"redis-ver": b"7.4.1"},
        {b"valkey-ver": b"8.1.1"},
    ],
)
def test_xclaim_lastid_moves_the_group_never_its_read_counter(aux: dict[bytes, bytes]) -> None:
    """What a real replica does with the XCLAIM ... LASTID a master sends for XREADGROUP:
    the group's last ID moves, its read counter does not (Redis 7.0-7.2 masters never send
    the counter, so their replicas keep a stale one; later ones follow with XGROUP SETID
    ... ENTRIESREAD, which sets it). The relay answers as that replica."""
    ks = Keyspace()
    ks.loaded_aux = aux
    for i in range(1, 5):
        run(ks, "XADD", "s", f"{i}-0", "f", i)
    run(ks, "XGROUP", "CREATE", "s", "g", "0", "ENTRIESREAD", "0")
    for sid in ("1-0", "2-0"):
        claim(ks, "g", "c", sid)
    s = stream(ks)
    g = s.groups[0]
    assert (g.last_id, g.entries_read) == ((2, 0), 0)
    assert consumer_group_lag(s, g) == 4
    run(ks, "XGROUP", "SETID", "s", "g", "2-0", "ENTRIESREAD", "2")
    assert (g.entries_read, consumer_group_lag(s, g)) == (2, 2)
    assert estimate_distance_from_first_ever_entry(s, (4, 0)) == 4


def test_redis_82_xdelex_and_xackdel_policies() -> None:
    """Redis 8.2 (no such server here): semantics as documented for XDELEX and XACKDEL."""
    ks = Keyspace()
    for i in range(1, 7):
        run(ks, "XADD", "s", f"{i}-0", "f", i)
    run(ks, "XGROUP", "CREATE", "s", "g1", "0")
    run(ks, "XGROUP", "CREATE", "s", "g2", "3-0")
    for sid in ("1-0", "2-0", "3-0"):
        claim(ks, "g1", "c", sid)
    s = stream(ks)
    g1 = s.groups[0]
    # ACKED: only entries every group delivered and nobody has pending.
    run(ks, "XACKDEL", "s", "g1", "ACKED", "IDS", 2, "1-0", "4-0")
    assert (1, 0) not in s.entries and (4, 0) in s.entries  # g2 has not delivered 4-0
    assert list(g1.pel) == [(2, 0), (3, 0)]
    # KEEPREF deletes, leaving the PEL alone; DELREF cleans PELs, even of absent entries.
    run(ks, "XDELEX", "s", "IDS", 1, "2-0")
    assert (2, 0) not in s.entries and list(g1.pel) == [(2, 0), (3, 0)]
    run(ks, "XDELEX", "s", "IDS", 2, "2-0", "3-0", "DELREF")
    assert list(g1.pel) == [] and g1.consumers[0].pending == []
    assert (s.first_id, s.max_deleted_id, s.length) == ((4, 0), (3, 0), 3)
    run(ks, "XADD", "s", "DELREF", "MAXLEN", "1", "7-0", "f", "v")
    assert list(s.entries) == [(7, 0)]


# ---- against real masters ----


def stream_entries_workload(c: redis.Redis, mirror: Mirror, f: Features, seed: int) -> None:
    rng = random.Random(seed)
    keys = [b"s0", b"s1", b"s2", b"capped"]
    for step in range(300):
        key = rng.choice(keys)
        r = rng.random()
        if r < 0.5 or key == b"capped":
            argv: list[object] = ["XADD", key]
            if f.v62 and rng.random() < 0.1:
                argv.append("NOMKSTREAM")
            if key == b"capped" or rng.random() < 0.3:
                strategy = "MINID" if f.v62 and rng.random() < 0.3 else "MAXLEN"
                argv.append(strategy)
                approx = rng.random() < 0.5
                if approx or rng.random() < 0.5:
                    argv.append("~" if approx else "=")
                if strategy == "MAXLEN":
                    argv.append(rng.randrange(0, 40))
                else:
                    ids = entry_ids(c, key)
                    argv.append(rng.choice(ids) if ids else "0-1")
                if approx and f.v62 and rng.random() < 0.5:
                    argv += ["LIMIT", rng.randrange(0, 300)]
            ms, seq = last_id(c, key)
            form = rng.random()
            if form < 0.6:
                argv.append("*")
            elif form < 0.75 and f.v70:
                argv.append(f"{ms + rng.randrange(0, 2)}-*")
            elif form < 0.9:
                argv.append(f"{ms}-{seq + 1 + rng.randrange(3)}")
            else:
                argv.append(str(ms + 1 + rng.randrange(5)))
            send(c, *argv, *fields(rng))
        elif r < 0.65:
            ids = entry_ids(c, key)
            victims = rng.sample(ids, min(len(ids), rng.randrange(1, 4)))
            if ids and rng.random() < 0.3:
                victims.append(ids[0])  # the first entry: recorded-first-entry-id moves
            send(c, "XDEL", key, *victims, "1-1")
        elif r < 0.75:
            if f.v62 and rng.random() < 0.4:
                ids = entry_ids(c, key)
                threshold: object = rng.choice(ids) if ids else "0-1"
                argv = ["XTRIM", key, "MINID"]
            else:
                threshold = rng.randrange(0, 30)
                argv = ["XTRIM", key, "MAXLEN"]
            approx = rng.random() < 0.5
            if approx or rng.random() < 0.5:
                argv.append("~" if approx else "=")
            send(c, *argv, threshold)
        elif r < 0.82:
            ms, seq = last_id(c, key)
            argv = ["XSETID", key, f"{ms + rng.randrange(0, 3)}-{seq + rng.randrange(1, 3)}"]
            if f.v70 and rng.random() < 0.7:
                info = c.execute_command("XINFO", "STREAM", key) if c.exists(key) else []
                kv = dict(zip(info[::2], info[1::2]))
                added = int(kv.get(b"entries-added", 0))
                argv += ["ENTRIESADDED", added + rng.randrange(0, 3), "MAXDELETEDID", f"{ms}-0"]
            send(c, *argv)
        elif r < 0.86:
            send(c, "PEXPIRE", key, rng.randrange(50_000, 100_000))
        elif r < 0.88:
            send(c, "PERSIST", key)
        elif r < 0.9:
            send(c, "DEL", key)
        elif r < 0.95:
            send(c, "XADD", key, "*", *fields(rng))
        else:
            send(c, "XGROUP", "CREATE", key, f"g{rng.randrange(3)}", rng.choice(["$", "0"]))
        if step % 60 == 59:
            assert_mirrors(mirror)
    assert_mirrors(mirror)


def test_stream_entries_workload_matches_master(master: RedisServer) -> None:
    with Mirror(master) as mirror, raw_client(master) as c:
        stream_entries_workload(c, mirror, Features(master.kind), seed=1)


def test_capped_stream_of_many_entries_matches_master(master: RedisServer) -> None:
    """`XADD MAXLEN ~` on a large stream: Redis trims whole nodes, propagates `=` exactly."""
    with raw_client(master) as c:
        for i in range(3000):  # before the mirror: the snapshot carries the stream
            c.execute_command("XADD", "big", "*", "i", i, "pad", "x" * (i % 50))
        with Mirror(master) as mirror:
            rng = random.Random(5)
            for _ in range(8):
                pipe = c.pipeline(transaction=False)
                for i in range(500):
                    pipe.execute_command("XADD", "big", "MAXLEN", "~", 1000, "*", "i", i)
                pipe.execute()
                ids = entry_ids(c, b"big")
                c.execute_command("XDEL", "big", *rng.sample(ids, 20))
                c.execute_command("XTRIM", "big", "MAXLEN", "~", rng.randrange(500, 900))
            assert_mirrors(mirror)


def consumers_of(c: redis.Redis, key: bytes, group: bytes) -> list[bytes]:
    try:
        return [
            dict(zip(x[::2], x[1::2]))[b"name"]
            for x in c.execute_command("XINFO", "CONSUMERS", key, group)
        ]
    except redis.ResponseError:
        return []


def pending_ids(c: redis.Redis, key: bytes, group: bytes) -> list[bytes]:
    try:
        return [p[0] for p in c.execute_command("XPENDING", key, group, "-", "+", 100)]
    except redis.ResponseError:
        return []


def group_workload(c: redis.Redis, mirror: Mirror, f: Features, seed: int) -> None:
    rng = random.Random(seed)
    keys = [b"q0", b"q1"]
    groups = [b"ga", b"gb", b"gc"]
    pool = [b"alice", b"bob", b"carol", b"dave"]

    def add(key: bytes, n: int = 1) -> None:
        for _ in range(n):
            send(c, "XADD", key, "*", *fields(rng))

    def establish(key: bytes, group: bytes, name: bytes) -> None:
        if f.v62:
            send(c, "XGROUP", "CREATECONSUMER", key, group, name)
        else:  # 5.0: a consumer appears on a replica when a read delivers it something
            add(key)
            send(c, "XREADGROUP", "GROUP", group, name, "COUNT", 1, "STREAMS", key, ">")

    def consumer(key: bytes, group: bytes) -> bytes | None:
        existing = consumers_of(c, key, group)
        return rng.choice(existing) if existing else None

    for key in keys:
        add(key, 5)
        for group in groups:
            argv: list[object] = ["XGROUP", "CREATE", key, group, rng.choice(["0", "$", "-"])]
            if f.v70 and rng.random() < 0.5:
                argv += ["ENTRIESREAD", rng.choice([0, 3, -1])]
            send(c, *argv)
            for first in rng.sample(pool, 2):
                establish(key, group, first)
    assert_mirrors(mirror)

    for step in range(400):
        key, group = rng.choice(keys), rng.choice(groups)
        r = rng.random()
        if r < 0.2:
            add(key, rng.randrange(1, 4))
        elif r < 0.42:
            name = consumer(key, group)
            if name is not None:
                argv = ["XREADGROUP", "GROUP", group, name, "COUNT", rng.randrange(1, 6)]
                if rng.random() < 0.25:
                    argv.append("NOACK")
                send(c, *argv, "STREAMS", key, ">")
        elif r < 0.52:
            ids = pending_ids(c, key, group)
            if ids:
                send(c, "XACK", key, group, *rng.sample(ids, min(len(ids), 3)), "0-1")
        elif r < 0.64:
            name = consumer(key, group)
            ids = pending_ids(c, key, group)
            if name is not None and ids:
                argv = [
                    "XCLAIM",
                    key,
                    group,
                    name,
                    rng.choice([0, 0, 5, 100000]),
                    *rng.sample(ids, min(len(ids), 3)),
                ]
                if rng.random() < 0.3:
                    existing = entry_ids(c, key)
                    if existing:
                        argv.append(rng.choice(existing))  # maybe not pending: FORCE makes it
                opt = rng.random()
                if opt < 0.3:
                    argv += ["IDLE", rng.randrange(0, 10000)]
                elif opt < 0.5:
                    argv += ["TIME", int(time.time() * 1000) - rng.randrange(0, 10000)]
                if rng.random() < 0.3:
                    argv += ["RETRYCOUNT", rng.randrange(0, 9)]
                if rng.random() < 0.4:
                    argv.append("FORCE")
                if rng.random() < 0.4:
                    argv.append("JUSTID")
                if f.lastid and rng.random() < 0.2:
                    ms, seq = last_id(c, key)
                    argv += ["LASTID", f"{ms}-{seq}"]
                send(c, *argv)
        elif r < 0.7 and f.v62:
            name = consumer(key, group)
            if name is not None:
                argv = [
                    "XAUTOCLAIM",
                    key,
                    group,
                    name,
                    rng.choice([0, 0, 50]),
                    "0-0",
                    "COUNT",
                    rng.randrange(1, 5),
                ]
                if rng.random() < 0.4:
                    argv.append("JUSTID")
                send(c, *argv)
        elif r < 0.78:
            ids = entry_ids(c, key)
            pend = pending_ids(c, key, group)
            victims = rng.sample(pend, min(len(pend), 2)) + rng.sample(ids, min(len(ids), 1))
            if victims:  # deleted while pending: later claims meet dangling PEL entries
                send(c, "XDEL", key, *victims)
        elif r < 0.82:
            ids = entry_ids(c, key)
            target = rng.choice([*ids, b"$", b"0"]) if ids else b"$"
            argv = ["XGROUP", "SETID", key, group, target]
            if f.v70 and rng.random() < 0.5:
                argv += ["ENTRIESREAD", rng.randrange(0, 20)]
            send(c, *argv)
        elif r < 0.86:
            name = consumer(key, group)
            if name is not None:
                send(c, "XGROUP", "DELCONSUMER", key, group, name)
        elif r < 0.9:
            establish(key, group, rng.choice(pool))
        elif r < 0.93:
            send(c, "XTRIM", key, "MAXLEN", rng.choice(["=", "~"]), rng.randrange(3, 30))
        elif r < 0.95:
            send(c, "XGROUP", "DESTROY", key, group)
            send(c, "XGROUP", "CREATE", key, group, rng.choice(["0", "$"]), "MKSTREAM")
        elif r < 0.97 and f.v70:
            send(c, "XADD", key, "MAXLEN", "=", rng.randrange(2, 10), "*", *fields(rng))
        if step % 80 == 79:
            assert_mirrors(mirror)
    assert_mirrors(mirror)


def test_consumer_group_workload_matches_master(master: RedisServer) -> None:
    with Mirror(master) as mirror, raw_client(master) as c:
        group_workload(c, mirror, Features(master.kind), seed=2)


def test_groups_from_the_snapshot_then_the_stream(master: RedisServer) -> None:
    f = Features(master.kind)
    with raw_client(master) as c:
        rng = random.Random(3)
        for i in range(50):
            c.execute_command("XADD", "q", "*", *fields(rng))
            if i % 7 == 0:
                c.execute_command("XDEL", "q", c.execute_command("XRANGE", "q", "-", "+")[0][0])
        c.execute_command("XGROUP", "CREATE", "q", "g", "0")
        c.execute_command("XREADGROUP", "GROUP", "g", "alice", "COUNT", 10, "STREAMS", "q", ">")
        with Mirror(master) as mirror:
            assert_mirrors(mirror)
            group_workload(c, mirror, f, seed=4)


def test_new_consumers_created_by_delivery_and_noack(master: RedisServer) -> None:
    f = Features(master.kind)
    with Mirror(master) as mirror, raw_client(master) as c:
        c.execute_command("XADD", "s", "*", "f", "v")
        c.execute_command("XADD", "s", "*", "f", "w")
        c.execute_command("XGROUP", "CREATE", "s", "g", "0")
        c.execute_command("XREADGROUP", "GROUP", "g", "fresh", "COUNT", 1, "STREAMS", "s", ">")
        if f.v62:  # 6.2+ propagates a NOACK-created consumer as XGROUP CREATECONSUMER
            c.execute_command("XREADGROUP", "GROUP", "g", "quiet", "NOACK", "STREAMS", "s", ">")
        # XCLAIM by a consumer that does not exist yet, claiming something.
        pending = c.execute_command("XPENDING", "s", "g", "-", "+", 10)
        c.execute_command("XCLAIM", "s", "g", "newcomer", 0, pending[0][0])
        assert_mirrors(mirror)
        names = sorted(c.name for c in stream(mirror.keyspace).groups[0].consumers)
        assert names == ([b"fresh", b"newcomer", b"quiet"] if f.v62 else [b"fresh", b"newcomer"])


def test_stream_transactions_and_scripts_match_master(master: RedisServer) -> None:
    with Mirror(master) as mirror, raw_client(master) as c:
        c.execute_command("XGROUP", "CREATE", "t", "g", "$", "MKSTREAM")
        c.execute_command("XGROUP", "CREATE", "t", "h", "$")
        if not Features(master.kind).v62:  # 5.0 does not propagate a NOACK-made consumer
            c.execute_command("XADD", "t", "*", "x", 0)
            c.execute_command("XREADGROUP", "GROUP", "h", "c2", "STREAMS", "t", ">")
        for i in range(20):
            pipe = c.pipeline(transaction=True)
            pipe.execute_command("XADD", "t", "*", "i", i)
            pipe.execute_command("XADD", "t", "MAXLEN", "=", 15, "*", "j", i)
            pipe.execute_command("XREADGROUP", "GROUP", "g", "c1", "COUNT", 2, "STREAMS", "t", ">")
            if i % 3 == 0:
                pipe.execute_command("XREADGROUP", "GROUP", "h", "c2", "NOACK", "STREAMS", "t", ">")
            pipe.execute()
            send(
                c,
                "EVAL",
                "redis.call('XADD', KEYS[1], '*', 'lua', ARGV[1]) "
                "local r = redis.call('XREADGROUP', 'GROUP', 'g', 'c3', 'COUNT', 1, "
                "'STREAMS', KEYS[1], '>') "
                "local p = redis.call('XPENDING', KEYS[1], 'g', '-', '+', 1) "
                "if #p > 0 then redis.call('XACK', KEYS[1], 'g', p[1][1]) end "
                "return 1",
                1,
                "t",
                i,
            )
        assert_mirrors(mirror)
