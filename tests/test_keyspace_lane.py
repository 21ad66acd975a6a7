"""The stream's apply lane (`keyspace.lane`, C `apply_run` in `_store.c`): the same dataset as
the per-command appliers, whatever the stream and whatever the keys held before.

Three ways of applying one stream are compared: every command through `Keyspace.apply` (the
reference: the lane turned off), the lane's pure-Python twin, and the C lane. The dataset
(values AND their classes), TTLs, offsets, backlog, counters and the applier's error marks
must be the same, and so must the DEBUG DIGEST the relay would answer. The C lane and the
twin must also stop at the same command with the same count, call by call. A real master's
DEBUG DIGEST is the end-to-end oracle in test_keyspace_e2e.py, which this lane also serves.

Each property runs 100 streams of 60 or 80 commands drawn from all 22 command forms (some 300
of each form per property); REPLPROXY_TEST_SOAK=N runs N times as many (tests/harness/soak.py).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replproxy.keyspace import Keyspace, lane
from replproxy.keyspace.digest import digest
from replproxy.keyspace.values import ListValue, ZSet
from replproxy.rdb.model import HashValue, ZSetValue
from replproxy.replication import Replication
from replproxy.resp import StreamCommand, StreamSplitter, encode_command
from tests.harness.soak import rounds

C_APPLY_RUN = lane._c_apply_run()
needs_c = pytest.mark.skipif(
    C_APPLY_RUN is None, reason="the C lane is not built (or REPLPROXY_NO_SPEEDUPS is set)"
)

KEYS = [b"k%d" % i for i in range(7)]


def seed_values(ks: Keyspace) -> None:
    """What a snapshot or earlier writes may have left: every type, both list/zset forms,
    field TTLs, a listpack and a skiplist zset, integers at the edges, key TTLs."""
    d = ks.dbs[0]
    d[b"k0"] = b"9223372036854775806"
    d[b"k1"] = [b"a", b"b"]  # a snapshot's plain list
    d[b"k2"] = ZSetValue({b"m": 1.0})  # a snapshot's plain zset
    d[b"k3"] = HashValue({b"f": b"v"}, expires={b"f": 2**41})
    big = ZSet({b"m%d" % i: float(i) for i in range(200)})
    big.listpack = False
    d[b"k4"] = big
    indexed = ZSet({b"m%d" % i: float(i) for i in range(150)})
    indexed.listpack = False
    assert indexed.index  # built: adds queue their changes
    d[b"k6"] = indexed
    d[b"k5"] = {b"m1", b"m2"}
    for k in (b"k0", b"k1", b"k5"):
        ks.expires[0][k] = 2**41


def hot_command(rng: random.Random) -> list[bytes]:
    k = rng.choice(KEYS)
    m = rng.choice([b"a", b"b", b"m1", b"m%d" % rng.randrange(300), b"x" * rng.choice([1, 70])])
    ints = [
        b"1",
        b"-1",
        b"0",
        b"00",
        b"+1",
        b" 1",
        b"9223372036854775807",
        b"-9223372036854775808",
        b"99999999999999999999",
        b"12a",
        b"",
    ]
    scores = [
        b"1",
        b"-2.5",
        b"0",
        b"-0",
        b"0.0",
        b"1e3",
        b"inf",
        b".5",
        b"5.",
        b"00012",
        b"1_0",
        b" 1",
        b"%d" % rng.randrange(1000),
    ]
    choice = rng.randrange(22)
    name_case = rng.choice([bytes.upper, bytes.lower, lambda b: b[:1].upper() + b[1:]])

    def cmd(name: bytes, *args: bytes) -> list[bytes]:
        return [name_case(name), *args]

    if choice == 0:
        return cmd(b"set", k, m)
    if choice == 1:
        return cmd(b"mset", *[a for _ in range(rng.randint(1, 3)) for a in (rng.choice(KEYS), m)])
    if choice == 2:
        return cmd(rng.choice([b"incr", b"decr"]), k)
    if choice == 3:
        return cmd(rng.choice([b"incrby", b"decrby"]), k, rng.choice(ints))
    if choice in (4, 5):
        return cmd(rng.choice([b"lpush", b"rpush"]), k, *[m] * rng.randint(1, 3))
    if choice in (6, 7):
        return cmd(rng.choice([b"lpop", b"rpop"]), k, *([b"2"] if rng.random() < 0.2 else []))
    if choice == 8:
        return cmd(b"sadd", k, *[rng.choice([b"m1", b"m2", m]) for _ in range(rng.randint(1, 3))])
    if choice == 9:
        return cmd(b"srem", k, *[rng.choice([b"m1", b"m2", m]) for _ in range(rng.randint(1, 3))])
    if choice == 10:
        pairs = [a for _ in range(rng.randint(1, 3)) for a in (rng.choice([b"f", b"g", m]), m)]
        return cmd(rng.choice([b"hset", b"hmset"]), k, *pairs)
    if choice in (11, 12):
        return cmd(b"zadd", k, rng.choice(scores), m)
    if choice == 13:
        return cmd(b"zadd", k, b"NX", b"1", m)
    if choice == 14:
        return cmd(b"set", k, m, b"PXAT", b"%d" % 2**41)
    if choice == 15:
        return cmd(b"pexpireat", k, b"%d" % 2**41)
    if choice == 16:
        return cmd(b"del", k)
    if choice == 17:
        return cmd(b"select", rng.choice([b"0", b"0", b"1"]))
    if choice == 18:
        return cmd(b"hset", k, b"f")  # odd arity: the applier's error, not the lane's
    if choice == 19:
        return cmd(b"rpush", k)  # no element
    if choice == 20:
        return cmd(b"lpop", k, b"0")
    return cmd(b"ping")


def stream_of(rng: random.Random, n: int) -> bytes:
    out = []
    for _ in range(n):
        if rng.random() < 0.05:
            body = [encode_command(hot_command(rng)) for _ in range(rng.randint(1, 3))]
            out.append(encode_command([b"MULTI"]) + b"".join(body) + encode_command([b"EXEC"]))
        else:
            out.append(encode_command(hot_command(rng)))
    return b"".join(out)


def apply(
    data: bytes, chunks: list[int], how: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Replication, Keyspace]:
    ks = Keyspace(databases=2)
    seed_values(ks)
    if how == "appliers":
        monkeypatch.setattr(ks, "apply_run", None, raising=False)
    else:
        monkeypatch.setattr(
            "replproxy.keyspace.store.APPLY_RUN", C_APPLY_RUN if how == "c" else lane.apply_run
        )
    repl = Replication(ks)
    repl.full_resync("a" * 40, 100, stream_db=0)
    s = StreamSplitter(100, merge_sets=True)
    pos = 0
    for cut in [*sorted(chunks), len(data)]:
        s.feed(data[pos:cut])
        pos = max(pos, cut)
        repl.process(s.next_commands())
    return repl, ks


def snapshot(ks: Keyspace) -> list[dict[bytes, str]]:
    """The dataset with each value's class (a ListValue equals a list, a ZSet a ZSetValue),
    as text: a NaN score (the appliers take `nan`; no master sends it) equals itself."""
    out = []
    for d in ks.dbs:
        out.append(
            {
                k: repr(
                    (
                        type(v).__name__,
                        dict(v)
                        if isinstance(v, dict)
                        else (list(v) if isinstance(v, list | ListValue) else v),
                        getattr(v, "listpack", None),
                        getattr(v, "expires", None),
                        list(v.index) if isinstance(v, ZSet) else None,
                    )
                )
                for k, v in d.items()
            }
        )
    return out


def check_same(
    data: bytes, chunks: list[int], monkeypatch: pytest.MonkeyPatch, ways: tuple[str, ...]
) -> None:
    ref_repl, ref = apply(data, chunks, "appliers", monkeypatch)
    for how in ways:
        repl, ks = apply(data, chunks, how, monkeypatch)
        assert snapshot(ks) == snapshot(ref), how
        assert ks.expires == ref.expires, how
        for style in ("g17", "shortest"):
            assert digest(ks, style) == digest(ref, style), how
        assert repl.repl_offset == ref_repl.repl_offset == 100 + len(data)
        assert repl.backlog.read_from(101) == ref_repl.backlog.read_from(101) == data
        assert repl.stats.commands_applied == ref_repl.stats.commands_applied, how
        assert repl.stats.transactions_applied == ref_repl.stats.transactions_applied
        assert ks.apply_errors == ref.apply_errors, how
        assert ks.unsupported_keys == ref.unsupported_keys, how


@settings(max_examples=rounds(100), deadline=None)
@given(st.integers(0, 2**32), st.lists(st.integers(min_value=0, max_value=4000), max_size=6))
def test_the_python_twin_applies_as_the_appliers(seed: int, cuts: list[int]) -> None:
    with pytest.MonkeyPatch.context() as mp:
        check_same(stream_of(random.Random(seed), 80), cuts, mp, ("python",))


@needs_c
@settings(max_examples=rounds(100), deadline=None)
@given(st.integers(0, 2**32), st.lists(st.integers(min_value=0, max_value=4000), max_size=6))
def test_the_c_lane_applies_as_the_appliers(seed: int, cuts: list[int]) -> None:
    with pytest.MonkeyPatch.context() as mp:
        check_same(stream_of(random.Random(seed), 80), cuts, mp, ("c",))


@needs_c
@settings(max_examples=rounds(100), deadline=None)
@given(st.integers(0, 2**32))
def test_c_and_python_stop_at_the_same_command(seed: int) -> None:
    """Call by call: the same (next, applied), the same kept bytes, the same dicts, the same
    commandstats counts."""
    assert C_APPLY_RUN is not None  # @needs_c
    rng = random.Random(seed)
    data = stream_of(rng, 60)
    s = StreamSplitter(0, merge_sets=True)
    s.feed(data)
    commands = s.next_commands()
    both = []
    for run in (C_APPLY_RUN, lane.apply_run):
        ks = Keyspace(databases=2)
        seed_values(ks)
        d, expires = ks.dbs[0], ks.expires[0]
        keep: list[bytes] = []
        calls = []
        counted: dict[bytes, int] = {}
        i = 0
        while i < len(commands):
            j, applied = run(d, expires, commands, i, keep, counted)
            calls.append((i, j, applied))
            if j == i:  # not the lane's: the appliers take it, as Replication.process does
                argv = commands[i][0]
                if argv and argv[0].lower() not in (b"multi", b"exec", b"select", b"ping"):
                    ks.apply(0, argv)
                j += 1
            i = j
        both.append((calls, keep, snapshot(ks), ks.expires, counted))
        assert sum(counted.values()) == sum(c[2] for c in calls)
    assert both[0] == both[1]


def test_each_hot_command_is_taken_by_the_lane() -> None:
    """What the lane is for: the plain forms of the write tests redis-benchmark runs."""
    cmds = [
        [b"SET", b"s", b"v"],
        [b"MSET", b"a", b"1", b"b", b"2"],
        [b"INCR", b"n"],
        [b"DECR", b"n"],
        [b"INCRBY", b"n", b"5"],
        [b"DECRBY", b"n", b"2"],
        [b"LPUSH", b"l", b"x", b"y"],
        [b"RPUSH", b"l", b"z"],
        [b"LPOP", b"l"],
        [b"RPOP", b"l"],
        [b"ZADD", b"z", b"1.5", b"m"],
        [b"ZADD", b"big", b"-2", b"n"],
    ]
    commands = [(argv, encode_command(argv), i, 1) for i, argv in enumerate(cmds)]
    for run in filter(None, (C_APPLY_RUN, lane.apply_run)):
        big = ZSet({b"m%d" % i: float(i) for i in range(200)}, listpack=False)
        d: dict = {b"big": big}
        keep: list[bytes] = []
        assert run(d, {}, commands, 0, keep, {}) == (len(cmds), len(cmds))
        assert keep == [c[1] for c in commands]
        assert d[b"n"] == b"3" and list(d[b"l"]) == [b"x"] and dict(d[b"z"]) == {b"m": 1.5}
        assert type(d[b"l"]) is ListValue and type(d[b"z"]) is ZSet and d[b"z"].listpack
        assert big[b"n"] == -2.0 and big.index[0] == (-2.0, b"n")


def test_the_lane_waits_while_keys_are_watched() -> None:
    """A watcher must hear of every write: the lane leaves those to the appliers."""
    ks = Keyspace()
    heard: list[bytes] = []
    ks.on_key_modified = lambda db, key: heard.append(key)
    argv = [b"INCR", b"n"]
    incr = [StreamCommand(argv, encode_command(argv), 1, 1)]
    assert ks.apply_run(0, incr, 0, [], {}) == (0, 0)
    ks.on_key_modified = None
    ks.unsupported_keys.add((0, b"x"))
    assert ks.apply_run(0, incr, 0, [], {}) == (0, 0)
    ks.unsupported_keys.clear()
    ks.encodings[0][b"s"] = b"raw"  # a store must drop the key's encoding mark
    assert ks.apply_run(0, incr, 0, [], {}) == (0, 0)


def test_sets_and_hashes_are_left_to_their_appliers() -> None:
    """Their appliers keep each key's encoding history (`SetValue`, `Keyspace.encodings`),
    which the lane does not: it stops before them, changing nothing."""
    for argv in (
        [b"SADD", b"t", b"m"],
        [b"SREM", b"t", b"m"],
        [b"HSET", b"h", b"f", b"v"],
        [b"HMSET", b"h", b"f", b"v"],
    ):
        commands = [(argv, encode_command(argv), 0, 1)]
        for run in filter(None, (C_APPLY_RUN, lane.apply_run)):
            d: dict = {}
            assert run(d, {}, commands, 0, [], {}) == (0, 0) and d == {}
