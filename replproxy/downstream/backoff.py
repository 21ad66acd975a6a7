"""Full syncs to a downstream replica that keeps failing them are spaced out (sans-I/O).

A real master serves a full sync to a replica as often as it asks, and the replica's own
`replicationCron` paces the retries (about one a second). The relay often has a snapshot at
hand (the kept upstream one), so a replica that cannot load it - an older server than the
master's RDB version, a replica out of disk - would get thousands of full syncs a minute,
each costing the relay a snapshot's worth of bandwidth. This module remembers, per replica
(`ip:listening-port`, Redis's `replicationGetSlaveName`), how many full syncs in a row ended
without the replica ever acknowledging the stream, and tells the server how long the next one
must wait: `base * 2^(failures-1)`, capped at `cap` seconds. One ACK after a full sync
(a replica that loaded the snapshot) forgets the failures.

It owns only its table; the waiting itself (with `\\n` keep-alives, as while a snapshot is
made), the log line and the counter are the server's (`replproxy.downstream.server`).
Time is passed in (monotonic seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

BASE_DELAY = 1.0
# Entries of replicas not seen for this long are forgotten (the table stays small).
FORGET_AFTER = 3600.0


@dataclass
class _Failures:
    count: int = 0
    until: float = 0.0  # no full sync starts before this time
    seen: float = 0.0


class FullSyncBackoff:
    def __init__(self, cap: float, base: float = BASE_DELAY) -> None:
        self.cap = cap
        self.base = base
        self._table: dict[str, _Failures] = {}

    def delay(self, key: str, now: float) -> float:
        """Seconds the next full sync to `key` must wait (0: start now)."""
        f = self._table.get(key)
        if f is None or self.cap <= 0:
            return 0.0
        return max(0.0, f.until - now)

    def failures(self, key: str) -> int:
        f = self._table.get(key)
        return 0 if f is None else f.count

    def ended(self, key: str, now: float, *, loaded: bool) -> None:
        """A full sync to `key` ended: `loaded` when the replica acknowledged the stream
        after it (it loaded the snapshot), else it failed."""
        if loaded:
            self._table.pop(key, None)
            return
        f = self._table.setdefault(key, _Failures())
        f.count += 1
        f.seen = now
        f.until = now + min(self.cap, self.base * 2 ** min(f.count - 1, 30))
        if len(self._table) > 1024:
            for k in [k for k, v in self._table.items() if now - v.seen > FORGET_AFTER]:
                del self._table[k]
