/* qkern bench, qkern bench pp / tg: what llama-bench's pp512 and tg128 measure, restricted to the
 * MoE FFN layers of a model (routed experts' gate/up with SiLU, down projection summed with the
 * router weights, and the shared expert), per weight type, against ceilings measured in the same
 * run (DESIGN.md, "Performance: how it is measured"). The model is a published model's shape
 * with random weights, or a GGUF file's own MoE layers, shapes, types and weights.
 *
 * A large model does not fit in device memory, so a few distinct layers' weights are allocated
 * (enough to exceed any GPU's L2 cache several times over) and the pass cycles through them; each
 * layer and each generated token gets its own routing, so what is read comes from memory, not
 * from cache. On a CUDA device the whole pass is one CUDA graph of asynchronous calls; elsewhere
 * the synchronous calls are timed with the wall clock. Options, list syntax and output fields
 * follow llama-bench's, so that its users read the results without a translation table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_moe_file.h"
#include "bench_util.h"
#include "ceilings.h"
#include "cli.h"
#include "cmd_bench_moe.h"
#include "moe_routing.h"
#include "qk_git_commit.h"
#include "qkern_cuda.h"
#include "synth_model.h"

#define DEFAULT_SHAPE  "qwen3.5-35b-a3b"
#define DEFAULT_TYPES  "Q4_0,Q4_K,Q6_K,Q8_0,IQ2_XXS,IQ3_S,IQ4_XS,MXFP4"
#define DEFAULT_BATCH  2048 /* llama-bench's n_batch */
#define MAX_TYPES      64
#define MAX_VALUES     64 /* of each list option */
#define ROUTING_SEED   0x9E3779B1ull
#define MIN_WEIGHTS    ((uint64_t)1 << 30) /* distinct weights cycled: 20x the 50 MB L2 of an H100 */
#define MEMORY_SHARE   0.6                 /* of device memory that the weight copies may take */
#define PATTERN_VALUES ((int64_t)1 << 22)  /* values quantized per distinct row length */
#define STAGING_BYTES  ((size_t)64 << 20)

enum { OP_GATE_UP, OP_DOWN, OP_SHARED_GATE_UP, OP_SHARED_DOWN, OP_COUNT };

typedef struct moe_shape {
    char model[64];  /* "qwen3.5-35b-a3b", "custom", or the file's name */
    char shape[160]; /* the name, the custom spec in canonical form, or the file's arch */
    int64_t hidden, experts, used, ffn, shexp, layers;
} moe_shape;

/* The weight types of one row: per op, and the name the results give them. */
typedef struct wtypes {
    qk_type op[OP_COUNT];
    char name[64];
} wtypes;

/* One llama-bench test: pp (n_prompt tokens in batches of n_batch) or tg (n_gen tokens). */
typedef struct test_case {
    long long n_prompt, n_gen, n_batch;
} test_case;

typedef struct options {
    moe_shape s;
    wtypes types[MAX_TYPES];
    size_t n_types;
    bench_moe_mode mode;
    int all_types, progress;
    long long prompts[MAX_VALUES], gens[MAX_VALUES], batches[MAX_VALUES], threads[MAX_VALUES];
    size_t n_prompts, n_gens, n_batches, n_threads;
    test_case tests[2 * MAX_VALUES * MAX_VALUES];
    size_t n_tests;
    long long reps, copies;
    qkb_routing routings[2];
    int n_routings;
    const char *device, *format, *commit, *path; /* path: -m FILE.gguf */
    bench_moe_file file;
    int file_types; /* the file's own types and weights (no -q) */
} options;

/* Where each weight tensor of one layer lies in that layer's copy, and row sizes. */
typedef struct layout {
    size_t gate, up, down, sgate, sup, sdown, bytes; /* offsets, and the bytes of one layer */
    size_t gate_bytes, down_bytes, sgate_bytes, sdown_bytes;
} layout;

typedef struct pass {
    qk_context *ctx;
    const moe_shape *s;
    const wtypes *types;
    layout L;
    int64_t tokens, steps, total; /* tokens per op (pp: one batch), ops per layer, tokens of the test */
    int64_t copies;
    qk_buffer *w, *x, *gu, *y, *sgu, *sy, *ids, *router, *ws;
    size_t ws_bytes;
    qk_status st; /* of the last asynchronous pass */
} pass;

typedef struct row {
    const wtypes *types;
    const test_case *tc;
    long long n_threads;
    qkb_routing routing;
    int64_t copies;
    double ts_mean, ts_sd, t_mean, t_sd; /* tokens/s; seconds per pass */
    double *t;                           /* seconds of each timed pass */
    double bytes, flops, size_bytes;     /* expert weights read and FLOPs per pass; weights of the model */
    double gemm_tflops;                  /* the ceiling of this test; NAN when not measured */
    double copy_frac, gemm_frac;         /* NAN when not measured */
    double base_us, base_dq_us, base_mm_us, base_frac;
    char test[32]; /* pp512, tg128 */
} row;

typedef struct ceilings {
    int cuda, ordinal;
    double copy_bps; /* 0 when not measured */
    char copy_why[256], gemm_why[256], base_why[256];
    int64_t gemm_m, gemm_k, gemm_n[MAX_VALUES]; /* per distinct pp batch: n = tokens x used */
    double gemm_fps[MAX_VALUES];                /* 0 when not measured */
    size_t n_gemm;
} ceilings;

static const char *cmd_name(bench_moe_mode mode) {
    return mode == BENCH_MOE_PP ? "qkern bench pp" : mode == BENCH_MOE_TG ? "qkern bench tg" : "qkern bench";
}

/* ---- usage and options --------------------------------------------------------------------- */

