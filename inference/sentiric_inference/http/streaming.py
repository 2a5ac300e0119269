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
    FunctionCall,
    FunctionCallDelta,
    PromptTokensDetails,
    ToolCallDelta,
    ToolCallOut,
    Usage,
)
from sentiric_inference.serving.service import Generation
from sentiric_inference.serving.tool_output import (
    CallArguments,
    CallStart,
    Content,
    OutputPart,
    OutputReader,
    PlainReader,
)
from sentiric_inference.serving.types import Finished, FinishReason, TextDelta

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
Kind = Literal["chat", "completion"]


def sse(payload: str) -> bytes:
    return f"data: {payload}\n\n".encode()


Wire = Literal["stop", "length", "tool_calls"]


def wire_finish_reason(reason: FinishReason, *, calls: int = 0) -> Wire | None:
    """The OpenAI finish_reason, or None when the request ended in an error instead.

    A reply that made tool calls and ended by itself finishes with "tool_calls"; one cut
    off by max_tokens is "length", calls or not (a forced call's arguments may then be cut).
    """
    if reason is FinishReason.STOP:
        return "tool_calls" if calls else "stop"
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
    finish: Wire | None,
    *,
    role: bool = False,
    usage: Usage | None = None,
    choices: bool = True,
    call: ToolCallDelta | None = None,
) -> bytes:
    if ids.kind == "chat":
        delta = ChatDelta(
            role="assistant" if role else None,
            content=text,
            tool_calls=None if call is None else [call],
        )
        chat_choices = [ChatChunkChoice(delta=delta, finish_reason=finish)] if choices else []
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


def _part_chunk(ids: _Ids, part: OutputPart) -> bytes:
    if isinstance(part, Content):
        return _chunk(ids, part.text, None)
    if isinstance(part, CallStart):
        call = ToolCallDelta(
            index=part.index,
            id=part.id,
            type="function",
            function=FunctionCallDelta(name=part.name, arguments=""),
        )
    else:
        call = ToolCallDelta(index=part.index, function=FunctionCallDelta(arguments=part.text))
    return _chunk(ids, None, None, call=call)


async def stream_sse(
    generation: Generation,
    *,
    kind: Kind,
    model: str,
    include_usage: bool,
    reader: OutputReader | None = None,
) -> AsyncIterator[bytes]:
    """SSE body: a role chunk (chat), text and tool-call chunks, a finish chunk, usage if
    asked, [DONE].

    Leaving this generator early (the client went away) cancels the generation, so the
    engine frees the sequence at its next step.
    """
    ids = _Ids(kind, model)
    output = reader if reader is not None else PlainReader()
    try:
        if kind == "chat":
            yield _chunk(ids, "", None, role=True)
        async for event in generation:
            if isinstance(event, TextDelta):
                if event.text:
                    for part in output.feed(event.text):
                        yield _part_chunk(ids, part)
                continue
            finish = wire_finish_reason(event.reason, calls=output.calls)
            if finish is None:
                yield _error_chunk(failure_of(event))
            else:
                for part in output.finish():
                    yield _part_chunk(ids, part)
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


def assistant_message(parts: list[OutputPart]) -> AssistantMessage:
    """The whole reply: its content (None when it is only calls) and its calls."""
    content = "".join(part.text for part in parts if isinstance(part, Content))
    calls: list[ToolCallOut] = []
    for part in parts:
        if isinstance(part, CallStart):
            calls.append(
                ToolCallOut(id=part.id, function=FunctionCall(name=part.name, arguments=""))
            )
        elif isinstance(part, CallArguments):
            calls[part.index].function.arguments += part.text
    if not calls:
        return AssistantMessage(content=content)
    return AssistantMessage(content=content or None, tool_calls=calls)


async def collect(
    generation: Generation, *, kind: Kind, model: str, reader: OutputReader | None = None
) -> ChatCompletion | Completion:
    """Wait for the whole answer; raise the mapped error if the generation failed."""
    texts: list[str] = []
    finished: Finished | None = None
    try:
        async for event in generation:
            if isinstance(event, TextDelta):
                texts.append(event.text)
            else:
                finished = event
    finally:
        generation.cancel()
    if finished is None:
        raise EngineFailure("Generation ended without a finish reason.")
    output = reader if reader is not None else PlainReader()
    parts = output.feed("".join(texts)) + output.finish()
    finish = wire_finish_reason(finished.reason, calls=output.calls)
    if finish is None:
        raise failure_of(finished)
    ids = _Ids(kind, model)
    text = "".join(texts)
    usage = usage_of(finished)
    if kind == "chat":
        return ChatCompletion(
            id=ids.id,
            created=ids.created,
            model=model,
            usage=usage,
            choices=[ChatChoice(message=assistant_message(parts), finish_reason=finish)],
        )
    return Completion(
        id=ids.id,
        created=ids.created,
        model=model,
        usage=usage,
        choices=[CompletionChoice(text=text, finish_reason=finish)],
    )
