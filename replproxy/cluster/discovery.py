"""Reading a cluster's topology from its nodes (the supervisor's only cluster I/O).

One short connection per node asked, pipelining `INFO server`, `CLUSTER INFO`, `CLUSTER
SHARDS` (`CLUSTER SLOTS` where SHARDS is unknown: Redis 6), `CLUSTER NODES` and two `CONFIG
GET`s, parsed by `replproxy.cluster.topology`. Several nodes are asked (up to `sample` that
answer) and the view with the highest `cluster_current_epoch` wins: every failover and every
slot handed over by `CLUSTER SETSLOT ... NODE` bumps an epoch, so the freshest view has the
highest; a node that has not heard of the change yet loses.

Owns nothing between calls; never touches a relay.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import hiredis
import trio

from replproxy.cluster.topology import (
    EndpointType,
    Topology,
    TopologyError,
    build_topology,
    parse_cluster_nodes,
    parse_cluster_shards,
    parse_cluster_slots,
)
from replproxy.config import Upstream
from replproxy.resp.request import encode_command

log = logging.getLogger("replproxy.cluster.discovery")

TIMEOUT = 5.0


class DiscoveryError(Exception):
    """No node gave a usable view; the message says what each answered."""


@dataclass(frozen=True)
class NodeView:
    """What one node said, and where it was asked."""

    address: tuple[str, int]
    topology: Topology
    current_epoch: int


async def command_replies(
    address: tuple[str, int],
    commands: Sequence[Sequence[bytes | str]],
    username: str | None = None,
    password: str | None = None,
    timeout: float = TIMEOUT,
) -> list[Any]:
    """The replies to `commands` from one node, pipelined on one connection (AUTH first
    when credentials are given). Error replies come back as `hiredis.ReplyError` values."""
    argvs: list[list[bytes]] = []
    if password is not None:
        argvs.append([b"AUTH", *([username.encode()] if username else []), password.encode()])
    argvs += [[a if isinstance(a, bytes) else a.encode() for a in cmd] for cmd in commands]
    reader = hiredis.Reader()
    out: list[Any] = []
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(*address)
            async with stream:
                await stream.send_all(b"".join(encode_command(a) for a in argvs))
                while len(out) < len(argvs):
                    data = await stream.receive_some(256 * 1024)
                    if not data:
                        raise OSError(f"{address[0]}:{address[1]} closed the connection")
                    reader.feed(data)
                    while (r := reader.gets()) is not False:
                        out.append(r)
    except (trio.BrokenResourceError, trio.ClosedResourceError, hiredis.ProtocolError) as e:
        raise OSError(f"{address[0]}:{address[1]}: {e!r}") from e
    if password is not None:
        auth = out.pop(0)
        if isinstance(auth, hiredis.ReplyError):
            raise DiscoveryError(f"AUTH refused by {address[0]}:{address[1]}: {auth}")
    return out


def _info_fields(text: bytes) -> dict[str, str]:
    out = {}
    for line in text.decode("utf-8", "replace").splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k] = v.strip()
    return out


def _config_value(r: Any) -> str | None:
    if isinstance(r, list) and len(r) == 2:
        return r[1].decode("utf-8", "replace")
    return None


async def view_of(
    address: tuple[str, int], username: str | None = None, password: str | None = None
) -> NodeView:
    replies = await command_replies(
        address,
        [
            ("INFO", "server"),
            ("CLUSTER", "INFO"),
            ("CLUSTER", "SHARDS"),
            ("CLUSTER", "NODES"),
            ("CONFIG", "GET", "cluster-preferred-endpoint-type"),
            ("CONFIG", "GET", "cluster-allow-reads-when-down"),
        ],
        username,
        password,
    )
    info, cinfo, shards, nodes, endpoint, reads_down = replies
    where = f"{address[0]}:{address[1]}"
    for r in (info, cinfo, nodes):
        if isinstance(r, hiredis.ReplyError):
            raise DiscoveryError(f"{where}: {r}")
    server = _info_fields(info)
    name = "valkey" if server.get("server_name") == "valkey" else "redis"
    version = server.get("valkey_version" if name == "valkey" else "redis_version", "")
    cfields = _info_fields(cinfo)
    if isinstance(shards, hiredis.ReplyError):
        # Redis 6 has no CLUSTER SHARDS: CLUSTER SLOTS, with NODES for slot-less primaries.
        slots = (await command_replies(address, [("CLUSTER", "SLOTS")], username, password))[0]
        if isinstance(slots, hiredis.ReplyError):
            raise DiscoveryError(f"{where}: CLUSTER SLOTS: {slots}")
        entries = parse_cluster_slots(slots)
    else:
        entries = parse_cluster_shards(shards)
    etype = _config_value(endpoint) or "ip"
    if etype not in ("ip", "hostname", "unknown-endpoint"):
        etype = "ip"
    epoch = int(cfields.get("cluster_current_epoch", "0") or 0)
    topology = build_topology(
        entries,
        parse_cluster_nodes(nodes),
        server=name,
        version=version,
        current_epoch=epoch,
        endpoint_type=_endpoint_type(etype),
        allow_reads_when_down=_config_value(reads_down) == "yes",
    )
    return NodeView(address, topology, epoch)


def _endpoint_type(t: str) -> EndpointType:
    return (
        "hostname" if t == "hostname" else "unknown-endpoint" if t == "unknown-endpoint" else "ip"
    )


async def discover(candidates: Sequence[Upstream], sample: int = 3) -> Topology:
    """The freshest view among the first `sample` of `candidates` that answer (in order;
    credentials per candidate)."""
    views: list[NodeView] = []
    errors: list[str] = []
    seen: set[tuple[str, int]] = set()
    for c in candidates:
        addr = (c.host, c.port)
        if addr in seen:
            continue
        seen.add(addr)
        try:
            views.append(await view_of(addr, c.username, c.password))
        except (OSError, trio.TooSlowError, DiscoveryError, TopologyError) as e:
            errors.append(f"{c}: {e or type(e).__name__}")
            continue
        if len(views) >= sample:
            break
    if not views:
        raise DiscoveryError("no cluster node answered: " + "; ".join(errors))
    best = max(views, key=lambda v: v.current_epoch)  # the first of the highest
    return best.topology
