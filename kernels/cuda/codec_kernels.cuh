/* The generic kernels, quantize and dequantize, parameterised by a small traits struct per
 * type (QK values per block, BYTES per block, the shared block functions), and their
 * launchers. A family's .cu file defines the traits and instantiates the launchers with
 * QK_CUDA_CODEC; cuda_kernels.cu maps type ids to them.
 *
 * Exact: a thread runs the block function of kernels/cpu/<family>_block.h on one block, with
 * its values widened exactly as the CPU backend widens them (f16/bf16 -> f32), so the bytes are
 * the reference's.
 *
 * Fast (dequantize, and quantize of the 32-value types): a thread's block is a strided,
 * unaligned piece of memory (17..210 bytes in, 32..256 values out), so threads never touch
 * global memory on their own. A CUDA block takes a tile of NB consecutive blocks, whose input
 * and output are each one contiguous span: the span is copied between global and shared memory
 * by all threads together in 16-byte words, and the block functions read and write shared
 * memory. A thread owns 32 values (a 32-value block, or one part of a 256-value block: see
 * QK_DEQUANT_BY_PARTS), which sit in shared memory at a stride of 33 floats, so that thread
 * t's i-th value and thread t+1's fall in different banks.
 *
 * All indices are 64-bit and every loop is grid-stride. */
#ifndef QK_CODEC_KERNELS_CUH
#define QK_CODEC_KERNELS_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "codec_launch.h"
#include "cuda_kernels.h"
#include "legacy_block.h"
#include "qk_float.h"

