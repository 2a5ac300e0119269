"""OpenAI request bodies -> serving requests; refusals name the field the client wrote."""

from __future__ import annotations

from typing import Any

import pytest
from sentiric_inference.errors import InvalidRequestError
from sentiric_inference.protocol.convert import chat_field_names, chat_request, completion_request
from sentiric_inference.protocol.requests import ChatCompletionRequest, CompletionRequest
from sentiric_inference.serving.types import ChatTurn


def chat(**fields: Any) -> ChatCompletionRequest:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body.update(fields)
    return ChatCompletionRequest.model_validate(body)


def test_messages_split_into_system_history_and_user_prompt() -> None:
    body = chat(
        messages=[
            {"role": "system", "content": "rules"},
            {"role": "developer", "content": "more rules"},
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "system", "content": "mid-conversation note"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "thr"}, {"type": "text", "text": "ee"}],
            },
        ],
        rag_context="facts",
    )
    request, _ = chat_request(body)
    assert request.system_prompt == "rules\n\nmore rules"
    assert request.history == (
        ChatTurn("user", "one"),
        ChatTurn("assistant", "two"),
        ChatTurn("system", "mid-conversation note"),
    )
    assert request.user_prompt == "three"
    assert request.rag_context == "facts"
    assert chat_field_names(body)["user_prompt"] == "messages[5].content"


def test_sampling_fields_are_carried_over() -> None:
    _, params = chat_request(
        chat(
            max_tokens=5,
            temperature=0.1,
            top_p=0.5,
            top_k=3,
            min_p=0.2,
            repeat_penalty=1.2,
            frequency_penalty=0.3,
            presence_penalty=0.4,
            seed=9,
            stop="END",
            response_format={"type": "json_object"},
        )
    )
    assert (params.max_tokens, params.temperature, params.top_p, params.top_k) == (5, 0.1, 0.5, 3)
    assert (params.min_p, params.repeat_penalty, params.seed, params.stop) == (
        0.2,
        1.2,
        9,
        ("END",),
    )
    assert (params.frequency_penalty, params.presence_penalty) == (0.3, 0.4)
    assert params.response_format.type == "json_object"


def test_max_completion_tokens_is_the_newer_spelling() -> None:
    _, params = chat_request(chat(max_completion_tokens=11))
    assert params.max_tokens == 11
    assert chat_field_names(chat(max_completion_tokens=11))["max_tokens"] == "max_completion_tokens"
    with pytest.raises(InvalidRequestError) as info:
        chat_request(chat(max_tokens=3, max_completion_tokens=4))
    assert info.value.param == "max_completion_tokens"


def test_json_schema_format_takes_the_inner_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    _, params = chat_request(
        chat(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": schema, "strict": True},
            }
        )
    )
    assert params.response_format.type == "json_schema"
    assert params.response_format.json_schema == schema


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"tools": [{"type": "function", "function": {"name": "f g"}}]}, "tools[0].function.name"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        (
            {
                "messages": [
                    {"role": "tool", "content": "x", "tool_call_id": "1"},
                    {"role": "user", "content": "q"},
                ]
            },
            # A tool result answering no call.
            "messages[0].tool_call_id",
        ),
        (
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
            "messages[1].role",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ]
            },
            "messages[0].content[0].type",
        ),
        ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    ],
)
def test_unsupported_or_invalid_chat_requests_name_the_field(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        chat_request(chat(**fields))
    assert info.value.param == param


def test_n_equal_to_one_and_tool_choice_none_are_fine() -> None:
    chat_request(chat(n=1, tool_choice="none", logprobs=False, user="u", metadata={"k": "v"}))


def test_completion_prompt_forms() -> None:
    prompt, params = completion_request(
        CompletionRequest.model_validate({"model": "m", "prompt": ["once"], "max_tokens": 3})
    )
    # Completions spell the serving layer's names alike ('prompt'): nothing to respell.
    assert (prompt, params.max_tokens) == ("once", 3)
    for bad in ([1, 2, 3], ["a", "b"], []):
        with pytest.raises(InvalidRequestError) as info:
            completion_request(CompletionRequest.model_validate({"model": "m", "prompt": bad}))
        assert info.value.param == "prompt"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"echo": True}, "echo"),
        ({"suffix": "x"}, "suffix"),
        ({"best_of": 2}, "best_of"),
        ({"logprobs": 1}, "logprobs"),
        ({"n": 3}, "n"),
    ],
)
def test_unsupported_completion_fields(fields: dict[str, Any], param: str) -> None:
    body = CompletionRequest.model_validate({"model": "m", "prompt": "p", **fields})
    with pytest.raises(InvalidRequestError) as info:
        completion_request(body)
    assert info.value.param == param


SURROGATE_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("user content", {"messages": [{"role": "user", "content": "a\ud800"}]}, "messages[0].content"),
    (
        "content part",
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]},
        "messages[0].content[0].text",
    ),
    (
        "history",
        {
            "messages": [
                {"role": "assistant", "content": "\ud83d"},
                {"role": "user", "content": "ok"},
            ]
        },
        "messages[0].content",
    ),
    ("rag_context", {"rag_context": "\ud800"}, "rag_context"),
]


@pytest.mark.parametrize(
    ("case", "fields", "param"), SURROGATE_CASES, ids=[c[0] for c in SURROGATE_CASES]
)
def test_lone_surrogates_are_refused_naming_the_field(
    case: str, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        chat_request(chat(**fields))
    assert info.value.param == param
    assert "surrogate" in info.value.message


def test_a_lone_surrogate_in_a_completion_prompt_is_refused() -> None:
    body = CompletionRequest.model_validate({"model": "m", "prompt": "x\ud800"})
    with pytest.raises(InvalidRequestError) as info:
        completion_request(body)
    assert info.value.param == "prompt"
