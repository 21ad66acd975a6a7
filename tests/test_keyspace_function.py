"""Function libraries: FUNCTION LOAD/DELETE/FLUSH/RESTORE from the stream keep the master's.

The oracle is a real Redis 7.0 / Valkey 8.1 master (Redis 5.0 has no functions): its
`FUNCTION LIST WITHCODE` must equal `Keyspace.functions` (library name -> source) after every
step, and the keys its functions write (`FCALL`, whose effects alone are replicated) must equal
the mirror's. `FUNCTION DUMP` payloads are parsed from real servers and from hand-built ones
(the 7.0 release candidates' opcode 246, broken CRCs and records).
"""

from __future__ import annotations

import struct

import pytest
import redis

from replproxy.keyspace import ApplyError, Keyspace
from replproxy.keyspace.t_function import parse_function_dump
from replproxy.rdb.encode import rdb_length, rdb_string
from replproxy.rdb.encodings import crc64
from replproxy.rdb.model import RDBError
from tests.harness.appliers import run
from tests.harness.mirror import Mirror, compare_with_master, raw_client
from tests.harness.servers import RedisServer


def library(name: str, *functions: str, body: str = "return 1") -> bytes:
    code = [f"#!lua name={name}"]
    for fn in functions:
        code.append(f"redis.register_function('{fn}', function(keys, args) {body} end)")
    return "\n".join(code).encode()


WRITER = """
local n = redis.call('INCR', keys[1])
redis.call('XADD', keys[2], '*', 'n', n, 'arg', args[1])
redis.call('HSET', keys[3], args[1], n)
return n
"""


def dump_payload(records: bytes, rdb_version: int = 10) -> bytes:
    head = records + struct.pack("<H", rdb_version)
    return head + struct.pack("<Q", crc64(head))


def function2(code: bytes) -> bytes:
    return bytes((245,)) + rdb_string(code)


def libraries(ks: Keyspace) -> dict[bytes, bytes]:
    return {name: f.code for name, f in ks.functions.items()}


# ---- payloads ----


def test_function_dump_payload_records_are_read() -> None:
    a, b = library("a", "fa"), library("b", "fb")
    assert [f.code for f in parse_function_dump(dump_payload(function2(a) + function2(b)))] == [
        a,
        b,
    ]
    assert parse_function_dump(dump_payload(b"")) == []


def test_release_candidate_function_records_get_their_shebang() -> None:
    """Opcode 246 (7.0 RC1/RC2): name, engine, has-description, [description], body."""
    body = b"redis.register_function('f', function() return 1 end)"
    rec = (
        bytes((246,))
        + rdb_string(b"old")
        + rdb_string(b"LUA")
        + rdb_length(1)
        + rdb_string(b"a description")
        + rdb_string(body)
    )
    rec2 = (
        bytes((246,)) + rdb_string(b"old2") + rdb_string(b"LUA") + rdb_length(0) + rdb_string(body)
    )
    got = [f.code for f in parse_function_dump(dump_payload(rec + rec2))]
    assert got == [b"#!LUA name=old\n" + body, b"#!LUA name=old2\n" + body]


@pytest.mark.parametrize(
    "payload",
    [
        dump_payload(function2(b"#!lua name=x\n"))[:-1] + b"\0",  # CRC64 mismatch
        dump_payload(bytes((0,)) + rdb_string(b"a string key")),  # not a function record
        dump_payload(function2(b"#!lua name=x\nreturn 1")[:-3]),  # record cut short
        dump_payload(function2(b"#!lua name=x\n"), rdb_version=99),  # unknown RDB version
        b"short",
    ],
)
def test_bad_function_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(RDBError):
        parse_function_dump(payload)


# ---- direct appliers ----