namespace qk_cuda {

enum { TYPE_F32 = 0, TYPE_F16 = 1, TYPE_BF16 = 30 }; /* ggml ids of the plain value types */
constexpr int THREADS = 128;
constexpr int64_t MAX_GRID = 1 << 16; /* CUDA blocks; the loops stride over the rest */

/* An F16 or BF16 value widened to f32, exactly. */
__device__ inline float widen(int type, uint16_t h) { return type == TYPE_F16 ? qk_fp16_to_f32(h) : qk_bf16_to_f32(h); }

__device__ inline float load_value(const void *src, int type, int64_t i) {
    if (type == TYPE_F32) return static_cast<const float *>(src)[i];
    return widen(type, static_cast<const uint16_t *>(src)[i]);
}

__device__ inline uint16_t narrow(int type, float v) {
    return type == TYPE_F16 ? qk_f32_to_fp16(v) : qk_f32_to_bf16(v);
}

/* Two values narrowed at once, lo in the low half: the hardware's round-to-nearest-even
 * conversion, which is qk_f32_to_fp16/qk_f32_to_bf16 for every value but NaN (denormals are
 * kept: -ftz=false); NaN keeps the encoders' payload rule. */
__device__ inline uint32_t narrow2(int type, float lo, float hi) {
    if (isnan(lo) || isnan(hi)) return (uint32_t)narrow(type, lo) | (uint32_t)narrow(type, hi) << 16;
    if (type == TYPE_F16) {
        const __half2 h = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<const uint32_t *>(&h);
    }
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t *>(&h);
}

/* As the CPU backend: the f32 result of the block, narrowed by the F16/BF16 encoders. */
__device__ inline void store_value(void *dst, int type, int64_t i, float v) {
    if (type == TYPE_F32)
        static_cast<float *>(dst)[i] = v;
    else
        static_cast<uint16_t *>(dst)[i] = narrow(type, v);
}

/* The tile of a type: THREADS parts of 32 values for dequantize, and for the tiled quantize
 * (32-value types only) THREADS blocks. */
template <class T> struct tile {
    static constexpr int PART = T::QK < QK_PART ? T::QK : QK_PART;
    static constexpr int PARTS = T::QK / PART; /* per block */
    static constexpr int NB = THREADS / PARTS; /* blocks per tile */
    static constexpr int STRIDE = PART + 1;    /* floats per part in shared memory */
    static constexpr int PACKED = NB * T::BYTES;
    static constexpr int PACKED_WORDS = (PACKED + 15) / 16;
};

/* Values [p * 32, p * 32 + 32) of block b (the whole block for the 32-value types). */
template <class T> __device__ inline void decode_part(const uint8_t *b, int p, float *y) {
    if constexpr (tile<T>::PARTS > 1)
        T::dequant_part(b, p, y);
    else
        T::dequant(b, y);
}

/* A tile's input span, up to W 16-byte words per thread, held in registers: fetched one tile
 * ahead, so that the loads of the next tile are in flight while this one is decoded and
 * written (a thread has little else to hide memory latency with). Where the global address
 * is not 16-byte aligned, or for the bytes past the last whole word, put() reads global
 * memory itself, byte by byte. Tile spans start 16-byte aligned in an aligned buffer: NB *
 * BYTES and the values of a tile are multiples of 16 bytes for every type. */
template <int W> struct span_words {
    uint4 r[W];
    const uint8_t *g;
    int64_t bytes;
    bool aligned;

    __device__ void fetch(const void *src, int64_t n) {
        g = static_cast<const uint8_t *>(src);
        bytes = n;
        aligned = (reinterpret_cast<uintptr_t>(src) & 15) == 0;
        const int64_t full = aligned ? n / 16 : 0;
#pragma unroll
        for (int k = 0; k < W; k++) {
            const int64_t i = threadIdx.x + k * THREADS;
            if (i < full) r[k] = reinterpret_cast<const uint4 *>(g)[i];
        }
    }
    __device__ int64_t full_words() const { return aligned ? bytes / 16 : 0; }

    /* The span's bytes into shared memory. */
    __device__ void put(uint8_t *s) const {
        const int64_t full = full_words();
#pragma unroll
        for (int k = 0; k < W; k++) {
            const int64_t i = threadIdx.x + k * THREADS;
            if (i < full) reinterpret_cast<uint4 *>(s)[i] = r[k];
        }
        for (int64_t i = full * 16 + threadIdx.x; i < bytes; i += THREADS) s[i] = g[i];
    }

    /* The span's values (of src_type) into shared memory as f32, value e at at(e). */
    template <class At> __device__ void put_values(int src_type, At at) const {
        const int esize = src_type == TYPE_F32 ? 4 : 2, per_word = 16 / esize;
        const int64_t full = full_words();
#pragma unroll
        for (int k = 0; k < W; k++) {
            const int64_t i = threadIdx.x + k * THREADS;
            if (i >= full) continue;
            const uint32_t u[4] = {r[k].x, r[k].y, r[k].z, r[k].w};
            const int e = (int)i * per_word;
            if (esize == 4) {
                for (int j = 0; j < 4; j++) *at(e + j) = qk_bits_f32(u[j]);
            } else {
                for (int j = 0; j < 8; j++) *at(e + j) = widen(src_type, (uint16_t)(u[j / 2] >> (16 * (j % 2))));
            }
        }
        for (int64_t e = full * per_word + threadIdx.x; e < bytes / esize; e += THREADS)
            *at((int)e) = load_value(g, src_type, e);
    }
};

/* Copies n bytes from shared to global memory with all threads of the CUDA block: 16-byte words
 * where the global address allows, bytes otherwise. */
__device__ inline void store_span(const uint8_t *shared, uint8_t *global, int64_t n) {
    int64_t done = 0;
    if ((reinterpret_cast<uintptr_t>(global) & 15) == 0) {
        done = n / 16 * 16;
        for (int64_t i = threadIdx.x; i < n / 16; i += THREADS)
            reinterpret_cast<uint4 *>(global)[i] = reinterpret_cast<const uint4 *>(shared)[i];
    }
    for (int64_t i = done + threadIdx.x; i < n; i += THREADS) global[i] = shared[i];
}

__device__ inline const float *imatrix_of(const qk_cuda_qargs &a, int64_t row) {
    return a.imatrix ? a.imatrix + row / a.rows_per_imatrix * a.cols : nullptr;
}

/* Quantize, tiled: values in (widened to f32), one block per thread, packed blocks out. For the
 * closed-form encoders only, without an imatrix (Q8_0 and MXFP4 have no imatrix path; the
 * legacy types' goes through quantize_rows_kernel): the weighted search, compiled out, would
 * otherwise take every register of the thread. */
template <class T> __global__ void __launch_bounds__(THREADS, 4) quantize_tile_kernel(qk_cuda_qargs a) {
    using L = tile<T>;
    static_assert(L::PARTS == 1, "tiled quantize is for the 32-value types");
    __shared__ float x[L::NB * L::STRIDE];
    __shared__ uint4 packed[L::PACKED_WORDS];
    uint8_t *out = reinterpret_cast<uint8_t *>(packed);
    const int64_t n = a.rows * (a.cols / T::QK), step = (int64_t)gridDim.x * L::NB;
    const int esize = a.src_type == TYPE_F32 ? 4 : 2;
    auto span = [&](int64_t blk0) { return (n - blk0 < L::NB ? n - blk0 : L::NB) * T::QK * esize; };
    span_words<L::NB * T::QK * 4 / 16 / THREADS> in;
    int64_t blk0 = (int64_t)blockIdx.x * L::NB;
    if (blk0 < n) in.fetch(static_cast<const uint8_t *>(a.src) + blk0 * T::QK * esize, span(blk0));
    for (; blk0 < n; blk0 += step) {
        const int nb = n - blk0 < L::NB ? (int)(n - blk0) : L::NB;
        in.put_values(a.src_type, [&](int e) { return &x[e / T::QK * L::STRIDE + e % T::QK]; });
        __syncthreads();
        if (blk0 + step < n)
            in.fetch(static_cast<const uint8_t *>(a.src) + (blk0 + step) * T::QK * esize, span(blk0 + step));
        if (threadIdx.x < nb) T::quant(x + threadIdx.x * L::STRIDE, nullptr, 0.0f, out + threadIdx.x * T::BYTES);
        __syncthreads();
        store_span(out, static_cast<uint8_t *>(a.dst) + blk0 * T::BYTES, (int64_t)nb * T::BYTES);
        __syncthreads();
    }
}

/* The 256-value types' searches are compute-bound and keep large per-thread state: they run
 * untiled, a block per thread straight from global memory, at full occupancy. */
template <class T> __global__ void __launch_bounds__(THREADS) quantize_block_kernel(qk_cuda_qargs a) {
    const int64_t per_row = a.cols / T::QK, n = a.rows * per_row;
    for (int64_t blk = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; blk < n;
         blk += (int64_t)gridDim.x * blockDim.x) {
        float x[T::QK];
        for (int i = 0; i < T::QK; i++) x[i] = load_value(a.src, a.src_type, blk * T::QK + i);
        const float *qw = imatrix_of(a, blk / per_row);
        T::quant(x, qw ? qw + (blk % per_row) * T::QK : nullptr, 0.0f, static_cast<uint8_t *>(a.dst) + blk * T::BYTES);
    }
}

/* The legacy types with an imatrix weigh every block by its row's mean square, which the CPU
 * reference (like ggml) sums in sequence over the row: a reordered sum would change blocks,
 * and measurably not for the better. A warp per row: the lanes stage the row through shared
 * memory 256 values at a time, lane 0 runs the sequential sum (a chain of adds, ~10 us for a
 * row of 4096, with every warp of the GPU on its own row), then the lanes quantize the row's
 * blocks. */
template <class T> __global__ void __launch_bounds__(THREADS) quantize_rows_kernel(qk_cuda_qargs a) {
    constexpr int WARPS = THREADS / 32, PIECE = 256;
    __shared__ float piece[WARPS][PIECE];
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
    const int64_t per_row = a.cols / T::QK;
    for (int64_t r = (int64_t)blockIdx.x * WARPS + w; r < a.rows; r += (int64_t)gridDim.x * WARPS) {
        float acc = 0.0f;
        for (int64_t c0 = 0; c0 < a.cols; c0 += PIECE) {
            const int n = a.cols - c0 < PIECE ? (int)(a.cols - c0) : PIECE;
            for (int i = lane; i < n; i += 32) piece[w][i] = load_value(a.src, a.src_type, r * a.cols + c0 + i);
            __syncwarp();
            if (lane == 0) acc = qk_legacy_sum_x2(acc, piece[w], n);
            __syncwarp();
        }
        const float sigma2 = qk_legacy_sigma2(__shfl_sync(0xffffffffu, acc, 0), a.cols);
        const float *qw = imatrix_of(a, r);
        for (int64_t j = lane; j < per_row; j += 32) {
            float x[T::QK];
            for (int i = 0; i < T::QK; i++) x[i] = load_value(a.src, a.src_type, r * a.cols + j * T::QK + i);
            T::quant(x, qw + j * T::QK, sigma2, static_cast<uint8_t *>(a.dst) + (r * per_row + j) * T::BYTES);
        }
    }
}

/* Dequantize, tiled: packed blocks in, one part per thread into shared memory, values out in
 * coalesced rows (16-bit outputs two at a time where the output is 4-byte aligned). */
template <class T> __global__ void __launch_bounds__(THREADS, 4) dequantize_tile_kernel(qk_cuda_dargs a) {
    using L = tile<T>;
    __shared__ float y[THREADS * L::STRIDE];
    __shared__ uint4 packed[L::PACKED_WORDS];
    uint8_t *in = reinterpret_cast<uint8_t *>(packed);
    const int64_t n = a.rows * (a.cols / T::QK), step = (int64_t)gridDim.x * L::NB;
    const uint8_t *src = static_cast<const uint8_t *>(a.src);
    const bool pairs = a.dst_type != TYPE_F32 && (reinterpret_cast<uintptr_t>(a.dst) & 3) == 0;
    auto span = [&](int64_t blk0) { return (n - blk0 < L::NB ? n - blk0 : L::NB) * T::BYTES; };
    span_words<(L::PACKED_WORDS + THREADS - 1) / THREADS> next;
    int64_t blk0 = (int64_t)blockIdx.x * L::NB;
    if (blk0 < n) next.fetch(src + blk0 * T::BYTES, span(blk0));
    for (; blk0 < n; blk0 += step) {
        const int nb = n - blk0 < L::NB ? (int)(n - blk0) : L::NB, values = nb * T::QK;
        next.put(in);
        __syncthreads();
        if (blk0 + step < n) next.fetch(src + (blk0 + step) * T::BYTES, span(blk0 + step));
        if (threadIdx.x < nb * L::PARTS)
            decode_part<T>(in + threadIdx.x / L::PARTS * T::BYTES, threadIdx.x % L::PARTS, y + threadIdx.x * L::STRIDE);
        __syncthreads();
        const int64_t base = blk0 * T::QK; /* even: QK is */
        if (pairs) {
            uint32_t *d = static_cast<uint32_t *>(a.dst) + base / 2;
            for (int i = threadIdx.x; i < values / 2; i += THREADS) {
                const int s = 2 * i / L::PART * L::STRIDE + 2 * i % L::PART;
                d[i] = narrow2(a.dst_type, y[s], y[s + 1]);
            }
        } else {
            for (int i = threadIdx.x; i < values; i += THREADS)
                store_value(a.dst, a.dst_type, base + i, y[i / L::PART * L::STRIDE + i % L::PART]);
        }
        __syncthreads();
    }
}

/* The plain types (QK = 1): one value per thread is already coalesced. */
template <class T> __global__ void __launch_bounds__(THREADS) quantize_plain_kernel(qk_cuda_qargs a) {
    const int64_t n = a.rows * a.cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const float x = load_value(a.src, a.src_type, i);
        T::quant(&x, nullptr, 0.0f, static_cast<uint8_t *>(a.dst) + i * T::BYTES);
    }
}

