/* qkern bench pp / tg: what llama-bench's pp512 and tg128 measure, restricted to the MoE FFN
 * layers of a model shape (routed experts' gate/up with SiLU, down projection summed with the
 * router weights, and the shared expert), per weight type, against ceilings measured in the same
 * run (DESIGN.md, "Performance: how it is measured").
 *
 * A large model does not fit in device memory, so a few distinct layers' weights are allocated
 * (enough to exceed any GPU's L2 cache several times over) and the pass cycles through them; each
 * layer and each generated token gets its own routing, so what is read comes from memory, not
 * from cache. On a CUDA device the whole pass is one CUDA graph of asynchronous calls; elsewhere
 * the synchronous calls are timed with the wall clock. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "ceilings.h"
#include "cli.h"
#include "cmd_bench_moe.h"
#include "moe_routing.h"
#include "qkern_cuda.h"
#include "synth_model.h"

#define DEFAULT_SHAPE  "qwen3.5-35b-a3b"
#define DEFAULT_TYPES  "Q4_0,Q4_K,Q6_K,Q8_0,IQ2_XXS,IQ3_S,IQ4_XS,MXFP4"
#define MAX_TYPES      64
#define ROUTING_SEED   0x9E3779B1ull
#define MIN_WEIGHTS    ((uint64_t)1 << 30) /* distinct weights cycled: 20x the 50 MB L2 of an H100 */
#define MEMORY_SHARE   0.6                 /* of device memory that the weight copies may take */
#define PATTERN_VALUES ((int64_t)1 << 22)  /* values quantized per distinct row length */
#define STAGING_BYTES  ((size_t)64 << 20)

typedef struct moe_shape {
    char model[32];  /* "qwen3.5-35b-a3b", or "custom" */
    char shape[160]; /* the name, or the custom spec in canonical form */
    int64_t hidden, experts, used, ffn, shexp, layers;
} moe_shape;

typedef struct options {
    moe_shape s;
    qk_type types[MAX_TYPES];
    size_t n_types;
    int all_types, tg;
    long long tokens, steps, reps, copies, threads;
    qkb_routing routings[2];
    int n_routings;
    const char *device, *format, *commit;
} options;

/* Where each weight tensor of one layer lies in that layer's copy, and row sizes. */
typedef struct layout {
    size_t gate, up, down, sgate, sup, sdown, bytes; /* offsets, and the bytes of one layer */
    size_t gate_bytes, down_bytes, sgate_bytes, sdown_bytes;
} layout;

typedef struct pass {
    qk_context *ctx;
    const moe_shape *s;
    qk_type type;
    layout L;
    int64_t tokens, steps, copies; /* tokens per op; ops per layer in the pass (tg: tokens generated) */
    qk_buffer *w, *x, *gu, *y, *sgu, *sy, *ids, *router, *ws;
    size_t ws_bytes;
    qk_status st; /* of the last asynchronous pass */
} pass;

typedef struct row {
    qk_type type;
    qkb_routing routing;
    int64_t copies;
    double ts_mean, ts_sd, t_mean, t_sd; /* tokens/s; seconds per pass */
    double bytes, flops;                 /* expert weights read and FLOPs per pass */
    double copy_frac, gemm_frac;         /* NAN when not measured */
    double base_us, base_dq_us, base_mm_us, base_frac;
} row;

typedef struct ceilings {
    int cuda, ordinal;
    double copy_bps, gemm_fps; /* 0 when not measured */
    char copy_why[256], gemm_why[256], base_why[256];
    int64_t gemm_m, gemm_n, gemm_k;
} ceilings;

/* ---- usage and options --------------------------------------------------------------------- */

static void usage(FILE *f, int tg) {
    const char *c = tg ? "tg" : "pp";
    fprintf(f,
            "usage: qkern bench %s [-m SHAPE | --custom SPEC] [-t TYPES] [%s] [-r N] [--routing R]\n"
            "                      [--device D] [--format md|csv|json] [--commit SHA] [--copies N] [--threads N]\n",
            c, tg ? "-n N" : "-p N");
    fprintf(f, "  %s\n",
            tg ? "Token generation: one token at a time, -n tokens in a row (tgN), through every MoE FFN layer."
               : "Prompt processing: -p tokens at once (ppN) through every MoE FFN layer.");
    fprintf(f, "  A layer: routed gate/up with SiLU (qk_moe_gate_up), down summed with the router weights\n"
               "  (qk_moe_weighted_sum), and the shared expert (gate/up, then qk_moe_matmul); attention is not\n"
               "  run. Weights are random quantized blocks; since a model does not fit in memory, a few distinct\n"
               "  layers are allocated (at least 1 GiB, several times any L2 cache; --copies) and cycled through\n"
               "  for all layers. Routing is drawn from a fixed seed, fresh per layer and per token.\n"
               "  On CUDA the pass is one CUDA graph timed with events; ceilings of the same run: copy bandwidth\n"
               "  (tg: weight GB/s over it), and for pp a dense fp16 cuBLAS GEMM of the gate/up op's FLOPs and the\n"
               "  user's path, dequantize to fp16 + cuBLAS grouped GEMM (measured on layer 0, times the layers).\n"
               "  Other devices run the synchronous calls, wall-clock timed, without ceilings.\n"
               "  -m, --model  ");
    bench_print_shape_names(f);
    fprintf(f, " (default " DEFAULT_SHAPE ")\n"
               "  --custom     hidden=H,experts=E,used=U,ffn=F[,shexp=S][,layers=L] (shexp 0: none; layers 1)\n"
               "  -t, --type   comma-separated weight types, or all (default " DEFAULT_TYPES ")\n");
    if (tg)
        fprintf(f, "  -n N         tokens generated per pass (default 128)\n");
    else
        fprintf(f, "  -p N         prompt tokens (default 512)\n");
    fprintf(f, "  -r N         timed passes, reported as mean and standard deviation (default 5)\n"
               "  --routing    uniform, skewed or both (default both, one row each)\n"
               "  --device     cpu, cuda:N, vulkan:N (default: the best present)\n"
               "  --format     md (default), csv or json (-o also works)\n"
               "  --commit     the commit recorded in the output (default: $QK_COMMIT, else unknown)\n"
               "  --copies     distinct layers in memory (default: enough for 1 GiB, at most the layers)\n"
               "  --threads    cpu worker threads (default: all cores)\n");
}

