"""The newest formats: Redis 8.6 (RDB 13) and Valkey 9 (VALKEY080), read and written.

No server of those versions runs on this machine, so every file here is built byte by byte
from the layouts docs/rdb.md states (an independent builder, not the writer), and every
value is checked field by field:

* RDB 13: streams of type 26 (the v3 layout plus an IDMP section) and KEY_META (opcode 243:
  module metadata classes before a key's type byte);
* VALKEY080: SLOT_IMPORT (opcode 243 there), next to HASH_2 (tests/test_rdb_reader.py);
* what cannot be read (RDB 14+, types and opcodes beyond) fails with the version and the
  type or opcode named;
* the writer writes the same bytes for the same values, and refuses (or drops, where a
  server would) what an older target cannot hold.

Each file also goes through the counting/collecting sinks and the C loader, fed whole and
in chunks (tests/test_rdb_sinks.py `check`, tests/test_rdb_speedups.py `both`), mutated too.
"""

from __future__ import annotations

import io
import json
import random
import struct
from pathlib import Path

import anycrc
import pytest
from typer.testing import CliRunner

from replproxy.dialect import MasterDialect
from replproxy.rdb import (
    Header,
    KeyEntry,
    KeyMeta,
    RDBError,
    RDBReader,
    RDBUnsupportedError,
    SlotImport,
    StreamConsumer,
    StreamGroup,
    StreamIdmp,
    StreamPendingEntry,
    StreamValue,
    decode_value,
    read_file,
)
from replproxy.rdb.cli import app
from replproxy.rdb.dump import dump_payload, parse_dump_payload
from replproxy.rdb.model import KEY_META_CHARSET
from replproxy.rdb.reader import KeySink
from replproxy.rdb.writer import RDBEncodeError, RDBWriter, Target, encode_object, write_rdb
from tests.test_rdb_encodings import make_listpack
from tests.test_rdb_reader import feed_in_chunks, keys, parse, rdb, rkey, rlen, rstr
from tests.test_rdb_sinks import check
from tests.test_rdb_speedups import both, mutations, speedups

_CRC = anycrc.Model("CRC64-REDIS")

# ---- an independent builder for the new records (docs/rdb.md) ----


def sid(ms: int, seq: int) -> bytes:
    """A stream id as two RDB lengths (ms, seq)."""
    return rlen(ms) + rlen(seq)


def idmp_section(
    duration: int,
    max_entries: int,
    producers: list[tuple[bytes, list[tuple[bytes, int, int]]]],
    added: int,
    duplicates: int,
) -> bytes:
    out = rlen(duration) + rlen(max_entries) + rlen(len(producers))
    for pid, tracked in producers:
        out += rstr(pid) + rlen(len(tracked))
        for iid, ms, seq in tracked:
            out += rstr(iid) + sid(ms, seq)
    return out + rlen(added) + rlen(duplicates)


# One listpack node of two entries (100-0: a=1, b=2 and 100-1: a=3, b=4), a group holding
# 100-0 in its PEL, owned by consumer "c"; stream meta for types 19+.
_LP = make_listpack(
    [2, 0, 2, b"a", b"b", 0,
     2, 0, 0, b"1", b"2", 5,
     2, 0, 1, b"3", b"4", 5]
)  # fmt: skip
STREAM_BODY = (
    rlen(1) + rstr(struct.pack(">QQ", 100, 0)) + rstr(_LP)
    + rlen(2) + sid(100, 1)  # length, last id
    + sid(100, 0) + sid(0, 0) + rlen(2)  # first id, max deleted id, entries added
    + rlen(1) + rstr(b"g") + sid(100, 0) + rlen(1)  # group g, last id 100-0, entries read 1
    + rlen(1) + struct.pack(">QQ", 100, 0) + struct.pack("<q", 5000) + rlen(1)  # PEL
    + rlen(1) + rstr(b"c") + struct.pack("<q", 6000) + struct.pack("<q", 7000)  # consumer c
    + rlen(1) + struct.pack(">QQ", 100, 0)
)  # fmt: skip
IDMP = idmp_section(
    7200, 1000, [(b"p1", [(b"i1", 100, 0), (b"i2", 100, 1)]), (b"p2", [(b"j1", 100, 1)])], 3, 1
)
EXPECTED_STREAM = StreamValue(
    entries={(100, 0): [(b"a", b"1"), (b"b", b"2")], (100, 1): [(b"a", b"3"), (b"b", b"4")]},
    length=2,
    last_id=(100, 1),
    first_id=(100, 0),
    max_deleted_id=(0, 0),
    entries_added=2,
    groups=[
        StreamGroup(
            b"g",
            (100, 0),
            1,
            {(100, 0): StreamPendingEntry(5000, 1)},
            [StreamConsumer(b"c", 6000, 7000, [(100, 0)])],
        )
    ],
    idmp=StreamIdmp(
        7200,
        1000,
        {b"p1": [(b"i1", (100, 0)), (b"i2", (100, 1))], b"p2": [(b"j1", (100, 1))]},
        3,
        1,
    ),
)


