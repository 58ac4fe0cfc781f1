/* TQ1_0 and TQ2_0 (FORMATS.md §8), one block at a time: ternary values {-1, 0, +1} * d.
 * Shared by ternary.c and the CUDA kernels. Ternary rounding has no search to weigh, so
 * neither encoder takes an imatrix. */
#ifndef QK_TERNARY_BLOCK_H
#define QK_TERNARY_BLOCK_H

#include "qk_float.h"

/* TQ1_0: 48 bytes of 5 trits, 4 bytes of 4 trits, then d */
#define QK_TQ1_QS       0
#define QK_TQ1_QS_BYTES 48
#define QK_TQ1_QH       (QK_TQ1_QS + QK_TQ1_QS_BYTES)
#define QK_TQ1_QH_BYTES 4
#define QK_TQ1_D        (QK_TQ1_QH + QK_TQ1_QH_BYTES)
#define QK_TQ1_BYTES    (QK_TQ1_D + 2)
/* TQ2_0: 64 bytes of 2-bit codes, then d */
#define QK_TQ2_QS    0
#define QK_TQ2_D     (QKC_QK_K / 4)
#define QK_TQ2_BYTES (QK_TQ2_D + 2)

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
    float amax = 0.0f;
    for (int i = 0; i < QKC_QK_K; i++) amax = fmaxf(amax, fabsf(x[i]));
    const float d = amax, id = d ? 1.0f / d : 0.0f;
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
    float amax = 0.0f;
    for (int i = 0; i < QKC_QK_K; i++) amax = fmaxf(amax, fabsf(x[i]));
    const float d = amax, id = d ? 1.0f / d : 0.0f;
    memset(b + QK_TQ2_QS, 0, QKC_QK_K / 4);
    for (int i = 0; i < QKC_QK_K; i++) {
        int q = qk_lround_int(x[i] * id) + 1;
        b[QK_TQ2_QS + 32 * (i / 128) + i % 32] |= (uint8_t)(q << (2 * ((i % 128) / 32)));
    }
    qk_wrh(b + QK_TQ2_D, d);
}

#endif
