"""How many cores this process may really use: CPU affinity and cgroup quotas, not ``os.cpu_count()``."""

from __future__ import annotations

import math
import os
from pathlib import Path


def _cgroup_quota() -> float | None:
    """cgroup v2 ``cpu.max`` (or v1 cfs quota) as a number of cores, None when unlimited or unknown."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores)


def _cgroup_memory_left() -> int | None:
    """Bytes this cgroup may still take (``memory.max - memory.current``, v2; v1's limit), None when unlimited."""
    for limit_file, used_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                  ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                   "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            text = Path(limit_file).read_text().strip()
            if text == "max":
                return None
            limit = int(text)
            if limit >= 1 << 60:  # v1's "no limit"
                return None
            return max(0, limit - int(Path(used_file).read_text().strip()))
        except (OSError, ValueError):
            continue
    return None


def available_memory() -> int | None:
    """Bytes a new allocation may take now: ``MemAvailable`` of /proc/meminfo, capped by a cgroup
    memory limit; None when neither can be read."""
    found = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    left = _cgroup_memory_left()
    if left is not None:
        found = left if found is None else min(found, left)
    return found
