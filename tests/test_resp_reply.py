"""Reply encoding, byte for byte, and the text of doubles as real servers print them.

Doubles are checked against redis-server 7.0 (`%.17g`) and valkey-server 8.1 (Grisu2
`fpconv_dtoa`) over a few hundred edge-case and random values, in RESP2 (ZSCORE's bulk string)
and RESP3 (`,` double after HELLO 3); long doubles against INCRBYFLOAT / HINCRBYFLOAT.
"""

from __future__ import annotations

import math
import random
import socket
import struct
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replproxy.dialect import MasterDialect
from replproxy.resp import (
    NULL_ARRAY,
    BigNumber,
    DoubleStyle,
    ErrorReply,
    Push,
    RespSet,
    SimpleString,
    Verbatim,
    array,
    array_len,
    big_number,
    boolean,
    bulk,
    bulk_array,
    bulk_map,
    bulk_set,
    double,
    encode,
    encode_command,
    error,
    format_double,
    format_long_double,
    integer,
    map_len,
    null,
    null_array,
    push_len,
    reply,
    round_long_double,
    set_len,
    simple_string,
    verbatim,
)
from tests.harness.servers import RedisServer, ServerKind, available_kinds, start_server
from tests.harness.soak import rounds

# --- shapes ----------------------------------------------------------------------------------


def test_scalars() -> None:
    assert simple_string(b"OK") == b"+OK\r\n"
    assert simple_string(b"a\r\nb") == b"+a  b\r\n"
    assert error(b"ERR no") == b"-ERR no\r\n"
    assert error(b"-WRONGTYPE x") == b"-WRONGTYPE x\r\n"
    assert error(b"ERR a\nb") == b"-ERR a b\r\n"
    assert integer(0) == b":0\r\n" and integer(-(2**63)) == b":-9223372036854775808\r\n"
    assert bulk(b"") == b"$0\r\n\r\n" and bulk(b"a\r\n") == b"$3\r\na\r\n\r\n"
    assert null(2) == b"$-1\r\n" and null(3) == b"_\r\n"
    assert null_array(2) == b"*-1\r\n" and null_array(3) == b"_\r\n"
    assert boolean(True, 2) == b":1\r\n" and boolean(False, 2) == b":0\r\n"
    assert boolean(True, 3) == b"#t\r\n" and boolean(False, 3) == b"#f\r\n"
    assert big_number(10**30, 2) == b"$31\r\n1" + b"0" * 30 + b"\r\n"
    assert big_number(b"-12", 3) == b"(-12\r\n"
    assert verbatim(b"hello", 2) == b"$5\r\nhello\r\n"
    assert verbatim(b"hello", 3) == b"=9\r\ntxt:hello\r\n"
    assert verbatim(b"# x", 3, b"markdown") == b"=7\r\nmar:# x\r\n"
    assert verbatim(b"", 3, b"md") == b"=4\r\nmd :\r\n"
    assert double(1.5, 2) == b"$3\r\n1.5\r\n" and double(1.5, 3) == b",1.5\r\n"
    assert double(0.1, 2, "g17") == b"$19\r\n0.10000000000000001\r\n"
    assert double(-math.inf, 3, "g17") == b",-inf\r\n"


def test_aggregates() -> None:
    assert array_len(3) == b"*3\r\n" and array([]) == b"*0\r\n"
    assert array([integer(1), bulk(b"a")]) == b"*2\r\n:1\r\n$1\r\na\r\n"
    assert map_len(2, 2) == b"*4\r\n" and map_len(2, 3) == b"%2\r\n"
    assert set_len(2, 2) == b"*2\r\n" and set_len(2, 3) == b"~2\r\n"
    assert push_len(3, 2) == b"*3\r\n" and push_len(3, 3) == b">3\r\n"
    assert bulk_array([]) == b"*0\r\n"
    assert bulk_array([b"a", b""]) == b"*2\r\n$1\r\na\r\n$0\r\n\r\n"
    assert bulk_array([b"a", None], 2) == b"*2\r\n$1\r\na\r\n$-1\r\n"
    assert bulk_array([None], 3) == b"*1\r\n_\r\n"
    assert bulk_map([b"k", b"v"], 2) == b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n"
    assert bulk_map([b"k", b"v"], 3) == b"%1\r\n$1\r\nk\r\n$1\r\nv\r\n"
    assert bulk_map([b"k", None], 3) == b"%1\r\n$1\r\nk\r\n_\r\n"
    assert (
        bulk_set([b"m"], 2) == b"*1\r\n$1\r\nm\r\n" and bulk_set([b"m"], 3) == b"~1\r\n$1\r\nm\r\n"
    )


