"""Automatic sizing against the shipped hand-picked settings, on the same load, side by side.

The CPU profile (profiles/qwen25-1.5b-cpu.yaml) used to fix `parallel: 4, contextSize: 4096`;
it now asks for `0, 0` and the engine sizes itself (engine/sizing.py). This bench loads the
engine both ways on one model and sends the same waves of --streams concurrent requests
(distinct ~--prompt-tokens prompts, --max-tokens greedy tokens each), rounds alternating:
  tokens/s  all generated tokens of a wave / the wave's wall time;
  TTFT      per request, p50 and p95 over all waves;
  KV MiB    the plan's KV cache; RSS MiB of this process after the wave.
It also prints the plan the pure planner makes for the profile's own 4 GiB limit, which this
host's budget (its cgroup limit or available memory) may not match.

    .venv/bin/python bench/auto_plan.py [--model PATH] [--streams 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from pathlib import Path

from sentiric_inference.config import EngineSettings
from sentiric_inference.engine import Engine
from sentiric_inference.engine.memory import memory_budget, process_rss
from sentiric_inference.engine.sizing import Budget, ModelShape, SizingPlan, plan_sizing
from sentiric_inference.engine.types import Finished, GenerationRequest, SamplingParams
from sentiric_inference.metrics import Metrics
from sentiric_inference.models.embedded import embedded_model_path

HAND_PICKED = {"parallel": 4, "context_size": 4096}  # the CPU profile before auto sizing
AUTOMATIC = {"parallel": 0, "context_size": 0}
PROFILE_LIMIT = 4 * 2**30  # the CPU profile's resources.limits.memory
FILLER = "Our store opens at nine and closes at six; returns need a receipt and the card. "


async def wave(
    engine: Engine, streams: int, prompt_tokens: int, max_tokens: int, tag: str
) -> tuple[float, list[float]]:
    base = engine.tokenize(FILLER * 40)
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    ttfts: list[float] = []
    generated = 0
    start = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal generated
        prompt = tuple(engine.tokenize(f"{tag} caller {i}:") + base)[:prompt_tokens]
        sent = time.perf_counter()
        first = True
        async for event in engine.submit(GenerationRequest(prompt, params, f"{tag}-{i}")):
            if first:
                ttfts.append(time.perf_counter() - sent)
                first = False
            if isinstance(event, Finished):
                generated += event.completion_tokens

    await asyncio.gather(*(one(i) for i in range(streams)))
    return generated / (time.perf_counter() - start), ttfts


async def run(
    model: Path, settings: dict[str, int], args: argparse.Namespace, rounds: int
) -> tuple[SizingPlan, list[float], list[float], int]:
    engine = Engine(
        model,
        EngineSettings(
            parallel=settings["parallel"],
            context_size=settings["context_size"],
            threads=args.threads,
            max_queue=args.streams * 2,
        ),
        Metrics(),
        min_context=args.max_tokens + 512,
    )
    await engine.start()
    try:
        plan = engine.plan
        assert plan is not None
        rates: list[float] = []
        ttfts: list[float] = []
        for r in range(rounds):
            rate, t = await wave(engine, args.streams, args.prompt_tokens, args.max_tokens, f"r{r}")
            rates.append(rate)
            ttfts.extend(t)
        return plan, rates, ttfts, process_rss()
    finally:
        await engine.stop()


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=96)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if min(args.streams, args.prompt_tokens, args.max_tokens, args.rounds) < 1:
        parser.error("counts must be positive")
    logging.basicConfig(level=logging.ERROR)
    model = args.model or embedded_model_path()
    configs = {"hand-picked 4 x 4096": HAND_PICKED, "automatic (0, 0)": AUTOMATIC}
    results: dict[str, list[tuple[float, list[float]]]] = {name: [] for name in configs}
    plans: dict[str, SizingPlan] = {}
    rss: dict[str, int] = {}
    # Alternate the two configurations round by round, so drift hits both alike.
    for r in range(args.rounds):
        for name, settings in configs.items():
            plan, rates, ttfts, rss[name] = asyncio.run(run(model, settings, args, 1))
            plans[name] = plan
            results[name].append((rates[0], ttfts))
            print(f"round {r + 1} {name}: {rates[0]:.1f} tok/s", file=sys.stderr)
    host = memory_budget()
    print(
        f"{cpu_name()}, {os.cpu_count()} CPUs; {model.name}; {args.rounds} rounds x "
        f"{args.streams} concurrent requests ({args.prompt_tokens} prompt + {args.max_tokens} "
        f"generated tokens); budget here: {host.bytes / 2**30:.1f} GiB {host.source}"
    )
    base = results["hand-picked 4 x 4096"]
    print(
        f"{'settings':24} {'plan':>14} {'KV MiB':>7} {'RSS MiB':>8} {'tok/s':>16} "
        f"{'TTFT p50 s':>11} {'TTFT p95 s':>11}"
    )
    for name, runs in results.items():
        plan = plans[name]
        rate = statistics.median(r for r, _ in runs)
        ratio = statistics.median(r / b for (r, _), (b, _) in zip(runs, base, strict=True))
        ttfts = [t for _, ts in runs for t in ts]
        print(
            f"{name:24} {plan.parallel:>5} x {plan.context_size:<6} {plan.kv_bytes / 2**20:7.0f} "
            f"{rss[name] / 2**20:8.0f} {rate:8.1f} ({ratio:4.2f}x) "
            f"{statistics.median(ttfts):11.2f} {p95(ttfts):11.2f}"
        )
    print("\nThe planner for the CPU profile's own 4 GiB limit (Qwen2.5-1.5B Q4_K_M shape):")
    qwen15 = ModelShape(28, 2, 128, 128, 1536, 151936, 32768, 1066 * 2**20)
    plan = plan_sizing(
        qwen15,
        Budget(PROFILE_LIMIT, "the profile's memory limit"),
        parallel=0,
        context_size=0,
        batch_size=64,
        kv_cache_type="f16",
        gpu=False,
        min_context=512 + 512,
    )
    print(f"  {plan.describe()}")
    return 0


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
