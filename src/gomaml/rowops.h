/* Row primitives for the gomaml kernels: dot and axpy of one feature row (float32 or float64)
 * against a double vector, accumulated in double.
 *
 * Why C and not Cython: explicit GCC vector types, prefetch builtins and (for a build without
 * per-level modules) gcc's target_clones attribute, none of which Cython can express. The
 * per-task passes and the reductions are in _kernels_impl.pxi, the losses in _pointloss.pxd
 * and (the logistic loss 8 at a time) lossvec.h.
 *
 * Determinism: the dot keeps 32 partial sums in a fixed lane order (lane j adds elements
 * j, j+32, j+64, ...) and adds them as a fixed tree, so its result is defined by C semantics alone: no reassociation is
 * licensed (no -ffast-math), and any thread count gives the same bits. The vector width of the
 * clone does not change the order; FMA contraction (x86-64-v3/v4 clones) may change last bits
 * between machines, never between runs or thread counts on one machine.
 */
#ifndef GOMAML_ROWOPS_H
#define GOMAML_ROWOPS_H

#include <stddef.h>
#include "lossvec.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* Each instruction-set level is its own extension module (GOMAML_ISA_LEVEL set by setup.py,
 * -march for the whole module, so the row ops inline into the task loops); without one (a
 * compiler or platform setup.py builds a single module for), gcc's target_clones dispatch. */
#if defined(GOMAML_ISA_LEVEL) || GOMAML_NATIVE
#define GM_CLONES
#define GM_DISPATCH 0
#elif defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define GM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define GM_DISPATCH 1
#else
#define GM_CLONES
#define GM_DISPATCH 0
#endif

#define GM_LANES 32

/* acc[0] <- sum of the first w lanes as a fixed binary tree (vectorises; no serial chain). */
#define GM_REDUCE_LANES(acc, width)                                               \
    for (int w = (width) / 2; w >= 1; w /= 2)                                     \
        for (int j = 0; j < w; j++) acc[j] += acc[j + w];

/* Lane j accumulates elements j, j+32, j+64, ...; the last n mod 32 go into the first lanes.
 * Rows shorter than 64 take an 8-lane path: 32 zeroed lanes and a 5-level tree cost more
 * than the row itself there (callgrind: ~250 instructions for n = 50). Either way the order
 * depends on n alone. */
#define GM_DEFINE_DOT(NAME, T)                                                    \
GM_CLONES static double NAME(const T *restrict x, const double *restrict v,       \
                             Py_ssize_t n) {                                      \
    Py_ssize_t k = 0;                                                             \
    if (n < 2 * GM_LANES) {                                                       \
        double a8[8] = {0.0};                                                     \
        for (; k + 8 <= n; k += 8) {                                              \
            for (int j = 0; j < 8; j++) a8[j] += (double)x[k + j] * v[k + j];     \
        }                                                                         \
        double tail = 0.0;                                                        \
        for (; k < n; k++) tail += (double)x[k] * v[k];                           \
        GM_REDUCE_LANES(a8, 8)                                                    \
        return a8[0] + tail;                                                      \
    }                                                                             \
    double acc[GM_LANES] = {0.0};                                                 \
    for (; k + GM_LANES <= n; k += GM_LANES) {                                    \
        for (int j = 0; j < GM_LANES; j++) acc[j] += (double)x[k + j] * v[k + j]; \
    }                                                                             \
    for (Py_ssize_t j = 0; j < n - k; j++) acc[j] += (double)x[k + j] * v[k + j]; \
    GM_REDUCE_LANES(acc, GM_LANES)                                                \
    return acc[0];                                                                \
}

#define GM_DEFINE_AXPY(NAME, T)                                                   \
GM_CLONES static void NAME(double a, const T *restrict x, double *restrict y,     \
                           Py_ssize_t n) {                                        \
    for (Py_ssize_t k = 0; k < n; k++) y[k] += a * (double)x[k];                  \
}

/* Sum of a buffer: the memory-bandwidth probe's read loop (32 lanes, a fixed tree). */
GM_CLONES static double gm_sum_d(const double *restrict x, Py_ssize_t n) {
    double acc[GM_LANES] = {0.0};
    Py_ssize_t k = 0;
    for (; k + GM_LANES <= n; k += GM_LANES) {
        for (int j = 0; j < GM_LANES; j++) acc[j] += x[k + j];
    }
    for (Py_ssize_t j = 0; j < n - k; j++) acc[j] += x[k + j];
    GM_REDUCE_LANES(acc, GM_LANES)
    return acc[0];
}

