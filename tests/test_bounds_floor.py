"""The representation floor repr(∞), R0 = ‖A⁺c‖ and bound_R0 (theory.md, "What a bound
report says"), and the two thresholds of the squared-loss study (theory.md, "The two
thresholds"), against A and c built here from their definitions."""
import numpy as np
import pytest

import gomaml
from conftest import as_reference
import reference as ref


def pair_system(omega, theta_dag, tasks, loss, eta):
    """(A, c) of Theorem 1 over the same-task pairs with l'_b ≠ 0, from the definitions:
    row (a, b) = √(p²/(ks kq)) (φ(z_b) − η l''(φ(x_a)ᵀω) (φ(x_a)ᵀφ(z_b)) φ(x_a)),
    c_(a,b) = √(p²/(ks kq)) φ(z_b)ᵀ(ω_i − θ†_i)."""
    rows, c = [], []
    for p, (Xs, ys, Xq, yq) in zip(tasks.weights, as_reference(tasks)):
        w_i = ref.inner_path(omega, Xs, ys, loss, eta, 1)[-1]
        t_i = ref.inner_path(theta_dag, Xs, ys, loss, eta, 1)[-1]
        _, l1, _ = ref.loss_parts(loss, Xq @ w_i, yq)
        _, _, h = ref.loss_parts(loss, Xs @ omega, ys)
        s = np.sqrt(p * p / (len(ys) * len(yq)))
        for a in range(len(ys)):
            for b in np.flatnonzero(l1 != 0):
                rows.append(s * (Xq[b] - eta * h[a] * (Xs[a] @ Xq[b]) * Xs[a]))
                c.append(s * (Xq[b] @ (w_i - t_i)))
    return np.array(rows), np.array(c)


def random_tasks(rng, n, ks, kq, d, same=False, weights=None):
    Xs = rng.normal(size=(n, ks, d)) / np.sqrt(d)
    ys = rng.normal(size=(n, ks))
    if same:
        return gomaml.Tasks(Xs, ys, weights=weights)
    return gomaml.Tasks(Xs, ys, rng.normal(size=(n, kq, d)) / np.sqrt(d),
                        rng.normal(size=(n, kq)), weights=weights)


@pytest.mark.parametrize("loss", ["squared", "logistic", "pseudo_huber"])
@pytest.mark.parametrize("d", [6, 40])
def test_R0_and_floor_against_a_dense_pseudo_inverse(loss, d):
    rng = np.random.default_rng(d)
    eta = {"squared": 0.2, "logistic": 1.0, "pseudo_huber": 0.8}[loss]
    tasks = random_tasks(rng, 4, 3, 2, d, weights=rng.uniform(0.5, 2, 4))
    omega, dag = rng.normal(size=d), rng.normal(size=d)
    if loss == "logistic":
        Xs = rng.normal(size=(4, 3, d)) / np.sqrt(d)
        tasks = gomaml.Tasks(Xs, rng.choice([-1.0, 1.0], size=(4, 3)),
                             rng.normal(size=(4, 2, d)) / np.sqrt(d),
                             rng.choice([-1.0, 1.0], size=(4, 2)))
    A, c = pair_system(omega, dag, tasks, loss, eta)
    pinv = np.linalg.pinv(A, rcond=max(A.shape) * np.finfo(float).eps)
    v0 = pinv @ c
    R0, floor = np.linalg.norm(v0), np.linalg.norm(A @ v0 - c)
    for solver in ("exact", "matrix_free"):
        rep = gomaml.optimality_bound(omega, tasks, loss=loss, inner_lr=eta, comparator=dag,
                                      solver=solver, tol=1e-12, converge_floor=True)
        assert rep.R0 == pytest.approx(R0, rel=1e-8)
        assert abs(rep.repr_floor - floor) <= 1e-8 * np.linalg.norm(c)
        assert rep.bound_R0 == pytest.approx(rep.R0 * rep.eps + rep.w_norm * rep.repr_floor,
                                             rel=1e-12)
        assert rep.bound <= rep.bound_R0 * (1 + 1e-9)         # R0 is one candidate radius
        assert rep.linear_term <= rep.bound_R0 * (1 + 1e-12)  # it is a bound too


