/* K-quants over whole rows: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. The super-block code is in
 * kquants_block.h, shared with the CUDA kernels. */
#include "cpu_kernels.h"
#include "kquants_block.h"

#define KQUANT_ENTRY(T, BYTES)                                                                                         \
    void qk_cpu_dequant_##T(const void *src, float *dst, int64_t n) {                                                  \
        const uint8_t *b = (const uint8_t *)src;                                                                       \
        for (int64_t ib = 0; ib < n / QKC_QK_K; ib++) qk_dequant_block_##T(b + ib * (BYTES), dst + ib * QKC_QK_K);     \
    }                                                                                                                  \
    void qk_cpu_quant_##T(const float *src, void *dst, int64_t n, const float *qw) {                                   \
        uint8_t *b = (uint8_t *)dst;                                                                                   \
        for (int64_t ib = 0; ib < n / QKC_QK_K; ib++)                                                                  \
            qk_quant_block_##T(src + ib * QKC_QK_K, qw ? qw + ib * QKC_QK_K : NULL, b + ib * (BYTES));                 \
    }

KQUANT_ENTRY(q2_k, QK_BYTES_q2_k)
KQUANT_ENTRY(q3_k, QK_BYTES_q3_k)
KQUANT_ENTRY(q4_k, QK_BYTES_q4_k)
KQUANT_ENTRY(q5_k, QK_BYTES_q5_k)
KQUANT_ENTRY(q6_k, QK_BYTES_q6_k)
