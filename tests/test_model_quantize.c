/* The file-to-file path: a small MoE model written here with the GGUF writer is quantized by
 * qk_model_quantize_run, and every output tensor must equal qk_quantize of the input tensor (per
 * expert with its imatrix slice), the metadata must be the input's plus the quantizer's keys,
 * and every failure must leave no file behind. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "imatrix.h"
#include "model_quantize.h"
#include "qk_float.h"
#include "test_util.h"

#include <math.h>
#include <signal.h>

#define EMBD  256
#define FF    256
#define NEXP  4
#define VOCAB 64

static char dir[256];
static tu_rng rng;

static void path_in(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", dir, name); }

/* ---- a small model with the names of a Qwen-style MoE ---------------------------------------- */

typedef struct tdef {
    const char *name;
    qk_type type;
    int n_dims;
    int64_t ne[3];
} tdef;

static const tdef model_tensors[] = {
    {"token_embd.weight", QK_TYPE_BF16, 2, {EMBD, VOCAB, 1}},
    {"output_norm.weight", QK_TYPE_F32, 1, {EMBD, 1, 1}},
    {"output.weight", QK_TYPE_BF16, 2, {EMBD, VOCAB, 1}},
    {"blk.0.attn_norm.weight", QK_TYPE_F32, 1, {EMBD, 1, 1}},
    {"blk.0.attn_q.weight", QK_TYPE_BF16, 2, {EMBD, EMBD, 1}},
    {"blk.0.attn_k.weight", QK_TYPE_F16, 2, {EMBD, 64, 1}},
    {"blk.0.attn_v.weight", QK_TYPE_F16, 2, {EMBD, 64, 1}},
    {"blk.0.attn_output.weight", QK_TYPE_F32, 2, {EMBD, EMBD, 1}},
    {"blk.0.ffn_gate_inp.weight", QK_TYPE_F32, 2, {EMBD, NEXP, 1}},
    {"blk.0.ffn_gate_exps.weight", QK_TYPE_BF16, 3, {EMBD, FF, NEXP}},
    {"blk.0.ffn_up_exps.weight", QK_TYPE_BF16, 3, {EMBD, FF, NEXP}},
    {"blk.0.ffn_down_exps.weight", QK_TYPE_BF16, 3, {FF, EMBD, NEXP}},
    {"blk.0.ffn_down_shexp.weight", QK_TYPE_BF16, 2, {FF, EMBD, 1}},
    {"blk.1.attn_v.weight", QK_TYPE_BF16, 2, {EMBD, 64, 1}},
    {"blk.1.ffn_down_exps.weight", QK_TYPE_BF16, 3, {FF, EMBD, NEXP}},
};
#define N_TENSORS (sizeof model_tensors / sizeof model_tensors[0])

static uint64_t elems(const tdef *t) { return (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2]); }

static void fill(const tdef *t, unsigned char *out) {
    uint64_t n = elems(t);
    for (uint64_t i = 0; i < n; i++) {
        float v = 0.02f * tu_gauss(&rng) * (i % 97 == 5 ? 6.0f : 1.0f);
        if (strstr(t->name, "norm")) v = 1.0f + v;
        if (t->type == QK_TYPE_F32) memcpy(out + 4 * i, &v, 4);
        if (t->type == QK_TYPE_F16) qk_wr16(out + 2 * i, qk_f32_to_fp16(v));
        if (t->type == QK_TYPE_BF16) qk_wr16(out + 2 * i, qk_f32_to_bf16(v));
    }
}

/* Writes the model; `nan_at` (if >= 0) puts a NaN at that element of blk.0.ffn_up_exps. */
static int write_model(const char *path, int64_t nan_at) {
    qk_gguf_writer *w;
    if (qk_gguf_writer_create(&w)) return 0;
    qk_gguf_writer_set_string(w, "general.architecture", "testmoe");
    qk_gguf_writer_set_string(w, "general.name", "qkern test model");
    qk_gguf_writer_set_u32(w, "general.file_type", 32);
    qk_gguf_writer_set_u32(w, "testmoe.block_count", 2);
    qk_gguf_writer_set_u32(w, "testmoe.attention.head_count", 4);
    qk_gguf_writer_set_u32(w, "testmoe.attention.head_count_kv", 1);
    qk_gguf_writer_set_u32(w, "testmoe.expert_count", NEXP);
    const char *toks[] = {"a", "bb", "ccc"};
    qk_gguf_writer_set_string_array(w, "tokenizer.ggml.tokens", toks, 3);
    for (size_t i = 0; i < N_TENSORS; i++)
        if (qk_gguf_writer_add_tensor(w, model_tensors[i].name, model_tensors[i].type, model_tensors[i].n_dims,
                                      model_tensors[i].ne))
            return qk_gguf_writer_free(w), 0;
    int ok = qk_gguf_writer_begin(w, path) == QK_OK;
    for (size_t i = 0; ok && i < N_TENSORS; i++) {
        const tdef *t = &model_tensors[i];
        size_t bytes = (size_t)qk_gguf_writer_tensor_bytes(w, i);
        unsigned char *buf = malloc(bytes);
        fill(t, buf);
        if (nan_at >= 0 && !strcmp(t->name, "blk.0.ffn_up_exps.weight")) qk_wr16(buf + 2 * nan_at, 0x7FC0);
        ok = qk_gguf_writer_write(w, buf, bytes) == QK_OK;
        free(buf);
    }
    ok = ok && qk_gguf_writer_finish(w) == QK_OK;
    qk_gguf_writer_free(w);
    return ok;
}

