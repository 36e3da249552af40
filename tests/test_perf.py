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


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 2])
def test_access_floor_reads_every_row_in_the_kernels_order(dtype, threads):
    from gomaml import _kernels
    rng = np.random.default_rng(0)
    tasks = gomaml.Tasks([rng.normal(size=(k, 9)) for k in (3, 1, 4, 2, 5)],
                         [rng.normal(size=k) for k in (3, 1, 4, 2, 5)],
                         [rng.normal(size=(k, 9)) for k in (2, 2, 1, 3, 1)],
                         [rng.normal(size=k) for k in (2, 2, 1, 3, 1)], dtype=dtype)
    Xs, _, s_ptr, Xq, _, q_ptr = tasks.packed()
    sums = np.empty(3)
    _kernels.access_floor(Xs, s_ptr, Xq, q_ptr, sums, threads)
    want = 2 * np.asarray(Xs, np.float64).sum() + np.asarray(Xq, np.float64).sum()
    assert sums.sum() == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert perf.access_floor_seconds(tasks, n_threads=threads) > 0


def test_cpu_description_names_the_cpu_and_its_caches():
    import os
    text = perf.cpu_description()
    if os.path.exists("/proc/cpuinfo"):
        assert not text.startswith("unknown CPU")
    if os.path.exists("/sys/devices/system/cpu/cpu0/cache/index0"):
        assert "caches L1" in text
