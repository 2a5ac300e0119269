"""One process whose main thread runs every bare llama_decode loop of a bench.

libgomp (llama.cpp's CPU threads) keeps a team of worker threads for each thread that has
started a parallel region. Once a process holds more OpenMP threads than there are CPUs, it
stops spinning at barriers and sleeps instead, and llama.cpp, which meets a barrier after
every operation of its graph, then decodes two to three times slower. On 2 vCPUs the engine
decoded one sequence at 84 tok/s, and at 27-31 tok/s once a bare loop had run on another
thread of the same process. So the ceilings run here, in a process of their own and on its
main thread only, and the process under test never calls llama_decode on a second thread.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class DecodeWorker:
    """A single spawned worker process; close() stops it (by pid, if it must). Use with
    contextlib.closing."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn")
        )

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._pool.submit(fn, *args, **kwargs).result()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        # A worker still inside a long loop (Ctrl-C, a timeout) is killed rather than waited for.
        processes = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=10)
