/* Legacy 32-element blocks: Q4_0, Q4_1, Q5_0, Q5_1 (one traits table, one codec) and Q8_0
 * (FORMATS.md §4, §9.6).
 *
 * Without an imatrix the encoders are ggml's closed formulas and reproduce its bytes; with
 * one, Q4_0/Q5_0 use the symmetric search and Q4_1/Q5_1 the scale+min search, weighting
 * each value by qw*sqrt(sigma2 + x^2) with sigma2 the mean square of the whole row. */
#include "cpu_kernels.h"
#include "qk_float.h"
#include "quant_search.h"

/* A 4- or 5-bit legacy block: fp16 d, optional fp16 m, optional 32-bit high-bit word,
 * half-split nibbles. Offsets are byte offsets within the packed block. */
typedef struct legacy_layout {
    int qk;   /* elements per block */
    int bits; /* 4 or 5 */
    int has_min;
    int off_m;  /* fp16 m, if has_min */
    int off_qh; /* u32 high bits, if bits == 5 */
    int off_qs; /* qk/2 bytes of nibbles */
    int bytes;
} legacy_layout;

#define OFF_D      0
#define FP16_BYTES 2
#define QH_BYTES   4

static const legacy_layout Q4_0 = {QKC_QK4_0, 4, 0, 0, 0, OFF_D + FP16_BYTES, OFF_D + FP16_BYTES + QKC_QK4_0 / 2};
static const legacy_layout Q4_1 = {QKC_QK4_1, 4, 1, FP16_BYTES, 0, 2 * FP16_BYTES, 2 * FP16_BYTES + QKC_QK4_1 / 2};
static const legacy_layout Q5_0 = {
    QKC_QK5_0, 5, 0, 0, FP16_BYTES, FP16_BYTES + QH_BYTES, FP16_BYTES + QH_BYTES + QKC_QK5_0 / 2};
static const legacy_layout Q5_1 = {
    QKC_QK5_1, 5, 1, FP16_BYTES, 2 * FP16_BYTES, 2 * FP16_BYTES + QH_BYTES, 2 * FP16_BYTES + QH_BYTES + QKC_QK5_1 / 2};

/* Q8_0: fp16 d, then qk int8 codes. */
#define Q8_0_OFF_QS (OFF_D + FP16_BYTES)
#define Q8_0_BYTES  (Q8_0_OFF_QS + QKC_QK8_0)

/* Largest block of this family, for stack scratch. */
#define LEGACY_QK_MAX 32

/* ---- codes <-> bytes ------------------------------------------------------------------- */

static void unpack_codes(const legacy_layout *t, const uint8_t *b, uint8_t *q) {
    const int half = t->qk / 2;
    const uint8_t *qs = b + t->off_qs;
    for (int j = 0; j < half; j++) {
        q[j] = qs[j] & 0x0F;
        q[j + half] = qs[j] >> 4;
    }
    if (t->bits == 5) {
        uint32_t qh = qk_rd32(b + t->off_qh);
        for (int i = 0; i < t->qk; i++) q[i] |= (uint8_t)(((qh >> i) & 1u) << 4);
    }
}

static void pack_codes(const legacy_layout *t, const uint8_t *q, uint8_t *b) {
    const int half = t->qk / 2;
    uint8_t *qs = b + t->off_qs;
    for (int j = 0; j < half; j++) qs[j] = (uint8_t)((q[j] & 0x0F) | ((q[j + half] & 0x0F) << 4));
    if (t->bits == 5) {
        uint32_t qh = 0;
        for (int i = 0; i < t->qk; i++) qh |= (uint32_t)((q[i] >> 4) & 1) << i;
        qk_wr32(b + t->off_qh, qh);
    }
}

/* ---- dequantize ------------------------------------------------------------------------ */

static void dequant_legacy(const legacy_layout *t, const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    const int offset = 1 << (t->bits - 1); /* symmetric types centre their codes */
    uint8_t q[LEGACY_QK_MAX];
    for (int64_t ib = 0; ib < n / t->qk; ib++, b += t->bytes, dst += t->qk) {
        const float d = qk_rdh(b + OFF_D);
        unpack_codes(t, b, q);
        if (t->has_min) {
            const float m = qk_rdh(b + t->off_m);
            for (int i = 0; i < t->qk; i++) dst[i] = (float)q[i] * d + m;
        } else {
            /* (q - offset) * d, not q*d - offset*d: the sign of a zero result matters */
            for (int i = 0; i < t->qk; i++) dst[i] = (float)(q[i] - offset) * d;
        }
    }
}

/* ---- quantize without imatrix: ggml's closed formulas ---------------------------------- */

/* The reference encoders round with a C conversion of v + 0.5 (v >= 0): truncation. */
static inline int trunc_code(float v, int top) { return qk_clampi((int)v, 0, top); }

static void quant_block_symmetric(const legacy_layout *t, const float *x, uint8_t *b) {
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
    uint8_t q[LEGACY_QK_MAX];
    for (int i = 0; i < t->qk; i++) q[i] = (uint8_t)trunc_code(x[i] * id + bias, top);
    qk_wrh(b + OFF_D, d);
    pack_codes(t, q, b);
}

