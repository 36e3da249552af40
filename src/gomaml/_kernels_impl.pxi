# Typed kernels of gomaml (private). theory.md §3: per task the inner loop, the query risk and its
# gradient, and the backward pass v <- (I - eta H^(t)) v, parallel over tasks.
#
# Layout: packed rows (CSR style, theory.md §1): task i owns support rows s_ptr[i]:s_ptr[i+1] and
# query rows q_ptr[i]:q_ptr[i+1]. All accumulation is double.
#
# Determinism: tasks are cut into blocks whose boundaries the caller fixes (block_ptr, from (m, d)),
# never by the thread count; each block sums its tasks in order into its own row of
# `block_grad`, and the caller adds the rows in a fixed order. Any n_threads gives the same bits.
#
# Schedule: meta_objective's blocks are split statically (each thread a contiguous run of
# tasks, streamed in order). Measured here against dynamic chunks of one block: D 1.7 vs 2.1 ms
# alone and 2.9 vs 3.8 ms beside a CPU-bound process, A and B within 3 %; two processes at once
# lose nothing (bench/shared_machine.py). The access floor uses the same schedule.
from cython.parallel cimport prange, threadid
from libc.stdint cimport int64_t
from libc.math cimport sqrt, exp, acos
from libc.string cimport memcpy, memset
from cython cimport floating

from gomaml._pointloss cimport loss_eval, loss_derivs, SQUARED, LOGISTIC

import numpy as np

cdef extern from "rowops.h" nogil:
    double gm_dot_d(const double* x, const double* v, Py_ssize_t n)
    double gm_dot_f(const float* x, const double* v, Py_ssize_t n)
    void gm_axpy_d(double a, const double* x, double* y, Py_ssize_t n)
    void gm_axpy_f(double a, const float* x, double* y, Py_ssize_t n)
    double gm_sum_d(const double* x, Py_ssize_t n)
    double gm_sum_f(const float* x, Py_ssize_t n)
    void gm_dotb_d(int R, const double* x, Py_ssize_t stride, const double* v, Py_ssize_t n,
                   double* out, const double* pf)
    void gm_dotb_f(int R, const float* x, Py_ssize_t stride, const double* v, Py_ssize_t n,
                   double* out, const float* pf)
    void gm_axpyb_d(int R, const double* c, const double* x, Py_ssize_t stride, double* y,
                    Py_ssize_t n)
    void gm_axpyb_f(int R, const double* c, const float* x, Py_ssize_t stride, double* y,
                    Py_ssize_t n)
    void gm_dotm_d(int R, const double* x, const double* y, Py_ssize_t stride, Py_ssize_t n,
                   double* out)
    void gm_dotm_f(int R, const float* x, const double* y, Py_ssize_t stride, Py_ssize_t n,
                   double* out)
    void gm_axpym_d(int R, const double* c, Py_ssize_t ks, const double* x, Py_ssize_t xstride,
                    double* y, Py_ssize_t stride, Py_ssize_t n)
    void gm_axpym_f(int R, const double* c, Py_ssize_t ks, const float* x, Py_ssize_t xstride,
                    double* y, Py_ssize_t stride, Py_ssize_t n)
    int GM_MULTI_MAX
    int gm_block_rows(Py_ssize_t k_total, Py_ssize_t done)
    void gm_prefetch_span(const void* p, Py_ssize_t bytes)
    Py_ssize_t GM_TASK_AHEAD_BYTES
    int gm_openmp_enabled()
    int gm_openmp_max_threads()
    int gm_cpu_supports(int level)
    const char* gm_isa()
    int GOMAML_BOUNDSCHECK

cdef extern from "lossvec.h" nogil:
    void gm_logistic_batch(const double* z, const double* y, double* value, double* d1,
                           double* d2)

# what meta_objective computes
MODE_VALUE = 0        # L only
MODE_FIRST_ORDER = 1  # L and sum_i p_i grad R(theta_i; Q_i)   (J_i = I)
MODE_EXACT = 2        # L and sum_i p_i J_i^T grad R(theta_i; Q_i)


def compiled_info():
    """What the extension was compiled with: OpenMP, bounds checking, the row-loop ISA."""
    return {
        "openmp": bool(gm_openmp_enabled()),
        "max_threads": gm_openmp_max_threads(),
        "boundscheck": bool(GOMAML_BOUNDSCHECK),
        "isa": gm_isa().decode(),
    }


def cpu_supports(int level):
    """Whether this CPU runs x86-64-v<level> code (level 4, 3; 0 is the baseline)."""
    return bool(gm_cpu_supports(level))


def omp_max_threads():
    """omp_get_max_threads(): OMP_NUM_THREADS, or a later omp_set_num_threads (threadpoolctl);
    1 in a serial build."""
    return gm_openmp_max_threads()


cdef inline double row_dot(const floating* x, const double* v, Py_ssize_t d) noexcept nogil:
    if floating is double:
        return gm_dot_d(x, v, d)
    else:
        return gm_dot_f(x, v, d)


cdef inline void row_axpy(double a, const floating* x, double* y, Py_ssize_t d) noexcept nogil:
    if floating is double:
        gm_axpy_d(a, x, y, d)
    else:
        gm_axpy_f(a, x, y, d)


cdef inline void vec_axpy(double a, const double* x, double* y, Py_ssize_t d) noexcept nogil:
    """y += a x: the one-row block axpy, explicitly vectorised (gm_axpy_d's bits, y[k] + a x[k]
    in one fused multiply-add per element, in fewer instructions)."""
    gm_axpyb_d(1, &a, x, d, y, d)


