"""Sampling parameters: defaults from the profile, ceilings, errors naming the wire field."""

from __future__ import annotations

import math

import pytest
from sentiric_inference.config import SamplingDefaults
from sentiric_inference.engine.sampling import llama_seed
from sentiric_inference.errors import InvalidRequestError
from sentiric_inference.serving.params import resolve_params
from sentiric_inference.serving.types import RequestParams, ResponseFormat

DEFAULTS = SamplingDefaults(
    temperature=0.2, top_p=0.9, top_k=40, min_p=0.05, repeat_penalty=1.1, max_tokens=128
)


def test_unset_fields_take_the_profile_defaults() -> None:
    resolved = resolve_params(RequestParams(), DEFAULTS)
    assert (resolved.temperature, resolved.top_p, resolved.top_k) == (0.2, 0.9, 40)
    assert (resolved.min_p, resolved.repeat_penalty, resolved.max_tokens) == (0.05, 1.1, 128)
    assert resolved.seed is None and resolved.stop == () and resolved.grammar is None


def test_sent_fields_override_the_defaults() -> None:
    resolved = resolve_params(
        RequestParams(max_tokens=7, temperature=0.0, top_p=0.5, top_k=0, seed=42, stop=("\n",)),
        DEFAULTS,
    )
    assert (resolved.max_tokens, resolved.temperature, resolved.top_p) == (7, 0.0, 0.5)
    assert (resolved.top_k, resolved.seed, resolved.stop) == (0, 42, ("\n",))


@pytest.mark.parametrize(
    ("params", "param"),
    [
        (RequestParams(max_tokens=0), "max_tokens"),
        (RequestParams(max_tokens=129), "max_tokens"),
        (RequestParams(temperature=-0.1), "temperature"),
        (RequestParams(temperature=2.5), "temperature"),
        (RequestParams(temperature=math.nan), "temperature"),
        (RequestParams(top_p=0.0), "top_p"),
        (RequestParams(top_p=1.5), "top_p"),
        (RequestParams(top_k=-1), "top_k"),
        (RequestParams(min_p=1.5), "min_p"),
        (RequestParams(repeat_penalty=0.0), "repeat_penalty"),
        (RequestParams(frequency_penalty=3.0), "frequency_penalty"),
        (RequestParams(presence_penalty=-2.5), "presence_penalty"),
        (RequestParams(stop=("",)), "stop"),
        (RequestParams(stop=tuple(str(i) for i in range(17))), "stop"),
    ],
)
def test_out_of_range_values_name_the_field(params: RequestParams, param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        resolve_params(params, DEFAULTS)
    assert info.value.param == param
    assert param in info.value.message


def test_errors_use_the_wire_names_the_api_supplies() -> None:
    # Each surface respells the canonical names at its error boundary (errors.py).
    grpc_names = {"max_tokens": "max_new_tokens", "repeat_penalty": "repetition_penalty"}
    with pytest.raises(InvalidRequestError) as info:
        resolve_params(RequestParams(max_tokens=1000), DEFAULTS)
    renamed = info.value.renamed(grpc_names)
    assert renamed.param == "max_new_tokens"
    assert "128" in renamed.message  # the limit is stated
    with pytest.raises(InvalidRequestError) as info:
        resolve_params(RequestParams(repeat_penalty=-1), DEFAULTS)
    assert info.value.renamed(grpc_names).param == "repetition_penalty"


def test_seeds_are_folded_into_llama_cpp_range() -> None:
    # Folded once, where llama.cpp takes it; -1 is not llama.cpp's "random seed" value.
    assert resolve_params(RequestParams(seed=-1), DEFAULTS).seed == -1
    assert llama_seed(-1) == 2**32 - 2
    assert llama_seed(2**32 - 1) == 2**32 - 2
    assert llama_seed(resolve_params(RequestParams(seed=2**40 + 5), DEFAULTS).seed) == 5


def test_json_object_format_becomes_a_grammar() -> None:
    resolved = resolve_params(
        RequestParams(response_format=ResponseFormat("json_object")), DEFAULTS
    )
    assert resolved.grammar is not None and "root" in resolved.grammar
