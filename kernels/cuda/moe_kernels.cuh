/* The expert-batched matmul (qkern.h: qk_moe_matmul and its fused forms), parameterised by a
 * type's decode traits (decode_traits.cuh: the CPU reference's part decoders, 32 values at a
 * time) and its 8-bit part decoder (dot_i8.h), so no format knowledge lives here.
 *
 * Three paths (moe_plan.cu chooses, from one table):
 *   - moe_dot_kernel, for few tokens per expert (token generation) at the default precision: the
 *     activations quantized to 8 bits once per call (moe_route.cu), each slot reads its expert's
 *     rows once, straight from global memory, and multiplies them as 8-bit codes with dp4a,
 *     scaling per 16 values. The weighted sum is every slot's product into the workspace, then
 *     the ordered sum (moe_route.cu).
 *   - moe_vec_kernel, the same in f32 (the exact precision, the float weights, weights at an
 *     address the dot path cannot load from): a lane decodes whole blocks of a row (L lanes
 *     share a row, by the row length) and the dot products accumulate in f32.
 *   - moe_tiled_kernel, for many (prompt processing): slots grouped by expert on the GPU
 *     (moe_route.cu), a CUDA block computes a 128-row (gate/up: 64) x BN-slot tile of one expert
 *     on the tensor cores (mma.sync m16n8k16, f16 in, f32 accumulate). Per step of 256 values it copies the
 *     packed weights (16-byte words, cp.async) and the slots' activations (f16) into shared
 *     memory (double-buffered), decodes the weights into f16 there (through the type's 8-bit
 *     decoder: half the instructions of the f32 one), and multiplies.
 * None allocates or synchronizes: scratch is the caller's workspace (moe_plan.cu lays it out). */
#ifndef QK_MOE_KERNELS_CUH
#define QK_MOE_KERNELS_CUH

#include "codec_kernels.cuh"
#include "dot_i8.h"
#include "moe_launch.h"

namespace qk_cuda {

/* The weights as blocks of at least 32 values: the plain types (QK = 1) are read 32 values
 * at a time, as a "block" of 32. */
template <class T> struct moe_block {
    static constexpr bool PLAIN = T::QK == 1;
    static constexpr int QK = PLAIN ? 32 : T::QK;
    static constexpr int BYTES = PLAIN ? 32 * T::BYTES : T::BYTES;
    static constexpr int PARTS = QK / 32;
    /* values [32p, 32p + 32) of the block at b */
    __device__ static void decode(const uint8_t *b, int p, float *y) {
        if constexpr (PLAIN) {
#pragma unroll
            for (int i = 0; i < 32; i++) T::dequant(b + i * T::BYTES, y + i);
        } else {
            decode_part<T>(b, p, y);
        }
    }
};

__device__ inline float silu(float g) { return g / (1.0f + expf(-g)); }

/* How many aligned 16-byte words cover the bytes [begin, begin + n): a row's packed bytes are
 * copied as those words (byte `begin` then lies at begin % 16 in the first). A 16-byte word
 * that holds a byte of the tensor lies in the same page as it, so the bytes read outside the
 * range are mapped memory. */
__device__ inline int words_of(const uint8_t *begin, int n) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(begin);
    return (int)(((a + n + 15) & ~(uintptr_t)15) - (a & ~(uintptr_t)15)) / 16;
}

/* ---- the vector path ------------------------------------------------------------------------ */

constexpr int VEC_WARPS = 4, VEC_CHUNK = 4096; /* values of a row per chunk at most */

/* A unit is what a lane of the vector path decodes at once: a block (of 256 or 32 values). Its
 * parts are visited in an unrolled loop, so a part decoder sees constant part indices and its
 * index arithmetic folds away, and the decoded values stay in registers. */
template <class T> struct vec_unit {
    using B = moe_block<T>;
    static constexpr int PARTS = B::PARTS;
    static constexpr int VALUES = PARTS * 32;
    static constexpr int BYTES = VALUES / B::QK * B::BYTES;
};

/* The vector kernel's layout for a row length: L lanes per row (units strided over them), G =
 * 32 / L rows per warp, and its dynamic shared memory: the activations of L units, then per
 * warp its G rows' packed bytes (per weight tensor) for those units, as aligned 16-byte words. */
struct vec_layout {
    int lanes, rows_per_warp, packed_stride;
    size_t xs_bytes, smem;
};

template <class T> inline vec_layout vec_layout_for(int64_t k, int nw) {
    using V = vec_unit<T>;
    const int64_t units = (k + V::VALUES - 1) / V::VALUES;
    vec_layout l;
    l.lanes = 1;
    while (l.lanes < units && l.lanes < 32 && 2 * l.lanes * V::VALUES <= VEC_CHUNK) l.lanes *= 2;
    l.rows_per_warp = 32 / l.lanes;
    l.packed_stride = (l.lanes * V::BYTES + 32 + 15) / 16 * 16;
    l.xs_bytes = ((size_t)l.lanes * (V::VALUES + 1) * sizeof(float) + 15) / 16 * 16;
    l.smem = l.xs_bytes + (size_t)VEC_WARPS * nw * l.rows_per_warp * l.packed_stride;
    return l;
}

/* The most any row length needs (the attribute set at context creation). */
template <class T> inline size_t vec_smem_max(int nw) {
    size_t most = 0;
    for (int64_t k = vec_unit<T>::VALUES; k <= (int64_t)vec_unit<T>::VALUES * 32; k *= 2) {
        const size_t n = vec_layout_for<T>(k, nw).smem;
        most = n > most ? n : most;
    }
    return most;
}

__device__ inline void cp_async16(void *shared, const void *global) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(shared);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(global));
}
__device__ inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ inline void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::); }
/* all but the most recent group are complete */
__device__ inline void cp_async_wait_one() { asm volatile("cp.async.wait_group 1;\n" ::); }

/* Rows [0, rows) of NW weight tensors into shared memory, by cp.async: of each row the bytes
 * [seg_off, seg_off + seg), as the aligned 16-byte words that cover them (words_of). base[t] is
 * row 0 of tensor t; row r of tensor t lands at dst + (t * n_rows + r) * stride, its first byte
 * at offset (address % 16) there. The calling threads (i0, i0 + step, ...) share the words;
 * committing the group is the caller's. */
