/* Quantization plans: llama-quantize's presets, mixture rules, overrides and fallbacks.
 * Every expected type below was worked out by hand from FORMATS.md §11 and llama.cpp's
 * src/llama-quant.cpp (llama_tensor_get_type_impl and its callers), not from running the plan.
 * Inputs are shuffled and given random float types each run (the seed is printed): the plan
 * must not depend on either. */
#include "plan.h"
#include "test_util.h"

#include <stdarg.h>

/* ---- a model under construction -------------------------------------------------------- */

#define MAX_T 2048

typedef struct tmodel {
    qk_plan_model m;
    qk_plan_tensor t[MAX_T];
    char names[MAX_T][80];
    size_t n;
    qk_plan_entry e[MAX_T];
    qk_status status;
} tmodel;

static tu_rng rng;

static qk_type random_float_type(void) {
    static const qk_type f[] = {QK_TYPE_F32, QK_TYPE_F16, QK_TYPE_BF16};
    return f[tu_next(&rng) % 3];
}

static void init_model(tmodel *tm, const char *arch, int64_t n_layer, int64_t n_head, int64_t n_head_kv,
                       int64_t n_expert) {
    memset(tm, 0, sizeof *tm);
    tm->m.arch = arch;
    tm->m.n_layer = n_layer;
    tm->m.n_head = n_head;
    tm->m.n_head_kv = n_head_kv;
    tm->m.n_expert = n_expert;
}

/* Adds a tensor of the given type (-1: a random float type) and shape (trailing zeros end it). */
static void add_t(tmodel *tm, int type, int64_t ne0, int64_t ne1, int64_t ne2, const char *fmt, ...) {
    if (tm->n >= MAX_T) {
        fprintf(stderr, "test model too large\n");
        exit(2);
    }
    qk_plan_tensor *t = &tm->t[tm->n];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tm->names[tm->n], sizeof tm->names[0], fmt, ap);
    va_end(ap);
    t->name = tm->names[tm->n];
    t->type = type < 0 ? random_float_type() : (qk_type)type;
    t->ne[0] = ne0;
    t->ne[1] = ne1 ? ne1 : 1;
    t->ne[2] = ne2 ? ne2 : 1;
    t->ne[3] = 1;
    t->n_dims = ne2 ? 3 : ne1 ? 2 : 1;
    tm->n++;
}
#define W(tm, ne0, ne1, ...)       add_t(tm, -1, ne0, ne1, 0, __VA_ARGS__)
#define W3(tm, ne0, ne1, ne2, ...) add_t(tm, -1, ne0, ne1, ne2, __VA_ARGS__)
#define V(tm, ne0, ...)            add_t(tm, QK_TYPE_F32, ne0, 0, 0, __VA_ARGS__)

/* token_embd, output_norm and (unless tied) output, n_embd wide. */
static void add_globals(tmodel *tm, int64_t n_embd, int tied) {
    W(tm, n_embd, 32000, "token_embd.weight");
    V(tm, n_embd, "output_norm.weight");
    if (!tied) W(tm, n_embd, 32000, "output.weight");
}

/* A llama-style dense layer. */
static void add_dense_layer(tmodel *tm, int l, int64_t n_embd, int64_t n_kv, int64_t n_ff) {
    V(tm, n_embd, "blk.%d.attn_norm.weight", l);
    W(tm, n_embd, n_embd, "blk.%d.attn_q.weight", l);
    W(tm, n_embd, n_kv, "blk.%d.attn_k.weight", l);
    W(tm, n_embd, n_kv, "blk.%d.attn_v.weight", l);
    W(tm, n_embd, n_embd, "blk.%d.attn_output.weight", l);
    V(tm, n_embd, "blk.%d.ffn_norm.weight", l);
    W(tm, n_embd, n_ff, "blk.%d.ffn_gate.weight", l);
    W(tm, n_embd, n_ff, "blk.%d.ffn_up.weight", l);
    W(tm, n_ff, n_embd, "blk.%d.ffn_down.weight", l);
}

static void dense_model(tmodel *tm, const char *arch, int n_layer, int64_t n_head, int64_t n_head_kv, int tied) {
    init_model(tm, arch, n_layer, n_head, n_head_kv, 0);
    add_globals(tm, 4096, tied);
    for (int l = 0; l < n_layer; l++) add_dense_layer(tm, l, 4096, 4096 * n_head_kv / n_head, 11008);
}

/* A Mixtral-style MoE layer: attention plus 3-D expert tensors. */
static void add_moe_layer(tmodel *tm, int l, int64_t n_embd, int64_t n_kv, int64_t n_ff, int64_t n_expert) {
    V(tm, n_embd, "blk.%d.attn_norm.weight", l);
    W(tm, n_embd, n_embd, "blk.%d.attn_q.weight", l);
    W(tm, n_embd, n_kv, "blk.%d.attn_k.weight", l);
    W(tm, n_embd, n_kv, "blk.%d.attn_v.weight", l);
    W(tm, n_embd, n_embd, "blk.%d.attn_output.weight", l);
    V(tm, n_embd, "blk.%d.ffn_norm.weight", l);
    W(tm, n_embd, n_expert, "blk.%d.ffn_gate_inp.weight", l);
    W3(tm, n_embd, n_ff, n_expert, "blk.%d.ffn_gate_exps.weight", l);
    W3(tm, n_embd, n_ff, n_expert, "blk.%d.ffn_up_exps.weight", l);
    W3(tm, n_ff, n_embd, n_expert, "blk.%d.ffn_down_exps.weight", l);
}

/* Qwen3.5-MoE style hybrid: every 4th layer (3, 7, ...) is full attention, the others are
 * gated delta-net layers; every layer has routed experts and a shared expert. */
static void qwen35moe_model(tmodel *tm, int n_layer) {
    const int64_t e = 256, d = 2048, ff = 512;
    init_model(tm, "qwen35moe", n_layer, 16, 2, e);
    W(tm, d, 248320, "token_embd.weight");
    W(tm, d, 248320, "output.weight");
    V(tm, d, "output_norm.weight");
    for (int l = 0; l < n_layer; l++) {
        V(tm, d, "blk.%d.attn_norm.weight", l);
        V(tm, d, "blk.%d.post_attention_norm.weight", l);
        if (l % 4 == 3) {
            W(tm, d, 8192, "blk.%d.attn_q.weight", l);
            W(tm, d, 512, "blk.%d.attn_k.weight", l);
            W(tm, d, 512, "blk.%d.attn_v.weight", l);
            W(tm, 4096, d, "blk.%d.attn_output.weight", l);
            V(tm, 256, "blk.%d.attn_q_norm.weight", l);
            V(tm, 256, "blk.%d.attn_k_norm.weight", l);
        } else {
            W(tm, d, 8192, "blk.%d.attn_qkv.weight", l);
            W(tm, d, 4096, "blk.%d.attn_gate.weight", l);
            W(tm, 4, 8192, "blk.%d.ssm_conv1d.weight", l);
            V(tm, 32, "blk.%d.ssm_dt.bias", l);
            V(tm, 32, "blk.%d.ssm_a", l);
            W(tm, d, 32, "blk.%d.ssm_alpha.weight", l);
            W(tm, d, 32, "blk.%d.ssm_beta.weight", l);
            V(tm, 128, "blk.%d.ssm_norm.weight", l);
            W(tm, 4096, d, "blk.%d.ssm_out.weight", l);
        }
        W(tm, d, e, "blk.%d.ffn_gate_inp.weight", l);
        W3(tm, d, ff, e, "blk.%d.ffn_gate_exps.weight", l);
        W3(tm, d, ff, e, "blk.%d.ffn_up_exps.weight", l);
        W3(tm, ff, d, e, "blk.%d.ffn_down_exps.weight", l);
        V(tm, d, "blk.%d.ffn_gate_inp_shexp.weight", l);
        W(tm, d, ff, "blk.%d.ffn_gate_shexp.weight", l);
        W(tm, d, ff, "blk.%d.ffn_up_shexp.weight", l);
        W(tm, ff, d, "blk.%d.ffn_down_shexp.weight", l);
    }
}

static void shuffle(tmodel *tm) {
    for (size_t i = tm->n; i > 1; i--) {
        size_t j = tu_next(&rng) % i;
        qk_plan_tensor t = tm->t[i - 1];
        tm->t[i - 1] = tm->t[j];
        tm->t[j] = t;
    }
}

static qk_plan_options options(const char *ftype) {
    qk_plan_options o;
    memset(&o, 0, sizeof o);
    o.ftype = qk_ftype_from_name(ftype);
    if (!o.ftype) {
        fprintf(stderr, "no preset %s\n", ftype);
        exit(2);
    }
    o.output_tensor_type = -1;
    o.token_embedding_type = -1;
    return o;
}

static qk_status build(tmodel *tm, const qk_plan_options *o) {
    shuffle(tm);
    for (size_t i = 0; i < tm->n; i++) {
        tm->e[i].type = (qk_type)0x5A5A;
        tm->e[i].tensor = (size_t)-1;
    }
    tm->status = qk_plan_build(&tm->m, o, tm->t, tm->n, tm->e);
    return tm->status;
}

/* The entry of a tensor by name, or NULL. */
static const qk_plan_entry *entry(const tmodel *tm, const char *fmt, ...) {
    char name[80];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < tm->n; i++)
        if (tm->e[i].tensor < tm->n && strcmp(tm->t[tm->e[i].tensor].name, name) == 0) return &tm->e[i];
    return NULL;
}

static const char *tname(int t) {
    const char *s = qk_type_name(t);
    return s ? s : "(bad)";
}

#define EXPECT(tm, want, ...)                                                                                          \
    do {                                                                                                               \
        const qk_plan_entry *e_ = entry((tm), __VA_ARGS__);                                                            \
        char nm_[80];                                                                                                  \
        snprintf(nm_, sizeof nm_, __VA_ARGS__);                                                                        \
        CHECK(e_ && e_->type == (want), "%s: got %s, want %s", nm_, e_ ? tname(e_->type) : "(missing)", tname(want));  \
    } while (0)

#define EXPECT_REASON(tm, want, ...)                                                                                   \
    do {                                                                                                               \
        const qk_plan_entry *e_ = entry((tm), __VA_ARGS__);                                                            \
        char nm_[80];                                                                                                  \
        snprintf(nm_, sizeof nm_, __VA_ARGS__);                                                                        \
        CHECK(e_ && e_->reason == (want), "%s: reason %s, want %s", nm_,                                               \
              e_ ? qk_plan_reason_name(e_->reason) : "(missing)", qk_plan_reason_name(want));                          \
    } while (0)

