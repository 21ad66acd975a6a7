"""The client endpoint as a whole, against a running relay and a real read-only replica.

Connection state, transactions, Pub/Sub, blocking reads, auth, link states and limits: each
scripted session runs against replproxy AND a real replica of the same master over raw
sockets, and the replies must be the same bytes (ids, ports and times aside).
"""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from replproxy.resp.request import encode_command
from tests.harness.readcheck import RawConnection, read_reply, reply_end
from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, free_port, start_server, wait_for

# The relay's reference paths: per-client tasks doing their own I/O instead of the reactor,
# and no C fast lanes (GET/MGET, WITHSCORES replies, bulk arrays). Used where epoll or a
# compiler is missing; a test runs them with `@pytest.mark.parametrize("chain", [PURE_PYTHON],
# indirect=True)`.
PURE_PYTHON = {"REPLPROXY_NO_REACTOR": "1", "REPLPROXY_NO_SPEEDUPS": "1"}


@pytest.fixture
def chain(
    request: pytest.FixtureRequest, master: RedisServer
) -> Iterator[tuple[RedisServer, RedisServer, RelayProcess]]:
    """A master, a real read-only replica of it, and a relay of it, all in sync."""
    replica = start_server(master.kind, extra={"replicaof": f"{master.host} {master.port}"})
    try:
        relay = start_relay(upstream_url(master), env=getattr(request, "param", None))
    except BaseException:
        replica.stop()  # a relay that fails to start must not leak the replica
        raise
    try:
        with master.client() as c:
            c.set("k", "v")
            c.rpush("l", "a", "b")
            c.hset("h", "f", "v")
            c.xadd("s", {"f": "v"}, id="1-1")
        wait_replica(master, replica)
        relay.wait_in_sync_with(master)
        yield master, replica, relay
    finally:
        relay.stop()
        replica.stop()


def wait_replica(master: RedisServer, replica: RedisServer) -> None:
    def synced() -> bool:
        off = int(master.info("replication")["master_repl_offset"])
        info = replica.info("replication")
        return info["master_link_status"] == "up" and int(info["slave_repl_offset"]) >= off

    wait_for(synced, 30, what="replica in sync")


class Session:
    """A raw connection that can read several replies per command (Pub/Sub)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = bytearray()

    def send(self, *argv: bytes | str | int) -> None:
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in argv]
        self.sock.sendall(
            b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%b\r\n" % (len(p), p) for p in parts)
        )

    def read(self) -> bytes:
        return read_reply(self.sock, self.buf)

    def call(self, *argv: bytes | str | int, replies: int = 1) -> bytes:
        self.send(*argv)
        return b"".join(self.read() for _ in range(replies))

    def nothing_pending(self, wait: float = 0.3) -> bool:
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            return not self.buf
        finally:
            self.sock.settimeout(10)
        self.buf += data
        return False

    def closed(self, wait: float = 5) -> bool:
        self.sock.settimeout(wait)
        try:
            while True:
                data = self.sock.recv(1 << 16)
                if not data:
                    return True
                self.buf += data
        except ConnectionResetError:
            return True  # closed with our bytes unread: the kernel answers with a reset
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def _no_ids(r: bytes) -> bytes:
    """HELLO's connection id differs between servers."""
    return re.sub(rb"\$2\r\nid\r\n:\d+\r\n", b"$2\r\nid\r\n:N\r\n", r)


def compare_session(
    replica: RedisServer, relay: RelayProcess, script: Sequence[tuple[Sequence[str | bytes], int]]
) -> None:
    a = Session(replica.host, replica.port)
    b = Session("127.0.0.1", relay.port)
    try:
        for argv, n in script:
            theirs = _no_ids(a.call(*argv, replies=n))
            mine = _no_ids(b.call(*argv, replies=n))
            assert mine == theirs, f"{argv}: relay {mine!r} != replica {theirs!r}"
    finally:
        a.close()
        b.close()


