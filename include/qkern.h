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
/* 1 if device i is a GPU API implemented on the CPU (mesa's lavapipe, SwiftShader): slower than
 * the cpu backend, never chosen by "auto"; 0 otherwise, and for an i that does not exist. */
QK_API int qk_device_is_software(int i);

typedef struct qk_context qk_context;

/* Receives a one-line notice (no newline), e.g. "qkern: vulkan:0 (llvmpipe) cannot quantize
 * IQ2_XXS (no shaderFloat64); running it on the cpu". Called on the thread of the call that
 * used the context: for a qk_model_quantize on several devices (its extra_contexts) that is the
 * device's worker thread, so a callback shared by contexts must be thread-safe. */
typedef void (*qk_notice_fn)(void *user, const char *line);

typedef struct qk_context_params {
    size_t struct_size; /* sizeof(qk_context_params): set by qk_context_default_params */
    const char *device; /* "cpu", "cuda:0", "vulkan:0", ... or NULL/"auto" for the best */
    int n_threads;      /* cpu worker threads; 0 = all cores */
    /* Where the notices go (the library never prints): the first time an operation runs on the
     * cpu because the device cannot do it (per operation and type), one line. NULL (the default):
     * nowhere. notice_user is passed back as `user`. */
    qk_notice_fn notice;
    void *notice_user;
} qk_context_params;

QK_API qk_context_params qk_context_default_params(void);
/* Creates a context on the chosen device. QK_ERR_NO_DEVICE names what was not found.
 * What the device cannot do (an operation on a type without a kernel here, or whose kernel needs
 * a feature the device lacks, e.g. shaderFloat64) runs on the cpu instead, with the same result
 * and a notice, when the device was chosen automatically (device NULL or "auto") and the call is
 * synchronous; operands in device memory are copied to the host and back for it. A device named
 * in params->device, and the asynchronous calls of qkern_cuda.h, fail with QK_ERR_UNSUPPORTED
 * instead, naming the operation, the type and what the device lacks.
 * params->struct_size may be that of an earlier version of this struct (before notice): the
 * later fields then keep their defaults. */
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

/* How far a quantization is from its input: over every value x (row r, column c) and its
 * dequantized result q, with weight w = weights[(r / (rows / m)) * cols + c] (weights_len = m *
 * cols, m dividing rows: laid out as qk_quantize_desc.imatrix; w = 1 for every value without
 * weights) and, with qk_quantize_measure_ex, mean a = means[same index] (a = 0 without means).
 *
 * Why two more sums: the output error of a row is (sum_c (x - q) z_c) for an input column z_c of
 * mean a_c and mean square w_c; taking the columns as independent, its expectation is
 * sum_c (w_c - a_c^2) (x - q)^2 + (sum_c a_c (x - q))^2, i.e. centered + bias summed over rows.
 * Without means that is err. */
typedef struct qk_quantize_error {
    double err;      /* sum of w (x - q)^2 */
    double signal;   /* sum of w x^2 */
    double weight;   /* sum of w */
    double centered; /* sum of max(w - a^2, 0) (x - q)^2 (the clamp only absorbs rounding: a^2 <= w for
                        statistics of one sample); equals err without means */
    double bias;     /* sum over rows of (sum over the row's columns of a (x - q))^2; 0 without means */
} qk_quantize_error;

/* Quantizes as qk_quantize does (desc->dst receives the blocks), then measures the blocks against
 * desc->src into *out without another call or copy: on a GPU the blocks are decoded and the sums
 * reduced on the device. weights is host memory and need not be desc->imatrix (a type that
 * quantizes without an imatrix can still have its error weighed by one). The same inputs on the
 * same device give the same sums, bit for bit; devices differ only in the order of additions.
 * The same as qk_quantize_measure_ex without means. */
QK_API qk_status qk_quantize_measure(qk_context *ctx, const qk_quantize_desc *desc, const float *weights,
                                     int64_t weights_len, qk_quantize_error *out);

typedef struct qk_measure_desc {
    size_t struct_size;   /* sizeof(qk_measure_desc): set by qk_measure_default_desc */
    const float *weights; /* host: weights_len values >= 0 (mean x^2 per input column), or NULL */
    int64_t weights_len;  /* as qk_quantize_measure's */
    const float *means;   /* host: weights_len finite values (mean x per input column, laid out as
                             weights), or NULL; needs weights */
} qk_measure_desc;

QK_API qk_measure_desc qk_measure_default_desc(void);

/* qk_quantize_measure with the inputs' means too: fills out->centered and out->bias (see
 * qk_quantize_error) besides the sums without means. Each row's sum of a (x - q) is complete
 * before it is squared. Fails as qk_quantize_measure does, and with QK_ERR_INVALID_ARG for means
 * without weights or a struct_size below this header's, QK_ERR_VALUE for a non-finite
 * mean. */
QK_API qk_status qk_quantize_measure_ex(qk_context *ctx, const qk_quantize_desc *desc, const qk_measure_desc *measure,
                                        qk_quantize_error *out);

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
/* How exactly a MoE call multiplies (qk_moe_desc.precision). */
typedef enum qk_moe_precision {
    /* The device's fastest kernels: on CUDA, up to a few tokens per expert, the activations are
     * quantized to 8 bits (per 32 values) and multiplied with integer dot products; relative
     * error of Y at most 1e-2 against a float64 reference (DESIGN.md). */
    QK_MOE_PRECISION_DEFAULT = 0,
    /* Activations kept as given (f32, or f16 on the tensor cores): relative error at most 2e-3. */
    QK_MOE_PRECISION_EXACT = 1,
} qk_moe_precision;

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
    qk_mem ids;                 /* int32 [n_tokens][n_used], each in [0, n_expert); may be empty if n_expert = 1 */
    qk_mem router;              /* qk_moe_weighted_sum only: f32 [n_tokens][n_used], the router's weights */
    qk_mem y;                   /* f32 [n_tokens][n_used][m]; for qk_moe_weighted_sum [n_tokens][m] */
    qk_mem workspace;           /* scratch of qk_moe_workspace_size bytes on the device; a synchronous call
                                   allocates it itself when this is empty */
    qk_moe_precision precision; /* QK_MOE_PRECISION_DEFAULT unless the caller needs the exact path */
} qk_moe_desc;

