#version 450
/* The MoE matmul's tiled path (many tokens per expert: prompt processing), one variant per
 * quantized weight type. moe_route.comp has grouped the slots by expert into tiles of at most
 * BN slots; a workgroup (grid: row blocks x tiles, both grid-stride) computes one expert's
 * block of rows for one tile. Per step of KT = 64 values it decodes the weights into shared
 * memory (every invocation one part of 32 values of one row), stages the tile's activations
 * beside them, and multiplies.
 *
 * The weight block is 64 (plain) or 128 (QK_COOPMAT) "virtual rows": rows of w, or for
 * gate/up half rows of w and half the same rows of w_up, so that one layout serves both and a
 * thread (plain) or subgroup (QK_COOPMAT) holds gate and up of the same output rows.
 *
 * Plain (every device; lavapipe): 128 invocations, 64 rows x 32 slots, f32 tiles, each
 * invocation 4 virtual rows x 4 slots of fused multiply-adds. 25 KiB of shared memory.
 *
 * QK_COOPMAT (VK_NV_cooperative_matrix, subgroups of 32): 256 invocations (8 subgroups),
 * 128 rows x 64 slots, weights and activations rounded to f16 in shared memory, 16x16x16
 * products accumulating in f32; a subgroup owns 32 virtual rows x 32 slots (2 x 2 matrices).
 * 36 KiB of shared memory. Results go out through a per-subgroup 16x16 staging area, since the
 * slots of a tile are scattered over the output. */
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : require
#ifdef QK_COOPMAT
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif

#define KT 64u
#ifdef QK_COOPMAT
#define THREADS 256u
#define VROWS   128u
#define BN      64u
layout(local_size_x = 256) in;
#else
#define THREADS 128u
#define VROWS   64u
#define BN      32u
layout(local_size_x = 128) in;
#endif

layout(std430, set = 0, binding = 1) readonly buffer W { uint w_w[]; };
layout(std430, set = 0, binding = 2) readonly buffer WU { uint wu_w[]; };
layout(std430, set = 0, binding = 3) readonly buffer X { uint x_w[]; };
layout(std430, set = 0, binding = 4) readonly buffer Route { uint route_w[]; };
layout(std430, set = 0, binding = 5) buffer Out { uint out_w[]; };
/* Mirrored by tiled_params in runtime/vulkan/moe_vulkan.c. tiles, n_tiles and sorted are word
 * offsets into the route binding (moe_route.comp). */
layout(push_constant) uniform Params {
    uint qk_off[8];
    uint m, k, n_used, x_type;
    uint x_per_slot, gate_up, row_bytes, e_lo;
    uint e_hi, r_lo, r_hi, tiles;
    uint n_tiles, sorted;
} pc;

#include "moe.glsl"

#ifdef QK_FLOAT_WEIGHTS
#error "moe_tiled.comp: float weights take the vector path (moe_vulkan.c's thresholds)"
#endif

#define NO_SLOT 0xffffffffu
shared uint tslots[BN];

#ifdef QK_COOPMAT
#define ASTRIDE 9u /* uvec4 (8 halves) per staged row: 64 values + 8 of padding */
shared uvec4 as4[VROWS * ASTRIDE];
shared uvec4 bs4[BN * ASTRIDE];
shared float cs[8u * 256u];
#define CM_A fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define CM_C fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>

/* Values i and i + 1 (i even) of an activation row as two f16 (round to nearest). */
uint moe_x_pair_f16(uint row, uint i) {
    if (pc.x_type == QK_ID_F16) {
        const uint off = row + 2u * i, w = x_w[off >> 2];
        return (off & 2u) == 0u ? w : (w >> 16) | (x_w[(off >> 2) + 1u] << 16);
    }
    return packFloat2x16(f16vec2(float16_t(moe_load_x(row, i)), float16_t(moe_load_x(row, i + 1u))));
}
#else
#define FSTRIDE 65u /* floats per staged row */
shared float ws[VROWS * FSTRIDE];
shared float xsh[BN * FSTRIDE];
#endif

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const bool gated = pc.gate_up != 0u;
    const uint tm = gated ? VROWS / 2u : VROWS; /* output rows per workgroup */
    const uint row0 = gl_WorkGroupID.x * tm;
    const uint R = pc.qk_off[4] / 4u;
    const uint n_tiles = route_w[R + pc.n_tiles];
    const uint esize = pc.x_type == QK_ID_F32 ? 4u : 2u;

    /* decoding: virtual row dv (tensor dt, row dr), part dp of the step */
    const uint dv = tid >> 1, dp = tid & 1u, dt = dv / tm, dr = row0 + dv % tm;
    const bool drow_live = dr < pc.m && dr >= pc.r_lo && dr < pc.r_hi;
    /* staging activations: slot xc of the tile, values [xq * XV, xq * XV + XV) of the step */
