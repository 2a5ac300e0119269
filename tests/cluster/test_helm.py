"""The Helm chart end to end on the local API server: install, operate, upgrade, uninstall.

The operator Deployment the chart installs cannot run here (kwok fakes pods without running
images), so the test runs `sentiric-operator` as a local process **with the chart's
ServiceAccount's credentials** (a TokenRequest token, nothing else): every API call the
operator makes is authorised by the chart's RBAC alone, so a missing rule fails this test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .conftest import REPO_ROOT, Cluster, dies_with_this_process

CHART = REPO_ROOT / "charts" / "sentiric-llm"
CHART_CRD = CHART / "crds" / "llmprofiles.llm.sentiric.ai.yaml"
PROFILE_FILE = REPO_ROOT / "profiles" / "qwen25-3b-phone-assistant.yaml"
PROFILE = yaml.safe_load(PROFILE_FILE.read_text())
PROFILE_NAME: str = PROFILE["metadata"]["name"]
RELEASE = "llm"
# The API server also answers 403 "forbidden" for a write into a namespace being deleted;
# other tests' namespaces may still be terminating while this cluster-wide operator runs.
_NOT_RBAC = "because it is being terminated"


def rbac_denials(log: str) -> list[str]:
    """Log lines where the API server refused the operator's ServiceAccount."""
    return [
        line for line in log.splitlines() if "forbidden" in line.lower() and _NOT_RBAC not in line
    ]


VALUES_PROFILE = "from-values"
# The chart's full name for release "llm": the operator Deployment, ServiceAccount and roles.
FULLNAME = "llm-sentiric-llm"
RELEASE_SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/managed-by=Helm"
OPERATOR_KINDS = "deployments,serviceaccounts,configmaps,services,roles,rolebindings"
CLUSTER_KINDS = "clusterroles,clusterrolebindings"
CLUSTER_SCOPED = {"clusterrole", "clusterrolebinding", "crd", "pv"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Operator:
    """A local `sentiric-operator` process; stopped by pid (SIGTERM, then SIGKILL)."""

    proc: subprocess.Popen[bytes]
    health_port: int
    log_path: Path

    def healthy(self) -> bool:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@dataclass
class Release:
    """The chart installed in `namespace`, with profiles living in `apps`."""

    cluster: Cluster
    namespace: str
    apps: str
    workdir: Path

    def helm(self, *args: str) -> str:
        return self.cluster.helm(*args, "--namespace", self.namespace, timeout=180).stdout

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        ns = ["-n", namespace or self.namespace] if kind not in CLUSTER_SCOPED else []
        out = self.cluster.kubectl(*ns, "get", kind, name, "-o", "yaml").stdout
        obj: dict[str, Any] = yaml.safe_load(out)
        return obj

    def exists(self, kind: str, name: str, namespace: str | None = None) -> bool:
        ns = ["-n", namespace or self.namespace] if kind not in CLUSTER_SCOPED else []
        proc = self.cluster.kubectl(*ns, "get", kind, name, "-o", "name", check=False)
        return proc.returncode == 0

    def operator_env(self) -> dict[str, str]:
        """The operator's environment as the chart renders it (its ConfigMap)."""
        data: dict[str, str] = self.get("configmap", f"{FULLNAME}-config")["data"]
        return data

    def service_account_kubeconfig(self) -> Path:
        """A kubeconfig holding only a TokenRequest token of the chart's ServiceAccount."""
        token = self.cluster.kubectl(
            "-n", self.namespace, "create", "token", FULLNAME, "--duration=1h"
        ).stdout.strip()
        admin = yaml.safe_load(self.cluster.kubeconfig.read_text())
        context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
        cluster_entry = next(
            c for c in admin["clusters"] if c["name"] == context["context"]["cluster"]
        )
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster_entry],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "operator",
                    "context": {
                        "cluster": cluster_entry["name"],
                        "user": "operator",
                        "namespace": self.namespace,
                    },
                }
            ],
            "current-context": "operator",
        }
        path = self.workdir / "operator-kubeconfig.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start_operator(self, name: str) -> Operator:
        """Run the operator as the chart's ServiceAccount, configured by the chart's ConfigMap."""
        health_port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIRIC_")}
        env.update(self.operator_env())
        env.update(
            {
                "KUBECONFIG": str(self.service_account_kubeconfig()),
                # Local ports instead of the pod's fixed ones; faster loops for the test.
                "SENTIRIC_METRICS_PORT": "0",
                "SENTIRIC_LIVENESS_ENDPOINT": f"http://127.0.0.1:{health_port}/healthz",
                "SENTIRIC_STATUS_INTERVAL": "1",
                "SENTIRIC_RESYNC_INTERVAL": "5",
                "SENTIRIC_RETRY_DELAY": "2",
                "SENTIRIC_LOG_FORMAT": "text",
            }
        )
        log_path = self.workdir / f"{name}.log"
        exe = Path(sys.executable).parent / "sentiric-operator"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                dies_with_this_process([str(exe)]), env=env, stdout=log, stderr=subprocess.STDOUT
            )
        operator = Operator(proc, health_port, log_path)
        try:
            deadline = time.monotonic() + 60
            while not operator.healthy():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"operator did not become healthy:\n{operator.log()}")
                time.sleep(0.5)
        except BaseException:
            operator.stop()
            raise
        return operator

    def profile(self, name: str = PROFILE_NAME) -> dict[str, Any]:
        return self.get("llmp", name, self.apps)

    def condition(self, type_: str, name: str = PROFILE_NAME) -> dict[str, Any] | None:
        status = self.profile(name).get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)

    def ready(self, name: str = PROFILE_NAME) -> bool:
        condition = self.condition("Ready", name)
        return condition is not None and condition["status"] == "True"

    def leftovers(self) -> list[str]:
        """Objects of the release still present (namespaced and cluster-scoped)."""
        names = []
        for namespace in (self.namespace, self.apps):
            out = self.cluster.kubectl(
                "-n", namespace, "get", OPERATOR_KINDS, "-l", RELEASE_SELECTOR, "-o", "name"
            ).stdout
            names += out.split()
        out = self.cluster.kubectl(
            "get", CLUSTER_KINDS, "-l", RELEASE_SELECTOR, "-o", "name"
        ).stdout
        return names + out.split()


