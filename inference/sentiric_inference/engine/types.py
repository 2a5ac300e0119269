"""Values exchanged between the serving layer and the engine (no llama.cpp, no web types)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class FinishReason(enum.StrEnum):
    STOP = "stop"
    LENGTH = "length"
    CANCELLED = "cancelled"
    CONTEXT_FULL = "context_full"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """One request's sampler chain; resolved (no None except seed/grammar) by the serving layer."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repeat_last_n: int = 64
    seed: int | None = None
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    # GBNF grammar constraining the output (built from response_format by the serving layer).
    grammar: str | None = None
    # Keep generating through end-of-generation tokens until max_tokens (benchmarks: every
    # stream then produces exactly max_tokens tokens).
    ignore_eos: bool = False


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    prompt_tokens: tuple[int, ...]
    params: SamplingParams
    request_id: str
    # Which API submitted it; only for metrics and logs.
    api: str = "internal"
    # Whose request it is (the API key's name; "" with keys off): waiting requests are
    # admitted round robin across tenants (engine/fairness.py).
    tenant: str = ""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """New output text: whole UTF-8 characters only, stop strings never included."""

    text: str
    # Tokens generated so far for this request (for streaming usage / tokens-per-second).
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class Finished:
    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    # Prompt tokens taken from the KV cache instead of being evaluated again.
    cached_prompt_tokens: int = 0
    # Filled when reason is ERROR.
    error: str | None = None


GenerationEvent = TextDelta | Finished


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the loaded GGUF says about itself, for templating, validation and /v1/models."""

    name: str
    path: str
    size_bytes: int
    context_size: int  # per sequence, as configured
    train_context_size: int
    vocab_size: int
    parallel: int
    chat_template: str | None
    bos_token: str
    eos_token: str
    metadata: dict[str, str] = field(default_factory=dict)