template <int NW>
__device__ inline void stage_rows(uint8_t *dst, int stride, int n_rows, int rows, const uint8_t *const *base,
                                  int64_t row_bytes, int64_t seg_off, int seg, int i0, int step) {
    const int words = stride / 16;
    for (int i = i0; i < NW * n_rows * words; i += step) {
        const int w = i % words, r = i / words % n_rows, t = i / words / n_rows;
        if (r >= rows) continue;
        const uint8_t *src = base[t] + r * row_bytes + seg_off;
        if (w >= words_of(src, seg)) continue;
        const uint8_t *aligned = reinterpret_cast<const uint8_t *>(reinterpret_cast<uintptr_t>(src) & ~15ull);
        cp_async16(dst + (size_t)(t * n_rows + r) * stride + w * 16, aligned + w * 16);
    }
}

/* grid: (row groups of VEC_WARPS * G rows, slots, grid-stride). Lane (g, u) of a warp takes row g of the
 * warp's G rows and every L-th unit of it from u; per chunk of L units, the warps' rows come
 * into shared memory by cp.async (all of a chunk's loads in flight at once: a token has too
 * little work to hide memory latency otherwise) with the chunk's activations, each lane then
 * decodes its unit part by part and accumulates the dot product in f32, and the L lanes of a
 * row add their sums in a fixed order. */
template <class T, int KIND>
__global__ void __launch_bounds__(VEC_WARPS * 32) moe_vec_kernel(qk_cuda_moe_args a, vec_layout l) {
    using B = moe_block<T>;
    using V = vec_unit<T>;
    constexpr bool GATE_UP = KIND == QK_CUDA_MOE_GATE_UP;
    constexpr int NW = GATE_UP ? 2 : 1;
    extern __shared__ __align__(16) uint8_t smem[];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int L = l.lanes, G = l.rows_per_warp, g = lane / L, u_lane = lane % L;
    float *xs = reinterpret_cast<float *>(smem);
    uint8_t *packed = smem + l.xs_bytes + (size_t)warp * NW * G * l.packed_stride;
    const int64_t warp_row0 = ((int64_t)blockIdx.x * VEC_WARPS + warp) * G, row = warp_row0 + g;
    const int64_t esize = a.x_type == TYPE_F32 ? 4 : 2;
    const int64_t row_bytes = a.k / B::QK * B::BYTES;
    const int64_t n_units = (a.k + V::VALUES - 1) / V::VALUES;
    const int64_t units = a.n_tokens * a.n_used;
    const uint8_t *wt[NW];
    wt[0] = static_cast<const uint8_t *>(a.w);
    if constexpr (GATE_UP) wt[NW - 1] = static_cast<const uint8_t *>(a.w_up);

    for (int64_t unit = blockIdx.y; unit < units; unit += gridDim.y) {
        const int64_t slot = unit;
        float out = 0.0f;
        do {
            const int64_t e = a.ids ? a.ids[slot] : 0;
            if (e < 0 || e >= a.n_expert) { /* never read through a bad id (uniform over the block) */
                out = __int_as_float(0x7fc00000);
                break;
            }
            const uint8_t *xg =
                static_cast<const uint8_t *>(a.x) + (a.x_per_slot ? slot : slot / a.n_used) * a.k * esize;
            float acc[NW];
#pragma unroll
            for (int t = 0; t < NW; t++) acc[t] = 0.0f;
            for (int64_t u0 = 0; u0 < n_units; u0 += L) {
                const int64_t v0 = u0 * V::VALUES;
                const int nv = a.k - v0 < (int64_t)L * V::VALUES ? (int)(a.k - v0) : L * V::VALUES;
                const int seg = nv / B::QK * B::BYTES;
                const int64_t seg_off = v0 / B::QK * B::BYTES;
                /* the warp's rows of this chunk, every word in flight before any is waited for */
                const uint8_t *rows0[NW];
#pragma unroll
                for (int t = 0; t < NW; t++) rows0[t] = wt[t] + (e * a.m + warp_row0) * row_bytes;
                stage_rows<NW>(packed, l.packed_stride, G, a.m - warp_row0 < G ? (int)(a.m - warp_row0) : G, rows0,
                               row_bytes, seg_off, seg, lane, 32);
                cp_async_commit();
                for (int i = threadIdx.x; i < nv; i += VEC_WARPS * 32)
                    xs[i / V::VALUES * (V::VALUES + 1) + i % V::VALUES] = load_value(xg, a.x_type, v0 + i);
                cp_async_wait_all();
                __syncthreads();
                if (row < a.m && u0 + u_lane < n_units) {
                    const int64_t uv0 = (u0 + u_lane) * V::VALUES;
                    const int parts = a.k - uv0 < V::VALUES ? (int)((a.k - uv0) / 32) : V::PARTS;
                    const float *xp = xs + u_lane * (V::VALUES + 1);
#pragma unroll
                    for (int t = 0; t < NW; t++) {
                        const uint8_t *src = wt[t] + (e * a.m + row) * row_bytes + seg_off;
                        const uint8_t *bytes = packed + (size_t)(t * G + g) * l.packed_stride +
                                               (reinterpret_cast<uintptr_t>(src) & 15) + u_lane * V::BYTES;
                        /* four chains of fused multiply-adds, added in a fixed order: one chain
                         * would wait on each add's latency */
                        float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
                        for (int p = 0; p < V::PARTS; p++) {
                            if (p >= parts) break;
                            float wv[32];
                            B::decode(bytes + p / B::PARTS * B::BYTES, p % B::PARTS, wv);
#pragma unroll
                            for (int i = 0; i < 32; i++) d[i % 4] = fmaf(wv[i], xp[p * 32 + i], d[i % 4]);
                        }
                        acc[t] += (d[0] + d[1]) + (d[2] + d[3]);
                    }
                }
                __syncthreads();
            }
#pragma unroll
            for (int t = 0; t < NW; t++)
                for (int o = L / 2; o > 0; o >>= 1) acc[t] += __shfl_xor_sync(0xffffffffu, acc[t], o);
            out = GATE_UP ? silu(acc[0]) * acc[NW - 1] : acc[0];
        } while (0);
        if (u_lane == 0 && row < a.m) a.y[unit * a.m + row] = out;
    }
}

/* ---- the dot path ---------------------------------------------------------------------------- */

/* A type's 8-bit part decoder (dot_i8.h), or none (the plain types). */
struct no_dot {
    static constexpr bool EXISTS = false;
};

/* A lane group takes R rows (the plan's qk_cuda_moe_plan.dot_rows, 2 or 4): each activation part
 * loaded serves that many rows. The CTA's warps are the plan's (qk_cuda_moe_plan.dot_warps),
 * DOT_MAX_WARPS at most. */
constexpr int DOT_MAX_WARPS = 8;

