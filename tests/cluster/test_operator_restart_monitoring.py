"""The operator restarted mid-reconcile, and the ServiceMonitor with and without its CRD."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import SERVICEMONITOR_CRD, Cluster
from .test_operator_lifecycle import (
    INSTANCE,
    Kube,
    OperatorProcess,
    kube,  # noqa: F401  (fixture)
    llm_profile,
    llmprofile_crd,  # noqa: F401  (fixture)
    operator,  # noqa: F401  (fixture)
    start_operator,
)


def test_restart_mid_reconcile_leaves_no_duplicates(
    cluster: Cluster,
    llmprofile_crd: Path,  # noqa: F811
    kube: Kube,  # noqa: F811
    tmp_path: Path,
) -> None:
    ns = kube.namespace
    first = start_operator(cluster, [ns], tmp_path / "first.log")
    try:
        kube.apply(llm_profile(kube, "restart"))
        # Kill it the moment the first child appears: the reconcile is under way.
        cluster.wait_for(
            lambda: (
                kube.core.list_namespaced_config_map(ns, label_selector=f"{INSTANCE}=restart").items
            ),
            timeout=30,
            interval=0.05,
            message="the first child",
        )
    finally:
        first.stop(signal.SIGKILL)
    second = start_operator(cluster, [ns], tmp_path / "second.log")
    try:
        kube.wait_condition("restart", "Ready", "True", timeout=120)
        selector = f"{INSTANCE}=restart"
        assert len(kube.apps.list_namespaced_deployment(ns, label_selector=selector).items) == 1
        assert len(kube.core.list_namespaced_service(ns, label_selector=selector).items) == 2
        assert len(kube.core.list_namespaced_config_map(ns, label_selector=selector).items) == 1
        assert (
            len(
                kube.core.list_namespaced_persistent_volume_claim(ns, label_selector=selector).items
            )
            == 1
        )
        dep = kube.apps.list_namespaced_deployment(ns, label_selector=selector).items[0]
        assert len(dep.metadata.owner_references) == 1
        status = kube.profile("restart")["status"]
        assert status["endpoints"]["grpc"] == f"restart.{ns}.svc:16071"
        assert [c["type"] for c in status["conditions"]] == ["ModelReady", "Available", "Ready"]
    finally:
        second.stop()
    # A restart with everything in place changes nothing and keeps the status.
    third = start_operator(cluster, [ns], tmp_path / "third.log")
    try:
        before = kube.profile("restart")
        cluster.wait_for(
            lambda: third.reconciles("resume", "success") >= 1,
            timeout=30,
            message="the resume reconcile",
        )
        after = kube.profile("restart")
        assert after["status"]["conditions"] == before["status"]["conditions"]
    finally:
        third.stop()


@pytest.fixture
def servicemonitor_crd_state(cluster: Cluster) -> Iterator[None]:
    """Restore the ServiceMonitor CRD to how the session had it."""
    had = cluster.kubectl("get", "crd", SERVICEMONITOR_CRD, check=False).returncode == 0
    try:
        yield
    finally:
        if had:
            cluster.install_servicemonitor_crd()
        else:
            cluster.remove_servicemonitor_crd()


def test_servicemonitor_without_then_with_its_crd(
    cluster: Cluster,
    kube: Kube,  # noqa: F811
    operator: OperatorProcess,  # noqa: F811
    servicemonitor_crd_state: None,
) -> None:
    ns = kube.namespace
    cluster.remove_servicemonitor_crd()
    kube.apply(
        llm_profile(
            kube,
            "watched",
            monitoring={
                "serviceMonitor": {
                    "enabled": True,
                    "interval": "30s",
                    "labels": {"release": "prom"},
                }
            },
        )
    )
    cond = kube.wait_condition(
        "watched", "Monitoring", "False", "ServiceMonitorCRDMissing", timeout=60
    )
    assert "monitoring.coreos.com" in cond["message"]
    # Serving is unaffected by the missing CRD.
    kube.wait_condition("watched", "Ready", "True", timeout=120)

    cluster.install_servicemonitor_crd()
    kube.wait_condition("watched", "Monitoring", "True", "ServiceMonitorApplied", timeout=60)
    sm = kube.custom.get_namespaced_custom_object(
        "monitoring.coreos.com", "v1", ns, "servicemonitors", "watched"
    )
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["endpoints"][0]["interval"] == "30s"
    assert sm["metadata"]["ownerReferences"][0]["name"] == "watched"

    # Switching monitoring off removes the ServiceMonitor and the condition.
    kube.cluster.kubectl(
        "-n",
        ns,
        "patch",
        "llmp",
        "watched",
        "--type=merge",
        "-p",
        '{"spec":{"monitoring":{"serviceMonitor":{"enabled":false}}}}',
    )

    def removed() -> bool:
        items = kube.custom.list_namespaced_custom_object(
            "monitoring.coreos.com", "v1", ns, "servicemonitors"
        )["items"]
        return not items and kube.condition("watched", "Monitoring") is None

    cluster.wait_for(removed, timeout=60, message="the ServiceMonitor to be removed")
