/* qkern bench quantize: the kernel time to quantize every weight tensor of a real model's shape
 * (synth_model.h) from BF16 already in device memory, per preset, projected to the whole model.
 * No file is read or written: the source is one random BF16 buffer uploaded once, so the number
 * is the quantizer's, not the disk's or the bus's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "cli.h"
#include "cmd_bench_moe.h"
#include "synth_model.h"

#define MAX_PRESETS    64
#define MAX_CANDIDATES 64
#define WARMUP_ROWS    64
#define FILL_CHUNK     (1u << 20) /* BF16 values per upload */
#define DEFAULT_PRESET "Q4_K_M"

static void usage(FILE *f) {
    fprintf(f, "usage: qkern bench SUBCOMMAND [OPTIONS]   (qkern bench SUBCOMMAND --help)\n"
               "       qkern bench -m MODEL [-p N] [-n N] ...  pp and tg as llama-bench runs them (qkern bench -h)\n\n"
               "subcommands:\n"
               "  quantize   kernel time to quantize every weight tensor of a real model shape, per preset\n"
               "  pp         prompt processing through the MoE FFN layers of a model shape: tokens/s per type\n"
               "  tg         token generation (one token at a time) through the same layers: tokens/s per type\n");
}

static void usage_quantize(FILE *f) {
    fprintf(f, "usage: qkern bench quantize --shape NAME [--preset P[,P...]] [-dev D] [-o md|csv|json]\n"
               "                            [--limit-layers N] [-t N] [--error-matrix]\n"
               "  Plans every tensor of a published model's layout with llama-quantize's rules for each preset\n"
               "  (as with an imatrix), then times qk_quantize on the device from BF16 already in device memory:\n"
               "  no disk, no upload in the time. An expert stack is one call, each expert with its own random\n"
               "  imatrix slice, as `qkern quantize` makes it. Identical (type, rows, cols) calls are timed once,\n"
               "  after one warm-up call per type, and multiplied. Types the device has no kernel for are\n"
               "  reported as skipped and left out of the totals.\n"
               "  --shape         ");
    bench_print_shape_names(f);
    fprintf(f, "\n"
               "  --preset        comma-separated llama-quantize presets (default " DEFAULT_PRESET ")\n"
               "  -dev, --device  cpu, cuda:N, vulkan:N (default: the best present)\n"
               "  -o, --format    md (default), csv or json\n"
               "  --limit-layers  a quick projection: outside the first N blocks, time a 2-D tensor whose call\n"
               "                  was not timed at full size on N/n_layer of its rows and scale it\n"
               "  -t, --threads   cpu worker threads (default: all cores)\n"
               "  --error-matrix  also time the error matrix of a size target (qkern quantize --target-bpw):\n"
               "                  every tensor the first preset converts, quantized and measured on the device\n"
               "                  (qk_quantize_measure) in every default candidate type its shape takes\n");
}

/* ---- the work: one entry per distinct quantize call ------------------------------------------ */

typedef struct call {
    qk_type type;
    int64_t rows, cols, mats;
    int measure; /* qk_quantize_measure (the error matrix's call) rather than qk_quantize */
    double seconds;
} call;

typedef struct preset_result {
    const char *name;      /* the preset's, or "error-matrix" */
    qk_model_result *plan; /* every tensor with the type the preset gives it, in output order */
    uint64_t tensors, weights, skipped, skipped_weights;
    double seconds;
} preset_result;

typedef struct bench {
    qk_context *ctx;
    qk_buffer *src, *dst;
    call *calls;
    size_t n_calls, cap_calls;
    signed char support[256]; /* by type id: 0 unknown, 1 warmed up, -1 no kernel on this device */
    int measure;              /* the calls being timed are qk_quantize_measure's */
    float **imatrix;          /* one per distinct column count, indexed like imatrix_cols */
    int64_t *imatrix_cols;
    size_t n_imatrix;
    uint64_t rng;
} bench;

static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16); /* round to nearest even; inputs are finite */
}

/* The layer of a "blk.N." tensor, or -1. */
static int64_t layer_of(const char *name) {
    if (strncmp(name, "blk.", 4)) return -1;
    char *end;
    long long v = strtoll(name + 4, &end, 10);
    return end != name + 4 && *end == '.' && v >= 0 ? v : -1;
}

