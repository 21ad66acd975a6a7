"""Prometheus metrics, computed at scrape time from the live state (never in the hot path).

One custom collector reads `Replication`, `LinkStatus` and the keyspace on each scrape, so
lag and "seconds since" values are exact when Prometheus asks, and the stream path pays
nothing for observability. Names follow redis_exporter's where one exists (with our
`replproxy_` prefix) so dashboards and alerts translate directly; see docs/metrics.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from replproxy.link.protocol import LinkState

if TYPE_CHECKING:
    from replproxy.app import Relay


def gauge(name: str, doc: str, value: float | None = None,
          labels: Sequence[str] | None = None) -> GaugeMetricFamily:
    """A gauge named `replproxy_<name>`: one `value`, or `labels` for samples added after."""
    return GaugeMetricFamily(f"replproxy_{name}", doc, value=value, labels=labels)


def counter(name: str, doc: str, value: float | None = None,
            labels: Sequence[str] | None = None) -> CounterMetricFamily:
    """A counter named `replproxy_<name>`: one `value`, or `labels` for samples added after."""
    return CounterMetricFamily(f"replproxy_{name}", doc, value=value, labels=labels)


class RelayCollector(Collector):
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily]:
        relay = self.relay
        repl = relay.replication
        st = relay.link.status
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
            "Bytes received from the master but not yet applied.",
            repl.read_offset - repl.repl_offset,
        )
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


def _downstream_metrics(relay: Relay) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """replproxy as a master: its downstream replicas and what it served them."""
    ds = relay.downstream
    served = ds.stats
    replicas = gauge(
        "downstream_replicas",
        "Downstream replicas connected, by state (INFO connected_slaves is their sum).",
        labels=["state"],
    )
    for state in ("wait_bgsave", "send_bulk", "online"):
        replicas.add_metric([state], sum(1 for r in ds.replicas if r.state.value == state))
    yield replicas
    offset = relay.replication.repl_offset
    yield gauge(
        "downstream_max_unsent_bytes",
        "Largest stream backlog not yet written to one downstream replica.",
        max((r.unsent(offset) for r in ds.replicas), default=0),
    )
    for name, doc, value in (
        ("sync_full", "Full syncs served to downstream replicas (INFO sync_full).",
         served.sync_full),
        ("sync_partial_ok", "Partial resyncs accepted from downstream replicas "
         "(INFO sync_partial_ok).", served.sync_partial_ok),
        ("sync_partial_err", "Partial resyncs refused (not counting PSYNC ? -1; "
         "INFO sync_partial_err).", served.sync_partial_err),
        ("net_repl_output_bytes", "Snapshot and stream bytes sent to downstream replicas.",
         served.net_output_bytes),
        ("snapshots_made", "Fresh snapshots of the keyspace made for downstream full syncs.",
         served.snapshots_made),
        ("snapshots_reused", "Downstream full syncs served from an existing snapshot.",
         served.snapshots_reused),
    ):
        yield counter(f"downstream_{name}", doc, value)
    dropped = counter(
        "downstream_dropped",
        "Downstream replicas disconnected by replproxy, by reason.",
        labels=["reason"],
    )
    for reason, n in ds.stats.dropped.items():
        dropped.add_metric([reason], n)
    yield dropped


def _client_metrics(relay: Relay) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """The read-only client endpoint (INFO clients/stats under Prometheus names)."""
    srv = relay.resp_server
    yield gauge("connected_clients", "Client connections (INFO connected_clients).",
                relay.connected_clients)
    yield gauge("blocked_clients", "Clients blocked in XREAD BLOCK (INFO blocked_clients).",
                srv.blocked_clients)
    yield gauge("pubsub_clients", "Clients subscribed to something.", srv.pubsub_clients)
    for name, doc, value in (
        ("connections_received", "Client connections accepted (INFO "
         "total_connections_received).", relay.total_connections),
        ("commands_processed", "Client commands executed (INFO total_commands_processed).",
         relay.total_commands),
        ("rejected_connections", "Connections refused at maxclients.",
         srv.rejected_connections),
    ):
        yield counter(name, doc, value)


def make_registry(relay: Relay) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    collector: Collector = RelayCollector(relay)
    if relay.cluster is not None:  # a `shard` label on every sample, and the cluster's own
        from replproxy.cluster.metrics import ShardCollector

        collector = ShardCollector(relay, collector)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
