/* The per-type launchers behind qk_cuda_quantize / qk_cuda_dequantize (CUDA C++, internal to
 * kernels/cuda). Each family file defines its types' launchers; cuda_kernels.cu maps ggml type
 * ids to them, and that map is what qk_cuda_kernel_supports reports. */
#ifndef QK_CODEC_LAUNCH_H
#define QK_CODEC_LAUNCH_H

#include <cuda_runtime.h>
#include <stdint.h>

#include "qkern_formats.h"

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

/* The error of a quantization (qk_cuda_quant_error): q holds the blocks of src. */
typedef struct qk_cuda_eargs {
    int src_type; /* F32 0, F16 1, BF16 30 */
    const void *src, *q;
    int64_t rows, cols;
    const float *weights;     /* or NULL (every weight 1): row r uses weights + (r / rows_per_weights) * cols */
    const float *means;       /* or NULL (no bias): laid out as weights, which it needs */
    int64_t rows_per_weights; /* >= 1 */
    double *partial;          /* scratch: QK_CUDA_ERROR_CTAS x QK_CUDA_ERROR_SUMS doubles */
    double *sums;             /* out: the QK_CUDA_ERROR_SUMS sums */
} qk_cuda_eargs;

typedef int (*qk_cuda_quant_launcher)(const qk_cuda_qargs *a, cudaStream_t s);
typedef int (*qk_cuda_dequant_launcher)(const qk_cuda_dargs *a, cudaStream_t s);
typedef int (*qk_cuda_error_launcher)(const qk_cuda_eargs *a, cudaStream_t s);

/* Every row of the format table with a cuda column of Y has both (its family's .cu file
 * defines them with QK_CUDA_CODEC). */
#define QK_CUDA_DECLARE_CODEC(NAME, codec, id, elems, bytes, family, source, imatrix, cpu, cuda, ...)                  \
    QK_IF_##cuda(int qk_cuda_quantize_##codec(const qk_cuda_qargs *a, cudaStream_t s);                                 \
                 int qk_cuda_dequantize_##codec(const qk_cuda_dargs *a, cudaStream_t s);                               \
                 int qk_cuda_error_##codec(const qk_cuda_eargs *a, cudaStream_t s);)
QK_FORMATS(QK_CUDA_DECLARE_CODEC)
#undef QK_CUDA_DECLARE_CODEC

/* Copies the I-quant encoders' lattice maps (built on the host first) to the current device,
 * once per device; thread-safe. A cudaError_t value. */
int qk_cuda_iq_grids_upload(void);

#endif
