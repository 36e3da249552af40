"""KernelTasks: the same MAML problem at any d, and at d = ∞ (docs/theory.md §11).

Every quantity on the training tasks depends on the features only through the Gram matrix
K of the training points U (support rows, then query rows; the support alone in same-data
mode). Exact kernel features Ψ with ΨΨᵀ = K (eigendecomposition, at the rank cutoff
λ > λ_max·N·eps) replace φ: L, ‖∇L‖, the gradient-descent path from 0, L(θ*) and every
Theorem 1 term are unchanged, at a cost O(N·r) per meta-gradient instead of O(N·d). New points
need the kernel itself: θ is kept as coefficients a over U.
"""
import math

import numpy as np

from gomaml import _validate
from gomaml._linalg import single_threaded_blas
from gomaml._memory import check_fits
from gomaml.features import FeatureMap
from gomaml.kernels import Kernel, _as_inputs
from gomaml.losses import resolve_loss
from gomaml.tasks import Tasks


def _gram_function(kernel):
    """k(X, Y) for a kernel or a fitted feature map (its exact finite-d Gram)."""
    if isinstance(kernel, Kernel):
        return kernel, math.inf
    if isinstance(kernel, FeatureMap):
        if kernel.input_dim is None:
            raise ValueError("kernel: the feature map is not fitted (call fit(input_dim))")
        return kernel.gram, kernel.n_features
    raise TypeError(f"kernel must be a gomaml.kernels kernel or a fitted gomaml.features map, "
                    f"got {type(kernel).__name__}")


