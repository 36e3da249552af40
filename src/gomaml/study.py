"""The large-d study: how the optimality gap and Theorem 1's bound behave as the feature
dimension d grows (the main job, `gomaml study`).

For each d: fit a feature map (seeded), train θ by gradient descent with a per-d iteration and
time budget, take the ε actually reached (Theorem 1 holds for whatever ε that is), and evaluate
Theorem 1 against the exact global minimiser (squared loss), plus the meta-test loss on
held-out tasks. Each finished row is appended to rows.jsonl (flushed and fsynced) and the CSV
is rewritten from it; rows are keyed by a hash of their configuration, so an interrupted study
resumes where it stopped.
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

from gomaml._buildinfo import build_info
from gomaml._json import json_safe
from gomaml._progress import Progress
from gomaml._version import __version__
from gomaml.bounds import theorem1_report
from gomaml.features import make_feature_map
from gomaml.minimizer import global_minimizer
from gomaml.objective import Problem, meta_loss, task_losses
from gomaml.synthetic import FAMILIES
from gomaml.train import fit

DEFAULT_OUT = "gomaml-out/study"

#: The documented default study: sinusoid regression (Finn et al. 2017) with random Fourier
#: features, one inner step, squared loss, d from 8 to 4096.
DEFAULT_CONFIG = {
    "family": "sinusoid",          # sinusoid | linear | logistic
    "n_tasks": 40,                 # meta-training tasks
    "n_test_tasks": 40,            # held-out tasks for the meta-test loss
    "k_support": 10,
    "k_query": 10,
    "noise": 0.0,                  # label noise (sinusoid, linear) / logit noise (logistic)
    "input_dim": 4,                # raw input dimension of the linear and logistic families
    "features": "rff",             # identity | rff | relu | legendre
    "bandwidth": 1.0,              # RBF bandwidth of the random Fourier features
    "bias": False,                 # append a constant feature
    "d": [8, 16, 32, 64, 128, 256, 1024, 4096],
    "loss": "squared",             # squared | logistic | pseudo_huber
    "inner_lr": 0.3,
    "inner_steps": 1,
    "data_seed": 0,
    "feature_seed": 1,
    "max_iter": 2000,              # per d: the limit that normally binds (deterministic)
    "time_budget": 30.0,           # seconds of training per d: a safety net; a row stopped
                                   # by it depends on the machine's speed (see stopped_by)
    "tol": 1e-8,                   # stop early at ‖∇L‖ <= tol
}

TABLE = [  # (column, header, format)
    ("d", "d", "{:>6}"), ("N_query", "N", "{:>5}"), ("n_iter", "iters", "{:>6}"),
    ("eps", "eps", "{:>9.2e}"), ("L_omega", "L(w)", "{:>9.2e}"), ("gap", "gap", "{:>9.2e}"),
    ("linear_term", "linear", "{:>9.2e}"), ("bound", "bound", "{:>9.2e}"),
    ("R", "R", "{:>9.2e}"), ("w_norm", "|w|", "{:>9.2e}"), ("repr_error", "repr", "{:>9.2e}"),
    ("test_loss", "test L", "{:>9.2e}"), ("seconds", "time s", "{:>7.1f}"),
]
TIMING_FIELDS = ("seconds", "train_seconds", "bound_seconds")


class ConfigError(ValueError):
    """A bad study configuration (file or flags)."""


def validate_config(cfg):
    """A complete, checked copy of cfg (defaults filled in); ConfigError names the key."""
    out = copy.deepcopy(DEFAULT_CONFIG)
    for key, value in cfg.items():
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
            ok = isinstance(value, list) and value and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise ConfigError(f"study setting {key!r} must be like {want!r}, got {value!r}")
        out[key] = value
    choices = {"family": FAMILIES, "features": ("identity", "rff", "relu", "legendre"),
               "loss": ("squared", "logistic", "pseudo_huber")}
    for key, allowed in choices.items():
        if out[key] not in allowed:
            raise ConfigError(f"study setting {key!r} must be one of {', '.join(allowed)}, "
                              f"got {out[key]!r}")
    for key in ("n_tasks", "n_test_tasks", "k_support", "k_query", "input_dim", "max_iter",
                "inner_steps"):
        if out[key] < 1:
            raise ConfigError(f"study setting {key!r} must be >= 1, got {out[key]}")
    for key in ("inner_lr", "time_budget", "tol", "bandwidth"):
        if not (math.isfinite(out[key]) and out[key] > 0):
            raise ConfigError(f"study setting {key!r} must be finite and > 0, got {out[key]}")
    if not (math.isfinite(out["noise"]) and out["noise"] >= 0):
        raise ConfigError(f"study setting 'noise' must be >= 0, got {out['noise']}")
    if any(d < 1 for d in out["d"]) or len(set(out["d"])) != len(out["d"]):
        raise ConfigError(f"study setting 'd' must be distinct ints >= 1, got {out['d']}")
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


def row_config(cfg, d):
    """The configuration of one row: everything that determines its numbers."""
    row = {k: v for k, v in cfg.items() if k != "d"}
    row["d"] = int(d)
    return row


def row_key(row_cfg):
    return hashlib.sha256(json.dumps(row_cfg, sort_keys=True).encode()).hexdigest()[:16]


def provenance():
    return {"gomaml": __version__, "build": build_info(), "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def make_data(cfg, n, seed):
    """n tasks of the configured family (raw inputs), from the given seed."""
    gen = FAMILIES[cfg["family"]]
    if cfg["family"] == "sinusoid":
        return gen(n, cfg["k_support"], cfg["k_query"], noise=cfg["noise"], seed=seed)
    return gen(n, cfg["k_support"], cfg["k_query"], cfg["input_dim"], noise=cfg["noise"],
               seed=seed)


def run_row(cfg, d, status=None):
    """Train and bound at one d; returns the row dict (numbers, config, provenance)."""
    t_start = time.perf_counter()
    train_raw = make_data(cfg, cfg["n_tasks"], cfg["data_seed"])
    test_raw = make_data(cfg, cfg["n_test_tasks"], cfg["data_seed"] + 1)
    fmap = make_feature_map(cfg["features"], d, bandwidth=cfg["bandwidth"], bias=cfg["bias"],
                            seed=cfg["feature_seed"]).fit(train_raw.Xs.shape[2])
    if fmap.n_features != d:
        raise ConfigError(f"features {cfg['features']!r} give d = {fmap.n_features} on this "
                          f"family's inputs, not the d = {d} asked for")
    tasks = train_raw.to_tasks(fmap)
    test_tasks = test_raw.to_tasks(fmap)
    kw = dict(loss=cfg["loss"], inner_lr=cfg["inner_lr"], inner_steps=cfg["inner_steps"])
    deadline = time.perf_counter() + cfg["time_budget"]

    def budget(it, theta, L, gn):
        if status:
            status(f"d={d} iter {it} |grad|={gn:.2e}")
        return time.perf_counter() > deadline

    res = fit(tasks, tol=cfg["tol"], max_iter=cfg["max_iter"], callback=budget, **kw)
    if res.message == "interrupted":
        raise KeyboardInterrupt
    stop = ("converged" if res.converged else
            "time budget" if res.message == "stopped by callback" else "max_iter")
    t_train = time.perf_counter() - t_start
    if status:
        status(f"d={d} bound")
    minimizer = {}
    if cfg["loss"] == "squared":
        sol = global_minimizer(tasks, inner_lr=cfg["inner_lr"], inner_steps=cfg["inner_steps"])
        theta_dag, kind = sol.theta_star, "closed_form"
        minimizer = {"minimizer_route": sol.route, "minimizer_rank": sol.rank}
    else:
        # no closed form: the comparator is θ trained on, five times the budget
        more = fit(tasks, tol=cfg["tol"] / 100, max_iter=5 * cfg["max_iter"],
                   theta0=res.theta, **kw)
        theta_dag, kind = more.theta, "user"
    t_b = time.perf_counter()
    if cfg["inner_steps"] == 1:
        rep = theorem1_report(Problem(tasks, cfg["loss"], cfg["inner_lr"], 1, None),
                              res.theta, theta_dag, kind).to_dict()
    else:
        rep = {"note": "Theorem 1 is proved for one inner step: no bound"}
    t_bound = time.perf_counter() - t_b
    before, after = task_losses(res.theta, test_tasks, **kw)
    N = tasks.total_query
    row = {
        "d": int(d), "N_query": N, "d_ge_N": bool(d >= N),
        # measured, not assumed: L(θ*) ≈ 0 (d ≥ N does not guarantee it numerically)
        "interpolates": bool(kind == "closed_form" and rep.get("L_comparator") is not None
                             and rep["L_comparator"] <= 1e-10 * max(1.0, res.loss)),
        "n_iter": res.n_iter, "stopped_by": stop, "eps": res.grad_norm,
        "L_omega": res.loss,
        "L_comparator": rep.get("L_comparator"),
        "comparator_kind": kind,
        "comparator_norm": float(np.linalg.norm(theta_dag)),
        "test_loss": float(test_tasks.weights @ after),     # = L(ω) on the held-out tasks
        "test_loss_comparator": float(meta_loss(theta_dag, test_tasks, **kw)),
        "test_before_adaptation": float(np.mean(before)),
        "test_after_adaptation": float(np.mean(after)),
        **minimizer,
        "train_seconds": t_train, "bound_seconds": t_bound,
        "seconds": time.perf_counter() - t_start,
    }
    for k in ("gap", "linear_term", "bound", "R", "w_norm", "repr_error", "solver",
              "solver_gap", "n_pairs", "n_dropped"):
        row[k] = rep.get(k)
    return row


class RowStore:
    """rows.jsonl (the record, appended and fsynced row by row) and rows.csv (rewritten from it
    atomically). A torn last line, from a kill mid-write, is discarded on opening."""

    def __init__(self, folder, fresh=False):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.jsonl = os.path.join(folder, "rows.jsonl")
        self.csv = os.path.join(folder, "rows.csv")
        if fresh:
            for path in (self.jsonl, self.csv, os.path.join(folder, "study.png")):
                if os.path.exists(path):
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
            self._atomic_write(self.jsonl, b"".join(g + b"\n" for g in good))
        return rows, discarded

    @staticmethod
    def _atomic_write(path, data):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def keys(self):
        return {r["key"] for r in self.rows}

    def append(self, row):
        with open(self.jsonl, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.rows.append(row)
        self.write_csv()

    def write_csv(self):
        flat = [flatten(r) for r in self.rows]
        fields = sorted({k for r in flat for k in r})
        tmp = self.csv + ".tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(flat)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.csv)


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


def format_table(rows):
    """The study table, one line per row in d order."""
    widths = [_width(fmt) for _, _, fmt in TABLE]
    lines = [" ".join(f"{head:>{w}}" for (_, head, _), w in zip(TABLE, widths))]
    for r in sorted(rows, key=lambda r: r["d"]):
        cells = []
        for (key, _, fmt), w in zip(TABLE, widths):
            v = r.get(key)
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            cells.append(fmt.format(v) if number else f"{str(v):>{w}}")
        lines.append(" ".join(cells))
    return "\n".join(lines)


def _width(fmt):
    """The field width of a format like '{:>9.2e}'."""
    return int(fmt.split(">")[1].split(".")[0].rstrip("}"))


def plot(rows, path):
    """gap, linear term and bound against d (log scales), the interpolation threshold marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = sorted(rows, key=lambda r: r["d"])
    d = [r["d"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label, style in (("bound", "Theorem 1 bound", "o-"),
                              ("linear_term", "linear term", "s--"),
                              ("gap", "gap L(ω) − L(θ*)", "^-"),
                              ("eps", "ε = ‖∇L(ω)‖ reached", "x:")):
        ys = [r.get(key) for r in rows]
        pts = [(x, y) for x, y in zip(d, ys) if isinstance(y, (int, float)) and y > 0]
        if pts:
            ax.plot(*zip(*pts), style, label=label)
    if rows:
        N = rows[0]["N_query"]
        ax.axvline(N, color="grey", lw=0.8, ls="--")
        ax.text(N, ax.get_ylim()[1], " d = N (query rows)", va="top", fontsize=8,
                color="grey")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("feature dimension d")
    ax.set_ylabel("value")
    ax.set_title("MAML optimality gap and Theorem 1's bound vs feature dimension")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def run_study(cfg, out=DEFAULT_OUT, *, fresh=False, progress=True, make_plot=True,
              stream=sys.stdout):
    """Run (or resume) the study; returns the rows in d order."""
    cfg = validate_config(cfg)
    store = RowStore(out, fresh=fresh)
    if store.discarded:
        print(f"discarded {store.discarded} torn line(s) at the end of {store.jsonl}",
              file=sys.stderr)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    done = store.keys()
    todo = [d for d in cfg["d"] if row_key(row_config(cfg, d)) not in done]
    bar = Progress(len(cfg["d"]), "study", enabled=progress)
    finished = len(cfg["d"]) - len(todo)
    if finished:
        print(f"resuming: {finished} of {len(cfg['d'])} rows already in {store.jsonl}",
              file=sys.stderr)
    bar.update(finished, "", force=True)
    prov = provenance()
    try:
        for d in todo:
            rc = row_config(cfg, d)
            row = run_row(cfg, d, status=lambda text: bar.update(finished, text))
            row.update(key=row_key(rc), config=rc, provenance=prov)
            store.append(json_safe(row))
            finished += 1
            bar.update(finished, f"d={d} done", force=True)
    finally:
        bar.close()
    wanted = {row_key(row_config(cfg, d)) for d in cfg["d"]}
    rows = [r for r in store.rows if r["key"] in wanted]
    print(format_table(rows), file=stream)
    if make_plot and rows:
        plot(rows, os.path.join(out, "study.png"))
    print(f"\nrows: {store.jsonl} and {store.csv}"
          + (f"; plot: {os.path.join(out, 'study.png')}" if make_plot else ""), file=stream)
    return sorted(rows, key=lambda r: r["d"])