/* An imatrix for the model's blk.* matmul weights (per expert for *_exps); with means_path, the
 * same values with mean activations too (of both signs, a^2 < w) written there. */
static int write_imatrix(const char *path, int wrong_size, const char *means_path) {
    qk_imatrix im = {0};
    qk_imatrix_entry e[N_TENSORS];
    memset(e, 0, sizeof e);
    for (size_t i = 0; i < N_TENSORS; i++) {
        const tdef *t = &model_tensors[i];
        if (strncmp(t->name, "blk.", 4) || t->n_dims < 2 || strstr(t->name, "gate_inp")) continue;
        qk_imatrix_entry *x = &e[im.n_entries++];
        x->name = (char *)t->name;
        x->n_mat = t->ne[2];
        x->cols = t->ne[0] + (wrong_size ? 32 : 0);
        x->values = malloc(sizeof(float) * (size_t)(x->n_mat * x->cols));
        x->means = malloc(sizeof(float) * (size_t)(x->n_mat * x->cols));
        for (int64_t k = 0; k < x->n_mat * x->cols; k++) {
            x->values[k] = (float)exp(1.5 * tu_gauss(&rng));
            x->means[k] = (float)((tu_u01(&rng) < 0.5 ? -0.9 : 0.9) * tu_u01(&rng) * sqrt(x->values[k]));
        }
    }
    /* sorted by name, as the reader keeps them */
    for (size_t a = 0; a < im.n_entries; a++)
        for (size_t b = a + 1; b < im.n_entries; b++)
            if (strcmp(e[b].name, e[a].name) < 0) {
                qk_imatrix_entry tmp = e[a];
                e[a] = e[b];
                e[b] = tmp;
            }
    im.entries = e;
    im.dataset = "test.txt";
    im.chunk_count = 10;
    im.chunk_size = 512;
    int ok = !means_path || qk_imatrix_save_gguf(&im, NULL, means_path) == QK_OK;
    for (size_t i = 0; i < im.n_entries; i++) {
        free(e[i].means);
        e[i].means = NULL;
    }
    ok = ok && qk_imatrix_save_gguf(&im, NULL, path) == QK_OK;
    for (size_t i = 0; i < im.n_entries; i++) free(e[i].values);
    return ok;
}

/* ---- checks ---------------------------------------------------------------------------------- */

static qk_context *ctx;

static qk_model_quantize_params params_for(const char *in, const char *out, const char *preset, const char *imatrix,
                                           size_t chunk) {
    qk_model_quantize_params p;
    qk_model_quantize_params_init(&p);
    p.input = in;
    p.output = out;
    p.plan.ftype = qk_ftype_from_name(preset);
    p.imatrix_path = imatrix;
    p.chunk_bytes = chunk;
    return p;
}

static qk_status run(const char *in, const char *out, const char *preset, const char *imatrix, size_t chunk,
                     qk_model_quantize_result *res) {
    qk_model_quantize_params p = params_for(in, out, preset, imatrix, chunk);
    return qk_model_quantize_run(ctx, &p, res);
}

