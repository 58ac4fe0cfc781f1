/* The MoE matmul of the FP4 formats (MXFP4, NVFP4) and the ternary and 1/2-bit ones (TQ1_0, TQ2_0,
 * Q1_0, Q2_0) (moe_kernels.cuh). */
#include "decode_traits.cuh"
#include "dot_i8_fp4.h"
#include "dot_i8_ternary.h"
#include "moe_kernels.cuh"

QK_CUDA_MOE(mxfp4, qk_cuda::mxfp4_dec)
QK_CUDA_MOE(nvfp4, qk_cuda::nvfp4_dec)
QK_CUDA_MOE(tq1_0, qk_cuda::tq1_0_dec)
QK_CUDA_MOE(tq2_0, qk_cuda::tq2_0_dec)
QK_CUDA_MOE(q1_0, qk_cuda::q1_0_dec)
QK_CUDA_MOE(q2_0, qk_cuda::q2_0_dec)
