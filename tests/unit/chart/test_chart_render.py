"""`helm lint` and `helm template` of charts/sentiric-llm: objects, security settings, names."""

from __future__ import annotations

from typing import Any

import yaml

from tests.unit.chart.conftest import CHART, Helm, by_kind, one

OPERATOR_KINDS = {
    "ServiceAccount",
    "ConfigMap",
    "ClusterRole",
    "ClusterRoleBinding",
    "Service",
    "Deployment",
}


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    containers: list[dict[str, Any]] = pod["containers"]
    assert len(containers) == 1
    return containers[0]


def _env(objects: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = one(objects, "ConfigMap")["data"]
    return data


def test_lint_is_clean_with_defaults_and_with_every_option(helm: Helm) -> None:
    # The ServiceMonitor needs --api-versions, which `helm lint` lacks: rendered further down.
    helm.run("lint", "--strict", str(CHART))
    helm.run(
        "lint",
        "--strict",
        str(CHART),
        "--set",
        "watchNamespaces={team-a,team-b}",
        "--set",
        "operator.verbose=true",
        "--set-json",
        'profiles=[{"name":"qwen","namespace":"team-a","spec":{"model":{}}}]',
    )


def test_default_render_has_the_operator_objects_and_the_crd(helm: Helm) -> None:
    objects = helm.template()
    kinds = {obj["kind"] for obj in objects}
    assert kinds == OPERATOR_KINDS | {"CustomResourceDefinition"}
    crd = one(objects, "CustomResourceDefinition")
    assert crd["metadata"]["name"] == "llmprofiles.llm.sentiric.ai"
    for obj in objects:
        if obj["kind"] in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert "namespace" not in obj["metadata"]
        else:
            assert obj["metadata"]["namespace"] == "llm-system", obj["kind"]


def test_operator_pod_is_hardened(helm: Helm) -> None:
    objects = helm.template()
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = _container(objects)
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    # A read-only root still needs a writable scratch directory.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]
    # One standalone kopf instance: an upgrade must stop the old pod before starting the new.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_liveness_probe_targets_kopfs_endpoint_the_operator_is_told_to_serve(helm: Helm) -> None:
    objects = helm.template("--set", "livenessProbe.port=9090", "--set", "metrics.port=9091")
    container = _container(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"healthz": 9090, "metrics": 9091}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    env = _env(objects)
    assert env["SENTIRIC_LIVENESS_ENDPOINT"] == "http://0.0.0.0:9090/healthz"
    assert env["SENTIRIC_METRICS_PORT"] == "9091"
    service = one(objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9091, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert (
        service["spec"]["selector"] == one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    )


def test_operator_environment_follows_the_values(helm: Helm) -> None:
    env = _env(
        helm.template(
            "--set",
            "watchNamespaces={team-a,team-b}",
            "--set",
            "inferenceImage.repository=registry.example/llm",
            "--set",
            "inferenceImage.tag=1.2.3",
            "--set",
            "operator.logFormat=text",
            "--set",
            "operator.workers=4",
            "--set",
            "operator.resyncInterval=30",
        )
    )
    assert env["SENTIRIC_WATCH_NAMESPACES"] == "team-a,team-b"
    assert env["SENTIRIC_INFERENCE_IMAGE"] == "registry.example/llm:1.2.3"
    # The CUDA image follows the CPU one as the images are published: same repository, "-cuda".
    assert env["SENTIRIC_INFERENCE_IMAGE_CUDA"] == "registry.example/llm:1.2.3-cuda"
    assert env["SENTIRIC_LOG_FORMAT"] == "text"
    assert env["SENTIRIC_WORKERS"] == "4"
    assert env["SENTIRIC_RESYNC_INTERVAL"] == "30"
    # Every value is a string: a ConfigMap refuses numbers.
    assert all(isinstance(value, str) for value in env.values())


def test_images_default_to_the_app_version_and_a_digest_pins_them(helm: Helm) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    objects = helm.template()
    assert _container(objects)["image"] == (
        f"ghcr.io/sentiric/sentiric-llm-operator:{chart['appVersion']}"
    )
    assert _env(objects)["SENTIRIC_INFERENCE_IMAGE"] == (
        f"ghcr.io/sentiric/sentiric-llm-inference:{chart['appVersion']}"
    )
    assert _env(objects)["SENTIRIC_INFERENCE_IMAGE_CUDA"] == (
        f"ghcr.io/sentiric/sentiric-llm-inference:{chart['appVersion']}-cuda"
    )
    digest = "sha256:" + "a" * 64
    objects = helm.template("--set", f"image.digest={digest}", "--set", "image.tag=ignored")
    assert _container(objects)["image"] == f"ghcr.io/sentiric/sentiric-llm-operator@{digest}"


def test_cuda_image_can_be_set_apart_from_the_cpu_image(helm: Helm) -> None:
    digest = "sha256:" + "b" * 64
    env = _env(
        helm.template(
            "--set",
            "inferenceImage.repository=registry.example/llm",
            "--set",
            f"inferenceImage.digest={digest}",
            "--set",
            "inferenceImageCuda.repository=gpu.example/llm-cuda",
            "--set",
            "inferenceImageCuda.tag=2.0-cu126",
        )
    )
    assert env["SENTIRIC_INFERENCE_IMAGE"] == f"registry.example/llm@{digest}"
    # The CPU digest is not inherited: the CUDA build is another image.
    assert env["SENTIRIC_INFERENCE_IMAGE_CUDA"] == "gpu.example/llm-cuda:2.0-cu126"
    # Only a digest: the CPU repository, pinned; the digest wins over any tag.
    env = _env(
        helm.template(
            "--set",
            "inferenceImage.repository=registry.example/llm",
            "--set",
            f"inferenceImageCuda.digest={digest}",
            "--set",
            "inferenceImageCuda.tag=ignored",
        )
    )
    assert env["SENTIRIC_INFERENCE_IMAGE_CUDA"] == f"registry.example/llm@{digest}"
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert env["SENTIRIC_INFERENCE_IMAGE"] == f"registry.example/llm:{app_version}"


def test_config_checksum_changes_with_the_operator_settings_only(helm: Helm) -> None:
    def checksum(*args: str) -> str:
        deployment = one(helm.template(*args), "Deployment")
        value: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    base = checksum()
    assert len(base) == 64
    assert checksum() == base
    assert checksum("--set", "inferenceImage.tag=9.9.9") != base
    assert checksum("--set", "inferenceImageCuda.tag=9.9.9-cuda") != base
    assert checksum("--set", "watchNamespaces={a}") != base
    # Not part of the config: the pod restarts for its own template change anyway.
    assert checksum("--set", "resources.limits.memory=1Gi") == base


def test_verbose_and_extra_env_reach_the_container(helm: Helm) -> None:
    container = _container(
        helm.template(
            "--set",
            "operator.verbose=true",
            "--set-json",
            'operator.extraEnv=[{"name":"HTTPS_PROXY","value":"http://proxy:3128"}]',
        )
    )
    assert container["args"] == ["--verbose"]
    assert container["env"] == [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]
    default = _container(helm.template())
    assert "args" not in default and "env" not in default


def test_names_are_truncated_to_63_characters(helm: Helm) -> None:
    long_release = "r" * 53  # helm's own limit on release names
    objects = helm.template(release=long_release)
    for obj in objects:
        name = obj["metadata"]["name"]
        assert len(name) <= 63, (obj["kind"], name)
        assert not name.endswith("-"), (obj["kind"], name)
    names = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    # The ConfigMap and the metrics Service keep their suffix so they stay distinct.
    assert any(k == "ConfigMap" and n.endswith("-config") for k, n in names)
    assert any(k == "Service" and n.endswith("-metrics") for k, n in names)
    overridden = helm.template("--set", "fullnameOverride=" + "x" * 63)
    assert one(overridden, "Deployment")["metadata"]["name"] == "x" * 63
    assert len(one(overridden, "ConfigMap")["metadata"]["name"]) <= 63


def test_release_named_after_the_chart_is_not_repeated(helm: Helm) -> None:
    objects = helm.template(release="sentiric-llm")
    assert one(objects, "Deployment")["metadata"]["name"] == "sentiric-llm"
    objects = helm.template(release="prod")
    assert one(objects, "Deployment")["metadata"]["name"] == "prod-sentiric-llm"


def test_servicemonitor_is_opt_in_and_scrapes_the_metrics_service(helm: Helm) -> None:
    assert not by_kind(
        helm.template("--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"), "ServiceMonitor"
    )
    objects = helm.template(
        "--api-versions",
        "monitoring.coreos.com/v1/ServiceMonitor",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=kube-prometheus-stack",
        "--set",
        "metrics.serviceMonitor.interval=15s",
    )
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]
    service_labels = one(objects, "Service")["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["llm-system"]}


def test_profiles_in_values_become_llmprofiles(helm: Helm) -> None:
    objects = helm.template(
        "--set-json",
        'profiles=[{"name":"qwen-a","spec":{"replicas":2}},'
        '{"name":"qwen-b","namespace":"team-b","labels":{"tier":"gold"},'
        '"annotations":{"note":"x"},"spec":{"replicas":1}}]',
    )
    profiles = {p["metadata"]["name"]: p for p in by_kind(objects, "LLMProfile")}
    assert set(profiles) == {"qwen-a", "qwen-b"}
    assert profiles["qwen-a"]["apiVersion"] == "llm.sentiric.ai/v1alpha1"
    assert profiles["qwen-a"]["metadata"]["namespace"] == "llm-system"
    assert profiles["qwen-a"]["spec"] == {"replicas": 2}
    assert profiles["qwen-b"]["metadata"]["namespace"] == "team-b"
    assert profiles["qwen-b"]["metadata"]["labels"]["tier"] == "gold"
    assert profiles["qwen-b"]["metadata"]["labels"]["app.kubernetes.io/component"] == "profile"
    assert profiles["qwen-b"]["metadata"]["annotations"] == {"note": "x"}


def test_operator_pod_is_never_selected_by_an_inference_service(helm: Helm) -> None:
    # The operator's Services select {name: sentiric-llm, instance: <profile name>}; a profile
    # named like the release must not route inference traffic to the operator pod.
    objects = helm.template(release="qwen")
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] != "sentiric-llm"
    assert labels["app.kubernetes.io/name"] == "sentiric-llm-operator"