/* Kept tensors keep their own (input) type. */
#define EXPECT_KEPT(tm, ...)                                                                                           \
    do {                                                                                                               \
        const qk_plan_entry *e_ = entry((tm), __VA_ARGS__);                                                            \
        char nm_[80];                                                                                                  \
        snprintf(nm_, sizeof nm_, __VA_ARGS__);                                                                        \
        CHECK(e_ && e_->reason == QK_PLAN_KEEP && e_->type == (tm)->t[e_->tensor].type && !e_->quantize,               \
              "%s: should be kept as is (got %s, %s)", nm_, e_ ? tname(e_->type) : "(missing)",                        \
              e_ ? qk_plan_reason_name(e_->reason) : "-");                                                             \
    } while (0)

static int in_set(int x, const int *set, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (set[i] == x) return 1;
    return 0;
}

/* ---- presets ---------------------------------------------------------------------------- */

/* Every llama-quantize file type qkern can write: name, llama_ftype id, default tensor type
 * (FORMATS.md §11.1; IQ2_S/IQ2_M default to IQ2_XS/IQ2_S, IQ3_XS to IQ3_S). */
static void test_presets_match_the_llama_ftype_table(void) {
    static const struct {
        const char *name;
        int id;
        qk_type def;
    } want[] = {
        {"F32", 0, QK_TYPE_F32},        {"F16", 1, QK_TYPE_F16},          {"Q4_0", 2, QK_TYPE_Q4_0},
        {"Q4_1", 3, QK_TYPE_Q4_1},      {"Q8_0", 7, QK_TYPE_Q8_0},        {"Q5_0", 8, QK_TYPE_Q5_0},
        {"Q5_1", 9, QK_TYPE_Q5_1},      {"Q2_K", 10, QK_TYPE_Q2_K},       {"Q3_K_S", 11, QK_TYPE_Q3_K},
        {"Q3_K_M", 12, QK_TYPE_Q3_K},   {"Q3_K_L", 13, QK_TYPE_Q3_K},     {"Q4_K_S", 14, QK_TYPE_Q4_K},
        {"Q4_K_M", 15, QK_TYPE_Q4_K},   {"Q5_K_S", 16, QK_TYPE_Q5_K},     {"Q5_K_M", 17, QK_TYPE_Q5_K},
        {"Q6_K", 18, QK_TYPE_Q6_K},     {"IQ2_XXS", 19, QK_TYPE_IQ2_XXS}, {"IQ2_XS", 20, QK_TYPE_IQ2_XS},
        {"Q2_K_S", 21, QK_TYPE_Q2_K},   {"IQ3_XS", 22, QK_TYPE_IQ3_S},    {"IQ3_XXS", 23, QK_TYPE_IQ3_XXS},
        {"IQ1_S", 24, QK_TYPE_IQ1_S},   {"IQ4_NL", 25, QK_TYPE_IQ4_NL},   {"IQ3_S", 26, QK_TYPE_IQ3_S},
        {"IQ3_M", 27, QK_TYPE_IQ3_S},   {"IQ2_S", 28, QK_TYPE_IQ2_XS},    {"IQ2_M", 29, QK_TYPE_IQ2_S},
        {"IQ4_XS", 30, QK_TYPE_IQ4_XS}, {"IQ1_M", 31, QK_TYPE_IQ1_M},     {"BF16", 32, QK_TYPE_BF16},
        {"TQ1_0", 36, QK_TYPE_TQ1_0},   {"TQ2_0", 37, QK_TYPE_TQ2_0},     {"MXFP4_MOE", 38, QK_TYPE_MXFP4},
        {"Q1_0", 40, QK_TYPE_Q1_0},     {"Q2_0", 41, QK_TYPE_Q2_0},
    };
    size_t count = 0;
    const qk_ftype *all = qk_ftypes(&count);
    /* the 35 types, the three aliases and COPY */
    CHECK(all && count == 39, "qk_ftypes lists %zu presets, want 39", count);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const qk_ftype *f = qk_ftype_from_name(want[i].name);
        CHECK(f && f->id == want[i].id && f->default_type == want[i].def && !f->alias_of && !f->only_copy,
              "preset %s: id %d default %s", want[i].name, f ? f->id : -1, f ? tname(f->default_type) : "-");
        const qk_ftype *g = qk_ftype_from_id(want[i].id);
        CHECK(g && strcmp(g->name, want[i].name) == 0, "id %d gives %s, want %s", want[i].id, g ? g->name : "NULL",
              want[i].name);
    }
    for (size_t i = 0; i < count; i++)
        CHECK(all[i].help && strlen(all[i].help) > 0 && strlen(all[i].help) <= 60, "preset %s: help '%s'", all[i].name,
              all[i].help ? all[i].help : "NULL");
    static const struct {
        const char *alias, *of;
        int id;
    } aliases[] = {{"Q3_K", "Q3_K_M", 12}, {"Q4_K", "Q4_K_M", 15}, {"Q5_K", "Q5_K_M", 17}};
    for (int i = 0; i < 3; i++) {
        const qk_ftype *f = qk_ftype_from_name(aliases[i].alias);
        CHECK(f && f->id == aliases[i].id && f->alias_of && strcmp(f->alias_of, aliases[i].of) == 0,
              "alias %s should name %s (id %d)", aliases[i].alias, aliases[i].of, aliases[i].id);
    }
    const qk_ftype *copy = qk_ftype_from_name("copy");
    CHECK(copy && copy->only_copy && copy->id == 0, "COPY is a copy-only preset with id 0");
    CHECK(qk_ftype_from_name("q4_k_m") == qk_ftype_from_name("Q4_K_M"), "names are case-insensitive");
    /* llama-quantize has no NVFP4 preset, though llama.h names its ftype 39 */
    const char *absent[] = {"NVFP4", "Q4_0_4_4", "Q4_K_X", "", NULL};
    for (int i = 0; i < 5; i++)
        CHECK(qk_ftype_from_name(absent[i]) == NULL, "no preset %s", absent[i] ? absent[i] : "NULL");
    CHECK(qk_ftype_from_id(33) == NULL && qk_ftype_from_id(39) == NULL && qk_ftype_from_id(-1) == NULL,
          "no preset for removed or missing ids");
}

/* ---- the FORMATS.md example --------------------------------------------------------------- */

/* Dense 32-layer GQA model as Q4_K_M: attn_v and ffn_down get Q6_K on
 * {0,1,2,3,6,9,...,27,28,29,30,31}; everything else Q4_K, output Q6_K, norms F32. */
static void test_dense_q4_k_m_example(void) {
    static const int more[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    tmodel *tm = calloc(1, sizeof *tm);
    dense_model(tm, "llama", 32, 32, 8, 0);
    qk_plan_options o = options("Q4_K_M");
    CHECK(build(tm, &o) == QK_OK, "Q4_K_M plan: %s", qk_last_error(NULL));
    EXPECT(tm, QK_TYPE_Q4_K, "token_embd.weight");
    EXPECT(tm, QK_TYPE_Q6_K, "output.weight");
    EXPECT_REASON(tm, QK_PLAN_OUTPUT, "output.weight");
    EXPECT_KEPT(tm, "output_norm.weight");
    for (int l = 0; l < 32; l++) {
        qk_type hi = in_set(l, more, 16) ? QK_TYPE_Q6_K : QK_TYPE_Q4_K;
        EXPECT(tm, hi, "blk.%d.attn_v.weight", l);
        EXPECT(tm, hi, "blk.%d.ffn_down.weight", l);
        EXPECT_REASON(tm, in_set(l, more, 16) ? QK_PLAN_MIXTURE : QK_PLAN_DEFAULT, "blk.%d.attn_v.weight", l);
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.attn_q.weight", l);
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.attn_k.weight", l);
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.attn_output.weight", l);
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.ffn_gate.weight", l);
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.ffn_up.weight", l);
        EXPECT_KEPT(tm, "blk.%d.attn_norm.weight", l);
        EXPECT_KEPT(tm, "blk.%d.ffn_norm.weight", l);
    }
    int all_converted = 1;
    for (size_t i = 0; i < tm->n; i++)
        if (tm->e[i].reason != QK_PLAN_KEEP && !tm->e[i].quantize) all_converted = 0;
    CHECK(all_converted, "every weight of a float model is converted");
    free(tm);
}

/* ---- output and token embedding --------------------------------------------------------- */

static void test_output_and_token_embd_per_ftype(void) {
    static const struct {
        const char *ftype;
        qk_type embd, out;
    } cases[] = {
        {"Q4_K_M", QK_TYPE_Q4_K, QK_TYPE_Q6_K},    {"Q8_0", QK_TYPE_Q8_0, QK_TYPE_Q8_0},
        {"Q4_0", QK_TYPE_Q4_0, QK_TYPE_Q6_K},      {"Q6_K", QK_TYPE_Q6_K, QK_TYPE_Q6_K},
        {"Q2_K", QK_TYPE_Q2_K, QK_TYPE_Q6_K},      {"IQ4_XS", QK_TYPE_IQ4_XS, QK_TYPE_Q6_K},
        {"IQ2_XXS", QK_TYPE_Q2_K, QK_TYPE_Q5_K},   {"IQ2_XS", QK_TYPE_Q2_K, QK_TYPE_Q5_K},
        {"IQ1_S", QK_TYPE_Q2_K, QK_TYPE_Q5_K},     {"IQ1_M", QK_TYPE_Q2_K, QK_TYPE_Q5_K},
        {"IQ2_S", QK_TYPE_IQ3_S, QK_TYPE_Q5_K},    {"IQ2_M", QK_TYPE_IQ3_S, QK_TYPE_Q5_K},
        {"IQ3_XXS", QK_TYPE_IQ3_S, QK_TYPE_Q5_K},  {"IQ3_S", QK_TYPE_IQ3_S, QK_TYPE_Q6_K},
        {"TQ1_0", QK_TYPE_Q4_K, QK_TYPE_Q6_K},     {"TQ2_0", QK_TYPE_Q4_K, QK_TYPE_Q6_K},
        {"MXFP4_MOE", QK_TYPE_Q8_0, QK_TYPE_Q8_0}, {"F16", QK_TYPE_F16, QK_TYPE_F16},
        {"BF16", QK_TYPE_BF16, QK_TYPE_BF16},      {"F32", QK_TYPE_F32, QK_TYPE_F32},
    };
    tmodel *tm = calloc(1, sizeof *tm);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dense_model(tm, "llama", 8, 32, 8, 0);
        qk_plan_options o = options(cases[i].ftype);
        o.has_imatrix = 1;
        CHECK(build(tm, &o) == QK_OK, "%s plan: %s", cases[i].ftype, qk_last_error(NULL));
        EXPECT(tm, cases[i].embd, "token_embd.weight");
        EXPECT(tm, cases[i].out, "output.weight");
    }
    /* Falcon keeps output at Q8_0 */
    dense_model(tm, "falcon", 8, 32, 8, 0);
    qk_plan_options o = options("Q4_K_M");
    CHECK(build(tm, &o) == QK_OK, "falcon plan");
    EXPECT(tm, QK_TYPE_Q8_0, "output.weight");
    /* an output whose rows do not fill a 256-block: Q8_0 instead of Q6_K */
    init_model(tm, "llama", 1, 32, 8, 0);
    W(tm, 4160, 32000, "token_embd.weight");
    W(tm, 4160, 32000, "output.weight");
    CHECK(build(tm, &o) == QK_OK, "4160-wide plan");
    EXPECT(tm, QK_TYPE_Q8_0, "output.weight");
    EXPECT(tm, QK_TYPE_Q5_0, "token_embd.weight");
    EXPECT_REASON(tm, QK_PLAN_FALLBACK, "token_embd.weight");
    /* 100 columns: Q8_0 does not fit either, a 32-block type has nothing smaller: F16 */
    init_model(tm, "llama", 1, 32, 8, 0);
    W(tm, 100, 32000, "output.weight");
    CHECK(build(tm, &o) == QK_OK, "100-wide output at Q4_K_M: %s", qk_last_error(NULL));
    EXPECT(tm, QK_TYPE_F16, "output.weight");
    EXPECT_REASON(tm, QK_PLAN_FALLBACK, "output.weight");
    /* --output-tensor-type / --token-embedding-type win */
    dense_model(tm, "llama", 8, 32, 8, 0);
    o = options("IQ2_XXS");
    o.has_imatrix = 1;
    o.output_tensor_type = QK_TYPE_Q8_0;
    o.token_embedding_type = QK_TYPE_Q4_0;
    CHECK(build(tm, &o) == QK_OK, "forced types plan");
    EXPECT(tm, QK_TYPE_Q8_0, "output.weight");
    EXPECT(tm, QK_TYPE_Q4_0, "token_embd.weight");
    EXPECT_REASON(tm, QK_PLAN_OUTPUT, "token_embd.weight");
    /* a forced type that cannot hold the rows is an error, not a crash */
    init_model(tm, "llama", 1, 32, 8, 0);
    W(tm, 4160, 32000, "output.weight");
    o = options("Q4_K_M");
    o.output_tensor_type = QK_TYPE_Q6_K;
    CHECK(build(tm, &o) == QK_ERR_SHAPE, "Q6_K forced on 4160 columns fails");
    free(tm);
}

