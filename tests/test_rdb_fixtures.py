"""The reader against the shared fixture corpus (../shared/fixtures/rdb, see its SOURCES.md).

Three readings of each file are compared with the reader's:

* what the file is known to hold (names, rdbtools' own tests, librdb's test expectations);
* rdbtools (PyPI), an independent parser, for every file of RDB version 9 and below;
* a real server: the file is loaded by redis-server 7.0 / valkey-server 8.1 and every key's
  type, value and TTL as served is compared. A file a server cannot load (too new a version,
  module data) is not comparable for that server and is reported, not failed.

This module also holds `served_keyspace` / `assert_matches_server`, used by the reader tests
on files written by real servers.
"""

from __future__ import annotations

import datetime
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from rdbtools import RdbCallback, RdbParser

from replproxy.rdb import (
    Aux,
    End,
    Event,
    Function,
    HashValue,
    Header,
    KeyEntry,
    ModuleAux,
    ModuleValue,
    RDBChecksumError,
    RDBError,
    RDBReader,
    RDBUnsupportedError,
    SlotInfo,
    StreamValue,
    ZSetValue,
    read_file,
    type_name,
)
from tests.conftest import KINDS, SHARED_RDB
from tests.harness.servers import RedisServer, ServerKind, start_server

FIXTURES = (
    sorted(str(p.relative_to(SHARED_RDB)) for p in SHARED_RDB.glob("*/*.rdb"))
    if SHARED_RDB.is_dir()
    else []
)

# The negative files of SOURCES.md: (error class, words the message must contain).
NEGATIVE: dict[str, tuple[type[RDBError], str]] = {
    "valkey/corrupt_ziplist.rdb": (RDBError, "ziplist"),
    "librdb/invalid_chksum_v8.rdb": (RDBChecksumError, "CRC64 mismatch"),
    "librdb/future_v19.rdb": (RDBUnsupportedError, "RDB version 99"),
    "librdb/redis_ent_opcode_ram_lru.rdb": (RDBUnsupportedError, "unsupported opcode"),
}
POSITIVE = [f for f in FIXTURES if f not in NEGATIVE]

# The `utf8` value of rdbtools/non_ascii_values.rdb: Hebrew words around U+1000F and "123".
NON_ASCII_UTF8 = bytes.fromhex("d791d793d799d7a7d794f090808f313233d7a2d791d7a8d799d7aa")


def rdb_version(path: Path) -> int:
    head = path.read_bytes()[:9]
    return int(head[5:]) if head.startswith(b"REDIS") else int(head[6:])


def events_of(path: Path) -> list[Event]:
    return list(read_file(path))


def keys_of(events: list[Event]) -> dict[tuple[int, bytes], KeyEntry]:
    return {(e.db, e.key): e for e in events if isinstance(e, KeyEntry)}


# ---- every fixture: parses, or fails with the error SOURCES.md expects ----


@pytest.mark.parametrize("name", POSITIVE)
def test_fixture_parses_to_the_end(shared_rdb: Path, name: str) -> None:
    path = shared_rdb / name
    reader = RDBReader()
    reader.feed(path.read_bytes())
    reader.feed_eof()
    events = reader.next_events()
    assert isinstance(events[0], Header)
    assert isinstance(events[-1], End)
    assert sum(isinstance(e, (Header, End)) for e in events) == 2
    assert reader.version == rdb_version(path)
    # The whole file is the RDB, except a captured diskless payload's 40-byte EOF mark.
    assert reader.offset + len(reader.unused_data) == path.stat().st_size


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_negative_fixture_fails_clearly(shared_rdb: Path, name: str) -> None:
    cls, words = NEGATIVE[name]
    with pytest.raises(RDBError) as info:
        events_of(shared_rdb / name)
    assert type(info.value) is cls
    assert words in str(info.value)
    assert (
        info.value.offset is not None
        and 0 <= info.value.offset <= (shared_rdb / name).stat().st_size
    )
    assert f"at byte offset {info.value.offset}" in str(info.value)


def test_corrupt_ziplist_names_the_key_and_offset(shared_rdb: Path) -> None:
    with pytest.raises(RDBError) as info:
        events_of(shared_rdb / "valkey/corrupt_ziplist.rdb")
    assert "key:000000000091" in str(info.value)
    assert info.value.offset == 488  # the hash ziplist string of that key


