"""Sampling cost per decode step: the vocabulary's size, N sequences, and sampling threads.

After each llama_decode the engine samples one token per sequence with that request's chain
(temperature, top-k, top-p, min-p, as a chat request sets them). llama_sampler_sample first
copies the row's logits into a candidate array as long as the vocabulary, so the cost grows
with it: SmolLM2 has 49,152 tokens, Qwen 2.5 151,936. On a GPU the decode step of a small
model takes a few milliseconds, so serial sampling on the CPU can cost as much as the step.
This bench times the engine's own RowSampler (engine/row_sampling.py) over one step's rows
with 1 and more threads, alternating, on a generated model whose vocabulary is padded to each
size (tests/support/tiny_model.py; the model only has to produce logits rows). It also times
the single-thread step without the UTF-8 guard (engine/utf8_guard.py), so the guard's cost
is printed beside it.

    .venv/bin/python bench/sampling.py [--vocab 49152 151936] [--seqs 8 32] [--threads 1 2]
                                       [--reps 200]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sentiric_inference.engine.cpus import available_cpus
from sentiric_inference.engine.native import Batch, Context, Model, init_backend
from sentiric_inference.engine.row_sampling import RowSampler
from sentiric_inference.engine.sampling import build_chain, free_chain
from sentiric_inference.engine.types import SamplingParams

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support.tiny_model
from tests.support.tiny_model import TinyDims, write_tiny_qwen2_gguf

CHAT = SamplingParams(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, seed=7)


NO_GUARD = "1, no guard"


def step_times(
    model_path: Path, n_seqs: int, threads: list[int], reps: int
) -> dict[int | str, float]:
    """Median seconds to sample all n_seqs rows of one step, per sampling thread count (and
    for one thread without the UTF-8 guard, keyed NO_GUARD)."""
    model = Model(model_path, gpu_layers=0)
    ctx = Context(
        model,
        n_ctx=64 * n_seqs,
        n_seq=n_seqs,
        n_batch=max(64, n_seqs),
        threads=1,
        flash_attention="auto",
    )
    batch = Batch(max(64, n_seqs))
    chains = [build_chain(model, CHAT, context_size=64) for _ in range(n_seqs)]
    plain = [build_chain(model, CHAT, context_size=64, utf8_guard=False) for _ in range(n_seqs)]
    samplers = {k: RowSampler(ctx, k) for k in threads}
    try:
        for seq in range(n_seqs):
            batch.add(10 + seq, 0, seq, True)
        if ctx.decode(batch) != 0:
            raise RuntimeError("llama_decode failed")
        rows = [(chain, i) for i, chain in enumerate(chains)]
        plain_rows = [(chain, i) for i, chain in enumerate(plain)]
        variants: list[int | str] = [*threads, NO_GUARD]
        times: dict[int | str, list[float]] = {k: [] for k in variants}
        for rep in range(reps):
            # Alternate the order, so drift on a shared host hits every variant alike.
            for k in variants if rep % 2 == 0 else variants[::-1]:
                start = time.perf_counter()
                if k == NO_GUARD:
                    samplers[1 if 1 in samplers else threads[0]].sample(plain_rows)
                else:
                    samplers[int(k)].sample(rows)
                times[k].append(time.perf_counter() - start)
        return {k: statistics.median(t) for k, t in times.items()}
    finally:
        for sampler in samplers.values():
            sampler.close()
        for chain in chains + plain:
            free_chain(chain)
        batch.close()
        ctx.close()
        model.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, nargs="+", default=[49_152, 151_936])
    parser.add_argument("--seqs", type=int, nargs="+", default=[8, 32])
    parser.add_argument(
        "--threads", type=int, nargs="+", default=None, help="default: 1 and one per CPU (<= 8)"
    )
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()
    threads = args.threads or sorted({1, min(8, available_cpus())})
    if min(*args.vocab, *args.seqs, *threads, args.reps) < 1:
        parser.error("counts must be positive")
    logging.basicConfig(level=logging.ERROR)
    init_backend()
    print(f"sampling threads {threads}, {args.reps} reps, chain: {CHAT}")
    with tempfile.TemporaryDirectory(prefix="sentiric-sampling-") as scratch:
        for vocab in args.vocab:
            path = write_tiny_qwen2_gguf(
                Path(scratch) / f"vocab-{vocab}.gguf", dims=TinyDims(n_vocab=vocab)
            )
            for n in args.seqs:
                medians = step_times(path, n, threads, args.reps)
                base = medians[threads[0]]
                cells = "  ".join(
                    f"{k} thread(s) {t * 1e3:6.2f} ms/step ({t * 1e3 / n:.3f} ms/token, "
                    f"{base / t:4.2f}x)"
                    for k, t in medians.items()
                    if k != NO_GUARD
                )
                unguarded = medians[NO_GUARD]
                cells += (
                    f"  | 1 thread without the UTF-8 guard {unguarded * 1e3:6.2f} ms/step "
                    f"(guard costs {(base - unguarded) * 1e6 / n:.1f} us/token)"
                )
                print(f"vocab {vocab:>7,} N={n:<3} {cells}", flush=True)


if __name__ == "__main__":
    main()
