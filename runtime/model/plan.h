/* Quantization plans: which type each tensor of a model gets, from a llama-quantize file type
 * (preset) and its per-tensor mixture rules, the user's overrides and the shape fallbacks.
 * Facts: docs/formats/FORMATS.md §11. Pure logic: no files, no devices. */
#ifndef QK_PLAN_H
#define QK_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "qkern.h"

/* A llama-quantize file type (preset), e.g. Q4_K_M: qkern.h's qk_preset, whose lookups are these. */
typedef qk_preset qk_ftype;

/* All presets in the order llama-quantize lists them. */
const qk_ftype *qk_ftypes(size_t *count);
/* A preset by name (case-insensitive; aliases Q3_K, Q4_K, Q5_K and COPY included), or NULL. */
const qk_ftype *qk_ftype_from_name(const char *name);
/* A preset by llama_ftype id, or NULL. Never an alias or COPY (id 0 is F32). */
const qk_ftype *qk_ftype_from_id(int id);

/* What the mixture rules need to know about the model (from its metadata). */
typedef struct qk_plan_model {
    const char *arch;  /* general.architecture ("qwen35moe", "falcon", ...) */
    int64_t n_layer;   /* <arch>.block_count */
    int64_t n_head;    /* <arch>.attention.head_count (first layer's when per-layer) */
    int64_t n_head_kv; /* <arch>.attention.head_count_kv (first layer's); 0 if none */
    int64_t n_expert;  /* <arch>.expert_count, 0 for a dense model */
} qk_plan_model;

/* --tensor-type REGEX=TYPE (qkern.h): the pattern is lower-cased as llama-quantize does, then
 * searched anywhere in the name. */
typedef qk_tensor_type_override qk_plan_override;

typedef struct qk_plan_options {
    const qk_ftype *ftype;
    int has_imatrix;                   /* an imatrix was given (some rules depend on it) */
    int pure;                          /* --pure: no mixture rules */
    int leave_output_tensor;           /* --leave-output-tensor */
    int allow_requantize;              /* --allow-requantize */
    int output_tensor_type;            /* --output-tensor-type, or -1 */
    int token_embedding_type;          /* --token-embedding-type, or -1 */
    const qk_plan_override *overrides; /* --tensor-type, first match wins */
    size_t n_overrides;
    int input_order; /* 1: process (and write) tensors in the input's order, as llama-quantize
                        does with --keep-split, rather than by layer and name */
} qk_plan_options;

/* One tensor of the input model (qkern.h's qk_tensor_shape). */
typedef qk_tensor_shape qk_plan_tensor;

typedef struct qk_plan_entry {
    size_t tensor; /* index into the input array */
    qk_type type;  /* the type it is written as */
    qk_plan_reason reason;
    qk_type planned; /* QK_PLAN_FALLBACK: the type chosen before the fallback; else `type` */
    int quantize;    /* 1 if its data are converted (type differs from the input's) */
} qk_plan_entry;

/* Plans a model: `entries` (n of them) receives the tensors in llama-quantize's processing
 * and output order (sorted by layer number parsed from "blk.N.", non-block tensors first,
 * then by name) with each one's type. Fails, message in qk_last_error(NULL), with
 * QK_ERR_INVALID_ARG on bad arguments (a bad regex, an unknown type, duplicate names, a MoE FFN
 * tensor without a valid "blk.N." layer), QK_ERR_TYPE on an already-quantized input that would
 * be converted without allow_requantize (or an input type qkern cannot read), QK_ERR_SHAPE on
 * a tensor whose ne[0] neither the chosen type nor its fallbacks can hold (also for a type
 * forced by --output-tensor-type / --token-embedding-type). Does not check imatrix needs:
 * see qk_plan_needs_imatrix. */
qk_status qk_plan_build(const qk_plan_model *model, const qk_plan_options *opt, const qk_plan_tensor *tensors, size_t n,
                        qk_plan_entry *entries);

/* llama.cpp's rule: targets IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS (and Q2_K in a
 * Q2_K_S file) need imatrix data, except token_embd/per_layer_token_embd/output. Applies to
 * tensors that are converted (entry.quantize); a tensor copied as it is needs nothing. */
int qk_plan_needs_imatrix(const qk_plan_options *opt, const char *tensor_name, qk_type type);

#endif