cdef inline void blk_dot(int R, const floating* x, Py_ssize_t d, const double* v, double* out,
                         const floating* pf) noexcept nogil:
    """out[r] <- x_r . v for the R rows of a block (stride d); prefetch the block at pf."""
    if floating is double:
        gm_dotb_d(R, x, d, v, d, out, pf)
    else:
        gm_dotb_f(R, x, d, v, d, out, pf)


cdef inline void blk_axpy(int R, const double* c, const floating* x, Py_ssize_t d,
                          double* y) noexcept nogil:
    """y += sum_r c[r] x_r over the R rows of a block, in one sweep."""
    if floating is double:
        gm_axpyb_d(R, c, x, d, y, d)
    else:
        gm_axpyb_f(R, c, x, d, y, d)


cdef inline void multi_dot(int R, const floating* x, double* y, Py_ssize_t d,
                           double* out) noexcept nogil:
    """out[r] <- x . y_r for R <= GM_MULTI_MAX double rows y_r (stride d), each with the bits
    of row_dot(x, y_r, d)."""
    if floating is double:
        gm_dotm_d(R, x, y, d, d, out)
    else:
        gm_dotm_f(R, x, y, d, d, out)


cdef inline void multi_axpy(int R, const double* c, Py_ssize_t ks, const floating* X,
                            double* y, Py_ssize_t d) noexcept nogil:
    """y_r += sum_a c[r·ks + a] x_a over the ks rows of X, for R <= GM_MULTI_MAX double rows
    y_r (stride d), each with the bits of row_axpy for a = 0, 1, ..."""
    if floating is double:
        gm_axpym_d(R, c, ks, X, d, y, d, d)
    else:
        gm_axpym_f(R, c, ks, X, d, y, d, d)


cdef inline void loss_batch(int code, double delta, int S, const double* z,
                            const floating* y, double* l0, double* l1,
                            double* l2) noexcept nogil:
    """l, l', l'' (l0 NULL: derivatives alone) of the first S <= 8 of z[8] (all 8 finite:
    padding lanes are computed too) against y[:S], into 8-arrays: the logistic loss in one
    vector call (lossvec.h), the others row by row (_pointloss.pxd)."""
    cdef int r
    cdef double yb[8]
    if code == LOGISTIC:
        for r in range(8):
            yb[r] = y[r] if r < S else 1.0
        gm_logistic_batch(z, yb, l0, l1, l2)
    elif l0 == NULL:
        for r in range(S):
            loss_derivs(code, delta, z[r], y[r], &l1[r], &l2[r])
    else:
        for r in range(S):
            loss_eval(code, delta, z[r], y[r], &l0[r], &l1[r], &l2[r])


cdef inline void super_dot(const floating* X, Py_ssize_t k, Py_ssize_t j, Py_ssize_t S,
                           Py_ssize_t d, const double* v, double* z,
                           const floating* pf_end) noexcept nogil:
    """z[r] <- x_(j+r) . v for the S rows from j of a pass over k rows (the whole pass: j = 0,
    S = k), in the pass's row blocks (gm_block_rows), each block prefetching the next, the
    last one pf_end."""
    cdef Py_ssize_t q = j
    cdef int R
    while q < j + S:
        R = gm_block_rows(k, q)
        blk_dot(R, X + q * d, d, v, z + (q - j), X + (q + R) * d if q + R < k else pf_end)
        q += R


cdef void inner_loop(const floating* Xs, const floating* ys, Py_ssize_t ks, Py_ssize_t d,
                     const double* theta, int code, double delta, double eta, int T,
                     double* th, double* g, double* h2,
                     const floating* pf_end=NULL) noexcept nogil:
    """th <- theta after T inner steps on the support; h2[t*ks + j] <- l''(x_j^T th^(t))
    when h2 is not NULL (the backward pass needs them, theory.md §3 'Memory'). Rows go in
    row blocks (gm_block_rows), each block's losses in one batch; pf_end: the
    rows that follow this pass (prefetched meanwhile)."""
    cdef Py_ssize_t j, t
    cdef int S, r
    cdef double z[8]
    cdef double c[8]
    cdef double l2[8]
    memset(z, 0, sizeof(z))                     # loss_batch reads all 8 lanes
    memcpy(th, theta, d * sizeof(double))
    for t in range(T):
        memset(g, 0, d * sizeof(double))
        j = 0
        while j < ks:
            S = gm_block_rows(ks, j)
            super_dot(Xs, ks, j, S, d, th, z, Xs if t + 1 < T else pf_end)
            loss_batch(code, delta, S, z, ys + j, NULL, c, l2)
            if h2 != NULL:
                for r in range(S):
                    h2[t * ks + j + r] = l2[r]
            blk_axpy(S, c, Xs + j * d, d, g)          # the same rows, still in cache
            j += S
        vec_axpy(-eta / ks, g, th, d)


cdef double query_risk(const floating* Xq, const floating* yq, Py_ssize_t kq, Py_ssize_t d,
                       const double* th, int code, double delta, double* v,
                       const floating* pf_end=NULL) noexcept nogil:
    """Returns R(th; Q); writes kq · grad R(th; Q) (the sum over the query rows, not yet
    divided by kq: the caller folds 1/kq into its weight) into v unless v is NULL."""
    cdef Py_ssize_t b = 0
    cdef int S, r
    cdef double z[8]
    cdef double c[8]
    cdef double l0[8]
    cdef double l2[8]
    cdef double risk = 0.0
    memset(z, 0, sizeof(z))                     # loss_batch reads all 8 lanes
    if v != NULL:
        memset(v, 0, d * sizeof(double))
    while b < kq:
        S = gm_block_rows(kq, b)
        super_dot(Xq, kq, b, S, d, th, z, pf_end)
        loss_batch(code, delta, S, z, yq + b, l0, c, l2)
        for r in range(S):
            risk += l0[r]
        if v != NULL:
            blk_axpy(S, c, Xq + b * d, d, v)
        b += S
    return risk / kq