def test_function_subcommands_apply_to_the_libraries() -> None:
    ks = Keyspace()
    a1, a2, b = library("a", "f1"), library("a", "f2"), library("b", "g")
    run(ks, "FUNCTION", "LOAD", a1)
    run(ks, "function", "load", "replace", a2)
    run(ks, "FUNCTION", "LOAD", b)
    assert libraries(ks) == {b"a": a2, b"b": b}
    with pytest.raises(ApplyError):
        run(ks, "FUNCTION", "LOAD", a1)  # exists, no REPLACE: the master refused it
    run(ks, "FUNCTION", "DELETE", "a")
    assert libraries(ks) == {b"b": b}
    run(ks, "FUNCTION", "FLUSH", "ASYNC")
    assert libraries(ks) == {}
    payload = dump_payload(function2(a1) + function2(b))
    run(ks, "FUNCTION", "RESTORE", payload)
    assert libraries(ks) == {b"a": a1, b"b": b}
    with pytest.raises(ApplyError):
        run(ks, "FUNCTION", "RESTORE", payload, "APPEND")  # collision: the master refused
    run(ks, "FUNCTION", "LOAD", "REPLACE", a2)
    run(ks, "FUNCTION", "LOAD", library("c", "h"))
    run(ks, "FUNCTION", "RESTORE", payload, "replace")
    assert libraries(ks) == {b"a": a1, b"b": b, b"c": library("c", "h")}
    run(ks, "FUNCTION", "RESTORE", dump_payload(function2(a2)), "FLUSH")
    assert libraries(ks) == {b"a": a2}


def test_a_failed_function_command_marks_no_key() -> None:
    ks = Keyspace()
    ks.apply(0, [b"FUNCTION", b"DELETE", b"missing"])
    ks.apply(0, [b"FUNCTION", b"RESTORE", b"garbage"])
    assert ks.apply_errors == {"function": 2}
    assert ks.unsupported_keys == set()


# ---- against real masters ----


def master_libraries(c: redis.Redis) -> dict[bytes, bytes]:
    out = {}
    for lib in c.execute_command("FUNCTION", "LIST", "WITHCODE"):
        kv = dict(zip(lib[::2], lib[1::2]))
        out[kv[b"library_name"]] = kv[b"library_code"]
    return out


def assert_mirrors(mirror: Mirror, c: redis.Redis) -> None:
    mirror.sync()
    assert libraries(mirror.keyspace) == master_libraries(c)
    assert compare_with_master(mirror) == []
    assert mirror.keyspace.apply_errors == {}
    assert mirror.keyspace.unsupported_commands == {}


def test_functions_follow_the_master(master: RedisServer) -> None:
    if master.kind.major < 7:
        pytest.skip("functions arrived in Redis 7.0")
    with raw_client(master) as c:
        c.execute_command("FUNCTION", "LOAD", library("boot", "boot_fn"))  # in the snapshot
        with Mirror(master) as mirror:
            assert_mirrors(mirror, c)
            c.execute_command("FUNCTION", "LOAD", library("w", "write", body=WRITER))
            c.execute_command("FUNCTION", "LOAD", library("tmp", "t1", "t2"))
            assert_mirrors(mirror, c)
            for i in range(20):  # FCALL arrives as its effects (MULTI/EXEC of the writes)
                c.execute_command("FCALL", "write", 3, "counter", "events", "by_arg", f"a{i % 4}")
            c.execute_command("FUNCTION", "LOAD", "REPLACE", library("tmp", "t3"))
            c.execute_command("FUNCTION", "DELETE", "boot")
            assert_mirrors(mirror, c)
            payload = c.execute_command("FUNCTION", "DUMP")
            c.execute_command("FUNCTION", "FLUSH", "SYNC")
            assert_mirrors(mirror, c)
            c.execute_command("FUNCTION", "RESTORE", payload)
            assert_mirrors(mirror, c)
            c.execute_command("FUNCTION", "LOAD", "REPLACE", library("tmp", "t4"))
            c.execute_command("FUNCTION", "RESTORE", payload, "REPLACE")
            assert_mirrors(mirror, c)
            c.execute_command("FUNCTION", "DELETE", "tmp")
            c.execute_command("FUNCTION", "LOAD", library("extra", "x"))
            c.execute_command("FUNCTION", "RESTORE", payload, "FLUSH")
            c.execute_command("FLUSHALL")  # keys go, libraries stay
            c.execute_command("FCALL", "write", 3, "counter", "events", "by_arg", "after")
            assert_mirrors(mirror, c)
            c.execute_command("FUNCTION", "FLUSH", "ASYNC")
            c.execute_command("FUNCTION", "LOAD", library("last", "l"))
            assert_mirrors(mirror, c)