TRANSACTIONS = [
    (["multi"], 1),
    (["get", "k"], 1),
    (["lrange", "l", "0", "-1"], 1),
    (["exec"], 1),
    (["multi"], 1),
    (["set", "k", "x"], 1),
    (["get", "k"], 1),
    (["exec"], 1),
    (["multi"], 1),
    (["nosuchcommand"], 1),
    (["exec"], 1),
    (["multi"], 1),
    (["get"], 1),
    (["exec"], 1),
    (["multi"], 1),
    (["discard"], 1),
    (["discard"], 1),
    (["exec"], 1),
    (["multi"], 1),
    (["hgetall", "l"], 1),
    (["get", "k"], 1),
    (["exec"], 1),
    (["watch", "k"], 1),
    (["multi"], 1),
    (["get", "k"], 1),
    (["exec"], 1),
    (["unwatch"], 1),
    (["get", "k"], 1),
    (["multi"], 1),
    (["ping"], 1),
    (["echo", "x"], 1),
    (["select", "2"], 1),
    (["get", "k"], 1),
    (["select", "0"], 1),
    (["exec"], 1),
    (["multi"], 1),
    (["xread", "block", "100", "streams", "s", "$"], 1),
    (["exec"], 1),
    (["multi"], 1),
    (["get", "k"], 1),
    (["exec", "x"], 1),
    (["exec"], 1),
    (["multi"], 1),
    (["watch", "k"], 1),
    (["multi"], 1),
    (["exec"], 1),
]

CONNECTION = [
    (["ping"], 1),
    (["ping", "hi"], 1),
    (["ping", "a", "b"], 1),
    (["echo", "x"], 1),
    (["select", "3"], 1),
    (["get", "k"], 1),
    (["select", "0"], 1),
    (["select", "99"], 1),
    (["select", "x"], 1),
    (["get", "k"], 1),
    (["client", "setname", "a b"], 1),
    (["client", "setname", "me"], 1),
    (["client", "getname"], 1),
    (["client", "nosuch"], 1),
    (["client"], 1),
    (["auth", "x"], 1),
    (["auth", "u", "p"], 1),
    (["hello", "4"], 1),
    (["hello", "x"], 1),
    (["wait", "1", "0"], 1),
    (["readonly"], 1),
    (["set", "a", "b"], 1),
    (["del", "k"], 1),
    (["sort", "l"], 1),
    (["xreadgroup", "group", "g", "c", "streams", "s", ">"], 1),
    (["pfadd", "hll", "a"], 1),
    (["publish", "nobody", "m"], 1),
    (["nosuch", "a", "b"], 1),
    (["get", "a", "b"], 1),
    (["config", "get", "maxclients"], 1),
    (["config", "nosuch"], 1),
    (["client", "reply", "skip"], 0),
    (["echo", "skipped"], 0),
    (["echo", "seen"], 1),
    (["client", "reply", "off"], 0),
    (["echo", "hidden"], 0),
    (["client", "reply", "on"], 1),
    (["hello", "3"], 1),
    (["reset"], 1),
    (["client", "getname"], 1),
    (["acl", "whoami"], 1),
    (["client", "help"], 1),
    (["config", "help"], 1),
    (["object", "help"], 1),
]

PUBSUB = [
    (["subscribe", "c1", "c2"], 2),
    (["get", "k"], 1),
    (["ping"], 1),
    (["ping", "x"], 1),
    (["psubscribe", "p*", "q?"], 2),
    (["publish", "c1", "m"], 1),
    (["unsubscribe", "c1"], 1),
    (["unsubscribe"], 1),
    (["unsubscribe"], 1),
    (["punsubscribe", "p*"], 1),
    (["punsubscribe"], 1),
    (["punsubscribe"], 1),
    (["ssubscribe", "s1"], 1),
    (["sunsubscribe"], 1),
    (["get", "k"], 1),
    (["subscribe", "x"], 1),
    (["reset"], 1),
    (["get", "k"], 1),
    (["hello", "3"], 1),
    (["subscribe", "c1"], 1),
    (["get", "k"], 1),
    (["ping"], 1),
    (["pubsub", "numpat"], 1),
    (["pubsub", "numsub", "c1", "zz"], 1),
    (["pubsub", "channels", "c*"], 1),
]


@pytest.mark.client_dialect
@pytest.mark.parametrize(
    "script", [TRANSACTIONS, CONNECTION, PUBSUB], ids=["transactions", "connection", "pubsub"]
)
def test_sessions_match_a_real_replica(
    chain: tuple[RedisServer, RedisServer, RelayProcess], script: list[tuple[list[str], int]]
) -> None:
    _, replica, relay = chain
    compare_session(replica, relay, script)


