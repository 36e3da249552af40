import numpy as np
import pytest

import gomaml
from conftest import as_reference, make_tasks
import reference as ref


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("T", [1, 3])
@pytest.mark.parametrize("layout", ["ragged", "same"])
def test_against_dense_normal_equations(rng, T, layout, dtype):
    tasks = make_tasks(rng, n=8, d=5, layout=layout, dtype=dtype)
    eta = 0.2
    theta, L = gomaml.global_minimizer(tasks, inner_lr=eta, inner_steps=T)
    M, t = ref.stacked_rows(as_reference(tasks), tasks.weights, eta, T)
    assert M.shape[0] > M.shape[1]                       # full column rank: unique θ*
    want = np.linalg.solve(M.T @ M, M.T @ t)
    np.testing.assert_allclose(theta, want, rtol=1e-9, atol=1e-11 * np.abs(want).max())
    assert L == pytest.approx(float(np.sum((M @ want - t) ** 2)), rel=1e-10)
    L_lib, g = gomaml.meta_loss_grad(theta, tasks, inner_lr=eta, inner_steps=T)
    assert L == pytest.approx(L_lib, rel=1e-10)
    assert np.linalg.norm(g) <= 1e-9 * (1 + np.linalg.norm(M.T @ t))


@pytest.mark.parametrize("T", [1, 2])
def test_minimum_norm_when_interpolating(rng, T):
    tasks = make_tasks(rng, n=3, d=30, layout="ragged")
    eta = 0.1
    res = gomaml.global_minimizer(tasks, inner_lr=eta, inner_steps=T)
    theta, L = res
    M, t = ref.stacked_rows(as_reference(tasks), tasks.weights, eta, T)
    assert M.shape[0] < M.shape[1] and res.route == "cholesky-gram"
    np.testing.assert_allclose(theta, np.linalg.pinv(M) @ t, rtol=1e-8, atol=1e-12)
    assert abs(L) <= 1e-20 + 1e-12 * float(t @ t)         # interpolation: absolute tolerance


def test_singular_fallback_is_min_norm_and_reported(rng):
    # every task identical: the Gram matrix of the stacked rows is singular
    X = rng.normal(size=(1, 4, 10))
    y = rng.normal(size=(1, 4))
    tasks = gomaml.Tasks(np.repeat(X, 3, 0), np.repeat(y, 3, 0))
    res = gomaml.global_minimizer(tasks, inner_lr=0.1)
    assert res.route == "svd-lstsq" and res.rank == 4
    M, t = ref.stacked_rows(as_reference(tasks), tasks.weights, 0.1, 1)
    np.testing.assert_allclose(res.theta_star, np.linalg.pinv(M) @ t, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("loss", ["logistic", "pseudo_huber", gomaml.PseudoHuber(2.0)])
def test_other_losses_are_refused(rng, loss):
    tasks = make_tasks(rng, n=2, d=3, loss="logistic")
    with pytest.raises(ValueError, match="closed form only for the squared loss"):
        gomaml.global_minimizer(tasks, loss=loss, inner_lr=0.1)


@pytest.mark.parametrize("T", [1, 2])
def test_mixed_precision_route_is_float64_accurate(rng, monkeypatch, T):
    """The float32-Gram preconditioned route must give the float64 minimum-norm solution."""
    from gomaml import minimizer
    monkeypatch.setattr(minimizer, "_MIXED_MIN_WORK", 0)
    tasks = make_tasks(rng, n=6, d=80, layout="ragged")
    res = gomaml.global_minimizer(tasks, inner_lr=0.1, inner_steps=T)
    assert res.route == "cholesky-gram-mixed"
    M, t = ref.stacked_rows(as_reference(tasks), tasks.weights, 0.1, T)
    want = np.linalg.pinv(M) @ t
    np.testing.assert_allclose(res.theta_star, want, rtol=1e-10, atol=1e-13 * np.abs(want).max())
    _, g = gomaml.meta_loss_grad(res.theta_star, tasks, inner_lr=0.1, inner_steps=T)
    assert np.linalg.norm(g) <= 1e-10 * (1 + np.linalg.norm(M.T @ t))


def test_mixed_precision_falls_back_when_ill_conditioned(rng, monkeypatch):
    from gomaml import minimizer
    monkeypatch.setattr(minimizer, "_MIXED_MIN_WORK", 0)
    X = rng.normal(size=(4, 3, 40))
    X[1] = X[0] + 1e-7 * rng.normal(size=(3, 40))       # nearly repeated rows
    tasks = gomaml.Tasks(X, rng.normal(size=(4, 3)))
    res = gomaml.global_minimizer(tasks, inner_lr=0.1)
    assert res.route != "cholesky-gram-mixed"
    M, t = ref.stacked_rows(as_reference(tasks), tasks.weights, 0.1, 1)
    want = np.linalg.lstsq(M, t, rcond=None)[0]
    assert np.linalg.norm(M @ res.theta_star - t) <= np.linalg.norm(M @ want - t) + 1e-9
