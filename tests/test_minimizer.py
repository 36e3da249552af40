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


def test_numerically_rank_deficient_uses_the_numerical_rank():
    """Random Fourier features of 1-D inputs: the stacked system has numerical rank far below
    min(N, d). θ* is the minimum-norm solution at rank tolerance max(N, d)·eps, as NumPy's
    lstsq on the same system; keeping the rounding-level directions gives a θ of larger
    norm and an L that differs only at the level the convention decides."""
    from gomaml import synthetic
    from gomaml import minimizer
    from gomaml.features import RandomFourier
    raw = synthetic.sinusoid(12, 6, 6, seed=0)
    tasks = raw.to_tasks(RandomFourier(256, seed=1).fit(1))
    res = gomaml.global_minimizer(tasks, inner_lr=0.3)
    M, t = ref.stacked_rows(as_reference(tasks), tasks.weights, 0.3, 1)
    s = np.linalg.svd(M, compute_uv=False)
    assert (s > s[0] * 1e-10).sum() < min(M.shape) / 2            # badly rank deficient
    assert res.route == "svd-lstsq" and res.rank < min(M.shape)
    # the kernel builds the same system as the reference, to rounding
    M_lib, t_lib = minimizer.stacked_system(tasks, 0.3, 1)
    np.testing.assert_allclose(M_lib, M, rtol=0, atol=1e-13 * np.abs(M).max())
    np.testing.assert_allclose(t_lib, t, rtol=0, atol=1e-13 * np.abs(t).max())
    # on that system the solve is NumPy's minimum-norm lstsq at the same tolerance
    want, _, rank, _ = np.linalg.lstsq(M_lib, t_lib, rcond=None)
    assert res.rank == rank
    assert res.L_star == pytest.approx(float(np.sum((M_lib @ want - t_lib) ** 2)), rel=1e-9)
    np.testing.assert_allclose(M_lib @ res.theta_star, M_lib @ want, rtol=0,
                               atol=1e-7 * np.abs(t).max())
    # across systems that differ only by rounding, an ill-posed problem agrees only roughly:
    # singular directions just above the cutoff amplify the rounding
    ref_theta = np.linalg.lstsq(M, t, rcond=None)[0]
    assert res.L_star == pytest.approx(float(np.sum((M @ ref_theta - t) ** 2)), rel=1e-3)
    # keeping the rounding-level directions (LAPACK's eps cutoff) inflates θ; the minimum
    # itself is defined only up to the rank convention, here to about 1e-3 relative
    from scipy import linalg
    noisy = linalg.lstsq(M_lib, t_lib, lapack_driver="gelsd")[0]
    assert np.linalg.norm(res.theta_star) < 0.5 * np.linalg.norm(noisy)
    assert res.L_star == pytest.approx(float(np.sum((M_lib @ noisy - t_lib) ** 2)), rel=1e-2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("route", ["row blocks", "column chunks"])
def test_gram_blocks_are_thread_count_independent(rng, monkeypatch, dtype, route):
    """The Gram matrix of the minimiser is cut into row blocks or column chunks by its shape
    alone and the blocks run on n_threads Python threads: the same bits for any thread
    count, and M Mᵀ."""
    from gomaml import _linalg
    from gomaml._linalg import gram, single_threaded_blas
    M = rng.normal(size=(1100, 300)).astype(dtype)
    if route == "column chunks":
        monkeypatch.setattr(_linalg, "_CHUNKS_MIN_WORK", 0)
        monkeypatch.setattr(_linalg, "_CHUNK_MIN_COLS", 64)
    assert (_linalg._col_chunks(*M.shape, M.itemsize) > 1) == (route == "column chunks")
    grams = [single_threaded_blas(gram)(M, n) for n in (1, 2, 3)]
    assert all(np.array_equal(g, grams[0]) for g in grams[1:])
    want = M.astype(np.float64) @ M.T.astype(np.float64)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(grams[0], want, rtol=tol, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("mixed", [False, True])
@pytest.mark.parametrize("chunks", [False, True])
def test_global_minimizer_is_thread_count_independent(rng, monkeypatch, mixed, chunks):
    """Either route, the Gram from row blocks or from column chunks: the same bits for 1 and 2
    threads, and (both routes) the minimum-norm solution."""
    from gomaml import _linalg, minimizer
    if mixed:
        monkeypatch.setattr(minimizer, "_MIXED_MIN_WORK", 0)
    if chunks:
        monkeypatch.setattr(_linalg, "_CHUNKS_MIN_WORK", 0)
        monkeypatch.setattr(_linalg, "_CHUNK_MIN_COLS", 400)      # 5 chunks of d = 2000
    X = rng.normal(size=(80, 8, 2000)) / np.sqrt(2000)        # N = 640: two Gram blocks
    tasks = gomaml.Tasks(X, rng.normal(size=(80, 8)), rng.normal(size=(80, 8, 2000)),
                         rng.normal(size=(80, 8)))
    results = [gomaml.global_minimizer(tasks, inner_lr=0.1, n_threads=n) for n in (1, 2)]
    assert results[0].route == results[1].route == ("cholesky-gram-mixed" if mixed
                                                     else "cholesky-gram")
    assert np.array_equal(results[0].theta_star, results[1].theta_star)
    assert results[0].L_star == results[1].L_star
    M, t = ref.stacked_rows(as_reference(tasks), tasks.weights, 0.1, 1)
    want = np.linalg.lstsq(M, t, rcond=None)[0]
    np.testing.assert_allclose(results[0].theta_star, want, rtol=1e-9,
                               atol=1e-12 * np.abs(want).max())


def test_row_block_products_are_thread_count_independent(rng):
    """Mᵀp (partial sums of fixed row blocks, added in order) and M u (block by block): the
    mixed route's CG products, the same bits for any thread count."""
    from gomaml._linalg import matvec, rmatvec
    M, p, u = rng.normal(size=(1300, 90)), rng.normal(size=1300), rng.normal(size=90)
    outs = [(rmatvec(M, p, n), matvec(M, u, n)) for n in (1, 2, 3)]
    assert all(np.array_equal(o[0], outs[0][0]) and np.array_equal(o[1], outs[0][1])
               for o in outs[1:])
    np.testing.assert_allclose(outs[0][0], M.T @ p, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(outs[0][1], M @ u, rtol=1e-12, atol=1e-12)


def test_col_chunks_follow_the_shape_and_the_memory_cap():
    from gomaml._linalg import _col_chunks
    assert _col_chunks(2000, 10000, 4) == 4           # the bench size: 4 chunks of 2500
    assert _col_chunks(300, 4096, 8) == 1             # small work: one syrk, bits as before
    assert _col_chunks(20000, 10000, 4) == 1          # 1.6 GB per partial Gram: row blocks


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [5, 63, 64, 130])
@pytest.mark.parametrize("T", [1, 2])
def test_stacked_rows_have_the_bits_of_one_row_alone(rng, dtype, d, T):
    """The kernel builds the query rows up to four at a time, sharing the support rows'
    loads; every row must have the bits it has when built alone: one task with 9 query rows
    (GM_MULTI_MAX = 4 at a time: 4, 4, 1) against 9 tasks of one query row each, the same
    support set and the same scale √(p/kq) = 1/3, for 1 and 3 threads."""
    from gomaml import minimizer
    Xs, ys = rng.normal(size=(1, 6, d)), rng.normal(size=(1, 6))
    Xq, yq = rng.normal(size=(1, 9, d)), rng.normal(size=(1, 9))
    whole = gomaml.Tasks(Xs, ys, Xq, yq, dtype=dtype)
    alone = gomaml.Tasks(np.repeat(Xs, 9, 0), np.repeat(ys, 9, 0), Xq.reshape(9, 1, d),
                         yq.reshape(9, 1), weights=np.full(9, 1 / 9), dtype=dtype)
    for n_threads in (1, 3):
        M, t, M32, norms2 = minimizer._stacked(whole, 0.1, T, n_threads, float32=True)
        M1, t1 = minimizer.stacked_system(alone, 0.1, T, n_threads)
        assert np.array_equal(M, M1) and np.array_equal(t, t1)
        assert np.array_equal(M32, M.astype(np.float32))
        np.testing.assert_allclose(norms2, np.einsum("ij,ij->i", M, M), rtol=1e-14)
    want, _ = ref.stacked_rows(as_reference(whole), whole.weights, 0.1, T)
    np.testing.assert_allclose(M, want, rtol=0, atol=1e-12 * np.abs(want).max())


def test_huge_finite_stacked_rows_are_solved_exactly(rng, monkeypatch):
    """Rows of ~1e160: their squared norms overflow, M does not. The minimiser solves the
    system scaled by a power of two (exact) and gives the minimum-norm θ* of the unscaled
    one (~1e-160), with L* = 0 to rounding (N = 12 < d = 40: interpolation; support labels
    0, so the targets are the query labels scaled, of order 1)."""
    from gomaml import minimizer
    Xs = 1e-3 * rng.normal(size=(4, 3, 40))
    Xq = 1e160 * rng.normal(size=(4, 3, 40))
    tasks = gomaml.Tasks(Xs, np.zeros((4, 3)), Xq, rng.normal(size=(4, 3)))
    M, t = ref.stacked_rows(as_reference(tasks), tasks.weights, 0.1, 1)
    want = np.linalg.pinv(M * 1e-160) @ t * 1e-160
    for mixed_min_work in (2e9, 0):
        monkeypatch.setattr(minimizer, "_MIXED_MIN_WORK", mixed_min_work)
        theta, L = gomaml.global_minimizer(tasks, inner_lr=0.1)
        assert 1e-165 < np.abs(want).max() < 1e-155
        np.testing.assert_allclose(theta, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())
        assert L <= 1e-20 * float(t @ t)
