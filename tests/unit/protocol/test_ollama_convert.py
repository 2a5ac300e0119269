"""Ollama request bodies -> serving requests; refusals name the field the client wrote."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sentiric_inference.config import SamplingDefaults
from sentiric_inference.errors import InvalidRequestError
from sentiric_inference.protocol.ollama import ChatRequest, GenerateRequest
from sentiric_inference.protocol.ollama_convert import (
    chat_field_names,
    chat_request,
    generate_field_names,
    generate_request,
)
from sentiric_inference.serving.params import resolve_params
from sentiric_inference.serving.types import ChatInput, ChatTurn, ResponseFormat

USER = [{"role": "user", "content": "hi"}]


def chat(**fields: Any) -> ChatRequest:
    return ChatRequest.model_validate({"model": "m", "messages": USER, **fields})


def generate(**fields: Any) -> GenerateRequest:
    return GenerateRequest.model_validate({"model": "m", "prompt": "hi", **fields})


def test_messages_split_into_system_history_and_user_prompt() -> None:
    body = chat(
        messages=[
            {"role": "system", "content": "rules"},
            {"role": "system", "content": "more rules"},
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "user", "content": "three"},
        ]
    )
    chat_input, _ = chat_request(body)
    assert chat_input == ChatInput(
        user_prompt="three",
        system_prompt="rules\n\nmore rules",
        history=(ChatTurn("user", "one"), ChatTurn("assistant", "two")),
    )
    assert chat_field_names(body)["user_prompt"] == "messages[4].content"


def test_options_become_sampling_with_ollamas_names_for_refusals() -> None:
    options = {
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 20,
        "min_p": 0.1,
        "seed": 5,
        "num_predict": 12,
        "stop": ["\n\n", "END"],
        "repeat_penalty": 1.1,
        "repeat_last_n": -1,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "num_ctx": 99999,
        "mirostat": 0,
        "typical_p": 1.0,
    }
    _, params = chat_request(chat(options=options))
    sampling = resolve_params(params, SamplingDefaults(max_tokens=64))
    assert (sampling.temperature, sampling.top_p, sampling.top_k, sampling.min_p) == (
        0.3,
        0.9,
        20,
        0.1,
    )
    assert (sampling.seed, sampling.max_tokens, sampling.stop) == (5, 12, ("\n\n", "END"))
    assert (sampling.repeat_penalty, sampling.repeat_last_n) == (1.1, -1)
    assert (sampling.presence_penalty, sampling.frequency_penalty) == (0.5, 0.25)
    _, too_many = chat_request(chat(options={"num_predict": 65}))
    with pytest.raises(InvalidRequestError) as refused:
        resolve_params(too_many, SamplingDefaults(max_tokens=64))
    # The route's error boundary respells the serving layer's names.
    assert refused.value.renamed(chat_field_names(chat())).param == "options.num_predict"


@pytest.mark.parametrize("until_done", [-1, -2])
def test_num_predict_until_done_is_the_profiles_limit(until_done: int) -> None:
    _, params = chat_request(chat(options={"num_predict": until_done}))
    assert params.max_tokens is None
    assert resolve_params(params, SamplingDefaults(max_tokens=64)).max_tokens == 64


def test_format_json_schema_or_none() -> None:
    assert chat_request(chat())[1].response_format is None
    assert chat_request(chat(format=""))[1].response_format is None
    assert chat_request(chat(format="json"))[1].response_format == ResponseFormat("json_object")
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert chat_request(chat(format=schema))[1].response_format == ResponseFormat(
        "json_schema", schema
    )
    with pytest.raises(ValidationError):
        chat(format="yaml")


def test_generate_uses_the_template_unless_raw() -> None:
    prompt, _ = generate_request(generate(system="be brief"))
    assert prompt == ChatInput(user_prompt="hi", system_prompt="be brief")
    raw, _ = generate_request(generate(raw=True))
    assert raw == "hi"
    assert generate_field_names()["prompt"] == "prompt"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(options={"mirostat": 2}), "options.mirostat"),
        (chat(options={"typical_p": 0.5}), "options.typical_p"),
        (chat(think=True), "think"),
        (chat(logprobs=True), "logprobs"),
        (chat(tools=[{"type": "function"}]), "tools"),
        (
            chat(messages=[{"role": "user", "content": "x", "images": ["aGk="]}]),
            "messages[0].images",
        ),
        (chat(messages=[*USER, {"role": "tool", "content": "r"}]), "messages[1].role"),
        (
            chat(messages=[{"role": "assistant", "content": "", "tool_calls": [{}]}, *USER]),
            "messages[0].tool_calls",
        ),
        (chat(messages=[*USER, {"role": "assistant", "content": "a"}]), "messages[1].role"),
        (chat(messages=[{"role": "user", "content": "\ud800"}]), "messages[0].content"),
        (generate(template="{{ .Prompt }}"), "template"),
        (generate(suffix="x"), "suffix"),
        (generate(context=[1]), "context"),
        (generate(images=["aGk="]), "images"),
        (generate(width=64), "width"),
        (generate(raw=True, system="s"), "system"),
        (generate(options={"tfs_z": 0.9}), "options.tfs_z"),
    ],
)
def test_refusals_name_the_field(body: ChatRequest | GenerateRequest, param: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        if isinstance(body, ChatRequest):
            chat_request(body)
        else:
            generate_request(body)
    assert refused.value.param == param


@pytest.mark.parametrize(
    "fields",
    [
        {"options": {"temprature": 1}},
        {"options": {"temperature": "hot"}},
        {"options": {"num_predict": 1.5}},
        {"stream": "yes"},
        {"unknown": 1},
    ],
)
def test_unknown_fields_and_wrong_types_fail_validation(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        chat(**fields)
