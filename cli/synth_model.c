/* The generated model (synth_model.h). Names, shapes and metadata follow llama.cpp's qwen35moe
 * loader and a real Qwen3.5-35B-A3B GGUF; every number in it is drawn from a seeded generator. */
#include "synth_model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TWO_PI 6.283185307179586

/* llama-imatrix's defaults: 512-token chunks; ten of them is a plausible short calibration run. */
#define IM_CHUNK_SIZE   512
#define IM_CHUNK_COUNT  10
#define IM_NEVER_ROUTED 2 /* experts per layer that no calibration token picked */

/* ---- errors ------------------------------------------------------------------------------------ */

/* The message of the last failure (synth_model_error): the generator's own, or, when a library
 * call failed, the library's (qk_last_error(NULL)), copied on the way out. */
static _Thread_local char last_error[512];

static qk_status fail(qk_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static qk_status fail(qk_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return st;
}

/* Entry points start with a clean message and end with one that explains any failure. */
static void begin_call(void) { last_error[0] = 0; }
static qk_status end_call(qk_status st) {
    if (st != QK_OK && !last_error[0]) snprintf(last_error, sizeof last_error, "%s", qk_last_error(NULL));
    return st;
}

const char *synth_model_error(void) { return last_error; }

/* ---- seeded random numbers ------------------------------------------------------------------ */

typedef struct rng {
    uint64_t s;
    int has_spare;
    double spare;
} rng;

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint64_t next_u64(rng *r) { return mix64(r->s += 0x9E3779B97F4A7C15ull); }
static double u01(rng *r) { return ((double)(next_u64(r) >> 11) + 0.5) * 0x1.0p-53; }
static double gauss(rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = u01(r), u2 = u01(r), m = sqrt(-2.0 * log(u1));
    r->spare = m * sin(TWO_PI * u2);
    r->has_spare = 1;
    return m * cos(TWO_PI * u2);
}
/* Student's t with 3 degrees of freedom scaled to unit variance: the heavy tail of outlier columns. */
static double student3(rng *r) {
    double z = gauss(r), a = gauss(r), b = gauss(r), c = gauss(r);
    return z / sqrt(a * a + b * b + c * c);
}

/* An independent stream per purpose, so a value does not depend on what was generated before it:
 * the model and the imatrix derive the same column statistics separately. */
static rng stream(uint64_t seed, const char *tag, int64_t a, int64_t b) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (const char *p = tag; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001B3ull;
    rng r = {mix64(seed ^ mix64(h ^ mix64((uint64_t)a * 0x9E3779B97F4A7C15ull ^ (uint64_t)b))), 0, 0.0};
    return r;
}

/* ---- sizes ------------------------------------------------------------------------------------ */

qk_status synth_model_params_for_size(const char *size, synth_model_params *p) {
    /* Real Qwen3.5-35B-A3B: n_embd 2048, 40 layers, 16/2 heads of 256, 256 experts (8 used) of 512,
     * shared 512, linear attention 16 K-heads / 32 V-heads of 128, conv 4, vocab 248320. */
    static const struct {
        const char *name;
        synth_model_config cfg;
    } sizes[] = {
        {"tiny", {256, 4, 1024, 262144, 4, 1, 64, 8, 2, 256, 256, 2, 4, 64, 4, 4, 1}},
        {"small", {512, 4, 4096, 262144, 4, 1, 128, 16, 4, 256, 256, 4, 8, 64, 4, 4, 1}},
        {"medium", {1024, 8, 16384, 262144, 8, 2, 128, 32, 8, 512, 512, 4, 8, 128, 4, 4, 1}},
    };
    begin_call();
    if (!size || !p) return fail(QK_ERR_INVALID_ARG, "synth_model_params_for_size: NULL argument");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (!strcmp(size, sizes[i].name)) {
            memset(p, 0, sizeof *p);
            p->cfg = sizes[i].cfg;
            snprintf(p->size_name, sizeof p->size_name, "%s", sizes[i].name);
            p->type = QK_TYPE_BF16;
            return QK_OK;
        }
    return fail(QK_ERR_INVALID_ARG, "unknown model size '%s' (tiny, small or medium)", size);
}

static qk_status check_config(const synth_model_params *p) {
    const synth_model_config *c = &p->cfg;
    const int hybrid = c->full_attention_interval != 1; /* has linear-attention layers */
    const struct {
        const char *name;
        int64_t v;
        int64_t min;
    } dims[] = {{"n_embd", c->n_embd, 1},
                {"n_layer", c->n_layer, 1},
                {"n_head", c->n_head, 1},
                {"n_head_kv", c->n_head_kv, 1},
                {"head_dim", c->head_dim, 1},
                {"n_expert", c->n_expert, 1},
                {"n_expert_used", c->n_expert_used, 1},
                {"n_ff_exp", c->n_ff_exp, 1},
                {"n_ff_shexp", c->n_ff_shexp, 0},
                {"ssm_group_count", c->ssm_group_count, hybrid},
                {"ssm_time_step_rank", c->ssm_time_step_rank, hybrid},
                {"ssm_state_size", c->ssm_state_size, hybrid},
                {"ssm_conv_kernel", c->ssm_conv_kernel, hybrid},
                {"full_attention_interval", c->full_attention_interval, 1},
                {"context_length", c->context_length, 1},
                {"attn_output_gate", c->attn_output_gate, 0}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v < dims[i].min || dims[i].v > (1 << 20))
            return fail(QK_ERR_INVALID_ARG, "synthetic model: %s = %lld is out of range", dims[i].name,
                        (long long)dims[i].v);
    if (c->attn_output_gate > 1) return fail(QK_ERR_INVALID_ARG, "synthetic model: attn_output_gate must be 0 or 1");
    if (c->n_layer > 999 || c->n_vocab < 260 || c->n_vocab > (1 << 20))
        return fail(QK_ERR_INVALID_ARG, "synthetic model: layer count or vocabulary size out of range");
    if (c->n_expert < c->n_expert_used + IM_NEVER_ROUTED)
        return fail(QK_ERR_INVALID_ARG, "synthetic model: needs at least %d experts more than are used",
                    IM_NEVER_ROUTED);
    if (c->n_head % c->n_head_kv)
        return fail(QK_ERR_INVALID_ARG, "synthetic model: head_count not a multiple of head_count_kv");
    if (p->type != QK_TYPE_BF16 && p->type != QK_TYPE_F16)
        return fail(QK_ERR_TYPE, "synthetic model: weights must be BF16 or F16, not %s",
                    qk_type_name(p->type) ? qk_type_name(p->type) : "an unknown type");
    return QK_OK;
}

/* ---- the tensor list --------------------------------------------------------------------------- */

typedef enum role {
    ROLE_MATRIX,  /* 2-D weight (or the 1-D shared-expert gate) read through an input space */
    ROLE_EXPERTS, /* 3-D expert stack */
    ROLE_NORM,    /* RMSNorm gain, around 1 */
    ROLE_SSM_A,   /* -exp(A_log): negative decay rates */
    ROLE_SSM_DT,  /* time-step bias */
    ROLE_CONV     /* short depthwise convolution taps */
} role;

typedef struct tspec {
    char name[QK_GGUF_MAX_NAME + 1];
    role role;
    int64_t layer; /* -1 outside the blocks */
    int n_dims;
    int64_t ne[3];
    qk_type type;
    const char *space; /* the input space a matrix reads (see make_space) */
    int hidden;        /* that space is the residual stream: outlier channels shared by all layers */
    int expert_space;  /* the space differs per expert (the input of ffn_down_exps) */
    double std;        /* weight standard deviation before the row and column scales */
    int in_imatrix;    /* llama-imatrix would collect it (a blk.* matmul weight) */
} tspec;

typedef struct tlist {
    tspec *v;
    size_t n, cap;
} tlist;

static tspec *add(tlist *l, int64_t layer, const char *base, role r, qk_type type, int n_dims, int64_t ne0, int64_t ne1,
                  int64_t ne2) {
    tspec *t = &l->v[l->n++]; /* capacity is sized for the largest layer mix */
    memset(t, 0, sizeof *t);
    if (layer >= 0)
        snprintf(t->name, sizeof t->name, "blk.%lld.%s", (long long)layer, base);
    else
        snprintf(t->name, sizeof t->name, "%s", base);
    t->role = r, t->layer = layer, t->type = type, t->n_dims = n_dims;
    t->ne[0] = ne0, t->ne[1] = ne1, t->ne[2] = ne2;
    return t;
}

/* A weight matrix reading `space`, std gain/sqrt(fan_in), collected by the imatrix when in a block. */
static tspec *add_matrix(tlist *l, int64_t layer, const char *base, qk_type type, int64_t ne0, int64_t ne1,
                         const char *space, int hidden, double gain) {
    tspec *t = add(l, layer, base, ROLE_MATRIX, type, ne1 > 1 ? 2 : 1, ne0, ne1, 1);
    t->space = space, t->hidden = hidden, t->std = gain / sqrt((double)ne0), t->in_imatrix = layer >= 0;
    return t;
}

static int is_full_attention(const synth_model_config *c, int64_t il) {
    return (il + 1) % c->full_attention_interval == 0;
}

static qk_status build_tensors(const synth_model_params *p, tlist *l) {
    const synth_model_config *c = &p->cfg;
    const qk_type w = p->type, f32 = QK_TYPE_F32;
    const int64_t key_dim = c->ssm_state_size * c->ssm_group_count;
    const int64_t value_dim = c->ssm_state_size * c->ssm_time_step_rank;
    const int64_t conv_dim = 2 * key_dim + value_dim;
    l->cap = (size_t)c->n_layer * 24 + 8, l->n = 0;
    l->v = calloc(l->cap, sizeof *l->v);
    if (!l->v) return fail(QK_ERR_OUT_OF_MEMORY, "synthetic model: out of memory for the tensor list");

    tspec *t = add_matrix(l, -1, "token_embd.weight", w, c->n_embd, c->n_vocab, "embd", 1, 1.0);
    t->std = 0.02; /* embeddings are not scaled by fan-in; 0.02 is the usual initializer */
    for (int64_t il = 0; il < c->n_layer; il++) {
        add(l, il, "attn_norm.weight", ROLE_NORM, f32, 1, c->n_embd, 1, 1);
        if (is_full_attention(c, il)) {
            /* in Qwen3.5 the query projection carries the output gate too: twice the heads */
            add_matrix(l, il, "attn_q.weight", w, c->n_embd, (1 + c->attn_output_gate) * c->head_dim * c->n_head,
                       "attn_in", 1, 1.0);
            add_matrix(l, il, "attn_k.weight", w, c->n_embd, c->head_dim * c->n_head_kv, "attn_in", 1, 1.0);
            add_matrix(l, il, "attn_v.weight", w, c->n_embd, c->head_dim * c->n_head_kv, "attn_in", 1, 1.0);
            add_matrix(l, il, "attn_output.weight", w, c->head_dim * c->n_head, c->n_embd, "attn_out", 0, 0.7);
            add(l, il, "attn_q_norm.weight", ROLE_NORM, f32, 1, c->head_dim, 1, 1);
            add(l, il, "attn_k_norm.weight", ROLE_NORM, f32, 1, c->head_dim, 1, 1);
        } else {
            add_matrix(l, il, "attn_qkv.weight", w, c->n_embd, conv_dim, "attn_in", 1, 1.0);
            add_matrix(l, il, "attn_gate.weight", w, c->n_embd, value_dim, "attn_in", 1, 1.0);
            add(l, il, "ssm_conv1d.weight", ROLE_CONV, f32, 2, c->ssm_conv_kernel, conv_dim, 1);
            add(l, il, "ssm_dt.bias", ROLE_SSM_DT, f32, 1, c->ssm_time_step_rank, 1, 1);
            add(l, il, "ssm_a", ROLE_SSM_A, f32, 1, c->ssm_time_step_rank, 1, 1);
            add_matrix(l, il, "ssm_beta.weight", w, c->n_embd, c->ssm_time_step_rank, "attn_in", 1, 1.0);
            add_matrix(l, il, "ssm_alpha.weight", w, c->n_embd, c->ssm_time_step_rank, "attn_in", 1, 1.0);
            add(l, il, "ssm_norm.weight", ROLE_NORM, f32, 1, c->ssm_state_size, 1, 1);
            add_matrix(l, il, "ssm_out.weight", w, value_dim, c->n_embd, "ssm_out", 0, 0.7);
        }
        add(l, il, "post_attention_norm.weight", ROLE_NORM, f32, 1, c->n_embd, 1, 1);
        add_matrix(l, il, "ffn_gate_inp.weight", f32, c->n_embd, c->n_expert, "ffn_in", 1, 1.0);
        const char *exps[] = {"ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"};
        for (int k = 0; k < 3; k++) {
            int down = k == 2;
            t = add(l, il, exps[k], ROLE_EXPERTS, w, 3, down ? c->n_ff_exp : c->n_embd, down ? c->n_embd : c->n_ff_exp,
                    c->n_expert);
            t->space = down ? "exp_down" : "ffn_in", t->hidden = !down, t->expert_space = down;
            t->std = (down ? 0.7 : 1.0) / sqrt((double)t->ne[0]), t->in_imatrix = 1;
        }
        if (c->n_ff_shexp == 0) continue; /* no shared expert (Qwen3) */
        /* a 1-D weight, but multiplied like a matrix: llama-imatrix collects it */
        add_matrix(l, il, "ffn_gate_inp_shexp.weight", f32, c->n_embd, 1, "ffn_in", 1, 1.0);
        add_matrix(l, il, "ffn_gate_shexp.weight", w, c->n_embd, c->n_ff_shexp, "ffn_in", 1, 1.0);
        add_matrix(l, il, "ffn_up_shexp.weight", w, c->n_embd, c->n_ff_shexp, "ffn_in", 1, 1.0);
        add_matrix(l, il, "ffn_down_shexp.weight", w, c->n_ff_shexp, c->n_embd, "shexp_down", 0, 0.7);
    }
    add(l, -1, "output_norm.weight", ROLE_NORM, f32, 1, c->n_embd, 1, 1);
    t = add_matrix(l, -1, "output.weight", w, c->n_embd, c->n_vocab, "out_in", 1, 1.0);
    t->layer = c->n_layer; /* its own input space, after the last block */
    /* each hyper-parameter is at most 2^20, so these products cannot overflow; bound them to what
     * one tensor buffer may sensibly take */
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].ne[0] * l->v[i].ne[1] * l->v[i].ne[2] > (1ll << 34))
            return fail(QK_ERR_INVALID_ARG, "synthetic model: %s would have over 2^34 values", l->v[i].name);
    return QK_OK;
}

