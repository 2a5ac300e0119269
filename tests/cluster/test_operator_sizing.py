"""Automatic sizing against a real API server: the download's shape becomes status.plan and the
inference container's memory request, once, and a user's own request is left alone.

kwok runs no containers, so the test writes what the kubelet reports when `sentiric-llm
download` succeeds (the init container terminated with the facts as its termination message)
through the pod status subresource; the real operator does the rest.
"""

from __future__ import annotations

import json
import time
from typing import Any

from kubernetes import client

from .test_operator_lifecycle import (
    Kube,
    OperatorProcess,
    kube,  # noqa: F401  (fixture)
    llm_profile,
    llmprofile_crd,  # noqa: F401  (fixture)
    operator,  # noqa: F401  (fixture)
    pods_of,
)

# Qwen2.5-0.5B-Instruct Q4_K_M, the profile's model, as its GGUF header describes it.
SHAPE = {
    "nLayer": 24,
    "nHeadKv": 2,
    "keyLength": 64,
    "valueLength": 64,
    "nEmbd": 896,
    "nVocab": 151936,
    "nCtxTrain": 32768,
}
SIZE = 491_400_032


def _report_download(k: Kube, pod: str) -> None:
    """Write what the kubelet shows after the download container exited 0 with its facts."""
    body: dict[str, Any] = json.loads(
        k.cluster.kubectl("-n", k.namespace, "get", "pod", pod, "-o", "json").stdout
    )
    facts = json.dumps({"sizeBytes": SIZE, "sha256": "ab" * 32, "shape": SHAPE})
    terminated = {
        "exitCode": 0,
        "reason": "Completed",
        "message": facts,
        "startedAt": "2026-01-01T00:00:00Z",
        "finishedAt": "2026-01-01T00:00:09Z",
    }
    statuses = [
        {**c, "ready": True, "state": {"terminated": terminated}}
        for c in body["status"].get("initContainerStatuses") or []
        if c["name"] == "download"
    ]
    if not statuses:
        image = body["spec"]["initContainers"][0]["image"]
        statuses = [
            {
                "name": "download",
                "image": image,
                "imageID": "",
                "ready": True,
                "restartCount": 0,
                "state": {"terminated": terminated},
            }
        ]
    patch = {"status": {"initContainerStatuses": statuses}}
    k.cluster.kubectl(
        "-n",
        k.namespace,
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(patch),
    )


def _live_pod(k: Kube, name: str) -> str:
    (pod,) = [p.metadata.name for p in pods_of(k, name) if p.metadata.deletion_timestamp is None]
    return str(pod)


def _serve_requests(k: Kube, name: str) -> dict[str, str]:
    d = k.apps.read_namespaced_deployment(name, k.namespace)
    resources: client.V1ResourceRequirements = d.spec.template.spec.containers[0].resources
    return dict(resources.requests or {})


def test_reported_shape_sizes_status_plan_and_memory_request(
    kube: Kube,  # noqa: F811
    operator: OperatorProcess,  # noqa: F811
) -> None:
    auto = {"gpuLayers": 0, "parallel": 0, "contextSize": 0}
    kube.apply(llm_profile(kube, "sized", engine=auto))
    kube.apply(
        llm_profile(kube, "pinned", engine=auto, resources={"requests": {"memory": "1536Mi"}})
    )
    for name in ("sized", "pinned"):
        kube.wait_condition(name, "Ready", "True", "AllReplicasReady", timeout=120)
    # Before any download reported the shape: nothing to size from.
    assert "memory" not in _serve_requests(kube, "sized")
    assert "plan" not in (kube.profile("sized").get("status") or {})

    for name in ("sized", "pinned"):
        _report_download(kube, _live_pod(kube, name))

    plan = kube.cluster.wait_for(
        lambda: (kube.profile("sized").get("status") or {}).get("plan"),
        timeout=60,
        message="status.plan of sized",
    )
    status = kube.profile("sized")["status"]
    assert status["model"]["shape"] == SHAPE and status["model"]["sizeBytes"] == SIZE
    # No memory limit: the CPU caps, 8 sequences of 4096 tokens.
    assert (plan["parallel"], plan["contextSize"], plan["kvCacheType"]) == (8, 4096, "f16")
    assert plan["fits"] is True and "automatic: parallel, contextSize" in plan["summary"]
    request = plan["memoryRequest"]
    assert request.endswith("Mi") and int(request[:-2]) * 2**20 >= plan["memoryBytes"]
    kube.cluster.wait_for(
        lambda: _serve_requests(kube, "sized").get("memory") == request,
        timeout=30,
        message="the Deployment to request the plan's memory",
    )

    # The user's own request is never replaced; the plan is still shown.
    pinned = kube.cluster.wait_for(
        lambda: (kube.profile("pinned").get("status") or {}).get("plan"),
        timeout=60,
        message="status.plan of pinned",
    )
    assert "memoryRequest" not in pinned
    assert _serve_requests(kube, "pinned")["memory"] == "1536Mi"

    # One rollout to the new request; its pod (no facts of its own yet) keeps the known shape,
    # so the request holds still: no rollout loop across several resync sweeps (5 s here).
    kube.cluster.wait_for(
        lambda: (
            all(
                p.spec.containers[0].resources.requests.get("memory") == request
                for p in pods_of(kube, "sized")
                if p.metadata.deletion_timestamp is None
            )
            and len(pods_of(kube, "sized")) == 1
        ),
        timeout=120,
        message="the rollout to the requested memory",
    )
    kube.wait_condition("sized", "Ready", "True", "AllReplicasReady", timeout=120)
    generation = kube.apps.read_namespaced_deployment("sized", kube.namespace).metadata.generation
    time.sleep(12)
    after = kube.apps.read_namespaced_deployment("sized", kube.namespace).metadata.generation
    assert after == generation
    assert kube.profile("sized")["status"]["plan"] == plan
