/* Quantization plans: the llama-quantize presets and the driver that walks a model's tensors
 * in llama-quantize's order, choosing each one's type (FORMATS.md §11.1, §11.3, §11.5). The
 * mixture rules themselves live in plan_rules.c. */
#include "plan.h"
#include "formats.h"
#include "internal.h"
#include "plan_rules.h"

#include <assert.h>
#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* llama-quantize's list, in its order (its llama_ftype NVFP4 has no preset there, so none here);
 * size hints are llama-quantize's Llama-3-8B / Mistral-7B measurements. */
static const qk_ftype presets[] = {
    {"Q1_0", QK_FT_Q1_0, QK_TYPE_Q1_0, "1.125 bpw", NULL, 0},
    {"Q2_0", QK_FT_Q2_0, QK_TYPE_Q2_0, "2.25 bpw (group 64)", NULL, 0},
    {"Q4_0", QK_FT_Q4_0, QK_TYPE_Q4_0, "4.34G, +0.4685 ppl @ Llama-3-8B", NULL, 0},
    {"Q4_1", QK_FT_Q4_1, QK_TYPE_Q4_1, "4.78G, +0.4511 ppl @ Llama-3-8B", NULL, 0},
    {"MXFP4_MOE", QK_FT_MXFP4_MOE, QK_TYPE_MXFP4, "MXFP4 experts, Q8_0 elsewhere", NULL, 0},
    {"Q5_0", QK_FT_Q5_0, QK_TYPE_Q5_0, "5.21G, +0.1316 ppl @ Llama-3-8B", NULL, 0},
    {"Q5_1", QK_FT_Q5_1, QK_TYPE_Q5_1, "5.65G, +0.1062 ppl @ Llama-3-8B", NULL, 0},
    {"IQ2_XXS", QK_FT_IQ2_XXS, QK_TYPE_IQ2_XXS, "2.06 bpw", NULL, 0},
    {"IQ2_XS", QK_FT_IQ2_XS, QK_TYPE_IQ2_XS, "2.31 bpw", NULL, 0},
    {"IQ2_S", QK_FT_IQ2_S, QK_TYPE_IQ2_XS, "2.5 bpw", NULL, 0},
    {"IQ2_M", QK_FT_IQ2_M, QK_TYPE_IQ2_S, "2.7 bpw", NULL, 0},
    {"IQ1_S", QK_FT_IQ1_S, QK_TYPE_IQ1_S, "1.56 bpw", NULL, 0},
    {"IQ1_M", QK_FT_IQ1_M, QK_TYPE_IQ1_M, "1.75 bpw", NULL, 0},
    {"TQ1_0", QK_FT_TQ1_0, QK_TYPE_TQ1_0, "1.69 bpw ternary", NULL, 0},
    {"TQ2_0", QK_FT_TQ2_0, QK_TYPE_TQ2_0, "2.06 bpw ternary", NULL, 0},
    {"Q2_K", QK_FT_Q2_K, QK_TYPE_Q2_K, "2.96G, +3.5199 ppl @ Llama-3-8B", NULL, 0},
    {"Q2_K_S", QK_FT_Q2_K_S, QK_TYPE_Q2_K, "2.96G, +3.1836 ppl @ Llama-3-8B", NULL, 0},
    {"IQ3_XXS", QK_FT_IQ3_XXS, QK_TYPE_IQ3_XXS, "3.06 bpw", NULL, 0},
    {"IQ3_S", QK_FT_IQ3_S, QK_TYPE_IQ3_S, "3.44 bpw", NULL, 0},
    {"IQ3_M", QK_FT_IQ3_M, QK_TYPE_IQ3_S, "3.66 bpw mix", NULL, 0},
    {"Q3_K", QK_FT_Q3_K_M, QK_TYPE_Q3_K, "alias for Q3_K_M", "Q3_K_M", 0},
    {"IQ3_XS", QK_FT_IQ3_XS, QK_TYPE_IQ3_S, "3.3 bpw", NULL, 0},
    {"Q3_K_S", QK_FT_Q3_K_S, QK_TYPE_Q3_K, "3.41G, +1.6321 ppl @ Llama-3-8B", NULL, 0},
    {"Q3_K_M", QK_FT_Q3_K_M, QK_TYPE_Q3_K, "3.74G, +0.6569 ppl @ Llama-3-8B", NULL, 0},
    {"Q3_K_L", QK_FT_Q3_K_L, QK_TYPE_Q3_K, "4.03G, +0.5562 ppl @ Llama-3-8B", NULL, 0},
    {"IQ4_NL", QK_FT_IQ4_NL, QK_TYPE_IQ4_NL, "4.50 bpw non-linear", NULL, 0},
    {"IQ4_XS", QK_FT_IQ4_XS, QK_TYPE_IQ4_XS, "4.25 bpw non-linear", NULL, 0},
    {"Q4_K", QK_FT_Q4_K_M, QK_TYPE_Q4_K, "alias for Q4_K_M", "Q4_K_M", 0},
    {"Q4_K_S", QK_FT_Q4_K_S, QK_TYPE_Q4_K, "4.37G, +0.2689 ppl @ Llama-3-8B", NULL, 0},
    {"Q4_K_M", QK_FT_Q4_K_M, QK_TYPE_Q4_K, "4.58G, +0.1754 ppl @ Llama-3-8B", NULL, 0},
    {"Q5_K", QK_FT_Q5_K_M, QK_TYPE_Q5_K, "alias for Q5_K_M", "Q5_K_M", 0},
    {"Q5_K_S", QK_FT_Q5_K_S, QK_TYPE_Q5_K, "5.21G, +0.1049 ppl @ Llama-3-8B", NULL, 0},
    {"Q5_K_M", QK_FT_Q5_K_M, QK_TYPE_Q5_K, "5.33G, +0.0569 ppl @ Llama-3-8B", NULL, 0},
    {"Q6_K", QK_FT_Q6_K, QK_TYPE_Q6_K, "6.14G, +0.0217 ppl @ Llama-3-8B", NULL, 0},
    {"Q8_0", QK_FT_Q8_0, QK_TYPE_Q8_0, "7.96G, +0.0026 ppl @ Llama-3-8B", NULL, 0},
    {"F16", QK_FT_F16, QK_TYPE_F16, "14.00G, +0.0020 ppl @ Mistral-7B", NULL, 0},
    {"BF16", QK_FT_BF16, QK_TYPE_BF16, "14.00G, -0.0050 ppl @ Mistral-7B", NULL, 0},
    {"F32", QK_FT_ALL_F32, QK_TYPE_F32, "26.00G @ 7B", NULL, 0},
    {"COPY", QK_FT_ALL_F32, QK_TYPE_F32, "only copy tensors, no quantizing", NULL, 1},
};

