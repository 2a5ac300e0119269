"""Sample LLMProfile specs and observed children for the operator's unit tests."""

from __future__ import annotations

import copy
from typing import Any

from sentiric_operator.observations import ContainerObservation, PodObservation
from sentiric_operator.specs import Profile, parse_spec

MINIMAL_SPEC: dict[str, Any] = {
    "model": {
        "huggingFace": {
            "repo": "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
            "file": "qwen2.5-0.5b-instruct-q4_k_m.gguf",
        }
    }
}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def spec_dict(**override: Any) -> dict[str, Any]:
    return merge(MINIMAL_SPEC, override)


def profile(
    override: dict[str, Any] | None = None,
    *,
    name: str = "chat",
    namespace: str = "ai",
    generation: int = 1,
) -> Profile:
    return Profile(
        name=name,
        namespace=namespace,
        uid="0b7c3c1e-5f7a-4b53-9a51-0d5c2a0e1f00",
        generation=generation,
        spec=parse_spec(merge(MINIMAL_SPEC, override or {})),
    )


def container(name: str, **fields: Any) -> ContainerObservation:
    return ContainerObservation(name=name, **fields)


def downloaded() -> ContainerObservation:
    return container("download", terminated_now=True, exit_code=0, terminated_reason="Completed")


def serving(ready: bool = True, **fields: Any) -> ContainerObservation:
    return container("inference", running=True, ready=ready, **fields)


def pod(
    name: str = "chat-abc",
    *,
    init: tuple[ContainerObservation, ...] = (),
    main: tuple[ContainerObservation, ...] = (),
    **fields: Any,
) -> PodObservation:
    return PodObservation(name=name, init_containers=init, containers=main, **fields)


class RecordingApi:
    """Just enough of KubeApi for apply_children: records applies and deletes, and serves
    the optional (group version, resource) pairs it is given (none: a cluster without the
    ServiceMonitor and InferencePool CRDs)."""

    def __init__(self, *served: tuple[str, str]) -> None:
        self.served = set(served)
        self.applied: list[dict[str, Any]] = []
        self.deleted: list[tuple[str, str, str, str]] = []

    def apply(self, manifest: dict[str, Any]) -> None:
        self.applied.append(manifest)

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self.deleted.append((api_version, kind, namespace, name))
        return True

    def serves(self, group_version: str, resource: str) -> bool:
        return (group_version, resource) in self.served