/* No output.weight: the token embedding is the output projection and follows output rules. */
static void test_tied_embedding(void) {
    tmodel *tm = calloc(1, sizeof *tm);
    static const struct {
        const char *ftype;
        int out_type, embd_type, pure;
        qk_type want;
    } cases[] = {
        {"Q4_K_M", -1, -1, 0, QK_TYPE_Q6_K},
        {"IQ2_XXS", -1, -1, 0, QK_TYPE_Q5_K},
        {"Q8_0", -1, -1, 0, QK_TYPE_Q8_0},
        {"MXFP4_MOE", -1, -1, 0, QK_TYPE_Q8_0},
        {"Q4_K_M", QK_TYPE_Q8_0, -1, 0, QK_TYPE_Q8_0},           /* output type reaches it via the rules */
        {"Q4_K_M", QK_TYPE_Q8_0, QK_TYPE_Q4_0, 0, QK_TYPE_Q4_0}, /* its own type wins */
        {"Q4_K_M", -1, -1, 1, QK_TYPE_Q4_K},                     /* --pure: no rules */
        {"Q4_K_M", QK_TYPE_Q8_0, -1, 1, QK_TYPE_Q4_K},           /* --pure: output type not applied */
        {"F16", QK_TYPE_Q8_0, -1, 0, QK_TYPE_F16},               /* float preset: no rules either */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dense_model(tm, "llama", 8, 32, 8, 1);
        qk_plan_options o = options(cases[i].ftype);
        o.output_tensor_type = cases[i].out_type;
        o.token_embedding_type = cases[i].embd_type;
        o.pure = cases[i].pure;
        o.has_imatrix = 1;
        CHECK(build(tm, &o) == QK_OK, "tied case %zu: %s", i, qk_last_error(NULL));
        EXPECT(tm, cases[i].want, "token_embd.weight");
    }
    free(tm);
}

/* ---- MoE rules -------------------------------------------------------------------------- */

static void test_mxfp4_moe(void) {
    tmodel *tm = calloc(1, sizeof *tm);
    init_model(tm, "gpt-oss", 4, 64, 8, 32);
    add_globals(tm, 2880, 0);
    for (int l = 0; l < 4; l++) add_moe_layer(tm, l, 2880, 512, 2880, 32);
    W3(tm, 2880, 64, 1, "blk.0.flat3d.weight"); /* 3-D in name only: ne[2] == 1 */
    qk_plan_options o = options("MXFP4_MOE");
    CHECK(build(tm, &o) == QK_OK, "MXFP4_MOE plan: %s", qk_last_error(NULL));
    EXPECT(tm, QK_TYPE_Q8_0, "token_embd.weight");
    EXPECT(tm, QK_TYPE_Q8_0, "output.weight");
    EXPECT(tm, QK_TYPE_Q8_0, "blk.0.flat3d.weight");
    for (int l = 0; l < 4; l++) {
        EXPECT(tm, QK_TYPE_MXFP4, "blk.%d.ffn_gate_exps.weight", l);
        EXPECT(tm, QK_TYPE_MXFP4, "blk.%d.ffn_up_exps.weight", l);
        EXPECT(tm, QK_TYPE_MXFP4, "blk.%d.ffn_down_exps.weight", l);
        EXPECT(tm, QK_TYPE_Q8_0, "blk.%d.attn_q.weight", l);
        EXPECT(tm, QK_TYPE_Q8_0, "blk.%d.attn_k.weight", l);
        EXPECT(tm, QK_TYPE_Q8_0, "blk.%d.attn_v.weight", l);
        EXPECT(tm, QK_TYPE_Q8_0, "blk.%d.attn_output.weight", l);
        EXPECT_KEPT(tm, "blk.%d.ffn_gate_inp.weight", l);
    }
    /* BailingMoE3: only FFN expert tensors become MXFP4, its 3-D MLA tensors Q8_0 */
    init_model(tm, "bailingmoe3", 1, 16, 16, 64);
    W3(tm, 512, 128, 16, "blk.0.attn_k_b.weight");
    W3(tm, 1024, 512, 64, "blk.0.ffn_up_exps.weight");
    CHECK(build(tm, &o) == QK_OK, "bailingmoe3 plan");
    EXPECT(tm, QK_TYPE_Q8_0, "blk.0.attn_k_b.weight");
    EXPECT(tm, QK_TYPE_MXFP4, "blk.0.ffn_up_exps.weight");
    init_model(tm, "deepseek2", 1, 16, 16, 64);
    W3(tm, 512, 128, 16, "blk.0.attn_k_b.weight");
    CHECK(build(tm, &o) == QK_OK, "deepseek2 plan");
    EXPECT(tm, QK_TYPE_MXFP4, "blk.0.attn_k_b.weight");
    /* MXFP4 is a 32-block type: 48 columns fall back to F16 */
    init_model(tm, "gpt-oss", 1, 64, 8, 32);
    W3(tm, 48, 64, 32, "blk.0.ffn_up_exps.weight");
    CHECK(build(tm, &o) == QK_OK, "MXFP4 with 48 columns: %s", qk_last_error(NULL));
    EXPECT(tm, QK_TYPE_F16, "blk.0.ffn_up_exps.weight");
    free(tm);
}

