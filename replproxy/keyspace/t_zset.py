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

The read commands a replica answers live here too (see "Reads" below): ZCARD, ZSCORE,
ZMSCORE, ZCOUNT, ZLEXCOUNT, ZRANK/ZREVRANK (WITHSCORE from 7.2), the ZRANGE family (BYSCORE,
BYLEX, REV, LIMIT, WITHSCORES), ZRANDMEMBER, ZUNION/ZINTER/ZDIFF (computed by `zsetop`, the
code of the STORE appliers), ZINTERCARD and ZSCAN. They read keys as a replica does
(`reads.lookup`), parse numbers with Redis's own rules and errors, and follow the master's
version where replies differ (double text, ZSCAN cursors, LIMIT with a negative offset on a
skiplist from 7.4) and its encoding where that shows (`ZSet.listpack`: ZSCAN).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from functools import partial

from replproxy.args import LLONG_MAX, c_string, option_word, parse_double, parse_int
from replproxy.errors import SYNTAX
from replproxy.keyspace import notify as ksn
from replproxy.keyspace.reads import (
    EMPTY_SCAN,
    WRONGTYPE,
    ReadContext,
    ReplyError,
    arg_long,
    lookup,
    lookup_zset,
    read_command,
)
from replproxy.keyspace.registry import (
    ApplyError,
    numkeys_store,
    store_from,
    write_command,
)
from replproxy.keyspace.scan import glob_matcher, parse_cursor, scan_reply
from replproxy.keyspace.store import Keyspace
from replproxy.keyspace.values import (
    ZSET_MAX_LISTPACK_ENTRIES,
    ZSET_MAX_LISTPACK_VALUE,
    LexBound,
    ZSet,
    fits_listpack,
)
from replproxy.rdb.encode import double_to_int64
from replproxy.rdb.model import ZSetValue
from replproxy.resp import reply
from replproxy.resp.reply import DoubleStyle, c_speedup, format_double

# How a master creates a zset for ZADD and converts an existing listpack before adding:
# `MasterDialect.zset_create_rule` (by the first member's length up to 7.0; Redis 7.2+ also by
# the number of pairs; Valkey 8+ by the number of pairs and the longest member).
_CREATE_FIRST_MEMBER, _CREATE_COUNT_FIRST, _CREATE_COUNT_LONGEST = 0, 1, 2
_CREATE_RULES = {
    "first_member": _CREATE_FIRST_MEMBER,
    "count_first": _CREATE_COUNT_FIRST,
    "count_longest": _CREATE_COUNT_LONGEST,
}


def _zset_rules(ks: Keyspace) -> tuple[bool, int]:
    """(does a listpack drop the sign of zero, the ZADD creation rule)."""
    d = ks.dialect
    return d.zset_listpack_drops_zero_sign, _CREATE_RULES[d.zset_create_rule]


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


def store_zset(ks: Keyspace, db: int, key: bytes, result: dict[bytes, float], event: bytes) -> None:
    """What a STORE variant does with its result: `setKey` (TTL dropped) and `event`, or
    delete the destination (`del`) when the result is empty. The result is built as a
    skiplist and converted by `zsetConvertToListpackIfNeeded`."""
    if not result:
        if ks.delete(db, key, fresh=True) and ks.notify_flags:
            ks.notify(ksn.GENERIC, b"del", db, key)
        return
    listpack = fits_listpack(len(result), max(map(len, result)))
    if listpack and _zset_rules(ks)[0]:
        for m, s in result.items():
            if s == 0.0:
                result[m] = 0.0
    zs = ZSet(result, listpack)
    if ks.notify_flags:
        ks.notify_overwrite(db, key, zs)
    ks.set(db, key, zs, fresh=True)
    if ks.notify_flags:
        ks.notify(ksn.ZSET, event, db, key)


def _after_removal(ks: Keyspace, db: int, key: bytes, zs: ZSet, event: bytes) -> None:
    """`event` for the removal, then `del` when the sorted set became empty."""
    if ks.notify_flags:
        ks.notify(ksn.ZSET, event, db, key)
    if zs:
        ks.touched(db, key)
    else:
        ks.delete(db, key)
        if ks.notify_flags:
            ks.notify(ksn.GENERIC, b"del", db, key)


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
        if ks.notify_flags:
            ks.notify(ksn.ZSET, b"zadd", db, key)
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
    if member not in zs and (
        len(zs) >= ZSET_MAX_LISTPACK_ENTRIES or len(member) > ZSET_MAX_LISTPACK_VALUE
    ):
        zs.listpack = False
    elif score == 0.0 and _zset_rules(ks)[0]:
        return 0.0
    return score


