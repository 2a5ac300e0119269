"""kopf handlers: thin wiring of spec parsing, builders, the API module and the status function.

The handlers are module-level functions, bound into a given registry by `register()` (no
import-time side effects). What they share lives in kopf's operator memo: the process puts
its `OperatorSettings` (`memo.settings`) and `OperatorMetrics` (`memo.metrics`) there
(`__main__`, or a test), and the startup handler `start` adds the API module as a `Context`
(`memo.ctx`) with the status refresher and the background tasks; kopf hands every resource
handler a shallow copy of that memo. Nothing here needs a finalizer (no timers, daemons or
deletion handlers on LLMProfiles), so a profile is deleted at once, with or without a running
operator; the garbage collector removes its children through their ownerReferences.

  LLMProfile create/update/resume ──> reconcile: apply every child, write status
  LLMProfile any event ──> index it
  child Deployment/Pod changed ──> mark its profile: the refresher rewrites the status
  child ConfigMap/Service/Deployment deleted or edited ──> reconcile its owner now
  one operator-wide task (startup to cleanup) ──> status backstop + periodic resync sweep
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from sentiric_operator.builders.configmap import EngineYaml
from sentiric_operator.builders.labels import INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from sentiric_operator.errors import ApiCallError, InvalidProfileError
from sentiric_operator.kubeapi import KubeApi
from sentiric_operator.metrics import OperatorMetrics
from sentiric_operator.observations import (
    DeploymentObservation,
    PodObservation,
    observe_deployment,
    observe_pod,
)
from sentiric_operator.reconciling import (
    Context,
    Indexes,
    ProfileKey,
    apply_once,
    desired_status,
    now,
    profile_snapshot,
    resize,
    sizing_changed,
)
from sentiric_operator.refreshing import StatusRefresher
from sentiric_operator.resyncing import ResyncSweep
from sentiric_operator.settings import OperatorSettings
from sentiric_operator.specs import GROUP, KIND, PLURAL, VERSION, parse_profile
from sentiric_operator.statuses import invalid_status, status_patch

__all__ = ["register"]

log = logging.getLogger(__name__)

PROFILES = (GROUP, VERSION, PLURAL)
MANAGED = {MANAGED_BY_LABEL: MANAGED_BY}
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
# kopf wants a finalizer name even when nothing requires one; this one is never added (no
# timers, daemons or mandatory deletion handlers).
KOPF_FINALIZER = "llm.sentiric.ai/never-added"
# Children whose deletion or edit is repaired at once (PVCs wait for the resync: a claim
# in use only terminates once its pods are gone, and re-applying it meanwhile is futile).
WATCHED_CHILDREN = (("", "v1", "configmaps"), ("", "v1", "services"), ("apps", "v1", "deployments"))
# Children whose events change a profile's status.
STATUS_INPUTS = (("apps", "v1", "deployments"), ("", "v1", "pods"))
REPAIR_TRIGGER = "child-changed"


def register(registry: kopf.OperatorRegistry) -> None:
    """Register every handler of the operator into `registry`."""
    kopf.on.login(id="login", registry=registry)(login)
    kopf.on.startup(id="configure", registry=registry)(configure)
    # A failure to set up the API client ends the operator instead of retrying forever.
    kopf.on.startup(id="background", errors=kopf.ErrorsMode.PERMANENT, registry=registry)(start)
    kopf.on.cleanup(id="background", registry=registry)(stop)
    kopf.index(*PROFILES, id="profiles", registry=registry)(index_profile)
    kopf.index(
        "apps", "v1", "deployments", id="deployments_by_profile", labels=MANAGED, registry=registry
    )(index_deployment)
    kopf.index("v1", "pods", id="pods_by_profile", labels=MANAGED, registry=registry)(index_pod)
    for trigger, on_change in (
        ("resume", kopf.on.resume),
        ("create", kopf.on.create),
        ("update", kopf.on.update),
    ):
        on_change(*PROFILES, id="reconcile", param=trigger, registry=registry)(reconcile)
    for group, version, plural in STATUS_INPUTS:
        kopf.on.event(
            *_selector(group, version, plural),
            id=f"status-{plural}",
            labels=MANAGED,
            registry=registry,
        )(mark_status)
    for group, version, plural in WATCHED_CHILDREN:
        kopf.on.event(
            *_selector(group, version, plural),
            id=f"repair-{plural}",
            labels=MANAGED,
            registry=registry,
        )(repair_child)


def _selector(group: str, version: str, plural: str) -> tuple[str, str] | tuple[str, str, str]:
    """kopf's spelling of a resource: the core group has no name ("v1", "pods")."""
    return (group, version, plural) if group else (version, plural)