template <class T> __global__ void __launch_bounds__(THREADS) dequantize_plain_kernel(qk_cuda_dargs a) {
    const int64_t n = a.rows * a.cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float y;
        T::dequant(static_cast<const uint8_t *>(a.src) + i * T::BYTES, &y);
        store_value(a.dst, a.dst_type, i, y);
    }
}

/* The error of a quantization (qk_cuda_quant_error): a thread decodes one part of q (32 values,
 * or a whole block of fewer) straight from global memory and weighs its differences from the
 * input; the CTA adds its threads' sums in a fixed order into partial[blockIdx.x]. The products
 * are the CPU's (double, no contraction: this file compiles with --fmad=false). The bias, whose
 * square needs a whole row's sum first, is bias_kernel's; without means its slot is 0 here. */
template <class T> __global__ void __launch_bounds__(THREADS) error_kernel(qk_cuda_eargs a) {
    using L = tile<T>;
    constexpr int N = QK_CUDA_ERROR_SUMS - 1;
    const int64_t per_row = a.cols / L::PART, n = a.rows * per_row;
    const uint8_t *q = static_cast<const uint8_t *>(a.q);
    double sum[N] = {0.0, 0.0, 0.0, 0.0}; /* w d^2, w x^2, w, max(w - a^2, 0) d^2 */
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS) {
        const int64_t r = i / per_row, c0 = i % per_row * L::PART;
        float y[L::PART];
        decode_part<T>(q + (r * (a.cols / T::QK) + c0 / T::QK) * T::BYTES, (int)(c0 % T::QK / L::PART), y);
        const int64_t at = r / a.rows_per_weights * a.cols + c0;
        const float *w = a.weights ? a.weights + at : nullptr, *m = a.means ? a.means + at : nullptr;
#pragma unroll 4
        for (int j = 0; j < L::PART; j++) {
            const double x = load_value(a.src, a.src_type, r * a.cols + c0 + j), d = x - (double)y[j],
                         wj = w ? (double)w[j] : 1.0, mj = m ? (double)m[j] : 0.0, var = wj - mj * mj;
            sum[0] += wj * d * d;
            sum[1] += wj * x * x;
            sum[2] += wj;
            sum[3] += (var > 0.0 ? var : 0.0) * d * d;
        }
    }
    __shared__ double warps[THREADS / 32][N];
