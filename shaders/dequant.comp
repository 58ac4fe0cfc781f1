#version 450
/* Dequantize: one invocation decodes one part (32 values) of the blocks, which lie back to
 * back (rows of whole blocks); the workgroup then writes its 64 parts' outputs as contiguous
 * words, so that stores coalesce. Output F32, F16 or BF16 at a word-aligned offset. */
#define WG 64u
layout(local_size_x = 64) in;
layout(std430, set = 0, binding = 1) readonly buffer Src { uint src_w[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Dst { uint dst_w[]; };
layout(push_constant) uniform Params {
    uint qk_off[8];
    uint n_parts;
    uint dst_type;
} pc;
#define QK_SRC_WORD(i) src_w[i]
#include "common.glsl"
#include "qk_format.glsl"
#include "io.glsl"

shared uint out_w[WG * 33u]; /* padded rows: one part's 32 words */

void main() {
    uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint lane = gl_LocalInvocationID.x, part = group * WG + lane;
    const uint ppb = QK_BLOCK_ELEMS / 32u;
    bool wide = pc.dst_type == QK_ID_F32;
    uint per_part = wide ? 32u : 16u;
    if (part < pc.n_parts) {
        float v[32];
        qk_dequant_part(pc.qk_off[1] + (part / ppb) * QK_BLOCK_BYTES, part % ppb, v);
        if (wide) {
            [[unroll]] for (uint i = 0u; i < 32u; i++) out_w[lane * 33u + i] = floatBitsToUint(v[i]);
        } else if (pc.dst_type == QK_ID_F16) {
            [[unroll]] for (uint i = 0u; i < 16u; i++)
                out_w[lane * 33u + i] = qk_f32_to_fp16(v[2u * i]) | (qk_f32_to_fp16(v[2u * i + 1u]) << 16);
        } else {
            [[unroll]] for (uint i = 0u; i < 16u; i++)
                out_w[lane * 33u + i] = qk_f32_to_bf16(v[2u * i]) | (qk_f32_to_bf16(v[2u * i + 1u]) << 16);
        }
    }
    barrier();
    uint parts_here = min(WG, pc.n_parts - group * WG), base = pc.qk_off[2] / 4u + group * WG * per_part;
    for (uint k = lane; k < parts_here * per_part; k += WG) dst_w[base + k] = out_w[(k / per_part) * 33u + k % per_part];
}
