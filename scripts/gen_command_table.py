#!/usr/bin/env python3
"""Capture (or build from source) the command table of each server version into
replproxy/data/commands-<server>-<major.minor>.json.gz. The format is docs/commandtable.md.

How to run (from the repository root, with the test servers installed: tests/harness/servers.py):

    python scripts/gen_command_table.py                   # every server kind found
    python scripts/gen_command_table.py --kind redis62    # just one
    # Versions that cannot run here, from their source tree (src/commands/*.json, src/*.c):
    python scripts/gen_command_table.py --from-source /path/to/redis-7.4.1 \
        --server redis --version 7.4.1

Kinds: redis5 (5.0, needs REPLPROXY_TEST_REDIS5), redis62 (6.2), redis7 (7.0), redis8 (8.2),
valkey8 (8.1). Re-run it when a server changes version; the output is deterministic (sorted
JSON keys, subcommands in name order, gzip without a timestamp), so an unchanged server gives
a byte-identical file and `git diff` shows real changes only.

What a capture records, over raw sockets (RESP2, and RESP3 after `HELLO 3` where the server
has it), for every top-level command the server knows:

- `info2` / `info3`: the raw bytes of its entry in `COMMAND INFO <name>` (the reply without
  its `*1` header): 10 fields from Redis 7.0, 7 in 6.2 (with ACL categories), 6 in 5.0;
- `docs2` / `docs3` (7.0 and later): the raw bytes of its map in `COMMAND DOCS <name>`;
- `meta`: for the command and each of its subcommands (`"object|encoding"`), the parsed
  COMMAND INFO fields (arity, flags, legacy first/last/step, ACL categories, tips, key specs
  as JSON dicts) and a few COMMAND DOCS fields (group, since, doc_flags).

Before 7.0 (`"legacy": true`) there are no subcommands in the table: containers parse their
subcommand themselves, so the capture also records each container's reply to
`<container> <PROBE>` (`subcommand_errors`), from which the table makes that version's
unknown-subcommand text. `COMMAND HELP` is `help2` / `help3`, `<container> HELP` `helps`.

A container's subcommands come back in the server's hash-table order, which changes with
every process (random hash seed): they are re-ordered by name here. Each subcommand's own
bytes are kept exactly; replproxy cuts them out of the container entry when asked for
`COMMAND INFO object|encoding`. The script checks that those pieces equal what the server
answers for the subcommand by itself, and that `COMMAND` (no argument) is exactly the
multiset of the per-command entries.

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

from scripts import command_table_source  # noqa: E402
from tests.harness.readcheck import RawConnection, reply_end  # noqa: E402
from tests.harness.servers import ServerKind, all_kinds, start_server  # noqa: E402

DATA_DIR = ROOT / "replproxy" / "data"
SERVER_NAME = {
    "redis5": "redis",
    "redis62": "redis",
    "redis7": "redis",
    "redis8": "redis",
    "valkey8": "valkey",
}
# What a pre-7.0 container is asked to learn its unknown-subcommand reply (see `capture`).
PROBE = "nosuch-subcommand-probe"
# The containers whose unknown-subcommand reply a pre-7.0 capture records: those of 7.0 that
# the old server also has (it has no subcommand table to say so itself).
LEGACY_CONTAINERS = (
    "acl", "client", "cluster", "command", "config", "debug", "latency", "memory", "module",
    "object", "pubsub", "script", "slowlog", "xgroup", "xinfo",
)  # fmt: skip


def file_stem(server: str, version: str) -> str:
    """`commands-<stem>.json.gz`: one table per server and major.minor line."""
    major, minor = version.split(".")[:2]
    return f"{server}-{major}.{minor}"


def data_path(server: str, version: str) -> Path:
    return DATA_DIR / f"commands-{file_stem(server, version)}.json.gz"


# --- a small RESP2/RESP3 reader ---------------------------------------------------------------


def parse(buf: bytes, pos: int = 0) -> tuple[Any, int]:
    """(value, end) of the reply at `pos`: maps -> dict, arrays/sets -> list, strings -> str
    (latin-1), null -> None."""
    nl = buf.index(b"\r\n", pos)
    kind, head, after = buf[pos : pos + 1], buf[pos + 1 : nl], nl + 2
    if kind in (b"$", b"=", b"!"):
        n = int(head)
        if n < 0:
            return None, after
        return buf[after : after + n].decode("latin-1"), after + n + 2
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
    header = buf[pos : nl + 2]
    n = int(buf[pos + 1 : nl])
    if buf[pos : pos + 1] == b"%":
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
        k = docs[spans[i][0] : spans[i][1]]
        v = docs[spans[i + 1][0] : spans[i + 1][1]]
        if parse(k)[0] == "subcommands":
            sub_header, sub_spans = elements(v, 0)
            pairs = [
                (v[sub_spans[j][0] : sub_spans[j][1]], v[sub_spans[j + 1][0] : sub_spans[j + 1][1]])
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
    return reply[spans[0][0] : spans[0][1]]


def docs_value(reply: bytes, name: str) -> bytes:
    """The documentation map of the single command in a COMMAND DOCS reply."""
    _, spans = elements(reply, 0)
    assert len(spans) == 2, reply[:80]
    assert parse(reply[spans[0][0] : spans[0][1]])[0] == name
    return reply[spans[1][0] : spans[1][1]]


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
    if len(info) < 10:  # Redis 5.0 (6 fields) and 6.2 (7: ACL categories)
        _name, arity, flags, first, last, step = info[:6]
        return {
            "arity": arity,
            "flags": [f.lower() for f in flags],
            "first_key": first,
            "last_key": last,
            "key_step": step,
            "acl_categories": info[6] if len(info) > 6 else [],
        }
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
    if kind.version < (7, 0, 0):
        return capture_legacy(kind)
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
            for name in names
            if f"{name}|help" in meta
        }
        return {
            "server": SERVER_NAME[kind.name],
            "version": version,
            "source": "captured",
            "commands": commands,
            "meta": meta,
            "help2": c2.call(["command", "help"]).decode("latin-1"),
            "help3": c3.call(["command", "help"]).decode("latin-1"),
            "helps": helps,
        }
    finally:
        server.stop()


def capture_legacy(kind: ServerKind) -> dict[str, Any]:
    """A Redis 5.0 / 6.2 table: no subcommands, key specs or COMMAND DOCS; RESP3 from 6.0."""
    server = start_server(kind)
    try:
        resp3 = kind.version >= (6, 0, 0)
        conns = {2: RawConnection(server, 2)}
        if resp3:
            conns[3] = RawConnection(server, 3)
        c2 = conns[2]
        entries = parts(c2.call(["command"]))
        names = sorted(parse(e)[0][0] for e in entries)
        assert len(names) == parse(c2.call(["command", "count"]))[0]
        version = parse(c2.call(["info", "server"]))[0].split("redis_version:")[1].split()[0]
        commands: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        for name in names:
            entry = {
                f"info{p}": strip_header(conn.call(["command", "info", name])).decode("latin-1")
                for p, conn in conns.items()
            }
            commands[name] = entry
            meta[name] = meta_of(parse(entry["info2"].encode("latin-1"))[0], {})
        for p, conn in conns.items():
            full = sorted(parts(conn.call(["command"])))
            assert full == sorted(e[f"info{p}"].encode("latin-1") for e in commands.values())
        containers = [n for n in LEGACY_CONTAINERS if n in commands]
        data: dict[str, Any] = {
            "server": SERVER_NAME[kind.name],
            "version": version,
            "source": "captured",
            "legacy": True,
            "commands": commands,
            "meta": meta,
            "help2": c2.call(["command", "help"]).decode("latin-1"),
            "helps": {n: c2.call([n, "help"]).decode("latin-1") for n in containers},
            "subcommand_errors": {n: c2.call([n, PROBE]).decode("latin-1") for n in containers},
            "probe": PROBE,
        }
        if resp3:
            data["help3"] = conns[3].call(["command", "help"]).decode("latin-1")
        return data
    finally:
        server.stop()


def parts(reply: bytes) -> list[bytes]:
    _, spans = elements(reply, 0)
    return [reply[a:b] for a, b in spans]


def from_source(tree: Path, server: str, version: str) -> dict[str, Any]:
    """A table built from a server's source tree (`command_table_source`), for a version
    that cannot run here."""
    cmds = command_table_source.load_commands(tree / "src" / "commands")
    with_help = [n for n, c in cmds.items() if any(s.declared == "help" for s in c.subcommands)]
    helps = command_table_source.helps_from_c(tree / "src", with_help)
    return command_table_source.build(
        tree / "src" / "commands", server, version, meta_of, parse, helps
    )


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
    ap.add_argument(
        "--kind",
        choices=sorted(SERVER_NAME),
        action="append",
        help="server kind to capture (default: every kind available)",
    )
    ap.add_argument(
        "--from-source",
        type=Path,
        metavar="TREE",
        help="build from this source tree instead (with --server, --version)",
    )
    ap.add_argument("--server", choices=("redis", "valkey"))
    ap.add_argument("--version", help="the source tree's version (x.y.z)")
    args = ap.parse_args()
    if args.from_source:
        if not (args.server and args.version):
            ap.error("--from-source needs --server and --version")
        data = from_source(args.from_source, args.server, args.version)
        path = data_path(args.server, args.version)
        write(data, path)
        print(
            f"{args.server} {args.version} (from source): {len(data['commands'])} commands "
            f"-> {path} ({path.stat().st_size} bytes)"
        )
        return 0
    wanted = args.kind or sorted(SERVER_NAME)
    done = 0
    kinds = all_kinds()
    for kind in kinds:
        if kind.name not in wanted:
            continue
        data = capture(kind)
        path = data_path(data["server"], data["version"])
        write(data, path)
        subs = len(data["meta"]) - len(data["commands"])
        print(
            f"{kind.name} {data['version']}: {len(data['commands'])} commands, {subs} "
            f"subcommands -> {path} ({path.stat().st_size} bytes)"
        )
        done += 1
    missing = set(wanted) - {k.name for k in kinds}
    for m in sorted(missing):
        print(f"{m}: server binary not found, skipped", file=sys.stderr)
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
