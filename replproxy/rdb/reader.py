"""The streaming, sans-I/O RDB reader: bytes in, `model` events (or a filled keyspace) out.

This module owns the RDB record grammar (`src/rdb.c` `rdbLoadRioWithLoadingCtx`): the
header, the opcodes, the key records and their prefixes, the EOF and CRC64, for RDB versions
1-13 (`REDIS0001`..`REDIS0013`, Redis 2.2-8.6) and Valkey 9 (`VALKEY080`); and the driver
that feeds it chunks of any size. Object values are decoded by `decoders` (one function per
type), the blob formats inside them (ziplist, listpack, intset, zipmap, LZF, CRC64) by
`encodings`; `scanner` finds where a record cut by a chunk boundary ends. The value and
event shapes live in `model`. It never opens files or sockets: `read_file`/`iter_file` are
thin loops that feed an `RDBReader`. `decode_value` decodes one DUMP-style value.

Design, for speed and bounded memory:

* Fast mode: a fed chunk is parsed straight from the `bytes` object with an integer
  position. Every record (one opcode, or one `type key value`) is decoded only when all its
  bytes are present; the common `string key -> short string value` record has an inline path.
* Slow mode: when a record is cut by the end of a chunk, its bytes move to a `bytearray`
  tail. If the next chunk is at least as big as the tail, parsing just restarts on the joined
  bytes (the retry costs no more than the new bytes). Otherwise the resumable scanner
  (`scanner.scan_record`) learns where the record ends as bytes arrive, and the record is
  decoded once, when all of it is there: feeding a 1 GB value in 1-byte chunks stays linear,
  and the reader holds no more than the record being decoded. Should the scanner and the
  decoder ever disagree, the reader falls back to waiting until the buffered size doubles,
  which is still linear.
* The CRC64 is computed over consumed bytes as they are dropped, one C call per chunk.
* Sink modes: `KeySink(dbs, expires)` stores keys straight into per-DB dicts (a full sync),
  `KeyCounter()` checks and counts them (`rdb verify|info`), `KeyCollector()` hands them on
  as tuples (`rdb dump`), instead of `KeyEntry` events (IDLE/FREQ are dropped); every other
  record is still an event. There the optional C accelerator (`_loader.c`: `load_records`,
  `count_records`, `collect_records`) handles runs of simple key records (strings, plain and
  compact collections) and stops at anything else, including any malformation: this module
  then parses that record itself, so it stays the reference for values and the only source
  of errors. A key record C finds cut by the end of the buffer is retried in C once the
  bytes it should need are there, not decoded or scanned in Python.
  `REPLPROXY_NO_SPEEDUPS=1` (read when a reader is made) turns the accelerator off.

Redis behaviours kept on purpose: empty collections are skipped like `rdbLoadObject` does
(counted in `skipped_empty_keys`); duplicate members, NaN scores in types 3/5 and consumer
PEL entries missing from their group PEL are corruption. Dialect rule for the colliding
numbers: a `VALKEY` file means Valkey's HASH_2 (type 22) and SLOT_IMPORT (opcode 243); a
`REDIS` file of version >= 12 means Redis's types 22-25, of version >= 13 also type 26 and
KEY_META (opcode 243, module metadata before a key's type byte); older `REDIS` files have
none of them. RDB 14 and later are refused, naming the version (docs/rdb.md).
"""

from __future__ import annotations

import gc
import os
import struct
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from typing import BinaryIO, Final, NoReturn

from replproxy.rdb.decoders import (
    Incomplete,
    ValueReader,
    describe,
    module_name,
    module_stream_end,
    read_key_meta,
    read_len,
    read_slot_import,
    read_string,
    rebased,
    type_encoding_name,
    unknown_type,
    value_readers,
)
from replproxy.rdb.encodings import crc64
from replproxy.rdb.model import (
    RDB_TYPE_MODULE_2,
    RDB_VERSION_MAX_REDIS,
    RDB_VERSION_VALKEY_9,
    Aux,
    End,
    Event,
    Function,
    Header,
    KeyEntry,
    KeyMeta,
    ModuleAux,
    OrderedSet,
    RDBChecksumError,
    RDBError,
    RDBUnsupportedError,
    ResizeDB,
    SelectDB,
    SlotInfo,
    Value,
    ZSetValue,
    type_name,
)
from replproxy.rdb.scanner import ScanGen, scan_record
from replproxy.speedups import c_function

