/* The FP4 formats (MXFP4, NVFP4) and the ternary and 1/2-bit ones (TQ1_0, TQ2_0, Q1_0, Q2_0) on
 * the GPU: closed-form encoders without an imatrix path (kernels/cpu/fp4_block.h,
 * ternary_block.h). */
#include "codec_kernels.cuh"
#include "decode_traits.cuh"
#include "fp4_block.h"
#include "ternary_block.h"

namespace {

struct mxfp4_traits : qk_cuda::traits_defaults, qk_cuda::mxfp4_dec {
    static constexpr bool TILED = true;
    __device__ static void quant(const float *x, const float *, float, uint8_t *b) { qk_quant_block_mxfp4(x, b); }
};

/* The types of more than 32 values per block; their blocks quantize one per thread (the tiled
 * quantize is for the 32-value types). */
#define PARTS_TRAITS(T)                                                                                                \
    struct T##_traits : qk_cuda::traits_defaults, qk_cuda::T##_dec {                                                   \
        __device__ static void quant(const float *x, const float *, float, uint8_t *b) { qk_quant_block_##T(x, b); }   \
    };
PARTS_TRAITS(nvfp4)
PARTS_TRAITS(tq1_0)
PARTS_TRAITS(tq2_0)
PARTS_TRAITS(q1_0)
PARTS_TRAITS(q2_0)

} // namespace

QK_CUDA_CODEC(mxfp4, mxfp4_traits)
QK_CUDA_CODEC(nvfp4, nvfp4_traits)
QK_CUDA_CODEC(tq1_0, tq1_0_traits)
QK_CUDA_CODEC(tq2_0, tq2_0_traits)
QK_CUDA_CODEC(q1_0, q1_0_traits)
QK_CUDA_CODEC(q2_0, q2_0_traits)
