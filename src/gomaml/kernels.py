"""Kernels: the d → ∞ limits of the feature maps (docs/theory.md §11).

A kernel is called on raw inputs, k(X, Y) -> (len(X), len(Y)); k(X) is k(X, X). Each is the
limit of a random-feature map's Gram matrix φ(X)φ(Y)ᵀ as the number of random units grows
(`FeatureMap.kernel`): Identity → Linear, RandomFourier → RBF, RandomReLU → ReLU (arc-cosine of
order 1), NeuralTangent → NTK. With bias=True a constant 1 is added (the maps' bias column).

Gram blocks are a BLAS product (on one thread) plus a typed elementwise pass parallel over
rows (gomaml._kernels.gram_finish), in blocks of rows (bounded memory): the same inputs give
the same bits for any thread setting.
"""

import numpy as np

from gomaml import _validate
from gomaml._linalg import single_threaded_blas
from gomaml._threads import _kernels, resolve_n_threads

_BLOCK_BYTES = 32 << 20          # per block of the output


def _as_inputs(name, X, p=None):
    A = _validate.array(name, X, np.float64)
    if A.ndim == 1:
        A = A[:, None]
    if A.ndim != 2:
        raise ValueError(f"{name}: expected an (m, p) array of inputs, got shape {A.shape}")
    if p is not None and A.shape[1] != p:
        raise ValueError(f"{name}: has p = {A.shape[1]} input columns, the other has {p}")
    if not np.isfinite(A).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return A


class Kernel:
    """A kernel k(X, Y) on raw inputs (Linear, RBF, ReLU, NTK); `name` and `config()`
    describe it.

    Parameters
    ----------
    bias : bool, default False
        Add a constant 1 (the feature maps' bias column).

    Examples
    --------
    >>> import numpy as np
    >>> from gomaml.kernels import RBF, Linear
    >>> X = np.array([[0.0], [1.0]])
    >>> np.round(RBF(bandwidth=1.0)(X), 6)            # exp(−‖x − y‖² / 2σ²)
    array([[1.      , 0.606531],
           [0.606531, 1.      ]])
    >>> Linear(bias=True)(X, X)
    array([[1., 1.],
           [1., 2.]])
    """
    name = None

    def __init__(self, *, bias=False):
        self.bias = _validate.boolean("bias", bias)

    @single_threaded_blas
    def __call__(self, X, Y=None):
        """The Gram block (len(X), len(Y)) (Y None: X)."""
        X = _as_inputs("X", X)
        Y = X if Y is None else _as_inputs("Y", Y, X.shape[1])
        out = np.empty((X.shape[0], Y.shape[0]))
        rows = max(1, _BLOCK_BYTES // (8 * max(Y.shape[0], 1)))
        prep_y = self._prepare(Y)
        for a in range(0, X.shape[0], rows):
            out[a:a + rows] = self._block(self._prepare(X[a:a + rows]), prep_y)
        if self.bias:
            out += 1.0
        return out

    def _prepare(self, X):
        return X

    def config(self):
        """The kernel's settings as a JSON-safe dict (name, bias and its own)."""
        return {"name": self.name, "bias": self.bias}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class Linear(Kernel):
    """k(x, y) = xᵀy: the identity feature map's Gram."""
    name = "linear"

    def _block(self, X, Y):
        return X @ Y.T


class RBF(Kernel):
    """k(x, y) = exp(−‖x − y‖² / (2·bandwidth²)): random Fourier features' limit."""
    name = "rbf"

    def __init__(self, bandwidth=1.0, *, bias=False):
        super().__init__(bias=bias)
        self.bandwidth = _validate.positive("bandwidth", bandwidth)

    def _prepare(self, X):
        Xs = X / self.bandwidth
        return Xs, np.einsum("ij,ij->i", Xs, Xs)

    def _block(self, X, Y):
        (x, nx), (y, ny) = X, Y
        return _finish_gram(x @ y.T, nx, ny, _kernels.KERNEL_RBF)

    def config(self):
        return dict(super().config(), bandwidth=self.bandwidth)


def augmented_inputs(X):
    """x̃ = (x/√p, 1) and ‖x̃‖: the inputs as the first layer of the ReLU maps sees them."""
    p = X.shape[1]
    Xt = np.concatenate([X / np.sqrt(p), np.ones((X.shape[0], 1))], axis=1)
    return Xt, np.sqrt(np.einsum("ij,ij->i", Xt, Xt))


def _finish_gram(G, nx, ny, kind):
    """The typed elementwise pass over the inner products G, in place, parallel over rows."""
    G = np.ascontiguousarray(G)
    _kernels.gram_finish(G, nx, ny, kind, resolve_n_threads(None, G.size * 16))
    return G


class ReLU(Kernel):
    """The arc-cosine kernel of order 1 on x̃ = (x/√p, 1): k = (‖x̃‖‖ỹ‖/π)(sin t + (π − t) cos t),
    t the angle between x̃ and ỹ: random ReLU features' limit."""
    name = "relu"

    def _prepare(self, X):
        return augmented_inputs(X)

    def _block(self, X, Y):
        return _finish_gram(X[0] @ Y[0].T, X[1], Y[1], _kernels.KERNEL_RELU)


class NTK(Kernel):
    """The neural tangent kernel of a two-layer ReLU network's first layer on x̃ = (x/√p, 1):
    k = x̃ᵀỹ (π − t)/(2π): NeuralTangent features' limit."""
    name = "ntk"

    def _prepare(self, X):
        return augmented_inputs(X)

    def _block(self, X, Y):
        return _finish_gram(X[0] @ Y[0].T, X[1], Y[1], _kernels.KERNEL_NTK)


#: every kernel by name (the registry config checks and the CLI read)
#: every kernel by name (the registry the estimators and config checks read)
KERNELS = {k.name: k for k in (Linear, RBF, ReLU, NTK)}
