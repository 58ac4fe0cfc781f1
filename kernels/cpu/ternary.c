/* Ternary and 1/2-bit: TQ1_0, TQ2_0, Q1_0 and Q2_0 (FORMATS.md §8) over whole rows; the block
 * code is in ternary_block.h. */
#include "cpu_kernels.h"
#include "ternary_block.h"

#define TERNARY_ENTRY(T, QK, BYTES)                                                                                    \
    void qk_cpu_dequant_##T(const void *src, float *dst, int64_t n) {                                                  \
        const uint8_t *b = (const uint8_t *)src;                                                                       \
        for (int64_t i = 0; i < n / (QK); i++) qk_dequant_block_##T(b + i * (BYTES), dst + i * (QK));                  \
    }                                                                                                                  \
    void qk_cpu_quant_##T(const float *src, void *dst, int64_t n, const float *qw) {                                   \
        (void)qw;                                                                                                      \
        uint8_t *b = (uint8_t *)dst;                                                                                   \
        for (int64_t i = 0; i < n / (QK); i++) qk_quant_block_##T(src + i * (QK), b + i * (BYTES));                    \
    }

TERNARY_ENTRY(tq1_0, QKC_QK_K, QK_BYTES_tq1_0)
TERNARY_ENTRY(tq2_0, QKC_QK_K, QK_BYTES_tq2_0)
TERNARY_ENTRY(q1_0, QKC_QK1_0, QK_BYTES_q1_0)
TERNARY_ENTRY(q2_0, QKC_QK2_0, QK_BYTES_q2_0)