/* Part P of a slot's 8-bit activations: codes x0 (values 0-15), x1 (16-31), and xs: scale, sums of
 * the two halves (qk_cuda_moe_quantize_x). */
struct x_part {
    int4 x0, x1;
    float4 xs;
    __device__ void load(const int8_t *x, const float4 *xm, int64_t P) {
        x0 = reinterpret_cast<const int4 *>(x + P * 32)[0];
        x1 = reinterpret_cast<const int4 *>(x + P * 32)[1];
        xs = xm[P];
    }
};

/* A decoded weight part (r) times an activation part: four dp4a per half, the halves' integer
 * sums scaled by the weights' and the activations' scales, plus the offsets times the
 * activations' half sums. */
template <class D> __device__ inline float part_dot(const qk_part_i8 &r, const x_part &x) {
    int s0 = __dp4a((int)r.q[0], x.x0.x, 0);
    s0 = __dp4a((int)r.q[1], x.x0.y, s0);
    s0 = __dp4a((int)r.q[2], x.x0.z, s0);
    s0 = __dp4a((int)r.q[3], x.x0.w, s0);
    int s1 = __dp4a((int)r.q[4], x.x1.x, 0);
    s1 = __dp4a((int)r.q[5], x.x1.y, s1);
    s1 = __dp4a((int)r.q[6], x.x1.z, s1);
    s1 = __dp4a((int)r.q[7], x.x1.w, s1);
    float v = x.xs.x * (r.s[0] * (float)s0 + r.s[1] * (float)s1);
    if constexpr (D::OFFSET) v += r.o[0] * x.xs.y + r.o[1] * x.xs.z;
    return v;
}

/* The sums of a lane's N accumulators over its row group's L lanes (L >= N, both powers of two),
 * in a fixed order. While a lane holds more than one value, each butterfly step halves them: of
 * every pair differing in the step's index bit the lane keeps the one its own lane bit names and
 * receives its partner's copy of it (N - 1 shuffles in all, where summing each value over every
 * level would take N per level); the one value left is then summed over the remaining levels.
 * Lane u < N of the group ends with the total of value u, lanes u >= N with a copy of u % N's. */
template <int N> __device__ inline float reduce_spread(const float (&v)[N], int lane, int L) {
    float w[N];
#pragma unroll
    for (int j = 0; j < N; j++) w[j] = v[j];
#pragma unroll
    for (int o = 1; o < N; o <<= 1) {
        const bool b = lane & o;
#pragma unroll
        for (int j = 0; j < N / (2 * o); j++) {
            const float keep = b ? w[2 * j + 1] : w[2 * j], send = b ? w[2 * j] : w[2 * j + 1];
            w[j] = keep + __shfl_xor_sync(0xffffffffu, send, o);
        }
    }
#pragma unroll
    for (int o = N; o < 32; o <<= 1)
        if (o < L) w[0] += __shfl_xor_sync(0xffffffffu, w[0], o);
    return w[0];
}

/* grid: (row groups of warps * 32 / L * R rows, slots, grid-stride): every slot is its
 * own work item. Slots that chose the same expert read its rows each (measured, bench/results
 * 2026-12-06: grouping slots by expert first cost more than it saved up to 128 tokens, the
 * repeated reads being served by L2, and from there the tiled kernel is faster; so did decoding
 * each part once for two slots of an expert inside this kernel, 1.07-1.64x slower at 1 to 32
 * tokens with 80-109 registers a thread instead of 40-48: -a3596c7-sweep.md). Each warp reads
 * its own copy of the slot's activations from L2: a CTA staging them once in shared memory for its
 * 8 warps was 1.01-1.61x slower at 1 to 32 tokens, and quantizing them in every CTA (no quantize
 * kernel) up to 2.1x, faster only on 1 token's down rows, by up to 5%
 * (2026-12-07-cuda-h100-ae67d82-sweep.md: the CTA-wide wait for the copy costs more than the L2
 * reads it saves). The weights, too, are read straight from global memory: each warp copying its
 * rows' next two chunks into shared memory by cp.async and decoding from there was 1.09-1.44x
 * slower at 1 to 32 tokens on every type (geomean 1.31 at 8 tokens; Nsight Compute on Q4_K gate/up
 * at 8 tokens: 28.1 against 23.2 us, DRAM 37% against 45% busy, issue slots 69% against 46%: the
 * shared-memory stores and loads cost more issue slots than the global loads' latency they hid;
 * 2026-12-07-cuda-h100-2b351cb-dot-staged.md). A CTA taking several slots in turn (as few CTAs as
 * fit the GPU at once, a lane's items one stream across slots, the next slot's first decode issued
 * before the current products) was 1.35x slower on gate/up at 32 tokens, 1.15x on down, even at 8
 * tokens on gate/up and 7% faster on down (H200, a27a357); prefetching each next slot's rows into
 * L2 did not recover the loss (1.24-1.44x at 32 tokens, H100, 1aca295:
 * 2026-12-07-cuda-h200-a27a357-peers.md, -h100-1aca295-run.md).
 *
 * Lane (g, u) of a warp takes R rows (the g-th group of the warp's) and their parts u,
 * u + L, ...: per part it decodes the weights of each row to 8-bit codes (straight from global
 * memory: a warp's lanes together read whole rows, every byte once) and takes the dot product with
 * the slot's activations, loaded once for all the rows; the L lanes of a row then add their sums
 * in a fixed order. A part's decode is issued before the previous part's products, so that its
 * loads are in flight while they run. Launched as a programmatic dependent of the quantize
 * kernel: the first slot's rows are prefetched into L2 and its first parts decoded (the weights
 * are the caller's, ready) while the activations are quantized. */
