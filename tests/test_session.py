"""The client session, sans I/O: bytes in, replies and pushes out, no socket anywhere.

A `Relay` is built (never run) for its parts: the keyspace, the replication core, the serving
gate and the session hub, wired as in production; the stream is fed through
`Replication.process`, exactly as the upstream link feeds it. Each test drives one or more
`ClientSession`s with the bytes a client would send and checks what a real Redis replica
answers (the byte-for-byte comparisons with real replicas are in the server suites).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replproxy.app import Relay
from replproxy.config import Config, OutputLimit, TlsSettings, Upstream
from replproxy.resp.request import encode_command
from replproxy.resp.stream import StreamSplitter
from replproxy.session.client import BlockedWait, ClientSession, ShutdownWait
from replproxy.session.hub import SessionHub

REPLID = "a" * 40
NOW_MS = 1_700_000_000_000


def cmd(*args: bytes | str | int) -> bytes:
    return encode_command([a if isinstance(a, bytes) else str(a).encode() for a in args])


class World:
    """A relay's parts, synced at offset 100 of history REPLID, and a stream to feed them."""

    def __init__(self, **config: object) -> None:
        self.relay = Relay(Config(upstream=Upstream("127.0.0.1", 1), **config))  # type: ignore[arg-type]
        self.hub: SessionHub = self.relay.sessions
        self.relay.replication.full_resync(REPLID, 100, stream_db=0)
        self.splitter = StreamSplitter(100)
        self.clock = 1000.0
        self.hub.clock = lambda: self.clock

    def stream(self, *commands: bytes) -> None:
        """The master's commands, applied as the link applies them."""
        self.splitter.feed(b"".join(commands))
        self.relay.replication.process(self.splitter.next_commands())

    def client(self) -> ClientSession:
        c = self.hub.open_session("127.0.0.1:5555", "127.0.0.1:6380")
        assert isinstance(c, ClientSession)
        return c

    def feed(self, c: ClientSession, data: bytes) -> bytes:
        return c.feed(data, NOW_MS, self.clock)


@pytest.fixture
def world() -> Iterator[World]:
    yield World()


def test_pipelined_requests_answer_in_order(world: World) -> None:
    world.stream(cmd("SET", "a", "1"), cmd("RPUSH", "l", "x", "y"))
    c = world.client()
    out = world.feed(
        c, cmd("GET", "a") + cmd("LRANGE", "l", 0, -1) + cmd("GET", "nope") + cmd("PING")
    )
    assert out == b"$1\r\n1\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n$-1\r\n+PONG\r\n"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=200), max_size=8))
def test_any_chunking_gives_the_same_replies(cuts: list[int]) -> None:
    world = World()
    world.stream(cmd("SET", "a", "1"), cmd("HSET", "h", "f", "v"))
    data = (
        cmd("GET", "a")
        + cmd("MGET", "a", "b")
        + cmd("HGETALL", "h")
        + b"PING\r\n"
        + cmd("ECHO", "x" * 100)
    )
    whole = world.feed(world.client(), data)
    c = world.client()
    got, pos = b"", 0
    for cut in itertools.accumulate(cuts):
        got += world.feed(c, data[pos:cut])
        pos = max(pos, min(cut, len(data)))
    got += world.feed(c, data[pos:])
    assert got == whole


def test_a_protocol_error_answers_and_closes(world: World) -> None:
    c = world.client()
    out = world.feed(c, cmd("PING") + b"*1\r\n$x\r\n")
    assert out.startswith(b"+PONG\r\n-ERR Protocol error: invalid bulk length")
    assert c.closing


def test_writes_are_refused_as_a_replica_refuses_them(world: World) -> None:
    c = world.client()
    assert world.feed(c, cmd("SET", "k", "v")) == (
        b"-READONLY You can't write against a read only replica.\r\n"
    )


def test_loading_until_the_relay_holds_a_position() -> None:
    world = World()
    world.relay.replication.has_history = False
    c = world.client()
    assert world.feed(c, cmd("GET", "k")) == b"-LOADING Redis is loading the dataset in memory\r\n"
    assert world.feed(c, cmd("INFO", "server")).startswith(b"$")  # flagged `loading`


def test_masterdown_when_stale_data_is_not_served() -> None:
    world = World(replica_serve_stale_data=False)
    c = world.client()
    assert world.feed(c, cmd("GET", "k")).startswith(b"-MASTERDOWN Link with MASTER is down")


