"""Theorem 1 and Corollary 1 of Wang, Cai, Yang & Wang (ICML 2020) on finite samples (theory.md §6–§8).

Every term is computed in float64 (also for float32 tasks), for one inner step (T = 1).
"""
import dataclasses
import math

import numpy as np
from scipy import linalg

from gomaml._json import json_safe
from gomaml._linalg import norm, single_threaded_blas
from gomaml import _validate
from gomaml._memory import check_fits
from gomaml.minimizer import cholesky_if_conditioned, global_minimizer
from gomaml._threads import _kernels, resolve_n_threads
from gomaml._core import NumericalOverflowError, Problem, block_ptr_for, n_blocks_for
from gomaml.objective import adapt, adapt_pair, meta_loss, meta_loss_grad
from gomaml.trust_region import ExactSolver, GolubKahanSolver

# solver="auto" compares two cost estimates, both fixed functions of the sizes (flop-equivalent
# units), fitted to measurements here (bench/bound_solvers.py, bench/bounds_table.py, and
# n = 1000 × 10 pairs at d = 100): the exact solver's SVD with its U (~6·m·n² for m × n) and the
# per-task assembly of its rows, against Golub–Kahan's iterations (at most min(rows, d, 300))
# times its operator, reorthogonalisation and per-iteration overhead.
_SVD_FACTOR = 6.0
_PER_TASK = 5e5           # assembling one task's dense rows (a NumPy loop)
_PER_ITERATION = 2e5      # one Golub–Kahan iteration's fixed overhead
_EXACT_ALWAYS = 1e7       # below this (a few ms) the exact answer is worth any overhead
_EXACT_MAX_BYTES = 1 << 30
# the span route takes the training points' Gram Cholesky factor below this condition estimate
_SPAN_GRAM_COND = 1e6