QK_API qk_moe_desc qk_moe_default_desc(void);

/* The scratch bytes the three calls below need for this desc on this context (its shapes and
 * types; the memory fields are not read). May be 0; it is 0 where the calls would run on the cpu
 * in the device's stead (qk_context_create), which then uses scratch of its own. */
QK_API qk_status qk_moe_workspace_size(qk_context *ctx, const qk_moe_desc *desc, size_t *bytes);

/* Y[t][s] = W[ids[t][s]] . x for every token t and slot s.
 * Fails with QK_ERR_SHAPE on a bad shape (k not a multiple of the block size, n_used < 1),
 * QK_ERR_VALUE on an id outside [0, n_expert) (the message names token and slot),
 * QK_ERR_BUFFER if an operand is too small, QK_ERR_UNSUPPORTED if the device has no kernel
 * for the type and the call cannot fall back to the cpu (qk_context_create). On failure y is
 * not written. */
QK_API qk_status qk_moe_matmul(qk_context *ctx, const qk_moe_desc *desc);

/* The gated FFN input of an expert in one call: Y[t][s] = silu(Wg[e] . x) * (Wu[e] . x) with
 * Wg = desc->w and Wu = desc->w_up, silu(g) = g / (1 + exp(-g)). Errors as qk_moe_matmul. */
QK_API qk_status qk_moe_gate_up(qk_context *ctx, const qk_moe_desc *desc);

/* The down projection summed over a token's experts: Y[t] = sum over s = 0..n_used-1, in that
 * order, of router[t][s] * (W[ids[t][s]] . x). Y is [n_tokens][m]. Errors as qk_moe_matmul. */
QK_API qk_status qk_moe_weighted_sum(qk_context *ctx, const qk_moe_desc *desc);

/* ==== model files ========================================================================== */
/* Whole models: GGUF files read and written, importance matrices written, llama-quantize's
 * presets, and the file-to-file quantizer that `qkern quantize` is a front end for.
 *
 *     qk_model_quantize_desc q = qk_model_quantize_default_desc();
 *     q.input = "model-bf16.gguf"; q.output = "model-Q4_K_M.gguf"; q.preset = "Q4_K_M";
 *     q.imatrix = "imatrix.gguf";
 *     qk_model_result *r;
 *     if (qk_model_quantize(ctx, &q, &r) != QK_OK) fprintf(stderr, "%s\n", qk_last_error(ctx));
 *     else qk_model_result_free(r);
 *
 * Calls that take a context leave their message in qk_last_error(ctx); the others (file
 * readers and writers, presets, plans) in qk_last_error(NULL), which is per thread. */

#define QK_GGUF_MAX_NAME 63 /* bytes of a tensor name, without the terminator (ggml's limit) */
#define QK_GGUF_MAX_DIMS 4

/* ---- presets ------------------------------------------------------------------------------ */

/* A llama-quantize file type ("preset"): the type most tensors get, and the per-tensor
 * mixture rules of llama.cpp that go with its name. */
typedef struct qk_preset {
    const char *name;     /* llama-quantize's name, e.g. "Q4_K_M" */
    int id;               /* its llama_ftype, written as general.file_type */
    qk_type default_type; /* e.g. QK_TYPE_Q4_K */
    const char *help;     /* one line for a usage text, e.g. "4.58G, +0.1754 ppl @ Llama-3-8B" */
    const char *alias_of; /* Q3_K, Q4_K, Q5_K: the preset they stand for ("Q3_K_M", ...); else NULL */
    int only_copy;        /* COPY: every tensor is copied as it is; general.file_type stays the input's */
} qk_preset;

/* The presets in the order llama-quantize lists them: qk_preset_at(i) for 0 <= i < count
 * (NULL beyond). The entries are static: pointers to them stay valid. */
QK_API size_t qk_preset_count(void);
QK_API const qk_preset *qk_preset_at(size_t i);
/* A preset by name, case-insensitive ("q4_k_m"; the aliases and COPY included). QK_ERR_INVALID_ARG
 * if there is none. */
QK_API qk_status qk_preset_from_name(const char *name, const qk_preset **out);
/* A preset by llama_ftype id (never an alias or COPY: 0 is F32). QK_ERR_INVALID_ARG if none. */
QK_API qk_status qk_preset_from_id(int id, const qk_preset **out);

/* ---- quantizing a model file ------------------------------------------------------------- */

/* Why a tensor gets the type it gets. */
typedef enum qk_plan_reason {
    QK_PLAN_KEEP,     /* not a quantizable weight (norms, 1D, router, conv, ...): copied */
    QK_PLAN_DEFAULT,  /* the preset's default type */
    QK_PLAN_MIXTURE,  /* changed by one of the preset's mixture rules */
    QK_PLAN_OVERRIDE, /* a tensor-type override (regex=type) */
    QK_PLAN_OUTPUT,   /* output_tensor_type / token_embedding_type / the output rules */
    QK_PLAN_FALLBACK, /* the chosen type's block does not divide ne[0]; a fallback was used */
} qk_plan_reason;

