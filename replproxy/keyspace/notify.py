"""Keyspace notifications: the event classes, the `notify-keyspace-events` letters, and the
events a write reports (`notify.c`).

Appliers report what a replica's command implementation reports, in the same order, by
calling `Keyspace.notify(CLASS, b"event", db, key)`; the keyspace publishes
`__keyspace@<db>__:<key> <event>` and/or `__keyevent@<db>__:<event> <key>` through its
`on_publish` hook (the relay's Pub/Sub) when the event's class is enabled, and does nothing
otherwise (one integer test). This module owns the flag values and their letters; it
publishes nothing itself and knows no client.

Letters (`keyspaceEventsStringToFlags`): K keyspace, E keyevent, g generic, $ string, l
list, s set, h hash, z zset, x expired, e evicted, t stream, m key miss, d module, n new key;
A is "g$lshzxetd" (not m, n). Redis 8.2 adds o (a key overwritten by a SET-like write) and c
(its type changed); neither is in A. The relay never expires or evicts a key itself: the
master's DEL/UNLINK arrives and reports `del`, as on a replica, so x and e never fire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replproxy.rdb.model import Value, type_name

if TYPE_CHECKING:
    from replproxy.dialect import MasterDialect

# The classes, with Redis's bit values (server.h); OVERWRITTEN and TYPE_CHANGED are Redis 8.2's.
KEYSPACE = 1 << 0  # K
KEYEVENT = 1 << 1  # E
GENERIC = 1 << 2  # g
STRING = 1 << 3  # $
LIST = 1 << 4  # l
SET = 1 << 5  # s
HASH = 1 << 6  # h
ZSET = 1 << 7  # z
EXPIRED = 1 << 8  # x
EVICTED = 1 << 9  # e
STREAM = 1 << 10  # t
KEY_MISS = 1 << 11  # m
MODULE = 1 << 13  # d
NEW = 1 << 14  # n
OVERWRITTEN = 1 << 15  # o (Redis 8.2)
TYPE_CHANGED = 1 << 16  # c (Redis 8.2)
ALL = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE

_LETTERS: dict[str, int] = {
    "A": ALL,
    "g": GENERIC,
    "$": STRING,
    "l": LIST,
    "s": SET,
    "h": HASH,
    "z": ZSET,
    "x": EXPIRED,
    "e": EVICTED,
    "K": KEYSPACE,
    "E": KEYEVENT,
    "t": STREAM,
    "m": KEY_MISS,
    "d": MODULE,
    "n": NEW,
    "o": OVERWRITTEN,
    "c": TYPE_CHANGED,
}
# What `keyspaceEventsFlagsToString` prints, in its order, for the classes A does not cover.
_CLASS_ORDER = (
    ("g", GENERIC),
    ("$", STRING),
    ("l", LIST),
    ("s", SET),
    ("h", HASH),
    ("z", ZSET),
    ("x", EXPIRED),
    ("e", EVICTED),
    ("t", STREAM),
    ("d", MODULE),
    ("n", NEW),
    ("o", OVERWRITTEN),
    ("c", TYPE_CHANGED),
)


def letters(dialect: MasterDialect | None) -> str:
    """The letters the master's version knows (every letter the relay knows for None)."""
    out = "".join(_LETTERS)
    if dialect is not None and not dialect.keyspace_overwrite_events:
        out = out.replace("o", "").replace("c", "")
    if dialect is not None and not dialect.keyspace_new_events:
        out = out.replace("n", "")
    return out


def supported(flags: int, dialect: MasterDialect) -> int:
    """`flags` without the classes the master's version does not have."""
    if not dialect.keyspace_overwrite_events:
        flags &= ~(OVERWRITTEN | TYPE_CHANGED)
    if not dialect.keyspace_new_events:
        flags &= ~NEW
    return flags


def parse_flags(text: str, dialect: MasterDialect | None = None) -> int | None:
    """`keyspaceEventsStringToFlags`: the flags of `text`, or None when a character is not
    a letter of the master's version. The empty string turns notifications off."""
    known = letters(dialect)
    flags = 0
    for ch in text:
        if ch not in known:
            return None
        flags |= _LETTERS[ch]
    return flags


def flags_text(flags: int) -> str:
    """`keyspaceEventsFlagsToString`: what CONFIG GET notify-keyspace-events answers. With
    every class of A set it prints A alone: n (and 8.2's o, c) are then not printed, although
    they stay on, as in Redis."""
    if flags & ALL == ALL:
        out = "A"
    else:
        out = "".join(ch for ch, bit in _CLASS_ORDER if flags & bit)
    if flags & KEYSPACE:
        out += "K"
    if flags & KEYEVENT:
        out += "E"
    if flags & KEY_MISS:
        out += "m"
    return out


def value_type(value: Value) -> str:
    """The type a value has for `type_changed` (TYPE's answer)."""
    return type_name(value)
