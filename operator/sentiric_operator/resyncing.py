"""The periodic resync without per-object timers: one task re-applies every known profile.

Edits and deletions of ConfigMaps, Services and Deployments are repaired at once by their
watch handlers; this sweep is the backstop for what no event reports (a PVC deleted while in
use, a ServiceMonitor CRD installed later, a missed watch event). It runs every
`resync_interval_s` over the profiles in kopf's profile index, at most `workers` at a time,
each from a fresh GET; a failure is logged, counted, and retried at the next sweep.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sentiric_operator.errors import ApiCallError, InvalidProfileError
from sentiric_operator.reconciling import (
    Context,
    Indexes,
    ProfileKey,
    apply_once,
    profile_snapshot,
)
from sentiric_operator.refreshing import StatusRefresher
from sentiric_operator.specs import parse_profile

log = logging.getLogger(__name__)
TRIGGER = "resync"


class ResyncSweep:
    """Re-applies the children of every indexed profile every `resync_interval_s` seconds."""

    def __init__(self, ctx: Context, refresher: StatusRefresher) -> None:
        self._ctx = ctx
        self._refresher = refresher

    async def run(self, indexes: Indexes) -> None:
        """Sweep until cancelled; a sweep that fails as a whole is logged and counted."""
        while True:
            await asyncio.sleep(self._ctx.settings.resync_interval_s)
            started = time.monotonic()
            try:
                await self.sweep(indexes)
            except Exception:
                self._ctx.metrics.background_errors.labels(TRIGGER).inc()
                log.exception("the resync sweep failed; the next one is in %ss", self._interval)
            self._ctx.metrics.resync_sweep_duration.observe(time.monotonic() - started)

    @property
    def _interval(self) -> float:
        return self._ctx.settings.resync_interval_s

    async def sweep(self, indexes: Indexes) -> int:
        """One pass over the profiles indexed now; returns how many were re-applied."""
        keys = sorted(indexes.profiles.keys())
        slots = asyncio.Semaphore(self._ctx.settings.workers)

        async def one(key: ProfileKey) -> bool:
            async with slots:
                return await self.resync(key, indexes)

        results = await asyncio.gather(*(one(key) for key in keys), return_exceptions=True)
        done = 0
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                self._ctx.metrics.background_errors.labels(TRIGGER).inc()
                log.error("resync of %s/%s failed: %r", *key, result, exc_info=result)
            elif result:
                done += 1
        return done

    async def resync(self, key: ProfileKey, indexes: Indexes) -> bool:
        """Re-apply one profile's children and write its status; False when skipped."""
        metrics = self._ctx.metrics
        try:
            body = await asyncio.to_thread(self._ctx.api.get_profile, *key)
        except ApiCallError as exc:
            metrics.reconciles.labels(TRIGGER, "retry").inc()
            log.warning("resync of %s/%s could not read it: %s", *key, exc)
            return False
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return False  # gone or going: the garbage collector removes the children
        try:
            profile = parse_profile(body)
        except InvalidProfileError:
            metrics.reconciles.labels(TRIGGER, "invalid").inc()
            return False  # reported as InvalidSpec by the profile's reconcile
        status = body.get("status") or {}
        attempt = await asyncio.to_thread(apply_once, self._ctx, TRIGGER, profile, status)
        if attempt.failure is not None:
            log.warning(
                "resync of %s/%s failed, retried in %ss: %s", *key, self._interval, attempt.failure
            )
        await self._refresher.refresh(
            key, indexes, body=profile_snapshot(body), applied=attempt.applied
        )
        return attempt.failure is None
