// The input check that precedes every quantization (DESIGN.md: NaN or Inf is an error that names
// the row and column): one pass over the source, reading the raw bits of f32/f16/bf16 values.
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_kernels.h"

namespace {

// Exponent all ones, in each source format: NaN or Inf.
__device__ __forceinline__ bool nonfinite(int src_type, const void *src, int64_t i) {
    if (src_type == 0) return (static_cast<const uint32_t *>(src)[i] & 0x7f800000u) == 0x7f800000u;
    uint16_t h = static_cast<const uint16_t *>(src)[i];
    if (src_type == 1) return (h & 0x7c00u) == 0x7c00u;
    return (h & 0x7f80u) == 0x7f80u; // bf16
}

__global__ void find_nonfinite_kernel(int src_type, const void *src, int64_t n, unsigned long long *first) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        if (nonfinite(src_type, src, i)) {
            atomicMin(first, static_cast<unsigned long long>(i));
            return; // later indices of this thread are larger
        }
}

} // namespace

extern "C" int qk_cuda_find_nonfinite(int src_type, const void *src, int64_t rows, int64_t cols,
                                      unsigned long long *first, void *stream) {
    const int64_t n = rows * cols;
    if (n <= 0) return cudaSuccess;
    const int threads = 256;
    int64_t blocks = (n + threads - 1) / threads;
    if (blocks > 65536) blocks = 65536;
    find_nonfinite_kernel<<<static_cast<unsigned>(blocks), threads, 0, static_cast<cudaStream_t>(stream)>>>(
        src_type, src, n, first);
    return static_cast<int>(cudaGetLastError());
}