def test_generic_encode() -> None:
    value = {
        b"a": [1, 2.5, None, True, SimpleString(b"OK"), ErrorReply(b"ERR x")],
        "b": (BigNumber(5), Verbatim(b"hi"), RespSet([b"x"]), Push([b"p"]), NULL_ARRAY, 2**70),
    }
    assert encode(value, 3) == (
        b"%2\r\n$1\r\na\r\n*6\r\n:1\r\n,2.5\r\n_\r\n#t\r\n+OK\r\n-ERR x\r\n"
        b"$1\r\nb\r\n*6\r\n(5\r\n=6\r\ntxt:hi\r\n~1\r\n$1\r\nx\r\n>1\r\n$1\r\np\r\n_\r\n"
        b"(1180591620717411303424\r\n"
    )
    assert encode(value, 2) == (
        b"*4\r\n$1\r\na\r\n*6\r\n:1\r\n$3\r\n2.5\r\n$-1\r\n:1\r\n+OK\r\n-ERR x\r\n"
        b"$1\r\nb\r\n*6\r\n$1\r\n5\r\n$2\r\nhi\r\n*1\r\n$1\r\nx\r\n*1\r\n$1\r\np\r\n*-1\r\n"
        b"$22\r\n1180591620717411303424\r\n"
    )
    assert encode(frozenset([b"s"]), 3) == b"~1\r\n$1\r\ns\r\n"
    assert encode(0.1, 3, "g17") == b",0.10000000000000001\r\n"
    with pytest.raises(TypeError):
        encode(object())


resp_values = st.recursive(
    st.one_of(
        st.none(),
        st.integers(-(2**63), 2**63 - 1),
        st.binary(max_size=30),
        st.floats(allow_nan=False, allow_infinity=True),
    ),
    lambda children: st.lists(children, max_size=5),
    max_leaves=20,
)


# REPLPROXY_TEST_SOAK=N: N times as many examples (tests/harness/soak.py).
@settings(max_examples=rounds(100), deadline=None)
@given(resp_values)
def test_resp2_encoding_is_read_back_by_hiredis(value: object) -> None:
    def expected(v: object) -> object:
        if isinstance(v, float):
            return format_double(v)  # a bulk string in RESP2
        if isinstance(v, list):
            return [expected(x) for x in v]
        return v

    reader = hiredis.Reader()
    reader.feed(encode(value, 2))
    assert reader.gets() == expected(value)
    assert reader.gets() is False


# --- doubles: fixed points -------------------------------------------------------------------

# (value, %.17g text of redis <= 7.0, fpconv text of redis 7.2+ / valkey), read off real servers
KNOWN_DOUBLES = [
    (1.0, b"1", b"1"),
    (-0.0, b"-0", b"-0"),
    (0.1, b"0.10000000000000001", b"0.1"),
    (1.5, b"1.5", b"1.5"),
    (1e-7, b"9.9999999999999995e-08", b"1e-7"),
    (1e-5, b"1.0000000000000001e-05", b"0.00001"),
    (0.0001, b"0.0001", b"0.0001"),
    (1e16, b"10000000000000000", b"10000000000000000"),
    (1e20, b"1e+20", b"1e+20"),
    (1e21, b"1e+21", b"1e+21"),
    (1e300, b"1.0000000000000001e+300", b"1e+300"),
    (2.0**62, b"4.6116860184273879e+18", b"4611686018427387904"),
    (2.0**62 + 2048, b"4.61168601842739e+18", b"4611686018427390000"),
    (1.2345678901234568e20, b"1.2345678901234568e+20", b"123456789012345680000"),
    (1000000000000000.5, b"1000000000000000.5", b"1000000000000000.5"),
    (5e-324, b"4.9406564584124654e-324", b"5e-324"),
    (1.7976931348623157e308, b"1.7976931348623157e+308", b"1.7976931348623157e+308"),
    # Grisu2 is not the shortest round trip: these differ from Python's repr
    (-265114.82647, b"-265114.82647000003", b"-2.6511482647000003e+5"),
    (-637637799964508.2, b"-637637799964508.25", b"-637637799964508.3"),
    (-1.651484200947297e116, b"-1.6514842009472968e+116", b"-1.6514842009472968e+116"),
    (4.875681338323965e-262, b"4.8756813383239647e-262", b"4.8756813383239647e-262"),
    (math.inf, b"inf", b"inf"),
    (-math.inf, b"-inf", b"-inf"),
]


