/* llama-quantize's per-tensor rules (FORMATS.md §11.2-§11.4, checked against llama.cpp's
 * src/llama-quant.cpp): the quantizable-tensor filter, name categories, the mixture rules with
 * their running counters, and the shape fallbacks. Counters advance only where llama.cpp
 * advances them, so a --tensor-type match or --pure shifts the layer sets exactly as there. */
#include "plan_rules.h"
#include "formats.h"
#include "internal.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>

static int has(const char *name, const char *part) { return strstr(name, part) != NULL; }

int qk_plan_parse_layer(const char *name, int *layer) {
    if (strncmp(name, "blk.", 4) != 0) return 0;
    const char *p = name + 4;
    /* %d skips white space and takes a sign; the '.' after it is not needed for a match */
    while (isspace((unsigned char)*p)) p++;
    int neg = 0;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    if (!isdigit((unsigned char)*p)) return 0;
    long long v = 0;
    for (; isdigit((unsigned char)*p); p++)
        if (v <= INT_MAX) v = v * 10 + (*p - '0');
    if (v > INT_MAX) v = INT_MAX; /* out of range either way; only has to stay defined */
    *layer = neg ? -(int)v : (int)v;
    return 1;
}

int qk_plan_effective_dims(const qk_plan_tensor *t) {
    for (int i = t->n_dims - 1; i >= 1; i--)
        if (t->ne[i] > 1) return i + 1;
    return 1;
}

static int ends_with_weight(const char *name) {
    size_t len = strlen(name);
    /* llama.cpp tests rfind("weight") == size() - 6: for a 5-character name both sides are npos */
    if (len == 5) return 1;
    return len >= 6 && strcmp(name + len - 6, "weight") == 0;
}

/* Substrings that keep a tensor out of quantization: small, routing, positional or
 * multimodal tensors (llama.cpp's tensor_allows_quantization). */
static const char *const never_quantized[] = {
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
    "mm.a.code_embd",
};

/* GLM-5-next's hyper-connection, indexer and small state tensors stay as they are. */
static const char *const never_quantized_glm5_next[] = {
    "hc_",
    "indexer.attn_q_b",
    "indexer.attn_k",
    "indexer.proj",
    "indexer_compressor_gate",
    "indexer_compressor_ape",
    "ssm_f_a.weight",
    "ssm_f_b.weight",
    "ssm_g_a.weight",
    "ssm_g_b.weight",
    "ssm_beta.weight",
    "attn_kv_a_mqa.weight",
    "attn_k_b.weight",
    "attn_v_b.weight",
};

static int is_glm5_next(const char *arch) { return arch && strcmp(arch, "glm5-next") == 0; }

int qk_plan_allows_quantization(const qk_plan_options *opt, const char *arch, const qk_plan_tensor *t) {
    if (opt->ftype->only_copy) return 0;
    if (qk_plan_effective_dims(t) < 2) return 0;
    const char *name = t->name;
    if (!ends_with_weight(name)) return 0;
    if (opt->leave_output_tensor && strcmp(name, "output.weight") == 0) return 0;
    /* llama.cpp compares with the architecture's positional-embedding and token-type names,
     * which are these for every architecture that has such tensors */
    if (strcmp(name, "position_embd.weight") == 0 || strcmp(name, "token_types.weight") == 0) return 0;
    for (size_t i = 0; i < sizeof never_quantized / sizeof never_quantized[0]; i++)
        if (has(name, never_quantized[i])) return 0;
    for (size_t i = 0; is_glm5_next(arch) && i < sizeof never_quantized_glm5_next / sizeof never_quantized_glm5_next[0];
         i++)
        if (has(name, never_quantized_glm5_next[i])) return 0;
    return 1;
}

qk_plan_cat qk_plan_category(const char *name) {
    if (strcmp(name, "output.weight") == 0) return QK_CAT_OUTPUT;
    if (strcmp(name, "token_embd.weight") == 0 || strcmp(name, "per_layer_token_embd.weight") == 0)
        return QK_CAT_TOKEN_EMBD;
    if (has(name, "attn_qkv.weight")) return QK_CAT_ATTN_QKV;
    if (has(name, "attn_kv_b.weight")) return QK_CAT_ATTN_KV_B;
    if (has(name, "attn_v.weight")) return QK_CAT_ATTN_V;
    if (has(name, "attn_k.weight")) return QK_CAT_ATTN_K;
    if (has(name, "attn_q.weight")) return QK_CAT_ATTN_Q;
    if (has(name, "attn_output.weight")) return QK_CAT_ATTN_OUT;
    if (has(name, "ffn_up")) return QK_CAT_FFN_UP;
    if (has(name, "ffn_gate")) return QK_CAT_FFN_GATE;
    if (has(name, "ffn_down")) return QK_CAT_FFN_DOWN;
    return QK_CAT_OTHER;
}

