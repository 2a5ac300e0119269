"""kopf handlers: thin wiring of spec parsing, builders, the API module and the status function.

Handlers are registered by `register()` into a given registry (no import-time side effects),
with the settings, API wrapper and metrics captured in a `Context` instead of module globals.

  LLMProfile create/update/resume ──> reconcile: apply every child, write status
  LLMProfile timer (status interval) ──> status from the indexed Deployment and Pods
  LLMProfile timer (resync interval) ──> reconcile again: repairs drift nobody reported
  child ConfigMap/Service/Deployment deleted or edited ──> reconcile its owner now
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from sentiric_operator import builders
from sentiric_operator.builders.configmap import config_checksum, config_data
from sentiric_operator.builders.labels import (
    INSTANCE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    deployment_name,
    service_monitor_name,
)
from sentiric_operator.builders.servicemonitor import SERVICE_MONITOR_API_VERSION
from sentiric_operator.errors import ApiCallError, InvalidProfileError
from sentiric_operator.kubeapi import KubeApi
from sentiric_operator.metrics import OperatorMetrics
from sentiric_operator.observations import (
    DeploymentObservation,
    PodObservation,
    observe_deployment,
    observe_pod,
)
from sentiric_operator.settings import OperatorSettings
from sentiric_operator.specs import GROUP, KIND, PLURAL, VERSION, Profile, parse_profile
from sentiric_operator.statuses import (
    MONITORING,
    READY,
    Monitoring,
    Observed,
    compute_status,
    invalid_status,
    status_patch,
)

log = logging.getLogger(__name__)

MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
# Children whose deletion or edit is repaired at once (PVCs wait for the resync: a claim
# in use only terminates once its pods are gone, and re-applying it meanwhile is futile).
WATCHED_CHILDREN = (("", "v1", "configmaps"), ("", "v1", "services"), ("apps", "v1", "deployments"))
# Spec changes that HTTP 400/422 refuse (e.g. an immutable PVC field) fail again until the
# spec changes, so they are not retried.
_PERMANENT_STATUSES = frozenset({400, 422})

ProfileKey = tuple[str, str]


@dataclass(frozen=True)
class Context:
    settings: OperatorSettings
    api: KubeApi
    metrics: OperatorMetrics


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owner(body: Mapping[str, Any]) -> str | None:
    """The LLMProfile controlling this child, from its controller owner reference."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if (
            ref.get("kind") == KIND
            and ref.get("controller")
            and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/")
        ):
            return str(ref.get("name"))
    return None


def _selector(group: str, version: str, plural: str) -> tuple[str, str] | tuple[str, str, str]:
    """kopf's spelling of a resource: the core group has no name ("v1", "pods")."""
    return (group, version, plural) if group else (version, plural)


def _condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def apply_children(
    api: KubeApi, profile: Profile, settings: OperatorSettings, previous: Mapping[str, Any]
) -> Monitoring:
    """Server-side apply every child; the ServiceMonitor only when asked for and possible."""
    for manifest in builders.children(profile, default_image=settings.inference_image):
        api.apply(manifest)
    if profile.spec.monitoring.service_monitor.enabled:
        if not api.servicemonitor_crd_installed():
            return Monitoring.CRD_MISSING
        api.apply(builders.servicemonitor(profile))
        return Monitoring.APPLIED
    was = _condition(previous, MONITORING)
    if was is not None and was.get("status") == "True":
        api.delete(
            SERVICE_MONITOR_API_VERSION,
            "ServiceMonitor",
            profile.namespace,
            service_monitor_name(profile),
        )
    return Monitoring.NOT_REQUESTED


@dataclass(frozen=True)
class _Indexes:
    """kopf's in-memory indexes of the profiles' Deployments and Pods (see `register`)."""

    deployments: kopf.Index[ProfileKey, DeploymentObservation]
    pods: kopf.Index[ProfileKey, PodObservation]

    @classmethod
    def of(cls, kwargs: Mapping[str, Any]) -> _Indexes:
        # kopf passes every index to every handler as a keyword named after its indexer.
        return cls(kwargs["deployments_by_profile"], kwargs["pods_by_profile"])