/* ---- input spaces: per-column activation energy and weight scale -------------------------------- */

typedef struct space {
    float *act;             /* mean squared activation of each input column */
    float *wcol;            /* scale of each weight column */
    unsigned char *outlier; /* heavy-tailed column */
} space;

/* The statistics of one set of input columns. Real models have a few channels with very large
 * activations, and the weights reading them have large, heavy-tailed entries; the imatrix built
 * from the activations is then large exactly where the weights are hard to quantize. */
static void make_space(uint64_t seed, const char *tag, int hidden, int64_t layer, int64_t expert, int64_t cols,
                       space *sp) {
    rng pick = hidden ? stream(seed, "hidden-outliers", 0, 0) : stream(seed, tag, layer, expert + (1ll << 40));
    rng noise = stream(seed, tag, layer, expert);
    int64_t n_out = cols / 96;
    n_out = n_out < 2 ? 2 : n_out > 12 ? 12 : n_out;
    memset(sp->outlier, 0, (size_t)cols);
    for (int64_t k = 0; k < n_out;) {
        int64_t j = (int64_t)(next_u64(&pick) % (uint64_t)cols);
        if (!sp->outlier[j]) sp->outlier[j] = 1, k++;
    }
    for (int64_t j = 0; j < cols; j++) {
        double a = exp(0.5 * gauss(&noise)), w = exp(0.15 * gauss(&noise));
        if (sp->outlier[j]) a *= 16.0 + 48.0 * u01(&noise), w *= 2.5 + 3.5 * u01(&noise);
        sp->act[j] = (float)a, sp->wcol[j] = (float)w;
    }
}

