"""Build a command table data file from a server's own command definitions
(`src/commands/*.json`), for the versions that cannot run here (Redis 7.2, 7.4, Valkey 9).

Those JSON files are what `utils/generate-command-code.py` turns into `commands.def`
(`commands.c` in 7.0), the static table the server registers at start-up; COMMAND INFO and
COMMAND DOCS then print that table with `addReplyCommandInfo` / `addReplyCommandDocs`
(server.c). This module does both steps in Python and writes the same data format the
capture writes (`scripts/gen_command_table.py`, docs/commandtable.md), so a table built here
is byte for byte what the server would answer, as far as the steps below are right. The
proof is `tests/test_commandtable_source.py`: built from the JSON of Redis 7.0.15 and
Valkey 8.1, the output equals what the real servers answer (the captured data files).

What the steps reproduce (server.c, acl.c, generate-command-code.py; identical in Redis 7.0
to 8.x and Valkey 8/9 except where noted):

- Commands flagged EXPERIMENTAL are skipped by Redis 8's generator (SFLUSH in 8.0).
- Commands flagged ONLY_SENTINEL are not registered (`populateCommandStructure`), nor their
  subcommands; module commands are not in the JSON files (Redis 8's built-in modules such as
  vector sets are not covered: their commands come from the module, not from src/commands).
- Names: the JSON key lowercased; a subcommand is `container|name`. Argument names and
  `display` are lowercased, tokens uppercased, command tips lowercased; an empty string is
  no value at all (`get_optional_desc_string`).
- Flags print in `addReplyFlagsForCommand`'s order; may_replicate, sentinel, only_sentinel,
  protected, touches_arbitrary_keys (and Valkey 9's all_dbs) are hidden; `movablekeys` comes
  from `populateCommandLegacyRangeSpec`, which also gives the legacy first/last/step.
- ACL categories: the declared ones plus `setImplicitACLCategories` (write, read unless
  scripting, admin+dangerous, pubsub, fast, blocking, slow when not fast), printed in the
  order of `ACLCommandCategories`.
- COMMAND DOCS: summary, since, group ("sorted-set" for sorted_set), complexity, doc_flags,
  deprecated_since, replaced_by, history, arguments (each with `display_text` from Redis 7.2
  / Valkey on, the name when no `display` is given, none for oneof/block), subcommands.
  reply_schema is never printed (only in LOG_REQ_RES builds).
- A container's subcommands are in name order (the server prints its hash order, which
  changes with every process; the data format keeps name order, as the capture does).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# `addReplyFlagsForCommand`: (JSON flag, printed name); None = hidden on purpose.
_FLAG_ORDER: list[tuple[str, str | None]] = [
    ("WRITE", "write"),
    ("READONLY", "readonly"),
    ("DENYOOM", "denyoom"),
    ("MODULE", "module"),
    ("ADMIN", "admin"),
    ("PUBSUB", "pubsub"),
    ("NOSCRIPT", "noscript"),
    ("BLOCKING", "blocking"),
    ("LOADING", "loading"),
    ("STALE", "stale"),
    ("SKIP_MONITOR", "skip_monitor"),
    ("SKIP_SLOWLOG", "skip_slowlog"),  # Valkey 8.1+: SKIP_COMMANDLOG, "skip_commandlog"
    ("SKIP_COMMANDLOG", "skip_commandlog"),
    ("ASKING", "asking"),
    ("FAST", "fast"),
    ("NO_AUTH", "no_auth"),
    ("MAY_REPLICATE", None),
    ("SENTINEL", None),
    ("ONLY_SENTINEL", None),
    ("NO_MANDATORY_KEYS", "no_mandatory_keys"),
    ("PROTECTED", None),
    ("NO_ASYNC_LOADING", "no_async_loading"),
    ("NO_MULTI", "no_multi"),
    ("MOVABLE_KEYS", "movablekeys"),
    ("ALLOW_BUSY", "allow_busy"),
    ("TOUCHES_ARBITRARY_KEYS", None),
    ("ALL_DBS", None),
]
_KNOWN_FLAGS = {f for f, _ in _FLAG_ORDER}

# `ACLCommandCategories` (acl.c), the same list in every version with key specs.
_ACL_ORDER = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
]

_KEY_FLAG_ORDER = [
    "RO",
    "RW",
    "OW",
    "RM",
    "ACCESS",
    "UPDATE",
    "INSERT",
    "DELETE",
    "NOT_KEY",
    "INCOMPLETE",
    "VARIABLE_FLAGS",
]
# `addReplyFlagsForKeyArgs` prints these names.
_KEY_FLAG_NAME = {f: (f if f in ("RO", "RW", "OW", "RM") else f.lower()) for f in _KEY_FLAG_ORDER}

_GROUP_NAME = {"sorted_set": "sorted-set"}


class Resp:
    """The few reply encoders COMMAND INFO/DOCS use, for RESP2 or RESP3."""

    def __init__(self, proto: int) -> None:
        self.proto = proto

    def array(self, n: int) -> bytes:
        return b"*%d\r\n" % n

    def set(self, n: int) -> bytes:
        return b"~%d\r\n" % n if self.proto == 3 else b"*%d\r\n" % n

    def map(self, n: int) -> bytes:
        return b"%%%d\r\n" % n if self.proto == 3 else b"*%d\r\n" % (2 * n)

    @staticmethod
    def bulk(s: str) -> bytes:
        b = s.encode("utf-8")
        return b"$%d\r\n%s\r\n" % (len(b), b)

    @staticmethod
    def int(n: int) -> bytes:
        return b":%d\r\n" % n

    @staticmethod
    def status(s: str) -> bytes:
        return b"+%s\r\n" % s.encode()


def _c(text: str) -> str:
    """What the C compiler makes of `"<text>"` once the generator has pasted `text` between
    quotes (newlines escaped, nothing else): a quote inside ends one literal and starts the
    next (`""` in MIGRATE's token is two empty literals, so the empty string), and backslash
    escapes are interpreted."""
    src = '"' + text.replace("\n", "\\n") + '"'
    out: list[str] = []
    i, inside = 0, False
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}
    while i < len(src):
        ch = src[i]
        if ch == '"':
            inside = not inside
        elif inside and ch == "\\":
            i += 1
            out.append(escapes.get(src[i], src[i]))
        elif inside:
            out.append(ch)
        i += 1
    return "".join(out)


def _opt(desc: dict[str, Any], field: str) -> str | None:
    """`get_optional_desc_string`: a missing or empty value is NULL; a value is read back
    as the C literal the generator writes (`_c`)."""
    v = desc.get(field)
    return _c(v) if v else None


class Command:
    """One command or subcommand, as `populateCommandStructure` leaves it."""

    def __init__(self, key: str, desc: dict[str, Any], container: str | None) -> None:
        self.desc = desc
        self.declared = key.lower()
        self.fullname = f"{container}|{self.declared}" if container else self.declared
        self.subcommands: list[Command] = []
        flags = list(desc.get("command_flags", []))
        unknown = set(flags) - _KNOWN_FLAGS
        if unknown:
            raise ValueError(f"{self.fullname}: unknown command flags {sorted(unknown)}")
        self.flags = set(flags)
        self.key_specs: list[dict[str, Any]] = desc.get("key_specs", [])
        self.legacy = self._legacy_range()  # may add MOVABLE_KEYS
        cats = {c.lower() for c in desc.get("acl_categories", [])}
        f = self.flags
        if "WRITE" in f:
            cats.add("write")
        if "READONLY" in f and "scripting" not in cats:
            cats.add("read")
        if "ADMIN" in f:
            cats |= {"admin", "dangerous"}
        if "PUBSUB" in f:
            cats.add("pubsub")
        if "FAST" in f:
            cats.add("fast")
        if "BLOCKING" in f:
            cats.add("blocking")
        if "fast" not in cats:
            cats.add("slow")
        unknown = cats - set(_ACL_ORDER)
        if unknown:
            raise ValueError(f"{self.fullname}: unknown ACL categories {sorted(unknown)}")
        self.categories = [c for c in _ACL_ORDER if c in cats]

    @property
    def sentinel_only(self) -> bool:
        return "ONLY_SENTINEL" in self.flags

    def _legacy_range(self) -> tuple[int, int, int]:
        """`populateCommandLegacyRangeSpec` and `addReplyCommandInfo`'s (first, last, step)."""
        specs = self.key_specs
        if not specs:
            return (0, 0, 0)

        def is_range(s: dict[str, Any]) -> bool:
            return "index" in s["begin_search"] and "range" in s["find_keys"]

        def out(first: int, lastkey: int, step: int) -> tuple[int, int, int]:
            return (first, lastkey + first if lastkey >= 0 else lastkey, step)

        if len(specs) == 1 and is_range(specs[0]):
            s = specs[0]
            if "INCOMPLETE" in s.get("flags", []):
                self.flags.add("MOVABLE_KEYS")
            r = s["find_keys"]["range"]
            return out(s["begin_search"]["index"]["pos"], r["lastkey"], r["step"])
        firstkey, lastkey, prev_lastkey = None, 0, 0
        for s in specs:
            if not is_range(s):
                self.flags.add("MOVABLE_KEYS")
                continue
            pos = s["begin_search"]["index"]["pos"]
            r = s["find_keys"]["range"]
            if r["step"] != 1 or (prev_lastkey and prev_lastkey != pos - 1):
                self.flags.add("MOVABLE_KEYS")
                continue
            if "INCOMPLETE" in s.get("flags", []):
                self.flags.add("MOVABLE_KEYS")
            firstkey = pos if firstkey is None else min(firstkey, pos)
            abs_last = r["lastkey"] + pos if r["lastkey"] >= 0 else r["lastkey"]
            # `max((unsigned)lastkey, (unsigned)abs)`: a negative index wins.
            lastkey = max(lastkey, abs_last, key=lambda v: v & 0xFFFFFFFF)
            prev_lastkey = lastkey
        if firstkey is None:
            self.flags.add("MOVABLE_KEYS")
            return (0, 0, 0)
        rel = lastkey if lastkey < 0 else lastkey - firstkey
        return out(firstkey, rel, 1)

    # --- COMMAND INFO -----------------------------------------------------------------------

    def info(self, r: Resp) -> bytes:
        first, last, step = self.legacy
        flags = [name for flag, name in _FLAG_ORDER if name and flag in self.flags]
        tips = [_c(t.lower()) for t in self.desc.get("command_tips", [])]
        out = [
            r.array(10),
            r.bulk(self.fullname),
            r.int(self.desc["arity"]),
            r.set(len(flags)),
            *(r.status(f) for f in flags),
            r.int(first),
            r.int(last),
            r.int(step),
            r.set(len(self.categories)),
            *(r.status("@" + c) for c in self.categories),
            r.set(len(tips)),
            *(r.bulk(t) for t in tips),
            self._key_specs(r),
        ]
        if self.subcommands:
            out.append(r.array(len(self.subcommands)))
            out += [s.info(r) for s in self.subcommands]
        else:
            out.append(r.set(0))
        return b"".join(out)

    def _key_specs(self, r: Resp) -> bytes:
        out = [r.set(len(self.key_specs))]
        for ks in self.key_specs:
            notes = _opt(ks, "notes")
            out.append(r.map(4 if notes else 3))
            if notes:
                out += [r.bulk("notes"), r.bulk(notes)]
            flags = ks.get("flags", [])
            names = [_KEY_FLAG_NAME[f] for f in _KEY_FLAG_ORDER if f in flags]
            out += [r.bulk("flags"), r.set(len(names)), *(r.status(n) for n in names)]
            bs, fk = ks["begin_search"], ks["find_keys"]
            out.append(r.bulk("begin_search") + r.map(2) + r.bulk("type"))
            if bs.get("index"):
                out += [
                    r.bulk("index"),
                    r.bulk("spec"),
                    r.map(1),
                    r.bulk("index"),
                    r.int(bs["index"]["pos"]),
                ]
            elif bs.get("keyword"):
                kw = bs["keyword"]
                out += [
                    r.bulk("keyword"),
                    r.bulk("spec"),
                    r.map(2),
                    r.bulk("keyword"),
                    r.bulk(_c(kw["keyword"])),
                    r.bulk("startfrom"),
                    r.int(kw["startfrom"]),
                ]
            else:
                out += [r.bulk("unknown"), r.bulk("spec"), r.map(0)]
            out.append(r.bulk("find_keys") + r.map(2) + r.bulk("type"))
            if fk.get("range"):
                rg = fk["range"]
                out += [
                    r.bulk("range"),
                    r.bulk("spec"),
                    r.map(3),
                    r.bulk("lastkey"),
                    r.int(rg["lastkey"]),
                    r.bulk("keystep"),
                    r.int(rg["step"]),
                    r.bulk("limit"),
                    r.int(rg["limit"]),
                ]
            elif fk.get("keynum"):
                kn = fk["keynum"]
                out += [
                    r.bulk("keynum"),
                    r.bulk("spec"),
                    r.map(3),
                    r.bulk("keynumidx"),
                    r.int(kn["keynumidx"]),
                    r.bulk("firstkey"),
                    r.int(kn["firstkey"]),
                    r.bulk("keystep"),
                    r.int(kn["step"]),
                ]
            else:
                out += [r.bulk("unknown"), r.bulk("spec"), r.map(0)]
        return b"".join(out)

    # --- COMMAND DOCS -----------------------------------------------------------------------

    def docs(self, r: Resp, display_text: bool) -> bytes:
        d = self.desc
        fields: list[bytes] = []

        def put(name: str, value: bytes) -> None:
            fields.append(r.bulk(name) + value)

        for name in ("summary", "since"):
            v = _opt(d, name)
            if v:
                put(name, r.bulk(v))
        put("group", r.bulk(_GROUP_NAME.get(self.group, self.group)))
        v = _opt(d, "complexity")
        if v:
            put("complexity", r.bulk(v))
        doc_flags = [f.lower() for f in ("DEPRECATED", "SYSCMD") if f in d.get("doc_flags", [])]
        if doc_flags:
            put("doc_flags", r.set(len(doc_flags)) + b"".join(r.status(f) for f in doc_flags))
        for name in ("deprecated_since", "replaced_by"):
            v = _opt(d, name)
            if v:
                put(name, r.bulk(v))
        history = d.get("history") or []
        if history:
            put(
                "history",
                r.set(len(history))
                + b"".join(
                    r.array(2) + r.bulk(_c(since)) + r.bulk(_c(text)) for since, text in history
                ),
            )
        args = d.get("arguments") or []
        if args:
            put("arguments", _arg_list(r, args, display_text))
        if self.subcommands:
            put(
                "subcommands",
                r.map(len(self.subcommands))
                + b"".join(r.bulk(s.fullname) + s.docs(r, display_text) for s in self.subcommands),
            )
        return r.map(len(fields)) + b"".join(fields)

    group: str = ""


def _arg_list(r: Resp, args: list[dict[str, Any]], display_text: bool) -> bytes:
    """`addReplyCommandArgList`."""
    out = [r.array(len(args))]
    for a in args:
        fields: list[bytes] = []

        def put(name: str, value: bytes, fields: list[bytes] = fields) -> None:
            fields.append(r.bulk(name) + value)

        name = a["name"].lower()
        put("name", r.bulk(name))
        put("type", r.bulk(a["type"]))
        nested = a["type"] in ("oneof", "block")
        if display_text and not nested:
            display = a.get("display")
            put("display_text", r.bulk(_c(display.lower()) if display else name))
        if "key_spec_index" in a and a["key_spec_index"] != -1:
            put("key_spec_index", r.int(a["key_spec_index"]))
        token = a.get("token")
        if token:
            put("token", r.bulk(_c(token.upper())))
        for field in ("summary", "since", "deprecated_since"):
            v = _opt(a, field)
            if v:
                put(field, r.bulk(v))
        flags = [f for f in ("optional", "multiple", "multiple_token") if a.get(f)]
        if flags:
            put("flags", r.set(len(flags)) + b"".join(r.status(f) for f in flags))
        if nested:
            put("arguments", _arg_list(r, a.get("arguments", []), display_text))
        out.append(r.map(len(fields)) + b"".join(fields))
    return b"".join(out)


def load_commands(commands_dir: Path) -> dict[str, Command]:
    """Every registered top-level command (sentinel-only ones dropped), subcommands linked
    and in name order, as `populateCommandTable` leaves them."""
    tops: dict[str, Command] = {}
    subs: dict[str, list[Command]] = {}
    files = sorted(commands_dir.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no command definitions (*.json) in {commands_dir}")
    for path in files:
        for key, desc in json.loads(path.read_text()).items():
            if "EXPERIMENTAL" in desc.get("command_flags", []):
                continue  # Redis 8's generator skips experimental commands (create_command)
            container = desc.get("container")
            if container:
                cmd = Command(key, desc, container.lower())
                subs.setdefault(container.lower(), []).append(cmd)
            else:
                cmd = Command(key, desc, None)
                cmd.group = desc["group"]
                tops[cmd.fullname] = cmd
    for name, cmd in tops.items():
        for sub in sorted(subs.get(name, []), key=lambda c: c.declared):
            sub.group = cmd.group
            if not sub.sentinel_only:
                cmd.subcommands.append(sub)
    return {n: c for n, c in sorted(tops.items()) if not c.sentinel_only}


def build(
    commands_dir: Path,
    server: str,
    version: str,
    meta_of: Callable[[list[Any], dict[str, Any]], dict[str, Any]],
    parse: Callable[[bytes], tuple[Any, int]],
    helps: dict[str, Any],
) -> dict[str, Any]:
    """The data file of `server` `version` from its `src/commands` directory.

    `meta_of` and `parse` are the capture's (so the parsed fields are derived the same way
    from the same bytes); `helps` gives help2/help3/helps (the HELP texts are C code, not
    JSON: see `gen_command_table.py --help-from`)."""
    major_minor = tuple(int(x) for x in version.split(".")[:2])
    display_text = server == "valkey" or major_minor >= (7, 2)
    r2, r3 = Resp(2), Resp(3)
    commands: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for name, cmd in load_commands(commands_dir).items():
        entry = {
            "info2": cmd.info(r2).decode("latin-1"),
            "info3": cmd.info(r3).decode("latin-1"),
            "docs2": cmd.docs(r2, display_text).decode("latin-1"),
            "docs3": cmd.docs(r3, display_text).decode("latin-1"),
        }
        commands[name] = entry
        info3 = parse(entry["info3"].encode("latin-1"))[0]
        docs3 = parse(entry["docs3"].encode("latin-1"))[0]
        meta[name] = meta_of(info3, docs3)
        for sub in info3[9]:
            meta[sub[0]] = meta_of(sub, docs3["subcommands"][sub[0]])
    return {
        "server": server,
        "version": version,
        "source": "generated",
        "commands": commands,
        "meta": meta,
        **helps,
    }


def names(table: Iterable[Command]) -> list[str]:
    return [c.fullname for c in table]


# --- HELP texts, from the C sources -------------------------------------------------------------

_FUNC = re.compile(r"^(?:static\s+)?(?:void|int|const char\s*\*\*)\s*(\w+)\s*\(", re.M)
_HELP = re.compile(r"help\[\]\s*=\s*\{(.*?)\bNULL\b", re.S)
_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _help_owner(function: str) -> str:
    """`objectCommand` -> "object", `configHelpCommand` / `functionHelpCommand` ->
    "config" / "function", `commandHelpCommand` -> "command"."""
    for suffix in ("HelpCommand", "CommandHelp", "Command"):
        if function.endswith(suffix):
            return function[: -len(suffix)].lower()
    return function.lower()


def help_arrays(src_dir: Path) -> dict[str, list[str]]:
    """Each `const char *help[] = {...}` array of the server's C files, by the command whose
    function holds it (lines of an `#ifdef` kept: the release builds define them)."""
    out: dict[str, list[str]] = {}
    for path in sorted(src_dir.glob("*.c")):
        text = path.read_text(errors="replace")
        for m in _HELP.finditer(text):
            funcs = list(_FUNC.finditer(text, 0, m.start()))
            if not funcs:
                continue
            lines = []
            for line in m.group(1).splitlines():
                if line.lstrip().startswith("#"):
                    continue
                lits = _LITERAL.findall(line)
                if lits:
                    lines.append(_c("".join(lits)))
            out.setdefault(_help_owner(funcs[-1].group(1)), lines)
    return out


_FOOTER = re.compile(r'addReplyStatus\(c,\s*"HELP"\);\s*addReplyStatus\(c,\s*"([^"]*)"\)')


def help_footer(src_dir: Path) -> str:
    """The line after HELP in `addReplyHelp` (networking.c): "    Prints this help." in
    Redis 7.0, "    Print this help." from 7.2 and in Valkey."""
    m = _FOOTER.search((src_dir / "networking.c").read_text(errors="replace"))
    if m is None:
        raise ValueError(f"no addReplyHelp footer in {src_dir / 'networking.c'}")
    return m.group(1)


def help_reply(container: str, lines: list[str], footer: str) -> str:
    """`addReplyHelp` as the capture asked it (`<container> help`, lowercase): a header naming
    the command in upper case, the lines, and the HELP footer, as simple strings."""
    items = [
        f"{container.upper()} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        *lines,
        "HELP",
        footer,
    ]
    return f"*{len(items)}\r\n" + "".join(f"+{s}\r\n" for s in items)


CLUSTER_DISABLED = "-ERR This instance has cluster support disabled\r\n"


def helps_from_c(src_dir: Path, containers_with_help: Iterable[str]) -> dict[str, Any]:
    """help2 / help3 (COMMAND HELP) and `helps` (each container's HELP) of a source tree.
    CLUSTER HELP on a server without cluster support answers an error (every version)."""
    arrays = help_arrays(src_dir)
    footer = help_footer(src_dir)
    helps: dict[str, str] = {}
    for name in containers_with_help:
        if name == "cluster":
            helps[name] = CLUSTER_DISABLED
        elif name in arrays:
            helps[name] = help_reply(name, arrays[name], footer)
        else:
            raise KeyError(f"no help[] array found for {name!r} in {src_dir}")
    command_help = help_reply("command", arrays["command"], footer)
    return {"help2": command_help, "help3": command_help, "helps": helps}
