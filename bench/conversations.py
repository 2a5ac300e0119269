"""Multi-turn conversations: what keeping finished requests' KV caches buys and costs.

A phone assistant's caller speaks, listens to the answer, and speaks again a few seconds
later; the next turn's prompt is the whole conversation so far, and the engine answers it
quickly only if the previous turn's cells are still in the KV cache (prefix reuse). Keeping
them has a price: llama.cpp's unified cache makes every decode step visit the used cells of
every sequence, idle ones included (bench/kv_layout.py --idle-cells). `engine.idleCacheLimit`
bounds those idle cells (0 = keep all, the default). Long prompt chunks have a price too: a
step that evaluates --batch-size prompt tokens stalls every stream for its whole length, a
pause a listener hears. This bench runs one `sentiric-llm serve` per value of one engine
setting (--setting, default idleCacheLimit), side by side, and drives each the same way,
rounds alternating between servers:

  --lines callers at once (each line: one caller after another, --turns turns per caller;
  a caller's turns share a new ~--system-tokens-token system prompt, as a profile's system
  prompt and RAG block are, and carry the whole history), --think seconds (uniform, seeded)
  between a reply and the next turn, --tokens per reply at temperature 0.8.

Printed per value (medians over rounds, ratios as medians of per-round ratios to the first
value): TTFT p50/p95 of first turns and of returning turns, the share of prompt tokens served
from the cache (usage.prompt_tokens_details.cached_tokens), streaming speed (tokens/s of each
reply after its first token, median over replies) and the longest pause between two chunks of
a reply (p50/p95 over replies).

    .venv/bin/python bench/conversations.py [--setting idleCacheLimit] [--values 0 512]
        [--lines 8] [--callers 2] [--turns 4] [--rounds 3] [--model PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sentiric_inference.client.measuring import percentile
from sentiric_inference.models.embedded import embedded_model_path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from _load import Sampling, SSEChat, StreamResult  # noqa: E402
from _prompts import system_prompt  # noqa: E402

from tests.support.server import ServerHandle, running_server  # noqa: E402

CONTEXT_SIZE = 2048
QUESTIONS = (
    "My parcel with order number {n} has not arrived. Where is it and when will it come?",
    "Can I change the delivery address of order {n} to my office on Harbour Street?",
    "The drill from order {n} makes a loud noise. Is that covered by the warranty?",
    "How do I return the saw from order {n} if I no longer have the original box?",
    "Please tell me again the last thing you said about order {n}, more slowly.",
    "Thank you. Is there anything else I need to know about order {n} before I hang up?",
)


@dataclass(frozen=True, slots=True)
class Turn:
    index: int  # 0 = the caller's first turn
    result: StreamResult


def question(caller: int, turn: int) -> str:
    return f"Caller {caller}, turn {turn + 1}: " + QUESTIONS[turn % len(QUESTIONS)].format(
        n=f"{4100 + caller}-{turn}"
    )


async def line(
    chat: SSEChat,
    model: str,
    system: str,
    first_caller: int,
    args: argparse.Namespace,
    rng: random.Random,
) -> list[Turn]:
    """One phone line: --callers callers in a row, each --turns turns with pauses."""
    turns: list[Turn] = []
    for caller in range(first_caller, first_caller + args.callers):
        history: list[dict[str, str]] = [{"role": "system", "content": system}]
        for index in range(args.turns):
            history.append({"role": "user", "content": question(caller, index)})
            result = await chat.stream(
                model, history, max_tokens=args.tokens, sampling=Sampling(seed=caller * 100 + index)
            )
            history.append({"role": "assistant", "content": result.text})
            turns.append(Turn(index, result))
            await asyncio.sleep(rng.uniform(*args.think))
    return turns


async def run_round(
    server: ServerHandle, model: str, system: str, round_: int, args: argparse.Namespace
) -> dict[str, float]:
    async with SSEChat(server.openai_base_url, args.request_timeout) as chat:
        started = time.perf_counter()
        async with asyncio.timeout(args.round_timeout), asyncio.TaskGroup() as group:
            tasks = []
            for i in range(args.lines):
                # Same seed for every server: the same pauses, in the same order.
                rng = random.Random(round_ * 1000 + i)
                await asyncio.sleep(rng.uniform(0, args.think[1]))  # callers do not sync
                tasks.append(
                    group.create_task(line(chat, model, system, i * args.callers, args, rng))
                )
        wall = time.perf_counter() - started
    turns = [turn for task in tasks for turn in task.result()]
    return figures(turns, wall)


def figures(turns: list[Turn], wall: float) -> dict[str, float]:
    def p(values: list[float], q: float) -> float:
        value = percentile(values, q)
        return float("nan") if value is None else value

    first = [t.result.ttft for t in turns if t.index == 0]
    later = [t.result.ttft for t in turns if t.index > 0]
    prompt = sum(t.result.prompt_tokens or 0 for t in turns)
    cached = sum(t.result.cached_tokens or 0 for t in turns)
    speeds = [
        (t.result.tokens - 1) / (t.result.duration - t.result.ttft)
        for t in turns
        if t.result.tokens > 1 and t.result.duration > t.result.ttft
    ]
    pauses = [
        max(b - a for a, b in itertools.pairwise(t.result.chunk_times))
        for t in turns
        if len(t.result.chunk_times) > 1
    ]
    return {
        "first_ttft_p50": p(first, 50),
        "first_ttft_p95": p(first, 95),
        "later_ttft_p50": p(later, 50),
        "later_ttft_p95": p(later, 95),
        "cached_share": cached / prompt if prompt else 0.0,
        "stream_tok_s": statistics.median(speeds),
        "pause_p50": p(pauses, 50),
        "pause_p95": p(pauses, 95),
        "tok_s": sum(t.result.tokens for t in turns) / wall,
        "turns": float(len(turns)),
    }


COLUMNS = (
    ("first_ttft_p50", "1st-turn TTFT p50", 1000, "ms"),
    ("first_ttft_p95", "1st-turn TTFT p95", 1000, "ms"),
    ("later_ttft_p50", "later TTFT p50", 1000, "ms"),
    ("later_ttft_p95", "later TTFT p95", 1000, "ms"),
    ("cached_share", "prompt cached", 100, "%"),
    ("stream_tok_s", "stream tok/s", 1, ""),
    ("pause_p50", "longest pause p50", 1000, "ms"),
    ("pause_p95", "longest pause p95", 1000, "ms"),
    ("tok_s", "total tok/s", 1, ""),
)


def report(setting: str, results: dict[int, list[dict[str, float]]]) -> None:
    values = list(results)
    base = results[values[0]]
    print(f"{setting:>14} " + " ".join(f"{label:>19}" for _, label, _, _ in COLUMNS))
    for value in values:
        cells = []
        for key, _, scale, unit in COLUMNS:
            figure = statistics.median(r[key] for r in results[value]) * scale
            if math.isnan(figure):  # e.g. no returning turns with --turns 1
                cells.append("-")
            else:
                cells.append(f"{figure:9.1f}{unit:>2}" if unit else f"{figure:11.1f}")
        print(f"{value:>14} " + " ".join(f"{c:>19}" for c in cells))
        if value != values[0]:
            ratios = [
                statistics.median(
                    [r[key] / b[key] for r, b in zip(results[value], base, strict=True) if b[key]]
                    or [math.nan]
                )
                for key, _, _, _ in COLUMNS
            ]
            print(
                f"{'/ ' + str(values[0]):>14} "
                + " ".join("-".rjust(19) if math.isnan(x) else f"{x:19.3f}" for x in ratios)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: embedded SmolLM2")
    parser.add_argument(
        "--setting", default="idleCacheLimit", help="the engine setting (engine.yaml key) to vary"
    )
    parser.add_argument("--values", type=int, nargs="+", default=[0, 512])
    parser.add_argument("--lines", type=int, default=8, help="callers at once (= parallel)")
    parser.add_argument("--callers", type=int, default=2, help="callers per line, one by one")
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--system-tokens", type=int, default=600)
    parser.add_argument("--tokens", type=int, default=48, help="max_tokens per reply")
    parser.add_argument("--think", type=float, nargs=2, default=[1.0, 4.0], metavar=("MIN", "MAX"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--request-timeout", type=float, default=300.0)
    parser.add_argument("--round-timeout", type=float, default=900.0)
    args = parser.parse_args()
    if min(args.lines, args.callers, args.turns, args.rounds) < 1 or args.think[0] < 0:
        parser.error("counts must be positive and pauses not negative")
    logging.basicConfig(level=logging.ERROR)
    model_path = args.model or embedded_model_path()
    print(
        f"{model_path.name}: {args.lines} lines x {args.callers} callers x {args.turns} turns, "
        f"~{args.system_tokens}-token system prompt, {args.tokens} tokens a reply, pauses "
        f"{args.think[0]:g}-{args.think[1]:g} s, {args.threads} threads, {args.rounds} rounds"
    )
    results: dict[int, list[dict[str, float]]] = {value: [] for value in args.values}
    with contextlib.ExitStack() as stack:
        servers = {
            value: stack.enter_context(
                running_server(
                    model_path,
                    parallel=args.lines,
                    context_size=CONTEXT_SIZE,
                    extra_config={
                        "engine": {"threads": args.threads, args.setting: value},
                        # The bench reads usage; one INFO line a request would only add load.
                        "server": {"logLevel": "WARNING"},
                    },
                )
            )
            for value in args.values
        }
        model = model_path.stem
        for round_ in range(args.rounds):
            order = (
                args.values[round_ % len(args.values) :] + args.values[: round_ % len(args.values)]
            )
            for value in order:
                # A new system prompt per server and round: nothing carries over between them.
                system, _ = system_prompt(
                    model_path, f"r{round_}-l{value}-{time.time_ns()}", args.system_tokens
                )
                row = asyncio.run(run_round(servers[value], model, system, round_, args))
                results[value].append(row)
                print(
                    f"round {round_ + 1} {args.setting} {value}: "
                    + ", ".join(f"{k} {v:.3f}" for k, v in row.items()),
                    flush=True,
                )
    report(args.setting, results)


if __name__ == "__main__":
    main()