int qk_plan_cat_is_attn_v(qk_plan_cat c) { return c == QK_CAT_ATTN_V || c == QK_CAT_ATTN_QKV || c == QK_CAT_ATTN_KV_B; }

/* llama.cpp's LLM_TYPE_70B, the only model size class the rules look at. FORMATS.md says
 * "80 layers, GQA"; the source's class also takes deci/qwen2 at 80 and jais2 at 68 layers. */
static int is_70b_class(const qk_plan_model *m, int64_t n_head_kv) {
    const char *a = m->arch ? m->arch : "";
    if (strcmp(a, "llama") == 0) return m->n_expert != 8 && m->n_layer == 80 && m->n_head != n_head_kv;
    if (strcmp(a, "deci") == 0 || strcmp(a, "qwen2") == 0) return m->n_layer == 80;
    if (strcmp(a, "jais2") == 0) return m->n_layer == 68;
    return 0;
}

void qk_plan_state_init(qk_plan_state *st, const qk_plan_model *model, const qk_plan_options *opt) {
    memset(st, 0, sizeof *st);
    st->model = model;
    st->opt = opt;
    st->ftype = opt->ftype->id;
    /* without a head_count_kv key llama.cpp uses head_count */
    int64_t n_head_kv = model->n_head_kv > 0 ? model->n_head_kv : model->n_head;
    st->n_gqa = n_head_kv > 0 ? model->n_head / n_head_kv : 0;
    st->is_70b = is_70b_class(model, n_head_kv);
    st->is_falcon = model->arch && strcmp(model->arch, "falcon") == 0;
    st->is_bailingmoe3 = model->arch && strcmp(model->arch, "bailingmoe3") == 0;
    /* FORMATS.md says "n = number of layers" and llama.cpp agrees: block_count, not a count of
     * ffn_* tensors, even when a layer holds both _exps and _shexp tensors */
    st->n_ffn_down = st->n_ffn_gate = st->n_ffn_up = (int)model->n_layer;
    st->tied_embeddings = 1;
}

static int use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static int ft_in(int ft, const int *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (list[i] == ft) return 1;
    return 0;
}
#define FT_IN(ft, ...) ft_in((ft), (const int[]){__VA_ARGS__}, sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

static int is_iq_low(int ft) {
    return FT_IN(ft, QK_FT_IQ2_XXS, QK_FT_IQ2_XS, QK_FT_IQ1_S, QK_FT_IQ2_S, QK_FT_IQ2_M, QK_FT_IQ1_M);
}

/* The FFN layer index: in a MoE model experts are not stored in layer order, so llama.cpp
 * reads the layer from the name; otherwise it is the running count of that category. */
static qk_status ffn_layer(const qk_plan_state *st, const char *name, int running, int n, int *i_layer) {
    if (st->model->n_expert <= 1) {
        *i_layer = running;
        return QK_OK;
    }
    int l = 0;
    if (!qk_plan_parse_layer(name, &l))
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "tensor %s: an FFN tensor of a MoE model without a \"blk.N.\" layer",
                       name);
    if (l < 0 || l >= n)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "tensor %s: layer %d is outside the model's %d blocks", name, l, n);
    *i_layer = l;
    return QK_OK;
}

static qk_type output_rule(const qk_plan_state *st, const qk_plan_tensor *t, qk_type type) {
    if (st->opt->output_tensor_type >= 0) return (qk_type)st->opt->output_tensor_type;
    int ft = st->ftype;
    const qk_format *f = qk_format_of(type);
    if (ft == QK_FT_MXFP4_MOE) return QK_TYPE_Q8_0;
    if (st->is_falcon || t->ne[0] % f->block_elems != 0) return QK_TYPE_Q8_0;
    if (FT_IN(ft, QK_FT_IQ2_XXS, QK_FT_IQ2_XS, QK_FT_IQ3_XXS, QK_FT_IQ1_S, QK_FT_IQ2_S, QK_FT_IQ2_M, QK_FT_IQ1_M))
        return QK_TYPE_Q5_K;
    return type == QK_TYPE_Q8_0 ? type : QK_TYPE_Q6_K;
}