/* Every tensor of `out` equals qk_quantize of the input tensor (its imatrix slice per expert). */
static void check_against_direct(const char *in_path, const char *out_path, const char *imatrix_path) {
    qk_gguf *in = NULL, *out = NULL;
    qk_imatrix *im = NULL;
    CHECK(qk_gguf_open(in_path, &in) == QK_OK, "open input: %s", qk_last_error(NULL));
    CHECK(qk_gguf_open(out_path, &out) == QK_OK, "open output: %s", qk_last_error(NULL));
    if (imatrix_path) CHECK(qk_imatrix_load(imatrix_path, &im) == QK_OK, "imatrix: %s", qk_last_error(NULL));
    if (!in || !out) goto done;
    CHECK(qk_gguf_tensor_count(out) == N_TENSORS, "tensor count %zu", qk_gguf_tensor_count(out));
    int quantized = 0;
    for (size_t i = 0; i < qk_gguf_tensor_count(out); i++) {
        const qk_gguf_tensor *o = qk_gguf_tensor_at(out, i), *s = qk_gguf_find_tensor(in, o->name);
        CHECK(s != NULL, "output tensor %s not in the input", o->name);
        if (!s) continue;
        CHECK(!memcmp(o->ne, s->ne, sizeof o->ne), "%s: shape changed", o->name);
        if (o->type == s->type) {
            CHECK(o->bytes == s->bytes && !memcmp(o->data, s->data, o->bytes), "%s: copied bytes differ", o->name);
            continue;
        }
        quantized++;
        const qk_imatrix_entry *e = im ? qk_imatrix_find(im, o->name) : NULL;
        qk_type_info ti;
        qk_type_get_info(o->type, &ti);
        size_t src_row = qk_type_row_bytes(s->type, s->ne[0]), dst_row = qk_type_row_bytes(o->type, o->ne[0]);
        unsigned char *want = tu_poisoned(o->bytes);
        for (int64_t m = 0; m < s->ne[2]; m++) {
            qk_quantize_desc q = qk_quantize_default_desc();
            q.type = o->type;
            q.src_type = s->type;
            q.rows = s->ne[1];
            q.cols = s->ne[0];
            q.src = qk_host((void *)(s->data + (size_t)(m * s->ne[1]) * src_row), (size_t)s->ne[1] * src_row);
            q.dst = qk_host(want + (size_t)(m * s->ne[1]) * dst_row, (size_t)s->ne[1] * dst_row);
            if (e && ti.uses_imatrix) {
                q.imatrix = e->values + m * s->ne[0]; /* GGUF and legacy entries alike */
                q.imatrix_len = s->ne[0];
            }
            CHECK(qk_quantize(ctx, &q) == QK_OK, "%s: direct quantize: %s", o->name, qk_last_error(ctx));
        }
        size_t first = o->bytes;
        for (size_t b = 0; b < o->bytes; b++)
            if (want[b] != o->data[b]) {
                first = b;
                break;
            }
        CHECK(first == o->bytes, "%s (%s): differs from direct quantization at byte %zu (row %zu)", o->name,
              qk_type_name(o->type), first, first / dst_row);
        free(want);
    }
    CHECK(quantized >= 8, "only %d tensors were quantized", quantized);
    /* metadata: every input pair byte for byte, then the quantizer's */
    for (size_t i = 0; i < qk_gguf_kv_count(in); i++) {
        const qk_gguf_kv *a = qk_gguf_kv_at(in, i), *b = qk_gguf_find_kv(out, a->key);
        if (!strcmp(a->key, "general.file_type")) continue;
        CHECK(b && b->type == a->type && b->raw_len == a->raw_len && !memcmp(a->raw, b->raw, a->raw_len),
              "metadata %s not copied", a->key);
    }
    CHECK(qk_gguf_get_int(out, "general.quantization_version", -1) == 2, "quantization_version");
    if (im) {
        CHECK(qk_gguf_find_kv(out, "quantize.imatrix.file") != NULL, "quantize.imatrix.file missing");
        CHECK(qk_gguf_get_int(out, "quantize.imatrix.entries_count", -1) == (int64_t)im->n_entries,
              "imatrix entries_count");
        CHECK(qk_gguf_get_int(out, "quantize.imatrix.chunks_count", -1) == 10, "imatrix chunks_count");
    }
done:
    qk_imatrix_free(im);
    qk_gguf_close(in);
    qk_gguf_close(out);
}