template <class T, class D, int KIND, int R>
__global__ void __launch_bounds__(DOT_MAX_WARPS * 32)
    moe_dot_kernel(qk_cuda_moe_args a, const int8_t *xq, const float4 *xm, float *y, int l_log2) {
    constexpr bool GATE_UP = KIND == QK_CUDA_MOE_GATE_UP;
    constexpr int NW = GATE_UP ? 2 : 1, PARTS = T::QK / 32;
    /* L lanes a row, a power of two: shifts and masks, not a division */
    const int L = 1 << l_log2, lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane >> l_log2, u = lane & (L - 1);
    const int64_t row0 = ((((int64_t)blockIdx.x * (blockDim.x / 32) + warp) << (5 - l_log2)) + g) * R;
    /* a row's bytes fit 32 bits (the launcher checks); an expert's need not */
    const int64_t parts = a.k / 32;
    const int row_bytes = (int)(a.k / T::QK * T::BYTES);
    const int64_t expert_bytes = a.m * (int64_t)row_bytes;
    const uint8_t *w[NW];
    w[0] = static_cast<const uint8_t *>(a.w);
    if constexpr (GATE_UP) w[NW - 1] = static_cast<const uint8_t *>(a.w_up);

    /* the expert of slot i, -1 for a bad id (never read through) */
    auto expert = [&](int64_t i) -> int64_t {
        const int64_t e = a.ids ? a.ids[i] : 0;
        return e < 0 || e >= a.n_expert ? -1 : e;
    };
    const int64_t slots = a.n_tokens * a.n_used;
    if (blockIdx.y < slots) {
        const int64_t e = expert(blockIdx.y);
        for (int rr = 0; rr < R && e >= 0; rr++) {
            if (row0 + rr >= a.m) break;
#pragma unroll
            for (int t = 0; t < NW; t++) {
                const uint8_t *row = w[t] + e * expert_bytes + (row0 + rr) * row_bytes;
                for (int off = u * 128; off < row_bytes; off += L * 128) prefetch_l2(row + off);
            }
        }
    }

    bool waited = false; /* for the quantize kernel's activations */
    for (int64_t i = blockIdx.y; i < slots; i += gridDim.y) {
        const int64_t e = expert(i); /* the same for the whole CTA */
        if (e < 0) {
            for (int rr = 0; rr < R; rr++)
                if (u == 0 && row0 + rr < a.m) y[i * a.m + row0 + rr] = __int_as_float(0x7fc00000);
            continue;
        }
        /* 32-bit: the launcher keeps the slots below 2^31 (a 64-bit division is a call) */
        const int64_t xrow = a.x_per_slot ? i : (int64_t)((unsigned)i / (unsigned)a.n_used);
        const int8_t *xr = xq + xrow * a.k;
        const float4 *xmr = xm + xrow * parts;
        float acc[NW][R];
#pragma unroll
        for (int t = 0; t < NW; t++)
#pragma unroll
            for (int rr = 0; rr < R; rr++) acc[t][rr] = 0.0f;
        /* rows past m decode the last row again (their sums are not written) */
        const uint8_t *wr[NW][R];
#pragma unroll
        for (int t = 0; t < NW; t++)
#pragma unroll
            for (int rr = 0; rr < R; rr++)
                wr[t][rr] = w[t] + e * expert_bytes + (row0 + rr < a.m ? row0 + rr : a.m - 1) * row_bytes;
        qk_part_i8 r[NW][R];
        auto decode = [&](int64_t P) {
#pragma unroll
            for (int t = 0; t < NW; t++)
#pragma unroll
                for (int rr = 0; rr < R; rr++) D::part(wr[t][rr] + P / PARTS * T::BYTES, (int)(P % PARTS), &r[t][rr]);
        };
        const bool rows_here = row0 < a.m;
        int64_t P = u;
        if (rows_here && P < parts) decode(P);
        if (!waited) wait_for_prerequisite_grid(), waited = true;
        if (rows_here) {
            while (P < parts) {
                x_part x;
                x.load(xr, xmr, P);
                float d[NW][R];
#pragma unroll
                for (int t = 0; t < NW; t++)
#pragma unroll
                    for (int rr = 0; rr < R; rr++) d[t][rr] = part_dot<D>(r[t][rr], x);
                P += L;
                if (P < parts) decode(P);
#pragma unroll
                for (int t = 0; t < NW; t++)
#pragma unroll
                    for (int rr = 0; rr < R; rr++) acc[t][rr] += d[t][rr];
            }
        }
        if (L >= NW * R) {
            /* value t * R + rr ends in lane u = t * R + rr: the gate's lanes take the up sums
             * from u + R */
            float v[NW * R];
#pragma unroll
            for (int t = 0; t < NW; t++)
#pragma unroll
                for (int rr = 0; rr < R; rr++) v[t * R + rr] = acc[t][rr];
            const float sum = reduce_spread<NW * R>(v, lane, L);
            const float up = GATE_UP ? __shfl_xor_sync(0xffffffffu, sum, R) : 0.0f;
            if (u < R && row0 + u < a.m) y[i * a.m + row0 + u] = GATE_UP ? silu(sum) * up : sum;
        } else { /* rows of fewer than NW * R parts: each sum on its own */
#pragma unroll
            for (int rr = 0; rr < R; rr++) {
#pragma unroll
                for (int t = 0; t < NW; t++)
                    for (int o = L / 2; o > 0; o >>= 1) acc[t][rr] += __shfl_xor_sync(0xffffffffu, acc[t][rr], o);
                if (u == 0 && row0 + rr < a.m)
                    y[i * a.m + row0 + rr] = GATE_UP ? silu(acc[0][rr]) * acc[NW - 1][rr] : acc[0][rr];
            }
        }
    }
}

/* ---- the tiled path ------------------------------------------------------------------------- */

constexpr int TILE_K = 256, HALF_K = 128;
/* Weight rows per tile (TM): 128 where shared memory allows, 64 for gate/up, whose two weight
 * tensors double the tile's buffers; the plan may take 64 for one tensor's 32- and 64-slot tiles
 * too (qk_cuda_moe_plan.tile_m): with one decode buffer, two 64-slot tiles share an SM where the
 * type's packed weights are small enough (two_narrow_tiles_fit), and two or three 32-slot ones
 * for every type, where a 128-row 32-slot tile of Q5_0, Q5_1, Q5_K, Q6_K or Q8_0 leaves room for
 * no second. */
__host__ __device__ constexpr int tile_m(int nw) { return nw == 2 ? 64 : 128; }
/* Threads per tile: warps of 32 rows, two across the slots; four across for the 64-row, 64-slot
 * tiles, whose shared memory (64 slots' activations double-buffered) lets only one or two tiles
 * run on an SM: with two warps across, that would be four or eight warps an SM. */
__host__ __device__ constexpr int tile_threads(int tm, int bn) { return tm / 32 * (tm == 64 && bn == 64 ? 4 : 2) * 32; }
constexpr int A_STRIDE = HALF_K + 8; /* halves per decoded row: 272 bytes, ldmatrix without bank conflicts */
constexpr int B_STRIDE = TILE_K + 8; /* halves per activation row: 528 bytes */

template <class T> struct tile_shape {
    using B = moe_block<T>;
    static constexpr int STEP_BYTES = TILE_K / B::QK * B::BYTES;   /* packed bytes of 256 values */
    static constexpr int STEP_WORDS = (STEP_BYTES + 15 + 15) / 16; /* 16-byte words covering them */
    static constexpr int PACKED_STRIDE = STEP_WORDS * 16;
};

