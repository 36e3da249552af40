"""Thread policy: how many threads a kernel call uses."""
import math
import os
import numbers

from gomaml import _kernels

_OPENMP = _kernels.compiled_info()["openmp"]      # fixed at build time


def _cgroup_cpu_limit():
    """CPUs allowed by a cgroup CPU quota (v2 cpu.max or v1 cfs), or None when unlimited."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        if quota > 0 and period > 0:
            return max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        pass
    return None


def available_cpus():
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    return max(1, min(n, limit) if limit else n)


def resolve_n_threads(n_threads):
    """None -> available_cpus(); a positive int as is. One thread when built without OpenMP."""
    if n_threads is None:
        n = available_cpus()
    else:
        if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
            raise TypeError(f"n_threads must be a positive int or None, got {n_threads!r}")
        n = int(n_threads)
        if n < 1:
            raise ValueError(f"n_threads must be >= 1, got {n}")
    return n if _OPENMP else 1
