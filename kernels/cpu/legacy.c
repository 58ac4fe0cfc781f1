/* Legacy 32-element blocks: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 over whole rows. The block code
 * is in legacy_block.h, shared with the CUDA kernels. */
#include "cpu_kernels.h"
#include "legacy_block.h"

static void dequant_legacy(const qk_legacy_layout *t, const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t ib = 0; ib < n / t->qk; ib++, b += t->bytes, dst += t->qk) qk_dequant_block_legacy(t, b, dst);
}

static void quant_legacy(const qk_legacy_layout *t, const float *src, void *dst, int64_t n, const float *qw) {
    uint8_t *b = (uint8_t *)dst;
    const float sigma2 = qw ? qk_legacy_sigma2(qk_legacy_sum_x2(0.0f, src, n), n) : 0.0f;
    for (int64_t ib = 0; ib < n / t->qk; ib++)
        qk_quant_block_legacy(t, src + ib * t->qk, qw ? qw + ib * t->qk : NULL, sigma2, b + ib * t->bytes);
}

void qk_cpu_dequant_q8_0(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t ib = 0; ib < n / QKC_QK8_0; ib++) qk_dequant_block_q8_0(b + ib * QK_BYTES_q8_0, dst + ib * QKC_QK8_0);
}

void qk_cpu_quant_q8_0(const float *src, void *dst, int64_t n, const float *qw) {
    (void)qw; /* a single encoder: see legacy_block.h */
    uint8_t *b = (uint8_t *)dst;
    for (int64_t ib = 0; ib < n / QKC_QK8_0; ib++) qk_quant_block_q8_0(src + ib * QKC_QK8_0, b + ib * QK_BYTES_q8_0);
}

#define LEGACY_ENTRY(T)                                                                                                \
    void qk_cpu_dequant_##T(const void *src, float *dst, int64_t n) {                                                  \
        const qk_legacy_layout t = qk_layout_##T();                                                                    \
        dequant_legacy(&t, src, dst, n);                                                                               \
    }                                                                                                                  \
    void qk_cpu_quant_##T(const float *src, void *dst, int64_t n, const float *qw) {                                   \
        const qk_legacy_layout t = qk_layout_##T();                                                                    \
        quant_legacy(&t, src, dst, n, qw);                                                                             \
    }

LEGACY_ENTRY(q4_0)
LEGACY_ENTRY(q4_1)
LEGACY_ENTRY(q5_0)
LEGACY_ENTRY(q5_1)
