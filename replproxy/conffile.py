"""`replproxy run --config FILE`: settings in redis.conf's syntax, with redis.conf's names.

A line is a directive and its arguments, split as Redis splits them (`sdssplitargs`: blanks
separate, "double quotes" take `\\n \\r \\t \\b \\a \\\\ \\" \\xHH` escapes, 'single quotes' take
`\\'`); `#` starts a comment line; `include FILE` reads another file there (relative to the
including file's directory). Directive names are case-insensitive, a later line wins
(except `save`, whose lines add up, `save ""` clearing them, as in Redis 7).

Names: redis.conf's where Redis has the setting (`port`, `bind`, `dir`, `dbfilename`,
`replicaof host port`, `masterauth`, `masteruser`, `repl-backlog-size`, `repl-timeout`,
`requirepass`, `aclfile`, `maxclients`, `timeout`, `client-output-buffer-limit <class> ...`,
`save`, `loglevel`, ... see `REDIS_NAMES`), and every `replproxy run` flag by its own name
(`upstream`, `metrics-port`, `master-offset-probe`, ...; several arguments are joined by
spaces into the flag's value). Anything else, a wrong number of arguments or a bad value is
a `ConfigFileError` naming the file and the line, in Redis's words where Redis has them.

This module turns a file into `{flag name: Setting}`; it does not know the defaults, the
environment or the command line (the CLI applies the precedence: flag > env > file > default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from replproxy.config import ConfigError, parse_size

MAX_INCLUDE_DEPTH = 16


class ConfigFileError(ConfigError):
    """A bad line in a config file; the message names the file and the line."""


@dataclass(frozen=True)
class Setting:
    """One setting from a file: the flag's value as text, and where it was written."""

    value: str
    file: Path
    line: int
    text: str  # the line as written

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def error(self, reason: str) -> ConfigFileError:
        return located_error(self.file, self.line, self.text, reason)


def located_error(file: Path, line: int, text: str, reason: str) -> ConfigFileError:
    """Redis's `*** FATAL CONFIG FILE ERROR ***` report, on one line."""
    return ConfigFileError(f"config file {file}, line {line}: >>> '{text}': {reason}")


BAD_DIRECTIVE = "Bad directive or wrong number of arguments"


def split_args(line: str) -> list[str] | None:
    """`sdssplitargs`: the words of a line, or None for unbalanced quotes."""
    out: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return out
        word: list[str] = []
        inq = insq = False
        while True:
            if inq:
                if i >= n:
                    return None
                c = line[i]
                if (
                    c == "\\"
                    and i + 3 < n
                    and line[i + 1] == "x"
                    and _ishex(line[i + 2])
                    and _ishex(line[i + 3])
                ):
                    word.append(chr(int(line[i + 2 : i + 4], 16)))
                    i += 3
                elif c == "\\" and i + 1 < n:
                    i += 1
                    word.append(
                        {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}.get(
                            line[i], line[i]
                        )
                    )
                elif c == '"':
                    if i + 1 < n and not line[i + 1].isspace():
                        return None  # the closing quote must be followed by a blank
                    inq = False
                    i += 1
                    break
                else:
                    word.append(c)
            elif insq:
                if i >= n:
                    return None
                c = line[i]
                if c == "\\" and i + 1 < n and line[i + 1] == "'":
                    i += 1
                    word.append("'")
                elif c == "'":
                    if i + 1 < n and not line[i + 1].isspace():
                        return None
                    insq = False
                    i += 1
                    break
                else:
                    word.append(c)
            else:
                if i >= n:
                    break
                c = line[i]
                if c.isspace():
                    break
                if c == '"':
                    inq = True
                elif c == "'":
                    insq = True
                else:
                    word.append(c)
            i += 1
        out.append("".join(word))


def _ishex(c: str) -> bool:
    return c in "0123456789abcdefABCDEF"


@dataclass(frozen=True)
class _Line:
    file: Path
    number: int
    text: str
    argv: list[str]

    def error(self, reason: str) -> ConfigFileError:
        return located_error(self.file, self.number, self.text, reason)


