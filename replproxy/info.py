"""INFO text as a replica of the master's version gives it (`genRedisInfoString`).

Sections, their order and the fields of each, in order, are those of a real idle replica of
the master's version (`replproxy.replica_defaults`, captured from real servers): redis_exporter
and Sentinel parse these lines by name and order. Every field the relay tracks gets its own
value; the rest keep the captured idle replica's value (docs/metrics.md lists which are
which). Lines that come and go as in Redis - `loading_*` while loading, `master_sync_*`
during a transfer, `master_link_down_since_seconds` while the link is down, `slaveN` per
downstream replica - are put where Redis puts them. replproxy's own fields (`replproxy_*`)
follow Redis's in their section.

This module only reads state (`StatusView`, `replproxy.interfaces`).
"""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import time
from collections.abc import Callable, Iterable
from itertools import islice
from typing import TYPE_CHECKING

from replproxy import __version__
from replproxy.config import total_system_memory
from replproxy.keyspace.internals import memory_usage
from replproxy.link.protocol import LinkState
from replproxy.probe import info_fields
from replproxy.replica_defaults import ReplicaDefaults, for_dialect

if TYPE_CHECKING:
    from replproxy.downstream.server import DownstreamReplica
    from replproxy.interfaces import StatusView as Relay

Fields = list[tuple[str, object]]

# What a freshly started Redis 7 uses before any data (`used_memory_startup`), which the
# relay shows as its base: Python's own heap is process RSS (`used_memory_rss`), not Redis's.
STARTUP_MEMORY = 880_000
# Keys whose MEMORY USAGE estimate is averaged per database for `used_memory_dataset`.
DATASET_SAMPLE_KEYS = 1000
# Keys per database the Keysizes histograms look at; past it they are scaled up from these
# (an INFO must not stop the event loop for a pass over millions of keys).
KEYSIZES_SAMPLE_KEYS = 100_000
BUILD_ID = hashlib.sha1(__version__.encode()).hexdigest()[:16]


def _human(n: float) -> str:
    """`bytesToHuman`: 1.50K, 12.34M..."""
    if n < 1024:
        return f"{int(n)}B"
    for unit, size in (("K", 1024), ("M", 1024**2), ("G", 1024**3), ("T", 1024**4)):
        if n < size * 1024:
            return f"{n / size:.2f}{unit}"
    return f"{n / 1024**5:.2f}P"


def rss_bytes() -> int:
    """The current resident set size (statm), falling back to the peak (getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def dataset_bytes(relay: Relay) -> int:
    """The dataset's estimated size: MEMORY USAGE's per-key estimate
    (`replproxy.keyspace.internals.memory_usage`), averaged over the first
    DATASET_SAMPLE_KEYS keys of each database and multiplied by its size, plus the main
    dicts' slots (8 bytes each)."""
    ks = relay.keyspace
    dialect = ks.dialect
    total = 0
    for i, d in enumerate(ks.dbs):
        if not d:
            continue
        expires = ks.expires[i]
        sample = 0
        n = 0
        for key, value in islice(d.items(), DATASET_SAMPLE_KEYS):
            sample += memory_usage(key, value, 5, dialect, key in expires)
            n += 1
        total += sample * len(d) // n + 8 * (len(d) + len(expires))
    return total


def _render(
    defaults: Iterable[tuple[str, str]],
    values: dict[str, object],
    before: dict[str, Fields] | None = None,
    after: Fields | None = None,
    drop: Iterable[str] = (),
) -> Fields:
    """The section's captured fields in order, each with `values[name]` or its idle value;
    `before[name]` inserted before that field, `after` at the end; `drop` left out."""
    out: Fields = []
    skip = set(drop)
    for name, idle in defaults:
        if before and name in before:
            out += before.pop(name)
        if name in skip:
            continue
        out.append((name, values.get(name, idle if idle != "" else 0)))
    for rest in (before or {}).values():
        out += rest
    return out + (after or [])


# ---- sections ----


