/* qkern_cuda.h - qkern on an inference engine's own CUDA memory and stream.
 *
 *     #include "qkern_cuda.h"
 *     qk_dequantize_desc d = qk_dequantize_default_desc();
 *     d.type = QK_TYPE_Q4_K;
 *     d.dst_type = QK_TYPE_F16;
 *     d.rows = R, d.cols = C;
 *     d.src = qk_dev(blocks, R * qk_type_row_bytes(QK_TYPE_Q4_K, C));  // device pointers
 *     d.dst = qk_dev(halves, R * C * 2);
 *     qk_cuda_dequantize_async(ctx, &d, stream);  // enqueued on the engine's stream
 *
 * The context is a CUDA context ("cuda:N") of the device that owns the pointers. These calls
 * enqueue work and return: no synchronization, no allocation, no host-device copy, so an
 * engine may capture them in a CUDA graph. Arguments are checked before anything is
 * enqueued (a bad one returns its error and enqueues nothing); a fault inside a kernel shows
 * at the stream's next synchronization, as for any CUDA call. */
#ifndef QKERN_CUDA_H
#define QKERN_CUDA_H

#include "qkern.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The CUDA runtime's cudaStream_t, without requiring its headers here; 0 is the default stream. */
typedef struct CUstream_st *qk_cuda_stream;

/* qk_quantize, enqueued on `stream`. src and dst are device memory (qk_dev or qk_buf); the
 * imatrix, when given, is device memory too (imatrix_len floats). Unlike qk_quantize, neither
 * the input nor the imatrix is scanned for NaN/Inf (that needs a synchronization): finite
 * input is the caller's promise, and a NaN gives unspecified blocks rather than an error. */
QK_API qk_status qk_cuda_quantize_async(qk_context *ctx, const qk_quantize_desc *desc, qk_cuda_stream stream);

/* qk_dequantize, enqueued on `stream`; src and dst are device memory. */
QK_API qk_status qk_cuda_dequantize_async(qk_context *ctx, const qk_dequantize_desc *desc, qk_cuda_stream stream);

/* qk_moe_matmul, qk_moe_gate_up and qk_moe_weighted_sum, enqueued on `stream`. Every operand,
 * the workspace included (qk_moe_workspace_size bytes; required when that is not 0), is device
 * memory. Ids are not checked on the host (that needs a synchronization): a slot whose id is
 * outside [0, n_expert) reads no weights and gets NaN outputs (for the weighted sum, its token
 * does). */
QK_API qk_status qk_cuda_moe_matmul_async(qk_context *ctx, const qk_moe_desc *desc, qk_cuda_stream stream);
QK_API qk_status qk_cuda_moe_gate_up_async(qk_context *ctx, const qk_moe_desc *desc, qk_cuda_stream stream);
QK_API qk_status qk_cuda_moe_weighted_sum_async(qk_context *ctx, const qk_moe_desc *desc, qk_cuda_stream stream);

#ifdef __cplusplus
}
#endif

#endif