static int same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    unsigned char *x = tu_read_file(dir, a, &na), *y = tu_read_file(dir, b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* Q4_K_M with an imatrix: each tensor equals direct quantization, whatever the chunk size. */
static void test_q4_k_m_output_equals_direct_quantization(const char *model, const char *imatrix) {
    char out1[300], out2[300];
    path_in(out1, sizeof out1, "q4km-a.gguf");
    path_in(out2, sizeof out2, "q4km-b.gguf");
    qk_model_quantize_result r1, r2;
    CHECK(run(model, out1, "Q4_K_M", imatrix, 4096, &r1) == QK_OK, "Q4_K_M: %s", qk_last_error(ctx));
    CHECK(run(model, out2, "Q4_K_M", imatrix, 0, &r2) == QK_OK, "Q4_K_M: %s", qk_last_error(ctx));
    CHECK(same_file("q4km-a.gguf", "q4km-b.gguf"), "4 KiB chunks and 64 MiB chunks give different files");
    CHECK(r1.n_tensors == N_TENSORS && r1.n_splits == 1, "result: %zu tensors, %d parts", r1.n_tensors, r1.n_splits);
    check_against_direct(model, out1, imatrix);
    qk_model_quantize_result_free(&r2);
    /* the same imatrix in the legacy format: one flat vector per expert tensor */
    char legacy[300];
    path_in(legacy, sizeof legacy, "imatrix.dat");
    qk_imatrix *im = NULL;
    CHECK(qk_imatrix_load(imatrix, &im) == QK_OK && qk_imatrix_save_legacy(im, legacy) == QK_OK, "legacy copy: %s",
          qk_last_error(NULL));
    qk_imatrix_free(im);
    CHECK(run(model, out2, "Q4_K_M", legacy, 0, &r2) == QK_OK, "Q4_K_M, legacy imatrix: %s", qk_last_error(ctx));
    qk_model_quantize_result_free(&r2);
    check_against_direct(model, out2, legacy);
    unlink(legacy);
    qk_gguf *g;
    if (qk_gguf_open(out1, &g) == QK_OK) {
        CHECK(qk_gguf_get_int(g, "general.file_type", -1) == 15, "file_type of Q4_K_M must be 15");
        const qk_gguf_tensor *t = qk_gguf_find_tensor(g, "blk.0.ffn_gate_inp.weight");
        CHECK(t && t->type == QK_TYPE_F32, "the router must stay F32");
        t = qk_gguf_find_tensor(g, "output.weight");
        CHECK(t && t->type == QK_TYPE_Q6_K, "output.weight must be Q6_K in Q4_K_M");
        t = qk_gguf_find_tensor(g, "blk.0.attn_q.weight");
        CHECK(t && t->type == QK_TYPE_Q4_K, "attn_q must be Q4_K in Q4_K_M");
        qk_gguf_close(g);
    }
    qk_model_quantize_result_free(&r1);
    qk_model_quantize_result_free(&r2);
    unlink(out1);
    unlink(out2);
}

/* Split output by size, read back through any part, and --keep-split on that split input. */
static void test_split_output_reads_back_and_keeps_split(const char *model) {
    char out[300], whole[300], first[300], again[300];
    path_in(whole, sizeof whole, "whole.gguf");
    path_in(out, sizeof out, "parts.gguf");
    qk_model_quantize_result r;
    CHECK(run(model, whole, "Q8_0", NULL, 0, &r) == QK_OK, "Q8_0: %s", qk_last_error(ctx));
    qk_model_quantize_result_free(&r);
    qk_model_quantize_params p;
    qk_model_quantize_params_init(&p);
    p.input = model;
    p.output = out;
    p.plan.ftype = qk_ftype_from_name("Q8_0");
    p.split_max_bytes = 300000;
    CHECK(qk_model_quantize_run(ctx, &p, &r) == QK_OK, "split: %s", qk_last_error(ctx));
    CHECK(r.n_splits >= 3, "expected >= 3 parts, got %d", r.n_splits);
    int parts = r.n_splits;
    qk_model_quantize_result_free(&r);
    path_in(first, sizeof first, "parts-00002-of-0000");
    snprintf(first + strlen(first), sizeof first - strlen(first), "%d.gguf", parts);
    qk_gguf *a = NULL, *b = NULL;
    CHECK(qk_gguf_open(first, &a) == QK_OK, "open %s: %s", first, qk_last_error(NULL));
    CHECK(qk_gguf_open(whole, &b) == QK_OK, "open whole: %s", qk_last_error(NULL));
    if (a && b) {
        CHECK(qk_gguf_split_count(a) == parts, "split count %d", qk_gguf_split_count(a));
        CHECK(qk_gguf_tensor_count(a) == qk_gguf_tensor_count(b), "tensor counts differ");
        for (size_t i = 0; i < qk_gguf_tensor_count(b); i++) {
            const qk_gguf_tensor *x = qk_gguf_tensor_at(b, i), *y = qk_gguf_tensor_at(a, i);
            CHECK(!strcmp(x->name, y->name) && x->bytes == y->bytes && !memcmp(x->data, y->data, x->bytes),
                  "split tensor %zu (%s) differs", i, x->name);
        }
    }
    qk_gguf_close(a);
    qk_gguf_close(b);
    /* the split model as input, written back as parts (--keep-split) */
    path_in(again, sizeof again, "kept.gguf");
    qk_model_quantize_params_init(&p);
    p.input = first;
    p.output = again;
    p.plan.ftype = qk_ftype_from_name("COPY");
    p.keep_split = 1;
    CHECK(qk_model_quantize_run(ctx, &p, &r) == QK_OK, "keep-split: %s", qk_last_error(ctx));
    CHECK(r.n_splits == parts, "keep-split wrote %d parts, input had %d", r.n_splits, parts);
    qk_model_quantize_result_free(&r);
    /* clean up every file but the model and imatrix */
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "model.gguf") || !strcmp(e->d_name, "imatrix.gguf")) continue;
        char p2[600];
        snprintf(p2, sizeof p2, "%s/%s", dir, e->d_name);
        unlink(p2);
    }
    if (d) closedir(d);
}

static int cancel_after;
static volatile sig_atomic_t cancel_flag;
static void cancel_progress(void *user, const qk_model_progress *p) {
    (void)user;
    if (p->tensor_done && (int)p->tensor + 1 >= cancel_after) cancel_flag = 1;
}

/* Each failure: a clear status, a message that says where, and no file under the output name
 * nor a temporary one beside it. */
