"""sentiric-llm operator: reconciles LLMProfile resources into inference Deployments.

Layers call only downwards: `specs` (the spec as a typed value) -> `builders` (pure
manifests) -> `observations` + `crashes` + `statuses` (pure status from observed children)
-> `kubeapi` (the one module that calls the API) -> `reconciling` (apply_once + status input)
-> `refreshing` / `resyncing` (operator-wide status and resync tasks) -> `handlers` (kopf
wiring) -> `__main__` (the process). `.importlinter` holds the rules; docs/architecture.md,
"Layers in the operator", explains them. No finalizer: see `handlers`.
"""

from __future__ import annotations

from sentiric_operator.errors import ApiCallError, InvalidProfileError, OperatorError
from sentiric_operator.specs import Profile, ProfileSpec, parse_profile, parse_spec

__all__ = [
    "ApiCallError",
    "InvalidProfileError",
    "OperatorError",
    "Profile",
    "ProfileSpec",
    "parse_profile",
    "parse_spec",
]
