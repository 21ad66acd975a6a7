"""The sans-I/O counters behind INFO, SLOWLOG, LATENCY, and the downstream full-sync backoff."""

from __future__ import annotations

import pytest

from replproxy.config import ConfigError, parse_maxmemory_clients, total_system_memory
from replproxy.dialect import MasterDialect
from replproxy.downstream.backoff import FullSyncBackoff
from replproxy.info import _bin_label, _human
from replproxy.replica_defaults import choose, for_dialect
from replproxy.session.stats import (
    CommandStats,
    Histogram,
    LatencyMonitor,
    RateSampler,
    SlowLog,
)


def test_histogram_percentiles_and_power_of_two_buckets() -> None:
    h = Histogram()
    for ns in range(1000, 101_000, 1000):  # 1..100 us, one each
        h.add(ns)
    assert h.total == 100
    assert abs(h.percentile(50) - 50_000) <= 50_000 // 100
    assert abs(h.percentile(99) - 99_000) <= 99_000 // 100
    assert abs(h.percentile(99.9) - 100_000) <= 100_000 // 100
    buckets = h.pow2_usec()
    assert buckets[0] == (1, 1)
    assert buckets[-1] == (128, 100)  # cumulative: everything is at or under 128 us
    assert [b for b, _ in buckets] == [1, 2, 4, 8, 16, 32, 64, 128]
    # 7 significant bits: 123456 ns is kept as 122880 (0b1111000 << 10).
    h2 = Histogram()
    h2.add(123_456, 3)
    assert h2.counts == {122_880: 3}


def test_command_stats_errors_by_their_first_word() -> None:
    s = CommandStats()
    s.record(b"get", 5000, 5)
    assert s.commands[b"get"].calls == 5 and s.commands[b"get"].usec == 5
    s.error_reply(b"-WRONGTYPE Operation against a key\r\n")
    s.error_reply(b"-ERR unknown command\r\n", 2)
    s.error_reply(b"-NOAUTH\r\n")
    assert s.errors == {"WRONGTYPE": 1, "ERR": 2, "NOAUTH": 1}
    assert s.total_error_replies == 4
    s.reset()
    assert not s.commands and not s.errors and s.total_error_replies == 0


def test_slowlog_cuts_arguments_as_redis() -> None:
    log = SlowLog(slower_than_usec=100, max_len=2)
    log.maybe_add([b"get", b"k"], 99, 1000.0, "1.2.3.4:5", b"")
    assert not log.entries
    argv = [b"mget"] + [b"k%d" % i for i in range(40)]
    log.maybe_add(argv, 100, 1000.0, "1.2.3.4:5", b"name")
    e = log.entries[0]
    assert len(e.argv) == 32
    assert e.argv[-1] == b"... (10 more arguments)"  # 41 - 32 + 1, as Redis counts
    log.maybe_add([b"get", b"x" * 200], 500, 1001.0, "p", b"")
    assert log.entries[0].argv[1] == b"x" * 128 + b"... (72 more bytes)"
    log.maybe_add([b"ping"], 500, 1002.0, "p", b"")
    assert [x.id for x in log.entries] == [2, 1]  # newest first, max_len kept
    off = SlowLog(slower_than_usec=-1)
    off.maybe_add([b"get"], 10**9, 0.0, "p", b"")
    assert not off.entries


def test_latency_monitor_one_sample_a_second() -> None:
    mon = LatencyMonitor(threshold_ms=0)
    mon.maybe_add("command", 500, 100.0)
    assert not mon.events  # 0: off
    mon.threshold_ms = 10
    mon.maybe_add("command", 9, 100.0)
    mon.maybe_add("command", 12, 100.2)
    mon.maybe_add("command", 30, 100.9)
    mon.maybe_add("command", 15, 101.0)
    ev = mon.events["command"]
    assert list(ev.samples) == [(100, 30), (101, 15)]
    assert ev.max == 30
    assert mon.reset(["nosuch", "command"]) == 1


def test_rates_are_the_mean_of_the_last_samples() -> None:
    r = RateSampler()
    r.sample(0, 10.0)
    r.sample(100, 11.0)
    r.sample(300, 12.0)
    assert r.rate == 150.0


def test_full_sync_backoff_doubles_up_to_the_cap_and_forgets_on_success() -> None:
    b = FullSyncBackoff(cap=4.0)
    key = "127.0.0.1:6390"
    assert b.delay(key, 0.0) == 0
    waits = []
    now = 0.0
    for _ in range(5):
        b.ended(key, now, loaded=False)
        waits.append(b.delay(key, now))
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert b.delay(key, 3.0) == 1.0
    assert b.delay("other:1", 0.0) == 0
    b.ended(key, 10.0, loaded=True)
    assert b.delay(key, 10.0) == 0 and b.failures(key) == 0
    off = FullSyncBackoff(cap=0)
    off.ended(key, 0.0, loaded=False)
    assert off.delay(key, 0.0) == 0


def test_maxmemory_clients_sizes_and_percentages() -> None:
    assert parse_maxmemory_clients("0") == 0
    assert parse_maxmemory_clients("64mb") == 64 * 1024 * 1024
    assert parse_maxmemory_clients("10%") == total_system_memory() // 10
    for bad in ("0%", "101%", "x%", "lots"):
        with pytest.raises(ConfigError):
            parse_maxmemory_clients(bad)


def test_replica_defaults_choice_and_content() -> None:
    assert choose("redis", (7, 0, 15)) == "redis-7.0"
    assert choose("redis", (7, 4, 1)) == "redis-7.0"
    assert choose("redis", (8, 4, 0)) == "redis-8.2"
    assert choose("redis", (4, 0, 0)) == "redis-5.0"
    assert choose("valkey", (8, 1, 2)) == "valkey-8.1"
    assert choose("valkey", (9, 1, 0)) == "valkey-8.1"
    assert choose("valkey", (7, 2, 4)) == "redis-7.0"
    d = for_dialect(MasterDialect("redis", (7, 0, 15)))
    assert d.version == "7.0.15"
    assert len(d.config) == 192
    assert d.config["hash-max-listpack-entries"] == "512"
    assert d.default_sections[0] == "Server" and "Commandstats" not in d.default_sections
    assert "Commandstats" in d.all_sections
    assert d.has("Latencystats") and not for_dialect(MasterDialect("redis", (6, 2, 5))).has(
        "Latencystats"
    )


def test_human_sizes_and_keysizes_bins() -> None:
    assert _human(100) == "100B"
    assert _human(1536) == "1.50K"
    assert _human(3 * 1024**3) == "3.00G"
    assert [_bin_label(n) for n in (0, 1, 3, 1000, 1024, 5000, 2**21)] == [
        "0",
        "1",
        "2",
        "512",
        "1K",
        "4K",
        "2M",
    ]
