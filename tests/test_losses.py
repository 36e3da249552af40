import numpy as np
import pytest

import gomaml
from gomaml.losses import resolve_loss
from conftest import LOSSES
import reference as ref


def labels_for(name, rng, m):
    return rng.choice([-1.0, 1.0], size=m) if name == "logistic" else rng.normal(size=m)


@pytest.mark.parametrize("name", LOSSES)
def test_point_functions_match_reference(name, rng):
    z = rng.normal(scale=3, size=200)
    y = labels_for(name, rng, 200)
    loss = resolve_loss(name)
    for got, want in zip((loss.value(z, y), loss.d1(z, y), loss.d2(z, y)),
                         ref.loss_parts(name, z, y)):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", LOSSES)
def test_derivatives_are_finite_differences(name, rng):
    z = rng.normal(scale=2, size=50)
    y = labels_for(name, rng, 50)
    loss = resolve_loss(name)
    h = 1e-5
    fd1 = (loss.value(z + h, y) - loss.value(z - h, y)) / (2 * h)
    fd2 = (loss.d1(z + h, y) - loss.d1(z - h, y)) / (2 * h)
    np.testing.assert_allclose(loss.d1(z, y), fd1, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(loss.d2(z, y), fd2, rtol=1e-7, atol=1e-9)


def test_logistic_overflow_free_at_extremes():
    z = np.array([-1e308, -800.0, -40.0, 0.0, 40.0, 800.0, 1e308])
    loss = gomaml.Logistic()
    for y in (1.0, -1.0):
        v, g, h = loss.value(z, y), loss.d1(z, y), loss.d2(z, y)
        assert np.isfinite(v).all() and np.isfinite(g).all() and np.isfinite(h).all()
        t = y * z
        # log(1+e^{-t}) -> -t for t << 0 and e^{-t} for t >> 0
        np.testing.assert_allclose(v[t < -30], -t[t < -30], rtol=1e-15)
        assert v[t > 700].max() < 1e-300
        assert (h >= 0).all() and (h <= 0.25).all()
        np.testing.assert_allclose(np.abs(g[t < -30]), 1.0, rtol=1e-15)


def test_pseudo_huber_tiny_and_huge_residuals():
    loss = gomaml.PseudoHuber(delta=2.0)
    r = np.array([1e-200, 1e-10, 1e200])
    v = loss.value(r, 0.0)
    # tiny r: δ²(√(1+(r/δ)²)−1) ≈ r²/2 (the naive form gives 0 by cancellation)
    np.testing.assert_allclose(v[:2], r[:2] ** 2 / 2, rtol=1e-15)
    # huge r: ≈ δ|r|, no overflow of r²
    np.testing.assert_allclose(v[2], 2.0 * 1e200, rtol=1e-12)
    np.testing.assert_allclose(loss.d1(r, 0.0)[2], 2.0, rtol=1e-12)


def test_names_and_objects():
    assert resolve_loss("squared") == gomaml.Squared()
    assert resolve_loss("pseudo_huber") == gomaml.PseudoHuber(1.0)
    assert gomaml.PseudoHuber(0.5).delta == 0.5
    assert gomaml.Squared().d2(0.3, 1.0) == 2.0


@pytest.mark.parametrize("delta", [0.0, -1.0, np.inf, np.nan])
def test_bad_delta(delta):
    with pytest.raises(ValueError, match="delta"):
        gomaml.PseudoHuber(delta)


def test_bad_loss_name_and_type():
    with pytest.raises(ValueError, match="loss: unknown loss name 'hinge'"):
        resolve_loss("hinge")
    with pytest.raises(TypeError, match="loss"):
        resolve_loss(3)
