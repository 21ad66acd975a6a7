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
  TTL. `MIGRATE` arrives as `DEL`.
- Verbatim: `DEL`, `UNLINK`, `PERSIST`, `RENAME`, `RENAMENX`, `MOVE`, `COPY [DB n]
  [REPLACE]` (6.2+), `SWAPDB`, `FLUSHALL`/`FLUSHDB [ASYNC|SYNC]` (FLUSHALL keeps the function
  libraries), `SORT ... STORE` (re-executed: the replica sorts again).
- `PUBLISH`/`SPUBLISH`: handed to `ks.on_publish`. 5.x/6.x `SCRIPT LOAD|FLUSH`: no data.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any, cast

from replproxy.keyspace import ApplyError, Keyspace, write_command
from replproxy.keyspace.pqsort import pqsort
from replproxy.keyspace.util import parse_double, parse_int
from replproxy.keyspace.values import ZSet
from replproxy.rdb.dump import parse_dump_payload
from replproxy.rdb.model import HashValue, ModuleValue, StreamValue, Value, ZSetValue


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
    if type(value) is list:
        return list(value)
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


@write_command("restore")
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


# ---- SORT ... STORE ----

_C_SPACE = b" \t\n\v\f\r"
# The whole text strtod must consume for SORT to accept it (NaN is refused after parsing).
_STRTOD_FULL = re.compile(
    rb"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
    rb"|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?"
    rb"|(?i:inf|infinity))"
)


def _cstr(raw: bytes) -> bytes:
    """What C string functions (strchr, strstr, strtod) see of an sds: up to the first NUL."""
    nul = raw.find(b"\0")
    return raw if nul < 0 else raw[:nul]


def _by_pattern(dbd: dict[bytes, Value], pattern: bytes, subst: bytes) -> bytes | None:
    """`lookupKeyByPattern`: `#` is the element itself; the first `*` is replaced by the
    element; `key->field` reads a hash field; anything else reads a string key."""
    cpat = _cstr(pattern)
    if cpat == b"#":
        return subst
    star = cpat.find(b"*")
    if star < 0:
        return None
    arrow = cpat.find(b"->", star + 1)
    if arrow >= 0 and arrow + 2 < len(cpat):
        obj = dbd.get(pattern[:star] + subst + pattern[star + 1 : arrow])
        if type(obj) is dict or type(obj) is HashValue:
            return cast("dict[bytes, bytes]", obj).get(pattern[arrow + 2 :])
        return None
    obj = dbd.get(pattern[:star] + subst + pattern[star + 1 :])
    return obj if type(obj) is bytes else None


def _sort_score(raw: bytes) -> float:
    """The double `sortCommand` reads with strtod: leading blanks allowed, the text ends at
    a NUL, an empty string is 0; what Redis refuses (trailing garbage, NaN) raises."""
    text = _cstr(raw)
    if not text:
        return 0.0
    body = text.lstrip(_C_SPACE)
    if _STRTOD_FULL.fullmatch(body) is None:
        raise ApplyError(f"SORT score {raw!r} can't be converted into double")
    try:
        return parse_double(body)
    except ValueError:
        raise ApplyError(f"SORT score {raw!r} can't be converted into double") from None


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
    desc = alpha = False
    limit_start, limit_count = 0, -1
    sortby: bytes | None = None
    storekey: bytes | None = None
    gets: list[bytes] = []
    j, n = 2, len(argv)
    while j < n:
        opt = argv[j].upper()
        left = n - j - 1
        if opt == b"ASC":
            desc = False
        elif opt == b"DESC":
            desc = True
        elif opt == b"ALPHA":
            alpha = True
        elif opt == b"LIMIT" and left >= 2:
            limit_start, limit_count = parse_int(argv[j + 1]), parse_int(argv[j + 2])
            j += 2
        elif opt == b"STORE" and left >= 1:
            storekey = argv[j + 1]
            j += 1
        elif opt == b"BY" and left >= 1:
            sortby = argv[j + 1]
            j += 1
        elif opt == b"GET" and left >= 1:
            gets.append(argv[j + 1])
            j += 1
        else:
            raise ApplyError(f"SORT syntax error at {argv[j]!r}")
        j += 1
    if storekey is None:
        return
    result = _sort_result(ks, db, argv[1], desc, alpha, limit_start, limit_count, sortby, gets)
    if result:
        ks.set(db, storekey, result)
    else:
        ks.delete(db, storekey)
    if _tainted(ks, db, argv[1]):
        ks.unsupported_keys.add((db, storekey))


