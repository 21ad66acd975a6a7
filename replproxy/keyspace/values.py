"""Value classes the keyspace needs beyond the RDB model's plain Python types.

`ZSet` is the only one: a sorted set must answer ranks and score/lex ranges in O(log n), so
it keeps a `SortedList` of (score, member) beside the member -> score dict it inherits from
`ZSetValue` (which keeps it writable by the RDB writer unchanged). Redis orders equal scores
by member bytes (`zslInsert` compares with `sdscmp`, i.e. memcmp), exactly as Python compares
`bytes`. Mutate a ZSet only through its methods, or the index goes stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sortedcontainers import SortedList

from replproxy.rdb.model import ZSetValue


class ZSet(ZSetValue):
    __slots__ = ("index",)

    def __init__(self, items: Iterable[tuple[bytes, float]] | dict[bytes, float] = ()) -> None:
        super().__init__(items)
        self.index: SortedList = SortedList((s, m) for m, s in self.items())

    def add(self, member: bytes, score: float) -> None:
        old = self.get(member)
        if old is not None:
            if old == score:  # as zsetAdd: `score != curscore` is false for 0 vs -0 too
                return
            self.index.remove((old, member))
        dict.__setitem__(self, member, score)
        self.index.add((score, member))

    def discard(self, member: bytes) -> bool:
        old = self.get(member)
        if old is None:
            return False
        dict.__delitem__(self, member)
        self.index.remove((old, member))
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

    def copy(self) -> ZSet:  # type: ignore[override]
        return ZSet(dict(self))

    def __setitem__(self, member: bytes, score: float) -> None:
        self.add(member, score)

    def __delitem__(self, member: bytes) -> None:
        if not self.discard(member):
            raise KeyError(member)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (ZSet, (dict(self),))
