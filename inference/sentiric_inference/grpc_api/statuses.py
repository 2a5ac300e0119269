"""Map the serving layer's errors (sentiric_inference.errors) to gRPC status codes."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from sentiric_inference.errors import (
    EngineFailure,
    InvalidRequestError,
    NotReadyError,
    OverloadedError,
    RateLimitedError,
    SentiricError,
    UnauthenticatedError,
)

RETRY_AFTER_METADATA = "retry-after"


@dataclass(frozen=True, slots=True)
class RpcStatus:
    """What a failed call ends with: code, details and trailing metadata."""

    code: grpc.StatusCode
    details: str
    # requests_total outcome label.
    outcome: str
    trailing_metadata: tuple[tuple[str, str], ...] = ()


def status_for(error: SentiricError) -> RpcStatus:
    """The status a request that failed before streaming ends with."""
    if isinstance(error, InvalidRequestError):
        return RpcStatus(grpc.StatusCode.INVALID_ARGUMENT, _details(error), "invalid")
    if isinstance(error, OverloadedError):
        # Seconds, like HTTP's Retry-After, so clients can share one backoff policy.
        retry = f"{max(error.retry_after, 0.0):g}"
        return RpcStatus(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            _details(error),
            "rate_limited" if isinstance(error, RateLimitedError) else "overloaded",
            ((RETRY_AFTER_METADATA, retry),),
        )
    if isinstance(error, UnauthenticatedError):
        return RpcStatus(grpc.StatusCode.UNAUTHENTICATED, _details(error), "unauthenticated")
    if isinstance(error, NotReadyError):
        return RpcStatus(grpc.StatusCode.UNAVAILABLE, _details(error), "unavailable")
    if isinstance(error, EngineFailure):
        return RpcStatus(grpc.StatusCode.INTERNAL, _details(error), "error")
    return RpcStatus(grpc.StatusCode.INTERNAL, _details(error), "error")


def _details(error: SentiricError) -> str:
    # The serving layer usually names the field already; make sure the client always sees it.
    if error.param and error.param not in error.message:
        return f"{error.param}: {error.message}"
    return error.message
