"""OBJECT and MEMORY: what the master says of a value's encoding, refcount, idle time and
memory.

`OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ|HELP`, `MEMORY USAGE|HELP`: ENCODING is the encoding
a server with default thresholds would pick for the value (`internals.object_encoding`),
MEMORY USAGE an estimate modelled on `objectComputeSize` (`internals.memory_usage`); IDLETIME
is always 0 (the relay keeps no per-key access clock) and FREQ answers the error of the
default, non-LFU maxmemory-policy. The estimates themselves live in `internals`.
"""

from __future__ import annotations

from replproxy.errors import SYNTAX
from replproxy.keyspace.internals import is_int_string, memory_usage, object_encoding
from replproxy.keyspace.keys import tainted
from replproxy.keyspace.reads import (
    NOT_INTEGER,
    ReadContext,
    ReplyError,
    lookup,
    read_command,
    unsupported_key_error,
)
from replproxy.rdb.model import (
    Value,
)
from replproxy.resp import reply
from replproxy.resp.request import string2ll

_OBJ_SHARED_INTEGERS = 10_000
_OBJ_SHARED_REFCOUNT = 2_147_483_647
_LIST_MAX_LISTPACK_BYTES = 8192  # list-max-listpack-size -2
_EMBSTR_SIZE_LIMIT = 44
_LFU_NOT_SELECTED = (
    b"ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
    b"that when switching between policies at runtime LRU and LFU data will take some time to "
    b"adjust."
)


def _object_value(c: ReadContext, argv: list[bytes]) -> Value | None:
    """`objectCommandLookup`: the value at argv[2] as a read sees it (NOTOUCH, and
    LOOKUP_NONOTIFY: no keymiss); before Redis 6.0, straight from the key table (a context
    at time 0 sees expired keys)."""
    if c.ks.dialect.object_sees_expired_keys:
        return lookup(ReadContext(c.ks, c.db, c.proto, now=0), argv[2], notify=False)
    return lookup(c, argv[2], notify=False)


@read_command("object|encoding")
def object_encoding_cmd(c: ReadContext, argv: list[bytes]) -> bytes:
    """OBJECT ENCODING key: a best guess (`object_encoding`), null for a missing key."""
    v = _object_value(c, argv)
    if v is None:
        return reply.null(c.proto)
    has_ttl = argv[2] in c.ks.expires[c.db]
    mark = c.ks.encodings[c.db].get(argv[2])
    return reply.bulk(object_encoding(argv[2], v, c.ks.dialect, has_ttl, mark))


@read_command("object|refcount")
def object_refcount(c: ReadContext, argv: list[bytes]) -> bytes:
    """OBJECT REFCOUNT key: 1, except Redis's shared integers 0..9999 (OBJ_SHARED_REFCOUNT,
    INT_MAX) as a master with the default maxmemory stores small integer strings. Valkey 8
    embeds the key in the value object, so no value is shared there."""
    v = _object_value(c, argv)
    if v is None:
        return reply.null(c.proto)
    if (
        c.ks.dialect.shared_integers
        and type(v) is bytes
        and is_int_string(v)
        and argv[2] not in c.ks.encodings[c.db]
        and 0 <= int(v) < _OBJ_SHARED_INTEGERS
    ):
        return reply.integer(_OBJ_SHARED_REFCOUNT)
    return b":1\r\n"


@read_command("object|idletime")
def object_idletime(c: ReadContext, argv: list[bytes]) -> bytes:
    """OBJECT IDLETIME key: always 0. The relay keeps no access clock per key (a key read
    through it would be 0 on a real replica too; one left alone shows its age there)."""
    if _object_value(c, argv) is None:
        return reply.null(c.proto)
    return b":0\r\n"


@read_command("object|freq")
def object_freq(c: ReadContext, argv: list[bytes]) -> bytes:
    """OBJECT FREQ key: null when missing, else the error of a server whose maxmemory-policy
    is not LFU (the default; the relay tracks no access frequency)."""
    if _object_value(c, argv) is None:
        return reply.null(c.proto)
    raise ReplyError(_LFU_NOT_SELECTED)


def _help(c: ReadContext, container: bytes) -> bytes:
    """`<container> HELP`: the upstream's own text, captured with its command table. The
    server answers any other `<container> HELP` with it directly; OBJECT and MEMORY keep
    theirs registered so that `READ_COMMANDS` covers every subcommand they answer."""
    text = c.ks.dialect.command_table.subcommand_help(container)
    assert text is not None  # both tables carry OBJECT HELP and MEMORY HELP
    return text


@read_command("object|help")
def object_help(c: ReadContext, argv: list[bytes]) -> bytes:
    return _help(c, b"object")


@read_command("memory|help")
def memory_help(c: ReadContext, argv: list[bytes]) -> bytes:
    return _help(c, b"memory")


@read_command("memory|usage")
def memory_usage_cmd(c: ReadContext, argv: list[bytes]) -> bytes:
    """MEMORY USAGE key [SAMPLES count]: options first (a bad count is not an integer,
    a negative one a syntax error, 0 means all), then the key. Like the master, it reads
    the key table directly: a key whose TTL has passed still answers. The number is an
    estimate of what the master's allocator holds for the key (`memory_usage`)."""
    samples = 5
    j = 3
    while j < len(argv):
        if argv[j].lower() == b"samples" and j + 1 < len(argv):
            v = string2ll(argv[j + 1])
            if v is None:
                raise ReplyError(NOT_INTEGER)
            if v < 0:
                raise ReplyError(SYNTAX)
            samples = v if v else 1 << 62
            j += 2
        else:
            raise ReplyError(SYNTAX)
    ks = c.ks
    key = argv[2]
    if tainted(ks, c.db, key):
        raise ReplyError(unsupported_key_error(key))
    value = ks.get(c.db, key)
    if value is None:
        return reply.null(c.proto)
    has_ttl = key in ks.expires[c.db]
    mark = ks.encodings[c.db].get(key)
    return reply.integer(memory_usage(key, value, samples, ks.dialect, has_ttl, mark))
