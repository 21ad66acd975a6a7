"""Which command table answers for which master version (`choose_table`).

One table per server and major.minor line lives in replproxy/data (docs/commandtable.md):
captured from a real server where one runs here, built from the server's own command JSON
where none does. A master of a line with a table gets it (any patch release: patch releases
do not change the command table, and the chosen table is the nearest one at or below the
master within its line or the line's only one). Other versions take the nearest table,
and the choice says what may differ (`TableChoice.warning`, logged once by `table_for`).
Pure data and one pure function; nothing here loads a table.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALL_STEMS", "TABLES", "TableChoice", "choose_table", "keynum_mode"]

Line = tuple[int, int]

# server -> {(major, minor): data file stem}. The patch release each was made from is in the
# file ("version"); how: docs/commandtable.md.
TABLES: dict[str, dict[Line, str]] = {
    "redis": {
        (5, 0): "redis-5.0",  # captured, 5.0.7
        (6, 2): "redis-6.2",  # captured, 6.2.5
        (7, 0): "redis-7.0",  # captured, 7.0.15
        (7, 2): "redis-7.2",  # from source, 7.2.6
        (7, 4): "redis-7.4",  # from source, 7.4.1
        (8, 2): "redis-8.2",  # captured, 8.2.3
    },
    "valkey": {
        (8, 0): "valkey-8.0",  # from source, 8.0.1
        (8, 1): "valkey-8.1",  # captured, 8.1.8
        (9, 1): "valkey-9.1",  # from source, 9.1.2
    },
}
ALL_STEMS = frozenset(stem for lines in TABLES.values() for stem in lines.values())

# Lines served by a table of another line on purpose, with what differs (no warning).
_QUIET: dict[tuple[str, Line], tuple[str, str]] = {
    # Redis 8.0 is 8.2 less what 8.2 added (XACKDEL, XDELEX, CLUSTER SLOT-STATS, BITOP
    # DIFF/DIFF1/ANDOR/ONE, XADD/XTRIM KEEPREF/DELREF/ACKED); 8.1 was only a preview.
    ("redis", (8, 0)): (
        "redis-8.2",
        "Redis 8.0 lacks 8.2's XACKDEL, XDELEX, CLUSTER "
        "SLOT-STATS and new BITOP/XADD/XTRIM options",
    ),
    ("redis", (8, 1)): ("redis-8.2", "Redis 8.1 was a preview of 8.2"),
    # Valkey 7.2 is the Redis 7.2.4 fork: the same command table (its snapshots even say
    # redis-ver 7.2.4 and no valkey-ver, so such a master is seen as Redis 7.2 anyway).
    ("valkey", (7, 2)): ("redis-7.2", "Valkey 7.2's command table is Redis 7.2's"),
}
# Lines served by a neighbour's table, with a warning (no table could be captured or built).
_NEAREST_UP: dict[tuple[str, Line], tuple[str, str]] = {
    ("redis", (6, 0)): (
        "redis-6.2",
        "Redis 6.0 lacks 6.2's commands (GETDEL, GETEX, COPY, LMOVE, ZRANGESTORE...)",
    ),
    ("valkey", (9, 0)): ("valkey-9.1", "Valkey 9.0 lacks the commands and options 9.1 added"),
}


@dataclass(frozen=True, slots=True)
class TableChoice:
    stem: str
    # Why this table is not the master's own line's, when that matters (logged).
    warning: str | None = None
    # What differs, for a documented choice that needs no warning.
    note: str | None = None


def choose_table(server: str, version: tuple[int, int, int]) -> TableChoice:
    """The table for a master `server` ("redis"/"valkey") at `version`: its line's; a
    documented neighbour (8.0 -> 8.2, Valkey 7.2 -> Redis 7.2; with a warning 6.0 -> 6.2,
    Valkey 9.0 -> 9.1); else the nearest line below (7.1 -> 7.0), the newest for a newer
    master and the oldest for an older one, with a warning."""
    server = "valkey" if server.lower() == "valkey" else "redis"
    line = (version[0], version[1])
    text = f"{server} {'.'.join(map(str, version))}"
    lines = TABLES[server]
    if line in lines:
        return TableChoice(lines[line])
    if (server, line) in _QUIET:
        stem, note = _QUIET[(server, line)]
        return TableChoice(stem, note=note)
    if (server, line) in _NEAREST_UP:
        stem, why = _NEAREST_UP[(server, line)]
        return TableChoice(stem, warning=f"no command table for {text}: using {stem}; {why}")
    below = [k for k in lines if k <= line]
    if below:
        stem = lines[max(below)]
        if line > max(lines):
            why = "commands added since are unknown to it (unknown command)"
        else:
            why = "the nearest table below"
        return TableChoice(stem, warning=f"no command table for {text}: using {stem}; {why}")
    if server == "valkey":  # older than any Valkey table: the Redis 7.2 fork
        return TableChoice("redis-7.2", warning=f"no command table for {text}: using redis-7.2")
    stem = lines[min(lines)]
    return TableChoice(stem, warning=f"no command table for {text}: using {stem}, the oldest")


def keynum_mode(server: str, version: tuple[int, int, int]) -> str:
    """How the table's version reads a keynum key spec (`keyspecs.KeynumMode`): a table
    answers COMMAND GETKEYS as the version it was made from."""
    if server == "valkey":
        return "valkey9" if version >= (9, 0, 0) else "int"
    return "long" if version >= (7, 4, 0) else "int"
