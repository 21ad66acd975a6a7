"""Lists: the master's list writes, applied to `ListValue` deques (head first), and the
list reads.

This module owns the appliers of the list commands a master propagates and the list read
commands; it touches no other type. Redis's encodings (ziplist, quicklist, listpack) only
change memory layout, never the order of elements, so a sequence of the elements is exact.
It is a deque because the master's list ends are O(1): a Python list moves every element
on LPUSH/LPOP. A snapshot's lists arrive as plain lists and are upgraded by their first
write (`_list`); reads accept both. A list
that becomes empty is deleted, as every popping command in `t_list.c` does
(`listElementsRemoved` / `dbDelete`).

What arrives (read from `src/t_list.c`, 5.0 to 8.x, and Valkey 8):

- verbatim: LPUSH, RPUSH, LPUSHX, RPUSHX, LINSERT, LSET, LREM, LTRIM, LPOP/RPOP [count]
  (count since 6.2), LMOVE (6.2+), RPOPLPUSH.
- BLPOP/BRPOP -> `LPOP|RPOP k`; LMPOP/BLMPOP (7.0+) -> `LPOP|RPOP k count`; BLMOVE -> LMOVE;
  BRPOPLPUSH -> RPOPLPUSH. A 5.x/6.x master that serves a blocked BRPOPLPUSH from a push
  propagates `RPOP src` then `LPUSH dst v` (`serveClientBlockedOnList`): plain pops and pushes.
- The blocking commands themselves never arrive; they are not registered, so one that did
  would be reported as unsupported rather than guessed at.

Reads (`t_list.c`, Redis 7.0 and Valkey 8.1), answered from the same values:

- LLEN, LINDEX, LRANGE. LRANGE parses both indexes before looking the key up (a bad number
  beats WRONGTYPE); LINDEX looks the key up first (a missing key answers null whatever the
  index). Elements a listpack stores as integers are printed back from the same digits, so
  the bytes are the ones pushed.
- LPOS element [RANK r] [COUNT n] [MAXLEN m]: options parsed in order before the lookup;
  COUNT and MAXLEN refuse a negative or non-numeric value with their own texts. RANK
  LONG_MIN: Redis up to 7.0 negates it in place (it stays LONG_MIN, and the COUNT test
  overflows), which acts as "every match from the tail"; 7.2+ and Valkey refuse it as out
  of range (`getRangeLongFromObjectOrReply`, -LONG_MAX..LONG_MAX).
"""

from __future__ import annotations

from collections import deque
from itertools import islice

from replproxy.args import option_word, parse_int
from replproxy.errors import OUT_OF_RANGE_LONG, SYNTAX
from replproxy.keyspace import notify as ksn
from replproxy.keyspace.reads import ReadContext, ReplyError, arg_long, lookup_list, read_command
from replproxy.keyspace.registry import ApplyError, move_between, write_command
from replproxy.keyspace.store import Keyspace
from replproxy.keyspace.values import ListValue, list_slice
from replproxy.resp import reply


def _list(ks: Keyspace, db: int, key: bytes) -> ListValue | None:
    value = ks.get(db, key)
    if value is None or type(value) is ListValue:
        return value
    if type(value) is list:  # loaded from a snapshot: upgraded in place by its first write
        lv = ks.dbs[db][key] = ListValue(value)
        return lv
    raise ApplyError(f"WRONGTYPE: {key!r} holds a {type(value).__name__}, not a list")


def _emptied(ks: Keyspace, db: int, key: bytes, lst: ListValue) -> None:
    """After removing elements: delete the key when the list is empty (reported as `del`),
    else report the change."""
    if lst:
        ks.touched(db, key)
    else:
        ks.delete(db, key)
        if ks.notify_flags:
            ks.notify(ksn.GENERIC, b"del", db, key)


