"""What the relay counts about the commands it serves, as Redis counts it (sans-I/O).

- `CommandStats`: per command (full name, `client|list`) calls, time, rejected and failed
  calls (INFO commandstats), error replies by their first word (INFO errorstats,
  `total_error_replies`) and a latency histogram per command (INFO latencystats, LATENCY
  HISTOGRAM);
- `SlowLog`: SLOWLOG's entries (`slowlog-log-slower-than`, `slowlog-max-len`), as
  `slowlogPushEntryIfNeeded` makes them;
- `LatencyMonitor`: LATENCY's events (`latency-monitor-threshold`), as `latencyAddSample`
  keeps them: one sample per second per event, the last 160.
- `RateSampler`: `instantaneous_*` rates, as `trackInstantaneousMetric` samples them.

Durations are passed in (nanoseconds, measured by the hub around each call); nothing here
reads a clock. The hub (`replproxy.session.hub`) feeds these; INFO, SLOWLOG, LATENCY and
CONFIG RESETSTAT read or reset them. They must stay cheap: the hub calls `record` for every
command, and the GET/MGET fast lane once per batch.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


class Histogram:
    """Durations (ns) kept to 7 significant bits (under 1%; Redis's hdr_histogram keeps 2
    significant digits): enough for p50/p99/p99.9 and the power-of-two buckets of LATENCY
    HISTOGRAM, in a dict of at most a few thousand keys."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0

    def add(self, ns: int, n: int = 1) -> None:
        # 7 significant bits (within 1%, finer than hdr_histogram's 2 digits at the top of
        # a decade), by shifts: this runs for every command.
        shift = ns.bit_length() - 7
        key = (ns >> shift) << shift if shift > 0 else (ns or 1)
        counts = self.counts
        counts[key] = counts.get(key, 0) + n
        self.total += n

    def percentile(self, p: float) -> int:
        """The recorded value at percentile `p` (0-100), in ns: the lowest value with at
        least p% of the counts at or below it (`hdr_value_at_percentile`)."""
        if not self.total:
            return 0
        want = max(1, int(self.total * p / 100 + 0.5)) if p < 100 else self.total
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= want:
                return key
        return max(self.counts)

    def pow2_usec(self) -> list[tuple[int, int]]:
        """LATENCY HISTOGRAM's buckets: (upper bound in usec, a power of two; cumulative
        count), for the buckets that hold any count."""
        buckets: dict[int, int] = {}
        for ns, n in self.counts.items():
            us = max(1, (ns + 999) // 1000)
            bound = 1 << (us - 1).bit_length()
            buckets[bound] = buckets.get(bound, 0) + n
        out = []
        seen = 0
        for bound in sorted(buckets):
            seen += buckets[bound]
            out.append((bound, seen))
        return out


class CmdStat:
    __slots__ = ("calls", "failed", "hist", "rejected", "usec")

    def __init__(self) -> None:
        self.calls = 0
        self.usec = 0
        self.rejected = 0
        self.failed = 0
        self.hist = Histogram()


class CommandStats:
    """INFO commandstats / errorstats / latencystats and LATENCY HISTOGRAM."""

    # Redis stops tracking new error codes past this many (`ERRORSTATS_LIMIT`).
    ERRORSTATS_LIMIT = 128

    def __init__(self) -> None:
        self.commands: dict[bytes, CmdStat] = {}
        self.errors: dict[str, int] = {}
        self.total_error_replies = 0

    def stat(self, name: bytes) -> CmdStat:
        st = self.commands.get(name)
        if st is None:
            st = self.commands[name] = CmdStat()
        return st

    def record(self, name: bytes, ns: int, calls: int = 1) -> None:
        """`calls` runs of `name` that took `ns` nanoseconds together (`Histogram.add`
        inlined: this runs for every command)."""
        st = self.commands.get(name)
        if st is None:
            st = self.commands[name] = CmdStat()
        st.calls += calls
        st.usec += ns // 1000
        v = ns // calls if calls > 1 else ns
        shift = v.bit_length() - 7
        key = (v >> shift) << shift if shift > 0 else (v or 1)
        h = st.hist
        counts = h.counts
        counts[key] = counts.get(key, 0) + calls
        h.total += calls

    def error_reply(self, reply: bytes, n: int = 1) -> None:
        """An error reply (`-CODE message\\r\\n`) was sent: `afterErrorReply`."""
        self.total_error_replies += n
        end = reply.find(b" ")
        if end < 0:
            end = len(reply) - 2
        code = reply[1:end].decode("utf-8", "replace")
        if code in self.errors:
            self.errors[code] += n
        elif len(self.errors) < self.ERRORSTATS_LIMIT:
            self.errors[code] = n

    def reset(self) -> None:
        self.commands.clear()
        self.errors.clear()
        self.total_error_replies = 0


@dataclass
class SlowLogEntry:
    id: int
    time: int  # unix seconds
    usec: int
    argv: list[bytes]
    peer: str
    name: bytes


# `SLOWLOG_ENTRY_MAX_ARGC` / `SLOWLOG_ENTRY_MAX_STRING`.
MAX_ARGC = 32
MAX_STRING = 128


class SlowLog:
    def __init__(self, slower_than_usec: int = 10000, max_len: int = 128) -> None:
        self.slower_than = slower_than_usec
        self.max_len = max_len
        self.entries: deque[SlowLogEntry] = deque()
        self.next_id = 0

    def maybe_add(
        self, argv: list[bytes], usec: int, unix_now: float, peer: str, name: bytes
    ) -> None:
        """`slowlogPushEntryIfNeeded`: negative thresholds disable the log."""
        if self.slower_than < 0 or usec < self.slower_than:
            return
        kept: list[bytes] = []
        argc = min(len(argv), MAX_ARGC)
        for i in range(argc):
            if argc != len(argv) and i == argc - 1:
                kept.append(b"... (%d more arguments)" % (len(argv) - argc + 1))
                break
            a = argv[i]
            if len(a) > MAX_STRING:
                a = a[:MAX_STRING] + b"... (%d more bytes)" % (len(a) - MAX_STRING)
            kept.append(a)
        self.entries.appendleft(SlowLogEntry(self.next_id, int(unix_now), usec, kept, peer, name))
        self.next_id += 1
        while len(self.entries) > max(self.max_len, 0):
            self.entries.pop()

    def reset(self) -> None:
        self.entries.clear()


# `LATENCY_TS_LEN`.
HISTORY_LEN = 160


@dataclass
class LatencyEvent:
    samples: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=HISTORY_LEN))
    max: int = 0


