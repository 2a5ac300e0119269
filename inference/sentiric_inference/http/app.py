"""The FastAPI application: routes, the one error mapping, request-id, API-key and body-limit
middleware."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from sentiric_inference import __version__
from sentiric_inference.http.auth import ApiKeyMiddleware
from sentiric_inference.http.embeddings import router as embeddings_router
from sentiric_inference.http.errors import install_error_handlers
from sentiric_inference.http.limiting import BodyLimitMiddleware
from sentiric_inference.http.middleware import RequestIdMiddleware
from sentiric_inference.http.ollama import router as ollama_router
from sentiric_inference.http.routes import router
from sentiric_inference.http.studio import router as studio_router
from sentiric_inference.http.tokenizing import router as tokenizing_router
from sentiric_inference.serving.embedding import Embeddings
from sentiric_inference.serving.tokenizing import Tokenizing

if TYPE_CHECKING:
    from sentiric_inference.metrics import Metrics
    from sentiric_inference.serving.service import Serving


def create_app(serving: Serving, metrics: Metrics) -> FastAPI:
    """An ASGI app over one Serving; OpenAPI docs stay at /docs for humans."""
    app = FastAPI(title="sentiric-llm", version=__version__)
    app.state.serving = serving
    app.state.metrics = metrics
    app.state.tokenizing = Tokenizing(serving)
    app.state.embeddings = Embeddings(serving)
    app.include_router(router)
    app.include_router(tokenizing_router)
    app.include_router(embeddings_router)
    app.include_router(ollama_router)
    app.include_router(studio_router)
    install_error_handlers(app)
    limits = serving.config.server.limits
    # Added first, so it runs inside the request-id middleware: refusals get an id and a log.
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=limits.max_body_bytes,
        read_timeout=limits.read_timeout_seconds,
        metrics=metrics,
    )
    # Outside the body reader: a caller without a valid key gets no body read at all.
    app.add_middleware(ApiKeyMiddleware, access=serving.access)
    app.add_middleware(RequestIdMiddleware)
    return app
