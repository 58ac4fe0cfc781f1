/* qkern quantize: llama-quantize's command line (positional IN OUT TYPE [THREADS] and its
 * options, misuse exiting 1 as there), plus --device, --report, --split-max-size, --shard, --quiet. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bench_util.h"
#include "cli.h"
#include "plot_svg.h"
#include "safe_output.h"

#define MAX_LIST 256
/* --plot's evenly spaced budgets: a smooth curve, and still a few milliseconds of solving each */
#define CURVE_BUDGETS 48
/* --shard's N: split.count is 16 bits in llama.cpp's split metadata */
#define MAX_SHARDS 65535

static void usage(FILE *f) {
    fprintf(
        f, "usage: qkern quantize [OPTIONS] IN.gguf [OUT.gguf] TYPE [THREADS]\n"
           "  Quantizes a GGUF model (F32/F16/BF16; split files by any part's name) to a llama.cpp preset\n"
           "  TYPE, with llama-quantize's per-tensor mixture rules. OUT defaults to IN's folder/ggml-model-TYPE.gguf.\n"
           "  The output appears only when complete; on an error or Ctrl-C nothing is left behind.\n\n"
           "llama-quantize options:\n"
           "  --imatrix FILE              importance matrix (GGUF or legacy .dat)\n"
           "  --include-weights S         use imatrix data only for tensors whose name contains S (repeatable)\n"
           "  --exclude-weights S         use imatrix data for all tensors except those containing S (repeatable)\n"
           "  --output-tensor-type T      type of output.weight\n"
           "  --token-embedding-type T    type of token_embd.weight\n"
           "  --tensor-type REGEX=T       type of tensors matching REGEX (repeatable; first match wins)\n"
           "  --pure                      no mixture rules: every quantizable tensor gets TYPE's default\n"
           "  --leave-output-tensor       keep output.weight as it is\n"
           "  --allow-requantize          accept already-quantized inputs (quality suffers)\n"
           "  --tensor-type-file FILE     REGEX=T items separated by spaces or newlines, as --tensor-type\n"
           "  --prune-layers L0,L1,...    leave these blocks out; the later ones are renumbered\n"
           "  --override-kv KEY=T:V       set metadata KEY in the output; T is int, float, bool or str (repeatable)\n"
           "  --keep-split                write one output file per input file (OUT-0000k-of-0000N.gguf)\n"
           "  --dry-run                   print the per-tensor plan and totals; write nothing\n"
           "  --max-buffer-size MiB       input bytes per step, at most (qkern's step is 64 MiB or less anyway)\n"
           "  THREADS                     cpu worker threads; 0 (or less): all cores\n"
           "qkern options:\n"
           "  --split-max-size N[K|M|G]   split the output into files of at most N bytes\n"
           "  --mem-limit N[K|M|G]        keep host memory within N bytes (smaller steps; same output)\n"
           "  --shard I/N                 write only part I (1..N) of N: a contiguous run of about 1/N of the\n"
           "                              output bytes, as OUT-0000I-of-0000N.gguf; the N parts, each run on\n"
           "                              its own (other machines), form the split model that llama.cpp loads\n"
           "  --resume                    keep the temporary output and a journal if stopped; run again with\n"
           "                              the same arguments and --resume to continue where it stopped (the\n"
           "                              same bytes as an uninterrupted run; after any change, from the start)\n"
           "  --device D[,D...]           cpu, cuda:N, vulkan:N (default: the best present); a list, or cuda:all /\n"
           "                              vulkan:all, runs one worker per device over the steps, the same bytes\n"
           "                              (cpu may repeat: one more worker on the host's cores); --stats and\n"
           "                              --report say how many steps and bytes each device did\n"
           "  --report FILE.json          per tensor: type, bytes, weighted RMSE, time\n"
           "  --quiet                     no progress output, no notes, no fallback warnings\n"
           "  --stats                     after the run, print on stderr where the wall time went (read,\n"
           "                              convert, quantize, measure, write) and each stage's GB/s\n"
           "size targets (instead of the preset's mixture; TYPE still pins what it copies and names the file type):\n"
           "  --target-bpw B              tensor data of at most B bits per weight, at the least total\n"
           "                              importance-weighted error measured per tensor and candidate type\n"
           "  --target-size N[K|M|G]      tensor data of at most N bytes (metadata excluded; K = 1024)\n"
           "  --target-types T1,T2,...    candidate types (default Q2_K..Q6_K, IQ2_XXS..IQ4_XS, Q8_0, MXFP4;\n"
           "                              those needing imatrix data only with it)\n"
           "  --state-file F              keep the measured errors in F; a later run with the same model,\n"
           "                              imatrix and candidates reads them instead of measuring\n"
           "                              with --shard I/N, in two phases: --dry-run measures only part I's\n"
           "                              tensors into F (one file per part); `qkern state-merge S F1 .. FN`\n"
           "                              combines them; each part then runs with --state-file S\n"
           "  --plot FILE.svg             also draw the total error against bpw that the target's allocation\n"
           "                              reaches over the reachable range, the chosen mixture and every\n"
           "                              quantized preset priced from the same error matrix (the presets'\n"
           "                              types that are no candidate are measured too; the state file does\n"
           "                              not keep them); --report then lists the points. Written with\n"
           "                              --dry-run as well: it is an inspection output, like --report\n\n"
           "TYPE (preset, or its llama_ftype number):\n");
    for (size_t i = 0; i < qk_preset_count(); i++) {
        const qk_preset *ft = qk_preset_at(i);
        fprintf(f, "  %3d  %-10s %s\n", ft->id, ft->name, ft->help ? ft->help : "");
    }
}

typedef struct options {
    const char *pos[4];
    int n_pos;
    const char *imatrix, *device, *report;
    const char *include[MAX_LIST], *exclude[MAX_LIST];
    size_t n_include, n_exclude;
    qk_tensor_type_override *overrides; /* --tensor-type and --tensor-type-file, in order */
    size_t n_overrides, cap_overrides;
    const char *kv[MAX_LIST]; /* --override-kv texts, checked by the library */
    size_t n_kv;
    int *prune; /* --prune-layers, sorted, no repeats */
    size_t n_prune;
    int pure, leave_output, allow_requantize, keep_split, dry_run, quiet, resume, stats;
    int output_type, embd_type;
    uint64_t split_max, max_buffer, mem_limit;
    double target_bpw;
    uint64_t target_size;
    int target_types[64];
    size_t n_target_types;
    const char *state_file;
    const char *plot;
    int shard_index, shard_count; /* --shard I/N; 0: the whole model */
} options;

