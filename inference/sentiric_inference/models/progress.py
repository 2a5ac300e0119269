"""Download progress as log lines (bytes, percent, rate) at a fixed interval, not a bar.

An init container's output ends up in `kubectl logs`, where a redrawn progress bar is noise;
one line every few seconds says the download is alive and how long it will take.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class ProgressLog:
    """Counts bytes written and logs a progress line at most every `interval` seconds."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        label: str,
        total: int | None,
        initial: int = 0,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._label = label
        self._total = total
        self._clock = clock
        self._interval = interval
        self.done = initial
        self._started = clock()
        self._start_bytes = initial
        self._last_log = self._started

    def restart(self, done: int) -> None:
        """The transfer starts over from `done` bytes (resume or a server that ignored Range)."""
        self.done = done
        self._start_bytes = done
        self._started = self._last_log = self._clock()

    def advance(self, n: int) -> None:
        self.done += n
        now = self._clock()
        if now - self._last_log >= self._interval:
            self._last_log = now
            self._logger.info("%s: %s", self._label, self.summary(now))

    def summary(self, now: float | None = None) -> str:
        """'120.0 MiB / 1.9 GiB (6.2%) at 45.1 MiB/s'."""
        elapsed = max((now if now is not None else self._clock()) - self._started, 1e-9)
        rate = (self.done - self._start_bytes) / elapsed
        if self._total:
            percent = 100.0 * self.done / self._total
            return (
                f"{human_bytes(self.done)} / {human_bytes(self._total)} ({percent:.1f}%) "
                f"at {human_bytes(rate)}/s"
            )
        return f"{human_bytes(self.done)} at {human_bytes(rate)}/s"
