/* Q2_K..Q6_K on the GPU: the super-block code of kernels/cpu/kquants_block.h, with and
 * without imatrix (the K-quants' statistics are per super-block, so no row pass). */
#include "codec_kernels.cuh"
#include "decode_traits.cuh"
#include "kquants_block.h"

#define KQUANT_TRAITS(T)                                                                                               \
    struct T##_traits : qk_cuda::traits_defaults, qk_cuda::T##_dec {                                                   \
        __device__ static void quant(const float *x, const float *qw, float, uint8_t *b) {                             \
            qk_quant_block_##T(x, qw, b);                                                                              \
        }                                                                                                              \
    };

namespace {
KQUANT_TRAITS(q2_k)
KQUANT_TRAITS(q3_k)
KQUANT_TRAITS(q4_k)
KQUANT_TRAITS(q5_k)
KQUANT_TRAITS(q6_k)
} // namespace

QK_CUDA_CODEC(q2_k, q2_k_traits)
QK_CUDA_CODEC(q3_k, q3_k_traits)
QK_CUDA_CODEC(q4_k, q4_k_traits)
QK_CUDA_CODEC(q5_k, q5_k_traits)
QK_CUDA_CODEC(q6_k, q6_k_traits)
