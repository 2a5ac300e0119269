"""Fixtures for the chart and image tests: the helm binary, rendering, and repository paths.

helm is the one the local-cluster tooling builds from Go modules (hack/cluster-build.sh, cached
outside the repo, a no-op once built). The build runs at collection time, outside any test,
so a cold build is not cut short by the per-test timeout.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import build_binaries

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "charts" / "sentiric-llm"
CHART_TESTS = Path(__file__).resolve().parent

_helm_bin: pytest.StashKey[Path | BaseException] = pytest.StashKey()


def _needs_helm(item: pytest.Item) -> bool:
    return CHART_TESTS in Path(str(item.path)).resolve().parents and "helm" in getattr(
        item, "fixturenames", ()
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or not any(map(_needs_helm, session.items)):
        return
    try:
        session.config.stash[_helm_bin] = build_binaries() / "helm"
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        session.config.stash[_helm_bin] = exc


@dataclass
class Helm:
    """The built helm, run with private caches against the chart in this repository."""

    binary: Path
    home: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        proc = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def template(
        self, *args: str, release: str = "llm", namespace: str = "llm-system"
    ) -> list[dict[str, Any]]:
        """`helm template` the chart and return its objects (CRDs included)."""
        out = self.run(
            "template", release, str(CHART), "--namespace", namespace, "--include-crds", *args
        ).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    def template_error(self, *args: str) -> str:
        """stderr of a `helm template` that must fail (asserted)."""
        proc = self.run(
            "template", "llm", str(CHART), "--namespace", "llm-system", *args, check=False
        )
        assert proc.returncode != 0, f"helm template {' '.join(args)} unexpectedly succeeded"
        return proc.stderr


@pytest.fixture(scope="session")
def helm(request: pytest.FixtureRequest) -> Iterator[Helm]:
    built = request.config.stash.get(_helm_bin, None)
    if built is None:
        built = build_binaries() / "helm"
    if isinstance(built, BaseException):
        raise RuntimeError("building helm (hack/cluster-build.sh) failed") from built
    with tempfile.TemporaryDirectory(prefix="sentiric-helm-") as home:
        yield Helm(binary=built, home=Path(home))


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj.get("kind") == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]
