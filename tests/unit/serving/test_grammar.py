"""response_format -> GBNF through llama-cpp-python's own converter."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2
from sentiric_inference.errors import InvalidRequestError
from sentiric_inference.grpc_api.gen import llama_pb2
from sentiric_inference.grpc_api.protocol import to_request_params
from sentiric_inference.serving.grammar import grammar_for
from sentiric_inference.serving.types import ResponseFormat


def test_text_has_no_grammar() -> None:
    assert grammar_for(ResponseFormat()) is None


def test_json_object_uses_the_generic_json_grammar() -> None:
    grammar = grammar_for(ResponseFormat("json_object"))
    assert grammar is not None
    assert grammar.lstrip().startswith("root")


def test_json_schema_is_converted_with_its_properties() -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "open": {"type": "boolean"}},
        "required": ["city", "open"],
    }
    grammar = grammar_for(ResponseFormat("json_schema", json_schema=schema))
    assert grammar is not None
    assert "city" in grammar and "open" in grammar


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "no-such-type"},
        {"type": "object", "properties": {"a": {"minLength": "three"}}},
        {"type": "object", "required": "a"},
    ],
)
def test_invalid_schemas_are_refused_naming_the_field(schema: dict[str, object]) -> None:
    with pytest.raises(InvalidRequestError) as info:
        grammar_for(ResponseFormat("json_schema", json_schema=schema))
    assert info.value.param == "response_format.json_schema"
    assert "JSON Schema" in info.value.message


def test_missing_schema_is_refused() -> None:
    # Refused where both surfaces read response_format (protocol/convert.py), naming each
    # surface's field: gRPC's below, HTTP's in tests/unit/protocol/test_convert.py; a
    # ResponseFormat without its schema cannot even be made.
    engine = struct_pb2.Struct()
    engine.update({"response_format": {"type": "json_schema"}})
    request = llama_pb2.GenerateStreamRequest(
        user_prompt="Hi", params=llama_pb2.GenerationParams(engine_specific_params=engine)
    )
    with pytest.raises(InvalidRequestError) as info:
        to_request_params(request)
    assert info.value.param == "engine_specific_params.response_format.json_schema"
    with pytest.raises(ValueError, match="schema"):
        ResponseFormat("json_schema")


def test_schema_strings_hold_no_raw_control_characters() -> None:
    # JSON forbids them unescaped; llama-cpp-python's converter allowed them (a raw newline
    # in a SmolLM2 product description made the reply unparseable).
    grammar = grammar_for(
        ResponseFormat(
            type="json_schema",
            json_schema={"type": "object", "properties": {"a": {"type": "string"}}},
        )
    )
    assert grammar is not None
    (char,) = [line for line in grammar.splitlines() if line.startswith("char ::=")]
    assert char.startswith('char ::= [^"\\\\\\x7F\\x00-\\x1F] ')
