/* The file-to-file path of `qkern quantize`: a GGUF model (one file or split) in, a quantized
 * GGUF model out, with llama-quantize's plan, imatrix matching and metadata. Tensors are
 * streamed from the mapped input through the context's device in row chunks, so a model
 * larger than RAM works; where the backend has queues, two chunks are in flight, one read and
 * written by the host while the device converts the other. The output appears under its name
 * only when it is complete. */
#ifndef QK_MODEL_QUANTIZE_H
#define QK_MODEL_QUANTIZE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "plan.h"
#include "qkern.h"

/* What happened to one tensor (also the dry-run plan). */
typedef struct qk_model_tensor {
    char name[QK_GGUF_MAX_NAME + 1];
    qk_type src_type, type;
    int n_dims;
    int64_t ne[4];
    uint64_t src_bytes, bytes;
    qk_plan_reason reason;
    int converted;  /* 1 if its data went through quantize/convert, 0 if copied */
    int imatrix;    /* 1 if imatrix data weighted it */
    int split;      /* output file index */
    double seconds; /* wall time spent on it */
    /* With measure_error: error of the written tensor against the input, weighted by the
     * imatrix (uniform weights without one): sqrt(sum w (x - q)^2 / sum w) and the same
     * relative to sqrt(sum w x^2 / sum w). Negative when not measured. */
    double rmse, rel_rmse;
} qk_model_tensor;

typedef struct qk_model_progress {
    size_t tensor, n_tensors; /* tensor being processed (0-based) */
    const char *name;
    uint64_t bytes_done, bytes_total; /* input bytes */
    double seconds;                   /* since the start of the data pass */
    int tensor_done;                  /* 1 on the last call for a tensor */
} qk_model_progress;

typedef struct qk_model_quantize_params {
    const char *input, *output;
    qk_plan_options plan; /* plan.ftype required; plan.has_imatrix is set from imatrix_path */
    const char *imatrix_path;
    const char *const *include_weights; /* --include-weights substrings */
    size_t n_include;
    const char *const *exclude_weights; /* --exclude-weights substrings */
    size_t n_exclude;
    int keep_split;                /* one output part per input part */
    uint64_t split_max_bytes;      /* start a new output part before it would exceed this; 0: no */
    int dry_run;                   /* plan only: fill the result, write nothing */
    int measure_error;             /* fill rmse/rel_rmse (costs a dequantize pass) */
    size_t chunk_bytes;            /* input bytes per step; 0: 64 MiB */
    int no_overlap;                /* 1: every step read, converted and written before the next,
                                      even where the device could overlap them (same output;
                                      for tests and measurements) */
    volatile sig_atomic_t *cancel; /* polled between chunks; non-zero aborts with QK_ERR_IO */
    void (*progress)(void *user, const qk_model_progress *p);
    void *user;
} qk_model_quantize_params;

typedef struct qk_model_quantize_result {
    qk_model_tensor *tensors; /* in output order */
    size_t n_tensors;
    int n_splits;
    uint64_t in_bytes, out_bytes; /* tensor data */
    uint64_t in_weights;          /* elements of all tensors */
    uint64_t quantized_weights;   /* elements of the converted tensors */
    uint64_t out_file_bytes;      /* of all output files, headers included */
    double seconds;
    int imatrix_entries; /* entries in the imatrix file (after filters), or -1 */
    char notes[1024];    /* informational lines ('\n'-separated), e.g. tensors quantized
                            without imatrix data */
} qk_model_quantize_result;

void qk_model_quantize_params_init(qk_model_quantize_params *p);

/* Runs the whole path on ctx's device. On failure the message (qk_last_error(ctx)) names the
 * file, tensor, row and column as far as they apply, and no output file exists. The result
 * is filled on success (and for a dry run); release it with qk_model_quantize_result_free.
 * An output (any part) that is the input (any part) or the imatrix file, by whatever name, is
 * refused with QK_ERR_INVALID_ARG before anything is created. */
qk_status qk_model_quantize(qk_context *ctx, const qk_model_quantize_params *p, qk_model_quantize_result *res);
void qk_model_quantize_result_free(qk_model_quantize_result *res);

#endif
