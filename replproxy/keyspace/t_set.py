"""Sets: the master's set writes, applied to `set[bytes]` values, and the set reads.

This module owns the appliers of the set commands a master propagates and the set read
commands; it touches no other type. Redis's encodings (intset, listpack, hashtable) change
only memory layout and the iteration order of replies, never membership, which is all a `set`
holds. A set that becomes empty is deleted, as `t_set.c` does after every removal.

What arrives (read from `src/t_set.c`, 5.0 to 8.x, and Valkey 8):

- verbatim: SADD, SREM, SMOVE, SINTERSTORE, SUNIONSTORE, SDIFFSTORE. The *STORE commands
  overwrite the destination whatever its type and drop its TTL (`setKey`), or delete it when
  the result is empty; a missing source is an empty set; the destination may be a source.
- SPOP is random, so it never arrives: `SPOP k` -> `SREM k m` (`spopCommand`, 5.0+);
  `SPOP k n` -> `DEL k` when n >= size, otherwise SREMs (`spopWithCountCommand`: one
  `SREM k m` per member in 5.x/6.x, batches of up to 1024 members in 7.0+, wrapped in
  MULTI/EXEC). SRANDMEMBER is a read. Neither is registered: if one arrived verbatim it
  would be reported as unsupported rather than guessed at.

Reads (`t_set.c`, Redis 7.0 and Valkey 8.1): SCARD, SISMEMBER, SMISMEMBER, SMEMBERS (a set in
RESP3, as SINTER/SUNION/SDIFF), SINTER, SUNION, SDIFF, SINTERCARD, SRANDMEMBER, SSCAN.

- Order. A set is a Python `set`, which has no order of its own, so replies follow what the
  master's encoding would do where that is deterministic: an intset (every member a 64-bit
  integer in canonical form, at most 512 members) iterates in ascending numeric order, and
  so do SMEMBERS, SSCAN, SRANDMEMBER with a count >= the size, and the results of
  SINTER/SUNION/SDIFF, which Redis builds into a fresh intset while they stay integers.
  Hashtable sets iterate in the master's hash-seed order (different on every replica) and
  Valkey's listpack sets (up to 128 members of up to 64 bytes) in insertion order, which a
  `set` does not keep: those replies have the master's members in another order.
- Multi-key commands look every key up first, in order: a missing key is an empty set, and
  any key of another type answers WRONGTYPE, even after a missing one.
- SINTERCARD numkeys key... [LIMIT n]: numkeys >= 1 and <= the keys given, then LIMIT >= 0
  (0: no limit), each refused with its own text (a non-number too), before any lookup.
- SRANDMEMBER key [count]: count in -LONG_MAX..LONG_MAX, parsed before the lookup; negative
  may repeat members; always an array (not a set) in RESP3.
- SSCAN: as HSCAN (t_hash.py): an intset, or a Valkey listpack set, is answered whole with
  cursor 0 whatever the cursor; a hashtable set through `Keyspace.scans`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

from replproxy.args import LLONG_MAX, LLONG_MIN, option_word
from replproxy.errors import SYNTAX
from replproxy.keyspace.reads import (
    EMPTY_SCAN,
    ReadContext,
    ReplyError,
    arg_long,
    lookup_set,
    read_command,
)
from replproxy.keyspace.registry import (
    ApplyError,
    move_between,
    store_from_rest,
    write_command,
)
from replproxy.keyspace.scan import parse_cursor, scan_reply
from replproxy.keyspace.store import Keyspace
from replproxy.keyspace.t_hash import (
    check_random_reply_size,
    get_random_count,
    parse_scan_options,
)
from replproxy.resp import reply


def _set(ks: Keyspace, db: int, key: bytes) -> set[bytes] | None:
    value = ks.get(db, key)
    if value is None or type(value) is set:
        return value
    raise ApplyError(f"WRONGTYPE: {key!r} holds a {type(value).__name__}, not a set")


@write_command("sadd")
def sadd(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    s = _set(ks, db, key)
    if s is None:
        ks.set(db, key, set(argv[2:]))
    else:
        s.update(argv[2:])
        ks.touched(db, key)


@write_command("srem")
def srem(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    s = _set(ks, db, key)
    if s is None:
        return
    s.difference_update(argv[2:])
    if s:
        ks.touched(db, key)
    else:
        ks.delete(db, key)


@write_command("smove", keys=(1, 2, 1), roles=move_between)
def smove(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """SMOVE source destination member."""
    src_key, dst_key, member = argv[1], argv[2], argv[3]
    src = _set(ks, db, src_key)
    dst = _set(ks, db, dst_key)  # smoveCommand checks both types before acting
    if src is None or member not in src or src is dst:
        return  # same source and destination: a no-op in smoveCommand
    src.discard(member)
    if src:
        ks.touched(db, src_key)
    else:
        ks.delete(db, src_key)
    if dst is None:
        ks.set(db, dst_key, {member})
    else:
        dst.add(member)
        ks.touched(db, dst_key)


def _store(ks: Keyspace, db: int, dst_key: bytes, result: set[bytes]) -> None:
    if result:
        ks.set(db, dst_key, result, fresh=True)
    else:
        ks.delete(db, dst_key, fresh=True)


def _sources(ks: Keyspace, db: int, keys: list[bytes]) -> list[set[bytes] | None]:
    return [_set(ks, db, k) for k in keys]


@write_command("sinterstore", keys=(1, -1, 1), roles=store_from_rest(2))
def sinterstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    sets = _sources(ks, db, argv[2:])
    result: set[bytes] = set()
    if sets and all(s is not None for s in sets):
        present = sorted((s for s in sets if s is not None), key=len)
        result = present[0].intersection(*present[1:])
    _store(ks, db, argv[1], result)


@write_command("sunionstore", keys=(1, -1, 1), roles=store_from_rest(2))
def sunionstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    result: set[bytes] = set()
    result.update(*(s for s in _sources(ks, db, argv[2:]) if s is not None))
    _store(ks, db, argv[1], result)


@write_command("sdiffstore", keys=(1, -1, 1), roles=store_from_rest(2))
def sdiffstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    first, *others = _sources(ks, db, argv[2:])
    result: set[bytes] = set()
    if first is not None:
        result = first.difference(*(s for s in others if s is not None))
    _store(ks, db, argv[1], result)


# ---- reads ----

# The master's set-max-intset-entries, and Valkey's set-max-listpack-entries / -value.
SET_MAX_INTSET_ENTRIES = 512
SET_MAX_LISTPACK_ENTRIES = 128
SET_MAX_LISTPACK_VALUE = 64
# Members joined by \n, all in string2ll's canonical form (no sign but -, no leading 0).
_INTS = re.compile(rb"(?:0|-?[1-9][0-9]{0,18})(?:\n(?:0|-?[1-9][0-9]{0,18}))*")


def intset_order(members: set[bytes]) -> list[bytes] | None:
    """`members` in intset order (ascending as int64) if an intset can hold them all
    (`isSdsRepresentableAsLongLong` for each, at most set-max-intset-entries), else None."""
    n = len(members)
    if not n or n > SET_MAX_INTSET_ENTRIES:
        return None
    joined = b"\n".join(members)
    # A member containing \n would add a separator: it is no integer anyway.
    if joined.count(b"\n") != n - 1 or _INTS.fullmatch(joined) is None:
        return None
    out = sorted(members, key=int)
    if int(out[0]) < LLONG_MIN or int(out[-1]) > LLONG_MAX:
        return None
    return out


def iteration_order(members: set[bytes]) -> list[bytes]:
    """The members in the order the master iterates them: an intset's ascending order, else
    the set's own (the master's hash table order is not reproducible)."""
    ordered = intset_order(members)
    return list(members) if ordered is None else ordered


def _set_reply(members: set[bytes], proto: int) -> bytes:
    if not members:
        return b"*0\r\n" if proto == 2 else b"~0\r\n"
    return reply.bulk_set(iteration_order(members), proto)


@read_command("scard")
def scard(c: ReadContext, argv: list[bytes]) -> bytes:
    s = lookup_set(c, argv[1])
    return b":%d\r\n" % (0 if s is None else len(s))


@read_command("sismember")
def sismember(c: ReadContext, argv: list[bytes]) -> bytes:
    s = lookup_set(c, argv[1])
    return b":1\r\n" if s is not None and argv[2] in s else b":0\r\n"


@read_command("smismember")
def smismember(c: ReadContext, argv: list[bytes]) -> bytes:
    s = lookup_set(c, argv[1]) or ()
    flags = [b":1\r\n" if m in s else b":0\r\n" for m in argv[2:]]
    return b"*%d\r\n%b" % (len(flags), b"".join(flags))


@read_command("smembers")
def smembers(c: ReadContext, argv: list[bytes]) -> bytes:
    s = lookup_set(c, argv[1])
    if s is None:
        return b"*0\r\n" if c.proto == 2 else b"~0\r\n"
    return reply.bulk_set(iteration_order(s), c.proto)


def _lookup_sets(c: ReadContext, keys: Iterable[bytes]) -> list[set[bytes] | None]:
    """Every key looked up in order: WRONGTYPE from the first key of another type."""
    return [lookup_set(c, k) for k in keys]


def _intersection(sets: list[set[bytes] | None]) -> set[bytes]:
    present = [s for s in sets if s is not None]
    if len(present) < len(sets) or not present:
        return set()
    present.sort(key=len)
    return present[0].intersection(*present[1:])


@read_command("sinter")
def sinter(c: ReadContext, argv: list[bytes]) -> bytes:
    return _set_reply(_intersection(_lookup_sets(c, argv[1:])), c.proto)


@read_command("sunion")
def sunion(c: ReadContext, argv: list[bytes]) -> bytes:
    result: set[bytes] = set()
    result.update(*(s for s in _lookup_sets(c, argv[1:]) if s is not None))
    return _set_reply(result, c.proto)


@read_command("sdiff")
def sdiff(c: ReadContext, argv: list[bytes]) -> bytes:
    first, *others = _lookup_sets(c, argv[1:])
    if first is None:
        return _set_reply(set(), c.proto)
    return _set_reply(first.difference(*(s for s in others if s is not None)), c.proto)


@read_command("sintercard")
def sintercard(c: ReadContext, argv: list[bytes]) -> bytes:
    msg = b"ERR numkeys should be greater than 0"
    numkeys = arg_long(argv[1], msg)
    if numkeys < 1:
        raise ReplyError(msg)
    if numkeys > len(argv) - 2:
        raise ReplyError(b"ERR Number of keys can't be greater than number of args")
    limit = 0
    last = len(argv) - 1
    j = 2 + numkeys
    while j <= last:
        if option_word(argv[j]) == b"limit" and j < last:
            j += 1
            limit = arg_long(argv[j], b"ERR LIMIT can't be negative")
            if limit < 0:
                raise ReplyError(b"ERR LIMIT can't be negative")
        else:
            raise ReplyError(SYNTAX)
        j += 1
    sets = _lookup_sets(c, argv[2 : 2 + numkeys])
    if any(s is None for s in sets):
        return b":0\r\n"
    present = sorted((s for s in sets if s is not None), key=len)
    first, rest = present[0], present[1:]
    if not limit or limit >= len(first):
        return b":%d\r\n" % len(first.intersection(*rest))
    n = 0
    for m in first:  # stop at the limit, as sinterGenericCommand does
        if all(m in s for s in rest):
            n += 1
            if n >= limit:
                break
    return b":%d\r\n" % n


@read_command("srandmember")
def srandmember(c: ReadContext, argv: list[bytes]) -> bytes:
    argc = len(argv)
    if argc > 3:
        raise ReplyError(SYNTAX)
    if argc == 2:
        s = lookup_set(c, argv[1])
        if s is None:
            return reply.null(c.proto)
        return reply.bulk(random.choice(list(s)))
    n = get_random_count(argv[2])
    s = lookup_set(c, argv[1])
    if s is None or n == 0:
        return reply.EMPTY_ARRAY
    if n < 0 or n == 1:
        check_random_reply_size(-n)
        return reply.bulk_array(random.choices(list(s), k=abs(n)))
    if n >= len(s):
        return reply.bulk_array(iteration_order(s))  # the whole set, in its order
    return reply.bulk_array(random.sample(list(s), n))


def _is_valkey_listpack(c: ReadContext, s: set[bytes]) -> bool:
    """A set Valkey (and Redis 7.2+) keeps as a listpack, by size."""
    if len(s) > SET_MAX_LISTPACK_ENTRIES:
        return False
    if not c.ks.dialect.listpack_sets:
        return False
    return all(len(m) <= SET_MAX_LISTPACK_VALUE for m in s)


@read_command("sscan")
def sscan(c: ReadContext, argv: list[bytes]) -> bytes:
    cursor = parse_cursor(argv[2], c.ks)
    s = lookup_set(c, argv[1])
    if s is None:
        return EMPTY_SCAN
    count, match, _ = parse_scan_options(c, argv, is_hash=False)
    members: Iterable[bytes] | None = intset_order(s)
    if members is not None or _is_valkey_listpack(c, s):
        if members is None:
            members = s
        cursor = 0
        live = None
    else:
        snap = s
        cursor, members = c.ks.scans.step(cursor, lambda: list(snap), count,
                                               ("sscan", c.db, argv[1]))
        live = s  # drop members removed since the snapshot
    if match is not None:
        members = [m for m in members if match(m)]
    if live is not None:
        members = [m for m in members if m in live]
    return scan_reply(cursor, list(members))