/* "keep", "default", "mixture", "override", "output", "fallback". */
QK_API const char *qk_plan_reason_name(qk_plan_reason r);

/* "Tensors whose name matches `pattern` become `type`" (llama-quantize's --tensor-type). The
 * pattern is a POSIX extended regular expression, lower-cased as llama-quantize does, searched
 * anywhere in the name; the first matching override wins. */
typedef struct qk_tensor_type_override {
    const char *pattern;
    qk_type type;
} qk_tensor_type_override;

/* What qk_model_quantize reports as it goes: after each chunk of a tensor, and once more with
 * tensor_done = 1 when the tensor is written. bytes_done never decreases. */
typedef struct qk_model_progress {
    size_t tensor, n_tensors; /* the tensor being processed (0-based, output order) */
    const char *name;
    uint64_t bytes_done, bytes_total; /* input bytes */
    double seconds;                   /* since the start of the data pass */
    int tensor_done;
} qk_model_progress;

/* One quantization: the files, the recipe, the options. Start from
 * qk_model_quantize_default_desc(); the device and the CPU threads are the context's
 * (qk_context_params.device, .n_threads). */
typedef struct qk_model_quantize_desc {
    size_t struct_size; /* sizeof(qk_model_quantize_desc): set by qk_model_quantize_default_desc */
    const char *input;  /* GGUF model (F32/F16/BF16 weights); any part of a split model opens all */
    const char *output; /* GGUF file written; split output is named like llama-quantize's. Not
                           read with dry_run, which writes nothing */

    /* the recipe: a preset, then per-tensor choices on top of it */
    const char *preset;                       /* a preset's name ("Q4_K_M") or llama_ftype id ("15") */
    const qk_tensor_type_override *overrides; /* n_overrides of them, or NULL */
    size_t n_overrides;
    int output_tensor_type;   /* a qk_type for output.weight, or -1 (the preset's rules) */
    int token_embedding_type; /* a qk_type for token_embd.weight, or -1 */
    int pure;                 /* 1: no mixture rules, every quantizable tensor gets the default type */
    int leave_output_tensor;  /* 1: output.weight is copied as it is */
    int allow_requantize;     /* 1: already-quantized inputs may be converted (quality suffers) */

    /* the importance matrix: a GGUF or legacy .dat file, or NULL */
    const char *imatrix;
    const char *const *include_weights; /* use imatrix data only for names containing one of these */
    size_t n_include;
    const char *const *exclude_weights; /* ... for every name except those containing one of these */
    size_t n_exclude;                   /* (include and exclude exclude each other) */

    /* output layout */
    int keep_split;           /* 1: one output file per input file, as llama-quantize's --keep-split
                                 writes them: OUT-0000k-of-0000N.gguf even for one part, each part's
                                 tensors in the input's order, the model's metadata in the first */
    uint64_t split_max_bytes; /* >0: start a new output file before one would exceed this */

    int dry_run;        /* 1: plan only; the result lists every tensor, nothing is written */
    int measure_error;  /* 1: fill each row's rmse / rel_rmse (costs a dequantize pass) */
    size_t chunk_bytes; /* input bytes per step through the device; 0: 64 MiB */

    /* Called from the calling thread; `user` is passed back. May be NULL. */
    void (*progress)(void *user, const qk_model_progress *p);
    /* Polled between chunks; non-zero stops the run (QK_ERR_IO, message "interrupted"). May
     * be NULL. Safe to back with a flag a signal handler sets. */
    int (*cancel)(void *user);
    void *user;

    /* llama-quantize's --override-kv: n_kv_overrides texts "KEY=TYPE:VALUE", TYPE int, float, bool
     * (true/false) or str (at most 127 bytes), set in the output's metadata after the input's
     * pairs, as llama-quantize writes them (int as UINT32 of |VALUE|, float as FLOAT32). A
     * malformed one fails with QK_ERR_INVALID_ARG before any file is read. */
    const char *const *kv_overrides;
    size_t n_kv_overrides;
    /* llama-quantize's --prune-layers: n_prune_layers block numbers (>= 0) left out of the output;
     * the blocks after the first pruned one are renumbered down and <arch>.block_count says how
     * many are left. Imatrix entries are found under the tensors' input names. */
    const int *prune_layers;
    size_t n_prune_layers;

    /* A size target instead of the preset's mixture: every tensor the preset converts and the
     * recipe does not pin gets the candidate type that minimises the model's total
     * importance-weighted error sum w (x - q)^2 within the size (tensor data only, metadata
     * excluded). Pinned, keeping their planned type: overrides matches, output_tensor_type,
     * token_embedding_type and tensors the preset copies. At most one of the two is > 0; a
     * target outside the reachable range fails with QK_ERR_INVALID_ARG naming the range in bpw. */
    double target_bpw;       /* tensor data bits per weight of all tensors, at most */
    uint64_t target_bytes;   /* tensor data bytes, at most */
    const int *target_types; /* candidate qk_types (n_target_types), or NULL: Q2_K..Q6_K,
                                IQ2_XXS..IQ4_XS (those needing imatrix data only with it), Q8_0, MXFP4 */
    size_t n_target_types;
    /* The measured errors, kept between runs: read when it was made for the same tensor data,
     * imatrix data and candidates (then nothing is measured), refused with QK_ERR_INVALID_ARG
     * when it was not, written when absent. Each tensor's errors are keyed by its own data and
     * imatrix entry (and those its sensitivity reads), which a run checks for the tensors it
     * reads: all of them, or a shard's part's; the model's key (names, shapes, types, pins, a
     * sample of every tensor's data, the imatrix's entry sizes) is checked whole. NULL: none. */
    const char *state_file;
    /* With a size target, n >= 2: also the curve of total error against size that the target's
     * allocation traces over the reachable range (n budgets evenly spaced from the smallest to
     * the largest reachable total, plus the target's own and each preset's size), and every
     * quantized preset's point from the same measurements (qk_model_result_curve,
     * qk_model_result_preset). The presets' types that are no candidate are measured too (they
     * never enter the allocation; the state file does not keep them). 0: none. */
    int target_curve;

    /* One part of a sharded run (qkern quantize --shard I/N): shard_count > 0 (at most 65535)
     * plans the whole model as a single run would, splits its tensors in output order into
     * shard_count contiguous ranges of about equal output bytes (the same split in every process,
     * from the plan alone), and writes only range shard_index (1-based) as part shard_index of
     * llama.cpp's split GGUF: OUT-0000I-of-0000N.gguf with split.no, split.count and
     * split.tensors.count, the model's metadata in part 1 only, as gguf-split writes them. The
     * parts' tensors are the single run's, byte for byte and in its order; the result lists the
     * part's. Not with keep_split or split_max_bytes (QK_ERR_INVALID_ARG).
     * With a size target, in two phases around qk_model_state_merge (no target_curve):
     * 1. dry_run with a state_file measures the errors of part shard_index's tensors only (split
     *    by input bytes, since the types are not chosen yet) into state_file, which then holds
     *    the whole matrix with the other tensors' rows unmeasured, and stops: no allocation, the
     *    result lists those tensors as planned and totals.matrix_part is set. A state_file that
     *    is complete already makes it a dry run of phase 2 instead.
     * 2. with the merged, complete state_file: nothing is measured; the allocation is decided
     *    over the whole model (the same in every process) and the part written as above, split
     *    by the chosen types' output bytes. Without a complete state_file: QK_ERR_INVALID_ARG.
     * 0: the whole model. */
    int shard_index, shard_count;

    /* Resumable output (qkern quantize --resume), for long runs that may be killed: non-zero keeps
     * each output part's temporary (OUT.tmp.qkern) when the run fails or is stopped by a signal,
     * with a journal beside it (OUT.tmp.qkern.journal) that records each tensor once its bytes are
     * on the disk. A later run with resume set and the same input, imatrix, options and library
     * version then checks the recorded tensors' bytes in the temporary, keeps those that match
     * and writes the rest: the file is byte for byte the one an uninterrupted run writes. A
     * journal of another run (anything that changes the output differs) is ignored and the part
     * written from the start; each case is named in qk_model_result_notes. The journal is removed
     * when the output is committed. 0: a stopped run leaves nothing, and a later run replaces
     * any temporary and journal it finds. */
    int resume;

    /* Host memory (qkern quantize --mem-limit): >0 sizes the streaming steps so that the run's
     * own buffers (step buffers, pinned queue buffers, the input pages of the steps in flight,
     * the writer's buffer) and a margin for the rest of the process fit in this many bytes,
     * whatever the model's size; QK_ERR_INVALID_ARG when the model's widest row cannot fit (the
     * message gives the least that does). The same bytes as without. 0: steps of chunk_bytes. */
    uint64_t mem_limit_bytes;

    /* More devices for the data pass (qkern quantize --device cuda:0,cuda:1 / cuda:all): n_extra_contexts
     * further contexts, each on its own device, beside ctx. One worker thread per context (ctx's
     * first) converts steps of the converted tensors (chunk_bytes of input each), handed out in output
     * order to whichever worker is free, so a faster device simply takes more of them; the calling
     * thread is the single reader of copied tensors and the single writer, writing every step in
     * output order as soon as it is ready. Shared by the workers: the mapped input, the imatrix, the
     * plan and the output files; each has its own step buffers (host memory: mem_limit_bytes covers
     * them all, with smaller steps) and its context's device memory. A size target's error matrix is
     * measured on ctx alone. Every device gives the cpu reference's bytes, so the output does not
     * depend on the devices, their number or who converted which step; qk_model_result_device says
     * who did what; qk_model_stats then holds the calling thread's stages (the copied tensors' reads,
     * every write, and as quantize its wait for the workers' steps, bytes: their input). The contexts
     * must be distinct, not NULL and not ctx (else QK_ERR_INVALID_ARG),
     * and must not be used elsewhere during the call. A failure on any of them stops all and is
     * reported, with its message, on ctx; no output file is then left. NULL / 0: ctx alone. */
    qk_context *const *extra_contexts;
    size_t n_extra_contexts;
} qk_model_quantize_desc;

