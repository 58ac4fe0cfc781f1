/* MXFP4 (FORMATS.md §7), one block at a time: 32 E2M1 values sharing one E8M0 exponent.
 * Shared by mxfp4.c and the CUDA kernels. */
#ifndef QK_MXFP4_BLOCK_H
#define QK_MXFP4_BLOCK_H

#include "qk_float.h"

#define QK_MXFP4_OFF_QS 1
#define QK_MXFP4_BYTES  (QK_MXFP4_OFF_QS + QKC_QK_MXFP4 / 2)

static inline QK_HD void qk_dequant_block_mxfp4(const uint8_t *b, float *dst) {
    const int n_half = QKC_QK_MXFP4 / 2;
    const float d = qk_e8m0_to_f32_half(b[0]);
    for (int j = 0; j < n_half; j++) {
        dst[j] = QK_TAB(qk_kvalues_mxfp4)[b[QK_MXFP4_OFF_QS + j] & 15] * d;
        dst[j + n_half] = QK_TAB(qk_kvalues_mxfp4)[b[QK_MXFP4_OFF_QS + j] >> 4] * d;
    }
}

static inline QK_HD int qk_ilog2_u32(uint32_t x) {
    int r = -1;
    for (; x; x >>= 1) r++;
    return r;
}

/* floorf(log2f(a)) for finite a > 0, with log2f correctly rounded (as glibc's is): values just
 * below a power of two 2^v round up to v. Computed without libm, whose log2 is not correctly
 * rounded on every side: a = 2^v - k steps (of its binade) rounds up exactly when
 * log2(a) >= v - h, h half the fp32 spacing next to v on log2(a)'s side; to first order that
 * is k < 2^g * ln 2 with g an integer below, and the second-order term never decides (checked
 * against (float)log2((double)a) with glibc for every positive float). */
static inline QK_HD int qk_floor_log2_rounded(float a) {
    const uint32_t u = qk_f32_bits(a);
    int e, g;
    uint32_t k;
    if (u >= 0x00800000u) { /* normal: a = (2^23 + f) 2^(e-23), 2^(e+1) = 2^24 steps */
        e = (int)(u >> 23) - 127;
        k = 0x00800000u - (u & 0x007fffffu);
        g = 0;
    } else { /* subnormal: a = u 2^-149, 2^(e+1) = 2^(p+1) steps */
        const int p = qk_ilog2_u32(u);
        e = p - 149;
        k = (2u << p) - u;
        g = p - 23;
    }
    const int v = e + 1;
    if (v == 0) return e; /* fp32 resolves log2(a) < 0 from 0 */
    /* fp32 binade q of the values beside v: spacing 2^(q-23), so h * 2^24 = 2^q */
    g += v > 0 ? qk_ilog2_u32((uint32_t)(v - 1)) : qk_ilog2_u32((uint32_t)-v);
    if (g < 0) return e;
    return (double)k < 0.69314718055994530942 * (double)(1u << g) ? e + 1 : e;
}

static inline QK_HD int qk_mxfp4_nearest_code(float x, float d) {
    int best = 0;
    float best_err = fabsf(QK_TAB(qk_kvalues_mxfp4)[0] * d - x);
    for (int c = 1; c < 16; c++) {
        float err = fabsf(QK_TAB(qk_kvalues_mxfp4)[c] * d - x);
        if (err < best_err) best = c, best_err = err;
    }
    return best;
}

/* MXFP4's rounding is fixed by the format: no imatrix to weigh. */
static inline QK_HD void qk_quant_block_mxfp4(const float *x, uint8_t *b) {
    const int n_half = QKC_QK_MXFP4 / 2;
    float amax = 0.0f;
    for (int j = 0; j < QKC_QK_MXFP4; j++) amax = fmaxf(amax, fabsf(x[j]));
    const uint8_t e = amax > 0.0f ? (uint8_t)(qk_floor_log2_rounded(amax) - 2 + 127) : 0;
    const float d = qk_e8m0_to_f32_half(e);
    b[0] = e;
    for (int j = 0; j < n_half; j++)
        b[QK_MXFP4_OFF_QS + j] =
            (uint8_t)(qk_mxfp4_nearest_code(x[j], d) | qk_mxfp4_nearest_code(x[j + n_half], d) << 4);
}

#endif