static int parse_custom(const char *cmd, const char *spec, moe_shape *s) {
    static const char *const keys[] = {"hidden", "experts", "used", "ffn", "shexp", "layers"};
    int64_t v[6] = {0, 0, 0, 0, 0, 1};
    int seen[6] = {0};
    char buf[256];
    if (snprintf(buf, sizeof buf, "%s", spec) >= (int)sizeof buf) {
        fprintf(stderr, "%s: --custom is too long\n", cmd);
        return 0;
    }
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '='), *end;
        size_t k = 0;
        if (eq) *eq = 0;
        while (k < 6 && strcmp(tok, keys[k])) k++;
        long long x = eq ? strtoll(eq + 1, &end, 10) : 0;
        if (!eq || k == 6 || end == eq + 1 || *end || x < (k == 4 ? 0 : 1) || x > (1 << 20)) {
            fprintf(stderr,
                    "%s: --custom: bad item '%s%s%s' (hidden, experts, used, ffn, shexp, layers = whole numbers)\n",
                    cmd, tok, eq ? "=" : "", eq ? eq + 1 : "");
            return 0;
        }
        v[k] = x, seen[k] = 1;
    }
    for (int k = 0; k < 4; k++)
        if (!seen[k]) {
            fprintf(stderr, "%s: --custom needs %s= (and hidden, experts, used, ffn)\n", cmd, keys[k]);
            return 0;
        }
    if (v[2] > v[1] || v[5] > 4096) {
        fprintf(stderr, "%s: --custom: used (%lld) must not exceed experts (%lld), layers at most 4096\n", cmd,
                (long long)v[2], (long long)v[1]);
        return 0;
    }
    memset(s, 0, sizeof *s);
    snprintf(s->model, sizeof s->model, "custom");
    snprintf(s->shape, sizeof s->shape, "hidden=%lld,experts=%lld,used=%lld,ffn=%lld,shexp=%lld,layers=%lld",
             (long long)v[0], (long long)v[1], (long long)v[2], (long long)v[3], (long long)v[4], (long long)v[5]);
    s->hidden = v[0], s->experts = v[1], s->used = v[2], s->ffn = v[3], s->shexp = v[4], s->layers = v[5];
    return 1;
}

static int parse_types(const char *cmd, const char *list, options *o) {
    char buf[1024];
    o->n_types = 0;
    if (!strcmp(list, "all")) {
        o->all_types = 1;
        for (int i = 0; i < qk_type_count() && o->n_types < MAX_TYPES; i++) {
            qk_type_info info;
            if (qk_type_get_info(qk_type_at(i), &info) == QK_OK && info.is_quantized)
                o->types[o->n_types++] = info.type;
        }
        return 1;
    }
    if (snprintf(buf, sizeof buf, "%s", list) >= (int)sizeof buf) {
        fprintf(stderr, "%s: --type list too long\n", cmd);
        return 0;
    }
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        qk_type t;
        qk_type_info info;
        if (qk_type_from_name(tok, &t) != QK_OK || qk_type_get_info(t, &info) != QK_OK || !info.is_quantized) {
            fprintf(stderr, "%s: --type: '%s' is not a quantized type (qkern types lists them)\n", cmd, tok);
            return 0;
        }
        if (o->n_types == MAX_TYPES) {
            fprintf(stderr, "%s: more than %d types\n", cmd, MAX_TYPES);
            return 0;
        }
        o->types[o->n_types++] = t;
    }
    if (!o->n_types) fprintf(stderr, "%s: --type is empty\n", cmd);
    return o->n_types > 0;
}

/* 0 on success, else the exit code (2: a bad argument; after --help, -1 for exit 0). */
static int parse_options(int argc, char **argv, options *o) {
    const char *cmd = o->tg ? "qkern bench tg" : "qkern bench pp";
    const char *model = NULL, *custom = NULL, *types = DEFAULT_TYPES, *routing = "both";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long *num = !strcmp(a, "-p") && !o->tg  ? &o->tokens
                         : !strcmp(a, "-n") && o->tg ? &o->steps
                         : !strcmp(a, "-r")          ? &o->reps
                         : !strcmp(a, "--copies")    ? &o->copies
                         : !strcmp(a, "--threads")   ? &o->threads
                                                     : NULL;
        const char **str = !strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "--shape") ? &model
                           : !strcmp(a, "--custom")                                           ? &custom
                           : !strcmp(a, "-t") || !strcmp(a, "--type")                         ? &types
                           : !strcmp(a, "--routing")                                          ? &routing
                           : !strcmp(a, "--device")                                           ? &o->device
                           : !strcmp(a, "--format") || !strcmp(a, "-o")                       ? &o->format
                           : !strcmp(a, "--commit")                                           ? &o->commit
                                                                                              : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, o->tg);
            return -1;
        } else if (num) {
            long long hi = num == &o->tokens ? (1 << 20) : num == &o->threads ? 4096 : 100000;
            if (!cli_parse_int(a, v, num == &o->threads ? 0 : 1, hi, num)) return 2;
            i++;
        } else if (str && v) {
            *str = v;
            i++;
        } else {
            fprintf(stderr, "%s: unknown or incomplete argument '%s' (%s --help)\n", cmd, a, cmd);
            return 2;
        }
    }
    if (model && custom) {
        fprintf(stderr, "%s: give either -m or --custom, not both\n", cmd);
        return 2;
    }
    if (custom) {
        if (!parse_custom(cmd, custom, &o->s)) return 2;
    } else {
        const synth_model_shape *sh = synth_model_shape_find(model ? model : DEFAULT_SHAPE);
        if (!sh) {
            fprintf(stderr, "%s: unknown model shape '%s' (%s --help lists them)\n", cmd, model, cmd);
            return 2;
        }
        const synth_model_config *c = &sh->cfg;
        snprintf(o->s.model, sizeof o->s.model, "%s", sh->name);
        snprintf(o->s.shape, sizeof o->s.shape, "%s", sh->name);
        o->s.hidden = c->n_embd, o->s.experts = c->n_expert, o->s.used = c->n_expert_used;
        o->s.ffn = c->n_ff_exp, o->s.shexp = c->n_ff_shexp, o->s.layers = c->n_layer;
    }
    if (!parse_types(cmd, types, o) || !bench_check_format(cmd, o->format)) return 2;
    if (!strcmp(routing, "both"))
        o->routings[0] = QKB_ROUTING_UNIFORM, o->routings[1] = QKB_ROUTING_SKEWED, o->n_routings = 2;
    else if (!strcmp(routing, "uniform") || !strcmp(routing, "skewed"))
        o->routings[0] = !strcmp(routing, "skewed") ? QKB_ROUTING_SKEWED : QKB_ROUTING_UNIFORM, o->n_routings = 1;
    else {
        fprintf(stderr, "%s: --routing must be uniform, skewed or both, not '%s'\n", cmd, routing);
        return 2;
    }
    if (!o->commit) o->commit = getenv("QK_COMMIT");
    if (!o->commit || !*o->commit) o->commit = "unknown";
    return 0;
}

