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
} synth_model_config;

typedef struct synth_model_params {
    synth_model_config cfg;
    char size_name[16]; /* goes into general.name */
    uint64_t seed;
    qk_type type; /* QK_TYPE_BF16 or QK_TYPE_F16 for the weight matrices */
} synth_model_params;

typedef struct synth_model_summary {
    uint64_t tensors, params, bytes; /* of the model file */
    uint64_t imatrix_entries;        /* 0 when no imatrix was written */
} synth_model_summary;

/* Fills *p for a named size: "tiny" (fast tests), "small" (the default) or "medium" (timing),
 * with seed 0 and type BF16. QK_ERR_INVALID_ARG for another name. */
qk_status synth_model_params_for_size(const char *size, synth_model_params *p);

/* Writes the model to model_path and, when imatrix_path is not NULL, its importance matrix.
 * Both files appear complete or not at all. `summary` may be NULL. Errors: the status and a
 * one-line message in qk_last_error(NULL). */
qk_status synth_model_write(const synth_model_params *p, const char *model_path, const char *imatrix_path,
                            synth_model_summary *summary);

#endif