@pytest.mark.parametrize("value,g17,shortest", KNOWN_DOUBLES)
def test_known_double_texts(value: float, g17: bytes, shortest: bytes) -> None:
    assert format_double(value, "g17") == g17
    assert format_double(value, "shortest") == shortest


def test_nan_texts() -> None:
    assert format_double(math.nan, "shortest") == b"nan"
    assert format_double(-math.nan, "shortest") == b"nan"  # d2string normalizes
    assert format_double(math.nan, "g17") == b"nan"
    assert format_double(-math.nan, "g17") == b"-nan"  # glibc prints the sign bit


def test_double_style_by_server() -> None:
    assert MasterDialect("redis", (7, 0, 15)).double_style == "g17"
    assert MasterDialect("redis", (6, 2, 0)).double_style == "g17"
    assert MasterDialect("redis", (7, 2, 0)).double_style == "shortest"
    assert MasterDialect("valkey", (7, 2, 4)).double_style == "shortest"


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_double_text_reads_back_exactly(x: float) -> None:
    for style in ("g17", "shortest"):
        text = format_double(x, style)
        assert float(text) == x and math.copysign(1, float(text)) == math.copysign(1, x)
        assert b"e" not in text or text.split(b"e")[1][:1] in b"+-"


# --- long doubles: fixed points --------------------------------------------------------------


def incrbyfloat(a: str, b: str) -> bytes:
    value = round_long_double(round_long_double(Fraction(a)) + round_long_double(Fraction(b)))
    return format_long_double(value)


def test_long_double_texts() -> None:
    assert incrbyfloat("10.5", "0.1") == b"10.6"
    assert incrbyfloat("0.1", "0.2") == b"0.3"
    assert incrbyfloat("5.0e3", "2.0e2") == b"5200"
    assert incrbyfloat("1", "-1") == b"0"
    assert incrbyfloat("-1e-20", "0") == b"0"  # "-0.000..." trimmed to "-0", printed "0"
    assert incrbyfloat("1e18", "1") == b"1000000000000000001"  # 64-bit significand
    assert incrbyfloat("1e20", "1") == b"100000000000000000000"  # ulp 8 up there
    assert format_long_double(1.5) == b"1.5"
    assert format_long_double(-2) == b"-2"
    assert format_long_double(Decimal("0.000000000000000005")) == b"0"  # ties to even
    assert format_long_double(Decimal("0.000000000000000015")) == b"0.00000000000000002"
    assert format_long_double(math.inf) == b"inf" and format_long_double(-math.inf) == b"-inf"
    assert format_long_double(math.nan) == b"nan"
    assert round_long_double(Fraction(1, 3)) == Fraction(12297829382473034411, 2**65)
    assert round_long_double(Fraction(2) ** 20000) == math.inf


# --- against real servers --------------------------------------------------------------------

KINDS = available_kinds()


@pytest.fixture(scope="module", params=KINDS, ids=[k.name for k in KINDS])
def server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    kind: ServerKind = request.param
    # a skiplist zset keeps -0.0 (a listpack stores an integral score as an integer: 0);
    # Redis 5/6 call the compact encoding a ziplist
    compact = "listpack" if kind.is_valkey or kind.version >= (7, 0) else "ziplist"
    s = start_server(kind, extra={f"zset-max-{compact}-entries": "0"})
    try:
        yield s
    finally:
        s.stop()


def style_of(server: RedisServer) -> str:
    return server.kind.dialect.double_style


