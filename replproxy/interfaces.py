"""The narrow interfaces between the relay's parts (typing only: no behaviour here).

The composition root (`replproxy.app.Relay`) builds the parts and implements these; the parts
that need something from another part ask through one of them instead of holding the whole
relay:

- `Control`: what clients may ask the process to do (SHUTDOWN, REPLICAOF, SAVE, BGSAVE);
- `StatusView`: the read-only state INFO, ROLE, CONFIG GET, /metrics and the HTTP probes
  show;
- `Downstream`: what the client session needs from the downstream server (may a replica
  SYNC now?).

Nothing here imports a concrete part at run time, so any layer may import this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from replproxy.cluster.node import ClusterNode
    from replproxy.config import Config, Upstream
    from replproxy.downstream.psync import ReplicaHandshake
    from replproxy.downstream.server import DownstreamReplica, DownstreamStats
    from replproxy.keyspace import Keyspace
    from replproxy.link.driver import LinkStatus
    from replproxy.persistence import Persistence
    from replproxy.probe import MasterProbe
    from replproxy.replication import Replication
    from replproxy.session.hub import SessionHub


@dataclass(frozen=True)
class LinkClient:
    """A replication connection as CLIENT LIST shows it: the link with the master
    (`flags=M`) or a downstream replica (`flags=S`). `key` names the connection for
    `Control.kill_link` and stays the same while it lives."""

    key: str
    flags: str  # "M" or "S"
    addr: str
    laddr: str
    ctime: float  # monotonic
    last_active: float  # monotonic
    db: int
    last_cmd: str
    user: str
    net_in: int
    net_out: int
    commands: int
    out_bytes: int = 0


class Control(Protocol):
    """What clients may ask the process to do."""

    async def shutdown(
        self, *, save: bool | None = None, force: bool = False, now: bool = False, reason: str
    ) -> bool:
        """Stop gracefully (see `Relay.shutdown`); False when it failed and the relay goes on."""
        ...

    def repoint(self, host: str, port: int) -> bool:
        """Follow another master (REPLICAOF); False when it is the current one already."""
        ...

    def save(self) -> None:
        """SAVE: write the snapshot now (raises `persistence.SaveError`)."""
        ...

    def bgsave(self) -> int:
        """BGSAVE: fork a child that writes the snapshot; its pid."""
        ...

    def kill_link(self, key: str) -> bool:
        """CLIENT KILL of a replication connection (`LinkClient.key`): the master link
        reconnects (PSYNC), a downstream replica is dropped. False when it is gone."""
        ...


class Downstream(Protocol):
    """What the client session asks the downstream server."""

    def refusal(self, hs: ReplicaHandshake) -> bytes | None:
        """The error a SYNC/PSYNC gets before anything else happens, or None to serve it."""
        ...


class StatusView(Protocol):
    """Read-only state of the whole relay, for INFO, ROLE, CONFIG GET, /metrics and probes.

    Attributes are the parts' own state objects; readers must not change them.
    """

    @property
    def config(self) -> Config: ...

    @property
    def run_id(self) -> str: ...

    @property
    def started_at(self) -> float:
        """Unix time the process started."""
        ...

    @property
    def bound_port(self) -> int | None:
        """The client port actually bound (`--port 0` picks one)."""
        ...

    @property
    def upstream(self) -> Upstream:
        """The master replicated from now (REPLICAOF changes it)."""
        ...

    @property
    def link_status(self) -> LinkStatus: ...

    @property
    def replication(self) -> Replication: ...

    @property
    def keyspace(self) -> Keyspace: ...

    @property
    def persistence(self) -> Persistence: ...

    @property
    def downstream_stats(self) -> DownstreamStats: ...

    @property
    def downstream_replicas(self) -> list[DownstreamReplica]: ...

    @property
    def sessions(self) -> SessionHub:
        """The client sessions and their counters."""
        ...

    @property
    def probe(self) -> MasterProbe:
        """The lag behind the master."""
        ...

    @property
    def cluster(self) -> ClusterNode | None:
        """The cluster read endpoint, in cluster mode."""
        ...

    @property
    def shutting_down(self) -> bool: ...

    def link_clients(self) -> list[LinkClient]:
        """The replication connections CLIENT LIST shows (master link first)."""
        ...
