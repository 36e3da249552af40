"""Cost of optimality_bound's solvers in the default study's configuration, in meta-gradient
evaluations measured in the same run (the evidence behind solver="auto"'s fixed size rule):

    python bench/bound_solvers.py                 # d = 64 … 65536, seed 0
    python bench/bound_solvers.py --d 4096,16384

For each d: train to the study's tolerance, then time the Theorem 1 report at that point with
the exact solver (its route: a direct SVD, or the SVD in the span of the training features)
and with the matrix-free Golub–Kahan solver, and check that they agree.
"""
import argparse
import sys
import time

import gomaml
from gomaml.bounds import exact_route, theorem1_report
from gomaml.features import make_feature_map
from gomaml._core import Problem
from gomaml.study import make_data, seed_streams, validate_config


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", default="64,256,1024,4096,16384,65536")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cfg = validate_config({})
    data_seed, _, feature_seed = seed_streams(args.seed)
    raw = make_data(cfg, cfg["n_tasks"], data_seed)
    eta = cfg["inner_lr"]
    print(f"{'d':>6} {'grad ms':>8} {'route':>7} {'exact ms':>9} {'(grads)':>8} "
          f"{'GK ms':>8} {'(grads)':>8}  bound (exact, GK)")
    for d in (int(v) for v in args.d.split(",")):
        fmap = make_feature_map(cfg["features"], d, seed=feature_seed).fit(cfg["input_dim"])
        tasks = raw.to_tasks(fmap)
        res = gomaml.fit(tasks, inner_lr=eta, tol=cfg["tol"], max_iter=cfg["max_iter"])
        dag = gomaml.global_minimizer(tasks, inner_lr=eta)[0]
        t0 = time.perf_counter()
        for _ in range(5):
            gomaml.meta_loss_grad(res.theta, tasks, inner_lr=eta)
        grad = (time.perf_counter() - t0) / 5
        cells, bounds = [], []
        for solver in ("exact", "matrix_free"):
            t0 = time.perf_counter()
            rep = theorem1_report(Problem(tasks, "squared", eta, 1, None), res.theta, dag,
                                  "closed_form", solver=solver)
            t = time.perf_counter() - t0
            cells.append(f"{1e3 * t:>9.1f} {t / grad:>8.0f}")
            bounds.append(rep.bound)
        n_pairs = int((tasks.support_sizes * tasks.query_sizes).sum())
        route = exact_route(n_pairs, d, tasks.total_support + tasks.total_query)[0]
        print(f"{d:>6} {1e3 * grad:>8.2f} {route:>7} {cells[0]} {cells[1]}  "
              f"{bounds[0]:.6e}, {bounds[1]:.6e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
