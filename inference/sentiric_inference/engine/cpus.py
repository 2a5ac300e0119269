"""How many CPUs this process may really use: its affinity, capped by a cgroup CPU quota.

In a Kubernetes pod with a CPU limit (and no static CPU manager) the affinity mask still
lists every core of the node, but the CFS quota lets the pod run only `limit` cores' worth.
One llama.cpp thread per listed core would then oversubscribe the quota: the threads meet at a
barrier after every operation, so one throttled or descheduled thread stalls them all.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _affinity() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _quota_cpus(quota_text: str, period_text: str) -> float | None:
    """quota / period as CPUs; None for "max", -1 (v1's unlimited) or anything unparsable."""
    try:
        quota, period = int(quota_text), int(period_text)
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs allowed by the cgroup quota (v2 `cpu.max`, else v1 cfs files); None if unlimited."""
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        fields = v2.split()
        return _quota_cpus(fields[0], fields[1]) if len(fields) == 2 else None
    for cpu_dir in (root / "cpu", root / "cpu,cpuacct", root):
        quota_text = _read(cpu_dir / "cpu.cfs_quota_us")
        period_text = _read(cpu_dir / "cpu.cfs_period_us")
        if quota_text is not None and period_text is not None:
            return _quota_cpus(quota_text, period_text)
    return None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """Cores in the affinity mask, capped by the cgroup quota rounded up (at least 1)."""
    cpus = _affinity()
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, max(math.ceil(limit), 1))
    return cpus