@dataclasses.dataclass
class BoundReport:
    """The terms of the optimality-gap bound at a point ω (docs/theory.md §6–§8).

    Theorem 1: gap = L(ω) − L(θ†) ≤ linear_term ≤ bound = R·eps + w_norm·repr_error, for the
    chosen radius R; the representation floor repr_floor (the part of the comparator's
    direction outside the features' reach) and bound_R0 = R0·eps + w_norm·repr_floor at the
    smallest radius R0 reaching it. `print(report)` gives a table that names every term;
    `to_dict()` a JSON-safe dict (inf and NaN spelled out). A non-finite term from finite
    inputs raises NumericalOverflowError, never a returned NaN.

    Attributes
    ----------
    gap, linear_term, eps, R, w_norm, repr_error, bound : float
        As above; eps = ‖∇L(ω)‖ (exact gradient).
    comparator_kind : str
        "closed_form" (the exact minimiser) or "user".
    exact : bool
        The comparator is the exact global minimiser.
    n_pairs, n_dropped : int
        Query points used, and dropped as numerically degenerate.
    solver : str
        The route of the sup over the ball: exact SVD (in the span when smaller) or
        matrix-free Golub–Kahan; solver_gap is its certified optimality gap.
    loss, inner_lr, inner_steps
        The problem.
    L_omega, L_comparator : float
    repr_floor, R0, bound_R0 : float
        theory.md §8.
    w_norm_tight : float or None
        Corollary 1 only: ‖W‖_ρ, at most w_norm = 2R̄.

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> rng = np.random.default_rng(0)
    >>> tasks = gomaml.Tasks(rng.normal(size=(10, 4, 6)), rng.normal(size=(10, 4)))
    >>> omega = gomaml.fit(tasks, max_iter=20).theta
    >>> rep = gomaml.optimality_bound(omega, tasks)
    >>> bool(rep.gap <= rep.linear_term + 1e-12 <= rep.bound + 2e-12)
    True
    """
    gap: float                 # L(ω) − L(θ†)
    linear_term: float         # Σ p_i/kq_i Σ_b l'_b Δ_i(z_b) (theory.md §6)
    eps: float                 # ‖∇L(ω)‖₂, exact gradient
    R: float
    w_norm: float
    repr_error: float          # ‖A v − c‖ at the returned feasible v
    bound: float               # R·eps + w_norm·repr_error
    comparator_kind: str       # "closed_form" or "user"
    exact: bool                # the comparator is the exact global minimiser
    n_pairs: int
    n_dropped: int
    solver: str
    solver_gap: float
    loss: str
    inner_lr: float
    inner_steps: int
    L_omega: float = math.nan
    L_comparator: float = math.nan
    repr_floor: float = math.nan  # repr(∞) = min_v ‖A v − c‖: the part of c outside A's range
    R0: float = math.nan          # ‖A⁺c‖: the smallest radius reaching the floor
    bound_R0: float = math.nan    # R0·eps + w_norm·repr_floor
    w_norm_tight: float = None   # Corollary 1 only: ‖W‖_ρ ≤ w_norm = 2R̄

    def __post_init__(self):
        bad = [f.name for f in dataclasses.fields(self)
               if isinstance(getattr(self, f.name), float)
               and not math.isfinite(getattr(self, f.name))]
        if bad:
            raise NumericalOverflowError(
                f"the bound's terms {', '.join(bad)} overflowed to inf or NaN although the "
                f"inputs are finite: rescale the labels or the features")

    def to_dict(self):
        """A JSON-safe dict: inf and NaN are spelled "inf", "-inf", "nan"."""
        return json_safe(dataclasses.asdict(self))

    def __str__(self):
        rows = [
            ("gap  L(ω) − L(θ†)", self.gap),
            ("linear term", self.linear_term),
            ("bound  R·ε + ‖w‖·repr", self.bound),
            ("ε = ‖∇L(ω)‖", self.eps),
            ("R", self.R),
            ("‖w‖", self.w_norm),
        ]
        if self.w_norm_tight is not None:
            rows.append(("‖W‖_ρ (tighter)", self.w_norm_tight))
        rows += [
            ("repr error", self.repr_error),
            ("repr floor  repr(∞)", self.repr_floor),
            ("R0 = ‖A⁺c‖", self.R0),
            ("bound at R0", self.bound_R0),
            ("L(ω)", self.L_omega),
            ("L(θ†)", self.L_comparator),
        ]
        lines = [f"optimality bound ({self.loss}, η={self.inner_lr:g}, T={self.inner_steps})"]
        lines += [f"  {name:<24}{value: .6e}" for name, value in rows]
        lines.append(f"  {'comparator':<24} {self.comparator_kind}"
                     f"{' (exact global minimiser)' if self.exact else ''}")
        lines.append(f"  {'pairs used / dropped':<24} {self.n_pairs} / {self.n_dropped}")
        lines.append(f"  {'solver':<24} {self.solver} (remaining gap {self.solver_gap:.2e})")
        holds = self.gap <= self.linear_term + 1e-12 * (abs(self.L_omega) + abs(self.L_comparator)) \
            and self.linear_term <= self.bound + 1e-12 * (abs(self.linear_term) + self.bound)
        lines.append(f"  {'gap ≤ linear ≤ bound':<24} {'holds' if holds else 'VIOLATED'}")
        return "\n".join(lines)


def _check_one_step(inner_steps):
    if inner_steps != 1:
        raise ValueError(f"inner_steps: Theorem 1 and Corollary 1 are proved for one inner step; "
                         f"got {inner_steps} (no bound is returned that nothing proves)")


#: optimality_bound's solver= choices
SOLVERS = ("auto", "exact", "matrix_free")


def _check_R(R):
    if isinstance(R, str):
        if R != "auto":
            raise ValueError(f"R must be 'auto' or a number >= 0, got {R!r}")
        return None
    return _validate.real("R", R, low=0)


def _packed64(tasks):
    Xs, ys, s_ptr, Xq, yq, q_ptr = tasks.packed()
    if tasks.dtype != np.float64:
        rows = Xs.shape[0] + (0 if tasks.same_data else Xq.shape[0])
        check_fits("a float64 copy of the float32 task rows (the bounds work in float64)",
                   rows * tasks.d * 8)
    as64 = lambda a: np.asarray(a, dtype=np.float64)
    Xs64 = as64(Xs)
    Xq64 = Xs64 if tasks.same_data else as64(Xq)
    return Xs64, as64(ys), s_ptr, Xq64, as64(yq), q_ptr


