"""Vector sets without servers: the RDB codec round trip, the graph's invariants, the FILTER
language's parser and evaluator, and the module's float arithmetic.

What a real Redis 8.2 answers is proven in tests/test_vset_differential.py; these pin the
pieces one by one, with expectations taken from the C semantics (`expr.c`, `hnsw.c`).
"""

from __future__ import annotations

import math
import pickle
import random
import struct

import numpy as np
import pytest

from replproxy.keyspace import Keyspace
from replproxy.keyspace.digest import _hex, object_digest
from replproxy.keyspace.t_vset import VectorSet, vset_digest
from replproxy.keyspace.vset_codec import decode, encode
from replproxy.keyspace.vset_filter import (
    ExprSyntaxError,
    compile_expr,
    json_extract_field,
    strtod_whole,
    syntax_error_text,
)
from replproxy.keyspace.vset_hnsw import (
    HNSW,
    QUANT_BIN,
    QUANT_NONE,
    QUANT_Q8,
    bin_distances,
    float_distances,
    normalize,
    projection_matrix,
    quantize_bin,
    quantize_q8,
    roundf,
    seed,
)
from replproxy.rdb.dump import dump_payload, parse_dump_payload

F = np.float32


def _vadd(ks: Keyspace, rnd: random.Random, key: bytes, ele: bytes, dim: int, *opts: bytes) -> None:
    vals = [b"%.4f" % rnd.uniform(-1, 1) for _ in range(dim)]
    ks.apply(0, [b"VADD", key, b"VALUES", b"%d" % dim, *vals, ele, *opts])


def _built(quant: bytes, n: int = 40, dim: int = 10, reduce: int = 0) -> Keyspace:
    seed(7)
    rnd = random.Random(3)
    ks = Keyspace()
    for i in range(n):
        opts = [quant]
        if i % 3 == 0:
            opts += [b"SETATTR", b'{"i": %d}' % i]
        if reduce:
            vals = [b"%.4f" % rnd.uniform(-1, 1) for _ in range(dim)]
            ks.apply(
                0,
                [
                    b"VADD",
                    b"k",
                    b"REDUCE",
                    b"%d" % reduce,
                    b"VALUES",
                    b"%d" % dim,
                    *vals,
                    b"e%d" % i,
                    *opts,
                ],
            )
        else:
            _vadd(ks, rnd, b"k", b"e%d" % i, dim, *opts)
    for i in range(0, n, 4):
        ks.apply(0, [b"VREM", b"k", b"e%d" % i])
    ks.apply(0, [b"VSETATTR", b"k", b"e1", b'{"x": 1}'])
    ks.apply(0, [b"VSETATTR", b"k", b"e3", b""])
    assert not ks.apply_errors and not ks.unsupported_commands
    return ks


def _shape(data):
    h = data.hnsw
    h.ensure_graph()
    return {
        n.item: (
            n.id,
            n.level,
            [sorted(x.id for x in links) for links in n.links],
            h.vectors.raw(n.slot),
            n.l2,
            n.qrange,
            n.attrib,
        )
        for n in h.nodes()
    }, (h.dim, h.quant, h.M, h.node_count, h.last_id, data.numattribs)


def _check_graph(h: HNSW) -> None:
    """The invariants `hnsw_deserialize_index` checks, and the link bounds."""
    h.ensure_graph()
    nodes = list(h.nodes())
    assert len(nodes) == h.node_count
    ids = {n.id for n in nodes}
    for n in nodes:
        for level, links in enumerate(n.links):
            assert n not in links
            assert len({x.id for x in links}) == len(links)
            assert len(links) <= n.max_links[level]
            for x in links:
                assert x.id in ids and x.level >= level
                assert any(y is n for y in x.links[level]), "links are bidirectional"
    if nodes:
        assert h.enter_point is not None and h.max_level == h.enter_point.level
        assert h.max_level == max(n.level for n in nodes)


@pytest.mark.parametrize("quant", [b"Q8", b"NOQUANT", b"BIN"])
def test_vset_codec_round_trip_keeps_graph_vectors_and_digest(quant: bytes) -> None:
    ks = _built(quant)
    v = ks.get(0, b"k")
    assert isinstance(v, VectorSet)
    _check_graph(v.data.hnsw)
    digest = _hex(object_digest(v, False, "shortest"))
    raw = v.raw
    again = decode(raw)
    _check_graph(again.hnsw)
    assert _shape(again) == _shape(v.data)
    # A load puts the nodes at the head one by one: the list comes back reversed.
    assert [n.item for n in again.hnsw.nodes()] == [n.item for n in v.data.hnsw.nodes()][::-1]
    assert vset_digest(again) == vset_digest(v.data)
    copy = VectorSet(raw=encode(again))
    assert _hex(object_digest(copy, False, "shortest")) == digest
    clone = pickle.loads(pickle.dumps(v))
    assert clone.raw == v.raw and clone.uid != v.uid


