import json
import math

import numpy as np
from scipy import optimize
import pytest

import gomaml
from gomaml.bounds import pair_gradient
from gomaml.trust_region import ExactSolver, GolubKahanSolver
from conftest import as_reference, make_tasks
import reference as ref

ETA = {"squared": 0.2, "logistic": 1.0, "pseudo_huber": 0.8}


def assert_chain(rep):
    """theory.md §6: gap ≤ linear_term ≤ bound, with its rounding allowance."""
    assert rep.gap <= rep.linear_term + 1e-12 * (abs(rep.L_omega) + abs(rep.L_comparator))
    assert rep.linear_term <= rep.bound + 1e-12 * (abs(rep.linear_term) + rep.bound)
    assert rep.bound == pytest.approx(rep.R * rep.eps + rep.w_norm * rep.repr_error, rel=1e-12)


def _with_zero_derivatives(rng, tasks, loss, omega, eta):
    """Tasks whose query labels equal the adapted prediction at some points, so l'_b = 0
    there (squared, pseudo-Huber) and those pairs are dropped."""
    omega_i = gomaml.adapt(omega, tasks, loss=loss, inner_lr=eta)
    Xs, ys, Xq, yq = [], [], [], []
    for i in range(tasks.n_tasks):
        a, b, c, e = (np.array(v) for v in tasks.task(i))
        hit = rng.random(len(e)) < 0.4
        e[hit] = c[hit] @ omega_i[i]
        Xs.append(a), ys.append(b), Xq.append(c), yq.append(e)
    return gomaml.Tasks(Xs, ys, Xq, yq, weights=tasks.weights)


@pytest.mark.parametrize("loss", ["squared", "logistic", "pseudo_huber"])
def test_chain_on_many_random_instances(loss):
    rng = np.random.default_rng({"squared": 1, "logistic": 2, "pseudo_huber": 3}[loss])
    eta = ETA[loss]
    checked = dropped = 0
    for trial in range(70):
        n, d = int(rng.integers(1, 5)), int(rng.integers(1, 7))
        tasks = make_tasks(rng, n=n, d=d, layout="ragged", loss=loss,
                           dtype=np.float32 if trial % 5 == 0 else np.float64)
        omega = rng.normal(size=d)
        if loss != "logistic" and trial % 3 == 0:
            tasks = _with_zero_derivatives(rng, tasks, loss, omega, eta)
        comparators = [rng.normal(size=d)]
        if loss == "squared":
            comparators.append(None)
        for comp in comparators:
            for R in ("auto", 0.0, float(rng.uniform(0, 3))):
                rep = gomaml.optimality_bound(omega, tasks, loss=loss, inner_lr=eta,
                                              comparator=comp, R=R)
                assert_chain(rep)
                assert rep.comparator_kind == ("closed_form" if comp is None else "user")
                checked += 1
                dropped += rep.n_dropped > 0
    assert checked >= 200 and (loss == "logistic" or dropped > 0)


@pytest.mark.parametrize("loss", ["squared", "logistic", "pseudo_huber"])
def test_pair_identity_equals_meta_gradient(rng, loss):
    tasks = make_tasks(rng, n=6, d=5, layout="ragged", loss=loss)
    omega = rng.normal(size=5)
    got = pair_gradient(omega, tasks, loss=loss, inner_lr=ETA[loss])
    _, want = gomaml.meta_loss_grad(omega, tasks, loss=loss, inner_lr=ETA[loss])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14 * np.abs(want).max())


@pytest.mark.parametrize("loss", ["squared", "pseudo_huber"])
def test_terms_against_reference(rng, loss):
    tasks = make_tasks(rng, n=4, d=3, layout="ragged", loss=loss)
    omega, comp = rng.normal(size=3), rng.normal(size=3)
    eta = ETA[loss]
    rep = gomaml.optimality_bound(omega, tasks, loss=loss, inner_lr=eta, comparator=comp)
    refs = as_reference(tasks)
    w2 = lin = 0.0
    for p, task in zip(tasks.weights, refs):
        wi = ref.inner_path(omega, task[0], task[1], loss, eta, 1)[-1]
        ci = ref.inner_path(comp, task[0], task[1], loss, eta, 1)[-1]
        l1 = ref.loss_parts(loss, task[2] @ wi, task[3])[1]
        w2 += np.sum(l1 ** 2) / len(l1)
        lin += p * np.mean(l1 * (task[2] @ (wi - ci)))
    assert rep.w_norm == pytest.approx(np.sqrt(w2), rel=1e-12)
    assert rep.linear_term == pytest.approx(lin, rel=1e-10)
    assert rep.gap == pytest.approx(ref.meta_loss(omega, refs, tasks.weights, loss, eta, 1)
                                    - ref.meta_loss(comp, refs, tasks.weights, loss, eta, 1),
                                    rel=1e-10)


