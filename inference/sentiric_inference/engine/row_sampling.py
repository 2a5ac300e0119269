"""Sample a step's output rows, on several threads when the CPU would otherwise sit idle.

llama_sampler_sample copies one row of logits into a candidate array the size of the
vocabulary and runs the request's chain over it, which costs ~0.1 ms a token for SmolLM2's
49,152 tokens and ~0.35 ms for Qwen 2.5's 151,936 on one core of the machine in
docs/performance.md (bench/sampling.py). With the model on a GPU, a decode step of 32
sequences takes a few milliseconds while sampling them one after another would take more than
ten, on one core of many idle ones. Every request has its own chain, ctypes releases the GIL
for the call, and the context only reads its logits once they are ready, so rows can be
sampled in parallel. On a CPU-only pod the cores belong to llama.cpp's own threads, and the
default keeps sampling on the scheduler thread.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .native import Context
from .sampling import Chain

# A worker gets at least this many rows: each hand-off costs a wake-up and a future.
MIN_ROWS_PER_THREAD = 2
# Enough for 32 sequences' rows at a few per thread; more threads only add hand-offs.
MAX_AUTO_THREADS = 8

T = TypeVar("T")


def default_sampling_threads(*, gpu_offload: bool, cpus: int) -> int:
    """`engine.samplingThreads: 0`: spare cores when the model runs on a GPU, else one."""
    return max(1, min(MAX_AUTO_THREADS, cpus)) if gpu_offload else 1


def split_rows(rows: Sequence[T], parts: int) -> list[Sequence[T]]:
    """`rows` cut into `parts` contiguous groups whose sizes differ by at most one."""
    size, extra = divmod(len(rows), parts)
    groups: list[Sequence[T]] = []
    start = 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        groups.append(rows[start:end])
        start = end
    return groups


class RowSampler:
    """Samples every output row of a step; `threads` includes the calling thread."""

    def __init__(self, ctx: Context, threads: int) -> None:
        self._ctx = ctx
        self._threads = max(1, threads)
        self._pool = (
            ThreadPoolExecutor(self._threads - 1, thread_name_prefix="sentiric-sampler")
            if self._threads > 1
            else None
        )

    @property
    def threads(self) -> int:
        return self._threads

    def sample(self, rows: Sequence[tuple[Chain, int]]) -> list[int]:
        """One token for each (request's chain, output row index), in the order given."""
        parts = min(self._threads, len(rows) // MIN_ROWS_PER_THREAD)
        if self._pool is None or parts < 2:
            return self._sample_group(rows)
        # Reading the first row makes llama.cpp wait for the backend and apply any pending
        # reordering of the outputs, both of which write to the context: once, on this thread.
        self._ctx.ready_logits(rows[0][1])
        groups = split_rows(rows, parts)
        futures = [self._pool.submit(self._sample_group, group) for group in groups[1:]]
        try:
            tokens = self._sample_group(groups[0])
        finally:
            # Never return (or raise) while a worker still uses a chain the caller may free.
            concurrent.futures.wait(futures)
        for future in futures:
            tokens.extend(future.result())
        return tokens

    def _sample_group(self, rows: Sequence[tuple[Chain, int]]) -> list[int]:
        return [self._ctx.sample(chain, index) for chain, index in rows]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
