"""The wait queue: FIFO within a tenant (an API key's name), round robin across tenants.

With one global FIFO, an app that sends a burst of 200 requests makes every other app wait
behind all 200. Here each tenant has its own line and admission takes the head of each line
in turn, so another tenant's request waits for at most one admission per busy tenant ahead
of it. A tenant that gets a request admitted and still has more waiting goes to the back of
the rotation; a tenant that starts waiting joins at the back. With API keys off every request
has the tenant "", so the queue is one FIFO line, exactly as before.

Requests held back for a shared prefill (engine/prefix.py) go in front of everything: they
already hold a sequence slot, and the scheduler promises nobody overtakes them.

Order alone does not stop a burst from filling the bounded queue, after which everyone else
is refused. So `queue_share` also caps how many places one tenant may hold while requests
must wait: an eighth of the queue stays free for tenants that wait for nothing yet, and the
rest is split evenly among the tenants that do.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def queue_share(max_queue: int, others_waiting: int) -> int:
    """Wait-queue places one tenant may hold while `others_waiting` other tenants wait."""
    if max_queue <= 0:
        return 0
    reserve = max(1, -(-max_queue // 8))  # an eighth, rounded up, for newcomers
    return max(1, (max_queue - reserve) // (others_waiting + 1))


class FairQueue(Generic[T]):
    """Waiting items, popped round robin across tenants; not thread-safe (scheduler only)."""

    __slots__ = ("_front", "_lines", "_size", "_tenant_of")

    def __init__(self, tenant_of: Callable[[T], str]) -> None:
        self._tenant_of = tenant_of
        # Items put back in front (held for a shared prefill), served first, in order.
        self._front: deque[T] = deque()
        # One line per tenant with waiting items; dict order is the rotation order.
        self._lines: dict[str, deque[T]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __iter__(self) -> Iterator[T]:
        """Every waiting item: the front first, then each tenant's line (not pop order)."""
        yield from self._front
        for line in self._lines.values():
            yield from line

    def append(self, item: T) -> None:
        tenant = self._tenant_of(item)
        line = self._lines.get(tenant)
        if line is None:
            # A tenant that starts waiting joins the rotation at the back.
            line = self._lines[tenant] = deque()
        line.append(item)
        self._size += 1

    def popleft(self) -> T:
        """The next item to admit; IndexError when empty."""
        if self._front:
            self._size -= 1
            return self._front.popleft()
        if not self._lines:
            raise IndexError("pop from an empty FairQueue")
        tenant = next(iter(self._lines))
        line = self._lines.pop(tenant)
        item = line.popleft()
        if line:
            # Served now, so it goes to the back of the rotation behind everyone waiting.
            self._lines[tenant] = line
        self._size -= 1
        return item

    def put_front(self, items: list[T]) -> None:
        """Put `items` (in this order) ahead of everything else; they are popped first."""
        self._front.extendleft(reversed(items))
        self._size += len(items)

    def remove_if(self, predicate: Callable[[T], bool]) -> list[T]:
        """Take out every item `predicate` picks (e.g. cancelled ones); the rest keep order."""
        removed: list[T] = []
        if any(predicate(item) for item in self._front):
            keep: deque[T] = deque()
            for item in self._front:
                (removed if predicate(item) else keep).append(item)
            self._front = keep
        for tenant in list(self._lines):
            line = self._lines[tenant]
            if not any(predicate(item) for item in line):
                continue
            rest: deque[T] = deque()
            for item in line:
                (removed if predicate(item) else rest).append(item)
            if rest:
                self._lines[tenant] = rest
            else:
                del self._lines[tenant]
        self._size -= len(removed)
        return removed

    def clear(self) -> None:
        self._front.clear()
        self._lines.clear()
        self._size = 0
