/* The expert-batched matmul (qkern.h: qk_moe_matmul and its fused forms), parameterised by the
 * codec traits of codec_kernels.cuh: the weights are decoded by the same part decoders as the
 * CPU reference's (32 values at a time), so no format knowledge lives here.
 *
 * Two paths (moe_plan.cu chooses, from one table):
 *   - moe_vec_kernel, for few tokens per expert (token generation): a warp takes two weight
 *     rows of one slot's expert and its lanes stride over the row's parts; every selected
 *     expert's rows are read once per slot, straight from global memory, and the dot products
 *     accumulate in f32. The weighted sum runs here as a loop over the token's slots in order.
 *   - moe_tiled_kernel, for many (prompt processing): slots grouped by expert on the GPU
 *     (moe_route.cu), a CUDA block computes a 64-row x BN-slot tile of one expert on the tensor
 *     cores (mma.sync m16n8k16, f16 in, f32 accumulate). Per step of 256 values it copies the
 *     packed weights (16-byte words, cp.async) and the slots' activations (f16) into shared
 *     memory, decodes the weights into f16 there, and multiplies.
 * Neither allocates or synchronizes: the tiled path's scratch is the caller's workspace. */
#ifndef QK_MOE_KERNELS_CUH
#define QK_MOE_KERNELS_CUH

#include "codec_kernels.cuh"
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

/* acc + w[0..31] . x[i..i+31], x of type x_type (i a multiple of 32). The activations are read
 * where they are used, 16 bytes at a time where x is aligned (L1 serves the repeats): held in
 * registers beside the decoded weights they would halve the warps an SM can keep. */
__device__ inline float dot_x32(const float *w, const void *x, int x_type, int64_t i, float acc) {
    const bool aligned = (reinterpret_cast<uintptr_t>(x) & 15) == 0;
    if (x_type == TYPE_F32 && aligned) {
        const float4 *p = reinterpret_cast<const float4 *>(static_cast<const float *>(x) + i);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const float4 f = p[j];
            acc = fmaf(w[4 * j], f.x, acc);
            acc = fmaf(w[4 * j + 1], f.y, acc);
            acc = fmaf(w[4 * j + 2], f.z, acc);
            acc = fmaf(w[4 * j + 3], f.w, acc);
        }
    } else if (x_type != TYPE_F32 && aligned) {
        const uint4 *p = reinterpret_cast<const uint4 *>(static_cast<const uint16_t *>(x) + i);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const uint4 u = p[j];
            const uint32_t v[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
            for (int h = 0; h < 8; h++)
                acc = fmaf(w[8 * j + h], widen(x_type, (uint16_t)(v[h / 2] >> (16 * (h % 2)))), acc);
        }
    } else {
#pragma unroll 4
        for (int j = 0; j < 32; j++) acc = fmaf(w[j], load_value(x, x_type, i + j), acc);
    }
    return acc;
}

__device__ inline float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* ---- the vector path ------------------------------------------------------------------------ */

constexpr int VEC_WARPS = 4, VEC_ROWS = 2; /* rows per warp */
constexpr int VEC_ROWS_PER_CTA = VEC_WARPS * VEC_ROWS;

/* One slot's products for the warp's rows: acc[r] (and up[r] for gate/up), reduced over the
 * warp. x is the slot's activation row; e its expert (valid). */
