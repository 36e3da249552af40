"""The worked examples in examples/ run as written (each in seconds) and their printed claims
hold: MAML adapts better than the same inner steps from θ = 0, and the bound certifies."""
import os
import runpy
import subprocess
import sys

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")


def load(name):
    return runpy.run_path(os.path.join(EXAMPLES, f"{name}.py"), run_name="example")


def test_sinusoid_regression(tmp_path):
    maml, zero = load("sinusoid_regression")["main"](str(tmp_path))
    assert (tmp_path / "sinusoid_regression.png").stat().st_size > 10_000
    assert np.median(maml) > np.median(zero) + 0.05 and np.median(maml) > 0.75


def test_logistic_classification(tmp_path):
    maml, zero = load("logistic_classification")["main"](str(tmp_path))
    assert (tmp_path / "logistic_classification.png").stat().st_size > 10_000
    assert maml.mean() > zero.mean() + 0.02


def test_certify(tmp_path):
    rows = load("certify")["main"](str(tmp_path))
    assert (tmp_path / "certify.png").stat().st_size > 10_000
    it, eps, gap, lin, bound = (np.array(c) for c in zip(*rows))
    assert np.all(gap <= bound) and gap[-1] < 1e-3 * gap[0]


@pytest.mark.parametrize("name", ["sinusoid_regression", "logistic_classification",
                                  "certify"])
def test_examples_run_as_scripts(tmp_path, name):
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, f"{name}.py"), "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / f"{name}.png").exists() and "plot:" in proc.stdout
