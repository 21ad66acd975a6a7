"""A client as CLIENT LIST / CLIENT INFO (and ACL LOG's client-info) describe it.

`catClientInfoString`, with the fields of the master's kind: Valkey 8 adds `capa`, `watch`,
`lib-name`, `lib-ver`, `tot-net-in`, `tot-net-out` and `tot-cmds`.
"""

from __future__ import annotations

import time

from replproxy.session.client import ClientSession as Client


def _s(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def client_line(c: Client, me: Client) -> str:
    """One CLIENT LIST line, with the upstream kind's fields (`catClientInfoString`)."""
    now = time.monotonic()
    flags = "O" if c.monitor else ""
    if c.multi is not None:
        flags += "x"
    if c.blocked:
        flags += "b"
    st = c.tracking
    if st is not None:
        flags += "t" + ("R" if st.broken_redirect else "") + ("B" if st.bcast else "")
    if c.subscribed:
        flags += "P"
    if c.no_evict:
        flags += "e"
    if c.no_touch:
        flags += "T"
    if c.closing:
        flags += "c"
    flags = flags or "N"
    fields = [
        ("id", c.id), ("addr", c.addr), ("laddr", c.laddr), ("fd", 0),
        ("name", _s(c.name)), ("age", int(now - c.ctime)), ("idle", int(now - c.last_active)),
        ("flags", flags),
    ]
    valkey = me.ks.dialect.valkey
    if valkey:
        fields.append(("capa", ""))
    fields += [
        ("db", c.db), ("sub", len(c.channels)), ("psub", len(c.patterns)),
        ("ssub", len(c.shard_channels)),
        # Valkey keeps the transaction state once allocated: `multi=0` after a MULTI.
        ("multi", len(c.multi) if c.multi is not None
         else (0 if valkey and c.used_multi else -1)),
    ]
    if valkey:
        fields.append(("watch", len(c.watched)))
    fields += [
        ("qbuf", 0), ("qbuf-free", 0), ("argv-mem", 0), ("multi-mem", 0), ("rbs", 16384),
        ("rbp", 0), ("obl", 0), ("oll", len(c.outbox)), ("omem", c.out_bytes),
        ("tot-mem", 16384 + c.out_bytes), ("events", "r"),
        ("cmd", _s(c.last_cmd)), ("user", _s(c.user)),
        ("redir", st.redirect if st is not None else -1), ("resp", c.proto),
    ]
    if valkey:
        fields += [("lib-name", _s(c.lib_name)), ("lib-ver", _s(c.lib_ver)),
                   ("tot-net-in", c.net_in), ("tot-net-out", c.net_out),
                   ("tot-cmds", c.commands)]
    return " ".join(f"{k}={v}" for k, v in fields) + "\n"