def test_checksum_mismatch_can_be_ignored(shared_rdb: Path) -> None:
    events = list(read_file(shared_rdb / "librdb/invalid_chksum_v8.rdb", verify_checksum=False))
    assert isinstance(events[-1], End)
    assert len(keys_of(events)) == 3


# ---- known contents ----


def test_rdbtools_integer_keys(shared_rdb: Path) -> None:
    keys = {
        k[1]: e.value
        for k, e in keys_of(events_of(shared_rdb / "rdbtools/integer_keys.rdb")).items()
    }
    assert keys[b"125"] == b"Positive 8 bit integer"
    assert keys[b"43947"] == b"Positive 16 bit integer"
    assert keys[b"183358245"] == b"Positive 32 bit integer"
    assert keys[b"-123"] == b"Negative 8 bit integer"
    assert keys[b"-29477"] == b"Negative 16 bit integer"
    assert keys[b"-183358245"] == b"Negative 32 bit integer"


def test_rdbtools_keys_with_expiry(shared_rdb: Path) -> None:
    (entry,) = keys_of(events_of(shared_rdb / "rdbtools/keys_with_expiry.rdb")).values()
    assert entry.key == b"expires_ms_precision"
    assert entry.value == b"2022-12-25 10:11:12.573 UTC"
    expected = datetime.datetime(2022, 12, 25, 10, 11, 12, 573000, tzinfo=datetime.UTC)
    assert entry.expire_ms == int(expected.timestamp() * 1000)


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("intset_16", {32764, 32765, 32766}),
        ("intset_32", {2147418108, 2147418109, 2147418110}),
        ("intset_64", {9223090557583032316, 9223090557583032317, 9223090557583032318}),
    ],
)
def test_rdbtools_intsets(shared_rdb: Path, name: str, values: set[int]) -> None:
    (entry,) = keys_of(events_of(shared_rdb / f"rdbtools/{name}.rdb")).values()
    assert entry.rdb_type == 11
    assert entry.value == {str(v).encode() for v in values}


def test_rdbtools_ziplist_with_integers(shared_rdb: Path) -> None:
    (entry,) = keys_of(events_of(shared_rdb / "rdbtools/ziplist_with_integers.rdb")).values()
    ints = [*range(13), -2, 13, 25, -61, 63, 16380, -16000, 65535, -65523, 4194304, 2**63 - 1]
    assert entry.value == [str(i).encode() for i in ints]


def test_rdbtools_small_encodings(shared_rdb: Path) -> None:
    def only(name: str) -> KeyEntry:
        (entry,) = keys_of(events_of(shared_rdb / f"rdbtools/{name}.rdb")).values()
        return entry

    assert only("zipmap_that_doesnt_compress").value == {b"MKD1G6": b"2", b"YNNXK": b"F7TI"}
    assert only("zipmap_that_compresses_easily").value == {
        b"a": b"aa",
        b"aa": b"aaaa",
        b"aaaaa": b"aaaaaaaaaaaaaa",
    }
    assert only("hash_as_ziplist").value == only("zipmap_that_compresses_easily").value
    assert only("regular_set").value == {b"alpha", b"beta", b"gamma", b"delta", b"phi", b"kappa"}
    assert only("sorted_set_as_ziplist").value == {
        b"8b6ba6718a786daefa69438148361901": 1.0,
        b"cb7a24bb7528f934b841b34c3a73e0c7": 2.37,
        b"523af537946b79c4f8369ed39ba78605": 3.423,
    }
    assert only("ziplist_that_compresses_easily").value == [
        b"a" * n for n in (6, 12, 18, 24, 30, 36)
    ]
    assert only("ziplist_that_doesnt_compress").value == [
        b"aj2410",
        b"cc953a17a8e096e76a44169ad3f9ac87c5f8248a403274416179aa9fbd852344",
    ]
    assert len(only("dictionary").value) == 1000  # type: ignore[arg-type]
    assert len(only("linkedlist").value) == 1000  # type: ignore[arg-type]
    assert len(only("regular_sorted_set").value) == 500  # type: ignore[arg-type]
    assert only("easily_compressible_string_key").key == b"a" * 200
    big = only("zipmap_with_big_values").value
    assert isinstance(big, dict) and not isinstance(big, ZSetValue)  # a hash: bytes values
    assert len(big[b"253bytes"]) == 253 and len(big[b"254bytes"]) == 254


