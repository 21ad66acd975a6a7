"""Streams: the appliers of every stream write a master propagates (Redis `t_stream.c`).

This module owns how a `StreamValue` changes under the replication stream: entries, the
stream metadata (`last_id`, `first_id`, `max_deleted_id`, `entries_added`) and consumer
groups (last delivered id, `entries_read`, the PEL with delivery times and counts, consumers
with their own pending ids and seen/active times). It touches no other type.

What arrives (commands.md section 2), by version:

- `XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] x [LIMIT n]] [KEEPREF|DELREF|ACKED] id f v ...`
  with the ID the master generated (`*` and `ms-*` are rewritten before propagation, from 5.0
  on). Approximate trimming (`~`) is rewritten by every master since 5.0 to `=` with the exact
  result (`streamRewriteApproxMaxlen` in 5.0, `streamRewriteTrimArgument` since 6.2: the
  resulting length for MAXLEN, the first remaining ID for MINID), so a replica trims exactly;
  a LIMIT left in the arguments is ignored, as `mustObeyClient` makes Redis do. A `~` that
  still arrives cannot be reproduced (Redis trims whole listpack nodes whose boundaries this
  model does not keep): it is refused with `ApplyError`, which marks the key unsupported.
- `XTRIM` (only propagated when it deleted something; same rewrite), `XDEL`, `XACK`,
  `XSETID [ENTRIESADDED n] [MAXDELETEDID id]` (7.0+ options), `XGROUP CREATE|SETID|DESTROY|
  CREATECONSUMER|DELCONSUMER` verbatim (`$` resolved here, `ENTRIESREAD` since 7.0).
- `XREADGROUP`, `XCLAIM` and `XAUTOCLAIM` never arrive as such: every PEL change arrives as
  `XCLAIM key group consumer 0 id TIME ms RETRYCOUNT n FORCE JUSTID LASTID id` (all versions),
  a NOACK read as `XGROUP SETID key group id [ENTRIESREAD n]` (+ `XGROUP CREATECONSUMER` for a
  new consumer, 6.2+), and Redis 7.4+/Valkey 8+ follow every XREADGROUP with that SETID.
- Redis 8.2: `XDELEX`/`XACKDEL` and the `KEEPREF|DELREF|ACKED` option of XADD/XTRIM,
  propagated verbatim (with the generated ID) and checked against a real 8.2.3 replica:
  trimming with `ACKED` deletes, from the head, only entries every group has delivered and
  acknowledged (see `_trim_acked`); `DELREF` also drops the trimmed IDs from every PEL.

Behaviours that depend on the master's version (read from the snapshot's `redis-ver` /
`valkey-ver` AUX field, see `_StreamSemantics`):

- XCLAIM of an entry that is no longer in the stream: Redis < 7.0 claims the PEL entry
  anyway; 7.0+ removes it from the PEL (and propagates that removal in the XCLAIM form).
- `entries_read`: Redis 7.0-7.2 (and Valkey 7.2) propagate an XREADGROUP without NOACK only
  as XCLAIMs whose LASTID moves the group, never the new read counter (redis#12898, fixed in
  7.4): a real replica keeps a stale counter, and so does the relay, which answers as that
  replica (`MasterDialect.stream_entries_read_unpropagated`). Later masters send
  `XGROUP SETID ... ENTRIESREAD`, which sets the counter exactly.
- The read-counter and lag rules themselves changed twice (`LAG_RULES_*`: redis#13338 in
  Redis 7.2.7/7.4.2, redis#13473 with it; Valkey 8.1.1 took #13338's rules only, as a real
  Valkey 8.1 master shows). `lag_rules(ks)` tells the read commands which one to answer by.

Times follow a real replica: consumers created or refreshed by an applier get the relay's
clock (`Keyspace.now_ms`) as seen time, claims set the active time (7.2+ semantics; -1 for a
consumer that never claimed), and an XCLAIM `TIME` later than the relay's clock is clamped
to it, as `xclaimCommand` does. Neither a master nor a real replica propagates these
exactly; they serve `XINFO` idle times only.

Model invariants kept here (the RDB writer and the read commands rely on them): `entries` in
ID order and `length == len(entries)`; `first_id` is the first live entry or 0-0 when empty
(what Redis maintains in `streamTrim`/`xdelCommand`); PELs in ID order, consumers and groups
in name order (rax order); each PEL id owned by exactly one consumer's `pending` list (kept
sorted). A stream is never deleted when it becomes empty, as in Redis. A stream trimmed or
drained from its head gets an `OrderedDict` for `entries`, whose head can be popped in O(1)
(a plain dict would rescan its deleted head slots on every `XADD ... MAXLEN`).

Read commands (end of the module), answered as Redis 7.0 / 7.2+ / Valkey 8 do, by the
snapshot's version (`_Shapes`):

- XLEN; XRANGE / XREVRANGE (`-`, `+`, `(` exclusive, incomplete `ms` IDs, COUNT; IDs are
  checked before COUNT and COUNT before the key, as `xrangeGenericCommand` does).
- XREAD [COUNT n] [BLOCK ms] STREAMS key... id... with `$`, and `+` (the last entry) on
  Redis 7.4+ / Valkey 8+. When BLOCK is given and nothing is there, it raises
  `BlockingRead` with a retry argv: no BLOCK, each `$` made the ID it meant when the command
  ran, and on Redis < 7.2 `COUNT 1000` when no COUNT was given (what such a master serves a
  woken client). Inside MULTI (`can_block` False) it answers a null array, as Redis does.
  XREADGROUP writes (the dispatcher refuses it).
- XPENDING summary and extended form ([IDLE ms] start end count [consumer]; idle times
  from `ReadContext.now`).
- XINFO STREAM [FULL [COUNT n]] | GROUPS | CONSUMERS | HELP, with the 7.0 fields
  (entries-added, max-deleted-entry-id, recorded-first-entry-id, entries-read, lag by the
  master's `lag_rules`) and the 7.2 ones (active-time, inactive). `radix-tree-keys` /
  `radix-tree-nodes` come from the listpack node layout XADD builds for the live entries:
  exact for a stream that only grew, an estimate once XDEL/XTRIM left holes in the
  master's nodes (the model keeps no node boundaries).

Reads keep per-stream indexes (`_ReadCache`: the sorted ID list, the node layout) that the
appliers above update as they change the entries.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import cast

from replproxy.args import LLONG_MAX, c_string, option_word, parse_int
from replproxy.errors import SYNTAX
from replproxy.keyspace import notify as ksn
from replproxy.keyspace.internals import StreamLayout, rax_nodes
from replproxy.keyspace.reads import (
    BlockingRead,
    ReadContext,
    ReplyError,
    arg_long,
    lookup_stream,
    read_command,
)
from replproxy.keyspace.registry import ApplyError, write_command
from replproxy.keyspace.store import Keyspace
from replproxy.rdb.model import (
    StreamConsumer,
    StreamGroup,
    StreamID,
    StreamPendingEntry,
    StreamValue,
)
from replproxy.resp import reply
from replproxy.resp.request import string2ll

UINT64_MAX = 2**64 - 1
ZERO_ID: StreamID = (0, 0)
MAX_ID: StreamID = (UINT64_MAX, UINT64_MAX)
SCG_INVALID_ENTRIES_READ = -1

_ISSPACE = b" \t\n\v\f\r"

# ---- stream IDs, parsed as streamGenericParseIDOrReply does ----


def _string2ull(raw: bytes) -> int | None:
    """`util.c` string2ull: string2ll when it accepts (negatives refused), else strtoull."""
    if raw.isdigit():  # the common case: any run of ASCII digits is valid (leading zeros too)
        v = int(raw)
        return v if v <= UINT64_MAX else None
    ll = string2ll(raw)
    if ll is not None:
        return ll if ll >= 0 else None
    # strtoull(s, &end, 10): leading blanks, one sign, digits, nothing after; a minus
    # negates modulo 2**64; out of range is ERANGE.
    s = raw.lstrip(_ISSPACE)
    neg = False
    if s[:1] in (b"+", b"-"):
        neg = s[:1] == b"-"
        s = s[1:]
    if not s.isdigit():
        return None
    v = int(s)
    if v > UINT64_MAX:
        return None
    return (-v) & UINT64_MAX if neg else v


def parse_stream_id(raw: bytes, missing_seq: int = 0, strict: bool = True) -> StreamID | None:
    """An ID as `streamGenericParseIDOrReply` reads it (None when Redis would refuse it).

    `strict` refuses `-` and `+` (streamParseStrictIDOrReply); otherwise they mean 0-0 and
    the maximum ID. `ms` alone takes `missing_seq` as its sequence.
    """
    if len(raw) > 127:
        return None
    if b"\0" in raw:  # the C parser reads a NUL-terminated copy
        raw = raw[: raw.index(b"\0")]
    if raw == b"-" or raw == b"+":
        if strict:
            return None
        return ZERO_ID if raw == b"-" else MAX_ID
    ms_raw, dash, seq_raw = raw.partition(b"-")
    ms = _string2ull(ms_raw)
    if ms is None:
        return None
    if not dash:
        return (ms, missing_seq)
    seq = _string2ull(seq_raw)
    if seq is None:
        return None
    return (ms, seq)


def _id(raw: bytes, missing_seq: int = 0, strict: bool = True) -> StreamID:
    sid = parse_stream_id(raw, missing_seq, strict)
    if sid is None:
        raise ApplyError(f"invalid stream ID {raw!r}")
    return sid


def format_stream_id(sid: StreamID) -> bytes:
    return b"%d-%d" % sid


# ---- read counters and lag (streamReplyWithCGLag and helpers), in three generations ----

# Redis 7.0-7.2.6 and 7.4.0-7.4.1, Valkey before 8.1.1: the original rules (redis#9127).
LAG_RULES_70 = 0
# Valkey 8.1.1+ (valkey#1952): a tombstone after the group's last ID makes the counter an
# estimate, and an ID before the latest tombstone has no exact counter (redis#13338's rules);
# the read counter only grows while the group is not behind the first entry.
LAG_RULES_VALKEY81 = 1
# Redis 7.2.7+, 7.4.2+, 8.x: redis#13338, plus the lag shortcuts of redis#13473 (an empty
# stream has no lag; a group and latest tombstone both behind the first entry lag `length`).
LAG_RULES_REDIS_13473 = 2


def range_has_tombstones(
    s: StreamValue, start: StreamID | None, end: StreamID | None, rules: int = LAG_RULES_70
) -> bool:
    """`streamRangeHasTombstones`: may an XDEL'd ID lie in [start, end]?"""
    md = s.max_deleted_id
    if not s.length or md == ZERO_ID:
        return False
    if rules == LAG_RULES_70 and s.first_id > md:  # the latest tombstone precedes the first
        return False
    return (start or ZERO_ID) <= md <= (end or MAX_ID)