/* The shared memory of a tile: NW weight tensors (2 for gate/up) of TM rows. */
template <class T, int BN, int NW, int TM> struct tile_smem {
    static constexpr size_t PACKED1 = (size_t)NW * TM * tile_shape<T>::PACKED_STRIDE; /* one buffer */
    static constexpr size_t BT1 = (size_t)BN * B_STRIDE * 2;
    static constexpr size_t PACKED = 2 * PACKED1;
    /* decoded half-steps: two buffers for 64-slot tiles of 128 decoded rows (one tile an SM either
     * way), one for 32-slot tiles, of which a second buffer would leave one tile an SM where two
     * fit, and one for the 64-row tiles of one tensor (two of them an SM where the packed
     * weights are small enough) */
    static constexpr int A_BUFFERS = BN == 64 && NW * TM == 128 ? 2 : 1;
    static constexpr size_t A1 = (size_t)NW * TM * A_STRIDE * 2; /* one decoded half-step */
    static constexpr size_t A = A_BUFFERS * A1;
    static constexpr size_t BT = 2 * BT1;
    static constexpr size_t BYTES = PACKED + A + BT + BN * sizeof(int);
};

/* sm_90's shared memory: 228 KiB an SM, 1 KiB of it reserved per CTA; a CTA may have 227 KiB. */
constexpr size_t SM_SMEM = 228 * 1024, CTA_SMEM_RESERVED = 1024, CTA_SMEM_MAX = SM_SMEM - CTA_SMEM_RESERVED;

/* Whether two 64-row 64-slot tiles of one weight tensor fit an SM's shared memory: the plan's
 * tile_m = 64 is taken only then. */
template <class T> constexpr bool two_narrow_tiles_fit() {
    return 2 * (tile_smem<T, 64, 1, 64>::BYTES + CTA_SMEM_RESERVED) <= SM_SMEM;
}

/* Whether a 128-row 128-slot tile of one weight tensor fits: 128 slots' activations
 * double-buffered are 132 KiB, which leaves room for the packed weights of every type whose 256
 * values take at most 225 bytes (all but Q8_0). The plan's bn = 128 (moe_plan.cu's
 * bn128_min_tokens_per_expert) is for those types only. */
template <class T> constexpr bool wide_tiles_fit() { return tile_smem<T, 128, 1, 128>::BYTES <= CTA_SMEM_MAX; }

__device__ inline void ldmatrix_x4(unsigned *r, const void *p) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}

