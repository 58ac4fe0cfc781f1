#version 450
/* The router-weighted sum over a token's slots, in slot order (qk_moe_weighted_sum):
 * y[t][r] = sum over s = 0..n_used-1 of router[t][s] * partial[t][s][r], from the per-slot
 * products that the vector or tiled path wrote to the workspace. One invocation per output
 * (grid-stride), so a token's slots add in the same order on every path. */
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 1) readonly buffer Partial { float partial[]; };
layout(std430, set = 0, binding = 2) readonly buffer Router { float router[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Y { float y[]; };
/* Mirrored by wsum_params in runtime/vulkan/moe_vulkan.c. */
layout(push_constant) uniform Params {
    uint qk_off[8];
    uint n_tokens, n_used, m;
} pc;

void main() {
    const uint P = pc.qk_off[1] / 4u, Rt = pc.qk_off[2] / 4u, Y0 = pc.qk_off[3] / 4u;
    const uint n = pc.n_tokens * pc.m, stride = gl_NumWorkGroups.x * 256u;
    for (uint i = gl_WorkGroupID.x * 256u + gl_LocalInvocationID.x; i < n; i += stride) {
        const uint t = i / pc.m, r = i % pc.m;
        float acc = 0.0;
        for (uint s = 0u; s < pc.n_used; s++)
            acc = fma(router[Rt + t * pc.n_used + s], partial[P + (t * pc.n_used + s) * pc.m + r], acc);
        y[Y0 + i] = acc;
    }
}