def _context(memo: Mapping[str, Any]) -> Context:
    ctx = memo["ctx"]  # set by `start` before kopf runs any resource handler
    if not isinstance(ctx, Context):
        raise TypeError(f"memo.ctx is {type(ctx).__name__}, not a Context")
    return ctx


def _settings(memo: Mapping[str, Any]) -> OperatorSettings:
    settings = memo["settings"]
    if not isinstance(settings, OperatorSettings):
        raise TypeError(f"memo.settings is {type(settings).__name__}, not OperatorSettings")
    return settings


def _metrics(memo: Mapping[str, Any]) -> OperatorMetrics:
    metrics = memo["metrics"]
    if not isinstance(metrics, OperatorMetrics):
        raise TypeError(f"memo.metrics is {type(metrics).__name__}, not OperatorMetrics")
    return metrics


def _refresher(memo: Mapping[str, Any]) -> StatusRefresher:
    refresher = memo["refresher"]
    if not isinstance(refresher, StatusRefresher):
        raise TypeError(f"memo.refresher is {type(refresher).__name__}, not a StatusRefresher")
    return refresher


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


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # A custom registry has none of kopf's default login handlers: use the official
    # client's configuration (in-cluster service account, else $KUBECONFIG), like KubeApi.
    info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
    return info


def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf's bookkeeping goes to annotations under our group: the status schema is
    # strict, so kopf's default `status.kopf` field would be pruned away.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = KOPF_FINALIZER
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = _settings(memo).workers
    # Watch only our children, filtered by the API server rather than in this process.
    for group, version, plural in (*WATCHED_CHILDREN, ("", "v1", "pods")):
        settings.watching.label_selectors[_selector(group, version, plural)] = MANAGED_SELECTOR
    # A watch the network silently dropped is noticed and restarted within minutes.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


async def start(memo: kopf.Memo, **kwargs: Any) -> None:
    """Put the API module into the memo and start the operator-wide tasks.

    Operator-wide tasks instead of per-profile timers (which need a finalizer). The indexes
    are empty now and fill as the watches start; the tasks read them live.
    """
    settings = _settings(memo)
    # Many profiles reconcile at once from kopf's worker threads.
    api = KubeApi.from_environment(pool_size=max(8, settings.workers * 2))
    ctx = Context(settings=settings, api=api, metrics=_metrics(memo))
    refresher = StatusRefresher(ctx)
    indexes = Indexes.of(kwargs)
    memo["ctx"], memo["refresher"] = ctx, refresher
    memo["background"] = [
        asyncio.create_task(refresher.run(indexes), name="status-refresh"),
        asyncio.create_task(ResyncSweep(ctx, refresher).run(indexes), name="resync-sweep"),
    ]


async def stop(memo: kopf.Memo, **_: Any) -> None:
    background: list[asyncio.Task[None]] = memo.pop("background", [])
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    ctx = memo.pop("ctx", None)
    if isinstance(ctx, Context):
        ctx.api.close()


def index_profile(
    namespace: str | None, name: str | None, body: kopf.Body, **_: Any
) -> dict[ProfileKey, dict[str, Any]] | None:
    if namespace is None or name is None:
        return None
    return {(namespace, name): profile_snapshot(body)}


def index_deployment(
    namespace: str | None, body: kopf.Body, **_: Any
) -> dict[ProfileKey, DeploymentObservation] | None:
    owner = _owner(body)
    if owner is None or namespace is None:
        return None
    return {(namespace, owner): observe_deployment(body)}


def index_pod(
    namespace: str | None, body: kopf.Body, **_: Any
) -> dict[ProfileKey, PodObservation] | None:
    owner = _pod_owner(body)
    if owner is None or namespace is None:
        return None
    return {(namespace, owner): observe_pod(body)}