static void usage(FILE *f, bench_moe_mode mode) {
    const char *c = cmd_name(mode);
    fprintf(f,
            "usage: %s [-m SHAPE|FILE.gguf | --custom SPEC] [-q TYPES] [%s] [-b N] [-t N] [-r N]\n"
            "         [-dev D] [-o md|csv|json|jsonl|sql] [--routing R] [--commit SHA] [--copies N] [--progress]\n",
            c,
            mode == BENCH_MOE_PP   ? "-p N"
            : mode == BENCH_MOE_TG ? "-n N"
                                   : "-p N] [-n N");
    fprintf(f, "  %s\n",
            mode == BENCH_MOE_TG
                ? "Token generation: one token at a time, -n tokens in a row (tgN), through every MoE FFN layer."
            : mode == BENCH_MOE_PP
                ? "Prompt processing: -p tokens at once (ppN) through every MoE FFN layer."
                : "llama-bench's pair: prompt processing (ppN, each -p) and token generation (tgN, each -n).");
    fprintf(f, "  A layer: routed gate/up with SiLU (qk_moe_gate_up), down summed with the router weights\n"
               "  (qk_moe_weighted_sum), and the shared expert (gate/up, then qk_moe_matmul); attention is not\n"
               "  run. Weights are random quantized blocks (or a GGUF file's own); since a model does not fit in\n"
               "  memory, a few distinct layers are allocated (at least 1 GiB, several times any L2 cache;\n"
               "  --copies) and cycled through for all layers. Routing is drawn from a fixed seed, fresh per\n"
               "  layer and per token.\n"
               "  On CUDA the pass is one CUDA graph timed with events; ceilings of the same run: copy bandwidth\n"
               "  (tg: weight GB/s over it), and for pp a dense fp16 cuBLAS GEMM of the gate/up op's FLOPs and the\n"
               "  user's path, dequantize to fp16 + cuBLAS grouped GEMM (measured on layer 0, times the layers).\n"
               "  Other devices run the synchronous calls, wall-clock timed, without ceilings.\n\n"
               "  -m, --model     a GGUF file (its MoE layers: shapes, expert counts, types and weights), or one of\n"
               "                  ");
    bench_print_shape_names(f);
    fprintf(f, " (default " DEFAULT_SHAPE ")\n"
               "  --custom        hidden=H,experts=E,used=U,ffn=F[,shexp=S][,layers=L] (shexp 0: none; layers 1)\n"
               "  -q, --type      comma-separated weight types, or all (default " DEFAULT_TYPES ";\n"
               "                  with a GGUF file: the file's own types and weights)\n");
    if (mode != BENCH_MOE_TG)
        fprintf(f, "  -p, --n-prompt  prompt tokens (default 512%s)\n",
                mode == BENCH_MOE_BOTH ? "; 0: no pp test" : "");
    if (mode != BENCH_MOE_PP)
        fprintf(f, "  -n, --n-gen     tokens generated per pass (default 128%s)\n",
                mode == BENCH_MOE_BOTH ? "; 0: no tg test" : "");
    fprintf(f,
            "  -b, --batch-size  pp: the prompt goes through in batches of at most N tokens (default %d)\n"
            "  -t, --threads   cpu worker threads (default 0: all cores). A value that is not a number list\n"
            "                  is read as the old spelling of -q (types), with a warning; it goes in the next release\n"
            "  -r, --repetitions  timed passes, reported as mean and standard deviation (default 5)\n"
            "  -dev, --device  cpu, cuda:N, vulkan:N or auto (default auto: the best present; a software Vulkan\n"
            "                  driver is used only when named)\n"
            "  -o, --output    md (default), csv, json, jsonl or sql (--format also works)\n"
            "  --routing       uniform, skewed or both (default both, one row each)\n"
            "  --commit        the commit recorded in the output (default: $QK_COMMIT, else the build's)\n"
            "  --copies        distinct layers in memory (default: enough for 1 GiB, at most the layers)\n"
            "  --progress      a progress line per test on stderr even when it is not a terminal\n\n"
            "  Lists, as llama-bench takes them (-p, -n, -b, -t): 512,1024 or FIRST-LAST, FIRST-LAST+STEP,\n"
            "  FIRST-LAST*MULT; repeating an option adds to its list. Every combination is one row per\n"
            "  routing, printed as soon as it is measured.\n",
            DEFAULT_BATCH);
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

/* Appends the types of `list` (names, or all) as rows of one type each. */
static int parse_types(const char *cmd, const char *list, options *o) {
    char buf[1024];
    if (!strcmp(list, "all")) {
        o->all_types = 1;
        for (int i = 0; i < qk_type_count() && o->n_types < MAX_TYPES; i++) {
            qk_type_info info;
            if (qk_type_get_info(qk_type_at(i), &info) != QK_OK || !info.is_quantized) continue;
            wtypes *w = &o->types[o->n_types++];
            for (int k = 0; k < OP_COUNT; k++) w->op[k] = info.type;
            snprintf(w->name, sizeof w->name, "%s", qk_type_name(info.type));
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
        wtypes *w = &o->types[o->n_types++];
        for (int k = 0; k < OP_COUNT; k++) w->op[k] = t;
        snprintf(w->name, sizeof w->name, "%s", qk_type_name(t));
    }
    if (!o->n_types) fprintf(stderr, "%s: --type is empty\n", cmd);
    return o->n_types > 0;
}

/* The shape, types and name of a GGUF file's MoE layers; its own types unless -q gave others. */
static void use_file(options *o, const char *path) {
    const bench_moe_file *f = &o->file;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    memset(&o->s, 0, sizeof o->s);
    snprintf(o->s.model, sizeof o->s.model, "%s", base);
    snprintf(o->s.shape, sizeof o->s.shape, "%s", f->arch);
    o->s.hidden = f->hidden, o->s.experts = f->experts, o->s.used = f->used;
    o->s.ffn = f->ffn, o->s.shexp = f->shexp, o->s.layers = f->layers;
    if (o->n_types) return;
    o->file_types = 1, o->n_types = 1;
    wtypes *w = &o->types[0];
    const qk_gguf_tensor *const *t = f->parts[0];
    const int part[OP_COUNT] = {MOE_GATE, MOE_DOWN, MOE_SGATE, MOE_SDOWN};
    for (int k = 0; k < OP_COUNT; k++) w->op[k] = t[part[k]] ? t[part[k]]->type : t[MOE_GATE]->type;
    /* "Q4_K", or "Q4_K/Q6_K" (routed gate/up, down), then the shared expert's where they differ */
    int n = snprintf(w->name, sizeof w->name, "%s", qk_type_name(w->op[OP_GATE_UP]));
    for (int k = 1; k < (f->shexp ? OP_COUNT : 2); k++)
        if (w->op[k] != w->op[OP_GATE_UP] && n < (int)sizeof w->name)
            n += snprintf(w->name + n, sizeof w->name - (size_t)n, "/%s", qk_type_name(w->op[k]));
}

/* The tests in llama-bench's order: every pp size for every batch size, then every tg size
 * (a batch size does not change a one-token step: tg runs once, with the first). */
static int make_tests(const char *cmd, options *o) {
    o->n_tests = 0;
    for (size_t b = 0; b < o->n_batches; b++)
        for (size_t i = 0; i < o->n_prompts && o->mode != BENCH_MOE_TG; i++)
            if (o->prompts[i] > 0) o->tests[o->n_tests++] = (test_case){o->prompts[i], 0, o->batches[b]};
    for (size_t i = 0; i < o->n_gens && o->mode != BENCH_MOE_PP; i++)
        if (o->gens[i] > 0) o->tests[o->n_tests++] = (test_case){0, o->gens[i], o->batches[0]};
    if (!o->n_tests) fprintf(stderr, "%s: no test: every -p and -n is 0\n", cmd);
    return o->n_tests > 0;
}

/* A list option's values: the first use replaces the default, later ones add to it. */
static int list_option(const char *cmd, const char *opt, const char *v, long long lo, long long hi, long long *out,
                       size_t *n, int *given) {
    if (!v) {
        fprintf(stderr, "%s: %s needs a value\n", cmd, opt);
        return 0;
    }
    if (!*given) *n = 0, *given = 1;
    return bench_parse_list(cmd, opt, v, lo, hi, out, MAX_VALUES, n);
}

/* 0 on success, else the exit code (2: a bad argument; after --help, -1 for exit 0). */
static int parse_options(int argc, char **argv, options *o) {
    const char *cmd = cmd_name(o->mode);
    const char *model = NULL, *custom = NULL, *types = NULL, *routing = "both";
    int given[4] = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const int is_p = !strcmp(a, "-p") || !strcmp(a, "--n-prompt"), is_n = !strcmp(a, "-n") || !strcmp(a, "--n-gen");
        const int is_t = !strcmp(a, "-t") || !strcmp(a, "--threads"),
                  is_b = !strcmp(a, "-b") || !strcmp(a, "--batch-size");
        long long *num = !strcmp(a, "-r") || !strcmp(a, "--repetitions") ? &o->reps
                         : !strcmp(a, "--copies")                        ? &o->copies
                                                                         : NULL;
        const char **str = !strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "--shape")     ? &model
                           : !strcmp(a, "--custom")                                               ? &custom
                           : !strcmp(a, "-q") || !strcmp(a, "--type")                             ? &types
                           : !strcmp(a, "--routing")                                              ? &routing
                           : !strcmp(a, "-dev") || !strcmp(a, "--device")                         ? &o->device
                           : !strcmp(a, "--format") || !strcmp(a, "-o") || !strcmp(a, "--output") ? &o->format
                           : !strcmp(a, "--commit")                                               ? &o->commit
                                                                                                  : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, o->mode);
            return -1;
        } else if (!strcmp(a, "--progress")) {
            o->progress = 1;
        } else if ((is_p && o->mode != BENCH_MOE_TG) || (is_n && o->mode != BENCH_MOE_PP)) {
            /* llama-bench turns a test off with 0; pp and tg alone have nothing else to run */
            const long long lo = o->mode == BENCH_MOE_BOTH ? 0 : 1;
            if (!(is_p ? list_option(cmd, a, v, lo, 1 << 20, o->prompts, &o->n_prompts, &given[0])
                       : list_option(cmd, a, v, lo, 100000, o->gens, &o->n_gens, &given[1])))
                return 2;
            i++;
        } else if (is_b) {
            if (!list_option(cmd, a, v, 1, 1 << 20, o->batches, &o->n_batches, &given[2])) return 2;
            i++;
        } else if (!strcmp(a, "-t") && v && !bench_is_list(v)) { /* the spelling of types before llama-bench's */
            fprintf(stderr,
                    "%s: warning: -t %s: -t now means threads, as in llama-bench; give types with -q or "
                    "--type (the old spelling goes in the next release)\n",
                    cmd, v);
            types = v;
            i++;
        } else if (is_t) {
            if (!list_option(cmd, a, v, 0, 4096, o->threads, &o->n_threads, &given[3])) return 2;
            i++;
        } else if (num) {
            if (!cli_parse_int(a, v, 1, 100000, num)) return 2;
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
    if (types && !parse_types(cmd, types, o)) return 2;
    const synth_model_shape *sh = custom ? NULL : synth_model_shape_find(model ? model : DEFAULT_SHAPE);
    if (custom) {
        if (!parse_custom(cmd, custom, &o->s)) return 2;
    } else if (!sh && bench_moe_file_is_path(model)) {
        if (!bench_moe_file_open(cmd, model, &o->file)) return 2;
        o->path = model;
        use_file(o, model);
    } else if (!sh) {
        fprintf(stderr, "%s: '%s' is neither a model shape nor a GGUF file (%s --help lists the shapes)\n", cmd, model,
                cmd);
        return 2;
    } else {
        const synth_model_config *c = &sh->cfg;
        snprintf(o->s.model, sizeof o->s.model, "%s", sh->name);
        snprintf(o->s.shape, sizeof o->s.shape, "%s", sh->name);
        o->s.hidden = c->n_embd, o->s.experts = c->n_expert, o->s.used = c->n_expert_used;
        o->s.ffn = c->n_ff_exp, o->s.shexp = c->n_ff_shexp, o->s.layers = c->n_layer;
    }
    if (!o->n_types && !parse_types(cmd, DEFAULT_TYPES, o)) return 2;
    const char *f = o->format;
    if (strcmp(f, "md") && strcmp(f, "csv") && strcmp(f, "json") && strcmp(f, "jsonl") && strcmp(f, "sql")) {
        fprintf(stderr, "%s: -o must be md, csv, json, jsonl or sql, not '%s'\n", cmd, f);
        return 2;
    }
    if (!strcmp(routing, "both"))
        o->routings[0] = QKB_ROUTING_UNIFORM, o->routings[1] = QKB_ROUTING_SKEWED, o->n_routings = 2;
    else if (!strcmp(routing, "uniform") || !strcmp(routing, "skewed"))
        o->routings[0] = !strcmp(routing, "skewed") ? QKB_ROUTING_SKEWED : QKB_ROUTING_UNIFORM, o->n_routings = 1;
    else {
        fprintf(stderr, "%s: --routing must be uniform, skewed or both, not '%s'\n", cmd, routing);
        return 2;
    }
    if (o->device && !strcmp(o->device, "auto")) o->device = NULL;
    if (o->device && strchr(o->device, ',')) {
        fprintf(stderr, "%s: -dev takes one device per run, not '%s'\n", cmd, o->device);
        return 2;
    }
    if (!make_tests(cmd, o)) return 2;
    if (!o->commit) o->commit = getenv("QK_COMMIT");
    if (!o->commit || !*o->commit) o->commit = QK_GIT_COMMIT; /* llama-bench's build_commit: the build's */
    return 0;
}

