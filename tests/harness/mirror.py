"""An in-process replica of a REAL master, for testing the keyspace appliers exactly.

`Mirror` connects to a running redis-server/valkey-server as a replica with replproxy's own
sans-I/O link (blocking socket, no trio), loads the snapshot into a `Keyspace` and applies
the real replication stream through `Replication.process`. Tests then drive the master with
redis-py, call `mirror.sync()` and compare every key of the mirror with what the master
serves (`compare_with_master`), so each applier is judged against the real server's own
rewrites and results, not against our reading of the docs.
"""

from __future__ import annotations

import math
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import redis

from replproxy.keyspace import Keyspace
from replproxy.link.protocol import (
    Commands,
    FullResync,
    LinkConfig,
    LinkError,
    LinkState,
    PartialResync,
    ReplicaLink,
    SnapshotData,
)
from replproxy.rdb.model import HashValue, StreamValue
from replproxy.replication import Replication
from tests.harness.relay import RelayProcess
from tests.harness.servers import RedisServer


class Mirror:
    def __init__(self, server: RedisServer, databases: int = 16) -> None:
        self.server = server
        self.keyspace = Keyspace(databases)
        self.replication = Replication(self.keyspace)
        self.sock = socket.create_connection((server.host, server.port), timeout=30)
        self.link = ReplicaLink(
            LinkConfig(listening_port=1, password=server.password), *self.replication.psync_args()
        )
        self.published: list[tuple[bytes, bytes]] = []
        self.keyspace.on_publish = lambda ch, msg: self.published.append((ch, msg))
        self._handshake()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Mirror:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self) -> None:
        out = self.link.data_to_send()
        if out:
            self.sock.sendall(out)

    def _handshake(self) -> None:
        link = self.link
        link.initiate()
        self._send()
        snapshot = bytearray()
        full: FullResync | None = None
        while link.state not in (LinkState.LOADING, LinkState.CONNECTED):
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("master closed the connection during the handshake")
            link.receive_data(data)
            for ev in link.next_events():
                if isinstance(ev, LinkError):
                    raise ConnectionError(ev.reason)
                if isinstance(ev, FullResync):
                    full = ev
                elif isinstance(ev, SnapshotData):
                    snapshot += ev.data
                elif isinstance(ev, PartialResync):
                    raise AssertionError("a new mirror cannot partially resync")
            self._send()
        assert full is not None
        loader = self.keyspace.new_loader()
        loader.feed(bytes(snapshot))
        loader.feed_eof()
        loader.commit()
        self.replication.full_resync(full.replid, full.offset, loader.stream_db)
        link.snapshot_loaded()
        self._send()

    def sync(self, timeout: float = 30.0) -> int:
        """Apply everything the master has produced so far; return the offset reached."""
        with self.server.client() as c:
            target = int(c.info("replication")["master_repl_offset"])
        deadline = time.monotonic() + timeout
        while self.replication.repl_offset < target:
            # A diskless master ignores an ACK that arrives before it has seen its child
            # finish, so ACK again while waiting, as a real replica's once-a-second ACK does.
            self.sock.settimeout(0.2)
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"mirror at {self.replication.repl_offset}, master at {target}"
                    ) from None
                self.link.send_ack(self.replication.repl_offset)
                self._send()
                continue
            if not data:
                raise ConnectionError("master closed the replication link")
            self.link.receive_data(data)
            for ev in self.link.next_events():
                if isinstance(ev, Commands):
                    for off in self.replication.process(ev.commands).acks:
                        self.link.send_ack(off)
                elif isinstance(ev, LinkError):
                    raise ConnectionError(ev.reason)
            self._send()
            if time.monotonic() > deadline:
                raise TimeoutError(f"mirror at {self.replication.repl_offset}, master at {target}")
        return self.replication.repl_offset


# ---- comparing with the master ----


def raw_client(server: RedisServer | RelayProcess, db: int = 0) -> redis.Redis:
    """A client that returns replies as the server sent them (no redis-py reshaping)."""
    c = server.client(db=db)
    c.response_callbacks.clear()
    return c


