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
    if dtype == np.float64:
        assert sums.sum() == pytest.approx(want, rel=1e-12, abs=1e-12)
    else:
        # float32 rows are read in float32 lanes (a plain read at the bytes' speed): each
        # read's sum carries at most (n/64 + 6)·2^-24·sum|x| of rounding (rowops.h, gm_sum_f),
        # the double additions of the reads (+1) far less; a row skipped would move it by O(1)
        mags = [np.abs(np.asarray(X[p[i]:p[i + 1]], np.float64)).sum()
                for X, p in ((Xs, s_ptr), (Xq, q_ptr), (Xs, s_ptr)) for i in range(5)]
        n_max = max(int(p[i + 1] - p[i]) * 9 for p in (s_ptr, q_ptr) for i in range(5))
        bound = (n_max / 64 + 7) * 2.0 ** -24 * sum(mags) + 1e-12 * abs(want)
        assert abs(sums.sum() - want) <= bound < 1e-3
    assert perf.access_floor_seconds(tasks, n_threads=threads) > 0


def test_cpu_description_names_the_cpu_and_its_caches():
    import os
    text = perf.cpu_description()
    if os.path.exists("/proc/cpuinfo"):
        assert not text.startswith("unknown CPU")
    if os.path.exists("/sys/devices/system/cpu/cpu0/cache/index0"):
        assert "caches L1" in text


def test_best_times_alternates_the_calls_and_keeps_each_best(monkeypatch):
    ticks = iter(range(1000))
    monkeypatch.setattr(perf.time, "perf_counter", lambda: float(next(ticks)))
    log = []

    def a():                       # one tick per call
        log.append("a")

    def b():                       # three ticks per call, but one tick on its third call
        log.append("b")
        if log.count("b") != 3:
            next(ticks), next(ticks)

    assert perf.best_times([a, b], repeats=4, min_time=0.0) == [1.0, 1.0]
    assert log == ["a", "b"] * 4
    log.clear()

    def c():                       # always three ticks
        log.append("c")
        next(ticks), next(ticks)

    # min_time counts every call's time: rounds of 1 + 3 ticks until 10 are spent
    assert perf.best_times([a, c], repeats=1, min_time=10.0) == [1.0, 3.0]
    assert log == ["a", "c"] * 3
