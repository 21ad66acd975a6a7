"""The dataset itself: `Keyspace` (numbered DBs of typed values) and `KeyspaceLoader`.

See the package docstring for the model. This module owns the dicts, their TTLs, the marks of
keys that could not be applied, the swap-in of a whole snapshot, the hooks a write reports
through, and the keyspace notification flags (`notify_config`, and `notify_flags`, the
effective ones: 0 while nobody listens; a keyspace used without a session hub calls
`notify_listened(True)` to get events); the per-type behaviour lives in the `t_*` modules,
reached through the registry (`registry.HANDLERS`). It never publishes itself: `notify`
hands events to `on_publish`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from replproxy.args import now_ms as _now_ms
from replproxy.args import selected_db
from replproxy.dialect import DEFAULT_DIALECT, MasterDialect
from replproxy.keyspace import notify as ksn
from replproxy.keyspace.lane import APPLY_RUN, apply_run
from replproxy.keyspace.registry import HANDLERS, WRITE_COMMANDS, WriteCommand
from replproxy.keyspace.scan import ScanCursors
from replproxy.rdb.model import Aux, Event, Function, KeyEntry, OrderedSet, Value, ZSetValue
from replproxy.resp.quote import quote_master_bytes
from replproxy.speedups import c_function

if TYPE_CHECKING:
    from replproxy.rdb.reader import KeySink, RDBReader
    from replproxy.resp.stream import StreamCommand

log = logging.getLogger("replproxy.keyspace")

# MSET's stores with memory prefetching (`_store.c`), or None: dict.update is the reference.
_STORE_PAIRS: Callable[[dict, dict, list[bytes], int], None] | None = c_function(
    "replproxy.keyspace._store", "store_pairs"
)


class Keyspace:
    def __init__(self, databases: int = 16) -> None:
        self.databases = databases
        self.dbs: list[dict[bytes, Value]] = [{} for _ in range(databases)]
        self.expires: list[dict[bytes, int]] = [{} for _ in range(databases)]
        # Function libraries by name: the library source (`#!lua name=...`). Kept because a
        # snapshot served downstream must carry them.
        self.functions: dict[bytes, Function] = {}
        self.unsupported_commands: dict[str, int] = {}
        self.apply_errors: dict[str, int] = {}
        self.unsupported_keys: set[tuple[int, bytes]] = set()
        # Per DB, the keys whose value the master holds in a bigger encoding than its
        # content alone would give, because a server never converts back: a string written
        # in place is `raw` (APPEND, SETRANGE, SETBIT, HyperLogLogs...), a hash that once
        # outgrew a listpack stays a `hashtable`. Dropped when the key gets a new value
        # object (`set`, unless the caller keeps it) or goes; moved with RENAME/MOVE/COPY.
        # (Sets and sorted sets keep theirs in the value: `SetValue.enc`, `ZSet.listpack`.)
        self.encodings: list[dict[bytes, bytes]] = [{} for _ in range(databases)]
        # The AUX fields of the snapshot the dataset came from, and the master's dialect they
        # name (see `loaded_aux`).
        self._aux: dict[bytes, bytes] = {}
        self.dialect = DEFAULT_DIALECT
        # Called with (db, key) after every write to a key: WATCH, blocking reads.
        self.on_key_modified: Callable[[int, bytes], None] | None = None
        # Called with (channel, message) for PUBLISH from the master, and for the keyspace
        # notifications the appliers report (`notify`).
        self.on_publish: Callable[[bytes, bytes], object] | None = None
        self.on_spublish: Callable[[bytes, bytes], object] | None = None
        # Called with the argv of a CLUSTER command from the master (Valkey 8 replicates
        # CLUSTER SETSLOT to its replicas; replproxy.cluster follows it).
        self.on_cluster: Callable[[list[bytes]], object] | None = None
        # Called with the DB emptied (-1: every DB) by FLUSHDB/FLUSHALL (`signalFlushedDb`),
        # and with the two DBs SWAPDB exchanged; when unset, every key of them is reported
        # to `on_key_modified` instead.
        self.on_flush: Callable[[int], None] | None = None
        self.on_swapdb: Callable[[int, int], None] | None = None
        # `notify-keyspace-events` as configured (replproxy.keyspace.notify flags; 0: off);
        # `notify_flags`, what appliers test: the same while someone is subscribed to a
        # channel or a pattern, else 0 (nobody could receive an event: the stream pays
        # nothing, as Redis 8 skips the work); `notify_new`: `new` events are wanted.
        self.notify_config = 0
        self.notify_flags = 0
        self.notify_new = False
        self._notify_listened = False
        # Bumped whenever the whole dataset is replaced (a snapshot loaded): WATCH fails.
        self.epoch = 0
        # Reads that found their key or not (INFO keyspace_hits/misses; `lookupKeyRead`).
        self.stat_keyspace_hits = 0
        self.stat_keyspace_misses = 0
        # Cursors of SCAN/HSCAN/SSCAN/ZSCAN (snapshots, see replproxy.keyspace.scan).
        self.scans = ScanCursors()

    @property
    def loaded_aux(self) -> dict[bytes, bytes]:
        """The AUX fields of the last snapshot loaded. Setting them (a snapshot's commit, a
        test) sets `dialect`: which master the dataset follows and how it behaves."""
        return self._aux

    @loaded_aux.setter
    def loaded_aux(self, aux: dict[bytes, bytes]) -> None:
        self._aux = aux
        self.dialect = MasterDialect.from_aux(aux)
        self._notify_effective()  # the event classes the master's version has

    # ---- access for appliers (no expiry checks: the master deletes expired keys) ----

    def get(self, db: int, key: bytes) -> Value | None:
        v = self.dbs[db].get(key)
        t = type(v)
        if t is ZSetValue:
            # Snapshots load sorted sets as plain member->score dicts (cheap); the sorted
            # index is built on first use.
            v = self.dbs[db][key] = _zset(v, self.dialect)  # type: ignore[arg-type]
        elif t is OrderedSet or t is set:
            # And sets in the file's order: their encoding and order (what a server of the
            # master's version makes of them when loading) are settled on first use.
            v = self.dbs[db][key] = _set_value(v, self.dialect)  # type: ignore[arg-type]
        return v

    def set(
        self, db: int, key: bytes, value: Value, keepttl: bool = False, fresh: bool = False
    ) -> None:
        """Store `value` at `key`, dropping its TTL unless `keepttl` (as `setKey` does).

        `fresh`: the value comes wholly from the command's arguments (SET, RESTORE, a
        *STORE destination), not from the key's old value, so a key marked unsupported is
        trustworthy again. Every other store (APPEND, a collection created by its first
        element...) leaves the mark: see `unsupported_keys`.
        Creating the key reports `new` (`dbAdd`) when notifications ask for it."""
        if self.notify_new and key not in self.dbs[db]:
            self.notify(ksn.NEW, b"new", db, key)
        self.dbs[db][key] = value
        if not keepttl:
            expires = self.expires[db]
            if expires:
                expires.pop(key, None)
        encodings = self.encodings[db]
        if encodings:
            encodings.pop(key, None)
        if fresh and self.unsupported_keys:
            self.unsupported_keys.discard((db, key))
        # `touched`, inlined: this is the hottest write path.
        if self.on_key_modified is not None:
            self.on_key_modified(db, key)

    def set_pairs(self, db: int, items: list[bytes], start: int) -> None:
        """`set` (TTL dropped) for each (key, value) pair of `items[start:]`, a later
        duplicate key winning. MSET's path, and the stream's runs of SETs or MSETs (which the
        splitter merges into one MSET): at full speed they are the heaviest string load,
        bound by the dict's cache misses, which the C store overlaps (`_store.c`)."""
        dbd, expires = self.dbs[db], self.expires[db]
        if _STORE_PAIRS is not None:
            _STORE_PAIRS(dbd, expires, items, start)
        else:
            dbd.update(zip(items[start::2], items[start + 1 :: 2]))
            if expires:
                for k in items[start::2]:
                    expires.pop(k, None)
        if self.unsupported_keys:  # MSET replaces whole values: the keys are fresh
            for k in items[start::2]:
                self.unsupported_keys.discard((db, k))
        encodings = self.encodings[db]
        if encodings:
            for k in items[start::2]:
                encodings.pop(k, None)
        if self.on_key_modified is not None:
            for k in items[start::2]:
                self.touched(db, k)

    def delete(self, db: int, key: bytes, fresh: bool = False) -> bool:
        """Remove `key`. `fresh`: the command deletes the key whatever it held (DEL, an
        empty *STORE result), so its unsupported mark goes too; a collection emptied by
        its last element (SREM, LPOP...) keeps it, as the relay's copy may be wrong."""
        existed = self.dbs[db].pop(key, None) is not None
        self.expires[db].pop(key, None)
        encodings = self.encodings[db]
        if encodings:
            encodings.pop(key, None)
        if fresh and self.unsupported_keys:
            self.unsupported_keys.discard((db, key))
        if existed:
            self.touched(db, key)
        return existed

    def set_expire(self, db: int, key: bytes, when_ms: int) -> None:
        value = self.dbs[db].get(key)
        if value is not None:
            if type(value) is bytes and self.dialect.embedded_keys:
                self._embed_expire(db, key, value)
            self.expires[db][key] = when_ms
            self.touched(db, key)

    def _embed_expire(self, db: int, key: bytes, value: bytes) -> None:
        """A server embedding keys in values reallocates a string that gets a TTL: an
        embstr that no longer fits becomes raw, and stays so (`MasterDialect.embstr_limit`)."""
        d = self.dialect
        if (
            d.embstr_limit(len(key), True) < len(value) <= d.embstr_limit(len(key), False)
            and key not in self.expires[db]
        ):
            from replproxy.keyspace.internals import is_int_string

            if not is_int_string(value):
                self.mark_raw(db, key)

    def persist(self, db: int, key: bytes) -> bool:
        removed = self.expires[db].pop(key, None) is not None
        if removed:
            self.touched(db, key)
        return removed

    def get_expire(self, db: int, key: bytes) -> int | None:
        return self.expires[db].get(key)

    def now_ms(self) -> int:
        """The relay's clock in ms (relative TTLs from 5.x/6.x masters); tests may replace it."""
        return _now_ms()

    def mark_raw(self, db: int, key: bytes) -> None:
        """The string at `key` is now `raw` on the master (written in place)."""
        self.encodings[db][key] = b"raw"

    def touched(self, db: int, key: bytes) -> None:
        """A key changed (in place): watchers are told. An unsupported mark stays: a write
        to part of a value the relay could not keep exact leaves the rest wrong."""
        if self.on_key_modified is not None:
            self.on_key_modified(db, key)

    def flush_db(self, db: int) -> None:
        """FLUSHDB: `signalFlushedDb(db)` (`on_flush`, while the keys are still there, as
        `emptyData` calls it), then DB `db` emptied."""
        if self.on_flush is not None:
            self.on_flush(db)
        self._empty(db)

    def flush_all(self) -> None:
        """FLUSHALL: one `signalFlushedDb(-1)`, then every DB emptied."""
        if self.on_flush is not None:
            self.on_flush(-1)
        for db in range(self.databases):
            self._empty(db)

    def _empty(self, db: int) -> None:
        if self.on_flush is None:
            for key in list(self.dbs[db]):
                self.touched(db, key)
        self.dbs[db] = {}
        self.expires[db] = {}
        self.encodings[db] = {}
        self.unsupported_keys = {k for k in self.unsupported_keys if k[0] != db}

    def swapped(self, a: int, b: int) -> None:
        """SWAPDB exchanged DBs `a` and `b` (`touchAllWatchedKeysInDb` both ways): the
        watchers' hook, or every key of both reported as modified."""
        if self.on_swapdb is not None:
            self.on_swapdb(a, b)
            return
        notify = self.on_key_modified
        if notify is not None:
            for d in (a, b):
                for key in set(self.dbs[a]) | set(self.dbs[b]):
                    notify(d, key)

    # ---- keyspace notifications (replproxy.keyspace.notify) ----

    def set_notify_flags(self, flags: int) -> None:
        """`notify-keyspace-events` changed (start-up, CONFIG SET)."""
        self.notify_config = flags
        self._notify_effective()

    def notify_listened(self, listened: bool) -> None:
        """Whether some client is subscribed to a channel or a pattern (the Pub/Sub tells)."""
        self._notify_listened = listened
        self._notify_effective()

    def _notify_effective(self) -> None:
        flags = self.notify_config if self._notify_listened else 0
        if not flags & (ksn.KEYSPACE | ksn.KEYEVENT):
            flags = 0  # neither channel kind: nothing is ever published
        flags = ksn.supported(flags, self.dialect)
        self.notify_flags = flags
        self.notify_new = bool(flags & ksn.NEW)

    def notify(self, type_: int, event: bytes, db: int, key: bytes) -> None:
        """`notifyKeyspaceEvent`: publish `event` on `key` when its class is enabled."""
        flags = self.notify_flags
        if not flags & type_:
            return
        publish = self.on_publish
        if publish is None:
            return
        if flags & ksn.KEYSPACE:
            publish(b"__keyspace@%d__:%b" % (db, key), event)
        if flags & ksn.KEYEVENT:
            publish(b"__keyevent@%d__:%b" % (db, event), key)

    def notify_recreated(self, db: int, key: bytes) -> None:
        """`new` for a write that deletes `key` and adds it again (`dbDelete` + `dbAdd`:
        RENAME, COPY and RESTORE onto an existing key), where `set` sees a replacement."""
        if self.notify_new and key in self.dbs[db]:
            self.notify(ksn.NEW, b"new", db, key)

    def notify_overwrite(self, db: int, key: bytes, value: Value) -> None:
        """Redis 8.2's `overwritten` (and `type_changed` when `value` is of another type)
        for a SET-like write (`setKey`) that replaces the existing key; call it before the
        write. Cheap when those classes are off."""
        if self.notify_flags & (ksn.OVERWRITTEN | ksn.TYPE_CHANGED):
            self.notify_replaced(db, key, self.dbs[db].get(key), value)

    def notify_replaced(self, db: int, key: bytes, old: Value | None, value: Value) -> None:
        """`overwritten` / `type_changed` for `key`, which held `old` (None: nothing) and now
        holds `value`. RENAME, COPY and RESTORE report them after their own events."""
        if old is None or not self.notify_flags & (ksn.OVERWRITTEN | ksn.TYPE_CHANGED):
            return
        self.notify(ksn.OVERWRITTEN, b"overwritten", db, key)
        if ksn.value_type(old) != ksn.value_type(value):
            self.notify(ksn.TYPE_CHANGED, b"type_changed", db, key)

    def dbsize(self, db: int) -> int:
        return len(self.dbs[db])

    def total_keys(self) -> int:
        return sum(len(d) for d in self.dbs)

    # ---- the stream ----

    def apply(self, db: int, argv: list[bytes]) -> None:
        cmd = HANDLERS.get(argv[0]) or WRITE_COMMANDS.get(argv[0].lower())
        if cmd is None:
            name = argv[0].lower().decode("utf-8", "replace")
            self._unsupported(
                name,
                db,
                argv,
                self._keys_of(argv),
                self.unsupported_commands,
                "cannot be applied (not supported)",
            )
            return
        if self.unsupported_keys and cmd.roles is not None:
            self._apply_from_sources(cmd, db, argv)
            return
        try:
            cmd.handler(self, db, argv)
        except Exception as e:  # a bug must not stop the stream: mark the keys, go on
            self._unsupported(
                cmd.name.decode("utf-8", "replace"),
                db,
                argv,
                cmd.written(argv),
                self.apply_errors,
                f"failed to apply: {e!r}",
            )

    def _apply_from_sources(self, cmd: WriteCommand, db: int, argv: list[bytes]) -> None:
        """`apply` of a command that writes keys from other keys, while some keys are
        marked: a key written from a marked key is marked too (the relay's copy of the
        source may be wrong, so is what it computes from it)."""
        try:
            written, read = cmd.roles(argv)  # type: ignore[misc]
        except (IndexError, ValueError):
            written, read = cmd.written(argv), []
        marks = self.unsupported_keys
        from_marked = any((db, k) in marks for k in read)
        try:
            cmd.handler(self, db, argv)
        except Exception as e:
            self._unsupported(
                cmd.name.decode("utf-8", "replace"),
                db,
                argv,
                written,
                self.apply_errors,
                f"failed to apply: {e!r}",
            )
            return
        if from_marked:
            self.unsupported_keys.update((db, k) for k in written)

    def apply_run(
        self,
        db: int,
        commands: Sequence[StreamCommand],
        start: int,
        keep: list[bytes],
        calls: dict[bytes, int],
    ) -> tuple[int, int]:
        """The stream's hot lane (`keyspace.lane`): apply `commands[start:]` while they are
        plain hot writes, keeping their bytes; (index of the first one not applied, how many
        of the master's commands were), counting them in `calls` (`lane.apply_run`). Only
        while a write needs nothing but its store: no key watcher or tracking table, no
        notification wanted, no unsupported key, no encoding mark in the database (a store
        drops its key's)."""
        if (
            self.unsupported_keys
            or self.on_key_modified is not None
            or self.notify_flags
            or self.encodings[db]
        ):
            return start, 0
        if type(commands) is not list:
            return apply_run(self.dbs[db], self.expires[db], commands, start, keep, calls)
        return APPLY_RUN(self.dbs[db], self.expires[db], commands, start, keep, calls)

    def apply_transaction(self, db: int, commands: Sequence[list[bytes]]) -> int:
        for argv in commands:
            if argv and argv[0].lower() == b"select" and len(argv) == 2:
                db = selected_db(argv[1], db, self.databases)
            elif argv:
                self.apply(db, argv)
        return db

    def _keys_of(self, argv: list[bytes]) -> list[bytes]:
        """The keys a command nobody applies names, by the master's own command table (EVAL's
        numkeys keys, a module command's first key...); argv[1] when the table does not say."""
        from replproxy.commandtable.keyspecs import get_keys

        table = self.dialect.command_table
        spec = table.find(argv)
        if spec is not None:
            try:
                refs = get_keys(spec, argv, table.keynum)
            except (IndexError, ValueError):
                refs = []
            if refs:
                return [argv[i] for i, _ in refs if i < len(argv)]
        return argv[1:2]

    def _unsupported(
        self,
        name: str,
        db: int,
        argv: list[bytes],
        keys: list[bytes],
        counter: dict[str, int],
        why: str,
    ) -> None:
        """Count and log a command that could not be applied; mark the keys it writes.
        A mark is sticky: only a command that replaces the whole value (`fresh` stores:
        SET, DEL, RESTORE, a *STORE destination, MSET) or a new snapshot lifts it."""
        n = counter.get(name, 0)
        if n == 0:
            log.warning(
                "command %s from the master %s; its bytes are still relayed and the "
                "keys it names are reported as unsupported (logged once per command)",
                quote_master_bytes(name),
                quote_master_bytes(why, 300, quotes=False),
            )
        counter[name] = n + 1
        self.unsupported_keys.update((db, k) for k in keys)

    # ---- snapshots ----

    def new_loader(self) -> KeyspaceLoader:
        return KeyspaceLoader(self)