static void test_failures_leave_nothing_behind(const char *model, const char *imatrix) {
    char out[300], bad[300], wrong_im[300];
    path_in(out, sizeof out, "out.gguf");
    int before = tu_dir_entries(dir);
    qk_model_quantize_result r;

    /* a NaN: expert 2, row 5, column 17 of blk.0.ffn_up_exps */
    path_in(bad, sizeof bad, "nan.gguf");
    CHECK(write_model(bad, (2 * FF + 5) * EMBD + 17), "write NaN model: %s", qk_last_error(NULL));
    qk_status st = run(bad, out, "Q4_K_M", imatrix, 0, &r);
    const char *msg = qk_last_error(ctx);
    CHECK(st == QK_ERR_VALUE, "NaN input gave status %d", st);
    CHECK(strstr(msg, "blk.0.ffn_up_exps.weight") && strstr(msg, "expert 2") && strstr(msg, "row 5") &&
              strstr(msg, "column 17"),
          "NaN message does not say where: %s", msg);
    CHECK(!tu_exists(out), "output exists after a NaN failure");
    unlink(bad);

    /* interrupted after 3 tensors */
    qk_model_quantize_params p;
    qk_model_quantize_params_init(&p);
    p.input = model;
    p.output = out;
    p.plan.ftype = qk_ftype_from_name("Q4_K_M");
    p.imatrix_path = imatrix;
    p.progress = cancel_progress;
    p.cancel = &cancel_flag;
    cancel_after = 3;
    cancel_flag = 0;
    CHECK(qk_model_quantize_run(ctx, &p, &r) == QK_ERR_IO, "cancel: %s", qk_last_error(ctx));
    CHECK(!tu_exists(out), "output exists after an interrupt");

    /* a type that needs an imatrix, without one */
    st = run(model, out, "IQ2_XXS", NULL, 0, &r);
    CHECK(st == QK_ERR_NEEDS_IMATRIX, "IQ2_XXS without imatrix gave %d: %s", st, qk_last_error(ctx));

    /* an imatrix for another model (every entry 32 columns too long) */
    path_in(wrong_im, sizeof wrong_im, "wrong.imatrix.gguf");
    CHECK(write_imatrix(wrong_im, 1, NULL), "write wrong imatrix: %s", qk_last_error(NULL));
    st = run(model, out, "Q4_K_M", wrong_im, 0, &r);
    CHECK(st == QK_ERR_SHAPE && strstr(qk_last_error(ctx), "different model"), "wrong imatrix gave %d: %s", st,
          qk_last_error(ctx));
    unlink(wrong_im);

    /* an output folder that does not exist */
    char nodir[320];
    path_in(nodir, sizeof nodir, "missing/out.gguf");
    st = run(model, nodir, "Q8_0", NULL, 0, &r);
    CHECK(st == QK_ERR_IO, "missing folder gave %d: %s", st, qk_last_error(ctx));

    /* an input that is not GGUF */
    st = run(imatrix ? "/dev/null" : model, out, "Q8_0", NULL, 0, &r);
    CHECK(st != QK_OK, "/dev/null as a model was accepted");

    /* an already-quantized input without --allow-requantize, then with it */
    char q8[300];
    path_in(q8, sizeof q8, "q8.gguf");
    CHECK(run(model, q8, "Q8_0", NULL, 0, &r) == QK_OK, "Q8_0: %s", qk_last_error(ctx));
    qk_model_quantize_result_free(&r);
    st = run(q8, out, "Q4_K_M", NULL, 0, &r);
    CHECK(st != QK_OK && strstr(qk_last_error(ctx), "requantize"), "requantizing without permission gave %d: %s", st,
          qk_last_error(ctx));
    CHECK(!tu_exists(out), "output exists after a refused requantize");
    qk_model_quantize_params_init(&p);
    p.input = q8;
    p.output = out;
    p.plan.ftype = qk_ftype_from_name("F32");
    p.plan.allow_requantize = 1;
    CHECK(qk_model_quantize_run(ctx, &p, &r) == QK_OK, "dequantize to F32: %s", qk_last_error(ctx));
    qk_model_quantize_result_free(&r);
    unlink(out);
    unlink(q8);
    CHECK(tu_dir_entries(dir) == before, "failures left %d files behind", tu_dir_entries(dir) - before);
}

static qk_status run_overlap(const char *in, const char *out, const char *preset, const char *imatrix, int no_overlap,
                             qk_model_quantize_result *res) {
    /* 4 rows of 256 values a step: tens of steps per tensor */
    qk_model_quantize_params p = params_for(in, out, preset, imatrix, 4096);
    p.measure_error = 1;
    p.no_overlap = no_overlap;
    return qk_model_quantize_run(ctx, &p, res);
}

/* The overlapped path (steps read into pinned buffers and queued while the one before runs;
 * on the CPU backend the queues defer each step to its wait, so a step written before it is
 * waited for is wrong here too) writes the synchronous path's file byte for byte and measures
 * the same errors, with many steps per tensor so that both queues alternate within tensors and
 * across their boundaries; and a NaN is still named by tensor, expert, row and column. */