/* ---- the pass -------------------------------------------------------------------------------- */

static layout layout_of(const moe_shape *s, qk_type type) {
    layout L = {0};
    L.gate_bytes = (size_t)(s->experts * s->ffn) * qk_type_row_bytes(type, s->hidden);
    L.down_bytes = (size_t)(s->experts * s->hidden) * qk_type_row_bytes(type, s->ffn);
    if (s->shexp) {
        L.sgate_bytes = (size_t)s->shexp * qk_type_row_bytes(type, s->hidden);
        L.sdown_bytes = (size_t)s->hidden * qk_type_row_bytes(type, s->shexp);
    }
    L.gate = 0, L.up = L.gate_bytes, L.down = 2 * L.gate_bytes, L.sgate = L.down + L.down_bytes;
    L.sup = L.sgate + L.sgate_bytes, L.sdown = L.sup + L.sgate_bytes, L.bytes = L.sdown + L.sdown_bytes;
    return L;
}

enum { OP_GATE_UP, OP_DOWN, OP_SHARED_GATE_UP, OP_SHARED_DOWN, OP_COUNT };

/* The descs of one layer's ops for generated token `step` (pp: 0) in model layer `layer`. */
static int layer_descs(const pass *p, int64_t step, int64_t layer, qk_moe_desc d[OP_COUNT]) {
    const moe_shape *s = p->s;
    const size_t c = (size_t)(layer % p->copies) * p->L.bytes, t = (size_t)p->tokens;
    const size_t slots = t * (size_t)s->used, at = ((size_t)(layer * p->steps + step)) * slots;
    for (int i = 0; i < OP_COUNT; i++) {
        d[i] = qk_moe_default_desc();
        d[i].type = p->type, d[i].x_type = QK_TYPE_F32, d[i].n_tokens = p->tokens;
        if (p->ws_bytes) d[i].workspace = qk_buf(p->ws, 0, p->ws_bytes);
    }
    d[OP_GATE_UP].n_expert = s->experts, d[OP_GATE_UP].m = s->ffn, d[OP_GATE_UP].k = s->hidden;
    d[OP_GATE_UP].n_used = s->used;
    d[OP_GATE_UP].w = qk_buf(p->w, c + p->L.gate, p->L.gate_bytes);
    d[OP_GATE_UP].w_up = qk_buf(p->w, c + p->L.up, p->L.gate_bytes);
    d[OP_GATE_UP].x = qk_buf(p->x, 0, t * (size_t)s->hidden * 4);
    d[OP_GATE_UP].ids = qk_buf(p->ids, at * 4, slots * 4);
    d[OP_GATE_UP].y = qk_buf(p->gu, 0, slots * (size_t)s->ffn * 4);

    d[OP_DOWN].n_expert = s->experts, d[OP_DOWN].m = s->hidden, d[OP_DOWN].k = s->ffn, d[OP_DOWN].n_used = s->used;
    d[OP_DOWN].x_per_slot = 1;
    d[OP_DOWN].w = qk_buf(p->w, c + p->L.down, p->L.down_bytes);
    d[OP_DOWN].x = d[OP_GATE_UP].y;
    d[OP_DOWN].ids = d[OP_GATE_UP].ids;
    d[OP_DOWN].router = qk_buf(p->router, at * 4, slots * 4);
    d[OP_DOWN].y = qk_buf(p->y, 0, t * (size_t)s->hidden * 4);
    if (!s->shexp) return 2;

    d[OP_SHARED_GATE_UP].m = s->shexp, d[OP_SHARED_GATE_UP].k = s->hidden;
    d[OP_SHARED_GATE_UP].w = qk_buf(p->w, c + p->L.sgate, p->L.sgate_bytes);
    d[OP_SHARED_GATE_UP].w_up = qk_buf(p->w, c + p->L.sup, p->L.sgate_bytes);
    d[OP_SHARED_GATE_UP].x = d[OP_GATE_UP].x;
    d[OP_SHARED_GATE_UP].y = qk_buf(p->sgu, 0, t * (size_t)s->shexp * 4);

    d[OP_SHARED_DOWN].m = s->hidden, d[OP_SHARED_DOWN].k = s->shexp;
    d[OP_SHARED_DOWN].w = qk_buf(p->w, c + p->L.sdown, p->L.sdown_bytes);
    d[OP_SHARED_DOWN].x = d[OP_SHARED_GATE_UP].y;
    d[OP_SHARED_DOWN].y = qk_buf(p->sy, 0, t * (size_t)s->hidden * 4);
    return OP_COUNT;
}

static qk_status run_op(const pass *p, int op, const qk_moe_desc *d, void *stream, int async) {
    if (async)
        return op == OP_DOWN          ? qk_cuda_moe_weighted_sum_async(p->ctx, d, stream)
               : op == OP_SHARED_DOWN ? qk_cuda_moe_matmul_async(p->ctx, d, stream)
                                      : qk_cuda_moe_gate_up_async(p->ctx, d, stream);
    return op == OP_DOWN          ? qk_moe_weighted_sum(p->ctx, d)
           : op == OP_SHARED_DOWN ? qk_moe_matmul(p->ctx, d)
                                  : qk_moe_gate_up(p->ctx, d);
}

/* Every op of the pass, in model order: token after token, layer after layer. */
static qk_status run_pass(const pass *p, void *stream, int async) {
    qk_moe_desc d[OP_COUNT];
    for (int64_t step = 0; step < p->steps; step++)
        for (int64_t layer = 0; layer < p->s->layers; layer++) {
            int n = layer_descs(p, step, layer, d);
            for (int i = 0; i < n; i++) {
                qk_status st = run_op(p, i, &d[i], stream, async);
                if (st != QK_OK) return st;
            }
        }
    return QK_OK;
}

static int enqueue_pass(void *arg, void *stream, char *err, size_t errlen) {
    pass *p = arg;
    if ((p->st = run_pass(p, stream, 1)) == QK_OK) return 0;
    snprintf(err, errlen, "%s", qk_last_error(p->ctx));
    return -1;
}

