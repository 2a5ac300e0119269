"""The inference Deployment: download init container, serve container, probes, hardening."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sentiric_inference.config import GRPC_PORT, HTTP_PORT
from sentiric_inference.engine.sizing import ModelShape

from sentiric_operator.builders.configmap import (
    API_KEYS_DIR,
    CHECKSUM_ANNOTATION,
    CLIENT_CA_DIR,
    CONFIG_DIR,
    CONFIG_KEY,
    CONFIG_PATH,
    MODEL_DIR,
    TLS_DIR,
    EngineYaml,
)
from sentiric_operator.builders.labels import (
    INFERENCE,
    config_map_name,
    deployment_name,
    http_port_name,
    object_meta,
    pvc_name,
    selector_labels,
    standard_labels,
)
from sentiric_operator.sizing import memory_request
from sentiric_operator.specs import GPU_RESOURCE, Profile, ProfileSpec

DOWNLOAD_CONTAINER = "download"
SERVE_CONTAINER = "inference"
RUN_AS = 10001
# A large GGUF may take minutes to map and warm up: the startup probe allows 15 minutes
# (90 x 10 s) before liveness takes over, so loading is never mistaken for a hang.
STARTUP_PERIOD_S = 10
STARTUP_FAILURES = 90


@dataclass(frozen=True)
class InferenceImages:
    """The operator's default inference images; a profile's own spec.image wins over both."""

    cpu: str
    cuda: str

    def for_spec(self, spec: ProfileSpec) -> str:
        if spec.image:
            return spec.image
        # The CPU build would start on a GPU node and quietly decode on the CPU, so a profile
        # that asks for a GPU gets the llama.cpp build that can use it.
        return self.cuda if spec.resources.gpu > 0 else self.cpu


def _container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _mounts(spec: ProfileSpec, *, models_read_only: bool) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": str(CONFIG_DIR), "readOnly": True},
        {"name": "model-cache", "mountPath": str(MODEL_DIR), "readOnly": models_read_only},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if spec.tls is not None:
        mounts.append({"name": "tls", "mountPath": str(TLS_DIR), "readOnly": True})
        if spec.tls.client_ca_secret_name:
            mounts.append({"name": "client-ca", "mountPath": str(CLIENT_CA_DIR), "readOnly": True})
    return mounts


def _api_key_mounts(spec: ProfileSpec) -> list[dict[str, Any]]:
    # Only the server reads the keys; the download container never sees them.
    if spec.auth.api_key_secret_ref is None:
        return []
    return [{"name": "api-keys", "mountPath": str(API_KEYS_DIR), "readOnly": True}]


def _volumes(profile: Profile) -> list[dict[str, Any]]:
    spec = profile.spec
    volumes: list[dict[str, Any]] = [
        {
            "name": "config",
            "configMap": {
                "name": config_map_name(profile),
                "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}],
            },
        },
        {"name": "model-cache", "persistentVolumeClaim": {"claimName": pvc_name(profile)}},
        # readOnlyRootFilesystem: Python, huggingface_hub and llama.cpp still need scratch space.
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    if spec.tls is not None:
        volumes.append({"name": "tls", "secret": {"secretName": spec.tls.secret_name}})
        if spec.tls.client_ca_secret_name:
            volumes.append(
                {"name": "client-ca", "secret": {"secretName": spec.tls.client_ca_secret_name}}
            )
    ref = spec.auth.api_key_secret_ref
    if ref is not None:
        # The whole Secret (no items, no subPath): the kubelet then swaps in a rotated key
        # file, and the server reads it again without a restart. A Secret without `ref.key`
        # stops the server at start with a message naming the file.
        volumes.append({"name": "api-keys", "secret": {"secretName": ref.name}})
    return volumes


def _download_container(
    spec: ProfileSpec, image: str, pull_policy: dict[str, str]
) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "HOME", "value": "/tmp"},
        # Hub metadata and locks live next to the model, so a restarted pod resumes the download.
        {"name": "HF_HOME", "value": str(MODEL_DIR / ".huggingface")},
    ]
    ref = spec.model.hugging_face.token_secret_ref
    if ref is not None:
        env.append(
            {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
        )
    return {
        "name": DOWNLOAD_CONTAINER,
        "image": image,
        **pull_policy,
        "command": ["sentiric-llm", "download", "--config", str(CONFIG_PATH)],
        "env": env,
        # The log tail becomes the termination message, which the operator copies into the
        # ModelReady condition: a failed download explains itself in `kubectl get llmp`.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": _container_security(),
        "volumeMounts": _mounts(spec, models_read_only=False),
    }


def _resources(
    spec: ProfileSpec, shape: ModelShape | None, draft: ModelShape | None
) -> dict[str, Any]:
    requests = {k: str(v) for k, v in spec.resources.requests.items()}
    # Without a memory request the scheduler would place the pod as if it needed nothing, and
    # the node would run out when the model loads: request what the sizing plan needs.
    planned = memory_request(spec, shape, draft=draft)
    if planned is not None:
        requests["memory"] = planned
    limits = {k: str(v) for k, v in spec.resources.limits.items()}
    if spec.resources.gpu > 0:
        limits[GPU_RESOURCE] = str(spec.resources.gpu)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _http_probe(
    spec: ProfileSpec, path: str, *, period: int, failures: int, timeout: int
) -> dict[str, Any]:
    get: dict[str, Any] = {"path": path, "port": http_port_name(spec)}
    if spec.https:
        # The kubelet does not verify the certificate of an HTTPS probe; it only speaks TLS.
        get["scheme"] = "HTTPS"
    return {
        "httpGet": get,
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


def prestop_command(drain_delay: int, pid: int = 1) -> list[str]:
    """The preStop hook: SIGUSR1 makes the server drain (/ready 503, gRPC health
    NOT_SERVING, still serving), then wait while endpoint lists drop the pod; the kubelet
    sends SIGTERM after it. The serve process is the container's PID 1 (no shell wraps it).
    """
    return ["/bin/sh", "-c", f"kill -USR1 {pid} && sleep {drain_delay}"]


def _serve_container(
    spec: ProfileSpec,
    image: str,
    pull_policy: dict[str, str],
    shape: ModelShape | None,
    draft: ModelShape | None,
) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "HOME", "value": "/tmp"},
        # A native crash (SIGSEGV, SIGABRT, ... in llama.cpp) then prints the Python stack to
        # stderr before the process dies, so it is among the last log lines the status shows.
        {"name": "PYTHONFAULTHANDLER", "value": "1"},
    ]
    env += [e.model_dump(by_alias=True, exclude_none=True) for e in spec.env]
    return {
        "name": SERVE_CONTAINER,
        "image": image,
        **pull_policy,
        "command": [
            "sentiric-llm",
            "serve",
            "--config",
            str(CONFIG_PATH),
            "--shutdown-grace",
            str(spec.shutdown.grace_seconds),
        ],
        "ports": [
            {"name": http_port_name(spec), "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        ],
        "env": env,
        # When the engine dies (a signal, an OOM kill), the kubelet keeps the end of its log
        # as the termination message; the operator puts it into the EngineCrashed condition.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": _resources(spec, shape, draft),
        # Three questions, three probes: has the model finished loading (startup), may this
        # pod take traffic now (readiness), is the process wedged and worth a restart (liveness).
        "startupProbe": _http_probe(
            spec, "/ready", period=STARTUP_PERIOD_S, failures=STARTUP_FAILURES, timeout=5
        ),
        "readinessProbe": _http_probe(spec, "/ready", period=5, failures=2, timeout=3),
        "livenessProbe": _http_probe(spec, "/health", period=20, failures=3, timeout=10),
        "lifecycle": {
            "preStop": {"exec": {"command": prestop_command(spec.shutdown.drain_delay_seconds)}}
        },
        "securityContext": _container_security(),
        "volumeMounts": _mounts(spec, models_read_only=True) + _api_key_mounts(spec),
    }


def _tolerations(spec: ProfileSpec) -> list[dict[str, Any]]:
    tolerations = [t.model_dump(by_alias=True, exclude_none=True) for t in spec.tolerations]
    # GPU nodes are commonly tainted nvidia.com/gpu:NoSchedule; a GPU profile tolerates that.
    if spec.resources.gpu > 0 and not any(t.get("key") == GPU_RESOURCE for t in tolerations):
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    return tolerations


def _strategy(spec: ProfileSpec) -> dict[str, Any]:
    # A GPU pod cannot surge onto a GPU that its predecessor still holds, so GPU profiles
    # replace pods one at a time; CPU profiles keep full capacity during a rollout.
    if spec.resources.gpu > 0:
        rolling = {"maxSurge": 0, "maxUnavailable": 1}
    else:
        rolling = {"maxSurge": 1, "maxUnavailable": 0}
    return {"type": "RollingUpdate", "rollingUpdate": rolling}


SPREAD_KEYS = ("kubernetes.io/hostname", "topology.kubernetes.io/zone")


def topology_spread(profile: Profile) -> list[dict[str, Any]]:
    """Replicas spread over nodes, then zones, as a preference (ScheduleAnyway): one node
    or zone going down takes as few replicas as the cluster allows, and a small cluster
    still schedules every replica. pod-template-hash keeps a rollout's new pods spread
    among themselves rather than around the old ones."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector_labels(profile.name)},
            "matchLabelKeys": ["pod-template-hash"],
        }
        for key in SPREAD_KEYS
    ]