/* Mixtral-like, 8 experts: attn_v and attn_k Q8_0, attn_output Q5_K; ffn_down by layer number. */
static void test_eight_expert_rules(void) {
    static const int more[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    tmodel *tm = calloc(1, sizeof *tm);
    init_model(tm, "llama", 32, 32, 8, 8);
    add_globals(tm, 4096, 0);
    for (int l = 0; l < 32; l++) add_moe_layer(tm, l, 4096, 1024, 14336, 8);
    qk_plan_options o = options("Q4_K_M");
    CHECK(build(tm, &o) == QK_OK, "8-expert Q4_K_M: %s", qk_last_error(NULL));
    for (int l = 0; l < 32; l++) {
        EXPECT(tm, QK_TYPE_Q8_0, "blk.%d.attn_v.weight", l);
        EXPECT(tm, QK_TYPE_Q8_0, "blk.%d.attn_k.weight", l);
        EXPECT(tm, QK_TYPE_Q5_K, "blk.%d.attn_output.weight", l);
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.attn_q.weight", l);
        EXPECT(tm, in_set(l, more, 16) ? QK_TYPE_Q6_K : QK_TYPE_Q4_K, "blk.%d.ffn_down_exps.weight", l);
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.ffn_up_exps.weight", l);
    }
    o = options("Q3_K_M");
    CHECK(build(tm, &o) == QK_OK, "8-expert Q3_K_M");
    EXPECT(tm, QK_TYPE_Q8_0, "blk.0.attn_v.weight"); /* E == 8 overrides the i_v < 2 rule */
    EXPECT(tm, QK_TYPE_Q8_0, "blk.9.attn_v.weight");
    /* IQ-low: attn_v Q4_K (E >= 4), attn_k Q4_K, attn_output Q5_K, first n/8 ffn_down Q2_K */
    o = options("IQ2_XXS");
    o.has_imatrix = 1;
    CHECK(build(tm, &o) == QK_OK, "8-expert IQ2_XXS");
    for (int l = 0; l < 32; l++) {
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.attn_v.weight", l);
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.attn_k.weight", l);
        EXPECT(tm, QK_TYPE_Q5_K, "blk.%d.attn_output.weight", l);
        EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.%d.attn_q.weight", l);
        EXPECT(tm, l < 4 ? QK_TYPE_Q2_K : QK_TYPE_IQ2_XXS, "blk.%d.ffn_down_exps.weight", l);
        EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.%d.ffn_gate_exps.weight", l);
    }
    /* IQ3_M with 8 experts: ffn_down Q4_K for i < n/8 or use_more_bits */
    o = options("IQ3_M");
    CHECK(build(tm, &o) == QK_OK, "8-expert IQ3_M");
    for (int l = 0; l < 32; l++)
        EXPECT(tm, in_set(l, more, 16) ? QK_TYPE_Q4_K : QK_TYPE_IQ3_S, "blk.%d.ffn_down_exps.weight", l);
    free(tm);
}

/* IQ-low presets without 8 experts. */
static void test_iq_low_attention_rules(void) {
    tmodel *tm = calloc(1, sizeof *tm);
    /* a 64-expert MoE without GQA: E >= 4 lifts attn_v to Q4_K; attn_k/q/output keep IQ2_XXS */
    init_model(tm, "qwen2moe", 8, 16, 16, 64);
    add_globals(tm, 2048, 0);
    for (int l = 0; l < 8; l++) add_moe_layer(tm, l, 2048, 2048, 1536, 64);
    qk_plan_options o = options("IQ2_XXS");
    o.has_imatrix = 1;
    CHECK(build(tm, &o) == QK_OK, "64-expert IQ2_XXS: %s", qk_last_error(NULL));
    for (int l = 0; l < 8; l++) {
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.attn_v.weight", l);
        EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.%d.attn_k.weight", l);
        EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.%d.attn_q.weight", l);
        EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.%d.attn_output.weight", l);
        /* n/8 = 1: only the first ffn_down tensor */
        EXPECT(tm, l == 0 ? QK_TYPE_Q2_K : QK_TYPE_IQ2_XXS, "blk.%d.ffn_down_exps.weight", l);
    }
    /* dense, no GQA */
    static const struct {
        const char *ftype;
        qk_type v, out, down0, q;
    } cases[] = {
        {"IQ2_XXS", QK_TYPE_Q2_K, QK_TYPE_IQ2_XXS, QK_TYPE_Q2_K, QK_TYPE_IQ2_XXS},
        {"IQ2_XS", QK_TYPE_Q2_K, QK_TYPE_IQ2_XS, QK_TYPE_Q2_K, QK_TYPE_IQ2_XS},
        {"IQ2_S", QK_TYPE_IQ3_S, QK_TYPE_IQ3_S, QK_TYPE_IQ3_S, QK_TYPE_IQ2_XS},
        {"IQ2_M", QK_TYPE_IQ3_S, QK_TYPE_IQ3_S, QK_TYPE_IQ3_S, QK_TYPE_IQ2_S},
        {"IQ1_S", QK_TYPE_Q2_K, QK_TYPE_IQ2_XXS, QK_TYPE_Q2_K, QK_TYPE_IQ1_S},
        {"IQ1_M", QK_TYPE_Q2_K, QK_TYPE_IQ2_XXS, QK_TYPE_Q2_K, QK_TYPE_IQ1_M},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dense_model(tm, "llama", 16, 32, 32, 0);
        o = options(cases[i].ftype);
        o.has_imatrix = 1;
        CHECK(build(tm, &o) == QK_OK, "%s dense: %s", cases[i].ftype, qk_last_error(NULL));
        EXPECT(tm, cases[i].v, "blk.5.attn_v.weight");
        EXPECT(tm, cases[i].out, "blk.5.attn_output.weight");
        EXPECT(tm, cases[i].down0, "blk.0.ffn_down.weight");
        EXPECT(tm, cases[i].down0, "blk.1.ffn_down.weight");
        EXPECT(tm, cases[i].q, "blk.2.ffn_down.weight");
        EXPECT(tm, cases[i].q, "blk.5.attn_q.weight");
        EXPECT(tm, cases[i].q, "blk.5.attn_k.weight");
        EXPECT(tm, cases[i].q, "blk.5.ffn_up.weight");
    }
    /* GQA 4 lifts attn_v to Q4_K in a dense model too */
    dense_model(tm, "llama", 16, 32, 8, 0);
    o = options("IQ2_S");
    CHECK(build(tm, &o) == QK_OK, "IQ2_S GQA");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.3.attn_v.weight");
    free(tm);
}

/* ---- the k-quant / i-quant mixtures of dense models ------------------------------------- */

static void test_dense_mixtures(void) {
    tmodel *tm = calloc(1, sizeof *tm);
    qk_plan_options o;

    /* Q3_K_M, no GQA: attn_v Q5_K for the first two, Q4_K after; ffn_down Q5_K below n/16 = 2 */
    dense_model(tm, "llama", 32, 32, 32, 0);
    o = options("Q3_K_M");
    CHECK(build(tm, &o) == QK_OK, "Q3_K_M");
    for (int l = 0; l < 32; l++) {
        EXPECT(tm, l < 2 ? QK_TYPE_Q5_K : QK_TYPE_Q4_K, "blk.%d.attn_v.weight", l);
        EXPECT(tm, l < 2 ? QK_TYPE_Q5_K : QK_TYPE_Q4_K, "blk.%d.ffn_down.weight", l);
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.attn_output.weight", l);
        EXPECT(tm, QK_TYPE_Q3_K, "blk.%d.attn_q.weight", l);
        EXPECT(tm, QK_TYPE_Q3_K, "blk.%d.ffn_gate.weight", l);
    }
    /* Falcon Q3_K_M: ffn_down Q4_K only where use_more_bits */
    static const int more32[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    dense_model(tm, "falcon", 32, 32, 32, 0);
    CHECK(build(tm, &o) == QK_OK, "falcon Q3_K_M");
    for (int l = 0; l < 32; l++) {
        qk_type want = l < 2 ? QK_TYPE_Q5_K : in_set(l, more32, 16) ? QK_TYPE_Q4_K : QK_TYPE_Q3_K;
        EXPECT(tm, want, "blk.%d.ffn_down.weight", l);
        EXPECT(tm, QK_TYPE_Q3_K, "blk.%d.attn_output.weight", l); /* no Falcon rule for Q3_K_M */
    }

    /* Q4_K_S: attn_v Q5_K for i_v < 4, ffn_down Q5_K below n/8 = 4 */
    dense_model(tm, "llama", 32, 32, 8, 0);
    o = options("Q4_K_S");
    CHECK(build(tm, &o) == QK_OK, "Q4_K_S");
    for (int l = 0; l < 32; l++) {
        EXPECT(tm, l < 4 ? QK_TYPE_Q5_K : QK_TYPE_Q4_K, "blk.%d.attn_v.weight", l);
        EXPECT(tm, l < 4 ? QK_TYPE_Q5_K : QK_TYPE_Q4_K, "blk.%d.ffn_down.weight", l);
    }

    /* Q3_K_L: attn_v, ffn_down, attn_output Q5_K */
    o = options("Q3_K_L");
    CHECK(build(tm, &o) == QK_OK, "Q3_K_L");
    EXPECT(tm, QK_TYPE_Q5_K, "blk.17.attn_v.weight");
    EXPECT(tm, QK_TYPE_Q5_K, "blk.17.ffn_down.weight");
    EXPECT(tm, QK_TYPE_Q5_K, "blk.17.attn_output.weight");
    EXPECT(tm, QK_TYPE_Q3_K, "blk.17.ffn_up.weight");

    /* Q5_K_M: same layer set as Q4_K_M with Q6_K */
    o = options("Q5_K_M");
    CHECK(build(tm, &o) == QK_OK, "Q5_K_M");
    for (int l = 0; l < 32; l++) {
        EXPECT(tm, in_set(l, more32, 16) ? QK_TYPE_Q6_K : QK_TYPE_Q5_K, "blk.%d.attn_v.weight", l);
        EXPECT(tm, in_set(l, more32, 16) ? QK_TYPE_Q6_K : QK_TYPE_Q5_K, "blk.%d.ffn_down.weight", l);
    }

    /* Q2_K: GQA attn_v Q4_K; ffn_down Q3_K; attn_output Q3_K */
    o = options("Q2_K");
    CHECK(build(tm, &o) == QK_OK, "Q2_K");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.3.attn_v.weight");
    EXPECT(tm, QK_TYPE_Q3_K, "blk.3.ffn_down.weight");
    EXPECT(tm, QK_TYPE_Q3_K, "blk.3.attn_output.weight");
    EXPECT(tm, QK_TYPE_Q2_K, "blk.3.attn_q.weight");

    /* Q2_K_S: ffn_down Q4_K below n/8 */
    o = options("Q2_K_S");
    CHECK(build(tm, &o) == QK_OK, "Q2_K_S");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.3.ffn_down.weight");
    EXPECT(tm, QK_TYPE_Q2_K, "blk.4.ffn_down.weight");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.4.attn_v.weight");

    /* IQ3_XS: ffn_gate/up IQ3_XXS on n/8 <= i < 7n/8, attn_q/k IQ3_XXS, GQA attn_v Q4_K */
    o = options("IQ3_XS");
    CHECK(build(tm, &o) == QK_OK, "IQ3_XS");
    for (int l = 0; l < 32; l++) {
        qk_type mid = l >= 4 && l < 28 ? QK_TYPE_IQ3_XXS : QK_TYPE_IQ3_S;
        EXPECT(tm, mid, "blk.%d.ffn_gate.weight", l);
        EXPECT(tm, mid, "blk.%d.ffn_up.weight", l);
        EXPECT(tm, QK_TYPE_IQ3_XXS, "blk.%d.attn_q.weight", l);
        EXPECT(tm, QK_TYPE_IQ3_XXS, "blk.%d.attn_k.weight", l);
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.attn_v.weight", l);
        EXPECT(tm, QK_TYPE_IQ3_S, "blk.%d.ffn_down.weight", l);
    }

    /* IQ3_XXS without GQA: attn_v IQ3_S without imatrix, IQ3_XXS with; ffn_down Q4_K/Q3_K
     * without imatrix only; attn_k/q IQ2_S; attn_output IQ3_S */
    dense_model(tm, "llama", 32, 32, 32, 0);
    o = options("IQ3_XXS");
    CHECK(build(tm, &o) == QK_OK, "IQ3_XXS");
    EXPECT(tm, QK_TYPE_IQ3_S, "blk.7.attn_v.weight");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.3.ffn_down.weight");
    EXPECT(tm, QK_TYPE_Q3_K, "blk.4.ffn_down.weight");
    EXPECT(tm, QK_TYPE_IQ2_S, "blk.7.attn_k.weight");
    EXPECT(tm, QK_TYPE_IQ2_S, "blk.7.attn_q.weight");
    EXPECT(tm, QK_TYPE_IQ3_S, "blk.7.attn_output.weight");
    o.has_imatrix = 1;
    CHECK(build(tm, &o) == QK_OK, "IQ3_XXS imatrix");
    EXPECT(tm, QK_TYPE_IQ3_XXS, "blk.7.attn_v.weight");
    EXPECT(tm, QK_TYPE_IQ3_XXS, "blk.3.ffn_down.weight");

    /* IQ3_M: attn_v Q4_K, ffn_down Q4_K below n/8, attn_output Q4_K */
    o = options("IQ3_M");
    CHECK(build(tm, &o) == QK_OK, "IQ3_M");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.20.attn_v.weight");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.3.ffn_down.weight");
    EXPECT(tm, QK_TYPE_IQ3_S, "blk.4.ffn_down.weight");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.20.attn_output.weight");

    /* IQ4_NL / IQ4_XS: GQA attn_v Q5_K; ffn_down Q5_K below n/8 without imatrix */
    dense_model(tm, "llama", 32, 32, 8, 0);
    o = options("IQ4_XS");
    CHECK(build(tm, &o) == QK_OK, "IQ4_XS");
    EXPECT(tm, QK_TYPE_Q5_K, "blk.20.attn_v.weight");
    EXPECT(tm, QK_TYPE_Q5_K, "blk.3.ffn_down.weight");
    EXPECT(tm, QK_TYPE_IQ4_XS, "blk.4.ffn_down.weight");
    o.has_imatrix = 1;
    CHECK(build(tm, &o) == QK_OK, "IQ4_XS imatrix");
    EXPECT(tm, QK_TYPE_IQ4_XS, "blk.3.ffn_down.weight");

    /* Q4_0 / Q5_0: the first n/8 ffn_down become Q4_1 / Q5_1, only with an imatrix */
    o = options("Q4_0");
    CHECK(build(tm, &o) == QK_OK, "Q4_0");
    EXPECT(tm, QK_TYPE_Q4_0, "blk.0.ffn_down.weight");
    o.has_imatrix = 1;
    CHECK(build(tm, &o) == QK_OK, "Q4_0 imatrix");
    EXPECT(tm, QK_TYPE_Q4_1, "blk.3.ffn_down.weight");
    EXPECT(tm, QK_TYPE_Q4_0, "blk.4.ffn_down.weight");
    o = options("Q5_0");
    o.has_imatrix = 1;
    CHECK(build(tm, &o) == QK_OK, "Q5_0 imatrix");
    EXPECT(tm, QK_TYPE_Q5_1, "blk.0.ffn_down.weight");
    EXPECT(tm, QK_TYPE_Q5_0, "blk.0.attn_v.weight");

    /* Q6_K, Q8_0, Q5_K_S: no mixture besides output */
    o = options("Q5_K_S");
    CHECK(build(tm, &o) == QK_OK, "Q5_K_S");
    EXPECT(tm, QK_TYPE_Q5_K, "blk.0.attn_v.weight");
    EXPECT(tm, QK_TYPE_Q5_K, "blk.0.ffn_down.weight");
    free(tm);
}

/* LLaMA-70B class (80 layers, GQA): Q3_K/Q4_K attn_v become Q5_K; 65B (no GQA) does not. */
static void test_seventy_b_rule(void) {
    static const int more80[] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  12, 15, 18, 21, 24, 27, 30, 33, 36, 39,
                                 42, 45, 48, 51, 54, 57, 60, 63, 66, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79};
    tmodel *tm = calloc(1, sizeof *tm);
    dense_model(tm, "llama", 80, 64, 8, 0);
    qk_plan_options o = options("Q4_K_M");
    CHECK(build(tm, &o) == QK_OK, "70B Q4_K_M");
    for (int l = 0; l < 80; l++) {
        int more = in_set(l, more80, sizeof more80 / sizeof more80[0]);
        EXPECT(tm, more ? QK_TYPE_Q6_K : QK_TYPE_Q5_K, "blk.%d.attn_v.weight", l);
        EXPECT(tm, more ? QK_TYPE_Q6_K : QK_TYPE_Q4_K, "blk.%d.ffn_down.weight", l);
    }
    dense_model(tm, "llama", 80, 64, 64, 0);
    CHECK(build(tm, &o) == QK_OK, "65B Q4_K_M");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.10.attn_v.weight");
    dense_model(tm, "qwen2", 80, 64, 8, 0);
    o = options("Q3_K_M");
    CHECK(build(tm, &o) == QK_OK, "qwen2 80 Q3_K_M");
    EXPECT(tm, QK_TYPE_Q5_K, "blk.10.attn_v.weight");
    dense_model(tm, "gemma", 80, 64, 8, 0);
    CHECK(build(tm, &o) == QK_OK, "gemma 80 Q3_K_M");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.10.attn_v.weight");
    free(tm);
}