def test_squared_linear_term_is_gradient_inner_product(rng):
    """For the squared loss the adapted map is affine: linear_term = ∇L(ω)ᵀ(ω − θ†)."""
    tasks = make_tasks(rng, n=5, d=4, layout="ragged")
    omega, comp = rng.normal(size=4), rng.normal(size=4)
    rep = gomaml.optimality_bound(omega, tasks, inner_lr=0.2, comparator=comp)
    _, g = gomaml.meta_loss_grad(omega, tasks, inner_lr=0.2)
    assert rep.linear_term == pytest.approx(g @ (omega - comp), rel=1e-10)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_exact_and_matrix_free_agree(rng, loss):
    tasks = make_tasks(rng, n=5, d=12, layout="ragged", loss=loss)
    omega, comp = rng.normal(size=12), rng.normal(size=12)
    kw = dict(loss=loss, inner_lr=ETA[loss], comparator=comp)
    for R in ("auto", 0.5):
        a = gomaml.optimality_bound(omega, tasks, solver="exact", **kw)
        b = gomaml.optimality_bound(omega, tasks, solver="matrix_free", tol=1e-12, **kw)
        assert a.solver == "exact-svd" and b.solver == "golub-kahan"
        assert b.bound == pytest.approx(a.bound, rel=1e-6)
        assert b.repr_error == pytest.approx(a.repr_error, rel=1e-5, abs=1e-10)
        assert_chain(a), assert_chain(b)


def _random_ls(rng, m=30, d=12):
    A = rng.normal(size=(m, d)) @ np.diag(np.logspace(0, -3, d))
    return A, rng.normal(size=m)


def test_trust_region_solution_on_the_ball(rng):
    A, c = _random_ls(rng)
    s = ExactSolver(A, c)
    for R in (0.1 * s.free_norm, 0.5 * s.free_norm):
        v, r = s.solve(R)
        assert np.linalg.norm(v) == pytest.approx(R, rel=1e-10)
        assert r == pytest.approx(np.linalg.norm(A @ v - c), rel=1e-14)
        # KKT: Aᵀ(Av − c) = −λ v with λ ≥ 0
        gvec = A.T @ (A @ v - c)
        lam = -(gvec @ v) / (v @ v)
        assert lam >= 0
        np.testing.assert_allclose(gvec, -lam * v, atol=1e-8 * np.abs(gvec).max())
    v, r = s.solve(2 * s.free_norm)          # interior: the least-squares solution
    np.testing.assert_allclose(v, np.linalg.lstsq(A, c, rcond=None)[0], rtol=1e-8)


def _bounded_search(residual, free_norm, eps, w_norm):
    """The bound's radius by SciPy's bounded scalar search of R·eps + w·residual(R) over
    [0, free_norm] (to 1e-10·free_norm), the endpoints as candidates too."""
    if free_norm <= 0:
        return 0.0
    scale = free_norm * eps + w_norm * residual(0.0)
    f = lambda R: (R * eps) / scale + (w_norm / scale) * residual(R)
    res = optimize.minimize_scalar(f, bounds=(0.0, free_norm), method="bounded",
                                   options={"xatol": 1e-10 * free_norm})
    return min([0.0, free_norm, float(res.x)], key=f)


@pytest.mark.parametrize("scale", [1.0, 1e-120, 1e120])
@pytest.mark.parametrize("in_range", [False, True])
def test_best_radius_matches_a_bounded_search_at_any_scale(rng, scale, in_range):
    """SVDCore.best_radius (a root of λR(λ)/ρ(λ) = eps/w) against a bounded 1-D
    search of R·eps + w·ρ(R): never a larger bound; and the Newton solve of the secular
    equation lands on the sphere, with the KKT sign, for B and f of any scale."""
    from gomaml.trust_region import SVDCore
    for _ in range(20):
        B = rng.normal(size=(25, 8)) @ np.diag(np.logspace(0, -rng.uniform(0, 3), 8)) * scale
        f = B @ rng.normal(size=8) if in_range else rng.normal(size=25) * scale
        core = SVDCore(B, f)
        eps, w = 10 ** rng.uniform(-5, 1), 10 ** rng.uniform(-2, 1)
        F = lambda R: R * eps + w * core.residual(R)
        R_search = _bounded_search(core.residual, core.free_norm, eps, w)
        R_best = core.best_radius(eps, w)
        assert 0 <= R_best <= core.free_norm
        assert F(R_best) <= F(R_search) * (1 + 1e-14)
        for R in (1e-9 * core.free_norm, 0.5 * core.free_norm):
            y, lam = core.solve(R)
            assert np.linalg.norm(y) == pytest.approx(R, rel=1e-12) and lam > 0
            gvec = B.T @ (B @ y - f)                  # KKT: Bᵀ(By − f) = −λ y
            np.testing.assert_allclose(gvec, -lam * y, atol=1e-8 * np.abs(gvec).max())