static const float *imatrix_for(bench *b, int64_t cols) {
    for (size_t i = 0; i < b->n_imatrix; i++)
        if (b->imatrix_cols[i] == cols) return b->imatrix[i];
    float **m = realloc(b->imatrix, (b->n_imatrix + 1) * sizeof *m);
    if (!m) return NULL;
    b->imatrix = m;
    int64_t *c = realloc(b->imatrix_cols, (b->n_imatrix + 1) * sizeof *c);
    if (!c) return NULL;
    b->imatrix_cols = c;
    float *v = malloc((size_t)cols * sizeof *v);
    if (!v) return NULL;
    for (int64_t j = 0; j < cols; j++) v[j] = (float)exp(bench_gauss(&b->rng)); /* mean x^2: positive, spread */
    b->imatrix[b->n_imatrix] = v, b->imatrix_cols[b->n_imatrix++] = cols;
    return v;
}

/* mats: equal groups of rows with their own imatrix slice (the experts of a stack). */
static qk_status run_quantize(bench *b, qk_type type, int64_t rows, int64_t cols, int64_t mats, double *seconds) {
    const float *im = imatrix_for(b, cols * mats);
    if (!im) return QK_ERR_OUT_OF_MEMORY;
    qk_quantize_desc d = qk_quantize_default_desc();
    d.type = type, d.src_type = QK_TYPE_BF16, d.rows = rows, d.cols = cols;
    d.src = qk_buf(b->src, 0, (size_t)(rows * cols) * 2);
    d.dst = qk_buf(b->dst, 0, qk_type_row_bytes(type, cols) * (size_t)rows);
    qk_type_info ti;
    if (qk_type_get_info(type, &ti) == QK_OK && ti.uses_imatrix) d.imatrix = im, d.imatrix_len = cols * mats;
    qk_quantize_error e;
    double t0 = bench_now();
    /* both return when the device is done */
    qk_status s = b->measure ? qk_quantize_measure(b->ctx, &d, im, cols * mats, &e) : qk_quantize(b->ctx, &d);
    *seconds = bench_now() - t0;
    return s;
}

/* On a type's first use, one small call: it loads the kernel and touches the buffers, and tells
 * whether the device can quantize to the type at all (QK_ERR_UNSUPPORTED when not). */
static qk_status warm_up(bench *b, qk_type type, int64_t rows, int64_t cols) {
    signed char *sup = &b->support[type & 0xFF];
    if (*sup) return *sup > 0 ? QK_OK : QK_ERR_UNSUPPORTED;
    double t;
    qk_status s = run_quantize(b, type, rows < WARMUP_ROWS ? rows : WARMUP_ROWS, cols, 1, &t);
    if (s == QK_OK || s == QK_ERR_UNSUPPORTED) *sup = s == QK_OK ? 1 : -1;
    return s;
}

/* The seconds of a call timed before; QK_ERR_INVALID_ARG when there is none. */
static qk_status cached(const bench *b, qk_type type, int64_t rows, int64_t cols, int64_t mats, double *seconds) {
    for (size_t i = 0; i < b->n_calls; i++)
        if (b->calls[i].type == type && b->calls[i].rows == rows && b->calls[i].cols == cols &&
            b->calls[i].mats == mats && b->calls[i].measure == b->measure) {
            *seconds = b->calls[i].seconds;
            return QK_OK;
        }
    return QK_ERR_INVALID_ARG;
}

/* Seconds of one rows x cols call to `type`, timed at most once per run. */
static qk_status time_call(bench *b, qk_type type, int64_t rows, int64_t cols, int64_t mats, double *seconds) {
    if (cached(b, type, rows, cols, mats, seconds) == QK_OK) return QK_OK;
    double t;
    qk_status s = warm_up(b, type, rows, cols);
    if (s != QK_OK) return s;
    if ((s = run_quantize(b, type, rows, cols, mats, &t)) != QK_OK) return s;
    if (b->n_calls == b->cap_calls) {
        size_t cap = b->cap_calls ? 2 * b->cap_calls : 64;
        call *c = realloc(b->calls, cap * sizeof *c);
        if (!c) return QK_ERR_OUT_OF_MEMORY;
        b->calls = c, b->cap_calls = cap;
    }
    b->calls[b->n_calls++] = (call){type, rows, cols, mats, b->measure, t};
    *seconds = t;
    return QK_OK;
}

/* How a planned tensor is timed: `calls` calls of rows x cols whose rows form `mats` groups with
 * their own imatrix slice. An expert stack is one call of all its experts, as `qkern quantize`
 * makes it. With --limit-layers, a 2-D tensor outside the first blocks is timed on a share of its
 * rows (`rows` < full_rows) unless a call of its full size was timed already, and an expert stack
 * on a share of its experts. */
