"""`gomaml train` and `gomaml bound` as runs that never lose or mix work."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from test_cli import gomaml

SMALL = ["--d", "16", "--n-tasks", "6", "--quiet"]
STOPPED = 1          # train's exit code when it stops before ‖∇L‖ <= tol (max-iter)


def snapshot(folder):
    return {f: (folder / f).read_bytes() for f in sorted(os.listdir(folder))}


def one_line(proc, code, text):
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0] and "Traceback" not in proc.stderr, lines


def test_an_existing_run_is_refused_unless_resume_or_overwrite(tmp_path):
    run = tmp_path / "run"
    gomaml("train", "--out", str(run), *SMALL, "--max-iter", "5", check=STOPPED)
    before = snapshot(run)
    one_line(gomaml("train", "--out", str(run), *SMALL, "--max-iter", "5"), 2,
             "already holds a run")
    assert snapshot(run) == before
    gomaml("train", "--out", str(run), *SMALL, "--max-iter", "3", "--overwrite", check=STOPPED)
    assert json.loads((run / "run.json").read_text())["result"]["n_iter"] == 3
    one_line(gomaml("train", "--out", str(run), "--resume", "--overwrite"), 2, "not allowed")


@pytest.mark.parametrize("flags, named", [
    (["--inner-lr", "0.2"], "inner_lr: saved 0.1, now 0.2"),
    (["--loss", "pseudo_huber"], "loss: saved 'squared', now 'pseudo_huber'"),
    (["--inner-steps", "2"], "inner_steps: saved 1, now 2"),
    (["--first-order"], "first_order: saved False, now True"),
    (["--d", "32", "--n-tasks", "6"], "tasks differ"),
    (["--n-tasks", "7", "--d", "16"], "tasks differ"),
])
def test_resume_of_a_different_problem_is_refused_and_leaves_the_run(tmp_path, flags, named):
    run = tmp_path / "run"
    gomaml("train", "--out", str(run), *SMALL, "--max-iter", "5", check=STOPPED)
    before = snapshot(run)
    proc = gomaml("train", "--out", str(run), "--resume", "--max-iter", "9", "--quiet", *flags)
    one_line(proc, 2, named)
    assert snapshot(run) == before


def test_train_exits_1_unless_it_converged(tmp_path):
    proc = gomaml("train", "--out", str(tmp_path / "a"), *SMALL, "--max-iter", "4")
    one_line(proc, STOPPED, "not converged")
    meta = json.loads((tmp_path / "a" / "run.json").read_text())
    assert meta["status"] == "finished" and meta["result"]["converged"] is False
    assert meta["config"]["inner_lr"] == 0.1 and meta["config"]["tol"] == 1e-6  # the library's
    proc = gomaml("train", "--out", str(tmp_path / "a"), "--resume", "--max-iter", "10000",
                  "--quiet", check=0)
    meta = json.loads((tmp_path / "a" / "run.json").read_text())
    assert meta["result"]["converged"] is True and meta["result"]["grad_norm"] <= 1e-6
    assert "converged" in proc.stdout


def test_bad_arguments_write_nothing(tmp_path):
    run = tmp_path / "run"
    one_line(gomaml("train", "--out", str(run), *SMALL, "--inner-lr", "-0.1"), 2, "inner_lr")
    one_line(gomaml("train", "--out", str(run), *SMALL, "--max-iter", "-1"), 2, "max_iter")
    assert not run.exists()


def test_resumed_runs_end_at_the_uninterrupted_theta(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    common = [*SMALL, "--tol", "0", "--loss", "pseudo_huber"]
    gomaml("train", "--out", str(one), *common, "--max-iter", "40", check=STOPPED)
    gomaml("train", "--out", str(two), *common, "--max-iter", "13", check=STOPPED)
    gomaml("train", "--out", str(two), "--resume", "--max-iter", "29", "--quiet", check=STOPPED)
    gomaml("train", "--out", str(two), "--resume", "--max-iter", "40", "--quiet", check=STOPPED)
    a, b = np.load(one / "theta.npy"), np.load(two / "theta.npy")
    assert np.abs(a - b).max() <= 1e-12 * np.abs(a).max()
    meta = json.loads((two / "run.json").read_text())
    assert meta["result"]["n_iter"] == 40 and meta["status"] == "finished"
    assert meta["config"]["loss"] == "pseudo_huber"         # kept from the saved run


def test_sigint_saves_the_run_and_exits_130(tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "gomaml", "train", "--out", str(run), "--d", "256",
            "--n-tasks", "20", "--tol", "0", "--max-iter", "100000000", "--quiet",
            "--checkpoint-every", "0"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "run.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in out and "--resume" in err
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["result"]["n_iter"] > 0
    saved = np.load(run / "theta.npy")
    from gomaml import FitResult
    res = FitResult.load(run / "result.npz")
    np.testing.assert_array_equal(saved, res.theta)
    assert not [f for f in os.listdir(run) if f.endswith(".tmp")]


def test_bad_input_files_are_one_line_with_exit_2(tmp_path):
    run = tmp_path / "run"
    gomaml("train", "--out", str(run), *SMALL, "--max-iter", "5", check=STOPPED)
    one_line(gomaml("bound", str(run), "--comparator", str(tmp_path / "none.npy")), 2,
             "--comparator: no such file")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    one_line(gomaml("train", "--out", str(tmp_path / "r2"), "--tasks", str(bad), "--quiet"), 2,
             "not a gomaml tasks file")
    one_line(gomaml("train", "--out", str(tmp_path / "r3"), "--tasks", str(tmp_path / "no.npz"),
                    "--quiet"), 2, "--tasks: no such file")
    (run / "result.npz").write_bytes(b"PK\x03\x04truncated")
    one_line(gomaml("bound", str(run)), 2, "not a FitResult file")


def test_numerical_overflow_exits_1(tmp_path):
    import gomaml as gm
    rng = np.random.default_rng(0)
    tasks = gm.Tasks(rng.normal(size=(4, 5, 3)), 1e154 * rng.normal(size=(4, 5)))
    tasks.save(tmp_path / "t.npz")
    one_line(gomaml("train", "--out", str(tmp_path / "run"), "--tasks", str(tmp_path / "t.npz"),
                    "--quiet"), 1, "the scale of θ0, the features or the labels")
