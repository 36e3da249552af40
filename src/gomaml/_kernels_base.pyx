# The typed kernels compiled for one instruction-set level (setup.py sets -march); the source
# is _kernels_impl.pxi, shared by every level. gomaml._kernels picks the module at import.
include "_kernels_impl.pxi"
