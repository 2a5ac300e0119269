"""KV cache layout and occupancy: what one unified cell pool costs the decode step.

The engine keeps every sequence in one unified KV cache (docs/architecture.md, The engine's
step): a prefix copied with llama_memory_seq_cp shares its cells, and any sequence may take
any free cell. The price is that llama.cpp builds each step's attention over the whole used
range of the pool, so every query scans the cells of every other sequence (masked out, but
visited). With a stream per sequence (llama.cpp's kv_unified = false) a query scans only its
own stream; a prefix is then copied between streams (whole-stream copies only) instead of
shared.

This bench times a bare batched llama_decode loop (no server, no sampling), a fresh context
per run, the two variants of a comparison alternating run by run:
  distinct   unified vs streams: every sequence holds its own prompt of --prompts tokens
             (conversations that share nothing), then decodes --tokens steps;
  shared     unified vs streams: one --shared-prefix-token system prompt evaluated once and
             given to every sequence (shared cells / stream copies), plus a 40-token question;
  idle       unified pool with vs without --idle-cells cells held by one more sequence that
             does not decode (a finished request's prefix cache, kept for reuse), the active
             sequences on 60-token prompts: the price every step pays for keeping it.
Printed: median tokens/s per variant and the median of the per-run ratios (second / first).

    .venv/bin/python bench/kv_layout.py [--seqs 4 8] [--prompts 60 300] [--shared-prefix 1000]
                                        [--idle-cells 1000 3000] [--model PATH]
"""

from __future__ import annotations

import argparse
import functools
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from ceiling import decode_steps, repeated_tokens
from sentiric_inference.engine.native import Batch, Context, Model, resolve_threads
from sentiric_inference.models.embedded import embedded_model_path

CONTEXT_SIZE = 2048  # cells per sequence, as bench_server's
BATCH_SIZE = 512
QUESTION_TOKENS = 40
IDLE_PROMPT_TOKENS = 60  # the active sequences' prompts in the idle-cells workload
TEXT = "The keeper of the lighthouse wrote down every ship that passed the northern rocks. "


def _tokens(model: Model, n: int, offset: int = 0) -> list[int]:
    return repeated_tokens(model, TEXT, n, offset)


def _prefill(ctx: Context, batch: Batch, seq: int, tokens: list[int], start: int) -> None:
    for i in range(0, len(tokens), BATCH_SIZE):
        batch.clear()
        batch.add_span(tokens[i : i + BATCH_SIZE], start + i, seq, logits_last=True)
        if ctx.decode(batch) != 0:
            raise RuntimeError("prefill failed")


def _decode_rate(ctx: Context, batch: Batch, n_seqs: int, start: int, steps: int) -> float:
    began = time.perf_counter()
    decode_steps(ctx, batch, n_seqs, start, steps)
    return n_seqs * steps / (time.perf_counter() - began)


def run_once(
    model: Model,
    n_seqs: int,
    threads: int,
    steps: int,
    unified: bool,
    *,
    prompt: int = 0,
    shared_prefix: int = 0,
    idle: int = 0,
    idle_room: int = 0,
) -> float:
    """Tokens/s of n_seqs sequences decoding in one fresh context.

    With `idle_room`, the context has one more sequence and that many more cells (so runs
    with and without idle cells share one shape); that sequence holds `idle` cells, evaluated
    first (as an older request's cache would be) and left out of the decode steps.
    """
    extra = 1 if idle_room else 0
    ctx = Context(
        model,
        n_ctx=CONTEXT_SIZE * n_seqs + idle_room,
        n_seq=n_seqs + extra,
        n_batch=BATCH_SIZE,
        threads=threads,
        flash_attention="auto",
        unified=unified,
    )
    batch = Batch(BATCH_SIZE)
    try:
        if idle:
            _prefill(ctx, batch, n_seqs, _tokens(model, idle, offset=3), 0)
        if shared_prefix:
            _prefill(ctx, batch, 0, _tokens(model, shared_prefix), 0)
            for seq in range(1, n_seqs):
                # Across streams llama.cpp copies whole streams only.
                ctx.seq_cp(0, seq, 0 if unified else -1, shared_prefix if unified else -1)
            for seq in range(n_seqs):
                question = _tokens(model, QUESTION_TOKENS, offset=7 * seq + 1)
                _prefill(ctx, batch, seq, question, shared_prefix)
            start = shared_prefix + QUESTION_TOKENS
        else:
            for seq in range(n_seqs):
                _prefill(ctx, batch, seq, _tokens(model, prompt, offset=seq), 0)
            start = prompt
        return _decode_rate(ctx, batch, n_seqs, start, steps)
    finally:
        batch.close()
        ctx.close()