@pytest.mark.client_dialect
@pytest.mark.parametrize("chain", [PURE_PYTHON], indirect=True, ids=["pure-python"])
def test_sessions_match_on_the_pure_python_paths(
    chain: tuple[RedisServer, RedisServer, RelayProcess],
) -> None:
    _, replica, relay = chain
    for script in (TRANSACTIONS, CONNECTION, PUBSUB):
        compare_session(replica, relay, script)
    _compare_pipelined_reads(*chain)


def _pipelined_reads(many: list[bytes]) -> list[list[bytes]]:
    """GET/MGET in every state that decides their replies, pipelined with other commands:
    the GET/MGET fast lane must stop wherever its answer would differ."""
    return [
        [b"GET", b"k"],
        [b"get", b"h"],
        [b"GeT", b"nosuch"],
        [b"MGET", b"k", b"h", b"nosuch"],
        [b"GET"],
        [b"GET", b"a", b"b"],
        [b"MGET"],
        [b"mget", *many],
        [b"SELECT", b"1"],
        [b"GET", b"k"],
        [b"GET", b"k1"],
        [b"MGET", b"k", b"k1"],
        [b"SELECT", b"0"],
        [b"CLIENT", b"REPLY", b"SKIP"],
        [b"GET", b"k"],
        [b"GET", b"k"],
        [b"MULTI"],
        [b"GET", b"k"],
        [b"MGET", b"k", b"l"],
        [b"EXEC"],
        [b"HELLO", b"3"],
        [b"GET", b"nosuch"],
        [b"MGET", b"nosuch", b"k"],
        [b"get", b"l"],
        [b"HELLO", b"2"],
        [b"SUBSCRIBE", b"ch"],
        [b"GET", b"k"],
        [b"UNSUBSCRIBE"],
        [b"GET", b"k"],
        [b"GET", b""],
        [b"MGET", b"", b"k"],
    ]


def _compare_pipelined_reads(
    master: RedisServer, replica: RedisServer, relay: RelayProcess
) -> None:
    many = [b"m%d" % i for i in range(150)]  # more keys than the lane's stack arrays
    with master.client() as c:
        c.mset({k: k * 3 for k in many[::2]})
        c.set("", "empty")
        c.execute_command("SELECT", 1)
        c.set("k1", "in db 1")
        c.execute_command("SELECT", 0)
    wait_replica(master, replica)
    relay.wait_in_sync_with(master)
    commands = [encode_command(argv) for argv in _pipelined_reads(many)]
    # Then an inline GET, and a bulk length with a leading zero: a protocol error that
    # closes the connection, so everything up to it is compared.
    commands += [b"GET k\r\n", b"*2\r\n$03\r\nGET\r\n$1\r\nk\r\n"]
    blob = b"".join(commands)
    rnd = random.Random(7)
    cuts = sorted(rnd.sample(range(1, len(blob)), 40))
    # Each command on its own (so each starts a batch: the lane's case), then the same bytes
    # cut at random places (commands split across reads, several in one read).
    for chunks in (commands, [blob[a:b] for a, b in zip([0, *cuts], [*cuts, len(blob)])]):
        got = []
        for host, port in ((replica.host, replica.port), ("127.0.0.1", relay.port)):
            s = Session(host, port)
            # No Nagle: a command must not wait for the previous one's ACK and be merged
            # with the next (the lane only sees commands that start a read).
            s.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                for chunk in chunks:
                    s.sock.sendall(chunk)
                    time.sleep(0.002)
                assert s.closed()
                got.append(_no_ids(bytes(s.buf)))
            finally:
                s.close()
        theirs, mine = got
        assert b"Protocol error" in theirs
        assert mine == theirs


@pytest.mark.client_dialect
def test_pipelined_reads_match_a_real_replica(
    chain: tuple[RedisServer, RedisServer, RelayProcess],
) -> None:
    _compare_pipelined_reads(*chain)


