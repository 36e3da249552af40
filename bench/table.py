"""Meta-gradient time at the core issue's sizes, as a multiple of two memory-bandwidth bounds
and against the vectorised NumPy baseline (and JAX/PyTorch when installed), all measured in
this one run. Same as `gomaml bench`.

    python bench/table.py [--sizes A,B,C,D,E] [--losses squared,logistic]
                          [--dtype float64|float32] [--threads 2]

Bounds: bytes of support + query + labels divided by the best streaming-read bandwidth of
(1) a buffer 4x the last-level cache ("DRAM") and (2) a buffer the size of the data ("data"),
with the same thread count. Size A fits in the last-level cache: its "data" bound is a
cache-bandwidth bound.
"""
import sys

from gomaml.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench"] + sys.argv[1:]))
