"""`Scripting`: one server's scripting, as the relay's command handlers drive it.

This module owns the scripting state of one relay, as Redis keeps it per server: the EVAL
Lua state and script cache (eval.py), the function engine and its libraries
(functions.py), the PRNG both share, and the one script running (`RunContext`, script.c's
`curr_run_ctx`). It answers EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT LOAD|EXISTS|FLUSH|
KILL|SHOW, FCALL, FCALL_RO and FUNCTION LIST|DUMP|STATS|KILL with the reply bytes of a
read-only replica of the master's version, and gives the dispatcher the two facts it needs
from it: a script's effective command flags (`command_flags`) and whether a script is busy
(`busy`, `busy_error`).

Sans-I/O. Time comes from the injected `clock` (monotonic seconds); commands run through
the caller's `call` (see `script.Caller`); while a script runs past busy-reply-threshold
the count hook calls `on_busy()` every 100,000 Lua instructions, in which the relay serves
its other clients (who get -BUSY, or run SCRIPT KILL / FUNCTION KILL / FUNCTION STATS);
`kill()` (from SCRIPT KILL) marks the script, whose next hook raises "Script killed by
user with SCRIPT KILL...". Everything runs on the caller's thread, synchronously.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from replproxy.commandtable import CommandTable
from replproxy.dialect import MasterDialect
from replproxy.glob import stringmatch
from replproxy.rdb.model import Function
from replproxy.resp import reply
from replproxy.resp.request import string2ll
from replproxy.scripting.engine import Outcome, Reply, ScriptError
from replproxy.scripting.eval import CreateError, EvalScripts, sha1hex
from replproxy.scripting.functions import ENGINE_NAME, FunctionLibraries
from replproxy.scripting.libs import Lrand48
from replproxy.scripting.script import (
    EVAL_COMMANDS,
    FCALL_COMMANDS,
    SCRIPT_FLAG_EVAL_COMPAT_MODE,
    SCRIPT_FLAGS,
    Caller,
    RunContext,
    ScriptTexts,
    call_error,
    flags_to_cmd_flags,
    prepare_error,
)

log = logging.getLogger("replproxy.scripting")

DEFAULT_BUSY_REPLY_THRESHOLD = 5000  # ms, busy-reply-threshold / lua-time-limit

_NOT_INTEGER = b"ERR value is not an integer or out of range"


def _pushed_as_error(raw: bytes) -> bytes:
    """What the engine's error table holds for a refusal text (luaPushErrorBuff: "-CODE
    msg" keeps its code, a bare text gets ERR)."""
    if raw.startswith(b"-"):
        return raw[1:].rstrip(b"\r\n")
    return b"ERR " + raw


def _cstr(b: bytes) -> bytes:
    z = b.find(b"\0")
    return b if z < 0 else b[:z]


