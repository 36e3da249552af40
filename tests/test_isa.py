"""One kernel module per instruction-set level (gomaml._kernels): every level this CPU runs
gives the reference's numbers, bit-identical for any thread count within the level."""
import json
import os
import subprocess
import sys


import gomaml
from gomaml import _kernels

PROBE = r"""
import json, numpy as np, gomaml
rng = np.random.default_rng(3)
for loss in ("squared", "logistic"):
    Xs = [rng.normal(size=(k, 37)) for k in (3, 9, 1, 5)]
    ys = [rng.choice([-1.0, 1.0], size=len(x)) for x in Xs]
    Xq = [rng.normal(size=(k, 37)) for k in (2, 4, 6, 1)]
    yq = [rng.choice([-1.0, 1.0], size=len(x)) for x in Xq]
    tasks = gomaml.Tasks(Xs, ys, Xq, yq)
    theta = rng.normal(size=37) / 6
    out = [gomaml.meta_loss_grad(theta, tasks, loss=loss, inner_lr=0.3, inner_steps=2,
                                 n_threads=t) for t in (1, 2, 3)]
    print(json.dumps({"loss": loss, "isa": gomaml.build_info()["isa"],
                      "L": [o[0] for o in out], "g": [o[1].tolist() for o in out]}))
"""


def run_level(level):
    env = dict(os.environ, GOMAML_ISA=level)
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_every_available_level_agrees_and_is_thread_deterministic():
    results = {level: run_level(level) for level in _kernels.AVAILABLE}
    base = results["baseline"]
    for level, res in results.items():
        for r, b in zip(res, base):
            assert level.split(" ")[0] in r["isa"] or level == "baseline"
            assert r["L"][0] == r["L"][1] == r["L"][2]            # bit-identical over threads
            assert r["g"][0] == r["g"][1] == r["g"][2]
            assert abs(r["L"][0] - b["L"][0]) <= 1e-13 * abs(b["L"][0])
            scale = max(abs(v) for v in b["g"][0])
            assert max(abs(x - y) for x, y in zip(r["g"][0], b["g"][0])) <= 1e-13 * scale


def test_the_best_level_is_the_default_and_a_bad_level_is_a_clear_error():
    assert _kernels.ISA == (os.environ.get("GOMAML_ISA") or _kernels.AVAILABLE[0])
    assert gomaml.build_info()["isa_available"] == _kernels.AVAILABLE
    env = dict(os.environ, GOMAML_ISA="x86-64-v9")
    proc = subprocess.run([sys.executable, "-c", "import gomaml"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode != 0 and "GOMAML_ISA='x86-64-v9': expected one of" in proc.stderr
