/* The MoE matmul of F32, F16 and BF16 weights (moe_kernels.cuh: the f32 vector path). */
#include "decode_traits.cuh"
#include "moe_kernels.cuh"

QK_CUDA_MOE_PLAIN(f32, qk_cuda::f32_dec)
QK_CUDA_MOE_PLAIN(f16, qk_cuda::f16_dec)
QK_CUDA_MOE_PLAIN(bf16, qk_cuda::bf16_dec)
