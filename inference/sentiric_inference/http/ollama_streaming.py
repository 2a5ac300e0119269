"""Turn a Generation into Ollama replies: NDJSON chunks, or one collected JSON body.

done_reason on the Ollama surface (engine -> wire): stop -> "stop"; length and context_full
-> "length"; error and cancelled -> an `{"error": ...}` line in the stream (the mapped HTTP
status when not streaming), as Ollama reports a failure after its status line is sent.
Durations are nanoseconds, as Ollama's: prompt_eval_duration runs from the submission to
the first generated token, eval_duration from there to the end; load_duration is 0, since
the model is loaded once at start and never unloaded.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Literal

from sentiric_inference.errors import EngineFailure
from sentiric_inference.http.streaming import failure_of
from sentiric_inference.protocol.ollama import AssistantMessage, ChatChunk, GenerateChunk
from sentiric_inference.serving.service import Generation
from sentiric_inference.serving.types import Finished, FinishReason, TextDelta

log = logging.getLogger(__name__)

Kind = Literal["chat", "generate"]
NDJSON = "application/x-ndjson"
_NS = 1_000_000_000


def created_at() -> str:
    """Now, as Ollama writes it (RFC 3339, UTC)."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def done_reason(reason: FinishReason) -> str | None:
    """Ollama's done_reason, or None when the request ended in an error instead."""
    if reason is FinishReason.STOP:
        return "stop"
    if reason in (FinishReason.LENGTH, FinishReason.CONTEXT_FULL):
        return "length"
    return None


class Clock:
    """The moments a reply's durations are measured between (time.perf_counter)."""

    def __init__(self, started: float, submitted: float) -> None:
        self.started = started
        self.submitted = submitted
        self.first: float | None = None

    def token(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()


def _ns(seconds: float) -> int:
    return max(int(seconds * _NS), 0)


def chunk(
    kind: Kind,
    model: str,
    text: str,
    *,
    finished: Finished | None = None,
    clock: Clock | None = None,
) -> ChatChunk | GenerateChunk:
    """One reply object; with `finished`, the last one, with its reason, counts and times."""
    extra: dict[str, object] = {}
    if finished is not None and clock is not None:
        ended = time.perf_counter()
        first = clock.first if clock.first is not None else ended
        extra = {
            "done": True,
            "done_reason": done_reason(finished.reason),
            "total_duration": _ns(ended - clock.started),
            "load_duration": 0,
            "prompt_eval_count": finished.prompt_tokens,
            "prompt_eval_duration": _ns(first - clock.submitted),
            "eval_count": finished.completion_tokens,
            "eval_duration": _ns(ended - first),
        }
    if kind == "chat":
        return ChatChunk(
            model=model,
            created_at=created_at(),
            message=AssistantMessage(content=text),
            **extra,  # type: ignore[arg-type]
        )
    return GenerateChunk(model=model, created_at=created_at(), response=text, **extra)  # type: ignore[arg-type]


def line(reply: ChatChunk | GenerateChunk) -> bytes:
    return reply.model_dump_json(exclude_none=True).encode() + b"\n"


def error_line(message: str) -> bytes:
    return json.dumps({"error": message}).encode() + b"\n"


async def stream_ndjson(
    generation: Generation, *, kind: Kind, model: str, clock: Clock
) -> AsyncIterator[bytes]:
    """NDJSON body: one line per piece of text, then the `done` line (or an error line).

    Leaving early (the client went away) cancels the generation.
    """
    try:
        async for event in generation:
            if isinstance(event, TextDelta):
                clock.token()
                if event.text:
                    yield line(chunk(kind, model, event.text))
                continue
            if done_reason(event.reason) is None:
                yield error_line(failure_of(event).message)
            else:
                yield line(chunk(kind, model, "", finished=event, clock=clock))
    except Exception as exc:  # once streaming, the status line is gone: report in-band
        log.exception("stream failed", exc_info=exc)
        yield error_line(f"Generation failed: {exc}")
    finally:
        generation.cancel()


async def collect_reply(
    generation: Generation, *, kind: Kind, model: str, clock: Clock
) -> ChatChunk | GenerateChunk:
    """The whole reply as one object; raises the mapped error if the generation failed."""
    texts: list[str] = []
    finished: Finished | None = None
    try:
        async for event in generation:
            if isinstance(event, TextDelta):
                clock.token()
                texts.append(event.text)
            else:
                finished = event
    finally:
        generation.cancel()
    if finished is None:
        raise EngineFailure("Generation ended without a finish reason.")
    if done_reason(finished.reason) is None:
        raise failure_of(finished)
    return chunk(kind, model, "".join(texts), finished=finished, clock=clock)
