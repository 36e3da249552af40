"""Gradient descent on the meta-objective to an ε-stationary point (SPEC §4).

Full batch: θ ← θ − α ∇L(θ), α chosen by backtracking on L unless outer_lr is given.
Mini-batch (batch_size=B): MAML's Algorithm 1, B tasks sampled without replacement and
weighted n·p_i/B, with a fixed step (given, or 1/λ_max from a curvature estimate of the full
objective); the stopping test uses the full ‖∇L‖, evaluated every ⌈n/B⌉ steps.
"""
import collections
import dataclasses
import json
import math
import numbers
import time

import numpy as np

from gomaml import _kernels
from gomaml._json import json_safe
from gomaml._linalg import norm, single_threaded_blas
from gomaml._progress import Progress
from gomaml.objective import NumericalOverflowError, Problem, _evaluate, meta_loss

_EXPLODE = 1e8        # L above this multiple of max(L(θ0), 1) counts as divergence


class DivergenceError(RuntimeError):
    """Training diverged (non-finite or exploding L). .result holds the FitResult at the last
    good θ; the message names the step size to reduce."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


@dataclasses.dataclass
class FitResult:
    theta: np.ndarray
    loss: float
    grad_norm: float
    n_iter: int
    converged: bool
    message: str
    history: dict
    wall_time: float
    config: dict = dataclasses.field(default_factory=dict)

    def to_dict(self):
        """JSON-safe dict (arrays as lists, inf/NaN as strings)."""
        return json_safe({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def save(self, path):
        """Write an .npz (θ, history arrays, and the rest as JSON); FitResult.load reads it,
        and fit(..., theta0=result) resumes training from it."""
        meta = json_safe({f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                          if f.name not in ("theta", "history")})   # the arrays go as arrays
        np.savez(path, theta=self.theta, meta=np.array(json.dumps(meta)),
                 **{f"history_{k}": np.asarray(v) for k, v in self.history.items()})

    @classmethod
    def load(cls, path):
        with np.load(path, allow_pickle=False) as f:
            if "theta" not in f.files or "meta" not in f.files:
                raise ValueError(f"path: {path} is not a saved FitResult")
            meta = json.loads(str(f["meta"]))
            history = {k[len("history_"):]: f[k].copy() for k in f.files
                       if k.startswith("history_")}
            theta = f["theta"].copy()
        num = lambda v: float(v) if isinstance(v, str) else v
        return cls(theta=theta, loss=num(meta["loss"]), grad_norm=num(meta["grad_norm"]),
                   n_iter=meta["n_iter"], converged=meta["converged"], message=meta["message"],
                   history=history, wall_time=meta["wall_time"], config=meta.get("config", {}))


class _History:
    def __init__(self, previous=None, with_val=False):
        self.data = {"iter": [], "loss": [], "grad_norm": [], "step": []}
        if with_val:
            self.data["val_loss"] = []
        if previous:
            n = len(np.asarray(previous["loss"]))
            for k in self.data:       # a column the earlier run did not record: NaN
                self.data[k] = (list(np.asarray(previous[k]).tolist()) if k in previous
                                else [math.nan] * n)

    def add(self, **values):
        for k in self.data:
            self.data[k].append(values.get(k, math.nan))

    def arrays(self):
        return {k: np.asarray(v, dtype=np.int64 if k == "iter" else np.float64)
                for k, v in self.data.items()}


def _check_positive(name, value, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0{' or None' if allow_none else ''}, "
                         f"got {value!r}")
    return float(value)


def _check_int(name, value, low, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _accept(L, gn, Lt, gt, step, first_order):
    """Backtracking test. Armijo's decrease where L can resolve it; near a stationary point,
    where step·‖g‖² is below the rounding of L, a strictly smaller gradient norm with L no
    higher than rounding. First-order MAML's direction is not ∇L and L need not decrease near
    its fixed point: there the direction's norm must decrease."""
    if gt is None or not math.isfinite(Lt):
        return False
    gnt = norm(gt)
    if first_order:
        return Lt < L or gnt < gn
    if Lt <= L - 1e-4 * step * gn * gn:
        return True
    return gnt < gn and Lt <= L + 64 * np.finfo(float).eps * abs(L)


