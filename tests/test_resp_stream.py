"""StreamSplitter: every byte of the master's stream in exactly one command, exact offsets.

The oracle is a real master: a raw replica connection (PSYNC) captures the stream of real
writes, and the splitter must give back the same bytes with end offsets that land on the
master's own `master_repl_offset`.

The property tests run in both modes (the C splitter in front, and the scanner alone), with
counts sized for the unit suite's minute; REPLPROXY_TEST_SOAK=N runs N times as many
examples (tests/harness/soak.py).
"""

from __future__ import annotations

import functools
import itertools
import random
import socket
import time
from collections.abc import Iterator

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replproxy.keyspace import Keyspace
from replproxy.replication import Replication
from replproxy.resp import (
    StreamCommand,
    StreamProtocolError,
    StreamSplitter,
    encode_command,
    stream,
)
from replproxy.resp.stream import count_key
from tests.harness.servers import RedisServer, ServerKind, available_kinds, start_server
from tests.harness.soak import rounds

MODES = [True, False]
MODE_IDS = ["hiredis", "pure"]


@pytest.fixture(autouse=True, params=["c-lane", "python"])
def c_lane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with the C splitter of canonical commands (`_lanes.c`) in front of
    the scanner, and without it (the scanner alone must be exact)."""
    if request.param == "python":
        monkeypatch.setattr(stream, "_C_SPLIT", None)
    elif stream._C_SPLIT is None:
        pytest.skip("the C splitter is not built (or REPLPROXY_NO_SPEEDUPS is set)")


Result = tuple[list[StreamCommand], str | None, int | None]


def split_chunks(chunks: list[bytes], start: int = 0, **kw: object) -> Result:
    """(commands, error message, error offset) after feeding the chunks one by one."""
    s = StreamSplitter(start, **kw)  # type: ignore[arg-type]
    out: list[StreamCommand] = []
    for chunk in chunks:
        s.feed(chunk)
        try:
            out += s.next_commands()
            out += s.next_commands()
        except StreamProtocolError as e:
            return out, e.message, e.offset
    return out, None, None


def split(data: bytes, start: int = 0, **kw: object) -> Result:
    return split_chunks([data], start, **kw)


def check_accounting(data: bytes, start: int, result: Result) -> None:
    """Every handed-out byte is in one command, in order, with the right end offset."""
    commands, _, _ = result
    assert b"".join(c.raw for c in commands) == data[: sum(len(c.raw) for c in commands)]
    end = start
    for c in commands:
        end += len(c.raw)
        assert c.end_offset == end


def random_chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


# --- unit behaviour --------------------------------------------------------------------------


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_commands_carry_their_bytes_and_end_offsets(use_hiredis: bool) -> None:
    cmds = [[b"SELECT", b"0"], [b"SET", b"k", b"v\r\n"], [b"ping"], [b"x" * 70000]]
    data = b"".join(encode_command(a) for a in cmds)
    s = StreamSplitter(1000, use_hiredis=use_hiredis)
    s.feed(data + b"*2\r\n$3\r\nDEL")
    got = s.next_commands()
    assert [c.argv for c in got] == cmds
    assert [c.raw for c in got] == [encode_command(a) for a in cmds]
    assert got[0].end_offset == 1000 + len(encode_command(cmds[0]))
    assert got[-1].end_offset == s.offset == 1000 + len(data)
    assert s.pending_bytes == len(b"*2\r\n$3\r\nDEL")
    s.feed(b"\r\n$1\r\nk\r\n")
    (last,) = s.next_commands()
    assert last == StreamCommand([b"DEL", b"k"], encode_command([b"DEL", b"k"]), s.offset)
    assert s.pending_bytes == 0 and s.next_commands() == []


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_empty_commands_keep_their_bytes(use_hiredis: bool) -> None:
    data = b"\n*0\r\n*-1\r\n\r\n" + encode_command([b"ping"]) + b"\n"
    commands, error, _ = split(data, 10, use_hiredis=use_hiredis)
    assert error is None
    assert [(c.argv, c.raw) for c in commands] == [
        ([], b"\n"),
        ([], b"*0\r\n"),
        ([], b"*-1\r\n"),
        ([], b"\r\n"),
        ([b"ping"], encode_command([b"ping"])),
        ([], b"\n"),
    ]
    assert commands[-1].end_offset == 10 + len(data)


@pytest.mark.parametrize("line", [b"PING\r\n", b"  \r\n", b"SET a 'b c'\n", b"\r\r\n", b"x\n"])
@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_inline_command_from_a_master_is_a_protocol_error(use_hiredis: bool, line: bytes) -> None:
    """As `processInlineBuffer` for a master client: only a bare newline is allowed inline;
    the commands before the inline one are handed out, it and what follows never are."""
    good = encode_command([b"SET", b"k", b"v"])
    s = StreamSplitter(100, use_hiredis=use_hiredis)
    s.feed(good + line + encode_command([b"ping"]))
    (first,) = s.next_commands()
    assert first.raw == good and s.offset == 100 + len(good)
    assert s.error is not None and s.error.message == "Master using the inline protocol. Desync?"
    assert s.error.offset == 100 + len(good) + 1
    assert s.error.data.startswith(line)
    with pytest.raises(StreamProtocolError):
        s.next_commands()


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_non_canonical_encodings_are_counted_like_a_redis_replica(use_hiredis: bool) -> None:
    data = b"*1\r\n$4\r\nPINGxy" + b"*1\rX$4\rYPING\r\n" + encode_command([b"ping"])
    commands, error, _ = split(data, use_hiredis=use_hiredis)
    assert error is None
    assert [c.raw for c in commands] == [
        b"*1\r\n$4\r\nPINGxy",
        b"*1\rX$4\rYPING\r\n",
        encode_command([b"ping"]),
    ]


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_no_bulk_length_limit_from_a_master(use_hiredis: bool) -> None:
    s = StreamSplitter(0, use_hiredis=use_hiredis)
    s.feed(b"*2\r\n$3\r\nSET\r\n$600000000\r\n")
    assert s.next_commands() == []
    assert s.pending_bytes == 25 and s.offset == 0


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_malformed_stream_reports_the_offset_of_the_bad_command(use_hiredis: bool) -> None:
    good = encode_command([b"SET", b"k", b"v"]) + encode_command([b"ping"])
    s = StreamSplitter(500, use_hiredis=use_hiredis)
    s.feed(good + b"*2\r\n$3\r\nSET\r\n:1\r\n" + encode_command([b"ping"]))
    assert len(s.next_commands()) == 2
    for _ in range(2):
        with pytest.raises(StreamProtocolError) as exc:
            s.next_commands()
        assert exc.value.message == "expected '$', got ':'"
        assert exc.value.offset == 500 + len(good) + 1
    assert s.offset == 500 + len(good)


@pytest.mark.parametrize(
    "data,message",
    [
        (b"*x\r\n", "invalid multibulk length"),
        (b"*2147483648\r\n", "invalid multibulk length"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n+OK\r\n", "expected '$', got '+'"),
        (b"'unbalanced\r\n", "Master using the inline protocol. Desync?"),
        (b"x" * 65537, "too big inline request"),
        (b"*" * 65537, "too big mbulk count string"),
        (b"*1\r\n$" + b"1" * 65536, "too big bulk count string"),
    ],
)
@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_protocol_error_texts(use_hiredis: bool, data: bytes, message: str) -> None:
    assert split(data, use_hiredis=use_hiredis)[1:] == (message, 1)


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_strict_crlf_as_valkey_8_1(use_hiredis: bool) -> None:
    ok = encode_command([b"ping"])
    assert split(ok + b"*1\r\n$4\r\nPINGxy", strict_crlf=True, use_hiredis=use_hiredis)[1:] == (
        "invalid CRLF in request",
        len(ok) + 1,
    )


# --- chunking invariance ---------------------------------------------------------------------

CORPUS = [
    b"".join(encode_command(a) for a in ([b"SELECT", b"9"], [b"SET", b"k\r\n", b""], [b"ping"])),
    encode_command([b"MULTI"]) + encode_command([b"x" * 500]) + encode_command([b"EXEC"]),
    b"\n\n*0\r\n\r\n*1\r\n$4\r\nPINGxy*1\rX$4\rYPING\r\n",
    encode_command([b"ping"]) + b"PING\r\n" + encode_command([b"ping"]),
    encode_command([b"ping"]) + b"*1\r\n$4\r\nPI",
    encode_command([b"ping"]) + b"*2\r\n$1\r\na\r\n*1\r\n",
    encode_command([b"ping"]) + b"'x\r\n",
    b"*1\r\n$\x00\r\n" + encode_command([b"ping"]),
]


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("data", CORPUS)
def test_same_result_at_every_split_and_byte_by_byte(use_hiredis: bool, data: bytes) -> None:
    expected = split(data, 7, use_hiredis=False)
    check_accounting(data, 7, expected)
    assert split(data, 7, use_hiredis=use_hiredis) == expected
    for i in range(len(data) + 1):
        assert split_chunks([data[:i], data[i:]], 7, use_hiredis=use_hiredis) == expected
    byte_by_byte = [data[i : i + 1] for i in range(len(data))]
    assert split_chunks(byte_by_byte, 7, use_hiredis=use_hiredis) == expected


argvs = st.lists(
    st.lists(
        st.one_of(st.binary(max_size=20), st.binary(min_size=200, max_size=3000)),
        min_size=1,
        max_size=5,
    ),
    max_size=15,
)


@settings(max_examples=rounds(75), deadline=None)
@given(argvs, st.integers(0, 2**62), st.lists(st.integers(min_value=0), max_size=20), st.booleans())
def test_encoded_commands_come_back_with_exact_offsets(
    commands: list[list[bytes]], start: int, cuts: list[int], use_hiredis: bool
) -> None:
    data = b"".join(encode_command(a) for a in commands)
    result = split_chunks(random_chunks(data, cuts), start, use_hiredis=use_hiredis)
    assert [c.argv for c in result[0]] == commands and result[1] is None
    check_accounting(data, start, result)


TOKENS = [b"*", b"$", b"\r\n", b"\r", b"\n", b"1", b"2", b"0", b"-1", b"3", b"abc", b" ", b'"']
TOKENS += [b"\x00", b":", b"+", b"PING", b"~", b"*1\r\n$1\r\na\r\n", b"*2000000\r\n"]
garbage = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(TOKENS), max_size=60).map(b"".join),
)


@settings(max_examples=rounds(150), deadline=None)
@given(garbage, st.lists(st.integers(min_value=0), max_size=10), st.booleans())
def test_garbage_gives_the_same_result_in_every_mode(
    data: bytes, cuts: list[int], strict: bool
) -> None:
    expected = split(data, 3, use_hiredis=False, strict_crlf=strict)
    check_accounting(data, 3, expected)
    chunks = random_chunks(data, cuts)
    assert split(data, 3, use_hiredis=True, strict_crlf=strict) == expected
    assert split_chunks(chunks, 3, use_hiredis=True, strict_crlf=strict) == expected
    assert split_chunks(chunks, 3, use_hiredis=False, strict_crlf=strict) == expected


@functools.cache  # 8 MB built once for both modes
def two_hundred_thousand_sets() -> bytes:
    return b"".join(encode_command([b"SET", b"key:%d" % i, b"value"]) for i in range(200_000))


def test_two_hundred_thousand_sets_in_64k_chunks() -> None:
    data = two_hundred_thousand_sets()
    s = StreamSplitter(1)
    n = 0
    for i in range(0, len(data), 65536):
        s.feed(data[i : i + 65536])
        n += len(s.next_commands())
    assert n == 200_000 and s.offset == 1 + len(data) and s.pending_bytes == 0


# --- the stream of a real master -------------------------------------------------------------

KINDS = available_kinds()


@pytest.fixture(params=KINDS, ids=[k.name for k in KINDS])
def master(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    kind: ServerKind = request.param
    s = start_server(kind, extra={"repl-diskless-sync": "no"})
    try:
        yield s
    finally:
        s.stop()


class RawReplica:
    """Just enough of a replica to receive a stream: PSYNC, skip the RDB, keep the bytes."""

    def __init__(self, master: RedisServer) -> None:
        self.sock = socket.create_connection((master.host, master.port), timeout=20)
        self.buf = b""
        self.sock.sendall(encode_command([b"PING"]))
        assert self.line() == b"+PONG"
        self.sock.sendall(encode_command([b"REPLCONF", b"capa", b"psync2"]))
        assert self.line() == b"+OK"
        self.sock.sendall(encode_command([b"PSYNC", b"?", b"-1"]))
        fullresync = self.line()
        assert fullresync.startswith(b"+FULLRESYNC ")
        self.offset = int(fullresync.split()[2])
        size = self.line()
        assert size.startswith(b"$")
        self.take(int(size[1:]))  # the RDB; no CRLF after it

    def _more(self) -> None:
        part = self.sock.recv(1 << 16)
        assert part, "master closed the link"
        self.buf += part

    def line(self) -> bytes:
        while True:
            while b"\n" not in self.buf:
                self._more()
            line, _, self.buf = self.buf.partition(b"\n")
            if line:  # a bare \n is a keep-alive
                return line.rstrip(b"\r")

    def take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def stream_until(self, offset: int) -> bytes:
        """The stream bytes from the FULLRESYNC offset to at least `offset`."""
        while len(self.buf) < offset - self.offset:
            self._more()
        return self.buf


def write_load(master: RedisServer, rng: random.Random) -> list[list[bytes]]:
    sets = []
    with master.client() as c:
        pipe = c.pipeline(transaction=False)
        for i in range(1500):
            key = b"k:%d" % rng.randrange(300)
            value = rng.randbytes(rng.choice([0, 1, 10, 100, 5000]))
            sets.append([b"SET", key, value])
            pipe.set(key, value)
            if i % 100 == 0:
                pipe.hset(b"h", mapping={b"f\r\n": value, b"": b"x"})
                pipe.rpush(b"l", b"a", b"b", value)
                pipe.expire(key, 1000)
                pipe.incrbyfloat(b"f", 0.1)
                pipe.xadd(b"s", {b"a": b"b"})
                pipe.zadd(b"z", {b"m": 1.5})
        pipe.set(b"big", b"\r\n" * 150_000)
        pipe.execute()
        with c.pipeline(transaction=True) as tx:
            tx.set(b"a", b"1").incr(b"a").delete(b"k:1").execute()
        c.select(3)
        c.set(b"other-db", b"x")
        c.eval("redis.call('set', KEYS[1], ARGV[1]) redis.call('del', KEYS[1])", 1, b"e", b"v")
    return sets


def test_real_master_stream_splits_into_its_commands_with_exact_offsets(
    master: RedisServer,
) -> None:
    replica = RawReplica(master)
    try:
        sets = write_load(master, random.Random(42))
        with master.client() as c:
            master_offset = int(c.info("replication")["master_repl_offset"])
        data = replica.stream_until(master_offset)
    finally:
        replica.sock.close()
    start = replica.offset
    rng = random.Random(7)
    results = [split(data, start)]
    for use_hiredis in MODES:
        for chunk_max in (1, 97, 4096, 65536):
            chunks, i = [], 0
            while i < len(data):
                n = rng.randint(1, chunk_max)
                chunks.append(data[i : i + n])
                i += n
            if chunk_max == 1:
                chunks = [*chunks[:3000], b"".join(chunks[3000:])]  # keep the test fast
            results.append(split_chunks(chunks, start, use_hiredis=use_hiredis))
    assert all(r == results[0] for r in results)
    commands, error, _ = results[0]
    assert error is None
    check_accounting(data, start, results[0])
    end = commands[-1].end_offset
    assert end >= master_offset
    assert any(c.end_offset == master_offset for c in commands)  # a command ends right there
    assert len(data) - (end - start) < 20  # at most a keep-alive ping arriving right now
    names = [c.argv[0].upper() for c in commands if c.argv]
    assert {b"SELECT", b"SET", b"MULTI", b"EXEC", b"HSET", b"RPUSH", b"XADD"} <= set(names)
    assert [c.argv for c in commands if c.argv[:1] == [b"SET"] and c.argv[1].startswith(b"k:")] == (
        sets
    )


def test_real_master_keepalive_ping_is_part_of_the_stream(master: RedisServer) -> None:
    with master.client() as c:
        c.config_set("repl-ping-replica-period", "1")
    replica = RawReplica(master)
    try:
        deadline = time.monotonic() + 15
        data = b""
        while time.monotonic() < deadline:
            data = replica.stream_until(replica.offset + 1)
            r = hiredis.Reader()
            r.feed(data)
            if any(x and x[0].lower() == b"ping" for x in iter(r.gets, False)):
                break
            replica._more()
        with master.client() as c:
            master_offset = int(c.info("replication")["master_repl_offset"])
        data = replica.stream_until(master_offset)
    finally:
        replica.sock.close()
    commands, error, _ = split(data, replica.offset)
    # Redis 5 sends "PING", 7.0 "ping"
    assert error is None and [b"ping"] in [[a.lower() for a in c.argv] for c in commands]
    check_accounting(data, replica.offset, (commands, error, None))


# --- merged runs of plain SETs and MSETs (merge_sets) ---------------------------------------


def is_plain_set(argv: list[bytes]) -> bool:
    name = argv[0].lower() if argv else b""
    return (name == b"set" and len(argv) == 3) or (
        name == b"mset" and len(argv) >= 3 and len(argv) % 2 == 1
    )


def check_merged(data: bytes, start: int, merged: Result, plain: Result) -> None:
    """`merged` is `plain` with runs of plain SET/MSET folded: same bytes, same offsets where
    items end, the counts add up, and a folded item's MSET holds the run's pairs in order."""
    check_accounting(data, start, merged)
    assert merged[1:] == plain[1:]
    rest = iter(plain[0])
    for item in merged[0]:
        run = list(itertools.islice(rest, item.commands))
        assert len(run) == item.commands >= 1
        assert b"".join(c.raw for c in run) == item.raw
        assert run[-1].end_offset == item.end_offset
        if item.commands == 1:
            assert item.argv == run[0].argv
        else:
            assert all(is_plain_set(c.argv) for c in run)
            # A run of SETs is named MSET, a run of MSETs mset: never mixed (`count_key`).
            sets = [len(c.argv[0]) == 3 for c in run]
            assert all(sets) or not any(sets)
            name = b"MSET" if sets[0] else b"mset"
            assert item.argv == [name] + [a for c in run for a in c.argv[1:]]
    assert next(rest, None) is None


def test_merged_sets_fold_into_one_mset_with_the_count(c_lane: None) -> None:
    cmds = [
        [b"SET", b"a", b"1"],
        [b"set", b"b", b"2"],
        [b"MSET", b"c", b"3", b"a", b"4"],
        [b"DEL", b"a"],
        [b"SET", b"e", b"5"],
        [b"SET", b"f", b"6", b"EX", b"10"],
        [b"Set", b"g", b"7"],
        [b"mset", b"h", b"8"],
        [b"MSET", b"i", b"9", b"j", b"10"],
    ]
    data = b"".join(encode_command(a) for a in cmds)
    items, err, _ = split(data, 10, merge_sets=True)
    assert err is None
    # The C lane and its Python twin (`merge_set_runs`, behind hiredis's canonical lane)
    # fold the same runs: of SETs (named MSET) or of MSETs (named mset), never mixed, so
    # INFO commandstats can count what each stood for (`count_key`).
    assert [(c.argv, c.commands) for c in items] == [
        ([b"MSET", b"a", b"1", b"b", b"2"], 2),
        ([b"MSET", b"c", b"3", b"a", b"4"], 1),  # a lone one stays as it came
        ([b"DEL", b"a"], 1),
        ([b"SET", b"e", b"5"], 1),
        ([b"SET", b"f", b"6", b"EX", b"10"], 1),  # options: not a plain SET
        ([b"Set", b"g", b"7"], 1),
        ([b"mset", b"h", b"8", b"i", b"9", b"j", b"10"], 2),
    ]
    assert [count_key(c.argv[0], c.commands) for c in items] == [
        b"set",
        b"MSET",
        b"DEL",
        b"SET",
        b"SET",
        b"Set",
        b"mset",
    ]
    check_merged(data, 10, (items, None, None), split(data, 10))


def random_set_stream(rng: random.Random, n: int) -> list[bytes]:
    """Encoded commands, mostly plain SET/MSET runs, with what must break a run between them:
    other writes, SETs with options, SELECT, MULTI/EXEC, and encodings only the exact scanner
    takes (inline, non-canonical)."""
    keys = [b"k%d" % i for i in range(8)]
    out: list[bytes] = []
    for _ in range(n):
        r = rng.random()
        k, v = rng.choice(keys), b"v%d" % rng.randrange(1000) * rng.choice([1, 1, 50])
        if r < 0.35:
            out.append(encode_command([rng.choice([b"SET", b"set", b"sEt"]), k, v]))
        elif r < 0.55:
            pairs = [a for _ in range(rng.randint(1, 4)) for a in (rng.choice(keys), v)]
            out.append(encode_command([rng.choice([b"MSET", b"mset"]), *pairs]))
        elif r < 0.62:
            out.append(encode_command([b"SET", k, v, b"PXAT", b"%d" % (2**41 + rng.randrange(9))]))
        elif r < 0.67:
            out.append(encode_command([b"SELECT", b"%d" % rng.randrange(3)]))
        elif r < 0.72:
            out.append(
                encode_command([b"MULTI"])
                + encode_command([b"SET", k, v])
                + encode_command([b"INCR", b"n"])
                + encode_command([b"MSET", k, v])
                + encode_command([b"EXEC"])
            )
        elif r < 0.77:
            # A list for a later SET/MSET to replace (as the master does, DEL first).
            out.append(encode_command([b"DEL", k]) + encode_command([b"LPUSH", k, v]))
        elif r < 0.82:
            out.append(encode_command([b"PEXPIREAT", k, b"%d" % (2**41)]))  # a TTL to drop
        elif r < 0.86:
            # Not canonical: a header's \r then any byte, a bulk then any two bytes.
            out.append(b"*3\rX$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nxYZ" % (len(k), k))
        elif r < 0.89:
            out.append(rng.choice([b"\n", b"\r\n"]))  # a keep-alive: bytes, no command
        elif r < 0.92:
            out.append(encode_command([b"MSETNX", k, v]))
        else:
            out.append(encode_command([b"DEL", k]))
    return out


@settings(max_examples=rounds(100), deadline=None)
@given(
    st.integers(0, 2**32), st.integers(0, 2**40), st.lists(st.integers(min_value=0), max_size=12)
)
def test_merged_runs_keep_every_byte_offset_and_pair(
    seed: int, start: int, cuts: list[int]
) -> None:
    data = b"".join(random_set_stream(random.Random(seed), 40))
    chunks = random_chunks(data, cuts)
    plain = split(data, start)
    check_merged(data, start, split_chunks(chunks, start, merge_sets=True), plain)
    check_merged(data, start, split(data, start, merge_sets=True), plain)


def test_merging_stops_at_a_bounded_mset() -> None:
    pairs = [a for i in range(500) for a in (b"k%d" % i, b"v")]
    data = b"".join(encode_command([b"MSET", *pairs]) for _ in range(200))
    items, err, _ = split(data, 0, merge_sets=True)
    assert err is None and sum(c.commands for c in items) == 200
    assert 1 < len(items) < 200 and max(len(c.argv) for c in items) <= 65536
    check_merged(data, 0, (items, None, None), split(data, 0))


def apply_stream(chunks: list[bytes], merge: bool) -> tuple[Replication, Keyspace]:
    ks = Keyspace(databases=3)
    repl = Replication(ks)
    repl.full_resync("a" * 40, 100, stream_db=0)
    s = StreamSplitter(100, merge_sets=merge)
    for chunk in chunks:
        s.feed(chunk)
        repl.process(s.next_commands())
    return repl, ks


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32), st.lists(st.integers(min_value=0), max_size=8))
def test_a_merged_run_applies_as_its_commands_one_by_one(seed: int, cuts: list[int]) -> None:
    """Same dataset (values, types replaced, TTLs dropped, last write winning), offsets,
    backlog and counters as applying every command alone."""
    data = b"".join(random_set_stream(random.Random(seed), 60))
    chunks = random_chunks(data, cuts)
    one, ks_one = apply_stream(chunks, merge=False)
    merged, ks_merged = apply_stream(chunks, merge=True)
    assert ks_merged.dbs == ks_one.dbs and ks_merged.expires == ks_one.expires
    assert merged.repl_offset == one.repl_offset == 100 + len(data)
    assert merged.backlog.read_from(101) == one.backlog.read_from(101) == data
    assert merged.stats.commands_applied == one.stats.commands_applied
    assert merged.stats.transactions_applied == one.stats.transactions_applied
    assert not ks_merged.apply_errors and not ks_merged.unsupported_commands
