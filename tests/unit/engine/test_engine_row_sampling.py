"""RowSampler: rows sampled on several threads come back in order, each from its own chain.

The context here is a stand-in that records calls: llama.cpp is not needed to check the
hand-off between threads (tests/integration/engine/test_engine_batching.py runs it on a real
model).
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest
from sentiric_inference.engine.native import Context
from sentiric_inference.engine.row_sampling import (
    MAX_AUTO_THREADS,
    RowSampler,
    default_sampling_threads,
    split_rows,
)


class RecordingContext:
    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[tuple[str, int, str]] = []
        self.lock = threading.Lock()
        self.fail_on = fail_on
        self.finished_rows: set[int] = set()

    def ready_logits(self, index: int) -> None:
        with self.lock:
            self.calls.append(("ready", index, threading.current_thread().name))

    def sample(self, chain: Any, index: int) -> int:
        with self.lock:
            self.calls.append(("sample", index, threading.current_thread().name))
        time.sleep(0.002)  # long enough for the workers to overlap
        if index == self.fail_on:
            raise RuntimeError(f"row {index} failed")
        with self.lock:
            self.finished_rows.add(index)
        return int(chain) * 1000 + index


def _sampler(ctx: RecordingContext, threads: int) -> RowSampler:
    return RowSampler(cast(Context, ctx), threads)


def test_split_rows_keeps_order_and_balances_sizes() -> None:
    groups = split_rows(list(range(10)), 4)
    assert [list(g) for g in groups] == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert [list(g) for g in split_rows([1, 2], 2)] == [[1], [2]]


@pytest.mark.parametrize(
    ("gpu_offload", "cpus", "expected"),
    [(False, 64, 1), (True, 1, 1), (True, 4, 4), (True, 64, MAX_AUTO_THREADS)],
)
def test_default_threads_only_spread_when_the_model_is_on_a_gpu(
    gpu_offload: bool, cpus: int, expected: int
) -> None:
    assert default_sampling_threads(gpu_offload=gpu_offload, cpus=cpus) == expected


def test_rows_come_back_in_order_from_several_threads() -> None:
    ctx = RecordingContext()
    sampler = _sampler(ctx, 3)
    try:
        rows = [(chain, index) for index, chain in enumerate(range(7, 15))]
        assert sampler.sample(rows) == [chain * 1000 + index for chain, index in rows]
    finally:
        sampler.close()
    # The logits were readied once, on the calling thread, before any worker read a row.
    assert ctx.calls[0] == ("ready", 0, threading.current_thread().name)
    assert [c[0] for c in ctx.calls].count("ready") == 1
    threads = {name for kind, _, name in ctx.calls if kind == "sample"}
    assert len(threads) == 3
    assert threading.current_thread().name in threads


def test_one_thread_or_few_rows_stay_on_the_calling_thread() -> None:
    for threads, n_rows in ((1, 8), (4, 3)):
        ctx = RecordingContext()
        sampler = _sampler(ctx, threads)
        try:
            assert sampler.sample([(1, i) for i in range(n_rows)]) == [
                1000 + i for i in range(n_rows)
            ]
        finally:
            sampler.close()
        assert {name for _, _, name in ctx.calls} == {threading.current_thread().name}
        assert all(kind == "sample" for kind, _, _ in ctx.calls)


def test_a_failing_row_raises_only_after_every_worker_is_done() -> None:
    ctx = RecordingContext(fail_on=0)
    sampler = _sampler(ctx, 2)
    try:
        with pytest.raises(RuntimeError, match="row 0 failed"):
            sampler.sample([(1, i) for i in range(8)])
        # The worker's half (rows 4-7) finished before the error reached the caller, so the
        # scheduler can free the chains right away.
        assert {4, 5, 6, 7} <= ctx.finished_rows
    finally:
        sampler.close()