static void test_overlapped_output_equals_synchronous(const char *model, const char *imatrix) {
    const char *presets[] = {"Q4_K_M", "IQ2_XXS", "Q8_0"};
    char out1[300], out2[300];
    path_in(out1, sizeof out1, "overlap.gguf");
    path_in(out2, sizeof out2, "sync.gguf");
    for (size_t k = 0; k < sizeof presets / sizeof presets[0]; k++) {
        qk_model_quantize_result a, b;
        CHECK(run_overlap(model, out1, presets[k], imatrix, 0, &a) == QK_OK, "%s overlapped: %s", presets[k],
              qk_last_error(ctx));
        CHECK(run_overlap(model, out2, presets[k], imatrix, 1, &b) == QK_OK, "%s synchronous: %s", presets[k],
              qk_last_error(ctx));
        CHECK(same_file("overlap.gguf", "sync.gguf"), "%s: the overlapped and synchronous files differ", presets[k]);
        for (size_t i = 0; i < a.n_tensors && i < b.n_tensors; i++)
            CHECK(a.tensors[i].rmse == b.tensors[i].rmse && a.tensors[i].rel_rmse == b.tensors[i].rel_rmse &&
                      a.tensors[i].seconds >= 0,
                  "%s, %s: overlapped rmse %g, synchronous %g", presets[k], a.tensors[i].name, a.tensors[i].rmse,
                  b.tensors[i].rmse);
        qk_model_quantize_result_free(&a);
        qk_model_quantize_result_free(&b);
    }
    check_against_direct(model, out1, imatrix);
    unlink(out1);
    unlink(out2);

    /* the NaN's step completes while the next step is queued */
    char bad[300];
    path_in(bad, sizeof bad, "nan-overlap.gguf");
    CHECK(write_model(bad, (2 * FF + 5) * EMBD + 17), "write NaN model: %s", qk_last_error(NULL));
    qk_model_quantize_result r;
    qk_status st = run_overlap(bad, out1, "Q4_K_M", imatrix, 0, &r);
    const char *msg = qk_last_error(ctx);
    CHECK(st == QK_ERR_VALUE && strstr(msg, "blk.0.ffn_up_exps.weight") && strstr(msg, "expert 2") &&
              strstr(msg, "row 5,") && strstr(msg, "column 17"),
          "overlapped NaN gave %d: %s", st, msg);
    CHECK(!tu_exists(out1), "output exists after a NaN failure");
    unlink(bad);
}

/* The run is refused as writing over one of its inputs. */
static int refused_as_same_file(qk_model_quantize_params *p, const char *what) {
    qk_model_quantize_result r;
    qk_status st = qk_model_quantize_run(ctx, p, &r);
    int ok = st == QK_ERR_INVALID_ARG && strstr(qk_last_error(ctx), "(same file)");
    CHECK(ok, "%s: status %d: %s", what, st, qk_last_error(ctx));
    if (st == QK_OK) qk_model_quantize_result_free(&r);
    return ok;
}

/* An output that is the input or the imatrix under another name is refused before anything is
 * created, and both stay as they were: the same path, dir/../name, a symlink, a hard link, the
 * imatrix, and a part of a split input (written over by --keep-split or named directly). */
static void test_output_over_an_input_is_refused(const char *model, const char *imatrix) {
    size_t model_len = 0, im_len = 0;
    unsigned char *model_bytes = tu_read_file(dir, "model.gguf", &model_len);
    unsigned char *im_bytes = tu_read_file(dir, "imatrix.gguf", &im_len);
    char sub[300], dotdot[320], sym[300], hard[300];
    path_in(sub, sizeof sub, "sub");
    snprintf(dotdot, sizeof dotdot, "%s/../model.gguf", sub);
    path_in(sym, sizeof sym, "symlink.gguf");
    path_in(hard, sizeof hard, "hard.gguf");
    CHECK(mkdir(sub, 0700) == 0 && symlink("model.gguf", sym) == 0 && link(model, hard) == 0,
          "cannot set up the other names of the model");
    const int before = tu_dir_entries(dir);

    const char *outs[] = {model, dotdot, sym, hard, imatrix};
    const char *what[] = {"the same path", "dir/../model.gguf", "a symlink", "a hard link", "the imatrix"};
    for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++) {
        qk_model_quantize_params p = params_for(model, outs[k], "Q4_K_M", imatrix, 0);
        if (refused_as_same_file(&p, what[k]))
            CHECK(strstr(qk_last_error(ctx), k == 4 ? "imatrix" : "input model"), "%s: message '%s'", what[k],
                  qk_last_error(ctx));
        CHECK(tu_dir_entries(dir) == before, "%s: %d files appeared", what[k], tu_dir_entries(dir) - before);
    }
    qk_model_quantize_params p = params_for(model, sym, "Q8_0", NULL, 0);
    p.dry_run = 1;
    refused_as_same_file(&p, "a dry run onto a symlink");

    size_t n = 0, n_im = 0;
    unsigned char *now = tu_read_file(dir, "model.gguf", &n), *im_now = tu_read_file(dir, "imatrix.gguf", &n_im);
    CHECK(model_bytes && now && n == model_len && !memcmp(now, model_bytes, n), "the model changed");
    CHECK(im_bytes && im_now && n_im == im_len && !memcmp(im_now, im_bytes, n_im), "the imatrix changed");
    free(now);
    free(im_now);
    unlink(sym);
    unlink(hard);
    rmdir(sub);

    /* a split input: sp-0000k-of-0000N.gguf */
    char sp[300], prefix[300], part2[320], part3[320];
    path_in(sp, sizeof sp, "sp.gguf");
    path_in(prefix, sizeof prefix, "sp");
    p = params_for(model, sp, "COPY", NULL, 0);
    p.split_max_bytes = 300000;
    qk_model_quantize_result r;
    CHECK(qk_model_quantize_run(ctx, &p, &r) == QK_OK && r.n_splits >= 3, "split copy: %s", qk_last_error(ctx));
    const int parts = r.n_splits;
    qk_model_quantize_result_free(&r);
    qk_gguf_split_name(part2, sizeof part2, prefix, 2, parts);
    qk_gguf_split_name(part3, sizeof part3, prefix, 3, parts);
    const int with_parts = tu_dir_entries(dir);
    p = params_for(part2, sp, "COPY", NULL, 0);
    p.keep_split = 1; /* sp.gguf -> sp-0000k-of-0000N.gguf: the input's own parts */
    refused_as_same_file(&p, "--keep-split onto the split input");
    p = params_for(part2, part3, "Q8_0", NULL, 0); /* one output, named as the input's third part */
    refused_as_same_file(&p, "a part of the split input");
    CHECK(tu_dir_entries(dir) == with_parts, "split input: %d files appeared", tu_dir_entries(dir) - with_parts);
    for (int k = 1; k <= parts; k++) {
        char part[320];
        qk_gguf_split_name(part, sizeof part, prefix, k, parts);
        unlink(part);
    }
    free(model_bytes);
    free(im_bytes);
}

