# Per-sample losses of theory.md §2: value, first and second derivative in the prediction z,
# in double, in overflow-free forms. One tiny inline function each; `loss_eval` dispatches.
from libc.math cimport exp, log1p, fabs, hypot

cdef enum:
    SQUARED = 0
    LOGISTIC = 1
    PSEUDO_HUBER = 2


cdef inline void squared_eval(double z, double y, double* value, double* d1,
                              double* d2) noexcept nogil:
    cdef double r = z - y
    value[0] = r * r
    d1[0] = 2.0 * r
    d2[0] = 2.0


cdef inline void logistic_eval(double z, double y, double* value, double* d1,
                               double* d2) noexcept nogil:
    # t = yz; e = exp(-|t|) in (0, 1] never overflows
    cdef double t = y * z
    cdef double e = exp(-fabs(t))
    cdef double one_e = 1.0 + e
    value[0] = (-t if t < 0.0 else 0.0) + log1p(e)         # logaddexp(0, -t)
    d1[0] = -y * ((e / one_e) if t >= 0.0 else (1.0 / one_e))  # -y expit(-t)
    d2[0] = e / (one_e * one_e)                             # expit(t) expit(-t)


cdef inline void pseudo_huber_eval(double z, double y, double delta, double* value,
                                   double* d1, double* d2) noexcept nogil:
    cdef double r = z - y
    cdef double h = hypot(1.0, r / delta)
    value[0] = r * (r / (1.0 + h))   # = δ²(√(1+(r/δ)²) − 1), no cancellation, no r² overflow
    d1[0] = r / h
    d2[0] = 1.0 / (h * h * h)


cdef inline void loss_eval(int code, double delta, double z, double y, double* value,
                           double* d1, double* d2) noexcept nogil:
    if code == SQUARED:
        squared_eval(z, y, value, d1, d2)
    elif code == LOGISTIC:
        logistic_eval(z, y, value, d1, d2)
    else:
        pseudo_huber_eval(z, y, delta, value, d1, d2)


cdef inline void loss_derivs(int code, double delta, double z, double y, double* d1,
                             double* d2) noexcept nogil:
    """l' and l'' alone (the inner step needs no value: no log1p for the logistic loss).
    The same formulas as loss_eval's, so the same bits."""
    cdef double t, e, one_e, r, h
    if code == SQUARED:
        d1[0] = 2.0 * (z - y)
        d2[0] = 2.0
    elif code == LOGISTIC:
        t = y * z
        e = exp(-fabs(t))
        one_e = 1.0 + e
        d1[0] = -y * ((e / one_e) if t >= 0.0 else (1.0 / one_e))
        d2[0] = e / (one_e * one_e)
    else:
        r = z - y
        h = hypot(1.0, r / delta)
        d1[0] = r / h
        d2[0] = 1.0 / (h * h * h)
