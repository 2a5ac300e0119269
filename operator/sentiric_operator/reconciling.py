"""What every reconcile path shares: applying a profile's children and gathering its status input.

The kopf handlers, the status refresher and the resync sweep all call these, so a child is
built, an apply timed, classified and counted (`apply_once`) and a status computed the same
way whichever event or timer started the work. No kopf import: kopf's indexes are read
through the `Mapping` protocol they implement.
"""

from __future__ import annotations

import copy
import datetime
import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sentiric_operator import builders
from sentiric_operator.builders.autoscaling import HPA_API_VERSION
from sentiric_operator.builders.configmap import EngineYaml
from sentiric_operator.builders.disruption import PDB_API_VERSION
from sentiric_operator.builders.inferencepool import (
    INFERENCE_POOL_GROUP_VERSION,
    INFERENCE_POOL_RESOURCE,
)
from sentiric_operator.builders.labels import (
    autoscaler_name,
    deployment_name,
    disruption_budget_name,
    inference_pool_name,
    service_monitor_name,
)
from sentiric_operator.builders.servicemonitor import SERVICE_MONITOR_API_VERSION
from sentiric_operator.errors import ApiCallError
from sentiric_operator.kubeapi import KubeApi
from sentiric_operator.metrics import OperatorMetrics
from sentiric_operator.observations import DeploymentObservation, PodObservation
from sentiric_operator.settings import OperatorSettings
from sentiric_operator.sizing import known_draft_shape, known_shape, memory_request
from sentiric_operator.specs import Profile
from sentiric_operator.statuses import MONITORING, READY, Monitoring, Observed, compute_status

log = logging.getLogger(__name__)

ProfileKey = tuple[str, str]
ProfileIndex = Mapping[ProfileKey, Collection[Mapping[str, Any]]]
# reconciles_total's trigger when a newly known model shape changes the memory request.
RESIZE_TRIGGER = "model-shape"
# Spec changes that HTTP 400/422 refuse (e.g. an immutable PVC field) fail again until the
# spec changes, so they are not retried.
PERMANENT_STATUSES = frozenset({400, 422})


@dataclass(frozen=True)
class Context:
    """The operator's settings, its API module and its metrics, shared by every handler."""

    settings: OperatorSettings
    api: KubeApi
    metrics: OperatorMetrics


@dataclass(frozen=True)
class Indexes:
    """kopf's in-memory indexes: each profile's Deployments and Pods, and the profiles."""

    deployments: Mapping[ProfileKey, Collection[DeploymentObservation]]
    pods: Mapping[ProfileKey, Collection[PodObservation]]
    profiles: ProfileIndex

    @classmethod
    def of(cls, kwargs: Mapping[str, Any]) -> Indexes:
        # kopf passes every index to every handler as a keyword named after its indexer.
        return cls(kwargs["deployments_by_profile"], kwargs["pods_by_profile"], kwargs["profiles"])

    def profile(self, key: ProfileKey) -> Mapping[str, Any] | None:
        """The latest indexed snapshot of one profile (see `profile_snapshot`)."""
        return next(iter(self.profiles.get(key, ())), None)


@dataclass(frozen=True)
class Applied:
    """The outcome of applying a profile's children, which the status reports."""

    monitoring: Monitoring
    error: str | None = None


@dataclass(frozen=True)
class Attempt:
    """One `apply_once`: what the status reports, and the refusal that failed it, if any."""

    applied: Applied
    failure: ApiCallError | None = None

    @property
    def outcome(self) -> str:
        """`reconciles_total`'s outcome label: success, failed (not retried) or retry."""
        if self.failure is None:
            return "success"
        return "failed" if self.failure.status in PERMANENT_STATUSES else "retry"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def profile_snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a profile the status and the sweep need, copied out of kopf's body.

    managedFields and kopf's annotations are left out: they are the bulk of the object and
    nothing here reads them.
    """
    meta = body.get("metadata") or {}
    keep = ("name", "namespace", "uid", "generation", "resourceVersion", "deletionTimestamp")
    return {
        "metadata": {k: copy.deepcopy(meta[k]) for k in keep if k in meta},
        "spec": copy.deepcopy(dict(body.get("spec") or {})),
        "status": copy.deepcopy(dict(body.get("status") or {})),
    }


def condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def applied_from(status: Mapping[str, Any]) -> Applied:
    """The last apply's outcome as the status recorded it (for refreshes that apply nothing)."""
    cond = condition(status, MONITORING)
    if cond is None:
        monitoring = Monitoring.NOT_REQUESTED
    elif cond.get("status") == "True":
        monitoring = Monitoring.APPLIED
    else:
        monitoring = Monitoring.CRD_MISSING
    ready = condition(status, READY) or {}
    error = str(ready.get("message")) if ready.get("reason") == "ApplyFailed" else None
    return Applied(monitoring, error)


