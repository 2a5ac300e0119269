"""The PersistentVolumeClaim the model is downloaded into and loaded from."""

from __future__ import annotations

from typing import Any

from sentiric_operator.builders.labels import MODEL_CACHE, object_meta, pvc_name
from sentiric_operator.specs import Profile


def pvc(profile: Profile) -> dict[str, Any]:
    cache = profile.spec.model.cache
    spec: dict[str, Any] = {
        "accessModes": [cache.access_mode],
        "resources": {"requests": {"storage": str(cache.size)}},
    }
    # Left out (not null) when unset, so the cluster's default StorageClass applies.
    if cache.storage_class_name is not None:
        spec["storageClassName"] = cache.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": object_meta(profile, pvc_name(profile), MODEL_CACHE),
        "spec": spec,
    }
