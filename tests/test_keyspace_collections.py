"""Lists, hashes and sets: every write a master sends for them is applied exactly.

The oracle is a real master: each test drives one (Redis 7.0, Valkey 8.1, Redis 5.0 when
available) with redis-py, lets `Mirror` apply the real replication stream through replproxy's
own link and keyspace, and asks `compare_with_master` for differences. Sequences are random
but seeded, mixing small and large containers (listpack/ziplist/intset and
quicklist/hashtable encodings), values longer than 64 bytes and integer-looking members.

Hash field TTLs (Redis 7.4+/8.x, Valkey 9) have no server here, so their appliers are proven
by direct unit tests fed the exact argv the upstream source propagates.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
import redis

import replproxy.keyspace.commands  # noqa: F401 - fills WRITE_COMMANDS
from replproxy.keyspace import Keyspace
from replproxy.rdb.model import HashValue
from tests.harness.appliers import run
from tests.harness.mirror import Mirror, assert_mirrors, raw_client, send
from tests.harness.servers import RedisServer, wait_for

# ---- helpers ----


def b(*items: object) -> list[bytes]:
    return [i if isinstance(i, bytes) else str(i).encode() for i in items]


def version(server: RedisServer) -> tuple[int, int, int]:
    return server.kind.version


# ---- lists: unit ----


def test_list_pushes_keep_order_and_x_variants_need_the_key() -> None:
    ks = Keyspace()
    run(ks, "LPUSH", "l", "a", "b", "c")
    run(ks, "RPUSH", "l", "d", "e")
    assert ks.get(0, b"l") == b("c", "b", "a", "d", "e")
    run(ks, "LPUSHX", "l", "x", "y")
    run(ks, "RPUSHX", "l", "z")
    assert ks.get(0, b"l") == b("y", "x", "c", "b", "a", "d", "e", "z")
    run(ks, "LPUSHX", "missing", "a")
    run(ks, "RPUSHX", "missing", "a")
    assert ks.get(0, b"missing") is None


def test_list_lrem_counts_from_each_end() -> None:
    ks = Keyspace()
    items = ["a", "x", "b", "x", "c", "x", "d"]
    for count, expected in [(2, "abcxd"), (-2, "axbcd"), (0, "abcd"), (10, "abcd")]:
        run(ks, "DEL", "l")
        run(ks, "RPUSH", "l", *items)
        run(ks, "LREM", "l", count, "x")
        assert ks.get(0, b"l") == b(*expected), count
    run(ks, "LREM", "l", 0, "a")
    run(ks, "LREM", "l", 0, "b")
    run(ks, "LREM", "l", -5, "c")
    run(ks, "LREM", "l", 1, "d")
    assert ks.get(0, b"l") is None


def test_list_ltrim_follows_ltrimcommand_index_rules() -> None:
    ks = Keyspace()
    base = [str(i) for i in range(10)]
    for start, stop in [
        (0, -1),
        (2, 4),
        (-3, -1),
        (-100, 2),
        (5, 100),
        (4, 2),
        (10, 20),
        (-1, -5),
        (0, 0),
        (9, 9),
    ]:
        run(ks, "DEL", "l")
        run(ks, "RPUSH", "l", *base)
        run(ks, "LTRIM", "l", start, stop)
        llen = 10
        s = start + llen if start < 0 else start
        e = stop + llen if stop < 0 else stop
        s = max(s, 0)
        expected = [] if s > e or s >= llen else base[s : min(e, llen - 1) + 1]
        assert ks.get(0, b"l") == (b(*expected) if expected else None), (start, stop)


def test_list_pops_with_counts_and_deletion_when_empty() -> None:
    ks = Keyspace()
    run(ks, "RPUSH", "l", *"abcdefg")
    run(ks, "LPOP", "l")
    run(ks, "RPOP", "l")
    run(ks, "LPOP", "l", 2)
    run(ks, "RPOP", "l", 0)
    assert ks.get(0, b"l") == b(*"def")
    run(ks, "RPOP", "l", 2)
    assert ks.get(0, b"l") == [b"d"]
    run(ks, "RPOP", "l", 5)  # what LMPOP ... COUNT 5 becomes on a short list
    assert ks.get(0, b"l") is None


def test_list_lmove_and_rpoplpush_including_same_key_rotation() -> None:
    ks = Keyspace()
    run(ks, "RPUSH", "src", "a", "b", "c")
    run(ks, "RPOPLPUSH", "src", "dst")
    run(ks, "LMOVE", "src", "dst", "LEFT", "RIGHT")
    assert ks.get(0, b"src") == [b"b"] and ks.get(0, b"dst") == b("c", "a")
    run(ks, "LMOVE", "dst", "dst", "right", "left")  # rotation on one key
    assert ks.get(0, b"dst") == b("a", "c")
    run(ks, "LMOVE", "src", "src", "LEFT", "RIGHT")  # a one-element list rotates onto itself
    assert ks.get(0, b"src") == [b"b"]
    ks.set_expire(0, b"dst", 10**13)
    run(ks, "LMOVE", "src", "dst", "LEFT", "LEFT")
    assert ks.get(0, b"src") is None and ks.get(0, b"dst") == b("b", "a", "c")
    assert ks.get_expire(0, b"dst") == 10**13  # pushing into an existing list keeps its TTL


def test_list_linsert_and_lset() -> None:
    ks = Keyspace()
    run(ks, "RPUSH", "l", "a", "p", "b", "p")
    run(ks, "LINSERT", "l", "BEFORE", "p", "x")
    run(ks, "LINSERT", "l", "after", "p", "y")
    run(ks, "LINSERT", "l", "AFTER", "nope", "z")
    assert ks.get(0, b"l") == b("a", "x", "p", "y", "b", "p")
    run(ks, "LSET", "l", -1, "last")
    run(ks, "LSET", "l", 0, "first")
    assert ks.get(0, b"l") == b("first", "x", "p", "y", "b", "last")


# ---- sets: unit ----


def test_set_store_commands_overwrite_delete_and_allow_destination_as_source() -> None:
    ks = Keyspace()
    run(ks, "SADD", "a", 1, 2, 3, 4)
    run(ks, "SADD", "b", 3, 4, 5)
    run(ks, "SINTERSTORE", "a", "a", "b")
    assert ks.get(0, b"a") == set(b(3, 4))
    run(ks, "SUNIONSTORE", "u", "a", "b", "missing")
    assert ks.get(0, b"u") == set(b(3, 4, 5))
    run(ks, "SDIFFSTORE", "d", "b", "a")
    assert ks.get(0, b"d") == {b"5"}
    ks.set_expire(0, b"d", 10**13)
    run(ks, "SUNIONSTORE", "d", "b")
    assert ks.get_expire(0, b"d") is None  # setKey drops the destination's TTL
    assert ks.get(0, b"d") is not ks.get(0, b"b")  # a copy, never an alias of a source
    run(ks, "SINTERSTORE", "d", "b", "missing")
    run(ks, "SDIFFSTORE", "u", "missing", "b")
    assert ks.get(0, b"d") is None and ks.get(0, b"u") is None


def test_set_smove_and_srem_delete_emptied_sets() -> None:
    ks = Keyspace()
    run(ks, "SADD", "s", "m")
    run(ks, "SMOVE", "s", "s", "m")  # same key: a no-op
    assert ks.get(0, b"s") == {b"m"}
    run(ks, "SMOVE", "s", "t", "m")
    assert ks.get(0, b"s") is None and ks.get(0, b"t") == {b"m"}
    run(ks, "SREM", "t", "m", "other")
    assert ks.get(0, b"t") is None


# ---- hashes: unit, including field TTLs fed the exact argv the upstream source propagates ----


def as_hash(ks: Keyspace, key: bytes = b"h") -> dict[bytes, bytes]:
    v = ks.get(0, key)
    assert type(v) is dict or type(v) is HashValue
    return v  # type: ignore[return-value]


def hv(ks: Keyspace, key: bytes = b"h") -> HashValue:
    v = ks.get(0, key)
    assert type(v) is HashValue
    return v


def test_hash_basic_writes() -> None:
    ks = Keyspace()
    run(ks, "HSET", "h", "a", "1", "b", "2")
    run(ks, "HMSET", "h", "c", "3", "a", "10")
    run(ks, "HSETNX", "h", "a", "nope")
    run(ks, "HSETNX", "h", "d", "4")
    run(ks, "HINCRBY", "h", "b", "-7")
    run(ks, "HINCRBY", "h", "new", "5")
    assert ks.get(0, b"h") == {b"a": b"10", b"b": b"-5", b"c": b"3", b"d": b"4", b"new": b"5"}
    assert list(as_hash(ks)) == b("a", "b", "c", "d", "new")  # listpack order
    run(ks, "HDEL", "h", "a", "b", "c", "d", "zzz")
    run(ks, "HDEL", "h", "new")
    assert ks.get(0, b"h") is None


def test_hpexpireat_as_hexpiregenericcommand_propagates_it() -> None:
    # Redis 7.4 t_hash.c hexpireGenericCommand: HEXPIRE/HPEXPIRE/HEXPIREAT are rewritten to
    # `HPEXPIREAT key <abs-ms> [NX|XX|GT|LT] FIELDS <updated> f...` (fields not updated are
    # removed with rewriteClientCommandArgument(c, fieldAt, NULL)); a past time deletes the
    # field on the master and propagateHashFieldDeletion sends `HDEL key f` instead.
    ks = Keyspace()
    run(ks, "HSET", "h", "a", "1", "b", "2", "c", "3")
    t = 1_900_000_000_000
    run(ks, "HPEXPIREAT", "h", t, "FIELDS", 2, "a", "b")
    assert dict(hv(ks)) == {b"a": b"1", b"b": b"2", b"c": b"3"}
    assert hv(ks).expires == {b"a": t, b"b": t}
    run(ks, "HPEXPIREAT", "h", t + 5, "GT", "FIELDS", 1, "a")
    run(ks, "HPEXPIREAT", "h", t - 5, "LT", "FIELDS", 1, "b")
    run(ks, "HPEXPIREAT", "h", t, "NX", "FIELDS", 1, "c")
    assert hv(ks).expires == {b"a": t + 5, b"b": t - 5, b"c": t}
    run(ks, "HDEL", "h", "c")  # the field expired: the master's propagateHashFieldDeletion
    assert hv(ks).expires == {b"a": t + 5, b"b": t - 5} and b"c" not in hv(ks)
    # A time already past when the replica applies it is stored, not acted on: the master
    # decides expiry and sends the HDEL (checkAlreadyExpired is false on a replica).
    run(ks, "HPEXPIREAT", "h", 1000, "FIELDS", 1, "a")
    assert hv(ks).expires[b"a"] == 1000 and hv(ks)[b"a"] == b"1"
    run(ks, "HPEXPIREAT", "missing", t, "FIELDS", 1, "a")
    assert ks.get(0, b"missing") is None


def test_hpexpireat_rechecks_conditions_as_a_valkey9_replica_must() -> None:
    # Valkey 9 t_hash.c hexpireGenericCommand keeps every field and the condition flags and
    # only renames the command to HPEXPIREAT (rewriteClientCommandArgument(c, 0, ...), argv[2]
    # -> absolute ms); hashTypeSetExpire re-checks NX/XX/GT/LT per field on the replica.
    ks = Keyspace()
    run(ks, "HSET", "h", "ttl", "1", "plain", "2")
    t = 1_900_000_000_000
    run(ks, "HPEXPIREAT", "h", t, "FIELDS", 1, "ttl")
    run(ks, "HPEXPIREAT", "h", t + 1, "XX", "FIELDS", 3, "ttl", "plain", "gone")
    assert hv(ks).expires == {b"ttl": t + 1}  # no TTL: XX fails; a missing field is skipped
    run(ks, "HPEXPIREAT", "h", t + 2, "GT", "FIELDS", 2, "ttl", "plain")
    assert hv(ks).expires == {b"ttl": t + 2}  # no TTL counts as infinite: GT fails
    run(ks, "HPEXPIREAT", "h", t + 9, "LT", "FIELDS", 2, "ttl", "plain")
    assert hv(ks).expires == {b"ttl": t + 2, b"plain": t + 9}  # LT passes for no TTL
    run(ks, "HPEXPIREAT", "h", t, "NX", "FIELDS", 2, "ttl", "plain")
    assert hv(ks).expires == {b"ttl": t + 2, b"plain": t + 9}
    run(ks, "HPEXPIREAT", "h", t + 2, "GT", "FIELDS", 1, "ttl")  # equal is not greater
    assert hv(ks).expires[b"ttl"] == t + 2


def test_hash_relative_field_ttls_if_sent_verbatim_use_the_relay_clock() -> None:
    ks = Keyspace()
    ks.now_ms = lambda: 1_000_000  # type: ignore[method-assign]
    run(ks, "HSET", "h", "a", "1", "b", "2", "c", "3", "d", "4")
    run(ks, "HEXPIRE", "h", 10, "FIELDS", 1, "a")
    run(ks, "HPEXPIRE", "h", 10, "FIELDS", 1, "b")
    run(ks, "HEXPIREAT", "h", 2000, "FIELDS", 1, "c")
    assert hv(ks).expires == {b"a": 1_010_000, b"b": 1_000_010, b"c": 2_000_000}


def test_hpersist_and_hset_drop_field_ttls_hincrby_keeps_them() -> None:
    ks = Keyspace()
    run(ks, "HSET", "h", "a", "1", "b", "2", "c", "3", "n", "7")
    t = 1_900_000_000_000
    run(ks, "HPEXPIREAT", "h", t, "FIELDS", 4, "a", "b", "c", "n")
    # Redis 7.4 hashTypeSet: without HASH_SET_KEEP_TTL an overwritten field loses its TTL.
    run(ks, "HSET", "h", "a", "new")
    # hincrbyCommand: hashTypeSet(..., HASH_SET_TAKE_VALUE | HASH_SET_KEEP_TTL).
    run(ks, "HINCRBY", "h", "n", "3")
    # hpersistCommand is propagated verbatim: `HPERSIST key FIELDS numfields field...`.
    run(ks, "HPERSIST", "h", "FIELDS", 2, "b", "missing")
    assert dict(hv(ks)) == {b"a": b"new", b"b": b"2", b"c": b"3", b"n": b"10"}
    assert hv(ks).expires == {b"c": t, b"n": t}
    run(ks, "HSETNX", "h", "c", "ignored")
    run(ks, "HDEL", "h", "c", "n")
    assert hv(ks).expires == {}
    assert ks.get(0, b"h") == {b"a": b"new", b"b": b"2"}  # equal to a plain dict again
    run(ks, "HPERSIST", "h", "FIELDS", 1, "a")
    run(ks, "HPERSIST", "nohash", "FIELDS", 1, "a")


def test_hsetex_forms_redis8_propagates() -> None:
    # Redis 8 t_hash.c hsetexCommand: EX/PX/EXAT are rewritten to `PXAT <ms>`
    # (rewriteClientCommandArgument(c, expire_time_pos - 1, shared.pxat)); FNX/FXX and
    # KEEPTTL stay; a past time sends HDELs and the HSETEX itself is not propagated.
    # hincrbyfloatCommand propagates `HSETEX key KEEPTTL FIELDS 1 field <result>`.
    ks = Keyspace()
    t = 1_900_000_000_000
    run(ks, "hsetex", "h", "PXAT", t, "FIELDS", 2, "a", "1", "b", "2")
    assert dict(hv(ks)) == {b"a": b"1", b"b": b"2"} and hv(ks).expires == {b"a": t, b"b": t}
    run(ks, "HSETEX", "h", "KEEPTTL", "FIELDS", 1, "a", "1.5")
    assert hv(ks)[b"a"] == b"1.5" and hv(ks).expires[b"a"] == t
    run(ks, "HSETEX", "h", "FIELDS", 1, "b", "plain")  # no TTL option: the TTL goes
    assert hv(ks).expires == {b"a": t}
    run(ks, "HSETEX", "h", "FNX", "PXAT", t + 1, "FIELDS", 2, "c", "3", "a", "x")
    assert b"c" not in hv(ks)  # a exists: FNX fails for all
    run(ks, "HSETEX", "h", "FNX", "PXAT", t + 1, "FIELDS", 1, "c", "3")
    run(ks, "HSETEX", "h", "FXX", "KEEPTTL", "FIELDS", 2, "a", "A", "c", "C")
    run(ks, "HSETEX", "h", "FXX", "FIELDS", 2, "a", "no", "zz", "no")
    assert dict(hv(ks)) == {b"a": b"A", b"b": b"plain", b"c": b"C"}
    assert hv(ks).expires == {b"a": t, b"c": t + 1}
    run(ks, "HSETEX", "new", "FXX", "FIELDS", 1, "a", "1")
    assert ks.get(0, b"new") is None
    run(ks, "HSETEX", "new", "FNX", "FIELDS", 1, "a", "1")
    assert ks.get(0, b"new") == {b"a": b"1"}
    run(ks, "HSETEX", "new2", "KEEPTTL", "FIELDS", 1, "a", "1")
    assert ks.get(0, b"new2") == {b"a": b"1"}


def test_hsetex_forms_valkey9_propagates() -> None:
    # Valkey 9 t_hash.c hsetexCommand copies the optional arguments into new_argv skipping
    # "NX"/"XX"/"FNX"/"FXX" with a case-SENSITIVE strcmp (so a lowercase `nx` survives) and
    # turns EX/PX/EXAT into `PXAT <ms>`; a past time becomes `HDEL key f...`.
    ks = Keyspace()
    t = 1_900_000_000_000
    run(ks, "HSETEX", "h", "nx", "PXAT", t, "FIELDS", 1, "a", "1")
    run(ks, "HSETEX", "h", "nx", "PXAT", t, "FIELDS", 1, "b", "2")  # key exists: NX fails
    run(ks, "HSETEX", "g", "xx", "FIELDS", 1, "a", "1")  # key missing: XX fails
    assert dict(hv(ks)) == {b"a": b"1"} and ks.get(0, b"g") is None
    run(ks, "HSETEX", "h", "xx", "fnx", "PXAT", t + 1, "FIELDS", 1, "b", "2")
    assert hv(ks).expires == {b"a": t, b"b": t + 1}


def test_hgetex_and_hgetdel_rewrites() -> None:
    # Redis 8 hgetexCommand: `HGETEX k PERSIST FIELDS n f..` -> `HPERSIST k FIELDS n f..`;
    # `HGETEX k EX s FIELDS n f..` -> `HPEXPIREAT k <ms> FIELDS n f..`; a past time -> HDELs.
    # hgetdelCommand: `HGETDEL k FIELDS n f..` -> `HDEL k f..`.
    ks = Keyspace()
    t = 1_900_000_000_000
    run(ks, "HSET", "h", "a", "1", "b", "2", "c", "3")
    run(ks, "HPEXPIREAT", "h", t, "FIELDS", 3, "a", "b", "missing")
    run(ks, "HPERSIST", "h", "FIELDS", 2, "a", "c")
    run(ks, "HDEL", "h", "b", "missing")
    assert dict(hv(ks)) == {b"a": b"1", b"c": b"3"} and hv(ks).expires == {}
    run(ks, "HDEL", "h", "a", "c")
    assert ks.get(0, b"h") is None


def test_hash_field_ttl_survives_in_a_converted_big_hash_and_keeps_key_ttl() -> None:
    ks = Keyspace()
    pairs = [x for i in range(300) for x in (f"f{i}", "v" * 70)]
    run(ks, "HSET", "h", *pairs)
    ks.set_expire(0, b"h", 10**13)
    before = list(as_hash(ks))
    run(ks, "HPEXPIREAT", "h", 1_900_000_000_000, "FIELDS", 1, "f7")
    assert list(hv(ks)) == before
    assert ks.get_expire(0, b"h") == 10**13  # converting to HashValue keeps the key TTL


# Pairs (stored value, increment) whose long double sums exercise rounding and formatting.
FLOAT_CASES = [
    ("10.5", "0.1"),
    ("5.0e3", "2.0e2"),
    ("0", "3.0e-5"),
    ("1", "1e-17"),
    ("-0.1", "0.1"),
    ("123456789012345678", "0.5"),
    ("3", "-3.0000000000000001"),
    ("0.1", "0.2"),
    ("7", "1"),
    ("1.5", "-7.25"),
]


def test_hincrbyfloat_verbatim_matches_the_master(master: RedisServer) -> None:
    """HINCRBYFLOAT never arrives verbatim from a modern master, but if it does the relay must
    compute what the master computed: the master's own reply is the oracle."""
    ks = Keyspace()
    with raw_client(master) as c:
        for i, (old, incr) in enumerate(FLOAT_CASES):
            key = f"h{i}"
            c.execute_command("HSET", key, "f", old)
            expected = c.execute_command("HINCRBYFLOAT", key, "f", incr)
            run(ks, "HSET", key, "f", old)
            run(ks, "HINCRBYFLOAT", key, "f", incr)
            assert ks.get(0, key.encode()) == {b"f": expected}, (old, incr)
        expected = c.execute_command("HINCRBYFLOAT", "fresh", "f", "2.5")
    run(ks, "HINCRBYFLOAT", "fresh", "f", "2.5")
    assert ks.get(0, b"fresh") == {b"f": expected}


