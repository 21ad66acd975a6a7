"""Prometheus metrics, computed at scrape time from the live state (never in the hot path).

One custom collector reads `Replication`, `LinkStatus` and the keyspace on each scrape, so
lag and "seconds since" values are exact when Prometheus asks, and the stream path pays
nothing for observability. Names follow redis_exporter's where one exists (with our
`replproxy_` prefix) so dashboards and alerts translate directly; see docs/metrics.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from replproxy.cluster.metrics import ShardCollector
from replproxy.families import counter, gauge
from replproxy.link.protocol import LinkState
from replproxy.probe import SOURCES

if TYPE_CHECKING:
    from replproxy.interfaces import StatusView as Relay


class RelayCollector(Collector):
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily]:
        relay = self.relay
        repl = relay.replication
        st = relay.link_status
        now = time.monotonic()
        yield gauge(
            "master_link_up",
            "1 when the link with the master is up and streaming.",
            1 if st.up else 0,
        )
        states = gauge(
            "master_link_state",
            "Current phase of the upstream link (1 for the current one).",
            labels=["state"],
        )
        for s in LinkState:
            states.add_metric([s.value], 1 if st.state is s else 0)
        yield states
        yield gauge(
            "master_sync_in_progress",
            "1 while a full sync is being received or loaded.",
            1 if st.sync_in_progress else 0,
        )
        yield gauge(
            "master_last_io_seconds_ago",
            "Seconds since the last byte from the master (-1 before the first).",
            now - st.last_io if st.last_io is not None else -1,
        )
        yield gauge(
            "master_link_down_since_seconds",
            "Seconds the link has been down (0 when up).",
            now - st.down_since if st.down_since is not None and not st.up else 0,
        )
        yield gauge(
            "initial_sync_done",
            "1 once a first snapshot or partial resync succeeded.",
            1 if st.initial_sync_done else 0,
        )
        info = InfoMetricFamily("replproxy_replication", "Replication ids in use.")
        info.add_metric([], {"replid": repl.replid, "replid2": repl.replid2})
        yield info
        yield gauge(
            "master_repl_offset",
            "Offset of the last byte applied (INFO slave_repl_offset / master_repl_offset).",
            repl.repl_offset,
        )
        yield gauge(
            "read_repl_offset",
            "Offset of the last byte received from the master (slave_read_repl_offset).",
            repl.read_offset,
        )
        yield gauge(
            "second_repl_offset",
            "Offset up to which replid2 is valid (-1 when none).",
            repl.second_replid_offset,
        )
        yield gauge(
            "repl_lag_bytes",
            "Bytes received from the master but not yet applied (not the lag behind the "
            "master: see replproxy_master_lag_bytes).",
            repl.read_offset - repl.repl_offset,
        )
        yield from _lag_metrics(relay, now)
        yield gauge(
            "repl_backlog_first_byte_offset",
            "First offset held in the backlog.",
            repl.backlog.first_byte_offset,
        )
        yield gauge(
            "repl_backlog_histlen_bytes",
            "Bytes of history held in the backlog.",
            repl.backlog.histlen,
        )
        yield gauge("repl_backlog_size_bytes", "Configured backlog capacity.", repl.backlog.size)
        disk = getattr(repl.backlog, "disk", None)  # a TieredBacklog's disk log
        if disk is not None:
            yield gauge(
                "repl_backlog_disk_histlen_bytes",
                "Bytes of history held in the disk log (--repl-backlog-disk-size).",
                disk.histlen,
            )
            yield gauge(
                "repl_backlog_disk_size_bytes", "Configured disk log capacity.", disk.max_bytes
            )
            yield gauge(
                "repl_backlog_disk_first_byte_offset",
                "First offset held in the disk log.",
                disk.first_byte_offset,
            )
            yield counter(
                "repl_backlog_disk_write_errors",
                "Failed writes to the disk log (each time it dropped what it held).",
                disk.write_errors,
            )
        yield gauge(
            "master_sync_total_bytes",
            "Size of the snapshot being received (-1 diskless).",
            -1 if st.transfer_size is None else st.transfer_size,
        )
        yield gauge(
            "master_sync_read_bytes",
            "Snapshot bytes received in the current/last sync.",
            st.transfer_read,
        )
        stats = repl.stats
        yield counter(
            "resyncs_full", "Full resyncs done with the master (INFO sync_full).", stats.sync_full
        )
        yield counter(
            "resyncs_partial", "Partial resyncs accepted by the master.", stats.sync_partial_ok
        )
        yield counter(
            "net_repl_input_bytes", "Bytes received from the master.", stats.net_repl_input_bytes
        )
        yield counter(
            "commands_applied", "Write commands applied from the stream.", stats.commands_applied
        )
        yield counter(
            "link_connect_attempts", "Connection attempts to the master.", st.connect_attempts
        )
        yield from _downstream_metrics(relay)
        yield from _client_metrics(relay)
        keys = gauge("db_keys", "Keys per database.", labels=["db"])
        for i, d in enumerate(relay.keyspace.dbs):
            if d:
                keys.add_metric([str(i)], len(d))
        yield keys
        unsupported = counter(
            "unsupported_commands",
            "Stream commands that could not be applied.",
            labels=["command"],
        )
        for name, n in relay.keyspace.unsupported_commands.items():
            unsupported.add_metric([name], n)
        yield unsupported


def _lag_metrics(relay: Relay, now: float) -> Iterator[GaugeMetricFamily]:
    """How far behind the master the relay, and each downstream replica, is (probe.py)."""
    probe = relay.probe
    lag = probe.lag(now)
    t = probe.tracker
    source = gauge(
        "master_lag_source",
        "Which estimate the lag metrics use (1 for the current one): probe (the master's "
        "INFO, every second), ping (the master's PINGs, seconds only) or none.",
        labels=["source"],
    )
    for s in SOURCES:
        source.add_metric([s], 1 if lag.source == s else 0)
    yield source
    lag_bytes = gauge(
        "master_lag_bytes",
        "Master offset minus applied offset, from the master offset probe (absent without it).",
    )
    if lag.bytes is not None:
        lag_bytes.add_metric([], lag.bytes)
    yield lag_bytes
    lag_seconds = gauge(
        "master_lag_seconds",
        "Seconds since the master first went past the applied offset (0 when caught up).",
    )
    if lag.seconds is not None:
        lag_seconds.add_metric([], lag.seconds)
    yield lag_seconds
    yield gauge(
        "master_offset_probe_up",
        "1 when the last master offset probe answered (0 when off or failing).",
        1 if probe.enabled and probe.last_error is None and t.probed_at is not None else 0,
    )
    probed = gauge(
        "master_probed_repl_offset",
        "The master's own master_repl_offset, as the probe last read it.",
    )
    if lag.master_offset is not None:
        probed.add_metric([], lag.master_offset)
    yield probed
    yield gauge(
        "master_offset_probe_age_seconds",
        "Seconds since the master offset probe last answered (-1 never).",
        -1 if t.probed_at is None else now - t.probed_at,
    )
    for name, doc, value in (
        (
            "master_last_full_sync_timestamp_seconds",
            "Unix time of the last full sync with the master (0 none since start).",
            t.last_full_sync,
        ),
        (
            "master_last_partial_sync_timestamp_seconds",
            "Unix time of the last partial resync with the master (0 none since start).",
            t.last_partial_sync,
        ),
    ):
        yield gauge(name, doc, value or 0)
    rb = gauge(
        "downstream_replica_lag_bytes",
        "Bytes an online downstream replica has not acknowledged, behind the relay or the master.",
        labels=["replica", "behind"],
    )
    rs = gauge(
        "downstream_replica_lag_seconds",
        "Seconds an online downstream replica is behind the relay or the master.",
        labels=["replica", "behind"],
    )
    off = gauge(
        "downstream_replica_offset",
        "Offset an online downstream replica acknowledged last.",
        labels=["replica"],
    )
    ack = gauge(
        "downstream_replica_last_ack_seconds",
        "Seconds since a downstream replica's last ACK.",
        labels=["replica"],
    )
    for r in relay.downstream_replicas:
        if r.state.value != "online" or not r.psync:
            continue
        rl = probe.replica_lag(r.input.ack_offset, lag, now)
        rb.add_metric([r.name, "relay"], rl.relay_bytes)
        rs.add_metric([r.name, "relay"], rl.relay_seconds)
        if rl.master_bytes is not None:
            rb.add_metric([r.name, "master"], rl.master_bytes)
        if rl.master_seconds is not None:
            rs.add_metric([r.name, "master"], rl.master_seconds)
        off.add_metric([r.name], r.input.ack_offset)
        ack.add_metric([r.name], now - r.ack_time)
    yield from (rb, rs, off, ack)


def _downstream_metrics(relay: Relay) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """replproxy as a master: its downstream replicas and what it served them."""
    served = relay.downstream_stats
    downstream_replicas = relay.downstream_replicas
    replicas = gauge(
        "downstream_replicas",
        "Downstream replicas connected, by state (INFO connected_slaves is their sum).",
        labels=["state"],
    )
    for state in ("wait_bgsave", "send_bulk", "online"):
        replicas.add_metric([state], sum(1 for r in downstream_replicas if r.state.value == state))
    yield replicas
    offset = relay.replication.repl_offset
    yield gauge(
        "downstream_max_unsent_bytes",
        "Largest stream backlog not yet written to one downstream replica.",
        max((r.unsent(offset) for r in downstream_replicas), default=0),
    )
    for name, doc, value in (
        (
            "sync_full",
            "Full syncs served to downstream replicas (INFO sync_full).",
            served.sync_full,
        ),
        (
            "sync_partial_ok",
            "Partial resyncs accepted from downstream replicas (INFO sync_partial_ok).",
            served.sync_partial_ok,
        ),
        (
            "sync_partial_err",
            "Partial resyncs refused (not counting PSYNC ? -1; INFO sync_partial_err).",
            served.sync_partial_err,
        ),
        (
            "net_repl_output_bytes",
            "Snapshot and stream bytes sent to downstream replicas.",
            served.net_output_bytes,
        ),
        (
            "snapshots_made",
            "Fresh snapshots of the keyspace made for downstream full syncs.",
            served.snapshots_made,
        ),
        (
            "snapshots_reused",
            "Downstream full syncs served from a snapshot that existed when "
            "the replica asked (the kept upstream one or an earlier fresh one).",
            served.snapshots_reused,
        ),
        (
            "snapshot_waits",
            "Downstream full syncs that waited for a fresh snapshot (made for "
            "them, maybe shared with others).",
            served.snapshot_waits,
        ),
        (
            "full_sync_backoff",
            "Downstream full syncs held back because the same replica "
            "failed its previous ones (--repl-full-sync-backoff-max).",
            served.full_sync_backoffs,
        ),
    ):
        yield counter(f"downstream_{name}", doc, value)
    dropped = counter(
        "downstream_dropped",
        "Downstream replicas disconnected by replproxy, by reason.",
        labels=["reason"],
    )
    for reason, n in served.dropped.items():
        dropped.add_metric([reason], n)
    yield dropped


def _client_metrics(relay: Relay) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """The read-only client endpoint (INFO clients/stats under Prometheus names)."""
    srv = relay.sessions
    stats = srv.stats
    yield gauge(
        "connected_clients", "Client connections (INFO connected_clients).", len(srv.clients)
    )
    yield gauge(
        "blocked_clients",
        "Clients blocked in XREAD BLOCK (INFO blocked_clients).",
        srv.watches.blocked_clients,
    )
    yield gauge("pubsub_clients", "Clients subscribed to something.", srv.pubsub_clients)
    for name, doc, value in (
        (
            "connections_received",
            "Client connections accepted (INFO total_connections_received).",
            stats.total_connections,
        ),
        (
            "commands_processed",
            "Client commands executed (INFO total_commands_processed).",
            stats.total_commands,
        ),
        (
            "rejected_connections",
            "Connections refused at maxclients or by protected mode.",
            stats.rejected_connections,
        ),
    ):
        yield counter(name, doc, value)
    denied = counter(
        "acl_denied",
        "Refused by the ACL, by reason: auth (a failed AUTH/HELLO), "
        "command, key, channel (INFO acl_access_denied_*).",
        labels=["reason"],
    )
    for reason, n in srv.acl.denied_by_reason().items():
        denied.add_metric([reason], n)
    yield denied


def make_registry(relay: Relay) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    collector: Collector = RelayCollector(relay)
    if relay.cluster is not None:  # a `shard` label on every sample, and the cluster's own
        collector = ShardCollector(relay, collector)
    registry.register(collector)
    # process_resident_memory_bytes, process_cpu_seconds_total, open fds...: the standard
    # process metrics every Prometheus dashboard knows.
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
