"""builders: spec in, manifests out; each builder's contract checked field by field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from operator_samples import profile
from sentiric_inference.config import load_config
from sentiric_inference.engine.sizing import ModelShape
from sentiric_operator import builders
from sentiric_operator.builders.configmap import CHECKSUM_ANNOTATION, engine_config
from sentiric_operator.builders.labels import MANAGED_BY, selector_labels
from sentiric_operator.sizing import mebibytes, memory_request, parse_quantity, plan_for

IMAGE = "registry.example/sentiric-llm-inference:1.2.3"
CUDA_IMAGE = "registry.example/sentiric-llm-inference:1.2.3-cuda"
IMAGES = builders.InferenceImages(cpu=IMAGE, cuda=CUDA_IMAGE)


def _deployment(override: dict[str, Any] | None = None) -> dict[str, Any]:
    return builders.deployment(profile(override), images=IMAGES)


def _pod(override: dict[str, Any] | None = None) -> dict[str, Any]:
    pod: dict[str, Any] = _deployment(override)["spec"]["template"]["spec"]
    return pod


def _container(pod: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    key = "initContainers" if init else "containers"
    found: dict[str, Any] = next(c for c in pod[key] if c["name"] == name)
    return found


def test_every_child_carries_standard_labels_and_a_controller_owner() -> None:
    p = profile()
    children = [*builders.children(p, images=IMAGES), builders.servicemonitor(p)]
    assert [c["kind"] for c in children] == [
        "ConfigMap",
        "PersistentVolumeClaim",
        "Service",
        "Service",
        "Deployment",
        "ServiceMonitor",
    ]
    for child in children:
        meta = child["metadata"]
        assert meta["namespace"] == "ai"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == MANAGED_BY
        assert meta["labels"]["app.kubernetes.io/instance"] == "chat"
        assert meta["labels"]["app.kubernetes.io/name"] == "sentiric-llm"
        (owner,) = meta["ownerReferences"]
        assert owner["controller"] is True and owner["kind"] == "LLMProfile"
    names = {(c["kind"], c["metadata"]["name"]) for c in children}
    assert len(names) == len(children)


def test_configmap_is_the_engine_yaml_serve_reads(tmp_path: Path) -> None:
    p = profile(
        {
            "model": {"sha256": "a" * 64, "alias": "qwen-small", "huggingFace": {"revision": "v1"}},
            "engine": {
                "contextSize": 8192,
                "parallel": 8,
                "gpuLayers": 0,
                "idleCacheLimit": 4096,
                "samplingThreads": 4,
            },
            "sampling": {"temperature": 0.2, "maxTokens": 256},
            "prompt": {"system": "You are terse."},
        }
    )
    cm = builders.configmap(p)
    assert cm["metadata"]["name"] == "chat-config"
    path = tmp_path / "engine.yaml"
    path.write_text(cm["data"]["engine.yaml"])
    loaded = load_config(path)
    assert loaded == engine_config(p.spec)
    assert loaded.model.hugging_face is not None
    assert loaded.model.hugging_face.repo == "Qwen/Qwen2.5-0.5B-Instruct-GGUF"
    assert loaded.model.hugging_face.revision == "v1"
    assert loaded.model.cache_dir == Path("/models")
    assert loaded.model.local_path() == Path("/models/qwen2.5-0.5b-instruct-q4_k_m.gguf")
    assert loaded.model.sha256 == "a" * 64
    assert loaded.model.alias == "qwen-small"
    assert (loaded.engine.context_size, loaded.engine.parallel) == (8192, 8)
    assert loaded.engine.idle_cache_limit == 4096
    assert loaded.engine.sampling_threads == 4
    assert (loaded.sampling.temperature, loaded.sampling.max_tokens) == (0.2, 256)
    assert loaded.prompt.system == "You are terse."
    assert loaded.server.tls is None
    assert loaded.server.log_format == "json"


def test_configmap_carries_the_profiles_server_limits(tmp_path: Path) -> None:
    limits = {"maxBodyBytes": 65536, "readTimeoutSeconds": 5, "maxSchemaRepetition": 200}
    p = profile({"server": {"limits": limits}})
    path = tmp_path / "engine.yaml"
    path.write_text(builders.configmap(p)["data"]["engine.yaml"])
    loaded = load_config(path).server.limits
    assert (loaded.max_body_bytes, loaded.read_timeout_seconds) == (65536, 5.0)
    assert loaded.max_schema_repetition == 200
    # Unset limits keep the server's defaults.
    assert loaded.max_schema_depth == 32


def test_configmap_carries_the_profiles_default_output_schema(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string", "maxLength": 80}},
        "required": ["title"],
    }
    p = profile({"prompt": {"system": "Shop copy.", "responseFormat": schema}})
    path = tmp_path / "engine.yaml"
    path.write_text(builders.configmap(p)["data"]["engine.yaml"])
    loaded = load_config(path)
    assert loaded.prompt.response_format == schema
    assert loaded.prompt.system == "Shop copy."


@pytest.mark.parametrize(
    ("tls", "client_ca"),
    [
        ({"secretName": "srv"}, None),
        ({"secretName": "srv", "clientCASecretName": "ca"}, "/var/run/sentiric/client-ca/ca.crt"),
    ],
)
def test_tls_paths_point_at_the_mounted_secrets(
    tmp_path: Path, tls: dict[str, str], client_ca: str | None
) -> None:
    p = profile({"tls": tls})
    path = tmp_path / "engine.yaml"
    path.write_text(builders.configmap(p)["data"]["engine.yaml"])
    loaded = load_config(path).server.tls
    assert loaded is not None
    assert str(loaded.cert_file) == "/var/run/sentiric/tls/tls.crt"
    assert str(loaded.key_file) == "/var/run/sentiric/tls/tls.key"
    assert (str(loaded.client_ca_file) if loaded.client_ca_file else None) == client_ca
    pod = _pod({"tls": tls})
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "srv"
    assert ("client-ca" in volumes) == (client_ca is not None)
    mounts = {m["name"]: m["mountPath"] for m in _container(pod, "inference")["volumeMounts"]}
    assert mounts["tls"] == "/var/run/sentiric/tls"


@pytest.mark.parametrize(
    ("cache", "expected"),
    [
        ({}, {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}}),
        (
            {"size": "50Gi", "storageClassName": "fast", "accessMode": "ReadWriteMany"},
            {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "50Gi"}},
                "storageClassName": "fast",
            },
        ),
    ],
)
def test_pvc(cache: dict[str, str], expected: dict[str, Any]) -> None:
    claim = builders.pvc(profile({"model": {"cache": cache}}))
    assert claim["metadata"]["name"] == "chat-model-cache"
    assert claim["spec"] == expected


def test_deployment_runs_download_then_serve_with_the_same_config() -> None:
    d = _deployment()
    assert d["metadata"]["name"] == "chat"
    assert d["spec"]["replicas"] == 1
    assert d["spec"]["selector"]["matchLabels"] == selector_labels("chat")
    pod = d["spec"]["template"]["spec"]
    download = _container(pod, "download", init=True)
    serve = _container(pod, "inference")
    assert download["command"] == [
        "sentiric-llm",
        "download",
        "--config",
        "/etc/sentiric/engine.yaml",
    ]
    assert serve["command"] == [
        "sentiric-llm",
        "serve",
        "--config",
        "/etc/sentiric/engine.yaml",
        "--shutdown-grace",
        "25",
    ]
    assert download["image"] == serve["image"] == IMAGE
    assert {p["name"]: p["containerPort"] for p in serve["ports"]} == {"http": 16070, "grpc": 16071}
    assert download["terminationMessagePolicy"] == "FallbackToLogsOnError"
    # The end of a crashed engine's log (faulthandler's stack included) reaches the status.
    assert serve["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert {"name": "PYTHONFAULTHANDLER", "value": "1"} in serve["env"]
    assert not any(e["name"] == "HF_TOKEN" for e in download["env"])
    cache_mounts = {
        c["name"]: next(m for m in c["volumeMounts"] if m["name"] == "model-cache")
        for c in (download, serve)
    }
    assert cache_mounts["download"]["readOnly"] is False
    assert cache_mounts["inference"]["readOnly"] is True
    claim = next(v for v in pod["volumes"] if v["name"] == "model-cache")
    assert claim["persistentVolumeClaim"]["claimName"] == "chat-model-cache"


def test_token_secret_becomes_hf_token_of_the_download_only() -> None:
    pod = _pod({"model": {"huggingFace": {"tokenSecretRef": {"name": "hf", "key": "tok"}}}})
    env = {e["name"]: e for e in _container(pod, "download", init=True)["env"]}
    assert env["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hf", "key": "tok"}}
    assert not any(e["name"] == "HF_TOKEN" for e in _container(pod, "inference")["env"])


def test_three_probes_answer_three_questions() -> None:
    serve = _container(_pod(), "inference")
    startup, ready, live = serve["startupProbe"], serve["readinessProbe"], serve["livenessProbe"]
    assert startup["httpGet"]["path"] == "/ready"
    assert ready["httpGet"]["path"] == "/ready"
    assert live["httpGet"]["path"] == "/health"
    # A large model must be allowed at least ten minutes to load before liveness applies.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert startup != ready != live


def test_pod_is_hardened() -> None:
    pod = _pod()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for c in (*pod["initContainers"], *pod["containers"]):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])
    assert next(v for v in pod["volumes"] if v["name"] == "tmp")["emptyDir"]


@pytest.mark.parametrize(
    ("gpu", "limit", "strategy"),
    [
        (0, None, {"maxSurge": 1, "maxUnavailable": 0}),
        (2, "2", {"maxSurge": 0, "maxUnavailable": 1}),
    ],
)
def test_gpu_request(gpu: int, limit: str | None, strategy: dict[str, int]) -> None:
    d = _deployment(
        {
            "resources": {
                "gpu": gpu,
                "requests": {"cpu": "2", "memory": "6Gi"},
                "limits": {"memory": "8Gi"},
            }
        }
    )
    pod = d["spec"]["template"]["spec"]
    resources = _container(pod, "inference")["resources"]
    assert resources["requests"] == {"cpu": "2", "memory": "6Gi"}
    assert resources["limits"].get("nvidia.com/gpu") == limit
    assert resources["limits"]["memory"] == "8Gi"
    tolerates_gpu = any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", []))
    assert tolerates_gpu == (gpu > 0)
    assert d["spec"]["strategy"]["rollingUpdate"] == strategy
    # The download needs no GPU: only the serving container asks for one.
    assert "nvidia.com/gpu" not in str(_container(pod, "download", init=True)["resources"])


@pytest.mark.parametrize(
    ("gpu", "own_image", "expected"),
    [
        (0, None, IMAGE),
        (1, None, CUDA_IMAGE),
        (2, None, CUDA_IMAGE),
        (0, "mine:1", "mine:1"),
        (1, "mine:1", "mine:1"),
    ],
)
def test_image_is_the_profiles_own_else_the_default_for_its_hardware(
    gpu: int, own_image: str | None, expected: str
) -> None:
    override: dict[str, Any] = {"resources": {"gpu": gpu}}
    if own_image is not None:
        override["image"] = own_image
    pod = _pod(override)
    # The download runs the same image, so both containers come from one pull.
    assert _container(pod, "download", init=True)["image"] == expected
    assert _container(pod, "inference")["image"] == expected


def test_children_pass_the_images_on_to_the_deployment() -> None:
    (deployment,) = [
        c
        for c in builders.children(profile({"resources": {"gpu": 1}}), images=IMAGES)
        if c["kind"] == "Deployment"
    ]
    pod = deployment["spec"]["template"]["spec"]
    assert {c["image"] for c in (*pod["initContainers"], *pod["containers"])} == {CUDA_IMAGE}


def test_scheduling_and_image_fields_pass_through() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["l4"]}]}
                ]
            }
        }
    }
    pod = _pod(
        {
            "nodeSelector": {"pool": "llm"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}
            ],
            "affinity": affinity,
            "runtimeClassName": "nvidia",
            "priorityClassName": "high",
            "image": "mine:1",
            "imagePullPolicy": "Always",
            "env": [
                {"name": "LLAMA_LOG", "value": "debug"},
                {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            ],
        }
    )
    assert pod["nodeSelector"] == {"pool": "llm"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}
    ]
    assert pod["affinity"] == affinity
    assert (pod["runtimeClassName"], pod["priorityClassName"]) == ("nvidia", "high")
    serve = _container(pod, "inference")
    assert (serve["image"], serve["imagePullPolicy"]) == ("mine:1", "Always")
    env = {e["name"]: e for e in serve["env"]}
    assert env["LLAMA_LOG"]["value"] == "debug"
    assert env["FROM_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "s"


def _checksum(override: dict[str, Any]) -> str:
    value: str = _deployment(override)["spec"]["template"]["metadata"]["annotations"][
        CHECKSUM_ANNOTATION
    ]
    return value


def test_config_checksum_rolls_pods_only_when_the_config_changes() -> None:
    base = _checksum({})
    assert len(base) == 64
    assert _checksum({"sampling": {"temperature": 0.1}}) != base
    assert _checksum({"prompt": {"system": "new"}}) != base
    assert _checksum({"replicas": 3}) == base
    assert _checksum({"nodeSelector": {"a": "b"}}) == base


def test_services_cluster_ip_and_headless() -> None:
    p = profile()
    svc, headless = builders.service(p), builders.headless_service(p)
    assert svc["metadata"]["name"] == "chat" and svc["spec"]["type"] == "ClusterIP"
    assert headless["metadata"]["name"] == "chat-headless"
    assert headless["spec"]["clusterIP"] == "None"
    for s in (svc, headless):
        assert s["spec"]["selector"] == selector_labels("chat")
        assert {p["name"]: p["port"] for p in s["spec"]["ports"]} == {"grpc": 16071, "http": 16070}
    assert builders.endpoints(p) == {
        "grpc": "chat.ai.svc:16071",
        "http": "http://chat.ai.svc:16070",
        "headless": "chat-headless.ai.svc:16071",
        "grpcBalanced": "dns:///chat-headless.ai.svc:16071",
    }


def test_servicemonitor_scrapes_the_cluster_ip_service_once() -> None:
    p = profile(
        {
            "monitoring": {
                "serviceMonitor": {
                    "enabled": True,
                    "interval": "30s",
                    "labels": {"release": "prom"},
                }
            }
        }
    )
    sm = builders.servicemonitor(p)
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    selector = sm["spec"]["selector"]["matchLabels"]
    svc_labels = builders.service(p)["metadata"]["labels"]
    headless_labels = builders.headless_service(p)["metadata"]["labels"]
    assert selector.items() <= svc_labels.items()
    assert not selector.items() <= headless_labels.items()


# Qwen2.5-0.5B-Instruct Q4_K_M (the sample profile's model) as its GGUF header describes it.
SHAPE = ModelShape(
    n_layer=24,
    n_head_kv=2,
    key_length=64,
    value_length=64,
    n_embd=896,
    n_vocab=151936,
    n_ctx_train=32768,
    weights_bytes=491_400_032,
)


def _serve_resources(override: dict[str, Any], shape: ModelShape | None) -> dict[str, Any]:
    d = builders.deployment(profile(override), images=IMAGES, shape=shape)
    resources: dict[str, Any] = _container(d["spec"]["template"]["spec"], "inference")["resources"]
    return resources


PLAN = "<the plan's memory>"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        # No memory in the spec: the plan's memory, besides whatever else is requested.
        ({}, {"memory": PLAN}),
        ({"resources": {"requests": {"cpu": "2"}}}, {"cpu": "2", "memory": PLAN}),
        ({"engine": {"parallel": 0, "contextSize": 0}, "resources": {"gpu": 1}}, {"memory": PLAN}),
        # The user's request is never overridden.
        ({"resources": {"requests": {"memory": "3Gi"}}}, {"memory": "3Gi"}),
        # With a limit too: the plan (sized to fit in the limit)...
        ({"resources": {"limits": {"memory": "8Gi"}}}, {"memory": PLAN}),
        # ...and never above it, which the API server would refuse.
        (
            {
                "engine": {"parallel": 16, "contextSize": 32768},
                "resources": {"limits": {"memory": "2Gi"}},
            },
            {"memory": "2Gi"},
        ),
    ],
    ids=["nothing set", "cpu only", "gpu auto", "user request", "limit", "over the limit"],
)
def test_memory_request_from_the_plan_only_when_the_spec_sets_none(
    override: dict[str, Any], expected: dict[str, str]
) -> None:
    spec = profile(override).spec
    planned = mebibytes(plan_for(spec, SHAPE).memory_bytes)
    want = {k: planned if v == PLAN else v for k, v in expected.items()}
    assert _serve_resources(override, SHAPE).get("requests", {}) == want
    if PLAN in expected.values():
        assert memory_request(spec, SHAPE) == planned


def test_no_memory_request_before_a_shape_is_known() -> None:
    assert "requests" not in _serve_resources({}, None)


def test_memory_request_is_deterministic_and_spares_the_download() -> None:
    first = builders.deployment(profile(), images=IMAGES, shape=SHAPE)
    again = builders.deployment(profile(), images=IMAGES, shape=SHAPE)
    assert first == again
    without = builders.deployment(profile(), images=IMAGES)
    pod, pod_without = first["spec"]["template"]["spec"], without["spec"]["template"]["spec"]
    assert pod["initContainers"] == pod_without["initContainers"]
    # The config checksum does not move: only the request changes in the pod template.
    annotations = first["spec"]["template"]["metadata"]["annotations"]
    assert annotations == without["spec"]["template"]["metadata"]["annotations"]


def test_more_sequences_request_more_memory() -> None:
    small = _serve_resources({"engine": {"parallel": 1, "contextSize": 2048}}, SHAPE)
    large = _serve_resources({"engine": {"parallel": 8, "contextSize": 8192}}, SHAPE)
    assert parse_quantity(small["requests"]["memory"]) < parse_quantity(large["requests"]["memory"])


def test_children_pass_the_shape_on_to_the_deployment() -> None:
    (deployment,) = [
        c
        for c in builders.children(profile(), images=IMAGES, shape=SHAPE)
        if c["kind"] == "Deployment"
    ]
    serve = _container(deployment["spec"]["template"]["spec"], "inference")
    assert serve["resources"]["requests"]["memory"] == memory_request(profile().spec, SHAPE)


def test_profile_pods_are_never_guaranteed_qos() -> None:
    # sizing.memory_request lowers a request below the memory limit; that cannot demote a
    # pod from Guaranteed QoS because the download container already makes every pod
    # Burstable (its memory request is below its limit).
    pod = builders.deployment(profile(), images=IMAGES, shape=SHAPE)["spec"]["template"]["spec"]
    download = _container(pod, "download", init=True)["resources"]
    assert parse_quantity(download["requests"]["memory"]) < parse_quantity(
        download["limits"]["memory"]
    )
