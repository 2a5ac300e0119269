"""Thin route for OpenAI's POST /v1/embeddings over the serving layer's Embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request

from sentiric_inference.http.errors import API_EMBEDDINGS
from sentiric_inference.http.routes import check_model
from sentiric_inference.protocol.embeddings import (
    EmbeddingData,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    encoded,
)
from sentiric_inference.serving.keys import ANONYMOUS, Caller

if TYPE_CHECKING:
    from sentiric_inference.serving.embedding import Embeddings
    from sentiric_inference.serving.service import Serving

router = APIRouter()


def embeddings_of(request: Request) -> Embeddings:
    embeddings: Embeddings = request.app.state.embeddings
    return embeddings


def _caller(request: Request) -> Caller:
    caller: Caller = getattr(request.state, "caller", ANONYMOUS)
    return caller


@router.post("/v1/embeddings")
async def create_embeddings(body: EmbeddingRequest, request: Request) -> EmbeddingResponse:
    serving: Serving = request.app.state.serving
    check_model(serving, body.model)
    inputs, single = body.inputs()
    result = await embeddings_of(request).embed(
        inputs,
        api=API_EMBEDDINGS,
        caller=_caller(request),
        single=single,
        dimensions=body.dimensions,
    )
    data = [
        EmbeddingData(index=index, embedding=encoded(vector, body.encoding_format))
        for index, vector in enumerate(result.vectors)
    ]
    usage = EmbeddingUsage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens)
    return EmbeddingResponse(data=data, model=serving.model_name, usage=usage)
