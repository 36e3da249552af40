"""KernelTasks (docs/theory.md §11): the kernel form gives the feature form's numbers, and at
d = ∞ the Ψ route agrees with the inner loop run directly in kernel coefficients."""
import numpy as np
import pytest

import gomaml
from gomaml import features, kernels

ETA = {"squared": 0.3, "logistic": 1.0, "pseudo_huber": 0.8}


def raw_tasks(seed, layout="ragged", loss="squared", n=6, p=4):
    rng = np.random.default_rng(seed)
    ks = [3, 2, 4, 3, 2, 3][:n] if layout == "ragged" else [3] * n
    kq = [2, 3, 2, 2, 3, 1][:n] if layout == "ragged" else [2] * n
    lab = (lambda k: rng.choice([-1.0, 1.0], size=k)) if loss == "logistic" else \
        (lambda k: rng.normal(size=k))
    Xs = [rng.normal(size=(k, p)) for k in ks]
    ys = [lab(k) for k in ks]
    if layout == "same":
        return Xs, ys, None, None
    return Xs, ys, [rng.normal(size=(k, p)) for k in kq], [lab(k) for k in kq]


def both_forms(raw, fmap, weights=None):
    Xs, ys, Xq, yq = raw
    f = lambda X: None if X is None else [fmap.transform(x) for x in X]
    feat = gomaml.Tasks(f(Xs), ys, f(Xq), yq, weights=weights)
    kt = gomaml.KernelTasks(Xs, ys, Xq, yq, kernel=fmap, weights=weights)
    return feat, kt


def training_rows(tasks):
    Xs, _, _, Xq, _, _ = tasks.packed()
    return np.asarray(Xs) if tasks.same_data else np.concatenate([Xs, Xq])


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


@pytest.mark.parametrize("T", [1, 2, 3])
@pytest.mark.parametrize("loss", ["squared", "logistic", "pseudo_huber"])
@pytest.mark.parametrize("layout", ["ragged", "same"])
def test_objective_and_gradient_norm_agree_in_the_span(layout, loss, T):
    fmap = features.RandomReLU(80, seed=1).fit(4)
    weights = np.random.default_rng(2).uniform(0.5, 2.0, 6)
    feat, kt = both_forms(raw_tasks(3, layout, loss), fmap, weights)
    assert kt.n_points == training_rows(feat).shape[0] and kt.d == 80
    a = np.random.default_rng(4).normal(size=kt.n_points) / kt.n_points
    theta_f = training_rows(feat).T @ a
    theta_k = training_rows(kt.tasks).T @ a
    kw = dict(loss=loss, inner_lr=ETA[loss], inner_steps=T)
    Lf, gf = gomaml.meta_loss_grad(theta_f, feat, **kw)
    Lk, gk = gomaml.meta_loss_grad(theta_k, kt.tasks, **kw)
    assert rel(Lk, Lf) <= 1e-9
    assert rel(np.linalg.norm(gk), np.linalg.norm(gf)) <= 1e-9
    # coefficients invert Ψᵀa up to the null space of K: the same function values
    a2 = kt.coefficients(theta_k)
    np.testing.assert_allclose(training_rows(feat) @ (training_rows(feat).T @ a2),
                               training_rows(feat) @ theta_f, rtol=1e-9, atol=1e-12)


