"""DUMP / RESTORE payloads against real servers.

`dump_payload` output is accepted by RESTORE (at the server's own RDB version and, on newer
servers, at older ones) and reads back as the same value; the servers' own DUMP output parses
with `parse_dump_payload` to the value the commands report; a corrupted payload is refused by
both the server and us with the same message.
"""

from __future__ import annotations

import math
import shutil
import struct
from collections.abc import Iterator

import pytest
import redis

from replproxy.rdb.dump import DUMP_ERROR, dump_payload, parse_dump_payload, verify_dump_payload
from replproxy.rdb.model import (
    HashValue,
    KeyEntry,
    RDBChecksumError,
    RDBError,
    RDBUnsupportedError,
    StreamConsumer,
    StreamGroup,
    StreamPendingEntry,
    StreamValue,
    Value,
    ZSetValue,
)
from replproxy.rdb.writer import CRC64
from tests.harness.servers import RedisServer, ServerKind, start_server
from tests.test_rdb_roundtrip import (
    comparable,
    native_version,
    needs_reader,
    populate,
    raw,
    read_value,
    snapshot,
)


def sample_values(version: int) -> dict[bytes, Value]:
    """One value per type and encoding a server picks, with awkward members."""
    entries = {
        (1000 + i // 3, i): [(b"a", b"%d" % i), (b"b", b"x" * (i % 5))] for i in range(1, 230)
    }
    entries[(5000, 0)] = [(b"other", b"1"), (b"", b"")]
    group = StreamGroup(
        b"g1",
        (1010, 30),
        31 if version >= 10 else None,
        {
            (1001, 3): StreamPendingEntry(1_700_000_000_000, 2),
            (1001, 4): StreamPendingEntry(1_700_000_000_500, 1),
        },
        [
            StreamConsumer(
                b"alice",
                1_700_000_000_000,
                1_700_000_000_000 if version >= 11 else None,
                [(1001, 3)],
            ),
            StreamConsumer(
                b"bob", 1_700_000_001_000, 1_700_000_000_500 if version >= 11 else None, [(1001, 4)]
            ),
            StreamConsumer(b"idle", 1_700_000_002_000, -1 if version >= 11 else None, []),
        ],
    )
    values: dict[bytes, Value] = {
        b"s:int": b"-12345",
        b"s:non-canonical": b"007",
        b"s:-0": b"-0",
        b"s:int64": b"-9223372036854775808",
        b"s:binary": bytes(range(256)) * 3,
        b"s:compressible": b"abc" * 1000,
        b"s:empty": b"",
        b"l:small": [b"a", b"1", b"-0", b"007", b"x" * 65],
        b"l:long": [b"%d" % i for i in range(10000)],
        b"l:big-elements": [b"x" * 9000, b"y", b"z" * 20000, b"8" * 8192],
        b"set:intset": {b"%d" % i for i in (-(2**63), 2**63 - 1, 0, -1, 70000)},
        b"set:small": {b"a", b"b", b"1", b"007"},
        b"set:large": {b"member-%d" % i for i in range(600)},
        b"z:small": ZSetValue(
            {b"inf": math.inf, b"-inf": -math.inf, b"frac": 0.1, b"neg": -3.75, b"tie": 0.1}
        ),
        b"z:large": ZSetValue({b"m%d" % i: math.sin(i) * 1e6 for i in range(300)}),
        b"h:small": {b"f": b"v", b"n": b"42", b"e": b""},
        b"h:large": {b"field-%d" % i: b"value-%d" % i for i in range(300)},
        b"h:long-value": {b"f": b"v" * 100},
        b"st:groups": StreamValue(
            entries, len(entries), (5000, 0), (1000, 1), (0, 0), len(entries), [group]
        ),
        # stream v1 (RDB 9) has no max-deleted id / entries-added: what Redis derives on load
        b"st:empty": StreamValue(
            {},
            0,
            (7, 1),
            (0, 0),
            (7, 1) if version >= 10 else (0, 0),
            3 if version >= 10 else 0,
            [StreamGroup(b"g", (7, 1), 3 if version >= 10 else None, {}, [])],
        ),
    }
    if version == 12 or version == 80:
        values[b"h:field-ttls"] = HashValue(
            {b"a": b"1", b"b": b"2"}, expires={b"a": 1_900_000_000_000}
        )
    return values


def normalized(value: Value, version: int, approx: bool) -> Value:
    return comparable([KeyEntry(0, b"k", value)], version, approx)[0].value


@pytest.fixture
def server(server_kind: ServerKind) -> Iterator[RedisServer]:
    s = start_server(server_kind)
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def restore_targets(kind: ServerKind) -> list[int]:
    """The payload versions to try on `kind`: its own, and older ones it must accept."""
    return [v for v in (9, 10, 11) if v <= native_version(kind)]


def test_dump_payload_is_accepted_by_restore_and_reads_back_equal(server: RedisServer) -> None:
    approx = server.kind.major < 7
    for version in restore_targets(server.kind):
        c = raw(server)
        for key, value in sample_values(version).items():
            payload = dump_payload(value, version)
            name = b"%s@%d" % (key, version)
            assert c.execute_command("RESTORE", name, 0, payload) == b"OK", name
            got = read_value(server, c, name)
            assert normalized(got, version, approx) == normalized(value, version, approx), name


def test_hyperloglog_payload_restores_as_a_working_hyperloglog(server: RedisServer) -> None:
    c = raw(server)
    c.execute_command("PFADD", "src", *[b"e%d" % i for i in range(5000)])
    hll = c.execute_command("GET", "src")
    for version in restore_targets(server.kind):
        name = b"hll@%d" % version
        c.execute_command("RESTORE", name, 0, dump_payload(hll, version))
        assert c.execute_command("GET", name) == hll
        assert c.execute_command("PFCOUNT", name) == c.execute_command("PFCOUNT", "src")


def test_restore_with_ttl_and_replace(server: RedisServer) -> None:
    c = raw(server)
    payload = dump_payload([b"a", b"b"], native_version(server.kind))
    c.execute_command("RESTORE", "k", 100_000, payload)
    assert 0 < c.execute_command("PTTL", "k") <= 100_000
    with pytest.raises(redis.ResponseError, match="BUSYKEY"):
        c.execute_command("RESTORE", "k", 0, payload)
    c.execute_command("RESTORE", "k", 0, dump_payload(b"v", 9), "REPLACE")
    assert c.execute_command("GET", "k") == b"v"


@needs_reader
def test_servers_dump_parses_to_the_value_the_commands_report(server: RedisServer) -> None:
    populate(server)
    version = native_version(server.kind)
    approx = server.kind.major < 7
    entries, _ = snapshot(server)
    assert entries
    for e in entries:
        payload = raw(server, e.db).execute_command("DUMP", e.key)
        rdb_type, value, payload_version = parse_dump_payload(payload)
        assert payload_version == version and rdb_type == payload[0]
        assert normalized(value, version, approx) == normalized(e.value, version, approx), e.key


@needs_reader
@pytest.mark.parametrize(
    ("version", "valkey"),
    [(9, False), (10, False), (11, False), (11, True), (12, False), (80, True)],
)
def test_dump_payload_parses_back_to_the_same_value(version: int, valkey: bool) -> None:
    for key, value in sample_values(version).items():
        payload = dump_payload(value, version, valkey=valkey)
        rdb_type, got, got_version = parse_dump_payload(payload)
        assert (rdb_type, got_version) == (payload[0], version)
        assert got == value, key


def test_corrupted_payload_is_refused_by_the_server_and_by_us(server: RedisServer) -> None:
    c = raw(server)
    good = dump_payload({b"f": b"v"}, native_version(server.kind))
    flipped = bytearray(good)
    flipped[3] ^= 0x01
    bad_crc = good[:-1] + bytes((good[-1] ^ 0xFF,))
    for bad in (bytes(flipped), bad_crc):
        with pytest.raises(redis.ResponseError, match=DUMP_ERROR):
            c.execute_command("RESTORE", "bad", 0, bad)
        with pytest.raises(RDBChecksumError, match=DUMP_ERROR):
            parse_dump_payload(bad)


def _with_version(payload: bytes, version: int) -> bytes:
    head = payload[:-10] + struct.pack("<H", version)
    return head + struct.pack("<Q", CRC64.calc(head))


def test_payload_from_a_newer_version_is_refused(server: RedisServer) -> None:
    newer = native_version(server.kind) + 1
    payload = dump_payload(b"v", 9)
    with pytest.raises(redis.ResponseError, match=DUMP_ERROR):
        raw(server).execute_command("RESTORE", "k", 0, _with_version(payload, newer))
    with pytest.raises(RDBUnsupportedError, match="RDB version 14"):
        verify_dump_payload(_with_version(payload, 14))
    assert verify_dump_payload(_with_version(payload, 13)) == 13
    assert verify_dump_payload(_with_version(payload, 12)) == 12
    assert verify_dump_payload(dump_payload(b"v", 80, valkey=True)) == 80


def test_truncated_payload_is_refused() -> None:
    for bad in (b"", b"\x00\x01v", dump_payload(b"v", 10)[:9]):
        with pytest.raises(RDBError, match="too short"):
            parse_dump_payload(bad)


def test_dump_payload_layout() -> None:
    payload = dump_payload(b"hello", 10)
    assert payload[:-10] == b"\x00\x05hello"
    assert struct.unpack("<H", payload[-10:-8])[0] == 10
    assert struct.unpack("<Q", payload[-8:])[0] == CRC64.calc(payload[:-8])
