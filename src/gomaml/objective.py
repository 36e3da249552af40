"""The MAML meta-objective L(θ) = Σ_i p_i R(θ_i; Q_i) and its exact gradient (theory.md §3).

The public calls; the validated call, the block evaluation and the scratch helpers are the
internal contract in gomaml._core; the arithmetic is in the compiled kernels.
"""
import numpy as np

from gomaml import _validate
from gomaml._core import (NonFiniteOutputError, NumericalOverflowError, Problem,  # noqa: F401
                          aligned_scratch, evaluate)
from gomaml._threads import _kernels


def meta_loss_grad(theta, tasks, *, loss="squared", inner_lr=0.1, inner_steps=1,
                   first_order=False, n_threads=None):
    """The MAML meta-objective and its exact gradient.

    L(θ) = Σ_i p_i R(θ_i; Q_i), θ_i the result of `inner_steps` gradient steps of size
    `inner_lr` on task i's support risk from θ; the gradient Σ_i p_i J_iᵀ ∇R(θ_i; Q_i) includes
    the Hessian terms (I − η∇²R) of every inner step (docs/theory.md §3), never forming a d×d
    matrix. Parallel over tasks; bit-identical for any n_threads.

    Parameters
    ----------
    theta : array_like, shape (d,)
        The meta-parameters; converted to float64.
    tasks : Tasks or gomaml.distributed.ShardedTasks
        The tasks (features φ(x), labels, weights p_i).
    loss : {"squared", "logistic", "pseudo_huber"} or Loss, default "squared"
        The per-sample loss; "logistic" needs labels in {−1, +1}.
    inner_lr : float, default 0.1
        The inner step size η > 0.
    inner_steps : int, default 1
        Inner gradient steps T >= 1.
    first_order : bool, default False
        First-order MAML: J_i = I (the direction, not ∇L).
    n_threads : int or None, default None
        Threads; None: the CPUs this process may use (README, "Threads").

    Returns
    -------
    L : float
    grad : ndarray of float64, shape (d,)

    Raises
    ------
    TypeError, ValueError
        A bad argument, named (wrong type or value, theta of the wrong shape or not finite,
        labels outside {−1, +1} for the logistic loss).
    NumericalOverflowError
        L or the gradient overflowed although the inputs are finite (reduce inner_lr).

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> rng = np.random.default_rng(0)
    >>> tasks = gomaml.Tasks(rng.normal(size=(8, 5, 3)), rng.normal(size=(8, 5)))
    >>> L, g = gomaml.meta_loss_grad(np.zeros(3), tasks, inner_lr=0.1)
    >>> g.shape
    (3,)
    """
    problem = Problem(tasks, loss, inner_lr, inner_steps, n_threads, sharded_ok=True)
    theta = problem.theta(theta)
    first_order = _validate.boolean("first_order", first_order)
    mode = _kernels.MODE_FIRST_ORDER if first_order else _kernels.MODE_EXACT
    return evaluate(problem, theta, mode)


def meta_loss(theta, tasks, *, loss="squared", inner_lr=0.1, inner_steps=1, first_order=False,
              n_threads=None):
    """The meta-objective L(θ) = Σ_i p_i R(θ_i; Q_i) alone (no gradient pass).

    Parameters
    ----------
    theta, tasks, loss, inner_lr, inner_steps, n_threads
        As for `meta_loss_grad`.
    first_order : bool, default False
        Accepted for symmetry with `meta_loss_grad` and `fit`: first-order MAML changes the
        gradient, not L, so the value is the same either way.

    Returns
    -------
    float

    Raises
    ------
    TypeError, ValueError, NumericalOverflowError
        As for `meta_loss_grad`.

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> tasks = gomaml.Tasks(np.ones((2, 3, 2)), np.ones((2, 3)))
    >>> # one inner step from 0: θ_i = 0.1·2·(1, 1), φᵀθ_i = 0.4, L = (0.4 − 1)²
    >>> round(gomaml.meta_loss(np.zeros(2), tasks, inner_lr=0.1), 12)
    0.36
    """
    problem = Problem(tasks, loss, inner_lr, inner_steps, n_threads, sharded_ok=True)
    _validate.boolean("first_order", first_order)
    return evaluate(problem, problem.theta(theta), _kernels.MODE_VALUE)[0]


