"""The Gateway API Inference Extension's InferencePool per profile (only where its CRD is)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from operator_samples import RecordingApi, profile, spec_dict
from sentiric_operator import builders
from sentiric_operator.errors import InvalidProfileError
from sentiric_operator.kubeapi import KubeApi
from sentiric_operator.reconciling import apply_children
from sentiric_operator.settings import OperatorSettings
from sentiric_operator.specs import parse_spec

POOLS = ("inference.networking.k8s.io/v1", "inferencepools")


def test_the_pool_selects_the_profiles_pods_on_the_http_port() -> None:
    pool = builders.inference_pool(profile())
    assert (pool["apiVersion"], pool["kind"]) == ("inference.networking.k8s.io/v1", "InferencePool")
    assert pool["metadata"]["name"] == "chat" and pool["metadata"]["namespace"] == "ai"
    # Owned by the profile: the garbage collector removes it with the profile.
    assert pool["metadata"]["ownerReferences"][0]["kind"] == "LLMProfile"
    assert pool["spec"] == {
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": "sentiric-llm",
                "app.kubernetes.io/instance": "chat",
            }
        },
        "targetPorts": [{"number": 16070}],
    }
    # The same labels the Deployment gives its pods.
    deployment = builders.deployment(profile(), images=builders.InferenceImages(cpu="c", cuda="g"))
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pool["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_an_endpoint_picker_is_named_with_its_port_and_failure_mode() -> None:
    pool = builders.inference_pool(
        profile({"inferencePool": {"endpointPicker": {"name": "chat-epp"}}})
    )
    assert pool["spec"]["endpointPickerRef"] == {
        "name": "chat-epp",
        "port": {"number": 9002},
        "failureMode": "FailClose",
    }


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ({"endpointPicker": {"port": 9002}}, "spec.inferencePool.endpointPicker.name"),
        ({"endpointPicker": {"name": "e", "port": 0}}, "spec.inferencePool.endpointPicker.port"),
        (
            {"endpointPicker": {"name": "e", "failureMode": "Maybe"}},
            "spec.inferencePool.endpointPicker.failureMode",
        ),
        ({"enabled": "yes please"}, "spec.inferencePool.enabled"),
    ],
)
def test_bad_pool_settings_name_the_field(section: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidProfileError, match=says):
        parse_spec(spec_dict(inferencePool=section))


def test_no_pool_and_no_call_for_it_where_the_crd_is_missing() -> None:
    api = RecordingApi()
    apply_children(cast(KubeApi, api), profile(), OperatorSettings(), {})
    assert "InferencePool" not in [m["kind"] for m in api.applied]
    assert not [d for d in api.deleted if d[1] == "InferencePool"]


def test_the_pool_is_applied_where_the_crd_is_and_deleted_when_switched_off() -> None:
    api = RecordingApi(POOLS)
    apply_children(cast(KubeApi, api), profile(), OperatorSettings(), {})
    assert [m["kind"] for m in api.applied].count("InferencePool") == 1
    api = RecordingApi(POOLS)
    apply_children(
        cast(KubeApi, api), profile({"inferencePool": {"enabled": False}}), OperatorSettings(), {}
    )
    assert "InferencePool" not in [m["kind"] for m in api.applied]
    assert ("inference.networking.k8s.io/v1", "InferencePool", "ai", "chat") in api.deleted