class KeyspaceLoader:
    """Builds a fresh dataset from a snapshot; `commit()` swaps it in at once.

    Two ways in: `feed(chunk)`/`feed_eof()` with the raw RDB bytes (a sink-mode reader stores
    keys straight into the new dicts, through the C fast path when built), or `add(events)`
    with reader events. `keys` counts the keys stored either way.
    """

    def __init__(self, target: Keyspace) -> None:
        self.target = target
        n = target.databases
        self.dbs: list[dict[bytes, Value]] = [{} for _ in range(n)]
        self.expires: list[dict[bytes, int]] = [{} for _ in range(n)]
        self.functions: dict[bytes, Function] = {}
        self.aux: dict[bytes, bytes] = {}
        self._added = 0  # keys from add()
        # The sink-mode reader (replproxy.rdb.reader.RDBReader), made by the first feed.
        self.reader: RDBReader | None = None
        self._sink: KeySink | None = None

    @property
    def keys(self) -> int:
        """Keys stored so far (a key repeated in the snapshot counts each time)."""
        return self._added + (self._sink.keys if self._sink is not None else 0)

    def _reader(self) -> RDBReader:
        reader = self.reader
        if reader is None:
            # The reader is heavy to import: only a loader that is fed pays for it.
            from replproxy.rdb.reader import KeySink, RDBReader

            self._sink = KeySink(self.dbs, self.expires)
            reader = self.reader = RDBReader(sink=self._sink)
        return reader

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """The next bytes of the RDB snapshot (any size). Raises `RDBError` for a bad file;
        a key in a DB beyond `databases` is an `RDBSinkError` (also a `ValueError`)."""
        reader = self._reader()
        reader.feed(chunk)
        self.add(reader.next_events())

    def feed_eof(self) -> None:
        """The snapshot's bytes are all fed: raises `RDBError` if it is incomplete."""
        reader = self._reader()
        reader.feed_eof()
        self.add(reader.next_events())

    def add(self, events: Iterable[Event]) -> None:
        dbs, expires = self.dbs, self.expires
        ndbs = len(dbs)
        for ev in events:
            if type(ev) is KeyEntry:
                db = ev.db
                if db >= ndbs:
                    raise ValueError(
                        f"snapshot has DB {db} but only {ndbs} databases are configured"
                    )
                dbs[db][ev.key] = ev.value
                if ev.expire_ms is not None:
                    expires[db][ev.key] = ev.expire_ms
                self._added += 1
            elif isinstance(ev, Aux):
                self.aux[ev.key] = ev.value
            elif isinstance(ev, Function):
                # A 7.0-RC record (opcode 246) names its library outside the code.
                self.functions[ev.name or library_name(ev.code)] = ev

    @property
    def stream_db(self) -> int:
        """AUX `repl-stream-db`: the DB the stream continues in (0 when absent)."""
        raw = self.aux.get(b"repl-stream-db")
        try:
            return int(raw) if raw is not None else 0
        except ValueError:
            return 0

    def commit(self) -> None:
        t = self.target
        t.dbs, t.expires, t.functions = self.dbs, self.expires, self.functions
        t.encodings = [{} for _ in t.dbs]  # a loaded value's encoding is its content's
        t.loaded_aux = self.aux
        t.unsupported_keys = set()
        t.epoch += 1