#define N_PRESETS (sizeof presets / sizeof presets[0])

const qk_ftype *qk_ftypes(size_t *count) {
    if (count) *count = N_PRESETS;
    return presets;
}

const qk_ftype *qk_ftype_from_name(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < N_PRESETS; i++)
        if (strcasecmp(presets[i].name, name) == 0) return &presets[i];
    return NULL;
}

const qk_ftype *qk_ftype_from_id(int id) {
    for (size_t i = 0; i < N_PRESETS; i++)
        if (presets[i].id == id && !presets[i].alias_of && !presets[i].only_copy) return &presets[i];
    return NULL;
}

const char *qk_plan_reason_name(qk_plan_reason r) {
    switch (r) {
    case QK_PLAN_KEEP: return "keep";
    case QK_PLAN_DEFAULT: return "default";
    case QK_PLAN_MIXTURE: return "mixture";
    case QK_PLAN_OVERRIDE: return "override";
    case QK_PLAN_OUTPUT: return "output";
    case QK_PLAN_FALLBACK: return "fallback";
    }
    return "?";
}

int qk_plan_needs_imatrix(const qk_plan_options *opt, const char *tensor_name, qk_type type) {
    if (!tensor_name) return 0;
    if (strcmp(tensor_name, "token_embd.weight") == 0 || strcmp(tensor_name, "per_layer_token_embd.weight") == 0 ||
        strcmp(tensor_name, "output.weight") == 0)
        return 0;
    switch (type) {
    case QK_TYPE_IQ3_XXS:
    case QK_TYPE_IQ2_XXS:
    case QK_TYPE_IQ2_XS:
    case QK_TYPE_IQ2_S:
    case QK_TYPE_IQ1_M:
    case QK_TYPE_IQ1_S: return 1;
    /* k-quants work without one; a Q2_K_S file's Q2_K tensors are the exception */
    case QK_TYPE_Q2_K: return opt && opt->ftype && opt->ftype->id == QK_FT_Q2_K_S;
    default: return 0;
    }
}

/* ---- validation ------------------------------------------------------------------------- */

static int valid_type(int id) { return id >= 0 && qk_format_of(id) != NULL; }

