"""Turn a Generation into OpenAI responses: SSE chunks, or one collected JSON body.

Finish reasons on the OpenAI surface (engine -> wire):
    stop -> "stop"; length -> "length"; context_full -> "length" (the sequence ran out of
    context, which to a client is the same as running out of tokens);
    error -> an error chunk in the stream (HTTP 500 when not streaming);
    cancelled -> an error chunk (HTTP 503 when not streaming): only the server cancels a
    request whose client is still there, i.e. it is shutting down.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Literal

from sentiric_inference.engine.types import Finished, FinishReason, TextDelta
from sentiric_inference.errors import EngineFailure, NotReadyError
from sentiric_inference.protocol.responses import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    Completion,
    CompletionChoice,
    ErrorBody,
    ErrorResponse,
    PromptTokensDetails,
    Usage,
)
from sentiric_inference.serving.service import Generation

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
Kind = Literal["chat", "completion"]


def sse(payload: str) -> bytes:
    return f"data: {payload}\n\n".encode()


def wire_finish_reason(reason: FinishReason) -> Literal["stop", "length"] | None:
    """The OpenAI finish_reason, or None when the request ended in an error instead."""
    if reason is FinishReason.STOP:
        return "stop"
    if reason in (FinishReason.LENGTH, FinishReason.CONTEXT_FULL):
        return "length"
    return None


def usage_of(finished: Finished) -> Usage:
    return Usage(
        prompt_tokens=finished.prompt_tokens,
        completion_tokens=finished.completion_tokens,
        total_tokens=finished.prompt_tokens + finished.completion_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=finished.cached_prompt_tokens),
    )


def failure_of(finished: Finished) -> EngineFailure | NotReadyError:
    """The error a request that ended without an answer reports."""
    if finished.reason is FinishReason.CANCELLED:
        return NotReadyError("The request was cancelled because the server is shutting down.")
    return EngineFailure(f"Generation failed: {finished.error or 'engine error'}")


def _error_chunk(exc: EngineFailure | NotReadyError) -> bytes:
    kind = "server_error" if isinstance(exc, EngineFailure) else "unavailable_error"
    code = "engine_error" if isinstance(exc, EngineFailure) else "cancelled"
    return sse(
        ErrorResponse(error=ErrorBody(message=exc.message, type=kind, code=code)).model_dump_json()
    )


class _Ids:
    def __init__(self, kind: Kind, model: str) -> None:
        self.kind = kind
        self.model = model
        self.id = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())


def _chunk(
    ids: _Ids,
    text: str | None,
    finish: Literal["stop", "length"] | None,
    *,
    role: bool = False,
    usage: Usage | None = None,
    choices: bool = True,
) -> bytes:
    if ids.kind == "chat":
        chat_choices = (
            [
                ChatChunkChoice(
                    delta=ChatDelta(role="assistant" if role else None, content=text),
                    finish_reason=finish,
                )
            ]
            if choices
            else []
        )
        return sse(
            ChatCompletionChunk(
                id=ids.id, created=ids.created, model=ids.model, choices=chat_choices, usage=usage
            ).model_dump_json()
        )
    text_choices = [CompletionChoice(text=text or "", finish_reason=finish)] if choices else []
    return sse(
        Completion(
            id=ids.id, created=ids.created, model=ids.model, choices=text_choices, usage=usage
        ).model_dump_json()
    )


async def stream_sse(
    generation: Generation, *, kind: Kind, model: str, include_usage: bool
) -> AsyncIterator[bytes]:
    """SSE body: a role chunk (chat), text chunks, a finish chunk, usage if asked, [DONE].

    Leaving this generator early (the client went away) cancels the generation, so the
    engine frees the sequence at its next step.
    """
    ids = _Ids(kind, model)
    try:
        if kind == "chat":
            yield _chunk(ids, "", None, role=True)
        async for event in generation:
            if isinstance(event, TextDelta):
                if event.text:
                    yield _chunk(ids, event.text, None)
                continue
            finish = wire_finish_reason(event.reason)
            if finish is None:
                yield _error_chunk(failure_of(event))
            else:
                yield _chunk(ids, None if kind == "chat" else "", finish)
                if include_usage:
                    yield _chunk(ids, None, None, usage=usage_of(event), choices=False)
        yield DONE
    except Exception as exc:  # once streaming, the status line is gone: report in-band
        log.exception("stream failed", exc_info=exc)
        yield _error_chunk(EngineFailure(f"Generation failed: {exc}"))
        yield DONE
    finally:
        generation.cancel()


async def collect(generation: Generation, *, kind: Kind, model: str) -> ChatCompletion | Completion:
    """Wait for the whole answer; raise the mapped error if the generation failed."""
    parts: list[str] = []
    finished: Finished | None = None
    try:
        async for event in generation:
            if isinstance(event, TextDelta):
                parts.append(event.text)
            else:
                finished = event
    finally:
        generation.cancel()
    if finished is None:
        raise EngineFailure("Generation ended without a finish reason.")
    finish = wire_finish_reason(finished.reason)
    if finish is None:
        raise failure_of(finished)
    ids = _Ids(kind, model)
    text = "".join(parts)
    usage = usage_of(finished)
    if kind == "chat":
        return ChatCompletion(
            id=ids.id,
            created=ids.created,
            model=model,
            usage=usage,
            choices=[ChatChoice(message=AssistantMessage(content=text), finish_reason=finish)],
        )
    return Completion(
        id=ids.id,
        created=ids.created,
        model=model,
        usage=usage,
        choices=[CompletionChoice(text=text, finish_reason=finish)],
    )
