"""The upstream's command table, as data: load, lookup, `resolve` (the first checks of
`processCommand`) and the raw COMMAND INFO / DOCS entries of every command.

Sans-I/O: the only I/O is reading a package data file once per table. It never executes
commands, extracts keys (`keyspecs`) or assembles COMMAND replies (`replies`).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from importlib import resources
from types import MappingProxyType
from typing import Any, ClassVar

from replproxy.commandtable.errors import (
    arity_error,
    legacy_arity_error,
    legacy_subcommand_error,
    legacy_unknown_command_error,
    unknown_command_error,
    unknown_subcommand_error,
)
from replproxy.commandtable.keyspecs import getkeys_of
from replproxy.commandtable.spec import CommandSpec, KeySpec, ResolveError
from replproxy.commandtable.versions import ALL_STEMS, choose_table, keynum_mode
from replproxy.resp import reply

__all__ = ["CommandTable", "table_for"]

log = logging.getLogger(__name__)


# Subcommands whose argument count 7.0 changed: before, CONFIG GET and SET take exactly one
# parameter (`configCommand`'s `c->argc == 3` / `== 4`).
_LEGACY_ARITY = {b"config": {b"get": 3, b"set": 4}}

# Containers whose handler reproduces the container's own parsing before 7.0, where it
# differs from a plain subcommand lookup (XINFO looks its key up before checking the
# subcommand: `xinfoCommand`).
_SELF_PARSED = frozenset([b"xinfo"])


class CommandTable:
    """The command table of one server kind ("redis" or "valkey"). Immutable once loaded."""

    _cache: ClassVar[dict[str, CommandTable]] = {}

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.server: str = data["server"]
        self.version: str = data["version"]
        # Before Redis 7.0: no subcommands, key specs or COMMAND DOCS (`replies.legacy_*`).
        self.legacy: bool = bool(data.get("legacy"))
        # RESP3 (HELLO) exists from Redis 6.0; a table without it answers RESP2 only.
        self.resp3: bool = "help3" in data
        protos = (2, 3) if self.resp3 else (2,)
        major, minor, patch = (int(x) for x in self.version.split(".")[:3])
        # How COMMAND GETKEYS reads numkeys in this version (`keyspecs.KeynumMode`).
        self.keynum: str = keynum_mode(self.server, (major, minor, patch))
        meta: Mapping[str, Any] = data["meta"]
        # Which command has which `*GetKeys` function in this version.
        procs = getkeys_of(self.legacy, major)
        # Raw entries, by full name and protocol: COMMAND INFO entry, COMMAND DOCS map.
        self._info: dict[int, dict[bytes, bytes]] = {2: {}, 3: {}}
        self._docs: dict[int, dict[bytes, bytes]] = {2: {}, 3: {}}
        self._help = {p: _latin1(data[f"help{p}"]) for p in protos}
        # `<container> HELP` replies, by container name (b"client").
        self._helps = {k.encode("latin-1"): _latin1(v) for k, v in data.get("helps", {}).items()}
        # Pre-7.0: each container's reply to `<container> <probe>` (errors.legacy_subcommand).
        self._probe: bytes = _latin1(data.get("probe", ""))
        self._sub_errors = {
            k.encode("latin-1"): _latin1(v) for k, v in data.get("subcommand_errors", {}).items()
        }
        self._top: dict[bytes, CommandSpec] = {}
        self._shown: dict[bytes, bytes] = {}
        # resolve's index: name in lower and upper case -> (spec, its subcommand index).
        self._lookup: dict[bytes, tuple[CommandSpec, dict[bytes, CommandSpec] | None]] = {}
        # Only a container's entries hold subcommand entries (each has its own `meta`): the
        # others skip the walk of their raw entries, most of a full sync's table load.
        containers = {k.partition("|")[0].lower() for k in meta if "|" in k}
        for sname in sorted(data["commands"]):
            raw = data["commands"][sname]
            shown = sname.encode("latin-1")
            # Module commands keep their registered case (Redis 8's "VADD"): the table is
            # indexed in lowercase like `lookupCommand`, and prints the name as registered.
            name = shown.lower()
            if name != shown:
                self._shown[name] = shown
            sub_names: list[bytes] = []
            for proto in protos:
                info = _latin1(raw[f"info{proto}"])
                self._info[proto][name] = info
                if self.legacy:
                    continue
                docs = _latin1(raw[f"docs{proto}"])
                self._docs[proto][name] = docs
                if sname.lower() not in containers:
                    continue
                sub_info = _sub_info_entries(info)
                self._info[proto].update(sub_info)
                self._docs[proto].update(_sub_docs_entries(docs))
                sub_names = sorted(sub_info)
            subs: dict[bytes, CommandSpec] = {}
            for full in sub_names:
                sub = full.partition(b"|")[2]
                subs[sub] = _spec(full, meta[full.decode("latin-1")], {}, name, procs)
            if self.legacy:
                subs = self._routing_subcommands(name, meta[sname], procs)
            spec = _spec(name, meta[sname], subs, None, procs, self._implied_flags(name))
            if self.legacy and name == b"auth" and spec.arity == 2:
                # Redis 5.0's AUTH takes only a password; the relay's users (--aclfile) are
                # its own on every master, so `AUTH user pass` stays possible (COMMAND INFO
                # still prints 5.0's arity: that is the raw entry).
                spec = replace(spec, arity=-2)
            self._top[name] = spec
            index = None
            if subs:
                index = {}
                for sub, sspec in subs.items():
                    index[sub] = index[sub.upper()] = sspec
            self._lookup[name] = self._lookup[name.upper()] = (spec, index)
        if not self.resp3:
            self._info[3] = self._info[2]
            self._help[3] = self._help[2]
        self._all_info: dict[int, bytes] = {}
        self._all_docs: dict[int, bytes] = {}
        names: list[bytes] = []
        for top in self._top.values():
            names.append(self.shown(top.name))
            if not self.legacy:
                names += [s.name for s in top.subcommands.values()]
        self._list = tuple(names)

    def _implied_flags(self, name: bytes) -> frozenset[str]:
        """Before 7.0 `processCommand` lets AUTH (and from 6.0 HELLO) through without
        authentication by name, not by a flag: say it with the flag 7.0 uses."""
        if self.legacy and name in (b"auth", b"hello"):
            return frozenset(("no_auth",))
        return frozenset()

    def _routing_subcommands(
        self, name: bytes, m: Mapping[str, Any], procs: Mapping[bytes, str]
    ) -> dict[bytes, CommandSpec]:
        """Before 7.0 a container (OBJECT, CLIENT...) parses its subcommand itself: the
        table has no subcommands to print. So that dispatch still reaches replproxy's
        per-subcommand handlers, a legacy container gets 7.0's subcommand specs (arity,
        flags) for the subcommands ITS version lists in `<container> HELP`; they are never
        shown by COMMAND, and an unknown one gets this version's own error text.

        For everything the version decides about the whole command, a routing subcommand
        is its container: its ACL categories and its keys (the container's (first, last,
        step) range and `*GetKeys` function, no key specs), so cluster routing and the ACL
        find the keys this version finds (`keys_from_command`), never 7.0's."""
        if name not in self._sub_errors or name == b"command":
            # COMMAND's own parsing (`replies.legacy_command_command`) answers every form.
            return {}
        modern = CommandTable.load("redis-7.0").get(name)
        helptext = self._helps.get(name)
        if modern is None or not modern.subcommands or helptext is None:
            return {}
        listed = _help_subcommands(helptext) | {b"help"}  # 5.0's HELP does not list itself
        subs = {
            sub: replace(
                spec,
                first_key=m["first_key"],
                last_key=m["last_key"],
                key_step=m["key_step"],
                acl_categories=tuple(m["acl_categories"]),
                key_specs=(),
                getkeys_proc=procs.get(name),
            )
            for sub, spec in modern.subcommands.items()
            if sub in listed
        }
        for sub, arity in _LEGACY_ARITY.get(name, {}).items():
            if sub in subs:
                subs[sub] = replace(subs[sub], arity=arity)
        return subs

    @classmethod
    def load(cls, stem: str) -> CommandTable:
        """The table `commands-<stem>.json.gz` ("redis-7.4", "valkey-8.1": see
        `versions.TABLES`), read from the package data once per process."""
        table = cls._cache.get(stem)
        if table is None:
            if stem not in ALL_STEMS:
                raise ValueError(f"no command table {stem!r}")
            path = resources.files("replproxy").joinpath("data", f"commands-{stem}.json.gz")
            data = json.loads(gzip.decompress(path.read_bytes()))
            table = cls._cache[stem] = cls(data)
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
                if self.legacy:
                    return ResolveError("unknown_command", legacy_unknown_command_error(argv))
                return ResolveError("unknown_command", unknown_command_error(argv))
        spec, subs = entry
        n = len(argv)
        if self.legacy:
            return self._resolve_legacy(argv, spec, subs)
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

    def needs_resolve(self, spec: CommandSpec) -> bool:
        """Whether dispatch must go through `resolve` for this command even when the name
        and arity match: a container (its subcommand decides), and before 7.0 any command
        that parses a subcommand itself (CLUSTER, COMMAND...)."""
        return (
            bool(spec.subcommands)
            or spec.container is not None
            or (self.legacy and spec.name in self._sub_errors)
        )

    def _resolve_legacy(
        self, argv: Sequence[bytes], spec: CommandSpec, subs: dict[bytes, CommandSpec] | None
    ) -> CommandSpec | ResolveError:
        """Before 7.0: the arity of the command itself first (`processCommand`), then the
        container's own parsing, which answers an unknown subcommand and a subcommand's
        wrong argument count with the same text (`addReplySubcommandSyntaxError`)."""
        n = len(argv)
        arity = spec.arity
        if (arity > 0 and n != arity) or n < -arity:
            return ResolveError("arity", legacy_arity_error(spec, self.version))
        if n < 2 or "write" in spec.flags or spec.name in _SELF_PARSED:
            # A write container (XGROUP) is refused on a replica before it parses anything;
            # XINFO's handler parses the rest as that version's own code does.
            return spec
        captured = self._sub_errors.get(spec.name)
        if captured is not None and self._probe not in captured:
            # A container that answers the same to everything here (CLUSTER without
            # cluster support) never reaches its subcommands.
            return ResolveError(
                "unknown_subcommand", legacy_subcommand_error(captured, self._probe, argv)
            )
        if subs is None:
            return spec  # COMMAND: its handler parses the rest
        sub = subs.get(argv[1]) or subs.get(argv[1].lower())
        if sub is not None:
            arity = sub.arity
            if not ((arity > 0 and n != arity) or n < -arity):
                return sub
        return ResolveError("unknown_subcommand", self.legacy_subcommand_error(argv))

    def legacy_subcommand_error(self, argv: Sequence[bytes]) -> bytes:
        """This version's reply to a container with an unknown subcommand: the captured
        reply to the probe, with the client's subcommand in its place."""
        return legacy_subcommand_error(self._sub_errors[argv[0].lower()], self._probe, argv)

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
                reply.bulk(self.shown(n)) + docs[n] for n in self._top
            )
        return out

    def help(self, proto: int) -> bytes:
        return self._help[proto]

    def subcommand_help(self, container: bytes) -> bytes | None:
        """The server's reply to `<container> HELP` (OBJECT HELP, CLIENT HELP...)."""
        return self._helps.get(container)

    def shown(self, name: bytes) -> bytes:
        """A command's name as the server prints it (a module command's own case)."""
        return self._shown.get(name, name)

    def full_names(self) -> tuple[bytes, ...]:
        """Every command and subcommand name, each container followed by its subcommands
        (the walk of `COMMAND LIST`)."""
        return self._list