#pragma unroll
    for (int k = 0; k < N; k++) {
        for (int o = 16; o > 0; o >>= 1) sum[k] += __shfl_xor_sync(0xffffffffu, sum[k], o);
        if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32][k] = sum[k];
    }
    __syncthreads();
    if (threadIdx.x < N) {
        double t = 0.0;
        for (int v = 0; v < THREADS / 32; v++) t += warps[v][threadIdx.x];
        a.partial[blockIdx.x * QK_CUDA_ERROR_SUMS + threadIdx.x] = t;
    } else if (threadIdx.x == N && !a.means) {
        a.partial[blockIdx.x * QK_CUDA_ERROR_SUMS + N] = 0.0;
    }
}

/* The bias, sum over rows of (sum_c a_c d_c)^2: a warp takes whole rows (its lanes the row's parts
 * in turn), reduces the row's sum over its lanes before squaring it, and the CTA adds its warps'
 * squares in warp order into the last slot of partial[blockIdx.x]. Launched with error_kernel's
 * grid, after it. */
template <class T> __global__ void __launch_bounds__(THREADS) bias_kernel(qk_cuda_eargs a) {
    using L = tile<T>;
    constexpr int WARPS = THREADS / 32;
    const int64_t per_row = a.cols / L::PART;
    const uint8_t *q = static_cast<const uint8_t *>(a.q);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    double sum = 0.0;
    for (int64_t r = (int64_t)blockIdx.x * WARPS + warp; r < a.rows; r += (int64_t)gridDim.x * WARPS) {
        const float *m = a.means + r / a.rows_per_weights * a.cols;
        double dot = 0.0;
        for (int64_t p = lane; p < per_row; p += 32) {
            const int64_t c0 = p * L::PART;
            float y[L::PART];
            decode_part<T>(q + (r * (a.cols / T::QK) + c0 / T::QK) * T::BYTES, (int)(c0 % T::QK / L::PART), y);
#pragma unroll 4
            for (int j = 0; j < L::PART; j++) {
                const double x = load_value(a.src, a.src_type, r * a.cols + c0 + j), d = x - (double)y[j];
                dot += (double)m[c0 + j] * d;
            }
        }
        /* the butterfly leaves the same sum in every lane, so lane 0's squares are the warp's */
        for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        sum += dot * dot;
    }
    __shared__ double warps[WARPS];
    if (lane == 0) warps[warp] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int v = 0; v < WARPS; v++) t += warps[v];
        a.partial[blockIdx.x * QK_CUDA_ERROR_SUMS + QK_CUDA_ERROR_SUMS - 1] = t;
    }
}

