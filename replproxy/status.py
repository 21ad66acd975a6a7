"""`replproxy status`: the relay's state on one screen, read from its INFO over RESP.

Talks to a running relay as any client would (redis-py, `INFO all`), so it works wherever
`redis-cli` would: no access to /metrics needed. It shows the link with the master (state,
replid, offsets), the lag behind the master, the last full and partial syncs, the backlog in
memory and on disk, the downstream replicas and the client and memory figures. `--watch`
redraws it every `--interval` seconds.

`render` is pure (INFO fields in, a rich renderable out); `show` does the I/O.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from replproxy.probe import parse_info
from replproxy.progress import human_bytes

DEFAULT_URL = "redis://127.0.0.1:6380"


class StatusError(Exception):
    """The relay could not be asked; the message says why, on one line."""


def fetch_info(url: str, timeout: float = 5.0) -> dict[str, str]:
    """`INFO all` of the server at `url`, as text fields."""
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, protocol=2
        )
    except ValueError as e:
        raise StatusError(f"bad --url {url!r}: {e}") from None
    client.response_callbacks.pop("INFO", None)  # the raw text, parsed here
    try:
        raw = client.execute_command("INFO", "all")
        info = parse_info(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))
        if "maxclients" not in info:  # INFO clients has it from Redis 6.2 (a 5.0 dialect)
            with contextlib.suppress(redis.RedisError):
                got = client.config_get("maxclients")
                if "maxclients" in got:
                    info["maxclients"] = str(got["maxclients"])
    except redis.RedisError as e:
        raise StatusError(f"cannot read INFO from {url}: {e}") from None
    finally:
        client.close()
    return info


def _kv(text: str) -> dict[str, str]:
    """`ip=...,port=...` of a slaveN / replproxy_replicaN line."""
    out = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        out[k] = v
    return out


def _int(v: str | None) -> int | None:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def _float(v: str | None) -> float | None:
    try:
        f = float(v) if v is not None else None
    except ValueError:
        return None
    return None if f is None or f < 0 else f


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    s = int(seconds)
    if s < 60:
        return f"{s}s ago"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s ago"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m ago"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    return ago(seconds).removesuffix(" ago")


def lag_text(nbytes: int | None, seconds: float | None) -> str:
    b = "?" if nbytes is None else f"{nbytes} B"
    s = "?" if seconds is None else duration(seconds)
    return f"{b}, {s}"


def _table(title: str) -> Table:
    t = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE,
        show_header=False,
        pad_edge=False,
    )
    t.add_column(style="cyan", no_wrap=True)
    t.add_column()
    return t


def replicas(info: dict[str, str]) -> Iterator[dict[str, str]]:
    """The downstream replicas: each `slaveN` line merged with its `replproxy_replicaN`."""
    for i in range(_int(info.get("connected_slaves")) or 0):
        row = _kv(info.get(f"slave{i}", ""))
        extra = _kv(info.get(f"replproxy_replica{i}", ""))
        yield {**extra, **row, "ack_offset": row.get("offset", ""), "lag": row.get("lag", "")}


def render(info: dict[str, str], now: float | None = None) -> RenderableType:
    """The status screen from the relay's INFO fields (`now`: unix time, for "ago")."""
    if now is None:
        server_usec = _int(info.get("server_time_usec"))
        now = server_usec / 1e6 if server_usec else time.time()
    version = info.get("replproxy_version")
    head = Text.assemble(
        (
            "replproxy " + version
            if version
            else "not a replproxy: redis " + info.get("redis_version", "?"),
            "bold",
        ),
        f"  run id {info.get('run_id', '?')[:8]}, port {info.get('tcp_port', '?')}, "
        f"up {duration(_float(info.get('uptime_in_seconds')))}",
    )

    link = _table("Master link")
    up = info.get("master_link_status") == "up"
    state = Text("up", style="green") if up else Text("down", style="bold red")
    if not up and info.get("master_link_down_since_seconds"):
        state.append(f" for {duration(_float(info['master_link_down_since_seconds']))}")
    if info.get("master_sync_in_progress") == "1":
        state.append(" (full sync in progress", style="yellow")
        perc = info.get("master_sync_perc")
        state.append(f": {perc}%)" if perc else ")", style="yellow")
    link.add_row("master", f"{info.get('master_host', '?')}:{info.get('master_port', '?')}")
    link.add_row("link", state)
    link.add_row("last I/O", f"{info.get('master_last_io_seconds_ago', '?')}s ago")
    link.add_row("replid", f"{info.get('master_replid', '?')}")
    replid2 = info.get("master_replid2", "")
    if replid2 and set(replid2) != {"0"}:
        link.add_row("replid2", f"{replid2} (up to offset {info.get('second_repl_offset')})")
    probed = _int(info.get("replproxy_master_probed_repl_offset"))
    link.add_row(
        "offsets",
        f"applied {info.get('slave_repl_offset', '?')}, read "
        f"{info.get('replproxy_read_repl_offset', '?')}, master "
        f"{probed if probed is not None and probed >= 0 else '?'}",
    )
    source = info.get("replproxy_master_lag_source", "?")
    lag_b = _int(info.get("replproxy_master_lag_bytes"))
    lag_s = _float(info.get("replproxy_master_lag_seconds"))
    lag = Text(lag_text(lag_b if lag_b is not None and lag_b >= 0 else None, lag_s))
    lag.append(
        f"  (source: {source}; probe {info.get('replproxy_master_offset_probe', '?')})", style="dim"
    )
    link.add_row("lag", lag)
    for label, field, count in (
        ("last full sync", "replproxy_master_last_full_sync_time", "replproxy_master_sync_full"),
        (
            "last partial sync",
            "replproxy_master_last_partial_sync_time",
            "replproxy_master_sync_partial_ok",
        ),
    ):
        t = _int(info.get(field))
        link.add_row(
            label,
            f"{ago(now - t) if t else 'none since start'} ({info.get(count, '?')} since start)",
        )

    backlog = _table("Backlog")
    hist = _int(info.get("repl_backlog_histlen")) or 0
    size = _int(info.get("repl_backlog_size")) or 0
    backlog.add_row(
        "memory",
        f"{human_bytes(hist)} of {human_bytes(size)}, from offset "
        f"{info.get('repl_backlog_first_byte_offset', '?')}",
    )
    if "replproxy_repl_backlog_disk_size" in info:
        dh = _int(info.get("replproxy_repl_backlog_disk_histlen")) or 0
        ds = _int(info.get("replproxy_repl_backlog_disk_size")) or 0
        backlog.add_row(
            "disk",
            f"{human_bytes(dh)} of {human_bytes(ds)}, from offset "
            f"{info.get('replproxy_repl_backlog_disk_first_byte_offset', '?')}",
        )
    else:
        backlog.add_row("disk", "off (--repl-backlog-disk-size 0)")

    rows = list(replicas(info))
    down = Table(
        title=f"Downstream replicas ({len(rows)})",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for col in ("address", "state", "offset", "lag (relay)", "lag (master)", "last ACK"):
        down.add_column(col, no_wrap=True)
    for r in rows:
        rb, rs = _int(r.get("lag_bytes")), _float(r.get("lag_seconds"))
        mb, ms = _int(r.get("master_lag_bytes")), _float(r.get("master_lag_seconds"))
        online = r.get("state") == "online"
        down.add_row(
            f"{r.get('ip', '?')}:{r.get('port', '?')}",
            Text(r.get("state", "?"), style="green" if online else "yellow"),
            r.get("ack_offset", "?"),
            lag_text(rb if rb is not None and rb >= 0 else None, rs) if online else "-",
            lag_text(mb if mb is not None and mb >= 0 else None, ms) if online else "-",
            ago(_float(r.get("last_ack_seconds")))
            if "last_ack_seconds" in r
            else f"{r.get('lag', '?')}s ago",
        )

    clients = _table("Clients and memory")
    clients.add_row(
        "clients",
        f"{info.get('connected_clients', '?')} connected (max {info.get('maxclients', '?')}), "
        f"{info.get('blocked_clients', '?')} blocked, {info.get('pubsub_clients', '?')} "
        f"subscribed; {info.get('total_connections_received', '?')} connections, "
        f"{info.get('total_commands_processed', '?')} commands since start",
    )
    clients.add_row(
        "memory",
        f"RSS {info.get('used_memory_rss_human', '?')} (peak "
        f"{info.get('used_memory_peak_human', '?')}), backlog "
        f"{human_bytes(_int(info.get('mem_replication_backlog')) or 0)}, client output "
        f"{human_bytes(_int(info.get('mem_clients_normal')) or 0)}",
    )
    keys = [
        f"{k}: {v.split(',')[0].removeprefix('keys=')} keys"
        for k, v in info.items()
        if k.startswith("db") and k[2:].isdigit()
    ]
    clients.add_row("keys", ", ".join(keys) or "none")
    clients.add_row("loading", "yes" if info.get("loading") == "1" else "no")
    return Group(head, link, backlog, down, clients)


def show(url: str, watch: bool, interval: float, count: int | None, console: Console) -> None:
    """Print the status once, or every `interval` seconds (`count` times, or until Ctrl-C)."""
    if not watch:
        console.print(render(fetch_info(url)))
        return
    shown = 0

    def frame() -> RenderableType:
        try:
            return render(fetch_info(url))
        except StatusError as e:  # keep watching: the relay may be restarting
            return Text(f"{time.strftime('%H:%M:%S')} {e}", style="red")

    try:
        if console.is_terminal:
            from rich.live import Live

            with Live(frame(), console=console, auto_refresh=False, screen=False) as live:
                shown = 1
                while count is None or shown < count:
                    time.sleep(interval)
                    live.update(frame(), refresh=True)
                    shown += 1
        else:  # a pipe or a file: one screen after the other
            while count is None or shown < count:
                if shown:
                    time.sleep(interval)
                    console.rule(time.strftime("%H:%M:%S"))
                console.print(frame())
                shown += 1
    except KeyboardInterrupt:
        pass


def status_command(url: str, watch: bool, interval: float, count: int | None) -> Any:
    console = Console()
    show(url, watch, interval, count, console)
