"""Thin routes for the Ollama API (/api/*): parse, hand to the serving layer, choose NDJSON
or one JSON body. Errors leave in Ollama's `{"error": "..."}` shape (http/errors.py).

The profile applies to these requests as to OpenAI's: its system prompt, sampling defaults
and default output schema (prompt.responseFormat) when the request sends no `format`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from sentiric_inference import __version__
from sentiric_inference.errors import FeatureOffError
from sentiric_inference.http.embeddings import embeddings_of
from sentiric_inference.http.errors import (
    API_OLLAMA_CHAT,
    API_OLLAMA_EMBED,
    API_OLLAMA_GENERATE,
    use_field_names,
)
from sentiric_inference.http.ollama_models import check_model, listed, running, show
from sentiric_inference.http.ollama_streaming import (
    NDJSON,
    Clock,
    Kind,
    collect_reply,
    created_at,
    line,
    stream_ndjson,
)
from sentiric_inference.http.routes import GenerationResponse, wait_or_disconnect
from sentiric_inference.protocol.ollama import (
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbedRequest,
    EmbedResponse,
    GenerateChunk,
    GenerateRequest,
    PsResponse,
    ShowRequest,
    ShowResponse,
    TagsResponse,
    Version,
)
from sentiric_inference.protocol.ollama_convert import (
    chat_field_names,
    chat_request,
    generate_field_names,
    generate_request,
)
from sentiric_inference.serving.keys import ANONYMOUS, Caller
from sentiric_inference.serving.service import Generation

if TYPE_CHECKING:
    from sentiric_inference.serving.service import Serving

router = APIRouter(prefix="/api")

# The Ollama release whose API shapes these routes follow; clients that gate features on
# the version (structured outputs came in 0.5) see them as available.
OLLAMA_API_VERSION = "0.12.0"


def _serving(request: Request) -> Serving:
    serving: Serving = request.app.state.serving
    return serving


def _caller(request: Request) -> Caller:
    caller: Caller = getattr(request.state, "caller", ANONYMOUS)
    return caller


@router.get("/version")
async def version() -> Version:
    return Version(version=OLLAMA_API_VERSION)


@router.get("/tags")
async def tags(request: Request) -> TagsResponse:
    return TagsResponse(models=[listed(_serving(request))])


@router.get("/ps")
async def ps(request: Request) -> PsResponse:
    return PsResponse(models=running(_serving(request)))


@router.post("/show")
async def show_model(body: ShowRequest, request: Request) -> ShowResponse:
    serving = _serving(request)
    check_model(serving, body.model or body.name)
    return show(serving)


@router.api_route("/pull", methods=["POST"])
@router.api_route("/push", methods=["POST"])
@router.api_route("/create", methods=["POST"])
@router.api_route("/copy", methods=["POST"])
@router.api_route("/delete", methods=["DELETE"])
@router.api_route("/blobs/{digest}", methods=["HEAD", "POST"])
async def manage_models(request: Request) -> Response:
    raise FeatureOffError(
        f"Models are not managed through this API: this server serves "
        f"'{_serving(request).model_name}', set by its profile (LLMProfile spec.model; "
        f"sentiric-llm {__version__})."
    )


def _loaded(kind: Kind, model: str, stream: bool) -> Response:
    """Ollama's answer to a request with nothing to generate: the model is loaded."""
    reply: ChatChunk | GenerateChunk
    if kind == "chat":
        reply = ChatChunk(
            model=model,
            created_at=created_at(),
            message=AssistantMessage(content=""),
            done=True,
            done_reason="load",
        )
    else:
        reply = GenerateChunk(
            model=model, created_at=created_at(), response="", done=True, done_reason="load"
        )
    if stream:
        return Response(line(reply), media_type=NDJSON)
    return JSONResponse(reply.model_dump(mode="json", exclude_none=True))


