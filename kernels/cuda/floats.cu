/* F32, F16 and BF16 as one-value "blocks": conversions between the plain types run through
 * the same kernels and the same encoders (qk_float.h) as the CPU backend's. */
#include "codec_kernels.cuh"
#include "moe_kernels.cuh"

namespace {

struct f32_traits : qk_cuda::traits_defaults {
    static constexpr int QK = 1, BYTES = 4;
    __device__ static void quant(const float *x, const float *, float, uint8_t *b) { qk_wr32(b, qk_f32_bits(x[0])); }
    __device__ static void dequant(const uint8_t *b, float *y) { y[0] = qk_bits_f32(qk_rd32(b)); }
};

struct f16_traits : qk_cuda::traits_defaults {
    static constexpr int QK = 1, BYTES = 2;
    __device__ static void quant(const float *x, const float *, float, uint8_t *b) { qk_wr16(b, qk_f32_to_fp16(x[0])); }
    __device__ static void dequant(const uint8_t *b, float *y) { y[0] = qk_fp16_to_f32(qk_rd16(b)); }
};

struct bf16_traits : qk_cuda::traits_defaults {
    static constexpr int QK = 1, BYTES = 2;
    __device__ static void quant(const float *x, const float *, float, uint8_t *b) { qk_wr16(b, qk_f32_to_bf16(x[0])); }
    __device__ static void dequant(const uint8_t *b, float *y) { y[0] = qk_bf16_to_f32(qk_rd16(b)); }
};

} // namespace

QK_CUDA_CODEC(f32, f32_traits)
QK_CUDA_CODEC(f16, f16_traits)
QK_CUDA_CODEC(bf16, bf16_traits)

QK_CUDA_MOE(f32, f32_traits)
QK_CUDA_MOE(f16, f16_traits)
QK_CUDA_MOE(bf16, bf16_traits)
