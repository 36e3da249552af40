"""The exact global minimiser of the squared-loss MAML objective (theory.md §5).

θ_i = A_i θ + b_i is affine, so L(θ) = Σ_i (p_i/kq_i) ‖Xq_i A_i θ − (yq_i − Xq_i b_i)‖² is a
convex quadratic; θ* is the (minimum-norm) least-squares solution of the stacked system with
rows √(p_i/kq_i) Xq_i A_i. Xq_i A_i is built row-wise (Xq − 2η (Xq Xsᵀ/ks) Xs, T times): no
d×d matrix. Fast route: Cholesky of the smaller Gram matrix (N×N, N = Σ kq_i, when d ≥ N; else
d×d); fallback when it is singular or ill-conditioned: an SVD least-squares solve (reported).
"""
import math

import numpy as np
from scipy import linalg
from scipy.linalg import lapack

from gomaml._linalg import gram, matvec, norm, rmatvec, single_threaded_blas
from gomaml._memory import check_fits
from gomaml.losses import resolve_loss
from gomaml._core import NumericalOverflowError, Problem, aligned_scratch
from gomaml._threads import _kernels

# Cholesky of a Gram matrix (condition = cond(M)²) is trusted below this estimate: the
# solution's relative error is then about cond·eps ≈ 2e-8.
_GRAM_COND_MAX = 1e8


class MinimizerResult(tuple):
    """(theta_star, L_star), unpacking like a pair, with how it was computed: .route
    ("cholesky-gram-mixed", "cholesky-gram", "cholesky-normal" or "svd-lstsq"), .rank, .cond
    (a condition estimate of the Gram matrix)."""

    def __new__(cls, theta_star, L_star, route, rank, cond):
        self = super().__new__(cls, (theta_star, L_star))
        self.route, self.rank, self.cond = route, rank, cond
        return self

    theta_star = property(lambda self: self[0])
    L_star = property(lambda self: self[1])


def stacked_system(tasks, inner_lr, inner_steps, n_threads=1):
    """(M (N, d), t (N,)): the rows √(p_i/kq_i) Xq_i A_i and targets √(p_i/kq_i)(yq_i − Xq_i b_i)
    of theory.md §5, float64, built by the compiled kernel in parallel over tasks."""
    return _stacked(tasks, inner_lr, inner_steps, n_threads)[:2]


def _stacked(tasks, inner_lr, inner_steps, n_threads, float32=False):
    """(M, t, M32, norms2): stacked_system's pair, M rounded to float32 (when float32, else
    None) and the squared norms of M's rows, all from one pass of the kernel."""
    N, d = tasks.total_query, tasks.d
    check_fits("the stacked least-squares matrix of global_minimizer",
               N * d * (8 * 2 + (4 if float32 else 0)))
    M = np.empty((N, d))
    M32 = np.empty((N if float32 else 0, d), dtype=np.float32)
    norms2 = np.empty(N)
    t = np.empty(N)
    Xs, ys, s_ptr, Xq, yq, q_ptr = tasks.packed()
    scratch = aligned_scratch(n_threads, _kernels.stacked_scratch_size(d, tasks.max_support))
    _kernels.stacked_rows(Xs, ys, s_ptr, Xq, yq, q_ptr, tasks.weights, float(inner_lr),
                          int(inner_steps), M, M32, norms2, t, scratch, n_threads)
    return M, t, (M32 if float32 else None), norms2


# the mixed-precision route pays off once the Gram GEMM dominates (N²·d multiply-adds)
_MIXED_MIN_WORK = 2e9
_MIXED_COND_MAX = 1e4      # float32 Gram as a preconditioner is sound well below 1/eps32