def _query_terms(loss, omega_i, Xq, yq, q_ptr, other_i=None):
    """Per query point (packed): l'(f_i(z_b), y_b) and, given other_i, Δ_i(z_b)."""
    threads = resolve_n_threads(None, Xq.size)
    f = np.empty(Xq.shape[0])
    delta = None if other_i is None else np.empty(Xq.shape[0])
    # both predictions in one pass over the query rows
    W2 = None if other_i is None else np.ascontiguousarray(omega_i - other_i)
    _kernels.task_rows_dot(Xq, q_ptr, np.ascontiguousarray(omega_i, dtype=np.float64), f,
                           threads, W2, delta)
    return loss.d1(f, yq), delta         # elementwise: one call, not one per task


class PairOperator:
    """The pair matrix A of theory.md §6, matrix-free, over the same-task pairs (a, b) with
    l'_b ≠ 0: A_(a,b) = s_i · b(x_a, y_a, z_b)ᵀ, s_i = p_i/√(ks_i kq_i), b at θ = ω.

    Pair vectors are flat: task i's block holds ks_i × kq_i entries (a major), dropped pairs
    held at 0. A v and Aᵀ r cost O(ks·kq + (ks + kq)·d) per task through G_i = Xs_i Xq_iᵀ."""

    def __init__(self, tasks, packed, omega, loss, inner_lr, keep):
        """packed: _packed64(tasks), the float64 arrays (made once by the caller)."""
        self.Xs, self.ys, self.s_ptr, self.Xq, self.yq, self.q_ptr = packed
        self.eta = float(inner_lr)
        self.h = loss.d2(self.Xs @ omega, self.ys)          # l''(x_aᵀω, y_a)
        n = tasks.n_tasks
        ks, kq = tasks.support_sizes, tasks.query_sizes
        self.scale = tasks.weights / np.sqrt(ks * kq)
        self.keep = keep.astype(np.float64)
        self.ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(ks * kq, out=self.ptr[1:])
        check_fits("the per-task Gram blocks Xs_i Xq_iᵀ of the pair operator",
                   int(self.ptr[-1]) * 8 * 3)
        pairs = int(self.ptr[-1])
        # typed kernels, parallel over tasks (each task writes only its own entries)
        self.n_threads = resolve_n_threads(None, 2 * pairs + self.n_points * tasks.d)
        self.G = np.empty(pairs)                   # Xs_i Xq_iᵀ, packed a-major per task
        _kernels.pair_blocks(self.Xs, self.s_ptr, self.Xq, self.q_ptr, self.ptr, self.G,
                             resolve_n_threads(None, pairs * tasks.d))
        self.n_tasks, self.d = n, tasks.d
        self.shape = (pairs, tasks.d)
        self._query_task = np.repeat(np.arange(n), kq)        # each query point's task
        # Aᵀr's partial sums: fixed blocks of tasks (from (n, d) alone), added in order
        self._block_ptr = block_ptr_for(n, n_blocks_for(n, tasks.d))

    def _blocks(self, i):
        return (slice(self.s_ptr[i], self.s_ptr[i + 1]), slice(self.q_ptr[i], self.q_ptr[i + 1]),
                slice(self.ptr[i], self.ptr[i + 1]))

    def _G(self, i):
        s, q, p = self._blocks(i)
        return self.G[p].reshape(s.stop - s.start, q.stop - q.start)

    def pair_values(self, per_query):
        """The pair vector s_i · per_query[b] on kept pairs (broadcast over a)."""
        values = self.scale[self._query_task] * per_query * self.keep
        out = np.empty(self.shape[0])
        _kernels.pair_expand(np.ascontiguousarray(values, dtype=np.float64), self.s_ptr,
                             self.q_ptr, self.ptr, out, self.n_threads)
        return out

    def matvec(self, v):
        """A v: one typed pass over each task's rows, parallel over tasks."""
        out = np.empty(self.shape[0])
        _kernels.pair_matvec_rows(self.Xs, self.Xq, np.ascontiguousarray(v, dtype=np.float64),
                                  self.h, self.G, self.scale, self.keep, self.s_ptr,
                                  self.q_ptr, self.ptr, self.eta, np.empty(self.Xs.shape[0]),
                                  np.empty(self.Xq.shape[0]), out, self.n_threads)
        return out

    def rmatvec(self, r):
        """Aᵀ r: per task the row coefficients, then Xq_iᵀcq_i + Xs_iᵀcs_i, summed in fixed
        blocks of tasks (parallel over blocks) and the blocks added in order."""
        block_out = np.empty((self._block_ptr.shape[0] - 1, self.d))
        _kernels.pair_rmatvec_rows(np.ascontiguousarray(r, dtype=np.float64), self.Xs, self.Xq,
                                   self.Xq is self.Xs, self.h, self.G, self.scale, self.keep,
                                   self.s_ptr, self.q_ptr, self.ptr, self._block_ptr, self.eta,
                                   np.empty(self.Xq.shape[0]), np.empty(self.Xs.shape[0]),
                                   block_out, self.n_threads)
        return block_out.sum(axis=0)

    @property
    def n_points(self):
        """N_U: the training points whose features span every row of A (support and query;
        the support alone in same-data mode)."""
        return self.Xs.shape[0] + (0 if self.Xq is self.Xs else self.Xq.shape[0])

    def span_coordinates(self):
        """(Zs, Zq): the support and query rows in an orthonormal basis of the span of the
        training features (Z Zᵀ = Φ_U Φ_Uᵀ). From the Cholesky factor of the Gram matrix when
        LAPACK's condition estimate is at most _SPAN_GRAM_COND (one GEMM), else from a thin
        QR Φ_Uᵀ = Q R, Z = Rᵀ (backward stable, twice the flops). Either way the floor is the
        distance of c from the range of the pair coefficients, whatever the (nonsingular)
        coordinates; R0 carries the coordinates' relative error, ~cond·eps ≤ 2e-10."""
        Ns = self.Xs.shape[0]
        same = self.Xq is self.Xs
        K = np.empty((self.n_points, self.n_points))      # blockwise: no copy of the rows
        K[:Ns, :Ns] = self.Xs @ self.Xs.T
        if not same:
            K[:Ns, Ns:] = self.Xs @ self.Xq.T
            K[Ns:, :Ns] = K[:Ns, Ns:].T
            K[Ns:, Ns:] = self.Xq @ self.Xq.T
        factor, _ = cholesky_if_conditioned(K, _SPAN_GRAM_COND)
        if factor is not None:
            Z = np.tril(factor[0])
        else:
            check_fits(f"the QR of the {self.n_points} training points' features (span route "
                       f"of the exact solver)", 2 * self.n_points * self.d * 8)
            U = np.concatenate([self.Xs] if same else [self.Xs, self.Xq])
            # mode="raw": R is the upper triangle of the top block (mode="r" would build the
            # full (d, N_U) R, whose triu cost as much as the factorisation at d = 65536)
            (qr, _), _ = linalg.qr(U.T, mode="raw", overwrite_a=True, check_finite=False)
            Z = np.ascontiguousarray(np.triu(qr[:min(qr.shape)]).T)
        return Z[:Ns], (Z[:Ns] if same else Z[Ns:])

    def dense_rows(self, Zs=None, Zq=None):
        """The kept rows of A as a dense (n_pairs, width) array, and their flat indices: in
        feature coordinates (width d), or in the coordinates (Zs, Zq) of span_coordinates."""
        Zs = self.Xs if Zs is None else Zs
        Zq = self.Xq if Zq is None else Zq
        rows, index = [], []
        for i in range(self.n_tasks):
            s, q, p = self._blocks(i)
            Xs, Xq = Zs[s], Zq[q]
            kept = np.flatnonzero(self.keep[q])
            blk = (Xq[kept][None, :, :] - self.eta * (self.h[s][:, None] * self._G(i)[:, kept])
                   [:, :, None] * Xs[:, None, :]) * self.scale[i]
            rows.append(blk.reshape(-1, Zs.shape[1]))
            kq = q.stop - q.start
            index.append(p.start + (np.arange(s.stop - s.start)[:, None] * kq + kept).ravel())
        return np.concatenate(rows), np.concatenate(index)