def master_value(c: redis.Redis, key: bytes) -> tuple[str, Any]:
    """(type, canonical value) of a key as the master serves it; `c` is a `raw_client`."""
    t = c.execute_command("TYPE", key).decode()
    if t == "string":
        return t, c.execute_command("GET", key)
    if t == "list":
        return t, c.execute_command("LRANGE", key, 0, -1)
    if t == "set":
        return t, set(c.execute_command("SMEMBERS", key))
    if t == "hash":
        return t, dict(_pairs(c.execute_command("HGETALL", key)))
    if t == "zset":
        flat = c.execute_command("ZRANGE", key, 0, -1, "WITHSCORES")
        return t, {m: _canon_score(float(s)) for m, s in _pairs(flat)}
    if t == "stream":
        return t, _master_stream(c, key)
    return t, None


def _canon_score(s: float) -> float | str:
    return "nan" if isinstance(s, float) and math.isnan(s) else float(s)


def _master_stream(c: redis.Redis, key: bytes) -> dict[str, Any]:
    entries = [
        (_sid(i), [tuple(f) for f in _pairs(fields)])
        for i, fields in c.execute_command("XRANGE", key, "-", "+")
    ]
    groups = []
    for g in c.execute_command("XINFO", "GROUPS", key):
        g = _kv(g)
        name = g[b"name"]
        pel = (
            [
                (_sid(p[0]), p[1], int(p[3]))
                for p in c.execute_command("XPENDING", key, name, "-", "+", 1 << 30)
            ]
            if g[b"pending"]
            else []
        )
        # Only consumers that own pending entries: Redis 7.2+/Valkey create a consumer on an
        # XREADGROUP/XCLAIM that delivers nothing without propagating it, so no replica (a
        # real one included) has those.
        consumers = sorted(
            _kv(x)[b"name"]
            for x in c.execute_command("XINFO", "CONSUMERS", key, name)
            if int(_kv(x)[b"pending"]) > 0
        )
        groups.append(
            {
                "name": name,
                "last_id": _sid(g[b"last-delivered-id"]),
                "pel": [(i, owner, n) for i, owner, n in pel],
                "consumers": consumers,
            }
        )
    info = _kv(c.execute_command("XINFO", "STREAM", key))
    return {
        "entries": entries,
        "length": int(info[b"length"]),
        "last_id": _sid(info[b"last-generated-id"]),
        "groups": groups,
        "meta": _master_stream_meta(c, key, info),
    }


def _master_stream_meta(c: redis.Redis, key: bytes, info: dict[bytes, Any]) -> Any:
    """The 7.0+ stream metadata as XINFO shows it (None before 7.0, which has none)."""
    if b"entries-added" not in info:
        return None
    groups = []
    for g in c.execute_command("XINFO", "GROUPS", key):
        g = _kv(g)
        read = g[b"entries-read"]
        groups.append((g[b"name"], -1 if read is None else int(read), g[b"lag"]))
    return {
        "entries_added": int(info[b"entries-added"]),
        "max_deleted_id": _sid(info[b"max-deleted-entry-id"]),
        "first_id": _sid(info[b"recorded-first-entry-id"]),
        "groups": groups,
    }


def _mirror_stream_meta(ks: Keyspace, v: StreamValue) -> Any:
    """`_master_stream_meta` computed from the mirror's model (lag by the master's rules)."""
    from replproxy.keyspace.t_stream import consumer_group_lag, lag_rules

    if not ks.dialect.stream_claim_drops_deleted:  # no stream metadata before Redis 7.0
        return None
    rules = lag_rules(ks)
    groups = [
        (g.name, -1 if g.entries_read is None else g.entries_read, consumer_group_lag(v, g, rules))
        for g in v.groups
    ]
    return {
        "entries_added": v.entries_added,
        "max_deleted_id": v.max_deleted_id,
        "first_id": v.first_id,
        "groups": groups,
    }


