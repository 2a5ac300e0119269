"""The prometheus-operator ServiceMonitor scraping the inference pods' /metrics."""

from __future__ import annotations

from typing import Any

from sentiric_operator.builders.labels import (
    COMPONENT_LABEL,
    INFERENCE,
    http_port_name,
    object_meta,
    selector_labels,
    service_monitor_name,
)
from sentiric_operator.specs import Profile

SERVICE_MONITOR_API_VERSION = "monitoring.coreos.com/v1"


def _endpoint(profile: Profile) -> dict[str, Any]:
    sm = profile.spec.monitoring.service_monitor
    endpoint: dict[str, Any] = {
        "port": http_port_name(profile.spec),
        "path": "/metrics",
        "interval": sm.interval,
    }
    if profile.spec.https:
        endpoint["scheme"] = "https"
        # Prometheus scrapes each pod by its IP, which a certificate issued for the
        # Service's DNS names does not hold, and the Secret need not carry the CA (ca.crt):
        # the scrape is encrypted but the target not authenticated, as the kubelet's probes.
        endpoint["tlsConfig"] = {"insecureSkipVerify": True}
    return endpoint


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
            "endpoints": [_endpoint(profile)],
        },
    }
