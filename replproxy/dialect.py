"""Which master, which version, which behaviour: the one answer (`MasterDialect`).

A replica of Redis 5.0 answers differently from one of Redis 8.2 or Valkey 8.1: its command
table, error texts, double format, encodings and a few appliers' rules follow its version.
The relay must answer as a replica of ITS master, so every version question in the code asks
the dialect, which is computed once from the master's snapshot (the `redis-ver` /
`valkey-ver` AUX fields, or for a partial resync after a restart from the saved state) and
announced when a snapshot loads. Nothing here reads a socket or the clock.

Feature flags are named properties, so a reader sees WHAT differs (`listpack_sets`,
`resp3`) instead of a version comparison, and the version rules live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from replproxy.commandtable.table import CommandTable, table_for

ServerName = Literal["redis", "valkey"]

# What the relay takes a master for until a snapshot names it, and a snapshot without a
# version AUX field (only Redis < 3.2 writes none; the relay's own snapshots keep the
# master's): the newest Redis the relay knows.
_DEFAULT_VERSION = (8, 2, 3)


def _parse_version(raw: bytes) -> tuple[int, int, int] | None:
    try:
        parts = [int(x) for x in raw.decode("ascii").split(".")[:3]]
    except (UnicodeDecodeError, ValueError):
        return None
    parts += [0, 0, 0]
    return parts[0], parts[1], parts[2]


# Frozen, so one dialect can be shared; not slotted, so each behaviour is computed once
# (`cached_property` stores into the instance dict): appliers ask on every command.
@dataclass(frozen=True)
class MasterDialect:
    """The master's kind and version, and every behaviour that follows from them."""

    server: ServerName = "redis"
    version: tuple[int, int, int] = _DEFAULT_VERSION

    @classmethod
    def from_aux(cls, aux: dict[bytes, bytes]) -> MasterDialect:
        """From a snapshot's AUX fields: `valkey-ver` wins over `redis-ver` (Valkey writes
        both, `redis-ver` being its Redis compatibility version 7.2.4)."""
        raw = aux.get(b"valkey-ver")
        if raw is not None:
            return cls("valkey", _parse_version(raw) or (8, 0, 0))
        raw = aux.get(b"redis-ver")
        if raw is not None:
            return cls("redis", _parse_version(raw) or _DEFAULT_VERSION)
        return cls()

    @property
    def valkey(self) -> bool:
        return self.server == "valkey"

    @property
    def version_text(self) -> str:
        """`HELLO`'s version and INFO's `redis_version`/`valkey_version` (x.y.z)."""
        return ".".join(str(n) for n in self.version)

    @property
    def redis_version_text(self) -> str:
        """INFO's `redis_version`: Valkey reports the Redis version it is compatible with."""
        return "7.2.4" if self.valkey else self.version_text

    def at_least(
        self, redis: tuple[int, ...] | None, valkey: tuple[int, ...] | None = None
    ) -> bool:
        """Whether this master is at least `redis` (for Redis) or `valkey` (for Valkey);
        None means "never" for that server."""
        want = valkey if self.valkey else redis
        return want is not None and self.version >= tuple(want)

    @property
    def command_table(self) -> CommandTable:
        """The master's own command table: which commands exist, their arity, COMMAND's
        replies and the error texts (`commandtable.versions.choose_table` says which table
        answers for which version)."""
        return table_for(self.server, self.version)

    @property
    def acl_command_table(self) -> CommandTable:
        """The table the relay's ACL judges users' rules with (docs/security.md): the
        master's own from Redis 6.2 (Redis 6.2's ACL, with 6.2's categories and keys);
        before 6.2 (6.0's ACL had no channel rules, 5.0 none at all) the relay's ACL is
        Redis 7.0's, so it takes 7.0's table: the 5.0 table has no categories, and neither
        has the key flags `%R~`/`%W~` need."""
        if self.valkey or self.version >= (6, 2, 0):
            return self.command_table
        return CommandTable.load("redis-7.0")

    # ---- named behaviours (add here; never compare versions elsewhere) ----
    # Each says what differs and since when, with the change that introduced it.

    @cached_property
    def info_cmdstat_failed_calls(self) -> bool:
        """INFO commandstats has `rejected_calls` and `failed_calls` (Redis 6.2, #8217)."""
        return self.at_least((6, 2), (7, 2))

    @cached_property
    def info_everything(self) -> bool:
        """`INFO everything` is known (Redis 6.0, with modules' INFO sections); before, it
        is an unknown section name: an empty reply."""
        return self.at_least((6, 0), (7, 2))

    @cached_property
    def info_multiple_sections(self) -> bool:
        """INFO takes several section names (Redis 7.0); before, more than one argument is
        a syntax error."""
        return self.at_least((7, 0), (7, 2))

    @cached_property
    def client_list_fields(self) -> frozenset[str]:
        """The optional CLIENT LIST fields: `v6` (argv-mem, tot-mem, user, redir: Redis 6),
        `laddr` (6.2), `v7` (ssub, multi-mem, rbs, rbp, resp: 7.0), `capa` (Valkey 8),
        `watch` (Valkey 8, Redis 7.4), `lib` (lib-name/lib-ver: Redis 7.2, Valkey),
        `io-thread` (Redis 8.0), `tot` (tot-net-in/tot-net-out/tot-cmds: Valkey 8,
        Redis 8.0)."""
        if self.valkey:
            return frozenset(("v6", "laddr", "v7", "capa", "watch", "lib", "tot"))
        have = set()
        if self.version >= (6, 0, 0):
            have.add("v6")
        if self.version >= (6, 2, 0):
            have.add("laddr")
        if self.version >= (7, 0, 0):
            have.add("v7")
        if self.version >= (7, 2, 0):
            have.add("lib")
        if self.version >= (7, 4, 0):
            have.add("watch")
        if self.version >= (8, 0, 0):
            have |= {"io-thread", "tot"}
        return frozenset(have)

    @cached_property
    def latency_docs_url(self) -> str | None:
        """The page LATENCY DOCTOR points to when monitoring is off: redis.io's new docs
        address since Redis 8.0; Valkey names none."""
        if self.valkey:
            return None
        if self.version >= (8, 0, 0):
            return (
                "https://redis.io/docs/latest/operate/oss_and_stack/management/"
                "optimization/latency-monitor"
            )
        if self.version >= (6, 2, 2):
            return "https://redis.io/topics/latency-monitor"
        return "http://redis.io/topics/latency-monitor"

    @cached_property
    def info_keyspace_subexpiry(self) -> bool:
        """INFO keyspace lines end with `subexpiry=` (Redis 7.4's hash field TTLs; Valkey
        9.0's too)."""
        return self.at_least((7, 4), (9, 0))

    @cached_property
    def resp3(self) -> bool:
        """HELLO and RESP3 exist from Redis 6.0."""
        return self.at_least((6, 0), (0,))

    @cached_property
    def blocked_commands_rerun(self) -> bool:
        """A blocked command woken by a write runs again through `call()` (Redis 7.2's
        blocking rework, every Valkey); 7.0 serves blocked stream readers from blocked.c."""
        return self.at_least((7, 2), (0,))

    @cached_property
    def config_unsigned_min_text(self) -> bool:
        """CONFIG SET of an unsigned setting below 0 says "argument must be greater or equal
        to 0" in Redis 8.2 (seen on 8.2.3; 8.0-m01 and Valkey 8.1 still say "between 0 and
        LLONG_MAX inclusive")."""
        return self.at_least((8, 2), None)

    @cached_property
    def keyspace_new_events(self) -> bool:
        """The `new` keyspace event (letter n) exists from Redis 7.0."""
        return self.at_least((7, 0), (0,))

    @cached_property
    def replica_keyspace_error(self) -> bytes:
        """What a monitor (a replica-flagged client) reading a key gets: Redis 6.2 spells
        it "interract"."""
        verb = b"interact" if self.at_least((7, 0), (0,)) else b"interract"
        return b"-ERR Replica can't " + verb + b" with the keyspace\r\n"

    @cached_property
    def config_set_failed_text(self) -> bool:
        """A refused CONFIG SET value says "CONFIG SET failed (possibly related to argument
        '<name>') - <why>" from Redis 7.0 (multi-parameter CONFIG SET); before, "Invalid
        argument '<value>' for CONFIG SET '<name>'"."""
        return self.at_least((7, 0), (0,))

    @cached_property
    def keyspace_overwrite_events(self) -> bool:
        """The `overwritten` / `type_changed` keyspace events (letters o and c) exist from
        Redis 8.2 (#14141); no Valkey has them."""
        return self.at_least((8, 2), None)

    @cached_property
    def readwrite_outside_cluster(self) -> bool:
        """READWRITE answers OK outside cluster mode (Redis before 7.0, Valkey); READONLY
        too on Valkey only. Redis 7.0+ refuses both ("cluster support disabled")."""
        return not self.at_least((7, 0), None)

    def subscriber_context_error(self, name: bytes, fullname: bytes) -> bytes:
        """The error a RESP2 subscriber gets for another command (`processCommand`): 5.0
        names no command, 6.2 names the command (not its subcommand), 7.0 adds the shard
        channels' commands and names the subcommand."""
        if not self.at_least((6, 0), (0,)):
            return b"ERR only (P)SUBSCRIBE / (P)UNSUBSCRIBE / PING / QUIT allowed in this context"
        if not self.at_least((7, 0), (0,)):
            return (
                b"ERR Can't execute '%b': only (P)SUBSCRIBE / (P)UNSUBSCRIBE / PING / QUIT "
                b"/ RESET are allowed in this context" % name
            )
        return (
            b"ERR Can't execute '%b': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
            b"QUIT / RESET are allowed in this context" % fullname
        )

    @cached_property
    def command_errors_say_fullname(self) -> bool:
        """Errors that name their command quote its full name, `for 'zunion' command`
        (Redis 7.0's `c->cmd->fullname`); before: the bare name, `for zunion`."""
        return self.at_least((7, 0), (0,))

    @cached_property
    def lpos_rank_zero_hint(self) -> bool:
        """LPOS's RANK-zero error explains negative ranks (Redis 7.0); 6.x ends at `...`."""
        return self.at_least((7, 0), (0,))

    @cached_property
    def shortest_doubles(self) -> bool:
        """Doubles print in the shortest round-trip form (fpconv) from Redis 7.2 and in every
        Valkey; `%.17g` before. Replies and DEBUG DIGEST switched together."""
        return self.at_least((7, 2), (0,))

    @cached_property
    def double_style(self) -> Literal["shortest", "g17"]:
        return "shortest" if self.shortest_doubles else "g17"

    @cached_property
    def listpack_sets(self) -> bool:
        """Small non-integer sets are listpacks (insertion order) from Redis 7.2 / Valkey."""
        return self.at_least((7, 2), (0,))

    @cached_property
    def object_sees_expired_keys(self) -> bool:
        """OBJECT reads the key table directly (`dictFind`) before Redis 6.0: a replica
        answers for a logically expired key. 6.0+ look it up as a read (missing)."""
        return not self.at_least((6, 0), (0,))

    @cached_property
    def config_get_echoes_name(self) -> bool:
        """CONFIG GET of a plain name answers it as the client spelled it (Redis 7.0's
        multi-parameter CONFIG GET); before, under its canonical lowercase name."""
        return self.at_least((7, 0), (0,))

    @cached_property
    def random_count_range_check(self) -> bool:
        """SRANDMEMBER / HRANDFIELD / ZRANDMEMBER refuse counts whose reply size overflows
        (Redis 7.0: -LONG_MAX..LONG_MAX, halved WITHVALUES/WITHSCORES); before, any long is
        taken (a missing key answers an empty array whatever the count)."""
        return self.at_least((7, 0), (0,))

    @cached_property
    def builtin_modules(self) -> tuple[tuple[bytes, int], ...]:
        """Modules the server loads by itself, (name, version) as HELLO and MODULE LIST
        show them: Redis 8's vector sets (`vectorset`, 1)."""
        return ((b"vectorset", 1),) if self.at_least((8, 0), None) else ()

    @cached_property
    def stream_encoding_name(self) -> bytes:
        """OBJECT ENCODING of a stream: `stream` from Redis 6.0; 5.0's `strEncoding` does not
        know the stream encoding and says `unknown`."""
        return b"stream" if self.at_least((6, 0), (0,)) else b"unknown"

    @cached_property
    def wrongpass_error(self) -> bytes:
        """A failed AUTH: 5.0's `invalid password` (no users), 6.0's WRONGPASS, and from 6.2
        the text that also covers disabled users."""
        if not self.at_least((6, 0), (0,)):
            return b"ERR invalid password"
        if not self.at_least((6, 2), (0,)):
            return b"WRONGPASS invalid username-password pair"
        return b"WRONGPASS invalid username-password pair or user is disabled."

    @cached_property
    def rejections_abort_exec(self) -> bool:
        """Every refused command inside MULTI dooms the EXEC (`rejectCommand`, Redis 6.0);
        5.0 flags the transaction for some refusals only, not for a read-only replica's
        READONLY."""
        return self.at_least((6, 0), (0,))

    @cached_property
    def pfcount_sees_expired_keys(self) -> bool:
        """A single-key PFCOUNT looks its key up for writing before 7.0 (`lookupKeyWrite`),
        which on a replica still finds a logically expired key (and caches its count)."""
        return not self.at_least((7, 0), (0,))

    @cached_property
    def small_encoding(self) -> bytes:
        """OBJECT ENCODING of a small hash or sorted set: `listpack` from Redis 7.0,
        `ziplist` before."""
        return b"listpack" if self.at_least((7, 0), (0,)) else b"ziplist"

    @cached_property
    def listpack_config_names(self) -> bool:
        """The `*-max-listpack-*` config names (aliases of `*-max-ziplist-*`) exist from
        Redis 7.0."""
        return self.at_least((7, 0), (0,))

    @cached_property
    def setop_reply_hashtable(self) -> bool:
        """SUNION / SDIFF without a destination collect into a hash table as soon as one
        source is not an intset (Redis 8.0, Valkey 8.0: `dstset_encoding`), so they reply
        in that table's seeded order; before, into an intset that converts as members come."""
        return self.at_least((8, 0), (8, 0))

    @cached_property
    def listpackex(self) -> bool:
        """A small hash that gets a field TTL becomes a `listpackex` (Redis 7.4): fields
        with a TTL first, by expiry, then the others; it stays one when the TTLs go."""
        return self.at_least((7, 4), None)

    @cached_property
    def sinter_looks_up_every_key(self) -> bool:
        """SINTER looks every key up (WRONGTYPE from a key after a missing one) from Redis
        6.2; before, the first missing key answers an empty set at once."""
        return self.at_least((6, 2), (0,))

    @cached_property
    def listpack_lists(self) -> bool:
        """Small lists are plain listpacks (not quicklists) from Redis 7.2 / Valkey."""
        return self.at_least((7, 2), (0,))

    @cached_property
    def before_6_0_commands(self) -> bool:
        """Redis 5.0's own connection and stream commands: SELECT reads a long and wraps it
        to an int ("invalid DB index"), AUTH takes only a password (no ACL users), XINFO
        parses its subcommands itself (a syntax error naming `XINFO HELP`, the key looked up
        for writing, STREAM without FULL and `groups` before `last-generated-id`), KEYS
        takes a pattern starting `*` and a NUL byte for `*`."""
        return not self.at_least((6, 0), (0,))

    @cached_property
    def skiplist_max_level(self) -> int:
        """ZSKIPLIST_MAXLEVEL, the levels of a skiplist's header node (what MEMORY USAGE
        counts for it): 64 in Redis 5.0, 32 from 6.0."""
        return 32 if self.at_least((6, 0), (0,)) else 64

    @cached_property
    def stream_nodes_preallocated(self) -> bool:
        """XADD preallocates a new stream node's listpack (`lpNew(prealloc)`, Redis 7.0),
        which MEMORY USAGE counts; before, the listpack grows as entries come."""
        return self.at_least((7, 0), (0,))

    @cached_property
    def scan_type_option(self) -> bool:
        """SCAN's TYPE option (Redis 6.0)."""
        return self.at_least((6, 0), (0,))

    @cached_property
    def lolwut_versions(self) -> bool:
        """LOLWUT takes `VERSION v` and draws per version (Redis 6.0); 5.0 always draws
        its Schotter."""
        return self.at_least((6, 0), (0,))

    @cached_property
    def lolwut_poem(self) -> bool:
        """LOLWUT 8 is Redis 8's poem (not on Valkey, nor on older Redis)."""
        return self.at_least((8, 0), None)

    @cached_property
    def fast_float_ranges(self) -> bool:
        """Redis 8 reads score ranges (`zslParseRange`) and SORT's scores with the
        fast_float library instead of strtod: no leading blanks, no hex floats, and an
        overflow is infinity rather than SORT's conversion error (`getDoubleFromObject`
        kept strtod's rules: measured on 8.2.3). Valkey 8 builds without it."""
        return self.at_least((8, 0), None)

    @cached_property
    def embedded_keys(self) -> bool:
        """Valkey 8 and Redis 8 (its `kvobj`) embed the key (and TTL) in the value object:
        embstr limits and OBJECT REFCOUNT (no shared integers) follow; measured on Valkey
        8.1.8 and Redis 8.2.3, which agree."""
        return self.at_least((8, 0), (8, 0))

    def embstr_limit(self, key_len: int, has_ttl: bool) -> int:
        """The longest string value kept `embstr`. Servers embedding the key (Valkey 8,
        Redis 8) keep the object, key and value in one 64-byte allocation, measured on
        Valkey 8.1.8 and Redis 8.2.3 (SET, SET EX, EXPIRE, RESTORE, on a master and its
        replica alike): key + value <= 41 bytes; with a TTL, <= 33 on Redis 8 and, for a
        key of 32 bytes or more, <= 39 on Valkey. A string that gets a TTL it does not fit
        with becomes raw for good (`Keyspace.set_expire`)."""
        if not self.embedded_keys:
            return 44  # OBJ_ENCODING_EMBSTR_SIZE_LIMIT
        if not has_ttl:
            return 41 - key_len
        if self.valkey:
            return (39 if key_len >= 32 else 41) - key_len
        return max(33 - key_len, 1)

    @cached_property
    def shared_integers(self) -> bool:
        """Strings 0..9999 are shared objects (OBJECT REFCOUNT 2147483647), until keys are
        embedded in their values (a shared object cannot hold a key)."""
        return not self.embedded_keys

    @cached_property
    def valkey_hashtable(self) -> bool:
        """Valkey 8's own hash table (64-byte buckets of 7, entries embedding their key)
        instead of Redis's dict: MEMORY USAGE follows."""
        return self.at_least(None, (8, 0))

    @cached_property
    def bit_range_args_first(self) -> bool:
        """BITCOUNT/BITPOS parse their range before the key lookup (Redis 7.4, Valkey 8)."""
        return self.at_least((7, 4), (8, 0))

    @cached_property
    def bit_unit_option(self) -> bool:
        """BITCOUNT / BITPOS take a BYTE|BIT unit after the range (Redis 7.0)."""
        return self.at_least((7, 0), (0,))

    @cached_property
    def bitcount_lone_start(self) -> bool:
        """BITCOUNT accepts a start without an end (Valkey 8)."""
        return self.at_least(None, (8, 0))

    @cached_property
    def bitfield_legacy_i64(self) -> bool:
        """BITFIELD's i64 overflow arithmetic before Redis 6.0.6 (see t_bitmap)."""
        return not self.valkey and self.version < (6, 0, 6)

    @cached_property
    def lpos_rank_range_check(self) -> bool:
        """LPOS RANK LONG_MIN is refused (Redis 7.2, #12167; every Valkey)."""
        return self.at_least((7, 2), (0,))

    @cached_property
    def scan_novalues(self) -> bool:
        """HSCAN NOVALUES (Redis 7.4, Valkey 8)."""
        return self.at_least((7, 4), (8, 0))

    @cached_property
    def scan_noscores(self) -> bool:
        """ZSCAN NOSCORES (Valkey 8; Redis 8.2.3 still has none: a syntax error there)."""
        return self.at_least(None, (8, 0))

    @cached_property
    def scan_cursor_string2ull(self) -> bool:
        """Cursors parsed by `string2ull` (Redis 7.4, with the 64-bit cursors of #11695;
        Valkey 8) rather than `strtoul`: "" and "-5" are invalid cursors."""
        return self.at_least((7, 4), (8, 0))

    @cached_property
    def glob_nesting_limit(self) -> bool:
        """Pattern recursion cut at depth 1000 (CVE-2024-31228: Redis 6.2.16+, 7.2.6+,
        7.4.1+, not 7.0; Valkey 7.2.7+, 8.0.1+)."""
        v = self.version
        if self.valkey:
            return v >= (8, 0, 1) or (7, 2, 7) <= v < (8, 0, 0)
        return v >= (7, 4, 1) or (7, 2, 6) <= v < (7, 4, 0) or (6, 2, 16) <= v < (7, 0, 0)

    @cached_property
    def hll_merge_refuses_overflow(self) -> bool:
        """`hllMerge` (PFCOUNT of several keys, PFMERGE) refuses a sparse run past the last
        register (CVE-2025-32023: Redis 6.2.19+, 7.2.10+, 7.4.5+, 8.0.3+; Valkey 7.2.10+,
        8.0.4+, 8.1.3+). Unpatched, a VAL run past the end stops the walk, which passes when
        it stopped exactly at the last register. Redis 7.0 never had an upstream fix, but
        distributions patched it (Debian's 7.0.15 refuses): 7.0 is taken as patched."""
        v = self.version
        if self.valkey:
            return v >= (8, 1, 3) or (8, 0, 4) <= v < (8, 1, 0) or (7, 2, 10) <= v < (8, 0, 0)
        return (
            v >= (8, 0, 3)
            or (7, 4, 5) <= v < (8, 0, 0)
            or (7, 2, 10) <= v < (7, 4, 0)
            or (7, 0, 0) <= v < (7, 2, 0)
            or (6, 2, 19) <= v < (7, 0, 0)
        )

    # Sorted sets (t_zset): how ZADD creates and converts listpacks.

    @cached_property
    def zset_listpack_drops_zero_sign(self) -> bool:
        """A listpack zset stores -0 as 0 from Redis 7.0 (before, a ziplist keeps "-0")."""
        return self.at_least((7, 0), (0,))

    @cached_property
    def zset_create_rule(self) -> Literal["first_member", "count_first", "count_longest"]:
        """How ZADD creates a zset / converts a listpack before adding: by the first member's
        length (up to 7.0), also by the number of pairs (Redis 7.2+), by the number of pairs
        and the longest member (Valkey 8+)."""
        if self.at_least(None, (8, 0)):
            return "count_longest"
        if self.at_least((7, 2), (0,)):
            return "count_first"
        return "first_member"

    @cached_property
    def zrange_unified(self) -> bool:
        """ZRANGE takes BYSCORE/BYLEX/REV/LIMIT and every range command parses its options
        before its range (Redis 6.2's `zrangeGenericCommand`); before, each command has
        its own parser, range first (5.0's `zrangeGenericCommand`,
        `genericZrangebyscoreCommand`, `genericZrangebylexCommand`)."""
        return self.at_least((6, 2), (0,))

    @cached_property
    def zrank_withscore(self) -> bool:
        """ZRANK/ZREVRANK WITHSCORE (Redis 7.2, Valkey)."""
        return self.at_least((7, 2), (0,))

    @cached_property
    def zset_nth_in_range(self) -> bool:
        """A skiplist's LIMIT offset is found by `zslNthInRange` (Redis 7.4, Valkey), where
        a negative offset counts from the other end; Redis 8.0 answers nothing for a
        negative offset again (a real 8.2.3 does, listpack or skiplist)."""
        return self.at_least((7, 4), (0,)) and not self.at_least((8, 0), None)

    @cached_property
    def geo_variant(self) -> int:
        """Which geo code the master runs: 50, 60, 62 or 70 (the first version of each), and
        63 for 6.2.7+, which took 7.0's choice of the search step (by the bounding box; 6.2.0
        to 6.2.6 compare distances, as 5.0 does, and so may search one step too fine and
        miss members near the edge)."""
        if self.at_least((7, 0), (0,)):
            return 70
        if self.version >= (6, 2, 7):
            return 63
        if self.version >= (6, 2, 0):
            return 62
        if self.version >= (6, 0, 0):
            return 60
        return 50

    @cached_property
    def geo_coords_as_doubles(self) -> bool:
        """GEOPOS and WITHCOORD print coordinates with `addReplyDouble` (the version's
        double text) from Redis 8.0 (redis#13494); before, and on Valkey, as a human long
        double (`%.17Lf` trimmed)."""
        return self.at_least((8, 0), None)

    # Streams (t_stream).

    @cached_property
    def stream_lag_rules(self) -> Literal["70", "redis13473", "valkey81"]:
        """How XINFO computes a group's lag (redis#13338/#13473 fixed in 7.2.7 and 7.4.2;
        Valkey 8.1.1 has its own)."""
        v = self.version
        if self.valkey:
            return "valkey81" if v >= (8, 1, 1) else "70"
        if v >= (7, 4, 2) or (7, 2, 7) <= v < (7, 4, 0):
            return "redis13473"
        return "70"

    @cached_property
    def stream_claim_drops_deleted(self) -> bool:
        """XCLAIM drops the PEL entry of an ID no longer in the stream (Redis 7.0; before,
        it claims it)."""
        return self.at_least((7, 0), (0,))

    @cached_property
    def stream_entries_read_unpropagated(self) -> bool:
        """XREADGROUP moves `entries_read` on the master without propagating it (Redis
        7.0-7.2, Valkey before 8, redis#12898): a replica's counter is what the XCLAIMs'
        LASTID leave it (the last ID moves, the counter does not), and the relay, answering
        as that replica, keeps the same stale counter."""
        v = self.version
        if self.valkey:
            return v < (8, 0, 0)
        return (7, 0, 0) <= v < (7, 4, 0)

    @cached_property
    def stream_entries_read_clamp(self) -> bool:
        """XGROUP CREATE/SETID lower an ENTRIESREAD past the stream's entries-added to it
        (redis#14257, in the 8.2 line: a real 8.2.3 does it, 7.0 and Valkey 8.1 do not)."""
        return self.at_least((8, 2), None)

    @cached_property
    def xread_plus_last_live_entry(self) -> bool:
        """XREAD's `+` reads the last live entry even when the last one added was deleted,
        and an empty stream answers nothing, not "the stream last element ID is 0-0"
        (Redis 8.0, redis#13632; Valkey 8.1 still errors, valkey#2728)."""
        return self.at_least((8, 0), None)

    @cached_property
    def xread_unbalanced_mentions_plus(self) -> bool:
        """XREAD's unbalanced-streams error lists `+` among the IDs (Redis 8.0)."""
        return self.at_least((8, 0), None)

    @cached_property
    def stream_ranges_6_2(self) -> bool:
        """Stream reads of Redis 6.2: exclusive range bounds `(id` (XRANGE, XREVRANGE,
        XPENDING) and XPENDING's IDLE option; before, `(` is an invalid ID and XPENDING
        takes exactly 3, 6 or 7 arguments."""
        return self.at_least((6, 2), (0,))

    @cached_property
    def xinfo_shapes(self) -> tuple[bool, bool, bool]:
        """What stream reads answer by version: (Redis 7.0's entries-added/entries-read/lag
        fields, Redis 7.2's and Valkey's active-time and error texts, XREAD's `+` ID of
        Redis 7.4 / Valkey 8)."""
        return (
            self.at_least((7, 0), (0,)),
            self.at_least((7, 2), (0,)),
            self.at_least((7, 4), (8, 0)),
        )

    # ---- scripting (EVAL, FCALL): see replproxy/scripting and docs/scripting.md ----

    @property
    def lua_number_args(self) -> Literal["g17", "fpconv", "integer"]:
        """How `redis.call` turns a Lua number into an argument: `%.17g` up to Redis 7.0,
        fpconv_dtoa in 7.2, an integer when the number is one (else fpconv) from 7.4 and in
        Valkey 8 (`luaArgsToRedisArgv`)."""
        if self.at_least((7, 4), (8, 0)):
            return "integer"
        if self.at_least((7, 2), (7, 2)):
            return "fpconv"
        return "g17"

    @property
    def lua_os_clock(self) -> bool:
        """The `os` global (with `clock` alone) exists from Redis 7.4 and in Valkey 8."""
        return self.at_least((7, 4), (8, 0))

    @property
    def lua_set_repl_one_argument(self) -> bool:
        """`redis.set_repl()` says "requires one argument." from 7.2 ("two" before)."""
        return self.at_least((7, 2), (7, 2))

    @property
    def lua_log_level_text(self) -> bool:
        """`redis.log` with a bad level says "Invalid log level." from 7.4 ("debug" before)."""
        return self.at_least((7, 4), (8, 0))

    @property
    def script_cache_lru(self) -> bool:
        """Scripts EVAL compiled are evicted past 500 (oldest first) from Redis 7.4 and in
        Valkey 8; SCRIPT LOAD's never are."""
        return self.at_least((7, 4), (8, 0))

    @property
    def script_load_promotes(self) -> bool:
        """Valkey's SCRIPT LOAD of a script EVAL cached takes it out of the eviction list."""
        return self.at_least(None, (8, 0))

    @property
    def script_error_wrapped(self) -> bool:
        """A script's error reply is wrapped as `ERR Error running script (call to f_<sha>):
        <where>: <error>` before Redis 7.0 (luaCallFunction with `__redis__err__handler`);
        7.0 says where after the error."""
        return not self.at_least((7, 0), (0,))

    @property
    def exec_expired_watch_rule(self) -> Literal["never", "any", "since_watch"]:
        """Whether EXEC fails because a WATCHed key expired. Redis 6.0.15 and 6.2.5 added
        `isWatchedKeyExpired`, which fails EXEC for any watched key logically expired at EXEC
        time, even one already expired at WATCH; 7.0 (and Valkey) skip the keys that were
        expired when watched (`watchedKey.expired`). Older masters never check."""
        if self.valkey or self.version >= (7, 0):
            return "since_watch"
        if self.version >= (6, 2, 5) or (6, 0, 15) <= self.version < (6, 1):
            return "any"
        return "never"

    @property
    def scripts_see_expired_keys(self) -> bool:
        """A script's reads on a replica see logically expired keys before Redis 7.0: the
        replica's `lookupKeyRead` hides them only from a CMD_READONLY command, and the
        command running is EVAL (7.0 asks the script's own command)."""
        return not self.at_least((7, 0), (0,))

    @property
    def error_format_trims_newlines(self) -> bool:
        """`addReplyErrorFormat` trims trailing CR/LF from Redis 6.0 (5.0 turns every CR/LF,
        trailing ones included, into spaces)."""
        return self.at_least((6, 0), (0,))

    @property
    def script_error_keeps_crlf(self) -> bool:
        """A script's raised error reaches the client with its CR/LF as they are (Redis 8.2
        as released); Valkey 8.1 and Debian's patched 7.0.15 print them as spaces."""
        return self.at_least((8, 0), None)

    # Snapshots.

    @cached_property
    def rdb_version(self) -> int:
        """The RDB version the master writes (rdb.h RDB_VERSION): Redis 8.6+ 13, 7.4-8.4 12,
        7.2 11, 7.0 10, 5.0-6.2 9, 4.0 8, older 7; Valkey 9 80, other Valkeys 11."""
        if self.valkey:
            return 80 if self.version >= (9, 0, 0) else 11
        for since, version in _REDIS_RDB_VERSIONS:
            if self.version >= since:
                return version
        return 7


# What each Redis release writes, newest first.
_REDIS_RDB_VERSIONS = (
    ((8, 6, 0), 13),
    ((7, 4, 0), 12),
    ((7, 2, 0), 11),
    ((7, 0, 0), 10),
    ((5, 0, 0), 9),
    ((4, 0, 0), 8),
)

DEFAULT_DIALECT = MasterDialect()
