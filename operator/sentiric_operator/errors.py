"""Errors the operator raises on purpose; handlers map them to kopf's retry semantics.

OperatorError
├── InvalidProfileError   -> kopf.PermanentError (the spec can never work; no retry)
└── ApiCallError          -> kopf.TemporaryError (the API server refused or failed; retry)
"""

from __future__ import annotations


class OperatorError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidProfileError(OperatorError):
    """The LLMProfile spec is invalid; the message names the field."""


class ApiCallError(OperatorError):
    """A call to the Kubernetes API failed; `status` is the HTTP status (0 when none)."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status
