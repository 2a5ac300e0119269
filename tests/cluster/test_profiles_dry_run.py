"""Every shipped profile is accepted by a real API server (server-side dry run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import REPO_ROOT, Cluster
from .test_operator_lifecycle import llmprofile_crd  # noqa: F401  (fixture)

PROFILES = sorted((REPO_ROOT / "profiles").glob("*.yaml"))


@pytest.mark.parametrize("path", PROFILES, ids=[p.name for p in PROFILES])
def test_profile_applies_with_server_dry_run(
    cluster: Cluster,
    llmprofile_crd: Path,  # noqa: F811
    namespace: str,
    path: Path,
) -> None:
    proc = cluster.kubectl("-n", namespace, "apply", "--dry-run=server", "-f", str(path))
    assert "(server dry run)" in proc.stdout, proc.stdout
    # A dry run stores nothing.
    assert cluster.kubectl("-n", namespace, "get", "llmp", "-o", "name").stdout.strip() == ""
