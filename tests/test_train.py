import io
import json
import math
import os
import re

import numpy as np
import pytest

import gomaml
from conftest import as_reference, make_tasks
import reference as ref


def well_conditioned(rng, n=12, d=5, dtype=np.float64):
    return make_tasks(rng, n=n, d=d, layout="ragged", dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("T", [1, 2])
def test_full_batch_reaches_the_provable_neighbourhood(rng, T, dtype):
    tasks = well_conditioned(rng, dtype=dtype)
    eta = 0.2
    res = gomaml.fit(tasks, inner_lr=eta, inner_steps=T, tol=1e-10)
    assert res.converged and res.grad_norm <= 1e-10 and "converged" in res.message
    theta_star, L_star = gomaml.global_minimizer(tasks, inner_lr=eta, inner_steps=T)
    M, _ = ref.stacked_rows(as_reference(tasks), tasks.weights, eta, T)
    s = np.linalg.svd(M, compute_uv=False)
    smin2 = s[s > 1e-12 * s[0]].min() ** 2
    assert np.linalg.norm(res.theta - theta_star) <= res.grad_norm / (2 * smin2)
    assert res.loss - L_star <= res.grad_norm ** 2 / (4 * smin2) + 1e-12 * max(1, L_star)
    h = res.history
    assert h["loss"].shape == h["grad_norm"].shape == (res.n_iter + 1,)
    assert h["grad_norm"][-1] == res.grad_norm
    # the non-monotone safeguard: no L above the largest of the ten before it (+ rounding)
    for k in range(1, len(h["loss"])):
        ref_L = h["loss"][max(0, k - 10):k].max()
        assert h["loss"][k] <= ref_L * (1 + 64 * np.finfo(float).eps)


@pytest.mark.parametrize("loss", ["logistic", "pseudo_huber"])
def test_other_losses_reach_stationarity(rng, loss):
    tasks = make_tasks(rng, n=8, d=4, layout="ragged", loss=loss)
    res = gomaml.fit(tasks, loss=loss, inner_lr=0.5, inner_steps=2, tol=1e-8, max_iter=20000)
    assert res.converged
    _, g = gomaml.meta_loss_grad(res.theta, tasks, loss=loss, inner_lr=0.5, inner_steps=2)
    assert np.linalg.norm(g) == pytest.approx(res.grad_norm, rel=1e-12)


def test_mini_batch_algorithm_1(rng):
    """Fixed-step Algorithm 1 reaches ε only where the per-task noise vanishes at θ*: an
    interpolating instance (d > Σ kq_i, every task's loss 0 at θ*)."""
    tasks = make_tasks(rng, n=6, d=60, layout="ragged")
    assert tasks.query_sizes.sum() < 60
    a = gomaml.fit(tasks, inner_lr=0.2, batch_size=2, seed=3, tol=1e-6, max_iter=50000)
    b = gomaml.fit(tasks, inner_lr=0.2, batch_size=2, seed=3, tol=1e-6, max_iter=50000)
    assert a.converged and a.grad_norm <= 1e-6
    assert np.array_equal(a.theta, b.theta)                    # seeded: reproducible
    # the stopping test is the full gradient, evaluated every ceil(n/B) = 3 steps
    assert np.all(np.asarray(a.history["iter"][1:]) % 3 == 0)
    _, g = gomaml.meta_loss_grad(a.theta, tasks, inner_lr=0.2)
    assert np.linalg.norm(g) == pytest.approx(a.grad_norm, rel=1e-12)


def test_mini_batch_noise_floor_without_interpolation(rng):
    """Without interpolation a fixed step stalls at a noise floor: it must say so and not
    claim convergence; the full objective still decreases on average."""
    tasks = well_conditioned(rng, n=20)
    res = gomaml.fit(tasks, inner_lr=0.2, batch_size=5, seed=1, tol=1e-10, max_iter=400)
    assert not res.converged and "max_iter" in res.message
    assert np.mean(res.history["loss"][-20:]) < res.history["loss"][0]


def test_first_order_says_so(rng):
    tasks = well_conditioned(rng)
    res = gomaml.fit(tasks, inner_lr=0.2, first_order=True, tol=1e-8)
    assert res.converged and "first-order" in res.message
    _, g_fo = gomaml.meta_loss_grad(res.theta, tasks, inner_lr=0.2, first_order=True)
    assert np.linalg.norm(g_fo) <= 1e-8


def test_divergence_raises_with_last_good_result(rng):
    tasks = well_conditioned(rng)
    with pytest.raises(gomaml.DivergenceError, match=r"reduce outer_lr \(now 1e\+03\)") as exc:
        gomaml.fit(tasks, inner_lr=0.2, outer_lr=1e3, max_iter=1000)
    good = exc.value.result
    assert isinstance(good, gomaml.FitResult) and np.isfinite(good.theta).all()
    assert math.isfinite(good.loss) and good.message == "diverged"
    assert good.loss == pytest.approx(gomaml.meta_loss(good.theta, tasks, inner_lr=0.2))


def test_callback_stop_interrupt_and_resume(rng, tmp_path):
    tasks = well_conditioned(rng)
    kw = dict(inner_lr=0.2, tol=1e-10)
    stopped = gomaml.fit(tasks, callback=lambda it, th, L, g: it >= 3, **kw)
    assert stopped.n_iter == 3 and stopped.message == "stopped by callback"

    def interrupt(it, theta, L, g):
        if it == 5:
            raise KeyboardInterrupt

    part = gomaml.fit(tasks, callback=interrupt, **kw)
    assert part.message == "interrupted" and not part.converged and part.n_iter == 5
    assert part.loss == pytest.approx(gomaml.meta_loss(part.theta, tasks, inner_lr=0.2),
                                      rel=1e-14)
    part.save(tmp_path / "run.npz")
    loaded = gomaml.FitResult.load(tmp_path / "run.npz")
    assert np.array_equal(loaded.theta, part.theta) and loaded.n_iter == 5
    for k in part.history:
        np.testing.assert_array_equal(loaded.history[k], part.history[k])
    done = gomaml.fit(tasks, theta0=tmp_path / "run.npz", **kw)
    assert done.converged and done.n_iter > 5
    assert done.history["loss"].shape == (done.n_iter + 1,)
    np.testing.assert_array_equal(done.history["loss"][:6], part.history["loss"])
    full = gomaml.fit(tasks, **kw)
    assert np.linalg.norm(done.theta - full.theta) <= 1e-8


def test_validation_history_and_dict(rng):
    tasks = well_conditioned(rng)
    val = well_conditioned(rng, n=4)
    res = gomaml.fit(tasks, inner_lr=0.2, val_tasks=val, max_iter=20, tol=1e-12)
    assert res.history["val_loss"].shape == res.history["loss"].shape
    assert res.history["val_loss"][-1] == pytest.approx(
        gomaml.meta_loss(res.theta, val, inner_lr=0.2), rel=1e-14)
    d = res.to_dict()
    assert d["n_iter"] == 20 and isinstance(d["theta"], list) and "val_loss" in d["history"]


def test_progress_plain_lines_when_not_a_terminal(rng, monkeypatch):
    tasks = well_conditioned(rng)
    buf = io.StringIO()
    monkeypatch.setattr("sys.stderr", buf)
    gomaml.fit(tasks, inner_lr=0.2, tol=1e-10, progress=True)
    lines = buf.getvalue().splitlines()
    assert lines and lines[-1].startswith("fit: ") and "\r" not in buf.getvalue()


@pytest.mark.parametrize("kwargs, match", [
    ({"outer_lr": 0.0}, "outer_lr must be"),
    ({"outer_lr": -1.0}, "outer_lr must be"),
    ({"max_iter": -1}, "max_iter must be"),
    ({"tol": -1.0}, "tol must be"),
    ({"batch_size": 0}, "batch_size must be"),
    ({"batch_size": 99}, "batch_size must be <= n_tasks"),
    ({"theta0": np.zeros(2)}, r"theta0: expected shape \(5,\)"),
    ({"inner_lr": 0.0}, "inner_lr"),
])
def test_bad_arguments(rng, kwargs, match):
    tasks = well_conditioned(rng)
    with pytest.raises(ValueError, match=match):
        gomaml.fit(tasks, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"max_iter": 1.5}, "max_iter must be an int"),
    ({"tol": "1e-3"}, "tol must be a real number"),
    ({"batch_size": 2.0}, "batch_size must be an int"),
    ({"first_order": 1}, "first_order must be True or False"),
    ({"checkpoint": 3}, "checkpoint must be a path"),
    ({"n_threads": 2.0}, "n_threads must be an int"),
])
def test_wrong_types_are_type_errors(rng, kwargs, match):
    with pytest.raises(TypeError, match=match):
        gomaml.fit(well_conditioned(rng), **kwargs)


