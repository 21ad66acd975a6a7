"""The replication core without sockets: offsets, transactions, GETACK, replid shifts, backlog."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replproxy.link.protocol import encode_command
from replproxy.replication import NULL_REPLID, Backlog, Replication
from replproxy.resp.stream import StreamSplitter


class Recorder:
    """A dataset that records what it was asked to apply, and whether atomically."""

    databases = 16

    def __init__(self) -> None:
        self.applied: list[tuple[int, list[bytes]]] = []
        self.transactions: list[list[list[bytes]]] = []

    def apply(self, db: int, argv: list[bytes]) -> None:
        self.applied.append((db, argv))

    def apply_transaction(self, db: int, commands: Sequence[list[bytes]]) -> int:
        self.transactions.append(list(commands))
        for argv in commands:
            if argv[0].lower() == b"select":
                db = int(argv[1])
            else:
                self.applied.append((db, argv))
        return db


def split(data: bytes, start: int = 0) -> list:
    s = StreamSplitter(start)
    s.feed(data)
    return s.next_commands()


def c(*a: str) -> bytes:
    return encode_command(*a)


def test_offsets_and_backlog_follow_every_byte() -> None:
    ds = Recorder()
    r = Replication(ds)
    r.full_resync("a" * 40, 1000, stream_db=0)
    data = c("SELECT", "3") + c("SET", "a", "1") + c("ping") + c("DEL", "a")
    r.process(split(data, 1000))
    assert r.repl_offset == r.read_offset == 1000 + len(data)
    assert ds.applied == [(3, [b"SET", b"a", b"1"]), (3, [b"DEL", b"a"])]
    assert r.backlog.first_byte_offset == 1001
    assert r.backlog.read_from(1001) == data
    assert r.psync_args() == ("a" * 40, 1001 + len(data))


def test_transaction_is_applied_whole_and_offset_moves_only_at_exec() -> None:
    ds = Recorder()
    r = Replication(ds)
    r.full_resync("a" * 40, 0, stream_db=0)
    multi = c("MULTI") + c("SELECT", "2") + c("INCR", "a")
    rest = c("INCR", "b") + c("EXEC")
    r.process(split(multi, 0))
    assert ds.applied == [] and r.repl_offset == 0 and r.read_offset == len(multi)
    assert r.backlog.histlen == 0  # nothing half-applied is relayed either
    r.process(split(rest, len(multi)))
    assert ds.transactions == [[[b"SELECT", b"2"], [b"INCR", b"a"], [b"INCR", b"b"]]]
    assert r.stream_db == 2
    assert r.repl_offset == len(multi + rest)
    assert r.backlog.read_from(1) == multi + rest


def test_the_masters_commands_are_counted_as_a_replica_counts_them() -> None:
    """`stats.calls`, INFO commandstats' source: each command under its name as sent (the
    session folds the case), a merged run of SETs as its SETs, MULTI/EXEC and their body,
    SELECT and PING, a container with its subcommand; through the keyspace's run lane too."""
    from replproxy.keyspace import Keyspace

    data = (
        c("SELECT", "0")
        + c("SET", "a", "1")
        + c("set", "b", "2")
        + c("SET", "c", "3")
        + c("MSET", "d", "4", "e", "5")
        + c("DEL", "x")
        + c("MSET", "d", "4")
        + c("mset", "e", "5")
        + c("MULTI")
        + c("INCR", "n")
        + c("SET", "f", "6")
        + c("EXEC")
        + c("XADD", "s", "1-1", "f", "v")
        + c("XGROUP", "CREATE", "s", "g", "$")
        + c("PING")
    )
    for ds in (Recorder(), Keyspace(databases=16)):
        r = Replication(ds)
        r.full_resync("a" * 40, 0, stream_db=0)
        s = StreamSplitter(0, merge_sets=True)
        s.feed(data)
        items = s.next_commands()
        # The three SETs were merged, and the two MSETs after the DEL.
        assert [i.commands for i in items if i.commands > 1] == [3, 2]
        r.process(items)
        assert {k: n for k, (n, _) in r.stats.calls.items()} == {
            b"select": 1,
            b"set": 3,
            b"MSET": 1,
            b"DEL": 1,
            b"mset": 2,
            b"MULTI": 1,
            b"INCR": 1,
            b"SET": 1,
            b"EXEC": 1,
            b"XADD": 1,
            b"XGROUP|CREATE": 1,
            b"ping": 1,
        }, type(ds)


