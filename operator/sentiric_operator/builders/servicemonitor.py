"""The prometheus-operator ServiceMonitor scraping the inference pods' /metrics."""

from __future__ import annotations

from typing import Any

from sentiric_operator.builders.labels import (
    COMPONENT_LABEL,
    INFERENCE,
    object_meta,
    selector_labels,
    service_monitor_name,
)
from sentiric_operator.specs import Profile

SERVICE_MONITOR_API_VERSION = "monitoring.coreos.com/v1"


def servicemonitor(profile: Profile) -> dict[str, Any]:
    sm = profile.spec.monitoring.service_monitor
    meta = object_meta(profile, service_monitor_name(profile), INFERENCE)
    # User labels first: a Prometheus selects on them, but they must not override ours.
    meta["labels"] = {**sm.labels, **meta["labels"]}
    return {
        "apiVersion": SERVICE_MONITOR_API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": meta,
        "spec": {
            # Only the ClusterIP Service: selecting the headless one too would scrape twice.
            "selector": {
                "matchLabels": {**selector_labels(profile.name), COMPONENT_LABEL: INFERENCE}
            },
            "namespaceSelector": {"matchNames": [profile.namespace]},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": sm.interval}],
        },
    }
