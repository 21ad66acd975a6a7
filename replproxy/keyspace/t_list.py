"""Lists: the master's list writes, applied to `list[bytes]` values (head first), and the
list reads.

This module owns the appliers of the list commands a master propagates and the list read
commands; it touches no other type. Redis's encodings (ziplist, quicklist, listpack) only
change memory layout, never the order of elements, so a plain Python list is exact. A list
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

Reads (`t_list.c`, Redis 7.0 and Valkey 8.1), answered from the same `list[bytes]`:

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

from replproxy.keyspace import ApplyError, Keyspace, write_command
from replproxy.keyspace.reads import (
    OUT_OF_RANGE_LONG,
    SYNTAX,
    ReadContext,
    ReplyError,
    arg_long,
    lookup_list,
    read_command,
    upstream_identity,
)
from replproxy.keyspace.util import parse_int
from replproxy.resp import reply


def _list(ks: Keyspace, db: int, key: bytes) -> list[bytes] | None:
    value = ks.get(db, key)
    if value is None or type(value) is list:
        return value
    raise ApplyError(f"WRONGTYPE: {key!r} holds a {type(value).__name__}, not a list")


def _emptied(ks: Keyspace, db: int, key: bytes, lst: list[bytes]) -> None:
    """After removing elements: delete the key when the list is empty, else report the change."""
    if lst:
        ks.touched(db, key)
    else:
        ks.delete(db, key)


@write_command("lpush")
def lpush(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    lst = _list(ks, db, key)
    if lst is None:
        ks.set(db, key, argv[:1:-1])  # each element is pushed on the head in turn
    else:
        lst[0:0] = argv[:1:-1]
        ks.touched(db, key)


@write_command("rpush")
def rpush(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    lst = _list(ks, db, key)
    if lst is None:
        ks.set(db, key, argv[2:])
    else:
        lst += argv[2:]
        ks.touched(db, key)


@write_command("lpushx")
def lpushx(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    lst = _list(ks, db, argv[1])
    if lst is not None:
        lst[0:0] = argv[:1:-1]
        ks.touched(db, argv[1])


@write_command("rpushx")
def rpushx(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    lst = _list(ks, db, argv[1])
    if lst is not None:
        lst += argv[2:]
        ks.touched(db, argv[1])


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


@write_command("lrem")
def lrem(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """LREM key count element: count > 0 from the head, < 0 from the tail, 0 all."""
    key = argv[1]
    lst = _list(ks, db, key)
    if lst is None:
        return
    count = parse_int(argv[2])
    elem = argv[3]
    before = len(lst)
    if count == 0:
        lst[:] = [x for x in lst if x != elem]
    elif count > 0:
        i = 0
        while count:
            try:
                i = lst.index(elem, i)
            except ValueError:
                break
            del lst[i]
            count -= 1
    else:
        i = len(lst) - 1
        while count and i >= 0:
            if lst[i] == elem:
                del lst[i]
                count += 1
            i -= 1
    if len(lst) != before:
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
        del lst[end + 1 :]
        del lst[:start]
    _emptied(ks, db, key, lst)


def _pop(ks: Keyspace, db: int, argv: list[bytes], head: bool) -> None:
    key = argv[1]
    lst = _list(ks, db, key)
    if lst is None:
        return
    count = parse_int(argv[2]) if len(argv) > 2 else 1
    if count <= 0:
        return  # `LPOP k 0` changes nothing
    if head:
        del lst[:count]
    elif count >= len(lst):
        lst.clear()
    else:
        del lst[-count:]
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
    elem = src.pop(0 if from_head else -1)
    # Looked up after the pop but before the source may be deleted, as lmoveGenericCommand
    # holds `dobj` across the pop: with src == dst a one-element list rotates onto itself.
    dst = _list(ks, db, dst_key)
    if dst is None:
        ks.set(db, dst_key, [elem])
    else:
        if to_head:
            dst.insert(0, elem)
        else:
            dst.append(elem)
        ks.touched(db, dst_key)
    if src is not dst:
        _emptied(ks, db, src_key, src)


_SIDE = {b"left": True, b"right": False}


@write_command("lmove", keys=(1, 2, 1))
def lmove(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """LMOVE source destination LEFT|RIGHT LEFT|RIGHT (also what BLMOVE becomes)."""
    try:
        from_head, to_head = _SIDE[argv[3].lower()], _SIDE[argv[4].lower()]
    except KeyError:
        raise ApplyError(f"LMOVE with {argv[3]!r} {argv[4]!r}") from None
    _move(ks, db, argv[1], argv[2], from_head, to_head)


@write_command("rpoplpush", keys=(1, 2, 1))
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
    return reply.bulk_array(lst[start : end + 1])


def _rank_has_range_check(c: ReadContext) -> bool:
    """Redis 7.2 (#12167) and Valkey refuse RANK LONG_MIN; Redis up to 7.0 accepts it."""
    name, version = upstream_identity(c.ks)
    return name == "valkey" or version >= (7, 2, 0)


@read_command("lpos")
def lpos(c: ReadContext, argv: list[bytes]) -> bytes:
    ele = argv[2]
    rank, count, maxlen = 1, -1, 0  # count -1: no COUNT option
    last = len(argv) - 1
    j = 3
    while j <= last:
        opt = argv[j].split(b"\0", 1)[0].lower()  # strcasecmp stops at a NUL
        if opt == b"rank" and j < last:
            j += 1
            rank = arg_long(argv[j])
            if rank == _LONG_MIN and _rank_has_range_check(c):
                raise ReplyError(OUT_OF_RANGE_LONG)
            if rank == 0:
                raise ReplyError(_RANK_ZERO)
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


def _match_positions(lst: list[bytes], ele: bytes, from_tail: bool, maxlen: int, rank: int,
                     limit: int) -> list[int]:
    """Indexes (from the head) of the rank-th and following matches of `ele`, scanning from
    the head or the tail and looking at no more than `maxlen` elements (0: all); at most
    `limit` of them (0: all)."""
    n = len(lst)
    if from_tail:
        lo = n - maxlen if maxlen and maxlen < n else 0
        seq = lst[lo:][::-1]  # C-speed pointer copy, so .index() can do the scan
    else:
        seq = lst if not maxlen or maxlen >= n else lst[:maxlen]
    out: list[int] = []
    matches = 0
    i = -1
    index = seq.index
    while True:
        try:
            i = index(ele, i + 1)
        except ValueError:
            break
        matches += 1
        if matches >= rank:
            out.append(n - 1 - i if from_tail else i)
            if limit and len(out) >= limit:
                break
    return out
