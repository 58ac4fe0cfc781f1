/* IQ4_NL and IQ4_XS (FORMATS.md §6.8, §6.9, §6.11): 4-bit codes into the non-linear table
 * kvalues_iq4nl, one scale per 32 values (IQ4_NL) or 6-bit sub-scales under one fp16 scale
 * per 256 values (IQ4_XS). */
#include <math.h>

#include "cpu_kernels.h"
#include "iquants_block.h"
#include "qk_float.h"

enum {
    BLK = QK_IQ4_BLK, /* the unit of the scale search, and of the half-split nibble layout */
    NTRY = 7,         /* ggml_quantize_chunk's scale search width for both types */
    /* IQ4_NL */
    NL_QK = QKC_QK4_NL,
    NL_D = QK_IQ4NL_D, /* layouts: iquants_block.h */
    NL_QS = QK_IQ4NL_QS,
    NL_BYTES = QK_IQ4NL_BYTES,
    /* IQ4_XS */
    XS_QK = QKC_QK_K,
    XS_NB = QK_IQ4XS_NB,
    XS_D = QK_IQ4XS_D,
    XS_SCH = QK_IQ4XS_SCH,
    XS_SCL = QK_IQ4XS_SCL,
    XS_QS = QK_IQ4XS_QS,
    XS_BYTES = QK_IQ4XS_BYTES,
};

static void pack_nibbles(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < BLK / 2; j++) qs[j] = (uint8_t)(L[j] | L[j + BLK / 2] << 4);
}

void qk_cpu_dequant_iq4_nl(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / NL_QK; i++) qk_dequant_block_iq4_nl(b + i * NL_BYTES, dst + i * NL_QK);
}

void qk_cpu_dequant_iq4_xs(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / XS_QK; i++) qk_dequant_block_iq4_xs(b + i * XS_BYTES, dst + i * XS_QK);
}

/* Index of the table value nearest to v; ties go to the upper neighbour. */
static int nearest_code(float v) {
    const int8_t *kv = qk_kvalues_iq4nl;
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

static void codes_for(const float *x, float id, uint8_t *L) {
    for (int j = 0; j < BLK; j++) L[j] = (uint8_t)nearest_code(id * x[j]);
}

/* The encoder's weights for one 32-block: qw*sqrt(sigma2 + x^2), or x^2 without an imatrix.
 * An imatrix that is all zero here leaves nothing to weigh: fall back to x^2 so the least
 * squares stay defined (the block's weighted error is zero whatever we pick). */
static void block_weights(const float *x, const float *qw, float sigma2, float *w) {
    float sum = 0.0f;
    if (qw) {
        for (int j = 0; j < BLK; j++) sum += w[j] = qw[j] * sqrtf(sigma2 + x[j] * x[j]);
        if (sum > 0.0f) return;
    }
    for (int j = 0; j < BLK; j++) w[j] = x[j] * x[j];
}

/* §6.11 scale search over one 32-block: least-squares scale of the codes found with 1/d,
 * d = max/127, then of the codes found with (t - 127)/max for t = -NTRY..NTRY, keeping the best
 * (sumqx^2/sumq2). The result may be negative. 0 for an (almost) all-zero block. */
static float block_scale(const float *x, const float *w) {
    const int8_t *kv = qk_kvalues_iq4nl;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < BLK; j++) {
        float ax = fabsf(x[j]);
        if (ax > amax) amax = ax, max = x[j];
    }
    if (amax < QKC_GROUP_MAX_EPS) return 0.0f;

    float id = 1.0f / (-max / kv[0]);
    float sumqx = 0.0f, sumq2 = 0.0f;
    for (int j = 0; j < BLK; j++) {
        float q = kv[nearest_code(id * x[j])];
        sumqx += w[j] * q * x[j];
        sumq2 += w[j] * q * q;
    }
    float d = sumqx / sumq2;
    float best = d * sumqx;
    for (int t = -NTRY; t <= NTRY; t++) {
        id = (float)(t + kv[0]) / max;
        sumqx = sumq2 = 0.0f;
        for (int j = 0; j < BLK; j++) {
            float q = kv[nearest_code(id * x[j])];
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

static float sum_squares_sigma2(const float *x, int n) {
    float s = 0.0f;
    for (int j = 0; j < n; j++) s += x[j] * x[j];
    return s * (2.0f / (float)n);
}

void qk_cpu_quant_iq4_nl(const float *src, void *dst, int64_t n, const float *qw) {
    uint8_t *b = dst;
    float w[BLK];
    uint8_t L[BLK];
    for (int64_t i = 0; i < n / NL_QK; i++, b += NL_BYTES, src += NL_QK) {
        block_weights(src, qw ? qw + NL_QK * i : NULL, sum_squares_sigma2(src, NL_QK), w);
        const float d = block_scale(src, w);
        qk_wrh(b + NL_D, d);
        /* codes from the unrounded scale, as ggml_quantize_chunk does */
        codes_for(src, d != 0.0f ? 1.0f / d : 0.0f, L);
        pack_nibbles(L, b + NL_QS);
    }
}

void qk_cpu_quant_iq4_xs(const float *src, void *dst, int64_t n, const float *qw) {
    uint8_t *b = dst;
    float w[BLK], scales[XS_NB];
    uint8_t L[BLK];
    for (int64_t i = 0; i < n / XS_QK; i++, b += XS_BYTES, src += XS_QK) {
        const float sigma2 = sum_squares_sigma2(src, XS_QK);
        float max_scale = 0.0f, amax_scale = 0.0f;
        for (int c = 0; c < XS_NB; c++) {
            block_weights(src + BLK * c, qw ? qw + XS_QK * i + BLK * c : NULL, sigma2, w);
            scales[c] = block_scale(src + BLK * c, w);
            if (fabsf(scales[c]) > amax_scale) amax_scale = fabsf(scales[c]), max_scale = scales[c];
        }
        /* the largest block gets sub-scale -32, so D carries the opposite sign of its scale */
        const float d = -max_scale / 32.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        qk_wrh(b + XS_D, d);
        uint16_t sh = 0;
        for (int c = 0; c < XS_NB; c++) {
            const int l = qk_clampi(qk_nearest_int(id * scales[c]), -32, 31);
            const float dl = d * (float)l;
            codes_for(src + BLK * c, dl != 0.0f ? 1.0f / dl : 0.0f, L);
            pack_nibbles(L, b + XS_QS + (BLK / 2) * c);
            const int ls = l + 32;
            if (c % 2 == 0)
                b[XS_SCL + c / 2] = (uint8_t)(ls & 15);
            else
                b[XS_SCL + c / 2] |= (uint8_t)((ls & 15) << 4);
            sh |= (uint16_t)((ls >> 4) << (2 * c));
        }
        qk_wr16(b + XS_SCH, sh);
    }
}
