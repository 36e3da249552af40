import os
import zlib

import numpy as np
import pytest

import gomaml

LOSSES = ["squared", "logistic", "pseudo_huber"]
DTYPES = [np.float64, np.float32]
# relative tolerance of kernel results against the float64 reference on the same rounded data
RTOL = {np.float64: 1e-12, np.float32: 1e-6}


def make_raw(rng, n=7, d=6, layout="ragged", loss="squared", scale=1.0):
    """Per-task lists (Xs, ys, Xq, yq) (Xq = yq = None in same-data mode)."""
    if layout == "dense":
        ks = [5] * n
        kq = [4] * n
    else:
        ks = rng.integers(1, 9, size=n).tolist()
        kq = rng.integers(1, 9, size=n).tolist()
    Xs = [scale * rng.normal(size=(k, d)) / np.sqrt(d) for k in ks]
    Xq = [scale * rng.normal(size=(k, d)) / np.sqrt(d) for k in kq]
    if loss == "logistic":
        ys = [rng.choice([-1.0, 1.0], size=k) for k in ks]
        yq = [rng.choice([-1.0, 1.0], size=k) for k in kq]
    else:
        ys = [rng.normal(size=k) for k in ks]
        yq = [rng.normal(size=k) for k in kq]
    if layout == "same":
        return Xs, ys, None, None
    if layout == "dense":
        return np.stack(Xs), np.stack(ys), np.stack(Xq), np.stack(yq)
    return Xs, ys, Xq, yq


def make_tasks(rng, *, n=7, d=6, layout="ragged", loss="squared", dtype=np.float64,
               weighted=True, scale=1.0):
    Xs, ys, Xq, yq = make_raw(rng, n, d, layout, loss, scale)
    weights = rng.uniform(0.2, 3.0, size=n) if weighted else None
    return gomaml.Tasks(Xs, ys, Xq, yq, weights=weights, dtype=dtype)


def as_reference(tasks):
    """The tasks as a list of float64 (Xs, ys, Xq, yq): the reference runs on the same
    (possibly float32-rounded) numbers."""
    return [tuple(np.asarray(a, dtype=np.float64) for a in tasks.task(i))
            for i in range(tasks.n_tasks)]


@pytest.fixture
def rng(request):
    # a per-test seed, stable across runs
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


def openmp_expected():
    return os.environ.get("GOMAML_EXPECT_SERIAL", "0") != "1"
