"""The PodDisruptionBudget: a drain or an upgrade of nodes takes one replica at a time."""

from __future__ import annotations

from typing import Any

from sentiric_operator.builders.labels import (
    INFERENCE,
    disruption_budget_name,
    object_meta,
    selector_labels,
)
from sentiric_operator.specs import Profile

PDB_API_VERSION = "policy/v1"


def wants_disruption_budget(profile: Profile) -> bool:
    """Only with more than one replica: a budget over one pod would block every node drain."""
    return profile.spec.replicas > 1


def disruption_budget(profile: Profile) -> dict[str, Any]:
    return {
        "apiVersion": PDB_API_VERSION,
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(profile, disruption_budget_name(profile), INFERENCE),
        "spec": {
            # maxUnavailable (not minAvailable) follows replicas as they scale.
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(profile.name)},
            # A pod that is not ready (loading, crash-looping) may be evicted even when the
            # budget is spent, so a broken replica never blocks a node drain.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
