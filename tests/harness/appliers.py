"""Helpers for unit tests that call the keyspace appliers directly (no server)."""

from __future__ import annotations

from replproxy.keyspace import WRITE_COMMANDS, Keyspace


def run(ks: Keyspace, *args: object, db: int = 0) -> None:
    """Call the registered applier directly, so a failure raises instead of being counted."""
    argv = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    WRITE_COMMANDS[argv[0].lower()].handler(ks, db, argv)


class FixedClock(Keyspace):
    """A keyspace whose clock the test sets (relative TTLs from 5.x/6.x masters)."""

    def __init__(self, now: int = 1_000_000) -> None:
        super().__init__()
        self.now = now

    def now_ms(self) -> int:
        return self.now
