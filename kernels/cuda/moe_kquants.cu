/* The MoE matmul of Q2_K..Q6_K (moe_kernels.cuh). */
#include "decode_traits.cuh"
#include "dot_i8_kquants.h"
#include "moe_kernels.cuh"

QK_CUDA_MOE(q2_k, qk_cuda::q2_k_dec)
QK_CUDA_MOE(q3_k, qk_cuda::q3_k_dec)
QK_CUDA_MOE(q4_k, qk_cuda::q4_k_dec)
QK_CUDA_MOE(q5_k, qk_cuda::q5_k_dec)
QK_CUDA_MOE(q6_k, qk_cuda::q6_k_dec)