@write_command("lpush")
def lpush(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    lst = _list(ks, db, key)
    if lst is None:
        ks.set(db, key, ListValue(argv[:1:-1]))  # each element is pushed on the head in turn
    else:
        lst.extendleft(argv[2:])  # ditto: extendleft pushes one by one
        ks.touched(db, key)
    if ks.notify_flags:
        ks.notify(ksn.LIST, b"lpush", db, key)


@write_command("rpush")
def rpush(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    lst = _list(ks, db, key)
    if lst is None:
        ks.set(db, key, ListValue(argv[2:]))
    else:
        lst.extend(argv[2:])
        ks.touched(db, key)
    if ks.notify_flags:
        ks.notify(ksn.LIST, b"rpush", db, key)


@write_command("lpushx")
def lpushx(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    lst = _list(ks, db, argv[1])
    if lst is not None:
        lst.extendleft(argv[2:])
        ks.touched(db, argv[1])
        if ks.notify_flags:
            ks.notify(ksn.LIST, b"lpush", db, argv[1])


@write_command("rpushx")
def rpushx(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    lst = _list(ks, db, argv[1])
    if lst is not None:
        lst.extend(argv[2:])
        ks.touched(db, argv[1])
        if ks.notify_flags:
            ks.notify(ksn.LIST, b"rpush", db, argv[1])


@write_command("linsert")
def linsert(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """LINSERT key BEFORE|AFTER pivot element: next to the pivot's first occurrence."""
    key = argv[1]
    lst = _list(ks, db, key)
    if lst is None:
        return
    where = argv[2].lower()
    if where not in (b"before", b"after"):
        raise ApplyError(f"LINSERT with {argv[2]!r}")
    try:
        i = lst.index(argv[3])
    except ValueError:
        return
    lst.insert(i if where == b"before" else i + 1, argv[4])
    ks.touched(db, key)
    if ks.notify_flags:
        ks.notify(ksn.LIST, b"linsert", db, key)


@write_command("lset")
def lset(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    lst = _list(ks, db, key)
    if lst is None:
        raise ApplyError(f"LSET on missing key {key!r}")
    index = parse_int(argv[2])
    if not -len(lst) <= index < len(lst):
        raise ApplyError(f"LSET index {index} out of range for {key!r}")
    lst[index] = argv[3]
    ks.touched(db, key)
    if ks.notify_flags:
        ks.notify(ksn.LIST, b"lset", db, key)


@write_command("lrem")
def lrem(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """LREM key count element: count > 0 from the head, < 0 from the tail, 0 all."""
    key = argv[1]
    lst = _list(ks, db, key)
    if lst is None:
        return
    count = parse_int(argv[2])
    elem = argv[3]
    n = len(lst)
    if count == 0:
        kept = [x for x in lst if x != elem]
        if len(kept) != n:
            lst.clear()
            lst.extend(kept)
    else:
        # The indexes of the first |count| matches from the head (count > 0) or the tail.
        found: list[int] = []
        if count > 0:
            i = -1
            while len(found) < count:
                try:
                    i = lst.index(elem, i + 1)
                except ValueError:
                    break
                found.append(i)
        else:
            for j, x in enumerate(reversed(lst)):
                if x == elem:
                    found.append(n - 1 - j)
                    if len(found) >= -count:
                        break
        if len(found) <= 8:
            for i in sorted(found, reverse=True):
                del lst[i]
        else:
            gone = set(found)
            kept = [x for i, x in enumerate(lst) if i not in gone]
            lst.clear()
            lst.extend(kept)
    if len(lst) != n:
        if ks.notify_flags:
            ks.notify(ksn.LIST, b"lrem", db, key)
        _emptied(ks, db, key, lst)


@write_command("ltrim")
def ltrim(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    lst = _list(ks, db, key)
    if lst is None:
        return
    start, end = parse_int(argv[2]), parse_int(argv[3])
    llen = len(lst)
    # ltrimCommand's index arithmetic, so every out-of-range combination agrees.
    if start < 0:
        start += llen
    if end < 0:
        end += llen
    if start < 0:
        start = 0
    if start > end or start >= llen:
        lst.clear()
    else:
        _drop_ends(lst, start, llen - 1 - min(end, llen - 1))
    if ks.notify_flags:
        ks.notify(ksn.LIST, b"ltrim", db, key)
    _emptied(ks, db, key, lst)


def _drop_ends(lst: ListValue, head: int, tail: int) -> None:
    """Remove `head` elements from the head and `tail` from the tail (both <= len): one by
    one when few (O(1) each), else by rebuilding from what is kept."""
    n = len(lst)
    if head + tail >= n:
        lst.clear()
    elif head + tail > (n - head - tail):
        kept = list_slice(lst, head, n - tail)
        lst.clear()
        lst.extend(kept)
    else:
        for _ in range(head):
            lst.popleft()
        for _ in range(tail):
            lst.pop()


def _pop(ks: Keyspace, db: int, argv: list[bytes], head: bool) -> None:
    key = argv[1]
    lst = _list(ks, db, key)
    if lst is None:
        return
    count = parse_int(argv[2]) if len(argv) > 2 else 1
    if count <= 0:
        return  # `LPOP k 0` changes nothing
    count = min(count, len(lst))
    if count == 1:
        if head:
            lst.popleft()
        else:
            lst.pop()
    else:
        _drop_ends(lst, count if head else 0, 0 if head else count)
    if ks.notify_flags:
        ks.notify(ksn.LIST, b"lpop" if head else b"rpop", db, key)
    _emptied(ks, db, key, lst)


@write_command("lpop")
def lpop(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _pop(ks, db, argv, head=True)


@write_command("rpop")
def rpop(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _pop(ks, db, argv, head=False)


def _move(
    ks: Keyspace, db: int, src_key: bytes, dst_key: bytes, from_head: bool, to_head: bool
) -> None:
    src = _list(ks, db, src_key)
    if not src:
        return
    elem = src.popleft() if from_head else src.pop()
    # Looked up after the pop but before the source may be deleted, as lmoveGenericCommand
    # holds `dobj` across the pop: with src == dst a one-element list rotates onto itself.
    dst = _list(ks, db, dst_key)
    if dst is None:
        ks.set(db, dst_key, ListValue([elem]))
    else:
        if to_head:
            dst.appendleft(elem)
        else:
            dst.append(elem)
        ks.touched(db, dst_key)
    # `lmoveHandlePush`'s event, then the pop's (`lmoveGenericCommand`).
    if ks.notify_flags:
        ks.notify(ksn.LIST, b"lpush" if to_head else b"rpush", db, dst_key)
        ks.notify(ksn.LIST, b"lpop" if from_head else b"rpop", db, src_key)
    if src is not dst:
        _emptied(ks, db, src_key, src)


_SIDE = {b"left": True, b"right": False}


@write_command("lmove", keys=(1, 2, 1), roles=move_between)
def lmove(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """LMOVE source destination LEFT|RIGHT LEFT|RIGHT (also what BLMOVE becomes)."""
    try:
        from_head, to_head = _SIDE[argv[3].lower()], _SIDE[argv[4].lower()]
    except KeyError:
        raise ApplyError(f"LMOVE with {argv[3]!r} {argv[4]!r}") from None
    _move(ks, db, argv[1], argv[2], from_head, to_head)


@write_command("rpoplpush", keys=(1, 2, 1), roles=move_between)
def rpoplpush(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    _move(ks, db, argv[1], argv[2], from_head=False, to_head=True)


# ---- reads ----

_LONG_MIN = -(2**63)
_RANK_ZERO = (
    b"ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... "
    b"or use negative to start from the end of the list"
)


@read_command("llen")
def llen(c: ReadContext, argv: list[bytes]) -> bytes:
    lst = lookup_list(c, argv[1])
    return b":%d\r\n" % (0 if lst is None else len(lst))


@read_command("lindex")
def lindex(c: ReadContext, argv: list[bytes]) -> bytes:
    lst = lookup_list(c, argv[1])
    if lst is None:
        return reply.null(c.proto)
    index = arg_long(argv[2])
    n = len(lst)
    if index < 0:
        index += n
    if 0 <= index < n:
        return reply.bulk(lst[index])
    return reply.null(c.proto)


@read_command("lrange")
def lrange(c: ReadContext, argv: list[bytes]) -> bytes:
    start, end = arg_long(argv[2]), arg_long(argv[3])
    lst = lookup_list(c, argv[1])
    if lst is None:
        return reply.EMPTY_ARRAY
    # addListRangeReply's index arithmetic
    n = len(lst)
    if start < 0:
        start += n
        if start < 0:
            start = 0
    if end < 0:
        end += n
    if start > end or start >= n:
        return reply.EMPTY_ARRAY
    return reply.bulk_array(list_slice(lst, start, min(end + 1, n)))


@read_command("lpos")
def lpos(c: ReadContext, argv: list[bytes]) -> bytes:
    ele = argv[2]
    rank, count, maxlen = 1, -1, 0  # count -1: no COUNT option
    last = len(argv) - 1
    j = 3
    while j <= last:
        opt = option_word(argv[j])
        if opt == b"rank" and j < last:
            j += 1
            rank = arg_long(argv[j])
            if rank == _LONG_MIN and c.ks.dialect.lpos_rank_range_check:
                raise ReplyError(OUT_OF_RANGE_LONG)
            if rank == 0:
                raise ReplyError(
                    _RANK_ZERO
                    if c.ks.dialect.lpos_rank_zero_hint
                    else b"ERR RANK can't be zero: use 1 to start from the first "
                    b"match, 2 from the second, ..."
                )
        elif opt == b"count" and j < last:
            j += 1
            count = arg_long(argv[j], b"ERR COUNT can't be negative")
            if count < 0:
                raise ReplyError(b"ERR COUNT can't be negative")
        elif opt == b"maxlen" and j < last:
            j += 1
            maxlen = arg_long(argv[j], b"ERR MAXLEN can't be negative")
            if maxlen < 0:
                raise ReplyError(b"ERR MAXLEN can't be negative")
        else:
            raise ReplyError(SYNTAX)
        j += 1

    lst = lookup_list(c, argv[1])
    if lst is None:
        return reply.EMPTY_ARRAY if count != -1 else reply.null(c.proto)

    from_tail = rank < 0
    if rank == _LONG_MIN:
        # `rank = -rank` leaves LONG_MIN negative: every match passes `matches >= rank`
        # and `matches - rank + 1 >= count` overflows to negative, so nothing stops early.
        rank, limit = 1, 0
    else:
        rank, limit = abs(rank), count
    found = _match_positions(lst, ele, from_tail, maxlen, rank, limit if count != -1 else 1)
    if count == -1:
        return b":%d\r\n" % found[0] if found else reply.null(c.proto)
    return b"*%d\r\n%b" % (len(found), b"".join([b":%d\r\n" % i for i in found]))


def _match_positions(
    lst: list[bytes] | deque[bytes], ele: bytes, from_tail: bool, maxlen: int, rank: int, limit: int
) -> list[int]:
    """Indexes (from the head) of the rank-th and following matches of `ele`, scanning from
    the head or the tail and looking at no more than `maxlen` elements (0: all); at most
    `limit` of them (0: all)."""
    n = len(lst)
    span = maxlen if maxlen and maxlen < n else n
    # One pass from the chosen end, copied in growing chunks so `.index()` scans at C speed
    # and a match near that end costs a short copy, not the whole list.
    it = reversed(lst) if from_tail else iter(lst)
    out: list[int] = []
    matches = base = 0
    size = 64
    while base < span:
        chunk = list(islice(it, min(size, span - base)))
        i = -1
        index = chunk.index
        while True:
            try:
                i = index(ele, i + 1)
            except ValueError:
                break
            matches += 1
            if matches >= rank:
                out.append(n - 1 - (base + i) if from_tail else base + i)
                if limit and len(out) >= limit:
                    return out
        base += len(chunk)
        size = min(size * 4, 1 << 16)
    return out
