"""Profiles never wait on the operator to be deleted: no finalizer, GC alone cleans up.

The operator runs as a real `sentiric-operator` subprocess (see test_operator_lifecycle).
"""

from __future__ import annotations

import signal
from pathlib import Path

from .conftest import Cluster
from .test_operator_lifecycle import (
    Kube,
    OperatorProcess,
    exists,
    kube,  # noqa: F401  (fixture)
    llm_profile,
    llmprofile_crd,  # noqa: F401  (fixture)
    operator,  # noqa: F401  (fixture)
    start_operator,
)


def _finalizers(k: Kube, name: str) -> list[str]:
    found: list[str] = k.profile(name)["metadata"].get("finalizers") or []
    return found


def _children_left(k: Kube, name: str) -> list[str]:
    ns = k.namespace
    checks = {
        "deployment": lambda: k.apps.read_namespaced_deployment(name, ns),
        "configmap": lambda: k.core.read_namespaced_config_map(f"{name}-config", ns),
        "service": lambda: k.core.read_namespaced_service(name, ns),
        "headless service": lambda: k.core.read_namespaced_service(f"{name}-headless", ns),
    }
    return [kind for kind, read in checks.items() if exists(read)]


def test_a_reconciled_profile_carries_no_finalizer(
    kube: Kube,  # noqa: F811
    operator: OperatorProcess,  # noqa: F811
) -> None:
    kube.apply(llm_profile(kube, "plain"))
    kube.wait_condition("plain", "Ready", "True", timeout=120)
    # The resync sweep (every 5 s here) has run over it too, and still nothing was added.
    start = operator.reconciles("resync", "success")
    kube.cluster.wait_for(
        lambda: operator.reconciles("resync", "success") > start,
        timeout=30,
        message="a resync sweep",
    )
    assert _finalizers(kube, "plain") == []
    annotations = kube.profile("plain")["metadata"].get("annotations") or {}
    # kopf's bookkeeping lives in annotations; that is all it leaves on the object.
    assert any(key.startswith("llm.sentiric.ai/") for key in annotations), annotations


def test_deleting_a_profile_while_no_operator_runs_completes(
    cluster: Cluster,
    llmprofile_crd: Path,  # noqa: F811
    kube: Kube,  # noqa: F811
    tmp_path: Path,
) -> None:
    ns = kube.namespace
    op = start_operator(cluster, [ns], tmp_path / "operator.log")
    try:
        kube.apply(llm_profile(kube, "orphan"))
        kube.wait_condition("orphan", "Ready", "True", timeout=120)
    finally:
        op.stop(signal.SIGKILL)
    assert op.proc.poll() is not None
    assert _children_left(kube, "orphan")  # the children exist before the deletion
    cluster.kubectl(
        "-n", ns, "delete", "llmp", "orphan", "--wait=true", "--timeout=60s", timeout=90
    )
    assert not exists(lambda: kube.profile("orphan"))
    cluster.wait_for(
        lambda: not _children_left(kube, "orphan"),
        timeout=90,
        message="garbage collection of the children without an operator",
    )
