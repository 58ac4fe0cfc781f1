/* K-quants, one 256-element super-block at a time: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K
 * (FORMATS.md §5, searches of §9). Shared by kquants.c and the CUDA kernels.
 *
 * Each encoder works on one super-block with fixed stack scratch and nothing shared. Two
 * paths per type, as in the reference: without an imatrix the sub-block searches weight by
 * the data alone; with one they weight by qw*sqrt(sigma2 + x^2) (Q6_K: qw itself) and the
 * sub-block scales are themselves quantized by a weighted search. The sub-block scales of
 * the reference path go through the stored fp16 super-block scale before the final
 * re-quantization. */
#ifndef QK_KQUANTS_BLOCK_H
#define QK_KQUANTS_BLOCK_H

#include "qk_float.h"
#include "quant_search_block.h"

#define QK_KQ_FP16_BYTES 2

/* ---- block layouts (byte offsets inside one packed block) -------------------------------- */

/* Q2_K: 4-bit scale|min per 16, 2-bit codes, d, dmin */
#define QK_Q2K_SCALES 0
#define QK_Q2K_QS     (QK_Q2K_SCALES + QKC_QK_K / 16)
#define QK_Q2K_D      (QK_Q2K_QS + QKC_QK_K / 4)
#define QK_Q2K_DMIN   (QK_Q2K_D + QK_KQ_FP16_BYTES)
#define QK_BYTES_q2_k (QK_Q2K_DMIN + QK_KQ_FP16_BYTES)

/* Q3_K: high-bit mask, 2-bit codes, 16 packed 6-bit scales, d */
#define QK_Q3K_HMASK  0
#define QK_Q3K_QS     (QK_Q3K_HMASK + QKC_QK_K / 8)
#define QK_Q3K_SCALES (QK_Q3K_QS + QKC_QK_K / 4)
#define QK_Q3K_D      (QK_Q3K_SCALES + QKC_K_SCALE_SIZE)
#define QK_BYTES_q3_k (QK_Q3K_D + QK_KQ_FP16_BYTES)

/* Q4_K: d, dmin, 8 packed 6-bit scale/min pairs, 4-bit codes */
#define QK_Q4K_D      0
#define QK_Q4K_DMIN   (QK_Q4K_D + QK_KQ_FP16_BYTES)
#define QK_Q4K_SCALES (QK_Q4K_DMIN + QK_KQ_FP16_BYTES)
#define QK_Q4K_QS     (QK_Q4K_SCALES + QKC_K_SCALE_SIZE)
#define QK_BYTES_q4_k (QK_Q4K_QS + QKC_QK_K / 2)

/* Q5_K: as Q4_K with a fifth bit plane before the nibbles */
#define QK_Q5K_D      0
#define QK_Q5K_DMIN   (QK_Q5K_D + QK_KQ_FP16_BYTES)
#define QK_Q5K_SCALES (QK_Q5K_DMIN + QK_KQ_FP16_BYTES)
#define QK_Q5K_QH     (QK_Q5K_SCALES + QKC_K_SCALE_SIZE)
#define QK_Q5K_QS     (QK_Q5K_QH + QKC_QK_K / 8)
#define QK_BYTES_q5_k (QK_Q5K_QS + QKC_QK_K / 2)

/* Q6_K: low nibbles, high 2-bit pairs, int8 scale per 16, d */
#define QK_Q6K_QL     0
#define QK_Q6K_QH     (QK_Q6K_QL + QKC_QK_K / 2)
#define QK_Q6K_SCALES (QK_Q6K_QH + QKC_QK_K / 4)
#define QK_Q6K_D      (QK_Q6K_SCALES + QKC_QK_K / 16)
#define QK_BYTES_q6_k (QK_Q6K_D + QK_KQ_FP16_BYTES)

/* ---- shared packing -------------------------------------------------------------------- */

