"""The `gomaml` command line.

    gomaml study   the large-d study (the main job): gap and Theorem 1's bound against d
    gomaml train   train θ on a task family or a saved Tasks file; writes a run folder
    gomaml bound   the Theorem 1 report of a run folder
    gomaml bench   meta-gradient speed against NumPy (and JAX/PyTorch) and memory bandwidth
    gomaml info    how gomaml was built

Exit codes: 0 success, 1 failure, 2 bad usage or configuration, 130 interrupted. Errors are
one line on stderr.
"""
import argparse
import json
import os
import sys
import time

EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(Exception):
    """Bad flags or configuration: exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse with errors as one line and exit code 2."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def _ints(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _names(text):
    return [v.strip() for v in text.split(",") if v.strip()]


# ---- study -----------------------------------------------------------------------------
STUDY_FLAGS = [  # (flag, config key, type, help)
    ("--family", "family", str, "task family: sinusoid, linear, logistic"),
    ("--loss", "loss", str, "squared, logistic (with the logistic family), pseudo_huber"),
    ("--d", "d", _ints, "feature dimensions, comma-separated (e.g. 8,64,512)"),
    ("--inner-lr", "inner_lr", float, "inner step size η"),
    ("--inner-steps", "inner_steps", int, "inner steps (the bound needs 1)"),
    ("--n-tasks", "n_tasks", int, "meta-training tasks"),
    ("--n-test-tasks", "n_test_tasks", int, "held-out tasks"),
    ("--k-support", "k_support", int, "support points per task"),
    ("--k-query", "k_query", int, "query points per task"),
    ("--noise", "noise", float, "label noise"),
    ("--input-dim", "input_dim", int, "raw input dimension (linear, logistic)"),
    ("--features", "features", str, "identity, rff, relu, legendre"),
    ("--bandwidth", "bandwidth", float, "RBF bandwidth of the random Fourier features"),
    ("--seed", "data_seed", int, "data seed (held-out tasks use seed + 1)"),
    ("--feature-seed", "feature_seed", int, "feature-map seed"),
    ("--max-iter", "max_iter", int, "training iterations per d"),
    ("--time-budget", "time_budget", float, "training seconds per d (safety net)"),
    ("--tol", "tol", float, "stop training at ‖∇L‖ <= tol"),
]


def cmd_study(args):
    from gomaml.study import ConfigError, load_toml, run_study
    try:
        cfg = load_toml(args.config) if args.config else {}
        for flag, key, _, _ in STUDY_FLAGS:
            value = getattr(args, key)
            if value is not None:
                cfg[key] = value
        if args.bias:
            cfg["bias"] = True
        run_study(cfg, out=args.out, fresh=args.fresh, progress=not args.quiet,
                  make_plot=not args.no_plot)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return 0


# ---- train / bound ---------------------------------------------------------------------
def _tasks_from_args(args):
    from gomaml.features import make_feature_map
    from gomaml.study import ConfigError, make_data, validate_config
    from gomaml.tasks import Tasks
    if args.tasks:
        if not os.path.exists(args.tasks):
            raise UsageError(f"--tasks: no such file {args.tasks}")
        return Tasks.load(args.tasks), {"tasks_file": os.path.abspath(args.tasks)}
    cfg = {k: v for k, v in (("family", args.family), ("n_tasks", args.n_tasks),
                             ("k_support", args.k_support), ("k_query", args.k_query),
                             ("features", args.features), ("bandwidth", args.bandwidth),
                             ("data_seed", args.seed), ("loss", args.loss))
           if v is not None}
    cfg["d"] = [args.d if args.d is not None else 64]
    try:
        cfg = validate_config(cfg)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    raw = make_data(cfg, cfg["n_tasks"], cfg["data_seed"])
    fmap = make_feature_map(cfg["features"], cfg["d"][0], bandwidth=cfg["bandwidth"],
                            bias=cfg["bias"], seed=cfg["feature_seed"]).fit(raw.Xs.shape[2])
    return raw.to_tasks(fmap), {k: cfg[k] for k in ("family", "n_tasks", "k_support", "k_query",
                                                     "features", "bandwidth", "data_seed",
                                                     "feature_seed", "d")}


class _Checkpointer:
    """fit callback: every `every` seconds, write the run so far to `path` (atomically) as a
    FitResult that `--resume` continues from, so a kill loses at most that much work."""

    def __init__(self, path, previous, every, config):
        from gomaml.train import FitResult
        self.path, self.every, self.config = path, every, config
        self.previous = FitResult.load(previous) if previous else None
        self.rows = {"iter": [], "loss": [], "grad_norm": []}
        self.last = time.perf_counter()
        self.t0 = self.last

    def __call__(self, it, theta, loss, grad_norm):
        for key, value in zip(self.rows, (it, loss, grad_norm)):
            self.rows[key].append(value)
        now = time.perf_counter()
        if self.every and now - self.last >= self.every:
            self.last = now
            self.save(it, theta, loss, grad_norm, now - self.t0)
        return False

    def save(self, it, theta, loss, grad_norm, seconds):
        import numpy as np
        from gomaml.train import FitResult
        prev = self.previous
        history = {k: np.asarray(([] if prev is None else list(prev.history.get(k, [])))
                                 + v) for k, v in self.rows.items()}
        step = prev.config.get("step") if prev else None
        res = FitResult(theta=theta, loss=loss, grad_norm=grad_norm, n_iter=it,
                        converged=False, message="checkpoint", history=history,
                        wall_time=(prev.wall_time if prev else 0.0) + seconds,
                        config=dict(self.config, step=step))
        tmp = self.path + ".tmp.npz"
        res.save(tmp)
        os.replace(tmp, self.path)


def cmd_train(args):
    import numpy as np
    from gomaml.study import provenance
    from gomaml.train import fit
    tasks, source = _tasks_from_args(args)
    loss = args.loss or ("logistic" if args.family == "logistic" else "squared")
    os.makedirs(args.out, exist_ok=True)
    tasks.save(os.path.join(args.out, "tasks.npz"))
    resume = os.path.join(args.out, "result.npz")
    theta0 = resume if (args.resume and os.path.exists(resume)) else None
    config = dict(loss=loss, inner_lr=args.inner_lr, inner_steps=args.inner_steps,
                  first_order=args.first_order, outer_lr=args.outer_lr, max_iter=args.max_iter,
                  tol=args.tol, batch_size=args.batch_size, seed=args.seed)
    checkpoint = _Checkpointer(resume, theta0, args.checkpoint_every, config)
    try:
        res = fit(tasks, theta0=theta0, progress=not args.quiet, callback=checkpoint,
                  **config)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    res.save(resume)
    np.save(os.path.join(args.out, "theta.npy"), res.theta)
    run = {"config": config, "source": source, "provenance": provenance(),
           "result": {k: v for k, v in res.to_dict().items() if k not in ("theta", "history")}}
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(run, f, indent=2, sort_keys=True)
    print(f"{res.message}\nL = {res.loss:.6e}, ‖∇L‖ = {res.grad_norm:.3e}, "
          f"{res.n_iter} iterations, {res.wall_time:.1f} s\nrun folder: {args.out}")
    return 0


def cmd_bound(args):
    import numpy as np
    from gomaml.bounds import optimality_bound
    from gomaml.tasks import Tasks
    from gomaml.train import FitResult
    run_json = os.path.join(args.run, "run.json")
    if not os.path.exists(run_json):
        raise UsageError(f"{args.run} is not a run folder (no run.json); make one with "
                         f"'gomaml train --out {args.run}'")
    with open(run_json) as f:
        cfg = json.load(f)["config"]
    tasks = Tasks.load(os.path.join(args.run, "tasks.npz"))
    res = FitResult.load(os.path.join(args.run, "result.npz"))
    comparator = np.load(args.comparator) if args.comparator else None
    R = "auto" if args.R is None else args.R
    try:
        rep = optimality_bound(res.theta, tasks, loss=cfg["loss"], inner_lr=cfg["inner_lr"],
                               inner_steps=cfg["inner_steps"], comparator=comparator, R=R,
                               solver=args.solver)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(rep.to_dict(), indent=2) if args.json else rep)
    return 0


# ---- bench / info / example ------------------------------------------------------------
def cmd_bench(args):
    import numpy as np
    from gomaml.benchmark import SIZES, run_table
    shapes = []
    for name in args.sizes:
        if name not in SIZES:
            raise UsageError(f"--sizes: unknown size {name!r}; known: {', '.join(SIZES)}")
        shapes.append((name, SIZES[name]))
    if args.shape:
        if len(args.shape) != 3 or min(args.shape) < 1:
            raise UsageError(f"--shape: expected n,k,d (three positive integers), got "
                             f"{args.shape}")
        shapes.append(("-", tuple(args.shape)))
    for loss in args.losses:
        if loss not in ("squared", "logistic", "pseudo_huber"):
            raise UsageError(f"--losses: unknown loss {loss!r}")
    run_table(shapes, args.losses, dtype=np.dtype(args.dtype), n_threads=args.threads,
              numpy_baseline=not args.no_numpy, peers=not args.no_peers)
    return 0


def cmd_info(args):
    from gomaml import build_info
    print(json.dumps(build_info(), indent=2))
    return 0


def cmd_example(args):
    from gomaml.example import main as example
    example()
    return 0


def build_parser():
    ap = Parser(prog="gomaml", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    from gomaml.study import DEFAULT_CONFIG, DEFAULT_OUT
    p = sub.add_parser(
        "study", help="gap and Theorem 1's bound against the feature dimension (main job)",
        description="Train MAML at each feature dimension d and evaluate Theorem 1 against "
                    "the exact global minimiser. With no arguments: the documented default "
                    f"({json.dumps(DEFAULT_CONFIG)}). Settings come from --config (TOML, top "
                    "level or a [study] table, keys as in the default) and then the flags. "
                    "Rows are appended to OUT/rows.jsonl and OUT/rows.csv as each d finishes, "
                    "with a plot in OUT/study.png; an interrupted study resumes when the same "
                    "command is run again.")
    p.add_argument("--config", help="TOML file of study settings")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--fresh", action="store_true", help="discard earlier rows and start over")
    p.add_argument("--no-plot", action="store_true", help="do not draw study.png")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--bias", action="store_true", help="append a constant feature")
    for flag, key, typ, helptext in STUDY_FLAGS:
        p.add_argument(flag, dest=key, type=typ, default=None,
                       help=f"{helptext} (default {DEFAULT_CONFIG[key]})")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("train", help="train θ; writes a run folder (tasks, θ, history, run.json)")
    src = p.add_argument_group("tasks (a saved file, or a synthetic family)")
    src.add_argument("--tasks", help="a .npz written by Tasks.save")
    src.add_argument("--family", default="sinusoid", help="sinusoid, linear, logistic")
    src.add_argument("--n-tasks", type=int)
    src.add_argument("--k-support", type=int)
    src.add_argument("--k-query", type=int)
    src.add_argument("--features", help="identity, rff, relu, legendre (default rff)")
    src.add_argument("--bandwidth", type=float)
    src.add_argument("--d", type=int, help="feature dimension (default 64)")
    p.add_argument("--loss", help="squared (default), logistic, pseudo_huber")
    p.add_argument("--inner-lr", type=float, default=0.3)
    p.add_argument("--inner-steps", type=int, default=1)
    p.add_argument("--first-order", action="store_true")
    p.add_argument("--outer-lr", type=float, help="fixed outer step (default: automatic)")
    p.add_argument("--batch-size", type=int, help="tasks per step (MAML's Algorithm 1)")
    p.add_argument("--max-iter", type=int, default=2000)
    p.add_argument("--tol", type=float, default=1e-8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run folder's result.npz if it exists")
    p.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS",
                   help="write result.npz this often during training, so a kill loses at "
                        "most this much work (0: only at the end; default 30)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bound", help="print Theorem 1's report for a run folder")
    p.add_argument("run", help="run folder written by 'gomaml train'")
    p.add_argument("--comparator", help=".npy of θ† (default: exact minimiser, squared loss)")
    p.add_argument("--R", type=float, help="radius R (default: minimise the bound)")
    p.add_argument("--solver", default="auto", choices=["auto", "exact", "matrix_free"])
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_bound)

    p = sub.add_parser("bench", help="meta-gradient speed vs NumPy and memory bandwidth")
    p.add_argument("--sizes", type=_names, default=["A", "B", "C", "D", "E"],
                   help="of A (1000,10,100) B (200,20,2000) C (100,50,10000) D (10000,5,50) "
                        "E (10,1000,1000); default all")
    p.add_argument("--shape", type=_ints, help="an extra size n,k,d")
    p.add_argument("--losses", type=_names, default=["squared", "logistic"])
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-numpy", action="store_true", help="skip the NumPy baseline")
    p.add_argument("--no-peers", action="store_true", help="skip JAX/PyTorch if installed")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("info", help="how gomaml was built (OpenMP, threads, BLAS, ISA)")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("example", help="a small worked example of the meta-gradient")
    p.set_defaults(func=cmd_example)
    return ap


def main(argv=None):
    try:
        ap = build_parser()
        args = ap.parse_args(argv)
        if not getattr(args, "func", None):
            ap.print_help(sys.stderr)
            return EXIT_USAGE
        return args.func(args)
    except UsageError as exc:
        msg = str(exc)
        print(msg if msg.startswith("gomaml") else f"gomaml: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gomaml: interrupted; what finished is saved: run the same command to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # one clear line, no traceback
        text = " ".join(str(exc).split())
        print(f"gomaml: error: {type(exc).__name__}: {text}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
