"""Prefill ceiling: tokens/s of bare llama_decode over N prompts in one batch (no server).

bench/ceiling.py times the decode phase only; a server's time to first token is bounded by
how fast it can run the prompts through the model, so the bench measures that side too.
"""

from __future__ import annotations

import time
from pathlib import Path

from sentiric_inference.engine.native import Batch, Context, Model

FILLER = "The history of the city begins with a small settlement on the river, where traders"


def measure_prefill(
    model_path: Path,
    n_seqs: int,
    prompt_tokens: int,
    threads: int,
    *,
    context_size: int,
    batch_size: int,
) -> float:
    """Prompt tokens/s of n_seqs distinct prompts of prompt_tokens tokens, one logit each.

    The context has the server's shape (context_size cells per sequence, n_seqs sequences)
    and the prompts go through in batch_size chunks, as the scheduler admits them.
    """
    model = Model(model_path, gpu_layers=-1)
    ctx = Context(
        model,
        n_ctx=context_size * n_seqs,
        n_seq=n_seqs,
        n_batch=batch_size,
        threads=threads,
        flash_attention="auto",
    )
    batch = Batch(batch_size)
    try:
        base = model.tokenize(FILLER, add_special=False, parse_special=False)
        # A different first token per sequence, like distinct user messages.
        prompts = [
            ([11 + seq] + base * (prompt_tokens // len(base) + 1))[:prompt_tokens]
            for seq in range(n_seqs)
        ]
        # (sequence, position, token) in admission order, cut into batch_size chunks.
        work = [
            (seq, pos, tok) for seq, prompt in enumerate(prompts) for pos, tok in enumerate(prompt)
        ]
        start = time.perf_counter()
        for offset in range(0, len(work), batch_size):
            batch.clear()
            for seq, pos, tok in work[offset : offset + batch_size]:
                batch.add(tok, pos, seq, pos == prompt_tokens - 1)
            rc = ctx.decode(batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc}")
        return len(work) / (time.perf_counter() - start)
    finally:
        batch.close()
        ctx.close()
        model.close()
