"""Every HTTP error leaves from here: in OpenAI's shape `{"error": {message, type, param, code}}`,
or on the Ollama API's paths (/api/*) in Ollama's `{"error": "<message>"}`, same status.

InvalidRequestError / malformed JSON / wrong types -> 400 invalid_request_error
PromptTooLongError                                  -> 400 (code context_length_exceeded)
ApiError (unknown model, ...)                       -> its own status
unknown route / method                              -> 404 / 405
OverloadedError                                     -> 429 rate_limit_error + Retry-After
RateLimitedError (an API key over a perKey limit)   -> 429 (code rate_limit_exceeded)
UnauthenticatedError                                -> 401 (code invalid_api_key)
NotReadyError                                       -> 503 unavailable_error
FeatureOffError (e.g. engine.embeddings off)        -> 501 not_implemented_error
EngineFailure / anything unexpected                 -> 500 server_error (logged)

The handlers here are the HTTP surface's one error boundary: a refusal on an API route
(API_BY_PATH) is counted in requests_total here, once, with its error's outcome, and a
serving-layer error is respelled with the request's field names (`use_field_names`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentiric_inference.errors import (
    MAX_MESSAGE_CHARS,
    MAX_PARAM_CHARS,
    FeatureOffError,
    InvalidRequestError,
    NotReadyError,
    OverloadedError,
    PromptTooLongError,
    RateLimitedError,
    SentiricError,
    UnauthenticatedError,
    truncated,
)
from sentiric_inference.protocol.responses import ErrorBody, ErrorResponse

if TYPE_CHECKING:
    from sentiric_inference.metrics import Metrics

log = logging.getLogger(__name__)

# The `api` label of requests_total for each API route.
API_CHAT = "http_chat"
API_COMPLETION = "http_completion"
API_EMBEDDINGS = "http_embeddings"
API_OLLAMA_CHAT = "ollama_chat"
API_OLLAMA_GENERATE = "ollama_generate"
API_OLLAMA_EMBED = "ollama_embed"
API_BY_PATH = {
    "/v1/chat/completions": API_CHAT,
    "/v1/completions": API_COMPLETION,
    "/v1/embeddings": API_EMBEDDINGS,
    "/api/chat": API_OLLAMA_CHAT,
    "/api/generate": API_OLLAMA_GENERATE,
    "/api/embed": API_OLLAMA_EMBED,
    "/api/embeddings": API_OLLAMA_EMBED,
}
# The Ollama API's routes answer errors in Ollama's shape.
OLLAMA_PREFIX = "/api/"


def is_ollama_path(path: str) -> bool:
    return path.startswith(OLLAMA_PREFIX)


def count_refusal(metrics: Metrics | None, path: str, outcome: str) -> None:
    """Count a refused request to an API route in requests_total (other routes are not)."""
    api = API_BY_PATH.get(path)
    if api is not None and metrics is not None:
        metrics.requests_total.labels(api, outcome).inc()


def use_field_names(request: Request, names: Mapping[str, str]) -> None:
    """Name the serving layer's canonical parameters as this request spells them in its
    refusals (SentiricError.renamed, applied by the error handler)."""
    request.state.field_names = names


class ApiError(Exception):
    """An HTTP-only refusal that has no counterpart in the serving layer (e.g. unknown model)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(message=message, type=type, param=param, code=code)


def error_body(exc: SentiricError) -> tuple[int, ErrorBody, dict[str, str]]:
    """Status, OpenAI error body and extra headers for a serving-layer error."""
    if isinstance(exc, InvalidRequestError):
        # PromptTooLongError is an InvalidRequestError; only its code differs (OpenAI's).
        too_long = isinstance(exc, PromptTooLongError)
        return (
            400,
            ErrorBody(
                message=exc.message,
                type="invalid_request_error",
                param=exc.param,
                code="context_length_exceeded" if too_long else "invalid_value",
            ),
            {},
        )
    if isinstance(exc, OverloadedError):
        retry = str(max(1, math.ceil(exc.retry_after)))
        # The caller's own limit, or the server's capacity: clients back off either way.
        code = "rate_limit_exceeded" if isinstance(exc, RateLimitedError) else "overloaded"
        return (
            429,
            ErrorBody(message=exc.message, type="rate_limit_error", param=None, code=code),
            {"Retry-After": retry},
        )
    if isinstance(exc, UnauthenticatedError):
        return (
            401,
            ErrorBody(message=exc.message, type="invalid_request_error", code="invalid_api_key"),
            {"WWW-Authenticate": "Bearer"},
        )
    if isinstance(exc, FeatureOffError):
        return (
            501,
            ErrorBody(message=exc.message, type="not_implemented_error", code="not_served"),
            {},
        )
    if isinstance(exc, NotReadyError):
        return (
            503,
            ErrorBody(
                message=exc.message, type="unavailable_error", param=None, code="model_not_ready"
            ),
            {"Retry-After": "5"},
        )
    return 500, ErrorBody(message=exc.message, type="server_error", code="engine_error"), {}