class Raw:
    """A raw connection: pipelined commands, replies read back as exact bytes."""

    def __init__(self, server: RedisServer) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=20)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def replies(self, commands: list[list[bytes]]) -> list[bytes]:
        """The raw bytes of each reply (the replies must not be nested)."""
        self.sock.sendall(b"".join(encode_command(c) for c in commands))
        out: list[bytes] = []
        while len(out) < len(commands):
            while True:
                line_end = self.buf.find(b"\r\n")
                if line_end < 0:
                    break
                if self.buf[:1] == b"$" and self.buf[1:2] != b"-":
                    end = line_end + 2 + int(self.buf[1:line_end]) + 2
                    if len(self.buf) < end:
                        break
                else:
                    end = line_end + 2
                out.append(self.buf[:end])
                self.buf = self.buf[end:]
            if len(out) < len(commands):
                self.buf += self.sock.recv(1 << 16)
        return out


def edge_doubles() -> list[float]:
    rng = random.Random(2024)
    xs = [0.0, -0.0, math.inf, -math.inf, 5e-324, -5e-324, 2.2250738585072014e-308]
    xs += [1.7976931348623157e308, 0.1, 0.2, 0.3, 1 / 3, 2 / 3, 0.1 + 0.2, math.pi, math.e]
    xs += [10.0**k for k in range(-30, 31)] + [1.5 * 10.0**k for k in (-300, -100, 100, 300)]
    xs += [2.0**k for k in (52, 53, 54, 61, 62, 63, 64, -1, -10, -1074, 1023)]
    xs += [2.0**62 + 1024, 2.0**62 + 2048, -(2.0**62), -(2.0**62) - 1024, 2.0**53 + 2]
    xs += [-265114.82647, -637637799964508.2, 123456789012345680000.0, 1e15 + 0.5]
    for _ in range(150):  # random bit patterns
        x = struct.unpack("<d", rng.randbytes(8))[0]
        if math.isfinite(x):
            xs.append(x)
    for _ in range(150):  # "human" values: few decimals, the usual scores
        xs.append(round(rng.uniform(-1e6, 1e6), rng.randint(0, 6)))
        xs.append(rng.randint(-(10**6), 10**6) / 10 ** rng.randint(1, 8))
    return xs


def test_double_text_equals_the_servers_zscore_in_resp2_and_resp3(server: RedisServer) -> None:
    xs = edge_doubles()
    style = style_of(server)
    raw = Raw(server)
    try:
        members = [b"m%d" % i for i in range(len(xs))]
        zadd = [b"ZADD", b"doubles"]
        for x, m in zip(xs, members):
            zadd += [repr(x).encode(), m]
        assert raw.replies([zadd]) == [b":%d\r\n" % len(xs)]
        resp2 = raw.replies([[b"ZSCORE", b"doubles", m] for m in members])
        if not server.kind.is_valkey and server.kind.version < (6, 0):
            # Redis 5 has no RESP3 (no HELLO): its RESP2 texts are the whole check
            for x, r2 in zip(xs, resp2):
                assert (x, r2) == (x, double(x, 2, style))  # type: ignore[arg-type]
            return
        raw.sock.sendall(encode_command([b"HELLO", b"3"]))
        reader = hiredis.Reader()  # the HELLO map, read with hiredis (nothing follows it)
        reader.feed(raw.buf)
        raw.buf = b""
        while (hello := reader.gets()) is False:
            reader.feed(raw.sock.recv(1 << 16))
        assert hello[b"proto"] == 3
        resp3 = raw.replies([[b"ZSCORE", b"doubles", m] for m in members])
    finally:
        raw.close()
    for x, r2, r3 in zip(xs, resp2, resp3):
        assert (x, r2) == (x, double(x, 2, style))  # type: ignore[arg-type]
        assert (x, r3) == (x, double(x, 3, style))  # type: ignore[arg-type]


def decimal_strings(rng: random.Random, n: int) -> list[str]:
    out = ["0", "1", "-1", "0.1", "0.2", "10.5", "3.0e3", "1e-20", "1e20", "123456789.123456789"]
    while len(out) < n:
        kind = rng.randrange(4)
        if kind == 0:
            out.append(str(rng.randint(-(10**12), 10**12)))
        elif kind == 1:
            digits = rng.randint(1, 20)
            out.append(f"{rng.randint(-(10**digits), 10**digits) / 10 ** rng.randint(0, 20)!r}")
        elif kind == 2:
            out.append(f"{rng.randint(1, 999)}e{rng.randint(-25, 25)}")
        else:
            out.append(f"-{rng.randint(0, 99)}.{rng.randint(0, 10**17):017d}")
    return out