/* ---- overrides, --pure, --leave-output-tensor ------------------------------------------- */

static void test_tensor_type_overrides(void) {
    tmodel *tm = calloc(1, sizeof *tm);
    dense_model(tm, "llama", 32, 32, 8, 0);
    qk_plan_options o = options("Q4_K_M");

    /* first match wins; upper case in the pattern is lowered; '.' and anchors are regex */
    qk_plan_override ov[] = {
        {"^BLK\\.1\\.", QK_TYPE_Q8_0},
        {"attn_q", QK_TYPE_Q5_0},
        {"ffn_(up|gate)", QK_TYPE_IQ4_NL},
        {"blk\\.2\\.", QK_TYPE_Q2_K},
    };
    o.overrides = ov;
    o.n_overrides = 4;
    CHECK(build(tm, &o) == QK_OK, "overrides: %s", qk_last_error(NULL));
    EXPECT(tm, QK_TYPE_Q8_0, "blk.1.attn_q.weight");
    EXPECT(tm, QK_TYPE_Q8_0, "blk.1.attn_v.weight");
    EXPECT(tm, QK_TYPE_Q8_0, "blk.1.ffn_up.weight");
    EXPECT_REASON(tm, QK_PLAN_OVERRIDE, "blk.1.ffn_down.weight");
    EXPECT(tm, QK_TYPE_Q5_0, "blk.2.attn_q.weight");
    EXPECT(tm, QK_TYPE_IQ4_NL, "blk.2.ffn_gate.weight");
    EXPECT(tm, QK_TYPE_Q2_K, "blk.2.attn_v.weight");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.11.attn_k.weight");
    EXPECT_KEPT(tm, "blk.1.attn_norm.weight");
    /* the counters skip overridden tensors: layer 1 and 2's attn_v are not counted, so layer L
     * (L >= 3) has i_v = L - 2 and layers 0, 3, 4, 5, 8, 11, ... get Q6_K */
    static const int more_v[] = {0, 3, 4, 5, 8, 11, 14, 17, 20, 23, 26, 29, 30, 31};
    for (int l = 3; l < 32; l++)
        EXPECT(tm, in_set(l, more_v, 14) ? QK_TYPE_Q6_K : QK_TYPE_Q4_K, "blk.%d.attn_v.weight", l);
    EXPECT(tm, QK_TYPE_Q6_K, "blk.0.attn_v.weight");
    /* dense ffn_down counts its own running index: layers 1 and 2 skipped as well */
    for (int l = 3; l < 32; l++)
        EXPECT(tm, in_set(l, more_v, 14) ? QK_TYPE_Q6_K : QK_TYPE_Q4_K, "blk.%d.ffn_down.weight", l);

    /* "output" also matches attn_output; --output-tensor-type still wins for output.weight */
    qk_plan_override out_ov[] = {{"output", QK_TYPE_Q8_0}};
    o.overrides = out_ov;
    o.n_overrides = 1;
    CHECK(build(tm, &o) == QK_OK, "output override");
    EXPECT(tm, QK_TYPE_Q8_0, "output.weight");
    EXPECT_REASON(tm, QK_PLAN_OVERRIDE, "output.weight");
    EXPECT(tm, QK_TYPE_Q8_0, "blk.4.attn_output.weight");
    o.output_tensor_type = QK_TYPE_Q4_0;
    CHECK(build(tm, &o) == QK_OK, "output override + type");
    EXPECT(tm, QK_TYPE_Q4_0, "output.weight");
    EXPECT_REASON(tm, QK_PLAN_OUTPUT, "output.weight");
    o.output_tensor_type = -1;

    /* --token-embedding-type beats a matching pattern */
    qk_plan_override embd_ov[] = {{"token_embd", QK_TYPE_Q5_0}};
    o.overrides = embd_ov;
    CHECK(build(tm, &o) == QK_OK, "embd override");
    EXPECT(tm, QK_TYPE_Q5_0, "token_embd.weight");
    o.token_embedding_type = QK_TYPE_Q8_0;
    CHECK(build(tm, &o) == QK_OK, "embd override + type");
    EXPECT(tm, QK_TYPE_Q8_0, "token_embd.weight");
    o.token_embedding_type = -1;

    /* an override still goes through the shape fallback */
    init_model(tm, "llama", 1, 32, 8, 0);
    W(tm, 320, 64, "blk.0.attn_q.weight");
    qk_plan_override q4k[] = {{"attn_q", QK_TYPE_Q4_K}};
    o.overrides = q4k;
    CHECK(build(tm, &o) == QK_OK, "override fallback");
    EXPECT(tm, QK_TYPE_Q5_0, "blk.0.attn_q.weight");
    EXPECT_REASON(tm, QK_PLAN_FALLBACK, "blk.0.attn_q.weight");

    /* float presets ignore overrides */
    dense_model(tm, "llama", 4, 32, 8, 0);
    qk_plan_options f = options("F16");
    f.overrides = ov;
    f.n_overrides = 4;
    CHECK(build(tm, &f) == QK_OK, "F16 with overrides");
    EXPECT(tm, QK_TYPE_F16, "blk.1.attn_q.weight");
    EXPECT(tm, QK_TYPE_F16, "blk.2.ffn_up.weight");

    /* a broken pattern */
    qk_plan_override bad[] = {{"attn_(v", QK_TYPE_Q8_0}};
    o.overrides = bad;
    o.n_overrides = 1;
    CHECK(build(tm, &o) == QK_ERR_INVALID_ARG && strstr(qk_last_error(NULL), "attn_(v"),
          "bad regex names the pattern: %s", qk_last_error(NULL));
    qk_plan_override bad_type[] = {{"attn", (qk_type)4}};
    o.overrides = bad_type;
    CHECK(build(tm, &o) == QK_ERR_INVALID_ARG, "override to a removed type id fails");
    free(tm);
}

