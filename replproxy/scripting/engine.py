"""One Lua 5.1 state set up as Redis's Lua environment (script_lua.c, function_lua.c).

This module owns a `lupa.lua51.LuaRuntime`: it loads `lua/env.lua` (the sandbox, the
`redis` API, the RESP conversions, math.random, bit and struct) with `lua/cjson.lua` and
`lua/cmsgpack.lua`, and drives it: compile a script or a library, run one with its keys
and arguments, get back the reply bytes or the error's parts. It knows nothing about
clients, the script cache or the command table: the `EngineHost` it is given runs
`redis.call`, decides about the busy hook and logs. Sans-I/O: no sockets, no clock.

Two flavours, as Redis keeps two Lua states: "eval" (EVAL scripts; KEYS/ARGV globals,
`__redis__err__handler`, redis.breakpoint/debug/replicate_commands) and "function"
(libraries: FUNCTION LOAD runs a library's code with only `redis.register_function`, `log`
and the versions in its globals; FCALL gets keys and args as arguments).

Lua values never reach Python (and Python objects never reach Lua) except through the host
callbacks, which take and return bytes, numbers, booleans and None and never raise into
Lua: a script cannot get hold of a Python object (attribute access is refused as well).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal, Protocol

import lupa.lua51 as lua51

from replproxy.dialect import MasterDialect
from replproxy.resp.reply import format_double
from replproxy.scripting import libs

log = logging.getLogger("replproxy.scripting")

Flavour = Literal["eval", "function"]

# LL_DEBUG .. LL_WARNING -> Python logging.
_LOG_LEVELS = (logging.DEBUG, logging.DEBUG, logging.INFO, logging.WARNING)


class EngineHost(Protocol):
    """What the engine asks of the scripting layer while a script runs."""

    def call(self, resp: int, argv: list[bytes]) -> tuple[int, bytes]:
        """`redis.call`/`pcall` (scriptCall): (0, the RESP reply in protocol `resp`) or
        (1, the error text for luaPushError) when the command may not run."""

    def acl_check(self, argv: list[bytes]) -> bool | None:
        """`redis.acl_check_cmd`: None for an unknown command."""

    def interrupt(self) -> bool:
        """The count hook (every 100,000 instructions while busy-reply-threshold > 0):
        True once the script is to be killed."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A script's value, as the RESP reply its caller gets."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ScriptError:
    """A script that raised: Redis's `errorInfo` (msg, source, line; None when absent), or
    `raw` for an error object that is not a table (out of memory, error in the handler)."""

    msg: bytes | None = None
    source: bytes | None = None
    line: bytes | None = None
    raw: bytes | None = None


Outcome = Reply | ScriptError


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """One function a library registered."""

    name: bytes
    description: bytes | None
    flags: int  # SCRIPT_FLAG_* bits, scripts_flags_def order


def _deny_attributes(obj: object, name: object, is_setting: bool) -> object:
    raise AttributeError("no Python attribute access from Lua")


def _source(name: str) -> bytes:
    return resources.files("replproxy.scripting").joinpath("lua", name).read_bytes()


def _version_num(v: tuple[int, int, int]) -> int:
    return (v[0] << 16) | (v[1] << 8) | v[2]


