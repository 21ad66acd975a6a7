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
from replproxy.keyspace import notify as ksn
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
from replproxy.keyspace.values import HASHTABLE, INTSET, LISTPACK, SetValue
from replproxy.rdb.model import OrderedSet
from replproxy.resp import reply

# The master's set-max-intset-entries and set-max-listpack-entries / -value (defaults).
SET_MAX_INTSET_ENTRIES = 512
SET_MAX_LISTPACK_ENTRIES = 128
SET_MAX_LISTPACK_VALUE = 64
# Members joined by \n, all in string2ll's canonical form (no sign but -, no leading 0).
_INTS = re.compile(rb"(?:0|-?[1-9][0-9]{0,18})(?:\n(?:0|-?[1-9][0-9]{0,18}))*")
_INT = re.compile(rb"0|-?[1-9][0-9]{0,18}")


def is_int_member(m: bytes) -> bool:
    """`isSdsRepresentableAsLongLong`: what an intset can hold."""
    return _INT.fullmatch(m) is not None and LLONG_MIN <= int(m) <= LLONG_MAX


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


# ---- the encodings: how the master's set moves from intset to listpack to hash table ----
#
# `t_set.c` (Redis 7.2 and Valkey 8; 5.0-7.0 have no listpack sets: an intset becomes a hash
# table at its first non-integer). A set never moves back down; its iteration order is
# what its encoding gives (`SetValue.members`), which SMEMBERS, SSCAN, SRANDMEMBER of the
# whole set and the set operations' replies follow.


def set_create(first: bytes, size_hint: int, listpack: bool) -> SetValue:
    """`setTypeCreate(value, size_hint)` (7.2+; before, only the first member decides)."""
    if is_int_member(first) and (not listpack or size_hint <= SET_MAX_INTSET_ENTRIES):
        return SetValue(enc=INTSET)
    if listpack and size_hint <= SET_MAX_LISTPACK_ENTRIES:
        return SetValue(enc=LISTPACK, order={})
    return SetValue()


def set_maybe_convert(s: SetValue, size_hint: int) -> None:
    """`setTypeMaybeConvert` (7.2+): SADD of many members converts up front."""
    if (s.enc == LISTPACK and size_hint > SET_MAX_LISTPACK_ENTRIES) or (
        s.enc == INTSET and size_hint > SET_MAX_INTSET_ENTRIES
    ):
        s.enc, s.order = HASHTABLE, None


def set_add(s: SetValue, m: bytes, listpack: bool) -> bool:
    """`setTypeAddAux`: add `m`, converting the encoding as the master does."""
    if m in s:
        return False
    enc = s.enc
    if enc == LISTPACK:
        if len(s) < SET_MAX_LISTPACK_ENTRIES and len(m) <= SET_MAX_LISTPACK_VALUE:
            s.add(m)
            s.order[m] = None  # type: ignore[index]
            return True
        s.enc, s.order = HASHTABLE, None
    elif enc == INTSET:
        if is_int_member(m):
            s.add(m)
            if len(s) > SET_MAX_INTSET_ENTRIES:
                s.enc = HASHTABLE
            return True
        # The intset's extremes are at most 20 digits: within the listpack value limit.
        if listpack and len(s) < SET_MAX_LISTPACK_ENTRIES and len(m) <= SET_MAX_LISTPACK_VALUE:
            s.order = dict.fromkeys(sorted(s, key=int))
            s.enc = LISTPACK
            s.add(m)
            s.order[m] = None
            return True
        s.enc = HASHTABLE
    s.add(m)
    return True


def set_remove(s: SetValue, m: bytes) -> bool:
    """`setTypeRemoveAux`: the encoding stays."""
    if m not in s:
        return False
    s.discard(m)
    if s.order is not None:
        del s.order[m]
    return True


