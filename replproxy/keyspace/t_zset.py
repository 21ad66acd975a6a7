"""Sorted-set writes from the master's stream, applied as `t_zset.c` does.

This module owns the appliers of every sorted-set write a master 5.0 to 8.x or Valkey 8 can
propagate: ZADD (every flag, and the lowercase `zadd k [CH] [NX|XX] <geohash> member ...`
that GEOADD becomes), ZINCRBY, ZREM, ZREMRANGEBYSCORE|RANK|LEX, ZUNIONSTORE, ZINTERSTORE,
ZDIFFSTORE, ZRANGESTORE and ZPOPMIN/ZPOPMAX (what BZPOP*, ZMPOP and BZMPOP are rewritten
to). Values are `ZSet` (values.py); the geo searches that store a result live in `t_geo`.

What must match the master bit for bit, and why the code looks the way it does:

- Scores are C doubles and Python floats are the same IEEE doubles, so arithmetic done in
  the same order gives the same bits. ZUNIONSTORE/ZINTERSTORE add weighted scores in the
  order Redis does: sources sorted by cardinality with a stable sort (glibc's `qsort` is a
  merge sort), a NaN product or sum (inf - inf, inf * 0) becoming 0 (`zunionInterAggregate`),
  MIN/MAX keeping the current value on ties (so -0 vs 0 stays as Redis has it).
- `zsetAdd` keeps the old score when the new one compares equal (0 vs -0), and GT/LT compare
  after the INCR addition.
- Score ranges are `zslParseRange` (strtod: leading spaces, `inf`, hex, `(` exclusive); lex
  ranges are `zslParseLexRange`. Lex ranges over members with different scores are
  encoding-dependent on the master; `ZSet.lex_range` follows the listpack walk.
- The sign of a zero score depends on the master's encoding: from 7.0 a listpack stores a
  -0 as the integer 0 (`zzlInsertAt` -> `double2ll`), a skiplist keeps it. So each ZSet
  tracks the encoding the master holds it in (`ZSet.listpack`), following that version's
  creation and conversion rules (`zsetTypeCreate`/`zsetTypeMaybeConvert` from 7.2, with
  Valkey 8 sizing by the longest member of the command), and a 0 score written into a
  listpack loses its sign. The master's version comes from its snapshot (`loaded_aux`).
- A key whose zset becomes empty is deleted; a STORE with an empty result deletes the
  destination; a STORE replaces the destination's TTL (`setKey`), in-place writes keep it.

Appliers never check expiry and assume a consistent stream: a wrong type or a NaN that the
master would have refused raises `ApplyError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from replproxy.keyspace import ApplyError, Keyspace, write_command
from replproxy.keyspace.util import parse_double, parse_int
from replproxy.keyspace.values import (
    ZSET_MAX_LISTPACK_ENTRIES,
    ZSET_MAX_LISTPACK_VALUE,
    LexBound,
    ZSet,
    fits_listpack,
)
from replproxy.rdb.model import ZSetValue

# ---- the master's version (its snapshot's `redis-ver` / `valkey-ver`) ----

_version_cache: tuple[object, tuple[bool, int, int]] = (None, (False, 0, 0))


def master_version(ks: Keyspace) -> tuple[bool, int, int]:
    """(is_valkey, major, minor) of the master, from the AUX fields of its last snapshot;
    an unknown version reads as the newest Redis."""
    global _version_cache
    aux = ks.loaded_aux
    if _version_cache[0] is aux:
        return _version_cache[1]
    valkey = b"valkey-ver" in aux
    raw = aux.get(b"valkey-ver") or aux.get(b"redis-ver")
    try:
        major, minor = (int(x) for x in (raw or b"").split(b".")[:2])
    except ValueError:
        major, minor = 99, 0
    version = (valkey, major, minor)
    _version_cache = (aux, version)
    return version


# How a master creates a zset for ZADD and converts an existing listpack before adding:
# up to 7.0 by the first member's length only; Redis 7.2+ also by the number of pairs;
# Valkey 8+ by the number of pairs and the longest member.
_CREATE_FIRST_MEMBER, _CREATE_COUNT_FIRST, _CREATE_COUNT_LONGEST = 0, 1, 2


def _zset_rules(ks: Keyspace) -> tuple[bool, int]:
    """(does a listpack drop the sign of zero, the ZADD creation rule)."""
    valkey, major, minor = master_version(ks)
    drops = valkey or major >= 7
    if valkey and major >= 8:
        return drops, _CREATE_COUNT_LONGEST
    if (major, minor) >= (7, 2):
        return drops, _CREATE_COUNT_FIRST
    return drops, _CREATE_FIRST_MEMBER

# ---- argument parsing (the master validated everything; these read it as Redis did) ----


def double_arg(raw: bytes) -> float:
    """`getDoubleFromObject`. Python's float() reads every decimal form strtod accepts the
    same way; hex forms (`0x1p3`) fall through to `parse_double`."""
    try:
        return float(raw)
    except ValueError:
        return parse_double(raw)


_C_SPACE = b" \t\n\v\f\r"


def _strtod(raw: bytes) -> float:
    # zslParseRange calls strtod directly: leading white space is skipped, and an overflow
    # (`1e999`) is infinity rather than an error.
    return double_arg(raw.lstrip(_C_SPACE))


def parse_score_bound(raw: bytes) -> tuple[float, bool]:
    """One side of `zslParseRange`: (value, exclusive)."""
    if raw[:1] == b"(":
        return _strtod(raw[1:]), True
    return _strtod(raw), False


def parse_lex_bound(raw: bytes) -> LexBound:
    """`zslParseLexRangeItem`: `[m`, `(m`, `-`, `+`."""
    c = raw[:1]
    if c == b"[":
        return LexBound(raw[1:], False)
    if c == b"(":
        return LexBound(raw[1:], True)
    if raw == b"-":
        return LexBound(b"", True, -1)
    if raw == b"+":
        return LexBound(b"", True, 1)
    raise ApplyError(f"min or max not valid string range item: {raw!r}")


# ---- access ----


def zset_for_write(ks: Keyspace, db: int, key: bytes) -> ZSet | None:
    """The ZSet at `key`, or None when the key is missing."""
    v = ks.get(db, key)
    if v is None or type(v) is ZSet:
        return v
    if isinstance(v, ZSetValue):  # a plain model value from another path: index it once
        zs = ZSet(v)
        ks.set(db, key, zs, keepttl=True)
        return zs
    raise ApplyError(f"WRONGTYPE: {key!r} holds {type(v).__name__}, not a zset")


def store_zset(ks: Keyspace, db: int, key: bytes, result: dict[bytes, float]) -> None:
    """What a STORE variant does with its result: `setKey` (TTL dropped), or delete the
    destination when the result is empty. The result is built as a skiplist and converted
    by `zsetConvertToListpackIfNeeded`."""
    if not result:
        ks.delete(db, key)
        return
    listpack = fits_listpack(len(result), max(map(len, result)))
    if listpack and _zset_rules(ks)[0]:
        for m, s in result.items():
            if s == 0.0:
                result[m] = 0.0
    ks.set(db, key, ZSet(result, listpack))


def _after_removal(ks: Keyspace, db: int, key: bytes, zs: ZSet) -> None:
    if zs:
        ks.touched(db, key)
    else:
        ks.delete(db, key)


# ---- ZADD / ZINCRBY ----

_NX, _XX, _GT, _LT, _INCR, _CH = 1, 2, 4, 8, 16, 32
_ZADD_FLAGS = {b"nx": _NX, b"xx": _XX, b"gt": _GT, b"lt": _LT, b"incr": _INCR, b"ch": _CH}


@write_command("zadd")
def zadd(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    if len(argv) == 4:  # the common `ZADD k score member`: no option can fit
        key, member = argv[1], argv[3]
        score = double_arg(argv[2])
        zs = zset_for_write(ks, db, key)
        if zs is None:
            listpack = len(member) <= ZSET_MAX_LISTPACK_VALUE
            if score == 0.0 and listpack and _zset_rules(ks)[0]:
                score = 0.0
            ks.set(db, key, ZSet(((member, score),), listpack))
        else:
            if zs.listpack:
                score = _into_listpack(ks, zs, member, score)
            zs.add(member, score)
            ks.touched(db, key)
        return
    flags = 0
    i, n = 2, len(argv)
    while i < n:
        f = _ZADD_FLAGS.get(argv[i].lower())
        if f is None:
            break
        flags |= f
        i += 1
    if (n - i) % 2 or n == i:
        raise ApplyError("ZADD: syntax error (score-member pairs)")
    _zadd(ks, db, argv[1], flags, [(double_arg(argv[j]), argv[j + 1]) for j in range(i, n, 2)])


@write_command("zincrby")
def zincrby(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    if len(argv) != 4:
        raise ApplyError("ZINCRBY: wrong number of arguments")
    _zadd(ks, db, argv[1], _INCR, [(double_arg(argv[2]), argv[3])])


def _into_listpack(ks: Keyspace, zs: ZSet, member: bytes, score: float) -> float:
    """`zsetAdd` on a listpack zset: a new member that does not fit converts it to a
    skiplist first; a score stored in the listpack loses the sign of zero (7.0+)."""
    if member not in zs and (len(zs) >= ZSET_MAX_LISTPACK_ENTRIES
                             or len(member) > ZSET_MAX_LISTPACK_VALUE):
        zs.listpack = False
    elif score == 0.0 and _zset_rules(ks)[0]:
        return 0.0
    return score


def _zadd(ks: Keyspace, db: int, key: bytes, flags: int,
          pairs: list[tuple[float, bytes]]) -> None:
    """`zaddGenericCommand` + `zsetAdd` for each pair, in order."""
    nx, xx = flags & _NX, flags & _XX
    gt, lt, incr = flags & _GT, flags & _LT, flags & _INCR
    zs = zset_for_write(ks, db, key)
    created = zs is None
    _, rule = _zset_rules(ks)
    if rule == _CREATE_COUNT_LONGEST:
        longest = max(len(m) for _, m in pairs)
    else:
        longest = len(pairs[0][1])  # the first member stands for all of them
    if zs is None:
        if xx:
            return
        if rule == _CREATE_FIRST_MEMBER:
            zs = ZSet(listpack=longest <= ZSET_MAX_LISTPACK_VALUE)
        else:
            zs = ZSet(listpack=fits_listpack(len(pairs), longest))
    elif zs.listpack and rule != _CREATE_FIRST_MEMBER and (
            len(pairs) > ZSET_MAX_LISTPACK_ENTRIES
            or (rule == _CREATE_COUNT_LONGEST and longest > ZSET_MAX_LISTPACK_VALUE)):
        zs.listpack = False  # zsetTypeMaybeConvert
    changed = False
    for score, member in pairs:
        cur = zs.get(member)
        if cur is None:
            if not xx:
                if zs.listpack:
                    score = _into_listpack(ks, zs, member, score)
                zs.add(member, score)
                changed = True
            continue
        if nx:
            continue
        if incr:
            score += cur
            if score != score:
                raise ApplyError("resulting score is not a number (NaN)")
        if (lt and score >= cur) or (gt and score <= cur):
            continue
        if score != cur:
            if zs.listpack:
                score = _into_listpack(ks, zs, member, score)
            zs.add(member, score)
            changed = True
    if created:
        if zs:
            ks.set(db, key, zs)
    elif changed:
        ks.touched(db, key)


# ---- removals ----


@write_command("zrem")
def zrem(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    zs = zset_for_write(ks, db, key)
    if zs is None:
        return
    removed = 0
    for member in argv[2:]:
        removed += zs.discard(member)
    if removed:
        _after_removal(ks, db, key, zs)


@write_command("zremrangebyscore")
def zremrangebyscore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    lo, lo_ex = parse_score_bound(argv[2])
    hi, hi_ex = parse_score_bound(argv[3])
    zs = zset_for_write(ks, db, argv[1])
    if zs is not None and zs.remove_range(*zs.score_range(lo, lo_ex, hi, hi_ex)):
        _after_removal(ks, db, argv[1], zs)


@write_command("zremrangebylex")
def zremrangebylex(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    lo, hi = parse_lex_bound(argv[2]), parse_lex_bound(argv[3])
    zs = zset_for_write(ks, db, argv[1])
    if zs is not None and zs.remove_range(*zs.lex_range(lo, hi)):
        _after_removal(ks, db, argv[1], zs)


def rank_range(start: int, end: int, llen: int) -> tuple[int, int]:
    """ZRANGE/ZREMRANGEBYRANK index sanitising: slice bounds, empty when out of range."""
    if start < 0:
        start += llen
    if end < 0:
        end += llen
    if start < 0:
        start = 0
    if start > end or start >= llen:
        return 0, 0
    return start, min(end, llen - 1) + 1


@write_command("zremrangebyrank")
def zremrangebyrank(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    start, end = parse_int(argv[2]), parse_int(argv[3])
    zs = zset_for_write(ks, db, argv[1])
    if zs is not None and zs.remove_range(*rank_range(start, end, len(zs))):
        _after_removal(ks, db, argv[1], zs)


def _zpop(ks: Keyspace, db: int, argv: list[bytes], highest: bool) -> None:
    # BZPOPMIN/MAX arrive as `ZPOPMIN k`, ZMPOP/BZMPOP as `ZPOPMIN k count`.
    count = parse_int(argv[2]) if len(argv) > 2 else 1
    zs = zset_for_write(ks, db, argv[1])
    if zs is None or count <= 0:
        return
    zs.zpop(count, highest)
    _after_removal(ks, db, argv[1], zs)


@write_command("zpopmin")
def zpopmin(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _zpop(ks, db, argv, False)


@write_command("zpopmax")
def zpopmax(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _zpop(ks, db, argv, True)


# ---- ZUNIONSTORE / ZINTERSTORE / ZDIFFSTORE ----

_UNION, _INTER, _DIFF = 0, 1, 2
_SUM, _MIN, _MAX = 0, 1, 2
_AGGREGATES = {b"sum": _SUM, b"min": _MIN, b"max": _MAX}

Source = ZSet | AbstractSet[bytes] | None


def _source(ks: Keyspace, db: int, key: bytes) -> Source:
    v = ks.get(db, key)
    if v is None or isinstance(v, ZSetValue | AbstractSet):
        return v  # type: ignore[return-value]
    raise ApplyError(f"WRONGTYPE: {key!r} holds {type(v).__name__}, not a set or zset")


def _items(src: Source) -> Iterable[tuple[bytes, float]]:
    """`zuiNext`: a set's members all score 1.0."""
    if src is None:
        return ()
    if isinstance(src, dict):
        return src.items()
    return ((m, 1.0) for m in src)