def _zadd(ks: Keyspace, db: int, key: bytes, flags: int, pairs: list[tuple[float, bytes]]) -> None:
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
    elif (
        zs.listpack
        and rule != _CREATE_FIRST_MEMBER
        and (
            len(pairs) > ZSET_MAX_LISTPACK_ENTRIES
            or (rule == _CREATE_COUNT_LONGEST and longest > ZSET_MAX_LISTPACK_VALUE)
        )
    ):
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
    if changed and ks.notify_flags:
        ks.notify(ksn.ZSET, b"zincr" if incr else b"zadd", db, key)


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
        _after_removal(ks, db, key, zs, b"zrem")


@write_command("zremrangebyscore")
def zremrangebyscore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    lo, lo_ex = parse_score_bound(argv[2])
    hi, hi_ex = parse_score_bound(argv[3])
    zs = zset_for_write(ks, db, argv[1])
    if zs is not None and zs.remove_range(*zs.score_range(lo, lo_ex, hi, hi_ex)):
        _after_removal(ks, db, argv[1], zs, b"zremrangebyscore")


@write_command("zremrangebylex")
def zremrangebylex(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    lo, hi = parse_lex_bound(argv[2]), parse_lex_bound(argv[3])
    zs = zset_for_write(ks, db, argv[1])
    if zs is not None and zs.remove_range(*zs.lex_range(lo, hi)):
        _after_removal(ks, db, argv[1], zs, b"zremrangebylex")


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
        _after_removal(ks, db, argv[1], zs, b"zremrangebyrank")


def _zpop(ks: Keyspace, db: int, argv: list[bytes], highest: bool) -> None:
    # BZPOPMIN/MAX arrive as `ZPOPMIN k`, ZMPOP/BZMPOP as `ZPOPMIN k count`.
    count = parse_int(argv[2]) if len(argv) > 2 else 1
    zs = zset_for_write(ks, db, argv[1])
    if zs is None or count <= 0:
        return
    zs.zpop(count, highest)
    _after_removal(ks, db, argv[1], zs, b"zpopmax" if highest else b"zpopmin")


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


def zsetop(srcs: list[Source], weights: list[float], aggregate: int, op: int) -> dict[bytes, float]:
    """The result of ZUNION/ZINTER/ZDIFF[STORE] (`zunionInterDiffGenericCommand`): member ->
    score, shared by the STORE appliers and the read commands."""
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
    return result


def _zsetop_store(ks: Keyspace, db: int, argv: list[bytes], op: int) -> None:
    """`zunionInterDiffGenericCommand` with a destination key."""
    dst = argv[1]
    setnum = parse_int(argv[2])
    n = len(argv)
    if setnum < 1 or setnum > n - 3:
        raise ApplyError("ZUNION/ZINTER/ZDIFF STORE: bad numkeys")
    srcs = [_source(ks, db, k) for k in argv[3 : 3 + setnum]]
    weights = [1.0] * setnum
    aggregate = _SUM
    j = 3 + setnum
    while j < n:
        opt = argv[j].lower()
        if op != _DIFF and opt == b"weights" and n - j >= setnum + 1:
            weights = [double_arg(w) for w in argv[j + 1 : j + 1 + setnum]]
            j += 1 + setnum
        elif op != _DIFF and opt == b"aggregate" and n - j >= 2:
            agg = _AGGREGATES.get(argv[j + 1].lower())
            if agg is None:
                raise ApplyError(f"unknown AGGREGATE {argv[j + 1]!r}")
            aggregate = agg
            j += 2
        else:
            raise ApplyError(f"syntax error at {argv[j]!r}")

    event = (b"zunionstore", b"zinterstore", b"zdiffstore")[op]
    store_zset(ks, db, dst, zsetop(srcs, weights, aggregate, op), event)


@write_command("zunionstore", roles=numkeys_store)
def zunionstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _zsetop_store(ks, db, argv, _UNION)


@write_command("zinterstore", roles=numkeys_store)
def zinterstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _zsetop_store(ks, db, argv, _INTER)


@write_command("zdiffstore", roles=numkeys_store)
def zdiffstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _zsetop_store(ks, db, argv, _DIFF)


# ---- ZRANGESTORE ----


@write_command("zrangestore", roles=store_from(2))
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
        # LIMIT as the master's version walks it (see `limit_bounds`).
        if zs is not None:
            a, b = limit_bounds(
                bounds,
                offset,
                limit,
                rev,
                offset < 0 and not zs.listpack and ks.dialect.zset_nth_in_range,
            )
            if a < b:
                items = list(zs.index.islice(a, b))
    if not items:
        if ks.delete(db, dst, fresh=True) and ks.notify_flags:
            ks.notify(ksn.GENERIC, b"del", db, dst)
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
    zdst = ZSet(result, listpack)
    if ks.notify_flags:
        ks.notify_overwrite(db, dst, zdst)
    ks.set(db, dst, zdst, fresh=True)
    if ks.notify_flags:
        ks.notify(ksn.ZSET, b"zrangestore", db, dst)


# =============================================================================================
# Reads: the commands a read-only replica answers (t_zset.c, and db.c for ZSCAN)
# =============================================================================================
#
# ZCARD ZSCORE ZMSCORE ZCOUNT ZLEXCOUNT ZRANK ZREVRANK ZRANGE ZREVRANGE ZRANGEBYSCORE
# ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZRANDMEMBER ZUNION ZINTER ZDIFF ZINTERCARD ZSCAN.
# Each checks its arguments in the order Redis does and answers with Redis's exact bytes:
#
# - Numbers are read as Redis reads them: counts and indexes by `string2ll`, WEIGHTS by
#   `string2d` (strict strtod: no blanks, no overflow, no NaN), score ranges by the bare
#   `strtod` of `zslParseRange` (leading blanks, `inf`, hex, overflow to infinity, an empty
#   string is 0), all on the argument as a C string (it ends at a NUL byte).
# - Scores print as the master's `addReplyDouble` (`c.dstyle`). WITHSCORES replies are flat
#   [member, score, ...] in RESP2 and [[member, score], ...] in RESP3.
# - ZSCAN mirrors the master's encoding (`ZSet.listpack`): a listpack zset answers everything
#   at once with cursor 0, in rank order, its scores as the listpack stores them (an integer,
#   else `d2string`); a skiplist zset is scanned through `Keyspace.scans` and its scores print
#   with `%.17Lg` (`ld2string`).
# - ZRANDMEMBER's picks are random, as Redis's; a count covering the whole zset returns it as
#   Redis does, from the highest rank down.

_C_SPACES = frozenset(b" \t\n\v\f\r")
_EMPTY = reply.EMPTY_ARRAY
_RANGE_NOT_FLOAT = b"ERR min or max is not a float"
_LEX_NOT_VALID = b"ERR min or max not valid string range item"

# glibc strtod's grammar in the C locale: blanks, a sign, then inf[inity], nan[(chars)], a
# hex float or a decimal one. The match tells how much strtod consumes; the value comes from
# Python, whose float() and float.fromhex() round exactly as glibc does.
_STRTOD_RE = re.compile(
    rb"[ \t\n\v\f\r]*([+-]?)(?:(inf(?:inity)?)|(nan(?:\([0-9a-z_]*\))?)"
    rb"|0x((?:[0-9a-f]+(?:\.[0-9a-f]*)?|\.[0-9a-f]+)(?:p[+-]?[0-9]+)?)"
    rb"|((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?))",
    re.IGNORECASE,
)
_NONZERO_DEC = re.compile(rb"[1-9]")
_NONZERO_HEX = re.compile(rb"[1-9a-f]", re.IGNORECASE)


def strtod_prefix(s: bytes) -> tuple[float, int, bool]:
    """glibc `strtod` on `s` (a C string): (value, bytes consumed, ERANGE). When nothing can
    be converted: (0.0, 0, False), as strtod sets `endptr` to the start."""
    m = _STRTOD_RE.match(s)
    if m is None:
        return 0.0, 0, False
    sign, inf, nan, hexa, dec = m.groups()
    erange = False
    if inf is not None:
        v = math.inf
    elif nan is not None:
        v = math.nan
    elif hexa is not None:
        try:
            v = float.fromhex(hexa.decode())
        except OverflowError:
            v, erange = math.inf, True
        else:
            mantissa = hexa.lower().split(b"p")[0]
            erange = v == 0.0 and _NONZERO_HEX.search(mantissa) is not None
    else:
        v = float(dec)
        if v == math.inf:
            erange = True
        elif v == 0.0:
            erange = _NONZERO_DEC.search(dec.lower().split(b"e")[0]) is not None
    return (-v if sign == b"-" else v), m.end(), erange


def string2d(raw: bytes) -> float | None:
    """`string2d` (`getDoubleFromObject`): the whole string a double, no leading blank, no
    overflow or underflow to zero, no NaN; None otherwise."""
    if not raw or raw[0] in _C_SPACES:
        return None
    v, end, erange = strtod_prefix(raw)
    if end != len(raw) or v != v or (erange and (v == 0.0 or v in (math.inf, -math.inf))):
        return None
    return v


# fast_float's `from_chars` as Redis 8 builds it (general format, a leading `+` allowed, no
# blanks, no hex): a decimal number whose exponent is taken only when digits follow the `e`,
# else inf[inity] or nan[(chars)].
_FAST_FLOAT_RE = re.compile(
    rb"[+-]?(?:((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?)"
    rb"|(inf(?:inity)?)|(nan(?:\([0-9a-z_]*\))?))",
    re.IGNORECASE,
)


def fast_float_prefix(s: bytes) -> tuple[float, int]:
    """Redis 8's `fast_float_strtod` on `s` (a C string): (value, bytes consumed); an
    overflow is infinity and an underflow zero, with nothing consumed when nothing parses
    (an empty string is 0)."""
    m = _FAST_FLOAT_RE.match(s)
    if m is None:
        return 0.0, 0
    if m.group(3) is not None:
        return math.nan, m.end()
    return float(m.group(0).split(b"(")[0]), m.end()


def read_score_bound(raw: bytes, fast_float: bool = False) -> tuple[float, bool]:
    """One side of `zslParseRange`: (value, exclusive); `ReplyError` when not a float.
    `fast_float`: the master reads it with fast_float (`MasterDialect.fast_float_ranges`)."""
    s = c_string(raw)
    ex = s[:1] == b"("
    if ex:
        s = s[1:]
    if fast_float:
        v, end = fast_float_prefix(s)
    else:
        v, end, _ = strtod_prefix(s)
    if end != len(s) or v != v:
        raise ReplyError(_RANGE_NOT_FLOAT)
    return v, ex


_LEX_MIN = LexBound(b"", True, -1)
_LEX_MAX = LexBound(b"", True, 1)


def read_lex_bound(raw: bytes) -> LexBound:
    """`zslParseLexRangeItem` with its error: `[m`, `(m`, `-`, `+` (the last two must end
    the C string)."""
    c = raw[:1]
    if c == b"[":
        return LexBound(raw[1:], False)
    if c == b"(":
        return LexBound(raw[1:], True)
    if c == b"+" and raw[1:2] in (b"", b"\0"):
        return _LEX_MAX
    if c == b"-" and raw[1:2] in (b"", b"\0"):
        return _LEX_MIN
    raise ReplyError(_LEX_NOT_VALID)


_C_SCORED = c_speedup("scored")
_FORMAT_SHORTEST = partial(format_double, style="shortest")


def scored_reply(items: Sequence[tuple[float, bytes]], proto: int, style: DoubleStyle) -> bytes:
    """Members with their scores: a flat array in RESP2, [member, double] pairs in RESP3."""
    if not items:
        return _EMPTY
    if _C_SCORED is not None and type(items) is list:
        return _C_SCORED(items, proto, style == "g17", _FORMAT_SHORTEST)
    # The reference path (no C accelerator): `%.17g` prints inf/-inf as Redis does, and a
    # zset holds no NaN, so the g17 style needs none of format_double's checks.
    fmt = _g17 if style == "g17" else _FORMAT_SHORTEST
    if proto == 2:
        return reply.bulk_array([x for s, m in items for x in (m, fmt(s))])
    return b"*%d\r\n%b" % (
        len(items),
        b"".join([b"*2\r\n$%d\r\n%b\r\n,%b\r\n" % (len(m), m, fmt(s)) for s, m in items]),
    )


def _g17(score: float) -> bytes:
    return b"%.17g" % score


# ---- ZCARD / ZSCORE / ZMSCORE / ZRANK / ZREVRANK ----


@read_command("zcard")
def zcard_read(c: ReadContext, argv: list[bytes]) -> bytes:
    zs = lookup_zset(c, argv[1])
    return b":%d\r\n" % (len(zs) if zs is not None else 0)


@read_command("zscore")
def zscore_read(c: ReadContext, argv: list[bytes]) -> bytes:
    zs = lookup_zset(c, argv[1])
    score = zs.get(argv[2]) if zs is not None else None
    if score is None:
        return reply.null(c.proto)
    return reply.double(score, c.proto, c.dstyle)


@read_command("zmscore")
def zmscore_read(c: ReadContext, argv: list[bytes]) -> bytes:
    zs = lookup_zset(c, argv[1])
    nul = reply.null(c.proto)
    scores: dict[bytes, float] = zs if zs is not None else {}
    out = [b"*%d\r\n" % (len(argv) - 2)]
    for member in argv[2:]:
        score = scores.get(member)
        out.append(nul if score is None else reply.double(score, c.proto, c.dstyle))
    return b"".join(out)


def _zrank(c: ReadContext, argv: list[bytes], reverse: bool) -> bytes:
    withscore = False
    if len(argv) > 3:
        # WITHSCORE came with 7.2 (arity -3); 7.0's arity 3 makes the dispatcher refuse it.
        if len(argv) > 4 or not c.ks.dialect.zrank_withscore:
            raise ReplyError(
                b"ERR wrong number of arguments for '%b' command"
                % (b"zrevrank" if reverse else b"zrank")
            )
        if option_word(argv[3]) != b"withscore":
            raise ReplyError(SYNTAX)
        withscore = True
    zs = lookup_zset(c, argv[1])
    score = zs.get(argv[2]) if zs is not None else None
    if zs is None or score is None:
        return reply.null_array(c.proto) if withscore else reply.null(c.proto)
    rank = zs.index.index((score, argv[2]))
    if reverse:
        rank = len(zs) - 1 - rank
    if withscore:
        return b"*2\r\n:%d\r\n%b" % (rank, reply.double(score, c.proto, c.dstyle))
    return b":%d\r\n" % rank


@read_command("zrank")
def zrank_read(c: ReadContext, argv: list[bytes]) -> bytes:
    return _zrank(c, argv, False)


@read_command("zrevrank")
def zrevrank_read(c: ReadContext, argv: list[bytes]) -> bytes:
    return _zrank(c, argv, True)


# ---- ZCOUNT / ZLEXCOUNT ----


@read_command("zcount")
def zcount_read(c: ReadContext, argv: list[bytes]) -> bytes:
    lo, lo_ex = read_score_bound(argv[2], c.ks.dialect.fast_float_ranges)
    hi, hi_ex = read_score_bound(argv[3], c.ks.dialect.fast_float_ranges)
    zs = lookup_zset(c, argv[1])
    if zs is None:
        return b":0\r\n"
    start, end = zs.score_range(lo, lo_ex, hi, hi_ex)
    return b":%d\r\n" % (end - start)


@read_command("zlexcount")
def zlexcount_read(c: ReadContext, argv: list[bytes]) -> bytes:
    lo, hi = read_lex_bound(argv[2]), read_lex_bound(argv[3])
    zs = lookup_zset(c, argv[1])
    if zs is None:
        return b":0\r\n"
    start, end = zs.lex_range(lo, hi)
    return b":%d\r\n" % (end - start)


# ---- the ZRANGE family (zrangeGenericCommand) ----

_AUTO, _BY_RANK, _BY_SCORE, _BY_LEX = 0, 1, 2, 3


def limit_bounds(
    bounds: tuple[int, int], offset: int, limit: int, rev: bool, nth: bool = False
) -> tuple[int, int]:
    """LIMIT applied to a score or lex range's slice bounds `[start, end)`: skip `offset`
    elements from the first one in range (the last one with `rev`), then take up to `limit`
    (a negative limit is no limit).

    A negative offset walks off the end (nothing), except with `nth`: from Redis 7.4 and in
    Valkey a skiplist finds its first element with `zslNthInRange(offset)` (or, reversed,
    `-offset - 1`), where a negative n counts from the other end of the range."""
    start, end = bounds
    if start >= end:
        return start, start
    if offset >= 0:
        if rev:
            top = end - offset  # one past the first element returned
            a = start if limit < 0 else max(start, top - limit)
            return (a, top) if a < top else (start, start)
        a = start + offset
        b = end if limit < 0 else min(end, a + limit)
        return (a, b) if a < b else (start, start)
    if not nth:
        return start, start
    if rev:
        top = start - offset  # index start + n + 1, with n = -offset - 1
        if top > end:
            return start, start
        a = start if limit < 0 else max(start, top - limit)
        return (a, top) if a < top else (start, start)
    a = end + offset
    if a < start:
        return start, start
    b = end if limit < 0 else min(end, a + limit)
    return (a, b) if a < b else (start, start)


def _zrange_legacy(c: ReadContext, argv: list[bytes], rangetype: int, rev: bool) -> bytes:
    """The range commands before Redis 6.2, each with its own parser: the range first
    (ranks as longs, `min or max is not a float`, `min or max not valid string range
    item`), then ZRANGE's lone WITHSCORES, the score ranges' WITHSCORES and LIMIT, the lex
    ranges' LIMIT only; then the key."""
    n = len(argv)
    withscores = False
    offset, limit = 0, -1
    if rangetype == _BY_RANK:
        start, end = arg_long(argv[2]), arg_long(argv[3])
        if n == 5 and option_word(argv[4]) == b"withscores":
            withscores = True
        elif n >= 5:
            raise ReplyError(SYNTAX)
    else:
        min_arg, max_arg = (argv[3], argv[2]) if rev else (argv[2], argv[3])
        try:
            if rangetype == _BY_SCORE:
                lo, lo_ex = read_score_bound(min_arg, c.ks.dialect.fast_float_ranges)
                hi, hi_ex = read_score_bound(max_arg, c.ks.dialect.fast_float_ranges)
            else:
                lo_b, hi_b = read_lex_bound(min_arg), read_lex_bound(max_arg)
        except ReplyError:
            raise ReplyError(
                b"ERR min or max is not a float"
                if rangetype == _BY_SCORE
                else b"ERR min or max not valid string range item"
            ) from None
        j = 4
        while j < n:
            if rangetype == _BY_SCORE and option_word(argv[j]) == b"withscores":
                withscores = True
                j += 1
            elif n - j >= 3 and option_word(argv[j]) == b"limit":
                offset, limit = arg_long(argv[j + 1]), arg_long(argv[j + 2])
                j += 3
            else:
                raise ReplyError(SYNTAX)
    zs = lookup_zset(c, argv[1])
    if zs is None:
        return _EMPTY
    if rangetype == _BY_RANK:
        size = len(zs)
        a, b = rank_range(start, end, size)
        if rev:
            a, b = size - b, size - a
    elif rangetype == _BY_SCORE:
        a, b = limit_bounds(zs.score_range(lo, lo_ex, hi, hi_ex), offset, limit, rev)
    else:
        a, b = limit_bounds(zs.lex_range(lo_b, hi_b, rev), offset, limit, rev)
    if a >= b:
        return _EMPTY
    items = zs.index[a:b]
    if rev:
        items.reverse()
    if withscores:
        return scored_reply(items, c.proto, c.dstyle)
    return reply.bulk_array([m for _, m in items])


def _zrange(c: ReadContext, argv: list[bytes], rangetype: int, rev: bool | None) -> bytes:
    """`zrangeGenericCommand` for a client: `rangetype` _AUTO and `rev` None let ZRANGE's
    BYSCORE/BYLEX/REV options choose."""
    if not c.ks.dialect.zrange_unified:
        return _zrange_legacy(c, argv, _BY_RANK if rangetype == _AUTO else rangetype, bool(rev))
    withscores = False
    offset, limit = 0, -1
    n = len(argv)
    j = 4
    while j < n:
        opt = option_word(argv[j])
        if opt == b"withscores":
            withscores = True
        elif opt == b"limit" and n - j - 1 >= 2:
            offset = arg_long(argv[j + 1])
            limit = arg_long(argv[j + 2])
            j += 2
        elif rev is None and opt == b"rev":
            rev = True
        elif rangetype == _AUTO and opt == b"bylex":
            rangetype = _BY_LEX
        elif rangetype == _AUTO and opt == b"byscore":
            rangetype = _BY_SCORE
        else:
            raise ReplyError(SYNTAX)
        j += 1
    rev = bool(rev)
    if rangetype == _AUTO:
        rangetype = _BY_RANK
    if limit != -1 and rangetype == _BY_RANK:
        raise ReplyError(
            b"ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    if withscores and rangetype == _BY_LEX:
        raise ReplyError(b"ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    min_arg, max_arg = (argv[3], argv[2]) if rev and rangetype != _BY_RANK else (argv[2], argv[3])

    if rangetype == _BY_RANK:
        start, end = arg_long(min_arg), arg_long(max_arg)
        zs = lookup_zset(c, argv[1])
        if zs is None:
            return _EMPTY
        size = len(zs)
        a, b = rank_range(start, end, size)
        if rev:
            a, b = size - b, size - a
    elif rangetype == _BY_SCORE:
        lo, lo_ex = read_score_bound(min_arg, c.ks.dialect.fast_float_ranges)
        hi, hi_ex = read_score_bound(max_arg, c.ks.dialect.fast_float_ranges)
        zs = lookup_zset(c, argv[1])
        if zs is None:
            return _EMPTY
        a, b = limit_bounds(
            zs.score_range(lo, lo_ex, hi, hi_ex),
            offset,
            limit,
            rev,
            offset < 0 and not zs.listpack and c.ks.dialect.zset_nth_in_range,
        )
    else:
        lo_b, hi_b = read_lex_bound(min_arg), read_lex_bound(max_arg)
        zs = lookup_zset(c, argv[1])
        if zs is None:
            return _EMPTY
        a, b = limit_bounds(
            zs.lex_range(lo_b, hi_b, rev),
            offset,
            limit,
            rev,
            offset < 0 and not zs.listpack and c.ks.dialect.zset_nth_in_range,
        )
    if a >= b:
        return _EMPTY
    items = zs.index[a:b]  # slicing a SortedList copies whole sublists: faster than islice
    if rev:
        items.reverse()
    if withscores:
        return scored_reply(items, c.proto, c.dstyle)
    return reply.bulk_array([m for _, m in items])


@read_command("zrange")
def zrange_read(c: ReadContext, argv: list[bytes]) -> bytes:
    return _zrange(c, argv, _AUTO, None)


@read_command("zrevrange")
def zrevrange_read(c: ReadContext, argv: list[bytes]) -> bytes:
    return _zrange(c, argv, _BY_RANK, True)


@read_command("zrangebyscore")
def zrangebyscore_read(c: ReadContext, argv: list[bytes]) -> bytes:
    return _zrange(c, argv, _BY_SCORE, False)


@read_command("zrevrangebyscore")
def zrevrangebyscore_read(c: ReadContext, argv: list[bytes]) -> bytes:
    return _zrange(c, argv, _BY_SCORE, True)


@read_command("zrangebylex")
def zrangebylex_read(c: ReadContext, argv: list[bytes]) -> bytes:
    return _zrange(c, argv, _BY_LEX, False)


@read_command("zrevrangebylex")
def zrevrangebylex_read(c: ReadContext, argv: list[bytes]) -> bytes:
    return _zrange(c, argv, _BY_LEX, True)


# ---- ZRANDMEMBER ----


@read_command("zrandmember")
def zrandmember_read(c: ReadContext, argv: list[bytes]) -> bytes:
    n = len(argv)
    if n < 3:
        zs = lookup_zset(c, argv[1])
        if zs is None:
            return reply.null(c.proto)
        return reply.bulk(zs.index[random.randrange(len(zs))][1])
    count = arg_long(argv[2])
    checked = c.ks.dialect.random_count_range_check
    if count < -LLONG_MAX and checked:  # getRangeLongFromObjectOrReply(-LONG_MAX, LONG_MAX)
        raise ReplyError(
            b"ERR value is out of range, value must between %d and %d" % (-LLONG_MAX, LLONG_MAX)
        )
    withscores = False
    if n > 4 or (n == 4 and option_word(argv[3]) != b"withscores"):
        raise ReplyError(SYNTAX)
    if n == 4:
        withscores = True
        if not -(LLONG_MAX // 2) <= count <= LLONG_MAX // 2 and checked:
            raise ReplyError(b"ERR value is out of range")
    zs = lookup_zset(c, argv[1])
    if zs is None or count == 0:
        return _EMPTY
    size = len(zs)
    index = zs.index
    items: Sequence[tuple[float, bytes]]
    if count < 0 or count == 1:
        # Repeats allowed, random order (CASE 1). A huge count over a small zset picks from
        # a plain list rather than the SortedList (O(1) indexing).
        k = -count if count < 0 else 1
        items = random.choices(list(index) if k > size else index, k=k)
    elif count >= size:
        # CASE 2: the whole zset in `zuiNext` order, which walks from the tail.
        items = index[:]
        items.reverse()
    else:
        items = [index[i] for i in random.sample(range(size), count)]
    if withscores:
        return scored_reply(items, c.proto, c.dstyle)
    return reply.bulk_array([m for _, m in items])


# ---- ZUNION / ZINTER / ZDIFF / ZINTERCARD ----


def _read_source(c: ReadContext, key: bytes) -> Source:
    v = lookup(c, key)
    if v is None or isinstance(v, ZSet | set):
        return v
    raise ReplyError(WRONGTYPE)


def _zsetop_read(c: ReadContext, argv: list[bytes], op: int, cardinality_only: bool) -> bytes:
    """`zunionInterDiffGenericCommand` without a destination key."""
    setnum = arg_long(argv[1])
    if setnum < 1:
        if not c.ks.dialect.command_errors_say_fullname:
            raise ReplyError(b"ERR at least 1 input key is needed for %b" % argv[0].lower())
        raise ReplyError(b"ERR at least 1 input key is needed for '%b' command" % argv[0].lower())
    n = len(argv)
    if setnum > n - 2:
        raise ReplyError(SYNTAX)
    srcs = [_read_source(c, k) for k in argv[2 : 2 + setnum]]
    weights = [1.0] * setnum
    aggregate = _SUM
    withscores = False
    limit = 0
    j = 2 + setnum
    while j < n:
        opt = option_word(argv[j])
        remaining = n - j
        if op != _DIFF and not cardinality_only and remaining >= setnum + 1 and opt == b"weights":
            for i in range(setnum):
                w = string2d(argv[j + 1 + i])
                if w is None:
                    raise ReplyError(b"ERR weight value is not a float")
                weights[i] = w
            j += 1 + setnum
        elif op != _DIFF and not cardinality_only and remaining >= 2 and opt == b"aggregate":
            agg = _AGGREGATES.get(option_word(argv[j + 1]))
            if agg is None:
                raise ReplyError(SYNTAX)
            aggregate = agg
            j += 2
        elif not cardinality_only and opt == b"withscores":
            withscores = True
            j += 1
        elif cardinality_only and remaining >= 2 and opt == b"limit":
            limit = arg_long(argv[j + 1], b"ERR LIMIT can't be negative")
            if limit < 0:
                raise ReplyError(b"ERR LIMIT can't be negative")
            j += 2
        else:
            raise ReplyError(SYNTAX)
    result = zsetop(srcs, weights, aggregate, op)
    if cardinality_only:
        card = len(result)
        return b":%d\r\n" % (min(card, limit) if limit else card)
    items = sorted([(s, m) for m, s in result.items()])
    if withscores:
        return scored_reply(items, c.proto, c.dstyle)
    return reply.bulk_array([m for _, m in items])


@read_command("zunion")
def zunion_read(c: ReadContext, argv: list[bytes]) -> bytes:
    return _zsetop_read(c, argv, _UNION, False)


@read_command("zinter")
def zinter_read(c: ReadContext, argv: list[bytes]) -> bytes:
    return _zsetop_read(c, argv, _INTER, False)


@read_command("zdiff")
def zdiff_read(c: ReadContext, argv: list[bytes]) -> bytes:
    return _zsetop_read(c, argv, _DIFF, False)


@read_command("zintercard")
def zintercard_read(c: ReadContext, argv: list[bytes]) -> bytes:
    return _zsetop_read(c, argv, _INTER, True)


# ---- ZSCAN ----


def listpack_score_text(score: float, style: DoubleStyle, ziplist: bool = False) -> bytes:
    """A score as a listpack holds it (`zzlInsertAt`): an integer when `double2ll` takes it
    (so -0 is 0), else the text of `d2string`. A ziplist (before 7.0) holds the text of
    that version's `d2string`, "-0" included."""
    if ziplist:
        # 5.0/6.2's d2string: integers only strictly inside +-2^52, else "%.17g".
        if score == 0:
            return b"-0" if math.copysign(1.0, score) < 0 else b"0"
        if -4503599627370495.0 < score < 4503599627370496.0 and score.is_integer():
            return b"%d" % int(score)
        return format_double(score, "g17")
    i = double_to_int64(score)
    return b"%d" % i if i is not None else format_double(score, style)


@read_command("zscan")
def zscan_read(c: ReadContext, argv: list[bytes]) -> bytes:
    dialect = c.ks.dialect
    cursor = parse_cursor(argv[2], c.ks)
    key = argv[1]
    zs = lookup_zset(c, key)
    if zs is None:
        return EMPTY_SCAN
    count = 10
    match = None
    noscores = False
    i, n = 3, len(argv)
    while i < n:
        opt = option_word(argv[i])
        if opt == b"count" and n - i >= 2:
            count = arg_long(argv[i + 1])
            if count < 1:
                raise ReplyError(SYNTAX)
            i += 2
        elif opt == b"match" and n - i >= 2:
            match = glob_matcher(argv[i + 1], c.ks)  # None for `*`: as if absent
            i += 2
        elif opt == b"novalues" and dialect.scan_novalues:
            raise ReplyError(b"ERR NOVALUES option can only be used in HSCAN")
        elif opt == b"noscores" and dialect.scan_noscores:
            noscores = True
            i += 1
        else:
            raise ReplyError(SYNTAX)

    out: list[bytes] = []
    if zs.listpack:
        # Everything at once, in listpack (rank) order, whatever the cursor.
        style = c.dstyle
        ziplist = not dialect.zset_listpack_drops_zero_sign
        for score, member in zs.index:
            if match is None or match(member):
                out.append(member)
                if not noscores:
                    out.append(listpack_score_text(score, style, ziplist))
        nxt = 0
    else:
        members = zs
        # The cursor is bound to this key: another key's cursor is an invalid one.
        nxt, batch = c.ks.scans.step(cursor, lambda: list(members), count, ("zscan", c.db, key))
        get = zs.get
        for member in batch:
            score = get(member)
            if score is None:
                continue  # removed since the scan started
            if match is None or match(member):
                out.append(member)
                if not noscores:
                    # ld2string(LD_STR_AUTO): "%.17Lg" of the double, as "%.17g" prints it.
                    out.append(format_double(score, "g17"))
    return scan_reply(nxt, out)
