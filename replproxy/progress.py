"""What the relay says while a sync runs: progress log lines, and a bar on a terminal.

Between `+FULLRESYNC` and the first snapshot byte a master is silent for seconds (it forks
and writes its snapshot, or waits `repl-diskless-sync-delay` for more replicas), then the
transfer and the load take as long as the dataset is big; clients get `-LOADING` until the
first snapshot is loaded. This module says, once a second at most, what the relay waits for
and how far it got: log lines every `LOG_EVERY` seconds, and on a terminal a progress bar for
the initial sync. It also logs the master's dialect once a snapshot names it.

It only reads state (`LinkStatus`, `Persistence`'s loading figures, the keyspace's AUX
fields). `SyncProgress` is sans-I/O (fed a `SyncView` and the time, returns log lines);
`watch_sync` is the trio task around it.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from replproxy.dialect import MasterDialect
from replproxy.link.protocol import LinkState

if TYPE_CHECKING:
    from replproxy.interfaces import StatusView as Relay

log = logging.getLogger("replproxy.progress")

TICK = 1.0
LOG_EVERY = 5.0
WAIT_QUIET = 1.0  # a wait shorter than this is not logged


def human_bytes(n: float) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True, slots=True)
class SyncView:
    """What progress is computed from, read from the relay once a tick."""

    master: str
    state: LinkState
    initial_sync_done: bool
    transfer_size: int | None  # None: diskless, size unknown
    transfer_read: int
    load_read: int  # bytes of the received snapshot loaded so far
    startup_loading: bool  # replproxy's own snapshot is loading (a restart)
    startup_total: int
    startup_loaded: int


@dataclass(frozen=True, slots=True)
class Phase:
    """The phase a bar shows: its text, how far (bytes) and out of how much (None: unknown)."""

    name: str  # wait, transfer, load, startup, or "" when nothing is in progress
    text: str
    done: int = 0
    total: int | None = None


class SyncProgress:
    """The phase of the current sync and the log lines to write about it."""

    def __init__(self, log_every: float = LOG_EVERY) -> None:
        self.log_every = log_every
        self._phase = ""
        self._since = 0.0
        self._last_log = 0.0
        self._last_bytes = 0
        self._last_time = 0.0

    @staticmethod
    def phase_of(v: SyncView) -> Phase:
        if v.startup_loading:
            return Phase(
                "startup", "loading replproxy's snapshot", v.startup_loaded, v.startup_total or None
            )
        if v.state in (LinkState.RECEIVE_PSYNC, LinkState.TRANSFER_WAIT_BULK):
            return Phase("wait", "waiting for the master's snapshot")
        if v.state is LinkState.TRANSFER:
            return Phase("transfer", "receiving the snapshot", v.transfer_read, v.transfer_size)
        if v.state is LinkState.LOADING:
            total = v.transfer_size if v.transfer_size is not None else v.transfer_read
            return Phase("load", "loading the snapshot", v.load_read, total or None)
        return Phase("", "")

    def update(self, now: float, v: SyncView) -> list[str]:
        """Log lines for this tick (often none)."""
        ph = self.phase_of(v)
        if ph.name == "startup":
            return []  # persistence logs its own load progress
        if ph.name != self._phase:
            self._phase, self._since = ph.name, now
            self._last_bytes, self._last_time = ph.done, now
            # A wait is worth a line once it lasts (a partial resync answers at once).
            self._last_log = now if ph.name != "wait" else now - self.log_every + WAIT_QUIET
            return []
        if not ph.name or now - self._last_log < self.log_every:
            return []
        rate = (ph.done - self._last_bytes) / max(now - self._last_time, 1e-9)
        self._last_log, self._last_bytes, self._last_time = now, ph.done, now
        if ph.name == "wait":
            return [self._waiting(v, now - self._since)]
        return [f"master {v.master}: {ph.text}: {self.figures(ph)}, {human_bytes(rate)}/s"]

    @staticmethod
    def figures(ph: Phase) -> str:
        if ph.total:
            return (
                f"{ph.done * 100 / ph.total:.0f}% ({human_bytes(ph.done)} of "
                f"{human_bytes(ph.total)})"
            )
        return f"{human_bytes(ph.done)} (diskless: size unknown)"

    @staticmethod
    def _waiting(v: SyncView, seconds: float) -> str:
        clients = (
            "clients get -LOADING until it is loaded"
            if not v.initial_sync_done
            else "clients keep reading the current dataset meanwhile"
        )
        return (
            f"master {v.master}: waiting {seconds:.0f}s for the master to start sending its "
            "snapshot: it answers once the snapshot is ready to go (it forks and writes one, "
            f"or waits its repl-diskless-sync-delay for more replicas); {clients}"
        )


def view_of(relay: Relay) -> SyncView:
    st = relay.link_status
    p = relay.persistence
    return SyncView(
        master=str(relay.upstream),
        state=st.state,
        initial_sync_done=st.initial_sync_done,
        transfer_size=st.transfer_size,
        transfer_read=st.transfer_read,
        load_read=st.load_read,
        startup_loading=p.loading,
        startup_total=p.loading_total_bytes,
        startup_loaded=p.loading_loaded_bytes,
    )


async def watch_sync(relay: Relay) -> None:
    """Log sync progress (and the master's dialect) for as long as the relay runs; draw a bar
    for the initial sync when `--progress` asks for one (a terminal)."""
    progress = SyncProgress()
    bar = _Bar() if relay.config.progress_bar else None
    aux: object = None
    try:
        while True:
            now = trio.current_time()
            view = view_of(relay)
            for line in progress.update(now, view):
                log.info("%s", line)
            loaded = relay.keyspace.loaded_aux
            if loaded is not aux:
                aux = loaded
                if loaded:
                    d = MasterDialect.from_aux(loaded)
                    log.info(
                        "master dialect: %s %s (from its snapshot): command table, error texts "
                        "and reply formats follow it",
                        d.server,
                        d.version_text,
                    )
            if bar is not None:
                if view.initial_sync_done and not view.startup_loading:
                    bar.stop()
                    bar = None
                else:
                    bar.show(SyncProgress.phase_of(view))
            await trio.sleep(TICK)
    finally:
        if bar is not None:
            bar.stop()


class _Bar:
    """A rich progress bar on stdout; log lines go above it while it shows."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            auto_refresh=False,
            transient=True,
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self.task: Any = None
        self.phase = ""
        self._streams: list[tuple[logging.StreamHandler[Any], Any]] = []

    def show(self, ph: Phase) -> None:
        if self.task is None:
            self.progress.start()
            # The handlers hold the real stdout: point them at rich's proxy meanwhile.
            for h in logging.getLogger().handlers:
                if isinstance(h, logging.StreamHandler) and h.stream in (
                    sys.__stdout__,
                    sys.__stderr__,
                ):
                    self._streams.append((h, h.stream))
                    h.setStream(sys.stdout)
            self.task = self.progress.add_task("", total=None)
        if ph.name != self.phase:
            self.phase = ph.name
            self.progress.reset(self.task, total=ph.total)
        self.progress.update(
            self.task,
            description=ph.text or "connecting to the master",
            completed=ph.done,
            total=ph.total,
        )
        self.progress.refresh()

    def stop(self) -> None:
        if self.task is not None:
            self.progress.stop()
            for h, stream in self._streams:
                h.setStream(stream)
            self._streams = []
            self.task = None
