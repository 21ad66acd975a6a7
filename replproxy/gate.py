"""Whether to serve: the one place that answers it (`ServingGate`).

Four parts of the relay ask the same question in different words: the client session (run a
command, or refuse it with `-LOADING` / `-MASTERDOWN`?), its GET/MGET fast lane (may a plain
read run without the checks?), the downstream server (may a replica PSYNC from us?) and the
readiness probe (may a load balancer send reads here?). They must agree on what "the link is
up" and "the data is loaded" mean, so each asks the gate, which reads the replication core,
the link's status and the start-up load, and owns no state of its own except the shutdown
flag. Redis's meanings:

- the link is up when the replica state is CONNECTED (`master_link_status:up`): handshake,
  transfer and loading are not up;
- the data is loaded once a snapshot or a restart gave the relay a position in the master's
  history (`Replication.has_history`) and no start-up load is running.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from replproxy.resp import reply

if TYPE_CHECKING:
    from replproxy.config import Config
    from replproxy.link.driver import LinkStatus
    from replproxy.probe import Lag
    from replproxy.replication import Replication

LOADING = reply.error(b"LOADING Redis is loading the dataset in memory")
MASTERDOWN = reply.error(
    b"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
)


class ServingGate:
    def __init__(
        self,
        config: Config,
        replication: Replication,
        status: LinkStatus,
        start_up_loading: Callable[[], bool],
        lag: Callable[[], Lag] | None = None,
    ) -> None:
        self.config = config
        self.replication = replication
        self.status = status
        self._start_up_loading = start_up_loading
        # The lag behind the master (`replproxy.probe`), for readiness; None: only what was
        # received and not yet applied is known.
        self._lag = lag
        # Set by the shutdown path: readiness turns off at once.
        self.shutting_down = False

    @property
    def link_up(self) -> bool:
        """`master_link_status:up`: the link is in the CONNECTED state."""
        return self.status.up

    @property
    def loaded(self) -> bool:
        """The relay holds a dataset at a position in the master's history."""
        return self.replication.has_history and not self._start_up_loading()

    def refusal(self, stale_ok: bool, loading_ok: bool) -> bytes | None:
        """The error a command gets before it runs (`processCommand`'s order: MASTERDOWN for
        commands without the `stale` flag when serving stale data is off and the link is
        down, then LOADING for commands without the `loading` flag), or None to run it."""
        if not stale_ok and not self.config.replica_serve_stale_data and not self.link_up:
            return MASTERDOWN
        if not loading_ok and not self.loaded:
            return LOADING
        return None

    def serves_plain_reads(self) -> bool:
        """Whether a command flagged neither `stale` nor `loading` (GET, MGET) runs now: the
        fast lane's condition, the same answer as `refusal(False, False) is None`."""
        return self.loaded and (self.config.replica_serve_stale_data or self.link_up)

    def serves_psync(self) -> bool:
        """Whether a downstream replica may SYNC/PSYNC: we hold a position in the master's
        history, and the link is up unless `--replica-serve-psync-when-down`."""
        return self.replication.has_history and (
            self.link_up or self.config.replica_serve_psync_when_down
        )

    def readiness(self, now: float | None = None) -> tuple[bool, str]:
        """Whether a load balancer may send reads here, and why not when it may not: link up,
        first sync done, recent I/O from the master and a small lag."""
        st, cfg = self.status, self.config
        if self.shutting_down:
            return False, "shutting down"
        if not st.initial_sync_done:
            return False, "initial sync not complete"
        if not st.up:
            return False, f"master link down: {st.last_error or 'connecting'}"
        now = time.monotonic() if now is None else now
        if st.last_io is None or now - st.last_io > cfg.ready_max_io_seconds:
            return False, f"no data from master for more than {cfg.ready_max_io_seconds:g}s"
        lag = self._lag() if self._lag is not None else None
        # Without the probe the bytes are those received and not yet applied (all that is
        # known).
        behind = (
            lag.bytes
            if lag is not None and lag.bytes is not None
            else (self.replication.read_offset - self.replication.repl_offset)
        )
        if behind > cfg.ready_max_lag_bytes:
            return False, f"lag {behind} bytes over --ready-max-lag-bytes {cfg.ready_max_lag_bytes}"
        if lag is not None and lag.seconds is not None and lag.seconds > cfg.ready_max_lag_seconds:
            return False, (
                f"lag {lag.seconds:.1f}s ({lag.source}) over --ready-max-lag-seconds "
                f"{cfg.ready_max_lag_seconds:g}"
            )
        return True, "ready"
