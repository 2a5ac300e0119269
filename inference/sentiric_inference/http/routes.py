"""Thin HTTP routes: parse, hand to the serving layer, choose JSON or SSE."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Receive, Scope, Send

from sentiric_inference.errors import shown
from sentiric_inference.http.errors import API_CHAT, API_COMPLETION, ApiError, use_field_names
from sentiric_inference.http.model_card import embedding_details, model_card
from sentiric_inference.http.streaming import Kind, collect, stream_sse
from sentiric_inference.protocol.convert import (
    chat_field_names,
    chat_request,
    completion_request,
)
from sentiric_inference.protocol.requests import ChatCompletionRequest, CompletionRequest
from sentiric_inference.protocol.responses import ChatCompletion, Completion, ModelList
from sentiric_inference.serving.keys import ANONYMOUS, Caller
from sentiric_inference.serving.service import Generation
from sentiric_inference.serving.tool_output import OutputReader, reader_for

if TYPE_CHECKING:
    from sentiric_inference.metrics import Metrics
    from sentiric_inference.serving.service import Serving

router = APIRouter()
_STARTED = int(time.time())
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class GenerationResponse(StreamingResponse):
    """A streamed response (SSE, or Ollama's NDJSON) that cancels its generation however
    the response ends.

    The body generator cancels on its own when it is closed, but a client that leaves
    before the first byte is sent can end the response before the generator ever starts.
    """

    def __init__(
        self,
        generation: Generation,
        body: AsyncIterator[bytes],
        media_type: str = "text/event-stream",
    ) -> None:
        super().__init__(body, media_type=media_type, headers=_STREAM_HEADERS)
        self._generation = generation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._generation.cancel()


def _serving(request: Request) -> Serving:
    serving: Serving = request.app.state.serving
    return serving


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _caller(request: Request) -> Caller:
    """Whose API key the request carried (http/auth.py); anonymous with keys off."""
    caller: Caller = getattr(request.state, "caller", ANONYMOUS)
    return caller


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    """Liveness (200 while the process serves), with capacity as Sentiric's contract has it.

    Always 200: a pod that is loading or whose model failed is alive, and restarting it
    would not help; `model_ready` and /ready say whether requests can be served.
    """
    stats = _serving(request).engine.stats()
    embedding = embedding_details(_serving(request))
    return {
        "status": "healthy",
        "model_ready": _serving(request).ready,
        "capacity": {
            "slots_total": stats.parallel,
            "slots_free": max(stats.parallel - stats.sequences_active, 0),
            "active": stats.sequences_active,
            "queued": stats.queue_depth,
            "kv_cells_used": stats.kv_cells_used,
            "kv_cells_total": stats.kv_cells_total,
        },
        "embeddings": {
            "enabled": embedding is not None,
            "dimensions": embedding.dimensions if embedding is not None else None,
        },
    }


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Readiness: 200 only when a request can be served now."""
    serving = _serving(request)
    if serving.ready:
        return JSONResponse({"status": "ready", "model": serving.model_name})
    return JSONResponse(
        {"status": "not_ready", "reason": serving.not_ready_reason}, status_code=503
    )


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(_metrics(request).registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/models")
async def list_models(request: Request) -> ModelList:
    return ModelList(data=[model_card(_serving(request), _STARTED)])


def check_model(serving: Serving, model: str) -> None:
    """ApiError 404 unless `model` is the one this server serves."""
    if model != serving.model_name:
        raise ApiError(
            404,
            f"The model {shown(model)} does not exist on this server; it serves "
            f"'{serving.model_name}' (see GET /v1/models).",
            type="not_found_error",
            param="model",
            code="model_not_found",
        )


async def wait_or_disconnect(request: Request, work: asyncio.Task[Any]) -> None:
    """Await `work`, cancelling it if the client disconnects first."""

    async def disconnected() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if not work.done():
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work


async def _respond(
    request: Request,
    generation: Generation,
    *,
    kind: Kind,
    stream: bool,
    include_usage: bool,
    reader: OutputReader | None = None,
) -> Response:
    model = _serving(request).model_name
    if stream:
        return GenerationResponse(
            generation,
            stream_sse(
                generation, kind=kind, model=model, include_usage=include_usage, reader=reader
            ),
        )
    # Not streaming: nothing is sent until the end, so watch for a disconnect ourselves,
    # otherwise an abandoned request would hold its sequence until max_tokens.
    work: asyncio.Task[ChatCompletion | Completion] = asyncio.ensure_future(
        collect(generation, kind=kind, model=model, reader=reader)
    )
    try:
        await wait_or_disconnect(request, work)
    finally:
        # Also reached when this handler itself is cancelled (server shutting down).
        if not work.done():
            work.cancel()
        generation.cancel()
    if work.cancelled():
        return Response(status_code=499)
    body = work.result()
    return JSONResponse(body.model_dump(mode="json"))


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    serving = _serving(request)
    use_field_names(request, chat_field_names(body))
    check_model(serving, body.model)
    chat, params = chat_request(body)
    generation = await serving.start_chat(
        chat, params, api=API_CHAT, request_id=request.state.request_id, caller=_caller(request)
    )
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await _respond(
        request,
        generation,
        kind="chat",
        stream=body.stream,
        include_usage=include_usage,
        reader=reader_for(chat.tools),
    )


@router.post("/v1/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request) -> Response:
    serving = _serving(request)
    check_model(serving, body.model)
    prompt, params = completion_request(body)
    generation = await serving.start_completion(
        prompt,
        params,
        api=API_COMPLETION,
        request_id=request.state.request_id,
        caller=_caller(request),
    )
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await _respond(
        request, generation, kind="completion", stream=body.stream, include_usage=include_usage
    )
