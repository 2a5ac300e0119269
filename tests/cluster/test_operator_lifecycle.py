"""The operator against a real API server: children, status, rollout, drift, GC, scale.

The operator runs as a real `sentiric-operator` subprocess watching only the test's namespace;
kwok's fake nodes run the pods (they go Running/Ready without executing the image).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from .conftest import REPO_ROOT, Cluster, dies_with_this_process

CRD_PATH = REPO_ROOT / "crds" / "llmprofiles.llm.sentiric.ai.yaml"
GROUP, VERSION, PLURAL = "llm.sentiric.ai", "v1alpha1", "llmprofiles"
IMAGE = "sentiric-llm-inference:cluster-test"
INSTANCE = "app.kubernetes.io/instance"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OperatorProcess:
    """A running `sentiric-operator`; stopped by pid at teardown."""

    proc: subprocess.Popen[bytes]
    metrics_port: int
    health_port: int
    log_path: Path

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def reconciles(self, trigger: str, outcome: str) -> float:
        """The operator's own reconcile counter, read through its /metrics endpoint."""
        for family in text_string_to_metric_families(self.metrics()):
            if family.name != "sentiric_operator_reconciles":
                continue
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels == {
                    "trigger": trigger,
                    "outcome": outcome,
                }:
                    return float(sample.value)
        return 0.0

    def healthy(self) -> bool:
        try:
            r = httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_operator(
    cluster: Cluster, namespaces: list[str], log_path: Path, **extra_env: str
) -> OperatorProcess:
    metrics_port, health_port = free_port(), free_port()
    env = cluster.env()
    env.update(
        {
            "SENTIRIC_WATCH_NAMESPACES": ",".join(namespaces),
            "SENTIRIC_INFERENCE_IMAGE": IMAGE,
            "SENTIRIC_METRICS_PORT": str(metrics_port),
            "SENTIRIC_LIVENESS_ENDPOINT": f"http://127.0.0.1:{health_port}/healthz",
            "SENTIRIC_STATUS_INTERVAL": "1",
            "SENTIRIC_RESYNC_INTERVAL": "5",
            "SENTIRIC_RETRY_DELAY": "2",
            **extra_env,
        }
    )
    exe = Path(sys.executable).parent / "sentiric-operator"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            dies_with_this_process([str(exe)]), env=env, stdout=log, stderr=subprocess.STDOUT
        )
    op = OperatorProcess(proc, metrics_port, health_port, log_path)
    try:
        deadline = time.monotonic() + 60
        while not op.healthy():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"operator did not become healthy:\n{op.log_tail()}")
            time.sleep(0.5)
    except BaseException:
        op.stop(signal.SIGKILL)
        raise
    return op


@pytest.fixture(scope="session")
def llmprofile_crd(cluster: Cluster) -> Path:
    """The LLMProfile CRD installed (left installed: other tests of the session share it)."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_PATH))
    # Polls: `kubectl wait` fails outright while a brand-new CRD has no conditions yet.
    cluster.wait_for_crd("llmprofiles.llm.sentiric.ai")
    return CRD_PATH


@pytest.fixture
def operator(
    cluster: Cluster, llmprofile_crd: Path, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    # Profiles carry no finalizer, so the namespace (and its profiles) can go after it stops.
    op = start_operator(cluster, [namespace], tmp_path / "operator.log")
    try:
        yield op
    finally:
        op.stop()


@dataclass
class Kube:
    """Typed official clients for one test namespace."""

    cluster: Cluster
    namespace: str
    api: client.ApiClient

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def profile(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return body

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        status = self.profile(name).get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)

    def wait_condition(
        self, name: str, type_: str, status: str, reason: str | None = None, timeout: float = 90
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            c = self.condition(name, type_)
            ok = c is not None and c["status"] == status and reason in (None, c["reason"])
            return c if ok else None

        return self.cluster.wait_for(
            check, timeout=timeout, message=f"{name} {type_}={status} {reason or ''}"
        )

    def apply(self, manifest: dict[str, Any]) -> None:
        self.cluster.kubectl(
            "-n", self.namespace, "apply", "-f", "-", input=yaml.safe_dump(manifest)
        )

    def pv_for(self, name: str) -> str:
        """A static PersistentVolume the profile's cache claim binds to (no provisioner here)."""
        storage_class = f"sentiric-{self.namespace}-{name}"[:63]
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": storage_class, "labels": {"sentiric-test": self.namespace}},
            "spec": {
                "capacity": {"storage": "20Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": storage_class,
                "hostPath": {"path": f"/tmp/{storage_class}"},
                "persistentVolumeReclaimPolicy": "Delete",
            },
        }
        self.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pv))
        return storage_class

    def cleanup_pvs(self) -> None:
        self.cluster.kubectl(
            "delete",
            "pv",
            "-l",
            f"sentiric-test={self.namespace}",
            "--wait=false",
            "--ignore-not-found",
            check=False,
        )


