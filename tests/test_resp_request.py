"""RequestParser: Redis's request splitting, byte for byte, whatever the chunking.

The oracle for the protocol is a real server: a raw input sent to redis-server / valkey-server
must produce the same replies as the commands our parser extracted, re-encoded canonically, plus
our `-ERR Protocol error: ...` line when we raise.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replproxy.resp import (
    ProtocolError,
    QueryBufferLimitError,
    RequestParser,
    encode_command,
    split_args,
    string2ll,
)
from tests.harness.servers import RedisServer, ServerKind, available_kinds, start_server
from tests.harness.soak import rounds

MODES = [True, False]
MODE_IDS = ["hiredis", "pure"]
VALKEY: dict[str, object] = {"strict_crlf": True, "sticky_blank_inline": True}
FLAVOURS = [{}, VALKEY]
FLAVOUR_IDS = ["redis", "valkey"]


def flavour(kind: ServerKind) -> dict[str, object]:
    return VALKEY if kind.is_valkey else {}


Result = tuple[list[list[bytes]], str | None]


def parse_chunks(chunks: list[bytes], **kw: object) -> Result:
    """Feed chunks one by one, draining after each; (commands, protocol error text or None)."""
    p = RequestParser(**kw)  # type: ignore[arg-type]
    out: list[list[bytes]] = []
    for chunk in chunks:
        p.feed(chunk)
        try:
            while True:
                got = p.next_requests()
                if not got:
                    break
                out += got
        except ProtocolError as e:
            return out, e.message
    return out, None


def parse(data: bytes, **kw: object) -> Result:
    return parse_chunks([data], **kw)


def splits(data: bytes) -> Iterator[list[bytes]]:
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]


# --- string2ll / sdssplitargs ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text,value",
    [
        (b"0", 0),
        (b"1", 1),
        (b"-1", -1),
        (b"9223372036854775807", 2**63 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"9223372036854775808", None),
        (b"-9223372036854775809", None),
        (b"", None),
        (b"-", None),
        (b"-0", None),
        (b"01", None),
        (b"+1", None),
        (b" 1", None),
        (b"1 ", None),
        (b"1a", None),
        (b"00", None),
        (b"123456789012345678901", None),
    ],
)
def test_string2ll_matches_redis(text: bytes, value: int | None) -> None:
    assert string2ll(text) == value


@pytest.mark.parametrize(
    "line,argv",
    [
        (b"", []),
        (b"   ", []),
        (b"a b  c", [b"a", b"b", b"c"]),
        (b"\ta\r\tb ", [b"a", b"b"]),
        (b'"a b" c', [b"a b", b"c"]),
        (b"'a b' c", [b"a b", b"c"]),
        (b'""', [b""]),
        (b"''", [b""]),
        (b'"\\n\\r\\t\\b\\a\\\\\\"\\q"', [b'\n\r\t\b\a\\"q']),
        (b'"\\x41\\x4a\\xff\\x00"', [b"AJ\xff\x00"]),
        (b'"\\x4"', [b"x4"]),  # not two hex digits: \x is just x
        (b'"\\xZZ"', [b"xZZ"]),
        (b"'it\\'s' 'a\\b'", [b"it's", b"a\\b"]),
        (b'ab"cd ef"', [b"abcd ef"]),  # a quote may open mid-token
        (b"ab'cd'", [b"abcd"]),
        (b"a\vb", [b"a\vb"]),  # \v and \f do not end a token...
        (b"\va \fb", [b"a", b"b"]),  # ...but are skipped between tokens
        (b'"a"\vb', [b"a", b"b"]),  # and may follow a closing quote
        (b"\xff\x80 x", [b"\xff\x80", b"x"]),
        (b'"a"b', None),  # closing quote glued to a token
        (b"'a'b", None),
        (b'"abc', None),
        (b"'abc", None),
        (b'"abc\\"', None),
        (b'"\\', None),
    ],
)
def test_split_args_matches_sdssplitargs(line: bytes, argv: list[bytes] | None) -> None:
    assert split_args(line) == argv


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_pipelined_multibulk_and_inline(use_hiredis: bool) -> None:
    data = (
        encode_command([b"SET", b"k", b"v\r\n\x00"])
        + b"PING\r\n"
        + encode_command([b"GET", b""])
        + b'ECHO "hi there"\n'
        + encode_command([b"x" * 10000])
    )
    assert parse(data, use_hiredis=use_hiredis) == (
        [
            [b"SET", b"k", b"v\r\n\x00"],
            [b"PING"],
            [b"GET", b""],
            [b"ECHO", b"hi there"],
            [b"x" * 10000],
        ],
        None,
    )


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_empty_commands_are_ignored(use_hiredis: bool) -> None:
    data = b"*0\r\n*-1\r\n*-7\r\n\n\r\n   \r\n\t\n" + encode_command([b"PING"]) + b"*0\r\n"
    assert parse(data, use_hiredis=use_hiredis) == ([[b"PING"]], None)


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_non_canonical_forms_redis_accepts(use_hiredis: bool) -> None:
    # the two bytes after a bulk and the byte after a header's \r are skipped unchecked
    data = b"*1\r\n$4\r\nPINGxy" + b"*1\rX$4\rYPING\r\n" + b"*2\r\n$1\r\na\r\n$0\r\n\r\n"
    assert parse(data, use_hiredis=use_hiredis) == ([[b"PING"], [b"PING"], [b"a", b""]], None)


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_strict_crlf_as_valkey_8_1(use_hiredis: bool) -> None:
    cases = [
        (b"*abc\rX", "invalid CRLF in request"),  # before the count is parsed
        (b"*-1\rX", "invalid CRLF in request"),
        (b"*1\r\n:1\rX", "expected '$', got ':'"),  # after the `$` check
        (b"*1\r\n$abc\rX", "invalid CRLF in request"),
        (b"*1\r\n$1\r\naXY", "invalid CRLF in request"),
        (b"*1\r\n$1\r\na\rX", "invalid CRLF in request"),
    ]
    for data, message in cases:
        assert parse(data, strict_crlf=True, use_hiredis=use_hiredis) == ([], message)
    assert parse(b"PING\rX\n*1\r\n$1\r\na\r", strict_crlf=True, use_hiredis=use_hiredis) == (
        [[b"PING", b"X"]],  # inline lines are unchanged; a bulk waits for its 2 last bytes
        None,
    )


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_nul_hides_a_header_terminator_as_strchr_does(use_hiredis: bool) -> None:
    p = RequestParser(use_hiredis=use_hiredis)
    p.feed(b"*1\r\n$\x001\r\na\r\n")
    assert p.next_requests() == []  # Redis waits: strchr stopped at the NUL
    p.feed(b"x" * 65536)
    with pytest.raises(ProtocolError, match="too big bulk count string"):
        p.next_requests()


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_commands_before_an_error_come_first_then_the_error_repeats(use_hiredis: bool) -> None:
    p = RequestParser(use_hiredis=use_hiredis)
    p.feed(encode_command([b"PING"]) + b"PING\r\n*1\r\n:1\r\n" + encode_command([b"PING"]))
    assert p.next_requests() == [[b"PING"], [b"PING"]]
    for _ in range(2):
        with pytest.raises(ProtocolError) as exc:
            p.next_requests()
        assert exc.value.reply == b"-ERR Protocol error: expected '$', got ':'\r\n"
    p.feed(b"PING\r\n")  # ignored after the error
    with pytest.raises(ProtocolError):
        p.next_requests()


PROTOCOL_ERRORS = [
    (b"*abc\r\n", "invalid multibulk length"),
    (b"*\r\n", "invalid multibulk length"),
    (b"*01\r\n", "invalid multibulk length"),
    (b"*+1\r\n", "invalid multibulk length"),
    (b"*-0\r\n", "invalid multibulk length"),
    (b"*1 \r\n", "invalid multibulk length"),
    (b"*2147483648\r\n", "invalid multibulk length"),
    (b"*99999999999999999999\r\n", "invalid multibulk length"),
    (b"*1\r\n$-1\r\n", "invalid bulk length"),
    (b"*1\r\n$\r\n", "invalid bulk length"),
    (b"*1\r\n$01\r\n", "invalid bulk length"),
    (b"*1\r\n$1x\r\n", "invalid bulk length"),
    (b"*1\r\n$536870913\r\n", "invalid bulk length"),
    (b"*1\r\n:1\r\n", "expected '$', got ':'"),
    (b"*1\r\n*1\r\n$1\r\na\r\n", "expected '$', got '*'"),
    (b"*2\r\n$1\r\na\r\n+b\r\n", "expected '$', got '+'"),
    (b"*1\r\n\r\n", "expected '$', got ' '"),  # \r and \n are printed as spaces
    (b"*1\r\n\n\r\n", "expected '$', got ' '"),
    (b"*1\r\n\xff\r\n", "expected '$', got '\xff'"),
    (b'"abc\r\n', "unbalanced quotes in request"),
    (b"GET 'a'b\r\n", "unbalanced quotes in request"),
    (b"'\n", "unbalanced quotes in request"),
]


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("data,message", PROTOCOL_ERRORS)
def test_protocol_error_texts(use_hiredis: bool, data: bytes, message: str) -> None:
    prefix = encode_command([b"PING"]) + b"PING\r\n"
    assert parse(prefix + data, use_hiredis=use_hiredis) == ([[b"PING"], [b"PING"]], message)


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_too_big_unterminated_lines(use_hiredis: bool) -> None:
    # PROTO_INLINE_MAX_SIZE counts the whole unparsed buffer, strictly greater than the limit
    for head, unparsed, message in [
        (b"", 0, "too big inline request"),
        (b"*", 1, "too big mbulk count string"),
        (b"*1\r\n$", 1, "too big bulk count string"),  # `*1\r\n` was consumed
    ]:
        p = RequestParser(max_inline=100, use_hiredis=use_hiredis)
        p.feed(head + b"1" * (100 - unparsed))
        assert p.next_requests() == []
        p.feed(b"1")
        with pytest.raises(ProtocolError) as exc:
            p.next_requests()
        assert exc.value.message == message
    # a terminated line may be longer than the limit when it arrives at once
    assert parse(b"ECHO " + b"a" * 200 + b"\r\n", max_inline=100) == ([[b"ECHO", b"a" * 200]], None)


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_limits_of_counts_and_lengths(use_hiredis: bool) -> None:
    # 7.0+: a count up to INT_MAX is accepted (and Redis waits for the arguments)
    assert parse(b"*2147483647\r\n", use_hiredis=use_hiredis) == ([], None)
    # 6.2 and older: 1024*1024
    assert parse(b"*1048577\r\n", max_multibulk_len=1024 * 1024, use_hiredis=use_hiredis) == (
        [],
        "invalid multibulk length",
    )
    big = encode_command([b"ECHO"] * 11)
    assert parse(big, max_multibulk_len=10, use_hiredis=use_hiredis) == (
        [],
        "invalid multibulk length",
    )
    assert parse(big, max_multibulk_len=11, use_hiredis=use_hiredis) == ([[b"ECHO"] * 11], None)
    arg = encode_command([b"SET", b"k", b"v" * 1000])
    assert parse(arg, proto_max_bulk_len=999, use_hiredis=use_hiredis) == (
        [],
        "invalid bulk length",
    )
    assert parse(arg, proto_max_bulk_len=1000, use_hiredis=use_hiredis)[1] is None


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_unauthenticated_limits_and_one_command_at_a_time(use_hiredis: bool) -> None:
    p = RequestParser(auth_required=True, use_hiredis=use_hiredis)
    p.feed(encode_command([b"PING"]) + encode_command([b"AUTH", b"pw"]) + b"*11\r\n")
    assert p.next_requests() == [[b"PING"]]
    assert p.next_requests() == [[b"AUTH", b"pw"]]
    p.auth_required = False  # the server executed AUTH successfully
    assert p.next_requests() == []  # *11 is fine now; waiting for its arguments
    p.feed(b"$1\r\na\r\n" * 11)
    assert p.next_requests() == [[b"a"] * 11]

    for data, message in [
        (b"*11\r\n", "unauthenticated multibulk length"),
        (b"*1\r\n$16385\r\n", "unauthenticated bulk length"),
    ]:
        assert parse(data, auth_required=True, use_hiredis=use_hiredis) == ([], message)
    ok = encode_command([b"a"] * 10) + encode_command([b"x" * 16384])
    assert parse(ok, auth_required=True, use_hiredis=use_hiredis) == (
        [[b"a"] * 10, [b"x" * 16384]],
        None,
    )


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_query_buffer_limit(use_hiredis: bool) -> None:
    p = RequestParser(max_query_buffer=100, use_hiredis=use_hiredis)
    p.feed(b"*1\r\n$200\r\n")
    assert p.next_requests() == []
    assert p.query_buffer_len == 0  # the header was consumed, as Redis trims qb_pos
    p.feed(b"x" * 100)
    assert p.next_requests() == []
    with pytest.raises(QueryBufferLimitError):
        p.feed(b"x")
    with pytest.raises(QueryBufferLimitError):
        p.next_requests()
    # complete commands parsed before the limit was hit were returned normally
    p = RequestParser(max_query_buffer=100, use_hiredis=use_hiredis)
    p.feed(b"PING\r\n" * 10)
    assert len(p.next_requests()) == 10
    p.feed(b"x" * 100)
    with pytest.raises(QueryBufferLimitError):
        p.feed(b"\n")


# --- chunking invariance ---------------------------------------------------------------------

CORPUS = [
    encode_command([b"SET", b"key", b"value"]) * 3,
    encode_command([b"SET", b"k", b"\r\n\r\n$3\r\n*1\r\n"]) + encode_command([b"", b""]),
    encode_command([b"x" * 300, b"y"]) + encode_command([b"PING"]),
    b"PING\r\nPING\nECHO  'a b'  \"c\\x41\"\r\n\n\r\n  \r\n",
    b"a\rb\r\r\n" + encode_command([b"PING"]) + b"x\n",
    b"*0\r\n*-1\r\n*-5\r\n" + encode_command([b"PING"]),
    b"*1\r\n$4\r\nPINGxy*1\rX$4\rYPING\r\n",
    b"*1\r\n$\x00\r\n",
    b"*1\r\n$1\r\naX\n" + encode_command([b"PING"]),
    b"*1\r\n$4\r\nPI",  # ends mid-command
    b"PING\r\nECHO abc",  # ends mid-line
    *[encode_command([b"PING"]) + bad for bad, _ in PROTOCOL_ERRORS],
    encode_command([b"PING"]) + b"*1\r\n$3\r\nabc\r\n*x\r\n" + encode_command([b"PING"]),
]


@pytest.mark.parametrize("kw", FLAVOURS, ids=FLAVOUR_IDS)
@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("data", CORPUS)
def test_same_result_at_every_split_and_byte_by_byte(
    use_hiredis: bool, data: bytes, kw: dict[str, object]
) -> None:
    expected = parse(data, use_hiredis=False, **kw)
    assert parse(data, use_hiredis=use_hiredis, **kw) == expected
    for chunks in splits(data):
        assert parse_chunks(chunks, use_hiredis=use_hiredis, **kw) == expected
    byte_by_byte = [data[i : i + 1] for i in range(len(data))]
    assert parse_chunks(byte_by_byte, use_hiredis=use_hiredis, **kw) == expected


def random_chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


argvs = st.lists(
    st.lists(
        st.one_of(st.binary(max_size=20), st.binary(min_size=100, max_size=5000)),
        min_size=1,
        max_size=6,
    ),
    max_size=12,
)


# 75 and 200 examples: sized for the unit suite's minute; REPLPROXY_TEST_SOAK=N runs N times
# as many (tests/harness/soak.py).
@settings(max_examples=rounds(75), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argvs, st.lists(st.integers(min_value=0), max_size=20), st.booleans())
def test_encode_parse_round_trip(
    commands: list[list[bytes]], cuts: list[int], use_hiredis: bool
) -> None:
    data = b"".join(encode_command(a) for a in commands)
    assert parse_chunks(random_chunks(data, cuts), use_hiredis=use_hiredis) == (commands, None)


TOKENS = [b"*", b"$", b"\r\n", b"\r", b"\n", b"1", b"2", b"0", b"-1", b"3", b"abc", b" ", b'"']
TOKENS += [b"'", b"\\x41", b"\x00", b":", b"+", b"PING", b"\\", b"\t", b"*200000\r\n", b"~"]
garbage = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(TOKENS), max_size=60).map(b"".join),
)


@settings(max_examples=rounds(200), deadline=None)
@given(garbage, st.lists(st.integers(min_value=0), max_size=10), st.sampled_from(FLAVOURS))
def test_garbage_gives_the_same_commands_or_protocol_error_in_every_mode(
    data: bytes, cuts: list[int], kw: dict[str, object]
) -> None:
    expected = parse(data, use_hiredis=False, **kw)  # raises nothing but ProtocolError (caught)
    chunks = random_chunks(data, cuts)
    assert parse(data, use_hiredis=True, **kw) == expected
    assert parse_chunks(chunks, use_hiredis=True, **kw) == expected
    assert parse_chunks(chunks, use_hiredis=False, **kw) == expected


def test_hundred_thousand_pipelined_gets() -> None:
    data = b"".join(encode_command([b"GET", b"key:%05d" % i]) for i in range(100_000))
    p = RequestParser()
    n = 0
    for i in range(0, len(data), 16384):
        p.feed(data[i : i + 16384])
        n += len(p.next_requests())
    assert n == 100_000


# --- against real servers --------------------------------------------------------------------

KINDS = available_kinds()


@pytest.fixture(scope="module", params=KINDS, ids=[k.name for k in KINDS])
def server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    kind: ServerKind = request.param
    s = start_server(kind, extra={"proto-max-bulk-len": "1mb"})
    try:
        yield s
    finally:
        s.stop()


def talk(server: RedisServer, data: bytes, chunk: int = 1 << 20) -> bytes:
    """Send everything, then read until the server closes the connection."""
    with socket.create_connection((server.host, server.port), timeout=20) as sock:
        try:
            for i in range(0, len(data), chunk):
                sock.sendall(data[i : i + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed on a protocol error while we were still sending
        replies = b""
        try:
            while part := sock.recv(1 << 16):
                replies += part
        except ConnectionResetError:
            pass
        return replies


QUIT = encode_command([b"QUIT"])


def server_agrees(server: RedisServer, data: bytes, **kw: object) -> None:
    """The server's replies to `data` equal its replies to our parse, re-encoded, plus our
    protocol error line; `data` must end at a command boundary or in a protocol error."""
    commands, message = parse(data + QUIT, **kw)
    raw = talk(server, data + QUIT)
    if message is None:
        assert commands[-1] == [b"QUIT"]
        assert raw == talk(server, b"".join(encode_command(a) for a in commands))
    else:
        canonical = talk(server, b"".join(encode_command(a) for a in commands) + QUIT)
        assert canonical.endswith(b"+OK\r\n")
        assert raw == canonical[:-5] + ProtocolError(message).reply


SERVER_CASES = [
    b"ECHO a\r\nECHO \"x\\x41\\n\" 'it\\'s'\r\nXYZ a\rb\tc\n\n  \r\n",
    b"*0\r\n*-1\r\n*-9\r\n" + encode_command([b"ECHO", b"\x00\r\n"]),
    b"*2\r\n$4\r\nECHOxy$1\r\nAzz*2\rX$4\rYECHO\r\n$0\r\n\r\n",
    b"*2\r\n$4\r\nECHO\r\n$1\r\nA\r\r",
    b"*1\r\n$4\rXPING\r\n",
    b"*abc\rX",
    b"*1\r\n:1\rX",
    b"NOSUCH a\vb \fc\r\n",
    *[encode_command([b"ECHO", b"before"]) + bad for bad, _ in PROTOCOL_ERRORS],
    encode_command([b"ECHO", b"a"]) + b"*1\r\n$1048577\r\n",  # proto-max-bulk-len 1mb
]


@pytest.mark.parametrize("data", SERVER_CASES)
def test_real_server_splits_and_errors_alike(server: RedisServer, data: bytes) -> None:
    server_agrees(server, data, proto_max_bulk_len=1024 * 1024, **flavour(server.kind))


@pytest.mark.parametrize("use_hiredis", MODES, ids=MODE_IDS)
def test_blank_inline_line_leaves_valkey_in_inline_mode(use_hiredis: bool) -> None:
    data = b"  \r\n" + encode_command([b"PING"]) + b"\n \t\r\n\r\n" + encode_command([b"PING"])
    assert parse(data, use_hiredis=use_hiredis) == ([[b"PING"], [b"PING"]], None)
    assert parse(data, sticky_blank_inline=True, use_hiredis=use_hiredis) == (
        [[b"*1"], [b"$4"], [b"PING"], [b"PING"]],  # the empty line resets the request type
        None,
    )


def test_real_server_blank_inline_line(server: RedisServer) -> None:
    data = b"ECHO a\r\n \r\n" + encode_command([b"ECHO", b"b"]) + b"\t\r\n\r\n"
    data += encode_command([b"ECHO", b"c"]) + b"  \r\n" + encode_command([b"ECHO", b"d"])
    server_agrees(server, data, **flavour(server.kind))


def test_real_server_too_big_lines(server: RedisServer) -> None:
    # no terminator ever arrives, so the outcome does not depend on how the server reads
    for head in (b"ECHO ", b"*", b"*1\r\n$"):
        data = encode_command([b"ECHO", b"a"]) + head + b"1" * 70000
        commands, message = parse(data, **flavour(server.kind))
        assert commands == [[b"ECHO", b"a"]] and message is not None
        assert talk(server, data) == b"$1\r\na\r\n" + ProtocolError(message).reply


def test_real_server_accepts_a_count_above_one_million(server: RedisServer) -> None:
    # 6.2 refused counts above 1024*1024; 7.0+ and Valkey accept up to INT_MAX
    data = b"*1048577\r\n$4\r\nECHO\r\n" + b"$1\r\na\r\n" * 1048576
    server_agrees(server, data, **flavour(server.kind))


@pytest.mark.client_dialect
def test_real_server_unauthenticated_limits(server: RedisServer) -> None:
    s = start_server(server.kind, password="pw")
    try:
        for data in (
            encode_command([b"PING"]) + b"*11\r\n",
            encode_command([b"PING"]) + b"*1\r\n$16385\r\n",
            encode_command([b"ECHO"] * 10) + encode_command([b"x" * 16384]),
        ):
            server_agrees(s, data, auth_required=True, **flavour(s.kind))
        # after AUTH the limits are lifted: emulate the server executing AUTH
        data = encode_command([b"AUTH", b"pw"]) + encode_command([b"ECHO"] * 11) + QUIT
        p = RequestParser(auth_required=True)
        p.feed(data)
        assert p.next_requests() == [[b"AUTH", b"pw"]]
        p.auth_required = False
        assert p.next_requests() == [[b"ECHO"] * 11, [b"QUIT"]]
        raw = talk(s, data)
        assert raw.startswith(b"+OK\r\n-ERR wrong number of arguments for 'echo' command\r\n")
    finally:
        s.stop()


def test_real_server_query_buffer_limit_closes_without_reply(server: RedisServer) -> None:
    s = start_server(server.kind, extra={"client-query-buffer-limit": "1mb"})
    try:
        data = encode_command([b"ECHO", b"a"]) + b"*2\r\n$4\r\nECHO\r\n$2000000\r\n"
        data += b"x" * 1_100_000
        p = RequestParser(max_query_buffer=1024 * 1024)
        with pytest.raises(QueryBufferLimitError):
            for i in range(0, len(data), 16384):
                p.feed(data[i : i + 16384])
                p.next_requests()
        assert talk(s, data, chunk=16384) == b"$1\r\na\r\n"
    finally:
        s.stop()


def test_the_get_mget_lane_equals_parsing_and_running_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """`RequestParser.string_reads` (C) runs GET/MGET straight from the buffer: whatever the
    pipeline and its cuts, the replies and the commands left for the exact parser must be
    those of parsing everything and running GET/MGET's Python handlers."""
    import random

    from replproxy.keyspace import Keyspace
    from replproxy.keyspace.reads import ReadContext, ReplyError
    from replproxy.keyspace.t_string import get, mget
    from replproxy.resp import request

    if request._C_STRING_READS is None:
        pytest.skip("the C lane is not built (or REPLPROXY_NO_SPEEDUPS is set)")
    now = 1_000_000
    ks = Keyspace()
    db, expires = ks.dbs[0], ks.expires[0]
    for i in range(40):
        db[b"s%d" % i] = b"v" * i
    db[b"list"] = [b"a"]
    db[b""] = b"empty key"
    expires.update({b"s1": now, b"s2": now - 5, b"s3": now + 1, b"list": now + 9})
    keys = [*db, b"nosuch", b"s\r\n", b"x" * 300]
    rng = random.Random(5)

    def command() -> bytes:
        r = rng.random()
        if r < 0.35:
            return encode_command([rng.choice([b"GET", b"get", b"gEt"]), rng.choice(keys)])
        if r < 0.6:
            n = rng.choice([1, 2, 5, 63, 64, 65, 200])
            return encode_command([b"MGET", *(rng.choice(keys) for _ in range(n))])
        return rng.choice(
            [
                encode_command([b"GET"]),
                encode_command([b"GET", b"a", b"b"]),
                encode_command([b"MGET"]),
                encode_command([b"GETX", b"k"]),
                encode_command([b"PING"]),
                b"GET s5\r\n",
                b"*2\r\n$3\r\nGET\r\n$02\r\ns5\r\n",
                b"*02\r\n$3\r\nGET\r\n$2\r\ns5\r\n",
                b"*2\r\n$3\r\nGET\r\n$+2\r\ns5\r\n",
                b"*2\r\n$3\r\nGET\r\n$2\r\ns5XY",
                b"*0\r\n",
                b"\r\n",
            ]
        )

    def run(argv: list[bytes], proto: int) -> bytes:
        ctx = ReadContext(ks, proto=proto, now=now)
        name = argv[0].lower()
        if name == b"get" and len(argv) == 2:
            handler = get
        elif name == b"mget" and len(argv) >= 2:
            handler = mget
        else:
            return b"<%r>" % argv
        try:
            return handler(ctx, argv)
        except ReplyError as e:
            return b"-%b\r\n" % e.msg

    def serve(chunks: list[bytes], proto: int, lane: bool) -> bytes:
        parser = RequestParser()
        out: list[bytes] = []
        try:
            for chunk in chunks:
                parser.feed(chunk)
                while True:
                    if lane:
                        replies, _, _ = parser.string_reads(
                            db, expires, now, b"$-1\r\n" if proto == 2 else b"_\r\n"
                        )
                        out.append(replies)
                    todo = parser.next_requests()
                    if not todo:
                        break
                    out.extend(run(argv, proto) for argv in todo)
        except ProtocolError as e:
            out.append(e.reply)
        return b"".join(out)

    for _ in range(300):
        blob = b"".join(command() for _ in range(rng.randint(1, 30)))
        cuts = sorted(rng.sample(range(1, len(blob)), min(len(blob) - 1, rng.randint(0, 8))))
        chunks = [blob[a:b] for a, b in zip([0, *cuts], [*cuts, len(blob)])]
        for proto in (2, 3):
            assert serve(chunks, proto, lane=True) == serve(chunks, proto, lane=False)
