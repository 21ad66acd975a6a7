"""The upstream's command table, as data: lookup, arity checks and the COMMAND command.

This package owns what Redis keeps in `server.commands` and answers from it: which commands
exist, their arity, flags, ACL categories and key specs, the first checks of
`processCommand` (unknown command, unknown subcommand, wrong arity), key extraction
(`getKeysFromCommandWithSpecs`) and every COMMAND subcommand. It is sans-I/O: the only I/O
is reading a package data file once per server kind. It never executes commands.

Modules: `spec` (the frozen types), `table` (load, lookup, resolve, raw entries),
`keyspecs` (key extraction), `errors` (the error texts of the first checks) and `replies`
(every COMMAND subcommand). This `__init__` only re-exports their public names.

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
  specs have variable flags: SET, BITFIELD). Before 7.0 there are no key specs: the
  version's own `*GetKeys` functions, else the (first, last, step) range
  (`keys_from_command`). Option words are compared as C strings
  (`strcasecmp`, stopping at NUL); counts are parsed with `string2ll` by the specs and with
  `atoi` by the fallbacks (so `ZUNION 2abc a b` still finds two keys), as in Redis.
"""

from replproxy.commandtable.errors import (
    arity_error,
    unknown_command_error,
    unknown_subcommand_error,
)
from replproxy.commandtable.keyspecs import KeyRef, get_keys, has_keys
from replproxy.commandtable.replies import command_command
from replproxy.commandtable.spec import CommandSpec, KeySpec, ResolveError
from replproxy.commandtable.table import CommandTable, table_for

__all__ = [
    "CommandSpec",
    "CommandTable",
    "KeyRef",
    "KeySpec",
    "ResolveError",
    "arity_error",
    "command_command",
    "get_keys",
    "has_keys",
    "table_for",
    "unknown_command_error",
    "unknown_subcommand_error",
]