/* The same read of float32 data, in 64 float lanes: a plain read at the speed of the bytes
 * (the access floor's probe, gomaml bench's xfloor), not a result: a float32 sum carries
 * float32 rounding, at most (n/64 + 6)·2^-24·sum|x| (64 lanes, a 6-level tree). */
GM_CLONES static double gm_sum_f(const float *restrict x, Py_ssize_t n) {
    float acc[2 * GM_LANES] = {0.0f};
    Py_ssize_t k = 0;
    for (; k + 2 * GM_LANES <= n; k += 2 * GM_LANES) {
        for (int j = 0; j < 2 * GM_LANES; j++) acc[j] += x[k + j];
    }
    for (Py_ssize_t j = 0; j < n - k; j++) acc[j] += x[k + j];
    GM_REDUCE_LANES(acc, 2 * GM_LANES)
    return (double)acc[0];
}

GM_DEFINE_DOT(gm_dot_d, double)
GM_DEFINE_DOT(gm_dot_f, float)
GM_DEFINE_AXPY(gm_axpy_d, double)
GM_DEFINE_AXPY(gm_axpy_f, float)

/* ---- Row blocks (the task passes' workhorse) -------------------------------------------
 * R consecutive rows of one pass (rows r = 0..R-1 at x + r*stride) against one double
 * vector: gm_dotb_* gives the R dots sharing the loads of v, gm_axpyb_* adds
 * sum_r c[r] * x_r to y in one sweep (y loaded and stored once per block, not once per row).
 * While the dot sweep streams the block it prefetches (into L2) the same offsets of the next
 * block `pf` (NULL: none), so DRAM keeps streaming while the core works on cached rows.
 *
 * Explicit GCC vector types of W doubles: W = 8 (AVX-512, only in the x86-64-v4 module), 4
 * (AVX2 or the v4 module's short-row path), 2 (baseline SSE2). Each row's dot keeps ACC
 * vector accumulators (2 for blocks of up to 4 rows, 1 for larger blocks), lane j adding
 * elements j, j + W·ACC, ..., the last n mod W·ACC elements added in order afterwards, and
 * the lanes summed by a fixed tree. The order depends on (W, ACC, n) alone: W on the module
 * and the row length, ACC on the task's size; never on the thread count. No -ffast-math;
 * FMA contraction may change last bits between levels, never between runs.
 */
#define GM_BLOCK_MAX 8
/* Prefetch the next block only for rows of at most this many bytes: measured here (2 threads,
 * float64) it gains 6-8 % on rows of 8 KB (E) and costs 25-33 % on rows of 80 KB (C), where
 * the hardware's own stream prefetch keeps up and extra requests only compete with it. */
#define GM_PREFETCH_ROW_BYTES 16384

#define GM_DEFINE_BLOCK_OPS(W)                                                      \
typedef double gm_vd##W __attribute__((vector_size(W * 8)));                        \
typedef float gm_vf##W __attribute__((vector_size(W * 4)));                         \
static inline gm_vd##W gm_ld##W##_d(const double *p) {                              \
    gm_vd##W v; __builtin_memcpy(&v, p, sizeof v); return v; }                     \
static inline gm_vd##W gm_ld##W##_f(const float *p) {                               \
    gm_vf##W v; __builtin_memcpy(&v, p, sizeof v);                                  \
    return __builtin_convertvector(v, gm_vd##W); }                                  \
static inline double gm_hsum##W(gm_vd##W a) {                                       \
    double t[W]; __builtin_memcpy(t, &a, sizeof t);                                 \
    for (int w = W / 2; w >= 1; w /= 2)                                             \
        for (int j = 0; j < w; j++) t[j] += t[j + w];                               \
    return t[0]; }