static void fill_matrix(rng *r, const space *sp, double std, int64_t rows, int64_t cols, float *out) {
    for (int64_t i = 0; i < rows; i++) {
        double row_scale = std * exp(0.3 * gauss(r));
        for (int64_t j = 0; j < cols; j++) {
            double z = sp->outlier[j] ? student3(r) : gauss(r);
            out[i * cols + j] = (float)(row_scale * sp->wcol[j] * z);
        }
    }
}

static void fill_vector(const tspec *t, rng *r, int64_t n, float *out) {
    for (int64_t i = 0; i < n; i++) {
        double v;
        switch (t->role) {
        case ROLE_NORM: v = 1.0 + 0.1 * gauss(r); break;
        case ROLE_SSM_A: v = -(0.05 + 15.95 * u01(r)); break;
        case ROLE_SSM_DT: v = 1.0 + 1.5 * gauss(r); break;
        default: v = 0.15 * gauss(r); break; /* ROLE_CONV */
        }
        out[i] = (float)v;
    }
}

/* ---- the tokenizer ------------------------------------------------------------------------------ */

#define TOKEN_MAX_BYTES 24

typedef struct vocab {
    const char **tokens, **merges;
    int32_t *types;
    uint64_t n_tokens, n_merges;
    char *arena;
    size_t used;
    int32_t *table; /* open addressing: token id + 1, 0 empty */
    size_t table_mask;
} vocab;

