"""Cursors for SCAN, HSCAN, SSCAN and ZSCAN: every element present for a whole scan is
returned at least once, even while the stream rewrites the keyspace.

Redis gets that guarantee from its reverse-binary bucket order over a hash table. Python's
dicts offer no stable position to resume from (deletes and resizes move entries), so a scan
takes a snapshot instead: cursor 0 copies the element list (pointers only: 8 bytes an
element, a C-speed copy), and each reply hands out a new cursor naming the snapshot and the
position reached. An element present for the whole scan is in the snapshot, so it is
returned; callers drop elements that no longer exist when they build each reply, so a
deleted one is not served. Elements added after the scan started may not be returned, which
SCAN's contract allows.

Cursors are plain numbers, as clients expect, and may be replayed (each names a fixed
position). They live in a bounded LRU: a cursor unused for `ttl` seconds or pushed out by
`max_cursors` newer ones answers `-ERR invalid cursor`, the text Redis gives a bad cursor.
A cursor may carry a `kind` (SCAN uses `("scan", db)`): handing it to a command of another
kind is an invalid cursor too, rather than a reply made of another snapshot's elements.
(Redis accepts ANY number as a cursor and resumes from that bucket; a number this relay did
not hand out has no meaning here, hence the error.)

Also here, shared by the *SCAN commands and KEYS:

- `parse_cursor`: the cursor text as the master parses it (`strtoul` up to Redis 7.2,
  `string2ull` from Redis 7.4 and in Valkey 8; they differ on "", leading blanks and signs).
- `glob_matcher`: MATCH / KEYS patterns with `stringmatchlen`'s exact semantics, compiled
  to one regular expression so filtering a million names runs at C speed.
- `scan_reply`: the two-element reply (cursor, elements) every *SCAN command answers.
- `ScanCursors.key_names`: a recent snapshot of a DB's key names, from which RANDOMKEY
  draws in O(1) (a dict has no random access).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from replproxy.args import c_string
from replproxy.errors import ReplyError
from replproxy.glob import matcher
from replproxy.resp import reply

if TYPE_CHECKING:
    from replproxy.keyspace.store import Keyspace

T = TypeVar("T")

INVALID_CURSOR = b"ERR invalid cursor"
_ULONG_MAX = 2**64 - 1
# What strtoul/strtoull accept (base 10): leading C-locale blanks, a sign, digits.
_STRTOUL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-9]+)")
_C_SPACE = frozenset(b" \t\n\v\f\r")


def _strtoul(s: bytes) -> int | None:
    """`strtoul(s, &end, 10)` that must consume all of `s` without ERANGE: the value (a
    negative one wraps modulo 2^64, as C does), or None."""
    m = _STRTOUL.fullmatch(s)
    if m is None:
        return None
    n = int(m.group(2))
    if n > _ULONG_MAX:
        return None
    return (-n) & _ULONG_MAX if m.group(1) == b"-" else n


def parse_cursor(raw: bytes, ks: Keyspace | None = None) -> int:
    """`parseScanCursorOrReply` of the master (`ks` tells which; Redis 7.0 rules without it).

    The argument is read as a C string (up to a NUL byte). `strtoul` (Redis up to 7.2): an
    empty string is cursor 0, a leading blank is refused, a sign is accepted (`-1` is
    2^64-1). `string2ull` (Redis 7.4+, Valkey 8): a plain non-negative integer, else
    strtoull's reading of it (leading blanks, `+`, `-0` and wrapped negatives accepted),
    but never "" nor `-5`."""
    s = c_string(raw)
    if ks is not None and ks.dialect.scan_cursor_string2ull:
        if s[:1] == b"-" and s[1:].isdigit() and s[1:2] != b"0" and int(s[1:]) <= 2**63:
            return _invalid()  # string2ll reads a negative long long: out of range
        n = _strtoul(s) if s else None
    elif not s:
        return 0
    elif s[0] in _C_SPACE:
        return _invalid()
    else:
        n = _strtoul(s)
    return _invalid() if n is None else n


def _invalid() -> int:
    raise ReplyError(INVALID_CURSOR)


class ScanCursors:
    """The live cursors. Bounded three ways: `max_cursors` cursors, each unused for at most
    `ttl` seconds, and `max_items` snapshot elements held in all (a snapshot is shared by
    the cursors of one scan; a scan of a 10M-key DB holds 80 MB of pointers). The least
    recently used cursors go first; a client still using one gets `-ERR invalid cursor`.
    """

    def __init__(
        self, max_cursors: int = 10_000, ttl: float = 300.0, max_items: int = 20_000_000
    ) -> None:
        self.max_cursors = max_cursors
        self.ttl = ttl
        self.max_items = max_items
        self._next = 1
        # cursor -> (snapshot, position, last use in monotonic seconds, kind)
        self._cursors: OrderedDict[int, tuple[Sequence[object], int, float, object]] = OrderedDict()
        # id(snapshot) -> [cursors holding it, its length]; `_items` sums the lengths.
        self._held: dict[int, list[int]] = {}
        self._items = 0
        # RANDOMKEY's snapshots of key names: db dict id -> (names, taken at).
        self._names: dict[int, tuple[list[bytes], float]] = {}

    def __len__(self) -> int:
        return len(self._cursors)

    @property
    def held_items(self) -> int:
        """Elements of all the snapshots the cursors hold."""
        return self._items

    def step(
        self, cursor: int, snapshot: Callable[[], Sequence[T]], count: int, kind: object = None
    ) -> tuple[int, Sequence[T]]:
        """One SCAN call: `(next cursor, up to count elements)`. Cursor 0 starts a scan by
        calling `snapshot()`; the next cursor is 0 when the scan is complete. A non-zero
        cursor must have been handed out by a step of the same `kind`."""
        now = time.monotonic()
        self._expire(now)
        if cursor == 0:
            items: Sequence[object] = snapshot()
            pos = 0
        else:
            state = self._cursors.get(cursor)
            if state is None or state[3] != kind:
                raise ReplyError(INVALID_CURSOR)
            items, pos, _, _ = state
            self._cursors[cursor] = (items, pos, now, kind)
            self._cursors.move_to_end(cursor)
        end = pos + max(count, 1)
        batch = items[pos:end]
        if end >= len(items):
            return 0, batch  # type: ignore[return-value]
        nxt = self._next
        self._next = nxt + 1 if nxt < _ULONG_MAX else 1
        self._add(nxt, (items, end, now, kind))
        while len(self._cursors) > self.max_cursors:
            self._drop_oldest()
        while self._items > self.max_items and len(self._held) > 1:
            self._drop_oldest()  # the new cursor's snapshot, the newest, stays
        return nxt, batch  # type: ignore[return-value]

    def _add(self, cursor: int, state: tuple[Sequence[object], int, float, object]) -> None:
        self._cursors[cursor] = state
        held = self._held.get(id(state[0]))
        if held is None:
            self._held[id(state[0])] = [1, len(state[0])]
            self._items += len(state[0])
        else:
            held[0] += 1

    def _drop_oldest(self) -> None:
        _cursor, state = self._cursors.popitem(last=False)
        held = self._held[id(state[0])]
        held[0] -= 1
        if not held[0]:
            del self._held[id(state[0])]
            self._items -= held[1]

    def _expire(self, now: float) -> None:
        cursors = self._cursors
        limit = now - self.ttl
        while cursors:
            first = next(iter(cursors))
            if cursors[first][2] > limit:
                break
            self._drop_oldest()
        if self._names:
            self._names = {k: v for k, v in self._names.items() if now - v[1] <= 1.0}

    def key_names(self, dbd: dict[bytes, Any], max_age: float = 1.0) -> tuple[list[bytes], bool]:
        """A snapshot of `dbd`'s key names at most `max_age` seconds old (RANDOMKEY draws
        from it; 0 forces a new one), and whether it was taken just now. Copying a million
        names costs milliseconds, so it is not done per call. Names deleted since may be in
        it (callers check), names added since may be missing."""
        now = time.monotonic()
        ident = id(dbd)
        cached = self._names.get(ident)
        if cached is not None and now - cached[1] <= max_age and max_age > 0:
            return cached[0], False
        names = list(dbd)
        # One snapshot per live DB dict: a flushed DB's dict (a new object) drops the old one.
        self._names = {k: v for k, v in self._names.items() if now - v[1] <= max_age and k != ident}
        self._names[ident] = (names, now)
        return names, True


def scan_reply(cursor: int, items: list[bytes]) -> bytes:
    """A SCAN-family reply: the next cursor, then the elements."""
    return b"*2\r\n$%d\r\n%d\r\n%b" % (len(b"%d" % cursor), cursor, reply.bulk_array(items))


def glob_nesting_limit(ks: Keyspace | None) -> bool:
    """Whether the master cuts pattern recursion at depth 1000 (CVE-2024-31228 fix: Redis
    6.2.16+, 7.2.6+, 7.4.1+, not 7.0; Valkey 7.2.7+, 8.0.1+)."""
    if ks is None:
        return True
    return ks.dialect.glob_nesting_limit


def glob_matcher(pattern: bytes, ks: Keyspace | None = None) -> Callable[[bytes], object] | None:
    """A predicate for `stringmatchlen(pattern, s, nocase=0)`, or None for the pattern `*`
    exactly, which KEYS and the *SCAN commands treat as "everything" (the empty name too,
    which `stringmatchlen` itself would not match)."""
    if pattern == b"*":
        return None
    return matcher(pattern, glob_nesting_limit(ks))