@pytest.fixture
def kube(cluster: Cluster, namespace: str) -> Iterator[Kube]:
    api = cluster.api_client()
    k = Kube(cluster, namespace, api)
    try:
        yield k
    finally:
        k.cleanup_pvs()
        api.close()


def llm_profile(kube: Kube, name: str, **spec: Any) -> dict[str, Any]:
    """A small CPU profile whose cache claim binds to a fresh static PV."""
    base: dict[str, Any] = {
        "model": {
            "huggingFace": {
                "repo": "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
                "file": "qwen2.5-0.5b-instruct-q4_k_m.gguf",
            },
            "cache": {"size": "1Gi", "storageClassName": kube.pv_for(name)},
        },
        "engine": {"gpuLayers": 0, "contextSize": 2048},
        "sampling": {"temperature": 0.2, "maxTokens": 128},
    }
    base.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMProfile",
        "metadata": {"name": name, "namespace": kube.namespace},
        "spec": base,
    }


def pods_of(kube: Kube, name: str) -> list[client.V1Pod]:
    items: list[client.V1Pod] = kube.core.list_namespaced_pod(
        kube.namespace, label_selector=f"{INSTANCE}={name}"
    ).items
    return items


def exists(fetch: Callable[[], object]) -> bool:
    try:
        fetch()
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def test_profile_becomes_ready_with_every_child(kube: Kube, operator: OperatorProcess) -> None:
    ns = kube.namespace
    kube.apply(llm_profile(kube, "chat"))
    dep = kube.cluster.wait_for(
        lambda: kube.apps.read_namespaced_deployment("chat", ns),
        timeout=30,
        message="the Deployment",
    )
    owner = dep.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("LLMProfile", "chat", True)
    pod = dep.spec.template.spec
    assert pod.init_containers[0].command[:2] == ["sentiric-llm", "download"]
    serve = pod.containers[0]
    assert serve.image == IMAGE
    assert serve.startup_probe.http_get.path == "/ready"
    assert serve.liveness_probe.http_get.path == "/health"
    assert "checksum/config" in dep.spec.template.metadata.annotations
    cm = kube.core.read_namespaced_config_map("chat-config", ns)
    assert "temperature: 0.2" in cm.data["engine.yaml"]
    assert kube.core.read_namespaced_persistent_volume_claim("chat-model-cache", ns)
    svc = kube.core.read_namespaced_service("chat", ns)
    assert {p.name: p.port for p in svc.spec.ports} == {"grpc": 16071, "http": 16070}
    assert kube.core.read_namespaced_service("chat-headless", ns).spec.cluster_ip == "None"
    # Managed fields show one writer of the spec: the operator's server-side apply.
    managers = {m.manager for m in dep.metadata.managed_fields if m.operation == "Apply"}
    assert managers == {"sentiric-operator"}

    kube.wait_condition("chat", "Ready", "True", "AllReplicasReady", timeout=120)
    status = kube.profile("chat")["status"]
    assert status["endpoints"]["grpc"] == f"chat.{ns}.svc:16071"
    assert status["endpoints"]["http"] == f"http://chat.{ns}.svc:16070"
    assert (status["replicas"], status["readyReplicas"]) == (1, 1)
    assert status["observedGeneration"] == kube.profile("chat")["metadata"]["generation"]
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert conds == {"ModelReady": "True", "Available": "True", "Ready": "True"}
    table = kube.cluster.kubectl("-n", ns, "get", "llmp", "chat").stdout
    assert "AllReplicasReady" in table and "qwen2.5-0.5b-instruct-q4_k_m.gguf" in table
    assert operator.reconciles("create", "success") >= 1


