/* The CUDA kernels as the runtime sees them: C launchers over device pointers on a stream.
 * Each returns a cudaError_t value (0 = cudaSuccess) so that the runtime can turn it into a
 * qk_status with CUDA's message; launchers never synchronize and never allocate.
 *
 * Identity: every quantizer produces the bytes of the CPU reference (kernels/cpu) for the same
 * input, because both run the same block code (the kernels/cpu block headers, compiled for the device
 * with --fmad=false); every dequantizer is bit-exact. */
#ifndef QK_CUDA_KERNELS_H
#define QK_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if a kernel exists for (op, type): op 0 = quantize, 1 = dequantize. type: ggml id. */
int qk_cuda_kernel_supports(int op, int type);

/* rows x cols values of src_type (F32 0, F16 1, BF16 30) -> rows of `type` blocks.
 * imatrix: device pointer, or NULL; row r is weighted by the cols floats at
 * imatrix + (r / rows_per_imatrix) * cols (rows_per_imatrix = rows: one vector for all rows).
 * cols is a multiple of the block size. */
int qk_cuda_quantize(int type, int src_type, const void *src, void *dst, int64_t rows, int64_t cols,
                     const float *imatrix, int64_t rows_per_imatrix, void *stream);

/* rows of `type` blocks -> rows x cols values of dst_type (F32, F16 or BF16). */
int qk_cuda_dequantize(int type, int dst_type, const void *src, void *dst, int64_t rows, int64_t cols, void *stream);

/* The error of a quantization, as qk_quantize_measure_ex defines it: q holds the rows x cols values
 * of src (src_type) quantized to `type`; each value is weighed by weights + (r / rows_per_weights)
 * * cols + c (device memory; NULL: every weight 1) and has the mean at the same offset of means
 * (device memory; NULL: no means; needs weights). Writes the sums of qk_quantize_error in its
 * order (err, signal, weight, centered, bias) to sums[0..QK_CUDA_ERROR_SUMS) (device memory), using
 * scratch (QK_CUDA_ERROR_CTAS * QK_CUDA_ERROR_SUMS doubles of device memory). A fixed grid and a
 * fixed order of additions: the same inputs give the same sums, bit for bit. */
#define QK_CUDA_ERROR_CTAS 1024
#define QK_CUDA_ERROR_SUMS 5
int qk_cuda_quant_error(int type, int src_type, const void *src, const void *q, int64_t rows, int64_t cols,
                        const float *weights, const float *means, int64_t rows_per_weights, double *scratch,
                        double *sums, void *stream);

/* The first non-finite input value: writes min(row * cols + col) over every NaN/Inf of the
 * rows x cols values of src_type into *first (device memory, which the caller sets to
 * UINT64_MAX beforehand; it stays so when every value is finite). */
int qk_cuda_find_nonfinite(int src_type, const void *src, int64_t rows, int64_t cols, unsigned long long *first,
                           void *stream);

/* The MoE matmul (qkern.h: qk_moe_matmul, qk_moe_gate_up, qk_moe_weighted_sum; the kinds in
 * that order). Device pointers; ids NULL means expert 0 for every slot. A slot whose id is out of
 * range reads no weights and gets NaN outputs. */
enum { QK_CUDA_MOE_MATMUL = 0, QK_CUDA_MOE_GATE_UP = 1, QK_CUDA_MOE_WEIGHTED_SUM = 2 };
typedef struct qk_cuda_moe_args {
    int kind, type, x_type, x_per_slot;
    int exact; /* 1: no 8-bit activations (the dot path is not taken) */
    int64_t n_expert, m, k, n_tokens, n_used;
    const void *w, *w_up, *x;
    const int32_t *ids;
    const float *router;
    float *y;
    void *workspace;
} qk_cuda_moe_args;

/* VEC: f32 dot products of decoded weights; DOT: 8-bit activations and integer dot products (the
 * vector path of the quantized types unless exact); TILED: tensor cores, for many tokens. */
enum { QK_CUDA_MOE_VEC = 0, QK_CUDA_MOE_TILED = 1, QK_CUDA_MOE_DOT = 2 };

/* Which kernel runs (moe_plan.cu's table of thresholds), where its scratch lies in the workspace
 * (byte offsets) and its size: the tiled path's grouping, f16 activations and (weighted sum)
 * per-slot products; the vector paths' per-slot products of a weighted sum; the dot path's 8-bit
 * activations (xq: int8 [rows of x][k]; xm: float4 per 32 values: the scale d, d times the sum of
 * the first 16 codes, of the last 16). */
typedef struct qk_cuda_moe_plan {
    int path;   /* QK_CUDA_MOE_VEC, _TILED or _DOT */
    int bn;     /* tiled: slots per tile, 32, 64 or 128 (one tensor: its tiles then have 128 rows) */
    int tile_m; /* tiled: weight rows per 32- or 64-slot tile of one tensor, 64 or 128 (64-slot: where two fit an SM) */
    int max_tiles; /* tiled: an upper bound of the tiles the routing can need */
    int lanes;     /* dot: lanes that share a row (a power of two, at most 32) */
    int dot_warps; /* dot: warps a CTA (1 to 8) */
    int dot_rows;  /* dot: rows a lane group takes (2 or 4) */
    size_t counts, tiles, n_tiles, sorted, xh, xq, xm, partial, bytes;
    size_t bytes_any; /* the most any of the three kinds needs with these shapes (the weighted sum's) */
} qk_cuda_moe_plan;

/* 1 if a MoE kernel exists for weights of this type (for the plain types k must then be a
 * multiple of 32). */
int qk_cuda_moe_supports(int type);
/* The plan for these shapes (no pointer of a is read). */
qk_cuda_moe_plan qk_cuda_moe_plan_for(const qk_cuda_moe_args *a);
/* Launches a by plan p (qk_cuda_moe_plan_for(a)); the workspace holds p->bytes (NULL when 0). */
int qk_cuda_moe(const qk_cuda_moe_args *a, const qk_cuda_moe_plan *p, void *stream);

/* Uploads the lookup tables and encoder maps the kernels read (once per device, before the
 * first launch; idempotent). */
int qk_cuda_kernels_init(void);

#ifdef __cplusplus
}
#endif

#endif