def error_response(
    status: int, body: ErrorBody, headers: dict[str, str] | None = None, *, path: str = ""
) -> JSONResponse:
    """The error response for a request to `path` (Ollama's shape on the Ollama API)."""
    # Messages and params may quote what the client sent: bounded, whatever raised them.
    body = body.model_copy(
        update={
            "message": truncated(body.message, MAX_MESSAGE_CHARS),
            "param": None if body.param is None else truncated(body.param, MAX_PARAM_CHARS),
        }
    )
    if is_ollama_path(path):
        # Ollama's clients read one string; it names the field in its text already.
        return JSONResponse({"error": body.message}, status_code=status, headers=headers)
    return JSONResponse(
        ErrorResponse(error=body).model_dump(mode="json"), status_code=status, headers=headers
    )


# pydantic puts the union member it tried into an error's location ("stop", "list[str]");
# those are not fields the client wrote, so they are dropped from `param`.
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none", "null"})


def location_param(loc: Sequence[int | str]) -> str | None:
    """`("body", "messages", 0, "role")` -> `messages[0].role`."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part or part in _UNION_TAGS or part.startswith("function-"):
            continue
        else:
            out += f".{part}" if out else part
    return out or None


def _validation_response(exc: RequestValidationError, path: str) -> JSONResponse:
    errors: list[dict[str, Any]] = list(exc.errors())
    if not errors:
        return error_response(
            400, ErrorBody(message="Invalid request.", type="invalid_request_error"), path=path
        )
    first = errors[0]
    kind = str(first.get("type", ""))
    loc = tuple(first.get("loc", ()))
    if kind == "json_invalid":
        detail = first.get("ctx", {}).get("error", first.get("msg", ""))
        return error_response(
            400,
            ErrorBody(
                message=f"The request body is not valid JSON: {detail}",
                type="invalid_request_error",
                code="invalid_json",
            ),
            path=path,
        )
    param = location_param(loc)
    if kind == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {param}"
        code = "unknown_parameter"
    elif kind == "missing":
        message = (
            f"Missing required parameter: '{param}'." if param else "The request body is missing."
        )
        code = "missing_required_parameter"
    elif param is None and isinstance(first.get("input"), bytes | str):
        # FastAPI hands over the raw body when the Content-Type is not JSON.
        message = "The request body must be a JSON object sent as Content-Type: application/json."
        code = "invalid_json"
    else:
        got = json.dumps(first.get("input"), default=str)
        if len(got) > 80:
            got = got[:77] + "..."
        where = f"value for '{param}'" if param else "request body"
        message = f"Invalid {where}: {first.get('msg', 'invalid')} (got {got})."
        code = (
            "invalid_type"
            if kind.endswith("_type") or kind.endswith("_parsing")
            else "invalid_value"
        )
    if len(errors) > 1:
        message += f" ({len(errors) - 1} more problem(s) in the request.)"
    return error_response(
        400,
        ErrorBody(
            message=message,
            type="invalid_request_error",
            param=param,
            code=code,
        ),
        path=path,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the one mapping from exceptions to error responses (OpenAI's or Ollama's)."""

    def metrics(request: Request) -> Metrics | None:
        found: Metrics | None = getattr(request.app.state, "metrics", None)
        return found

    async def on_sentiric(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SentiricError)
        exc = exc.renamed(getattr(request.state, "field_names", {}))
        count_refusal(metrics(request), request.url.path, exc.outcome)
        status, body, headers = error_body(exc)
        if status >= 500:
            log.error("request failed: %s", exc.message)
        return error_response(status, body, headers, path=request.url.path)

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        count_refusal(metrics(request), request.url.path, "invalid")
        return error_response(exc.status, exc.body, path=request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        count_refusal(metrics(request), request.url.path, "invalid")
        return _validation_response(exc, request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = {404: "not_found_error", 405: "invalid_request_error"}.get(
            exc.status_code, "invalid_request_error" if exc.status_code < 500 else "server_error"
        )
        return error_response(
            exc.status_code,
            ErrorBody(message=str(exc.detail), type=kind),
            dict(exc.headers or {}),
            path=request.url.path,
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error while serving a request", exc_info=exc)
        return error_response(
            500,
            ErrorBody(message="Internal server error.", type="server_error", code="internal"),
            path=request.url.path,
        )

    app.add_exception_handler(SentiricError, on_sentiric)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
