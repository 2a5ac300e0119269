"""Finalizers older operator versions left on LLMProfiles, and the JSON patch that removes them.

This operator puts no finalizer on a profile: it has nothing to clean up (every child carries
a controller ownerReference, so the garbage collector deletes them). Versions that ran kopf
timers made kopf add one, which kept a profile Terminating forever once no operator ran.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

# `llm.sentiric.ai/finalizer`: what older versions configured; the other is kopf's default.
LEGACY_FINALIZERS = ("llm.sentiric.ai/finalizer", "kopf.zalando.org/KopfFinalizerMarker")
# kopf wants a finalizer name even when nothing requires one; this one is never added (no
# timers, daemons or mandatory deletion handlers) and differs from the legacy names, so
# kopf's own finalizer bookkeeping never touches the list this operator cleans.
KOPF_FINALIZER = "llm.sentiric.ai/never-added"


def legacy_finalizers(finalizers: Sequence[str] | None) -> list[str]:
    """The legacy finalizers present in a profile's `metadata.finalizers`."""
    return [name for name in finalizers or () if name in LEGACY_FINALIZERS]


def removal_patch(
    finalizers: Sequence[str], names: Collection[str] = LEGACY_FINALIZERS
) -> list[dict[str, Any]]:
    """JSON patch ops removing `names` from `finalizers`; empty when none is present.

    Each removal is guarded by a `test` of the same element, so the API server refuses the
    whole patch (HTTP 422) if the list changed since it was read, instead of removing
    someone else's finalizer. Indices go from last to first so earlier ones stay valid.
    """
    ops: list[dict[str, Any]] = []
    for index in range(len(finalizers) - 1, -1, -1):
        name = finalizers[index]
        if name in names:
            path = f"/metadata/finalizers/{index}"
            ops.append({"op": "test", "path": path, "value": name})
            ops.append({"op": "remove", "path": path})
    return ops
