"""The upstream's command table, as data: lookup, arity checks and the COMMAND command.

This module owns what Redis keeps in `server.commands` and answers from it: which commands
exist, their arity, flags, ACL categories and key specs, the first checks of
`processCommand` (unknown command, unknown subcommand, wrong arity), key extraction
(`getKeysFromCommandWithSpecs`) and every COMMAND subcommand. It is sans-I/O: the only I/O
is reading a package data file once per server kind. It never executes commands.

The data (`replproxy/data/commands-<redis|valkey>.json.gz`) is captured from real servers by
`scripts/gen_command_table.py` (Redis 7.0.15, Valkey 8.1.8): the raw COMMAND INFO and
COMMAND DOCS entry of every command in RESP2 and RESP3, plus the parsed fields. Replies are
assembled from those bytes, so COMMAND INFO/DOCS are byte-identical to the server's. A
replica answers COMMAND with its master's full table (write commands included), so
replproxy serves the whole table of its upstream kind.

Order: `COMMAND`, `COMMAND INFO` (no names), `COMMAND DOCS` (no names) and `COMMAND LIST`
walk a hash table on a real server, whose order changes with every process (random hash
seed); here they come in name order, and a container's subcommands in name order too. With
names given (`COMMAND INFO a b`), the order is that of the arguments, as on the server.

Hot path: `CommandTable.resolve(argv)` runs for every client command: one dict lookup (the
names are indexed in lower and upper case, other spellings pay one `bytes.lower()`), one
more for a container's subcommand, and the arity test.

Redis behaviours reproduced here (server.c / db.c, identical in Valkey 8.1):

- `lookupCommand` is case-insensitive (ASCII only); a container called with no subcommand
  resolves to the container itself, whose arity (-2) then fails:
  `ERR wrong number of arguments for 'object' command`.
- `commandCheckExistence`: `%.128s` of the name and of each argument, so text stops at 128
  bytes and at a NUL byte; arguments are listed while the list is shorter than 128 bytes;
  CR and LF become spaces. A wrong arity on EXEC aborts the transaction with EXECABORT.
- Key extraction prefers the key specs, and falls back to the command's own `*GetKeys`
  function when a spec is incomplete, unknown or invalid for the given arguments (or the
  specs have variable flags: SET, BITFIELD). Option words are compared as C strings
  (`strcasecmp`, stopping at NUL); counts are parsed with `string2ll` by the specs and with
  `atoi` by the fallbacks (so `ZUNION 2abc a b` still finds two keys), as in Redis.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from replproxy.glob import stringmatch
from replproxy.keyspace.reads import SYNTAX
from replproxy.keyspace.util import option_word
from replproxy.resp import reply
from replproxy.resp.request import string2ll

__all__ = [
    "CommandSpec",
    "CommandTable",
    "KeySpec",
    "ResolveError",
    "command_command",
    "get_keys",
    "table_for",
]

# `addReplyFlagsForKeyArgs` prints key flags in this order (db.c CMD_KEY_*).
_KEY_FLAG_ORDER = ("RO", "RW", "OW", "RM", "access", "update", "insert", "delete", "not_key",
                   "incomplete", "variable_flags")

# --- the spec types -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One key spec as COMMAND INFO prints it (`keySpec` in server.h).

    begin_search "index" uses `index`; "keyword" uses `keyword` (lowercase) and `startfrom`;
    find_keys "range" uses `lastkey`, `keystep`, `limit`; "keynum" uses `keynumidx`,
    `firstkey`, `keystep`. "unknown" marks keys no spec can locate."""

    flags: tuple[str, ...]  # as the server prints them: "RO", "access", "not_key"...
    begin_search: Literal["index", "keyword", "unknown"]
    find_keys: Literal["range", "keynum", "unknown"]
    index: int = 0
    keyword: bytes = b""
    startfrom: int = 0
    lastkey: int = 0
    keystep: int = 1
    limit: int = 0
    keynumidx: int = 0
    firstkey: int = 0
    notes: str | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> KeySpec:
        bs, fk = d["begin_search"], d["find_keys"]
        bss, fks = bs["spec"], fk["spec"]
        return cls(
            flags=tuple(d["flags"]),
            begin_search=bs["type"],
            find_keys=fk["type"],
            index=bss.get("index", 0),
            keyword=bss.get("keyword", "").encode("latin-1").lower(),
            startfrom=bss.get("startfrom", 0),
            lastkey=fks.get("lastkey", 0),
            keystep=fks.get("keystep", 1),
            limit=fks.get("limit", 0),
            keynumidx=fks.get("keynumidx", 0),
            firstkey=fks.get("firstkey", 0),
            notes=d.get("notes"),
        )