__device__ inline void mma16816(float *d, const unsigned *a, unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Signed 8-bit code i of word q as f32, exactly: the code + 128 as the low byte of 2^23's
 * mantissa, 2^23 + 128 taken off (two instructions, full rate; the conversion instruction runs
 * at a quarter of it). */
__device__ inline float code_f32(uint32_t q_xor80, int i) {
    return __int_as_float((int)__byte_perm(q_xor80, 0x4B000000u, 0x7650u | (unsigned)i)) - 8388736.0f;
}

/* Part p of the block at b as 32 f16 values at dst (16 half2): through the type's 8-bit
 * decoder where it has one (D), each value s * q + o in f32 rounded once to f16 (the f32 decode
 * gives the same value to within a few ulp before that rounding, at about twice the
 * instructions); the f32 decode otherwise. */
template <class B, class D> __device__ inline void decode_half(const uint8_t *b, int p, __half2 *dst) {
    if constexpr (D::EXISTS) {
        qk_part_i8 r;
        D::part(b, p, &r);
#pragma unroll
        for (int w = 0; w < 8; w++) {
            const uint32_t q = r.q[w] ^ 0x80808080u;
            const float s = r.s[w / 4], o = D::OFFSET ? r.o[w / 4] : 0.0f;
            dst[2 * w] = __floats2half2_rn(fmaf(s, code_f32(q, 0), o), fmaf(s, code_f32(q, 1), o));
            dst[2 * w + 1] = __floats2half2_rn(fmaf(s, code_f32(q, 2), o), fmaf(s, code_f32(q, 3), o));
        }
    } else {
        float v[32];
        B::decode(b, p, v);
#pragma unroll
        for (int j = 0; j < 16; j++) dst[j] = __floats2half2_rn(v[2 * j], v[2 * j + 1]);
    }
}

/* grid: (ceil(m / TILE_M), tiles, grid-stride); each tile is one expert's run of at most BN slots
 * (moe_route.cu). Writes y[slot][row] (for the weighted sum, the per-slot scratch). */
template <class T, class D, int BN, bool GATE_UP, int TM>
__global__ void __launch_bounds__(tile_threads(TM, BN)) moe_tiled_kernel(qk_cuda_moe_args a, moe_route r, float *out) {
    using B = moe_block<T>;
    using S = tile_shape<T>;
    constexpr int NW = GATE_UP ? 2 : 1, TILE_M = TM, TILE_THREADS = tile_threads(TM, BN);
    /* WM x WN warps, each 32 rows x CW slots: NT n8 tiles */
    constexpr int WM = TILE_M / 32, WN = TILE_THREADS / 32 / WM, CW = BN / WN, NT = CW / 8;
    static_assert(NT % 2 == 0, "the activations are loaded two n8 tiles at a time");
    using M = tile_smem<T, BN, NW, TM>;
    static_assert(M::BYTES <= CTA_SMEM_MAX, "a tile's shared memory exceeds a CTA's");
    extern __shared__ __align__(16) uint8_t smem[];
    uint8_t *packed = smem;
    __half *at = reinterpret_cast<__half *>(smem + M::PACKED);
    __half *bt = reinterpret_cast<__half *>(smem + M::PACKED + M::A);
    int *slots = reinterpret_cast<int *>(smem + M::PACKED + M::A + M::BT);

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int wm = warp % WM, wn = warp / WM;
    const int64_t row0 = (int64_t)blockIdx.x * TILE_M;
    const int64_t row_bytes = a.k / B::QK * B::BYTES;
    const int rows = a.m - row0 < TILE_M ? (int)(a.m - row0) : TILE_M;
    const int n_tiles = *r.n_tiles;

    for (int t = blockIdx.y; t < n_tiles; t += gridDim.y) {
        const int4 tile = r.tiles[t]; /* expert, first sorted slot, count */
        const int64_t e = tile.x;
        const int count = tile.z;
        __syncthreads(); /* the previous tile's readers of slots[] are done */
        if (tid < BN) slots[tid] = tid < count ? r.sorted[tile.y + tid] : -1;
        __syncthreads();
        float acc[2][NT][4] = {}, accu[GATE_UP ? 2 : 1][GATE_UP ? NT : 1][4] = {};
        const uint8_t *wbase[NW];
        wbase[0] = static_cast<const uint8_t *>(a.w) + (e * a.m + row0) * row_bytes;
        if constexpr (GATE_UP) wbase[NW - 1] = static_cast<const uint8_t *>(a.w_up) + (e * a.m + row0) * row_bytes;

        /* step k0's packed weights and activations into buffer `buf`, as one cp.async group */
        auto issue = [&](int64_t k0, int buf) {
            const int kvals = a.k - k0 < TILE_K ? (int)(a.k - k0) : TILE_K;
            const int seg = kvals / B::QK * B::BYTES;
            const int64_t seg_off = k0 / B::QK * B::BYTES;
            uint8_t *pk = packed + buf * M::PACKED1;
            __half *bb = bt + buf * (M::BT1 / 2);
            stage_rows<NW>(pk, S::PACKED_STRIDE, TILE_M, rows, wbase, row_bytes, seg_off, seg, tid, TILE_THREADS);
            /* activations (f16 rows of the converted input): 32 words of 8 values per slot */
            for (int i = tid; i < BN * 32; i += TILE_THREADS) {
                const int c = i / 32, wi = i % 32;
                __half *dst = bb + c * B_STRIDE + wi * 8;
                if (slots[c] >= 0 && wi * 8 < kvals) {
                    const int64_t xrow = a.x_per_slot ? slots[c] : slots[c] / a.n_used;
                    cp_async16(dst, r.xh + xrow * a.k + k0 + wi * 8);
                } else {
                    *reinterpret_cast<uint4 *>(dst) = make_uint4(0, 0, 0, 0);
                }
            }
            cp_async_commit();
        };
        /* half-step h of the step at k0 (4 parts of every row) decoded to f16 into at's buffer h */
        auto decode = [&](const uint8_t *packed_now, int64_t seg_off, int nparts, int h) {
            __half *ah = at + h % M::A_BUFFERS * (M::A1 / 2);
            for (int i = tid; i < NW * TILE_M * 4; i += TILE_THREADS) {
                const int pp = i % 4, rr = i / 4 % TILE_M, ti = i / 4 / TILE_M, p = h * 4 + pp;
                __half2 *dst = reinterpret_cast<__half2 *>(ah + (ti * TILE_M + rr) * A_STRIDE + pp * 32);
                if (rr < rows && p < nparts) {
                    const uint8_t *src = wbase[ti] + rr * row_bytes + seg_off;
                    const uint8_t *row =
                        packed_now + (ti * TILE_M + rr) * S::PACKED_STRIDE + (reinterpret_cast<uintptr_t>(src) & 15);
                    decode_half<B, D>(row + p / B::PARTS * B::BYTES, p % B::PARTS, dst);
                } else {
#pragma unroll
                    for (int j = 0; j < 16; j++) dst[j] = __floats2half2_rn(0.0f, 0.0f);
                }
            }
        };
        /* the products of half-step h (at's buffer h) with the activations in bt_now */
        auto multiply = [&](const __half *bt_now, int h) {
            const __half *ah = at + h % M::A_BUFFERS * (M::A1 / 2);
#pragma unroll
            for (int kk = 0; kk < HALF_K / 16; kk++) {
                unsigned bf[NT][2];
#pragma unroll
                for (int nt = 0; nt < NT; nt += 2) {
                    const int n = wn * CW + nt * 8 + (lane % 8) + (lane / 16) * 8;
                    const int kc = h * HALF_K + kk * 16 + (lane / 8) % 2 * 8;
                    unsigned q[4];
                    ldmatrix_x4(q, bt_now + n * B_STRIDE + kc);
                    bf[nt][0] = q[0], bf[nt][1] = q[1], bf[nt + 1][0] = q[2], bf[nt + 1][1] = q[3];
                }
#pragma unroll
                for (int ti = 0; ti < NW; ti++) {
#pragma unroll
                    for (int mt = 0; mt < 2; mt++) {
                        unsigned af[4];
                        const int rr = wm * 32 + mt * 16 + lane % 16;
                        ldmatrix_x4(af, ah + (ti * TILE_M + rr) * A_STRIDE + kk * 16 + lane / 16 * 8);
#pragma unroll
                        for (int nt = 0; nt < NT; nt++) {
                            if (ti == 0)
                                mma16816(acc[mt][nt], af, bf[nt][0], bf[nt][1]);
                            else if constexpr (GATE_UP)
                                mma16816(accu[mt][nt], af, bf[nt][0], bf[nt][1]);
                        }
                    }
                }
            }
        };
        /* Per step of 256 values: its copy waited for, the next step's issued (two buffers: its
         * loads are in flight while this one is decoded and multiplied), then the two half-steps.
         * With two decode buffers the second is decoded while the first is multiplied: the tensor
         * cores and the decoding overlap within and across warps, three barriers a step. The
         * first barrier also ends the previous step's readers of the buffers that the next step's
         * copy and decode overwrite. Measured against a pipeline of half-steps (activations in three
         * 128-value buffers, one barrier a half-step, the half-step decoded before multiplied while
         * the next is decoded, warps 0-3 and 4-7 in opposite orders): 0.97-1.02x its time at 2048
         * tokens on gate/up, 0.91-0.99x on down (H100, 6bab3f1 against bd6ddf0). Nsight Compute on
         * the 128-slot tile: 2.2 of a warp's 4.9 cycles between instructions wait on fixed-latency
         * (ALU) dependencies, with two warps a scheduler; overlapping the phases does not hide
         * those. */
        issue(0, 0);
        int buf = 0;
        for (int64_t k0 = 0; k0 < a.k; k0 += TILE_K, buf ^= 1) {
            const int kvals = a.k - k0 < TILE_K ? (int)(a.k - k0) : TILE_K, nparts = kvals / 32;
            const int64_t seg_off = k0 / B::QK * B::BYTES;
            cp_async_wait_all();
            __syncthreads();
            if (k0 + TILE_K < a.k) issue(k0 + TILE_K, buf ^ 1);
            const uint8_t *packed_now = packed + buf * M::PACKED1;
            const __half *bt_now = bt + buf * (M::BT1 / 2);
            decode(packed_now, seg_off, nparts, 0);
            __syncthreads();
            if (nparts > 4) {
                multiply(bt_now, 0);
                if constexpr (M::A_BUFFERS == 1) __syncthreads();
                decode(packed_now, seg_off, nparts, 1);
                __syncthreads();
                multiply(bt_now, 1);
            } else {
                multiply(bt_now, 0);
            }
        }
        /* out[slot][row]: the fragment's rows lane/4 and +8, columns 2*(lane%4) and +1 */
#pragma unroll
        for (int mt = 0; mt < 2; mt++) {
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const int rr = wm * 32 + mt * 16 + lane / 4 + (i / 2) * 8;
                    const int c = wn * CW + nt * 8 + (lane % 4) * 2 + i % 2;
                    if (rr >= rows || slots[c] < 0) continue;
                    float v = acc[mt][nt][i];
                    if constexpr (GATE_UP) v = silu(v) * accu[mt][nt][i];
                    out[(int64_t)slots[c] * a.m + row0 + rr] = v;
                }
            }
        }
    }
}

