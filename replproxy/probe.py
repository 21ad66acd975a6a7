"""How far behind the master the relay is: the master offset probe and the lag it measures.

`replproxy_repl_lag_bytes` says what was received and not yet applied; a relay whose link
stalls shows 0 there while its data gets older by the second. The true lag needs the master's
own position, so this module asks the master for it on a second, ordinary client connection
(`INFO replication` -> `master_repl_offset`, every second) and keeps a short history of
(time, master offset). Then, for an applied offset A:

- lag in bytes = the master's offset - the relay's applied offset, both read at the probe;
- lag in seconds = now - the time the master first went past A (the first byte the relay
  lacks existed from then on), 0 when the relay has everything the master had.

Without the probe (`--master-offset-probe no`, or the probe failing, e.g. an ACL user without
`+info`), the lag in seconds is estimated from the master's PINGs, which a master puts in the
stream every `repl-ping-replica-period` (10 s): no PING applied for longer than that period
means the relay is at least that much behind. `Lag.source` says which estimate is in use.

The same histories give each downstream replica's lag: behind the relay (the relay's own
applied offsets, sampled here every second) and behind the master.

What this module owns: the probe connection, the histories and every lag figure; it reads
the relay's state (`Replication`, the link's current master, the downstream replicas) and
never changes it. `OffsetHistory`, `PingClock` and `LagTracker` are sans-I/O (time is passed
in); `MasterProbe.run` is the trio task around them. The probe's connection options come from
`master_connection_options`, the one place they are built (TLS options belong there).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from replproxy.config import Config, Upstream

if TYPE_CHECKING:
    from replproxy.interfaces import StatusView as Relay

log = logging.getLogger("replproxy.probe")

PROBE_INTERVAL = 1.0
PROBE_TIMEOUT = 2.0  # seconds a probe may take before it counts as failed
# A probed master offset older than this many probe intervals no longer counts as "probe".
PROBE_STALE_INTERVALS = 3
DEFAULT_PING_PERIOD = 10.0  # Redis's repl-ping-replica-period
HISTORY_SAMPLES = 4096


def master_connection_options(config: Config, upstream: Upstream) -> dict[str, Any]:
    """redis-py keyword arguments for an ordinary client connection to the master.

    The same credentials as the replication link (`--upstream`, `masteruser`/`masterauth`).
    Every extra connection to the master is configured here and only here, so transport
    options (TLS) are added in one place. No retries: a failed probe is retried next second.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {
        "host": upstream.host,
        "port": upstream.port,
        "username": upstream.username,
        "password": upstream.password,
        "socket_timeout": PROBE_TIMEOUT,
        "socket_connect_timeout": PROBE_TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
        "protocol": 2,
        "health_check_interval": 0,
    }