@pytest.fixture
def apps_namespace(cluster: Cluster, namespace: str) -> Iterator[str]:
    """A second namespace for the profiles, apart from the release's."""
    name = f"{namespace[:54]}-apps"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl(
            "delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False
        )


@pytest.fixture
def release(
    cluster: Cluster, namespace: str, apps_namespace: str, tmp_path: Path
) -> Iterator[Release]:
    _install_crd(cluster, cluster.servicemonitor_crd_path, "servicemonitors")
    handle = Release(cluster, namespace, apps_namespace, tmp_path)
    try:
        yield handle
    finally:
        # A failed test must not leave cluster-scoped objects behind for the next one.
        cluster.helm(
            "uninstall",
            RELEASE,
            "--namespace",
            namespace,
            "--ignore-not-found",
            check=False,
            timeout=180,
        )
        cluster.kubectl(
            "delete",
            "pv",
            "-l",
            f"sentiric-test={namespace}",
            "--ignore-not-found",
            "--wait=false",
            check=False,
        )


def _wait_served(cluster: Cluster, plural: str) -> None:
    # `kubectl wait --for=condition=Established` errors out (instead of waiting) while a new
    # CRD has no status yet, so wait for the resource to be listable instead.
    cluster.wait_for(
        lambda: cluster.kubectl("get", plural, "-A", "-o", "name", check=False).returncode == 0,
        timeout=60,
        message=f"{plural} to be served",
    )


def _install_crd(cluster: Cluster, path: Path, plural: str) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    _wait_served(cluster, plural)


def _cache_volume(
    cluster: Cluster, owner: str, namespace: str, profile: str = PROFILE_NAME
) -> None:
    """A PersistentVolume pre-bound to the profile's cache claim: this cluster has no
    provisioner, and the shipped profile names no storage class."""
    size = PROFILE["spec"]["model"]["cache"]["size"]
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{owner}-{profile}"[:253], "labels": {"sentiric-test": owner}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": {"path": f"/tmp/{owner}-{profile}"},
            "claimRef": {"namespace": namespace, "name": f"{profile}-model-cache"},
        },
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(volume))