static int parse_type(const char *opt, const char *v, int *out) {
    qk_type t;
    if (qk_type_from_name(v, &t) != QK_OK) {
        fprintf(stderr, "qkern: %s: unknown type '%s' (see `qkern types`)\n", opt, v);
        return 0;
    }
    *out = (int)t;
    return 1;
}

static int parse_size(const char *opt, const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1ull << 10;
    if (*end == 'M' || *end == 'm') mul = 1ull << 20;
    if (*end == 'G' || *end == 'g') mul = 1ull << 30;
    if (mul > 1) end++;
    if (end == v || *end || errno || n == 0 || n > UINT64_MAX / mul) {
        fprintf(stderr, "qkern: %s: '%s' is not a size like 500M or 4G\n", opt, v);
        return 0;
    }
    *out = n * mul;
    return 1;
}

/* --target-types Q4_K,Q6_K,...: quantized types by name. */
static int parse_type_list(options *o, const char *v) {
    char item[32];
    for (const char *c = v;;) {
        size_t len = strcspn(c, ",");
        if (len == 0 || len >= sizeof item) {
            fprintf(stderr, "qkern: --target-types: '%s' is not a list of types like Q4_K,Q6_K,IQ4_XS\n", v);
            return 0;
        }
        memcpy(item, c, len);
        item[len] = 0;
        int type;
        if (!parse_type("--target-types", item, &type)) return 0;
        qk_type_info info;
        if (qk_type_get_info(type, &info) != QK_OK || info.block_elems == 1) {
            fprintf(stderr, "qkern: --target-types: %s is not a quantized type\n", item);
            return 0;
        }
        if (o->n_target_types == sizeof o->target_types / sizeof o->target_types[0]) {
            fprintf(stderr, "qkern: --target-types: too many types\n");
            return 0;
        }
        o->target_types[o->n_target_types++] = type;
        if (!c[len]) return 1;
        c += len + 1;
    }
}

/* --shard I/N: part I of N, 1 <= I <= N. */
static int parse_shard(options *o, const char *v) {
    char *end;
    errno = 0;
    long i = isdigit((unsigned char)v[0]) ? strtol(v, &end, 10) : -1, n = -1;
    if (i >= 0 && *end == '/' && isdigit((unsigned char)end[1])) n = strtol(end + 1, &end, 10);
    if (i < 0 || n < 0 || *end || errno) {
        fprintf(stderr, "qkern: --shard: '%s' is not I/N (part I of N parts, e.g. 2/8)\n", v);
        return 0;
    }
    if (n < 1 || n > MAX_SHARDS) {
        fprintf(stderr, "qkern: --shard %s: N must be 1 to %d\n", v, MAX_SHARDS);
        return 0;
    }
    if (i < 1 || i > n) {
        fprintf(stderr, "qkern: --shard %s: I must be 1 to %ld (parts are numbered from 1)\n", v, n);
        return 0;
    }
    o->shard_index = (int)i;
    o->shard_count = (int)n;
    return 1;
}

static int add_override(options *o, const char *opt, const char *v) {
    const char *eq = strrchr(v, '=');
    if (!eq || eq == v || !eq[1]) {
        fprintf(stderr, "qkern: %s: '%s' is not REGEX=TYPE\n", opt, v);
        return 0;
    }
    int type;
    if (!parse_type(opt, eq + 1, &type)) return 0;
    if (o->n_overrides == o->cap_overrides) {
        size_t cap = o->cap_overrides ? 2 * o->cap_overrides : 16;
        qk_tensor_type_override *grown = realloc(o->overrides, cap * sizeof *grown);
        if (!grown) return fprintf(stderr, "qkern: %s: out of memory\n", opt), 0;
        o->overrides = grown;
        o->cap_overrides = cap;
    }
    char *pat = strndup(v, (size_t)(eq - v));
    if (!pat) return fprintf(stderr, "qkern: %s: out of memory\n", opt), 0;
    o->overrides[o->n_overrides++] = (qk_tensor_type_override){pat, (qk_type)type};
    return 1;
}

/* llama-quantize's --tensor-type-file: REGEX=TYPE items separated by white space. */
static int add_override_file(options *o, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "qkern: --tensor-type-file %s: %s\n", path, strerror(errno));
        return 0;
    }
    char item[4096];
    int ok = 1;
    while (ok && fscanf(f, "%4095s", item) == 1) ok = add_override(o, "--tensor-type-file", item);
    if (ok && ferror(f)) {
        fprintf(stderr, "qkern: --tensor-type-file %s: %s\n", path, strerror(errno));
        ok = 0;
    }
    fclose(f);
    return ok;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* --prune-layers L0,L1,...: block numbers >= 0, kept sorted without repeats as llama-quantize does. */
static int parse_prune(options *o, const char *v) {
    size_t n = 1;
    for (const char *c = v; *c; c++) n += *c == ',';
    int *ids = realloc(o->prune, (o->n_prune + n) * sizeof *ids);
    if (!ids) return fprintf(stderr, "qkern: --prune-layers: out of memory\n"), 0;
    o->prune = ids;
    for (const char *c = v;; c++) {
        char *end;
        errno = 0;
        long id = strtol(c, &end, 10);
        if (end == c || (*end && *end != ',') || errno || id < 0 || id > 1000000) {
            fprintf(stderr, "qkern: --prune-layers: '%s' is not a list of layer numbers like 0,5,7\n", v);
            return 0;
        }
        ids[o->n_prune++] = (int)id;
        if (!*end) break;
        c = end;
    }
    qsort(ids, o->n_prune, sizeof *ids, cmp_int);
    size_t u = 0;
    for (size_t i = 0; i < o->n_prune; i++)
        if (!u || ids[u - 1] != ids[i]) ids[u++] = ids[i];
    o->n_prune = u;
    return 1;
}

