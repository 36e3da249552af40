"""The large-d study: how the optimality gap and Theorem 1's bound behave as the feature
dimension d grows (the main job, `gomaml study`; what it shows is explained in docs/theory.md).

For each seed and d: draw the training tasks, the held-out tasks and the feature map from
three independent streams of the seed, train θ by gradient descent to tol or max_iter (a time
budget is only a safety net), take the ε actually reached (Theorem 1 holds for whatever ε that
is), and evaluate Theorem 1 against the exact global minimiser (squared loss), with the
representation floor, and the meta-test loss on held-out tasks. Each finished row is appended
to rows.jsonl (flushed and fsynced) and the CSV is rewritten from it; rows are keyed by the
configuration's hash with the seed and d, so an interrupted study resumes where it stopped.
"""
import copy
import csv
import hashlib
import json
import math
import os
import platform
import sys
import time

import numpy as np

from gomaml import _validate
from gomaml._buildinfo import build_info
from gomaml._files import atomic_open, atomic_write
from gomaml._json import json_safe
from gomaml._progress import Progress
from gomaml._version import __version__
from gomaml.bounds import theorem1_report
from gomaml.features import FEATURE_MAPS, make_feature_map
from gomaml.kernel_tasks import KernelTasks
from gomaml.minimizer import global_minimizer
from gomaml._core import Problem
from gomaml.objective import task_losses
from gomaml.losses import LOSSES
from gomaml.synthetic import FAMILIES
from gomaml.train import fit

DEFAULT_OUT = "gomaml-out/study"

#: The documented default study (docs/theory.md, "The study"): noisy linear-regression tasks
#: in 20 dimensions, random ReLU features, 20 tasks of 5 support + 5 query points (N_query =
#: 100 rows of the stacked system, N_rows = 200 training points), one inner step, squared loss,
#: d from 16 to 65536 across both thresholds, three seeds.
DEFAULT_CONFIG = {
    "family": "linear",            # sinusoid | linear | logistic
    "n_tasks": 20,                 # meta-training tasks
    "n_test_tasks": 40,            # held-out tasks for the meta-test loss
    "k_support": 5,
    "k_query": 5,
    "noise": 0.1,                  # label noise (sinusoid, linear) / logit noise (logistic)
    "input_dim": 20,               # raw input dimension of the linear and logistic families
    "features": "relu",            # identity | rff | relu | legendre
    "bandwidth": 1.0,              # RBF bandwidth of the random Fourier features
    "bias": False,                 # append a constant feature
    "d": [16, 32, 64, 100, 128, 200, 256, 512, 1024, 4096, 16384, 65536, 1_000_000,
          math.inf],
    "loss": "squared",             # squared | logistic | pseudo_huber
    "inner_lr": 0.3,
    "inner_steps": 1,
    "seeds": [0, 1, 2],            # each: training data, held-out data, features (3 streams)
    "max_iter": 1000,              # per row: the limit that binds (deterministic)
    "time_budget": 120.0,          # seconds of training per row: a safety net only; a row
                                   # stopped by it depends on the machine (see stopped_by)
    "tol": 1e-8,                   # stop early at ‖∇L‖ <= tol
    "path_d": [32, 100, 256, 1024],  # d whose training path is bounded (first seed only)
    "backend": "auto",             # auto (kernel form from d >= N_rows) | features | kernel
}
#: the study's backend= choices: auto (kernel form from d >= N_rows), features, kernel
BACKENDS = ("auto", "features", "kernel")
#: settings that do not change a row's numbers (not in its key)
_NOT_IN_ROW = ("d", "seeds", "path_d")
#: settings of earlier versions, and what replaced them
_RETIRED = {"data_seed": "seeds", "feature_seed": "seeds"}

