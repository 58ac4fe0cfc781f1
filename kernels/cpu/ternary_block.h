/* Ternary and 1/2-bit (FORMATS.md §8), one block at a time, each with one fp16 scale d:
 * TQ1_0 and TQ2_0 (256 values in {-1, 0, +1} * d), Q1_0 (128 values, +-d, one sign bit each)
 * and Q2_0 (64 values, 2-bit codes for {-1, 0, +1, +2} * d, of which the encoder writes the
 * ternary three). Shared by ternary.c and the CUDA kernels. The encoders are closed forms with
 * no search to weigh, so none takes an imatrix. */
#ifndef QK_TERNARY_BLOCK_H
#define QK_TERNARY_BLOCK_H

#include "qk_float.h"

/* TQ1_0: 48 bytes of 5 trits, 4 bytes of 4 trits, then d */
#define QK_TQ1_QS       0
#define QK_TQ1_QS_BYTES 48
#define QK_TQ1_QH       (QK_TQ1_QS + QK_TQ1_QS_BYTES)
#define QK_TQ1_QH_BYTES 4
#define QK_TQ1_D        (QK_TQ1_QH + QK_TQ1_QH_BYTES)
#define QK_BYTES_tq1_0  (QK_TQ1_D + 2)
/* TQ2_0: 64 bytes of 2-bit codes, then d */
#define QK_TQ2_QS      0
#define QK_TQ2_D       (QKC_QK_K / 4)
#define QK_BYTES_tq2_0 (QK_TQ2_D + 2)
/* Q1_0: d, then one sign bit per value, value i at bit i % 8 of qs byte i / 8 */
#define QK_Q1_0_D     0
#define QK_Q1_0_QS    (QK_Q1_0_D + 2)
#define QK_BYTES_q1_0 (QK_Q1_0_QS + QKC_QK1_0 / 8)
/* Q2_0: d, then 2-bit codes in sequence (not TQ2_0's quarters), value i at bits 2 (i % 4) of qs
 * byte i / 4 */
#define QK_Q2_0_D     0
#define QK_Q2_0_QS    (QK_Q2_0_D + 2)
#define QK_BYTES_q2_0 (QK_Q2_0_QS + QKC_QK2_0 / 4)

/* The ternary encoders' scale (TQ1_0, TQ2_0, Q2_0): d = max |x| over the block's n values, and
 * the unrounded inverse the codes use, 0 for an all-zero block. */
static inline QK_HD float qk_ternary_scale(const float *x, int n, float *id) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    *id = amax ? 1.0f / amax : 0.0f;
    return amax;
}

/* Trit n of a base-3 fixed-point byte: multiply up (keeping 8 bits) and read the top trit. */
static inline QK_HD int qk_tq1_trit(uint8_t q, int n) {
    uint8_t v = (uint8_t)(q * QK_TAB(qk_tq1_0_pow3)[n]);
    return (v * 3) >> 8;
}

/* Element i -> (byte offset, trit number) in a TQ1_0 block. */
static inline QK_HD void qk_tq1_position(int i, int *byte, int *trit) {
    if (i < 160) {
        *byte = QK_TQ1_QS + i % 32, *trit = i / 32;
    } else if (i < 240) {
        *byte = QK_TQ1_QS + 32 + (i - 160) % 16, *trit = (i - 160) / 16;
    } else {
        *byte = QK_TQ1_QH + (i - 240) % 4, *trit = (i - 240) / 4;
    }
}

static inline QK_HD void qk_dequant_part_tq1_0(const uint8_t *b, int p, float *dst) {
    const float d = qk_rdh(b + QK_TQ1_D);
    for (int i = 32 * p; i < 32 * p + 32; i++) {
        int byte, trit;
        qk_tq1_position(i, &byte, &trit);
        dst[i - 32 * p] = (float)(qk_tq1_trit(b[byte], trit) - 1) * d;
    }
}

QK_DEQUANT_BY_PARTS(tq1_0)

static inline QK_HD void qk_quant_block_tq1_0(const float *x, uint8_t *b) {
    float id;
    const float d = qk_ternary_scale(x, QKC_QK_K, &id);
    /* q = sum of trits as base-3 digits, most significant first; qh bytes hold 4 trits
     * and a zero fifth */
    int q[QK_TQ1_QS_BYTES + QK_TQ1_QH_BYTES] = {0};
    for (int i = 0; i < QKC_QK_K; i++) {
        int byte, trit;
        qk_tq1_position(i, &byte, &trit);
        int t = qk_lround_int(x[i] * id) + 1;
        int pow = 1;
        for (int k = trit; k < 4; k++) pow *= 3;
        q[byte] += t * pow;
    }
    for (int k = 0; k < QK_TQ1_QS_BYTES + QK_TQ1_QH_BYTES; k++) b[k] = (uint8_t)((q[k] * 256 + 242) / 243);
    qk_wrh(b + QK_TQ1_D, d);
}

