"""Which master, which version, which behaviour: the one answer (`MasterDialect`).

A replica of Redis 5.0 answers differently from one of Redis 8.2 or Valkey 8.1: its command
table, error texts, double format, encodings and a few appliers' rules follow its version.
The relay must answer as a replica of ITS master, so every version question in the code asks
the dialect, which is computed once from the master's snapshot (the `redis-ver` /
`valkey-ver` AUX fields, or for a partial resync after a restart from the saved state) and
announced when a snapshot loads. Nothing here reads a socket or the clock.

Feature flags are named properties, so a reader sees WHAT differs (`listpack_sets`,
`resp3`) instead of a version comparison, and the version rules live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from replproxy.commandtable.table import CommandTable

ServerName = Literal["redis", "valkey"]

# What a snapshot without a version AUX field is taken for (RDB files of Redis < 4.0 carry
# none; the relay's own snapshots always keep the master's).
_DEFAULT_VERSION = (7, 2, 0)


def _parse_version(raw: bytes) -> tuple[int, int, int] | None:
    try:
        parts = [int(x) for x in raw.decode("ascii").split(".")[:3]]
    except (UnicodeDecodeError, ValueError):
        return None
    parts += [0, 0, 0]
    return parts[0], parts[1], parts[2]


@dataclass(frozen=True, slots=True)
class MasterDialect:
    """The master's kind and version, and every behaviour that follows from them."""

    server: ServerName = "redis"
    version: tuple[int, int, int] = _DEFAULT_VERSION

    @classmethod
    def from_aux(cls, aux: dict[bytes, bytes]) -> MasterDialect:
        """From a snapshot's AUX fields: `valkey-ver` wins over `redis-ver` (Valkey writes
        both, `redis-ver` being its Redis compatibility version 7.2.4)."""
        raw = aux.get(b"valkey-ver")
        if raw is not None:
            return cls("valkey", _parse_version(raw) or (8, 0, 0))
        raw = aux.get(b"redis-ver")
        if raw is not None:
            return cls("redis", _parse_version(raw) or _DEFAULT_VERSION)
        return cls()

    @property
    def valkey(self) -> bool:
        return self.server == "valkey"

    @property
    def version_text(self) -> str:
        """`HELLO`'s version and INFO's `redis_version`/`valkey_version` (x.y.z)."""
        return ".".join(str(n) for n in self.version)

    def at_least(
        self, redis: tuple[int, ...] | None, valkey: tuple[int, ...] | None = None
    ) -> bool:
        """Whether this master is at least `redis` (for Redis) or `valkey` (for Valkey);
        None means "never" for that server."""
        want = valkey if self.valkey else redis
        return want is not None and self.version >= tuple(want)

    @property
    def command_table(self) -> CommandTable:
        """The master's own command table: which commands exist, their arity, COMMAND's
        replies and the error texts (`commandtable.versions.choose_table` says which table
        answers for which version)."""
        from replproxy.commandtable.table import table_for

        return table_for(self.server, self.version)

    # ---- named behaviours (add here; never compare versions elsewhere) ----

    @property
    def resp3(self) -> bool:
        """HELLO and RESP3 exist from Redis 6.0."""
        return self.at_least((6, 0), (7, 2))

    @property
    def shortest_doubles(self) -> bool:
        """Doubles print in the shortest round-trip form (fpconv) from Redis 7.2 and in every
        Valkey; `%.17g` before."""
        return self.at_least((7, 2), (7, 2))

    @property
    def listpack_sets(self) -> bool:
        """Small non-integer sets are listpacks (insertion order) from Redis 7.2 / Valkey."""
        return self.at_least((7, 2), (7, 2))


DEFAULT_DIALECT = MasterDialect()