@dataclass(frozen=True, slots=True, eq=False)
class CommandSpec:
    """One command or subcommand of the table, as its server reports it."""

    name: bytes  # lowercase full name: b"get", b"object|encoding"
    arity: int
    # Lowercase, as COMMAND INFO prints them ("write", "readonly", "stale"...). The server
    # hides may_replicate, protected, sentinel and only_sentinel, so they never appear here.
    flags: frozenset[str]
    first_key: int  # the legacy (first, last, step) range of COMMAND INFO
    last_key: int
    key_step: int
    acl_categories: tuple[str, ...]  # as printed: ("@read", "@string", "@fast")
    subcommands: Mapping[bytes, CommandSpec]  # by lowercase sub name (b"encoding")
    container: bytes | None  # b"object" for b"object|encoding"
    key_specs: tuple[KeySpec, ...] = ()
    tips: tuple[str, ...] = ()
    group: str = ""  # COMMAND DOCS group ("string", "server"...)
    since: str = ""
    doc_flags: tuple[str, ...] = ()  # ("deprecated",), ("syscmd",)
    # The native `*GetKeys` fallback of db.c, by name (see `_GETKEYS_PROCS`), or None.
    getkeys_proc: str | None = None

    @property
    def is_write(self) -> bool:
        return "write" in self.flags

    @property
    def is_readonly(self) -> bool:
        return "readonly" in self.flags

    @property
    def is_container(self) -> bool:
        return bool(self.subcommands)

    def __repr__(self) -> str:
        return f"CommandSpec({self.name.decode('latin-1')!r}, arity={self.arity})"


@dataclass(frozen=True, slots=True)
class ResolveError:
    """Why `resolve` refused a command: `msg` is the error reply text (no `-`, no CRLF)."""

    kind: Literal["unknown_command", "unknown_subcommand", "arity"]
    msg: bytes


# --- the table --------------------------------------------------------------------------------


