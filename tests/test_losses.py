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


def _ulps(got, want):
    """|got - want| in units of the float64 spacing at want (want in long double)."""
    spacing = np.spacing(np.abs(want.astype(np.float64)))
    return np.abs((got.astype(np.longdouble) - want) / spacing.astype(np.longdouble))


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 60, reason="needs x87 long double")
def test_logistic_vector_math_within_a_few_ulp():
    """The kernels evaluate the logistic loss 8 at a time with their own vector exp and log1p
    (lossvec.h): against a long-double reference, within 2 ulp (value; libm's float64 is
    within 1.5 here) and 5 ulp (derivatives), over the whole range including underflow."""
    rng = np.random.default_rng(11)
    z = np.concatenate([rng.normal(scale=3, size=40000), rng.uniform(-800, 800, 40000),
                        rng.normal(scale=1e-8, size=5000),
                        [0.0, -0.0, 37.0, -37.0, 708.5, -708.5, 745.0, -745.0, 746.0, -746.0]])
    y = rng.choice([-1.0, 1.0], size=z.size)
    loss = gomaml.Logistic()
    t = y.astype(np.longdouble) * z
    e = np.exp(-np.abs(t))
    want = (np.where(t < 0, -t, 0) + np.log1p(e),
            -y * np.where(t >= 0, e / (1 + e), 1 / (1 + e)),
            e / (1 + e) ** 2)
    got = (loss.value(z, y), loss.d1(z, y), loss.d2(z, y))
    assert _ulps(got[0], want[0]).max() <= 2
    assert _ulps(got[1], want[1]).max() <= 5
    assert _ulps(got[2], want[2]).max() <= 5


def test_logistic_batches_do_not_change_bits():
    """A value's bits depend on itself alone, not on its lane in a batch of 8 or the batch's
    length: the same points, shifted by 0..7 places and cut short, give the same bits."""
    rng = np.random.default_rng(12)
    z = rng.normal(scale=4, size=61)
    y = rng.choice([-1.0, 1.0], size=61)
    loss = gomaml.Logistic()
    base = np.stack([loss.value(z, y), loss.d1(z, y), loss.d2(z, y)])
    for shift in range(1, 8):
        zs = np.concatenate([rng.normal(size=shift), z])
        ys = np.concatenate([np.ones(shift), y])
        got = np.stack([loss.value(zs, ys), loss.d1(zs, ys), loss.d2(zs, ys)])[:, shift:]
        assert np.array_equal(got, base)
    for m in (1, 3, 8, 9):
        assert np.array_equal(loss.value(z[:m], y[:m]), base[0, :m])
