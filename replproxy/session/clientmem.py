"""maxmemory-clients: the output memory of all clients together, and client eviction.

Redis 7 (`client-eviction`, `evictClients`) closes the clients using the most memory,
biggest first, while all clients together use more than `maxmemory-clients`; clients that
set `CLIENT NO-EVICT on` are never chosen. The relay counts what a client costs beyond its
fixed state: output built for it and not yet sent (`ClientSession.out_bytes`), which is
where a client that pipelines big reads without reading them costs memory. `total` is kept
up to date by the sessions (`ClientSession.grow` / `sent`) so the check is O(1) until the
limit is passed.

Owns only the total and the choice of whom to close; closing is `ClientSession.kill`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from replproxy.config import parse_maxmemory_clients

if TYPE_CHECKING:
    from replproxy.session.client import ClientSession
    from replproxy.session.hub import SessionHub

log = logging.getLogger("replproxy.session")


class ClientMemory:
    def __init__(self, hub: SessionHub, setting: str) -> None:
        self.hub = hub
        self.total = 0
        self.limit = 0
        self.setting = "0"
        self.configure(setting)

    def configure(self, setting: str) -> None:
        """`maxmemory-clients` (a size or a percentage; raises ConfigError)."""
        self.limit = parse_maxmemory_clients(setting)
        self.setting = setting

    def check(self, current: ClientSession | None = None) -> None:
        """Close the biggest evictable clients while the total is over the limit."""
        if not self.limit or self.total <= self.limit:
            return
        over = self.total - self.limit
        candidates = sorted(
            (
                c
                for c in self.hub.clients.values()
                if not c.no_evict and not c.closing and c.out_bytes
            ),
            key=lambda c: c.out_bytes,
            reverse=True,
        )
        for c in candidates:
            if over <= 0:
                break
            over -= c.out_bytes
            self.hub.stats.evicted_clients += 1
            c.kill(
                f"client evicted: all clients use more than maxmemory-clients "
                f"{self.setting} ({self.total} bytes), this one {c.out_bytes}",
                cut=True,
            )

    def released(self, c: ClientSession) -> None:
        """`c` is gone: what it still held is freed."""
        self.total -= c.out_bytes
        c.out_bytes = 0
