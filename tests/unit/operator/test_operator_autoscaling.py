"""spec.autoscaling: the HorizontalPodAutoscaler on the profile's scale subresource."""

from __future__ import annotations

from typing import Any, cast

import pytest
from operator_samples import RecordingApi, profile, spec_dict
from sentiric_operator import builders
from sentiric_operator.builders.autoscaling import IN_FLIGHT_METRIC
from sentiric_operator.errors import InvalidProfileError
from sentiric_operator.kubeapi import KubeApi
from sentiric_operator.reconciling import apply_children
from sentiric_operator.settings import OperatorSettings
from sentiric_operator.specs import parse_spec


def test_the_autoscaler_scales_the_profile_on_requests_in_flight_per_pod() -> None:
    hpa = builders.horizontal_autoscaler(
        profile(
            {
                "engine": {"parallel": 6},
                "autoscaling": {"minReplicas": 2, "maxReplicas": 9, "scaleDownDelay": "10m"},
            }
        )
    )
    assert (hpa["apiVersion"], hpa["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    assert hpa["metadata"]["name"] == "chat"
    assert hpa["metadata"]["ownerReferences"][0]["kind"] == "LLMProfile"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "llm.sentiric.ai/v1alpha1",
        "kind": "LLMProfile",
        "name": "chat",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 9)
    assert spec["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": IN_FLIGHT_METRIC},
                # Default target: every sequence of a replica busy (engine.parallel).
                "target": {"type": "AverageValue", "averageValue": "6"},
            },
        }
    ]
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
    assert spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"autoscaling": {"maxReplicas": 3, "target": 2}}, "2"),
        ({"engine": {"parallel": 0}, "autoscaling": {"maxReplicas": 3}}, "4"),
    ],
)
def test_the_target_is_the_spec_s_own_or_a_default(override: dict[str, Any], expected: str) -> None:
    hpa = builders.horizontal_autoscaler(profile(override))
    assert hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == expected


@pytest.mark.parametrize(
    ("autoscaling", "says"),
    [
        ({"minReplicas": 3, "maxReplicas": 2}, "maxReplicas must be at least minReplicas"),
        ({"minReplicas": 1}, "spec.autoscaling.maxReplicas"),
        ({"maxReplicas": 2, "scaleDownDelay": "5 minutes"}, "spec.autoscaling.scaleDownDelay"),
        ({"maxReplicas": 2, "scaleDownDelay": "2h"}, "at most 1h"),
        ({"maxReplicas": 2, "target": 0}, "spec.autoscaling.target"),
    ],
)
def test_bad_autoscaling_names_the_field(autoscaling: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidProfileError, match=says):
        parse_spec(spec_dict(autoscaling=autoscaling))


def test_apply_children_applies_the_autoscaler_or_deletes_it() -> None:
    api = RecordingApi()
    apply_children(
        cast(KubeApi, api), profile({"autoscaling": {"maxReplicas": 4}}), OperatorSettings(), {}
    )
    assert [m["kind"] for m in api.applied].count("HorizontalPodAutoscaler") == 1
    api = RecordingApi()
    apply_children(cast(KubeApi, api), profile(), OperatorSettings(), {})
    assert "HorizontalPodAutoscaler" not in [m["kind"] for m in api.applied]
    assert ("autoscaling/v2", "HorizontalPodAutoscaler", "ai", "chat") in api.deleted
