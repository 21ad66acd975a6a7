"""What Redis's script.c decides around a script: flags, the run context, and which
commands a script may call (`scriptPrepareForRun`, `scriptCall`, `scriptKill`).

This module owns the rules, as a read-only replica applies them, and the state of the one
running script (`RunContext`); it does not run Lua (the engines do) and does no I/O.

- Shebang flags (`#!lua flags=no-writes,allow-stale`) and function flags replace the
  command's own `write`/`stale`/`denyoom` flags before the dispatcher's checks
  (`scriptFlagsToCmdFlags`): a script that may write is refused with -READONLY by the
  dispatcher, one without `allow-stale` with -MASTERDOWN when the link is down and
  replica-serve-stale-data is no. A script without a shebang (compatibility mode) keeps
  EVAL's flags: it runs, and only a write it attempts fails.
- Inside a script (`scriptCall`, in this order): unknown command / wrong arity, `noscript`
  commands, stale replica, writes: a read-only run (EVAL_RO, FCALL_RO, `no-writes`) refuses
  `write` and `may_replicate` commands, a replica refuses `write` commands with its
  -READONLY error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from replproxy.commandtable import CommandSpec, CommandTable
from replproxy.dialect import MasterDialect
from replproxy.resp.request import split_args

# Script flags (scripts_flags_def order: FUNCTION LIST prints them in this order).
SCRIPT_FLAG_NO_WRITES = 1
SCRIPT_FLAG_ALLOW_OOM = 2
SCRIPT_FLAG_ALLOW_STALE = 4
SCRIPT_FLAG_NO_CLUSTER = 8
SCRIPT_FLAG_ALLOW_CROSS_SLOT = 16
SCRIPT_FLAG_EVAL_COMPAT_MODE = 32  # no shebang: EVAL's own flags apply

SCRIPT_FLAGS: tuple[tuple[int, bytes], ...] = (
    (SCRIPT_FLAG_NO_WRITES, b"no-writes"),
    (SCRIPT_FLAG_ALLOW_OOM, b"allow-oom"),
    (SCRIPT_FLAG_ALLOW_STALE, b"allow-stale"),
    (SCRIPT_FLAG_NO_CLUSTER, b"no-cluster"),
    (SCRIPT_FLAG_ALLOW_CROSS_SLOT, b"allow-cross-slot-keys"),
)
_FLAG_BY_NAME = {name: bit for bit, name in SCRIPT_FLAGS}

# COMMAND INFO hides `may_replicate`; these are the commands that carry it (src/commands/
# *.json of 7.0-8.2 and Valkey 8.1). A read-only script may not call them.
MAY_REPLICATE = frozenset([b"eval", b"evalsha", b"fcall", b"pfcount", b"publish", b"spublish"])

# The commands whose flags depend on the script they run (getCommandFlags).
EVAL_COMMANDS = frozenset([b"eval", b"evalsha", b"eval_ro", b"evalsha_ro"])
FCALL_COMMANDS = frozenset([b"fcall", b"fcall_ro"])


def _cstr(b: bytes) -> bytes:
    z = b.find(b"\0")
    return b if z < 0 else b[:z]


class ShebangError(Exception):
    def __init__(self, msg: bytes) -> None:
        super().__init__(msg)
        self.msg = msg


def extract_shebang_flags(body: bytes, *, valkey: bool = False) -> tuple[int, int, bytes]:
    """evalExtractShebangFlags: (script flags, length of the shebang line to skip - its line
    feed is kept so line numbers stay right -, engine name). Raises ShebangError with the
    server's message.

    Redis requires `#!lua` itself. Valkey 8.1 takes any engine name here (the options are
    checked first) and looks the engine up when it compiles: `engine_error` says then."""
    if not body.startswith(b"#!"):
        return SCRIPT_FLAG_EVAL_COMPAT_MODE, 0, b"lua"
    text = _cstr(body)
    end = text.find(b"\n")
    if end < 0:
        raise ShebangError(b"Invalid script shebang")
    parts = split_args(text[:end])
    if not parts:
        raise ShebangError(b"Invalid engine in script shebang")
    engine = _cstr(parts[0])
    if not valkey and engine != b"#!lua":
        raise ShebangError(b"Unexpected engine in script shebang: " + engine)
    flags = 0
    for part in parts[1:]:
        if part.startswith(b"flags="):
            for name in part[6:].split(b",") if len(part) > 6 else []:
                bit = _FLAG_BY_NAME.get(_cstr(name))
                if bit is None:
                    raise ShebangError(b"Unexpected flag in script shebang: " + _cstr(name))
                flags |= bit
        else:
            raise ShebangError(b"Unknown lua shebang option: " + _cstr(part))
    return flags, end, engine[2:]


def engine_error(engine: bytes) -> bytes | None:
    """Valkey's engine lookup (case-insensitive; Lua is the only engine)."""
    if engine.lower() == b"lua":
        return None
    return b"Could not find scripting engine '" + engine + b"'"


def flags_to_cmd_flags(cmd_flags: frozenset[str], script_flags: int) -> frozenset[str]:
    """scriptFlagsToCmdFlags: a script with declared flags replaces the command's."""
    out = set(cmd_flags) - {"stale", "denyoom", "write"}
    if not script_flags & (SCRIPT_FLAG_ALLOW_OOM | SCRIPT_FLAG_NO_WRITES):
        out.add("denyoom")
    if not script_flags & SCRIPT_FLAG_NO_WRITES:
        out.add("write")
    if script_flags & SCRIPT_FLAG_ALLOW_STALE:
        out.add("stale")
    return frozenset(out)


