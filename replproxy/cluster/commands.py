"""CLUSTER and ASKING on the client endpoint (registered into `SERVER_COMMANDS`).

Without `--cluster-topology` they answer as a replica of a master that runs without cluster
support; with it, `ClusterNode.command` answers (see `replproxy.cluster.node`). READONLY and
READWRITE stay with the connection commands (`replproxy.session.commands`).
"""

from __future__ import annotations

from replproxy.errors import ReplyError
from replproxy.resp import reply
from replproxy.session.registry import Client, command

DISABLED = b"ERR This instance has cluster support disabled"


@command("cluster")
def cmd_cluster(c: Client, argv: list[bytes]) -> bytes:
    node = c.hub.cluster
    if node is None:
        raise ReplyError(DISABLED)
    return node.command(c, argv)


@command("asking")
def cmd_asking(c: Client, argv: list[bytes]) -> bytes:
    if c.hub.cluster is None:
        raise ReplyError(DISABLED)
    c.asking = True
    return reply.OK
