import numpy as np
import pytest

import gomaml
from conftest import DTYPES, LOSSES, RTOL, as_reference, make_tasks, openmp_expected
import reference as ref

ETA = {"squared": 0.3, "logistic": 1.5, "pseudo_huber": 1.0}


def _theta(rng, d):
    return rng.normal(size=d)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["ragged", "dense", "same"])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("T", [1, 2, 5])
@pytest.mark.parametrize("loss", LOSSES)
def test_meta_loss_grad_matches_reference(rng, loss, T, first_order, layout, dtype):
    tasks = make_tasks(rng, n=9, d=6, layout=layout, loss=loss, dtype=dtype)
    theta = _theta(rng, 6)
    L, g = gomaml.meta_loss_grad(theta, tasks, loss=loss, inner_lr=ETA[loss], inner_steps=T,
                                 first_order=first_order, n_threads=2)
    Lr, gr, S_val, S_grad = ref.meta_loss_grad(theta, as_reference(tasks), tasks.weights, loss,
                                               ETA[loss], T, first_order)
    assert isinstance(L, float) and g.dtype == np.float64 and g.shape == (6,)
    assert abs(L - Lr) <= RTOL[dtype] * S_val
    assert np.max(np.abs(g - gr)) <= RTOL[dtype] * S_grad
    L2 = gomaml.meta_loss(theta, tasks, loss=loss, inner_lr=ETA[loss], inner_steps=T)
    assert abs(L2 - Lr) <= RTOL[dtype] * S_val


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T", [1, 3])
@pytest.mark.parametrize("loss", LOSSES)
def test_adapt_and_task_losses_match_reference(rng, loss, T, dtype):
    tasks = make_tasks(rng, n=6, d=5, layout="ragged", loss=loss, dtype=dtype)
    theta = _theta(rng, 5)
    kw = dict(loss=loss, inner_lr=ETA[loss], inner_steps=T)
    refs = as_reference(tasks)
    got = gomaml.adapt(theta, tasks, **kw)
    want = ref.adapt(theta, refs, loss, ETA[loss], T)
    scale = np.abs(want).max() + np.abs(theta).max()
    assert np.max(np.abs(got - want)) <= RTOL[dtype] * scale
    before, after = gomaml.task_losses(theta, tasks, **kw)
    rb, ra = ref.task_losses(theta, refs, loss, ETA[loss], T)
    np.testing.assert_allclose(before, rb, rtol=RTOL[dtype])
    np.testing.assert_allclose(after, ra, rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_adapt_pair_is_two_adapts_for_any_thread_count(rng, dtype):
    """The bound adapts ω and θ† in one pass over the support rows: each result has the bits
    of its own adapt call, for 1, 2 and 3 threads."""
    from gomaml._core import Problem
    from gomaml.objective import adapt_pair
    tasks = make_tasks(rng, n=9, d=70, layout="ragged", loss="logistic", dtype=dtype)
    theta, theta2 = _theta(rng, 70), _theta(rng, 70)
    for n_threads in (1, 2, 3):
        problem = Problem(tasks, "logistic", 0.3, 1, n_threads)
        a, b = adapt_pair(problem, theta, theta2)
        assert np.array_equal(a, gomaml.adapt(theta, tasks, loss="logistic", inner_lr=0.3))
        assert np.array_equal(b, gomaml.adapt(theta2, tasks, loss="logistic", inner_lr=0.3))
        assert adapt_pair(problem, theta)[1] is None


def _central_difference(f, x, h):
    g = np.empty_like(x)
    for j in range(len(x)):
        e = np.zeros_like(x)
        e[j] = h
        g[j] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T", [1, 2, 4])
@pytest.mark.parametrize("loss", LOSSES)
def test_gradient_against_finite_differences(rng, loss, T, dtype):
    tasks = make_tasks(rng, n=5, d=4, layout="ragged", loss=loss, dtype=dtype)
    theta = _theta(rng, 4)
    kw = dict(loss=loss, inner_lr=ETA[loss], inner_steps=T)
    _, g = gomaml.meta_loss_grad(theta, tasks, **kw)
    f = lambda t: gomaml.meta_loss(t, tasks, **kw)
    err = min(np.max(np.abs(_central_difference(f, theta, h) - g)) for h in (1e-3, 1e-4, 1e-5))
    assert err <= 1e-7 * (1 + np.max(np.abs(g)))
    # the first-order direction is a different vector: the check has teeth
    _, g_fo = gomaml.meta_loss_grad(theta, tasks, first_order=True, **kw)
    assert np.max(np.abs(g_fo - g)) > 1e3 * err


@pytest.mark.parametrize("loss", ["logistic", "pseudo_huber"])
def test_hessian_product_order(rng, loss):
    """Against the dense product (I − ηH⁽⁰⁾)…(I − ηH⁽ᵀ⁻¹⁾). With T ≥ 2 and a non-quadratic loss
    the reversed product, or all Hessians taken at θ, give a different gradient (theory.md §3)."""
    T, eta = 3, ETA[loss]
    tasks = make_tasks(rng, n=1, d=5, layout="dense", loss=loss, weighted=False, scale=2.0)
    theta = _theta(rng, 5)
    _, g = gomaml.meta_loss_grad(theta, tasks, loss=loss, inner_lr=eta, inner_steps=T)
    Xs, ys, Xq, yq = as_reference(tasks)[0]
    path = ref.inner_path(theta, Xs, ys, loss, eta, T)
    factors = [np.eye(5) - eta * ref.risk_hessian(p, Xs, ys, loss) for p in path[:-1]]
    gq = ref.risk_grad(path[-1], Xq, yq, loss)
    right = np.linalg.multi_dot(factors) @ gq
    reversed_ = np.linalg.multi_dot(factors[::-1]) @ gq
    frozen = np.linalg.matrix_power(factors[0], T) @ gq
    scale = np.abs(right).max()
    assert np.max(np.abs(g - right)) <= 1e-12 * scale
    assert np.max(np.abs(g - reversed_)) > 1e-6 * scale
    assert np.max(np.abs(g - frozen)) > 1e-6 * scale


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LOSSES)
def test_thread_count_is_bit_identical(rng, loss, dtype):
    tasks = make_tasks(rng, n=150, d=33, layout="ragged", loss=loss, dtype=dtype)
    theta = _theta(rng, 33)
    kw = dict(loss=loss, inner_lr=ETA[loss], inner_steps=2)
    L1, g1 = gomaml.meta_loss_grad(theta, tasks, n_threads=1, **kw)
    L2, g2 = gomaml.meta_loss_grad(theta, tasks, n_threads=2, **kw)
    L3, g3 = gomaml.meta_loss_grad(theta, tasks, n_threads=3, **kw)
    assert L1 == L2 == L3
    assert np.array_equal(g1, g2) and np.array_equal(g1, g3)
    a1 = gomaml.adapt(theta, tasks, n_threads=1, **kw)
    a2 = gomaml.adapt(theta, tasks, n_threads=2, **kw)
    assert np.array_equal(a1, a2)
    b1 = gomaml.task_losses(theta, tasks, n_threads=1, **kw)
    b2 = gomaml.task_losses(theta, tasks, n_threads=2, **kw)
    assert np.array_equal(b1[0], b2[0]) and np.array_equal(b1[1], b2[1])