def test_below_the_interpolation_threshold_the_minimum_is_positive():
    rng = np.random.default_rng(1)
    tasks = random_tasks(rng, 6, 3, 3, 10)        # d = 10 < N_query = 18
    _, L_star = gomaml.global_minimizer(tasks, inner_lr=0.3)
    assert L_star > 1e-6


@pytest.mark.parametrize("d", [30, 45, 200])
def test_at_interpolation_with_equal_weights_the_bound_is_twice_the_gap(d):
    # N_query = 30 distinct query points; d >= 30 gives full stacked rank: L(θ*) = 0, u ∝ w,
    # and the bound equals the linear term = 2·gap (Cauchy–Schwarz with equality)
    rng = np.random.default_rng(d)
    tasks = random_tasks(rng, 10, 3, 3, d)
    sol = gomaml.global_minimizer(tasks, inner_lr=0.3)
    assert sol.rank == 30 and sol.L_star <= 1e-20
    omega = sol.theta_star + 1e-2 * rng.normal(size=d)
    rep = gomaml.optimality_bound(omega, tasks, inner_lr=0.3)
    assert rep.eps >= 1e-7
    assert rep.bound / rep.gap == pytest.approx(2.0, abs=1e-6)
    assert rep.linear_term / rep.gap == pytest.approx(2.0, abs=1e-9)


def test_rich_features_reach_a_zero_floor_but_same_data_does_not():
    rng = np.random.default_rng(7)
    n, ks, kq = 5, 3, 3
    N_rows = n * (ks + kq)
    d = 2 * N_rows
    tasks = random_tasks(rng, n, ks, kq, d)
    omega = rng.normal(size=d)
    A, c = pair_system(omega, gomaml.global_minimizer(tasks, inner_lr=0.3)[0], tasks,
                       "squared", 0.3)
    for solver in ("exact", "matrix_free"):
        rep = gomaml.optimality_bound(omega, tasks, inner_lr=0.3, solver=solver,
                                      converge_floor=True)
        assert rep.repr_floor <= 1e-10 * np.linalg.norm(c)
        assert rep.bound_R0 == pytest.approx(rep.R0 * rep.eps, rel=1e-8)
    same = random_tasks(rng, n, ks, kq, d, same=True)
    omega = rng.normal(size=d)
    A, c = pair_system(omega, gomaml.global_minimizer(same, inner_lr=0.3)[0], same,
                       "squared", 0.3)
    floors = [gomaml.optimality_bound(omega, same, inner_lr=0.3, solver=s,
                                      converge_floor=True).repr_floor
              for s in ("exact", "matrix_free")]
    assert min(floors) > 1e-6 * np.linalg.norm(c)
    assert floors[1] == pytest.approx(floors[0], rel=1e-6)


def test_without_converge_floor_the_matrix_free_terms_are_still_valid():
    rng = np.random.default_rng(11)
    tasks = random_tasks(rng, 6, 4, 4, 30)       # 96 pairs > d = 30: a positive floor
    omega, dag = rng.normal(size=30), rng.normal(size=30)
    exact = gomaml.optimality_bound(omega, tasks, inner_lr=0.3, comparator=dag, solver="exact")
    quick = gomaml.optimality_bound(omega, tasks, inner_lr=0.3, comparator=dag,
                                    solver="matrix_free", tol=1e-3)
    assert exact.repr_floor > 0
    assert quick.repr_floor >= exact.repr_floor * (1 - 1e-9)     # an upper bound of the floor
    assert quick.bound_R0 >= quick.linear_term                     # still a valid bound
    assert quick.bound == pytest.approx(exact.bound, rel=1e-2)
    with pytest.raises(TypeError, match="converge_floor"):
        gomaml.optimality_bound(omega, tasks, inner_lr=0.3, comparator=dag, converge_floor=1)