static void test_pure_and_leave_output(void) {
    tmodel *tm = calloc(1, sizeof *tm);
    dense_model(tm, "llama", 32, 32, 8, 0);
    W(tm, 320, 64, "blk.0.odd.weight");
    qk_plan_options o = options("Q4_K_M");
    o.pure = 1;
    CHECK(build(tm, &o) == QK_OK, "pure");
    EXPECT(tm, QK_TYPE_Q4_K, "output.weight");
    EXPECT(tm, QK_TYPE_Q4_K, "token_embd.weight");
    for (int l = 0; l < 32; l++) {
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.attn_v.weight", l);
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.ffn_down.weight", l);
        EXPECT_REASON(tm, QK_PLAN_DEFAULT, "blk.%d.attn_v.weight", l);
    }
    EXPECT(tm, QK_TYPE_Q5_0, "blk.0.odd.weight"); /* fallbacks still apply */
    o.output_tensor_type = QK_TYPE_Q8_0;
    CHECK(build(tm, &o) == QK_OK, "pure + output type");
    EXPECT(tm, QK_TYPE_Q8_0, "output.weight");

    /* --leave-output-tensor: output copied as it is; the model is still untied */
    dense_model(tm, "llama", 8, 32, 8, 0);
    o = options("Q4_K_M");
    o.leave_output_tensor = 1;
    CHECK(build(tm, &o) == QK_OK, "leave output");
    EXPECT_KEPT(tm, "output.weight");
    EXPECT(tm, QK_TYPE_Q4_K, "token_embd.weight");
    /* a quantized output left alone is not refused */
    init_model(tm, "llama", 1, 32, 8, 0);
    add_t(tm, QK_TYPE_Q6_K, 4096, 32000, 0, "output.weight");
    W(tm, 4096, 32000, "token_embd.weight");
    CHECK(build(tm, &o) == QK_OK, "leave quantized output: %s", qk_last_error(NULL));
    EXPECT_KEPT(tm, "output.weight");
    free(tm);
}

/* ---- shapes ----------------------------------------------------------------------------- */

static void test_shape_fallbacks(void) {
    static const struct {
        const char *ftype;
        const char *name;
        int64_t ne0;
        qk_type want; /* 0x7fff: error */
    } cases[] = {
        {"Q4_K_M", "blk.0.ffn_gate.weight", 320, QK_TYPE_Q5_0},
        {"Q4_K_M", "blk.0.ffn_down.weight", 320, QK_TYPE_Q8_0}, /* layer 0 ffn_down is Q6_K first */
        {"Q4_K_M", "blk.0.ffn_gate.weight", 20, QK_TYPE_F16},   /* Q5_0 does not fit 20 either */
        {"IQ2_XXS", "blk.0.ffn_gate.weight", 96, QK_TYPE_IQ4_NL},
        {"IQ2_XXS", "blk.0.ffn_gate.weight", 80, QK_TYPE_F16},
        {"IQ1_M", "blk.0.ffn_up.weight", 160, QK_TYPE_IQ4_NL},
        {"IQ4_XS", "blk.0.ffn_up.weight", 96, QK_TYPE_IQ4_NL},
        {"IQ3_S", "blk.0.ffn_up.weight", 96, QK_TYPE_IQ4_NL},
        {"Q2_K", "blk.0.ffn_up.weight", 320, QK_TYPE_Q4_0},
        {"Q3_K_S", "blk.0.ffn_up.weight", 320, QK_TYPE_Q4_0},
        {"TQ1_0", "blk.0.ffn_up.weight", 320, QK_TYPE_Q4_0},
        {"Q5_K_S", "blk.0.ffn_up.weight", 320, QK_TYPE_Q5_1},
        {"Q6_K", "blk.0.ffn_up.weight", 320, QK_TYPE_Q8_0},
        {"Q6_K", "blk.0.ffn_up.weight", 512, QK_TYPE_Q6_K},
        {"Q4_0", "blk.0.ffn_up.weight", 48, QK_TYPE_F16}, /* 32-block types: F16 */
        {"Q8_0", "blk.0.ffn_up.weight", 48, QK_TYPE_F16},
        {"IQ4_NL", "blk.0.ffn_up.weight", 48, QK_TYPE_F16},
        {"Q2_0", "blk.0.ffn_up.weight", 96, QK_TYPE_Q4_0},
        {"Q2_0", "blk.0.ffn_up.weight", 80, QK_TYPE_F16},
        {"Q1_0", "blk.0.ffn_up.weight", 96, (qk_type)0x7fff}, /* no fallback defined, as in llama.cpp */
        {"F16", "blk.0.ffn_up.weight", 7, QK_TYPE_F16},
    };
    tmodel *tm = calloc(1, sizeof *tm);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        init_model(tm, "llama", 1, 32, 32, 0);
        W(tm, cases[i].ne0, 64, "%s", cases[i].name);
        qk_plan_options o = options(cases[i].ftype);
        o.has_imatrix = 1;
        qk_status s = build(tm, &o);
        if (cases[i].want == (qk_type)0x7fff) {
            CHECK(s == QK_ERR_SHAPE && strstr(qk_last_error(NULL), cases[i].name),
                  "%s, %lld columns: should fail naming the tensor (%d, %s)", cases[i].ftype, (long long)cases[i].ne0,
                  (int)s, qk_last_error(NULL));
        } else {
            CHECK(s == QK_OK, "%s, %lld columns: %s", cases[i].ftype, (long long)cases[i].ne0, qk_last_error(NULL));
            EXPECT(tm, cases[i].want, "%s", cases[i].name);
        }
    }
    free(tm);
}

/* ---- input types ------------------------------------------------------------------------ */

static void test_requantize(void) {
    tmodel *tm = calloc(1, sizeof *tm);
    init_model(tm, "llama", 8, 32, 8, 0);
    W(tm, 4096, 4096, "blk.0.attn_k.weight");
    add_t(tm, QK_TYPE_Q4_0, 4096, 4096, 0, "blk.5.attn_q.weight");
    add_t(tm, QK_TYPE_Q4_K, 4096, 4096, 0, "blk.6.attn_q.weight"); /* already the target */
    add_t(tm, QK_TYPE_Q8_0, 4096, 0, 0, "blk.6.attn_norm.weight"); /* kept */
    qk_plan_options o = options("Q4_K_M");
    qk_status s = build(tm, &o);
    CHECK(s == QK_ERR_TYPE && strstr(qk_last_error(NULL), "blk.5.attn_q.weight") && strstr(qk_last_error(NULL), "Q4_0"),
          "requantizing is refused naming the tensor and its type: %d %s", (int)s, qk_last_error(NULL));
    o.allow_requantize = 1;
    CHECK(build(tm, &o) == QK_OK, "allowed: %s", qk_last_error(NULL));
    const qk_plan_entry *e = entry(tm, "blk.5.attn_q.weight");
    CHECK(e && e->type == QK_TYPE_Q4_K && e->quantize, "Q4_0 input converted to Q4_K");
    e = entry(tm, "blk.6.attn_q.weight");
    CHECK(e && e->type == QK_TYPE_Q4_K && !e->quantize, "Q4_K input that stays Q4_K is copied");
    EXPECT_KEPT(tm, "blk.6.attn_norm.weight");

    /* a tensor already of its target type needs no permission at all */
    init_model(tm, "llama", 8, 32, 8, 0);
    add_t(tm, QK_TYPE_Q4_K, 4096, 4096, 0, "blk.6.attn_q.weight");
    add_t(tm, QK_TYPE_F16, 4096, 4096, 0, "blk.6.attn_k.weight");
    add_t(tm, QK_TYPE_BF16, 4096, 4096, 0, "blk.6.attn_output.weight");
    o.allow_requantize = 0;
    CHECK(build(tm, &o) == QK_OK, "same-type quantized input: %s", qk_last_error(NULL));
    e = entry(tm, "blk.6.attn_k.weight");
    CHECK(e && e->quantize, "F16 input is converted");

    /* float presets: quantized inputs need the flag too, then are dequantized */
    add_t(tm, QK_TYPE_IQ2_XS, 4096, 4096, 0, "blk.7.attn_q.weight");
    o = options("F16");
    CHECK(build(tm, &o) == QK_ERR_TYPE, "F16 from IQ2_XS refused");
    o.allow_requantize = 1;
    CHECK(build(tm, &o) == QK_OK, "F16 from IQ2_XS allowed");
    e = entry(tm, "blk.7.attn_q.weight");
    CHECK(e && e->type == QK_TYPE_F16 && e->quantize, "IQ2_XS dequantized to F16");
    e = entry(tm, "blk.6.attn_k.weight");
    CHECK(e && e->type == QK_TYPE_F16 && !e->quantize, "F16 stays F16 without conversion");
    e = entry(tm, "blk.6.attn_output.weight");
    CHECK(e && e->type == QK_TYPE_F16 && e->quantize, "BF16 converted to F16");

    /* COPY keeps everything, quantized or not */
    o = options("COPY");
    o.overrides = (qk_plan_override[]){{"attn", QK_TYPE_Q8_0}};
    o.n_overrides = 1;
    o.output_tensor_type = QK_TYPE_Q8_0;
    add_t(tm, QK_TYPE_F32, 4096, 32000, 0, "output.weight");
    CHECK(build(tm, &o) == QK_OK, "COPY");
    int all_kept = 1;
    for (size_t i = 0; i < tm->n; i++)
        if (tm->e[i].reason != QK_PLAN_KEEP || tm->e[i].quantize || tm->e[i].type != tm->t[tm->e[i].tensor].type)
            all_kept = 0;
    CHECK(all_kept, "COPY keeps every tensor");

    /* an input type qkern cannot read (I32 = 26) is fine when kept, an error when converted */
    init_model(tm, "llama", 1, 32, 8, 0);
    add_t(tm, 26, 64, 0, 0, "blk.0.ids");
    add_t(tm, 26, 256, 256, 0, "blk.0.table.weight");
    o = options("Q8_0");
    o.allow_requantize = 1;
    CHECK(build(tm, &o) == QK_ERR_TYPE && strstr(qk_last_error(NULL), "blk.0.table.weight"),
          "unknown input type refused: %s", qk_last_error(NULL));
    free(tm);
}

/* ---- what is quantized at all ----------------------------------------------------------- */