#define GM_DEFINE_DOTB(W, R, ACC, T, S)                                             \
static inline void gm_dotb##W##_##R##S(const T *restrict x, Py_ssize_t stride,      \
        const double *restrict v, Py_ssize_t n, double *restrict out,               \
        const T *restrict pf) {                                                     \
    gm_vd##W a[R][ACC];                                                             \
    for (int r = 0; r < R; r++)                                                     \
        for (int c = 0; c < ACC; c++) a[r][c] = (gm_vd##W){0};                      \
    Py_ssize_t k = 0;                                                               \
    for (; k + W * ACC <= n; k += W * ACC) {                                        \
        if (pf && n * (Py_ssize_t)sizeof(T) <= GM_PREFETCH_ROW_BYTES) {             /* every cache line of the step, in the next block */ \
            for (int r = 0; r < R; r++)                                             \
                for (int l = 0; l < W * ACC * (int)sizeof(T); l += 64)              \
                    __builtin_prefetch((const char *)(pf + r * stride + k) + l, 0, 2); \
        }                                                                           \
        for (int c = 0; c < ACC; c++) {                                             \
            gm_vd##W vv = gm_ld##W##_d(v + k + c * W);                              \
            for (int r = 0; r < R; r++)                                             \
                a[r][c] += gm_ld##W##_##S(x + r * stride + k + c * W) * vv;         \
        }                                                                           \
    }                                                                               \
    for (int r = 0; r < R; r++) {                                                   \
        gm_vd##W s = a[r][0];                                                       \
        for (int c = 1; c < ACC; c++) s += a[r][c];                                 \
        double tail = 0.0;                                                          \
        for (Py_ssize_t j = k; j < n; j++) tail += (double)x[r * stride + j] * v[j]; \
        out[r] = gm_hsum##W(s) + tail;                                              \
    }                                                                               \
}

#define GM_DEFINE_AXPYB(W, R, T, S)                                                 \
static inline void gm_axpyb##W##_##R##S(const double *restrict c,                   \
        const T *restrict x, Py_ssize_t stride, double *restrict y, Py_ssize_t n) { \
    Py_ssize_t k = 0;                                                               \
    for (; k + W <= n; k += W) {                                                    \
        gm_vd##W acc = gm_ld##W##_d(y + k);                                         \
        for (int r = 0; r < R; r++)                                                 \
            acc += c[r] * gm_ld##W##_##S(x + r * stride + k);                       \
        __builtin_memcpy(y + k, &acc, sizeof acc);                                  \
    }                                                                               \
    for (; k < n; k++) {                                                            \
        double acc = y[k];                                                          \
        for (int r = 0; r < R; r++) acc += c[r] * (double)x[r * stride + k];        \
        y[k] = acc;                                                                 \
    }                                                                               \
}

#define GM_DEFINE_BLOCKS_R(W, T, S)                                                 \
    GM_DEFINE_DOTB(W, 1, 2, T, S) GM_DEFINE_DOTB(W, 2, 2, T, S)                     \
    GM_DEFINE_DOTB(W, 3, 2, T, S) GM_DEFINE_DOTB(W, 4, 2, T, S)                     \
    GM_DEFINE_DOTB(W, 5, 1, T, S) GM_DEFINE_DOTB(W, 6, 1, T, S)                     \
    GM_DEFINE_DOTB(W, 7, 1, T, S) GM_DEFINE_DOTB(W, 8, 1, T, S)                     \
    GM_DEFINE_AXPYB(W, 1, T, S) GM_DEFINE_AXPYB(W, 2, T, S)                         \
    GM_DEFINE_AXPYB(W, 3, T, S) GM_DEFINE_AXPYB(W, 4, T, S)                         \
    GM_DEFINE_AXPYB(W, 5, T, S) GM_DEFINE_AXPYB(W, 6, T, S)                         \
    GM_DEFINE_AXPYB(W, 7, T, S) GM_DEFINE_AXPYB(W, 8, T, S)                         \
static inline void gm_dotb##W##S(int R, const T *x, Py_ssize_t stride,              \
        const double *v, Py_ssize_t n, double *out, const T *pf) {                  \
    switch (R) {                                                                    \
    case 1: gm_dotb##W##_1##S(x, stride, v, n, out, pf); break;                     \
    case 2: gm_dotb##W##_2##S(x, stride, v, n, out, pf); break;                     \
    case 3: gm_dotb##W##_3##S(x, stride, v, n, out, pf); break;                     \
    case 4: gm_dotb##W##_4##S(x, stride, v, n, out, pf); break;                     \
    case 5: gm_dotb##W##_5##S(x, stride, v, n, out, pf); break;                     \
    case 6: gm_dotb##W##_6##S(x, stride, v, n, out, pf); break;                     \
    case 7: gm_dotb##W##_7##S(x, stride, v, n, out, pf); break;                     \
    default: gm_dotb##W##_8##S(x, stride, v, n, out, pf); break;                    \
    } }                                                                             \
