"""The chart's operator values against the operator's own settings (operator/.../settings.py).

The settings are declared once, in `OperatorSettings`; the chart restates the defaults it
passes (values.yaml) and their bounds (values.schema.json) so `helm install` refuses a bad
value before the operator would. These tests hold the copies equal to the declaration.
"""

from __future__ import annotations

import json
import os
from typing import Any, get_args

import pytest
import yaml
from annotated_types import Ge, Le
from sentiric_operator.settings import OperatorSettings

from tests.unit.chart.conftest import CHART, Helm, one

# values.yaml `operator.<key>` -> OperatorSettings field.
OPERATOR_VALUES = {
    "workers": "workers",
    "statusInterval": "status_interval_s",
    "resyncInterval": "resync_interval_s",
    "retryDelay": "retry_delay_s",
}


def _values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def _bounds(field: str) -> dict[str, float]:
    bounds: dict[str, float] = {}
    for rule in OperatorSettings.model_fields[field].metadata:
        if isinstance(rule, Ge):
            bounds["minimum"] = float(rule.ge)  # type: ignore[arg-type]
        elif isinstance(rule, Le):
            bounds["maximum"] = float(rule.le)  # type: ignore[arg-type]
    return bounds


@pytest.mark.parametrize(("key", "field"), OPERATOR_VALUES.items())
def test_chart_defaults_and_bounds_are_the_operators(key: str, field: str) -> None:
    declared = OperatorSettings.model_fields[field]
    assert _values()["operator"][key] == declared.default
    schema = _schema()["properties"]["operator"]["properties"][key]
    assert {k: float(v) for k, v in schema.items() if k in ("minimum", "maximum")} == _bounds(field)


def test_log_formats_are_the_operators() -> None:
    schema = _schema()["properties"]["operator"]["properties"]["logFormat"]
    allowed = get_args(OperatorSettings.model_fields["log_format"].annotation)
    assert set(schema["enum"]) == set(allowed)
    # The one deliberate difference: containers log JSON for log pipelines, a terminal text.
    defaults = OperatorSettings.model_construct()
    assert (_values()["operator"]["logFormat"], defaults.log_format) == ("json", "text")


def test_chart_ports_are_the_operators_defaults() -> None:
    values, defaults = _values(), OperatorSettings.model_construct()
    assert values["metrics"]["port"] == defaults.metrics_port
    assert defaults.liveness_endpoint == f"http://0.0.0.0:{values['livenessProbe']['port']}/healthz"


def test_every_variable_the_chart_sets_is_read_and_valid(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    env: dict[str, str] = one(helm.template(), "ConfigMap")["data"]
    known = {OperatorSettings.env_name(field) for field in OperatorSettings.model_fields}
    assert set(env) <= known, set(env) - known
    for key in [k for k in os.environ if k.upper().startswith("SENTIRIC_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = OperatorSettings.from_env()
    for key, field in OPERATOR_VALUES.items():
        assert getattr(settings, field) == _values()["operator"][key]
