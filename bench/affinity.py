"""Session affinity against round robin over three replicas: what the prefix cache keeps.

A voice call is many turns over one growing prompt. The engine answers a turn quickly when
the previous turns' KV cells are still cached on the replica that gets it. This bench starts
three real `sentiric-llm serve` processes on loopback and drives them through the project's
balanced gRPC client (`ipv4:a,b,c`, client/pool.py) two ways, in one run:

  round robin   no session: gRPC's round_robin picks the replica of every call;
  affinity      session=<conversation id>: rendezvous hashing pins each conversation.

Each way runs --conversations conversations of --turns turns, --at-once at a time, on three
replicas started for it (so nothing cached carries over from the other way); every
conversation opens with a ~--system-tokens-token system prompt and carries its whole history.
Where that prompt comes from:

  (default)          each conversation sends its own (a call's customer record and documents);
  --shared-system    every conversation sends the same one;
  --profile-system   the replicas' profile holds it (prompt.system) and the conversations send
                     none, as a phone assistant's profile would: each replica evaluates it once
                     at start, before /ready (ServingService.warm_up), so first turns reuse it.

Printed per way: TTFT p50/p95 of every turn and of turns after the first, the share of prompt
tokens served from the replicas' caches (sentiric_llm_prefix_cache_tokens_total over
sentiric_llm_prompt_tokens_total, summed over the three /metrics), and the ratios.

    .venv/bin/python bench/affinity.py [--conversations 12] [--turns 6] [--at-once 4]
                                       [--system-tokens 1000] [--shared-system | --profile-system]
                                       [--model PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from pathlib import Path

from sentiric_inference.client import AsyncLlamaClient
from sentiric_inference.client.measuring import percentile
from sentiric_inference.client.types import GenerationOptions, Turn
from sentiric_inference.models.embedded import embedded_model_path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from _load import read_counter  # noqa: E402
from _prompts import system_prompt  # noqa: E402
from conversations import question  # noqa: E402

from tests.support.server import ServerHandle, running_server  # noqa: E402

REPLICAS = 3


async def conversation(
    client: AsyncLlamaClient,
    system: str | None,
    index: int,
    args: argparse.Namespace,
    affinity: bool,
) -> list[tuple[int, float]]:
    """(turn, TTFT seconds) of each turn of one conversation."""
    history: list[Turn] = []
    ttfts: list[tuple[int, float]] = []
    session = f"call-{index}-{time.time_ns()}" if affinity else None
    for turn in range(args.turns):
        asked = question(index, turn)
        done = await client.generate(
            asked,
            system_prompt=system or "",
            history=history,
            options=GenerationOptions(max_new_tokens=args.tokens, temperature=0.0),
            timeout=args.request_timeout,
            session=session,
        )
        if done.time_to_first_token is not None:
            ttfts.append((turn, done.time_to_first_token))
        history += [Turn("user", asked), Turn("assistant", done.text)]
    return ttfts


def cache_counts(servers: list[ServerHandle]) -> tuple[float, float]:
    """(prompt tokens admitted, of them served from the cache), summed over the replicas."""
    prompt = sum(read_counter(s.metrics_url, "sentiric_llm_prompt_tokens") for s in servers)
    cached = sum(read_counter(s.metrics_url, "sentiric_llm_prefix_cache_tokens") for s in servers)
    return prompt, cached


def conversation_systems(
    model_path: Path, args: argparse.Namespace, tag: str
) -> tuple[str | None, list[str | None]]:
    """(the profile's system prompt, what each conversation sends) for one way."""
    shared, _ = system_prompt(model_path, tag, args.system_tokens)
    if args.profile_system:
        return shared, [None] * args.conversations
    if args.shared_system:
        return None, [shared] * args.conversations
    return None, [
        system_prompt(model_path, f"{tag}-{i}", args.system_tokens)[0]
        for i in range(args.conversations)
    ]


async def run_way(
    servers: list[ServerHandle], systems: list[str | None], args: argparse.Namespace, affinity: bool
) -> dict[str, float]:
    target = "ipv4:" + ",".join(s.grpc_target for s in servers)
    before = cache_counts(servers)
    gate = asyncio.Semaphore(args.at_once)

    async def gated(client: AsyncLlamaClient, i: int) -> list[tuple[int, float]]:
        async with gate:
            return await conversation(client, systems[i], i, args, affinity)

    async with AsyncLlamaClient(target) as client:
        async with asyncio.timeout(args.way_timeout):
            results = await asyncio.gather(*(gated(client, i) for i in range(args.conversations)))
    after = cache_counts(servers)
    turns = [t for r in results for t in r]
    every = [s for _, s in turns]
    later = [s for turn, s in turns if turn > 0]
    prompt, cached = after[0] - before[0], after[1] - before[1]
    return {
        "ttft_p50": percentile(every, 50) or 0.0,
        "ttft_p95": percentile(every, 95) or 0.0,
        "later_p50": percentile(later, 50) or 0.0,
        "later_p95": percentile(later, 95) or 0.0,
        "cached_share": cached / prompt if prompt else 0.0,
        "turns": float(len(turns)),
    }


def where_from(args: argparse.Namespace) -> str:
    if args.profile_system:
        return "the profile's, evaluated at start"
    return "shared, sent by every call" if args.shared_system else "one per conversation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: embedded SmolLM2")
    parser.add_argument("--conversations", type=int, default=12)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--at-once", type=int, default=4)
    parser.add_argument("--system-tokens", type=int, default=1000)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--shared-system", action="store_true")
    where.add_argument("--profile-system", action="store_true")
    parser.add_argument("--tokens", type=int, default=32, help="max tokens per reply")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads per replica")
    parser.add_argument("--request-timeout", type=float, default=300.0)
    parser.add_argument("--way-timeout", type=float, default=1800.0)
    args = parser.parse_args()
    if min(args.conversations, args.turns, args.at_once, args.system_tokens) < 1:
        parser.error("counts must be positive")
    logging.basicConfig(level=logging.ERROR)
    model_path = args.model or embedded_model_path()
    context = args.system_tokens + args.turns * (48 + args.tokens) + 256
    print(
        f"{model_path.name}: {REPLICAS} replicas x {args.threads} thread(s), "
        f"{args.conversations} conversations x {args.turns} turns, {args.at_once} at a time, "
        f"~{args.system_tokens}-token system prompt "
        f"({where_from(args)}), "
        f"{args.tokens} tokens a reply, temperature 0"
    )
    ways: dict[str, dict[str, float]] = {}
    for name, affinity in (("round robin", False), ("affinity", True)):
        profile, systems = conversation_systems(
            model_path, args, f"{'affinity' if affinity else 'rr'}-{time.time_ns()}"
        )
        with contextlib.ExitStack() as stack:
            servers = [
                stack.enter_context(
                    running_server(
                        model_path,
                        parallel=args.at_once,
                        context_size=context,
                        extra_config={
                            "engine": {"threads": args.threads},
                            "server": {"logLevel": "WARNING"},
                            **({"prompt": {"system": profile}} if profile else {}),
                        },
                    )
                )
                for _ in range(REPLICAS)
            ]
            ways[name] = asyncio.run(run_way(servers, systems, args, affinity))
        row = ways[name]
        print(
            f"{name:12} TTFT p50 {row['ttft_p50'] * 1000:6.0f} ms  p95 "
            f"{row['ttft_p95'] * 1000:6.0f} ms | turns 2+: p50 {row['later_p50'] * 1000:6.0f} "
            f"ms  p95 {row['later_p95'] * 1000:6.0f} ms | prompt tokens from cache "
            f"{row['cached_share']:.0%} ({row['turns']:.0f} turns)",
            flush=True,
        )
    rr, aff = ways["round robin"], ways["affinity"]
    print(
        f"affinity / round robin: TTFT p50 {aff['ttft_p50'] / rr['ttft_p50']:.2f}, "
        f"p95 {aff['ttft_p95'] / rr['ttft_p95']:.2f}; turns 2+ p50 "
        f"{aff['later_p50'] / rr['later_p50']:.2f}, p95 {aff['later_p95'] / rr['later_p95']:.2f}"
    )


if __name__ == "__main__":
    main()
