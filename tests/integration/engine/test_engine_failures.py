"""Failure handling: a failed llama_decode or a crashed scheduler never leaves a request hanging.

llama.cpp cannot be made to fail on demand with a healthy model, so these tests wrap the real
Context.decode / Context.sample to inject the failure codes llama_decode documents (1: no KV
slot, < 0: error) or an exception; everything else is the real engine on a real model.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from engine_helpers import EngineFactory, collect, sample_value
from sentiric_inference.engine import native
from sentiric_inference.engine.types import (
    FinishReason,
    GenerationRequest,
    SamplingParams,
    TextDelta,
)
from sentiric_inference.errors import NotReadyError
from sentiric_inference.metrics import Metrics

pytestmark = pytest.mark.model

LONG = SamplingParams(temperature=0.0, max_tokens=10_000, ignore_eos=True)
SHORT = SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True)


class DecodeFaults:
    """Return the queued codes from the next decode calls instead of decoding."""

    def __init__(self) -> None:
        self.codes: list[int] = []
        self.injected = 0
        self.drained = threading.Event()  # set when the scheduler has used every queued code


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> DecodeFaults:
    plan = DecodeFaults()
    real = native.Context.decode

    def decode(self: native.Context, batch: native.Batch) -> int:
        if plan.codes:
            plan.injected += 1
            code = plan.codes.pop(0)
            if not plan.codes:
                plan.drained.set()
            return code
        return real(self, batch)

    monkeypatch.setattr(native.Context, "decode", decode)
    return plan


async def _first_token(stream: object) -> None:
    async with asyncio.timeout(30):
        assert isinstance(await anext(stream), TextDelta)  # type: ignore[call-overload]


async def test_decode_error_fails_the_batch_and_the_engine_keeps_serving(
    make_engine: EngineFactory, tiny_model_path: Path, faults: DecodeFaults
) -> None:
    metrics = Metrics()
    engine = await make_engine(tiny_model_path, parallel=2, context_size=512, metrics=metrics)
    a = engine.submit(GenerationRequest((1, 2, 3), LONG, "a"))
    b = engine.submit(GenerationRequest((4, 5, 6), LONG, "b"))
    await _first_token(a)
    await _first_token(b)
    faults.codes.append(-3)
    for stream in (a, b):
        out = await collect(stream)
        assert out.finished is not None
        assert out.finished.reason is FinishReason.ERROR
        assert out.finished.error == "llama_decode failed with status -3"
    assert sample_value(metrics, "sentiric_llm_decode_errors_total") == 1
    assert engine.ready
    after = await collect(engine.submit(GenerationRequest((1, 2, 3), SHORT, "after")))
    assert after.finished is not None
    assert (after.finished.reason, after.finished.completion_tokens) == (FinishReason.LENGTH, 4)
    # Its KV cells were wiped, so nothing of the failed sequence was reused.
    assert after.finished.cached_prompt_tokens == 0


async def test_no_kv_slot_drops_idle_caches_first_then_fails_only_the_newest(
    make_engine: EngineFactory, tiny_model_path: Path, faults: DecodeFaults
) -> None:
    engine = await make_engine(tiny_model_path, parallel=2, context_size=512)
    # Leave an idle prefix cache behind.
    await collect(engine.submit(GenerationRequest((9, 9, 9, 9), SHORT, "idle")))
    old = engine.submit(GenerationRequest((1, 2, 3), LONG, "old"))
    await _first_token(old)
    # 1 = no KV slot: the idle cache is dropped and the step retried, nobody fails.
    faults.codes.append(1)
    assert await asyncio.to_thread(faults.drained.wait, 30)
    async with asyncio.timeout(30):
        assert isinstance(await anext(old), TextDelta)
    new = engine.submit(GenerationRequest((4, 5, 6), LONG, "new"))
    await _first_token(new)
    # Nothing idle left to drop: the newest request fails, the older one keeps going.
    faults.codes.append(1)
    failed = await collect(new)
    assert failed.finished is not None and failed.finished.reason is FinishReason.ERROR
    assert "KV cache is full" in (failed.finished.error or "")
    async with asyncio.timeout(30):
        assert isinstance(await anext(old), TextDelta)
    old.cancel()
    assert (await collect(old)).finished.reason is FinishReason.CANCELLED  # type: ignore[union-attr]


async def test_scheduler_exception_fails_everyone_and_marks_not_ready(
    make_engine: EngineFactory,
    tiny_model_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics = Metrics()
    engine = await make_engine(tiny_model_path, parallel=1, context_size=512, metrics=metrics)
    running = engine.submit(GenerationRequest((1, 2, 3), LONG, "running"))
    waiting = engine.submit(GenerationRequest((4, 5, 6), LONG, "waiting"))
    await _first_token(running)

    def broken(self: native.Context, chain: int, index: int) -> int:
        raise RuntimeError("injected sampler failure")

    monkeypatch.setattr(native.Context, "sample", broken)
    for stream in (running, waiting):
        out = await collect(stream)
        assert out.finished is not None
        assert out.finished.reason is FinishReason.ERROR
        assert "injected sampler failure" in (out.finished.error or "")
    assert not engine.ready
    assert engine.not_ready_reason.startswith("scheduler failed")
    assert sample_value(metrics, "sentiric_llm_model_ready") == 0
    with pytest.raises(NotReadyError):
        engine.submit(GenerationRequest((1,), SHORT, "late"))
