"""finalizers: the guarded JSON patch that strips legacy finalizers, and a registry needing none."""

from __future__ import annotations

from typing import Any

import jsonpatch
import kopf
import pytest
from kubernetes import client
from sentiric_operator.finalizers import (
    KOPF_FINALIZER,
    LEGACY_FINALIZERS,
    legacy_finalizers,
    removal_patch,
)
from sentiric_operator.handlers import Context, register
from sentiric_operator.kubeapi import KubeApi
from sentiric_operator.metrics import OperatorMetrics
from sentiric_operator.settings import OperatorSettings

OURS, KOPFS = LEGACY_FINALIZERS
FOREIGN = "example.com/keep-me"


def _apply(finalizers: list[str], ops: list[dict[str, Any]]) -> list[str]:
    """Apply the ops to an object as the API server would (RFC 6902, via jsonpatch)."""
    body = {"metadata": {"finalizers": list(finalizers)}}
    patched: dict[str, Any] = jsonpatch.apply_patch(body, ops)
    result: list[str] = patched["metadata"]["finalizers"]
    return result


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ([OURS], []),
        ([KOPFS], []),
        ([OURS, KOPFS], []),
        ([FOREIGN, OURS], [FOREIGN]),
        ([OURS, FOREIGN, KOPFS], [FOREIGN]),
        ([KOPFS, FOREIGN, OURS, "b.example/x"], [FOREIGN, "b.example/x"]),
    ],
)
def test_removal_patch_removes_exactly_the_legacy_finalizers(
    before: list[str], after: list[str]
) -> None:
    assert _apply(before, removal_patch(before)) == after
    assert legacy_finalizers(after) == []


def test_nothing_to_remove_is_an_empty_patch() -> None:
    assert removal_patch([]) == []
    assert removal_patch([FOREIGN]) == []
    assert legacy_finalizers(None) == []
    assert legacy_finalizers([FOREIGN, KOPFS]) == [KOPFS]


def test_every_removal_is_guarded_by_a_test_of_the_same_element() -> None:
    ops = removal_patch([OURS, FOREIGN, KOPFS])
    assert ops == [
        {"op": "test", "path": "/metadata/finalizers/2", "value": KOPFS},
        {"op": "remove", "path": "/metadata/finalizers/2"},
        {"op": "test", "path": "/metadata/finalizers/0", "value": OURS},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]


def test_a_list_changed_since_it_was_read_is_refused_not_mangled() -> None:
    ops = removal_patch([OURS, FOREIGN])
    # Someone prepended a finalizer meanwhile: index 0 is no longer ours.
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        _apply(["c.example/new", OURS, FOREIGN], ops)


def test_kopfs_configured_finalizer_is_none_of_the_legacy_ones() -> None:
    # kopf removes "its" finalizer with an unguarded index patch; it must never race ours.
    assert KOPF_FINALIZER not in LEGACY_FINALIZERS


def test_no_registered_handler_makes_kopf_add_a_finalizer() -> None:
    registry = kopf.OperatorRegistry()
    api = KubeApi(client.ApiClient())
    try:
        register(registry, Context(OperatorSettings(), api, OperatorMetrics()))
    finally:
        api.close()
    # kopf's registries are private; read them to pin down the property the fix relies on:
    # timers and daemons (spawning handlers) and mandatory deletion handlers force a finalizer.
    assert list(registry._spawning.get_all_handlers()) == []
    changing = list(registry._changing.get_all_handlers())
    assert {h.id for h in changing} == {"reconcile"}
    assert not any(h.requires_finalizer for h in changing)
    watching = {h.id for h in registry._watching.get_all_handlers()}
    assert "release-legacy-finalizer" in watching
    assert {"status-pods", "status-deployments"} <= watching
