"""The keyspace core: dispatch, unsupported commands, snapshot swap, lazy sorted-set index."""

from __future__ import annotations

import logging
import random

import pytest

from replproxy.keyspace import Keyspace, library_name
from replproxy.keyspace import store as keyspace
from replproxy.keyspace.values import ListValue, ZSet
from replproxy.rdb.model import Aux, Function, KeyEntry, Value, ZSetValue
from replproxy.session.client import ClientSession


def test_unknown_command_is_counted_logged_once_and_marks_its_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ks = Keyspace()
    with caplog.at_level(logging.WARNING, logger="replproxy.keyspace"):
        ks.apply(0, [b"JSON.SET", b"doc", b"$", b"{}"])
        ks.apply(0, [b"json.set", b"doc2", b"$", b"{}"])
    assert ks.unsupported_commands == {"json.set": 2}
    assert sum("json.set" in r.getMessage() for r in caplog.records) == 1
    assert ks.unsupported_keys == {(0, b"doc"), (0, b"doc2")}
    # A later write replacing the whole value makes it trustworthy again.
    ks.apply(0, [b"SET", b"doc", b"plain"])
    assert ks.unsupported_keys == {(0, b"doc2")}


def test_an_applier_failure_never_stops_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    ks = Keyspace()
    ks.set(0, b"k", b"v")
    ks.apply(0, [b"lpush", b"k", b"x"])  # wrong type: cannot happen on a consistent stream
    assert ks.apply_errors.get("lpush") == 1
    assert (0, b"k") in ks.unsupported_keys
    ks.apply(0, [b"set", b"other", b"1"])  # the next command still applies
    assert ks.get(0, b"other") == b"1"


def test_transaction_applies_select_inside() -> None:
    ks = Keyspace()
    db = ks.apply_transaction(0, [[b"SELECT", b"2"], [b"SET", b"a", b"1"]])
    assert db == 2 and ks.get(2, b"a") == b"1" and ks.get(0, b"a") is None


def test_snapshot_is_swapped_in_whole() -> None:
    ks = Keyspace()
    ks.set(0, b"old", b"x")
    loader = ks.new_loader()
    loader.add(
        [
            Aux(b"repl-stream-db", b"3"),
            KeyEntry(1, b"k", b"v", expire_ms=123),
            KeyEntry(0, b"z", ZSetValue({b"a": 1.0})),
            Function(b"#!lua name=lib1\nredis.register_function('f', function() end)"),
        ]
    )
    assert ks.get(0, b"old") == b"x"  # nothing visible before commit
    loader.commit()
    assert ks.get(0, b"old") is None
    assert ks.get(1, b"k") == b"v" and ks.get_expire(1, b"k") == 123
    assert loader.stream_db == 3 and list(ks.functions) == [b"lib1"]
    z = ks.get(0, b"z")
    assert isinstance(z, ZSet) and z.rank(b"a") == 0  # index built on first access


def test_snapshot_with_more_dbs_than_configured_is_refused() -> None:
    loader = Keyspace(databases=2).new_loader()
    with pytest.raises(ValueError, match="DB 5 but only 2 databases"):
        loader.add([KeyEntry(5, b"k", b"v")])


def test_library_name() -> None:
    assert library_name(b"#!lua name=mylib engine=x\nbody") == b"mylib"
    assert library_name(b"no shebang") == b""


def test_a_key_touched_by_an_unsupported_command_is_refused_not_served_stale() -> None:
    from replproxy.app import Relay
    from replproxy.config import Config, Upstream

    relay = Relay(Config(upstream=Upstream("127.0.0.1", 1)))
    srv = relay.sessions
    relay.replication.has_history = True  # as after a sync
    ks = relay.keyspace
    ks.set(0, b"doc", b"old")
    ks.apply(0, [b"JSON.SET", b"doc", b"$", b"{}"])
    client = srv.open_session("127.0.0.1:40000", "127.0.0.1:6380")
    assert isinstance(client, ClientSession)
    got = srv.dispatch(client, [b"GET", b"doc"])
    assert got.startswith(b"-ERR replproxy cannot serve key 'doc'")
    assert srv.dispatch(client, [b"MGET", b"x", b"doc"]).startswith(b"-ERR replproxy")
    ks.apply(0, [b"APPEND", b"doc", b"more"])  # a partial write: the rest is still unknown
    assert srv.dispatch(client, [b"GET", b"doc"]).startswith(b"-ERR replproxy")
    ks.apply(0, [b"SET", b"doc", b"new"])  # replaced by a write we understand
    assert srv.dispatch(client, [b"GET", b"doc"]) == b"$3\r\nnew\r\n"


@pytest.mark.parametrize("store", ["c", "python"])
def test_mset_stores_are_dict_updates_whatever_the_dict(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MSET's store (the C one prefetches through CPython's dict layout) is exactly
    `update` plus dropping each key's TTL, at every dict size and with duplicate keys: a
    dict that resizes mid-batch, keys of other types replaced, a later duplicate winning."""
    if store == "python":
        monkeypatch.setattr(keyspace, "_STORE_PAIRS", None)
    elif keyspace._STORE_PAIRS is None:
        pytest.skip("the C store is not built (or REPLPROXY_NO_SPEEDUPS is set)")
    rng = random.Random(7)
    for trial in range(150):
        size = rng.choice([1, 5, 100, 3000, 40_000])
        ks = Keyspace(databases=1)
        model: dict[bytes, Value] = {}
        for _ in range(rng.randrange(size + 1)):
            model[b"k%d" % rng.randrange(size)] = b"old"
        if trial % 3 == 0:
            model[b"k0"] = ListValue([b"a"])  # another type, replaced
        ks.dbs[0].update(model)
        ttls = {k: 1 for k in list(model)[: rng.randrange(len(model) + 1)]}
        ks.expires[0].update(ttls)
        argv = [b"MSET"]
        for _ in range(rng.randrange(1, 400)):
            argv += [b"k%d" % rng.randrange(size), b"v%d" % rng.randrange(10**6)]
        ks.apply(0, argv)
        model.update(zip(argv[1::2], argv[2::2]))
        for k in argv[1::2]:
            ttls.pop(k, None)
        assert ks.dbs[0] == model and list(ks.dbs[0]) == list(model)
        assert ks.expires[0] == ttls
    assert not ks.apply_errors


def test_the_c_store_refuses_what_is_not_whole_bytes_pairs() -> None:
    store = keyspace._STORE_PAIRS
    if store is None:
        pytest.skip("the C store is not built (or REPLPROXY_NO_SPEEDUPS is set)")
    d: dict[bytes, bytes] = {}
    with pytest.raises(ValueError, match="whole"):
        store(d, {}, [b"MSET", b"k"], 1)
    with pytest.raises(TypeError, match="bytes"):
        store(d, {}, [b"MSET", b"k", 1], 1)  # type: ignore[list-item]  # a non-bytes value on purpose
    assert d == {}  # checked before storing anything