static inline QK_HD int qk_tq2_code(const uint8_t *b, int i) {
    return (b[QK_TQ2_QS + 32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3;
}

static inline QK_HD void qk_dequant_part_tq2_0(const uint8_t *b, int p, float *dst) {
    const float d = qk_rdh(b + QK_TQ2_D);
    for (int i = 32 * p; i < 32 * p + 32; i++) dst[i - 32 * p] = (float)(qk_tq2_code(b, i) - 1) * d;
}

QK_DEQUANT_BY_PARTS(tq2_0)

static inline QK_HD void qk_quant_block_tq2_0(const float *x, uint8_t *b) {
    float id;
    const float d = qk_ternary_scale(x, QKC_QK_K, &id);
    memset(b + QK_TQ2_QS, 0, QKC_QK_K / 4);
    for (int i = 0; i < QKC_QK_K; i++) {
        int q = qk_lround_int(x[i] * id) + 1;
        b[QK_TQ2_QS + 32 * (i / 128) + i % 32] |= (uint8_t)(q << (2 * ((i % 128) / 32)));
    }
    qk_wrh(b + QK_TQ2_D, d);
}

/* A set bit is d, a clear one -d (the fp32 negation: -0.0 under d = +0). */
static inline QK_HD void qk_dequant_part_q1_0(const uint8_t *b, int p, float *dst) {
    const float d = qk_rdh(b + QK_Q1_0_D), neg_d = -d;
    for (int i = 32 * p; i < 32 * p + 32; i++) dst[i - 32 * p] = (b[QK_Q1_0_QS + i / 8] >> (i % 8)) & 1 ? d : neg_d;
}

static inline QK_HD void qk_dequant_block_q1_0(const uint8_t *b, float *dst) {
    for (int p = 0; p < QKC_QK1_0 / QK_PART; p++) qk_dequant_part_q1_0(b, p, dst + QK_PART * p);
}

/* d = the mean |x| (an fp32 sum left to right, then an exact division by 128); bit i is set
 * iff x[i] >= 0, -0.0 included. */
static inline QK_HD void qk_quant_block_q1_0(const float *x, uint8_t *b) {
    float sum = 0.0f;
    for (int i = 0; i < QKC_QK1_0; i++) sum += fabsf(x[i]);
    memset(b + QK_Q1_0_QS, 0, QKC_QK1_0 / 8);
    for (int i = 0; i < QKC_QK1_0; i++)
        if (x[i] >= 0.0f) b[QK_Q1_0_QS + i / 8] |= (uint8_t)(1u << (i % 8));
    qk_wrh(b + QK_Q1_0_D, sum / QKC_QK1_0);
}

static inline QK_HD int qk_q2_0_code(const uint8_t *b, int i) { return (b[QK_Q2_0_QS + i / 4] >> (2 * (i % 4))) & 3; }

/* (code - 1) * d: code 1 is a zero with d's sign. */
static inline QK_HD void qk_dequant_part_q2_0(const uint8_t *b, int p, float *dst) {
    const float d = qk_rdh(b + QK_Q2_0_D);
    for (int i = 32 * p; i < 32 * p + 32; i++) dst[i - 32 * p] = (float)(qk_q2_0_code(b, i) - 1) * d;
}

static inline QK_HD void qk_dequant_block_q2_0(const uint8_t *b, float *dst) {
    for (int p = 0; p < QKC_QK2_0 / QK_PART; p++) qk_dequant_part_q2_0(b, p, dst + QK_PART * p);
}

/* TQ2_0's rule on 64 values: code = clamp((int)roundf(x * id) + 1, 0, 3), which never reaches 3.
 * ggml converts roundf's result with a C cast, not lroundf as TQ2_0 does: the two differ only
 * where id overflows to inf (d below ~2^-128), where x86's cast gives INT_MIN and so code 0. */
static inline QK_HD void qk_quant_block_q2_0(const float *x, uint8_t *b) {
    float id;
    const float d = qk_ternary_scale(x, QKC_QK2_0, &id);
    memset(b + QK_Q2_0_QS, 0, QKC_QK2_0 / 4);
    for (int i = 0; i < QKC_QK2_0; i++) {
        const int q = qk_clampi(qk_trunc_int(roundf(x[i] * id)) + 1, 0, 3);
        b[QK_Q2_0_QS + i / 4] |= (uint8_t)(q << (2 * (i % 4)));
    }
    qk_wrh(b + QK_Q2_0_D, d);
}

#endif
