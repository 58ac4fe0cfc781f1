#version 450
/* The legacy encoders' row statistic with an imatrix (kernels/cpu/legacy_block.h): the mean
 * of x^2 over the row, summed sequentially in the reference's order, one invocation a row. */
layout(local_size_x = 64) in;
layout(std430, set = 0, binding = 1) readonly buffer Src { uint src_w[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Dst { float sigma2[]; };
layout(push_constant) uniform Params {
    uint qk_off[8];
    uint rows;
    uint cols;
    uint src_type;
} pc;
#define QK_SRC_WORD(i) src_w[i]
#define QK_BLOCK_WORDS 1u
#include "common.glsl"
#include "io.glsl"

void main() {
    uint r = gl_GlobalInvocationID.x;
    if (r >= pc.rows) return;
    float acc = 0.0;
    for (uint i = 0u; i < pc.cols; i++) {
        float v = qk_load_value(pc.src_type, pc.qk_off[1], r * pc.cols + i);
        acc = qk_add(acc, qk_mul(v, v)); /* the driver would flush subnormal squares */
    }
    sigma2[pc.qk_off[2] / 4u + r] = qk_div(acc, float(pc.cols));
}
