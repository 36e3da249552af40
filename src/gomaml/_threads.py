"""Thread policy: how many threads a kernel call uses, and how idle OpenMP threads wait.

Measured on the 2-core development machine (bench/shared_machine.py; figures in README.md,
"Threads"):

* libgomp's default wait (spin ~300 000 times before sleeping) lets two processes that share
  the machine take each other's cores: together they got 3-38 % of one process's throughput.
  Where the user has set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT, gomaml sets
  GOMP_SPINCOUNT=3000 for the libgomp it loads (bounded spinning): together 85-126 %, at a cost
  of 5-12 % when the machine is idle. OMP_WAIT_POLICY=passive measured 84-147 % shared and
  5-19 % slower idle. The variable is removed again once libgomp has read it, so the user's
  subprocesses see the environment they set.
* Calls below SERIAL_WORK row-element visits run on one thread: there two threads gained at
  most 25 % idle (and lost with many tiny tasks), and cost most when the cores are shared.
"""
import math
import os

from gomaml import _validate

_WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
DEFAULT_SPINCOUNT = "3000"

#: d × (4T·Σks + 2·Σkq) below this: one thread (measured crossover, see the module docstring)
SERIAL_WORK = 1 << 21
#: n_threads above this multiple of the CPUs present is a ValueError (oversubscription by
#: mistake: 1000 threads made the OpenMP runtime exit the process, 200000 segfaulted)
MAX_OVERSUBSCRIPTION = 4


def _libgomp_loaded():
    try:
        with open("/proc/self/maps") as f:
            return "libgomp" in f.read()
    except OSError:
        return False


def _load_kernels():
    """Import the compiled kernels with the wait policy above; returns (module, description)."""
    chosen = {k: os.environ[k] for k in _WAIT_VARS if k in os.environ}
    if chosen:
        wait = ", ".join(f"{k}={v}" for k, v in chosen.items()) + " (set by the user)"
        from gomaml import _kernels
        return _kernels, wait
    if _libgomp_loaded():
        from gomaml import _kernels
        return _kernels, "libgomp was loaded before gomaml: its wait policy as it was"
    os.environ["GOMP_SPINCOUNT"] = DEFAULT_SPINCOUNT
    try:
        from gomaml import _kernels        # libgomp reads its environment when it loads
    finally:
        os.environ.pop("GOMP_SPINCOUNT", None)
    return _kernels, f"GOMP_SPINCOUNT={DEFAULT_SPINCOUNT} (gomaml's default)"


_kernels, WAIT_POLICY = _load_kernels()
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


def cpus_present():
    return os.cpu_count() or 1


_CGROUP_LIMIT = _cgroup_cpu_limit()       # read once: a container's quota is fixed


def available_cpus():
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = cpus_present()
    return max(1, min(n, _CGROUP_LIMIT) if _CGROUP_LIMIT else n)


_SHARERS = 1          # concurrent jobs in this process that share its CPUs (share_cpus)


def share_cpus(n_jobs):
    """Declare that n_jobs jobs run concurrently in this process (a Dask worker's threads):
    default_threads() then gives each an equal share, at least 1."""
    global _SHARERS
    _SHARERS = max(1, int(n_jobs))


def default_threads():
    """What n_threads=None may use: the available CPUs, capped by OpenMP's own limit
    (OMP_NUM_THREADS, or omp_set_num_threads as threadpoolctl's limits call it), divided among
    the jobs declared by share_cpus; 1 when the kernels were built without OpenMP."""
    if not _OPENMP:
        return 1
    return max(1, min(available_cpus(), _kernels.omp_max_threads()) // _SHARERS)


def check_n_threads(n_threads):
    """n_threads as given (None or a checked int): TypeError/ValueError naming it."""
    if n_threads is None:
        return None
    limit = MAX_OVERSUBSCRIPTION * cpus_present()
    try:
        return _validate.integer("n_threads", n_threads, low=1, high=limit)
    except ValueError as exc:
        raise ValueError(f"{exc} (at most {MAX_OVERSUBSCRIPTION}× the {cpus_present()} CPUs "
                         f"present)") from None


def resolve_n_threads(n_threads, work=None):
    """Threads for one call. n_threads: None (the policy: default_threads(), and 1 when
    `work`, in row-element visits, is below SERIAL_WORK) or a positive int, used as given.
    Always 1 in a serial build."""
    n = check_n_threads(n_threads)
    if n is None:
        n = 1 if work is not None and work < SERIAL_WORK else default_threads()
    return n if _OPENMP else 1