async def _respond(
    request: Request,
    generation: Generation,
    *,
    kind: Kind,
    model: str,
    stream: bool,
    clock: Clock,
) -> Response:
    if stream:
        return GenerationResponse(
            generation,
            stream_ndjson(generation, kind=kind, model=model, clock=clock),
            media_type=NDJSON,
        )
    work: asyncio.Task[ChatChunk | GenerateChunk] = asyncio.ensure_future(
        collect_reply(generation, kind=kind, model=model, clock=clock)
    )
    try:
        await wait_or_disconnect(request, work)
    finally:
        if not work.done():
            work.cancel()
        generation.cancel()
    if work.cancelled():
        return Response(status_code=499)
    return JSONResponse(work.result().model_dump(mode="json", exclude_none=True))


@router.post("/chat", response_model=None)
async def chat(body: ChatRequest, request: Request) -> Response:
    started = time.perf_counter()
    serving = _serving(request)
    model = check_model(serving, body.model)
    if not body.messages:
        serving.check_ready()
        return _loaded("chat", model, body.stream)
    use_field_names(request, chat_field_names(body))
    chat_input, params = chat_request(body)
    generation = await serving.start_chat(
        chat_input,
        params,
        api=API_OLLAMA_CHAT,
        request_id=request.state.request_id,
        caller=_caller(request),
    )
    clock = Clock(started, time.perf_counter())
    return await _respond(
        request, generation, kind="chat", model=model, stream=body.stream, clock=clock
    )


@router.post("/generate", response_model=None)
async def generate(body: GenerateRequest, request: Request) -> Response:
    started = time.perf_counter()
    serving = _serving(request)
    model = check_model(serving, body.model)
    if not body.prompt and not body.images:
        serving.check_ready()
        return _loaded("generate", model, body.stream)
    use_field_names(request, generate_field_names())
    prompt, params = generate_request(body)
    request_id = request.state.request_id
    caller = _caller(request)
    if isinstance(prompt, str):
        generation = await serving.start_completion(
            prompt, params, api=API_OLLAMA_GENERATE, request_id=request_id, caller=caller
        )
    else:
        generation = await serving.start_chat(
            prompt, params, api=API_OLLAMA_GENERATE, request_id=request_id, caller=caller
        )
    clock = Clock(started, time.perf_counter())
    return await _respond(
        request, generation, kind="generate", model=model, stream=body.stream, clock=clock
    )


@router.post("/embed")
async def embed(body: EmbedRequest, request: Request) -> EmbedResponse:
    started = time.perf_counter()
    serving = _serving(request)
    model = check_model(serving, body.model)
    single = isinstance(body.input, str)
    inputs = [body.input] if isinstance(body.input, str) else body.input
    if not inputs:
        # Ollama's way to load an embedding model: nothing to embed.
        embeddings_of(request).check_on()
        return EmbedResponse(model=model, embeddings=[], total_duration=0, prompt_eval_count=0)
    result = await embeddings_of(request).embed(
        list(inputs),
        api=API_OLLAMA_EMBED,
        caller=_caller(request),
        single=single,
        dimensions=body.dimensions,
        truncate=body.truncate,
    )
    return EmbedResponse(
        model=model,
        embeddings=result.vectors,
        total_duration=int((time.perf_counter() - started) * 1e9),
        prompt_eval_count=result.prompt_tokens,
    )


@router.post("/embeddings")
async def embeddings(body: EmbeddingsRequest, request: Request) -> EmbeddingsResponse:
    serving = _serving(request)
    check_model(serving, body.model)
    if not body.prompt:
        # As Ollama answers an empty prompt (a load request).
        embeddings_of(request).check_on()
        return EmbeddingsResponse(embedding=[])
    result = await embeddings_of(request).embed(
        [body.prompt], api=API_OLLAMA_EMBED, caller=_caller(request), param="prompt", single=True
    )
    return EmbeddingsResponse(embedding=result.vectors[0])