@pytest.mark.client_dialect
def test_hello_shape(chain: tuple[RedisServer, RedisServer, RelayProcess]) -> None:
    _, replica, relay = chain
    for proto in ("2", "3"):
        a = Session(replica.host, replica.port).call("hello", proto)
        b = Session("127.0.0.1", relay.port).call("hello", proto)

        # The same map but for the connection id.
        def strip(r):
            return r.split(b"$2\r\nid\r\n")[0] + r.split(b"$4\r\nmode")[1]

        assert strip(a) == strip(b)


def test_watch_is_invalidated_by_replicated_writes(
    chain: tuple[RedisServer, RedisServer, RelayProcess],
) -> None:
    master, _, relay = chain
    s = Session("127.0.0.1", relay.port)
    assert s.call("watch", "k") == b"+OK\r\n"
    with master.client() as c:
        c.set("k", "changed")
    relay.wait_in_sync_with(master)
    assert s.call("multi") == b"+OK\r\n"
    assert s.call("get", "k") == b"+QUEUED\r\n"
    assert s.call("exec") == b"*-1\r\n"
    # Untouched: EXEC runs.
    assert s.call("watch", "k") == b"+OK\r\n"
    s.call("multi")
    s.call("get", "k")
    assert s.call("exec") == b"*1\r\n$7\r\nchanged\r\n"


def test_transactions_from_the_master_are_never_half_visible(
    chain: tuple[RedisServer, RedisServer, RelayProcess],
) -> None:
    master, _, relay = chain
    stop = threading.Event()

    def writer() -> None:
        with master.client() as c:
            while not stop.is_set():
                p = c.pipeline(transaction=True)
                p.incr("a")
                p.incr("b")
                p.execute()

    t = threading.Thread(target=writer)
    t.start()
    try:
        s = Session("127.0.0.1", relay.port)
        seen = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            r = s.call("mget", "a", "b")
            parts = r.split(b"\r\n")
            if parts[1] != b"$-1":
                assert parts[2] == parts[4], r
                seen += 1
        assert seen > 0
    finally:
        stop.set()
        t.join()


@pytest.mark.client_dialect
def test_pubsub_delivers_what_the_master_publishes(
    chain: tuple[RedisServer, RedisServer, RelayProcess],
) -> None:
    master, replica, relay = chain
    subs = []
    for port in (replica.port, relay.port):
        for proto in (2, 3):
            s = Session("127.0.0.1", port)
            if proto == 3:
                s.call("hello", "3")
            s.call("subscribe", "news")
            s.call("psubscribe", "n*")
            subs.append(s)
    # Shard channels exist from Redis 7.0 (every Valkey).
    sharded = master.kind.is_valkey or master.kind.version >= (7, 0, 0)
    shard = [Session("127.0.0.1", port) for port in (replica.port, relay.port)] if sharded else []
    for s in shard:
        s.call("ssubscribe", "news")
    with master.client() as c:
        assert c.publish("news", "hello") == 0  # the master has no subscribers of its own
        if sharded:
            c.execute_command("spublish", "news", "sharded")
    if sharded:
        assert (
            shard[0].read()
            == shard[1].read()
            == (b"*3\r\n$8\r\nsmessage\r\n$4\r\nnews\r\n$7\r\nsharded\r\n")
        )
    got = [s.read() + s.read() for s in subs]
    assert got[0] == got[2]  # RESP2: replica == relay
    assert got[1] == got[3]  # RESP3
    assert got[0] == (
        b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
        b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
    )
    assert got[1].startswith(b">3\r\n$7\r\nmessage")


def test_xread_block_is_woken_by_a_replicated_xadd(
    chain: tuple[RedisServer, RedisServer, RelayProcess],
) -> None:
    master, replica, relay = chain
    sessions = [Session(replica.host, replica.port), Session("127.0.0.1", relay.port)]
    for s in sessions:
        s.send("xread", "block", "0", "streams", "s", "$")
    for s in sessions:
        assert s.nothing_pending()
    with master.client() as c:
        c.xadd("s", {"new": "entry"}, id="5-1")
    replies = [s.read() for s in sessions]
    assert replies[0] == replies[1]
    assert b"5-1" in replies[1]
    # Timeout: null array.
    assert sessions[1].call("xread", "block", "100", "streams", "s", "$") == b"*-1\r\n"