typedef struct unit {
    int64_t rows, full_rows, cols, calls, mats;
} unit;

static unit unit_of(const qk_model_tensor *t, int64_t n_layer, int64_t limit) {
    unit u = {t->ne[1] * t->ne[2] * t->ne[3], 0, t->ne[0], 1, 1};
    if (t->n_dims == 3) u.rows = t->ne[1] * t->ne[2], u.mats = t->ne[2], u.calls = t->ne[3];
    u.full_rows = u.rows;
    int64_t layer = layer_of(t->name);
    if (limit > 0 && limit < n_layer && t->n_dims == 3) {
        u.mats = (t->ne[2] * limit + n_layer - 1) / n_layer;
        u.rows = u.mats * t->ne[1];
    } else if (limit > 0 && limit < n_layer && (layer < 0 || layer >= limit)) {
        u.rows = (u.rows * limit + n_layer - 1) / n_layer;
    }
    return u;
}

/* ---- output ------------------------------------------------------------------------------------ */

typedef struct report {
    const synth_model_shape *shape;
    uint64_t params, n_tensors;
    const qk_device_info *dev;
    char date[32];
    long long limit;
    size_t n_calls;
} report;

static void print_md(const report *r, const preset_result *res, size_t n) {
    printf("# qkern bench quantize: %s (%s)\n\n", r->shape->name, r->shape->arch);
    printf("- parameters: %llu (%.3g; published: %s), %llu tensors\n", (unsigned long long)r->params, (double)r->params,
           r->shape->published, (unsigned long long)r->n_tensors);
    printf("- device: %s (%s), %s\n", r->dev->id, r->dev->name, r->date);
    printf("- source BF16 in device memory, random imatrix on every call; kernel time only\n");
    printf("- identical (type, rows, cols) calls timed once after one warm-up per type, then multiplied: "
           "%zu distinct calls timed\n",
           r->n_calls);
    if (r->limit > 0 && r->limit < r->shape->cfg.n_layer)
        printf("- projection (--limit-layers %lld): outside blocks 0..%lld, a 2-D call not timed at full size "
               "is timed on %lld/%lld of its rows and scaled\n",
               r->limit, r->limit - 1, r->limit, (long long)r->shape->cfg.n_layer);
    printf("\n| preset | tensors | weights | kernel s | G weights/s | GB/s bf16 | skipped |\n"
           "|---|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < n; i++) {
        const preset_result *p = &res[i];
        double gw = p->seconds > 0 ? (double)p->weights / p->seconds / 1e9 : 0.0;
        printf("| %s | %llu | %llu | %.4f | %.3f | %.2f | ", p->name, (unsigned long long)p->tensors,
               (unsigned long long)p->weights, p->seconds, gw, 2.0 * gw);
        if (p->skipped)
            printf("%llu (%llu weights, not on this device) |\n", (unsigned long long)p->skipped,
                   (unsigned long long)p->skipped_weights);
        else
            printf("0 |\n");
    }
    if (n && !strcmp(res[n - 1].name, "error-matrix"))
        printf("\nerror-matrix: what a size target (qkern quantize --target-bpw) measures before it chooses: every "
               "tensor the first preset converts, quantized and measured on the device (qk_quantize_measure) in each "
               "default candidate type its rows take; tensors and weights count (tensor, type) pairs\n");
}

static void print_csv(const report *r, const preset_result *res, size_t n) {
    printf("device,device_name,date,op,type,shape,value,unit,tensors,weights,gweights_per_s,gbps_bf16,skipped,"
           "skipped_weights,params,limit_layers\n");
    for (size_t i = 0; i < n; i++) {
        const preset_result *p = &res[i];
        double gw = p->seconds > 0 ? (double)p->weights / p->seconds / 1e9 : 0.0;
        printf("%s,\"%s\",%s,quantize_model,%s,%s,%.6f,s,%llu,%llu,%.4f,%.4f,%llu,%llu,%llu,%lld\n", r->dev->id,
               r->dev->name, r->date, p->name, r->shape->name, p->seconds, (unsigned long long)p->tensors,
               (unsigned long long)p->weights, gw, 2.0 * gw, (unsigned long long)p->skipped,
               (unsigned long long)p->skipped_weights, (unsigned long long)r->params, r->limit);
    }
}