static void test_kept_tensors(void) {
    tmodel *tm = calloc(1, sizeof *tm);
    init_model(tm, "mixed", 2, 32, 8, 16);
    W(tm, 4096, 32000, "token_embd.weight");
    W(tm, 4096, 32000, "output.weight");
    V(tm, 4096, "output_norm.weight");
    V(tm, 128, "rope_freqs.weight");
    W(tm, 4096, 512, "position_embd.weight");
    W(tm, 4096, 2, "token_types.weight");
    V(tm, 4096, "blk.0.attn_norm.weight");
    W(tm, 4096, 64, "blk.0.attn_q_norm.weight"); /* 2-D but a norm */
    V(tm, 4096, "blk.0.attn_q.bias");
    W(tm, 4096, 16, "blk.0.ffn_gate_inp.weight");
    V(tm, 4096, "blk.0.ffn_gate_inp_shexp.weight");
    W(tm, 4, 8192, "blk.0.ssm_conv1d.weight");
    V(tm, 32, "blk.0.ssm_a");
    V(tm, 32, "blk.0.ssm_dt.bias");
    V(tm, 128, "blk.0.ssm_norm.weight");
    W(tm, 4096, 1, "blk.0.one_row.weight"); /* ne[1] == 1: effectively 1-D */
    W(tm, 4096, 4096, "blk.0.proj.bias");   /* 2-D, but not a weight */
    W(tm, 64, 4096, "blk.0.time_mix_w1.weight");
    W(tm, 32, 32, "blk.0.attn_rel_b.weight");
    W(tm, 256, 256, "blk.0.altup_proj.weight");
    W(tm, 256, 256, "blk.0.laurel_l.weight");
    W(tm, 256, 256, "per_layer_model_proj.weight");
    W(tm, 256, 256, "blk.0.shortconv.conv.weight");
    W(tm, 256, 256, "blk.0.indexer.k_proj.weight");
    W(tm, 256, 256, "v.patch_embd.weight");
    W(tm, 256, 256, "v.position_embd.weight");
    W(tm, 256, 256, "blk.0.ffn_gate_tid2eid.weight");
    W3(tm, 4096, 1024, 16, "blk.0.ffn_up_exps.weight");
    W(tm, 4096, 4096, "blk.0.ssm_in.weight");
    W(tm, 256, 256, "abcde"); /* llama.cpp's "ends in weight" test passes 5-character names */
    W(tm, 256, 256, "abcdef");
    qk_plan_options o = options("Q4_K_M");
    CHECK(build(tm, &o) == QK_OK, "kept model: %s", qk_last_error(NULL));
    const char *kept[] = {"output_norm.weight",
                          "rope_freqs.weight",
                          "position_embd.weight",
                          "token_types.weight",
                          "blk.0.attn_norm.weight",
                          "blk.0.attn_q_norm.weight",
                          "blk.0.attn_q.bias",
                          "blk.0.ffn_gate_inp.weight",
                          "blk.0.ffn_gate_inp_shexp.weight",
                          "blk.0.ssm_conv1d.weight",
                          "blk.0.ssm_a",
                          "blk.0.ssm_dt.bias",
                          "blk.0.ssm_norm.weight",
                          "blk.0.one_row.weight",
                          "blk.0.proj.bias",
                          "blk.0.time_mix_w1.weight",
                          "blk.0.attn_rel_b.weight",
                          "blk.0.altup_proj.weight",
                          "blk.0.laurel_l.weight",
                          "per_layer_model_proj.weight",
                          "blk.0.shortconv.conv.weight",
                          "blk.0.indexer.k_proj.weight",
                          "v.patch_embd.weight",
                          "v.position_embd.weight",
                          "blk.0.ffn_gate_tid2eid.weight",
                          "abcdef"};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) EXPECT_KEPT(tm, "%s", kept[i]);
    EXPECT(tm, QK_TYPE_Q4_K, "blk.0.ffn_up_exps.weight");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.0.ssm_in.weight");
    EXPECT(tm, QK_TYPE_Q4_K, "abcde");
    free(tm);
}

/* ---- order ------------------------------------------------------------------------------ */

static void test_processing_order(void) {
    tmodel *tm = calloc(1, sizeof *tm);
    init_model(tm, "llama", 11, 32, 8, 0);
    const char *want[] = {
        "blk.x.weight",          "output.weight",       "output_norm.weight",   "rope_freqs.weight",
        "token_embd.weight",     "blk.2.attn_k.weight", "blk.2.attn_q.weight",  "blk.2.attn_q_norm.weight",
        "blk.2.attn_qkv.weight", "blk.9.ffn_up.weight", "blk.10.attn_q.weight", "blk.10.ffn_down.weight",
    };
    const size_t n = sizeof want / sizeof want[0];
    for (size_t i = 0; i < n; i++) W(tm, 256, 256, "%s", want[n - 1 - i]);
    qk_plan_options o = options("Q8_0");
    CHECK(build(tm, &o) == QK_OK, "order plan: %s", qk_last_error(NULL));
    for (size_t i = 0; i < n; i++)
        CHECK(tm->e[i].tensor < tm->n && strcmp(tm->t[tm->e[i].tensor].name, want[i]) == 0, "position %zu: %s, want %s",
              i, tm->e[i].tensor < tm->n ? tm->t[tm->e[i].tensor].name : "(bad)", want[i]);
    /* every input appears exactly once */
    int seen[64] = {0}, once = 1;
    for (size_t i = 0; i < n; i++)
        if (tm->e[i].tensor >= n || seen[tm->e[i].tensor]++) once = 0;
    CHECK(once, "entries are a permutation of the inputs");

    W(tm, 256, 256, "blk.2.attn_q.weight");
    CHECK(build(tm, &o) == QK_ERR_INVALID_ARG && strstr(qk_last_error(NULL), "blk.2.attn_q.weight"),
          "a duplicate name is refused: %s", qk_last_error(NULL));
    free(tm);
}

/* ---- hybrid Qwen3.5-MoE ----------------------------------------------------------------- */

static void expect_qwen35_kept(const tmodel *tm, int n_layer) {
    EXPECT_KEPT(tm, "output_norm.weight");
    for (int l = 0; l < n_layer; l++) {
        EXPECT_KEPT(tm, "blk.%d.attn_norm.weight", l);
        EXPECT_KEPT(tm, "blk.%d.post_attention_norm.weight", l);
        EXPECT_KEPT(tm, "blk.%d.ffn_gate_inp.weight", l);
        EXPECT_KEPT(tm, "blk.%d.ffn_gate_inp_shexp.weight", l);
        if (l % 4 == 3) {
            EXPECT_KEPT(tm, "blk.%d.attn_q_norm.weight", l);
            EXPECT_KEPT(tm, "blk.%d.attn_k_norm.weight", l);
        } else {
            EXPECT_KEPT(tm, "blk.%d.ssm_conv1d.weight", l);
            EXPECT_KEPT(tm, "blk.%d.ssm_dt.bias", l);
            EXPECT_KEPT(tm, "blk.%d.ssm_a", l);
            EXPECT_KEPT(tm, "blk.%d.ssm_norm.weight", l);
        }
    }
}

/* Layers 0..2 gated delta-net, 3 full attention; 256 experts plus a shared expert; GQA 8.
 * attn_qkv of the delta-net layers counts as attn_v-like, so i_v runs 0,1,2 over
 * blk.0-2.attn_qkv and 3 on blk.3.attn_v with n_v = 4: use_more_bits(i, 4) holds for 2 and 3.
 * ffn_down uses the layer number (E > 1): layers 2 and 3, both _exps and _shexp. */
static void test_qwen35moe_hybrid(void) {
    tmodel *tm = calloc(1, sizeof *tm);
    qwen35moe_model(tm, 4);
    qk_plan_options o = options("Q4_K_M");
    CHECK(build(tm, &o) == QK_OK, "qwen35moe Q4_K_M: %s", qk_last_error(NULL));
    EXPECT(tm, QK_TYPE_Q4_K, "token_embd.weight");
    EXPECT(tm, QK_TYPE_Q6_K, "output.weight");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.0.attn_qkv.weight");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.1.attn_qkv.weight");
    EXPECT(tm, QK_TYPE_Q6_K, "blk.2.attn_qkv.weight");
    EXPECT(tm, QK_TYPE_Q6_K, "blk.3.attn_v.weight");
    for (int l = 0; l < 4; l++) {
        qk_type down = l >= 2 ? QK_TYPE_Q6_K : QK_TYPE_Q4_K;
        EXPECT(tm, down, "blk.%d.ffn_down_exps.weight", l);
        EXPECT(tm, down, "blk.%d.ffn_down_shexp.weight", l);
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.ffn_gate_exps.weight", l);
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.ffn_up_exps.weight", l);
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.ffn_gate_shexp.weight", l);
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.ffn_up_shexp.weight", l);
        if (l < 3) {
            EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.attn_gate.weight", l);
            EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.ssm_alpha.weight", l);
            EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.ssm_beta.weight", l);
            EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.ssm_out.weight", l);
        }
    }
    EXPECT(tm, QK_TYPE_Q4_K, "blk.3.attn_q.weight");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.3.attn_k.weight");
    EXPECT(tm, QK_TYPE_Q4_K, "blk.3.attn_output.weight");
    expect_qwen35_kept(tm, 4);

    /* IQ2_XXS: attn_v-like Q4_K (GQA 8, E 256); n/8 = 0 so no ffn_down bump; E != 8 so
     * attn_k/attn_output keep IQ2_XXS; embeddings Q2_K, output Q5_K */
    o = options("IQ2_XXS");
    o.has_imatrix = 1;
    CHECK(build(tm, &o) == QK_OK, "qwen35moe IQ2_XXS: %s", qk_last_error(NULL));
    EXPECT(tm, QK_TYPE_Q2_K, "token_embd.weight");
    EXPECT(tm, QK_TYPE_Q5_K, "output.weight");
    for (int l = 0; l < 3; l++) {
        EXPECT(tm, QK_TYPE_Q4_K, "blk.%d.attn_qkv.weight", l);
        EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.%d.attn_gate.weight", l);
        EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.%d.ssm_alpha.weight", l);
        EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.%d.ssm_beta.weight", l);
        EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.%d.ssm_out.weight", l);
    }
    EXPECT(tm, QK_TYPE_Q4_K, "blk.3.attn_v.weight");
    EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.3.attn_k.weight");
    EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.3.attn_q.weight");
    EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.3.attn_output.weight");
    for (int l = 0; l < 4; l++) {
        EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.%d.ffn_down_exps.weight", l);
        EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.%d.ffn_down_shexp.weight", l);
        EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.%d.ffn_up_exps.weight", l);
        EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.%d.ffn_gate_shexp.weight", l);
    }
    expect_qwen35_kept(tm, 4);
    for (size_t i = 0; i < tm->n; i++) {
        const qk_plan_tensor *t = &tm->t[tm->e[i].tensor];
        if (tm->e[i].reason == QK_PLAN_KEEP) continue;
        int want = tm->e[i].type == QK_TYPE_IQ2_XXS;
        CHECK(qk_plan_needs_imatrix(&o, t->name, tm->e[i].type) == want, "%s as %s: needs imatrix %d", t->name,
              tname(tm->e[i].type), want);
    }

    /* 16 layers: IQ2_XXS's first n/8 = 2 ffn_down tensors are layer 0's _exps and _shexp
     * (a running count of tensors against block_count / 8), not layers 0 and 1 */
    qwen35moe_model(tm, 16);
    CHECK(build(tm, &o) == QK_OK, "qwen35moe-16 IQ2_XXS: %s", qk_last_error(NULL));
    EXPECT(tm, QK_TYPE_Q2_K, "blk.0.ffn_down_exps.weight");
    EXPECT(tm, QK_TYPE_Q2_K, "blk.0.ffn_down_shexp.weight");
    for (int l = 1; l < 16; l++) {
        EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.%d.ffn_down_exps.weight", l);
        EXPECT(tm, QK_TYPE_IQ2_XXS, "blk.%d.ffn_down_shexp.weight", l);
    }
    /* Q4_K_M on 16 layers: one attn_v-like tensor per layer, n_v = 16, so i_v = layer and
     * use_more_bits(i, 16) = {0,1,4,7,10,13,14,15}; ffn_down by layer number, same set */
    static const int more16[] = {0, 1, 4, 7, 10, 13, 14, 15};
    o = options("Q4_K_M");
    CHECK(build(tm, &o) == QK_OK, "qwen35moe-16 Q4_K_M: %s", qk_last_error(NULL));
    for (int l = 0; l < 16; l++) {
        qk_type hi = in_set(l, more16, 8) ? QK_TYPE_Q6_K : QK_TYPE_Q4_K;
        EXPECT(tm, hi, l % 4 == 3 ? "blk.%d.attn_v.weight" : "blk.%d.attn_qkv.weight", l);
        EXPECT(tm, hi, "blk.%d.ffn_down_exps.weight", l);
        EXPECT(tm, hi, "blk.%d.ffn_down_shexp.weight", l);
    }
    expect_qwen35_kept(tm, 16);

    /* a MoE FFN tensor outside any block cannot be placed */
    W(tm, 2048, 512, "mtp.ffn_down.weight");
    CHECK(build(tm, &o) == QK_ERR_INVALID_ARG && strstr(qk_last_error(NULL), "mtp.ffn_down.weight"),
          "MoE ffn tensor without a layer: %s", qk_last_error(NULL));
    qwen35moe_model(tm, 16);
    W(tm, 2048, 512, "blk.16.ffn_up_shexp.weight");
    CHECK(build(tm, &o) == QK_ERR_INVALID_ARG, "MoE ffn tensor beyond block_count");
    free(tm);
}