def test_loading_until_the_first_sync(tmp_path: Path) -> None:
    """A relay whose master is unreachable has no data yet: -LOADING, except for commands
    flagged `loading` (INFO, PING is not one of them)."""
    dead = free_port()
    relay = start_relay(f"redis://127.0.0.1:{dead}", dir=tmp_path, wait_ready=False)
    try:
        s = Session("127.0.0.1", relay.port)
        assert s.call("get", "k") == b"-LOADING Redis is loading the dataset in memory\r\n"
        assert s.call("ping") == b"-LOADING Redis is loading the dataset in memory\r\n"
        assert s.call("info", "replication").startswith(b"$")
        assert s.call("select", "1") == b"+OK\r\n"
    finally:
        relay.stop()


def test_masterdown_when_stale_data_is_refused(master: RedisServer) -> None:
    relay = start_relay(upstream_url(master), "--replica-serve-stale-data", "no")
    try:
        with master.client() as c:
            c.set("k", "v")
        relay.wait_in_sync_with(master)
        s = Session("127.0.0.1", relay.port)
        assert s.call("get", "k") == b"$1\r\nv\r\n"
        master.stop()
        err = (
            b"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n"
        )
        wait_for(lambda: s.call("get", "k") == err, 30, what="MASTERDOWN")
        # PING is flagged stale before Redis 7.0 (as that master's replica answers).
        pong = master.kind.version < (7, 0, 0)
        assert s.call("ping") == (b"+PONG\r\n" if pong else err)
        assert s.call("info", "server").startswith(b"$")  # STALE-flagged
        assert s.call("config", "get", "replica-serve-stale-data") == (
            b"*2\r\n$24\r\nreplica-serve-stale-data\r\n$2\r\nno\r\n"
        )
    finally:
        relay.stop()


def test_default_serves_stale_data(master: RedisServer) -> None:
    relay = start_relay(upstream_url(master))
    try:
        with master.client() as c:
            c.set("k", "v")
        relay.wait_in_sync_with(master)
        master.stop()
        s = Session("127.0.0.1", relay.port)
        wait_for(lambda: relay.info()["master_link_status"] == "down", 30, what="link down")
        assert s.call("get", "k") == b"$1\r\nv\r\n"
    finally:
        relay.stop()


def test_auth_requirepass_and_acl_users(master: RedisServer, tmp_path: Path) -> None:
    acl = tmp_path / "users.acl"
    acl.write_text(
        "user default on >topsecret ~* &* +@all\nuser reader on >secret ~* +@read\n"
        "user off-user off >pw\n"
    )
    relay = start_relay(upstream_url(master), "--aclfile", str(acl))
    try:
        s = Session("127.0.0.1", relay.port)
        assert s.call("get", "k") == b"-NOAUTH Authentication required.\r\n"
        # The relay's users (--aclfile) answer as Redis 7.0's on a 5.0 master, which has
        # none; 5.0 has no HELLO (its replica answers "unknown command" before any auth).
        no_hello = master.kind.version < (6, 0, 0)
        assert s.call("auth", "wrong") == (
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        )
        if no_hello:
            assert s.call("hello", "3").startswith(b"-ERR unknown command `hello`")
        else:
            assert s.call("hello", "3").startswith(b"-NOAUTH HELLO must be called")
        assert s.call("auth", "topsecret") == b"+OK\r\n"
        assert s.call("get", "k") == b"$-1\r\n"
        s2 = Session("127.0.0.1", relay.port)
        assert s2.call("auth", "off-user", "pw").startswith(b"-WRONGPASS")
        if no_hello:  # the relay's users work with `AUTH user pass` on every master
            assert s2.call("auth", "reader", "secret") == b"+OK\r\n"
        else:
            # HELLO may run unauthenticated (no_auth): the ACL does not judge it, nor SETNAME
            hello = s2.call("hello", "3", "auth", "reader", "secret", "setname", "r1")
            assert hello.startswith(b"%7")
            # ... but CLIENT GETNAME is @connection, and SET is refused by the ACL before
            # READONLY (texts per version: tests/test_acl_differential.py compares them with a
            # replica's)
            r = s2.call("client", "getname")
            # (6.2 has no subcommands: it names the whole command)
            old = master.kind.version < (7, 0, 0)
            named = b"'client' command or" if old else b"'client|getname'"
            assert r.startswith(b"-NOPERM") and b"the " + named in r
            r = s2.call("set", "a", "b")
            assert r.startswith(b"-NOPERM") and b"the 'set' command" in r
            assert s2.call("get", "a") == b"_\r\n"
        if not no_hello:  # (5.0's CLIENT LIST has no user field)
            assert b"user=reader" in s.call("client", "list")
    finally:
        relay.stop()


