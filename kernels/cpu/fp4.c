/* MXFP4 and NVFP4 (FORMATS.md §7) over whole rows; the block code is in fp4_block.h. */
#include "cpu_kernels.h"
#include "fp4_block.h"

void qk_cpu_dequant_mxfp4(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / QKC_QK_MXFP4; i++)
        qk_dequant_block_mxfp4(b + i * QK_BYTES_mxfp4, dst + i * QKC_QK_MXFP4);
}

void qk_cpu_quant_mxfp4(const float *src, void *dst, int64_t n, const float *qw) {
    (void)qw;
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / QKC_QK_MXFP4; i++) qk_quant_block_mxfp4(src + i * QKC_QK_MXFP4, b + i * QK_BYTES_mxfp4);
}

void qk_cpu_dequant_nvfp4(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / QKC_QK_NVFP4; i++)
        qk_dequant_block_nvfp4(b + i * QK_BYTES_nvfp4, dst + i * QKC_QK_NVFP4);
}

void qk_cpu_quant_nvfp4(const float *src, void *dst, int64_t n, const float *qw) {
    (void)qw;
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / QKC_QK_NVFP4; i++) qk_quant_block_nvfp4(src + i * QKC_QK_NVFP4, b + i * QK_BYTES_nvfp4);
}
