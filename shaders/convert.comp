#version 450
/* Conversion between the float types (quantize to or dequantize from F32/F16/BF16): one
 * invocation writes one word of the output; a partial word at either end of the range is
 * merged with qk_store_bytes. Rounding to F16/BF16 is to nearest even, as on the CPU. */
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 1) readonly buffer Src { uint src_w[]; };
layout(std430, set = 0, binding = 2) buffer Dst { uint dst_w[]; };
layout(push_constant) uniform Params {
    uint qk_off[8];
    uint n; /* values */
    uint src_type;
    uint dst_type;
} pc;
#define QK_SRC_WORD(i) src_w[i]
#define QK_DST_WORDS dst_w
#define QK_BLOCK_WORDS 1u
#include "common.glsl"
#include "io.glsl"

uint encoded(uint i) {
    float v = qk_load_value(pc.src_type, pc.qk_off[1], i);
    if (pc.dst_type == QK_ID_F32) return pc.src_type == QK_ID_F32 ? qk_rd32(pc.qk_off[1] + 4u * i) : floatBitsToUint(v);
    return pc.dst_type == QK_ID_F16 ? qk_f32_to_fp16(v) : qk_f32_to_bf16(v);
}

void main() {
    uint k = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 256u + gl_LocalInvocationID.x;
    uint esize = pc.dst_type == QK_ID_F32 ? 4u : 2u, start = pc.qk_off[2], end = start + pc.n * esize;
    uint w = start / 4u + k;
    if (4u * w >= end) return;
    /* byte by byte: at an odd offset a value spans two words */
    uint v = 0u, mask = 0u, have = 0xffffffffu, bits = 0u;
    for (uint b = 0u; b < 4u; b++) {
        uint at = 4u * w + b;
        if (at < start || at >= end) continue;
        uint i = (at - start) / esize;
        if (i != have) bits = encoded(i), have = i;
        v |= ((bits >> (8u * ((at - start) % esize))) & 0xffu) << (8u * b);
        mask |= 0xffu << (8u * b);
    }
    qk_store_bytes(w, v, mask);
}