def compare(
    label: str,
    reps: int,
    first: tuple[str, Callable[[], float]],
    second: tuple[str, Callable[[], float]],
) -> None:
    rates: tuple[list[float], list[float]] = ([], [])
    for rep in range(reps):
        # Alternate which variant goes first, so drift on a shared host hits both alike.
        for i in (0, 1) if rep % 2 == 0 else (1, 0):
            rates[i].append((first, second)[i][1]())
    ratio = statistics.median(b / a for a, b in zip(*rates, strict=True))
    print(
        f"{label:36} {first[0]} {statistics.median(rates[0]):7.1f} tok/s   {second[0]} "
        f"{statistics.median(rates[1]):7.1f} tok/s   {second[0]}/{first[0]} {ratio:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: embedded SmolLM2")
    parser.add_argument("--seqs", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--prompts", type=int, nargs="*", default=[60, 300], help="none: skip")
    parser.add_argument("--shared-prefix", type=int, default=1000, help="0 skips the workload")
    parser.add_argument(
        "--idle-cells", type=int, nargs="*", default=[1000, 3000], help="none skips the workload"
    )
    parser.add_argument("--tokens", type=int, default=64, help="decode steps per run")
    parser.add_argument("--threads", type=int, default=0, help="0 = one per core")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    longest = max([*args.prompts, args.shared_prefix + QUESTION_TOKENS])
    if longest + args.tokens > CONTEXT_SIZE or min(*args.seqs, args.tokens, args.reps) < 1:
        parser.error(f"positive counts, and prompts + tokens within {CONTEXT_SIZE} cells")
    logging.basicConfig(level=logging.ERROR)
    model_path = args.model or embedded_model_path()
    threads = resolve_threads(args.threads)
    model = Model(model_path, gpu_layers=0)
    print(f"{model_path.name}, {threads} threads, {args.tokens} decode steps, {args.reps} reps")
    try:
        for n in args.seqs:
            run = functools.partial(run_once, model, n, threads, args.tokens)
            for prompt in args.prompts:
                compare(
                    f"N={n} distinct {prompt}-token prompts",
                    args.reps,
                    ("unified", functools.partial(run, True, prompt=prompt)),
                    ("streams", functools.partial(run, False, prompt=prompt)),
                )
            if args.shared_prefix:
                prefix = args.shared_prefix
                compare(
                    f"N={n} shared {prefix}-token prefix",
                    args.reps,
                    ("unified", functools.partial(run, True, shared_prefix=prefix)),
                    ("streams", functools.partial(run, False, shared_prefix=prefix)),
                )
            for idle in args.idle_cells:
                compare(
                    f"N={n} unified, {idle} idle cells",
                    args.reps,
                    (
                        "none",
                        functools.partial(run, True, prompt=IDLE_PROMPT_TOKENS, idle_room=idle),
                    ),
                    (
                        "idle",
                        functools.partial(
                            run, True, prompt=IDLE_PROMPT_TOKENS, idle=idle, idle_room=idle
                        ),
                    ),
                )
    finally:
        model.close()


if __name__ == "__main__":
    main()
