"""The lag calculator (replproxy.probe), sans I/O: histories, PINGs, sources, replicas."""

from __future__ import annotations

from replproxy.probe import LagTracker, OffsetHistory, PingClock, parse_info

REPLID = "a" * 40
OTHER = "b" * 40
NULL = "0" * 40


def test_history_keeps_only_moves_and_finds_the_first_sample_past_an_offset() -> None:
    h = OffsetHistory()
    for t, off in [(0.0, 100), (1.0, 100), (2.0, 150), (3.0, 150), (4.0, 400)]:
        h.record(t, off)
    assert len(h) == 3  # unchanged offsets add nothing
    assert h.latest == (4.0, 400)
    assert h.first_time_past(99) == 0.0
    assert h.first_time_past(100) == 2.0
    assert h.first_time_past(399) == 4.0
    assert h.first_time_past(400) is None  # caught up
    assert h.seconds_behind(100, now=10.0) == 8.0
    assert h.seconds_behind(400, now=10.0) == 0.0


def test_history_restarts_when_the_offset_goes_back() -> None:
    h = OffsetHistory()
    h.record(0.0, 1000)
    h.record(1.0, 10)  # a new history: offsets of the old one mean nothing now
    assert len(h) == 1 and h.first_time_past(5) == 1.0


def test_thinning_keeps_recent_samples_exact_and_lag_a_lower_bound() -> None:
    h = OffsetHistory(max_samples=8)
    for i in range(40):
        h.record(float(i), 10 * (i + 1))
    assert len(h) <= 8
    assert h.latest == (39.0, 400)
    assert h.first_time_past(399) == 39.0  # the newest samples are all there
    # The true first time past offset 15 is t=1; thinned history can only answer later.
    t = h.first_time_past(15)
    assert t is not None and t >= 1.0


def test_ping_clock_estimates_staleness_beyond_the_period() -> None:
    c = PingClock(default_period=10.0)
    c.observe(0.0, 5)  # the first look counts as a ping
    assert c.seconds_behind(9.0) == 0.0
    assert c.seconds_behind(14.0) == 4.0  # 14 s without a ping: 4 s beyond the 10 s period
    for t, n in [(10.0, 6), (11.0, 7), (12.0, 8), (13.0, 9)]:
        c.observe(t, n)
    assert c.period == 1.0  # learnt from the intervals (a master with period 1)
    assert c.seconds_behind(16.0) == 2.0


def test_lag_from_the_probe_bytes_and_seconds() -> None:
    t = LagTracker(probe_interval=1.0)
    t.observe_master(0.0, REPLID, NULL, 1000, applied=1000)
    t.observe_master(1.0, REPLID, NULL, 1500, applied=1200)
    t.observe_master(2.0, REPLID, NULL, 2500, applied=1200)
    lag = t.lag(2.5, replid=REPLID, applied=1200, has_history=True)
    assert lag.source == "probe"
    assert lag.bytes == 1300  # master and applied offsets read together at the probe
    assert lag.seconds == 1.5  # the master went past 1200 at t=1
    # The relay applied more since the probe: bytes stay the probe's measurement (the
    # master moved on too), seconds follow what is applied now.
    later = t.lag(2.5, replid=REPLID, applied=2500, has_history=True)
    assert (later.bytes, later.seconds) == (1300, 0.0)
    t.observe_master(3.0, REPLID, NULL, 2600, applied=2600)
    caught_up = t.lag(3.5, replid=REPLID, applied=2600, has_history=True)
    assert (caught_up.bytes, caught_up.seconds) == (0, 0.0)
    # Applied past what the master had when asked (it answered late): never negative.
    t.observe_master(4.0, REPLID, NULL, 2600, applied=2700)
    assert t.lag(4.0, replid=REPLID, applied=2700, has_history=True).bytes == 0


def test_probe_of_another_history_or_stale_falls_back_to_pings() -> None:
    t = LagTracker(probe_interval=1.0)
    t.observe_relay(0.0, 0.0, epoch=1, applied=100, pings=0, sync_full=1, sync_partial=0)
    t.observe_master(0.0, OTHER, NULL, 5000, applied=100)
    assert t.lag(1.0, replid=REPLID, applied=100, has_history=True).source == "ping"
    # The master's replid2 is ours (it was promoted): offsets still compare.
    t.observe_master(1.0, OTHER, REPLID, 5100, applied=100)
    assert t.lag(1.5, replid=REPLID, applied=100, has_history=True).source == "probe"
    # No answer for a long time: the probed offset is stale.
    late = t.lag(60.0, replid=REPLID, applied=100, has_history=True)
    assert late.source == "ping" and late.bytes is None
    assert late.seconds == 50.0  # 60 s since the last ping seen, minus the 10 s period
    assert t.lag(1.0, replid=REPLID, applied=0, has_history=False).source == "none"


def test_a_new_master_history_clears_the_old_samples() -> None:
    t = LagTracker()
    t.observe_master(0.0, REPLID, NULL, 9000, applied=0)
    t.observe_master(1.0, OTHER, NULL, 10, applied=0)
    assert t.master.latest == (1.0, 10) and len(t.master) == 1


def test_replica_lag_behind_relay_and_master() -> None:
    t = LagTracker(probe_interval=1.0)
    for now, applied, master in [(0.0, 100, 100), (1.0, 300, 400), (2.0, 600, 900)]:
        t.observe_relay(now, now, epoch=1, applied=applied, pings=0, sync_full=0, sync_partial=0)
        t.observe_master(now, REPLID, NULL, master, applied=applied)
    lag = t.lag(2.0, replid=REPLID, applied=600, has_history=True)
    assert lag.bytes == 300
    r = t.replica_lag(2.0, lag, applied=600, ack=250)
    assert (r.relay_bytes, r.relay_seconds) == (350, 1.0)  # the relay went past 250 at t=1
    assert (r.master_bytes, r.master_seconds) == (650, 1.0)  # 350 + the relay's 300
    # Without the probe: behind the master = behind the relay + the relay's own estimate.
    t2 = LagTracker()
    t2.observe_relay(0.0, 0.0, epoch=1, applied=100, pings=0, sync_full=0, sync_partial=0)
    t2.observe_relay(1.0, 1.0, epoch=1, applied=200, pings=0, sync_full=0, sync_partial=0)
    lag2 = t2.lag(15.0, replid=REPLID, applied=200, has_history=True)
    r2 = t2.replica_lag(15.0, lag2, applied=200, ack=150)
    assert r2.master_bytes is None
    assert r2.master_seconds == r2.relay_seconds + 5.0


def test_sync_times_are_noticed_from_the_counters() -> None:
    t = LagTracker()
    t.observe_relay(0.0, 1000.0, epoch=1, applied=0, pings=0, sync_full=0, sync_partial=0)
    assert t.last_full_sync is None
    t.observe_relay(1.0, 1001.0, epoch=2, applied=0, pings=0, sync_full=1, sync_partial=0)
    t.observe_relay(2.0, 1002.0, epoch=2, applied=0, pings=0, sync_full=1, sync_partial=1)
    assert (t.last_full_sync, t.last_partial_sync) == (1001.0, 1002.0)


def test_parse_info_keeps_replids_as_text() -> None:
    text = f"# Replication\r\nrole:master\r\nmaster_replid2:{NULL}\r\nmaster_repl_offset:42\r\n"
    info = parse_info(text)
    assert info["master_replid2"] == NULL and info["master_repl_offset"] == "42"
