"""reconciling: the snapshot in kopf's index, the apply outcome read back, the images applied."""

from __future__ import annotations

import importlib
from typing import Any, cast

import pytest
from operator_samples import RecordingApi, spec_dict
from sentiric_operator.errors import ApiCallError
from sentiric_operator.kubeapi import KubeApi
from sentiric_operator.metrics import OperatorMetrics
from sentiric_operator.reconciling import (
    Applied,
    Context,
    applied_from,
    apply_children,
    apply_once,
    planned_request,
    profile_snapshot,
    sizing_changed,
)
from sentiric_operator.settings import OperatorSettings
from sentiric_operator.sizing import known_shape, memory_request, parse_quantity
from sentiric_operator.specs import parse_profile
from sentiric_operator.statuses import Monitoring

# The module, not the `configmap` builder function that `builders` re-exports under its name.
configmap_module = importlib.import_module("sentiric_operator.builders.configmap")


def _body() -> dict[str, Any]:
    return {
        "apiVersion": "llm.sentiric.ai/v1alpha1",
        "kind": "LLMProfile",
        "metadata": {
            "name": "chat",
            "namespace": "ai",
            "uid": "u-1",
            "generation": 3,
            "resourceVersion": "42",
            "annotations": {"llm.sentiric.ai/last-handled-configuration": "{}"},
            "managedFields": [{"manager": "kubectl"}],
            "finalizers": ["example.com/x"],
        },
        "spec": spec_dict(),
        "status": {"observedGeneration": 3, "conditions": []},
    }


def test_snapshot_keeps_what_status_and_sweep_read_and_drops_the_bulk() -> None:
    body = _body()
    snap = profile_snapshot(body)
    assert snap["metadata"] == {
        "name": "chat",
        "namespace": "ai",
        "uid": "u-1",
        "generation": 3,
        "resourceVersion": "42",
    }
    assert snap["status"] == body["status"]
    assert parse_profile(snap) == parse_profile(body)
    # A copy: later changes to kopf's body do not leak into the index.
    body["spec"]["model"]["huggingFace"]["file"] = "other.gguf"
    assert snap["spec"]["model"]["huggingFace"]["file"] != "other.gguf"


def test_snapshot_of_a_terminating_profile_keeps_its_deletion_timestamp() -> None:
    body = _body()
    body["metadata"]["deletionTimestamp"] = "2026-01-02T03:04:05Z"
    assert profile_snapshot(body)["metadata"]["deletionTimestamp"] == "2026-01-02T03:04:05Z"


def _cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def test_applied_from_reads_monitoring_and_apply_failure_back() -> None:
    assert applied_from({}) == Applied(Monitoring.NOT_REQUESTED, None)
    applied = applied_from(
        {
            "conditions": [
                _cond("Ready", "False", "ApplyFailed", "PATCH ...: forbidden"),
                _cond("Monitoring", "True", "ServiceMonitorApplied"),
            ]
        }
    )
    assert applied == Applied(Monitoring.APPLIED, "PATCH ...: forbidden")
    missing = applied_from({"conditions": [_cond("Monitoring", "False", "CRDMissing")]})
    assert missing == Applied(Monitoring.CRD_MISSING, None)
    ready = applied_from({"conditions": [_cond("Ready", "True", "AllReplicasReady", "ok")]})
    assert ready.error is None


