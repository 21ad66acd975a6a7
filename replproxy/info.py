"""INFO text, section by section, in Redis's names and order (`genRedisInfoString`).

redis_exporter and Sentinel parse these lines by name and order, so the replica part of
`# Replication` follows redis 7.x field for field. This module only reads state.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from replproxy import __version__
from replproxy.link.protocol import LinkState
from replproxy.probe import info_fields

if TYPE_CHECKING:
    from replproxy.downstream.server import DownstreamReplica
    from replproxy.interfaces import StatusView as Relay



def _lines(title: str, fields: list[tuple[str, object]]) -> str:
    return f"# {title}\r\n" + "".join(f"{k}:{v}\r\n" for k, v in fields)


def section_server(relay: Relay) -> str:
    now = time.time()
    uptime = int(now - relay.started_at)
    return _lines(
        "Server",
        [
            # The master's version: redis-cli and client libraries gate features on it, and
            # the relay answers as a replica of that version. Its own is `replproxy_version`.
            ("redis_version", relay.keyspace.dialect.redis_version_text),
            ("replproxy_version", __version__),
            ("redis_mode", "standalone"),
            ("os", f"{platform.system()} {platform.release()} {platform.machine()}"),
            ("arch_bits", 64),
            ("multiplexing_api", "trio"),
            ("process_id", os.getpid()),
            ("run_id", relay.run_id),
            ("tcp_port", relay.bound_port or relay.config.port),
            ("server_time_usec", int(now * 1_000_000)),
            ("uptime_in_seconds", uptime),
            ("uptime_in_days", uptime // 86400),
            ("executable", "replproxy"),
        ],
    )


def section_clients(relay: Relay) -> str:
    srv = relay.sessions
    watches = srv.watches
    watching = sum(1 for c in srv.clients.values() if c.watched)
    return _lines(
        "Clients",
        [
            ("connected_clients", len(srv.clients)),
            ("cluster_connections", 0),
            ("maxclients", relay.config.maxclients),
            ("client_recent_max_input_buffer", 0),
            ("client_recent_max_output_buffer", 0),
            ("blocked_clients", watches.blocked_clients),
            ("tracking_clients", srv.tracking.tracking_clients),
            ("pubsub_clients", srv.pubsub_clients),
            ("watching_clients", watching),
            ("clients_in_timeout_table", watches.blocked_clients),
            ("total_watched_keys", len(watches.watchers)),
            ("total_blocking_keys", len(watches.blocked)),
        ],
    )


def _human(n: float) -> str:
    """`bytesToHuman`: 1.50K, 12.34M..."""
    for unit, size in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{int(n)}B"


def rss_bytes() -> int:
    """The current resident set size (statm), falling back to the peak (getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def section_memory(relay: Relay) -> str:
    # Python keeps no allocator total cheaply: the process's RSS stands for used_memory.
    rss = rss_bytes()
    peak = max(rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return _lines(
        "Memory",
        [
            ("used_memory", rss),
            ("used_memory_human", _human(rss)),
            ("used_memory_rss", rss),
            ("used_memory_rss_human", _human(rss)),
            ("used_memory_peak", peak),
            ("used_memory_peak_human", _human(peak)),
            ("maxmemory", 0),
            ("maxmemory_human", "0B"),
            ("maxmemory_policy", "noeviction"),
            ("mem_fragmentation_ratio", "1.00"),
            ("mem_replication_backlog", relay.replication.backlog.histlen),
            ("mem_clients_slaves", 0),
            ("mem_clients_normal", relay.sessions.clients_out_bytes),
        ],
    )


def section_persistence(relay: Relay) -> str:
    st = relay.link_status
    p = relay.persistence
    fields: list[tuple[str, object]] = [
        ("loading", 1 if p.loading or st.state is LinkState.LOADING else 0),
        ("async_loading", 0),
        ("rdb_changes_since_last_save", p.changes_since_last_save()),
        ("rdb_bgsave_in_progress", 1 if p.bgsave_in_progress else 0),
        ("rdb_last_save_time", int(p.lastsave)),
        ("rdb_last_bgsave_status", "ok" if p.last_bgsave_ok else "err"),
        ("rdb_last_bgsave_time_sec", p.last_bgsave_seconds),
        ("rdb_current_bgsave_time_sec", p.current_bgsave_seconds()),
        ("rdb_saves", p.saves),
        ("rdb_last_load_keys_loaded", p.last_load_keys),
        ("aof_enabled", 0),
    ]
    if p.loading:  # Redis appends these while loading (`genRedisInfoString`)
        total, done = p.loading_total_bytes, p.loading_loaded_bytes
        elapsed = time.time() - p.loading_started
        eta = int(elapsed * (total - done) / done) if done else 1
        fields += [
            ("loading_start_time", int(p.loading_started)),
            ("loading_total_bytes", total),
            ("loading_loaded_bytes", done),
            ("loading_loaded_perc", f"{done * 100 / total if total else 0:.2f}"),
            ("loading_eta_seconds", eta),
        ]
    return _lines("Persistence", fields)


def section_stats(relay: Relay) -> str:
    s = relay.replication.stats
    served = relay.downstream_stats
    clients = relay.sessions.stats
    pubsub = relay.sessions.pubsub
    return _lines(
        "Stats",
        [
            ("total_connections_received", clients.total_connections),
            ("total_commands_processed", clients.total_commands),
            ("rejected_connections", clients.rejected_connections),
            ("expired_keys", 0),  # a replica never expires keys itself
            ("evicted_keys", 0),
            ("keyspace_hits", 0),
            ("keyspace_misses", 0),
            ("pubsub_channels", len(pubsub.channels)),
            ("pubsub_patterns", len(pubsub.patterns)),
            ("pubsubshard_channels", len(pubsub.shard_channels)),
            # Client-side caching (replproxy.session.tracking), as `genRedisInfoString`.
            ("tracking_total_keys", relay.sessions.tracking.keys()),
            ("tracking_total_items", relay.sessions.tracking.total_items),
            ("tracking_total_prefixes", relay.sessions.tracking.total_prefixes()),
            # What replproxy SERVED to its downstream replicas, as a Redis master counts them;
            # its own syncs with the upstream are the replproxy_resyncs_* metrics.
            ("sync_full", served.sync_full),
            ("sync_partial_ok", served.sync_partial_ok),
            ("sync_partial_err", served.sync_partial_err),
            ("total_net_repl_input_bytes", s.net_repl_input_bytes),
            ("total_net_repl_output_bytes", served.net_output_bytes),
            *_acl_stats(relay),
        ],
    )


def _acl_stats(relay: Relay) -> list[tuple[str, object]]:
    """`acl_access_denied_*` (Redis 7.2+ and Valkey list them)."""
    acl = relay.sessions.acl
    if not acl.dialect.info_acl_stats:
        return []
    d = acl.denied_by_reason()
    return [(f"acl_access_denied_{k}", d[r]) for k, r in
            (("auth", "auth"), ("cmd", "command"), ("key", "key"), ("channel", "channel"))]


def section_replication(relay: Relay) -> str:
    repl = relay.replication
    st = relay.link_status
    up = relay.upstream
    now = time.monotonic()
    fields: list[tuple[str, object]] = [
        ("role", "slave"),
        ("master_host", up.host),
        ("master_port", up.port),
        ("master_link_status", "up" if st.up else "down"),
        (
            "master_last_io_seconds_ago",
            int(now - st.last_io) if st.last_io is not None and st.up else -1,
        ),
        ("master_sync_in_progress", 1 if st.sync_in_progress else 0),
        ("slave_read_repl_offset", repl.read_offset),
        ("slave_repl_offset", repl.repl_offset),
    ]
    if st.state is LinkState.TRANSFER:
        total = st.transfer_size if st.transfer_size is not None else -1
        left = total - st.transfer_read if total >= 0 else -1
        perc = st.transfer_read * 100 / total if total > 0 else 0.0
        last = int(now - st.transfer_last_io) if st.transfer_last_io else 0
        fields += [
            ("master_sync_total_bytes", total),
            ("master_sync_read_bytes", st.transfer_read),
            ("master_sync_left_bytes", left),
            ("master_sync_perc", f"{perc:.2f}"),
            ("master_sync_last_io_seconds_ago", last),
        ]
    if not st.up:
        fields.append(
            (
                "master_link_down_since_seconds",
                int(now - st.down_since) if st.down_since is not None else -1,
            )
        )
    fields += [
        ("slave_priority", 0),  # never promote a relay (x-pipe's keeper does the same)
        ("slave_read_only", 1),
        ("replica_announced", 1),
        *replica_lines(relay.downstream_replicas, now),
        ("master_failover_state", "no-failover"),
        ("master_replid", repl.replid),
        ("master_replid2", repl.replid2),
        ("master_repl_offset", repl.repl_offset),
        ("second_repl_offset", repl.second_replid_offset),
        ("repl_backlog_active", 1),
        ("repl_backlog_size", repl.backlog.size),
        ("repl_backlog_first_byte_offset", repl.backlog.first_byte_offset),
        ("repl_backlog_histlen", repl.backlog.histlen),
        *info_fields(relay, now),  # replproxy's own, after Redis's
    ]
    return _lines("Replication", fields)


def replica_lines(replicas: list[DownstreamReplica], now: float) -> list[tuple[str, object]]:
    """`connected_slaves` and the `slaveN:` lines of INFO replication (`lag` is seconds
    since the replica's last ACK, as Redis shows it)."""
    fields: list[tuple[str, object]] = [("connected_slaves", len(replicas))]
    for i, r in enumerate(replicas):
        fields.append(
            (
                f"slave{i}",
                f"ip={r.ip},port={r.hs.listening_port},state={r.state.value},"
                f"offset={r.input.ack_offset},lag={int(now - r.ack_time)}",
            )
        )
    return fields


def section_cpu(relay: Relay) -> str:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return _lines(
        "CPU",
        [
            ("used_cpu_sys", f"{me.ru_stime:.6f}"),
            ("used_cpu_user", f"{me.ru_utime:.6f}"),
            ("used_cpu_sys_children", f"{kids.ru_stime:.6f}"),
            ("used_cpu_user_children", f"{kids.ru_utime:.6f}"),
        ],
    )


def section_keyspace(relay: Relay) -> str:
    ks = relay.keyspace
    fields: list[tuple[str, object]] = []
    for i, d in enumerate(ks.dbs):
        if d:
            fields.append((f"db{i}", f"keys={len(d)},expires={len(ks.expires[i])},avg_ttl=0"))
    return _lines("Keyspace", fields)


SECTIONS: dict[str, Callable[[Relay], str]] = {
    "server": section_server,
    "clients": section_clients,
    "memory": section_memory,
    "persistence": section_persistence,
    "stats": section_stats,
    "replication": section_replication,
    "cpu": section_cpu,
    "keyspace": section_keyspace,
}
DEFAULT_SECTIONS = list(SECTIONS)


def info_text(relay: Relay, args: list[str]) -> str:
    """INFO [section ...]: `all`/`everything`/`default` or names; unknown names give nothing."""
    wanted = [a.lower() for a in args] or ["default"]
    names: list[str] = []
    for w in wanted:
        if w in ("all", "everything", "default"):
            names += DEFAULT_SECTIONS
        elif w in SECTIONS:
            names.append(w)
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return "\r\n".join(SECTIONS[n](relay) for n in seen)
