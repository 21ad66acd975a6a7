"""Restarts lose nothing: replproxy's own snapshot, the restart position and graceful shutdown.

Unit tests cover the `--save` policy, the snapshot + state file pair and what survives a
failed or killed save. Integration tests run real masters and real replproxy processes and
judge by the MASTER's counters (`sync_full` must not move when a partial resync is possible)
and by `DEBUG DIGEST` equality between the master and the restarted relay.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from replproxy.app import Relay
from replproxy.config import Config, ConfigError, Upstream, parse_save
from replproxy.dialect import MasterDialect
from replproxy.fork import Forker
from replproxy.keyspace import Keyspace
from replproxy.persistence import (
    MARKS_AUX,
    Persistence,
    SaveError,
    SaveInProgress,
    save_point_due,
    state_path_of,
    write_snapshot,
)
from replproxy.rdb.model import Aux, Function, HashValue, KeyEntry, ZSetValue
from replproxy.rdb.reader import read_file
from replproxy.rdb.writer import RDBEncodeError
from replproxy.replication import NULL_REPLID, Position, Replication
from replproxy.session.client import ClientSession
from tests.conftest import KINDS
from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, wait_for
from tests.harness.workload import Workload
from tests.test_keyspace_e2e import assert_same_dataset

pytestmark = [pytest.mark.timeout(120), pytest.mark.one_kind]

REPLID = "ab" * 20
REPLID2 = "cd" * 20


# ---- the --save policy ----


def test_save_policy_parser_reads_redis_conf_syntax() -> None:
    assert parse_save("3600 1 300 100 60 10000") == ((3600, 1), (300, 100), (60, 10000))
    assert parse_save(" 1   1 ") == ((1, 1),)
    assert parse_save("60 0") == ((60, 0),)
    # `save ""` disables; an empty environment variable counts as unset, so `""` is literal.
    assert parse_save("") == parse_save('""') == parse_save("''") == ()
    for bad, why in [
        ("3600", "pairs"),
        ("3600 1 300", "pairs"),
        ("a 1", "not integers"),
        ("0 1", "seconds >= 1"),
        ("10 -1", "changes >= 0"),
    ]:
        with pytest.raises(ConfigError, match=why):
            parse_save(bad)


def test_default_save_policy_is_redis_7s() -> None:
    assert Config(upstream=Upstream("h", 1)).save == ((3600, 1), (300, 100), (60, 10000))


def test_save_point_is_due_like_server_cron() -> None:
    points = ((3600, 1), (300, 100), (60, 10000))
    assert save_point_due(points, 0, 10_000, True) is None  # nothing changed
    assert save_point_due(points, 1, 3600, True) is None  # strictly more than the seconds
    assert save_point_due(points, 1, 3601, True) == (3600, 1)
    assert save_point_due(points, 150, 301, True) == (300, 100)
    assert save_point_due(points, 150, 299, True) is None
    assert save_point_due(points, 10_000, 61, True) == (60, 10000)
    assert save_point_due(points, 10_000, 61, False) is None  # a failed save waits to retry
    assert save_point_due((), 10**9, 10**9, True) is None  # --save "" disables
    assert save_point_due(((60, 0),), 0, 61, True) == (60, 0)


@pytest.mark.parametrize(
    "name,error",
    [("a/b.rdb", "a file name"), ("..", "a file name"), ("upstream.rdb", "collides")],
)
def test_dbfilename_must_be_a_plain_name_of_our_own(name: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        Config(upstream=Upstream("h", 1), dbfilename=name).validate()


# ---- what a snapshot is written as ----


@pytest.mark.parametrize(
    "aux,expected",
    [
        ({b"redis-ver": b"7.0.15"}, (10, False)),
        ({b"redis-ver": b"7.2.4"}, (11, False)),
        ({b"redis-ver": b"7.4.1"}, (12, False)),
        ({b"redis-ver": b"8.0.2"}, (12, False)),
        ({b"redis-ver": b"6.2.14"}, (9, False)),
        ({b"redis-ver": b"5.0.7"}, (9, False)),
        ({b"redis-ver": b"4.0.14"}, (8, False)),
        ({b"valkey-ver": b"8.1.8"}, (11, True)),
        ({b"valkey-ver": b"9.0.0"}, (80, True)),
        # Unknown: the newest Redis the relay knows (MasterDialect's default).
        ({}, (12, False)),
        ({b"redis-ver": b"garbage"}, (12, False)),
    ],
)
def test_snapshot_is_written_in_the_masters_rdb_version(
    aux: dict[bytes, bytes], expected: tuple[int, bool]
) -> None:
    d = MasterDialect.from_aux(aux)
    assert (d.rdb_version, d.valkey) == expected


def sample_keyspace(version_aux: dict[bytes, bytes] | None = None) -> Keyspace:
    ks = Keyspace()
    ks.loaded_aux = dict(version_aux or {b"redis-ver": b"7.0.15"})
    ks.dbs[0][b"s"] = b"value"
    ks.dbs[0][b"l"] = [b"a", b"b"]
    ks.dbs[0][b"z"] = ZSetValue({b"m": 1.5})
    ks.dbs[3][b"h"] = {b"f": b"v"}
    ks.dbs[3][b"t"] = b"ttl"
    ks.expires[3][b"t"] = 4_000_000_000_000
    ks.functions[b"lib"] = Function(b"#!lua name=lib\nredis.register_function('f', function() end)")
    return ks


def test_snapshot_carries_the_position_and_the_masters_version(tmp_path: Path) -> None:
    ks = sample_keyspace({b"valkey-ver": b"8.1.8"})
    ks.unsupported_keys = {(0, b"odd\x00key")}
    path = tmp_path / "replproxy.rdb"
    state = write_snapshot(path, ks, Position(REPLID, 1234, 3, REPLID2, 1000), "m:6379")
    events = list(read_file(path))
    aux = {e.key: e.value for e in events if isinstance(e, Aux)}
    assert aux[b"repl-id"] == REPLID.encode()
    assert aux[b"repl-offset"] == b"1234"
    assert aux[b"repl-stream-db"] == b"3"
    assert aux[b"valkey-ver"] == b"8.1.8"  # the master's own version, for the appliers
    assert path.read_bytes()[:9] == b"REDIS0011"
    keys = {(e.db, e.key): e for e in events if isinstance(e, KeyEntry)}
    assert set(keys) == {(0, b"s"), (0, b"l"), (0, b"z"), (3, b"h"), (3, b"t")}
    assert keys[(3, b"t")].expire_ms == 4_000_000_000_000
    assert any(isinstance(e, Function) for e in events)
    # The state file: what the RDB has no field for, bound to it by the RDB's CRC64.
    on_disk = json.loads(state_path_of(path).read_text())
    assert on_disk == state
    assert on_disk["crc64"] == path.read_bytes()[-8:][::-1].hex()
    assert (on_disk["replid2"], on_disk["second_replid_offset"]) == (REPLID2, 1000)
    assert on_disk["upstream"] == "m:6379" and on_disk["rdb"] == "replproxy.rdb"
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_snapshot_without_a_position_has_no_repl_aux(tmp_path: Path) -> None:
    path = tmp_path / "replproxy.rdb"
    write_snapshot(path, sample_keyspace(), Position(None, 0, 0, NULL_REPLID, -1), "m:1")
    aux = {e.key for e in read_file(path) if isinstance(e, Aux)}
    assert not aux & {b"repl-id", b"repl-offset", b"repl-stream-db"}


def make_persistence(tmp_path: Path, ks: Keyspace | None = None) -> Persistence:
    ks = ks if ks is not None else Keyspace()
    config = Config(upstream=Upstream("m", 6379), dir=tmp_path)
    return Persistence(config, ks, Replication(ks), Forker())


async def test_restart_restores_position_replid2_and_unsupported_keys(tmp_path: Path) -> None:
    ks = sample_keyspace()
    ks.unsupported_keys = {(3, b"h")}
    write_snapshot(tmp_path / "replproxy.rdb", ks, Position(REPLID, 500, 3, REPLID2, 400), "m:6379")
    p = make_persistence(tmp_path)
    await p.load_at_startup()
    repl = p.replication
    assert repl.psync_args() == (REPLID, 501)
    assert (repl.replid2, repl.second_replid_offset, repl.stream_db) == (REPLID2, 400, 3)
    assert repl.backlog.first_byte_offset == 501 and repl.backlog.histlen == 0
    assert p.keyspace.dbs[0][b"s"] == b"value"
    assert p.keyspace.unsupported_keys == {(3, b"h")}
    assert p.keyspace.loaded_aux[b"redis-ver"] == b"7.0.15"
    assert p.last_load_keys == 5 and not p.loading


async def test_a_state_file_of_another_snapshot_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "replproxy.rdb"
    write_snapshot(path, sample_keyspace(), Position(REPLID, 500, 0, REPLID2, 400), "m:6379")
    state = json.loads(state_path_of(path).read_text())
    # A crash between the RDB's rename and the state file's: the state is the older one.
    state["crc64"] = "0" * 16
    state_path_of(path).write_text(json.dumps(state))
    p = make_persistence(tmp_path)
    await p.load_at_startup()
    # The RDB alone is a valid restart state (as for Redis); only replid2 is lost.
    assert p.replication.psync_args() == (REPLID, 501)
    assert p.replication.replid2 == NULL_REPLID


async def test_unsupported_keys_survive_a_state_file_of_another_snapshot(tmp_path: Path) -> None:
    """A crash between the two renames leaves the new RDB beside the old state file: the
    keys the relay could not apply are in the RDB too (an AUX field Redis ignores), so they
    stay refused instead of being served from the relay's wrong copy."""
    path = tmp_path / "replproxy.rdb"
    old = sample_keyspace()
    write_snapshot(path, old, Position(REPLID, 400, 0, REPLID2, 300), "m:6379")
    older_state = state_path_of(path).read_text()
    ks = sample_keyspace()
    ks.unsupported_keys = {(3, b"h"), (0, b"odd\x00key")}
    write_snapshot(path, ks, Position(REPLID, 500, 0, REPLID2, 400), "m:6379")
    aux = {e.key: e.value for e in read_file(path) if isinstance(e, Aux)}
    assert MARKS_AUX in aux
    state_path_of(path).write_text(older_state)
    p = make_persistence(tmp_path)
    await p.load_at_startup()
    assert p.replication.psync_args() == (REPLID, 501)
    assert p.keyspace.unsupported_keys == {(3, b"h"), (0, b"odd\x00key")}
    # Saved again from there: the marks carry on, and a keyspace without any writes none.
    write_snapshot(path, p.keyspace, Position(REPLID, 500, 0, REPLID2, 400), "m:6379")
    assert {e.key for e in read_file(path) if isinstance(e, Aux)} >= {MARKS_AUX}
    write_snapshot(path, sample_keyspace(), Position(REPLID, 600, 0, REPLID2, 400), "m:6379")
    assert MARKS_AUX not in {e.key for e in read_file(path) if isinstance(e, Aux)}