def _pair_setup(problem, omega, theta_dag=None):
    """(l', Δ or None, the pair operator) at ω: the adapted ω_i (and θ†_i when given), the
    derivative and comparator difference at every query point, and the operator over the
    pairs with l' ≠ 0. The float64 rows are made once, here."""
    tasks = problem.tasks
    check_fits("the adapted parameters ω_i and θ†_i of every task (2·n·d)",
               2 * tasks.n_tasks * tasks.d * 8)
    packed = _packed64(tasks)
    omega_i, dag_i = adapt_pair(problem, omega, theta_dag)      # one pass over the support
    l1, delta = _query_terms(problem.loss, omega_i, packed[3], packed[4], packed[5], dag_i)
    op = PairOperator(tasks, packed, omega, problem.loss, problem.inner_lr, l1 != 0)
    return l1, delta, op


@single_threaded_blas
def pair_gradient(omega, tasks, *, loss="squared", inner_lr=0.1, n_threads=None):
    """Aᵀ(√(M r)·w) through the pair operator: equals ∇L(ω) (theory.md §6's identity)."""
    problem = Problem(tasks, loss, inner_lr, 1, n_threads)
    l1, _, op = _pair_setup(problem, problem.theta(omega, "omega"))
    task_of_q = np.repeat(np.arange(tasks.n_tasks), tasks.query_sizes)
    return op.rmatvec(op.pair_values(l1 / tasks.weights[task_of_q]))


