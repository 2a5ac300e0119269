"""Prefix reuse planning: which slot a prompt takes and how many cached tokens it keeps."""

from __future__ import annotations

import pytest
from sentiric_inference.engine.prefix import (
    SlotChoice,
    SlotView,
    awaits_shared_prefill,
    choose_slot,
    common_prefix_len,
    distinct_cells,
    idle_caches_to_drop,
)


@pytest.mark.parametrize(
    ("a", "b", "n"),
    [((), (1,), 0), ((1, 2, 3), (1, 2, 4), 2), ((1, 2), (1, 2, 3), 2), ((5,), (6,), 0)],
)
def test_common_prefix_len(a: tuple[int, ...], b: tuple[int, ...], n: int) -> None:
    assert common_prefix_len(a, b) == n


def _slot(seq: int, cached: list[int], *, free: bool = True, used: int = 0) -> SlotView:
    return SlotView(seq, cached, free, used)


def test_in_place_reuse_of_a_free_slot_whose_cache_leads_up_to_the_prompt() -> None:
    # A conversation's next turn: the slot's whole cache is the start of the new prompt.
    slots = [_slot(0, [9, 9]), _slot(1, [1, 2, 3]), _slot(2, [])]
    assert choose_slot([1, 2, 3, 4, 5], slots, reuse=True) == SlotChoice(1, 1, 3)
    # The same prompt again: all of it but the last token is reused, whatever follows it.
    slots = [_slot(0, [1, 2, 3, 4, 5, 6]), _slot(1, [])]
    assert choose_slot([1, 2, 3, 4, 5], slots, reuse=True) == SlotChoice(0, 0, 4)


def test_a_partly_shared_idle_cache_is_copied_from_not_cut_while_a_slot_is_empty() -> None:
    # Slot 1 is an idle caller's history opening with the same 3 tokens (a system prompt):
    # cutting it back would cost that caller its next turn's cache.
    slots = [_slot(0, [9, 9]), _slot(1, [1, 2, 3, 7]), _slot(2, [])]
    assert choose_slot([1, 2, 3, 4, 5], slots, reuse=True) == SlotChoice(2, 1, 3)


def test_with_no_empty_slot_the_least_recently_used_best_match_is_cut() -> None:
    slots = [_slot(0, [1, 2, 3, 7], used=5), _slot(1, [1, 2, 3, 8], used=2), _slot(2, [9], used=1)]
    assert choose_slot([1, 2, 3, 4, 5], slots, reuse=True) == SlotChoice(1, 1, 3)


def test_last_prompt_token_is_always_left_to_evaluate() -> None:
    slots = [_slot(0, [1, 2, 3, 4, 5, 6])]
    assert choose_slot([1, 2, 3], slots, reuse=True) == SlotChoice(0, 0, 2)
    assert choose_slot([1], slots, reuse=True) == SlotChoice(0, 0, 0)


def test_prefix_of_a_busy_slot_is_copied_into_the_least_recently_used_free_slot() -> None:
    slots = [
        _slot(0, [1, 2, 3, 4, 8], free=False),
        _slot(1, [5], used=7),
        _slot(2, [6], used=3),
    ]
    assert choose_slot([1, 2, 3, 4, 9], slots, reuse=True) == SlotChoice(2, 0, 4)


def test_free_slot_matching_as_well_as_a_busy_one_is_reused_in_place() -> None:
    slots = [_slot(0, [1, 2, 3], free=False), _slot(1, [1, 2, 3], used=1), _slot(2, [])]
    assert choose_slot([1, 2, 3, 4], slots, reuse=True) == SlotChoice(1, 1, 3)
    # When reusing it in place would cut another cache, the busy slot's prefix is copied.
    slots = [_slot(0, [1, 2, 3], free=False), _slot(1, [1, 2, 3, 9], used=1), _slot(2, [])]
    assert choose_slot([1, 2, 3, 4], slots, reuse=True) == SlotChoice(2, 0, 3)


def test_empty_free_slot_is_preferred_when_nothing_matches() -> None:
    slots = [_slot(0, [5, 5], used=0), _slot(1, [], used=9)]
    assert choose_slot([1, 2], slots, reuse=True) == SlotChoice(1, 1, 0)


def test_without_reuse_nothing_is_kept() -> None:
    slots = [_slot(0, [1, 2, 3], used=5), _slot(1, [4], used=1)]
    assert choose_slot([1, 2, 3, 4], slots, reuse=False) == SlotChoice(1, 1, 0)