def test_vset_dump_payload_round_trip_and_reduce() -> None:
    ks = _built(b"Q8", n=20, dim=16, reduce=5)
    v = ks.get(0, b"k")
    assert isinstance(v, VectorSet)
    d = v.data
    assert d.proj is not None and d.proj.shape == (5, 16) and d.proj_input == 16
    _, back, _ = parse_dump_payload(dump_payload(v))
    assert isinstance(back, VectorSet) and back.uid > v.uid
    assert back.data.proj is not None and np.array_equal(back.data.proj, d.proj)
    assert _shape(back.data) == _shape(d)


def test_vset_raw_is_kept_until_modified() -> None:
    ks = _built(b"Q8", n=8)
    raw = ks.get(0, b"k").raw  # type: ignore[union-attr]
    v = VectorSet(raw=raw)
    assert v._data is None and v.raw is raw
    v.data  # noqa: B018 - decoding alone changes nothing
    assert v.raw is raw
    v.modified()
    assert v.raw is not raw


def test_vset_empty_attribute_on_a_new_element_is_digested_then_dropped_by_a_load() -> None:
    ks = Keyspace()
    ks.apply(0, [b"VADD", b"k", b"VALUES", b"2", b"1", b"0", b"a", b"SETATTR", b""])
    ks.apply(0, [b"VADD", b"j", b"VALUES", b"2", b"1", b"0", b"a"])
    v, w = ks.get(0, b"k"), ks.get(0, b"j")
    assert isinstance(v, VectorSet) and isinstance(w, VectorSet)
    assert v.data.numattribs == 1 and v.data.by_item[b"a"].attrib == b""
    assert vset_digest(v.data) != vset_digest(w.data)
    loaded = decode(v.raw)
    assert loaded.numattribs == 0 and loaded.by_item[b"a"].attrib is None
    assert vset_digest(loaded) == vset_digest(w.data)


def test_vset_graph_stays_valid_through_many_inserts_and_deletes() -> None:
    seed(11)
    rnd = random.Random(5)
    ks = Keyspace()
    live: list[bytes] = []
    for i in range(400):
        if live and rnd.random() < 0.3:
            ele = live.pop(rnd.randrange(len(live)))
            ks.apply(0, [b"VREM", b"k", ele])
        else:
            ele = b"e%d" % i
            _vadd(ks, rnd, b"k", ele, 6, b"M", b"4")
            live.append(ele)
    v = ks.get(0, b"k")
    assert isinstance(v, VectorSet)
    assert set(v.data.by_item) == set(live)
    _check_graph(v.data.hnsw)
    _check_graph(decode(v.raw).hnsw)


def test_vset_removing_the_last_element_deletes_the_key() -> None:
    ks = Keyspace()
    ks.apply(0, [b"VADD", b"k", b"VALUES", b"2", b"1", b"0", b"a"])
    ks.apply(0, [b"VREM", b"k", b"a"])
    assert ks.get(0, b"k") is None and not ks.apply_errors


def test_vset_corrupt_serialization_is_refused() -> None:
    ks = _built(b"Q8", n=6)
    raw = ks.get(0, b"k").raw  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        decode(raw[:-5] + b"\x00")
    bad_dim = b"\x02\x00" + raw[2:]  # dim 0
    with pytest.raises(ValueError):
        decode(bad_dim)


# ---- float arithmetic ----


def test_vset_roundf_rounds_halves_away_from_zero() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997, -1.4], dtype=F)
    assert roundf(x).tolist() == [1.0, 2.0, 3.0, -1.0, -3.0, 0.0, -1.0]


def test_vset_q8_quantization() -> None:
    q, r = quantize_q8(np.array([0.5, -1.0, 0.25, 0.0], dtype=F))
    assert r == 1.0 and list(struct.unpack("4b", q)) == [64, -127, 32, 0]
    assert quantize_q8(np.zeros(3, dtype=F)) == (bytes(3), 0.0)


def test_vset_bin_quantization_and_distance() -> None:
    a = np.array([1, -1, 0.5, 0] * 20, dtype=F)
    b = np.array([1, 1, -0.5, 0] * 20, dtype=F)
    qa, qb = quantize_bin(a), quantize_bin(b)
    assert len(qa) == 16  # two 64-bit words for 80 dimensions, unused bits 0
    ra = np.frombuffer(qa, dtype="<u8").reshape(1, -1)
    rb = np.frombuffer(qb, dtype="<u8")
    assert bin_distances(ra, rb, 80).tolist() == [F(40 * 2) / F(80)]