class CommandTable:
    """The command table of one server kind ("redis" or "valkey"). Immutable once loaded."""

    _cache: ClassVar[dict[str, CommandTable]] = {}

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.server: str = data["server"]
        self.version: str = data["version"]
        meta: Mapping[str, Any] = data["meta"]
        # Raw entries, by full name and protocol: COMMAND INFO entry, COMMAND DOCS map.
        self._info: dict[int, dict[bytes, bytes]] = {2: {}, 3: {}}
        self._docs: dict[int, dict[bytes, bytes]] = {2: {}, 3: {}}
        self._help = {2: _latin1(data["help2"]), 3: _latin1(data["help3"])}
        # `<container> HELP` replies, by container name (b"client").
        self._helps = {k.encode("latin-1"): _latin1(v) for k, v in data.get("helps", {}).items()}
        self._top: dict[bytes, CommandSpec] = {}
        # resolve's index: name in lower and upper case -> (spec, its subcommand index).
        self._lookup: dict[bytes, tuple[CommandSpec, dict[bytes, CommandSpec] | None]] = {}
        for sname in sorted(data["commands"]):
            raw = data["commands"][sname]
            name = sname.encode("latin-1")
            sub_names: list[bytes] = []
            for proto in (2, 3):
                info = _latin1(raw[f"info{proto}"])
                docs = _latin1(raw[f"docs{proto}"])
                self._info[proto][name] = info
                self._docs[proto][name] = docs
                sub_info = _sub_info_entries(info)
                self._info[proto].update(sub_info)
                self._docs[proto].update(_sub_docs_entries(docs))
                sub_names = sorted(sub_info)
            subs: dict[bytes, CommandSpec] = {}
            for full in sub_names:
                sub = full.partition(b"|")[2]
                subs[sub] = _spec(full, meta[full.decode("latin-1")], {}, name)
            spec = _spec(name, meta[sname], subs, None)
            self._top[name] = spec
            index = None
            if subs:
                index = {}
                for sub, sspec in subs.items():
                    index[sub] = index[sub.upper()] = sspec
            self._lookup[name] = self._lookup[name.upper()] = (spec, index)
        self._all_info: dict[int, bytes] = {}
        self._all_docs: dict[int, bytes] = {}
        names: list[bytes] = []
        for top in self._top.values():
            names.append(top.name)
            names += [s.name for s in top.subcommands.values()]
        self._list = tuple(names)

    @classmethod
    def load(cls, server: str) -> CommandTable:
        """The table of "redis" or "valkey", read from the package data once per process."""
        table = cls._cache.get(server)
        if table is None:
            if server not in ("redis", "valkey", "redis-8.2"):
                raise ValueError(f"no command table for server {server!r}")
            path = resources.files("replproxy").joinpath("data", f"commands-{server}.json.gz")
            data = json.loads(gzip.decompress(path.read_bytes()))
            table = cls._cache[server] = cls(data)
        return table

    def __iter__(self) -> Iterator[CommandSpec]:
        return iter(self._top.values())

    def __len__(self) -> int:
        return len(self._top)

    def __contains__(self, name: object) -> bool:
        return name in self._top

    def get(self, name: bytes) -> CommandSpec | None:
        """A top-level command by its lowercase name."""
        return self._top.get(name)

    def lookup(self, fullname: bytes) -> CommandSpec | None:
        """`lookupCommandBySds`: "get" or "object|encoding", any case; a container by its own
        name; None for anything else (more than one `|`, a subcommand of a plain command...).
        """
        parts = fullname.lower().split(b"|")
        if len(parts) > 2 or not fullname:
            return None
        base = self._top.get(parts[0])
        if base is None or len(parts) == 1:
            return base
        return base.subcommands.get(parts[1])

    def find(self, argv: Sequence[bytes]) -> CommandSpec | None:
        """`lookupCommand`: the command or subcommand `argv` names (a container when no
        subcommand follows), or None. No arity check."""
        entry = self._lookup.get(argv[0].lower())
        if entry is None:
            return None
        spec, subs = entry
        if subs is not None and len(argv) > 1:
            return subs.get(argv[1].lower())
        return spec

    def resolve(self, argv: Sequence[bytes]) -> CommandSpec | ResolveError:
        """`processCommand`'s first checks: the command (or subcommand) `argv` names, or the
        exact error the server replies when it is unknown or has the wrong arity."""
        entry = self._lookup.get(argv[0])
        if entry is None:
            entry = self._lookup.get(argv[0].lower())
            if entry is None:
                return ResolveError("unknown_command", unknown_command_error(argv))
        spec, subs = entry
        n = len(argv)
        if subs is not None and n > 1:
            sub = subs.get(argv[1])
            if sub is None:
                sub = subs.get(argv[1].lower())
                if sub is None:
                    return ResolveError("unknown_subcommand", unknown_subcommand_error(argv))
            spec = sub
        arity = spec.arity
        if (arity > 0 and n != arity) or n < -arity:
            return ResolveError("arity", arity_error(spec))
        return spec

    # --- COMMAND replies ----------------------------------------------------------------------

    def info_entry(self, spec: CommandSpec | None, proto: int) -> bytes:
        """`addReplyCommandInfo`: the entry of one command, a null for None."""
        if spec is None:
            return reply.null(proto)
        return self._info[proto][spec.name]

    def docs_entry(self, spec: CommandSpec, proto: int) -> bytes:
        """`addReplyCommandDocs`: the documentation map of one command."""
        return self._docs[proto][spec.name]

    def all_info(self, proto: int) -> bytes:
        """`COMMAND` / `COMMAND INFO` without names."""
        out = self._all_info.get(proto)
        if out is None:
            entries = self._info[proto]
            out = self._all_info[proto] = reply.array([entries[n] for n in self._top])
        return out

    def all_docs(self, proto: int) -> bytes:
        """`COMMAND DOCS` without names."""
        out = self._all_docs.get(proto)
        if out is None:
            docs = self._docs[proto]
            out = self._all_docs[proto] = reply.map_len(len(self._top), proto) + b"".join(
                reply.bulk(n) + docs[n] for n in self._top
            )
        return out

    def help(self, proto: int) -> bytes:
        return self._help[proto]

    def subcommand_help(self, container: bytes) -> bytes | None:
        """The server's reply to `<container> HELP` (OBJECT HELP, CLIENT HELP...)."""
        return self._helps.get(container)

    def full_names(self) -> tuple[bytes, ...]:
        """Every command and subcommand name, each container followed by its subcommands
        (the walk of `COMMAND LIST`)."""
        return self._list


