#version 450
/* The exact arithmetic of common.glsl on given operands, for tests/test_vulkan_arith.c:
 * out[8i..8i+7] = qk_div(a, b), qk_sqrt(|a|), qk_nearest_int(qk_mul(a, b)), qk_lround_int(qk_mul(a, b)),
 * qk_f32_to_fp16(a) | qk_f32_to_bf16(b) << 16, qk_fp16_to_f32 of a's low half, qk_add(a, b), and
 * qk_lt(a, b) | qk_le(a, b) << 1 | qk_eq(a, b) << 2. */
layout(local_size_x = 64) in;
layout(std430, set = 0, binding = 1) readonly buffer Src { uint src_w[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Dst { uint dst_w[]; };
layout(push_constant) uniform Params {
    uint qk_off[8];
    uint n;
} pc;
#define QK_SRC_WORD(i) src_w[i]
#include "common.glsl"

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= pc.n) return;
    float a = uintBitsToFloat(src_w[2u * i]), b = uintBitsToFloat(src_w[2u * i + 1u]);
    dst_w[8u * i] = floatBitsToUint(qk_div(a, b));
    dst_w[8u * i + 1u] = floatBitsToUint(qk_sqrt(qk_absf(a))); /* abs() of a subnormal: 0 on the H100 */
    dst_w[8u * i + 2u] = uint(qk_nearest_int(qk_mul(a, b)));
    dst_w[8u * i + 3u] = uint(qk_lround_int(qk_mul(a, b)));
    dst_w[8u * i + 4u] = qk_f32_to_fp16(a) | (qk_f32_to_bf16(b) << 16);
    dst_w[8u * i + 5u] = floatBitsToUint(qk_fp16_to_f32(src_w[2u * i] & 0xffffu));
    dst_w[8u * i + 6u] = floatBitsToUint(qk_add(a, b));
    dst_w[8u * i + 7u] = uint(qk_lt(a, b)) | uint(qk_le(a, b)) << 1 | uint(qk_eq(a, b)) << 2;
}