__all__ = [
    "COUNT_SLOTS",
    "KeyCollector",
    "KeyCounter",
    "KeySink",
    "RDBReader",
    "RDBSinkError",
    "decode_value",
    "decode_value_prefix",
    "iter_file",
    "module_name",
    "read_file",
    "speedups_available",
    "type_encoding_name",
]

_u64: Final = struct.Struct("<Q").unpack_from
_i64: Final = struct.Struct("<q").unpack_from
_i32: Final = struct.Struct("<i").unpack_from
_NO_COUNTS: Final = array("Q")  # counts of a reader that does not count
_CHUNK: Final = 1 << 14  # iter_file read size: small feeds keep fresh objects in CPU caches
_GC_PAUSE_MIN: Final = 1 << 18  # feeds this big are parsed with the cyclic GC paused

# The C entry points (replproxy/rdb/_loader.c) all return
# (pos, expire, keys, skipped, cut): where they stopped, the prefix state there, the keys
# they handled, the empty collections they skipped, and `cut`: 0, or, when they stopped
# because that key record is cut by the end of the buffer, the buffer size it should need
# (exact from a string's length, else estimated from the members read so far).
_CResult = tuple[int, int | None, int, int, int]
# load_records(buf, pos, db, expire, dbs, expires, zset_type, set_type)
# count_records(buf, pos, expire, counts, zset_type)
# collect_records(buf, pos, db, expire, out, zset_type, set_type)
_LoadRecords = Callable[..., _CResult]

# Reader modes: events, or one of the three sinks; and each sink's C entry point.
_EVENTS, _LOAD, _COUNT, _COLLECT = 0, 1, 2, 3
_C_ENTRY: Final = {_LOAD: "load_records", _COUNT: "count_records", _COLLECT: "collect_records"}

COUNT_SLOTS: Final = 128
"""`KeyCounter` slots per DB: index 2 * rdb_type + (1 if the key has an expiry else 0)."""


def _load_speedups(name: str = "load_records") -> _LoadRecords | None:
    """A C sink-mode fast path, or None (not built, or REPLPROXY_NO_SPEEDUPS set)."""
    fn: _LoadRecords | None = c_function("replproxy.rdb._loader", name)
    return fn


def speedups_available() -> bool:
    """True when the C accelerator is built and not disabled by REPLPROXY_NO_SPEEDUPS."""
    return _load_speedups() is not None


class KeySink:
    """Where a sink-mode `RDBReader` stores keys: `dbs[db][key] = value` and, for keys with an
    expiry, `expires[db][key] = ms`, in file order (a repeated key is overwritten, its old
    expiry kept unless replaced, as a loop over `KeyEntry` events would do). `keys` counts the
    keys stored. Sorted sets are stored as `ZSetValue`, hashes with field TTLs as `HashValue`.
    """

    __slots__ = ("dbs", "expires", "keys")

    def __init__(self, dbs: list[dict[bytes, Value]], expires: list[dict[bytes, int]]) -> None:
        if len(expires) != len(dbs):
            raise ValueError("a KeySink needs as many expires dicts as DB dicts")
        self.dbs = dbs
        self.expires = expires
        self.keys = 0


class KeyCounter:
    """Where a counting `RDBReader` tallies keys instead of keeping them (`rdb verify`/`info`).

    Every key record is still decoded and checked exactly as a load would, then dropped.
    `counts[db]` is an `array("Q")` of `COUNT_SLOTS` slots: `[2 * rdb_type + has_expiry]`.
    `module_types[(db, name)]` counts module values by what TYPE would answer for them (their
    module's name). `keys` is the total.
    """

    __slots__ = ("counts", "keys", "module_types")

    def __init__(self) -> None:
        self.counts: dict[int, array[int]] = {}
        self.module_types: Counter[tuple[int, str]] = Counter()
        self.keys = 0

    def for_db(self, db: int) -> array[int]:
        counts = self.counts.get(db)
        if counts is None:
            counts = self.counts[db] = array("Q", bytes(8 * COUNT_SLOTS))
        return counts


