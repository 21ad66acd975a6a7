"""Hashes: the master's hash writes, applied to `dict[bytes, bytes]` / `HashValue` values,
and the hash reads served from them.

This module owns the appliers of the hash commands a master propagates, including the hash
field TTLs of Redis 7.4+/8.x and Valkey 9, and the hash read commands; it touches no other
type. A hash without field TTLs is a plain `dict`; the first field TTL turns it into a
`HashValue` (a dict with an `expires` map field -> absolute unix ms), which then stays one
even when its last field TTL goes (an empty `expires` compares equal to a dict). Insertion
order is kept as listpack encoding keeps it. A hash that becomes empty is deleted.

What arrives (read from `src/t_hash.c` of Redis 5.0, 7.0, 7.4, 8.x and Valkey 8/9):

- verbatim: HSET, HMSET, HSETNX, HDEL, HINCRBY, HPERSIST (7.4+).
- HINCRBYFLOAT -> `HSET k f <result>` (5.0 to 7.4, Valkey), `HSETEX k KEEPTTL FIELDS 1 f v`
  (8.x). If one arrives verbatim it is recomputed in x87 long double as Redis does.
- HEXPIRE/HPEXPIRE/HEXPIREAT/HPEXPIREAT -> `HPEXPIREAT k <abs-ms> [NX|XX|GT|LT] FIELDS n f...`
  (`hexpireGenericCommand`). Redis 7.4/8 keep only the fields it updated; fields whose time
  was already past were deleted and sent as separate `HDEL k f`. Valkey 9 keeps every field
  and the condition, so the condition is re-checked here, as a replica does.
- HSETEX (8.0+, Valkey 9) -> `HSETEX k [FNX|FXX] [PXAT ms|KEEPTTL] FIELDS n f v ...`; when
  the time was past the master sends HDELs instead. Valkey drops FNX/FXX/NX/XX when it
  rewrites, Redis keeps FNX/FXX: they are re-checked either way.
- HGETEX -> `HPEXPIREAT` / `HPERSIST` / `HDEL`; HGETDEL -> `HDEL` (8.0+, Valkey 9). They
  never arrive themselves and are not registered.
- Field expiry and eviction: `HDEL k f`.

Like a replica, no applier looks at the clock to decide that a field has expired: a field
with a past TTL stays until the master's HDEL (`checkAlreadyExpired` is false on a replica,
and `hashTypeGetValue` treats every field as alive for the master client).

Reads (`t_hash.c` of Redis 7.0/7.4 and Valkey 8.1):

- HGET, HMGET, HGETALL (a map in RESP3), HKEYS, HVALS, HLEN, HEXISTS, HSTRLEN, HRANDFIELD,
  HSCAN. Field order is the dict's insertion order, which is the master's order for a
  listpack hash (at most 512 fields, fields and values of at most 64 bytes); a hashtable
  hash's order is the master's own hash seed, so it differs from any replica's.
- Field TTLs: a field whose TTL has passed (`expires < now`, `hashTypeIsExpired`) is hidden
  from every read but still counted by HLEN, as a 7.4 replica does for a user client (it
  never deletes the field itself; the master's HDEL will come).
- HRANDFIELD key [count [WITHVALUES]]: count parsed in -LONG_MAX..LONG_MAX, WITHVALUES with
  |count| <= LONG_MAX/2; a negative count may repeat fields; a count >= the size answers the
  whole hash in its order. RESP3 WITHVALUES is an array of [field, value] arrays.
- HSCAN key cursor [MATCH p] [COUNT n] [NOVALUES]: the cursor is parsed before the lookup,
  the options after it (a missing key answers an empty scan whatever the options). A hash
  the master keeps as a listpack is answered whole, with cursor 0, whatever the cursor, as
  `scanGenericCommand` does; a bigger one through `Keyspace.scans` (see scan.py). NOVALUES
  exists from Redis 7.4 and Valkey 8; NOSCORES (Redis 8, Valkey 8) is refused by name.
- HTTL, HPTTL, HEXPIRETIME, HPEXPIRETIME key FIELDS n field... (Redis 7.4+, served only when
  the upstream has them): -2 no such field (or hidden), -1 no TTL, else the time left or the
  unix time, seconds rounded up as `httlGenericCommand` does.

The scan option parser lives here for HSCAN and is shared with SSCAN; MATCH patterns use
`scan.glob_matcher` (Redis's `stringmatchlen`, `replproxy.glob`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from itertools import chain

from replproxy.args import LLONG_MAX, option_word, parse_int
from replproxy.errors import OUT_OF_RANGE_LONG, SYNTAX
from replproxy.keyspace import notify as ksn
from replproxy.keyspace.reads import (
    EMPTY_SCAN,
    ReadContext,
    ReplyError,
    arg_long,
    lookup_hash,
    read_command,
)
from replproxy.keyspace.registry import ApplyError, write_command
from replproxy.keyspace.scan import glob_matcher, parse_cursor, scan_reply
from replproxy.keyspace.store import Keyspace
from replproxy.rdb.model import HashValue
from replproxy.resp import reply
from replproxy.resp.reply import format_long_double, round_long_double

Hash = dict[bytes, bytes]


def _hash(ks: Keyspace, db: int, key: bytes) -> Hash | None:
    value = ks.get(db, key)
    if value is None or type(value) is dict or type(value) is HashValue:
        return value  # type: ignore[return-value]
    raise ApplyError(f"WRONGTYPE: {key!r} holds a {type(value).__name__}, not a hash")


def _with_expires(ks: Keyspace, db: int, key: bytes, h: Hash) -> HashValue:
    """`h` as a HashValue stored at `key` (converted in place of the dict, order kept)."""
    if type(h) is HashValue:
        return h
    hv = HashValue(h)
    mark = ks.encodings[db].get(key)
    ks.set(db, key, hv, keepttl=True)
    if mark is not None:  # the same object on the master: its encoding stays
        ks.encodings[db][key] = mark
    return hv


# ---- encodings: listpack, listpackex (7.4+), hash table ----
#
# A hash is a listpack while it has at most 512 fields and no field or value longer than 64
# bytes (`hashTypeTryConversion` checks each argument before a write, the field count after
# it); past that it is a hash table for good (`Keyspace.encodings` remembers it). On Redis
# 7.4+ a listpack that gets a field TTL is a listpackex, kept ordered by TTL: the fields
# with one first, by expiry (a field whose TTL is set goes before the first field expiring
# no earlier), then the others; a field losing its TTL moves to the end. Its order is what
# HGETALL, HSCAN and HRANDFIELD answer, and the relay keeps the dict in it.


def _grown(ks: Keyspace, db: int, key: bytes, h: Hash, written: Iterable[bytes]) -> bool:
    """After a write of `written` (fields and values): whether `h` is (now) a hash table,
    recorded in `Keyspace.encodings` the first time."""
    marks = ks.encodings[db]
    if marks.get(key) == b"hashtable":
        return True
    if len(h) > HASH_MAX_LISTPACK_ENTRIES or any(len(x) > HASH_MAX_LISTPACK_VALUE for x in written):
        marks[key] = b"hashtable"
        return True
    return False


def _ordered_by_ttl(ks: Keyspace, db: int, key: bytes, h: Hash) -> bool:
    """Whether `h` is a listpackex the relay must keep in TTL order."""
    return (
        type(h) is HashValue and ks.dialect.listpackex and ks.encodings[db].get(key) != b"hashtable"
    )


def _lpex_place(hv: HashValue, field: bytes, when: int | None) -> None:
    """Move `field` where a listpackex puts it: by its new expiry `when`, or (None, its TTL
    gone) at the end. O(fields), a listpackex has at most 512."""
    value = hv.pop(field)
    items = list(hv.items())
    pos = len(items)
    if when is not None:
        exp = hv.expires
        for i, (f, _) in enumerate(items):
            t = exp.get(f)
            if t is None or t >= when:
                pos = i
                break
    items.insert(pos, (field, value))
    hv.clear()
    hv.update(items)


def _set_fields(h: Hash, argv: list[bytes], first: int, by_ttl: bool = False) -> None:
    """HSET's field/value pairs from argv[first:]; a field set this way loses its TTL
    (`hashTypeSet` without HASH_SET_KEEP_TTL, 7.4+; Valkey's `hashTypeSet(.., EXPIRY_NONE)`)
    and, in a listpackex (`by_ttl`), moves to the end."""
    fields = argv[first::2]
    h.update(zip(fields, argv[first + 1 :: 2]))
    if type(h) is HashValue and h.expires:
        pop = h.expires.pop
        for f in fields:
            if pop(f, None) is not None and by_ttl:
                _lpex_place(h, f, None)


@write_command("hset", "hmset")
def hset(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    h = _hash(ks, db, key)
    if h is None:
        h = dict(zip(argv[2::2], argv[3::2]))
        ks.set(db, key, h)
    else:
        _set_fields(h, argv, 2, _ordered_by_ttl(ks, db, key, h))
        ks.touched(db, key)
    _grown(ks, db, key, h, argv[2:])
    if ks.notify_flags:
        ks.notify(ksn.HASH, b"hset", db, key)


@write_command("hsetnx")
def hsetnx(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key, field = argv[1], argv[2]
    h = _hash(ks, db, key)
    if h is None:
        h = {field: argv[3]}
        ks.set(db, key, h)
    elif field not in h:
        h[field] = argv[3]
        ks.touched(db, key)
    else:
        _grown(ks, db, key, h, argv[2:4])  # `hashTypeTryConversion` runs before the lookup
        return
    _grown(ks, db, key, h, argv[2:4])
    if ks.notify_flags:
        ks.notify(ksn.HASH, b"hset", db, key)


@write_command("hdel")
def hdel(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    h = _hash(ks, db, key)
    if h is None:
        return
    expires = h.expires if type(h) is HashValue else None
    n = len(h)
    for f in argv[2:]:
        if h.pop(f, None) is not None and expires:
            expires.pop(f, None)
    if h:
        ks.touched(db, key)
        if len(h) != n and ks.notify_flags:
            ks.notify(ksn.HASH, b"hdel", db, key)
    else:
        ks.delete(db, key)
        if ks.notify_flags:
            ks.notify(ksn.HASH, b"hdel", db, key)
            ks.notify(ksn.GENERIC, b"del", db, key)


@write_command("hincrby")
def hincrby(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """HINCRBY key field increment; the field keeps its TTL (HASH_SET_KEEP_TTL)."""
    key, field = argv[1], argv[2]
    h = _hash(ks, db, key)
    if h is None:
        h = {field: str(parse_int(argv[3])).encode()}
        ks.set(db, key, h)
    else:
        old = h.get(field)
        h[field] = str((0 if old is None else parse_int(old)) + parse_int(argv[3])).encode()
        ks.touched(db, key)
    _grown(ks, db, key, h, (field,))
    if ks.notify_flags:
        ks.notify(ksn.HASH, b"hincrby", db, key)


def _long_double(raw: bytes) -> Fraction:
    """The exact value `string2ld` (strtold) reads; the master already refused NaN/inf."""
    text = raw.decode("ascii")
    if not text or text[0].isspace() or text[-1].isspace() or "_" in text:
        raise ApplyError(f"not a float: {raw!r}")
    try:
        d = Decimal(text)
    except InvalidOperation:
        try:
            return Fraction(float.fromhex(text))
        except ValueError:
            raise ApplyError(f"not a float: {raw!r}") from None
    if not d.is_finite():
        raise ApplyError(f"not a finite float: {raw!r}")
    return Fraction(d)


@write_command("hincrbyfloat")
def hincrbyfloat(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """Only if a master sends it verbatim (every version rewrites it to HSET/HSETEX): the
    sum in x87 long double, printed by `ld2string(LD_STR_HUMAN)`; the TTL is kept."""
    key, field = argv[1], argv[2]
    h = _hash(ks, db, key)
    old = None if h is None else h.get(field)
    a = round_long_double(_long_double(old)) if old is not None else 0
    total = round_long_double(a + round_long_double(_long_double(argv[3])))
    if isinstance(total, float):
        raise ApplyError(f"HINCRBYFLOAT on {key!r} overflows")
    new = format_long_double(total)
    if h is None:
        h = {field: new}
        ks.set(db, key, h)
    else:
        h[field] = new
        ks.touched(db, key)
    _grown(ks, db, key, h, (field,))
    if ks.notify_flags:
        ks.notify(ksn.HASH, b"hincrbyfloat", db, key)


# ---- field TTLs (Redis 7.4+, Valkey 9) ----

_NX, _XX, _GT, _LT = 1, 2, 4, 8
_CONDITIONS = {b"nx": _NX, b"xx": _XX, b"gt": _GT, b"lt": _LT}


def _fields_at(argv: list[bytes], i: int) -> list[bytes]:
    """argv[i] is `FIELDS`, then numfields and exactly that many fields."""
    if argv[i].lower() != b"fields":
        raise ApplyError(f"{argv[0]!r}: FIELDS expected at argument {i}")
    fields = argv[i + 2 :]
    if parse_int(argv[i + 1]) != len(fields):
        raise ApplyError(f"{argv[0]!r}: numfields does not match")
    return fields


def _condition_met(cond: int, current: int | None, when: int) -> bool:
    """`hashTypeSetExpiryListpack`/`hashTypeSetExpiryHT` (Redis 7.4) and Valkey's
    `hashTypeSetExpire`: no TTL counts as infinite, so XX and GT fail and LT passes."""
    if current is None:
        return not cond & (_XX | _GT)
    if cond & _NX:
        return False
    if cond & _GT and when <= current:
        return False
    return not (cond & _LT and when >= current)


def _expire_fields(ks: Keyspace, db: int, argv: list[bytes], scale: int, relative: bool) -> None:
    """H[P]EXPIRE[AT] key time [NX|XX|GT|LT] FIELDS numfields field...

    What arrives is HPEXPIREAT (`hexpireGenericCommand` rewrites the others to it with the
    absolute ms); the relative forms are computed with the relay's clock if ever sent.
    """
    key = argv[1]
    when = parse_int(argv[2]) * scale
    if relative:
        when += ks.now_ms()
    i, cond = 3, 0
    while argv[i].lower() in _CONDITIONS:  # Valkey parses the flags up to FIELDS
        cond |= _CONDITIONS[argv[i].lower()]
        i += 1
    fields = _fields_at(argv, i)
    h = _hash(ks, db, key)
    if h is None:
        return
    hv: HashValue | None = h if type(h) is HashValue else None
    changed = False
    for f in fields:
        if f not in h:
            continue
        current = hv.expires.get(f) if hv is not None else None
        if not _condition_met(cond, current, when):
            continue
        if hv is None:
            hv = _with_expires(ks, db, key, h)
        hv.expires[f] = when  # a past time is stored: the master sends the HDEL
        if _ordered_by_ttl(ks, db, key, hv):
            _lpex_place(hv, f, when)
        changed = True
    if changed:
        ks.touched(db, key)
        if ks.notify_flags:
            ks.notify(ksn.HASH, b"hexpire", db, key)


@write_command("hpexpireat")
def hpexpireat(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _expire_fields(ks, db, argv, 1, relative=False)


@write_command("hexpireat")
def hexpireat(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _expire_fields(ks, db, argv, 1000, relative=False)


@write_command("hpexpire")
def hpexpire(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _expire_fields(ks, db, argv, 1, relative=True)


@write_command("hexpire")
def hexpire(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _expire_fields(ks, db, argv, 1000, relative=True)


@write_command("hpersist")
def hpersist(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """HPERSIST key FIELDS numfields field...: drop the listed fields' TTLs.

    A 7.4 replica skips a field whose TTL has passed by its own clock; the master only
    persisted fields alive by ITS clock and sends HDEL for the others, so persisting every
    listed field with a TTL reaches the master's state without guessing clocks.
    """
    fields = _fields_at(argv, 2)
    key = argv[1]
    h = _hash(ks, db, key)
    if type(h) is not HashValue or not h.expires:
        return
    pop = h.expires.pop
    by_ttl = _ordered_by_ttl(ks, db, key, h)
    changed = False
    for f in fields:
        if pop(f, None) is not None:
            changed = True
            if by_ttl:
                _lpex_place(h, f, None)
    if changed:
        ks.touched(db, key)
        if ks.notify_flags:
            ks.notify(ksn.HASH, b"hpersist", db, key)


_TTL_OPTIONS = {b"ex": 1000, b"px": 1, b"exat": 1000, b"pxat": 1}


@write_command("hsetex")
def hsetex(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """HSETEX key [NX|XX] [FNX|FXX] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL] FIELDS n f v ...

    Arrives as `hsetex k [FNX|FXX] PXAT <ms> FIELDS ...` or with KEEPTTL (what 8.x makes of
    HINCRBYFLOAT) or with no TTL option (Redis `hsetexCommand`; Valkey also strips the
    conditions). Key-level NX/XX (Valkey) and field-level FNX/FXX are re-checked, treating
    every stored field as present, as the master client sees them on a replica.
    """
    key = argv[1]
    nx = xx = fnx = fxx = keepttl = False
    when: int | None = None
    i = 2
    while True:
        opt = argv[i].lower()
        if opt == b"fields":
            break
        if opt in _TTL_OPTIONS:
            when = parse_int(argv[i + 1]) * _TTL_OPTIONS[opt]
            if opt in (b"ex", b"px"):
                when += ks.now_ms()
            i += 2
            continue
        if opt == b"keepttl":
            keepttl = True
        elif opt == b"fnx":
            fnx = True
        elif opt == b"fxx":
            fxx = True
        elif opt == b"nx":
            nx = True
        elif opt == b"xx":
            xx = True
        else:
            raise ApplyError(f"HSETEX option {argv[i]!r}")
        i += 1
    n = parse_int(argv[i + 1])
    first = i + 2
    if len(argv) - first != 2 * n:
        raise ApplyError("HSETEX: numfields does not match")
    fields = argv[first::2]
    h = _hash(ks, db, key)
    if (nx and h is not None) or (xx and h is None):
        return
    if fxx and (h is None or any(f not in h for f in fields)):
        return
    if fnx and h is not None and any(f in h for f in fields):
        return
    if h is None:
        h = {} if when is None else HashValue()
        ks.set(db, key, h)
    else:
        ks.touched(db, key)
    if when is not None:
        h = hv = _with_expires(ks, db, key, h)
        hv.update(zip(fields, argv[first + 1 :: 2]))
        by_ttl = _ordered_by_ttl(ks, db, key, hv)
        for f in fields:
            hv.expires[f] = when  # a past time is stored: the master sends HDELs instead
            if by_ttl:
                _lpex_place(hv, f, when)
    elif keepttl:
        h.update(zip(fields, argv[first + 1 :: 2]))
    else:
        _set_fields(h, argv, first, _ordered_by_ttl(ks, db, key, h))
    _grown(ks, db, key, h, argv[first:])
    if ks.notify_flags:
        ks.notify(ksn.HASH, b"hset", db, key)
    if when is not None and ks.notify_flags:
        ks.notify(ksn.HASH, b"hexpire", db, key)


# ---- reads ----

# A negative count makes Redis stream |count| random picks until its output buffer limit
# closes the client; replproxy builds a reply in memory, so it refuses absurd ones.
MAX_RANDOM_REPLY = 1 << 24
_TOO_MANY = b"ERR replproxy refuses to build a reply of more than %d random elements" % (
    MAX_RANDOM_REPLY
)

# The master's hash-max-listpack-entries / -value (defaults: the relay cannot read its config).
HASH_MAX_LISTPACK_ENTRIES = 512
HASH_MAX_LISTPACK_VALUE = 64


def get_random_count(c: ReadContext, raw: bytes) -> int:
    """The count of SRANDMEMBER / HRANDFIELD: -LONG_MAX..LONG_MAX (any long before 7.0)."""
    n = arg_long(raw)
    if n < -LLONG_MAX and c.ks.dialect.random_count_range_check:
        raise ReplyError(OUT_OF_RANGE_LONG)
    return n


def check_random_reply_size(n: int) -> None:
    if n > MAX_RANDOM_REPLY:
        raise ReplyError(_TOO_MANY)


def _hidden(h: Hash, now: int) -> set[bytes] | None:
    """The fields of `h` whose TTL has passed (`hashTypeIsExpired`: expire < now), or None."""
    if type(h) is not HashValue or not h.expires:
        return None
    dead = {f for f, t in h.expires.items() if t < now}
    return dead or None


def _live(h: Hash, now: int) -> Hash:
    """`h` without its hidden fields (`h` itself when none is hidden)."""
    dead = _hidden(h, now)
    if dead is None:
        return h
    return {f: v for f, v in h.items() if f not in dead}


def _field_value(h: Hash, field: bytes, now: int) -> bytes | None:
    v = h.get(field)
    if v is not None and type(h) is HashValue:
        t = h.expires.get(field)
        if t is not None and t < now:
            return None
    return v


def is_listpack_hash(h: Hash) -> bool:
    """Whether the master keeps `h` as a listpack (by size; a master never converts a
    hashtable back, so a hash that shrank is guessed wrong, as any replica would)."""
    if len(h) > HASH_MAX_LISTPACK_ENTRIES:
        return False
    lim = HASH_MAX_LISTPACK_VALUE
    return all(len(f) <= lim and len(v) <= lim for f, v in h.items())


@read_command("hget")
def hget(c: ReadContext, argv: list[bytes]) -> bytes:
    h = lookup_hash(c, argv[1])
    v = None if h is None else _field_value(h, argv[2], c.now)
    return reply.null(c.proto) if v is None else b"$%d\r\n%b\r\n" % (len(v), v)


@read_command("hmget")
def hmget(c: ReadContext, argv: list[bytes]) -> bytes:
    h = lookup_hash(c, argv[1])
    if h is None:
        return reply.bulk_array([None] * (len(argv) - 2), c.proto)
    if type(h) is HashValue and h.expires:
        now = c.now
        return reply.bulk_array([_field_value(h, f, now) for f in argv[2:]], c.proto)
    get = h.get
    return reply.bulk_array([get(f) for f in argv[2:]], c.proto)


@read_command("hgetall")
def hgetall(c: ReadContext, argv: list[bytes]) -> bytes:
    h = lookup_hash(c, argv[1])
    if h is None:
        return reply.map_len(0, c.proto)
    if type(h) is HashValue:
        h = _live(h, c.now)
    return reply.bulk_map(list(chain.from_iterable(h.items())), c.proto)


@read_command("hkeys")
def hkeys(c: ReadContext, argv: list[bytes]) -> bytes:
    h = lookup_hash(c, argv[1])
    if h is None:
        return reply.EMPTY_ARRAY
    if type(h) is HashValue:
        h = _live(h, c.now)
    return reply.bulk_array(list(h))


@read_command("hvals")
def hvals(c: ReadContext, argv: list[bytes]) -> bytes:
    h = lookup_hash(c, argv[1])
    if h is None:
        return reply.EMPTY_ARRAY
    if type(h) is HashValue:
        h = _live(h, c.now)
    return reply.bulk_array(list(h.values()))


@read_command("hlen")
def hlen(c: ReadContext, argv: list[bytes]) -> bytes:
    h = lookup_hash(c, argv[1])
    return b":%d\r\n" % (0 if h is None else len(h))  # hidden fields count (notes 4)


@read_command("hexists")
def hexists(c: ReadContext, argv: list[bytes]) -> bytes:
    h = lookup_hash(c, argv[1])
    found = h is not None and _field_value(h, argv[2], c.now) is not None
    return b":1\r\n" if found else b":0\r\n"


@read_command("hstrlen")
def hstrlen(c: ReadContext, argv: list[bytes]) -> bytes:
    h = lookup_hash(c, argv[1])
    v = None if h is None else _field_value(h, argv[2], c.now)
    return b":%d\r\n" % (0 if v is None else len(v))


@read_command("hrandfield")
def hrandfield(c: ReadContext, argv: list[bytes]) -> bytes:
    argc = len(argv)
    if argc < 3:
        h = lookup_hash(c, argv[1])
        if h is not None:
            h = _live(h, c.now)
        if not h:
            return reply.null(c.proto)
        return reply.bulk(random.choice(list(h)))
    n = get_random_count(c, argv[2])
    if argc > 4 or (argc == 4 and option_word(argv[3]) != b"withvalues"):
        raise ReplyError(SYNTAX)
    withvalues = argc == 4
    if (
        withvalues
        and not -(LLONG_MAX // 2) <= n <= LLONG_MAX // 2
        and c.ks.dialect.random_count_range_check
    ):  # C truncates -LONG_MAX/2
        raise ReplyError(b"ERR value is out of range")
    h = lookup_hash(c, argv[1])
    if h is None:
        return reply.EMPTY_ARRAY
    h = _live(h, c.now)
    if n == 0 or not h:
        return reply.EMPTY_ARRAY
    if n < 0 or n == 1:
        # CASE 1: independent picks, repeats allowed
        check_random_reply_size(-n)
        picks: Iterable[tuple[bytes, bytes]] = random.choices(list(h.items()), k=abs(n))
    elif n >= len(h):
        picks = h.items()  # CASE 2: the whole hash, in its order
    else:
        picks = random.sample(list(h.items()), n)
    if not withvalues:
        return reply.bulk_array([f for f, _ in picks])
    if c.proto == 2:
        return reply.bulk_array(list(chain.from_iterable(picks)))
    pairs = [b"*2\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(f), f, len(v), v) for f, v in picks]
    return b"*%d\r\n%b" % (len(pairs), b"".join(pairs))


# ---- HSCAN / SSCAN ----


def parse_scan_options(
    c: ReadContext,
    argv: list[bytes],
    is_hash: bool,
) -> tuple[int, Callable[[bytes], object] | None, bool]:
    """`scanGenericCommand`'s option loop for HSCAN (`is_hash`) and SSCAN, from argv[3]:
    (count, the MATCH predicate or None when everything matches, novalues)."""
    count = 10
    pattern: bytes | None = None
    novalues = False
    argc = len(argv)
    i = 3
    known: tuple[bool, bool] | None = None
    while i < argc:
        opt = option_word(argv[i])
        more = argc - i
        if opt == b"count" and more >= 2:
            count = arg_long(argv[i + 1])
            if count < 1:
                raise ReplyError(SYNTAX)
            i += 2
        elif opt == b"match" and more >= 2:
            pattern = argv[i + 1]
            i += 2
        elif opt in (b"novalues", b"noscores"):
            if known is None:
                known = (c.ks.dialect.scan_novalues, c.ks.dialect.scan_noscores)
            if opt == b"novalues" and known[0]:
                if not is_hash:
                    raise ReplyError(b"ERR NOVALUES option can only be used in HSCAN")
                novalues = True
            elif opt == b"noscores" and known[1]:
                raise ReplyError(b"ERR NOSCORES option can only be used in ZSCAN")
            else:
                raise ReplyError(SYNTAX)
            i += 1
        else:
            raise ReplyError(SYNTAX)
    # `use_pattern` is off for exactly "*": `glob_matcher` gives None for it.
    return count, glob_matcher(pattern, c.ks) if pattern is not None else None, novalues


@read_command("hscan")
def hscan(c: ReadContext, argv: list[bytes]) -> bytes:
    cursor = parse_cursor(argv[2], c.ks)
    h = lookup_hash(c, argv[1])
    if h is None:
        return EMPTY_SCAN
    count, match, novalues = parse_scan_options(c, argv, is_hash=True)
    now = c.now
    out: list[bytes] = []
    if is_listpack_hash(h):
        fields: Iterable[bytes] = h
        cursor = 0
    else:
        hv = h
        cursor, fields = c.ks.scans.step(cursor, lambda: list(hv), count, ("hscan", c.db, argv[1]))
    for f in fields:
        v = _field_value(h, f, now)  # None: deleted since the snapshot, or hidden
        if v is None or (match is not None and not match(f)):
            continue
        out.append(f)
        if not novalues:
            out.append(v)
    return scan_reply(cursor, out)


# ---- HTTL, HPTTL, HEXPIRETIME, HPEXPIRETIME (Redis 7.4+) ----


def _httl(c: ReadContext, argv: list[bytes], relative: bool, seconds: bool) -> bytes:
    """`httlGenericCommand` (7.4): the type is checked first, then FIELDS, numfields (1..)
    and that it matches the arguments left."""
    h = lookup_hash(c, argv[1])
    if option_word(argv[2]) != b"fields":
        raise ReplyError(b"ERR Mandatory argument FIELDS is missing or not at the right position")
    msg = b"ERR Number of fields must be a positive integer"
    n = arg_long(argv[3], msg)
    if n < 1:
        raise ReplyError(msg)
    if n != len(argv) - 4:
        raise ReplyError(b"ERR The `numfields` parameter must match the number of arguments")
    now = c.now
    base = now if relative else 0
    expires = h.expires if type(h) is HashValue else None
    out = []
    for f in argv[4:]:
        if h is None or f not in h:
            out.append(-2)
            continue
        t = expires.get(f) if expires else None
        if t is None:
            out.append(-1)
        elif t < now:
            out.append(-2)
        elif seconds:
            out.append((t + 999 - base) // 1000)
        else:
            out.append(t - base)
    return b"*%d\r\n%b" % (len(out), b"".join([b":%d\r\n" % x for x in out]))


@read_command("httl")
def httl(c: ReadContext, argv: list[bytes]) -> bytes:
    return _httl(c, argv, relative=True, seconds=True)


@read_command("hpttl")
def hpttl(c: ReadContext, argv: list[bytes]) -> bytes:
    return _httl(c, argv, relative=True, seconds=False)


@read_command("hexpiretime")
def hexpiretime(c: ReadContext, argv: list[bytes]) -> bytes:
    return _httl(c, argv, relative=False, seconds=True)


@read_command("hpexpiretime")
def hpexpiretime(c: ReadContext, argv: list[bytes]) -> bytes:
    return _httl(c, argv, relative=False, seconds=False)