/* ---- the pass -------------------------------------------------------------------------------- */

static layout layout_of(const moe_shape *s, const wtypes *w) {
    layout L = {0};
    L.gate_bytes = (size_t)(s->experts * s->ffn) * qk_type_row_bytes(w->op[OP_GATE_UP], s->hidden);
    L.down_bytes = (size_t)(s->experts * s->hidden) * qk_type_row_bytes(w->op[OP_DOWN], s->ffn);
    if (s->shexp) {
        L.sgate_bytes = (size_t)s->shexp * qk_type_row_bytes(w->op[OP_SHARED_GATE_UP], s->hidden);
        L.sdown_bytes = (size_t)s->hidden * qk_type_row_bytes(w->op[OP_SHARED_DOWN], s->shexp);
    }
    L.gate = 0, L.up = L.gate_bytes, L.down = 2 * L.gate_bytes, L.sgate = L.down + L.down_bytes;
    L.sup = L.sgate + L.sgate_bytes, L.sdown = L.sup + L.sgate_bytes, L.bytes = L.sdown + L.sdown_bytes;
    return L;
}

/* Tokens of op `step`: pp's last batch may be short. */
static int64_t step_tokens(const pass *p, int64_t step) {
    const int64_t left = p->total - step * p->tokens;
    return left < p->tokens ? left : p->tokens;
}