def test_no_free_slot_is_an_error() -> None:
    with pytest.raises(ValueError, match="no free"):
        choose_slot([1], [_slot(0, [], free=False)], reuse=True)


def test_distinct_cells_counts_shared_prefixes_once() -> None:
    assert distinct_cells([]) == 0
    assert distinct_cells([[1, 2, 3]]) == 3
    # Two sequences sharing a 3-token prefix, one unrelated, one empty.
    assert distinct_cells([[1, 2, 3, 4], [1, 2, 3, 5, 6], [7], []]) == 3 + 1 + 2 + 1
    assert distinct_cells([[1, 2], [1, 2]]) == 2


SHARED = list(range(100, 164))  # a 64-token system prompt


def test_waits_for_a_running_prefill_of_the_same_system_prompt() -> None:
    prompt = [*SHARED, 1, 2]
    assert awaits_shared_prefill(prompt, 0, [([*SHARED, 7], 0)])
    # Still waiting while the shared part is only half evaluated ...
    assert awaits_shared_prefill(prompt, 0, [([*SHARED, 7], 32)])
    # ... and admitted once it is all in the cache, to copy it.
    assert not awaits_shared_prefill(prompt, 0, [([*SHARED, 7], 64)])


def test_an_identical_prompt_waits_for_all_but_its_last_token() -> None:
    prompt = [*SHARED, 5]
    assert awaits_shared_prefill(prompt, 0, [(prompt, len(prompt) - 2)])
    assert not awaits_shared_prefill(prompt, 0, [(prompt, len(prompt) - 1)])


def test_small_or_already_cached_overlaps_do_not_wait() -> None:
    # Only a chat template's opening in common: not worth a step of delay.
    assert not awaits_shared_prefill([1, 2, 3, 4, 9, 9], 0, [([1, 2, 3, 4, 8, 8], 0)])
    # The cache already offers all but a few of the shared tokens.
    assert not awaits_shared_prefill([*SHARED, 1], 60, [([*SHARED, 2], 0)])
    assert awaits_shared_prefill([*SHARED, 1], 60, [([*SHARED, 2], 0)], min_gain=4)
    # Nothing is being prefilled.
    assert not awaits_shared_prefill([*SHARED, 1], 0, [])


def test_any_of_several_prefills_can_hold_a_prompt() -> None:
    other = list(range(500, 564))
    prefilling = [([*other, 1], 0), ([*SHARED, 2], 10)]
    assert awaits_shared_prefill([*SHARED, 3], 0, prefilling)
    assert not awaits_shared_prefill([9, *SHARED], 0, prefilling)


def test_idle_caches_within_the_limit_stay() -> None:
    slots = [_slot(0, [1] * 10, used=1), _slot(1, [2] * 10, used=2), _slot(2, [], used=0)]
    assert idle_caches_to_drop(slots, 20) == []


def test_idle_caches_over_the_limit_go_least_recently_used_first() -> None:
    slots = [
        _slot(0, [1] * 10, used=5),
        _slot(1, [2] * 10, used=1),
        _slot(2, [3] * 10, used=3),
        _slot(3, [4] * 30, free=False, used=9),  # busy: never dropped, never counted
    ]
    assert idle_caches_to_drop(slots, 20) == [1]
    assert idle_caches_to_drop(slots, 9) == [1, 2, 0]
    assert idle_caches_to_drop(slots, 0) == [1, 2, 0]


def test_cells_an_idle_cache_shares_with_a_busy_slot_do_not_count() -> None:
    shared = list(range(100))
    slots = [
        _slot(0, [*shared, 7, 8], used=1),  # 2 cells of its own beyond the busy slot's prefix
        _slot(1, [*shared, 9], free=False, used=2),
    ]
    assert idle_caches_to_drop(slots, 2) == []
    assert idle_caches_to_drop(slots, 1) == [0]


def test_idle_caches_sharing_a_prefix_count_it_once() -> None:
    shared = list(range(50))
    slots = [_slot(0, [*shared, 1], used=1), _slot(1, [*shared, 2], used=2)]
    assert idle_caches_to_drop(slots, 52) == []
    # Dropping the older one leaves 51 cells: the shared prefix stays with the newer cache.
    assert idle_caches_to_drop(slots, 51) == [0]
