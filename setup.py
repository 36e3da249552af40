"""Extension list, Cython directives and the OpenMP probe (metadata lives in pyproject.toml).

Build switches (environment variables):
  GOMAML_BOUNDSCHECK=1     bounds and wraparound checks on (debugging; slower)
  GOMAML_OPENMP=0          force a serial build; =1 force OpenMP without probing
  GOMAML_REQUIRE_OPENMP=1  fail the build instead of falling back to serial
  GOMAML_NATIVE=1          add -march=native (only for a build used on this machine)

The kernels are built once per instruction-set level (x86-64-v4, x86-64-v3, baseline) as the
modules _kernels_v4, _kernels_v3 and _kernels_base from one source (_kernels_impl.pxi), each
with its own -march, so the row operations inline; gomaml._kernels picks one at import.
Elsewhere (another compiler or architecture, or GOMAML_NATIVE=1) one module, _kernels_base.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

OPENMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n) num_threads(2)
    n += 1;
    printf("%d\n", n);
    return n == 2 ? 0 : 1;
}
"""


def _flag(name):
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"setup.py: {name}={value!r} is not one of 0/1/true/false/auto")


def _compiler():
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return cc.split()


def openmp_works():
    """Compile and run a two-thread OpenMP program; True when both steps succeed."""
    tmp = tempfile.mkdtemp(prefix="gomaml-omp-")
    try:
        src = os.path.join(tmp, "probe.c")
        exe = os.path.join(tmp, "probe")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        build = subprocess.run(_compiler() + ["-fopenmp", src, "-o", exe],
                               capture_output=True, text=True)
        if build.returncode != 0:
            return False
        run = subprocess.run([exe], capture_output=True, text=True)
        return run.returncode == 0
    except OSError:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def choose_openmp():
    forced = _flag("GOMAML_OPENMP")
    required = _flag("GOMAML_REQUIRE_OPENMP")
    if forced is False:
        if required:
            raise SystemExit("setup.py: GOMAML_OPENMP=0 contradicts GOMAML_REQUIRE_OPENMP=1")
        return False
    if forced is True or openmp_works():
        return True
    problem = "gomaml: the C compiler cannot build and run an OpenMP program"
    remedy = "Install an OpenMP-capable compiler (gcc, or clang with libomp) and rebuild."
    if required:
        raise SystemExit(f"{problem}, and GOMAML_REQUIRE_OPENMP=1, so the build stops. {remedy}")
    message = (f"{problem}; building the kernels SERIALLY (n_threads > 1 will run on one "
               f"thread). {remedy}")
    warnings.warn(message)
    print("WARNING: " + message, file=sys.stderr)
    return False


use_openmp = choose_openmp()
boundscheck = bool(_flag("GOMAML_BOUNDSCHECK"))
native = bool(_flag("GOMAML_NATIVE"))

compile_args = ["-O3", "-fno-math-errno"]
link_args = []
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION"),
          ("GOMAML_BOUNDSCHECK", "1" if boundscheck else "0"),
          ("GOMAML_NATIVE", "1" if native else "0")]
if use_openmp:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")
else:
    compile_args.append("-fopenmp-simd")  # SIMD pragmas only: needs no runtime library
if native:
    compile_args.append("-march=native")

directives = {
    "language_level": 3,
    "boundscheck": boundscheck,
    "wraparound": boundscheck,
    "initializedcheck": boundscheck,
    "cdivision": True,
    "embedsignature": True,
}

def _per_level_builds():
    """True when the compiler is gcc on x86-64 Linux (the -march levels exist there)."""
    if native or not sys.platform.startswith("linux"):
        return False
    import platform
    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        out = subprocess.run(_compiler() + ["--version"], capture_output=True, text=True)
    except OSError:
        return False
    return out.returncode == 0 and "clang" not in out.stdout.lower()


LEVELS = [("v4", "x86-64-v4"), ("v3", "x86-64-v3"), ("base", None)]
if not _per_level_builds():
    LEVELS = [("base", None)]


def kernels_extension(suffix, march):
    level_macro = [("GOMAML_ISA_LEVEL", f'"{march or "x86-64 baseline"}"')] \
        if len(LEVELS) > 1 else []
    return Extension(
        f"gomaml._kernels_{suffix}",
        [f"src/gomaml/_kernels_{suffix}.pyx"],
        include_dirs=[np.get_include(), "src/gomaml"],
        define_macros=macros + level_macro,
        extra_compile_args=compile_args + ([f"-march={march}"] if march else []),
        extra_link_args=link_args,
        depends=["src/gomaml/_kernels_impl.pxi", "src/gomaml/rowops.h",
                 "src/gomaml/lossvec.h", "src/gomaml/_pointloss.pxd"],
    )


extensions = [kernels_extension(suffix, march) for suffix, march in LEVELS]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        build_dir="build/cython",
        # the directives above depend on environment switches that Cython's timestamp
        # check cannot see, so always regenerate: a stale boundscheck build is worse than 20 s
        force=True,
        include_path=["src"],
    ),
)