def test_fit_history_minimiser_and_bound_terms_agree():
    fmap = features.RandomReLU(120, seed=5).fit(4)
    feat, kt = both_forms(raw_tasks(6), fmap)
    kw = dict(inner_lr=0.3)
    hf = gomaml.fit(feat, tol=0, max_iter=30, **kw).history
    hk = gomaml.fit(kt.tasks, tol=0, max_iter=30, **kw).history
    np.testing.assert_allclose(hk["loss"], hf["loss"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hk["grad_norm"], hf["grad_norm"], rtol=1e-7, atol=1e-12)
    Lf = gomaml.global_minimizer(feat, **kw)[1]
    Lk = gomaml.global_minimizer(kt.tasks, **kw)[1]
    assert abs(Lk - Lf) <= 1e-9 * max(Lf, 1e-3)
    a = np.random.default_rng(7).normal(size=kt.n_points) / 10
    om_f, om_k = training_rows(feat).T @ a, training_rows(kt.tasks).T @ a
    rf = gomaml.optimality_bound(om_f, feat, R=0.5, solver="exact", converge_floor=True, **kw)
    rk = gomaml.optimality_bound(om_k, kt.tasks, R=0.5, solver="exact", converge_floor=True,
                                 **kw)
    assert abs(rk.gap - rf.gap) <= 1e-9 * rf.L_omega
    for k in ("linear_term", "eps", "w_norm", "repr_error", "bound", "R0", "bound_R0"):
        assert rel(getattr(rk, k), getattr(rf, k)) <= 1e-9, k
    assert abs(rk.repr_floor - rf.repr_floor) <= 1e-9 * (rf.R0 * rf.eps + rf.bound)


def test_new_tasks_and_predictions_through_the_kernel():
    fmap = features.NeuralTangent(20, seed=8).fit(4)
    feat, kt = both_forms(raw_tasks(9), fmap)
    res = gomaml.fit(feat, inner_lr=0.3, tol=1e-10, max_iter=200)
    resk = gomaml.fit(kt.tasks, inner_lr=0.3, tol=1e-10, max_iter=200)
    Xs, ys, Xq, yq = raw_tasks(10, n=4)
    f = lambda X: [fmap.transform(x) for x in X]
    for loss in ("squared", "pseudo_huber"):
        kw = dict(loss=loss, inner_lr=0.3, inner_steps=2)
        bf, af = gomaml.task_losses(res.theta, gomaml.Tasks(f(Xs), ys, f(Xq), yq), **kw)
        bk, ak = kt.task_losses(resk.theta, Xs, ys, Xq, yq, **kw)
        np.testing.assert_allclose(bk, bf, rtol=1e-8)
        np.testing.assert_allclose(ak, af, rtol=1e-8)
    Z = np.random.default_rng(11).normal(size=(5, 4))
    np.testing.assert_allclose(kt.predict(resk.theta, Z),
                               gomaml.predict(res.theta, fmap.transform(Z)), rtol=1e-8)
    support = (Xs[0], ys[0])
    adapted = gomaml.adapt(res.theta, gomaml.Tasks([fmap.transform(Xs[0])], [ys[0]]),
                           inner_lr=0.3, inner_steps=2)[0]
    np.testing.assert_allclose(
        kt.predict(resk.theta, Z, support=support, inner_lr=0.3, inner_steps=2),
        fmap.transform(Z) @ adapted, rtol=1e-8)


@pytest.mark.parametrize("kernel", [kernels.RBF(1.5), kernels.ReLU(), kernels.NTK(),
                                    kernels.Linear(bias=True)])
def test_infinite_width_psi_route_equals_the_coefficient_route(kernel):
    # the Ψ route (meta-objective on exact kernel features) against the inner loop run
    # directly in kernel coefficients on the training tasks themselves
    raw = raw_tasks(12, p=3)
    kt = gomaml.KernelTasks(*raw, kernel=kernel)
    assert kt.d == float("inf") and kt.rank <= kt.n_points
    theta = np.random.default_rng(13).normal(size=kt.rank) / 3
    for loss in ("squared", "pseudo_huber"):
        kw = dict(loss=loss, inner_lr=0.4, inner_steps=2)
        before, after = gomaml.task_losses(theta, kt.tasks, **kw)
        b2, a2 = kt.task_losses(theta, *raw, **kw)
        np.testing.assert_allclose(b2, before, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(a2, after, rtol=1e-8, atol=1e-12)


def test_duplicate_inputs_share_rows_and_bad_arguments():
    rng = np.random.default_rng(14)
    X = rng.normal(size=(3, 2, 2))
    kt = gomaml.KernelTasks(X, rng.normal(size=(3, 2)), X.copy(), rng.normal(size=(3, 2)),
                            kernel=kernels.RBF())
    Psi = training_rows(kt.tasks)
    np.testing.assert_array_equal(Psi[:6], Psi[6:])           # query inputs = support inputs
    with pytest.raises(TypeError, match="kernel must be"):
        gomaml.KernelTasks(X, np.ones((3, 2)), kernel="rbf")
    with pytest.raises(ValueError, match="not fitted"):
        gomaml.KernelTasks(X, np.ones((3, 2)), kernel=features.RandomReLU(10))
    with pytest.raises(ValueError, match=r"theta: expected shape"):
        kt.coefficients(np.ones(kt.rank + 1))


def _aug(X):
    Xt = np.hstack([X / np.sqrt(X.shape[1]), np.ones((len(X), 1))])
    return Xt, np.linalg.norm(Xt, axis=1)


def _angle(X, Y):
    (a, na), (b, nb) = _aug(X), _aug(Y)
    return a @ b.T, np.arccos(np.clip(a @ b.T / np.outer(na, nb), -1, 1)), np.outer(na, nb)


INDEPENDENT = {   # the kernels' formulas written again, elementwise, for the check below
    "rbf": (kernels.RBF(1.3), lambda X, Y: np.exp(
        -((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1) / (2 * 1.3 ** 2))),
    "relu": (kernels.ReLU(), lambda X, Y: (lambda dot, t, nn: nn / np.pi * (
        np.sin(t) + (np.pi - t) * np.cos(t)))(*_angle(X, Y))),
    "ntk": (kernels.NTK(), lambda X, Y: (lambda dot, t, nn: dot * (np.pi - t)
                                         / (2 * np.pi))(*_angle(X, Y))),
}


@pytest.mark.parametrize("name", sorted(INDEPENDENT))
def test_infinite_width_against_an_independent_kernel_form(name):
    # another Ψ (the symmetric square root of K, from the formula above) gives the same
    # L, ‖∇L‖, L(θ*) and Theorem 1 terms: they depend on K alone
    kernel, formula = INDEPENDENT[name]
    Xs, ys, Xq, yq = raw_tasks(15, p=3)
    kt = gomaml.KernelTasks(Xs, ys, Xq, yq, kernel=kernel)
    U = np.concatenate(Xs + Xq)
    K = formula(U, U)
    lam, V = np.linalg.eigh(K)
    Psi = (V * np.sqrt(np.clip(lam, 0, None))) @ V.T
    ns = sum(len(x) for x in Xs)
    sizes_s, sizes_q = [len(x) for x in Xs], [len(x) for x in Xq]
    split = lambda A, sizes: np.split(A, np.cumsum(sizes)[:-1])
    other = gomaml.Tasks(split(Psi[:ns], sizes_s), ys, split(Psi[ns:], sizes_q), yq)
    a = np.random.default_rng(16).normal(size=len(U)) / len(U)
    th_k, th_o = training_rows(kt.tasks).T @ a, Psi.T @ a
    kw = dict(inner_lr=0.3)
    Lk, gk = gomaml.meta_loss_grad(th_k, kt.tasks, **kw)
    Lo, go = gomaml.meta_loss_grad(th_o, other, **kw)
    assert rel(Lk, Lo) <= 1e-8 and rel(np.linalg.norm(gk), np.linalg.norm(go)) <= 1e-8
    assert abs(gomaml.global_minimizer(kt.tasks, **kw)[1]
               - gomaml.global_minimizer(other, **kw)[1]) <= 1e-8 * Lo
    rk = gomaml.optimality_bound(th_k, kt.tasks, R=0.4, solver="exact", **kw)
    ro = gomaml.optimality_bound(th_o, other, R=0.4, solver="exact", **kw)
    for k in ("linear_term", "eps", "w_norm", "repr_error", "bound"):
        assert rel(getattr(rk, k), getattr(ro, k)) <= 1e-8, k
    assert abs(rk.gap - ro.gap) <= 1e-8 * ro.L_omega


def test_corollary1_through_psi_over_the_distinct_inputs():
    # Corollary 1's setting: same-data mode, every task on the same inputs. Ψ is built over
    # the distinct inputs, so the tasks' rows stay equal and the corollary applies
    rng = np.random.default_rng(17)
    X = rng.normal(size=(5, 3))
    Xs = [X.copy() for _ in range(4)]
    ys = [rng.normal(size=5) for _ in range(4)]
    fmap = features.RandomReLU(40, seed=18).fit(3)
    feat = gomaml.Tasks([fmap.transform(x) for x in Xs], ys)
    kt = gomaml.KernelTasks(Xs, ys, kernel=fmap)
    assert kt.rank <= 5
    a = rng.normal(size=kt.n_points) / 10
    rf = gomaml.corollary1_bound(training_rows(feat).T @ a, feat, inner_lr=0.2, R=0.3)
    rk = gomaml.corollary1_bound(training_rows(kt.tasks).T @ a, kt.tasks, inner_lr=0.2, R=0.3)
    for k in ("linear_term", "eps", "w_norm", "w_norm_tight", "repr_error", "bound"):
        assert rel(getattr(rk, k), getattr(rf, k)) <= 1e-9, k
    assert abs(rk.gap - rf.gap) <= 1e-9 * rf.L_omega