/* Returns 1 on success, 0 on a usage error (message printed), -1 for --help. */
static int parse(int argc, char **argv, options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        /* as in llama-quantize, only "--" starts an option: a THREADS of -1 is positional */
        if (strncmp(a, "--", 2) != 0 && strcmp(a, "-h") != 0) {
            if (o->n_pos == 4) {
                fprintf(stderr, "qkern: too many arguments ('%s')\n", a);
                return 0;
            }
            o->pos[o->n_pos++] = a;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return -1;
        /* --opt=value and --opt value */
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        if (eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = 0;
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
        static const char *const flags[] = {
            "--pure", "--leave-output-tensor", "--allow-requantize", "--keep-split", "--dry-run", "--quiet", "--resume",
            "--stats"};
        int *const flag_dst[] = {&o->pure,    &o->leave_output, &o->allow_requantize, &o->keep_split,
                                 &o->dry_run, &o->quiet,        &o->resume,           &o->stats};
        int is_flag = 0;
        for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
            if (!strcmp(name, flags[k])) {
                *flag_dst[k] = 1;
                is_flag = 1;
            }
        if (is_flag) continue;
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "qkern: %s needs a value\n", name);
                return 0;
            }
            val = argv[++i];
        }
        if (!strcmp(name, "--imatrix")) {
            o->imatrix = val;
        } else if (!strcmp(name, "--include-weights") || !strcmp(name, "--exclude-weights")) {
            int inc = name[2] == 'i';
            size_t *n = inc ? &o->n_include : &o->n_exclude;
            if (*n == MAX_LIST) return fprintf(stderr, "qkern: %s: too many\n", name), 0;
            (inc ? o->include : o->exclude)[(*n)++] = val;
        } else if (!strcmp(name, "--output-tensor-type")) {
            if (!parse_type(name, val, &o->output_type)) return 0;
        } else if (!strcmp(name, "--token-embedding-type")) {
            if (!parse_type(name, val, &o->embd_type)) return 0;
        } else if (!strcmp(name, "--tensor-type")) {
            if (!add_override(o, name, val)) return 0;
        } else if (!strcmp(name, "--tensor-type-file")) {
            if (!add_override_file(o, val)) return 0;
        } else if (!strcmp(name, "--prune-layers")) {
            if (!parse_prune(o, val)) return 0;
        } else if (!strcmp(name, "--override-kv")) {
            if (o->n_kv == MAX_LIST) return fprintf(stderr, "qkern: --override-kv: more than %d\n", MAX_LIST), 0;
            o->kv[o->n_kv++] = val;
        } else if (!strcmp(name, "--max-buffer-size")) {
            long long mib;
            if (!cli_parse_int(name, val, 1, 1 << 30, &mib)) return 0;
            o->max_buffer = (uint64_t)mib << 20;
        } else if (!strcmp(name, "--mem-limit")) {
            if (!parse_size(name, val, &o->mem_limit)) return 0;
        } else if (!strcmp(name, "--split-max-size")) {
            if (!parse_size(name, val, &o->split_max)) return 0;
        } else if (!strcmp(name, "--device")) {
            o->device = val;
        } else if (!strcmp(name, "--report")) {
            o->report = val;
        } else if (!strcmp(name, "--target-bpw")) {
            char *end;
            errno = 0;
            o->target_bpw = strtod(val, &end);
            if (end == val || *end || errno || !(o->target_bpw > 0 && o->target_bpw <= 64)) {
                fprintf(stderr, "qkern: --target-bpw: '%s' is not a bits-per-weight value like 4.5\n", val);
                return 0;
            }
        } else if (!strcmp(name, "--target-size")) {
            if (!parse_size(name, val, &o->target_size)) return 0;
        } else if (!strcmp(name, "--target-types")) {
            if (!parse_type_list(o, val)) return 0;
        } else if (!strcmp(name, "--state-file")) {
            o->state_file = val;
        } else if (!strcmp(name, "--plot")) {
            o->plot = val;
        } else if (!strcmp(name, "--shard")) {
            if (!parse_shard(o, val)) return 0;
        } else {
            fprintf(stderr, "qkern: quantize: unknown option '%s' (qkern quantize --help)\n", name);
            return 0;
        }
    }
    if (o->n_include && o->n_exclude) {
        fprintf(stderr, "qkern: --include-weights and --exclude-weights cannot be used together\n");
        return 0;
    }
    if (o->target_bpw > 0 && o->target_size) {
        fprintf(stderr, "qkern: --target-bpw and --target-size cannot be used together\n");
        return 0;
    }
    if ((o->n_target_types || o->state_file) && !(o->target_bpw > 0) && !o->target_size) {
        fprintf(stderr, "qkern: --target-types and --state-file need --target-bpw or --target-size\n");
        return 0;
    }
    if (o->plot && !(o->target_bpw > 0) && !o->target_size) {
        fprintf(stderr, "qkern: --plot needs --target-bpw or --target-size (it draws the size target's curve)\n");
        return 0;
    }
    if (o->keep_split && o->split_max) {
        fprintf(stderr, "qkern: --keep-split and --split-max-size cannot be used together\n");
        return 0;
    }
    if (o->shard_count && (o->keep_split || o->split_max)) {
        fprintf(stderr, "qkern: --shard makes its own split: not with --keep-split or --split-max-size\n");
        return 0;
    }
    if (o->shard_count && (o->target_bpw > 0 || o->target_size) && (!o->state_file || o->plot)) {
        fprintf(stderr, "qkern: --shard with a size target needs --state-file (and no --plot): first each shard with "
                        "--dry-run --state-file S-I.bin, then qkern state-merge S.bin S-1.bin ..., then each shard "
                        "with --state-file S.bin\n");
        return 0;
    }
    return 1;
}

