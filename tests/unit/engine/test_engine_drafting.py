"""Prompt-lookup drafts: the tokens that followed the latest earlier occurrence of the suffix."""

from __future__ import annotations

from sentiric_inference.engine.drafting import PromptLookup


def test_a_repeated_trigram_drafts_what_followed_it() -> None:
    lookup = PromptLookup([1, 2, 3, 4, 5, 6, 1, 2, 3])
    assert lookup.draft(3) == [4, 5, 6]


def test_the_latest_occurrence_wins_and_the_draft_stops_at_the_history_end() -> None:
    lookup = PromptLookup([7, 8, 9, 1, 7, 8, 9, 2, 3])
    lookup.append(7)
    lookup.append(8)
    lookup.append(9)
    assert lookup.draft(8) == [2, 3, 7, 8, 9]


def test_a_bigram_is_the_fallback_and_a_lone_token_is_not_enough() -> None:
    assert PromptLookup([5, 1, 2, 6, 0, 1, 2]).draft(2) == [6, 0]
    assert PromptLookup([5, 1, 9, 6, 0, 4, 1]).draft(2) == []


def test_tokens_appended_after_a_lookup_are_indexed_too() -> None:
    lookup = PromptLookup([1, 2])
    assert lookup.draft(4) == []
    for token in (3, 4, 1, 2):
        lookup.append(token)
        lookup.draft(4)
    assert lookup.draft(4) == [3, 4, 1, 2]


def test_a_run_of_one_token_drafts_more_of_it() -> None:
    assert PromptLookup([4, 4, 4, 4]).draft(3) == [4]


def test_no_draft_for_a_zero_limit_or_a_short_history() -> None:
    assert PromptLookup([1, 2, 3, 1, 2, 3]).draft(0) == []
    assert PromptLookup([1]).draft(4) == []