def _interrupt_at(k):
    def callback(it, theta, L, g):
        if it == k:
            raise KeyboardInterrupt
    return callback


@pytest.mark.parametrize("batch_size", [None, 5])
def test_interrupted_and_resumed_fit_ends_where_an_uninterrupted_one_does(rng, tmp_path,
                                                                          batch_size):
    tasks = make_tasks(rng, n=12, d=6, loss="logistic")
    kw = dict(loss="logistic", inner_lr=0.3, tol=0, max_iter=45, batch_size=batch_size,
              seed=3)
    full = gomaml.fit(tasks, **kw)
    ckpt = tmp_path / "ckpt.npz"
    every = 1 if batch_size is None else 3        # ⌈12/5⌉ steps between full checks
    part = gomaml.fit(tasks, callback=_interrupt_at(7 * every), checkpoint=ckpt, **kw)
    assert part.message == "interrupted" and part.n_iter == 7 * every
    saved = gomaml.FitResult.load(ckpt)           # the snapshot written on the interrupt
    np.testing.assert_array_equal(saved.theta, part.theta)
    again = gomaml.fit(tasks, theta0=ckpt, callback=_interrupt_at(13 * every),
                       checkpoint=ckpt, **kw)
    assert again.n_iter == 13 * every
    done = gomaml.fit(tasks, theta0=ckpt, **kw)   # max_iter is the total over all runs
    assert done.n_iter == full.n_iter and done.message == full.message
    assert full.n_iter > 13 * every
    scale = np.abs(full.theta).max()
    assert np.abs(done.theta - full.theta).max() <= 1e-12 * scale
    for k in ("loss", "grad_norm", "step"):
        np.testing.assert_allclose(done.history[k], full.history[k], rtol=1e-12, atol=0)