@pytest.mark.timeout(600)
def test_install_operate_upgrade_uninstall(cluster: Cluster, release: Release) -> None:
    ns, apps = release.namespace, release.apps
    installed = release.helm(
        "install",
        RELEASE,
        str(CHART),
        "--wait=false",
        "--set",
        "inferenceImage.repository=registry.test/sentiric-llm-inference",
        "--set",
        "inferenceImage.tag=1.0.0",
    )
    # NOTES.txt tells the user what to do next (only `helm install` renders it).
    notes = installed.split("NOTES:", 1)[1]
    assert f"kubectl -n {ns} rollout status deployment/{FULLNAME}" in notes
    assert "inference image registry.test/sentiric-llm-inference:1.0.0," in notes
    assert "or registry.test/sentiric-llm-inference:1.0.0-cuda for profiles with" in notes
    for step in ("kubectl apply -n", "kubectl get llmp", "sentiric-llm generate --target"):
        assert step in notes, step
    # The CRD (from the chart's crds/) and the operator's objects.
    _wait_served(cluster, "llmprofiles")
    for kind, name in (
        ("deployment", FULLNAME),
        ("serviceaccount", FULLNAME),
        ("configmap", f"{FULLNAME}-config"),
        ("service", f"{FULLNAME}-metrics"),
        ("clusterrole", FULLNAME),
        ("clusterrolebinding", FULLNAME),
    ):
        assert release.exists(kind, name), (kind, name)
    # kwok runs the operator pod as far as Ready (without executing the image).
    cluster.kubectl(
        "-n", ns, "rollout", "status", f"deployment/{FULLNAME}", "--timeout=120s", timeout=150
    )
    first_checksum = release.get("deployment", FULLNAME)["spec"]["template"]["metadata"][
        "annotations"
    ]["checksum/config"]

    # Cluster-wide mode: the ClusterRole alone must let the operator do its work.
    _cache_volume(cluster, ns, apps)
    operator = release.start_operator("operator-cluster-wide")
    try:
        cluster.kubectl("-n", apps, "apply", "-f", str(PROFILE_FILE))
        cluster.wait_for(
            release.ready,
            timeout=120,
            interval=1,
            message=f"profile Ready under the ClusterRole\n{operator.log()}",
        )
        deployment = release.get("deployment", PROFILE_NAME, apps)
        serve = deployment["spec"]["template"]["spec"]["containers"][0]
        # The profile asks for a GPU and names no image: the chart's CUDA default, derived
        # from inferenceImage (same repository, tag + "-cuda").
        assert serve["image"] == "registry.test/sentiric-llm-inference:1.0.0-cuda"
        for kind, name in (
            ("service", PROFILE_NAME),
            ("service", f"{PROFILE_NAME}-headless"),
            ("configmap", f"{PROFILE_NAME}-config"),
            ("pvc", f"{PROFILE_NAME}-model-cache"),
            ("servicemonitor", PROFILE_NAME),
        ):
            assert release.exists(kind, name, apps), (kind, name)
        monitoring = release.condition("Monitoring")
        assert monitoring is not None and monitoring["status"] == "True", monitoring
        assert not rbac_denials(operator.log()), rbac_denials(operator.log())
    finally:
        operator.stop()

    # Upgrade: only the apps namespace is watched now, with a new inference image.
    release.helm(
        "upgrade",
        RELEASE,
        str(CHART),
        "--wait=false",
        "--reuse-values",
        "--set",
        f"watchNamespaces={{{apps}}}",
        "--set",
        "inferenceImage.tag=1.1.0",
    )
    env = release.operator_env()
    assert env["SENTIRIC_WATCH_NAMESPACES"] == apps
    assert env["SENTIRIC_INFERENCE_IMAGE"] == "registry.test/sentiric-llm-inference:1.1.0"
    assert env["SENTIRIC_INFERENCE_IMAGE_CUDA"] == "registry.test/sentiric-llm-inference:1.1.0-cuda"
    upgraded = release.get("deployment", FULLNAME)["spec"]["template"]["metadata"]
    assert upgraded["annotations"]["checksum/config"] != first_checksum
    rules = release.get("clusterrole", FULLNAME)["rules"]
    assert [r["resources"] for r in rules] == [["customresourcedefinitions"], ["namespaces"]]
    assert release.exists("role", FULLNAME, apps)
    assert release.exists("rolebinding", FULLNAME, apps)

    # Namespaced mode: the Role in the apps namespace plus the CRD-only ClusterRole suffice.
    operator = release.start_operator("operator-namespaced")
    try:

        def rolled_out() -> bool:
            spec = release.get("deployment", PROFILE_NAME, apps)["spec"]["template"]["spec"]
            images = {c["image"] for c in (*spec["initContainers"], *spec["containers"])}
            # The upgrade moved inferenceImage.tag; the CUDA default of this GPU profile follows.
            cuda = "registry.test/sentiric-llm-inference:1.1.0-cuda"
            return images == {cuda} and release.ready()

        cluster.wait_for(
            rolled_out,
            timeout=120,
            interval=1,
            message=f"profile on the new image under the Role\n{operator.log()}",
        )
        # Deleting a profile needs no operator (no finalizer); GC removes the children.
        cluster.kubectl(
            "-n", apps, "delete", "llmp", PROFILE_NAME, "--wait=true", "--timeout=90s", timeout=120
        )
        cluster.wait_for(
            lambda: not release.exists("deployment", PROFILE_NAME, apps),
            timeout=60,
            message="the profile's Deployment garbage-collected",
        )

        # A profile from the chart's values: created by helm and reconciled by the operator.
        _cache_volume(cluster, ns, apps, VALUES_PROFILE)
        spec = json.dumps([{"name": VALUES_PROFILE, "namespace": apps, "spec": PROFILE["spec"]}])
        release.helm(
            "upgrade",
            RELEASE,
            str(CHART),
            "--wait=false",
            "--reuse-values",
            "--set-json",
            f"profiles={spec}",
        )
        created = release.profile(VALUES_PROFILE)
        assert created["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        cluster.wait_for(
            lambda: release.ready(VALUES_PROFILE),
            timeout=120,
            interval=1,
            message=f"the values profile Ready\n{operator.log()}",
        )
        assert not release.profile(VALUES_PROFILE)["metadata"].get("finalizers")
        assert not rbac_denials(operator.log()), rbac_denials(operator.log())
    finally:
        # The operator goes first, as when its Deployment is deleted before the profiles:
        # nothing is left that could remove a finalizer.
        operator.stop()

    # Uninstall with the chart-managed profile still present: helm deletes it with the
    # operator, and the garbage collector removes its children.
    release.helm("uninstall", RELEASE, "--wait", "--timeout=120s")
    values_objects = (
        ("llmp", VALUES_PROFILE),
        ("deployment", VALUES_PROFILE),
        ("service", VALUES_PROFILE),
        ("service", f"{VALUES_PROFILE}-headless"),
        ("configmap", f"{VALUES_PROFILE}-config"),
        ("servicemonitor", VALUES_PROFILE),
    )

    def left() -> list[str]:
        present = [f"{k}/{n}" for k, n in values_objects if release.exists(k, n, apps)]
        return present + release.leftovers()

    cluster.wait_for(
        lambda: not left(),
        timeout=90,
        message="the values profile, its children and the release objects to be gone",
    )
    # Helm keeps CRDs from crds/ on uninstall, so other releases' profiles survive.
    assert release.exists("crd", "llmprofiles.llm.sentiric.ai")


def test_rendered_chart_is_accepted_by_the_api_server(cluster: Cluster, namespace: str) -> None:
    """Every object `helm template` renders, with every optional part on, passes a server-side
    dry run (schema, defaulting and admission of the real API server)."""
    _install_crd(cluster, cluster.servicemonitor_crd_path, "servicemonitors")
    _install_crd(cluster, CHART_CRD, "llmprofiles")
    _wait_served(cluster, "llmprofiles")
    profile = {"name": "dry-run", "namespace": namespace, "spec": PROFILE["spec"]}
    rendered = cluster.helm(
        "template",
        "dry",
        str(CHART),
        "--namespace",
        namespace,
        "--api-versions",
        "monitoring.coreos.com/v1/ServiceMonitor",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        f"watchNamespaces={{{namespace}}}",
        "--set-json",
        f"profiles=[{json.dumps(profile)}]",
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    kinds = sorted({obj["kind"] for obj in objects})
    assert kinds == sorted(
        {
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "LLMProfile",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        }
    )
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered)
    assert proc.stdout.count("(server dry run)") == len(objects), proc.stdout
    # A dry run stores nothing.
    assert cluster.kubectl("-n", namespace, "get", "deployments,llmp", "-o", "name").stdout == ""
