/* The model-level public API as an engine or a binding uses it, with qkern.h alone: one
 * qk_model_quantize call writes the bytes `qkern quantize` writes for the same arguments, reports
 * progress that only moves forward, stops on request leaving no file, refuses a bad option
 * with a message that names it, and plans in memory what it does from a file. The GGUF and
 * imatrix writers read back through the reader. Usage: test_model_api PATH/TO/qkern */
#include <dirent.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qkern.h"
#include "test_util.h"

static const char *qkern_bin;
static char dir[256];
static qk_context *ctx;

static void path_in(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", dir, name); }

/* Runs the CLI with `args` (paths inside dir need no quoting); its exit code. */
static int cli(const char *args) { return tu_run(qkern_bin, args); }

static uint64_t file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* ---- the same bytes as the CLI ------------------------------------------------------------- */

/* `qkern quantize --imatrix IM MODEL OUT Q4_K_M` on the demo-size model and the one public call
 * with the same arguments write the same file, and the result describes that file. */
static void test_public_call_writes_what_the_cli_writes(const char *model, const char *im) {
    char cli_out[300], api_out[300], args[2048];
    path_in(cli_out, sizeof cli_out, "cli-Q4_K_M.gguf");
    path_in(api_out, sizeof api_out, "api-Q4_K_M.gguf");
    snprintf(args, sizeof args, "quantize --quiet --device cpu --imatrix %s %s %s Q4_K_M", im, model, cli_out);
    CHECK(cli(args) == 0, "qkern %s failed", args);

    qk_model_quantize_desc q = qk_model_quantize_default_desc();
    q.input = model, q.output = api_out, q.preset = "Q4_K_M", q.imatrix = im;
    qk_model_result *r = NULL;
    CHECK(qk_model_quantize(ctx, &q, &r) == QK_OK && r, "qk_model_quantize: %s", qk_last_error(ctx));
    CHECK(tu_same_files(cli_out, api_out), "Q4_K_M: the public call and the CLI wrote different files");

    qk_gguf *g = NULL;
    CHECK(qk_gguf_open(api_out, &g) == QK_OK, "open %s: %s", api_out, qk_last_error(NULL));
    const qk_model_totals *tot = qk_model_result_totals(r);
    CHECK(tot && tot->n_tensors == qk_model_result_count(r) && tot->n_tensors == qk_gguf_tensor_count(g),
          "result lists %zu tensors, the file has %zu", qk_model_result_count(r), qk_gguf_tensor_count(g));
    CHECK(tot && tot->out_file_bytes == file_size(api_out) && tot->n_splits == 1 && tot->imatrix_entries > 0,
          "totals: %llu file bytes for a %llu-byte file, %d splits, %d imatrix entries",
          tot ? (unsigned long long)tot->out_file_bytes : 0ull, (unsigned long long)file_size(api_out),
          tot ? tot->n_splits : -1, tot ? tot->imatrix_entries : -1);
    for (size_t i = 0; g && i < qk_model_result_count(r); i++) {
        const qk_model_tensor *t = qk_model_result_tensor(r, i);
        const qk_gguf_tensor *f = qk_gguf_tensor_at(g, i);
        CHECK(f && !strcmp(t->name, f->name) && t->type == f->type && t->bytes == f->bytes,
              "row %zu (%s, %s) is not the file's tensor %zu (%s, %s)", i, t->name, qk_type_name(t->type), i,
              f ? f->name : "-", f ? qk_type_name(f->type) : "-");
        CHECK(t->rmse < 0, "%s: error measured without measure_error", t->name);
    }
    CHECK(qk_model_result_tensor(r, qk_model_result_count(r)) == NULL, "a row past the end");
    CHECK(qk_gguf_get_int(g, "general.file_type", -1) == 15, "general.file_type is not Q4_K_M's 15");
    qk_gguf_close(g);
    qk_model_result_free(r);
    unlink(cli_out);
    unlink(api_out);
}

/* The per-tensor options, a preset by number and split output: every part the same bytes. */
static void test_per_tensor_options_and_split_match_the_cli(const char *model, const char *im) {
    char cli_out[300], api_out[300], args[2048];
    path_in(cli_out, sizeof cli_out, "cli.gguf");
    path_in(api_out, sizeof api_out, "api.gguf");
    snprintf(args, sizeof args,
             "quantize --quiet --device cpu --imatrix %s --exclude-weights ffn_down --tensor-type attn_q=Q5_K "
             "--tensor-type ffn_.*_exps=IQ4_XS --output-tensor-type Q8_0 --token-embedding-type Q6_K "
             "--split-max-size 2M %s %s 15 2",
             im, model, cli_out);
    CHECK(cli(args) == 0, "qkern %s failed", args);

    const qk_tensor_type_override ov[] = {{"attn_q", QK_TYPE_Q5_K}, {"ffn_.*_exps", QK_TYPE_IQ4_XS}};
    const char *exclude[] = {"ffn_down"};
    qk_model_quantize_desc q = qk_model_quantize_default_desc();
    q.input = model, q.output = api_out, q.preset = "15", q.imatrix = im;
    q.overrides = ov, q.n_overrides = 2;
    q.exclude_weights = exclude, q.n_exclude = 1;
    q.output_tensor_type = QK_TYPE_Q8_0, q.token_embedding_type = QK_TYPE_Q6_K;
    q.split_max_bytes = 2u << 20;
    qk_model_result *r = NULL;
    CHECK(qk_model_quantize(ctx, &q, &r) == QK_OK, "qk_model_quantize: %s", qk_last_error(ctx));
    const int parts = r ? qk_model_result_totals(r)->n_splits : 0;
    CHECK(parts > 1, "expected split output, got %d part(s)", parts);
    for (int k = 1; k <= parts; k++) {
        char a[300], b[300];
        snprintf(a, sizeof a, "%s/cli-%05d-of-%05d.gguf", dir, k, parts);
        snprintf(b, sizeof b, "%s/api-%05d-of-%05d.gguf", dir, k, parts);
        CHECK(tu_same_files(a, b), "part %d of %d differs", k, parts);
        unlink(a);
        unlink(b);
    }
    int overridden = 0;
    for (size_t i = 0; r && i < qk_model_result_count(r); i++)
        overridden += qk_model_result_tensor(r, i)->reason == QK_PLAN_OVERRIDE;
    CHECK(overridden > 0, "no tensor reports the override as its reason");
    qk_model_result_free(r);
}

/* ---- progress and cancellation --------------------------------------------------------------- */

typedef struct progress_log {
    int calls, done, bad;
    size_t last_tensor;
    uint64_t last_bytes, total;
    int stop_after; /* cancel once this many calls were seen (0: never) */
} progress_log;

static void on_progress(void *user, const qk_model_progress *p) {
    progress_log *l = user;
    if (l->calls && (p->bytes_done < l->last_bytes || p->tensor < l->last_tensor)) l->bad++;
    if (p->bytes_done > p->bytes_total || p->tensor >= p->n_tensors || !p->name) l->bad++;
    l->calls++;
    l->done += p->tensor_done;
    l->last_tensor = p->tensor, l->last_bytes = p->bytes_done, l->total = p->bytes_total;
}

static int should_cancel(void *user) {
    const progress_log *l = user;
    return l->stop_after && l->calls >= l->stop_after;
}

/* Progress comes per chunk and per tensor, bytes and tensors never go back, and the last call
 * has every byte done. */
static void test_progress_is_called_and_monotone(const char *model) {
    char out[300];
    path_in(out, sizeof out, "progress.gguf");
    progress_log log = {0};
    qk_model_quantize_desc q = qk_model_quantize_default_desc();
    q.input = model, q.output = out, q.preset = "Q8_0";
    q.chunk_bytes = 1 << 20; /* several chunks per large tensor */
    q.progress = on_progress, q.user = &log;
    qk_model_result *r = NULL;
    CHECK(qk_model_quantize(ctx, &q, &r) == QK_OK, "qk_model_quantize: %s", qk_last_error(ctx));
    const size_t n = qk_model_result_count(r);
    CHECK(log.bad == 0, "%d progress calls went backwards or out of range", log.bad);
    CHECK(log.done == (int)n && log.calls > log.done, "%d calls, %d tensors done, %zu tensors", log.calls, log.done, n);
    CHECK(log.last_bytes == log.total && log.total == qk_model_result_totals(r)->in_bytes,
          "last progress: %llu of %llu bytes (input %llu)", (unsigned long long)log.last_bytes,
          (unsigned long long)log.total, (unsigned long long)(r ? qk_model_result_totals(r)->in_bytes : 0));
    qk_model_result_free(r);
    unlink(out);
}

/* A cancel callback that says stop midway: QK_ERR_IO "interrupted", no result, nothing left in
 * the folder (no output, no temporary file). */
static void test_cancel_leaves_no_file(const char *model, const char *im) {
    char out[300];
    path_in(out, sizeof out, "cancelled.gguf");
    const int before = tu_dir_entries(dir);
    progress_log log = {0};
    log.stop_after = 5;
    qk_model_quantize_desc q = qk_model_quantize_default_desc();
    q.input = model, q.output = out, q.preset = "Q4_K_M", q.imatrix = im;
    q.chunk_bytes = 1 << 20;
    q.progress = on_progress, q.cancel = should_cancel, q.user = &log;
    qk_model_result *r = (qk_model_result *)&log; /* must come back NULL */
    qk_status st = qk_model_quantize(ctx, &q, &r);
    CHECK(st == QK_ERR_IO && strstr(qk_last_error(ctx), "interrupted"), "cancel: status %d, '%s'", (int)st,
          qk_last_error(ctx));
    CHECK(r == NULL, "a cancelled run returned a result");
    CHECK(!tu_exists(out) && tu_dir_entries(dir) == before, "a cancelled run left %d file(s) behind",
          tu_dir_entries(dir) - before);
}

/* ---- bad options ------------------------------------------------------------------------------ */

/* Each bad option is refused before anything is written, with its own status and a message
 * that names what was wrong. */
static void test_bad_options_are_refused_clearly(const char *model, const char *im) {
    char out[300];
    path_in(out, sizeof out, "bad.gguf");
    const int before = tu_dir_entries(dir);
    const qk_tensor_type_override bad_regex[] = {{"attn_(q", QK_TYPE_Q5_K}};
    const char *inc[] = {"attn"}, *exc[] = {"ffn"};
    const struct {
        const char *what;
        qk_status want;
        const char *message; /* a piece of the message */
    } cases[] = {
        {"unknown preset", QK_ERR_INVALID_ARG, "Q9_K"},
        {"no preset", QK_ERR_INVALID_ARG, "preset"},
        {"bad regex", QK_ERR_INVALID_ARG, "attn_(q"},
        {"include and exclude", QK_ERR_INVALID_ARG, "together"},
        {"keep_split and split_max_bytes", QK_ERR_INVALID_ARG, "together"},
        {"old struct_size", QK_ERR_INVALID_ARG, "struct_size"},
        {"output is the input", QK_ERR_INVALID_ARG, "same file"},
        {"missing input", QK_ERR_IO, "no-such-model.gguf"},
        {"output type not a type", QK_ERR_INVALID_ARG, "output-tensor-type"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        qk_model_quantize_desc q = qk_model_quantize_default_desc();
        q.input = model, q.output = out, q.preset = "Q4_K_M", q.imatrix = im;
        switch (c) {
        case 0: q.preset = "Q9_K"; break;
        case 1: q.preset = NULL; break;
        case 2: q.overrides = bad_regex, q.n_overrides = 1; break;
        case 3: q.include_weights = inc, q.n_include = 1, q.exclude_weights = exc, q.n_exclude = 1; break;
        case 4: q.keep_split = 1, q.split_max_bytes = 1 << 20; break;
        case 5: q.struct_size = sizeof q - 8; break;
        case 6: q.output = model; break;
        case 7: q.input = "/nonexistent/no-such-model.gguf"; break;
        case 8: q.output_tensor_type = 4; break; /* ggml's removed Q4_2 */
        }
        qk_model_result *r = NULL;
        qk_status st = qk_model_quantize(ctx, &q, &r);
        CHECK(st == cases[c].want && strstr(qk_last_error(ctx), cases[c].message) && !r,
              "%s: status %d (want %d), message '%s' (want it to name '%s')", cases[c].what, (int)st,
              (int)cases[c].want, qk_last_error(ctx), cases[c].message);
    }
    qk_model_result *r = NULL;
    CHECK(qk_model_quantize(NULL, NULL, &r) == QK_ERR_INVALID_ARG && !r, "NULL context accepted");
    CHECK(!tu_exists(out) && tu_dir_entries(dir) == before, "a refused run left %d file(s) behind",
          tu_dir_entries(dir) - before);
    const qk_preset *p = NULL;
    CHECK(qk_preset_from_name("Q9_K", &p) == QK_ERR_INVALID_ARG && !p && strstr(qk_last_error(NULL), "Q9_K"),
          "qk_preset_from_name(Q9_K): '%s'", qk_last_error(NULL));
}

/* ---- presets and plans --------------------------------------------------------------------------- */

/* The table the CLI's usage text prints: names, ids and aliases as llama-quantize has them. */
static void test_presets_are_llama_quantizes(void) {
    const size_t n = qk_preset_count();
    CHECK(n >= 30 && qk_preset_at(n) == NULL, "%zu presets", n);
    const qk_preset *p = NULL, *q = NULL;
    CHECK(qk_preset_from_name("q4_k_m", &p) == QK_OK && p->id == 15 && p->default_type == QK_TYPE_Q4_K,
          "Q4_K_M by name");
    CHECK(qk_preset_from_id(15, &q) == QK_OK && q == p, "Q4_K_M by id 15");
    CHECK(qk_preset_from_name("Q4_K", &q) == QK_OK && q->alias_of && !strcmp(q->alias_of, "Q4_K_M"), "Q4_K alias");
    CHECK(qk_preset_from_name("COPY", &q) == QK_OK && q->only_copy, "COPY");
    for (size_t i = 0; i < n; i++) {
        const qk_preset *a = qk_preset_at(i), *b = NULL;
        CHECK(qk_preset_from_name(a->name, &b) == QK_OK && a == b, "preset %zu (%s) not found by its name", i, a->name);
    }
}

/* qk_model_plan on the tensor list and facts read from the file gives the dry run's types. */
static void test_plan_in_memory_equals_dry_run(const char *model, const char *im) {
    qk_model_quantize_desc q = qk_model_quantize_default_desc();
    q.input = model, q.preset = "IQ3_M", q.imatrix = im, q.dry_run = 1;
    qk_model_result *dry = NULL, *plan = NULL;
    CHECK(qk_model_quantize(ctx, &q, &dry) == QK_OK, "dry run: %s", qk_last_error(ctx));

    qk_gguf *g = NULL;
    CHECK(qk_gguf_open(model, &g) == QK_OK, "open: %s", qk_last_error(NULL));
    const size_t n = qk_gguf_tensor_count(g);
    qk_tensor_shape *ts = calloc(n ? n : 1, sizeof *ts);
    for (size_t i = 0; i < n; i++) {
        const qk_gguf_tensor *t = qk_gguf_tensor_at(g, i);
        ts[i] = (qk_tensor_shape){t->name, t->type, t->n_dims, {t->ne[0], t->ne[1], t->ne[2], t->ne[3]}};
    }
    char arch[64], key[128];
    qk_model_plan_desc m = qk_model_plan_default_desc();
    m.arch = qk_gguf_get_string(g, "general.architecture", arch, sizeof arch);
#define FACT(field, suffix) (snprintf(key, sizeof key, "%s." suffix, arch), m.field = qk_gguf_get_int(g, key, 0))
    FACT(n_layer, "block_count");
    FACT(n_head, "attention.head_count");
    FACT(n_head_kv, "attention.head_count_kv");
    FACT(n_expert, "expert_count");
#undef FACT
    m.tensors = ts, m.n_tensors = n, m.has_imatrix = 1;
    CHECK(qk_model_plan(&q, &m, &plan) == QK_OK, "plan: %s", qk_last_error(NULL));
    CHECK(qk_model_result_count(plan) == qk_model_result_count(dry), "plan %zu rows, dry run %zu",
          qk_model_result_count(plan), qk_model_result_count(dry));
    int mixed = 0;
    for (size_t i = 0; i < qk_model_result_count(plan) && i < qk_model_result_count(dry); i++) {
        const qk_model_tensor *a = qk_model_result_tensor(plan, i), *b = qk_model_result_tensor(dry, i);
        CHECK(!strcmp(a->name, b->name) && a->type == b->type && a->reason == b->reason && a->bytes == b->bytes,
              "row %zu: plan %s %s (%s), dry run %s %s (%s)", i, a->name, qk_type_name(a->type),
              qk_plan_reason_name(a->reason), b->name, qk_type_name(b->type), qk_plan_reason_name(b->reason));
        mixed += a->reason == QK_PLAN_MIXTURE;
    }
    CHECK(mixed > 0, "IQ3_M's mixture rules changed no tensor");
    m.struct_size = 0;
    qk_model_result *none = NULL;
    CHECK(qk_model_plan(&q, &m, &none) == QK_ERR_INVALID_ARG && !none, "a plan desc without struct_size accepted");
    free(ts);
    qk_gguf_close(g);
    qk_model_result_free(plan);
    qk_model_result_free(dry);
}

/* ---- the writers ---------------------------------------------------------------------------- */

/* A file made with the public writer reads back, metadata and tensors, through the reader. */
static void test_gguf_writer_reads_back(void) {
    char path[300];
    path_in(path, sizeof path, "written.gguf");
    qk_gguf_writer *w = NULL;
    const int64_t ne_a[2] = {64, 3}, ne_b[1] = {32};
    const int32_t arr[3] = {1, -2, 3};
    const char *strs[2] = {"x", "yz"};
    int ok = qk_gguf_writer_create(&w) == QK_OK && qk_gguf_writer_set_string(w, "general.architecture", "t") == QK_OK &&
             qk_gguf_writer_set_u32(w, "t.block_count", 7) == QK_OK &&
             qk_gguf_writer_set_f32(w, "t.eps", 0.5f) == QK_OK && qk_gguf_writer_set_bool(w, "t.flag", 1) == QK_OK &&
             qk_gguf_writer_set_array(w, "t.arr", QK_GGUF_INT32, arr, 3) == QK_OK &&
             qk_gguf_writer_set_string_array(w, "t.strs", strs, 2) == QK_OK &&
             qk_gguf_writer_add_tensor(w, "a.weight", QK_TYPE_F32, 2, ne_a) == QK_OK &&
             qk_gguf_writer_add_tensor(w, "b.weight", QK_TYPE_F16, 1, ne_b) == QK_OK &&
             qk_gguf_writer_add_tensor(w, "a.weight", QK_TYPE_F32, 1, ne_b) == QK_ERR_INVALID_ARG;
    CHECK(ok, "writer setup: %s", qk_last_error(NULL));
    const uint64_t bytes_a = qk_gguf_writer_tensor_bytes(w, 0), bytes_b = qk_gguf_writer_tensor_bytes(w, 1);
    CHECK(bytes_a == 64 * 3 * 4 && bytes_b == 32 * 2, "tensor bytes %llu, %llu", (unsigned long long)bytes_a,
          (unsigned long long)bytes_b);
    unsigned char *data = calloc(1, (size_t)(bytes_a + bytes_b));
    for (size_t i = 0; i < bytes_a + bytes_b; i++) data[i] = (unsigned char)(i * 7);
    ok = qk_gguf_writer_begin(w, path) == QK_OK && !tu_exists(path) &&
         qk_gguf_writer_write(w, data, (size_t)bytes_a) == QK_OK &&
         qk_gguf_writer_write(w, data + bytes_a, (size_t)bytes_b) == QK_OK && qk_gguf_writer_finish(w) == QK_OK;
    CHECK(ok, "writer: %s", qk_last_error(NULL));
    const uint64_t planned = qk_gguf_writer_file_bytes(w);
    qk_gguf_writer_free(w);

    qk_gguf *g = NULL;
    CHECK(qk_gguf_open(path, &g) == QK_OK, "read back: %s", qk_last_error(NULL));
    CHECK(qk_gguf_file_bytes(g) == planned && planned == file_size(path), "file bytes %llu, planned %llu",
          (unsigned long long)qk_gguf_file_bytes(g), (unsigned long long)planned);
    CHECK(qk_gguf_kv_count(g) == 6 && !strcmp(qk_gguf_kv_key(g, 1), "t.block_count") &&
              qk_gguf_kv_type(g, 1) == QK_GGUF_UINT32 && qk_gguf_get_int(g, "t.block_count", 0) == 7 &&
              qk_gguf_kv_key(g, 6) == NULL,
          "metadata read back wrong");
    char buf[64];
    qk_gguf_kv_describe(g, 4, buf, sizeof buf);
    CHECK(strstr(buf, "-2") && !strcmp(qk_gguf_vtype_name(qk_gguf_kv_type(g, 4)), "ARRAY"), "t.arr described as '%s'",
          buf);
    const qk_gguf_tensor *b = qk_gguf_find_tensor(g, "b.weight");
    CHECK(qk_gguf_tensor_count(g) == 2 && b && b->type == QK_TYPE_F16 && b->ne[0] == 32 &&
              !memcmp(b->data, data + bytes_a, (size_t)bytes_b),
          "tensor b.weight read back wrong");
    qk_gguf_close(g);
    free(data);
    unlink(path);
}

/* An imatrix from the public writer is one the quantizer reads: all of its entries count. */
static void test_imatrix_writer_feeds_the_quantizer(const char *model) {
    char path[300];
    path_in(path, sizeof path, "written.imatrix.gguf");
    qk_gguf *g = NULL;
    CHECK(qk_gguf_open(model, &g) == QK_OK, "open: %s", qk_last_error(NULL));
    const size_t n = qk_gguf_tensor_count(g);
    qk_imatrix_entry_desc *e = calloc(n ? n : 1, sizeof *e);
    float *ones = NULL;
    size_t k = 0, most = 0;
    for (size_t i = 0; i < n; i++) {
        const qk_gguf_tensor *t = qk_gguf_tensor_at(g, i);
        if (strncmp(t->name, "blk.", 4) || t->n_dims < 2 || t->type == QK_TYPE_F32) continue;
        e[k++] = (qk_imatrix_entry_desc){t->name, t->n_dims == 3 ? t->ne[2] : 1, t->ne[0], NULL, NULL};
        if ((size_t)(e[k - 1].n_mat * e[k - 1].cols) > most) most = (size_t)(e[k - 1].n_mat * e[k - 1].cols);
    }
    ones = malloc((most ? most : 1) * sizeof *ones);
    for (size_t j = 0; j < most; j++) ones[j] = 1.0f + (float)(j % 5);
    for (size_t i = 0; i < k; i++) e[i].values = ones;
    qk_imatrix_write_desc d = qk_imatrix_write_default_desc();
    d.entries = e, d.n_entries = k, d.dataset = "test", d.chunk_count = 4, d.chunk_size = 512;
    const float count = 3.0f;
    e[0].counts = &count; /* counts for one entry and not the others: refused */
    CHECK(qk_imatrix_write(path, &d) == QK_ERR_INVALID_ARG && !tu_exists(path), "partial counts accepted");
    e[0].counts = NULL;
    CHECK(k > 0 && qk_imatrix_write(path, &d) == QK_OK, "imatrix write: %s", qk_last_error(NULL));

    qk_model_quantize_desc q = qk_model_quantize_default_desc();
    q.input = model, q.preset = "IQ2_XXS", q.imatrix = path, q.dry_run = 1;
    qk_model_result *r = NULL;
    CHECK(qk_model_quantize(ctx, &q, &r) == QK_OK, "dry run with the written imatrix: %s", qk_last_error(ctx));
    CHECK(r && qk_model_result_totals(r)->imatrix_entries == (int)k, "%d imatrix entries read, %zu written",
          r ? qk_model_result_totals(r)->imatrix_entries : -1, k);
    qk_model_result_free(r);
    free(ones);
    free(e);
    qk_gguf_close(g);
    unlink(path);
}

/* Means through the public writer: `<name>.in_sum` holds mean * count (chunk_count * chunk_size
 * without counts), refused with the legacy form or when not finite; a caller's struct from before
 * the field (struct_size at its offset) still writes, without means. */
static void test_imatrix_writer_means(void) {
    char path[300];
    path_in(path, sizeof path, "means.imatrix.gguf");
    enum { COLS = 64, MATS = 3 };
    float values[MATS * COLS], means[MATS * COLS], counts[MATS] = {7.0f, 0.0f, 300.0f};
    for (int j = 0; j < MATS * COLS; j++) {
        values[j] = 0.25f + (float)((j * 37) % 11);
        means[j] = ((j * 13) % 3 == 0 ? -0.6f : 0.3f) * sqrtf(values[j]);
    }
    qk_imatrix_entry_desc e = {"blk.0.ffn_down_exps.weight", MATS, COLS, values, counts};
    const float *mp[1] = {means};
    qk_imatrix_write_desc d = qk_imatrix_write_default_desc();
    d.entries = &e, d.n_entries = 1, d.chunk_count = 2, d.chunk_size = 512, d.means = mp;
    CHECK(qk_imatrix_write(path, &d) == QK_OK, "write with means: %s", qk_last_error(NULL));
    qk_gguf *g = NULL;
    CHECK(qk_gguf_open(path, &g) == QK_OK, "open: %s", qk_last_error(NULL));
    const qk_gguf_tensor *t = g ? qk_gguf_find_tensor(g, "blk.0.ffn_down_exps.weight.in_sum") : NULL;
    CHECK(t && t->type == QK_TYPE_F32 && t->ne[0] == COLS && t->ne[1] == MATS, "in_sum missing or of another shape");
    int bad = 0;
    for (int m = 0; t && m < MATS; m++)
        for (int j = 0; j < COLS; j++) {
            float got;
            memcpy(&got, (const uint8_t *)t->data + 4 * (size_t)(m * COLS + j), 4);
            bad += got != means[m * COLS + j] * counts[m];
        }
    CHECK(bad == 0, "%d in_sum values are not mean * count", bad);
    qk_gguf_close(g);
    unlink(path);

    d.legacy = 1;
    path_in(path, sizeof path, "means.imatrix.dat");
    CHECK(qk_imatrix_write(path, &d) == QK_ERR_INVALID_ARG && !tu_exists(path), "legacy with means accepted");
    d.legacy = 0;
    path_in(path, sizeof path, "bad-means.imatrix.gguf");
    means[5] = NAN;
    CHECK(qk_imatrix_write(path, &d) == QK_ERR_VALUE && !tu_exists(path), "a NaN mean accepted");
    /* an older caller: the struct ends before `means`, whatever the field's memory holds */
    d.struct_size = offsetof(qk_imatrix_write_desc, means);
    path_in(path, sizeof path, "old-caller.imatrix.gguf");
    CHECK(qk_imatrix_write(path, &d) == QK_OK, "older struct_size refused: %s", qk_last_error(NULL));
    g = NULL;
    CHECK(qk_gguf_open(path, &g) == QK_OK && !qk_gguf_find_tensor(g, "blk.0.ffn_down_exps.weight.in_sum") &&
              qk_gguf_find_tensor(g, "blk.0.ffn_down_exps.weight.in_sum2"),
          "an older caller's file: in_sum written or in_sum2 missing");
    qk_gguf_close(g);
    d.struct_size = offsetof(qk_imatrix_write_desc, means) - 1;
    CHECK(qk_imatrix_write(path, &d) == QK_ERR_INVALID_ARG, "a struct_size short of the older struct accepted");
    unlink(path);
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: test_model_api PATH/TO/qkern\n"), 2;
    qkern_bin = argv[1];
    snprintf(dir, sizeof dir, "/tmp/qk_model_api_XXXXXX");
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    qk_context_params cp = qk_context_default_params();
    cp.device = "cpu";
    if (qk_context_create(&cp, &ctx) != QK_OK) return fprintf(stderr, "context: %s\n", qk_last_error(NULL)), 1;

    char demo[300], demo_im[300], tiny[300], tiny_im[300], args[1024];
    path_in(demo, sizeof demo, "demo.gguf");
    path_in(demo_im, sizeof demo_im, "demo.imatrix.gguf");
    path_in(tiny, sizeof tiny, "tiny.gguf");
    path_in(tiny_im, sizeof tiny_im, "tiny.imatrix.gguf");
    /* the demo's model (`qkern demo`: size small, seed 42) and a tiny one for the rest */
    snprintf(args, sizeof args, "generate --size small --seed 42 --imatrix %s %s", demo_im, demo);
    CHECK(cli(args) == 0, "qkern %s failed", args);
    snprintf(args, sizeof args, "generate --size tiny --seed 5 --imatrix %s %s", tiny_im, tiny);
    CHECK(cli(args) == 0, "qkern %s failed", args);

    test_public_call_writes_what_the_cli_writes(demo, demo_im);
    test_per_tensor_options_and_split_match_the_cli(tiny, tiny_im);
    test_progress_is_called_and_monotone(tiny);
    test_cancel_leaves_no_file(tiny, tiny_im);
    test_bad_options_are_refused_clearly(tiny, tiny_im);
    test_presets_are_llama_quantizes();
    test_plan_in_memory_equals_dry_run(tiny, tiny_im);
    test_gguf_writer_reads_back();
    test_imatrix_writer_feeds_the_quantizer(tiny);
    test_imatrix_writer_means();

    unlink(demo), unlink(demo_im), unlink(tiny), unlink(tiny_im);
    CHECK(tu_dir_entries(dir) == 0, "%d files left in %s", tu_dir_entries(dir), dir);
    rmdir(dir);
    qk_context_destroy(ctx);
    return tu_finish();
}