QK_API qk_model_quantize_desc qk_model_quantize_default_desc(void);

/* The candidates of a size target when target_types is NULL: writes at most `max` qk_types to
 * types, returns how many there are. */
QK_API size_t qk_model_target_default_types(int *types, size_t max);

/* Combines the state files of a sharded size target's first phase (desc.shard_count, dry_run,
 * state_file: each holds one part's rows of the error matrix) into one complete state file,
 * written atomically under `output`, which a sharded run's second phase (or a single run) reads.
 * inputs  n_inputs state files of the same model, imatrix data, pins and candidates.
 * measured optional: receives the number of tensors whose errors the merged file holds.
 * Fails with QK_ERR_INVALID_ARG (qk_last_error(NULL) names the files) when a file is missing,
 * not a state file or damaged, when the files were made for another model (its key: see
 * state_file) or other candidates,
 * when two of them hold the same tensor's errors, or when a tensor's errors are in none;
 * `output` is then not written. */
QK_API qk_status qk_model_state_merge(const char *output, const char *const *inputs, size_t n_inputs, size_t *measured);

/* One tensor of a quantization's result (also of a dry run or a plan), in output order. */
typedef struct qk_model_tensor {
    char name[QK_GGUF_MAX_NAME + 1];
    qk_type src_type, type; /* as read, as written */
    int n_dims;
    int64_t ne[QK_GGUF_MAX_DIMS]; /* innermost first; absent dimensions are 1 */
    uint64_t src_bytes, bytes;
    qk_plan_reason reason;
    int converted;  /* 1 if its data went through quantize/convert, 0 if copied */
    int imatrix;    /* 1 if imatrix data weighted it */
    int split;      /* the output file it is in (0-based) */
    double seconds; /* wall time spent on it */
    /* With measure_error: the error of the written tensor against the input, weighted by the
     * imatrix (uniform weights without one): sqrt(sum w (x - q)^2 / sum w), and the same relative
     * to sqrt(sum w x^2 / sum w). Negative when not measured. */
    double rmse, rel_rmse;
    qk_type planned_type; /* reason QK_PLAN_FALLBACK: the type chosen before the fallback; else type */
    /* With a size target: the chosen type's error over the whole tensor, target_sensitivity x
     * sum w (x - q)^2 (with the imatrix's means, sum (w - a^2) (x - q)^2 + each row's
     * (sum a (x - q))^2); 0 for a pinned tensor, which the target does not measure; negative
     * otherwise. */
    double target_error;
    /* With a size target: the factor its errors were multiplied by, the expected squared error
     * that a unit of its output error causes in the residual stream (1 for a tensor that writes
     * into it; for ffn_up/gate the gain through the block's ffn_down, for attn_v through
     * attn_output, from the weights and the imatrix; 1 / rows for a token embedding without
     * imatrix data). Negative for a pinned tensor, which the target does not measure, and in a
     * sharded target's first phase for the other parts' tensors. */
    double target_sensitivity;
} qk_model_tensor;