def _lines(path: Path, depth: int = 0) -> Iterable[_Line]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigFileError(f"cannot read config file {path}: {why}") from None
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip(" \t\r\n")
        if not stripped or stripped.startswith("#"):
            continue
        argv = split_args(stripped)
        if argv is None:
            raise located_error(path, number, stripped, "Unbalanced quotes in configuration line")
        if not argv:
            continue
        argv[0] = argv[0].lower()
        line = _Line(path, number, stripped, argv)
        if argv[0] == "include":
            if len(argv) != 2:
                raise line.error(BAD_DIRECTIVE)
            if depth >= MAX_INCLUDE_DEPTH:
                raise line.error("includes nested too deeply")
            yield from _lines((path.parent / argv[1]), depth + 1)
            continue
        yield line


# ---- Redis's directives and how each becomes a flag's value ----


def _one(flag: str, check: Callable[[str], str | None] | None = None) -> Callable[..., None]:
    """A directive taking exactly one argument, stored as the flag `flag`."""

    def apply(line: _Line, out: dict[str, Setting]) -> None:
        if len(line.argv) != 2:
            raise line.error(BAD_DIRECTIVE)
        value = line.argv[1]
        if check is not None:
            why = check(value)
            if why is not None:
                raise line.error(why)
        out[flag] = Setting(value, line.file, line.number, line.text)

    return apply


def _int_between(lo: int, hi: int) -> Callable[[str], str | None]:
    def check(v: str) -> str | None:
        try:
            n = int(v)
        except ValueError:
            return "argument couldn't be parsed into an integer"
        if not lo <= n <= hi:
            return f"argument must be between {lo} and {hi} inclusive"
        return None

    return check


def _seconds(v: str) -> str | None:
    try:
        if float(v) < 0:
            return "argument must be >= 0"
    except ValueError:
        return "argument couldn't be parsed into a number"
    return None


def _memory(v: str) -> str | None:
    try:
        parse_size(v)
    except ConfigError:
        return "argument must be a memory value"
    return None


def _yes_no(v: str) -> str | None:
    return None if v.lower() in ("yes", "no") else "argument must be 'yes' or 'no'"


_LOGLEVELS = {
    "debug": "debug",
    "verbose": "debug",
    "notice": "info",
    "info": "info",
    "warning": "warning",
    "error": "error",
}


def _loglevel(line: _Line, out: dict[str, Setting]) -> None:
    if len(line.argv) != 2:
        raise line.error(BAD_DIRECTIVE)
    level = _LOGLEVELS.get(line.argv[1].lower())
    if level is None:
        raise line.error(
            "argument(s) must be one of the following: debug, verbose, notice, warning"
        )
    out["log-level"] = Setting(level, line.file, line.number, line.text)


def _replicaof(line: _Line, out: dict[str, Setting]) -> None:
    if len(line.argv) != 3:
        raise line.error(BAD_DIRECTIVE)
    host, port = line.argv[1], line.argv[2]
    if host.lower() == "no" and port.lower() == "one":  # a relay always has a master
        raise line.error("a relay always replicates: 'replicaof no one' is not possible")
    why = _int_between(1, 65535)(port)
    if why is not None:
        raise line.error("Invalid master port" if "between" in why else why)
    shown = f"[{host}]" if ":" in host else host
    out["upstream"] = Setting(f"redis://{shown}:{port}", line.file, line.number, line.text)


_CLASSES = {"normal": "normal", "replica": "replica", "slave": "replica", "pubsub": "pubsub"}


def _output_limit(line: _Line, out: dict[str, Setting]) -> None:
    # Redis accepts several classes on one line (`<class> <hard> <soft> <secs>` repeated).
    args = line.argv[1:]
    if not args or len(args) % 4:
        raise line.error(BAD_DIRECTIVE)
    for i in range(0, len(args), 4):
        cls = _CLASSES.get(args[i].lower())
        if cls is None:
            raise line.error("Invalid client class specified in buffer limit")
        hard, soft, secs = args[i + 1 : i + 4]
        if _memory(hard) or _memory(soft) or not secs.isdigit():
            raise line.error("Error in hard, soft or soft_seconds setting in buffer limit")
        out[f"client-output-buffer-limit-{cls}"] = Setting(
            f"{hard} {soft} {secs}", line.file, line.number, line.text
        )


