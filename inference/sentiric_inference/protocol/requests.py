"""OpenAI request bodies (chat and text completions), as pydantic models.

Top-level unknown fields are refused (OpenAI does the same), so a misspelt parameter is a
400 naming it rather than a silent default. Types are strict: `"temperature": "hot"` or
`"stream": "yes"` is a 400, not a coerced value (an integer is still a valid number). Fields OpenAI defines but this server cannot
honour are declared here and refused with a reason by `protocol.convert`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(BaseModel):
    """One element of a message's content array; only `text` parts can be served."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    # Clients echo assistant messages back with fields such as `refusal` or `annotations`;
    # those are harmless, so a message ignores fields it does not know.
    model_config = ConfigDict(extra="ignore", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None
    function_call: Any = None


class StreamOptions(_Body):
    include_usage: bool = False


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    name: str = "response"
    description: str | None = None
    schema_: Any = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormatBody(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class _SamplingFields(_Body):
    """Parameters shared by both endpoints, including llama.cpp's usual extensions."""

    model: str
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    seed: int | None = None
    user: str | None = None
    # Extensions (llama.cpp server / vLLM spell them the same way).
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    response_format: ResponseFormatBody | None = None


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    function_call: Any = None
    modalities: list[str] | None = None
    audio: Any = None
    prediction: Any = None
    reasoning_effort: str | None = None
    # Accepted and ignored: they only concern OpenAI's own storage and billing.
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    # Extension: retrieved facts, wrapped around the last user message by the profile's
    # ragTemplate, exactly as gRPC's rag_context.
    rag_context: str | None = None


class CompletionRequest(_SamplingFields):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = None
    logprobs: int | None = None