static inline void gm_axpyb##W##S(int R, const double *c, const T *x,               \
        Py_ssize_t stride, double *y, Py_ssize_t n) {                               \
    switch (R) {                                                                    \
    case 1: gm_axpyb##W##_1##S(c, x, stride, y, n); break;                          \
    case 2: gm_axpyb##W##_2##S(c, x, stride, y, n); break;                          \
    case 3: gm_axpyb##W##_3##S(c, x, stride, y, n); break;                          \
    case 4: gm_axpyb##W##_4##S(c, x, stride, y, n); break;                          \
    case 5: gm_axpyb##W##_5##S(c, x, stride, y, n); break;                          \
    case 6: gm_axpyb##W##_6##S(c, x, stride, y, n); break;                          \
    case 7: gm_axpyb##W##_7##S(c, x, stride, y, n); break;                          \
    default: gm_axpyb##W##_8##S(c, x, stride, y, n); break;                         \
    } }

#if defined(__AVX512F__)
GM_DEFINE_BLOCK_OPS(8)
GM_DEFINE_BLOCKS_R(8, double, d)
GM_DEFINE_BLOCKS_R(8, float, f)
#endif
#if defined(__AVX2__) || defined(__AVX512F__)
GM_DEFINE_BLOCK_OPS(4)
GM_DEFINE_BLOCKS_R(4, double, d)
GM_DEFINE_BLOCKS_R(4, float, f)
#else
GM_DEFINE_BLOCK_OPS(2)
GM_DEFINE_BLOCKS_R(2, double, d)
GM_DEFINE_BLOCKS_R(2, float, f)
#endif

/* The vector width for rows of length n: the fixed rule of this module, measured once here
 * (2 threads, float64): in the x86-64-v4 module 512-bit vectors beat 256-bit ones from rows of
 * 50 elements up (D 11 %, A 6 %); 256-bit ones are kept for rows of GM_SHORT_ROW or fewer
 * elements, where a 512-bit step would be all tail. */
#define GM_SHORT_ROW 16
#define GM_DEFINE_DISPATCH(S, T)                                                    \
static inline void gm_dotb_##S(int R, const T *x, Py_ssize_t stride,                \
        const double *v, Py_ssize_t n, double *out, const T *pf) {                  \
    GM_PICK(gm_dotb, S, (R, x, stride, v, n, out, pf)) }                            \
static inline void gm_axpyb_##S(int R, const double *c, const T *x,                 \
        Py_ssize_t stride, double *y, Py_ssize_t n) {                               \
    GM_PICK(gm_axpyb, S, (R, c, x, stride, y, n)) }
#if defined(__AVX512F__)
#define GM_PICK(F, S, ARGS) if (n > GM_SHORT_ROW) F##8##S ARGS; else F##4##S ARGS;
#elif defined(__AVX2__)
#define GM_PICK(F, S, ARGS) F##4##S ARGS;
#else
#define GM_PICK(F, S, ARGS) F##2##S ARGS;
#endif
GM_DEFINE_DISPATCH(d, double)
GM_DEFINE_DISPATCH(f, float)

/* ---- Many rows against one (theory.md §5's stacked system) ------------------------------
 * R <= GM_MULTI_MAX double rows y_r (stride apart) against one row x: gm_dotm_* gives the R
 * dots x . y_r, gm_axpym_* adds sum_a c[r*ks + a] x_a (a = 0..ks-1: ks rows of x, xstride
 * apart) to each y_r. Each result has the bits of the one-row primitives (gm_dot_*, then
 * gm_axpy_* for a = 0, 1, ...): the same lanes, tail and tree, the same multiply-adds in the
 * same order; only the loads of x are shared by the R rows (the dots in the x86-64-v4 module
 * alone, whose 32 registers hold 4 rows' 32 lanes; elsewhere they are the one-row calls).
 * Where the one-row primitives are gcc clones (GM_DISPATCH) they are called as they are, so
 * the bits cannot diverge. Measured at n = 100, k = 20, d = 10^4 (2 threads): the stacked
 * system in 0.056-0.062 s against 0.11 s one query row at a time. */