cdef void backward(const floating* Xs, Py_ssize_t ks, Py_ssize_t d, double eta, int T,
                   const double* h2, double* v, double* w,
                   const floating* pf_end=NULL) noexcept nogil:
    """v <- (I - eta H^(0)) ... (I - eta H^(T-1)) v, H^(t) v = (1/ks) Xs^T (h2_t * (Xs v))."""
    cdef Py_ssize_t j, t
    cdef int R, r
    cdef double z[8]
    cdef double c[8]
    cdef const floating* nxt
    for t in range(T - 1, -1, -1):
        memset(w, 0, d * sizeof(double))
        j = 0
        while j < ks:
            R = gm_block_rows(ks, j)
            nxt = Xs + (j + R) * d if j + R < ks else (Xs if t > 0 else pf_end)
            blk_dot(R, Xs + j * d, d, v, z, nxt)
            for r in range(R):
                c[r] = h2[t * ks + j + r] * z[r]
            blk_axpy(R, c, Xs + j * d, d, w)
            j += R
        vec_axpy(-eta / ks, w, v, d)


cdef void meta_block(Py_ssize_t lo, Py_ssize_t hi, const int64_t* task_ids,
                     const floating* Xs, const floating* ys, const int64_t* s_ptr,
                     const floating* Xq, const floating* yq, const int64_t* q_ptr,
                     const double* weights, const double* theta, Py_ssize_t d,
                     int code, double delta, double eta, int T, int mode,
                     double* loss_out, double* grad_out, double* scratch) noexcept nogil:
    """Entries lo..hi-1 of task_ids, in order: loss_out[0] += w_m R_i,
    grad_out += w_m J_i^T grad R_i, with i = task_ids[m] and w_m = weights[m]."""
    cdef Py_ssize_t m, i, ks, kq, i1, row = d * sizeof(floating)
    cdef double risk
    cdef double* th = scratch
    cdef double* g = scratch + d
    cdef double* v = scratch + 2 * d
    cdef double* h2 = scratch + 3 * d
    cdef const floating* xs
    cdef const floating* nxt
    for m in range(lo, hi):
        i = task_ids[m]
        ks = s_ptr[i + 1] - s_ptr[i]
        kq = q_ptr[i + 1] - q_ptr[i]
        xs = Xs + s_ptr[i] * d
        # the access sequence Xs_i, Xq_i, (Xs_i,) Xs_next: each pass prefetches the next
        nxt = Xs + s_ptr[task_ids[m + 1]] * d if m + 1 < hi else NULL
        if m + 1 < hi:                 # task-ahead prefetch: all of a small next task, now
            i1 = task_ids[m + 1]
            if (s_ptr[i1 + 1] - s_ptr[i1] + q_ptr[i1 + 1] - q_ptr[i1]) * row \
                    <= GM_TASK_AHEAD_BYTES:
                gm_prefetch_span(nxt, (s_ptr[i1 + 1] - s_ptr[i1]) * row)
                gm_prefetch_span(Xq + q_ptr[i1] * d, (q_ptr[i1 + 1] - q_ptr[i1]) * row)
        inner_loop(xs, ys + s_ptr[i], ks, d, theta, code, delta, eta, T,
                   th, g, h2 if mode == 2 else NULL, Xq + q_ptr[i] * d)
        risk = query_risk(Xq + q_ptr[i] * d, yq + q_ptr[i], kq, d, th, code, delta,
                          v if mode != 0 else NULL, xs if mode == 2 else nxt)
        loss_out[0] += weights[m] * risk
        if mode == 2:
            backward(xs, ks, d, eta, T, h2, v, g, nxt)
        if mode != 0:                  # v is kq · (J_i^T) grad R_i: J_i^T is linear
            vec_axpy(weights[m] / kq, v, grad_out, d)


def _check_layout(Xs, ys, s_ptr, Xq, yq, q_ptr, Py_ssize_t n):
    if s_ptr.shape[0] != n + 1 or q_ptr.shape[0] != n + 1:
        raise ValueError("offsets must have length n_tasks + 1")
    if ys.shape[0] != Xs.shape[0] or yq.shape[0] != Xq.shape[0]:
        raise ValueError("labels and rows differ in length")
    if Xq.shape[1] != Xs.shape[1]:
        raise ValueError("support and query differ in d")
    if s_ptr[0] != 0 or s_ptr[n] != Xs.shape[0] or q_ptr[0] != 0 or q_ptr[n] != Xq.shape[0]:
        raise ValueError("offsets do not cover the rows")


def scratch_size(Py_ssize_t d, int inner_steps, Py_ssize_t max_support):
    """Doubles of per-thread scratch that meta_objective needs."""
    return 3 * d + inner_steps * max_support


def stacked_scratch_size(Py_ssize_t d, Py_ssize_t max_support):
    """Doubles of per-thread scratch that stacked_rows needs."""
    return 3 * d + GM_MULTI_MAX * max_support