def _mixed_gram_solve(M, t, max_iter=25, n_threads=1, M32=None, normM2=None):
    """(θ = Mᵀα, cond) with (M Mᵀ) α = t: Cholesky of the float32 Gram (half the GEMM cost)
    as the preconditioner of CG on the exact float64 system, whose products M(Mᵀp) never form
    the Gram; θ accumulates the Mᵀp of those products (no pass of its own). Stops at a
    backward-stable residual; θ None (use the float64 route) when the preconditioner is not
    good enough. M32 (M rounded to float32) and normM2 (‖M‖_F²): if the caller has them."""
    if M32 is None:
        M32 = M.astype(np.float32)
    # the factor too is float32 (spotrf: half dpotrf's time); it is applied in float32 to
    # the residual scaled to max |r| = 1, so no residual underflows the float32 range
    c, cond = cholesky_if_conditioned(gram(M32, n_threads), _MIXED_COND_MAX)
    del M32
    if c is None:
        return None, cond

    def precondition(r):
        s = float(np.max(np.abs(r)))
        if s == 0.0 or not np.isfinite(s):
            return r.copy()
        z = linalg.cho_solve(c, (r / s).astype(np.float32), check_finite=False)
        return z.astype(np.float64) * s

    eps = np.finfo(float).eps
    if normM2 is None:
        normM2 = float(np.einsum("ij,ij->", M, M))      # ‖M‖_F² ≥ ‖MMᵀ‖₂
    alpha = np.zeros_like(t)
    theta = np.zeros(M.shape[1])          # Mᵀα, from the Mᵀp each product computes anyway
    r = t.copy()
    z = precondition(r)
    p = z.copy()
    rz = float(r @ z)
    for _ in range(max_iter):
        u = rmatvec(M, p, n_threads)
        Gp = matvec(M, u, n_threads)
        step = rz / float(p @ Gp)
        alpha += step * p
        theta += step * u
        r -= step * Gp
        if np.linalg.norm(r) <= 16 * eps * (normM2 * np.linalg.norm(alpha)
                                            + np.linalg.norm(t)):
            return theta, cond
        z = precondition(r)
        rz_new = float(r @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return None, cond


def cholesky_if_conditioned(G, cond_max=None):
    """Cholesky factor of the symmetric G (float64 or float32, factored in its own
    precision) when LAPACK's condition estimate (?pocon, reliable to a small factor, unlike
    the ratio of the factor's diagonal, which is only a lower bound) is below cond_max; else
    None. Returns (factor or None, estimate)."""
    cond_max = _GRAM_COND_MAX if cond_max is None else cond_max
    # 1-norm of the (full, symmetric) G, summed in float64: finite iff every entry is, unless
    # a float64 G's sum overflows (then checked entry by entry)
    anorm = float(np.abs(G).sum(axis=1, dtype=np.float64).max())
    if not math.isfinite(anorm) and not np.isfinite(G).all():
        return None, np.inf               # a Gram entry overflowed (float32, or huge rows)
    try:
        c = linalg.cho_factor(G, lower=True, check_finite=False)
    except linalg.LinAlgError:
        return None, np.inf
    pocon, = lapack.get_lapack_funcs(("pocon",), (c[0],))
    rcond, info = pocon(c[0], anorm, uplo="L")
    cond = 1.0 / rcond if info == 0 and rcond > 0 else np.inf
    return (c if cond < cond_max else None), float(cond)


def rank_tolerance(shape):
    """Relative singular-value cutoff of the numerical rank: max(N, d)·eps (as NumPy's lstsq
    and MATLAB's pinv). Directions below it are rounding, not data: keeping them (LAPACK's
    default eps cutoff) gives θ of norm ~1e14 and an L that moves with the rounding of M
    (on the default study at d = 4096: 2.4996 instead of 2.4442). For such numerically
    rank-deficient systems the minimum is defined only up to this convention: .rank reports
    where it cut."""
    return max(shape) * np.finfo(float).eps


@single_threaded_blas
def global_minimizer(tasks, *, loss="squared", inner_lr=0.1, inner_steps=1, n_threads=None):
    """The exact global minimiser θ* of L for the squared loss, and L(θ*) (docs/theory.md §5).

    For the squared loss L is a quadratic in θ (each θ_i is affine in θ), minimised by the
    least-norm solution of a stacked linear system, solved in whichever of the d×d or the
    N_query×N_query form is smaller.

    Parameters
    ----------
    tasks : Tasks
    loss : "squared"
        Any other loss has no closed form: ValueError (pass your own comparator to
        optimality_bound).
    inner_lr, inner_steps, n_threads
        As for `meta_loss_grad`.

    Returns
    -------
    MinimizerResult
        Unpacks as (theta_star (d,), L_star float); also reports .route (the system solved),
        .rank and .cond.

    Raises
    ------
    TypeError, ValueError
        A bad argument, named; a loss other than squared.

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> rng = np.random.default_rng(0)
    >>> tasks = gomaml.Tasks(rng.normal(size=(10, 4, 6)), rng.normal(size=(10, 4)))
    >>> theta_star, L_star = gomaml.global_minimizer(tasks, inner_lr=0.1)
    >>> bool(np.linalg.norm(gomaml.meta_loss_grad(theta_star, tasks)[1]) < 1e-10)
    True
    """
    if resolve_loss(loss).name != "squared":
        raise ValueError(f"loss: global_minimizer has a closed form only for the squared loss, "
                         f"got {resolve_loss(loss).name!r}; pass your own comparator to "
                         f"optimality_bound instead")
    problem = Problem(tasks, loss, inner_lr, inner_steps, n_threads)
    M, t, M32, norms2 = _stacked(tasks, problem.inner_lr, problem.inner_steps,
                                 problem.n_threads, _mixed(tasks.total_query, tasks.d))
    # finite squared row norms imply a finite M; a huge finite entry can overflow its square,
    # so only then is M itself checked
    normM2 = float(np.sum(norms2))
    if not (np.isfinite(t).all() and (np.isfinite(normM2) or np.isfinite(M).all())):
        raise problem.overflow("the stacked system of the minimiser")
    scale = 1.0
    if not math.isfinite(normM2):
        # rows whose squares overflow: solve (M/s)(sθ) = t, s a power of 2 (exact), so that
        # no Gram, SVD or norm of the solvers overflows
        scale = 2.0 ** math.floor(math.log2(float(np.max(np.abs(M)))))
        M /= scale
        M32, normM2 = None, None
    with np.errstate(over="ignore", invalid="ignore"):   # an overflowing Gram: SVD route
        res = _solve(M, t, problem.n_threads, M32, normM2)
    if scale != 1.0:
        res = MinimizerResult(res.theta_star / scale, res.L_star, res.route, res.rank,
                              res.cond)
    return res


def _mixed(N, d):
    """Whether the stacked system (N, d) first tries the mixed-precision Gram route."""
    return d >= N and float(N) * N * d >= _MIXED_MIN_WORK


def _solve(M, t, n_threads=1, M32=None, normM2=None):
    """θ* and L(θ*) of the stacked system (the routes of global_minimizer); M32 (M rounded
    to float32, the mixed route's Gram) and normM2 (‖M‖_F²), when the caller has them."""
    N, d = M.shape
    theta, route, cond, rank = None, None, np.inf, min(N, d)
    if d >= N:                                          # θ* = Mᵀα, (M Mᵀ) α = t
        if _mixed(N, d):
            theta_m, cond = _mixed_gram_solve(M, t, n_threads=n_threads, M32=M32,
                                            normM2=normM2)
            M32 = None
            if theta_m is not None:
                theta, route = theta_m, "cholesky-gram-mixed"
        if theta is None:
            # the lower block triangle on the kernels' threads, BLAS itself on one (_linalg.gram):
            # float32 at N = 2000, d = 10⁴ 0.26 s on 2 threads against 0.42 s for one syrk
            c, cond = cholesky_if_conditioned(gram(M, n_threads))
            if c is not None:
                theta = M.T @ linalg.cho_solve(c, t, check_finite=False)
                route = "cholesky-gram"
    else:                                               # normal equations, d×d
        c, cond = cholesky_if_conditioned(M.T @ M)
        if c is not None:
            theta = linalg.cho_solve(c, M.T @ t, check_finite=False)
            route = "cholesky-normal"
    if theta is None or not np.isfinite(theta).all():
        # rank-revealing: minimum norm at the numerical rank
        theta, _, rank, _ = linalg.lstsq(M, t, cond=rank_tolerance(M.shape),
                                         lapack_driver="gelsd", check_finite=False)
        route = "svd-lstsq"
    # large systems (the mixed route's) on the threads, by _linalg's fixed row blocks
    L_star = norm((matvec(M, theta, n_threads) if _mixed(N, d) else M @ theta) - t) ** 2
    if not (np.isfinite(theta).all() and np.isfinite(L_star)):
        raise NumericalOverflowError(
            f"global_minimizer: θ* or L(θ*) overflowed although the inputs are finite "
            f"(L(θ*) = {L_star:g}): rescale the labels or the features")
    return MinimizerResult(theta, L_star, route, int(rank), float(cond))
