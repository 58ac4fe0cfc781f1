/* Code shared by the CPU reference and the CUDA kernels.
 *
 * The per-block quantizers and dequantizers live in headers (*_block.h) as static inline
 * QK_HD functions: compiled as C they are the CPU reference, compiled by nvcc they run in a
 * device thread. One text, so a CUDA quantizer writes the reference's bytes as long as both
 * compilers keep IEEE fp32 semantics (no contraction: -ffp-contract=off, nvcc --fmad=false;
 * correctly rounded division and square root).
 *
 * The code therefore stays inside the common subset of C11 and CUDA C++: explicit casts
 * from void *, no VLAs, no designated initializers, no `restrict`, no libm function that is
 * not correctly rounded on both sides. Lookup tables are read through QK_TAB(name): the host
 * array in C and in nvcc's host pass, its __device__ copy (qk_tables_cuda.cuh, generated
 * from the same data) in device code. */
#ifndef QK_HD_H
#define QK_HD_H

#ifdef __CUDACC__
#define QK_HD __host__ __device__
#include "qk_tables_cuda.cuh"
#else
#define QK_HD
#endif

/* The 256-value formats decode in 8 parts of 32 values: qk_dequant_part_<t>(b, p, dst) writes
 * values 32p..32p+31 of block b to dst[0..31]. A part is what one GPU thread decodes (a whole
 * block per thread needs too much state per thread for a fast kernel) and what a matmul takes
 * at a time; the block is its parts in turn, so the CPU reference and the GPU share one text. */
#define QK_PART 32
#define QK_DEQUANT_BY_PARTS(t)                                                                                         \
    static inline QK_HD void qk_dequant_block_##t(const uint8_t *b, float *dst) {                                      \
        for (int p = 0; p < 256 / QK_PART; p++) qk_dequant_part_##t(b, p, dst + QK_PART * p);                          \
    }

#ifdef __CUDA_ARCH__
#define QK_TAB(name) name##_dev
#else
#define QK_TAB(name) name
#endif

#endif
