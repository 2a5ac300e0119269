"""What the operator observed of a profile's Deployment and Pods, as small typed values.

kopf's indexes store these instead of whole bodies: less memory per pod, and the status
function reads plain attributes instead of walking nested dicts with defaults everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sentiric_operator.builders.configmap import CHECKSUM_ANNOTATION


@dataclass(frozen=True)
class ContainerObservation:
    name: str
    ready: bool = False
    running: bool = False
    restart_count: int = 0
    waiting_reason: str | None = None
    waiting_message: str | None = None
    # The current state when terminated, else the last termination (what a crash loop shows).
    exit_code: int | None = None
    # Filled by few runtimes; most report a death by signal only as exit code 128 + signal.
    signal: int | None = None
    terminated_reason: str | None = None
    terminated_message: str | None = None
    terminated_now: bool = False


@dataclass(frozen=True)
class PodObservation:
    name: str
    phase: str = "Pending"
    deleting: bool = False
    unschedulable_message: str | None = None
    ready: bool = False
    init_containers: tuple[ContainerObservation, ...] = ()
    containers: tuple[ContainerObservation, ...] = ()
    config_checksum: str | None = None

    def init_container(self, name: str) -> ContainerObservation | None:
        return next((c for c in self.init_containers if c.name == name), None)

    def container(self, name: str) -> ContainerObservation | None:
        return next((c for c in self.containers if c.name == name), None)


@dataclass(frozen=True)
class DeploymentObservation:
    name: str
    generation: int = 0
    observed_generation: int = 0
    desired_replicas: int = 1
    replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0
    available_replicas: int = 0
    progress_deadline_exceeded: str | None = None
    replica_failure: str | None = None
    config_checksum: str | None = None


def _int(value: Any, default: int = 0) -> int:
    return (
        int(value) if isinstance(value, int | str) and str(value).lstrip("-").isdigit() else default
    )


def _container(status: Mapping[str, Any]) -> ContainerObservation:
    state = status.get("state") or {}
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated")
    last = (status.get("lastState") or {}).get("terminated")
    ended = terminated or last or {}
    return ContainerObservation(
        name=str(status.get("name", "")),
        ready=bool(status.get("ready", False)),
        running="running" in state,
        restart_count=_int(status.get("restartCount")),
        waiting_reason=waiting.get("reason"),
        waiting_message=waiting.get("message"),
        exit_code=_int(ended["exitCode"]) if "exitCode" in ended else None,
        signal=_int(ended.get("signal")) or None,
        terminated_reason=ended.get("reason"),
        terminated_message=ended.get("message"),
        terminated_now=terminated is not None,
    )


def observe_pod(body: Mapping[str, Any]) -> PodObservation:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    scheduled = conditions.get("PodScheduled") or {}
    unschedulable = None
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        unschedulable = str(scheduled.get("message") or "no node fits the pod")
    annotations = meta.get("annotations") or {}
    return PodObservation(
        name=str(meta.get("name", "")),
        phase=str(status.get("phase", "Pending")),
        deleting=meta.get("deletionTimestamp") is not None,
        unschedulable_message=unschedulable,
        ready=(conditions.get("Ready") or {}).get("status") == "True",
        init_containers=tuple(_container(c) for c in status.get("initContainerStatuses") or []),
        containers=tuple(_container(c) for c in status.get("containerStatuses") or []),
        config_checksum=annotations.get(CHECKSUM_ANNOTATION),
    )


def observe_deployment(body: Mapping[str, Any]) -> DeploymentObservation:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    progressing = conditions.get("Progressing") or {}
    deadline = None
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        deadline = str(progressing.get("message") or "rollout exceeded its progress deadline")
    failure = conditions.get("ReplicaFailure") or {}
    template_meta = (spec.get("template") or {}).get("metadata") or {}
    return DeploymentObservation(
        name=str(meta.get("name", "")),
        generation=_int(meta.get("generation")),
        observed_generation=_int(status.get("observedGeneration")),
        desired_replicas=_int(spec.get("replicas"), 1),
        replicas=_int(status.get("replicas")),
        ready_replicas=_int(status.get("readyReplicas")),
        updated_replicas=_int(status.get("updatedReplicas")),
        available_replicas=_int(status.get("availableReplicas")),
        progress_deadline_exceeded=deadline,
        replica_failure=(
            str(failure.get("message") or "ReplicaFailure")
            if failure.get("status") == "True"
            else None
        ),
        config_checksum=(template_meta.get("annotations") or {}).get(CHECKSUM_ANNOTATION),
    )