def _write_status(
    patch: kopf.Patch, current: Mapping[str, Any], new: Mapping[str, Any], ctx: Context
) -> None:
    changes = status_patch(current, new)
    if changes:
        patch.status.update(changes)
        ctx.metrics.status_writes.inc()


def reconcile(
    body: kopf.Body,
    patch: kopf.Patch,
    status: kopf.Status,
    memo: kopf.Memo,
    param: Any = None,
    **kwargs: Any,
) -> None:
    """Apply every child of a created, updated or resumed profile and write its status.

    `param` is the trigger (create, update, resume), as `register` bound it. An invalid spec
    and a refusal the API server will repeat (HTTP 400/422) are permanent errors; any other
    failed call is retried by kopf after `retry_delay_s`.
    """
    ctx, trigger = _context(memo), str(param)
    try:
        profile = parse_profile(body)
    except InvalidProfileError as exc:
        ctx.metrics.reconciles.labels(trigger, "invalid").inc()
        generation = int(body.get("metadata", {}).get("generation", 0))
        _write_status(patch, status, invalid_status(generation, str(exc), status, now()), ctx)
        raise kopf.PermanentError(f"invalid LLMProfile spec: {exc}") from exc
    config = EngineYaml.of(profile.spec)  # rendered once for the children and the status
    attempt = apply_once(ctx, trigger, profile, status, config)
    new_status = desired_status(profile, Indexes.of(kwargs), attempt.applied, status, config)
    _write_status(patch, status, new_status, ctx)
    failure = attempt.failure
    if failure is None:
        if sizing_changed(profile, status, new_status):
            resize(ctx, profile, new_status)  # this write makes the model's shape known
        return
    if attempt.outcome == "failed":
        raise kopf.PermanentError(str(failure)) from failure
    raise kopf.TemporaryError(str(failure), delay=ctx.settings.retry_delay_s) from failure


async def mark_status(
    body: kopf.Body, namespace: str | None, resource: kopf.Resource, memo: kopf.Memo, **_: Any
) -> None:
    # Runs in the event loop after kopf updated the indexes for this event, so the
    # refresher computes from the new state; it writes only what changed.
    owner = _pod_owner(body) if resource.plural == "pods" else _owner(body)
    if owner is not None and namespace is not None:
        _refresher(memo).mark((namespace, owner))


def _needs_repair(kind: object, body: Mapping[str, Any], plural: str) -> bool:
    """Whether a child's event is a deletion or an edit of what the operator applied."""
    if kind == "DELETED":
        return True
    if kind != "MODIFIED":
        return False  # the initial listing and our own creations need nothing
    if plural != "deployments":
        return True
    # Deployments change constantly (status); only a spec edit bumps the generation past
    # what the controller observed.
    observed = (body.get("status") or {}).get("observedGeneration")
    return observed is not None and (body.get("metadata") or {}).get("generation") != observed


def repair_child(
    event: kopf.RawEvent,
    body: kopf.Body,
    namespace: str | None,
    resource: kopf.Resource,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Re-apply the children of the profile owning a child someone deleted or edited.

    Event handlers are not retried; a failure is logged, and the resync sweep repairs it.
    """
    kind = event.get("type")
    if namespace is None or not _needs_repair(kind, body, resource.plural):
        return
    owner = _owner(body)
    if owner is None:
        return
    ctx = _context(memo)
    child = f"{kind} {resource.plural} {(body.get('metadata') or {}).get('name')}"
    try:
        current = ctx.api.get_profile(namespace, owner)
    except ApiCallError as exc:
        ctx.metrics.reconciles.labels(REPAIR_TRIGGER, "retry").inc()
        log.warning("could not repair %s/%s after %s: %s", namespace, owner, child, exc)
        return
    if current is None or (current.get("metadata") or {}).get("deletionTimestamp"):
        return  # the owner is gone: garbage collection removes the rest
    try:
        profile = parse_profile(current)
    except InvalidProfileError:
        return  # reported on the profile by its own reconcile
    attempt = apply_once(ctx, REPAIR_TRIGGER, profile, current.get("status") or {})
    if attempt.failure is not None:
        log.warning("could not repair %s/%s after %s: %s", namespace, owner, child, attempt.failure)
        return
    log.info("re-applied the children of %s/%s after %s", namespace, owner, child)