def test_sampling_change_updates_config_and_rolls_pods(
    kube: Kube, operator: OperatorProcess
) -> None:
    ns = kube.namespace
    kube.apply(llm_profile(kube, "roll"))
    kube.wait_condition("roll", "Ready", "True", timeout=120)
    before = kube.apps.read_namespaced_deployment("roll", ns).spec.template.metadata.annotations[
        "checksum/config"
    ]
    old_pods = {p.metadata.name for p in pods_of(kube, "roll")}

    kube.cluster.kubectl(
        "-n",
        ns,
        "patch",
        "llmp",
        "roll",
        "--type=merge",
        "-p",
        '{"spec":{"sampling":{"temperature":0.9}}}',
    )
    kube.cluster.wait_for(
        lambda: (
            "temperature: 0.9"
            in kube.core.read_namespaced_config_map("roll-config", ns).data["engine.yaml"]
        ),
        timeout=30,
        message="the ConfigMap to carry the new temperature",
    )
    after = kube.cluster.wait_for(
        lambda: (
            (
                a := kube.apps.read_namespaced_deployment(
                    "roll", ns
                ).spec.template.metadata.annotations["checksum/config"]
            )
            != before
            and a
        ),
        timeout=30,
        message="a new config checksum on the pod template",
    )

    def rolled() -> bool:
        pods = [p for p in pods_of(kube, "roll") if p.metadata.deletion_timestamp is None]
        return bool(pods) and all(
            p.metadata.annotations.get("checksum/config") == after
            and p.metadata.name not in old_pods
            for p in pods
        )

    kube.cluster.wait_for(rolled, timeout=90, message="pods replaced with the new config")
    generation = kube.profile("roll")["metadata"]["generation"]
    kube.cluster.wait_for(
        lambda: (
            (c := kube.condition("roll", "Ready"))
            and c["status"] == "True"
            and c["observedGeneration"] == generation
        ),
        timeout=90,
        message="Ready again at the new generation",
    )


def test_deleted_and_edited_children_are_repaired(kube: Kube, operator: OperatorProcess) -> None:
    ns = kube.namespace
    kube.apply(llm_profile(kube, "drift"))
    kube.cluster.wait_for(
        lambda: kube.apps.read_namespaced_deployment("drift", ns),
        timeout=30,
        message="the Deployment",
    )
    first_uid = kube.apps.read_namespaced_deployment("drift", ns).metadata.uid
    kube.apps.delete_namespaced_deployment("drift", ns)
    kube.cluster.wait_for(
        lambda: (
            exists(lambda: kube.apps.read_namespaced_deployment("drift", ns))
            and kube.apps.read_namespaced_deployment("drift", ns).metadata.uid != first_uid
        ),
        timeout=30,
        message="the Deployment to come back",
    )

    kube.core.delete_namespaced_service("drift-headless", ns)
    kube.cluster.wait_for(
        lambda: exists(lambda: kube.core.read_namespaced_service("drift-headless", ns)),
        timeout=30,
        message="the headless Service to come back",
    )

    kube.cluster.kubectl(
        "-n",
        ns,
        "patch",
        "configmap",
        "drift-config",
        "--type=merge",
        "-p",
        '{"data":{"engine.yaml":"edited: by hand\\n"}}',
    )
    kube.cluster.wait_for(
        lambda: (
            "edited"
            not in kube.core.read_namespaced_config_map("drift-config", ns).data["engine.yaml"]
        ),
        timeout=30,
        message="the ConfigMap edit to be reverted",
    )
    kube.cluster.kubectl("-n", ns, "scale", "deployment", "drift", "--replicas=3")
    kube.cluster.wait_for(
        lambda: kube.apps.read_namespaced_deployment("drift", ns).spec.replicas == 1,
        timeout=30,
        message="the Deployment's replicas to follow the profile again",
    )


def test_deleting_the_profile_collects_its_children(kube: Kube, operator: OperatorProcess) -> None:
    ns = kube.namespace
    kube.apply(llm_profile(kube, "gone"))
    kube.wait_condition("gone", "Ready", "True", timeout=120)
    kube.cluster.kubectl("-n", ns, "delete", "llmp", "gone", "--timeout=60s", timeout=90)

    def collected() -> bool:
        left = [
            exists(lambda: kube.apps.read_namespaced_deployment("gone", ns)),
            exists(lambda: kube.core.read_namespaced_config_map("gone-config", ns)),
            exists(lambda: kube.core.read_namespaced_service("gone", ns)),
            exists(lambda: kube.core.read_namespaced_service("gone-headless", ns)),
        ]
        return not any(left)

    kube.cluster.wait_for(collected, timeout=90, message="garbage collection of the children")


