"""engine.arrivalWaitMs: an idle engine lets requests still being prepared join its next step."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from engine_helpers import EngineFactory, collect, sample_value
from sentiric_inference.engine.types import GenerationRequest, SamplingParams
from sentiric_inference.metrics import Metrics

pytestmark = pytest.mark.model

ONE = SamplingParams(temperature=0.0, max_tokens=1, ignore_eos=True)


def _steps(metrics: Metrics) -> float:
    return sample_value(metrics, "sentiric_llm_step_decode_seconds_count")


async def test_a_request_waits_for_one_being_prepared_and_both_start_in_one_step(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    metrics = Metrics()
    engine = await make_engine(
        tiny_model_path, parallel=2, context_size=256, arrival_wait_ms=1000, metrics=metrics
    )
    before = _steps(metrics)
    with engine.arriving():  # B is being prepared
        a = engine.submit(GenerationRequest((1, 2, 3), ONE, "a"))
        first = asyncio.ensure_future(collect(a, seconds=30))
        await asyncio.sleep(0.3)
        assert not first.done(), "A ran a step alone while B was still being prepared"
        b = engine.submit(GenerationRequest((4, 5, 6), ONE, "b"))
    outcomes = [await first, await collect(b, seconds=30)]
    assert all(o.finished is not None and o.finished.completion_tokens == 1 for o in outcomes)
    assert _steps(metrics) - before == 1


async def test_the_wait_is_bounded_and_never_delays_a_running_engine(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    metrics = Metrics()
    engine = await make_engine(
        tiny_model_path, parallel=2, context_size=256, arrival_wait_ms=200, metrics=metrics
    )
    with engine.arriving():  # a request that never comes
        started = time.perf_counter()
        a = await collect(
            engine.submit(GenerationRequest((1, 2, 3), SamplingParams(max_tokens=6), "a")),
            seconds=30,
        )
        waited = time.perf_counter() - started
    assert a.finished is not None and a.finished.completion_tokens == 6
    # One wait before its first step (at most 0.2 s), none before the following five.
    assert 0.2 <= waited < 0.2 * 5