/* 2-bit "quarter" addressing of Q2_K/Q3_K: each 128-element half owns 32 bytes; byte l holds
 * elements l, l+32, l+64, l+96 of the half in bit pairs 0-1 .. 6-7. */
static inline QK_HD void qk_kq_pack_quarters(const uint8_t *L, uint8_t *qs) {
    for (int h = 0; h < QKC_QK_K; h += 128)
        for (int l = 0; l < 32; l++)
            qs[h / 4 + l] = (uint8_t)((L[h + l] & 3) | ((L[h + l + 32] & 3) << 2) | ((L[h + l + 64] & 3) << 4) |
                                      ((L[h + l + 96] & 3) << 6));
}

static inline QK_HD int qk_kq_quarter_code(const uint8_t *qs, int i) {
    return (qs[32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3;
}

/* Q4_K/Q5_K 12-byte packing of eight 6-bit (scale, min) pairs. */
static inline QK_HD void qk_kq_pack_scale_min6(const uint8_t *ls, const uint8_t *lm, uint8_t *S) {
    for (int j = 0; j < 4; j++) {
        S[j] = (uint8_t)(ls[j] | ((ls[j + 4] >> 4) << 6));
        S[j + 4] = (uint8_t)(lm[j] | ((lm[j + 4] >> 4) << 6));
        S[j + 8] = (uint8_t)((ls[j + 4] & 15) | ((lm[j + 4] & 15) << 4));
    }
}

static inline QK_HD void qk_kq_scale_min6(const uint8_t *S, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = S[j] & 63;
        *mn = S[j + 4] & 63;
    } else {
        *sc = (S[j + 4] & 15) | ((S[j - 4] >> 6) << 4);
        *mn = (S[j + 4] >> 4) | ((S[j] >> 6) << 4);
    }
}

/* Q3_K 12-byte packing of sixteen 6-bit codes (signed scale + 32). */
static inline QK_HD void qk_kq_pack_scales6x16(const uint8_t *l, uint8_t *S) {
    memset(S, 0, QKC_K_SCALE_SIZE);
    for (int s = 0; s < 16; s++) {
        if (s < 8)
            S[s] |= (uint8_t)(l[s] & 15);
        else
            S[s - 8] |= (uint8_t)((l[s] & 15) << 4);
        S[8 + s % 4] |= (uint8_t)((l[s] >> 4) << (2 * (s / 4)));
    }
}

static inline QK_HD int qk_kq_scale6x16(const uint8_t *S, int s) {
    int lo = s < 8 ? S[s] & 15 : S[s - 8] >> 4;
    int hi = (S[8 + s % 4] >> (2 * (s / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

static inline QK_HD float qk_kq_sum_squares(const float *x, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

/* w = qw*sqrt(sigma2 + x^2) for n values; returns their sum (the sub-block's weight). */
static inline QK_HD float qk_kq_imatrix_weights(const float *x, const float *qw, float sigma2, float *w, int n) {
    float sw = 0.0f;
    for (int i = 0; i < n; i++) w[i] = qw[i] * sqrtf(sigma2 + x[i] * x[i]);
    for (int i = 0; i < n; i++) sw += w[i];
    return sw;
}

/* ---- Q2_K ------------------------------------------------------------------------------ */

static inline QK_HD void qk_quant_block_q2_k(const float *x, const float *qw, uint8_t *b) {
    uint8_t L[QKC_QK_K], Laux[16], sc[16];
    float scales[16], mins[16], w[16];
    if (!qw) {
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 16; j++) {
            for (int i = 0; i < 16; i++) w[i] = fabsf(x[16 * j + i]);
            scales[j] = qk_hd_make_qkx2(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, 1);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float is = max_scale > 0.0f ? 15.0f / max_scale : 0.0f;
        const float im = max_min > 0.0f ? 15.0f / max_min : 0.0f;
        for (int j = 0; j < 16; j++)
            sc[j] = (uint8_t)(qk_clampi(qk_nearest_int(is * scales[j]), 0, 15) |
                              (qk_clampi(qk_nearest_int(im * mins[j]), 0, 15) << 4));
        qk_wrh(b + QK_Q2K_D, max_scale > 0.0f ? max_scale / 15.0f : 0.0f);
        qk_wrh(b + QK_Q2K_DMIN, max_min > 0.0f ? max_min / 15.0f : 0.0f);
    } else {
        uint8_t Ls[16], Lm[16];
        float sw[16];
        const float sigma2 = qk_kq_sum_squares(x, QKC_QK_K) / (float)QKC_QK_K;
        for (int j = 0; j < 16; j++) {
            sw[j] = qk_kq_imatrix_weights(x + 16 * j, qw + 16 * j, sigma2, w, 16);
            scales[j] = qk_hd_make_qkx3(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36, 0);
        }
        const float d = qk_hd_make_qp(16, 15, scales, Ls, sw);
        const float dmin = qk_hd_make_qp(16, 15, mins, Lm, sw);
        for (int j = 0; j < 16; j++) sc[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
        qk_wrh(b + QK_Q2K_D, d);
        qk_wrh(b + QK_Q2K_DMIN, dmin);
    }
    const float dh = qk_rdh(b + QK_Q2K_D), mh = qk_rdh(b + QK_Q2K_DMIN);
    for (int j = 0; j < 16; j++) {
        const float D = dh * (float)(sc[j] & 15);
        if (D == 0.0f) continue; /* codes of the search stay; they decode to the min anyway */
        const float M = mh * (float)(sc[j] >> 4);
        for (int i = 0; i < 16; i++) L[16 * j + i] = (uint8_t)qk_clampi(qk_nearest_int((x[16 * j + i] + M) / D), 0, 3);
    }
    memcpy(b + QK_Q2K_SCALES, sc, 16);
    qk_kq_pack_quarters(L, b + QK_Q2K_QS);
}

static inline QK_HD void qk_dequant_part_q2_k(const uint8_t *b, int p, float *dst) {
    const float d = qk_rdh(b + QK_Q2K_D), dmin = qk_rdh(b + QK_Q2K_DMIN);
    for (int s = 2 * p; s < 2 * p + 2; s++) {
        const uint8_t sc = b[QK_Q2K_SCALES + s];
        const float dl = d * (float)(sc & 15), ml = dmin * (float)(sc >> 4);
        for (int i = 16 * s; i < 16 * s + 16; i++)
            dst[i - 32 * p] = dl * (float)qk_kq_quarter_code(b + QK_Q2K_QS, i) - ml;
    }
}

QK_DEQUANT_BY_PARTS(q2_k)

/* ---- Q3_K ------------------------------------------------------------------------------ */

static inline QK_HD void qk_quant_block_q3_k(const float *x, const float *qw, uint8_t *b) {
    int8_t L[QKC_QK_K];
    uint8_t ls[16];
    float scales[16];
    float d;
    if (!qw) {
        float amax = 0.0f, max_scale = 0.0f;
        for (int j = 0; j < 16; j++) {
            scales[j] = qk_hd_make_q3(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        if (max_scale != 0.0f) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; j++) ls[j] = (uint8_t)(qk_clampi(qk_nearest_int(iscale * scales[j]), -32, 31) + 32);
            qk_kq_pack_scales6x16(ls, b + QK_Q3K_SCALES);
            d = 1.0f / iscale;
        } else {
            memset(b + QK_Q3K_SCALES, 0, QKC_K_SCALE_SIZE);
            d = 0.0f;
        }
    } else {
        float w[16], sw[16];
        int8_t Ls[16];
        const float sigma2 = 2.0f * qk_kq_sum_squares(x, QKC_QK_K) / (float)QKC_QK_K;
        for (int j = 0; j < 16; j++) {
            sw[j] = qk_kq_imatrix_weights(x + 16 * j, qw + 16 * j, sigma2, w, 16);
            scales[j] = qk_hd_make_qx(16, 4, x + 16 * j, L + 16 * j, w);
        }
        d = qk_hd_make_qx(16, 32, scales, Ls, sw);
        for (int j = 0; j < 16; j++) ls[j] = (uint8_t)Ls[j];
        qk_kq_pack_scales6x16(ls, b + QK_Q3K_SCALES);
    }
    qk_wrh(b + QK_Q3K_D, d);

    const float dh = qk_rdh(b + QK_Q3K_D);
    for (int j = 0; j < 16; j++) {
        const float D = dh * (float)qk_kq_scale6x16(b + QK_Q3K_SCALES, j);
        if (D == 0.0f) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(qk_clampi(qk_nearest_int(x[16 * j + i] / D), -4, 3) + 4);
    }
    /* codes 0..7: the high bit goes to hmask (set means "no -4"), the low two to qs */
    uint8_t low[QKC_QK_K];
    uint8_t *hmask = b + QK_Q3K_HMASK;
    memset(hmask, 0, QKC_QK_K / 8);
    for (int i = 0; i < QKC_QK_K; i++) {
        int q = L[i];
        if (q > 3) {
            hmask[i % 32] |= (uint8_t)(1u << (i / 32));
            q -= 4;
        }
        low[i] = (uint8_t)q;
    }
    qk_kq_pack_quarters(low, b + QK_Q3K_QS);
}

static inline QK_HD void qk_dequant_part_q3_k(const uint8_t *b, int p, float *dst) {
    const float d = qk_rdh(b + QK_Q3K_D);
    for (int s = 2 * p; s < 2 * p + 2; s++) {
        const float dl = d * (float)qk_kq_scale6x16(b + QK_Q3K_SCALES, s);
        for (int i = 16 * s; i < 16 * s + 16; i++) {
            const int hb = (b[QK_Q3K_HMASK + i % 32] >> (i / 32)) & 1;
            dst[i - 32 * p] = dl * (float)(qk_kq_quarter_code(b + QK_Q3K_QS, i) - (hb ? 0 : 4));
        }
    }
}

QK_DEQUANT_BY_PARTS(q3_k)

/* ---- Q4_K and Q5_K: 8 sub-blocks of 32, 6-bit scale and min each ------------------------- */

/* Search parameters of the reference (no imatrix) path; the imatrix path uses the same
 * rmin/rdelta/nstep for both types. Functions rather than host constants, so that device
 * code has them too. */
typedef struct qk_kx_params {
    int nmax;
    float rmin;
    int nstep;
} qk_kx_params;

static inline QK_HD qk_kx_params qk_kx_params_q4_k(void) {
    qk_kx_params p = {15, -1.0f, 20};
    return p;
}
static inline QK_HD qk_kx_params qk_kx_params_q5_k(void) {
    qk_kx_params p = {31, -0.5f, 15};
    return p;
}

/* Fills the 12 scale bytes at S, writes d and dmin at b+off_d, b+off_d+2, and leaves the
 * final codes (0..nmax) in L. */
static inline QK_HD void qk_kq_quant_scale_min_block(const float *x, const float *qw, const qk_kx_params *p, uint8_t *b,
                                                     int off_d, uint8_t *L) {
    uint8_t ls[8], lm[8], Laux[32];
    float scales[8], mins[8], w[32];
    uint8_t *S = b + off_d + 2 * QK_KQ_FP16_BYTES;
    if (!qw) {
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 8; j++) {
            const float av = sqrtf(qk_kq_sum_squares(x + 32 * j, 32) / 32.0f);
            for (int i = 0; i < 32; i++) w[i] = av + fabsf(x[32 * j + i]);
            scales[j] =
                qk_hd_make_qkx2(32, p->nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, p->rmin, 0.1f, p->nstep, 0);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
        const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
        for (int j = 0; j < 8; j++) {
            ls[j] = (uint8_t)qk_clampi(qk_nearest_int(inv_scale * scales[j]), 0, 63);
            lm[j] = (uint8_t)qk_clampi(qk_nearest_int(inv_min * mins[j]), 0, 63);
        }
        qk_wrh(b + off_d, max_scale / 63.0f);
        qk_wrh(b + off_d + QK_KQ_FP16_BYTES, max_min / 63.0f);
    } else {
        float sw[8];
        const float sigma2 = 2.0f * qk_kq_sum_squares(x, QKC_QK_K) / (float)QKC_QK_K;
        for (int j = 0; j < 8; j++) {
            sw[j] = qk_kq_imatrix_weights(x + 32 * j, qw + 32 * j, sigma2, w, 32);
            scales[j] = qk_hd_make_qkx3(32, p->nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, 0);
        }
        const float d = qk_hd_make_qp(8, 63, scales, ls, sw);
        const float dmin = qk_hd_make_qp(8, 63, mins, lm, sw);
        qk_wrh(b + off_d, d);
        qk_wrh(b + off_d + QK_KQ_FP16_BYTES, dmin);
    }
    qk_kq_pack_scale_min6(ls, lm, S);

    const float dh = qk_rdh(b + off_d), mh = qk_rdh(b + off_d + QK_KQ_FP16_BYTES);
    for (int j = 0; j < 8; j++) {
        const float D = dh * (float)ls[j];
        if (D == 0.0f) continue;
        const float M = mh * (float)lm[j];
        for (int i = 0; i < 32; i++)
            L[32 * j + i] = (uint8_t)qk_clampi(qk_nearest_int((x[32 * j + i] + M) / D), 0, p->nmax);
    }
}

/* 4-bit codes of Q4_K/Q5_K: 64-element chunk c uses bytes 32c..32c+31, low nibble for
 * element 64c+l, high nibble for 64c+32+l. */
static inline QK_HD void qk_kq_pack_nibbles64(const uint8_t *L, uint8_t *qs) {
    for (int c = 0; c < QKC_QK_K / 64; c++)
        for (int l = 0; l < 32; l++)
            qs[32 * c + l] = (uint8_t)((L[64 * c + l] & 15) | ((L[64 * c + 32 + l] & 15) << 4));
}

static inline QK_HD int qk_kq_nibble64(const uint8_t *qs, int i) {
    return (qs[32 * (i / 64) + i % 32] >> (4 * ((i / 32) % 2))) & 15;
}

static inline QK_HD void qk_quant_block_q4_k(const float *x, const float *qw, uint8_t *b) {
    uint8_t L[QKC_QK_K];
    const qk_kx_params p = qk_kx_params_q4_k();
    qk_kq_quant_scale_min_block(x, qw, &p, b, QK_Q4K_D, L);
    qk_kq_pack_nibbles64(L, b + QK_Q4K_QS);
}

static inline QK_HD void qk_quant_block_q5_k(const float *x, const float *qw, uint8_t *b) {
    uint8_t L[QKC_QK_K];
    const qk_kx_params p = qk_kx_params_q5_k();
    qk_kq_quant_scale_min_block(x, qw, &p, b, QK_Q5K_D, L);
    uint8_t *qh = b + QK_Q5K_QH;
    memset(qh, 0, QKC_QK_K / 8);
    for (int i = 0; i < QKC_QK_K; i++)
        if (L[i] > 15) qh[i % 32] |= (uint8_t)(1u << (i / 32));
    qk_kq_pack_nibbles64(L, b + QK_Q5K_QS);
}

static inline QK_HD void qk_dequant_part_q4_k(const uint8_t *b, int s, float *dst) {
    const float d = qk_rdh(b + QK_Q4K_D), dmin = qk_rdh(b + QK_Q4K_DMIN);
    int sc, mn;
    qk_kq_scale_min6(b + QK_Q4K_SCALES, s, &sc, &mn);
    const float d1 = d * (float)sc, m1 = dmin * (float)mn;
    for (int i = 32 * s; i < 32 * s + 32; i++) dst[i - 32 * s] = d1 * (float)qk_kq_nibble64(b + QK_Q4K_QS, i) - m1;
}

QK_DEQUANT_BY_PARTS(q4_k)

static inline QK_HD void qk_dequant_part_q5_k(const uint8_t *b, int s, float *dst) {
    const float d = qk_rdh(b + QK_Q5K_D), dmin = qk_rdh(b + QK_Q5K_DMIN);
    int sc, mn;
    qk_kq_scale_min6(b + QK_Q5K_SCALES, s, &sc, &mn);
    const float d1 = d * (float)sc, m1 = dmin * (float)mn;
    for (int i = 32 * s; i < 32 * s + 32; i++) {
        const int q = qk_kq_nibble64(b + QK_Q5K_QS, i) | (((b[QK_Q5K_QH + i % 32] >> s) & 1) << 4);
        dst[i - 32 * s] = d1 * (float)q - m1;
    }
}

QK_DEQUANT_BY_PARTS(q5_k)

/* ---- Q6_K ------------------------------------------------------------------------------ */

static inline QK_HD void qk_quant_block_q6_k(const float *x, const float *qw, uint8_t *b) {
    int8_t L[QKC_QK_K];
    float scales[16];
    float amax = 0.0f, max_scale = 0.0f;
    for (int j = 0; j < 16; j++) {
        /* the imatrix path weights by the imatrix alone, unlike the other K-quants */
        scales[j] = qk_hd_make_qx(16, 32, x + 16 * j, L + 16 * j, qw ? qw + 16 * j : NULL);
        if (fabsf(scales[j]) > amax) {
            amax = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    if (amax < QKC_GROUP_MAX_EPS) {
        memset(b, 0, QK_BYTES_q6_k);
        return;
    }
    const float iscale = -128.0f / max_scale;
    int8_t *sc = (int8_t *)(b + QK_Q6K_SCALES);
    for (int j = 0; j < 16; j++) sc[j] = (int8_t)qk_clampi(qk_nearest_int(iscale * scales[j]), -128, 127);
    qk_wrh(b + QK_Q6K_D, 1.0f / iscale);

    const float dh = qk_rdh(b + QK_Q6K_D);
    for (int j = 0; j < 16; j++) {
        const float D = dh * (float)sc[j];
        if (D == 0.0f) continue;
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (int8_t)(qk_clampi(qk_nearest_int(x[16 * j + i] / D), -32, 31) + 32);
    }
    uint8_t *ql = b + QK_Q6K_QL, *qh = b + QK_Q6K_QH;
    for (int h = 0; h < QKC_QK_K / 128; h++) {
        const int8_t *q = L + 128 * h;
        for (int l = 0; l < 32; l++) {
            ql[64 * h + l] = (uint8_t)((q[l] & 15) | ((q[l + 64] & 15) << 4));
            ql[64 * h + l + 32] = (uint8_t)((q[l + 32] & 15) | ((q[l + 96] & 15) << 4));
            qh[32 * h + l] =
                (uint8_t)((q[l] >> 4) | ((q[l + 32] >> 4) << 2) | ((q[l + 64] >> 4) << 4) | ((q[l + 96] >> 4) << 6));
        }
    }
}

static inline QK_HD void qk_dequant_part_q6_k(const uint8_t *b, int p, float *dst) {
    const float d = qk_rdh(b + QK_Q6K_D);
    for (int i = 32 * p; i < 32 * p + 32; i++) {
        const int h = i / 128, g = (i % 128) / 32, l = i % 32;
        const int lo = (b[QK_Q6K_QL + 64 * h + l + 32 * (g % 2)] >> (4 * (g / 2))) & 15;
        const int hi = (b[QK_Q6K_QH + 32 * h + l] >> (2 * g)) & 3;
        const float sc = (float)(int8_t)b[QK_Q6K_SCALES + i / 16];
        dst[i - 32 * p] = d * sc * (float)((lo | (hi << 4)) - 32);
    }
}

QK_DEQUANT_BY_PARTS(q6_k)

#endif
