"""The thread policy (API: n_threads) and results that do not depend on any thread count."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import gomaml
from gomaml import _threads
from conftest import make_tasks, openmp_expected
from test_cli import NO_BUDGET, read_rows, without_timing


def run_python(code, env=None, timeout=300):
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY",
                             "GOMP_SPINCOUNT")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


INFO = "import gomaml, json, os; i = gomaml.build_info(); " \
       "print(json.dumps([i['max_threads'], i['wait_policy'], 'GOMP_SPINCOUNT' in os.environ]))"


@pytest.mark.skipif(not openmp_expected(), reason="serial build")
def test_omp_num_threads_and_the_wait_policy_are_respected():
    cpus = _threads.available_cpus()
    n, wait, leaked = json.loads(run_python(INFO).stdout)
    assert n == cpus and "GOMP_SPINCOUNT=3000 (gomaml's default)" == wait and not leaked
    n, wait, _ = json.loads(run_python(INFO, {"OMP_NUM_THREADS": "1"}).stdout)
    assert n == 1
    n, wait, leaked = json.loads(run_python(INFO, {"OMP_WAIT_POLICY": "active"}).stdout)
    assert wait == "OMP_WAIT_POLICY=active (set by the user)"


@pytest.mark.skipif(not openmp_expected(), reason="serial build")
def test_a_threadpoolctl_limit_is_respected():
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        assert gomaml.build_info()["max_threads"] == 1
        assert _threads.resolve_n_threads(None, work=10**9) == 1
    assert _threads.resolve_n_threads(None, work=10**9) == _threads.default_threads()


def test_small_calls_run_serially_and_explicit_counts_are_kept():
    assert _threads.resolve_n_threads(None, work=_threads.SERIAL_WORK - 1) == 1
    if openmp_expected():
        assert _threads.resolve_n_threads(3, work=1) == 3


@pytest.mark.parametrize("n_threads", [0, -1, 1000, 200000, 2**31, 2**63])
def test_absurd_thread_counts_are_value_errors_in_a_subprocess(n_threads):
    # once a segfault (200000), an exit(1) from the OpenMP runtime (1000), a 384 GiB
    # allocation (2**31): run where a crash cannot take the test runner down
    code = (f"import numpy as np, gomaml\n"
            f"t = gomaml.Tasks(np.ones((2, 3, 4)), np.ones((2, 3)))\n"
            f"try:\n    gomaml.meta_loss_grad(np.zeros(4), t, n_threads={n_threads})\n"
            f"except ValueError as e:\n    print('ValueError:', e)\n")
    proc = run_python(code)
    assert proc.returncode == 0 and proc.stdout.startswith("ValueError: n_threads must be "
                                                           "an int between 1 and"), proc


@pytest.mark.parametrize("inner_steps, match", [
    (2**31, "inner_steps must be an int between 1 and 2147483647"),
    (2**40, "inner_steps must be an int between 1 and"),
    (2**30, r"inner_steps = 1073741824 needs .* GiB of scratch"),
])
def test_huge_inner_steps_are_value_errors(inner_steps, match):
    t = gomaml.Tasks(np.ones((2, 3, 4)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=match):
        gomaml.meta_loss_grad(np.zeros(4), t, inner_steps=inner_steps)


def test_fit_is_identical_for_any_kernel_thread_count(rng):
    tasks = make_tasks(rng, n=30, d=300, loss="logistic")
    runs = [gomaml.fit(tasks, loss="logistic", inner_lr=0.5, tol=0, max_iter=25,
                       n_threads=k) for k in (1, 2, 3)]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.theta, runs[0].theta)
        np.testing.assert_array_equal(r.history["loss"], runs[0].history["loss"])


def test_study_rows_are_identical_for_any_omp_and_blas_threads(tmp_path):
    # d = 16384 > OpenBLAS's threading threshold for dot: unpinned, fit's reductions (and
    # the minimiser's factorisations) changed with OPENBLAS_NUM_THREADS
    args = ["study", "--d", "8,16384", "--n-tasks", "4", "--n-test-tasks", "2",
            "--k-support", "3", "--k-query", "3", "--max-iter", "80", "--tol", "1e-12",
            "--quiet", "--no-plot", "--seeds", "0", *NO_BUDGET]
    results = []
    for omp in ("1", "2"):
        for blas in ("1", "2"):
            out = tmp_path / f"o{omp}b{blas}"
            proc = subprocess.run([sys.executable, "-m", "gomaml", *args, "--out", str(out)],
                                  capture_output=True, text=True, timeout=300,
                                  env={**os.environ, "OMP_NUM_THREADS": omp,
                                       "OPENBLAS_NUM_THREADS": blas})
            assert proc.returncode == 0, proc.stderr
            results.append(without_timing(read_rows(out)))
    for rows in results[1:]:
        assert rows == results[0]


def test_memory_checks_name_what_and_how_much(monkeypatch):
    from gomaml import _memory, features, synthetic
    from gomaml.trust_region import GolubKahanSolver
    monkeypatch.setattr(_memory, "available_bytes", lambda: 1 << 20)     # 1 MiB left
    raw = synthetic.linear_regression(3, 4, 4, 5, seed=0)
    fmap = features.RandomReLU(100_000, seed=0).fit(5)
    with pytest.raises(MemoryError, match=r"feature matrices .* about 18\.3 MiB"):
        raw.to_tasks(fmap)
    with pytest.raises(MemoryError, match=r"Krylov bases .* about .*MiB"):
        GolubKahanSolver(lambda x: np.ones(50_000), lambda r: np.ones(10), np.ones(50_000), 10)
