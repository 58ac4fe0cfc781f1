/* Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 on the GPU: the block code of kernels/cpu/legacy_block.h. */
#include "codec_kernels.cuh"
#include "decode_traits.cuh"
#include "legacy_block.h"

namespace {

/* Q4_0..Q5_1 with an imatrix weigh by the row's mean square, summed as the CPU sums it. */
template <qk_legacy_layout (*Layout)(void), int BLOCK_QK, int BLOCK_BYTES>
struct legacy_traits : qk_cuda::legacy_dec<Layout, BLOCK_QK, BLOCK_BYTES> {
    static constexpr bool ROW_STAT = true; /* the imatrix path runs a row at a time; the other is tiled */
    __device__ static void quant(const float *x, const float *qw, float sigma2, uint8_t *b) {
        const qk_legacy_layout t = Layout();
        qk_quant_block_legacy(&t, x, qw, sigma2, b);
    }
};

struct q8_0_traits : qk_cuda::traits_defaults, qk_cuda::q8_0_dec {
    static constexpr bool TILED = true;
    __device__ static void quant(const float *x, const float *, float, uint8_t *b) { qk_quant_block_q8_0(x, b); }
};

typedef legacy_traits<qk_layout_q4_0, QKC_QK4_0, QK_BYTES_q4_0> q4_0_traits;
typedef legacy_traits<qk_layout_q4_1, QKC_QK4_1, QK_BYTES_q4_1> q4_1_traits;
typedef legacy_traits<qk_layout_q5_0, QKC_QK5_0, QK_BYTES_q5_0> q5_0_traits;
typedef legacy_traits<qk_layout_q5_1, QKC_QK5_1, QK_BYTES_q5_1> q5_1_traits;

} // namespace

QK_CUDA_CODEC(q4_0, q4_0_traits)
QK_CUDA_CODEC(q4_1, q4_1_traits)
QK_CUDA_CODEC(q5_0, q5_0_traits)
QK_CUDA_CODEC(q5_1, q5_1_traits)
QK_CUDA_CODEC(q8_0, q8_0_traits)