/* The workspace all ops share: the largest any of them asks for. QK_ERR_UNSUPPORTED when the
 * device has no kernel for the type. */
static qk_status workspace_bytes(pass *p, size_t *bytes) {
    qk_moe_desc d[OP_COUNT];
    int n = layer_descs(p, 0, 0, d);
    *bytes = 0;
    for (int i = 0; i < n; i++) {
        size_t b;
        qk_status st = qk_moe_workspace_size(p->ctx, &d[i], &b);
        if (st != QK_OK) return st;
        if (b > *bytes) *bytes = b;
    }
    return QK_OK;
}

/* ---- random weights -------------------------------------------------------------------------- */

/* Quantized rows of length k, from random values (and a random imatrix where the type uses one):
 * a pattern that fill_weights repeats over the tensors. Quantizing every weight would take
 * minutes for the search-based types; repeated rows cost a kernel exactly as much. */
typedef struct pattern {
    int64_t k, rows;
    unsigned char *blocks;
    size_t bytes;
} pattern;

static qk_status make_pattern(qk_context *ctx, qk_type type, int64_t k, int64_t max_rows, uint64_t *rng, pattern *pt) {
    qk_type_info info;
    qk_type_get_info(type, &info);
    pt->k = k;
    pt->rows = PATTERN_VALUES / k < 1 ? 1 : PATTERN_VALUES / k;
    if (pt->rows > max_rows) pt->rows = max_rows;
    pt->bytes = (size_t)pt->rows * qk_type_row_bytes(type, k);
    float *src = malloc((size_t)(pt->rows * k) * sizeof *src), *im = malloc((size_t)k * sizeof *im);
    pt->blocks = malloc(pt->bytes);
    qk_status st = QK_ERR_OUT_OF_MEMORY;
    if (src && im && pt->blocks) {
        for (int64_t i = 0; i < pt->rows * k; i++) src[i] = (float)(0.02 * bench_gauss(rng));
        for (int64_t j = 0; j < k; j++) im[j] = (float)exp(bench_gauss(rng));
        qk_quantize_desc q = qk_quantize_default_desc();
        q.type = type, q.src_type = QK_TYPE_F32, q.rows = pt->rows, q.cols = k;
        q.src = qk_host(src, (size_t)(pt->rows * k) * sizeof *src);
        q.dst = qk_host(pt->blocks, pt->bytes);
        q.imatrix = info.uses_imatrix ? im : NULL, q.imatrix_len = info.uses_imatrix ? k : 0;
        q.flags = QK_QUANTIZE_ALLOW_NO_IMATRIX;
        st = qk_quantize(ctx, &q);
    }
    free(src), free(im);
    return st;
}

/* Writes `bytes` (whole rows) at `offset` of the weights, repeating the pattern. */
static qk_status fill_region(qk_buffer *w, size_t offset, size_t bytes, const pattern *pt, unsigned char *staging,
                             size_t staging_bytes) {
    size_t reps = staging_bytes / pt->bytes ? staging_bytes / pt->bytes : 1, chunk = reps * pt->bytes;
    for (size_t i = 0; i < reps; i++) memcpy(staging + i * pt->bytes, pt->blocks, pt->bytes);
    for (size_t at = 0; at < bytes; at += chunk) {
        qk_status st = qk_buffer_write(w, offset + at, staging, bytes - at < chunk ? bytes - at : chunk);
        if (st != QK_OK) return st;
    }
    return QK_OK;
}

static qk_status fill_weights(pass *p) {
    const moe_shape *s = p->s;
    const int64_t ks[3] = {s->hidden, s->ffn, s->shexp};
    pattern pt[3] = {{0}};
    uint64_t rng = 0x5EED0000ull + (uint64_t)p->type;
    size_t staging_bytes = STAGING_BYTES;
    unsigned char *staging = NULL;
    qk_status st = QK_OK;
    for (int i = 0; i < 3 && st == QK_OK; i++) {
        if (!ks[i]) continue;
        st = make_pattern(p->ctx, p->type, ks[i], i == 1 ? s->experts * s->hidden : s->experts * s->ffn, &rng, &pt[i]);
        if (st == QK_OK && pt[i].bytes > staging_bytes) staging_bytes = pt[i].bytes;
    }
    if (st == QK_OK && !(staging = malloc(staging_bytes))) st = QK_ERR_OUT_OF_MEMORY;
    for (int64_t c = 0; c < p->copies && st == QK_OK; c++) {
        const size_t base = (size_t)c * p->L.bytes;
        const struct {
            size_t at, bytes;
            int k;
        } parts[] = {{p->L.gate, p->L.gate_bytes, 0}, {p->L.up, p->L.gate_bytes, 0},
                     {p->L.down, p->L.down_bytes, 1}, {p->L.sgate, p->L.sgate_bytes, 0},
                     {p->L.sup, p->L.sgate_bytes, 0}, {p->L.sdown, p->L.sdown_bytes, 2}};
        for (size_t i = 0; i < sizeof parts / sizeof parts[0] && st == QK_OK; i++)
            if (parts[i].bytes)
                st = fill_region(p->w, base + parts[i].at, parts[i].bytes, &pt[parts[i].k], staging, staging_bytes);
    }
    for (int i = 0; i < 3; i++) free(pt[i].blocks);
    free(staging);
    return st;
}

/* ---- measuring -------------------------------------------------------------------------------- */

static void free_pass(pass *p) {
    qk_buffer *b[] = {p->w, p->x, p->gu, p->y, p->sgu, p->sy, p->ids, p->router, p->ws};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) qk_buffer_destroy(b[i]);
}

/* Distinct experts each op reads, over the pass: bytes of weights it must bring in. */
static double weight_bytes(const pass *p, const int32_t *ids) {
    const moe_shape *s = p->s;
    unsigned char *seen = calloc((size_t)s->experts, 1);
    double expert = (double)(2 * p->L.gate_bytes + p->L.down_bytes) / (double)s->experts;
    double shared = (double)(2 * p->L.sgate_bytes + p->L.sdown_bytes), total = 0;
    const int64_t slots = p->tokens * s->used;
    for (int64_t op = 0; seen && op < s->layers * p->steps; op++) {
        const int32_t *o = ids + op * slots;
        int64_t touched = 0;
        for (int64_t i = 0; i < slots; i++) touched += !seen[o[i]], seen[o[i]] = 1;
        for (int64_t i = 0; i < slots; i++) seen[o[i]] = 0;
        total += (double)touched * expert + shared;
    }
    free(seen);
    return total;
}

