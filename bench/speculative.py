"""Prompt-lookup speculative decoding (engine.draftTokens): per-stream speed, on and off.

A voice call lives on the speed of its own stream. With `draftTokens: k` every generating
sequence carries up to k tokens guessed from its prompt and reply so far (engine/drafting.py)
in each decode step; the guesses the model agrees with are kept, so one step can emit several
tokens of one stream. Guesses cost rows in the step whether kept or not.

Two workloads, N concurrent streams each, temperature 0 (the output is the same either way,
which this bench checks):
  rag    a document in the prompt and an answer that quotes it (RAG answers, product copy,
         forms): lookup finds the continuation in the prompt;
  chat   free questions with nothing to quote: guesses come only from the reply itself.
Printed per workload and N: the median per-stream tokens/s (tokens after the first over the
time from the first to the last), the median time to first token and the acceptance rate, for
draftTokens 0 and each --draft value, the engines alternating run by run, and the median of
the per-run ratios (draft / plain).

    .venv/bin/python bench/speculative.py [--draft 4 8] [--streams 1 8] [--reps 3]
                                          [--tokens 96] [--model PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from sentiric_inference.config import EngineSettings
from sentiric_inference.engine import Engine
from sentiric_inference.engine.types import Finished, GenerationRequest, SamplingParams, TextDelta
from sentiric_inference.metrics import Metrics
from sentiric_inference.models.embedded import embedded_model_path

DOCUMENTS = [
    "The warehouse in Izmir ships orders before noon on weekdays; returns are accepted within "
    "thirty days when the item is unused and in its original box, and refunds reach the card "
    "in five working days.",
    "Kettle K-200: 1.7 litres, 2200 watts, stainless steel body, automatic shut-off, boil-dry "
    "protection, a 360 degree base, a washable limescale filter and a two year warranty.",
    "Call centre hours are eight to eight, Monday to Saturday. Outside those hours the "
    "assistant takes a message and a human calls back the next working day before ten.",
    "The premium plan costs 49 euros a month, includes five seats, priority support by phone "
    "and a monthly usage report; extra seats cost 8 euros each and can be cancelled any time.",
    "To reset the router, hold the button on the back for ten seconds until the light blinks "
    "orange, wait two minutes, then connect to the network printed on the label underneath.",
    "Delivery to the islands takes three to five days and costs 12 euros; orders over 150 "
    "euros ship free, and parcels are left with a neighbour when nobody is at home.",
    "The clinic opens at half past seven. Blood tests need twelve hours of fasting, water is "
    "allowed, and results are sent by text message within two working days.",
    "Solar panel SP-410: 410 watts peak, 21.3 percent efficiency, 1722 by 1134 millimetres, "
    "21.5 kilograms, 25 year product warranty and 30 year linear power warranty.",
]
QUESTIONS = [
    "Write a short poem about the sea at night.",
    "Explain why the sky is blue to a ten year old.",
    "Give three tips for a job interview.",
    "What makes a good cup of coffee?",
    "Describe a walk through a forest in autumn.",
    "How do bees make honey?",
    "Suggest a name for a small bakery and say why.",
    "What should I pack for a weekend in the mountains?",
]


def rag_prompt(i: int) -> str:
    doc = DOCUMENTS[i % len(DOCUMENTS)]
    return (
        f"<|im_start|>system\nAnswer from the document, quoting it exactly.<|im_end|>\n"
        f"<|im_start|>user\nDocument: {doc}\n\nRepeat the document word for word.<|im_end|>\n"
        f"<|im_start|>assistant\n"
    )


def chat_prompt(i: int) -> str:
    question = QUESTIONS[i % len(QUESTIONS)]
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


WORKLOADS = {"rag": rag_prompt, "chat": chat_prompt}


@dataclass
class StreamTiming:
    ttft: float
    per_stream_tps: float
    text: str


async def _one(engine: Engine, prompt: str, params: SamplingParams, rid: str) -> StreamTiming:
    began = time.perf_counter()
    first = last = 0.0
    parts: list[str] = []
    tokens = 0
    async for event in engine.submit(
        GenerationRequest(tuple(engine.tokenize(prompt)), params, rid)
    ):
        now = time.perf_counter()
        if isinstance(event, TextDelta):
            first = first or now
            last = now
            parts.append(event.text)
        elif isinstance(event, Finished):
            tokens = event.completion_tokens
    rate = (tokens - 1) / (last - first) if last > first else 0.0
    return StreamTiming(first - began, rate, "".join(parts))


async def run_once(
    engine: Engine, workload: str, n: int, tokens: int
) -> tuple[float, float, list[str]]:
    """(median per-stream tok/s, median TTFT, outputs) of n concurrent streams."""
    params = SamplingParams(temperature=0.0, max_tokens=tokens)
    prompt = WORKLOADS[workload]
    timings = await asyncio.gather(
        *(_one(engine, prompt(i), params, f"{workload}-{i}") for i in range(n))
    )
    return (
        statistics.median(t.per_stream_tps for t in timings),
        statistics.median(t.ttft for t in timings),
        [t.text for t in timings],
    )


def _draft_counts(metrics: Metrics) -> tuple[float, float]:
    """(guessed, kept) draft tokens so far."""
    drafted = metrics.registry.get_sample_value("sentiric_llm_draft_tokens_total") or 0.0
    kept = metrics.registry.get_sample_value("sentiric_llm_draft_tokens_accepted_total") or 0.0
    return drafted, kept


def _acceptance(before: tuple[float, float], after: tuple[float, float]) -> float:
    drafted, kept = after[0] - before[0], after[1] - before[1]
    return kept / drafted if drafted else 0.0


async def main_async(args: argparse.Namespace) -> None:
    model_path = args.model or embedded_model_path()
    parallel = max(args.streams)
    variants = [0, *args.draft]
    engines: dict[int, tuple[Engine, Metrics]] = {}
    for k in variants:
        metrics = Metrics()
        settings = EngineSettings(
            parallel=parallel,
            context_size=1024 * parallel,
            threads=args.threads,
            draft_tokens=k,
            flash_attention=args.flash_attention,
            prefix_cache=False,  # every run evaluates its prompt, as a new caller's would
        )
        engines[k] = (Engine(model_path, settings, metrics), metrics)
        await engines[k][0].start()
    print(
        f"{model_path.name}, {args.threads or 'auto'} threads, {args.tokens} tokens per "
        f"stream, temperature 0, {args.reps} reps"
    )
    try:
        for workload in WORKLOADS:
            for n in args.streams:
                results: dict[int, list[tuple[float, float]]] = {k: [] for k in variants}
                texts: dict[int, list[str]] = {}
                before = {k: _draft_counts(m) for k, (_, m) in engines.items()}
                for rep in range(args.reps):
                    order = variants if rep % 2 == 0 else list(reversed(variants))
                    for k in order:
                        tps, ttft, out = await run_once(engines[k][0], workload, n, args.tokens)
                        results[k].append((tps, ttft))
                        texts.setdefault(k, out)
                plain = results[0]
                line = [f"{workload:4} N={n}:"]
                line.append(
                    f"plain {statistics.median(r[0] for r in plain):6.1f} tok/s/stream "
                    f"TTFT {1000 * statistics.median(r[1] for r in plain):5.0f} ms"
                )
                for k in args.draft:
                    got = results[k]
                    ratio = statistics.median(
                        g[0] / p[0] for g, p in zip(got, plain, strict=True) if p[0]
                    )
                    same = "same output" if texts[k] == texts[0] else "OUTPUT DIFFERS"
                    line.append(
                        f"| draft {k}: {statistics.median(r[0] for r in got):6.1f} tok/s/stream "
                        f"TTFT {1000 * statistics.median(r[1] for r in got):5.0f} ms "
                        f"x{ratio:.2f}, "
                        f"accepted {_acceptance(before[k], _draft_counts(engines[k][1])):.0%}, "
                        f"{same}"
                    )
                print(" ".join(line), flush=True)
    finally:
        for engine, _ in engines.values():
            await engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: embedded SmolLM2")
    parser.add_argument("--draft", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=0, help="0 = one per core")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--flash-attention", choices=["auto", "on", "off"], default="auto")
    args = parser.parse_args()
    if min(*args.draft, *args.streams, args.tokens, args.reps) < 1 or max(args.draft) > 16:
        parser.error("positive counts; --draft at most 16")
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
