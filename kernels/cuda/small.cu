/* The FP4 formats (MXFP4, NVFP4) and the ternary and 1/2-bit ones (TQ1_0, TQ2_0, Q1_0, Q2_0) on
 * the GPU: closed-form encoders without an imatrix path (kernels/cpu/fp4_block.h,
 * ternary_block.h). */
#include "codec_kernels.cuh"
#include "fp4_block.h"
#include "moe_kernels.cuh"
#include "ternary_block.h"

namespace {

struct mxfp4_traits : qk_cuda::traits_defaults {
    static constexpr int QK = QKC_QK_MXFP4, BYTES = QK_BYTES_mxfp4;
    static constexpr bool TILED = true;
    __device__ static void quant(const float *x, const float *, float, uint8_t *b) { qk_quant_block_mxfp4(x, b); }
    __device__ static void dequant(const uint8_t *b, float *y) { qk_dequant_block_mxfp4(b, y); }
};

/* The types of more than 32 values per block decode by 32-value parts; their blocks quantize one
 * per thread (the tiled quantize is for the 32-value types). */
#define PARTS_TRAITS(T, BLOCK_QK, BLOCK_BYTES)                                                                         \
    struct T##_traits : qk_cuda::traits_defaults {                                                                     \
        static constexpr int QK = BLOCK_QK, BYTES = BLOCK_BYTES;                                                       \
        __device__ static void quant(const float *x, const float *, float, uint8_t *b) { qk_quant_block_##T(x, b); }   \
        __device__ static void dequant_part(const uint8_t *b, int p, float *y) { qk_dequant_part_##T(b, p, y); }       \
    };
PARTS_TRAITS(nvfp4, QKC_QK_NVFP4, QK_BYTES_nvfp4)
PARTS_TRAITS(tq1_0, QKC_QK_K, QK_BYTES_tq1_0)
PARTS_TRAITS(tq2_0, QKC_QK_K, QK_BYTES_tq2_0)
PARTS_TRAITS(q1_0, QKC_QK1_0, QK_BYTES_q1_0)
PARTS_TRAITS(q2_0, QKC_QK2_0, QK_BYTES_q2_0)

} // namespace

QK_CUDA_CODEC(mxfp4, mxfp4_traits)
QK_CUDA_CODEC(nvfp4, nvfp4_traits)
QK_CUDA_CODEC(tq1_0, tq1_0_traits)
QK_CUDA_CODEC(tq2_0, tq2_0_traits)
QK_CUDA_CODEC(q1_0, q1_0_traits)
QK_CUDA_CODEC(q2_0, q2_0_traits)

QK_CUDA_MOE(mxfp4, mxfp4_traits)
QK_CUDA_MOE(nvfp4, nvfp4_traits)
QK_CUDA_MOE(tq1_0, tq1_0_traits)
QK_CUDA_MOE(tq2_0, tq2_0_traits)
QK_CUDA_MOE(q1_0, q1_0_traits)
QK_CUDA_MOE(q2_0, q2_0_traits)
