"""Generic key commands: deletion, expiry, renames, moves and copies across DBs, flushes,
RESTORE, the stream commands that touch no data (PUBLISH, SCRIPT), and the key reads.

This module owns the appliers of `db.c`, `expire.c` and RESTORE (`cluster.c`); they work on
keys whatever their type and never look inside a value, except COPY (which deep-copies every
value type). It keeps the *unsupported* mark with its value: a key the relay could not apply
stays unsupported when it is renamed, moved, copied or swapped. SORT is `sort.py`; OBJECT and
MEMORY are `object.py`.

What arrives (read from `src/expire.c`, `src/db.c`, `src/cluster.c`, 5.0 to 8.x, and Valkey 8):

- Expiry. 7.x/8.x and Valkey: `EXPIRE`/`PEXPIRE`/`EXPIREAT` -> `PEXPIREAT k <abs-ms>
  [NX|XX|GT|LT]` (the condition stays: the replica re-checks it). 5.0/6.x: `EXPIRE`,
  `PEXPIRE` (relative: counted from the relay's clock), `EXPIREAT` (seconds) and
  `PEXPIREAT` verbatim, without conditions (they came in 7.0). A time already past is
  turned into `DEL`/`UNLINK` by the master; a past `PEXPIREAT` that still arrives is stored
  as such (a replica never deletes on its own: `checkAlreadyExpired` is false on replicas).
- `RESTORE k ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]`: 7.x+ rewrite a relative
  ttl to ABSTTL; 5.0/6.x send it as the client gave it (relative unless ABSTTL). ttl 0 = no
  TTL. `MIGRATE` arrives as `DEL`; in a cluster its target gets `RESTORE-ASKING`, applied
  as RESTORE.
- Verbatim: `DEL`, `UNLINK`, `PERSIST`, `RENAME`, `RENAMENX`, `MOVE`, `COPY [DB n]
  [REPLACE]` (6.2+), `SWAPDB`, `FLUSHALL`/`FLUSHDB [ASYNC|SYNC]` (FLUSHALL keeps the function
  libraries).
- `PUBLISH`/`SPUBLISH`: handed to `ks.on_publish`. 5.x/6.x `SCRIPT LOAD|FLUSH`: no data.
  `CLUSTER ...` (Valkey 8 replicates `CLUSTER SETSLOT`; Valkey 9 `CLUSTER SYNCSLOTS`): no
  data, handed to `ks.on_cluster`.

Read commands (`@read_command`, answered as a read-only replica of the master answers; a key
whose TTL has passed reads as missing and is never deleted here):

- `EXISTS`/`TOUCH key...` (a repeated key counts each time; TOUCH has no effect: no access
  clock is kept), `TYPE` (`+none`; a module value answers its type's name), `TTL`/`PTTL`/
  `EXPIRETIME`/`PEXPIRETIME` (-2 missing, -1 no TTL, seconds rounded `(ms + 500) / 1000`).
- `KEYS pattern`, `SCAN cursor [MATCH p] [COUNT n] [TYPE t]`: glob patterns with
  `stringmatchlen`'s exact semantics (`keyspace.scan.glob_matcher`); SCAN walks a snapshot
  of the key names taken at cursor 0 (`keyspace.scan`), so a name present for the whole
  scan is returned exactly once; a step drops names deleted, expired, not matching or of
  another type, and may return fewer than COUNT (or none) before the end, as Redis's may.
  Cursor syntax and option errors are the master's (Valkey adds `unknown type name` and
  the NOVALUES/NOSCORES errors); a cursor number the relay did not hand out is invalid.
- `RANDOMKEY`: `dbRandomKey` on a replica, including its give-up rule when every key has
  a TTL (it may then return a name whose TTL has passed).
- `DUMP`: a payload in the RDB version the master writes (Redis 7.0: 10, Valkey 8.1: 11),
  which RESTORE on the master accepts; its bytes can differ from the master's own DUMP.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from collections import deque
from typing import cast

from replproxy.args import c_string, parse_int
from replproxy.errors import SYNTAX
from replproxy.keyspace import notify as ksn
from replproxy.keyspace.reads import (
    NOT_INTEGER,
    ReadContext,
    ReplyError,
    peek,
    read_command,
)
from replproxy.keyspace.registry import ApplyError, write_command
from replproxy.keyspace.scan import glob_matcher, parse_cursor, scan_reply
from replproxy.keyspace.store import Keyspace
from replproxy.keyspace.values import SetValue, ZSet
from replproxy.rdb.dump import dump_payload, parse_dump_payload
from replproxy.rdb.model import (
    HashValue,
    ModuleValue,
    StreamValue,
    Value,
    ZSetValue,
    type_name,
)
from replproxy.rdb.writer import RDBEncodeError
from replproxy.resp import reply
from replproxy.resp.request import string2ll


def db_index(ks: Keyspace, raw: bytes) -> int:
    n = parse_int(raw)
    if not 0 <= n < ks.databases:
        raise ApplyError(f"DB index {n} is out of range")
    return n


def tainted(ks: Keyspace, db: int, key: bytes) -> bool:
    return bool(ks.unsupported_keys) and (db, key) in ks.unsupported_keys


# ---- deletion and expiry ----


@write_command("del", "unlink", keys=(1, -1, 1))
def del_(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    for key in argv[1:]:
        if ks.delete(db, key, fresh=True) and ks.notify_flags:
            ks.notify(ksn.GENERIC, b"del", db, key)


@write_command("persist")
def persist(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    if ks.persist(db, argv[1]) and ks.notify_flags:
        ks.notify(ksn.GENERIC, b"persist", db, argv[1])


def _expire(ks: Keyspace, db: int, argv: list[bytes], when: int) -> None:
    """`expireGenericCommand` on a replica: the NX/XX/GT/LT checks, then the TTL is set,
    even when already past (only a master turns that into a deletion)."""
    key = argv[1]
    if key not in ks.dbs[db]:
        return
    if len(argv) > 3:
        current = ks.get_expire(db, key)  # None: no TTL, an infinite one for GT/LT
        for raw in argv[3:]:
            flag = raw.upper()
            if flag == b"NX":
                if current is not None:
                    return
            elif flag == b"XX":
                if current is None:
                    return
            elif flag == b"GT":
                if current is None or when <= current:
                    return
            elif flag == b"LT":
                if current is not None and when >= current:
                    return
            else:
                raise ApplyError(f"unsupported expire option {raw!r}")
    ks.set_expire(db, key, when)
    if ks.notify_flags:
        ks.notify(ksn.GENERIC, b"expire", db, key)


@write_command("pexpireat")
def pexpireat(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _expire(ks, db, argv, parse_int(argv[2]))


@write_command("expireat")
def expireat(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _expire(ks, db, argv, parse_int(argv[2]) * 1000)


@write_command("expire")
def expire(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _expire(ks, db, argv, ks.now_ms() + parse_int(argv[2]) * 1000)


@write_command("pexpire")
def pexpire(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _expire(ks, db, argv, ks.now_ms() + parse_int(argv[2]))


# ---- renames, moves, copies ----


def _rename(ks: Keyspace, db: int, argv: list[bytes], nx: bool) -> None:
    """`renameGenericCommand`: the value moves with its TTL (or lack of one); an existing
    destination is replaced (RENAME) or left alone (RENAMENX)."""
    src, dst = argv[1], argv[2]
    if src == dst:
        return
    value = ks.get(db, src)
    if value is None:
        raise ApplyError(f"RENAME of a missing key {src!r}")
    if nx and dst in ks.dbs[db]:
        return
    # `dbDelete(dst)` + `dbAdd(dst)`: a replaced destination is `new` too (8.2: then
    # `overwritten` after the command's own events).
    old = ks.dbs[db].get(dst)
    ks.notify_recreated(db, dst)
    _relocate(ks, db, src, db, dst, value)
    if ks.notify_flags:
        ks.notify(ksn.GENERIC, b"rename_from", db, src)
        ks.notify(ksn.GENERIC, b"rename_to", db, dst)
    ks.notify_replaced(db, dst, old, value)


def _relocate(ks: Keyspace, db: int, key: bytes, to_db: int, to_key: bytes, value: Value) -> None:
    """Move a value with its TTL (and its unsupported mark) to another key or DB. The
    source is reported modified before the destination, as RENAME and MOVE signal them."""
    marked = tainted(ks, db, key)
    encoding = ks.encodings[db].get(key)
    when = ks.get_expire(db, key)
    ks.delete(db, key, fresh=True)
    ks.set(to_db, to_key, value, fresh=True)
    if when is not None:
        ks.set_expire(to_db, to_key, when)
    if marked:
        ks.unsupported_keys.add((to_db, to_key))
    if encoding is not None:
        ks.encodings[to_db][to_key] = encoding


@write_command("rename", keys=(1, 2, 1))
def rename(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _rename(ks, db, argv, nx=False)


@write_command("renamenx", keys=(1, 2, 1))
def renamenx(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _rename(ks, db, argv, nx=True)


@write_command("move")
def move(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """MOVE key db: nothing happens when the key is missing or exists in the target DB."""
    key = argv[1]
    dst = db_index(ks, argv[2])
    if dst == db:
        raise ApplyError("MOVE to the same DB")
    value = ks.get(db, key)
    if value is None or key in ks.dbs[dst]:
        return
    _relocate(ks, db, key, dst, key, value)
    if ks.notify_flags:
        ks.notify(ksn.GENERIC, b"move_from", db, key)
        ks.notify(ksn.GENERIC, b"move_to", dst, key)


@write_command("copy", keys=(2, 2, 1))
def copy_(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """COPY source destination [DB n] [REPLACE] (6.2+): a deep copy, TTL included."""
    src, dst = argv[1], argv[2]
    dst_db, replace = db, False
    j = 3
    while j < len(argv):
        opt = argv[j].upper()
        if opt == b"REPLACE":
            replace = True
        elif opt == b"DB" and j + 1 < len(argv):
            dst_db = db_index(ks, argv[j + 1])
            j += 1
        else:
            raise ApplyError(f"COPY option {argv[j]!r} is not supported")
        j += 1
    if dst_db == db and src == dst:
        raise ApplyError("COPY onto itself")
    value = ks.get(db, src)
    if value is None:
        return
    if not replace and dst in ks.dbs[dst_db]:
        return
    marked = tainted(ks, db, src)
    when = ks.get_expire(db, src)
    old = ks.dbs[dst_db].get(dst)
    ks.notify_recreated(dst_db, dst)
    ks.set(dst_db, dst, duplicate(value), fresh=True)
    if when is not None:
        ks.set_expire(dst_db, dst, when)
    if marked:
        ks.unsupported_keys.add((dst_db, dst))
    if ks.notify_flags:
        ks.notify(ksn.GENERIC, b"copy_to", dst_db, dst)
    ks.notify_replaced(dst_db, dst, old, value)
    encoding = ks.encodings[db].get(src)
    if encoding is not None:  # dupStringObject & co. keep the encoding
        ks.encodings[dst_db][dst] = encoding


def duplicate(value: Value) -> Value:
    """A deep copy of a keyspace value, sharing nothing mutable with it (as `copyCommand`'s
    per-type dup functions)."""
    if type(value) is bytes:
        return value
    if isinstance(value, list | deque):
        return list(value)  # upgraded by its first write, as a snapshot's lists
    if isinstance(value, SetValue):
        return value.copy()
    if isinstance(value, set):
        return set(value)
    if type(value) is dict:
        return dict(cast("dict[bytes, bytes]", value))
    if isinstance(value, ZSet):
        return value.copy()
    if isinstance(value, ZSetValue):
        return ZSetValue(value)  # settled on first use, as a loaded one
    if isinstance(value, HashValue):
        return HashValue(value, expires=dict(value.expires))
    if isinstance(value, ModuleValue):
        return dataclasses.replace(value)
    if isinstance(value, StreamValue):
        return copy.deepcopy(value)
    return copy.deepcopy(value)


@write_command("swapdb", keys=(1, 0, 1))
def swapdb(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    a, b = db_index(ks, argv[1]), db_index(ks, argv[2])
    if a == b:
        return
    ks.dbs[a], ks.dbs[b] = ks.dbs[b], ks.dbs[a]
    ks.expires[a], ks.expires[b] = ks.expires[b], ks.expires[a]
    ks.encodings[a], ks.encodings[b] = ks.encodings[b], ks.encodings[a]
    if ks.unsupported_keys:
        swap = {a: b, b: a}
        ks.unsupported_keys = {(swap.get(d, d), k) for d, k in ks.unsupported_keys}
    # Every key of both DBs changed for a watcher (`touchAllWatchedKeysInDb`); `touched`
    # is not used as it would also clear the unsupported marks that travelled with them.
    ks.swapped(a, b)


@write_command("flushdb", keys=(1, 0, 1))
def flushdb(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    ks.flush_db(db)


@write_command("flushall", keys=(1, 0, 1))
def flushall(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """FLUSHALL [ASYNC|SYNC]: every DB; function libraries stay (FUNCTION FLUSH clears them)."""
    ks.flush_all()


# ---- RESTORE ----


# MIGRATE into a cluster node sends RESTORE-ASKING, which the target propagates as it ran it.
@write_command("restore", "restore-asking")
def restore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f].

    LRU/LFU hints are accepted and ignored (the relay keeps no access clock). An existing
    key is replaced even without REPLACE: the master restored only onto a missing key, so
    one here is a leftover the master no longer has.
    """
    key = argv[1]
    ttl = parse_int(argv[2])
    if ttl < 0:
        raise ApplyError("RESTORE with a negative TTL")
    absttl = False
    j = 4
    while j < len(argv):
        opt = argv[j].upper()
        if opt == b"ABSTTL":
            absttl = True
        elif opt in (b"IDLETIME", b"FREQ") and j + 1 < len(argv):
            parse_int(argv[j + 1])
            j += 1
        elif opt != b"REPLACE":
            raise ApplyError(f"RESTORE option {argv[j]!r} is not supported")
        j += 1
    # A sorted set or a set is settled (encoding, order) on first use, as a loaded one.
    _rdb_type, value, _version = parse_dump_payload(argv[3])
    if ttl and not absttl:
        ttl += ks.now_ms()
    old = ks.dbs[db].get(key)
    ks.notify_recreated(db, key)
    ks.set(db, key, value, fresh=True)
    if ttl:
        ks.set_expire(db, key, ttl)
    if ks.notify_flags:
        ks.notify(ksn.GENERIC, b"restore", db, key)
    ks.notify_replaced(db, key, old, value)