def _scalar_float_distance(x: np.ndarray, y: np.ndarray) -> np.float32:
    """`vectors_distance_float` as written in C, one float operation at a time."""
    dot0, dot1 = F(0), F(0)
    i = 0
    n = len(x)
    while i + 7 < n:
        dot0 = F(
            dot0
            + F(
                F(F(F(x[i] * y[i]) + F(x[i + 1] * y[i + 1])) + F(x[i + 2] * y[i + 2]))
                + F(x[i + 3] * y[i + 3])
            )
        )
        dot1 = F(
            dot1
            + F(
                F(F(F(x[i + 4] * y[i + 4]) + F(x[i + 5] * y[i + 5])) + F(x[i + 6] * y[i + 6]))
                + F(x[i + 7] * y[i + 7])
            )
        )
        i += 8
    while i < n:
        dot0 = F(dot0 + F(x[i] * y[i]))
        i += 1
    return F(F(1) - F(dot0 + dot1))


@pytest.mark.parametrize("dim", [1, 7, 8, 13, 64, 301])
def test_vset_float_distance_follows_the_module_operation_order(dim: int) -> None:
    rng = np.random.default_rng(dim)
    rows = rng.uniform(-1, 1, (5, dim)).astype(F)
    q = rng.uniform(-1, 1, dim).astype(F)
    got = float_distances(rows, q)
    assert [float(x) for x in got] == [float(_scalar_float_distance(r, q)) for r in rows]


def test_vset_normalize_sums_in_groups_of_four() -> None:
    x = np.array([3.0, 4.0, 1e-4, 7.0, 0.1], dtype=F)
    l2 = F(0)
    l2 = F(l2 + F(F(F(F(x[0] * x[0]) + F(x[1] * x[1])) + F(x[2] * x[2])) + F(x[3] * x[3])))
    l2 = F(l2 + F(x[4] * x[4]))
    out, norm = normalize(x)
    assert norm == float(np.sqrt(l2))
    assert out.tolist() == (x / np.sqrt(l2)).astype(F).tolist()
    zero, none = normalize(np.zeros(4, dtype=F))
    assert none is None and not zero.any()


def test_vset_projection_matrix_is_the_scaled_hadamard_pattern() -> None:
    m = projection_matrix(6, 3)
    scale = F(1.0 / math.sqrt(6))
    for i in range(3):
        for j in range(6):
            assert m[i, j] == (scale if bin(i & j).count("1") % 2 == 0 else -scale)


def test_vset_q8_distance_clamps_and_handles_zero_vectors() -> None:
    h = HNSW(3, QUANT_Q8, 16)
    assert h.quant == QUANT_Q8 and QUANT_NONE != QUANT_BIN
    a, ra = quantize_q8(np.array([1, 0, 0], dtype=F))
    z, rz = quantize_q8(np.zeros(3, dtype=F))
    sa, sz = h.vectors.add(a, ra), h.vectors.add(z, rz)
    qa = np.frombuffer(a, dtype=np.int8)
    assert h.vectors.distances(qa, ra, [sa, sz]).tolist() == [0.0, 1.0]


# ---- FILTER ----


def _run(expr: str, json: bytes | None = b"{}") -> bool:
    return compile_expr(expr.encode()).run(json)


@pytest.mark.parametrize(
    ("expr", "json", "want"),
    [
        ("2 ** 3 ** 2 == 512", b"{}", True),  # right associative
        ("1 + 2 * 3 == 7", b"{}", True),
        ("10 % 3", b"{}", True),
        ("10 % 0", b"{}", True),  # NaN is true (non-zero)
        ("1 / 0 > 1e300", b"{}", True),
        ("0 / 0 == 0 / 0", b"{}", False),
        ("(-8) ** 0.5", b"{}", True),  # NaN
        ("'oo' in 'foo'", b"{}", True),
        ("'foo' in 'oo'", b"{}", False),
        (".a in [1, 'x', 3]", b'{"a": "x"}', True),
        ("[1] == 0", b"{}", True),  # a tuple compares as the number 0
        ("null == null", b"{}", True),
        (".z == null", b'{"z": null}', True),
        ("null", b"{}", False),
        ("''", b"{}", False),
        ("'0'", b"{}", True),  # a non-empty string is true
        ("'10' > '9'", b"{}", True),  # compared as numbers
        ("' 12' == 12", b"{}", True),  # strtod skips leading spaces
        ("'0x10' == 16", b"{}", True),
        ("'1e3x' == 0", b"{}", True),  # not read whole: 0
        (".s == 'a\\\"b'", b'{"s": "a\\"b"}', False),  # expression strings keep the backslash
        (".e == 'u0041'", b'{"e": "\\u0041"}', True),  # only \n \r \t \\ \" are decoded
        (".a", b'{"a": truex}', False),  # a literal must end at a delimiter
        (".a == 4", b'{"a": 3, "a": 4}', False),  # the first key wins
        (".o", b'{"o": {"x": 1}}', False),  # objects are not convertible
        (".a == 3", b'[{"a": 3}]', False),  # top-level object only
        (".missing", b"{}", False),
        ("!.missing", b"{}", False),  # a missing selector makes the whole expression false
        ("1 --1 == 2", b"{}", True),  # after an operator, -1 is a number
        (".a == 1", None, False),  # no attributes: never a match
    ],
)
def test_vset_filter_evaluation(expr: str, json: bytes | None, want: bool) -> None:
    assert _run(expr, json) is want


