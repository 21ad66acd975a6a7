"""Function libraries: their Lua state and the functions they register (functions.c,
function_lua.c).

The master's libraries reach the relay as their source (`Keyspace.functions`, from the
snapshot's FUNCTION2 records and from FUNCTION LOAD/DELETE/FLUSH/RESTORE in the stream).
A replica compiles each one as it arrives, running its code so that it registers its
functions with `redis.register_function`; this module does the same, lazily, by comparing
its compiled set with `Keyspace.functions` before each use. It owns the function engine's
Lua state and the name -> function index; it never changes `Keyspace.functions`.

FUNCTION DUMP's payload is what the RDB writer makes of the libraries (FUNCTION2 records,
LZF-compressed past 20 bytes as `rdbcompression yes` does) plus the master's RDB version
and a CRC64, as `functionDumpCommand` builds it.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from replproxy.dialect import MasterDialect
from replproxy.rdb import encode as enc
from replproxy.rdb.model import RDB_OPCODE_FUNCTION2, Function
from replproxy.rdb.writer import CRC64
from replproxy.resp.request import split_args
from replproxy.scripting.engine import EngineHost, FunctionInfo, LuaEngine
from replproxy.scripting.libs import Lrand48

log = logging.getLogger("replproxy.scripting")

ENGINE_NAME = b"LUA"


@dataclass(frozen=True)
class Library:
    name: bytes
    code: bytes  # as FUNCTION LIST WITHCODE shows it, shebang included
    functions: tuple[FunctionInfo, ...]


def library_code(fn: Function) -> bytes:
    """A library's source with its shebang (a 7.0 release candidate's record keeps the
    body alone, as the RDB writer knows)."""
    code = fn.code
    if not code.startswith(b"#!") and fn.name and fn.engine:
        code = b"#!%s name=%s\n%s" % (fn.engine.lower(), fn.name, code)
    return code


def library_metadata(code: bytes) -> tuple[bytes, bytes, bytes] | None:
    """functionExtractLibMetaData: (engine, name, code after the shebang line, its line
    feed kept), or None when the shebang does not parse (the master accepted it, so this
    is not expected)."""
    if not code.startswith(b"#!"):
        return None
    end = code.find(b"\n")
    if end < 0:
        return None
    parts = split_args(code[:end])
    if not parts:
        return None
    engine = parts[0][2:]
    name = None
    for part in parts[1:]:
        if part[:5].lower() == b"name=" and name is None:
            name = part[5:]
        else:
            return None
    if name is None:
        return None
    return engine, name, code[end:]


class FunctionLibraries:
    def __init__(self, dialect: MasterDialect, host: EngineHost, prng: Lrand48) -> None:
        self.dialect = dialect
        self._host = host
        self._prng = prng
        self.engine = LuaEngine("function", dialect, host, prng)
        self.libraries: dict[bytes, Library] = {}
        # Function name (lowercase: the functions dict is case-insensitive) -> library.
        self.functions: dict[bytes, tuple[Library, FunctionInfo]] = {}
        self._seen: dict[bytes, Function] = {}

    def sync(self, source: Mapping[bytes, Function]) -> None:
        """Compile what the master's libraries became since the last look."""
        if source.keys() == self._seen.keys() and all(
            source[k] is v for k, v in self._seen.items()
        ):
            return
        for name in list(self.libraries):
            if name not in source or source[name] is not self._seen.get(name):
                self._drop(name)
        for name, fn in source.items():
            if name not in self.libraries and (
                name not in self._seen or self._seen[name] is not fn
            ):
                self._load(name, library_code(fn))
        self._seen = dict(source)

    def _drop(self, name: bytes) -> None:
        lib = self.libraries.pop(name)
        for f in lib.functions:
            self.functions.pop(f.name.lower(), None)
        self.engine.drop_library(name)

    def _load(self, name: bytes, code: bytes) -> None:
        meta = library_metadata(code)
        if meta is None or meta[0].lower() != b"lua":
            log.warning(
                "function library %r: cannot read its shebang; its functions are "
                "not callable on the relay",
                name,
            )
            return
        res = self.engine.load_library(name, meta[2])
        if isinstance(res, bytes):
            log.warning(
                "function library %r does not load on the relay (%s); its "
                "functions are not callable",
                name,
                res.decode("utf-8", "replace"),
            )
            return
        lib = Library(name, code, tuple(res))
        self.libraries[name] = lib
        for f in lib.functions:
            self.functions[f.name.lower()] = (lib, f)

    def find(self, name: bytes) -> tuple[Library, FunctionInfo] | None:
        z = name.find(b"\0")
        return self.functions.get((name if z < 0 else name[:z]).lower())

    @staticmethod
    def dump(source: Mapping[bytes, Function], rdb_version: int) -> bytes:
        """functionDumpCommand's payload: every library of the master, compiled here or
        not."""
        out = bytearray()
        for fn in source.values():
            out += bytes((RDB_OPCODE_FUNCTION2,)) + enc.rdb_string(library_code(fn), True)
        out += struct.pack("<H", rdb_version)
        out += struct.pack("<Q", CRC64.calc(bytes(out)))
        return bytes(out)
