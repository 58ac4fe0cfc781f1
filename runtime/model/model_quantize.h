/* The file-to-file path of `qkern quantize`: a GGUF model (one file or split) in, a quantized
 * GGUF model out, with llama-quantize's plan, imatrix matching and metadata. Tensors are
 * streamed from the mapped input through the context's device in row chunks, so a model
 * larger than RAM works; where the backend has queues, two chunks are in flight, one read and
 * written by the host while the device converts the other. The output appears under its name
 * only when it is complete.
 * qkern.h's qk_model_quantize (model_api.c) is the public face of qk_model_quantize_run; the
 * per-tensor row and the progress record (qk_model_tensor, qk_model_progress) are qkern.h's. */
#ifndef QK_MODEL_QUANTIZE_H
#define QK_MODEL_QUANTIZE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "plan.h"
#include "qkern.h"

typedef struct qk_model_quantize_params {
    const char *input, *output;
    qk_plan_options plan; /* plan.ftype required; plan.has_imatrix is set from imatrix_path */
    const char *imatrix_path;
    const char *const *include_weights; /* --include-weights substrings */
    size_t n_include;
    const char *const *exclude_weights; /* --exclude-weights substrings */
    size_t n_exclude;
    const char *const *kv_overrides; /* --override-kv "KEY=TYPE:VALUE" texts */
    size_t n_kv_overrides;
    const int *prune_layers; /* --prune-layers block numbers */
    size_t n_prune_layers;
    int keep_split;           /* one output part per input part */
    uint64_t split_max_bytes; /* start a new output part before it would exceed this; 0: no */
    int shard_index;          /* shard_count > 0: write only part shard_index (1-based) of a split */
    int shard_count;          /* output of shard_count parts (shard.h's partition); 0: no shards */
    int dry_run;              /* plan only: fill the result, write nothing */
    int resume;               /* keep each part's temporary and journal when stopped, and continue
                                 from them (qkern.h's desc.resume) */
    int measure_error;        /* fill rmse/rel_rmse (costs a dequantize pass) */
    size_t chunk_bytes;       /* input bytes per step; 0: 64 MiB */
    uint64_t mem_limit;       /* >0: steps sized to keep host memory within it (qkern.h) */
    int no_overlap;           /* 1: every step read, converted and written before the next,
                                 even where the device could overlap them (same output;
                                 for tests and measurements) */
    double target_bpw;        /* > 0: a size target in bits per weight (qkern.h's desc) */
    uint64_t target_bytes;    /* > 0: a size target in tensor data bytes */
    const int *target_types;  /* candidates, or NULL: qk_model_target_default_types */
    size_t n_target_types;
    const char *state_file;        /* the error matrix's file, or NULL */
    int target_curve;              /* >= 2: the curve's evenly spaced budgets (qkern.h's desc) */
    volatile sig_atomic_t *cancel; /* polled between chunks; non-zero aborts with QK_ERR_IO */
    int (*cancel_fn)(void *user);  /* the same, asked of the caller; NULL: never */
    void (*progress)(void *user, const qk_model_progress *p);
    void *user;
    qk_context *const *extra_contexts; /* more devices for the data pass (qkern.h's desc); checked by
                                          the caller: distinct, not NULL, not the run's ctx */
    size_t n_extra_contexts;
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
    size_t in_tensors;   /* tensors of the input, pruned ones included */
    /* a size target's outcome (qkern.h's qk_model_totals), else 0 */
    uint64_t target_budget, target_min_bytes, target_max_bytes;
    double target_error, preset_error, matrix_seconds;
    int matrix_from_state;
    int matrix_part; /* qkern.h's qk_model_totals */
    size_t matrix_known, matrix_free;
    qk_model_curve_point *curve; /* with target_curve: qkern.h's qk_model_result_curve */
    size_t n_curve;
    qk_model_preset_point *presets;
    size_t n_presets;
    qk_model_stats stats;           /* where the time went (qkern.h's qk_model_result_stats) */
    qk_model_device_stats *devices; /* per context of the data pass, ctx's first (qkern.h) */
    size_t n_devices;
    char notes[1024]; /* informational lines ('\n'-separated), e.g. tensors quantized
                         without imatrix data */
} qk_model_quantize_result;

void qk_model_quantize_params_init(qk_model_quantize_params *p);

/* Runs the whole path on ctx's device, and on p->extra_contexts' beside it. On failure the message (qk_last_error(ctx))
 * names the file, tensor, row and column as far as they apply, and no output file exists. The result is filled on
 * success (and for a dry run); release it with qk_model_quantize_result_free. An output (any part) that is the input
 * (any part) or the imatrix file, by whatever name, is refused with QK_ERR_INVALID_ARG before anything is created. */
qk_status qk_model_quantize_run(qk_context *ctx, const qk_model_quantize_params *p, qk_model_quantize_result *res);
void qk_model_quantize_result_free(qk_model_quantize_result *res);

/* Checks one --override-kv text ("KEY=TYPE:VALUE"); QK_ERR_INVALID_ARG with the reason on ctx. */
qk_status qk_model_check_kv_override(qk_context *ctx, const char *text);

/* Fills row i of a result from the plan: the input tensor `src` (name, type, shape), the plan
 * entry's type and reason, the byte counts, and adds it to the totals. rmse and rel_rmse are set
 * to -1 (not measured). */
void qk_model_result_add_row(qk_model_quantize_result *res, const qk_plan_tensor *src, const qk_plan_entry *e);

#endif
