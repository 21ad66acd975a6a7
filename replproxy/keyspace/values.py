"""Value classes the keyspace needs beyond the RDB model's plain Python types.

`ListValue` is a list key once the stream has written it: a deque, O(1) at both ends as
Redis's quicklist is. A Python list moves every element on LPUSH/LPOP: a queue of 400k
elements made the relay apply ~10k LPOPs a second while the master did 500k. A snapshot
loads lists as plain `list`s (the RDB model's type, and the cheapest to build); the first
write upgrades one, so code reading `dbs` directly must accept both (`isinstance(v, list |
deque)`, `list_slice`).

`ZSet`: a sorted set must answer ranks and score/lex ranges in O(log n), so
it keeps a `SortedList` of (score, member) beside the member -> score dict it inherits from
`ZSetValue` (which keeps it writable by the RDB writer unchanged), maintained lazily (see
the class). Redis orders equal scores
by member bytes (`zslInsert` compares with `sdscmp`, i.e. memcmp), exactly as Python compares
`bytes`. Mutate a ZSet only through its methods, or the index goes stale.

`listpack` records the encoding the MASTER holds the zset in (max 128 entries of at most 64
bytes by default, and a zset never converts back when it shrinks). It matters for one
observable thing: from 7.0 a listpack stores an integral score as an integer, so a -0 score
written into a listpack zset reads back as 0, while a skiplist keeps the sign. A zset built
from a snapshot guesses it from its size (the RDB type said it, but the model drops it).

Ranges are answered as `(lo, hi)` slice bounds into `index`, with Redis's range semantics:
`score_range` is `zslParseRange`'s min/max with `(` exclusive bounds, `lex_range` is
`zslParseLexRange`'s `[`/`(`/`-`/`+` bounds (`LexBound`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice

from sortedcontainers import SortedList

from replproxy.rdb.model import (
    SET_ENC_HASHTABLE,
    SET_ENC_INTSET,
    SET_ENC_LISTPACK,
    ZSetValue,
)

# The master's `zset-max-listpack-entries` / `zset-max-listpack-value` (defaults; the relay
# cannot read the master's config from the stream).
ZSET_MAX_LISTPACK_ENTRIES = 128
ZSET_MAX_LISTPACK_VALUE = 64


def fits_listpack(count: int, max_member_len: int) -> bool:
    """`zsetConvertToListpackIfNeeded` / `zsetTypeCreate` limits."""
    return count <= ZSET_MAX_LISTPACK_ENTRIES and max_member_len <= ZSET_MAX_LISTPACK_VALUE


class ListValue(deque[bytes]):
    """A list key (see the module docstring). Equal to a list or deque of the same
    elements, so a dataset compares equal whichever form its lists are in."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list | deque):
            return len(self) == len(other) and all(map(bytes.__eq__, self, other))
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None


# A set's encodings, smallest first (a set only ever moves up: `t_set.set_add`).
INTSET, LISTPACK, HASHTABLE = SET_ENC_INTSET, SET_ENC_LISTPACK, SET_ENC_HASHTABLE


class SetValue(set[bytes]):
    """A set key, and how its master holds it: `enc` is INTSET (members iterate in
    ascending numeric order), LISTPACK (Redis 7.2+ and Valkey: in `order`, insertion
    order, kept as a dict for O(1) removal) or HASHTABLE (the master's seeded hash order,
    which no other server shares). The encoding only changes the way `t_set` says it does;
    membership is the set itself. Equal to any set of the same members."""

    __slots__ = ("enc", "order")

    def __init__(
        self,
        members: Iterable[bytes] = (),
        enc: int = HASHTABLE,
        order: dict[bytes, None] | None = None,
    ) -> None:
        super().__init__(members)
        self.enc = enc
        self.order = order

    def members(self) -> list[bytes]:
        """The members in the master's iteration order (`setTypeNext`)."""
        if self.enc == INTSET:
            return sorted(self, key=int)
        if self.order is not None:
            return list(self.order)
        return list(self)

    def copy(self) -> SetValue:
        return SetValue(self, self.enc, None if self.order is None else dict(self.order))

    def __reduce__(self) -> tuple[object, ...]:
        return (SetValue, (set(self), self.enc, self.order))


