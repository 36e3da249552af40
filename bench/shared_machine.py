"""Throughput of meta_loss_grad when several processes share the machine.

Runs `--procs` processes at once, each calling meta_loss_grad on the same problem
(default 50 tasks x 10 rows, d = 256) in a loop for `--seconds`, with default settings
(n_threads=None, the environment as given), and compares their total calls per second with
one process alone, measured in the same run:

    python bench/shared_machine.py                  # 1 process, then 2 at once
    python bench/shared_machine.py --procs 2 --env OMP_WAIT_POLICY=active

The figure the thread policy is judged by is the last line: total throughput of the
concurrent processes as a percentage of one process's (>= 70 % is the aim on 2 cores).
"""
import argparse
import multiprocessing as mp
import os
import sys
import time


def _worker(shape, seconds, env, n_threads, start, out):
    os.environ.update(env)
    import numpy as np
    import gomaml
    n, k, d = shape
    rng = np.random.default_rng(0)
    tasks = gomaml.Tasks(rng.normal(size=(n, k, d)), rng.normal(size=(n, k)))
    theta = rng.normal(size=d) * 0.01
    gomaml.meta_loss_grad(theta, tasks, inner_lr=0.01, n_threads=n_threads)        # warm-up
    start.wait()
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        gomaml.meta_loss_grad(theta, tasks, inner_lr=0.01, n_threads=n_threads)
        calls += 1
    out.put(calls / (time.perf_counter() - t0))


def throughput(n_procs, shape, seconds, env, n_threads=None):
    """Total calls per second of n_procs processes running at once."""
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(n_procs + 1), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(shape, seconds, env, n_threads, start, out))
             for _ in range(n_procs)]
    for p in procs:
        p.start()
    start.wait()
    rates = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    return sum(rates)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, default=2, help="concurrent processes (default 2)")
    ap.add_argument("--shape", default="50,10,256", help="n,k,d (default 50,10,256)")
    ap.add_argument("--seconds", type=float, default=5.0, help="per measurement (default 5)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="environment for the worker processes (repeatable)")
    ap.add_argument("--n-threads", type=int, default=None,
                    help="n_threads of every call (default None: the library's policy)")
    args = ap.parse_args(argv)
    shape = tuple(int(v) for v in args.shape.split(","))
    env = dict(e.split("=", 1) for e in args.env)
    one = throughput(1, shape, args.seconds, env, args.n_threads)
    many = throughput(args.procs, shape, args.seconds, env, args.n_threads)
    print(f"shape {shape}, n_threads {args.n_threads}, env {env or 'as given'}, "
          f"cpus {os.cpu_count()}")
    print(f"1 process:            {one:10.1f} calls/s")
    print(f"{args.procs} processes at once: {many:10.1f} calls/s in total")
    print(f"concurrent total / one process: {100 * many / one:.0f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
