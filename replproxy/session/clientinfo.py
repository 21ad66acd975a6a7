"""A client as CLIENT LIST / CLIENT INFO (and ACL LOG's client-info) describe it.

`catClientInfoString`, with the fields of the master's kind: Valkey 8 adds `capa`, `watch`,
`lib-name`, `lib-ver`, `tot-net-in`, `tot-net-out` and `tot-cmds`. The replication
connections (`LinkEntry`: the master link, `flags=M`, and downstream replicas, `flags=S`)
are listed with the same fields, as Redis lists its master and replica clients.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from replproxy.interfaces import LinkClient
from replproxy.session.client import ClientSession as Client


@dataclass(frozen=True)
class LinkEntry:
    """A replication connection with the client id the hub gave it (CLIENT LIST/KILL)."""

    id: int
    info: LinkClient

    @property
    def addr(self) -> str:
        return self.info.addr

    @property
    def laddr(self) -> str:
        return self.info.laddr

    @property
    def user(self) -> bytes:
        return self.info.user.encode()

    @property
    def ctime(self) -> float:
        return self.info.ctime

    @property
    def kind(self) -> bytes:
        return b"master" if self.info.flags == "M" else b"replica"


def link_line(e: LinkEntry, me: Client) -> str:
    """A replication connection's CLIENT LIST line (`catClientInfoString` of a master or
    replica client: its db, its output, `user=(superuser)` for the master link)."""
    now = time.monotonic()
    i = e.info
    return _line(
        me,
        [
            ("id", e.id),
            ("addr", i.addr),
            ("laddr", i.laddr),
            ("fd", 0),
            ("name", ""),
            ("age", int(now - i.ctime)),
            ("idle", int(now - i.last_active)),
            ("flags", i.flags),
            ("capa", ""),
            ("db", i.db),
            ("sub", 0),
            ("psub", 0),
            ("ssub", 0),
            ("multi", -1),
            ("watch", 0),
            ("qbuf", 0),
            ("qbuf-free", 0),
            ("argv-mem", 0),
            ("multi-mem", 0),
            ("rbs", 16384),
            ("rbp", 0),
            ("obl", 0),
            ("oll", 1 if i.out_bytes else 0),
            ("omem", i.out_bytes),
            ("tot-mem", 16384 + i.out_bytes),
            ("events", "r"),
            ("cmd", i.last_cmd),
            ("user", i.user),
            ("redir", -1),
            ("resp", 2),
            ("lib-name", ""),
            ("lib-ver", ""),
            ("io-thread", 0),
            ("tot-net-in", i.net_in),
            ("tot-net-out", i.net_out),
            ("tot-cmds", i.commands),
        ],
    )


# Optional fields of CLIENT LIST, and which `MasterDialect.client_list_fields` entry has them.
_OPTIONAL = {
    "laddr": "laddr",
    "argv-mem": "v6",
    "tot-mem": "v6",
    "user": "v6",
    "redir": "v6",
    "ssub": "v7",
    "multi-mem": "v7",
    "rbs": "v7",
    "rbp": "v7",
    "resp": "v7",
    "capa": "capa",
    "watch": "watch",
    "lib-name": "lib",
    "lib-ver": "lib",
    "io-thread": "io-thread",
    "tot-net-in": "tot",
    "tot-net-out": "tot",
    "tot-cmds": "tot",
}


def _line(me: Client, fields: list[tuple[str, object]]) -> str:
    """The fields the master's version shows, in its order."""
    have = me.ks.dialect.client_list_fields
    return (
        " ".join(f"{k}={v}" for k, v in fields if k not in _OPTIONAL or _OPTIONAL[k] in have) + "\n"
    )


def _s(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def client_line(c: Client, me: Client) -> str:
    """One CLIENT LIST line, with the upstream kind's fields (`catClientInfoString`)."""
    now = time.monotonic()
    # `catClientInfoString`'s order.
    flags = "O" if c.monitor else ""
    if c.subscribed:
        flags += "P"
    if c.multi is not None:
        flags += "x"
    if c.blocked:
        flags += "b"
    st = c.tracking
    if st is not None:
        flags += "t" + ("R" if st.broken_redirect else "") + ("B" if st.bcast else "")
    if c.watch_dirty:
        flags += "d"
    if c.no_evict:
        flags += "e"
    if c.no_touch:
        flags += "T"
    if c.closing:
        flags += "c"
    flags = flags or "N"
    valkey = me.ks.dialect.valkey
    return _line(
        me,
        [
            ("id", c.id),
            ("addr", c.addr),
            ("laddr", c.laddr),
            ("fd", 0),
            ("name", _s(c.name)),
            ("age", int(now - c.ctime)),
            ("idle", int(now - c.last_active)),
            ("flags", flags),
            ("capa", ""),
            ("db", c.db),
            ("sub", len(c.channels)),
            ("psub", len(c.patterns)),
            ("ssub", len(c.shard_channels)),
            # Valkey keeps the transaction state once allocated: `multi=0` after a MULTI.
            (
                "multi",
                len(c.multi) if c.multi is not None else (0 if valkey and c.used_multi else -1),
            ),
            ("watch", len(c.watched)),
            ("qbuf", 0),
            ("qbuf-free", 0),
            ("argv-mem", 0),
            ("multi-mem", 0),
            ("rbs", 16384),
            ("rbp", 0),
            ("obl", 0),
            ("oll", len(c.outbox)),
            ("omem", c.out_bytes),
            ("tot-mem", 16384 + c.out_bytes),
            ("events", "r"),
            ("cmd", _s(c.last_cmd)),
            ("user", _s(c.user)),
            ("redir", st.redirect if st is not None else -1),
            ("resp", c.proto),
            ("lib-name", _s(c.lib_name)),
            ("lib-ver", _s(c.lib_ver)),
            ("io-thread", 0),
            ("tot-net-in", c.net_in),
            ("tot-net-out", c.net_out),
            ("tot-cmds", c.commands),
        ],
    )
