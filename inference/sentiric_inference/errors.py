"""Errors the serving layer raises; each API surface maps them to its own wire form.

SentiricError
├── InvalidRequestError      -> HTTP 400 / gRPC INVALID_ARGUMENT   (names the field in `param`)
│   └── PromptTooLongError   -> HTTP 400 / gRPC INVALID_ARGUMENT   (param "messages"/"prompt")
├── OverloadedError          -> HTTP 429 + Retry-After / gRPC RESOURCE_EXHAUSTED
├── NotReadyError            -> HTTP 503 / gRPC UNAVAILABLE
└── EngineFailure            -> HTTP 500 / gRPC INTERNAL (or finish_reason "error" mid-stream)
"""

from __future__ import annotations


class SentiricError(Exception):
    """Base of every error this package raises on purpose."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequestError(SentiricError):
    """The request can never succeed as sent."""


class PromptTooLongError(InvalidRequestError):
    """The prompt plus at least one generated token does not fit a sequence's context."""


class OverloadedError(SentiricError):
    """Every sequence is busy and the waiting queue is full; retry after `retry_after` s."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotReadyError(SentiricError):
    """The model is not loaded (yet, or any more)."""


class EngineFailure(SentiricError):
    """llama.cpp failed while serving the request (e.g. llama_decode returned an error)."""
