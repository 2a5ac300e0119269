"""Resolve a request's sampling parameters against the profile's defaults and limits."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from sentiric_inference.config import LimitsSettings, SamplingDefaults
from sentiric_inference.engine.types import SamplingParams
from sentiric_inference.errors import InvalidRequestError
from sentiric_inference.sampling_bounds import (
    MinP,
    Penalty,
    RepeatPenalty,
    Temperature,
    TopP,
    describe,
)
from sentiric_inference.serving.grammar import grammar_for
from sentiric_inference.serving.types import RequestParams

# OpenAI allows 4 stop sequences; llama.cpp has no hard limit, but every stop string is
# matched against the held-back tail on every token, so keep the list short.
MAX_STOP_SEQUENCES = 16
MAX_STOP_LENGTH = 256
# llama.cpp takes top_k as a C int: a larger value would wrap (2**32 + 1 ran as top_k 1).
MAX_TOP_K = 2**31 - 1


@functools.cache
def _adapter(bounded: Any) -> TypeAdapter[float]:
    return TypeAdapter(bounded)


def resolve_params(
    params: RequestParams, defaults: SamplingDefaults, limits: LimitsSettings | None = None
) -> SamplingParams:
    """Validate what the client sent and fill the rest from the profile (maxTokens is a ceiling).

    Raises InvalidRequestError naming the field canonically (errors.py; each surface
    respells it). A response_format schema is bounded by `limits` and converted here: CPU
    work that the serving layer runs on a preparation worker.
    """

    def fail(field: str, message: str) -> InvalidRequestError:
        return InvalidRequestError(f"Invalid '{field}': {message}", param=field)

    def number(field: str, value: float | None, default: float, bounded: Any) -> float:
        if value is None:
            return default
        try:
            return float(_adapter(bounded).validate_python(value))
        except ValidationError:
            raise fail(
                field, f"{value!r} is out of range; it must be {describe(bounded)}."
            ) from None

    max_tokens = defaults.max_tokens
    if params.max_tokens is not None:
        if params.max_tokens < 1:
            raise fail("max_tokens", f"{params.max_tokens} is below 1.")
        if params.max_tokens > defaults.max_tokens:
            raise fail(
                "max_tokens",
                f"{params.max_tokens} exceeds this model profile's limit of "
                f"{defaults.max_tokens} tokens.",
            )
        max_tokens = params.max_tokens
    top_k = defaults.top_k
    if params.top_k is not None:
        if params.top_k < 0:
            raise fail("top_k", f"{params.top_k} is negative; use 0 to disable top-k.")
        if params.top_k > MAX_TOP_K:
            raise fail("top_k", f"{params.top_k} is above the largest value, {MAX_TOP_K}.")
        top_k = params.top_k
    repeat_last_n = SamplingParams().repeat_last_n  # the engine's default window
    if params.repeat_last_n is not None:
        if not -1 <= params.repeat_last_n <= MAX_TOP_K:
            raise fail(
                "repeat_last_n",
                f"{params.repeat_last_n} is out of range; use -1 (the whole context), 0 (off) "
                "or a count of tokens.",
            )
        repeat_last_n = params.repeat_last_n
    return SamplingParams(
        temperature=number("temperature", params.temperature, defaults.temperature, Temperature),
        top_p=number("top_p", params.top_p, defaults.top_p, TopP),
        top_k=top_k,
        min_p=number("min_p", params.min_p, defaults.min_p, MinP),
        repeat_penalty=number(
            "repeat_penalty", params.repeat_penalty, defaults.repeat_penalty, RepeatPenalty
        ),
        frequency_penalty=number("frequency_penalty", params.frequency_penalty, 0.0, Penalty),
        presence_penalty=number("presence_penalty", params.presence_penalty, 0.0, Penalty),
        repeat_last_n=repeat_last_n,
        # Any integer: the engine folds it into llama.cpp's range (engine/sampling.py).
        seed=params.seed,
        max_tokens=max_tokens,
        stop=_check_stop(params.stop, fail),
        grammar=grammar_for(params.response_format, "response_format", limits),
    )


def _check_stop(
    stop: tuple[str, ...], fail: Callable[[str, str], InvalidRequestError]
) -> tuple[str, ...]:
    if len(stop) > MAX_STOP_SEQUENCES:
        raise fail("stop", f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed.")
    for item in stop:
        if not item:
            raise fail("stop", "a stop sequence must not be empty.")
        if len(item) > MAX_STOP_LENGTH:
            raise fail("stop", f"a stop sequence is limited to {MAX_STOP_LENGTH} characters.")
        try:
            item.encode()
        except UnicodeEncodeError as exc:
            raise fail("stop", "a stop sequence is not valid Unicode (a lone surrogate).") from exc
    return stop
