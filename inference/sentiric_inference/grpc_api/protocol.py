"""Translate LlamaService wire messages into the serving layer's protocol-neutral requests."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf.message import DecodeError
from pydantic import ValidationError

from sentiric_inference.errors import InvalidRequestError, shown
from sentiric_inference.grpc_api.gen import llama_pb2
from sentiric_inference.grpc_api.structs import struct_to_dict
from sentiric_inference.protocol.convert import response_format_of
from sentiric_inference.protocol.requests import ResponseFormatBody
from sentiric_inference.serving.types import (
    ChatInput,
    ChatTurn,
    RequestParams,
    ResponseFormat,
    Role,
)

ENGINE_PARAMS: Final = "engine_specific_params"

# The serving layer's canonical parameter -> the name a gRPC client sent, so refusals name
# the field as it appears in llama.proto (the servicer applies it: SentiricError.renamed).
FIELD_NAMES: Final[dict[str, str]] = {
    "user_prompt": "user_prompt",
    # A prompt too long for the context is reported against the question itself.
    "prompt": "user_prompt",
    "max_tokens": "max_new_tokens",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "repeat_penalty": "repetition_penalty",
    "stop": "stop_sequences",
    "seed": "seed",
    "min_p": f"{ENGINE_PARAMS}.min_p",
    "frequency_penalty": f"{ENGINE_PARAMS}.frequency_penalty",
    "presence_penalty": f"{ENGINE_PARAMS}.presence_penalty",
    "response_format": f"{ENGINE_PARAMS}.response_format",
}

# engine_specific_params keys that map onto a RequestParams number field.
_NUMERIC_ENGINE_KEYS: Final = ("min_p", "frequency_penalty", "presence_penalty")
KNOWN_ENGINE_KEYS: Final = (*_NUMERIC_ENGINE_KEYS, "response_format")
_ROLES: Final[tuple[Role, ...]] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class UndecodableRequest:
    """Bytes that are no GenerateStreamRequest (garbage, invalid UTF-8 in a string field)."""

    reason: str


def parse_request(data: bytes) -> llama_pb2.GenerateStreamRequest | UndecodableRequest:
    """The server's request deserializer. It must not raise: gRPC would end the call with
    UNKNOWN, where the client deserves INVALID_ARGUMENT and a reason (see `decoded`)."""
    try:
        return llama_pb2.GenerateStreamRequest.FromString(data)
    except DecodeError as exc:
        return UndecodableRequest(str(exc) or "malformed message")


def decoded(
    request: llama_pb2.GenerateStreamRequest | UndecodableRequest,
) -> llama_pb2.GenerateStreamRequest:
    if isinstance(request, UndecodableRequest):
        raise InvalidRequestError(
            "The request is not a valid sentiric.llm.v1.GenerateStreamRequest (string fields "
            f"must be UTF-8): {request.reason}",
            param="request",
        )
    return request


def _invalid(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid '{param}': {message}", param=param)


def to_chat_input(request: llama_pb2.GenerateStreamRequest) -> ChatInput:
    """The prompt parts of a request; raises InvalidRequestError naming the bad field."""
    if not request.user_prompt.strip():
        raise _invalid("user_prompt", "must not be empty.")
    if request.HasField("lora_adapter_id") and request.lora_adapter_id:
        raise _invalid(
            "lora_adapter_id",
            f"{shown(request.lora_adapter_id)} cannot be served: this server loads no LoRA "
            "adapters.",
        )
    history: list[ChatTurn] = []
    for index, turn in enumerate(request.history):
        role = turn.role.strip().lower()
        if role not in _ROLES:
            raise _invalid(
                f"history[{index}].role",
                f"{shown(turn.role)} is not one of {', '.join(_ROLES)}.",
            )
        history.append(ChatTurn(role=role, content=turn.content))
    rag_context = request.rag_context if request.HasField("rag_context") else None
    return ChatInput(
        user_prompt=request.user_prompt,
        system_prompt=request.system_prompt or None,
        history=tuple(history),
        rag_context=rag_context or None,
    )


def to_request_params(request: llama_pb2.GenerateStreamRequest) -> RequestParams:
    """The sampling parameters a request set (None = the profile's default).

    Ranges are checked by the serving layer, whose refusals the servicer respells through
    FIELD_NAMES; here only what the serving layer cannot see is checked: unknown or
    mistyped engine_specific_params keys.
    """
    if not request.HasField("params"):
        return RequestParams()
    params = request.params
    extra = _engine_params(params)
    numbers: dict[str, float | None] = {}
    for key in _NUMERIC_ENGINE_KEYS:
        numbers[key] = _number(extra, key)
    return RequestParams(
        max_tokens=params.max_new_tokens if params.HasField("max_new_tokens") else None,
        temperature=params.temperature if params.HasField("temperature") else None,
        top_p=params.top_p if params.HasField("top_p") else None,
        top_k=params.top_k if params.HasField("top_k") else None,
        repeat_penalty=(
            params.repetition_penalty if params.HasField("repetition_penalty") else None
        ),
        seed=params.seed if params.HasField("seed") else None,
        stop=tuple(params.stop_sequences),
        min_p=numbers["min_p"],
        frequency_penalty=numbers["frequency_penalty"],
        presence_penalty=numbers["presence_penalty"],
        response_format=_response_format(extra.get("response_format")),
    )


def _engine_params(params: llama_pb2.GenerationParams) -> dict[str, Any]:
    if not params.HasField(ENGINE_PARAMS):
        return {}
    unknown = sorted(set(params.engine_specific_params.fields) - set(KNOWN_ENGINE_KEYS))
    if unknown:
        names = ", ".join(shown(key, 40) for key in unknown[:5])
        raise _invalid(
            ENGINE_PARAMS,
            f"unknown key(s) {names}; supported keys are {', '.join(KNOWN_ENGINE_KEYS)}.",
        )
    return struct_to_dict(params.engine_specific_params, ENGINE_PARAMS)


def _number(values: Mapping[str, Any], key: str) -> float | None:
    if key not in values or values[key] is None:
        return None
    value = values[key]
    # bool is an int subclass, and Struct has a separate bool kind: refuse it explicitly.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(f"{ENGINE_PARAMS}.{key}", f"{shown(value)} is not a number.")
    return float(value)


def _response_format(value: Any) -> ResponseFormat | None:
    """OpenAI's response_format, {"type": ..., "json_schema": {"schema": {...}}}, read with
    the HTTP API's own model, so both surfaces accept and refuse the same objects."""
    param = f"{ENGINE_PARAMS}.response_format"
    if value is None:
        return None  # the profile's default format applies
    if not isinstance(value, dict):
        raise _invalid(param, 'must be an object such as {"type": "json_object"}.')
    try:
        body = ResponseFormatBody.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join([param, *(str(part) for part in first["loc"])])
        raise _invalid(where, f"{shown(first.get('input'))}: {first['msg']}.") from None
    try:
        return response_format_of(body)
    except InvalidRequestError as exc:
        raise exc.renamed({"response_format": param}) from None
