"""Translate OpenAI request bodies into the serving layer's protocol-neutral requests.

Every refusal is an InvalidRequestError whose `param` is the field as the client wrote it
(`messages[2].role`, `n`, `response_format.json_schema`).
"""

from __future__ import annotations

from typing import Any

from sentiric_inference.errors import InvalidRequestError
from sentiric_inference.protocol.requests import (
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    ResponseFormatBody,
)
from sentiric_inference.protocol.tools import check_tool_answers, message_tool_calls, tool_set
from sentiric_inference.serving.types import ChatInput, ChatTurn, RequestParams, ResponseFormat

_SYSTEM_ROLES = ("system", "developer")


def _unsupported(param: str, why: str) -> InvalidRequestError:
    return InvalidRequestError(f"'{param}' is not supported: {why}", param=param)


def _check_common(body: ChatCompletionRequest | CompletionRequest) -> None:
    if body.n is not None and body.n != 1:
        raise _unsupported("n", "this server returns exactly one choice per request (n=1).")
    if body.logit_bias:
        raise _unsupported("logit_bias", "token biases are not applied by this server.")
    if body.stream_options is not None and not body.stream:
        raise InvalidRequestError(
            "'stream_options' is only allowed when 'stream' is true.", param="stream_options"
        )


def _check_chat_features(body: ChatCompletionRequest) -> None:
    refused: list[tuple[str, Any, str]] = [
        ("logprobs", body.logprobs, "log probabilities are not returned."),
        ("top_logprobs", body.top_logprobs, "log probabilities are not returned."),
        (
            "functions",
            body.functions,
            "the deprecated function calling API is not served; send 'tools'.",
        ),
        (
            "function_call",
            body.function_call if body.function_call != "none" else None,
            "the deprecated function calling API is not served; send 'tool_choice'.",
        ),
        ("audio", body.audio, "only text output is produced."),
        ("prediction", body.prediction, "predicted outputs are not supported."),
        ("reasoning_effort", body.reasoning_effort, "the model has no reasoning setting."),
    ]
    for name, value, why in refused:
        if value:
            raise _unsupported(name, why)
    if body.modalities and any(m != "text" for m in body.modalities):
        raise _unsupported("modalities", "only the 'text' modality is produced.")


def checked_text(text: str, param: str) -> str:
    """`text`, if it can be encoded as UTF-8: JSON's \\ud800 escapes decode to a lone
    surrogate, which would fail deep inside tokenizing as a 500."""
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(
            f"'{param}' is not valid Unicode text: a lone surrogate at position {exc.start}.",
            param=param,
        ) from exc
    return text


def _text_of(message: ChatMessage, index: int) -> str:
    param = f"messages[{index}].content"
    content = message.content
    if content is None:
        if message.role == "assistant":
            return ""
        raise InvalidRequestError(f"'{param}' is required for role '{message.role}'.", param=param)
    if isinstance(content, str):
        return checked_text(content, param)
    texts: list[str] = []
    for part_index, part in enumerate(content):
        if part.type != "text" or part.text is None:
            where = f"{param}[{part_index}]"
            raise InvalidRequestError(
                f"'{where}' has type '{part.type}'; only 'text' content parts are supported "
                "(this model reads text only).",
                param=f"{where}.type" if part.type != "text" else f"{where}.text",
            )
        texts.append(checked_text(part.text, f"{param}[{part_index}].text"))
    return "".join(texts)


def response_format_of(body: ResponseFormatBody | None) -> ResponseFormat | None:
    """OpenAI's response_format for the serving layer; gRPC's engine_specific_params
    carries the same object and is read with this too (one model for both surfaces)."""
    if body is None:
        return None  # the profile's default format applies
    if body.type == "json_schema":
        if body.json_schema is None:
            raise InvalidRequestError(
                "'response_format.json_schema' is required when 'response_format.type' is "
                "'json_schema'.",
                param="response_format.json_schema",
            )
        schema = body.json_schema.schema_
        if schema is None:
            # An absent schema means "any JSON"; OpenAI requires it, llama.cpp tolerates it.
            return ResponseFormat(type="json_object")
        if not isinstance(schema, dict):
            raise InvalidRequestError(
                "'response_format.json_schema.schema' must be a JSON object.",
                param="response_format.json_schema",
            )
        return ResponseFormat(type="json_schema", json_schema=schema)
    return ResponseFormat(type=body.type)


