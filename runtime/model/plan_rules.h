/* llama-quantize's per-tensor decisions, shared by plan.c (driver and presets) and
 * plan_rules.c (the rules themselves): which tensors may be quantized, their category, the
 * mixture rules with their running counters, and the shape fallbacks. FORMATS.md §11. */
#ifndef QK_PLAN_RULES_H
#define QK_PLAN_RULES_H

#include "plan.h"

/* llama_ftype ids the rules test. */
enum {
    QK_FT_ALL_F32 = 0,
    QK_FT_F16 = 1,
    QK_FT_Q4_0 = 2,
    QK_FT_Q4_1 = 3,
    QK_FT_Q8_0 = 7,
    QK_FT_Q5_0 = 8,
    QK_FT_Q5_1 = 9,
    QK_FT_Q2_K = 10,
    QK_FT_Q3_K_S = 11,
    QK_FT_Q3_K_M = 12,
    QK_FT_Q3_K_L = 13,
    QK_FT_Q4_K_S = 14,
    QK_FT_Q4_K_M = 15,
    QK_FT_Q5_K_S = 16,
    QK_FT_Q5_K_M = 17,
    QK_FT_Q6_K = 18,
    QK_FT_IQ2_XXS = 19,
    QK_FT_IQ2_XS = 20,
    QK_FT_Q2_K_S = 21,
    QK_FT_IQ3_XS = 22,
    QK_FT_IQ3_XXS = 23,
    QK_FT_IQ1_S = 24,
    QK_FT_IQ4_NL = 25,
    QK_FT_IQ3_S = 26,
    QK_FT_IQ3_M = 27,
    QK_FT_IQ2_S = 28,
    QK_FT_IQ2_M = 29,
    QK_FT_IQ4_XS = 30,
    QK_FT_IQ1_M = 31,
    QK_FT_BF16 = 32,
    QK_FT_TQ1_0 = 36,
    QK_FT_TQ2_0 = 37,
    QK_FT_MXFP4_MOE = 38,
    QK_FT_Q1_0 = 40,
    QK_FT_Q2_0 = 41,
};

typedef enum qk_plan_cat {
    QK_CAT_TOKEN_EMBD,
    QK_CAT_ATTN_Q,
    QK_CAT_ATTN_V,
    QK_CAT_ATTN_K,
    QK_CAT_ATTN_QKV,
    QK_CAT_ATTN_KV_B,
    QK_CAT_ATTN_OUT,
    QK_CAT_FFN_UP,
    QK_CAT_FFN_GATE,
    QK_CAT_FFN_DOWN,
    QK_CAT_OUTPUT,
    QK_CAT_OTHER,
} qk_plan_cat;

/* The counters and model facts the rules read; one per plan, tensors fed in processing order. */
typedef struct qk_plan_state {
    const qk_plan_model *model;
    const qk_plan_options *opt;
    int ftype; /* llama_ftype id */
    int n_attention_wv, i_attention_wv;
    int n_ffn_down, n_ffn_gate, n_ffn_up;
    int i_ffn_down, i_ffn_gate, i_ffn_up;
    int tied_embeddings; /* no output.weight in the model */
    int is_70b, is_falcon, is_bailingmoe3;
    int64_t n_gqa;
} qk_plan_state;

qk_plan_cat qk_plan_category(const char *name);
int qk_plan_cat_is_attn_v(qk_plan_cat c);
/* The layer number of a "blk.N." name the way sscanf("blk.%d.") reads it; 0 if none. */
int qk_plan_parse_layer(const char *name, int *layer);
/* ggml_n_dims: dimensions up to the last one larger than 1. */
int qk_plan_effective_dims(const qk_plan_tensor *t);
/* §11.2: may this tensor be converted at all (arch: general.architecture, or NULL). */
int qk_plan_allows_quantization(const qk_plan_options *opt, const char *arch, const qk_plan_tensor *t);
/* Fills the model facts and zeroes the counters. */
void qk_plan_state_init(qk_plan_state *st, const qk_plan_model *model, const qk_plan_options *opt);
/* §11.4: the mixture rules, starting from *type (the default type); advances the counters. */
qk_status qk_plan_mixture(qk_plan_state *st, const qk_plan_tensor *t, qk_plan_cat cat, qk_type *type);
/* §11.3 step 5: a type whose block divides ne[0]; a 32-block type that does not fit (and a
 * fallback that does not) becomes F16. */
qk_status qk_plan_fallback(const qk_plan_tensor *t, qk_type *type);

#endif
