"""One request's life inside the scheduler, and how its events reach the asyncio side."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from .drafting import PromptLookup
from .text import TextAssembler
from .types import GenerationEvent, GenerationRequest


@dataclass(eq=False, slots=True)
class Sink:
    """Where a request's events go: an asyncio.Queue owned by the submitting event loop."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[GenerationEvent]


@dataclass(eq=False, slots=True)
class Job:
    """A request from submit() to its Finished event. Mutated only by the scheduler thread."""

    request: GenerationRequest
    chain: Any  # llama_sampler chain (ctypes pointer), freed when the job finishes; None after
    sink: Sink
    assembler: TextAssembler
    seq: int = -1  # sequence slot once admitted
    prompt_done: int = 0  # prompt tokens already in the KV cache
    cached_prompt: int = 0  # of which reused from the prefix cache
    generated: int = 0
    # The phase: False while the prompt is prefilling, True once a token was sampled.
    generating: bool = False
    pending: int = 0  # while generating: the sampled token not yet fed back
    out_index: int = -1  # this step's logits row in the batch; -1 = nothing to sample
    in_batch: int = 0  # tokens this job put in the current batch
    draft: list[int] = field(default_factory=list)  # guessed tokens after `pending` this step
    lookup: PromptLookup | None = None  # its history, for drafting; built on first use
    cancelled: bool = False
    finished: bool = False
    admitted_at: int = field(default=0)  # admission order, for choosing a decode-failure victim

    @property
    def prompt(self) -> tuple[int, ...]:
        return self.request.prompt_tokens


class Outbox:
    """Events produced in one scheduler step, handed to each event loop in one callback.

    One call_soon_threadsafe per loop per step (instead of one per token) keeps the wake-ups of
    the asyncio thread to one per decode step.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[Sink, GenerationEvent]]] = {}

    def put(self, sink: Sink, event: GenerationEvent) -> None:
        self._pending.setdefault(sink.loop, []).append((sink, event))

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for loop, items in pending.items():
            # A loop that has closed has no one left to read its events.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_deliver, items)


def _deliver(items: list[tuple[Sink, GenerationEvent]]) -> None:
    for sink, event in items:
        sink.queue.put_nowait(event)
