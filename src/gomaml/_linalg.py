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


# Column chunks: a large Gram is the sum of c Grams of column chunks (c from the shape alone),
# each one syrk over all rows; measured here (N = 2000, d = 10⁴, float32, 2 threads): 0.217 s
# against 0.265 s for the lower block triangle of _row_cuts, whose 286-row GEMMs run ~20 %
# below the rate of large ones. Only where the work is large (N²d ≥ 2e9, which keeps every
# smaller Gram's bits) and c partial Grams fit in _CHUNKS_MAX_BYTES.
_CHUNKS_MIN_WORK = 2e9
_CHUNK_MIN_COLS = 2048
_CHUNKS_MAX_BYTES = 1 << 28


def _col_chunks(n_rows, n_cols, itemsize):
    """Number of column chunks of gram(): from the shape and the item size alone."""
    if float(n_rows) * n_rows * n_cols < _CHUNKS_MIN_WORK:
        return 1
    chunks = min(8, n_cols // _CHUNK_MIN_COLS)
    while chunks > 1 and chunks * n_rows * n_rows * itemsize > _CHUNKS_MAX_BYTES:
        chunks -= 1
    return max(chunks, 1)


def gram(M, n_threads=1):
    """M Mᵀ, the same bits for any n_threads (the caller pins BLAS to one thread:
    single_threaded_blas): either the sum, in chunk order, of the Grams of _col_chunks'
    column chunks (each one syrk), or from its lower block triangle: blocks (b, c), c ≤ b, of
    _row_cuts' row blocks (cut by M's shape alone), each one BLAS call (M_b M_bᵀ by syrk),
    then mirrored (about half a full GEMM's work). Either way the calls run on n_threads
    Python threads."""
    N, d = M.shape
    chunks = _col_chunks(N, d, M.itemsize)
    if chunks > 1:
        cuts = [(c * d) // chunks for c in range(chunks + 1)]

        def part(c):
            A = M[:, cuts[c]:cuts[c + 1]]
            return A @ A.T

        parts = _blocks_run(part, chunks, n_threads)
        G = parts[0]
        for more in parts[1:]:
            G += more
        return G
    cuts = _row_cuts(N)
    if len(cuts) == 2:
        return M @ M.T
    G = np.empty((N, N), dtype=M.dtype)
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


def rmatvec(M, p, n_threads=1):
    """Mᵀ p as per-block partial sums over _row_cuts' blocks, added in block order: the same
    bits for any n_threads."""
    cuts = _row_cuts(M.shape[0])
    parts = _blocks_run(lambda b: M[cuts[b]:cuts[b + 1]].T @ p[cuts[b]:cuts[b + 1]],
                        len(cuts) - 1, n_threads)
    u = parts[0]
    for part in parts[1:]:
        u = u + part
    return u


def matvec(M, u, n_threads=1):
    """M u block by block over _row_cuts' blocks: the same bits for any n_threads."""
    cuts = _row_cuts(M.shape[0])
    return np.concatenate(_blocks_run(lambda b: M[cuts[b]:cuts[b + 1]] @ u, len(cuts) - 1,
                                      n_threads))