/* The CTAs' sums, added in CTA order. */
template <class T> __global__ void error_total_kernel(const double *partial, int ctas, double *sums) {
    if (threadIdx.x >= QK_CUDA_ERROR_SUMS) return;
    double t = 0.0;
    for (int c = 0; c < ctas; c++) t += partial[c * QK_CUDA_ERROR_SUMS + threadIdx.x];
    sums[threadIdx.x] = t;
}

inline unsigned grid_for(int64_t items, int64_t per_cta) {
    const int64_t g = (items + per_cta - 1) / per_cta;
    return (unsigned)(g < 1 ? 1 : (g > MAX_GRID ? MAX_GRID : g));
}

/* The tiled kernels: a few tiles per CUDA block, so that the next tile's loads (fetched ahead)
 * overlap this one's decode and stores; one tile per CUDA block leaves every block waiting
 * on its own loads. At least ~16 CUDA blocks per SM of a large GPU stay in the grid. */
inline unsigned grid_for_tiles(int64_t blocks, int64_t per_tile) {
    constexpr int64_t TILES_PER_CTA = 4, MIN_GRID = 2048;
    const int64_t tiles = (blocks + per_tile - 1) / per_tile;
    int64_t g = (tiles + TILES_PER_CTA - 1) / TILES_PER_CTA;
    if (g < MIN_GRID) g = tiles < MIN_GRID ? tiles : MIN_GRID;
    return (unsigned)(g < 1 ? 1 : (g > MAX_GRID ? MAX_GRID : g));
}

