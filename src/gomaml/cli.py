"""The `gomaml` command line.

    gomaml study   the large-d study (the main job): gap and Theorem 1's bound against d
    gomaml train   train θ on a task family or a saved Tasks file; writes a run folder
    gomaml bound   the Theorem 1 report of a run folder
    gomaml bench   meta-gradient speed against NumPy (and JAX/PyTorch) and memory bandwidth
    gomaml info    how gomaml was built
    gomaml example a worked example: the exact meta-gradient against central differences

`gomaml COMMAND --help` explains every option. Exit codes: 0 success, 1 failure (including
`train` stopping before ‖∇L‖ <= tol), 2 bad usage or configuration, 130 interrupted. Errors
are one line on stderr.
"""
import argparse
import contextlib
import json
import os
import sys

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


def _dims(text):
    """Feature dimensions: comma-separated integers, and inf for the kernel itself."""
    values = []
    for v in (v.strip() for v in text.split(",") if v.strip()):
        if v.lower() in ("inf", "infinity", "∞"):
            values.append(float("inf"))
            continue
        try:
            values.append(int(v))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers or inf, "
                                             f"got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one dimension")
    return values


def _names(text):
    return [v.strip() for v in text.split(",") if v.strip()]


# ---- study -----------------------------------------------------------------------------
def _registry(name):
    from gomaml.features import FEATURE_MAPS
    from gomaml.losses import LOSSES
    from gomaml.study import BACKENDS
    from gomaml.synthetic import FAMILIES
    return ", ".join({"family": FAMILIES, "features": FEATURE_MAPS, "loss": LOSSES,
                      "backend": BACKENDS}[name])


