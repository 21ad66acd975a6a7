"""Redis's glob matching (`stringmatchlen` in util.c), for KEYS, the SCAN family's MATCH,
PSUBSCRIBE, PUBSUB CHANNELS, CONFIG GET and COMMAND LIST.

A pattern is read exactly as the C loop reads it (`glob_tokens`), quirks included, because
clients see the difference: `[` without `]` runs to the end of the pattern, `\\` escapes in
and out of classes, ranges may be given backwards (`[z-a]`) and compare bytes as signed C
`char`s. The tokens then compile to one regular expression whose middle segments are atomic
groups, so matching stays linear however many `*` a pattern has (the C code's "skip longer
matches" shortcut has the same effect). Newer servers (CVE-2024-31228 fix) treat a pattern
nested deeper than 1000 `*` as no match: `nesting_limit` says whether to do so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

_ANY = frozenset(range(256))


def _signed(b: int) -> int:
    """A byte as a C `char`: signed on x86-64, the servers' usual platform (on arm64 Linux
    `char` is unsigned and ranges over bytes >= 0x80 would match differently)."""
    return b - 256 if b >= 128 else b


def _lower(b: int) -> int:
    """C `tolower` in the C locale, on a (signed) char value."""
    return b + 32 if 65 <= b <= 90 else b


def _same_letter(c: int) -> frozenset[int]:
    """The bytes equal to `c` under `tolower` (nocase plain characters)."""
    return frozenset(b for b in range(256) if _lower(b) == _lower(c))


def glob_tokens(pattern: bytes, nocase: bool = False) -> list[frozenset[int] | None]:
    """`stringmatchlen`'s reading of a pattern: a list of tokens, None for a run of `*`,
    else the set of bytes one string byte may be. Every quirk of the C loop is kept: an
    unterminated `[` class runs to the end of the pattern, `\\` escapes in and out of
    classes (a trailing `\\` is literal), `[a-]` is the range a..`]`, ranges may be given
    backwards and compare bytes as signed chars."""
    out: list[frozenset[int] | None] = []
    n = len(pattern)
    i = 0
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # '*'
            while i + 1 < n and pattern[i + 1] == 0x2A:
                i += 1
            out.append(None)
        elif c == 0x3F:  # '?'
            out.append(_ANY)
        elif c == 0x5B:  # '['
            i += 1
            negate = i < n and pattern[i] == 0x5E  # '^'
            if negate:
                i += 1
            members: set[int] = set()
            while True:
                if i < n and pattern[i] == 0x5C and n - i >= 2:  # '\\' escapes one byte
                    i += 1
                    members.add(pattern[i])
                elif i < n and pattern[i] == 0x5D:  # ']'
                    break
                elif i >= n:  # no ']': the class ends with the pattern
                    i -= 1
                    break
                elif n - i >= 3 and pattern[i + 1] == 0x2D:  # 'x-y'
                    lo, hi = _signed(pattern[i]), _signed(pattern[i + 2])
                    if lo > hi:
                        lo, hi = hi, lo
                    if nocase:  # folded after the swap, as the C code does
                        lo, hi = _lower(lo), _lower(hi)
                        members.update(b for b in range(256) if lo <= _lower(_signed(b)) <= hi)
                    else:
                        members.update(b for b in range(256) if lo <= _signed(b) <= hi)
                    i += 2
                elif nocase:
                    members.update(_same_letter(pattern[i]))
                else:
                    members.add(pattern[i])
                i += 1
            out.append(_ANY - members if negate else frozenset(members))
        else:
            if c == 0x5C and n - i >= 2:  # '\\' escapes the next byte
                i += 1
                c = pattern[i]
            out.append(_same_letter(c) if nocase else frozenset((c,)))
        i += 1
    return out


def _byte_class(s: frozenset[int]) -> bytes:
    if len(s) == 256:
        return b"."
    if not s:
        return b"(?!)"
    if len(s) == 1:
        return re.escape(bytes(s))
    neg = len(s) > 128
    members = sorted(_ANY - s if neg else s)
    body = b"".join(b"\\x%02x" % b for b in members)
    return (b"[^" if neg else b"[") + body + b"]"


@lru_cache(maxsize=256)
def _compile(
    pattern: bytes, nesting_limit: bool, nocase: bool = False
) -> Callable[[bytes], object]:
    tokens = glob_tokens(pattern, nocase)
    segments: list[list[frozenset[int]]] = [[]]
    for t in tokens:
        if t is None:
            segments.append([])
        else:
            segments[-1].append(t)
    stars = len(segments) - 1
    internal = stars - (1 if stars and not segments[-1] else 0)
    if nesting_limit and internal > 1000:
        # Valkey / Redis 7.2.6+, 7.4.1+: recursion deeper than 1000 `*` is "no match".
        return lambda s: None
    parts = [b"".join(_byte_class(t) for t in seg) for seg in segments]
    if tokens:
        # The C loop never runs on an empty string: only the empty pattern matches it.
        rx = b"(?=.)" + parts[0]
    else:
        rx = b""
    if stars:
        # Every token but `*` takes exactly one byte, so the leftmost fit of each middle
        # segment is never worse than a later one: atomic groups make this linear (the C
        # code's "skip longer matches" shortcut does the same), and the last segment is
        # anchored at the end by fullmatch.
        rx += b"".join(b"(?>.*?" + p + b")" for p in parts[1:-1])
        rx += b".*" + parts[-1]
    return re.compile(rx, re.DOTALL).fullmatch


def matcher(
    pattern: bytes, nesting_limit: bool = True, nocase: bool = False
) -> Callable[[bytes], object]:
    """A predicate (truthy on match) for `stringmatchlen(pattern, s, nocase)`."""
    return _compile(pattern, nesting_limit, nocase)


def stringmatch(
    pattern: bytes, string: bytes, nocase: bool = False, nesting_limit: bool = True
) -> bool:
    """Whether `string` matches the glob `pattern` (`stringmatchlen`)."""
    return _compile(pattern, nesting_limit, nocase)(string) is not None