/* The descs of one layer's ops for step `step` (a pp batch, or a generated token) in model layer
 * `layer`. */
static int layer_descs(const pass *p, int64_t step, int64_t layer, qk_moe_desc d[OP_COUNT]) {
    const moe_shape *s = p->s;
    const size_t c = (size_t)(layer % p->copies) * p->L.bytes, t = (size_t)step_tokens(p, step);
    const size_t slots = t * (size_t)s->used;
    const size_t at = ((size_t)(layer * p->steps + step)) * (size_t)(p->tokens * s->used);
    for (int i = 0; i < OP_COUNT; i++) {
        d[i] = qk_moe_default_desc();
        d[i].type = p->types->op[i], d[i].x_type = QK_TYPE_F32, d[i].n_tokens = (int64_t)t;
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

/* Every op of the pass, in model order: batch after batch (tg: token after token), layer after
 * layer. */
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
    if (pt->blocks) return QK_OK; /* made for an earlier part */
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

/* Copy c of the layers: the weights of a GGUF file's c-th MoE layer whose types are the first
 * one's (the row's), else random blocks of the row's types. */
static const qk_gguf_tensor *const *file_layer(const options *o, int64_t c) {
    if (!o->file_types) return NULL;
    const bench_moe_file *f = &o->file;
    for (int64_t l = 0, k = 0; l < f->layers; l++) {
        int same = 1;
        for (int i = 0; i < MOE_PARTS; i++)
            same &=
                !f->parts[l][i] == !f->parts[0][i] && (!f->parts[l][i] || f->parts[l][i]->type == f->parts[0][i]->type);
        if (same && k++ == c) return f->parts[l];
    }
    return NULL;
}

static qk_status fill_weights(const options *o, pass *p) {
    const moe_shape *s = p->s;
    pattern pt[OP_COUNT] = {{0}};
    uint64_t rng = 0x5EED0000ull + (uint64_t)p->types->op[OP_GATE_UP];
    size_t staging_bytes = STAGING_BYTES;
    unsigned char *staging = NULL;
    qk_status st = QK_OK;
    const struct {
        size_t at, bytes;
        int op, file_part;
        int64_t k, rows;
    } parts[] = {{p->L.gate, p->L.gate_bytes, OP_GATE_UP, MOE_GATE, s->hidden, s->experts * s->ffn},
                 {p->L.up, p->L.gate_bytes, OP_GATE_UP, MOE_UP, s->hidden, s->experts * s->ffn},
                 {p->L.down, p->L.down_bytes, OP_DOWN, MOE_DOWN, s->ffn, s->experts * s->hidden},
                 {p->L.sgate, p->L.sgate_bytes, OP_SHARED_GATE_UP, MOE_SGATE, s->hidden, s->shexp},
                 {p->L.sup, p->L.sgate_bytes, OP_SHARED_GATE_UP, MOE_SUP, s->hidden, s->shexp},
                 {p->L.sdown, p->L.sdown_bytes, OP_SHARED_DOWN, MOE_SDOWN, s->shexp, s->hidden}};
    const size_t n_parts = sizeof parts / sizeof parts[0];
    for (int64_t c = 0; c < p->copies && st == QK_OK; c++) {
        const size_t base = (size_t)c * p->L.bytes;
        const qk_gguf_tensor *const *file = file_layer(o, c);
        for (size_t i = 0; i < n_parts && st == QK_OK; i++) {
            if (!parts[i].bytes) continue;
            const qk_gguf_tensor *t = file ? file[parts[i].file_part] : NULL;
            if (t && t->bytes == parts[i].bytes) {
                st = qk_buffer_write(p->w, base + parts[i].at, t->data, (size_t)t->bytes);
                continue;
            }
            pattern *q = &pt[parts[i].op];
            if ((st = make_pattern(p->ctx, p->types->op[parts[i].op], parts[i].k, parts[i].rows, &rng, q)) != QK_OK)
                break;
            if (q->bytes > staging_bytes || !staging) {
                free(staging);
                staging_bytes = q->bytes > staging_bytes ? q->bytes : staging_bytes;
                if (!(staging = malloc(staging_bytes))) st = QK_ERR_OUT_OF_MEMORY;
            }
            if (st == QK_OK) st = fill_region(p->w, base + parts[i].at, parts[i].bytes, q, staging, staging_bytes);
        }
    }
    for (int i = 0; i < OP_COUNT; i++) free(pt[i].blocks);
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
    for (int64_t op = 0; seen && op < s->layers * p->steps; op++) {
        const int32_t *o = ids + op * p->tokens * s->used;
        const int64_t slots = step_tokens(p, op % p->steps) * s->used;
        int64_t touched = 0;
        for (int64_t i = 0; i < slots; i++) touched += !seen[o[i]], seen[o[i]] = 1;
        for (int64_t i = 0; i < slots; i++) seen[o[i]] = 0;
        total += (double)touched * expert + shared;
    }
    free(seen);
    return total;
}

/* "[3/8] Q4_K pp512 uniform" on stderr: rewritten in place on a terminal, a line each with
 * --progress otherwise. */
static void progress(const options *o, size_t at, size_t total, const char *what) {
    const int tty = isatty(2);
    if (!tty && !o->progress) return;
    fprintf(stderr, "%s%s: [%zu/%zu] %s%s", tty ? "\r\033[K" : "", cmd_name(o->mode), at, total, what, tty ? "" : "\n");
    fflush(stderr);
}

static double gemm_ceiling(const ceilings *cl, int64_t n) {
    for (size_t i = 0; i < cl->n_gemm; i++)
        if (cl->gemm_n[i] == n) return cl->gemm_fps[i];
    return 0;
}

/* The user's path on layer 0's routing (dequantize the experts touched + cuBLAS grouped GEMM),
 * for every op of the layer, times the layers and the batches. */
static int baseline(const pass *p, const ceilings *cl, const int32_t *ids, row *r, char *err, size_t errlen) {
    const moe_shape *s = p->s;
    int32_t *zeros = calloc((size_t)p->tokens, sizeof *zeros);
    double dq[4] = {0}, mm[4] = {0};
    int rc = !zeros;
    if (!zeros) snprintf(err, errlen, "out of host memory");
    if (!rc)
        rc = qkb_dequant_grouped_gemm_us(p->ctx, cl->ordinal, p->types->op[OP_GATE_UP],
                                         qk_buf(p->w, p->L.gate, p->L.gate_bytes), s->experts, s->ffn, s->hidden,
                                         p->tokens, s->used, ids, &dq[0], &mm[0], err, errlen);
    if (!rc)
        rc = qkb_dequant_grouped_gemm_us(p->ctx, cl->ordinal, p->types->op[OP_DOWN],
                                         qk_buf(p->w, p->L.down, p->L.down_bytes), s->experts, s->hidden, s->ffn,
                                         p->tokens, s->used, ids, &dq[1], &mm[1], err, errlen);
    if (!rc && s->shexp)
        rc = qkb_dequant_grouped_gemm_us(p->ctx, cl->ordinal, p->types->op[OP_SHARED_GATE_UP],
                                         qk_buf(p->w, p->L.sgate, p->L.sgate_bytes), 1, s->shexp, s->hidden, p->tokens,
                                         1, zeros, &dq[2], &mm[2], err, errlen);
    if (!rc && s->shexp)
        rc = qkb_dequant_grouped_gemm_us(p->ctx, cl->ordinal, p->types->op[OP_SHARED_DOWN],
                                         qk_buf(p->w, p->L.sdown, p->L.sdown_bytes), 1, s->hidden, s->shexp, p->tokens,
                                         1, zeros, &dq[3], &mm[3], err, errlen);
    free(zeros);
    if (rc) return rc;
    /* gate and up are two tensors of the same shape and routing: twice the one measured */
    const double ops = (double)(s->layers * p->steps);
    r->base_dq_us = ops * (2 * dq[0] + dq[1] + 2 * dq[2] + dq[3]);
    r->base_mm_us = ops * (2 * mm[0] + mm[1] + 2 * mm[2] + mm[3]);
    r->base_us = r->base_dq_us + r->base_mm_us;
    return 0;
}

/* One row: types x test x routing. 0 done, 1 skipped (reason in skip), -1 failed (message printed). */
static int measure(const options *o, qk_context *ctx, const qk_device_info *dev, const ceilings *cl, row *r, char *skip,
                   size_t skiplen) {
    const char *cmd = cmd_name(o->mode);
    const moe_shape *s = &o->s;
    const test_case *tc = r->tc;
    const int tg = tc->n_gen > 0;
    pass p = {0};
    p.ctx = ctx, p.s = s, p.types = r->types, p.L = layout_of(s, r->types), p.copies = 1;
    p.total = tg ? tc->n_gen : tc->n_prompt;
    p.tokens = tg ? 1 : tc->n_batch < tc->n_prompt ? tc->n_batch : tc->n_prompt;
    p.steps = (p.total + p.tokens - 1) / p.tokens;
    r->copy_frac = r->gemm_frac = r->base_frac = r->gemm_tflops = NAN;
    r->size_bytes = (double)s->layers * (double)p.L.bytes;
    if (o->file_types) { /* the file's layers as they are, other types included */
        r->size_bytes = 0;
        for (int64_t l = 0; l < o->file.layers; l++)
            for (int k = 0; k < MOE_PARTS; k++)
                if (o->file.parts[l][k]) r->size_bytes += (double)o->file.parts[l][k]->bytes;
    }
    int32_t *ids = NULL;
    float *router = NULL, *x = NULL;
    int rc = -1;

    size_t ws;
    qk_status st = workspace_bytes(&p, &ws);
    if (st == QK_ERR_UNSUPPORTED || (o->all_types && st == QK_ERR_SHAPE)) {
        snprintf(skip, skiplen, "%s", qk_last_error(ctx));
        return 1;
    }
    if (st != QK_OK) {
        fprintf(stderr, "%s: %s: %s\n", cmd, r->types->name, qk_last_error(ctx));
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
                r->types->name, (long long)(copies < 1 ? 1 : copies),
                (double)(copies < 1 ? 1 : copies) * (double)p.L.bytes / 1073741824.0, dev->id,
                (double)dev->memory_bytes / 1073741824.0);
        return -1;
    }
    p.copies = r->copies = copies;

    const size_t n_ids = (size_t)(s->layers * p.steps * p.tokens * s->used), t_h = (size_t)(p.tokens * s->hidden);
    ids = malloc(n_ids * sizeof *ids), router = malloc(n_ids * sizeof *router), x = malloc(t_h * sizeof *x);
    if (!ids || !router || !x || !r->t) {
        fprintf(stderr, "%s: out of host memory\n", cmd);
        goto done;
    }
    const int64_t per_layer = p.steps * p.tokens;
    for (int64_t l = 0; l < s->layers; l++)
        qkb_route(r->routing, ROUTING_SEED + (uint64_t)l * 0x10001ull, per_layer, s->used, s->experts,
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
        fprintf(stderr, "%s: %s: %s\n", cmd, r->types->name, qk_last_error(ctx));
        goto done;
    }
    if (qk_buffer_write(p.x, 0, x, t_h * 4) != QK_OK || qk_buffer_write(p.ids, 0, ids, n_ids * 4) != QK_OK ||
        qk_buffer_write(p.router, 0, router, n_ids * 4) != QK_OK || fill_weights(o, &p) != QK_OK) {
        /* an empty message: fill_weights ran out of host memory (the library was not at fault) */
        fprintf(stderr, "%s: %s: preparing the weights: %s\n", cmd, r->types->name,
                qk_last_error(ctx)[0] ? qk_last_error(ctx) : "out of host memory for the random weights");
        goto done;
    }

    double *t = r->t;
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
            fprintf(stderr, "%s: %s: %s\n", cmd, r->types->name, us ? err : "out of host memory");
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
            fprintf(stderr, "%s: %s: %s\n", cmd, r->types->name, qk_last_error(ctx));
            goto done;
        }
    }

    const double tokens = (double)p.total;
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
    const double gemm_fps = tg ? 0 : gemm_ceiling(cl, p.tokens * s->used);
    if (cl->copy_bps > 0) r->copy_frac = r->bytes / r->t_mean / cl->copy_bps;
    if (gemm_fps > 0) r->gemm_frac = r->flops / gemm_fps / r->t_mean, r->gemm_tflops = gemm_fps / 1e12;
    if (cl->cuda && !tg && !cl->base_why[0]) {
        char err[512];
        if (baseline(&p, cl, ids, r, err, sizeof err) == 0)
            r->base_frac = 1e-6 * r->base_us / r->t_mean;
        else
            fprintf(stderr, "%s: %s: dequantize + cuBLAS grouped GEMM not measured: %s\n", cmd, r->types->name, err);
    }
    rc = 0;
