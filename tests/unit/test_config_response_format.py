"""prompt.responseFormat: the profile's default output schema, checked when engine.yaml is read.

The same bounds (server.limits) and metaschema check a request's own schema gets, so a bad
default stops `serve` with a message naming the key instead of failing every request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from sentiric_inference.config import EngineConfig, dump_config, load_config

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 80},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
    },
    "required": ["title", "tags"],
    "additionalProperties": False,
}


def _config(response_format: Any, limits: dict[str, Any] | None = None) -> EngineConfig:
    data: dict[str, Any] = {"prompt": {"responseFormat": response_format}}
    if limits is not None:
        data["server"] = {"limits": limits}
    return EngineConfig.model_validate(data)


def test_a_schema_round_trips_through_engine_yaml(tmp_path: Path) -> None:
    config = _config(SCHEMA)
    assert config.prompt.response_format == SCHEMA
    path = tmp_path / "engine.yaml"
    path.write_text(dump_config(config))
    assert yaml.safe_load(path.read_text())["prompt"]["responseFormat"] == SCHEMA
    assert load_config(path) == config


def test_no_schema_by_default() -> None:
    assert EngineConfig().prompt.response_format is None
    assert "responseFormat" not in yaml.safe_load(dump_config(EngineConfig()))["prompt"]


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"type": "array", "items": {"type": "string"}}, '{"type": "object"'),
        ({"properties": {"a": {"type": "string"}}}, '{"type": "object"'),
        ({"type": "object", "properties": {"a": {"type": "strin"}}}, "not a valid JSON Schema"),
        ({"type": "object", "required": "title"}, "not a valid JSON Schema"),
        (
            {"type": "object", "properties": {"a": {"type": "string", "maxLength": 5000}}},
            "maxSchemaRepetition",
        ),
        ({"type": "object", "properties": {"d": {"default": float("nan")}}}, "JSON values"),
    ],
)
def test_bad_schemas_are_refused_naming_the_key(schema: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        _config(schema)
    text = str(info.value)
    assert "responseFormat" in text and fragment in text, text


def test_yaml_values_json_cannot_hold_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "engine.yaml"
    path.write_text("prompt:\n  responseFormat:\n    type: object\n    default: 2024-01-01\n")
    with pytest.raises(ValidationError, match="JSON values"):
        load_config(path)


def test_the_bounds_are_the_servers_limits() -> None:
    long_string = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 5000}}}
    # Refused with the default limits (test above), accepted where the profile raises them.
    config = _config(long_string, limits={"maxSchemaRepetition": 10000})
    assert config.prompt.response_format == long_string
    with pytest.raises(ValidationError, match="maxSchemaDepth"):
        _config(
            {"type": "object", "properties": {"a": {"type": "object"}}},
            limits={"maxSchemaDepth": 2},
        )
