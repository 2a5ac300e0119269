"""Per-key limits over a stepped clock, and the per-key metrics the access layer keeps."""

from __future__ import annotations

from pathlib import Path

import pytest
from sentiric_inference.config import AuthSettings, PerKeyLimits
from sentiric_inference.errors import RateLimitedError, UnauthenticatedError
from sentiric_inference.metrics import Metrics
from sentiric_inference.serving.access import Access
from sentiric_inference.serving.keys import ANONYMOUS
from sentiric_inference.serving.quotas import Quotas

KEY = "billing-0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def test_requests_per_minute_slide_and_say_when_to_retry() -> None:
    clock = Clock()
    quotas = Quotas(PerKeyLimits(requests_per_minute=3), clock=clock)
    for step in range(3):
        quotas.acquire("a")
        quotas.release("a")
        clock.now += 10 * (step + 1)  # starts at 0, 10, 30 s
    clock.now = 5000.0 + 40
    with pytest.raises(RateLimitedError) as info:
        quotas.acquire("a")
    assert info.value.limit == "requests_per_minute"
    # The first start leaves the window at 60 s, 20 s from now.
    assert info.value.retry_after == 20
    assert "requestsPerMinute" in info.value.message and "'a'" in info.value.message
    # Another key has its own window.
    quotas.acquire("b")
    clock.now = 5000.0 + 60.5
    quotas.acquire("a")


def test_tokens_per_minute_count_finished_requests() -> None:
    clock = Clock()
    quotas = Quotas(PerKeyLimits(tokens_per_minute=100), clock=clock)
    quotas.acquire("a")
    quotas.acquire("a")  # under the limit while nothing has finished
    quotas.release("a", 60)
    clock.now += 5
    quotas.release("a", 50)
    with pytest.raises(RateLimitedError) as info:
        quotas.acquire("a")
    assert info.value.limit == "tokens_per_minute"
    # 110 tokens: under 100 again once the first 60 leave the window, 55 s from now.
    assert info.value.retry_after == 55
    clock.now += 55
    quotas.acquire("a")


def test_max_concurrent_frees_on_release() -> None:
    quotas = Quotas(PerKeyLimits(max_concurrent=2), clock=Clock())
    quotas.acquire("a")
    quotas.acquire("a")
    with pytest.raises(RateLimitedError) as info:
        quotas.acquire("a")
    assert info.value.limit == "max_concurrent" and info.value.retry_after >= 1
    assert "requests in flight at once" in info.value.message
    quotas.acquire("b")
    quotas.release("a")
    quotas.acquire("a")
    assert quotas.in_flight("a") == 2


def test_no_limits_admit_everything() -> None:
    quotas = Quotas(PerKeyLimits(), clock=Clock())
    for _ in range(1000):
        quotas.acquire("a")
    assert quotas.in_flight("a") == 1000


def _access(tmp_path: Path, limits: PerKeyLimits, metrics: Metrics) -> Access:
    path = tmp_path / "keys"
    path.write_text(f"billing:{KEY}\n")
    return Access(AuthSettings(api_keys_file=path, per_key=limits), metrics, clock=Clock())


def _value(metrics: Metrics, name: str, labels: dict[str, str]) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_access_counts_per_key_name_never_the_key(tmp_path: Path) -> None:
    metrics = Metrics()
    access = _access(tmp_path, PerKeyLimits(max_concurrent=1), metrics)
    caller = access.authenticate(f"Bearer {KEY}", api="http")
    assert caller.name == "billing"
    ticket = access.admit(caller)
    assert _value(metrics, "sentiric_llm_key_requests_in_flight", {"key": "billing"}) == 1
    with pytest.raises(RateLimitedError):
        access.admit(caller)
    ticket.release("stop", prompt_tokens=12, completion_tokens=30)
    ticket.release("stop", prompt_tokens=12, completion_tokens=30)  # a second release is a no-op
    samples = {
        ("sentiric_llm_key_requests_total", (("key", "billing"), ("outcome", "stop"))): 1,
        ("sentiric_llm_key_requests_total", (("key", "billing"), ("outcome", "rate_limited"))): 1,
        ("sentiric_llm_key_rejections_total", (("key", "billing"), ("limit", "max_concurrent"))): 1,
        ("sentiric_llm_key_tokens_total", (("key", "billing"), ("kind", "prompt"))): 12,
        ("sentiric_llm_key_tokens_total", (("key", "billing"), ("kind", "completion"))): 30,
        ("sentiric_llm_key_requests_in_flight", (("key", "billing"),)): 0,
    }
    for (name, labels), expected in samples.items():
        assert _value(metrics, name, dict(labels)) == expected, name
    exposition = metrics.registry.collect()
    assert all(KEY not in str(sample) for family in exposition for sample in family.samples)


def test_access_refuses_missing_and_wrong_keys_and_counts_why(tmp_path: Path) -> None:
    metrics = Metrics()
    access = _access(tmp_path, PerKeyLimits(), metrics)
    for header in (None, "Bearer", f"Basic {KEY}"):
        with pytest.raises(UnauthenticatedError):
            access.authenticate(header, api="grpc")
    with pytest.raises(UnauthenticatedError):
        access.authenticate(f"Bearer {KEY}x", api="http")
    assert (
        _value(metrics, "sentiric_llm_auth_failures_total", {"api": "grpc", "reason": "missing"})
        == 3
    )
    assert (
        _value(metrics, "sentiric_llm_auth_failures_total", {"api": "http", "reason": "invalid"})
        == 1
    )


def test_without_a_key_file_everyone_is_anonymous_and_unlimited() -> None:
    metrics = Metrics()
    access = Access(AuthSettings(), metrics)
    assert not access.enabled
    assert access.authenticate(None, api="http") is ANONYMOUS
    access.admit(ANONYMOUS).release("stop", prompt_tokens=5)
    assert _value(metrics, "sentiric_llm_key_requests_total", {"key": "", "outcome": "stop"}) == 0


def test_per_key_limits_need_a_key_file() -> None:
    with pytest.raises(ValueError, match="apiKeysFile"):
        AuthSettings(per_key=PerKeyLimits(max_concurrent=1))