def _largest_curvature(problem, theta, mode, ids=None, weights=None, seed=0):
    """λ_max of the Hessian at θ of the (sub-)objective Σ_m w_m L_{i_m}: power iteration on
    central differences of its gradient."""
    v = np.random.default_rng(seed).normal(size=theta.shape)
    v /= norm(v)
    h = 1e-4 * max(1.0, norm(theta))
    lam = 0.0
    for _ in range(30):
        gp = _evaluate(problem, theta + h * v, mode, ids, weights)[1]
        gm = _evaluate(problem, theta - h * v, mode, ids, weights)[1]
        Hv = (gp - gm) / (2 * h)
        new = norm(Hv)
        if new == 0:
            return lam
        v = Hv / new
        done = abs(new - lam) <= 1e-3 * new
        lam = new
        if done:
            break
    return lam


def _minibatch_step(problem, theta, mode, batch_size, rng, n_samples=8):
    """Fixed step of Algorithm 1: 1/λ, λ the largest curvature seen over the full objective
    and a few sampled batches (weights n·p_i/B): a batch's Hessian can exceed the full one's
    by up to n/B, and 2/λ_batch is where a step turns unstable."""
    tasks = problem.tasks
    n = tasks.n_tasks
    lam = _largest_curvature(problem, theta, mode)
    for k in range(n_samples):
        ids = np.sort(rng.choice(n, size=batch_size, replace=False)).astype(np.int64)
        lam = max(lam, _largest_curvature(problem, theta, mode, ids,
                                          tasks.weights[ids] * (n / batch_size), seed=k))
    return 1.0 / lam if lam > 0 else 1.0