class KeyCollector:
    """Where a collecting `RDBReader` puts keys as `(db, key, value, expire_ms)` tuples.

    `keys_out` grows in file order (a repeated key appears each time); its consumer takes
    them between feeds and empties it (and `meta`), so memory stays bounded by a feed's worth
    of keys. `meta` maps the index in `keys_out` of a key with module metadata (KEY_META,
    RDB 13) to its classes. IDLE and FREQ are dropped; `keys` counts every key collected.
    """

    __slots__ = ("keys", "keys_out", "meta")

    def __init__(self) -> None:
        self.keys_out: list[tuple[int, bytes, Value, int | None]] = []
        self.meta: dict[int, tuple[KeyMeta, ...]] = {}
        self.keys = 0


Sink = KeySink | KeyCounter | KeyCollector


class RDBSinkError(RDBError, ValueError):
    """A sink-mode reader met a key its sink cannot hold (a DB number beyond its dicts)."""


def decode_value_prefix(
    rdb_type: int, payload: bytes, *, rdb_version: int = 12, valkey: bool = False
) -> tuple[Value, int]:
    """Decode the value at the start of `payload`: (value, bytes consumed).

    `payload` holds what follows the type byte in an RDB key record or a DUMP payload.
    Empty collections are returned as such (the reader, not this function, skips them).
    """
    buf = bytes(payload)
    reader = value_readers(rdb_version, valkey).get(rdb_type)
    if reader is None:
        raise unknown_type(rdb_type, rdb_version, valkey, 0, is_type=True)
    try:
        return reader(buf, 0, len(buf), rdb_type)
    except Incomplete as inc:
        raise RDBError(
            f"truncated value: {inc.need - len(buf)} more bytes needed", len(buf)
        ) from None
    except (IndexError, ValueError, TypeError, OverflowError, struct.error) as e:
        raise RDBError(f"malformed value ({type(e).__name__}: {e})", 0) from None


def decode_value(
    rdb_type: int, payload: bytes, *, rdb_version: int = 12, valkey: bool = False
) -> Value:
    """Decode ONE object value that fills `payload` exactly (see `decode_value_prefix`)."""
    value, used = decode_value_prefix(rdb_type, payload, rdb_version=rdb_version, valkey=valkey)
    if used != len(payload):
        raise RDBError(f"{len(payload) - used} unexpected bytes after the value", used)
    return value


# ---- the reader ----