def test_rdbtools_multiple_databases_and_non_ascii(shared_rdb: Path) -> None:
    keys = keys_of(events_of(shared_rdb / "rdbtools/multiple_databases.rdb"))
    assert {k: e.value for k, e in keys.items()} == {
        (0, b"key_in_zeroth_database"): b"zero",
        (2, b"key_in_second_database"): b"second",
    }
    keys = keys_of(events_of(shared_rdb / "rdbtools/non_ascii_values.rdb"))
    assert keys[(0, b"utf8")].value == NON_ASCII_UTF8
    assert keys[(0, b"bin")].value == b"\x00$ ~0\x7f\xff\n\xaa\t\x80\rAb"


def test_rdbtools_version_8_64bit_lengths_and_binary_scores(shared_rdb: Path) -> None:
    keys = keys_of(events_of(shared_rdb / "rdbtools/rdb_version_8_with_64b_length_and_scores.rdb"))
    assert keys[(0, b"foo")].value == b"bar"
    bigset = keys[(0, b"bigset")]
    zset = bigset.value
    assert bigset.rdb_type == 5 and isinstance(zset, ZSetValue) and len(zset) == 1000
    assert zset[b"finalfield"] == 2.718
    assert sum(s == 1.618 for s in zset.values()) == 999


def test_captured_diskless_payload_keeps_the_eof_mark(shared_rdb: Path) -> None:
    path = shared_rdb / "rdbtools/redis_40_with_module.rdb"
    reader = RDBReader()
    reader.feed(path.read_bytes())
    events = reader.next_events()
    assert isinstance(events[-1], End) and events[-1].checksum == 0
    assert len(reader.unused_data) == 40
    assert reader.unused_data == path.read_bytes()[-40:]
    module = keys_of(events)[(0, b"foo")].value
    assert isinstance(module, ModuleValue)
    assert (module.name, module.encver) == ("ReJSON-RL", 0)
    assert type_name(module) == "ReJSON-RL"
    assert module.raw.endswith(b"\x00")


def test_v5_stream_with_a_group(shared_rdb: Path) -> None:
    keys = keys_of(events_of(shared_rdb / "rdbtools/redis_50_with_streams.rdb"))
    s = keys[(0, b"mystream")].value
    assert isinstance(s, StreamValue)
    assert s.length == 4 and next(iter(s.entries)) == (1528176919539, 0)
    assert s.entries[(1528199037311, 0)] == [(b"sensor-id", b"1234"), (b"temperature", b"19.8")]
    # What Redis derives for a v1 stream on load.
    assert s.first_id == (1528176919539, 0) and s.entries_added == 4
    assert b"mygroup" in [g.name for g in s.groups]
    for group in s.groups:
        assert group.entries_read is None  # v1 streams do not store it
        owned = [i for c in group.consumers for i in c.pending]
        assert sorted(owned) == sorted(group.pel)


def test_librdb_stream_v3_groups(shared_rdb: Path) -> None:
    (entry,) = keys_of(events_of(shared_rdb / "librdb/stream_v11.rdb")).values()
    s = entry.value
    assert isinstance(s, StreamValue) and entry.rdb_type == 21
    assert len(s.entries) == s.length == s.entries_added == 6
    assert s.entries[(1695893015933, 0)] == [
        (b"field1", b"value1"),
        (b"field2", b"value2"),
        (b"field3", b"value3"),
    ]
    groups = {g.name: g for g in s.groups}
    assert set(groups) == {b"groupA", b"groupB"}
    a = groups[b"groupA"]
    assert a.last_id == (1695649446276, 0) and a.entries_read == 4
    assert {c.name: c.pending for c in a.consumers} == {
        b"consumerA1": [],
        b"consumerA2": [(1695649446276, 0)],
    }
    assert all(c.active_time is not None for c in a.consumers)


def test_librdb_misc_streams_v1(shared_rdb: Path) -> None:
    keys = keys_of(events_of(shared_rdb / "librdb/misc_with_stream.rdb"))
    s1 = keys[(0, b"stream1")].value
    assert isinstance(s1, StreamValue)
    assert s1.entries[(2, 0)] == [(b"foo", b"1"), (b"bar", b"2")]
    s2 = keys[(0, b"stream2")].value
    assert isinstance(s2, StreamValue)
    assert s2.length == 0 and s2.last_id == (1701639321301, 0) and s2.first_id == (0, 0)
    assert keys[(0, b"hll")].value.startswith(b"HYLL")  # type: ignore[union-attr]


