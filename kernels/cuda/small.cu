/* MXFP4, TQ1_0 and TQ2_0 on the GPU: closed-form encoders without an imatrix path
 * (kernels/cpu/mxfp4_block.h, ternary_block.h). */
#include "codec_kernels.cuh"
#include "moe_kernels.cuh"
#include "mxfp4_block.h"
#include "ternary_block.h"

namespace {

struct mxfp4_traits : qk_cuda::traits_defaults {
    static constexpr int QK = QKC_QK_MXFP4, BYTES = QK_MXFP4_BYTES;
    static constexpr bool TILED = true;
    __device__ static void quant(const float *x, const float *, float, uint8_t *b) { qk_quant_block_mxfp4(x, b); }
    __device__ static void dequant(const uint8_t *b, float *y) { qk_dequant_block_mxfp4(b, y); }
};

#define TERNARY_TRAITS(T, BLOCK_BYTES)                                                                                 \
    struct T##_traits : qk_cuda::traits_defaults {                                                                     \
        static constexpr int QK = QKC_QK_K, BYTES = BLOCK_BYTES;                                                       \
        __device__ static void quant(const float *x, const float *, float, uint8_t *b) { qk_quant_block_##T(x, b); }   \
        __device__ static void dequant_part(const uint8_t *b, int p, float *y) { qk_dequant_part_##T(b, p, y); }       \
    };
TERNARY_TRAITS(tq1_0, QK_TQ1_BYTES)
TERNARY_TRAITS(tq2_0, QK_TQ2_BYTES)

} // namespace

QK_CUDA_CODEC(mxfp4, mxfp4_traits)
QK_CUDA_CODEC(tq1_0, tq1_0_traits)
QK_CUDA_CODEC(tq2_0, tq2_0_traits)

QK_CUDA_MOE(mxfp4, mxfp4_traits)
QK_CUDA_MOE(tq1_0, tq1_0_traits)
QK_CUDA_MOE(tq2_0, tq2_0_traits)
