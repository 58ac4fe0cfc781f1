/* The two generic kernels, quantize and dequantize, parameterised by a small traits struct
 * per type (QK values per block, BYTES per block, the shared block functions), and their
 * launchers. A family's .cu file defines the traits and instantiates the launchers with
 * QK_CUDA_CODEC; cuda_kernels.cu maps type ids to them.
 *
 * First, simple and exact: one thread per block. The thread widens its values exactly as the
 * CPU backend does (f16/bf16 -> f32), runs the block function of kernels/cpu/<family>_block.h and
 * writes the block. All indices are 64-bit and every loop is grid-stride. */
#ifndef QK_CODEC_KERNELS_CUH
#define QK_CODEC_KERNELS_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "codec_launch.h"
#include "qk_float.h"

namespace qk_cuda {

enum { TYPE_F32 = 0, TYPE_F16 = 1, TYPE_BF16 = 30 }; /* ggml ids of the plain value types */
constexpr int THREADS = 128;
constexpr int64_t MAX_GRID = 1 << 16; /* blocks; the loops stride over the rest */

__device__ inline float load_value(const void *src, int type, int64_t i) {
    if (type == TYPE_F32) return static_cast<const float *>(src)[i];
    const uint16_t h = static_cast<const uint16_t *>(src)[i];
    return type == TYPE_F16 ? qk_fp16_to_f32(h) : qk_bf16_to_f32(h);
}

/* As the CPU backend: the f32 result of the block, narrowed by the F16/BF16 encoders. */
__device__ inline void store_value(void *dst, int type, int64_t i, float v) {
    if (type == TYPE_F32)
        static_cast<float *>(dst)[i] = v;
    else
        static_cast<uint16_t *>(dst)[i] = type == TYPE_F16 ? qk_f32_to_fp16(v) : qk_f32_to_bf16(v);
}

template <class T> __device__ inline void quantize_one(const qk_cuda_qargs &a, int64_t blk, float sigma2) {
    const int64_t per_row = a.cols / T::QK;
    float x[T::QK];
    for (int i = 0; i < T::QK; i++) x[i] = load_value(a.src, a.src_type, blk * T::QK + i);
    const float *qw =
        a.imatrix ? a.imatrix + (blk / per_row) / a.rows_per_imatrix * a.cols + (blk % per_row) * T::QK : nullptr;
    T::quant(x, qw, sigma2, static_cast<uint8_t *>(a.dst) + blk * T::BYTES);
}

/* Row statistic of the types that need one (legacy with imatrix): thread 0 of a CUDA block
 * sums the row sequentially, as the CPU does, then the block's threads share the row. */
template <class T> __global__ void __launch_bounds__(THREADS) quantize_rows_kernel(qk_cuda_qargs a) {
    __shared__ float sigma2;
    const int64_t per_row = a.cols / T::QK;
    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        if (threadIdx.x == 0) {
            float acc = 0.0f, x[T::QK];
            for (int64_t c = 0; c < a.cols; c += T::QK) {
                for (int i = 0; i < T::QK; i++) x[i] = load_value(a.src, a.src_type, r * a.cols + c + i);
                acc = T::row_sum(acc, x, T::QK);
            }
            sigma2 = T::row_stat(acc, a.cols);
        }
        __syncthreads();
        for (int64_t j = threadIdx.x; j < per_row; j += blockDim.x) quantize_one<T>(a, r * per_row + j, sigma2);
        __syncthreads();
    }
}

template <class T> __global__ void __launch_bounds__(THREADS) quantize_kernel(qk_cuda_qargs a) {
    const int64_t n = a.rows * (a.cols / T::QK);
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t blk = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; blk < n; blk += stride)
        quantize_one<T>(a, blk, 0.0f);
}

template <class T> __global__ void __launch_bounds__(THREADS) dequantize_kernel(qk_cuda_dargs a) {
    const int64_t n = a.rows * (a.cols / T::QK);
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t blk = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; blk < n; blk += stride) {
        float y[T::QK];
        T::dequant(static_cast<const uint8_t *>(a.src) + blk * T::BYTES, y);
        for (int i = 0; i < T::QK; i++) store_value(a.dst, a.dst_type, blk * T::QK + i, y[i]);
    }
}

inline unsigned grid_for(int64_t items) {
    const int64_t g = (items + THREADS - 1) / THREADS;
    return (unsigned)(g < 1 ? 1 : (g > MAX_GRID ? MAX_GRID : g));
}

template <class T> int launch_quantize(const qk_cuda_qargs *a, cudaStream_t s) {
    if (a->cols % T::QK) return (int)cudaErrorInvalidValue;
    if (a->rows == 0) return (int)cudaSuccess;
    if (T::ROW_STAT && a->imatrix)
        quantize_rows_kernel<T><<<(unsigned)(a->rows < MAX_GRID ? a->rows : MAX_GRID), THREADS, 0, s>>>(*a);
    else
        quantize_kernel<T><<<grid_for(a->rows * (a->cols / T::QK)), THREADS, 0, s>>>(*a);
    return (int)cudaGetLastError();
}

template <class T> int launch_dequantize(const qk_cuda_dargs *a, cudaStream_t s) {
    if (a->cols % T::QK) return (int)cudaErrorInvalidValue;
    if (a->rows == 0) return (int)cudaSuccess;
    dequantize_kernel<T><<<grid_for(a->rows * (a->cols / T::QK)), THREADS, 0, s>>>(*a);
    return (int)cudaGetLastError();
}

/* Traits defaults: no row statistic. */
struct no_row_stat {
    static constexpr bool ROW_STAT = false;
    __device__ static float row_sum(float acc, const float *, int) { return acc; }
    __device__ static float row_stat(float acc, int64_t) { return acc; }
};

} // namespace qk_cuda

/* Defines the launchers qk_cuda_quantize_<name> and qk_cuda_dequantize_<name> for traits T. */
#define QK_CUDA_CODEC(name, T)                                                                                         \
    int qk_cuda_quantize_##name(const qk_cuda_qargs *a, cudaStream_t s) { return qk_cuda::launch_quantize<T>(a, s); }  \
    int qk_cuda_dequantize_##name(const qk_cuda_dargs *a, cudaStream_t s) {                                            \
        return qk_cuda::launch_dequantize<T>(a, s);                                                                    \
    }

#define QK_CUDA_DEQUANT_ONLY(name, T)                                                                                  \
    int qk_cuda_dequantize_##name(const qk_cuda_dargs *a, cudaStream_t s) {                                            \
        return qk_cuda::launch_dequantize<T>(a, s);                                                                    \
    }

#endif