def test_librdb_memory_policy_opcodes(shared_rdb: Path) -> None:
    (lfu,) = keys_of(events_of(shared_rdb / "librdb/mem_policy_lfu.rdb")).values()
    assert (lfu.freq, lfu.idle) == (5, None)
    (lru,) = keys_of(events_of(shared_rdb / "librdb/mem_policy_lru.rdb")).values()
    assert (lru.freq, lru.idle) == (None, 24)


def test_librdb_expiries(shared_rdb: Path) -> None:
    (old,) = keys_of(events_of(shared_rdb / "librdb/set_expired_v11.rdb")).values()
    assert old.expire_ms == 1692540290000
    (future,) = keys_of(events_of(shared_rdb / "librdb/set_not_expired_v11.rdb")).values()
    assert future.expire_ms == 3692539827000


def test_librdb_int_encoded_strings(shared_rdb: Path) -> None:
    keys = keys_of(events_of(shared_rdb / "librdb/string_int_encoded.rdb"))
    assert len(keys) == 57
    for (_, key), entry in keys.items():
        assert key.startswith(b"str::")
        assert entry.value == key[5:]


def test_librdb_same_zset_in_four_encodings(shared_rdb: Path) -> None:
    readings = []
    for name, rdb_type in [
        ("plain_zset_v6", 3),
        ("zset_zl_v6", 12),
        ("plain_zset_2_v11", 5),
        ("zset_lp_v11", 17),
    ]:
        (entry,) = keys_of(events_of(shared_rdb / f"librdb/{name}.rdb")).values()
        assert entry.rdb_type == rdb_type
        readings.append(dict(entry.value))  # type: ignore[arg-type]
    assert all(r == readings[0] for r in readings)
    z = readings[0]
    assert len(z) == 24 and z[b"a9"] == float("inf") and z[b"a10"] == float("-inf")
    assert z[b"a13"] == 8.888888 and z[b"a24"] == -4.329000123123131e28


def test_librdb_hash_field_ttls_of_74_release_candidates(shared_rdb: Path) -> None:
    for name, rdb_type in [("hash_with_expire_v12", 22), ("hash_lp_with_hexpire_v12", 23)]:
        (entry,) = keys_of(events_of(shared_rdb / f"librdb/{name}.rdb")).values()
        assert entry.rdb_type == rdb_type
        h = entry.value
        assert isinstance(h, HashValue)
        assert dict(h) == {b"field1": b"value1", b"field2": b"value2", b"field3": b"value3"}
        assert set(h.expires) == {b"field1", b"field2"}
        assert all(ms > 2**45 for ms in h.expires.values())


def test_librdb_other_records(shared_rdb: Path) -> None:
    events = events_of(shared_rdb / "librdb/cluster_slot_info.rdb")
    assert SlotInfo(7638, 1, 0) in events
    events = events_of(shared_rdb / "librdb/function.rdb")
    (fn,) = [e for e in events if isinstance(e, Function)]
    assert fn.code.startswith(b"#!lua name=mylib")
    events = events_of(shared_rdb / "librdb/module_aux.rdb")
    aux = [e for e in events if isinstance(e, ModuleAux)]
    assert [(a.name, a.when) for a in aux] == [("test__rdb", 1), ("test__rdb", 2)]
    assert all(a.raw[:1] == b"\x02" and a.raw.endswith(b"\x00") for a in aux)
    keys = keys_of(events_of(shared_rdb / "librdb/multiple_dbs.rdb"))
    assert {k: e.value for k, e in keys.items()} == {
        (0, b"x"): b"0",
        (1, b"y"): b"1",
        (2, b"z"): b"2",
    }
    keys = keys_of(events_of(shared_rdb / "librdb/100_lists.rdb"))
    assert len(keys) == 100 and all(len(e.value) == 100 for e in keys.values())  # type: ignore[arg-type]
    (script,) = [e for e in events_of(shared_rdb / "librdb/script.rdb") if isinstance(e, End)]
    assert script.checksum == 0


