/* The MoE matmul of Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (moe_kernels.cuh). */
#include "decode_traits.cuh"
#include "dot_i8_legacy.h"
#include "moe_kernels.cuh"

QK_CUDA_MOE(q4_0, qk_cuda::q4_0_dec)
QK_CUDA_MOE(q4_1, qk_cuda::q4_1_dec)
QK_CUDA_MOE(q5_0, qk_cuda::q5_0_dec)
QK_CUDA_MOE(q5_1, qk_cuda::q5_1_dec)
QK_CUDA_MOE(q8_0, qk_cuda::q8_0_dec)
