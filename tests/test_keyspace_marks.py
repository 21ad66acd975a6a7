"""Keys the relay could not apply a write to stay refused until their whole value is replaced.

A write the relay cannot apply (an applier failure, a module's command) marks the keys it
writes (`Keyspace.unsupported_keys`); reading such a key answers an error instead of data
the master no longer has. The mark is sticky: a later write that only modifies part of the
value (XADD, HSET, APPEND, LPUSH...) leaves the rest of the relay's copy wrong, so the key
stays refused. Only a command that replaces the whole value (SET, DEL, RESTORE, MSET, a
*STORE destination computed from trustworthy keys) or a new snapshot lifts it; a value
computed from a marked key (SINTERSTORE, LMOVE, COPY, BITOP...) is marked too.

Failures are real ones: commands a replica of the master's version cannot reproduce (an
approximate stream trim that only a master sends in its rewritten form, a command with a
syntax the applier refuses), fed through `Keyspace.apply` as the stream feeds them.
"""

from __future__ import annotations

import pytest

from replproxy.keyspace import Keyspace
from replproxy.keyspace import notify as ksn
from replproxy.keyspace.reads import READ_COMMANDS, ReadContext, ReplyError
from replproxy.rdb.model import Aux, KeyEntry
from tests.harness.appliers import run


def apply(ks: Keyspace, *argv: object) -> None:
    """Through `Keyspace.apply`, as the stream applies it (marks are handled there)."""
    errors = dict(ks.apply_errors)
    ks.apply(0, [a if isinstance(a, bytes) else str(a).encode() for a in argv])
    assert ks.apply_errors == errors, "this write was expected to apply"


def read(ks: Keyspace, *argv: object) -> bytes:
    args = [a if isinstance(a, bytes) else str(a).encode() for a in argv]
    handler = READ_COMMANDS[args[0].lower()]
    try:
        return handler(ReadContext(ks, db=0, proto=2, now=0), args)
    except ReplyError as e:
        return b"-" + e.msg + b"\r\n"


def refused(ks: Keyspace, key: bytes, *argv: object) -> bool:
    return read(ks, *argv).startswith(b"-ERR replproxy cannot serve key '" + key)


def fail_stream(ks: Keyspace, key: bytes) -> None:
    """An XADD the relay cannot reproduce (node-granular `~` trimming, which a master
    always rewrites to `=` before propagating): the applier fails and marks the key."""
    ks.apply(0, [b"XADD", key, b"MAXLEN", b"~", b"1", b"99-1", b"f", b"v"])
    assert (0, key) in ks.unsupported_keys


def test_a_failed_stream_write_stays_refused_through_later_xadds() -> None:
    """The XADD/ACKED shape of the bug: after a failure, the next ordinary XADD used to
    clear the mark and serve a stream missing the failed write's effect (XLEN 2, not 3)."""
    ks = Keyspace()
    apply(ks, "XADD", "k", "1-0", "a", "0")
    fail_stream(ks, b"k")
    for i in range(100, 103):
        apply(ks, "XADD", "k", f"{i}-0", "b", "2")
        apply(ks, "XTRIM", "k", "MAXLEN", "10")
        assert refused(ks, b"k", "XLEN", "k")
        assert refused(ks, b"k", "XRANGE", "k", "-", "+")
    apply(ks, "DEL", "k")
    assert read(ks, "XLEN", "k") == b":0\r\n"
    apply(ks, "XADD", "k", "5-0", "a", "1")  # a fresh stream: trustworthy
    assert read(ks, "XLEN", "k") == b":1\r\n"


@pytest.mark.parametrize(
    ("partial", "reads"),
    [
        (["HSET", "k", "f", "v"], ["HGETALL", "k"]),
        (["HDEL", "k", "f"], ["HLEN", "k"]),
        (["APPEND", "k", "x"], ["GET", "k"]),
        (["SETRANGE", "k", "0", "x"], ["STRLEN", "k"]),
        (["INCR", "k"], ["GET", "k"]),
        (["SETBIT", "k", "7", "1"], ["GETBIT", "k", "7"]),
        (["LPUSH", "k", "x"], ["LRANGE", "k", "0", "-1"]),
        (["RPOP", "k"], ["LLEN", "k"]),
        (["SADD", "k", "m"], ["SCARD", "k"]),
        (["SREM", "k", "m"], ["SMEMBERS", "k"]),
        (["ZADD", "k", "1", "m"], ["ZRANGE", "k", "0", "-1"]),
        (["ZINCRBY", "k", "1", "m"], ["ZSCORE", "k", "m"]),
        (["PFADD", "k", "a"], ["GET", "k"]),
        (["EXPIRE", "k", "100"], ["TTL", "k"]),
        (["PERSIST", "k"], ["TYPE", "k"]),
    ],
)
def test_a_partial_write_after_a_failure_never_serves_the_key(
    partial: list[str], reads: list[str]
) -> None:
    """Whatever type the key had on the relay, a failed write (a module's command here)
    followed by a write to part of the value leaves the key refused: the relay's copy
    misses what the failed command did."""
    ks = Keyspace()
    ks.apply(0, [b"JSON.SET", b"k", b"$", b"{}"])
    ks.apply(0, [p.encode() for p in partial])
    assert (0, b"k") in ks.unsupported_keys
    assert refused(ks, b"k", *reads)


