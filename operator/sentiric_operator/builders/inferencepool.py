"""The Gateway API Inference Extension's InferencePool: the profile's pods as one pool that an
inference gateway routes to by queue and KV-cache state (docs/kubernetes.md, "Inference
gateways")."""

from __future__ import annotations

from typing import Any

from sentiric_operator.builders.labels import (
    INFERENCE,
    inference_pool_name,
    object_meta,
    selector_labels,
)
from sentiric_operator.specs import Profile

INFERENCE_POOL_GROUP_VERSION = "inference.networking.k8s.io/v1"
INFERENCE_POOL_RESOURCE = "inferencepools"
# The OpenAI-compatible HTTP port (docs/http-api.md): the one gateways forward requests to.
HTTP_PORT = 16070


def wants_inference_pool(profile: Profile) -> bool:
    return profile.spec.inference_pool.enabled


def inference_pool(profile: Profile) -> dict[str, Any]:
    spec = profile.spec.inference_pool
    body: dict[str, Any] = {
        # The pods only: the pool's selector is matched against Pods, like a Service's.
        "selector": {"matchLabels": selector_labels(profile.name)},
        "targetPorts": [{"number": HTTP_PORT}],
    }
    picker = spec.endpoint_picker
    if picker is not None:
        body["endpointPickerRef"] = {
            "name": picker.name,
            "port": {"number": picker.port},
            "failureMode": picker.failure_mode,
        }
    return {
        "apiVersion": INFERENCE_POOL_GROUP_VERSION,
        "kind": "InferencePool",
        "metadata": object_meta(profile, inference_pool_name(profile), INFERENCE),
        "spec": body,
    }
