"""pytest-benchmark suite: the exact meta-gradient at the core issue's sizes, beside the
vectorised NumPy baseline in the same run.

    python -m pytest bench/ --benchmark-group-by=param:size,param:loss
"""
import numpy as np
import pytest

import gomaml
from gomaml import perf
from gomaml.benchmark import SIZES, make_case

THREADS = 2


@pytest.fixture(scope="module", params=sorted(SIZES))
def size(request):
    return request.param


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("impl", ["gomaml", "numpy"])
def test_meta_grad(benchmark, size, loss, impl):
    theta, tasks, dense = make_case(SIZES[size], loss)
    benchmark.extra_info.update(size=size, bytes=perf.task_bytes(tasks), shape=SIZES[size])
    if impl == "gomaml":
        fn = lambda: gomaml.meta_loss_grad(theta, tasks, loss=loss, inner_lr=0.1,
                                           n_threads=THREADS)
    else:
        fn = lambda: perf.numpy_meta_loss_grad(theta, *dense, loss=loss, inner_lr=0.1)
    L, g = benchmark(fn)
    assert np.isfinite(L) and np.isfinite(g).all()