static qk_status check_args(const qk_plan_model *model, const qk_plan_options *opt, const qk_plan_tensor *tensors,
                            size_t n, const qk_plan_entry *entries) {
    if (!model || !opt || !opt->ftype || (n && (!tensors || !entries)))
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "plan: model, options, preset, tensors and entries are required");
    if (!valid_type(opt->ftype->default_type))
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "plan: preset %s has no qkern default type",
                       opt->ftype->name ? opt->ftype->name : "?");
    /* 7 * n_layer must not overflow an int in the layer rules; real models have < 1000 blocks */
    if (model->n_layer < 0 || model->n_layer > (1 << 24) || model->n_head < 0 || model->n_head_kv < 0 ||
        model->n_expert < 0)
        return qk_fail(NULL, QK_ERR_INVALID_ARG,
                       "plan: bad model counts (block_count %lld, heads %lld/%lld, experts %lld)",
                       (long long)model->n_layer, (long long)model->n_head, (long long)model->n_head_kv,
                       (long long)model->n_expert);
    if (opt->output_tensor_type != -1 && !valid_type(opt->output_tensor_type))
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "plan: --output-tensor-type id %d is not a qkern type",
                       opt->output_tensor_type);
    if (opt->token_embedding_type != -1 && !valid_type(opt->token_embedding_type))
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "plan: --token-embedding-type id %d is not a qkern type",
                       opt->token_embedding_type);
    if (opt->n_overrides && !opt->overrides)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "plan: %zu --tensor-type overrides but no array", opt->n_overrides);
    for (size_t i = 0; i < opt->n_overrides; i++) {
        if (!opt->overrides[i].pattern)
            return qk_fail(NULL, QK_ERR_INVALID_ARG, "plan: --tensor-type override %zu has no pattern", i);
        if (!valid_type(opt->overrides[i].type))
            return qk_fail(NULL, QK_ERR_INVALID_ARG, "plan: --tensor-type %s: type id %d is not a qkern type",
                           opt->overrides[i].pattern, (int)opt->overrides[i].type);
    }
    for (size_t i = 0; i < n; i++) {
        const qk_plan_tensor *t = &tensors[i];
        if (!t->name) return qk_fail(NULL, QK_ERR_INVALID_ARG, "plan: tensor %zu has no name", i);
        if (t->n_dims < 1 || t->n_dims > 4)
            return qk_fail(NULL, QK_ERR_INVALID_ARG, "plan: tensor %s has %d dimensions (1 to 4 allowed)", t->name,
                           t->n_dims);
        for (int d = 0; d < t->n_dims; d++)
            if (t->ne[d] < 0)
                return qk_fail(NULL, QK_ERR_INVALID_ARG, "plan: tensor %s has ne[%d] = %lld", t->name, d,
                               (long long)t->ne[d]);
    }
    return QK_OK;
}

/* ---- processing order ------------------------------------------------------------------- */

typedef struct order_key {
    int layer; /* -1 outside "blk.N." */
    const char *name;
    size_t index;
} order_key;

/* llama.cpp's model loader keeps tensors in a map ordered by (layer, name); std::string's
 * operator< compares bytes as unsigned char, as strcmp does. */
static int order_cmp(const void *pa, const void *pb) {
    const order_key *a = pa, *b = pb;
    if (a->layer != b->layer) return a->layer < b->layer ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int index_cmp(const void *pa, const void *pb) {
    const order_key *a = pa, *b = pb;
    return (a->index > b->index) - (a->index < b->index);
}

static qk_status sorted_order(const qk_plan_tensor *tensors, size_t n, int input_order, order_key **out) {
    order_key *keys = malloc((n ? n : 1) * sizeof *keys);
    if (!keys) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "plan: no memory to order %zu tensors", n);
    for (size_t i = 0; i < n; i++) {
        keys[i].layer = -1;
        qk_plan_parse_layer(tensors[i].name, &keys[i].layer);
        keys[i].name = tensors[i].name;
        keys[i].index = i;
    }
    qsort(keys, n, sizeof *keys, order_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(keys[i - 1].name, keys[i].name) == 0) {
            qk_status s = qk_fail(NULL, QK_ERR_INVALID_ARG, "plan: tensor name %s appears twice", keys[i].name);
            free(keys);
            return s;
        }
    if (input_order) qsort(keys, n, sizeof *keys, index_cmp);
    *out = keys;
    return QK_OK;
}

/* ---- --tensor-type patterns ------------------------------------------------------------- */

typedef struct patterns {
    regex_t *re;
    size_t n;
} patterns;