static void quant_block_minmax(const legacy_layout *t, const float *x, uint8_t *b) {
    const int top = (1 << t->bits) - 1;
    float min = x[0], max = x[0];
    for (int i = 1; i < t->qk; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
    }
    const float d = (max - min) / (float)top;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t q[LEGACY_QK_MAX];
    for (int i = 0; i < t->qk; i++) q[i] = (uint8_t)trunc_code((x[i] - min) * id + 0.5f, top);
    qk_wrh(b + OFF_D, d);
    qk_wrh(b + t->off_m, min);
    pack_codes(t, q, b);
}

/* ---- quantize with imatrix (§9.6) -------------------------------------------------------- */

static float row_sigma2(const float *x, int64_t n) {
    float sum_x2 = 0.0f;
    for (int64_t i = 0; i < n; i++) sum_x2 += x[i] * x[i];
    return sum_x2 / (float)n;
}

static void quant_block_weighted(const legacy_layout *t, const float *x, const float *qw, float sigma2, uint8_t *b) {
    float w[LEGACY_QK_MAX];
    uint8_t q[LEGACY_QK_MAX];
    for (int i = 0; i < t->qk; i++) w[i] = qw[i] * sqrtf(sigma2 + x[i] * x[i]);
    if (t->has_min) {
        uint8_t aux[LEGACY_QK_MAX];
        float min_mag;
        const float d = qk_make_qkx3(t->qk, (1 << t->bits) - 1, x, w, q, &min_mag, aux, -0.9f, 0.05f, 36, 0);
        qk_wrh(b + OFF_D, d);
        qk_wrh(b + t->off_m, -min_mag);
    } else {
        int8_t l[LEGACY_QK_MAX];
        const float d = qk_make_qx(t->qk, 1 << (t->bits - 1), x, l, w);
        for (int i = 0; i < t->qk; i++) q[i] = (uint8_t)l[i];
        qk_wrh(b + OFF_D, d);
    }
    pack_codes(t, q, b);
}

static void quant_legacy(const legacy_layout *t, const float *src, void *dst, int64_t n, const float *qw) {
    uint8_t *b = dst;
    const int64_t nb = n / t->qk;
    if (qw) {
        const float sigma2 = row_sigma2(src, n);
        for (int64_t ib = 0; ib < nb; ib++)
            quant_block_weighted(t, src + ib * t->qk, qw + ib * t->qk, sigma2, b + ib * t->bytes);
    } else {
        for (int64_t ib = 0; ib < nb; ib++) {
            if (t->has_min)
                quant_block_minmax(t, src + ib * t->qk, b + ib * t->bytes);
            else
                quant_block_symmetric(t, src + ib * t->qk, b + ib * t->bytes);
        }
    }
}

/* ---- Q8_0 ------------------------------------------------------------------------------ */

/* roundf (ties away from zero) without libm; exact for |v| < 2^23, where v - trunc(v) is exact. */
static inline int round_away(float v) {
    const float a = fabsf(v);
    int i = (int)a;
    if (a - (float)i >= 0.5f) i++;
    return v < 0.0f ? -i : i;
}

void qk_cpu_dequant_q8_0(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t ib = 0; ib < n / QKC_QK8_0; ib++, b += Q8_0_BYTES, dst += QKC_QK8_0) {
        const float d = qk_rdh(b + OFF_D);
        for (int i = 0; i < QKC_QK8_0; i++) dst[i] = (float)(int8_t)b[Q8_0_OFF_QS + i] * d;
    }
}

/* The imatrix is ignored: ggml has a single Q8_0 encoder. */
void qk_cpu_quant_q8_0(const float *src, void *dst, int64_t n, const float *qw) {
    (void)qw;
    uint8_t *b = dst;
    for (int64_t ib = 0; ib < n / QKC_QK8_0; ib++, b += Q8_0_BYTES, src += QKC_QK8_0) {
        float amax = 0.0f;
        for (int i = 0; i < QKC_QK8_0; i++) amax = fmaxf(amax, fabsf(src[i]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        qk_wrh(b + OFF_D, d);
        for (int i = 0; i < QKC_QK8_0; i++) b[Q8_0_OFF_QS + i] = (uint8_t)(int8_t)round_away(src[i] * id);
    }
}

/* ---- entry points ---------------------------------------------------------------------- */

#define LEGACY_ENTRY(T, layout)                                                                                        \
    void qk_cpu_dequant_##T(const void *src, float *dst, int64_t n) { dequant_legacy(&layout, src, dst, n); }          \
    void qk_cpu_quant_##T(const float *src, void *dst, int64_t n, const float *qw) {                                   \
        quant_legacy(&layout, src, dst, n, qw);                                                                        \
    }

LEGACY_ENTRY(q4_0, Q4_0)
LEGACY_ENTRY(q4_1, Q4_1)
LEGACY_ENTRY(q5_0, Q5_0)
LEGACY_ENTRY(q5_1, Q5_1)