def _spec(
    name: bytes,
    m: Mapping[str, Any],
    subs: dict[bytes, CommandSpec],
    container: bytes | None,
    procs: Mapping[bytes, str],
    implied_flags: frozenset[str] = frozenset(),
) -> CommandSpec:
    return CommandSpec(
        name=name,
        arity=m["arity"],
        flags=frozenset(m["flags"]) | implied_flags,
        first_key=m["first_key"],
        last_key=m["last_key"],
        key_step=m["key_step"],
        acl_categories=tuple(m["acl_categories"]),
        subcommands=MappingProxyType(subs),
        container=container,
        key_specs=tuple(KeySpec.from_json(k) for k in m.get("key_specs", ())),
        tips=tuple(m.get("tips", ())),
        group=m.get("group") or "",
        since=m.get("since") or "",
        doc_flags=tuple(m.get("doc_flags", ())),
        getkeys_proc=procs.get(name),
    )


def _latin1(s: str) -> bytes:
    return s.encode("latin-1")


def _help_subcommands(helptext: bytes) -> set[bytes]:
    """The subcommand names a `<container> HELP` reply lists: the first word of each line
    that is not indented (5.0's "ENCODING <key> -- ..." and 6.2's "ENCODING <key>")."""
    names = set()
    for line in helptext.split(b"\r\n")[2:]:  # the array header and the title line
        if line.startswith(b"+") and line[1:2] not in (b" ", b"(", b""):
            names.add(line[1:].split(b" ", 1)[0].lower())
    return names