def test_checkpoints_are_written_during_training_and_at_the_end(rng, tmp_path):
    tasks = well_conditioned(rng)
    ckpt = tmp_path / "c.npz"
    seen = []

    def watch(it, theta, L, g):
        if ckpt.exists():
            snap = gomaml.FitResult.load(ckpt)
            assert snap.config["step"] > 0           # never "step None", also the first one
            seen.append(snap.n_iter)

    res = gomaml.fit(tasks, inner_lr=0.2, tol=1e-10, max_iter=30, checkpoint=ckpt,
                     checkpoint_every=1e-9, callback=watch)
    assert seen and seen == sorted(seen) and seen[0] >= 1
    final = gomaml.FitResult.load(ckpt)
    assert final.n_iter == res.n_iter and final.message == res.message
    assert final.config["tasks_hash"] == tasks.content_hash()
    assert [p for p in os.listdir(tmp_path) if p != "c.npz"] == []    # no temporary files


@pytest.mark.parametrize("change, named", [
    ({"inner_lr": 0.25}, "inner_lr: saved 0.2, now 0.25"),
    ({"loss": "pseudo_huber"}, "loss: saved 'squared', now 'pseudo_huber'"),
    ({"inner_steps": 2}, "inner_steps: saved 1, now 2"),
    ({"first_order": True}, "first_order: saved False, now True"),
    ({"batch_size": 4, "seed": 0}, "batch_size: saved None, now 4"),
    ({"tasks": "other"}, "the tasks differ"),
])
def test_resume_refuses_a_different_problem(rng, tmp_path, change, named):
    tasks = well_conditioned(rng)
    kw = dict(loss="squared", inner_lr=0.2, max_iter=3)
    gomaml.fit(tasks, checkpoint=tmp_path / "c.npz", **kw)
    before = (tmp_path / "c.npz").read_bytes()
    change = dict(change)
    if change.pop("tasks", None):
        tasks = well_conditioned(rng)
    with pytest.raises(ValueError, match="different problem, not resumed: .*" + re.escape(named)):
        gomaml.fit(tasks, theta0=tmp_path / "c.npz", checkpoint=tmp_path / "c.npz",
                   **{**kw, **change})
    assert (tmp_path / "c.npz").read_bytes() == before          # left untouched