/* The positional arguments: IN [OUT] TYPE [THREADS]; TYPE is recognised by name. */
static int positional(const options *o, const char **in, const char **out, const qk_preset **ft, long long *threads,
                      char *default_out, size_t default_len) {
    if (o->n_pos < 2) {
        fprintf(stderr, "qkern: quantize needs IN.gguf and TYPE (qkern quantize --help)\n");
        return 0;
    }
    *in = o->pos[0];
    int type_at = 1;
    const qk_preset *f = NULL;
    if (qk_preset_from_name(o->pos[1], &f) != QK_OK && o->n_pos >= 3) {
        *out = o->pos[1];
        type_at = 2;
    }
    const char *tname = o->pos[type_at];
    if (qk_preset_from_name(tname, &f) != QK_OK) {
        char *end;
        long id = strtol(tname, &end, 10);
        if (end == tname || *end || qk_preset_from_id((int)id, &f) != QK_OK) f = NULL;
    }
    if (!f) {
        fprintf(stderr, "qkern: unknown TYPE '%s' (qkern quantize --help lists them)\n", tname);
        return 0;
    }
    *ft = f;
    if (o->n_pos > type_at + 2) {
        fprintf(stderr, "qkern: too many arguments after TYPE\n");
        return 0;
    }
    /* llama-quantize: 0 or less is all cores */
    if (o->n_pos == type_at + 2) {
        const char *v = o->pos[type_at + 1];
        char *end;
        errno = 0;
        *threads = strtoll(v, &end, 10);
        if (end == v || *end || errno || *threads > 4096) {
            fprintf(stderr, "qkern: THREADS: '%s' is not a thread count (up to 4096; 0: all cores)\n", v);
            return 0;
        }
        if (*threads < 0) *threads = 0;
    }
    if (type_at == 1) {
        /* llama-quantize's default name, in the input's folder */
        const char *slash = strrchr(*in, '/');
        int dir = slash ? (int)(slash - *in + 1) : 0;
        snprintf(default_out, default_len, "%.*sggml-model-%s.gguf", dir, *in, f->name);
        *out = default_out;
    }
    return 1;
}

static void print_plan(const qk_model_result *r, int target) {
    printf("%-40s %-22s %-8s    %-8s %12s  %s%s\n", "tensor", "shape", "from", "to", "bytes",
           target ? "   error        sens  " : "", "why");
    const size_t n = qk_model_result_count(r);
    for (size_t i = 0; i < n; i++) {
        const qk_model_tensor *t = qk_model_result_tensor(r, i);
        char shape[64], err[48] = "";
        cli_shape(shape, sizeof shape, t->n_dims, t->ne);
        /* sens "-": a pinned tensor's, which the target does not measure */
        if (target && t->target_sensitivity >= 0)
            snprintf(err, sizeof err, "%10.4g  %10.4g  ", t->target_error, t->target_sensitivity);
        else if (target)
            snprintf(err, sizeof err, "%10.4g  %10s  ", t->target_error, "-");
        printf("%-40s %-22s %-8s -> %-8s %12llu  %s%s%s\n", t->name, shape, qk_type_name(t->src_type),
               qk_type_name(t->type), (unsigned long long)t->bytes, err, qk_plan_reason_name(t->reason),
               t->imatrix ? ", imatrix" : "");
    }
    cli_totals *tot = cli_totals_new();
    if (!tot) return;
    for (size_t i = 0; i < n; i++) {
        const qk_model_tensor *t = qk_model_result_tensor(r, i);
        cli_totals_add(tot, t->type, t->ne, t->bytes);
    }
    cli_totals_print(tot);
    cli_totals_free(tot);
}

/* llama-quantize's warnings: a line per tensor whose type had to fall back, and a count. */
static void print_fallbacks(const qk_model_result *r) {
    const size_t n = qk_model_result_count(r);
    size_t n_fallback = 0;
    for (size_t i = 0; i < n; i++) {
        const qk_model_tensor *t = qk_model_result_tensor(r, i);
        if (t->reason != QK_PLAN_FALLBACK) continue;
        n_fallback++;
        qk_type_info want;
        int block = qk_type_get_info((int)t->planned_type, &want) == QK_OK ? want.block_elems : 0;
        fprintf(
            stderr,
            "qkern: warning: %-36s - ncols %6lld not divisible by %3d (required for type %s) %s-> falling back to %s\n",
            t->name, (long long)t->ne[0], block, qk_type_name(t->planned_type),
            t->type == QK_TYPE_F16 ? "(must use F16 due to unusual shape) " : "", qk_type_name(t->type));
    }
    if (n_fallback)
        fprintf(stderr, "qkern: warning: %zu of %zu tensor(s) required fallback quantization\n", n_fallback,
                qk_model_result_totals(r)->in_tensors);
}

/* The size target's outcome: budget, predicted size, the chosen mixture's error and the
 * preset's from the same measurements. */
static void print_target(const qk_model_totals *r, const qk_preset *ft, int shard) {
    if (r->matrix_part) {
        printf("target: part %d's errors are in the state file: %zu of %zu tensors' errors there now\n", shard,
               r->matrix_known, r->matrix_free);
        return;
    }
    if (shard) { /* the totals are the part's, the target's numbers the whole model's */
        printf("target: whole model: %llu bytes of tensor data allowed (metadata excluded), reachable %llu to %llu; "
               "chosen mixture's total weighted error %.6g\ntarget: this part %llu bytes; error matrix %s\n",
               (unsigned long long)r->target_budget, (unsigned long long)r->target_min_bytes,
               (unsigned long long)r->target_max_bytes, r->target_error, (unsigned long long)r->out_bytes,
               r->matrix_from_state ? "read from the state file" : "measured");
        return;
    }
    const double w = r->in_weights ? (double)r->in_weights : 1.0;
    printf("target: %.4f bpw (%llu bytes of tensor data; metadata excluded), reachable %.4f to %.4f bpw\n",
           8.0 * (double)r->target_budget / w, (unsigned long long)r->target_budget,
           8.0 * (double)r->target_min_bytes / w, 8.0 * (double)r->target_max_bytes / w);
    printf("target: chosen mixture %llu bytes, %.4f bpw, total weighted error %.6g", (unsigned long long)r->out_bytes,
           8.0 * (double)r->out_bytes / w, r->target_error);
    if (r->preset_error >= 0) printf("; %s's own mixture: %.6g", ft->name, r->preset_error);
    printf("\ntarget: error matrix %s\n", r->matrix_from_state ? "read from the state file" : "measured");
}

static void print_summary(const qk_model_totals *r, const char *out, int dry, int keep_split, int shard) {
    double in_mib = (double)r->in_bytes / 1048576.0, out_mib = (double)r->out_bytes / 1048576.0;
    double w = r->in_weights ? (double)r->in_weights : 1.0;
    printf("%s%zu tensors, %.3g M weights: %.2f MiB (%.4f bpw) -> %.2f MiB (%.4f bpw)%s", dry ? "plan: " : "",
           r->n_tensors, (double)r->in_weights / 1e6, in_mib, 8.0 * (double)r->in_bytes / w, out_mib,
           8.0 * (double)r->out_bytes / w, dry ? "\n" : "");
    if (!dry) {
        printf(" in %.2f s (%.1f M weights/s) -> %s", r->seconds,
               (double)r->quantized_weights / 1e6 / (r->seconds > 0 ? r->seconds : 1), out);
        if (shard)
            printf(" as part %d of %d, named ...-%05d-of-%05d.gguf", shard, r->n_splits, shard, r->n_splits);
        else if (r->n_splits > 1 || keep_split)
            printf(" as %d part(s), named ...-%05d-of-%05d.gguf", r->n_splits, 1, r->n_splits);
        printf("\n");
    }
}

