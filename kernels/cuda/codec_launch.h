/* The per-type launchers behind qk_cuda_quantize / qk_cuda_dequantize (CUDA C++, internal to
 * kernels/cuda). Each family file defines its types' launchers; cuda_kernels.cu maps ggml type
 * ids to them, and that map is what qk_cuda_kernel_supports reports. */
#ifndef QK_CODEC_LAUNCH_H
#define QK_CODEC_LAUNCH_H

#include <cuda_runtime.h>
#include <stdint.h>

typedef struct qk_cuda_qargs {
    int src_type; /* F32 0, F16 1, BF16 30 */
    const void *src;
    void *dst;
    int64_t rows, cols;
    const float *imatrix;     /* or NULL: row r uses imatrix + (r / rows_per_imatrix) * cols */
    int64_t rows_per_imatrix; /* >= 1 when imatrix is set */
} qk_cuda_qargs;

typedef struct qk_cuda_dargs {
    int dst_type; /* F32 0, F16 1, BF16 30 */
    const void *src;
    void *dst;
    int64_t rows, cols;
} qk_cuda_dargs;

typedef int (*qk_cuda_quant_launcher)(const qk_cuda_qargs *a, cudaStream_t s);
typedef int (*qk_cuda_dequant_launcher)(const qk_cuda_dargs *a, cudaStream_t s);

#define QK_CUDA_DECLARE_CODEC(name)                                                                                    \
    int qk_cuda_quantize_##name(const qk_cuda_qargs *a, cudaStream_t s);                                               \
    int qk_cuda_dequantize_##name(const qk_cuda_dargs *a, cudaStream_t s);
#define QK_CUDA_DECLARE_DEQUANT(name) int qk_cuda_dequantize_##name(const qk_cuda_dargs *a, cudaStream_t s);

/* floats.cu */
QK_CUDA_DECLARE_CODEC(f32)
QK_CUDA_DECLARE_CODEC(f16)
QK_CUDA_DECLARE_CODEC(bf16)
/* legacy.cu */
QK_CUDA_DECLARE_CODEC(q4_0)
QK_CUDA_DECLARE_CODEC(q4_1)
QK_CUDA_DECLARE_CODEC(q5_0)
QK_CUDA_DECLARE_CODEC(q5_1)
QK_CUDA_DECLARE_CODEC(q8_0)
/* kquants.cu */
QK_CUDA_DECLARE_CODEC(q2_k)
QK_CUDA_DECLARE_CODEC(q3_k)
QK_CUDA_DECLARE_CODEC(q4_k)
QK_CUDA_DECLARE_CODEC(q5_k)
QK_CUDA_DECLARE_CODEC(q6_k)
/* small.cu: MXFP4 and the ternary types */
QK_CUDA_DECLARE_CODEC(mxfp4)
QK_CUDA_DECLARE_CODEC(tq1_0)
QK_CUDA_DECLARE_CODEC(tq2_0)
/* iquants.cu */
QK_CUDA_DECLARE_CODEC(iq2_xxs)
QK_CUDA_DECLARE_CODEC(iq2_xs)
QK_CUDA_DECLARE_CODEC(iq2_s)
QK_CUDA_DECLARE_CODEC(iq3_xxs)
QK_CUDA_DECLARE_CODEC(iq3_s)
QK_CUDA_DECLARE_CODEC(iq1_s)
QK_CUDA_DECLARE_CODEC(iq1_m)
QK_CUDA_DECLARE_CODEC(iq4_nl)
QK_CUDA_DECLARE_CODEC(iq4_xs)
/* Copies the I-quant encoders' lattice maps (built on the host first) to the current device,
 * once per device; thread-safe. A cudaError_t value. */
int qk_cuda_iq_grids_upload(void);

#endif