def meta_objective(const floating[:, ::1] Xs, const floating[::1] ys,
                   const int64_t[::1] s_ptr,
                   const floating[:, ::1] Xq, const floating[::1] yq,
                   const int64_t[::1] q_ptr,
                   const int64_t[::1] task_ids, const double[::1] weights,
                   const int64_t[::1] block_ptr, const double[::1] theta,
                   int loss_code, double delta, double inner_lr, int inner_steps, int mode,
                   double[::1] block_loss, double[:, ::1] block_grad,
                   double[:, ::1] scratch, int n_threads):
    """Per-block partial sums of sum_m w_m R(theta_i; Q_i) (i = task_ids[m]) and its gradient.

    Inputs: packed support (sum ks, d), labels, offsets (n+1); the same for the query; the
    tasks to include (m,) and their weights (m,); block b is the run
    task_ids[block_ptr[b]:block_ptr[b + 1]] (block_ptr (B+1,) increasing from 0 to m); theta
    (d,). Outputs (zeroed here): block_loss (B,), block_grad (B, d); the caller sums the rows
    in block order. Scratch (n_threads, scratch_size(d, T, max ks)).
    """
    cdef Py_ssize_t n = s_ptr.shape[0] - 1, m = task_ids.shape[0], d = Xs.shape[1]
    cdef Py_ssize_t n_blocks = block_loss.shape[0], b
    _check_layout(Xs, ys, s_ptr, Xq, yq, q_ptr, n)
    if weights.shape[0] != m or theta.shape[0] != d or block_grad.shape[0] != n_blocks \
            or block_grad.shape[1] != d:
        raise ValueError("weights, theta or block_grad has the wrong shape")
    if n_blocks < 1 or n_blocks > m or n_threads < 1 or scratch.shape[0] < n_threads:
        raise ValueError("bad block or thread count")
    if block_ptr.shape[0] != n_blocks + 1 or block_ptr[0] != 0 or block_ptr[n_blocks] != m:
        raise ValueError("block_ptr must run from 0 to m in B + 1 entries")
    for b in range(n_blocks):
        if block_ptr[b + 1] <= block_ptr[b]:
            raise ValueError("block_ptr must be strictly increasing")
    if mode not in (0, 1, 2) or inner_steps < 1:
        raise ValueError("bad mode or inner_steps")
    cdef Py_ssize_t j, i, ks_max = 0
    for j in range(m):
        i = task_ids[j]
        if i < 0 or i >= n:
            raise ValueError("task id out of range")
        ks_max = max(ks_max, s_ptr[i + 1] - s_ptr[i])
    if scratch.shape[1] < scratch_size(d, inner_steps, ks_max):
        raise ValueError("scratch too small")
    block_loss[:] = 0.0
    block_grad[:, :] = 0.0
    with nogil:
        for b in prange(n_blocks, num_threads=n_threads, schedule="static"):
            meta_block(block_ptr[b], block_ptr[b + 1], &task_ids[0],
                       &Xs[0, 0], &ys[0], &s_ptr[0], &Xq[0, 0], &yq[0], &q_ptr[0],
                       &weights[0], &theta[0], d, loss_code, delta, inner_lr, inner_steps,
                       mode, &block_loss[b], &block_grad[b, 0], &scratch[threadid(), 0])


def adapt_tasks(const floating[:, ::1] Xs, const floating[::1] ys,
                const int64_t[::1] s_ptr, const double[::1] theta,
                int loss_code, double delta, double inner_lr, int inner_steps,
                double[:, ::1] out, double[:, ::1] scratch, int n_threads,
                const double[::1] theta2=None, double[:, ::1] out2=None):
    """out[i] <- adapted parameter theta_i (n, d); with theta2 and out2 also out2[i] <- the
    adapted theta2, while task i's rows are in cache (one pass over Xs). Scratch
    (n_threads, d)."""
    cdef Py_ssize_t n = out.shape[0], d = Xs.shape[1], i
    cdef bint two = theta2 is not None
    if s_ptr.shape[0] != n + 1 or ys.shape[0] != Xs.shape[0] or theta.shape[0] != d:
        raise ValueError("layout mismatch")
    if out.shape[1] != d or scratch.shape[0] < n_threads or scratch.shape[1] < d:
        raise ValueError("out or scratch has the wrong shape")
    if (out2 is not None and not two) or two and (
            out2 is None or theta2.shape[0] != d or out2.shape[0] != n or out2.shape[1] != d):
        raise ValueError("theta2 and out2 must come together, shaped as theta and out")
    if s_ptr[0] != 0 or s_ptr[n] != Xs.shape[0] or inner_steps < 1 or n_threads < 1:
        raise ValueError("bad offsets, inner_steps or n_threads")
    with nogil:
        for i in prange(n, num_threads=n_threads, schedule="dynamic", chunksize=1):
            inner_loop(&Xs[s_ptr[i], 0], &ys[s_ptr[i]], s_ptr[i + 1] - s_ptr[i], d,
                       &theta[0], loss_code, delta, inner_lr, inner_steps,
                       &out[i, 0], &scratch[threadid(), 0], NULL)
            if two:
                inner_loop(&Xs[s_ptr[i], 0], &ys[s_ptr[i]], s_ptr[i + 1] - s_ptr[i], d,
                           &theta2[0], loss_code, delta, inner_lr, inner_steps,
                           &out2[i, 0], &scratch[threadid(), 0], NULL)