def estimate_distance_from_first_ever_entry(
    s: StreamValue, sid: StreamID, rules: int = LAG_RULES_70
) -> int:
    """`streamEstimateDistanceFromFirstEverEntry`: the read counter of `sid`, or -1."""
    added = s.entries_added
    if not added:
        return 0
    if not s.length and sid <= s.last_id:
        return added
    md = s.max_deleted_id
    if rules != LAG_RULES_70 and sid != ZERO_ID and sid < md:
        return SCG_INVALID_ENTRIES_READ  # fragmentation between `sid` and the last ID
    if sid == s.last_id:
        return added
    if sid > s.last_id:
        return SCG_INVALID_ENTRIES_READ
    if md == ZERO_ID or md < s.first_id:
        if sid < s.first_id:
            return added - s.length
        if sid == s.first_id:
            return added - s.length + 1
    return SCG_INVALID_ENTRIES_READ


def consumer_group_lag(s: StreamValue, g: StreamGroup, rules: int = LAG_RULES_70) -> int | None:
    """`streamReplyWithCGLag`: the entries not yet delivered to `g`, or None when unknown."""
    if not s.entries_added:
        return 0
    if rules == LAG_RULES_REDIS_13473:
        if not s.length:
            return 0
        if g.last_id < s.first_id and s.max_deleted_id < s.first_id:
            return s.length
    er = g.entries_read
    if (
        er is not None
        and er != SCG_INVALID_ENTRIES_READ
        and not range_has_tombstones(s, g.last_id, None, rules)
    ):
        return s.entries_added - er
    er = estimate_distance_from_first_ever_entry(s, g.last_id, rules)
    return None if er == SCG_INVALID_ENTRIES_READ else s.entries_added - er


# ---- the master's version, for the behaviours that changed ----


@dataclass(frozen=True)
class _StreamSemantics:
    # 7.0+: XCLAIM drops the PEL entry of an ID no longer in the stream (older: claims it).
    claim_drops_deleted: bool
    lag_rules: int


_LAG_RULES = {
    "70": LAG_RULES_70,
    "valkey81": LAG_RULES_VALKEY81,
    "redis13473": LAG_RULES_REDIS_13473,
}


def _stream_semantics(ks: Keyspace) -> _StreamSemantics:
    d = ks.dialect
    return _StreamSemantics(d.stream_claim_drops_deleted, _LAG_RULES[d.stream_lag_rules])


def lag_rules(ks: Keyspace) -> int:
    """The LAG_RULES_* generation of the master the keyspace replicates (for XINFO)."""
    return _stream_semantics(ks).lag_rules


# ---- what the read commands keep on a stream, maintained by the appliers ----


class _ReadCache:
    """Per-stream indexes of the read commands, kept in `StreamValue.read_cache` (equality
    ignores it; a copied stream copies it, still matching its entries).

    `ids` is `list(s.entries)`, for bisecting a range's start (XRANGE from the middle,
    XREAD's tail): built on first use, then kept current here at each change, so readers
    following a growing stream pay O(log n), not O(n), per read. `layout` is the listpack
    node layout XINFO STREAM reports (see `_node_keys`): extended by XADD, dropped by any
    other change to the entries.
    """

    __slots__ = ("ids", "layout")

    def __init__(self) -> None:
        self.ids: list[StreamID] | None = None
        self.layout: StreamLayout | None = None

    def added(self, sid: StreamID, fields: list[tuple[bytes, bytes]]) -> None:
        """XADD: `sid` is above every ID."""
        if self.ids is not None:
            self.ids.append(sid)
        if self.layout is not None:
            self.layout.append(sid, fields)

    def trimmed(self, n: int) -> None:
        """The first `n` entries went."""
        if self.ids is not None:
            del self.ids[:n]
        self.layout = None

    def deleted(self, sid: StreamID) -> None:
        ids = self.ids
        if ids is not None:
            i = bisect_left(ids, sid)
            if i < len(ids) and ids[i] == sid:
                del ids[i]
            else:
                self.ids = None
        self.layout = None


def _cached(s: StreamValue) -> _ReadCache | None:
    """The stream's read indexes if a read built them (appliers keep them current)."""
    return cast("_ReadCache | None", s.read_cache)


def _read_cache(s: StreamValue) -> _ReadCache:
    rc = _cached(s)
    if rc is None:
        rc = _ReadCache()
        s.read_cache = rc
    return rc


# ---- access helpers ----


def _stream(ks: Keyspace, db: int, key: bytes) -> StreamValue | None:
    v = ks.get(db, key)
    if v is None or isinstance(v, StreamValue):
        return v
    raise ApplyError(f"{key!r} holds a {type(v).__name__}, not a stream")


def _existing_stream(ks: Keyspace, db: int, key: bytes) -> StreamValue:
    s = _stream(ks, db, key)
    if s is None:
        raise ApplyError(f"no stream at {key!r}")
    return s


def _group(s: StreamValue, name: bytes) -> StreamGroup | None:
    for g in s.groups:
        if g.name == name:
            return g
    return None


def _existing_group(s: StreamValue, key: bytes, name: bytes) -> StreamGroup:
    g = _group(s, name)
    if g is None:
        raise ApplyError(f"no consumer group {name!r} in the stream at {key!r}")
    return g


def _consumer(g: StreamGroup, name: bytes) -> StreamConsumer | None:
    for c in g.consumers:
        if c.name == name:
            return c
    return None


