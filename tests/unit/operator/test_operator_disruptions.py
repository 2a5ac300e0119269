"""Safe disruptions: PodDisruptionBudget, preStop drain, grace period, topology spread."""

from __future__ import annotations

from typing import Any, cast

import pytest
from operator_samples import RecordingApi, profile, spec_dict
from sentiric_operator import builders
from sentiric_operator.builders.deployment import prestop_command
from sentiric_operator.errors import InvalidProfileError
from sentiric_operator.kubeapi import KubeApi
from sentiric_operator.reconciling import apply_children
from sentiric_operator.settings import OperatorSettings
from sentiric_operator.specs import parse_spec

IMAGES = builders.InferenceImages(cpu="cpu:1", cuda="cuda:1")


def _pod(override: dict[str, Any] | None = None) -> dict[str, Any]:
    manifest = builders.deployment(profile(override), images=IMAGES)
    pod: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return pod


def test_the_budget_allows_one_replica_down_and_never_blocks_on_unready_pods() -> None:
    p = profile({"replicas": 3})
    assert builders.wants_disruption_budget(p)
    pdb = builders.disruption_budget(p)
    assert (pdb["apiVersion"], pdb["kind"]) == ("policy/v1", "PodDisruptionBudget")
    assert pdb["metadata"]["name"] == "chat" and pdb["metadata"]["namespace"] == "ai"
    assert pdb["metadata"]["ownerReferences"][0]["kind"] == "LLMProfile"
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": "sentiric-llm",
                "app.kubernetes.io/instance": "chat",
            }
        },
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }


@pytest.mark.parametrize(("replicas", "wanted"), [(0, False), (1, False), (2, True), (8, True)])
def test_a_budget_only_with_more_than_one_replica(replicas: int, wanted: bool) -> None:
    assert builders.wants_disruption_budget(profile({"replicas": replicas})) is wanted


def test_apply_children_applies_the_budget_and_deletes_it_on_scale_down() -> None:
    api = RecordingApi()
    apply_children(cast(KubeApi, api), profile({"replicas": 2}), OperatorSettings(), {})
    assert [m["kind"] for m in api.applied].count("PodDisruptionBudget") == 1
    assert not [d for d in api.deleted if d[1] == "PodDisruptionBudget"]
    api = RecordingApi()
    apply_children(cast(KubeApi, api), profile({"replicas": 1}), OperatorSettings(), {})
    assert "PodDisruptionBudget" not in [m["kind"] for m in api.applied]
    assert ("policy/v1", "PodDisruptionBudget", "ai", "chat") in api.deleted


def test_prestop_drains_then_waits_and_the_grace_period_covers_it_all() -> None:
    pod = _pod()
    serve = pod["containers"][0]
    assert serve["lifecycle"]["preStop"] == {"exec": {"command": prestop_command(5)}}
    assert prestop_command(5) == ["/bin/sh", "-c", "kill -USR1 1 && sleep 5"]
    assert serve["command"][-2:] == ["--shutdown-grace", "25"]
    assert pod["terminationGracePeriodSeconds"] == 5 + 25 + 10


def test_the_shutdown_section_sets_delay_grace_and_period() -> None:
    pod = _pod({"shutdown": {"drainDelaySeconds": 12, "graceSeconds": 120}})
    serve = pod["containers"][0]
    assert serve["lifecycle"]["preStop"]["exec"]["command"][-1].endswith("sleep 12")
    assert serve["command"][-2:] == ["--shutdown-grace", "120"]
    assert pod["terminationGracePeriodSeconds"] == 142
    pod = _pod({"shutdown": {"graceSeconds": 30, "terminationGracePeriodSeconds": 600}})
    assert pod["terminationGracePeriodSeconds"] == 600


@pytest.mark.parametrize(
    ("shutdown", "says"),
    [
        (
            {"drainDelaySeconds": 10, "graceSeconds": 30, "terminationGracePeriodSeconds": 39},
            "at least",
        ),
        ({"graceSeconds": 0}, "spec.shutdown.graceSeconds"),
        ({"drainDelaySeconds": -1}, "spec.shutdown.drainDelaySeconds"),
        ({"drainDelaySeconds": 301}, "spec.shutdown.drainDelaySeconds"),
        ({"grace": 5}, "spec.shutdown.grace"),
    ],
)
def test_bad_shutdown_settings_name_the_field(shutdown: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidProfileError, match=says):
        parse_spec(spec_dict(shutdown=shutdown))


def test_replicas_spread_over_nodes_and_zones_as_a_preference() -> None:
    spread = _pod()["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == [
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    ]
    for constraint in spread:
        assert constraint["maxSkew"] == 1
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
        assert constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "chat"
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]