def _sid(raw: bytes) -> tuple[int, int]:
    ms, seq = raw.split(b"-")
    return int(ms), int(seq)


def _pairs(flat: list[bytes]) -> list[tuple[bytes, bytes]]:
    return list(zip(flat[::2], flat[1::2]))


def _kv(flat: list[Any]) -> dict[bytes, Any]:
    return dict(zip(flat[::2], flat[1::2]))


def mirror_value(ks: Keyspace, db: int, key: bytes) -> tuple[str, Any]:
    """(type, canonical value) of a key in the mirror, in `master_value`'s form."""
    v = ks.get(db, key)
    if v is None:
        return "none", None
    if isinstance(v, bytes):
        return "string", v
    if isinstance(v, list | deque):  # a snapshot's list, or a written ListValue
        return "list", list(v)
    if isinstance(v, set):
        return "set", set(v)
    if isinstance(v, StreamValue):
        groups = []
        for g in v.groups:
            groups.append(
                {
                    "name": g.name,
                    "last_id": g.last_id,
                    "pel": [
                        (
                            i,
                            next((c.name for c in g.consumers if i in c.pending), None),
                            p.delivery_count,
                        )
                        for i, p in g.pel.items()
                    ],
                    "consumers": sorted(c.name for c in g.consumers if c.pending),
                }
            )
        return "stream", {
            "entries": [(i, [tuple(f) for f in fields]) for i, fields in v.entries.items()],
            "length": v.length,
            "last_id": v.last_id,
            "groups": groups,
            "meta": _mirror_stream_meta(ks, v),
        }
    from replproxy.keyspace.values import ZSet

    if isinstance(v, ZSet):
        return "zset", {m: _canon_score(s) for m, s in v.items()}
    if isinstance(v, HashValue | dict):
        return "hash", dict(v)
    return type(v).__name__, v


def compare_with_master(mirror: Mirror, dbs: range | None = None) -> list[str]:
    """Every difference between the master's keys and the mirror's (empty when equal)."""
    diffs: list[str] = []
    ks = mirror.keyspace
    now_ms = int(time.time() * 1000)
    for db in dbs or range(ks.databases):
        with raw_client(mirror.server, db) as c:
            master_keys = set(c.execute_command("KEYS", "*"))
            # The master hides logically expired keys from SCAN; the mirror keeps them until
            # the master's DEL arrives. Compare only keys alive on both sides.
            mine = {
                k for k in ks.dbs[db] if (exp := ks.expires[db].get(k)) is None or exp > now_ms + 50
            }
            for k in sorted(master_keys ^ mine):
                where = "master only" if k in master_keys else "mirror only"
                ttl = c.execute_command("PTTL", k) if k in master_keys else ks.expires[db].get(k)
                if k not in master_keys and ttl is not None and ttl <= now_ms + 1000:
                    continue  # expiring right now: the master's DEL is on its way
                mexp = ks.expires[db].get(k)
                if (
                    k in master_keys
                    and k in ks.dbs[db]
                    and mexp is not None
                    and mexp <= now_ms + 1000
                ):
                    continue  # the mirror holds it, expiring right now (left out of `mine`)
                diffs.append(f"db{db} {k!r}: {where}")
            for k in sorted(master_keys & mine):
                mv, yv = master_value(c, k), mirror_value(ks, db, k)
                if ks.dialect.stream_entries_read_unpropagated:
                    # A replica of such a master keeps a stale read counter, as the relay
                    # does (t_stream's docstring): the master is not the oracle for it.
                    mv, yv = without_read_counters(mv), without_read_counters(yv)
                exp = ks.expires[db].get(k)
                if mv[0] == "none" and exp is not None and exp <= time.time() * 1000 + 1000:
                    continue  # expired on the master since KEYS: its DEL is on its way
                if mv != yv:
                    diffs.append(f"db{db} {k!r}: master {mv!r} != mirror {yv!r}")
                pttl = c.execute_command("PTTL", k)
                if pttl == -2 and exp is not None and exp <= time.time() * 1000 + 1000:
                    continue  # expired just now, as above
                if (pttl < 0) != (exp is None):
                    diffs.append(f"db{db} {k!r}: master pttl {pttl} but mirror expire {exp}")
                elif exp is not None and abs((exp - now_ms) - pttl) > 2000:
                    diffs.append(f"db{db} {k!r}: master pttl {pttl} vs mirror {exp - now_ms}")
    return diffs


