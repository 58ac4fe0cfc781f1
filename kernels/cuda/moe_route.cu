/* The type-independent steps of the tiled MoE path: grouping the slots by expert into tiles,
 * converting the activations to f16, and the ordered weighted sum over a token's slots. */
#include "codec_kernels.cuh"
#include "moe_launch.h"

namespace {

constexpr int ROUTE_THREADS = 1024;

/* One CUDA block, so that the grouping needs no second launch and no host: count the slots of
 * every expert, scan the counts (a thread per contiguous run of experts, then a scan of the
 * threads' sums), cut every expert's run into tiles of at most bn slots, and scatter the slot
 * indices to their expert's run. The order of slots inside a run depends on the atomics'
 * order, which changes nothing: every output element is one slot's own dot product. */
__global__ void __launch_bounds__(ROUTE_THREADS)
    route_kernel(const int32_t *ids, int n_slots, int n_expert, int bn, int m, int *counts, int *cursor, int4 *tiles,
                 int *n_tiles, int *sorted, float *out) {
    __shared__ int run_slots[ROUTE_THREADS], run_tiles[ROUTE_THREADS];
    const int tid = threadIdx.x;
    for (int e = tid; e < n_expert; e += ROUTE_THREADS) counts[e] = 0;
    __syncthreads();
    for (int i = tid; i < n_slots; i += ROUTE_THREADS) {
        const int e = ids ? ids[i] : 0;
        if (e >= 0 && e < n_expert) atomicAdd(&counts[e], 1);
    }
    __syncthreads();
    const int per = (n_expert + ROUTE_THREADS - 1) / ROUTE_THREADS;
    const int e0 = tid * per, e1 = e0 + per < n_expert ? e0 + per : n_expert;
    int my_slots = 0, my_tiles = 0;
    for (int e = e0; e < e1; e++) my_slots += counts[e], my_tiles += (counts[e] + bn - 1) / bn;
    run_slots[tid] = my_slots, run_tiles[tid] = my_tiles;
    __syncthreads();
    for (int o = 1; o < ROUTE_THREADS; o <<= 1) { /* inclusive scan of the runs */
        const int s = tid >= o ? run_slots[tid - o] : 0, t = tid >= o ? run_tiles[tid - o] : 0;
        __syncthreads();
        run_slots[tid] += s, run_tiles[tid] += t;
        __syncthreads();
    }
    int slot_at = run_slots[tid] - my_slots, tile_at = run_tiles[tid] - my_tiles;
    for (int e = e0; e < e1; e++) {
        const int c = counts[e];
        for (int j = 0; j * bn < c; j++)
            tiles[tile_at++] = make_int4(e, slot_at + j * bn, c - j * bn < bn ? c - j * bn : bn, 0);
        cursor[e] = slot_at;
        slot_at += c;
    }
    if (tid == ROUTE_THREADS - 1) *n_tiles = run_tiles[tid];
    __syncthreads();
    for (int i = tid; i < n_slots; i += ROUTE_THREADS) {
        const int e = ids ? ids[i] : 0;
        if (e >= 0 && e < n_expert) {
            sorted[atomicAdd(&cursor[e], 1)] = i;
        } else {
            for (int r = 0; r < m; r++) out[(int64_t)i * m + r] = __int_as_float(0x7fc00000);
        }
    }
}

__global__ void to_half_kernel(const void *x, int x_type, int64_t n, __half *xh) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        xh[i] = __float2half_rn(qk_cuda::load_value(x, x_type, i));
}

/* 32 activations to 8 bits, lane i of a warp holding value v: returns its code round(v / d), d =
 * max |v| / 127, and sets *xs (every lane) to d and d times the sums of the two halves' codes.
 * The half sums are of the codes, not of x: where a weight's offset nearly cancels its scaled
 * codes (the K-quants' mins), the product must be that of one activation vector, or the
 * activations' rounding error is not cancelled with them (measured: 2-4% relative error with
 * exact sums, below 1% with these). */
