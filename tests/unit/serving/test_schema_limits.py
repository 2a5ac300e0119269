"""Schema bounds: size, depth, counts, properties and pattern quantifiers refused up front."""

from __future__ import annotations

from typing import Any

import pytest
from sentiric_inference.errors import InvalidRequestError
from sentiric_inference.schema_limits import SchemaBounds, bounded_schema

BOUNDS = SchemaBounds(max_bytes=4096, max_depth=8, max_repetition=100, max_properties=10)
FIELD = "response_format.json_schema"


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("maxLength above the bound", {"type": "string", "maxLength": 101}, "maxLength 101"),
    ("minItems above the bound", {"type": "array", "minItems": 2_000_000}, "minItems"),
    ("float count above the bound", {"type": "string", "maxLength": 1e9}, "maxLength"),
    ("quantifier in a pattern", {"type": "string", "pattern": "^a{0,20000}$"}, "{0,20000}"),
    ("open quantifier in a pattern", {"type": "string", "pattern": "^a{500,}$"}, "{500,}"),
    ("pattern groups too deep", {"type": "string", "pattern": "(" * 9 + "a" + ")" * 9}, "nest"),
    ("schema too deep", nested(10), "deeper than 8"),
    ("too many properties", {"properties": {f"p{i}": {} for i in range(11)}}, "11 properties"),
    ("too large", {"enum": ["x" * 5000]}, "bytes"),
    ("lone surrogate in a value", {"const": "\ud800"}, "surrogate"),
    ("lone surrogate in a key", {"properties": {"\udfff": {}}}, "surrogate"),
    ("NaN", {"const": float("nan")}, "nan"),
]


@pytest.mark.parametrize(("case", "schema", "says"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_naming_the_field(case: str, schema: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        bounded_schema(schema, BOUNDS, FIELD)
    assert info.value.param == FIELD
    assert says in info.value.message


def test_a_schema_within_bounds_is_kept_with_integral_floats_as_ints() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 100.0, "pattern": r"^[a-z{}]{1,100}$"},
            "score": {"type": "number", "enum": [1.0, 2.5]},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
        },
        "required": ["name"],
    }
    out = bounded_schema(schema, BOUNDS, FIELD)
    name = out["properties"]["name"]
    assert name["maxLength"] == 100 and isinstance(name["maxLength"], int)
    assert out["properties"]["score"]["enum"] == [1, 2.5]
    assert out["required"] == ["name"]
    assert out["properties"]["tags"] == schema["properties"]["tags"]  # type: ignore[index]


def test_escaped_braces_and_character_classes_are_not_quantifiers() -> None:
    schema = {"type": "string", "pattern": r"\{5000\}[{5000}]x{2}"}
    assert bounded_schema(schema, BOUNDS, FIELD) == schema


def test_a_property_named_like_a_count_keyword_is_not_a_count() -> None:
    schema = {"type": "object", "properties": {"maxLength": {"type": "integer"}}}
    assert bounded_schema(schema, BOUNDS, FIELD) == schema


def test_a_very_deep_schema_is_refused_without_recursion() -> None:
    with pytest.raises(InvalidRequestError, match="deeper"):
        bounded_schema(nested(5000), BOUNDS, FIELD)
