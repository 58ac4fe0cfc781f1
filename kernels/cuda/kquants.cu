/* Q2_K..Q6_K on the GPU: the super-block code of kernels/cpu/kquants_block.h, with and
 * without imatrix (the K-quants' statistics are per super-block, so no row pass). */
#include "codec_kernels.cuh"
#include "kquants_block.h"
#include "moe_kernels.cuh"

#define KQUANT_TRAITS(T, BLOCK_BYTES)                                                                                  \
    struct T##_traits : qk_cuda::traits_defaults {                                                                     \
        static constexpr int QK = QKC_QK_K, BYTES = BLOCK_BYTES;                                                       \
        __device__ static void quant(const float *x, const float *qw, float, uint8_t *b) {                             \
            qk_quant_block_##T(x, qw, b);                                                                              \
        }                                                                                                              \
        __device__ static void dequant_part(const uint8_t *b, int p, float *y) { qk_dequant_part_##T(b, p, y); }       \
    };

namespace {
KQUANT_TRAITS(q2_k, QK_BYTES_q2_k)
KQUANT_TRAITS(q3_k, QK_BYTES_q3_k)
KQUANT_TRAITS(q4_k, QK_BYTES_q4_k)
KQUANT_TRAITS(q5_k, QK_BYTES_q5_k)
KQUANT_TRAITS(q6_k, QK_BYTES_q6_k)
} // namespace

QK_CUDA_CODEC(q2_k, q2_k_traits)
QK_CUDA_CODEC(q3_k, q3_k_traits)
QK_CUDA_CODEC(q4_k, q4_k_traits)
QK_CUDA_CODEC(q5_k, q5_k_traits)
QK_CUDA_CODEC(q6_k, q6_k_traits)

QK_CUDA_MOE(q2_k, q2_k_traits)
QK_CUDA_MOE(q3_k, q3_k_traits)
QK_CUDA_MOE(q4_k, q4_k_traits)
QK_CUDA_MOE(q5_k, q5_k_traits)
QK_CUDA_MOE(q6_k, q6_k_traits)
