/* The CPU reference kernels: one dequantizer and one quantizer per block format.
 * They are the oracle for every GPU kernel, so each is written in a fixed order of fp32
 * operations (sequential sums, fmaf only where a fused multiply-add is meant; the whole
 * folder builds with -ffp-contract=off).
 *
 * Contracts, for every function below:
 * - n is the number of values of one row, a positive multiple of the type's block size;
 * - blocks are written packed, byte for byte as ggml lays them out;
 * - quantizers take finite input (the runtime rejects NaN/Inf before calling them) and
 *   `qw`, the row's n importance weights (finite, >= 0), or NULL for none;
 * - a quantizer writes every byte of its n/QK blocks and never reads past them;
 * - nothing here allocates per call, prints or fails. */
#ifndef QK_CPU_KERNELS_H
#define QK_CPU_KERNELS_H

#include <stdint.h>

#include "qkern_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*qk_cpu_dequant_fn)(const void *src, float *dst, int64_t n);
typedef void (*qk_cpu_quant_fn)(const float *src, void *dst, int64_t n, const float *qw);

/* One pair for every row of the format table whose cpu column says Y; each family's file
 * (kernels/cpu/<source>.c) defines its types' pairs. */
#define QK_CPU_FORMAT(NAME, codec, id, elems, bytes, family, source, imatrix, cpu, ...)                                \
    QK_IF_##cpu(void qk_cpu_dequant_##codec(const void *src, float *dst, int64_t n);                                   \
                void qk_cpu_quant_##codec(const float *src, void *dst, int64_t n, const float *qw);)
QK_FORMATS(QK_CPU_FORMAT)
#undef QK_CPU_FORMAT

/* The row functions of a format whose block code ignores importance weights:
 * qk_dequant_block_<T>(block, values) and qk_quant_block_<T>(values, block), QK values and
 * BYTES bytes per block, applied block after block. */
#define QK_CPU_ROWS_WITHOUT_IMATRIX(T, QK, BYTES)                                                                      \
    void qk_cpu_dequant_##T(const void *src, float *dst, int64_t n) {                                                  \
        const uint8_t *b = (const uint8_t *)src;                                                                       \
        for (int64_t i = 0; i < n / (QK); i++) qk_dequant_block_##T(b + i * (BYTES), dst + i * (QK));                  \
    }                                                                                                                  \
    void qk_cpu_quant_##T(const float *src, void *dst, int64_t n, const float *qw) {                                   \
        (void)qw;                                                                                                      \
        uint8_t *b = (uint8_t *)dst;                                                                                   \
        for (int64_t i = 0; i < n / (QK); i++) qk_quant_block_##T(src + i * (QK), b + i * (BYTES));                    \
    }

#ifdef __cplusplus
}
#endif

#endif