@pytest.mark.parametrize(
    "replace",
    [
        ["SET", "k", "v"],
        ["SET", "k", "v", "PXAT", "99999999999999"],
        ["SETEX", "k", "10", "v"],
        ["PSETEX", "k", "1000", "v"],
        ["GETSET", "k", "v"],
        ["MSET", "a", "1", "k", "v"],
        ["DEL", "k"],
        ["UNLINK", "k"],
        ["GETDEL", "k"],
        ["FLUSHDB"],
        ["FLUSHALL"],
        ["SINTERSTORE", "k", "s1"],
        ["SUNIONSTORE", "k", "s1"],
        ["SDIFFSTORE", "k", "s1"],
        ["ZUNIONSTORE", "k", "1", "z1"],
        ["ZRANGESTORE", "k", "z1", "0", "-1"],
        ["BITOP", "OR", "k", "b1"],
        ["SORT", "l1", "STORE", "k"],
    ],
)
@pytest.mark.parametrize("notifying", [False, True], ids=["quiet", "notifying"])
def test_a_whole_replacement_lifts_the_mark(replace: list[str], notifying: bool) -> None:
    """Also while keyspace notifications are listened to, when MSET (and a merged run of
    SETs) goes key by key to report its events."""
    ks = Keyspace()
    if notifying:
        ks.on_publish = lambda channel, message: None
        flags = ksn.parse_flags("KEA")
        assert flags
        ks.set_notify_flags(flags)
        ks.notify_listened(True)
        assert ks.notify_flags
    run(ks, "SADD", "s1", "x")
    run(ks, "ZADD", "z1", "1", "x")
    run(ks, "SET", "b1", "x")
    run(ks, "RPUSH", "l1", "3", "1")
    run(ks, "SET", "k", "old")
    ks.apply(0, [b"JSON.SET", b"k", b"$", b"{}"])
    ks.apply(0, [r.encode() for r in replace])
    assert (0, b"k") not in ks.unsupported_keys
    assert ks.apply_errors == {}


def test_values_computed_from_a_marked_key_are_marked() -> None:
    ks = Keyspace()
    apply(ks, "SADD", "src", "a", "b")
    apply(ks, "SADD", "ok", "a")
    apply(ks, "RPUSH", "list", "a", "b")
    apply(ks, "SET", "str", "abc")
    for key in (b"src", b"list", b"str"):
        ks.apply(0, [b"JSON.SET", key, b"$", b"{}"])
    apply(ks, "SINTERSTORE", "d1", "ok", "src")
    apply(ks, "SUNIONSTORE", "d2", "ok")
    apply(ks, "SMOVE", "src", "d3", "a")
    apply(ks, "LMOVE", "list", "d4", "LEFT", "RIGHT")
    apply(ks, "RPOPLPUSH", "list", "d5")
    apply(ks, "BITOP", "NOT", "d6", "str")
    apply(ks, "COPY", "src", "d7")
    marked = {k for _, k in ks.unsupported_keys}
    assert {b"d1", b"d3", b"d4", b"d5", b"d6", b"d7"} <= marked
    assert b"d2" not in marked and b"ok" not in marked  # from trustworthy keys; sources untouched
    # A marked destination recomputed from trustworthy keys is trustworthy again.
    apply(ks, "SINTERSTORE", "d1", "ok")
    assert (0, b"d1") not in ks.unsupported_keys


def test_marks_move_with_renames_and_moves_and_go_with_a_snapshot() -> None:
    ks = Keyspace()
    apply(ks, "SET", "a", "1")
    apply(ks, "SET", "b", "2")
    ks.apply(0, [b"JSON.SET", b"a", b"$", b"{}"])
    apply(ks, "RENAME", "a", "b")  # b now holds a's (wrong) value; a is gone
    assert ks.unsupported_keys == {(0, b"b")}
    apply(ks, "SET", "a", "fresh")
    assert read(ks, "GET", "a") == b"$5\r\nfresh\r\n"
    apply(ks, "MOVE", "b", "3")
    assert ks.unsupported_keys == {(3, b"b")}
    loader = ks.new_loader()
    loader.add([Aux(b"redis-ver", b"8.2.3"), KeyEntry(3, b"b", b"from the snapshot")])
    loader.commit()
    assert ks.unsupported_keys == set()


def test_a_failed_store_marks_its_destination_not_its_sources() -> None:
    ks = Keyspace()
    run(ks, "SADD", "s", "a")
    run(ks, "SET", "notaset", "x")
    ks.apply(0, [b"SINTERSTORE", b"dst", b"s", b"notaset"])  # WRONGTYPE on a replica
    assert ks.unsupported_keys == {(0, b"dst")}