def _reported_value(R, eps, w_norm, c_norm, converge_floor):
    """What the matrix-free solver must converge: the bound at the R that will be used, and
    with converge_floor also R0 and the floor (to 1e-14·‖c‖, below which it is rounding)."""
    def value(core):
        r = core.best_radius(eps, w_norm) if R is None else R
        bound = r * eps + w_norm * core.residual(r)
        if not converge_floor:
            return bound
        floor = core.residual(core.free_norm)
        return bound, core.free_norm, floor + 1e-14 * c_norm
    return value


def exact_route(n_rows, d, n_points, n_tasks=1):
    """(route, cost, bytes) of the cheaper exact solver for a pair matrix of n_rows × d whose
    rows lie in the span of n_points training features: "direct" (SVD of A) or "span" (the
    features' Gram factor, then the SVD of A in those n_points coordinates)."""
    def svd(m, n):
        return _SVD_FACTOR * max(m, n) * min(m, n) ** 2
    assemble = _PER_TASK * n_tasks
    direct = (svd(n_rows, d) + 8.0 * n_rows * d + assemble, 3 * n_rows * d * 8)
    if n_points is None or n_points >= d:
        return ("direct",) + direct
    span = (1.0 * n_points ** 2 * d + svd(n_rows, n_points) + 8.0 * n_rows * n_points
            + assemble, 2 * n_points * d * 8 + 3 * n_rows * n_points * 8)
    return ("span",) + span if span[0] < direct[0] else ("direct",) + direct


def matrix_free_cost(n_rows, d, n_points):
    """Golub–Kahan's estimated cost (exact_route's units): iterations × (the pair operator's
    two passes over the rows, reorthogonalisation against the bases, fixed overhead)."""
    k = min(n_rows, d, 300)
    n_points = n_rows if n_points is None else n_points
    return k * (4.0 * n_points * d + 8.0 * n_rows + 4.0 * k * (n_rows + d) + _PER_ITERATION)


def choose_solver(n_rows, d, n_points, n_tasks=1):
    """solver="auto": "exact" when its cheaper route costs no more than Golub–Kahan and its
    arrays fit _EXACT_MAX_BYTES, else "matrix_free". Sizes only: never free memory or timing,
    so reports do not depend on the machine's state."""
    _, cost, nbytes = exact_route(n_rows, d, n_points, n_tasks)
    ok = (cost <= _EXACT_ALWAYS or cost <= matrix_free_cost(n_rows, d, n_points)) \
        and nbytes <= _EXACT_MAX_BYTES
    return "exact" if ok else "matrix_free"


def _make_solver(kind, dense, matvec, rmatvec, c, d, n_rows, tol, monitor=None,
                 n_points=None, n_tasks=1):
    """('exact' | 'matrix_free' | 'auto', already checked) -> a solver. dense(span) returns
    (A, c) in feature (span=False) or span coordinates. auto: choose_solver."""
    route, _, nbytes = exact_route(n_rows, d, n_points, n_tasks)
    if kind == "auto":
        kind = choose_solver(n_rows, d, n_points, n_tasks)
    if kind == "exact":
        check_fits(f"the dense pair matrix of the exact solver ({route} route; use "
                   f"solver='matrix_free')", nbytes)
        A, c_rows = dense(route == "span")
        return ExactSolver(A, c_rows, rank_scale=max(n_rows, d),
                           name="exact-svd" + ("-span" if route == "span" else ""))
    return GolubKahanSolver(matvec, rmatvec, c, d, tol=tol, monitor=monitor)