done:
    free(ids), free(router), free(x);
    free_pass(&p);
    return rc;
}

/* ---- output ---------------------------------------------------------------------------------- */

typedef struct report {
    const options *o;
    const qk_device_info *dev;
    const ceilings *cl;
    char device[128]; /* the hardware's name as the results record it: "NVIDIA H100 80GB HBM3" */
    char date[32], cpu_info[128];
    double params;
    size_t printed; /* rows so far: the header goes before the first */
    int md_threads, md_batch;
} report;

/* ggml's backend names, which llama-bench prints. */
static const char *backend_label(const qk_device_info *d) {
    return d->kind == QK_DEVICE_CUDA ? "CUDA" : d->kind == QK_DEVICE_VULKAN ? "Vulkan" : "CPU";
}

static const char *backend_name(const qk_device_info *d) {
    return d->kind == QK_DEVICE_CUDA ? "cuda" : d->kind == QK_DEVICE_VULKAN ? "vulkan" : "cpu";
}

static void cpu_model(char *buf, size_t len) {
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            const char *v = strchr(line, ':') + 1;
            while (*v == ' ') v++;
            snprintf(buf, len, "%.*s", (int)strcspn(v, "\n"), v);
            break;
        }
    if (f) fclose(f);
}

/* One field of a record: text (s), integer (i), or real (g; NAN is null). */
typedef struct field {
    const char *name;
    char kind;
    char text[192];
    double num;
} field;

