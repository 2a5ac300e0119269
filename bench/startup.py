"""The first calls after a pod starts: a profile system prompt evaluated ahead, or not.

A phone assistant's pods restart (rollouts, node drains), and the calls that reach a new pod
first all open with the profile's long system prompt. `sentiric-llm serve` evaluates
`prompt.system` once after loading the model, before /ready says ready (docs/http-api.md,
"Prompt building"). This bench starts two servers per round, one after the other, with the
same model and the same prompt text in two places:

  ahead     the text is the profile's `prompt.system`: evaluated at start-up;
  on demand the profile has none and every request sends the same text as its own system
            message: the rendered prompts are token for token the same, but nothing is
            evaluated before the first call.

For each it times the start (process start to /ready 200) and then a burst of --calls
streaming chats at once, each asking its own question (the first calls after a restart),
TTFT p50/p95 over the burst. Medians over --rounds; ratios are medians of per-round ratios.

    .venv/bin/python bench/startup.py [--system-tokens 1000] [--calls 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from sentiric_inference.engine.native import resolve_threads
from sentiric_inference.models.embedded import embedded_model_path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

import _load  # noqa: E402
from _load import Messages, Sampling, SSEChat  # noqa: E402
from _prompts import system_prompt  # noqa: E402

from tests.support.server import running_server  # noqa: E402

MODEL_ALIAS = "bench"
CONTEXT_SIZE = 2048
WAYS = ("ahead", "on_demand")


def calls(system: str, n: int, *, in_request: bool) -> list[Messages]:
    """n first calls, each with its own question; the system text in the request or not."""
    opening = [{"role": "system", "content": system}] if in_request else []
    return [
        [*opening, {"role": "user", "content": f"Caller {i + 1}: what does rule {i + 2} say?"}]
        for i in range(n)
    ]


async def first_calls(url: str, conversations: list[Messages], limit_s: float) -> _load.Wave:
    async with SSEChat(url, limit_s) as chat, asyncio.timeout(limit_s):
        return await _load.run_wave(
            chat, MODEL_ALIAS, conversations, max_tokens=8, sampling=Sampling(temperature=0.8)
        )


def measure(way: str, model: Path, system: str, args: argparse.Namespace) -> dict[str, float]:
    config: dict[str, Any] = {"model": {"alias": MODEL_ALIAS}, "engine": {"threads": args.threads}}
    if way == "ahead":
        config["prompt"] = {"system": system}
    started = time.perf_counter()
    with running_server(
        model,
        parallel=args.calls,
        context_size=CONTEXT_SIZE,
        extra_config=config,
        wait=False,
    ) as server:
        server.wait_ready(timeout=args.timeout)
        ready_s = time.perf_counter() - started
        conversations = calls(system, args.calls, in_request=way == "on_demand")
        wave = asyncio.run(first_calls(server.openai_base_url, conversations, args.timeout))
    return {
        "ready_s": ready_s,
        "ttft_p50_s": wave.ttft(50),
        "ttft_p95_s": wave.ttft(95),
        "cached_share": (wave.cached_tokens or 0) / max(wave.prompt_tokens or 1, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: embedded SmolLM2")
    parser.add_argument("--system-tokens", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=8, help="first calls at once")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0 = one per core")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds, per step")
    args = parser.parse_args()
    if min(args.system_tokens, args.calls, args.rounds) < 1:
        parser.error("--system-tokens, --calls and --rounds must be positive")
    logging.basicConfig(level=logging.ERROR)
    args.threads = resolve_threads(args.threads)
    model = args.model or embedded_model_path()
    figures: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
    for round_ in range(args.rounds):
        # A new prompt each round, so nothing is cached anywhere between servers.
        system, tokens = system_prompt(
            model, f"startup-{round_}-{time.time_ns()}", args.system_tokens
        )
        order = WAYS if round_ % 2 == 0 else WAYS[::-1]
        for way in order:
            result = measure(way, model, system, args)
            figures[way].append(result)
            print(
                f"round {round_ + 1} {way:9}  ready after {result['ready_s']:6.2f} s  first "
                f"{args.calls} calls TTFT p50 {result['ttft_p50_s']:6.2f} s  p95 "
                f"{result['ttft_p95_s']:6.2f} s  ({result['cached_share']:.0%} of prompt "
                f"tokens cached; {tokens}-token system prompt)",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"\n{model.name}, {args.calls} first calls, {args.system_tokens}-token system prompt, "
        f"medians of {args.rounds} rounds"
    )
    print(f"{'':10} {'ready s':>8} {'TTFT p50 s':>11} {'TTFT p95 s':>11} {'ready + p95 s':>14}")
    for way in WAYS:
        rows = figures[way]
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        total = statistics.median(r["ready_s"] + r["ttft_p95_s"] for r in rows)
        print(
            f"{way:10} {med['ready_s']:8.2f} {med['ttft_p50_s']:11.2f} {med['ttft_p95_s']:11.2f} "
            f"{total:14.2f}"
        )
    ratio = statistics.median(
        a["ttft_p95_s"] / b["ttft_p95_s"]
        for a, b in zip(figures["ahead"], figures["on_demand"], strict=True)
    )
    print(f"first calls' TTFT p95, ahead / on demand: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