def task_risks(const floating[:, ::1] Xs, const floating[::1] ys,
               const int64_t[::1] s_ptr,
               const floating[:, ::1] Xq, const floating[::1] yq,
               const int64_t[::1] q_ptr, const double[::1] theta,
               int loss_code, double delta, double inner_lr, int inner_steps,
               double[::1] before, double[::1] after, double[:, ::1] scratch, int n_threads):
    """before[i] <- R(theta; Q_i), after[i] <- R(theta_i; Q_i). Scratch (n_threads, 2d)."""
    cdef Py_ssize_t n = before.shape[0], d = Xs.shape[1], i
    _check_layout(Xs, ys, s_ptr, Xq, yq, q_ptr, n)
    if after.shape[0] != n or theta.shape[0] != d or scratch.shape[0] < n_threads \
            or scratch.shape[1] < 2 * d or inner_steps < 1 or n_threads < 1:
        raise ValueError("bad output, scratch, inner_steps or n_threads")
    with nogil:
        for i in prange(n, num_threads=n_threads, schedule="dynamic", chunksize=1):
            before[i] = query_risk(&Xq[q_ptr[i], 0], &yq[q_ptr[i]], q_ptr[i + 1] - q_ptr[i], d,
                                   &theta[0], loss_code, delta, NULL)
            inner_loop(&Xs[s_ptr[i], 0], &ys[s_ptr[i]], s_ptr[i + 1] - s_ptr[i], d,
                       &theta[0], loss_code, delta, inner_lr, inner_steps,
                       &scratch[threadid(), 0], &scratch[threadid(), d], NULL)
            after[i] = query_risk(&Xq[q_ptr[i], 0], &yq[q_ptr[i]], q_ptr[i + 1] - q_ptr[i], d,
                                  &scratch[threadid(), 0], loss_code, delta, NULL)


def loss_arrays(int loss_code, double delta, const double[::1] z, const double[::1] y,
                double[::1] value, double[::1] d1, double[::1] d2):
    """value, d1, d2 <- l, l', l'' of each (z_j, y_j), computed as the kernels compute them
    (loss_batch, 8 at a time): the same bits."""
    cdef Py_ssize_t j, m = z.shape[0]
    cdef int r, S
    cdef double zb[8]
    cdef double o0[8]
    cdef double o1[8]
    cdef double o2[8]
    if y.shape[0] != m or value.shape[0] != m or d1.shape[0] != m or d2.shape[0] != m:
        raise ValueError("length mismatch")
    with nogil:
        for j in range(0, m, 8):
            S = min(8, m - j)
            for r in range(8):
                zb[r] = z[j + r] if r < S else 0.0
            loss_batch[double](loss_code, delta, S, zb, &y[j], o0, o1, o2)
            for r in range(S):
                value[j + r] = o0[r]
                d1[j + r] = o1[r]
                d2[j + r] = o2[r]