static void progress(const options *o, size_t at, size_t total, const char *what) {
    if (!isatty(2)) return;
    fprintf(stderr, "\r\033[Kqkern bench %s: [%zu/%zu] %s", o->tg ? "tg" : "pp", at, total, what);
    fflush(stderr);
}

/* The user's path on layer 0's routing (dequantize the experts touched + cuBLAS grouped GEMM),
 * for every op of the layer, times the layers. */
static int baseline(const pass *p, const ceilings *cl, const int32_t *ids, row *r, char *err, size_t errlen) {
    const moe_shape *s = p->s;
    int32_t *zeros = calloc((size_t)p->tokens, sizeof *zeros);
    double dq[4] = {0}, mm[4] = {0};
    int rc = !zeros;
    if (!zeros) snprintf(err, errlen, "out of host memory");
    if (!rc)
        rc = qkb_dequant_grouped_gemm_us(p->ctx, cl->ordinal, p->type, qk_buf(p->w, p->L.gate, p->L.gate_bytes),
                                         s->experts, s->ffn, s->hidden, p->tokens, s->used, ids, &dq[0], &mm[0], err,
                                         errlen);
    if (!rc)
        rc = qkb_dequant_grouped_gemm_us(p->ctx, cl->ordinal, p->type, qk_buf(p->w, p->L.down, p->L.down_bytes),
                                         s->experts, s->hidden, s->ffn, p->tokens, s->used, ids, &dq[1], &mm[1], err,
                                         errlen);
    if (!rc && s->shexp)
        rc = qkb_dequant_grouped_gemm_us(p->ctx, cl->ordinal, p->type, qk_buf(p->w, p->L.sgate, p->L.sgate_bytes), 1,
                                         s->shexp, s->hidden, p->tokens, 1, zeros, &dq[2], &mm[2], err, errlen);
    if (!rc && s->shexp)
        rc = qkb_dequant_grouped_gemm_us(p->ctx, cl->ordinal, p->type, qk_buf(p->w, p->L.sdown, p->L.sdown_bytes), 1,
                                         s->hidden, s->shexp, p->tokens, 1, zeros, &dq[3], &mm[3], err, errlen);
    free(zeros);
    if (rc) return rc;
    /* gate and up are two tensors of the same shape and routing: twice the one measured */
    r->base_dq_us = (double)s->layers * (2 * dq[0] + dq[1] + 2 * dq[2] + dq[3]);
    r->base_mm_us = (double)s->layers * (2 * mm[0] + mm[1] + 2 * mm[2] + mm[3]);
    r->base_us = r->base_dq_us + r->base_mm_us;
    return 0;
}

