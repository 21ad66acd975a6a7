"""The dataset: numbered databases of typed values, loaded from snapshots, mutated by the stream.

This package owns the data the relay serves. It is filled by two paths only: a snapshot
(`KeyspaceLoader`, built off to the side and swapped in whole, so a reader never sees a
half-loaded dataset) and the master's write commands (`Keyspace.apply`). Values use the RDB
value model of `replproxy.rdb.model`. Writes are dispatched by name through `WRITE_COMMANDS`,
the one table the per-type modules fill; a command nobody handles is counted, logged once per
name, and its bytes are still relayed by the replication core.

Everything here is synchronous: a command or a whole transaction is applied between two trio
checkpoints, so no reader can observe half of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from replproxy.rdb.model import Aux, Event, Function, KeyEntry, Value

log = logging.getLogger("replproxy.keyspace")

WriteHandler = Callable[["Keyspace", int, list[bytes]], None]

# name (lowercase bytes) -> handler. Filled by the per-type modules.
WRITE_COMMANDS: dict[bytes, WriteHandler] = {}


class Keyspace:
    def __init__(self, databases: int = 16) -> None:
        self.databases = databases
        self.dbs: list[dict[bytes, Value]] = [{} for _ in range(databases)]
        self.expires: list[dict[bytes, int]] = [{} for _ in range(databases)]
        self.functions: list[Function] = []
        self.unsupported_commands: dict[str, int] = {}
        self.loaded_aux: dict[bytes, bytes] = {}

    def dbsize(self, db: int) -> int:
        return len(self.dbs[db])

    def total_keys(self) -> int:
        return sum(len(d) for d in self.dbs)

    # ---- the stream ----

    def apply(self, db: int, argv: list[bytes]) -> None:
        name = argv[0].lower()
        handler = WRITE_COMMANDS.get(name)
        if handler is None:
            self._unsupported(name)
            return
        handler(self, db, argv)

    def apply_transaction(self, db: int, commands: Sequence[list[bytes]]) -> int:
        for argv in commands:
            if argv and argv[0].lower() == b"select" and len(argv) == 2:
                db = int(argv[1])
            else:
                self.apply(db, argv)
        return db

    def _unsupported(self, name: bytes) -> None:
        key = name.decode("utf-8", "replace")
        n = self.unsupported_commands.get(key, 0)
        if n == 0:
            log.warning(
                "command %r from the master cannot be applied (not supported yet); "
                "its bytes are still relayed",
                key,
            )
        self.unsupported_commands[key] = n + 1

    # ---- snapshots ----

    def new_loader(self) -> KeyspaceLoader:
        return KeyspaceLoader(self)


class KeyspaceLoader:
    """Builds a fresh dataset from snapshot events; `commit()` swaps it in at once."""

    def __init__(self, target: Keyspace) -> None:
        self.target = target
        n = target.databases
        self.dbs: list[dict[bytes, Value]] = [{} for _ in range(n)]
        self.expires: list[dict[bytes, int]] = [{} for _ in range(n)]
        self.functions: list[Function] = []
        self.aux: dict[bytes, bytes] = {}
        self.keys = 0

    def add(self, events: Iterable[Event]) -> None:
        dbs, expires = self.dbs, self.expires
        for ev in events:
            if type(ev) is KeyEntry:
                if ev.db >= len(dbs):
                    raise ValueError(
                        f"snapshot has DB {ev.db} but only {len(dbs)} databases are configured"
                    )
                dbs[ev.db][ev.key] = ev.value
                if ev.expire_ms is not None:
                    expires[ev.db][ev.key] = ev.expire_ms
                self.keys += 1
            elif isinstance(ev, Aux):
                self.aux[ev.key] = ev.value
            elif isinstance(ev, Function):
                self.functions.append(ev)

    @property
    def stream_db(self) -> int:
        """AUX `repl-stream-db`: the DB the stream continues in (0 when absent)."""
        raw = self.aux.get(b"repl-stream-db")
        try:
            return int(raw) if raw is not None else 0
        except ValueError:
            return 0

    def commit(self) -> None:
        t = self.target
        t.dbs, t.expires, t.functions = self.dbs, self.expires, self.functions
        t.loaded_aux = self.aux
