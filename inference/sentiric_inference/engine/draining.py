"""How fast the engine finishes requests, to tell a refused client when to come back.

Retry-After used to be 1 s whatever the queue held, so clients retried in a tight loop
while a long queue drained for a minute. The advice now is the time the requests already
waiting need at the rate requests finished recently.
"""

from __future__ import annotations

from collections import deque

# Finishes remembered, and how far back they count.
_SAMPLES = 256
_WINDOW_S = 120.0
MIN_RETRY_S = 1.0
MAX_RETRY_S = 300.0


class DrainRate:
    """Finish times of recent requests; not thread-safe (the scheduler holds its lock)."""

    def __init__(self) -> None:
        self._finished: deque[float] = deque(maxlen=_SAMPLES)

    def record(self, now: float) -> None:
        self._finished.append(now)

    def per_second(self, now: float) -> float | None:
        """Requests finished per second over the recent window; None before two finishes."""
        while self._finished and now - self._finished[0] > _WINDOW_S:
            self._finished.popleft()
        if len(self._finished) < 2:
            return None
        span = max(now - self._finished[0], 1e-3)
        return len(self._finished) / span

    def retry_after(self, ahead: int, now: float) -> float:
        """Seconds until `ahead` queued requests have likely drained, within sane bounds.

        With nothing measured yet (a burst right after start), the queue is as long as it
        is allowed to be and nothing has finished: MIN_RETRY_S, the old constant.
        """
        rate = self.per_second(now)
        if rate is None:
            return MIN_RETRY_S
        return min(max(ahead / rate, MIN_RETRY_S), MAX_RETRY_S)