#define MAX_FIELDS 64

static void put_s(field *f, size_t *n, const char *name, const char *v) {
    f[*n].name = name, f[*n].kind = 's';
    snprintf(f[*n].text, sizeof f[*n].text, "%s", v);
    (*n)++;
}

static void put_n(field *f, size_t *n, const char *name, char kind, double v) {
    f[*n].name = name, f[*n].kind = kind, f[*n].num = v, f[*n].text[0] = 0;
    (*n)++;
}

/* The record of a row: the fields scripts read from earlier versions (device ... flops), then
 * llama-bench's, in its order, where they mean something here (n_gen is in both). */
static size_t row_fields(const report *rp, const row *r, field *f) {
    const options *o = rp->o;
    const ceilings *cl = rp->cl;
    const int tg = r->tc->n_gen > 0;
    const double ceiling = tg ? (cl->copy_bps > 0 ? cl->copy_bps / 1e9 : NAN) : r->gemm_tflops;
    const double avg_ns = 1e9 * r->t_mean, sd_ns = 1e9 * r->t_sd;
    const int base = !isnan(r->base_frac);
    char model_type[160];
    snprintf(model_type, sizeof model_type, "%s %s", o->path ? o->file.arch : o->s.model, r->types->name);
    size_t n = 0;
    put_s(f, &n, "device", rp->device);
    put_s(f, &n, "device_id", rp->dev->id);
    put_s(f, &n, "date", rp->date);
    put_s(f, &n, "commit", o->commit);
    put_s(f, &n, "backend", backend_name(rp->dev));
    put_s(f, &n, "op", tg ? "model_tg" : "model_pp");
    put_s(f, &n, "type", r->types->name);
    put_s(f, &n, "shape", o->s.shape);
    put_s(f, &n, "model", o->s.model);
    put_s(f, &n, "test", r->test);
    put_s(f, &n, "routing", qkb_routing_name(r->routing));
    put_n(f, &n, "tokens", 'i', tg ? 1.0 : (double)r->tc->n_prompt);
    put_n(f, &n, "n_gen", 'i', (double)r->tc->n_gen);
    put_n(f, &n, "layers", 'i', (double)o->s.layers);
    put_n(f, &n, "copies", 'i', (double)r->copies);
    put_n(f, &n, "value", 'g', r->ts_mean);
    put_s(f, &n, "unit", "t/s");
    put_n(f, &n, "stddev", 'g', r->ts_sd);
    put_n(f, &n, "ceiling", 'g', ceiling);
    if (isnan(ceiling))
        put_n(f, &n, "ceiling_unit", 'g', NAN);
    else
        put_s(f, &n, "ceiling_unit",
              tg ? "GB/s (device-to-device copy, read + write)" : "TFLOP/s (dense fp16 cuBLAS GEMM)");
    put_n(f, &n, "fraction", 'g', tg ? r->copy_frac : r->gemm_frac);
    put_n(f, &n, "weight_gbps", 'g', r->bytes / r->t_mean / 1e9);
    put_n(f, &n, "copy_gbps", 'g', cl->copy_bps > 0 ? cl->copy_bps / 1e9 : NAN);
    put_n(f, &n, "copy_fraction", 'g', r->copy_frac);
    put_n(f, &n, "gemm_tflops", 'g', tg ? NAN : r->gemm_tflops);
    put_n(f, &n, "gemm_fraction", 'g', tg ? NAN : r->gemm_frac);
    put_n(f, &n, "dequant_gemm_us", 'g', base ? r->base_us : NAN);
    put_n(f, &n, "dequant_us", 'g', base ? r->base_dq_us : NAN);
    put_n(f, &n, "gemm_us", 'g', base ? r->base_mm_us : NAN);
    put_n(f, &n, "dequant_gemm_ratio", 'g', r->base_frac);
    put_n(f, &n, "pass_us", 'g', 1e6 * r->t_mean);
    put_n(f, &n, "pass_us_sd", 'g', 1e6 * r->t_sd);
    put_n(f, &n, "weight_bytes", 'i', r->bytes);
    put_n(f, &n, "flops", 'i', r->flops);
    /* llama-bench's */
    put_s(f, &n, "build_commit", o->commit);
    put_s(f, &n, "cpu_info", rp->cpu_info);
    put_s(f, &n, "gpu_info", rp->dev->kind == QK_DEVICE_CPU ? "" : rp->device);
    put_s(f, &n, "backends", backend_label(rp->dev));
    put_s(f, &n, "model_filename", o->path ? o->path : "");
    put_s(f, &n, "model_type", model_type);
    put_n(f, &n, "model_size", 'i', r->size_bytes);
    put_n(f, &n, "model_n_params", 'i', rp->params);
    put_n(f, &n, "n_batch", 'i', (double)r->tc->n_batch);
    put_n(f, &n, "n_threads", 'i', (double)r->n_threads);
    put_s(f, &n, "devices", rp->dev->id);
    put_n(f, &n, "n_prompt", 'i', (double)r->tc->n_prompt);
    put_n(f, &n, "n_depth", 'i', 0);
    put_s(f, &n, "test_time", rp->date);
    put_n(f, &n, "avg_ns", 'i', round(avg_ns));
    put_n(f, &n, "stddev_ns", 'i', round(sd_ns));
    put_n(f, &n, "avg_ts", 'f', r->ts_mean);
    put_n(f, &n, "stddev_ts", 'f', r->ts_sd);
    return n;
}

static void print_value(const field *f, int csv) {
    if (f->kind == 's') {
        if (!csv)
            bench_json_string(stdout, f->text);
        else if (strpbrk(f->text, ",\" ")) {
            putchar('"');
            for (const char *c = f->text; *c; c++) printf(*c == '"' ? "\"\"" : "%c", *c);
            putchar('"');
        } else
            fputs(f->text, stdout);
    } else if (isnan(f->num)) {
        fputs(csv ? "" : "null", stdout);
    } else
        printf(f->kind == 'i' ? "%.0f" : f->kind == 'f' ? "%.6f" : "%.6g", f->num);
}

static void print_json_record(const report *rp, const row *r, const field *f, size_t n) {
    printf("{");
    for (size_t i = 0; i < n; i++) {
        printf("\"%s\": ", f[i].name);
        print_value(&f[i], 0);
        printf(", ");
    }
    const double tokens = (double)(r->tc->n_prompt + r->tc->n_gen);
    printf("\"samples_ns\": [");
    for (long long i = 0; i < rp->o->reps; i++) printf("%s%.0f", i ? ", " : "", round(1e9 * r->t[i]));
    printf("], \"samples_ts\": [");
    for (long long i = 0; i < rp->o->reps; i++) printf("%s%.6f", i ? ", " : "", tokens / r->t[i]);
    printf("]}");
}

