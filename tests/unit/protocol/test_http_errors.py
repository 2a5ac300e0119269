"""The one mapping to OpenAI errors: statuses, types, codes, params and finish reasons."""

from __future__ import annotations

import json

import pytest
from sentiric_inference.engine.types import Finished, FinishReason
from sentiric_inference.errors import (
    EngineFailure,
    InvalidRequestError,
    NotReadyError,
    OverloadedError,
    PromptTooLongError,
    SentiricError,
)
from sentiric_inference.http.errors import error_body, error_response, location_param
from sentiric_inference.http.streaming import failure_of, wire_finish_reason
from sentiric_inference.protocol.responses import ErrorBody


@pytest.mark.parametrize(
    ("loc", "param"),
    [
        (("body", "messages", 0, "role"), "messages[0].role"),
        (("body", "temperature"), "temperature"),
        (("body", "stop", "list[str]", 1), "stop[1]"),
        (("body", "stop", "str"), "stop"),
        (
            ("body", "messages", 2, "content", "list[TextPart]", 0, "type"),
            "messages[2].content[0].type",
        ),
        (("body",), None),
    ],
)
def test_location_param(loc: tuple[int | str, ...], param: str | None) -> None:
    assert location_param(loc) == param


@pytest.mark.parametrize(
    ("exc", "status", "kind", "code", "headers"),
    [
        (
            InvalidRequestError("bad", param="top_p"),
            400,
            "invalid_request_error",
            "invalid_value",
            {},
        ),
        (
            PromptTooLongError("long", param="messages"),
            400,
            "invalid_request_error",
            "context_length_exceeded",
            {},
        ),
        (
            OverloadedError("busy", retry_after=2.2),
            429,
            "rate_limit_error",
            "overloaded",
            {"Retry-After": "3"},
        ),
        (
            OverloadedError("busy", retry_after=0.1),
            429,
            "rate_limit_error",
            "overloaded",
            {"Retry-After": "1"},
        ),
        (
            NotReadyError("loading"),
            503,
            "unavailable_error",
            "model_not_ready",
            {"Retry-After": "5"},
        ),
        (EngineFailure("decode failed"), 500, "server_error", "engine_error", {}),
    ],
)
def test_serving_errors_map_to_openai_errors(
    exc: SentiricError, status: int, kind: str, code: str, headers: dict[str, str]
) -> None:
    got_status, body, got_headers = error_body(exc)
    assert (got_status, body.type, body.code, got_headers) == (status, kind, code, headers)
    assert body.message == exc.message and body.param == exc.param


@pytest.mark.parametrize(
    ("reason", "wire"),
    [
        (FinishReason.STOP, "stop"),
        (FinishReason.LENGTH, "length"),
        (FinishReason.CONTEXT_FULL, "length"),
        (FinishReason.CANCELLED, None),
        (FinishReason.ERROR, None),
    ],
)
def test_finish_reasons_on_the_openai_surface(reason: FinishReason, wire: str | None) -> None:
    assert wire_finish_reason(reason) == wire


def test_requests_ending_without_an_answer_report_why() -> None:
    cancelled = failure_of(Finished(FinishReason.CANCELLED, 3, 1))
    assert isinstance(cancelled, NotReadyError) and "shutting down" in cancelled.message
    failed = failure_of(Finished(FinishReason.ERROR, 3, 1, error="llama_decode returned -1"))
    assert isinstance(failed, EngineFailure) and "llama_decode returned -1" in failed.message


def test_error_bodies_quote_client_values_only_so_far() -> None:
    huge = "r" * 1_000_000
    response = error_response(
        400, ErrorBody(message=f"bad {huge}", type="invalid_request_error", param=huge)
    )
    assert len(response.body) < 2_000
    error = json.loads(response.body)["error"]
    assert error["message"].startswith("bad rrr") and "more characters" in error["message"]
    assert len(error["param"]) <= 200


def test_serving_errors_are_truncated_where_they_are_raised() -> None:
    exc = InvalidRequestError("x" * 100_000, param="p" * 10_000)
    assert len(exc.message) <= 1000 and len(exc.param or "") <= 200