def test_requirepass_with_aclfile_is_refused(master: RedisServer, tmp_path: Path) -> None:
    """Redis lets an ACL file's `default` user (or a fresh nopass one) silently replace
    requirepass: the relay refuses the ambiguous pair instead of serving without a password."""
    acl = tmp_path / "users.acl"
    acl.write_text("user reader on >secret ~* +@read\n")
    with pytest.raises(RuntimeError, match="--requirepass and --aclfile"):
        start_relay(upstream_url(master), "--requirepass", "topsecret", "--aclfile", str(acl))


def test_limits(master: RedisServer) -> None:
    relay = start_relay(
        upstream_url(master),
        "--maxclients",
        "3",
        "--timeout",
        "1",
        "--proto-max-bulk-len",
        "1mb",
        "--client-output-buffer-limit-pubsub",
        "64kb 0 0",
    )
    try:
        # maxclients: the relay's own health probe is HTTP, so 3 client slots are ours.
        held = [Session("127.0.0.1", relay.port) for _ in range(3)]
        for s in held:
            assert s.call("subscribe", "keepalive").startswith(b"*3")  # exempt from timeout
        extra = Session("127.0.0.1", relay.port)
        assert extra.read() == b"-ERR max number of clients reached\r\n"
        assert extra.closed()
        held[0].close()
        held[1].close()
        time.sleep(0.3)
        # Idle timeout: a plain client is closed after ~1 s of silence.
        idle = Session("127.0.0.1", relay.port)
        assert idle.call("ping") == b"+PONG\r\n"
        assert idle.closed(wait=5)
        # proto-max-bulk-len: a bigger bulk is a protocol error; only that client goes.
        big = Session("127.0.0.1", relay.port)
        big.sock.sendall(b"*2\r\n$3\r\nget\r\n$2000000\r\n")
        assert big.read() == b"-ERR Protocol error: invalid bulk length\r\n"
        assert big.closed()
        # A subscriber that does not read is dropped at its output buffer limit.
        slow = held[2]
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with master.client() as c:
            payload = "x" * 65536
            for _ in range(200):
                c.publish("keepalive", payload)
        wait_for(lambda: "output buffer" in relay.log(), 30, what="subscriber dropped")
    finally:
        relay.stop()


def test_protocol_error_closes_only_that_client(
    chain: tuple[RedisServer, RedisServer, RelayProcess],
) -> None:
    _, replica, relay = chain
    for port in (replica.port, relay.port):
        good = Session("127.0.0.1", port)
        bad = Session("127.0.0.1", port)
        bad.sock.sendall(b"*1\r\n$x\r\n")
        assert bad.read() == b"-ERR Protocol error: invalid bulk length\r\n"
        assert bad.closed()
        assert good.call("get", "k") == b"$1\r\nv\r\n"
        # An HTTP request on the RESP port: closed without a reply.
        http = Session("127.0.0.1", port)
        http.sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert http.closed()
        assert not http.buf


@pytest.mark.client_dialect
def test_client_list_kill_and_info(chain: tuple[RedisServer, RedisServer, RelayProcess]) -> None:
    _, replica, relay = chain
    me = Session("127.0.0.1", relay.port)
    other = Session("127.0.0.1", relay.port)
    other.call("client", "setname", "victim")
    listing = me.call("client", "list").decode()
    lines = [ln for ln in listing.split("\r\n", 1)[1].splitlines() if ln]
    # The two clients, and the link with the master (`flags=M`), as a replica lists them.
    assert [" flags=M " in ln for ln in lines].count(True) == 1
    lines = [ln for ln in lines if " flags=M " not in ln]
    assert len(lines) == 2
    theirs = Session(replica.host, replica.port).call("client", "info").decode()
    # Same fields, in the same order, as the upstream kind's CLIENT INFO.
    field_names = [kv.split("=")[0] for kv in theirs.split("\r\n", 1)[1].split()]
    mine = me.call("client", "info").decode()
    assert [kv.split("=")[0] for kv in mine.split("\r\n", 1)[1].split()] == field_names
    victim_id = next(ln for ln in lines if "name=victim" in ln).split()[0].split("=")[1]
    assert me.call("client", "kill", "id", victim_id) == b":1\r\n"
    assert other.closed()
    assert me.call("client", "kill", "id", "999999") == b":0\r\n"
    m = relay.metrics()
    assert m["replproxy_connected_clients"] >= 1
    assert m["replproxy_commands_processed_total"] >= 5
    assert m["replproxy_connections_received_total"] >= 2