@pytest.mark.parametrize(
    ("expr", "pos"),
    [
        ("1e-5", 2),  # the number is "1e": strtod does not read it whole
        ("andx", 4),  # `and`, then the run `x` is no operator (read past, as in C)
        ("'open", 5),  # past the end: the message shows the whole expression
        ("@", 0),
        ("1 2", 0),  # errors after tokenizing are reported at 0
        ("(1", 0),
        ("1)", 0),
        (".a ==", 0),
        ("", 0),
        ("[1 2]", 3),
    ],
)
def test_vset_filter_syntax_errors(expr: str, pos: int) -> None:
    with pytest.raises(ExprSyntaxError) as e:
        compile_expr(expr.encode())
    assert e.value.pos == pos


def test_vset_filter_error_text_and_nul() -> None:
    assert syntax_error_text(b"1e-5", 2) == b"ERR syntax error in FILTER expression near: -5"
    assert syntax_error_text(b"x", 9) == b"ERR syntax error in FILTER expression near: x"
    # The expression is a C string: it ends at NUL.
    assert compile_expr(b".a == 1\x00 garbage").run(b'{"a": 1}')
    # A final `.` is an empty selector (never matches), not an error.
    assert not compile_expr(b".").run(b'{"": 1}')


def test_vset_json_values() -> None:
    t = json_extract_field(b'{"a": [1, "x", [2]], "s": "a\\tb"}', b"a")
    assert t is not None and t.items is not None and len(t.items) == 3
    s = json_extract_field(b'{"a": [1, "x", [2]], "s": "a\\tb"}', b"s")
    assert s is not None and s.str == b"a\tb"
    assert json_extract_field(b'{"a": 1.5.5}', b"a") is None
    assert json_extract_field(b'{"a": +3}', b"a").num == 3.0  # type: ignore[union-attr]


def test_vset_strtod_whole() -> None:
    assert strtod_whole(b"  1.5") == 1.5
    assert strtod_whole(b"1e400") == math.inf
    assert strtod_whole(b"-inf") == -math.inf
    assert strtod_whole(b"0x1p4") == 16.0
    assert math.isnan(strtod_whole(b"nan") or 0.0)
    assert strtod_whole(b"12\x00abc") == 12.0
    for bad in (b"", b"1e", b"1.2.3", b"x", b"1 ", b"infin"):
        assert strtod_whole(bad) is None, bad


def test_vset_copy_and_rename_move_the_value() -> None:
    ks = _built(b"NOQUANT", n=10)
    ks.apply(0, [b"COPY", b"k", b"c"])
    ks.apply(0, [b"VREM", b"c", b"e1"])
    a, c = ks.get(0, b"k"), ks.get(0, b"c")
    assert isinstance(a, VectorSet) and isinstance(c, VectorSet)
    assert b"e1" in a.data.by_item and b"e1" not in c.data.by_item  # a deep copy
    ks.apply(0, [b"RENAME", b"k", b"r"])
    assert ks.get(0, b"r") is a and ks.get(0, b"k") is None
    assert not ks.apply_errors


def test_vset_nearest_follows_the_module_queue_tie_rules() -> None:
    """Equal distances: while the queue has room a push goes nearer than its equals; once
    full, an equal to the worst is dropped. Pushed from the head of the list (newest first)."""
    from replproxy.keyspace.t_vset import nearest

    ks = Keyspace()
    for name in (b"a", b"b", b"c", b"d", b"e"):
        ks.apply(0, [b"VADD", b"k", b"VALUES", b"2", b"1", b"0", name, b"NOQUANT"])
    v = ks.get(0, b"k")
    assert isinstance(v, VectorSet)
    h = v.data.hnsw
    assert [n.item for n in h.nodes()] == [b"e", b"d", b"c", b"b", b"a"]
    q = np.array([1, 0], dtype=F)
    assert [n.item for _, n in nearest(h, q, 3, None)] == [b"c", b"d", b"e"]
    assert [n.item for _, n in nearest(h, q, 10, None)] == [b"a", b"b", b"c", b"d", b"e"]