/* ---- launch ----------------------------------------------------------------------------------- */

/* The dot path: the activations quantized by their own kernel, then the dot kernel. */
template <class T, class D, int KIND, int R>
int launch_dot(const qk_cuda_moe_args &a, const qk_cuda_moe_plan &p, float *y, cudaStream_t s) {
    int l_log2 = 0; /* lanes per row (moe_plan.cu, a power of two): 32 / L rows per warp */
    while (l_log2 < 5 && (1 << l_log2) < p.lanes) l_log2++;
    const int L = 1 << l_log2;
    const int64_t slots = a.n_tokens * a.n_used;
    if (slots > INT32_MAX) return (int)cudaErrorInvalidValue; /* the kernel's slot arithmetic is 32-bit */
    if (a.k / T::QK * T::BYTES > INT32_MAX) return (int)cudaErrorInvalidValue; /* its row offsets are 32-bit */
    const int warps = p.dot_warps >= 1 && p.dot_warps <= DOT_MAX_WARPS ? p.dot_warps : DOT_MAX_WARPS;
    const int err = qk_cuda_moe_quantize_x(&a, &p, s); /* just before: the dot kernel depends on it early */
    if (err) return err;
    const int64_t rows_per_cta = (int64_t)warps * (32 / L) * R;
    const uint8_t *ws = static_cast<const uint8_t *>(a.workspace);
    cudaLaunchConfig_t config = {};
    config.gridDim =
        dim3((unsigned)((a.m + rows_per_cta - 1) / rows_per_cta), (unsigned)(slots < 65535 ? slots : 65535));
    config.blockDim = dim3(warps * 32);
    config.stream = s;
    /* a programmatic dependent of the quantize kernel: it may start while that one runs */
    cudaLaunchAttribute early;
    early.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    early.val.programmaticStreamSerializationAllowed = 1;
    config.attrs = &early;
    config.numAttrs = 1;
    return (int)cudaLaunchKernelEx(&config, moe_dot_kernel<T, D, KIND, R>, a,
                                   reinterpret_cast<const int8_t *>(ws + p.xq),
                                   reinterpret_cast<const float4 *>(ws + p.xm), y, l_log2);
}

/* The dot kernel with the plan's rows per lane group. */
template <class T, class D, int KIND>
int launch_dot_rows(const qk_cuda_moe_args &a, const qk_cuda_moe_plan &p, float *y, cudaStream_t s) {
    return p.dot_rows == 4 ? launch_dot<T, D, KIND, 4>(a, p, y, s) : launch_dot<T, D, KIND, 2>(a, p, y, s);
}

template <class T, int KIND> int launch_vec(const qk_cuda_moe_args &a, cudaStream_t s) {
    const vec_layout l = vec_layout_for<T>(a.k, KIND == QK_CUDA_MOE_GATE_UP ? 2 : 1);
    const int64_t units = a.n_tokens * a.n_used;
    const int64_t rows_per_cta = (int64_t)VEC_WARPS * l.rows_per_warp;
    const dim3 grid((unsigned)((a.m + rows_per_cta - 1) / rows_per_cta), (unsigned)(units < 65535 ? units : 65535));
    moe_vec_kernel<T, KIND><<<grid, VEC_WARPS * 32, l.smem, s>>>(a, l);
    return (int)cudaGetLastError();
}

/* Lets a tiled kernel have its shared memory (over the default 48 KiB): once per device, at
 * context creation, because the call is not allowed while a caller captures a CUDA graph. */
template <class T, class D, int BN, bool GATE_UP, int TM = tile_m(GATE_UP ? 2 : 1)> cudaError_t allow_smem() {
    return cudaFuncSetAttribute(moe_tiled_kernel<T, D, BN, GATE_UP, TM>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)tile_smem < T, BN, GATE_UP ? 2 : 1, TM > ::BYTES);
}

template <class T, int KIND> cudaError_t allow_vec_smem() {
    return cudaFuncSetAttribute(moe_vec_kernel<T, KIND>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)vec_smem_max<T>(KIND == QK_CUDA_MOE_GATE_UP ? 2 : 1));
}

template <class T, class D> cudaError_t allow_tiled_smem() {
    cudaError_t err = allow_smem<T, D, 32, false>();
    if (err == cudaSuccess) err = allow_smem<T, D, 32, false, 64>();
    if (err == cudaSuccess) err = allow_smem<T, D, 32, true>();
    if (err == cudaSuccess) err = allow_smem<T, D, 64, false>();
    if constexpr (two_narrow_tiles_fit<T>())
        if (err == cudaSuccess) err = allow_smem<T, D, 64, false, 64>();
    if constexpr (wide_tiles_fit<T>())
        if (err == cudaSuccess) err = allow_smem<T, D, 128, false, 128>();
    if (err == cudaSuccess) err = allow_smem<T, D, 64, true>();
    return err;
}

template <class T, class D> int init_moe() {
    cudaError_t err = allow_vec_smem<T, QK_CUDA_MOE_MATMUL>();
    if (err == cudaSuccess) err = allow_vec_smem<T, QK_CUDA_MOE_GATE_UP>();
    if constexpr (!moe_block<T>::PLAIN) { /* the plain types take the vector path only (moe_plan.cu) */
        if (err == cudaSuccess) err = allow_tiled_smem<T, D>();
        if (err == cudaSuccess) err = allow_tiled_smem<T, no_dot>();
    }
    return (int)err;
}

template <class T, class D, int BN, bool GATE_UP, int TM = tile_m(GATE_UP ? 2 : 1)>
int launch_tiled_kernel(const qk_cuda_moe_args &a, const moe_route &r, float *out, int max_tiles, cudaStream_t s) {
    constexpr size_t smem = tile_smem < T, BN, GATE_UP ? 2 : 1, TM > ::BYTES;
    const dim3 grid((unsigned)((a.m + TM - 1) / TM), (unsigned)(max_tiles < 65535 ? max_tiles : 65535));
    moe_tiled_kernel<T, D, BN, GATE_UP, TM><<<grid, tile_threads(TM, BN), smem, s>>>(a, r, out);
    return (int)cudaGetLastError();
}

