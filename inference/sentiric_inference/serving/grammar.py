"""Turn an OpenAI `response_format` into a GBNF grammar llama.cpp's sampler enforces."""

from __future__ import annotations

import functools
import json

import jsonschema

from sentiric_inference.errors import InvalidRequestError
from sentiric_inference.serving.types import ResponseFormat


def grammar_for(response_format: ResponseFormat, param: str = "response_format") -> str | None:
    """GBNF for the format, or None for free text; bad schemas raise naming `<param>.json_schema`."""
    if response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return _json_gbnf()
    schema = response_format.json_schema
    field = f"{param}.json_schema"
    if schema is None:
        raise InvalidRequestError(
            f"'{field}' is required when '{param}.type' is 'json_schema'.", param=field
        )
    if not isinstance(schema, dict):
        raise InvalidRequestError(f"'{field}' must be a JSON object.", param=field)
    validator = jsonschema.validators.validator_for(schema)
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRequestError(
            f"'{field}' is not a valid JSON Schema: {exc.message}", param=field
        ) from exc
    return _schema_gbnf(json.dumps(schema, sort_keys=True), field)


@functools.cache
def _json_gbnf() -> str:
    # llama_cpp is imported here, not at module level: it loads the native library.
    from llama_cpp.llama_grammar import JSON_GBNF

    grammar: str = JSON_GBNF
    return grammar


@functools.lru_cache(maxsize=64)
def _schema_gbnf(schema_json: str, field: str) -> str:
    # Clients tend to send the same schema on every request: converting once saves the work.
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar: str = json_schema_to_gbnf(schema_json)
    except Exception as exc:  # the converter raises bare exceptions for unsupported features
        raise InvalidRequestError(
            f"'{field}' uses a feature the grammar converter does not support: {exc}",
            param=field,
        ) from exc
    return grammar
