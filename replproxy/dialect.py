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
from typing import Literal

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

    # ---- scripting (EVAL, FCALL): see replproxy/scripting and docs/scripting.md ----

    @property
    def lua_number_args(self) -> Literal["g17", "fpconv", "integer"]:
        """How `redis.call` turns a Lua number into an argument: `%.17g` up to Redis 7.0,
        fpconv_dtoa in 7.2, an integer when the number is one (else fpconv) from 7.4 and in
        Valkey 8 (`luaArgsToRedisArgv`)."""
        if self.at_least((7, 4), (8, 0)):
            return "integer"
        if self.at_least((7, 2), (7, 2)):
            return "fpconv"
        return "g17"

    @property
    def lua_os_clock(self) -> bool:
        """The `os` global (with `clock` alone) exists from Redis 7.4 and in Valkey 8."""
        return self.at_least((7, 4), (8, 0))

    @property
    def lua_set_repl_one_argument(self) -> bool:
        """`redis.set_repl()` says "requires one argument." from 7.2 ("two" before)."""
        return self.at_least((7, 2), (7, 2))

    @property
    def lua_log_level_text(self) -> bool:
        """`redis.log` with a bad level says "Invalid log level." from 7.4 ("debug" before)."""
        return self.at_least((7, 4), (8, 0))

    @property
    def script_cache_lru(self) -> bool:
        """Scripts EVAL compiled are evicted past 500 (oldest first) from Redis 7.4 and in
        Valkey 8; SCRIPT LOAD's never are."""
        return self.at_least((7, 4), (8, 0))

    @property
    def script_load_promotes(self) -> bool:
        """Valkey's SCRIPT LOAD of a script EVAL cached takes it out of the eviction list."""
        return self.at_least(None, (8, 0))

    @property
    def script_error_keeps_crlf(self) -> bool:
        """A script's raised error reaches the client with its CR/LF as they are (Redis 8.2
        as released); Valkey 8.1 and Debian's patched 7.0.15 print them as spaces."""
        return self.at_least((8, 0), None)


DEFAULT_DIALECT = MasterDialect()
