"""Function libraries: the appliers of `FUNCTION LOAD|DELETE|FLUSH|RESTORE` (`functions.c`).

This module owns `Keyspace.functions` (library name -> `Function` holding the library source,
`#!lua name=...` first line included, exactly as `FUNCTION LIST WITHCODE` shows it) as the
replication stream changes it. It never compiles or runs Lua: the master already did, and
only what it accepted is propagated, so a replica's job is to keep the sources (a snapshot
served downstream carries them as FUNCTION2 records).

What arrives: Redis 7.0+ and Valkey propagate the FUNCTION write subcommands verbatim;
`FCALL`/`EVAL` never arrive on 7.x (their effects do, inside MULTI/EXEC). `FLUSHALL` leaves
libraries alone. `SCRIPT LOAD`/`SCRIPT FLUSH` (5.x/6.x) belong to `generic`, and a 5.x
master's verbatim `EVAL` (`lua-replicate-commands no`) stays unregistered: it is counted and
reported as unsupported.

`FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]` carries a `FUNCTION DUMP` payload:
`rdbSaveFunctions` records (opcode 245 FUNCTION2 + the library source as an RDB string; the
7.0 release candidates' opcode 246 FUNCTION holds name, engine, optional description and
body, which `rdbFunctionLoad` turns into `#!<engine> name=<name>\\n<body>`), then the RDB
version (u16 LE) and a CRC64 of everything before, checked as `verifyDumpPayload` does.
"""

from __future__ import annotations

import struct

from replproxy.keyspace.registry import ApplyError, write_command
from replproxy.keyspace.store import Keyspace, library_name
from replproxy.rdb.decoders import Incomplete, read_len, read_string
from replproxy.rdb.dump import DUMP_FOOTER_SIZE
from replproxy.rdb.encodings import crc64
from replproxy.rdb.model import (
    RDB_OPCODE_FUNCTION2,
    RDB_OPCODE_FUNCTION_PRE_GA,
    RDB_VERSION_MAX_REDIS,
    RDB_VERSION_VALKEY_9,
    Function,
    RDBChecksumError,
    RDBError,
)


def _verify_footer(payload: bytes) -> None:
    """`verifyDumpPayload`: the footer alone may make a payload (a DUMP of no library)."""
    n = len(payload)
    if n < DUMP_FOOTER_SIZE:
        raise RDBError(f"function payload of {n} bytes has no version and CRC64", 0)
    version, stored = struct.unpack_from("<HQ", payload, n - DUMP_FOOTER_SIZE)
    if not (1 <= version <= RDB_VERSION_MAX_REDIS or version == RDB_VERSION_VALKEY_9):
        raise RDBError(f"function payload of unknown RDB version {version}", n - 10)
    if crc64(memoryview(payload)[: n - 8]) != stored:
        raise RDBChecksumError("function payload CRC64 mismatch", n - 8)


def parse_function_dump(payload: bytes) -> list[Function]:
    """The libraries of a `FUNCTION DUMP` payload, in payload order.

    Raises `RDBError` for a payload `FUNCTION RESTORE` would refuse: a bad footer (version
    or CRC64), a record that is not a function, or one cut short.
    """
    _verify_footer(payload)
    end = len(payload) - DUMP_FOOTER_SIZE
    libraries: list[Function] = []
    p = 0
    try:
        while p < end:
            opcode = payload[p]
            if opcode == RDB_OPCODE_FUNCTION2:
                code, p = read_string(payload, p + 1, end)
            elif opcode == RDB_OPCODE_FUNCTION_PRE_GA:
                name, p = read_string(payload, p + 1, end)
                engine, p = read_string(payload, p, end)
                has_desc, p = read_len(payload, p, end)
                if has_desc:
                    _, p = read_string(payload, p, end)
                body, p = read_string(payload, p, end)
                code = b"#!%s name=%s\n%s" % (engine, name, body)
            else:
                raise RDBError(f"given type {opcode} is not a function", p)
            libraries.append(Function(code))
    except Incomplete:
        raise RDBError("function payload record is cut short", p) from None
    return libraries


def _load(ks: Keyspace, code: bytes, replace: bool) -> None:
    name = library_name(code)
    if not name:
        raise ApplyError("FUNCTION LOAD: the library source names no library")
    if name in ks.functions and not replace:
        raise ApplyError(f"FUNCTION LOAD: library {name!r} already exists")
    ks.functions[name] = Function(code)


def _restore(ks: Keyspace, payload: bytes, policy: bytes) -> None:
    try:
        libraries = parse_function_dump(payload)
    except RDBError as e:
        raise ApplyError(f"FUNCTION RESTORE: {e}") from None
    restored = {library_name(lib.code): lib for lib in libraries}
    if len(restored) != len(libraries) or b"" in restored:
        raise ApplyError("FUNCTION RESTORE: duplicate or unnamed library in the payload")
    if policy == b"flush":
        ks.functions.clear()
    elif policy == b"append":
        clash = restored.keys() & ks.functions.keys()
        if clash:
            raise ApplyError(f"FUNCTION RESTORE: libraries {sorted(clash)!r} already exist")
    elif policy != b"replace":
        raise ApplyError(f"FUNCTION RESTORE: unknown policy {policy!r}")
    ks.functions.update(restored)


# No key arguments: a failure must mark no key unsupported, hence the empty range (1, 0).
@write_command("function", keys=(1, 0, 1))
def function(ks: Keyspace, _db: int, argv: list[bytes]) -> None:
    sub = argv[1].lower() if len(argv) > 1 else b""
    n = len(argv)
    if sub == b"load" and n >= 3:
        for opt in argv[2:-1]:
            if opt.lower() != b"replace":
                raise ApplyError(f"FUNCTION LOAD: unknown option {opt!r}")
        _load(ks, argv[-1], replace=n > 3)
    elif sub == b"delete" and n == 3:
        if ks.functions.pop(argv[2], None) is None:
            raise ApplyError(f"FUNCTION DELETE: library {argv[2]!r} not found")
    elif sub == b"flush" and n <= 3:
        if n == 3 and argv[2].lower() not in (b"async", b"sync"):
            raise ApplyError(f"FUNCTION FLUSH: unknown option {argv[2]!r}")
        ks.functions.clear()
    elif sub == b"restore" and n in (3, 4):
        _restore(ks, argv[2], argv[3].lower() if n == 4 else b"append")
    else:
        raise ApplyError(
            f"FUNCTION {sub.decode('utf-8', 'replace').upper()} with {n} "
            "arguments is not a write a master propagates"
        )