def _spec(name: bytes, m: Mapping[str, Any], subs: dict[bytes, CommandSpec],
          container: bytes | None) -> CommandSpec:
    return CommandSpec(
        name=name,
        arity=m["arity"],
        flags=frozenset(m["flags"]),
        first_key=m["first_key"],
        last_key=m["last_key"],
        key_step=m["key_step"],
        acl_categories=tuple(m["acl_categories"]),
        subcommands=MappingProxyType(subs),
        container=container,
        key_specs=tuple(KeySpec.from_json(k) for k in m["key_specs"]),
        tips=tuple(m["tips"]),
        group=m.get("group") or "",
        since=m.get("since") or "",
        doc_flags=tuple(m.get("doc_flags", ())),
        getkeys_proc=_GETKEYS_OF.get(name),
    )


def _latin1(s: str) -> bytes:
    return s.encode("latin-1")


def table_for(server_name: str, version: tuple[int, int, int] = (7, 0, 0)) -> CommandTable:
    """The table of the upstream's kind and version: Valkey 8.1's for Valkey, Redis 8.2's for
    Redis 8.x, Redis 7.0's for any other Redis."""
    if server_name.lower() == "valkey":
        return CommandTable.load("valkey")
    return CommandTable.load("redis-8.2" if version >= (8, 0, 0) else "redis")


# --- error texts ------------------------------------------------------------------------------


def _cstr(b: bytes, limit: int) -> bytes:
    """`%.<limit>s` of an sds: at most `limit` bytes, and nothing from the first NUL on."""
    b = b[:limit]
    nul = b.find(b"\0")
    return b if nul < 0 else b[:nul]


def _crlf_to_spaces(msg: bytes) -> bytes:
    if b"\r" in msg or b"\n" in msg:
        msg = msg.replace(b"\r", b" ").replace(b"\n", b" ")
    return msg


def unknown_command_error(argv: Sequence[bytes]) -> bytes:
    """`commandCheckExistence` for a name that is not a command."""
    args = b""
    for a in argv[1:]:
        if len(args) >= 128:
            break
        args += b"'" + _cstr(a, 128 - len(args)) + b"' "
    return _crlf_to_spaces(
        b"ERR unknown command '" + _cstr(argv[0], 128) + b"', with args beginning with: " + args
    )


def unknown_subcommand_error(argv: Sequence[bytes]) -> bytes:
    """`commandCheckExistence` for a container (OBJECT, CONFIG...) with an unknown subcommand."""
    return _crlf_to_spaces(
        b"ERR unknown subcommand '" + _cstr(argv[1], 128) + b"'. Try "
        + _cstr(argv[0], len(argv[0])).upper() + b" HELP."
    )


def arity_error(spec: CommandSpec) -> bytes:
    """`commandCheckArity`; on EXEC, `rejectCommand` aborts the transaction instead."""
    msg = b"wrong number of arguments for '%b' command" % spec.name
    if spec.name == b"exec":
        return b"EXECABORT Transaction discarded because of: " + msg
    return b"ERR " + msg


# --- raw entry surgery ------------------------------------------------------------------------


def _reply_end(buf: bytes, pos: int) -> int:
    """Where the (complete) reply at `pos` ends."""
    nl = buf.index(b"\r\n", pos)
    kind = buf[pos]
    after = nl + 2
    if kind in b"$=!":
        n = int(buf[pos + 1:nl])
        return after if n < 0 else after + n + 2
    if kind in b"*~>%|":
        n = int(buf[pos + 1:nl])
        if kind in b"%|":
            n *= 2
        for _ in range(max(n, 0)):
            after = _reply_end(buf, after)
        return _reply_end(buf, after) if kind == ord("|") else after
    return after