/* One row: type x routing. 0 done, 1 skipped (reason in skip), -1 failed (message printed). */
static int measure(const options *o, qk_context *ctx, const qk_device_info *dev, const ceilings *cl, qk_type type,
                   qkb_routing routing, row *r, char *skip, size_t skiplen) {
    const char *cmd = o->tg ? "qkern bench tg" : "qkern bench pp";
    const moe_shape *s = &o->s;
    pass p = {0};
    p.ctx = ctx, p.s = s, p.type = type, p.L = layout_of(s, type);
    p.tokens = o->tg ? 1 : o->tokens, p.steps = o->tg ? o->steps : 1, p.copies = 1;
    memset(r, 0, sizeof *r);
    r->type = type, r->routing = routing, r->copy_frac = r->gemm_frac = r->base_frac = NAN;
    int32_t *ids = NULL;
    float *router = NULL, *x = NULL;
    double *t = NULL;
    int rc = -1;

    size_t ws;
    qk_status st = workspace_bytes(&p, &ws);
    if (st == QK_ERR_UNSUPPORTED || (o->all_types && st == QK_ERR_SHAPE)) {
        snprintf(skip, skiplen, "%s", qk_last_error(ctx));
        return 1;
    }
    if (st != QK_OK) {
        fprintf(stderr, "%s: %s: %s\n", cmd, qk_type_name(type), qk_last_error(ctx));
        return -1;
    }
    p.ws_bytes = ws;

    /* enough distinct layers to leave the cache behind, as many as fit */
    const double mem = dev->memory_bytes ? MEMORY_SHARE * (double)dev->memory_bytes : 0;
    int64_t copies = o->copies ? o->copies : (int64_t)((MIN_WEIGHTS + p.L.bytes - 1) / p.L.bytes);
    if (!o->copies && copies < 2) copies = 2;
    if (copies > s->layers) copies = s->layers;
    if (!o->copies && mem > 0 && (double)copies * (double)p.L.bytes > mem) copies = (int64_t)(mem / (double)p.L.bytes);
    if (copies < 1 || (mem > 0 && (double)copies * (double)p.L.bytes > mem / MEMORY_SHARE)) {
        fprintf(stderr, "%s: out of device memory: %s weights of %lld layer(s) take %.2f GiB, %s has %.2f GiB\n", cmd,
                qk_type_name(type), (long long)(copies < 1 ? 1 : copies),
                (double)(copies < 1 ? 1 : copies) * (double)p.L.bytes / 1073741824.0, dev->id,
                (double)dev->memory_bytes / 1073741824.0);
        return -1;
    }
    p.copies = r->copies = copies;

    const size_t n_ids = (size_t)(s->layers * p.steps * p.tokens * s->used), t_h = (size_t)(p.tokens * s->hidden);
    ids = malloc(n_ids * sizeof *ids), router = malloc(n_ids * sizeof *router), x = malloc(t_h * sizeof *x);
    t = malloc((size_t)o->reps * sizeof *t);
    if (!ids || !router || !x || !t) {
        fprintf(stderr, "%s: out of host memory\n", cmd);
        goto done;
    }
    const int64_t per_layer = p.steps * p.tokens;
    for (int64_t l = 0; l < s->layers; l++)
        qkb_route(routing, ROUTING_SEED + (uint64_t)l * 0x10001ull, per_layer, s->used, s->experts,
                  ids + (size_t)(l * per_layer * s->used), router + (size_t)(l * per_layer * s->used));
    uint64_t rng = 0xAC71ull;
    for (size_t i = 0; i < t_h; i++) x[i] = (float)bench_gauss(&rng);

    const size_t slots = (size_t)(p.tokens * s->used);
    if (qk_buffer_create(ctx, (size_t)copies * p.L.bytes, &p.w) != QK_OK ||
        qk_buffer_create(ctx, t_h * 4, &p.x) != QK_OK ||
        qk_buffer_create(ctx, slots * (size_t)s->ffn * 4, &p.gu) != QK_OK ||
        qk_buffer_create(ctx, t_h * 4, &p.y) != QK_OK ||
        qk_buffer_create(ctx, (size_t)(p.tokens * (s->shexp ? s->shexp : 1)) * 4, &p.sgu) != QK_OK ||
        qk_buffer_create(ctx, t_h * 4, &p.sy) != QK_OK || qk_buffer_create(ctx, n_ids * 4, &p.ids) != QK_OK ||
        qk_buffer_create(ctx, n_ids * 4, &p.router) != QK_OK || (ws && qk_buffer_create(ctx, ws, &p.ws) != QK_OK)) {
        fprintf(stderr, "%s: %s: %s\n", cmd, qk_type_name(type), qk_last_error(ctx));
        goto done;
    }
    if (qk_buffer_write(p.x, 0, x, t_h * 4) != QK_OK || qk_buffer_write(p.ids, 0, ids, n_ids * 4) != QK_OK ||
        qk_buffer_write(p.router, 0, router, n_ids * 4) != QK_OK || fill_weights(&p) != QK_OK) {
        /* an empty message: fill_weights ran out of host memory (the library was not at fault) */
        fprintf(stderr, "%s: %s: preparing the weights: %s\n", cmd, qk_type_name(type),
                qk_last_error(ctx)[0] ? qk_last_error(ctx) : "out of host memory for the random weights");
        goto done;
    }

    if (cl->cuda) {
        char err[512];
        double *us = malloc((size_t)o->reps * sizeof *us);
        int bad = !us || qkb_graph_time(cl->ordinal, enqueue_pass, &p, (int)o->reps, us, err, sizeof err);
        for (long long i = 0; !bad && i < o->reps; i++) t[i] = 1e-6 * us[i];
        free(us);
        if (bad && p.st == QK_ERR_UNSUPPORTED) { /* a shape the kernels refuse though the type is listed */
            snprintf(skip, skiplen, "%s", qk_last_error(ctx));
            rc = 1;
            goto done;
        }
        if (bad) {
            /* a kernel the API lists but the capture refuses, or a launch failure: name the type */
            fprintf(stderr, "%s: %s: %s\n", cmd, qk_type_name(type), us ? err : "out of host memory");
            goto done;
        }
    } else {
        for (long long i = -1; i < o->reps; i++) { /* one pass to warm up, then the timed ones */
            double t0 = bench_now();
            if ((st = run_pass(&p, NULL, 0)) != QK_OK) break;
            if (i >= 0) t[i] = bench_now() - t0;
        }
        if (st == QK_ERR_UNSUPPORTED) {
            snprintf(skip, skiplen, "%s", qk_last_error(ctx));
            rc = 1;
            goto done;
        }
        if (st != QK_OK) {
            fprintf(stderr, "%s: %s: %s\n", cmd, qk_type_name(type), qk_last_error(ctx));
            goto done;
        }
    }

    const double tokens = (double)(p.steps * p.tokens);
    for (long long i = 0; i < o->reps; i++) r->t_mean += t[i] / (double)o->reps, r->ts_mean += tokens / t[i];
    r->ts_mean /= (double)o->reps;
    for (long long i = 0; o->reps > 1 && i < o->reps; i++) {
        r->ts_sd += (tokens / t[i] - r->ts_mean) * (tokens / t[i] - r->ts_mean) / (double)(o->reps - 1);
        r->t_sd += (t[i] - r->t_mean) * (t[i] - r->t_mean) / (double)(o->reps - 1);
    }
    r->ts_sd = sqrt(r->ts_sd), r->t_sd = sqrt(r->t_sd);
    r->bytes = weight_bytes(&p, ids);
    r->flops = 2.0 * tokens * (double)s->layers *
               ((double)s->used * 3.0 * (double)(s->ffn * s->hidden) + 3.0 * (double)(s->shexp * s->hidden));
    if (cl->copy_bps > 0) r->copy_frac = r->bytes / r->t_mean / cl->copy_bps;
    if (cl->gemm_fps > 0) r->gemm_frac = r->flops / cl->gemm_fps / r->t_mean;
    if (cl->cuda && !o->tg && !cl->base_why[0]) {
        char err[512];
        if (baseline(&p, cl, ids, r, err, sizeof err) == 0)
            r->base_frac = 1e-6 * r->base_us / r->t_mean;
        else
            fprintf(stderr, "%s: %s: dequantize + cuBLAS grouped GEMM not measured: %s\n", cmd, qk_type_name(type),
                    err);
    }
    rc = 0;
done:
    free(ids), free(router), free(x), free(t);
    free_pass(&p);
    return rc;
}

/* ---- output ---------------------------------------------------------------------------------- */

typedef struct report {
    const options *o;
    const qk_device_info *dev;
    const ceilings *cl;
    char device[128]; /* the hardware's name as the results record it: "NVIDIA H100 80GB HBM3" */
    char date[32], test[32];
    double size_bytes[MAX_TYPES], params;
} report;

static const char *backend_name(const qk_device_info *d) {
    return d->kind == QK_DEVICE_CUDA ? "cuda" : d->kind == QK_DEVICE_VULKAN ? "vulkan" : "cpu";
}

static void num_or_null(FILE *f, double v, const char *fmt) {
    if (isnan(v))
        fputs("null", f);
    else
        fprintf(f, fmt, v);
}

static void print_ceilings_md(const report *rp) {
    const ceilings *cl = rp->cl;
    const moe_shape *s = &rp->o->s;
    printf("# qkern bench %s: %s, MoE FFN layers only\n\n", rp->o->tg ? "tg" : "pp", s->shape);
    printf("- device: %s (%s), %s, commit %s\n", rp->dev->id, rp->device, rp->date, rp->o->commit);
    printf("- shape: hidden %lld, %lld experts (%lld used) of %lld, shared expert %lld, %lld layers\n",
           (long long)s->hidden, (long long)s->experts, (long long)s->used, (long long)s->ffn, (long long)s->shexp,
           (long long)s->layers);
    if (!cl->cuda) {
        printf("- ceilings: n/a (measured on CUDA devices only); wall-clock time of the synchronous calls\n");
    } else {
        if (cl->copy_bps > 0)
            printf("- ceiling: device-to-device copy %.1f GB/s (bytes read + written, 1 GiB)\n", cl->copy_bps / 1e9);
        else
            printf("- ceiling: copy bandwidth n/a (%s)\n", cl->copy_why);
        if (!rp->o->tg) {
            if (cl->gemm_fps > 0)
                printf("- ceiling: dense fp16 cuBLAS GEMM %.1f TFLOP/s (%lld x %lld x %lld, f32 accumulation)\n",
                       cl->gemm_fps / 1e12, (long long)cl->gemm_m, (long long)cl->gemm_n, (long long)cl->gemm_k);
            else
                printf("- ceiling: dense GEMM n/a (%s)\n", cl->gemm_why);
            if (cl->base_why[0]) printf("- dequantize + cuBLAS grouped GEMM: n/a (%s)\n", cl->base_why);
        }
        printf("- graph of the whole pass, timed with events; cuBLAS: %s\n", qkb_cublas_info());
    }
    printf("\n");
}