def _bound_terms(solver, R, eps, w_norm):
    """{R, repr_error, bound, repr_floor, R0, bound_R0}: the bound at R (None: minimised)
    and at R0 = ‖A⁺c‖; each repr evaluated at the solver's returned feasible v."""
    if R is None:
        R = solver.core.best_radius(eps, w_norm)
    _, repr_error = solver.solve(R)
    R0 = solver.free_norm
    _, floor = solver.solve(R0)
    return dict(R=R, repr_error=repr_error, bound=R * eps + w_norm * repr_error,
                repr_floor=floor, R0=R0, bound_R0=R0 * eps + w_norm * floor)


@single_threaded_blas
def optimality_bound(omega, tasks, *, loss="squared", inner_lr=0.1, inner_steps=1,
                     comparator=None, R="auto", solver="auto", tol=1e-8,
                     converge_floor=False, n_threads=None):
    """Theorem 1 on finite samples at ω: gap ≤ linear_term ≤ bound (docs/theory.md §6).

    Parameters
    ----------
    omega : array_like, shape (d,)
        The point to certify (e.g. fit(...).theta).
    tasks : Tasks
    loss, inner_lr, n_threads
        As for `meta_loss_grad`.
    inner_steps : int, default 1
        Theorem 1 is proved for one inner step: any other value is a ValueError.
    comparator : array_like (d,), optional
        θ†; default the exact global minimiser (squared loss only).
    R : float or "auto", default "auto"
        The radius; "auto" minimises the bound over R.
    solver : {"auto", "exact", "matrix_free"}, default "auto"
        The sup over the ball: SVD (in the features' span when smaller), or Golub–Kahan on
        the typed pair operator; "auto" picks by fixed cost estimates of the sizes.
    tol : float, default 1e-8
        The matrix-free solver's relative accuracy of the bound.
    converge_floor : bool, default False
        Matrix-free only: iterate until R0 and the floor converge too (without it they are
        those of the Krylov space: repr_floor an upper bound of the floor, bound_R0 still a
        valid bound). The exact solver's are exact.

    Returns
    -------
    BoundReport

    Raises
    ------
    TypeError, ValueError
        A bad argument, named; inner_steps != 1; no comparator for a loss without a closed
        form.
    NumericalOverflowError
        A term overflowed although the inputs are finite.

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> rng = np.random.default_rng(1)
    >>> tasks = gomaml.Tasks(rng.normal(size=(10, 4, 6)), rng.normal(size=(10, 4)))
    >>> res = gomaml.fit(tasks, tol=1e-9)
    >>> rep = gomaml.optimality_bound(res.theta, tasks)
    >>> bool(rep.gap <= rep.bound), bool(rep.eps <= 1e-9)
    (True, True)
    """
    _check_one_step(inner_steps)
    problem = Problem(tasks, loss, inner_lr, inner_steps, n_threads)
    omega = problem.theta(omega, "omega")
    R = _check_R(R)
    _validate.positive("tol", tol)
    _validate.choice("solver", solver, SOLVERS)
    if comparator is None:
        if problem.loss.name != "squared":
            raise ValueError(f"comparator: no closed-form global minimiser exists for the "
                             f"{problem.loss.name} loss; pass comparator=θ† explicitly")
        theta_dag = global_minimizer(tasks, loss=problem.loss, inner_lr=problem.inner_lr,
                                     n_threads=problem.n_threads)[0]
        kind = "closed_form"
    else:
        theta_dag = problem.theta(comparator, "comparator")
        kind = "user"
    if not isinstance(converge_floor, (bool, np.bool_)):
        raise TypeError(f"converge_floor must be True or False, got {converge_floor!r}")
    return theorem1_report(problem, omega, theta_dag, kind, R=R, solver=solver, tol=tol,
                           converge_floor=bool(converge_floor))


