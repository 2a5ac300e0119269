"""Check a request's tool schemas and build the grammar that forces a valid call.

A forced call (tool_choice "required" or a named function) is sampled under a GBNF grammar
whose output is plain JSON in one fixed layout:

    {"name": "<function>", "arguments": <arguments matching the function's schema>}

Plain JSON rather than a model's own markup (Qwen's <tool_call> tags): the grammar then
works the same for every model, templates without tool support included, and the server
turns it into an OpenAI tool call (serving/tool_output.py). The fixed text before the
arguments lets a stream name the function as soon as it is written.

Each schema is bounded and validated like a response_format schema (schema_limits.py) and
converted by llama-cpp-python's SchemaConverter: one converter for all tools, each tool's
references resolved under its own prefix so two tools' `#/$defs/x` stay apart. Runs on a
preparation worker (serving/preparing.py), never on the event loop.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from sentiric_inference.config import LimitsSettings
from sentiric_inference.errors import InvalidRequestError
from sentiric_inference.schema_limits import checked_schema
from sentiric_inference.serving.grammar import strict_strings
from sentiric_inference.serving.types import ToolSet

_CACHED_GRAMMARS = 64


def call_prefix(name: str) -> str:
    """The text a forced call to `name` starts with; its arguments follow."""
    return '{"name": ' + json.dumps(name) + ', "arguments": '


def tool_grammar(tools: ToolSet, limits: LimitsSettings) -> str | None:
    """Check every tool's parameter schema; the grammar of a forced call, None otherwise.

    Refusals name the field as sent: `tools[2].function.parameters`.
    """
    index_of = {tool.name: index for index, tool in enumerate(tools.tools)}
    schemas: list[tuple[str, dict[str, Any]]] = []
    for index, tool in enumerate(tools.tools):
        field = f"tools[{index}].function.parameters"
        checked = checked_schema(tool.parameters, limits, field)
        if checked.get("type", "object") != "object":
            raise InvalidRequestError(
                f"'{field}' must describe a JSON object (its 'type' is 'object').", param=field
            )
        schemas.append((tool.name, checked))
    if not tools.constrained:
        return None
    schemas = [
        (name, enforceable(schema, f"tools[{index_of[name]}].function.parameters"))
        for name, schema in schemas
    ]
    allowed = tuple(
        (name, json.dumps(schema, sort_keys=True), f"tools[{index_of[name]}].function.parameters")
        for name, schema in schemas
        if tools.forced is None or name == tools.forced
    )
    field = "tools" if tools.forced is None else f"tools[{index_of[tools.forced]}].function"
    grammar = _calls_gbnf(allowed)
    if len(grammar) > limits.max_grammar_bytes:
        raise InvalidRequestError(
            f"'{field}' expands into a {len(grammar)}-byte grammar; this server builds "
            f"grammars of at most {limits.max_grammar_bytes} bytes "
            "(server.limits.maxGrammarBytes). Offer fewer or smaller functions.",
            param=field,
        )
    return grammar


# Keywords the grammar holds the output to (or that do not constrain it at all). A forced
# call must validate against its schema whatever the model writes, so a schema using any
# other keyword (`minimum`, `multipleOf`, `uniqueItems`, `not`, ...) is refused for a forced
# call rather than produce arguments that break it.
_ENFORCED = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "prefixItems",
        "minItems", "maxItems", "minLength", "maxLength", "pattern", "enum", "const",
        "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions",
    }
)  # fmt: skip
_ANNOTATIONS = frozenset(
    {
        "title", "description", "default", "examples", "$schema", "$id", "$comment",
        "deprecated", "readOnly", "writeOnly", "format", "strict",
    }
)  # fmt: skip
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("prefixItems", "anyOf", "oneOf", "allOf")
# An integer range with both bounds becomes an enum (which the grammar enforces) up to this
# many values.
MAX_INTEGER_RANGE = 1000


def enforceable(schema: dict[str, Any], field: str) -> dict[str, Any]:
    """A copy of `schema` the grammar enforces exactly; InvalidRequestError naming the
    keyword and its place when it cannot. Bounded integer ranges become enums."""
    root = copy.deepcopy(schema)
    stack: list[tuple[dict[str, Any], str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if {"minimum", "maximum"} <= node.keys() and node.get("type") == "integer":
            low, high = node["minimum"], node["maximum"]
            if (
                isinstance(low, int | float)
                and isinstance(high, int | float)
                and float(low).is_integer()
                and float(high).is_integer()
                and 0 <= high - low < MAX_INTEGER_RANGE
            ):
                del node["minimum"], node["maximum"]
                node["enum"] = list(range(int(low), int(high) + 1))
        for key, value in node.items():
            where = f"{path}/{key}"
            if key not in _ENFORCED and key not in _ANNOTATIONS:
                raise InvalidRequestError(
                    f"'{field}' uses '{key}' at '{where}', which the grammar of a forced call "
                    "cannot enforce, so its arguments could break the schema. Remove it (an "
                    f"integer 'minimum' with 'maximum' under {MAX_INTEGER_RANGE} values apart "
                    "is enforced), or use tool_choice 'auto'.",
                    param=field,
                )
            if key in _SUBSCHEMA_MAPS and isinstance(value, dict):
                stack += [
                    (sub, f"{where}/{name}") for name, sub in value.items() if isinstance(sub, dict)
                ]
            elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
                stack += [
                    (sub, f"{where}/{i}") for i, sub in enumerate(value) if isinstance(sub, dict)
                ]
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                stack.append((value, where))
    return root


@functools.lru_cache(maxsize=_CACHED_GRAMMARS)
def _calls_gbnf(allowed: tuple[tuple[str, str, str], ...]) -> str:
    """(name, schema JSON, field) of each callable tool -> the grammar of one call."""
    # Clients send the same tools with every turn of a conversation: converted once.
    from llama_cpp.llama_grammar import SchemaConverter

    converter = SchemaConverter(  # type: ignore[no-untyped-call]
        prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
    )
    alternatives: list[str] = []
    field = "tools"  # named in a refusal: the tool being converted, else all of them
    try:
        for number, (name, schema_json, tool_field) in enumerate(allowed):
            field = tool_field
            schema = converter.resolve_refs(copy.deepcopy(json.loads(schema_json)), f"tool{number}")
            rule = converter.visit(schema, f"tool{number}-arguments")  # type: ignore[no-untyped-call]
            prefix = converter._format_literal(call_prefix(name))  # type: ignore[no-untyped-call]
            alternatives.append(f'{prefix} {rule} "}}"')
        field = "tools"
        converter._add_rule("root", " | ".join(alternatives))  # type: ignore[no-untyped-call]
        grammar: str = converter.format_grammar()  # type: ignore[no-untyped-call]
        return strict_strings(grammar)
    except RecursionError as exc:
        raise InvalidRequestError(
            f"'{field}' refers to itself too deeply to be turned into a grammar.", param=field
        ) from exc
    except Exception as exc:  # the converter raises bare exceptions for unsupported features
        raise InvalidRequestError(
            f"'{field}' uses a schema feature the grammar converter does not support: {exc}",
            param=field,
        ) from exc