def _sort_result(
    ks: Keyspace,
    db: int,
    key: bytes,
    desc: bool,
    alpha: bool,
    limit_start: int,
    limit_count: int,
    sortby: bytes | None,
    gets: list[bytes],
) -> list[bytes]:
    dbd = ks.dbs[db]
    value = ks.get(db, key)  # not `dbd`: `get` gives a sorted set its index
    if value is not None and not isinstance(value, list | set | ZSet):
        raise ApplyError(f"WRONGTYPE: SORT of a {type(value).__name__}")
    dontsort = sortby is not None and b"*" not in _cstr(sortby)
    if dontsort and isinstance(value, set):
        # A set has no order of its own: with STORE it is sorted ALPHA so replicas agree.
        dontsort, alpha, sortby = False, True, None
    length = len(value) if value is not None else 0

    # LIMIT, clamped as sortCommandGeneric does.
    start = min(max(limit_start, 0), length)
    count = min(max(limit_count, -1), length)
    end = length - 1 if count < 0 else start + count - 1
    if start >= length:
        start, end = length - 1, length - 2
    end = min(end, length - 1)

    picked: list[bytes]
    if end < start or value is None:
        picked = []
    elif dontsort:
        # Lists and sorted sets keep their own order (reversed by DESC).
        if isinstance(value, list):
            seq = value[::-1] if desc else value
            picked = seq[start : end + 1]
        else:
            assert isinstance(value, ZSet)
            index = value.index
            if desc:
                picked = [index[length - 1 - i][1] for i in range(start, end + 1)]
            else:
                picked = [m for _s, m in index.islice(start, end + 1)]
    else:
        picked = _sorted(dbd, list(value), desc, alpha, sortby, start, end)

    if not gets:
        return picked
    out: list[bytes] = []
    for elem in picked:
        for pattern in gets:
            got = _by_pattern(dbd, pattern, elem)
            out.append(b"" if got is None else got)
    return out


def _sorted(
    dbd: dict[bytes, Value],
    elems: list[bytes],
    desc: bool,
    alpha: bool,
    sortby: bytes | None,
    start: int,
    end: int,
) -> list[bytes]:
    """Sort `elems` as `sortCompare` orders them and return ranks start..end.

    Numeric: by score, ties by element bytes. ALPHA: by element bytes, or by the BY values
    (missing ones first) with ties left in input order: Redis calls glibc's qsort, a
    stable merge sort, or, with BY and a LIMIT, its own `pqsort` (keyspace/pqsort.py) because its
    order of ties shows.
    """
    keys: list[Any]
    if alpha:
        if sortby is None:
            keys = list(elems)
        else:
            keys = []
            for e in elems:
                by = _by_pattern(dbd, sortby, e)
                keys.append((0, b"") if by is None else (1, by))
    else:
        keys = []
        for e in elems:
            by = e if sortby is None else _by_pattern(dbd, sortby, e)
            keys.append((0.0 if by is None else _sort_score(by), e))
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
    if ks.on_publish is not None:
        ks.on_publish(argv[1], argv[2])


@write_command("script", keys=(1, 0, 1))
def script(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """SCRIPT LOAD|FLUSH from 5.x/6.x masters: the script cache is not data (a snapshot does
    not carry it, and EVALSHA never arrives: scripts replicate by their effects)."""
