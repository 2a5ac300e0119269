"""Worker threads that prepare requests off the event loop.

Rendering a template, tokenizing, checking a JSON schema and building and parsing its grammar
take CPU time proportional to what a client sent: done on the event loop, a large request
froze /health and every live stream for seconds. Here they run on a few threads of their own,
each with a stack large enough for llama.cpp's recursive grammar parser on any grammar the
limits allow (the main thread's 8 MiB was not: a deep grammar overflowed it, SIGSEGV).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sentiric_inference.errors import OverloadedError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Virtual address space, committed only as the recursion touches it.
WORKER_STACK_BYTES = 256 * 1024 * 1024
_STACK_SIZE_LOCK = threading.Lock()


@dataclass(eq=False, slots=True)
class _Work(Generic[T]):
    fn: Callable[[], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    # Releases a result nobody waits for any more (the caller was cancelled meanwhile).
    discard: Callable[[T], None] | None


class Preparer:
    """A fixed pool of large-stack threads; `run` awaits one function's result on it.

    At most `max_pending` calls wait or run at once; more are refused with OverloadedError,
    so a flood of heavy requests queues a bounded amount of work and memory.
    """

    def __init__(
        self, workers: int, *, max_pending: int, stack_bytes: int = WORKER_STACK_BYTES
    ) -> None:
        self._queue: queue.SimpleQueue[_Work[Any] | None] = queue.SimpleQueue()
        self._max_pending = max_pending
        self._pending = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        for index in range(workers):
            thread = threading.Thread(
                target=self._serve, name=f"sentiric-prepare-{index}", daemon=True
            )
            # threading.stack_size is process-wide: set it only around this start.
            with _STACK_SIZE_LOCK:
                previous = threading.stack_size(stack_bytes)
                try:
                    thread.start()
                finally:
                    threading.stack_size(previous)
            self._threads.append(thread)

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, fn: Callable[[], T], *, discard: Callable[[T], None] | None = None) -> T:
        """fn() on a worker; its exception is raised here. Cancelling the caller does not
        stop fn, but its result then goes to `discard` instead of being lost."""
        with self._lock:
            if self._pending >= self._max_pending:
                raise OverloadedError(
                    f"{self._pending} requests are already being prepared; retry later"
                )
            self._pending += 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Work(fn, loop, future, discard))
        return await future

    def close(self) -> None:
        """Let the workers finish what they hold and exit (idempotent)."""
        for _ in self._threads:
            self._queue.put(None)
        self._threads = []

    def _serve(self) -> None:
        while (work := self._queue.get()) is not None:
            try:
                if work.future.cancelled():
                    continue
                try:
                    result = work.fn()
                except BaseException as exc:  # handed to the awaiting caller
                    work.loop.call_soon_threadsafe(_set_exception, work.future, exc)
                else:
                    work.loop.call_soon_threadsafe(_set_result, work, result)
            except RuntimeError:
                # The event loop is closed (the process is stopping): nobody is waiting.
                log.debug("a prepared request was dropped: the event loop is closed")
            finally:
                with self._lock:
                    self._pending -= 1


def _set_result(work: _Work[T], result: T) -> None:
    if work.future.cancelled():
        if work.discard is not None:
            work.discard(result)
        return
    work.future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.cancelled():
        future.set_exception(exc)