def test_build_has_openmp():
    """Fails on a serial build unless GOMAML_EXPECT_SERIAL=1 says that is intended."""
    info = gomaml.build_info()
    assert info["openmp"] == openmp_expected()
    assert set(info) >= {"version", "openmp", "max_threads", "blas", "boundscheck"}
    assert info["version"] == gomaml.__version__


def test_read_only_inputs(rng):
    tasks = make_tasks(rng, n=4, d=3, layout="dense")
    theta = _theta(rng, 3)
    theta.flags.writeable = False
    L, g = gomaml.meta_loss_grad(theta, tasks)
    assert np.isfinite(L) and np.isfinite(g).all()
    Xs = np.ones((2, 3, 4))
    ys = np.ones((2, 3))
    Xs.flags.writeable = False
    ys.flags.writeable = False
    t = gomaml.Tasks(Xs, ys)
    # θ₁ = 0 − 0.1·(2/3)·Σ(0 − 1)·𝟙 = 0.2·𝟙, so z = 0.8 and L = (0.8 − 1)² = 0.04
    assert gomaml.meta_loss(np.zeros(4), t) == pytest.approx(0.04, rel=1e-14)


def test_same_data_equals_explicit_copy(rng):
    X = rng.normal(size=(5, 4, 3))
    y = rng.normal(size=(5, 4))
    theta = _theta(rng, 3)
    for loss in ("squared", "pseudo_huber"):
        a = gomaml.meta_loss_grad(theta, gomaml.Tasks(X, y), loss=loss, inner_steps=2)
        b = gomaml.meta_loss_grad(theta, gomaml.Tasks(X, y, X.copy(), y.copy()), loss=loss,
                                  inner_steps=2)
        assert a[0] == b[0] and np.array_equal(a[1], b[1])


