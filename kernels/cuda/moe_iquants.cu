/* The MoE matmul of the I-quants (moe_kernels.cuh). */
#include "decode_traits.cuh"
#include "dot_i8_iq4.h"
#include "dot_i8_iquants.h"
#include "moe_kernels.cuh"

QK_CUDA_MOE(iq2_xxs, qk_cuda::iq2_xxs_dec)
QK_CUDA_MOE(iq2_xs, qk_cuda::iq2_xs_dec)
QK_CUDA_MOE(iq2_s, qk_cuda::iq2_s_dec)
QK_CUDA_MOE(iq3_xxs, qk_cuda::iq3_xxs_dec)
QK_CUDA_MOE(iq3_s, qk_cuda::iq3_s_dec)
QK_CUDA_MOE(iq1_s, qk_cuda::iq1_s_dec)
QK_CUDA_MOE(iq1_m, qk_cuda::iq1_m_dec)
QK_CUDA_MOE(iq4_nl, qk_cuda::iq4_nl_dec)
QK_CUDA_MOE(iq4_xs, qk_cuda::iq4_xs_dec)