/* Which quantize kernel: the tiled one for the closed-form 32-value encoders (traits
 * TILED), the row kernel for the legacy types' imatrix path (ROW_STAT), a block per thread
 * for the searches. */
template <class T> int launch_quantize(const qk_cuda_qargs *a, cudaStream_t s) {
    if (a->cols % T::QK) return (int)cudaErrorInvalidValue;
    if (a->rows == 0) return (int)cudaSuccess;
    const int64_t blocks = a->rows * (a->cols / T::QK);
    if constexpr (T::QK == 1) {
        quantize_plain_kernel<T><<<grid_for(blocks, THREADS), THREADS, 0, s>>>(*a);
    } else if constexpr (T::ROW_STAT) {
        if (a->imatrix)
            quantize_rows_kernel<T><<<grid_for(a->rows, THREADS / 32), THREADS, 0, s>>>(*a);
        else
            quantize_tile_kernel<T><<<grid_for_tiles(blocks, tile<T>::NB), THREADS, 0, s>>>(*a);
    } else if constexpr (T::TILED) {
        quantize_tile_kernel<T><<<grid_for_tiles(blocks, tile<T>::NB), THREADS, 0, s>>>(*a);
    } else {
        quantize_block_kernel<T><<<grid_for(blocks, THREADS), THREADS, 0, s>>>(*a);
    }
    return (int)cudaGetLastError();
}

template <class T> int launch_dequantize(const qk_cuda_dargs *a, cudaStream_t s) {
    if (a->cols % T::QK) return (int)cudaErrorInvalidValue;
    if (a->rows == 0) return (int)cudaSuccess;
    const int64_t blocks = a->rows * (a->cols / T::QK);
    if constexpr (T::QK == 1)
        dequantize_plain_kernel<T><<<grid_for(blocks, THREADS), THREADS, 0, s>>>(*a);
    else
        dequantize_tile_kernel<T><<<grid_for_tiles(blocks, tile<T>::NB), THREADS, 0, s>>>(*a);
    return (int)cudaGetLastError();
}

template <class T> int launch_error(const qk_cuda_eargs *a, cudaStream_t s) {
    if (a->cols % T::QK || a->rows < 1 || a->rows_per_weights < 1) return (int)cudaErrorInvalidValue;
    const int64_t items = a->rows * (a->cols / tile<T>::PART), need = (items + THREADS - 1) / THREADS;
    const int ctas = (int)(need < QK_CUDA_ERROR_CTAS ? need : QK_CUDA_ERROR_CTAS);
    error_kernel<T><<<ctas, THREADS, 0, s>>>(*a);
    if (a->means) bias_kernel<T><<<ctas, THREADS, 0, s>>>(*a);
    error_total_kernel<T><<<1, 32, 0, s>>>(a->partial, ctas, a->sums);
    return (int)cudaGetLastError();
}

/* Traits defaults: no row statistic, not a closed-form 32-value encoder. */
struct traits_defaults {
    static constexpr bool ROW_STAT = false;
    static constexpr bool TILED = false;
};

} // namespace qk_cuda

/* Defines the launchers qk_cuda_quantize_<name>, qk_cuda_dequantize_<name> and
 * qk_cuda_error_<name> for traits T. */
#define QK_CUDA_CODEC(name, T)                                                                                         \
    int qk_cuda_quantize_##name(const qk_cuda_qargs *a, cudaStream_t s) { return qk_cuda::launch_quantize<T>(a, s); }  \
    int qk_cuda_dequantize_##name(const qk_cuda_dargs *a, cudaStream_t s) {                                            \
        return qk_cuda::launch_dequantize<T>(a, s);                                                                    \
    }                                                                                                                  \
    int qk_cuda_error_##name(const qk_cuda_eargs *a, cudaStream_t s) { return qk_cuda::launch_error<T>(a, s); }

#endif