def test_weights_are_used(rng):
    X = rng.normal(size=(2, 4, 3))
    y = rng.normal(size=(2, 4))
    theta = _theta(rng, 3)
    L = [gomaml.meta_loss(theta, gomaml.Tasks(X[i:i + 1], y[i:i + 1])) for i in range(2)]
    Lw = gomaml.meta_loss(theta, gomaml.Tasks(X, y, weights=[1.0, 3.0]))
    assert Lw == pytest.approx(0.25 * L[0] + 0.75 * L[1], rel=1e-14)


def test_predict(rng):
    X = rng.normal(size=(5, 3))
    t = rng.normal(size=3)
    np.testing.assert_array_equal(gomaml.predict(t, X), X @ t)
    assert gomaml.predict(t, X[0]) == pytest.approx(float(X[0] @ t))
    with pytest.raises(ValueError, match="X: expected shape"):
        gomaml.predict(t, np.ones((5, 4)))
    with pytest.raises(TypeError, match="X"):
        gomaml.predict(t, np.array([["a", "b", "c"]]))


# ---- bad input ---------------------------------------------------------------------------
@pytest.fixture
def small(rng):
    return make_tasks(rng, n=3, d=4, layout="dense", loss="logistic")


@pytest.mark.parametrize("fn", [gomaml.meta_loss_grad, gomaml.meta_loss, gomaml.adapt,
                                gomaml.task_losses])