typedef struct progress_state {
    int tty;
    double last;
} progress_state;

static void on_progress(void *user, const qk_model_progress *p) {
    progress_state *ps = user;
    if (ps->tty) {
        if (!p->tensor_done && p->seconds - ps->last < 0.1) return;
        ps->last = p->seconds;
        double rate = p->seconds > 0 ? (double)p->bytes_done / p->seconds : 0;
        double eta = rate > 0 ? (double)(p->bytes_total - p->bytes_done) / rate : 0;
        fprintf(stderr, "\r\033[K[%4zu/%zu] %-36.36s %8.1f/%.1f MiB %7.1f MiB/s ETA %4.0f s", p->tensor + 1,
                p->n_tensors, p->name, (double)p->bytes_done / 1048576.0, (double)p->bytes_total / 1048576.0,
                rate / 1048576.0, eta);
        if (p->tensor_done && p->tensor + 1 == p->n_tensors) fprintf(stderr, "\r\033[K");
    } else if (p->tensor_done) {
        fprintf(stderr, "[%4zu/%zu] %s  %.1f/%.1f MiB  %.1f s\n", p->tensor + 1, p->n_tensors, p->name,
                (double)p->bytes_done / 1048576.0, (double)p->bytes_total / 1048576.0, p->seconds);
    }
}

/* --stats's rows: the library's stages, then the rest of the wall time. `key` names a row in the
 * report. On a device with its own memory the quantize stage holds the copies both ways too; the
 * device rows split them (qk_model_device_stats). */
enum { STAT_ROWS = 6 };
typedef struct stat_row {
    const char *name, *key;
    double seconds;
    uint64_t bytes;
} stat_row;

static void stat_rows(const qk_model_stats *s, int on_device, stat_row rows[STAT_ROWS]) {
    const qk_model_stage_stats *st[] = {&s->read, &s->convert, &s->quantize, &s->measure, &s->write};
    static const char *const keys[] = {"read", "convert", "quantize", "measure", "write"};
    const char *names[] = {"read (input into memory)", "convert (requantize: dequantize)",
                           on_device ? "quantize (device: H2D + kernel + D2H)" : "quantize",
                           "measure (error, --report)", "write (data, flush, sync, rename)"};
    double staged = 0;
    for (int k = 0; k < STAT_ROWS - 1; k++) {
        rows[k] = (stat_row){names[k], keys[k], st[k]->seconds, st[k]->bytes};
        staged += st[k]->seconds;
    }
    const double other = s->wall_seconds - staged;
    rows[STAT_ROWS - 1] = (stat_row){"other (open, plan, headers)", "other", other > 0 ? other : 0.0, 0};
}

static double gb_per_s(uint64_t bytes, double seconds) { return seconds > 0 ? (double)bytes / 1e9 / seconds : 0.0; }

/* The input read: by the calling thread, and with several devices by their workers too. */
static uint64_t input_read(const qk_model_result *res, const qk_model_stats *s) {
    uint64_t bytes = s->read.bytes;
    const size_t nd = qk_model_result_device_count(res);
    for (size_t k = 0; nd > 1 && k < nd; k++) bytes += qk_model_result_device(res, k)->bytes;
    return bytes;
}

static void print_stats(const qk_model_result *res, int on_device) {
    qk_model_stats s;
    if (qk_model_result_stats(res, &s) != QK_OK) return;
    stat_row rows[STAT_ROWS];
    stat_rows(&s, on_device, rows);
    const double wall = s.wall_seconds > 0 ? s.wall_seconds : 1.0;
    fflush(stdout); /* after the summary line where both go to one terminal */
    fprintf(stderr, "%-40s %10s %7s %9s %14s\n", "stage", "seconds", "share", "GB/s", "bytes");
    for (int k = 0; k < STAT_ROWS; k++) {
        char rate[32] = "-";
        if (rows[k].bytes && rows[k].seconds > 0)
            snprintf(rate, sizeof rate, "%.3f", gb_per_s(rows[k].bytes, rows[k].seconds));
        fprintf(stderr, "%-40s %10.4f %6.1f%% %9s %14llu\n", rows[k].name, rows[k].seconds,
                100.0 * rows[k].seconds / wall, rate, (unsigned long long)rows[k].bytes);
    }
    fprintf(stderr, "%-40s %10.4f %6.1f%%\n", "total (wall)", s.wall_seconds, 100.0);
    fprintf(stderr, "input %.3f GB/s, output %.3f GB/s (tensor data read and written / wall time)\n",
            gb_per_s(input_read(res, &s), s.wall_seconds), gb_per_s(s.write.bytes, s.wall_seconds));
    const size_t nd = qk_model_result_device_count(res);
    if (nd > 1) /* the stages above are the calling thread's: its quantize is the wait for the devices */
        fprintf(stderr, "%zu devices (their busy time overlaps; quantize above is the writer's wait for them):\n", nd);
    fprintf(stderr, "%-10s %-12s %10s %14s %10s\n", "worker", "device", "steps", "bytes", "busy s");
    int device_times = 0;
    for (size_t k = 0; k < nd; k++) {
        const qk_model_device_stats *d = qk_model_result_device(res, k);
        fprintf(stderr, "%-10zu %-12s %10llu %14llu %10.4f\n", k, d->device, (unsigned long long)d->steps,
                (unsigned long long)d->bytes, d->seconds);
        device_times |= d->h2d_seconds + d->kernel_seconds + d->d2h_seconds > 0;
    }
    if (!device_times) return; /* the cpu quantizes in host memory: nothing to split */
    fprintf(stderr, "device time (overlaps the stages above):\n%-10s %-12s %10s %9s %10s %10s %9s\n", "worker",
            "device", "H2D s", "GB/s", "kernel s", "D2H s", "GB/s");
    for (size_t k = 0; k < nd; k++) {
        const qk_model_device_stats *d = qk_model_result_device(res, k);
        if (d->h2d_seconds + d->kernel_seconds + d->d2h_seconds <= 0) continue;
        fprintf(stderr, "%-10zu %-12s %10.4f %9.2f %10.4f %10.4f %9.2f\n", k, d->device, d->h2d_seconds,
                gb_per_s(d->h2d_bytes, d->h2d_seconds), d->kernel_seconds, d->d2h_seconds,
                gb_per_s(d->d2h_bytes, d->d2h_seconds));
    }
}

