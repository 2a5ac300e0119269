"""Prefix reuse: a prompt sharing a cached prefix skips evaluating it, in place or via seq_cp."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from engine_helpers import EngineFactory, collect, sample_value
from sentiric_inference.engine.types import FinishReason, GenerationRequest, SamplingParams
from sentiric_inference.metrics import Metrics

pytestmark = pytest.mark.model

SHORT = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
ENDLESS = SamplingParams(temperature=0.0, max_tokens=100_000, ignore_eos=True)
SYSTEM = tuple(range(100, 300))  # a 200-token shared "system prompt"


def _evaluated(metrics: Metrics) -> float:
    return sample_value(metrics, "sentiric_llm_prompt_tokens_evaluated_total")


async def test_finished_sequence_prefix_is_reused_in_place(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    metrics = Metrics()
    engine = await make_engine(tiny_model_path, parallel=1, context_size=512, metrics=metrics)
    first = await collect(engine.submit(GenerationRequest((*SYSTEM, 5, 6, 7), SHORT, "a")))
    assert first.finished is not None and first.finished.cached_prompt_tokens == 0
    before = _evaluated(metrics)
    second_prompt = (*SYSTEM, 9, 10)
    second = await collect(engine.submit(GenerationRequest(second_prompt, SHORT, "b")))
    assert second.finished is not None
    assert second.finished.cached_prompt_tokens == len(SYSTEM)
    assert _evaluated(metrics) - before == 2
    assert sample_value(metrics, "sentiric_llm_prefix_cache_hits_total") == 1
    assert sample_value(metrics, "sentiric_llm_prefix_cache_tokens_total") == len(SYSTEM)


async def test_identical_prompt_still_evaluates_its_last_token(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    metrics = Metrics()
    engine = await make_engine(tiny_model_path, parallel=1, context_size=512, metrics=metrics)
    prompt = (*SYSTEM, 5)
    a = await collect(engine.submit(GenerationRequest(prompt, SHORT, "a")))
    before = _evaluated(metrics)
    b = await collect(engine.submit(GenerationRequest(prompt, SHORT, "b")))
    assert b.finished is not None and b.finished.cached_prompt_tokens == len(prompt) - 1
    assert _evaluated(metrics) - before == 1
    # Reused cells give the same greedy continuation as evaluating from scratch.
    assert b.text == a.text


async def test_prefix_of_a_busy_sequence_is_copied_and_gives_the_same_output(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    metrics = Metrics()
    engine = await make_engine(tiny_model_path, parallel=2, context_size=512, metrics=metrics)
    busy = engine.submit(GenerationRequest((*SYSTEM, 1), ENDLESS, "busy"))
    async with asyncio.timeout(30):
        await anext(busy)
    before = _evaluated(metrics)
    copied = await collect(engine.submit(GenerationRequest((*SYSTEM, 2, 3), SHORT, "copied")))
    assert copied.finished is not None
    assert copied.finished.cached_prompt_tokens == len(SYSTEM)
    assert _evaluated(metrics) - before == 2
    busy.cancel()
    assert (await collect(busy)).finished.reason is FinishReason.CANCELLED  # type: ignore[union-attr]

    # The same request on an engine without prefix reuse evaluates everything and agrees.
    plain_metrics = Metrics()
    plain = await make_engine(
        tiny_model_path, parallel=2, context_size=512, prefix_cache=False, metrics=plain_metrics
    )
    reference = await collect(plain.submit(GenerationRequest((*SYSTEM, 2, 3), SHORT, "ref")))
    assert reference.finished is not None and reference.finished.cached_prompt_tokens == 0
    assert reference.text == copied.text
    assert _evaluated(plain_metrics) == len(SYSTEM) + 2


async def test_prefix_cache_off_never_reuses(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    metrics = Metrics()
    engine = await make_engine(
        tiny_model_path, parallel=1, context_size=512, prefix_cache=False, metrics=metrics
    )
    for name in ("a", "b"):
        out = await collect(engine.submit(GenerationRequest((*SYSTEM, 5), SHORT, name)))
        assert out.finished is not None and out.finished.cached_prompt_tokens == 0
    assert _evaluated(metrics) == 2 * (len(SYSTEM) + 1)
    assert sample_value(metrics, "sentiric_llm_prefix_cache_hits_total") == 0
