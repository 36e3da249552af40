"""Gradient descent on the meta-objective to an ε-stationary point (theory.md §4).

Full batch: θ ← θ − α ∇L(θ), α chosen by backtracking on L unless outer_lr is given.
Mini-batch (batch_size=B): MAML's Algorithm 1, B tasks sampled without replacement and
weighted n·p_i/B, with a fixed step (given, or 1/λ_max from a curvature estimate of the full
objective); the stopping test uses the full ‖∇L‖, evaluated every ⌈n/B⌉ steps.
"""
import collections
import dataclasses
import json
import math
import os
import time

import numpy as np

from gomaml import _kernels
from gomaml._files import atomic_open, read_npz
from gomaml._json import json_safe
from gomaml import _validate
from gomaml._linalg import norm, single_threaded_blas
from gomaml._progress import Progress
from gomaml._core import NumericalOverflowError, Problem, evaluate
from gomaml.objective import meta_loss

_EXPLODE = 1e8        # L above this multiple of max(L(θ0), 1) counts as divergence


class DivergenceError(RuntimeError):
    """Training diverged: L became non-finite or exploded (above 10⁸ × max(L(θ₀), 1)).

    Attributes
    ----------
    result : FitResult
        The state at the last good θ (also written to `checkpoint` when one was given).

    The message names the step size to reduce (outer_lr, or inner_lr when the inner step
    itself overflows).

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> tasks = gomaml.Tasks(np.ones((2, 3, 2)), np.ones((2, 3)))
    >>> try:
    ...     gomaml.fit(tasks, outer_lr=1e6, max_iter=50)
    ... except gomaml.DivergenceError as exc:
    ...     print(str(exc)[:27], exc.result.converged)
    training diverged at step 1 False
    """

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


#: what must match for fit(..., theta0=result) to continue the same problem
IDENTITY = ("tasks_hash", "loss", "delta", "inner_lr", "inner_steps", "first_order",
            "batch_size", "seed", "outer_lr")


