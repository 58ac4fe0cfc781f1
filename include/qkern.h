/* qkern: GPU-first quantization kernels for GGUF formats.
 *
 * One context owns one device (cpu now; cuda and vulkan backends register themselves when
 * built and present). Every function returns a qk_status; on failure qk_last_error(ctx)
 * holds a one-line explanation. The library never prints, never exits, never aborts.
 *
 * Typical use:
 *     qk_context *ctx;
 *     qk_context_params p = qk_context_default_params();
 *     if (qk_context_create(&p, &ctx) != QK_OK) ...;
 *     qk_quantize_desc q = qk_quantize_default_desc();
 *     q.type = QK_TYPE_Q4_K; q.rows = R; q.cols = C;
 *     q.src = qk_host(weights, R * C * sizeof(float));
 *     q.dst = qk_host(blocks, qk_type_row_bytes(QK_TYPE_Q4_K, C) * R);
 *     q.imatrix = im;                       // C importance weights, or NULL
 *     if (qk_quantize(ctx, &q) != QK_OK) fprintf(stderr, "%s\n", qk_last_error(ctx));
 *     qk_context_destroy(ctx);
 */
#ifndef QKERN_H
#define QKERN_H

#include <stddef.h>
#include <stdint.h>

#include "qkern_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QK_VERSION_MAJOR  0
#define QK_VERSION_MINOR  1
#define QK_VERSION_PATCH  0
#define QK_VERSION_NUMBER (QK_VERSION_MAJOR * 10000 + QK_VERSION_MINOR * 100 + QK_VERSION_PATCH)

#if defined(_WIN32) && defined(QK_BUILD_SHARED)
#define QK_API __declspec(dllexport)
#elif defined(__GNUC__)
#define QK_API __attribute__((visibility("default")))
#else
#define QK_API
#endif

/* QK_VERSION_NUMBER of the library actually linked. */
QK_API unsigned qk_version(void);
QK_API const char *qk_version_string(void);

/* ---- status -------------------------------------------------------------------------- */

typedef enum qk_status {
    QK_OK = 0,
    QK_ERR_INVALID_ARG,   /* a NULL pointer, a bad field in a desc, an unknown option */
    QK_ERR_TYPE,          /* unknown type id, or a type this operation cannot produce */
    QK_ERR_SHAPE,         /* rows/cols out of range, cols not a multiple of the block size */
    QK_ERR_VALUE,         /* NaN/Inf in the input; negative or non-finite imatrix values */
    QK_ERR_BUFFER,        /* a buffer is too small for the data it must hold or supply */
    QK_ERR_NEEDS_IMATRIX, /* the type requires an importance matrix and none was given */
    QK_ERR_OUT_OF_MEMORY, /* host or device allocation failed */
    QK_ERR_NO_DEVICE,     /* the named device does not exist or its backend is not built */
    QK_ERR_UNSUPPORTED,   /* the device cannot run this operation on this type */
    QK_ERR_BACKEND,       /* the backend's API reported an error (its message is kept) */
    QK_ERR_IO,            /* a file could not be read or written */
    QK_ERR_FORMAT,        /* a file is malformed */
    QK_STATUS_COUNT
} qk_status;

/* Short static description of a status, e.g. "cols not a multiple of the block size". */
QK_API const char *qk_status_string(qk_status s);

/* ---- types ----------------------------------------------------------------------------- */

/* ggml's type ids, so a GGUF tensor's type passes straight through: QK_TYPE_F32 = 0, QK_TYPE_F16 = 1,
 * QK_TYPE_Q4_0 = 2, ..., QK_TYPE_Q2_0 = 42, one constant for each row of the format table
 * (qkern_formats.h, which lists every type with its block geometry). */
typedef enum qk_type {
#define QK_TYPE_ENUM_ROW(NAME, codec, id, ...) QK_TYPE_##NAME = id,
    QK_FORMATS(QK_TYPE_ENUM_ROW)
#undef QK_TYPE_ENUM_ROW
        QK_TYPE_ID_LIMIT = QK_FORMAT_ID_LIMIT /* ids are < this; not every id below it is a qkern type */
} qk_type;

