"""Redis's `pqsort.c`: Bentley-McIlroy quicksort that leaves unsorted the partitions lying
wholly outside [lrange, rrange].

Used where a master sorts with it and the order of ties it produces is observable on the
replica: `SORT ... BY ... LIMIT ... STORE` and `GEOSEARCHSTORE`/`GEORADIUS ... COUNT ...
STORE`. Ported in element units instead of bytes; the partition test `lrange > last byte` of
the C code is `lrange > last element index` here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
Cmp = Callable[[T, T], int]


def _med3(v: list[T], a: int, b: int, c: int, cmp: Cmp[T]) -> int:
    if cmp(v[a], v[b]) < 0:
        if cmp(v[b], v[c]) < 0:
            return b
        return c if cmp(v[a], v[c]) < 0 else a
    if cmp(v[b], v[c]) > 0:
        return b
    return a if cmp(v[a], v[c]) < 0 else c


def _vecswap(v: list[T], a: int, b: int, n: int) -> None:
    for i in range(n):
        v[a + i], v[b + i] = v[b + i], v[a + i]


def pqsort(v: list[T], cmp: Cmp[T], lrange: int, rrange: int) -> None:
    """Sort `v` in place so that at least positions lrange..rrange hold what a full sort
    would put there, exactly as Redis's `pqsort` leaves the list."""
    stack = [(0, len(v))]
    while stack:
        base, n = stack.pop()
        while True:
            if n < 7:
                for pm in range(base + 1, base + n):
                    pl = pm
                    while pl > base and cmp(v[pl - 1], v[pl]) > 0:
                        v[pl], v[pl - 1] = v[pl - 1], v[pl]
                        pl -= 1
                break
            pm = base + n // 2
            if n > 7:
                pl, pn = base, base + n - 1
                if n > 40:
                    d = n // 8
                    pl = _med3(v, pl, pl + d, pl + 2 * d, cmp)
                    pm = _med3(v, pm - d, pm, pm + d, cmp)
                    pn = _med3(v, pn - 2 * d, pn - d, pn, cmp)
                pm = _med3(v, pl, pm, pn, cmp)
            v[base], v[pm] = v[pm], v[base]
            pa = pb = base + 1
            pc = pd = base + n - 1
            while True:
                while pb <= pc:
                    r = cmp(v[pb], v[base])
                    if r > 0:
                        break
                    if r == 0:
                        v[pa], v[pb] = v[pb], v[pa]
                        pa += 1
                    pb += 1
                while pb <= pc:
                    r = cmp(v[pc], v[base])
                    if r < 0:
                        break
                    if r == 0:
                        v[pc], v[pd] = v[pd], v[pc]
                        pd -= 1
                    pc -= 1
                if pb > pc:
                    break
                v[pb], v[pc] = v[pc], v[pb]
                pb += 1
                pc -= 1
            pn = base + n
            r = min(pa - base, pb - pa)
            _vecswap(v, base, pb - r, r)
            r = min(pd - pc, pn - pd - 1)
            _vecswap(v, pb, pn - r, r)
            # The left part recurses, the right part iterates, as in the C code; a part
            # entirely outside [lrange, rrange] is left unsorted.
            left = pb - pa
            right = pd - pc
            if left > 1 and not _outside(base, left, lrange, rrange):
                if right > 1 and not _outside(pn - right, right, lrange, rrange):
                    stack.append((pn - right, right))
                base, n = base, left
                continue
            if right > 1 and not _outside(pn - right, right, lrange, rrange):
                base, n = pn - right, right
                continue
            break


def _outside(start: int, n: int, lrange: int, rrange: int) -> bool:
    last = start + n - 1
    return (lrange < start and rrange < start) or (lrange > last and rrange > last)