def test_scale_subresource(kube: Kube, operator: OperatorProcess) -> None:
    ns = kube.namespace
    kube.apply(
        llm_profile(
            kube,
            "scaled",
            model={
                "huggingFace": {
                    "repo": "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
                    "file": "qwen2.5-0.5b-instruct-q4_k_m.gguf",
                },
                "cache": {
                    "size": "1Gi",
                    "storageClassName": kube.pv_for("scaled"),
                    "accessMode": "ReadWriteOnce",
                },
            },
        )
    )
    kube.wait_condition("scaled", "Ready", "True", timeout=120)
    kube.cluster.kubectl("-n", ns, "scale", "llmp", "scaled", "--replicas=3")
    kube.cluster.wait_for(
        lambda: kube.apps.read_namespaced_deployment("scaled", ns).spec.replicas == 3,
        timeout=30,
        message="the Deployment scaled to 3",
    )
    kube.cluster.wait_for(
        lambda: kube.profile("scaled").get("status", {}).get("readyReplicas") == 3,
        timeout=90,
        message="3 ready replicas in status",
    )
    scale = kube.custom.get_namespaced_custom_object_scale(GROUP, VERSION, ns, PLURAL, "scaled")
    assert scale["status"]["replicas"] == 3
    assert scale["status"]["selector"] == (
        "app.kubernetes.io/instance=scaled,app.kubernetes.io/name=sentiric-llm"
    )
    kube.wait_condition("scaled", "Ready", "True", "AllReplicasReady", timeout=60)


def test_disruption_budget_follows_replicas_and_pods_drain_safely(
    kube: Kube, operator: OperatorProcess
) -> None:
    """Scale to 2: a PodDisruptionBudget; back to 1: gone. The pod template carries the
    preStop drain, the grace period and the spread, as the real API server stored them."""
    ns = kube.namespace
    kube.apply(
        llm_profile(
            kube,
            "spread",
            shutdown={"drainDelaySeconds": 7, "graceSeconds": 40},
        )
    )
    kube.wait_condition("spread", "Ready", "True", timeout=120)
    policy = client.PolicyV1Api(kube.core.api_client)

    def budget() -> Any:
        try:
            return policy.read_namespaced_pod_disruption_budget("spread", ns)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    assert budget() is None  # one replica: a budget would block every node drain
    template = kube.apps.read_namespaced_deployment("spread", ns).spec.template.spec
    assert template.termination_grace_period_seconds == 7 + 40 + 10
    serve = template.containers[0]
    assert serve.lifecycle.pre_stop._exec.command == ["/bin/sh", "-c", "kill -USR1 1 && sleep 7"]
    assert serve.command[-2:] == ["--shutdown-grace", "40"]
    assert [
        (c.topology_key, c.when_unsatisfiable) for c in template.topology_spread_constraints
    ] == [
        ("kubernetes.io/hostname", "ScheduleAnyway"),
        ("topology.kubernetes.io/zone", "ScheduleAnyway"),
    ]
    endpoints = kube.profile("spread")["status"]["endpoints"]
    assert endpoints["grpcBalanced"] == f"dns:///spread-headless.{ns}.svc:16071"

    kube.cluster.kubectl("-n", ns, "scale", "llmp", "spread", "--replicas=2")
    kube.cluster.wait_for(lambda: budget() is not None, timeout=30, message="a PDB at 2 replicas")
    pdb = budget()
    assert pdb.spec.max_unavailable == 1
    assert pdb.spec.selector.match_labels == {
        "app.kubernetes.io/name": "sentiric-llm",
        INSTANCE: "spread",
    }
    assert pdb.metadata.owner_references[0].kind == "LLMProfile"
    # The disruption controller of the real kube-controller-manager evaluates it.
    kube.cluster.wait_for(
        lambda: (budget().status.expected_pods or 0) == 2,
        timeout=90,
        message="the disruption controller counted both pods",
    )
    kube.cluster.kubectl("-n", ns, "scale", "llmp", "spread", "--replicas=1")
    kube.cluster.wait_for(lambda: budget() is None, timeout=30, message="the PDB gone at 1")