def test_exec_runs_the_queue_atomically_and_aborts_on_queueing_errors(world: World) -> None:
    world.stream(cmd("SET", "a", "1"))
    c = world.client()
    assert world.feed(c, cmd("MULTI") + cmd("GET", "a") + cmd("GET", "b")) == (
        b"+OK\r\n+QUEUED\r\n+QUEUED\r\n"
    )
    world.stream(cmd("SET", "b", "2"))  # between queueing and EXEC: seen by EXEC
    assert world.feed(c, cmd("EXEC")) == b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n"
    out = world.feed(c, cmd("MULTI") + cmd("SET", "x", "y") + cmd("EXEC"))
    assert out == (
        b"+OK\r\n-READONLY You can't write against a read only replica.\r\n"
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    )


def test_a_replicated_write_fails_a_watch(world: World) -> None:
    world.stream(cmd("SET", "w", "1"))
    c, other = world.client(), world.client()
    assert world.feed(c, cmd("WATCH", "w") + cmd("MULTI") + cmd("GET", "w")) == (
        b"+OK\r\n+OK\r\n+QUEUED\r\n"
    )
    world.stream(cmd("SET", "w", "2"))
    assert world.feed(c, cmd("EXEC")) == b"*-1\r\n"
    # A write to another key does not touch the watch.
    assert world.feed(other, cmd("WATCH", "w") + cmd("MULTI") + cmd("GET", "w")) == (
        b"+OK\r\n+OK\r\n+QUEUED\r\n"
    )
    world.stream(cmd("SET", "unrelated", "1"))
    assert world.feed(other, cmd("EXEC")) == b"*1\r\n$1\r\n2\r\n"


