"""`replproxy rdb ...`: look inside RDB snapshots from the command line.

This module owns the `rdb` command group and the JSON form of keys (`dump`). It only calls
the reader; it never writes RDB files. Mounted by the main CLI with
`app.add_typer(rdb_app, name="rdb")`; also runnable alone: `python -m replproxy.rdb.cli`.

Commands:

* `info FILE`   - version, aux fields, per-db key counts by type and by RDB encoding,
                  functions and module aux records, size, checksum status
                  (`--json` for one JSON object). Exit 1 if the file is not sound.
* `dump FILE`   - JSON Lines on stdout, one key per line.
* `verify FILE` - full parse and CRC64 check; exit 0 only if sound, else exit 1 with the
                  error (what, and the byte offset) on stderr.

A progress bar over the bytes read is drawn on stderr when stderr is a terminal.

All three read through the reader's sink modes, so the optional C loader
(`replproxy/rdb/_loader.c`) does the per-key work, as in a full sync: `verify` and `info`
count keys (`KeyCounter`: every value decoded and checked, then dropped; memory stays flat),
`dump` collects `(db, key, value, expire)` tuples a chunk at a time (`KeyCollector`) and
writes them out before reading on, through the optional C encoder `_jsonl.dump_lines`
(byte for byte `key_line`/`key_json`, which it falls back on for streams, module values and
hashes with field TTLs).

`dump` line format: `{"db": 0, "key": K, "type": T, "value": V, "expire_ms": null|int}`,
plus `"field_expires": [[field, ms], ...]` for a hash with field TTLs and `"meta": [{"class",
"version", "flags", "raw"}, ...]` for a key with module metadata (KEY_META, RDB 13).
Binary-safe strings (keys, members, fields, values): a byte string that is valid UTF-8 with
no control character (U+0000-U+001F, U+007F-U+009F) is a JSON string; any other is
`{"b64": "<base64>"}`.
`type` is what TYPE answers (a module value gives its module name). `value` by type:

* string: S
* list: [S, ...] head first
* set: [S, ...] sorted by the raw bytes
* zset: [[member, score], ...] by rank (score, then member); scores are JSON numbers,
  except infinities, written as the strings "inf" and "-inf"
* hash: [[field, value], ...] in file order
* stream: {"length", "last_id", "first_id", "max_deleted_id", "entries_added",
  "entries": [{"id": "ms-seq", "fields": [[f, v], ...]}],
  "groups": [{"name", "last_id", "entries_read", "pel": [{"id", "delivery_time",
  "delivery_count"}], "consumers": [{"name", "seen_time", "active_time", "pending": [id]}]}]}
  plus, for a stream saved with IDMP state (type 26), "idmp": {"duration", "max_entries",
  "producers": [{"pid", "entries": [[iid, id], ...]}], "iids_added", "iids_duplicates"}
* module value: {"module": name, "encver": n, "raw": {"b64": ...}}
"""

from __future__ import annotations

import base64
import functools
import json
import math
import os
import re
import sys
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from json.encoder import encode_basestring as _json_str
from pathlib import Path
from typing import Any

import typer

from replproxy.rdb.decoders import type_encoding_name
from replproxy.rdb.model import (
    RDB_TYPE_MODULE_2,
    Aux,
    End,
    Event,
    Function,
    HashValue,
    Header,
    KeyEntry,
    ModuleAux,
    ModuleValue,
    RDBError,
    ResizeDB,
    SelectDB,
    SlotImport,
    StreamValue,
    Value,
    ZSetValue,
    type_name,
)
from replproxy.rdb.reader import KeyCollector, KeyCounter, RDBReader
from replproxy.speedups import c_function

app = typer.Typer(
    help="Read RDB snapshots: summary (info), JSON Lines (dump), integrity check (verify).",
    no_args_is_help=True,
    add_completion=False,
)

# 1 MiB reads: the sink modes keep nothing per chunk (count) or hand it on at once (dump).
_CHUNK = 1 << 20
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# For ASCII strings, the same test on the bytes (U+0080-U+009F are not ASCII).
_CONTROL_ASCII = re.compile(b"[\x00-\x1f\x7f]")

FileArg = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="An RDB file.")


def encode_bytes(b: bytes) -> str | dict[str, str]:
    """A JSON-safe form of a byte string (see the module docstring)."""
    if b.isascii():
        if _CONTROL_ASCII.search(b):
            return {"b64": base64.b64encode(b).decode("ascii")}
        return b.decode("ascii")
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(b).decode("ascii")}
    if _CONTROL.search(s):
        return {"b64": base64.b64encode(b).decode("ascii")}
    return s