def _observed(
    profile: Profile,
    indexes: _Indexes,
    monitoring: Monitoring,
    apply_error: str | None,
) -> Observed:
    key = (profile.namespace, profile.name)
    name = deployment_name(profile)
    deployment = next((d for d in indexes.deployments.get(key, []) if d.name == name), None)
    return Observed(
        deployment=deployment,
        pods=list(indexes.pods.get(key, [])),
        monitoring=monitoring,
        apply_error=apply_error,
    )


def _write_status(
    patch: kopf.Patch, current: Mapping[str, Any], new: Mapping[str, Any], metrics: OperatorMetrics
) -> None:
    changes = status_patch(current, new)
    if changes:
        patch.status.update(changes)
        metrics.status_writes.inc()


def _monitoring_from(status: Mapping[str, Any]) -> Monitoring:
    cond = _condition(status, MONITORING)
    if cond is None:
        return Monitoring.NOT_REQUESTED
    return Monitoring.APPLIED if cond.get("status") == "True" else Monitoring.CRD_MISSING


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    """Register every handler of the operator into `registry`."""
    resource = (GROUP, VERSION, PLURAL)
    managed = {MANAGED_BY_LABEL: MANAGED_BY}

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A custom registry has none of kopf's default login handlers: use the official
        # client's configuration (in-cluster service account, else $KUBECONFIG), like KubeApi.
        info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
        return info

    @kopf.on.startup(id="configure", registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # kopf's bookkeeping goes to annotations under our group: the status schema is
        # strict, so kopf's default `status.kopf` field would be pruned away.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        settings.posting.level = logging.WARNING
        settings.execution.max_workers = ctx.settings.workers
        # Watch only our children, filtered by the API server rather than in this process.
        for group, version, plural in (*WATCHED_CHILDREN, ("", "v1", "pods")):
            settings.watching.label_selectors[_selector(group, version, plural)] = MANAGED_SELECTOR
        # A watch the network silently dropped is noticed and restarted within minutes.
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330

    @kopf.index(
        "apps", "v1", "deployments", id="deployments_by_profile", labels=managed, registry=registry
    )
    def deployments_by_profile(
        namespace: str | None, body: kopf.Body, **_: Any
    ) -> dict[ProfileKey, DeploymentObservation] | None:
        owner = _owner(body)
        if owner is None or namespace is None:
            return None
        return {(namespace, owner): observe_deployment(body)}

    @kopf.index("v1", "pods", id="pods_by_profile", labels=managed, registry=registry)
    def pods_by_profile(
        namespace: str | None, body: kopf.Body, **_: Any
    ) -> dict[ProfileKey, PodObservation] | None:
        # Pods are owned by ReplicaSets; the instance label names the profile.
        owner = (body.get("metadata") or {}).get("labels", {}).get(INSTANCE_LABEL)
        if owner is None or namespace is None:
            return None
        return {(namespace, str(owner)): observe_pod(body)}

    def reconcile(
        trigger: str, body: kopf.Body, patch: kopf.Patch, status: kopf.Status, indexes: _Indexes
    ) -> None:
        started = time.monotonic()
        try:
            profile = parse_profile(body)
        except InvalidProfileError as exc:
            ctx.metrics.reconciles.labels(trigger, "invalid").inc()
            generation = int(body.get("metadata", {}).get("generation", 0))
            _write_status(
                patch, status, invalid_status(generation, str(exc), status, _now()), ctx.metrics
            )
            raise kopf.PermanentError(f"invalid LLMProfile spec: {exc}") from exc
        failure: ApiCallError | None = None
        monitoring = _monitoring_from(status)
        try:
            monitoring = apply_children(ctx.api, profile, ctx.settings, status)
        except ApiCallError as exc:
            failure = exc
        ctx.metrics.reconcile_duration.labels(trigger).observe(time.monotonic() - started)
        observed = _observed(
            profile, indexes, monitoring, None if failure is None else str(failure)
        )
        new = compute_status(
            profile,
            observed,
            config_checksum=config_checksum(config_data(profile.spec)),
            previous=status,
            now=_now(),
        )
        _write_status(patch, status, new, ctx.metrics)
        if failure is None:
            ctx.metrics.reconciles.labels(trigger, "success").inc()
            return
        if failure.status in _PERMANENT_STATUSES:
            ctx.metrics.reconciles.labels(trigger, "failed").inc()
            raise kopf.PermanentError(str(failure)) from failure
        ctx.metrics.reconciles.labels(trigger, "retry").inc()
        raise kopf.TemporaryError(str(failure), delay=ctx.settings.retry_delay_s) from failure

    @kopf.on.resume(*resource, id="reconcile", registry=registry)
    def on_resume(body: kopf.Body, patch: kopf.Patch, status: kopf.Status, **kwargs: Any) -> None:
        reconcile("resume", body, patch, status, _Indexes.of(kwargs))

    @kopf.on.create(*resource, id="reconcile", registry=registry)
    def on_create(body: kopf.Body, patch: kopf.Patch, status: kopf.Status, **kwargs: Any) -> None:
        reconcile("create", body, patch, status, _Indexes.of(kwargs))

    @kopf.on.update(*resource, id="reconcile", registry=registry)
    def on_update(body: kopf.Body, patch: kopf.Patch, status: kopf.Status, **kwargs: Any) -> None:
        reconcile("update", body, patch, status, _Indexes.of(kwargs))

    @kopf.timer(
        *resource,
        id="resync",
        interval=ctx.settings.resync_interval_s,
        initial_delay=ctx.settings.resync_interval_s,
        registry=registry,
    )
    def resync(body: kopf.Body, patch: kopf.Patch, status: kopf.Status, **kwargs: Any) -> None:
        reconcile("resync", body, patch, status, _Indexes.of(kwargs))

    @kopf.timer(
        *resource, id="refresh_status", interval=ctx.settings.status_interval_s, registry=registry
    )
    async def refresh_status(
        body: kopf.Body, patch: kopf.Patch, status: kopf.Status, **kwargs: Any
    ) -> None:
        generation = int(body.get("metadata", {}).get("generation", 0))
        # Until the reconcile of this generation has run, there is nothing new to report.
        if status.get("observedGeneration") != generation:
            return
        try:
            profile = parse_profile(body)
        except InvalidProfileError:
            return  # reported by the reconcile as InvalidSpec
        ready = _condition(status, READY) or {}
        apply_error = str(ready.get("message")) if ready.get("reason") == "ApplyFailed" else None
        observed = _observed(profile, _Indexes.of(kwargs), _monitoring_from(status), apply_error)
        new = compute_status(
            profile,
            observed,
            config_checksum=config_checksum(config_data(profile.spec)),
            previous=status,
            now=_now(),
        )
        _write_status(patch, status, new, ctx.metrics)

    def on_child_event(
        event: kopf.RawEvent,
        body: kopf.Body,
        namespace: str | None,
        resource: kopf.Resource,
        **_: Any,
    ) -> None:
        kind = event.get("type")
        if kind not in ("MODIFIED", "DELETED") or namespace is None:
            return  # the initial listing and our own creations need nothing
        meta = body.get("metadata") or {}
        # Deployments change constantly (status); only a spec edit bumps the generation past
        # what the controller observed.
        observed = (body.get("status") or {}).get("observedGeneration")
        if (
            kind == "MODIFIED"
            and resource.plural == "deployments"
            and (observed is None or meta.get("generation") == observed)
        ):
            return
        owner = _owner(body)
        if owner is None:
            return
        started = time.monotonic()
        try:
            current = ctx.api.get_profile(namespace, owner)
            if current is None or (current.get("metadata") or {}).get("deletionTimestamp"):
                return  # the owner is gone: garbage collection removes the rest
            apply_children(
                ctx.api, parse_profile(current), ctx.settings, current.get("status") or {}
            )
        except InvalidProfileError:
            return  # reported on the profile by its own reconcile
        except ApiCallError as exc:
            # Event handlers are not retried; the resync timer repairs it later.
            ctx.metrics.reconciles.labels("child-changed", "retry").inc()
            log.warning(
                "could not repair %s/%s after %s %s %s: %s",
                namespace,
                owner,
                kind,
                resource.plural,
                meta.get("name"),
                exc,
            )
            return
        ctx.metrics.reconcile_duration.labels("child-changed").observe(time.monotonic() - started)
        ctx.metrics.reconciles.labels("child-changed", "success").inc()
        log.info(
            "re-applied the children of %s/%s after %s %s %s",
            namespace,
            owner,
            kind,
            resource.plural,
            meta.get("name"),
        )

    for group, version, plural in WATCHED_CHILDREN:
        kopf.on.event(
            *_selector(group, version, plural),
            id=f"repair-{plural}",
            labels=managed,
            registry=registry,
        )(on_child_event)
