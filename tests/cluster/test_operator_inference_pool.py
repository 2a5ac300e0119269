"""The InferencePool per profile, against the Inference Extension's real CRD (from its Go
module, hack/cluster-build.sh): absent without the CRD, created once it is installed (by the
resync sweep, without a restart), removed when switched off and with the profile."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import INFERENCEPOOL_CRD, Cluster
from .test_operator_lifecycle import (
    Kube,
    OperatorProcess,
    exists,
    kube,  # noqa: F401  (fixture)
    llm_profile,
    llmprofile_crd,  # noqa: F401  (fixture)
    operator,  # noqa: F401  (fixture)
)

GROUP, VERSION, PLURAL = "inference.networking.k8s.io", "v1", "inferencepools"


@pytest.fixture
def inferencepool_crd_state(cluster: Cluster) -> Iterator[None]:
    """Restore the InferencePool CRD to how the session had it."""
    had = cluster.kubectl("get", "crd", INFERENCEPOOL_CRD, check=False).returncode == 0
    try:
        yield
    finally:
        if had:
            cluster.install_inferencepool_crd()
        else:
            cluster.remove_crd(INFERENCEPOOL_CRD)


def _pool(k8s: Kube, name: str) -> dict[str, Any]:
    pool: dict[str, Any] = k8s.custom.get_namespaced_custom_object(
        GROUP, VERSION, k8s.namespace, PLURAL, name
    )
    return pool


def test_inference_pool_follows_its_crd_the_switch_and_the_profile(
    cluster: Cluster,
    kube: Kube,  # noqa: F811
    operator: OperatorProcess,  # noqa: F811
    inferencepool_crd_state: None,
) -> None:
    ns = kube.namespace
    cluster.remove_crd(INFERENCEPOOL_CRD)
    kube.apply(llm_profile(kube, "pooled", inferencePool={"endpointPicker": {"name": "epp"}}))
    # Without the CRD the profile serves as ever.
    kube.wait_condition("pooled", "Ready", "True", timeout=120)

    cluster.install_inferencepool_crd()
    cluster.wait_for(
        lambda: exists(lambda: _pool(kube, "pooled")),
        timeout=90,
        message="the InferencePool once its CRD is installed",
    )
    pool = _pool(kube, "pooled")
    assert pool["spec"]["targetPorts"] == [{"number": 16070}]
    assert pool["spec"]["endpointPickerRef"]["name"] == "epp"
    assert pool["metadata"]["ownerReferences"][0]["name"] == "pooled"
    # The selector picks exactly the profile's pods.
    selector = ",".join(f"{k}={v}" for k, v in pool["spec"]["selector"]["matchLabels"].items())
    pods = kube.core.list_namespaced_pod(ns, label_selector=selector).items
    assert pods and all(p.metadata.labels["app.kubernetes.io/instance"] == "pooled" for p in pods)

    kube.cluster.kubectl(
        "-n", ns, "patch", "llmp", "pooled", "--type=merge",
        "-p", '{"spec":{"inferencePool":{"enabled":false}}}',
    )  # fmt: skip
    cluster.wait_for(
        lambda: not exists(lambda: _pool(kube, "pooled")),
        timeout=60,
        message="the InferencePool to be removed when switched off",
    )

    kube.apply(llm_profile(kube, "pooled-too"))
    cluster.wait_for(
        lambda: exists(lambda: _pool(kube, "pooled-too")),
        timeout=60,
        message="the InferencePool of a new profile",
    )
    kube.cluster.kubectl("-n", ns, "delete", "llmp", "pooled-too", "--timeout=60s", timeout=90)
    cluster.wait_for(
        lambda: not exists(lambda: _pool(kube, "pooled-too")),
        timeout=90,
        message="garbage collection of the InferencePool with its profile",
    )