/* ---- imatrix needs ---------------------------------------------------------------------- */

static void test_needs_imatrix(void) {
    qk_plan_options o = options("Q2_K_S"), p = options("Q2_K");
    static const struct {
        const char *name;
        qk_type type;
        int q2ks, q2k;
    } cases[] = {
        {"blk.0.ffn_up.weight", QK_TYPE_IQ2_XXS, 1, 1},
        {"blk.0.ffn_up.weight", QK_TYPE_IQ2_XS, 1, 1},
        {"blk.0.ffn_up.weight", QK_TYPE_IQ2_S, 1, 1},
        {"blk.0.ffn_up.weight", QK_TYPE_IQ3_XXS, 1, 1},
        {"blk.0.ffn_up.weight", QK_TYPE_IQ1_S, 1, 1},
        {"blk.0.ffn_up.weight", QK_TYPE_IQ1_M, 1, 1},
        {"blk.0.ffn_up.weight", QK_TYPE_Q2_K, 1, 0},
        {"blk.0.ffn_up.weight", QK_TYPE_IQ3_S, 0, 0},
        {"blk.0.ffn_up.weight", QK_TYPE_IQ4_NL, 0, 0},
        {"blk.0.ffn_up.weight", QK_TYPE_Q4_K, 0, 0},
        {"token_embd.weight", QK_TYPE_IQ2_XXS, 0, 0},
        {"per_layer_token_embd.weight", QK_TYPE_IQ1_S, 0, 0},
        {"output.weight", QK_TYPE_Q2_K, 0, 0},
        {"blk.0.output.weight", QK_TYPE_IQ2_S, 1, 1}, /* exact names only */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(qk_plan_needs_imatrix(&o, cases[i].name, cases[i].type) == cases[i].q2ks, "Q2_K_S file: %s as %s",
              cases[i].name, tname(cases[i].type));
        CHECK(qk_plan_needs_imatrix(&p, cases[i].name, cases[i].type) == cases[i].q2k, "Q2_K file: %s as %s",
              cases[i].name, tname(cases[i].type));
    }
}

/* ---- bad arguments ---------------------------------------------------------------------- */

static void test_bad_arguments(void) {
    tmodel *tm = calloc(1, sizeof *tm);
    dense_model(tm, "llama", 2, 32, 8, 0);
    qk_plan_options o = options("Q4_K_M");
    CHECK(qk_plan_build(NULL, &o, tm->t, tm->n, tm->e) == QK_ERR_INVALID_ARG, "NULL model");
    CHECK(qk_plan_build(&tm->m, NULL, tm->t, tm->n, tm->e) == QK_ERR_INVALID_ARG, "NULL options");
    CHECK(qk_plan_build(&tm->m, &o, NULL, tm->n, tm->e) == QK_ERR_INVALID_ARG, "NULL tensors");
    CHECK(qk_plan_build(&tm->m, &o, tm->t, tm->n, NULL) == QK_ERR_INVALID_ARG, "NULL entries");
    CHECK(qk_plan_build(&tm->m, &o, tm->t, 0, tm->e) == QK_OK, "an empty model plans to nothing");
#define RAW(o) qk_plan_build(&tm->m, (o), tm->t, tm->n, tm->e)
    CHECK(RAW(&o) == QK_OK, "the unbroken model plans");
    o.output_tensor_type = 5; /* removed Q4_2 */
    CHECK(RAW(&o) == QK_ERR_INVALID_ARG, "unknown output type id");
    o = options("Q4_K_M");
    tm->t[3].n_dims = 5;
    CHECK(RAW(&o) == QK_ERR_INVALID_ARG, "5 dimensions");
    tm->t[3].n_dims = 2;
    CHECK(RAW(&o) == QK_OK, "repaired");
    tm->t[3].ne[1] = -3;
    CHECK(RAW(&o) == QK_ERR_INVALID_ARG, "negative dimension");
    tm->t[3].ne[1] = 3;
    tm->m.n_layer = -1;
    CHECK(RAW(&o) == QK_ERR_INVALID_ARG, "negative block count");
    tm->m.n_layer = 2;
    tm->t[3].name = NULL;
    CHECK(RAW(&o) == QK_ERR_INVALID_ARG, "unnamed tensor");
#undef RAW
    CHECK(strcmp(qk_plan_reason_name(QK_PLAN_FALLBACK), "fallback") == 0 &&
              strcmp(qk_plan_reason_name(QK_PLAN_KEEP), "keep") == 0,
          "reason names");
    free(tm);
}

/* llama.cpp's newer rules: a --tensor-type naming per_layer_token_embd beats
 * --token-embedding-type, GLM-5-next keeps its q projections at Q8_0 and its small state
 * tensors as they are, and a fallback row says which type did not fit. */
static void test_named_embedding_glm5_next_and_planned_type(void) {
    tmodel *tm = calloc(1, sizeof *tm);
    init_model(tm, "gemma3n", 1, 8, 2, 0);
    W(tm, 256, 4096, "token_embd.weight");
    W(tm, 256, 4096, "per_layer_token_embd.weight");
    qk_plan_options o = options("Q4_K_M");
    o.token_embedding_type = QK_TYPE_Q6_K;
    qk_tensor_type_override ov = {"per_layer_token_embd", QK_TYPE_Q8_0};
    o.overrides = &ov;
    o.n_overrides = 1;
    CHECK(build(tm, &o) == QK_OK, "named per_layer_token_embd: %s", qk_last_error(NULL));
    EXPECT(tm, QK_TYPE_Q6_K, "token_embd.weight");
    EXPECT(tm, QK_TYPE_Q8_0, "per_layer_token_embd.weight");

    init_model(tm, "glm5-next", 2, 8, 8, 0);
    W(tm, 256, 256, "blk.0.attn_q_a.weight");
    W(tm, 256, 256, "blk.0.attn_k_b.weight");
    W(tm, 256, 256, "blk.0.hc_attn_fn.weight");
    W(tm, 256, 256, "blk.0.attn_output.weight");
    o = options("Q2_K");
    CHECK(build(tm, &o) == QK_OK, "glm5-next plan: %s", qk_last_error(NULL));
    EXPECT(tm, QK_TYPE_Q8_0, "blk.0.attn_q_a.weight");
    EXPECT_REASON(tm, QK_PLAN_KEEP, "blk.0.attn_k_b.weight");
    EXPECT_REASON(tm, QK_PLAN_KEEP, "blk.0.hc_attn_fn.weight");
    EXPECT(tm, QK_TYPE_Q3_K, "blk.0.attn_output.weight");

    init_model(tm, "llama", 1, 8, 8, 0);
    W(tm, 96, 64, "blk.0.ffn_up.weight");
    W(tm, 80, 64, "blk.0.ffn_down.weight");
    o = options("Q4_K_S");
    CHECK(build(tm, &o) == QK_OK, "odd widths: %s", qk_last_error(NULL));
    for (size_t i = 0; i < tm->n; i++) {
        const qk_plan_entry *e = &tm->e[i];
        CHECK(e->reason == QK_PLAN_FALLBACK && e->planned != e->type, "%s: reason %d, planned %s, written %s",
              tm->t[e->tensor].name, (int)e->reason, tname(e->planned), tname(e->type));
    }
    EXPECT(tm, QK_TYPE_Q5_0, "blk.0.ffn_up.weight");
    EXPECT(tm, QK_TYPE_F16, "blk.0.ffn_down.weight");

    /* --keep-split: the input's order, not layer and name */
    dense_model(tm, "llama", 4, 32, 8, 0);
    o = options("Q4_K_M");
    o.input_order = 1;
    CHECK(build(tm, &o) == QK_OK, "input order: %s", qk_last_error(NULL));
    for (size_t i = 0; i < tm->n; i++)
        CHECK(tm->e[i].tensor == i, "input order: entry %zu is tensor %zu", i, tm->e[i].tensor);
    free(tm);
}

int main(void) {
    rng.s = tu_seed();
    test_presets_match_the_llama_ftype_table();
    test_dense_q4_k_m_example();
    test_output_and_token_embd_per_ftype();
    test_tied_embedding();
    test_mxfp4_moe();
    test_eight_expert_rules();
    test_iq_low_attention_rules();
    test_dense_mixtures();
    test_seventy_b_rule();
    test_tensor_type_overrides();
    test_pure_and_leave_output();
    test_shape_fallbacks();
    test_requantize();
    test_kept_tensors();
    test_processing_order();
    test_qwen35moe_hybrid();
    test_needs_imatrix();
    test_bad_arguments();
    test_named_embedding_glm5_next_and_planned_type();
    return tu_finish();
}
