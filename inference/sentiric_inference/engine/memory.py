"""How much memory this process may use: its cgroup limit, else the host's available memory.

A pod's memory limit is enforced by the OOM killer on the cgroup, while /proc/meminfo still
shows the whole node, so the cgroup comes first. GPU memory is read from llama.cpp
(engine/backends.py), since only the backend knows what the device has free.
"""

from __future__ import annotations

import os
from pathlib import Path

from .cpus import CGROUP_ROOT
from .sizing import Budget

# cgroup v1 reports "no limit" as a huge page-aligned number rather than "max".
_V1_UNLIMITED = 2**60


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_memory_limit(root: Path = CGROUP_ROOT) -> int | None:
    """Bytes allowed by the cgroup (v2 `memory.max`, else v1 `memory.limit_in_bytes`)."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        text = _read(path)
        if text is None:
            continue
        if text == "max":
            return None
        try:
            value = int(text)
        except ValueError:
            return None
        return value if 0 < value < _V1_UNLIMITED else None
    return None


def host_available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable in bytes (what the kernel can hand out without swapping)."""
    text = _read(meminfo)
    if text is None:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "MemAvailable":
            fields = value.split()
            if fields and fields[0].isdigit():
                return int(fields[0]) * 1024
    return None


def process_rss() -> int:
    """Resident set size of this process in bytes (0 where /proc is missing)."""
    text = _read(Path("/proc/self/statm"))
    if not text:
        return 0
    return int(text.split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_budget() -> Budget:
    """The CPU-side budget for sizing: the cgroup limit, else what the host has available."""
    limit = cgroup_memory_limit()
    if limit is not None:
        return Budget(limit, "cgroup memory limit")
    available = host_available_memory()
    if available is not None:
        # Measured with this process already running: its own pages count as available too.
        return Budget(available + process_rss(), "host available memory")
    return Budget(4 * 2**30, "assumed (no cgroup limit or /proc/meminfo)")
