"""DUMP / RESTORE payloads: one object value in RDB encoding plus a version and CRC64 footer.

Layout (`createDumpPayload` / `verifyDumpPayload` in Redis's cluster.c):

    type byte | object value (as in an RDB file) | u16 LE RDB version | u64 LE CRC64

The CRC64 (Redis's variant) covers every byte before it. A server refuses a payload whose
version is newer than its own or whose CRC does not match, with "DUMP payload version or
checksum are wrong". This module owns that framing only: encoding the value is `writer.py`'s
`encode_object`, decoding it is the reader's `decode_value` (imported when first needed, so
the writer side works without the reader).
"""

from __future__ import annotations

import struct

from replproxy.rdb.model import (
    RDB_OPCODE_KEY_META,
    RDB_VERSION_MAX_REDIS,
    RDB_VERSION_VALKEY_9,
    RDBChecksumError,
    RDBError,
    RDBUnsupportedError,
    Value,
)
from replproxy.rdb.writer import CRC64, Target, encode_object

DUMP_FOOTER_SIZE = 10  # u16 version + u64 CRC64
DUMP_ERROR = "DUMP payload version or checksum are wrong"


def dump_payload(
    value: Value,
    rdb_version: int = RDB_VERSION_MAX_REDIS,
    *,
    valkey: bool = False,
    drop_field_ttls: bool = False,
    compress: bool = True,
) -> bytes:
    """The DUMP payload a server writing RDB `rdb_version` would produce for `value`.

    `valkey` selects the Valkey dialect (needed for version 80). RESTORE accepts the payload
    on any server whose own RDB version is >= `rdb_version`.
    """
    target = Target(rdb_version, valkey or rdb_version == RDB_VERSION_VALKEY_9)
    rdb_type, body = encode_object(
        value, target, drop_field_ttls=drop_field_ttls, compress=compress
    )
    head = bytes((rdb_type,)) + body + struct.pack("<H", rdb_version)
    return head + struct.pack("<Q", CRC64.calc(head))


def verify_dump_payload(payload: bytes) -> int:
    """Check the footer like `verifyDumpPayload`; return the payload's RDB version.

    Raises `RDBChecksumError` (CRC mismatch), `RDBUnsupportedError` (a version this project
    does not read) or `RDBError` (too short to hold a footer).
    """
    n = len(payload)
    if n < DUMP_FOOTER_SIZE + 1:
        raise RDBError(f"{DUMP_ERROR}: payload of {n} bytes is too short", 0)
    version, stored = struct.unpack_from("<HQ", payload, n - DUMP_FOOTER_SIZE)
    computed = CRC64.calc(memoryview(payload)[: n - 8])
    if computed != stored:
        raise RDBChecksumError(
            f"{DUMP_ERROR}: CRC64 {stored:#018x} stored, {computed:#018x} computed", n - 8
        )
    if not (1 <= version <= RDB_VERSION_MAX_REDIS or version == RDB_VERSION_VALKEY_9):
        raise RDBUnsupportedError(
            f"{DUMP_ERROR}: RDB version {version} is not one this reader knows "
            f"(1..{RDB_VERSION_MAX_REDIS}, {RDB_VERSION_VALKEY_9})",
            n - DUMP_FOOTER_SIZE,
        )
    return int(version)


def parse_dump_payload(payload: bytes) -> tuple[int, Value, int]:
    """(rdb type, value, rdb version) of a DUMP payload, after verifying its footer.

    From RDB 13 a payload may start with the key's module metadata (KEY_META, then the type
    byte). This relay keeps no module metadata: classes whose flags allow ignoring them are
    dropped, as a server without their module does; any other is an `RDBUnsupportedError`.
    """
    version = verify_dump_payload(payload)
    from replproxy.rdb.decoders import Incomplete, read_key_meta  # loaded when first needed
    from replproxy.rdb.reader import decode_value

    valkey = version == RDB_VERSION_VALKEY_9
    body = bytes(memoryview(payload)[: len(payload) - DUMP_FOOTER_SIZE])
    start = 0
    if body[0] == RDB_OPCODE_KEY_META and not valkey and version >= 13:
        try:
            meta, start = read_key_meta(body, 1, len(body))
        except Incomplete:
            raise RDBError(f"{DUMP_ERROR}: the payload ends inside its key metadata", 1) from None
        for m in meta:
            if not m.allow_ignore:
                raise RDBUnsupportedError(
                    f"DUMP payload carries module metadata of class {m.name!r} (version "
                    f"{m.version}), which this relay cannot keep and whose flags do not allow "
                    "ignoring it",
                    1,
                )
        if start >= len(body):
            raise RDBError(f"{DUMP_ERROR}: no value after the key metadata", start)
    rdb_type = body[start]
    value = decode_value(rdb_type, body[start + 1 :], rdb_version=version, valkey=valkey)
    return rdb_type, value, version