__device__ int quantize_x_group(float v, int lane, float4 *xs) {
    float amax = fabsf(v);
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    const int q = __float2int_rn(v * inv);
    int half = q;
    for (int o = 8; o > 0; o >>= 1) half += __shfl_xor_sync(0xffffffffu, half, o);
    const int lower = __shfl_sync(0xffffffffu, half, 0), upper = __shfl_sync(0xffffffffu, half, 16);
    *xs = make_float4(d, d * (float)lower, d * (float)upper, 0.0f);
    return q;
}

/* A warp per 32 values: lane i holds value i. */
__global__ void quantize_x_kernel(const void *x, int x_type, int64_t groups, int8_t *xq, float4 *xm) {
    const int lane = threadIdx.x % 32;
    qk_cuda::allow_dependent_launch(); /* the dot kernel starts early and waits for these */
    for (int64_t g = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; g < groups;
         g += (int64_t)gridDim.x * blockDim.x / 32) {
        float4 s;
        const int q = quantize_x_group(qk_cuda::load_value(x, x_type, g * 32 + lane), lane, &s);
        xq[g * 32 + lane] = (int8_t)q;
        if (lane == 0) xm[g] = s;
    }
}

__global__ void weighted_sum_kernel(const float *partial, const float *router, int64_t n_tokens, int64_t n_used,
                                    int64_t m, float *y) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_tokens * m;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i / m, r = i % m;
        float acc = 0.0f;
        for (int64_t s = 0; s < n_used; s++) acc = fmaf(router[t * n_used + s], partial[(t * n_used + s) * m + r], acc);
        y[i] = acc;
    }
}

} // namespace

int qk_cuda_moe_prepare(const qk_cuda_moe_args *a, const qk_cuda_moe_plan *p, moe_route *r, float **out,
                        cudaStream_t s) {
    uint8_t *ws = static_cast<uint8_t *>(a->workspace);
    int *counts = reinterpret_cast<int *>(ws + p->counts);
    int4 *tiles = reinterpret_cast<int4 *>(ws + p->tiles);
    int *n_tiles = reinterpret_cast<int *>(ws + p->n_tiles);
    int *sorted = reinterpret_cast<int *>(ws + p->sorted);
    *out = a->kind == QK_CUDA_MOE_WEIGHTED_SUM ? reinterpret_cast<float *>(ws + p->partial) : a->y;
    const int64_t slots = a->n_tokens * a->n_used;
    route_kernel<<<1, ROUTE_THREADS, 0, s>>>(a->ids, (int)slots, (int)a->n_expert, p->bn, (int)a->m, counts,
                                             counts + a->n_expert, tiles, n_tiles, sorted, *out);
    const int64_t n = (a->x_per_slot ? slots : a->n_tokens) * a->k;
    const __half *xh = reinterpret_cast<const __half *>(a->x);
    if (a->x_type != qk_cuda::TYPE_F16 || (reinterpret_cast<uintptr_t>(a->x) & 15)) {
        __half *conv = reinterpret_cast<__half *>(ws + p->xh);
        to_half_kernel<<<qk_cuda::grid_for(n, 256), 256, 0, s>>>(a->x, a->x_type, n, conv);
        xh = conv;
    }
    r->tiles = tiles;
    r->n_tiles = n_tiles;
    r->sorted = sorted;
    r->xh = xh;
    return (int)cudaGetLastError();
}

int qk_cuda_moe_quantize_x(const qk_cuda_moe_args *a, const qk_cuda_moe_plan *p, cudaStream_t s) {
    uint8_t *ws = static_cast<uint8_t *>(a->workspace);
    const int64_t groups = (a->x_per_slot ? a->n_tokens * a->n_used : a->n_tokens) * a->k / 32;
    quantize_x_kernel<<<qk_cuda::grid_for(groups, 8), 256, 0, s>>>(
        a->x, a->x_type, groups, reinterpret_cast<int8_t *>(ws + p->xq), reinterpret_cast<float4 *>(ws + p->xm));
    return (int)cudaGetLastError();
}

int qk_cuda_moe_weighted_sum(const qk_cuda_moe_args *a, const float *partial, cudaStream_t s) {
    weighted_sum_kernel<<<qk_cuda::grid_for(a->n_tokens * a->m, 256), 256, 0, s>>>(partial, a->router, a->n_tokens,
                                                                                   a->n_used, a->m, a->y);
    return (int)cudaGetLastError();
}