static void patterns_free(patterns *p) {
    for (size_t i = 0; i < p->n; i++) regfree(&p->re[i]);
    free(p->re);
    p->re = NULL;
    p->n = 0;
}

/* llama.cpp lower-cases the pattern and matches it with std::regex (ECMAScript); POSIX ERE
 * lacks the class escapes users write there (blk\.\d+\.), so \d \w \s become bracket
 * expressions (bare ranges inside a bracket). `dst` holds 16 bytes per source byte. */
static void ecma_classes_to_posix(const char *src, char *dst) {
    int in_bracket = 0;
    for (; *src; src++) {
        char c = (char)tolower((unsigned char)*src);
        if (c == '\\' && src[1]) {
            char e = (char)tolower((unsigned char)src[1]);
            const char *cls = e == 'd' ? "0-9" : e == 'w' ? "a-z0-9_" : e == 's' ? " \t" : NULL;
            if (cls) {
                dst += sprintf(dst, in_bracket ? "%s" : "[%s]", cls);
                src++;
                continue;
            }
            *dst++ = c;
            *dst++ = e;
            src++;
            continue;
        }
        if (c == '[') in_bracket = 1;
        if (c == ']') in_bracket = 0;
        *dst++ = c;
    }
    *dst = 0;
}

static qk_status patterns_compile(const qk_plan_options *opt, patterns *p) {
    p->re = NULL;
    p->n = 0;
    if (!opt->n_overrides) return QK_OK;
    p->re = calloc(opt->n_overrides, sizeof *p->re);
    if (!p->re) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "plan: no memory for %zu patterns", opt->n_overrides);
    for (size_t i = 0; i < opt->n_overrides; i++) {
        const char *src = opt->overrides[i].pattern;
        size_t len = strlen(src);
        char *lower = malloc(16 * len + 1);
        if (!lower) {
            patterns_free(p);
            return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "plan: no memory for pattern %s", src);
        }
        ecma_classes_to_posix(src, lower);
        int rc = regcomp(&p->re[i], lower, REG_EXTENDED | REG_NOSUB);
        free(lower);
        if (rc != 0) {
            char why[128];
            regerror(rc, &p->re[i], why, sizeof why);
            patterns_free(p);
            return qk_fail(NULL, QK_ERR_INVALID_ARG, "plan: --tensor-type pattern '%s' is not a valid regex: %s", src,
                           why);
        }
        p->n = i + 1;
    }
    return QK_OK;
}

/* ---- type selection --------------------------------------------------------------------- */

static int is_quantized_type(qk_type t) { return qk_format_of(t)->family != QK_FAMILY_FLOAT; }

/* A type the user forced on an embedding or output tensor skips the fallbacks in llama.cpp
 * (which then fails deep inside ggml); here it is a clean error instead. */
static qk_status forced_fits(const qk_plan_tensor *t, qk_type type, const char *option) {
    const qk_format *f = qk_format_of(type);
    if (t->ne[0] % f->block_elems == 0) return QK_OK;
    return qk_fail(NULL, QK_ERR_SHAPE, "tensor %s: ne[0] = %lld is not a multiple of %s's block of %d (%s)", t->name,
                   (long long)t->ne[0], f->name, f->block_elems, option);
}

