"""Prompt-lookup speculative decoding: the same output as plain decoding, fewer steps.

Each test runs the same requests on an engine with `draftTokens` and on one without and
compares what the clients receive token for token.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from engine_helpers import EngineFactory, Outcome, collect, sample_value
from sentiric_inference.config import EngineSettings
from sentiric_inference.engine import Engine
from sentiric_inference.engine.types import GenerationRequest, SamplingParams
from sentiric_inference.errors import EngineFailure
from sentiric_inference.metrics import Metrics

pytestmark = pytest.mark.model

PASSAGES = [
    "The warehouse in Izmir ships orders before noon on weekdays; returns are accepted "
    "within thirty days when the item is unused and in its original box.",
    "Kettle K-200: 1.7 litres, 2200 watts, stainless steel body, automatic shut-off, "
    "boil-dry protection, a 360 degree base and a washable limescale filter.",
    "Call centre hours are eight to eight, Monday to Saturday. Outside those hours the "
    "assistant takes a message and a human calls back the next working day.",
]


def _quoting_prompt(passage: str) -> str:
    # The text appears once, then its start again: the continuation quotes it.
    return f"Document:\n{passage}\n\nThe document, copied word for word:\n{passage[:40]}"


async def _run(engine: Engine, params: SamplingParams) -> list[Outcome]:
    # One request at a time. llama.cpp is not batch-invariant on a CPU: a sequence's logits
    # depend a little on which other sequences share its steps, and SmolLM2's choices on
    # these prompts are close enough to ties that plain decoding itself answers differently
    # alone and three at once (docs/architecture.md, "Speculative decoding"). Alone, with
    # flash attention (auto), a row's logits are the same whether it is decoded with its
    # guesses or by itself, so the outputs must match exactly. Batches of several sequences
    # are checked on the tiny model below, whose choices are never close.
    return [
        await collect(
            engine.submit(
                GenerationRequest(tuple(engine.tokenize(_quoting_prompt(p))), params, f"q{i}")
            )
        )
        for i, p in enumerate(PASSAGES)
    ]


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(temperature=0.0, max_tokens=48),
        SamplingParams(temperature=0.0, max_tokens=48, stop=("thirty", "litres")),
        # Not seeded sampling: llama.cpp computes a row in a multi-token batch with other
        # kernels than a lone row (logits differ by up to ~0.47 on SmolLM2, see
        # docs/performance.md), so a draw near a boundary can land on another token.
    ],
    ids=["greedy", "stop-strings"],
)
async def test_drafting_changes_no_output_and_keeps_guesses_that_match(
    make_engine: EngineFactory, smollm2_path: Path, params: SamplingParams
) -> None:
    plain = await make_engine(smollm2_path, parallel=1, context_size=512)
    expected = await _run(plain, params)
    metrics = Metrics()
    drafting = await make_engine(
        smollm2_path, parallel=1, context_size=512, draft_tokens=4, metrics=metrics
    )
    got = await _run(drafting, params)
    assert [o.text for o in got] == [o.text for o in expected]
    assert [o.finished for o in got] == [o.finished for o in expected]
    drafted = sample_value(metrics, "sentiric_llm_draft_tokens_total")
    accepted = sample_value(metrics, "sentiric_llm_draft_tokens_accepted_total")
    assert drafted > 0
    assert 0 < accepted <= drafted
    # Every accepted guess is a token that took no step of its own.
    generated = sample_value(metrics, "sentiric_llm_generated_tokens_total")
    assert generated == sum(o.finished.completion_tokens for o in got if o.finished)


async def test_drafting_in_a_full_batch_of_noisy_sequences_changes_no_output(
    make_engine: EngineFactory, tiny_model_path: Path
) -> None:
    # The random tiny model falls into loops that lookup guesses well, and into noise that it
    # guesses badly: both paths run, with more sequences than one step has spare rows for.
    params = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)
    prompts = [f"sequence {i} repeats {i} repeats" for i in range(8)]

    async def run(engine: Engine) -> list[str]:
        streams = [
            engine.submit(GenerationRequest(tuple(engine.tokenize(p)), params, p)) for p in prompts
        ]
        return [o.text for o in await asyncio.gather(*(collect(s) for s in streams))]

    plain = await make_engine(tiny_model_path, parallel=8, context_size=128, batch_size=16)
    metrics = Metrics()
    drafting = await make_engine(
        tiny_model_path,
        parallel=8,
        context_size=128,
        batch_size=16,
        draft_tokens=6,
        metrics=metrics,
    )
    assert await run(drafting) == await run(plain)
    assert sample_value(metrics, "sentiric_llm_draft_tokens_accepted_total") > 0
    assert sample_value(metrics, "sentiric_llm_generated_tokens_total") == 8 * 40


@pytest.mark.parametrize("which", ["tiny", "smollm2"])
async def test_a_draft_model_changes_no_output_and_its_guesses_are_counted(
    make_engine: EngineFactory, tiny_model_path: Path, smollm2_path: Path, which: str
) -> None:
    # The model as its own draft: this checks the plumbing (catch-up in chunks, guesses fed
    # back, verification, KV trimming in both contexts) with outputs that must equal plain
    # decoding's. The tiny model runs eight sequences in a batch; SmolLM2 one at a time, as
    # in the lookup test above (its close choices tip with the batch's make-up).
    path = tiny_model_path if which == "tiny" else smollm2_path
    params = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)
    prompts = [f"sequence {i} repeats {i} repeats" for i in range(8)]

    async def one(engine: Engine, prompt: str) -> str:
        request = GenerationRequest(tuple(engine.tokenize(prompt)), params, prompt)
        return (await collect(engine.submit(request))).text

    async def run(engine: Engine) -> list[str]:
        if which == "smollm2":
            return [await one(engine, p) for p in prompts]
        return list(await asyncio.gather(*(one(engine, p) for p in prompts)))

    settings = {"parallel": 8, "context_size": 256, "batch_size": 64}
    plain = await make_engine(path, **settings)
    expected = await run(plain)
    metrics = Metrics()
    drafting = await make_engine(
        path, **settings, draft_tokens=4, metrics=metrics, draft_model_path=path
    )
    assert await run(drafting) == expected
    drafted = sample_value(metrics, "sentiric_llm_draft_tokens_total")
    accepted = sample_value(metrics, "sentiric_llm_draft_tokens_accepted_total")
    assert 0 < accepted <= drafted
    if which == "smollm2":
        # Its own greedy guesses hold (the tiny model's drafts often pick a control token,
        # which ignore_eos keeps the target from sampling).
        assert accepted / drafted > 0.9, (accepted, drafted)
    assert sample_value(metrics, "sentiric_llm_generated_tokens_total") == 8 * 40
    # Again on the same engine: the draft context trims what finished requests left.
    assert await run(drafting) == expected


async def test_a_draft_model_with_another_vocabulary_is_refused_at_load(
    smollm2_path: Path, tiny_model_path: Path
) -> None:
    engine = Engine(
        smollm2_path,
        EngineSettings(parallel=1, context_size=256, threads=1, draft_tokens=4),
        Metrics(),
        draft_model_path=tiny_model_path,
    )
    with pytest.raises(EngineFailure, match="must share its vocabulary"):
        await engine.start()
    assert "draft model" in engine.not_ready_reason
    await engine.stop()