static qk_type token_embd_rule(const qk_plan_state *st, qk_type type) {
    int ft = st->ftype;
    if (FT_IN(ft, QK_FT_IQ2_XXS, QK_FT_IQ2_XS, QK_FT_IQ1_S, QK_FT_IQ1_M)) return QK_TYPE_Q2_K;
    if (FT_IN(ft, QK_FT_IQ2_S, QK_FT_IQ2_M, QK_FT_IQ3_XXS)) return QK_TYPE_IQ3_S;
    if (FT_IN(ft, QK_FT_TQ1_0, QK_FT_TQ2_0, QK_FT_Q2_0)) return QK_TYPE_Q4_K;
    return type;
}

/* IQ2_XXS, IQ2_XS, IQ1_S, IQ2_S, IQ2_M, IQ1_M: a few categories get more bits, the rest
 * (ffn_gate/up, attn_q, ...) keep the default. */
static qk_type iq_low_rule(qk_plan_state *st, qk_plan_cat cat, qk_type type) {
    int ft = st->ftype;
    int64_t e = st->model->n_expert;
    int s_or_m = ft == QK_FT_IQ2_S || ft == QK_FT_IQ2_M;
    if (qk_plan_cat_is_attn_v(cat)) {
        type = st->n_gqa >= 4 || e >= 4 ? QK_TYPE_Q4_K : s_or_m ? QK_TYPE_IQ3_S : QK_TYPE_Q2_K;
        st->i_attention_wv++;
    } else if (e == 8 && cat == QK_CAT_ATTN_K) {
        type = QK_TYPE_Q4_K;
    } else if (cat == QK_CAT_FFN_DOWN) {
        /* a running count of ffn_down tensors against n_layer/8, even in a MoE model */
        if (st->i_ffn_down < st->n_ffn_down / 8) type = s_or_m ? QK_TYPE_IQ3_S : QK_TYPE_Q2_K;
        st->i_ffn_down++;
    } else if (cat == QK_CAT_ATTN_OUT) {
        if (e == 8)
            type = QK_TYPE_Q5_K;
        else if (ft == QK_FT_IQ1_S || ft == QK_FT_IQ1_M)
            type = QK_TYPE_IQ2_XXS;
        else if (s_or_m)
            type = QK_TYPE_IQ3_S;
    }
    return type;
}

/* attn_v, attn_qkv (linear-attention in-projections of hybrid models included) and attn_kv_b.
 * llama.cpp also has an attn_qkv-only rule, but this one catches attn_qkv first. */
static qk_type attn_v_rule(qk_plan_state *st, qk_type type) {
    int ft = st->ftype, gqa4 = st->n_gqa >= 4;
    int i = st->i_attention_wv, n = st->n_attention_wv;
    if (ft == QK_FT_Q2_K)
        type = gqa4 ? QK_TYPE_Q4_K : QK_TYPE_Q3_K;
    else if (ft == QK_FT_Q2_K_S)
        type = gqa4 ? QK_TYPE_Q4_K : type;
    else if (ft == QK_FT_IQ3_XXS)
        type = gqa4 ? QK_TYPE_Q4_K : st->opt->has_imatrix ? QK_TYPE_IQ3_XXS : QK_TYPE_IQ3_S;
    else if (ft == QK_FT_IQ3_XS || ft == QK_FT_IQ3_S)
        type = gqa4 ? QK_TYPE_Q4_K : type;
    else if (ft == QK_FT_IQ3_M)
        type = QK_TYPE_Q4_K;
    else if (ft == QK_FT_Q3_K_M)
        type = i < 2 ? QK_TYPE_Q5_K : QK_TYPE_Q4_K;
    else if (ft == QK_FT_Q3_K_L)
        type = QK_TYPE_Q5_K;
    else if (ft == QK_FT_IQ4_NL || ft == QK_FT_IQ4_XS)
        type = gqa4 ? QK_TYPE_Q5_K : type;
    else if (ft == QK_FT_Q4_K_M || ft == QK_FT_Q5_K_M)
        type = use_more_bits(i, n) ? QK_TYPE_Q6_K : type;
    else if (ft == QK_FT_Q4_K_S)
        type = i < 4 ? QK_TYPE_Q5_K : type;
    /* 70B-class models share attn_v between 8 heads: it is small, so it gets more bits */
    if (st->is_70b && (type == QK_TYPE_Q3_K || type == QK_TYPE_Q4_K)) type = QK_TYPE_Q5_K;
    if (st->model->n_expert == 8) type = QK_TYPE_Q8_0;
    st->i_attention_wv++;
    return type;
}