def test_repr_non_increasing_and_matrix_free_matches(rng):
    A, c = _random_ls(rng)
    ex = ExactSolver(A, c)
    gk = GolubKahanSolver(lambda v: A @ v, lambda r: A.T @ r, c, A.shape[1], tol=1e-14)
    Rs = np.linspace(0, 1.2 * ex.free_norm, 25)
    values = [ex.solve(R)[1] for R in Rs]
    assert all(b <= a + 1e-12 * a for a, b in zip(values, values[1:]))
    for R, val in zip(Rs, values):
        v, r = gk.solve(R)
        assert np.linalg.norm(v) <= R * (1 + 1e-12) + 1e-300
        assert r == pytest.approx(val, rel=1e-6, abs=1e-12)


def test_edge_cases_of_R(rng):
    tasks = make_tasks(rng, n=3, d=4, layout="ragged")
    theta_star, _ = gomaml.global_minimizer(tasks, inner_lr=0.2)
    # at ω = θ* the gradient vanishes (ε ≈ 0): the bound is rounding-sized
    rep = gomaml.optimality_bound(theta_star, tasks, inner_lr=0.2)
    assert rep.eps < 1e-10 and abs(rep.gap) < 1e-12 and rep.bound < 1e-8
    assert_chain(rep)


def test_bad_arguments(rng):
    tasks = make_tasks(rng, n=3, d=4, loss="logistic")
    omega = np.zeros(4)
    with pytest.raises(ValueError, match="inner_steps: Theorem 1 .* one inner step"):
        gomaml.optimality_bound(omega, tasks, inner_steps=2)
    with pytest.raises(ValueError, match="comparator: no closed-form"):
        gomaml.optimality_bound(omega, tasks, loss="logistic")
    with pytest.raises(ValueError, match="R must be"):
        gomaml.optimality_bound(omega, tasks, R=-1.0)
    with pytest.raises(ValueError, match="R must be"):
        gomaml.optimality_bound(omega, tasks, R="best")
    with pytest.raises(ValueError, match="solver: unknown name"):
        gomaml.optimality_bound(omega, tasks, solver="magic")
    with pytest.raises(ValueError, match=r"comparator: expected shape \(4,\)"):
        gomaml.optimality_bound(omega, tasks, comparator=np.zeros(3))
    with pytest.raises(ValueError, match="omega: contains NaN"):
        gomaml.optimality_bound(np.full(4, np.nan), tasks)
    with pytest.raises(ValueError, match="measure must be"):
        gomaml.functional_derivative(omega, tasks, measure="uniform")


def test_report_formats(rng):
    tasks = make_tasks(rng, n=3, d=4, layout="ragged")
    rep = gomaml.optimality_bound(np.ones(4), tasks, inner_lr=0.2)
    text = str(rep)
    for word in ("gap", "linear term", "bound", "repr error", "exact-svd", "holds"):
        assert word in text
    rep.solver_gap = math.inf
    rep.L_omega = math.nan
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["solver_gap"] == "inf" and d["L_omega"] == "nan" and d["exact"] is True


# ---- Corollary 1 -------------------------------------------------------------------------
def shared_tasks(rng, n=5, k=6, d=4, weighted=True):
    X = rng.normal(size=(k, d)) / np.sqrt(d)
    Y = rng.normal(size=(n, k))
    w = rng.uniform(0.5, 2, size=n) if weighted else None
    return gomaml.Tasks(np.broadcast_to(X, (n, k, d)), Y, weights=w), X