static void print_json(const report *r, const preset_result *res, size_t n) {
    printf("[\n");
    for (size_t i = 0; i < n; i++) {
        const preset_result *p = &res[i];
        double gw = p->seconds > 0 ? (double)p->weights / p->seconds / 1e9 : 0.0;
        printf("  {\"device\": ");
        bench_json_string(stdout, r->dev->id);
        printf(", \"device_name\": ");
        bench_json_string(stdout, r->dev->name);
        printf(", \"date\": \"%s\", \"op\": \"quantize_model\", \"type\": \"%s\", \"shape\": \"%s\", "
               "\"arch\": \"%s\", \"value\": %.6f, \"unit\": \"s\", \"tensors\": %llu, \"weights\": %llu, "
               "\"gweights_per_s\": %.4f, \"gbps_bf16\": %.4f, \"skipped\": %llu, \"skipped_weights\": %llu, "
               "\"params\": %llu, \"limit_layers\": %lld, \"distinct_calls\": %zu}%s\n",
               r->date, p->name, r->shape->name, r->shape->arch, p->seconds, (unsigned long long)p->tensors,
               (unsigned long long)p->weights, gw, 2.0 * gw, (unsigned long long)p->skipped,
               (unsigned long long)p->skipped_weights, (unsigned long long)r->params, r->limit, r->n_calls,
               i + 1 < n ? "," : "");
    }
    printf("]\n");
}

/* ---- the command ------------------------------------------------------------------------------- */

/* Uploads random BF16 values (std 0.02, as weights are) into the whole source buffer, in chunks. */
static qk_status fill_source(bench *b, uint64_t values) {
    uint16_t *h = malloc(FILL_CHUNK * sizeof *h);
    if (!h) return QK_ERR_OUT_OF_MEMORY;
    qk_status s = QK_OK;
    for (uint64_t at = 0; at < values && s == QK_OK; at += FILL_CHUNK) {
        uint64_t k = values - at < FILL_CHUNK ? values - at : FILL_CHUNK;
        for (uint64_t i = 0; i < k; i++) h[i] = to_bf16((float)(0.02 * bench_gauss(&b->rng)));
        s = qk_buffer_write(b->src, (size_t)at * 2, h, (size_t)k * 2);
    }
    free(h);
    return s;
}

static int parse_presets(const char *list, const qk_preset **out, size_t *n) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", list) >= (int)sizeof buf) {
        fprintf(stderr, "qkern bench quantize: --preset list too long\n");
        return 0;
    }
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        const qk_preset *ft = NULL;
        if (qk_preset_from_name(tok, &ft) == QK_OK && ft->alias_of && qk_preset_from_name(ft->alias_of, &ft) != QK_OK)
            ft = NULL;
        if (!ft || ft->only_copy) {
            fprintf(stderr, "qkern bench quantize: --preset: '%s' is not a quantizing preset (qkern quantize --help)\n",
                    tok);
            return 0;
        }
        if (*n == MAX_PRESETS) {
            fprintf(stderr, "qkern bench quantize: more than %d presets\n", MAX_PRESETS);
            return 0;
        }
        out[(*n)++] = ft;
    }
    if (!*n) fprintf(stderr, "qkern bench quantize: --preset is empty\n");
    return *n > 0;
}

/* The context's message, or the status's own where the failure was the CLI's (out of host memory). */
static const char *why(const qk_context *ctx, qk_status s) {
    const char *m = qk_last_error(ctx);
    return m[0] ? m : qk_status_string(s);
}

/* Times tensor t quantized to `type` and adds it to r: 0, or -1 after saying why. A type with no
 * kernel on the device counts as skipped. */
