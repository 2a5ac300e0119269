"""Protocol-neutral requests the API surfaces hand to the serving layer.

HTTP (OpenAI) and gRPC (LlamaService) both translate their wire messages into these, so
prompt building, parameter validation and metrics live once, in `serving`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# What a generation streams back, re-exported: the wire layers read these through serving,
# never from the engine (the import contracts in .importlinter enforce it).
from sentiric_inference.engine.types import Finished, FinishReason, GenerationEvent, TextDelta

__all__ = [
    "ChatInput",
    "ChatTurn",
    "FinishReason",
    "Finished",
    "GenerationEvent",
    "RequestParams",
    "ResponseFormat",
    "Role",
    "TextDelta",
    "ToolCall",
    "ToolSet",
    "ToolSpec",
    "chat_chars",
]

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call an assistant turn made earlier in the conversation (OpenAI tool_calls)."""

    id: str
    name: str
    # The arguments as the client sent them (a JSON text) and parsed: templates render the
    # parsed value (Qwen's writes `arguments | tojson`).
    arguments_json: str
    arguments: Any


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: Role
    content: str
    # An assistant turn's function calls, and the call a `tool` turn answers.
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One function the model may call; `parameters` is its arguments' JSON schema."""

    name: str
    description: str | None
    parameters: dict[str, Any]
    # The tool as the template receives it: OpenAI's {"type": "function", "function": {...}}.
    definition: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolSet:
    """The request's tools and how they may be used (OpenAI tool_choice).

    choice: "auto" (the model decides; its output is parsed for calls), "required" (exactly
    one call to any tool, grammar-constrained), "function" (exactly one call to `forced`) or
    "none" (the tools are checked but neither shown to the model nor called).
    """

    tools: tuple[ToolSpec, ...]
    choice: Literal["auto", "none", "required", "function"] = "auto"
    forced: str | None = None
    parallel: bool = True

    @property
    def offered(self) -> bool:
        """Whether the model is shown the tools and its reply may hold calls."""
        return self.choice != "none"

    @property
    def constrained(self) -> bool:
        return self.choice in ("required", "function")

    def callable(self) -> tuple[ToolSpec, ...]:
        """The tools the reply may call."""
        if self.forced is not None:
            return tuple(tool for tool in self.tools if tool.name == self.forced)
        return self.tools


@dataclass(frozen=True, slots=True)
class ChatInput:
    """Everything a prompt is built from (docs/architecture.md, A prompt's parts), in order:
    profile system prompt, request system prompt, history, RAG context (through the
    profile's RAG template) wrapped around the user prompt."""

    # Empty only when the conversation ends with tool results (the last turn in `history`
    # is a `tool` turn): the model then answers them.
    user_prompt: str
    system_prompt: str | None = None
    history: tuple[ChatTurn, ...] = ()
    rag_context: str | None = None
    # The request's tools (None: it sent none).
    tools: ToolSet | None = None
    # Characters of the tool definitions as JSON (counted with the prompt's text).
    tools_chars: int = 0

    @property
    def answers_tools(self) -> bool:
        return not self.user_prompt and bool(self.history) and self.history[-1].role == "tool"


def chat_chars(chat: ChatInput) -> int:
    """Characters of caller text in a chat, counted before any of it is rendered."""
    parts = (chat.user_prompt, chat.system_prompt or "", chat.rag_context or "")
    turns = sum(
        len(turn.content)
        + sum(len(call.arguments_json) + len(call.name) for call in turn.tool_calls)
        for turn in chat.history
    )
    return sum(map(len, parts)) + turns + chat.tools_chars


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """OpenAI response_format: free text, any JSON object, or JSON matching a schema."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # The surfaces refuse a json_schema format without a schema object, naming their
        # field (protocol/convert.py, read by HTTP and gRPC alike); here it is a bug.
        if self.type == "json_schema" and not isinstance(self.json_schema, dict):
            raise ValueError("a json_schema response format needs its schema object")


@dataclass(frozen=True, slots=True)
class RequestParams:
    """What the client asked for; None means "the profile's default". Validated and
    resolved into engine `SamplingParams` by the serving layer, which raises
    InvalidRequestError(param=<the field's name here>) for out-of-range values; each
    surface respells that name as its clients wrote it (SentiricError.renamed)."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    # Tokens the penalties look back over (-1: the whole context, 0: none); Ollama's option.
    repeat_last_n: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # None: the client sent none, so the profile's prompt.responseFormat applies (if set).
    response_format: ResponseFormat | None = None
