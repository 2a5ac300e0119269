"""values.yaml and values.schema.json: documented, strict, and impossible combinations refused."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
import yaml

from tests.unit.chart.conftest import CHART, Helm

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES_TEXT = (CHART / "values.yaml").read_text()


def _objects_with_properties(node: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append((path, node))
        for key, value in node.items():
            found.extend(_objects_with_properties(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_objects_with_properties(value, f"{path}[{index}]"))
    return found


def test_default_values_validate_against_the_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(yaml.safe_load(VALUES_TEXT), SCHEMA)


def test_every_schema_object_refuses_unknown_keys() -> None:
    objects = _objects_with_properties(SCHEMA)
    assert len(objects) > 10
    for path, node in objects:
        assert node.get("additionalProperties") is False, path


def test_every_default_value_is_in_the_schema() -> None:
    values = yaml.safe_load(VALUES_TEXT)
    assert set(values) <= set(SCHEMA["properties"])
    assert set(SCHEMA["properties"]) - set(values) <= {"global"}


def test_every_value_is_commented() -> None:
    """Each key has a comment right above it, or sits inside a default documented whole
    (a key whose comment starts with `--` and whose value is an object, e.g. resources)."""
    lines = VALUES_TEXT.splitlines()
    # (indent, documented-as-a-whole) of the keys enclosing the current line.
    stack: list[tuple[int, bool]] = []
    undocumented: list[str] = []
    for index, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][\w.-]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        above = lines[index - 1].strip() if index else ""
        commented = above.startswith("#")
        if not commented and not any(whole for _, whole in stack):
            undocumented.append(line.strip())
        whole = above.startswith("# --")
        if not whole and commented:
            # The "-- " marker may start a comment of several lines.
            back = index - 1
            while back > 0 and lines[back - 1].strip().startswith("#"):
                back -= 1
            whole = lines[back].strip().startswith("# --")
        stack.append((indent, whole))
    assert not undocumented, f"values without a comment: {undocumented}"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--set", "replicaCount=2"), "replicaCount"),
        (("--set", "image.tagg=1.0"), "tagg"),
        (("--set", "operator.workers=0"), "workers"),
        (("--set", "operator.logFormat=xml"), "logFormat"),
        (("--set", "watchNamespaces[0]=Not_A_Namespace"), "watchNamespaces"),
        (("--set", "metrics.serviceMonitor.interval=soon"), "interval"),
        (("--set", "image.digest=latest"), "digest"),
        (("--set", "inferenceImageCuda.tag=true"), "inferenceImageCuda"),
        (("--set", "inferenceImageCuda.digest=latest"), "inferenceImageCuda"),
        (("--set", "inferenceImageCuda.registry=ghcr.io"), "registry"),
        (("--set-json", 'profiles=[{"spec":{}}]'), "name"),
        (("--set-json", 'profiles=[{"name":"x","spec":{},"kind":"Other"}]'), "kind"),
    ],
)
def test_schema_refuses_a_wrong_value_at_install_naming_it(
    helm: Helm, args: tuple[str, ...], field: str
) -> None:
    error = helm.template_error(*args)
    assert "values don't meet the specifications of the schema" in error
    assert field in error


def test_service_account_name_is_required_when_not_created(helm: Helm) -> None:
    error = helm.template_error("--set", "serviceAccount.create=false")
    assert "serviceAccount.name must name an existing ServiceAccount" in error


def test_profile_outside_the_watched_namespaces_is_refused(helm: Helm) -> None:
    error = helm.template_error(
        "--set",
        "watchNamespaces={team-a}",
        "--set-json",
        'profiles=[{"name":"qwen","namespace":"team-b","spec":{}}]',
    )
    assert 'profiles: "qwen" is in namespace "team-b", which is not in watchNamespaces' in error
    # Without a namespace it goes to the release namespace, which must be watched too.
    error = helm.template_error(
        "--set",
        "watchNamespaces={team-a}",
        "--set-json",
        'profiles=[{"name":"qwen","spec":{}}]',
    )
    assert 'in namespace "llm-system"' in error


def test_duplicate_profiles_are_refused(helm: Helm) -> None:
    error = helm.template_error(
        "--set-json", 'profiles=[{"name":"qwen","spec":{}},{"name":"qwen","spec":{}}]'
    )
    assert 'profiles: "llm-system/qwen" is listed twice' in error


def test_servicemonitor_without_its_crd_is_refused(helm: Helm) -> None:
    error = helm.template_error("--set", "metrics.serviceMonitor.enabled=true")
    assert "no monitoring.coreos.com/v1 ServiceMonitor CRD" in error
