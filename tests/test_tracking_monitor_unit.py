"""Sans-I/O checks of client-side caching, keyspace notifications and MONITOR: the session
hub driven in-process (no socket, no server), for what the differential tests against a
real replica cannot reach (the tracking table's bound, a broken redirection, merged SET
runs, transactions split across batches, the hot path's hooks)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from replproxy.app import Relay
from replproxy.config import Config, Upstream
from replproxy.keyspace import Keyspace
from replproxy.keyspace import notify as ksn
from replproxy.resp.stream import StreamSplitter
from replproxy.session.client import ClientSession
from replproxy.session.hub import SessionHub
from replproxy.session.monitor import monitor_line, redacted, sdscatrepr
from replproxy.session.tracking import tracked_keys
from tests.harness.taps import encode


class Harness:
    def __init__(self, **cfg: object) -> None:
        self.relay = Relay(Config(upstream=Upstream("127.0.0.1", 1), **cfg))  # type: ignore[arg-type]
        self.relay.replication.has_history = True  # as after a sync: reads are served
        self.relay.link.status.master_addr = "10.0.0.1:6379"
        self.hub: SessionHub = self.relay.sessions
        self.ks: Keyspace = self.relay.keyspace

    def client(self, proto: int = 2) -> ClientSession:
        c = self.hub.open_session("127.0.0.1:5000", "127.0.0.1:6380")
        assert isinstance(c, ClientSession)
        if proto == 3:
            self.run(c, "HELLO", "3")
        return c

    def run(self, c: ClientSession, *args: object) -> bytes:
        return c.feed(encode(*args), 0, 0.0)

    def stream(self, *commands: Sequence[object]) -> None:
        """The master's commands, through the splitter that merges SET runs, as the link."""
        sp = StreamSplitter(self.relay.replication.repl_offset, merge_sets=True)
        sp.feed(b"".join(encode(*c) for c in commands))
        self.relay.replication.process(sp.next_commands())

    @staticmethod
    def pushed(c: ClientSession) -> bytes:
        out = b"".join(c.outbox)
        c.outbox.clear()
        c.out_bytes = 0
        return out


@pytest.fixture
def h() -> Iterator[Harness]:
    yield Harness()


INV = b">2\r\n$10\r\ninvalidate\r\n"


def test_flag_letters_as_redis_parses_and_prints_them() -> None:
    for text, shown in [
        ("AKEn", "AKE"),
        ("nKE", "nKE"),
        ("AKEm", "AKEm"),
        ("gn", "gn"),
        ("Kx", "xK"),
        ("", ""),
        ("E$ltm", "$ltEm"),
        ("K$$", "$K"),
        ("AKEA", "AKE"),
    ]:
        flags = ksn.parse_flags(text)
        assert flags is not None and ksn.flags_text(flags) == shown, text
    assert ksn.parse_flags("KEQ") is None
    from replproxy.dialect import MasterDialect

    assert ksn.parse_flags("Ko", MasterDialect("redis", (7, 0, 15))) is None
    assert ksn.parse_flags("Ko", MasterDialect("redis", (8, 2, 3))) is not None


def test_tracked_keys_follow_getkeys_or_the_legacy_range(h: Harness) -> None:
    table = h.hub.table

    def keys(*argv: bytes) -> list[bytes]:
        spec = table.resolve(list(argv))
        assert not hasattr(spec, "kind"), spec
        return tracked_keys(spec, list(argv))

    assert keys(b"GET", b"k") == [b"k"]
    assert keys(b"MGET", b"a", b"b", b"c") == [b"a", b"b", b"c"]
    assert keys(b"OBJECT", b"ENCODING", b"k") == [b"k"]
    assert keys(b"XREAD", b"COUNT", b"1", b"STREAMS", b"s1", b"s2", b"0", b"0") == [b"s1", b"s2"]
    assert keys(b"ZUNION", b"2", b"a", b"b", b"WITHSCORES") == [b"a", b"b"]
    assert keys(b"SORT_RO", b"l", b"BY", b"w_*") == [b"l"]
    assert keys(b"DBSIZE") == []


def test_default_mode_invalidates_once_per_read(h: Harness) -> None:
    c = h.client(proto=3)
    assert h.run(c, "CLIENT", "TRACKING", "ON") == b"+OK\r\n"
    h.run(c, "GET", "a")
    h.run(c, "MGET", "b", "c")
    assert h.ks.on_key_modified is not None  # installed only now that something is tracked
    h.stream(["SET", "a", "1"], ["SET", "a", "2"], ["SET", "c", "3"])  # a merged SET run
    assert h.pushed(c) == INV + b"*1\r\n$1\r\na\r\n" + INV + b"*1\r\n$1\r\nc\r\n"
    h.stream(["DEL", "b"])  # b was never written: DEL of a missing key changes nothing
    assert h.pushed(c) == b""
    h.stream(["SET", "b", "x"])
    assert h.pushed(c) == INV + b"*1\r\n$1\r\nb\r\n"
    assert h.ks.on_key_modified is None  # nothing tracked any more: the stream pays nothing
    h.run(c, "GET", "a")
    h.stream(["FLUSHALL"])
    assert h.pushed(c) == INV + b"_\r\n"


