/* The FP4 formats (FORMATS.md §7), one block at a time: E2M1 values under a shared scale.
 * MXFP4: 32 values, one E8M0 exponent. NVFP4: 64 values, one UE4M3 scale per 16. Both decode
 * through ggml's doubled E2M1 table with the scale's half value, and encode with the same
 * nearest-code search; neither encoder takes an imatrix. Shared by fp4.c and the CUDA kernels. */
#ifndef QK_FP4_BLOCK_H
#define QK_FP4_BLOCK_H

#include "qk_float.h"

#define QK_MXFP4_OFF_QS 1
#define QK_BYTES_mxfp4  (QK_MXFP4_OFF_QS + QKC_QK_MXFP4 / 2)

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

/* NVFP4: four UE4M3 scale bytes (d[s] scales values 16s..16s+15), then each sub-block's 8 bytes
 * of E2M1 nibbles, half-split within the sub-block as MXFP4's are within its block. */
#define QK_NVFP4_SUBS   (QKC_QK_NVFP4 / QKC_QK_NVFP4_SUB)
#define QK_NVFP4_OFF_D  0
#define QK_NVFP4_OFF_QS (QK_NVFP4_OFF_D + QK_NVFP4_SUBS)
#define QK_BYTES_nvfp4  (QK_NVFP4_OFF_QS + QKC_QK_NVFP4 / 2)

/* UE4M3 scale byte -> half of its value (ggml_ue4m3_to_fp32). Bit 7 plays no part, but 0x7F is
 * 0 while 0xFF is 240: the table (kernels/tables/ue4m3_half_f32.txt) has every byte's bits. */
static inline QK_HD float qk_ue4m3_to_f32_half(uint8_t x) { return qk_bits_f32(QK_TAB(qk_ue4m3_half_f32)[x]); }

/* f32 -> UE4M3 byte as ggml_fp32_to_ue4m3 rounds it (FORMATS.md §7.4), which is not IEEE:
 * a subnormal result is (int)(v * 512 + 0.5f), rounded half up and capped at 7 (never rounding up
 * into the normal range); a normal one rounds its 3 mantissa bits on the first dropped bit alone
 * (ties away, no sticky bit); from 256 up (exponent 15) the byte is 0x7E (448) whatever the
 * mantissa. */
static inline QK_HD uint8_t qk_f32_to_ue4m3(float v) {
    if (!(v > 0.0f)) return 0;
    if (v > 448.0f) v = 448.0f;
    const uint32_t u = qk_f32_bits(v);
    int e = (int)(u >> 23) - 127 + 7;
    if (e <= 0) return (uint8_t)qk_clampi((int)(v * 512.0f + 0.5f), 0, 7); /* M 2^-9; below 1: 0 */
    if (e >= 15) return 0x7e;
    int m = (int)((u >> 20) & 7) + (int)((u >> 19) & 1);
    if (m > 7) m = 0, e++;
    return e >= 15 ? 0x7e : (uint8_t)(e << 3 | m);
}

/* Values 32p..32p+31: sub-blocks 2p and 2p+1. A negative code under a zero scale is -0.0. */
static inline QK_HD void qk_dequant_part_nvfp4(const uint8_t *b, int p, float *dst) {
    const int n_half = QKC_QK_NVFP4_SUB / 2, subs = QK_PART / QKC_QK_NVFP4_SUB;
    for (int k = 0; k < subs; k++) {
        const int s = subs * p + k;
        const float d = qk_ue4m3_to_f32_half(b[QK_NVFP4_OFF_D + s]);
        const uint8_t *qs = b + QK_NVFP4_OFF_QS + s * n_half;
        float *y = dst + k * QKC_QK_NVFP4_SUB;
        for (int j = 0; j < n_half; j++) {
            y[j] = QK_TAB(qk_kvalues_mxfp4)[qs[j] & 15] * d;
            y[j + n_half] = QK_TAB(qk_kvalues_mxfp4)[qs[j] >> 4] * d;
        }
    }
}

static inline QK_HD void qk_dequant_block_nvfp4(const uint8_t *b, float *dst) {
    for (int p = 0; p < QKC_QK_NVFP4 / QK_PART; p++) qk_dequant_part_nvfp4(b, p, dst + QK_PART * p);
}

/* Each sub-block on its own: its scale byte from amax / 6 (6 = the largest E2M1 magnitude, an
 * fp32 division), then every value's nearest code under the byte's rounded half scale. */
static inline QK_HD void qk_quant_block_nvfp4(const float *x, uint8_t *b) {
    const int n_half = QKC_QK_NVFP4_SUB / 2;
    for (int s = 0; s < QK_NVFP4_SUBS; s++) {
        const float *xs = x + s * QKC_QK_NVFP4_SUB;
        float amax = 0.0f;
        for (int j = 0; j < QKC_QK_NVFP4_SUB; j++) amax = fmaxf(amax, fabsf(xs[j]));
        const uint8_t e = qk_f32_to_ue4m3(amax / 6.0f);
        const float d = qk_ue4m3_to_f32_half(e);
        b[QK_NVFP4_OFF_D + s] = e;
        for (int j = 0; j < n_half; j++)
            b[QK_NVFP4_OFF_QS + s * n_half + j] =
                (uint8_t)(qk_mxfp4_nearest_code(xs[j], d) | qk_mxfp4_nearest_code(xs[j + n_half], d) << 4);
    }
}

#endif