typedef struct qk_type_info {
    const char *name; /* ggml's upper-case name, e.g. "Q4_K" */
    qk_type type;
    int block_elems;        /* values per block (1 for float types) */
    int block_bytes;        /* bytes per block */
    double bits_per_weight; /* 8 * block_bytes / block_elems */
    int is_quantized;       /* 0 for F32, F16, BF16 */
    int uses_imatrix;       /* the quantizer reads an importance matrix when given one */
    int needs_imatrix;      /* qk_quantize refuses without one (unless overridden) */
} qk_type_info;

/* Fills *info for a type id. QK_ERR_TYPE for an id that is not a qkern type. */
QK_API qk_status qk_type_get_info(int type_id, qk_type_info *info);
/* The type's name, or NULL for an unknown id. */
QK_API const char *qk_type_name(int type_id);
/* Looks a type up by name, case-insensitive ("q4_k" or "Q4_K"). QK_ERR_TYPE if unknown. */
QK_API qk_status qk_type_from_name(const char *name, qk_type *type);
/* Bytes of one row of `cols` values; 0 if the id is unknown or cols is not a multiple of the
 * block size (or the product would overflow). */
QK_API size_t qk_type_row_bytes(int type_id, int64_t cols);
/* Number of qkern types and the i-th one (0 <= i < count), in ascending id order. */
QK_API int qk_type_count(void);
QK_API qk_type qk_type_at(int i);

/* ---- devices and contexts -------------------------------------------------------------- */

typedef enum qk_device_kind { QK_DEVICE_CPU = 0, QK_DEVICE_CUDA = 1, QK_DEVICE_VULKAN = 2 } qk_device_kind;

typedef struct qk_device_info {
    char id[32];    /* what qk_context_params.device takes: "cpu", "cuda:0", "vulkan:1" */
    char name[128]; /* the hardware's name */
    qk_device_kind kind;
    uint64_t memory_bytes; /* device memory (host RAM for cpu), 0 if unknown */
    int compute_units;     /* cores / SMs / compute units */
} qk_device_info;

/* Number of usable devices across the backends built into this library (>= 1: the cpu). */
QK_API int qk_device_count(void);
/* Fills *info for device i, 0 <= i < qk_device_count(); best device first. */
QK_API qk_status qk_device_get(int i, qk_device_info *info);

typedef struct qk_context qk_context;

typedef struct qk_context_params {
    size_t struct_size; /* sizeof(qk_context_params): set by qk_context_default_params */
    const char *device; /* "cpu", "cuda:0", "vulkan:0", ... or NULL/"auto" for the best */
    int n_threads;      /* cpu worker threads; 0 = all cores */
} qk_context_params;

QK_API qk_context_params qk_context_default_params(void);
/* Creates a context on the chosen device. QK_ERR_NO_DEVICE names what was not found. */
QK_API qk_status qk_context_create(const qk_context_params *params, qk_context **out);
/* Releases the context and every buffer still allocated from it. NULL is ignored. */
QK_API void qk_context_destroy(qk_context *ctx);
/* The device this context runs on. */
QK_API qk_status qk_context_device(const qk_context *ctx, qk_device_info *info);
/* The message of the last failed call on this context ("" if none). Valid until the next
 * call on the same context. Safe to call with NULL (returns the last context-less error). */
QK_API const char *qk_last_error(const qk_context *ctx);

/* ---- buffers and memory references ------------------------------------------------------- */

typedef struct qk_buffer qk_buffer;

/* Allocates `bytes` of memory on the context's device. QK_ERR_OUT_OF_MEMORY on failure. */
QK_API qk_status qk_buffer_create(qk_context *ctx, size_t bytes, qk_buffer **out);
QK_API void qk_buffer_destroy(qk_buffer *buf);
QK_API size_t qk_buffer_size(const qk_buffer *buf);
/* Copies between host memory and a buffer; QK_ERR_BUFFER if [offset, offset+bytes) is out
 * of range. Both complete before returning. */
