/* F32, F16 and BF16 as one-value "blocks": conversions between the plain types run through
 * the same kernels and the same encoders (qk_float.h) as the CPU backend's. */
#include "codec_kernels.cuh"
#include "decode_traits.cuh"

namespace {

struct f32_traits : qk_cuda::traits_defaults, qk_cuda::f32_dec {
    __device__ static void quant(const float *x, const float *, float, uint8_t *b) { qk_wr32(b, qk_f32_bits(x[0])); }
};
struct f16_traits : qk_cuda::traits_defaults, qk_cuda::f16_dec {
    __device__ static void quant(const float *x, const float *, float, uint8_t *b) { qk_wr16(b, qk_f32_to_fp16(x[0])); }
};
struct bf16_traits : qk_cuda::traits_defaults, qk_cuda::bf16_dec {
    __device__ static void quant(const float *x, const float *, float, uint8_t *b) { qk_wr16(b, qk_f32_to_bf16(x[0])); }
};

} // namespace

QK_CUDA_CODEC(f32, f32_traits)
QK_CUDA_CODEC(f16, f16_traits)
QK_CUDA_CODEC(bf16, bf16_traits)