class LatencyMonitor:
    def __init__(self, threshold_ms: int = 0) -> None:
        self.threshold_ms = threshold_ms
        self.events: dict[str, LatencyEvent] = {}

    def maybe_add(self, event: str, ms: int, unix_now: float) -> None:
        """`latencyAddSampleIfNeeded`: at or over the threshold (0 disables)."""
        if self.threshold_ms <= 0 or ms < self.threshold_ms:
            return
        now = int(unix_now)
        ev = self.events.get(event)
        if ev is None:
            ev = self.events[event] = LatencyEvent()
        ev.max = max(ev.max, ms)
        if ev.samples and ev.samples[-1][0] == now:
            # One sample per second: the highest of that second (`latencyAddSample`).
            t, prev = ev.samples[-1]
            ev.samples[-1] = (t, max(prev, ms))
        else:
            ev.samples.append((now, ms))

    def reset(self, names: list[str] | None = None) -> int:
        if not names:
            n = len(self.events)
            self.events.clear()
            return n
        n = 0
        for name in names:
            if self.events.pop(name, None) is not None:
                n += 1
        return n


class RateSampler:
    """`trackInstantaneousMetric`: the mean of the last 16 per-interval rates."""

    SAMPLES = 16

    def __init__(self) -> None:
        self.last_value: int | None = None
        self.last_time = 0.0
        self.rates: deque[float] = deque(maxlen=self.SAMPLES)

    def sample(self, value: int, now: float) -> None:
        if self.last_value is not None and now > self.last_time:
            self.rates.append((value - self.last_value) / (now - self.last_time))
        self.last_value = value
        self.last_time = now

    @property
    def rate(self) -> float:
        return sum(self.rates) / len(self.rates) if self.rates else 0.0
