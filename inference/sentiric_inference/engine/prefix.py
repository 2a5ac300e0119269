"""Prefix reuse: which sequence slot a new prompt takes, and which cached tokens it keeps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest shared prefix of two token sequences."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass(frozen=True, slots=True)
class SlotView:
    """What the planner needs to know about one sequence slot."""

    seq: int
    cached: Sequence[int]  # tokens this sequence holds in the KV cache, positions 0..n-1
    free: bool
    last_used: int  # larger = used more recently


@dataclass(frozen=True, slots=True)
class SlotChoice:
    """Take `target`; its first `reuse` prompt tokens come from `source`'s KV cells.

    `source == target` means truncate in place (llama_memory_seq_rm of the tail); otherwise the
    target is cleared and the prefix copied (llama_memory_seq_cp), which shares the cells.
    """

    target: int
    source: int
    reuse: int


def choose_slot(prompt: Sequence[int], slots: Sequence[SlotView], *, reuse: bool) -> SlotChoice:
    """Pick the free slot for `prompt` that evaluates the fewest tokens and destroys the least.

    At least the last prompt token is always left to evaluate, because its logits are what the
    first generated token is sampled from. A free slot is reused in place when its whole cache
    leads up to the prompt (a conversation's next turn, a repeated prompt). When the best match
    shares only part of another cache (the chat template's opening, a profile's system prompt),
    the prefix is copied into an empty slot instead, so that other cache (an idle caller's
    history) is still there when its own next turn comes; with no empty slot left, the least
    recently used cache among the best matches is cut, so a popular cached prefix survives
    longest. Raises ValueError when no slot is free (the caller admits only when one is).
    """
    free = [s for s in slots if s.free]
    if not free:
        raise ValueError("no free sequence slot")
    limit = max(len(prompt) - 1, 0)
    empty = [s for s in free if not s.cached]
    if not reuse or limit == 0:
        victim = min(free, key=lambda s: (len(s.cached) > 0, s.last_used))
        return SlotChoice(victim.seq, victim.seq, 0)

    def score(slot: SlotView) -> int:
        return min(common_prefix_len(slot.cached, prompt), limit)

    def loses_nothing(slot: SlotView) -> bool:
        # Cutting it back to the shared part drops nothing another request could reuse: its
        # cache is the start of the prompt, or the prompt is the start of its cache (the same
        # prompt again, followed by its previous answer).
        return common_prefix_len(slot.cached, prompt) == min(len(slot.cached), len(prompt))

    best_free = max(free, key=lambda s: (score(s), -s.last_used))
    best_free_len = score(best_free)
    best_any = max(slots, key=score)
    best_any_len = score(best_any)
    if best_any_len == 0:
        # Nothing to reuse: take an empty slot, else overwrite the least recently used cache.
        victim = min(free, key=lambda s: (len(s.cached) > 0, s.last_used))
        return SlotChoice(victim.seq, victim.seq, 0)
    if best_free_len == best_any_len and (loses_nothing(best_free) or not empty):
        return SlotChoice(best_free.seq, best_free.seq, best_free_len)
    # Copy the prefix (from a busy slot, or an idle one whose cache should stay) into the free
    # slot whose own cache is worth least: an empty one, else the least recently used.
    # (best_any is never the victim: when it is free, an empty slot exists to copy into.)
    victim = min(free, key=lambda s: (score(s) > 0, len(s.cached) > 0, s.last_used))
    return SlotChoice(victim.seq, best_any.seq, best_any_len)


# Waiting for another request's prefill pays off only when it saves at least this many
# prompt tokens: a shared chat-template opening is not worth a step of delay, a shared system
# prompt or RAG block is (a burst of calls opening with one profile's prompt).
MIN_SHARED_PREFILL = 16


def awaits_shared_prefill(
    prompt: Sequence[int],
    reusable_now: int,
    prefilling: Iterable[tuple[Sequence[int], int]],
    *,
    min_gain: int = MIN_SHARED_PREFILL,
) -> bool:
    """True when `prompt` should wait for a prefill already running rather than repeat it.

    `prefilling` holds (prompt, tokens evaluated so far) of the requests whose prompts are
    being evaluated now; `reusable_now` is what the KV cache could give `prompt` today. When
    one of them shares at least `min_gain` more tokens that it has not evaluated yet,
    admitting `prompt` now would compute those tokens a second time in the same steps;
    waiting until they are in the cache lets the admission copy them (seq_cp) instead.
    """
    limit = max(len(prompt) - 1, 0)
    for other, evaluated in prefilling:
        shared = min(common_prefix_len(other, prompt), limit)
        if shared - reusable_now >= min_gain and evaluated < shared:
            return True
    return False


def distinct_cells(caches: Sequence[Sequence[int]]) -> int:
    """KV cells in use when shared prefixes occupy their cells once (a token trie's size).

    llama.cpp's public API no longer reports used cells, and prefixes copied with seq_cp share
    cells, so the count is taken from the token lists: sorted, each list adds its length minus
    its common prefix with the previous one.
    """
    ordered = sorted(tuple(c) for c in caches if c)
    total = 0
    prev: tuple[int, ...] = ()
    for cur in ordered:
        total += len(cur) - common_prefix_len(prev, cur)
        prev = cur
    return total


def idle_caches_to_drop(slots: Sequence[SlotView], limit: int) -> list[int]:
    """Idle slots whose caches go, least recently used first, until idle caches hold at most
    `limit` KV cells of their own.

    Cells an idle cache shares with a busy slot's prefix stay for that slot whatever happens,
    so they do not count. Returns the slots' sequence ids, in the order to drop them.
    """
    busy = [s.cached for s in slots if not s.free and s.cached]
    held_by_busy = distinct_cells(busy)
    kept = sorted((s for s in slots if s.free and s.cached), key=lambda s: s.last_used)
    dropped: list[int] = []
    while kept and distinct_cells(busy + [s.cached for s in kept]) - held_by_busy > limit:
        dropped.append(kept.pop(0).seq)
    return dropped
