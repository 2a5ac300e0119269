"""GenerationStream: the asyncio side of one request (TextDelta events, then one Finished)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .types import Finished, GenerationEvent

if TYPE_CHECKING:
    from .jobs import Job
    from .scheduler import Scheduler


class GenerationStream:
    """Async iterator over one request's events; ends after the Finished event.

    Cancelling (cancel(), aclose(), or cancelling the task awaiting the next event) ends the
    request with `cancelled` and frees its sequence at the scheduler's next step. A stream
    dropped without being closed cancels itself when it is garbage collected.
    """

    def __init__(self, job: Job, scheduler: Scheduler) -> None:
        self._job = job
        self._scheduler = scheduler
        self._queue = job.sink.queue
        self._done = False
        self._cancel_sent = False

    @property
    def request_id(self) -> str:
        return self._job.request.request_id

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> GenerationEvent:
        if self._done:
            raise StopAsyncIteration
        try:
            event = await self._queue.get()
        except asyncio.CancelledError:
            self.cancel()
            raise
        if isinstance(event, Finished):
            self._done = True
        return event

    def cancel(self) -> None:
        """Ask the engine to stop this request; idempotent. Events already queued stay readable."""
        if not self._cancel_sent and not self._done:
            self._cancel_sent = True
            self._scheduler.cancel(self._job)

    async def aclose(self) -> None:
        self.cancel()

    def __del__(self) -> None:
        if not self._cancel_sent and not self._done:
            self._cancel_sent = True
            self._scheduler.cancel(self._job, wake=False)
