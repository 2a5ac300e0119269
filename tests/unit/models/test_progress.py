"""Progress log lines: sizes, percent, rate, and the interval between lines."""

from __future__ import annotations

import logging

import pytest
from sentiric_inference.models.progress import ProgressLog, human_bytes


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 1024**3, "5.0 GiB")],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_logs_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    log = logging.getLogger("test.progress")
    progress = ProgressLog(log, label="m.gguf", total=4 * 1024**2, interval=10.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for _ in range(4):
            clock.now += 4.0
            progress.advance(1024**2)
    lines = [r.getMessage() for r in caplog.records]
    # 4 s, 8 s: quiet; 12 s: a line; 16 s: quiet (only 4 s since the last one).
    assert lines == ["m.gguf: 3.0 MiB / 4.0 MiB (75.0%) at 256.0 KiB/s"]


def test_rate_counts_only_bytes_of_this_run_when_resuming() -> None:
    clock = _Clock()
    progress = ProgressLog(
        logging.getLogger("test.progress"), label="m", total=None, initial=0, clock=clock
    )
    progress.restart(10 * 1024**2)
    clock.now += 2.0
    progress.advance(2 * 1024**2)
    assert progress.summary() == "12.0 MiB at 1.0 MiB/s"
