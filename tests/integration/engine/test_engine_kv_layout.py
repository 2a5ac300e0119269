"""engine.kvLayout "streams": one KV stream per sequence, prefixes moved by whole-stream copy.

The prefix cache must work as in the unified pool (tests/integration/engine/
test_engine_prefix.py): reused in place, copied from a busy sequence (llama.cpp copies
between streams only whole, so the copy is trimmed after), and answering as a fresh
evaluation does.
"""

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
SYSTEM = tuple(range(100, 300))


def _evaluated(metrics: Metrics) -> float:
    return sample_value(metrics, "sentiric_llm_prompt_tokens_evaluated_total")


async def test_streams_reuse_in_place_and_copy_a_busy_prefix_trimmed(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    metrics = Metrics()
    engine = await make_engine(
        tiny_model_path, parallel=2, context_size=512, kv_layout="streams", metrics=metrics
    )
    # The busy sequence holds SYSTEM, 1 and a growing answer: the copy gets all of it and
    # must keep only SYSTEM.
    busy = engine.submit(GenerationRequest((*SYSTEM, 1), ENDLESS, "busy"))
    async with asyncio.timeout(30):
        for _ in range(5):
            await anext(busy)
    before = _evaluated(metrics)
    copied = await collect(engine.submit(GenerationRequest((*SYSTEM, 2, 3), SHORT, "copied")))
    assert copied.finished is not None
    assert copied.finished.cached_prompt_tokens == len(SYSTEM)
    assert _evaluated(metrics) - before == 2
    busy.cancel()
    assert (await collect(busy)).finished.reason is FinishReason.CANCELLED  # type: ignore[union-attr]
    # In place: the finished copy's slot (or the busy one's) serves the same prefix again.
    again = await collect(engine.submit(GenerationRequest((*SYSTEM, 2, 4), SHORT, "again")))
    assert again.finished is not None and again.finished.cached_prompt_tokens == len(SYSTEM) + 1

    # The same requests evaluated from scratch in the unified pool answer the same.
    plain = await make_engine(tiny_model_path, parallel=2, context_size=512, prefix_cache=False)
    for prompt, outcome in (((*SYSTEM, 2, 3), copied), ((*SYSTEM, 2, 4), again)):
        alone = await collect(plain.submit(GenerationRequest(prompt, SHORT, "alone")))
        assert alone.text == outcome.text


async def test_streams_serve_a_full_batch_and_report_cells_without_sharing(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    metrics = Metrics()
    engine = await make_engine(
        tiny_model_path, parallel=4, context_size=256, kv_layout="streams", metrics=metrics
    )
    prompts = [(*SYSTEM[:40], 10 + i) for i in range(4)]
    outcomes = await asyncio.gather(
        *(
            collect(engine.submit(GenerationRequest(p, SHORT, f"s{i}")))
            for i, p in enumerate(prompts)
        )
    )
    assert all(o.finished is not None and o.finished.completion_tokens == 8 for o in outcomes)
    # Idle caches stay, and nothing is shared between streams: the 40 tokens the four
    # prompts share count four times (each holds its prompt and the 7 answer tokens that were
    # fed back; the 8th ended the request before it was).
    # The count is published at the end of the step that finished the last request, which
    # may come just after its Finished event reached us: wait for it, boundedly.
    expected = sum(len(p) + 7 for p in prompts)
    for _ in range(500):
        if engine.stats().kv_cells_used == expected:
            break
        await asyncio.sleep(0.02)
    stats = engine.stats()
    assert stats.kv_cells_total == 4 * 256
    assert stats.kv_cells_used == expected