@single_threaded_blas
def theorem1_report(problem, omega, theta_dag, kind, *, R=None, solver="auto", tol=1e-8,
                    converge_floor=True):
    """The BoundReport of Theorem 1 at ω against the comparator θ† (validated arguments;
    kind "closed_form" when θ† is the exact minimiser). R None: minimise the bound.
    converge_floor: as optimality_bound's (the study asks for the floor)."""
    tasks = problem.tasks
    kw = dict(loss=problem.loss, inner_lr=problem.inner_lr, n_threads=problem.n_threads)
    L_omega, grad = meta_loss_grad(omega, tasks, **kw)
    L_dag = meta_loss(theta_dag, tasks, **kw)
    eps = norm(grad)
    l1, delta, op = _pair_setup(problem, omega, theta_dag)
    kq = tasks.query_sizes
    task_of_q = np.repeat(np.arange(tasks.n_tasks), kq)
    w_norm = norm(l1 / np.sqrt(kq[task_of_q]))
    linear = float(np.sum(tasks.weights[task_of_q] / kq[task_of_q] * l1 * delta))
    keep = l1 != 0
    ks_of_q = tasks.support_sizes[task_of_q]
    n_pairs, n_dropped = int(ks_of_q[keep].sum()), int(ks_of_q[~keep].sum())
    c = op.pair_values(delta)

    def dense(span):
        A, index = op.dense_rows(*op.span_coordinates()) if span else op.dense_rows()
        return A, c[index]

    solv = _make_solver(solver, dense, op.matvec, op.rmatvec, c, tasks.d, n_pairs, tol,
                        _reported_value(R, eps, w_norm, norm(c), converge_floor), op.n_points,
                        tasks.n_tasks)
    return BoundReport(gap=L_omega - L_dag, linear_term=linear, eps=eps, w_norm=w_norm,
                       **_bound_terms(solv, R, eps, w_norm), comparator_kind=kind,
                       exact=kind == "closed_form", n_pairs=n_pairs, n_dropped=n_dropped,
                       solver=solv.name, solver_gap=float(solv.gap), loss=problem.loss.name,
                       inner_lr=problem.inner_lr, inner_steps=1, L_omega=L_omega,
                       L_comparator=L_dag)


def shared_inputs(tasks):
    """X (k, d) float64 when tasks are in same-data mode and all share task 0's inputs;
    else ValueError naming what is different (Corollary 1's setting, theory.md §7)."""
    if not tasks.same_data:
        raise ValueError("tasks: Corollary 1 needs same-data mode (query = support, "
                         "Xq = yq = None) and the same inputs for every task")
    X0 = tasks.task(0)[0]
    for i in range(1, tasks.n_tasks):
        Xi = tasks.task(i)[0]
        if Xi.shape != X0.shape or not np.array_equal(Xi, X0):
            raise ValueError(f"tasks: Corollary 1 needs every task to share task 0's inputs; "
                             f"task {i}'s inputs differ")
    return np.asarray(X0, dtype=np.float64)