def _set_value(v: set[bytes], dialect: MasterDialect) -> Value:
    from replproxy.keyspace.t_set import loaded_set

    return loaded_set(v, dialect.listpack_sets)


def _zset(v: ZSetValue, dialect: MasterDialect) -> Value:
    """A loaded zset as the master's version holds it (`rdbLoadObject`): a listpack when it
    fits one (a saved skiplist is converted), and since 7.0 a listpack stores an integral
    score as an integer, so a -0 becomes 0 there."""
    from replproxy.keyspace.values import ZSet, fits_listpack

    listpack = fits_listpack(len(v), max(map(len, v), default=0))
    if listpack and dialect.zset_listpack_drops_zero_sign:
        for m, s in v.items():
            if s == 0.0:
                v[m] = 0.0
    return ZSet(v, listpack)


def library_name(code: bytes) -> bytes:
    """The library name from a function source's shebang: `#!lua name=mylib ...`.

    As `functionExtractLibMetaData`: the `name=` key is matched case-insensitively and the
    value may be quoted.
    """
    first = code.split(b"\n", 1)[0]
    for part in first.split()[1:]:
        if part[:5].lower() == b"name=":
            name = part[5:]
            if len(name) >= 2 and name[:1] == name[-1:] and name[:1] in (b'"', b"'"):
                name = name[1:-1]
            return name
    return b""
