#version 450
/* The benchmarks' bandwidth ceiling: a device-to-device copy through a compute shader, the way
 * the kernels themselves move memory (16-byte loads and stores, grid-stride). */
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 1) readonly buffer Src { uvec4 src[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Dst { uvec4 dst[]; };
layout(push_constant) uniform Params {
    uint qk_off[8];
    uint n; /* 16-byte vectors; both operands 16-byte aligned */
} pc;

void main() {
    uint stride = gl_NumWorkGroups.x * 256u;
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) dst[i] = src[i];
}