def test_resume_past_max_iter_takes_no_step(rng):
    tasks = well_conditioned(rng)
    part = gomaml.fit(tasks, inner_lr=0.2, tol=1e-14, max_iter=8)
    again = gomaml.fit(tasks, theta0=part, inner_lr=0.2, tol=1e-14, max_iter=8)
    assert again.n_iter == 8 and "8 steps in total" in again.message
    np.testing.assert_array_equal(again.theta, part.theta)


def test_corrupt_fit_result_files_are_value_errors_naming_the_file(rng, tmp_path):
    res = gomaml.fit(well_conditioned(rng), inner_lr=0.2, max_iter=3)
    good = tmp_path / "r.npz"
    res.save(good)
    data = good.read_bytes()
    cases = {"truncated.npz": data[:len(data) // 2], "garbage.npz": b"not a zip file",
             "empty.npz": b""}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
    np.savez(tmp_path / "keys.npz", theta=np.zeros(3))
    np.savez(tmp_path / "negative.npz", theta=np.zeros(3), meta=np.array(json.dumps(
        {"loss": 1.0, "grad_norm": 1.0, "n_iter": -2, "converged": False, "message": "",
         "wall_time": 0.0})))
    np.savez(tmp_path / "step.npz", theta=np.zeros(3), meta=np.array(json.dumps(
        {"loss": 1.0, "grad_norm": 1.0, "n_iter": 2, "converged": False, "message": "",
         "wall_time": 0.0, "config": {"step": -1.0}})))
    np.savez(tmp_path / "json.npz", theta=np.zeros(3), meta=np.array("{not json"))
    for name in list(cases) + ["keys.npz", "negative.npz", "step.npz", "json.npz"]:
        with pytest.raises(ValueError, match=re.escape(str(tmp_path / name))):
            gomaml.FitResult.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        gomaml.FitResult.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("case", [
    dict(tol=1e-6, max_iter=500), dict(tol=1e-6, max_iter=3), dict(tol=0.0, max_iter=50),
    dict(tol=1e-3, max_iter=200, batch_size=3, seed=1), dict(tol=1e-4, max_iter=40, outer_lr=0.05),
    dict(tol=1e-5, max_iter=300, first_order=True), dict(tol=1e-6, max_iter=100, inner_steps=2),
])
def test_converged_means_the_tolerance_held_at_the_returned_theta(rng, case):
    """"converged" (the flag and the word in the message) only when ‖∇L‖ <= tol at the θ
    returned, by the NumPy reference's gradient (the first-order direction with
    first_order=True)."""
    tasks = make_tasks(rng, n=6, d=4, weighted=False)
    T, fo = case.get("inner_steps", 1), case.get("first_order", False)
    res = gomaml.fit(tasks, inner_lr=0.2, **case)
    _, g, _, _ = ref.meta_loss_grad(res.theta, as_reference(tasks), tasks.weights, "squared",
                                    0.2, T, first_order=fo)
    gn = np.linalg.norm(g)
    assert res.grad_norm == pytest.approx(gn, rel=1e-9, abs=1e-15)
    held = gn <= case["tol"] * (1 + 1e-9)
    assert res.converged == held or abs(gn - case["tol"]) <= 1e-9 * case["tol"]
    assert res.message.startswith("converged") == res.converged
    if not res.converged:
        assert "converged" not in res.message