static int add_tensor(bench *b, const qk_model_tensor *t, qk_type type, int64_t n_layer, int64_t limit,
                      preset_result *r) {
    const uint64_t w = (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    unit u = unit_of(t, n_layer, limit);
    double sec = 0;
    qk_status s = QK_ERR_INVALID_ARG;
    if (u.rows < u.full_rows && t->n_dims != 3 && (s = cached(b, type, u.full_rows, u.cols, u.mats, &sec)) == QK_OK)
        u.rows = u.full_rows;
    if (s != QK_OK) s = time_call(b, type, u.rows, u.cols, u.mats, &sec);
    r->tensors++;
    if (s == QK_ERR_UNSUPPORTED) {
        r->skipped++, r->skipped_weights += w;
        return 0;
    }
    if (s != QK_OK) {
        fprintf(stderr, "qkern bench quantize: %s to %s: %s\n", t->name, qk_type_name(type), why(b->ctx, s));
        return -1;
    }
    r->weights += w;
    r->seconds += sec * (double)u.calls * ((double)u.full_rows / (double)u.rows);
    return 0;
}

/* The error matrix of a size target: every tensor the plan converts, quantized and measured
 * (qk_quantize_measure) in each candidate type its row length takes. One row of the report, whose
 * tensors and weights count (tensor, type) pairs. 0, or -1 after saying why. */
static int measure_candidates(bench *b, const qk_model_result *plan, size_t n, int64_t n_layer, int64_t limit,
                              const int *cand, size_t n_cand, preset_result *r) {
    r->name = "error-matrix";
    b->measure = 1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const qk_model_tensor *e = qk_model_result_tensor(plan, i);
        if (!e->converted) continue;
        for (size_t j = 0; j < n_cand && rc == 0; j++)
            if (qk_type_row_bytes(cand[j], e->ne[0])) rc = add_tensor(b, e, (qk_type)cand[j], n_layer, limit, r);
    }
    b->measure = 0;
    return rc;
}

static void bench_free(bench *b) {
    qk_buffer_destroy(b->src);
    qk_buffer_destroy(b->dst);
    qk_context_destroy(b->ctx);
    for (size_t i = 0; i < b->n_imatrix; i++) free(b->imatrix[i]);
    free(b->imatrix), free(b->imatrix_cols), free(b->calls);
}