def _create_consumer(g: StreamGroup, name: bytes, now: int) -> StreamConsumer:
    """`streamCreateConsumer`: seen now, never active (-1), kept in name (rax) order."""
    c = StreamConsumer(name, now, -1)
    consumers = g.consumers
    if not consumers or consumers[-1].name < name:
        consumers.append(c)
    else:
        consumers.insert(bisect_left([x.name for x in consumers], name), c)
    return c


def _owner(g: StreamGroup, sid: StreamID) -> StreamConsumer | None:
    for c in g.consumers:
        p = c.pending
        i = bisect_left(p, sid)
        if i < len(p) and p[i] == sid:
            return c
    return None


def _drop_pending(c: StreamConsumer, sid: StreamID) -> None:
    p = c.pending
    i = bisect_left(p, sid)
    if i < len(p) and p[i] == sid:
        del p[i]


def _add_pending(c: StreamConsumer, sid: StreamID) -> None:
    p = c.pending
    if not p or p[-1] < sid:
        p.append(sid)
    else:
        insort(p, sid)


def _pel_insert(g: StreamGroup, sid: StreamID, nack: StreamPendingEntry) -> None:
    pel = g.pel
    if not pel or next(reversed(pel)) < sid:
        pel[sid] = nack
    else:  # an ID below the PEL's last one (SETID moved back, FORCE): keep ID order
        pel[sid] = nack
        g.pel = dict(sorted(pel.items()))


def _pel_remove(g: StreamGroup, sid: StreamID) -> bool:
    """Drop `sid` from the group PEL and from its owner's; True if it was pending."""
    if g.pel.pop(sid, None) is None:
        return False
    owner = _owner(g, sid)
    if owner is not None:
        _drop_pending(owner, sid)
    return True


def _head_ordered(s: StreamValue) -> OrderedDict[StreamID, list[tuple[bytes, bytes]]]:
    """`s.entries` as an OrderedDict, whose head can be found and popped in O(1)."""
    e = s.entries
    if type(e) is OrderedDict:
        return e
    od: OrderedDict[StreamID, list[tuple[bytes, bytes]]] = OrderedDict(e)
    s.entries = od
    return od


def _delete_entries(s: StreamValue, ids: list[StreamID]) -> int:
    """`xdelCommand`'s bookkeeping: delete live entries, maintain first/max-deleted IDs."""
    entries = s.entries
    deleted = 0
    first_deleted = False
    for sid in ids:
        if entries.pop(sid, None) is not None:
            if sid == s.first_id:
                first_deleted = True
            if sid > s.max_deleted_id:
                s.max_deleted_id = sid
            deleted += 1
            rc = _cached(s)
            if rc is not None:
                rc.deleted(sid)
    if deleted:
        s.length -= deleted
        if not s.length:
            s.first_id = ZERO_ID
        elif first_deleted:
            s.first_id = next(iter(_head_ordered(s)))
    return deleted


def _remove_references(s: StreamValue, ids: list[StreamID]) -> None:
    """DELREF: the IDs leave every group's PEL (and their owners')."""
    for g in s.groups:
        if g.pel:
            for sid in ids:
                _pel_remove(g, sid)


def _referenced(s: StreamValue, sid: StreamID) -> bool:
    """ACKED: does a group still need `sid` (pending, or not yet delivered)?"""
    return any(sid > g.last_id or sid in g.pel for g in s.groups)


# ---- trimming ----

_KEEPREF, _DELREF, _ACKED = 0, 1, 2
_POLICIES = {b"keepref": _KEEPREF, b"delref": _DELREF, b"acked": _ACKED}


@dataclass
class _TrimArgs:
    maxlen: int | None = None
    minid: StreamID | None = None
    approx: bool = False
    nomkstream: bool = False
    policy: int = _KEEPREF


def _parse_add_or_trim(argv: list[bytes], xadd: bool) -> tuple[_TrimArgs, int]:
    """`streamParseAddOrTrimArgsOrReply`: the options, and where XADD's ID is."""
    args = _TrimArgs()
    n = len(argv)
    i = 2
    while i < n:
        more = n - 1 - i
        opt = argv[i]
        if xadd and opt == b"*":
            break
        low = opt.lower()
        if (low == b"maxlen" or low == b"minid") and more:
            if args.maxlen is not None or args.minid is not None:
                raise ApplyError("MAXLEN and MINID given together")
            nxt = argv[i + 1]
            args.approx = False
            if more >= 2 and nxt == b"~":
                args.approx = True
                i += 1
            elif more >= 2 and nxt == b"=":
                i += 1
            if low == b"maxlen":
                args.maxlen = parse_int(argv[i + 1])
                if args.maxlen < 0:
                    raise ApplyError("negative MAXLEN")
            else:
                args.minid = _id(argv[i + 1])
            i += 1
        elif low == b"limit" and more:
            if parse_int(argv[i + 1]) < 0:
                raise ApplyError("negative LIMIT")
            i += 1  # a replica trims without a limit (mustObeyClient)
        elif xadd and low == b"nomkstream":
            args.nomkstream = True
        elif low in _POLICIES:
            args.policy = _POLICIES[low]
        elif xadd:
            break  # the ID
        else:
            raise ApplyError(f"unknown option {opt!r}")
        i += 1
    if args.approx:
        raise ApplyError(
            "approximate trimming (~) cannot be reproduced: Redis trims whole "
            "listpack nodes, which this keyspace does not model"
        )
    return args, i


def _trim(s: StreamValue, args: _TrimArgs) -> int:
    """`streamTrim` with exact trimming and no LIMIT, as a replica runs it."""
    if args.policy == _ACKED:
        return _trim_acked(s, args)
    maxlen, minid = args.maxlen, args.minid
    if maxlen is not None:
        n = s.length - maxlen
        if n <= 0:
            return 0
        e = _head_ordered(s)
        removed = [e.popitem(last=False)[0] for _ in range(n)]
    elif minid is not None:
        if not s.length or s.first_id >= minid:
            return 0
        e = _head_ordered(s)
        removed = []
        while e and next(iter(e)) < minid:
            removed.append(e.popitem(last=False)[0])
    else:
        return 0
    s.length = len(e)
    s.first_id = next(iter(e)) if e else ZERO_ID
    rc = _cached(s)
    if rc is not None:
        rc.trimmed(len(removed))
    if args.policy == _DELREF and removed:
        _remove_references(s, removed)
    return len(removed)


def _trim_acked(s: StreamValue, args: _TrimArgs) -> int:
    """Trimming with ACKED (Redis 8.2), as a real 8.2.3 server does it: walk from the head
    and delete each entry no group still needs (delivered to every group and pending in
    none), skipping the others, until MAXLEN's count is deleted or MINID is reached. The
    entries skipped stay where they are; like any trim, `max_deleted_id` is not moved, and
    `first_id` follows the first entry left."""
    maxlen, minid = args.maxlen, args.minid
    if maxlen is not None:
        want = s.length - maxlen
        if want <= 0:
            return 0
    elif minid is None or not s.length:
        return 0
    else:
        want = s.length
    removed: list[StreamID] = []
    for sid in s.entries:
        if len(removed) >= want or (minid is not None and sid >= minid):
            break
        if not _referenced(s, sid):
            removed.append(sid)
    if not removed:
        return 0
    entries = s.entries
    rc = _cached(s)
    for sid in removed:
        del entries[sid]
        if rc is not None:
            rc.deleted(sid)
    s.length = len(entries)
    s.first_id = next(iter(entries)) if entries else ZERO_ID
    return len(removed)


# ---- entries ----