def adapt(theta, tasks, *, loss="squared", inner_lr=0.1, inner_steps=1, n_threads=None):
    """The adapted parameters θ_i: `inner_steps` gradient steps of size `inner_lr` on each
    task's support risk, from θ.

    Parameters
    ----------
    theta : array_like, shape (d,)
    tasks : Tasks
    loss, inner_lr, inner_steps, n_threads
        As for `meta_loss_grad`.

    Returns
    -------
    ndarray of float64, shape (n_tasks, d)

    Raises
    ------
    TypeError, ValueError
        A bad argument, named.
    NumericalOverflowError
        An adapted parameter overflowed (reduce inner_lr).

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> tasks = gomaml.Tasks(np.ones((2, 3, 2)), np.ones((2, 3)))
    >>> gomaml.adapt(np.zeros(2), tasks, inner_lr=0.1)      # 0 − 0.1 · 2 · (φθ − y) φ
    array([[0.2, 0.2],
           [0.2, 0.2]])
    """
    problem = Problem(tasks, loss, inner_lr, inner_steps, n_threads)
    return adapt_pair(problem, problem.theta(theta))[0]


def adapt_pair(problem, theta, theta2=None):
    """(θ_i, θ2_i or None) for validated arguments: both adapted parameters in one pass over
    the support rows (each task's rows are still in cache for the second)."""
    tasks = problem.tasks
    Xs, ys, s_ptr = tasks.packed()[:3]
    out = np.empty((tasks.n_tasks, tasks.d))
    out2 = None if theta2 is None else np.empty((tasks.n_tasks, tasks.d))
    scratch = aligned_scratch(problem.n_threads, tasks.d)
    _kernels.adapt_tasks(Xs, ys, s_ptr, theta, problem.loss.code, problem.loss.delta,
                         problem.inner_lr, problem.inner_steps, out, scratch,
                         problem.n_threads, theta2, out2)
    if not (np.isfinite(out).all() and (out2 is None or np.isfinite(out2).all())):
        raise problem.overflow("an adapted parameter")
    return out, out2


def task_losses(theta, tasks, *, loss="squared", inner_lr=0.1, inner_steps=1, n_threads=None):
    """Each task's query risk R(·; Q_i) before adaptation (at θ) and after it (at θ_i).

    Parameters
    ----------
    theta : array_like, shape (d,)
    tasks : Tasks
    loss, inner_lr, inner_steps, n_threads
        As for `meta_loss_grad`.

    Returns
    -------
    before, after : ndarray of float64, shape (n_tasks,)
        The weighted mean of `after` (weights p_i) is L(θ).

    Raises
    ------
    TypeError, ValueError, NumericalOverflowError
        As for `meta_loss_grad`.

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> tasks = gomaml.Tasks(np.ones((2, 3, 2)), np.ones((2, 3)))
    >>> before, after = gomaml.task_losses(np.zeros(2), tasks, inner_lr=0.1)
    >>> before.tolist(), np.round(after, 12).tolist()
    ([1.0, 1.0], [0.36, 0.36])
    """
    problem = Problem(tasks, loss, inner_lr, inner_steps, n_threads)
    theta = problem.theta(theta)
    before = np.empty(tasks.n_tasks)
    after = np.empty(tasks.n_tasks)
    scratch = aligned_scratch(problem.n_threads, 2 * tasks.d)
    _kernels.task_risks(*tasks.packed(), theta, problem.loss.code, problem.loss.delta,
                        problem.inner_lr, problem.inner_steps, before, after, scratch,
                        problem.n_threads)
    if not (np.isfinite(before).all() and np.isfinite(after).all()):
        raise problem.overflow("a task risk")
    return before, after


def predict(theta, X):
    """Predictions of the linear model, φ(x)ᵀθ.

    Parameters
    ----------
    theta : array_like, shape (d,)
    X : array_like, shape (m, d) or (d,)
        Features φ(x) (rows), or one feature vector.

    Returns
    -------
    ndarray of float64, shape (m,), or a float for one vector

    Raises
    ------
    TypeError, ValueError
        X not numeric, or of the wrong shape; theta not 1-D.

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> gomaml.predict(np.array([1.0, 2.0]), np.eye(2))
    array([1., 2.])
    """
    t = _validate.array("theta", theta, np.float64)
    if t.ndim != 1:
        raise ValueError(f"theta: expected a 1-D (d,) array, got shape {t.shape}")
    Xa = _validate.array("X", X)
    if Xa.dtype.kind not in "biuf":
        raise TypeError(f"X: expected a real numeric array, got dtype {Xa.dtype}")
    if Xa.ndim not in (1, 2) or Xa.shape[-1] != t.shape[0]:
        raise ValueError(f"X: expected shape (m, {t.shape[0]}) or ({t.shape[0]},), "
                         f"got {Xa.shape}")
    out = Xa.astype(np.float64, copy=False) @ t
    return float(out) if out.ndim == 0 else out
