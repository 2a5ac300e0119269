"""kopf handlers: thin wiring of spec parsing, builders, the API module and the status function.

Handlers are registered by `register()` into a given registry (no import-time side effects),
with the settings, API wrapper and metrics captured in a `Context` instead of module globals.
Nothing here needs a finalizer (no timers, daemons or deletion handlers on LLMProfiles), so
a profile is deleted at once, with or without a running operator; the garbage collector
removes its children through their ownerReferences.

  LLMProfile create/update/resume ──> reconcile: apply every child, write status
  LLMProfile any event ──> index it
  child Deployment/Pod changed ──> mark its profile: the refresher rewrites the status
  child ConfigMap/Service/Deployment deleted or edited ──> reconcile its owner now
  one operator-wide task (startup to cleanup) ──> status backstop + periodic resync sweep
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from sentiric_operator.builders.labels import INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from sentiric_operator.errors import ApiCallError, InvalidProfileError
from sentiric_operator.observations import (
    DeploymentObservation,
    PodObservation,
    observe_deployment,
    observe_pod,
)
from sentiric_operator.reconciling import (
    PERMANENT_STATUSES,
    Applied,
    Context,
    Indexes,
    ProfileKey,
    applied_from,
    apply_children,
    desired_status,
    now,
    profile_snapshot,
    resize,
    sizing_changed,
)
from sentiric_operator.refreshing import StatusRefresher
from sentiric_operator.resyncing import ResyncSweep
from sentiric_operator.specs import GROUP, KIND, PLURAL, VERSION, parse_profile
from sentiric_operator.statuses import invalid_status, status_patch

__all__ = ["Context", "register"]

log = logging.getLogger(__name__)

MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
# kopf wants a finalizer name even when nothing requires one; this one is never added (no
# timers, daemons or mandatory deletion handlers).
KOPF_FINALIZER = "llm.sentiric.ai/never-added"
# Children whose deletion or edit is repaired at once (PVCs wait for the resync: a claim
# in use only terminates once its pods are gone, and re-applying it meanwhile is futile).
WATCHED_CHILDREN = (("", "v1", "configmaps"), ("", "v1", "services"), ("apps", "v1", "deployments"))


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


def _pod_owner(body: Mapping[str, Any]) -> str | None:
    # Pods are owned by ReplicaSets; the instance label names the profile.
    owner = ((body.get("metadata") or {}).get("labels") or {}).get(INSTANCE_LABEL)
    return None if owner is None else str(owner)


def _selector(group: str, version: str, plural: str) -> tuple[str, str] | tuple[str, str, str]:
    """kopf's spelling of a resource: the core group has no name ("v1", "pods")."""
    return (group, version, plural) if group else (version, plural)


