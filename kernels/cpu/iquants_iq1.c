/* IQ1_S and IQ1_M over whole rows (FORMATS.md §6.6, §6.7, §6.10). The block code is in
 * iquants_iq1_block.h (encoders) and iquants_block.h (decoders), shared with the CUDA kernels. */
#include <string.h>

#include "cpu_kernels.h"
#include "iq_grid.h"
#include "iquants_block.h"
#include "iquants_iq1_block.h"

void qk_cpu_dequant_iq1_s(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / QKC_QK_K; i++) qk_dequant_block_iq1_s(b + i * QK_BYTES_iq1_s, dst + i * QKC_QK_K);
}

void qk_cpu_dequant_iq1_m(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / QKC_QK_K; i++) qk_dequant_block_iq1_m(b + i * QK_BYTES_iq1_m, dst + i * QKC_QK_K);
}

typedef void (*iq1_block_encoder)(const qk_iq_grid *grid, const float *x, const float *qw, uint8_t *b);

static void quant_row(iq1_block_encoder enc, int block_bytes, const float *src, void *dst, int64_t n, const float *qw) {
    const qk_iq_grid *grid = qk_iq_grid_get(QK_IQ_GRID_1BIT_2048);
    uint8_t *b = (uint8_t *)dst;
    if (!grid) { /* only if memory ran out before qk_cpu_quant_prepare; write d = 0 */
        memset(dst, 0, (size_t)(n / QKC_QK_K) * (size_t)block_bytes);
        return;
    }
    for (int64_t i = 0; i < n / QKC_QK_K; i++)
        enc(grid, src + QKC_QK_K * i, qw ? qw + QKC_QK_K * i : NULL, b + block_bytes * i);
}

void qk_cpu_quant_iq1_s(const float *src, void *dst, int64_t n, const float *qw) {
    quant_row(qk_quant_block_iq1_s, QK_BYTES_iq1_s, src, dst, n, qw);
}

void qk_cpu_quant_iq1_m(const float *src, void *dst, int64_t n, const float *qw) {
    quant_row(qk_quant_block_iq1_m, QK_BYTES_iq1_m, src, dst, n, qw);
}
