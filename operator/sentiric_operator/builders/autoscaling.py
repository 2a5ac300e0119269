"""The HorizontalPodAutoscaler: replicas follow requests in flight per pod.

It scales the LLMProfile itself (its scale subresource), so `spec.replicas` stays the one
place the replica count lives and the operator carries it to the Deployment. The metric is
per pod, served by a custom-metrics adapter from the pods' own gauges (the chart's
prometheus-adapter rule: running sequences plus waiting requests).
"""

from __future__ import annotations

from typing import Any

from sentiric_operator.builders.labels import INFERENCE, autoscaler_name, object_meta
from sentiric_operator.specs import API_VERSION, KIND, Profile, autoscaling_target

HPA_API_VERSION = "autoscaling/v2"
# The custom metric the adapter serves: sentiric_llm_sequences_active + queue_depth per pod.
IN_FLIGHT_METRIC = "sentiric_llm_requests_in_flight"


def horizontal_autoscaler(profile: Profile) -> dict[str, Any]:
    scaling = profile.spec.autoscaling
    if scaling is None:
        raise ValueError("the profile has no spec.autoscaling")
    target = autoscaling_target(profile.spec)
    return {
        "apiVersion": HPA_API_VERSION,
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(profile, autoscaler_name(profile), INFERENCE),
        "spec": {
            "scaleTargetRef": {"apiVersion": API_VERSION, "kind": KIND, "name": profile.name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": IN_FLIGHT_METRIC},
                        "target": {"type": "AverageValue", "averageValue": str(target)},
                    },
                }
            ],
            "behavior": {
                # Up at once (a queue is growing now); down one pod a minute, and only after
                # load stayed low for scaleDownDelay, since a new pod loads the model again.
                "scaleUp": {"stabilizationWindowSeconds": 0},
                "scaleDown": {
                    "stabilizationWindowSeconds": scaling.scale_down_seconds,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                },
            },
        },
    }