/* The totals of a result. */
typedef struct qk_model_totals {
    size_t n_tensors;
    int n_splits;                 /* output files */
    uint64_t in_bytes, out_bytes; /* tensor data */
    uint64_t in_weights;          /* elements of all tensors */
    uint64_t quantized_weights;   /* elements of the converted tensors */
    uint64_t out_file_bytes;      /* of all output files, headers included */
    double seconds;
    int imatrix_entries; /* entries of the imatrix file after the filters, or -1 without one */
    size_t in_tensors;   /* tensors of the input: n_tensors plus those pruned (prune_layers) */
    /* With a size target (else all 0): the budget in tensor data bytes, the range of totals
     * reachable with the candidates, the chosen mixture's total error, the preset's own mixture's
     * total error from the same measurements (negative where a preset type was no candidate and
     * no curve, desc.target_curve, measured it),
     * the seconds spent measuring, and 1 when the errors came from the state file instead. */
    uint64_t target_budget, target_min_bytes, target_max_bytes;
    double target_error, preset_error;
    double matrix_seconds;
    int matrix_from_state;
    /* A sharded size target's first phase (desc.shard_count with dry_run and state_file): 1 when
     * this run stopped after putting its part's errors into the state file (target_budget and
     * the mixture fields are then 0); matrix_known of matrix_free, the tensors the target chooses
     * for in the whole model, have their errors in the file now. Else all 0. */
    int matrix_part;
    size_t matrix_known, matrix_free;
} qk_model_totals;

typedef struct qk_model_result qk_model_result;

/* Quantizes desc->input into desc->output on ctx's device, tensor by tensor, in chunks that
 * fit the device: llama-quantize's plan and metadata, qkern's kernels. The output appears under
 * its name only when complete (all its files, for split output); on any failure or
 * cancellation no output file exists and *result is NULL. On success *result (release it with
 * qk_model_result_free) lists every tensor. The bytes written do not depend on the chunk
 * size or the thread count.
 * Fails with QK_ERR_INVALID_ARG for a bad desc (unknown preset, bad regex, include and exclude
 * together, keep_split with split_max_bytes, an output that is the input or the imatrix by any
 * name), QK_ERR_IO / QK_ERR_FORMAT for a file that cannot be read or written, QK_ERR_TYPE for
 * an already-quantized input without allow_requantize, QK_ERR_NEEDS_IMATRIX for a type that
 * needs imatrix data it lacks, QK_ERR_VALUE on a NaN/Inf weight (the message names tensor,
 * row and column), QK_ERR_IO with "interrupted" when desc->cancel said so. */
QK_API qk_status qk_model_quantize(qk_context *ctx, const qk_model_quantize_desc *desc, qk_model_result **result);

/* A model described in memory, for qk_model_plan: the facts the mixture rules read (from the
 * GGUF metadata <arch>.block_count, .attention.head_count, .attention.head_count_kv,
 * .expert_count) and its tensors in file order. */
typedef struct qk_tensor_shape {
    const char *name;
    qk_type type; /* its current type */
    int n_dims;
    int64_t ne[QK_GGUF_MAX_DIMS]; /* unused dimensions are 1 */
} qk_tensor_shape;

typedef struct qk_model_plan_desc {
    size_t struct_size; /* sizeof(qk_model_plan_desc): set by qk_model_plan_default_desc */
    const char *arch;   /* general.architecture, e.g. "qwen35moe" */
    /* n_head_kv and n_expert are 0 where the model has none */
    int64_t n_layer, n_head, n_head_kv, n_expert;
    const qk_tensor_shape *tensors;
    size_t n_tensors;
    int has_imatrix; /* plan as with an imatrix (some rules depend on it) */
} qk_model_plan_desc;

