"""The command line, end to end in subprocesses, on tiny configurations."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gomaml.study import TIMING_FIELDS as TIMING        # timings differ from run to run

# no test compares rows that a time budget could cut: the budget is out of reach here
NO_BUDGET = ["--time-budget", "1e9"]
TINY = ["--n-tasks", "4", "--n-test-tasks", "2", "--k-support", "3", "--k-query", "3",
        "--max-iter", "60", "--quiet", "--seeds", "0", *NO_BUDGET]


def gomaml(*args, check=None, timeout=300, **kw):
    proc = subprocess.run([sys.executable, "-m", "gomaml", *args], capture_output=True,
                          text=True, timeout=timeout, **kw)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def read_rows(folder):
    with open(os.path.join(folder, "rows.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def without_timing(rows):
    return sorted(({k: v for k, v in r.items() if k not in TIMING and k != "provenance"}
                   for r in rows), key=lambda r: r["d"])


def test_info():
    out = gomaml("info", check=0).stdout
    info = json.loads(out)
    assert {"version", "openmp", "max_threads", "blas", "boundscheck"} <= set(info)


def test_study_writes_rows_csv_plot_and_provenance(tmp_path):
    out = tmp_path / "study"
    proc = gomaml("study", "--d", "4,8,16", "--out", str(out), *TINY, check=0)
    assert "gap" in proc.stdout and "bound" in proc.stdout
    rows = read_rows(out)
    assert [r["d"] for r in rows] == [4, 8, 16]
    for r in rows:
        assert r["provenance"]["gomaml"] and r["provenance"]["numpy"]
        assert r["config"]["d"] == r["d"] and r["config"]["seed"] == r["seed"] == 0
        assert r["gap"] <= r["linear_term"] + 1e-9 and r["linear_term"] <= r["bound"] + 1e-9
    with open(out / "rows.csv") as f:
        table = list(csv.DictReader(f))
    assert [int(r["d"]) for r in table] == [4, 8, 16] and "config.loss" in table[0]
    png = (out / "study.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_study_config_file_and_flags(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('[study]\nfamily = "linear"\nfeatures = "identity"\ninput_dim = 3\n'
                   'd = [3]\nn_tasks = 5\nmax_iter = 40\nseeds = [4]\n')
    out = tmp_path / "o"
    gomaml("study", "--config", str(cfg), "--out", str(out), "--quiet", "--no-plot", check=0)
    (row,) = read_rows(out)
    assert row["config"]["family"] == "linear" and row["d"] == 3 and row["config"]["n_tasks"] == 5
    gomaml("study", "--config", str(cfg), "--n-tasks", "6", "--out", str(out), "--quiet",
           "--no-plot", check=0)
    assert len(read_rows(out)) == 2          # a different configuration is a new row


def _run_until_rows(args, n_rows, out, sig):
    proc = subprocess.Popen([sys.executable, "-m", "gomaml", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = os.path.join(out, "rows.jsonl")
    deadline = time.time() + 240
    while time.time() < deadline:
        if os.path.exists(path) and len(read_rows(out)) >= n_rows:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return proc.returncode, stdout, stderr


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_study_resumes_to_the_same_rows(tmp_path, sig):
    ds = "4,8,16,32,64,128,256,512"
    # heavy enough rows (~0.5 s each) that the signal lands mid-study
    args = ["study", "--d", ds, "--n-tasks", "10", "--n-test-tasks", "2", "--k-support", "5",
            "--k-query", "5", "--max-iter", "6000", "--tol", "1e-15", "--quiet", "--no-plot",
            "--seeds", "0", "--family", "sinusoid", "--features", "rff", *NO_BUDGET]
    ref_out, out = str(tmp_path / "ref"), str(tmp_path / "run")
    gomaml(*args, "--out", ref_out, check=0)
    code, _, stderr = _run_until_rows(args + ["--out", out], 2, out, sig)
    first = read_rows(out)
    assert 2 <= len(first) < 8                     # it really was interrupted mid-study
    if sig == signal.SIGINT:
        assert code == 130 and "interrupted" in stderr and "resume" in stderr
    else:
        assert code == -signal.SIGKILL
    proc = gomaml(*args, "--out", out, check=0)
    assert f"resuming: {len(first)} of 8" in proc.stderr
    rows = read_rows(out)
    assert len(rows) == 8 and len({r["key"] for r in rows}) == 8
    assert without_timing(rows) == without_timing(read_rows(ref_out))


def test_torn_last_line_is_discarded_and_fresh_starts_over(tmp_path):
    out = tmp_path / "s"
    args = ["study", "--d", "4,8", *TINY, "--no-plot", "--out", str(out)]
    gomaml(*args, check=0)
    good = read_rows(out)
    with open(out / "rows.jsonl", "a") as f:
        f.write('{"key": "0123", "d": 99, "gap": 0.')           # a write cut by a kill
    proc = gomaml(*args, check=0)
    assert "discarded 1 torn line" in proc.stderr
    assert read_rows(out) == good
    gomaml(*args[:-2], "--d", "4", "--out", str(out), "--fresh", check=0)
    assert [r["d"] for r in read_rows(out)] == [4]


def test_corrupt_middle_line_is_an_error_not_silently_dropped(tmp_path):
    out = tmp_path / "s"
    args = ["study", "--d", "4,8", *TINY, "--no-plot", "--out", str(out)]
    gomaml(*args, check=0)
    lines = (out / "rows.jsonl").read_text().splitlines()
    (out / "rows.jsonl").write_text("garbage\n" + "\n".join(lines) + "\n")
    proc = gomaml(*args, check=2)
    assert "line 1 is corrupt" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_train_then_bound(tmp_path):
    run = tmp_path / "run"
    gomaml("train", "--out", str(run), "--d", "16", "--n-tasks", "6", "--max-iter", "300",
           "--quiet", check=0)
    meta = json.loads((run / "run.json").read_text())
    assert meta["provenance"]["gomaml"] and meta["config"]["loss"] == "squared"
    assert {"tasks.npz", "result.npz", "theta.npy", "run.json"} <= set(os.listdir(run))
    text = gomaml("bound", str(run), check=0).stdout
    assert "holds" in text and "exact global minimiser" in text
    rep = json.loads(gomaml("bound", str(run), "--json", check=0).stdout)
    assert rep["gap"] <= rep["linear_term"] + 1e-9 <= rep["bound"] + 2e-9
    # train from the saved tasks file, and resume
    run2 = tmp_path / "run2"
    gomaml("train", "--tasks", str(run / "tasks.npz"), "--out", str(run2), "--max-iter", "5",
           "--quiet", check=1)                        # exit 1: stopped before tol
    gomaml("train", "--tasks", str(run / "tasks.npz"), "--out", str(run2), "--max-iter", "10",
           "--resume", "--quiet", check=1)            # --max-iter is the total
    assert json.loads((run2 / "run.json").read_text())["result"]["n_iter"] == 10


@pytest.mark.parametrize("args, code, text", [
    (["study", "--d", "8,x"], 2, "expected comma-separated integers"),
    (["study", "--family", "nope"], 2, "must be one of"),
    (["study", "--loss", "logistic"], 2, "logistic loss goes with the logistic family"),
    (["study", "--inner-lr", "-1"], 2, "'inner_lr' must be a finite number > 0"),
    (["nosuch"], 2, "invalid choice"),
    (["bound", "/nonexistent/run"], 2, "not a run folder"),
    (["bench", "--sizes", "Z"], 2, "unknown size 'Z'"),
    (["train", "--out", "{tmp}/r", "--outer-lr", "1e6", "--max-iter", "50", "--quiet"], 1,
     "DivergenceError"),
])
def test_errors_are_one_line_with_exit_codes(tmp_path, args, code, text):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = gomaml(*args, "--out", str(tmp_path / "o")) if args[0] == "study" else gomaml(*args)
    assert proc.returncode == code
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0] and "Traceback" not in proc.stderr


def test_bad_config_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("n_tasks = [\n")
    proc = gomaml("study", "--config", str(bad), "--out", str(tmp_path / "o"), check=2)
    assert "not valid TOML" in proc.stderr
    bad.write_text("n_taks = 3\n")
    proc = gomaml("study", "--config", str(bad), "--out", str(tmp_path / "o"), check=2)
    assert "unknown study setting 'n_taks'" in proc.stderr
    proc = gomaml("study", "--config", str(tmp_path / "missing.toml"), check=2)
    assert "cannot read config file" in proc.stderr


def test_train_checkpoints_survive_a_kill_and_resume(tmp_path):
    run = tmp_path / "run"
    args = ["train", "--out", str(run), "--d", "512", "--n-tasks", "20", "--tol", "0",
            "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "gomaml", *args, "--max-iter", "10000000",
                             "--checkpoint-every", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckpt = run / "result.npz"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.kill()
    proc.wait(timeout=60)
    from gomaml import FitResult
    saved = FitResult.load(ckpt)
    assert saved.message == "checkpoint" and saved.n_iter > 0
    assert len(saved.history["loss"]) == len(saved.history["iter"])
    gomaml(*args, "--max-iter", str(saved.n_iter + 7), "--resume", check=1)   # tol 0: exit 1
    done = FitResult.load(ckpt)
    assert done.n_iter == saved.n_iter + 7
    lengths = {len(v) for v in done.history.values()}
    assert len(lengths) == 1                                   # every column the same length
    kept = done.history["loss"][:len(saved.history["loss"])]
    assert list(kept) == list(saved.history["loss"])


def test_seeds_are_independent_streams_and_rows_are_keyed_by_seed_and_d(tmp_path):
    from gomaml.study import DEFAULT_CONFIG, row_config, row_key, seed_streams
    streams = [seed_streams(s) for s in range(4)]
    flat = [x for s in streams for x in s]
    assert len(set(flat)) == len(flat)          # no stream is another seed's stream
    out = tmp_path / "s"
    gomaml("study", "--d", "4,8", *TINY[:-5], "--seeds", "0,3", "--no-plot", *NO_BUDGET,
           "--out", str(out), check=0)
    rows = read_rows(out)
    assert sorted((r["seed"], r["d"]) for r in rows) == [(0, 4), (0, 8), (3, 4), (3, 8)]
    for r in rows:
        assert r["key"] == row_key(r["config"]) and "seeds" not in r["config"]
    # a row does not depend on which other seeds run with it: seed 3 alone gives its rows
    alone = tmp_path / "a"
    gomaml("study", "--d", "8", *TINY[:-5], "--seeds", "3", "--no-plot", *NO_BUDGET,
           "--out", str(alone), check=0)
    (row,) = read_rows(alone)
    (same,) = [r for r in rows if (r["seed"], r["d"]) == (3, 8)]
    assert without_timing([row]) == without_timing([same])
    cfg = dict(DEFAULT_CONFIG)
    assert row_key(row_config(cfg, 0, 16)) != row_key(row_config(cfg, 1, 16))


def test_retired_seed_settings_name_their_replacement(tmp_path):
    bad = tmp_path / "old.toml"
    bad.write_text("data_seed = 3\n")
    proc = gomaml("study", "--config", str(bad), "--out", str(tmp_path / "o"), check=2)
    assert "'data_seed' was replaced by 'seeds'" in proc.stderr