def test_long_double_text_equals_the_servers_incrbyfloat(server: RedisServer) -> None:
    rng = random.Random(99)
    pairs = list(zip(decimal_strings(rng, 150), decimal_strings(rng, 150)))
    raw = Raw(server)
    try:
        commands: list[list[bytes]] = []
        for i, (a, b) in enumerate(pairs):
            key = b"f%d" % i
            commands.append([b"SET", key, a.encode()])
            commands.append([b"INCRBYFLOAT", key, b.encode()])
            commands.append([b"HSET", b"h", key, a.encode()])
            commands.append([b"HINCRBYFLOAT", b"h", key, b.encode()])
        replies = raw.replies(commands)
    finally:
        raw.close()
    for i, (a, b) in enumerate(pairs):
        expected = bulk(incrbyfloat(a, b))
        assert (a, b, replies[4 * i + 1]) == (a, b, expected)
        assert (a, b, replies[4 * i + 3]) == (a, b, expected)


def test_the_c_bulk_encoder_equals_the_python_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """replproxy/resp/_replies.c (when built) must give exactly the Python encoder's bytes."""
    if reply._C_BULKS is None:
        pytest.skip("the C encoder is not built (or REPLPROXY_NO_SPEEDUPS is set)")
    rng = random.Random(7)
    cases: list[list[bytes | None]] = [[], [b""], [None], [b"\r\n", None, b"\x00" * 300]]
    for _ in range(300):
        cases.append(
            [
                None
                if rng.random() < 0.1
                else rng.randbytes(rng.choice([0, 1, 9, 10, 99, 100, 70000]))
                for _ in range(rng.randint(0, 40))
            ]
        )
    c_out = [
        (
            reply.bulk_array(x, p),
            reply.bulk_map(x, p),
            reply.bulk_set([y for y in x if y is not None], p),
        )
        for x in cases
        for p in (2, 3)
    ]
    monkeypatch.setattr(reply, "_C_BULKS", None)
    py_out = [
        (
            reply.bulk_array(x, p),
            reply.bulk_map(x, p),
            reply.bulk_set([y for y in x if y is not None], p),
        )
        for x in cases
        for p in (2, 3)
    ]
    assert c_out == py_out


def test_the_c_scored_encoder_equals_the_python_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """ZRANGE ... WITHSCORES replies from the C encoder: the Python bytes, in both double
    styles and both protocols, for integral, fractional, huge, tiny, signed-zero and infinite
    scores."""
    from replproxy.keyspace import t_zset

    if t_zset._C_SCORED is None:
        pytest.skip("the C encoder is not built (or REPLPROXY_NO_SPEEDUPS is set)")
    rng = random.Random(11)
    specials = [
        0.0,
        -0.0,
        math.inf,
        -math.inf,
        1.0,
        -1.0,
        2.0**62,
        -(2.0**62),
        2.0**62 + 2048,
        2.0**63,
        1e17,
        1e17 - 16,
        -(1e17 - 16),
        1e16 + 2,
        0.1,
        1 / 3,
        5e-324,
        1e308,
        -7.5e-10,
        123456789.125,
    ]
    scores = specials + [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(3000)]
    scores += [float(rng.randint(-(2**64), 2**64)) for _ in range(1000)]
    scores += [rng.randint(-(10**6), 10**6) / rng.choice([1, 2, 3, 10, 1024]) for _ in range(1000)]
    items = [(s, b"m%d" % i) for i, s in enumerate(scores) if s == s]  # a zset holds no NaN
    cases = [items[:1], items[:100], items]
    styles: list[DoubleStyle] = ["g17", "shortest"]
    c_out = [t_zset.scored_reply(x, p, style) for x in cases for p in (2, 3) for style in styles]
    monkeypatch.setattr(t_zset, "_C_SCORED", None)
    py_out = [t_zset.scored_reply(x, p, style) for x in cases for p in (2, 3) for style in styles]
    assert c_out == py_out