static void vocab_free(vocab *v) {
    free(v->tokens), free(v->merges), free(v->types), free(v->arena), free(v->table);
    memset(v, 0, sizeof *v);
}

static uint64_t str_hash(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h;
}

/* Returns the slot where s is, or the empty slot where it would go. */
static size_t vocab_slot(const vocab *v, const char *s) {
    size_t i = (size_t)str_hash(s) & v->table_mask;
    while (v->table[i] && strcmp(v->tokens[v->table[i] - 1], s)) i = (i + 1) & v->table_mask;
    return i;
}

static char *arena_put(vocab *v, const char *s) {
    char *d = v->arena + v->used;
    size_t n = strlen(s) + 1;
    memcpy(d, s, n);
    v->used += n;
    return d;
}

/* GPT-2 byte-level BPE: 256 byte tokens (printable bytes as themselves, the rest shifted above
 * U+0100 as GPT-2 does), merges of earlier tokens, then the control tokens Qwen uses. */
static qk_status build_vocab(uint64_t seed, int64_t n_vocab, vocab *v) {
    static const char *const specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    const uint64_t n_special = sizeof specials / sizeof specials[0];
    memset(v, 0, sizeof *v);
    v->n_tokens = (uint64_t)n_vocab;
    v->n_merges = v->n_tokens - 256 - n_special;
    size_t table_size = 1;
    while (table_size < 4 * v->n_tokens) table_size <<= 1;
    v->table_mask = table_size - 1;
    v->tokens = calloc(v->n_tokens, sizeof *v->tokens);
    v->merges = calloc(v->n_merges ? v->n_merges : 1, sizeof *v->merges);
    v->types = calloc(v->n_tokens, sizeof *v->types);
    v->table = calloc(table_size, sizeof *v->table);
    v->arena = malloc(v->n_tokens * (3 * TOKEN_MAX_BYTES + 8));
    if (!v->tokens || !v->merges || !v->types || !v->table || !v->arena) {
        vocab_free(v);
        return fail(QK_ERR_OUT_OF_MEMORY, "synthetic model: out of memory for a %lld-token vocabulary",
                    (long long)n_vocab);
    }
    uint64_t id = 0;
    for (int b = 0, shifted = 0; b < 256; b++, id++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        unsigned cp = printable ? (unsigned)b : 256u + (unsigned)shifted++;
        char s[3] = {(char)cp, 0, 0};
        if (cp >= 0x80) s[0] = (char)(0xC0 | (cp >> 6)), s[1] = (char)(0x80 | (cp & 0x3F));
        v->tokens[id] = arena_put(v, s);
        v->types[id] = 1; /* NORMAL */
        v->table[vocab_slot(v, v->tokens[id])] = (int32_t)id + 1;
    }
    rng r = stream(seed, "vocab", 0, 0);
    char buf[2 * TOKEN_MAX_BYTES + 2];
    for (uint64_t tries = 0; id < 256 + v->n_merges; tries++) {
        if (tries > 1000 * v->n_tokens) {
            vocab_free(v);
            return fail(QK_ERR_INVALID_ARG, "synthetic model: cannot form %llu distinct merges",
                        (unsigned long long)v->n_merges);
        }
        const char *a = v->tokens[next_u64(&r) % id], *b = v->tokens[next_u64(&r) % id];
        size_t la = strlen(a), lb = strlen(b);
        if (la + lb > TOKEN_MAX_BYTES) continue;
        memcpy(buf, a, la), memcpy(buf + la, b, lb + 1);
        size_t slot = vocab_slot(v, buf);
        if (v->table[slot]) continue;
        v->tokens[id] = arena_put(v, buf);
        v->types[id] = 1;
        v->table[slot] = (int32_t)id + 1;
        memcpy(buf, a, la), buf[la] = ' ', memcpy(buf + la + 1, b, lb + 1);
        v->merges[id - 256] = arena_put(v, buf);
        id++;
    }
    for (uint64_t k = 0; k < n_special; k++, id++) {
        v->tokens[id] = arena_put(v, specials[k]);
        v->types[id] = 3; /* CONTROL */
    }
    return QK_OK;
}