/* A dry run writes nothing and plans what the real run does. */
static void test_dry_run_writes_nothing(const char *model, const char *imatrix) {
    char out[300];
    path_in(out, sizeof out, "dry.gguf");
    qk_model_quantize_params p;
    qk_model_quantize_params_init(&p);
    p.input = model;
    p.output = out;
    p.plan.ftype = qk_ftype_from_name("IQ2_XXS");
    p.imatrix_path = imatrix;
    p.dry_run = 1;
    qk_model_quantize_result dry, real;
    CHECK(qk_model_quantize_run(ctx, &p, &dry) == QK_OK, "dry run: %s", qk_last_error(ctx));
    CHECK(!tu_exists(out), "a dry run wrote the output");
    p.dry_run = 0;
    p.measure_error = 1;
    CHECK(qk_model_quantize_run(ctx, &p, &real) == QK_OK, "IQ2_XXS: %s", qk_last_error(ctx));
    CHECK(dry.n_tensors == real.n_tensors && dry.out_bytes == real.out_bytes, "dry run and real run disagree");
    for (size_t i = 0; i < dry.n_tensors && i < real.n_tensors; i++) {
        CHECK(!strcmp(dry.tensors[i].name, real.tensors[i].name) && dry.tensors[i].type == real.tensors[i].type,
              "plan %zu differs", i);
        if (real.tensors[i].converted)
            CHECK(real.tensors[i].rel_rmse > 0 && real.tensors[i].rel_rmse < 0.6, "%s: relative error %g",
                  real.tensors[i].name, real.tensors[i].rel_rmse);
    }
    qk_model_quantize_result_free(&dry);
    qk_model_quantize_result_free(&real);
    unlink(out);
}

/* A size target's run interrupted while measuring keeps the tensors measured so far in its state
 * file, with the rest marked unmeasured; the next run measures only those, and chooses what an
 * uninterrupted run chooses. */
static int cancel_calls, cancel_at;
static int cancel_after_calls(void *user) {
    (void)user;
    return ++cancel_calls > cancel_at;
}

static void test_interrupted_target_keeps_what_it_measured(const char *model, const char *imatrix) {
    char out[300], state[300];
    path_in(out, sizeof out, "target.gguf");
    path_in(state, sizeof state, "target.state");
    qk_model_quantize_params p = params_for(model, out, "Q4_K_M", imatrix, 0);
    p.target_bpw = 4.0;
    p.dry_run = 1;
    qk_model_quantize_result whole, cut, resumed, again;
    CHECK(qk_model_quantize_run(ctx, &p, &whole) == QK_OK, "target: %s", qk_last_error(ctx));

    p.state_file = state;
    p.cancel_fn = cancel_after_calls;
    cancel_calls = 0;
    cancel_at = 4; /* a few tensors in: each asks once per step */
    CHECK(qk_model_quantize_run(ctx, &p, &cut) == QK_ERR_IO, "interrupted: %s", qk_last_error(ctx));
    CHECK(strstr(qk_last_error(ctx), "interrupted") && strstr(qk_last_error(ctx), "measured so far are kept"),
          "interrupted: message '%s'", qk_last_error(ctx));
    CHECK(tu_exists(state), "no state file after an interrupted measurement");
    CHECK(!tu_exists(out), "an interrupted run wrote the output");

    p.cancel_fn = NULL;
    CHECK(qk_model_quantize_run(ctx, &p, &resumed) == QK_OK, "resumed: %s", qk_last_error(ctx));
    CHECK(strstr(resumed.notes, "tensors read from") && !resumed.matrix_from_state,
          "resumed: the state file's part not read, or nothing left to measure: %s", resumed.notes);
    CHECK(qk_model_quantize_run(ctx, &p, &again) == QK_OK && again.matrix_from_state,
          "third run: the matrix not wholly from the state file: %s", again.notes);
    CHECK(resumed.n_tensors == whole.n_tensors && again.n_tensors == whole.n_tensors, "tensor counts differ");
    for (size_t i = 0; i < whole.n_tensors && i < resumed.n_tensors && i < again.n_tensors; i++)
        CHECK(resumed.tensors[i].type == whole.tensors[i].type && again.tensors[i].type == whole.tensors[i].type,
              "%s: %s uninterrupted, %s resumed, %s from the state file", whole.tensors[i].name,
              qk_type_name(whole.tensors[i].type), qk_type_name(resumed.tensors[i].type),
              qk_type_name(again.tensors[i].type));
    CHECK(resumed.target_error == whole.target_error && again.target_error == whole.target_error,
          "total error %.17g uninterrupted, %.17g resumed, %.17g from the state file", whole.target_error,
          resumed.target_error, again.target_error);
    qk_model_quantize_result_free(&whole);
    qk_model_quantize_result_free(&cut);
    qk_model_quantize_result_free(&resumed);
    qk_model_quantize_result_free(&again);
    unlink(state);
}

