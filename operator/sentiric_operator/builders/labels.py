"""Names, labels and object metadata shared by every child of an LLMProfile."""

from __future__ import annotations

from typing import Any

from sentiric_operator.specs import Profile, ProfileSpec

APP_NAME = "sentiric-llm"
MANAGED_BY = "sentiric-operator"
# The label kopf's indexes filter on: only children this operator made are watched.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"

INFERENCE = "inference"
HEADLESS = "inference-headless"
CONFIG = "config"
MODEL_CACHE = "model-cache"


def config_map_name(profile: Profile) -> str:
    return f"{profile.name}-config"


def pvc_name(profile: Profile) -> str:
    return f"{profile.name}-model-cache"


def deployment_name(profile: Profile) -> str:
    return profile.name


def service_name(profile: Profile) -> str:
    return profile.name


def headless_service_name(profile: Profile) -> str:
    return f"{profile.name}-headless"


def service_monitor_name(profile: Profile) -> str:
    return profile.name


def disruption_budget_name(profile: Profile) -> str:
    return profile.name


def autoscaler_name(profile: Profile) -> str:
    return profile.name


def inference_pool_name(profile: Profile) -> str:
    return profile.name


def http_port_name(spec: ProfileSpec) -> str:
    """The HTTP port's name in the pod and the Services: "https" once it serves TLS, so
    whatever reads the name (a mesh, a gateway, kubectl) knows what to speak to it."""
    return "https" if spec.https else "http"


def selector_labels(profile_name: str) -> dict[str, str]:
    """The labels that pick a profile's pods; immutable in a Deployment, so never extended."""
    return {"app.kubernetes.io/name": APP_NAME, INSTANCE_LABEL: profile_name}


def selector_string(profile_name: str) -> str:
    """The same selector as a string, for `.status.selector` (the scale subresource)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(profile_name).items()))


def standard_labels(profile: Profile, component: str) -> dict[str, str]:
    """The app.kubernetes.io/* labels every child carries."""
    return {
        **selector_labels(profile.name),
        COMPONENT_LABEL: component,
        "app.kubernetes.io/part-of": APP_NAME,
        MANAGED_BY_LABEL: MANAGED_BY,
    }


def object_meta(profile: Profile, name: str, component: str) -> dict[str, Any]:
    """metadata of a child: name, namespace, labels and the controller owner reference."""
    return {
        "name": name,
        "namespace": profile.namespace,
        "labels": standard_labels(profile, component),
        "ownerReferences": [profile.owner_reference()],
    }
