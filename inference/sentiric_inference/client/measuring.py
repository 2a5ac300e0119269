"""Latency and throughput figures for load runs (percentiles, per-stream and aggregate rates)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), interpolated linearly between ranks; None when empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Sample:
    """One request of a load run: its outcome and client-side timing."""

    # "OK" or the gRPC status code name (or HTTP status) of a failed call.
    status: str
    finish_reason: str | None = None
    time_to_first_token: float | None = None
    duration: float = 0.0
    completion_tokens: int = 0

    @property
    def stream_tokens_per_second(self) -> float | None:
        """Decode speed after the first token, as one client sees it."""
        if self.time_to_first_token is None or self.completion_tokens < 2:
            return None
        decode_time = self.duration - self.time_to_first_token
        return (self.completion_tokens - 1) / decode_time if decode_time > 0 else None


@dataclass(frozen=True, slots=True)
class LoadReport:
    """Summary of a load run; `wall_time` spans the first request's start to the last end."""

    concurrent: int
    samples: tuple[Sample, ...]
    wall_time: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> tuple[Sample, ...]:
        return tuple(s for s in self.samples if s.status == "OK")

    @property
    def errors(self) -> dict[str, int]:
        return dict(Counter(s.status for s in self.samples if s.status != "OK"))

    @property
    def finish_reasons(self) -> dict[str, int]:
        return dict(Counter(s.finish_reason for s in self.ok if s.finish_reason))

    def ttft(self, q: float) -> float | None:
        ttfts = [t for s in self.ok if (t := s.time_to_first_token) is not None]
        return percentile(ttfts, q)

    def stream_tokens_per_second(self, q: float) -> float | None:
        rates = [r for s in self.ok if (r := s.stream_tokens_per_second) is not None]
        return percentile(rates, q)

    @property
    def aggregate_tokens_per_second(self) -> float | None:
        tokens = sum(s.completion_tokens for s in self.ok)
        return tokens / self.wall_time if self.wall_time > 0 and tokens else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures (seconds and tokens/s)."""
        return {
            "concurrent": self.concurrent,
            "requests": len(self.samples),
            "succeeded": len(self.ok),
            "errors_by_status": self.errors,
            "finish_reasons": self.finish_reasons,
            "wall_time_s": self.wall_time,
            "ttft_s": {f"p{q}": self.ttft(q) for q in (50, 95, 99)},
            "stream_tokens_per_s": {f"p{q}": self.stream_tokens_per_second(q) for q in (50, 5, 1)},
            "aggregate_tokens_per_s": self.aggregate_tokens_per_second,
            "completion_tokens": sum(s.completion_tokens for s in self.ok),
            **self.extra,
        }

    def format_text(self) -> str:
        """A human-readable table of the same figures."""

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:.1f} ms"

        def rate(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f} tok/s"

        lines = [
            f"requests          {len(self.samples)} ({len(self.ok)} ok) at concurrency "
            f"{self.concurrent}, {self.wall_time:.2f} s",
            f"TTFT              p50 {ms(self.ttft(50))}  p95 {ms(self.ttft(95))}  "
            f"p99 {ms(self.ttft(99))}",
            f"per-stream rate   p50 {rate(self.stream_tokens_per_second(50))}  "
            f"p5 {rate(self.stream_tokens_per_second(5))}",
            f"aggregate rate    {rate(self.aggregate_tokens_per_second)}",
            f"finish reasons    {_counts(self.finish_reasons)}",
            f"errors by status  {_counts(self.errors)}",
        ]
        return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"
