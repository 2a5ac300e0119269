"""The chart ships the same LLMProfile CRD as the single source in crds/."""

from __future__ import annotations

from tests.unit.chart.conftest import CHART, REPO_ROOT

CRD = "llmprofiles.llm.sentiric.ai.yaml"


def test_chart_crd_is_identical_to_the_source() -> None:
    source = (REPO_ROOT / "crds" / CRD).read_bytes()
    copy = (CHART / "crds" / CRD).read_bytes()
    assert copy == source, "charts/sentiric-llm/crds is stale: run hack/sync-chart-crd.sh"


def test_chart_crds_folder_holds_only_that_crd() -> None:
    # Helm installs every file in crds/ and never templates them: nothing else belongs there.
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [CRD]