# ---- the oracle: random sequences against real masters ----


class Gen:
    """Random commands for one family. Arguments are often taken from what the master holds
    right now (`pick`), so LREM/LINSERT/SMOVE/HSETNX/... hit existing elements as often as
    they miss; a small alphabet makes duplicates common."""

    def __init__(self, rng: random.Random, c: redis.Redis, v: tuple[int, int, int]) -> None:
        self.rng, self.c, self.v = rng, c, v

    def val(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.25:
            return str(rng.randrange(-5, 5))  # integers: listpack/ziplist integer encodings
        if r < 0.33:
            return "v" * rng.randrange(65, 300) + str(rng.randrange(3))  # > 64 bytes
        return f"v{rng.randrange(8)}"

    def pick(self, items: Sequence[Any], default: str) -> Any:
        return self.rng.choice(items) if items and self.rng.random() < 0.7 else default

    # ---- lists ----

    def list_cmd(self) -> list[Any]:
        rng, v = self.rng, self.v
        k, other = f"l:{rng.randrange(5)}", f"l:{rng.randrange(5)}"
        side = lambda: rng.choice(["LEFT", "RIGHT"])  # noqa: E731
        choice = rng.randrange(19)
        if choice < 4:
            n = rng.choice([150, 400]) if rng.random() < 0.05 else rng.randrange(1, 6)
            return [rng.choice(["LPUSH", "RPUSH"]), k, *(self.val() for _ in range(n))]
        if choice == 4:
            return [rng.choice(["LPUSHX", "RPUSHX"]), k, self.val(), self.val()]
        if choice == 5:
            pivot = self.pick(self.c.lrange(k, 0, -1), self.val())
            return ["LINSERT", k, rng.choice(["BEFORE", "AFTER"]), pivot, self.val()]
        if choice == 6:
            return ["LSET", k, rng.randrange(-6, 6), self.val()]
        if choice == 7:
            elem = self.pick(self.c.lrange(k, 0, -1), self.val())
            return ["LREM", k, rng.choice([-3, -2, -1, 0, 1, 2, 3, 50, -50]), elem]
        if choice == 8:
            return ["LTRIM", k, rng.randrange(-12, 30), rng.randrange(-12, 200)]
        if choice == 9:
            cmd = rng.choice(["LPOP", "RPOP"])
            if v >= (6, 2, 0) and rng.random() < 0.6:
                return [cmd, k, rng.randrange(0, 8)]
            return [cmd, k]
        if choice in (10, 11):
            return ["RPOPLPUSH", k, rng.choice([k, other])]
        if choice in (12, 13) and v >= (6, 2, 0):
            return ["LMOVE", k, rng.choice([k, other]), side(), side()]
        if choice == 14 and v >= (7, 0, 0):
            return ["LMPOP", 2, k, other, side(), "COUNT", rng.randrange(1, 9)]
        if choice == 15:
            return ["EXPIRE", k, rng.randrange(100, 1000)]
        if choice == 16:
            return ["PEXPIRE", k, rng.randrange(50, 400)]  # expires mid-run: the master's DEL
        return ["RPUSH", k, self.val()]

    # ---- hashes ----

    def field(self) -> str:
        if self.rng.random() < 0.05:
            return "F" * 70 + str(self.rng.randrange(3))  # past the listpack value limit
        return f"f{self.rng.randrange(12)}"

    def hash_cmd(self) -> list[Any]:
        rng = self.rng
        k = f"h:{rng.randrange(5)}"
        choice = rng.randrange(12)
        if choice < 4:
            n = 150 if rng.random() < 0.04 else rng.randrange(1, 5)  # big: past 128 entries
            pairs = [
                x for i in range(n) for x in ((self.field() if n < 100 else f"g{i}"), self.val())
            ]
            return [rng.choice(["HSET", "HMSET"]), k, *pairs]
        if choice == 4:
            return ["HSETNX", k, self.pick(self.c.hkeys(k), self.field()), self.val()]
        if choice == 5:
            fields = self.c.hkeys(k)
            return [
                "HDEL",
                k,
                *(self.pick(fields, self.field()) for _ in range(rng.randrange(1, 4))),
            ]
        if choice == 6:
            return ["HINCRBY", k, f"n{rng.randrange(3)}", rng.randrange(-100, 100)]
        if choice == 7:
            return [
                "HINCRBYFLOAT",
                k,
                f"x{rng.randrange(3)}",
                rng.choice([repr(rng.uniform(-10, 10)), "1e-5", "3", "-2.5e2", "0.1"]),
            ]
        if choice == 8:
            return ["EXPIRE", k, rng.randrange(100, 1000)]
        if choice == 9:
            return ["PEXPIRE", k, rng.randrange(50, 400)]
        if choice == 10:
            return ["HDEL", k, f"n{rng.randrange(3)}", f"x{rng.randrange(3)}"]
        return ["HSET", k, self.field(), self.val()]

    # ---- sets ----

    def member(self) -> str:
        r = self.rng.random()
        if r < 0.5:
            return str(self.rng.randrange(-10, 40))  # integers: intsets
        if r < 0.55:
            return "M" * 70 + str(self.rng.randrange(3))
        return f"m{self.rng.randrange(20)}"

    def set_cmd(self) -> list[Any]:
        rng = self.rng
        k = f"s:{rng.randrange(5)}"
        other = f"s:{rng.randrange(5)}"
        choice = rng.randrange(15)
        if choice < 4:
            n = 600 if rng.random() < 0.03 else rng.randrange(1, 6)  # big: past intset/listpack
            ints = rng.random() < 0.5
            return [
                "SADD",
                k,
                *((str(rng.randrange(10**6)) if ints else self.member()) for _ in range(n)),
            ]
        if choice == 4:
            members = list(self.c.smembers(k))
            return [
                "SREM",
                k,
                *(self.pick(members, self.member()) for _ in range(rng.randrange(1, 4))),
            ]
        if choice in (5, 6):
            members = list(self.c.smembers(k))
            return ["SMOVE", k, rng.choice([k, other]), self.pick(members, self.member())]
        if choice in (7, 8):
            sources = [f"s:{rng.randrange(6)}" for _ in range(rng.randrange(1, 4))]  # s:5 unset
            return [
                rng.choice(["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]),
                rng.choice([k, other]),
                *sources,
                k,
            ]
        if choice == 9:
            return ["SPOP", k]
        if choice == 10:
            return ["SPOP", k, rng.choice([0, 1, 3, 50, 2000])]
        if choice == 11:
            return ["EXPIRE", k, rng.randrange(100, 1000)]
        if choice == 12:
            return ["PEXPIRE", k, rng.randrange(50, 400)]
        return ["SADD", k, self.member()]


@pytest.mark.parametrize("family", ["list", "hash", "set"])
def test_random_sequence_matches_master(master: RedisServer, family: str) -> None:
    rng = random.Random(f"{family}-{master.kind.name}")
    with Mirror(master) as mirror, master.client() as c:
        make = getattr(Gen(rng, c, version(master)), f"{family}_cmd")
        for step in range(1, 2001):
            r = rng.random()
            if r < 0.05:
                pipe = c.pipeline(transaction=True)
                for _ in range(rng.randrange(2, 6)):
                    pipe.execute_command(*make())
                pipe.execute(raise_on_error=False)
            elif r < 0.07:
                c.execute_command("SELECT", 1)  # the same key names in another DB
                send(c, *make())
                c.execute_command("SELECT", 0)
            else:
                send(c, *make())
            if step % 500 == 0:
                assert_mirrors(mirror)


def test_list_edge_cases_match_master(master: RedisServer) -> None:
    v = version(master)
    with Mirror(master) as mirror, master.client() as c:
        dup = ["x", "a", "x", "b", "x", "c", "x", "x", "d"]
        for i, count in enumerate([2, -2, 0, 100, -100, 1, -1]):
            c.rpush(f"rem{i}", *dup)
            c.lrem(f"rem{i}", count, "x")
        c.rpush("remall", "x", "x")
        c.lrem("remall", -5, "x")
        for i, (start, stop) in enumerate(
            [
                (0, -1),
                (2, 4),
                (-3, -1),
                (-100, 2),
                (5, 100),
                (4, 2),
                (10, 20),
                (-1, -5),
                (9, 9),
                (12, 1),
            ]
        ):
            c.rpush(f"trim{i}", *range(10))
            c.ltrim(f"trim{i}", start, stop)
        # Many matches and long pops: the deque rebuilds what it keeps instead of deleting
        # one by one (ListValue), and must land on the same elements.
        many = [x for i in range(30) for x in ("x", f"e{i}")]
        for i, count in enumerate([20, -20, 0, 9, -9]):
            c.rpush(f"remmany{i}", *many)
            c.lrem(f"remmany{i}", count, "x")
        if v >= (6, 2, 0):  # LPOP/RPOP with a count
            for i, (side, count) in enumerate(
                [("l", 25), ("r", 25), ("l", 3), ("r", 3), ("l", 59), ("r", 61)]
            ):
                c.rpush(f"pops{i}", *many)
                c.execute_command("LPOP" if side == "l" else "RPOP", f"pops{i}", count)
        for i, (start, stop) in enumerate([(1, -2), (25, 30), (2, 57)]):
            c.rpush(f"bigtrim{i}", *many)
            c.ltrim(f"bigtrim{i}", start, stop)
        c.rpush("one", "solo")
        c.rpoplpush("one", "one")  # a one-element list rotates onto itself
        c.rpush("rot", 1, 2, 3)
        c.rpoplpush("rot", "rot")
        c.rpush("ins", "p", "m", "p")
        c.linsert("ins", "BEFORE", "p", "b0")
        c.linsert("ins", "AFTER", "p", "a0")
        c.linsert("ins", "AFTER", "m", "a1")
        c.lset("ins", -1, "last")
        c.rpush("move1", "only")
        c.rpoplpush("move1", "move2")  # the source goes, the destination is created
        if v >= (6, 2, 0):
            c.lmove("one", "one", "LEFT", "RIGHT")
            c.rpush("lm", 1, 2, 3, 4)
            c.lmove("lm", "lm", "LEFT", "RIGHT")
            c.lmove("lm", "lm", "RIGHT", "LEFT")
            c.lmove("lm", "lm", "LEFT", "LEFT")
            c.lpop("lm", 3)
            c.rpush("pc", *range(7))
            c.rpop("pc", 2)
            c.lpop("pc", 0)
            c.rpop("pc", 100)
        if v >= (7, 0, 0):
            c.rpush("mp", *range(5))
            c.execute_command("LMPOP", 2, "nope", "mp", "RIGHT", "COUNT", 3)
            c.execute_command("LMPOP", 1, "mp", "LEFT", "COUNT", 10)
        assert_mirrors(mirror)


def test_set_edge_cases_match_master(master: RedisServer) -> None:
    with Mirror(master) as mirror, master.client() as c:
        c.sadd("single", "m")
        c.smove("single", "single", "m")  # same key: nothing happens, even for the last one
        c.sadd("a", *range(10))
        c.sadd("b", *range(5, 15), "x")
        c.sinterstore("a", "a", "b")  # the destination is a source
        c.sunionstore("u", "a", "b", "missing")
        c.sdiffstore("d", "b", "a")
        c.sdiffstore("d2", "missing", "b")
        c.sadd("c", 1, 6, "x", "y")
        c.sdiffstore("d3", "b", "missing", "a", "c")  # every later source subtracts
        c.sinterstore("i3", "b", "c", "b")
        c.sunionstore("u3", "missing", "c", "d3", "c")
        c.sinterstore("u2", "b", "missing")
        c.sadd("ttl", "old")
        c.expire("ttl", 1000)
        c.sunionstore("ttl", "d")  # replaced: the TTL goes
        c.sadd("gone", "z")
        c.expire("gone", 1000)
        c.sinterstore("gone", "a", "missing")  # an empty result deletes the destination
        c.sadd("mv", "last")
        c.smove("mv", "mvdst", "last")
        c.srem("b", *range(5, 15), "x")
        assert_mirrors(mirror)


def test_hash_edge_cases_match_master(master: RedisServer) -> None:
    with Mirror(master) as mirror, master.client() as c:
        c.hset("h", mapping={"a": "1", "b": "x"})
        c.hsetnx("h", "a", "nope")
        c.hsetnx("h", "c", "3")
        c.hincrby("h", "a", -11)
        c.hincrbyfloat("h", "f", "1.1")
        c.hincrbyfloat("h", "f", "2.2e3")
        c.hincrbyfloat("h", "a", "0.5")
        c.hdel("h", "b", "missing")
        c.hset("big", mapping={f"f{i}": "v" * 70 for i in range(200)})
        c.hdel("big", *(f"f{i}" for i in range(199)))
        c.hset("one", "f", "v")
        c.hdel("one", "f")
        c.execute_command("HMSET", "hm", "k", "v", "k2", "v2")
        assert_mirrors(mirror)


def test_big_spop_counts_batch_and_pop_all(master: RedisServer) -> None:
    """SPOP with a count becomes SREMs (one per member in 5.x/6.x, batches of 1024 in 7.0+)
    or a DEL when it takes everything; small sets (intset/listpack) and big ones."""
    with Mirror(master) as mirror, master.client() as c:
        c.sadd("big", *range(5000))
        c.sadd("bigs", *(f"member-{i}" for i in range(3000)))
        c.sadd("small", *range(10))
        c.sadd("all", *(f"m{i}" for i in range(40)))
        c.expire("big", 1000)
        c.spop("big", 2500)  # > 1024: several SREM batches
        c.spop("bigs", 1500)
        c.spop("bigs")
        c.spop("small", 3)
        c.spop("all", 40)  # everything: DEL
        c.spop("small", 100)
        assert_mirrors(mirror)
        assert c.scard("big") == 2500 and c.ttl("big") > 0


def test_blocking_pops_served_by_pushes(master: RedisServer) -> None:
    v = version(master)
    blockers: list[list[Any]] = [
        ["BLPOP", "b:1", "b:2", 10],
        ["BRPOP", "b:3", 10],
        ["BRPOPLPUSH", "b:4", "b:5", 10],
        ["BRPOPLPUSH", "b:6", "b:6", 10],  # served onto its own key
    ]
    if v >= (6, 2, 0):
        blockers.append(["BLMOVE", "b:7", "b:8", "LEFT", "RIGHT", 10])
        blockers.append(["BLMOVE", "b:9", "b:9", "RIGHT", "LEFT", 10])
    if v >= (7, 0, 0):
        blockers.append(["BLMPOP", 10, 2, "b:10", "b:11", "RIGHT", "COUNT", 2])
    with Mirror(master) as mirror, master.client() as c:
        c.rpush("b:5", "dst-old")
        c.expire("b:5", 1000)
        results: list[Any] = []

        def block(argv: list[Any]) -> None:
            with master.client() as other:
                results.append(other.execute_command(*argv))

        threads = [threading.Thread(target=block, args=(a,)) for a in blockers]
        for t in threads:
            t.start()
        wait_for(
            lambda: int(c.info("clients")["blocked_clients"]) == len(blockers),
            timeout=10,
            what="every client blocked",
        )
        c.rpush("b:2", "x", "y", "z")
        c.lpush("b:3", "p", "q")
        pipe = c.pipeline(transaction=True)  # served after EXEC, with what it pushed
        pipe.rpush("b:4", "one", "two")
        pipe.rpush("b:6", "self")
        pipe.execute()
        if v >= (6, 2, 0):
            c.rpush("b:7", "m1", "m2")
            c.rpush("b:9", "r1", "r2", "r3")
        if v >= (7, 0, 0):
            c.rpush("b:11", "a", "b", "c")
        for t in threads:
            t.join(15)
        assert len(results) == len(blockers) and all(r is not None for r in results)
        assert_mirrors(mirror)


LUA = """
redis.call('RPUSH', KEYS[1], ARGV[1], ARGV[2], ARGV[1])
redis.call('LPOP', KEYS[1])
redis.call('LREM', KEYS[1], 0, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HINCRBYFLOAT', KEYS[2], 'fl', '0.1')
redis.call('HINCRBY', KEYS[2], 'n', 3)
redis.call('SADD', KEYS[3], ARGV[1], ARGV[2], 'x', 'y', 'z')
redis.call('SPOP', KEYS[3])
redis.call('SPOP', KEYS[3], 2)
redis.call('SUNIONSTORE', KEYS[3] .. ':u', KEYS[3], KEYS[3] .. ':other')
return 1
"""


def test_lua_and_multi_writes(master: RedisServer) -> None:
    with Mirror(master) as mirror, master.client() as c:
        gen = Gen(random.Random(7), c, version(master))
        c.sadd("{t}:s:other", "o1", "o2")
        for i in range(30):
            c.execute_command(
                "EVAL",
                LUA,
                3,
                f"{{t}}:l:{i % 4}",
                f"{{t}}:h:{i % 4}",
                f"{{t}}:s:{i % 4}",
                gen.val(),
                gen.val(),
            )
        pipe = c.pipeline(transaction=True)
        pipe.rpush("ml", *range(50))
        pipe.ltrim("ml", 5, -5)
        pipe.hset("mh", mapping={f"f{i}": "v" * 80 for i in range(5)})
        pipe.hdel("mh", "f1")
        pipe.sadd("ms", *range(20))
        pipe.spop("ms", 5)
        pipe.sdiffstore("ms2", "ms", "{t}:s:other")
        pipe.rpoplpush("ml", "ml")
        pipe.execute()
        assert_mirrors(mirror)


def test_ttls_survive_in_place_writes_and_go_with_replacement(master: RedisServer) -> None:
    v = version(master)
    with Mirror(master) as mirror, master.client() as c:
        c.rpush("l", *range(10))
        c.hset("h", mapping={"a": 1, "b": 2})
        c.sadd("s", 1, 2, 3)
        c.sadd("dst", "old")
        for k in ("l", "h", "s", "dst"):
            c.expire(k, 5000)
        c.lpush("l", "head")
        c.hincrbyfloat("h", "a", "1.5")
        c.hset("h", "c", 3)
        c.sadd("s", 4)
        c.srem("s", 1)
        c.sunionstore("dst", "s")  # replaced: no TTL any more
        c.rpoplpush("l", "moved")  # a new destination has no TTL
        c.expire("moved", 3000)
        if v >= (6, 2, 0):
            c.lmove("l", "moved", "LEFT", "LEFT")  # an existing destination keeps its TTL
        c.rpush("gone", "x")
        c.pexpire("gone", 100)
        c.sadd("gone2", "x")
        c.pexpire("gone2", 100)
        time.sleep(0.3)
        c.execute_command("EXISTS", "gone")  # lazy expiry: the master sends DEL
        assert_mirrors(mirror)
        assert mirror.keyspace.get_expire(0, b"dst") is None
        assert mirror.keyspace.get_expire(0, b"l") is not None
        assert mirror.keyspace.get(0, b"gone") is None


def test_writes_to_values_loaded_from_the_snapshot(master: RedisServer) -> None:
    """Containers that exist before the mirror attaches come from the RDB reader, in every
    encoding the master chose (ziplist/listpack/intset/quicklist/hashtable); the stream's
    writes must apply to them exactly as to values the stream built."""
    with master.client() as c:
        c.rpush("sl", *range(5))
        c.rpush("bl", *("v" * 70 + str(i) for i in range(300)))
        c.hset("sh", mapping={"a": 1, "b": "x"})
        c.hset("bh", mapping={f"f{i}": "v" * 70 for i in range(200)})
        c.sadd("si", *range(20))
        c.sadd("ss", "a", "b", "c")
        c.sadd("bs", *(f"m{i}" for i in range(700)))
        c.expire("bl", 1000)
    with Mirror(master) as mirror, master.client() as c:
        c.lpush("sl", "head")
        c.rpoplpush("bl", "sl")
        c.lrem("bl", 0, "v" * 70 + "7")
        c.ltrim("bl", 1, -2)
        c.hset("sh", "a", "2")
        c.hincrby("sh", "a", 5)
        c.hdel("bh", "f1", "f2")
        c.hsetnx("bh", "new", "n")
        c.sadd("si", 100, "not-an-int")
        c.srem("ss", "a")
        c.smove("bs", "ss", "m5")
        c.sinterstore("inter", "bs", "ss")
        c.spop("bs", 300)
        assert_mirrors(mirror)
