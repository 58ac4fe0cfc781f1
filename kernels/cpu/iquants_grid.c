/* IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S over whole rows (FORMATS.md §6.1-6.5; encoders
 * §6.10, §9.5). The block code is in iquants_grid_block.h (encoders) and iquants_block.h
 * (decoders), shared with the CUDA kernels; here the rows and the host's lattice maps. */
#include <string.h>

#include "cpu_kernels.h"
#include "iq_grid.h"
#include "iquants_block.h"
#include "iquants_grid_block.h"

enum {
    QK = QKC_QK_K,
    /* layouts: iquants_block.h */
    XXS2_BYTES = QK_BYTES_iq2_xxs,
    XS2_BYTES = QK_BYTES_iq2_xs,
    S2_BYTES = QK_BYTES_iq2_s,
    XXS3_BYTES = QK_BYTES_iq3_xxs,
    S3_BYTES = QK_BYTES_iq3_s,
};

/* ---- dequantization: block code in iquants_block.h ----------------------------------------- */

#define IQ_DEQUANT_ENTRY(T, BYTES)                                                                                     \
    void qk_cpu_dequant_##T(const void *src, float *dst, int64_t n) {                                                  \
        const uint8_t *b = (const uint8_t *)src;                                                                       \
        for (int64_t i = 0; i < n / QK; i++) qk_dequant_block_##T(b + i * (BYTES), dst + i * QK);                      \
    }

IQ_DEQUANT_ENTRY(iq2_xxs, XXS2_BYTES)
IQ_DEQUANT_ENTRY(iq2_xs, XS2_BYTES)
IQ_DEQUANT_ENTRY(iq2_s, S2_BYTES)
IQ_DEQUANT_ENTRY(iq3_xxs, XXS3_BYTES)
IQ_DEQUANT_ENTRY(iq3_s, S3_BYTES)

/* ---- row entry points -------------------------------------------------------------------- */

typedef void (*block_encoder)(const qk_iq_grid *g, const float *x, const float *qw, uint8_t *y);

static void quant_row(qk_iq_grid_id grid, block_encoder enc, int block_bytes, const float *src, void *dst, int64_t n,
                      const float *qw) {
    const qk_iq_grid *g = qk_iq_grid_get(grid);
    uint8_t *y = dst;
    if (!g) { /* out of memory; qk_cpu_quant_prepare reports it before any kernel runs */
        memset(dst, 0, (size_t)(n / QK) * (size_t)block_bytes);
        return;
    }
    for (int64_t i = 0; i < n / QK; i++) enc(g, src + QK * i, qw ? qw + QK * i : NULL, y + block_bytes * i);
}

/* IQ2_XXS and IQ2_XS need an imatrix (the runtime refuses them without one); given none, they
 * weigh every column 1 rather than fail: w = sqrt(sigma2 + x^2). */
void qk_cpu_quant_iq2_xxs(const float *src, void *dst, int64_t n, const float *qw) {
    quant_row(QK_IQ_GRID_2BIT_256, qk_quant_block_iq2_xxs, XXS2_BYTES, src, dst, n, qw);
}

void qk_cpu_quant_iq2_xs(const float *src, void *dst, int64_t n, const float *qw) {
    quant_row(QK_IQ_GRID_2BIT_512, qk_quant_block_iq2_xs, XS2_BYTES, src, dst, n, qw);
}

void qk_cpu_quant_iq2_s(const float *src, void *dst, int64_t n, const float *qw) {
    quant_row(QK_IQ_GRID_2BIT_1024, qk_quant_block_iq2_s, S2_BYTES, src, dst, n, qw);
}

void qk_cpu_quant_iq3_xxs(const float *src, void *dst, int64_t n, const float *qw) {
    quant_row(QK_IQ_GRID_3BIT_256, qk_quant_block_iq3_xxs, XXS3_BYTES, src, dst, n, qw);
}

void qk_cpu_quant_iq3_s(const float *src, void *dst, int64_t n, const float *qw) {
    quant_row(QK_IQ_GRID_3BIT_512, qk_quant_block_iq3_s, S3_BYTES, src, dst, n, qw);
}