def loaded_set(v: set[bytes], listpack: bool) -> SetValue:
    """A set from a snapshot (or a RESTORE payload) as a server of the master's version
    holds it once loaded (`rdbLoadObject`): an intset stays one, a listpack keeps its order
    (a hash table past 128 members), and a hash-table-typed set is rebuilt member by member
    in file order, an intset until its first non-integer, then a listpack while small."""
    if isinstance(v, SetValue):
        return v
    n = len(v)
    rdbtype = v.rdbtype if isinstance(v, OrderedSet) else 11
    if not listpack:
        return SetValue(v, INTSET if intset_order(v) is not None else HASHTABLE)
    if rdbtype == 11:
        return SetValue(v, INTSET if n <= SET_MAX_INTSET_ENTRIES else HASHTABLE)
    order = v.order if isinstance(v, OrderedSet) else list(v)
    if rdbtype == 20:
        if n > SET_MAX_LISTPACK_ENTRIES:
            return SetValue(v)
        return SetValue(v, LISTPACK, dict.fromkeys(order))
    if n > SET_MAX_INTSET_ENTRIES:
        return SetValue(v)
    out = SetValue(enc=INTSET)
    maxlen = 0
    for m in order:
        maxlen = max(maxlen, len(m))
        if out.enc == INTSET and not is_int_member(m):
            if len(out) < SET_MAX_LISTPACK_ENTRIES and maxlen <= SET_MAX_LISTPACK_VALUE:
                out.order = dict.fromkeys(sorted(out, key=int))
                out.enc = LISTPACK
            else:
                out.enc = HASHTABLE
        if out.enc == LISTPACK and not (
            len(out) < SET_MAX_LISTPACK_ENTRIES and len(m) <= SET_MAX_LISTPACK_VALUE
        ):
            out.enc, out.order = HASHTABLE, None
        out.add(m)
        if out.order is not None:
            out.order[m] = None
    return out


def _set(ks: Keyspace, db: int, key: bytes) -> SetValue | None:
    value = ks.get(db, key)
    if value is None or isinstance(value, SetValue):
        return value
    raise ApplyError(f"WRONGTYPE: {key!r} holds a {type(value).__name__}, not a set")