def list_slice(lst: list[bytes] | deque[bytes], start: int, stop: int) -> list[bytes]:
    """`lst[start:stop]` for 0 <= start <= stop <= len: a deque is walked from the nearer
    end (LRANGE -100 -1 of a long list must not cost the whole list)."""
    if isinstance(lst, list):
        return lst[start:stop]
    n = len(lst)
    if start <= n - stop:
        return list(islice(lst, start, stop))
    out = list(islice(reversed(lst), n - stop, n - start))
    out.reverse()
    return out


class LexBound:
    """A parsed lex range item (`zslParseLexRangeItem`): `[m` / `(m` give `value` m and
    `kind` 0; `-` and `+` (shared.minstring / maxstring) give `kind` -1 / +1."""

    __slots__ = ("exclusive", "kind", "value")

    def __init__(self, value: bytes, exclusive: bool, kind: int = 0) -> None:
        self.value = value
        self.exclusive = exclusive
        self.kind = kind


def _cmp_bounds(a: LexBound, b: LexBound) -> int:
    """`sdscmplex` between two range items."""
    if a.kind == b.kind and a.kind != 0:
        return 0
    if a.kind < 0 or b.kind > 0:
        return -1
    if a.kind > 0 or b.kind < 0:
        return 1
    return -1 if a.value < b.value else (1 if a.value > b.value else 0)


def _lex_gte_min(member: bytes, lo: LexBound) -> bool:
    if lo.kind:
        return lo.kind < 0
    return member > lo.value if lo.exclusive else member >= lo.value


def _lex_lte_max(member: bytes, hi: LexBound) -> bool:
    if hi.kind:
        return hi.kind > 0
    return member < hi.value if hi.exclusive else member <= hi.value


# A sorted set's queued index changes: past a quarter of its size, a zset of up to this many
# members is re-sorted by its next read (~0.1 s at this size); a bigger one applies its
# queue once it is this long, so no read waits for more than ~0.1 s of inserts.
_ZSET_RESORT_MAX = 200_000
_ZSET_PENDING_MAX = 50_000