@single_threaded_blas
def fit(tasks, *, loss="squared", inner_lr=0.1, inner_steps=1, first_order=False,
        outer_lr=None, max_iter=10000, tol=1e-6, theta0=None, batch_size=None, seed=None,
        val_tasks=None, callback=None, progress=False, n_threads=None):
    """Train θ by gradient descent on L until ‖∇L(θ)‖₂ ≤ tol or max_iter steps.

    theta0: starting θ (default 0), or a FitResult (or the path of a saved one) to resume
    from: its θ, step size and history carry on. With first_order=True the trainer follows
    the first-order direction and the stopping test refers to it (the message says so).
    Returns a FitResult; raises DivergenceError on a non-finite or exploding L.
    """
    problem = Problem(tasks, loss, inner_lr, inner_steps, n_threads)
    outer_lr = _check_positive("outer_lr", outer_lr)
    max_iter = _check_int("max_iter", max_iter, 0, allow_none=False)
    tol = _check_positive("tol", tol, allow_none=False) if tol != 0 else 0.0
    batch_size = _check_int("batch_size", batch_size, 1)
    if batch_size is not None and batch_size > tasks.n_tasks:
        raise ValueError(f"batch_size must be <= n_tasks = {tasks.n_tasks}, got {batch_size}")
    if val_tasks is not None:
        Problem(val_tasks, loss, inner_lr, inner_steps, n_threads)
        if val_tasks.d != tasks.d:
            raise ValueError(f"val_tasks: d = {val_tasks.d} differs from tasks' d = {tasks.d}")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable or None")

    previous = None
    if isinstance(theta0, (str, bytes)) or hasattr(theta0, "__fspath__"):
        theta0 = FitResult.load(theta0)
    if isinstance(theta0, FitResult):
        previous = theta0
        theta = problem.theta(previous.theta, "theta0")
    elif theta0 is None:
        theta = np.zeros(tasks.d)
    else:
        theta = problem.theta(theta0, "theta0").copy()

    mode = _kernels.MODE_FIRST_ORDER if first_order else _kernels.MODE_EXACT
    direction = "first-order MAML direction" if first_order else "exact meta-gradient"
    config = dict(loss=problem.loss.name, delta=problem.loss.delta, inner_lr=problem.inner_lr,
                  inner_steps=problem.inner_steps, first_order=bool(first_order),
                  outer_lr=outer_lr, batch_size=batch_size, seed=seed, tol=tol,
                  max_iter=max_iter, n_tasks=tasks.n_tasks, d=tasks.d)
    history = _History(previous.history if previous else None, val_tasks is not None)
    it0 = previous.n_iter if previous else 0
    step = outer_lr or (previous.config.get("step") if previous else None)
    rng = np.random.default_rng(seed)
    n = tasks.n_tasks
    check_every = 1 if batch_size is None else max(1, math.ceil(n / batch_size))
    bar = Progress(max_iter, "fit", enabled=progress)
    t_start = time.perf_counter()
    wall0 = previous.wall_time if previous else 0.0

    def result(th, L, gn, it, converged, message):
        cfg = dict(config, step=step)
        return FitResult(theta=th.copy(), loss=L, grad_norm=gn, n_iter=it, converged=converged,
                         message=message, history=history.arrays(),
                         wall_time=wall0 + time.perf_counter() - t_start, config=cfg)

    def full(th):
        try:
            return _evaluate(problem, th, mode)
        except NumericalOverflowError:
            return math.inf, None

    L, g = full(theta)
    if g is None:
        raise DivergenceError("the meta-loss is not finite at the starting θ: reduce inner_lr "
                              f"(now {problem.inner_lr:g})", result(theta, math.nan, math.nan,
                                                                    it0, False, "diverged"))
    gn = norm(g)
    L_ref = max(abs(L), 1.0)
    if step is None:
        step = (_minibatch_step(problem, theta, mode, batch_size, np.random.default_rng(seed))
                if batch_size else 1.0 / max(gn, 1.0))
    step_name = "outer_lr" if outer_lr else "the automatic step (pass a smaller outer_lr)"

    def record(it, L, gn):
        vl = meta_loss(theta, val_tasks, loss=problem.loss, inner_lr=problem.inner_lr,
                       inner_steps=problem.inner_steps, n_threads=problem.n_threads) \
            if val_tasks is not None else math.nan
        history.add(iter=it, loss=L, grad_norm=gn, step=step, val_loss=vl)

    good = (theta.copy(), L, gn, it0)        # last recorded θ: what divergence returns
    recent = collections.deque([L], maxlen=10)   # the non-monotone reference
    if not previous:
        record(it0, L, gn)
    it = it0
    message = f"max_iter reached ({max_iter} steps) without ‖{direction}‖ <= tol"
    converged = gn <= tol
    try:
        while not converged and it < it0 + max_iter:
            if batch_size is None:
                # full batch, unless the step is fixed: Barzilai–Borwein step lengths with a
                # non-monotone Armijo backtracking safeguard (Raydan 1997)
                while True:
                    trial = theta - step * g
                    Lt, gt = full(trial)
                    if outer_lr is not None or _accept(max(recent), gn, Lt, gt, step,
                                                       first_order):
                        break
                    step *= 0.5
                    if step < 1e-300:
                        message = f"no decrease along the {direction}: step underflow"
                        raise StopIteration
                if outer_lr is None:
                    s_, y_ = trial - theta, gt - g
                    sy = float(s_ @ y_)
                    step = min(max(float(s_ @ s_) / sy, 1e-12), 1e12) if sy > 0 else 2 * step
                theta, L, g = trial, Lt, gt
                recent.append(L)
            else:
                ids = np.sort(rng.choice(n, size=batch_size, replace=False)).astype(np.int64)
                w = tasks.weights[ids] * (n / batch_size)
                try:
                    _, gb = _evaluate(problem, theta, mode, ids, w)
                except NumericalOverflowError:
                    gb = None
                if gb is None:
                    L, g = math.inf, None
                else:
                    theta = theta - step * gb
                    if (it + 1 - it0) % check_every == 0:
                        L, g = full(theta)
            it += 1
            if g is None or not math.isfinite(L) or L > _EXPLODE * L_ref:
                raise DivergenceError(
                    f"training diverged at step {it} (L = {L:.3g}): reduce {step_name} "
                    f"(now {step:.3g}) or inner_lr (now {problem.inner_lr:g})",
                    result(good[0], good[1], good[2], good[3], False, "diverged"))
            if batch_size is None or (it - it0) % check_every == 0:
                gn = norm(g)
                record(it, L, gn)
                good = (theta.copy(), L, gn, it)
                converged = gn <= tol
                bar.update(it - it0, f"L={L:.4g} |grad|={gn:.3g}")
                if callback is not None and callback(it, theta.copy(), L, gn):
                    message = "stopped by callback"
                    break
        if converged:
            message = f"converged: ‖{direction}‖ = {gn:.3g} <= tol = {tol:g}"
    except StopIteration:
        pass
    except KeyboardInterrupt:
        message = "interrupted"
        converged = False
        theta, L, gn, it = good      # the last θ whose L and ‖∇L‖ were evaluated
    finally:
        bar.close()
    if first_order:
        message += " (first-order MAML: the stopping test uses the first-order direction, " \
                   "not the exact ∇L)"
    return result(theta, L, gn, it, converged, message)