@dataclasses.dataclass
class FitResult:
    """What `fit` returns, and what its checkpoints hold.

    Attributes
    ----------
    theta : ndarray of float64, shape (d,)
        The last θ whose L and ‖∇L‖ were evaluated.
    loss : float
        L(theta).
    grad_norm : float
        ‖∇L(theta)‖ (of the first-order direction with first_order=True).
    n_iter : int
        Outer steps in total, over every resumed run.
    converged : bool
        True only when grad_norm <= tol held at `theta`.
    message : str
        Why training stopped: "converged: …", "max_iter reached …", "stopped by callback",
        "interrupted", "diverged", "checkpoint" (a snapshot), or a step underflow.
    history : dict of ndarray
        Per recorded step: "iter", "loss", "grad_norm", "step" (the outer step size), and
        "val_loss" when val_tasks was given.
    wall_time : float
        Seconds of training, over every resumed run.
    config : dict
        The problem's identity (tasks' content hash, loss, δ, inner_lr, inner_steps,
        first_order, batch_size, seed, outer_lr), tol, max_iter, sizes, and the step state
        that fit(..., theta0=result) resumes from.

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> tasks = gomaml.Tasks(np.ones((2, 3, 2)), np.ones((2, 3)))
    >>> res = gomaml.fit(tasks, tol=1e-10)
    >>> res.converged, res.grad_norm <= 1e-10, sorted(res.history)
    (True, True, ['grad_norm', 'iter', 'loss', 'step'])
    """
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
        """Write an .npz to exactly `path`, atomically (θ, the history arrays, the rest as
        JSON); FitResult.load reads it, and fit(..., theta0=path) resumes from it."""
        meta = json_safe({f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                          if f.name not in ("theta", "history")})   # the arrays go as arrays
        with atomic_open(path) as f:
            np.savez(f, theta=self.theta, meta=np.array(json.dumps(meta)),
                     **{f"history_{k}": np.asarray(v) for k, v in self.history.items()})

    @classmethod
    def load(cls, path):
        """A FitResult written by save(); ValueError naming the file when it is not one
        (corrupt, truncated, or with a key of the wrong type, shape or range)."""
        path = os.fspath(path)
        f = read_npz(path, "FitResult", ("theta", "meta"))
        try:
            meta = json.loads(str(f["meta"][()]))
            history = {k[len("history_"):]: v for k, v in sorted(f.items())
                       if k.startswith("history_")}
            return cls._checked(f["theta"], meta, history)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a FitResult file ({exc})") from None

    @classmethod
    def _checked(cls, theta, meta, history):
        num = lambda v: float(v) if isinstance(v, str) else v
        if theta.dtype != np.float64 or theta.ndim != 1 or not np.isfinite(theta).all():
            raise ValueError(f"theta must be a finite float64 vector, got {theta.dtype} "
                             f"{theta.shape}")
        if not isinstance(meta, dict):
            raise ValueError("meta is not a JSON object")
        n_iter, converged = meta["n_iter"], meta["converged"]
        if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
            raise ValueError(f"n_iter must be an int >= 0, got {n_iter!r}")
        if not isinstance(converged, bool):
            raise ValueError(f"converged must be true or false, got {converged!r}")
        loss, grad_norm, wall = num(meta["loss"]), num(meta["grad_norm"]), meta["wall_time"]
        for name, v in (("loss", loss), ("grad_norm", grad_norm), ("wall_time", wall)):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{name} must be a number, got {v!r}")
        config = meta.get("config", {})
        step = config.get("step") if isinstance(config, dict) else None
        if not isinstance(config, dict) or (step is not None and not (
                isinstance(step, (int, float)) and not isinstance(step, bool)
                and math.isfinite(step) and step > 0)):
            raise ValueError(f"config.step must be a number > 0, got {step!r}")
        lengths = {v.shape for v in history.values()}
        if len(lengths) > 1 or any(v.ndim != 1 for v in history.values()):
            raise ValueError(f"history columns must be 1-D of one length, got {lengths}")
        return cls(theta=theta, loss=float(loss), grad_norm=float(grad_norm), n_iter=n_iter,
                   converged=converged, message=str(meta["message"]), history=history,
                   wall_time=float(wall), config=config)


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
        gp = evaluate(problem, theta + h * v, mode, ids, weights)[1]
        gm = evaluate(problem, theta - h * v, mode, ids, weights)[1]
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


def check_fit_arguments(tasks, *, loss="squared", inner_lr=0.1, inner_steps=1,
                        first_order=False, outer_lr=None, max_iter=10000, tol=1e-6,
                        batch_size=None, seed=None, val_tasks=None, callback=None,
                        checkpoint=None, checkpoint_every=30.0, n_threads=None):
    """Validate fit's arguments (TypeError/ValueError naming the argument) without training:
    the CLI calls it before it writes any file. Returns (problem, checked values)."""
    problem = Problem(tasks, loss, inner_lr, inner_steps, n_threads, sharded_ok=True)
    checked = dict(
        first_order=_validate.boolean("first_order", first_order),
        outer_lr=_validate.positive("outer_lr", outer_lr, allow_none=True),
        max_iter=_validate.integer("max_iter", max_iter, low=0),
        tol=_validate.real("tol", tol, low=0),
        batch_size=_validate.integer("batch_size", batch_size, low=1, allow_none=True),
        seed=_validate.integer("seed", seed, low=0, allow_none=True),
        checkpoint_every=_validate.real("checkpoint_every", checkpoint_every, low=0),
    )
    if checked["batch_size"] is not None and problem.sharded:
        raise ValueError(f"batch_size: mini-batches need a gomaml.Tasks; "
                         f"{type(tasks).__name__} trains full-batch (batch_size=None)")
    if checked["batch_size"] is not None and checked["batch_size"] > tasks.n_tasks:
        raise ValueError(f"batch_size must be <= n_tasks = {tasks.n_tasks}, "
                         f"got {checked['batch_size']}")
    if val_tasks is not None:
        Problem(val_tasks, loss, inner_lr, inner_steps, n_threads)
        if val_tasks.d != tasks.d:
            raise ValueError(f"val_tasks: d = {val_tasks.d} differs from tasks' d = {tasks.d}")
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable or None")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a path or None, got {type(checkpoint).__name__}")
    return problem, checked