#define GM_MULTI_MAX 4
#if !GM_DISPATCH && defined(__AVX512F__)
#define GM_MW 8
#elif !GM_DISPATCH && (defined(__AVX2__))
#define GM_MW 4
#elif !GM_DISPATCH
#define GM_MW 2
#endif

/* One copy of a primitive per row count R = 1..4 (R a constant in each), and the switch
 * that calls the copy for a run-time R. */
#define GM_EACH_R(DEF, S, T) DEF(1, S, T) DEF(2, S, T) DEF(3, S, T) DEF(4, S, T)
#define GM_SWITCH_R(F, S, ARGS)                                                    \
    switch (R) {                                                                   \
    case 1: F##_1_##S ARGS; return;                                                \
    case 2: F##_2_##S ARGS; return;                                                \
    case 3: F##_3_##S ARGS; return;                                                \
    default: F##_4_##S ARGS; return;                                               \
    }

#if defined(GM_MW) && GM_MW == 8
/* 32 lanes = 4 vectors of 8 per row: 16 accumulators for 4 rows, in registers. R is a
 * constant of each copy (gm_dotm8_R_S), so no lane is computed for a missing row. */
#define GM_DEFINE_DOTM8(R, S, T)                                                   \
static inline void gm_dotm8_##R##_##S(const T *restrict x, const double *restrict y, \
        Py_ssize_t stride, Py_ssize_t n, double *restrict out) {                   \
    gm_vd8 acc[R][GM_LANES / 8];                                                   \
    for (int r = 0; r < R; r++)                                                    \
        for (int v = 0; v < GM_LANES / 8; v++) acc[r][v] = (gm_vd8){0};            \
    Py_ssize_t k = 0;                                                              \
    for (; k + GM_LANES <= n; k += GM_LANES)                                       \
        for (int v = 0; v < GM_LANES / 8; v++) {                                   \
            gm_vd8 xv = gm_ld8_##S(x + k + 8 * v);                                 \
            for (int r = 0; r < R; r++)                                            \
                acc[r][v] += xv * gm_ld8_d(y + r * stride + k + 8 * v);            \
        }                                                                          \
    for (int r = 0; r < R; r++) {                                                  \
        double a[GM_LANES];                                                        \
        __builtin_memcpy(a, acc[r], sizeof a);                                     \
        const double *yr = y + r * stride;                                         \
        for (Py_ssize_t j = 0; j < n - k; j++) a[j] += (double)x[k + j] * yr[k + j]; \
        GM_REDUCE_LANES(a, GM_LANES)                                               \
        out[r] = a[0];                                                             \
    }                                                                              \
}
#define GM_DOTM_BODY(S, T)                                                         \
    if (n >= 2 * GM_LANES) { GM_SWITCH_R(gm_dotm8, S, (x, y, stride, n, out)) }
GM_EACH_R(GM_DEFINE_DOTM8, d, double)
GM_EACH_R(GM_DEFINE_DOTM8, f, float)
#else
#define GM_DOTM_BODY(S, T)
#endif

#ifdef GM_MW
#define GM_MVEC_(W) gm_vd##W
#define GM_MVEC(W) GM_MVEC_(W)
#define GM_MLD_(W, S) gm_ld##W##_##S
#define GM_MLD(W, S) GM_MLD_(W, S)
#define GM_DEFINE_AXPYM(R, S, T)                                                   \
static inline void gm_axpym_##R##_##S(const double *restrict c, Py_ssize_t ks,     \
        const T *restrict x, Py_ssize_t xstride, double *restrict y,               \
        Py_ssize_t stride, Py_ssize_t n) {                                         \
    Py_ssize_t k = 0;                                                              \
    for (; k + GM_MW <= n; k += GM_MW) {                                           \
        GM_MVEC(GM_MW) acc[R];                                                     \
        for (int r = 0; r < R; r++) acc[r] = GM_MLD(GM_MW, d)(y + r * stride + k); \
        for (Py_ssize_t a = 0; a < ks; a++) {                                      \
            GM_MVEC(GM_MW) xv = GM_MLD(GM_MW, S)(x + a * xstride + k);             \
            for (int r = 0; r < R; r++) acc[r] += c[r * ks + a] * xv;              \
        }                                                                          \
        for (int r = 0; r < R; r++)                                                \
            __builtin_memcpy(y + r * stride + k, &acc[r], sizeof acc[r]);          \
    }                                                                              \
    /* the last n mod W elements, as gm_axpy_* adds them: a outer. (An inner loop over a      \
     * would let gcc -O3 make it an in-order reduction of unfused products: other bits.) */  \
    for (int r = 0; r < R; r++)                                                    \
        for (Py_ssize_t a = 0; a < ks; a++)                                        \
            for (Py_ssize_t j = k; j < n; j++)                                     \
                y[r * stride + j] += c[r * ks + a] * (double)x[a * xstride + j];   \
}
#define GM_AXPYM_BODY(S, T) GM_SWITCH_R(gm_axpym, S, (c, ks, x, xstride, y, stride, n))
GM_EACH_R(GM_DEFINE_AXPYM, d, double)
GM_EACH_R(GM_DEFINE_AXPYM, f, float)
#else
#define GM_AXPYM_BODY(S, T)
#endif

