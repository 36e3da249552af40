"""The compiled kernels for this CPU (private).

The kernels are built once per instruction-set level, each module with its own -march:
_kernels_v4 (x86-64-v4, AVX-512), _kernels_v3 (x86-64-v3, AVX2+FMA) and _kernels_base. This
module imports the best level the CPU supports (checked by the baseline module before a level's
code is loaded: a v4 module on a CPU without AVX-512 would fault) and re-exports its functions.
GOMAML_ISA=x86-64-v4|x86-64-v3|baseline forces a level; one the CPU lacks, or that was not
built, is an error. Results are bit-identical for any thread count within a level; between
levels FMA contraction changes the last bits.
"""
import importlib
import importlib.util
import os

#: level -> (module, the number __builtin_cpu_supports checks), best first
LEVELS = {"x86-64-v4": ("_kernels_v4", 4), "x86-64-v3": ("_kernels_v3", 3),
          "baseline": ("_kernels_base", 0)}


def _import(level):
    return importlib.import_module(f"gomaml.{LEVELS[level][0]}")


def _built_levels():
    base = _import("baseline")
    usable = [level for level, (name, number) in LEVELS.items()
              if level != "baseline" and base.cpu_supports(number)
              and importlib.util.find_spec(f"gomaml.{name}") is not None]
    return usable + ["baseline"]


#: the levels built into this installation that this CPU runs, best first
AVAILABLE = _built_levels()


def _choose():
    forced = os.environ.get("GOMAML_ISA", "").strip()
    if not forced:
        return AVAILABLE[0]
    if forced not in LEVELS:
        raise ImportError(f"GOMAML_ISA={forced!r}: expected one of {', '.join(LEVELS)}")
    if forced not in AVAILABLE:
        raise ImportError(f"GOMAML_ISA={forced!r}: this CPU or this build lacks it (available "
                          f"here: {', '.join(AVAILABLE)})")
    return forced


ISA = _choose()
_module = _import(ISA)
globals().update({k: v for k, v in vars(_module).items() if not k.startswith("__")})
