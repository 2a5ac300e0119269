"""The wait queue's admission order: FIFO within a tenant, round robin across tenants."""

from __future__ import annotations

import pytest
from sentiric_inference.engine.fairness import FairQueue, queue_share


def _queue(*items: str) -> FairQueue[str]:
    # Items are "<tenant><n>", e.g. "a1": tenant "a".
    queue: FairQueue[str] = FairQueue(lambda item: item[0])
    for item in items:
        queue.append(item)
    return queue


def _drain(queue: FairQueue[str]) -> list[str]:
    out = []
    for _ in range(100):  # bounded: the tests hold far fewer items
        if not queue:
            break
        out.append(queue.popleft())
    return out


def test_one_tenant_is_plain_fifo() -> None:
    assert _drain(_queue("x1", "x2", "x3", "x4")) == ["x1", "x2", "x3", "x4"]


def test_a_burst_cannot_starve_a_later_tenant() -> None:
    queue = _queue("a1", "a2", "a3", "a4", "a5", "b1", "c1")
    # b1 and c1 arrived behind five of a's; each waits for one admission of a at most.
    assert _drain(queue) == ["a1", "b1", "c1", "a2", "a3", "a4", "a5"]


def test_tenants_alternate_and_each_keeps_its_own_order() -> None:
    queue = _queue("a1", "a2", "a3", "b1", "b2", "b3")
    assert _drain(queue) == ["a1", "b1", "a2", "b2", "a3", "b3"]


def test_a_tenant_that_comes_back_joins_at_the_back() -> None:
    queue = _queue("a1", "a2", "b1")
    assert queue.popleft() == "a1"  # a goes behind b
    queue.append("c1")
    assert queue.popleft() == "b1"
    queue.append("b2")  # b's line was empty: it joins behind a and c
    assert _drain(queue) == ["a2", "c1", "b2"]


def test_items_put_back_in_front_come_first_in_their_order() -> None:
    queue = _queue("a1", "b1", "a2")
    held = [queue.popleft(), queue.popleft()]
    assert held == ["a1", "b1"]
    queue.append("c1")
    queue.put_front(held)
    assert len(queue) == 4
    assert _drain(queue) == ["a1", "b1", "a2", "c1"]


def test_remove_if_takes_items_out_and_keeps_the_rest_in_order() -> None:
    queue = _queue("a1", "b1", "a2", "b2", "a3")
    queue.put_front([queue.popleft()])  # a1 held in front
    removed = queue.remove_if(lambda item: item in {"a1", "b1", "b2"})
    assert sorted(removed) == ["a1", "b1", "b2"]
    assert len(queue) == 2
    assert list(queue) == ["a2", "a3"]
    assert _drain(queue) == ["a2", "a3"]


def test_iteration_and_clear_cover_every_item() -> None:
    queue = _queue("a1", "b1", "a2")
    queue.put_front([queue.popleft()])
    assert sorted(queue) == ["a1", "a2", "b1"]
    queue.clear()
    assert not queue and len(queue) == 0 and list(queue) == []


def test_popping_an_empty_queue_raises() -> None:
    with pytest.raises(IndexError):
        _queue().popleft()


@pytest.mark.parametrize(
    ("max_queue", "others", "share"),
    [
        (64, 0, 56),  # alone: all but the eighth kept for newcomers
        (64, 1, 28),
        (64, 3, 14),
        (64, 100, 1),  # never below one place
        (8, 0, 7),
        (1, 0, 1),
        (0, 0, 0),  # no queue at all
    ],
)
def test_queue_share(max_queue: int, others: int, share: int) -> None:
    assert queue_share(max_queue, others) == share


def test_shares_leave_room_for_a_newcomer() -> None:
    # However many tenants wait, their shares together never take the whole queue.
    for max_queue in (2, 8, 64, 1000):
        for tenants in range(1, 12):
            share = queue_share(max_queue, tenants - 1)
            assert share * tenants < max_queue or share == 1