static qk_status ffn_down_rule(qk_plan_state *st, const char *name, qk_type *type) {
    int i = 0, n = st->n_ffn_down;
    qk_status s = ffn_layer(st, name, st->i_ffn_down, n, &i);
    if (s != QK_OK) return s;
    int ft = st->ftype, falcon = st->is_falcon, imx = st->opt->has_imatrix;
    qk_type t = *type;
    if (ft == QK_FT_Q2_K)
        t = QK_TYPE_Q3_K;
    else if (ft == QK_FT_Q2_K_S)
        t = i < n / 8 ? QK_TYPE_Q4_K : t;
    else if (ft == QK_FT_IQ3_XXS && !imx)
        t = i < n / 8 ? QK_TYPE_Q4_K : QK_TYPE_Q3_K;
    else if (ft == QK_FT_Q3_K_M)
        t = i < n / 16 ? QK_TYPE_Q5_K : !falcon || use_more_bits(i, n) ? QK_TYPE_Q4_K : QK_TYPE_Q3_K;
    else if (ft == QK_FT_IQ3_M && (i < n / 8 || (st->model->n_expert == 8 && use_more_bits(i, n))))
        t = QK_TYPE_Q4_K;
    else if (ft == QK_FT_Q3_K_L)
        t = falcon ? QK_TYPE_Q4_K : QK_TYPE_Q5_K;
    else if (ft == QK_FT_Q4_K_M) {
        if (falcon)
            t = i < n / 16 ? QK_TYPE_Q6_K : use_more_bits(i, n) ? QK_TYPE_Q5_K : QK_TYPE_Q4_K;
        else if (use_more_bits(i, n))
            t = QK_TYPE_Q6_K;
    } else if (i < n / 8 && (ft == QK_FT_IQ4_NL || ft == QK_FT_IQ4_XS) && !imx)
        t = QK_TYPE_Q5_K;
    else if (ft == QK_FT_Q5_K_M && use_more_bits(i, n))
        t = QK_TYPE_Q6_K;
    else if (ft == QK_FT_Q4_K_S && !falcon && i < n / 8)
        t = QK_TYPE_Q5_K;
    /* only with an imatrix, so plain Q4_0/Q5_0 files stay what they always were */
    else if ((ft == QK_FT_Q4_0 || ft == QK_FT_Q5_0) && imx && i < n / 8)
        t = ft == QK_FT_Q4_0 ? QK_TYPE_Q4_1 : QK_TYPE_Q5_1;
    st->i_ffn_down++;
    *type = t;
    return QK_OK;
}

static qk_type attn_out_rule(const qk_plan_state *st, qk_type type) {
    int ft = st->ftype;
    if (st->is_falcon) return ft == QK_FT_Q3_K_L ? QK_TYPE_Q4_K : type;
    if (st->model->n_expert == 8) {
        if (FT_IN(ft, QK_FT_Q2_K, QK_FT_IQ3_XS, QK_FT_IQ3_XXS, QK_FT_Q3_K_S, QK_FT_Q3_K_M, QK_FT_IQ4_NL, QK_FT_Q4_K_S,
                  QK_FT_Q4_K_M, QK_FT_IQ3_S, QK_FT_IQ3_M, QK_FT_IQ4_XS))
            return QK_TYPE_Q5_K;
        return type;
    }
    switch (ft) {
    case QK_FT_Q2_K: return QK_TYPE_Q3_K;
    case QK_FT_IQ3_XXS: return QK_TYPE_IQ3_S;
    case QK_FT_Q3_K_M: return QK_TYPE_Q4_K;
    case QK_FT_Q3_K_L: return QK_TYPE_Q5_K;
    case QK_FT_IQ3_M: return QK_TYPE_Q4_K;
    default: return type;
    }
}

/* ffn_gate and ffn_up: only IQ3_XS thins out the middle layers. */
static qk_status ffn_gate_up_rule(qk_plan_state *st, const char *name, int *running, int n, qk_type *type) {
    int i = 0;
    qk_status s = ffn_layer(st, name, *running, n, &i);
    if (s != QK_OK) return s;
    if (st->ftype == QK_FT_IQ3_XS && i >= n / 8 && i < 7 * n / 8) *type = QK_TYPE_IQ3_XXS;
    (*running)++;
    return QK_OK;
}

