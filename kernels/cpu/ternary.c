/* TQ1_0 and TQ2_0 (FORMATS.md §8) over whole rows; the block code is in ternary_block.h. */
#include "cpu_kernels.h"
#include "ternary_block.h"

#define TERNARY_ENTRY(T, BYTES)                                                                                        \
    void qk_cpu_dequant_##T(const void *src, float *dst, int64_t n) {                                                  \
        const uint8_t *b = (const uint8_t *)src;                                                                       \
        for (int64_t i = 0; i < n / QKC_QK_K; i++) qk_dequant_block_##T(b + i * (BYTES), dst + i * QKC_QK_K);          \
    }                                                                                                                  \
    void qk_cpu_quant_##T(const float *src, void *dst, int64_t n, const float *qw) {                                   \
        (void)qw;                                                                                                      \
        uint8_t *b = (uint8_t *)dst;                                                                                   \
        for (int64_t i = 0; i < n / QKC_QK_K; i++) qk_quant_block_##T(src + i * QKC_QK_K, b + i * (BYTES));            \
    }

TERNARY_ENTRY(tq1_0, QK_TQ1_BYTES)
TERNARY_ENTRY(tq2_0, QK_TQ2_BYTES)