static void print_sql(const report *rp, const field *f, size_t n) {
    if (!rp->printed) {
        printf("CREATE TABLE IF NOT EXISTS qkern_bench (\n");
        for (size_t i = 0; i < n; i++)
            printf("  \"%s\" %s%s\n", f[i].name,
                   f[i].kind == 's'   ? "TEXT"
                   : f[i].kind == 'i' ? "INTEGER"
                                      : "REAL",
                   i + 1 < n ? "," : "");
        printf(");\n\n");
    }
    printf("INSERT INTO qkern_bench (");
    for (size_t i = 0; i < n; i++) printf("%s\"%s\"", i ? ", " : "", f[i].name); /* quoted: "commit" is a keyword */
    printf(") VALUES (");
    for (size_t i = 0; i < n; i++) {
        if (i) printf(", ");
        if (f[i].kind == 's') {
            putchar('\'');
            for (const char *c = f[i].text; *c; c++) printf(*c == '\'' ? "''" : "%c", *c);
            putchar('\'');
        } else if (isnan(f[i].num))
            printf("NULL");
        else
            print_value(&f[i], 1);
    }
    printf(");\n");
}

static void print_md_preamble(const report *rp) {
    const ceilings *cl = rp->cl;
    const options *o = rp->o;
    const moe_shape *s = &o->s;
    printf("# %s: %s, MoE FFN layers only\n\n", cmd_name(o->mode), o->path ? o->path : s->shape);
    printf("- device: %s (%s), backend %s, %s, commit %s\n", rp->dev->id, rp->device, backend_label(rp->dev), rp->date,
           o->commit);
    printf("- shape: hidden %lld, %lld experts (%lld used) of %lld, shared expert %lld, %lld layers\n",
           (long long)s->hidden, (long long)s->experts, (long long)s->used, (long long)s->ffn, (long long)s->shexp,
           (long long)s->layers);
    if (o->path)
        printf("- weights: %s; %lld of %lld MoE layers have other types and are timed with these\n",
               o->file_types ? "the file's own (its first MoE layer's types)" : "random blocks of -q's types",
               (long long)o->file.other_types, (long long)s->layers);
    if (!cl->cuda) {
        printf("- ceilings: n/a (measured on CUDA devices only); wall-clock time of the synchronous calls\n");
    } else {
        if (cl->copy_bps > 0)
            printf("- ceiling: device-to-device copy %.1f GB/s (bytes read + written, 1 GiB)\n", cl->copy_bps / 1e9);
        else
            printf("- ceiling: copy bandwidth n/a (%s)\n", cl->copy_why);
        for (size_t i = 0; i < cl->n_gemm; i++)
            if (cl->gemm_fps[i] > 0)
                printf("- ceiling: dense fp16 cuBLAS GEMM %.1f TFLOP/s (%lld x %lld x %lld, f32 accumulation)\n",
                       cl->gemm_fps[i] / 1e12, (long long)cl->gemm_m, (long long)cl->gemm_n[i], (long long)cl->gemm_k);
        if (cl->gemm_why[0]) printf("- ceiling: dense GEMM n/a (%s)\n", cl->gemm_why);
        if (cl->base_why[0] && o->mode != BENCH_MOE_TG)
            printf("- dequantize + cuBLAS grouped GEMM: n/a (%s)\n", cl->base_why);
        printf("- graph of the whole pass, timed with events; cuBLAS: %s\n", qkb_cublas_info());
    }
    printf("\n| model | type | size | params | backend |%s%s test | routing | t/s | GB/s | of copy BW | of fp16 GEMM | "
           "dequant+cuBLAS time / ours |\n|---|---|---:|---:|---|%s%s---|---|---:|---:|---:|---:|---:|\n",
           rp->md_threads ? " threads |" : "", rp->md_batch ? " n_batch |" : "", rp->md_threads ? "---:|" : "",
           rp->md_batch ? "---:|" : "");
}

static void print_md_row(const report *rp, const row *r) {
    char cf[32] = "n/a", gf[32] = "n/a", bf[32] = "n/a", extra[64] = "";
    if (!isnan(r->copy_frac)) snprintf(cf, sizeof cf, "%.1f %%", 100 * r->copy_frac);
    if (!isnan(r->gemm_frac) && !r->tc->n_gen) snprintf(gf, sizeof gf, "%.1f %%", 100 * r->gemm_frac);
    if (!isnan(r->base_frac)) snprintf(bf, sizeof bf, "%.2fx", r->base_frac);
    if (rp->md_threads) snprintf(extra, sizeof extra, " %lld |", r->n_threads);
    if (rp->md_batch) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " %lld |", r->tc->n_batch);
    const double gib = r->size_bytes / 1073741824.0;
    printf("| %s | %s | %.2f %s | %.2f %s | %s |%s %s | %s | %.2f ± %.2f | %.1f | %s | %s | %s |\n", rp->o->s.model,
           r->types->name, gib >= 1 ? gib : gib * 1024, gib >= 1 ? "GiB" : "MiB",
           rp->params >= 1e9 ? rp->params / 1e9 : rp->params / 1e6, rp->params >= 1e9 ? "B" : "M",
           backend_label(rp->dev), extra, r->test, qkb_routing_name(r->routing), r->ts_mean, r->ts_sd,
           r->bytes / r->t_mean / 1e9, cf, gf, bf);
}

/* Prints one measured row at once, in the chosen format (the header first). */
static void print_row(report *rp, const row *r) {
    const char *fmt = rp->o->format;
    field f[MAX_FIELDS];
    const size_t n = row_fields(rp, r, f);
    if (isatty(2)) fprintf(stderr, "\r\033[K"); /* the progress line, where stdout shares the terminal */
    if (!strcmp(fmt, "md")) {
        if (!rp->printed) print_md_preamble(rp);
        print_md_row(rp, r);
    } else if (!strcmp(fmt, "csv")) {
        for (size_t i = 0; !rp->printed && i < n; i++) printf("%s%s", f[i].name, i + 1 < n ? "," : "\n");
        for (size_t i = 0; i < n; i++) {
            print_value(&f[i], 1);
            putchar(i + 1 < n ? ',' : '\n');
        }
    } else if (!strcmp(fmt, "json")) {
        printf("%s  ", rp->printed ? ",\n" : "[\n");
        print_json_record(rp, r, f, n);
    } else if (!strcmp(fmt, "jsonl")) {
        print_json_record(rp, r, f, n);
        printf("\n");
    } else {
        print_sql(rp, f, n);
    }
    rp->printed++;
    fflush(stdout);
}

static void print_footer(const report *rp) {
    if (!rp->printed) return;
    if (!strcmp(rp->o->format, "json")) printf("\n]\n");
    if (!strcmp(rp->o->format, "md")) printf("\nbuild: %s (qkern %s)\n", rp->o->commit, qk_version_string());
}