TABLE = [  # (column, header, format): medians over the seeds
    ("d", "d", "{:>7}"), ("minimizer_rank", "rank", "{:>5.0f}"), ("n_iter", "iters", "{:>6.0f}"),
    ("eps", "eps", "{:>8.1e}"), ("L_comparator", "L(θ*)", "{:>8.1e}"),
    ("gap", "gap", "{:>8.1e}"), ("bound", "bound", "{:>8.1e}"),
    ("bound_over_gap", "bnd/gap", "{:>8.3g}"), ("bound_R0", "bnd(R0)", "{:>8.1e}"),
    ("repr_floor", "floor", "{:>8.1e}"), ("R0", "R0", "{:>8.1e}"), ("w_norm", "|w|", "{:>8.1e}"),
    ("test_before_adaptation", "test0", "{:>8.3g}"), ("test_loss", "test", "{:>8.3g}"),
    ("seconds", "time s", "{:>6.1f}"),
]
TIMING_FIELDS = ("seconds", "train_seconds", "bound_seconds", "path_seconds")


class ConfigError(ValueError):
    """A bad study configuration (file or flags)."""


def validate_config(cfg):
    """A complete, checked copy of cfg (defaults filled in); ConfigError names the key."""
    out = copy.deepcopy(DEFAULT_CONFIG)
    for key, value in cfg.items():
        if key in _RETIRED:
            raise ConfigError(f"study setting {key!r} was replaced by {_RETIRED[key]!r}: a seed "
                              f"s gives the training data, the held-out data and the features "
                              f"from three independent streams of s")
        if key not in DEFAULT_CONFIG:
            raise ConfigError(f"unknown study setting {key!r}; known: "
                              f"{', '.join(sorted(DEFAULT_CONFIG))}")
        want = DEFAULT_CONFIG[key]
        if isinstance(want, bool):
            ok = isinstance(value, bool)
        elif isinstance(want, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(want, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif isinstance(want, list):
            if key == "d" and isinstance(value, list):      # d = inf: the kernel itself
                value = [math.inf if v in ("inf", math.inf) else v for v in value]
            ok = isinstance(value, list) and (bool(value) or key == "path_d") and all(
                (isinstance(v, int) and not isinstance(v, bool))
                or (key == "d" and v == math.inf) for v in value)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise ConfigError(f"study setting {key!r} must be like {want!r}, got {value!r}")
        out[key] = value
    choices = {"family": FAMILIES, "features": FEATURE_MAPS, "loss": LOSSES,
               "backend": BACKENDS}
    for key, allowed in choices.items():
        if out[key] not in allowed:
            raise ConfigError(f"study setting {key!r} must be one of {', '.join(allowed)}, "
                              f"got {out[key]!r}")
    # ranges by the library's own checks (gomaml._validate); a config error is a usage error
    checks = [(k, _validate.integer, dict(low=1)) for k in (
        "n_tasks", "n_test_tasks", "k_support", "k_query", "input_dim", "max_iter",
        "inner_steps")]
    checks += [(k, _validate.positive, {}) for k in ("inner_lr", "time_budget", "tol",
                                                     "bandwidth")]
    checks += [("noise", _validate.real, dict(low=0))]
    for key, check, kw in checks:
        try:
            check(f"study setting {key!r}", out[key], **kw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
    if any(d < 1 for d in out["d"]) or len(set(out["d"])) != len(out["d"]):
        raise ConfigError(f"study setting 'd' must be distinct ints >= 1, got {out['d']}")
    if any(v < 0 for v in out["seeds"]) or len(set(out["seeds"])) != len(out["seeds"]):
        raise ConfigError(f"study setting 'seeds' must be distinct ints >= 0, "
                          f"got {out['seeds']}")
    if any(v < 1 for v in out["path_d"]):
        raise ConfigError(f"study setting 'path_d' must be ints >= 1, got {out['path_d']}")
    if (out["family"] == "logistic") != (out["loss"] == "logistic"):
        raise ConfigError("the logistic loss goes with the logistic family (labels in {-1, +1})")
    return out


def load_toml(path):
    """The study settings of a TOML file (top level or a [study] table)."""
    try:
        import tomllib
    except ModuleNotFoundError:          # Python < 3.11
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return data.get("study", data)


def _d_label(d):
    """d as a row stores it: an int, or "inf" (JSON has no infinity)."""
    return "inf" if math.isinf(d) else int(d)


def d_value(d):
    """d of a stored row or config as a number (math.inf for "inf")."""
    return math.inf if d in ("inf", math.inf) else d


def row_config(cfg, seed, d):
    """The configuration of one row: everything that determines its numbers."""
    row = {k: v for k, v in cfg.items() if k not in _NOT_IN_ROW}
    row.update(seed=int(seed), d=_d_label(d))
    return row


def row_key(row_cfg):
    return hashlib.sha256(json.dumps(row_cfg, sort_keys=True).encode()).hexdigest()[:16]


def seed_streams(seed):
    """(training data, held-out data, features) seeds of one study seed: three independent
    streams (NumPy's SeedSequence(seed).spawn(3)), so no seed's held-out tasks are another
    seed's training tasks."""
    return tuple(int(c.generate_state(1)[0]) for c in np.random.SeedSequence(seed).spawn(3))


def provenance():
    """Where a row was computed: versions, build, platform and host (a host field)."""
    return {"gomaml": __version__, "build": build_info(), "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "host": platform.node()}


def make_data(cfg, n, seed):
    """n tasks of the configured family (raw inputs), from the given seed."""
    gen = FAMILIES[cfg["family"]]
    if cfg["family"] == "sinusoid":
        return gen(n, cfg["k_support"], cfg["k_query"], noise=cfg["noise"], seed=seed)
    return gen(n, cfg["k_support"], cfg["k_query"], cfg["input_dim"], noise=cfg["noise"],
               seed=seed)


def _numerical_rank(M):
    """Rank of M at the cutoff max(shape)·eps·σ_max (as NumPy's matrix_rank)."""
    s = np.linalg.svd(M, compute_uv=False)
    return int(np.sum(s > max(M.shape) * np.finfo(float).eps * s[0])) if s.size else 0


def _path_iterations(max_iter):
    """1, 2, 4, 8, … up to max_iter: where the training path is bounded."""
    out, k = [], 1
    while k <= max_iter:
        out.append(k)
        k *= 2
    return out


def run_row(cfg, seed, d, status=None, with_path=False):
    """Train and bound at one (seed, d). Returns (row, path): the row dict (numbers only;
    the caller adds config and provenance) and, with_path, the bound along training at
    iterations 1, 2, 4, … (else None)."""
    t_start = time.perf_counter()
    data_seed, test_seed, feature_seed = seed_streams(seed)
    train_raw = make_data(cfg, cfg["n_tasks"], data_seed)
    test_raw = make_data(cfg, cfg["n_test_tasks"], test_seed)
    p = train_raw.Xs.shape[2]
    kw = dict(loss=cfg["loss"], inner_lr=cfg["inner_lr"], inner_steps=cfg["inner_steps"])
    fmap = make_feature_map(cfg["features"], 1 if math.isinf(d) else d,
                            bandwidth=cfg["bandwidth"], bias=cfg["bias"], seed=feature_seed,
                            input_dim=p)
    fmap.fit(p)
    if not math.isinf(d) and fmap.n_features != d:
        raise ConfigError(f"features {cfg['features']!r} give d = {fmap.n_features} on this "
                          f"family's inputs, not the d = {d} asked for")
    n_rows = cfg["n_tasks"] * (cfg["k_support"] + cfg["k_query"])
    if cfg["backend"] == "features" and math.isinf(d):
        raise ConfigError("d = inf needs the kernel form (backend 'auto' or 'kernel')")
    if cfg["backend"] == "kernel" or (cfg["backend"] == "auto" and d >= n_rows):
        # the kernel form (docs/theory.md §11): the same numbers at O(N_rows) per feature
        backend = "kernel"
        try:
            kernel = fmap.kernel if math.isinf(d) else fmap
        except ValueError as exc:
            raise ConfigError(f"d = inf: {exc}") from None
        kt = KernelTasks(train_raw.Xs, train_raw.ys, train_raw.Xq, train_raw.yq,
                         kernel=kernel)
        tasks = kt.tasks
        raw_test = (test_raw.Xs, test_raw.ys, test_raw.Xq, test_raw.yq)
        held_out = lambda theta: kt.task_losses(theta, *raw_test, **kw)
        feature_rank = kt.rank
    else:
        backend = "features"
        tasks = train_raw.to_tasks(fmap)
        test_tasks = test_raw.to_tasks(fmap)
        held_out = lambda theta: task_losses(theta, test_tasks, **kw)
        Xs, _, _, Xq, _, _ = tasks.packed()
        feature_rank = _numerical_rank(np.concatenate([Xs, Xq]).astype(np.float64))
    deadline = time.perf_counter() + cfg["time_budget"]
    marks = set(_path_iterations(cfg["max_iter"])) if with_path else set()
    snapshots = []

    def watch(it, theta, L, gn):
        if it in marks:
            snapshots.append((it, theta))
        if status:
            status(f"seed {seed} d={d} iter {it} |grad|={gn:.2e}")
        return time.perf_counter() > deadline

    res = fit(tasks, tol=cfg["tol"], max_iter=cfg["max_iter"], callback=watch, **kw)
    if res.message == "interrupted":
        raise KeyboardInterrupt
    stop = ("converged" if res.converged else
            "time budget" if res.message == "stopped by callback" else "max_iter")
    t_train = time.perf_counter() - t_start
    if status:
        status(f"seed {seed} d={d} bound")
    minimizer = {}
    if cfg["loss"] == "squared":
        sol = global_minimizer(tasks, inner_lr=cfg["inner_lr"], inner_steps=cfg["inner_steps"])
        theta_dag, kind = sol.theta_star, "closed_form"
        minimizer = {"minimizer_route": sol.route, "minimizer_rank": sol.rank}
    else:
        # no closed form: the comparator is θ trained on, five times the budget
        more = fit(tasks, tol=cfg["tol"] / 100, max_iter=5 * cfg["max_iter"],
                   theta0=res.theta.copy(), **kw)
        theta_dag, kind = more.theta, "user"
    t_b = time.perf_counter()
    problem = Problem(tasks, cfg["loss"], cfg["inner_lr"], 1, None)
    if cfg["inner_steps"] == 1:
        rep = theorem1_report(problem, res.theta, theta_dag, kind).to_dict()
    else:
        rep = {"note": "Theorem 1 is proved for one inner step: no bound"}
    t_bound = time.perf_counter() - t_b
    path, t_path = None, time.perf_counter()
    if with_path and cfg["inner_steps"] == 1:
        path = []
        for it, theta in snapshots:
            r = theorem1_report(problem, theta, theta_dag, kind)
            path.append({"iter": it, "eps": r.eps, "gap": r.gap, "linear_term": r.linear_term,
                         "bound": r.bound, "bound_R0": r.bound_R0})
    t_path = time.perf_counter() - t_path
    before, after = held_out(res.theta)
    w_test = np.full(cfg["n_test_tasks"], 1.0 / cfg["n_test_tasks"])
    gap, bound = rep.get("gap"), rep.get("bound")
    row = {
        "d": _d_label(d), "seed": int(seed), "backend": backend,
        "N_query": tasks.total_query,
        "N_rows": n_rows,
        "feature_rank": int(feature_rank),
        **minimizer,
        # measured, not assumed: the stacked system has full row rank N_query
        "interpolates": bool(minimizer.get("minimizer_rank") == tasks.total_query),
        "n_iter": res.n_iter, "stopped_by": stop, "eps": res.grad_norm,
        "L_omega": res.loss,
        "L_comparator": rep.get("L_comparator"),
        "comparator_kind": kind,
        "comparator_norm": float(np.linalg.norm(theta_dag)),
        "bound_over_gap": (bound / gap if isinstance(gap, float) and gap > 0 else math.nan),
        "test_before_adaptation": float(w_test @ before),
        "test_loss": float(w_test @ after),     # = L(ω) on the held-out tasks
        "test_loss_comparator": float(w_test @ held_out(theta_dag)[1]),
        "train_seconds": t_train, "bound_seconds": t_bound,
        "path_seconds": t_path,
        "seconds": time.perf_counter() - t_start,
    }
    for k in ("gap", "linear_term", "bound", "R", "w_norm", "repr_error", "repr_floor", "R0",
              "bound_R0", "solver", "solver_gap", "n_pairs", "n_dropped"):
        row[k] = rep.get(k)
    return row, path


class RowStore:
    """NAME.jsonl (the record, appended and fsynced row by row) and, for the rows, NAME.csv
    (rewritten from it atomically). A torn last line, from a kill mid-write, is discarded on
    opening."""

    def __init__(self, folder, fresh=False, name="rows", with_csv=True):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.jsonl = os.path.join(folder, f"{name}.jsonl")
        self.csv = os.path.join(folder, f"{name}.csv") if with_csv else None
        if fresh:
            for path in (self.jsonl, self.csv, os.path.join(folder, "study.png")):
                if path and os.path.exists(path):
                    os.remove(path)
        self.rows, self.discarded = self._read()

    def _read(self):
        if not os.path.exists(self.jsonl):
            return [], 0
        with open(self.jsonl, "rb") as f:
            raw = f.read()
        rows, good, discarded = [], [], 0
        lines = raw.split(b"\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or "key" not in row:
                    raise ValueError("not a row")
            except ValueError:
                if i < len(lines) - 1 and any(x.strip() for x in lines[i + 1:]):
                    raise ConfigError(f"{self.jsonl}: line {i + 1} is corrupt (not the last "
                                      f"line, so not a torn write); move the file away or "
                                      f"use --fresh") from None
                discarded += 1          # a torn last line
                continue
            rows.append(row)
            good.append(line)
        if discarded or (raw and not raw.endswith(b"\n")):
            atomic_write(self.jsonl, b"".join(g + b"\n" for g in good))
        return rows, discarded

    def keys(self):
        return {r["key"] for r in self.rows}

    def append(self, row):
        with open(self.jsonl, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.rows.append(row)
        if self.csv:
            self.write_csv()

    def write_csv(self):
        flat = [flatten(r) for r in self.rows]
        fields = sorted({k for r in flat for k in r})
        with atomic_open(self.csv, "w") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(flat)


def flatten(row, prefix=""):
    out = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        elif isinstance(v, list):
            out[prefix + k] = json.dumps(v)
        else:
            out[prefix + k] = v
    return out


def medians(rows):
    """One dict per d (in d order): the median over seeds of every numeric field, with
    n_seeds and the fields that differ between seeds' rows as they are."""
    by_d = {}
    for r in rows:
        by_d.setdefault(d_value(r["d"]), []).append(r)
    out = []
    for d in sorted(by_d):
        group = by_d[d]
        m = {"d": d, "n_seeds": len(group)}
        for key in group[0]:
            vals = [g.get(key) for g in group]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                m[key] = float(np.median(vals))
        out.append(m)
    return out


def format_table(rows):
    """The study table: one line per d, medians over the seeds."""
    widths = [_width(fmt) for _, _, fmt in TABLE]
    lines = [" ".join(f"{head:>{w}}" for (_, head, _), w in zip(TABLE, widths))]
    for r in medians(rows):
        cells = []
        for (key, _, fmt), w in zip(TABLE, widths):
            v = r.get(key)
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if key == "d" and math.isinf(v):
                cells.append(f"{'inf':>{w}}")
            else:
                cells.append(fmt.format(int(v) if key == "d" else v) if number
                             else f"{'-':>{w}}")
        lines.append(" ".join(cells))
    return "\n".join(lines)


def _width(fmt):
    """The field width of a format like '{:>9.2e}'."""
    return int(fmt.split(">")[1].split(".")[0].rstrip("}"))


def _thresholds(ax, rows):
    """Vertical lines at N_query and N_rows."""
    if not rows:
        return
    for x, name, y in ((rows[0]["N_query"], "N_query", 0.99),
                       (rows[0]["N_rows"], "N_rows", 0.93)):
        ax.axvline(x, color="grey", lw=0.8, ls="--")
        ax.annotate(f" {name} = {x}", (x, y), xycoords=("data", "axes fraction"), va="top",
                    fontsize=7, color="grey")


def _band(ax, rows, key, label, style, positive=True, mark_infinity=False):
    """The median over seeds against d, with the range over seeds shaded."""
    by_d = {}
    for r in rows:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and \
                (v > 0 or not positive) and not math.isinf(d_value(r["d"])):
            by_d.setdefault(r["d"], []).append(v)
    if not by_d:
        return
    d = sorted(by_d)
    med = [float(np.median(by_d[x])) for x in d]
    line, = ax.plot(d, med, style, label=label, ms=4)
    if any(len(v) > 1 for v in by_d.values()):
        ax.fill_between(d, [min(by_d[x]) for x in d], [max(by_d[x]) for x in d],
                        color=line.get_color(), alpha=0.15, lw=0)
    inf = [r.get(key) for r in rows if math.isinf(d_value(r["d"]))
           and isinstance(r.get(key), float) and r.get(key) > 0]
    if inf and mark_infinity:                  # d = ∞: the kernel's value, a marked level
        level = float(np.median(inf))
        ax.axhline(level, color=line.get_color(), lw=0.9, ls=(0, (1, 3)))
        ax.plot([d[-1] * 2.5], [level], "*", color=line.get_color(), ms=9)


def plot(rows, path, paths=()):
    """Four panels: (a) the terms against d, (b) bound / gap against d, (c) bound against gap
    along training, (d) held-out loss before and after adaptation against d."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = sorted(rows, key=lambda r: d_value(r["d"]))
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0, 0]
    for key, label, style in (("gap", "gap L(ω) − L(θ*)", "^-"),
                              ("bound", "bound (R minimising)", "o-"),
                              ("bound_R0", "bound at R0", "s--"),
                              ("L_comparator", "L(θ*)", "v-"),
                              ("repr_floor", "repr floor", "d-"),
                              ("eps", "ε = ‖∇L(ω)‖", "x:")):
        _band(ax, rows, key, label, style, mark_infinity=key in ("gap", "bound"))
    if any(math.isinf(d_value(r["d"])) for r in rows):
        ax.plot([], [], "k*", label="d = ∞ (kernel): dotted level and star")
    _thresholds(ax, rows)
    ax.set(xscale="log", yscale="log", xlabel="feature dimension d", ylabel="value",
           title="(a) Theorem 1's terms (median and range over seeds)")
    ax.legend(fontsize=7, loc="lower left")
    ax = axes[0, 1]
    _band(ax, rows, "bound_over_gap", "bound / gap", "o-")
    ax.axhline(2.0, color="k", lw=0.8, ls=":", label="2 (Cauchy–Schwarz equality)")
    _thresholds(ax, rows)
    ax.set(xscale="log", yscale="log", xlabel="feature dimension d", ylabel="bound / gap",
           title="(b) how tight the bound is")
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    lo, hi = math.inf, 0.0
    for p in paths:
        pts = [(q["gap"], q["bound"]) for q in p["path"] if q["gap"] > 0 and q["bound"] > 0]
        if pts:
            ax.plot(*zip(*pts), "o-", ms=3, label=f"d = {p['d']}")
            lo, hi = min(lo, min(min(x) for x in pts)), max(hi, max(max(x) for x in pts))
    if hi > 0:
        g = np.geomspace(lo, hi, 50)
        ax.plot(g, 2 * g, "k:", lw=0.8, label="bound = 2·gap")
        ax.legend(fontsize=7)
    ax.set(xscale="log", yscale="log", xlabel="gap along training (iterations 1, 2, 4, …)",
           ylabel="bound", title="(c) bound against gap during training")
    ax = axes[1, 1]
    _band(ax, rows, "test_before_adaptation", "before adaptation (θ)", "o-")
    _band(ax, rows, "test_loss", "after one inner step (θ_i)", "s-")
    _thresholds(ax, rows)
    ax.set(xscale="log", yscale="log", xlabel="feature dimension d",
           ylabel="meta-test loss on held-out tasks", title="(d) held-out tasks")
    ax.legend(fontsize=7)
    for a in axes.flat:
        a.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, dpi=100, format="png")
    plt.close(fig)


def _serial_rows(cfg, todo, want_path, bar, finished):
    """(seed, d, row, path, provenance) for each job, run here in order."""
    prov = provenance()
    for seed, d in todo:
        row, path = run_row(cfg, seed, d, status=lambda text: bar.update(finished[0], text),
                            with_path=want_path(seed, d))
        yield seed, d, row, path, prov


def _cluster_rows(cfg, todo, want_path, client):
    """(seed, d, row, path, provenance) for each job, one Dask task each, as they finish.
    Submitted largest d first, so the long rows do not come last."""
    from distributed import as_completed
    from gomaml.distributed import run_study_row
    order = sorted(todo, key=lambda job: -d_value(job[1]))
    futures = {client.submit(run_study_row, cfg, seed, d, want_path(seed, d), pure=False):
               (seed, d) for seed, d in order}
    try:
        for future in as_completed(futures):
            seed, d = futures.pop(future)
            row, path, prov = future.result()
            yield seed, d, row, path, prov
    finally:
        for future in futures:          # interrupted: nothing left running for us
            future.cancel()


def run_study(cfg, out=DEFAULT_OUT, *, fresh=False, progress=True, make_plot=True,
              stream=sys.stdout, client=None):
    """Run (or resume) the study; returns its rows in (d, seed) order. client: a
    dask.distributed Client to run each (seed, d) row as one task on its workers (the rows
    are the same as here, apart from timings and host fields)."""
    cfg = validate_config(cfg)
    store = RowStore(out, fresh=fresh)
    path_store = RowStore(out, fresh=fresh, name="paths", with_csv=False)
    if store.discarded:
        print(f"discarded {store.discarded} torn line(s) at the end of {store.jsonl}",
              file=sys.stderr)
    atomic_write(os.path.join(out, "config.json"),
                 json.dumps(json_safe(cfg), indent=2, sort_keys=True))
    done, paths_done = store.keys(), path_store.keys()
    jobs = [(s, d) for s in cfg["seeds"] for d in cfg["d"]]
    todo = [(s, d) for s, d in jobs if row_key(row_config(cfg, s, d)) not in done]
    bar = Progress(len(jobs), "study", enabled=progress)
    finished = [len(jobs) - len(todo)]
    if finished[0]:
        print(f"resuming: {finished[0]} of {len(jobs)} rows already in {store.jsonl}",
              file=sys.stderr)
    bar.update(finished[0], "", force=True)

    def want_path(seed, d):
        return (seed == cfg["seeds"][0] and d in cfg["path_d"]
                and row_key(row_config(cfg, seed, d)) not in paths_done)

    rows_in = (_serial_rows(cfg, todo, want_path, bar, finished) if client is None else
               _cluster_rows(cfg, todo, want_path, client))
    try:
        for seed, d, row, path, prov in rows_in:
            rc = row_config(cfg, seed, d)
            key = row_key(rc)
            if path is not None:                # written first: a row's path is never missing
                path_store.append(json_safe({"key": key, "seed": seed, "d": d, "path": path}))
            row.update(key=key, config=rc, provenance=prov)
            store.append(json_safe(row))
            finished[0] += 1
            bar.update(finished[0], f"seed {seed} d={d} done", force=True)
    finally:
        rows_in.close()
        bar.close()
    wanted = {row_key(row_config(cfg, s, d)) for s, d in jobs}
    rows = [r for r in store.rows if r["key"] in wanted]
    print(format_table(rows), file=stream)
    if make_plot and rows:
        paths = sorted((p for p in path_store.rows if p["key"] in wanted),
                       key=lambda p: d_value(p["d"]))
        plot(rows, os.path.join(out, "study.png"), paths)
    print(f"\nmedians over seeds {cfg['seeds']}; rows: {store.jsonl} and {store.csv}"
          + (f"; plot: {os.path.join(out, 'study.png')}" if make_plot else ""), file=stream)
    return sorted(rows, key=lambda r: (d_value(r["d"]), r["seed"]))