def _write_status(
    patch: kopf.Patch, current: Mapping[str, Any], new: Mapping[str, Any], ctx: Context
) -> None:
    changes = status_patch(current, new)
    if changes:
        patch.status.update(changes)
        ctx.metrics.status_writes.inc()


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    """Register every handler of the operator into `registry`."""
    resource = (GROUP, VERSION, PLURAL)
    managed = {MANAGED_BY_LABEL: MANAGED_BY}
    refresher = StatusRefresher(ctx)
    sweep = ResyncSweep(ctx, refresher)
    background: list[asyncio.Task[None]] = []

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
        settings.persistence.finalizer = KOPF_FINALIZER
        settings.posting.level = logging.WARNING
        settings.execution.max_workers = ctx.settings.workers
        # Watch only our children, filtered by the API server rather than in this process.
        for group, version, plural in (*WATCHED_CHILDREN, ("", "v1", "pods")):
            settings.watching.label_selectors[_selector(group, version, plural)] = MANAGED_SELECTOR
        # A watch the network silently dropped is noticed and restarted within minutes.
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330

    @kopf.on.startup(id="background", registry=registry)
    async def start_background(**kwargs: Any) -> None:
        # Operator-wide tasks instead of per-profile timers (which need a finalizer). The
        # indexes are empty now and fill as the watches start; the tasks read them live.
        indexes = Indexes.of(kwargs)
        background.append(asyncio.create_task(refresher.run(indexes), name="status-refresh"))
        background.append(asyncio.create_task(sweep.run(indexes), name="resync-sweep"))

    @kopf.on.cleanup(id="background", registry=registry)
    async def stop_background(**_: Any) -> None:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        background.clear()

    @kopf.index(*resource, id="profiles", registry=registry)
    def profiles(
        namespace: str | None, name: str | None, body: kopf.Body, **_: Any
    ) -> dict[ProfileKey, dict[str, Any]] | None:
        if namespace is None or name is None:
            return None
        return {(namespace, name): profile_snapshot(body)}

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
        owner = _pod_owner(body)
        if owner is None or namespace is None:
            return None
        return {(namespace, owner): observe_pod(body)}

    def reconcile(
        trigger: str, body: kopf.Body, patch: kopf.Patch, status: kopf.Status, indexes: Indexes
    ) -> None:
        started = time.monotonic()
        try:
            profile = parse_profile(body)
        except InvalidProfileError as exc:
            ctx.metrics.reconciles.labels(trigger, "invalid").inc()
            generation = int(body.get("metadata", {}).get("generation", 0))
            _write_status(patch, status, invalid_status(generation, str(exc), status, now()), ctx)
            raise kopf.PermanentError(f"invalid LLMProfile spec: {exc}") from exc
        failure: ApiCallError | None = None
        monitoring = applied_from(status).monitoring
        try:
            monitoring = apply_children(ctx.api, profile, ctx.settings, status)
        except ApiCallError as exc:
            failure = exc
        ctx.metrics.reconcile_duration.labels(trigger).observe(time.monotonic() - started)
        applied = Applied(monitoring, None if failure is None else str(failure))
        new_status = desired_status(profile, indexes, applied, status)
        _write_status(patch, status, new_status, ctx)
        if failure is None and sizing_changed(profile, status, new_status):
            resize(ctx, profile, new_status)  # this write makes the model's shape known
        if failure is None:
            ctx.metrics.reconciles.labels(trigger, "success").inc()
            return
        if failure.status in PERMANENT_STATUSES:
            ctx.metrics.reconciles.labels(trigger, "failed").inc()
            raise kopf.PermanentError(str(failure)) from failure
        ctx.metrics.reconciles.labels(trigger, "retry").inc()
        raise kopf.TemporaryError(str(failure), delay=ctx.settings.retry_delay_s) from failure

    @kopf.on.resume(*resource, id="reconcile", registry=registry)
    def on_resume(body: kopf.Body, patch: kopf.Patch, status: kopf.Status, **kwargs: Any) -> None:
        reconcile("resume", body, patch, status, Indexes.of(kwargs))

    @kopf.on.create(*resource, id="reconcile", registry=registry)
    def on_create(body: kopf.Body, patch: kopf.Patch, status: kopf.Status, **kwargs: Any) -> None:
        reconcile("create", body, patch, status, Indexes.of(kwargs))

    @kopf.on.update(*resource, id="reconcile", registry=registry)
    def on_update(body: kopf.Body, patch: kopf.Patch, status: kopf.Status, **kwargs: Any) -> None:
        reconcile("update", body, patch, status, Indexes.of(kwargs))

    async def on_status_input(
        body: kopf.Body, namespace: str | None, resource: kopf.Resource, **_: Any
    ) -> None:
        # Runs in the event loop after kopf updated the indexes for this event, so the
        # refresher computes from the new state; it writes only what changed.
        owner = _pod_owner(body) if resource.plural == "pods" else _owner(body)
        if owner is not None and namespace is not None:
            refresher.mark((namespace, owner))

    for group, version, plural in (("apps", "v1", "deployments"), ("", "v1", "pods")):
        kopf.on.event(
            *_selector(group, version, plural),
            id=f"status-{plural}",
            labels=managed,
            registry=registry,
        )(on_status_input)

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
            # Event handlers are not retried; the resync sweep repairs it later.
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