def class_spec(name: str, version: int, flags: int) -> int:
    """A KEY_META class spec: 4 name characters (6 bits each), 5-bit version, 3-bit flags."""
    x = 0
    for ch in name:
        x = (x << 6) | KEY_META_CHARSET.index(ch)
    return (((x << 5) | version) << 3) | flags


def key_meta(*classes: tuple[int, bytes]) -> bytes:
    """KEY_META: opcode 243, class count, then per class a 4-byte LE spec and its value."""
    return b"\xf3" + rlen(len(classes)) + b"".join(struct.pack("<I", s) + v for s, v in classes)


# Module-opcode values: UINT 7; STRING "meta0"; EOF.
META_VALUE_A = rlen(2) + rlen(7) + rlen(0)
META_VALUE_B = rlen(5) + rstr(b"meta0") + rlen(0)
IGNORABLE = class_spec("KMT0", 3, 1)
STRICT = class_spec("KMT1", 0, 0)


def slot_import(name: bytes, ranges: list[tuple[int, int]]) -> bytes:
    out = b"\xf3" + rstr(name) + rlen(len(ranges))
    return out + b"".join(rlen(a) + rlen(b) for a, b in ranges)


JOB = b"0123456789abcdef0123456789abcdef01234567"  # 40 characters


def v13_file() -> bytes:
    return rdb(
        b"\xfe\x00",
        rkey(26, b"s", STREAM_BODY + IDMP),
        b"\xfc" + struct.pack("<q", 1_900_000_000_000)
        + key_meta((IGNORABLE, META_VALUE_A), (class_spec("ab_-", 31, 7), META_VALUE_B))
        + rkey(0, b"m", rstr(b"v")),
        rkey(0, b"plain", rstr(b"w")),
        rkey(1, b"l", rlen(2) + rstr(b"x") + rstr(b"y")),
        version=13,
    )  # fmt: skip


# ---- RDB 13: streams with IDMP state ----


