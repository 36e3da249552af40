"""A/B timing of gomaml builds on a noisy machine: processes of each build alternate, round by
round, so drift of the host hits every build alike; each process reports the best of 11 calls
per case, and the table gives the median over rounds [min-max].

    python bench/interleaved.py old=/tmp/old/src new=src --sizes A,D --losses squared,logistic

A build is a source tree whose extension modules are built in place (`pip install -e .`, or
`python setup.py build_ext --inplace` in a `git worktree` of another commit); NAME=PATH puts
PATH first on PYTHONPATH for that build's processes.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
from gomaml.benchmark import SIZES, make_case
from gomaml.objective import meta_loss_grad
sizes, losses, threads, dtype = sys.argv[1].split(","), sys.argv[2].split(","), int(sys.argv[3]), sys.argv[4]
out = {}
for s in sizes:
    for loss in losses:
        theta, tasks, _ = make_case(SIZES[s], loss, dtype=np.dtype(dtype))
        for _ in range(2):
            meta_loss_grad(theta, tasks, loss=loss, inner_lr=0.1, n_threads=threads)
        best = float("inf")
        for _ in range(11):
            t0 = time.perf_counter()
            meta_loss_grad(theta, tasks, loss=loss, inner_lr=0.1, n_threads=threads)
            best = min(best, time.perf_counter() - t0)
        out[f"{s} {loss}"] = 1e3 * best
print(json.dumps(out))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs="+", help="NAME=PATH of each build's source tree")
    ap.add_argument("--sizes", default="A,D")
    ap.add_argument("--losses", default="squared,logistic")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    args = ap.parse_args(argv)
    builds = [b.split("=", 1) for b in args.builds]
    if any(len(b) != 2 for b in builds):
        ap.error("each build is NAME=PATH")
    times = {}
    for r in range(args.rounds):
        for name, path in builds:
            env = dict(os.environ, PYTHONPATH=os.path.abspath(path))
            proc = subprocess.run([sys.executable, "-c", CHILD, args.sizes, args.losses,
                                   str(args.threads), args.dtype],
                                  env=env, capture_output=True, text=True, check=True)
            for case, ms in json.loads(proc.stdout).items():
                times.setdefault(case, {}).setdefault(name, []).append(ms)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{'case':20s}" + "".join(f"{name:>26s}" for name, _ in builds))
    for case, per in times.items():
        cells = (f"{statistics.median(v):9.3f} [{min(v):.3f}-{max(v):.3f}]"
                 for v in (per[name] for name, _ in builds))
        print(f"{case:20s}" + "".join(f"{c:>26s}" for c in cells))


if __name__ == "__main__":
    main()
