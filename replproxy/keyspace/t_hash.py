"""Hashes: the master's hash writes, applied to `dict[bytes, bytes]` / `HashValue` values.

This module owns the appliers of the hash commands a master propagates, including the hash
field TTLs of Redis 7.4+/8.x and Valkey 9; it touches no other type. A hash without field
TTLs is a plain `dict`; the first field TTL turns it into a `HashValue` (a dict with an
`expires` map field -> absolute unix ms), which then stays one even when its last field TTL
goes (an empty `expires` compares equal to a dict). Insertion order is kept as listpack
encoding keeps it. A hash that becomes empty is deleted.

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

Like a replica, nothing here looks at the clock to decide that a field has expired: a field
with a past TTL stays until the master's HDEL (`checkAlreadyExpired` is false on a replica,
and `hashTypeGetValue` treats every field as alive for the master client).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

from replproxy.keyspace import ApplyError, Keyspace, write_command
from replproxy.keyspace.util import parse_int
from replproxy.rdb.model import HashValue
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
    ks.set(db, key, hv, keepttl=True)
    return hv


def _set_fields(h: Hash, argv: list[bytes], first: int) -> None:
    """HSET's field/value pairs from argv[first:]; a field set this way loses its TTL
    (`hashTypeSet` without HASH_SET_KEEP_TTL, 7.4+; Valkey's `hashTypeSet(.., EXPIRY_NONE)`)."""
    fields = argv[first::2]
    h.update(zip(fields, argv[first + 1 :: 2]))
    if type(h) is HashValue and h.expires:
        pop = h.expires.pop
        for f in fields:
            pop(f, None)


@write_command("hset", "hmset")
def hset(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    h = _hash(ks, db, key)
    if h is None:
        ks.set(db, key, dict(zip(argv[2::2], argv[3::2])))
    else:
        _set_fields(h, argv, 2)
        ks.touched(db, key)


@write_command("hsetnx")
def hsetnx(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key, field = argv[1], argv[2]
    h = _hash(ks, db, key)
    if h is None:
        ks.set(db, key, {field: argv[3]})
    elif field not in h:
        h[field] = argv[3]
        ks.touched(db, key)


@write_command("hdel")
def hdel(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    h = _hash(ks, db, key)
    if h is None:
        return
    expires = h.expires if type(h) is HashValue else None
    for f in argv[2:]:
        if h.pop(f, None) is not None and expires:
            expires.pop(f, None)
    if h:
        ks.touched(db, key)
    else:
        ks.delete(db, key)


@write_command("hincrby")
def hincrby(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """HINCRBY key field increment; the field keeps its TTL (HASH_SET_KEEP_TTL)."""
    key, field = argv[1], argv[2]
    h = _hash(ks, db, key)
    if h is None:
        ks.set(db, key, {field: str(parse_int(argv[3])).encode()})
        return
    old = h.get(field)
    h[field] = str((0 if old is None else parse_int(old)) + parse_int(argv[3])).encode()
    ks.touched(db, key)


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
        ks.set(db, key, {field: new})
    else:
        h[field] = new
        ks.touched(db, key)


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
        changed = True
    if changed:
        ks.touched(db, key)


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
    changed = False
    for f in fields:
        if pop(f, None) is not None:
            changed = True
    if changed:
        ks.touched(db, key)


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
        hv = _with_expires(ks, db, key, h)
        hv.update(zip(fields, argv[first + 1 :: 2]))
        for f in fields:
            hv.expires[f] = when  # a past time is stored: the master sends HDELs instead
    elif keepttl:
        h.update(zip(fields, argv[first + 1 :: 2]))
    else:
        _set_fields(h, argv, first)
