/* A generated model for demos and tests: a scaled-down Qwen3.5-style hybrid MoE with llama.cpp's
 * "qwen35moe" tensor names, shapes and metadata, written as a GGUF file in BF16 or F16, plus a
 * matching importance matrix in llama-imatrix's GGUF form.
 *
 * The weights are drawn, not trained, but with the statistics that make quantizers behave as on
 * real models: Gaussian rows scaled by 1/sqrt(fan_in) with per-row variation, a few heavy-tailed
 * outlier input columns per matrix, and importance values that are large on those same columns.
 * Same parameters and seed: the same bytes. */
#ifndef QK_SYNTH_MODEL_H
#define QK_SYNTH_MODEL_H

#include <stdint.h>

#include "qkern.h"

#define SYNTH_MODEL_ARCH "qwen35moe"

typedef struct synth_model_config {
    int64_t n_embd, n_layer, n_vocab, context_length;
    int64_t n_head, n_head_kv, head_dim;                   /* full-attention layers */
    int64_t n_expert, n_expert_used, n_ff_exp, n_ff_shexp; /* MoE FFN, every layer */
    /* linear-attention (gated delta net) layers: heads of K and V, their size, conv width */
    int64_t ssm_group_count, ssm_time_step_rank, ssm_state_size, ssm_conv_kernel;
    int64_t full_attention_interval; /* layer i is full attention when (i + 1) % interval == 0 */
    /* 1: the query projection also produces the attention output gate, twice the heads (Qwen3.5);
     * 0: a plain query (Qwen3). n_ff_shexp 0 means no shared expert; with interval 1 (no
     * linear-attention layer) the ssm_* sizes are unused and may be 0. */
    int64_t attn_output_gate;
} synth_model_config;

typedef struct synth_model_params {
    synth_model_config cfg;
    char size_name[16]; /* goes into general.name */
    uint64_t seed;
    qk_type type; /* QK_TYPE_BF16 or QK_TYPE_F16 for the weight matrices */
    int means;    /* 1: the imatrix also holds mean activations (`<name>.in_sum`) */
} synth_model_params;

typedef struct synth_model_summary {
    uint64_t tensors, params, bytes; /* of the model file */
    uint64_t imatrix_entries;        /* 0 when no imatrix was written */
} synth_model_summary;

/* Errors: every function below that returns a qk_status leaves a one-line message here (the
 * generator's own, or the library's when a library call failed). */
const char *synth_model_error(void);

/* Fills *p for a named size: "tiny" (fast tests), "small" (the default) or "medium" (timing),
 * with seed 0 and type BF16. QK_ERR_INVALID_ARG for another name. */
qk_status synth_model_params_for_size(const char *size, synth_model_params *p);

/* Writes the model to model_path and, when imatrix_path is not NULL, its importance matrix,
 * through the library's GGUF and imatrix writers. Both files appear complete or not at all.
 * `summary` may be NULL. */
qk_status synth_model_write(const synth_model_params *p, const char *model_path, const char *imatrix_path,
                            synth_model_summary *summary);

/* One tensor of the model, as the file would list it (no data). */
typedef struct synth_model_tensor {
    char name[64]; /* ggml's limit: 63 bytes and the terminator */
    qk_type type;
    int n_dims;
    int64_t ne[4]; /* unused dimensions are 1 */
} synth_model_tensor;

/* The tensor list of a model with this configuration and weight-matrix type (norms, router,
 * conv stay F32), in file order, without generating any value: *out (free() it) gets *n entries.
 * QK_ERR_INVALID_ARG for a configuration out of range. */
qk_status synth_model_tensors(const synth_model_config *cfg, qk_type weight_type, synth_model_tensor **out, size_t *n);

/* The layout of a real published model, for projections at full size (never generated: they are
 * tens of gigabytes). */
typedef struct synth_model_shape {
    const char *name;      /* "qwen3.5-35b-a3b", ... */
    const char *arch;      /* its llama.cpp architecture: "qwen35moe", "qwen3moe" */
    const char *published; /* its published total parameter count, e.g. "35e9" */
    synth_model_config cfg;
} synth_model_shape;

/* All named shapes; *count receives their number. */
const synth_model_shape *synth_model_shapes(size_t *count);
/* A shape by name, or NULL. */
const synth_model_shape *synth_model_shape_find(const char *name);

#endif