#: the synthetic tasks' flags, shared by `study` and `train` (same meaning, same defaults:
#: the study's configuration)
TASK_FLAGS = [  # (flag, config key, type, help)
    ("--family", "family", str, lambda: f"task family: {_registry('family')}"),
    ("--n-tasks", "n_tasks", int, "meta-training tasks"),
    ("--k-support", "k_support", int, "support points per task"),
    ("--k-query", "k_query", int, "query points per task"),
    ("--noise", "noise", float, "label noise (sinusoid, linear) or logit noise (logistic)"),
    ("--input-dim", "input_dim", int, "raw input dimension (linear, logistic)"),
    ("--features", "features", str, lambda: f"feature map: {_registry('features')}"),
    ("--bandwidth", "bandwidth", float, "RBF bandwidth of the random Fourier features"),
]
STUDY_FLAGS = TASK_FLAGS + [
    ("--loss", "loss", str, lambda: f"{_registry('loss')} (logistic with the logistic "
                                    f"family)"),
    ("--d", "d", _dims, "feature dimensions, comma-separated; inf is the kernel itself "
                        "(e.g. 8,64,512,inf); d >= N_rows runs in kernel form"),
    ("--inner-lr", "inner_lr", float, "inner step size η"),
    ("--inner-steps", "inner_steps", int, "inner steps (the bound needs 1)"),
    ("--n-test-tasks", "n_test_tasks", int, "held-out tasks"),
    ("--backend", "backend", str, lambda: f"{_registry('backend')}: auto takes the kernel "
                                          f"form from d >= N_rows (the same numbers, faster)"),
    ("--seeds", "seeds", _ints, "seeds, comma-separated: each gives the training data, the "
                                "held-out data and the features from three independent "
                                "streams; the table shows medians over them"),
    ("--path-d", "path_d", _ints, "d whose training path is bounded at iterations 1, 2, 4, … "
                                  "(first seed; plot panel c)"),
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
        with _study_client(args) as client:
            run_study(cfg, out=args.out, fresh=args.fresh, progress=not args.quiet,
                      make_plot=not args.no_plot, client=client)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return 0


@contextlib.contextmanager
def _study_client(args):
    """None (run here), or a Dask client: a local cluster of --workers single-threaded
    processes, or the scheduler at --scheduler."""
    if args.workers is None and args.scheduler is None:
        yield None
        return
    if args.workers is not None and args.scheduler is not None:
        raise UsageError("--workers and --scheduler: give one, not both")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    try:
        import distributed
    except ImportError:
        raise UsageError("--workers and --scheduler need Dask: "
                         "pip install \"gomaml[dask]\"") from None
    if args.workers is not None:
        with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                      processes=True, dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(args.scheduler, timeout=30)
    except (OSError, ValueError, TimeoutError) as exc:
        raise UsageError(f"--scheduler: cannot connect to {args.scheduler}: {exc}") from None
    with client:
        yield client


# ---- train / bound ---------------------------------------------------------------------
def train_defaults():
    """The settings of `gomaml train` that define the problem and its stopping rule, with the
    library's defaults (gomaml.fit's); a flag left out takes the run's saved value with
    --resume, else this default. loss None: squared, or logistic for the logistic family;
    seed: the family's data seed (and the batch sampler's)."""
    import inspect
    from gomaml.train import fit
    params = inspect.signature(fit).parameters
    out = {k: params[k].default for k in ("inner_lr", "inner_steps", "first_order",
                                          "outer_lr", "batch_size", "max_iter", "tol")}
    return dict(out, loss=None, seed=0)


TRAIN_D = 64           # train's feature dimension when --d is not given
RUN_FILES = ("run.json", "result.npz", "theta.npy", "tasks.npz")
_FAMILY_FLAGS = tuple(key for _, key, _, _ in TASK_FLAGS) + ("d",)


def _load_input(what, loader, path):
    """loader(path), with a missing or unreadable file as a usage error (exit 2)."""
    try:
        return loader(path)
    except FileNotFoundError:
        raise UsageError(f"{what}: no such file {path}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{what}: cannot read {path}: {exc}") from None


def _tasks_from_args(args, seed):
    """(Tasks, source description) from --tasks or the family flags, or None when neither
    was given."""
    from gomaml.features import make_feature_map
    from gomaml.study import ConfigError, make_data, seed_streams, validate_config
    from gomaml.tasks import Tasks
    if args.tasks:
        tasks = _load_input("--tasks", Tasks.load, args.tasks)
        return tasks, {"tasks_file": os.path.abspath(args.tasks)}
    cfg = {key: getattr(args, key) for _, key, _, _ in TASK_FLAGS
           if getattr(args, key) is not None}
    if args.loss is not None:
        cfg["loss"] = args.loss
    cfg["d"] = [args.d if args.d is not None else TRAIN_D]
    try:
        cfg = validate_config(cfg)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    data_seed, _, feature_seed = seed_streams(seed)
    raw = make_data(cfg, cfg["n_tasks"], data_seed)
    fmap = make_feature_map(cfg["features"], cfg["d"][0], bandwidth=cfg["bandwidth"],
                            bias=cfg["bias"], seed=feature_seed).fit(raw.Xs.shape[2])
    source = {k: cfg[k] for k in _FAMILY_FLAGS}
    return raw.to_tasks(fmap), dict(source, seed=seed)


def _saved_run(folder):
    """(run.json's dict, the saved Tasks) of an existing run folder; usage errors when
    either cannot be read."""
    from gomaml.tasks import Tasks

    def read_json(path):
        with open(path, encoding="utf-8") as f:
            run = json.load(f)
        if not isinstance(run, dict) or not isinstance(run.get("config"), dict):
            raise ValueError("no 'config' object")
        return run
    run = _load_input("--resume", read_json, os.path.join(folder, "run.json"))
    tasks = _load_input("--resume", Tasks.load, os.path.join(folder, "tasks.npz"))
    return run, tasks


def _write_run_json(folder, run):
    from gomaml._files import atomic_write
    atomic_write(os.path.join(folder, "run.json"), json.dumps(run, indent=2, sort_keys=True))


def cmd_train(args):
    import numpy as np
    from gomaml._files import atomic_open
    from gomaml.study import provenance
    from gomaml.train import (DivergenceError, FitResult, check_fit_arguments,
                              identity_mismatch, problem_identity, fit)
    folder = args.out
    existing = [f for f in RUN_FILES if os.path.exists(os.path.join(folder, f))]
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite: choose one")
    if existing and not (args.resume or args.overwrite):
        raise UsageError(f"--out: {folder} already holds a run ({', '.join(existing)}); "
                         f"--resume continues it, --overwrite replaces it")
    resuming = args.resume and bool(existing)
    saved_run, saved_tasks = _saved_run(folder) if resuming else (None, None)
    defaults = train_defaults()
    base = saved_run["config"] if resuming else defaults
    config = {k: getattr(args, k) if getattr(args, k) is not None else base.get(k, v)
              for k, v in defaults.items()}
    given = args.tasks or any(getattr(args, k) is not None for k in _FAMILY_FLAGS)
    if resuming and not given:
        tasks, source = saved_tasks, saved_run.get("source", {})
    else:
        tasks, source = _tasks_from_args(args, config["seed"])
        if resuming and tasks.content_hash() != saved_tasks.content_hash():
            raise UsageError(f"--resume: these tasks differ from the run's saved tasks.npz "
                             f"(content hash {tasks.content_hash()[:12]}… vs "
                             f"{saved_tasks.content_hash()[:12]}…); not resumed, {folder} is "
                             f"unchanged")
    if config["loss"] is None:
        config["loss"] = "logistic" if source.get("family") == "logistic" else "squared"
    fit_kw = {k: v for k, v in config.items() if k != "seed"}
    fit_kw["seed"] = config["seed"] if config["batch_size"] else None
    result_path = os.path.join(folder, "result.npz")
    try:
        problem, checked = check_fit_arguments(tasks, checkpoint=result_path,
                                               checkpoint_every=args.checkpoint_every, **fit_kw)
        previous = None
        if resuming and os.path.exists(result_path):
            previous = _load_input("--resume", FitResult.load, result_path)
            why = identity_mismatch(previous.config, problem_identity(problem, checked))
            if why:
                raise UsageError(f"--resume: the run in {folder} is a different problem, not "
                                 f"resumed ({why}); it is unchanged")
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None

    # everything is checked: only now is anything written
    os.makedirs(folder, exist_ok=True)
    if args.overwrite:
        for f in existing:
            os.remove(os.path.join(folder, f))
    if not resuming:
        tasks.save(os.path.join(folder, "tasks.npz"))
    run = {"config": config, "source": source, "provenance": provenance(),
           "status": "running"}
    _write_run_json(folder, run)
    try:
        res = fit(tasks, theta0=previous, progress=not args.quiet, checkpoint=result_path,
                  checkpoint_every=args.checkpoint_every, **fit_kw)
    except DivergenceError as exc:          # fit saved the last good state as result.npz
        run.update(status="diverged", result=_summary(exc.result))
        _write_run_json(folder, run)
        raise
    with atomic_open(os.path.join(folder, "theta.npy")) as f:
        np.save(f, res.theta)
    run.update(status="interrupted" if res.message == "interrupted" else "finished",
               result=_summary(res))
    _write_run_json(folder, run)
    print(f"{res.message}\nL = {res.loss:.6e}, ‖∇L‖ = {res.grad_norm:.3e}, "
          f"{res.n_iter} iterations, {res.wall_time:.1f} s\nrun folder: {folder}")
    if res.message == "interrupted":
        print(f"gomaml: interrupted; the run is saved: 'gomaml train --out {folder} --resume' "
              f"continues it", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not res.converged:
        print(f"gomaml: not converged: ‖∇L‖ = {res.grad_norm:.3e} > tol = {config['tol']:g} "
              f"after {res.n_iter} steps; 'gomaml train --out {folder} --resume --max-iter N' "
              f"continues with more steps", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def _summary(res):
    return {k: v for k, v in res.to_dict().items() if k not in ("theta", "history")}


def cmd_bound(args):
    import numpy as np
    from gomaml.bounds import optimality_bound
    from gomaml.tasks import Tasks
    from gomaml.train import FitResult
    run_json = os.path.join(args.run, "run.json")
    if not os.path.exists(run_json):
        raise UsageError(f"{args.run} is not a run folder (no run.json); make one with "
                         f"'gomaml train --out {args.run}'")
    cfg = _saved_run(args.run)[0]["config"]
    tasks = _load_input("run", Tasks.load, os.path.join(args.run, "tasks.npz"))
    res = _load_input("run", FitResult.load, os.path.join(args.run, "result.npz"))
    comparator = None
    if args.comparator:
        comparator = _load_input("--comparator", lambda p: np.load(p, allow_pickle=False),
                                 args.comparator)
    R = "auto" if args.R is None else args.R
    try:
        rep = optimality_bound(res.theta, tasks, loss=cfg["loss"], inner_lr=cfg["inner_lr"],
                               inner_steps=cfg["inner_steps"], comparator=comparator, R=R,
                               solver=args.solver)
    except (TypeError, ValueError) as exc:
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
    from gomaml.losses import LOSSES
    for loss in args.losses:
        if loss not in LOSSES:
            raise UsageError(f"--losses: unknown loss {loss!r}; known: {', '.join(LOSSES)}")
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

    from gomaml._json import json_safe
    from gomaml.bounds import SOLVERS
    from gomaml.study import DEFAULT_CONFIG, DEFAULT_OUT
    p = sub.add_parser(
        "study", help="gap and Theorem 1's bound against the feature dimension (main job)",
        description="Train MAML for each seed and feature dimension d and evaluate Theorem 1 "
                    "against the exact global minimiser, with the representation floor, "
                    "across the interpolation threshold (d = N_query) and the representation "
                    "threshold (d ~ N_rows); docs/theory.md explains every column. With no "
                    "arguments: the documented default "
                    f"({json.dumps(json_safe(DEFAULT_CONFIG))}). Settings come from --config "
                    "(TOML, top "
                    "level or a [study] table, keys as in the default) and then the flags. "
                    "Rows are appended to OUT/rows.jsonl and OUT/rows.csv as each (seed, d) "
                    "finishes, the training paths to OUT/paths.jsonl, with a plot in "
                    "OUT/study.png; the table shows medians over the seeds. An interrupted "
                    "study resumes when the same command is run again.")
    p.add_argument("--config", help="TOML file of study settings")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--fresh", action="store_true", help="discard earlier rows and start over")
    p.add_argument("--no-plot", action="store_true", help="do not draw study.png")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--bias", action="store_true", help="append a constant feature")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="run the rows on a local Dask cluster of N single-threaded worker "
                        "processes, one (seed, d) row per task (needs gomaml[dask]); rows "
                        "equal the serial run's apart from timings and host fields")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the rows on the Dask cluster whose scheduler is at ADDRESS "
                        "(e.g. tcp://10.0.0.1:8786); workers need gomaml of the same build "
                        "(docs/distributed.md)")
    for flag, key, typ, helptext in STUDY_FLAGS:
        helptext = helptext() if callable(helptext) else helptext
        p.add_argument(flag, dest=key, type=typ, default=None,
                       help=f"{helptext} (default {DEFAULT_CONFIG[key]})")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser(
        "train", help="train θ; writes a run folder (tasks, θ, history, run.json)",
        description="Train θ by gradient descent on the MAML objective and write a run folder: "
                    "tasks.npz, result.npz (a FitResult, also the checkpoint), theta.npy and "
                    "run.json. Every file is written atomically. An existing run folder is "
                    "refused unless --resume (continue it: flags left out take the run's "
                    "saved values; a different problem is refused and the run left as it "
                    "was) or --overwrite. --max-iter counts the steps of all runs together. "
                    "The training settings default to the library's (gomaml.fit's); the "
                    "synthetic tasks' to the study's. Exit code 0 when ‖∇L‖ <= tol was "
                    "reached, 1 when training stopped before (max-iter) or diverged (the "
                    "run is saved either way; --resume continues it), 130 on Ctrl-C (the "
                    "run is saved).")
    src = p.add_argument_group("tasks (a saved file, or a synthetic family)")
    src.add_argument("--tasks", help="a .npz written by Tasks.save (instead of a family)")
    for flag, key, typ, helptext in TASK_FLAGS:
        helptext = helptext() if callable(helptext) else helptext
        src.add_argument(flag, dest=key, type=typ, default=None,
                         help=f"{helptext} (default {DEFAULT_CONFIG[key]})")
    src.add_argument("--d", type=int, help=f"feature dimension (default {TRAIN_D})")
    d = train_defaults()
    p.add_argument("--loss", help=f"{_registry('loss')} (default squared; logistic with the "
                                  f"logistic family)")
    p.add_argument("--inner-lr", type=float, help=f"inner step size η (default {d['inner_lr']})")
    p.add_argument("--inner-steps", type=int,
                   help=f"inner steps T (default {d['inner_steps']})")
    p.add_argument("--first-order", action="store_const", const=True,
                   help="first-order MAML (J_i = I)")
    p.add_argument("--outer-lr", type=float, help="fixed outer step (default: automatic)")
    p.add_argument("--batch-size", type=int, help="tasks per step (MAML's Algorithm 1)")
    p.add_argument("--max-iter", type=int,
                   help=f"steps in total, over all resumed runs (default {d['max_iter']})")
    p.add_argument("--tol", type=float, help=f"stop at ‖∇L‖ <= tol (default {d['tol']})")
    p.add_argument("--seed", type=int,
                   help=f"data seed of the family, and the batch sampler's (default {d['seed']})")
    p.add_argument("--out", required=True, help="run folder")
    run = p.add_mutually_exclusive_group()
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out (checks it is the same problem)")
    run.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS",
                   help="write result.npz this often during training, so a kill loses at "
                        "most this much work (0: only at the end; default 30)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bound", help="print Theorem 1's report for a run folder")
    p.add_argument("run", help="run folder written by 'gomaml train'")
    p.add_argument("--comparator", help=".npy of θ† (default: exact minimiser, squared loss)")
    p.add_argument("--R", type=float, help="radius R (default: minimise the bound)")
    p.add_argument("--solver", default="auto", choices=SOLVERS,
                   help="the sup over the ball of radius R: exact (SVD, in the features' span "
                        "when smaller), matrix_free (Golub–Kahan on the pair operator), auto "
                        "(by fixed cost estimates of the sizes; default)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_bound)

    p = sub.add_parser(
        "bench", help="meta-gradient speed vs NumPy and memory bandwidth",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Time the exact meta-gradient (one inner step, inner_lr 0.1) of random "
                    "tasks of each size and loss, against bounds and baselines measured in "
                    "the same run (best of repeats). Columns:\n"
                    "  size, loss, (n, k, d)  the case: n tasks of k support + k query rows\n"
                    "  MB       bytes of the task rows (Xs and Xq)\n"
                    "  ms       gomaml's time per meta-gradient\n"
                    "  xfloor   ms / a plain read of the same rows in the kernel's own order "
                    "(Xs_i, Xq_i, Xs_i per task,\n"
                    "           same threads; the two timed in alternating calls): how far from "
                    "the memory floor;\n           1 is the floor\n"
                    "  xDRAM    ms × streaming-read bandwidth of a buffer 4× the last-level "
                    "cache / MB\n"
                    "  xdata    the same with the bandwidth of a buffer of MB bytes (cached "
                    "when it fits)\n"
                    "  numpy ms, xnumpy   the vectorised NumPy meta-gradient, and its time / "
                    "gomaml's\n"
                    "  torch ms, xtorch, jax ms, xjax   the same for PyTorch and JAX when "
                    "installed (float64)\n"
                    "Every baseline's result is checked against gomaml's before it is timed. "
                    "The header names the build, the CPU and its cache sizes.")
    p.add_argument("--sizes", type=_names, default=["A", "B", "C", "D", "E"],
                   help="of A (1000,10,100) B (200,20,2000) C (100,50,10000) D (10000,5,50) "
                        "E (10,1000,1000); default all")
    p.add_argument("--shape", type=_ints, help="an extra size n,k,d")
    p.add_argument("--losses", type=_names, default=["squared", "logistic"],
                   help=f"comma-separated, of {_registry('loss')} (default squared,logistic)")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                   help="the tasks' dtype (peers run in float64 only; default float64)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads for gomaml and the bandwidth reads (default 2)")
    p.add_argument("--no-numpy", action="store_true", help="skip the NumPy baseline")
    p.add_argument("--no-peers", action="store_true", help="skip JAX/PyTorch if installed")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("info", help="how gomaml was built (OpenMP, threads, BLAS, ISA)")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("example", help="a small worked example: the exact meta-gradient "
                                       "checked against central differences, then gradient "
                                       "descent (python -m gomaml.example)")
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
