"""API.md's one rule, at every entry point: a wrong type (a bool, a non-integral number where an
int is needed, a string where a number is) is a TypeError; a bad value of the right type is a
ValueError; the message names the argument."""
import numpy as np
import pytest

import gomaml
from gomaml import features, kernels, synthetic


@pytest.fixture(scope="module")
def tasks():
    rng = np.random.default_rng(0)
    return gomaml.Tasks(rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 3)))


def calls(tasks):
    th = np.zeros(2)
    return {
        "inner_lr": lambda v: gomaml.meta_loss_grad(th, tasks, inner_lr=v),
        "inner_steps": lambda v: gomaml.meta_loss(th, tasks, inner_steps=v),
        "n_threads": lambda v: gomaml.adapt(th, tasks, n_threads=v),
        "max_iter": lambda v: gomaml.fit(tasks, max_iter=v),
        "tol": lambda v: gomaml.fit(tasks, tol=v, max_iter=1),
        "batch_size": lambda v: gomaml.fit(tasks, batch_size=v, max_iter=1),
        "seed": lambda v: gomaml.fit(tasks, seed=v, max_iter=1),
        "outer_lr": lambda v: gomaml.fit(tasks, outer_lr=v, max_iter=1),
        "checkpoint_every": lambda v: gomaml.fit(tasks, checkpoint_every=v, max_iter=1),
        "k_support": lambda v: synthetic.sinusoid(2, v, 2),
        "n_tasks": lambda v: synthetic.linear_regression(v, 2, 2, 3),
        "noise": lambda v: synthetic.linear_regression(2, 2, 2, 3, noise=v),
        "n_features": lambda v: features.RandomReLU(v),
        "n_units": lambda v: features.NeuralTangent(v),
        "degree": lambda v: features.Legendre(v),
        "bandwidth": lambda v: kernels.RBF(v),
        "delta": lambda v: gomaml.PseudoHuber(v),
        "R": lambda v: gomaml.optimality_bound(th, tasks, R=v),
    }


INTS = {"inner_steps", "n_threads", "max_iter", "batch_size", "seed", "k_support", "n_tasks",
        "n_features", "n_units", "degree"}
BAD_VALUE = {"inner_lr": 0.0, "inner_steps": 0, "n_threads": 0, "max_iter": -1, "tol": -1.0,
             "batch_size": 0, "seed": -1, "outer_lr": -2.0, "checkpoint_every": np.inf,
             "k_support": 0, "n_tasks": 0, "noise": -0.5, "n_features": 0, "n_units": 0,
             "degree": -1, "bandwidth": np.nan, "delta": 0.0, "R": -1.0}


@pytest.mark.parametrize("name", sorted(BAD_VALUE))
def test_one_rule(tasks, name):
    call = calls(tasks)[name]
    # R is 'auto' or a number: another string is a bad value of an accepted type
    wrong_types = [True] + ([] if name == "R" else ["1"]) + ([1.5, 2.0] if name in INTS else [])
    for v in wrong_types:
        with pytest.raises(TypeError, match=name):
            call(v)
    with pytest.raises(ValueError, match=name):
        call(BAD_VALUE[name])