def parse_info(text: str) -> dict[str, str]:
    """`field:value` lines of an INFO reply, as text (no number guessing: a replid of digits
    stays a string)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


# ---- sans-I/O: histories and the lag ----


class OffsetHistory:
    """(time, offset) samples of one growing offset, oldest first, bounded.

    A sample is kept only when the offset moved, so an idle master costs one sample per PING.
    Past `max_samples` the older half is thinned (every other sample dropped): recent history
    stays exact, older history coarser. A dropped sample only makes `first_time_past` later,
    so the lag derived from it stays a lower bound.
    """

    def __init__(self, max_samples: int = HISTORY_SAMPLES) -> None:
        self.max_samples = max(4, max_samples)
        self._times: deque[float] = deque()
        self._offsets: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._offsets)

    def clear(self) -> None:
        self._times.clear()
        self._offsets.clear()

    def record(self, now: float, offset: int) -> None:
        if self._offsets:
            last = self._offsets[-1]
            if offset == last:
                return
            if offset < last:  # another history (a full resync): the old samples mean nothing
                self.clear()
        self._times.append(now)
        self._offsets.append(offset)
        if len(self._offsets) > self.max_samples:
            self._thin()

    def _thin(self) -> None:
        half = len(self._offsets) // 2
        times, offsets = list(self._times), list(self._offsets)
        self._times = deque(times[:half:2] + times[half:])
        self._offsets = deque(offsets[:half:2] + offsets[half:])

    @property
    def latest(self) -> tuple[float, int] | None:
        if not self._offsets:
            return None
        return self._times[-1], self._offsets[-1]

    def first_time_past(self, offset: int) -> float | None:
        """The time of the first sample beyond `offset`; None when no sample is."""
        offsets = self._offsets
        if not offsets or offsets[-1] <= offset:
            return None
        # Binary search on the (strictly increasing) offsets.
        lo, hi = 0, len(offsets) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if offsets[mid] > offset:
                hi = mid
            else:
                lo = mid + 1
        return self._times[lo]

    def seconds_behind(self, offset: int, now: float) -> float:
        """How long the history has been past `offset` (0 when it is not)."""
        t = self.first_time_past(offset)
        return 0.0 if t is None else max(0.0, now - t)


class PingClock:
    """The lag estimate without the probe: the master's PINGs, counted as they are applied.

    A master sends `PING` into the stream every `repl-ping-replica-period`; a relay that
    applied none for longer than that period is at least the excess behind. The period is
    learnt from the intervals seen (their median), `DEFAULT_PING_PERIOD` until there are 3.
    """

    def __init__(self, default_period: float = DEFAULT_PING_PERIOD) -> None:
        self.default_period = default_period
        self.pings: int | None = None
        self.last_ping: float | None = None
        self._intervals: deque[float] = deque(maxlen=5)

    @property
    def period(self) -> float:
        if len(self._intervals) < 3:
            return self.default_period
        ordered = sorted(self._intervals)
        return min(60.0, max(1.0, ordered[len(ordered) // 2]))

    def observe(self, now: float, pings: int) -> None:
        if self.pings is None:  # the first look counts as a PING: nothing is known before
            self.pings, self.last_ping = pings, now
            return
        if pings != self.pings:
            if self.last_ping is not None and pings == self.pings + 1:
                self._intervals.append(now - self.last_ping)
            self.pings, self.last_ping = pings, now

    def seconds_behind(self, now: float) -> float | None:
        if self.last_ping is None:
            return None
        return max(0.0, now - self.last_ping - self.period)


@dataclass(frozen=True, slots=True)
class Lag:
    """The relay's lag behind the master; None where the source cannot tell."""

    source: str  # "probe", "ping" or "none"
    bytes: int | None
    seconds: float | None
    master_offset: int | None  # the master's master_repl_offset as last probed


@dataclass(frozen=True, slots=True)
class ReplicaLag:
    """One downstream replica's lag behind the relay and behind the master."""

    relay_bytes: int
    relay_seconds: float
    master_bytes: int | None
    master_seconds: float | None


SOURCES = ("probe", "ping", "none")


