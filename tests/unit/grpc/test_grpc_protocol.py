"""GenerateStreamRequest -> ChatInput / RequestParams translation (grpc_api.protocol)."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.struct_pb2 import Struct
from sentiric_inference.config import SamplingDefaults
from sentiric_inference.errors import InvalidRequestError
from sentiric_inference.grpc_api.gen import llama_pb2
from sentiric_inference.grpc_api.protocol import FIELD_NAMES, to_chat_input, to_request_params
from sentiric_inference.serving.params import resolve_params
from sentiric_inference.serving.types import ChatTurn, ResponseFormat


def _request(**params: Any) -> llama_pb2.GenerateStreamRequest:
    engine = params.pop("engine", None)
    request = llama_pb2.GenerateStreamRequest(user_prompt="Hi", params=params or None)
    if engine is not None:
        struct = Struct()
        struct.update(engine)
        request.params.engine_specific_params.CopyFrom(struct)
    return request


def test_prompt_parts_are_carried_over() -> None:
    request = llama_pb2.GenerateStreamRequest(
        system_prompt="Be brief.",
        user_prompt="What is RAG?",
        rag_context="RAG means retrieval-augmented generation.",
        history=[
            llama_pb2.ConversationTurn(role="user", content="Hello"),
            llama_pb2.ConversationTurn(role=" Assistant ", content="Hi!"),
        ],
    )
    chat = to_chat_input(request)
    assert chat.user_prompt == "What is RAG?"
    assert chat.system_prompt == "Be brief."
    assert chat.rag_context == "RAG means retrieval-augmented generation."
    assert chat.history == (ChatTurn("user", "Hello"), ChatTurn("assistant", "Hi!"))


def test_empty_optional_parts_mean_none() -> None:
    chat = to_chat_input(llama_pb2.GenerateStreamRequest(user_prompt="Hi", rag_context=""))
    assert chat.system_prompt is None
    assert chat.rag_context is None
    assert chat.history == ()


@pytest.mark.parametrize(
    ("request_fields", "param"),
    [
        ({"user_prompt": ""}, "user_prompt"),
        ({"user_prompt": "  \n"}, "user_prompt"),
        ({"user_prompt": "Hi", "lora_adapter_id": "legal-v2"}, "lora_adapter_id"),
        (
            {"user_prompt": "Hi", "history": [llama_pb2.ConversationTurn(role="bot")]},
            "history[0].role",
        ),
    ],
)
def test_bad_prompt_parts_name_the_field(request_fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        to_chat_input(llama_pb2.GenerateStreamRequest(**request_fields))
    assert info.value.param == param
    assert param in info.value.message


def test_unset_params_stay_unset() -> None:
    params = to_request_params(llama_pb2.GenerateStreamRequest(user_prompt="Hi"))
    assert params.max_tokens is None and params.temperature is None and params.seed is None
    # Present but empty params message: still nothing set.
    params = to_request_params(_request())
    assert (params.top_p, params.top_k, params.repeat_penalty) == (None, None, None)


def test_every_param_is_carried_over() -> None:
    params = to_request_params(
        _request(
            max_new_tokens=32,
            temperature=0.0,
            top_k=0,
            top_p=0.5,
            repetition_penalty=1.25,
            stop_sequences=["\n\n", "END"],
            seed=-7,
            engine={"min_p": 0.1, "frequency_penalty": 0.5, "presence_penalty": -0.5},
        )
    )
    # Zero values are sent explicitly (proto3 `optional`), so they are not "unset".
    assert params.max_tokens == 32
    assert params.temperature == 0.0
    assert params.top_k == 0
    assert params.top_p == 0.5
    assert params.repeat_penalty == 1.25
    assert params.stop == ("\n\n", "END")
    assert params.seed == -7
    assert (params.min_p, params.frequency_penalty, params.presence_penalty) == (0.1, 0.5, -0.5)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"type": "text"}, ResponseFormat()),
        ({"type": "json_object"}, ResponseFormat(type="json_object")),
        (
            {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
            ResponseFormat(type="json_schema", json_schema={"type": "object"}),
        ),
    ],
)
def test_response_format(value: dict[str, Any], expected: ResponseFormat) -> None:
    assert (
        to_request_params(_request(engine={"response_format": value})).response_format == expected
    )


@pytest.mark.parametrize(
    ("engine", "param", "fragment"),
    [
        ({"mirostat": 2, "typical_p": 0.9}, "engine_specific_params", "'mirostat', 'typical_p'"),
        ({"min_p": "high"}, "engine_specific_params.min_p", "not a number"),
        ({"presence_penalty": True}, "engine_specific_params.presence_penalty", "not a number"),
        ({"response_format": "json"}, "engine_specific_params.response_format", "object"),
        (
            {"response_format": {"type": "yaml"}},
            "engine_specific_params.response_format.type",
            "'yaml'",
        ),
        (
            {"response_format": {"type": "json_schema"}},
            "engine_specific_params.response_format.json_schema",
            "schema",
        ),
    ],
)
def test_bad_engine_params_name_the_key(engine: dict[str, Any], param: str, fragment: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        to_request_params(_request(engine=engine))
    assert info.value.param == param
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("fields", "wire"),
    [
        ({"temperature": -0.5}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 100_000}, "max_new_tokens"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"top_k": -1}, "top_k"),
        ({"stop_sequences": [""]}, "stop_sequences"),
        ({"engine": {"min_p": 3}}, "engine_specific_params.min_p"),
    ],
)
def test_serving_layer_errors_use_grpc_field_names(fields: dict[str, Any], wire: str) -> None:
    # Ranges are checked once, in the serving layer; it must report the proto's names.
    params = to_request_params(_request(**fields))
    with pytest.raises(InvalidRequestError) as info:
        resolve_params(params, SamplingDefaults(max_tokens=512))
    # The servicer's error boundary respells the serving layer's names (FIELD_NAMES).
    error = info.value.renamed(FIELD_NAMES)
    assert error.param == wire
    assert f"'{wire}'" in error.message