def problem_identity(problem, checked):
    """The settings that define the problem being trained (IDENTITY): a resumed fit must
    match them all."""
    return dict(tasks_hash=problem.tasks.content_hash(), loss=problem.loss.name,
                delta=problem.loss.delta, inner_lr=problem.inner_lr,
                inner_steps=problem.inner_steps, first_order=checked["first_order"],
                batch_size=checked["batch_size"], seed=checked["seed"],
                outer_lr=checked["outer_lr"])


def identity_mismatch(saved, identity):
    """None when the saved config continues the problem `identity`, else what differs."""
    missing = [k for k in IDENTITY if k not in saved]
    if missing:
        return (f"it records no problem identity ({', '.join(missing)} missing): start "
                f"afresh from its θ with theta0=result.theta")
    diffs = [f"{k}: saved {saved[k]!r}, now {identity[k]!r}" for k in IDENTITY
             if saved[k] != identity[k]]
    if diffs and diffs[0].startswith("tasks_hash"):
        diffs[0] = "the tasks differ (content hash " \
                   f"{saved['tasks_hash'][:12]}… saved, {identity['tasks_hash'][:12]}… now)"
    return "; ".join(diffs) or None


@dataclasses.dataclass
class _State:
    """Everything the next step depends on, at the last step whose L and ‖∇L‖ were recorded:
    what an interrupt, a divergence or a checkpoint returns, and what a resume restores, so a
    resumed run takes exactly the steps an uninterrupted one would."""
    theta: np.ndarray
    L: float
    gn: float
    it: int
    step: float
    recent: list
    rng: dict


