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


def _row_cuts(n_rows, min_rows=256, max_blocks=8):
    """Fixed row cuts of a matrix of n_rows rows: from the shape alone, never the threads."""
    blocks = max(1, min(max_blocks, n_rows // min_rows))
    return [(b * n_rows) // blocks for b in range(blocks + 1)]


def gram(M, n_threads=1):
    """M Mᵀ from its lower block triangle: blocks (b, c), c ≤ b, of _row_cuts' row blocks (cut
    by M's shape alone), each one BLAS call (M_b M_bᵀ by syrk), run on n_threads Python threads
    (the caller pins BLAS to one thread: single_threaded_blas), then mirrored. The calls and
    hence the bits are the same for any n_threads; about half a full GEMM's work."""
    cuts = _row_cuts(M.shape[0])
    if len(cuts) == 2:
        return M @ M.T
    G = np.empty((M.shape[0], M.shape[0]), dtype=M.dtype)
    pairs = [(b, c) for b in range(len(cuts) - 1) for c in range(b + 1)]

    def block(j):
        b, c = pairs[j]
        rows, cols = slice(cuts[b], cuts[b + 1]), slice(cuts[c], cuts[c + 1])
        G[rows, cols] = M[rows] @ M[rows].T if b == c else M[rows] @ M[cols].T
        if b != c:
            G[cols, rows] = G[rows, cols].T

    _blocks_run(block, len(pairs), n_threads)
    return G


def _blocks_run(fn, n_blocks, n_threads):
    """fn(b) for every block b, on up to n_threads Python threads (BLAS calls release the
    GIL); results in block order."""
    if n_threads <= 1 or n_blocks <= 1:
        return [fn(b) for b in range(n_blocks)]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(min(n_threads, n_blocks)) as pool:
        return list(pool.map(fn, range(n_blocks)))


def gram_apply(M, p, n_threads=1):
    """M (Mᵀ p) without forming M Mᵀ: Mᵀp as per-block partial sums over _row_cuts' blocks,
    added in block order, then M u block by block; the same bits for any n_threads."""
    cuts = _row_cuts(M.shape[0])
    parts = _blocks_run(lambda b: M[cuts[b]:cuts[b + 1]].T @ p[cuts[b]:cuts[b + 1]],
                        len(cuts) - 1, n_threads)
    u = parts[0]
    for part in parts[1:]:
        u = u + part
    return np.concatenate(_blocks_run(lambda b: M[cuts[b]:cuts[b + 1]] @ u, len(cuts) - 1,
                                      n_threads))