def _params(
    body: ChatCompletionRequest | CompletionRequest, max_tokens: int | None
) -> RequestParams:
    stop: tuple[str, ...] = ()
    if isinstance(body.stop, str):
        stop = (body.stop,)
    elif body.stop is not None:
        stop = tuple(body.stop)
    return RequestParams(
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        min_p=body.min_p,
        repeat_penalty=body.repeat_penalty,
        frequency_penalty=body.frequency_penalty,
        presence_penalty=body.presence_penalty,
        seed=body.seed,
        stop=stop,
        response_format=response_format_of(body.response_format),
    )


def _turn(message: ChatMessage, index: int) -> ChatTurn:
    return ChatTurn(
        role="system" if message.role in _SYSTEM_ROLES else message.role,  # type: ignore[arg-type]
        content=_text_of(message, index),
        tool_calls=message_tool_calls(message, index),
        tool_call_id=message.tool_call_id if message.role == "tool" else None,
    )


def chat_field_names(body: ChatCompletionRequest) -> dict[str, str]:
    """The serving layer's canonical parameters (errors.py) as this chat request spells them,
    for its refusals; the others are spelled alike (completions need none)."""
    return {
        "max_tokens": (
            "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
        ),
        "user_prompt": f"messages[{len(body.messages) - 1}].content",
        "prompt": "messages",
        "system_prompt": "messages",
    }


def chat_request(body: ChatCompletionRequest) -> tuple[ChatInput, RequestParams]:
    """Split OpenAI messages into a prompt's parts: system, history, last user prompt (or,
    when the conversation ends with tool results, no user prompt); docs/architecture.md."""
    _check_common(body)
    _check_chat_features(body)
    tools, tools_chars = tool_set(body)
    messages = body.messages
    for index, message in enumerate(messages):
        if message.role == "function":
            raise _unsupported(
                f"messages[{index}].role",
                "role 'function' belongs to the deprecated function calling API; send "
                "'tool' messages.",
            )
    check_tool_answers(messages)
    last = len(messages) - 1
    if messages[last].role not in ("user", "tool"):
        raise InvalidRequestError(
            f"'messages[{last}].role' is '{messages[last].role}': the last message must come "
            "from the user (or be a tool result).",
            param=f"messages[{last}].role",
        )
    ends_with_tool = messages[last].role == "tool"
    if ends_with_tool and body.rag_context is not None:
        raise InvalidRequestError(
            "'rag_context' wraps the last user message; this conversation ends with a tool result.",
            param="rag_context",
        )
    system_parts: list[str] = []
    start = 0
    while start < last and messages[start].role in _SYSTEM_ROLES:
        system_parts.append(_text_of(messages[start], start))
        start += 1
    history = tuple(
        _turn(m, start + offset)
        for offset, m in enumerate(messages[start : last + 1 if ends_with_tool else last])
    )
    if (
        body.max_tokens is not None
        and body.max_completion_tokens is not None
        and (body.max_tokens != body.max_completion_tokens)
    ):
        raise InvalidRequestError(
            "'max_tokens' and 'max_completion_tokens' disagree; send only one.",
            param="max_completion_tokens",
        )
    max_tokens = (
        body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    )
    chat = ChatInput(
        user_prompt="" if ends_with_tool else _text_of(messages[last], last),
        system_prompt="\n\n".join(system_parts) or None,
        history=history,
        rag_context=None
        if body.rag_context is None
        else checked_text(body.rag_context, "rag_context"),
        tools=tools,
        tools_chars=tools_chars,
    )
    return chat, _params(body, max_tokens)


def completion_request(body: CompletionRequest) -> tuple[str, RequestParams]:
    """The prompt text and parameters of a legacy completion request."""
    _check_common(body)
    if body.echo:
        raise _unsupported("echo", "the prompt is not echoed back.")
    if body.suffix:
        raise _unsupported("suffix", "fill-in-the-middle is not available.")
    if body.best_of is not None and body.best_of != 1:
        raise _unsupported("best_of", "only one candidate is generated.")
    if body.logprobs:
        raise _unsupported("logprobs", "log probabilities are not returned.")
    prompt = body.prompt
    if isinstance(prompt, list):
        if len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        else:
            raise _unsupported(
                "prompt", "send one prompt as a string (batches and token arrays are refused)."
            )
    return checked_text(prompt, "prompt"), _params(body, body.max_tokens)