/* An imatrix with mean activations (in_sum): a size target measures the bias term too, so its
 * errors differ from those of the same imatrix without means; it writes a file
 * that reads back, its state file is its own (refused for the means-free imatrix and back), and
 * the error it reports is the state file's. */
static void test_target_with_means(const char *model) {
    char out[300], state[300], imatrix[300], means_im[300];
    path_in(out, sizeof out, "means.gguf");
    path_in(state, sizeof state, "means.state");
    path_in(imatrix, sizeof imatrix, "plain_im.gguf");
    path_in(means_im, sizeof means_im, "means_im.gguf");
    CHECK(write_imatrix(imatrix, 0, means_im), "write the imatrices: %s", qk_last_error(NULL));
    qk_model_quantize_params p = params_for(model, out, "Q4_K_M", means_im, 0);
    p.target_bpw = 4.0;
    p.state_file = state;
    qk_model_quantize_result with, plain, again;
    memset(&plain, 0, sizeof plain);
    CHECK(qk_model_quantize_run(ctx, &p, &with) == QK_OK, "target with means: %s", qk_last_error(ctx));
    CHECK(tu_exists(out) && tu_exists(state), "target with means: no output or no state file");
    size_t n = 0;
    unsigned char *bytes = tu_read_file(dir, "means.gguf", &n);
    qk_gguf *g = NULL;
    CHECK(bytes && qk_gguf_parse(bytes, n, out, &g) == QK_OK, "output with means does not read back: %s",
          qk_last_error(NULL));
    if (g) qk_gguf_close(g);
    free(bytes);
    CHECK(with.target_error > 0 && isfinite(with.target_error), "target error with means %g", with.target_error);

    p.imatrix_path = imatrix; /* the same values without means: another key */
    CHECK(qk_model_quantize_run(ctx, &p, &plain) != QK_OK && strstr(qk_last_error(ctx), "was made for other"),
          "a state file made with means taken for an imatrix without them: %s", qk_last_error(ctx));
    p.state_file = NULL;
    p.dry_run = 1;
    CHECK(qk_model_quantize_run(ctx, &p, &plain) == QK_OK, "target without means: %s", qk_last_error(ctx));
    CHECK(plain.target_error != with.target_error, "the means changed no error (%.17g both)", with.target_error);

    p.imatrix_path = means_im;
    p.state_file = state;
    CHECK(qk_model_quantize_run(ctx, &p, &again) == QK_OK && again.matrix_from_state,
          "with means again: the state file not taken: %s", qk_last_error(ctx));
    CHECK(again.target_error == with.target_error, "with means: %.17g measured, %.17g from the state file",
          with.target_error, again.target_error);
    qk_model_quantize_result_free(&with);
    qk_model_quantize_result_free(&plain);
    qk_model_quantize_result_free(&again);
    unlink(out);
    unlink(state);
    unlink(imatrix);
    unlink(means_im);
}

int main(void) {
    rng.s = tu_seed();
    snprintf(dir, sizeof dir, "/tmp/qk_model_quantize_XXXXXX");
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    qk_context_params cp = qk_context_default_params();
    cp.device = "cpu";
    if (qk_context_create(&cp, &ctx)) return fprintf(stderr, "context: %s\n", qk_last_error(NULL)), 1;
    char model[300], imatrix[300];
    path_in(model, sizeof model, "model.gguf");
    path_in(imatrix, sizeof imatrix, "imatrix.gguf");
    CHECK(write_model(model, -1), "write model: %s", qk_last_error(NULL));
    CHECK(write_imatrix(imatrix, 0, NULL), "write imatrix: %s", qk_last_error(NULL));

    test_q4_k_m_output_equals_direct_quantization(model, imatrix);
    test_split_output_reads_back_and_keeps_split(model);
    test_failures_leave_nothing_behind(model, imatrix);
    test_overlapped_output_equals_synchronous(model, imatrix);
    test_dry_run_writes_nothing(model, imatrix);
    test_output_over_an_input_is_refused(model, imatrix);
    test_interrupted_target_keeps_what_it_measured(model, imatrix);
    test_target_with_means(model);

    unlink(model);
    unlink(imatrix);
    CHECK(tu_dir_entries(dir) == 0, "%d files left in %s", tu_dir_entries(dir), dir);
    rmdir(dir);
    qk_context_destroy(ctx);
    return tu_finish();
}
