"""Strings: the master's string writes, applied to `bytes` values.

This module owns the appliers of the string commands a master propagates (`t_string.c`); it
touches no other type (bit commands are `t_bitmap`, HyperLogLog `t_hll`). Redis's string
encodings (int, embstr, raw) only change memory layout: a value is always its bytes here,
and a number is stored as the decimal text `INCR` would print.

What arrives (read from `src/t_string.c`, 5.0 to 8.x, and Valkey 8.1):

- 7.x/8.x and Valkey: `SET k v [NX|XX] [KEEPTTL]` verbatim (minus `GET`); any expiry is
  rewritten to `SET k v PXAT <abs-ms>` (conditions dropped, the master already checked them);
  `SETEX`/`PSETEX`/`GETSET` -> `SET`; `GETEX` -> `PEXPIREAT`/`PERSIST`/`DEL`; `GETDEL` ->
  `DEL`; `INCRBYFLOAT` -> `SET k <result> KEEPTTL`. Valkey 8.1 sends `SET k v IFEQ old`
  verbatim when it has no expiry (the replica re-checks the condition).
- 6.2: as 7.x except that `SET ... EX|PX` (and `SETEX`/`PSETEX`) arrive as `SET k v PX <ms>`,
  RELATIVE to the moment the replica applies it; `EXAT|PXAT` as `SET k v PXAT <abs-ms>`.
- 5.0/6.0: `SET k v [EX s|PX ms] [NX|XX] [KEEPTTL]` (KEEPTTL from 6.0), `SETEX`, `PSETEX`
  and `GETSET` arrive verbatim, with relative times; 5.0 sends `INCRBYFLOAT` as `SET k v`
  (no KEEPTTL: a real 5.0 replica loses the TTL the master keeps, and so does this one).
- Verbatim everywhere: `SETNX`, `MSET`, `MSETNX`, `APPEND`, `SETRANGE`, `INCR`, `DECR`,
  `INCRBY`, `DECRBY`.

`GETEX`, `GETDEL` and `INCRBYFLOAT` never arrive from any released master; they are applied
anyway (as a replica would run them) so an unusual master does not leave keys unsupported.
`GET`, `STRLEN`, `GETRANGE`, `LCS`/`STRALGO` are reads and are not registered.

Like a replica, nothing here checks expiry; keys are created and replaced with `ks.set`
(dropping the TTL unless Redis keeps it: `KEEPTTL`, and the in-place commands `APPEND`,
`SETRANGE`, `INCR*`, which use `dbOverwrite`/`dbAdd` in Redis and so keep it).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

from replproxy.keyspace import ApplyError, Keyspace, write_command
from replproxy.keyspace.util import LLONG_MAX, LLONG_MIN, parse_int
from replproxy.resp.reply import format_long_double, round_long_double


def _string(ks: Keyspace, db: int, key: bytes) -> bytes | None:
    value = ks.get(db, key)
    if value is None or type(value) is bytes:
        return value
    raise ApplyError(f"WRONGTYPE: {key!r} holds a {type(value).__name__}, not a string")


# ---- SET and its relatives ----


@write_command("set")
def set_(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    n = len(argv)
    if n == 3:  # the common case: no option
        ks.set(db, argv[1], argv[2])
    elif n == 5 and argv[3] == b"PXAT":  # every expiry from a 7.x+ master
        when = parse_int(argv[4])
        ks.set(db, argv[1], argv[2])
        ks.set_expire(db, argv[1], when)
    else:
        _set_with_options(ks, db, argv)


def _set_with_options(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """SET key value [NX|XX|IFEQ v|IFNE v] [GET] [KEEPTTL|EX s|PX ms|EXAT s|PXAT ms].

    The conditions are re-checked, as a replica running `setGenericCommand` does; on a
    consistent stream they hold, since the master propagates only a SET it performed.
    """
    key, value = argv[1], argv[2]
    nx = xx = keepttl = False
    when: int | None = None
    ifeq: bytes | None = None
    ifne: bytes | None = None
    j, n = 3, len(argv)
    while j < n:
        opt = argv[j].upper()
        if opt == b"NX":
            nx = True
        elif opt == b"XX":
            xx = True
        elif opt == b"GET":  # 6.2 drops it before propagating; an old one changes nothing
            pass
        elif opt == b"KEEPTTL":
            keepttl = True
        elif opt in (b"EX", b"PX", b"EXAT", b"PXAT") and j + 1 < n:
            when = _expire_time(ks, opt, parse_int(argv[j + 1]))
            j += 1
        elif opt == b"IFEQ" and j + 1 < n:
            ifeq = argv[j + 1]
            j += 1
        elif opt == b"IFNE" and j + 1 < n:
            ifne = argv[j + 1]
            j += 1
        else:
            # IFDEQ/IFDNE (Redis 8.4) compare an XXH3 digest this project cannot compute.
            raise ApplyError(f"SET option {argv[j]!r} is not supported")
        j += 1
    if nx or xx or ifeq is not None or ifne is not None:
        current = _string(ks, db, key) if ifeq is not None or ifne is not None else ks.get(db, key)
        if (nx and current is not None) or (xx and current is None):
            return
        # Valkey 8.1 IFEQ: set only over an equal string (a missing key is not created);
        # Redis 8.4 IFNE: set unless the current string is equal (a missing key is created).
        if ifeq is not None and current != ifeq:
            return
        if ifne is not None and current == ifne:
            return
    ks.set(db, key, value, keepttl=keepttl)
    if when is not None:
        ks.set_expire(db, key, when)


def _expire_time(ks: Keyspace, unit: bytes, n: int) -> int:
    """Absolute ms of an `EX|PX|EXAT|PXAT n` option; relative forms count from now, as the
    replica of a 5.x/6.x master computes them (`setGenericCommand`: `when += mstime()`)."""
    if unit == b"PXAT":
        return n
    if unit == b"EXAT":
        return n * 1000
    if unit == b"PX":
        return ks.now_ms() + n
    return ks.now_ms() + n * 1000


@write_command("setnx")
def setnx(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    if ks.get(db, argv[1]) is None:
        ks.set(db, argv[1], argv[2])


@write_command("setex")
def setex(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """SETEX key seconds value (5.x/6.0 only; relative)."""
    when = ks.now_ms() + parse_int(argv[2]) * 1000
    ks.set(db, argv[1], argv[3])
    ks.set_expire(db, argv[1], when)


@write_command("psetex")
def psetex(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """PSETEX key milliseconds value (5.x/6.0 only; relative)."""
    when = ks.now_ms() + parse_int(argv[2])
    ks.set(db, argv[1], argv[3])
    ks.set_expire(db, argv[1], when)


@write_command("getset")
def getset(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """GETSET key value (5.x/6.0; `setKey` drops the TTL)."""
    _string(ks, db, argv[1])
    ks.set(db, argv[1], argv[2])


@write_command("getdel")
def getdel(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _string(ks, db, argv[1])
    ks.delete(db, argv[1])


@write_command("getex")
def getex(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]: as a replica would run it (no master
    propagates it: 6.2+ rewrite it to PEXPIRE[AT]/PERSIST/DEL)."""
    key = argv[1]
    if _string(ks, db, key) is None:
        return
    if len(argv) == 3 and argv[2].upper() == b"PERSIST":
        ks.persist(db, key)
    elif len(argv) == 4:
        unit = argv[2].upper()
        if unit not in (b"EX", b"PX", b"EXAT", b"PXAT"):
            raise ApplyError(f"GETEX option {argv[2]!r} is not supported")
        ks.set_expire(db, key, _expire_time(ks, unit, parse_int(argv[3])))
    elif len(argv) != 2:
        raise ApplyError("GETEX with unexpected arguments")