#define GM_DEFINE_MULTI(S, T)                                                      \
static inline void gm_dotm_##S(int R, const T *restrict x, const double *restrict y, \
        Py_ssize_t stride, Py_ssize_t n, double *restrict out) {                   \
    GM_DOTM_BODY(S, T)                                                             \
    for (int r = 0; r < R; r++) out[r] = gm_dot_##S(x, y + r * stride, n);         \
}                                                                                  \
static inline void gm_axpym_##S(int R, const double *restrict c, Py_ssize_t ks,    \
        const T *restrict x, Py_ssize_t xstride, double *restrict y,               \
        Py_ssize_t stride, Py_ssize_t n) {                                         \
    GM_AXPYM_BODY(S, T)                                                            \
    for (int r = 0; r < R; r++)                                                    \
        for (Py_ssize_t a = 0; a < ks; a++)                                        \
            gm_axpy_##S(c[r * ks + a], x + a * xstride, y + r * stride, n);        \
}

GM_DEFINE_MULTI(d, double)
GM_DEFINE_MULTI(f, float)

/* Block size for a pass over k rows: GM_BLOCK_MAX rows, the remainder last (all k when
 * k <= GM_BLOCK_MAX). Measured here (Zen 4, 2 threads, float64, interleaved processes, two
 * batches of 5 and 7 rounds) against blocks of 4: A -10 to -19 %, E -3 to -11 %, B -1 to -9 %,
 * C -4 % and mixed; D, one block either way, moved by up to 7 %, the noise. In a C
 * microbenchmark of streamed dot passes (in-process alternation) blocks of 8 took 0.94-1.22x
 * a plain read's time, blocks of 4 0.98-1.40x: 8 prefetched row streams in flight, not 4.
 * A pass's losses go in batches of one block (lossvec.h's 8 lanes). */
static inline int gm_block_rows(Py_ssize_t k_total, Py_ssize_t done) {
    Py_ssize_t left = k_total - done;
    return left < GM_BLOCK_MAX ? (int)left : GM_BLOCK_MAX;
}

/* Task-ahead prefetch: the next task's rows (support and query), requested into L2 as the
 * current task starts, when they are at most GM_TASK_AHEAD_BYTES: a small task is over before
 * the next-block prefetch of the passes can hide a DRAM latency. Larger tasks rely on the
 * next-block prefetch alone (a whole task would evict the current one from L2). */
#define GM_TASK_AHEAD_BYTES 65536
static inline void gm_prefetch_span(const void *p, Py_ssize_t bytes) {
    const char *c = (const char *)p;
    for (Py_ssize_t l = 0; l < bytes; l += 64) __builtin_prefetch(c + l, 0, 2);
}

static int gm_openmp_enabled(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

static int gm_openmp_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Whether this CPU runs code of an instruction-set level (0 when unknown). */
static int gm_cpu_supports(int level) {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    __builtin_cpu_init();
    if (level == 4) return __builtin_cpu_supports("x86-64-v4");
    if (level == 3) return __builtin_cpu_supports("x86-64-v3");
    return 1;
#else
    return level == 0;
#endif
}

/* The level this module runs: its build's, or the clone gcc's dispatcher picks here. */
static const char *gm_isa(void) {
#if defined(GOMAML_ISA_LEVEL)
    return GOMAML_ISA_LEVEL;
#elif GM_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4 (AVX-512)";
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3 (AVX2+FMA)";
    return "x86-64 baseline (SSE2)";
#elif GOMAML_NATIVE
    return "-march=native";
#else
    return "compiler default";
#endif
}

#endif