QK_API qk_model_plan_desc qk_model_plan_default_desc(void);

/* What qk_model_quantize would make of a model without reading or writing a file: the recipe
 * fields of `recipe` (preset, overrides, output/token types, pure, leave_output_tensor,
 * allow_requantize; the file fields are not read) applied to `model`. *result lists the
 * tensors in output order with their types and reasons (no imatrix matching, no error
 * measured). Fails, message in qk_last_error(NULL), as qk_model_quantize does on a bad recipe,
 * with QK_ERR_SHAPE for a tensor no type can hold. */
QK_API qk_status qk_model_plan(const qk_model_quantize_desc *recipe, const qk_model_plan_desc *model,
                               qk_model_result **result);

/* One mixture of a size target's curve, or a preset's: its tensor data bytes (pinned tensors
 * included), bits per weight (8 * bytes / totals.in_weights) and total error sum w (x - q)^2,
 * from the error matrix the target chose by. */
typedef struct qk_model_curve_point {
    uint64_t bytes;
    double bpw;
    double error;
} qk_model_curve_point;

/* A preset's place beside the curve (desc.target_curve). */
typedef struct qk_model_preset_point {
    const qk_preset *preset;
    int evaluated;       /* 1: point is its mixture's; 0: left out, `why` says why */
    int candidates_only; /* 1: every tensor the target chooses for gets one of the candidates
                            here, so the allocation could have chosen this mixture */
    qk_model_curve_point point;
    double allocation_error; /* the target's allocation for a budget of point.bytes; negative
                                outside the reachable range or when not evaluated */
    char why[200];
} qk_model_preset_point;

/* The curve (desc.target_curve), ascending in bytes and strictly descending in error: the
 * allocations of every budget solved, less those another one beats with no more bytes. Count
 * 0 without a curve; point i valid until the result is freed (NULL beyond the count). */
QK_API size_t qk_model_result_curve_count(const qk_model_result *r);
QK_API const qk_model_curve_point *qk_model_result_curve(const qk_model_result *r, size_t i);
/* Every preset that quantizes (not F32/F16/BF16/COPY, not the aliases), in qk_preset_at order. */
QK_API size_t qk_model_result_preset_count(const qk_model_result *r);
QK_API const qk_model_preset_point *qk_model_result_preset(const qk_model_result *r, size_t i);

/* A result's tensors: count, then row i (0 <= i < count; NULL beyond), valid until the result
 * is freed. */
QK_API size_t qk_model_result_count(const qk_model_result *r);
QK_API const qk_model_tensor *qk_model_result_tensor(const qk_model_result *r, size_t i);
QK_API const qk_model_totals *qk_model_result_totals(const qk_model_result *r);
/* Informational lines, '\n'-terminated, e.g. tensors quantized without imatrix data; "" if none. */
QK_API const char *qk_model_result_notes(const qk_model_result *r);
/* NULL is ignored. */
QK_API void qk_model_result_free(qk_model_result *r);

/* One stage of a quantization's data pass: the wall seconds the calling thread spent in it and
 * the bytes it handled (bytes / seconds is its throughput). */
typedef struct qk_model_stage_stats {
    double seconds;
    uint64_t bytes;
} qk_model_stage_stats;

/* Where a quantization's wall time went, so that a user sees whether the disk, the conversion or
 * the writing bounds a run. The stages follow one another on the calling thread, so their
 * seconds add up to at most wall_seconds; the rest is opening the files, planning (a size
 * target's error matrix included) and writing the headers. Always collected: a few clock
 * readings per step of up to 64 MiB cost nothing measurable, and a run is not repeated to get
 * them. Every stage is 0 for a dry run and for qk_model_plan.
 *   read      the input's bytes brought into memory: the page faults of the mapped file (a first
 *             pass, one load a page, over each step's source) or the copy of a queued step into
 *             pinned memory. Bytes: of the input read (tensors kept by desc.resume are not).
 *   convert   conversion on the host before quantizing: an already-quantized input dequantized
 *             to f32 (requantizing). f16/bf16 are widened inside the quantize call. Bytes: source.
 *   quantize  the qk_quantize calls; where the device has queues, queueing each step and then
 *             waiting for it: the quantize time the overlap with reading and writing did not
 *             hide. Bytes: their input. On a device with its own memory this is host-to-device
 *             copy, kernel and device-to-host copy together; qk_model_result_device tells them
 *             apart, in the device's time.
 *   measure   the error measurement (desc.measure_error). Bytes: source measured.
 *   write     the bytes handed to the output writer, its flushes, and closing, syncing and
 *             renaming the files. Bytes: tensor data written (headers excluded). */
typedef struct qk_model_stats {
    double wall_seconds; /* the whole call, as totals.seconds */
    qk_model_stage_stats read, convert, quantize, measure, write;
} qk_model_stats;

/* Copies r's time split into *stats. Fails with QK_ERR_INVALID_ARG if either is NULL. */
QK_API qk_status qk_model_result_stats(const qk_model_result *r, qk_model_stats *stats);

/* What one device of a quantization's data pass did: ctx's, then desc.extra_contexts' in their order
 * (one row for a run on ctx alone). Its worker's busy seconds (reading its steps' input, converting,
 * quantizing, measuring) overlap the other workers' and the writer's, so they are no share of
 * qk_model_stats' stages. All 0 for a dry run. */
