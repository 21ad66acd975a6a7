"""The cluster as data: nodes, shards, slot ownership, and the relays beside them.

Owns the `Topology` value and its three spellings: what a cluster node answers (CLUSTER
SHARDS, CLUSTER SLOTS, CLUSTER NODES: parsed here), and the JSON file the supervisor writes
and every relay reads (`to_json` / `from_json`). Sans-I/O: values in, values out; it never
connects anywhere (`replproxy.cluster.discovery` does) and never formats a reply to a client
(`replproxy.cluster.view` does).

A shard is one primary, the cluster's own replicas of it, the slots it owns, and the relay
that replicates it (`relay`, set by the supervisor). Shards are matched across refreshes by
their nodes, not by their primary: a failover changes the primary, not the shard
(`match_shards`).

Facts relied on (cluster.c `clusterGenNodeDescription`, `addNodeDetailsToShardReply`,
`addNodeToNodeReply`; identical in Redis 7.0 and Valkey 8.1 for these fields):

- CLUSTER NODES: one line per node: `<id> <ip>:<port>@<cport>[,<hostname>] <flags>
  <master-id or -> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot>...`; flags are
  comma-separated (`myself`, `master`, `slave`, `fail?`, `fail`, `handshake`, `noaddr`,
  `nofailover`, `noflags`); a slot is `n` or `a-b`; only the `myself` line also lists open
  slots as `[n->-<id>]` (migrating) and `[n-<-<id>]` (importing). A replica's config epoch
  is printed as its master's.
- CLUSTER SHARDS (Redis 7.0+, Valkey): per shard a map of `slots` (flat start, end pairs)
  and `nodes` (maps with `id`, `port` and/or `tls-port`, `ip`, `endpoint`, `hostname` if
  set, `role` master|replica, `replication-offset`, `health` online|loading|fail).
- CLUSTER SLOTS (every version): per contiguous range `[start, end, primary, replica...]`,
  each node `[endpoint, port, id, {metadata}]` (Redis 6 without the metadata); replicas that
  failed or never synced are left out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from replproxy.cluster.slots import CLUSTER_SLOTS, SlotRange, count_slots, ranges_of, slots_of

Health = Literal["online", "loading", "fail"]
EndpointType = Literal["ip", "hostname", "unknown-endpoint"]


class TopologyError(ValueError):
    """A reply or a topology file that cannot be understood; the message says where."""


@dataclass(frozen=True)
class Node:
    """One node as the relays present it (a cluster node, or a relay)."""

    id: str  # 40 hex characters
    ip: str
    port: int
    cport: int = 0  # the cluster bus port (0 for a relay: it has no bus)
    hostname: str = ""
    tls_port: int = 0
    # Flags beyond the role, from CLUSTER NODES: "fail", "fail?", "nofailover", "noaddr".
    flags: tuple[str, ...] = ()
    config_epoch: int = 0
    repl_offset: int = 0
    health: Health = "online"
    pong_recv: int = 0  # ms since the epoch (CLUSTER NODES pong-recv)
    connected: bool = True

    @property
    def failed(self) -> bool:
        return "fail" in self.flags or self.health == "fail"

    @property
    def address(self) -> tuple[str, int]:
        return self.ip, self.port


@dataclass(frozen=True)
class Shard:
    """A primary, its slots, the cluster's replicas of it, and the relay serving it."""

    primary: Node
    slots: tuple[SlotRange, ...] = ()
    replicas: tuple[Node, ...] = ()
    relay: Node | None = None
    # The supervisor's stable name for the shard ("0", "1", ...; "" before it names it): the
    # relay's --cluster-shard, its directory and ports.
    name: str = ""

    @property
    def node_ids(self) -> frozenset[str]:
        """The cluster nodes of the shard (not the relay): what identifies it over time."""
        return frozenset([self.primary.id, *(r.id for r in self.replicas)])

    @property
    def slot_count(self) -> int:
        return count_slots(self.slots)