def _find(src: Source, member: bytes) -> float | None:
    """`zuiFind`."""
    if src is None:
        return None
    if isinstance(src, dict):
        return src.get(member)
    return 1.0 if member in src else None


def _aggregate(target: float, val: float, aggregate: int) -> float:
    """`zunionInterAggregate`."""
    if aggregate == _SUM:
        target = target + val
        return 0.0 if target != target else target
    if aggregate == _MIN:
        return val if val < target else target
    return val if val > target else target


def _zsetop_store(ks: Keyspace, db: int, argv: list[bytes], op: int) -> None:
    """`zunionInterDiffGenericCommand` with a destination key."""
    dst = argv[1]
    setnum = parse_int(argv[2])
    n = len(argv)
    if setnum < 1 or setnum > n - 3:
        raise ApplyError("ZUNION/ZINTER/ZDIFF STORE: bad numkeys")
    srcs = [_source(ks, db, k) for k in argv[3:3 + setnum]]
    weights = [1.0] * setnum
    aggregate = _SUM
    j = 3 + setnum
    while j < n:
        opt = argv[j].lower()
        if op != _DIFF and opt == b"weights" and n - j >= setnum + 1:
            weights = [double_arg(w) for w in argv[j + 1:j + 1 + setnum]]
            j += 1 + setnum
        elif op != _DIFF and opt == b"aggregate" and n - j >= 2:
            agg = _AGGREGATES.get(argv[j + 1].lower())
            if agg is None:
                raise ApplyError(f"unknown AGGREGATE {argv[j + 1]!r}")
            aggregate = agg
            j += 2
        else:
            raise ApplyError(f"syntax error at {argv[j]!r}")

    result: dict[bytes, float] = {}
    if op == _DIFF:
        first = srcs[0]
        others = srcs[1:]
        # zsetChooseDiffAlgorithm: the first key named again means an empty result.
        if first and not any(o is first for o in others):
            for m, s in _items(first):
                if all(_find(o, m) is None for o in others):
                    result[m] = s
    else:
        # Smallest first, ties in the order given: the order scores are added in.
        pairs = sorted(zip(srcs, weights), key=lambda p: len(p[0]) if p[0] is not None else 0)
        if op == _INTER:
            first, w0 = pairs[0]
            rest = pairs[1:]
            if first:
                for m, s in _items(first):
                    score = w0 * s
                    if score != score:
                        score = 0.0
                    for other, w in rest:
                        if other is first:
                            value = s * w
                        else:
                            found = _find(other, m)
                            if found is None:
                                break
                            value = found * w
                        score = _aggregate(score, value, aggregate)
                    else:
                        result[m] = score
        else:
            for src, w in pairs:
                for m, s in _items(src):
                    score = w * s
                    if score != score:
                        score = 0.0
                    old = result.get(m)
                    result[m] = score if old is None else _aggregate(old, score, aggregate)
    store_zset(ks, db, dst, result)


