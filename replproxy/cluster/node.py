"""The relay as a cluster replica: `replproxy run --cluster-topology FILE|URL`.

`ClusterNode` is the trio edge of the cluster read endpoint inside one relay process. It
owns: the current `ClusterView` (rebuilt whenever the topology source changes), this
shard's open slots as the Valkey stream reports them, the per-client cluster checks of the
dispatcher (`check`), the CLUSTER command, and the notifications to the supervisor. It
must not touch the dataset (it only reads it) nor the link beyond `repoint`.

Topology in: the file the supervisor writes (polled by stat: a rename is seen at once) or an
HTTP URL serving the same JSON (polled by GET). A topology that names another primary for
this relay's shard re-points the link (`UpstreamLink.repoint`: the next PSYNC continues the
relay's history on the promoted replica, as `REPLICAOF host port` does).

Notifications out (`--cluster-notify host:port`, UDP, one datagram `<shard> <reason>`, at
most one per `NOTIFY_MIN_INTERVAL`): this relay answered a `-MOVED`, its link went down,
or its master's replication id changed (a failover). Each asks the supervisor to read the
topology now instead of at its next periodic refresh; losing one costs only that delay.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from replproxy.cluster.http_client import http_get
from replproxy.cluster.slots import CLUSTER_SLOTS, key_hash_slot
from replproxy.cluster.topology import Node, Topology, TopologyError, from_json, relay_node_id
from replproxy.cluster.view import (
    CLUSTERDOWN,
    CLUSTERDOWN_UNBOUND,
    ClusterView,
    OpenSlots,
    cluster_info,
    cluster_nodes,
    cluster_replicas,
    cluster_shards,
    cluster_slots,
    redirect,
)
from replproxy.errors import NOT_INTEGER, ReplyError
from replproxy.resp import reply
from replproxy.resp.request import string2ll

if TYPE_CHECKING:
    from replproxy.config import Config
    from replproxy.interfaces import Control, StatusView
    from replproxy.keyspace import Keyspace
    from replproxy.session.client import ClientSession as Client
    from replproxy.session.hub import Entry

log = logging.getLogger("replproxy.cluster")

# Seconds between two looks at the topology source: a stat() for a file (cheap, and the
# relays of one cluster disagree at most this long after the supervisor writes it: a client
# could be sent back and forth meanwhile), a GET for a URL.
FILE_POLL_INTERVAL = 0.1
URL_POLL_INTERVAL = 1.0
NOTIFY_MIN_INTERVAL = 1.0


# Before Redis 7.0 CLUSTER parses its own subcommands: those the relay answers, with the
# argument count each takes (a wrong one gets `addReplySubcommandSyntaxError`'s text), and
# those 7.0 added.
_LEGACY_ARITY = {
    b"slots": 2,
    b"nodes": 2,
    b"info": 2,
    b"myid": 2,
    b"keyslot": 3,
    b"countkeysinslot": 3,
    b"getkeysinslot": 4,
    b"replicas": 3,
    b"slaves": 3,
    b"count-failure-reports": 3,
}
_NOT_BEFORE_70 = frozenset({b"shards", b"myshardid", b"links", b"addslotsrange", b"delslotsrange"})


class ClusterNode:
    """A relay's cluster state: the topology it serves, its shard, the redirections.

    It reads the relay through the `StatusView` (replication position, link, client
    sessions) and re-points the link through `Control`, as REPLICAOF does."""

    def __init__(self, cfg: Config, keyspace: Keyspace, view: StatusView, control: Control) -> None:
        assert cfg.cluster_topology is not None
        self.keyspace = keyspace
        self.relay = view
        self.control = control
        self.source = cfg.cluster_topology
        self.shard = cfg.cluster_shard
        self.implicit_readonly = cfg.cluster_implicit_readonly
        host = cfg.replica_announce_ip or cfg.bind
        port = cfg.replica_announce_port or cfg.port
        # Who this relay is while the topology does not list it.
        self.fallback = Node(relay_node_id(host, port), host, port, health="loading")
        self.view = ClusterView(Topology(()), self.shard, self.fallback)
        self.open_slots = OpenSlots()
        self._aux_seen: dict[bytes, bytes] | None = None  # the snapshot they were read from
        self.moved_total = 0
        self.loaded_at: float | None = None  # monotonic time of the last topology applied
        # Set once a topology names this relay's shard: the link starts then, at the right
        # primary (the --upstream given may be any node of the cluster).
        self.placed = trio.Event()
        self.load_errors = 0
        self._fingerprint: object = None
        self._notify_addr = _host_port(cfg.cluster_notify) if cfg.cluster_notify else None
        self._notify_sock: socket.socket | None = None
        self._last_notify = 0.0
        self._notified_moved = 0
        keyspace.on_cluster = self._stream_command

    # ---- the topology ----

    @property
    def topology(self) -> Topology:
        return self.view.topology

    def apply(self, topology: Topology) -> None:
        """Serve `topology` from now on; follow a new primary of this relay's shard."""
        old = self.view.my_shard
        self.view = ClusterView(topology, self.shard, self.fallback)
        self.loaded_at = time.monotonic()
        mine = self.view.my_shard
        self._redirect_blocked()
        if mine is None:
            log.warning(
                "the topology (generation %d) has no shard %r: serving no slot",
                topology.generation,
                self.shard,
            )
            return
        if old is None or old.primary.id != mine.primary.id or old.slots != mine.slots:
            log.info(
                "topology generation %d: shard %s, primary %s %s:%d, %d slots",
                topology.generation,
                self.shard,
                mine.primary.id[:8],
                mine.primary.ip,
                mine.primary.port,
                mine.slot_count,
            )
        p = mine.primary
        upstream = self.relay.upstream
        first = not self.placed.is_set()
        self.placed.set()
        if not p.failed and (p.ip, p.port) != (upstream.host, upstream.port):
            if first:  # --upstream named another node: the link has not started yet
                log.info("shard %s: replicating its primary %s:%d", self.shard, p.ip, p.port)
            else:
                log.warning(
                    "shard %s has a new primary %s:%d: re-pointing the link",
                    self.shard,
                    p.ip,
                    p.port,
                )
            self.open_slots.clear()  # the new primary's open slots come with its stream
            self.control.repoint(p.ip, p.port)

    def _redirect_blocked(self) -> None:
        """`clusterRedirectBlockedClientIfNeeded`: a client blocked (XREAD BLOCK) on a key
        whose slot this relay no longer serves is answered the redirection now, instead of
        waiting for writes that will never come here."""
        view = self.view
        for (_db, key), clients in list(self.relay.sessions.watches.blocked.items()):
            slot = key_hash_slot(key)
            owner = view.owners[slot]
            for c in list(clients.values()):
                if c.unblock is not None or not c.blocked:
                    continue
                if not view.state_ok:
                    c.unblock = CLUSTERDOWN
                elif owner < 0:
                    c.unblock = CLUSTERDOWN_UNBOUND
                elif owner != view.index or not self.readonly(c):
                    if slot in self.open_slots.importing:
                        continue
                    shard = view.shards[owner]
                    target = (
                        view.reader(shard, self.my_offset()) if self.readonly(c) else shard.primary
                    )
                    c.unblock = view.moved(slot, target)
                else:
                    continue
                c.wakeup()

    async def _read_source(self) -> bytes | None:
        """The topology's bytes when they changed since the last read, else None."""
        if self.source.startswith(("http://", "https://")):
            status, body = await http_get(self.source)
            if status != 200:
                raise OSError(f"GET {self.source}: HTTP {status}")
            fp: object = hashlib.sha1(body).digest()
        else:
            path = Path(self.source)
            try:
                st = path.stat()
            except FileNotFoundError:
                return None
            fp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if fp == self._fingerprint:
                return None
            body = path.read_bytes()
        if fp == self._fingerprint:
            return None
        self._fingerprint = fp
        return body

    async def refresh(self) -> bool:
        """Read the source once; True when a new topology was applied."""
        try:
            body = await self._read_source()
            if body is None:
                return False
            topology = from_json(body)
        except (OSError, TopologyError, trio.TooSlowError) as e:
            self.load_errors += 1
            self._fingerprint = None  # read it again next time
            log.warning("cluster topology %s: %s", self.source, e)
            return False
        self.apply(topology)
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the topology, report readiness, then follow the source and the link."""
        await self.refresh()
        task_status.started()
        repl = self.relay.replication
        was_up, replid, synced = self.relay.link_status.up, repl.replid, repl.has_history
        url = self.source.startswith(("http://", "https://"))
        poll = URL_POLL_INTERVAL if url else FILE_POLL_INTERVAL
        try:
            while True:
                await trio.sleep(poll)
                await self.refresh()
                self._sync_open_slots()
                st = self.relay.link_status
                if was_up and not st.up:
                    self.notify("link-down")
                elif synced and repl.replid != replid:
                    # A master's new replid after we had its history: a failover (the first
                    # sync's replacement of our random id is not one).
                    self.notify("new-replid")
                elif self.moved_total != self._notified_moved:
                    self.notify("moved")
                was_up, replid, synced = st.up, repl.replid, repl.has_history
        finally:
            if self._notify_sock is not None:
                self._notify_sock.close()

    def notify(self, reason: str) -> None:
        """Ask the supervisor for a topology refresh (best effort, rate-limited)."""
        if reason == "moved":
            self._notified_moved = self.moved_total
        if self._notify_addr is None:
            return
        now = time.monotonic()
        if now - self._last_notify < NOTIFY_MIN_INTERVAL:
            return
        self._last_notify = now
        if self._notify_sock is None:
            self._notify_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._notify_sock.setblocking(False)
        with contextlib.suppress(OSError):
            self._notify_sock.sendto(f"{self.shard} {reason}".encode(), self._notify_addr)

    def _sync_open_slots(self) -> None:
        """After a full sync the open slots are those the primary's snapshot carried."""
        aux = self.keyspace.loaded_aux
        if aux is not self._aux_seen:
            self._aux_seen = aux
            self.open_slots = OpenSlots.from_snapshot(aux.get(b"cluster-slot-states"))

    def _stream_command(self, argv: list[bytes]) -> None:
        """A CLUSTER command from the master's stream (Valkey 8: SETSLOT)."""
        self._sync_open_slots()  # the snapshot's state first, then what followed it
        self.open_slots.apply_setslot(argv)
        if len(argv) > 3 and argv[1].lower() == b"setslot" and argv[3].lower() == b"node":
            self.notify("setslot")

    # ---- clients ----

    def readonly(self, c: Client) -> bool:
        return self.implicit_readonly if c.readonly is None else c.readonly

    def lane_slots(self, c: Client) -> bytes | None:
        """The slots the GET/MGET fast lane may serve for `c` (16384 bytes, 1 for a slot of
        this relay's shard), or None when `check` must see every command: a READWRITE or
        ASKING client, a cluster that is down, open slots."""
        if not self.readonly(c) or c.asking or not self.view.state_ok:
            return None
        if self.open_slots.migrating or self.open_slots.importing:
            return None
        return self.view.my_slots

    def my_offset(self) -> int:
        repl = self.relay.replication
        return repl.repl_offset if repl.has_history else 0

    def check(self, c: Client, e: Entry, argv: list[bytes]) -> bytes | None:
        """The dispatcher's cluster step (after the no-multi check, before -READONLY): the
        redirection error to answer, or None to go on. A refused EXEC discards the
        transaction, any other refused command inside MULTI dooms it, as `processCommand`
        does."""
        asking = c.asking
        if c.multi is None and e.name != b"asking":
            c.asking = False
        queued = None
        if e.name == b"exec" and c.multi is not None:
            queued = [(q.spec, qargv) for q, qargv in c.multi]
        ks = self.keyspace

        def key_exists(key: bytes) -> bool:
            if key not in ks.dbs[0]:
                return False
            when = ks.expires[0].get(key)
            return when is None or when > c.now

        err = redirect(
            self.view,
            e.spec,
            argv,
            readonly=self.readonly(c),
            asking=asking,
            queued=queued,
            key_exists=key_exists,
            open_slots=self.open_slots,
            my_offset=self.my_offset(),
        )
        if err is None:
            return None
        if err.startswith((b"-MOVED", b"-ASK")):
            self.moved_total += 1
        if c.multi is not None:
            if e.name == b"exec":
                c.multi = None
                c.multi_dirty = False
                c.hub.watches.unwatch(c)
            else:
                c.multi_dirty = True
        return err

    def command(self, c: Client, argv: list[bytes]) -> bytes:
        """CLUSTER <subcommand> (from Redis 7.0 the table checked the subcommand and its
        arity; before, CLUSTER parses them itself: `_LEGACY_ARITY`)."""
        sub = argv[1].lower()
        view = self.view
        legacy = c.hub.table.legacy
        if legacy and (sub in _NOT_BEFORE_70 or len(argv) != _LEGACY_ARITY.get(sub, len(argv))):
            raise ReplyError(
                b"ERR Unknown subcommand or wrong number of arguments for '%b'. "
                b"Try CLUSTER HELP." % argv[1][:128]
            )
        if sub == b"slots":
            return cluster_slots(view, c.proto, self.my_offset(), metadata=not legacy)
        if sub == b"shards":
            repl = self.relay.replication
            return cluster_shards(view, c.proto, self.my_offset(), repl.read_offset)
        if sub == b"nodes":
            text = cluster_nodes(view, int(time.time() * 1000), self.open_slots)
            return reply.verbatim(text.encode(), c.proto)
        if sub == b"info":
            return reply.verbatim(cluster_info(view, links_field=not legacy), c.proto)
        if sub == b"myid":
            return reply.bulk(view.me.id.encode())
        if sub == b"myshardid":
            return reply.bulk(_shard_id(view).encode())
        if sub == b"keyslot":
            return reply.integer(key_hash_slot(argv[2]))
        if sub == b"countkeysinslot":
            slot = _long(argv[2])
            if not 0 <= slot < CLUSTER_SLOTS:
                raise ReplyError(b"ERR Invalid slot")
            return reply.integer(len(self.keys_in_slot(slot)))
        if sub == b"getkeysinslot":
            slot, count = _long(argv[2]), _long(argv[3])
            if not 0 <= slot < CLUSTER_SLOTS or count < 0:
                raise ReplyError(b"ERR Invalid slot or number of keys")
            return reply.bulk_array(self.keys_in_slot(slot)[:count], c.proto)
        if sub in (b"replicas", b"slaves"):
            try:
                return cluster_replicas(view, argv[2], int(time.time() * 1000))
            except LookupError as e:
                raise ReplyError(e.args[0]) from None
        if sub == b"count-failure-reports":
            if view.node(argv[2].decode("utf-8", "replace")) is None:
                raise ReplyError(b"ERR Unknown node %b" % argv[2])
            return reply.integer(0)
        if sub == b"links":
            return reply.array([])  # no cluster bus, no links
        name = f"cluster|{sub.decode('utf-8', 'replace')}"
        raise ReplyError(f"ERR replproxy does not support the '{name}' command".encode())

    def keys_in_slot(self, slot: int) -> Sequence[bytes]:
        """The keys of database 0 in `slot`, newest first as Redis 7.0's per-slot list
        keeps them. O(keys): the relay keeps no per-slot index, so that applying the stream
        never pays for hashing every key it writes."""
        keys = [k for k in self.keyspace.dbs[0] if key_hash_slot(k) == slot]
        keys.reverse()
        return keys


def _shard_id(view: ClusterView) -> str:
    """CLUSTER MYSHARDID: a stable 40-hex id for the shard (its primary's own shard id is
    not visible to a client of Redis 7.0; this one is derived from the shard's name)."""
    return hashlib.sha1(
        f"replproxy-shard {view.my_shard.name if view.my_shard else ''}".encode()
    ).hexdigest()


def _long(arg: bytes) -> int:
    v = string2ll(arg)
    if v is None:
        raise ReplyError(NOT_INTEGER)
    return v


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)
