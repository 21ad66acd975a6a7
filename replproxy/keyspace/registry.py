"""The registry of write appliers: `@write_command` fills `WRITE_COMMANDS`.

Owns only the table the per-type modules (`t_string`, `t_hash`, ..., `generic`) fill at import
and `Keyspace.apply` reads; it knows nothing of values. It sits apart from `store` so a type
module can register its appliers without importing the dataset class that dispatches to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from replproxy.keyspace.store import Keyspace

WriteHandler = Callable[["Keyspace", int, list[bytes]], None]
# (keys written, keys only read) of one command's argv: see `WriteCommand.roles`.
KeyRoles = Callable[[list[bytes]], tuple[list[bytes], list[bytes]]]


@dataclass(frozen=True)
class WriteCommand:
    name: bytes
    handler: WriteHandler
    # Positions of key arguments for marking keys unsupported when the applier fails:
    # (first, last, step) as in COMMAND INFO; last -1 = up to the end.
    keys: tuple[int, int, int] = (1, 1, 1)
    # For a command whose written keys derive from other keys (SINTERSTORE, LMOVE,
    # BITOP...): which keys it writes and which it reads. A written key computed from a
    # key marked unsupported is wrong too, so it is marked (`Keyspace.apply`); on a
    # failure only the written keys are marked. None: every key of `keys` is written.
    roles: KeyRoles | None = None

    def written(self, argv: list[bytes]) -> list[bytes]:
        """The keys this command writes: those a failure must mark unsupported."""
        if self.roles is not None:
            try:
                return self.roles(argv)[0]
            except (IndexError, ValueError):
                pass  # a malformed argv: fall back on the key positions
        first, last, step = self.keys
        end = len(argv) - 1 if last < 0 else min(last, len(argv) - 1)
        return [argv[i] for i in range(first, end + 1, max(step, 1))]


# name (lowercase bytes) -> command. Filled by the per-type modules at import.
WRITE_COMMANDS: dict[bytes, WriteCommand] = {}
# The same commands under the exact spellings masters send (`SET`, `set`, `zadd` from GEOADD),
# so the hot path skips a `.lower()` per command. Filled with WRITE_COMMANDS.
HANDLERS: dict[bytes, WriteCommand] = {}


def write_command(
    *names: str, keys: tuple[int, int, int] = (1, 1, 1), roles: KeyRoles | None = None
) -> Callable[[WriteHandler], WriteHandler]:
    """Register an applier for one or more command names (case-insensitive)."""

    def register(fn: WriteHandler) -> WriteHandler:
        for n in names:
            b = n.lower().encode()
            if b in WRITE_COMMANDS:
                raise RuntimeError(f"write command {n!r} registered twice")
            cmd = WriteCommand(b, fn, keys, roles)
            WRITE_COMMANDS[b] = HANDLERS[b] = HANDLERS[b.upper()] = cmd
        return fn

    return register


# Roles of the usual shapes (see `WriteCommand.roles`).


def store_from_rest(first_source: int) -> KeyRoles:
    """`CMD destination ... source...`: argv[1] written from argv[first_source:]."""
    return lambda argv: ([argv[1]], argv[first_source:])


def store_from(source: int) -> KeyRoles:
    """`CMD destination source ...`: argv[1] written from argv[source]."""
    return lambda argv: ([argv[1]], [argv[source]])


def move_between(argv: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """`CMD source destination ...` (SMOVE, LMOVE, RPOPLPUSH): both written, the
    destination from the source."""
    return [argv[1], argv[2]], [argv[1]]


def numkeys_store(argv: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """`CMD destination numkeys key...` (ZUNIONSTORE...): argv[1] from the numkeys keys."""
    return [argv[1]], argv[3 : 3 + int(argv[2])]


class ApplyError(Exception):
    """An applier met something it cannot apply faithfully (a bug or an unknown form)."""
