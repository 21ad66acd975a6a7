"""What one relay says about the cluster: its CLUSTER replies and its redirections.

Sans-I/O. A `ClusterView` is one relay's reading of a `Topology`: the cluster's primaries,
each with the relay that serves its shard as its one replica, and this relay (`me`) as the
replica of its own shard's primary. From it, pure functions build the replies of CLUSTER
SLOTS, SHARDS, NODES, INFO, REPLICAS and the error of `redirect`, formatted as the
cluster's own version formats them (read from cluster.c at 7.0.15 and Valkey 8.1:
`addNodeToNodeReply`, `addNodeDetailsToShardReply`, `clusterGenNodeDescription`,
`clusterCommand` INFO, `getNodeByQuery`, `clusterRedirectClient`). The live values of this
relay (its replication offset) are passed in; nothing here reads a clock or a socket.

The cluster's own replicas are not shown: a client that finds the cluster through the relays
reads from the relays. A relay that is down or has not finished its first sync is left out
of CLUSTER SLOTS and is not named by a redirection, as Redis leaves out a replica that
failed or never synced (`isReplicaAvailable`); its shard's reads then go to the primary.

Redirection (`redirect`), in `getNodeByQuery`'s order: the keys of the command (or of the
whole transaction, for EXEC) must share one slot (`-CROSSSLOT`); an unassigned slot is
`-CLUSTERDOWN Hash slot not served`; a cluster that is down refuses keyed commands
(`-CLUSTERDOWN`); an open slot of this relay's shard (known only from a Valkey stream)
gives `-ASK` or `-TRYAGAIN` as on a Valkey replica; a read from a READONLY client of a slot
of this relay's shard is served here; anything else is `-MOVED <slot> <endpoint>:<port>`,
naming the primary for writes and for READWRITE clients (as a cluster replica does), and
for reads from READONLY clients the relay that serves the slot, so cluster clients reading
from replicas stay on the relays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from replproxy.cluster.slots import CLUSTER_SLOTS, SlotRange, key_hash_slot
from replproxy.cluster.topology import Node, Shard, Topology
from replproxy.commandtable.keyspecs import keys_from_command
from replproxy.commandtable.spec import CommandSpec
from replproxy.resp import reply

CROSSSLOT = reply.error(b"CROSSSLOT Keys in request don't hash to the same slot")
TRYAGAIN = reply.error(b"TRYAGAIN Multiple keys request during rehashing of slot")
CLUSTERDOWN = reply.error(b"CLUSTERDOWN The cluster is down")
CLUSTERDOWN_RO = reply.error(b"CLUSTERDOWN The cluster is down and only accepts read commands")
CLUSTERDOWN_UNBOUND = reply.error(b"CLUSTERDOWN Hash slot not served")


@dataclass
class OpenSlots:
    """This relay's shard's slots in migration, as a Valkey replica learns them from its
    primary: from the snapshot of a full sync, then from the stream (`CLUSTER SETSLOT` is
    replicated since Valkey 8.0): slot -> node id."""

    migrating: dict[int, str] = field(default_factory=dict)
    importing: dict[int, str] = field(default_factory=dict)

    def apply_setslot(self, argv: Sequence[bytes]) -> None:
        """`CLUSTER SETSLOT <slot> MIGRATING|IMPORTING <node>|STABLE|NODE <node> [TIMEOUT
        ms]` as `clusterCommandSetSlot` applies it on a replica (the argument checks were
        the primary's)."""
        if len(argv) < 4 or argv[1].lower() != b"setslot":
            return
        try:
            slot = int(argv[2])
        except ValueError:
            return
        action = argv[3].lower()
        node = argv[4].decode("ascii", "replace") if len(argv) > 4 else ""
        if action == b"migrating":
            self.migrating[slot] = node
        elif action == b"importing":
            self.importing[slot] = node
        elif action == b"stable":
            self.migrating.pop(slot, None)
            self.importing.pop(slot, None)
        elif action == b"node":
            # Assigning the slot closes it: on the importing side when it becomes ours, on
            # the migrating side when it moves away (the keys are gone by then).
            self.migrating.pop(slot, None)
            self.importing.pop(slot, None)

    def clear(self) -> None:
        self.migrating.clear()
        self.importing.clear()

    @classmethod
    def from_snapshot(cls, aux: bytes | None) -> OpenSlots:
        """The open slots a Valkey primary sends with a full sync: the RDB aux field
        `cluster-slot-states`, `<slot><node-id>,` for importing and `<slot>><node-id>,` for
        migrating slots (`clusterEncodeOpenSlotsAuxField`). Unreadable entries are skipped."""
        out = cls()
        for entry in (aux or b"").decode("ascii", "replace").split(","):
            for mark, states in (("<", out.importing), (">", out.migrating)):
                slot, sep, node = entry.partition(mark)
                if sep and slot.isdigit() and int(slot) < CLUSTER_SLOTS and len(node) == 40:
                    states[int(slot)] = node
        return out


class ClusterView:
    """One relay's view: `topology` with this relay as the replica of shard `shard_name`.

    `me` stands in for this relay when the topology does not (yet) list its shard: the relay
    then serves no slot and redirects every keyed command.
    """

    def __init__(self, topology: Topology, shard_name: str, me: Node) -> None:
        self.topology = topology
        self.shards = topology.shards
        self.owners = topology.slot_owners()
        self.index = next((i for i, s in enumerate(self.shards) if s.name == shard_name), -1)
        mine = self.shards[self.index] if self.index >= 0 else None
        self.me: Node = mine.relay if mine is not None and mine.relay is not None else me
        self.my_shard: Shard | None = mine
        self.state_ok = topology.state_ok
        # 1 for each slot this relay serves (the C GET/MGET lane's filter).
        self.my_slots = bytes(1 if o == self.index and o >= 0 else 0 for o in self.owners)
        # CLUSTER SLOTS, by (protocol, this relay synced): clients ask it at every connect.
        self.slots_replies: dict[tuple[int, bool, bool], bytes] = {}
        self._ranges: list[tuple[int, SlotRange]] | None = None

    # ---- who serves what ----

    def relay_available(self, s: Shard, my_offset: int) -> bool:
        """`isReplicaAvailable` for the relay of `s` (this relay: by its own offset)."""
        r = s.relay
        if r is None:
            return False
        if s is self.my_shard and r.id == self.me.id:
            return my_offset != 0
        return not r.failed and r.health == "online"

    def reader(self, s: Shard, my_offset: int) -> Node:
        """Where reads of `s`'s slots go: its relay when available, else its primary."""
        if self.relay_available(s, my_offset):
            assert s.relay is not None
            return s.relay
        return s.primary

    def node(self, node_id: str) -> tuple[Node, Shard, bool] | None:
        """(node, its shard, is it a primary) for a node id this view shows."""
        for s in self.shards:
            if s.primary.id == node_id:
                return s.primary, s, True
            if s.relay is not None and s.relay.id == node_id:
                return s.relay, s, False
        return None

    def endpoint(self, n: Node) -> bytes:
        """`getPreferredEndpoint`."""
        t = self.topology.endpoint_type
        if t == "ip":
            return n.ip.encode()
        if t == "hostname":
            return n.hostname.encode() if n.hostname else b"?"
        return b""

    def moved(self, slot: int, n: Node, kind: bytes = b"MOVED") -> bytes:
        return reply.error(b"%b %d %b:%d" % (kind, slot, self.endpoint(n), n.port))

    def my_epoch(self) -> int:
        return self.my_shard.primary.config_epoch if self.my_shard is not None else 0


# --- redirection ------------------------------------------------------------------------------


def redirect(
    view: ClusterView,
    spec: CommandSpec,
    argv: Sequence[bytes],
    *,
    readonly: bool,
    asking: bool = False,
    queued: Sequence[tuple[CommandSpec, Sequence[bytes]]] | None = None,
    key_exists: Callable[[bytes], bool] | None = None,
    open_slots: OpenSlots | None = None,
    my_offset: int = 1,
) -> bytes | None:
    """`getNodeByQuery` + `clusterRedirectClient` for this relay: the error to answer
    instead of running the command, or None to run it here.

    `queued` is the transaction's commands when `spec` is EXEC (None outside MULTI: EXEC
    then only fails on its own). `key_exists` is asked only for slots in migration.
    """
    is_exec = spec.name == b"exec"
    if is_exec:
        if queued is None:
            return None
        commands: Sequence[tuple[CommandSpec, Sequence[bytes]]] = queued
    else:
        commands = ((spec, argv),)
    first: bytes | None = None
    slot = 0
    owner = -1
    multiple_keys = False
    migrating = importing = False
    missing = existing = 0
    is_write = pubsub = False
    opens = (
        open_slots
        if open_slots is not None and (open_slots.migrating or open_slots.importing)
        else None
    )
    for cspec, cargv in commands:
        flags = cspec.flags
        is_write = is_write or "write" in flags
        pubsub = pubsub or "pubsub" in flags
        for pos in keys_from_command(cspec, cargv):
            key = cargv[pos]
            this = key_hash_slot(key)
            if first is None:
                first, slot = key, this
                owner = view.owners[slot]
                if owner < 0:
                    return CLUSTERDOWN_UNBOUND
                # Valkey's rule: a replica knows its primary's open slots and uses them for
                # READONLY clients (Redis 7.0 replicas never learn them: `opens` stays None).
                if opens is not None and readonly:
                    if owner == view.index and slot in opens.migrating:
                        migrating = True
                    elif slot in opens.importing:
                        importing = True
            elif this != slot:
                return CROSSSLOT
            elif key != first:
                multiple_keys = True
            if (migrating or importing) and "pubsub" not in flags and key_exists is not None:
                if key_exists(key):
                    existing += 1
                else:
                    missing += 1
    if first is None:
        return None
    # Sharded Pub/Sub goes on while the cluster is down (cluster-allow-pubsubshard-when-down
    # defaults to yes, and a replica cannot see it changed).
    if not view.state_ok and not pubsub:
        if not view.topology.allow_reads_when_down:
            return CLUSTERDOWN
        if is_write:
            return CLUSTERDOWN_RO
    shard = view.shards[owner]
    if migrating and missing and opens is not None:
        if existing:
            return TRYAGAIN
        target = view.node(opens.migrating[slot])
        if target is not None:
            node, tshard, _ = target
            return view.moved(
                slot, view.reader(tshard, my_offset) if not is_write else node, b"ASK"
            )
    if importing and (asking or "asking" in spec.flags):
        if multiple_keys and missing:
            return TRYAGAIN
        return None
    if (readonly or pubsub) and not is_write and owner == view.index:
        return None
    if readonly and not is_write:
        return view.moved(slot, view.reader(shard, my_offset))
    return view.moved(slot, shard.primary)


# --- CLUSTER replies --------------------------------------------------------------------------


def _node_entry(view: ClusterView, n: Node, proto: int, metadata: bool = True) -> bytes:
    """`addNodeToNodeReply`: [endpoint, port, id, {other networking metadata}]; before
    Redis 7.0 (`metadata` false) [ip, port, id]."""
    if not metadata:
        return (
            b"*3\r\n"
            + reply.bulk(n.ip.encode())
            + reply.integer(n.port)
            + reply.bulk(n.id.encode())
        )
    t = view.topology.endpoint_type
    if t == "unknown-endpoint":
        head = reply.null(proto)
    else:
        head = reply.bulk(view.endpoint(n))
    meta: list[bytes] = []
    if t != "ip":
        meta += [b"ip", n.ip.encode()]
    if t != "hostname" and n.hostname:
        meta += [b"hostname", n.hostname.encode()]
    return (
        b"*4\r\n"
        + head
        + reply.integer(n.port)
        + reply.bulk(n.id.encode())
        + reply.bulk_map(meta, proto)
    )


def _ranges(view: ClusterView) -> list[tuple[int, SlotRange]]:
    """(shard index, range) in slot order, as `clusterReplyMultiBulkSlots` walks them."""
    if view._ranges is not None:
        return view._ranges
    out: list[tuple[int, SlotRange]] = []
    view._ranges = out
    owners = view.owners
    start = 0
    while start < CLUSTER_SLOTS:
        o = owners[start]
        end = start
        while end + 1 < CLUSTER_SLOTS and owners[end + 1] == o:
            end += 1
        if o >= 0:
            out.append((o, (start, end)))
        start = end + 1
    return out


def cluster_slots(view: ClusterView, proto: int, my_offset: int, metadata: bool = True) -> bytes:
    """CLUSTER SLOTS; `metadata` false: a node as Redis before 7.0 lists it."""
    key = (proto, my_offset != 0, metadata)
    cached = view.slots_replies.get(key)
    if cached is None:
        cached = view.slots_replies[key] = _cluster_slots(view, proto, my_offset, metadata)
    return cached


def _cluster_slots(view: ClusterView, proto: int, my_offset: int, metadata: bool) -> bytes:
    items = []
    for i, (start, end) in _ranges(view):
        s = view.shards[i]
        nodes = [_node_entry(view, s.primary, proto, metadata)]
        if view.relay_available(s, my_offset):
            assert s.relay is not None
            nodes.append(_node_entry(view, s.relay, proto, metadata))
        items.append(reply.array([reply.integer(start), reply.integer(end), *nodes]))
    return reply.array(items)


def _details(
    view: ClusterView, n: Node, role: bytes, offset: int, health: bytes, proto: int
) -> bytes:
    """`addNodeDetailsToShardReply`."""
    out = [reply.bulk(b"id"), reply.bulk(n.id.encode())]
    if n.port:
        out += [reply.bulk(b"port"), reply.integer(n.port)]
    if n.tls_port:
        out += [reply.bulk(b"tls-port"), reply.integer(n.tls_port)]
    out += [
        reply.bulk(b"ip"),
        reply.bulk(n.ip.encode()),
        reply.bulk(b"endpoint"),
        reply.bulk(view.endpoint(n) or b""),
    ]
    if n.hostname:
        out += [reply.bulk(b"hostname"), reply.bulk(n.hostname.encode())]
    out += [
        reply.bulk(b"role"),
        reply.bulk(role),
        reply.bulk(b"replication-offset"),
        reply.integer(offset),
        reply.bulk(b"health"),
        reply.bulk(health),
    ]
    return reply.map_len(len(out) // 2, proto) + b"".join(out)


def cluster_shards(
    view: ClusterView, proto: int, my_offset: int, primary_offset: int | None = None
) -> bytes:
    """CLUSTER SHARDS: each shard's slots and nodes (its primary, then its relay).
    `primary_offset`: this relay's shard's primary's offset as the relay last saw it."""
    items = []
    for s in view.shards:
        flat = [reply.integer(x) for r in s.slots for x in r]
        p = s.primary
        poffset = (
            primary_offset if s is view.my_shard and primary_offset is not None else p.repl_offset
        )
        nodes = [_details(view, p, b"master", poffset, b"fail" if p.failed else b"online", proto)]
        r = s.relay
        if r is not None:
            mine = s is view.my_shard and r.id == view.me.id
            offset = my_offset if mine else r.repl_offset
            if mine:
                health = b"loading" if offset == 0 else b"online"
            else:
                health = b"fail" if r.failed else r.health.encode()
            nodes.append(_details(view, r, b"replica", offset, health, proto))
        items.append(
            reply.map_len(2, proto)
            + reply.bulk(b"slots")
            + reply.array(flat)
            + reply.bulk(b"nodes")
            + reply.array(nodes)
        )
    return reply.array(items)


def _slot_text(slots: Sequence[SlotRange]) -> str:
    return "".join(f" {a}" if a == b else f" {a}-{b}" for a, b in slots)


def node_line(
    view: ClusterView,
    n: Node,
    shard: Shard,
    primary: bool,
    now_ms: int,
    open_slots: OpenSlots | None = None,
) -> str:
    """One line of CLUSTER NODES (`clusterGenNodeDescription`)."""
    mine = not primary and n.id == view.me.id
    addr = f"{n.ip}:{n.port}@{n.cport}" + (f",{n.hostname}" if n.hostname else "")
    flags = (["myself"] if mine else []) + (["master"] if primary else ["slave"])
    if not mine:
        flags += [f for f in ("fail?", "fail", "noaddr", "nofailover") if f in n.flags]
        if not primary and n.health == "fail" and "fail" not in flags:
            flags.append("fail")
    master = "-" if primary else shard.primary.id
    pong = n.pong_recv if primary else (0 if mine else now_ms)
    link = "connected" if n.connected or mine else "disconnected"
    line = f"{n.id} {addr} {','.join(flags)} {master} 0 {pong} {shard.primary.config_epoch} {link}"
    if primary:
        line += _slot_text(shard.slots)
    if mine and open_slots is not None:
        for slot in range(CLUSTER_SLOTS):
            if slot in open_slots.migrating:
                line += f" [{slot}->-{open_slots.migrating[slot]}]"
            elif slot in open_slots.importing:
                line += f" [{slot}-<-{open_slots.importing[slot]}]"
    return line


def cluster_nodes(view: ClusterView, now_ms: int, open_slots: OpenSlots | None = None) -> str:
    lines = []
    for s in view.shards:
        lines.append(node_line(view, s.primary, s, True, now_ms))
        if s.relay is not None:
            lines.append(node_line(view, s.relay, s, False, now_ms, open_slots))
    if view.my_shard is None:
        lines.append(node_line_orphan(view))
    return "".join(line + "\n" for line in lines)


def node_line_orphan(view: ClusterView) -> str:
    """This relay when no shard of the topology is its own (yet): a node with no master."""
    me = view.me
    return f"{me.id} {me.ip}:{me.port}@0 myself,slave - 0 0 0 connected"


def cluster_replicas(view: ClusterView, node_id: bytes, now_ms: int) -> bytes:
    """CLUSTER REPLICAS|SLAVES <node-id>: the node lines of its replicas (its relay)."""
    found = view.node(node_id.decode("utf-8", "replace"))
    if found is None:
        raise LookupError(b"ERR Unknown node %b" % node_id)
    _, shard, primary = found
    if not primary:
        raise LookupError(b"ERR The specified node is not a master")
    if shard.relay is None:
        return reply.array([])
    return reply.array([reply.bulk(node_line(view, shard.relay, shard, False, now_ms).encode())])


def cluster_info(view: ClusterView, links_field: bool = True) -> bytes:
    """CLUSTER INFO. A relay takes no part in the cluster bus: it sends and receives no
    messages, so only the totals of the message counters appear (Redis prints the per-type
    ones when they are not zero). `links_field`: Redis 7.0's last field."""
    assigned = ok = pfail = fail = 0
    known = 0
    for s in view.shards:
        n = s.slot_count
        assigned += n
        if "fail" in s.primary.flags:
            fail += n
        elif "fail?" in s.primary.flags:
            pfail += n
        else:
            ok += n
        known += 1 + (s.relay is not None)
    if view.my_shard is None:
        known += 1
    size = sum(1 for s in view.shards if s.slots)
    fields = [
        ("cluster_state", "ok" if view.state_ok else "fail"),
        ("cluster_slots_assigned", assigned),
        ("cluster_slots_ok", ok),
        ("cluster_slots_pfail", pfail),
        ("cluster_slots_fail", fail),
        ("cluster_known_nodes", known),
        ("cluster_size", size),
        ("cluster_current_epoch", view.topology.current_epoch),
        ("cluster_my_epoch", view.my_epoch()),
        ("cluster_stats_messages_sent", 0),
        ("cluster_stats_messages_received", 0),
    ]
    if links_field:
        fields.append(("total_cluster_links_buffer_limit_exceeded", 0))
    return "".join(f"{k}:{v}\r\n" for k, v in fields).encode()