def _spans(buf: bytes, pos: int) -> list[tuple[int, int]]:
    """The (start, end) of each element of the aggregate at `pos` (a map's keys and values
    alternate)."""
    nl = buf.index(b"\r\n", pos)
    n = int(buf[pos + 1:nl])
    if buf[pos] == ord("%"):
        n *= 2
    out = []
    at = nl + 2
    for _ in range(n):
        end = _reply_end(buf, at)
        out.append((at, end))
        at = end
    return out


def _bulk_value(buf: bytes, span: tuple[int, int]) -> bytes:
    a, b = span
    return buf[buf.index(b"\r\n", a) + 2:b - 2]


def _sub_info_entries(info: bytes) -> dict[bytes, bytes]:
    """The subcommand entries inside a COMMAND INFO entry (its 10th element)."""
    subs_at = _spans(info, 0)[9][0]
    out = {}
    for a, b in _spans(info, subs_at):
        entry = info[a:b]
        out[_bulk_value(entry, _spans(entry, 0)[0])] = entry
    return out


def _sub_docs_entries(docs: bytes) -> dict[bytes, bytes]:
    """The subcommand documentation maps inside a COMMAND DOCS map (key "subcommands")."""
    spans = _spans(docs, 0)
    for i in range(0, len(spans), 2):
        if _bulk_value(docs, spans[i]) == b"subcommands":
            v = docs[spans[i + 1][0]:spans[i + 1][1]]
            inner = _spans(v, 0)
            return {
                _bulk_value(v, inner[j]): v[inner[j + 1][0]:inner[j + 1][1]]
                for j in range(0, len(inner), 2)
            }
    return {}


# --- key extraction ---------------------------------------------------------------------------

KeyRef = tuple[int, tuple[str, ...]]  # (argv position, key flags)
_NO_FLAGS: tuple[str, ...] = ()


def _c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _atoi(arg: bytes) -> int:
    """glibc atoi: (int) strtol(s, NULL, 10): leading blanks, a sign, digits; clamped to a
    long, then truncated to 32 bits."""
    s = option_word(arg)
    i, n = 0, len(s)
    while i < n and s[i] in b" \t\n\v\f\r":
        i += 1
    neg = False
    if i < n and s[i] in b"+-":
        neg = s[i] == ord("-")
        i += 1
    j = i
    while j < n and 48 <= s[j] <= 57:
        j += 1
    v = int(s[i:j]) if j > i else 0
    v = -v if neg else v
    return _c_int(max(-(2**63), min(v, 2**63 - 1)))


def _keys_from_specs(spec: CommandSpec, argv: Sequence[bytes]) -> list[KeyRef] | None:
    """`getKeysUsingKeySpecs` (GET_KEYSPEC_DEFAULT): None when a spec is invalid here."""
    argc = len(argv)
    keys: list[KeyRef] = []
    for ks in spec.key_specs:
        if "not_key" in ks.flags:
            continue
        if ks.begin_search == "index":
            first = ks.index
        elif ks.begin_search == "keyword":
            first = 0
            start = ks.startfrom if ks.startfrom > 0 else argc + ks.startfrom
            end = argc - 1 if ks.startfrom > 0 else 1
            step = 1 if start <= end else -1
            i = start
            while i != end:  # the last argument is never a keyword (it could not start keys)
                if i >= argc or i < 1:
                    break
                if option_word(argv[i]) == ks.keyword:
                    first = i + 1
                    break
                i += step
            if not first:
                continue
        else:
            return None
        if ks.find_keys == "range":
            step = ks.keystep
            if ks.lastkey >= 0:
                last = first + ks.lastkey
            elif not ks.limit:
                last = argc + ks.lastkey
            else:
                last = first + (_c_div(argc - first, ks.limit) + ks.lastkey)
        elif ks.find_keys == "keynum":
            step = ks.keystep
            at = first + ks.keynumidx
            if ks.keynumidx >= argc or at >= argc:
                return None
            numkeys = string2ll(argv[at])
            if numkeys is None or numkeys < 0:
                return None
            first += ks.firstkey
            last = first + _c_int(numkeys) - 1
        else:
            return None
        if last >= argc or last < first or first >= argc:
            return None
        keys += [(i, ks.flags) for i in range(first, last + 1, step)]
        if "incomplete" in ks.flags:
            return None
    return keys


