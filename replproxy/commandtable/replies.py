"""The COMMAND command's replies: COMMAND, COMMAND INFO / DOCS / COUNT / LIST / GETKEYS /
GETKEYSANDFLAGS / HELP, assembled from the table's captured bytes.

Owns only reply assembly; lookups go through the `CommandTable`, keys through `keyspecs`.
"""

from __future__ import annotations

from collections.abc import Sequence

from replproxy.args import option_word
from replproxy.commandtable.keyspecs import (
    get_keys,
    has_keys,
    keys_from_command,
    legacy_has_keys,
)
from replproxy.commandtable.spec import ResolveError
from replproxy.commandtable.table import CommandTable
from replproxy.errors import SYNTAX
from replproxy.glob import stringmatch
from replproxy.resp import reply

__all__ = [
    "command_command",
    "command_docs",
    "command_getkeys",
    "command_info",
    "command_list",
]

# `addReplyFlagsForKeyArgs` prints key flags in this order (db.c CMD_KEY_*).
_KEY_FLAG_ORDER = (
    "RO",
    "RW",
    "OW",
    "RM",
    "access",
    "update",
    "insert",
    "delete",
    "not_key",
    "incomplete",
    "variable_flags",
)


def command_command(table: CommandTable, argv: Sequence[bytes], proto: int) -> bytes:
    """The whole COMMAND command (argv[0] is "command" in any case): the encoded reply."""
    if table.legacy:
        return legacy_command_command(table, argv, proto)
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
            parts.append(reply.bulk(table.shown(spec.name)) + table.docs_entry(spec, proto))
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


def command_getkeys(
    table: CommandTable, cmd_argv: Sequence[bytes], proto: int, with_flags: bool
) -> bytes:
    """COMMAND GETKEYS / GETKEYSANDFLAGS <full command> (`getKeysSubcommandImpl`)."""
    spec = table.find(cmd_argv) if cmd_argv else None
    if spec is None:
        return reply.error(b"ERR Invalid command specified")
    if not has_keys(spec):
        return reply.error(b"ERR The command has no key arguments")
    n, arity = len(cmd_argv), spec.arity
    if (arity > 0 and n != arity) or n < -arity:
        return reply.error(b"ERR Invalid number of arguments specified for command")
    keys = get_keys(spec, cmd_argv, table.keynum)
    if not keys:
        if "no_mandatory_keys" in spec.flags:
            return reply.array_len(0)
        return reply.error(b"ERR Invalid arguments specified for command")
    if not with_flags:
        return reply.bulk_array([cmd_argv[pos] for pos, _ in keys])
    return reply.array(
        [
            b"*2\r\n" + reply.bulk(cmd_argv[pos]) + _key_flags_reply(flags, proto)
            for pos, flags in keys
        ]
    )


def _key_flags_reply(flags: tuple[str, ...], proto: int) -> bytes:
    """`addReplyFlagsForKeyArgs`: a set of status strings in the server's flag order."""
    ordered = [f for f in _KEY_FLAG_ORDER if f in flags]
    ordered += [f for f in flags if f not in _KEY_FLAG_ORDER]
    return reply.set_len(len(ordered), proto) + b"".join(b"+%s\r\n" % f.encode() for f in ordered)


# --- before Redis 7.0 -------------------------------------------------------------------------


def legacy_command_command(table: CommandTable, argv: Sequence[bytes], proto: int) -> bytes:
    """Redis 5.0 / 6.2 `commandCommand`: HELP (alone), no argument, INFO, COUNT (alone),
    GETKEYS; anything else is the subcommand syntax error. No DOCS, LIST, GETKEYSANDFLAGS."""
    n = len(argv)
    sub = option_word(argv[1]) if n > 1 else b""
    if n == 2 and sub == b"help":
        return table.help(proto)
    if n == 1:
        return table.all_info(proto)
    if sub == b"info":
        # `dictFetchValue(server.commands, name)`: the whole name, any case; 5.0 answers
        # an unknown one with a null bulk, 6.2 with RESP3's null.
        return reply.array([table.info_entry(table.get(name.lower()), proto) for name in argv[2:]])
    if sub == b"count" and n == 2:
        return reply.integer(len(table))
    if sub == b"getkeys" and n >= 3:
        return _legacy_getkeys(table, argv[2:])
    return reply.error(table.legacy_subcommand_error(argv))


def _legacy_getkeys(table: CommandTable, cmd_argv: Sequence[bytes]) -> bytes:
    """COMMAND GETKEYS before 7.0: `getKeysFromCommand` with the version's own `*GetKeys`
    functions (the table's `getkeys_proc`), else the (first, last, step) range."""
    spec = table.get(cmd_argv[0].lower())
    if spec is None:
        return reply.error(b"ERR Invalid command specified")
    if not legacy_has_keys(spec):
        return reply.error(b"ERR The command has no key arguments")
    n, arity = len(cmd_argv), spec.arity
    if (arity > 0 and n != arity) or n < -arity:
        return reply.error(b"ERR Invalid number of arguments specified for command")
    positions = keys_from_command(spec, cmd_argv)
    if not positions and table.version.startswith("5."):
        # 5.0 tests the array its functions return, not its size: a MIGRATE whose KEYS
        # is its last argument, or a range that ends before it starts, has an empty one.
        if spec.getkeys_proc == "migrateLegacy":
            return reply.array_len(0)
        if spec.getkeys_proc is None:
            last = spec.last_key if spec.last_key >= 0 else n + spec.last_key
            if last < n:
                return reply.array_len(0)
    if not positions:
        return reply.error(b"ERR Invalid arguments specified for command")
    return reply.bulk_array([cmd_argv[p] for p in positions])