@dataclass(frozen=True)
class Topology:
    shards: tuple[Shard, ...]
    server: str = "redis"  # the cluster's kind: "redis" or "valkey"
    version: str = ""  # the server version of the node it was read from
    current_epoch: int = 0
    # `cluster-preferred-endpoint-type` and `cluster-allow-reads-when-down` of the cluster.
    endpoint_type: EndpointType = "ip"
    allow_reads_when_down: bool = False
    # Bumped by the supervisor on every change it writes.
    generation: int = 0

    def shard(self, name: str) -> Shard | None:
        return next((s for s in self.shards if s.name == name), None)

    def slot_owners(self) -> list[int]:
        """For each slot, the index in `shards` of its owner (-1: not served)."""
        owners = [-1] * CLUSTER_SLOTS
        for i, s in enumerate(self.shards):
            for start, end in s.slots:
                owners[start : end + 1] = [i] * (end - start + 1)
        return owners

    @property
    def slots_assigned(self) -> int:
        return sum(s.slot_count for s in self.shards)

    @property
    def state_ok(self) -> bool:
        """`cluster_state:ok`: every slot is served by a primary not marked failed (the
        require-full-coverage default, as `clusterUpdateState` decides it)."""
        return self.slots_assigned == CLUSTER_SLOTS and not any(
            s.primary.failed and s.slots for s in self.shards
        )


def relay_node_id(host: str, port: int) -> str:
    """A relay's node id: stable for its announced address (a relay has no nodes.conf, and a
    node id that changed at every restart would look like a new node to clients)."""
    return hashlib.sha1(f"replproxy-relay {host}:{port}".encode()).hexdigest()


# --- CLUSTER NODES ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeLine:
    """One line of CLUSTER NODES."""

    id: str
    ip: str
    port: int
    cport: int
    hostname: str
    flags: frozenset[str]
    master_id: str | None
    ping_sent: int
    pong_recv: int
    config_epoch: int
    connected: bool
    slots: tuple[SlotRange, ...]
    migrating: Mapping[int, str]
    importing: Mapping[int, str]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def myself(self) -> bool:
        return "myself" in self.flags


