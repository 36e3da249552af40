"""Feature maps φ: fitted once (with a seed) and applied to every task's inputs.

Each map has fit(input_dim) -> self, transform(X (m, p), dtype=float64) -> (m, d) computed in
chunks of rows (bounded memory), and n_features (d, including the optional bias column: the
model φᵀθ has no intercept otherwise).
"""

import numpy as np
from numpy.polynomial import legendre

from gomaml import _validate
from gomaml.kernels import augmented_inputs

_CHUNK_BYTES = 64 << 20     # per chunk of the output


class FeatureMap:
    """A feature map φ: R^p → R^d (the base of Identity, RandomFourier, RandomReLU,
    NeuralTangent and Legendre).

    Construct with the map's own parameters (and bias, seed), call fit(input_dim) to draw
    its random units for inputs of width p, then transform(X) -> (m, d) features. `kernel`
    is the kernel its Gram tends to as its units grow (gomaml.kernels); gram(X, Y) its exact
    Gram, accumulated in chunks of features (never forming Φ), for the kernel form.

    Parameters
    ----------
    bias : bool, default False
        Append a constant feature 1.
    seed : int, default 0
        The seed of the random units.

    Examples
    --------
    >>> import numpy as np
    >>> from gomaml.features import RandomReLU
    >>> fmap = RandomReLU(64, seed=0).fit(3)
    >>> fmap.transform(np.ones((2, 3))).shape, fmap.n_features, fmap.kernel.name
    ((2, 64), 64, 'relu')
    """

    name = None

    def __init__(self, *, bias=False, seed=0):
        self.bias = bool(bias)
        self.seed = seed
        self.input_dim = None

    def fit(self, input_dim):
        """Draw the random units for inputs of width input_dim (p); returns self."""
        self.input_dim = _validate.integer("input_dim", input_dim, low=1)
        self._fit(np.random.default_rng(self.seed))
        return self

    def _fit(self, rng):
        pass

    @property
    def n_features(self):
        """The feature dimension d (the bias column included)."""
        return self._width() + self.bias

    def transform(self, X, *, dtype=np.float64):
        """φ(X): (m, p) inputs -> (m, d) features of the given dtype, computed in chunks."""
        X = self._check_inputs(X)
        m, d = X.shape[0], self.n_features
        out = np.empty((m, d), dtype=dtype)
        rows = max(1, _CHUNK_BYTES // (8 * max(d, 1)))
        for a in range(0, m, rows):
            block = self._map(X[a:a + rows])
            out[a:a + rows, :self._width()] = block
        if self.bias:
            out[:, -1] = 1.0
        return out

    def config(self):
        """The map's settings as a JSON-safe dict (name, bias, seed and its own)."""
        return {"name": self.name, "bias": self.bias, "seed": self.seed}

    def _units(self):
        """(number of random units, columns per unit): the blocks gram() accumulates over."""
        return 1, self._width()

    def _map_units(self, X, lo, hi):
        """The feature columns of units lo:hi for inputs X (m, p)."""
        return self._unit_scale() * self._raw_units(X, lo, hi)

    def _raw_units(self, X, lo, hi):
        """_map_units without the common factor _unit_scale() (which gram() applies once to
        the product: fewer passes over the largest arrays)."""
        return self._map(X)

    def _unit_scale(self):
        return 1.0

    def gram(self, X, Y=None, *, chunk_bytes=_CHUNK_BYTES):
        """φ(X) φ(Y)ᵀ exactly (Y None: X), accumulated over chunks of random units so that φ
        is never held whole: memory O((len(X) + len(Y)) · chunk) however large d is."""
        return self.gram_parts(X, Y, (), chunk_bytes=chunk_bytes)[0]

    def gram_parts(self, X, Y=None, blocks=(), *, chunk_bytes=_CHUNK_BYTES):
        """(φ(X)φ(Y)ᵀ, [φ(X[a])φ(X[b])ᵀ for a, b in blocks]) in one pass over chunks of units:
        the cross-Gram to Y (Y None: X, whose features are then made once) and only the listed
        blocks of X's own Gram (slices a, b)."""
        X = self._check_inputs(X)
        Y = X if Y is None else self._check_inputs(Y)
        n_units, per_unit = self._units()
        # the chunk rule counts Y's rows even when Y is X: it fixes the summation order
        step = max(1, chunk_bytes // (8 * per_unit * (X.shape[0] + Y.shape[0])))
        cross = np.zeros((X.shape[0], Y.shape[0]))
        parts = [np.zeros((a.stop - a.start, b.stop - b.start)) for a, b in blocks]
        for lo in range(0, n_units, step):
            hi = min(n_units, lo + step)
            fx = self._raw_units(X, lo, hi)
            fy = fx if Y is X else self._raw_units(Y, lo, hi)
            cross += fx @ fy.T
            for out, (a, b) in zip(parts, blocks):
                out += fx[a] @ fx[b].T
        s2 = self._unit_scale() ** 2
        for out in [cross] + parts:
            out *= s2
            if self.bias:
                out += 1.0
        return cross, parts

    def _check_inputs(self, X):
        if self.input_dim is None:
            raise RuntimeError(f"{type(self).__name__}: call fit(input_dim) first")
        X = _validate.array("X", X, np.float64)
        if X.ndim == 1 and self.input_dim == 1:
            X = X[:, None]
        if X.ndim != 2 or X.shape[1] != self.input_dim:
            raise ValueError(f"X: expected shape (m, {self.input_dim}), got {X.shape}")
        return X

    @property
    def kernel(self):
        """The kernel this map's Gram tends to as its random units grow (gomaml.kernels)."""
        raise ValueError(f"{type(self).__name__} features have no kernel limit in gomaml")


class Identity(FeatureMap):
    """φ(x) = x (and a bias column if asked)."""
    name = "identity"

    def _width(self):
        return self.input_dim

    def _map(self, X):
        return X

    @property
    def kernel(self):
        from gomaml.kernels import Linear
        return Linear(bias=self.bias)


class _RandomUnits(FeatureMap):
    """D random units φ_j(x) = √(2/D)·act(w_jᵀx + b_j): weights drawn by _fit, the
    activation by _activate (in place)."""

    def __init__(self, n_features, *, bias=False, seed=0):
        super().__init__(bias=bias, seed=seed)
        self.D = _validate.integer("n_features", n_features, low=1)

    def _width(self):
        return self.D

    def _map(self, X):
        return self._map_units(X, 0, self.D)

    def _units(self):
        return self.D, 1

    def _unit_scale(self):
        return np.sqrt(2.0 / self.D)

    def _raw_units(self, X, lo, hi):
        z = X @ self.W[:, lo:hi]
        z += self.b[lo:hi]
        return self._activate(z)

    def config(self):
        return dict(super().config(), n_features=self.D)


class RandomFourier(_RandomUnits):
    """Random Fourier features of the RBF kernel k(x, x') = exp(−‖x − x'‖²/(2·bandwidth²)):
    φ(x) = √(2/D)·cos(Wx + b), W ~ N(0, I/bandwidth²), b ~ U(0, 2π) (Rahimi & Recht)."""
    name = "rff"

    def __init__(self, n_features, *, bandwidth=1.0, bias=False, seed=0):
        super().__init__(n_features, bias=bias, seed=seed)
        self.bandwidth = _validate.positive("bandwidth", bandwidth)

    def _fit(self, rng):
        self.W = rng.normal(size=(self.input_dim, self.D)) / self.bandwidth
        self.b = rng.uniform(0, 2 * np.pi, size=self.D)

    @staticmethod
    def _activate(z):
        return np.cos(z, out=z)

    def config(self):
        return dict(super().config(), bandwidth=self.bandwidth)

    @property
    def kernel(self):
        from gomaml.kernels import RBF
        return RBF(self.bandwidth, bias=self.bias)


class RandomReLU(_RandomUnits):
    """A wide two-layer network at initialisation: φ(x) = √(2/D)·max(0, Wx + b),
    W ~ N(0, I/p), b ~ N(0, 1) (He scaling, so ‖φ(x)‖ stays O(‖x‖/√p + 1) as D grows)."""
    name = "relu"

    def _fit(self, rng):
        self.W = rng.normal(size=(self.input_dim, self.D)) / np.sqrt(self.input_dim)
        self.b = rng.normal(size=self.D)

    @staticmethod
    def _activate(z):
        return np.maximum(z, 0.0, out=z)

    @property
    def kernel(self):
        from gomaml.kernels import ReLU
        return ReLU(bias=self.bias)


class NeuralTangent(FeatureMap):
    """The first-layer gradient of a two-layer ReLU network at initialisation,
    f(x) = (1/√m) Σ_j s_j max(0, w_jᵀx̃), x̃ = (x/√p, 1), w_j ~ N(0, I), s_j = ±1:
    φ(x) = ∇_W f = (1/√m) [s_j 1{w_jᵀx̃ > 0} x̃]_j, d = m·(p + 1) (+ bias). Its Gram tends to
    the NTK kernel. n_units: m."""
    name = "ntk"

    def __init__(self, n_units, *, bias=False, seed=0):
        super().__init__(bias=bias, seed=seed)
        self.m = _validate.integer("n_units", n_units, low=1)

    def _width(self):
        return self.m * (self.input_dim + 1)

    def _fit(self, rng):
        self.W = rng.normal(size=(self.input_dim + 1, self.m))
        self.s = rng.choice([-1.0, 1.0], size=self.m)

    def _map(self, X):
        return self._map_units(X, 0, self.m)

    def _units(self):
        return self.m, self.input_dim + 1

    def _unit_scale(self):
        return 1.0 / np.sqrt(self.m)

    def _raw_units(self, X, lo, hi):
        Xt = augmented_inputs(X)[0]
        gate = (Xt @ self.W[:, lo:hi] > 0) * self.s[lo:hi]
        return (gate[:, :, None] * Xt[:, None, :]).reshape(X.shape[0], -1)

    def config(self):
        return dict(super().config(), n_units=self.m)

    @property
    def kernel(self):
        from gomaml.kernels import NTK
        return NTK(bias=self.bias)


class Legendre(FeatureMap):
    """Legendre polynomials P_0 … P_degree of x mapped from `interval` to [−1, 1], for 1-D
    inputs (P_0 = 1 already acts as a bias). d = degree + 1 (+ bias)."""
    name = "legendre"

    def __init__(self, degree, *, interval=(-5.0, 5.0), bias=False, seed=0):
        super().__init__(bias=bias, seed=seed)
        self.degree = _validate.integer("degree", degree, low=0)
        self.interval = _validate.interval("interval", interval)

    def _width(self):
        return self.degree + 1

    def _fit(self, rng):
        if self.input_dim != 1:
            raise ValueError(f"Legendre features are for 1-D inputs, got input_dim = "
                             f"{self.input_dim}")

    def _map(self, X):
        lo, hi = self.interval
        t = (2 * X[:, 0] - (lo + hi)) / (hi - lo)
        return legendre.legvander(t, self.degree)

    def config(self):
        return dict(super().config(), degree=self.degree, interval=list(self.interval))


def make_feature_map(name, d, *, bandwidth=1.0, bias=False, seed=0, interval=(-5.0, 5.0),
                     input_dim=None):
    """A feature map of total dimension d (bias column included) by name.

    Parameters
    ----------
    name : str
        One of FEATURE_MAPS: identity, rff (random Fourier), relu (random ReLU), ntk (neural
        tangent: d minus the bias a multiple of input_dim + 1), legendre.
    d : int
        The total feature dimension.
    bandwidth : float, default 1.0
        rff only.
    bias : bool, default False
    seed : int, default 0
    interval : (float, float), default (-5, 5)
        legendre only: the input interval mapped to [-1, 1].
    input_dim : int, optional
        The raw input width p (needed by ntk).

    Returns
    -------
    FeatureMap
        Not fitted yet: call .fit(p).

    Raises
    ------
    ValueError
        An unknown name, or a d the map cannot have.

    Examples
    --------
    >>> from gomaml.features import make_feature_map
    >>> make_feature_map("rff", 32, bandwidth=2.0).fit(1).n_features
    32
    """
    width = d - bool(bias)
    if name == "identity":
        return Identity(bias=bias, seed=seed)
    if width < 1:
        raise ValueError(f"d = {d} leaves no room for features besides the bias column")
    if name == "rff":
        return RandomFourier(width, bandwidth=bandwidth, bias=bias, seed=seed)
    if name == "relu":
        return RandomReLU(width, bias=bias, seed=seed)
    if name == "legendre":
        return Legendre(width - 1, interval=interval, bias=bias, seed=seed)
    if name == "ntk":
        if input_dim is None or width % (input_dim + 1):
            raise ValueError(f"d: ntk features have d = units × (input_dim + 1){' + 1' if bias else ''}"
                             f"; d = {d} does not fit input_dim = {input_dim}")
        return NeuralTangent(width // (input_dim + 1), bias=bias, seed=seed)
    raise ValueError(f"features: unknown feature map {name!r}; expected one of "
                     f"{', '.join(FEATURE_MAPS)}")


#: every feature map by name (the registry config checks and the CLI read)
FEATURE_MAPS = {m.name: m for m in (Identity, RandomFourier, RandomReLU, NeuralTangent,
                                    Legendre)}
