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
    """Tasks of a synthetic family, on raw inputs: Xs (n, ks, p), ys (n, ks), Xq (n, kq, p),
    yq (n, kq), the true per-task parameters `params` and the `family` name.

    to_tasks(feature_map) turns them into a gomaml.Tasks of features φ(x); the estimators
    (MAMLRegressor, MAMLClassifier) and KernelTasks take them as they are.

    Attributes
    ----------
    Xs, ys, Xq, yq : ndarray
        Raw inputs and labels, dense.
    params : dict
        The true per-task parameters (the family's docstring lists them).
    family : str

    Examples
    --------
    >>> from gomaml import synthetic
    >>> from gomaml.features import RandomFourier
    >>> raw = synthetic.sinusoid(10, 5, 5, seed=0)
    >>> raw.Xs.shape, raw.family
    ((10, 5, 1), 'sinusoid')
    >>> raw.to_tasks(RandomFourier(32, seed=0).fit(1)).d
    32
    """
    Xs: np.ndarray
    ys: np.ndarray
    Xq: np.ndarray
    yq: np.ndarray
    params: dict
    family: str

    @property
    def n_tasks(self):
        """The number of tasks n."""
        return self.Xs.shape[0]

    def to_tasks(self, feature_map=None, *, dtype=np.float64):
        """A gomaml.Tasks of the features φ(x) of these tasks.

        Parameters
        ----------
        feature_map : gomaml.features map, optional
            Fitted already (fmap.fit(p)); None: the raw inputs themselves.
        dtype : float32 or float64, default float64

        Returns
        -------
        Tasks
        """
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


def _mean(mean, p):
    mean = _validate.array("mean", mean, np.float64)
    if mean.shape != (p,) or not np.isfinite(mean).all():
        raise ValueError(f"mean must be {p} finite numbers, got shape {mean.shape}")
    return mean


def linear_regression(n_tasks, k_support, k_query, dim, *, spread=0.5, noise=0.1,
                      spectrum=None, mean=None, seed=0):
    """Linear-regression tasks: y = xᵀw_i + noise·N(0, 1).

    Task vectors w_i = mean + spread·N(0, I); inputs x ~ N(0, Σ), Σ = diag(spectrum).

    Parameters
    ----------
    n_tasks, k_support, k_query, dim : int
        Tasks, support and query points per task, input dimension p.
    spread : float, default 0.5
    noise : float, default 0.1
    spectrum : array_like (dim,), optional
        Input variances (default 1).
    mean : array_like (dim,), optional
        The task vectors' mean (default drawn from N(0, I)).
    seed : int, default 0

    Returns
    -------
    SyntheticTasks
        params: "w" (n, dim), "mean" (dim,).

    Raises
    ------
    TypeError, ValueError
        A bad argument, named.

    Examples
    --------
    >>> from gomaml import synthetic
    >>> raw = synthetic.linear_regression(4, 3, 2, 5, seed=0)
    >>> raw.Xs.shape, raw.yq.shape, raw.params["w"].shape
    ((4, 3, 5), (4, 2), (4, 5))
    """
    n, ks, kq, p = (_count("n_tasks", n_tasks), _count("k_support", k_support),
                    _count("k_query", k_query), _count("dim", dim))
    spread, noise = _nonneg("spread", spread), _nonneg("noise", noise)
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=p) if mean is None else _mean(mean, p)
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
    """Sinusoid regression (Finn et al., 2017): y = A·sin(x − φ) + noise·N(0, 1).

    Parameters
    ----------
    n_tasks : int
    k_support, k_query : int, default 10
    amplitude : (float, float), default (0.1, 5.0)
        A ~ U(amplitude).
    phase : (float, float), default (0, π)
        φ ~ U(phase).
    x_range : (float, float), default (-5, 5)
        x ~ U(x_range); inputs have p = 1.
    noise : float, default 0
    seed : int, default 0

    Returns
    -------
    SyntheticTasks
        params: "amplitude", "phase" (n,).

    Raises
    ------
    TypeError, ValueError
        A bad argument, named.

    Examples
    --------
    >>> from gomaml import synthetic
    >>> raw = synthetic.sinusoid(3, 5, 5, seed=0)
    >>> bool(abs(raw.ys[0] - raw.params["amplitude"][0]
    ...          * np.sin(raw.Xs[0, :, 0] - raw.params["phase"][0])).max() < 1e-12)
    True
    """
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
                            mean=None, seed=0):
    """Binary classification tasks, labels in {−1, +1}: y = sign(xᵀw_i + noise·N(0, 1)).

    w_i = mean + spread·N(0, I), x ~ N(0, I): a noisy linear rule per task.

    Parameters
    ----------
    n_tasks, k_support, k_query, dim : int
    spread : float, default 0.5
    noise : float, default 0.5
    mean : array_like (dim,), optional
        The task vectors' mean (default drawn from N(0, I)): pass a family's
        params["mean"] to draw new tasks of the same family.
    seed : int, default 0

    Returns
    -------
    SyntheticTasks
        params: "w" (n, dim), "mean" (dim,).

    Raises
    ------
    TypeError, ValueError
        A bad argument, named.

    Examples
    --------
    >>> from gomaml import synthetic
    >>> sorted(set(synthetic.logistic_classification(5, 4, 4, 3).ys.ravel().tolist()))
    [-1.0, 1.0]
    """
    n, ks, kq, p = (_count("n_tasks", n_tasks), _count("k_support", k_support),
                    _count("k_query", k_query), _count("dim", dim))
    spread, noise = _nonneg("spread", spread), _nonneg("noise", noise)
    rng = np.random.default_rng(seed)
    drawn = rng.normal(size=p)        # drawn either way: the same seed gives the same tasks
    mean = drawn if mean is None else _mean(mean, p)
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
