"""A real master, a REAL replica of it, and the relay of it: the oracle setup for what a
replica's clients see (tracking invalidations, keyspace notifications, MONITOR).

`Triple.sync()` waits until the replica and the relay have both applied everything the
master produced; the admin connections it polls with are separate from the clients under
test (their INFO commands show in a MONITOR: compare the master's lines only).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, ServerKind, start_server, wait_for


@dataclass
class Triple:
    kind: ServerKind
    master: RedisServer
    replica: RedisServer
    relay: RelayProcess

    @property
    def ports(self) -> dict[str, int]:
        """The two servers a client compares: the replica (the oracle) and the relay."""
        return {"replica": self.replica.port, "relay": self.relay.port}

    @property
    def master_addr(self) -> str:
        return f"127.0.0.1:{self.master.port}"

    def sync(self, timeout: float = 60) -> int:
        def offset(c: redis.Redis, key: str) -> int:
            return int(c.info("replication")[key])

        with self.master.client() as m, self.replica.client() as r, self.relay.client() as p:

            def done() -> bool:
                target = offset(m, "master_repl_offset")
                ri, pi = r.info("replication"), p.info("replication")
                return (
                    ri["master_link_status"] == "up"
                    and pi["master_link_status"] == "up"
                    and int(ri["master_repl_offset"]) == target
                    and int(pi["slave_repl_offset"]) == target
                )

            wait_for(done, timeout, what="replica and relay in sync with the master")
            return offset(m, "master_repl_offset")


@contextmanager
def triple(
    kind: ServerKind,
    *relay_args: str,
    replica_extra: dict[str, str] | None = None,
    master_extra: dict[str, str] | None = None,
) -> Iterator[Triple]:
    master = start_server(kind, extra=master_extra)
    replica = relay = None
    try:
        replica = start_server(
            kind, extra={"replicaof": f"127.0.0.1 {master.port}", **(replica_extra or {})}
        )
        relay = start_relay(upstream_url(master), *relay_args)
        t = Triple(kind, master, replica, relay)
        t.sync()
        yield t
    finally:
        for s in (relay, replica, master):
            if s is not None:
                s.stop()
