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


@dataclass(frozen=True)
class WriteCommand:
    name: bytes
    handler: WriteHandler
    # Positions of key arguments for marking keys unsupported when the applier fails:
    # (first, last, step) as in COMMAND INFO; last -1 = up to the end.
    keys: tuple[int, int, int] = (1, 1, 1)


# name (lowercase bytes) -> command. Filled by the per-type modules at import.
WRITE_COMMANDS: dict[bytes, WriteCommand] = {}
# The same commands under the exact spellings masters send (`SET`, `set`, `zadd` from GEOADD),
# so the hot path skips a `.lower()` per command. Filled with WRITE_COMMANDS.
HANDLERS: dict[bytes, WriteCommand] = {}


def write_command(
    *names: str, keys: tuple[int, int, int] = (1, 1, 1)
) -> Callable[[WriteHandler], WriteHandler]:
    """Register an applier for one or more command names (case-insensitive)."""

    def register(fn: WriteHandler) -> WriteHandler:
        for n in names:
            b = n.lower().encode()
            if b in WRITE_COMMANDS:
                raise RuntimeError(f"write command {n!r} registered twice")
            WRITE_COMMANDS[b] = HANDLERS[b] = HANDLERS[b.upper()] = WriteCommand(b, fn, keys)
        return fn

    return register


class ApplyError(Exception):
    """An applier met something it cannot apply faithfully (a bug or an unknown form)."""