static void write_report_stats(FILE *f, const qk_model_result *res, int on_device) {
    qk_model_stats s;
    if (qk_model_result_stats(res, &s) != QK_OK) return;
    stat_row rows[STAT_ROWS];
    stat_rows(&s, on_device, rows);
    fprintf(f, "  \"stats\": {\"wall_seconds\": %.6f, \"in_gb_per_s\": %.6f, \"out_gb_per_s\": %.6f, ", s.wall_seconds,
            gb_per_s(input_read(res, &s), s.wall_seconds), gb_per_s(s.write.bytes, s.wall_seconds));
    fprintf(f, "\"quantize_includes_transfers\": %s, \"stages\": [", on_device ? "true" : "false");
    for (int k = 0; k < STAT_ROWS; k++) {
        fprintf(f, "%s\n    {\"stage\": \"%s\", \"seconds\": %.6f, \"bytes\": %llu, \"gb_per_s\": %.6f}", k ? "," : "",
                rows[k].key, rows[k].seconds, (unsigned long long)rows[k].bytes,
                gb_per_s(rows[k].bytes, rows[k].seconds));
    }
    fputs("\n  ]},\n", f);
    /* one row per device of the data pass, in --device's order */
    fputs("  \"devices\": [", f);
    const size_t nd = qk_model_result_device_count(res);
    for (size_t k = 0; k < nd; k++) {
        const qk_model_device_stats *d = qk_model_result_device(res, k);
        fprintf(f,
                "%s\n    {\"worker\": %zu, \"device\": \"%s\", \"steps\": %llu, \"bytes\": %llu, \"seconds\": %.6f, "
                "\"h2d_seconds\": %.6f, \"h2d_bytes\": %llu, \"kernel_seconds\": %.6f, \"d2h_seconds\": %.6f, "
                "\"d2h_bytes\": %llu}",
                k ? "," : "", k, d->device, (unsigned long long)d->steps, (unsigned long long)d->bytes, d->seconds,
                d->h2d_seconds, (unsigned long long)d->h2d_bytes, d->kernel_seconds, d->d2h_seconds,
                (unsigned long long)d->d2h_bytes);
    }
    fputs("\n  ],\n", f);
}

/* What a size target minimises, in the words the report and the plot use. */
static const char error_definition[] =
    "sens x sum w (x - q)^2 over the tensors the target chooses for, w the imatrix's mean x^2 of the value's column "
    "(1 without imatrix data); where the imatrix has means a (in_sum), sens x (sum (w - a^2) (x - q)^2 plus each "
    "row's (sum a (x - q))^2); sens: a tensor's gain to the residual stream (1 for tensors writing into it, through "
    "ffn_down for ffn_up/gate, through attn_output for attn_v)";

/* The size target's outcome and, with --plot, its curve and the presets priced beside it. */
static void write_report_target(FILE *f, const qk_model_result *res) {
    const qk_model_totals *r = qk_model_result_totals(res);
    const double w = r->in_weights ? (double)r->in_weights : 1.0;
    fprintf(f,
            "  \"target\": {\"budget\": %llu, \"min_bytes\": %llu, \"max_bytes\": %llu, \"bytes\": %llu, "
            "\"bpw\": %.6f, \"error\": %.9g, \"preset_error\": ",
            (unsigned long long)r->target_budget, (unsigned long long)r->target_min_bytes,
            (unsigned long long)r->target_max_bytes, (unsigned long long)r->out_bytes, 8.0 * (double)r->out_bytes / w,
            r->target_error);
    if (r->preset_error >= 0)
        fprintf(f, "%.9g", r->preset_error);
    else
        fputs("null", f);
    fputs(", \"error_definition\": ", f);
    bench_json_string(f, error_definition);
    fputs("},\n", f);
    const size_t nc = qk_model_result_curve_count(res), np = qk_model_result_preset_count(res);
    if (!nc) return;
    fputs("  \"pareto\": [\n", f);
    for (size_t i = 0; i < nc; i++) {
        const qk_model_curve_point *c = qk_model_result_curve(res, i);
        fprintf(f, "    {\"bpw\": %.6f, \"bytes\": %llu, \"error\": %.9g}%s\n", c->bpw, (unsigned long long)c->bytes,
                c->error, i + 1 < nc ? "," : "");
    }
    fputs("  ],\n  \"presets\": [", f);
    int first = 1;
    for (size_t i = 0; i < np; i++) {
        const qk_model_preset_point *p = qk_model_result_preset(res, i);
        if (!p->evaluated) continue;
        fprintf(f, "%s\n    {\"name\": \"%s\", \"bpw\": %.6f, \"bytes\": %llu, \"error\": %.9g, ", first ? "" : ",",
                p->preset->name, p->point.bpw, (unsigned long long)p->point.bytes, p->point.error);
        fprintf(f, "\"candidates_only\": %s, \"allocation_error\": ", p->candidates_only ? "true" : "false");
        if (p->allocation_error >= 0)
            fprintf(f, "%.9g}", p->allocation_error);
        else
            fputs("null}", f);
        first = 0;
    }
    fputs("\n  ],\n  \"presets_left_out\": [", f);
    first = 1;
    for (size_t i = 0; i < np; i++) {
        const qk_model_preset_point *p = qk_model_result_preset(res, i);
        if (p->evaluated) continue;
        fprintf(f, "%s\n    {\"name\": \"%s\", \"why\": ", first ? "" : ",", p->preset->name);
        bench_json_string(f, p->why);
        fputs("}", f);
        first = 0;
    }
    fputs("\n  ],\n", f);
}

/* Draws the size target's curve, its mixture and the presets into `path` (atomically, as the
 * report). Presets left out are named in the picture's notes and, unless quiet, on stderr. */