def stream_read(const double[::1] buf, double[::1] partial, int n_threads):
    """Reads buf once, split into len(partial) contiguous chunks over n_threads threads;
    partial[c] <- sum of chunk c. The bandwidth probe: same threads and ISA as the kernels."""
    cdef Py_ssize_t n = buf.shape[0], nc = partial.shape[0], c
    if nc < 1 or nc > n or n_threads < 1:
        raise ValueError("bad chunk or thread count")
    with nogil:
        for c in prange(nc, num_threads=n_threads, schedule="static"):
            partial[c] = gm_sum_d(&buf[(c * n) // nc], ((c + 1) * n) // nc - (c * n) // nc)


cdef void stacked_task(const floating* Xs, const floating* ys, Py_ssize_t ks,
                       const floating* Xq, const floating* yq, Py_ssize_t kq, Py_ssize_t d,
                       double scale, double eta, int T, const double* zeros,
                       double* M, float* M32, double* norms2, double* t, double* b,
                       double* g, double* u) noexcept nogil:
    """One task's rows of theory.md §5's stacked system (squared loss): M_b <- scale·Xq_b A,
    A = (I − 2ηΣs)^T (applied as T times y <- y − (2η/ks) Σ_a (x_a·y) x_a, no d×d matrix),
    t_b <- scale·(yq_b − Xq_b·b_i), b_i the inner loop run from θ = 0; M32 (unless NULL)
    <- float32(M_b), norms2 (unless NULL) <- ‖M_b‖² (gm_dot_d). The query rows go
    GM_MULTI_MAX at a time, sharing the support rows' loads; each row's bits are those of
    one row alone (multi_dot, multi_axpy). u: GM_MULTI_MAX·ks."""
    cdef Py_ssize_t a, r, r0, k, step
    cdef int R
    cdef double* y
    cdef double dots[8]                         # GM_MULTI_MAX (4) used
    cdef double c = 2.0 * eta / ks
    inner_loop(Xs, ys, ks, d, zeros, SQUARED, 1.0, eta, T, b, g, NULL)
    r0 = 0
    while r0 < kq:
        R = <int>min(<Py_ssize_t>GM_MULTI_MAX, kq - r0)
        y = M + r0 * d
        for r in range(R):
            for k in range(d):
                y[r * d + k] = Xq[(r0 + r) * d + k]
        for step in range(T):
            for a in range(ks):                 # all coefficients first: y changes below
                multi_dot(R, Xs + a * d, y, d, dots)
                for r in range(R):
                    u[r * ks + a] = -(c * dots[r])
            multi_axpy(R, u, ks, Xs, y, d)
        for r in range(R):
            for k in range(d):
                y[r * d + k] *= scale
            if M32 != NULL:
                for k in range(d):
                    M32[(r0 + r) * d + k] = <float>y[r * d + k]
            if norms2 != NULL:
                norms2[r0 + r] = gm_dot_d(y + r * d, y + r * d, d)
            t[r0 + r] = scale * (yq[r0 + r] - row_dot(Xq + (r0 + r) * d, b, d))
        r0 += R


def stacked_rows(const floating[:, ::1] Xs, const floating[::1] ys, const int64_t[::1] s_ptr,
                 const floating[:, ::1] Xq, const floating[::1] yq, const int64_t[::1] q_ptr,
                 const double[::1] weights, double inner_lr, int inner_steps,
                 double[:, ::1] M, float[:, ::1] M32, double[::1] norms2, double[::1] t,
                 double[:, ::1] scratch, int n_threads):
    """The stacked least-squares system of the squared-loss minimiser, parallel over tasks:
    M (sum kq, d) and t (sum kq,), task i's rows scaled by sqrt(p_i/kq_i); M32 its float32
    rounding and norms2 its rows' squared norms (shapes (0, d), (0,): not wanted). Scratch
    (n_threads, stacked_scratch_size(d, max ks))."""
    cdef Py_ssize_t n = weights.shape[0], d = Xs.shape[1], i, ks_max = 0
    _check_layout(Xs, ys, s_ptr, Xq, yq, q_ptr, n)
    if M.shape[0] != Xq.shape[0] or M.shape[1] != d or t.shape[0] != Xq.shape[0] \
            or M32.shape[1] != d or (M32.shape[0] != 0 and M32.shape[0] != Xq.shape[0]) \
            or (norms2.shape[0] != 0 and norms2.shape[0] != Xq.shape[0]):
        raise ValueError("M, M32, norms2 or t has the wrong shape")
    for i in range(n):
        ks_max = max(ks_max, s_ptr[i + 1] - s_ptr[i])
    if scratch.shape[0] < n_threads or scratch.shape[1] < stacked_scratch_size(d, ks_max) \
            or inner_steps < 1 or n_threads < 1:
        raise ValueError("bad scratch, inner_steps or n_threads")
    cdef double* base
    cdef float* m32 = &M32[0, 0] if M32.shape[0] > 0 else NULL
    cdef double* nrm = &norms2[0] if norms2.shape[0] > 0 else NULL
    with nogil:
        for i in prange(n, num_threads=n_threads, schedule="dynamic", chunksize=1):
            base = &scratch[threadid(), 0]
            memset(base, 0, d * sizeof(double))          # the zero θ of the inner loop
            stacked_task(&Xs[s_ptr[i], 0], &ys[s_ptr[i]], s_ptr[i + 1] - s_ptr[i],
                         &Xq[q_ptr[i], 0], &yq[q_ptr[i]], q_ptr[i + 1] - q_ptr[i], d,
                         sqrt(weights[i] / (q_ptr[i + 1] - q_ptr[i])), inner_lr,
                         inner_steps, base, &M[q_ptr[i], 0],
                         m32 + q_ptr[i] * d if m32 != NULL else NULL,
                         nrm + q_ptr[i] if nrm != NULL else NULL, &t[q_ptr[i]],
                         base + d, base + 2 * d, base + 3 * d)


# ---- Gram blocks of the kernels (kernels.py): the elementwise pass after a BLAS product ----
cdef enum:
    GRAM_RBF = 0     # exp(-0.5·max(nx + ny - 2·G, 0))          (G = x·y of scaled inputs)
    GRAM_RELU = 1    # (nx·ny/π)(sin t + (π - t) cos t), cos t = G/(nx·ny)   (arc-cosine, 1)
    GRAM_NTK = 2     # G·(π - t)/(2π)
KERNEL_RBF, KERNEL_RELU, KERNEL_NTK = GRAM_RBF, GRAM_RELU, GRAM_NTK


def gram_finish(double[:, ::1] G, const double[::1] nx, const double[::1] ny, int kind,
                int n_threads):
    """Turn the inner products G (m, k) into the kernel's values in place, parallel over
    rows (elementwise: the same bits for any thread count). nx, ny: squared norms (RBF) or
    norms (ReLU, NTK) of the rows of X and Y."""
    cdef Py_ssize_t m = G.shape[0], k = G.shape[1], i, j
    cdef double c, t, g, nn
    cdef double pi = 3.141592653589793
    if nx.shape[0] != m or ny.shape[0] != k or kind < 0 or kind > 2 or n_threads < 1:
        raise ValueError("gram_finish: bad shapes, kind or n_threads")
    with nogil:
        for i in prange(m, num_threads=n_threads, schedule="static"):
            for j in range(k):
                g = G[i, j]
                if kind == GRAM_RBF:
                    t = nx[i] + ny[j] - 2.0 * g
                    G[i, j] = exp(-0.5 * (t if t > 0.0 else 0.0))
                else:
                    nn = nx[i] * ny[j]
                    c = g / nn if nn > 0.0 else 0.0
                    c = 1.0 if c > 1.0 else (-1.0 if c < -1.0 else c)
                    t = acos(c)
                    if kind == GRAM_RELU:
                        G[i, j] = nn / pi * (sqrt(1.0 - c * c) + (pi - t) * c)
                    else:
                        G[i, j] = g * (pi - t) / (2.0 * pi)


# ---- the pair operator of Theorem 1's representation term (bounds.PairOperator) ---------------
# Pairs (a, b) of one task are packed a-major from p_ptr[i]: entry p_ptr[i] + a·kq_i + b.
# Every task writes only its own entries: no reduction across tasks, any thread count gives
# the same bits.

def pair_blocks(const double[:, ::1] Xs, const int64_t[::1] s_ptr, const double[:, ::1] Xq,
                const int64_t[::1] q_ptr, const int64_t[::1] p_ptr, double[::1] G,
                int n_threads):
    """G[p_ptr[i] + a·kq + b] = x_aᵀ z_b for every task i: the blocks Xs_i Xq_iᵀ, the query
    rows in the passes' row blocks (gm_block_rows) against each support row: measured at
    n = 1000, k = 10, d = 100 (2 threads, blocks of 4 then) 1.1-1.5 ms, against 2.1-2.7 ms
    for 32-lane dots."""
    cdef Py_ssize_t n = s_ptr.shape[0] - 1, d = Xs.shape[1], i, a, b, ks, kq
    if q_ptr.shape[0] != n + 1 or p_ptr.shape[0] != n + 1 or Xq.shape[1] != d \
            or G.shape[0] != p_ptr[n] or n_threads < 1:
        raise ValueError("pair_blocks: inconsistent shapes")
    cdef int R
    with nogil:
        for i in prange(n, num_threads=n_threads, schedule="dynamic", chunksize=4):
            ks = s_ptr[i + 1] - s_ptr[i]
            kq = q_ptr[i + 1] - q_ptr[i]
            for a in range(ks):
                b = 0
                while b < kq:                # row blocks of the query rows against x_a
                    R = gm_block_rows(kq, b)
                    blk_dot(R, &Xq[q_ptr[i] + b, 0], d, &Xs[s_ptr[i] + a, 0],
                            &G[p_ptr[i] + a * kq + b], NULL)
                    b = b + R


def pair_expand(const double[::1] values, const int64_t[::1] s_ptr, const int64_t[::1] q_ptr,
                const int64_t[::1] p_ptr, double[::1] out, int n_threads):
    """out[p_ptr[i] + a·kq + b] = values[q_ptr[i] + b]: a per-query vector broadcast over the
    support points a of each task's pairs (a-major)."""
    cdef Py_ssize_t n = s_ptr.shape[0] - 1, i, a, b, ks, kq
    if q_ptr.shape[0] != n + 1 or p_ptr.shape[0] != n + 1 or out.shape[0] != p_ptr[n] \
            or values.shape[0] != q_ptr[n] or n_threads < 1:
        raise ValueError("pair_expand: inconsistent shapes")
    with nogil:
        for i in prange(n, num_threads=n_threads, schedule="static"):
            ks = s_ptr[i + 1] - s_ptr[i]
            kq = q_ptr[i + 1] - q_ptr[i]
            for a in range(ks):
                for b in range(kq):
                    out[p_ptr[i] + a * kq + b] = values[q_ptr[i] + b]


cdef void rows_axpy(const double* c, const double* X, Py_ssize_t k, Py_ssize_t d,
                    double* y) noexcept nogil:
    """y += Σ_j c[j] x_j over k contiguous rows, one sweep of y per row block; the next
    block's rows are requested before each sweep."""
    cdef Py_ssize_t j = 0
    cdef int R
    while j < k:
        R = gm_block_rows(k, j)
        if j + R < k:
            gm_prefetch_span(X + (j + R) * d, gm_block_rows(k, j + R) * d * sizeof(double))
        gm_axpyb_d(R, c + j, X + j * d, d, y, d)
        j += R


def task_rows_dot(const double[:, ::1] X, const int64_t[::1] ptr, const double[:, ::1] W,
                  double[::1] out, int n_threads, const double[:, ::1] W2=None,
                  double[::1] out2=None):
    """out[j] <- x_j · W[i] for every row j of task i (rows ptr[i]:ptr[i + 1]), parallel over
    tasks, each row's dot in a fixed order: any thread count, same bits. With W2 and out2,
    also out2[j] <- x_j · W2[i], while the task's rows are in cache (one pass over X)."""
    cdef Py_ssize_t n = ptr.shape[0] - 1, d = X.shape[1], i
    cdef bint two = W2 is not None
    if W.shape[0] != n or W.shape[1] != d or out.shape[0] != X.shape[0] \
            or ptr[0] != 0 or ptr[n] != X.shape[0] or n_threads < 1:
        raise ValueError("task_rows_dot: inconsistent shapes")
    if (out2 is not None and not two) or two and (
            out2 is None or W2.shape[0] != n or W2.shape[1] != d or out2.shape[0] != X.shape[0]):
        raise ValueError("task_rows_dot: W2 and out2 must come together, shaped as W and out")
    with nogil:
        for i in prange(n, num_threads=n_threads, schedule="static"):
            super_dot(&X[ptr[i], 0], ptr[i + 1] - ptr[i], 0, ptr[i + 1] - ptr[i], d, &W[i, 0],
                      &out[ptr[i]], &X[ptr[i + 1], 0] if i + 1 < n else NULL)
            if two:
                super_dot(&X[ptr[i], 0], ptr[i + 1] - ptr[i], 0, ptr[i + 1] - ptr[i], d,
                          &W2[i, 0], &out2[ptr[i]], NULL)


def pair_matvec_rows(const double[:, ::1] Xs, const double[:, ::1] Xq, const double[::1] v,
                     const double[::1] h, const double[::1] G, const double[::1] scale,
                     const double[::1] keep, const int64_t[::1] s_ptr,
                     const int64_t[::1] q_ptr, const int64_t[::1] p_ptr, double eta,
                     double[::1] sv, double[::1] qv, double[::1] out, int n_threads):
    """A v from the rows, one pass per task (parallel over tasks): sv_a <- x_aᵀv, qv_b <-
    z_bᵀv (work arrays, one entry per row), then out_(a,b) = s_i·(qv_b − η l''_a sv_a
    x_aᵀz_b)·keep_b. Every entry is written by its own task with fixed-order dots: any
    thread count, same bits."""
    cdef Py_ssize_t n = s_ptr.shape[0] - 1, d = Xs.shape[1], i, a, b, ks, kq, p
    cdef double c
    if Xq.shape[1] != d or v.shape[0] != d or qv.shape[0] != Xq.shape[0] \
            or sv.shape[0] != Xs.shape[0] or out.shape[0] != G.shape[0] \
            or p_ptr[n] != G.shape[0] or n_threads < 1:
        raise ValueError("pair_matvec_rows: inconsistent shapes")
    with nogil:
        for i in prange(n, num_threads=n_threads, schedule="static"):
            ks = s_ptr[i + 1] - s_ptr[i]
            kq = q_ptr[i + 1] - q_ptr[i]
            super_dot(&Xq[q_ptr[i], 0], kq, 0, kq, d, &v[0], &qv[q_ptr[i]], &Xs[s_ptr[i], 0])
            super_dot(&Xs[s_ptr[i], 0], ks, 0, ks, d, &v[0], &sv[s_ptr[i]],
                     &Xq[q_ptr[i + 1], 0] if i + 1 < n else NULL)
            for a in range(ks):
                c = eta * h[s_ptr[i] + a] * sv[s_ptr[i] + a]
                p = p_ptr[i] + a * kq
                for b in range(kq):
                    out[p + b] = scale[i] * (qv[q_ptr[i] + b] - c * G[p + b]) \
                        * keep[q_ptr[i] + b]


def pair_rmatvec_rows(const double[::1] r, const double[:, ::1] Xs, const double[:, ::1] Xq,
                      bint same_data, const double[::1] h, const double[::1] G,
                      const double[::1] scale, const double[::1] keep,
                      const int64_t[::1] s_ptr, const int64_t[::1] q_ptr,
                      const int64_t[::1] p_ptr, const int64_t[::1] block_ptr, double eta,
                      double[::1] cq, double[::1] cs, double[:, ::1] block_out,
                      int n_threads):
    """Aᵀr, per block of tasks (block_ptr, fixed by the sizes): block_out[β] <- Σ over the
    block's tasks, in order, of Xq_iᵀcq_i + Xs_iᵀcs_i, with the row coefficients (written
    too) cq_b = Σ_a s_i keep_b r_(a,b) and cs_a = −η l''_a Σ_b s_i keep_b r_(a,b) x_aᵀz_b.
    The caller adds the block rows in order: any thread count, same bits. same_data: Xq is
    Xs (the query rows are the support rows; cs then holds cq + cs)."""
    cdef Py_ssize_t n = s_ptr.shape[0] - 1, d = Xs.shape[1], nb = block_out.shape[0]
    cdef Py_ssize_t blk, i, a, b, ks, kq, p
    cdef double w, acc
    if r.shape[0] != G.shape[0] or p_ptr[n] != G.shape[0] or Xq.shape[1] != d \
            or block_out.shape[1] != d or block_ptr.shape[0] != nb + 1 \
            or block_ptr[0] != 0 or block_ptr[nb] != n or n_threads < 1:
        raise ValueError("pair_rmatvec_rows: inconsistent shapes")
    with nogil:
        for blk in prange(nb, num_threads=n_threads, schedule="static"):
            memset(&block_out[blk, 0], 0, d * sizeof(double))
            for i in range(block_ptr[blk], block_ptr[blk + 1]):
                ks = s_ptr[i + 1] - s_ptr[i]
                kq = q_ptr[i + 1] - q_ptr[i]
                for b in range(kq):
                    cq[q_ptr[i] + b] = 0.0
                for a in range(ks):
                    p = p_ptr[i] + a * kq
                    acc = 0.0
                    for b in range(kq):
                        w = scale[i] * keep[q_ptr[i] + b] * r[p + b]
                        cq[q_ptr[i] + b] += w
                        acc = acc + w * G[p + b]
                    cs[s_ptr[i] + a] = -eta * h[s_ptr[i] + a] * acc
                if same_data:           # one row set: its coefficient is cq + cs
                    for a in range(ks):
                        cs[s_ptr[i] + a] = cs[s_ptr[i] + a] + cq[q_ptr[i] + a]
                else:
                    rows_axpy(&cq[q_ptr[i]], &Xq[q_ptr[i], 0], kq, d, &block_out[blk, 0])
                rows_axpy(&cs[s_ptr[i]], &Xs[s_ptr[i], 0], ks, d, &block_out[blk, 0])


# ---- the memory floor of meta_objective (gomaml bench's "x floor" column) -----------------

cdef inline double read_rows(const floating* X, Py_ssize_t k, Py_ssize_t d) noexcept nogil:
    """Sum of k contiguous rows of d values: a plain read at streaming speed (float32 rows
    summed in float32 lanes: the probe reads the bytes, it computes no result)."""
    if floating is double:
        return gm_sum_d(X, k * d)
    else:
        return gm_sum_f(X, k * d)


def access_floor(const floating[:, ::1] Xs, const int64_t[::1] s_ptr,
                 const floating[:, ::1] Xq, const int64_t[::1] q_ptr,
                 double[::1] block_sum, int n_threads):
    """Reads the rows in meta_objective's own order and blocking (per task: Xs_i, Xq_i, Xs_i
    again; tasks cut into len(block_sum) blocks, static over threads) and does nothing else:
    the time of the data movement a meta-gradient cannot avoid. block_sum[b] <- the sums."""
    cdef Py_ssize_t n = s_ptr.shape[0] - 1, d = Xs.shape[1], n_blocks = block_sum.shape[0]
    cdef Py_ssize_t b, i, lo, hi, ks, kq
    cdef double acc
    if q_ptr.shape[0] != n + 1 or Xq.shape[1] != d or n_blocks < 1 or n_blocks > n \
            or n_threads < 1:
        raise ValueError("access_floor: inconsistent shapes or counts")
    with nogil:
        for b in prange(n_blocks, num_threads=n_threads, schedule="static"):
            lo = (b * n) // n_blocks
            hi = ((b + 1) * n) // n_blocks
            acc = 0.0
            for i in range(lo, hi):
                ks = s_ptr[i + 1] - s_ptr[i]
                kq = q_ptr[i + 1] - q_ptr[i]
                acc = acc + read_rows(&Xs[s_ptr[i], 0], ks, d)
                acc = acc + read_rows(&Xq[q_ptr[i], 0], kq, d)
                acc = acc + read_rows(&Xs[s_ptr[i], 0], ks, d)
            block_sum[b] = acc