static int bench_quantize(int argc, char **argv) {
    const char *shape_name = NULL, *presets = DEFAULT_PRESET, *device = NULL, *format = "md";
    long long limit = 0, threads = 0;
    int error_matrix = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage_quantize(stdout);
            return 0;
        } else if (!strcmp(a, "--error-matrix")) {
            error_matrix = 1;
        } else if (!strcmp(a, "--limit-layers") || !strcmp(a, "--threads") || !strcmp(a, "-t")) {
            const int thr = strcmp(a, "--limit-layers") != 0;
            if (!cli_parse_int(a, v, thr ? 0 : 1, 4096, thr ? &threads : &limit)) return 2;
            i++;
        } else if ((!strcmp(a, "--shape") || !strcmp(a, "--preset") || !strcmp(a, "--device") || !strcmp(a, "-dev") ||
                    !strcmp(a, "--format") || !strcmp(a, "-o")) &&
                   v) {
            *(!strcmp(a, "--shape")                          ? &shape_name
              : !strcmp(a, "--preset")                       ? &presets
              : !strcmp(a, "--device") || !strcmp(a, "-dev") ? &device
                                                             : &format) = v;
            i++;
        } else {
            fprintf(stderr, "qkern bench quantize: unknown or incomplete argument '%s' (qkern bench quantize --help)\n",
                    a);
            return 2;
        }
    }
    const synth_model_shape *shape = synth_model_shape_find(shape_name);
    if (!shape) {
        fprintf(stderr, "qkern bench quantize: %s '%s' (qkern bench quantize --help lists them)\n",
                shape_name ? "unknown --shape" : "--shape is required", shape_name ? shape_name : "");
        return 2;
    }
    if (!bench_check_format("qkern bench quantize", format)) return 2;
    const qk_preset *fts[MAX_PRESETS];
    size_t n_presets;
    if (!parse_presets(presets, fts, &n_presets)) return 2;

    int rc = 1;
    synth_model_tensor *st = NULL;
    qk_tensor_shape *pt = NULL;
    preset_result res[MAX_PRESETS + 1]; /* + the error matrix's row */
    memset(res, 0, sizeof res);
    bench b;
    memset(&b, 0, sizeof b);
    b.rng = (uint64_t)time(NULL);
    size_t n = 0;
    if (synth_model_tensors(&shape->cfg, QK_TYPE_BF16, &st, &n) != QK_OK) {
        cli_fail_message(shape->name, synth_model_error());
        goto done;
    }
    pt = calloc(n ? n : 1, sizeof *pt);
    if (!pt) {
        fprintf(stderr, "qkern bench quantize: out of memory\n");
        goto done;
    }
    uint64_t params = 0;
    for (size_t i = 0; i < n; i++) {
        pt[i] = (qk_tensor_shape){
            st[i].name, st[i].type, st[i].n_dims, {st[i].ne[0], st[i].ne[1], st[i].ne[2], st[i].ne[3]}};
        params += (uint64_t)(st[i].ne[0] * st[i].ne[1] * st[i].ne[2] * st[i].ne[3]);
    }
    const synth_model_config *c = &shape->cfg;
    qk_model_plan_desc model = qk_model_plan_default_desc();
    model.arch = shape->arch;
    model.n_layer = c->n_layer, model.n_head = c->n_head, model.n_head_kv = c->n_head_kv, model.n_expert = c->n_expert;
    model.tensors = pt, model.n_tensors = n;
    model.has_imatrix = 1;

    /* the error matrix's candidates: the default list, as qkern quantize --target-bpw takes it */
    int cand[MAX_CANDIDATES];
    size_t n_cand = error_matrix ? qk_model_target_default_types(cand, MAX_CANDIDATES) : 0;

    /* plan every preset first: the buffers are sized once for the largest call of any of them */
    uint64_t max_src = 1, max_dst = 1;
    for (size_t k = 0; k < n_presets; k++) {
        res[k].name = fts[k]->name;
        qk_model_quantize_desc recipe = qk_model_quantize_default_desc();
        recipe.preset = fts[k]->name;
        if (qk_model_plan(&recipe, &model, &res[k].plan) != QK_OK) {
            cli_fail(fts[k]->name, NULL);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            const qk_model_tensor *e = qk_model_result_tensor(res[k].plan, i);
            if (!e->converted) continue;
            unit u = unit_of(e, c->n_layer, limit);
            uint64_t src, dst;
            if (__builtin_mul_overflow((uint64_t)u.rows, (uint64_t)u.cols, &src) ||
                __builtin_mul_overflow((uint64_t)qk_type_row_bytes(e->type, u.cols), (uint64_t)u.rows, &dst) ||
                src > SIZE_MAX / 2) {
                fprintf(stderr, "qkern bench quantize: %s is too large\n", e->name);
                goto done;
            }
            max_src = src > max_src ? src : max_src;
            max_dst = dst > max_dst ? dst : max_dst;
            for (size_t j = 0; k == 0 && j < n_cand; j++) {
                uint64_t cd = (uint64_t)qk_type_row_bytes(cand[j], u.cols) * (uint64_t)u.rows;
                max_dst = cd > max_dst ? cd : max_dst;
            }
        }
    }

    qk_device_info dev;
    if (bench_open_device(device, (int)threads, &b.ctx, &dev) != QK_OK) {
        cli_fail(device ? device : "auto", b.ctx);
        goto done;
    }
    if (qk_buffer_create(b.ctx, (size_t)max_src * 2, &b.src) != QK_OK ||
        qk_buffer_create(b.ctx, (size_t)max_dst, &b.dst) != QK_OK || fill_source(&b, max_src) != QK_OK) {
        cli_fail_message("buffers", why(b.ctx, QK_ERR_OUT_OF_MEMORY));
        goto done;
    }

    for (size_t k = 0; k < n_presets; k++)
        for (size_t i = 0; i < n; i++) {
            const qk_model_tensor *e = qk_model_result_tensor(res[k].plan, i);
            if (e->converted && add_tensor(&b, e, e->type, c->n_layer, limit, &res[k]) != 0) goto done;
        }

    size_t n_rows = n_presets;
    if (error_matrix && measure_candidates(&b, res[0].plan, n, c->n_layer, limit, cand, n_cand, &res[n_presets]) != 0)
        goto done;
    n_rows += error_matrix;

    report rep = {shape, params, n, &dev, "", limit, b.n_calls};
    bench_date(rep.date, sizeof rep.date);
    if (!strcmp(format, "json"))
        print_json(&rep, res, n_rows);
    else if (!strcmp(format, "csv"))
        print_csv(&rep, res, n_rows);
    else
        print_md(&rep, res, n_rows);
    rc = 0;
done:
    for (size_t k = 0; k < n_presets; k++) qk_model_result_free(res[k].plan);
    free(pt), free(st);
    bench_free(&b);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "quantize")) return bench_quantize(argc - 1, argv + 1);
    if (!strcmp(argv[1], "pp") || !strcmp(argv[1], "tg"))
        return cmd_bench_moe(argc - 1, argv + 1, !strcmp(argv[1], "tg") ? BENCH_MOE_TG : BENCH_MOE_PP);
    if (argv[1][0] == '-') return cmd_bench_moe(argc, argv, BENCH_MOE_BOTH); /* llama-bench's way: -p and -n */
    fprintf(stderr, "qkern bench: unknown subcommand '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