qk_status qk_plan_mixture(qk_plan_state *st, const qk_plan_tensor *t, qk_plan_cat cat, qk_type *type) {
    int ft = st->ftype;
    /* GLM-5-next's q projections and next-token head stay at Q8_0 or above */
    if (is_glm5_next(st->model->arch) &&
        (has(t->name, "attn_q_a") || has(t->name, "attn_q_b") || has(t->name, "nextn.eh_proj"))) {
        if (qk_format_of(*type)->family != QK_FAMILY_FLOAT) *type = QK_TYPE_Q8_0;
        return QK_OK;
    }
    /* a tied token embedding is also the output projection, so it follows the output rules */
    if (cat == QK_CAT_OUTPUT || (st->tied_embeddings && cat == QK_CAT_TOKEN_EMBD)) {
        *type = output_rule(st, t, *type);
    } else if (ft == QK_FT_MXFP4_MOE) {
        /* expert tensors are the 3-D ones; BailingMoE3's MLA projections are 3-D too */
        int expert_role = cat == QK_CAT_FFN_UP || cat == QK_CAT_FFN_GATE || cat == QK_CAT_FFN_DOWN;
        int three_d = t->n_dims > 2 && t->ne[2] > 1;
        *type = three_d && (!st->is_bailingmoe3 || expert_role) ? QK_TYPE_MXFP4 : QK_TYPE_Q8_0;
    } else if (cat == QK_CAT_TOKEN_EMBD) {
        *type = token_embd_rule(st, *type);
    } else if (is_iq_low(ft)) {
        *type = iq_low_rule(st, cat, *type);
    } else if (qk_plan_cat_is_attn_v(cat)) {
        *type = attn_v_rule(st, *type);
    } else if (cat == QK_CAT_ATTN_K) {
        if (st->model->n_expert == 8)
            *type = QK_TYPE_Q8_0;
        else if (ft == QK_FT_IQ3_XS)
            *type = QK_TYPE_IQ3_XXS;
        else if (ft == QK_FT_IQ3_XXS)
            *type = QK_TYPE_IQ2_S;
    } else if (cat == QK_CAT_ATTN_Q) {
        if (ft == QK_FT_IQ3_XS)
            *type = QK_TYPE_IQ3_XXS;
        else if (ft == QK_FT_IQ3_XXS)
            *type = QK_TYPE_IQ2_S;
    } else if (cat == QK_CAT_FFN_DOWN) {
        return ffn_down_rule(st, t->name, type);
    } else if (cat == QK_CAT_ATTN_OUT) {
        *type = attn_out_rule(st, *type);
    } else if (cat == QK_CAT_FFN_GATE) {
        return ffn_gate_up_rule(st, t->name, &st->i_ffn_gate, st->n_ffn_gate, type);
    } else if (cat == QK_CAT_FFN_UP) {
        return ffn_gate_up_rule(st, t->name, &st->i_ffn_up, st->n_ffn_up, type);
    }
    return QK_OK;
}

qk_status qk_plan_fallback(const qk_plan_tensor *t, qk_type *type) {
    const qk_format *f = qk_format_of(*type);
    int64_t ne0 = t->ne[0];
    if (ne0 % f->block_elems == 0) return QK_OK;
    qk_type fb;
    switch (*type) {
    case QK_TYPE_IQ1_S:
    case QK_TYPE_IQ1_M:
    case QK_TYPE_IQ2_XXS:
    case QK_TYPE_IQ2_XS:
    case QK_TYPE_IQ2_S:
    case QK_TYPE_IQ3_XXS:
    case QK_TYPE_IQ3_S:
    case QK_TYPE_IQ4_XS: fb = QK_TYPE_IQ4_NL; break;
    case QK_TYPE_Q2_0:
    case QK_TYPE_Q2_K:
    case QK_TYPE_Q3_K:
    case QK_TYPE_TQ1_0:
    case QK_TYPE_TQ2_0: fb = QK_TYPE_Q4_0; break;
    case QK_TYPE_Q4_K: fb = QK_TYPE_Q5_0; break;
    case QK_TYPE_Q5_K: fb = QK_TYPE_Q5_1; break;
    case QK_TYPE_Q6_K: fb = QK_TYPE_Q8_0; break;
    default:
        /* a 32-block type has no smaller block to step down to: F16 below, as llama.cpp does */
        if (f->block_elems <= 32) {
            fb = *type;
            break;
        }
        return qk_fail(NULL, QK_ERR_SHAPE,
                       "tensor %s: ne[0] = %lld is not a multiple of %s's block of %d, and %s has no fallback type",
                       t->name, (long long)ne0, f->name, f->block_elems, f->name);
    }
    /* rows not even a multiple of 32 fit none of the 32-blocks: keep 16-bit floats */
    if (ne0 % qk_format_of(fb)->block_elems != 0) fb = QK_TYPE_F16;
    *type = fb;
    return QK_OK;
}