def test_thousand_pipelining_clients_while_the_stream_applies(
    chain: tuple[RedisServer, RedisServer, RelayProcess],
) -> None:
    """1000 clients, each pipelining reads of keys the master keeps rewriting with a
    self-checking value: every reply is well-formed and consistent; every client finishes."""
    master, _, relay = chain
    with master.client() as c:
        c.mset({f"key:{i}": f"{i}:0" for i in range(100)})
    relay.wait_in_sync_with(master)
    stop = threading.Event()

    def writer() -> None:
        n = 0
        with master.client() as c:
            while not stop.is_set():
                n += 1
                c.mset({f"key:{i}": f"{i}:{n}" for i in range(0, 100, 7)})

    t = threading.Thread(target=writer)
    t.start()
    done = [0] * 1000
    errors: list[str] = []

    def worker(slot: int, socks: list[socket.socket]) -> None:
        for _ in range(5):
            for s in socks:
                keys = [f"key:{(slot * 7 + j) % 100}" for j in range(10)]
                req = b"".join(
                    b"*2\r\n$3\r\nget\r\n$%d\r\n%b\r\n" % (len(k), k.encode()) for k in keys
                )
                s.sendall(req)
            for s in socks:
                buf = bytearray()
                got: list[bytes] = []
                while len(got) < 10:
                    end = reply_end(buf, 0)
                    if end is None:
                        buf += s.recv(65536)
                        continue
                    got.append(bytes(buf[:end]))
                    del buf[:end]
                for j, r in enumerate(got):
                    i = (slot * 7 + j) % 100
                    if not r.startswith(b"$") or not r.split(b"\r\n")[1].startswith(b"%d:" % i):
                        errors.append(f"client reply {r!r} for key:{i}")
        for s in socks:
            done[socks_index[s]] = 1

    socks_all = [
        socket.create_connection(("127.0.0.1", relay.port), timeout=30) for _ in range(1000)
    ]
    socks_index = {s: i for i, s in enumerate(socks_all)}
    threads = [
        threading.Thread(target=worker, args=(k, socks_all[k * 50 : (k + 1) * 50]))
        for k in range(20)
    ]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        assert not errors, errors[:5]
        assert sum(done) == 1000
        raw = RawConnection(master)
        assert raw.call(["ping"]) == b"+PONG\r\n"
    finally:
        stop.set()
        t.join()
        for s in socks_all:
            s.close()


def _info(raw: bytes) -> dict[str, list[tuple[str, str]]]:
    """INFO text -> {section: [(field, value), ...]} in order."""
    text = raw.split(b"\r\n", 1)[1].decode()
    out: dict[str, list[tuple[str, str]]] = {}
    section = ""
    for line in text.split("\r\n"):
        if line.startswith("# "):
            section = line[2:]
            out[section] = []
        elif ":" in line:
            k, _, v = line.partition(":")
            out[section].append((k, v))
    return out