@single_threaded_blas
def fit(tasks, *, loss="squared", inner_lr=0.1, inner_steps=1, first_order=False,
        outer_lr=None, max_iter=10000, tol=1e-6, theta0=None, batch_size=None, seed=None,
        val_tasks=None, callback=None, progress=False, checkpoint=None,
        checkpoint_every=30.0, n_threads=None):
    """Train θ by gradient descent on the meta-objective L to an ε-stationary point.

    Full batch (default): backtracking gradient descent with Barzilai–Borwein step lengths
    and a non-monotone Armijo safeguard, or a fixed step `outer_lr`. With `batch_size`:
    MAML's Algorithm 1, batches of tasks sampled without replacement (weights n·p_i/B), a
    fixed step (outer_lr, or 1/λ_max from curvature estimates), and the stopping test on the
    full ‖∇L‖ every ⌈n/B⌉ steps. Training stops when ‖∇L(θ)‖ <= tol, after max_iter steps in
    total, when `callback` returns True, or on Ctrl-C.

    Parameters
    ----------
    tasks : Tasks or gomaml.distributed.ShardedTasks
        ShardedTasks train full-batch only.
    loss, inner_lr, inner_steps, first_order, n_threads
        As for `meta_loss_grad`. With first_order=True the trainer follows the first-order
        direction and the stopping test refers to it (the message says so).
    outer_lr : float, optional
        A fixed outer step size; None: automatic (see above).
    max_iter : int, default 10000
        Outer steps in total, counting every run that `theta0` resumes.
    tol : float, default 1e-6
        Stop when ‖∇L‖ <= tol (0: never; run to max_iter).
    theta0 : array_like (d,), FitResult or path, optional
        The starting θ (default 0), or a FitResult (or the path of a saved one) to resume:
        θ, the step state and the history carry on, and a different problem (tasks, loss,
        inner_lr, inner_steps, first_order, batch_size, seed, outer_lr) is refused.
    batch_size : int, optional
        Tasks per step (Algorithm 1); None: full batch.
    seed : int, optional
        The batch sampler's seed.
    val_tasks : Tasks, optional
        Held-out tasks whose L is recorded in history["val_loss"] (not used for stopping).
    callback : callable, optional
        callback(it, theta, loss, grad_norm) after every recorded step (theta a copy); a
        truthy return stops training (message "stopped by callback").
    progress : bool, default False
        A progress line on stderr.
    checkpoint : path, optional
        Receives an atomic snapshot (a FitResult) at most every checkpoint_every seconds
        (0: only at the end) and when training ends, also by Ctrl-C or divergence; resuming
        from it reaches the θ an uninterrupted run reaches.
    checkpoint_every : float, default 30.0

    Returns
    -------
    FitResult
        converged is True only when ‖∇L‖ <= tol held at the returned θ. Ctrl-C returns the
        state at the last evaluated θ (message "interrupted").

    Raises
    ------
    TypeError, ValueError
        A bad argument, named (checked before any training).
    DivergenceError
        L became non-finite or exploded; .result holds the last good state.

    Examples
    --------
    >>> import numpy as np, gomaml
    >>> rng = np.random.default_rng(0)
    >>> tasks = gomaml.Tasks(rng.normal(size=(20, 5, 4)), rng.normal(size=(20, 5)))
    >>> res = gomaml.fit(tasks, inner_lr=0.1, tol=1e-8)
    >>> res.converged, res.message.startswith("converged")
    (True, True)
    >>> more = gomaml.fit(tasks, inner_lr=0.1, tol=1e-12, theta0=res)    # resume
    >>> more.n_iter >= res.n_iter
    True
    """
    problem, checked = check_fit_arguments(
        tasks, loss=loss, inner_lr=inner_lr, inner_steps=inner_steps,
        first_order=first_order, outer_lr=outer_lr, max_iter=max_iter, tol=tol,
        batch_size=batch_size, seed=seed, val_tasks=val_tasks, callback=callback,
        checkpoint=checkpoint, checkpoint_every=checkpoint_every, n_threads=n_threads)
    first_order, outer_lr, max_iter, tol, batch_size, seed, checkpoint_every = (
        checked[k] for k in ("first_order", "outer_lr", "max_iter", "tol", "batch_size",
                             "seed", "checkpoint_every"))
    identity = problem_identity(problem, checked)

    previous = None
    if isinstance(theta0, (str, bytes)) or hasattr(theta0, "__fspath__"):
        theta0 = FitResult.load(theta0)
    if isinstance(theta0, FitResult):
        previous = theta0
        why = identity_mismatch(previous.config, identity)
        if why:
            raise ValueError(f"theta0: the saved run is a different problem, not resumed: {why}")
        theta = problem.theta(previous.theta, "theta0")
    elif theta0 is None:
        theta = np.zeros(tasks.d)
    else:
        theta = problem.theta(theta0, "theta0").copy()

    mode = _kernels.MODE_FIRST_ORDER if first_order else _kernels.MODE_EXACT
    direction = "first-order MAML direction" if first_order else "exact meta-gradient"
    settings = dict(identity, tol=tol, max_iter=max_iter, n_tasks=tasks.n_tasks, d=tasks.d)
    history = _History(previous.history if previous else None, val_tasks is not None)
    rng = np.random.default_rng(seed)
    n = tasks.n_tasks
    check_every = 1 if batch_size is None else max(1, math.ceil(n / batch_size))
    t_start = time.perf_counter()
    wall0 = previous.wall_time if previous else 0.0

    def full(th):
        try:
            return evaluate(problem, th, mode)
        except NumericalOverflowError:
            return math.inf, None

    L, g = full(theta)
    if g is None:
        raise DivergenceError(
            "the meta-loss is not finite at the starting θ: reduce inner_lr "
            f"(now {problem.inner_lr:g}) or the scale of θ0, the features or the labels",
            FitResult(theta=theta.copy(), loss=math.nan, grad_norm=math.nan,
                      n_iter=previous.n_iter if previous else 0, converged=False,
                      message="diverged", history=history.arrays(), wall_time=wall0,
                      config=settings))
    gn = norm(g)
    saved = previous.config.get("state") if previous else None
    if saved:
        it0, step, L_ref = previous.n_iter, float(previous.config["step"]), saved["L_ref"]
        recent = collections.deque(saved["recent"], maxlen=10)
        if saved.get("rng"):
            rng.bit_generator.state = saved["rng"]
    else:
        it0 = previous.n_iter if previous else 0
        L_ref = max(abs(L), 1.0)
        recent = collections.deque([L], maxlen=10)   # the non-monotone reference
        step = outer_lr or (previous.config.get("step") if previous else None)
        if step is None:
            step = (_minibatch_step(problem, theta, mode, batch_size,
                                    np.random.default_rng(seed))
                    if batch_size else 1.0 / max(gn, 1.0))
    step_name = "outer_lr" if outer_lr else "the automatic step (pass a smaller outer_lr)"

    def record(it, L, gn):
        vl = meta_loss(theta, val_tasks, loss=problem.loss, inner_lr=problem.inner_lr,
                       inner_steps=problem.inner_steps, n_threads=problem.n_threads) \
            if val_tasks is not None else math.nan
        history.add(iter=it, loss=L, grad_norm=gn, step=step, val_loss=vl)

    def snapshot(it):
        return _State(theta.copy(), L, gn, it, step, list(recent),
                      rng.bit_generator.state if batch_size else None)

    def result(st, converged, message):
        state = dict(L_ref=L_ref, recent=st.recent, rng=st.rng)
        return FitResult(theta=st.theta.copy(), loss=st.L, grad_norm=st.gn, n_iter=st.it,
                         converged=converged, message=message,
                         history=history.arrays(), wall_time=wall0 + time.perf_counter()
                         - t_start, config=dict(settings, step=st.step, state=state))

    if not previous:
        record(it0, L, gn)
    good = snapshot(it0)
    it = it0
    bar = Progress(max(max_iter - it0, 0), "fit", enabled=progress)
    last_write = time.perf_counter()
    message = f"max_iter reached ({max_iter} steps in total) without ‖{direction}‖ <= tol"
    converged = gn <= tol
    final = None
    try:
        while not converged and it < max_iter:
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
                    _, gb = evaluate(problem, theta, mode, ids, w)
                except NumericalOverflowError:
                    gb = None
                if gb is None:
                    L, g = math.inf, None
                else:
                    theta = theta - step * gb
                    if (it + 1) % check_every == 0:
                        L, g = full(theta)
            it += 1
            if g is None or not math.isfinite(L) or L > _EXPLODE * L_ref:
                final = result(good, False, "diverged")
                raise DivergenceError(
                    f"training diverged at step {it} (L = {L:.3g}): reduce {step_name} "
                    f"(now {step:.3g}) or inner_lr (now {problem.inner_lr:g})", final)
            if batch_size is None or it % check_every == 0:
                gn = norm(g)
                record(it, L, gn)
                good = snapshot(it)
                converged = gn <= tol
                bar.update(it - it0, f"L={L:.4g} |grad|={gn:.3g}")
                now = time.perf_counter()
                if checkpoint is not None and checkpoint_every and \
                        now - last_write >= checkpoint_every:
                    result(good, False, "checkpoint").save(checkpoint)
                    last_write = now
                if callback is not None and callback(it, theta.copy(), L, gn):
                    message = "stopped by callback"
                    break
        if it != good.it and message.startswith("max_iter"):
            # mini-batch steps since the last full check: evaluate where training stopped
            L, g = full(theta)
            if g is not None:
                gn = norm(g)
                record(it, L, gn)
                good = snapshot(it)
                converged = gn <= tol
        if converged:
            message = f"converged: ‖{direction}‖ = {gn:.3g} <= tol = {tol:g}"
    except StopIteration:
        pass
    except KeyboardInterrupt:
        message = "interrupted"
        converged = False
    finally:
        bar.close()
        if final is not None and checkpoint is not None:      # diverged: keep the good state
            final.save(checkpoint)
    if first_order:
        message += " (first-order MAML: the stopping test uses the first-order direction, " \
                   "not the exact ∇L)"
    # the last recorded state: after an interrupt, the last θ whose L and ‖∇L‖ were evaluated
    final = result(good, converged, message)
    if checkpoint is not None:
        final.save(checkpoint)
    return final
