"""Generic key commands: deletion, expiry, renames, moves and copies across DBs, flushes,
RESTORE, SORT ... STORE, and the stream commands that touch no data (PUBLISH, SCRIPT).

This module owns the appliers of `db.c`, `expire.c`, `sort.c` and RESTORE (`cluster.c`);
they work on keys whatever their type and never look inside a value, except SORT (which
reads lists, sets, sorted sets, strings and hash fields) and COPY (which deep-copies every
value type). It keeps the *unsupported* mark with its value: a key the relay could not
apply stays unsupported when it is renamed, moved, copied, swapped or sorted from.

What arrives (read from `src/expire.c`, `src/db.c`, `src/cluster.c`, `src/sort.c`,
5.0 to 8.x, and Valkey 8):

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
  libraries), `SORT ... STORE` (re-executed: the replica sorts again).
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
- `SORT_RO`: the SORT code the STORE applier uses, minus STORE; ALPHA collates as C
  `strcoll` in the C/C.UTF-8 locales (byte order up to the first NUL).
- `OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ|HELP`, `MEMORY USAGE|HELP`: ENCODING is the
  encoding a server with default thresholds would pick for the value (`object_encoding`),
  MEMORY USAGE an estimate modelled on `objectComputeSize` (`memory_usage`); IDLETIME is
  always 0 (the relay keeps no per-key access clock) and FREQ answers the error of the
  default, non-LFU maxmemory-policy.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import re
from collections import deque
from collections.abc import Callable, Iterable
from decimal import Decimal
from fractions import Fraction
from typing import Any, NamedTuple, cast

from replproxy.commandtable import table_for
from replproxy.keyspace import ApplyError, Keyspace, write_command
from replproxy.keyspace.pqsort import pqsort
from replproxy.keyspace.reads import (
    NOT_INTEGER,
    SYNTAX,
    WRONGTYPE,
    ReadContext,
    ReplyError,
    lookup,
    peek,
    read_command,
    unsupported_key_error,
    upstream_identity,
)
from replproxy.keyspace.scan import glob_matcher, parse_cursor, scan_reply
from replproxy.keyspace.t_hash import is_listpack_hash
from replproxy.keyspace.t_set import (
    SET_MAX_INTSET_ENTRIES,
    SET_MAX_LISTPACK_ENTRIES,
    SET_MAX_LISTPACK_VALUE,
    iteration_order,
)
from replproxy.keyspace.util import c_string, parse_int
from replproxy.keyspace.values import (
    ZSET_MAX_LISTPACK_ENTRIES,
    ZSET_MAX_LISTPACK_VALUE,
    ZSet,
    list_slice,
)
from replproxy.rdb.dump import dump_payload, parse_dump_payload
from replproxy.rdb.encode import LP_EMPTY_SIZE, lp_entry, parse_int64
from replproxy.rdb.model import (
    HashValue,
    ModuleValue,
    StreamValue,
    Value,
    ZSetValue,
    type_name,
)
from replproxy.rdb.writer import RDBEncodeError, zset_score_entry
from replproxy.resp import reply
from replproxy.resp.request import string2ll


def _db_index(ks: Keyspace, raw: bytes) -> int:
    n = parse_int(raw)
    if not 0 <= n < ks.databases:
        raise ApplyError(f"DB index {n} is out of range")
    return n


def _tainted(ks: Keyspace, db: int, key: bytes) -> bool:
    return bool(ks.unsupported_keys) and (db, key) in ks.unsupported_keys


# ---- deletion and expiry ----


@write_command("del", "unlink", keys=(1, -1, 1))
def del_(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    for key in argv[1:]:
        ks.delete(db, key)


@write_command("persist")
def persist(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    ks.persist(db, argv[1])


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
    _relocate(ks, db, src, db, dst, value)


def _relocate(ks: Keyspace, db: int, key: bytes, to_db: int, to_key: bytes, value: Value) -> None:
    """Move a value with its TTL (and its unsupported mark) to another key or DB."""
    tainted = _tainted(ks, db, key)
    when = ks.get_expire(db, key)
    ks.set(to_db, to_key, value)
    if when is not None:
        ks.set_expire(to_db, to_key, when)
    ks.delete(db, key)
    if tainted:
        ks.unsupported_keys.add((to_db, to_key))


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
    dst = _db_index(ks, argv[2])
    if dst == db:
        raise ApplyError("MOVE to the same DB")
    value = ks.get(db, key)
    if value is None or key in ks.dbs[dst]:
        return
    _relocate(ks, db, key, dst, key, value)


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
            dst_db = _db_index(ks, argv[j + 1])
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
    tainted = _tainted(ks, db, src)
    when = ks.get_expire(db, src)
    ks.set(dst_db, dst, duplicate(value))
    if when is not None:
        ks.set_expire(dst_db, dst, when)
    if tainted:
        ks.unsupported_keys.add((dst_db, dst))


def duplicate(value: Value) -> Value:
    """A deep copy of a keyspace value, sharing nothing mutable with it (as `copyCommand`'s
    per-type dup functions)."""
    if type(value) is bytes:
        return value
    if isinstance(value, list | deque):
        return list(value)  # upgraded by its first write, as a snapshot's lists
    if type(value) is set:
        return set(value)
    if type(value) is dict:
        return dict(cast("dict[bytes, bytes]", value))
    if isinstance(value, ZSet):
        return value.copy()
    if isinstance(value, ZSetValue):
        return ZSet(dict(value))
    if isinstance(value, HashValue):
        return HashValue(value, expires=dict(value.expires))
    if isinstance(value, ModuleValue):
        return dataclasses.replace(value)
    if isinstance(value, StreamValue):
        return copy.deepcopy(value)
    return copy.deepcopy(value)


@write_command("swapdb", keys=(1, 0, 1))
def swapdb(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    a, b = _db_index(ks, argv[1]), _db_index(ks, argv[2])
    if a == b:
        return
    ks.dbs[a], ks.dbs[b] = ks.dbs[b], ks.dbs[a]
    ks.expires[a], ks.expires[b] = ks.expires[b], ks.expires[a]
    if ks.unsupported_keys:
        swap = {a: b, b: a}
        ks.unsupported_keys = {(swap.get(d, d), k) for d, k in ks.unsupported_keys}
    # Every key of both DBs changed for a watcher (`touchAllWatchedKeysInDb`); `touched`
    # is not used as it would also clear the unsupported marks that travelled with them.
    notify = ks.on_key_modified
    if notify is not None:
        for d in (a, b):
            for key in set(ks.dbs[a]) | set(ks.dbs[b]):
                notify(d, key)


@write_command("flushdb", keys=(1, 0, 1))
def flushdb(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    ks.flush_db(db)


@write_command("flushall", keys=(1, 0, 1))
def flushall(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """FLUSHALL [ASYNC|SYNC]: every DB; function libraries stay (FUNCTION FLUSH clears them)."""
    for d in range(ks.databases):
        ks.flush_db(d)


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
    _rdb_type, value, _version = parse_dump_payload(argv[3])
    if isinstance(value, ZSetValue) and not isinstance(value, ZSet):
        value = ZSet(value)
    if ttl and not absttl:
        ttl += ks.now_ms()
    ks.set(db, key, value)
    if ttl:
        ks.set_expire(db, key, ttl)


# ---- SORT (the STORE applier here, SORT_RO with the reads below) ----

_C_SPACE = b" \t\n\v\f\r"
# The whole text strtod must consume for SORT to accept it (NaN is refused after parsing).
_STRTOD_FULL = re.compile(
    rb"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
    rb"|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?"
    rb"|(?i:inf|infinity))"
)
_HEX_FLOAT = re.compile(rb"([+-]?)0[xX]([0-9a-fA-F]*)\.?([0-9a-fA-F]*)(?:[pP]([+-]?\d+))?")
_DBL_MIN = 2.2250738585072014e-308  # the smallest normal double
SORT_SCORE_ERROR = b"ERR One or more scores can't be converted into double"


class _SortArgs(NamedTuple):
    desc: bool
    alpha: bool
    limit_start: int
    limit_count: int
    sortby: bytes | None
    gets: list[bytes]
    storekey: bytes | None
    # Set by any BY without `*`, and not cleared by a later BY with one (the C flag).
    dontsort: bool


def _parse_sort(argv: list[bytes], readonly: bool) -> _SortArgs:
    """`sortCommandGeneric`'s option loop: the first bad option is the error (a LIMIT that
    is not a number says so; STORE is unknown to SORT_RO, so a syntax error there)."""
    desc = alpha = False
    limit_start, limit_count = 0, -1
    sortby: bytes | None = None
    storekey: bytes | None = None
    gets: list[bytes] = []
    dontsort = False
    j, n = 2, len(argv)
    while j < n:
        opt = argv[j].lower()
        left = n - j - 1
        if opt == b"asc":
            desc = False
        elif opt == b"desc":
            desc = True
        elif opt == b"alpha":
            alpha = True
        elif opt == b"limit" and left >= 2:
            a, b = string2ll(argv[j + 1]), string2ll(argv[j + 2])
            if a is None or b is None:
                raise ReplyError(NOT_INTEGER)
            limit_start, limit_count = a, b
            j += 2
        elif not readonly and opt == b"store" and left >= 1:
            storekey = argv[j + 1]
            j += 1
        elif opt == b"by" and left >= 1:
            sortby = argv[j + 1]
            if b"*" not in c_string(sortby):
                dontsort = True
            j += 1
        elif opt == b"get" and left >= 1:
            gets.append(argv[j + 1])
            j += 1
        else:
            raise ReplyError(SYNTAX)
        j += 1
    return _SortArgs(desc, alpha, limit_start, limit_count, sortby, gets, storekey, dontsort)


Getter = Callable[[bytes], "Value | None"]


def _by_pattern(get: Getter, pattern: bytes, subst: bytes, now: int | None = None) -> bytes | None:
    """`lookupKeyByPattern`: `#` is the element itself; the first `*` is replaced by the
    element; `key->field` reads a hash field; anything else reads a string key. `get` is
    the key lookup (a replica's read hides expired keys; the applier sees them all); with
    `now`, a hash field whose TTL has passed reads as missing."""
    cpat = c_string(pattern)
    if cpat == b"#":
        return subst
    star = cpat.find(b"*")
    if star < 0:
        return None
    arrow = cpat.find(b"->", star + 1)
    if arrow >= 0 and arrow + 2 < len(cpat):
        obj = get(pattern[:star] + subst + pattern[star + 1 : arrow])
        if type(obj) is dict:
            return cast("dict[bytes, bytes]", obj).get(pattern[arrow + 2 :])
        if type(obj) is HashValue:
            field = pattern[arrow + 2 :]
            if now is not None:
                when = obj.expires.get(field)
                if when is not None and when <= now:
                    return None
            return obj.get(field)
        return None
    obj = get(pattern[:star] + subst + pattern[star + 1 :])
    return obj if type(obj) is bytes else None


def strtod_score(raw: bytes) -> float | None:
    """The double `sortCommand` reads with strtod, or None where Redis flags a conversion
    error: trailing garbage, NaN, or ERANGE (an overflow to infinity, or an underflow: a
    subnormal or zero result that is not exact, as glibc reports it). Leading blanks are
    allowed, the text ends at a NUL, an empty string is 0."""
    text = c_string(raw)
    if not text:
        return 0.0
    body = text.lstrip(_C_SPACE)
    if _STRTOD_FULL.fullmatch(body) is None:
        return None
    unsigned = body.lstrip(b"+-").lower()
    if unsigned in (b"inf", b"infinity"):
        return -math.inf if body[:1] == b"-" else math.inf
    if unsigned[:2] == b"0x":
        return _strtod_hex(body)
    v = float(body)
    if math.isinf(v):
        return None  # overflow: ERANGE
    if abs(v) < _DBL_MIN and Decimal(body.decode()) != Decimal(v):
        return None  # inexact underflow: ERANGE
    return v


def _strtod_hex(body: bytes) -> float | None:
    m = _HEX_FLOAT.fullmatch(body)
    if m is None:
        return None
    sign, whole, frac, exp = m.groups()
    mant = int((whole + frac) or b"0", 16)
    if mant == 0:
        return -0.0 if sign == b"-" else 0.0
    e = int(exp or b"0") - 4 * len(frac)
    magnitude = mant.bit_length() + e  # 2**(magnitude-1) <= value < 2**magnitude
    if magnitude > 1024:
        return None  # overflow
    if magnitude < -1080:
        return None  # far below the smallest subnormal: underflow
    exact = Fraction(mant) * Fraction(2) ** e
    try:
        v = float(exact)
    except OverflowError:
        return None
    if math.isinf(v) or (abs(v) < _DBL_MIN and Fraction(v) != exact):
        return None
    return -v if sign == b"-" else v


def _sort_score(raw: bytes) -> float:
    """`strtod_score` for the applier: a score Redis refuses raises `ApplyError`."""
    v = strtod_score(raw)
    if v is None:
        raise ApplyError(f"SORT score {raw!r} can't be converted into double")
    return v


def _read_score(raw: bytes) -> float:
    v = strtod_score(raw)
    if v is None:
        raise ReplyError(SORT_SCORE_ERROR)
    return v


@write_command("sort", keys=(1, 0, 1))  # the key written is STORE's: marked here on failure
def sort(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
    STORE destination, re-executed as `sortCommandGeneric` does (a SORT without STORE is
    a read and never arrives). The destination gets a list without TTL, or is deleted when
    the result is empty."""
    try:
        _sort(ks, db, argv)
    except Exception:
        for i in range(2, len(argv) - 1):
            if argv[i].upper() == b"STORE":
                ks.unsupported_keys.add((db, argv[i + 1]))
        raise


def _sort(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    try:
        a = _parse_sort(argv, readonly=False)
    except ReplyError as e:
        raise ApplyError(f"SORT: {e.msg.decode(errors='replace')}") from None
    storekey = a.storekey
    if storekey is None:
        return
    value = ks.get(db, argv[1])  # not `dbs`: `get` gives a sorted set its index
    if value is not None and not isinstance(value, list | deque | set | ZSet):
        raise ApplyError(f"WRONGTYPE: SORT of a {type(value).__name__}")
    get = ks.dbs[db].get
    picked = _sort_pick(value, get, a, store=True, score=_sort_score)
    result = picked
    if a.gets:
        result = []
        for elem in picked:
            for pattern in a.gets:
                got = _by_pattern(get, pattern, elem)
                result.append(b"" if got is None else got)
    if result:
        ks.set(db, storekey, result)
    else:
        ks.delete(db, storekey)
    if _tainted(ks, db, argv[1]):
        ks.unsupported_keys.add((db, storekey))


def _sort_pick(
    value: list[bytes] | deque[bytes] | set[bytes] | ZSet | None,
    get: Getter,
    a: _SortArgs,
    *,
    store: bool,
    score: Callable[[bytes], float],
    now: int | None = None,
) -> list[bytes]:
    """The elements `sortCommandGeneric` outputs (before GET), in order.

    `store`: SORT ... STORE, where a set under a constant BY is sorted ALPHA so replicas
    agree, and ALPHA compares bytes; without it (SORT_RO) ALPHA collates (`strcoll`, taken
    as byte order up to the first NUL: the C / C.UTF-8 locales) and a set under a constant
    BY comes out in its own iteration order, DESC ignored.
    """
    desc, alpha, sortby, dontsort = a.desc, a.alpha, a.sortby, a.dontsort
    if dontsort and store and isinstance(value, set):
        # A set has no order of its own: with STORE it is sorted ALPHA so replicas agree.
        dontsort, alpha, sortby = False, True, None
    length = len(value) if value is not None else 0

    # LIMIT, clamped as sortCommandGeneric does.
    start = min(max(a.limit_start, 0), length)
    count = min(max(a.limit_count, -1), length)
    end = length - 1 if count < 0 else start + count - 1
    if start >= length:
        start, end = length - 1, length - 2
    end = min(end, length - 1)

    if value is None or (dontsort and end < start):
        return []
    if dontsort:
        # Lists and sorted sets keep their own order (reversed by DESC); a set is loaded
        # in iteration order and nothing reverses it.
        if isinstance(value, list | deque):  # only the LIMIT window is copied
            if desc:
                return list_slice(value, length - 1 - end, length - start)[::-1]
            return list_slice(value, start, end + 1)
        if isinstance(value, set):
            return iteration_order(value)[start : end + 1]
        index = value.index
        if desc:
            return [index[length - 1 - i][1] for i in range(start, end + 1)]
        return [m for _s, m in index.islice(start, end + 1)]
    # Every element is scored even when LIMIT leaves nothing to output: a bad score is an
    # error whatever the range.
    elems = iteration_order(value) if isinstance(value, set) else list(value)
    return _sorted(get, elems, desc, alpha, sortby, start, end, store, score, now)


def _sorted(
    get: Getter,
    elems: list[bytes],
    desc: bool,
    alpha: bool,
    sortby: bytes | None,
    start: int,
    end: int,
    store: bool,
    score: Callable[[bytes], float],
    now: int | None,
) -> list[bytes]:
    """Sort `elems` as `sortCompare` orders them and return ranks start..end.

    Numeric: by score, ties by element bytes. ALPHA: by element bytes, or by the BY values
    (missing ones first) with ties left in input order: Redis calls glibc's qsort, a
    stable merge sort, or, with BY and a LIMIT, its own `pqsort` (keyspace/pqsort.py) because its
    order of ties shows. Without STORE, ALPHA compares C strings (`strcoll`): what follows
    a NUL byte is ignored, so such elements can tie too.
    """
    keys: list[Any]
    text: Callable[[bytes], bytes] = (lambda b: b) if store else c_string
    if alpha:
        if sortby is None:
            keys = elems if store else [c_string(e) for e in elems]
        else:
            keys = []
            for e in elems:
                by = _by_pattern(get, sortby, e, now)
                keys.append((0, b"") if by is None else (1, text(by)))
    else:
        keys = []
        for e in elems:
            by = e if sortby is None else _by_pattern(get, sortby, e, now)
            keys.append((0.0 if by is None else score(by), e))
    order = list(range(len(elems)))
    if sortby is not None and (start != 0 or end != len(elems) - 1):

        def cmp(x: int, y: int) -> int:
            a, b = keys[x], keys[y]
            c = (a > b) - (a < b)
            return -c if desc else c

        pqsort(order, cmp, start, end)
    else:
        order.sort(key=keys.__getitem__, reverse=desc)
    return [elems[i] for i in order[start : end + 1]]


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
    valkey = upstream_identity(ks)[0] == "valkey"
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
        elif opt == b"type" and n - i >= 2:
            want = c_string(argv[i + 1]).lower()
            # Valkey checks the name against its types and loaded module types; the relay
            # does not know the master's modules, but a module type name has 9 characters.
            if valkey and want not in _SCAN_TYPES and len(want) != 9:
                raise ReplyError(b"ERR unknown type name '" + c_string(argv[i + 1]) + b"'")
            i += 2
        elif valkey and opt == b"novalues":
            raise ReplyError(b"ERR NOVALUES option can only be used in HSCAN")
        elif valkey and opt == b"noscores":
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
    from replproxy.persistence import snapshot_format

    version, valkey = snapshot_format(c.ks.loaded_aux)
    try:
        payload = dump_payload(v, version, valkey=valkey)
    except RDBEncodeError as e:
        raise ReplyError(b"ERR " + str(e).encode()) from None
    return reply.bulk(payload)


@read_command("sort_ro")
def sort_ro(c: ReadContext, argv: list[bytes]) -> bytes:
    """SORT_RO key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]:
    SORT's code without STORE (options first, then WRONGTYPE, then the score error). GET
    of a missing key or field is a null. BY/GET keys are read as a replica reads them
    (expired ones are missing)."""
    a = _parse_sort(argv, readonly=True)
    value = lookup(c, argv[1])
    if value is not None and not isinstance(value, list | deque | set | ZSet):
        raise ReplyError(WRONGTYPE)

    def get(key: bytes) -> Value | None:
        return peek(c, key)

    now = c.now
    picked = _sort_pick(value, get, a, store=False, score=_read_score, now=now)
    if not a.gets:
        return reply.bulk_array(picked, c.proto)
    out = [_by_pattern(get, p, e, now) for e in picked for p in a.gets]
    return reply.bulk_array(out, c.proto)


# ---- OBJECT and MEMORY ----

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
    """`objectCommandLookup`: the value at argv[2] as a read sees it (NOTOUCH)."""
    return peek(c, argv[2])


def _is_int_string(v: bytes) -> bool:
    """`tryObjectEncoding`'s test: up to 20 chars and `string2l` (a long is 64 bits), both
    checked by `parse_int64`."""
    return parse_int64(v) is not None


def _listpack_bytes(items: Iterable[bytes], limit: int) -> int:
    """Bytes of a listpack holding `items`, counted until it passes `limit`."""
    total = LP_EMPTY_SIZE
    for item in items:
        total += len(lp_entry(item))
        if total > limit:
            break
    return total


def object_encoding(key: bytes, value: Value, server: str, version: tuple[int, int, int],
                    has_ttl: bool) -> bytes:
    """The encoding the master most likely holds `value` in, as a replica that loaded it
    from a snapshot would pick it, with the default thresholds (`*-max-listpack-*`,
    `set-max-intset-entries`). A master can differ: it keeps a big encoding after the value
    shrinks, and APPEND/SETRANGE make raw strings of any length."""
    valkey = server == "valkey"
    compact_lists = valkey or version >= (7, 2, 0)
    if type(value) is bytes:
        if _is_int_string(value):
            return b"int"
        n = len(value)
        if n <= _EMBSTR_SIZE_LIMIT:
            if not valkey or version < (8, 0, 0):
                return b"embstr"
            # Valkey 8 embeds the key (and the expire time) in the value's allocation,
            # and keeps a string embedded only while the whole fits 64 bytes. Measured on
            # 8.1 for a key SET afresh: key + value <= 41 bytes, 39 for a key of 32 bytes
            # or more that has a TTL (an overwritten key can differ).
            if n + len(key) <= (39 if has_ttl and len(key) >= 32 else 41):
                return b"embstr"
        return b"raw"
    if isinstance(value, list | deque):
        if not compact_lists:
            return b"quicklist"
        if _listpack_bytes(value, _LIST_MAX_LISTPACK_BYTES) <= _LIST_MAX_LISTPACK_BYTES:
            return b"listpack"
        return b"quicklist"
    if type(value) is set:
        n = len(value)
        if n <= SET_MAX_INTSET_ENTRIES and all(parse_int64(m) is not None for m in value):
            return b"intset"
        if compact_lists and n <= SET_MAX_LISTPACK_ENTRIES and all(
            len(m) <= SET_MAX_LISTPACK_VALUE for m in value
        ):
            return b"listpack"
        return b"hashtable"
    if isinstance(value, ZSetValue):
        if len(value) <= ZSET_MAX_LISTPACK_ENTRIES and all(
            len(m) <= ZSET_MAX_LISTPACK_VALUE for m in value
        ):
            return b"listpack"
        return b"skiplist"
    if isinstance(value, dict):
        h = cast("dict[bytes, bytes]", value)
        if is_listpack_hash(h):
            if isinstance(h, HashValue) and h.expires and not valkey:
                return b"listpackex"  # Redis 7.4+ hash with field TTLs
            return b"listpack"
        return b"hashtable"
    if isinstance(value, StreamValue):
        return b"stream"
    return b"raw"  # a module value (createModuleObject keeps the default encoding)


@read_command("object|encoding")
def object_encoding_cmd(c: ReadContext, argv: list[bytes]) -> bytes:
    """OBJECT ENCODING key: a best guess (`object_encoding`), null for a missing key."""
    v = _object_value(c, argv)
    if v is None:
        return reply.null(c.proto)
    name, version = upstream_identity(c.ks)
    has_ttl = argv[2] in c.ks.expires[c.db]
    return reply.bulk(object_encoding(argv[2], v, name, version, has_ttl))


@read_command("object|refcount")
def object_refcount(c: ReadContext, argv: list[bytes]) -> bytes:
    """OBJECT REFCOUNT key: 1, except Redis's shared integers 0..9999 (OBJ_SHARED_REFCOUNT,
    INT_MAX) as a master with the default maxmemory stores small integer strings. Valkey 8
    embeds the key in the value object, so no value is shared there."""
    v = _object_value(c, argv)
    if v is None:
        return reply.null(c.proto)
    name, _version = upstream_identity(c.ks)
    if (name == "redis" and type(v) is bytes and _is_int_string(v)
            and 0 <= int(v) < _OBJ_SHARED_INTEGERS):
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
    text = table_for(*upstream_identity(c.ks)).subcommand_help(container)
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
    if _tainted(ks, c.db, key):
        raise ReplyError(unsupported_key_error(key))
    value = ks.dbs[c.db].get(key)
    if value is None:
        return reply.null(c.proto)
    name, version = upstream_identity(ks)
    has_ttl = key in ks.expires[c.db]
    return reply.integer(memory_usage(key, value, samples, name, version, has_ttl))


def _je(n: int) -> int:
    """jemalloc's size class for a request of n bytes (4 classes per doubling)."""
    if n <= 8:
        return 8
    if n <= 128:
        return (n + 15) & ~15
    step = 1 << ((n - 1).bit_length() - 3)
    return (n + step - 1) // step * step


def _sds_alloc(n: int, min_type8: bool = False) -> int:
    """zmalloc size of an sds of n bytes (header by `sdsReqType`, + NUL)."""
    if n < 32 and not min_type8:
        hdr = 1
    elif n < 256:
        hdr = 3
    elif n < 65536:
        hdr = 5
    elif n < 1 << 32:
        hdr = 9
    else:
        hdr = 17
    return _je(hdr + n + 1)


def _dict_slots(n: int) -> int:
    size = 4
    while size < n:
        size <<= 1
    return size


_ROBJ = 16
_DICT = 56
_DICT_ENTRY = 24


def _sampled(total: int, costs: Iterable[int], samples: int) -> int:
    """`objectComputeSize`'s sampling: the mean cost of the first `samples` elements,
    times the element count."""
    n = 0
    s = 0
    for cost in costs:
        s += cost
        n += 1
        if n >= samples:
            break
    return int(s / n * total) if n else 0


def memory_usage(key: bytes, value: Value, samples: int, server: str,
                 version: tuple[int, int, int], has_ttl: bool) -> int:
    """An estimate of MEMORY USAGE: `objectComputeSize` (the encoding `object_encoding`
    guesses, element sizes sampled the same way, jemalloc's size classes) plus what the
    key itself takes. Redis keeps a key in a dict entry (24 bytes) and its own sds; Valkey
    8 embeds it, with the TTL, in the value's object and uses its own hash table (64-byte
    buckets of 7) for big sets, hashes and sorted sets. Where a value's history on the
    master matters (stream nodes preallocated, big encodings kept after shrinking, sds
    slack, an allocator other than jemalloc) the master's figure can differ by tens of
    percent either way."""
    valkey = server == "valkey" and version >= (8, 0, 0)
    enc = object_encoding(key, value, server, version, has_ttl)
    if valkey:
        head = _ROBJ + 1 + _sds_len(len(key)) + (8 if has_ttl else 0)  # object + key
        if type(value) is bytes:
            if enc == b"int":
                return _je(head)
            if enc == b"embstr":
                return _je(head + 3 + len(value) + 1)
            return _je(head) + _sds_alloc(len(value))
        return _je(head) + _container_usage(value, enc, samples, valkey)
    keypart = _sds_alloc(len(key)) + _DICT_ENTRY
    if type(value) is bytes:
        if enc == b"int":
            return keypart + _ROBJ
        if enc == b"embstr":
            return keypart + _je(_ROBJ + 3 + len(value) + 1)
        return keypart + _ROBJ + _sds_alloc(len(value))
    return keypart + _ROBJ + _container_usage(value, enc, samples, valkey)


def _sds_len(n: int) -> int:
    """Bytes (not rounded) of an sds of n bytes: header + data + NUL."""
    return (1 if n < 32 else 3 if n < 256 else 5 if n < 65536 else 9) + n + 1


def _table(n: int, valkey: bool) -> int:
    """A hash table's own allocations for n elements: Redis's dict (struct + a power of
    two of 8-byte slots), Valkey's hashtable (64-byte buckets of 7 entries)."""
    if valkey:
        buckets = 1
        while buckets * 6 < n:
            buckets <<= 1
        return 64 + 64 * buckets
    return _DICT + 8 * _dict_slots(n)


def _container_usage(value: Value, enc: bytes, samples: int, valkey: bool) -> int:
    if isinstance(value, list | deque):
        items = value
        if enc == b"listpack":
            return _je(_listpack_bytes(items, 1 << 62))
        # Quicklist: 40-byte header, then per node a 32-byte node plus its listpack, the
        # nodes filled up to 8 KB (`_quicklistNodeAllowInsert`).
        nodes: list[int] = []
        size = LP_EMPTY_SIZE
        count = 0  # items in the nodes measured
        for item in items:
            entry = len(lp_entry(item))
            if size > LP_EMPTY_SIZE and size + len(item) + 11 > _LIST_MAX_LISTPACK_BYTES:
                nodes.append(size)
                if len(nodes) >= samples:
                    break
                size = LP_EMPTY_SIZE
            size += entry
            count += 1
        else:
            nodes.append(size)
        per_node = sum(32 + _je(s) for s in nodes) / len(nodes)
        per_item = count / len(nodes) if count >= len(nodes) else 1
        node_count = max(1, math.ceil(len(items) / per_item))
        return 40 + int(per_node * node_count)
    if type(value) is set:
        n = len(value)
        if enc == b"intset":
            ints = [int(m) for m in value]
            width = 2
            if any(not -(1 << 15) <= x < 1 << 15 for x in ints):
                width = 4 if all(-(1 << 31) <= x < 1 << 31 for x in ints) else 8
            return _je(8 + width * n)
        if enc == b"listpack":
            return _je(_listpack_bytes(value, 1 << 62))
        entry = 0 if valkey else _DICT_ENTRY  # Valkey's buckets point at the sds itself
        return _table(n, valkey) + _sampled(
            n, (entry + _sds_alloc(len(m), True) for m in value), samples)
    if isinstance(value, ZSetValue):
        n = len(value)
        if enc == b"listpack":
            flat: list[bytes | int] = []
            for m, s in value.items():
                flat += (m, zset_score_entry(s))
            return _je(LP_EMPTY_SIZE + sum(len(lp_entry(e)) for e in flat))
        # zset + skiplist + table, the 32-level header node, then per element its sds, a
        # table entry and a skiplist node (1.33 levels on average).
        entry = 0 if valkey else _DICT_ENTRY
        return 16 + 32 + _table(n, valkey) + 640 + _sampled(
            n, (_sds_alloc(len(m), True) + entry + 48 for m in value), samples)
    if isinstance(value, dict):
        h = cast("dict[bytes, bytes]", value)
        n = len(h)
        if enc in (b"listpack", b"listpackex"):
            return _je(_listpack_bytes((x for kv in h.items() for x in kv), 1 << 62))
        if valkey:  # one allocation per entry: field and value embedded
            costs = (_je(8 + _sds_len(len(f)) + _sds_len(len(v))) for f, v in h.items())
        else:
            costs = (_sds_alloc(len(f), True) + _sds_alloc(len(v), True) + _DICT_ENTRY
                     for f, v in h.items())
        return _table(n, valkey) + _sampled(n, costs, samples)
    if isinstance(value, StreamValue):
        return _stream_usage(value)
    if isinstance(value, ModuleValue):
        return len(value.raw)
    return 0


def _rax_usage(elements: int) -> int:
    """`streamRadixTreeMemoryUsage`, taking as many nodes as elements plus the root."""
    nodes = elements + 1 if elements else 1
    return elements * 16 + nodes * (4 + 8 * 30)


def _stream_usage(s: StreamValue) -> int:
    """The stream header, its radix tree of listpacks (nodes of up to 100 entries or 4 KB;
    full ones shrunk to fit, the last one as XADD preallocated it, 4 KB), and the consumer
    groups with their PELs."""
    nodes = 0
    lp_total = 0
    node_bytes = 0
    node_entries = 0
    for fields in s.entries.values():
        # flags, id deltas, values (the fields too unless the node's first entry had the
        # same ones), the entry's length; small integers take 2 bytes.
        size = 8 + sum(len(v) + 2 for _f, v in fields)
        if node_entries >= 100 or (node_entries and node_bytes + size > 4096):
            lp_total += _je(node_bytes)
            nodes += 1
            node_bytes = node_entries = 0
        if not node_entries:
            node_bytes = LP_EMPTY_SIZE + 12 + sum(len(f) + 2 for f, _v in fields)
        node_bytes += size
        node_entries += 1
    if node_entries:
        lp_total += _je(max(node_bytes, 4096))
        nodes += 1
    usage = 80 + _rax_usage(nodes) + lp_total
    for g in s.groups:
        usage += 48 + _rax_usage(len(g.pel)) + 40 * len(g.pel)
        for consumer in g.consumers:
            usage += 56 + len(consumer.name) + _rax_usage(len(consumer.pending))
    return usage
