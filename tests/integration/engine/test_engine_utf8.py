"""Generated text is always well-formed UTF-8, with and without a grammar.

The tiny Qwen2-shaped model has random weights, so high-temperature sampling reaches the byte
tokens and character fragments of its byte-level vocabulary at almost every step: without the
UTF-8 guard its output holds U+FFFD within a few requests (checked by the last test).
"""

from __future__ import annotations

import json
from pathlib import Path

import llama_cpp as llc
import pytest
from engine_helpers import EngineFactory, collect
from sentiric_inference.engine import sampling, utf8_guard
from sentiric_inference.engine.types import FinishReason, GenerationRequest, SamplingParams
from sentiric_inference.serving.grammar import grammar_for
from sentiric_inference.serving.types import ResponseFormat

pytestmark = pytest.mark.model

REQUESTS = 12


async def _noisy_outputs(engine_factory: EngineFactory, path: Path) -> list[str]:
    engine = await engine_factory(path, parallel=4, context_size=256)
    prompt = tuple(engine.tokenize("bytes"))
    texts = []
    for seed in range(REQUESTS):
        params = SamplingParams(
            temperature=5.0, top_k=0, top_p=1.0, max_tokens=48, ignore_eos=True, seed=seed
        )
        texts.append((await collect(engine.submit(GenerationRequest(prompt, params, "n")))).text)
    return texts


async def test_noisy_sampling_never_produces_replacement_characters(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    texts = await _noisy_outputs(make_engine, tiny_model_path)
    assert all(texts), texts
    # The last character may be U+FFFD: max_tokens can cut a character whose bytes span two
    # tokens, and that tail is flushed as U+FFFD (tests/unit/engine/test_engine_text.py).
    assert not [t for t in texts if "\ufffd" in t[:-1]]
    assert utf8_guard.live_guards() == 0, "a finished request's guard was not freed"


async def test_schema_string_lengths_hold_in_characters_a_client_counts(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    # llama.cpp's grammar counts an invalid four-byte sequence as one character; a client's
    # decoder makes it four U+FFFD (CI saw a maxLength-10 string come back 13 long).
    engine = await make_engine(tiny_model_path, parallel=4, context_size=256)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 10}},
        "required": ["name"],
    }
    grammar = grammar_for(ResponseFormat("json_schema", schema))
    prompt = tuple(engine.tokenize("json please"))
    finished = 0
    for seed in range(REQUESTS):
        params = SamplingParams(
            temperature=3.0, top_k=0, top_p=1.0, max_tokens=64, seed=seed, grammar=grammar
        )
        out = await collect(engine.submit(GenerationRequest(prompt, params, "j")))
        assert "\ufffd" not in out.text
        if out.finished is not None and out.finished.reason is FinishReason.STOP:
            finished += 1
            assert len(json.loads(out.text)["name"]) <= 10, out.text
    assert finished, "no request finished its JSON within 64 tokens"


async def test_without_the_guard_the_same_sampling_does_produce_replacement_characters(
    make_engine: EngineFactory, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Proves the first test can fail: the guard, not luck, keeps the output clean.
    monkeypatch.setattr(sampling, "init_utf8_guard", _no_op_sampler)
    texts = await _noisy_outputs(make_engine, tiny_model_path)
    assert [t for t in texts if "\ufffd" in t[:-1]]


def _no_op_sampler(_model: object) -> object:
    # A greedy-free, mask-free stand-in: llama.cpp's logit-bias sampler with no biases.
    return llc.llama_sampler_init_logit_bias(0, 0, None)
