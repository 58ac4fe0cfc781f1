/* IQ4_NL and IQ4_XS over whole rows (FORMATS.md §6.8, §6.9, §6.11). The block code is in
 * iquants_iq4_block.h (encoders) and iquants_block.h (decoders), shared with the CUDA kernels. */
#include "cpu_kernels.h"
#include "iquants_block.h"
#include "iquants_iq4_block.h"

void qk_cpu_dequant_iq4_nl(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / QKC_QK4_NL; i++) qk_dequant_block_iq4_nl(b + i * QK_BYTES_iq4_nl, dst + i * QKC_QK4_NL);
}

void qk_cpu_dequant_iq4_xs(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / QKC_QK_K; i++) qk_dequant_block_iq4_xs(b + i * QK_BYTES_iq4_xs, dst + i * QKC_QK_K);
}

void qk_cpu_quant_iq4_nl(const float *src, void *dst, int64_t n, const float *qw) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / QKC_QK4_NL; i++)
        qk_quant_block_iq4_nl(src + i * QKC_QK4_NL, qw ? qw + i * QKC_QK4_NL : NULL, b + i * QK_BYTES_iq4_nl);
}

void qk_cpu_quant_iq4_xs(const float *src, void *dst, int64_t n, const float *qw) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / QKC_QK_K; i++)
        qk_quant_block_iq4_xs(src + i * QKC_QK_K, qw ? qw + i * QKC_QK_K : NULL, b + i * QK_BYTES_iq4_xs);
}
