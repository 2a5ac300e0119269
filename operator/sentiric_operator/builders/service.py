"""The two Services: ClusterIP for plain clients, headless for client-side gRPC balancing."""

from __future__ import annotations

from typing import Any

from sentiric_inference.config import GRPC_PORT, HTTP_PORT

from sentiric_operator.builders.labels import (
    HEADLESS,
    INFERENCE,
    headless_service_name,
    http_port_name,
    object_meta,
    selector_labels,
    service_name,
)
from sentiric_operator.specs import Profile, ProfileSpec


def _ports(spec: ProfileSpec) -> list[dict[str, Any]]:
    http = http_port_name(spec)
    return [
        {
            "name": "grpc",
            "port": GRPC_PORT,
            "targetPort": "grpc",
            "protocol": "TCP",
            "appProtocol": "kubernetes.io/h2c",
        },
        {
            "name": http,
            "port": HTTP_PORT,
            "targetPort": http,
            "protocol": "TCP",
            # IANA service names, as Kubernetes documents for appProtocol.
            "appProtocol": http,
        },
    ]


def service(profile: Profile) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(profile, service_name(profile), INFERENCE),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(profile.name),
            "ports": _ports(profile.spec),
        },
    }


def headless_service(profile: Profile) -> dict[str, Any]:
    """One DNS A record per ready pod, so a gRPC client can round-robin its long streams."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(profile, headless_service_name(profile), HEADLESS),
        "spec": {
            "clusterIP": "None",
            "selector": selector_labels(profile.name),
            "ports": _ports(profile.spec),
        },
    }


def endpoints(profile: Profile) -> dict[str, str]:
    """The addresses clients use, as published in `.status.endpoints`."""
    host = f"{service_name(profile)}.{profile.namespace}.svc"
    return {
        "grpc": f"{host}:{GRPC_PORT}",
        "http": f"{http_port_name(profile.spec)}://{host}:{HTTP_PORT}",
        "headless": f"{headless_service_name(profile)}.{profile.namespace}.svc:{GRPC_PORT}",
        # The gRPC target a balanced client (round robin, session affinity) is given.
        "grpcBalanced": (
            f"dns:///{headless_service_name(profile)}.{profile.namespace}.svc:{GRPC_PORT}"
        ),
    }
