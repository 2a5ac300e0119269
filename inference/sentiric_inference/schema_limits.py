"""Bound a response_format JSON schema before it is validated or turned into a grammar.

The schema-to-GBNF converter expands count keywords into repeated (and, for optional items,
nested) grammar rules, and llama.cpp parses nested rules recursively: `maxLength: 20000`
alone overflowed its stack and killed the process. Sizes, nesting and counts are therefore
checked here first, on a plain walk that cannot recurse, so nothing downstream (jsonschema,
the converter, llama.cpp) ever sees a schema whose grammar could be huge or deep.

It lives beside config.py, not in serving/, because the config checks a profile's default
schema (prompt.responseFormat) with it when engine.yaml or an LLMProfile is read, in the
operator too, which has no llama.cpp to import.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import jsonschema

from sentiric_inference.config import LimitsSettings
from sentiric_inference.errors import InvalidRequestError

# Keywords whose value becomes a repetition count in the grammar (or would, in a converter
# that supported it): each is bounded by limits.maxSchemaRepetition.
COUNT_KEYWORDS = frozenset(
    {
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minContains",
        "maxContains",
    }
)
# Keywords holding a map of property names to subschemas.
_PROPERTY_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas"})
_QUANTIFIER = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")
# Integral floats (gRPC's Struct carries every number as a double) become ints up to here,
# where a double still holds every integer exactly.
_EXACT_INT = 2**53


@dataclass(frozen=True, slots=True)
class SchemaBounds:
    max_bytes: int
    max_depth: int
    max_repetition: int
    max_properties: int

    @classmethod
    def from_limits(cls, limits: LimitsSettings) -> SchemaBounds:
        return cls(
            max_bytes=limits.max_schema_bytes,
            max_depth=limits.max_schema_depth,
            max_repetition=limits.max_schema_repetition,
            max_properties=limits.max_schema_properties,
        )


def bounded_schema(schema: dict[str, Any], bounds: SchemaBounds, field: str) -> dict[str, Any]:
    """A copy of `schema` with integral floats as ints; raises InvalidRequestError naming
    `field` (and the path inside the schema) when any bound is exceeded."""
    normalised = _walk(schema, bounds, field)
    size = len(json.dumps(normalised, ensure_ascii=False).encode())
    if size > bounds.max_bytes:
        raise InvalidRequestError(
            f"'{field}' is {size} bytes as JSON; this server accepts schemas of at most "
            f"{bounds.max_bytes} bytes (server.limits.maxSchemaBytes).",
            param=field,
        )
    result: dict[str, Any] = normalised
    return result


def checked_schema(schema: dict[str, Any], limits: LimitsSettings, field: str) -> dict[str, Any]:
    """`bounded_schema`, then jsonschema's check against the schema's own metaschema."""
    schema = bounded_schema(schema, SchemaBounds.from_limits(limits), field)
    validator = jsonschema.validators.validator_for(schema)
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRequestError(
            f"'{field}' is not a valid JSON Schema: {exc.message}", param=field
        ) from exc
    return schema


def _walk(root: dict[str, Any], bounds: SchemaBounds, field: str) -> Any:
    """Copy the tree without recursion, checking each node on the way."""
    out: dict[str, Any] = {}
    # (source, destination, depth, path) of containers still to copy.
    stack: list[tuple[Any, Any, int, str]] = [(root, out, 1, "")]
    budget = bounds.max_bytes  # every node costs at least a byte of JSON
    while stack:
        source, dest, depth, path = stack.pop()
        if depth > bounds.max_depth:
            raise InvalidRequestError(
                f"'{field}' nests deeper than {bounds.max_depth} levels at '{path or '/'}' "
                "(server.limits.maxSchemaDepth).",
                param=field,
            )
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, value in items:
            budget -= 1
            if budget < 0:
                raise InvalidRequestError(
                    f"'{field}' is larger than {bounds.max_bytes} bytes "
                    "(server.limits.maxSchemaBytes).",
                    param=field,
                )
            where = f"{path}/{key}"
            if isinstance(key, str):
                _check_text(key, field, where)
            copied = _check_value(source, key, value, bounds, field, where)
            if isinstance(copied, dict | list):
                stack.append((value, copied, depth + 1, where))
            if isinstance(dest, dict):
                dest[key] = copied
            else:
                dest.append(copied)
    return out


def _check_value(
    parent: Any, key: Any, value: Any, bounds: SchemaBounds, field: str, where: str
) -> Any:
    """The node's copy (an empty container to be filled, or the scalar itself)."""
    if isinstance(value, dict):
        if key in _PROPERTY_MAPS and len(value) > bounds.max_properties:
            raise InvalidRequestError(
                f"'{field}' lists {len(value)} properties at '{where}'; at most "
                f"{bounds.max_properties} are accepted per object "
                "(server.limits.maxSchemaProperties).",
                param=field,
            )
        return {}
    if isinstance(value, list):
        return []
    if isinstance(value, str):
        _check_text(value, field, where)
        if key == "pattern" and isinstance(parent, dict):
            _check_pattern(value, bounds, field, where)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequestError(
                f"'{field}' holds {value!r} at '{where}'; JSON has no such number.", param=field
            )
        if value.is_integer() and abs(value) <= _EXACT_INT:
            value = int(value)
    if (
        key in COUNT_KEYWORDS
        and isinstance(parent, dict)
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > bounds.max_repetition
    ):
        raise InvalidRequestError(
            f"'{field}' asks for {key} {value} at '{where}'; counts above "
            f"{bounds.max_repetition} are refused (server.limits.maxSchemaRepetition).",
            param=field,
        )
    return value


def _check_text(text: str, field: str, where: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(
            f"'{field}' holds text that is not valid Unicode at '{where}' "
            f"(a lone surrogate at position {exc.start}).",
            param=field,
        ) from exc


def _check_pattern(pattern: str, bounds: SchemaBounds, field: str, where: str) -> None:
    """Group nesting and {m,n} counts of a regex, as the grammar converter will expand them."""
    depth = 0
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            # A character class: nothing inside nests or repeats.
            i += 1
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif c == "(":
            depth += 1
            if depth > bounds.max_depth:
                raise InvalidRequestError(
                    f"'{field}' has a pattern at '{where}' whose groups nest deeper than "
                    f"{bounds.max_depth} levels (server.limits.maxSchemaDepth).",
                    param=field,
                )
        elif c == ")":
            depth = max(depth - 1, 0)
        elif c == "{":
            match = _QUANTIFIER.match(pattern, i)
            if match is not None:
                counts = [int(g) for g in match.groups() if g]
                if counts and max(counts) > bounds.max_repetition:
                    raise InvalidRequestError(
                        f"'{field}' has a pattern at '{where}' repeating {match.group(0)}; "
                        f"counts above {bounds.max_repetition} are refused "
                        "(server.limits.maxSchemaRepetition).",
                        param=field,
                    )
                i = match.end()
                continue
        i += 1
