"""Pure builders: an LLMProfile in, Kubernetes manifests (plain dicts) out; no kopf, no client."""

from __future__ import annotations

from typing import Any

from sentiric_inference.engine.sizing import ModelShape

from sentiric_operator.builders.autoscaling import horizontal_autoscaler
from sentiric_operator.builders.configmap import EngineYaml, configmap, engine_config
from sentiric_operator.builders.deployment import InferenceImages, deployment
from sentiric_operator.builders.disruption import disruption_budget, wants_disruption_budget
from sentiric_operator.builders.inferencepool import inference_pool, wants_inference_pool
from sentiric_operator.builders.labels import selector_string, standard_labels
from sentiric_operator.builders.pvc import pvc
from sentiric_operator.builders.service import endpoints, headless_service, service
from sentiric_operator.builders.servicemonitor import servicemonitor
from sentiric_operator.specs import Profile

__all__ = [
    "EngineYaml",
    "InferenceImages",
    "children",
    "configmap",
    "deployment",
    "disruption_budget",
    "endpoints",
    "engine_config",
    "headless_service",
    "horizontal_autoscaler",
    "inference_pool",
    "pvc",
    "selector_string",
    "service",
    "servicemonitor",
    "standard_labels",
    "wants_disruption_budget",
    "wants_inference_pool",
]


def children(
    profile: Profile,
    *,
    images: InferenceImages,
    shape: ModelShape | None = None,
    draft: ModelShape | None = None,
    config: EngineYaml | None = None,
) -> list[dict[str, Any]]:
    """Every always-present child in apply order: config and storage before the pods using them.

    The ServiceMonitor is not included: it depends on the cluster having its CRD. `shape` is
    the model's shape once a download reported it, for the serve container's memory request
    (with `draft`, engine.draftModel's, counted too).
    engine.yaml is rendered once (or taken from `config`) for the ConfigMap and the checksum.
    """
    config = config or EngineYaml.of(profile.spec)
    return [
        configmap(profile, config),
        pvc(profile),
        service(profile),
        headless_service(profile),
        deployment(profile, images=images, shape=shape, draft=draft, config=config),
    ]