def engine_config(flavour: Flavour, dialect: MasterDialect) -> dict[bytes, Any]:
    """The dialect as env.lua reads it: texts and features of the master's version."""
    valkey = dialect.valkey
    api = "server" if valkey else "redis"
    if valkey:
        versions: list[tuple[bytes, object]] = [
            (b"REDIS_VERSION_NUM", _version_num((7, 2, 4))),
            (b"REDIS_VERSION", b"7.2.4"),
            (b"VALKEY_VERSION_NUM", _version_num(dialect.version)),
            (b"VALKEY_VERSION", dialect.version_text.encode()),
            (b"SERVER_NAME", b"valkey"),
        ]
    else:
        versions = [
            (b"REDIS_VERSION_NUM", _version_num(dialect.version)),
            (b"REDIS_VERSION", dialect.version_text.encode()),
        ]
    return {
        b"flavour": flavour.encode(),
        b"valkey": valkey,
        b"has_os": dialect.lua_os_clock,
        b"double_style": b"shortest" if dialect.shortest_doubles else b"g17",
        b"arg_style": {"g17": b"g17", "fpconv": b"fpconv", "integer": b"ll"}[
            dialect.lua_number_args
        ],
        b"version_fields": versions,
        b"msg_no_args": (
            b"Please specify at least one argument for this call"
            if valkey
            else b"Please specify at least one argument for this redis lib call"
        ),
        b"msg_bad_arg": (
            b"Command arguments must be strings or integers"
            if valkey
            else b"Lua redis lib command arguments must be strings or integers"
        ),
        b"msg_log_arity": b"%s.log() requires two arguments or more." % api.encode(),
        b"msg_log_level": (
            b"Invalid log level." if dialect.lua_log_level_text else b"Invalid debug level."
        ),
        b"msg_set_repl_arity": b"%s.set_repl() requires %s."
        % (
            api.encode(),
            b"one argument" if dialect.lua_set_repl_one_argument else b"two arguments",
        ),
        b"msg_setresp_arity": b"%s.setresp() requires one argument." % api.encode(),
        b"msg_acl_invalid": b"Invalid command passed to %s.acl_check_cmd()" % api.encode(),
        # luaMaskCountHook's error: Valkey names the KILL command of the engine's kind.
        b"msg_killed": (
            (
                b"Script killed by user with SCRIPT KILL."
                if flavour == "eval"
                else b"Script killed by user with FUNCTION KILL."
            )
            if valkey
            else b"Script killed by user with SCRIPT KILL..."
        ),
        b"cmsgpack_copyright": (
            b"Copyright (C) 2012, Redis Ltd."
            if valkey
            else b"Copyright (C) 2012, Salvatore Sanfilippo"
        ),
    }