def test_valkey_assets(shared_rdb: Path) -> None:
    for name in ("hash-zipmap", "hash-ziplist"):
        (entry,) = keys_of(events_of(shared_rdb / f"valkey/{name}.rdb")).values()
        assert entry.value == {b"f1": b"v1", b"f2": b"v2"}
    (z,) = keys_of(events_of(shared_rdb / "valkey/zset-ziplist.rdb")).values()
    assert z.value == {b"one": 1.0, b"two": 2.0}
    keys = {k[1]: e for k, e in keys_of(events_of(shared_rdb / "valkey/encodings.rdb")).items()}
    assert len(keys) == 13
    assert keys[b"compressible"].value == b"a" * 137
    assert keys[b"list_zipped"].value == [
        b"1",
        b"2",
        b"3",
        b"a",
        b"b",
        b"c",
        b"100000",
        b"6000000000",
    ]
    aux = [e for e in events_of(shared_rdb / "valkey/scriptbackup.rdb") if isinstance(e, Aux)]
    assert Aux(b"lua", b"return redis.call('set', 'foo', 'bar')") in aux


def test_empty_keys_are_skipped_like_redis(shared_rdb: Path) -> None:
    reader = RDBReader()
    reader.feed((shared_rdb / "valkey/corrupt_empty_keys.rdb").read_bytes())
    reader.feed_eof()
    assert not keys_of(reader.next_events())
    assert reader.skipped_empty_keys == 9


# ---- rdbtools as a second reading (RDB <= 9) ----


class _Collect(RdbCallback):
    """Collects (db, key) -> (type, value, expire_ms, extra) from rdbtools callbacks."""

    def __init__(self) -> None:
        super().__init__(string_escape=None)
        self.db = 0
        self.keys: dict[tuple[int, bytes], list[Any]] = {}

    def _new(self, key: bytes, kind: str, value: Any, expiry: datetime.datetime | None) -> None:
        self.keys[(self.db, _b(key))] = [kind, value, _dt_ms(expiry), None]

    def start_database(self, db_number: int) -> None:
        self.db = db_number

    def set(self, key, value, expiry, info):
        self._new(key, "string", _b(value), expiry)

    def start_hash(self, key, length, expiry, info):
        self._new(key, "hash", {}, expiry)

    def hset(self, key, field, value):
        self.keys[(self.db, _b(key))][1][_b(field)] = _b(value)

    def start_set(self, key, cardinality, expiry, info):
        self._new(key, "set", set(), expiry)

    def sadd(self, key, member):
        self.keys[(self.db, _b(key))][1].add(_b(member))

    def start_list(self, key, expiry, info):
        self._new(key, "list", [], expiry)

    def rpush(self, key, value):
        self.keys[(self.db, _b(key))][1].append(_b(value))

    def start_sorted_set(self, key, length, expiry, info):
        self._new(key, "zset", {}, expiry)

    def zadd(self, key, score, member):
        self.keys[(self.db, _b(key))][1][_b(member)] = float(score)

    def start_module(self, key, module_name, expiry, info):
        if key is None:  # a MODULE_AUX record
            return False
        self._new(key, module_name, None, expiry)
        return True

    def end_module(self, key, buffer_size, buffer=None):
        if key is not None:
            self.keys[(self.db, _b(key))][1] = buffer

    def start_stream(self, key, listpacks_count, expiry, info):
        self._new(key, "stream", None, expiry)

    def end_stream(self, key, items, last_entry_id, cgroups):
        self.keys[(self.db, _b(key))][1] = (items, last_entry_id, cgroups)


def _b(v: bytes | int) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode()


def _dt_ms(dt: datetime.datetime | None) -> int | None:
    if dt is None:
        return None
    d = dt - datetime.datetime(1970, 1, 1)
    return d.days * 86_400_000 + d.seconds * 1000 + d.microseconds // 1000


RDBTOOLS_COMPARABLE = [
    f for f in POSITIVE if SHARED_RDB.is_dir() and rdb_version(SHARED_RDB / f) <= 9
]


@pytest.mark.parametrize("name", RDBTOOLS_COMPARABLE)
def test_same_reading_as_rdbtools(shared_rdb: Path, name: str) -> None:
    collect = _Collect()
    RdbParser(collect).parse(str(shared_rdb / name))
    ours = keys_of(events_of(shared_rdb / name))
    assert set(ours) == set(collect.keys)
    for k, entry in ours.items():
        kind, value, expire_ms, _ = collect.keys[k]
        assert type_name(entry.value) == kind, k
        assert entry.expire_ms == expire_ms, k
        v = entry.value
        if isinstance(v, StreamValue):
            items, last_id, groups = value
            assert v.length == items and f"{v.last_id[0]}-{v.last_id[1]}" == last_id
            assert [g.name for g in v.groups] == [g["name"] for g in groups]
            for ours_g, theirs in zip(v.groups, groups):
                assert f"{ours_g.last_id[0]}-{ours_g.last_id[1]}" == theirs["last_entry_id"]
                pel = {_raw_id(p["id"]): p["delivery_count"] for p in theirs["pending"]}
                assert {i: p.delivery_count for i, p in ours_g.pel.items()} == pel
                assert {c.name: c.pending for c in ours_g.consumers} == {
                    c["name"]: [_raw_id(p["id"]) for p in c["pending"]] for c in theirs["consumers"]
                }
        elif isinstance(v, ModuleValue):
            assert value[0] == 7 and value.endswith(v.raw)
        else:
            assert v == value, k