def parse_cluster_nodes(text: str | bytes) -> list[NodeLine]:
    """Every node line of a CLUSTER NODES reply."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out: list[NodeLine] = []
    for line in text.splitlines():
        if line.strip():
            out.append(_node_line(line))
    return out


def _node_line(line: str) -> NodeLine:
    words = line.split()
    if len(words) < 8:
        raise TopologyError(f"CLUSTER NODES: short line {line!r}")
    addr, _, hostname = words[1].partition(",")
    hostport, _, cport = addr.partition("@")
    ip, _, port = hostport.rpartition(":")
    try:
        slots: list[SlotRange] = []
        migrating: dict[int, str] = {}
        importing: dict[int, str] = {}
        for w in words[8:]:
            if w.startswith("["):
                body = w[1:-1]
                if "->-" in body:
                    s, _, node = body.partition("->-")
                    migrating[int(s)] = node
                elif "-<-" in body:
                    s, _, node = body.partition("-<-")
                    importing[int(s)] = node
            elif "-" in w:
                a, _, b = w.partition("-")
                slots.append((int(a), int(b)))
            else:
                slots.append((int(w), int(w)))
        flags = frozenset(f for f in words[2].split(",") if f != "noflags")
        return NodeLine(
            id=words[0],
            ip=ip,
            port=int(port),
            cport=int(cport or 0),
            hostname=hostname.split(",")[0],
            flags=flags,
            master_id=None if words[3] == "-" else words[3],
            ping_sent=int(words[4]),
            pong_recv=int(words[5]),
            config_epoch=int(words[6]),
            connected=words[7] == "connected",
            slots=tuple(slots),
            migrating=migrating,
            importing=importing,
        )
    except ValueError as e:
        raise TopologyError(f"CLUSTER NODES: bad line {line!r}: {e}") from None


# --- CLUSTER SHARDS / CLUSTER SLOTS -----------------------------------------------------------


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return "" if v is None else str(v)


def _as_map(v: Any) -> dict[str, Any]:
    """A RESP3 map, or a RESP2 flat array of key, value pairs, as a dict with str keys."""
    if isinstance(v, Mapping):
        return {_text(k): x for k, x in v.items()}
    if isinstance(v, list) and len(v) % 2 == 0:
        return {_text(v[i]): v[i + 1] for i in range(0, len(v), 2)}
    raise TopologyError(f"expected a map, got {v!r}")


@dataclass(frozen=True)
class ShardEntry:
    """One shard of CLUSTER SHARDS (or one primary's ranges of CLUSTER SLOTS)."""

    slots: tuple[SlotRange, ...]
    nodes: tuple[dict[str, Any], ...]  # id, ip, port, endpoint, hostname, role, ...


def parse_cluster_shards(reply: Sequence[Any]) -> list[ShardEntry]:
    out: list[ShardEntry] = []
    for item in reply:
        m = _as_map(item)
        flat = [int(x) for x in m.get("slots", [])]
        slots = tuple((flat[i], flat[i + 1]) for i in range(0, len(flat) - 1, 2))
        nodes = []
        for n in m.get("nodes", []):
            d = {k: (_text(v) if isinstance(v, bytes) else v) for k, v in _as_map(n).items()}
            nodes.append(d)
        out.append(ShardEntry(slots, tuple(nodes)))
    return out


def parse_cluster_slots(reply: Sequence[Any]) -> list[ShardEntry]:
    """CLUSTER SLOTS grouped by primary id into shards (ranges in slot order)."""
    by_primary: dict[str, tuple[list[SlotRange], list[dict[str, Any]]]] = {}
    for entry in reply:
        if len(entry) < 3:
            raise TopologyError(f"CLUSTER SLOTS: short entry {entry!r}")
        start, end = int(entry[0]), int(entry[1])
        nodes = []
        for role, n in zip(["master"] + ["replica"] * (len(entry) - 3), entry[2:]):
            d: dict[str, Any] = {
                "endpoint": _text(n[0]),
                "port": int(n[1]),
                "role": role,
                "id": _text(n[2]) if len(n) > 2 else "",
            }
            if len(n) > 3:
                d.update({k: _text(v) for k, v in _as_map(n[3]).items()})
            d.setdefault("ip", d["endpoint"])
            nodes.append(d)
        key = nodes[0]["id"]
        by_primary.setdefault(key, ([], nodes))[0].append((start, end))
    return [ShardEntry(tuple(sorted(r)), tuple(m)) for r, m in by_primary.values()]


def build_topology(
    entries: Sequence[ShardEntry],
    nodes: Sequence[NodeLine],
    *,
    server: str = "redis",
    version: str = "",
    current_epoch: int = 0,
    endpoint_type: EndpointType = "ip",
    allow_reads_when_down: bool = False,
    include_empty_primaries: bool = True,
) -> Topology:
    """The topology from one node's CLUSTER SHARDS (or SLOTS) and CLUSTER NODES replies.

    SHARDS/SLOTS give the shape and the client-facing fields (endpoint, health, offsets);
    NODES adds what only it has (bus port, failure flags, config epochs, open slots) and,
    after CLUSTER SLOTS (which leaves them out), the primaries that own no slot yet.
    """
    lines = {n.id: n for n in nodes}
    shards: list[Shard] = []
    seen: set[str] = set()
    for e in entries:
        masters = [d for d in e.nodes if d.get("role") == "master"]
        if not masters:
            continue  # a shard whose primary is gone and not replaced yet
        primary = _node(masters[0], lines)
        replicas = tuple(_node(d, lines) for d in e.nodes if d.get("role") != "master")
        line = lines.get(primary.id)
        slots = e.slots
        if not slots and line is not None:
            slots = line.slots
        shards.append(
            Shard(primary=primary, slots=tuple(ranges_of(slots_of(slots))), replicas=replicas)
        )
        seen.add(primary.id)
        seen.update(r.id for r in replicas)
    if include_empty_primaries:
        # Primaries CLUSTER SLOTS leaves out (no slots), and their replicas.
        for line in nodes:
            if (
                line.is_master
                and line.id not in seen
                and "handshake" not in line.flags
                and "noaddr" not in line.flags
            ):
                reps = tuple(
                    _node_from_line(r) for r in nodes if r.master_id == line.id and r.id not in seen
                )
                shards.append(Shard(primary=_node_from_line(line), slots=line.slots, replicas=reps))
                seen.add(line.id)
    shards.sort(key=lambda s: (s.slots[0][0] if s.slots else CLUSTER_SLOTS, s.primary.id))
    return Topology(
        tuple(shards),
        server=server,
        version=version,
        current_epoch=current_epoch,
        endpoint_type=endpoint_type,
        allow_reads_when_down=allow_reads_when_down,
    )


def _flags_of(line: NodeLine | None) -> tuple[str, ...]:
    if line is None:
        return ()
    return tuple(f for f in ("fail?", "fail", "nofailover", "noaddr") if f in line.flags)


def _node(d: Mapping[str, Any], lines: Mapping[str, NodeLine]) -> Node:
    nid = _text(d.get("id", ""))
    line = lines.get(nid)
    port = int(d.get("port") or 0) or (line.port if line else 0)
    health = _text(d.get("health", "")) or ("fail" if line and "fail" in line.flags else "online")
    if health not in ("online", "loading", "fail"):
        health = "online"
    return Node(
        id=nid,
        ip=_text(d.get("ip", "")) or (line.ip if line else ""),
        port=port,
        cport=line.cport if line else 0,
        hostname=_text(d.get("hostname", "")) or (line.hostname if line else ""),
        tls_port=int(d.get("tls-port") or 0),
        flags=_flags_of(line),
        config_epoch=line.config_epoch if line else 0,
        repl_offset=int(d.get("replication-offset") or 0),
        health=health,  # type: ignore[arg-type]
        pong_recv=line.pong_recv if line else 0,
        connected=line.connected if line else True,
    )


def _node_from_line(line: NodeLine) -> Node:
    return Node(
        id=line.id,
        ip=line.ip,
        port=line.port,
        cport=line.cport,
        hostname=line.hostname,
        flags=_flags_of(line),
        config_epoch=line.config_epoch,
        health="fail" if "fail" in line.flags else "online",
        pong_recv=line.pong_recv,
        connected=line.connected,
    )


# --- shards across refreshes ------------------------------------------------------------------


def match_shards(previous: Sequence[Shard], current: Sequence[Shard]) -> dict[int, int]:
    """Which current shard continues which previous one: {current index: previous index}.

    A shard is what keeps its slots: the pairs sharing slots come first (a failover moves
    the slots to a node of the same shard; a resharding moves some to another shard, whose
    own primary then decides), then the same primary, then a primary that was one of the
    shard's nodes, then the most nodes in common. Each shard continues at most one.
    """
    scored = []
    for ci, c in enumerate(current):
        cslots = set(slots_of(c.slots))
        for pi, p in enumerate(previous):
            score = (
                bool(cslots) and not cslots.isdisjoint(slots_of(p.slots)),
                c.primary.id == p.primary.id,
                c.primary.id in p.node_ids,
                len(c.node_ids & p.node_ids),
            )
            if any(score):
                scored.append((score, ci, pi))
    scored.sort(key=lambda x: (x[0], -x[1], -x[2]), reverse=True)
    out: dict[int, int] = {}
    taken: set[int] = set()
    for _, ci, pi in scored:
        if ci not in out and pi not in taken:
            out[ci] = pi
            taken.add(pi)
    return out


def former_primaries(
    previous: Sequence[Shard], current: Sequence[Shard], matched: Mapping[int, int]
) -> set[int]:
    """Current shards that are only a primary on its way out: no slots, not continuing a
    shard, its node one of a shard that continues elsewhere (during a failover a node view
    can show the demoted primary as a master of its own, without slots)."""
    continued = {pi for pi in matched.values()}
    out = set()
    for ci, c in enumerate(current):
        if ci in matched or c.slots:
            continue
        if any(c.primary.id in previous[pi].node_ids for pi in continued):
            out.add(ci)
    return out


# --- the topology file ------------------------------------------------------------------------

FORMAT = 1


def _node_json(n: Node) -> dict[str, Any]:
    return {
        "id": n.id,
        "ip": n.ip,
        "port": n.port,
        "cport": n.cport,
        "hostname": n.hostname,
        "tls_port": n.tls_port,
        "flags": list(n.flags),
        "config_epoch": n.config_epoch,
        "repl_offset": n.repl_offset,
        "health": n.health,
        "pong_recv": n.pong_recv,
        "connected": n.connected,
    }


def _node_from_json(d: Mapping[str, Any]) -> Node:
    health = d.get("health", "online")
    if health not in ("online", "loading", "fail"):
        raise TopologyError(f"bad health {health!r}")
    return Node(
        id=str(d["id"]),
        ip=str(d["ip"]),
        port=int(d["port"]),
        cport=int(d.get("cport", 0)),
        hostname=str(d.get("hostname", "")),
        tls_port=int(d.get("tls_port", 0)),
        flags=tuple(d.get("flags", ())),
        config_epoch=int(d.get("config_epoch", 0)),
        repl_offset=int(d.get("repl_offset", 0)),
        health=health,
        pong_recv=int(d.get("pong_recv", 0)),
        connected=bool(d.get("connected", True)),
    )


def to_json(t: Topology) -> str:
    doc = {
        "format": FORMAT,
        "generation": t.generation,
        "server": t.server,
        "version": t.version,
        "current_epoch": t.current_epoch,
        "endpoint_type": t.endpoint_type,
        "allow_reads_when_down": t.allow_reads_when_down,
        "shards": [
            {
                "name": s.name,
                "slots": [list(r) for r in s.slots],
                "primary": _node_json(s.primary),
                "replicas": [_node_json(r) for r in s.replicas],
                "relay": _node_json(s.relay) if s.relay else None,
            }
            for s in t.shards
        ],
    }
    return json.dumps(doc, indent=1, sort_keys=False) + "\n"


def from_json(text: str | bytes) -> Topology:
    try:
        doc = json.loads(text)
        if doc.get("format") != FORMAT:
            raise TopologyError(f"unknown topology format {doc.get('format')!r}")
        shards = []
        for s in doc["shards"]:
            slots = tuple((int(a), int(b)) for a, b in s["slots"])
            for a, b in slots:
                if not 0 <= a <= b < CLUSTER_SLOTS:
                    raise TopologyError(f"bad slot range {a}-{b}")
            shards.append(
                Shard(
                    name=str(s.get("name", "")),
                    slots=slots,
                    primary=_node_from_json(s["primary"]),
                    replicas=tuple(_node_from_json(r) for r in s.get("replicas", ())),
                    relay=_node_from_json(s["relay"]) if s.get("relay") else None,
                )
            )
        endpoint_type = doc.get("endpoint_type", "ip")
        if endpoint_type not in ("ip", "hostname", "unknown-endpoint"):
            raise TopologyError(f"bad endpoint_type {endpoint_type!r}")
        return Topology(
            tuple(shards),
            server=str(doc.get("server", "redis")),
            version=str(doc.get("version", "")),
            current_epoch=int(doc.get("current_epoch", 0)),
            endpoint_type=endpoint_type,
            allow_reads_when_down=bool(doc.get("allow_reads_when_down", False)),
            generation=int(doc.get("generation", 0)),
        )
    except TopologyError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        raise TopologyError(f"unreadable topology: {e!r}") from None


def same_routing(a: Topology, b: Topology) -> bool:
    """Whether two topologies route clients the same way (generation and timestamps,
    offsets and pongs aside): what decides that the supervisor writes a new file."""
    return _routing(a) == _routing(b)


def _routing(t: Topology) -> object:
    def node(n: Node | None) -> object:
        if n is None:
            return None
        return (
            n.id,
            n.ip,
            n.port,
            n.cport,
            n.hostname,
            n.tls_port,
            n.flags,
            n.config_epoch,
            n.health,
            n.connected,
        )

    return (
        t.server,
        t.version,
        t.current_epoch,
        t.endpoint_type,
        t.allow_reads_when_down,
        tuple(
            (s.name, s.slots, node(s.primary), tuple(node(r) for r in s.replicas), node(s.relay))
            for s in t.shards
        ),
    )


def with_relays(t: Topology, relays: Mapping[int, tuple[str, Node | None]]) -> Topology:
    """`t` with shard i named and given its relay: {index: (name, relay node)}; a shard not
    in `relays` keeps no name and no relay (clients reach it at its primary)."""
    shards = []
    for i, s in enumerate(t.shards):
        name, relay = relays.get(i, ("", None))
        shards.append(replace(s, name=name, relay=relay))
    return replace(t, shards=tuple(shards))


def nodes_of(t: Topology) -> Iterable[Node]:
    for s in t.shards:
        yield s.primary
        yield from s.replicas