def _json_bytes(b: bytes) -> str:
    """`json.dumps(encode_bytes(b), ensure_ascii=False)`, the common cases without a dict."""
    if b.isascii() and not _CONTROL_ASCII.search(b):
        return _json_str(b.decode("ascii"))
    return json.dumps(encode_bytes(b), ensure_ascii=False)


def key_line(db: int, key: bytes, value: Value, expire_ms: int | None) -> str:
    """One `dump` line (without its newline): `json.dumps(key_json(...))`, byte for byte.

    String values, the most common keys, are written without building the dict.
    """
    if value.__class__ is bytes:
        return (
            f'{{"db": {db}, "key": {_json_bytes(key)}, "type": "string", '
            f'"value": {_json_bytes(value)}, '
            f'"expire_ms": {"null" if expire_ms is None else expire_ms}}}'
        )
    return json.dumps(
        key_json(KeyEntry(db, key, value, expire_ms)), ensure_ascii=False, allow_nan=False
    )


def _score(x: float) -> float | str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _sid(i: tuple[int, int]) -> str:
    return f"{i[0]}-{i[1]}"


def _stream_json(s: StreamValue) -> dict[str, Any]:
    e = encode_bytes
    out = {
        "length": s.length,
        "last_id": _sid(s.last_id),
        "first_id": _sid(s.first_id),
        "max_deleted_id": _sid(s.max_deleted_id),
        "entries_added": s.entries_added,
        "entries": [
            {"id": _sid(i), "fields": [[e(f), e(v)] for f, v in fields]}
            for i, fields in s.entries.items()
        ],
        "groups": [
            {
                "name": e(g.name),
                "last_id": _sid(g.last_id),
                "entries_read": g.entries_read,
                "pel": [
                    {
                        "id": _sid(i),
                        "delivery_time": p.delivery_time,
                        "delivery_count": p.delivery_count,
                    }
                    for i, p in g.pel.items()
                ],
                "consumers": [
                    {
                        "name": e(c.name),
                        "seen_time": c.seen_time,
                        "active_time": c.active_time,
                        "pending": [_sid(i) for i in c.pending],
                    }
                    for c in g.consumers
                ],
            }
            for g in s.groups
        ],
    }
    if s.idmp is not None:
        out["idmp"] = {
            "duration": s.idmp.duration,
            "max_entries": s.idmp.max_entries,
            "producers": [
                {"pid": e(pid), "entries": [[e(iid), _sid(sid)] for iid, sid in tracked]}
                for pid, tracked in s.idmp.producers.items()
            ],
            "iids_added": s.idmp.iids_added,
            "iids_duplicates": s.idmp.iids_duplicates,
        }
    return out


def value_json(value: Value) -> Any:
    """The JSON form of a value (see the module docstring)."""
    e = encode_bytes
    if isinstance(value, bytes):
        return e(value)
    if isinstance(value, list | deque):
        return [e(v) for v in value]
    if isinstance(value, set):
        return [e(v) for v in sorted(value)]
    if isinstance(value, ZSetValue):
        ranked = sorted(value.items(), key=lambda i: (i[1], i[0]))
        return [[e(m), _score(s)] for m, s in ranked]
    if isinstance(value, dict):
        fields: dict[bytes, bytes] = value  # type: ignore[assignment]
        return [[e(f), e(v)] for f, v in fields.items()]
    if isinstance(value, StreamValue):
        return _stream_json(value)
    if isinstance(value, ModuleValue):
        return {"module": value.name, "encver": value.encver, "raw": e(value.raw)}
    raise TypeError(f"not an RDB value: {type(value).__name__}")


def key_json(entry: KeyEntry) -> dict[str, Any]:
    """One `dump` line as a dict."""
    out: dict[str, Any] = {
        "db": entry.db,
        "key": encode_bytes(entry.key),
        "type": type_name(entry.value),
        "value": value_json(entry.value),
        "expire_ms": entry.expire_ms,
    }
    if isinstance(entry.value, HashValue) and entry.value.expires:
        out["field_expires"] = [[encode_bytes(f), ms] for f, ms in entry.value.expires.items()]
    if entry.meta:
        out["meta"] = [
            {"class": m.name, "version": m.version, "flags": m.flags, "raw": encode_bytes(m.raw)}
            for m in entry.meta
        ]
    return out