def _raw_id(raw: bytes) -> tuple[int, int]:
    return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")


# ---- a real server as the oracle ----


@dataclass
class Served:
    type: str
    value: Any
    pttl: int  # -1 without expiry


def _bytes(v: object) -> bytes:
    """A reply value redis-py types widely: bytes from these clients (no decode_responses)."""
    assert isinstance(v, bytes), v
    return v


def _sid(raw: object) -> tuple[int, int]:
    ms, seq = _bytes(raw).split(b"-")
    return int(ms), int(seq)


def served_stream(c: redis.Redis, key: bytes) -> dict[str, Any]:
    info = c.xinfo_stream(key)
    groups = {}
    for g in c.xinfo_groups(key):
        name = g["name"]
        pel = c.xpending_range(key, name, "-", "+", 1_000_000)
        groups[name] = {
            "last_id": _sid(g["last-delivered-id"]),
            "entries_read": g.get("entries-read"),
            "pel": {
                _sid(p["message_id"]): (
                    p["consumer"],
                    p["times_delivered"],
                    p["time_since_delivered"],
                )
                for p in pel
            },
            "consumers": {x["name"]: x["pending"] for x in c.xinfo_consumers(key, name)},
        }
    return {
        "entries": [(_sid(i), fields) for i, fields in c.xrange(key) or []],
        "length": info["length"],
        "last_id": _sid(info["last-generated-id"]),
        "max_deleted_id": _sid(info["max-deleted-entry-id"])
        if "max-deleted-entry-id" in info
        else None,
        "entries_added": info.get("entries-added"),
        "first_id": _sid(info["recorded-first-entry-id"])
        if "recorded-first-entry-id" in info
        else None,
        "groups": groups,
    }


def served_value(c: redis.Redis, key: bytes) -> Served:
    kind = _bytes(c.type(key)).decode()
    pttl = c.pttl(key)
    value: Any
    if kind == "string":
        value = c.get(key)
    elif kind == "list":
        value = c.lrange(key, 0, -1)
    elif kind == "set":
        value = c.smembers(key)
    elif kind == "zset":
        value = dict(cast(list[tuple[bytes, float]], c.zrange(key, 0, -1, withscores=True)))
    elif kind == "hash":
        value = c.hgetall(key)
    elif kind == "stream":
        value = served_stream(c, key)
    else:
        value = None
    return Served(kind, value, pttl)


def served_keyspace(server: RedisServer) -> dict[tuple[int, bytes], Served]:
    """Every key the server holds, in every db, as served."""
    out = {}
    with server.client() as c:
        dbs = [int(name[2:]) for name in c.info("keyspace")]
    for db in dbs:
        with server.client(db=db) as c:
            for key in c.scan_iter(count=1000):
                out[(db, key)] = served_value(c, key)
    return out


def assert_stream_matches(
    s: StreamValue, served: dict[str, Any], now_ms: int, rdb_type: int
) -> None:
    assert [(i, dict(f)) for i, f in s.entries.items()] == served["entries"]
    assert s.length == served["length"]
    assert s.last_id == served["last_id"]
    if served["max_deleted_id"] is not None:
        assert s.max_deleted_id == served["max_deleted_id"]
        assert s.entries_added == served["entries_added"]
        # For an empty v1 stream Redis derives first_id = UINT64_MAX-UINT64_MAX; the model
        # records "no entry" as (0, 0).
        if s.entries or rdb_type != 15:
            assert s.first_id == served["first_id"]
    groups = {g.name: g for g in s.groups}
    assert set(groups) == set(served["groups"])
    for name, g in groups.items():
        sg = served["groups"][name]
        assert g.last_id == sg["last_id"]
        if g.entries_read is not None and g.entries_read >= 0:
            assert g.entries_read == sg["entries_read"]
        owner = {i: c.name for c in g.consumers for i in c.pending}
        assert set(g.pel) == set(sg["pel"])
        for i, p in g.pel.items():
            consumer, count, idle = sg["pel"][i]
            assert (owner.get(i), p.delivery_count) == (consumer, count)
            assert abs(now_ms - idle - p.delivery_time) < 5000
        assert {c.name: len(c.pending) for c in g.consumers} == sg["consumers"]


