"""Status refresh without per-object timers: child events mark a profile, one task rewrites it.

kopf forces a finalizer onto every object that has a timer, so the status is not refreshed by
a per-profile timer. Instead the watch handlers of the profiles' Deployments and Pods `mark`
the owning profile; one operator-wide task recomputes the status of every marked profile from
kopf's indexes (in memory) and patches it through `kubeapi` only when it changed. Every
`status_interval_s` it also marks every known profile, a cheap backstop for a missed event.
When a written status first carries the model's shape (the download reported it) and that
changes the serve container's memory request, the task re-applies the profile's children.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from sentiric_operator.errors import InvalidProfileError
from sentiric_operator.reconciling import (
    Applied,
    Context,
    Indexes,
    ProfileKey,
    applied_from,
    desired_status,
    resize,
    sizing_changed,
)
from sentiric_operator.specs import parse_profile
from sentiric_operator.statuses import status_patch

log = logging.getLogger(__name__)

# Pods of one rollout change within milliseconds of each other: wait this long after the
# first mark so one recomputation covers the burst.
COALESCE_S = 0.2


class StatusRefresher:
    """Marks from event handlers, one loop (`run`) that writes the changed statuses.

    Only called from the operator's event loop (kopf runs async handlers there), so the
    marks need no lock; the API calls run in worker threads.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._dirty: set[ProfileKey] = set()
        self._wake = asyncio.Event()
        # What this refresher last wrote per profile, with the resourceVersion it was computed
        # from: until the index shows a newer version, the written status is the current one
        # (so a burst of events does not write the same change again).
        self._written: dict[ProfileKey, tuple[str, dict[str, Any]]] = {}
        self._locks: dict[ProfileKey, asyncio.Lock] = {}

    def mark(self, key: ProfileKey) -> None:
        """Ask for the status of profile `key` to be recomputed soon."""
        self._dirty.add(key)
        self._wake.set()

    async def run(self, indexes: Indexes) -> None:
        """Recompute marked profiles until cancelled; every failure is logged and counted."""
        interval = self._ctx.settings.status_interval_s
        loop = asyncio.get_running_loop()
        next_full = loop.time() + interval
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_full - loop.time()))
                await asyncio.sleep(COALESCE_S)
            except TimeoutError:
                pass
            self._wake.clear()
            if loop.time() >= next_full:
                self._dirty.update(indexes.profiles.keys())
                next_full = loop.time() + interval
            keys, self._dirty = self._dirty, set()
            for key in sorted(keys):
                await self.refresh_safely(key, indexes)
            self._forget_gone(indexes)

    async def refresh_safely(self, key: ProfileKey, indexes: Indexes) -> None:
        try:
            await self.refresh(key, indexes)
        except Exception:
            # A status write that failed is retried at the next mark or backstop pass.
            self._ctx.metrics.background_errors.labels("status").inc()
            log.exception("could not refresh the status of %s/%s", *key)

    async def refresh(
        self,
        key: ProfileKey,
        indexes: Indexes,
        *,
        body: Mapping[str, Any] | None = None,
        applied: Applied | None = None,
    ) -> bool:
        """Recompute and, if it changed, patch the status of `key`; True when written.

        `body` is a fresher copy of the profile than the index's (the resync sweep reads one);
        `applied` is the outcome of an apply that just ran. Without `applied`, nothing is
        written until kopf's reconcile has handled the current generation.
        """
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            snapshot = body if body is not None else indexes.profile(key)
            if snapshot is None:
                return False
            meta = snapshot.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                return False  # going away: nothing to report, and no finalizer to wait for
            current = self._current(key, snapshot)
            if applied is None:
                if current.get("observedGeneration") != int(meta.get("generation", 0)):
                    return False
                applied = applied_from(current)
            try:
                profile = parse_profile(snapshot)
            except InvalidProfileError:
                return False  # reported as InvalidSpec by the profile's reconcile
            changes = status_patch(current, desired_status(profile, indexes, applied, current))
            if not changes:
                return False
            written = await asyncio.to_thread(
                self._ctx.api.patch_profile_status, profile.namespace, profile.name, changes
            )
            if written is None:
                return False  # deleted meanwhile
            self._ctx.metrics.status_writes.inc()
            new_status = dict(written.get("status") or {})
            self._written[key] = (str(meta.get("resourceVersion", "")), new_status)
            if sizing_changed(profile, current, new_status):
                await asyncio.to_thread(resize, self._ctx, profile, new_status)
            return True

    def _current(self, key: ProfileKey, snapshot: Mapping[str, Any]) -> Mapping[str, Any]:
        version = str((snapshot.get("metadata") or {}).get("resourceVersion", ""))
        written = self._written.get(key)
        if written is not None and written[0] == version:
            return written[1]
        status: Mapping[str, Any] = snapshot.get("status") or {}
        return status

    def _forget_gone(self, indexes: Indexes) -> None:
        for key in [k for k in self._written if k not in indexes.profiles]:
            del self._written[key]
        for key in [k for k, lock in self._locks.items() if not lock.locked()]:
            if key not in indexes.profiles:
                del self._locks[key]
