"""refreshing: a status write that makes the model's shape known re-applies the Deployment."""

from __future__ import annotations

import copy
import json
from typing import Any, cast

from operator_samples import container, pod, profile, serving, spec_dict
from sentiric_operator.builders.configmap import config_checksum, config_data
from sentiric_operator.errors import ApiCallError
from sentiric_operator.kubeapi import KubeApi
from sentiric_operator.metrics import OperatorMetrics
from sentiric_operator.observations import PodObservation
from sentiric_operator.reconciling import RESIZE_TRIGGER, Context, Indexes
from sentiric_operator.refreshing import StatusRefresher
from sentiric_operator.settings import OperatorSettings
from sentiric_operator.sizing import known_shape, memory_request

KEY = ("ai", "chat")
SPEC = spec_dict(engine={"parallel": 0, "contextSize": 0})
SHAPE_REPORT = {
    "nLayer": 24,
    "nHeadKv": 2,
    "keyLength": 64,
    "valueLength": 64,
    "nEmbd": 896,
    "nVocab": 151936,
    "nCtxTrain": 32768,
}


class _Api:
    """The two calls the refresher makes: status patches (merged here) and applies."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status
        self.applied: list[dict[str, Any]] = []

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        return False  # the PodDisruptionBudget of a one-replica profile: there is none

    def serves(self, group_version: str, resource: str) -> bool:
        return False  # a cluster without the optional CRDs (ServiceMonitor, InferencePool)

    def patch_profile_status(
        self, namespace: str, name: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        for key, value in changes.items():
            if value is None:
                self.status.pop(key, None)
            elif isinstance(value, dict) and isinstance(self.status.get(key), dict):
                merged = {**self.status[key], **value}
                self.status[key] = {k: v for k, v in merged.items() if v is not None}
            else:
                self.status[key] = value
        return {"status": copy.deepcopy(self.status)}

    def apply(self, manifest: dict[str, Any]) -> None:
        self.applied.append(manifest)


def _snapshot(status: dict[str, Any], version: str) -> dict[str, Any]:
    meta = {"name": "chat", "namespace": "ai", "uid": "u", "generation": 1}
    return {"metadata": {**meta, "resourceVersion": version}, "spec": SPEC, "status": status}


def _downloaded_pod(shape: dict[str, int] | None) -> PodObservation:
    facts: dict[str, Any] = {"sizeBytes": 491_400_032, "sha256": "ab" * 32}
    if shape is not None:
        facts["shape"] = shape
    done = container(
        "download", terminated_now=True, exit_code=0, terminated_message=json.dumps(facts)
    )
    checksum = config_checksum(config_data(profile({"engine": SPEC["engine"]}).spec))
    return pod(init=(done,), main=(serving(ready=False),), config_checksum=checksum)


async def _refresh(api: _Api, refresher: StatusRefresher, pods: list[PodObservation]) -> bool:
    indexes = Indexes(
        deployments={},
        pods={KEY: pods},
        profiles={KEY: [_snapshot(copy.deepcopy(api.status), str(len(api.applied)))]},
    )
    return await refresher.refresh(KEY, indexes)


def _context(api: _Api) -> Context:
    return Context(OperatorSettings(), cast(KubeApi, api), OperatorMetrics())


async def test_first_reported_shape_applies_the_memory_request_once() -> None:
    api = _Api({"observedGeneration": 1, "conditions": []})
    ctx = _context(api)
    refresher = StatusRefresher(ctx)
    # Downloaded by an older image: no shape, so nothing to size and nothing applied.
    assert await _refresh(api, refresher, [_downloaded_pod(None)])
    assert api.applied == [] and "plan" not in api.status
    assert await _refresh(api, refresher, [_downloaded_pod(SHAPE_REPORT)])
    (deployment,) = [m for m in api.applied if m["kind"] == "Deployment"]
    serve = deployment["spec"]["template"]["spec"]["containers"][0]
    p = profile({"engine": SPEC["engine"]})
    planned = memory_request(p.spec, known_shape(p, api.status))
    assert planned is not None and serve["resources"]["requests"]["memory"] == planned
    assert api.status["plan"]["memoryRequest"] == planned
    reconciles = ctx.metrics.registry.get_sample_value(
        "sentiric_operator_reconciles_total", {"trigger": RESIZE_TRIGGER, "outcome": "success"}
    )
    assert reconciles == 1
    # The same shape again: the status is unchanged, nothing is written or applied.
    applied = len(api.applied)
    assert not await _refresh(api, refresher, [_downloaded_pod(SHAPE_REPORT)])
    assert len(api.applied) == applied


class _RefusingApi(_Api):
    def apply(self, manifest: dict[str, Any]) -> None:
        raise ApiCallError("PATCH deployments/chat: the server is unavailable", status=503)


async def test_a_failed_resize_keeps_the_status_and_is_counted_for_the_sweep() -> None:
    api = _RefusingApi({"observedGeneration": 1, "conditions": []})
    ctx = _context(api)
    assert await _refresh(api, StatusRefresher(ctx), [_downloaded_pod(SHAPE_REPORT)])
    # The status is written all the same; the resync sweep applies the request later.
    assert api.status["model"]["shape"] == SHAPE_REPORT and "memoryRequest" in api.status["plan"]
    retries = ctx.metrics.registry.get_sample_value(
        "sentiric_operator_reconciles_total", {"trigger": RESIZE_TRIGGER, "outcome": "retry"}
    )
    assert retries == 1
