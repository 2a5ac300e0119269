"""The preparation pool: results and errors come back, a bound refuses floods, stacks are deep."""

from __future__ import annotations

import asyncio
import json
import sys
import threading

import pytest
from sentiric_inference.errors import OverloadedError
from sentiric_inference.serving.preparing import Preparer


async def test_results_and_exceptions_come_back_to_the_caller() -> None:
    pool = Preparer(2, max_pending=8)
    try:
        assert await pool.run(lambda: threading.current_thread().name) != "MainThread"
        with pytest.raises(ZeroDivisionError):
            await pool.run(lambda: 1 // 0)
        assert pool.pending == 0
    finally:
        pool.close()


async def test_more_pending_work_than_the_bound_is_refused() -> None:
    pool = Preparer(1, max_pending=2)
    gate = threading.Event()
    try:
        first = asyncio.ensure_future(pool.run(gate.wait))
        second = asyncio.ensure_future(pool.run(gate.wait))
        await asyncio.sleep(0.05)
        with pytest.raises(OverloadedError):
            await pool.run(lambda: None)
        gate.set()
        assert await asyncio.wait_for(asyncio.gather(first, second), 5) == [True, True]
    finally:
        gate.set()
        pool.close()


async def test_a_cancelled_callers_result_is_discarded() -> None:
    pool = Preparer(1, max_pending=4)
    gate = threading.Event()
    discarded: list[str] = []
    try:
        task = asyncio.ensure_future(
            pool.run(lambda: gate.wait() and "resource", discard=discarded.append)
        )
        await asyncio.sleep(0.05)
        task.cancel()
        gate.set()
        for _ in range(100):
            if discarded:
                break
            await asyncio.sleep(0.01)
        assert discarded == ["resource"]
    finally:
        gate.set()
        pool.close()


async def test_workers_recurse_far_deeper_than_a_default_stack_allows() -> None:
    # json.loads recurses in C like llama.cpp's grammar parser does on a deep grammar; at
    # this depth it overflows a default 8 MiB thread stack (SIGSEGV, measured).
    pool = Preparer(1, max_pending=1)
    limit = sys.getrecursionlimit()
    try:

        def deep() -> bool:
            sys.setrecursionlimit(1_000_000)
            try:
                depth = 100_000
                return isinstance(json.loads("[" * depth + "]" * depth), list)
            finally:
                sys.setrecursionlimit(limit)

        assert await asyncio.wait_for(pool.run(deep), 30)
    finally:
        sys.setrecursionlimit(limit)
        pool.close()