QK_API qk_status qk_buffer_write(qk_buffer *buf, size_t offset, const void *src, size_t bytes);
QK_API qk_status qk_buffer_read(const qk_buffer *buf, size_t offset, void *dst, size_t bytes);

/* Where an operation's data lives: host memory, a byte range of a buffer, or device memory
 * that qkern did not allocate (an engine's tensor: a CUDA device pointer on the context's
 * device). `bytes` is the size available there and is checked against what the operation
 * needs. Build them with qk_host(), qk_buf() and qk_dev(). */
typedef struct qk_mem {
    qk_buffer *buffer;
    void *host;
    size_t offset;
    size_t bytes;
    void *device;
} qk_mem;

static inline qk_mem qk_host(void *p, size_t bytes) {
    qk_mem m = {NULL, p, 0, bytes, NULL};
    return m;
}
static inline qk_mem qk_buf(qk_buffer *b, size_t offset, size_t bytes) {
    qk_mem m = {b, NULL, offset, bytes, NULL};
    return m;
}
static inline qk_mem qk_dev(void *p, size_t bytes) {
    qk_mem m = {NULL, NULL, 0, bytes, p};
    return m;
}

/* ---- operations ------------------------------------------------------------------------- */

enum {
    /* Quantize a type that needs an imatrix without one (uniform weights). For tests and
     * experiments; the results are poor, which is why it is refused by default. */
    QK_QUANTIZE_ALLOW_NO_IMATRIX = 1u << 0,
};

typedef struct qk_quantize_desc {
    size_t struct_size;   /* sizeof(qk_quantize_desc): set by qk_quantize_default_desc */
    qk_type type;         /* a quantized type, or F16/BF16/F32 (plain conversion) */
    qk_type src_type;     /* F32, F16 or BF16 */
    int64_t rows, cols;   /* row-major; cols must be a multiple of the type's block size */
    qk_mem src;           /* rows*cols values of src_type */
    qk_mem dst;           /* rows * qk_type_row_bytes(type, cols) bytes */
    const float *imatrix; /* host: importance weights (mean x^2 per column), or NULL */
    int64_t imatrix_len;  /* cols (one vector for every row), or cols * m with m dividing rows:
                             m equal groups of consecutive rows, group g weighted by values
                             [g*cols, (g+1)*cols) - the experts of a 3D tensor in one call */
    unsigned flags;       /* QK_QUANTIZE_* */
} qk_quantize_desc;

QK_API qk_quantize_desc qk_quantize_default_desc(void);

/* Quantizes rows x cols values into `type` blocks, row by row.
 * Fails with QK_ERR_SHAPE if cols is not a multiple of the block size, QK_ERR_VALUE on a
 * NaN/Inf input (the message names row and column) or a bad imatrix value,
 * QK_ERR_NEEDS_IMATRIX for IQ1_S/IQ2_XXS/IQ2_XS without an imatrix, QK_ERR_BUFFER if src or
 * dst is too small. On failure nothing has been written to dst. */
QK_API qk_status qk_quantize(qk_context *ctx, const qk_quantize_desc *desc);

typedef struct qk_dequantize_desc {
    size_t struct_size; /* sizeof(qk_dequantize_desc): set by qk_dequantize_default_desc */
    qk_type type;       /* the blocks' type */
    qk_type dst_type;   /* F32, F16 or BF16 */
    int64_t rows, cols;
    qk_mem src; /* rows * qk_type_row_bytes(type, cols) bytes */
    qk_mem dst; /* rows*cols values of dst_type */
} qk_dequantize_desc;

QK_API qk_dequantize_desc qk_dequantize_default_desc(void);

/* Dequantizes rows x cols values of `type` blocks. Every bit pattern decodes (the result is
 * ggml's, bit for bit); fails only on a bad shape, type or buffer. */
