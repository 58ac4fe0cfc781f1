#version 450
/* The MoE matmul's vector path (few tokens per expert: token generation), one variant per
 * weight type (QK_TYPE_<T>): every slot reads its expert's rows once and the dot products
 * accumulate in f32. Also the per-slot products of the weighted sum (the host sums them with
 * moe_wsum.comp).
 *
 * Workgroup (grid: row groups x slots, both grid-stride): 128 invocations in four teams of 32;
 * a team's lanes form 32 / L sub-teams of L lanes (L = pc.lanes, a power of two up to 32
 * chosen by the host from the row length, so that short rows keep every lane busy), and each
 * sub-team computes VEC_RPT rows, its lanes taking every L-th part (32 values) of the row,
 * parts side by side in memory. Activations come in chunks of VEC_CHUNK values, converted to
 * f32 into shared memory once for all the workgroup's rows (padded: a lane's part starts
 * one bank further than its neighbour's). The L partial sums of a row meet by subgroup
 * shuffles where a subgroup is 32 lanes (NVIDIA), else through shared memory.
 *
 * A slot whose id is out of range reads no weights and gets NaN (written by the dispatch of the
 * first weight window, pc.nan_bad). */
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require

#define VEC_THREADS 128u
#define VEC_RPT     2u    /* rows per sub-team */
#define VEC_CHUNK   2048u /* activations staged at once */

layout(local_size_x = 128) in;
layout(std430, set = 0, binding = 1) readonly buffer W { uint w_w[]; };
layout(std430, set = 0, binding = 2) readonly buffer WU { uint wu_w[]; };
layout(std430, set = 0, binding = 3) readonly buffer X { uint x_w[]; };
layout(std430, set = 0, binding = 4) readonly buffer Ids { uint ids_w[]; };
layout(std430, set = 0, binding = 5) buffer Out { uint out_w[]; };
/* Mirrored by vec_params in runtime/vulkan/moe_vulkan.c. */
layout(push_constant) uniform Params {
    uint qk_off[8];
    uint m, k, n_expert, n_used;
    uint n_slots, x_type, x_per_slot, has_ids;
    uint gate_up, lanes, row_bytes, nan_bad;
    uint e_lo, e_hi, r_lo, r_hi;
    uint use_shuffle;
} pc;

#include "moe.glsl"

shared float xs[VEC_CHUNK / 32u * 33u];
shared float red[2u * VEC_RPT * VEC_THREADS];