def test_rdb13_stream_with_idmp_state() -> None:
    data = v13_file()
    events = parse(data)
    assert events[0] == Header(b"REDIS", 13)
    stream = keys(events)[0]
    assert (stream.key, stream.rdb_type) == (b"s", 26)
    assert stream.value == EXPECTED_STREAM
    assert decode_value(26, STREAM_BODY + IDMP, rdb_version=13) == EXPECTED_STREAM
    # Fed a byte at a time (the scanner walks the IDMP section and KEY_META), and in chunks.
    assert feed_in_chunks(data, 1)[0] == events
    assert feed_in_chunks(data, 7)[0] == events
    check(data)
    check(data, [3] * (len(data) // 3 + 1))


def test_rdb13_stream_without_idmp_producers() -> None:
    body = STREAM_BODY + idmp_section(100, 100, [], 0, 0)
    (entry,) = keys(parse(rdb(rkey(26, b"s", body), version=13)))
    assert entry.value.idmp == StreamIdmp()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("idmp", "words"),
    [
        (idmp_section(1, 1, [(b"p", []), (b"p", [])], 0, 0), "duplicate stream IDMP producer"),
        (idmp_section(1, 1, [(b"p", [(b"i", 1, 0), (b"i", 1, 1)])], 0, 0), "duplicate IDMP id"),
        (rlen(1) + rlen(1) + b"\xc5", "invalid length encoding 0xc5"),
    ],
)
def test_rdb13_stream_idmp_errors(idmp: bytes, words: str) -> None:
    with pytest.raises(RDBError, match=words):
        parse(rdb(rkey(26, b"s", STREAM_BODY + idmp), version=13))
    # A file cut anywhere inside the IDMP section is reported as truncated.
    data = v13_file()
    start = data.index(IDMP)
    for cut in range(start, start + len(IDMP), 5):
        with pytest.raises(RDBError, match="truncated"):
            parse(data[:cut])


def test_stream_v4_exists_only_from_redis_rdb13() -> None:
    body = STREAM_BODY + IDMP
    with pytest.raises(RDBUnsupportedError, match="object type 26 in a RDB version 12 file"):
        parse(rdb(rkey(26, b"s", body), version=12))
    with pytest.raises(RDBUnsupportedError, match="object type 26 in a VALKEY080 file"):
        parse(rdb(rkey(26, b"s", body), version=80, magic=b"VALKEY"))


# ---- RDB 13: KEY_META ----


def test_key_meta_attaches_to_the_next_key_only() -> None:
    ks = {e.key: e for e in keys(parse(v13_file()))}
    m = ks[b"m"]
    assert m.expire_ms == 1_900_000_000_000
    assert m.meta == (
        KeyMeta(IGNORABLE, META_VALUE_A),
        KeyMeta(class_spec("ab_-", 31, 7), META_VALUE_B),
    )
    first, second = m.meta
    assert (first.name, first.version, first.flags, first.allow_ignore) == ("KMT0", 3, 1, True)
    assert (second.name, second.version, second.flags) == ("ab_-", 31, 7)
    assert ks[b"plain"].meta == () and ks[b"l"].meta == ()
    # A file cut anywhere inside KEY_META is reported as truncated.
    data = v13_file()
    start = data.index(b"\xf3")
    for cut in range(start, data.index(b"\x00\x01m")):
        with pytest.raises(RDBError, match="truncated"):
            parse(data[:cut])


def sink_load(data: bytes, fast: bool) -> tuple[list[dict[bytes, object]], list[dict[bytes, int]]]:
    dbs: list[dict[bytes, object]] = [{} for _ in range(16)]
    expires: list[dict[bytes, int]] = [{} for _ in range(16)]
    with speedups(fast):
        reader = RDBReader(sink=KeySink(dbs, expires))  # type: ignore[arg-type]
    reader.feed(data)
    reader.feed_eof()
    return dbs, expires


@pytest.mark.parametrize("fast", [False, True])
def test_key_meta_when_loading_a_keyspace(fast: bool) -> None:
    """A relay keeps no module metadata: ignorable classes are dropped, as by a server
    without the module; a class that does not allow it fails the load, naming it."""
    dbs, expires = sink_load(v13_file(), fast)
    assert dbs[0][b"m"] == b"v" and expires[0][b"m"] == 1_900_000_000_000
    assert dbs[0][b"s"] == EXPECTED_STREAM and dbs[0][b"l"] == [b"x", b"y"]
    strict = rdb(
        key_meta((IGNORABLE, META_VALUE_A), (STRICT, META_VALUE_B)) + rkey(0, b"k", rstr(b"v")),
        version=13,
    )
    assert keys(parse(strict))[0].meta[1].name == "KMT1"  # the event path keeps it
    with pytest.raises(RDBUnsupportedError, match="class 'KMT1'") as info:
        sink_load(strict, fast)
    assert info.value.offset == len(b"REDIS0013") + len(
        key_meta((IGNORABLE, META_VALUE_A), (STRICT, META_VALUE_B))
    )


@pytest.mark.parametrize(
    ("record", "cls", "words"),
    [
        (
            key_meta(*[(IGNORABLE, META_VALUE_A)] * 8) + rkey(0, b"k", rstr(b"v")),
            RDBError,
            "8 classes",
        ),
        (
            key_meta((IGNORABLE, rlen(9) + rlen(0))) + rkey(0, b"k", rstr(b"v")),
            RDBError,
            "unknown module opcode 9",
        ),
        (
            key_meta((IGNORABLE, rlen(5) + b"\xc7")) + rkey(0, b"k", rstr(b"v")),
            RDBError,
            "class 'KMT0': invalid string encoding 0xc7",
        ),
    ],
)
def test_key_meta_errors(record: bytes, cls: type[RDBError], words: str) -> None:
    with pytest.raises(cls, match=words):
        parse(rdb(record, version=13))


def test_opcode_243_by_dialect_and_version() -> None:
    record = key_meta((IGNORABLE, META_VALUE_A)) + rkey(0, b"k", rstr(b"v"))
    with pytest.raises(RDBUnsupportedError, match=r"opcode 243 \(0xf3\) in a RDB version 12"):
        parse(rdb(record, version=12))
    # In a VALKEY file 243 is SLOT_IMPORT: the KEY_META bytes are no valid job.
    with pytest.raises(RDBError, match="slot import job name length"):
        parse(rdb(record, version=80, magic=b"VALKEY"))


# ---- VALKEY080: SLOT_IMPORT ----


def test_valkey9_slot_import() -> None:
    data = rdb(
        b"\xfa" + rstr(b"valkey-ver") + rstr(b"9.0.0"),
        slot_import(JOB, [(0, 100), (200, 16383)]),
        b"\xfe\x00",
        rkey(0, b"k", rstr(b"v")),
        version=80,
        magic=b"VALKEY",
    )
    events = parse(data)
    assert SlotImport(JOB, ((0, 100), (200, 16383))) in events
    assert feed_in_chunks(data, 1)[0] == events
    check(data)


@pytest.mark.parametrize(
    ("record", "words"),
    [
        (slot_import(b"A", [(0, 0)]), "invalid slot import job name length 1"),
        (slot_import(JOB, [(2000, 1000)]), "invalid slot import range: start=2000 end=1000"),
        (slot_import(JOB, [(0, 16384)]), "invalid slot import range: start=0 end=16384"),
        (slot_import(JOB, [(16384, 17384)]), "start=16384 end=17384"),
    ],
)
def test_valkey9_slot_import_refusals(record: bytes, words: str) -> None:
    """The records Valkey's own tests craft and its loader refuses (tests/unit/...slot)."""
    with pytest.raises(RDBError, match=words) as info:
        parse(rdb(record, version=80, magic=b"VALKEY"))
    assert info.value.offset is not None and info.value.offset > 9


# ---- what cannot be read ----


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (
            b"REDIS0014\xff" + bytes(8),
            r"unsupported RDB version 14 \(newer than Redis 8.6's RDB 13\)",
        ),
        (b"REDIS0015\xff" + bytes(8), "unsupported RDB version 15"),
        (b"REDIS0079\xff" + bytes(8), "unsupported RDB version 79"),
        (b"VALKEY081\xff" + bytes(8), "unsupported Valkey RDB version 81"),
        (
            rdb(rkey(27, b"s", b""), version=13),
            "unsupported object type 27 in a RDB version 13 file",
        ),
        (rdb(rkey(28, b"a", b""), version=13), "unsupported object type 28 in a RDB version 13"),
        (
            rdb(b"\xf2" + rlen(0), version=13),
            r"unsupported opcode 242 \(0xf2\) in a RDB version 13",
        ),
        (rdb(rkey(23, b"h", b""), version=80, magic=b"VALKEY"), "object type 23 in a VALKEY080"),
    ],
)
def test_what_cannot_be_read_names_version_and_type(data: bytes, words: str) -> None:
    with pytest.raises(RDBUnsupportedError, match=words) as info:
        parse(data)
    assert info.value.offset is not None