static int write_plot(const char *path, const qk_model_result *res, const char *in, const qk_preset *ft, int quiet) {
    const qk_model_totals *r = qk_model_result_totals(res);
    const size_t nc = qk_model_result_curve_count(res), np = qk_model_result_preset_count(res);
    double *cx = malloc((nc ? nc : 1) * sizeof *cx), *cy = malloc((nc ? nc : 1) * sizeof *cy);
    plot_mark *marks = malloc((np ? np : 1) * sizeof *marks);
    char(*lines)[320] = malloc((np + 1) * sizeof *lines);
    const char **notes = malloc((np + 1) * sizeof *notes);
    int ok = 0;
    if (!cx || !cy || !marks || !lines || !notes) {
        fprintf(stderr, "qkern: --plot %s: out of memory\n", path);
        goto done;
    }
    for (size_t i = 0; i < nc; i++) {
        cx[i] = qk_model_result_curve(res, i)->bpw;
        cy[i] = qk_model_result_curve(res, i)->error;
    }
    size_t nm = 0, nn = 0;
    for (size_t i = 0; i < np; i++) {
        const qk_model_preset_point *p = qk_model_result_preset(res, i);
        if (p->evaluated) {
            marks[nm++] = (plot_mark){p->point.bpw, p->point.error, p->preset->name, !p->candidates_only};
            continue;
        }
        if (!nn) {
            snprintf(lines[0], sizeof lines[0], "Presets left out (no exact price from this error matrix):");
            notes[nn] = lines[nn];
            nn++;
        }
        snprintf(lines[nn], sizeof lines[nn], "  %s: %s", p->preset->name, p->why);
        notes[nn] = lines[nn];
        nn++;
        if (!quiet) fprintf(stderr, "qkern: --plot: %s left out: %s\n", p->preset->name, p->why);
    }
    const double w = r->in_weights ? (double)r->in_weights : 1.0, bpw = 8.0 * (double)r->out_bytes / w;
    const char *base = strrchr(in, '/') ? strrchr(in, '/') + 1 : in;
    char title[512], subtitle[512], target[64];
    snprintf(title, sizeof title, "%s: total error against size, size target %.4g bpw over %s's plan", base, bpw,
             ft->name);
    snprintf(subtitle, sizeof subtitle, "error = %s", error_definition);
    snprintf(target, sizeof target, "target %.3f bpw", bpw);
    const plot_desc d = {
        .title = title,
        .subtitle = subtitle,
        .x_label = "bits per weight (tensor data of all tensors / weights)",
        .y_label = "total error, sens x sum w (x - q)^2",
        .curve_x = cx,
        .curve_y = cy,
        .n_curve = nc,
        .curve_legend = "the target's allocation at each budget",
        .point = {bpw, r->target_error, target, 0},
        .marks = marks,
        .n_marks = nm,
        .dot_legend = "preset, its types all candidates",
        .ring_legend = "preset using types that are no candidate",
        .notes = notes,
        .n_notes = nn,
    };
    FILE *f = safe_output_open("--plot", path);
    if (!f) goto done;
    if (plot_svg_write(f, &d) != 0) {
        safe_output_discard(f);
        fprintf(stderr, "qkern: --plot %s: no point to draw\n", path);
        goto done;
    }
    ok = safe_output_commit(f, "--plot", path);
done:
    free(cx);
    free(cy);
    free(marks);
    free(lines);
    free(notes);
    return ok;
}