@dataclass
class Caller:
    """The client running EVAL/FCALL, as scriptPrepareForRun and scriptCall see it.

    `call` runs one command a script is allowed to run, as the script's own client (the
    caller's DB at the start, then whatever SELECT sets; no blocking; the time of the
    script's start) in RESP version `resp`, and returns the reply bytes; it is only given
    commands the checks here have passed. `stale`: the replica's link is down and
    replica-serve-stale-data is no. `acl`: the caller's user's permission for a command
    (None: allowed; else the denial's text, logged to ACL LOG when `log` is true), as
    `ACLCheckAllPerm` judges the script's client."""

    proto: int
    call: Callable[[CommandSpec, list[bytes], int], bytes]
    stale: bool = False
    acl: Callable[[CommandSpec, list[bytes], bool], bytes | None] | None = None


@dataclass
class RunContext:
    """scriptRunCtx: the running script."""

    caller: Caller
    funcname: bytes  # the sha (EVAL) or the function name (FCALL)
    argv: list[bytes]  # the caller's command (FUNCTION STATS shows it)
    start: float  # clock() at the start, seconds
    eval_mode: bool
    read_only: bool
    timedout: bool = False
    killed: bool = False
    extra: dict[str, object] = field(default_factory=dict)


def lookup_command(table: CommandTable, argv: list[bytes]) -> CommandSpec | None:
    """lookupCommand: a container with more arguments resolves to its subcommand (None if
    unknown); without one, to itself."""
    spec = table.get(argv[0].lower())
    if spec is None:
        return None
    if len(argv) == 1 or not spec.subcommands:
        return spec
    return spec.subcommands.get(argv[1].lower())


class ScriptTexts:
    """The error texts of script.c / server.c, by dialect."""

    def __init__(self, dialect: MasterDialect) -> None:
        v = dialect.valkey
        self.unknown = (
            b"Unknown command called from script"
            if v
            else b"Unknown Redis command called from script"
        )
        self.arity = (
            b"Wrong number of args calling command from script"
            if v
            else b"Wrong number of args calling Redis command from script"
        )
        self.noscript = b"This Redis command is not allowed from script"
        self.stale = b"Can not execute the command on a stale replica"
        self.ro_script = b"Write commands are not allowed from read-only scripts."
        self.ro_replica = b"-READONLY You can't write against a read only replica."
        self.masterdown = (
            b"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
        )
        self.masterdown_flags = (
            b"-MASTERDOWN Link with MASTER is down, "
            b"replica-serve-stale-data is set to 'no' and 'allow-stale' "
            b"flag is not set on the script."
        )
        self.readonly_flags = b"-READONLY Can not run script with write flag on readonly replica"
        self.ro_command = b"Can not execute a script with write flag using *_ro command."
        name = b"Valkey" if v else b"Redis"
        self.busy_eval = (
            b"BUSY " + name + b" is busy running a script. You can only call "
            b"SCRIPT KILL or SHUTDOWN NOSAVE."
        )
        self.busy_function = (
            b"BUSY " + name + b" is busy running a script. You can only "
            b"call FUNCTION KILL or SHUTDOWN NOSAVE."
        )
        self.notbusy = b"NOTBUSY No scripts in execution right now."
        self.noscript_err = (
            b"NOSCRIPT No matching script."
            if v
            else b"NOSCRIPT No matching script. Please use EVAL."
        )
        self.xread_block = not dialect.at_least((7, 2), (7, 2))


def prepare_error(texts: ScriptTexts, script_flags: int, ro: bool, stale: bool) -> bytes | None:
    """scriptPrepareForRun's refusals on a read-only replica (None: the script runs).

    The first two are normally answered earlier by the dispatcher from the flags of
    `flags_to_cmd_flags`; they remain for a script queued in MULTI before it was known."""
    if not script_flags & SCRIPT_FLAG_EVAL_COMPAT_MODE:
        if stale and not script_flags & SCRIPT_FLAG_ALLOW_STALE:
            return texts.masterdown_flags
        if not script_flags & SCRIPT_FLAG_NO_WRITES:
            return texts.readonly_flags
        return None
    if stale:
        return texts.masterdown
    return None


def call_error(
    texts: ScriptTexts, run: RunContext, spec: CommandSpec | None, argv: list[bytes]
) -> bytes | None:
    """scriptCall's checks, in Redis's order: None when the command may run, else the
    error text (luaPushError's input: "msg", or "-CODE msg")."""
    if spec is None:
        return texts.unknown
    n = len(argv)
    if (spec.arity > 0 and spec.arity != n) or n < -spec.arity:
        return texts.arity
    flags = spec.flags
    if "noscript" in flags:
        return texts.noscript
    if run.caller.stale and "stale" not in flags:
        return texts.stale
    if run.caller.acl is not None:  # scriptVerifyACL
        denied = run.caller.acl(spec, argv, True)
        if denied is not None:
            return denied
    write = "write" in flags
    if run.read_only and (write or spec.name in MAY_REPLICATE):
        return texts.ro_script
    if write:
        return texts.ro_replica
    if texts.xread_block and spec.name == b"xread" and _xread_blocks(argv):
        # Redis 7.0 refuses XREAD BLOCK in a script outright (later versions run it as a
        # non-blocking read, which the script client's no-blocking rule gives).
        return b"%s command is not allowed with BLOCK option from scripts" % _cstr(argv[0])
    return None


def _xread_blocks(argv: list[bytes]) -> bool:
    """Whether 7.0's xreadCommand meets BLOCK (with a value after it) before anything its
    own parsing would refuse first."""
    from replproxy.resp.request import string2ll

    i = 1
    n = len(argv)
    while i < n:
        more = n - i - 1
        o = argv[i].lower()
        if o == b"block" and more:
            return True
        if o == b"count" and more:
            if string2ll(argv[i + 1]) is None:
                return False
            i += 2
            continue
        return False
    return False