def test_the_table_bound_invalidates_the_oldest_keys(h: Harness) -> None:
    c = h.client(proto=3)
    h.run(c, "CLIENT", "TRACKING", "ON")
    assert h.run(c, "CONFIG", "SET", "tracking-table-max-keys", "2") == b"+OK\r\n"
    h.run(c, "MGET", "k1", "k2", "k3")
    assert h.pushed(c) == b""  # evicted before the next command, after this reply
    h.run(c, "PING")
    assert h.pushed(c) == INV + b"*1\r\n$2\r\nk1\r\n"
    assert h.hub.tracking.keys() == 2


def test_a_broken_redirection_is_reported(h: Harness) -> None:
    target = h.client()
    c = h.client(proto=3)
    assert h.run(c, "CLIENT", "TRACKING", "ON", "REDIRECT", target.id) == b"+OK\r\n"
    assert h.run(c, "CLIENT", "GETREDIR") == b":%d\r\n" % target.id
    h.run(c, "GET", "k")
    h.hub.close_session(target)
    h.stream(["SET", "k", "v"])
    assert h.pushed(c) == b">2\r\n$21\r\ntracking-redir-broken\r\n:%d\r\n" % target.id
    info = h.run(c, "CLIENT", "TRACKINGINFO")
    assert b"broken_redirect" in info
    assert b" flags=tR " in h.run(c, "CLIENT", "INFO")


def test_reset_and_close_end_tracking_and_monitoring(h: Harness) -> None:
    c = h.client(proto=3)
    h.run(c, "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a")
    assert b" flags=tB " in h.run(c, "CLIENT", "INFO")
    assert h.hub.tracking.total_prefixes() == 1
    h.run(c, "RESET")
    assert c.tracking is None and h.hub.tracking.total_prefixes() == 0
    m = h.client()
    h.run(m, "MONITOR")
    assert b" flags=O " in h.run(h.client(), "CLIENT", "LIST")
    assert h.relay.replication.monitor is not None
    h.hub.close_session(m)
    assert h.relay.replication.monitor is None  # the stream's feed goes with the last monitor


def test_caching_lasts_one_command_or_one_transaction(h: Harness) -> None:
    c = h.client(proto=3)
    h.run(c, "CLIENT", "TRACKING", "ON", "OPTIN")
    h.run(c, "GET", "no")  # OPTIN without CACHING yes: not tracked
    h.run(c, "CLIENT", "CACHING", "YES")
    h.run(c, "CLIENT", "ID")  # a CLIENT command keeps the flag
    h.run(c, "GET", "yes1")
    h.run(c, "GET", "no2")
    h.run(c, "CLIENT", "CACHING", "YES")
    h.run(c, "MULTI")
    h.run(c, "GET", "yes2")
    h.run(c, "EXEC")
    h.run(c, "GET", "no3")
    assert list(h.hub.tracking.table) == [b"yes1", b"yes2"]


def test_monitor_lines() -> None:
    assert (
        sdscatrepr(b'a"b\\c\n\r\t\x07\x08\x00\x7f\xff ~')
        == b'"a\\"b\\\\c\\n\\r\\t\\a\\b\\x00\\x7f\\xff ~"'
    )
    assert (
        monitor_line(1700000000.5, 3, b"1.2.3.4:5", [b"GET", b"k"])
        == b'+1700000000.500000 [3 1.2.3.4:5] "GET" "k"\r\n'
    )
    assert redacted(b"auth", [b"AUTH", b"pw"]) == [b"AUTH", b"(redacted)"]
    assert redacted(b"auth", [b"AUTH", b"u", b"pw"]) == [b"AUTH", b"(redacted)", b"(redacted)"]
    assert redacted(b"auth", [b"AUTH", b"a", b"b", b"c"]) == [b"AUTH", b"a", b"b", b"c"]
    assert redacted(b"hello", [b"HELLO", b"3", b"SETNAME", b"n", b"AUTH", b"u", b"p"]) == [
        b"HELLO",
        b"3",
        b"SETNAME",
        b"n",
        b"AUTH",
        b"(redacted)",
        b"(redacted)",
    ]
    assert redacted(b"hello", [b"HELLO", b"4", b"AUTH", b"u", b"p"])[2:] == [b"AUTH", b"u", b"p"]