/* Writes the report into f (from safe_output_open), closes it and renames it to `path`. */
static int write_report(FILE *f, const char *path, const qk_model_result *res, const char *in, const char *out,
                        const qk_preset *ft, const char *device, int on_device) {
    const qk_model_totals *r = qk_model_result_totals(res);
    /* file names as JSON strings: a path may hold quotes or backslashes */
    fputs("{\n  \"input\": ", f);
    bench_json_string(f, in);
    fputs(",\n  \"output\": ", f);
    bench_json_string(f, out);
    fprintf(f, ",\n  \"preset\": \"%s\",\n  \"file_type\": %d,\n", ft->name, ft->id);
    fprintf(f, "  \"device\": \"%s\",\n  \"seconds\": %.6f,\n  \"in_bytes\": %llu,\n  \"out_bytes\": %llu,\n", device,
            r->seconds, (unsigned long long)r->in_bytes, (unsigned long long)r->out_bytes);
    fprintf(f, "  \"weights\": %llu,\n  \"bpw\": %.6f,\n", (unsigned long long)r->in_weights,
            r->in_weights ? 8.0 * (double)r->out_bytes / (double)r->in_weights : 0.0);
    if (r->target_budget) write_report_target(f, res);
    write_report_stats(f, res, on_device);
    fputs("  \"tensors\": [\n", f);
    for (size_t i = 0; i < r->n_tensors; i++) {
        const qk_model_tensor *t = qk_model_result_tensor(res, i);
        fprintf(f, "    {\"name\": \"%s\", \"shape\": [", t->name);
        for (int d = 0; d < t->n_dims; d++) fprintf(f, "%s%lld", d ? ", " : "", (long long)t->ne[d]);
        fprintf(f, "], \"src_type\": \"%s\", \"type\": \"%s\", \"bytes\": %llu, \"imatrix\": %s, ",
                qk_type_name(t->src_type), qk_type_name(t->type), (unsigned long long)t->bytes,
                t->imatrix ? "true" : "false");
        if (t->rmse >= 0)
            fprintf(f, "\"weighted_rmse\": %.9g, \"weighted_rel_rmse\": %.9g, ", t->rmse, t->rel_rmse);
        else
            fprintf(f, "\"weighted_rmse\": null, \"weighted_rel_rmse\": null, ");
        if (r->target_budget) { /* the size target's: error as the matrix holds it, its factor */
            fprintf(f, "\"target_error\": %.17g, \"sens\": ", t->target_error);
            if (t->target_sensitivity >= 0)
                fprintf(f, "%.17g, ", t->target_sensitivity);
            else
                fputs("null, ", f);
        }
        fprintf(f, "\"seconds\": %.6f, \"why\": \"%s\"}%s\n", t->seconds, qk_plan_reason_name(t->reason),
                i + 1 < r->n_tensors ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    return safe_output_commit(f, "--report", path);
}

int cmd_quantize(int argc, char **argv) {
    options o;
    memset(&o, 0, sizeof o);
    o.output_type = o.embd_type = -1;
    int rc = 1, pr = parse(argc, argv, &o); /* misuse exits 1, as llama-quantize's does */
    const char *in = NULL, *out = NULL;
    const qk_preset *ft = NULL;
    long long threads = 0;
    char default_out[4096];
    qk_context *ctx = NULL, **contexts = NULL; /* ctx is contexts[0], --device's first */
    size_t n_contexts = 0;
    qk_model_result *res = NULL;
    FILE *report = NULL;
    if (pr < 0) {
        usage(stdout);
        rc = 0;
        goto done;
    }
    if (!pr || !positional(&o, &in, &out, &ft, &threads, default_out, sizeof default_out)) goto done;

    /* partial outputs removed on a signal, until the report is in place too */
    safe_output_install();
    int made = cli_contexts_create(o.device, (int)threads, &contexts, &n_contexts); /* it says why not */
    safe_output_arm();
    if (!made) goto done;
    ctx = contexts[0];
    /* made first: a report or plot that cannot be written stops the run before any output
     * exists. The plot is only tried here (one temporary at a time) and written at the end. */
    if (o.plot) {
        FILE *probe = safe_output_open("--plot", o.plot);
        if (!probe) goto done;
        safe_output_discard(probe);
    }
    if (o.report && !(report = safe_output_open("--report", o.report))) goto done;

    qk_model_quantize_desc q = qk_model_quantize_default_desc();
    q.input = in;
    q.output = out;
    q.preset = ft->name;
    q.pure = o.pure;
    q.leave_output_tensor = o.leave_output;
    q.allow_requantize = o.allow_requantize;
    q.output_tensor_type = o.output_type;
    q.token_embedding_type = o.embd_type;
    q.overrides = o.overrides;
    q.n_overrides = o.n_overrides;
    q.imatrix = o.imatrix;
    q.include_weights = o.include;
    q.n_include = o.n_include;
    q.exclude_weights = o.exclude;
    q.n_exclude = o.n_exclude;
    q.kv_overrides = o.kv;
    q.n_kv_overrides = o.n_kv;
    q.prune_layers = o.prune;
    q.n_prune_layers = o.n_prune;
    q.keep_split = o.keep_split;
    q.split_max_bytes = o.split_max;
    q.shard_index = o.shard_index;
    q.shard_count = o.shard_count;
    if (o.max_buffer) q.chunk_bytes = o.max_buffer < 64u << 20 ? (size_t)o.max_buffer : (size_t)64 << 20;
    q.dry_run = o.dry_run;
    q.resume = o.resume;
    q.mem_limit_bytes = o.mem_limit;
    if (o.resume) safe_output_resumable();
    q.measure_error = o.report != NULL;
    q.target_bpw = o.target_bpw;
    q.target_bytes = o.target_size;
    q.target_types = o.n_target_types ? o.target_types : NULL;
    q.n_target_types = o.n_target_types;
    q.state_file = o.state_file;
    q.target_curve = o.plot ? CURVE_BUDGETS : 0;
    q.extra_contexts = contexts + 1;
    q.n_extra_contexts = n_contexts - 1;
    progress_state ps = {isatty(STDERR_FILENO), -1.0};
    if (!o.quiet && !o.dry_run) {
        q.progress = on_progress;
        q.user = &ps;
    }
    qk_status st = qk_model_quantize(ctx, &q, &res);
    if (st != QK_OK) {
        if (ps.tty && q.progress) fprintf(stderr, "\r\033[K");
        fprintf(stderr, "qkern: quantize %s: %s%s\n", in, qk_last_error(ctx),
                o.dry_run  ? ""
                : o.resume ? " (no output written; the temporary and its journal are kept for --resume)"
                           : " (no output written)");
        rc = 1;
        goto done;
    }
    const char *notes = qk_model_result_notes(res);
    if (notes[0] && !o.quiet) fputs(notes, stderr);
    if (!o.quiet) print_fallbacks(res);
    const int target = o.target_bpw > 0 || o.target_size;
    if (o.dry_run) print_plan(res, target);
    if (target) print_target(qk_model_result_totals(res), ft, o.shard_index);
    print_summary(qk_model_result_totals(res), out, o.dry_run, o.keep_split, o.shard_index);
    rc = 0;
    qk_device_info di;
    const int known = qk_context_device(ctx, &di) == QK_OK, on_device = known && di.kind != QK_DEVICE_CPU;
    if (o.stats) print_stats(res, on_device);
    if (report) {
        if (!write_report(report, o.report, res, in, out, ft, known ? di.name : "?", on_device)) rc = 1;
        report = NULL;
    }
    if (o.plot) {
        if (write_plot(o.plot, res, in, ft, o.quiet))
            printf("plot: %zu points of the curve, %zu presets -> %s\n", qk_model_result_curve_count(res),
                   qk_model_result_preset_count(res), o.plot);
        else
            rc = 1;
    }
done:
    safe_output_discard(report);
    safe_output_restore();
    qk_model_result_free(res);
    cli_contexts_destroy(contexts, n_contexts);
    for (size_t i = 0; i < o.n_overrides; i++) free((char *)o.overrides[i].pattern);
    free(o.overrides);
    free(o.prune);
    return rc;
}

/* qkern state-merge OUT IN...: the first phase's state files of a sharded size target, one. */
int cmd_state_merge(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: qkern state-merge OUT.bin IN1.bin [IN2.bin ...]\n"
               "  Combines the state files that `qkern quantize --target-bpw B --shard I/N --dry-run --state-file\n"
               "  IN_I.bin` wrote, one per part, into OUT.bin, the whole error matrix: then each part runs with\n"
               "  --state-file OUT.bin and measures nothing. Refused: files of other models, imatrix data or\n"
               "  candidates, a part given twice, a part missing.\n");
        return 0;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: qkern state-merge OUT.bin IN1.bin [IN2.bin ...]   (qkern state-merge --help)\n");
        return 1;
    }
    size_t measured = 0;
    if (qk_model_state_merge(argv[1], (const char *const *)(argv + 2), (size_t)(argc - 2), &measured) != QK_OK)
        return cli_fail("state-merge", NULL);
    printf("state-merge: %d files, the errors of %zu tensors -> %s\n", argc - 2, measured, argv[1]);
    return 0;
}
