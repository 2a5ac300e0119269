"""Per-key limits (server.auth.perKey): requests and tokens per minute, requests in flight.

Pure bookkeeping over an injectable clock, so tests can step time. Each key name has its own
sliding 60 s window: the start times of its recent requests and the token counts of those
that finished. A refusal says which limit and when to retry: when enough of the window has
slid past for the key to be under the limit again.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sentiric_inference.config import PerKeyLimits
from sentiric_inference.errors import RateLimitedError

WINDOW_S = 60.0
# A concurrency slot frees when some request ends, which nothing here can predict; a short
# retry is right for a well-behaved client holding several streams.
CONCURRENCY_RETRY_S = 1.0

# The `limit` of a RateLimitedError (and the metrics label), with its setting's name.
REQUESTS_PER_MINUTE = "requests_per_minute"
TOKENS_PER_MINUTE = "tokens_per_minute"
MAX_CONCURRENT = "max_concurrent"
SETTING = {
    REQUESTS_PER_MINUTE: "requestsPerMinute",
    TOKENS_PER_MINUTE: "tokensPerMinute",
    MAX_CONCURRENT: "maxConcurrent",
}
_WORDS = {
    REQUESTS_PER_MINUTE: "requests per minute",
    TOKENS_PER_MINUTE: "tokens per minute",
    MAX_CONCURRENT: "requests in flight at once",
}


@dataclass(slots=True)
class _Usage:
    starts: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_sum: int = 0
    in_flight: int = 0


class Quotas:
    """Admit or refuse each key's requests; release them with the tokens they used."""

    def __init__(
        self, limits: PerKeyLimits, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._usage: dict[str, _Usage] = {}

    def in_flight(self, name: str) -> int:
        usage = self._usage.get(name)
        return usage.in_flight if usage is not None else 0

    def acquire(self, name: str) -> None:
        """Count a new request of `name`, or raise RateLimitedError naming the limit."""
        limits, now = self.limits, self._clock()
        usage = self._usage.setdefault(name, _Usage())
        self._slide(usage, now)
        rpm, tpm, concurrent = (
            limits.requests_per_minute,
            limits.tokens_per_minute,
            limits.max_concurrent,
        )
        if rpm and len(usage.starts) >= rpm:
            # Under the limit again once the oldest start that keeps it full leaves the window.
            oldest = usage.starts[len(usage.starts) - rpm]
            self._refuse(name, REQUESTS_PER_MINUTE, rpm, oldest + WINDOW_S - now)
        if tpm and usage.token_sum >= tpm:
            self._refuse(name, TOKENS_PER_MINUTE, tpm, self._tokens_free_in(usage, now, tpm))
        if concurrent and usage.in_flight >= concurrent:
            self._refuse(name, MAX_CONCURRENT, concurrent, CONCURRENCY_RETRY_S)
        if rpm:
            usage.starts.append(now)
        usage.in_flight += 1

    def release(self, name: str, tokens: int = 0) -> None:
        """A request of `name` ended having used `tokens` (prompt plus completion)."""
        usage = self._usage.get(name)
        if usage is None:
            return
        usage.in_flight = max(usage.in_flight - 1, 0)
        # Only what a limit needs is kept: a window holds at most a minute of one key's use.
        if tokens > 0 and self.limits.tokens_per_minute:
            usage.tokens.append((self._clock(), tokens))
            usage.token_sum += tokens

    def _slide(self, usage: _Usage, now: float) -> None:
        cutoff = now - WINDOW_S
        while usage.starts and usage.starts[0] <= cutoff:
            usage.starts.popleft()
        while usage.tokens and usage.tokens[0][0] <= cutoff:
            usage.token_sum -= usage.tokens.popleft()[1]

    @staticmethod
    def _tokens_free_in(usage: _Usage, now: float, limit: int) -> float:
        """Seconds until the tokens still in the window add up to less than `limit`."""
        remaining = usage.token_sum
        for at, count in usage.tokens:
            remaining -= count
            if remaining < limit:
                return at + WINDOW_S - now
        return WINDOW_S

    @staticmethod
    def _refuse(name: str, limit: str, value: int, retry_after: float) -> None:
        retry = max(1.0, float(math.ceil(retry_after)))
        raise RateLimitedError(
            f"The API key '{name}' is over its limit of {value} "
            f"{_WORDS[limit]} (server.auth.perKey.{SETTING[limit]}); "
            f"retry in {retry:.0f} s.",
            limit=limit,
            retry_after=retry,
        )
