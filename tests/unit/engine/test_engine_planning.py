"""Batch planning: one decode's budget shared between generating sequences and prompt chunks."""

from __future__ import annotations

import pytest
from sentiric_inference.engine.planning import StepPlan, plan_step


def test_every_generating_sequence_gets_a_token_and_prompts_fill_the_rest_in_order() -> None:
    plan = plan_step(3, [400, 300, 5], 512)
    assert plan == StepPlan((0, 1, 2), (400, 109, 0))
    assert plan.tokens == 512


def test_prompts_alone_are_chunked_to_the_budget() -> None:
    assert plan_step(0, [1000], 512) == StepPlan((), (512,))
    assert plan_step(0, [488], 512) == StepPlan((), (488,))


def test_more_generating_sequences_than_budget_take_turns() -> None:
    first = plan_step(5, [10], 3, rotation=0)
    second = plan_step(5, [10], 3, rotation=3)
    assert first == StepPlan((0, 1, 2), (0,))
    assert second.generating == (3, 4, 0)
    served = set(first.generating) | set(second.generating)
    assert served == {0, 1, 2, 3, 4}


def test_nothing_to_do_is_an_empty_plan() -> None:
    assert plan_step(0, [], 16).tokens == 0


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="budget"):
        plan_step(1, [], 0)