@write_command("xadd")
def xadd(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    raw_id = argv[2]
    if raw_id[:1].isdigit():  # no options: the common case
        args: _TrimArgs | None = None
        idpos = 2
    else:
        args, idpos = _parse_add_or_trim(argv, True)
        raw_id = argv[idpos] if idpos < len(argv) else b""
    nfields = len(argv) - idpos - 1
    if nfields < 2 or nfields % 2:
        raise ApplyError("XADD needs field-value pairs")
    if raw_id == b"*":
        raise ApplyError("XADD with '*': a master always propagates the ID it generated")
    ms_raw, _, seq_raw = raw_id.partition(b"-")
    seq_given = seq_raw != b"*"
    sid = _id(ms_raw + b"-0" if not seq_given else raw_id)
    if seq_given and sid == ZERO_ID:
        raise ApplyError("XADD ID 0-0")
    s = _stream(ks, db, key)
    created = s is None
    if s is None:
        if args is not None and args.nomkstream:
            return
        s = StreamValue()
    last = s.last_id
    if last == MAX_ID:
        raise ApplyError("the stream has exhausted the last possible ID")
    if not seq_given and last[0] == sid[0]:
        if last[1] == UINT64_MAX:
            raise ApplyError("no sequence left for this millisecond")
        sid = (last[0], last[1] + 1)
    if sid <= last:
        raise ApplyError(
            f"XADD ID {format_stream_id(sid)!r} is not above the stream top item "
            f"{format_stream_id(last)!r}"
        )
    f = idpos + 1
    fields = s.entries[sid] = list(zip(argv[f::2], argv[f + 1 :: 2]))
    rc = _cached(s)
    if rc is not None:
        rc.added(sid, fields)
    s.length += 1
    s.entries_added += 1
    s.last_id = sid
    if s.length == 1:
        s.first_id = sid
    trimmed = _trim(s, args) if args is not None else 0
    if created:
        ks.set(db, key, s)
    else:
        ks.touched(db, key)
    if ks.notify_flags:
        ks.notify(ksn.STREAM, b"xadd", db, key)
    if trimmed and ks.notify_flags:
        ks.notify(ksn.STREAM, b"xtrim", db, key)


@write_command("xtrim")
def xtrim(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    args, _ = _parse_add_or_trim(argv, False)
    if args.maxlen is None and args.minid is None:
        raise ApplyError("XTRIM without a trimming strategy")
    s = _stream(ks, db, argv[1])
    if s is not None and _trim(s, args):
        ks.touched(db, argv[1])
        if ks.notify_flags:
            ks.notify(ksn.STREAM, b"xtrim", db, argv[1])


@write_command("xdel")
def xdel(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    s = _stream(ks, db, argv[1])
    if s is None:
        return
    ids = [_id(raw) for raw in argv[2:]]
    if _delete_entries(s, ids):
        ks.touched(db, argv[1])
        if ks.notify_flags:
            ks.notify(ksn.STREAM, b"xdel", db, argv[1])


def _parse_ids_block(argv: list[bytes], start: int) -> tuple[int, list[StreamID]]:
    """`[KEEPREF|DELREF|ACKED] IDS numids id...` in any order (XDELEX/XACKDEL, 8.2)."""
    policy = _KEEPREF
    ids: list[StreamID] | None = None
    i, n = start, len(argv)
    while i < n:
        low = argv[i].lower()
        if low in _POLICIES:
            policy = _POLICIES[low]
            i += 1
        elif low == b"ids" and i + 1 < n and ids is None:
            count = parse_int(argv[i + 1])
            if count <= 0 or i + 2 + count > n:
                raise ApplyError("bad IDS block")
            ids = [_id(raw) for raw in argv[i + 2 : i + 2 + count]]
            i += 2 + count
        else:
            raise ApplyError(f"unknown option {argv[i]!r}")
    if ids is None:
        raise ApplyError("IDS block missing")
    return policy, ids


def _delete_with_policy(s: StreamValue, policy: int, ids: list[StreamID]) -> bool:
    if policy == _ACKED:
        ids = [sid for sid in ids if not _referenced(s, sid)]
    changed = _delete_entries(s, ids) > 0
    if policy == _DELREF:
        pending = any(sid in g.pel for g in s.groups for sid in ids)
        _remove_references(s, ids)
        changed = changed or pending
    return changed


@write_command("xdelex")
def xdelex(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """Redis 8.2: XDEL with a policy for consumer group references (from the docs)."""
    policy, ids = _parse_ids_block(argv, 2)
    s = _stream(ks, db, argv[1])
    if s is None:
        return
    n = s.length
    if _delete_with_policy(s, policy, ids):
        ks.touched(db, argv[1])
    if s.length != n and ks.notify_flags:  # as XDEL reports it
        ks.notify(ksn.STREAM, b"xdel", db, argv[1])


@write_command("xackdel")
def xackdel(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """Redis 8.2: XACK in one group, then XDELEX with the policy (from the docs)."""
    policy, ids = _parse_ids_block(argv, 3)
    s = _stream(ks, db, argv[1])
    if s is None:
        return
    g = _existing_group(s, argv[1], argv[2])
    acked = False
    for sid in ids:
        acked = _pel_remove(g, sid) or acked
    n = s.length
    if _delete_with_policy(s, policy, ids) or acked:
        ks.touched(db, argv[1])
    if s.length != n and ks.notify_flags:  # the deletion reports as XDEL's
        ks.notify(ksn.STREAM, b"xdel", db, argv[1])


@write_command("xsetid")
def xsetid(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    sid = _id(argv[2])
    entries_added: int | None = None
    max_deleted = ZERO_ID
    i, n = 3, len(argv)
    while i < n:
        low = argv[i].lower()
        if low == b"entriesadded" and i + 1 < n:
            entries_added = parse_int(argv[i + 1])
            if entries_added < 0:
                raise ApplyError("negative ENTRIESADDED")
        elif low == b"maxdeletedid" and i + 1 < n:
            max_deleted = _id(argv[i + 1])
            if sid < max_deleted:
                raise ApplyError("XSETID ID below MAXDELETEDID")
        else:
            raise ApplyError(f"unknown XSETID option {argv[i]!r}")
        i += 2
    s = _existing_stream(ks, db, argv[1])
    if s.length:
        if sid < next(reversed(s.entries)):
            raise ApplyError("XSETID ID below the stream top item")
        if entries_added is not None and s.length > entries_added:
            raise ApplyError("XSETID ENTRIESADDED below the stream length")
    s.last_id = sid
    if entries_added is not None:
        s.entries_added = entries_added
    if max_deleted != ZERO_ID:
        s.max_deleted_id = max_deleted
    ks.touched(db, argv[1])
    if ks.notify_flags:
        ks.notify(ksn.STREAM, b"xsetid", db, argv[1])


# ---- consumer groups ----


def _clamp_entries_read(ks: Keyspace, s: StreamValue, entries_read: int) -> int:
    """An ENTRIESREAD past the stream's `entries_added` is lowered to it where the master
    does so (`MasterDialect.stream_entries_read_clamp`); older masters store it as given."""
    if (
        entries_read > s.entries_added
        and entries_read != SCG_INVALID_ENTRIES_READ
        and ks.dialect.stream_entries_read_clamp
    ):
        return s.entries_added
    return entries_read


def _entries_read_arg(raw: bytes) -> int:
    v = parse_int(raw)
    if v < 0 and v != SCG_INVALID_ENTRIES_READ:
        raise ApplyError("ENTRIESREAD must be positive or -1")
    return v


@write_command("xgroup", keys=(2, 2, 1))
def xgroup(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    if len(argv) < 4:
        raise ApplyError(f"XGROUP {argv[1:2]!r} without a key and group")
    sub = argv[1].lower()
    key, name = argv[2], argv[3]
    mkstream = False
    entries_read = SCG_INVALID_ENTRIES_READ
    if sub == b"create" or sub == b"setid":
        i = 5
        while i < len(argv):
            low = argv[i].lower()
            if sub == b"create" and low == b"mkstream":
                mkstream = True
                i += 1
            elif low == b"entriesread" and i + 1 < len(argv):
                entries_read = _entries_read_arg(argv[i + 1])
                i += 2
            else:
                raise ApplyError(f"unknown XGROUP {sub.decode()} option {argv[i]!r}")
    s = _stream(ks, db, key)
    if sub == b"create" and len(argv) >= 5:
        if argv[4] == b"$":
            sid = s.last_id if s is not None else ZERO_ID
        else:
            sid = _id(argv[4])
        if s is None:
            if not mkstream:
                raise ApplyError(f"XGROUP CREATE: no stream at {key!r} and no MKSTREAM")
            s = StreamValue()
            ks.set(db, key, s)
        if _group(s, name) is not None:
            raise ApplyError(f"consumer group {name!r} already exists at {key!r}")
        new = StreamGroup(name, sid, _clamp_entries_read(ks, s, entries_read))
        groups = s.groups
        if not groups or groups[-1].name < name:
            groups.append(new)
        else:
            groups.insert(bisect_left([x.name for x in groups], name), new)
        ks.touched(db, key)
        if ks.notify_flags:
            ks.notify(ksn.STREAM, b"xgroup-create", db, key)
        return
    if s is None:
        raise ApplyError(f"XGROUP {sub.decode()}: no stream at {key!r}")
    g = _group(s, name)
    if sub == b"destroy" and len(argv) == 4:
        if g is not None:
            s.groups.remove(g)
            ks.touched(db, key)
            if ks.notify_flags:
                ks.notify(ksn.STREAM, b"xgroup-destroy", db, key)
        return
    if g is None:
        raise ApplyError(f"XGROUP {sub.decode()}: no consumer group {name!r} at {key!r}")
    if sub == b"setid" and len(argv) in (5, 7):
        g.last_id = s.last_id if argv[4] == b"$" else _id(argv[4], strict=False)
        g.entries_read = _clamp_entries_read(ks, s, entries_read)
        event = b"xgroup-setid"
    elif sub == b"createconsumer" and len(argv) == 5:
        if _consumer(g, argv[4]) is not None:
            return
        _create_consumer(g, argv[4], ks.now_ms())
        event = b"xgroup-createconsumer"
    elif sub == b"delconsumer" and len(argv) == 5:
        c = _consumer(g, argv[4])
        if c is None:
            return
        for sid in c.pending:
            g.pel.pop(sid, None)
        g.consumers.remove(c)
        event = b"xgroup-delconsumer"
    else:
        raise ApplyError(f"unknown XGROUP form {argv[1]!r} with {len(argv)} arguments")
    ks.touched(db, key)
    if ks.notify_flags:
        ks.notify(ksn.STREAM, event, db, key)


@write_command("xclaim")
def xclaim(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """`xclaimCommand` as a replica runs the propagated form (any other form too)."""
    key = argv[1]
    s = _existing_stream(ks, db, key)
    g = _existing_group(s, key, argv[2])
    minidle = max(parse_int(argv[4]), 0)
    n = len(argv)
    ids: list[StreamID] = []
    j = 5
    while j < n:
        sid = parse_stream_id(argv[j])
        if sid is None:
            break
        ids.append(sid)
        j += 1
    now = ks.now_ms()
    force = justid = False
    deliverytime = -1
    retrycount = -1
    last_id = ZERO_ID
    while j < n:
        low = argv[j].lower()
        more = j + 1 < n
        if low == b"force":
            force = True
        elif low == b"justid":
            justid = True
        elif low == b"time" and more:
            j += 1
            deliverytime = parse_int(argv[j])
        elif low == b"retrycount" and more:
            j += 1
            retrycount = parse_int(argv[j])
        elif low == b"lastid" and more:
            j += 1
            last_id = _id(argv[j])
        elif low == b"idle" and more:
            j += 1
            deliverytime = now - parse_int(argv[j])
        else:
            raise ApplyError(f"unrecognized XCLAIM option {argv[j]!r}")
        j += 1
    sem = _stream_semantics(ks)
    if last_id > g.last_id:
        # The counter stays: what a real replica does (see the module docstring).
        g.last_id = last_id
    if deliverytime < 0 or deliverytime > now:
        deliverytime = now
    consumer = _consumer(g, argv[3])
    if consumer is None:
        consumer = _create_consumer(g, argv[3], now)
        if ks.notify_flags:
            ks.notify(ksn.STREAM, b"xgroup-createconsumer", db, key)
    consumer.seen_time = now
    pel = g.pel
    entries = s.entries
    for sid in ids:
        nack = pel.get(sid)
        exists = sid in entries
        if not exists and sem.claim_drops_deleted:
            if nack is not None:  # the entry is gone: so is its PEL entry
                _pel_remove(g, sid)
            continue
        owner: StreamConsumer | None = None
        if nack is None:
            if not force or not exists:
                continue
            nack = StreamPendingEntry(now, 1)
            _pel_insert(g, sid, nack)
            pel = g.pel
        else:
            owner = _owner(g, sid)
            if owner is not None and minidle and now - nack.delivery_time < minidle:
                continue
        if owner is not consumer:
            if owner is not None:
                _drop_pending(owner, sid)
            _add_pending(consumer, sid)
        nack.delivery_time = deliverytime
        if retrycount >= 0:
            nack.delivery_count = retrycount
        elif not justid:
            nack.delivery_count += 1
        consumer.active_time = now
    ks.touched(db, key)


@write_command("xack")
def xack(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    s = _stream(ks, db, argv[1])
    if s is None:
        return
    g = _group(s, argv[2])
    if g is None:
        return
    ids = [_id(raw) for raw in argv[3:]]
    acked = False
    for sid in ids:
        acked = _pel_remove(g, sid) or acked
    if acked:
        ks.touched(db, argv[1])


# ---- read commands: XLEN XRANGE XREVRANGE XREAD XPENDING XINFO ----

_INVALID_ID = b"ERR Invalid stream ID specified as stream command argument"
_NO_SUCH_KEY = b"ERR no such key"
# XREAD BLOCK without COUNT: Redis < 7.2 serves a woken client at most this many entries
# per stream (`XREAD_BLOCKED_DEFAULT_COUNT`); 7.2+ re-runs the command as given.
_XREAD_BLOCKED_DEFAULT_COUNT = 1000


@dataclass(frozen=True)
class _Shapes:
    """What the read commands answer differently by the master's version."""

    meta: bool  # 7.0+: entries-added, max-deleted-entry-id, entries-read, lag...
    times: bool  # 7.2+ (and Valkey): active-time / inactive, the 7.2 error texts
    plus_id: bool  # XREAD's `+` ID: Redis 7.4+, Valkey 8.0+


def _shapes_of(c: ReadContext) -> _Shapes:
    return _Shapes(*c.ks.dialect.xinfo_shapes)


def _incr_id(sid: StreamID) -> StreamID | None:
    """`streamIncrID` (None for the maximum ID)."""
    ms, seq = sid
    if seq < UINT64_MAX:
        return (ms, seq + 1)
    return None if ms == UINT64_MAX else (ms + 1, 0)


def _decr_id(sid: StreamID) -> StreamID | None:
    """`streamDecrID` (None for 0-0)."""
    ms, seq = sid
    if seq:
        return (ms, seq - 1)
    return None if not ms else (ms - 1, UINT64_MAX)


def _interval_start(raw: bytes, exclusive: bool = True) -> StreamID:
    """`streamParseIntervalIDOrReply` for a range's start: `(id` excludes it (6.2+)."""
    exclude = exclusive and len(raw) > 1 and raw[0] == 0x28  # "("
    sid = parse_stream_id(raw[1:] if exclude else raw, 0, strict=exclude)
    if sid is None:
        raise ReplyError(_INVALID_ID)
    if exclude:
        sid = _incr_id(sid)
        if sid is None:
            raise ReplyError(b"ERR invalid start ID for the interval")
    return sid


def _interval_end(raw: bytes, exclusive: bool = True) -> StreamID:
    """The range's end: an incomplete ID `ms` means `ms-<max seq>`."""
    exclude = exclusive and len(raw) > 1 and raw[0] == 0x28
    sid = parse_stream_id(raw[1:] if exclude else raw, UINT64_MAX, strict=exclude)
    if sid is None:
        raise ReplyError(_INVALID_ID)
    if exclude:
        sid = _decr_id(sid)
        if sid is None:
            raise ReplyError(b"ERR invalid end ID for the interval")
    return sid


def _index(s: StreamValue) -> list[StreamID]:
    """The stream's IDs in order, for bisecting (see `_ReadCache`)."""
    rc = _read_cache(s)
    ids = rc.ids
    if ids is None or len(ids) != len(s.entries):
        ids = rc.ids = list(s.entries)
    return ids


def _select(
    s: StreamValue, start: StreamID, end: StreamID, count: int, rev: bool
) -> list[StreamID]:
    """`streamIteratorStart` + iteration: the live IDs in [start, end], at most `count` (0:
    no limit), ascending or (`rev`) descending."""
    entries = s.entries
    if not entries or start > end:
        return []
    if not rev and start <= next(iter(entries)):
        # From the head (XRANGE - ..., XREAD 0): no index needed.
        out: list[StreamID] = []
        for sid in entries:
            if sid > end:
                break
            out.append(sid)
            if len(out) == count:
                break
        return out
    if rev and end >= next(reversed(entries)):
        out = []
        for sid in reversed(entries):
            if sid < start:
                break
            out.append(sid)
            if len(out) == count:
                break
        return out
    ids = _index(s)
    i = bisect_left(ids, start)
    j = bisect_right(ids, end)
    if count and j - i > count:
        if rev:
            i = j - count
        else:
            j = i + count
    sel = ids[i:j]
    if rev:
        sel.reverse()
    return sel


def _append_entry(
    append: Callable[[bytes], None], sid: StreamID, fields: list[tuple[bytes, bytes]]
) -> None:
    """Write one entry: [id, [field, value, ...]]."""
    idb = b"%d-%d" % sid
    if len(fields) <= 4:  # a format per pair beats building the flat list for pack_command
        append(b"*2\r\n$%d\r\n%b\r\n*%d\r\n" % (len(idb), idb, 2 * len(fields)))
        for f, v in fields:
            append(b"$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(f), f, len(v), v))
    else:
        append(b"*2\r\n$%d\r\n%b\r\n" % (len(idb), idb))
        append(reply.bulk_array([x for fv in fields for x in fv]))


def _entry(sid: StreamID, fields: list[tuple[bytes, bytes]]) -> bytes:
    out: list[bytes] = []
    _append_entry(out.append, sid, fields)
    return b"".join(out)


def _entries(s: StreamValue, ids: list[StreamID]) -> bytes:
    """An array of entries (XRANGE, XREAD's part for one stream)."""
    entries = s.entries
    out = [b"*%d\r\n" % len(ids)]
    append = out.append
    for sid in ids:
        _append_entry(append, sid, entries[sid])
    return b"".join(out)


def _id_bulk(sid: StreamID) -> bytes:
    idb = b"%d-%d" % sid
    return b"$%d\r\n%b\r\n" % (len(idb), idb)


@read_command("xlen")
def xlen(c: ReadContext, argv: list[bytes]) -> bytes:
    s = lookup_stream(c, argv[1])
    return b":%d\r\n" % (0 if s is None else s.length)


def _xrange(c: ReadContext, argv: list[bytes], rev: bool) -> bytes:
    """`xrangeGenericCommand`: IDs, then COUNT, then the key."""
    ex = c.ks.dialect.stream_ranges_6_2
    if rev:  # XREVRANGE key end start: the start is still parsed first
        start = _interval_start(argv[3], ex)
        end = _interval_end(argv[2], ex)
    else:
        start = _interval_start(argv[2], ex)
        end = _interval_end(argv[3], ex)
    count = -1
    n = len(argv)
    j = 4
    while j < n:
        if j + 1 < n and option_word(argv[j]) == b"count":
            count = max(arg_long(argv[j + 1]), 0)
            j += 2
        else:
            raise ReplyError(SYNTAX)
    s = lookup_stream(c, argv[1])
    if s is None:
        return b"*0\r\n"
    if count == 0:
        return reply.null_array(c.proto)
    return _entries(s, _select(s, start, end, max(count, 0), rev))


@read_command("xrange")
def xrange(c: ReadContext, argv: list[bytes]) -> bytes:
    return _xrange(c, argv, False)


@read_command("xrevrange")
def xrevrange(c: ReadContext, argv: list[bytes]) -> bytes:
    return _xrange(c, argv, True)


def _block_timeout(c: ReadContext, raw: bytes, shapes: _Shapes) -> int:
    """`getTimeoutFromObjectOrReply` in ms, relative (0: forever)."""
    t = arg_long(raw, b"ERR timeout is not an integer or out of range")
    if t < 0:
        raise ReplyError(b"ERR timeout is negative")
    if t > LLONG_MAX - c.now:
        if shapes.times:
            raise ReplyError(b"ERR timeout is out of range")
        # Redis < 7.2: `now + timeout` wraps negative, a deadline its timeout table (keyed
        # by the unsigned value) never reaches: the client waits for data only.
        return 0
    return t


@read_command("xread")
def xread(c: ReadContext, argv: list[bytes]) -> bytes:
    """`xreadCommand` without GROUP (XREADGROUP writes: the dispatcher refuses it)."""
    shapes = _shapes_of(c)
    n = len(argv)
    timeout = -1  # no BLOCK
    count = 0
    streams_arg = 0
    i = 1
    while i < n:
        more = n - i - 1
        opt = option_word(argv[i])
        if opt == b"block" and more:
            i += 1
            timeout = _block_timeout(c, argv[i], shapes)
        elif opt == b"count" and more:
            i += 1
            count = max(arg_long(argv[i]), 0)
        elif opt == b"streams" and more:
            streams_arg = i + 1
            if (n - streams_arg) % 2:
                if c.ks.dialect.xread_unbalanced_mentions_plus:
                    raise ReplyError(
                        b"ERR Unbalanced 'xread' list of streams: for each stream key an ID, "
                        b"'+', or '$' must be specified."
                    )
                raise ReplyError(
                    b"ERR Unbalanced 'xread' list of streams: for each stream key an ID or "
                    b"'$' must be specified."
                    if shapes.times
                    else b"ERR Unbalanced XREAD list of streams: for each stream key an ID or "
                    b"'$' must be specified."
                )
            break
        elif opt == b"group" and more >= 2:
            raise ReplyError(
                b"ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
            )
        elif opt == b"noack":
            raise ReplyError(
                b"ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."
            )
        else:
            raise ReplyError(SYNTAX)
        i += 1
    if not streams_arg:
        raise ReplyError(SYNTAX)
    nstreams = (n - streams_arg) // 2
    keys = argv[streams_arg : streams_arg + nstreams]
    raw_ids = argv[streams_arg + nstreams :]
    streams: list[StreamValue | None] = []
    after: list[StreamID] = []  # serve IDs greater than these
    # Each key is looked up (WRONGTYPE) before its ID is parsed, key by key.
    for key, raw in zip(keys, raw_ids):
        s = lookup_stream(c, key)
        streams.append(s)
        word = c_string(raw)
        if word == b"$":
            after.append(s.last_id if s is not None else ZERO_ID)
        elif word == b"+" and shapes.plus_id:
            # The last entry: everything after last_id - 1 (nothing if it was deleted).
            if s is None:
                after.append(ZERO_ID)
            elif c.ks.dialect.xread_plus_last_live_entry:
                # Redis 8: the last live entry, or nothing for an empty stream.
                last = next(reversed(s.entries)) if s.entries else None
                after.append(ZERO_ID if last is None else _decr_id(last) or ZERO_ID)
            else:
                prev = _decr_id(s.last_id)
                if prev is None:
                    raise ReplyError(b"ERR the stream last element ID is 0-0")
                after.append(prev)
        elif word == b">":
            raise ReplyError(
                b"ERR The > ID can be specified only when calling XREADGROUP using the GROUP "
                b"<group> <consumer> option."
            )
        else:
            sid = parse_stream_id(raw)
            if sid is None:
                raise ReplyError(_INVALID_ID)
            after.append(sid)
    parts: list[bytes] = []
    served = 0
    resp2 = c.proto == 2
    for key, s, gt in zip(keys, streams, after):
        # Served when the last live entry is past the ID (`streamLastValidID`).
        if s is None or not s.entries or next(reversed(s.entries)) <= gt:
            continue
        start = _incr_id(gt)
        assert start is not None  # gt is below an existing ID
        served += 1
        if resp2:
            parts.append(b"*2\r\n")
        parts.append(reply.bulk(key))
        parts.append(_entries(s, _select(s, start, MAX_ID, count, False)))
    if served:
        return (b"*%d\r\n" if resp2 else b"%%%d\r\n") % served + b"".join(parts)
    if timeout != -1 and c.can_block:
        # Wait for a write to one of the keys, then run `retry`: the same read without
        # BLOCK, `$` made the ID it stood for now (the master's blocked client keeps those
        # IDs: re-resolving `$` later would skip what arrived meanwhile).
        retry = [argv[0]]
        limit = count or (0 if shapes.times else _XREAD_BLOCKED_DEFAULT_COUNT)
        if limit:
            retry += [b"COUNT", b"%d" % limit]
        retry.append(b"STREAMS")
        retry += keys
        for raw, gt in zip(raw_ids, after):
            retry.append(format_stream_id(gt) if c_string(raw) == b"$" else raw)
        raise BlockingRead(list(keys), timeout, retry)
    # No BLOCK, or blocking denied (inside MULTI): as a timeout.
    return reply.null_array(c.proto)


# ---- XPENDING ----


def _no_group(key: bytes, group: bytes) -> ReplyError:
    return ReplyError(
        b"NOGROUP No such key '%b' or consumer group '%b'" % (c_string(key), c_string(group))
    )


@read_command("xpending")
def xpending(c: ReadContext, argv: list[bytes]) -> bytes:
    """`xpendingCommand`: the summary (key group) or the extended form
    `[IDLE ms] start end count [consumer]`; arguments are checked before the key."""
    n = len(argv)
    modern = c.ks.dialect.stream_ranges_6_2
    if n != 3 and not 6 <= n <= (9 if modern else 7):
        raise ReplyError(SYNTAX)
    minidle = 0
    count = 0
    start = end = ZERO_ID
    consumer_name: bytes | None = None
    if n >= 6 and not modern:  # 5.0: count, start, end [consumer]; no IDLE, no `(`
        count = max(arg_long(argv[5]), 0)
        start = _interval_start(argv[3], False)
        end = _interval_end(argv[4], False)
        if n == 7:
            consumer_name = argv[6]
    elif n >= 6:
        at = 3
        if option_word(argv[3]) == b"idle":
            minidle = arg_long(argv[4])
            if n < 8:
                raise ReplyError(SYNTAX)
            at = 5
        count = max(arg_long(argv[at + 2]), 0)
        start = _interval_start(argv[at])
        end = _interval_end(argv[at + 1])
        if at + 3 < n:
            consumer_name = argv[at + 3]  # anything after it is ignored, as in Redis
    s = lookup_stream(c, argv[1])
    g = _group(s, argv[2]) if s is not None else None
    if g is None:
        raise _no_group(argv[1], argv[2])
    pel = g.pel
    if n == 3:
        if not pel:
            null = reply.null(c.proto)
            return b"*4\r\n:0\r\n" + null + null + reply.null_array(c.proto)
        owners = [(x.name, len(x.pending)) for x in g.consumers if x.pending]
        return b"*4\r\n:%d\r\n%b%b*%d\r\n%b" % (
            len(pel),
            _id_bulk(next(iter(pel))),
            _id_bulk(next(reversed(pel))),
            len(owners),
            b"".join([b"*2\r\n" + reply.bulk(name) + reply.bulk(b"%d" % k) for name, k in owners]),
        )
    owner: StreamConsumer | None = None
    if consumer_name is not None:
        owner = _consumer(g, consumer_name)
        if owner is None:
            return b"*0\r\n"
        ids = owner.pending
    else:
        ids = list(pel)
    now = c.now
    out: list[bytes] = []
    i = bisect_left(ids, start)
    while count and i < len(ids) and ids[i] <= end:
        sid = ids[i]
        i += 1
        nack = pel.get(sid)
        if nack is None:  # not a state the appliers leave; skip rather than fail
            continue
        if minidle and now - nack.delivery_time < minidle:
            continue
        count -= 1
        who = owner if owner is not None else _owner(g, sid)
        out.append(
            b"*4\r\n%b%b:%d\r\n:%d\r\n"
            % (
                _id_bulk(sid),
                reply.bulk(who.name if who is not None else b""),
                max(now - nack.delivery_time, 0),
                nack.delivery_count,
            )
        )
    return b"*%d\r\n%b" % (len(out), b"".join(out))


# ---- XINFO ----

_XINFO_HELP = (
    b"CONSUMERS <key> <groupname>",
    b"    Show consumers of <groupname>.",
    b"GROUPS <key>",
    b"    Show the stream consumer groups.",
    b"STREAM <key> [FULL [COUNT <count>]",
    b"    Show information about the stream.",
)


def _subcommand_error(c: ReadContext, argv: list[bytes]) -> ReplyError:
    """`addReplySubcommandSyntaxError`, in the master version's words."""
    if c.ks.dialect.command_table.legacy:
        return ReplyError(
            b"ERR Unknown subcommand or wrong number of arguments for '%b'. Try %b HELP."
            % (c_string(argv[1]), c_string(argv[0]).upper())
        )
    return ReplyError(
        b"ERR unknown subcommand or wrong number of arguments for '%b'. Try %b HELP."
        % (c_string(argv[1])[:128], c_string(argv[0]).upper())
    )


@read_command("xinfo")
def xinfo_legacy(c: ReadContext, argv: list[bytes]) -> bytes:
    """XINFO before Redis 7.0, a command parsing its own subcommands (`xinfoCommand`):
    HELP whatever follows; then fewer than three arguments is a subcommand error; then the
    key is looked up (`no such key`, WRONGTYPE) before the subcommand is even checked.
    Redis 5.0 looks the key up for writing, which on a replica still finds a logically
    expired key."""
    d = c.ks.dialect
    table = d.command_table
    if option_word(argv[1]) == b"help":
        text = table.subcommand_help(b"xinfo")
        return text if text is not None else xinfo_help(c, argv)
    if len(argv) < 3:
        if d.before_6_0_commands:
            raise ReplyError(b"ERR syntax error, try 'XINFO HELP'")
        raise _subcommand_error(c, argv)
    if d.before_6_0_commands:
        # lookupKeyWrite: a 5.0 replica does not hide a logically expired key from it (a
        # context at time 0 sees every key, for the lookups below too).
        c = ReadContext(c.ks, db=c.db, proto=c.proto, now=0)
    _xinfo_stream_of(c, argv[2])
    sub = option_word(argv[1])
    if sub == b"consumers":
        return xinfo_consumers(c, argv)
    if sub == b"groups":
        return xinfo_groups(c, argv)
    if sub == b"stream" and (len(argv) == 3 or not d.before_6_0_commands):
        return xinfo_stream(c, argv)
    raise _subcommand_error(c, argv)


@read_command("xinfo|help")
def xinfo_help(c: ReadContext, argv: list[bytes]) -> bytes:
    lines = [
        b"%b <subcommand> [<arg> [value] [opt] ...]. Subcommands are:" % c_string(argv[0]).upper(),
        *_XINFO_HELP,
        b"HELP",
        b"    Print this help." if _shapes_of(c).times else b"    Prints this help.",
    ]
    return b"*%d\r\n%b" % (len(lines), b"".join([reply.simple_string(x) for x in lines]))


def _xinfo_stream_of(c: ReadContext, key: bytes) -> StreamValue:
    s = lookup_stream(c, key)
    if s is None:
        raise ReplyError(_NO_SUCH_KEY)
    return s


def _int_or_null(v: int | None, proto: int) -> bytes:
    return reply.null(proto) if v is None else b":%d\r\n" % v


def _entries_read(c: ReadContext, s: StreamValue, g: StreamGroup) -> int | None:
    """A group's read counter as XINFO shows it (null when unknown)."""
    er = g.entries_read
    if er is None:  # a snapshot older than 7.0: what Redis derives when loading one
        er = estimate_distance_from_first_ever_entry(s, g.last_id, lag_rules(c.ks))
    return None if er == SCG_INVALID_ENTRIES_READ else er


def _active_time(x: StreamConsumer) -> int:
    # A snapshot without active times: Redis loads the seen time as the active time.
    return x.seen_time if x.active_time is None else x.active_time


@read_command("xinfo|groups")
def xinfo_groups(c: ReadContext, argv: list[bytes]) -> bytes:
    s = _xinfo_stream_of(c, argv[2])
    if len(argv) != 3:
        raise _subcommand_error(c, argv)
    proto = c.proto
    meta = _shapes_of(c).meta
    rules = lag_rules(c.ks)
    out = [b"*%d\r\n" % len(s.groups)]
    for g in s.groups:
        out.append(reply.map_len(6 if meta else 4, proto))
        out.append(
            b"$4\r\nname\r\n%b$9\r\nconsumers\r\n:%d\r\n$7\r\npending\r\n:%d\r\n"
            b"$17\r\nlast-delivered-id\r\n%b"
            % (reply.bulk(g.name), len(g.consumers), len(g.pel), _id_bulk(g.last_id))
        )
        if meta:
            out.append(
                b"$12\r\nentries-read\r\n%b$3\r\nlag\r\n%b"
                % (
                    _int_or_null(_entries_read(c, s, g), proto),
                    _int_or_null(consumer_group_lag(s, g, rules), proto),
                )
            )
    return b"".join(out)


@read_command("xinfo|consumers")
def xinfo_consumers(c: ReadContext, argv: list[bytes]) -> bytes:
    s = _xinfo_stream_of(c, argv[2])
    if len(argv) != 4:
        raise _subcommand_error(c, argv)
    g = _group(s, argv[3])
    if g is None:
        raise ReplyError(
            b"NOGROUP No such consumer group '%b' for key name '%b'"
            % (c_string(argv[3]), c_string(argv[2]))
        )
    proto = c.proto
    times = _shapes_of(c).times
    now = c.now
    out = [b"*%d\r\n" % len(g.consumers)]
    for x in g.consumers:
        out.append(reply.map_len(4 if times else 3, proto))
        out.append(
            b"$4\r\nname\r\n%b$7\r\npending\r\n:%d\r\n$4\r\nidle\r\n:%d\r\n"
            % (reply.bulk(x.name), len(x.pending), max(now - x.seen_time, 0))
        )
        if times:
            active = _active_time(x)
            out.append(b"$8\r\ninactive\r\n:%d\r\n" % (now - active if active != -1 else -1))
    return b"".join(out)


@read_command("xinfo|stream")
def xinfo_stream(c: ReadContext, argv: list[bytes]) -> bytes:
    """`xinfoReplyWithStreamInfo`: the key is looked up before the options are parsed."""
    s = _xinfo_stream_of(c, argv[2])
    opts = argv[3:]
    full = bool(opts)
    count = 10  # FULL's default, "so we don't block the server"
    if opts:
        if len(opts) not in (1, 3) or option_word(opts[0]) != b"full":
            raise _subcommand_error(c, argv)
        if len(opts) == 3:
            if option_word(opts[1]) != b"count":
                raise _subcommand_error(c, argv)
            count = arg_long(opts[2])
            if count < 0:
                count = 10
    proto = c.proto
    shapes = _shapes_of(c)
    nodes = _node_keys(s)
    if c.ks.dialect.before_6_0_commands:
        # Redis 5.0: no FULL (`c->argc == 3` only), and `groups` before the last ID.
        if opts:
            raise _subcommand_error(c, argv)
        entries = s.entries
        head = (
            b"*14\r\n$6\r\nlength\r\n:%d\r\n$15\r\nradix-tree-keys\r\n:%d\r\n"
            b"$16\r\nradix-tree-nodes\r\n:%d\r\n$6\r\ngroups\r\n:%d\r\n"
            b"$17\r\nlast-generated-id\r\n%b"
            % (s.length, len(nodes), rax_nodes(nodes), len(s.groups), _id_bulk(s.last_id))
        )
        if not entries:
            return head + b"$11\r\nfirst-entry\r\n$-1\r\n$10\r\nlast-entry\r\n$-1\r\n"
        first, last = next(iter(entries)), next(reversed(entries))
        return (
            head
            + b"$11\r\nfirst-entry\r\n"
            + _entry(first, entries[first])
            + b"$10\r\nlast-entry\r\n"
            + _entry(last, entries[last])
        )
    out = [
        reply.map_len((9 if full else 10) if shapes.meta else (6 if full else 7), proto),
        b"$6\r\nlength\r\n:%d\r\n$15\r\nradix-tree-keys\r\n:%d\r\n"
        b"$16\r\nradix-tree-nodes\r\n:%d\r\n$17\r\nlast-generated-id\r\n%b"
        % (s.length, len(nodes), rax_nodes(nodes), _id_bulk(s.last_id)),
    ]
    if shapes.meta:
        out.append(
            b"$20\r\nmax-deleted-entry-id\r\n%b$13\r\nentries-added\r\n:%d\r\n"
            b"$23\r\nrecorded-first-entry-id\r\n%b"
            % (_id_bulk(s.max_deleted_id), s.entries_added, _id_bulk(s.first_id))
        )
    entries = s.entries
    if not full:
        out.append(b"$6\r\ngroups\r\n:%d\r\n" % len(s.groups))
        null = reply.null(proto)
        if entries:
            first = next(iter(entries))
            last = next(reversed(entries))
            out.append(b"$11\r\nfirst-entry\r\n" + _entry(first, entries[first]))
            out.append(b"$10\r\nlast-entry\r\n" + _entry(last, entries[last]))
        else:
            out.append(b"$11\r\nfirst-entry\r\n" + null + b"$10\r\nlast-entry\r\n" + null)
        return b"".join(out)
    out.append(b"$7\r\nentries\r\n")
    out.append(_entries(s, _select(s, ZERO_ID, MAX_ID, count, False)))
    out.append(b"$6\r\ngroups\r\n*%d\r\n" % len(s.groups))
    rules = lag_rules(c.ks)
    for g in s.groups:
        out.append(reply.map_len(7 if shapes.meta else 5, proto))
        out.append(
            b"$4\r\nname\r\n%b$17\r\nlast-delivered-id\r\n%b"
            % (reply.bulk(g.name), _id_bulk(g.last_id))
        )
        if shapes.meta:
            out.append(
                b"$12\r\nentries-read\r\n%b$3\r\nlag\r\n%b"
                % (
                    _int_or_null(_entries_read(c, s, g), proto),
                    _int_or_null(consumer_group_lag(s, g, rules), proto),
                )
            )
        pel = g.pel
        owner_of = {sid: x.name for x in g.consumers for sid in x.pending}
        shown = list(islice(pel.items(), count or None))
        out.append(b"$9\r\npel-count\r\n:%d\r\n$7\r\npending\r\n*%d\r\n" % (len(pel), len(shown)))
        out += [
            b"*4\r\n%b%b:%d\r\n:%d\r\n"
            % (
                _id_bulk(sid),
                reply.bulk(owner_of.get(sid, b"")),
                nack.delivery_time,
                nack.delivery_count,
            )
            for sid, nack in shown
        ]
        out.append(b"$9\r\nconsumers\r\n*%d\r\n" % len(g.consumers))
        for x in g.consumers:
            out.append(reply.map_len(5 if shapes.times else 4, proto))
            out.append(
                b"$4\r\nname\r\n%b$9\r\nseen-time\r\n:%d\r\n" % (reply.bulk(x.name), x.seen_time)
            )
            if shapes.times:
                out.append(b"$11\r\nactive-time\r\n:%d\r\n" % _active_time(x))
            mine = x.pending[:count] if count else x.pending
            out.append(
                b"$9\r\npel-count\r\n:%d\r\n$7\r\npending\r\n*%d\r\n" % (len(x.pending), len(mine))
            )
            for sid in mine:
                nack = pel.get(sid) or StreamPendingEntry(0, 0)
                out.append(
                    b"*3\r\n%b:%d\r\n:%d\r\n"
                    % (_id_bulk(sid), nack.delivery_time, nack.delivery_count)
                )
    return b"".join(out)


# ---- XINFO STREAM's radix-tree-keys / radix-tree-nodes ----


def _node_keys(s: StreamValue) -> list[StreamID]:
    """The master IDs of the listpack nodes holding the stream, as `streamAppendItem` lays
    out its live entries appended in order (kept by the appliers through XADD, rebuilt
    after other changes).

    This is the master's layout for a stream that only ever grew by XADD. Deleted and
    trimmed entries keep their room in the master's nodes until a whole node empties; the
    model keeps only live entries, so after XDEL/XTRIM these counts are an estimate.
    """
    rc = _read_cache(s)
    if rc.layout is None:
        layout = StreamLayout()
        for sid, fields in s.entries.items():
            layout.append(sid, fields)
        rc.layout = layout
    return rc.layout.keys
