"""LLMProfile.status from observed children: pure, so every condition reason is unit-tested.

Conditions (metav1.Condition shape): ModelReady (the GGUF is in the cache), Available (at
least one pod serves), Ready (the rollout of the current spec is complete and serving), and
Monitoring (only when a ServiceMonitor is asked for). Messages say what to do next.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sentiric_operator.builders import endpoints, selector_string
from sentiric_operator.builders.configmap import MODEL_DIR
from sentiric_operator.builders.deployment import DOWNLOAD_CONTAINER, SERVE_CONTAINER
from sentiric_operator.crashes import crash_of, log_tail
from sentiric_operator.observations import (
    ContainerObservation,
    DeploymentObservation,
    PodObservation,
)
from sentiric_operator.sizing import (
    draft_source,
    known_draft_shape,
    known_shape,
    plan_status,
    same_model,
    shape_from_report,
)
from sentiric_operator.specs import GPU_RESOURCE, Profile

MODEL_READY = "ModelReady"
AVAILABLE = "Available"
READY = "Ready"
MONITORING = "Monitoring"

IMAGE_PULL_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
CONFIG_ERROR_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
ENGINE_CRASHED = "EngineCrashed"
CONTAINER_CRASHING = "ContainerCrashing"
_MESSAGE_TAIL = 600
# Top-level status keys compute_status leaves out when unknown (no model shape reported yet).
OPTIONAL_KEYS = ("plan",)


class Monitoring(enum.Enum):
    NOT_REQUESTED = "not-requested"
    APPLIED = "applied"
    CRD_MISSING = "crd-missing"


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    """Everything the status is computed from, gathered by the handlers."""

    deployment: DeploymentObservation | None
    pods: Sequence[PodObservation]
    monitoring: Monitoring = Monitoring.NOT_REQUESTED
    apply_error: str | None = None


def _tail(text: str | None) -> str:
    text = (text or "").strip()
    return text if len(text) <= _MESSAGE_TAIL else "..." + text[-_MESSAGE_TAIL:]


def _live(pods: Iterable[PodObservation]) -> list[PodObservation]:
    return sorted((p for p in pods if not p.deleting), key=lambda p: p.name)


def _ended(c: ContainerObservation) -> str:
    # "exit code 137" alone hides an OOM kill of the download (a 1Gi limit, a huge file).
    crash = crash_of(c)
    return crash.describe() if crash is not None else f"exit code {c.exit_code}"


def _download_failure(pod: PodObservation) -> ContainerObservation | None:
    c = pod.init_container(DOWNLOAD_CONTAINER)
    if c is None:
        return None
    crashed = c.waiting_reason == "CrashLoopBackOff"
    failed_now = c.terminated_now and (c.exit_code or 0) != 0
    return (
        c
        if crashed or failed_now or (c.restart_count > 0 and not c.running and c.exit_code)
        else None
    )


def _downloaded(pod: PodObservation) -> ContainerObservation | None:
    c = pod.init_container(DOWNLOAD_CONTAINER)
    if c is not None and c.terminated_now and c.exit_code == 0:
        return c
    # Once the serve container has started, the init container necessarily succeeded.
    serve = pod.container(SERVE_CONTAINER)
    if serve is not None and (serve.running or serve.restart_count > 0):
        return c or ContainerObservation(name=DOWNLOAD_CONTAINER)
    return None


def _image_pull(pod: PodObservation) -> ContainerObservation | None:
    return next(
        (
            c
            for c in (*pod.init_containers, *pod.containers)
            if c.waiting_reason in IMAGE_PULL_REASONS
        ),
        None,
    )


def _config_error(pod: PodObservation) -> ContainerObservation | None:
    return next(
        (
            c
            for c in (*pod.init_containers, *pod.containers)
            if c.waiting_reason in CONFIG_ERROR_REASONS
        ),
        None,
    )


def _unschedulable(pod: PodObservation) -> Condition | None:
    if pod.unschedulable_message is None:
        return None
    hint = "check nodeSelector, tolerations, affinity and resources"
    if GPU_RESOURCE in pod.unschedulable_message:
        hint = f"no node has a free {GPU_RESOURCE}: add GPU nodes, free a GPU, or lower spec.resources.gpu"
    elif "PersistentVolumeClaim" in pod.unschedulable_message:
        hint = "the model cache claim is not bound: check spec.model.cache.storageClassName"
    return Condition(
        AVAILABLE,
        "False",
        "Unschedulable",
        f"pod {pod.name} cannot be scheduled: {pod.unschedulable_message} ({hint})",
    )


def _model_condition(profile: Profile, pods: Sequence[PodObservation]) -> Condition:
    hf = profile.spec.model.hugging_face
    what = f"{hf.repo}/{hf.file}@{hf.revision}"
    for pod in pods:
        if _downloaded(pod) is not None:
            return Condition(
                MODEL_READY, "True", "ModelDownloaded", f"{what} is in the model cache"
            )
    for pod in pods:
        failed = _download_failure(pod)
        if failed is not None:
            return Condition(
                MODEL_READY,
                "False",
                "DownloadFailed",
                f"downloading {what} failed ({_ended(failed)}, {failed.restart_count} "
                f"restarts): {_tail(failed.terminated_message) or 'no message'}. Check "
                f"spec.model.huggingFace and the token Secret; kubectl logs -n "
                f"{profile.namespace} {pod.name} -c {DOWNLOAD_CONTAINER}",
            )
    for pod in pods:
        pulling = _image_pull(pod)
        if pulling is not None:
            return Condition(MODEL_READY, "False", "ImagePullFailed", _image_message(pod, pulling))
        blocked = _config_error(pod)
        if blocked is not None:
            return Condition(
                MODEL_READY, "False", "ContainerConfigError", _config_message(pod, blocked)
            )
    for pod in pods:
        c = pod.init_container(DOWNLOAD_CONTAINER)
        if c is not None and c.running:
            return Condition(
                MODEL_READY, "False", "Downloading", f"pod {pod.name} is downloading {what}"
            )
    if not pods and profile.spec.replicas == 0:
        return Condition(
            MODEL_READY, "Unknown", "ScaledToZero", "spec.replicas is 0: no pod downloads the model"
        )
    return Condition(MODEL_READY, "False", "WaitingForPod", f"waiting for a pod to download {what}")


def _image_message(pod: PodObservation, c: ContainerObservation) -> str:
    return (
        f"pod {pod.name} container {c.name} cannot pull its image ({c.waiting_reason}): "
        f"{_tail(c.waiting_message)}. Check spec.image and the registry credentials"
    )


def _config_message(pod: PodObservation, c: ContainerObservation) -> str:
    return (
        f"pod {pod.name} container {c.name} cannot start ({c.waiting_reason}): "
        f"{_tail(c.waiting_message)}. Check the Secrets and ConfigMap the profile references"
    )


def _engine_crashed(profile: Profile, pod: PodObservation, c: ContainerObservation) -> Condition:
    crash = crash_of(c)
    assert crash is not None
    if crash.oom_killed:
        limit = profile.spec.resources.limits.get("memory")
        hint = (
            f"raise spec.resources.limits.memory (now {limit}) or lower engine.contextSize or "
            "engine.parallel (the KV cache grows with both)"
            if limit is not None
            else "the pod has no memory limit, so its node ran out of memory: set "
            "spec.resources.requests.memory and limits.memory to what the model needs"
        )
    elif crash.could_be_a_stop:
        hint = (
            f"{crash.name} is also how the kubelet stops a container whose liveness probe "
            f"fails; kubectl describe pod -n {profile.namespace} {pod.name} shows which"
        )
    else:
        hint = "a crash inside the engine process (llama.cpp or another native library)"
    tail = log_tail(c.terminated_message)
    return Condition(
        AVAILABLE,
        "False",
        ENGINE_CRASHED,
        f"pod {pod.name}: the inference engine was {crash.describe()}, {c.restart_count} "
        f"restarts; {hint}. Last log lines: {tail or 'none'}. kubectl logs -n "
        f"{profile.namespace} {pod.name} -c {SERVE_CONTAINER} --previous",
    )


def _serve_problem(profile: Profile, pod: PodObservation) -> Condition | None:
    c = pod.container(SERVE_CONTAINER)
    if c is None:
        return None
    crash = crash_of(c)
    if c.waiting_reason == "CrashLoopBackOff" or (c.terminated_now and c.exit_code):
        if crash is not None:
            return _engine_crashed(profile, pod, c)
        return Condition(
            AVAILABLE,
            "False",
            CONTAINER_CRASHING,
            f"pod {pod.name}: the inference container exits (code {c.exit_code}, "
            f"{c.restart_count} restarts): {_tail(c.terminated_message) or 'no message'}. "
            f"kubectl logs {pod.name} -c {SERVE_CONTAINER} --previous",
        )
    if c.running and not c.ready:
        if c.restart_count > 0:
            # Restarted and loading again: a signal no stop sends (SIGSEGV, an OOM kill) says
            # the engine crashed; SIGKILL/SIGTERM alone are what a failing liveness probe ends in.
            if crash is not None and not crash.could_be_a_stop:
                return _engine_crashed(profile, pod, c)
            return Condition(
                AVAILABLE,
                "False",
                "ProbeFailing",
                f"pod {pod.name}: the inference container was restarted {c.restart_count} times "
                f"(last exit code {c.exit_code}) and is not ready: the startup/liveness probes "
                f"(/ready, /health) fail. kubectl describe pod {pod.name}",
            )
        return Condition(
            AVAILABLE,
            "False",
            "ModelLoading",
            f"pod {pod.name} is loading the model; it turns ready when /ready answers 200",
        )
    return None


def _available_condition(
    profile: Profile,
    deployment: DeploymentObservation | None,
    pods: Sequence[PodObservation],
    model: Condition,
) -> Condition:
    if deployment is None:
        return Condition(AVAILABLE, "False", "Creating", "the Deployment does not exist yet")
    if profile.spec.replicas == 0:
        return Condition(AVAILABLE, "False", "ScaledToZero", "spec.replicas is 0")
    if deployment.available_replicas > 0:
        return Condition(
            AVAILABLE,
            "True",
            "MinimumReplicasAvailable",
            f"{deployment.available_replicas} of {profile.spec.replicas} replicas serve requests",
        )
    for pod in pods:
        if (unschedulable := _unschedulable(pod)) is not None:
            return unschedulable
    for pod in pods:
        if (problem := _serve_problem(profile, pod)) is not None:
            return problem
    if model.status == "False" and model.reason != "WaitingForPod":
        return Condition(AVAILABLE, "False", model.reason, model.message)
    if deployment.replica_failure:
        return Condition(AVAILABLE, "False", "ReplicaFailure", deployment.replica_failure)
    if deployment.progress_deadline_exceeded:
        return Condition(
            AVAILABLE, "False", "ProgressDeadlineExceeded", deployment.progress_deadline_exceeded
        )
    return Condition(
        AVAILABLE,
        "False",
        "Progressing",
        f"waiting for pods: {deployment.ready_replicas} of {profile.spec.replicas} ready",
    )


def _ready_condition(
    profile: Profile,
    observed: Observed,
    pods: Sequence[PodObservation],
    model: Condition,
    available: Condition,
    checksum: str,
) -> Condition:
    if observed.apply_error:
        return Condition(READY, "False", "ApplyFailed", observed.apply_error)
    if profile.spec.replicas == 0:
        return Condition(READY, "False", "ScaledToZero", "spec.replicas is 0; scale up to serve")
    if available.status != "True":
        return Condition(READY, "False", available.reason, available.message)
    if model.status != "True":
        return Condition(READY, "False", model.reason, model.message)
    d = observed.deployment
    want = profile.spec.replicas
    assert d is not None  # Available is True only with a Deployment
    rolled = (
        d.observed_generation >= d.generation
        and d.config_checksum == checksum
        and d.updated_replicas >= want
        and d.ready_replicas >= want
        and d.replicas == d.updated_replicas
    )
    if not rolled:
        # Another replica serves, but one that crashes stalls the rollout: say so, not only
        # "Progressing", so a crashing engine is visible in `kubectl get llmp` either way.
        for pod in pods:
            problem = _serve_problem(profile, pod)
            if problem is not None and problem.reason in (ENGINE_CRASHED, CONTAINER_CRASHING):
                return Condition(READY, "False", problem.reason, problem.message)
        return Condition(
            READY,
            "False",
            "Progressing",
            f"rolling out: {d.updated_replicas} of {want} pods updated, {d.ready_replicas} ready",
        )
    return Condition(
        READY,
        "True",
        "AllReplicasReady",
        f"{d.ready_replicas} of {want} replicas serve {profile.spec.model.hugging_face.file}",
    )


def _monitoring_condition(monitoring: Monitoring) -> Condition | None:
    if monitoring is Monitoring.APPLIED:
        return Condition(
            MONITORING, "True", "ServiceMonitorApplied", "the ServiceMonitor is applied"
        )
    if monitoring is Monitoring.CRD_MISSING:
        return Condition(
            MONITORING,
            "False",
            "ServiceMonitorCRDMissing",
            "spec.monitoring.serviceMonitor.enabled is true but the ServiceMonitor CRD "
            "(monitoring.coreos.com/v1) is not installed; install the prometheus-operator CRDs. "
            "Serving is unaffected and the operator creates the ServiceMonitor once the CRD exists",
        )
    return None


def _reports(pods: Sequence[PodObservation]) -> list[tuple[PodObservation, dict[str, Any]]]:
    """The JSON facts `sentiric-llm download` left as its termination message, per pod."""
    out = []
    for pod in pods:
        c = _downloaded(pod)
        if c is None or not c.terminated_message:
            continue
        try:
            reported = json.loads(c.terminated_message)
        except ValueError:
            continue
        if isinstance(reported, dict):
            out.append((pod, reported))
    return out


def _model_facts(
    profile: Profile,
    pods: Sequence[PodObservation],
    config_checksum: str,
    previous: Mapping[str, Any],
) -> dict[str, Any]:
    hf = profile.spec.model.hugging_face
    facts: dict[str, Any] = {
        "repo": hf.repo,
        "file": hf.file,
        "revision": hf.revision,
        "path": str(MODEL_DIR / hf.file),
    }
    if profile.spec.model.sha256:
        facts["sha256"] = profile.spec.model.sha256.lower()
    reports = _reports(pods)
    # Pods of the current config download the current model; during a rollout to another
    # model the old pods still report the old one.
    current = [r for pod, r in reports if pod.config_checksum == config_checksum]
    chosen = current[0] if current else reports[0][1] if reports else None
    if chosen is not None:
        if isinstance(chosen.get("sizeBytes"), int):
            facts["sizeBytes"] = chosen["sizeBytes"]
        if isinstance(chosen.get("sha256"), str):
            facts["sha256"] = chosen["sha256"].lower()
    draft = _draft_facts(profile, current[0] if current else None, previous)
    if draft is not None:
        facts["draft"] = draft
    shape = shape_from_report(current[0]) if current else None
    if shape is not None:
        facts["shape"] = shape
    else:
        # The pod that reported may be gone (scaled to zero, rescheduled): the shape of the
        # same file stays known, so the memory request it sized does not flap with the pods.
        before = previous.get("model")
        if isinstance(before, Mapping) and same_model(profile, before):
            kept = shape_from_report(before)
            if kept is not None and isinstance(before.get("sizeBytes"), int):
                facts["shape"] = kept
                facts.setdefault("sizeBytes", before["sizeBytes"])
    return facts


def _draft_facts(
    profile: Profile, report: Mapping[str, Any] | None, previous: Mapping[str, Any]
) -> dict[str, Any] | None:
    """status.model.draft: the Hub draft model's identity, size and shape as a download of
    the current config reported them, else as the status kept them for the same file."""
    want = draft_source(profile)
    if want is None:
        return None
    before = previous.get("model")
    kept = before.get("draft") if isinstance(before, Mapping) else None
    for candidate in (report.get("draft") if report is not None else None, kept):
        if not isinstance(candidate, Mapping) or any(
            candidate.get(k) != v for k, v in want.items()
        ):
            continue
        shape = shape_from_report(candidate)
        size = candidate.get("sizeBytes")
        if shape is not None and isinstance(size, int) and not isinstance(size, bool):
            return {**want, "sizeBytes": size, "shape": shape}
    return None


def _plan(profile: Profile, model: Mapping[str, Any]) -> dict[str, Any] | None:
    status = {"model": model}
    shape = known_shape(profile, status)
    if shape is None:
        return None
    return plan_status(profile.spec, shape, draft=known_draft_shape(profile, status))


def _conditions_with_times(
    new: Sequence[Condition], previous: Sequence[Mapping[str, Any]], generation: int, now: str
) -> list[dict[str, Any]]:
    """lastTransitionTime moves only when a condition's status changes."""
    before = {c.get("type"): c for c in previous}
    out = []
    for c in new:
        old = before.get(c.type)
        since = old.get("lastTransitionTime") if old and old.get("status") == c.status else None
        out.append(
            {
                "type": c.type,
                "status": c.status,
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": since or now,
                "observedGeneration": generation,
            }
        )
    return out