typedef struct qk_model_device_stats {
    char device[32]; /* the context's qk_device_info.id: "cpu", "cuda:0", "vulkan:1" */
    uint64_t steps;  /* steps it converted */
    uint64_t bytes;  /* their input bytes */
    double seconds;  /* the time its worker was busy with them */
    /* Of the device's own time (0 on the cpu, which quantizes in host memory): copies of the input
     * (and imatrix) from host to device memory, its kernels (quantize, and the error measurement's
     * with desc.measure_error), copies of the results back; bytes / seconds is a copy's throughput.
     * Timed by the device's events where steps overlap (queued), else around each synchronous
     * call. They overlap the host's stages of qk_model_stats. */
    double h2d_seconds, kernel_seconds, d2h_seconds;
    uint64_t h2d_bytes, d2h_bytes;
} qk_model_device_stats;

/* The devices of a result: count (0 for qk_model_plan's), then row i (NULL beyond), valid until the
 * result is freed. */
QK_API size_t qk_model_result_device_count(const qk_model_result *r);
QK_API const qk_model_device_stats *qk_model_result_device(const qk_model_result *r, size_t i);

/* ---- reading GGUF files ------------------------------------------------------------------- */

typedef enum qk_gguf_vtype {
    QK_GGUF_UINT8 = 0,
    QK_GGUF_INT8 = 1,
    QK_GGUF_UINT16 = 2,
    QK_GGUF_INT16 = 3,
    QK_GGUF_UINT32 = 4,
    QK_GGUF_INT32 = 5,
    QK_GGUF_FLOAT32 = 6,
    QK_GGUF_BOOL = 7,
    QK_GGUF_STRING = 8,
    QK_GGUF_ARRAY = 9,
    QK_GGUF_UINT64 = 10,
    QK_GGUF_INT64 = 11,
    QK_GGUF_FLOAT64 = 12,
    QK_GGUF_VTYPE_COUNT
} qk_gguf_vtype;

/* A tensor of an open file. */
typedef struct qk_gguf_tensor {
    char name[QK_GGUF_MAX_NAME + 1];
    qk_type type;
    int n_dims;                   /* as stored (1..4) */
    int64_t ne[QK_GGUF_MAX_DIMS]; /* innermost first; absent dims are 1 */
    uint64_t offset;              /* within its file's data section */
    uint64_t bytes;               /* qk_type_row_bytes(type, ne[0]) * ne[1] * ne[2] * ne[3] */
    int split;                    /* the file it is in (0 for a single file) */
    const unsigned char *data;    /* its bytes, memory-mapped */
} qk_gguf_tensor;

typedef struct qk_gguf qk_gguf;

/* Opens a GGUF file by memory-mapping it, after checking every count, size and offset against
 * the file. A name of the form PREFIX-00001-of-0000N.gguf opens all N parts: the tensors of
 * every part in order, the metadata of the first. QK_ERR_IO if a file cannot be opened or
 * mapped, QK_ERR_FORMAT if one is malformed, QK_ERR_TYPE for a tensor type qkern does not know;
 * the message (qk_last_error(NULL)) names the file and what was wrong. */
QK_API qk_status qk_gguf_open(const char *path, qk_gguf **out);
/* NULL is ignored. The tensors' data pointers die with the handle. */
QK_API void qk_gguf_close(qk_gguf *g);

QK_API uint32_t qk_gguf_version(const qk_gguf *g);
QK_API size_t qk_gguf_alignment(const qk_gguf *g);
QK_API int qk_gguf_split_count(const qk_gguf *g);
/* Bytes of the file(s) on disk. */
QK_API uint64_t qk_gguf_file_bytes(const qk_gguf *g);

/* Metadata pair i, 0 <= i < qk_gguf_kv_count(g): its key (NULL beyond), its type, and a short
 * printable form of its value into buf ("3", "llama"; for an array its count, element type and
 * first elements), cut to fit and always NUL-terminated. */
QK_API size_t qk_gguf_kv_count(const qk_gguf *g);
QK_API const char *qk_gguf_kv_key(const qk_gguf *g, size_t i);
QK_API qk_gguf_vtype qk_gguf_kv_type(const qk_gguf *g, size_t i);
QK_API void qk_gguf_kv_describe(const qk_gguf *g, size_t i, char *buf, size_t buf_len);
/* "UINT32", "STRING", "ARRAY", ... */
QK_API const char *qk_gguf_vtype_name(qk_gguf_vtype t);
/* The integer at `key` (an integer array: its first element), or `fallback` when absent or not
 * an integer. */
QK_API int64_t qk_gguf_get_int(const qk_gguf *g, const char *key, int64_t fallback);
/* A copy of the string at `key` into buf (cut to fit, NUL-terminated); buf, or NULL if the key
 * is absent or not a string. */
QK_API const char *qk_gguf_get_string(const qk_gguf *g, const char *key, char *buf, size_t buf_len);

/* Tensor i in file order (NULL beyond), or by name (NULL if none); valid while g is open. */
QK_API size_t qk_gguf_tensor_count(const qk_gguf *g);
QK_API const qk_gguf_tensor *qk_gguf_tensor_at(const qk_gguf *g, size_t i);
QK_API const qk_gguf_tensor *qk_gguf_find_tensor(const qk_gguf *g, const char *name);

/* ---- writing GGUF files ------------------------------------------------------------------- */

/* A streaming writer: metadata and tensor infos first, then the tensors' data in order. The file
 * is written under a temporary name beside `path` and renamed into place by finish, so `path`
 * only ever holds a complete file; abort, free or any failure removes the temporary file.
 * Errors name the file or key in qk_last_error(NULL). */
typedef struct qk_gguf_writer qk_gguf_writer;

QK_API qk_status qk_gguf_writer_create(qk_gguf_writer **out);
/* Releases the writer; a started, unfinished file is removed. NULL is ignored. */
QK_API void qk_gguf_writer_free(qk_gguf_writer *w);