@pytest.mark.parametrize("theta, kwargs, exc, match", [
    (np.zeros(3), {}, ValueError, r"theta: expected shape \(4,\)"),
    (np.array([0, 0, np.nan, 0]), {}, ValueError, "theta: contains NaN or inf"),
    (np.array([0, 0, np.inf, 0]), {}, ValueError, "theta: contains NaN or inf"),
    (np.zeros(4), {"inner_lr": 0.0}, ValueError, "inner_lr must be a finite number > 0"),
    (np.zeros(4), {"inner_lr": -1.0}, ValueError, "inner_lr"),
    (np.zeros(4), {"inner_lr": np.nan}, ValueError, "inner_lr"),
    (np.zeros(4), {"inner_lr": "0.1"}, TypeError, "inner_lr"),
    (np.zeros(4), {"inner_steps": 0}, ValueError, "inner_steps must be an int between 1 and"),
    (np.zeros(4), {"inner_steps": 1.5}, TypeError, "inner_steps"),
    (np.zeros(4), {"n_threads": 0}, ValueError, "n_threads must be an int between 1 and"),
    (np.zeros(4), {"n_threads": 1.0}, TypeError, "n_threads"),
    (np.zeros(4), {"loss": "hinge"}, ValueError, "loss: unknown loss name"),
    (["a", "b", "c", "d"], {}, TypeError, "theta"),
])
def test_bad_arguments(small, fn, theta, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(theta, small, **kwargs)


def test_tasks_argument_type():
    with pytest.raises(TypeError, match="tasks must be a gomaml.Tasks"):
        gomaml.meta_loss_grad(np.zeros(2), [np.ones((2, 2))])


def test_logistic_needs_pm1_labels(rng):
    tasks = make_tasks(rng, n=3, d=4, layout="dense", loss="squared")
    with pytest.raises(ValueError, match=r"logistic loss needs labels in \{-1, \+1\}"):
        gomaml.meta_loss_grad(np.zeros(4), tasks, loss="logistic")
    q = gomaml.Tasks(np.ones((1, 2, 2)), np.ones((1, 2)), np.ones((1, 2, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="labels"):
        gomaml.meta_loss(np.zeros(2), q, loss=gomaml.Logistic())


def test_overflow_names_the_step_size(rng):
    tasks = make_tasks(rng, n=3, d=4, layout="dense", scale=30.0)
    with pytest.raises(gomaml.NumericalOverflowError, match=r"Reduce inner_lr \(now 1e\+150\)"):
        gomaml.meta_loss_grad(np.ones(4), tasks, inner_lr=1e150, inner_steps=3)
    # an overflow is an ArithmeticError, not a bad argument (API: the CLI exits 1 for it)
    assert not issubclass(gomaml.NumericalOverflowError, ValueError)
    with pytest.raises(gomaml.NumericalOverflowError, match="inner_lr"):
        gomaml.adapt(np.ones(4), tasks, inner_lr=1e300, inner_steps=3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [3, 16, 17, 300, 2100])
def test_row_blocks_at_every_width_and_block_size(rng, d, dtype):
    """Rows of every length the kernels treat differently (short rows in 256-bit vectors,
    prefetch of the next block only for rows of at most 16 KB, tails) and support sizes of
    every block split (one block for k <= 8; blocks of 8 and a remainder beyond): the
    reference's numbers, and the same bits for 1, 2 and 3 threads."""
    ks = [1, 2, 5, 8, 9, 10, 11, 13, 4, 7, 12, 3, 16, 19]
    kq = [9, 1, 4, 6, 13, 2, 8, 5, 11, 3, 7, 10, 17, 16]
    Xs = [rng.normal(size=(k, d)) / np.sqrt(d) for k in ks]
    Xq = [rng.normal(size=(k, d)) / np.sqrt(d) for k in kq]
    for loss in ("squared", "logistic"):
        lab = (lambda k: rng.choice([-1.0, 1.0], size=k)) if loss == "logistic" else \
            (lambda k: rng.normal(size=k))
        tasks = gomaml.Tasks(Xs, [lab(k) for k in ks], Xq, [lab(k) for k in kq], dtype=dtype)
        theta = _theta(rng, d)
        kw = dict(loss=loss, inner_lr=ETA[loss], inner_steps=2)
        out = [gomaml.meta_loss_grad(theta, tasks, n_threads=t, **kw) for t in (1, 2, 3)]
        assert out[0][0] == out[1][0] == out[2][0]
        assert np.array_equal(out[0][1], out[1][1]) and np.array_equal(out[0][1], out[2][1])
        if d <= 300:
            L, g, S_val, S_grad = ref.meta_loss_grad(theta, as_reference(tasks),
                                                     tasks.weights, loss, ETA[loss], 2)
        else:       # the dense d×d reference is too slow here: the same formulas, matrix-free
            L, g, S_val, S_grad = _matrix_free_reference(theta, tasks, loss, ETA[loss], 2)
        assert abs(out[0][0] - L) <= 1e-12 * S_val
        assert np.max(np.abs(out[0][1] - g)) <= 1e-12 * S_grad


def _matrix_free_reference(theta, tasks, loss, eta, T):
    """ref.meta_loss_grad without d×d matrices: J_iᵀ v applied as (I − ηH⁽⁰⁾)…(I − ηH⁽ᵀ⁻¹⁾)v
    with H⁽ᵗ⁾v = (1/k) Xsᵀ(l''·(Xs v)), each factor as in tests/reference.py."""
    L, grad, S_val, S_grad = 0.0, np.zeros(len(theta)), 0.0, 0.0
    for p, (Xs, ys, Xq, yq) in zip(tasks.weights, as_reference(tasks)):
        path = ref.inner_path(theta, Xs, ys, loss, eta, T)
        r = ref.risk(path[-1], Xq, yq, loss)
        v = ref.risk_grad(path[-1], Xq, yq, loss)
        for t in range(T - 1, -1, -1):
            l2 = ref.loss_parts(loss, Xs @ path[t], ys)[2]
            v = v - eta * Xs.T @ (l2 * (Xs @ v)) / len(ys)
        L += p * r
        grad += p * v
        S_val += p * abs(r)
        S_grad += p * np.linalg.norm(v)
    return L, grad, S_val, S_grad
