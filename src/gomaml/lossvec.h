/* The logistic loss over a batch of up to GM_LOSS_BATCH predictions at once: one call of
 * 8-lane vector code instead of a libm exp (and log1p) call per row.
 *
 * Why: at small d a row's dot and axpy cost less than its scalar exp + log1p (≈ 11 + 26 ns
 * here), which made the logistic loss 25-60 % dearer than the squared at sizes A and D. The
 * kernels evaluate the losses of a row block (up to 8 rows, rowops.h's gm_block_rows) in one
 * call, where the cost is the lanes', not the calls'.
 *
 * Accuracy: exp by Cody–Waite reduction (x = k ln2 + r, |r| ≤ ln2/2, k ln2 in two parts) and a
 * degree-13 Taylor polynomial, mostly by Estrin's scheme (truncation < 5e-18 relative);
 * log1p(e), e in [0, 1], as log(u) + (e − (u − 1))/u with u = 1 + e rounded, log(u) by fdlibm's e_log reduction and
 * minimax polynomial (< 1 ulp). Measured against a long-double reference over 10⁶ points
 * (tests/test_losses.py checks 85 000): the value within 1.7 ulp, the derivatives within 4.8,
 * at every instruction-set level.
 *
 * Determinism: every lane runs the same sequence of IEEE operations, padded lanes included, so a
 * value's bits depend on itself alone: not on its lane, the batch size or the thread count.
 * FMA contraction (the v3/v4 modules) may change last bits between levels, never between runs.
 */
#ifndef GOMAML_LOSSVEC_H
#define GOMAML_LOSSVEC_H

#include <stdint.h>

#define GM_LOSS_BATCH 8

/* Vectors of the module's native width (8 doubles with AVX-512, 4 with AVX2, 2 with SSE2):
 * a wider generic vector is lowered lane by lane for its compares and selects. A batch of 8
 * is GM_LOSS_BATCH / GM_LW of them. */
#if defined(__AVX512F__)
#define GM_LW 8
#elif defined(__AVX2__)
#define GM_LW 4
#else
#define GM_LW 2
#endif
typedef double gm_lv __attribute__((vector_size(GM_LW * 8)));
typedef int64_t gm_li __attribute__((vector_size(GM_LW * 8)));

static inline gm_lv gm_lv_splat(double a) { return (gm_lv){0} + a; }

static inline gm_lv gm_lv_sel(gm_li mask, gm_lv a, gm_lv b) {   /* mask ? a : b, per lane */
    gm_li ia, ib;
    __builtin_memcpy(&ia, &a, sizeof ia);
    __builtin_memcpy(&ib, &b, sizeof ib);
    ia = (ia & mask) | (ib & ~mask);
    __builtin_memcpy(&a, &ia, sizeof a);
    return a;
}

/* exp(x) for x <= 0 (NaN stays NaN; below -746 the result is 0). */
static inline gm_lv gm_lv_exp_neg(gm_lv x) {
    const double shift = 0x1.8p52;                 /* adding it rounds to an integer */
    x = gm_lv_sel(x < -746.0, gm_lv_splat(-746.0), x);
    gm_lv kr = x * 0x1.71547652b82fep0 + shift;    /* x / ln2 + shift */
    gm_lv k = kr - shift;                          /* round(x / ln2), exact */
    gm_lv r = (x - k * 0x1.62e42fee00000p-1) - k * 0x1.a39ef35793c76p-33;
    /* Taylor to r^13: 1 + r(1 + r P(r)), P's 12 terms by Estrin's scheme (a dependency chain
     * of 6 multiply-adds instead of Horner's 13: the loss sits on the path from a row's dot to
     * its axpy); the last two steps stay Horner's, so 1 + r is never rounded on its own */
    gm_lv r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    gm_lv a0 = 0.5 + r * (1.0 / 6.0), a1 = 1.0 / 24.0 + r * (1.0 / 120.0);
    gm_lv a2 = 1.0 / 720.0 + r * (1.0 / 5040.0), a3 = 1.0 / 40320.0 + r * (1.0 / 362880.0);
    gm_lv a4 = 1.0 / 3628800.0 + r * (1.0 / 39916800.0);
    gm_lv a5 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0);
    gm_lv P = ((a0 + r2 * a1) + r4 * (a2 + r2 * a3)) + r8 * (a4 + r2 * a5);
    gm_lv p = 1.0 + r * (1.0 + r * P);
    /* 2^k as 2^(k+600) · 2^-600: k >= -1077 keeps the first factor normal, and a subnormal
     * result is rounded once, by the last product. kr's bits are shift's plus k. */
    gm_li bits, shift_bits;
    gm_lv shift_v = gm_lv_splat(shift);
    __builtin_memcpy(&bits, &kr, sizeof bits);
    __builtin_memcpy(&shift_bits, &shift_v, sizeof shift_bits);
    bits = (bits - shift_bits + (1023 + 600)) << 52;
    gm_lv scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return (p * scale) * 0x1p-600;
}

