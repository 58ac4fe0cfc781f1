#version 450
/* The input check before every quantization: the smallest index of a NaN or Inf value (of
 * this dispatch's range) in result[0], which starts at 0xffffffff. */
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 1) readonly buffer Src { uint src_w[]; };
layout(std430, set = 0, binding = 2) buffer Result { uint first_bad[]; };
layout(push_constant) uniform Params {
    uint qk_off[8];
    uint n;
    uint src_type;
} pc;
#define QK_SRC_WORD(i) src_w[i]
#define QK_BLOCK_WORDS 1u
#include "common.glsl"
#include "io.glsl"

void main() {
    uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * 256u;
    for (uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 256u + gl_LocalInvocationID.x; i < pc.n;
         i += stride)
        if (qk_value_nonfinite(pc.src_type, pc.qk_off[1], i)) {
            atomicMin(first_bad[pc.qk_off[2] / 4u], i);
            return;
        }
}
