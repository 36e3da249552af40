"""Reproducible, overflow-safe linear algebra around the kernels.

OpenBLAS changes the last bits of dot, norm, Cholesky, eigh, SVD, lstsq and float32 GEMM with
its thread count (measured: each differs between OPENBLAS_NUM_THREADS=1 and 2). Whatever
steers training or is reported (fit's reductions, the minimiser, the bounds) therefore runs
with BLAS pinned to one thread, so rows and fit paths are the same for any thread setting.
"""
import functools
import math

import numpy as np

_controller = None
_HUGE = 1e150        # below this, x·x cannot overflow for any realistic length
_TINY = 1e-150       # above this, x·x does not underflow to a subnormal


def _threadpools():
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    return _controller


def single_threaded_blas(func):
    """Decorator: run func with every loaded BLAS limited to one thread (then restored)."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with _threadpools().limit(limits=1, user_api="blas"):
            return func(*args, **kwargs)
    return wrapper


def norm(x):
    """‖x‖₂ without overflow or underflow: scaled by max|x| when the plain sum would leave the
    float64 range. inf only when the norm itself exceeds the largest float."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size == 0:
        return 0.0
    s = float(np.max(np.abs(x)))
    if s == 0.0 or not math.isfinite(s):
        return s
    if _TINY < s < _HUGE:
        return math.sqrt(float(x @ x))
    y = x / s
    return s * math.sqrt(float(y @ y))