def section_server(relay: Relay, d: ReplicaDefaults) -> Fields:
    now = time.time()
    uptime = int(now - relay.started_at)
    dialect = relay.keyspace.dialect
    port = relay.bound_port or relay.config.port
    values: dict[str, object] = {
        "redis_version": dialect.redis_version_text,
        "server_name": "valkey" if dialect.valkey else "redis",
        "valkey_version": dialect.version_text,
        "redis_build_id": BUILD_ID,
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "gcc_version": "0.0.0",  # what Redis shows when not built by GCC
        "process_id": os.getpid(),
        "run_id": relay.run_id,
        "tcp_port": port,
        "server_time_usec": int(now * 1_000_000),
        "uptime_in_seconds": uptime,
        "uptime_in_days": uptime // 86400,
        "lru_clock": int(now) & ((1 << 24) - 1),  # LRU_CLOCK_RESOLUTION 1000 ms
        "redis_mode": "standalone" if relay.cluster is None else "cluster",
        "server_mode": "standalone" if relay.cluster is None else "cluster",  # Valkey 8
        "executable": "replproxy",
        "config_file": "",
        "listener0": f"name=tcp,bind={relay.config.bind},port={port}",
    }
    fields = _render(d.fields("Server"), values)
    i = next(i for i, (k, _) in enumerate(fields) if k == "redis_version")
    fields.insert(i + 1, ("replproxy_version", __version__))
    return fields


def section_clients(relay: Relay, d: ReplicaDefaults) -> Fields:
    srv = relay.sessions
    watches = srv.watches
    clients = srv.clients.values()
    values: dict[str, object] = {
        "connected_clients": len(srv.clients),
        "maxclients": relay.config.maxclients,
        "client_recent_max_input_buffer": 0,
        "client_recent_max_output_buffer": max((c.out_bytes for c in clients), default=0),
        "blocked_clients": watches.blocked_clients,
        "tracking_clients": srv.tracking.tracking_clients,
        "pubsub_clients": srv.pubsub_clients,
        "watching_clients": sum(1 for c in clients if c.watched),
        "clients_in_timeout_table": watches.blocked_clients,
        "total_watched_keys": len(watches.watchers),
        "total_blocking_keys": len(watches.blocked),
    }
    return _render(d.fields("Clients"), values)