@pytest.mark.parametrize("d", [3, 8])
def test_corollary1(rng, d):
    eta = 0.3
    tasks, X = shared_tasks(rng, d=d)
    for trial in range(20):
        omega = rng.normal(size=d)
        rep = gomaml.corollary1_bound(omega, tasks, inner_lr=eta)
        assert_chain(rep)
        assert rep.w_norm_tight <= rep.w_norm * (1 + 1e-12)
        theta_star, _ = gomaml.global_minimizer(tasks, inner_lr=eta)
        # Δ_i(x_b) = x_bᵀ(ω_i − θ*_i) is the same for every task
        deltas = (gomaml.adapt(omega, tasks, inner_lr=eta)
                  - gomaml.adapt(theta_star, tasks, inner_lr=eta)) @ X.T
        np.testing.assert_allclose(deltas, np.broadcast_to(deltas[0], deltas.shape),
                                   rtol=1e-10, atol=1e-12 * np.abs(deltas).max())
        _, g = gomaml.meta_loss_grad(omega, tasks, inner_lr=eta)
        dist = np.linalg.norm(omega - theta_star)
        assert rep.linear_term == pytest.approx(g @ (omega - theta_star), rel=1e-9)
        # at R = ‖ω − θ*‖ the representation term vanishes: bound = ε‖ω − θ*‖
        at = gomaml.corollary1_bound(omega, tasks, inner_lr=eta, R=dist)
        assert at.repr_error <= 1e-9 * (1 + dist)
        assert at.bound == pytest.approx(rep.eps * dist, rel=1e-8)
        assert rep.bound <= at.bound * (1 + 1e-9)            # auto R is no worse


def test_corollary1_needs_shared_inputs(rng):
    tasks = make_tasks(rng, n=3, d=4, layout="dense")
    with pytest.raises(ValueError, match="same-data mode"):
        gomaml.corollary1_bound(np.zeros(4), tasks)
    X = rng.normal(size=(3, 5, 4))
    with pytest.raises(ValueError, match="task 1's inputs differ"):
        gomaml.corollary1_bound(np.zeros(4), gomaml.Tasks(X, rng.normal(size=(3, 5))))