@pytest.mark.parametrize("damage", ["truncate", "bitflip", "empty"])
async def test_damaged_snapshot_is_set_aside_not_served(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "replproxy.rdb"
    write_snapshot(path, sample_keyspace(), Position(REPLID, 500, 0, REPLID2, 400), "m:6379")
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        del data[len(data) // 2 :]
    elif damage == "bitflip":
        data[len(data) // 2] ^= 0x10
    else:
        data.clear()
    path.write_bytes(bytes(data))
    p = make_persistence(tmp_path)
    await p.load_at_startup()
    assert not path.exists()
    aside = [x for x in tmp_path.iterdir() if ".corrupt-" in x.name]
    assert sorted(x.name.endswith(".json") for x in aside) == [False, True]
    assert p.replication.psync_args() == ("?", -1)  # a full sync, from an empty dataset
    assert p.keyspace.total_keys() == 0 and not p.keyspace.functions


def test_failed_write_leaves_the_previous_snapshot_intact(tmp_path: Path) -> None:
    path = tmp_path / "replproxy.rdb"
    write_snapshot(path, sample_keyspace(), Position(REPLID, 1, 0, NULL_REPLID, -1), "m:1")
    before = (path.read_bytes(), state_path_of(path).read_bytes())
    # A Redis 7.0 master's RDB (version 10) cannot hold hash field TTLs: the writer fails
    # after part of the file was written.
    bad = sample_keyspace()
    for i in range(2000):
        bad.dbs[1][b"k%d" % i] = b"x" * 100
    bad.dbs[2][b"ttl-hash"] = HashValue({b"f": b"v"}, expires={b"f": 4_000_000_000_000})
    with pytest.raises(RDBEncodeError):
        write_snapshot(path, bad, Position(REPLID, 2, 0, NULL_REPLID, -1), "m:1")
    assert (path.read_bytes(), state_path_of(path).read_bytes()) == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["replproxy.rdb", "replproxy.rdb.json"]


async def test_killed_save_child_leaves_the_previous_snapshot_intact(tmp_path: Path) -> None:
    ks = sample_keyspace()
    p = make_persistence(tmp_path, ks)
    p.replication.restore(REPLID, 10, 0)
    p.save()  # the foreground SAVE: the good previous snapshot
    before = (p.path.read_bytes(), p.state_path.read_bytes())
    for i in range(600_000):  # big enough that the child is still writing when killed
        ks.dbs[1][b"key:%d" % i] = b"v%d" % i
    pid = p.bgsave()
    with pytest.raises(SaveInProgress):
        p.bgsave()
    with pytest.raises(SaveInProgress):
        p.save()
    tmp = tmp_path / f"replproxy.rdb.tmp-{pid}"
    with trio.fail_after(30):
        while not (tmp.exists() and tmp.stat().st_size > 0):
            await trio.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    assert await p.wait_child() is False
    assert not p.last_bgsave_ok and p.child is None
    assert not tmp.exists()
    assert (p.path.read_bytes(), p.state_path.read_bytes()) == before
    assert p.changes_since_last_save() == 0  # nothing was applied through replication here
    # The previous snapshot still loads, whole.
    again = make_persistence(tmp_path)
    await again.load_at_startup()
    assert again.keyspace.total_keys() == 5 and again.replication.psync_args() == (REPLID, 11)


async def test_bgsave_child_writes_the_image_at_fork_time(tmp_path: Path) -> None:
    ks = sample_keyspace()
    p = make_persistence(tmp_path, ks)
    p.replication.restore(REPLID, 10, 0)
    p.bgsave()
    # Changes after the fork are not in the snapshot: the child has its own image.
    ks.dbs[0][b"late"] = b"x"
    p.replication.repl_offset = 99
    assert await p.wait_child() is True
    assert p.saves == 1 and p.last_bgsave_ok
    keys = {e.key for e in read_file(p.path) if isinstance(e, KeyEntry)}
    assert b"late" not in keys and b"s" in keys
    assert json.loads(p.state_path.read_text())["repl_offset"] == 10


def test_failed_foreground_save_reports_an_error(tmp_path: Path) -> None:
    p = make_persistence(tmp_path / "missing-dir")
    with pytest.raises(SaveError):
        p.save()
    assert not p.last_bgsave_ok


async def test_clients_get_loading_over_the_wire_during_the_startup_load(tmp_path: Path) -> None:
    """In process, so the client is connected before the load starts (it takes 0.1 s)."""
    ks = Keyspace()
    for i in range(300_000):
        ks.dbs[0][b"key:%d" % i] = b"value:%d" % i
    write_snapshot(tmp_path / "replproxy.rdb", ks, Position(REPLID, 7, 0, NULL_REPLID, -1), "m")
    config = Config(upstream=Upstream("127.0.0.1", 1), port=0, metrics_port=0, dir=tmp_path)
    relay = Relay(config)
    async with trio.open_nursery() as nursery:
        # Returns before the load begins: the ports are served first.
        ports = await nursery.start(partial(relay.run, handle_signals=False))
        stream = await trio.open_tcp_stream("127.0.0.1", ports.port)
        replies: list[bytes] = []
        while relay.persistence.loading or not replies:
            await stream.send_all(b"*1\r\n$4\r\nPING\r\n")
            replies.append(await stream.receive_some(1024))
        assert replies[0] == b"-LOADING Redis is loading the dataset in memory\r\n"
        await stream.send_all(b"*2\r\n$3\r\nGET\r\n$8\r\nkey:1234\r\n")
        assert await stream.receive_some(1024) == b"$10\r\nvalue:1234\r\n"
        assert relay.replication.psync_args() == (REPLID, 8)
        await stream.aclose()
        nursery.cancel_scope.cancel()


def test_clients_get_loading_while_the_snapshot_loads() -> None:
    relay = Relay(Config(upstream=Upstream("127.0.0.1", 1)))
    srv = relay.sessions
    client = srv.open_session("127.0.0.1:40000", "127.0.0.1:6380")
    assert isinstance(client, ClientSession)
    relay.replication.has_history = True  # a restart's load, not a first sync
    relay.persistence.loading = True
    loading = b"-LOADING Redis is loading the dataset in memory\r\n"
    for argv in ([b"PING"], [b"GET", b"k"], [b"DBSIZE"], [b"BGSAVE"], [b"SAVE"]):
        assert srv.dispatch(client, argv) == loading
    # Redis's `loading`-flagged commands still answer; unknown/arity errors come first.
    assert b"loading:1" in srv.dispatch(client, [b"INFO", b"persistence"])
    assert srv.dispatch(client, [b"LASTSAVE"]).startswith(b":")
    assert srv.dispatch(client, [b"SELECT", b"1"]) == b"+OK\r\n"
    assert srv.dispatch(client, [b"GET"]).startswith(b"-ERR wrong number of arguments")
    relay.persistence.loading = False
    assert srv.dispatch(client, [b"PING"]) == b"+PONG\r\n"
    assert srv.dispatch(client, [b"BGSAVE", b"NOW"]) == b"-ERR syntax error\r\n"
    assert srv.dispatch(client, [b"SHUTDOWN", b"SAVE", b"NOSAVE"]) == b"-ERR syntax error\r\n"


# ---- real masters, real relay processes ----


def master_stats(master: RedisServer) -> tuple[int, int]:
    s = master.info("stats")
    return int(s["sync_full"]), int(s["sync_partial_ok"])


def persistence_info(relay: RelayProcess) -> dict[str, Any]:
    return relay.info("persistence")


def terminate(relay: RelayProcess, timeout: float = 30) -> int:
    relay.proc.send_signal(signal.SIGTERM)
    return relay.proc.wait(timeout)


def restart(relay: RelayProcess, master: RedisServer, *args: str) -> RelayProcess:
    return start_relay(upstream_url(master), *args, dir=relay.dir)


def shutdown(relay: RelayProcess, *args: str) -> None:
    """SHUTDOWN succeeded: the relay closed the connection without a reply."""
    with relay.client(retry=Retry(NoBackoff(), 0)) as rc, pytest.raises(redis.ConnectionError):
        rc.execute_command("SHUTDOWN", *args)


def state_of(relay: RelayProcess) -> dict[str, Any]:
    return json.loads((relay.dir / "replproxy.rdb.json").read_text())


class Writer:
    """The seeded workload on the master from a thread, until stopped."""

    def __init__(self, master: RedisServer, seed: int) -> None:
        self.workload = Workload(master, seed=seed, dbs=3)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            # redis-py cannot parse some XPENDING replies (IndexError): skip that batch.
            with contextlib.suppress(IndexError):
                self.workload.run(20)
            time.sleep(0.005)  # a steady stream, not a flood: the test is about restarts

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_sigterm_restart_under_writes_is_a_partial_resync(
    master: RedisServer, relays: list[RelayProcess]
) -> None:
    with master.client() as c:
        c.config_set("repl-backlog-size", 64 * 1024 * 1024)
    Workload(master, seed=1, dbs=3).run(500)
    relay = start_relay(upstream_url(master))
    relays.append(relay)
    relay.wait_in_sync_with(master)
    # A full sync is followed by a save at once, whatever the --save rules' intervals.
    # (INFO counts saves from Redis 7.0's dialect on; the log says it on every version.)
    wait_for(lambda: "DB saved on disk" in relay.log(), 10, what="the post-sync save")
    assert persistence_info(relay).get("rdb_saves", 1) == 1
    assert "Full sync done. Saving..." in relay.log()
    full, partial = master_stats(master)
    with Writer(master, seed=2) as writer:
        time.sleep(0.5)
        assert terminate(relay) == 0  # the default --save policy: SIGTERM saves
        log = relay.log()
        assert "DB saved on disk" in log and "bye bye" in log
        time.sleep(0.3)  # the master keeps taking writes while the relay is away
        relay = restart(relay, master)
        relays.append(relay)
        time.sleep(0.5)
    assert writer.workload.sent > 100
    assert_same_dataset(master, relay)
    assert master_stats(master) == (full, partial + 1)
    log = relay.log()
    assert "asking the master for a partial resync" in log
    assert "partial resync accepted" in log and "full resync" not in log


def test_sigkill_restart_resumes_from_the_last_periodic_snapshot(
    master: RedisServer, relays: list[RelayProcess]
) -> None:
    relay = start_relay(upstream_url(master), "--save", "1 1")
    relays.append(relay)
    w = Workload(master, seed=3, dbs=3)
    w.run(300)
    relay.wait_in_sync_with(master)
    relay.wait_saved()
    full, partial = master_stats(master)
    w.run(100)  # applied by the relay, most likely not yet in its snapshot
    relay.proc.kill()
    relay.proc.wait(10)
    saved_offset = state_of(relay)["repl_offset"]  # the last save that completed
    w.run(200)  # and the master goes on while the relay is down
    relay = restart(relay, master, "--save", "1 1")
    relays.append(relay)
    assert f"offset {saved_offset}: asking the master for a partial resync" in relay.log()
    assert_same_dataset(master, relay)
    assert master_stats(master) == (full, partial + 1)


def test_sigkill_restart_beyond_the_masters_backlog_full_syncs_once(
    master: RedisServer, relays: list[RelayProcess]
) -> None:
    relay = start_relay(upstream_url(master), "--save", "1 1")
    relays.append(relay)
    w = Workload(master, seed=4, dbs=3)
    w.run(300)
    relay.wait_in_sync_with(master)
    relay.wait_saved()
    full, partial = master_stats(master)
    with master.client() as c:
        c.config_set("repl-backlog-size", 16384)
    relay.proc.kill()
    relay.proc.wait(10)
    with master.client() as c:  # far more than the backlog while the relay is down
        p = c.pipeline(transaction=False)
        for i in range(1000):
            p.set(f"gap:{i}", "x" * 100)
        p.execute()
    w.run(200)
    relay = restart(relay, master, "--save", "1 1")
    relays.append(relay)
    assert_same_dataset(master, relay)
    assert master_stats(master) == (full + 1, partial)
    log = relay.log()
    assert "asking the master for a partial resync" in log
    assert log.count("full resync from replid") == 1


def test_damaged_snapshot_on_disk_is_reported_set_aside_and_full_synced(
    master: RedisServer, relays: list[RelayProcess]
) -> None:
    w = Workload(master, seed=5, dbs=3)
    w.run(400)
    relay = start_relay(upstream_url(master))
    relays.append(relay)
    relay.wait_in_sync_with(master)
    for damage in ("truncate", "bitflip"):
        assert terminate(relay) == 0
        rdb = relay.dir / "replproxy.rdb"
        data = bytearray(rdb.read_bytes())
        if damage == "truncate":
            del data[len(data) * 2 // 3 :]
        else:
            data[len(data) // 2] ^= 0x04
        rdb.write_bytes(bytes(data))
        full, _ = master_stats(master)
        w.run(100)
        relay = restart(relay, master)
        relays.append(relay)
        log = relay.log()
        assert f"snapshot {rdb} is unusable" in log and "NOT serving it" in log, log
        assert "PSYNC ? -1" in log
        assert_same_dataset(master, relay)
        assert master_stats(master)[0] == full + 1
    aside = sorted(p.name for p in relay.dir.iterdir() if ".corrupt-" in p.name)
    assert len(aside) == 4, aside  # two RDBs, each with its state file


def test_save_bgsave_lastsave_and_shutdown_nosave(
    master: RedisServer, relays: list[RelayProcess]
) -> None:
    relay = start_relay(upstream_url(master), "--save", "")  # no policy: only commands save
    relays.append(relay)
    rdb = relay.dir / "replproxy.rdb"
    with master.client() as c:  # no TTLs: the master's expiry would count as changes too
        p = c.pipeline(transaction=False)
        for i in range(300):
            p.set(f"k:{i}", i)
            p.hset(f"h:{i % 7}", f"f{i}", i)
        p.execute()
    relay.wait_in_sync_with(master)
    with relay.client() as rc:
        started = rc.lastsave()  # the start time: "at start-up the data counts as saved"
        assert abs(started.timestamp() - time.time()) < 30 and not rdb.exists()
        wait_for(lambda: time.time() >= started.timestamp() + 1, 5, what="the next second")
        # Two BGSAVEs in one pipeline: the second meets the first child still running.
        p = rc.pipeline(transaction=False)
        p.execute_command("BGSAVE")
        p.execute_command("BGSAVE")
        first, second = p.execute(raise_on_error=False)
        assert first in (True, b"Background saving started")
        assert isinstance(second, redis.ResponseError)
        assert str(second) == "Background save already in progress"
        wait_for(lambda: rc.lastsave() > started, 10, what="LASTSAVE to move")
        assert rdb.exists() and persistence_info(relay)["rdb_last_bgsave_status"] == "ok"
        with master.client() as c:
            c.set("after-bgsave", "1")
        relay.wait_in_sync_with(master)
        assert persistence_info(relay)["rdb_changes_since_last_save"] == 1
        assert rc.execute_command("SAVE") is True
        assert persistence_info(relay)["rdb_changes_since_last_save"] == 0
        saved = rdb.read_bytes()
        offset = state_of(relay)["repl_offset"]
        with master.client() as c:
            c.set("after-save", "1")
        relay.wait_in_sync_with(master)
    shutdown(relay, "NOSAVE")
    assert relay.proc.wait(10) == 0
    assert rdb.read_bytes() == saved  # NOSAVE: the file is the SAVE's
    full, partial = master_stats(master)
    relay = restart(relay, master, "--save", "")
    relays.append(relay)
    assert f"offset {offset}: asking the master for a partial resync" in relay.log()
    assert_same_dataset(master, relay)
    assert master_stats(master) == (full, partial + 1)
    with relay.client() as rc:
        assert rc.get("after-save") == b"1"
    shutdown(relay, "SAVE")  # with no save rules only SHUTDOWN SAVE saves (Redis)
    assert relay.proc.wait(10) == 0
    assert state_of(relay)["repl_offset"] > offset


# Relay behaviour, not the master's: one server kind is enough.
@pytest.mark.parametrize("server_kind", KINDS[:1], ids=[k.name for k in KINDS[:1]])
def test_slow_shutdown_is_bounded_and_a_second_signal_exits_at_once(
    master: RedisServer, relays: list[RelayProcess]
) -> None:
    """A dataset big enough that saving it takes a while."""
    with master.client() as c:
        c.execute_command("DEBUG", "POPULATE", 600_000, "key", 10)
    relay = start_relay(upstream_url(master))
    relays.append(relay)
    relay.wait_in_sync_with(master)
    relay.wait_saved()  # the save that follows the full sync
    rdb = relay.dir / "replproxy.rdb"
    saved = (rdb.read_bytes(), state_path_of(rdb).read_bytes())
    # A second SIGTERM while the shutdown save runs: exit now, status 1, nothing half-written.
    relay.proc.send_signal(signal.SIGTERM)
    wait_for(
        lambda: relay.log().count("Background saving started") == 2, 20, 0.005, "the final save"
    )
    relay.proc.send_signal(signal.SIGTERM)
    assert relay.proc.wait(5) == 1
    assert "exiting now" in relay.log()
    assert (rdb.read_bytes(), state_path_of(rdb).read_bytes()) == saved
    assert [p.name for p in relay.dir.iterdir() if ".tmp-" in p.name] == []
    # A shutdown that cannot finish its save within --shutdown-timeout still exits, status 1,
    # and leaves the previous snapshot whole.
    relay = restart(relay, master, "--shutdown-timeout", "0.05")
    relays.append(relay)
    assert "600000 keys" in relay.log() and "partial resync accepted" in relay.log()
    assert terminate(relay) == 1
    assert "did not finish within --shutdown-timeout" in relay.log()
    assert (rdb.read_bytes(), state_path_of(rdb).read_bytes()) == saved
    assert [p.name for p in relay.dir.iterdir() if ".tmp-" in p.name] == []


@pytest.mark.parametrize("server_kind", KINDS[:1], ids=[k.name for k in KINDS[:1]])
def test_failed_shutdown_save_keeps_the_relay_running(
    master: RedisServer, relays: list[RelayProcess]
) -> None:
    relay = start_relay(upstream_url(master))
    relays.append(relay)
    dbfile = relay.dir / "replproxy.rdb"
    # The save a relay makes right after its full sync must be over first.
    wait_for(
        lambda: dbfile.is_file() and int(persistence_info(relay)["rdb_bgsave_in_progress"]) == 0,
        30,
        what="the save after the full sync",
    )
    dbfile.unlink()
    dbfile.mkdir()  # the final rename cannot succeed
    full, partial = master_stats(master)
    with relay.client(retry=Retry(NoBackoff(), 0)) as rc:
        with pytest.raises(
            redis.ResponseError, match=r"^Errors trying to SHUTDOWN\. Check logs\.$"
        ):
            rc.execute_command("SHUTDOWN")
        assert relay.alive()
        wait_for(lambda: relay.http("/readyz")[0] == 200, 10, what="ready again")
        assert persistence_info(relay)["rdb_last_bgsave_status"] == "err"
        with master.client() as c:
            c.set("still-replicating", "yes")
        relay.wait_in_sync_with(master)
        assert rc.get("still-replicating") == b"yes"
    assert master_stats(master) == (full, partial + 1)  # the link came back with a PSYNC
    assert "Background saving error" in relay.log()
    (relay.dir / "replproxy.rdb").rmdir()
    assert terminate(relay) == 0
    assert state_of(relay)["repl_offset"] == int(master.info("replication")["master_repl_offset"])


def test_new_flags_have_env_vars_and_bad_values_are_refused() -> None:
    from typer.testing import CliRunner

    from replproxy.cli import app

    # rich sizes the help from COLUMNS (not from terminal_width): long env names must fit.
    out = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    for flag in ["save", "dbfilename", "shutdown-timeout"]:
        assert f"--{flag}" in out
        assert f"REPLPROXY_{flag.upper().replace('-', '_')}" in out
    env = {"REPLPROXY_UPSTREAM": "redis://127.0.0.1:1", "REPLPROXY_SAVE": "60"}
    res = CliRunner().invoke(app, ["run", "--port", "0"], env=env)
    assert res.exit_code == 1 and "--save needs <seconds> <changes> pairs" in res.output
    res = CliRunner().invoke(app, ["run", "--dbfilename", "a/b"], env=env | {"REPLPROXY_SAVE": ""})
    assert res.exit_code == 1 and "--dbfilename must be a file name" in res.output
