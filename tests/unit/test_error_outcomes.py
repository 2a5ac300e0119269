"""The serving layer's errors: the outcome each counts as, and respelling for a surface."""

from __future__ import annotations

import pytest
from sentiric_inference.errors import (
    EngineFailure,
    FeatureOffError,
    InvalidRequestError,
    NotReadyError,
    OverloadedError,
    PromptTooLongError,
    RateLimitedError,
    SentiricError,
    UnauthenticatedError,
)


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (InvalidRequestError("bad"), "invalid"),
        (PromptTooLongError("long"), "invalid"),
        (OverloadedError("busy"), "overloaded"),
        (RateLimitedError("over", limit="requests_per_minute", retry_after=1), "rate_limited"),
        (NotReadyError("loading"), "unavailable"),
        (UnauthenticatedError("who"), "unauthenticated"),
        (FeatureOffError("off"), "error"),
        (EngineFailure("decode"), "error"),
        (SentiricError("other"), "error"),
    ],
)
def test_each_error_class_names_its_outcome(error: SentiricError, outcome: str) -> None:
    assert error.outcome == outcome


def test_renamed_respells_param_and_the_quoted_names_in_the_message() -> None:
    error = PromptTooLongError(
        "'response_format.json_schema' is required when 'response_format.type' is 'json_schema'.",
        param="response_format.json_schema",
    )
    wire = error.renamed({"response_format": "engine_specific_params.response_format"})
    assert isinstance(wire, PromptTooLongError) and wire.outcome == "invalid"
    assert wire.param == "engine_specific_params.response_format.json_schema"
    assert wire.message == (
        "'engine_specific_params.response_format.json_schema' is required when "
        "'engine_specific_params.response_format.type' is 'json_schema'."
    )
    assert str(wire) == wire.message
    # The original is left as it was.
    assert error.param == "response_format.json_schema"


def test_renamed_leaves_errors_about_other_parameters_alone() -> None:
    # A quoted client value that happens to spell a parameter is not rewritten.
    error = InvalidRequestError("'history[0].role' is 'max_tokens'.", param="history[0].role")
    assert error.renamed({"max_tokens": "max_new_tokens"}) is error
    unnamed = OverloadedError("busy", retry_after=2)
    assert unnamed.renamed({"max_tokens": "max_new_tokens"}) is unnamed
