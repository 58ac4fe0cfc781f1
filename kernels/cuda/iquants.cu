/* The I-quants on the GPU: dequantization only, the block code of
 * kernels/cpu/iquants_block.h. (Their encoders need the lattice maps of iq_grid.c; not yet.) */
#include "codec_kernels.cuh"
#include "iquants_block.h"

#define IQ_TRAITS(T, BLOCK_QK, BLOCK_BYTES)                                                                            \
    struct T##_traits {                                                                                                \
        static constexpr int QK = BLOCK_QK, BYTES = BLOCK_BYTES;                                                       \
        __device__ static void dequant(const uint8_t *b, float *y) { qk_dequant_block_##T(b, y); }                     \
    };

namespace {
IQ_TRAITS(iq2_xxs, QKC_QK_K, QK_IQ2XXS_BYTES)
IQ_TRAITS(iq2_xs, QKC_QK_K, QK_IQ2XS_BYTES)
IQ_TRAITS(iq2_s, QKC_QK_K, QK_IQ2S_BYTES)
IQ_TRAITS(iq3_xxs, QKC_QK_K, QK_IQ3XXS_BYTES)
IQ_TRAITS(iq3_s, QKC_QK_K, QK_IQ3S_BYTES)
IQ_TRAITS(iq1_s, QKC_QK_K, QK_IQ1S_BYTES)
IQ_TRAITS(iq1_m, QKC_QK_K, QK_IQ1M_BYTES)
IQ_TRAITS(iq4_nl, QKC_QK4_NL, QK_IQ4NL_BYTES)
IQ_TRAITS(iq4_xs, QKC_QK_K, QK_IQ4XS_BYTES)
} // namespace

QK_CUDA_DEQUANT_ONLY(iq2_xxs, iq2_xxs_traits)
QK_CUDA_DEQUANT_ONLY(iq2_xs, iq2_xs_traits)
QK_CUDA_DEQUANT_ONLY(iq2_s, iq2_s_traits)
QK_CUDA_DEQUANT_ONLY(iq3_xxs, iq3_xxs_traits)
QK_CUDA_DEQUANT_ONLY(iq3_s, iq3_s_traits)
QK_CUDA_DEQUANT_ONLY(iq1_s, iq1_s_traits)
QK_CUDA_DEQUANT_ONLY(iq1_m, iq1_m_traits)
QK_CUDA_DEQUANT_ONLY(iq4_nl, iq4_nl_traits)
QK_CUDA_DEQUANT_ONLY(iq4_xs, iq4_xs_traits)