# ---- the C loader and the sinks on these files, mutated too ----


def test_newest_files_load_identically_on_both_paths() -> None:
    rng = random.Random(13)
    files = [
        v13_file(),
        rdb(
            slot_import(JOB, [(5, 9)]),
            b"\xfe\x00",
            rkey(0, b"k", rstr(b"v")),
            version=80,
            magic=b"VALKEY",
        ),
    ]
    for data in files:
        both(data)
        for bad in mutations(data, rng, 300):
            both(bad)
            check(bad)


# ---- the writer ----


def test_writer_writes_stream_v4_as_built() -> None:
    t, body = encode_object(EXPECTED_STREAM, Target(13), compress=False)
    assert t == 26 and body.endswith(IDMP)
    assert decode_value(26, body, rdb_version=13) == EXPECTED_STREAM
    # A stream from an older file: Redis 8.6 saves it as type 26 with the default settings.
    plain = StreamValue(**{**EXPECTED_STREAM.__dict__, "idmp": None, "read_cache": None})
    t, body = encode_object(plain, Target(13), compress=False)
    assert t == 26 and body.endswith(idmp_section(100, 100, [], 0, 0))
    # RDB 12 has no IDMP: only "nothing tracked, default settings" can be dropped.
    assert (
        encode_object(StreamValue(**{**plain.__dict__, "idmp": StreamIdmp()}), Target(12))[0] == 21
    )
    with pytest.raises(RDBEncodeError, match="IDMP"):
        encode_object(EXPECTED_STREAM, Target(12))


