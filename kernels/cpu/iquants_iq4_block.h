/* IQ4_NL and IQ4_XS encoders (FORMATS.md §6.8, §6.9, §6.11), one block at a time: 4-bit codes
 * into the non-linear table kvalues_iq4nl, one scale per 32 values (IQ4_NL) or 6-bit
 * sub-scales under one fp16 scale per 256 values (IQ4_XS). Shared by iquants_iq4.c and the
 * CUDA kernels; layouts and decoders are in iquants_block.h. */
#ifndef QK_IQUANTS_IQ4_BLOCK_H
#define QK_IQUANTS_IQ4_BLOCK_H

#include "iquants_block.h"
#include "qk_float.h"

#define QK_IQ4_NTRY 7 /* ggml_quantize_chunk's scale search width for both types */

static inline QK_HD void qk_iq4_pack_nibbles(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_IQ4_BLK / 2; j++) qs[j] = (uint8_t)(L[j] | L[j + QK_IQ4_BLK / 2] << 4);
}

/* Index of the table value nearest to v; ties go to the upper neighbour. */
static inline QK_HD int qk_iq4_nearest_code(float v) {
    const int8_t *kv = QK_TAB(qk_kvalues_iq4nl);
    if (v <= kv[0]) return 0;
    if (v >= kv[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (v < kv[mid])
            hi = mid;
        else
            lo = mid;
    }
    return v - kv[hi - 1] < kv[hi] - v ? hi - 1 : hi;
}

static inline QK_HD void qk_iq4_codes_for(const float *x, float id, uint8_t *L) {
    for (int j = 0; j < QK_IQ4_BLK; j++) L[j] = (uint8_t)qk_iq4_nearest_code(id * x[j]);
}

/* The encoder's weights for one 32-block: qw*sqrt(sigma2 + x^2), or x^2 without an imatrix.
 * An imatrix that is all zero here leaves nothing to weigh: fall back to x^2 so the least
 * squares stay defined (the block's weighted error is zero whatever we pick). */
static inline QK_HD void qk_iq4_block_weights(const float *x, const float *qw, float sigma2, float *w) {
    float sum = 0.0f;
    if (qw) {
        for (int j = 0; j < QK_IQ4_BLK; j++) sum += w[j] = qw[j] * sqrtf(sigma2 + x[j] * x[j]);
        if (sum > 0.0f) return;
    }
    for (int j = 0; j < QK_IQ4_BLK; j++) w[j] = x[j] * x[j];
}

/* §6.11 scale search over one 32-block: least-squares scale of the codes found with 1/d,
 * d = max/127, then of the codes found with (t - 127)/max for t = -NTRY..NTRY, keeping the best
 * (sumqx^2/sumq2). The result may be negative. 0 for an (almost) all-zero block. */
static inline QK_HD float qk_iq4_block_scale(const float *x, const float *w) {
    const int8_t *kv = QK_TAB(qk_kvalues_iq4nl);
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK_IQ4_BLK; j++) {
        float ax = fabsf(x[j]);
        if (ax > amax) amax = ax, max = x[j];
    }
    if (amax < QKC_GROUP_MAX_EPS) return 0.0f;

    float id = 1.0f / (-max / kv[0]);
    float sumqx = 0.0f, sumq2 = 0.0f;
    for (int j = 0; j < QK_IQ4_BLK; j++) {
        float q = kv[qk_iq4_nearest_code(id * x[j])];
        sumqx += w[j] * q * x[j];
        sumq2 += w[j] * q * q;
    }
    float d = sumqx / sumq2;
    float best = d * sumqx;
    for (int t = -QK_IQ4_NTRY; t <= QK_IQ4_NTRY; t++) {
        id = (float)(t + kv[0]) / max;
        sumqx = sumq2 = 0.0f;
        for (int j = 0; j < QK_IQ4_BLK; j++) {
            float q = kv[qk_iq4_nearest_code(id * x[j])];
            sumqx += w[j] * q * x[j];
            sumq2 += w[j] * q * q;
        }
        if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

static inline QK_HD float qk_iq4_sigma2(const float *x, int n) {
    float s = 0.0f;
    for (int j = 0; j < n; j++) s += x[j] * x[j];
    return s * (2.0f / (float)n);
}

/* One IQ4_NL block of 32 values; qw NULL for no imatrix. */
static inline QK_HD void qk_quant_block_iq4_nl(const float *x, const float *qw, uint8_t *b) {
    float w[QK_IQ4_BLK];
    uint8_t L[QK_IQ4_BLK];
    qk_iq4_block_weights(x, qw, qk_iq4_sigma2(x, QKC_QK4_NL), w);
    const float d = qk_iq4_block_scale(x, w);
    qk_wrh(b + QK_IQ4NL_D, d);
    /* codes from the unrounded scale, as ggml_quantize_chunk does */
    qk_iq4_codes_for(x, d != 0.0f ? 1.0f / d : 0.0f, L);
    qk_iq4_pack_nibbles(L, b + QK_IQ4NL_QS);
}

/* One IQ4_XS super-block of 256 values; qw NULL for no imatrix. */
static inline QK_HD void qk_quant_block_iq4_xs(const float *x, const float *qw, uint8_t *b) {
    float w[QK_IQ4_BLK], scales[QK_IQ4XS_NB];
    uint8_t L[QK_IQ4_BLK];
    const float sigma2 = qk_iq4_sigma2(x, QKC_QK_K);
    float max_scale = 0.0f, amax_scale = 0.0f;
    for (int c = 0; c < QK_IQ4XS_NB; c++) {
        qk_iq4_block_weights(x + QK_IQ4_BLK * c, qw ? qw + QK_IQ4_BLK * c : NULL, sigma2, w);
        scales[c] = qk_iq4_block_scale(x + QK_IQ4_BLK * c, w);
        if (fabsf(scales[c]) > amax_scale) amax_scale = fabsf(scales[c]), max_scale = scales[c];
    }
    /* the largest block gets sub-scale -32, so D carries the opposite sign of its scale */
    const float d = -max_scale / 32.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    qk_wrh(b + QK_IQ4XS_D, d);
    uint16_t sh = 0;
    for (int c = 0; c < QK_IQ4XS_NB; c++) {
        const int l = qk_clampi(qk_nearest_int(id * scales[c]), -32, 31);
        const float dl = d * (float)l;
        qk_iq4_codes_for(x + QK_IQ4_BLK * c, dl != 0.0f ? 1.0f / dl : 0.0f, L);
        qk_iq4_pack_nibbles(L, b + QK_IQ4XS_QS + (QK_IQ4_BLK / 2) * c);
        const int ls = l + 32;
        if (c % 2 == 0)
            b[QK_IQ4XS_SCL + c / 2] = (uint8_t)(ls & 15);
        else
            b[QK_IQ4XS_SCL + c / 2] |= (uint8_t)((ls & 15) << 4);
        sh |= (uint16_t)((ls >> 4) << (2 * c));
    }
    qk_wr16(b + QK_IQ4XS_SCH, sh);
}

#endif