def without_read_counters(tv: tuple[str, Any]) -> tuple[str, Any]:
    """A stream's canonical value with its groups' entries-read and lag left out."""
    t, v = tv
    if t != "stream" or not isinstance(v, dict) or v.get("meta") is None:
        return tv
    meta = dict(v["meta"], groups=[g[0] for g in v["meta"]["groups"]])
    return t, dict(v, meta=meta)


def compare_servers(
    master: RedisServer, other: RedisServer | RelayProcess, dbs: range
) -> list[str]:
    """Every difference between two servers' keys as their clients read them: type, value
    (`master_value`) and TTL, key by key. A key expiring within a second on either side is
    left out: the master's DEL may be on its way. Before 7.0 a master propagates relative
    TTLs (EXPIRE 5), which a replica starts when it applies them: after a full sync, seconds
    after the master ran them; so with such a master a key expiring within 10 s is left out.
    The TTLs are read before and after the values (a key may expire in between)."""
    diffs: list[str] = []
    is_server = isinstance(master, RedisServer)
    stale = is_server and master.kind.dialect.stream_entries_read_unpropagated
    window = 10_000 if is_server and master.kind.major < 7 else 1000
    for db in dbs:
        with raw_client(master, db) as mc, raw_client(other, db) as oc:
            keys = set(mc.execute_command("KEYS", "*")) | set(oc.execute_command("KEYS", "*"))
            for k in sorted(keys):
                ttls = [mc.execute_command("PTTL", k), oc.execute_command("PTTL", k)]
                if any(0 <= t <= window for t in ttls):
                    # Skipped before reading: such a key can expire between the reads of one
                    # value (TYPE said stream, then XINFO found no key: a CI failure).
                    continue
                mv, ov = master_value(mc, k), master_value(oc, k)
                if stale:  # a replica of such a master keeps stale read counters
                    mv, ov = without_read_counters(mv), without_read_counters(ov)
                mt, ot = mc.execute_command("PTTL", k), oc.execute_command("PTTL", k)
                if any(0 <= t <= window for t in (*ttls, mt, ot)):
                    continue
                if mv != ov:
                    diffs.append(f"db{db} {k!r}: master {mv!r} != other {ov!r}")
                elif (mt < 0) != (ot < 0) or abs(mt - ot) > 2000:
                    diffs.append(f"db{db} {k!r}: master pttl {mt} != other {ot}")
    return diffs


# ---- helpers shared by the applier tests ----


def send(c: redis.Redis, *argv: object) -> Any:
    """One command to the master. An error reply (wrong type, bad index, NaN, a form this
    version does not know) is part of the game: the master propagates only what it ran."""
    try:
        return c.execute_command(*argv)
    except redis.ResponseError:
        return None


def settle(
    mirror: Mirror, extra: Callable[[Mirror], list[str]] | None = None, tries: int = 20
) -> list[str]:
    """Sync and compare until equal or out of tries: the master's own active expiry keeps
    moving, so equality is eventually true, not instantly. Returns the last differences."""
    mirror.sync()
    diffs: list[str] = []
    for _ in range(tries):
        diffs = compare_with_master(mirror)
        if extra is not None:
            diffs += extra(mirror)
        if not diffs:
            break
        time.sleep(0.2)
        mirror.sync()
    return diffs


def assert_mirrors(mirror: Mirror, extra: Callable[[Mirror], list[str]] | None = None) -> None:
    """The mirror equals the master and applied everything it was sent."""
    assert settle(mirror, extra) == []
    ks = mirror.keyspace
    assert ks.apply_errors == {}
    assert ks.unsupported_commands == {}
    assert ks.unsupported_keys == set()
