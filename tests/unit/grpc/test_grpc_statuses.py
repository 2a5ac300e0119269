"""Serving-layer errors -> gRPC status codes (grpc_api.statuses)."""

from __future__ import annotations

import grpc
import pytest
from sentiric_inference.errors import (
    EngineFailure,
    InvalidRequestError,
    NotReadyError,
    OverloadedError,
    PromptTooLongError,
    SentiricError,
)
from sentiric_inference.grpc_api.statuses import status_for


@pytest.mark.parametrize(
    ("error", "code", "outcome"),
    [
        (InvalidRequestError("bad", param="top_p"), grpc.StatusCode.INVALID_ARGUMENT, "invalid"),
        (
            PromptTooLongError("long", param="user_prompt"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid",
        ),
        (OverloadedError("busy"), grpc.StatusCode.RESOURCE_EXHAUSTED, "overloaded"),
        (NotReadyError("loading"), grpc.StatusCode.UNAVAILABLE, "unavailable"),
        (EngineFailure("decode failed"), grpc.StatusCode.INTERNAL, "error"),
        (SentiricError("other"), grpc.StatusCode.INTERNAL, "error"),
    ],
)
def test_codes(error: SentiricError, code: grpc.StatusCode, outcome: str) -> None:
    status = status_for(error)
    assert (status.code, status.outcome) == (code, outcome)


def test_details_always_name_the_field() -> None:
    assert status_for(InvalidRequestError("Invalid 'top_p': 2", param="top_p")).details == (
        "Invalid 'top_p': 2"
    )
    assert status_for(InvalidRequestError("is out of range", param="seed")).details == (
        "seed: is out of range"
    )


def test_overload_carries_retry_after() -> None:
    status = status_for(OverloadedError("busy", retry_after=2.5))
    assert status.trailing_metadata == (("retry-after", "2.5"),)
