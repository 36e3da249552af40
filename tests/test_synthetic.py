import numpy as np
import pytest

from gomaml import synthetic


def test_sinusoid_ranges_and_rule():
    s = synthetic.sinusoid(200, 7, 9, seed=4)
    A, ph = s.params["amplitude"], s.params["phase"]
    assert s.Xs.shape == (200, 7, 1) and s.Xq.shape == (200, 9, 1)
    assert A.min() >= 0.1 and A.max() <= 5.0 and ph.min() >= 0 and ph.max() <= np.pi
    assert s.Xs.min() >= -5 and s.Xs.max() <= 5 and s.Xq.min() >= -5 and s.Xq.max() <= 5
    np.testing.assert_allclose(s.ys, A[:, None] * np.sin(s.Xs[..., 0] - ph[:, None]),
                               rtol=1e-15)
    # the ranges are used, not a corner of them
    assert A.min() < 0.5 and A.max() > 4.5 and ph.max() > 2.8


def test_sinusoid_noise_and_seed():
    a = synthetic.sinusoid(5, 4, 4, noise=0.1, seed=1)
    b = synthetic.sinusoid(5, 4, 4, noise=0.1, seed=1)
    c = synthetic.sinusoid(5, 4, 4, noise=0.1, seed=2)
    assert np.array_equal(a.ys, b.ys) and not np.array_equal(a.ys, c.ys)
    clean = a.params["amplitude"][:, None] * np.sin(a.Xs[..., 0] - a.params["phase"][:, None])
    assert 0 < np.std(a.ys - clean) < 0.3


def test_linear_regression_rule_and_spread():
    s = synthetic.linear_regression(400, 6, 5, 3, spread=0.2, noise=0.0, seed=0,
                                    spectrum=[1.0, 4.0, 0.25])
    w, mean = s.params["w"], s.params["mean"]
    np.testing.assert_allclose(s.yq, np.einsum("nkp,np->nk", s.Xq, w), rtol=1e-12)
    assert np.std(w - mean, axis=0) == pytest.approx([0.2] * 3, rel=0.15)
    var = s.Xs.reshape(-1, 3).var(axis=0)
    assert var == pytest.approx([1.0, 4.0, 0.25], rel=0.1)


def test_logistic_labels():
    s = synthetic.logistic_classification(50, 8, 8, 4, noise=0.0, seed=0)
    assert set(np.unique(s.ys)) == {-1.0, 1.0}
    np.testing.assert_array_equal(
        s.ys, np.where(np.einsum("nkp,np->nk", s.Xs, s.params["w"]) >= 0, 1.0, -1.0))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n_tasks": 0}, ValueError, "n_tasks must be an int >= 1"),
    ({"k_support": 1.5}, TypeError, "k_support must be an int"),     # the one rule: a type
    ({"noise": -1.0}, ValueError, "noise must be a finite number >= 0"),
    ({"noise": True}, TypeError, "noise must be a real number"),
    ({"amplitude": (5, 1)}, ValueError, "amplitude must have low < high"),
    ({"x_range": "ab"}, TypeError, r"x_range\[0\] must be a real number"),
    ({"x_range": 3.0}, TypeError, "x_range must be a pair"),
])
def test_bad_parameters(kwargs, error, match):
    base = dict(n_tasks=3, k_support=2, k_query=2)
    base.update(kwargs)
    with pytest.raises(error, match=match):
        synthetic.sinusoid(**base)


def test_to_tasks_shapes():
    from gomaml.features import RandomFourier
    s = synthetic.sinusoid(4, 3, 5, seed=0)
    t = s.to_tasks(RandomFourier(16, seed=0).fit(1), dtype=np.float32)
    assert t.n_tasks == 4 and t.d == 16 and t.dtype == np.float32
    assert t.support_sizes.tolist() == [3] * 4 and t.query_sizes.tolist() == [5] * 4