class ZSet(ZSetValue):
    """A sorted set: the member -> score dict, and `index`, the (score, member) pairs in
    order, built on first use and kept up to date lazily: writes queue their changes and a
    read applies them. A zset the stream writes faster than anyone reads (a leaderboard fed
    at full speed) would otherwise pay a sorted insert per ZADD, three times what the master
    pays (see `_ZSET_RESORT_MAX` for how long the queue gets)."""

    __slots__ = ("_index", "_pending", "listpack")

    def __init__(
        self,
        items: Iterable[tuple[bytes, float]] | dict[bytes, float] = (),
        listpack: bool | None = None,
    ) -> None:
        super().__init__(items)
        self._index: SortedList | None = None
        # Changes not yet in `_index`, in order: (True, item) added, (False, item) removed.
        self._pending: list[tuple[bool, tuple[float, bytes]]] = []
        if listpack is None:
            # A -0 score cannot be in a 7.0+ listpack: such a zset was a skiplist.
            n = len(self)
            listpack = (
                n <= ZSET_MAX_LISTPACK_ENTRIES
                and fits_listpack(n, max(map(len, self), default=0))
                and not any(s == 0 and math.copysign(1.0, s) < 0 for s in self.values())
            )
        self.listpack: bool = listpack

    @property
    def index(self) -> SortedList:
        """The (score, member) pairs in Redis's order (score, then member bytes)."""
        idx = self._index
        if idx is None:
            idx = self._index = SortedList((s, m) for m, s in self.items())
        elif self._pending:
            for added, item in self._pending:
                if added:
                    idx.add(item)
                else:
                    idx.remove(item)
            self._pending.clear()
        return idx

    def _queue(self, added: bool, item: tuple[float, bytes]) -> None:
        if self._index is None:
            return  # rebuilt from the dict when next read
        pending = self._pending
        pending.append((added, item))
        n = len(self)
        if n <= _ZSET_RESORT_MAX:
            if len(pending) > 64 + (n >> 2):
                self._index = None  # a re-sort now costs less than the queued inserts
                pending.clear()
        elif len(pending) >= _ZSET_PENDING_MAX:
            self.index  # noqa: B018  (applies the queue: a read never stalls on a long one)

    def add(self, member: bytes, score: float) -> None:
        old = self.get(member)
        if old is not None:
            if old == score:  # as zsetAdd: `score != curscore` is false for 0 vs -0 too
                return
            self._queue(False, (old, member))
        dict.__setitem__(self, member, score)
        self._queue(True, (score, member))

    def discard(self, member: bytes) -> bool:
        old = self.get(member)
        if old is None:
            return False
        dict.__delitem__(self, member)
        self._queue(False, (old, member))
        return True

    def rank(self, member: bytes) -> int | None:
        score = self.get(member)
        return None if score is None else self.index.index((score, member))

    def by_rank(self, start: int, stop: int) -> list[tuple[float, bytes]]:
        """Items with rank in [start, stop], both already normalised to 0..len-1."""
        if start > stop:
            return []
        return list(self.index.islice(start, stop + 1))

    def iter_asc(self) -> Iterator[tuple[float, bytes]]:
        return iter(self.index)

    def score_range(self, lo: float, lo_ex: bool, hi: float, hi_ex: bool) -> tuple[int, int]:
        """Slice bounds of the items with `lo <(=) score <(=) hi` (`zslValueGteMin`/`LteMax`).

        Scores are doubles, so `score > x` is `score >= nextafter(x, +inf)`; -0.0 and 0.0
        compare equal, as in C."""
        idx = self.index
        n = len(idx)
        if lo_ex:
            start = n if lo == math.inf else idx.bisect_left((math.nextafter(lo, math.inf),))
        else:
            start = idx.bisect_left((lo,))
        if hi_ex:
            end = idx.bisect_left((hi,))
        else:
            end = n if hi == math.inf else idx.bisect_left((math.nextafter(hi, math.inf),))
        return start, max(start, end)

    def lex_range(self, lo: LexBound, hi: LexBound, reverse: bool = False) -> tuple[int, int]:
        """Slice bounds of the members in a lex range.

        Lex ranges are defined by Redis only when all scores are equal; then this is a
        bisection. Otherwise it follows the listpack walk (`zzlFirstInLexRange` then
        "while <= max", or from the tail with `reverse`), the deterministic one of the two
        encodings."""
        idx = self.index
        n = len(idx)
        if n == 0:
            return 0, 0
        c = _cmp_bounds(lo, hi)
        if c > 0 or (c == 0 and (lo.exclusive or hi.exclusive)):
            return 0, 0
        first_score, first_member = idx[0]
        last_score, last_member = idx[-1]
        if not _lex_gte_min(last_member, lo) or not _lex_lte_max(first_member, hi):
            return 0, 0
        if first_score == last_score:  # members are in memcmp order: bisect
            s = first_score
            if lo.kind:
                start = 0 if lo.kind < 0 else n
            elif lo.exclusive:
                start = idx.bisect_right((s, lo.value))
            else:
                start = idx.bisect_left((s, lo.value))
            if hi.kind:
                end = n if hi.kind > 0 else 0
            elif hi.exclusive:
                end = idx.bisect_left((s, hi.value))
            else:
                end = idx.bisect_right((s, hi.value))
            return start, max(start, end)
        if not reverse:
            i = 0
            while i < n and not _lex_gte_min(idx[i][1], lo):
                i += 1
            j = i
            while j < n and _lex_lte_max(idx[j][1], hi):
                j += 1
            return i, j
        j = n - 1
        while j >= 0 and not _lex_lte_max(idx[j][1], hi):
            j -= 1
        i = j
        while i >= 0 and _lex_gte_min(idx[i][1], lo):
            i -= 1
        return i + 1, j + 1

    def remove_range(self, start: int, end: int) -> int:
        """Remove the items with rank in [start, end) (slice bounds); return how many."""
        if start >= end:
            return 0
        idx = self.index
        removed = idx[start:end]
        del idx[start:end]
        for _, member in removed:
            dict.__delitem__(self, member)
        return len(removed)

    def zpop(self, count: int, highest: bool) -> list[tuple[float, bytes]]:
        """ZPOPMIN/ZPOPMAX: remove and return up to `count` lowest (or highest) items."""
        n = len(self.index)
        count = min(count, n)
        start, end = (n - count, n) if highest else (0, count)
        items = list(self.index.islice(start, end))
        self.remove_range(start, end)
        return items

    def copy(self) -> ZSet:
        return ZSet(dict(self), self.listpack)

    def __setitem__(self, member: bytes, score: float) -> None:
        self.add(member, score)

    def __delitem__(self, member: bytes) -> None:
        if not self.discard(member):
            raise KeyError(member)

    def __reduce__(self) -> tuple[type[ZSet], tuple[dict[bytes, float], bool]]:
        return (ZSet, (dict(self), self.listpack))
