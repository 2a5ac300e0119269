"""Load-run figures: percentiles, per-stream and aggregate rates (client.measuring)."""

from __future__ import annotations

import pytest
from sentiric_inference.client.measuring import LoadReport, Sample, percentile


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([4.0, 1.0, 3.0, 2.0], 0, 1.0),
        ([4.0, 1.0, 3.0, 2.0], 100, 4.0),
        ([0.0, 10.0], 95, 9.5),
    ],
)
def test_percentile(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_edges() -> None:
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 101)


def test_report_figures() -> None:
    samples = (
        Sample("OK", "length", time_to_first_token=0.1, duration=1.1, completion_tokens=11),
        Sample("OK", "stop", time_to_first_token=0.3, duration=2.3, completion_tokens=21),
        Sample("RESOURCE_EXHAUSTED", duration=0.01),
        Sample("RESOURCE_EXHAUSTED", duration=0.01),
    )
    report = LoadReport(concurrent=2, samples=samples, wall_time=4.0)
    assert report.errors == {"RESOURCE_EXHAUSTED": 2}
    assert report.finish_reasons == {"length": 1, "stop": 1}
    assert report.ttft(50) == pytest.approx(0.2)
    # (tokens - 1) / (duration - ttft): 10 / 1.0 and 20 / 2.0
    assert samples[0].stream_tokens_per_second == pytest.approx(10.0)
    assert report.stream_tokens_per_second(50) == pytest.approx(10.0)
    assert report.aggregate_tokens_per_second == pytest.approx(32 / 4.0)
    figures = report.as_dict()
    assert figures["succeeded"] == 2 and figures["requests"] == 4
    text = report.format_text()
    assert "RESOURCE_EXHAUSTED=2" in text and "p99" in text


def test_sample_without_text_has_no_rate() -> None:
    assert (
        Sample("OK", "stop", time_to_first_token=None, completion_tokens=0).stream_tokens_per_second
        is None
    )