template <class T, bool GATE_UP>
__device__ inline void vec_rows(const qk_cuda_moe_args &a, int64_t e, int64_t row0, const void *x, float *acc,
                                float *up) {
    using B = moe_block<T>;
    const int lane = threadIdx.x % 32;
    const int64_t parts = a.k / 32, row_bytes = a.k / B::QK * B::BYTES;
    const uint8_t *w = static_cast<const uint8_t *>(a.w) + (e * a.m + row0) * row_bytes;
    const uint8_t *wu = GATE_UP ? static_cast<const uint8_t *>(a.w_up) + (e * a.m + row0) * row_bytes : nullptr;
#pragma unroll
    for (int r = 0; r < VEC_ROWS; r++) acc[r] = up[r] = 0.0f;
    /* a thread's decoded part: in shared memory, at a stride of 33 floats so that the lanes'
     * i-th values fall in different banks (the part decoders index their output with
     * run-time offsets, which would put a register array in local memory) */
    __shared__ float parts_buf[VEC_WARPS * 32 * 33];
    float *wv = parts_buf + threadIdx.x * 33;
    for (int64_t p = lane; p < parts; p += 32) {
        const int64_t off = p / B::PARTS * B::BYTES;
        const int part = (int)(p % B::PARTS);
#pragma unroll
        for (int r = 0; r < VEC_ROWS; r++) {
            if (row0 + r >= a.m) break;
            B::decode(w + r * row_bytes + off, part, wv);
            acc[r] = dot_x32(wv, x, a.x_type, p * 32, acc[r]);
            if constexpr (GATE_UP) {
                B::decode(wu + r * row_bytes + off, part, wv);
                up[r] = dot_x32(wv, x, a.x_type, p * 32, up[r]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < VEC_ROWS; r++) {
        acc[r] = warp_sum(acc[r]);
        if constexpr (GATE_UP) up[r] = warp_sum(up[r]);
    }
}

/* grid: (row groups of VEC_ROWS_PER_CTA, units); a unit is a slot, or a token for the
 * weighted sum. */
template <class T, int KIND> __global__ void __launch_bounds__(VEC_WARPS * 32, 4) moe_vec_kernel(qk_cuda_moe_args a) {
    constexpr bool GATE_UP = KIND == QK_CUDA_MOE_GATE_UP;
    const int lane = threadIdx.x % 32;
    const int64_t row0 = (int64_t)blockIdx.x * VEC_ROWS_PER_CTA + threadIdx.x / 32 * VEC_ROWS;
    if (row0 >= a.m) return;
    const int64_t unit = blockIdx.y;
    const int64_t esize = a.x_type == TYPE_F32 ? 4 : 2;
    float acc[VEC_ROWS], up[VEC_ROWS], out[VEC_ROWS];
    const int64_t s_begin = KIND == QK_CUDA_MOE_WEIGHTED_SUM ? unit * a.n_used : unit;
    const int64_t s_end = KIND == QK_CUDA_MOE_WEIGHTED_SUM ? s_begin + a.n_used : unit + 1;
#pragma unroll
    for (int r = 0; r < VEC_ROWS; r++) out[r] = 0.0f;
    for (int64_t slot = s_begin; slot < s_end; slot++) {
        const int64_t e = a.ids ? a.ids[slot] : 0;
        const int64_t xrow = a.x_per_slot ? slot : slot / a.n_used;
        if (e < 0 || e >= a.n_expert) { /* never read through a bad id */
#pragma unroll
            for (int r = 0; r < VEC_ROWS; r++) out[r] = __int_as_float(0x7fc00000);
            continue;
        }
        vec_rows<T, GATE_UP>(a, e, row0, static_cast<const uint8_t *>(a.x) + xrow * a.k * esize, acc, up);
#pragma unroll
        for (int r = 0; r < VEC_ROWS; r++) {
            if constexpr (KIND == QK_CUDA_MOE_WEIGHTED_SUM)
                out[r] = fmaf(a.router[slot], acc[r], out[r]);
            else
                out[r] = GATE_UP ? silu(acc[r]) * up[r] : acc[r];
        }
    }
    if (lane < VEC_ROWS && row0 + lane < a.m) {
        float v = out[0];
#pragma unroll
        for (int r = 1; r < VEC_ROWS; r++)
            if (lane == r) v = out[r];
        a.y[unit * a.m + row0 + lane] = v;
    }
}

/* ---- the tiled path ------------------------------------------------------------------------- */

constexpr int TILE_M = 64, TILE_K = 256, HALF_K = 128, TILE_THREADS = 128;
constexpr int A_STRIDE = HALF_K + 8; /* halves per decoded row: 272 bytes, ldmatrix without bank conflicts */
constexpr int B_STRIDE = TILE_K + 8; /* halves per activation row: 528 bytes */

template <class T> struct tile_shape {
    using B = moe_block<T>;
    static constexpr int STEP_BYTES = TILE_K / B::QK * B::BYTES;   /* packed bytes of 256 values */
    static constexpr int STEP_WORDS = (STEP_BYTES + 15 + 15) / 16; /* 16-byte words covering them */
    static constexpr int PACKED_STRIDE = STEP_WORDS * 16;
};

/* The shared memory of a tile: NW weight tensors (2 for gate/up). */
template <class T, int BN, int NW> struct tile_smem {
    static constexpr size_t PACKED = (size_t)NW * TILE_M * tile_shape<T>::PACKED_STRIDE;
    static constexpr size_t A = (size_t)NW * TILE_M * A_STRIDE * 2;
    static constexpr size_t BT = (size_t)BN * B_STRIDE * 2;
    static constexpr size_t BYTES = PACKED + A + BT + BN * sizeof(int);
};

__device__ inline void cp_async16(void *shared, const void *global) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(shared);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(global));
}
__device__ inline void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::); }

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

/* A row's packed bytes [begin, begin + n) as whole aligned 16-byte words into shared memory
 * (dst, 16-byte aligned); returns where byte `begin` landed. A 16-byte word that holds a byte
 * of the tensor lies in the same page as it, so the words read outside the range are mapped. */
__device__ inline int words_of(const uint8_t *begin, int n) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(begin);
    return (int)(((a + n + 15) & ~(uintptr_t)15) - (a & ~(uintptr_t)15)) / 16;
}