/* ---- metadata ----------------------------------------------------------------------------------- */

static qk_status set_metadata(qk_gguf_writer *w, const synth_model_params *p, const vocab *v) {
    const synth_model_config *c = &p->cfg;
    char name[96], key[96];
    snprintf(name, sizeof name, "qkern synthetic %s %s", SYNTH_MODEL_ARCH, p->size_name);
    qk_status s = QK_OK;
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", SYNTH_MODEL_ARCH, suffix), key)
#define TRY(call)                                                                                                      \
    if (s == QK_OK) s = (call)
    TRY(qk_gguf_writer_set_string(w, "general.architecture", SYNTH_MODEL_ARCH));
    TRY(qk_gguf_writer_set_string(w, "general.type", "model"));
    TRY(qk_gguf_writer_set_string(w, "general.name", name));
    TRY(qk_gguf_writer_set_u32(w, "general.file_type", p->type == QK_TYPE_BF16 ? 32 : 1)); /* llama_ftype */
    TRY(qk_gguf_writer_set_u32(w, "general.quantization_version", 2)); /* converters always write it */
    TRY(qk_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)c->n_layer));
    TRY(qk_gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)c->context_length));
    TRY(qk_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)c->n_embd));
    TRY(qk_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)c->n_head));
    TRY(qk_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_head_kv));
    TRY(qk_gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim));
    TRY(qk_gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim));
    TRY(qk_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f));
    /* partial rotary (a quarter of each head), split into M-RoPE sections in the real 11:11:10 ratio */
    const int64_t rope_dim = c->head_dim / 4, half = rope_dim / 2;
    const int32_t sections[4] = {(int32_t)((half * 11 + 16) / 32), (int32_t)((half * 11 + 16) / 32),
                                 (int32_t)(half - 2 * ((half * 11 + 16) / 32)), 0};
    TRY(qk_gguf_writer_set_array(w, KEY("rope.dimension_sections"), QK_GGUF_INT32, sections, 4));
    TRY(qk_gguf_writer_set_f32(w, KEY("rope.freq_base"), 10000000.0f));
    TRY(qk_gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)rope_dim));
    TRY(qk_gguf_writer_set_u32(w, KEY("expert_count"), (uint32_t)c->n_expert));
    TRY(qk_gguf_writer_set_u32(w, KEY("expert_used_count"), (uint32_t)c->n_expert_used));
    TRY(qk_gguf_writer_set_u32(w, KEY("expert_feed_forward_length"), (uint32_t)c->n_ff_exp));
    TRY(qk_gguf_writer_set_u32(w, KEY("expert_shared_feed_forward_length"), (uint32_t)c->n_ff_shexp));
    TRY(qk_gguf_writer_set_u32(w, KEY("ssm.conv_kernel"), (uint32_t)c->ssm_conv_kernel));
    TRY(qk_gguf_writer_set_u32(w, KEY("ssm.state_size"), (uint32_t)c->ssm_state_size));
    TRY(qk_gguf_writer_set_u32(w, KEY("ssm.group_count"), (uint32_t)c->ssm_group_count));
    TRY(qk_gguf_writer_set_u32(w, KEY("ssm.time_step_rank"), (uint32_t)c->ssm_time_step_rank));
    TRY(qk_gguf_writer_set_u32(w, KEY("ssm.inner_size"), (uint32_t)(c->ssm_state_size * c->ssm_time_step_rank)));
    TRY(qk_gguf_writer_set_u32(w, KEY("full_attention_interval"), (uint32_t)c->full_attention_interval));
    TRY(qk_gguf_writer_set_string(w, "tokenizer.ggml.model", "gpt2"));
    TRY(qk_gguf_writer_set_string(w, "tokenizer.ggml.pre", "qwen35"));
    TRY(qk_gguf_writer_set_string_array(w, "tokenizer.ggml.tokens", v->tokens, v->n_tokens));
    TRY(qk_gguf_writer_set_array(w, "tokenizer.ggml.token_type", QK_GGUF_INT32, v->types, v->n_tokens));
    TRY(qk_gguf_writer_set_string_array(w, "tokenizer.ggml.merges", v->merges, v->n_merges));
    TRY(qk_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(v->n_tokens - 1)));     /* <|im_end|> */
    TRY(qk_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)(v->n_tokens - 3))); /* endoftext */
    TRY(qk_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(v->n_tokens - 3)));
    TRY(qk_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 0));
#undef TRY
#undef KEY
    return s;
}

/* ---- the model file ----------------------------------------------------------------------------- */

static int64_t elements(const tspec *t) { return t->ne[0] * t->ne[1] * t->ne[2]; }