def test_monitor_shows_the_masters_commands_as_a_replica(h: Harness) -> None:
    m = h.client()
    h.run(m, "MONITOR")
    h.stream(["SELECT", "2"], ["SET", "a", "1"], ["SET", "b", "2"], ["MULTI"], ["INCR", "n"])
    lines = h.pushed(m).split(b"\r\n")
    # A merged run of SETs shows as the master's SETs; a transaction waits for its EXEC.
    assert [ln.split(b" ", 1)[1] for ln in lines if ln] == [
        b'[2 10.0.0.1:6379] "SELECT" "2"',
        b'[2 10.0.0.1:6379] "SET" "a" "1"',
        b'[2 10.0.0.1:6379] "SET" "b" "2"',
        b'[2 10.0.0.1:6379] "MULTI"',
    ]
    h.stream(["SELECT", "4"], ["SET", "c", "3"], ["EXEC"], ["REPLCONF", "GETACK", "*"], ["PING"])
    lines = h.pushed(m).split(b"\r\n")
    assert [ln.split(b" ", 1)[1] for ln in lines if ln] == [
        b'[2 10.0.0.1:6379] "INCR" "n"',
        b'[4 10.0.0.1:6379] "SELECT" "4"',
        b'[4 10.0.0.1:6379] "SET" "c" "3"',
        b'[4 10.0.0.1:6379] "EXEC"',
        b'[4 10.0.0.1:6379] "PING"',
    ]


def test_notifications_go_through_pubsub_and_cost_nothing_when_off(h: Harness) -> None:
    assert h.run(h.client(), "CONFIG", "SET", "notify-keyspace-events", "KEA") == b"+OK\r\n"
    assert h.ks.notify_flags == 0  # configured, but nobody could receive an event
    sub = h.client()
    h.run(sub, "SUBSCRIBE", "x")
    assert h.ks.notify_flags == h.ks.notify_config != 0
    h.run(sub, "UNSUBSCRIBE")
    assert h.ks.notify_flags == 0
    h.run(h.client(), "CONFIG", "SET", "notify-keyspace-events", "")
    h.run(sub, "PSUBSCRIBE", "__key*")
    h.stream(["SET", "k", "v"])
    assert h.pushed(sub) == b""
    assert h.run(h.client(), "CONFIG", "SET", "notify-keyspace-events", "KEn") == b"+OK\r\n"
    h.stream(["SET", "k", "w"], ["SET", "new", "1"])
    pm = b"*4\r\n$8\r\npmessage\r\n$6\r\n__key*\r\n"
    assert h.pushed(sub) == (  # only `new` (class n) is on, for the one key created
        pm
        + b"$18\r\n__keyspace@0__:new\r\n$3\r\nnew\r\n"
        + pm
        + b"$18\r\n__keyevent@0__:new\r\n$3\r\nnew\r\n"
    )
    assert h.run(h.client(), "CONFIG", "GET", "notify-keyspace-events") == (
        b"*2\r\n$22\r\nnotify-keyspace-events\r\n$3\r\nnKE\r\n"
    )


def test_a_monitor_may_not_read_keys(h: Harness) -> None:
    m = h.client()
    assert h.run(m, "MONITOR") == b"+OK\r\n"
    assert h.run(m, "MONITOR") == b""  # already monitoring: no reply
    assert h.run(m, "GET", "k") == b"-ERR Replica can't interact with the keyspace\r\n"
    assert h.run(m, "PING").startswith(b"+PONG\r\n+")  # its own line follows its reply


def test_watch_sees_flushes_and_swaps_of_watched_keys(h: Harness) -> None:
    """`touchAllWatchedKeysInDb`: a watched key that existed in a flushed or swapped DB
    dooms the EXEC; one that did not exist does not."""
    h.stream(["SET", "w", "1"], ["SELECT", "3"], ["SET", "other", "1"], ["SELECT", "0"])
    c = h.client()
    for stream, doomed in (
        ([["FLUSHDB"]], True),
        ([["SELECT", "5"], ["FLUSHDB"]], False),
        ([["SWAPDB", "0", "3"]], True),
        ([["FLUSHALL"]], True),
    ):
        h.stream(["SET", "w", "1"])
        h.run(c, "WATCH", "w", "nothere")
        h.run(c, "MULTI")
        h.run(c, "GET", "w")
        h.stream(*stream)
        assert (h.run(c, "EXEC") == b"*-1\r\n") is doomed, stream
        h.stream(["SELECT", "0"])