/* ---- the command ------------------------------------------------------------------------------ */

static void measure_ceilings(const options *o, const qk_device_info *dev, ceilings *cl) {
    memset(cl, 0, sizeof *cl);
    if (dev->kind != QK_DEVICE_CUDA || sscanf(dev->id, "cuda:%d", &cl->ordinal) != 1) return;
    cl->cuda = 1;
    if (isatty(2)) fprintf(stderr, "\r\033[K%s: measuring the ceilings", cmd_name(o->mode));
    if (qkb_copy_bandwidth(cl->ordinal, 0, &cl->copy_bps, cl->copy_why, sizeof cl->copy_why)) cl->copy_bps = 0;
    /* the FLOPs of the gate/up op of each pp batch size as one dense GEMM: both projections
     * stacked, all slots */
    cl->gemm_m = 2 * o->s.ffn, cl->gemm_k = o->s.hidden;
    for (size_t i = 0; i < o->n_tests; i++) {
        const test_case *tc = &o->tests[i];
        if (tc->n_gen || cl->base_why[0]) continue;
        const int64_t n = (tc->n_batch < tc->n_prompt ? tc->n_batch : tc->n_prompt) * o->s.used;
        if (gemm_ceiling(cl, n) > 0 || cl->n_gemm == MAX_VALUES) continue;
        if (qkb_gemm_rate(cl->ordinal, cl->gemm_m, n, cl->gemm_k, 0, &cl->gemm_fps[cl->n_gemm], cl->gemm_why,
                          sizeof cl->gemm_why)) {
            cl->gemm_fps[cl->n_gemm] = 0;
            snprintf(cl->base_why, sizeof cl->base_why, "%s", cl->gemm_why); /* no cuBLAS: no grouped GEMM either */
            continue;
        }
        cl->gemm_n[cl->n_gemm++] = n;
    }
}

int cmd_bench_moe(int argc, char **argv, bench_moe_mode mode) {
    const char *cmd = cmd_name(mode);
    options o;
    memset(&o, 0, sizeof o);
    o.mode = mode, o.reps = 5, o.format = "md";
    o.prompts[0] = 512, o.gens[0] = 128, o.batches[0] = DEFAULT_BATCH, o.threads[0] = 0;
    o.n_prompts = o.n_gens = o.n_batches = o.n_threads = 1;
    int prc = parse_options(argc, argv, &o);
    if (prc) {
        bench_moe_file_close(&o.file);
        return prc < 0 ? 0 : prc;
    }

    qk_context *ctx = NULL;
    qk_device_info dev;
    ceilings cl;
    report rp = {&o, &dev, &cl, "", "", "", 0, 0, 0, 0};
    const size_t per_ctx = o.n_types * o.n_tests * (size_t)o.n_routings, total = per_ctx * o.n_threads;
    char(*skips)[256] = calloc(o.n_types, sizeof *skips);
    double *times = calloc((size_t)o.reps, sizeof *times);
    size_t n = 0, n_skipped = 0, at = 0;
    int rc = 1;
    if (!skips || !times) {
        fprintf(stderr, "%s: out of host memory\n", cmd);
        goto done;
    }
    bench_date(rp.date, sizeof rp.date);
    cpu_model(rp.cpu_info, sizeof rp.cpu_info);
    rp.params = (double)o.s.layers * 3.0 * (double)o.s.hidden * (double)(o.s.experts * o.s.ffn + o.s.shexp);
    rp.md_batch = o.n_batches > 1 || o.batches[0] != DEFAULT_BATCH;
    for (size_t ti = 0; ti < o.n_threads; ti++) {
        if (bench_open_device(o.device, (int)o.threads[ti], &ctx, &dev) != QK_OK) {
            fprintf(stderr, "%s: device %s: %s\n", cmd, o.device ? o.device : "auto", qk_last_error(ctx));
            goto done;
        }
        if (!ti) {
            measure_ceilings(&o, &dev, &cl);
            if (cl.cuda) qkb_device_name(cl.ordinal, rp.device, sizeof rp.device);
            if (!rp.device[0]) snprintf(rp.device, sizeof rp.device, "%s", dev.name);
            rp.md_threads = dev.kind == QK_DEVICE_CPU || o.n_threads > 1 || o.threads[0];
        }
        for (size_t k = 0; k < o.n_types; k++)
            for (size_t ci = 0; ci < o.n_tests && !skips[k][0]; ci++)
                for (int ri = 0; ri < o.n_routings; ri++) {
                    const test_case *tc = &o.tests[ci];
                    row r;
                    memset(&r, 0, sizeof r);
                    r.types = &o.types[k], r.tc = tc, r.routing = o.routings[ri], r.t = times;
                    r.n_threads = o.threads[ti] ? o.threads[ti] : sysconf(_SC_NPROCESSORS_ONLN);
                    snprintf(r.test, sizeof r.test, "%s%lld", tc->n_gen ? "tg" : "pp",
                             tc->n_gen ? tc->n_gen : tc->n_prompt);
                    char what[160];
                    snprintf(what, sizeof what, "%s %s %s%s", o.types[k].name, r.test, qkb_routing_name(r.routing),
                             o.n_threads > 1 ? " " : "");
                    if (o.n_threads > 1)
                        snprintf(what + strlen(what), sizeof what - strlen(what), "threads %lld", r.n_threads);
                    progress(&o, ++at, total, what);
                    int m = measure(&o, ctx, &dev, &cl, &r, skips[k], sizeof skips[k]);
                    if (m < 0) goto done;
                    if (m > 0) { /* the other tests and routings would be skipped for the same reason */
                        n_skipped++;
                        at += (o.n_tests - ci) * (size_t)o.n_routings - (size_t)ri - 1;
                        break;
                    }
                    print_row(&rp, &r);
                    n++;
                }
        qk_context_destroy(ctx);
        ctx = NULL;
    }
    if (isatty(2)) fprintf(stderr, "\r\033[K");
    for (size_t k = 0; k < o.n_types; k++)
        if (skips[k][0] && !o.all_types) fprintf(stderr, "%s: skipped %s: %s\n", cmd, o.types[k].name, skips[k]);
    if (!n) {
        size_t k = 0;
        while (k + 1 < o.n_types && !skips[k][0]) k++;
        fprintf(stderr, "%s: nothing could run on %s: %s\n", cmd, dev.id, skips[k][0] ? skips[k] : "no type given");
        goto done;
    }
    if (n_skipped && !strcmp(o.format, "md")) {
        printf("\nskipped (no kernel on %s, or a block size that does not divide the shape):", dev.id);
        for (size_t k = 0; k < o.n_types; k++)
            if (skips[k][0]) printf(" %s", o.types[k].name);
        printf("\n");
    }
    rc = 0;
done:
    print_footer(&rp);
    if (isatty(2) && rc) fprintf(stderr, "\r\033[K");
    free(skips), free(times);
    qk_context_destroy(ctx);
    bench_moe_file_close(&o.file);
    return rc;
}
