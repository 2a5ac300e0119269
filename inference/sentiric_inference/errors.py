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

Each class says which `outcome` of sentiric_llm_requests_total a refusal with it counts as.
`param` names the parameter in the serving layer's canonical spelling: a RequestParams field
(`max_tokens`, `top_p`, `response_format.json_schema`, ...), `prompt` (the prompt as a whole),
`user_prompt` or `rag_context`. Each surface respells it at its own error boundary with
`renamed` (gRPC's `max_new_tokens`, Ollama's `options.num_predict`), as vLLM's
VLLMValidationError carries its `parameter` to the OpenAI layer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar, Self

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


# A field name quoted in a refusal message ('max_tokens', 'response_format.json_schema').
_QUOTED_NAME = re.compile(r"'([A-Za-z_]\w*)([\w.\[\]]*)'")
_ROOT = re.compile(r"[A-Za-z_]\w*")


class SentiricError(Exception):
    """Base of every error this package raises on purpose."""

    # requests_total's outcome label for a request refused with this error.
    outcome: ClassVar[str] = "error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        message = truncated(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.param = None if param is None else truncated(param, MAX_PARAM_CHARS)

    def renamed(self, names: Mapping[str, str]) -> Self:
        """This error as a surface reports it: `param`, and the same names quoted in the
        message, respelled through `names` (canonical root -> wire name; the rest of a path
        such as `.json_schema` is kept). Errors naming no parameter in `names` are returned
        as they are, so a quoted client value is never rewritten."""
        root = _ROOT.match(self.param or "")
        if self.param is None or root is None or root[0] not in names:
            return self

        def wire(match: re.Match[str]) -> str:
            return f"'{names.get(match[1], match[1])}{match[2]}'"

        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.message = truncated(_QUOTED_NAME.sub(wire, self.message), MAX_MESSAGE_CHARS)
        clone.args = (clone.message,)
        clone.param = truncated(names[root[0]] + self.param[root.end() :], MAX_PARAM_CHARS)
        return clone


class InvalidRequestError(SentiricError):
    """The request can never succeed as sent."""

    outcome = "invalid"


class PromptTooLongError(InvalidRequestError):
    """The prompt plus at least one generated token does not fit a sequence's context."""


class OverloadedError(SentiricError):
    """Every sequence is busy and the waiting queue is full; retry after `retry_after` s."""

    outcome = "overloaded"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitedError(OverloadedError):
    """One API key is over one of its server.auth.perKey limits (`limit` names it)."""

    outcome = "rate_limited"

    def __init__(self, message: str, *, limit: str, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)
        self.limit = limit


class UnauthenticatedError(SentiricError):
    """API keys are on and the call carried none, or one that is not configured.

    The message never quotes what the caller sent: a near-miss key is still a secret.
    """

    outcome = "unauthenticated"


class NotReadyError(SentiricError):
    """The model is not loaded (yet, or any more)."""

    outcome = "unavailable"


class FeatureOffError(SentiricError):
    """The route exists, but this server does not serve it as configured (no retry helps)."""


class EngineFailure(SentiricError):
    """llama.cpp failed while serving the request (e.g. llama_decode returned an error)."""
