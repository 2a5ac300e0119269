"""Map the serving layer's errors (sentiric_inference.errors) to gRPC status codes.

The servicer's one error boundary uses it: the error is respelled with llama.proto's field
names first, its requests_total outcome is the error class's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from sentiric_inference.errors import (
    InvalidRequestError,
    NotReadyError,
    OverloadedError,
    SentiricError,
    UnauthenticatedError,
)

RETRY_AFTER_METADATA = "retry-after"


@dataclass(frozen=True, slots=True)
class RpcStatus:
    """What a failed call ends with: code, details and trailing metadata."""

    code: grpc.StatusCode
    details: str
    # requests_total's outcome label: the error class's own (SentiricError.outcome).
    outcome: str
    trailing_metadata: tuple[tuple[str, str], ...] = ()


def status_for(error: SentiricError) -> RpcStatus:
    """The status a request that failed before streaming ends with."""
    if isinstance(error, InvalidRequestError):
        return RpcStatus(grpc.StatusCode.INVALID_ARGUMENT, _details(error), error.outcome)
    if isinstance(error, OverloadedError):
        # Seconds, like HTTP's Retry-After, so clients can share one backoff policy.
        retry = f"{max(error.retry_after, 0.0):g}"
        return RpcStatus(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            _details(error),
            error.outcome,
            ((RETRY_AFTER_METADATA, retry),),
        )
    if isinstance(error, UnauthenticatedError):
        return RpcStatus(grpc.StatusCode.UNAUTHENTICATED, _details(error), error.outcome)
    if isinstance(error, NotReadyError):
        return RpcStatus(grpc.StatusCode.UNAVAILABLE, _details(error), error.outcome)
    # EngineFailure, and any other error of ours.
    return RpcStatus(grpc.StatusCode.INTERNAL, _details(error), error.outcome)


def _details(error: SentiricError) -> str:
    # The serving layer usually names the field already; make sure the client always sees it.
    if error.param and error.param not in error.message:
        return f"{error.param}: {error.message}"
    return error.message
