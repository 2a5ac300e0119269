"""Retry-After advice from the measured drain rate."""

from __future__ import annotations

from sentiric_inference.engine.draining import MAX_RETRY_S, MIN_RETRY_S, DrainRate


def test_no_measurement_yet_advises_the_minimum() -> None:
    rate = DrainRate()
    rate.record(0.0)
    assert rate.retry_after(64, now=1.0) == MIN_RETRY_S


def test_a_slow_drain_advises_the_time_the_queue_needs() -> None:
    rate = DrainRate()
    for second in range(10):  # one request finished per 2 s
        rate.record(second * 2.0)
    advice = rate.retry_after(30, now=20.0)
    assert 55 <= advice <= 65


def test_a_fast_drain_advises_the_minimum_and_a_stalled_one_the_maximum() -> None:
    fast = DrainRate()
    for i in range(100):
        fast.record(i * 0.001)
    assert fast.retry_after(5, now=0.1) == MIN_RETRY_S
    slow = DrainRate()
    slow.record(0.0)
    slow.record(100.0)
    assert slow.retry_after(10_000, now=100.0) == MAX_RETRY_S


def test_old_finishes_fall_out_of_the_window() -> None:
    rate = DrainRate()
    for i in range(50):
        rate.record(float(i))
    assert rate.per_second(now=1000.0) is None
