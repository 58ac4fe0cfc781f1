/* The decoding half of every type's traits, shared by the codec kernels (codec_kernels.cuh, whose
 * traits add the type's encoder) and the MoE kernels (moe_kernels.cuh, which only decode and are
 * compiled apart: their own translation units may contract a*b+c, the quantizers may not).
 *
 * A type's traits: QK values per block (1 for the plain types), BYTES per block, and the CPU
 * reference's decoder, as dequant(b, y) of a whole block of at most 32 values or dequant_part(b, p,
 * y) of values [32p, 32p + 32) of a larger one. */
#ifndef QK_DECODE_TRAITS_CUH
#define QK_DECODE_TRAITS_CUH

#include <stdint.h>

#include "fp4_block.h"
#include "iquants_block.h"
#include "kquants_block.h"
#include "legacy_block.h"
#include "qk_float.h"
#include "ternary_block.h"

namespace qk_cuda {

/* F32, F16 and BF16 as one-value "blocks". */
struct f32_dec {
    static constexpr int QK = 1, BYTES = 4;
    __device__ static void dequant(const uint8_t *b, float *y) { y[0] = qk_bits_f32(qk_rd32(b)); }
};
struct f16_dec {
    static constexpr int QK = 1, BYTES = 2;
    __device__ static void dequant(const uint8_t *b, float *y) { y[0] = qk_fp16_to_f32(qk_rd16(b)); }
};
struct bf16_dec {
    static constexpr int QK = 1, BYTES = 2;
    __device__ static void dequant(const uint8_t *b, float *y) { y[0] = qk_bf16_to_f32(qk_rd16(b)); }
};

/* Q4_0..Q5_1: one block code, parameterised by the layout. */
template <qk_legacy_layout (*Layout)(void), int BLOCK_QK, int BLOCK_BYTES> struct legacy_dec {
    static constexpr int QK = BLOCK_QK, BYTES = BLOCK_BYTES;
    __device__ static void dequant(const uint8_t *b, float *y) {
        const qk_legacy_layout t = Layout();
        qk_dequant_block_legacy(&t, b, y);
    }
};
typedef legacy_dec<qk_layout_q4_0, QKC_QK4_0, QK_BYTES_q4_0> q4_0_dec;
typedef legacy_dec<qk_layout_q4_1, QKC_QK4_1, QK_BYTES_q4_1> q4_1_dec;
typedef legacy_dec<qk_layout_q5_0, QKC_QK5_0, QK_BYTES_q5_0> q5_0_dec;
typedef legacy_dec<qk_layout_q5_1, QKC_QK5_1, QK_BYTES_q5_1> q5_1_dec;

/* A 32-value block: decoded whole by qk_dequant_block_<codec>. */
#define QK_BLOCK_DEC(codec, BLOCK_QK)                                                                                  \
    struct codec##_dec {                                                                                               \
        static constexpr int QK = BLOCK_QK, BYTES = QK_BYTES_##codec;                                                  \
        __device__ static void dequant(const uint8_t *b, float *y) { qk_dequant_block_##codec(b, y); }                 \
    };
/* A larger block: decoded by 32-value parts, qk_dequant_part_<codec>. */
#define QK_PARTS_DEC(codec, BLOCK_QK)                                                                                  \
    struct codec##_dec {                                                                                               \
        static constexpr int QK = BLOCK_QK, BYTES = QK_BYTES_##codec;                                                  \
        __device__ static void dequant_part(const uint8_t *b, int p, float *y) { qk_dequant_part_##codec(b, p, y); }   \
    };

QK_BLOCK_DEC(q8_0, QKC_QK8_0)
QK_PARTS_DEC(q2_k, QKC_QK_K)
QK_PARTS_DEC(q3_k, QKC_QK_K)
QK_PARTS_DEC(q4_k, QKC_QK_K)
QK_PARTS_DEC(q5_k, QKC_QK_K)
QK_PARTS_DEC(q6_k, QKC_QK_K)
QK_PARTS_DEC(iq2_xxs, QKC_QK_K)
QK_PARTS_DEC(iq2_xs, QKC_QK_K)
QK_PARTS_DEC(iq2_s, QKC_QK_K)
QK_PARTS_DEC(iq3_xxs, QKC_QK_K)
QK_PARTS_DEC(iq3_s, QKC_QK_K)
QK_PARTS_DEC(iq1_s, QKC_QK_K)
QK_PARTS_DEC(iq1_m, QKC_QK_K)
QK_BLOCK_DEC(iq4_nl, QKC_QK4_NL)
QK_PARTS_DEC(iq4_xs, QKC_QK_K)
QK_BLOCK_DEC(mxfp4, QKC_QK_MXFP4)
QK_PARTS_DEC(nvfp4, QKC_QK_NVFP4)
QK_PARTS_DEC(tq1_0, QKC_QK_K)
QK_PARTS_DEC(tq2_0, QKC_QK_K)
QK_PARTS_DEC(q1_0, QKC_QK1_0)
QK_PARTS_DEC(q2_0, QKC_QK2_0)

#undef QK_BLOCK_DEC
#undef QK_PARTS_DEC

} // namespace qk_cuda

#endif
