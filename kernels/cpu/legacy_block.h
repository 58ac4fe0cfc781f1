/* Legacy 32-element blocks, one block at a time: Q4_0, Q4_1, Q5_0, Q5_1 (one layout struct,
 * one codec) and Q8_0 (FORMATS.md §4, §9.6). Shared by legacy.c and the CUDA kernels.
 *
 * Without an imatrix the encoders are ggml's closed formulas and reproduce its bytes; with
 * one, Q4_0/Q5_0 use the symmetric search and Q4_1/Q5_1 the scale+min search, weighting
 * each value by qw*sqrt(sigma2 + x^2) with sigma2 the mean square of the whole row. */
#ifndef QK_LEGACY_BLOCK_H
#define QK_LEGACY_BLOCK_H

#include "qk_float.h"
#include "quant_search_block.h"

/* A 4- or 5-bit legacy block: fp16 d, optional fp16 m, optional 32-bit high-bit word,
 * half-split nibbles. Offsets are byte offsets within the packed block. */
typedef struct qk_legacy_layout {
    int qk;   /* elements per block */
    int bits; /* 4 or 5 */
    int has_min;
    int off_m;  /* fp16 m, if has_min */
    int off_qh; /* u32 high bits, if bits == 5 */
    int off_qs; /* qk/2 bytes of nibbles */
    int bytes;
} qk_legacy_layout;

#define QK_LEG_OFF_D      0
#define QK_LEG_FP16_BYTES 2
#define QK_LEG_QH_BYTES   4

/* Block sizes: d, [m], [qh], then qk/2 bytes of nibbles. */
#define QK_BYTES_q4_0 (QK_LEG_FP16_BYTES + QKC_QK4_0 / 2)
#define QK_BYTES_q4_1 (2 * QK_LEG_FP16_BYTES + QKC_QK4_1 / 2)
#define QK_BYTES_q5_0 (QK_LEG_FP16_BYTES + QK_LEG_QH_BYTES + QKC_QK5_0 / 2)
#define QK_BYTES_q5_1 (2 * QK_LEG_FP16_BYTES + QK_LEG_QH_BYTES + QKC_QK5_1 / 2)

/* Functions rather than host constants, so that device code can have them too. */
static inline QK_HD qk_legacy_layout qk_layout_q4_0(void) {
    qk_legacy_layout t = {QKC_QK4_0, 4, 0, 0, 0, QK_LEG_FP16_BYTES, QK_BYTES_q4_0};
    return t;
}
static inline QK_HD qk_legacy_layout qk_layout_q4_1(void) {
    qk_legacy_layout t = {QKC_QK4_1, 4, 1, QK_LEG_FP16_BYTES, 0, 2 * QK_LEG_FP16_BYTES, QK_BYTES_q4_1};
    return t;
}
static inline QK_HD qk_legacy_layout qk_layout_q5_0(void) {
    qk_legacy_layout t = {QKC_QK5_0, 5, 0, 0, QK_LEG_FP16_BYTES, QK_LEG_FP16_BYTES + QK_LEG_QH_BYTES, QK_BYTES_q5_0};
    return t;
}
static inline QK_HD qk_legacy_layout qk_layout_q5_1(void) {
    qk_legacy_layout t = {
        QKC_QK5_1,    5, 1, QK_LEG_FP16_BYTES, 2 * QK_LEG_FP16_BYTES, 2 * QK_LEG_FP16_BYTES + QK_LEG_QH_BYTES,
        QK_BYTES_q5_1};
    return t;
}

/* Q8_0: fp16 d, then qk int8 codes. */
#define QK_Q8_0_OFF_QS (QK_LEG_OFF_D + QK_LEG_FP16_BYTES)
#define QK_BYTES_q8_0  (QK_Q8_0_OFF_QS + QKC_QK8_0)

/* Largest block of this family, for stack scratch. */
#define QK_LEGACY_QK_MAX 32

/* ---- codes <-> bytes ------------------------------------------------------------------- */

static inline QK_HD void qk_legacy_unpack_codes(const qk_legacy_layout *t, const uint8_t *b, uint8_t *q) {
    const int n_half = t->qk / 2;
    const uint8_t *qs = b + t->off_qs;
    for (int j = 0; j < n_half; j++) {
        q[j] = qs[j] & 0x0F;
        q[j + n_half] = qs[j] >> 4;
    }
    if (t->bits == 5) {
        uint32_t qh = qk_rd32(b + t->off_qh);
        for (int i = 0; i < t->qk; i++) q[i] |= (uint8_t)(((qh >> i) & 1u) << 4);
    }
}

static inline QK_HD void qk_legacy_pack_codes(const qk_legacy_layout *t, const uint8_t *q, uint8_t *b) {
    const int n_half = t->qk / 2;
    uint8_t *qs = b + t->off_qs;
    for (int j = 0; j < n_half; j++) qs[j] = (uint8_t)((q[j] & 0x0F) | ((q[j + n_half] & 0x0F) << 4));
    if (t->bits == 5) {
        uint32_t qh = 0;
        for (int i = 0; i < t->qk; i++) qh |= (uint32_t)((q[i] >> 4) & 1) << i;
        qk_wr32(b + t->off_qh, qh);
    }
}

/* ---- dequantize ------------------------------------------------------------------------ */

