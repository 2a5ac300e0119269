"""Turn an OpenAI `response_format` into a GBNF grammar llama.cpp's sampler enforces.

A schema is bounded first (schema_limits.py), then checked by jsonschema, then
converted; the grammar itself is bounded too, since even a bounded schema can list many
bounded strings. Callers run this on a preparation worker (serving/preparing.py), never on
the event loop: validation and conversion of a large schema take CPU seconds.
"""

from __future__ import annotations

import functools
import json

from sentiric_inference.config import LimitsSettings
from sentiric_inference.errors import InvalidRequestError
from sentiric_inference.schema_limits import checked_schema
from sentiric_inference.serving.types import ResponseFormat

# Grammars kept for schemas sent again; each is at most limits.maxGrammarBytes and each key
# at most limits.maxSchemaBytes, so the cache holds a bounded amount of memory.
_CACHED_GRAMMARS = 64


def grammar_for(
    response_format: ResponseFormat | None,
    param: str = "response_format",
    limits: LimitsSettings | None = None,
) -> str | None:
    """GBNF for the format, or None for free text; bad schemas raise naming `<param>.json_schema`."""
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return _json_gbnf()
    limits = limits or LimitsSettings()
    schema = response_format.json_schema
    field = f"{param}.json_schema"
    assert schema is not None  # ResponseFormat holds a json_schema format to it
    schema = checked_schema(schema, limits, field)
    grammar = _schema_gbnf(json.dumps(schema, sort_keys=True), field)
    if len(grammar) > limits.max_grammar_bytes:
        raise InvalidRequestError(
            f"'{field}' expands into a {len(grammar)}-byte grammar; this server builds "
            f"grammars of at most {limits.max_grammar_bytes} bytes "
            "(server.limits.maxGrammarBytes). Use fewer or smaller bounded strings and arrays.",
            param=field,
        )
    return grammar


@functools.cache
def _json_gbnf() -> str:
    # llama_cpp is imported here, not at module level: it loads the native library.
    from llama_cpp.llama_grammar import JSON_GBNF

    grammar: str = JSON_GBNF
    return grammar


@functools.lru_cache(maxsize=_CACHED_GRAMMARS)
def _schema_gbnf(schema_json: str, field: str) -> str:
    # Clients tend to send the same schema on every request: converting once saves the work.
    # A refusal raises, and lru_cache keeps no entry for it.
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar: str = strict_strings(json_schema_to_gbnf(schema_json))
    except RecursionError as exc:
        raise InvalidRequestError(
            f"'{field}' refers to itself too deeply to be turned into a grammar.", param=field
        ) from exc
    except Exception as exc:  # the converter raises bare exceptions for unsupported features
        raise InvalidRequestError(
            f"'{field}' uses a feature the grammar converter does not support: {exc}",
            param=field,
        ) from exc
    return grammar


# llama-cpp-python's converter lets a string hold any character but `"` and `\`, raw newlines
# and other control characters included, which JSON forbids (SmolLM2 wrote a raw newline into
# a product description, and strict parsers refused the reply). llama.cpp's own converter and
# JSON_GBNF exclude them; the same class is put in here.
_LOOSE_CHAR = 'char ::= [^"\\\\] '
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] '


def strict_strings(grammar: str) -> str:
    lines = grammar.split("\n")
    for index, line in enumerate(lines):
        if line.startswith(_LOOSE_CHAR):
            lines[index] = _STRICT_CHAR + line[len(_LOOSE_CHAR) :]
    return "\n".join(lines)