@contextmanager
def _progress(path: Path, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress callback drawing on stderr, or None when stderr is not a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    with typer.progressbar(
        length=path.stat().st_size, label=label, file=sys.stderr, show_eta=True
    ) as bar:
        yield bar.update


def _events(
    path: Path,
    label: str,
    reader: RDBReader | None = None,
    on_chunk: Callable[[], None] | None = None,
) -> Iterator[Event]:
    """The events of the file at `path`, fed through `reader` (a checking one by default).

    `on_chunk()` is called after each chunk was fed and its events yielded.
    """
    reader = reader or RDBReader()
    with _progress(path, label) as on_progress, open(path, "rb") as f:
        while not reader.done and (chunk := f.read(_CHUNK)):
            try:
                reader.feed(chunk)
            finally:
                yield from reader.next_events()
            if on_chunk is not None:
                on_chunk()
            if on_progress is not None:
                on_progress(len(chunk))
        if not reader.done:
            try:
                reader.feed_eof()
            finally:
                yield from reader.next_events()


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@app.command()
def info(
    file: Path = FileArg,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Summarise an RDB file: version, aux fields, keys per db by type and encoding."""
    summary: dict[str, Any] = {"file": str(file), "bytes": file.stat().st_size}
    aux: dict[str, Any] = {}
    dbs: dict[int, dict[str, Any]] = defaultdict(
        lambda: {"keys": 0, "expires": 0, "by_type": Counter(), "by_encoding": Counter()}
    )
    functions = module_aux = slot_imports = 0
    counter = KeyCounter()
    reader = RDBReader(verify_checksum=False, sink=counter)
    error: str | None = None
    end: End | None = None
    valkey = False
    try:
        for ev in _events(file, "reading", reader):
            if isinstance(ev, Header):
                valkey = ev.magic == b"VALKEY"
                summary["magic"] = ev.magic.decode()
                summary["version"] = ev.version
            elif isinstance(ev, Aux):
                aux[ev.key.decode("utf-8", "replace")] = encode_bytes(ev.value)
            elif isinstance(ev, Function):
                functions += 1
            elif isinstance(ev, ModuleAux):
                module_aux += 1
            elif isinstance(ev, SlotImport):
                slot_imports += 1
            elif isinstance(ev, SelectDB):
                dbs[ev.db]
            elif isinstance(ev, ResizeDB):
                pass
            elif isinstance(ev, End):
                end = ev
    except RDBError as e:
        error = str(e)
    _count_keys(counter, dbs, valkey)
    summary["aux"] = aux
    summary["functions"] = functions
    summary["module_aux"] = module_aux
    summary["slot_imports"] = slot_imports
    summary["dbs"] = {
        str(n): {
            "keys": d["keys"],
            "expires": d["expires"],
            "by_type": dict(sorted(d["by_type"].items())),
            "by_encoding": dict(sorted(d["by_encoding"].items())),
        }
        for n, d in sorted(dbs.items())
    }
    summary["keys"] = sum(d["keys"] for d in dbs.values())
    summary["checksum"] = _checksum_status(end, reader) if end is not None else "not reached"
    summary["skipped_empty_keys"] = reader.skipped_empty_keys
    if error:
        summary["error"] = error
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_info(summary)
    if error:
        _fail(error)
    if summary["checksum"].startswith("MISMATCH"):
        raise typer.Exit(1)


def _count_keys(counter: KeyCounter, dbs: dict[int, dict[str, Any]], valkey: bool) -> None:
    """Add what a counting reader tallied (per DB, type byte and expiry) to `dbs`."""
    for db, counts in sorted(counter.counts.items()):
        for t in range(len(counts) // 2):
            plain, with_expiry = counts[2 * t], counts[2 * t + 1]
            n = plain + with_expiry
            if not n:
                continue
            d = dbs[db]
            d["keys"] += n
            d["expires"] += with_expiry
            kind, encoding = type_encoding_name(t, valkey)
            d["by_encoding"][f"{kind}/{encoding}"] += n
            if t != RDB_TYPE_MODULE_2:
                d["by_type"][kind] += n
    # Module values answer TYPE with their module's name.
    for (db, name), n in counter.module_types.items():
        dbs[db]["by_type"][name] += n


def _checksum_status(end: End, reader: RDBReader) -> str:
    if end.checksum is None:
        return "absent (RDB version < 5)"
    if end.checksum == 0:
        return "disabled (stored as 0)"
    computed = reader.computed_checksum
    if computed == end.checksum:
        return f"ok (0x{computed:016x})"
    return f"MISMATCH (stored 0x{end.checksum:016x}, computed 0x{computed or 0:016x})"


def _print_info(s: dict[str, Any]) -> None:
    echo = typer.echo
    echo(f"file: {s['file']}")
    echo(f"bytes: {s['bytes']}")
    if "version" in s:
        echo(f"format: {s['magic']} version {s['version']}")
    if s["aux"]:
        echo("aux:")
        for k, v in s["aux"].items():
            echo(f"  {k}: {v if isinstance(v, str) else json.dumps(v)}")
    echo(f"functions: {s['functions']}")
    echo(f"module aux records: {s['module_aux']}")
    if s["slot_imports"]:
        echo(f"slot imports in progress: {s['slot_imports']}")
    echo(f"keys: {s['keys']}")
    for n, d in s["dbs"].items():
        echo(f"db {n}: {d['keys']} keys, {d['expires']} with expiry")
        echo("  by type: " + ", ".join(f"{k} {v}" for k, v in d["by_type"].items()))
        echo("  by encoding: " + ", ".join(f"{k} {v}" for k, v in d["by_encoding"].items()))
    if s["skipped_empty_keys"]:
        echo(f"empty keys skipped: {s['skipped_empty_keys']}")
    echo(f"checksum: {s['checksum']}")


@app.command()
def dump(file: Path = FileArg) -> None:
    """Write every key as one JSON object per line (JSON Lines) on stdout."""
    out = sys.stdout
    collector = KeyCollector()
    keys = collector.keys_out

    c_lines = c_function("replproxy.rdb._jsonl", "dump_lines")

    def flush() -> None:
        # The keys of each chunk, in file order, written before the next chunk is read.
        if keys:
            meta = collector.meta
            if meta:
                lines = [
                    json.dumps(
                        key_json(KeyEntry(*k, meta=meta[i])), ensure_ascii=False, allow_nan=False
                    )
                    if i in meta
                    else key_line(*k)
                    for i, k in enumerate(keys)
                ]
                lines.append("")
                out.write("\n".join(lines))
                meta.clear()
            elif c_lines is not None:
                out.write(c_lines(keys, ZSetValue, key_line))
            else:
                lines = [key_line(*k) for k in keys]
                lines.append("")
                out.write("\n".join(lines))
            keys.clear()

    try:
        for _ in _events(file, "dumping", RDBReader(sink=collector), on_chunk=flush):
            pass
    except RDBError as e:
        flush()
        out.flush()
        _fail(str(e))
    flush()


@app.command()
def verify(file: Path = FileArg) -> None:
    """Parse the whole file and check its CRC64: exit 0 if sound, 1 otherwise."""
    counter = KeyCounter()
    header: Header | None = None
    end: End | None = None
    try:
        for ev in _events(file, "verifying", RDBReader(sink=counter)):
            if isinstance(ev, Header):
                header = ev
            elif isinstance(ev, End):
                end = ev
    except RDBError as e:
        _fail(str(e))
    keys = counter.keys
    assert header is not None and end is not None
    if end.checksum is None:
        crc = "no checksum (RDB version < 5)"
    elif end.checksum == 0:
        crc = "checksum disabled (stored as 0)"
    else:
        crc = "checksum ok"
    typer.echo(f"OK: {header.magic.decode()} version {header.version}, {keys} keys, {crc}")


def main(args: list[str] | None = None, prog_name: str = "replproxy rdb") -> int:
    """Run a command; returns the exit status (or exits, through typer).

    The plain forms (`verify FILE`, `dump FILE`, `info [--json] FILE` with FILE a readable
    regular file) are run directly: typer's own dispatch imports pydantic and more, ~0.2 s
    before the first byte is read, a third of a `verify` of a 40 MB file. Anything else
    (`--help`, a missing file, a typo) goes through typer, for its messages and exit codes.
    """
    argv = sys.argv[1:] if args is None else list(args)
    fast: Callable[[], None] | None = None
    if len(argv) in (2, 3) and argv[0] in ("verify", "dump", "info"):
        opts = [a for a in argv[1:] if a.startswith("-")]
        names = [a for a in argv[1:] if not a.startswith("-")]
        path = Path(names[0]) if len(names) == 1 else None
        if path is not None and path.is_file() and os.access(path, os.R_OK):
            if argv[0] == "info" and opts in ([], ["--json"]):
                fast = functools.partial(info, path, as_json=bool(opts))
            elif argv[0] == "dump" and not opts:
                fast = functools.partial(dump, path)
            elif argv[0] == "verify" and not opts:
                fast = functools.partial(verify, path)
    if fast is None:
        app(args=argv, prog_name=prog_name)  # exits with typer's status
        return 0
    try:
        fast()
    except typer.Exit as e:
        return int(e.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main(prog_name="python -m replproxy.rdb.cli"))
