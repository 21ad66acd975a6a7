"""Prometheus metric families under replproxy's names (`replproxy_<name>`).

The two builders every collector uses (the relay's, `replproxy.metrics`; the cluster's,
`replproxy.cluster.metrics`), apart so both can import them.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


def gauge(
    name: str, doc: str, value: float | None = None, labels: Sequence[str] | None = None
) -> GaugeMetricFamily:
    """A gauge named `replproxy_<name>`: one `value`, or `labels` for samples added after."""
    return GaugeMetricFamily(f"replproxy_{name}", doc, value=value, labels=labels)


def counter(
    name: str, doc: str, value: float | None = None, labels: Sequence[str] | None = None
) -> CounterMetricFamily:
    """A counter named `replproxy_<name>`: one `value`, or `labels` for samples added after."""
    return CounterMetricFamily(f"replproxy_{name}", doc, value=value, labels=labels)