template <class T, class D>
int launch_tiled(const qk_cuda_moe_args &a, const qk_cuda_moe_plan &p, const moe_route &r, float *out, cudaStream_t s) {
    const bool gate_up = a.kind == QK_CUDA_MOE_GATE_UP;
    if (p.bn == 128) { /* the plan takes it only for one tensor of a type whose tile fits */
        if constexpr (wide_tiles_fit<T>())
            if (!gate_up) return launch_tiled_kernel<T, D, 128, false, 128>(a, r, out, p.max_tiles, s);
        return (int)cudaErrorInvalidValue;
    }
    if (p.bn == 32) {
        if (gate_up) return launch_tiled_kernel<T, D, 32, true>(a, r, out, p.max_tiles, s);
        if (p.tile_m == 64) return launch_tiled_kernel<T, D, 32, false, 64>(a, r, out, p.max_tiles, s);
        return launch_tiled_kernel<T, D, 32, false>(a, r, out, p.max_tiles, s);
    }
    if (gate_up) return launch_tiled_kernel<T, D, 64, true>(a, r, out, p.max_tiles, s);
    if constexpr (two_narrow_tiles_fit<T>())
        if (p.tile_m == 64) return launch_tiled_kernel<T, D, 64, false, 64>(a, r, out, p.max_tiles, s);
    return launch_tiled_kernel<T, D, 64, false>(a, r, out, p.max_tiles, s);
}

/* The dot path reads the weights with loads of QK_I8_ALIGN(bytes of a block): weights placed at a
 * smaller alignment take the vector path instead. */
template <class T> bool dot_aligned(const qk_cuda_moe_args &a) {
    const uintptr_t mask = (uintptr_t)QK_I8_ALIGN(T::BYTES) - 1;
    return !(reinterpret_cast<uintptr_t>(a.w) & mask) &&
           !(a.kind == QK_CUDA_MOE_GATE_UP && (reinterpret_cast<uintptr_t>(a.w_up) & mask));
}

template <class T, class D> int launch_moe(const qk_cuda_moe_args *a, const qk_cuda_moe_plan *plan, cudaStream_t s) {
    using B = moe_block<T>;
    if (a->k % B::QK) return (int)cudaErrorInvalidValue;
    float *partial = reinterpret_cast<float *>(static_cast<uint8_t *>(a->workspace) + plan->partial);
    if constexpr (D::EXISTS) {
        if (plan->path == QK_CUDA_MOE_DOT && dot_aligned<T>(*a)) {
            float *out = a->kind == QK_CUDA_MOE_WEIGHTED_SUM ? partial : a->y;
            if (a->kind == QK_CUDA_MOE_GATE_UP) return launch_dot_rows<T, D, QK_CUDA_MOE_GATE_UP>(*a, *plan, out, s);
            const int err = launch_dot_rows<T, D, QK_CUDA_MOE_MATMUL>(*a, *plan, out, s);
            if (err || a->kind == QK_CUDA_MOE_MATMUL) return err;
            return qk_cuda_moe_weighted_sum(a, partial, s);
        }
    }
    if (plan->path != QK_CUDA_MOE_TILED) {
        if (a->kind == QK_CUDA_MOE_GATE_UP) return launch_vec<T, QK_CUDA_MOE_GATE_UP>(*a, s);
        if (a->kind == QK_CUDA_MOE_MATMUL) return launch_vec<T, QK_CUDA_MOE_MATMUL>(*a, s);
        /* the weighted sum: every slot's product in parallel into the workspace, then the
         * ordered sum (a token's slots in one block would leave most of the GPU idle) */
        qk_cuda_moe_args per_slot = *a;
        per_slot.y = partial;
        const int err = launch_vec<T, QK_CUDA_MOE_MATMUL>(per_slot, s);
        return err ? err : qk_cuda_moe_weighted_sum(a, per_slot.y, s);
    }
    if constexpr (B::PLAIN) {
        return (int)cudaErrorNotSupported; /* moe_plan.cu never asks */
    } else {
        moe_route r;
        float *out = nullptr;
        int err = qk_cuda_moe_prepare(a, plan, &r, &out, s);
        if (err) return err;
        /* the 8-bit decoder reads the shared copy at the weights' own alignment */
        err = D::EXISTS && dot_aligned<T>(*a) ? launch_tiled<T, D>(*a, *plan, r, out, s)
                                              : launch_tiled<T, no_dot>(*a, *plan, r, out, s);
        if (err || a->kind != QK_CUDA_MOE_WEIGHTED_SUM) return err;
        return qk_cuda_moe_weighted_sum(a, out, s);
    }
}

} // namespace qk_cuda

/* Defines the launcher qk_cuda_moe_<name> for decode traits T (decode_traits.cuh) with the 8-bit
 * part decoder qk_part_i8_<name> (dot_i8_<family>.h), and its per-device setup. */
#define QK_CUDA_MOE(name, T)                                                                                           \
    namespace {                                                                                                        \
    struct name##_i8 {                                                                                                 \
        static constexpr bool EXISTS = true, OFFSET = QK_I8_OFFSET_##name != 0;                                        \
        __device__ static void part(const uint8_t *b, int p, qk_part_i8 *r) { qk_part_i8_##name(b, p, r); }            \
    };                                                                                                                 \
    }                                                                                                                  \
    int qk_cuda_moe_##name(const qk_cuda_moe_args *a, const qk_cuda_moe_plan *p, cudaStream_t s) {                     \
        return qk_cuda::launch_moe<T, name##_i8>(a, p, s);                                                             \
    }                                                                                                                  \
    int qk_cuda_moe_init_##name(void) { return qk_cuda::init_moe<T, name##_i8>(); }

/* The same for the plain types (F32, F16, BF16), which take the f32 vector path only. */
#define QK_CUDA_MOE_PLAIN(name, T)                                                                                     \
    int qk_cuda_moe_##name(const qk_cuda_moe_args *a, const qk_cuda_moe_plan *p, cudaStream_t s) {                     \
        return qk_cuda::launch_moe<T, qk_cuda::no_dot>(a, p, s);                                                       \
    }                                                                                                                  \
    int qk_cuda_moe_init_##name(void) { return qk_cuda::init_moe<T, qk_cuda::no_dot>(); }

#endif
