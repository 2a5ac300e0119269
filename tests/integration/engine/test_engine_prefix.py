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


async def test_a_newcomer_sharing_the_system_prompt_leaves_an_idle_callers_history(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    # Caller A's first turn is idle in one slot when caller B opens with the same system
    # prompt. B copies the prompt into an empty slot; A's next turn still finds its history.
    metrics = Metrics()
    engine = await make_engine(tiny_model_path, parallel=4, context_size=512, metrics=metrics)
    a_first = (*SYSTEM, 5, 6, 7)
    first = await collect(engine.submit(GenerationRequest(a_first, SHORT, "a1")))
    assert first.finished is not None
    b = await collect(engine.submit(GenerationRequest((*SYSTEM, 9, 10), SHORT, "b")))
    assert b.finished is not None and b.finished.cached_prompt_tokens == len(SYSTEM)
    before = _evaluated(metrics)
    a_next = (*a_first, 11, 12)
    second = await collect(engine.submit(GenerationRequest(a_next, SHORT, "a2")))
    assert second.finished is not None
    assert second.finished.cached_prompt_tokens == len(a_first)
    assert _evaluated(metrics) - before == 2


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


async def test_a_burst_sharing_a_new_system_prompt_evaluates_it_once(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    """Four requests arrive together with a system prompt nobody has cached yet.

    Each would otherwise evaluate the 200 shared tokens in the same steps; the followers wait
    for the first one's prefill and copy its cells, so the prompt is evaluated once.
    """
    metrics = Metrics()
    # One step evaluates the whole system prompt (batchSize 512, the GPU default). In 64-token
    # chunks (the CPU default) the followers would stop waiting once fewer than
    # MIN_SHARED_PREFILL shared tokens remained, and evaluate those few themselves.
    engine = await make_engine(
        tiny_model_path, parallel=4, context_size=512, batch_size=512, metrics=metrics
    )
    prompts = [(*SYSTEM, 10 + i, 20 + i) for i in range(4)]
    streams = [
        engine.submit(GenerationRequest(p, SHORT, f"burst-{i}")) for i, p in enumerate(prompts)
    ]
    outcomes = await asyncio.gather(*(collect(s) for s in streams))
    cached = sorted(o.finished.cached_prompt_tokens for o in outcomes)  # type: ignore[union-attr]
    assert cached == [0, len(SYSTEM), len(SYSTEM), len(SYSTEM)]
    assert _evaluated(metrics) == len(SYSTEM) + 4 * 2
    assert sample_value(metrics, "sentiric_llm_prefix_cache_tokens_total") == 3 * len(SYSTEM)

    # Copied cells answer exactly as evaluating each prompt on its own does.
    plain = await make_engine(tiny_model_path, parallel=4, context_size=512, prefix_cache=False)
    for prompt, outcome in zip(prompts, outcomes, strict=True):
        alone = await collect(plain.submit(GenerationRequest(prompt, SHORT, "alone")))
        assert alone.text == outcome.text


async def test_requests_behind_a_held_one_do_not_take_its_slot(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    """A held request keeps its place: with two slots, the leader and the held follower get
    them, and an unrelated third request waits for a slot to free."""
    metrics = Metrics()
    # The whole system prompt in one step, as in the test above.
    engine = await make_engine(
        tiny_model_path, parallel=2, context_size=512, batch_size=512, metrics=metrics
    )
    leader = engine.submit(GenerationRequest((*SYSTEM, 1), ENDLESS, "leader"))
    follower = engine.submit(GenerationRequest((*SYSTEM, 2), ENDLESS, "follower"))
    other = engine.submit(GenerationRequest(tuple(range(400, 420)), SHORT, "other"))
    async with asyncio.timeout(30):
        await anext(leader)
        await anext(follower)
    stats = engine.stats()
    assert (stats.queue_depth, stats.sequences_active) == (1, 2)  # "other" still waits
    leader.cancel()
    done = await collect(other)
    assert done.finished is not None and done.finished.reason is FinishReason.LENGTH
    follower.cancel()
    assert (await collect(follower)).finished.cached_prompt_tokens == len(SYSTEM)  # type: ignore[union-attr]


async def test_idle_cache_limit_drops_the_least_recently_used_cache(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    metrics = Metrics()
    engine = await make_engine(
        tiny_model_path, parallel=3, context_size=512, idle_cache_limit=250, metrics=metrics
    )
    old_prompt = (*range(10, 210), 1)  # 201 tokens, then 8 generated: 208 cells kept
    new_prompt = (*range(220, 420), 2)
    await collect(engine.submit(GenerationRequest(old_prompt, SHORT, "old")))
    await collect(engine.submit(GenerationRequest(new_prompt, SHORT, "new")))
    # Both caches (416 cells) do not fit in 250: the older one went, the newer one stayed.
    again_new = await collect(engine.submit(GenerationRequest((*new_prompt, 3), SHORT, "b")))
    assert again_new.finished is not None
    assert again_new.finished.cached_prompt_tokens == len(new_prompt)
    again_old = await collect(engine.submit(GenerationRequest((*old_prompt, 3), SHORT, "a")))
    assert again_old.finished is not None and again_old.finished.cached_prompt_tokens == 0


async def test_without_an_idle_cache_limit_every_cache_stays(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    engine = await make_engine(tiny_model_path, parallel=3, context_size=512)
    old_prompt = (*range(10, 210), 1)
    await collect(engine.submit(GenerationRequest(old_prompt, SHORT, "old")))
    await collect(engine.submit(GenerationRequest((*range(220, 420), 2), SHORT, "new")))
    again_old = await collect(engine.submit(GenerationRequest((*old_prompt, 3), SHORT, "a")))
    assert again_old.finished is not None
    assert again_old.finished.cached_prompt_tokens == len(old_prompt)
