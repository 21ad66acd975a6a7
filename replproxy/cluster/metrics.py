"""Metrics of a relay in cluster mode: every sample labelled with its shard, plus the
cluster endpoint's own gauges and counters.

Each relay keeps its own `/metrics` (one process per shard, so one scrape target per shard:
a relay that stops answers for its shard alone); `shard="<name>"` on every sample lets one
dashboard sum or split them. Computed at scrape time like `replproxy.metrics`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from replproxy.families import counter, gauge

if TYPE_CHECKING:
    from replproxy.interfaces import StatusView as Relay


class ShardCollector(Collector):
    """`inner`'s metrics and the cluster ones, each sample with `shard` added."""

    def __init__(self, relay: Relay, inner: Collector) -> None:
        self.relay = relay
        self.inner = inner

    def collect(self) -> Iterator[Metric]:
        node = self.relay.cluster
        assert node is not None
        shard = node.shard
        for fam in (*self.inner.collect(), *_cluster_metrics(self.relay)):
            out = Metric(fam.name, fam.documentation, fam.type, fam.unit)
            for s in fam.samples:
                out.add_sample(
                    s.name, {**s.labels, "shard": shard}, s.value, s.timestamp, s.exemplar
                )
            yield out


def _cluster_metrics(relay: Relay) -> Iterator[Metric]:
    node = relay.cluster
    assert node is not None
    view = node.view
    yield counter("cluster_redirections", "-MOVED and -ASK answered to clients.", node.moved_total)
    yield gauge(
        "cluster_topology_generation",
        "Generation of the topology in use.",
        view.topology.generation,
    )
    yield gauge(
        "cluster_topology_age_seconds",
        "Seconds since the topology in use was loaded (-1: none yet).",
        time.monotonic() - node.loaded_at if node.loaded_at is not None else -1,
    )
    yield counter("cluster_topology_load_errors", "Topology reads that failed.", node.load_errors)
    yield gauge(
        "cluster_slots",
        "Slots of this relay's shard.",
        view.my_shard.slot_count if view.my_shard is not None else 0,
    )
    yield gauge(
        "cluster_state_ok",
        "1 when every slot is served (CLUSTER INFO cluster_state).",
        1 if view.state_ok else 0,
    )
