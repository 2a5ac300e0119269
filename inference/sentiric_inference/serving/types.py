"""Protocol-neutral requests the API surfaces hand to the serving layer.

HTTP (OpenAI) and gRPC (LlamaService) both translate their wire messages into these, so
prompt building, parameter validation and metrics live once, in `serving`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ChatInput:
    """Everything a prompt is built from (DESIGN §4), in this order:
    profile system prompt, request system prompt, history, RAG context (through the
    profile's RAG template) wrapped around the user prompt."""

    user_prompt: str
    system_prompt: str | None = None
    history: tuple[ChatTurn, ...] = ()
    rag_context: str | None = None


def chat_chars(chat: ChatInput) -> int:
    """Characters of caller text in a chat, counted before any of it is rendered."""
    parts = (chat.user_prompt, chat.system_prompt or "", chat.rag_context or "")
    return sum(map(len, parts)) + sum(len(turn.content) for turn in chat.history)


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """OpenAI response_format: free text, any JSON object, or JSON matching a schema."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RequestParams:
    """What the client asked for; None means "the profile's default". Validated and
    resolved into engine `SamplingParams` by the serving layer, which raises
    InvalidRequestError(param=<the wire field name>) for out-of-range values."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # None: the client sent none, so the profile's prompt.responseFormat applies (if set).
    response_format: ResponseFormat | None = None
    # Wire names of the fields, so errors name what the client actually sent
    # (e.g. {"max_tokens": "max_new_tokens"} for gRPC).
    field_names: dict[str, str] = field(default_factory=dict)