@pytest.mark.client_dialect
def test_info_sections_like_a_replica(chain: tuple[RedisServer, RedisServer, RelayProcess]) -> None:
    """INFO answers every section a replica shows by default; Replication has the replica's
    fields in the replica's order (Redis 7.0's, which monitoring parses by name and order);
    Server has a 40-hex-char run_id; Keyspace counts the same keys."""
    master, replica, relay = chain
    wait_replica(master, replica)
    relay.wait_in_sync_with(master)
    mine = _info(Session("127.0.0.1", relay.port).call("info", "all"))
    theirs = _info(Session(replica.host, replica.port).call("info", "all"))
    for section in (
        "Server",
        "Clients",
        "Memory",
        "Persistence",
        "Stats",
        "Replication",
        "CPU",
        "Keyspace",
    ):
        assert section in mine, section
    run_id = dict(mine["Server"])["run_id"]
    assert len(run_id) == 40 and all(ch in "0123456789abcdef" for ch in run_id)
    assert dict(mine["Replication"])["role"] == "slave"
    # replproxy's own fields (the lag behind the master...) come after all of Redis's.
    keys = [k for k, _ in mine["Replication"]]
    own = [k for k in keys if k.startswith("replproxy_")]
    assert own and keys[len(keys) - len(own) :] == own
    redis_keys = keys[: len(keys) - len(own)]
    if master.kind.name == "redis7":
        assert redis_keys == [k for k, _ in theirs["Replication"]]
    else:  # Valkey adds fields of its own; the Redis ones are there, in Redis's order
        names = [k for k, _ in theirs["Replication"]]
        assert redis_keys == [k for k in names if k in dict(mine["Replication"])]

    def counts(kv: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(k, v.rsplit(",avg_ttl", 1)[0]) for k, v in kv]

    assert counts(mine["Keyspace"]) == counts(theirs["Keyspace"])
    assert mine["Cluster"] == theirs["Cluster"] == [("cluster_enabled", "0")]
    for field in ("connected_clients", "blocked_clients", "maxclients"):
        assert field in dict(mine["Clients"])
    for field in ("used_memory", "used_memory_human", "used_memory_rss"):
        assert field in dict(mine["Memory"])
    for field in ("total_connections_received", "total_commands_processed"):
        assert field in dict(mine["Stats"])


@pytest.mark.client_dialect
def test_cluster_commands_without_cluster_mode_like_a_replica(
    chain: tuple[RedisServer, RedisServer, RelayProcess],
) -> None:
    """A relay started without --cluster-topology answers the cluster commands as a replica
    of a master without cluster support (docs/cluster.md has the other case)."""
    _, replica, relay = chain
    mine = Session("127.0.0.1", relay.port)
    theirs = Session(replica.host, replica.port)
    for argv in (
        ("CLUSTER", "INFO"),
        ("CLUSTER", "SLOTS"),
        ("CLUSTER", "KEYSLOT", "k"),
        ("CLUSTER", "NOPE"),
        ("ASKING",),
        ("READONLY",),
        ("READWRITE",),
        ("SELECT", "1"),
        ("HELLO",),
    ):
        a, b = mine.call(*argv), theirs.call(*argv)
        if argv == ("HELLO",):  # ids and versions differ: the mode is what matters here
            assert (
                b"$4\r\nmode\r\n$10\r\nstandalone" in a and b"$4\r\nmode\r\n$10\r\nstandalone" in b
            )
        else:
            assert a == b, argv


def test_query_and_normal_output_limits(master: RedisServer) -> None:
    """client-query-buffer-limit closes a client whose unparsed request grows past it; a
    normal client's reply past the normal hard limit closes that client; others go on."""
    with master.client() as c:
        c.set("big", "x" * (3 * 1024 * 1024))
        c.set("k", "v")
    relay = start_relay(
        upstream_url(master),
        "--client-query-buffer-limit",
        "1mb",
        "--client-output-buffer-limit-normal",
        "2mb 0 0",
    )
    try:
        relay.wait_in_sync_with(master)
        bystander = Session("127.0.0.1", relay.port)
        greedy = Session("127.0.0.1", relay.port)
        # A 1.5 MB argument inside a 2 MB bulk that never completes.
        greedy.sock.sendall(b"*2\r\n$3\r\nget\r\n$2000000\r\n" + b"a" * 1_500_000)
        assert greedy.closed()
        wait_for(lambda: "query buffer limit" in relay.log(), 10, what="the log line")
        reader = Session("127.0.0.1", relay.port)
        assert reader.call("strlen", "big") == b":3145728\r\n"
        reader.send("get", "big")
        assert reader.closed()
        assert "over the normal clients' hard limit" in relay.log()
        assert bystander.call("get", "k") == b"$1\r\nv\r\n"
    finally:
        relay.stop()