def section_memory(relay: Relay, d: ReplicaDefaults) -> Fields:
    rss = rss_bytes()
    peak_rss = max(rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    dataset = dataset_bytes(relay)
    backlog = relay.replication.backlog.histlen
    clients = relay.sessions.clients_out_bytes
    scripting = relay.sessions.scripting
    lua = scripting.memory()
    overhead = STARTUP_MEMORY + backlog + clients
    used = overhead + dataset
    system = total_system_memory()
    values: dict[str, object] = {
        "used_memory": used,
        "used_memory_human": _human(used),
        "used_memory_rss": rss,
        "used_memory_rss_human": _human(rss),
        # The peak of the estimate is not kept: it is the current figure.
        "used_memory_peak": used,
        "used_memory_peak_human": _human(used),
        "used_memory_peak_perc": "100.00%",
        "used_memory_peak_time": int(relay.started_at),
        "used_memory_overhead": overhead,
        "used_memory_startup": STARTUP_MEMORY,
        "used_memory_dataset": dataset,
        "used_memory_dataset_perc": f"{dataset * 100 / (used - STARTUP_MEMORY):.2f}%"
        if used > STARTUP_MEMORY
        else "0.00%",
        "allocator_allocated": used,
        "allocator_active": used,
        "allocator_resident": peak_rss,
        "total_system_memory": system,
        "total_system_memory_human": _human(system),
        "allocator_frag_ratio": "1.00",
        "allocator_frag_bytes": 0,
        "allocator_rss_ratio": "1.00",
        "allocator_rss_bytes": 0,
        "allocator_muzzy": 0,
        "rss_overhead_ratio": f"{rss / used:.2f}" if used else "1.00",
        "rss_overhead_bytes": rss - used,
        "mem_fragmentation_ratio": f"{rss / used:.2f}" if used else "1.00",
        "mem_fragmentation_bytes": rss - used,
        "mem_replication_backlog": backlog,
        "mem_total_replication_buffers": backlog,
        "mem_clients_slaves": sum(
            r.unsent(relay.replication.repl_offset) for r in relay.downstream_replicas
        ),
        "mem_clients_normal": clients,
        "maxmemory": 0,
        "maxmemory_human": "0B",
        "maxmemory_policy": "noeviction",
        # The relay's own Lua state (EVAL's; FCALL's has its own, left at the defaults).
        "used_memory_lua": lua,
        "used_memory_vm_eval": lua,
        "used_memory_lua_human": _human(lua),
        "number_of_cached_scripts": scripting.cached_scripts(),
    }
    return _render(d.fields("Memory"), values)


def section_persistence(relay: Relay, d: ReplicaDefaults) -> Fields:
    st = relay.link_status
    p = relay.persistence
    values: dict[str, object] = {
        "loading": 1 if p.loading or st.state is LinkState.LOADING else 0,
        "async_loading": 0,
        "rdb_changes_since_last_save": p.changes_since_last_save(),
        "rdb_bgsave_in_progress": 1 if p.bgsave_in_progress else 0,
        "rdb_last_save_time": int(p.lastsave),
        "rdb_last_bgsave_status": "ok" if p.last_bgsave_ok else "err",
        "rdb_last_bgsave_time_sec": p.last_bgsave_seconds,
        "rdb_current_bgsave_time_sec": p.current_bgsave_seconds(),
        "rdb_saves": p.saves,
        "rdb_last_load_keys_loaded": p.last_load_keys,
        "aof_enabled": 0,
    }
    after: Fields = []
    if p.loading:  # Redis appends these while loading (`genRedisInfoString`)
        total, done = p.loading_total_bytes, p.loading_loaded_bytes
        elapsed = time.time() - p.loading_started
        eta = int(elapsed * (total - done) / (done + 1)) if elapsed >= 1 else 1
        after = [
            ("loading_start_time", int(p.loading_started)),
            ("loading_total_bytes", total),
            ("loading_rdb_used_mem", 0),
            ("loading_loaded_bytes", done),
            ("loading_loaded_perc", f"{done * 100 / total if total else 0:.2f}"),
            ("loading_eta_seconds", eta),
        ]
    return _render(d.fields("Persistence"), values, after=after)


def section_stats(relay: Relay, d: ReplicaDefaults) -> Fields:
    s = relay.replication.stats
    served = relay.downstream_stats
    hub = relay.sessions
    clients = hub.stats
    pubsub = hub.pubsub
    ks = relay.keyspace
    rates = hub.rates
    values: dict[str, object] = {
        "total_connections_received": clients.total_connections,
        "total_commands_processed": hub.total_commands(),
        "instantaneous_ops_per_sec": int(rates["ops"].rate),
        "total_net_input_bytes": hub.net_input_bytes,
        "total_net_output_bytes": hub.net_output_bytes,
        "total_net_repl_input_bytes": s.net_repl_input_bytes,
        # What replproxy SERVED to its downstream replicas, as a Redis master counts them;
        # its own syncs with the upstream are the replproxy_resyncs_* metrics.
        "total_net_repl_output_bytes": served.net_output_bytes,
        "instantaneous_input_kbps": f"{rates['in'].rate / 1024:.2f}",
        "instantaneous_output_kbps": f"{rates['out'].rate / 1024:.2f}",
        "instantaneous_input_repl_kbps": f"{rates['repl_in'].rate / 1024:.2f}",
        "instantaneous_output_repl_kbps": f"{rates['repl_out'].rate / 1024:.2f}",
        "rejected_connections": clients.rejected_connections,
        "sync_full": served.sync_full,
        "sync_partial_ok": served.sync_partial_ok,
        "sync_partial_err": served.sync_partial_err,
        "expired_keys": 0,  # a replica never expires keys itself
        "evicted_keys": 0,
        "evicted_clients": clients.evicted_clients,
        "keyspace_hits": ks.stat_keyspace_hits,
        "keyspace_misses": ks.stat_keyspace_misses,
        "pubsub_channels": len(pubsub.channels),
        "pubsub_patterns": len(pubsub.patterns),
        "pubsubshard_channels": len(pubsub.shard_channels),
        # Client-side caching (replproxy.session.tracking), as `genRedisInfoString`.
        "tracking_total_keys": hub.tracking.keys(),
        "tracking_total_items": hub.tracking.total_items,
        "tracking_total_prefixes": hub.tracking.total_prefixes(),
        "total_error_replies": hub.cmdstats.total_error_replies,
        "total_reads_processed": clients.total_commands,
        "total_writes_processed": clients.total_commands,
        "client_output_buffer_limit_disconnections": clients.output_limit_disconnections,
    }
    acl = hub.acl
    if acl.dialect.info_acl_stats:
        denied = acl.denied_by_reason()
        for k, r in (("auth", "auth"), ("cmd", "command"), ("key", "key"), ("channel", "channel")):
            values[f"acl_access_denied_{k}"] = denied[r]
    return _render(d.fields("Stats"), values)


def section_replication(relay: Relay, d: ReplicaDefaults) -> Fields:
    repl = relay.replication
    st = relay.link_status
    up = relay.upstream
    now = time.monotonic()
    values: dict[str, object] = {
        "role": "slave",
        "master_host": up.host,
        "master_port": up.port,
        "master_link_status": "up" if st.up else "down",
        "master_last_io_seconds_ago": (
            int(now - st.last_io) if st.last_io is not None and st.up else -1
        ),
        "master_sync_in_progress": 1 if st.sync_in_progress else 0,
        "slave_read_repl_offset": repl.read_offset,
        "slave_repl_offset": repl.repl_offset,
        "replica_full_sync_buffer_size": 0,
        "replica_full_sync_buffer_peak": 0,
        "slave_priority": 0,  # never promote a relay (x-pipe's keeper does the same)
        "slave_read_only": 1,
        "replica_announced": 1,
        "master_failover_state": "no-failover",
        "master_replid": repl.replid,
        "master_replid2": repl.replid2,
        "master_repl_offset": repl.repl_offset,
        "second_repl_offset": repl.second_replid_offset,
        "repl_backlog_active": 1,
        "repl_backlog_size": repl.backlog.size,
        "repl_backlog_first_byte_offset": repl.backlog.first_byte_offset,
        "repl_backlog_histlen": repl.backlog.histlen,
    }
    if st.up_since is not None:
        values["master_link_up_since_seconds"] = int(now - st.up_since)
    link_lines: Fields = []
    if st.state is LinkState.TRANSFER:
        total = st.transfer_size if st.transfer_size is not None else -1
        left = total - st.transfer_read if total >= 0 else -1
        perc = st.transfer_read * 100 / total if total > 0 else 0.0
        last = int(now - st.transfer_last_io) if st.transfer_last_io else 0
        link_lines += [
            ("master_sync_total_bytes", total),
            ("master_sync_read_bytes", st.transfer_read),
            ("master_sync_left_bytes", left),
            ("master_sync_perc", f"{perc:.2f}"),
            ("master_sync_last_io_seconds_ago", last),
        ]
    drop: list[str] = []
    if not st.up:
        drop.append("master_link_up_since_seconds")
        link_lines.append(
            (
                "master_link_down_since_seconds",
                int(now - st.down_since) if st.down_since is not None else -1,
            )
        )
    names = [k for k, _ in d.fields("Replication")]
    anchor = (
        "master_link_up_since_seconds"
        if "master_link_up_since_seconds" in names
        else "slave_priority"
    )
    before: dict[str, Fields] = {anchor: link_lines} if link_lines else {}
    # `connected_slaves` and the `slaveN` lines, where the captured `connected_slaves` is.
    before.setdefault("connected_slaves", []).extend(replica_lines(relay.downstream_replicas, now))
    drop.append("connected_slaves")
    return _render(
        d.fields("Replication"), values, before, after=info_fields(relay, now), drop=drop
    )


def replica_lines(replicas: list[DownstreamReplica], now: float) -> Fields:
    """`connected_slaves` and the `slaveN:` lines of INFO replication (`lag` is seconds
    since the replica's last ACK, as Redis shows it)."""
    fields: Fields = [("connected_slaves", len(replicas))]
    for i, r in enumerate(replicas):
        fields.append(
            (
                f"slave{i}",
                f"ip={r.ip},port={r.hs.listening_port},state={r.state.value},"
                f"offset={r.input.ack_offset},lag={int(now - r.ack_time)}",
            )
        )
    return fields


def section_threads(relay: Relay, d: ReplicaDefaults) -> Fields:
    hub = relay.sessions
    n = hub.stats.total_commands
    return _render(
        d.fields("Threads"), {"io_thread_0": f"clients={len(hub.clients)},reads={n},writes={n}"}
    )


def section_cpu(relay: Relay, d: ReplicaDefaults) -> Fields:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return _render(
        d.fields("CPU"),
        {
            "used_cpu_sys": f"{me.ru_stime:.6f}",
            "used_cpu_user": f"{me.ru_utime:.6f}",
            "used_cpu_sys_children": f"{kids.ru_stime:.6f}",
            "used_cpu_user_children": f"{kids.ru_utime:.6f}",
            "used_cpu_sys_main_thread": f"{me.ru_stime:.6f}",
            "used_cpu_user_main_thread": f"{me.ru_utime:.6f}",
        },
    )


def _safe(name: bytes) -> str:
    """`getSafeInfoString`: `#`, `:` and line breaks become `_`."""
    text = name.decode("utf-8", "replace")
    for ch in "#:\n\r":
        text = text.replace(ch, "_")
    return text


def section_commandstats(relay: Relay, d: ReplicaDefaults) -> Fields:
    """The clients' commands and the master's (a replica's `call()` counts both)."""
    full = relay.keyspace.dialect.info_cmdstat_failed_calls
    stream = relay.sessions.stream_calls()
    out: Fields = []
    commands = relay.sessions.cmdstats.commands
    for name in [*commands, *(n for n in stream if n not in commands)]:
        st = commands.get(name)
        calls, usec, rejected, failed = (
            (st.calls, st.usec, st.rejected, st.failed) if st is not None else (0, 0, 0, 0)
        )
        from_master, ns = stream.get(name, (0, 0))
        calls += from_master
        usec += ns // 1000
        if not (calls or failed or rejected):
            continue
        per = usec / calls if calls else 0.0
        text = f"calls={calls},usec={usec},usec_per_call={per:.2f}"
        if full:
            text += f",rejected_calls={rejected},failed_calls={failed}"
        out.append((f"cmdstat_{_safe(name)}", text))
    return out


def section_errorstats(relay: Relay, d: ReplicaDefaults) -> Fields:
    errors = relay.sessions.cmdstats.errors
    return [(f"errorstat_{_safe(k.encode())}", f"count={errors[k]}") for k in sorted(errors)]


def _usec(ns: int) -> str:
    return f"{ns / 1000:.3f}"


def section_latencystats(relay: Relay, d: ReplicaDefaults) -> Fields:
    out: Fields = []
    for name, st in relay.sessions.cmdstats.commands.items():
        h = st.hist
        if not h.total:
            continue
        out.append(
            (
                f"latency_percentiles_usec_{_safe(name)}",
                f"p50={_usec(h.percentile(50))},p99={_usec(h.percentile(99))},"
                f"p99.9={_usec(h.percentile(99.9))}",
            )
        )
    return out


def section_keyspace(relay: Relay, d: ReplicaDefaults) -> Fields:
    ks = relay.keyspace
    subexpiry = ",subexpiry=0" if ks.dialect.info_keyspace_subexpiry else ""
    fields: Fields = []
    for i, db in enumerate(ks.dbs):
        if db:
            fields.append(
                (f"db{i}", f"keys={len(db)},expires={len(ks.expires[i])},avg_ttl=0{subexpiry}")
            )
    return fields


def _bin_label(n: int) -> str:
    """A power-of-two bin of Redis 8's key size histograms: 0, 1, 2, 4... 512, 1K, 2K..."""
    if n == 0:
        return "0"
    b = 1 << (n.bit_length() - 1)
    for unit, size in (
        ("P", 1 << 50),
        ("T", 1 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ):
        if b >= size:
            return f"{b // size}{unit}"
    return str(b)


def section_keysizes(relay: Relay, d: ReplicaDefaults) -> Fields:
    """Redis 8's per-type size histograms (string bytes; list/set/zset/hash items), made
    by a pass over the keys (Redis keeps them as keys change): over KEYSIZES_SAMPLE_KEYS
    keys in a database, from the first ones, scaled to the database's size."""
    from replproxy.keyspace.values import ZSet

    ks = relay.keyspace
    out: Fields = []
    for i, db in enumerate(ks.dbs):
        if not db:
            continue
        bins: dict[str, dict[int, int]] = {
            t: {}
            for t in ("strings_sizes", "lists_items", "sets_items", "zsets_items", "hashes_items")
        }
        sampled = 0
        for v in islice(db.values(), KEYSIZES_SAMPLE_KEYS):
            sampled += 1
            t = type(v)
            if t is bytes:
                kind = "strings_sizes"
            elif t is set:
                kind = "sets_items"
            elif isinstance(v, ZSet):
                kind = "zsets_items"
            elif isinstance(v, dict):
                kind = "hashes_items"
            elif isinstance(v, list) or t.__name__ == "ListValue":
                kind = "lists_items"
            else:
                continue
            n = len(v)  # type: ignore[arg-type]
            b = 0 if n == 0 else 1 << (n.bit_length() - 1)
            bins[kind][b] = bins[kind].get(b, 0) + 1
        scale = len(db) / sampled if sampled else 1.0
        for kind, counts in bins.items():
            if scale != 1.0:
                counts = {b: max(1, round(n * scale)) for b, n in counts.items()}
            if counts:
                out.append(
                    (
                        f"db{i}_distrib_{kind}",
                        ",".join(f"{_bin_label(b)}={counts[b]}" for b in sorted(counts)),
                    )
                )
    return out


def section_cluster(relay: Relay, d: ReplicaDefaults) -> Fields:
    return _render(d.fields("Cluster"), {"cluster_enabled": int(relay.cluster is not None)})


def _static(title: str) -> Callable[[Relay, ReplicaDefaults], Fields]:
    def build(relay: Relay, d: ReplicaDefaults) -> Fields:
        return list(d.fields(title))

    return build


BUILDERS: dict[str, Callable[[Relay, ReplicaDefaults], Fields]] = {
    "Server": section_server,
    "Clients": section_clients,
    "Memory": section_memory,
    "Persistence": section_persistence,
    "Threads": section_threads,
    "Stats": section_stats,
    "Replication": section_replication,
    "CPU": section_cpu,
    "Modules": _static("Modules"),
    "Commandstats": section_commandstats,
    "Errorstats": section_errorstats,
    "Latencystats": section_latencystats,
    "Cluster": section_cluster,
    "Keyspace": section_keyspace,
    "Keysizes": section_keysizes,
}


def _keys(title: str) -> tuple[str, ...]:
    """The INFO arguments that name a section (`module_list` / `modules` for Modules)."""
    return ("module_list", "modules") if title == "Modules" else (title.lower(),)


def info_text(relay: Relay, args: list[str]) -> str:
    """INFO [section ...]: `default` (or no argument), `all`, `everything` or section names
    (any case); unknown names give nothing."""
    dialect = relay.keyspace.dialect
    d = for_dialect(dialect)
    wanted = {a.lower() for a in args} or {"default"}
    if not dialect.info_everything:
        wanted.discard("everything")
    everything = "everything" in wanted or "all" in wanted
    chosen: list[str] = []
    for title, _ in d.sections:
        if (
            (everything and (title in d.all_sections or "everything" in wanted))
            or ("default" in wanted and title in d.default_sections)
            or any(k in wanted for k in _keys(title))
        ):
            chosen.append(title)
    parts = []
    for title in chosen:
        build = BUILDERS.get(title, _static(title))
        fields = build(relay, d)
        parts.append(f"# {title}\r\n" + "".join(f"{k}:{v}\r\n" for k, v in fields))
    return "\r\n".join(parts)
