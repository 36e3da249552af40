"""Meta-gradient time at the benchmark sizes, as a multiple of two memory-bandwidth bounds and
against the vectorised NumPy baseline, all measured in this one run.

    python bench/table.py [--sizes A,B,C,D,E] [--losses squared,logistic] [--dtype float64]
                          [--threads 2] [--no-numpy]

Bounds: bytes of support + query + labels divided by the best streaming-read bandwidth of
(1) a buffer 4x the last-level cache ("DRAM") and (2) a buffer the size of the data ("data"),
with the same thread count. Size A fits in the last-level cache, so its "data" bound is a
cache-bandwidth bound.
"""
import argparse
import sys

import numpy as np

import gomaml
from gomaml import perf

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from cases import SIZES, make_case  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="A,B,C,D,E")
    ap.add_argument("--losses", default="squared,logistic")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-numpy", action="store_true", help="skip the NumPy baseline")
    args = ap.parse_args(argv)
    dtype = np.dtype(args.dtype).type
    info = gomaml.build_info()
    print(f"gomaml {info['version']}  openmp={info['openmp']}  isa={info['isa']}  "
          f"threads={args.threads}  dtype={args.dtype}  numpy {np.__version__} ({info['blas']})")
    bw_dram = perf.stream_bandwidth(4 * perf.last_level_cache_bytes(), n_threads=args.threads)
    print(f"streaming read, 4x LLC buffer: {bw_dram / 1e9:.1f} GB/s")
    header = (f"{'size':4} {'loss':9} {'(n, k, d)':>18} {'MB':>7} {'time ms':>9} {'x DRAM':>7} "
              f"{'x data':>7} {'numpy ms':>9} {'x numpy':>8}")
    print(header)
    for name in args.sizes.split(","):
        for loss in args.losses.split(","):
            theta, tasks, dense = make_case(name, loss, dtype)
            nbytes = perf.task_bytes(tasks)
            bw_data = perf.stream_bandwidth(nbytes, n_threads=args.threads)
            run = lambda: gomaml.meta_loss_grad(theta, tasks, loss=loss, inner_lr=0.1,
                                                n_threads=args.threads)
            t = perf.best_time(run)
            row = (f"{name:4} {loss:9} {str(SIZES[name]):>18} {nbytes / 1e6:7.1f} "
                   f"{t * 1e3:9.2f} {t / (nbytes / bw_dram):7.2f} {t / (nbytes / bw_data):7.2f}")
            if not args.no_numpy:
                base = lambda: perf.numpy_meta_loss_grad(theta, *dense, loss=loss, inner_lr=0.1)
                L0, g0 = base()
                L1, g1 = run()
                assert abs(L0 - L1) <= 1e-9 * abs(L0) and np.allclose(g0, g1, rtol=1e-8,
                                                                        atol=1e-12)
                tb = perf.best_time(base, repeats=3)
                row += f" {tb * 1e3:9.2f} {tb / t:8.2f}"
            print(row, flush=True)


if __name__ == "__main__":
    main()
