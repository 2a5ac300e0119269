"""Admission across tenants (API keys) on a real engine: round robin, FIFO within a tenant."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from engine_helpers import EngineFactory, collect
from sentiric_inference.engine import Engine, GenerationStream
from sentiric_inference.engine.types import GenerationRequest, SamplingParams
from sentiric_inference.errors import OverloadedError

pytestmark = pytest.mark.model

# Every request runs exactly this long, so the finish order is the admission order.
FIXED = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)


async def _finish_order(requests: list[GenerationRequest], engine: Engine) -> list[str]:
    """Submit in this order (all at once), return the order the requests finished in."""
    order: list[str] = []

    async def run(request: GenerationRequest) -> None:
        await collect(engine.submit(request))
        order.append(request.request_id)

    async with asyncio.timeout(120):
        await asyncio.gather(*(run(r) for r in requests))
    return order


async def test_a_burst_from_one_key_does_not_starve_another(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    # One sequence: requests run one at a time, in the order they are admitted.
    engine = await make_engine(tiny_model_path, parallel=1, context_size=256)
    prompt = tuple(engine.tokenize("a request"))
    burst = [GenerationRequest(prompt, FIXED, f"a{i}", tenant="app-a") for i in range(1, 6)]
    late = GenerationRequest(prompt, FIXED, "b1", tenant="app-b")
    order = await _finish_order([*burst, late], engine)
    # FIFO would run b1 last; round robin lets it in after at most two of a's (the one
    # running when it arrived and the one at the head of a's line), never after all five.
    assert order.index("b1") <= 2, order
    assert [r for r in order if r != "b1"] == ["a1", "a2", "a3", "a4", "a5"]


async def test_without_keys_everything_is_first_come_first_served(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    engine = await make_engine(tiny_model_path, parallel=1, context_size=256)
    prompt = tuple(engine.tokenize("a request"))
    requests = [GenerationRequest(prompt, FIXED, f"r{i}") for i in range(5)]
    assert await _finish_order(requests, engine) == [f"r{i}" for i in range(5)]


async def test_two_busy_keys_take_turns(make_engine: EngineFactory, tiny_model_path: Path) -> None:
    engine = await make_engine(tiny_model_path, parallel=1, context_size=256)
    prompt = tuple(engine.tokenize("a request"))
    requests = [
        *(GenerationRequest(prompt, FIXED, f"a{i}", tenant="app-a") for i in range(1, 4)),
        *(GenerationRequest(prompt, FIXED, f"b{i}", tenant="app-b") for i in range(1, 4)),
    ]
    order = await _finish_order(requests, engine)
    # a1 runs first; if it was admitted before the rest were queued, a's line (a2, a3) was
    # there before b's, else a1 was the head of a's. Either way the keys then alternate.
    assert order in (
        ["a1", "b1", "a2", "b2", "a3", "b3"],
        ["a1", "a2", "b1", "a3", "b2", "b3"],
    ), order


async def test_one_key_cannot_fill_the_whole_queue(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    engine = await make_engine(tiny_model_path, parallel=1, context_size=4096, max_queue=16)
    prompt = tuple(engine.tokenize("a request"))
    endless = SamplingParams(temperature=0.0, max_tokens=4000, ignore_eos=True)

    def submit(name: str, tenant: str) -> GenerationStream:
        return engine.submit(GenerationRequest(prompt, endless, name, tenant=tenant))

    streams = [submit("a0", "app-a")]
    try:
        async with asyncio.timeout(30):
            await anext(streams[0])  # a0 holds the one sequence
        # Alone, app-a may hold 14 of the 16 places: an eighth is kept for someone new.
        streams += [submit(f"a{i}", "app-a") for i in range(1, 15)]
        with pytest.raises(OverloadedError, match="'app-a' already hold 14 of the 16"):
            submit("a15", "app-a")
        streams.append(submit("b1", "app-b"))
        # With app-b waiting, app-a's share is (16 - 2) // 2 = 7: still over it.
        with pytest.raises(OverloadedError, match="its share while 1 other"):
            submit("a16", "app-a")
        assert engine.stats().queue_depth == 15
    finally:
        for stream in streams:
            stream.cancel()
        for stream in streams:
            await collect(stream)
