"""build_info(): how this installation of gomaml was built and what it will use."""
import numpy as np

from gomaml._threads import _kernels, WAIT_POLICY, SERIAL_WORK, default_threads
from gomaml._version import __version__


def _numpy_blas():
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:       # older NumPy without mode="dicts"
        return "unknown"


def build_info():
    """How this installation of gomaml was built and what it will use (`gomaml info`).

    Returns
    -------
    dict
        version; openmp (bool); max_threads (what n_threads=None uses for calls of at least
        serial_below row-element visits; smaller calls run on one thread); wait_policy (how
        idle OpenMP threads wait); blas (the BLAS behind NumPy/SciPy, used by the bounds;
        the kernels use their own SIMD loops); boundscheck (bool); isa (the instruction-set
        level of the kernels in use) and the levels available.

    Examples
    --------
    >>> import gomaml
    >>> info = gomaml.build_info()
    >>> {"version", "openmp", "max_threads", "blas", "boundscheck", "isa"} <= set(info)
    True
    """
    compiled = _kernels.compiled_info()
    return {
        "version": __version__,
        "openmp": compiled["openmp"],
        "max_threads": default_threads(),
        "serial_below": SERIAL_WORK,
        "wait_policy": WAIT_POLICY if compiled["openmp"] else "serial build",
        "blas": _numpy_blas(),
        "boundscheck": compiled["boundscheck"],
        "isa": compiled["isa"],
        "isa_available": list(_kernels.AVAILABLE),     # GOMAML_ISA forces one of these
        "numpy": np.__version__,
    }