/* Metadata pairs, in the order set (setting a key again moves it to the end, as ggml does). */
QK_API qk_status qk_gguf_writer_set_string(qk_gguf_writer *w, const char *key, const char *s);
QK_API qk_status qk_gguf_writer_set_u32(qk_gguf_writer *w, const char *key, uint32_t v);
QK_API qk_status qk_gguf_writer_set_i32(qk_gguf_writer *w, const char *key, int32_t v);
QK_API qk_status qk_gguf_writer_set_f32(qk_gguf_writer *w, const char *key, float v);
QK_API qk_status qk_gguf_writer_set_bool(qk_gguf_writer *w, const char *key, int v);
/* An array of `count` fixed-size elements of type `elem` (not STRING or ARRAY) at `elems`. */
QK_API qk_status qk_gguf_writer_set_array(qk_gguf_writer *w, const char *key, qk_gguf_vtype elem, const void *elems,
                                          uint64_t count);
QK_API qk_status qk_gguf_writer_set_string_array(qk_gguf_writer *w, const char *key, const char *const *s,
                                                 uint64_t count);

/* Adds a tensor: ne has n_dims (1..4) entries; trailing dimensions of 1 are trimmed as ggml does.
 * Checks the name (<= QK_GGUF_MAX_NAME bytes, unique), the type, ne[0] against its block size,
 * and sizes for overflow. */
QK_API qk_status qk_gguf_writer_add_tensor(qk_gguf_writer *w, const char *name, qk_type type, int n_dims,
                                           const int64_t *ne);
/* Bytes of tensor i's data (without padding), and of the whole file as it will be written. */
QK_API uint64_t qk_gguf_writer_tensor_bytes(const qk_gguf_writer *w, size_t i);
QK_API uint64_t qk_gguf_writer_file_bytes(const qk_gguf_writer *w);

/* Creates the temporary file and writes the header, metadata and tensor infos; nothing can be
 * added afterwards. */
QK_API qk_status qk_gguf_writer_begin(qk_gguf_writer *w, const char *path);
/* Appends the next `bytes` of tensor data (little-endian, as GGUF stores it). Tensors come in
 * the order added, each with exactly its size in any number of calls; padding is automatic. */
QK_API qk_status qk_gguf_writer_write(qk_gguf_writer *w, const void *data, size_t bytes);
/* Checks that every tensor got all its bytes, syncs, and renames the file into place. */
QK_API qk_status qk_gguf_writer_finish(qk_gguf_writer *w);
/* Removes the temporary file; the writer can only be freed afterwards. */
QK_API void qk_gguf_writer_abort(qk_gguf_writer *w);
/* Removes the temporary file of every writer in this process that has begun and not yet
 * renamed its file into place (qk_model_quantize's outputs included); returns how many.
 * Async-signal-safe: meant for a handler of SIGINT, SIGTERM and the like that then ends the
 * process; the writers' files are gone, so they must not be used again. A writer blocks signals
 * while it creates and records its file, so a signal handled on that thread finds it; block the
 * handled signals around qk_context_create too, so that the backends' threads leave them to
 * the threads that write. The temporary is
 * PATH.tmp.qkern, exclusively locked while written: a second writer of the same PATH fails at
 * begin with QK_ERR_IO ("already being written by another process"). */
QK_API int qk_remove_partial_outputs(void);

/* ---- writing importance matrices ---------------------------------------------------------- */

/* One weight tensor's importance: n_mat matrices (the experts of a 3D expert stack, else 1) of
 * `cols` mean squared activations each, and per matrix the number of rows (tokens) they were
 * collected over. */
typedef struct qk_imatrix_entry_desc {
    const char *name; /* the weight tensor's name, e.g. "blk.3.ffn_down_exps.weight" */
    int64_t n_mat, cols;
    const float *values; /* n_mat * cols, finite and >= 0 */
    const float *counts; /* n_mat counts (0: a matrix no token reached; it reads back as 1.0),
                            or NULL for chunk_count * chunk_size everywhere */
} qk_imatrix_entry_desc;

typedef struct qk_imatrix_write_desc {
    size_t struct_size; /* sizeof(qk_imatrix_write_desc): set by qk_imatrix_write_default_desc */
    const qk_imatrix_entry_desc *entries;
    size_t n_entries;
    const char *dataset; /* the calibration data's name, or NULL */
    int64_t chunk_count, chunk_size;
    int legacy; /* 0: llama-imatrix's GGUF form; 1: the legacy .dat form (no counts) */
    /* Mean activations, written as `<name>.in_sum` (GGUF form only): n_entries arrays, entry i's
     * holding n_mat * cols finite values laid out as its values; or NULL for none. A size target
     * (qk_model_quantize_desc.target_bpw) reads them for its error's bias term. A caller built
     * before this field passes the shorter struct_size and writes no means. */
    const float *const *means;
} qk_imatrix_write_desc;

QK_API qk_imatrix_write_desc qk_imatrix_write_default_desc(void);

/* Writes an importance matrix file that llama-quantize and qk_model_quantize read, entries sorted
 * by name, through a temporary file renamed into place. Fails with QK_ERR_INVALID_ARG for no
 * entries, duplicate or over-long names (GGUF: 63 bytes with ".in_sum2"), counts given for some
 * entries and not others, means with the legacy form; QK_ERR_VALUE for a non-finite or negative
 * value or count, a non-finite mean; QK_ERR_IO. */
QK_API qk_status qk_imatrix_write(const char *path, const qk_imatrix_write_desc *desc);

#ifdef __cplusplus
}
#endif

#endif