/* Generates one tensor and streams it to the writer, an expert slab at a time. */
static qk_status write_tensor(qk_context *ctx, qk_gguf_writer *w, uint64_t seed, const tspec *t, float *f, void *conv,
                              space *sp) {
    const int64_t cols = t->ne[0], rows = t->ne[1], slab = cols * rows;
    for (int64_t e = 0; e < t->ne[2]; e++) {
        rng r = stream(seed, t->name, 0, e);
        if (t->role == ROLE_MATRIX || t->role == ROLE_EXPERTS) {
            make_space(seed, t->space, t->hidden, t->layer, t->expert_space ? e : -1, cols, sp);
            fill_matrix(&r, sp, t->std, rows, cols, f);
        } else {
            fill_vector(t, &r, slab, f);
        }
        const void *data = f;
        size_t bytes = (size_t)slab * sizeof(float);
        if (t->type != QK_TYPE_F32) {
            qk_quantize_desc q = qk_quantize_default_desc();
            q.type = t->type, q.src_type = QK_TYPE_F32, q.rows = rows, q.cols = cols;
            q.src = qk_host(f, bytes);
            bytes = qk_type_row_bytes(t->type, cols) * (size_t)rows;
            q.dst = qk_host(conv, bytes);
            if (qk_quantize(ctx, &q) != QK_OK)
                return fail(QK_ERR_VALUE, "synthetic model: converting %s: %s", t->name, qk_last_error(ctx));
            data = conv;
        }
        /* GGUF is little-endian, as is every host qkern builds for */
        qk_status s = qk_gguf_writer_write(w, data, bytes);
        if (s != QK_OK) return s;
    }
    return QK_OK;
}

static qk_status write_model(const synth_model_params *p, const tlist *l, const char *path, synth_model_summary *sum) {
    vocab v;
    qk_status s = build_vocab(p->seed, p->cfg.n_vocab, &v);
    if (s != QK_OK) return s;
    qk_gguf_writer *w = NULL;
    qk_context *ctx = NULL;
    float *f = NULL;
    void *conv = NULL;
    space sp = {0};
    int64_t max_slab = 1, max_cols = 1;
    for (size_t i = 0; i < l->n; i++) {
        int64_t slab = l->v[i].ne[0] * l->v[i].ne[1];
        max_slab = slab > max_slab ? slab : max_slab;
        max_cols = l->v[i].ne[0] > max_cols ? l->v[i].ne[0] : max_cols;
    }
    f = malloc((size_t)max_slab * sizeof(float));
    conv = malloc((size_t)max_slab * sizeof(uint16_t));
    sp.act = malloc((size_t)max_cols * sizeof(float));
    sp.wcol = malloc((size_t)max_cols * sizeof(float));
    sp.outlier = malloc((size_t)max_cols);
    if (!f || !conv || !sp.act || !sp.wcol || !sp.outlier) {
        s = fail(QK_ERR_OUT_OF_MEMORY, "synthetic model: out of memory for a %lld-value tensor", (long long)max_slab);
        goto done;
    }
    qk_context_params cp = qk_context_default_params();
    cp.device = "cpu";
    if (qk_context_create(&cp, &ctx) != QK_OK) {
        s = fail(QK_ERR_BACKEND, "synthetic model: no cpu context: %s", qk_last_error(NULL));
        goto done;
    }
    if ((s = qk_gguf_writer_create(&w)) != QK_OK || (s = set_metadata(w, p, &v)) != QK_OK) goto done;
    uint64_t params = 0;
    for (size_t i = 0; i < l->n && s == QK_OK; i++) {
        s = qk_gguf_writer_add_tensor(w, l->v[i].name, l->v[i].type, l->v[i].n_dims, l->v[i].ne);
        params += (uint64_t)elements(&l->v[i]);
    }
    if (s != QK_OK || (s = qk_gguf_writer_begin(w, path)) != QK_OK) goto done;
    for (size_t i = 0; i < l->n && s == QK_OK; i++) s = write_tensor(ctx, w, p->seed, &l->v[i], f, conv, &sp);
    if (s == QK_OK) s = qk_gguf_writer_finish(w);
    if (s == QK_OK && sum) sum->tensors = l->n, sum->params = params, sum->bytes = qk_gguf_writer_file_bytes(w);
done:
    if (w && s != QK_OK) qk_gguf_writer_abort(w);
    qk_gguf_writer_free(w);
    qk_context_destroy(ctx);
    free(f), free(conv), free(sp.act), free(sp.wcol), free(sp.outlier);
    vocab_free(&v);
    return s;
}

/* ---- the importance matrix ---------------------------------------------------------------------- */

/* An entry with its per-matrix counts, sorted together by name as the file wants them. */
typedef struct counted_entry {
    char *name;
    int64_t n_mat, cols;
    float *values, *counts, *means; /* means: NULL unless asked for */
} counted_entry;

static int entry_cmp(const void *a, const void *b) {
    return strcmp(((const counted_entry *)a)->name, ((const counted_entry *)b)->name);
}

/* Tokens routed to each expert of a layer: uneven, as real routers are, with a few experts no
 * calibration token reached (their importance is flat 1.0 and their count 0). */
static void route(uint64_t seed, const synth_model_config *c, int64_t layer, float *counts) {
    rng r = stream(seed, "routing", layer, 0);
    const double tokens = (double)IM_CHUNK_COUNT * IM_CHUNK_SIZE;
    for (int64_t e = 0; e < c->n_expert; e++) counts[e] = 1.0f;
    for (int k = 0; k < IM_NEVER_ROUTED;) {
        int64_t e = (int64_t)(next_u64(&r) % (uint64_t)c->n_expert);
        if (counts[e] != 0.0f) counts[e] = 0.0f, k++;
    }
    double sum = 0, *share = malloc((size_t)c->n_expert * sizeof *share);
    if (!share) { /* an even split is still a valid routing */
        for (int64_t e = 0; e < c->n_expert; e++)
            if (counts[e] != 0.0f) counts[e] = (float)floor(tokens * c->n_expert_used / c->n_expert);
        return;
    }
    for (int64_t e = 0; e < c->n_expert; e++) sum += share[e] = counts[e] != 0.0f ? exp(0.5 * gauss(&r)) : 0.0;
    for (int64_t e = 0; e < c->n_expert; e++) {
        double n = floor(tokens * (double)c->n_expert_used * share[e] / sum);
        counts[e] = (float)(n > tokens ? tokens : n); /* a token picks an expert at most once */
    }
    free(share);
}

