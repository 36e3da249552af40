"""The benchmark sizes of the core issue and their synthetic data (shared by the suites)."""
import numpy as np

import gomaml

# name: (n tasks, k support = k query, d)
SIZES = {
    "A": (1000, 10, 100),
    "B": (200, 20, 2000),
    "C": (100, 50, 10000),
    "D": (10000, 5, 50),
    "E": (10, 1000, 1000),
}


def make_case(name, loss="squared", dtype=np.float64, seed=0):
    """(theta, tasks, dense arrays (Xs, ys, Xq, yq)) of one size; labels fit the loss."""
    n, k, d = SIZES[name]
    rng = np.random.default_rng(seed)
    Xs = rng.standard_normal((n, k, d), dtype=np.float32 if dtype == np.float32 else np.float64)
    Xq = rng.standard_normal((n, k, d), dtype=Xs.dtype)
    Xs /= np.sqrt(d)
    Xq /= np.sqrt(d)
    if loss == "logistic":
        ys = rng.choice(np.array([-1.0, 1.0], dtype=dtype), size=(n, k))
        yq = rng.choice(np.array([-1.0, 1.0], dtype=dtype), size=(n, k))
    else:
        ys = rng.standard_normal((n, k)).astype(dtype)
        yq = rng.standard_normal((n, k)).astype(dtype)
    theta = rng.standard_normal(d) / np.sqrt(d)
    return theta, gomaml.Tasks(Xs, ys, Xq, yq), (Xs, ys, Xq, yq)