class LuaEngine:
    """One Lua state (Redis's `lua_State` of the eval or the function engine)."""

    def __init__(
        self, flavour: Flavour, dialect: MasterDialect, host: EngineHost, prng: libs.Lrand48
    ) -> None:
        self.flavour = flavour
        self.dialect = dialect
        self._host = host
        self._prng = prng
        rt = lua51.LuaRuntime(
            encoding=None,
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            attribute_filter=_deny_attributes,
        )
        self._rt = rt
        g = rt.globals()
        self._loadstring = g.loadstring
        self._dump = rt.eval("string.dump")
        self._tonumber = g.tonumber
        # luaMemory: the state's heap as Lua counts it (lupa's own counter needs a memory cap).
        self._gc_count = g.collectgarbage
        # Nothing of lupa's own reaches scripts (their globals are a separate table), but
        # leave the Python bridge nowhere in the state all the same.
        g.python = None
        struct_impl = libs.Struct(self._lua_tonumber)
        host_fns = {
            b"call": self._call,
            b"acl_check": self._acl_check,
            b"interrupt": self._interrupt,
            b"log": self._log,
            b"rand": self._rand,
            b"srand": self._srand,
            b"sha1hex": libs.sha1hex,
            b"fmt_double": self._fmt_double,
            b"fpconv": libs.fpconv_arg,
            b"patch_tailcalls": libs.patch_tailcalls,
            b"bit_barg": libs.bit_barg,
            b"bitop": libs.bitop,
            b"bit_tohex": libs.bit_tohex,
            b"mp_double": libs.mp_double,
            b"mp_float": libs.mp_float,
            b"mp_int64": libs.mp_int64,
            b"struct_pack": struct_impl.pack,
            b"struct_unpack": struct_impl.unpack,
            b"struct_size": struct_impl.size,
        }
        host_table = rt.table_from({k: _safe(v) for k, v in host_fns.items()})
        cfg = engine_config(flavour, dialect)
        cfg_table = rt.table_from(
            {
                k: (
                    rt.table_from([rt.table_from(list(kv)) for kv in v])
                    if k == b"version_fields"
                    else v
                )
                for k, v in cfg.items()
            }
        )
        libs_table = rt.table_from(
            {b"cjson": _source("cjson.lua"), b"cmsgpack": _source("cmsgpack.lua")}
        )
        env = self._compile_internal(_source("env.lua"))
        self._api = env(host_table, cfg_table, libs_table)
        self._run_eval = self._api.run_eval
        self._run_function = self._api.run_function
        self._compile = self._api.compile
        self._table_from = rt.table_from

    def _compile_internal(self, source: bytes) -> Any:
        f = self._loadstring(source, b"=replproxy")
        if f is None:
            raise RuntimeError("the scripting environment does not compile")
        return self._loadstring(libs.patch_tailcalls(self._dump(f)), b"=replproxy")

    # ---- host callbacks (called from Lua; they never raise)

    def _call(self, resp: int, *argv: bytes) -> tuple[int, bytes]:
        return self._host.call(int(resp), list(argv))

    def _acl_check(self, *argv: bytes) -> bool | None:
        return self._host.acl_check(list(argv))

    def _interrupt(self) -> bool:
        return self._host.interrupt()

    def _log(self, level: int, msg: bytes) -> None:
        log.log(_LOG_LEVELS[int(level)], "%s", msg.decode("utf-8", "replace"))

    def _rand(self) -> float:
        return self._prng.random()

    def _srand(self, seed: int) -> None:
        self._prng.seed(int(seed))

    def _fmt_double(self, text: bytes) -> bytes:
        return format_double(float(text), "shortest")

    def _lua_tonumber(self, s: bytes) -> float | None:
        n = self._tonumber(s)
        return None if n is None else float(n)

    # ---- scripts

    def compile(self, body: bytes, chunkname: bytes = b"@user_script") -> Any | bytes:
        """The compiled chunk (its environment set), or the compiler's message."""
        f, msg = _pair(self._compile(body, chunkname))
        if f is None:
            return bytes(msg)
        return f

    def run_eval(
        self, fn: Any, proto: int, keys: Sequence[bytes], args: Sequence[bytes], *, hook: bool
    ) -> Outcome:
        """luaCallFunction for EVAL: KEYS and ARGV set as globals, the chunk called with
        Redis's error handler, its first value converted for a client of `proto`."""
        return _outcome(
            self._run_eval(
                fn, proto, hook, self._table_from(list(keys)), self._table_from(list(args))
            )
        )

    # ---- libraries

    def load_library(self, name: bytes, code: bytes) -> list[FunctionInfo] | bytes:
        """luaEngineCreate: run a library's code (after its shebang line, the line feed
        kept) to collect the functions it registers, or the error text."""
        res, err = _pair(self._api.load_library(name, code))
        if res is None:
            return bytes(err)
        out = []
        for i in range(1, len(res) + 1):
            entry = res[i]
            desc = entry[2]
            out.append(FunctionInfo(bytes(entry[1]), bytes(desc) if desc else None, int(entry[3])))
        return out

    def drop_library(self, name: bytes) -> None:
        self._api.drop_library(name)

    def run_function(
        self,
        library: bytes,
        name: bytes,
        proto: int,
        keys: Sequence[bytes],
        args: Sequence[bytes],
        *,
        hook: bool,
    ) -> Outcome:
        """luaEngineCall: the function called with (keys, args) tables."""
        return _outcome(
            self._run_function(
                library,
                name,
                proto,
                hook,
                self._table_from(list(keys)),
                self._table_from(list(args)),
            )
        )

    def memory(self) -> int:
        """Bytes used by the Lua state (luaMemory, for INFO's used_memory_lua)."""
        return int(self._gc_count(b"count") * 1024)


def _pair(res: object) -> tuple[Any, Any]:
    if isinstance(res, tuple):
        return ((*res, None, None))[:2]
    return res, None


def _outcome(res: object) -> Outcome:
    parts = res if isinstance(res, tuple) else (res,)
    ok = parts[0]
    if ok is True:
        return Reply(bytes(parts[1]))
    if ok is None:
        return ScriptError(raw=bytes(parts[1]) if len(parts) > 1 and parts[1] else b"")
    msg, source, line = ([*list(parts[1:]), None, None, None])[:3]
    return ScriptError(msg=msg, source=source, line=line)


def _safe(fn: Any) -> Any:
    """A host callback that never raises into Lua: a bug in one is logged and the script
    sees nil rather than a Python exception object."""

    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            log.exception("scripting host callback %s failed", getattr(fn, "__name__", fn))
            return None

    return wrapper