def _bind(line: _Line, out: dict[str, Setting]) -> None:
    if len(line.argv) < 2:
        raise line.error(BAD_DIRECTIVE)
    if len(line.argv) > 2:
        raise line.error("replproxy listens on one address: give one bind address")
    out["bind"] = Setting(line.argv[1].lstrip("-"), line.file, line.number, line.text)


REDIS_NAMES: dict[str, Callable[[_Line, dict[str, Setting]], None]] = {
    "port": _one("port", _int_between(0, 65535)),
    "bind": _bind,
    "dir": _one("dir"),
    "dbfilename": _one("dbfilename"),
    "replicaof": _replicaof,
    "slaveof": _replicaof,
    "masterauth": _one("masterauth"),
    "masteruser": _one("masteruser"),
    "repl-backlog-size": _one("repl-backlog-size", _memory),
    "repl-timeout": _one("repl-timeout", _int_between(1, 2**31 - 1)),
    "repl-diskless-sync-delay": _one("repl-diskless-sync-delay", _int_between(0, 2**31 - 1)),
    "requirepass": _one("requirepass"),
    "aclfile": _one("aclfile"),
    "maxclients": _one("maxclients", _int_between(1, 2**31 - 1)),
    "timeout": _one("timeout", _int_between(0, 2**31 - 1)),
    "client-output-buffer-limit": _output_limit,
    "client-query-buffer-limit": _one("client-query-buffer-limit", _memory),
    "proto-max-bulk-len": _one("proto-max-bulk-len", _memory),
    "replica-announce-ip": _one("replica-announce-ip"),
    "slave-announce-ip": _one("replica-announce-ip"),
    "replica-announce-port": _one("replica-announce-port", _int_between(0, 65535)),
    "slave-announce-port": _one("replica-announce-port", _int_between(0, 65535)),
    "replica-serve-stale-data": _one("replica-serve-stale-data", _yes_no),
    "slave-serve-stale-data": _one("replica-serve-stale-data", _yes_no),
    "shutdown-timeout": _one("shutdown-timeout", _int_between(0, 2**31 - 1)),
    "loglevel": _loglevel,
    "busy-reply-threshold": _one("busy-reply-threshold", _int_between(0, 2**63 - 1)),
    "lua-time-limit": _one("busy-reply-threshold", _int_between(0, 2**63 - 1)),
}
# `save` is handled apart: its lines add up.


def read_config_file(path: Path, flags: Iterable[str]) -> dict[str, Setting]:
    """The settings `path` gives, keyed by flag name (without `--`).

    `flags` are the `replproxy run` flags: each is also a directive of its own name.
    """
    known = set(flags)
    out: dict[str, Setting] = {}
    save: list[str] | None = None
    save_line: _Line | None = None
    for line in _lines(path):
        name = line.argv[0]
        if name == "save":
            if len(line.argv) < 2:
                raise line.error(BAD_DIRECTIVE)
            words = line.argv[1:]
            if save is None or words == [""]:
                save = []
            if words != [""]:
                if len(words) % 2:
                    raise line.error("Invalid save parameters")
                for w in words:
                    if not w.isdigit():
                        raise line.error("Invalid save parameters")
                save += words
            save_line = line
            continue
        handler = REDIS_NAMES.get(name)
        if handler is not None:
            handler(line, out)
        elif name in known:
            if len(line.argv) < 2:
                raise line.error(BAD_DIRECTIVE)
            out[name] = Setting(" ".join(line.argv[1:]), line.file, line.number, line.text)
        else:
            raise line.error(BAD_DIRECTIVE)
    if save is not None and save_line is not None:
        out["save"] = Setting(
            " ".join(save) if save else '""', save_line.file, save_line.number, save_line.text
        )
    return out