def pod_spec(
    profile: Profile,
    image: str,
    shape: ModelShape | None = None,
    draft: ModelShape | None = None,
) -> dict[str, Any]:
    spec = profile.spec
    pull_policy: dict[str, str] = {}
    if spec.image_pull_policy:
        pull_policy["imagePullPolicy"] = spec.image_pull_policy
    pod: dict[str, Any] = {
        # The inference server never calls the Kubernetes API.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # preStop drain, then the server's own grace, then a margin: never killed mid-drain.
        "terminationGracePeriodSeconds": spec.shutdown.termination_grace,
        "topologySpreadConstraints": topology_spread(profile),
        "initContainers": [_download_container(spec, image, pull_policy)],
        "containers": [_serve_container(spec, image, pull_policy, shape, draft)],
        "volumes": _volumes(profile),
    }
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    tolerations = _tolerations(spec)
    if tolerations:
        pod["tolerations"] = tolerations
    if spec.affinity:
        pod["affinity"] = spec.affinity
    if spec.runtime_class_name:
        pod["runtimeClassName"] = spec.runtime_class_name
    if spec.priority_class_name:
        pod["priorityClassName"] = spec.priority_class_name
    return pod


def deployment(
    profile: Profile,
    *,
    images: InferenceImages,
    shape: ModelShape | None = None,
    draft: ModelShape | None = None,
    config: EngineYaml | None = None,
) -> dict[str, Any]:
    """The Deployment; `shape` is the model's as a download reported it (status.model.shape),
    `draft` engine.draftModel's (status.model.draft.shape).

    With a shape, and no memory request in the spec, the serve container requests the memory
    of the sizing plan (sizing.py); before any download reported one, none. `config` is
    engine.yaml when the caller rendered it already (its checksum rolls the pods).
    """
    image = images.for_spec(profile.spec)
    checksum = (config or EngineYaml.of(profile.spec)).checksum
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(profile, deployment_name(profile), INFERENCE),
        "spec": {
            "replicas": profile.spec.replicas,
            "selector": {"matchLabels": selector_labels(profile.name)},
            "strategy": _strategy(profile.spec),
            "template": {
                "metadata": {
                    "labels": standard_labels(profile, INFERENCE),
                    "annotations": {CHECKSUM_ANNOTATION: checksum},
                },
                "spec": pod_spec(profile, image, shape, draft),
            },
        },
    }