def assert_matches_server(
    entries: list[KeyEntry], served: dict[tuple[int, bytes], Served], now_ms: int
) -> None:
    """The reader's keys equal what the server serves (keys already expired may be gone)."""
    maybe_expired = {
        (e.db, e.key) for e in entries if e.expire_ms is not None and e.expire_ms <= now_ms + 2000
    }
    expected = {(e.db, e.key): e for e in entries if (e.db, e.key) not in maybe_expired}
    assert set(served) - maybe_expired == set(expected)
    for k, e in expected.items():
        s = served[k]
        assert type_name(e.value) == s.type, k
        if isinstance(e.value, StreamValue):
            assert_stream_matches(e.value, s.value, now_ms, e.rdb_type)
        elif isinstance(e.value, (dict, set, list, bytes)):
            expected_value: Any = dict(e.value) if isinstance(e.value, dict) else e.value
            assert expected_value == s.value, k
        if e.expire_ms is None:
            assert s.pttl == -1, k
        else:
            assert abs(now_ms + s.pttl - e.expire_ms) < 5000, k


# Newest RDB version each server kind can load.
_MAX_VERSION = {"redis7": 10, "valkey8": 11, "redis5": 9}


def _load_into_server(
    kind: ServerKind, path: Path
) -> tuple[dict[tuple[int, bytes], Served] | None, str]:
    """Start `kind` on a copy of `path`; (served keyspace, "") or (None, why not)."""
    d = Path(tempfile.mkdtemp(prefix=f"replproxy-rdbfix-{kind.name}-"))
    try:
        shutil.copy(path, d / "fixture.rdb")
        try:
            server = start_server(kind, dir=d, dbfilename="fixture.rdb")
        except RuntimeError as e:
            return None, f"{kind.name} could not load it: {str(e)[-300:]}"
        try:
            return served_keyspace(server), ""
        finally:
            server.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _server_comparable(kind: ServerKind, root: Path, name: str) -> str:
    """Why `kind` cannot load fixture `name`, or "" if it should."""
    if rdb_version(root / name) > _MAX_VERSION.get(kind.name, 0):
        return f"RDB version {rdb_version(root / name)} is newer than {kind.name} reads"
    events = events_of(root / name)
    if any(
        isinstance(e, ModuleAux) or (isinstance(e, KeyEntry) and isinstance(e.value, ModuleValue))
        for e in events
    ):
        return "holds module data"
    return ""


@pytest.fixture(scope="module", params=KINDS, ids=[k.name for k in KINDS])
def fixtures_as_served(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[ServerKind, dict[str, Any]]]:
    """Each positive fixture loaded by one server kind (loaded concurrently: it is slow)."""
    kind: ServerKind = request.param
    if not SHARED_RDB.is_dir():
        pytest.skip("../shared/fixtures/rdb is absent")
    results: dict[str, Any] = {}
    todo = []
    for name in POSITIVE:
        why = _server_comparable(kind, SHARED_RDB, name)
        if why:
            results[name] = (None, why)
        else:
            todo.append(name)
    loaded_at = int(time.time() * 1000)
    with ThreadPoolExecutor(max_workers=8) as pool:
        for name, result in zip(
            todo, pool.map(lambda n: _load_into_server(kind, SHARED_RDB / n), todo)
        ):
            results[name] = result
    yield kind, {"results": results, "now_ms": loaded_at}


@pytest.mark.parametrize("name", POSITIVE)
def test_same_reading_as_a_real_server(
    fixtures_as_served: tuple[ServerKind, dict[str, Any]], name: str
) -> None:
    kind, data = fixtures_as_served
    served, why = data["results"][name]
    if served is None:
        pytest.skip(f"not comparable with {kind.name}: {why}")
    entries = [e for e in events_of(SHARED_RDB / name) if isinstance(e, KeyEntry)]
    assert_matches_server(entries, served, int(time.time() * 1000))