class Scripting:
    def __init__(
        self,
        dialect: MasterDialect,
        table: CommandTable,
        *,
        clock: Callable[[], float],
        libraries: Callable[[], Mapping[bytes, Function]] = dict,
        rdb_version: Callable[[], int] = lambda: 10,
        busy_reply_threshold: int = DEFAULT_BUSY_REPLY_THRESHOLD,
        on_busy: Callable[[], None] | None = None,
    ) -> None:
        self.clock = clock
        self.libraries_source = libraries
        self.rdb_version = rdb_version
        self.busy_reply_threshold = busy_reply_threshold
        self.on_busy = on_busy
        self.prng = Lrand48()
        self.run: RunContext | None = None
        self.reset(dialect, table)

    def reset(self, dialect: MasterDialect, table: CommandTable) -> None:
        """A master of another kind or version: fresh Lua states and an empty script cache,
        as a replica of that version would start with (the PRNG keeps going)."""
        self.dialect = dialect
        self.table = table
        self.texts = ScriptTexts(dialect)
        self.evals = EvalScripts(dialect, self, self.prng)
        self.functions = FunctionLibraries(dialect, self, self.prng)

    # ---- what the dispatcher asks

    def command_flags(
        self, name: bytes, argv: list[bytes], flags: frozenset[str]
    ) -> frozenset[str]:
        """getCommandFlags for the EVAL and FCALL families: a script's declared flags
        replace the command's `write`/`stale`/`denyoom` (evalGetCommandFlags,
        fcallGetCommandFlags); anything else keeps `flags`."""
        if name in EVAL_COMMANDS:
            sf = self.evals.flags_of(argv, name.startswith(b"evalsha"))
            if sf is None or sf & SCRIPT_FLAG_EVAL_COMPAT_MODE:
                return flags
            return flags_to_cmd_flags(flags, sf)
        if name in FCALL_COMMANDS:
            self.functions.sync(self.libraries_source())
            found = self.functions.find(argv[1])
            if found is None:
                return flags
            return flags_to_cmd_flags(flags, found[1].flags)
        return flags

    @property
    def busy(self) -> bool:
        """A script has run past busy-reply-threshold (scriptIsTimedout): other clients
        get `busy_error()` for every command not flagged allow_busy."""
        return self.run is not None and self.run.timedout

    def busy_error(self) -> bytes:
        """-BUSY, naming SCRIPT KILL for an EVAL and FUNCTION KILL for a function."""
        run = self.run
        eval_mode = run is None or run.eval_mode
        return reply.error(self.texts.busy_eval if eval_mode else self.texts.busy_function)

    # ---- EVAL, EVALSHA, EVAL_RO, EVALSHA_RO

    def eval(self, caller: Caller, argv: list[bytes], *, evalsha: bool, ro: bool) -> bytes:
        if evalsha and len(argv[1]) != 40:
            return reply.error(self.texts.noscript_err)
        numkeys = string2ll(argv[2])
        if numkeys is None:
            return reply.error(_NOT_INTEGER)
        if numkeys > len(argv) - 3:
            return reply.error(b"ERR Number of keys can't be greater than number of args")
        if numkeys < 0:
            return reply.error(b"ERR Number of keys can't be negative")
        if evalsha:
            sha = argv[1].lower()
            script = self.evals.get(sha)
            if script is None:
                return reply.error(self.texts.noscript_err)
        else:
            try:
                sha, script = self.evals.create(argv[1], from_eval=True)
            except CreateError as e:
                return reply.error(b"ERR " + e.msg)
        err = prepare_error(self.texts, script.flags, ro, caller.stale)
        if err is not None:
            return reply.error(err)
        read_only = ro or (
            not script.flags & SCRIPT_FLAG_EVAL_COMPAT_MODE and bool(script.flags & 1)
        )
        run = RunContext(caller, sha, argv, self.clock(), eval_mode=True, read_only=read_only)
        keys, args = argv[3 : 3 + numkeys], argv[3 + numkeys :]
        outcome = self._run(
            run,
            lambda: self.evals.engine.run_eval(
                script.fn, caller.proto, keys, args, hook=self.busy_reply_threshold > 0
            ),
        )
        self.evals.touch(sha)
        return self._reply(outcome, sha)

    # ---- SCRIPT

    def script(self, caller: Caller, argv: list[bytes]) -> bytes:
        sub = argv[1].lower()
        n = len(argv)
        if sub == b"flush":
            if n == 2 or (n == 3 and argv[2].lower() in (b"sync", b"async")):
                self.evals.flush()
                return reply.OK
            return reply.error(b"ERR SCRIPT FLUSH only support SYNC|ASYNC option")
        if sub == b"exists":
            return reply.array([reply.integer(1 if self.evals.exists(a) else 0) for a in argv[2:]])
        if sub == b"load" and n == 3:
            try:
                sha, _ = self.evals.create(argv[2], from_eval=False)
            except CreateError as e:
                return reply.error(b"ERR " + e.msg)
            return reply.bulk(sha)
        if sub == b"kill" and n == 2:
            return self.kill(is_eval=True)
        if sub == b"show" and n == 3 and self.dialect.valkey:
            script = self.evals.get(argv[2]) if len(argv[2]) == 40 else None
            if script is None:
                return reply.error(self.texts.noscript_err)
            return reply.bulk(script.body)
        name = argv[1].decode("utf-8", "replace")
        return reply.error(f"ERR unknown subcommand '{name}'. Try SCRIPT HELP.".encode())

    def kill(self, *, is_eval: bool) -> bytes:
        """scriptKill (SCRIPT KILL / FUNCTION KILL): a replica's script never wrote, so it
        can always be killed, by the matching command."""
        run = self.run
        if run is None:
            return reply.error(self.texts.notbusy)
        if is_eval and not run.eval_mode:
            return reply.error(self.texts.busy_function)
        if not is_eval and run.eval_mode:
            return reply.error(self.texts.busy_eval)
        run.killed = True
        return reply.OK

    # ---- FCALL, FCALL_RO

    def fcall(self, caller: Caller, argv: list[bytes], *, ro: bool) -> bytes:
        self.functions.sync(self.libraries_source())
        found = self.functions.find(argv[1])
        if found is None:
            return reply.error(b"ERR Function not found")
        lib, fi = found
        numkeys = string2ll(argv[2])
        if numkeys is None:
            return reply.error(b"ERR Bad number of keys provided")
        if numkeys > len(argv) - 3:
            return reply.error(b"ERR Number of keys can't be greater than number of args")
        if numkeys < 0:
            return reply.error(b"ERR Number of keys can't be negative")
        err = prepare_error(self.texts, fi.flags, ro, caller.stale)
        if err is not None:
            return reply.error(err)
        run = RunContext(
            caller, fi.name, argv, self.clock(), eval_mode=False, read_only=ro or bool(fi.flags & 1)
        )
        keys, args = argv[3 : 3 + numkeys], argv[3 + numkeys :]
        outcome = self._run(
            run,
            lambda: self.functions.engine.run_function(
                lib.name, fi.name, caller.proto, keys, args, hook=self.busy_reply_threshold > 0
            ),
        )
        return self._reply(outcome, fi.name)

    # ---- FUNCTION LIST | DUMP | STATS | KILL

    def function(self, caller: Caller, argv: list[bytes]) -> bytes:
        sub = argv[1].lower()
        if sub == b"kill":
            return self.kill(is_eval=False)
        if sub == b"stats":
            return self._function_stats(caller.proto)
        source = self.libraries_source()
        self.functions.sync(source)
        if sub == b"dump":
            return reply.bulk(self.functions.dump(source, self.rdb_version()))
        if sub == b"list":
            return self._function_list(caller.proto, argv)
        name = argv[1].decode("utf-8", "replace")
        return reply.error(f"ERR unknown subcommand '{name}'. Try FUNCTION HELP.".encode())

    def _function_stats(self, proto: int) -> bytes:
        run = self.run
        if run is not None and run.eval_mode:
            return reply.error(self.texts.busy_eval)
        self.functions.sync(self.libraries_source())
        out = [reply.map_len(2, proto), reply.bulk(b"running_script")]
        if run is None:
            out.append(reply.null(proto))
        else:
            out += [
                reply.map_len(3, proto),
                reply.bulk(b"name"),
                reply.bulk(run.funcname),
                reply.bulk(b"command"),
                reply.bulk_array(run.argv),
                reply.bulk(b"duration_ms"),
                reply.integer(int((self.clock() - run.start) * 1000)),
            ]
        libs = self.functions.libraries
        out += [
            reply.bulk(b"engines"),
            reply.map_len(1, proto),
            reply.bulk(ENGINE_NAME),
            reply.map_len(2, proto),
            reply.bulk(b"libraries_count"),
            reply.integer(len(libs)),
            reply.bulk(b"functions_count"),
            reply.integer(sum(len(lib.functions) for lib in libs.values())),
        ]
        return b"".join(out)

    def _function_list(self, proto: int, argv: list[bytes]) -> bytes:
        with_code = False
        pattern: bytes | None = None
        i = 2
        while i < len(argv):
            a = argv[i]
            if not with_code and a.lower() == b"withcode":
                with_code = True
            elif pattern is None and a.lower() == b"libraryname":
                if i >= len(argv) - 1:
                    return reply.error(b"ERR library name argument was not given")
                i += 1
                pattern = argv[i]
            else:
                return reply.error(b"ERR Unknown argument " + _cstr(a))
            i += 1
        items = []
        for lib in self.functions.libraries.values():
            if pattern is not None and not stringmatch(pattern, lib.name, nocase=True):
                continue
            fns = [reply.array_len(len(lib.functions))]
            for f in lib.functions:
                flags = [reply.simple_string(name) for bit, name in SCRIPT_FLAGS if f.flags & bit]
                fns.append(
                    reply.map_len(3, proto)
                    + reply.bulk(b"name")
                    + reply.bulk(f.name)
                    + reply.bulk(b"description")
                    + (
                        reply.bulk(f.description)
                        if f.description is not None
                        else reply.null(proto)
                    )
                    + reply.bulk(b"flags")
                    + reply.set_len(len(flags), proto)
                    + b"".join(flags)
                )
            entry = [
                reply.map_len(4 if with_code else 3, proto),
                reply.bulk(b"library_name"),
                reply.bulk(lib.name),
                reply.bulk(b"engine"),
                reply.bulk(ENGINE_NAME),
                reply.bulk(b"functions"),
                b"".join(fns),
            ]
            if with_code:
                entry += [reply.bulk(b"library_code"), reply.bulk(lib.code)]
            items.append(b"".join(entry))
        return reply.array(items)

    # ---- running a script

    def _run(self, run: RunContext, body: Callable[[], Outcome]) -> Outcome:
        self.run = run
        self._pushed: bytes | None = None
        try:
            return body()
        finally:
            self.run = None

    def _reply(self, outcome: Outcome, funcname: bytes) -> bytes:
        """luaCallFunction's reply: the script's value, or its error with where it was
        raised (" script: <sha or function>, on <source>:<line>.")."""
        if isinstance(outcome, Reply):
            return outcome.data
        if outcome.raw is not None:
            return reply.error(
                b"ERR Error running script %s, %s" % (funcname, _cstr(outcome.raw)[:100])
            )
        msg = _cstr(outcome.msg) if outcome.msg is not None else b"ERR unknown error"
        if (
            self.dialect.script_error_wrapped
            and outcome.line is not None
            and outcome.source is not None
        ):
            return self._wrapped_error(outcome, msg, funcname)
        text = b"-" + msg
        if outcome.line is not None and outcome.source is not None:
            text += b" script: %s, on %s:%s." % (
                funcname,
                _cstr(outcome.source),
                _cstr(outcome.line),
            )
        if not self.dialect.script_error_keeps_crlf:
            text = text.replace(b"\r", b" ").replace(b"\n", b" ")
        return text + b"\r\n"

    def _wrapped_error(self, outcome: ScriptError, msg: bytes, funcname: bytes) -> bytes:
        """5.0/6.2: `__redis__err__handler` prefixes where the script was ("<source>:<line>:
        "), luaCallFunction wraps it ("Error running script (call to f_<sha>): %s\n"). A
        refusal of the call itself was pushed by luaPushError, which put its own position
        before the raw text (a shared reply keeps its "-" and CR/LF)."""
        source, line = _cstr(outcome.source or b""), _cstr(outcome.line or b"")
        pushed = self._pushed
        if pushed is not None and msg == _pushed_as_error(pushed):
            msg = b"%s: %s: %s" % (source, line, pushed)
        text = b"ERR Error running script (call to f_%s): %s:%s: %s\n" % (
            funcname,
            source,
            line,
            msg,
        )
        if self.dialect.error_format_trims_newlines:
            text = text.rstrip(b"\r\n")
        return b"-" + text.replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"

    # ---- the engines' host (EngineHost)

    def call(self, resp: int, argv: list[bytes]) -> tuple[int, bytes]:
        """redis.call / redis.pcall: scriptCall's checks, then the caller's `call`."""
        run = self.run
        if run is None:
            return 1, b"redis.call/pcall can only be called inside a script invocation"
        spec = self.table.find(argv)
        err = call_error(self.texts, run, spec, argv)
        if err is not None:
            if self.dialect.script_error_wrapped:
                # luaPushError's raw text, for the 5.0/6.2 wrapping (`_wrapped_error`).
                self._pushed = err + b"\r\n" if err.startswith(b"-") else err
            return 1, err
        assert spec is not None
        try:
            return 0, run.caller.call(spec, argv, resp)
        except Exception:
            log.exception("running %r from a script", argv[0])
            return 1, b"-ERR replproxy failed running this command"

    def acl_check(self, argv: list[bytes]) -> bool | None:
        """redis.acl_check_cmd: whether the script's user may run `argv` (None: no such
        command). Not logged, as `ACLCheckAllUserCommandPerm` is not."""
        spec = self.table.find(argv)
        if spec is None:
            return None
        run = self.run
        if run is None or run.caller.acl is None:
            return True
        return run.caller.acl(spec, argv, False) is None

    def interrupt(self) -> bool:
        """scriptInterrupt, from the count hook."""
        run = self.run
        if run is None:
            return False
        if not run.timedout:
            elapsed = int((self.clock() - run.start) * 1000)
            if elapsed < self.busy_reply_threshold:
                return False
            log.warning(
                "Slow script detected: still in execution after %d milliseconds. You can try "
                "killing the script using the %s command. Script name is: %s.",
                elapsed,
                "SCRIPT KILL" if run.eval_mode else "FUNCTION KILL",
                run.funcname.decode("utf-8", "replace"),
            )
            run.timedout = True
        if self.on_busy is not None:
            try:
                self.on_busy()
            except Exception:
                log.exception("serving clients while a script is busy")
        if run.killed:
            log.info("Lua script killed by user with SCRIPT KILL.")
        return run.killed

    # ---- INFO

    def memory(self) -> int:
        return self.evals.engine.memory()

    def script_count(self) -> int:
        return len(self.evals.scripts)


__all__ = ["Caller", "Scripting", "sha1hex"]