class RDBReader:
    """A sans-I/O RDB parser: `feed()` bytes, `feed_eof()` at the end, take `next_events()`.

    Events come in file order: `Header`, then `Aux`, `ModuleAux`, `Function`, `SelectDB`,
    `ResizeDB`, `SlotInfo` and `KeyEntry` records, then `End`. After `End` the reader takes no
    more records; whatever follows the checksum (e.g. the 40-byte EOF mark of a diskless
    transfer) accumulates in `unused_data`.

    With `sink=KeySink(dbs, expires)` keys are stored into those dicts instead (see `KeySink`)
    and produce no event; IDLE/FREQ are dropped; a key of a DB the sink has no dict for is an
    `RDBSinkError` (also a `ValueError`). With `sink=KeyCounter()` keys are checked and
    counted, and with `sink=KeyCollector()` collected as tuples (see those classes). All other
    events are produced as usual.

    Errors are `RDBError` (malformed or truncated), `RDBUnsupportedError` (unknown version,
    type or opcode) or `RDBChecksumError`, each with the file byte offset. They are raised by
    the `feed()`/`feed_eof()` call that finds them; events completed before the error are
    still returned by `next_events()`, which then raises the same error again.
    """

    def __init__(self, verify_checksum: bool = True, *, sink: Sink | None = None) -> None:
        self.verify_checksum = verify_checksum
        # Sink mode: keys are stored, counted or collected instead of becoming KeyEntry events.
        self.sink = sink
        if sink is None:
            self._mode = _EVENTS
        elif isinstance(sink, KeySink):
            self._mode = _LOAD
        elif isinstance(sink, KeyCounter):
            self._mode = _COUNT
        elif isinstance(sink, KeyCollector):
            self._mode = _COLLECT
        else:
            raise TypeError(f"not a sink: {type(sink).__name__}")
        self._fast: _LoadRecords | None = (
            _load_speedups(_C_ENTRY[self._mode]) if sink is not None else None
        )
        # The C path stopped at a record cut by the end of the buffer (see _parse).
        self._c_cut = False
        self.version: int | None = None
        self.valkey = False
        self.skipped_empty_keys = 0
        # CRC64 of the bytes up to the EOF opcode, once End was reached (None before RDB 5).
        self.computed_checksum: int | None = None
        self._events: list[Event] = []
        self._base = 0  # file offset of the current buffer's first byte
        self._crc = 0  # CRC64 of the file bytes before _base
        self._rec_start = 0
        self._db = 0
        self._expire: int | None = None
        self._idle: int | None = None
        self._freq: int | None = None
        self._meta: tuple[KeyMeta, ...] = ()  # KEY_META classes pending for the next key
        self._readers: dict[int, ValueReader] = {}
        self._tail: bytearray | None = None  # slow mode: the bytes of a cut record
        self._scanner: ScanGen | None = None
        self._scan_failed = False
        self._need = 0  # slow mode: tail length at which to resume
        self._eof = False
        self._done = False
        self._error: RDBError | None = None
        self._unused = bytearray()

    # -- public API --

    @property
    def offset(self) -> int:
        """Bytes of the file consumed so far (the RDB's length once `End` was produced)."""
        return self._base

    @property
    def done(self) -> bool:
        """True once the EOF opcode (and checksum) were read."""
        return self._done

    @property
    def unused_data(self) -> bytes:
        """Bytes fed after the end of the RDB (after its checksum)."""
        return bytes(self._unused)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Give the reader the next bytes of the file (any size, including 1)."""
        if self._error is not None:
            raise self._error
        if self._done:
            self._unused += data
            return
        if self._eof:
            raise RuntimeError("feed() after feed_eof()")
        if not data:
            return
        tail = self._tail
        if tail is not None:
            if len(data) >= len(tail) and len(tail) + len(data) >= self._need:
                # The buffer at least doubles: retrying the decoder costs no more than the
                # new bytes (amortised linear), and a cut small record needs nothing else.
                self._tail = None
                self._scanner = None
                self._run(b"".join((tail, data)))
                return
            tail += data
            if len(tail) >= self._need:
                self._resume()
            return
        self._run(data if isinstance(data, bytes) else bytes(data))

    def feed_eof(self) -> None:
        """No more bytes will come: parse what is buffered, raise if the RDB is incomplete."""
        if self._error is not None:
            raise self._error
        if self._done or self._eof:
            return
        self._eof = True
        if self._tail is not None:
            buf = bytes(self._tail)
            self._tail = None
            self._scanner = None
            self._run(buf)
            return
        self._fail(
            RDBError(
                "truncated RDB: the input ends before the EOF opcode"
                if self.version is not None
                else "truncated RDB: the input ends before the 9-byte header",
                self._base,
            )
        )

    def next_events(self) -> list[Event]:
        """The events completed since the last call (empty when more bytes are needed)."""
        events = self._events
        if events:
            self._events = []
            return events
        if self._error is not None:
            raise self._error
        return []

    # -- driver --

    def _fail(self, err: RDBError) -> NoReturn:
        self._error = err
        raise err

    def _resume(self) -> None:
        """Slow mode, enough bytes for the next step: scan on, or decode the whole record."""
        tail = self._tail
        assert tail is not None
        if self._scanner is None and not self._scan_failed:
            self._scanner = scan_record(tail, self.version, self.valkey, self._readers)
        scanner = self._scanner
        if scanner is not None:
            try:
                self._need = scanner.send(None)
                return
            except StopIteration as stop:
                self._scanner = None
                if len(tail) < stop.value:
                    self._need = stop.value
                    return
        self._tail = None
        self._run(bytes(tail), after_scan=True)

    def _run(self, buf: bytes, after_scan: bool = False) -> None:
        """Parse `buf` (starting at file offset `_base`) as far as it goes."""
        try:
            if len(buf) >= _GC_PAUSE_MIN and gc.isenabled():
                # Tens of thousands of new container objects that hold no reference cycle:
                # the cyclic collector would only re-scan them (~20% of the time on 1 MiB).
                gc.disable()
                try:
                    pos = self._parse(buf)
                finally:
                    gc.enable()
            else:
                pos = self._parse(buf)
        except Incomplete as inc:
            rec = self._rec_start
            self._consume(buf, rec)
            if self._eof:
                self._fail(
                    RDBError(
                        f"truncated RDB: the input ends inside the record at byte {self._base}"
                        f" ({inc.need - len(buf)} more bytes needed at least)",
                        self._base + len(buf) - rec,
                    )
                )
            self._tail = tail = bytearray(memoryview(buf)[rec:])
            self._scanner = None
            need = inc.need - rec
            # Did the scanner call this record complete while the decoder wants more? Then
            # stop trusting the scanner for it and wait until the buffer doubles. The same
            # when the C path found the record cut: it is retried at C speed, no scanner.
            c_cut, self._c_cut = self._c_cut, False
            distrust = after_scan and rec == 0 and not c_cut
            self._scan_failed = distrust or c_cut
            self._need = max(need, 2 * len(tail)) if distrust else need
            return
        except RDBError as e:
            err = rebased(e, self._base)
            self._consume(buf, self._rec_start)  # `offset`: the records before it, whatever
            self._fail(err)  # the chunking (found by fuzzing: tests/fuzz_corpus/rdb)
        except (IndexError, ValueError, TypeError, OverflowError, KeyError, struct.error) as e:
            err = RDBError(
                f"malformed record ({type(e).__name__}: {e})", self._base + self._rec_start
            )
            self._consume(buf, self._rec_start)
            self._fail(err)
        if not self._done:
            self._consume(buf, pos)

    def _consume(self, buf: bytes, upto: int) -> None:
        self._crc = crc64(memoryview(buf)[:upto], self._crc)
        self._base += upto

    # -- the record parser --

    def _parse(self, buf: bytes) -> int:
        """Decode complete records of `buf` from 0; return where the last one ended."""
        end = len(buf)
        pos = 0
        events = self._events
        append = events.append
        db = self._db
        expire = self._expire
        idle = self._idle
        freq = self._freq
        meta = self._meta
        readers = self._readers
        key_entry = KeyEntry
        rs = read_string
        # Sink modes. Load: `kd`/`kx` are the current DB's dicts (None: the sink has no such
        # DB). Count: `counts` is the current DB's slots. Collect: `out` takes the tuples.
        mode = self._mode
        sink = self.sink
        fast = self._fast
        sdbs: list[dict[bytes, Value]] = []
        sexp: list[dict[bytes, int]] = []
        kd: dict[bytes, Value] | None = None
        kx: dict[bytes, int] = {}
        counter: KeyCounter | None = None
        counts: array[int] = _NO_COUNTS
        out: list[tuple[int, bytes, Value, int | None]] = []
        out_meta: dict[int, tuple[KeyMeta, ...]] = {}
        if isinstance(sink, KeySink):
            sdbs, sexp = sink.dbs, sink.expires
            if db < len(sdbs):
                kd, kx = sdbs[db], sexp[db]
        elif isinstance(sink, KeyCounter):
            counter = sink
            counts = sink.for_db(db)
        elif isinstance(sink, KeyCollector):
            out, out_meta = sink.keys_out, sink.meta
        out_append = out.append
        cut = 0
        stored = 0
        skipped = 0
        try:
            if self.version is None:
                pos = self._parse_header(buf, end)
                readers = self._readers
            version: int = self.version  # type: ignore[assignment]
            while pos < end:
                # C stores keys without module metadata: a key after KEY_META is Python's.
                if fast is not None and not meta:
                    # The C path handles a run of simple key records and stops at the first
                    # record (prefixes included) it leaves to the code below.
                    if mode == _LOAD:
                        res = fast(buf, pos, db, expire, sdbs, sexp, ZSetValue, OrderedSet)
                    elif mode == _COUNT:
                        res = fast(buf, pos, expire, counts, ZSetValue)
                    else:
                        res = fast(buf, pos, db, expire, out, ZSetValue, OrderedSet)
                    pos, expire, n, n_skipped, cut = res
                    stored += n
                    skipped += n_skipped
                    if pos >= end:
                        break
                    # `cut`: the key record after the prefixes at `pos` is cut by the end of
                    # the buffer, and all of it that is here was accepted by C. Decoding it
                    # again in Python only to learn that (or scanning it in Python) costs
                    # Python time for a big value: below, once the prefixes are read, the
                    # reader waits for the bytes C expects the record to need and lets C try
                    # again, at C speed. At EOF Python decodes it, for the exact error.
                    if self._eof:
                        cut = 0
                t = buf[pos]
                if t == 0 and not meta:
                    # The common record: string key and string value, both < 64 bytes. Reading
                    # past the end raises IndexError and leaves it to the general path.
                    try:
                        b = buf[pos + 1]
                        if b < 64:
                            ke = pos + 2 + b
                            c = buf[ke]
                            if c < 64:
                                ve = ke + 1 + c
                                if ve <= end:
                                    if mode == _EVENTS:
                                        append(
                                            key_entry(
                                                db,
                                                buf[pos + 2 : ke],
                                                buf[ke + 1 : ve],
                                                expire,
                                                idle,
                                                freq,
                                                0,
                                            )
                                        )
                                    elif kd is not None:
                                        key = buf[pos + 2 : ke]
                                        kd[key] = buf[ke + 1 : ve]
                                        if expire is not None:
                                            kx[key] = expire
                                        stored += 1
                                    elif mode == _COUNT:
                                        counts[expire is not None] += 1
                                        stored += 1
                                    elif mode == _COLLECT:
                                        out_append(
                                            (db, buf[pos + 2 : ke], buf[ke + 1 : ve], expire)
                                        )
                                        stored += 1
                                    else:
                                        raise self._no_db(db, len(sdbs), pos)
                                    pos = ve
                                    expire = idle = freq = None
                                    continue
                    except IndexError:
                        pass
                if t < 64:
                    if cut:
                        # C's estimate plus 1/32, kept between 1.25x and 16x the record's
                        # bytes here: one or two C retries for a big value, and no
                        # unbounded wait on a wild estimate.
                        have = end - pos
                        self._c_cut = True
                        want = cut + (cut - pos) // 32
                        raise Incomplete(max(end + have // 4 + 1, min(want, end + 15 * have)))
                    reader = readers.get(t)
                    if reader is None:
                        raise unknown_type(t, version, self.valkey, pos)
                    p = pos + 1
                    b = buf[p] if p < end else 0xFF
                    if b < 64 and p + 1 + b <= end:
                        key = buf[p + 1 : p + 1 + b]
                        p += 1 + b
                    else:
                        key, p = rs(buf, p, end)
                    try:
                        value, p = reader(buf, p, end, t)
                    except RDBError as e:
                        raise rebased(e, 0, f"key {key!r} ({describe(t, self.valkey)}): ") from None
                    if meta and mode != _EVENTS:
                        meta = self._key_meta_kept(key, meta, pos)
                    if not value and value.__class__ is not bytes:
                        skipped += 1
                    elif mode == _EVENTS:
                        append(key_entry(db, key, value, expire, idle, freq, t, meta))
                    elif kd is not None:
                        kd[key] = value
                        if expire is not None:
                            kx[key] = expire
                        stored += 1
                    elif counter is not None:
                        counts[2 * t + (expire is not None)] += 1
                        if t == RDB_TYPE_MODULE_2:
                            counter.module_types[(db, type_name(value))] += 1
                        stored += 1
                    elif mode == _COLLECT:
                        if meta:
                            out_meta[len(out)] = meta
                        out_append((db, key, value, expire))
                        stored += 1
                    else:
                        raise self._no_db(db, len(sdbs), pos)
                    pos = p
                    expire = idle = freq = None
                    meta = ()
                elif t == 252:  # EXPIRETIME_MS
                    if pos + 9 > end:
                        raise Incomplete(pos + 9)
                    expire = _i64(buf, pos + 1)[0]
                    pos += 9
                elif t == 253:  # EXPIRETIME (seconds)
                    if pos + 5 > end:
                        raise Incomplete(pos + 5)
                    expire = _i32(buf, pos + 1)[0] * 1000
                    pos += 5
                elif t == 249:  # FREQ
                    if pos + 2 > end:
                        raise Incomplete(pos + 2)
                    freq = buf[pos + 1]
                    pos += 2
                elif t == 248:  # IDLE
                    idle, pos = read_len(buf, pos + 1, end)
                elif t == 254:  # SELECTDB
                    db, p = read_len(buf, pos + 1, end)
                    append(SelectDB(db))
                    pos = p
                    if mode == _LOAD:
                        if db < len(sdbs):
                            kd, kx = sdbs[db], sexp[db]
                        else:
                            kd = None
                    elif counter is not None:
                        counts = counter.for_db(db)
                elif t == 251:  # RESIZEDB
                    size, p = read_len(buf, pos + 1, end)
                    expires, p = read_len(buf, p, end)
                    append(ResizeDB(size, expires))
                    pos = p
                elif t == 250:  # AUX
                    k, p = rs(buf, pos + 1, end)
                    v, p = rs(buf, p, end)
                    append(Aux(k, v))
                    pos = p
                elif t == 243 and not self.valkey and version >= 13:  # KEY_META
                    meta, p = read_key_meta(buf, pos + 1, end)
                    pos = p
                elif t == 255:  # EOF
                    return self._parse_eof(buf, pos, end, version)
                else:
                    pos = self._parse_rare_opcode(buf, pos, end, t, version)
            return pos
        finally:
            self._rec_start = pos
            self._db = db
            self._expire = expire
            self._idle = idle
            self._freq = freq
            self._meta = meta
            self.skipped_empty_keys += skipped
            if sink is not None:
                sink.keys += stored

    def _key_meta_kept(
        self, key: bytes, meta: tuple[KeyMeta, ...], pos: int
    ) -> tuple[KeyMeta, ...]:
        """The module metadata of `key` a sink keeps (see `RDBReader`); may raise."""
        if self._mode != _LOAD:
            return meta  # counted or collected as they are
        for m in meta:
            if not m.allow_ignore:
                # Redis without the class: "RDB load key metadata failed: Class '%s' not
                # registered or missing rdb_load()".
                raise RDBUnsupportedError(
                    f"key {key!r} carries module metadata of class {m.name!r} (version "
                    f"{m.version}), which this relay cannot keep and whose flags do not "
                    "allow ignoring it",
                    pos,
                )
        return ()

    @staticmethod
    def _no_db(db: int, ndbs: int, pos: int) -> RDBSinkError:
        return RDBSinkError(f"snapshot has DB {db} but only {ndbs} databases are configured", pos)

    def _parse_header(self, buf: bytes, end: int) -> int:
        if end < 9:
            raise Incomplete(9)
        head = buf[:9]
        if head.startswith(b"REDIS"):
            magic, digits = b"REDIS", head[5:]
        elif head.startswith(b"VALKEY"):
            magic, digits = b"VALKEY", head[6:]
        else:
            raise RDBError(
                f"not an RDB file: header {head!r} starts with neither REDIS nor VALKEY", 0
            )
        if not digits.isdigit():
            raise RDBError(f"bad RDB header {head!r}: the version is not a number", 0)
        version = int(digits)
        valkey = magic == b"VALKEY"
        if valkey:
            if version != RDB_VERSION_VALKEY_9:
                raise RDBUnsupportedError(
                    f"unsupported Valkey RDB version {version} "
                    f"(known: VALKEY{RDB_VERSION_VALKEY_9:03d})",
                    len(magic),
                )
        elif RDB_VERSION_MAX_REDIS < version < RDB_VERSION_VALKEY_9:
            raise RDBUnsupportedError(
                f"unsupported RDB version {version} (newer than Redis 8.6's RDB "
                f"{RDB_VERSION_MAX_REDIS}): its new object types and opcodes are not known "
                f"here; this reader knows RDB 1-{RDB_VERSION_MAX_REDIS} and VALKEY080",
                5,
            )
        elif not 1 <= version <= RDB_VERSION_MAX_REDIS:
            raise RDBUnsupportedError(
                f"unsupported RDB version {version} (this reader knows RDB "
                f"1-{RDB_VERSION_MAX_REDIS} and VALKEY080)",
                5,
            )
        self.version = version
        self.valkey = valkey
        self._readers = value_readers(version, valkey)
        self._events.append(Header(magic, version))
        return 9

    def _parse_eof(self, buf: bytes, pos: int, end: int, version: int) -> int:
        after = pos + 1
        checksum = None
        if version >= 5:
            after = pos + 9
            if after > end:
                raise Incomplete(after)
            checksum = _u64(buf, pos + 1)[0]
            computed = crc64(memoryview(buf)[: pos + 1], self._crc)
            self.computed_checksum = computed
            if self.verify_checksum and checksum != 0 and checksum != computed:
                raise RDBChecksumError(
                    f"CRC64 mismatch: the file stores 0x{checksum:016x} but its bytes give "
                    f"0x{computed:016x}",
                    pos + 1,
                )
        self._events.append(End(checksum))
        self._done = True
        self._unused += memoryview(buf)[after:]
        self._base += after
        return after

    def _parse_rare_opcode(self, buf: bytes, pos: int, end: int, t: int, version: int) -> int:
        rs = read_string
        append = self._events.append
        if t == 245:  # FUNCTION2
            code, p = rs(buf, pos + 1, end)
            append(Function(code))
            return p
        if t == 246:  # FUNCTION (7.0 RC): name, engine, has_desc, [desc], code
            name, p = rs(buf, pos + 1, end)
            engine, p = rs(buf, p, end)
            has_desc, p = read_len(buf, p, end)
            desc = None
            if has_desc:
                desc, p = rs(buf, p, end)
            code, p = rs(buf, p, end)
            append(Function(code, name, engine, desc))
            return p
        if t == 247:  # MODULE_AUX
            mid, p = read_len(buf, pos + 1, end)
            raw_start = p
            when_opcode, p = read_len(buf, p, end)
            if when_opcode != 2:
                raise RDBError(f"module aux 'when' opcode is {when_opcode}, not 2 (UINT)", p)
            when, p = read_len(buf, p, end)
            try:
                p = module_stream_end(buf, p, end)
            except RDBError as e:
                raise rebased(e, 0, f"module aux of {module_name(mid)!r}: ") from None
            append(ModuleAux(mid, module_name(mid), when, buf[raw_start:p]))
            return p
        if t == 243 and self.valkey:  # SLOT_IMPORT (Valkey 9)
            slot_import, p = read_slot_import(buf, pos + 1, end)
            append(slot_import)
            return p
        if t == 244:  # SLOT_INFO
            slot, p = read_len(buf, pos + 1, end)
            size, p = read_len(buf, p, end)
            expires, p = read_len(buf, p, end)
            append(SlotInfo(slot, size, expires))
            return p
        raise unknown_type(t, version, self.valkey, pos)


# ---- files ----


def iter_file(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    verify_checksum: bool = True,
    chunk_size: int = _CHUNK,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[Event]:
    """The events of an RDB file (a path or a binary file object), read `chunk_size` at a time.

    `on_progress(n)` is called with the number of bytes fed after each chunk.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            yield from iter_file(
                f, verify_checksum=verify_checksum, chunk_size=chunk_size, on_progress=on_progress
            )
        return
    reader = RDBReader(verify_checksum=verify_checksum)
    while not reader.done:
        data = source.read(chunk_size)
        if not data:
            break
        try:
            reader.feed(data)
        except RDBError:
            yield from reader.next_events()
            raise
        if on_progress is not None:
            on_progress(len(data))
        yield from reader.next_events()
    if not reader.done:
        try:
            reader.feed_eof()
        except RDBError:
            yield from reader.next_events()
            raise
    yield from reader.next_events()


def read_file(
    path: str | os.PathLike[str] | BinaryIO,
    verify_checksum: bool = True,
    *,
    chunk_size: int = _CHUNK,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[Event]:
    """The events of the RDB file at `path` (see `iter_file`)."""
    return iter_file(
        path, verify_checksum=verify_checksum, chunk_size=chunk_size, on_progress=on_progress
    )
