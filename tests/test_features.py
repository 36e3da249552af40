import numpy as np
import pytest

from gomaml import features


def test_rff_approximates_the_rbf_kernel_better_as_d_grows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    bw = 1.3
    K = np.exp(-((X[:, None, :] - X[None, :, :]) ** 2).sum(-1) / (2 * bw ** 2))
    errors = []
    for D in (64, 1024, 16384):
        trials = []
        for seed in range(3):
            F = features.RandomFourier(D, bandwidth=bw, seed=seed).fit(3).transform(X)
            trials.append(np.abs(F @ F.T - K).max())
        errors.append(np.mean(trials))
    assert errors[0] > errors[1] > errors[2]
    # Monte-Carlo rate: error ~ 1/sqrt(D), so 256x more features gives ~16x less error
    assert errors[2] < errors[0] / 6 and errors[2] < 0.05


def test_chunked_transform_equals_unchunked(monkeypatch):
    X = np.random.default_rng(1).normal(size=(1000, 2))
    fm = features.RandomReLU(50, seed=3, bias=True).fit(2)
    full = fm.transform(X)
    monkeypatch.setattr(features, "_CHUNK_BYTES", 8 * 50 * 7)      # 7 rows per chunk
    np.testing.assert_array_equal(fm.transform(X), full)
    assert full.shape == (1000, 51) and np.all(full[:, -1] == 1.0)
    assert np.all(full[:, :-1] >= 0)                                   # ReLU


def test_legendre_is_the_legendre_basis():
    x = np.linspace(-5, 5, 11)
    F = features.Legendre(3, interval=(-5, 5)).fit(1).transform(x[:, None])
    t = x / 5
    np.testing.assert_allclose(F, np.stack([np.ones_like(t), t, (3 * t ** 2 - 1) / 2,
                                            (5 * t ** 3 - 3 * t) / 2], axis=1), atol=1e-14)
    with pytest.raises(ValueError, match="1-D inputs"):
        features.Legendre(3).fit(2)


def test_identity_dtype_and_seeded():
    X = np.random.default_rng(2).normal(size=(5, 4))
    F = features.Identity(bias=True).fit(4).transform(X, dtype=np.float32)
    assert F.dtype == np.float32 and F.shape == (5, 5)
    a = features.RandomFourier(8, seed=5).fit(4).transform(X)
    b = features.RandomFourier(8, seed=5).fit(4).transform(X)
    assert np.array_equal(a, b)


def test_make_feature_map_dimensions():
    for name in ("rff", "relu", "legendre"):
        for bias in (False, True):
            fm = features.make_feature_map(name, 12, bias=bias).fit(1)
            assert fm.n_features == 12
    with pytest.raises(ValueError, match="unknown feature map"):
        features.make_feature_map("wavelet", 8)


@pytest.mark.parametrize("make, match", [
    (lambda: features.RandomFourier(0), "n_features"),
    (lambda: features.RandomFourier(4, bandwidth=0.0), "bandwidth"),
    (lambda: features.Legendre(-1), "degree"),
    (lambda: features.RandomFourier(4).fit(2).transform(np.ones((3, 5))), r"X: expected shape"),
    (lambda: features.RandomFourier(4).transform(np.ones((3, 2))), "call fit"),
])
def test_bad_arguments(make, match):
    with pytest.raises((ValueError, RuntimeError), match=match):
        make()