@single_threaded_blas
def corollary1_bound(omega, tasks, *, inner_lr=0.1, inner_steps=1, R="auto", n_threads=None):
    """Corollary 1 (squared loss, every task on the same inputs; docs/theory.md §7):
    bound = R·ε + 2R̄·repr(R), with u computed as Δ (never as the ratio); ‖W‖_ρ is reported as
    w_norm_tight.

    Parameters
    ----------
    omega : array_like, shape (d,)
    tasks : Tasks
        Every task's query inputs must be the same points (ValueError otherwise).
    inner_lr, inner_steps, R, n_threads
        As for `optimality_bound`.

    Returns
    -------
    BoundReport

    Raises
    ------
    TypeError, ValueError, NumericalOverflowError
        As for `optimality_bound`; tasks whose inputs differ.

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(6, 8))                       # one set of inputs, 5 tasks
    >>> tasks = gomaml.Tasks(np.stack([X] * 5), rng.normal(size=(5, 6)))
    >>> rep = gomaml.corollary1_bound(gomaml.fit(tasks, max_iter=30).theta, tasks)
    >>> bool(rep.gap <= rep.bound), rep.w_norm_tight <= rep.w_norm
    (True, True)
    """
    _check_one_step(inner_steps)
    problem = Problem(tasks, "squared", inner_lr, inner_steps, n_threads)
    omega = problem.theta(omega, "omega")
    R = _check_R(R)
    X = shared_inputs(tasks)
    k, d = X.shape
    eta = problem.inner_lr
    kw = dict(loss="squared", inner_lr=eta, n_threads=problem.n_threads)
    theta_star = global_minimizer(tasks, **kw)[0]
    L_omega, grad = meta_loss_grad(omega, tasks, **kw)
    L_star = meta_loss(theta_star, tasks, **kw)
    eps = norm(grad)
    Y = np.asarray(tasks.packed()[1], dtype=np.float64).reshape(tasks.n_tasks, k)
    p = tasks.weights
    F = adapt(omega, tasks, **kw) @ X.T                        # f_i(x_b), (n, k)
    W = p @ (2 * (F - Y))
    R_bar = float(p @ np.sqrt(np.mean((F - Y) ** 2, axis=1)))
    diff = omega - theta_star
    Xd = X @ diff
    Delta = Xd - (2 * eta / k) * (X @ (X.T @ Xd))               # x_bᵀ K_η (ω − θ*)
    keep = W != 0
    linear = float(np.sum(W * Delta) / k)
    Xk = X[keep]
    XK = lambda: (Xk - (2 * eta / k) * ((Xk @ X.T) @ X)) / np.sqrt(k)
    c = Delta[keep] / np.sqrt(k)
    matvec = lambda v: (Xk @ v - (2 * eta / k) * (Xk @ (X.T @ (X @ v)))) / np.sqrt(k)
    rmatvec = lambda r: (Xk.T @ r - (2 * eta / k) * (X.T @ (X @ (Xk.T @ r)))) / np.sqrt(k)
    w_norm = 2 * R_bar
    solv = _make_solver("auto", lambda span: (XK(), c), matvec, rmatvec, c, d, int(keep.sum()),
                        1e-10, _reported_value(R, eps, w_norm, norm(c), True))
    return BoundReport(gap=L_omega - L_star, linear_term=linear, eps=eps, w_norm=w_norm,
                       **_bound_terms(solv, R, eps, w_norm), comparator_kind="closed_form",
                       exact=True, n_pairs=int(keep.sum()), n_dropped=int((~keep).sum()),
                       solver=solv.name, solver_gap=float(solv.gap), loss="squared",
                       inner_lr=eta, inner_steps=1, L_omega=L_omega, L_comparator=L_star,
                       w_norm_tight=norm(W) / math.sqrt(k))


@single_threaded_blas
def functional_derivative(omega, tasks, *, loss="squared", inner_lr=0.1, inner_steps=1,
                          measure="task", n_threads=None):
    """The functional derivative of L at ω, one value per query point.

    Parameters
    ----------
    omega : array_like, shape (d,)
    tasks : Tasks
    loss, inner_lr, inner_steps, n_threads
        As for `meta_loss_grad` (inner_steps must be 1).
    measure : {"task", "mixture"}, default "task"
        "task": l'(f_i(z_b), y_b), the derivative for task i's own query distribution
        (Proposition 2); "mixture": l'/p_i, for the mixture ρ of docs/theory.md §6.

    Returns
    -------
    ndarray of float64, shape (Σ kq_i,)
        Packed like the query rows (task 0's first).

    Raises
    ------
    TypeError, ValueError
        A bad argument, named.

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> tasks = gomaml.Tasks(np.ones((2, 3, 2)), np.ones((2, 3)))
    >>> np.round(gomaml.functional_derivative(np.zeros(2), tasks), 12)   # 2(0.4 − 1)
    array([-1.2, -1.2, -1.2, -1.2, -1.2, -1.2])
    """
    if measure not in ("task", "mixture"):
        raise ValueError(f"measure must be 'task' or 'mixture', got {measure!r}")
    problem = Problem(tasks, loss, inner_lr, inner_steps, n_threads)
    omega = problem.theta(omega, "omega")
    omega_i = adapt(omega, tasks, loss=problem.loss, inner_lr=problem.inner_lr,
                    inner_steps=problem.inner_steps, n_threads=problem.n_threads)
    _, _, _, Xq, yq, q_ptr = _packed64(tasks)
    l1, _ = _query_terms(problem.loss, omega_i, Xq, yq, q_ptr)
    if measure == "mixture":
        with np.errstate(over="ignore"):             # checked just below
            l1 = l1 / np.repeat(tasks.weights, tasks.query_sizes)
    if not np.isfinite(l1).all():
        raise NumericalOverflowError(
            f"the functional derivative (measure={measure!r}) overflowed although the inputs "
            f"are finite: l' / p_i exceeds the float range; rescale the labels or the weights")
    return l1