def apply_children(
    api: KubeApi,
    profile: Profile,
    settings: OperatorSettings,
    previous: Mapping[str, Any],
    config: EngineYaml | None = None,
) -> Monitoring:
    """Server-side apply every child; the ServiceMonitor only when asked for and possible.

    `previous` is the profile's status: its model shape, once a download reported it, sizes
    the serve container's memory request, so every path that applies sizes it the same way.
    `config` is engine.yaml when the caller rendered it already.
    """
    images = builders.InferenceImages(
        cpu=settings.inference_image, cuda=settings.inference_image_cuda
    )
    shape, draft = known_shape(profile, previous), known_draft_shape(profile, previous)
    for manifest in builders.children(
        profile, images=images, shape=shape, draft=draft, config=config
    ):
        api.apply(manifest)
    if profile.spec.autoscaling is not None:
        api.apply(builders.horizontal_autoscaler(profile))
    else:
        api.delete(
            HPA_API_VERSION, "HorizontalPodAutoscaler", profile.namespace, autoscaler_name(profile)
        )
    if builders.wants_disruption_budget(profile):
        api.apply(builders.disruption_budget(profile))
    else:
        # Scaled down to one: a budget would now block every node drain (404 is fine).
        api.delete(
            PDB_API_VERSION,
            "PodDisruptionBudget",
            profile.namespace,
            disruption_budget_name(profile),
        )
    apply_inference_pool(api, profile)
    if profile.spec.monitoring.service_monitor.enabled:
        if not api.servicemonitor_crd_installed():
            return Monitoring.CRD_MISSING
        api.apply(builders.servicemonitor(profile))
        return Monitoring.APPLIED
    was = condition(previous, MONITORING)
    if was is not None and was.get("status") == "True":
        api.delete(
            SERVICE_MONITOR_API_VERSION,
            "ServiceMonitor",
            profile.namespace,
            service_monitor_name(profile),
        )
    return Monitoring.NOT_REQUESTED


def apply_once(
    ctx: Context,
    trigger: str,
    profile: Profile,
    previous: Mapping[str, Any],
    config: EngineYaml | None = None,
) -> Attempt:
    """Apply every child of `profile`, timed and counted under `trigger`, whatever started it.

    An `ApiCallError` is returned in the `Attempt`, not raised: each caller decides what a
    failure means for it (kopf's retry, the next sweep); the metrics are recorded here once.
    """
    started = time.monotonic()
    try:
        monitoring = apply_children(ctx.api, profile, ctx.settings, previous, config)
    except ApiCallError as exc:
        attempt = Attempt(Applied(applied_from(previous).monitoring, str(exc)), exc)
    else:
        attempt = Attempt(Applied(monitoring))
    ctx.metrics.reconcile_duration.labels(trigger).observe(time.monotonic() - started)
    ctx.metrics.reconciles.labels(trigger, attempt.outcome).inc()
    return attempt


def apply_inference_pool(api: KubeApi, profile: Profile) -> None:
    """The InferencePool where the Inference Extension's CRD is served; nothing elsewhere.

    Discovery is asked each time (as for the ServiceMonitor), so a CRD installed after the
    profile gets its pool at the next apply or resync sweep without a restart.
    """
    if not api.serves(INFERENCE_POOL_GROUP_VERSION, INFERENCE_POOL_RESOURCE):
        return
    if builders.wants_inference_pool(profile):
        api.apply(builders.inference_pool(profile))
    else:
        api.delete(
            INFERENCE_POOL_GROUP_VERSION,
            "InferencePool",
            profile.namespace,
            inference_pool_name(profile),
        )


def desired_status(
    profile: Profile,
    indexes: Indexes,
    applied: Applied,
    previous: Mapping[str, Any],
    config: EngineYaml | None = None,
) -> dict[str, Any]:
    """The whole status of `profile` from the indexed Deployment and Pods.

    `config` is engine.yaml when the caller rendered it already: pods whose checksum differs
    from its checksum run an older config.
    """
    key = (profile.namespace, profile.name)
    name = deployment_name(profile)
    deployment = next((d for d in indexes.deployments.get(key, ()) if d.name == name), None)
    observed = Observed(
        deployment=deployment,
        pods=list(indexes.pods.get(key, ())),
        monitoring=applied.monitoring,
        apply_error=applied.error,
    )
    return compute_status(
        profile,
        observed,
        config_checksum=(config or EngineYaml.of(profile.spec)).checksum,
        previous=previous,
        now=now(),
    )


def sizing_changed(profile: Profile, before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether a status write changes the serve container's memory request (a new shape)."""
    return planned_request(profile, before) != planned_request(profile, after)


def planned_request(profile: Profile, status: Mapping[str, Any]) -> str | None:
    """The serve container's memory request from what `status` knows of the model's (and
    the draft model's) shape."""
    return memory_request(
        profile.spec, known_shape(profile, status), draft=known_draft_shape(profile, status)
    )


def resize(ctx: Context, profile: Profile, status: Mapping[str, Any]) -> bool:
    """Re-apply the children now that `status` knows the model's shape; False if refused.

    kopf runs no update handler for a status change, and waiting for the resync sweep would
    leave the pods of a new model without their memory request for a while. A refusal is
    logged and counted; the sweep applies the same request later.
    """
    attempt = apply_once(ctx, RESIZE_TRIGGER, profile, status)
    if attempt.failure is not None:
        log.warning(
            "could not apply the memory request of %s/%s (the resync sweep retries): %s",
            profile.namespace,
            profile.name,
            attempt.failure,
        )
        return False
    log.info(
        "%s/%s: the download reported the model's shape; the Deployment now requests %s",
        profile.namespace,
        profile.name,
        planned_request(profile, status),
    )
    return True
