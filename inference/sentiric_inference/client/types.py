"""What the LlamaService client takes and returns (plain values, no gRPC types)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier message of the conversation: role is system, user, assistant or tool."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    """Sampling parameters; None leaves the server profile's default."""

    max_new_tokens: int | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    stop_sequences: Sequence[str] = ()
    seed: int | None = None
    # Sent as GenerationParams.engine_specific_params, e.g. {"min_p": 0.1}.
    engine_params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TextChunk:
    """Newly streamed text (whole characters: bytes split mid-character are held back)."""

    text: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The stream's closing FinishDetails."""

    reason: str
    prompt_tokens: int
    completion_tokens: int


StreamEvent = TextChunk | Finish


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole answer with its timing, as measured by the client."""

    text: str
    finish: Finish
    # Seconds from sending the request to the first text; None when no text came.
    time_to_first_token: float | None
    duration: float

    @property
    def tokens_per_second(self) -> float | None:
        """Decode speed after the first token: (completion_tokens - 1) / time since it."""
        if self.time_to_first_token is None or self.finish.completion_tokens < 2:
            return None
        decode_time = self.duration - self.time_to_first_token
        if decode_time <= 0:
            return None
        return (self.finish.completion_tokens - 1) / decode_time


class StreamProtocolError(RuntimeError):
    """The server broke the stream's contract (e.g. it ended without finish_details)."""
