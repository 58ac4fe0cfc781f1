/* The ceilings a benchmark reports its results against, measured in the same run on the same
 * device (DESIGN.md, "Performance: how it is measured"):
 *   - the bandwidth of a large device-to-device copy (bytes read + written per second), the
 *     ceiling of memory-bound work (token generation, quantize, dequantize);
 *   - the rate of a dense fp16 or bf16 GEMM through cuBLAS, the ceiling of compute-bound work
 *     (prompt processing);
 *   - the time of the path a user would take without qkern for one MoE op: dequantize the
 *     weights to fp16 with qkern, then one cuBLAS grouped GEMM over the experts.
 * cuBLAS is loaded at run time (dlopen), so a program linking this starts where it is missing
 * and only these ceilings are then unavailable (the error says so). Without a CUDA build every
 * function fails with "no CUDA in this build".
 *
 * Every function returns 0 on success, or -1 with a one-line reason in err (errlen bytes). */
#ifndef QKB_CEILINGS_H
#define QKB_CEILINGS_H

#include <stddef.h>
#include <stdint.h>

#include "qkern.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Device-to-device copy of `bytes` (0: 1 GiB), best of a few repetitions after a warm-up;
 * *bytes_per_s counts the bytes read plus the bytes written. device: CUDA ordinal. */
int qkb_copy_bandwidth(int device, size_t bytes, double *bytes_per_s, char *err, size_t errlen);

/* Dense GEMM C[m][n] = A[m][k] * B[k][n] through cuBLAS (cublasGemmEx), bf16 or fp16 inputs
 * (bf16 = 1 or 0), f32 accumulation, random inputs; *flops_per_s = 2*m*n*k / best time. */
int qkb_gemm_rate(int device, int64_t m, int64_t n, int64_t k, int bf16, double *flops_per_s, char *err, size_t errlen);

/* One MoE op the way a user without qkern runs it: dequantize the experts' weights (w: type
 * blocks, n_expert * m rows of k: a range of a qk_buffer of ctx, qk_buf, or device memory, qk_dev) to fp16 with
 * qk_cuda_dequantize_async, gather the activations per expert (fp16), and multiply with one cuBLAS grouped GEMM
 * (cublasGemmGroupedBatchedEx: one group per expert that has tokens). ids: host int32
 * [n_tokens][n_used]. Times, best of a few runs, in microseconds: *dequant_us for the
 * dequantization of the experts the routing touches, *gemm_us for the grouped GEMM. ctx: a
 * qkern context on that CUDA device. */
int qkb_dequant_grouped_gemm_us(qk_context *ctx, int device, qk_type type, qk_mem w, int64_t n_expert, int64_t m,
                                int64_t k, int64_t n_tokens, int64_t n_used, const int32_t *ids, double *dequant_us,
                                double *gemm_us, char *err, size_t errlen);

/* The device's name ("NVIDIA H100 80GB HBM3"), or "" without CUDA. */
void qkb_device_name(int device, char *name, size_t n);

/* Where cuBLAS was loaded from ("/usr/local/cuda/lib64/libcublas.so.13"), or why it was not
 * (every place tried); loads it on the first call. Never NULL. */
const char *qkb_cublas_info(void);

/* Enqueues work on `stream` (a cudaStream_t); returns 0, or -1 with a one-line reason in err. */
typedef int (*qkb_enqueue_fn)(void *arg, void *stream, char *err, size_t errlen);

/* Runs enqueue once on a new stream of `device` (uncaptured: lazy initialization and errors
 * happen there), then captures what it enqueues into one CUDA graph, launches that once to warm
 * up, then `reps` times, each launch timed alone with events: us[i] is the i-th launch's
 * microseconds. The capture refuses work that is not stream-ordered (a synchronization
 * or an allocation inside enqueue fails here with CUDA's message). */
int qkb_graph_time(int device, qkb_enqueue_fn enqueue, void *arg, int reps, double *us, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
