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


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs allowed by the cgroup quota (v2 `cpu.max`, else v1 cfs files); None if unlimited."""
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        fields = v2.split()
        if len(fields) == 2 and fields[0] != "max":
            try:
                quota, period = int(fields[0]), int(fields[1])
            except ValueError:
                return None
            return quota / period if quota > 0 and period > 0 else None
        return None
    for cpu_dir in (root / "cpu", root / "cpu,cpuacct", root):
        quota_text = _read(cpu_dir / "cpu.cfs_quota_us")
        period_text = _read(cpu_dir / "cpu.cfs_period_us")
        if quota_text is None or period_text is None:
            continue
        try:
            quota, period = int(quota_text), int(period_text)
        except ValueError:
            return None
        return quota / period if quota > 0 and period > 0 else None
    return None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """Cores in the affinity mask, capped by the cgroup quota rounded up (at least 1)."""
    cpus = _affinity()
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, max(math.ceil(limit), 1))
    return cpus