def compute_status(
    profile: Profile,
    observed: Observed,
    *,
    config_checksum: str,
    previous: Mapping[str, Any],
    now: str,
) -> dict[str, Any]:
    """The whole `.status` the profile should have; compare with the old one before writing."""
    pods = _live(observed.pods)
    model = _model_condition(profile, pods)
    available = _available_condition(profile, observed.deployment, pods, model)
    ready = _ready_condition(profile, observed, pods, model, available, config_checksum)
    conditions = [model, available, ready]
    monitoring = _monitoring_condition(observed.monitoring)
    if monitoring is not None:
        conditions.append(monitoring)
    d = observed.deployment
    model_facts = _model_facts(profile, pods, config_checksum, previous)
    status: dict[str, Any] = {
        "observedGeneration": profile.generation,
        "replicas": d.replicas if d else 0,
        "readyReplicas": d.ready_replicas if d else 0,
        "selector": selector_string(profile.name),
        "endpoints": endpoints(profile),
        "model": model_facts,
        "conditions": _conditions_with_times(
            conditions, previous.get("conditions") or [], profile.generation, now
        ),
    }
    plan = _plan(profile, model_facts)
    if plan is not None:
        status["plan"] = plan
    return status


def invalid_status(
    generation: int, message: str, previous: Mapping[str, Any], now: str
) -> dict[str, Any]:
    """Status of a profile whose spec can never work: nothing is built until it is fixed."""
    conditions = [
        Condition(READY, "False", "InvalidSpec", f"{message}; fix the spec, nothing was applied"),
    ]
    return {
        "observedGeneration": generation,
        "conditions": _conditions_with_times(
            conditions, previous.get("conditions") or [], generation, now
        ),
    }


def status_patch(current: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch turning `current` into `new`; empty when nothing changed.

    Keys that disappeared from a nested object, and the optional top-level ones (`plan`), are
    set to null, which a merge patch needs to remove them; lists (the conditions) are replaced
    whole.
    """
    changes: dict[str, Any] = {}
    for key in OPTIONAL_KEYS:
        if key not in new and current.get(key) is not None:
            changes[key] = None
    for key, value in new.items():
        old = current.get(key)
        if old == value:
            continue
        if isinstance(value, dict) and isinstance(old, Mapping):
            value = {**{k: None for k in old if k not in value}, **value}
        changes[key] = value
    return changes
