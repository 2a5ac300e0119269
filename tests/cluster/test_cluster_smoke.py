"""Smoke tests of the local control plane: API, kwok pods, garbage collection, CEL, fake nodes."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .conftest import REPO_ROOT, Cluster


def _pinned_kube_version() -> str:
    text = (REPO_ROOT / "hack" / "cluster" / "kube" / "go.mod").read_text()
    match = re.search(r"^require k8s\.io/kubernetes (v\S+)$", text, re.MULTILINE)
    assert match, "hack/cluster/kube/go.mod does not pin k8s.io/kubernetes"
    return match.group(1)


@pytest.fixture
def api(cluster: Cluster) -> Iterator[client.ApiClient]:
    with cluster.api_client() as api_client:
        yield api_client


def test_api_server_answers_with_the_pinned_version(cluster: Cluster) -> None:
    assert cluster.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    versions = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    pinned = _pinned_kube_version()
    assert versions["serverVersion"]["gitVersion"] == pinned
    assert versions["clientVersion"]["gitVersion"] == pinned
    assert Path(cluster.kubeconfig).is_file()


def test_fake_cpu_and_gpu_nodes_are_ready(api: client.ApiClient) -> None:
    nodes = {node.metadata.name: node for node in client.CoreV1Api(api).list_node().items}
    assert {"kwok-cpu-0", "kwok-gpu-0"} <= set(nodes)
    for node in nodes.values():
        ready = [c for c in node.status.conditions or [] if c.type == "Ready"]
        assert ready and ready[0].status == "True", f"node {node.metadata.name} is not Ready"
    gpu = nodes["kwok-gpu-0"]
    assert gpu.metadata.labels["nvidia.com/gpu.present"] == "true"
    assert gpu.status.allocatable["nvidia.com/gpu"] == "2"
    assert "nvidia.com/gpu" not in (nodes["kwok-cpu-0"].status.allocatable or {})


def _deployment(
    name: str, replicas: int, resources: dict[str, Any] | None = None
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "registry.invalid/never-pulled:1"}
    if resources:
        container["resources"] = resources
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container]},
            },
        },
    }


def test_deployment_pods_become_running_and_ready(
    cluster: Cluster, api: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("web", replicas=2))

    def available() -> bool:
        status = apps.read_namespaced_deployment_status("web", namespace).status
        return bool(status.available_replicas == 2)

    cluster.wait_for(available, timeout=90, message="deployment web to report 2 available replicas")
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Running"
        assert pod.spec.node_name in {"kwok-cpu-0", "kwok-gpu-0"}
        ready = {c.type: c.status for c in pod.status.conditions}
        assert ready.get("Ready") == "True"
        # The chain Deployment -> ReplicaSet -> Pod is the controller manager's work.
        owner = pod.metadata.owner_references[0]
        assert owner.kind == "ReplicaSet"


def test_gpu_request_is_scheduled_on_the_gpu_node(
    cluster: Cluster, api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    gpu = {"limits": {"nvidia.com/gpu": "2"}}
    client.AppsV1Api(api).create_namespaced_deployment(
        namespace, _deployment("gpu", replicas=2, resources=gpu)
    )

    def placed() -> list[client.V1Pod] | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=gpu").items
        return pods if len(pods) == 2 and any(p.spec.node_name for p in pods) else None

    pods = cluster.wait_for(placed, timeout=60, message="gpu pods to be created and one scheduled")
    # Two GPUs on one node: exactly one pod asking for both fits, the other stays Pending.
    on_gpu = [p for p in pods if p.spec.node_name == "kwok-gpu-0"]
    unscheduled = [p for p in pods if not p.spec.node_name]
    assert len(on_gpu) == 1 and len(unscheduled) == 1

    def unschedulable() -> bool:
        pod = core.read_namespaced_pod(unscheduled[0].metadata.name, namespace)
        return any(
            c.type == "PodScheduled" and c.reason == "Unschedulable"
            for c in pod.status.conditions or []
        )

    cluster.wait_for(unschedulable, timeout=30, message="the second gpu pod to be Unschedulable")


def test_owner_reference_garbage_collection_deletes_the_child(
    cluster: Cluster, api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    owner = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "owner"}, "data": {"k": "v"}}
    )
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner.metadata.name,
        "uid": owner.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "child", "ownerReferences": [reference]}}
    )
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    def child_gone() -> bool:
        try:
            core.read_namespaced_config_map("child", namespace)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    cluster.wait_for(child_gone, timeout=60, message="the garbage collector to delete the child")


def _cel_crd(group: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["minReplicas", "maxReplicas"],
                "properties": {
                    "minReplicas": {"type": "integer", "minimum": 0},
                    "maxReplicas": {"type": "integer", "minimum": 0},
                },
                "x-kubernetes-validations": [
                    {
                        "rule": "self.minReplicas <= self.maxReplicas",
                        "message": "minReplicas must not exceed maxReplicas",
                    }
                ],
            }
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def test_crd_cel_validation_rejects_a_bad_object(
    cluster: Cluster, api: client.ApiClient, namespace: str
) -> None:
    group = f"smoke-{uuid.uuid4().hex[:8]}.sentiric.test"
    extensions = client.ApiextensionsV1Api(api)
    custom = client.CustomObjectsApi(api)
    extensions.create_custom_resource_definition(_cel_crd(group))
    try:
        cluster.wait_for_crd(f"widgets.{group}")

        def widget(name: str, low: int, high: int) -> dict[str, Any]:
            return {
                "apiVersion": f"{group}/v1",
                "kind": "Widget",
                "metadata": {"name": name},
                "spec": {"minReplicas": low, "maxReplicas": high},
            }

        good = custom.create_namespaced_custom_object(
            group, "v1", namespace, "widgets", widget("good", 1, 3)
        )
        assert good["metadata"]["uid"] and good["spec"] == {"minReplicas": 1, "maxReplicas": 3}
        with pytest.raises(ApiException) as rejected:
            custom.create_namespaced_custom_object(
                group, "v1", namespace, "widgets", widget("bad", 5, 2)
            )
        assert rejected.value.status == 422
        assert "minReplicas must not exceed maxReplicas" in str(rejected.value.body)
    finally:
        extensions.delete_custom_resource_definition(f"widgets.{group}")


def test_servicemonitor_crd_install_and_remove(cluster: Cluster, namespace: str) -> None:
    cluster.install_servicemonitor_crd()
    try:
        monitor = {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "smoke"},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "endpoints": [{"port": "http"}]},
        }
        cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(monitor))
        names = cluster.kubectl("-n", namespace, "get", "servicemonitors", "-o", "name").stdout
        assert names.split() == ["servicemonitor.monitoring.coreos.com/smoke"]
    finally:
        cluster.remove_servicemonitor_crd()
    gone = cluster.kubectl("get", "crd", "servicemonitors.monitoring.coreos.com", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_helm_is_built_at_the_pinned_version(cluster: Cluster) -> None:
    out = cluster.helm("version", "--short").stdout.strip()
    lib = (REPO_ROOT / "hack" / "cluster" / "lib.sh").read_text()
    match = re.search(r'^HELM_VERSION="(v[^"]+)"', lib, re.MULTILINE)
    assert match and out.startswith(match.group(1))