@pytest.mark.parametrize(("gpu", "expected"), [(0, "cpu:9"), (1, "cuda:9")])
def test_apply_children_takes_both_default_images_from_the_settings(
    gpu: int, expected: str
) -> None:
    api = RecordingApi()
    settings = OperatorSettings(inference_image="cpu:9", inference_image_cuda="cuda:9")
    profile = parse_profile({**_body(), "spec": spec_dict(resources={"gpu": gpu})})
    apply_children(cast(KubeApi, api), profile, settings, {})
    (deployment,) = [m for m in api.applied if m["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert {c["image"] for c in (*pod["initContainers"], *pod["containers"])} == {expected}


def _model_status(file: str) -> dict[str, Any]:
    shape = {
        "nLayer": 24,
        "nHeadKv": 2,
        "keyLength": 64,
        "valueLength": 64,
        "nEmbd": 896,
        "nVocab": 151936,
        "nCtxTrain": 32768,
    }
    hf = spec_dict()["model"]["huggingFace"]
    return {
        "model": {
            "repo": hf["repo"],
            "file": file,
            "revision": "main",
            "sizeBytes": 491_400_032,
            "shape": shape,
        }
    }


@pytest.mark.parametrize(
    ("file", "requested"),
    [(spec_dict()["model"]["huggingFace"]["file"], True), ("an-earlier-model.gguf", False)],
    ids=["current model", "previous model"],
)
def test_apply_children_sizes_the_memory_request_from_the_status_shape(
    file: str, requested: bool
) -> None:
    api = RecordingApi()
    profile = parse_profile(_body())
    apply_children(cast(KubeApi, api), profile, OperatorSettings(), _model_status(file))
    (deployment,) = [m for m in api.applied if m["kind"] == "Deployment"]
    serve = deployment["spec"]["template"]["spec"]["containers"][0]
    memory = serve["resources"].get("requests", {}).get("memory")
    assert (memory is not None) is requested
    if requested:
        assert memory == memory_request(profile.spec, known_shape(profile, _model_status(file)))


def test_apply_children_counts_a_reported_draft_model_in_the_memory_request() -> None:
    draft_hub = {"repo": "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "file": "draft.gguf"}
    body = _body()
    body["spec"] = {
        **body["spec"],
        "engine": {"draftTokens": 4, "draftModel": {"huggingFace": draft_hub}},
    }
    profile = parse_profile(body)
    status = _model_status(spec_dict()["model"]["huggingFace"]["file"])
    with_draft = {
        "model": {
            **status["model"],
            "draft": {
                **draft_hub,
                "revision": "main",
                "sizeBytes": 491_400_032,
                "shape": status["model"]["shape"],
            },
        }
    }

    def requested(known: dict[str, Any]) -> str:
        api = RecordingApi()
        apply_children(cast(KubeApi, api), profile, OperatorSettings(), known)
        (deployment,) = [m for m in api.applied if m["kind"] == "Deployment"]
        memory: str = deployment["spec"]["template"]["spec"]["containers"][0]["resources"][
            "requests"
        ]["memory"]
        return memory

    assert requested(with_draft) == planned_request(profile, with_draft)
    assert parse_quantity(requested(with_draft)) > parse_quantity(requested(status)) + 491_400_032
    assert sizing_changed(profile, status, with_draft)


class _RefusingApi(RecordingApi):
    """The API server refusing every apply with `status`."""

    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status

    def apply(self, manifest: dict[str, Any]) -> None:
        raise ApiCallError(f"PATCH {manifest['kind']}: refused", status=self.status)


def _count(metrics: OperatorMetrics, trigger: str, outcome: str) -> float | None:
    return metrics.registry.get_sample_value(
        "sentiric_operator_reconciles_total", {"trigger": trigger, "outcome": outcome}
    )


@pytest.mark.parametrize(
    ("status", "outcome"), [(None, "success"), (503, "retry"), (409, "retry"), (422, "failed")]
)
def test_apply_once_classifies_and_counts_every_apply_the_same_way(
    status: int | None, outcome: str
) -> None:
    api = RecordingApi() if status is None else _RefusingApi(status)
    ctx = Context(OperatorSettings(), cast(KubeApi, api), OperatorMetrics())
    previous = {"conditions": [_cond("Monitoring", "True", "ServiceMonitorApplied")]}
    attempt = apply_once(ctx, "resync", parse_profile(_body()), previous)
    assert attempt.outcome == outcome
    assert _count(ctx.metrics, "resync", outcome) == 1
    duration = ctx.metrics.registry.get_sample_value(
        "sentiric_operator_reconcile_duration_seconds_count", {"trigger": "resync"}
    )
    assert duration == 1
    if status is None:
        assert attempt.failure is None and attempt.applied == Applied(Monitoring.NOT_REQUESTED)
    else:
        # A failed apply keeps what the status last said about monitoring, and names the call.
        assert attempt.failure is not None and attempt.failure.status == status
        assert attempt.applied == Applied(Monitoring.APPLIED, "PATCH ConfigMap: refused")


def test_engine_yaml_is_rendered_once_for_the_configmap_and_the_pods_checksum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renders: list[object] = []
    real = configmap_module.dump_config

    def counting(config: Any) -> str:
        renders.append(config)
        return real(config)

    monkeypatch.setattr(configmap_module, "dump_config", counting)
    api = RecordingApi()
    apply_children(cast(KubeApi, api), parse_profile(_body()), OperatorSettings(), {})
    assert len(renders) == 1
    by_kind = {m["kind"]: m for m in api.applied}
    data = by_kind["ConfigMap"]["data"]
    annotations = by_kind["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations[configmap_module.CHECKSUM_ANNOTATION] == configmap_module.config_checksum(
        data
    )
