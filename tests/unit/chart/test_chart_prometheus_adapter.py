"""The chart's prometheus-adapter rule serves the metric the operator's HPAs target."""

from __future__ import annotations

import yaml
from sentiric_operator.builders.autoscaling import IN_FLIGHT_METRIC

from tests.unit.chart.conftest import Helm, by_kind


def test_the_rule_is_off_by_default(helm: Helm) -> None:
    names = [c["metadata"]["name"] for c in by_kind(helm.template(), "ConfigMap")]
    assert not [n for n in names if n.endswith("-prometheus-adapter")]


def test_the_rule_names_the_operator_s_metric_per_pod(helm: Helm) -> None:
    objects = helm.template("--set", "prometheusAdapter.rules=true")
    (config,) = [
        c
        for c in by_kind(objects, "ConfigMap")
        if c["metadata"]["name"].endswith("-prometheus-adapter")
    ]
    (rule,) = yaml.safe_load(config["data"]["config.yaml"])["rules"]
    assert rule["name"]["as"] == IN_FLIGHT_METRIC
    # Per pod: the HPA's Pods metric is looked up by namespace and pod.
    assert rule["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }
    query = rule["metricsQuery"]
    assert "sentiric_llm_sequences_active{<<.LabelMatchers>>}" in query
    assert "sentiric_llm_queue_depth{<<.LabelMatchers>>}" in query
    assert query.count("by (<<.GroupBy>>)") == 2


def test_the_gauges_the_rule_adds_up_are_the_server_s_own() -> None:
    from sentiric_inference.metrics import Metrics

    exported = {family.name for family in Metrics().registry.collect()}
    assert {"sentiric_llm_sequences_active", "sentiric_llm_queue_depth"} <= exported
