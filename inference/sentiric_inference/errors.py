"""Errors the serving layer raises; each API surface maps them to its own wire form.

SentiricError
├── InvalidRequestError      -> HTTP 400 / gRPC INVALID_ARGUMENT   (names the field in `param`)
│   └── PromptTooLongError   -> HTTP 400 / gRPC INVALID_ARGUMENT   (param "messages"/"prompt")
├── OverloadedError          -> HTTP 429 + Retry-After / gRPC RESOURCE_EXHAUSTED
│   └── RateLimitedError     -> HTTP 429 + Retry-After / gRPC RESOURCE_EXHAUSTED (names the limit)
├── UnauthenticatedError     -> HTTP 401 / gRPC UNAUTHENTICATED     (no key, or not a known one)
├── NotReadyError            -> HTTP 503 / gRPC UNAVAILABLE
├── FeatureOffError          -> HTTP 501                            (e.g. engine.embeddings off)
└── EngineFailure            -> HTTP 500 / gRPC INTERNAL (or finish_reason "error" mid-stream)
"""

from __future__ import annotations

# Refusals often quote what the client sent; a hostile value must not become a megabyte log
# line or overflow a gRPC trailer, so messages and field names are cut to these lengths.
MAX_MESSAGE_CHARS = 1000
MAX_PARAM_CHARS = 200


def truncated(text: str, limit: int) -> str:
    """`text`, cut to at most `limit` characters with a marker saying how much was dropped."""
    if len(text) <= limit:
        return text
    marker = f"... ({len(text) - limit} more characters)"
    return text[: max(limit - len(marker), 0)] + marker


def shown(value: object, limit: int = 80) -> str:
    """A client-supplied value quoted for a refusal message (repr, bounded)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SentiricError(Exception):
    """Base of every error this package raises on purpose."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        message = truncated(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.param = None if param is None else truncated(param, MAX_PARAM_CHARS)


class InvalidRequestError(SentiricError):
    """The request can never succeed as sent."""


class PromptTooLongError(InvalidRequestError):
    """The prompt plus at least one generated token does not fit a sequence's context."""


class OverloadedError(SentiricError):
    """Every sequence is busy and the waiting queue is full; retry after `retry_after` s."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitedError(OverloadedError):
    """One API key is over one of its server.auth.perKey limits (`limit` names it)."""

    def __init__(self, message: str, *, limit: str, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)
        self.limit = limit


class UnauthenticatedError(SentiricError):
    """API keys are on and the call carried none, or one that is not configured.

    The message never quotes what the caller sent: a near-miss key is still a secret.
    """


class NotReadyError(SentiricError):
    """The model is not loaded (yet, or any more)."""


class FeatureOffError(SentiricError):
    """The route exists, but this server does not serve it as configured (no retry helps)."""


class EngineFailure(SentiricError):
    """llama.cpp failed while serving the request (e.g. llama_decode returned an error)."""
