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

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*qk_cpu_dequant_fn)(const void *src, float *dst, int64_t n);
typedef void (*qk_cpu_quant_fn)(const float *src, void *dst, int64_t n, const float *qw);

#define QK_CPU_FORMAT(T)                                                                                               \
    void qk_cpu_dequant_##T(const void *src, float *dst, int64_t n);                                                   \
    void qk_cpu_quant_##T(const float *src, void *dst, int64_t n, const float *qw);

/* floats.c */
QK_CPU_FORMAT(f32)
QK_CPU_FORMAT(f16)
QK_CPU_FORMAT(bf16)
/* legacy.c */
QK_CPU_FORMAT(q4_0)
QK_CPU_FORMAT(q4_1)
QK_CPU_FORMAT(q5_0)
QK_CPU_FORMAT(q5_1)
QK_CPU_FORMAT(q8_0)
/* kquants.c */
QK_CPU_FORMAT(q2_k)
QK_CPU_FORMAT(q3_k)
QK_CPU_FORMAT(q4_k)
QK_CPU_FORMAT(q5_k)
QK_CPU_FORMAT(q6_k)
/* iquants_grid.c (IQ2, IQ3) */
QK_CPU_FORMAT(iq2_xxs)
QK_CPU_FORMAT(iq2_xs)
QK_CPU_FORMAT(iq2_s)
QK_CPU_FORMAT(iq3_xxs)
QK_CPU_FORMAT(iq3_s)
/* iquants_iq1.c */
QK_CPU_FORMAT(iq1_s)
QK_CPU_FORMAT(iq1_m)
/* iquants_iq4.c */
QK_CPU_FORMAT(iq4_nl)
QK_CPU_FORMAT(iq4_xs)
/* mxfp4.c */
QK_CPU_FORMAT(mxfp4)
/* ternary.c */
QK_CPU_FORMAT(tq1_0)
QK_CPU_FORMAT(tq2_0)

#undef QK_CPU_FORMAT

#ifdef __cplusplus
}
#endif

#endif