def test_writer_round_trips_rdb13_and_valkey9_files() -> None:
    data = v13_file()
    events = parse(data)
    out = io.BytesIO()
    write_rdb(out, events, version=13, compress=False)
    written = out.getvalue()
    assert [(e.db, e.key, e.value, e.expire_ms, e.meta) for e in keys(parse(written))] == [
        (e.db, e.key, e.value, e.expire_ms, e.meta) for e in keys(events)
    ]
    # The IDMP section and the keys with their prefixes are the builder's bytes (KEY_META
    # after EXPIRETIME_MS, before the type). The stream's listpack and the plain list are
    # laid out as Redis would lay them out, not necessarily as the builder did.
    assert IDMP + b"\xfc" in written
    upto = data.index(rkey(1, b"l", b""))
    assert data[data.index(IDMP) : upto] in written
    valkey = rdb(
        slot_import(JOB, [(0, 16383)]),
        b"\xfe\x00",
        rkey(0, b"k", rstr(b"v")),
        version=80,
        magic=b"VALKEY",
    )
    out = io.BytesIO()
    write_rdb(out, parse(valkey), version=80, valkey=True, compress=False)
    assert SlotImport(JOB, ((0, 16383),)) in parse(out.getvalue())
    assert slot_import(JOB, [(0, 16383)]) in out.getvalue()


def test_writer_for_older_targets_drops_or_refuses_what_they_cannot_hold() -> None:
    w = RDBWriter(12, compress=False)
    w.header()
    ignorable = KeyEntry(0, b"k", b"v", meta=(KeyMeta(IGNORABLE, META_VALUE_A),))
    assert w.key(ignorable) == b"\xfe\x00" + rkey(0, b"k", rstr(b"v"))
    assert w.skipped_key_meta == 1
    with pytest.raises(RDBEncodeError, match="class 'KMT1'"):
        w.key(KeyEntry(0, b"k2", b"v", meta=(KeyMeta(STRICT, META_VALUE_B),)))
    w11 = RDBWriter(11, valkey=True)
    w11.header()
    assert w11.slot_import(SlotImport(JOB, ((0, 1),))) == b"" and w11.skipped_slot_imports == 1
    w13 = RDBWriter(13)
    w13.header()
    assert w13.slot_import(SlotImport(JOB, ((0, 1),))) == b""  # a Redis target: no such opcode


def test_dump_payloads_of_rdb13() -> None:
    payload = dump_payload(EXPECTED_STREAM, 13)
    assert parse_dump_payload(payload) == (26, EXPECTED_STREAM, 13)

    # DUMP of a key with module metadata: KEY_META, then the type byte and value.
    def with_meta(*classes: tuple[int, bytes]) -> bytes:
        head = key_meta(*classes) + b"\x00" + rstr(b"val") + struct.pack("<H", 13)
        return head + struct.pack("<Q", _CRC.calc(head))

    assert parse_dump_payload(with_meta((IGNORABLE, META_VALUE_A))) == (0, b"val", 13)
    with pytest.raises(RDBUnsupportedError, match="class 'KMT1'"):
        parse_dump_payload(with_meta((STRICT, META_VALUE_A)))


def test_persistence_writes_the_rdb_version_of_redis_86() -> None:
    def snapshot_format(aux: dict[bytes, bytes]) -> tuple[int, bool]:
        d = MasterDialect.from_aux(aux)
        return d.rdb_version, d.valkey

    assert snapshot_format({b"redis-ver": b"8.6.1"}) == (13, False)
    assert snapshot_format({b"redis-ver": b"8.4.0"}) == (12, False)
    assert snapshot_format({b"valkey-ver": b"9.0.0"}) == (80, True)


# ---- the CLI ----


def test_cli_on_the_newest_formats(tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "v13.rdb"
    path.write_bytes(v13_file())
    result = runner.invoke(app, ["info", "--json", str(path)])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["version"] == 13 and info["keys"] == 4
    assert info["dbs"]["0"]["by_encoding"]["stream/stream listpacks v4 (IDMP)"] == 1
    result = runner.invoke(app, ["dump", str(path)])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["value"]["idmp"] == {
        "duration": 7200,
        "max_entries": 1000,
        "producers": [
            {"pid": "p1", "entries": [["i1", "100-0"], ["i2", "100-1"]]},
            {"pid": "p2", "entries": [["j1", "100-1"]]},
        ],
        "iids_added": 3,
        "iids_duplicates": 1,
    }
    assert [m["class"] for m in lines[1]["meta"]] == ["KMT0", "ab_-"]
    assert "meta" not in lines[2]
    assert runner.invoke(app, ["verify", str(path)]).stdout.startswith(
        "OK: REDIS version 13, 4 keys"
    )
    valkey = tmp_path / "v80.rdb"
    valkey.write_bytes(rdb(slot_import(JOB, [(1, 2)]), version=80, magic=b"VALKEY"))
    result = runner.invoke(app, ["info", str(valkey)])
    assert result.exit_code == 0 and "slot imports in progress: 1" in result.stdout
    assert list(read_file(valkey))[1] == SlotImport(JOB, ((1, 2),))