@write_command("mset", keys=(1, -1, 2))
def mset(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    if len(argv) % 2 == 0:
        raise ApplyError("MSET with an odd number of arguments")
    for i in range(1, len(argv), 2):
        ks.set(db, argv[i], argv[i + 1])


@write_command("msetnx", keys=(1, -1, 2))
def msetnx(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    if len(argv) % 2 == 0:
        raise ApplyError("MSETNX with an odd number of arguments")
    dbd = ks.dbs[db]
    if any(argv[i] in dbd for i in range(1, len(argv), 2)):
        return
    for i in range(1, len(argv), 2):
        ks.set(db, argv[i], argv[i + 1])


# ---- in-place edits: the TTL stays ----


@write_command("append")
def append(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """APPEND key value; a missing key is created, even with an empty value (`dbAdd`)."""
    current = _string(ks, db, argv[1])
    ks.set(db, argv[1], argv[2] if current is None else current + argv[2], keepttl=True)


@write_command("setrange")
def setrange(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """SETRANGE key offset value: zero-padded up to `offset`; an empty value changes
    nothing and creates no key. The 512 MB limit is the master's to check (a replica skips
    `checkStringLength` for its master since 7.0, whose limit is `proto-max-bulk-len`)."""
    key, value = argv[1], argv[3]
    offset = parse_int(argv[2])
    if offset < 0:
        raise ApplyError("SETRANGE with a negative offset")
    current = _string(ks, db, key)
    if not value:
        return
    if current is None:
        ks.set(db, key, bytes(offset) + value)
        return
    end = offset + len(value)
    if offset > len(current):
        new = b"".join((current, bytes(offset - len(current)), value))
    else:
        mv = memoryview(current)
        new = b"".join((mv[:offset], value, mv[end:]))
    ks.set(db, key, new, keepttl=True)


def _incr(ks: Keyspace, db: int, key: bytes, by: int) -> None:
    current = _string(ks, db, key)
    value = by if current is None else parse_int(current) + by
    if not LLONG_MIN <= value <= LLONG_MAX:
        raise ApplyError("increment or decrement would overflow")
    ks.set(db, key, b"%d" % value, keepttl=True)


@write_command("incr")
def incr(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _incr(ks, db, argv[1], 1)


@write_command("decr")
def decr(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _incr(ks, db, argv[1], -1)


@write_command("incrby")
def incrby(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _incr(ks, db, argv[1], parse_int(argv[2]))


@write_command("decrby")
def decrby(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    by = parse_int(argv[2])
    if by == LLONG_MIN:  # decrbyCommand refuses it: -LLONG_MIN does not fit
        raise ApplyError("decrement would overflow")
    _incr(ks, db, argv[1], -by)


@write_command("incrbyfloat")
def incrbyfloat(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """INCRBYFLOAT key increment, computed as `incrbyfloatCommand` does: both operands read
    with `strtold` (x87 80-bit long double), added in long double, printed `%.17Lf` with
    trailing zeros cut. No released master propagates it (they send the resulting SET)."""
    key = argv[1]
    current = _string(ks, db, key)
    base = Fraction(0) if current is None else _long_double(current)
    result = round_long_double(base + _long_double(argv[2]))
    if not isinstance(result, Fraction):  # inf: Redis refuses "NaN or Infinity"
        raise ApplyError("increment would produce NaN or Infinity")
    ks.set(db, key, format_long_double(result), keepttl=True)


# Decimal exponents beyond these overflow or underflow a long double (strtold sets ERANGE,
# `string2ld` refuses); checking first keeps a hostile `1e999999999` from becoming a huge int.
_LD_MAX_DECIMAL_EXP = 4940
_LD_MIN_DECIMAL_EXP = -4960


def _long_double(raw: bytes) -> Fraction:
    """The long double `string2ld` reads from `raw` (exact value, rounded to 64-bit
    significand); refuses what it refuses: blanks, NaN, infinities, out-of-range values."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ApplyError(f"not a float: {raw!r}") from None
    bare = text.lstrip("+-").lower()
    if (
        not text
        or text[0].isspace()
        or text[-1].isspace()
        or "_" in text
        or bare.startswith(("inf", "nan", "snan"))
    ):
        raise ApplyError(f"not a float: {raw!r}")
    try:
        if bare.startswith("0x"):
            exact = Fraction(float.fromhex(text))
        else:
            d = Decimal(text)
            if d and not _LD_MIN_DECIMAL_EXP < d.adjusted() < _LD_MAX_DECIMAL_EXP:
                raise ApplyError(f"float out of range: {raw!r}")
            exact = Fraction(d)
    except (ValueError, InvalidOperation):
        raise ApplyError(f"not a float: {raw!r}") from None
    value = round_long_double(exact)
    if not isinstance(value, Fraction):
        raise ApplyError(f"float out of range: {raw!r}")
    return value
