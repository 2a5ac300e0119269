"""OpenAI response bodies: completions, streamed chunks, usage, models and errors."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

FinishReasonWire = Literal["stop", "length", "tool_calls"]


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None


class FunctionCall(BaseModel):
    name: str
    # A JSON text, as OpenAI sends it.
    arguments: str


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    # None when the reply is only tool calls (as OpenAI writes it).
    content: str | None
    tool_calls: list[ToolCallOut] | None = Field(default=None, exclude_if=lambda v: v is None)


class FunctionCallDelta(BaseModel):
    name: str | None = Field(default=None, exclude_if=lambda v: v is None)
    arguments: str | None = None


class ToolCallDelta(BaseModel):
    """A streamed piece of a call: the first names it (id, type, function.name), the next
    ones carry more of function.arguments (OpenAI's delta shape)."""

    index: int
    id: str | None = Field(default=None, exclude_if=lambda v: v is None)
    type: Literal["function"] | None = Field(default=None, exclude_if=lambda v: v is None)
    function: FunctionCallDelta


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReasonWire
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    # Left out of chunks without calls, which keep the shape they had before tools.
    tool_calls: list[ToolCallDelta] | None = Field(default=None, exclude_if=lambda v: v is None)


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: ChatDelta
    finish_reason: FinishReasonWire | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: FinishReasonWire | None = None
    logprobs: None = None


class Completion(BaseModel):
    """Both the whole answer and each streamed chunk (OpenAI uses one shape for both)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class EngineDetails(BaseModel):
    """Extension: how the model is served, as the engine planned it (the Studio shows it).

    Only the GGUF's file name, never a path, and nothing from server settings or secrets.
    """

    file: str
    parallel: int
    context_size: int
    batch_size: int
    kv_cache_type: str
    flash_attention: str
    gpu_layers: int
    cpu_variant: str | None = None
    gpu: str | None = None


class SamplingDetails(BaseModel):
    """Extension: the profile's defaults for what a request leaves unset."""

    temperature: float
    top_p: float
    top_k: int
    min_p: float
    repeat_penalty: float
    max_tokens: int


class EmbeddingDetails(BaseModel):
    """Extension: the vectors /v1/embeddings and /api/embed return (None while off)."""

    dimensions: int
    pooling: str
    max_input_tokens: int


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "sentiric"
    # Extensions: what a client needs to size its requests.
    context_length: int | None = None
    max_tokens: int | None = None
    ready: bool = False
    # Extensions: the engine (once loaded), the sampling defaults, and the profile's default
    # output schema (prompt.responseFormat) that a request without response_format gets.
    engine: EngineDetails | None = None
    sampling: SamplingDetails | None = None
    response_format: dict[str, Any] | None = None
    # Extension: whether embeddings are served, and their shape.
    embeddings_enabled: bool = False
    embeddings: EmbeddingDetails | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