class LagTracker:
    """The histories and every lag figure, fed by the probe task (or by tests)."""

    def __init__(self, probe_interval: float = PROBE_INTERVAL) -> None:
        self.probe_interval = probe_interval
        self.master = OffsetHistory()
        self.relay = OffsetHistory()
        self.pings = PingClock()
        self.master_replids: tuple[str, str] | None = None
        self.probed_at: float | None = None  # when the last probe answered
        self.applied_at_probe = 0  # the relay's applied offset when it asked
        self._relay_epoch: int | None = None
        # Wall-clock times (unix) the relay last did a full / partial sync with its master,
        # noticed from the counters moving.
        self.last_full_sync: float | None = None
        self.last_partial_sync: float | None = None
        self._syncs: tuple[int, int] | None = None

    # ---- feeding ----

    def observe_relay(
        self,
        now: float,
        wall: float,
        *,
        epoch: int,
        applied: int,
        pings: int,
        sync_full: int,
        sync_partial: int,
    ) -> None:
        """The relay's own state, once per probe interval."""
        if epoch != self._relay_epoch:
            self.relay.clear()
            self._relay_epoch = epoch
        self.relay.record(now, applied)
        self.pings.observe(now, pings)
        if self._syncs is not None:
            if sync_full != self._syncs[0]:
                self.last_full_sync = wall
            if sync_partial != self._syncs[1]:
                self.last_partial_sync = wall
        self._syncs = (sync_full, sync_partial)

    def observe_master(
        self, now: float, replid: str, replid2: str, offset: int, applied: int
    ) -> None:
        """What the probe read from the master's INFO replication, with the relay's applied
        offset read just before asking: the lag in bytes is their difference, one
        measurement (a master offset up to a second old against the applied offset of now
        would hide any lag shorter than a second)."""
        if self.master_replids is not None and self.master_replids[0] != replid:
            self.master.clear()  # another history: offsets do not compare
        self.master_replids = (replid, replid2)
        self.master.record(now, offset)
        self.probed_at = now
        self.applied_at_probe = applied

    # ---- reading ----

    def probe_fresh(self, now: float, replid: str) -> bool:
        """Whether the probed master offsets apply to the relay's history right now."""
        if self.probed_at is None or self.master_replids is None:
            return False
        if now - self.probed_at > PROBE_STALE_INTERVALS * self.probe_interval + PROBE_TIMEOUT:
            return False
        return replid in self.master_replids and self.master.latest is not None

    def lag(self, now: float, *, replid: str, applied: int, has_history: bool) -> Lag:
        """The relay's lag behind the master at `now`."""
        latest = self.master.latest
        master_offset = latest[1] if latest is not None else None
        if has_history and self.probe_fresh(now, replid):
            assert latest is not None
            return Lag(
                "probe",
                max(0, latest[1] - self.applied_at_probe),
                # The time the master went past what is applied NOW: a lower bound, late by
                # at most one probe interval.
                self.master.seconds_behind(applied, now),
                master_offset,
            )
        seconds = self.pings.seconds_behind(now) if has_history else None
        if seconds is None:
            return Lag("none", None, None, master_offset)
        return Lag("ping", None, seconds, master_offset)

    def replica_lag(self, now: float, lag: Lag, *, applied: int, ack: int) -> ReplicaLag:
        """A replica that acknowledged `ack`, given the relay's own `lag`."""
        relay_seconds = self.relay.seconds_behind(ack, now)
        if lag.source == "probe":
            assert lag.bytes is not None
            return ReplicaLag(
                max(0, applied - ack),
                relay_seconds,
                # Behind the relay now, plus the relay's own measured lag.
                max(0, applied - ack) + lag.bytes,
                self.master.seconds_behind(ack, now),
            )
        master_seconds = None if lag.seconds is None else relay_seconds + lag.seconds
        return ReplicaLag(max(0, applied - ack), relay_seconds, None, master_seconds)


# ---- the trio task ----


class MasterProbe:
    """Runs the probe every second and answers lag questions for metrics, INFO and /readyz."""

    def __init__(self, relay: Relay, interval: float = PROBE_INTERVAL) -> None:
        self.relay = relay
        self.enabled = relay.config.master_offset_probe
        self.interval = interval
        self.tracker = LagTracker(interval)
        self.last_error: str | None = None
        self._client: Any = None
        self._client_for: Upstream | None = None
        self._lock = threading.Lock()

    def lag(self, now: float | None = None) -> Lag:
        repl = self.relay.replication
        return self.tracker.lag(
            time.monotonic() if now is None else now,
            replid=repl.replid,
            applied=repl.repl_offset,
            has_history=repl.has_history,
        )

    def replica_lag(self, ack: int, lag: Lag, now: float) -> ReplicaLag:
        return self.tracker.replica_lag(
            now, lag, applied=self.relay.replication.repl_offset, ack=ack
        )

    def observe(self) -> None:
        repl = self.relay.replication
        self.tracker.observe_relay(
            time.monotonic(),
            time.time(),
            epoch=repl.history_epoch,
            applied=repl.repl_offset,
            pings=repl.stats.pings_applied,
            sync_full=repl.stats.sync_full,
            sync_partial=repl.stats.sync_partial_ok,
        )

    async def run(self) -> None:
        try:
            deadline = trio.current_time()
            while True:
                self.observe()
                if self.enabled:
                    await self._probe_once()
                deadline = max(deadline + self.interval, trio.current_time())
                await trio.sleep_until(deadline)
        finally:
            self._close()

    async def _probe_once(self) -> None:
        upstream = self.relay.upstream
        applied = self.relay.replication.repl_offset
        try:
            with trio.fail_after(PROBE_TIMEOUT * 2):
                replid, replid2, offset = await trio.to_thread.run_sync(
                    self._query, upstream, abandon_on_cancel=True
                )
        except Exception as e:  # any failure: fall back to the PING estimate, say so once
            self._failed(upstream, e)
            return
        if self.last_error is not None:
            log.info("master offset probe of %s works again: lag measured by the probe", upstream)
            self.last_error = None
        self.tracker.observe_master(time.monotonic(), replid, replid2, offset, applied)

    def _failed(self, upstream: Upstream, e: Exception) -> None:
        why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        if why != self.last_error:
            log.warning(
                "master offset probe of %s failed (%s); lag in seconds is estimated from "
                "the master's PINGs until it works (the probe's user needs +info)",
                upstream,
                why,
            )
        self.last_error = why

    def _query(self, upstream: Upstream) -> tuple[str, str, int]:
        """In a worker thread: one `INFO replication` on the (kept) probe connection.

        The lock keeps a probe abandoned at its deadline (still inside a socket timeout)
        from sharing the connection with the next one.
        """
        import redis

        if not self._lock.acquire(blocking=False):
            raise RuntimeError("the previous probe has not returned yet")
        try:
            if self._client is None or self._client_for != upstream:
                self._close_client()
                client = redis.Redis(**master_connection_options(self.relay.config, upstream))
                # The raw text: redis-py's INFO parser turns a replid of digits into a number.
                client.response_callbacks.pop("INFO", None)
                self._client, self._client_for = client, upstream
            try:
                raw = self._client.execute_command("INFO", "replication")
            except Exception:
                self._close_client()  # a fresh connection next time
                raise
        finally:
            self._lock.release()
        info = parse_info(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))
        try:
            return (
                info["master_replid"],
                info.get("master_replid2", "0" * 40),
                int(info["master_repl_offset"]),
            )
        except (KeyError, ValueError) as e:
            raise RuntimeError(f"INFO replication without master_repl_offset: {e}") from e

    def _close(self) -> None:
        if self._lock.acquire(blocking=False):
            try:
                self._close_client()
            finally:
                self._lock.release()

    def _close_client(self) -> None:
        client, self._client, self._client_for = self._client, None, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing a broken one: nothing left to do
                client.close()


