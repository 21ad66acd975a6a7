"""The spec types of the command table: one command (`CommandSpec`), one key spec
(`KeySpec`) and a refusal of `resolve` (`ResolveError`).

Plain frozen data, shared by the table, the key extraction and the replies; nothing here
reads data files or builds replies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["CommandSpec", "KeySpec", "ResolveError"]


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
