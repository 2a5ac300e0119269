"""Helpers for engine tests: read a stream to its end, read a metric."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sentiric_inference.engine import Engine, GenerationStream
from sentiric_inference.engine.types import Finished, TextDelta
from sentiric_inference.metrics import Metrics

# `await make_engine(path, **settings)` (the fixture in conftest.py).
EngineFactory = Callable[..., Awaitable[Engine]]


@dataclass
class Outcome:
    """Everything one stream produced."""

    deltas: list[str] = field(default_factory=list)
    finished: Finished | None = None

    @property
    def text(self) -> str:
        return "".join(self.deltas)


async def collect(stream: GenerationStream, *, seconds: float = 60.0) -> Outcome:
    """Read a stream to its Finished event (bounded in time); checks the event contract."""
    out = Outcome()
    async with asyncio.timeout(seconds):
        async for event in stream:
            assert out.finished is None, "an event arrived after Finished"
            if isinstance(event, TextDelta):
                assert event.text, "empty TextDelta"
                out.deltas.append(event.text)
            else:
                out.finished = event
    assert out.finished is not None, "stream ended without Finished"
    return out


def sample_value(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    """Current value of one sample (counter, gauge, or a histogram's _sum/_count/_bucket)."""
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