_warned: set[tuple[str, tuple[int, int, int]]] = set()


def table_for(server_name: str, version: tuple[int, int, int] = (7, 0, 0)) -> CommandTable:
    """The table of the upstream's kind and version (`versions.choose_table`); a version
    without a table of its own line is logged once, with what may differ."""
    choice = choose_table(server_name, version)
    if choice.warning is not None and (choice.stem, version) not in _warned:
        _warned.add((choice.stem, version))
        log.warning("%s", choice.warning)
    return CommandTable.load(choice.stem)


# --- raw entry surgery ------------------------------------------------------------------------


def _reply_end(buf: bytes, pos: int) -> int:
    """Where the (complete) reply at `pos` ends."""
    nl = buf.index(b"\r\n", pos)
    kind = buf[pos]
    after = nl + 2
    if kind in b"$=!":
        n = int(buf[pos + 1 : nl])
        return after if n < 0 else after + n + 2
    if kind in b"*~>%|":
        n = int(buf[pos + 1 : nl])
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
    n = int(buf[pos + 1 : nl])
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
    return buf[buf.index(b"\r\n", a) + 2 : b - 2]


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
            v = docs[spans[i + 1][0] : spans[i + 1][1]]
            inner = _spans(v, 0)
            return {
                _bulk_value(v, inner[j]): v[inner[j + 1][0] : inner[j + 1][1]]
                for j in range(0, len(inner), 2)
            }
    return {}