static void print_md(const report *rp, const row *rows, size_t n) {
    print_ceilings_md(rp);
    printf("| model | type | size | params | backend | test | routing | t/s | GB/s | of copy BW | of fp16 GEMM | "
           "dequant+cuBLAS time / ours |\n"
           "|---|---|---:|---:|---|---|---|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < n; i++) {
        const row *r = &rows[i];
        char cf[32] = "n/a", gf[32] = "n/a", bf[32] = "n/a";
        if (!isnan(r->copy_frac)) snprintf(cf, sizeof cf, "%.1f %%", 100 * r->copy_frac);
        if (!isnan(r->gemm_frac) && !rp->o->tg) snprintf(gf, sizeof gf, "%.1f %%", 100 * r->gemm_frac);
        if (!isnan(r->base_frac)) snprintf(bf, sizeof bf, "%.2fx", r->base_frac);
        size_t k = 0;
        while (k < rp->o->n_types && rp->o->types[k] != r->type) k++;
        printf("| %s | %s | %.2f GiB | %.2f %s | %s | %s | %s | %.2f ± %.2f | %.1f | %s | %s | %s |\n", rp->o->s.model,
               qk_type_name(r->type), rp->size_bytes[k] / 1073741824.0,
               rp->params >= 1e9 ? rp->params / 1e9 : rp->params / 1e6, rp->params >= 1e9 ? "B" : "M",
               rp->dev->kind == QK_DEVICE_CUDA ? "CUDA" : "CPU", rp->test, qkb_routing_name(r->routing), r->ts_mean,
               r->ts_sd, r->bytes / r->t_mean / 1e9, cf, gf, bf);
    }
}

#define CSV_HEADER                                                                                                     \
    "device,device_id,date,commit,backend,op,type,shape,model,test,routing,tokens,n_gen,layers,copies,value,unit,"     \
    "stddev,ceiling,ceiling_unit,fraction,weight_gbps,copy_gbps,copy_fraction,gemm_tflops,gemm_fraction,"              \
    "dequant_gemm_us,dequant_us,gemm_us,dequant_gemm_ratio,pass_us,pass_us_sd,weight_bytes,flops\n"

static void print_row(const report *rp, const row *r, int json) {
    const options *o = rp->o;
    const ceilings *cl = rp->cl;
    const double ceiling = o->tg ? cl->copy_bps / 1e9 : cl->gemm_fps / 1e12;
    const double fraction = o->tg ? r->copy_frac : r->gemm_frac;
    const char *cu = o->tg ? "GB/s (device-to-device copy, read + write)" : "TFLOP/s (dense fp16 cuBLAS GEMM)";
    const int have = ceiling > 0;
    const double v[] = {r->bytes / r->t_mean / 1e9,
                        cl->copy_bps > 0 ? cl->copy_bps / 1e9 : NAN,
                        r->copy_frac,
                        cl->gemm_fps > 0 && !o->tg ? cl->gemm_fps / 1e12 : NAN,
                        o->tg ? NAN : r->gemm_frac,
                        isnan(r->base_frac) ? NAN : r->base_us,
                        isnan(r->base_frac) ? NAN : r->base_dq_us,
                        isnan(r->base_frac) ? NAN : r->base_mm_us,
                        r->base_frac,
                        1e6 * r->t_mean,
                        1e6 * r->t_sd};
    static const char *const names[] = {"weight_gbps",        "copy_gbps",       "copy_fraction", "gemm_tflops",
                                        "gemm_fraction",      "dequant_gemm_us", "dequant_us",    "gemm_us",
                                        "dequant_gemm_ratio", "pass_us",         "pass_us_sd"};
    if (json) {
        printf("  {\"device\": ");
        bench_json_string(stdout, rp->device);
        printf(", \"device_id\": ");
        bench_json_string(stdout, rp->dev->id);
        printf(", \"date\": \"%s\", \"commit\": ", rp->date);
        bench_json_string(stdout, o->commit);
        printf(", \"backend\": \"%s\", \"op\": \"%s\", \"type\": \"%s\", \"shape\": \"%s\", \"model\": \"%s\", "
               "\"test\": \"%s\", \"routing\": \"%s\", \"tokens\": %lld, \"n_gen\": %lld, \"layers\": %lld, "
               "\"copies\": %lld, \"value\": %.6g, \"unit\": \"t/s\", \"stddev\": %.6g, \"ceiling\": ",
               backend_name(rp->dev), o->tg ? "model_tg" : "model_pp", qk_type_name(r->type), o->s.shape, o->s.model,
               rp->test, qkb_routing_name(r->routing), o->tg ? 1LL : o->tokens, o->tg ? o->steps : 0LL,
               (long long)o->s.layers, (long long)r->copies, r->ts_mean, r->ts_sd);
        num_or_null(stdout, have ? ceiling : NAN, "%.6g");
        printf(", \"ceiling_unit\": ");
        if (have)
            bench_json_string(stdout, cu);
        else
            fputs("null", stdout);
        printf(", \"fraction\": ");
        num_or_null(stdout, have ? fraction : NAN, "%.6g");
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
            printf(", \"%s\": ", names[i]);
            num_or_null(stdout, v[i], "%.6g");
        }
        printf(", \"weight_bytes\": %.0f, \"flops\": %.0f}", r->bytes, r->flops);
        return;
    }
    printf("\"%s\",%s,%s,%s,%s,%s,%s,\"%s\",%s,%s,%s,%lld,%lld,%lld,%lld,%.6g,t/s,%.6g,", rp->device, rp->dev->id,
           rp->date, o->commit, backend_name(rp->dev), o->tg ? "model_tg" : "model_pp", qk_type_name(r->type),
           o->s.shape, o->s.model, rp->test, qkb_routing_name(r->routing), o->tg ? 1LL : o->tokens,
           o->tg ? o->steps : 0LL, (long long)o->s.layers, (long long)r->copies, r->ts_mean, r->ts_sd);
    if (have)
        printf("%.6g,\"%s\",%.6g", ceiling, cu, fraction);
    else
        printf(",,");
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (isnan(v[i]))
            printf(",");
        else
            printf(",%.6g", v[i]);
    printf(",%.0f,%.0f\n", r->bytes, r->flops);
}

