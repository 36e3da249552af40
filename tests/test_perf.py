"""The speed baselines compute the same numbers as the kernels (else the ratios mean nothing)."""
import numpy as np
import pytest

import gomaml
from gomaml import benchmark, perf


@pytest.mark.parametrize("T", [1, 3])
@pytest.mark.parametrize("loss", ["squared", "logistic", "pseudo_huber"])
def test_numpy_baseline_matches_kernels(loss, T):
    theta, tasks, dense = benchmark.make_case((7, 5, 9), loss, seed=3)
    L0, g0 = perf.numpy_meta_loss_grad(theta, *dense, loss=loss, inner_lr=0.3, inner_steps=T)
    L1, g1 = gomaml.meta_loss_grad(theta, tasks, loss=loss, inner_lr=0.3, inner_steps=T)
    assert L0 == pytest.approx(L1, rel=1e-12)
    np.testing.assert_allclose(g0, g1, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("peer", ["torch", "jax"])
def test_optional_peers_match_kernels(peer):
    pytest.importorskip(peer)
    theta, tasks, dense = benchmark.make_case((6, 4, 5), "logistic", seed=1)
    L0, g0 = benchmark._peers()[peer](dense, "logistic", 0.2)(theta)
    L1, g1 = gomaml.meta_loss_grad(theta, tasks, loss="logistic", inner_lr=0.2)
    assert L0 == pytest.approx(L1, rel=1e-12)
    np.testing.assert_allclose(g0, g1, rtol=1e-10, atol=1e-14)


def test_bandwidth_probe_and_byte_count():
    bw = perf.stream_bandwidth(1 << 22, n_threads=1, repeats=2)
    assert 1e8 < bw < 1e13
    theta, tasks, dense = benchmark.make_case((3, 4, 5), "squared")
    assert perf.task_bytes(tasks) == sum(a.nbytes for a in dense)
    same = gomaml.Tasks(dense[0], dense[1])
    assert perf.task_bytes(same) == dense[0].nbytes + dense[1].nbytes
