"""The stream's apply lane: the hottest write commands, several per call.

`apply_run(d, expires, commands, start, keep[, calls]) -> (next, applied)` applies
`commands[start]`, `commands[start + 1]`, ... (`StreamCommand` tuples) to one database's
dicts while each is one of the plain forms below on a key of the expected type, appending
each applied command's raw bytes to `keep`; it returns the index of the first command it did
NOT apply and the sum of the applied items' `commands` counts. With `calls`, it counts
each applied item there as INFO commandstats will: its `commands` under its name as sent,
or under `set` for a merged run of SETs (`stream.count_key`, replication.py `ReplStats.calls`). It
stops BEFORE anything unusual, changing nothing for that command: the caller applies it
through the per-command appliers (`Keyspace.apply`), which are the reference, then may call
again.

- SET k v (no option), MSET k v ... (whole pairs): store each, TTL dropped
  (`Keyspace.set_pairs`).
- INCR / DECR k, INCRBY / DECRBY k n: k missing or a `bytes` integer (`string2ll`), n an
  integer, no overflow, DECRBY's n not LLONG_MIN: store the new decimal, TTL kept.
- LPUSH / RPUSH k e ...: k missing (a new `ListValue`, TTL dropped) or a `ListValue`
  (extendleft / extend).
- LPOP / RPOP k (no count): k missing (nothing to do) or a non-empty `ListValue`: pop one,
  delete the key when emptied.
- ZADD k score m: a plain decimal score (`-?D+(.D+)?`) other than 0; k missing (a new `ZSet`,
  a listpack when m fits, TTL dropped) or a `ZSet` that is not a listpack (`ZSet.add`).

Everything else stops the lane: other commands (sets and hashes among them: their
appliers keep each key's encoding history, `Keyspace.encodings` and `SetValue`), options,
other value types (a snapshot's plain `list` or `ZSetValue`, a `HashValue`, a listpack
zset, whose conversions the appliers own), a zero score (its sign depends on the encoding
and the master's version). The caller
must call it only when a write needs nothing more than the store: no key watcher
(`Keyspace.on_key_modified`), no unsupported key to clear and no encoding mark to drop.

This module is the pure-Python twin of `apply_run` in `keyspace/_store.c`, which is used
instead when built (same commands, same stop conditions, same stores; tests run both
against each other and against the appliers). It owns no state and touches nothing but the
two dicts it is given and the values in them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from replproxy.keyspace.values import ZSET_MAX_LISTPACK_VALUE, ListValue, ZSet
from replproxy.resp.request import string2ll
from replproxy.resp.stream import count_key
from replproxy.speedups import c_function

__all__ = ["APPLY_RUN", "apply_run"]

_LLONG_MIN, _LLONG_MAX = -(1 << 63), (1 << 63) - 1
_PLAIN_SCORE = re.compile(rb"-?[0-9]+(?:\.[0-9]+)?")

ApplyRun = Callable[[dict, dict, Sequence, int, list, dict], tuple[int, int]]


def _drop_ttl(expires: dict, key: bytes) -> None:
    if expires:
        expires.pop(key, None)


def _apply_one(d: dict, expires: dict, argv: list[bytes]) -> bool:
    """Apply one command if it is this lane's; False (nothing changed) if not."""
    argc = len(argv)
    if argc < 2 or not all(type(a) is bytes for a in argv):
        return False
    name = argv[0].lower()
    key = argv[1]
    if name == b"set":
        if argc != 3:
            return False
        d[key] = argv[2]
        _drop_ttl(expires, key)
        return True
    if name == b"mset":
        if argc < 3 or argc % 2 == 0:
            return False
        d.update(zip(argv[1::2], argv[2::2]))
        if expires:
            for k in argv[1::2]:
                expires.pop(k, None)
        return True
    if name in (b"incr", b"decr", b"incrby", b"decrby"):
        if name in (b"incr", b"decr"):
            if argc != 2:
                return False
            by = 1 if name == b"incr" else -1
        else:
            by_ = string2ll(argv[2]) if argc == 3 else None
            if by_ is None:
                return False
            if name == b"decrby":
                if by_ == _LLONG_MIN:
                    return False
                by_ = -by_
            by = by_
        old = d.get(key)
        cur = 0
        if old is not None:
            parsed = string2ll(old) if type(old) is bytes else None
            if parsed is None:
                return False
            cur = parsed
        value = cur + by
        if not _LLONG_MIN <= value <= _LLONG_MAX:
            return False
        d[key] = b"%d" % value  # the TTL is kept
        return True
    if name in (b"lpush", b"rpush"):
        if argc < 3:
            return False
        old = d.get(key)
        if old is None:
            d[key] = ListValue(argv[:1:-1] if name == b"lpush" else argv[2:])
            _drop_ttl(expires, key)
        elif type(old) is ListValue:
            if name == b"lpush":
                old.extendleft(argv[2:])
            else:
                old.extend(argv[2:])
        else:
            return False
        return True
    if name in (b"lpop", b"rpop"):
        if argc != 2:
            return False
        old = d.get(key)
        if old is None:
            return True  # nothing to pop
        if type(old) is not ListValue or not old:
            return False
        if name == b"lpop":
            old.popleft()
        else:
            old.pop()
        if not old:
            del d[key]
            _drop_ttl(expires, key)
        return True
    if name == b"zadd":
        if argc != 4 or len(argv[2]) > 40 or _PLAIN_SCORE.fullmatch(argv[2]) is None:
            return False
        score = float(argv[2])
        if score == 0.0:
            return False  # a zero's sign depends on the encoding and the master
        member = argv[3]
        old = d.get(key)
        if old is None:
            d[key] = ZSet(((member, score),), len(member) <= ZSET_MAX_LISTPACK_VALUE)
            _drop_ttl(expires, key)
        elif type(old) is ZSet and not old.listpack:
            old.add(member, score)
        else:
            return False  # a listpack may convert; a ZSetValue is indexed first
        return True
    return False


def apply_run(
    d: dict,
    expires: dict,
    commands: Sequence,
    start: int,
    keep: list[bytes],
    calls: dict[bytes, int] | None = None,
) -> tuple[int, int]:
    """See the module docstring."""
    i = start
    applied = 0
    n = len(commands)
    while i < n:
        cmd = commands[i]
        argv = cmd[0]
        if type(argv) is not list or len(argv) < 2 or not _apply_one(d, expires, argv):
            break
        keep.append(cmd[1])
        applied += cmd[3]
        if calls is not None:
            key = argv[0] if cmd[3] == 1 else count_key(argv[0], cmd[3])
            calls[key] = calls.get(key, 0) + cmd[3]
        i += 1
    return i, applied


def _c_apply_run() -> ApplyRun | None:
    configure = c_function("replproxy.keyspace._store", "configure")
    run = c_function("replproxy.keyspace._store", "apply_run")
    if configure is None or run is None:
        return None
    configure(ListValue, ZSet, ZSET_MAX_LISTPACK_VALUE)
    return run


# The C lane when built (and REPLPROXY_NO_SPEEDUPS unset), else the twin.
APPLY_RUN: ApplyRun = _c_apply_run() or apply_run

# The client read lane (`resp/_lanes.c` string_reads) answers LRANGE from written lists too
# once it knows their class (the resp layer does not import the keyspace).
_set_list_type = c_function("replproxy.resp._lanes", "set_list_type")
if _set_list_type is not None:
    _set_list_type(ListValue)