def test_the_real_hpa_controller_scales_the_profile(kube: Kube, operator: OperatorProcess) -> None:
    """spec.autoscaling -> an HPA that the local kube-controller-manager's HPA controller runs.

    This cluster has no custom-metrics API (no Prometheus, no prometheus-adapter: neither is
    built here), so the controller cannot read sentiric_llm_requests_in_flight and says so
    (ScalingActive False, FailedGetPodsMetric). What it does without metrics is real and
    shown: it reads the LLMProfile's scale subresource and raises spec.replicas to
    minReplicas, and the operator carries that to the Deployment.
    """
    ns = kube.namespace
    kube.apply(llm_profile(kube, "auto", autoscaling={"minReplicas": 2, "maxReplicas": 3}))
    autoscaling = client.AutoscalingV2Api(kube.core.api_client)

    def hpa() -> Any:
        try:
            return autoscaling.read_namespaced_horizontal_pod_autoscaler("auto", ns)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    kube.cluster.wait_for(lambda: hpa() is not None, timeout=60, message="the HPA exists")
    spec = hpa().spec
    assert (spec.scale_target_ref.kind, spec.scale_target_ref.name) == ("LLMProfile", "auto")
    assert spec.metrics[0].pods.metric.name == "sentiric_llm_requests_in_flight"
    assert spec.metrics[0].pods.target.average_value == "4"
    kube.cluster.wait_for(
        lambda: kube.profile("auto")["spec"]["replicas"] == 2,
        timeout=90,
        message="the HPA controller raised spec.replicas to minReplicas",
    )
    kube.cluster.wait_for(
        lambda: kube.apps.read_namespaced_deployment("auto", ns).spec.replicas == 2,
        timeout=30,
        message="the operator scaled the Deployment to 2",
    )

    def conditions() -> dict[str, tuple[str, str]]:
        found = hpa().status.conditions or []
        return {c.type: (c.status, c.reason) for c in found}

    kube.cluster.wait_for(
        lambda: conditions().get("ScalingActive", ("", ""))[1] == "FailedGetPodsMetric",
        timeout=60,
        message="the HPA controller reports the missing custom metric",
    )
    assert conditions()["AbleToScale"][0] == "True"
    # Dropping spec.autoscaling removes the HPA.
    kube.custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "auto", {"spec": {"autoscaling": None}}
    )
    kube.cluster.wait_for(lambda: hpa() is None, timeout=30, message="the HPA is deleted")


def test_gpu_profiles_schedule_on_the_gpu_node_or_explain_why_not(
    kube: Kube, operator: OperatorProcess
) -> None:
    gpu_spec = {"resources": {"gpu": 1}, "engine": {"gpuLayers": -1, "contextSize": 2048}}
    kube.apply(llm_profile(kube, "onegpu", **gpu_spec))
    kube.wait_condition("onegpu", "Ready", "True", timeout=120)
    (pod,) = [p for p in pods_of(kube, "onegpu") if p.metadata.deletion_timestamp is None]
    assert pod.spec.node_name == "kwok-gpu-0"
    assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"

    kube.apply(
        llm_profile(
            kube, "toomany", resources={"gpu": 16}, engine={"gpuLayers": -1, "contextSize": 2048}
        )
    )
    cond = kube.wait_condition("toomany", "Ready", "False", "Unschedulable", timeout=90)
    assert "nvidia.com/gpu" in cond["message"] and "spec.resources.gpu" in cond["message"]


def test_token_secret_is_wired_into_the_download(kube: Kube, operator: OperatorProcess) -> None:
    kube.apply(
        llm_profile(
            kube,
            "gated",
            model={
                "huggingFace": {
                    "repo": "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
                    "file": "qwen2.5-0.5b-instruct-q4_k_m.gguf",
                    "tokenSecretRef": {"name": "absent-hf-token"},
                },
                "cache": {"size": "1Gi", "storageClassName": kube.pv_for("gated")},
            },
        )
    )
    dep = kube.cluster.wait_for(
        lambda: kube.apps.read_namespaced_deployment("gated", kube.namespace),
        timeout=30,
        message="the Deployment",
    )
    # kwok runs no kubelet, so the missing Secret cannot fail the pod here; the unit tests
    # cover the ContainerConfigError reason. This checks the wiring the kubelet would use.
    env = {e.name: e for e in dep.spec.template.spec.init_containers[0].env}
    assert env["HF_TOKEN"].value_from.secret_key_ref.name == "absent-hf-token"
    assert env["HF_TOKEN"].value_from.secret_key_ref.key == "token"
