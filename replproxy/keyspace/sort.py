"""SORT: the `SORT ... STORE` applier (re-executed, the replica sorts again) and SORT_RO.

This module owns `sort.c`'s behaviour: BY/GET patterns over strings and hash fields, numeric
and ALPHA ordering with the ties and the partial sort (`pqsort`) the master's LIMIT leaves,
and the STORE of the result. It reads lists, sets, sorted sets, strings and hash fields and
writes only the STORE destination. ALPHA collates as C `strcoll` in the C/C.UTF-8 locales
(byte order up to the first NUL).
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from functools import partial
from typing import Any, NamedTuple, cast

from replproxy.args import c_string
from replproxy.errors import SYNTAX
from replproxy.keyspace import notify as ksn
from replproxy.keyspace.keys import tainted
from replproxy.keyspace.pqsort import pqsort
from replproxy.keyspace.reads import (
    NOT_INTEGER,
    WRONGTYPE,
    ReadContext,
    ReplyError,
    lookup,
    peek,
    read_command,
)
from replproxy.keyspace.registry import ApplyError, write_command
from replproxy.keyspace.store import Keyspace
from replproxy.keyspace.t_set import (
    iteration_order,
)
from replproxy.keyspace.t_zset import fast_float_prefix
from replproxy.keyspace.values import (
    ZSet,
    list_slice,
)
from replproxy.rdb.model import (
    HashValue,
    Value,
)
from replproxy.resp import reply
from replproxy.resp.request import string2ll

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


def strtod_score(raw: bytes, fast_float: bool = False) -> float | None:
    """The double `sortCommand` reads with strtod, or None where Redis flags a conversion
    error: trailing garbage, NaN, or ERANGE (an overflow to infinity, or an underflow: a
    subnormal or zero result that is not exact, as glibc reports it). Leading blanks are
    allowed, the text ends at a NUL, an empty string is 0. `fast_float` (Redis 8,
    `MasterDialect.fast_float_ranges`): no blanks, no hex, and an overflow or underflow is
    no error (the library reports it as EINVAL, and SORT checks only for ERANGE)."""
    text = c_string(raw)
    if fast_float:
        v, end = fast_float_prefix(text)
        return v if end == len(text) and v == v else None
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


def _sort_score(raw: bytes, fast_float: bool = False) -> float:
    """`strtod_score` for the applier: a score Redis refuses raises `ApplyError`."""
    v = strtod_score(raw, fast_float)
    if v is None:
        raise ApplyError(f"SORT score {raw!r} can't be converted into double")
    return v


def _read_score(raw: bytes, fast_float: bool = False) -> float:
    v = strtod_score(raw, fast_float)
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
    if isinstance(value, ZSet):
        value.listpack = False  # `sortCommandGeneric` converts it to a skiplist, for good
    get = ks.dbs[db].get
    score = partial(_sort_score, fast_float=ks.dialect.fast_float_ranges)
    picked = _sort_pick(value, get, a, store=True, score=score)
    result = picked
    if a.gets:
        result = []
        for elem in picked:
            for pattern in a.gets:
                got = _by_pattern(get, pattern, elem)
                result.append(b"" if got is None else got)
    if result:
        if ks.notify_flags:
            ks.notify_overwrite(db, storekey, result)
        ks.set(db, storekey, result, fresh=True)
        if ks.notify_flags:
            ks.notify(ksn.LIST, b"sortstore", db, storekey)
    elif ks.delete(db, storekey, fresh=True) and ks.notify_flags:
        ks.notify(ksn.GENERIC, b"del", db, storekey)
    if tainted(ks, db, argv[1]):
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
    if isinstance(value, ZSet):
        value.listpack = False  # "Destructively convert encoded sorted sets for SORT"

    def get(key: bytes) -> Value | None:
        return peek(c, key)

    now = c.now
    score = partial(_read_score, fast_float=c.ks.dialect.fast_float_ranges)
    picked = _sort_pick(value, get, a, store=False, score=score, now=now)
    if not a.gets:
        return reply.bulk_array(picked, c.proto)
    out = [_by_pattern(get, p, e, now) for e in picked for p in a.gets]
    return reply.bulk_array(out, c.proto)