static qk_status choose_type(qk_plan_state *st, const patterns *pats, const qk_plan_tensor *t, qk_plan_entry *e) {
    const qk_plan_options *opt = st->opt;
    const qk_type def = opt->ftype->default_type;
    if (!qk_plan_allows_quantization(opt, st->model->arch, t)) {
        e->type = t->type;
        e->reason = QK_PLAN_KEEP;
        return QK_OK;
    }
    qk_plan_cat cat = qk_plan_category(t->name);
    /* per_layer_token_embd is a large table of its own: a --tensor-type naming it wins */
    int named = 0;
    if (strcmp(t->name, "per_layer_token_embd.weight") == 0)
        for (size_t i = 0; i < pats->n && !named; i++) named = regexec(&pats->re[i], t->name, 0, NULL, 0) == 0;
    if (opt->token_embedding_type >= 0 && cat == QK_CAT_TOKEN_EMBD && !named) {
        e->type = (qk_type)opt->token_embedding_type;
        e->reason = QK_PLAN_OUTPUT;
        return forced_fits(t, e->type, "--token-embedding-type");
    }
    if (opt->output_tensor_type >= 0 && cat == QK_CAT_OUTPUT) {
        e->type = (qk_type)opt->output_tensor_type;
        e->reason = QK_PLAN_OUTPUT;
        return forced_fits(t, e->type, "--output-tensor-type");
    }
    e->type = def;
    e->reason = QK_PLAN_DEFAULT;
    /* F32/F16/BF16 presets convert every quantizable tensor: no overrides, no mixtures */
    if (!is_quantized_type(def)) return QK_OK;

    int manual = 0;
    for (size_t i = 0; i < pats->n && !manual; i++)
        if (regexec(&pats->re[i], t->name, 0, NULL, 0) == 0) {
            e->type = opt->overrides[i].type;
            e->reason = QK_PLAN_OVERRIDE;
            manual = 1;
        }
    /* only here do the counters advance: FORMATS.md's "i_v counts ATTN_V-like tensors" skips
     * overridden ones in llama.cpp, shifting the use_more_bits layers of the rest */
    if (!manual && !opt->pure) {
        qk_type type = def;
        qk_status s = qk_plan_mixture(st, t, cat, &type);
        if (s != QK_OK) return s;
        e->type = type;
        if (cat == QK_CAT_OUTPUT || (st->tied_embeddings && cat == QK_CAT_TOKEN_EMBD))
            e->reason = QK_PLAN_OUTPUT;
        else if (type != def)
            e->reason = QK_PLAN_MIXTURE;
    }
    qk_type chosen = e->planned = e->type;
    qk_status s = qk_plan_fallback(t, &e->type);
    if (s != QK_OK) return s;
    if (e->type != chosen) e->reason = QK_PLAN_FALLBACK;
    return QK_OK;
}

/* llama.cpp converts F32 directly, F16/BF16 through f32, and quantized data only when asked.
 * FORMATS.md §11.5 says quantized inputs are refused; llama.cpp refuses only those it converts. */
static qk_status check_conversion(const qk_plan_options *opt, const qk_plan_tensor *t, qk_type to) {
    const qk_format *from = qk_format_of(t->type);
    if (!from)
        return qk_fail(NULL, QK_ERR_TYPE, "tensor %s: its type id %d cannot be converted to %s", t->name, (int)t->type,
                       qk_format_of(to)->name);
    if (from->family != QK_FAMILY_FLOAT && !opt->allow_requantize)
        return qk_fail(NULL, QK_ERR_TYPE,
                       "tensor %s is already quantized (%s); converting it to %s needs --allow-requantize", t->name,
                       from->name, qk_format_of(to)->name);
    return QK_OK;
}

qk_status qk_plan_build(const qk_plan_model *model, const qk_plan_options *opt, const qk_plan_tensor *tensors, size_t n,
                        qk_plan_entry *entries) {
    qk_status s = check_args(model, opt, tensors, n, entries);
    if (s != QK_OK) return s;
    order_key *keys = NULL;
    s = sorted_order(tensors, n, opt->input_order, &keys);
    if (s != QK_OK) return s;
    patterns pats;
    s = patterns_compile(opt, &pats);
    if (s != QK_OK) {
        free(keys);
        return s;
    }

    qk_plan_state st;
    qk_plan_state_init(&st, model, opt);
    for (size_t i = 0; i < n; i++) {
        qk_plan_cat cat = qk_plan_category(tensors[i].name);
        if (qk_plan_cat_is_attn_v(cat)) st.n_attention_wv++;
        if (cat == QK_CAT_OUTPUT) st.tied_embeddings = 0;
    }

    /* all types first, then the conversion checks, in the order llama.cpp reports them */
    for (size_t k = 0; k < n && s == QK_OK; k++) {
        qk_plan_entry *e = &entries[k];
        e->tensor = keys[k].index;
        s = choose_type(&st, &pats, &tensors[e->tensor], e);
        if (e->reason != QK_PLAN_FALLBACK) e->planned = e->type;
        e->quantize = e->type != tensors[e->tensor].type;
    }
    for (size_t k = 0; k < n && s == QK_OK; k++)
        if (entries[k].quantize) s = check_conversion(opt, &tensors[entries[k].tensor], entries[k].type);
    /* The quantizer sizes rows by qk_type_row_bytes: a planned type always holds its tensor's
     * rows (the fallbacks see to it); and each attn_v-like tensor advanced its counter at most
     * once, or use_more_bits would have picked layers from a wrong fraction. */
    for (size_t k = 0; k < n && s == QK_OK; k++)
        assert(entries[k].tensor < n && qk_type_row_bytes(entries[k].type, tensors[entries[k].tensor].ne[0]) > 0);
    assert(s != QK_OK || st.i_attention_wv <= st.n_attention_wv);

    patterns_free(&pats);
    free(keys);
    return s;
}
