/* Row primitives for the gomaml kernels: dot and axpy of one feature row (float32 or float64)
 * against a double vector, accumulated in double.
 *
 * Why C and not Cython: run-time instruction-set dispatch needs gcc's target_clones attribute,
 * which Cython cannot attach to a function. Everything else (the per-task passes, the losses,
 * the reductions) is in _kernels.pyx.
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

GM_DEFINE_DOT(gm_dot_d, double)
GM_DEFINE_DOT(gm_dot_f, float)
GM_DEFINE_AXPY(gm_axpy_d, double)
GM_DEFINE_AXPY(gm_axpy_f, float)

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
