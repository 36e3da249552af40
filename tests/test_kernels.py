"""Kernels (the d → ∞ limits of the feature maps): formulas, symmetry, positive
semidefiniteness, and each map's Gram converging to its kernel at rate 1/√D."""
import numpy as np
import pytest

from gomaml import features, kernels


def inputs(seed, m=12, p=3):
    return np.random.default_rng(seed).normal(size=(m, p))


@pytest.mark.parametrize("kernel", [kernels.Linear(), kernels.RBF(0.7), kernels.ReLU(),
                                    kernels.NTK(), kernels.ReLU(bias=True)])
def test_symmetric_positive_semidefinite_and_blockwise(kernel):
    X, Y = inputs(1, 40), inputs(2, 7)
    K = kernel(X)
    assert K.shape == (40, 40) and np.array_equal(K, K.T)
    assert np.linalg.eigvalsh(K).min() >= -1e-12 * np.abs(K).max()
    np.testing.assert_allclose(kernel(X, Y), kernel(Y, X).T, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(kernel(X, Y)[3:5], kernel(X[3:5], Y), rtol=1e-14, atol=1e-15)


def test_formulas_at_hand_computed_points():
    x, y = np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]])
    assert kernels.Linear()(x, y)[0, 0] == 0.0
    assert kernels.RBF(2.0)(x, y)[0, 0] == pytest.approx(np.exp(-5 / 8))
    xt = np.array([1 / np.sqrt(2), 0.0, 1.0])
    yt = np.array([0.0, 2 / np.sqrt(2), 1.0])
    t = np.arccos(xt @ yt / np.linalg.norm(xt) / np.linalg.norm(yt))
    nn = np.linalg.norm(xt) * np.linalg.norm(yt)
    assert kernels.ReLU()(x, y)[0, 0] == pytest.approx(nn / np.pi * (np.sin(t)
                                                                    + (np.pi - t) * np.cos(t)))
    assert kernels.NTK()(x, y)[0, 0] == pytest.approx(xt @ yt * (np.pi - t) / (2 * np.pi))
    assert kernels.NTK(bias=True)(x, y)[0, 0] == pytest.approx(
        1 + xt @ yt * (np.pi - t) / (2 * np.pi))


MAPS = [
    (lambda D, b: features.RandomFourier(D, bandwidth=0.8, bias=b, seed=3), "rff"),
    (lambda D, b: features.RandomReLU(D, bias=b, seed=4), "relu"),
    (lambda D, b: features.NeuralTangent(D // 4, bias=b, seed=5), "ntk"),
]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("make, name", MAPS)
def test_gram_tends_to_the_kernel_at_rate_one_over_sqrt_D(make, name, bias):
    X = inputs(6, 10, 3)
    errors = []
    for D in (2_000, 200_000):
        fmap = make(D, bias).fit(3)
        Phi = fmap.transform(X)
        K = fmap.kernel(X)
        err = np.abs(Phi @ Phi.T - K).max()
        errors.append(err * np.sqrt(D))
        # a 5 % scale error or a missing bias would be far outside this
        assert err <= 12 / np.sqrt(D)          # measured: err·√D = 1.8 … 8.6
        if D == 200_000:
            assert err < 0.05 * np.abs(K).max() / 2
            assert np.abs(Phi @ Phi.T - 1.05 * K).max() > 12 / np.sqrt(D)
            wrong_bias = K - 1.0 if bias else K + 1.0
            assert np.abs(Phi @ Phi.T - wrong_bias).max() > 12 / np.sqrt(D)
    assert max(errors) < 12


def test_identity_is_exactly_linear_and_legendre_has_none():
    X = inputs(7)
    fmap = features.Identity(bias=True).fit(3)
    Phi = fmap.transform(X)
    np.testing.assert_allclose(Phi @ Phi.T, fmap.kernel(X), rtol=1e-14)
    with pytest.raises(ValueError, match="no kernel limit"):
        features.Legendre(4).fit(1).kernel


def test_bad_kernel_arguments():
    with pytest.raises(ValueError, match="bandwidth must be a finite number > 0"):
        kernels.RBF(0.0)
    with pytest.raises(TypeError, match="bias must be True or False"):
        kernels.ReLU(bias=1)
    with pytest.raises(ValueError, match="Y: has p = 2 input columns"):
        kernels.Linear()(np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="X: contains NaN"):
        kernels.NTK()(np.array([[np.nan, 1.0]]))


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_typed_elementwise_pass_is_identical_for_any_thread_count(kind):
    from gomaml import _kernels
    X = inputs(8, 300, 4)
    G = X @ X.T
    n = np.linalg.norm(X, axis=1)
    norms = n * n if kind == _kernels.KERNEL_RBF else n
    out = []
    for threads in (1, 2, 3):
        A = G.copy()
        _kernels.gram_finish(A, norms, norms, kind, threads)
        out.append(A)
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2])
    with pytest.raises(ValueError, match="gram_finish"):
        _kernels.gram_finish(G.copy(), norms[:-1], norms, kind, 1)