@write_command("zunionstore")
def zunionstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _zsetop_store(ks, db, argv, _UNION)


@write_command("zinterstore")
def zinterstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _zsetop_store(ks, db, argv, _INTER)


@write_command("zdiffstore")
def zdiffstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _zsetop_store(ks, db, argv, _DIFF)


# ---- ZRANGESTORE ----


@write_command("zrangestore")
def zrangestore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]."""
    dst, src_key = argv[1], argv[2]
    by = b""
    rev = False
    offset, limit = 0, -1
    j, n = 5, len(argv)
    while j < n:
        opt = argv[j].lower()
        if opt == b"limit" and n - j - 1 >= 2:
            offset, limit = parse_int(argv[j + 1]), parse_int(argv[j + 2])
            j += 3
            continue
        if opt == b"rev" and not rev:
            rev = True
        elif opt in (b"byscore", b"bylex") and not by:
            by = opt
        else:
            raise ApplyError(f"ZRANGESTORE: syntax error at {argv[j]!r}")
        j += 1
    lo_arg, hi_arg = (argv[4], argv[3]) if rev and by else (argv[3], argv[4])

    zs = zset_for_write(ks, db, src_key)
    items: list[tuple[float, bytes]] = []
    if not by:
        start_i, end_i = parse_int(lo_arg), parse_int(hi_arg)
        if zs is not None:
            n_items = len(zs)
            a, b = rank_range(start_i, end_i, n_items)
            if rev:
                a, b = n_items - b, n_items - a
            items = list(zs.index.islice(a, b))
    else:
        if by == b"byscore":
            lo, lo_ex = parse_score_bound(lo_arg)
            hi, hi_ex = parse_score_bound(hi_arg)
            bounds = zs.score_range(lo, lo_ex, hi, hi_ex) if zs is not None else (0, 0)
        else:
            lo_b, hi_b = parse_lex_bound(lo_arg), parse_lex_bound(hi_arg)
            bounds = zs.lex_range(lo_b, hi_b, rev) if zs is not None else (0, 0)
        # A negative offset walks off the end before emitting anything (`while (offset--)`);
        # a negative count is no limit.
        if zs is not None and offset >= 0:
            a, b = bounds
            if rev:
                b -= offset
                if limit >= 0:
                    a = max(a, b - limit)
            else:
                a += offset
                if limit >= 0:
                    b = min(b, a + limit)
            if a < b:
                items = list(zs.index.islice(a, b))
    if not items:
        ks.delete(db, dst)
        return
    # The destination starts as a listpack (unless a rank range is known to be longer) and
    # zsetAdd converts it at the first member that does not fit, in emission order.
    if rev:
        items.reverse()
    listpack = not (not by and len(items) > ZSET_MAX_LISTPACK_ENTRIES)
    drops = _zset_rules(ks)[0]
    result: dict[bytes, float] = {}
    for k, (score, member) in enumerate(items):
        if listpack and (k >= ZSET_MAX_LISTPACK_ENTRIES or len(member) > ZSET_MAX_LISTPACK_VALUE):
            listpack = False
        result[member] = 0.0 if listpack and drops and score == 0.0 else score
    ks.set(db, dst, ZSet(result, listpack))
