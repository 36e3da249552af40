"""Property-based fuzzing of the public API (hypothesis; derandomised and without deadlines so
it is stable under load): no crash, no non-finite result without an error, and results equal
to tests/reference.py within a tolerance scaled by the sum of absolute terms."""
import math

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st   # noqa: E402

import gomaml                                                           # noqa: E402
from conftest import as_reference                                       # noqa: E402
import reference as ref                                                 # noqa: E402

def fuzz(max_examples):
    return settings(deadline=None, derandomize=True, database=None, max_examples=max_examples,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LOSSES = ["squared", "logistic", "pseudo_huber"]


@st.composite
def problems(draw):
    """(tasks, theta, loss, inner_lr, inner_steps, first_order): ragged or same-data tasks,
    float32 or float64, scales from tiny to overflowing."""
    n = draw(st.integers(1, 4))
    d = draw(st.integers(1, 5))
    loss = draw(st.sampled_from(LOSSES))
    same = draw(st.booleans())
    scale = 10.0 ** draw(st.sampled_from([-3, 0, 0, 0, 1, 2, 160]))
    elems = st.floats(-3, 3, allow_nan=False, allow_infinity=False, width=32)

    def block(k):
        return np.array(draw(st.lists(elems, min_size=k * d, max_size=k * d)),
                        dtype=np.float64).reshape(k, d) * scale

    def labels(k):
        if loss == "logistic":
            return np.array(draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=k,
                                          max_size=k)))
        return np.array(draw(st.lists(elems, min_size=k, max_size=k)), dtype=np.float64)

    ks = [draw(st.integers(1, 4)) for _ in range(n)]
    kq = [draw(st.integers(1, 4)) for _ in range(n)]
    Xs, ys = [block(k) for k in ks], [labels(k) for k in ks]
    Xq = yq = None
    if not same:
        Xq, yq = [block(k) for k in kq], [labels(k) for k in kq]
    weights = draw(st.one_of(st.none(), st.lists(st.floats(1e-3, 1e3), min_size=n,
                                                  max_size=n)))
    dtype = np.float64 if scale > 1e30 else draw(st.sampled_from([np.float64, np.float32]))
    tasks = gomaml.Tasks(Xs, ys, Xq, yq, weights=weights, dtype=dtype)
    # a step below 2/λ_max(H) keeps the inner loop contractive, except at huge scales
    with np.errstate(over="ignore"):
        rows = max(float(np.max(np.sum(x.astype(np.float64) ** 2, axis=1))) for x in Xs)
    u = draw(st.floats(0.01, 1.0))
    inner_lr = u / (1.0 + rows) if rows < 1e100 else u      # huge scales: meant to overflow
    theta = np.array(draw(st.lists(elems, min_size=d, max_size=d)), dtype=np.float64)
    return (tasks, theta, loss, inner_lr, draw(st.integers(1, 3)), draw(st.booleans()))


def _scale(theta, tasks, loss, eta, T, first_order):
    """(S_val, S_grad): Σ_i p_i of the sums of absolute terms that the meta-loss and the
    meta-gradient are computed from (a running-error scale): |θ| plus the inner steps'
    |η l'_a x_a|, the query residuals' |x_b|·|θ_i| + |y_b|, and J_iᵀ's norm."""
    S_val = S_grad = 0.0
    for p, (Xs, ys, Xq, yq) in zip(tasks.weights, as_reference(tasks)):
        th, th_abs = np.array(theta), np.abs(theta)
        JT = np.eye(len(theta))
        for _ in range(T):
            z = Xs @ th
            _, l1, l2 = ref.loss_parts(loss, z, ys)
            th_abs = th_abs + eta * np.abs(l1) @ np.abs(Xs) / len(ys)
            if not first_order:
                JT = JT @ (np.eye(len(theta)) - eta * ref.risk_hessian(th, Xs, ys, loss))
            th = th - eta * ref.risk_grad(th, Xs, ys, loss)
        zq_abs = np.abs(Xq) @ th_abs + np.abs(yq)
        l0, l1, l2 = ref.loss_parts(loss, Xq @ th, yq)
        S_val += p * np.mean(np.abs(l0) + np.abs(l1) * zq_abs)
        g_abs = (np.abs(l1) + np.abs(l2) * zq_abs) @ np.abs(Xq) / len(yq)
        S_grad += p * (np.linalg.norm(JT, 2) + 1.0) * np.linalg.norm(g_abs) * \
            (1.0 + eta * T * float(np.max(np.sum(Xs ** 2, axis=1))))
    return S_val, S_grad


@fuzz(1500)
@given(problems())
def test_core_calls_match_the_reference_or_raise_overflow(problem):
    tasks, theta, loss, eta, T, first_order = problem
    kw = dict(loss=loss, inner_lr=eta, inner_steps=T)
    try:
        L, g = gomaml.meta_loss_grad(theta, tasks, first_order=first_order, **kw)
        before, after = gomaml.task_losses(theta, tasks, **kw)
        adapted = gomaml.adapt(theta, tasks, **kw)
    except gomaml.NumericalOverflowError:
        return                          # an error, never a silent inf or NaN
    assert math.isfinite(L) and np.isfinite(g).all()
    assert np.isfinite(before).all() and np.isfinite(after).all()
    assert np.isfinite(adapted).all()
    try:
        with np.errstate(all="ignore"):
            Lr, gr, _, _ = ref.meta_loss_grad(theta, as_reference(tasks), tasks.weights, loss,
                                              eta, T, first_order)
            S_val, S_grad = _scale(theta, tasks, loss, eta, T, first_order)
    except np.linalg.LinAlgError:       # the dense reference's x xᵀ overflowed (the kernels
        return                          # never form it)
    if not (np.isfinite(Lr) and np.isfinite(gr).all() and np.isfinite([S_val, S_grad]).all()):
        return                          # the float64 reference itself overflowed
    # the running-error scale, or the value itself where that scale underflows (a saturated
    # logistic loss at 1e160 features: terms of 1e-343)
    tol_val = 1e-10 * S_val + 1e-12 * abs(Lr) + 1e-300
    tol_grad = 1e-10 * S_grad + 1e-12 * np.abs(gr).max() + 1e-300
    assert abs(L - Lr) <= tol_val
    assert np.max(np.abs(g - gr)) <= tol_grad
    assert abs(float(tasks.weights @ after) - Lr) <= tol_val


@fuzz(400)
@given(problems())
def test_bounds_hold_or_raise(problem):
    tasks, theta, _, eta, _, _ = problem
    try:
        rep = gomaml.optimality_bound(theta, tasks, loss="squared", inner_lr=eta)
    except gomaml.NumericalOverflowError:
        return
    d = rep.to_dict()
    assert not any(isinstance(v, str) and v in ("inf", "-inf", "nan") for v in d.values()), d
    slack = 1e-9 * (abs(rep.L_omega) + abs(rep.L_comparator) + abs(rep.linear_term))
    assert rep.gap <= rep.linear_term + slack
    assert rep.linear_term <= rep.bound + slack + 1e-9 * rep.bound
