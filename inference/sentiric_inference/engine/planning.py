"""Batch planning: how one llama_decode call's token budget is shared out in a step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# `engine.batchSize: 0`. A GPU evaluates a 512-token chunk in milliseconds; a CPU takes seconds
# (~200 tokens/s for SmolLM2 on 2 vCPUs), during which every stream waits: 64-token chunks cut
# the longest pause inside a reply from 3.5 s to 0.8 s at p95 in bench/conversations.py, for
# the same total tokens/s (docs/performance.md).
GPU_BATCH_SIZE = 512
CPU_BATCH_SIZE = 64


def default_batch_size(*, gpu_offload: bool) -> int:
    return GPU_BATCH_SIZE if gpu_offload else CPU_BATCH_SIZE


@dataclass(frozen=True, slots=True)
class StepPlan:
    """Which generating sequences feed their token, and how many prompt tokens each prefill adds.

    `generating` holds indexes into the caller's list of generating sequences; `prefill` holds
    one chunk length per prefilling sequence, in the caller's order (0 = waits this step).
    """

    generating: tuple[int, ...]
    prefill: tuple[int, ...]

    @property
    def tokens(self) -> int:
        return len(self.generating) + sum(self.prefill)


def plan_step(
    n_generating: int, prefill_remaining: Sequence[int], budget: int, *, rotation: int = 0
) -> StepPlan:
    """Share `budget` batch slots between generating sequences and waiting prompt chunks.

    Generating sequences come first: one token each keeps every stream moving while a long
    prompt is chunked in. Only when more sequences generate than the batch holds (parallel >
    batch size) do some wait; `rotation` picks who starts, so each waits in turn. Prompts are
    filled in admission order, so the oldest request reaches its first token soonest.
    """
    if budget <= 0:
        raise ValueError("budget must be positive")
    if n_generating <= budget:
        generating = tuple(range(n_generating))
    else:
        start = rotation % n_generating
        generating = tuple((start + i) % n_generating for i in range(budget))
    left = budget - len(generating)
    chunks: list[int] = []
    for remaining in prefill_remaining:
        take = min(remaining, left)
        chunks.append(take)
        left -= take
    return StepPlan(generating, tuple(chunks))