/* Mean activations of one matrix whose mean squares are v, from the column statistics sp: most
 * channels centred (a mean of 0.2 sigma-ish of either sign), the outlier channels offset, as real
 * models' massive activations are: |mean| 0.6 to 0.9 of their root mean square, one sign a
 * channel. mean^2 < mean square always. */
static void fill_means(uint64_t seed, const tspec *t, int64_t e, const space *sp, const float *v, int64_t cols,
                       float *a) {
    rng r = stream(seed, "imatrix-means", t->layer, e);
    for (int64_t j = 0; j < cols; j++) {
        double f = 0.2 * gauss(&r);
        if (sp->outlier[j]) f = (u01(&r) < 0.5 ? -1.0 : 1.0) * (0.6 + 0.3 * u01(&r));
        f = f > 0.95 ? 0.95 : f < -0.95 ? -0.95 : f;
        a[j] = (float)(f * sqrt((double)v[j]));
    }
}

static qk_status write_imatrix(const synth_model_params *p, const tlist *l, const char *path,
                               synth_model_summary *sum) {
    const synth_model_config *c = &p->cfg;
    qk_status s = QK_OK;
    size_t n = 0, k = 0;
    for (size_t i = 0; i < l->n; i++) n += l->v[i].in_imatrix;
    qk_imatrix_write_desc im = qk_imatrix_write_default_desc();
    im.dataset = "synthetic-calibration.txt";
    im.chunk_count = IM_CHUNK_COUNT, im.chunk_size = IM_CHUNK_SIZE;
    counted_entry *ce = calloc(n ? n : 1, sizeof *ce);
    qk_imatrix_entry_desc *entries = calloc(n ? n : 1, sizeof *entries);
    const float **means = NULL;
    space sp = {0};
    int64_t max_cols = 1;
    for (size_t i = 0; i < l->n; i++) max_cols = l->v[i].ne[0] > max_cols ? l->v[i].ne[0] : max_cols;
    sp.act = malloc((size_t)max_cols * sizeof(float));
    sp.wcol = malloc((size_t)max_cols * sizeof(float));
    sp.outlier = malloc((size_t)max_cols);
    if (!ce || !entries || !sp.act || !sp.wcol || !sp.outlier) goto oom;

    for (size_t i = 0; i < l->n; i++) {
        const tspec *t = &l->v[i];
        if (!t->in_imatrix) continue;
        const int64_t n_mat = t->role == ROLE_EXPERTS ? t->ne[2] : 1, cols = t->ne[0];
        counted_entry *en = &ce[k];
        float *cnt = ce[k].counts = malloc((size_t)n_mat * sizeof(float));
        en->name = strdup(t->name);
        en->values = malloc((size_t)(n_mat * cols) * sizeof(float));
        if (p->means) en->means = malloc((size_t)(n_mat * cols) * sizeof(float));
        k++; /* counted now so that the cleanup frees a partly built entry */
        if (!cnt || !en->name || !en->values || (p->means && !en->means)) goto oom;
        en->n_mat = n_mat, en->cols = cols;
        if (n_mat == 1) {
            cnt[0] = (float)IM_CHUNK_COUNT * IM_CHUNK_SIZE;
            make_space(p->seed, t->space, t->hidden, t->layer, -1, cols, &sp);
            memcpy(en->values, sp.act, (size_t)cols * sizeof(float));
            if (en->means) fill_means(p->seed, t, -1, &sp, en->values, cols, en->means);
            continue;
        }
        route(p->seed, c, t->layer, cnt);
        if (!t->expert_space) make_space(p->seed, t->space, t->hidden, t->layer, -1, cols, &sp);
        for (int64_t e = 0; e < n_mat; e++) {
            float *v = en->values + e * cols;
            if (cnt[e] == 0.0f) {
                for (int64_t j = 0; j < cols; j++) v[j] = 1.0f;
                if (en->means) memset(en->means + e * cols, 0, (size_t)cols * sizeof(float));
                continue;
            }
            if (t->expert_space) {
                make_space(p->seed, t->space, 0, t->layer, e, cols, &sp);
                memcpy(v, sp.act, (size_t)cols * sizeof(float));
            } else {
                /* the tokens an expert sees are a subset: same channels, its own spread; gate and
                 * up read the same tokens, so they get the same values */
                rng r = stream(p->seed, "expert-tokens", t->layer, e);
                for (int64_t j = 0; j < cols; j++) v[j] = (float)(sp.act[j] * exp(0.25 * gauss(&r)));
            }
            if (en->means) fill_means(p->seed, t, e, &sp, v, cols, en->means + e * cols);
        }
    }
    qsort(ce, k, sizeof *ce, entry_cmp);
    if (p->means && !(means = calloc(k ? k : 1, sizeof *means))) goto oom;
    for (size_t i = 0; i < k; i++) {
        entries[i] = (qk_imatrix_entry_desc){ce[i].name, ce[i].n_mat, ce[i].cols, ce[i].values, ce[i].counts};
        if (means) means[i] = ce[i].means;
    }
    im.entries = entries, im.n_entries = k, im.means = means;
    s = qk_imatrix_write(path, &im);
    if (s == QK_OK && sum) sum->imatrix_entries = k;
    goto done;
oom:
    s = fail(QK_ERR_OUT_OF_MEMORY, "synthetic model: out of memory for the importance matrix");
done:
    for (size_t i = 0; i < k; i++) free(ce[i].name), free(ce[i].values), free(ce[i].counts), free(ce[i].means);
    free(ce), free(entries), free(means);
    free(sp.act), free(sp.wcol), free(sp.outlier);
    return s;
}