def _c_int(v: int) -> int:
    """A long long cast to a C int."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _generic(store: int, count: int, first: int, step: int) -> Callable[[Sequence[bytes]],
                                                                       list[KeyRef]]:
    """`genericGetKeys`: CMD [destkey] numkeys key... (ZUNION, EVAL, LMPOP...)."""

    def getkeys(argv: Sequence[bytes]) -> list[KeyRef]:
        num = _atoi(argv[count])
        if num < 1 or num > _c_div(len(argv) - first, step):
            return []
        keys = [(first + i * step, _NO_FLAGS) for i in range(num)]
        if store:
            keys.append((store, _NO_FLAGS))
        return keys

    return getkeys


def _sort_ro_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    return [(1, ("RO", "access"))]


def _sort_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    """`sortGetKeys`: the sorted key, and the last STORE's key (LIMIT/GET/BY skip their
    arguments; STORE does not skip its own)."""
    keys: list[KeyRef] = [(1, ("RO", "access"))]
    store = 0
    argc = len(argv)
    i = 2
    while i < argc:
        w = option_word(argv[i])
        if w == b"limit":
            i += 2
        elif w == b"store" and i + 1 < argc:
            store = i + 1
        elif w in (b"get", b"by"):
            i += 1
        i += 1
    if store:
        keys.append((store, ("OW", "update")))
    return keys


def _migrate_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    """`migrateGetKeys`: argv[3], or everything after KEYS when argv[3] is empty."""
    first, num = 3, 1
    argc = len(argv)
    if argc > 6:
        i = 6
        while i < argc:
            w = option_word(argv[i])
            if w == b"keys":
                if argv[3]:
                    num = 0  # a syntax error for MIGRATE itself
                else:
                    first = i + 1
                    num = argc - first
                break
            i += {b"auth": 1, b"auth2": 2}.get(w, 0)
            i += 1
    return [(first + i, ("RW", "access", "delete")) for i in range(num)]


def _georadius_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    """`georadiusGetKeys`: the key, and the last STORE/STOREDIST key."""
    stored = -1
    argc = len(argv)
    i = 5
    while i < argc:
        if option_word(argv[i]) in (b"store", b"storedist") and i + 1 < argc:
            stored = i + 1
            i += 1
        i += 1
    keys = [(1, _NO_FLAGS)]
    if stored != -1:
        keys.append((stored, _NO_FLAGS))
    return keys


def _xread_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    """`xreadGetKeys`: the first half of what follows STREAMS, after known options."""
    argc = len(argv)
    streams = -1
    i = 1
    while i < argc:
        w = option_word(argv[i])
        if w in (b"block", b"count"):
            i += 1
        elif w == b"group":
            i += 2
        elif w == b"noack":
            pass
        elif w == b"streams":
            streams = i
            break
        else:
            break
        i += 1
    num = argc - streams - 1 if streams != -1 else 0
    if streams == -1 or num == 0 or num % 2:
        return []
    return [(i, _NO_FLAGS) for i in range(streams + 1, argc - num // 2)]


def _set_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    """`setGetKeys`: SET with GET reads the key too."""
    if any(option_word(a) == b"get" for a in argv[3:]):
        return [(1, ("RW", "access", "update"))]
    return [(1, ("OW", "update"))]


def _bitfield_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    """`bitfieldGetKeys`: read-only when only GET/OVERFLOW come before anything else."""
    readonly = True
    argc = len(argv)
    i = 2
    while i < argc:
        rem = argc - i - 1
        w = option_word(argv[i])
        if w == b"get" and rem >= 2:
            i += 2
        elif w in (b"set", b"incrby") and rem >= 3:
            readonly = False
            break
        elif w == b"overflow" and rem >= 1:
            i += 1
        else:
            readonly = False
            break
        i += 1
    return [(1, ("RO", "access") if readonly else ("RW", "access", "update"))]


_GETKEYS_PROCS: dict[str, Callable[[Sequence[bytes]], list[KeyRef]]] = {
    "sintercard": _generic(0, 1, 2, 1),
    "zunionInterDiffStore": _generic(1, 2, 3, 1),
    "zunionInterDiff": _generic(0, 1, 2, 1),
    "eval": _generic(0, 2, 3, 1),
    "function": _generic(0, 2, 3, 1),
    "lmpop": _generic(0, 1, 2, 1),
    "blmpop": _generic(0, 2, 3, 1),
    "zmpop": _generic(0, 1, 2, 1),
    "sortRO": _sort_ro_keys,
    "sort": _sort_keys,
    "migrate": _migrate_keys,
    "georadius": _georadius_keys,
    "xread": _xread_keys,
    "set": _set_keys,
    "bitfield": _bitfield_keys,
}

# Which command has which `<proc>GetKeys` (commands.c / commands.def: the same in Redis 7.0
# and Valkey 8.1). COMMAND INFO does not show it, so it is listed here.
_GETKEYS_OF: dict[bytes, str] = {
    b"bitfield": "bitfield", b"migrate": "migrate", b"sort": "sort", b"sort_ro": "sortRO",
    b"georadius": "georadius", b"georadiusbymember": "georadius",
    b"blmpop": "blmpop", b"bzmpop": "blmpop", b"lmpop": "lmpop", b"zmpop": "zmpop",
    b"eval": "eval", b"evalsha": "eval", b"eval_ro": "eval", b"evalsha_ro": "eval",
    b"fcall": "function", b"fcall_ro": "function", b"sintercard": "sintercard",
    b"zdiff": "zunionInterDiff", b"zinter": "zunionInterDiff", b"zintercard": "zunionInterDiff",
    b"zunion": "zunionInterDiff", b"zdiffstore": "zunionInterDiffStore",
    b"zinterstore": "zunionInterDiffStore", b"zunionstore": "zunionInterDiffStore",
    b"xread": "xread", b"xreadgroup": "xread", b"set": "set",
}


def has_keys(spec: CommandSpec) -> bool:
    """`doesCommandHaveKeys`: a fallback function, or a spec that is not `not_key`."""
    return spec.getkeys_proc is not None or _has_keyspec(spec.key_specs)


def _has_keyspec(specs: Sequence[KeySpec]) -> bool:
    """Whether a key spec finds keys (one that is not `not_key`)."""
    return any("not_key" not in ks.flags for ks in specs)


def get_keys(spec: CommandSpec, argv: Sequence[bytes]) -> list[KeyRef]:
    """`getKeysFromCommandWithSpecs`: the (position, flags) of each key in `argv` (argv[0]
    is the command name; for a subcommand, argv[1] its name; the arity already checked).
    Empty when the arguments are not valid for the key specs and the fallback finds nothing
    either. The fallbacks of some commands report no flags, as in Redis."""
    specs = spec.key_specs
    has_keyspec = _has_keyspec(specs)
    varflags = any("variable_flags" in ks.flags for ks in specs)
    if has_keyspec and not varflags:
        keys = _keys_from_specs(spec, argv)
        if keys is not None:
            return keys
    if spec.getkeys_proc is not None:
        return _GETKEYS_PROCS[spec.getkeys_proc](argv)
    return []


def keys_from_command(spec: CommandSpec, argv: Sequence[bytes]) -> list[int]:
    """`getKeysFromCommand`: the key positions cluster routing (`getNodeByQuery`) hashes:
    the command's own `*GetKeys` when it has one, else the legacy (first, last, step) range
    of COMMAND INFO, which, unlike the key specs, includes the channels of SSUBSCRIBE and
    SPUBLISH. No keys when a variadic command is too short for its range."""
    if spec.getkeys_proc is not None:
        return [pos for pos, _ in _GETKEYS_PROCS[spec.getkeys_proc](argv)]
    first = spec.first_key
    if first <= 0:
        return []
    argc = len(argv)
    last = spec.last_key if spec.last_key >= 0 else argc + spec.last_key
    if last >= argc:
        return []  # only a variadic command gets here (the arity check passed)
    return list(range(first, last + 1, spec.key_step or 1))


# --- the COMMAND command ----------------------------------------------------------------------


def command_command(table: CommandTable, argv: Sequence[bytes], proto: int) -> bytes:
    """The whole COMMAND command (argv[0] is "command" in any case): the encoded reply."""
    r = table.resolve(argv)
    if isinstance(r, ResolveError):
        return reply.error(r.msg)
    name = r.name
    if name == b"command":
        return table.all_info(proto)
    if name == b"command|count":
        return reply.integer(len(table))
    if name == b"command|info":
        return command_info(table, argv[2:], proto)
    if name == b"command|docs":
        return command_docs(table, argv[2:], proto)
    if name == b"command|list":
        return command_list(table, argv[2:])
    if name == b"command|getkeys":
        return command_getkeys(table, argv[2:], proto, with_flags=False)
    if name == b"command|getkeysandflags":
        return command_getkeys(table, argv[2:], proto, with_flags=True)
    if name == b"command|help":
        return table.help(proto)
    raise AssertionError(f"COMMAND subcommand {name!r} has no implementation")


def command_info(table: CommandTable, names: Sequence[bytes], proto: int) -> bytes:
    """COMMAND INFO [name ...]: one entry per name, in order, null for unknown names."""
    if not names:
        return table.all_info(proto)
    return reply.array([table.info_entry(table.lookup(n), proto) for n in names])


def command_docs(table: CommandTable, names: Sequence[bytes], proto: int) -> bytes:
    """COMMAND DOCS [name ...]: a map of the known names (unknown ones are skipped)."""
    if not names:
        return table.all_docs(proto)
    parts = []
    for n in names:
        spec = table.lookup(n)
        if spec is not None:
            parts.append(reply.bulk(spec.name) + table.docs_entry(spec, proto))
    return reply.map_len(len(parts), proto) + b"".join(parts)


def command_list(table: CommandTable, args: Sequence[bytes]) -> bytes:
    """COMMAND LIST [FILTERBY MODULE m | ACLCAT c | PATTERN p]: PATTERN is a case-insensitive
    glob over full names ("object|*"); MODULE lists nothing (no modules upstream)."""
    kind = None
    arg = b""
    i = 0
    while i < len(args):
        if option_word(args[i]) == b"filterby" and len(args) - 1 - i == 2:
            kind = option_word(args[i + 1])
            if kind not in (b"module", b"aclcat", b"pattern"):
                return reply.error(SYNTAX)
            arg = args[i + 2]
            i += 3
        else:
            return reply.error(SYNTAX)
    names: Sequence[bytes] = table.full_names()
    if kind == b"module":
        names = []  # no modules upstream
    elif kind == b"aclcat":
        # ACLGetCommandCategoryFlagByName (strcasecmp): an unknown category lists nothing.
        cat = "@" + option_word(arg).decode("latin-1")
        names = [n for n in names if cat in _lower_categories(table, n)]
    elif kind == b"pattern":
        names = [n for n in names if stringmatch(arg, n, nocase=True)]
    return reply.bulk_array(names)


def _lower_categories(table: CommandTable, fullname: bytes) -> tuple[str, ...]:
    spec = table.lookup(fullname)
    assert spec is not None
    return tuple(c.lower() for c in spec.acl_categories)


def command_getkeys(table: CommandTable, cmd_argv: Sequence[bytes], proto: int,
                    with_flags: bool) -> bytes:
    """COMMAND GETKEYS / GETKEYSANDFLAGS <full command> (`getKeysSubcommandImpl`)."""
    spec = table.find(cmd_argv) if cmd_argv else None
    if spec is None:
        return reply.error(b"ERR Invalid command specified")
    if not has_keys(spec):
        return reply.error(b"ERR The command has no key arguments")
    n, arity = len(cmd_argv), spec.arity
    if (arity > 0 and n != arity) or n < -arity:
        return reply.error(b"ERR Invalid number of arguments specified for command")
    keys = get_keys(spec, cmd_argv)
    if not keys:
        if "no_mandatory_keys" in spec.flags:
            return reply.array_len(0)
        return reply.error(b"ERR Invalid arguments specified for command")
    if not with_flags:
        return reply.bulk_array([cmd_argv[pos] for pos, _ in keys])
    return reply.array([
        b"*2\r\n" + reply.bulk(cmd_argv[pos]) + _key_flags_reply(flags, proto)
        for pos, flags in keys
    ])


def _key_flags_reply(flags: tuple[str, ...], proto: int) -> bytes:
    """`addReplyFlagsForKeyArgs`: a set of status strings in the server's flag order."""
    ordered = [f for f in _KEY_FLAG_ORDER if f in flags]
    ordered += [f for f in flags if f not in _KEY_FLAG_ORDER]
    return reply.set_len(len(ordered), proto) + b"".join(b"+%s\r\n" % f.encode()
                                                        for f in ordered)