/* grid: (ceil(m / 64), tiles, grid-stride); each tile is one expert's run of at most BN slots
 * (moe_route.cu). Writes y[slot][row] (for the weighted sum, the per-slot scratch). */
template <class T, int BN, bool GATE_UP>
__global__ void __launch_bounds__(TILE_THREADS) moe_tiled_kernel(qk_cuda_moe_args a, moe_route r, float *out) {
    using B = moe_block<T>;
    using S = tile_shape<T>;
    constexpr int NW = GATE_UP ? 2 : 1, NT = BN / 16; /* n8 tiles per warp: the warp takes BN/2 columns */
    using M = tile_smem<T, BN, NW>;
    extern __shared__ __align__(16) uint8_t smem[];
    uint8_t *packed = smem;
    __half *at = reinterpret_cast<__half *>(smem + M::PACKED);
    __half *bt = reinterpret_cast<__half *>(smem + M::PACKED + M::A);
    int *slots = reinterpret_cast<int *>(smem + M::PACKED + M::A + M::BT);

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int wm = warp % 2, wn = warp / 2;
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

        for (int64_t k0 = 0; k0 < a.k; k0 += TILE_K) {
            const int kvals = a.k - k0 < TILE_K ? (int)(a.k - k0) : TILE_K, nparts = kvals / 32;
            const int seg = kvals / B::QK * B::BYTES;
            const int64_t seg_off = k0 / B::QK * B::BYTES;
            /* packed weights: each row's segment as the aligned words that cover it */
            for (int i = tid; i < NW * TILE_M * S::STEP_WORDS; i += TILE_THREADS) {
                const int wi = i % S::STEP_WORDS, rr = i / S::STEP_WORDS % TILE_M, ti = i / S::STEP_WORDS / TILE_M;
                if (rr >= rows) continue;
                const uint8_t *src = wbase[ti] + rr * row_bytes + seg_off;
                if (wi >= words_of(src, seg)) continue;
                const uint8_t *aligned = reinterpret_cast<const uint8_t *>(reinterpret_cast<uintptr_t>(src) & ~15ull);
                cp_async16(packed + (ti * TILE_M + rr) * S::PACKED_STRIDE + wi * 16, aligned + wi * 16);
            }
            /* activations (f16 rows of the converted input): 32 words of 8 values per slot */
            for (int i = tid; i < BN * 32; i += TILE_THREADS) {
                const int c = i / 32, wi = i % 32;
                __half *dst = bt + c * B_STRIDE + wi * 8;
                if (slots[c] >= 0 && wi * 8 < kvals) {
                    const int64_t xrow = a.x_per_slot ? slots[c] : slots[c] / a.n_used;
                    cp_async16(dst, r.xh + xrow * a.k + k0 + wi * 8);
                } else {
                    *reinterpret_cast<uint4 *>(dst) = make_uint4(0, 0, 0, 0);
                }
            }
            cp_async_wait_all();
            __syncthreads();

            for (int h = 0; h * 4 < nparts; h++) {
                /* decode 4 parts of every row into f16 */
                for (int i = tid; i < NW * TILE_M * 4; i += TILE_THREADS) {
                    const int pp = i % 4, rr = i / 4 % TILE_M, ti = i / 4 / TILE_M, p = h * 4 + pp;
                    __half2 *dst = reinterpret_cast<__half2 *>(at + (ti * TILE_M + rr) * A_STRIDE + pp * 32);
                    if (rr < rows && p < nparts) {
                        const uint8_t *src = wbase[ti] + rr * row_bytes + seg_off;
                        const uint8_t *row =
                            packed + (ti * TILE_M + rr) * S::PACKED_STRIDE + (reinterpret_cast<uintptr_t>(src) & 15);
                        float v[32];
                        B::decode(row + p / B::PARTS * B::BYTES, p % B::PARTS, v);
#pragma unroll
                        for (int j = 0; j < 16; j++) dst[j] = __floats2half2_rn(v[2 * j], v[2 * j + 1]);
                    } else {
#pragma unroll
                        for (int j = 0; j < 16; j++) dst[j] = __floats2half2_rn(0.0f, 0.0f);
                    }
                }
                __syncthreads();
#pragma unroll
                for (int kk = 0; kk < HALF_K / 16; kk++) {
                    unsigned bf[NT][2];
#pragma unroll
                    for (int nt = 0; nt < NT; nt += 2) {
                        const int n = wn * (BN / 2) + nt * 8 + (lane % 8) + (lane / 16) * 8;
                        const int kc = h * HALF_K + kk * 16 + (lane / 8) % 2 * 8;
                        unsigned q[4];
                        ldmatrix_x4(q, bt + n * B_STRIDE + kc);
                        bf[nt][0] = q[0], bf[nt][1] = q[1], bf[nt + 1][0] = q[2], bf[nt + 1][1] = q[3];
                    }
#pragma unroll
                    for (int ti = 0; ti < NW; ti++) {
#pragma unroll
                        for (int mt = 0; mt < 2; mt++) {
                            unsigned af[4];
                            const int rr = wm * 32 + mt * 16 + lane % 16;
                            ldmatrix_x4(af, at + (ti * TILE_M + rr) * A_STRIDE + kk * 16 + lane / 16 * 8);
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
                __syncthreads();
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
                    const int c = wn * (BN / 2) + nt * 8 + (lane % 4) * 2 + i % 2;
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

template <class T, int KIND> int launch_vec(const qk_cuda_moe_args &a, cudaStream_t s) {
    const int64_t units = KIND == QK_CUDA_MOE_WEIGHTED_SUM ? a.n_tokens : a.n_tokens * a.n_used;
    const dim3 grid((unsigned)((a.m + VEC_ROWS_PER_CTA - 1) / VEC_ROWS_PER_CTA), (unsigned)units);
    moe_vec_kernel<T, KIND><<<grid, VEC_WARPS * 32, 0, s>>>(a);
    return (int)cudaGetLastError();
}

/* Lets a tiled kernel have its shared memory (over the default 48 KiB): once per device, at
 * context creation, because the call is not allowed while a caller captures a CUDA graph. */
template <class T, int BN, bool GATE_UP> cudaError_t allow_smem() {
    return cudaFuncSetAttribute(moe_tiled_kernel<T, BN, GATE_UP>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)tile_smem < T, BN, GATE_UP ? 2 : 1 > ::BYTES);
}

template <class T> int init_moe() {
    cudaError_t err = allow_smem<T, 32, false>();
    if (err == cudaSuccess) err = allow_smem<T, 32, true>();
    if (err == cudaSuccess) err = allow_smem<T, 64, false>();
    if (err == cudaSuccess) err = allow_smem<T, 64, true>();
    return (int)err;
}

template <class T, int BN, bool GATE_UP>
int launch_tiled_kernel(const qk_cuda_moe_args &a, const moe_route &r, float *out, int max_tiles, cudaStream_t s) {
    constexpr size_t smem = tile_smem < T, BN, GATE_UP ? 2 : 1 > ::BYTES;
    const dim3 grid((unsigned)((a.m + TILE_M - 1) / TILE_M), (unsigned)(max_tiles < 65535 ? max_tiles : 65535));
    moe_tiled_kernel<T, BN, GATE_UP><<<grid, TILE_THREADS, smem, s>>>(a, r, out);
    return (int)cudaGetLastError();
}

template <class T> int launch_moe(const qk_cuda_moe_args *a, const qk_cuda_moe_plan *plan, cudaStream_t s) {
    using B = moe_block<T>;
    if (a->k % B::QK) return (int)cudaErrorInvalidValue;
    if (plan->path == QK_CUDA_MOE_VEC) {
        switch (a->kind) {
        case QK_CUDA_MOE_MATMUL: return launch_vec<T, QK_CUDA_MOE_MATMUL>(*a, s);
        case QK_CUDA_MOE_GATE_UP: return launch_vec<T, QK_CUDA_MOE_GATE_UP>(*a, s);
        default: return launch_vec<T, QK_CUDA_MOE_WEIGHTED_SUM>(*a, s);
        }
    }
    moe_route r;
    float *out = nullptr;
    int err = qk_cuda_moe_prepare(a, plan, &r, &out, s);
    if (err) return err;
    const bool gate_up = a->kind == QK_CUDA_MOE_GATE_UP;
    if (plan->bn == 32)
        err = gate_up ? launch_tiled_kernel<T, 32, true>(*a, r, out, plan->max_tiles, s)
                      : launch_tiled_kernel<T, 32, false>(*a, r, out, plan->max_tiles, s);
    else
        err = gate_up ? launch_tiled_kernel<T, 64, true>(*a, r, out, plan->max_tiles, s)
                      : launch_tiled_kernel<T, 64, false>(*a, r, out, plan->max_tiles, s);
    if (err || a->kind != QK_CUDA_MOE_WEIGHTED_SUM) return err;
    return qk_cuda_moe_weighted_sum(a, out, s);
}

} // namespace qk_cuda

/* Defines the launcher qk_cuda_moe_<name> for traits T, and its per-device setup. */
#define QK_CUDA_MOE(name, T)                                                                                           \
    int qk_cuda_moe_##name(const qk_cuda_moe_args *a, const qk_cuda_moe_plan *p, cudaStream_t s) {                     \
        return qk_cuda::launch_moe<T>(a, p, s);                                                                        \
    }                                                                                                                  \
    int qk_cuda_moe_init_##name(void) { return qk_cuda::init_moe<T>(); }

#endif
