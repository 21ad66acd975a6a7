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
`GET`, `MGET`, `STRLEN`, `GETRANGE`/`SUBSTR` and `LCS` are reads, never propagated: they
are read commands below (with 6.x's `STRALGO LCS`, which 7.0 replaced by `LCS`).

Like a replica, nothing here checks expiry; keys are created and replaced with `ks.set`
(dropping the TTL unless Redis keeps it: `KEEPTTL`, and the in-place commands `APPEND`,
`SETRANGE`, `INCR*`, which use `dbOverwrite`/`dbAdd` in Redis and so keep it).

Read commands (`@read_command`, answered to the relay's clients as a replica does):

- `GET key`, `MGET key...`: the hottest commands of the server, kept to a dict lookup and
  one encoder call. MGET answers nil for a key of another type (not WRONGTYPE), as Redis.
- `GETRANGE`/`SUBSTR key start end`: both numbers are parsed before the key is looked up;
  a missing key is an empty string. Index rules follow the master: up to Redis 7.x and in
  Valkey 8.1 a negative end clamps to 0 (`GETRANGE k -10 -7` on "hello" is "h"); Redis 8.0
  (#12272) answers "" whenever the range falls entirely outside the string.
- `STRLEN key`.
- `LCS a b [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]` (7.0+): WRONGTYPE-like error first
  ("The specified keys must contain string values"), then options, then the
  `proto-max-bulk-len` (default 512 MB) limit on the C table `(len(a)+1)*(len(b)+1)*4`.
  The C table of 32-bit lengths is not built: its rows are kept as one bit per cell (the
  row's increments), computed with Hyyrö's bit-parallel recurrence on Python integers, and
  the walk back makes the C traceback's choices exactly (on a mismatch it moves left iff
  LCS(i, j-1) == LCS(i, j)), so the string and the IDX ranges are the master's. LIMIT: the
  first string drives a Python-level loop (one iteration per byte); a multi-megabyte first
  key against a short second one is slow (seconds), where the master's C loop is fast.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

from replproxy.args import LLONG_MAX, LLONG_MIN, option_word, parse_int
from replproxy.errors import SYNTAX
from replproxy.keyspace import notify as ksn
from replproxy.keyspace.reads import (
    PROTO_MAX_BULK_LEN,
    WRONGTYPE,
    ReadContext,
    ReplyError,
    arg_long,
    lookup,
    lookup_string,
    read_command,
    unsupported_key_error,
)
from replproxy.keyspace.registry import ApplyError, write_command
from replproxy.keyspace.store import Keyspace
from replproxy.resp import reply
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
        if ks.notify_flags:
            ks.notify_overwrite(db, argv[1], argv[2])
            ks.set(db, argv[1], argv[2], fresh=True)
            ks.notify(ksn.STRING, b"set", db, argv[1])
        else:
            ks.set(db, argv[1], argv[2], fresh=True)
    elif n == 5 and argv[3] == b"PXAT":  # every expiry from a 7.x+ master
        when = parse_int(argv[4])
        if ks.notify_flags:
            ks.notify_overwrite(db, argv[1], argv[2])
        ks.set(db, argv[1], argv[2], fresh=True)
        if ks.notify_flags:
            ks.notify(ksn.STRING, b"set", db, argv[1])
        ks.set_expire(db, argv[1], when)
        if ks.notify_flags:
            ks.notify(ksn.GENERIC, b"expire", db, argv[1])
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
    if ks.notify_flags:
        ks.notify_overwrite(db, key, value)
    ks.set(db, key, value, keepttl=keepttl, fresh=True)
    if ks.notify_flags:
        ks.notify(ksn.STRING, b"set", db, key)
    if when is not None:
        ks.set_expire(db, key, when)
        if ks.notify_flags:
            ks.notify(ksn.GENERIC, b"expire", db, key)


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
        ks.set(db, argv[1], argv[2], fresh=True)
        if ks.notify_flags:
            ks.notify(ksn.STRING, b"set", db, argv[1])


@write_command("setex")
def setex(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """SETEX key seconds value (5.x/6.0 only; relative)."""
    when = ks.now_ms() + parse_int(argv[2]) * 1000
    if ks.notify_flags:
        ks.notify_overwrite(db, argv[1], argv[3])
    ks.set(db, argv[1], argv[3], fresh=True)
    if ks.notify_flags:
        ks.notify(ksn.STRING, b"set", db, argv[1])
    ks.set_expire(db, argv[1], when)
    if ks.notify_flags:
        ks.notify(ksn.GENERIC, b"expire", db, argv[1])


@write_command("psetex")
def psetex(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """PSETEX key milliseconds value (5.x/6.0 only; relative)."""
    when = ks.now_ms() + parse_int(argv[2])
    if ks.notify_flags:
        ks.notify_overwrite(db, argv[1], argv[3])
    ks.set(db, argv[1], argv[3], fresh=True)
    if ks.notify_flags:
        ks.notify(ksn.STRING, b"set", db, argv[1])
    ks.set_expire(db, argv[1], when)
    if ks.notify_flags:
        ks.notify(ksn.GENERIC, b"expire", db, argv[1])


@write_command("getset")
def getset(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """GETSET key value (5.x/6.0; `setKey` drops the TTL)."""
    _string(ks, db, argv[1])
    if ks.notify_flags:
        ks.notify_overwrite(db, argv[1], argv[2])
    ks.set(db, argv[1], argv[2], fresh=True)
    if ks.notify_flags:
        ks.notify(ksn.STRING, b"set", db, argv[1])


@write_command("getdel")
def getdel(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _string(ks, db, argv[1])
    if ks.delete(db, argv[1], fresh=True) and ks.notify_flags:
        ks.notify(ksn.GENERIC, b"del", db, argv[1])


@write_command("getex")
def getex(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]: as a replica would run it (no master
    propagates it: 6.2+ rewrite it to PEXPIRE[AT]/PERSIST/DEL)."""
    key = argv[1]
    if _string(ks, db, key) is None:
        return
    if len(argv) == 3 and argv[2].upper() == b"PERSIST":
        if ks.persist(db, key) and ks.notify_flags:
            ks.notify(ksn.GENERIC, b"persist", db, key)
    elif len(argv) == 4:
        unit = argv[2].upper()
        if unit not in (b"EX", b"PX", b"EXAT", b"PXAT"):
            raise ApplyError(f"GETEX option {argv[2]!r} is not supported")
        ks.set_expire(db, key, _expire_time(ks, unit, parse_int(argv[3])))
        if ks.notify_flags:
            ks.notify(ksn.GENERIC, b"expire", db, key)
    elif len(argv) != 2:
        raise ApplyError("GETEX with unexpected arguments")


@write_command("mset", keys=(1, -1, 2))
def mset(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    if len(argv) % 2 == 0:
        raise ApplyError("MSET with an odd number of arguments")
    if ks.notify_flags:
        _mset_notifying(ks, db, argv)
        return
    ks.set_pairs(db, argv, 1)  # a later duplicate key wins, as in Redis


def _mset_notifying(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """MSET one key at a time with its events (`msetGenericCommand`): also what a merged run
    of SETs reports, key by key as the SETs would."""
    for i in range(1, len(argv), 2):
        key, value = argv[i], argv[i + 1]
        ks.notify_overwrite(db, key, value)
        ks.set(db, key, value, fresh=True)  # a whole value, as `set_pairs` (marks lifted)
        ks.notify(ksn.STRING, b"set", db, key)


@write_command("msetnx", keys=(1, -1, 2))
def msetnx(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    if len(argv) % 2 == 0:
        raise ApplyError("MSETNX with an odd number of arguments")
    dbd = ks.dbs[db]
    if any(argv[i] in dbd for i in range(1, len(argv), 2)):
        return
    if ks.notify_flags:
        _mset_notifying(ks, db, argv)
        return
    ks.set_pairs(db, argv, 1)


# ---- in-place edits: the TTL stays ----


@write_command("append")
def append(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """APPEND key value; a missing key is created, even with an empty value (`dbAdd`)."""
    current = _string(ks, db, argv[1])
    ks.set(db, argv[1], argv[2] if current is None else current + argv[2], keepttl=True)
    if current is not None:  # appended in place (a new key is tryObjectEncoding'd)
        ks.mark_raw(db, argv[1])
    if ks.notify_flags:
        ks.notify(ksn.STRING, b"append", db, argv[1])


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
        ks.mark_raw(db, key)
        if ks.notify_flags:
            ks.notify(ksn.STRING, b"setrange", db, key)
        return
    end = offset + len(value)
    if offset > len(current):
        new = b"".join((current, bytes(offset - len(current)), value))
    else:
        mv = memoryview(current)
        new = b"".join((mv[:offset], value, mv[end:]))
    ks.set(db, key, new, keepttl=True)
    ks.mark_raw(db, key)
    if ks.notify_flags:
        ks.notify(ksn.STRING, b"setrange", db, key)


def _incr(ks: Keyspace, db: int, key: bytes, by: int) -> None:
    current = _string(ks, db, key)
    value = by if current is None else parse_int(current) + by
    if not LLONG_MIN <= value <= LLONG_MAX:
        raise ApplyError("increment or decrement would overflow")
    ks.set(db, key, b"%d" % value, keepttl=True)
    if ks.notify_flags:
        ks.notify(ksn.STRING, b"incrby", db, key)


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
    if ks.notify_flags:
        ks.notify(ksn.STRING, b"incrbyfloat", db, key)


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


# ---- reads ----


@read_command("get")
def get(c: ReadContext, argv: list[bytes]) -> bytes:
    """`lookup`'s rules inlined (GET is the hottest command of all)."""
    ks = c.ks
    db = c.db
    key = argv[1]
    if ks.unsupported_keys and (db, key) in ks.unsupported_keys:
        raise ReplyError(unsupported_key_error(key))
    v = ks.dbs[db].get(key)
    if v is not None:
        expires = ks.expires[db]
        if expires:
            when = expires.get(key)
            if when is not None and when <= c.now and not c.sees_expired:
                v = None
    if type(v) is bytes:
        ks.stat_keyspace_hits += 1
        return b"$%d\r\n%b\r\n" % (len(v), v)
    if v is None:
        ks.stat_keyspace_misses += 1
        if ks.notify_flags & ksn.KEY_MISS:
            ks.notify(ksn.KEY_MISS, b"keymiss", db, key)
        return b"$-1\r\n" if c.proto == 2 else b"_\r\n"
    ks.stat_keyspace_hits += 1
    raise ReplyError(WRONGTYPE)


@read_command("mget")
def mget(c: ReadContext, argv: list[bytes]) -> bytes:
    """Nil for a missing, expired or non-string key. `lookup`'s rules, inlined: MGET of many
    keys is the one read whose per-key cost is the whole cost."""
    ks = c.ks
    db = c.db
    keys = argv[1:]
    if ks.unsupported_keys:
        for k in keys:
            if (db, k) in ks.unsupported_keys:
                raise ReplyError(unsupported_key_error(k))
    values = list(map(ks.dbs[db].get, keys))
    expires = ks.expires[db]
    if expires:
        now = 0 if c.sees_expired else c.now
        when = expires.get
        out = [
            v if type(v) is bytes and ((t := when(k)) is None or t > now) else None
            for k, v in zip(keys, values)
        ]
    else:
        out = [v if type(v) is bytes else None for v in values]
    # A key of another type was found (a hit, as `lookupKeyRead` counts it).
    misses = sum(1 for v, o in zip(values, out) if o is None and (v is None or type(v) is bytes))
    ks.stat_keyspace_misses += misses
    ks.stat_keyspace_hits += len(keys) - misses
    if ks.notify_flags & ksn.KEY_MISS:
        _keymiss(c, keys)
    return reply.bulk_array(out, c.proto)


def _keymiss(c: ReadContext, keys: list[bytes]) -> None:
    """MGET's `lookupKeyRead` of each key: `keymiss` for the missing and expired ones."""
    ks, db = c.ks, c.db
    dbd, expires = ks.dbs[db], ks.expires[db]
    for k in keys:
        when = expires.get(k)
        if k not in dbd or (when is not None and when <= c.now):
            ks.notify(ksn.KEY_MISS, b"keymiss", db, k)


_EMPTY_BULK = b"$0\r\n\r\n"


@read_command("getrange", "substr")
def getrange(c: ReadContext, argv: list[bytes]) -> bytes:
    start = arg_long(argv[2])
    end = arg_long(argv[3])
    v = lookup_string(c, argv[1])
    if v is None:
        return _EMPTY_BULK
    n = len(v)
    if start < 0 and end < 0 and start > end:
        return _EMPTY_BULK
    if start < 0:
        start += n
    if end < 0:
        end += n
    start = max(start, 0)
    end = min(max(end, 0), n - 1)
    if start > end or n == 0:
        return _EMPTY_BULK
    return reply.bulk(v[start : end + 1])


@read_command("strlen")
def strlen(c: ReadContext, argv: list[bytes]) -> bytes:
    v = lookup_string(c, argv[1])
    return b":%d\r\n" % (0 if v is None else len(v))


# ---- LCS ----

_UINT32_MAX = (1 << 32) - 1
_LCS_NOT_STRINGS = b"ERR The specified keys must contain string values"


def _lcs_keys(c: ReadContext, ka: bytes, kb: bytes) -> tuple[bytes, bytes]:
    """The strings at two keys, a missing key as an empty string; a key of another type is
    an error (LCS's keys, STRALGO LCS KEYS)."""
    a, b = lookup(c, ka), lookup(c, kb)
    if (a is not None and type(a) is not bytes) or (b is not None and type(b) is not bytes):
        raise ReplyError(_LCS_NOT_STRINGS)
    return a or b"", b or b""


@read_command("lcs")
def lcs(c: ReadContext, argv: list[bytes]) -> bytes:
    a, b = _lcs_keys(c, argv[1], argv[2])
    getlen = getidx = withmatchlen = False
    minmatchlen = 0
    j, argc = 3, len(argv)
    while j < argc:
        opt = option_word(argv[j])
        if opt == b"idx":
            getidx = True
        elif opt == b"len":
            getlen = True
        elif opt == b"withmatchlen":
            withmatchlen = True
        elif opt == b"minmatchlen" and j + 1 < argc:
            minmatchlen = max(arg_long(argv[j + 1]), 0)
            j += 1
        else:
            raise ReplyError(SYNTAX)
        j += 1
    if getlen and getidx:
        raise ReplyError(b"ERR If you want both the length and indexes, please just use IDX.")
    alen, blen = len(a), len(b)
    if alen >= _UINT32_MAX - 1 or blen >= _UINT32_MAX - 1:
        raise ReplyError(b"ERR String too long for LCS")
    if (alen + 1) * (blen + 1) * 4 > PROTO_MAX_BULK_LEN:
        raise ReplyError(
            b"ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
        )
    return _lcs_reply(c, a, b, getlen, getidx, withmatchlen, minmatchlen)


@read_command("stralgo")
def stralgo(c: ReadContext, argv: list[bytes]) -> bytes:
    """STRALGO LCS [IDX] [LEN] [MINMATCHLEN n] [WITHMATCHLEN] STRINGS a b | KEYS ka kb
    (Redis 6.0-6.2; 7.0 replaced it with LCS, and its table has no STRALGO): the options
    in any order, KEYS looked up where they appear (`stralgoLCS`)."""
    if option_word(argv[1]) != b"lcs":
        raise ReplyError(SYNTAX)
    a: bytes | None = None
    b = b""
    getlen = getidx = withmatchlen = False
    minmatchlen = 0
    j, argc = 2, len(argv)
    while j < argc:
        opt = option_word(argv[j])
        more = argc - 1 - j
        if opt == b"idx":
            getidx = True
        elif opt == b"len":
            getlen = True
        elif opt == b"withmatchlen":
            withmatchlen = True
        elif opt == b"minmatchlen" and more:
            minmatchlen = max(arg_long(argv[j + 1]), 0)
            j += 1
        elif opt in (b"strings", b"keys") and more > 1:
            if a is not None:
                raise ReplyError(b"ERR Either use STRINGS or KEYS")
            if opt == b"strings":
                a, b = argv[j + 1], argv[j + 2]
            else:
                a, b = _lcs_keys(c, argv[j + 1], argv[j + 2])
            j += 2
        else:
            raise ReplyError(SYNTAX)
        j += 1
    if a is None:
        raise ReplyError(b"ERR Please specify two strings: STRINGS or KEYS options are mandatory")
    if getlen and getidx:
        raise ReplyError(b"ERR If you want both the length and indexes, please just use IDX.")
    if len(a) >= _UINT32_MAX - 1 or len(b) >= _UINT32_MAX - 1:
        raise ReplyError(b"ERR String too long for LCS")
    return _lcs_reply(c, a, b, getlen, getidx, withmatchlen, minmatchlen)


def _lcs_reply(
    c: ReadContext,
    a: bytes,
    b: bytes,
    getlen: bool,
    getidx: bool,
    withmatchlen: bool,
    minmatchlen: int,
) -> bytes:
    """The LCS table, walk and reply shared by LCS (7.0+) and STRALGO LCS (6.x)."""
    rows, total, masks = _lcs_rows(a, b)
    if getlen and not getidx:
        return b":%d\r\n" % total
    text, ranges = _lcs_walk(a, b, rows, total, masks, minmatchlen if getidx else None)
    if not getidx:
        return reply.bulk(text)
    parts = [reply.map_len(2, c.proto), b"$7\r\nmatches\r\n*%d\r\n" % len(ranges)]
    for a0, a1, b0, b1 in ranges:
        if withmatchlen:
            parts.append(
                b"*3\r\n*2\r\n:%d\r\n:%d\r\n*2\r\n:%d\r\n:%d\r\n:%d\r\n"
                % (a0, a1, b0, b1, a1 - a0 + 1)
            )
        else:
            parts.append(b"*2\r\n*2\r\n:%d\r\n:%d\r\n*2\r\n:%d\r\n:%d\r\n" % (a0, a1, b0, b1))
    parts.append(b"$3\r\nlen\r\n:%d\r\n" % total)
    return b"".join(parts)


class _LcsRows:
    """Row i (0..len(a)) of the LCS table in difference form: bit k of `row(i)` is 0 iff
    LCS(a[:i], b[:k+1]) == LCS(a[:i], b[:k]) + 1. Stored as packed little-endian bytes."""

    __slots__ = ("data", "nbytes")

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.data = bytearray()

    def bit(self, i: int, k: int) -> int:
        return (self.data[i * self.nbytes + (k >> 3)] >> (k & 7)) & 1

    def row(self, i: int) -> int:
        n = self.nbytes
        return int.from_bytes(self.data[i * n : (i + 1) * n], "little")


def _char_masks(a: bytes, b: bytes) -> dict[int, int]:
    """For each byte value of `a` also in `b`, the integer whose bit k is set iff b[k] is
    that byte (the only masks the recurrence and the walk look up)."""
    masks: dict[int, int] = {}
    if len(b) <= 64:
        wanted = set(a)
        for k, ch in enumerate(b):
            if ch in wanted:
                masks[ch] = masks.get(ch, 0) | (1 << k)
        return masks
    rev = b[::-1]  # int(..., 2) reads the most significant digit first
    for ch in set(a).intersection(b):
        table = bytearray(b"0" * 256)
        table[ch] = 0x31  # "1"
        masks[ch] = int(rev.translate(table), 2)
    return masks


def _lcs_rows(a: bytes, b: bytes) -> tuple[_LcsRows, int, dict[int, int]]:
    """Every row of the table (Hyyrö's bit-parallel recurrence), LCS(a, b) and the masks of
    `_char_masks(a, b)`."""
    n = len(b)
    nbytes = (n + 7) >> 3
    rows = _LcsRows(nbytes)
    if n == 0:
        return rows, 0, {}
    full = (1 << n) - 1
    masks = _char_masks(a, b)
    v = full
    data = rows.data
    data += v.to_bytes(nbytes, "little")
    get = masks.get
    for ch in a:
        u = v & get(ch, 0)
        v = ((v + u) | (v - u)) & full
        data += v.to_bytes(nbytes, "little")
    return rows, n - v.bit_count(), masks


def _lcs_walk(
    a: bytes,
    b: bytes,
    rows: _LcsRows,
    total: int,
    masks: dict[int, int],
    minmatchlen: int | None,
) -> tuple[bytes, list[tuple[int, int, int, int]]]:
    """`lcsCommand`'s walk back from (len(a), len(b)): the LCS string and, when
    `minmatchlen` is not None, the IDX ranges it emits (a_start, a_end, b_start, b_end)."""
    alen = len(a)
    result = bytearray(total)
    ranges: list[tuple[int, int, int, int]] = []
    idx = total
    a_start = alen  # alen means "no range open"
    a_end = b_start = b_end = 0
    i, j = alen, len(b)
    while i > 0 and j > 0:
        emit = False
        ch = a[i - 1]
        if ch == b[j - 1]:
            result[idx - 1] = ch
            if a_start == alen:
                a_start = a_end = i - 1
                b_start = b_end = j - 1
            elif a_start == i and b_start == j:
                a_start -= 1
                b_start -= 1
            else:
                emit = True
            if a_start == 0 or b_start == 0:
                emit = True
            idx -= 1
            i -= 1
            j -= 1
        else:
            # lcs1 = LCS(i-1, j) > lcs2 = LCS(i, j-1) exactly when the row increases at j.
            if rows.bit(i, j - 1):
                # Left, and on along the row while neither a match nor an increase stops
                # the C loop: one big-integer scan instead of a step per column.
                j -= 1
                if j > 0 and b[j - 1] != ch and rows.bit(i, j - 1):
                    stops = (~rows.row(i) | masks.get(ch, 0)) & ((1 << j) - 1)
                    j = stops.bit_length()
            else:
                i -= 1
            if a_start != alen:
                emit = True
        if emit:
            if minmatchlen is not None and (minmatchlen == 0 or a_end - a_start + 1 >= minmatchlen):
                ranges.append((a_start, a_end, b_start, b_end))
            a_start = alen
    return bytes(result), ranges
