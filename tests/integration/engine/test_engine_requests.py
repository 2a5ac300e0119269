"""Per-request behaviour on real models: stop strings, grammar, refusals, cancel, close."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from engine_helpers import EngineFactory, collect
from sentiric_inference.engine.types import (
    FinishReason,
    GenerationRequest,
    SamplingParams,
    TextDelta,
)
from sentiric_inference.errors import (
    InvalidRequestError,
    NotReadyError,
    OverloadedError,
    PromptTooLongError,
)

pytestmark = pytest.mark.model

ENDLESS = SamplingParams(temperature=0.0, max_tokens=100_000, ignore_eos=True)


async def test_stop_string_split_across_tokens_is_cut_and_not_emitted(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    engine = await make_engine(tiny_model_path, parallel=1, context_size=256)
    prompt = tuple(engine.tokenize("stop strings"))
    free = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)
    first = await collect(engine.submit(GenerationRequest(prompt, free, "free")))
    # A stop string made of the last character of one delta and the first of the next,
    # so it can only be recognised across two tokens.
    pairs = [
        (a, b)
        for a, b in zip(first.deltas, first.deltas[1:], strict=False)
        if a.strip() and b.strip()
    ]
    assert pairs, f"need two adjacent non-blank deltas in {first.deltas!r}"
    stop = pairs[len(pairs) // 2][0][-1] + pairs[len(pairs) // 2][1][0]
    expected = first.text[: first.text.index(stop)]

    stopped = await collect(
        engine.submit(
            GenerationRequest(
                prompt,
                SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True, stop=(stop,)),
                "stopped",
            )
        )
    )
    assert stopped.finished is not None
    assert stopped.finished.reason is FinishReason.STOP
    assert stopped.text == expected
    assert stop not in stopped.text


async def test_grammar_constrains_output_to_json(
    make_engine: EngineFactory, smollm2_path: Path
) -> None:
    from llama_cpp.llama_grammar import JSON_GBNF

    engine = await make_engine(smollm2_path, parallel=1, context_size=512)
    text = (
        "<|im_start|>user\nDescribe a cat as a JSON object with keys name and age.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    params = SamplingParams(temperature=0.0, max_tokens=120, grammar=JSON_GBNF)
    out = await collect(engine.submit(GenerationRequest(tuple(engine.tokenize(text)), params, "j")))
    assert out.finished is not None
    assert out.finished.reason is FinishReason.STOP, out.text
    assert isinstance(json.loads(out.text), dict)


async def test_bad_grammar_is_refused_before_anything_streams(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    engine = await make_engine(tiny_model_path, parallel=1, context_size=128)
    params = SamplingParams(grammar='root ::= "a" undefined-rule')
    with pytest.raises(InvalidRequestError) as err:
        engine.submit(GenerationRequest((1, 2), params, "bad"))
    assert err.value.param == "response_format"
    assert engine.stats().queue_depth == 0


async def test_prompt_too_long_and_invalid_prompts_are_refused(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    engine = await make_engine(tiny_model_path, parallel=1, context_size=64)
    with pytest.raises(PromptTooLongError) as err:
        engine.submit(GenerationRequest(tuple(range(1, 65)), SamplingParams(), "long"))
    assert "64" in err.value.message
    with pytest.raises(InvalidRequestError) as bad:
        engine.submit(GenerationRequest((1, 10**9), SamplingParams(), "oov"))
    assert bad.value.param == "prompt"
    with pytest.raises(InvalidRequestError):
        engine.submit(GenerationRequest((), SamplingParams(), "empty"))
    # 63 tokens + 1 generated fits exactly.
    out = await collect(
        engine.submit(
            GenerationRequest(
                tuple(range(1, 64)),
                SamplingParams(temperature=0.0, max_tokens=5, ignore_eos=True),
                "fits",
            )
        )
    )
    assert out.finished is not None
    assert out.finished.reason is FinishReason.CONTEXT_FULL
    assert out.finished.completion_tokens == 1


async def test_overload_when_every_sequence_is_busy_and_the_queue_is_full(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    engine = await make_engine(tiny_model_path, parallel=1, max_queue=1, context_size=4096)
    running = engine.submit(GenerationRequest((1, 2, 3), ENDLESS, "running"))
    waiting = engine.submit(GenerationRequest((4, 5, 6), ENDLESS, "waiting"))
    with pytest.raises(OverloadedError):
        engine.submit(GenerationRequest((7, 8, 9), ENDLESS, "refused"))
    running.cancel()
    waiting.cancel()
    assert (await collect(running)).finished.reason is FinishReason.CANCELLED  # type: ignore[union-attr]
    assert (await collect(waiting)).finished.reason is FinishReason.CANCELLED  # type: ignore[union-attr]


async def test_cancel_frees_the_sequence_for_a_waiting_request(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    engine = await make_engine(tiny_model_path, parallel=1, context_size=4096)
    first = engine.submit(GenerationRequest((1, 2, 3), ENDLESS, "first"))
    async with asyncio.timeout(30):
        event = await anext(first)
    assert isinstance(event, TextDelta)
    second = engine.submit(
        GenerationRequest(
            (4, 5, 6), SamplingParams(temperature=0.0, max_tokens=3, ignore_eos=True), "second"
        )
    )
    assert engine.stats().sequences_active == 1
    first.cancel()
    first.cancel()  # idempotent
    done = await collect(first)
    assert done.finished is not None
    assert done.finished.reason is FinishReason.CANCELLED
    assert done.finished.completion_tokens >= 1
    out = await collect(second, seconds=30)
    assert out.finished is not None and out.finished.completion_tokens == 3


async def test_cancelling_the_consuming_task_cancels_the_request(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    engine = await make_engine(tiny_model_path, parallel=1, context_size=4096)
    stream = engine.submit(GenerationRequest((1, 2, 3), ENDLESS, "task"))

    async def consume() -> None:
        async for _ in stream:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The sequence is released: a new request runs to completion.
    nxt = await collect(
        engine.submit(
            GenerationRequest(
                (4, 5), SamplingParams(temperature=0.0, max_tokens=2, ignore_eos=True), "next"
            )
        ),
        seconds=30,
    )
    assert nxt.finished is not None and nxt.finished.completion_tokens == 2


async def test_close_ends_every_in_flight_request(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    engine = await make_engine(tiny_model_path, parallel=1, context_size=4096)
    running = engine.submit(GenerationRequest((1, 2, 3), ENDLESS, "running"))
    waiting = engine.submit(GenerationRequest((4, 5, 6), ENDLESS, "waiting"))
    async with asyncio.timeout(30):
        await anext(running)
    await engine.stop()
    for stream in (running, waiting):
        out = await collect(stream, seconds=10)
        assert out.finished is not None
        assert out.finished.reason is FinishReason.CANCELLED
    assert not engine.ready
    assert engine.not_ready_reason == "stopped"
    with pytest.raises(NotReadyError):
        engine.submit(GenerationRequest((1,), SamplingParams(), "late"))


async def test_model_info_comes_from_gguf_metadata(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    engine = await make_engine(tiny_model_path, parallel=2, context_size=128)
    info = engine.info
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert (info.context_size, info.parallel) == (128, 2)
    assert info.size_bytes == (await asyncio.to_thread(tiny_model_path.stat)).st_size
    assert info.vocab_size > 0
    assert info.metadata.get("general.architecture") == "qwen2"
    assert engine.stats().kv_cells_total >= 256