#define XV (KT * BN / THREADS)
    const uint xc = tid / (KT / XV), xq = tid % (KT / XV);

#ifdef QK_COOPMAT
    const uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    const uint wm = sg & 3u, wn = sg >> 2;
    /* the subgroup's two 16-row blocks of virtual rows: for gate/up, block wm of w and of w_up */
    const uint rb0 = gated ? wm : 2u * wm, rb1 = gated ? wm + 4u : 2u * wm + 1u;
#else
    const uint tr = tid & 15u, tc = tid >> 4;
#endif

    for (uint tile = gl_WorkGroupID.y; tile < n_tiles; tile += gl_NumWorkGroups.y) {
        const uint e = route_w[R + pc.tiles + 4u * tile], first = route_w[R + pc.tiles + 4u * tile + 1u];
        const uint count = route_w[R + pc.tiles + 4u * tile + 2u];
        if (e < pc.e_lo || e >= pc.e_hi) continue; /* another weight window's */
        barrier(); /* the previous tile's readers of tslots are done */
        if (tid < BN) tslots[tid] = tid < count ? route_w[R + pc.sorted + first + tid] : NO_SLOT;
        barrier();
        const uint wrow = drow_live ? pc.qk_off[1u + dt] + moe_row_offset(e, dr, pc.e_lo, pc.r_lo, pc.m, pc.row_bytes) : 0u;
        const uint xslot = tslots[xc];
        const uint xrow =
            xslot == NO_SLOT ? 0u : pc.qk_off[3] + (pc.x_per_slot != 0u ? xslot : xslot / pc.n_used) * pc.k * esize;

#ifdef QK_COOPMAT
        CM_C c00 = CM_C(0.0), c01 = CM_C(0.0), c10 = CM_C(0.0), c11 = CM_C(0.0);
#else
        float acc[4][4];
        [[unroll]] for (uint i = 0u; i < 4u; i++)[[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = 0.0;
#endif

        for (uint k0 = 0u; k0 < pc.k; k0 += KT) {
            const uint np = min(KT, pc.k - k0) / 32u; /* k is a multiple of 32 */
            barrier(); /* the previous step's readers are done */
            float v[32];
            if (drow_live && dp < np) {
                if (dt == 0u) { /* uniform per subgroup: dt changes at a multiple of 32 invocations */
                    qk_wsel = 0u;
                    moe_decode(wrow, k0 / 32u + dp, pc.k, v);
                } else {
                    qk_wsel = 1u;
                    moe_decode(wrow, k0 / 32u + dp, pc.k, v);
                }
            } else {
                [[unroll]] for (uint i = 0u; i < 32u; i++) v[i] = 0.0;
            }
#ifdef QK_COOPMAT
            [[unroll]] for (uint q = 0u; q < 4u; q++) {
                uvec4 h;
                [[unroll]] for (uint c = 0u; c < 4u; c++)
                    h[c] = packFloat2x16(f16vec2(float16_t(v[8u * q + 2u * c]), float16_t(v[8u * q + 2u * c + 1u])));
                as4[dv * ASTRIDE + dp * 4u + q] = h;
            }
            [[unroll]] for (uint q = 0u; q < XV / 8u; q++) {
                uvec4 h = uvec4(0u);
                if (xslot != NO_SLOT) {
                    [[unroll]] for (uint c = 0u; c < 4u; c++) {
                        const uint i = k0 + xq * XV + 8u * q + 2u * c;
                        if (i >= pc.k) continue;
                        h[c] = moe_x_pair_f16(xrow, i);
                    }
                }
                bs4[xc * ASTRIDE + xq * (XV / 8u) + q] = h;
            }
#else
            [[unroll]] for (uint i = 0u; i < 32u; i++) ws[dv * FSTRIDE + dp * 32u + i] = v[i];
            [[unroll]] for (uint i = 0u; i < XV; i++) {
                const uint kk = k0 + xq * XV + i;
                xsh[xc * FSTRIDE + xq * XV + i] = xslot != NO_SLOT && kk < pc.k ? moe_load_x(xrow, kk) : 0.0;
            }
#endif
            barrier();

#ifdef QK_COOPMAT
            [[unroll]] for (uint kk = 0u; kk < KT / 16u; kk++) {
                CM_A a0, a1, b0, b1;
                coopMatLoadNV(a0, as4, rb0 * 16u * ASTRIDE + 2u * kk, ASTRIDE, false);
                coopMatLoadNV(a1, as4, rb1 * 16u * ASTRIDE + 2u * kk, ASTRIDE, false);
                /* B is k x slots: slot n's values lie in its row of bs4, column-major for B */
                coopMatLoadNV(b0, bs4, (2u * wn) * 16u * ASTRIDE + 2u * kk, ASTRIDE, true);
                coopMatLoadNV(b1, bs4, (2u * wn + 1u) * 16u * ASTRIDE + 2u * kk, ASTRIDE, true);
                c00 = coopMatMulAddNV(a0, b0, c00);
                c01 = coopMatMulAddNV(a0, b1, c01);
                c10 = coopMatMulAddNV(a1, b0, c10);
                c11 = coopMatMulAddNV(a1, b1, c11);
            }
#else
            for (uint kk = 0u; kk < KT; kk++) {
                float a[4], b[4];
                [[unroll]] for (uint i = 0u; i < 4u; i++) a[i] = ws[(tr + 16u * i) * FSTRIDE + kk];
                [[unroll]] for (uint j = 0u; j < 4u; j++) b[j] = xsh[(tc + 8u * j) * FSTRIDE + kk];
                [[unroll]] for (uint i = 0u; i < 4u; i++)[[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);
            }
#endif
        }

        const uint O = pc.qk_off[5] / 4u;
#ifdef QK_COOPMAT
        if (gated) { /* c1x hold the up projection of c0x's rows */
            for (int i = 0; i < c00.length(); i++) {
                c00[i] = moe_silu(c00[i]) * c10[i];
                c01[i] = moe_silu(c01[i]) * c11[i];
            }
        }
        [[unroll]] for (uint f = 0u; f < 4u; f++) {
            const uint fi = f >> 1, fj = f & 1u;
            if (gated && fi == 1u) break;
            if (f == 0u)
                coopMatStoreNV(c00, cs, sg * 256u, 16u, true);
            else if (f == 1u)
                coopMatStoreNV(c01, cs, sg * 256u, 16u, true);
            else if (f == 2u)
                coopMatStoreNV(c10, cs, sg * 256u, 16u, true);
            else
                coopMatStoreNV(c11, cs, sg * 256u, 16u, true);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            const uint rbase = row0 + (gated ? wm : 2u * wm + fi) * 16u;
            [[unroll]] for (uint q = 0u; q < 8u; q++) {
                const uint idx = lane + 32u * q, r = rbase + (idx & 15u);
                const uint s = tslots[(2u * wn + fj) * 16u + (idx >> 4)];
                if (s != NO_SLOT && r < pc.m && r >= pc.r_lo && r < pc.r_hi)
                    out_w[O + s * pc.m + r] = floatBitsToUint(cs[sg * 256u + idx]);
            }
            subgroupBarrier(); /* the staging area is read before the next store */
        }
#else
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            const uint s = tslots[tc + 8u * j];
            if (s == NO_SLOT) continue;
            [[unroll]] for (uint i = 0u; i < 4u; i++) {
                if (gated && i >= 2u) break;
                const uint r = row0 + tr + 16u * i;
                if (r >= pc.m || r < pc.r_lo || r >= pc.r_hi) continue;
                const float y = gated ? moe_silu(acc[i][j]) * acc[i + 2u][j] : acc[i][j];
                out_w[O + s * pc.m + r] = floatBitsToUint(y);
            }
        }
#endif
    }
}
