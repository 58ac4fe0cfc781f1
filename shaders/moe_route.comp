#version 450
/* The tiled MoE path's grouping of slots by expert, in one workgroup so that it needs no
 * second dispatch and no host: count every expert's slots, scan the counts (an invocation per
 * contiguous run of experts, then a scan of the runs' sums), cut each expert's run into tiles
 * of at most pc.bn slots, and scatter the slot indices to their expert's run. The order of the
 * slots inside a run follows the atomics' order, which changes nothing: every output element
 * is one slot's own dot product.
 *
 * Route binding (word offsets in pc): counts[n_expert], cursor[n_expert], n_tiles, tiles[] of
 * (expert, first index into sorted, slot count, 0), sorted[n_slots]. A slot whose id is out of
 * range joins no tile; its output row becomes NaN here. */
#extension GL_EXT_control_flow_attributes : enable

#define THREADS 256u
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 1) readonly buffer Ids { uint ids_w[]; };
layout(std430, set = 0, binding = 2) coherent buffer Route { uint route_w[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Out { uint out_w[]; };
/* Mirrored by route_params in runtime/vulkan/moe_vulkan.c. */
layout(push_constant) uniform Params {
    uint qk_off[8];
    uint n_slots, n_expert, has_ids, bn;
    uint m, counts, cursor, n_tiles;
    uint tiles, sorted;
} pc;

shared uint run_slots[THREADS], run_tiles[THREADS];

uint expert_of(uint i) { return pc.has_ids != 0u ? ids_w[pc.qk_off[1] / 4u + i] : 0u; }

void main() {
    const uint tid = gl_LocalInvocationID.x, R = pc.qk_off[2] / 4u;
    for (uint e = tid; e < pc.n_expert; e += THREADS) route_w[R + pc.counts + e] = 0u;
    memoryBarrierBuffer();
    barrier();
    for (uint i = tid; i < pc.n_slots; i += THREADS) {
        const uint e = expert_of(i);
        if (e < pc.n_expert) atomicAdd(route_w[R + pc.counts + e], 1u);
    }
    memoryBarrierBuffer();
    barrier();

    const uint per = (pc.n_expert + THREADS - 1u) / THREADS;
    const uint e0 = min(tid * per, pc.n_expert), e1 = min(e0 + per, pc.n_expert);
    uint my_slots = 0u, my_tiles = 0u;
    for (uint e = e0; e < e1; e++) {
        const uint c = route_w[R + pc.counts + e];
        my_slots += c;
        my_tiles += (c + pc.bn - 1u) / pc.bn;
    }
    run_slots[tid] = my_slots;
    run_tiles[tid] = my_tiles;
    barrier();
    for (uint o = 1u; o < THREADS; o <<= 1) { /* inclusive scan of the runs */
        const uint s = tid >= o ? run_slots[tid - o] : 0u, t = tid >= o ? run_tiles[tid - o] : 0u;
        barrier();
        run_slots[tid] += s;
        run_tiles[tid] += t;
        barrier();
    }
    uint slot_at = run_slots[tid] - my_slots, tile_at = run_tiles[tid] - my_tiles;
    for (uint e = e0; e < e1; e++) {
        const uint c = route_w[R + pc.counts + e];
        for (uint j = 0u; j * pc.bn < c; j++, tile_at++) {
            const uint t = R + pc.tiles + 4u * tile_at;
            route_w[t] = e;
            route_w[t + 1u] = slot_at + j * pc.bn;
            route_w[t + 2u] = min(pc.bn, c - j * pc.bn);
            route_w[t + 3u] = 0u;
        }
        route_w[R + pc.cursor + e] = slot_at;
        slot_at += c;
    }
    if (tid == THREADS - 1u) route_w[R + pc.n_tiles] = run_tiles[tid];
    memoryBarrierBuffer();
    barrier();

    for (uint i = tid; i < pc.n_slots; i += THREADS) {
        const uint e = expert_of(i);
        if (e < pc.n_expert) {
            route_w[R + pc.sorted + atomicAdd(route_w[R + pc.cursor + e], 1u)] = i;
        } else {
            for (uint r = 0u; r < pc.m; r++) out_w[pc.qk_off[3] / 4u + i * pc.m + r] = 0x7fc00000u;
        }
    }
}
