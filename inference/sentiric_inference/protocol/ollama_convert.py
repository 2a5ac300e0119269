"""Translate Ollama request bodies into the serving layer's protocol-neutral requests.

Every refusal is an InvalidRequestError whose `param` is the field as the client wrote it
(`options.temperature`, `messages[2].images`, `format`); the routes respell the serving
layer's refusals through `chat_field_names` / `generate_field_names`, so they say
`options.num_predict`, too.
"""

from __future__ import annotations

from typing import Any

from sentiric_inference.errors import InvalidRequestError
from sentiric_inference.protocol.convert import checked_text
from sentiric_inference.protocol.ollama import (
    ChatRequest,
    Format,
    GenerateRequest,
    Message,
    Options,
)
from sentiric_inference.serving.types import ChatInput, ChatTurn, RequestParams, ResponseFormat

# The serving layer's canonical parameter -> Ollama's, for its refusals.
_OPTION_NAMES = {
    "max_tokens": "options.num_predict",
    "temperature": "options.temperature",
    "top_p": "options.top_p",
    "top_k": "options.top_k",
    "min_p": "options.min_p",
    "repeat_penalty": "options.repeat_penalty",
    "repeat_last_n": "options.repeat_last_n",
    "frequency_penalty": "options.frequency_penalty",
    "presence_penalty": "options.presence_penalty",
    "stop": "options.stop",
    "response_format": "format",
}
# Samplers this server does not run, and the value at which each does nothing.
_NEUTRAL = {"typical_p": 1.0, "tfs_z": 1.0, "mirostat": 0}


def _unsupported(param: str, why: str) -> InvalidRequestError:
    return InvalidRequestError(f"'{param}' is not supported: {why}", param=param)


def response_format(value: Format | None) -> ResponseFormat | None:
    """Ollama's `format`: none (the profile's default applies), "json", or a JSON schema."""
    if value is None or value == "":
        return None
    if value == "json":
        return ResponseFormat(type="json_object")
    assert isinstance(value, dict)  # the wire model allows nothing else
    return ResponseFormat(type="json_schema", json_schema=value)


def chat_field_names(body: ChatRequest) -> dict[str, str]:
    """The serving layer's canonical parameters as this /api/chat request spells them."""
    last = len(body.messages) - 1
    return {
        **_OPTION_NAMES,
        "user_prompt": f"messages[{last}].content",
        "prompt": "messages",
        "system_prompt": "messages",
    }


def generate_field_names() -> dict[str, str]:
    """The serving layer's canonical parameters as /api/generate spells them."""
    return {**_OPTION_NAMES, "user_prompt": "prompt", "prompt": "prompt", "system_prompt": "system"}


def request_params(options: Options | None, fmt: Format | None) -> RequestParams:
    """Sampling from `options` and the output format."""
    o = options if options is not None else Options()
    for name, neutral in _NEUTRAL.items():
        value = getattr(o, name)
        if value is not None and value != neutral:
            raise _unsupported(
                f"options.{name}",
                f"this server does not run that sampler (only {neutral!r}, which disables it, "
                "is accepted); use temperature, top_k, top_p and min_p.",
            )
    # Ollama: -1 generates until the model stops, -2 until the context is full; here the
    # profile's maxTokens bounds every reply, so both mean "up to the profile's limit".
    max_tokens = None if o.num_predict is not None and o.num_predict in (-1, -2) else o.num_predict
    stop: tuple[str, ...] = ()
    if isinstance(o.stop, str):
        stop = (o.stop,)
    elif o.stop is not None:
        stop = tuple(o.stop)
    return RequestParams(
        max_tokens=max_tokens,
        temperature=o.temperature,
        top_p=o.top_p,
        top_k=o.top_k,
        min_p=o.min_p,
        repeat_penalty=o.repeat_penalty,
        repeat_last_n=o.repeat_last_n,
        frequency_penalty=o.frequency_penalty,
        presence_penalty=o.presence_penalty,
        seed=o.seed,
        stop=stop,
        response_format=response_format(fmt),
    )


def _check_generating(body: ChatRequest | GenerateRequest) -> None:
    if body.think not in (None, False):
        raise _unsupported("think", "this model has no thinking mode; send false or leave it out.")
    if body.logprobs:
        raise _unsupported("logprobs", "log probabilities are not returned.")
    if body.top_logprobs:
        raise _unsupported("top_logprobs", "log probabilities are not returned.")


def _message_text(message: Message, index: int) -> str:
    param = f"messages[{index}]"
    if message.images:
        raise _unsupported(f"{param}.images", "this model reads text only.")
    if message.tool_calls or message.role == "tool":
        raise _unsupported(
            f"{param}.tool_calls" if message.tool_calls else f"{param}.role",
            "tool calls are served on /v1/chat/completions (OpenAI's tools), not on /api/chat.",
        )
    return checked_text(message.content or "", f"{param}.content")


def chat_request(body: ChatRequest) -> tuple[ChatInput, RequestParams]:
    """Leading system messages, the history, and the last (user) message, as a prompt's parts
    are (docs/architecture.md); the caller checks that `messages` is not empty (a load request)."""
    _check_generating(body)
    if body.tools:
        raise _unsupported(
            "tools", "tool calls are served on /v1/chat/completions (OpenAI's tools)."
        )
    messages = body.messages
    texts = [_message_text(message, index) for index, message in enumerate(messages)]
    last = len(messages) - 1
    if messages[last].role != "user":
        raise InvalidRequestError(
            f"'messages[{last}].role' is '{messages[last].role}': the last message must come "
            "from the user (continuing an assistant message is not supported).",
            param=f"messages[{last}].role",
        )
    start = 0
    while start < last and messages[start].role == "system":
        start += 1
    history = tuple(ChatTurn(role=messages[i].role, content=texts[i]) for i in range(start, last))
    chat = ChatInput(
        user_prompt=texts[last],
        system_prompt="\n\n".join(texts[:start]) or None,
        history=history,
    )
    return chat, request_params(body.options, body.format)


def _refuse_set(fields: list[tuple[str, Any, str]]) -> None:
    for name, value, why in fields:
        if value:
            raise _unsupported(name, why)


def generate_request(body: GenerateRequest) -> tuple[ChatInput | str, RequestParams]:
    """The chat (the model's template around `system` and `prompt`) or, with `raw`, the
    prompt text as it is; the caller checks that `prompt` is not empty (a load request)."""
    _check_generating(body)
    _refuse_set(
        [
            ("images", body.images, "this model reads text only."),
            ("suffix", body.suffix, "fill-in-the-middle is not available."),
            (
                "template",
                body.template,
                "the model's own chat template (from its GGUF) is always used.",
            ),
            (
                "context",
                body.context,
                "send the conversation to /api/chat instead of a previous reply's context.",
            ),
            ("width", body.width, "this model generates text, not images."),
            ("height", body.height, "this model generates text, not images."),
            ("steps", body.steps, "this model generates text, not images."),
        ]
    )
    prompt = checked_text(body.prompt or "", "prompt")
    params = request_params(body.options, body.format)
    if body.raw:
        if body.system:
            raise InvalidRequestError(
                "'system' cannot be combined with 'raw': a raw prompt is sent as it is.",
                param="system",
            )
        return prompt, params
    system = None if body.system is None else checked_text(body.system, "system")
    return ChatInput(user_prompt=prompt, system_prompt=system or None), params
