"""Seeded synthetic task families: raw inputs, labels and the true task parameters.

Every generator returns a SyntheticTasks with dense arrays Xs (n, ks, p), ys (n, ks),
Xq (n, kq, p), yq (n, kq) of raw inputs (apply a feature map from gomaml.features to get
φ(x)), and `params`, a dict of the true per-task parameters.
"""
import dataclasses

import numpy as np

from gomaml import _validate


@dataclasses.dataclass
class SyntheticTasks:
    Xs: np.ndarray
    ys: np.ndarray
    Xq: np.ndarray
    yq: np.ndarray
    params: dict
    family: str

    @property
    def n_tasks(self):
        return self.Xs.shape[0]

    def to_tasks(self, feature_map=None, *, dtype=np.float64):
        """gomaml.Tasks of φ(x) (feature_map fitted already; None: the raw inputs)."""
        from gomaml.tasks import Tasks
        f = (lambda X: np.asarray(X, dtype=dtype)) if feature_map is None else \
            (lambda X: feature_map.transform(X, dtype=dtype))
        n, ks, p = self.Xs.shape
        kq = self.Xq.shape[1]
        if feature_map is not None:
            from gomaml._memory import check_fits
            check_fits(f"the feature matrices of {n} tasks × {ks + kq} points at "
                       f"d = {feature_map.n_features}",
                       n * (ks + kq) * feature_map.n_features * np.dtype(dtype).itemsize)
        Fs = f(self.Xs.reshape(n * ks, p)).reshape(n, ks, -1)
        Fq = f(self.Xq.reshape(n * kq, p)).reshape(n, kq, -1)
        return Tasks(Fs, self.ys.astype(dtype), Fq, self.yq.astype(dtype), dtype=dtype)


def _count(name, value):
    return _validate.integer(name, value, low=1)


def _nonneg(name, value):
    return _validate.real(name, value, low=0)


_interval = _validate.interval


def linear_regression(n_tasks, k_support, k_query, dim, *, spread=0.5, noise=0.1,
                      spectrum=None, mean=None, seed=0):
    """y = xᵀw_i + noise·N(0,1), task vectors w_i = mean + spread·N(0, I), inputs N(0, Σ) with
    Σ = diag(spectrum) (default I). params: "w" (n, dim), "mean" (dim,)."""
    n, ks, kq, p = (_count("n_tasks", n_tasks), _count("k_support", k_support),
                    _count("k_query", k_query), _count("dim", dim))
    spread, noise = _nonneg("spread", spread), _nonneg("noise", noise)
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=p) if mean is None else np.asarray(mean, dtype=np.float64)
    if mean.shape != (p,):
        raise ValueError(f"mean must have shape ({p},), got {mean.shape}")
    scale = np.ones(p) if spectrum is None else np.asarray(spectrum, dtype=np.float64)
    if scale.shape != (p,) or not np.all(scale >= 0) or not np.isfinite(scale).all():
        raise ValueError(f"spectrum must be {p} finite numbers >= 0")
    w = mean + spread * rng.normal(size=(n, p))
    Xs = rng.normal(size=(n, ks, p)) * np.sqrt(scale)
    Xq = rng.normal(size=(n, kq, p)) * np.sqrt(scale)
    ys = np.einsum("nkp,np->nk", Xs, w) + noise * rng.normal(size=(n, ks))
    yq = np.einsum("nkp,np->nk", Xq, w) + noise * rng.normal(size=(n, kq))
    return SyntheticTasks(Xs, ys, Xq, yq, {"w": w, "mean": mean}, "linear")


def sinusoid(n_tasks, k_support=10, k_query=10, *, amplitude=(0.1, 5.0), phase=(0.0, np.pi),
             x_range=(-5.0, 5.0), noise=0.0, seed=0):
    """Finn et al. (2017): y = A·sin(x − φ) (+ noise·N(0,1)), A ~ U(amplitude),
    φ ~ U(phase), x ~ U(x_range). Inputs have p = 1. params: "amplitude", "phase" (n,)."""
    n, ks, kq = (_count("n_tasks", n_tasks), _count("k_support", k_support),
                 _count("k_query", k_query))
    a_lo, a_hi = _interval("amplitude", amplitude)
    p_lo, p_hi = _interval("phase", phase)
    x_lo, x_hi = _interval("x_range", x_range)
    noise = _nonneg("noise", noise)
    rng = np.random.default_rng(seed)
    A = rng.uniform(a_lo, a_hi, size=n)
    ph = rng.uniform(p_lo, p_hi, size=n)
    Xs = rng.uniform(x_lo, x_hi, size=(n, ks, 1))
    Xq = rng.uniform(x_lo, x_hi, size=(n, kq, 1))
    ys = A[:, None] * np.sin(Xs[..., 0] - ph[:, None]) + noise * rng.normal(size=(n, ks))
    yq = A[:, None] * np.sin(Xq[..., 0] - ph[:, None]) + noise * rng.normal(size=(n, kq))
    return SyntheticTasks(Xs, ys, Xq, yq, {"amplitude": A, "phase": ph}, "sinusoid")


def logistic_classification(n_tasks, k_support, k_query, dim, *, spread=0.5, noise=0.5,
                            seed=0):
    """Labels in {−1, +1}: y = sign(xᵀw_i + noise·N(0,1)) (a noisy linear rule per task),
    w_i = mean + spread·N(0, I), x ~ N(0, I). params: "w" (n, dim), "mean" (dim,)."""
    n, ks, kq, p = (_count("n_tasks", n_tasks), _count("k_support", k_support),
                    _count("k_query", k_query), _count("dim", dim))
    spread, noise = _nonneg("spread", spread), _nonneg("noise", noise)
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=p)
    w = mean + spread * rng.normal(size=(n, p))
    Xs = rng.normal(size=(n, ks, p))
    Xq = rng.normal(size=(n, kq, p))
    sign = lambda z: np.where(z >= 0, 1.0, -1.0)
    ys = sign(np.einsum("nkp,np->nk", Xs, w) + noise * rng.normal(size=(n, ks)))
    yq = sign(np.einsum("nkp,np->nk", Xq, w) + noise * rng.normal(size=(n, kq)))
    return SyntheticTasks(Xs, ys, Xq, yq, {"w": w, "mean": mean}, "logistic")


#: every task family by name (the registry config checks and the CLI read)
FAMILIES = {"linear": linear_regression, "sinusoid": sinusoid,
            "logistic": logistic_classification}