/* log1p(e) for e in [0, 1], given u = 1 + e rounded and inv_u = 1 / u: fdlibm's e_log on u
 * plus the rounding error of u, (e − (u − 1)) / u. */
static inline gm_lv gm_lv_log1p_unit(gm_lv e, gm_lv u, gm_lv inv_u) {
    gm_li big = u > 0x1.6a09e667f3bcdp0;          /* u > sqrt 2: log u = ln 2 + log(u / 2) */
    gm_lv m = gm_lv_sel(big, u * 0.5, u);
    gm_lv kf = gm_lv_sel(big, gm_lv_splat(1.0), gm_lv_splat(0.0));
    gm_lv f = m - 1.0;                             /* exact: m in [sqrt 2 / 2, sqrt 2] */
    gm_lv s = f / (2.0 + f);
    gm_lv z = s * s;
    gm_lv w = z * z;
    gm_lv t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01
                    + w * 1.531383769920937332e-01));
    gm_lv t2 = z * (6.666666666666735130e-01 + w * (2.857142874366239149e-01
                    + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)));
    gm_lv R = t2 + t1;
    gm_lv hfsq = 0.5 * f * f;
    gm_lv c = (e - (u - 1.0)) * inv_u;
    return kf * 6.93147180369123816490e-01
        - ((hfsq - (s * (hfsq + R) + (kf * 1.90821492927058770002e-10 + c))) - f);
}

/* The logistic loss l(z, y) = log(1 + exp(-yz)) of a full batch of GM_LOSS_BATCH predictions
 * (the caller pads): value (unless NULL), l' = -y expit(-yz), l'' = expit(yz) expit(-yz),
 * in the forms of _pointloss.pxd (e = exp(-|yz|) never overflows). */
static void gm_logistic_batch(const double *restrict z, const double *restrict y,
                              double *restrict value, double *restrict d1,
                              double *restrict d2) {
    for (int j = 0; j < GM_LOSS_BATCH; j += GM_LW) {
        gm_lv vz, vy;
        __builtin_memcpy(&vz, z + j, sizeof vz);
        __builtin_memcpy(&vy, y + j, sizeof vy);
        gm_lv t = vy * vz;
        gm_li neg = t < 0.0;
        gm_lv e = gm_lv_exp_neg(gm_lv_sel(neg, t, -t));    /* exp(-|t|) */
        gm_lv one_e = 1.0 + e;
        gm_lv inv = 1.0 / one_e;
        gm_lv ei = e * inv;
        gm_lv g1 = -vy * gm_lv_sel(neg, inv, ei);
        gm_lv g2 = ei * inv;
        __builtin_memcpy(d1 + j, &g1, sizeof g1);
        __builtin_memcpy(d2 + j, &g2, sizeof g2);
        if (value) {
            gm_lv v = gm_lv_sel(neg, -t, gm_lv_splat(0.0)) + gm_lv_log1p_unit(e, one_e, inv);
            __builtin_memcpy(value + j, &v, sizeof v);
        }
    }
}

#endif
