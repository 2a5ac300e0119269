"""CPU count for llama.cpp threads: affinity capped by the cgroup CPU quota (v2 and v1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sentiric_inference.engine import cpus
from sentiric_inference.engine.cpus import available_cpus, cgroup_cpu_limit


def _write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


@pytest.mark.parametrize(
    ("cpu_max", "limit"),
    [("200000 100000", 2.0), ("150000 100000", 1.5), ("max 100000", None), ("garbage", None)],
)
def test_cgroup_v2_quota(tmp_path: Path, cpu_max: str, limit: float | None) -> None:
    _write(tmp_path, "cpu.max", cpu_max)
    assert cgroup_cpu_limit(tmp_path) == limit


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    _write(tmp_path, "cpu,cpuacct/cpu.cfs_quota_us", "300000")
    _write(tmp_path, "cpu,cpuacct/cpu.cfs_period_us", "100000")
    assert cgroup_cpu_limit(tmp_path) == 3.0
    _write(tmp_path, "cpu,cpuacct/cpu.cfs_quota_us", "-1")  # v1's "no limit"
    assert cgroup_cpu_limit(tmp_path) is None


def test_no_cgroup_files_means_no_limit(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path) is None


def test_quota_caps_the_affinity_and_rounds_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 64-core node whose pod may use 2.5 CPUs: three threads, not 64.
    monkeypatch.setattr(cpus, "_affinity", lambda: 64)
    _write(tmp_path, "cpu.max", "250000 100000")
    assert available_cpus(tmp_path) == 3
    # A quota above the affinity changes nothing; a tiny one still gives one thread.
    _write(tmp_path, "cpu.max", "12800000 100000")
    assert available_cpus(tmp_path) == 64
    _write(tmp_path, "cpu.max", "10000 100000")
    assert available_cpus(tmp_path) == 1


def test_this_machine_without_a_limit_uses_its_affinity(tmp_path: Path) -> None:
    assert available_cpus(tmp_path) == len(os.sched_getaffinity(0))