# ---- what INFO shows ----


def _num(v: float | None, fmt: str = "{:.3f}") -> str:
    return "-1" if v is None else fmt.format(v)


def info_fields(relay: Relay, now: float) -> list[tuple[str, object]]:
    """replproxy's own `INFO replication` fields, written AFTER Redis's own: parsers such as
    redis_exporter and Sentinel read Redis's fields by name and stop at none of these (no
    name starts with `master_` or `slave`). -1 means unknown."""
    probe = relay.probe
    lag = probe.lag(now)
    t = probe.tracker
    fields: list[tuple[str, object]] = [
        ("replproxy_master_lag_source", lag.source),
        ("replproxy_master_lag_bytes", _num(lag.bytes, "{}")),
        ("replproxy_master_lag_seconds", _num(lag.seconds)),
        ("replproxy_master_probed_repl_offset", _num(lag.master_offset, "{}")),
        (
            "replproxy_master_offset_probe",
            "off"
            if not probe.enabled
            else ("ok" if probe.last_error is None and t.probed_at is not None else "failing"),
        ),
        # What Redis 7.0+ shows as slave_read_repl_offset, on every master version.
        ("replproxy_read_repl_offset", relay.replication.read_offset),
        ("replproxy_master_sync_full", relay.replication.stats.sync_full),
        ("replproxy_master_sync_partial_ok", relay.replication.stats.sync_partial_ok),
        ("replproxy_master_last_full_sync_time", int(t.last_full_sync or 0)),
        ("replproxy_master_last_partial_sync_time", int(t.last_partial_sync or 0)),
    ]
    disk = getattr(relay.replication.backlog, "disk", None)
    if disk is not None:
        fields += [
            ("replproxy_repl_backlog_disk_size", disk.max_bytes),
            ("replproxy_repl_backlog_disk_first_byte_offset", disk.first_byte_offset),
            ("replproxy_repl_backlog_disk_histlen", disk.histlen),
        ]
    for i, r in enumerate(relay.downstream_replicas):
        ack = r.input.ack_offset
        online = r.state.value == "online" and r.psync
        rl = probe.replica_lag(ack, lag, now) if online else None
        fields.append(
            (
                f"replproxy_replica{i}",
                f"ip={r.ip},port={r.hs.listening_port},state={r.state.value},offset={ack},"
                f"lag_bytes={_num(rl.relay_bytes if rl else None, '{}')},"
                f"lag_seconds={_num(rl.relay_seconds if rl else None)},"
                f"master_lag_bytes={_num(rl.master_bytes if rl else None, '{}')},"
                f"master_lag_seconds={_num(rl.master_seconds if rl else None)},"
                f"last_ack_seconds={now - r.ack_time:.3f}",
            )
        )
    return fields
