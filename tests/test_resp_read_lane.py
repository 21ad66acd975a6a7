"""The client read lane's LRANGE and HGETALL (`string_reads` with a protocol, `_lanes.c`):
the same replies as parsing every command and running the Python handlers, which are the
reference (tested against real replicas in test_reads_*.py), whatever the pipeline, its cuts,
the protocol and the value each key holds."""

from __future__ import annotations

import random

import pytest

from replproxy.keyspace import Keyspace
from replproxy.keyspace.reads import ReadContext, ReplyError
from replproxy.keyspace.t_hash import hgetall
from replproxy.keyspace.t_list import lrange
from replproxy.keyspace.t_string import get, mget
from replproxy.keyspace.values import ListValue, ZSet
from replproxy.rdb.model import HashValue, ZSetValue
from replproxy.resp import ProtocolError, encode_command, request
from replproxy.resp.request import RequestParser

NOW = 1_000_000


def dataset() -> Keyspace:
    ks = Keyspace()
    db, expires = ks.dbs[0], ks.expires[0]
    db[b"plain"] = [b"p%d" % i for i in range(30)]  # a snapshot's list
    db[b"written"] = ListValue(b"w%d" % i for i in range(300))
    db[b"short"] = ListValue([b"only"])
    db[b"hash"] = {b"f%d" % i: b"v" * i for i in range(60)}
    db[b"empty-field"] = {b"": b""}
    db[b"ttl-fields"] = HashValue({b"a": b"1", b"b": b"2"}, expires={b"a": NOW - 1})
    db[b"zset"] = ZSet({b"m": 1.0})
    db[b"loaded-zset"] = ZSetValue({b"m": 2.0})
    db[b"set"] = {b"x"}
    db[b"string"] = b"value"
    db[b"gone"] = [b"expired"]
    db[b"later"] = {b"k": b"v"}
    expires.update({b"gone": NOW - 5, b"later": NOW + 5, b"written": NOW + 100})
    return ks


KEYS = [
    b"plain",
    b"written",
    b"short",
    b"hash",
    b"empty-field",
    b"ttl-fields",
    b"zset",
    b"loaded-zset",
    b"set",
    b"string",
    b"gone",
    b"later",
    b"nosuch",
]
INDEXES = [
    b"0",
    b"1",
    b"-1",
    b"-2",
    b"5",
    b"-100",
    b"99",
    b"299",
    b"-300",
    b"100000",
    b"-9223372036854775808",
    b"9223372036854775807",
    b"01",
    b"+1",
    b"x",
    b" 1",
    b"",
]


def command(rng: random.Random) -> bytes:
    r = rng.random()
    key = rng.choice(KEYS)
    if r < 0.4:
        return encode_command(
            [
                rng.choice([b"LRANGE", b"lrange", b"LRange"]),
                key,
                rng.choice(INDEXES),
                rng.choice(INDEXES),
            ]
        )
    if r < 0.7:
        return encode_command([rng.choice([b"HGETALL", b"hgetall"]), key])
    if r < 0.8:
        return encode_command([b"GET", key])
    return rng.choice(
        [
            encode_command([b"LRANGE", key, b"0"]),
            encode_command([b"HGETALL"]),
            encode_command([b"HGETALL", key, key]),
            encode_command([b"MGET", key, b"string"]),
            encode_command([b"PING"]),
            b"LRANGE plain 0 1\r\n",
            b"*2\r\n$7\r\nHGETALL\r\n$04\r\nhash\r\n",
            b"*4\r\n$6\r\nLRANGE\r\n$5\r\nplain\r\n$1\r\n0\r\n$1\r\n1XY",
        ]
    )


def run(ks: Keyspace, argv: list[bytes], proto: int) -> bytes:
    ctx = ReadContext(ks, proto=proto, now=NOW)
    name, n = argv[0].lower(), len(argv)
    handler = {(b"get", 2): get, (b"lrange", 4): lrange, (b"hgetall", 2): hgetall}.get((name, n))
    if handler is None and name == b"mget" and n >= 2:
        handler = mget
    if handler is None:
        return b"<%r>" % argv
    try:
        return handler(ctx, argv)
    except ReplyError as e:
        return b"-%b\r\n" % e.msg


def serve(ks: Keyspace, chunks: list[bytes], proto: int, lane: bool) -> bytes:
    parser = RequestParser()
    out: list[bytes] = []
    null = b"$-1\r\n" if proto == 2 else b"_\r\n"
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while True:
                if lane:
                    out.append(
                        parser.string_reads(ks.dbs[0], ks.expires[0], NOW, null, proto=proto)[0]
                    )
                todo = parser.next_requests()
                if not todo:
                    break
                out.extend(run(ks, argv, proto) for argv in todo)
    except ProtocolError as e:
        out.append(e.reply)
    return b"".join(out)


@pytest.mark.skipif(
    request._C_STRING_READS is None,
    reason="the C lane is not built (or REPLPROXY_NO_SPEEDUPS is set)",
)
def test_the_lrange_hgetall_lane_equals_the_handlers() -> None:
    rng = random.Random(7)
    for _ in range(400):
        blob = b"".join(command(rng) for _ in range(rng.randint(1, 25)))
        cuts = sorted(rng.sample(range(1, len(blob)), min(len(blob) - 1, rng.randint(0, 6))))
        chunks = [blob[a:b] for a, b in zip([0, *cuts], [*cuts, len(blob)], strict=True)]
        for proto in (2, 3):
            # Each side gets its own dataset: a Python lookup indexes a loaded zset in place.
            assert serve(dataset(), chunks, proto, lane=True) == serve(
                dataset(), chunks, proto, lane=False
            )


@pytest.mark.skipif(
    request._C_STRING_READS is None,
    reason="the C lane is not built (or REPLPROXY_NO_SPEEDUPS is set)",
)
def test_the_lane_takes_the_plain_forms_and_leaves_the_rest() -> None:
    ks = dataset()
    for argv, taken in [
        ([b"LRANGE", b"written", b"-3", b"-1"], True),
        ([b"LRANGE", b"plain", b"0", b"99"], True),
        ([b"HGETALL", b"hash"], True),
        ([b"HGETALL", b"string"], True),  # WRONGTYPE
        ([b"HGETALL", b"ttl-fields"], False),  # field TTLs: the Python handler
        ([b"HGETALL", b"zset"], False),  # a dict subclass: the Python lookup decides
        ([b"LRANGE", b"plain", b"01", b"2"], False),  # not an integer: the Python error
    ]:
        parser = RequestParser()
        parser.feed(encode_command(argv))
        replies, n, _ = parser.string_reads(ks.dbs[0], ks.expires[0], NOW, b"$-1\r\n", proto=2)
        assert n == (1 if taken else 0), argv
        if taken:
            assert replies == run(ks, argv, 2)
    # Without a protocol the lane is GET/MGET's alone.
    parser = RequestParser()
    parser.feed(encode_command([b"HGETALL", b"hash"]))
    assert parser.string_reads(ks.dbs[0], ks.expires[0], NOW, b"$-1\r\n")[1] == 0