@write_command("sadd")
def sadd(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    s = _set(ks, db, key)
    lp = ks.dialect.listpack_sets
    created = s is None
    if s is None:
        s = set_create(argv[2], len(argv) - 2, lp)
    elif lp:
        set_maybe_convert(s, len(argv) - 2)
    added = 0
    for m in argv[2:]:
        added += set_add(s, m, lp)
    if created:
        ks.set(db, key, s)
    else:
        ks.touched(db, key)
    if added and ks.notify_flags:
        ks.notify(ksn.SET, b"sadd", db, key)


@write_command("srem")
def srem(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    s = _set(ks, db, key)
    if s is None:
        return
    removed = 0
    for m in argv[2:]:
        removed += set_remove(s, m)
    if s:
        ks.touched(db, key)
        if removed and ks.notify_flags:
            ks.notify(ksn.SET, b"srem", db, key)
    else:
        ks.delete(db, key)
        if ks.notify_flags:
            ks.notify(ksn.SET, b"srem", db, key)
            ks.notify(ksn.GENERIC, b"del", db, key)


@write_command("smove", keys=(1, 2, 1), roles=move_between)
def smove(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """SMOVE source destination member."""
    src_key, dst_key, member = argv[1], argv[2], argv[3]
    src = _set(ks, db, src_key)
    dst = _set(ks, db, dst_key)  # smoveCommand checks both types before acting
    if src is None or member not in src or src is dst:
        return  # same source and destination: a no-op in smoveCommand
    set_remove(src, member)
    if ks.notify_flags:
        ks.notify(ksn.SET, b"srem", db, src_key)
    if src:
        ks.touched(db, src_key)
    else:
        ks.delete(db, src_key)
        if ks.notify_flags:
            ks.notify(ksn.GENERIC, b"del", db, src_key)
    lp = ks.dialect.listpack_sets
    if dst is None:
        dst = set_create(member, 1, lp)
        added = set_add(dst, member, lp)
        ks.set(db, dst_key, dst)
    else:
        added = set_add(dst, member, lp)
        ks.touched(db, dst_key)
    if added and ks.notify_flags:
        ks.notify(ksn.SET, b"sadd", db, dst_key)


def _store(ks: Keyspace, db: int, dst_key: bytes, result: SetValue, event: bytes) -> None:
    if result:
        if ks.notify_flags:
            ks.notify_overwrite(db, dst_key, result)
        ks.set(db, dst_key, result, fresh=True)
        if ks.notify_flags:
            ks.notify(ksn.SET, event, db, dst_key)
    elif ks.delete(db, dst_key, fresh=True) and ks.notify_flags:
        ks.notify(ksn.GENERIC, b"del", db, dst_key)


def _sources(ks: Keyspace, db: int, keys: list[bytes]) -> list[SetValue | None]:
    return [_set(ks, db, k) for k in keys]


# ---- the set operations (`sinterGenericCommand`, `sunionDiffGenericCommand`) ----


def set_inter(
    sets: list[SetValue | None], store: bool, listpack: bool
) -> tuple[list[bytes], SetValue | None]:
    """SINTER: the members of the smallest set (stable by size) that every set holds, in
    that set's order; with `store`, also the destination built as the master builds it
    (starting from the smallest set's encoding, an intset again if all are integers)."""
    present = [s for s in sets if s is not None]
    if len(present) < len(sets) or not present or not all(present):
        return [], None
    present.sort(key=len)
    first, rest = present[0], present[1:]
    out = [m for m in first.members() if all(m in s for s in rest)]
    if not store:
        return out, None
    if first.enc == INTSET or not listpack:
        dst = SetValue(enc=INTSET)
    else:
        dst = SetValue(enc=LISTPACK, order={})
    for m in out:
        set_add(dst, m, listpack)
    if (
        dst
        and len(dst) <= SET_MAX_INTSET_ENTRIES
        and dst.enc != INTSET
        and all(is_int_member(m) for m in dst)
    ):
        dst.enc, dst.order = INTSET, None  # maybeConvertToIntset
    return out, dst


def set_union_diff(
    sets: list[SetValue | None], diff: bool, listpack: bool, hashtable: bool = False
) -> SetValue:
    """SUNION / SDIFF: the result set as the master fills it (an intset first, members
    added in the sources' order; SDIFF by whichever of its two algorithms it picks).
    `hashtable`: a reply-only union or diff of a Redis 8 / Valkey 8 master, collected in a
    hash table unless every source is an intset (`MasterDialect.setop_reply_hashtable`)."""
    dst = SetValue(enc=INTSET)
    if hashtable and any(s is not None and s.enc != INTSET for s in sets):
        dst = SetValue()
    if not diff:
        for s in sets:
            if s is not None:
                for m in s.members():
                    set_add(dst, m, listpack)
        return dst
    first = sets[0]
    if first is None or any(s is first for s in sets[1:]):
        return dst  # nothing to subtract from, or the first set subtracted from itself
    others = [s for s in sets[1:] if s is not None]
    algo_one = sum(len(first) for s in sets if s is not None) // 2
    algo_two = sum(len(s) for s in sets if s is not None)
    if algo_one <= algo_two:
        for m in first.members():
            if not any(m in s for s in others):
                set_add(dst, m, listpack)
        return dst
    for m in first.members():
        set_add(dst, m, listpack)
    for s in others:
        if not dst:
            break
        for m in s.members():
            set_remove(dst, m)
    return dst


@write_command("sinterstore", keys=(1, -1, 1), roles=store_from_rest(2))
def sinterstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _, dst = set_inter(_sources(ks, db, argv[2:]), True, ks.dialect.listpack_sets)
    _store(ks, db, argv[1], dst or SetValue(), b"sinterstore")


@write_command("sunionstore", keys=(1, -1, 1), roles=store_from_rest(2))
def sunionstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    lp = ks.dialect.listpack_sets
    _store(ks, db, argv[1], set_union_diff(_sources(ks, db, argv[2:]), False, lp), b"sunionstore")


@write_command("sdiffstore", keys=(1, -1, 1), roles=store_from_rest(2))
def sdiffstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    lp = ks.dialect.listpack_sets
    _store(ks, db, argv[1], set_union_diff(_sources(ks, db, argv[2:]), True, lp), b"sdiffstore")


# ---- reads ----


def iteration_order(members: set[bytes]) -> list[bytes]:
    """The members in the order the master iterates them (see `SetValue.members`)."""
    if isinstance(members, SetValue):
        return members.members()
    ordered = intset_order(members)
    return list(members) if ordered is None else ordered


def _set_reply(members: list[bytes], proto: int) -> bytes:
    if not members:
        return b"*0\r\n" if proto == 2 else b"~0\r\n"
    return reply.bulk_set(members, proto)


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
    return reply.bulk_set(s.members(), c.proto)


def _lookup_sets(c: ReadContext, keys: Iterable[bytes]) -> list[SetValue | None]:
    """Every key looked up in order: WRONGTYPE from the first key of another type."""
    return [lookup_set(c, k) for k in keys]


@read_command("sinter")
def sinter(c: ReadContext, argv: list[bytes]) -> bytes:
    if not c.ks.dialect.sinter_looks_up_every_key:
        # Before 6.2 a missing key answers at once, the keys after it are not looked up.
        for k in argv[1:]:
            if lookup_set(c, k) is None:
                return _set_reply([], c.proto)
    out, _ = set_inter(_lookup_sets(c, argv[1:]), False, c.ks.dialect.listpack_sets)
    return _set_reply(out, c.proto)


@read_command("sunion")
def sunion(c: ReadContext, argv: list[bytes]) -> bytes:
    d = c.ks.dialect
    sets = _lookup_sets(c, argv[1:])
    return _set_reply(
        set_union_diff(sets, False, d.listpack_sets, d.setop_reply_hashtable).members(), c.proto
    )


@read_command("sdiff")
def sdiff(c: ReadContext, argv: list[bytes]) -> bytes:
    d = c.ks.dialect
    sets = _lookup_sets(c, argv[1:])
    return _set_reply(
        set_union_diff(sets, True, d.listpack_sets, d.setop_reply_hashtable).members(), c.proto
    )


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
    n = get_random_count(c, argv[2])
    s = lookup_set(c, argv[1])
    if s is None or n == 0:
        return reply.EMPTY_ARRAY
    if n < 0 or n == 1:
        check_random_reply_size(-n)
        return reply.bulk_array(random.choices(list(s), k=abs(n)))
    if n >= len(s):
        return reply.bulk_array(s.members())  # the whole set, in its order
    return reply.bulk_array(random.sample(list(s), n))


@read_command("sscan")
def sscan(c: ReadContext, argv: list[bytes]) -> bytes:
    cursor = parse_cursor(argv[2], c.ks)
    s = lookup_set(c, argv[1])
    if s is None:
        return EMPTY_SCAN
    count, match, _ = parse_scan_options(c, argv, is_hash=False)
    members: Iterable[bytes]
    if s.enc != HASHTABLE:  # an intset or a listpack: all of it, in order, cursor 0
        members = s.members()
        cursor = 0
        live = None
    else:
        snap = s
        cursor, members = c.ks.scans.step(
            cursor, lambda: list(snap), count, ("sscan", c.db, argv[1])
        )
        live = s  # drop members removed since the snapshot
    if match is not None:
        members = [m for m in members if match(m)]
    if live is not None:
        members = [m for m in members if m in live]
    return scan_reply(cursor, list(members))