# ---- no data ----


@write_command("publish", "spublish", keys=(1, 0, 1))
def publish(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    # SPUBLISH reaches shard-channel subscribers only (SSUBSCRIBE), as on a replica.
    hook = ks.on_spublish if argv[0][:1] in (b"s", b"S") else ks.on_publish
    if hook is not None:
        hook(argv[1], argv[2])


@write_command("cluster", keys=(1, 0, 1))
def cluster(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    if ks.on_cluster is not None:
        ks.on_cluster(argv)


@write_command("script", keys=(1, 0, 1))
def script(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """SCRIPT LOAD|FLUSH from 5.x/6.x masters: the script cache is not data (a snapshot does
    not carry it, and EVALSHA never arrives: scripts replicate by their effects)."""


# ---- reads: what a read-only replica answers (see the module docstring) ----


def _count_live(c: ReadContext, keys: list[bytes]) -> int:
    n = 0
    for k in keys:
        if peek(c, k) is not None:
            n += 1
    return n


@read_command("exists", "touch")
def exists(c: ReadContext, argv: list[bytes]) -> bytes:
    """EXISTS key [key ...]: a key named twice counts twice. TOUCH answers the same: the
    access time it would update is not kept by the relay (see OBJECT IDLETIME), so it has
    no effect here."""
    return reply.integer(_count_live(c, argv[1:]))


@read_command("type")
def type_(c: ReadContext, argv: list[bytes]) -> bytes:
    """TYPE key: `+none` when missing; a module value answers its module type's name."""
    v = peek(c, argv[1])
    return reply.simple_string(b"none" if v is None else type_name(v).encode())


def _ttl(c: ReadContext, key: bytes, ms: bool, absolute: bool) -> bytes:
    """`ttlGenericCommand`: -2 missing, -1 no TTL; seconds are (ms + 500) / 1000."""
    if peek(c, key) is None:
        return b":-2\r\n"
    when = c.ks.expires[c.db].get(key)
    if when is None:
        return b":-1\r\n"
    ttl = when if absolute else when - c.now
    if ttl < 0:
        ttl = 0
    return reply.integer(ttl if ms else (ttl + 500) // 1000)


@read_command("ttl")
def ttl(c: ReadContext, argv: list[bytes]) -> bytes:
    return _ttl(c, argv[1], ms=False, absolute=False)


@read_command("pttl")
def pttl(c: ReadContext, argv: list[bytes]) -> bytes:
    return _ttl(c, argv[1], ms=True, absolute=False)


@read_command("expiretime")
def expiretime(c: ReadContext, argv: list[bytes]) -> bytes:
    return _ttl(c, argv[1], ms=False, absolute=True)


@read_command("pexpiretime")
def pexpiretime(c: ReadContext, argv: list[bytes]) -> bytes:
    return _ttl(c, argv[1], ms=True, absolute=True)


def _drop_expired(c: ReadContext, keys: list[bytes]) -> list[bytes]:
    expires = c.ks.expires[c.db]
    if not expires:
        return keys
    now = c.now
    when = expires.get
    return [k for k in keys if (t := when(k)) is None or t > now]


@read_command("keys")
def keys(c: ReadContext, argv: list[bytes]) -> bytes:
    """KEYS pattern: every name matching, logically expired ones left out."""
    dbd = c.ks.dbs[c.db]
    match = glob_matcher(argv[1], c.ks)
    if c.ks.dialect.before_6_0_commands and argv[1][:2] in (b"*", b"*\0"):
        match = None  # 5.0 tests `pattern[1] == '\0'`: "*" then a NUL byte is every key
    names = list(dbd) if match is None else [k for k in dbd if match(k)]
    return reply.bulk_array(_drop_expired(c, names), c.proto)


_SCAN_TYPES = (b"string", b"list", b"set", b"zset", b"hash", b"stream")


@read_command("scan")
def scan(c: ReadContext, argv: list[bytes]) -> bytes:
    """SCAN cursor [MATCH pattern] [COUNT count] [TYPE type].

    Options are checked in order after the cursor (COUNT must be a long >= 1; Valkey also
    refuses an unknown TYPE name and answers NOVALUES/NOSCORES with their own errors). A
    step looks at COUNT names of the scan's snapshot (`keyspace.scan`) and returns those
    that still exist, match, have the type and have not expired: like Redis, a step may
    return fewer than COUNT names, or none, before the scan is over."""
    ks = c.ks
    cursor = parse_cursor(argv[1], ks)
    valkey = ks.dialect.valkey
    count = 10
    pattern: bytes | None = None
    want: bytes | None = None
    i, n = 2, len(argv)
    while i < n:
        opt = argv[i].lower()
        if opt == b"count" and n - i >= 2:
            v = string2ll(argv[i + 1])
            if v is None:
                raise ReplyError(NOT_INTEGER)
            if v < 1:
                raise ReplyError(SYNTAX)
            count = v
            i += 2
        elif opt == b"match" and n - i >= 2:
            pattern = argv[i + 1]
            i += 2
        elif opt == b"type" and n - i >= 2 and ks.dialect.scan_type_option:
            want = c_string(argv[i + 1]).lower()
            # Valkey checks the name against its types and loaded module types; the relay
            # does not know the master's modules, but a module type name has 9 characters.
            if valkey and want not in _SCAN_TYPES and len(want) != 9:
                raise ReplyError(b"ERR unknown type name '" + c_string(argv[i + 1]) + b"'")
            i += 2
        elif opt == b"novalues" and ks.dialect.scan_novalues:
            raise ReplyError(b"ERR NOVALUES option can only be used in HSCAN")
        elif opt == b"noscores" and ks.dialect.scan_noscores:
            raise ReplyError(b"ERR NOSCORES option can only be used in ZSCAN")
        else:
            raise ReplyError(SYNTAX)
    db = c.db
    dbd = ks.dbs[db]
    nxt, batch = ks.scans.step(cursor, lambda: list(dbd), count, ("scan", db))
    match = glob_matcher(pattern, ks) if pattern is not None else None
    names = [k for k in batch if k in dbd and (match is None or match(k))]
    if want is not None:
        names = [k for k in names if type_name(dbd[k]).lower().encode() == want]
    return scan_reply(nxt, _drop_expired(c, names))


@read_command("randomkey")
def randomkey(c: ReadContext, argv: list[bytes]) -> bytes:
    """RANDOMKEY: a random live name, or null when the DB is empty.

    As `dbRandomKey` on a replica: a name whose TTL has passed is skipped, except that
    when EVERY key of the DB has a TTL (all may have expired, and a replica never deletes
    them) it gives up after 100 draws and returns the last name drawn, expired or not.
    Names are drawn from a snapshot at most a second old (`ScanCursors.key_names`)."""
    ks = c.ks
    dbd = ks.dbs[c.db]
    if not dbd:
        return reply.null(c.proto)
    expires = ks.expires[c.db]
    now = c.now
    allvolatile = len(dbd) == len(expires)
    last: bytes | None = None
    # 100 draws from the recent snapshot of names, then, if it was not taken just now (it
    # may predate the live keys), 100 from a fresh one.
    for max_age in (1.0, 0.0):
        names, fresh = ks.scans.key_names(dbd, max_age)
        for _ in range(100):
            if not names:
                break
            k = names[random.randrange(len(names))]
            if k not in dbd:
                continue  # deleted since the snapshot
            when = expires.get(k)
            if when is None or when > now:
                return reply.bulk(k)
            last = k
        if fresh:
            break
    if allvolatile and last is not None:
        return reply.bulk(last)
    # Unlucky draws (or a stale snapshot): choose among the live names exhaustively.
    live = _drop_expired(c, list(dbd))
    if live:
        return reply.bulk(live[random.randrange(len(live))])
    if allvolatile:
        return reply.bulk(next(iter(dbd)))
    return reply.null(c.proto)


@read_command("dump")
def dump(c: ReadContext, argv: list[bytes]) -> bytes:
    """DUMP key: the value in the RDB format of the master's own version (Redis 7.0 writes
    RDB 10, 7.2 11, 7.4 12; Valkey 7.2-8.1 11), so RESTORE on the master (or any server
    of its version or newer) accepts it. The bytes may differ from the master's DUMP:
    the encoding chosen (listpack or not) depends on a value's history there."""
    v = peek(c, argv[1])
    if v is None:
        return reply.null(c.proto)
    d = c.ks.dialect
    try:
        payload = dump_payload(v, d.rdb_version, valkey=d.valkey)
    except RDBEncodeError as e:
        raise ReplyError(b"ERR " + str(e).encode()) from None
    return reply.bulk(payload)