void main() {
    const uint tid = gl_LocalInvocationID.x, lane = tid & 31u, team = tid >> 5;
    const uint L = pc.lanes, G = 32u / L, sub = lane / L, u = lane % L;
    const uint rows_wg = 4u * G * VEC_RPT, n_rg = (pc.m + rows_wg - 1u) / rows_wg;
    const bool gated = pc.gate_up != 0u;
    const uint esize = pc.x_type == QK_ID_F32 ? 4u : 2u;
    const bool shuffle = pc.use_shuffle != 0u && gl_SubgroupSize == 32u;

    for (uint slot = gl_WorkGroupID.y; slot < pc.n_slots; slot += gl_NumWorkGroups.y) {
        const uint e = pc.has_ids != 0u ? ids_w[pc.qk_off[4] / 4u + slot] : 0u;
        const bool bad = e >= pc.n_expert; /* a negative id too */
        if (bad ? pc.nan_bad == 0u : (e < pc.e_lo || e >= pc.e_hi)) continue;
        const uint xrow = pc.qk_off[3] + (pc.x_per_slot != 0u ? slot : slot / pc.n_used) * pc.k * esize;

        for (uint rg = gl_WorkGroupID.x; rg < n_rg; rg += gl_NumWorkGroups.x) {
            const uint row0 = rg * rows_wg + (team * G + sub) * VEC_RPT;
            bool live[VEC_RPT];
            uint wrow[VEC_RPT];
            float acc[2][VEC_RPT];
            [[unroll]] for (uint j = 0u; j < VEC_RPT; j++) {
                const uint r = row0 + j;
                live[j] = !bad && r < pc.m && r >= pc.r_lo && r < pc.r_hi;
                wrow[j] = live[j] ? moe_row_offset(e, r, pc.e_lo, pc.r_lo, pc.m, pc.row_bytes) : 0u;
                acc[0][j] = 0.0;
                acc[1][j] = 0.0;
            }
            if (!bad) { /* uniform: one slot per workgroup */
                for (uint c0 = 0u; c0 < pc.k; c0 += VEC_CHUNK) {
                    const uint nc = min(VEC_CHUNK, pc.k - c0), np = (nc + 31u) / 32u;
                    barrier(); /* the previous chunk's readers are done */
                    for (uint i = tid; i < np * 32u; i += VEC_THREADS)
                        xs[(i >> 5) * 33u + (i & 31u)] = i < nc ? moe_load_x(xrow, c0 + i) : 0.0;
                    barrier();
                    for (uint pp = u; pp < np; pp += L) {
                        float xv[32];
                        [[unroll]] for (uint i = 0u; i < 32u; i++) xv[i] = xs[pp * 33u + i];
                        const uint gp = c0 / 32u + pp;
                        [[unroll]] for (uint j = 0u; j < VEC_RPT; j++) {
                            if (!live[j]) continue;
                            [[unroll]] for (uint t = 0u; t < 2u; t++) {
                                if (t == 1u && !gated) break;
                                qk_wsel = t;
                                float v[32];
                                moe_decode(pc.qk_off[1u + t] + wrow[j], gp, pc.k, v);
                                /* four chains of fused multiply-adds: one would wait on each add */
                                float d0 = 0.0, d1 = 0.0, d2 = 0.0, d3 = 0.0;
                                [[unroll]] for (uint i = 0u; i < 32u; i += 4u) {
                                    d0 = fma(v[i], xv[i], d0);
                                    d1 = fma(v[i + 1u], xv[i + 1u], d1);
                                    d2 = fma(v[i + 2u], xv[i + 2u], d2);
                                    d3 = fma(v[i + 3u], xv[i + 3u], d3);
                                }
                                acc[t][j] += (d0 + d1) + (d2 + d3);
                            }
                        }
                    }
                }
                /* the L lanes of a row add their sums */
                if (shuffle) {
                    [[unroll]] for (uint t = 0u; t < 2u; t++)
                        [[unroll]] for (uint j = 0u; j < VEC_RPT; j++)
                            for (uint o = L >> 1; o > 0u; o >>= 1) acc[t][j] += subgroupShuffleXor(acc[t][j], o);
                } else {
                    [[unroll]] for (uint t = 0u; t < 2u; t++)
                        [[unroll]] for (uint j = 0u; j < VEC_RPT; j++) red[(t * VEC_RPT + j) * VEC_THREADS + tid] = acc[t][j];
                    barrier();
                    if (u == 0u) {
                        [[unroll]] for (uint t = 0u; t < 2u; t++)
                            [[unroll]] for (uint j = 0u; j < VEC_RPT; j++) {
                                float s = 0.0;
                                for (uint i = 0u; i < L; i++) s += red[(t * VEC_RPT + j) * VEC_THREADS + tid + i];
                                acc[t][j] = s;
                            }
                    }
                    barrier();
                }
            }
            if (u == 0u) {
                [[unroll]] for (uint j = 0u; j < VEC_RPT; j++) {
                    const uint r = row0 + j;
                    if (bad ? r >= pc.m : !live[j]) continue;
                    const float y = bad ? MOE_NAN : (gated ? moe_silu(acc[0][j]) * acc[1][j] : acc[0][j]);
                    out_w[pc.qk_off[5] / 4u + slot * pc.m + r] = floatBitsToUint(y);
                }
            }
        }
    }
}