def test_published_messages_go_to_the_outbox_with_the_shell_told(world: World) -> None:
    c = world.client()
    told: list[int] = []
    c.on_output = lambda: told.append(1)
    assert world.feed(c, cmd("SUBSCRIBE", "news")) == (
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
    )
    world.stream(cmd("PUBLISH", "news", "hello"))
    assert c.outbox == [b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"]
    assert told == [1]
    # RESP2 subscribers may only (un)subscribe, PING, QUIT and RESET.
    assert world.feed(c, cmd("GET", "x")).startswith(b"-ERR Can't execute 'get'")


def test_a_blocked_read_waits_for_the_stream_and_answers_once_woken(world: World) -> None:
    world.stream(cmd("XADD", "s", "1-1", "f", "v"))
    c = world.client()
    woken: list[int] = []
    c.on_wake = lambda: woken.append(1)
    pipelined = cmd("XREAD", "BLOCK", 0, "STREAMS", "s", "$") + cmd("PING")
    assert world.feed(c, pipelined) == b""
    assert isinstance(c.wait, BlockedWait) and c.blocked
    assert world.hub.watches.blocked_clients == 1
    world.stream(cmd("XADD", "other", "1-1", "f", "v"))  # another key: still waiting
    assert not woken
    world.stream(cmd("XADD", "s", "2-1", "f", "w"))
    assert woken == [1]
    answer = c.retry_blocked(NOW_MS, timed_out=False)
    assert answer == (
        b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$1\r\nf\r\n$1\r\nw\r\n"
    )
    assert c.wait is None and world.hub.watches.blocked_clients == 0
    # The request pipelined behind it runs when the shell resumes the session.
    assert world.feed(c, b"") == b"+PONG\r\n"


def test_a_blocked_read_times_out_with_a_null_array(world: World) -> None:
    c = world.client()
    assert world.feed(c, cmd("XREAD", "BLOCK", 100, "STREAMS", "s", "$")) == b""
    w = c.wait
    assert isinstance(w, BlockedWait) and w.deadline == pytest.approx(world.clock + 0.1)
    assert c.retry_blocked(NOW_MS, timed_out=True) == b"*-1\r\n"


def test_client_unblock_from_another_session(world: World) -> None:
    c, admin = world.client(), world.client()
    world.feed(c, cmd("XREAD", "BLOCK", 0, "STREAMS", "s", "$"))
    out = world.feed(admin, cmd("CLIENT", "UNBLOCK", c.id, "ERROR"))
    assert out == b":1\r\n"
    assert c.retry_blocked(NOW_MS, timed_out=False) == (
        b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    )


def test_shutdown_waits_for_the_shell_and_sync_hands_the_connection_over(world: World) -> None:
    c = world.client()
    assert world.feed(c, cmd("SHUTDOWN", "NOSAVE") + cmd("PING")) == b""
    w = c.wait
    assert isinstance(w, ShutdownWait) and w.save is False
    assert c.finish_wait(b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n") == (
        b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n"
    )
    assert world.feed(c, b"") == b"+PONG\r\n"
    r = world.client()
    assert world.feed(r, cmd("REPLCONF", "capa", "eof") + cmd("PSYNC", "?", -1)) == b"+OK\r\n"
    assert r.takeover is not None and r.takeover[1].psync


def test_client_reply_off_and_skip(world: World) -> None:
    c = world.client()
    assert world.feed(c, cmd("CLIENT", "REPLY", "SKIP") + cmd("PING") + cmd("PING")) == (
        b"+PONG\r\n"
    )
    assert world.feed(c, cmd("CLIENT", "REPLY", "OFF") + cmd("PING")) == b""
    assert world.feed(c, cmd("CLIENT", "REPLY", "ON")) == b"+OK\r\n"


def test_a_subscriber_over_its_hard_output_limit_is_closed() -> None:
    world = World(client_output_buffer_limit_pubsub=OutputLimit(100, 0, 0))
    c = world.client()
    killed: list[int] = []
    c.on_kill = lambda: killed.append(1)
    world.feed(c, cmd("SUBSCRIBE", "ch"))
    world.stream(cmd("PUBLISH", "ch", "x" * 200))
    assert c.closing and killed == [1]


def test_the_get_lane_answers_as_dispatch_does(world: World) -> None:
    """The GET/MGET lane (C, when built) and the dispatch path give the same bytes, expiry and
    WRONGTYPE included."""
    world.stream(
        cmd("SET", "s", "v"), cmd("RPUSH", "l", "x"), cmd("SET", "gone", "v", "PXAT", NOW_MS - 1)
    )
    data = (
        cmd("GET", "s")
        + cmd("GET", "l")
        + cmd("MGET", "s", "l", "gone", "none")
        + cmd("GET", "gone")
    )
    fast = world.feed(world.client(), data)
    slow = world.client()
    # Inside MULTI the lane is off: each GET is dispatched; EXEC's array holds the replies.
    out = world.feed(slow, cmd("MULTI") + data + cmd("EXEC"))
    tail = out.split(b"*4\r\n", 1)[1]
    assert tail == fast
    assert fast == (
        b"$1\r\nv\r\n-WRONGTYPE Operation against a key holding the wrong kind of "
        b"value\r\n*4\r\n$1\r\nv\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n"
    )


def test_a_closed_session_leaves_nothing_behind(world: World) -> None:
    c = world.client()
    world.feed(c, cmd("SUBSCRIBE", "a") + cmd("PSUBSCRIBE", "b*"))
    other = world.client()
    world.feed(other, cmd("WATCH", "k"))
    world.feed(other, cmd("XREAD", "BLOCK", 0, "STREAMS", "s", "$"))
    for x in (c, other):
        world.hub.close_session(x)
    hub = world.hub
    assert not hub.clients and not hub.pubsub.channels and not hub.pubsub.patterns
    assert not hub.watches.watchers and not hub.watches.blocked
    assert hub.watches.blocked_clients == 0
    assert world.relay.keyspace.on_key_modified is None  # the stream's hot path is free again


def test_scripts_read_as_the_caller_and_their_flags_decide_readonly(world: World) -> None:
    world.stream(cmd("SET", "a", "1"), cmd("SELECT", 1), cmd("SET", "a", "db1"))
    c = world.client()
    assert world.feed(c, cmd("EVAL", "return redis.call('get', KEYS[1])", 1, "a")) == (
        b"$1\r\n1\r\n"
    )
    # SELECT inside a script is the script client's: the caller stays in DB 0 (Redis 7+).
    out = world.feed(
        c, cmd("EVAL", "redis.call('select', 1) return redis.call('get', 'a')", 0) + cmd("GET", "a")
    )
    assert out == b"$3\r\ndb1\r\n$1\r\n1\r\n"
    # A write inside a script is the script's error; a shebang without no-writes makes the
    # EVAL itself a write, refused before it runs.
    assert world.feed(c, cmd("EVAL", "return redis.call('set', 'a', 'x')", 0)).startswith(
        b"-READONLY You can't write against a read only replica."
    )
    assert world.feed(c, cmd("EVAL", "#!lua\nreturn 1", 0)) == (
        b"-READONLY You can't write against a read only replica.\r\n"
    )
    assert world.feed(c, cmd("EVAL", "#!lua flags=no-writes\nreturn 2", 0)) == b":2\r\n"
    sha = world.feed(c, cmd("SCRIPT", "LOAD", "return 3")).split(b"\r\n")[1]
    assert world.feed(c, cmd("EVALSHA", sha, 0) + cmd("SCRIPT", "EXISTS", sha, "0" * 40)) == (
        b":3\r\n*2\r\n:1\r\n:0\r\n"
    )


def test_a_busy_script_serves_other_clients_until_script_kill(world: World) -> None:
    c, other = world.client(), world.client()
    assert world.feed(c, cmd("CONFIG", "SET", "busy-reply-threshold", 1)) == b"+OK\r\n"
    assert world.feed(c, cmd("CONFIG", "GET", "lua-time-limit")) == (
        b"*2\r\n$14\r\nlua-time-limit\r\n$1\r\n1\r\n"
    )
    seen: list[bytes] = []

    def serve_while_busy(running: ClientSession) -> None:
        # What the reactor does at each hook: serve the other idle clients.
        assert running is c
        if not seen:
            seen.append(world.feed(other, cmd("GET", "a")))
            seen.append(world.feed(other, cmd("SCRIPT", "KILL")))

    world.hub.scripting.serve_while_busy = serve_while_busy
    out = world.feed(c, cmd("EVAL", "while true do end", 0))
    assert seen == [
        b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN "
        b"NOSAVE.\r\n",
        b"+OK\r\n",
    ]
    assert out.startswith(b"-ERR Script killed by user with SCRIPT KILL")
    assert world.feed(other, cmd("GET", "a")) == b"$-1\r\n"  # not busy any more


def test_the_read_lane_counts_as_call_does(world: World) -> None:
    """GET/MGET/LRANGE/HGETALL answered by the C read lane (or the handlers, without it)
    count in INFO commandstats, errorstats and the keyspace hits and misses alike."""
    world.stream(cmd("RPUSH", "l", "a", "b"), cmd("HSET", "h", "f", "v"), cmd("SET", "s", "1"))
    c = world.client()
    out = world.feed(
        c,
        cmd("LRANGE", "l", 0, -1)
        + cmd("HGETALL", "h")
        + cmd("LRANGE", "s", 0, 1)
        + cmd("GET", "nope")
        + cmd("MGET", "s", "nope")
        + cmd("HGETALL", "nope"),
    )
    assert out == (
        b"*2\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        b"$-1\r\n*2\r\n$1\r\n1\r\n$-1\r\n*0\r\n"
    )
    stats = world.hub.cmdstats.commands
    assert {
        n: (stats[n].calls, stats[n].failed) for n in (b"lrange", b"hgetall", b"get", b"mget")
    } == {b"lrange": (2, 1), b"hgetall": (2, 0), b"get": (1, 0), b"mget": (1, 0)}
    ks = world.relay.keyspace
    assert (ks.stat_keyspace_hits, ks.stat_keyspace_misses) == (4, 3)
    assert c.last_cmd == b"hgetall"


def test_slowlog_keeps_no_credentials() -> None:
    """SLOWLOG keeps what `redactClientCommandArgument` leaves: AUTH's and HELLO AUTH's
    credentials, ACL SETUSER's arguments and CONFIG SET's sensitive values are `(redacted)`
    (Redis 7.0 logs AUTH and HELLO: they have no no-slowlog flag)."""
    w = World(requirepass="s3cretpw", acl_writable=True)
    admin, other = w.client(), w.client()
    assert w.feed(admin, cmd("AUTH", "s3cretpw")) == b"+OK\r\n"
    assert w.feed(admin, cmd("CONFIG", "SET", "slowlog-log-slower-than", "0")) == b"+OK\r\n"
    w.feed(other, cmd("HELLO", "2", "AUTH", "default", "s3cretpw"))
    w.feed(other, cmd("AUTH", "default", "wrongpw"))
    w.feed(other, cmd("AUTH", "s3cretpw"))
    w.feed(admin, cmd("ACL", "SETUSER", "bob", "on", ">bobsecret"))
    w.feed(admin, cmd("CONFIG", "SET", "requirepass", "newsecret", "maxclients", "100"))
    out = w.feed(admin, cmd("SLOWLOG", "GET", "100"))
    for secret in (b"s3cretpw", b"wrongpw", b"bobsecret", b"newsecret", b"bob"):
        assert secret not in out, secret
    assert out.count(b"(redacted)") == 2 + 2 + 1 + 3 + 1, out  # HELLO, AUTH x2, ACL, CONFIG
    assert b"maxclients" in out and b"100" in out  # other parameters stay as sent


def test_config_get_hides_the_tls_key_passphrases() -> None:
    """The private keys' passphrases read `<redacted>` when set, as `masterauth` and
    `requirepass` do (docs/security.md), and empty when not."""
    w = World(tls=TlsSettings(key_file_pass="KEYPASS1", client_key_file_pass="CKEYPASS2"))
    c = w.client()
    out = w.feed(c, cmd("CONFIG", "GET", "*pass*"))
    assert b"KEYPASS1" not in out and b"CKEYPASS2" not in out
    assert b"$17\r\ntls-key-file-pass\r\n$10\r\n<redacted>\r\n" in out
    assert b"$24\r\ntls-client-key-file-pass\r\n$10\r\n<redacted>\r\n" in out
    plain = World()
    out = plain.feed(plain.client(), cmd("CONFIG", "GET", "tls-key-file-pass"))
    assert out == b"*2\r\n$17\r\ntls-key-file-pass\r\n$0\r\n\r\n"
    assert "KEYPASS1" not in repr(w.relay.config)
