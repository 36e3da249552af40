"""Study rows through the kernel form against the feature form (docs/theory.md §11), in the
default study's configuration, each row in its own process (so peak memory is the row's own):

    python bench/kernel_form.py                    # d = 65536 both ways, 10^6 and inf
    python bench/kernel_form.py --seeds 0 --d 65536

Prints each row's time (the row's own `seconds`, without interpreter start-up) and the peak
resident memory of its process, and the features/kernel time ratio at each d run both ways.
"""
import argparse
import json
import subprocess
import sys

ROW = r"""
import json, resource, sys
from gomaml.study import run_row, validate_config
seed, d, backend = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
cfg = validate_config({"backend": backend})
row, _ = run_row(cfg, seed, d if d == float("inf") else int(d))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": row["seconds"], "peak": peak, "bound": row["bound"],
                  "gap": row["gap"], "L_comparator": row["L_comparator"]}))
"""


def run(seed, d, backend):
    out = subprocess.run([sys.executable, "-c", ROW, str(seed), str(d), backend],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--d", default="65536,1000000,inf")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{'d':>8} {'seed':>4} {'backend':>8} {'seconds':>8} {'peak MiB':>9} {'bound':>10} "
          f"{'gap':>10}")
    for d in args.d.split(","):
        dv = float(d)
        backends = ["features", "kernel"] if dv <= 65536 else ["kernel"]
        total = {b: 0.0 for b in backends}
        for seed in seeds:
            for b in backends:
                r = run(seed, d, b)
                total[b] += r["seconds"]
                print(f"{d:>8} {seed:>4} {b:>8} {r['seconds']:>8.2f} {r['peak'] / 2**20:>9.0f} "
                      f"{r['bound']:>10.3e} {r['gap']:>10.3e}", flush=True)
        if len(backends) == 2:
            print(f"{d:>8}  features / kernel time over the seeds: "
                  f"{total['features'] / total['kernel']:.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