def test_getack_answers_the_offset_before_it() -> None:
    r = Replication(Recorder())
    r.full_resync("a" * 40, 50, stream_db=0)
    first = c("SET", "k", "v")
    res = r.process(split(first + c("REPLCONF", "GETACK", "*"), 50))
    assert res.acks == (50 + len(first),)
    assert r.repl_offset == 50 + len(first) + len(c("REPLCONF", "GETACK", "*"))


def test_broken_link_drops_a_half_received_transaction() -> None:
    ds = Recorder()
    r = Replication(ds)
    r.full_resync("a" * 40, 0, stream_db=0)
    r.process(split(c("MULTI") + c("INCR", "a"), 0))
    r.link_lost()
    assert r.read_offset == r.repl_offset == 0
    # The master re-sends the whole transaction after +CONTINUE.
    assert r.partial_resync("a" * 40) is False
    whole = c("MULTI") + c("INCR", "a") + c("EXEC")
    r.process(split(whole, 0))
    assert ds.transactions == [[[b"INCR", b"a"]]]
    assert r.repl_offset == len(whole)


def test_continue_with_new_replid_shifts_to_replid2() -> None:
    r = Replication(Recorder())
    r.full_resync("a" * 40, 100, stream_db=0)
    assert r.partial_resync("b" * 40) is True
    assert (r.replid, r.replid2, r.second_replid_offset) == ("b" * 40, "a" * 40, 101)
    assert r.stats.sync_partial_ok == 1


def test_fresh_state_asks_for_a_full_sync_and_sync_fallback_never_partial() -> None:
    r = Replication(Recorder())
    assert r.psync_args() == ("?", -1)
    r.full_resync(None, -1, stream_db=0)
    assert r.psync_args() == ("?", -1)
    assert r.replid2 == NULL_REPLID


def test_backlog_ring_keeps_the_newest_bytes() -> None:
    b = Backlog(10)
    b.reset(1)
    b.append(b"abcdef")
    b.append(b"ghijkl")
    assert b.histlen == 10 and b.first_byte_offset == 3
    assert b.read_from(3) == b"cdefghijkl"
    assert b.read_from(13) == b""  # offset == last + 1: legal, nothing to send
    assert not b.covers(2) and not b.covers(14)
    with pytest.raises(ValueError):
        b.read_from(2)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=50), max_size=30), st.integers(1, 200))
def test_backlog_matches_a_plain_buffer(chunks: list[bytes], size: int) -> None:
    b = Backlog(size)
    b.reset(1)
    for ch in chunks:
        b.append(ch)
    whole = b"".join(chunks)
    kept = whole[-size:] if whole else b""
    assert b.histlen == len(kept)
    assert b.first_byte_offset == 1 + len(whole) - len(kept)
    assert b.read_from(b.first_byte_offset) == kept


def test_lone_exec_from_a_redis5_master_is_a_no_op() -> None:
    ds = Recorder()
    r = Replication(ds)
    r.full_resync("a" * 40, 0, stream_db=0)
    data = c("PFCOUNT", "h") + c("EXEC")
    r.process(split(data, 0))
    assert ds.applied == [(0, [b"PFCOUNT", b"h"])]
    assert r.repl_offset == len(data) and r.backlog.read_from(1) == data


@pytest.mark.parametrize("arg", [b"abc", b"-1", b"16", b" 1", b"+1", b"99999999999999999999", b""])
def test_select_the_master_could_not_execute_leaves_the_db_unchanged(arg: bytes) -> None:
    """Redis's `selectCommand` fails on these and changes nothing: no crash (which would
    reconnect and replay the same bytes forever), no write into another DB."""
    from replproxy.keyspace import Keyspace
    from replproxy.resp.request import encode_command

    ks = Keyspace(databases=16)
    repl = Replication(ks)
    repl.full_resync("a" * 40, 0, stream_db=3)
    data = (
        encode_command([b"SELECT", arg])
        + encode_command([b"SET", b"k", b"v"])
        + encode_command([b"MULTI"])
        + encode_command([b"SELECT", arg])
        + encode_command([b"SET", b"t", b"v"])
        + encode_command([b"EXEC"])
    )
    s = StreamSplitter(0)
    s.feed(data)
    repl.process(s.next_commands())
    assert repl.repl_offset == len(data) and repl.stream_db == 3
    assert ks.dbs[3].keys() == {b"k", b"t"}
