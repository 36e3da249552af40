"""What one ShardedTasks evaluation costs on a local Dask cluster, against the same call in
process, and the terms of docs/distributed.md's scaling model measured here.

    python bench/distributed_scaling.py [--workers 2] [--n 2000] [--k 10] [--d 1000]

Prints, for 1, 2 and 4 shards on --workers single-threaded workers: the median seconds of
meta_loss_grad in process (1 thread and default threads) and on the shards, the bytes that
cross the network per call (θ out to every shard, each shard's block sums back), and the
per-call overhead (sharded time minus the in-process time of the largest shard on 1 thread).
"""
import argparse
import statistics
import time

import numpy as np

import gomaml
from gomaml.distributed import ShardedTasks, slice_tasks
from gomaml._core import block_ptr_for, n_blocks_for


def median_seconds(f, repeat=7):
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    import distributed
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--d", type=int, default=1000)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    n, k, d = a.n, a.k, a.d
    tasks = gomaml.Tasks(rng.normal(size=(n, k, d)) / np.sqrt(d), rng.normal(size=(n, k)),
                         rng.normal(size=(n, k, d)) / np.sqrt(d), rng.normal(size=(n, k)))
    theta = rng.normal(size=d)
    data = 8 * d * 2 * n * k
    B = n_blocks_for(n, d)
    print(f"n={n} k={k}+{k} d={d}: {data / 2**20:.0f} MiB of rows, {B} blocks; "
          f"{a.workers} single-threaded workers")
    t1 = median_seconds(lambda: gomaml.meta_loss_grad(theta, tasks, n_threads=1))
    tN = median_seconds(lambda: gomaml.meta_loss_grad(theta, tasks))
    print(f"in process: {t1 * 1e3:.1f} ms on 1 thread, {tN * 1e3:.1f} ms on default threads")
    with distributed.LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        for S in (1, 2, 4):
            with ShardedTasks(client, tasks, S) as sharded:
                ts = median_seconds(lambda: gomaml.meta_loss_grad(theta, sharded))
                ptr = block_ptr_for(n, B)
                cuts = [int(ptr[(s * B) // S]) for s in range(S + 1)]
                largest = max(hi - lo for lo, hi in zip(cuts, cuts[1:]))
                part = slice_tasks(tasks, 0, largest)
                tpart = median_seconds(lambda: gomaml.meta_loss_grad(theta[:d], part,
                                                                     n_threads=1))
            out_bytes = 8 * d * S
            back_bytes = 8 * B * (d + 1)
            rounds = -(-S // a.workers)           # shards per worker, run one after another
            overhead = ts - rounds * tpart
            print(f"{S} shard(s): {ts * 1e3:7.1f} ms  ({t1 / ts:.2f}× 1 thread, "
                  f"{tN / ts:.2f}× default threads)  θ out {out_bytes / 1024:.0f} KiB, "
                  f"block sums back {back_bytes / 1024:.0f} KiB, overhead "
                  f"{overhead * 1e3:.1f} ms per call")


if __name__ == "__main__":
    main()