# ---- functional derivative ----------------------------------------------------------------
@pytest.mark.parametrize("loss", ["squared", "logistic", "pseudo_huber"])
def test_functional_derivative(rng, loss):
    tasks = make_tasks(rng, n=4, d=3, layout="ragged", loss=loss)
    omega = rng.normal(size=3)
    eta = ETA[loss]
    got = gomaml.functional_derivative(omega, tasks, loss=loss, inner_lr=eta)
    mix = gomaml.functional_derivative(omega, tasks, loss=loss, inner_lr=eta, measure="mixture")
    want = []
    for task in as_reference(tasks):
        wi = ref.inner_path(omega, task[0], task[1], loss, eta, 1)[-1]
        want.append(ref.loss_parts(loss, task[2] @ wi, task[3])[1])
    want = np.concatenate(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(mix, want / np.repeat(tasks.weights, tasks.query_sizes),
                               rtol=1e-14)


@pytest.mark.parametrize("T_layout", ["ragged", "same"])
def test_squared_gap_is_half_the_linear_term(rng, T_layout):
    """L is quadratic with minimiser θ*: L(ω) − L(θ*) = ½ ∇L(ω)ᵀ(ω − θ*) exactly."""
    tasks = make_tasks(rng, n=6, d=5, layout=T_layout)
    for _ in range(5):
        rep = gomaml.optimality_bound(rng.normal(size=5), tasks, inner_lr=0.2)
        assert rep.gap == pytest.approx(rep.linear_term / 2, rel=1e-9)


def test_memory_estimate_fails_with_the_size(rng, monkeypatch):
    """Before building anything large, the memory it needs is estimated and named."""
    from gomaml import _memory
    tasks = make_tasks(rng, n=4, d=6, layout="ragged")
    monkeypatch.setattr(_memory, "available_bytes", lambda: 600)
    with pytest.raises(MemoryError, match=r"stacked least-squares matrix .* would need about "
                                          r"[0-9.]+ KiB, more than 50% of the 600 B"):
        gomaml.global_minimizer(tasks, inner_lr=0.2)
    with pytest.raises(MemoryError, match=r"adapted parameters .* 384 B"):
        gomaml.optimality_bound(np.zeros(6), tasks, inner_lr=0.2, comparator=np.ones(6))


def test_auto_solver_takes_matrix_free_route_when_dense_is_too_big(rng, monkeypatch):
    from gomaml import bounds
    tasks = make_tasks(rng, n=4, d=6, layout="ragged")
    monkeypatch.setattr(bounds, "_EXACT_MAX_BYTES", 10)
    rep = gomaml.optimality_bound(np.zeros(6), tasks, inner_lr=0.2, comparator=np.ones(6))
    assert rep.solver == "golub-kahan"
    assert_chain(rep)


def test_auto_rule_depends_on_sizes_only():
    from gomaml.bounds import exact_route
    # the default study's largest row: 500 pairs, d = 65536, 200 training points
    assert exact_route(500, 65536, 200)[0] == "span"
    assert exact_route(500, 64, 200)[0] == "direct"          # N_U > d: no span route
    assert exact_route(500, 200, 200)[0] == "direct"         # N_U = d: nothing to gain
    from gomaml.bounds import choose_solver
    # the sizes measured (bench/bound_solvers.py, bench/bounds_table.py): the faster solver
    for d in (64, 256, 4096, 65536):              # the default study: 20 tasks, 500 pairs
        assert choose_solver(500, d, 200, 20) == "exact"
    assert choose_solver(100_000, 100, 20_000, 1000) == "matrix_free"     # 1000 × 10 × 100
    assert choose_solver(40_000, 10_000, 4000, 100) == "matrix_free"     # 100 × 20 × 10⁴
    assert choose_solver(40_000, 1000, 4000, 100) == "matrix_free"


@pytest.mark.parametrize("gram_cond", [0.0, 1e12])       # span coordinates: QR, Cholesky
@pytest.mark.parametrize("layout", ["ragged", "same"])
def test_span_route_equals_the_direct_exact_solver(rng, layout, gram_cond, monkeypatch):
    from gomaml import bounds
    monkeypatch.setattr(bounds, "_SPAN_GRAM_COND", gram_cond)
    tasks = make_tasks(rng, n=4, d=90, layout=layout)      # N_U ≤ 64 < d: the span route
    omega, comp = rng.normal(size=90), rng.normal(size=90)
    reps = {}
    for route in ("span", "direct"):
        real = bounds.exact_route
        bounds.exact_route = (lambda r: lambda m, d, n, t=1: (r,) + real(m, d, None, t)[1:])(
            route)
        try:
            reps[route] = [gomaml.optimality_bound(omega, tasks, inner_lr=0.2, comparator=comp,
                                                   solver="exact", R=R) for R in ("auto", 0.7)]
        finally:
            bounds.exact_route = real
    (a, a7), (b, b7) = reps["span"], reps["direct"]
    assert a.solver == "exact-svd-span" and b.solver == "exact-svd"
    # the minimising R is not compared: the bound is flat near its minimum
    for k in ("bound", "repr_floor", "R0", "bound_R0"):
        assert getattr(a, k) == pytest.approx(getattr(b, k), rel=1e-9, abs=1e-12), k
    assert a7.repr_error == pytest.approx(b7.repr_error, rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_solvers_agree_at_medium_size(loss):
    """Slow (-m slow): exact SVD and matrix-free Golub–Kahan at 2000 pairs × d = 4000."""
    rng = np.random.default_rng(7)
    tasks = make_tasks(rng, n=100, d=4000, layout="dense", loss=loss)
    omega, comp = rng.normal(size=4000) / 60, rng.normal(size=4000) / 60
    kw = dict(loss=loss, inner_lr=ETA[loss], comparator=comp)
    for R in ("auto", 0.3):
        a = gomaml.optimality_bound(omega, tasks, solver="exact", R=R, **kw)
        b = gomaml.optimality_bound(omega, tasks, solver="matrix_free", tol=1e-12, R=R, **kw)
        assert b.bound == pytest.approx(a.bound, rel=1e-6)
        assert_chain(a), assert_chain(b)


def test_huge_finite_labels_give_finite_terms_or_an_overflow_error():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(4, 5, 3))
    y = rng.normal(size=(4, 5))
    for scale in (1e150, 1e153):                 # norms of ~1e150 entries: no overflow
        tasks = gomaml.Tasks(X, scale * y)
        rep = gomaml.optimality_bound(np.zeros(3), tasks, inner_lr=0.3)
        for k, v in rep.to_dict().items():
            assert not (isinstance(v, str) and v in ("inf", "-inf", "nan")), (scale, k, v)
        assert rep.gap <= rep.linear_term * (1 + 1e-12) <= rep.bound * (1 + 1e-12)
        theta, L = gomaml.global_minimizer(tasks, inner_lr=0.3)
        assert np.isfinite(theta).all() and np.isfinite(L)
    tasks = gomaml.Tasks(X, 1e154 * y)           # L(0) itself exceeds the float range
    try:                                        # the minimum itself may still be finite
        theta, L = gomaml.global_minimizer(tasks, inner_lr=0.3)
        assert np.isfinite(theta).all() and np.isfinite(L)
    except gomaml.NumericalOverflowError:
        pass
    for call in (lambda: gomaml.optimality_bound(np.zeros(3), tasks, inner_lr=0.3),
                 lambda: gomaml.corollary1_bound(np.zeros(3), gomaml.Tasks(
                     np.repeat(X[:1], 4, 0), 1e154 * y), inner_lr=0.3)):
        with pytest.raises(gomaml.NumericalOverflowError):
            call()


def test_mixture_derivative_overflow_is_an_error():
    rng = np.random.default_rng(6)
    tasks = gomaml.Tasks(rng.normal(size=(3, 4, 2)), 1e10 * rng.normal(size=(3, 4)),
                         weights=[1e-300, 1.0, 1.0])
    assert np.isfinite(gomaml.functional_derivative(np.zeros(2), tasks, inner_lr=0.1)).all()
    with pytest.raises(gomaml.NumericalOverflowError, match="mixture"):
        gomaml.functional_derivative(np.zeros(2), tasks, inner_lr=0.1, measure="mixture")


def test_weights_that_normalise_to_zero_are_rejected():
    X, y = np.ones((3, 2, 2)), np.ones((3, 2))
    with pytest.raises(ValueError, match="weights: weight 0 .* is 0 once the weights are "
                                         "normalised"):
        gomaml.Tasks(X, y, weights=[1e-300, 1e300, 1.0])


@pytest.mark.parametrize("layout", ["ragged", "same"])
def test_pair_operator_kernels_match_the_dense_matrix_for_any_thread_count(rng, layout):
    from gomaml.bounds import PairOperator, _packed64
    from gomaml.losses import resolve_loss
    tasks = make_tasks(rng, n=9, d=7, layout=layout, loss="logistic")
    omega = rng.normal(size=7)
    keep = rng.random(tasks.total_query) < 0.8
    op = PairOperator(tasks, _packed64(tasks), omega, resolve_loss("logistic"), 0.7, keep)
    A, index = op.dense_rows()
    v, r = rng.normal(size=7), rng.normal(size=op.shape[0])
    np.testing.assert_allclose(op.matvec(v)[index], A @ v, rtol=1e-12, atol=1e-14)
    r[np.setdiff1d(np.arange(op.shape[0]), index)] = 0.0      # dropped pairs hold 0
    np.testing.assert_allclose(op.rmatvec(r), A.T @ r[index], rtol=1e-12, atol=1e-14)
    outs = []
    for threads in (1, 2, 3):
        op.n_threads = threads
        outs.append((op.matvec(v), op.rmatvec(r)))
    for o in outs[1:]:
        for x, y in zip(o, outs[0]):
            assert np.array_equal(x, y)


def test_task_rows_dot_matches_numpy_for_any_thread_count(rng):
    """The bound's per-query predictions f_i(z_b) = z_bᵀ ω_i, one typed pass over the rows."""
    from gomaml import _kernels
    tasks = make_tasks(rng, n=13, d=37, layout="ragged")
    _, _, _, Xq, _, q_ptr = tasks.packed()
    Xq = np.asarray(Xq, dtype=np.float64)
    W = rng.normal(size=(13, 37))
    want = np.concatenate([Xq[q_ptr[i]:q_ptr[i + 1]] @ W[i] for i in range(13)])
    W2 = rng.normal(size=(13, 37))
    want2 = np.concatenate([Xq[q_ptr[i]:q_ptr[i + 1]] @ W2[i] for i in range(13)])
    outs = []
    for threads in (1, 2, 3):
        out, one, two = np.empty(Xq.shape[0]), np.empty(Xq.shape[0]), np.empty(Xq.shape[0])
        _kernels.task_rows_dot(Xq, q_ptr, W, out, threads)
        _kernels.task_rows_dot(Xq, q_ptr, W, one, threads, W2, two)   # both in one pass
        assert np.array_equal(one, out)
        outs.append((out, two))
    assert all(np.array_equal(o[0], outs[0][0]) and np.array_equal(o[1], outs[0][1])
               for o in outs[1:])
    np.testing.assert_allclose(outs[0][0], want, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(outs[0][1], want2, rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="W2 and out2"):
        _kernels.task_rows_dot(Xq, q_ptr, W, out, 1, W2, None)