QK_API qk_status qk_dequantize(qk_context *ctx, const qk_dequantize_desc *desc);

/* ---- expert-batched matrix multiply (MoE) ------------------------------------------------- */

/* For each token t and each of its n_used selected experts e = ids[t][s] (a "slot"):
 * Y[t][s] = W[e] . x, with x the token's activations (X[t], or X[t][s] for the down projection,
 * where every slot has its own input): ggml's mul_mat_id. W[e] is m rows of k values in the
 * GGUF type `type`, exactly as a GGUF file stores an expert stack; nothing is converted ahead.
 * Products accumulate in f32. With many tokens per expert the GPU multiplies on its tensor
 * cores, from weights and activations rounded to f16 (values beyond f16's range, 65504, become
 * infinite there); every path stays within 2e-3 of the float64 product in relative L2 norm.
 *
 * A plain matrix is n_expert = 1 (a shared expert, a dense layer): ids may then be left empty
 * and every slot uses it. */
typedef struct qk_moe_desc {
    size_t struct_size;     /* sizeof(qk_moe_desc): set by qk_moe_default_desc */
    qk_type type;           /* the weights' type */
    qk_type x_type;         /* the activations': F32, F16 or BF16 */
    int64_t n_expert, m, k; /* W[n_expert][m][k]; k a multiple of the type's block size */
    int64_t n_tokens, n_used;
    int x_per_slot; /* 0: X[n_tokens][k], shared by a token's slots; 1: X[n_tokens][n_used][k] */
    qk_mem w;       /* n_expert * m * qk_type_row_bytes(type, k) bytes */
    qk_mem w_up;    /* qk_moe_gate_up only: the up projection, same type and shape as w (the gate) */
    qk_mem x;
    qk_mem ids;       /* int32 [n_tokens][n_used], each in [0, n_expert); may be empty if n_expert = 1 */
    qk_mem router;    /* qk_moe_weighted_sum only: f32 [n_tokens][n_used], the router's weights */
    qk_mem y;         /* f32 [n_tokens][n_used][m]; for qk_moe_weighted_sum [n_tokens][m] */
    qk_mem workspace; /* scratch of qk_moe_workspace_size bytes on the device; a synchronous call
                         allocates it itself when this is empty */
} qk_moe_desc;

QK_API qk_moe_desc qk_moe_default_desc(void);

/* The scratch bytes the three calls below need for this desc on this context (its shapes and
 * types; the memory fields are not read). May be 0. */
QK_API qk_status qk_moe_workspace_size(qk_context *ctx, const qk_moe_desc *desc, size_t *bytes);

/* Y[t][s] = W[ids[t][s]] . x for every token t and slot s.
 * Fails with QK_ERR_SHAPE on a bad shape (k not a multiple of the block size, n_used < 1),
 * QK_ERR_VALUE on an id outside [0, n_expert) (the message names token and slot),
 * QK_ERR_BUFFER if an operand is too small, QK_ERR_UNSUPPORTED if the device has no kernel
 * for the type. On failure y is not written. */
QK_API qk_status qk_moe_matmul(qk_context *ctx, const qk_moe_desc *desc);

/* The gated FFN input of an expert in one call: Y[t][s] = silu(Wg[e] . x) * (Wu[e] . x) with
 * Wg = desc->w and Wu = desc->w_up, silu(g) = g / (1 + exp(-g)). Errors as qk_moe_matmul. */
QK_API qk_status qk_moe_gate_up(qk_context *ctx, const qk_moe_desc *desc);

/* The down projection summed over a token's experts: Y[t] = sum over s = 0..n_used-1, in that
 * order, of router[t][s] * (W[ids[t][s]] . x). Y is [n_tokens][m]. Errors as qk_moe_matmul. */
QK_API qk_status qk_moe_weighted_sum(qk_context *ctx, const qk_moe_desc *desc);

#ifdef __cplusplus
}
#endif

#endif