static void print_csv(const report *rp, const row *rows, size_t n) {
    printf(CSV_HEADER);
    for (size_t i = 0; i < n; i++) print_row(rp, &rows[i], 0);
}

static void print_json(const report *rp, const row *rows, size_t n) {
    printf("[\n");
    for (size_t i = 0; i < n; i++) {
        print_row(rp, &rows[i], 1);
        printf("%s\n", i + 1 < n ? "," : "");
    }
    printf("]\n");
}

/* ---- the command ------------------------------------------------------------------------------ */

static void measure_ceilings(const options *o, const qk_device_info *dev, ceilings *cl) {
    memset(cl, 0, sizeof *cl);
    if (dev->kind != QK_DEVICE_CUDA || sscanf(dev->id, "cuda:%d", &cl->ordinal) != 1) return;
    cl->cuda = 1;
    if (isatty(2)) fprintf(stderr, "\r\033[K%s: measuring the ceilings", o->tg ? "qkern bench tg" : "qkern bench pp");
    if (qkb_copy_bandwidth(cl->ordinal, 0, &cl->copy_bps, cl->copy_why, sizeof cl->copy_why)) cl->copy_bps = 0;
    if (o->tg) return;
    /* the FLOPs of the gate/up op as one dense GEMM: both projections stacked, all slots */
    cl->gemm_m = 2 * o->s.ffn, cl->gemm_n = o->tokens * o->s.used, cl->gemm_k = o->s.hidden;
    if (qkb_gemm_rate(cl->ordinal, cl->gemm_m, cl->gemm_n, cl->gemm_k, 0, &cl->gemm_fps, cl->gemm_why,
                      sizeof cl->gemm_why)) {
        cl->gemm_fps = 0;
        snprintf(cl->base_why, sizeof cl->base_why, "%s", cl->gemm_why); /* no cuBLAS: no grouped GEMM either */
    }
}

int cmd_bench_moe(int argc, char **argv, int tg) {
    const char *cmd = tg ? "qkern bench tg" : "qkern bench pp";
    options o;
    memset(&o, 0, sizeof o);
    o.tg = tg, o.tokens = 512, o.steps = 128, o.reps = 5, o.format = "md";
    int prc = parse_options(argc, argv, &o);
    if (prc) return prc < 0 ? 0 : prc;

    qk_context *ctx = NULL;
    qk_device_info dev;
    if (bench_open_device(o.device, (int)o.threads, &ctx, &dev) != QK_OK) {
        fprintf(stderr, "%s: device %s: %s\n", cmd, o.device ? o.device : "auto", qk_last_error(ctx));
        qk_context_destroy(ctx);
        return 1;
    }
    ceilings cl;
    measure_ceilings(&o, &dev, &cl);

    report rp = {&o, &dev, &cl, "", "", "", {0}, 0};
    bench_date(rp.date, sizeof rp.date);
    if (cl.cuda) qkb_device_name(cl.ordinal, rp.device, sizeof rp.device);
    if (!rp.device[0]) snprintf(rp.device, sizeof rp.device, "%s", dev.name);
    snprintf(rp.test, sizeof rp.test, "%s%lld", tg ? "tg" : "pp", tg ? o.steps : o.tokens);
    rp.params = (double)o.s.layers * 3.0 * (double)o.s.hidden * (double)(o.s.experts * o.s.ffn + o.s.shexp);
    for (size_t k = 0; k < o.n_types; k++)
        rp.size_bytes[k] = (double)o.s.layers * (double)layout_of(&o.s, o.types[k]).bytes;

    const size_t total = o.n_types * (size_t)o.n_routings;
    row *rows = calloc(total, sizeof *rows);
    char(*skips)[256] = calloc(o.n_types, sizeof *skips);
    size_t n = 0, n_skipped = 0;
    int rc = 1;
    if (!rows || !skips) {
        fprintf(stderr, "%s: out of host memory\n", cmd);
        goto done;
    }
    for (size_t k = 0; k < o.n_types; k++)
        for (int ri = 0; ri < o.n_routings; ri++) {
            char what[96];
            snprintf(what, sizeof what, "%s %s %s", qk_type_name(o.types[k]), rp.test,
                     qkb_routing_name(o.routings[ri]));
            progress(&o, k * (size_t)o.n_routings + (size_t)ri + 1, total, what);
            int m = measure(&o, ctx, &dev, &cl, o.types[k], o.routings[ri], &rows[n], skips[k], sizeof skips[k]);
            if (m < 0) goto done;
            if (m > 0) {
                n_skipped++;
                break; /* the other routing would be skipped for the same reason */
            }
            n++;
        }
    if (isatty(2)) fprintf(stderr, "\r\033[K");
    for (size_t k = 0; k < o.n_types; k++)
        if (skips[k][0] && !o.all_types)
            fprintf(stderr, "%s: skipped %s: %s\n", cmd, qk_type_name(o.types[k]), skips[k]);
    if (!n) {
        size_t k = 0;
        while (k + 1 < o.n_types && !skips[k][0]) k++;
        fprintf(stderr, "%s: nothing could run on %s: %s\n", cmd, dev.id, skips[k][0] ? skips[k] : "no type given");
        goto done;
    }
    if (!strcmp(o.format, "json"))
        print_json(&rp, rows, n);
    else if (!strcmp(o.format, "csv"))
        print_csv(&rp, rows, n);
    else {
        print_md(&rp, rows, n);
        if (n_skipped) {
            printf("\nskipped (no kernel on %s, or a block size that does not divide the shape):", dev.id);
            for (size_t k = 0; k < o.n_types; k++)
                if (skips[k][0]) printf(" %s", qk_type_name(o.types[k]));
            printf("\n");
        }
    }
    rc = 0;
done:
    if (isatty(2) && rc) fprintf(stderr, "\r\033[K");
    free(rows);
    free(skips);
    qk_context_destroy(ctx);
    return rc;
}