static inline QK_HD void qk_dequant_block_legacy(const qk_legacy_layout *t, const uint8_t *b, float *dst) {
    const int offset = 1 << (t->bits - 1); /* symmetric types centre their codes */
    uint8_t q[QK_LEGACY_QK_MAX];
    const float d = qk_rdh(b + QK_LEG_OFF_D);
    qk_legacy_unpack_codes(t, b, q);
    if (t->has_min) {
        const float m = qk_rdh(b + t->off_m);
        for (int i = 0; i < t->qk; i++) dst[i] = (float)q[i] * d + m;
    } else {
        /* (q - offset) * d, not q*d - offset*d: the sign of a zero result matters */
        for (int i = 0; i < t->qk; i++) dst[i] = (float)(q[i] - offset) * d;
    }
}

/* ---- quantize without imatrix: ggml's closed formulas ---------------------------------- */

/* The reference encoders round with a C conversion of v + 0.5 (v >= 0): truncation. */
static inline QK_HD int qk_legacy_trunc_code(float v, int top) { return qk_clampi(qk_trunc_int(v), 0, top); }

static inline QK_HD void qk_quant_block_symmetric(const qk_legacy_layout *t, const float *x, uint8_t *b) {
    const int offset = 1 << (t->bits - 1), top = (1 << t->bits) - 1;
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < t->qk; i++) {
        if (amax < fabsf(x[i])) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    const float d = max / (float)-offset;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const float bias = (float)offset + 0.5f;
    uint8_t q[QK_LEGACY_QK_MAX];
    for (int i = 0; i < t->qk; i++) q[i] = (uint8_t)qk_legacy_trunc_code(x[i] * id + bias, top);
    qk_wrh(b + QK_LEG_OFF_D, d);
    qk_legacy_pack_codes(t, q, b);
}

static inline QK_HD void qk_quant_block_minmax(const qk_legacy_layout *t, const float *x, uint8_t *b) {
    const int top = (1 << t->bits) - 1;
    float min = x[0], max = x[0];
    for (int i = 1; i < t->qk; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
    }
    const float d = (max - min) / (float)top;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t q[QK_LEGACY_QK_MAX];
    for (int i = 0; i < t->qk; i++) q[i] = (uint8_t)qk_legacy_trunc_code((x[i] - min) * id + 0.5f, top);
    qk_wrh(b + QK_LEG_OFF_D, d);
    qk_wrh(b + t->off_m, min);
    qk_legacy_pack_codes(t, q, b);
}

/* ---- quantize with imatrix (§9.6) -------------------------------------------------------- */

/* The row statistic sigma2 is a sequential sum over the whole row, taken in pieces: acc is
 * the sum so far, the result the sum after x[0..n). Any split gives the same bits. */
static inline QK_HD float qk_legacy_sum_x2(float acc, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) acc += x[i] * x[i];
    return acc;
}

static inline QK_HD float qk_legacy_sigma2(float sum_x2, int64_t n) { return sum_x2 / (float)n; }

static inline QK_HD void qk_quant_block_weighted(const qk_legacy_layout *t, const float *x, const float *qw,
                                                 float sigma2, uint8_t *b) {
    float w[QK_LEGACY_QK_MAX];
    uint8_t q[QK_LEGACY_QK_MAX];
    for (int i = 0; i < t->qk; i++) w[i] = qw[i] * sqrtf(sigma2 + x[i] * x[i]);
    if (t->has_min) {
        uint8_t aux[QK_LEGACY_QK_MAX];
        float min_mag;
        const float d = qk_hd_make_qkx3(t->qk, (1 << t->bits) - 1, x, w, q, &min_mag, aux, -0.9f, 0.05f, 36, 0);
        qk_wrh(b + QK_LEG_OFF_D, d);
        qk_wrh(b + t->off_m, -min_mag);
    } else {
        int8_t l[QK_LEGACY_QK_MAX];
        const float d = qk_hd_make_qx(t->qk, 1 << (t->bits - 1), x, l, w);
        for (int i = 0; i < t->qk; i++) q[i] = (uint8_t)l[i];
        qk_wrh(b + QK_LEG_OFF_D, d);
    }
    qk_legacy_pack_codes(t, q, b);
}

/* One block, either path: qw NULL selects the closed formula (sigma2 unused). */
static inline QK_HD void qk_quant_block_legacy(const qk_legacy_layout *t, const float *x, const float *qw, float sigma2,
                                               uint8_t *b) {
    if (qw)
        qk_quant_block_weighted(t, x, qw, sigma2, b);
    else if (t->has_min)
        qk_quant_block_minmax(t, x, b);
    else
        qk_quant_block_symmetric(t, x, b);
}

/* ---- Q8_0 ------------------------------------------------------------------------------ */

/* roundf (ties away from zero) without libm; exact for |v| < 2^23, where v - trunc(v) is exact. */
static inline QK_HD int qk_round_away(float v) {
    const float a = fabsf(v);
    int i = qk_trunc_int(a);
    if (a - (float)i >= 0.5f) i++;
    return v < 0.0f ? -i : i;
}

static inline QK_HD void qk_dequant_block_q8_0(const uint8_t *b, float *dst) {
    const float d = qk_rdh(b + QK_LEG_OFF_D);
    for (int i = 0; i < QKC_QK8_0; i++) dst[i] = (float)(int8_t)b[QK_Q8_0_OFF_QS + i] * d;
}

/* The imatrix has no use here: ggml has a single Q8_0 encoder. */
static inline QK_HD void qk_quant_block_q8_0(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int i = 0; i < QKC_QK8_0; i++) amax = fmaxf(amax, fabsf(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    qk_wrh(b + QK_LEG_OFF_D, d);
    for (int i = 0; i < QKC_QK8_0; i++) b[QK_Q8_0_OFF_QS + i] = (uint8_t)(int8_t)qk_round_away(x[i] * id);
}

#endif