class KernelTasks:
    """Tasks on raw inputs whose features are given by a kernel (d = ∞) or a fitted feature
    map (its exact Gram, accumulated over chunks of features, so d may exceed memory for Φ):
    the kernel form of docs/theory.md §11.

    Parameters
    ----------
    Xs, ys, Xq, yq : raw inputs and labels
        Shaped as for Tasks: (n, k, p) arrays or lists of (k_i, p); Xq = yq = None:
        same-data mode.
    kernel : gomaml.kernels kernel, or a fitted gomaml.features map
        A kernel stands for d = ∞; a feature map for its own finite d.
    weights : array_like (n,), optional

    Attributes
    ----------
    tasks : Tasks
        The exact kernel features Ψ (rank r columns, r <= the number of distinct training
        points): pass it to meta_loss_grad, fit, global_minimizer, optimality_bound, ...;
        their numbers are the feature form's.
    n_points, rank : int
    d : int or float
        The feature dimension it stands for (inf for a kernel).

    Raises
    ------
    TypeError, ValueError
        Bad inputs, named; a kernel that is not one.

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> from gomaml.kernels import RBF
    >>> rng = np.random.default_rng(0)
    >>> kt = gomaml.KernelTasks(rng.normal(size=(5, 4, 2)), rng.normal(size=(5, 4)),
    ...                         kernel=RBF(bandwidth=1.0))
    >>> kt.d, kt.n_points, kt.tasks.d == kt.rank
    (inf, 20, True)
    >>> theta = gomaml.fit(kt.tasks, tol=1e-8).theta
    >>> kt.predict(theta, rng.normal(size=(3, 2))).shape            # on new inputs
    (3,)
    """

    @single_threaded_blas
    def __init__(self, Xs, ys, Xq=None, yq=None, *, kernel, weights=None):
        self.kernel = kernel
        self._k, self._d = _gram_function(kernel)
        raw = Tasks(Xs, ys, Xq, yq, weights=weights, dtype=np.float64)
        Xs_, ys_, s_ptr, Xq_, yq_, q_ptr = raw.packed()
        self._p = raw.d
        U = Xs_ if raw.same_data else np.concatenate([Xs_, Xq_])
        distinct, first, inverse = np.unique(U, axis=0, return_index=True,
                                             return_inverse=True)
        inverse = inverse.reshape(-1)
        N = distinct.shape[0]
        check_fits(f"the Gram matrix of the {N} distinct training inputs and its "
                   f"eigenvectors", 3 * N * N * 8)
        K = self._k(distinct)
        lam, V = np.linalg.eigh((K + K.T) / 2)
        keep = lam > lam[-1] * N * np.finfo(float).eps if lam.size and lam[-1] > 0 \
            else np.zeros(lam.shape, bool)
        if not keep.any():
            raise ValueError("kernel: the Gram matrix of the training inputs is 0")
        self._lam, self._V = lam[keep], V[:, keep]
        self._distinct, self._first, self._inverse = distinct, first, inverse
        Psi = (self._V * np.sqrt(self._lam))[inverse]          # equal inputs, equal rows
        Ns = Xs_.shape[0]
        if raw.same_data:
            self.tasks = Tasks.from_packed(Psi, ys_, s_ptr, None, None, None,
                                           weights=raw.weights)
        else:
            self.tasks = Tasks.from_packed(Psi[:Ns], ys_, s_ptr, Psi[Ns:], yq_, q_ptr,
                                           weights=raw.weights)
        self._U = U
        self._new_gram = None

    # -- what it stands for ---------------------------------------------------------------
    @property
    def n_points(self):
        """N_U: the training points (support rows, then query rows unless same-data)."""
        return self._U.shape[0]

    @property
    def rank(self):
        """r: columns of Ψ, the numerical rank of the training points' Gram matrix."""
        return self._lam.shape[0]

    @property
    def d(self):
        """The feature dimension this stands for: the map's d, or inf for a kernel."""
        return self._d

    def __repr__(self):
        return (f"KernelTasks(n_tasks={self.tasks.n_tasks}, n_points={self.n_points}, "
                f"rank={self.rank}, d={self.d}, kernel={self.kernel!r})")

    # -- new points -------------------------------------------------------------------------
    def coefficients(self, theta):
        """a (n_points,): θ over the training points, θ = Σ_u a_u φ(u) (the minimum-norm
        coefficients; a distinct input's coefficient sits on its first occurrence in U)."""
        t = _validate.array("theta", theta, np.float64)
        if t.shape != (self.rank,):
            raise ValueError(f"theta: expected shape ({self.rank},) (the rank of Ψ), "
                             f"got {t.shape}")
        a = np.zeros(self.n_points)
        a[self._first] = self._V @ (t / np.sqrt(self._lam))
        return a

    def _adapted_values(self, base, Ks, ys, Kq, loss, eta, T):
        """(before, after) predictions at the query points after T inner steps in
        coefficients over the support: base = (f at support, f at query) before adaptation,
        Ks = k(support, support), Kq = k(support, query)."""
        fs0, fq0 = base
        c = np.zeros(len(ys))
        for _ in range(T):
            f = fs0 + Ks.T @ c                    # every f first, with the current c
            c = c - (eta / len(ys)) * loss.d1(f, ys)
        return fq0, fq0 + Kq.T @ c

    @single_threaded_blas
    def predict(self, theta, X, *, support=None, loss="squared", inner_lr=0.1,
                inner_steps=1):
        """f(X) = Σ_u a_u k(u, x) on new raw inputs X (m, p); with support=(Xs, ys), after
        inner_steps steps of size inner_lr on that support (adaptation to a new task)."""
        X = _as_inputs("X", X, self._p)
        a = self.coefficients(theta)[self._first]
        fx = self._k(X, self._distinct) @ a
        if support is None:
            return fx
        Xs = _as_inputs("support X", support[0], self._p)
        ys = np.asarray(support[1], dtype=np.float64).reshape(-1)
        if ys.shape != (Xs.shape[0],):
            raise ValueError(f"support y: expected {Xs.shape[0]} labels, got {ys.shape}")
        fs = self._k(Xs, self._distinct) @ a
        return self._adapted_values((fs, fx), self._k(Xs), ys, self._k(Xs, X),
                                    resolve_loss(loss), float(inner_lr), int(inner_steps))[1]

    def _gram_parts(self, P, blocks):
        """(k(P, training inputs), [k(P[a], P[b]) for a, b in blocks]): one pass over the
        feature map's units (never the training features twice), or the kernel's formula."""
        if isinstance(self.kernel, FeatureMap):
            return self.kernel.gram_parts(P, self._distinct, blocks)
        return self._k(P, self._distinct), [self._k(P[a], P[b]) for a, b in blocks]

    @single_threaded_blas
    def task_losses(self, theta, Xs, ys, Xq=None, yq=None, *, loss="squared", inner_lr=0.1,
                    inner_steps=1):
        """Each new task's query risk before and after adaptation, (before (n,), after (n,)),
        on raw inputs shaped as for Tasks, through the kernel."""
        new = Tasks(Xs, ys, Xq, yq, dtype=np.float64)
        if new.d != self._p:
            raise ValueError(f"Xs: new tasks have p = {new.d} input columns, the training "
                             f"tasks {self._p}")
        lossf = resolve_loss(loss)
        a = self.coefficients(theta)[self._first]
        Sx, sy, s_ptr, Qx, qy, q_ptr = new.packed()
        same = new.same_data
        off = 0 if same else Sx.shape[0]
        spans = [(slice(s_ptr[i], s_ptr[i + 1]), slice(off + q_ptr[i], off + q_ptr[i + 1]))
                 for i in range(new.n_tasks)]
        key = new.content_hash()
        if self._new_gram is None or self._new_gram[0] != key:
            # the Gram blocks of the last new tasks are kept: several θ on the same held-out
            # tasks cost one pass over the features
            P = np.asarray(Sx) if same else np.concatenate([Sx, Qx])
            blocks = [(S, S) for S, _ in spans] + [(S, Q) for S, Q in spans]
            self._new_gram = (key,) + self._gram_parts(P, blocks)
        _, cross, parts = self._new_gram
        f0 = cross @ a
        n = new.n_tasks
        before, after = np.empty(n), np.empty(n)
        for i, (S, Q) in enumerate(spans):
            yqi = np.asarray(qy[q_ptr[i]:q_ptr[i + 1]])
            b, f = self._adapted_values((f0[S], f0[Q]), parts[i], np.asarray(sy[S]),
                                        parts[n + i], lossf, float(inner_lr), int(inner_steps))
            before[i] = np.mean(lossf.value(b, yqi))
            after[i] = np.mean(lossf.value(f, yqi))
        return before, after
