"""The operator's own Prometheus metrics: reconciles, status writes, resync sweeps, failures."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

PREFIX = "sentiric_operator"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class OperatorMetrics:
    """One instance per operator process, with its own registry (tests may run several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.reconciles = Counter(
            f"{PREFIX}_reconciles_total",
            "Reconciles of an LLMProfile by trigger (create, update, resume, resync, "
            "child-changed) and outcome (success, invalid, retry, failed).",
            ["trigger", "outcome"],
            registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            f"{PREFIX}_reconcile_duration_seconds",
            "Seconds to apply every child of one LLMProfile.",
            ["trigger"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.status_writes = Counter(
            f"{PREFIX}_status_writes_total",
            "LLMProfile status patches (written only when the computed status changed).",
            registry=self.registry,
        )
        self.resync_sweep_duration = Histogram(
            f"{PREFIX}_resync_sweep_duration_seconds",
            "Seconds one periodic resync sweep over every known LLMProfile took.",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.background_errors = Counter(
            f"{PREFIX}_background_errors_total",
            "Unexpected errors caught in the operator-wide background tasks (status, resync); "
            "the task logs them and carries on.",
            ["task"],
            registry=self.registry,
        )