qk_status synth_model_write(const synth_model_params *p, const char *model_path, const char *imatrix_path,
                            synth_model_summary *summary) {
    begin_call();
    if (!p || !model_path) return fail(QK_ERR_INVALID_ARG, "synth_model_write: NULL argument");
    if (summary) memset(summary, 0, sizeof *summary);
    qk_status s = check_config(p);
    if (s != QK_OK) return s;
    tlist l = {0};
    if ((s = build_tensors(p, &l)) == QK_OK) s = write_model(p, &l, model_path, summary);
    if (s == QK_OK && imatrix_path && (s = write_imatrix(p, &l, imatrix_path, summary)) != QK_OK)
        remove(model_path); /* the pair is useful only together */
    free(l.v);
    return end_call(s);
}

/* ---- the tensor list alone, and real models' shapes --------------------------------------------- */

_Static_assert(sizeof(((synth_model_tensor *)0)->name) == QK_GGUF_MAX_NAME + 1, "tensor name size");

qk_status synth_model_tensors(const synth_model_config *cfg, qk_type weight_type, synth_model_tensor **out, size_t *n) {
    begin_call();
    if (!cfg || !out || !n) return fail(QK_ERR_INVALID_ARG, "synth_model_tensors: NULL argument");
    *out = NULL, *n = 0;
    synth_model_params p;
    memset(&p, 0, sizeof p);
    p.cfg = *cfg, p.type = weight_type;
    qk_status s = check_config(&p);
    if (s != QK_OK) return s;
    tlist l = {0};
    if ((s = build_tensors(&p, &l)) != QK_OK) {
        free(l.v);
        return s;
    }
    synth_model_tensor *t = calloc(l.n ? l.n : 1, sizeof *t);
    if (!t) {
        free(l.v);
        return fail(QK_ERR_OUT_OF_MEMORY, "synthetic model: out of memory for the tensor list");
    }
    for (size_t i = 0; i < l.n; i++) {
        memcpy(t[i].name, l.v[i].name, sizeof t[i].name);
        t[i].type = l.v[i].type, t[i].n_dims = l.v[i].n_dims;
        t[i].ne[0] = l.v[i].ne[0], t[i].ne[1] = l.v[i].ne[1], t[i].ne[2] = l.v[i].ne[2], t[i].ne[3] = 1;
    }
    *out = t, *n = l.n;
    free(l.v);
    return QK_OK;
}

/* From the models' published Hugging Face configs (config.json): hidden_size, num_hidden_layers,
 * vocab_size, num_attention_heads, num_key_value_heads, head_dim, num_experts,
 * num_experts_per_tok, moe_intermediate_size, shared_expert_intermediate_size,
 * linear_num_key_heads, linear_num_value_heads, linear_key_head_dim (= value dim),
 * linear_conv_kernel_dim, full_attention_interval, max_position_embeddings. The converters store
 * the experts as 3-D stacks and skip Qwen3.5's multi-token-prediction layer, as does this list. */
static const synth_model_shape shapes[] = {
    {"qwen3.5-35b-a3b",
     "qwen35moe",
     "35e9",
     {2048, 40, 248320, 262144, 16, 2, 256, 256, 8, 512, 512, 16, 32, 128, 4, 4, 1}},
    /* Qwen/Qwen3.5-122B-A10B's config.json (text_config): hidden_size 3072, 48 layers (every 4th full
     * attention), 32 query / 2 KV heads of 256, 256 experts (8 used) of moe_intermediate_size 1024,
     * shared_expert_intermediate_size 1024; numbers as in the published Megatron launch scripts for
     * it (e.g. slime's scripts/models/qwen3.5-122B-A10B.sh). Gated delta net: 16 key heads, 64 value
     * heads of 128 (as the 397B; the 35B has 32), conv 4; the total (122e9) checks them. */
    {"qwen3.5-122b-a10b",
     "qwen35moe",
     "122e9",
     {3072, 48, 248320, 262144, 32, 2, 256, 256, 8, 1024, 1024, 16, 64, 128, 4, 4, 1}},
    {"qwen3.5-397b-a17b",
     "qwen35moe",
     "397e9",
     {4096, 60, 248320, 262144, 32, 2, 256, 512, 10, 1024, 1024, 16, 64, 128, 4, 4, 1}},
    /* every layer full attention, no shared expert, no output gate in the query */
    {"qwen3-30b-a3b", "qwen3moe", "30.5e9", {2048, 48, 151936, 40960, 32, 4, 128, 128, 8, 768, 0, 0, 0, 0, 0, 1, 0}},
};

const synth_model_shape *synth_model_shapes(size_t *count) {
    if (count) *count = sizeof shapes / sizeof shapes[0];
    return shapes;
}

const synth_model_shape *synth_model_shape_find(const char *name) {
    for (size_t i = 0; name && i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(name, shapes[i].name)) return &shapes[i];
    return NULL;
}
