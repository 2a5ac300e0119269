"""The one module that talks to the Kubernetes API (kopf's own watching aside).

Every call the operator makes is here, so its RBAC can be read off this file:
  - configmaps, persistentvolumeclaims, services (core), deployments (apps),
    poddisruptionbudgets (policy), horizontalpodautoscalers (autoscaling),
    servicemonitors (monitoring.coreos.com), inferencepools (inference.networking.k8s.io):
    get (via apply), create/patch (server-side apply), delete (the ServiceMonitor when
    monitoring is switched off, the InferencePool when it is, the PodDisruptionBudget when
    replicas drop to one, the HPA when autoscaling is removed);
  - llmprofiles (llm.sentiric.ai): get (a fresh copy before repairing or resyncing), and
    patch of llmprofiles/status (kopf's own watch and annotation patches aside);
  - discovery of monitoring.coreos.com/v1 and inference.networking.k8s.io/v1 (allowed to
    every authenticated user).
Writes use server-side apply with one field manager and force, so the operator owns exactly
the fields it sets and takes them back from anyone who edited them.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from typing import Any

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError

from sentiric_operator.errors import ApiCallError
from sentiric_operator.specs import GROUP, PLURAL, VERSION

logger = logging.getLogger(__name__)

FIELD_MANAGER = "sentiric-operator"
SERVICE_MONITOR_GROUP_VERSION = "monitoring.coreos.com/v1"
_TIMEOUT_S = 30
# kind -> plural of the kinds the operator writes (paths are built, never discovered, so a
# CRD installed after start-up needs no discovery-cache refresh).
_PLURALS = {
    "ConfigMap": "configmaps",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Service": "services",
    "Deployment": "deployments",
    "ServiceMonitor": "servicemonitors",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "InferencePool": "inferencepools",
    "LLMProfile": PLURAL,
}


def _path(api_version: str, kind: str, namespace: str, name: str) -> str:
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{_PLURALS[kind]}/{name}"


def _raw(_client: object, data: dict[str, Any]) -> dict[str, Any]:
    return data


def _explain(exc: DynamicApiError) -> str:
    """The API server's own message (e.g. a field error), not the HTTP noise around it."""
    try:
        body = json.loads(exc.body or "")
        return str(body.get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason or exc)


class KubeApi:
    """A thin, synchronous wrapper over the official client; call it from worker threads."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = api_client

    @functools.cached_property
    def _dyn(self) -> DynamicClient:
        # Built on first use: DynamicClient runs API discovery when constructed, and wiring
        # the handlers (or a unit test of it) must not need a reachable API server.
        return DynamicClient(self._api)  # type: ignore[no-untyped-call]

    @classmethod
    def from_environment(cls, *, pool_size: int = 32) -> KubeApi:
        """In-cluster credentials when running in a pod, else $KUBECONFIG / ~/.kube/config."""
        configuration = client.Configuration()
        try:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except config.ConfigException:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        # Many profiles reconcile at once from kopf's worker threads.
        configuration.connection_pool_maxsize = pool_size
        return cls(client.ApiClient(configuration))

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def _request(self, method: str, path: str, **params: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = self._dyn.request(
                method, path, serializer=_raw, _request_timeout=_TIMEOUT_S, **params
            )
        except DynamicApiError as exc:
            raise ApiCallError(
                f"{method.upper()} {path}: {_explain(exc)}", status=exc.status
            ) from exc
        return result

    def _request_or_none(self, method: str, path: str, **params: Any) -> dict[str, Any] | None:
        """`_request`, with None for HTTP 404: the object (or API group) is not there."""
        try:
            return self._request(method, path, **params)
        except ApiCallError as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply one object (create or update) and return it as the server has it."""
        meta = manifest["metadata"]
        path = _path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
        return self._request(
            "patch",
            path,
            body=dict(manifest),
            content_type="application/apply-patch+yaml",
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete one object; False when it did not exist."""
        return (
            self._request_or_none("delete", _path(api_version, kind, namespace, name)) is not None
        )

    def get_profile(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The profile as the API server has it now; None when it is gone."""
        return self._request_or_none("get", self._profile_path(namespace, name))

    def _profile_path(self, namespace: str, name: str) -> str:
        return _path(f"{GROUP}/{VERSION}", "LLMProfile", namespace, name)

    def patch_profile_status(
        self, namespace: str, name: str, changes: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch `.status` (the status subresource); None when the profile is gone."""
        return self._request_or_none(
            "patch",
            f"{self._profile_path(namespace, name)}/status",
            body={"status": dict(changes)},
            content_type="application/merge-patch+json",
        )

    def servicemonitor_crd_installed(self) -> bool:
        return self.serves(SERVICE_MONITOR_GROUP_VERSION, "servicemonitors")

    def serves(self, group_version: str, resource: str) -> bool:
        """Ask discovery (fresh, uncached) whether the API serves `resource` in a group version
        (an optional CRD such as the ServiceMonitor's or the InferencePool's)."""
        found = self._request_or_none("get", f"/apis/{group_version}")
        if found is None:
            return False
        return any(r.get("name") == resource for r in found.get("resources") or [])
