#include "model_quantize.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats.h"
#include "imatrix.h"
#include "internal.h"
#include "journal.h"
#include "pool_pick.h"
#include "shard.h"
#include "target.h"
#include "target_curve.h"
#include "target_sensitivity.h"

#define QK_QUANT_VERSION    2 /* GGML_QNT_VERSION */
#define DEFAULT_CHUNK_BYTES ((size_t)64 << 20)

/* Re-records the thread's context-less message (left by the file modules) on ctx. */
static qk_status forward_error(qk_context *ctx, qk_status st) {
    char msg[QK_ERROR_LEN];
    snprintf(msg, sizeof msg, "%s", qk_last_error(NULL));
    return qk_fail(ctx, st, "%s", msg);
}

/* Prefixes ctx's current message with the tensor (and expert) it happened in. */
static qk_status tensor_error(qk_context *ctx, qk_status st, const char *name, int64_t expert) {
    char msg[QK_ERROR_LEN];
    snprintf(msg, sizeof msg, "%s", qk_last_error(ctx));
    if (expert >= 0) return qk_fail(ctx, st, "tensor '%s', expert %lld: %s", name, (long long)expert, msg);
    return qk_fail(ctx, st, "tensor '%s': %s", name, msg);
}

void qk_model_quantize_params_init(qk_model_quantize_params *p) {
    memset(p, 0, sizeof *p);
    p->plan.output_tensor_type = -1;
    p->plan.token_embedding_type = -1;
}

void qk_model_quantize_result_free(qk_model_quantize_result *res) {
    if (!res) return;
    free(res->tensors);
    free(res->curve);
    free(res->presets);
    free(res->devices);
    memset(res, 0, sizeof *res);
}

static void add_note(qk_model_quantize_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_note(qk_model_quantize_result *res, const char *fmt, ...) {
    size_t used = strlen(res->notes);
    if (used + 1 >= sizeof res->notes) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->notes + used, sizeof res->notes - used, fmt, ap);
    va_end(ap);
}

/* ---- --override-kv ------------------------------------------------------------------------ */

/* One "KEY=TYPE:VALUE" (llama.cpp's string_parse_kv_override): llama.cpp's limits on key and
 * string lengths; a number that does not parse is refused here, where llama.cpp reads 0. */
typedef struct kv_override {
    char key[128];
    enum { KV_INT, KV_FLOAT, KV_BOOL, KV_STR } type;
    int64_t i;
    double f;
    int b;
    const char *s;
} kv_override;

static qk_status parse_kv_override(qk_context *ctx, const char *text, kv_override *o) {
    const char *eq = text ? strchr(text, '=') : NULL;
    if (!eq || eq == text || eq - text >= (ptrdiff_t)sizeof o->key)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "--override-kv '%s' is not KEY=TYPE:VALUE (KEY of 1 to 127 bytes)",
                       text ? text : "(null)");
    memcpy(o->key, text, (size_t)(eq - text));
    o->key[eq - text] = 0;
    const char *v = eq + 1, *num;
    char *end;
    errno = 0;
    if (!strncmp(v, "int:", 4)) {
        o->type = KV_INT;
        num = v + 4;
        o->i = strtoll(num, &end, 10);
    } else if (!strncmp(v, "float:", 6)) {
        o->type = KV_FLOAT;
        num = v + 6;
        o->f = strtod(num, &end);
    } else if (!strncmp(v, "bool:", 5)) {
        o->type = KV_BOOL;
        o->b = !strcmp(v + 5, "true");
        if (!o->b && strcmp(v + 5, "false"))
            return qk_fail(ctx, QK_ERR_INVALID_ARG, "--override-kv '%s': a bool is true or false", text);
        return QK_OK;
    } else if (!strncmp(v, "str:", 4)) {
        o->type = KV_STR;
        o->s = v + 4;
        if (strlen(o->s) > 127)
            return qk_fail(ctx, QK_ERR_INVALID_ARG, "--override-kv '%s': a string value is at most 127 bytes", text);
        return QK_OK;
    } else {
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "--override-kv '%s': TYPE is int, float, bool or str", text);
    }
    if (end == num || *end || errno || (o->type == KV_INT && o->i == INT64_MIN))
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "--override-kv '%s': '%s' is not a%s number", text, num,
                       o->type == KV_INT ? "n integer" : "");
    return QK_OK;
}

qk_status qk_model_check_kv_override(qk_context *ctx, const char *text) {
    kv_override o;
    return parse_kv_override(ctx, text, &o);
}

/* ---- model facts for the mixture rules ---------------------------------------------------- */

/* An integer the rules read: llama.cpp's loader sees the --override-kv value instead of the file's. */
static int64_t model_int(const qk_gguf *in, const qk_model_quantize_params *p, const char *key) {
    int64_t v = qk_gguf_get_int(in, key, 0);
    for (size_t i = 0; i < p->n_kv_overrides; i++) {
        kv_override o;
        if (parse_kv_override(NULL, p->kv_overrides[i], &o) == QK_OK && o.type == KV_INT && !strcmp(o.key, key))
            v = o.i;
    }
    return v;
}

static void read_model_facts(const qk_gguf *in, const qk_model_quantize_params *p, char *arch, size_t arch_len,
                             qk_plan_model *m) {
    char key[256];
    if (!qk_gguf_get_string(in, "general.architecture", arch, arch_len)) arch[0] = 0;
    m->arch = arch;
#define ARCH_INT(field, suffix)                                                                                        \
    snprintf(key, sizeof key, "%s." suffix, arch);                                                                     \
    m->field = model_int(in, p, key)
    ARCH_INT(n_layer, "block_count");
    ARCH_INT(n_head, "attention.head_count");
    ARCH_INT(n_head_kv, "attention.head_count_kv");
    ARCH_INT(n_expert, "expert_count");
#undef ARCH_INT
}

/* ---- --prune-layers ------------------------------------------------------------------------ */

/* The block number of the first "blk.N." anywhere in a name (llama.cpp searches for it), with
 * where its digits are; -1 if none. */
static long name_block(const char *name, size_t *at, size_t *len) {
    for (const char *p = strstr(name, "blk."); p; p = strstr(p + 1, "blk.")) {
        const char *d = p + 4, *e = d;
        while (isdigit((unsigned char)*e)) e++;
        if (e == d || *e != '.' || e - d > 9) continue;
        *at = (size_t)(d - name);
        *len = (size_t)(e - d);
        return strtol(d, NULL, 10);
    }
    return -1;
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static int is_pruned(const qk_model_quantize_params *p, long b) {
    for (size_t i = 0; i < p->n_prune_layers; i++)
        if (p->prune_layers[i] == b) return 1;
    return 0;
}

/* llama-quantize's renumbering: blocks below the first pruned one keep their number, the
 * others that stay are numbered on from there in order. new_no[k] is -1 for a pruned block;
 * returns the blocks left. */
static long renumber_blocks(const qk_model_quantize_params *p, const long *blocks, size_t n, long *new_no) {
    long first = LONG_MAX, next = 0;
    for (size_t i = 0; i < p->n_prune_layers; i++)
        if (p->prune_layers[i] < first) first = p->prune_layers[i];
    for (size_t k = 0; k < n; k++) {
        if (is_pruned(p, blocks[k])) {
            new_no[k] = -1;
        } else if (blocks[k] < first) {
            new_no[k] = blocks[k];
            next = blocks[k] + 1;
        } else {
            new_no[k] = next++;
        }
    }
    return next;
}

/* ---- imatrix matching (GGUF.md §6) ------------------------------------------------------------ */

static int is_token_embedding(const char *name) {
    return !strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight");
}

/* Finds and checks each converted tensor's imatrix entry; fills `found` (NULL where none). All n
 * tensors are checked, as in a single run; notes name only those of [lo, hi), the ones written. */
static qk_status match_imatrix(qk_context *ctx, const qk_imatrix *im, const qk_plan_options *opt, qk_model_tensor *ts,
                               const char *const *in_names, size_t n, size_t lo, size_t hi,
                               const qk_imatrix_entry **found, qk_model_quantize_result *res) {
    size_t matched = 0, candidates = 0;
    for (size_t i = 0; i < n; i++) {
        qk_model_tensor *t = &ts[i];
        found[i] = NULL;
        const qk_format *f = qk_format_of(t->type);
        if (!t->converted || f->family == QK_FAMILY_FLOAT) continue;
        candidates++;
        const qk_imatrix_entry *e = im ? qk_imatrix_find(im, in_names[i]) : NULL;
        if (e) {
            int64_t want = t->ne[0] * t->ne[2];
            if (e->n_mat * e->cols != want) {
                if (is_token_embedding(t->name)) {
                    if (i >= lo && i < hi) add_note(res, "imatrix entry for %s has the wrong size: ignored\n", t->name);
                    continue;
                }
                return qk_fail(ctx, QK_ERR_SHAPE,
                               "imatrix entry '%s' has %lld values but the tensor needs %lld (%lld columns x %lld "
                               "experts): is the imatrix from a different model?",
                               t->name, (long long)(e->n_mat * e->cols), (long long)want, (long long)t->ne[0],
                               (long long)t->ne[2]);
            }
            if (f->uses_imatrix) {
                found[i] = e;
                t->imatrix = 1;
            }
            matched++;
            continue;
        }
        if (qk_plan_needs_imatrix(opt, t->name, t->type) || f->needs_imatrix)
            return qk_fail(ctx, QK_ERR_NEEDS_IMATRIX, "tensor '%s' is to become %s, which needs imatrix data, and %s",
                           t->name, qk_type_name(t->type),
                           im ? "the imatrix has no entry for it" : "no --imatrix was given");
        if (im && f->uses_imatrix && i >= lo && i < hi)
            add_note(res, "no imatrix data for %s: quantized without weights\n", t->name);
    }
    if (im && im->n_entries > 0 && candidates > 0 && matched == 0)
        return qk_fail(ctx, QK_ERR_VALUE,
                       "none of the imatrix's %zu entries matches a tensor of this model (first: '%s'): is it from "
                       "a different model?",
                       im->n_entries, im->entries[0].name);
    return QK_OK;
}

/* ---- output layout ------------------------------------------------------------------------ */

/* The name of output part k (0-based) of `parts`: OUT itself, or, as llama-quantize names split
 * output, out.gguf (or out-00001-of-0000M.gguf) -> out-0000k-of-0000N.gguf; with --keep-split
 * llama-quantize uses the split name even for one part, and so does a shard (split_named). */
static void output_part_path(char *path, size_t len, const char *output, int split_named, int parts, int k) {
    if (parts == 1 && !split_named) {
        snprintf(path, len, "%s", output);
        return;
    }
    char prefix[4096];
    int no, count;
    if (!qk_gguf_split_name_parse(output, prefix, sizeof prefix, &no, &count)) {
        snprintf(prefix, sizeof prefix, "%s", output);
        size_t n = strlen(prefix);
        if (n > 5 && !strcmp(prefix + n - 5, ".gguf")) prefix[n - 5] = 0;
    }
    qk_gguf_split_name(path, len, prefix, k + 1, parts);
}

/* Where a file that does not exist yet would be created: its folder resolved, then its name. */
static char *resolve_new_file(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    char *real_dir = dir ? realpath(dir, NULL) : NULL;
    free(dir);
    if (!real_dir) return NULL;
    const char *base = slash ? slash + 1 : path;
    size_t len = strlen(real_dir) + 1 + strlen(base) + 1;
    char *full = malloc(len);
    if (full) snprintf(full, len, "%s%s%s", real_dir, strcmp(real_dir, "/") ? "/" : "", base);
    free(real_dir);
    return full;
}

/* 1 if `out` names the existing file `in`. Comparing the names as given is not enough: one file
 * has many (dir/../in, symlinks, hard links), but only one device and inode. */
static int same_file(const char *out, const char *in) {
    struct stat so, si;
    if (stat(in, &si) != 0) return 0; /* nothing there to lose */
    if (stat(out, &so) == 0) return so.st_dev == si.st_dev && so.st_ino == si.st_ino;
    /* No output yet, so no inode: compare where it would be created with where `in` is. */
    char *o = resolve_new_file(out), *i = realpath(in, NULL);
    int same = o && i && !strcmp(o, i);
    free(o);
    free(i);
    return same;
}

/* Refuses, before anything is created, an output part that is a file this run reads. The output
 * is renamed into place at the end, so IN -> IN would succeed and leave only the quantized
 * model, and an imatrix written over is lost too; through a symlink or a hard link the output
 * would take the place of a name the user knows as the input. */
static qk_status check_output_not_input(qk_context *ctx, const qk_model_quantize_params *p, int out_parts) {
    /* the input's parts, named as qk_gguf_open finds them */
    char *in_prefix = strdup(p->input);
    if (!in_prefix) return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory");
    int no, in_parts = 1;
    const int split_in = qk_gguf_split_name_parse(p->input, in_prefix, strlen(p->input) + 1, &no, &in_parts);
    char out[4200], in[4200];
    qk_status st = QK_OK;
    for (int k = 0; k < out_parts && st == QK_OK; k++) {
        if (p->shard_count && k != p->shard_index - 1) continue; /* another run writes it */
        output_part_path(out, sizeof out, p->output, p->keep_split || p->shard_count, out_parts, k);
        for (int j = 0; j < in_parts && st == QK_OK; j++) {
            if (split_in)
                qk_gguf_split_name(in, sizeof in, in_prefix, j + 1, in_parts);
            else
                snprintf(in, sizeof in, "%s", p->input);
            if (same_file(out, in))
                st = qk_fail(ctx, QK_ERR_INVALID_ARG,
                             "output '%s' is the input model '%s' (same file); choose another output name", out, in);
        }
        if (st == QK_OK && p->imatrix_path && same_file(out, p->imatrix_path))
            st = qk_fail(ctx, QK_ERR_INVALID_ARG,
                         "output '%s' is the imatrix file '%s' (same file); choose another output name", out,
                         p->imatrix_path);
    }
    free(in_prefix);
    return st;
}

static qk_status set_kv_override(qk_gguf_writer *w, const kv_override *o) {
    switch (o->type) {
    case KV_INT: return qk_gguf_writer_set_u32(w, o->key, (uint32_t)llabs((long long)o->i));
    case KV_FLOAT: {
        float f = (float)o->f;
        return qk_gguf_writer_set_kv(w, o->key, QK_GGUF_FLOAT32, &f, sizeof f);
    }
    case KV_BOOL: {
        uint8_t b = (uint8_t)o->b;
        return qk_gguf_writer_set_kv(w, o->key, QK_GGUF_BOOL, &b, 1);
    }
    case KV_STR: return qk_gguf_writer_set_string(w, o->key, o->s);
    }
    return QK_ERR_INVALID_ARG;
}

/* block_count: the blocks left after --prune-layers, or -1 (unchanged). */
static qk_status setup_metadata(qk_context *ctx, qk_gguf_writer *w, const qk_gguf *in,
                                const qk_model_quantize_params *p, const qk_imatrix *im, long block_count) {
    size_t nkv = qk_gguf_kv_count(in);
    qk_status st = QK_OK;
    for (size_t i = 0; i < nkv && st == QK_OK; i++) {
        const qk_gguf_kv *kv = qk_gguf_kv_at(in, i);
        if (!strncmp(kv->key, "split.", 6)) continue;
        st = qk_gguf_writer_copy_kv(w, kv);
    }
    /* set as llama-quantize sets them, even where nothing is converted: a set pair moves to the end */
    if (st == QK_OK) st = qk_gguf_writer_set_u32(w, "general.quantization_version", QK_QUANT_VERSION);
    if (st == QK_OK && !p->plan.ftype->only_copy)
        st = qk_gguf_writer_set_u32(w, "general.file_type", (uint32_t)p->plan.ftype->id);
    const qk_gguf_kv *ft = qk_gguf_find_kv(in, "general.file_type");
    int64_t in_ft;
    if (st == QK_OK && p->plan.ftype->only_copy && ft && qk_gguf_kv_int(ft, &in_ft) == QK_OK)
        st = qk_gguf_writer_set_u32(w, "general.file_type", (uint32_t)in_ft); /* COPY keeps the input's */
    for (size_t i = 0; i < p->n_kv_overrides && st == QK_OK; i++) {
        kv_override o;
        st = parse_kv_override(ctx, p->kv_overrides[i], &o);
        if (st) return st;
        st = set_kv_override(w, &o);
    }
    if (st == QK_OK && im) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", p->imatrix_path);
        st = qk_gguf_writer_set_string(w, "quantize.imatrix.file", buf);
        if (st == QK_OK && im->dataset && im->dataset[0]) {
            snprintf(buf, sizeof buf, "%s", im->dataset);
            st = qk_gguf_writer_set_string(w, "quantize.imatrix.dataset", buf);
        }
        if (st == QK_OK) st = qk_gguf_writer_set_u32(w, "quantize.imatrix.entries_count", (uint32_t)im->n_entries);
        if (st == QK_OK && im->chunk_count > 0)
            st = qk_gguf_writer_set_u32(w, "quantize.imatrix.chunks_count", (uint32_t)im->chunk_count);
    }
    if (st == QK_OK && block_count >= 0) {
        char arch[128], key[160];
        if (!qk_gguf_get_string(in, "general.architecture", arch, sizeof arch)) arch[0] = 0;
        snprintf(key, sizeof key, "%s.block_count", arch);
        st = qk_gguf_writer_set_u32(w, key, (uint32_t)block_count);
    }
    return st == QK_OK ? QK_OK : forward_error(ctx, st);
}

/* Assigns output parts: by input part (--keep-split), by size (--split-max-size), or one. */
static int assign_splits(qk_model_tensor *ts, const size_t *src_split, size_t n, const qk_model_quantize_params *p) {
    int parts = 1;
    if (p->keep_split) {
        for (size_t i = 0; i < n; i++) {
            ts[i].split = (int)src_split[i];
            if ((int)src_split[i] + 1 > parts) parts = (int)src_split[i] + 1;
        }
        return parts;
    }
    uint64_t used = 0;
    size_t in_part = 0;
    for (size_t i = 0; i < n; i++) {
        if (p->split_max_bytes && in_part > 0 && used + ts[i].bytes > p->split_max_bytes) {
            parts++;
            used = 0;
            in_part = 0;
        }
        ts[i].split = parts - 1;
        used += ts[i].bytes;
        in_part++;
    }
    return parts;
}

/* ---- the data pass ----------------------------------------------------------------------- */

/* One step of a tensor: `rows` rows from `first_row` (rows of all experts counted together),
 * covering `mats` whole experts from expert first_row / rows_per_mat, or part of one. Row r of
 * the step is weighted by imatrix + (r / rows_per_im) * cols (imatrix_len values), or not; means
 * (the entry's mean activations, or NULL) lie at the same offsets. */
typedef struct step {
    int64_t first_row, rows, mats;
    const float *imatrix, *means;
    int64_t imatrix_len, rows_per_im;
} step;

/* The input bytes of step sp of tensor t (its rows in the source type). */
static uint64_t step_src_bytes(const qk_model_tensor *t, const step *sp) {
    return (uint64_t)sp->rows * qk_type_row_bytes(t->src_type, t->ne[0]);
}

/* A step queued on one of the device's queues (the overlapped path): its pinned buffers, and
 * what writing its output needs once it is done. */
typedef struct slot {
    void *src, *dst; /* pinned, buf_bytes each */
    size_t i;        /* tensor index */
    qk_model_tensor *t;
    qk_gguf_writer *w;
    step sp;
    int last;  /* the tensor's last step */
    double t0; /* when the tensor started */
} slot;

typedef struct stream_state {
    qk_context *ctx;
    const qk_model_quantize_params *p;
    size_t chunk_bytes;
    unsigned char *src_f32; /* dequantized requantize input / f32 view for error measurement */
    unsigned char *dst;     /* converted rows */
    float *check;           /* dequantized output for error measurement */
    uint64_t bytes_done, bytes_total;
    double t0;
    size_t n_tensors;
    /* Step k goes to queue and slot k % QK_QUEUES; completing the oldest first keeps the
     * output in order. */
    slot slots[QK_QUEUES];
    uint64_t queued, completed;
    qk_quantize_error acc;      /* of the tensor whose steps are being completed */
    double last_done;           /* when the previous tensor's last bytes were written */
    qk_model_stats *stats;      /* the result's: the data pass's time per stage */
    const qk_gguf *in;          /* the input, whose pages each step releases once read */
    qk_model_device_stats *dev; /* the row of ctx's device: the steps it converted */
} stream_state;

/* Adds the time since t0 and `bytes` to a stage; returns now, the next stage's start. The
 * stages follow one another on this thread, so their times add up to at most the pass's. */
static double stage_end(qk_model_stage_stats *stage, double t0, uint64_t bytes) {
    const double now = qk_seconds();
    stage->seconds += now - t0;
    stage->bytes += bytes;
    return now;
}

/* The read stage where the host reads the mapped input in place: one load a page takes the
 * page faults (the disk) here, so that the stage that uses the bytes next is not charged for
 * them. */
static void touch_pages(const void *data, size_t bytes) {
    const volatile unsigned char *b = data;
    for (size_t off = 0; off < bytes; off += 4096) (void)b[off];
    if (bytes) (void)b[bytes - 1];
}

/* Every conversion goes through the public calls on the run's context: where its device has
 * no kernel for a type, the core runs the call on the cpu (with a notice) or refuses it for a
 * device the caller named; the cpu reference defines the bytes either way. */
static qk_status run_quantize(stream_state *s, const qk_quantize_desc *q) { return qk_quantize(s->ctx, q); }

static qk_status run_dequantize(stream_state *s, const qk_dequantize_desc *d) { return qk_dequantize(s->ctx, d); }

static qk_status check_cancel(stream_state *s) {
    if ((s->p->cancel && *s->p->cancel) || (s->p->cancel_fn && s->p->cancel_fn(s->p->user)))
        return qk_fail(s->ctx, QK_ERR_IO, "interrupted");
    return QK_OK;
}

static void report(stream_state *s, size_t i, const char *name, int done) {
    if (!s->p->progress) return;
    qk_model_progress pr = {i, s->n_tensors, name, s->bytes_done, s->bytes_total, qk_seconds() - s->t0, done};
    s->p->progress(s->p->user, &pr);
}

static qk_status copy_tensor(stream_state *s, qk_gguf_writer *w, const qk_gguf_tensor *src, size_t i) {
    uint64_t off = 0;
    while (off < src->bytes) {
        qk_status st = check_cancel(s);
        if (st) return st;
        size_t bytes = src->bytes - off < s->chunk_bytes ? (size_t)(src->bytes - off) : s->chunk_bytes;
        double t = qk_seconds();
        touch_pages(src->data + off, bytes);
        t = stage_end(&s->stats->read, t, bytes);
        st = qk_gguf_writer_write(w, src->data + off, bytes);
        stage_end(&s->stats->write, t, bytes);
        if (st) return forward_error(s->ctx, st);
        qk_gguf_release_bytes(s->in, src, off, bytes);
        off += bytes;
        s->bytes_done += bytes;
        report(s, i, src->name, 0);
    }
    return QK_OK;
}

/* Widens `rows` rows of src (any type) to f32 in out. */
static qk_status to_f32(stream_state *s, qk_type type, const void *src, size_t src_bytes, int64_t rows, int64_t cols,
                        float *out) {
    if (type == QK_TYPE_F32) {
        memcpy(out, src, (size_t)(rows * cols) * sizeof(float));
        return QK_OK;
    }
    qk_dequantize_desc d = qk_dequantize_default_desc();
    d.type = type;
    d.dst_type = QK_TYPE_F32;
    d.rows = rows;
    d.cols = cols;
    d.src = qk_host((void *)src, src_bytes);
    d.dst = qk_host(out, (size_t)(rows * cols) * sizeof(float));
    return run_dequantize(s, &d);
}

/* A step's error sums into *e. Each step has sums of its own, added to the tensor's in output
 * order by whoever writes the step: the same sums, in the same order, whichever device converted
 * it (the report's rmse does not depend on the devices either). */
static qk_status measure(stream_state *s, const qk_model_tensor *t, const void *src, size_t src_bytes, const void *out,
                         size_t out_bytes, const step *sp, qk_quantize_error *e) {
    int64_t cols = t->ne[0], rows = sp->rows;
    float *x = (float *)s->src_f32;
    *e = (qk_quantize_error){0, 0, 0, 0, 0};
    qk_status st = to_f32(s, t->src_type, src, src_bytes, rows, cols, x);
    if (st == QK_OK) st = to_f32(s, t->type, out, out_bytes, rows, cols, s->check);
    if (st) return st;
    qk_weighted_error(x, s->check, rows, cols, sp->imatrix, NULL, sp->rows_per_im, e);
    return QK_OK;
}

static void add_error(qk_quantize_error *acc, const qk_quantize_error *e) {
    acc->err += e->err;
    acc->signal += e->signal;
    acc->weight += e->weight;
    acc->centered += e->centered;
    acc->bias += e->bias;
}

/* qk_quantize refused a chunk for a NaN/Inf: find it again to name its place in the tensor. */
static qk_status locate_bad_value(stream_state *s, const qk_model_tensor *t, const void *src, qk_type type,
                                  int64_t rows, int64_t first_row) {
    const int64_t cols = t->ne[0], rows_per_mat = t->ne[1], n_mat = t->ne[2] * t->ne[3];
    float *x = (float *)s->src_f32;
    if (src != x && to_f32(s, type, src, (size_t)rows * qk_type_row_bytes(type, cols), rows, cols, x) != QK_OK)
        return tensor_error(s->ctx, QK_ERR_VALUE, t->name, -1);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            float v = x[r * cols + c];
            if (isfinite(v)) continue;
            const char *what = isnan(v) ? "NaN" : "Inf";
            const int64_t row = first_row + r; /* within the whole tensor */
            if (n_mat > 1)
                return qk_fail(s->ctx, QK_ERR_VALUE, "tensor '%s': expert %lld, row %lld, column %lld is %s", t->name,
                               (long long)(row / rows_per_mat), (long long)(row % rows_per_mat), (long long)c, what);
            return qk_fail(s->ctx, QK_ERR_VALUE, "tensor '%s': row %lld, column %lld is %s", t->name, (long long)row,
                           (long long)c, what);
        }
    return tensor_error(s->ctx, QK_ERR_VALUE, t->name, -1);
}

/* Rows per step: bounded by the chunk size of the largest per-row buffer. */
static int64_t rows_per_step(const stream_state *s, const qk_model_tensor *t) {
    const int64_t cols = t->ne[0];
    size_t widest = qk_type_row_bytes(t->src_type, cols), dst_row = qk_type_row_bytes(t->type, cols);
    if (dst_row > widest) widest = dst_row;
    if ((size_t)cols * sizeof(float) > widest) widest = (size_t)cols * sizeof(float);
    int64_t rows = (int64_t)(s->chunk_bytes / widest);
    return rows < 1 ? 1 : rows;
}

/* The step from `row`. Whole experts go together when they fit a step, each weighted by its own
 * imatrix slice (qk_quantize takes one slice per equal group of rows): one device call per step
 * rather than per expert. A legacy imatrix entry is one flat vector of ne[0] * ne[2] values. */
static step plan_step(const qk_model_tensor *t, const qk_imatrix_entry *ie, int64_t row, int64_t step_rows) {
    const int64_t cols = t->ne[0], rows_per_mat = t->ne[1], n_mat = t->ne[2] * t->ne[3];
    const int64_t m = row / rows_per_mat, r0 = row % rows_per_mat;
    step sp = {row, 0, 1, NULL, NULL, 0, 0};
    if (r0 == 0 && rows_per_mat <= step_rows) {
        sp.mats = step_rows / rows_per_mat;
        if (sp.mats > n_mat - m) sp.mats = n_mat - m;
        if (sp.mats > t->ne[2] - m % t->ne[2]) sp.mats = t->ne[2] - m % t->ne[2]; /* slices stay contiguous */
        sp.rows = sp.mats * rows_per_mat;
    } else {
        sp.rows = rows_per_mat - r0 < step_rows ? rows_per_mat - r0 : step_rows;
    }
    if (ie) {
        sp.imatrix = ie->values + (t->ne[2] > 1 ? (m % t->ne[2]) * cols : 0);
        sp.imatrix_len = cols * (t->ne[2] > 1 ? sp.mats : 1);
        if (ie->means) sp.means = ie->means + (sp.imatrix - ie->values);
    }
    sp.rows_per_im = t->ne[2] > 1 ? rows_per_mat : sp.rows;
    /* a step is whole experts or part of one, inside the tensor, and its imatrix slices inside
     * the entry (match_imatrix checked the entry's size against the tensor) */
    assert(sp.rows > 0 && row + sp.rows <= rows_per_mat * n_mat);
    assert(sp.mats == 1 || sp.rows == sp.mats * rows_per_mat);
    assert(!ie || (sp.imatrix >= ie->values && sp.imatrix + sp.imatrix_len <= ie->values + ie->n_mat * ie->cols));
    return sp;
}

/* The expert a step starts in, for messages; -1 for a tensor of one matrix. */
static int64_t expert_of(const qk_model_tensor *t, const step *sp) {
    return t->ne[2] * t->ne[3] > 1 ? sp->first_row / t->ne[1] : -1;
}

/* A step's quantize call without its operands: src and dst are the caller's (host memory, or
 * device buffers for the error matrix), of src_bytes() and dst_bytes(). */
static qk_quantize_desc step_desc(const qk_model_tensor *t, const step *sp, qk_type src_type) {
    qk_quantize_desc q = qk_quantize_default_desc();
    q.type = t->type;
    q.src_type = src_type;
    q.rows = sp->rows;
    q.cols = t->ne[0];
    if (qk_format_of(t->type)->uses_imatrix) { /* the error matrix passes its weights on its own */
        q.imatrix = sp->imatrix;
        q.imatrix_len = sp->imatrix_len;
    }
    return q;
}

static size_t desc_src_bytes(const qk_quantize_desc *q) {
    return (size_t)q->rows * qk_type_row_bytes(q->src_type, q->cols);
}
static size_t desc_dst_bytes(const qk_quantize_desc *q) {
    return (size_t)q->rows * qk_type_row_bytes(q->type, q->cols);
}

/* With measure_error, a converted step's error against `src` (its input as read) into *e. */
static qk_status measure_step(stream_state *s, const qk_model_tensor *t, const step *sp, const void *src,
                              const void *dst, qk_quantize_error *e) {
    *e = (qk_quantize_error){0, 0, 0, 0, 0};
    if (!s->p->measure_error) return QK_OK;
    const size_t src_bytes = (size_t)step_src_bytes(t, sp);
    const size_t dst_bytes = (size_t)sp->rows * qk_type_row_bytes(t->type, t->ne[0]);
    const double t0 = qk_seconds();
    qk_status st = measure(s, t, src, src_bytes, dst, dst_bytes, sp, e);
    stage_end(&s->stats->measure, t0, src_bytes);
    return st ? tensor_error(s->ctx, st, t->name, expert_of(t, sp)) : QK_OK;
}

/* A converted step's output is measured: write it, count it. */
static qk_status write_step(stream_state *s, qk_gguf_writer *w, size_t i, const qk_model_tensor *t, const step *sp,
                            const void *dst) {
    const size_t src_bytes = (size_t)step_src_bytes(t, sp);
    const size_t dst_bytes = (size_t)sp->rows * qk_type_row_bytes(t->type, t->ne[0]);
    const double t0 = qk_seconds();
    qk_status st = qk_gguf_writer_write(w, dst, dst_bytes);
    stage_end(&s->stats->write, t0, dst_bytes);
    if (st) return forward_error(s->ctx, st);
    s->bytes_done += src_bytes;
    report(s, i, t->name, 0);
    return QK_OK;
}

/* A step's output is ready: measure it against `src` (its input as read), write it, count it. */
static qk_status finish_step(stream_state *s, qk_gguf_writer *w, size_t i, const qk_model_tensor *t, const step *sp,
                             const void *src, const void *dst) {
    qk_quantize_error e;
    qk_status st = measure_step(s, t, sp, src, dst, &e);
    if (st) return st;
    add_error(&s->acc, &e);
    return write_step(s, w, i, t, sp, dst);
}

/* A tensor's last bytes are written. Its time runs from its start, or from the previous
 * tensor's end where the two overlapped, so that the tensors' times add up to the pass's. */
static void tensor_done(stream_state *s, size_t i, qk_model_tensor *t, double t0) {
    if (s->p->measure_error && s->acc.weight > 0) {
        t->rmse = sqrt(s->acc.err / s->acc.weight);
        t->rel_rmse = s->acc.signal > 0 ? sqrt(s->acc.err / s->acc.signal) : 0.0;
    }
    s->acc = (qk_quantize_error){0, 0, 0, 0, 0};
    double now = qk_seconds();
    t->seconds = now - (t0 > s->last_done ? t0 : s->last_done);
    s->last_done = now;
    report(s, i, t->name, 1);
}

/* One step of a converted tensor, synchronously on s's device: its input read in place from the
 * mapped file (and widened to f32 when requantizing), converted into dst, measured into *e
 * (with measure_error) and its pages released. Runs on a device's worker too (the workers
 * below), with s that worker's. */
static qk_status convert_step(stream_state *s, const qk_model_tensor *t, const qk_gguf_tensor *src, const step *sp,
                              void *dst, qk_quantize_error *e) {
    const int64_t cols = t->ne[0];
    const size_t src_row = qk_type_row_bytes(t->src_type, cols);
    const int requant = qk_format_of(t->src_type)->family != QK_FAMILY_FLOAT;
    const unsigned char *in = src->data + (uint64_t)sp->first_row * src_row;
    const void *qsrc = in;
    qk_type qsrc_type = t->src_type;
    qk_status st;
    double t0 = qk_seconds();
    touch_pages(in, (size_t)sp->rows * src_row);
    t0 = stage_end(&s->stats->read, t0, (uint64_t)sp->rows * src_row);
    if (requant) {
        st = to_f32(s, t->src_type, in, (size_t)sp->rows * src_row, sp->rows, cols, (float *)s->src_f32);
        t0 = stage_end(&s->stats->convert, t0, (uint64_t)sp->rows * src_row);
        if (st) return tensor_error(s->ctx, st, t->name, expert_of(t, sp));
        qsrc = s->src_f32;
        qsrc_type = QK_TYPE_F32;
    }
    qk_quantize_desc q = step_desc(t, sp, qsrc_type);
    q.src = qk_host((void *)qsrc, desc_src_bytes(&q));
    q.dst = qk_host(dst, desc_dst_bytes(&q));
    st = run_quantize(s, &q);
    stage_end(&s->stats->quantize, t0, desc_src_bytes(&q));
    if (st == QK_ERR_VALUE) return locate_bad_value(s, t, qsrc, qsrc_type, sp->rows, sp->first_row);
    if (st) return tensor_error(s->ctx, st, t->name, expert_of(t, sp));
    if ((st = measure_step(s, t, sp, in, dst, e))) return st;
    qk_gguf_release_bytes(s->in, src, (uint64_t)sp->first_row * src_row, (uint64_t)sp->rows * src_row);
    s->dev->steps++;
    s->dev->bytes += (uint64_t)sp->rows * src_row;
    return QK_OK;
}

/* The synchronous path: each step read, converted and written before the next. */
static qk_status convert_tensor(stream_state *s, qk_gguf_writer *w, const qk_gguf_tensor *src, qk_model_tensor *t,
                                const qk_imatrix_entry *ie, size_t i) {
    const int64_t total_rows = t->ne[1] * t->ne[2] * t->ne[3], step_rows = rows_per_step(s, t);
    for (int64_t row = 0; row < total_rows;) {
        qk_status st = check_cancel(s);
        if (st) return st;
        const step sp = plan_step(t, ie, row, step_rows);
        qk_quantize_error e;
        if ((st = convert_step(s, t, src, &sp, s->dst, &e))) return st;
        add_error(&s->acc, &e);
        if ((st = write_step(s, w, i, t, &sp, s->dst))) return st;
        row += sp.rows;
    }
    return QK_OK;
}

/* ---- the overlapped path ------------------------------------------------------------------- */

/* Float sources on a device with queues and a kernel for the type. Requantizing (a dequantize
 * first), the CPU fallback for a type and raw copies stay on the synchronous path. */
static int overlapped(const stream_state *s, const qk_model_tensor *t) {
    const qk_backend *b = s->ctx->backend;
    return t->converted && !s->p->no_overlap && b->quantize_queued &&
           qk_format_of(t->src_type)->family == QK_FAMILY_FLOAT &&
           qk_backend_supports(b, s->ctx->state, QK_OP_QUANTIZE, t->type);
}

/* Waits for the oldest queued step and writes it. */
static qk_status complete_step(stream_state *s) {
    assert(s->completed < s->queued);
    const int queue = (int)(s->completed++ % QK_QUEUES);
    const slot *sl = &s->slots[queue];
    const double t0 = qk_seconds();
    qk_status st = qk_quantize_wait(s->ctx, queue);
    stage_end(&s->stats->quantize, t0, 0); /* its bytes were counted when it was queued */
    if (st == QK_ERR_VALUE) return locate_bad_value(s, sl->t, sl->src, sl->t->src_type, sl->sp.rows, sl->sp.first_row);
    if (st) return tensor_error(s->ctx, st, sl->t->name, expert_of(sl->t, &sl->sp));
    if ((st = finish_step(s, sl->w, sl->i, sl->t, &sl->sp, sl->src, sl->dst))) return st;
    if (sl->last) tensor_done(s, sl->i, sl->t, sl->t0);
    return QK_OK;
}

/* Completes every queued step: before a step of the synchronous path, whose write must follow
 * theirs, and at the end. */
static qk_status drain(stream_state *s) {
    while (s->completed < s->queued) {
        qk_status st = complete_step(s);
        if (st) return st;
    }
    return QK_OK;
}

/* convert_tensor, overlapped: while the device works on one queue's step, the host writes the
 * step before it and reads the next one into the other queue's pinned buffer. A tensor's last
 * steps complete while the next tensor's first ones are queued; tensor_done then finishes it. */
static qk_status queue_tensor(stream_state *s, qk_gguf_writer *w, const qk_gguf_tensor *src, qk_model_tensor *t,
                              const qk_imatrix_entry *ie, size_t i, double t0) {
    const int64_t total_rows = t->ne[1] * t->ne[2] * t->ne[3], step_rows = rows_per_step(s, t);
    const size_t src_row = qk_type_row_bytes(t->src_type, t->ne[0]);
    for (int64_t row = 0; row < total_rows;) {
        qk_status st = check_cancel(s);
        if (st) return st;
        if (s->queued - s->completed == QK_QUEUES && (st = complete_step(s))) return st;
        const int queue = (int)(s->queued % QK_QUEUES);
        slot *sl = &s->slots[queue];
        sl->i = i;
        sl->t = t;
        sl->w = w;
        sl->sp = plan_step(t, ie, row, step_rows);
        sl->last = row + sl->sp.rows == total_rows;
        sl->t0 = t0;
        /* The read: the mapped input's page faults are taken here, beside the device's work. */
        double t1 = qk_seconds();
        memcpy(sl->src, src->data + (uint64_t)row * src_row, (size_t)sl->sp.rows * src_row);
        t1 = stage_end(&s->stats->read, t1, (uint64_t)sl->sp.rows * src_row);
        qk_gguf_release_bytes(s->in, src, (uint64_t)row * src_row, (uint64_t)sl->sp.rows * src_row);
        qk_quantize_desc q = step_desc(t, &sl->sp, t->src_type);
        q.src = qk_host(sl->src, desc_src_bytes(&q));
        q.dst = qk_host(sl->dst, desc_dst_bytes(&q));
        st = qk_quantize_queued(s->ctx, queue, &q);
        stage_end(&s->stats->quantize, t1, desc_src_bytes(&q));
        if (st) return tensor_error(s->ctx, st, t->name, expert_of(t, &sl->sp));
        s->dev->steps++;
        s->dev->bytes += desc_src_bytes(&q);
        s->queued++;
        row += sl->sp.rows;
    }
    return QK_OK;
}

/* After a failure steps may still be queued, reading and writing the pinned buffers: wait for
 * them (keeping the failure's message) before freeing. */
static void free_slots(stream_state *s) {
    if (!s->ctx || !s->ctx->backend->host_free) return;
    char msg[QK_ERROR_LEN];
    memcpy(msg, s->ctx->error, sizeof msg);
    for (int k = 0; k < QK_QUEUES; k++) qk_quantize_wait(s->ctx, k);
    memcpy(s->ctx->error, msg, sizeof msg);
    for (int k = 0; k < QK_QUEUES; k++) {
        if (s->slots[k].src) s->ctx->backend->host_free(s->ctx->state, s->slots[k].src);
        if (s->slots[k].dst) s->ctx->backend->host_free(s->ctx->state, s->slots[k].dst);
    }
}

/* ---- the whole path ---------------------------------------------------------------------- */

typedef struct run {
    qk_gguf *in;
    qk_imatrix *im;
    qk_plan_tensor *pt;
    size_t *src_index;                     /* pt[i] is the input's tensor src_index[i] */
    char (*renamed)[QK_GGUF_MAX_NAME + 1]; /* pt names after --prune-layers renumbering */
    const char **in_names;                 /* result row i's name in the input (imatrix lookup) */
    long block_count;                      /* blocks left after --prune-layers, or -1 */
    qk_plan_model model;                   /* the mixture rules' facts (model.arch is arch) */
    char arch[128];
    qk_plan_entry *pe;
    size_t *src_split;
    const qk_imatrix_entry **ie;
    qk_gguf_writer **w; /* per output part; with shards only the run's own part has one */
    int n_w;
    size_t *in_part;    /* stream_data's count of each part's tensors */
    size_t all_tensors; /* of the whole output, all shards (split.tensors.count) */
    stream_state s;
} run;

static void run_free(run *r) {
    free_slots(&r->s);
    for (int i = 0; i < r->n_w; i++) qk_gguf_writer_free(r->w[i]); /* removes unfinished temporaries */
    free(r->w);
    free(r->in_part);
    free(r->s.src_f32);
    free(r->s.dst);
    free(r->s.check);
    free(r->ie);
    free(r->src_split);
    free(r->pe);
    free(r->pt);
    free(r->src_index);
    free(r->renamed);
    free(r->in_names);
    qk_imatrix_free(r->im);
    qk_gguf_close(r->in);
}

void qk_model_result_add_row(qk_model_quantize_result *res, const qk_plan_tensor *src, const qk_plan_entry *e) {
    qk_model_tensor *t = &res->tensors[res->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", src->name);
    t->src_type = src->type;
    t->type = e->type;
    t->n_dims = src->n_dims;
    memcpy(t->ne, src->ne, sizeof t->ne);
    const uint64_t rows = (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]);
    t->src_bytes = qk_type_row_bytes(t->src_type, t->ne[0]) * rows;
    t->bytes = qk_type_row_bytes(t->type, t->ne[0]) * rows;
    t->reason = e->reason;
    t->planned_type = e->planned;
    t->converted = t->type != t->src_type;
    assert(t->converted == e->quantize);
    t->rmse = t->rel_rmse = t->target_error = t->target_sensitivity = -1.0;
    uint64_t elems = (uint64_t)t->ne[0] * rows;
    res->in_bytes += t->src_bytes;
    res->out_bytes += t->bytes;
    res->in_weights += elems;
    if (t->converted) res->quantized_weights += elems;
}

/* The tensors that stay (all, without --prune-layers) into r->pt, renumbered; returns how many. */
static qk_status select_tensors(qk_context *ctx, run *r, const qk_model_quantize_params *p, size_t *kept) {
    const size_t n_in = qk_gguf_tensor_count(r->in);
    long *blocks = calloc(n_in ? n_in : 1, sizeof *blocks), *new_no = calloc(n_in ? n_in : 1, sizeof *new_no);
    if (!blocks || !new_no) {
        free(blocks);
        free(new_no);
        return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory planning %zu tensors", n_in);
    }
    size_t n_blocks = 0, at, len;
    for (size_t i = 0; p->n_prune_layers && i < n_in; i++) {
        long b = name_block(qk_gguf_tensor_at(r->in, i)->name, &at, &len);
        if (b >= 0) blocks[n_blocks++] = b;
    }
    qsort(blocks, n_blocks, sizeof *blocks, cmp_long);
    size_t u = 0;
    for (size_t k = 0; k < n_blocks; k++)
        if (!u || blocks[u - 1] != blocks[k]) blocks[u++] = blocks[k];
    r->block_count = p->n_prune_layers ? renumber_blocks(p, blocks, u, new_no) : -1;
    size_t n = 0;
    for (size_t i = 0; i < n_in; i++) {
        const qk_gguf_tensor *t = qk_gguf_tensor_at(r->in, i);
        const char *name = t->name;
        long b = p->n_prune_layers ? name_block(name, &at, &len) : -1;
        if (b >= 0) {
            const long *hit = bsearch(&b, blocks, u, sizeof *blocks, cmp_long);
            long nb = new_no[hit - blocks];
            if (nb < 0) continue;
            snprintf(r->renamed[n], sizeof r->renamed[n], "%.*s%ld%s", (int)at, name, nb, name + at + len);
            name = r->renamed[n];
        }
        r->src_index[n] = i;
        r->pt[n++] = (qk_plan_tensor){name, t->type, t->n_dims, {t->ne[0], t->ne[1], t->ne[2], t->ne[3]}};
    }
    free(blocks);
    free(new_no);
    *kept = n;
    return QK_OK;
}

/* A size target with --shard: the split waits for the allocation (or, in the first phase, is made
 * by input bytes), since it depends on the types chosen. */
static int sharded_target(const qk_model_quantize_params *p) {
    return p->shard_count && (p->target_bpw > 0 || p->target_bytes);
}

/* The rows [lo, hi) of part shard_index when the rows weigh bytes[i] (qk_shard_range). */
static qk_status shard_rows(qk_context *ctx, const qk_model_quantize_params *p, const qk_model_tensor *ts, size_t n,
                            int by_input, size_t *lo, size_t *hi) {
    uint64_t *bytes = malloc((n ? n : 1) * sizeof *bytes);
    if (!bytes) return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory planning %zu tensors", n);
    for (size_t i = 0; i < n; i++) bytes[i] = by_input ? ts[i].src_bytes : ts[i].bytes;
    qk_shard_range(bytes, n, p->shard_index - 1, p->shard_count, lo, hi);
    free(bytes);
    return QK_OK;
}

/* --shard: keeps rows [lo, hi) of the whole plan, part shard_index's; the totals become the part's. */
static void keep_shard(run *r, const qk_model_quantize_params *p, qk_model_quantize_result *res, size_t lo, size_t hi) {
    const size_t n = hi - lo;
    memmove(res->tensors, res->tensors + lo, n * sizeof *res->tensors);
    memmove(r->pe, r->pe + lo, n * sizeof *r->pe);
    memmove(r->ie, r->ie + lo, n * sizeof *r->ie);
    memmove(r->src_split, r->src_split + lo, n * sizeof *r->src_split);
    memmove(r->in_names, r->in_names + lo, n * sizeof *r->in_names);
    res->n_tensors = n;
    res->n_splits = p->shard_count;
    res->in_bytes = res->out_bytes = res->in_weights = res->quantized_weights = 0;
    for (size_t i = 0; i < n; i++) {
        qk_model_tensor *t = &res->tensors[i];
        const uint64_t elems = (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        t->split = p->shard_index - 1;
        res->in_bytes += t->src_bytes;
        res->out_bytes += t->bytes;
        res->in_weights += elems;
        if (t->converted) res->quantized_weights += elems;
    }
}

static qk_status plan_model(qk_context *ctx, run *r, const qk_model_quantize_params *p, qk_model_quantize_result *res) {
    size_t n = qk_gguf_tensor_count(r->in);
    r->pt = calloc(n ? n : 1, sizeof *r->pt);
    r->pe = calloc(n ? n : 1, sizeof *r->pe);
    r->src_split = calloc(n ? n : 1, sizeof *r->src_split);
    r->ie = calloc(n ? n : 1, sizeof *r->ie);
    r->src_index = calloc(n ? n : 1, sizeof *r->src_index);
    r->renamed = calloc(n ? n : 1, sizeof *r->renamed);
    r->in_names = calloc(n ? n : 1, sizeof *r->in_names);
    res->tensors = calloc(n ? n : 1, sizeof *res->tensors);
    if (!r->pt || !r->pe || !r->src_split || !r->ie || !r->src_index || !r->renamed || !r->in_names || !res->tensors)
        return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory planning %zu tensors", n);
    res->in_tensors = n;
    qk_status st = select_tensors(ctx, r, p, &n);
    if (st) return st;
    read_model_facts(r->in, p, r->arch, sizeof r->arch, &r->model);
    qk_plan_options opt = p->plan;
    opt.has_imatrix = r->im != NULL;
    opt.input_order = p->keep_split; /* llama-quantize keeps each part's tensors in their order */
    st = qk_plan_build(&r->model, &opt, r->pt, n, r->pe);
    if (st) return forward_error(ctx, st);

    for (size_t i = 0; i < n; i++) {
        qk_model_result_add_row(res, &r->pt[r->pe[i].tensor], &r->pe[i]);
        r->pe[i].tensor = r->src_index[r->pe[i].tensor]; /* from here on: the input's index */
        const qk_gguf_tensor *src = qk_gguf_tensor_at(r->in, r->pe[i].tensor);
        assert(res->tensors[i].src_bytes == src->bytes); /* the reader's size is the format's */
        r->src_split[i] = (size_t)src->split;
        r->in_names[i] = src->name;
    }
    size_t lo = 0, hi = n;                                      /* the rows this run writes */
    const int shard_now = p->shard_count && !sharded_target(p); /* else apply_target splits */
    if (shard_now && (st = shard_rows(ctx, p, res->tensors, n, 0, &lo, &hi))) return st;
    r->all_tensors = n;
    st = match_imatrix(ctx, r->im, &opt, res->tensors, r->in_names, n, lo, hi, r->ie, res);
    if (st) return st;
    res->n_splits = assign_splits(res->tensors, r->src_split, n, p);
    if (shard_now) keep_shard(r, p, res, lo, hi);
    return QK_OK;
}

/* ---- size targets ---------------------------------------------------------------------------- */

/* What a size target may not change: the user's overrides and output/token-embedding types,
 * tensors the preset copies, and already-quantized inputs without --allow-requantize. The
 * preset's own output rules are not pins: the target chooses there too. */
static int target_pinned(const qk_model_quantize_params *p, const qk_model_tensor *t) {
    if (t->reason == QK_PLAN_KEEP || t->reason == QK_PLAN_OVERRIDE) return 1;
    if (t->reason == QK_PLAN_OUTPUT)
        return is_token_embedding(t->name) ? p->plan.token_embedding_type >= 0
                                           : p->plan.output_tensor_type >= 0 || p->plan.leave_output_tensor;
    return qk_format_of(t->src_type)->family != QK_FAMILY_FLOAT && !p->plan.allow_requantize;
}

/* Tensor i's imatrix entry, whatever the planned type (the target weighs every candidate's
 * error by it); NULL where there is none or its size is wrong (match_imatrix refused that
 * already, except for the token embedding, whose entry it ignores). */
static const qk_imatrix_entry *target_entry(const run *r, const qk_model_tensor *t, size_t i) {
    const qk_imatrix_entry *e = r->im ? qk_imatrix_find(r->im, r->in_names[i]) : NULL;
    return e && e->n_mat * e->cols == t->ne[0] * t->ne[2] ? e : NULL;
}

/* The state file's keys: what the errors depend on. The rule's own (its version), so a state
 * file of an older rule is another run's. */
static const char target_version[] =
    "qkern target matrix 4: sensitivity x (sum (w - a^2) (x - q)^2 + rows' "
    "(sum a (x - q))^2), sensitivity: gain to the residual (target_sensitivity.c: attn_q/k 1, a tied embedding 1); "
    "keys per tensor";

/* The model's key, which every row of a state file shares: the rule, the head counts, every
 * tensor's name, source type, shape and pin, and a sample of its data (its first and last 4 KiB:
 * another model of the same shapes is told apart without reading it), and the imatrix's entries'
 * names and sizes. A run checks it whole, a merge of shards' files too. */
static uint64_t target_model_key(const run *r, const qk_model_quantize_result *res, const qk_target_row *rows,
                                 const qk_imatrix_entry *const *entries) {
    uint64_t h = qk_target_hash(QK_TARGET_HASH_SEED, target_version, sizeof target_version);
    const int64_t heads[2] = {r->model.n_head, r->model.n_head_kv};
    h = qk_target_hash(h, heads, sizeof heads);
    for (size_t i = 0; i < res->n_tensors; i++) {
        const qk_model_tensor *t = &res->tensors[i];
        h = qk_target_hash(h, t->name, strlen(t->name));
        int32_t head[2] = {(int32_t)t->src_type, rows[i].pinned};
        h = qk_target_hash(h, head, sizeof head);
        h = qk_target_hash(h, t->ne, sizeof t->ne);
        const qk_gguf_tensor *src = qk_gguf_tensor_at(r->in, r->pe[i].tensor);
        const size_t edge = src->bytes < 4096 ? (size_t)src->bytes : 4096;
        if (edge) {
            h = qk_target_hash(h, src->data, edge);
            h = qk_target_hash(h, (const unsigned char *)src->data + src->bytes - edge, edge);
        }
        const int64_t entry[2] = {entries[i] ? entries[i]->n_mat * entries[i]->cols : -1,
                                  entries[i] && entries[i]->means};
        h = qk_target_hash(h, entry, sizeof entry);
    }
    return h;
}

/* One tensor's data (the whole of it, not a sample: a fine-tune may change a few rows, and
 * reading the data once costs little beside quantizing it a dozen times) and imatrix entry (the
 * values used, after --include/--exclude-weights, not the file's name). */
static uint64_t tensor_key(const run *r, size_t i, const qk_imatrix_entry *e) {
    const qk_gguf_tensor *src = qk_gguf_tensor_at(r->in, r->pe[i].tensor);
    uint64_t h = qk_target_hash(QK_TARGET_HASH_SEED, src->data, (size_t)src->bytes);
    qk_gguf_release_tensor(r->in, r->pe[i].tensor);
    if (!e) return qk_target_hash(h, "no imatrix", 10);
    h = qk_target_hash(h, e->values, (size_t)(e->n_mat * e->cols) * sizeof(float));
    return e->means ? qk_target_hash(h, e->means, (size_t)(e->n_mat * e->cols) * sizeof(float))
                    : qk_target_hash(h, "no means", 8);
}

/* Rows [lo, hi) against the keys the state file gave them (rows[i].key; 0: none): a free row's
 * key is its tensor's (tensor_key) and those of its block's sensitivity partners (the down
 * projections, attn_output, attn_v of blk.N, pinned or not: its factor reads them). A row the
 * file measured under another key is refused: the file was made for other data. The rows then
 * hold this run's keys, which a save writes. So a run reads the data of the rows it checks
 * only: a single run all of them, a shard's its part's (and their partners'); every part
 * checks its own, so the parts together check them all. */
static qk_status check_row_keys(qk_context *ctx, const run *r, const qk_model_quantize_params *p,
                                const qk_model_quantize_result *res, qk_target_row *rows,
                                const qk_imatrix_entry *const *entries, size_t lo, size_t hi) {
    const size_t n = res->n_tensors;
    uint64_t *partner = calloc(n ? n : 1, sizeof *partner); /* a partner's tensor_key, once read */
    unsigned char *have = calloc(n ? n : 1, 1);
    if (!partner || !have) {
        free(partner);
        free(have);
        return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory checking %zu tensors' keys", n);
    }
    qk_status st = QK_OK;
    for (size_t i = lo; i < hi && st == QK_OK; i++) {
        if (rows[i].pinned) continue;
        const char *name = res->tensors[i].name;
        uint64_t key = tensor_key(r, i, entries[i]);
        for (size_t j = 0; j < n; j++) {
            if (!qk_sens_reads(name, res->tensors[j].name)) continue;
            if (!have[j]) partner[j] = tensor_key(r, j, entries[j]), have[j] = 1;
            key = qk_target_hash(key, &partner[j], sizeof partner[j]);
        }
        key |= !key; /* 0 means none */
        if (qk_target_row_measured(&rows[i]) && rows[i].key != key)
            st = qk_fail(ctx, QK_ERR_INVALID_ARG,
                         "state file %s was made for other tensor data or imatrix data: %s (or a tensor its "
                         "sensitivity reads) differs from the one measured there (key %016llx, this run's %016llx): "
                         "remove it or name another --state-file",
                         p->state_file, name, (unsigned long long)rows[i].key, (unsigned long long)key);
        rows[i].key = key;
    }
    free(partner);
    free(have);
    return st;
}

/* The error matrix of the tensors not yet measured (an option's error < 0; the state file may
 * have given the others): each step of a tensor (whole experts where they fit) is read once into
 * a device buffer, then quantized to every candidate and measured there (qk_quantize_measure_ex:
 * only a few sums per call come back, no file is written). A tensor's errors are set once all its
 * steps are measured, so an interruption leaves whole rows measured and the rest at -1. extra
 * (NULL: none) holds further options per tensor, measured in the same pass: the types a curve's
 * presets give that are no candidate. Only rows [lo, hi) are measured (a shard's, or all).
 *
 * error = sensitivity x the expected squared error of the tensor's outputs, over its rows:
 * a row's output error is sum_i e_i z_i (e_i = x_i - q_i, z_i the input of column i, of mean a_i
 * and mean square w_i per the imatrix, per expert); with the columns taken as independent its
 * expectation is sum_i (w_i - a_i^2) e_i^2 + (sum_i a_i e_i)^2. The second term, the bias, is
 * what a shared offset of the inputs makes of errors of one sign; w_i - a_i^2 is clamped at 0
 * (rounding). Where the imatrix holds no means (the legacy format, llama-imatrix's usual GGUF)
 * a = 0 and the error is sum_i w_i e_i^2; w = 1 and a = 0 where the tensor has no entry.
 * That sum is the error at the tensor's own outputs; what the model's output sees is the error
 * those cause in the residual stream, which the tensors after it scale: ffn_up's and ffn_gate's
 * go through the activation and ffn_down, attn_v's through the attention average and
 * attn_output. sens[i] (target_sensitivity.h: the rules and why) is that gain, from the weights
 * and the imatrix: at 4 to 6 bpw the unscaled sum chose mixtures that lost to the presets in
 * llama.cpp's KL divergence (bench/results/2026-12-06-target-bpw-kld-smollm2.md), the presets
 * keeping attention and the FFN's inputs high where the sum did not. The factor also puts an
 * untied token embedding without an entry (w = 1, every row summed) on the per-token scale:
 * 1 / rows.
 * The state file holds the errors multiplied, its key names the rule.
 * With extra contexts (several devices) the matrix is still measured on ctx alone; handing its
 * tensors to the data pass's workers is a later step (its passes are per tensor, not per step). */
static qk_status measure_matrix(qk_context *ctx, run *r, const qk_model_quantize_params *p,
                                const qk_model_quantize_result *res, qk_target_row *rows, qk_target_row *extra,
                                const qk_imatrix_entry *const *entries, const double *sens, size_t lo, size_t hi) {
    stream_state *s = &r->s;
    s->ctx = ctx;
    s->p = p;
    s->chunk_bytes = p->chunk_bytes ? p->chunk_bytes : DEFAULT_CHUNK_BYTES;
    /* Per tensor, the candidate with the widest rows sets the step (rows_per_step) */
    qk_model_tensor *wide = calloc(res->n_tensors ? res->n_tensors : 1, sizeof *wide);
    size_t widest = 0;
    for (size_t i = 0; wide && i < res->n_tensors; i++) {
        wide[i] = res->tensors[i];
        for (int k = 0; !rows[i].pinned && k < rows[i].n; k++)
            if (qk_type_row_bytes(rows[i].opt[k].type, wide[i].ne[0]) > qk_type_row_bytes(wide[i].type, wide[i].ne[0]))
                wide[i].type = (qk_type)rows[i].opt[k].type;
        for (int k = 0; extra && k < extra[i].n; k++)
            if (qk_type_row_bytes(extra[i].opt[k].type, wide[i].ne[0]) > qk_type_row_bytes(wide[i].type, wide[i].ne[0]))
                wide[i].type = (qk_type)extra[i].opt[k].type;
        if (!rows[i].pinned && (size_t)wide[i].ne[0] * sizeof(float) > widest)
            widest = (size_t)wide[i].ne[0] * sizeof(float);
    }
    const size_t buf_bytes = widest > s->chunk_bytes ? widest : s->chunk_bytes;
    qk_buffer *src_buf = NULL, *dst_buf = NULL;
    qk_status st = QK_OK;
    if (!wide || !(s->src_f32 = malloc(buf_bytes)))
        st = qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory for %zu-byte staging buffers", buf_bytes);
    if (st == QK_OK &&
        ((st = qk_buffer_create(ctx, buf_bytes, &src_buf)) || (st = qk_buffer_create(ctx, buf_bytes, &dst_buf))))
        forward_error(ctx, st);
    double err[2 * QK_TARGET_MAX_OPTIONS];
    qk_alloc_option *pending[2 * QK_TARGET_MAX_OPTIONS];
    for (size_t i = lo; st == QK_OK && i < hi; i++) {
        int n_pending = 0; /* candidates the state file did not give, and extras */
        for (int k = 0; !rows[i].pinned && k < rows[i].n; k++)
            if (rows[i].opt[k].error < 0) pending[n_pending++] = &rows[i].opt[k];
        for (int k = 0; extra && k < extra[i].n; k++)
            if (extra[i].opt[k].error < 0) pending[n_pending++] = &extra[i].opt[k];
        if (!n_pending) continue;
        const qk_model_tensor *t = &wide[i];
        const qk_gguf_tensor *src = qk_gguf_tensor_at(r->in, r->pe[i].tensor);
        const int64_t cols = t->ne[0], total_rows = t->ne[1] * t->ne[2] * t->ne[3], step_rows = rows_per_step(s, t);
        const size_t src_row = qk_type_row_bytes(t->src_type, cols);
        const int requant = qk_format_of(t->src_type)->family != QK_FAMILY_FLOAT;
        for (int k = 0; k < n_pending; k++) err[k] = 0.0;
        for (int64_t row = 0; st == QK_OK && row < total_rows;) {
            if ((st = check_cancel(s))) break;
            const step sp = plan_step(t, entries[i], row, step_rows);
            const unsigned char *in = src->data + (uint64_t)row * src_row;
            const void *data = in;
            qk_type data_type = t->src_type;
            if (requant) {
                st = to_f32(s, t->src_type, in, (size_t)sp.rows * src_row, sp.rows, cols, (float *)s->src_f32);
                if (st) {
                    st = tensor_error(ctx, st, t->name, expert_of(t, &sp));
                    break;
                }
                data = s->src_f32;
                data_type = QK_TYPE_F32;
            }
            const size_t data_bytes = (size_t)sp.rows * qk_type_row_bytes(data_type, cols);
            if ((st = qk_buffer_write(src_buf, 0, data, data_bytes))) {
                st = tensor_error(ctx, st, t->name, expert_of(t, &sp));
                break;
            }
            for (int k = 0; st == QK_OK && k < n_pending; k++) {
                qk_model_tensor tk = *t;
                tk.type = (qk_type)pending[k]->type;
                qk_quantize_desc q = step_desc(&tk, &sp, data_type);
                q.src = qk_buf(src_buf, 0, data_bytes);
                q.dst = qk_buf(dst_buf, 0, desc_dst_bytes(&q));
                qk_quantize_error e;
                qk_measure_desc md = qk_measure_default_desc();
                md.weights = sp.imatrix;
                md.weights_len = sp.imatrix_len;
                md.means = sp.means;
                st = qk_quantize_measure_ex(ctx, &q, &md, &e);
                if (st == QK_ERR_VALUE)
                    st = locate_bad_value(s, t, data, data_type, sp.rows, row);
                else if (st)
                    st = tensor_error(ctx, st, t->name, expert_of(t, &sp));
                else
                    err[k] += e.centered + e.bias;
            }
            row += sp.rows;
        }
        if (st == QK_OK)
            for (int k = 0; k < n_pending; k++) pending[k]->error = sens[i] * err[k];
        qk_gguf_release_tensor(r->in, r->pe[i].tensor);
    }
    qk_buffer_destroy(src_buf);
    qk_buffer_destroy(dst_buf);
    free(wide);
    free(s->src_f32);
    s->src_f32 = NULL;
    return st;
}

/* ---- the sensitivities ----------------------------------------------------------------------- */

typedef struct sens_reader {
    run *r;
    const qk_model_quantize_result *res;
} sens_reader;

/* qk_sens_read_fn: rows of result tensor i as floats, their pages released once read. No
 * cancellation point: the pass is one read of the FFN and attention weights, as the key's hashing
 * (which has none either) is of all free tensors; the measuring's steps are where a run stops. */
static qk_status read_rows_f32(void *user, size_t i, int64_t row, int64_t n_rows, float *out) {
    const sens_reader *sr = user;
    run *r = sr->r;
    const qk_model_tensor *t = &sr->res->tensors[i];
    qk_status st;
    const qk_gguf_tensor *src = qk_gguf_tensor_at(r->in, r->pe[i].tensor);
    const uint64_t row_bytes = qk_type_row_bytes(t->src_type, t->ne[0]), off = (uint64_t)row * row_bytes;
    const size_t bytes = (size_t)((uint64_t)n_rows * row_bytes);
    if ((st = to_f32(&r->s, t->src_type, src->data + off, bytes, n_rows, t->ne[0], out)))
        return tensor_error(r->s.ctx, st, t->name, -1);
    qk_gguf_release_bytes(r->in, src, off, bytes);
    return QK_OK;
}

/* The sensitivity (target_sensitivity.h) of every free tensor of rows [lo, hi), into sens[i]
 * and its result row; 1 elsewhere. A note names the tensors whose factor fell back to 1 and why.
 * Computed even where the state file gives every error, so that the result shows them: one
 * pass over the FFN and attention weights on the host, little beside the key's hashing of all
 * free tensors' data. */
static qk_status measure_sensitivities(qk_context *ctx, run *r, const qk_model_quantize_params *p,
                                       qk_model_quantize_result *res, const qk_target_row *rows,
                                       const qk_imatrix_entry *const *entries, size_t lo, size_t hi, double *sens) {
    const size_t n = res->n_tensors;
    qk_sens_tensor *ts = calloc(n ? n : 1, sizeof *ts);
    unsigned char *want = calloc(n ? n : 1, 1);
    const char **why = calloc(n ? n : 1, sizeof *why);
    if (!ts || !want || !why) {
        free(ts);
        free(want);
        free(why);
        return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory for the sensitivities of %zu tensors", n);
    }
    size_t n_want = 0;
    for (size_t i = 0; i < n; i++) {
        const qk_model_tensor *t = &res->tensors[i];
        ts[i] = (qk_sens_tensor){t->name, {t->ne[0], t->ne[1], t->ne[2], t->ne[3]}, NULL, NULL};
        if (entries[i]) {
            ts[i].w = entries[i]->values;
            ts[i].a = entries[i]->means;
        }
        sens[i] = 1.0;
        want[i] = i >= lo && i < hi && !rows[i].pinned;
        n_want += want[i];
    }
    r->s.ctx = ctx;
    r->s.p = p;
    sens_reader sr = {r, res};
    const size_t chunk = (p->chunk_bytes ? p->chunk_bytes : DEFAULT_CHUNK_BYTES) / sizeof(float);
    const double t0 = qk_seconds();
    qk_status st =
        qk_target_sensitivities(ts, n, want, r->model.n_head, r->model.n_head_kv, read_rows_f32, &sr, chunk, sens, why);
    if (st == QK_ERR_OUT_OF_MEMORY) forward_error(ctx, st);
    size_t n_fallback = 0;
    for (size_t i = 0; st == QK_OK && i < n; i++) {
        if (want[i]) res->tensors[i].target_sensitivity = sens[i];
        if (!want[i] || !why[i]) continue;
        if (n_fallback++ < 3) add_note(res, "size target: sensitivity 1 for %s: %s\n", res->tensors[i].name, why[i]);
    }
    if (n_fallback > 3)
        add_note(res, "size target: sensitivity 1 for %zu more tensors, for the same reasons\n", n_fallback - 3);
    if (st == QK_OK && n_want)
        add_note(res, "size target: sensitivities (gain to the residual) of %zu tensors in %.2f s\n", n_want,
                 qk_seconds() - t0);
    free(ts);
    free(want);
    free(why);
    return st;
}

/* Free tensors whose errors are all known (measured, or read from the state file). */
static size_t measured_rows(const qk_target_row *rows, size_t n) {
    size_t known = 0;
    for (size_t i = 0; i < n; i++) known += (size_t)qk_target_row_measured(&rows[i]);
    return known;
}

/* The presets a curve places, planned over this run's tensors: their types (types[k * n + i])
 * and, in extra, those to measure beside the candidates. The caller frees the three arrays. */
static qk_status plan_curve_presets(qk_context *ctx, const run *r, const qk_model_quantize_params *p,
                                    const qk_model_quantize_result *res, const qk_target_row *rows,
                                    const qk_imatrix_entry *const *entries, qk_target_row **extra,
                                    qk_model_preset_point **pp, size_t *n_pp, int **types) {
    const size_t n = res->n_tensors;
    const qk_ftype *list[64];
    size_t np = qk_target_curve_presets(list, 64);
    np = np < 64 ? np : 64;
    *extra = calloc(n ? n : 1, sizeof **extra);
    *pp = calloc(np ? np : 1, sizeof **pp);
    *types = calloc((n ? n : 1) * (np ? np : 1), sizeof **types);
    const char **names = calloc(n ? n : 1, sizeof *names);
    unsigned char *has_entry = calloc(n ? n : 1, 1);
    qk_status st = QK_OK;
    if (!*extra || !*pp || !*types || !names || !has_entry) {
        st = qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory for the presets of %zu tensors", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        names[i] = res->tensors[i].name;
        has_entry[i] = entries[i] != NULL;
    }
    for (size_t k = 0; k < np; k++) (*pp)[k].preset = list[k];
    *n_pp = np;
    qk_plan_options opt = p->plan;
    opt.has_imatrix = r->im != NULL;
    opt.input_order = p->keep_split;
    const qk_target_plan_input in = {&r->model, &opt, r->pt, names, has_entry};
    if ((st = qk_target_presets_plan(&in, rows, n, *extra, *pp, np, *types))) forward_error(ctx, st);
done:
    free(names);
    free(has_entry);
    return st;
}

/* Replaces the preset's types of the free tensors by the mixture of least total error within
 * the target: the error matrix (measured, or read from the state file), the allocator, then
 * the result's rows, imatrix entries and output parts as if planned so. */
static qk_status apply_target(qk_context *ctx, run *r, const qk_model_quantize_params *p,
                              qk_model_quantize_result *res) {
    const size_t n = res->n_tensors;
    int types[QK_TARGET_MAX_OPTIONS];
    size_t n_types = p->target_types ? p->n_target_types : qk_model_target_default_types(types, QK_TARGET_MAX_OPTIONS);
    const int *cand = p->target_types ? p->target_types : types;
    qk_target_row *rows = calloc(n ? n : 1, sizeof *rows);
    const qk_imatrix_entry **entries = calloc(n ? n : 1, sizeof *entries);
    int *choice = calloc(n ? n : 1, sizeof *choice);
    double *sens = calloc(n ? n : 1, sizeof *sens);
    qk_target_row *extra = NULL; /* with a curve: the presets' types that are no candidate */
    qk_model_preset_point *pp = NULL;
    int *preset_types = NULL;
    size_t n_pp = 0;
    qk_status st = QK_OK;
    if (!rows || !entries || !choice || !sens) {
        st = qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory for the error matrix of %zu tensors", n);
        goto done;
    }
    size_t n_free = 0, n_options = 0;
    for (size_t i = 0; i < n; i++) {
        const qk_model_tensor *t = &res->tensors[i];
        entries[i] = target_entry(r, t, i);
        qk_plan_options opt = p->plan;
        opt.has_imatrix = r->im != NULL;
        /* a tensor no candidate fits keeps the plan's type, as a pinned one does */
        if (!target_pinned(p, t) && qk_target_candidates(&rows[i], cand, n_types, &opt, t->name, t->ne[0],
                                                         t->ne[1] * t->ne[2] * t->ne[3], entries[i] != NULL)) {
            n_free++;
            n_options += (size_t)rows[i].n;
            continue;
        }
        rows[i].pinned = 1;
        rows[i].n = 1;
        rows[i].opt[0] = (qk_alloc_option){(int)t->type, t->bytes, 0.0};
    }
    if (p->target_curve && (st = plan_curve_presets(ctx, r, p, res, rows, entries, &extra, &pp, &n_pp, &preset_types)))
        goto done;
    size_t n_extra = 0;
    for (size_t i = 0; extra && i < n; i++) n_extra += (size_t)extra[i].n;
    const uint64_t key = p->state_file ? target_model_key(r, res, rows, entries) : 0;
    int found = 0;
    if (p->state_file && (st = qk_target_state_load(p->state_file, key, rows, n, &found))) {
        forward_error(ctx, st);
        goto done;
    }
    const size_t known = measured_rows(rows, n); /* from the state file */
    /* A sharded target without the whole matrix: this run measures its part's rows (the first
     * phase, a dry run), split by input bytes as no type is chosen yet; or it is refused. */
    const int part_phase = sharded_target(p) && known < n_free;
    size_t lo = 0, hi = n;
    if (part_phase && !p->dry_run) {
        st = qk_fail(ctx, QK_ERR_INVALID_ARG,
                     "state file %s holds the errors of %zu of %zu tensors, and a sharded size target needs them all: "
                     "first run each shard with --dry-run and its own --state-file, then combine the files with "
                     "`qkern state-merge MERGED FILES...`, then run each shard with --state-file MERGED",
                     p->state_file, known, n_free);
        goto done;
    }
    if (part_phase && (st = shard_rows(ctx, p, res->tensors, n, 1, &lo, &hi))) goto done;
    /* A sharded target's second phase (the whole matrix from the state file) checks its rows once
     * the plan has decided its part (below): it reads no other part's tensors. */
    const int final_part = sharded_target(p) && !part_phase && !n_extra;
    const double t0 = qk_seconds();
    if (p->state_file && !final_part && (st = check_row_keys(ctx, r, p, res, rows, entries, lo, hi))) goto done;
    /* also where the state file holds every error (multiplied): the result reports the factors */
    if (!final_part) st = measure_sensitivities(ctx, r, p, res, rows, entries, lo, hi, sens);
    if (st == QK_OK && (known < n_free || n_extra))
        st = measure_matrix(ctx, r, p, res, rows, extra, entries, sens, lo, hi);
    const size_t now_known = measured_rows(rows, n);
    res->matrix_seconds = known < n_free || n_extra ? qk_seconds() - t0 : 0.0;
    res->matrix_from_state = found && known == n_free;
    /* Interrupted or failed, the tensors measured so far are kept for the next run */
    if (p->state_file && now_known > known) {
        char msg[QK_ERROR_LEN];
        memcpy(msg, ctx->error, sizeof msg);
        qk_status saved = qk_target_state_save(p->state_file, key, rows, n);
        if (st == QK_OK && saved) st = forward_error(ctx, saved);
        if (st != QK_OK && !saved)
            snprintf(ctx->error, sizeof ctx->error, "%s (the %zu of %zu tensors measured so far are kept in %s)", msg,
                     now_known, n_free, p->state_file);
        else if (st != QK_OK)
            memcpy(ctx->error, msg, sizeof msg);
        if (st == QK_OK) add_note(res, "size target: error matrix written to %s\n", p->state_file);
    }
    if (st) goto done;
    if (part_phase) {
        res->matrix_part = 1;
        res->matrix_known = now_known;
        res->matrix_free = n_free;
        res->matrix_seconds = qk_seconds() - t0;
        add_note(res,
                 "size target, part %d of %d: errors of its tensors %zu to %zu %s %s (%.2f s); %zu of %zu tensors' "
                 "errors are there now: once every part's are in a file, `qkern state-merge` combines them\n",
                 p->shard_index, p->shard_count, lo + 1, hi, now_known > known ? "measured into" : "already in",
                 p->state_file, res->matrix_seconds, now_known, n_free);
        for (size_t i = lo; i < hi; i++) res->tensors[i].target_error = rows[i].pinned ? 0.0 : -1.0;
        keep_shard(r, p, res, lo, hi);
        goto done;
    }
    if (res->matrix_from_state)
        add_note(res, "size target: error matrix read from %s (%zu tensors, %zu options)%s\n", p->state_file, n_free,
                 n_options, n_extra ? "" : ": nothing measured");
    else if (known)
        add_note(res, "size target: error matrix: %zu tensors read from %s, %zu measured in %.2f s\n", known,
                 p->state_file, n_free - known, res->matrix_seconds);
    else
        add_note(res, "size target: error matrix measured: %zu tensors, %zu options in %.2f s\n", n_free, n_options,
                 res->matrix_seconds);
    if (n_extra)
        add_note(res,
                 "size target curve: %zu options of the presets' types that are no candidate measured too (%.2f s "
                 "of measuring in all)\n",
                 n_extra, res->matrix_seconds);

    qk_target_result tr;
    if ((st = qk_target_choose(rows, n, res->in_weights, p->target_bpw, p->target_bytes, choice, &tr))) {
        forward_error(ctx, st);
        goto done;
    }
    res->target_budget = tr.budget;
    res->target_min_bytes = tr.min_bytes;
    res->target_max_bytes = tr.max_bytes;
    res->target_error = tr.error;
    if (p->target_curve) {
        qk_target_presets_evaluate(rows, extra, n, res->in_weights, preset_types, pp, n_pp);
        const double t1 = qk_seconds();
        if ((st = qk_target_curve(rows, n, res->in_weights, p->target_curve, tr.budget, pp, n_pp, &res->curve,
                                  &res->n_curve))) {
            forward_error(ctx, st);
            goto done;
        }
        add_note(res, "size target curve: %d budgets and %zu presets' sizes solved in %.3f s\n", p->target_curve, n_pp,
                 qk_seconds() - t1);
        res->presets = pp;
        res->n_presets = n_pp;
        pp = NULL;
    }
    res->preset_error = 0.0;
    for (size_t i = 0; i < n; i++) {
        qk_model_tensor *t = &res->tensors[i];
        const qk_alloc_option *hit = rows[i].pinned ? &rows[i].opt[0] : NULL;
        for (int k = 0; !hit && k < rows[i].n; k++)
            if (rows[i].opt[k].type == (int)t->type) hit = &rows[i].opt[k];
        for (int k = 0; !hit && extra && k < extra[i].n; k++) /* a curve measured it */
            if (extra[i].opt[k].type == (int)t->type) hit = &extra[i].opt[k];
        if (!hit || hit->error < 0 || res->preset_error < 0)
            res->preset_error = -1.0;
        else
            res->preset_error += hit->error;
        const qk_alloc_option *o = &rows[i].opt[choice[i]];
        t->target_error = o->error;
        if (rows[i].pinned) continue;
        const uint64_t elems = (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        res->out_bytes = res->out_bytes - t->bytes + o->bytes;
        if (t->converted) res->quantized_weights -= elems;
        t->type = t->planned_type = (qk_type)o->type;
        t->bytes = o->bytes;
        t->converted = t->type != t->src_type;
        if (t->converted) res->quantized_weights += elems;
        if (t->reason == QK_PLAN_FALLBACK) t->reason = QK_PLAN_MIXTURE;
        r->ie[i] = qk_format_of(t->type)->uses_imatrix ? entries[i] : NULL;
        t->imatrix = r->ie[i] != NULL;
        r->pe[i].type = t->type;
        r->pe[i].planned = t->type;
        r->pe[i].quantize = t->converted;
    }
    assert(res->out_bytes == tr.bytes);
    res->n_splits = assign_splits(res->tensors, r->src_split, n, p);
    if (sharded_target(p)) { /* the second phase: the part of the decided plan, by its output bytes */
        if ((st = shard_rows(ctx, p, res->tensors, n, 0, &lo, &hi))) goto done;
        /* its rows against the state file's keys (each part checks its own), and their factors
         * for the report */
        if (final_part && (st = check_row_keys(ctx, r, p, res, rows, entries, lo, hi))) goto done;
        if (final_part && (st = measure_sensitivities(ctx, r, p, res, rows, entries, lo, hi, sens))) goto done;
        keep_shard(r, p, res, lo, hi);
    }
done:
    free(rows);
    free(entries);
    free(choice);
    free(sens);
    free(extra);
    free(pp);
    free(preset_types);
    return st;
}

/* What decides the output's bytes beyond what its header shows, for the resume journal: the
 * input files and the imatrix file (size and modification time, as make does), the imatrix
 * filters, and the library's version. */
static uint64_t stat_key(uint64_t h, const char *path) {
    struct stat st;
    int64_t v[3] = {-1, -1, -1};
    if (path && stat(path, &st) == 0) {
        v[0] = (int64_t)st.st_size;
        v[1] = (int64_t)st.st_mtim.tv_sec;
        v[2] = (int64_t)st.st_mtim.tv_nsec;
    }
    return qk_fnv1a64(h, v, sizeof v);
}

static uint64_t resume_key(const qk_model_quantize_params *p) {
    static const char version[] = "qkern resume 1";
    uint64_t h = qk_fnv1a64(QK_FNV1A64_INIT, version, sizeof version);
    const int lib = QK_VERSION_NUMBER;
    h = qk_fnv1a64(h, &lib, sizeof lib);
    char prefix[4096], part[4200];
    int no, count;
    if (qk_gguf_split_name_parse(p->input, prefix, sizeof prefix, &no, &count))
        for (int k = 1; k <= count; k++) {
            qk_gguf_split_name(part, sizeof part, prefix, k, count);
            h = stat_key(h, part);
        }
    else
        h = stat_key(h, p->input);
    h = stat_key(h, p->imatrix_path);
    for (size_t i = 0; i < p->n_include; i++)
        h = qk_fnv1a64(h, p->include_weights[i], strlen(p->include_weights[i]) + 1);
    h = qk_fnv1a64(h, "|", 1);
    for (size_t i = 0; i < p->n_exclude; i++)
        h = qk_fnv1a64(h, p->exclude_weights[i], strlen(p->exclude_weights[i]) + 1);
    return h;
}

/* One note per part that a resuming run found a journal for. */
static void resume_notes(const run *r, qk_model_quantize_result *res) {
    for (int k = 0; k < r->n_w; k++) {
        size_t journaled, resumed;
        int other_run;
        qk_gguf_writer_resume_info(r->w[k], &journaled, &resumed, &other_run);
        const char *tmp = qk_gguf_writer_temp_path(r->w[k]);
        if (other_run)
            add_note(res,
                     "resume: %s: the journal is from another run (other inputs, options or version): started over\n",
                     tmp);
        else if (resumed < journaled)
            add_note(
                res,
                "resume: %s: %zu tensors kept; tensor %zu's bytes differ from the journal: written again from there\n",
                tmp, resumed, resumed);
        else if (resumed)
            add_note(res, "resume: %s: %zu tensors kept (checked), the rest written\n", tmp, resumed);
    }
}

static qk_status open_outputs(qk_context *ctx, run *r, const qk_model_quantize_params *p,
                              qk_model_quantize_result *res) {
    int parts = res->n_splits;
    r->w = calloc((size_t)parts, sizeof *r->w);
    if (!r->w) return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory");
    r->n_w = parts;
    for (int k = 0; k < parts; k++) {
        if (p->shard_count && k != p->shard_index - 1) continue; /* another run writes it */
        qk_status st = qk_gguf_writer_create(&r->w[k]);
        if (st) return forward_error(ctx, st);
        if (p->resume) qk_gguf_writer_set_resume(r->w[k], resume_key(p));
        /* after the first part, llama-quantize's --keep-split and gguf-split write only the split
         * keys; gguf-split writes them even for one part, and so does a shard */
        const int split_named = p->keep_split || p->shard_count;
        st = k == 0 || !split_named ? setup_metadata(ctx, r->w[k], r->in, p, r->im, r->block_count) : QK_OK;
        if (st) return st;
        if (parts > 1 || p->shard_count) {
            st = qk_gguf_writer_set_u16(r->w[k], "split.no", (uint16_t)k);
            if (!st) st = qk_gguf_writer_set_u16(r->w[k], "split.count", (uint16_t)parts);
            if (!st) st = qk_gguf_writer_set_i32(r->w[k], "split.tensors.count", (int32_t)r->all_tensors);
            if (st) return forward_error(ctx, st);
        }
    }
    for (size_t i = 0; i < res->n_tensors; i++) {
        const qk_model_tensor *t = &res->tensors[i];
        qk_status st = qk_gguf_writer_add_tensor(r->w[t->split], t->name, t->type, t->n_dims, t->ne);
        if (st) return forward_error(ctx, st);
    }
    res->out_file_bytes = 0;
    for (int k = 0; k < parts; k++) {
        if (!r->w[k]) continue;
        char path[4200];
        output_part_path(path, sizeof path, p->output, p->keep_split || p->shard_count, parts, k);
        qk_status st = qk_gguf_writer_begin(r->w[k], path);
        if (st) return forward_error(ctx, st);
        res->out_file_bytes += qk_gguf_writer_file_bytes(r->w[k]);
    }
    if (p->resume) resume_notes(r, res);
    return QK_OK;
}

/* ---- several devices ------------------------------------------------------------------------ */

/* With extra contexts (qkern.h's desc.extra_contexts), one worker thread per context converts
 * steps and the calling thread writes them. The steps are handed out one at a time, in output
 * order, to whichever worker is free: a device that is faster, or whose types are cheaper, comes
 * back sooner and takes more of them, so the load balances by what each step actually costs on
 * each device, where a split decided beforehand would need a cost per type and per device (a cpu
 * beside a GPU differs by 100x, and by type) and still leave the devices idle at the end by the
 * size of its error. A worker several times slower than another declines (pool_pick.h): the
 * writer would wait for its step while the faster device idles. Handing out in output order keeps the steps in flight
 * close together: the writer never waits long for the oldest one, and at most POOL_OUTS steps a worker are held
 * (converted, not yet written), which bounds the memory (limit_chunk). Every step handed out is
 * converted without waiting on anything, so the writer always gets the one it waits for: no
 * deadlock, on a failure either. A failure stops the hand-out; the steps in flight finish, and
 * the failure of the earliest step (in output order, the writer's own included) is reported, as
 * one device would have met it first. Copied tensors are read and written by the calling thread. */
#define POOL_OUTS 2 /* per worker: one step being converted, one waiting for the writer */

typedef struct pool_out {
    unsigned char *dst; /* buf_bytes: the converted step */
    int busy;           /* handed out and not yet written */
    uint64_t seq;       /* its place among all the pool's steps, in output order */
    size_t i;           /* tensor */
    step sp;
    qk_quantize_error err; /* with measure_error */
} pool_out;

struct pool;

typedef struct pool_worker {
    struct pool *pool;
    stream_state s;       /* its context and scratch (src_f32, check); s.stats is `stats` */
    qk_model_stats stats; /* its own stages: their sum is its device's busy time */
    pool_out out[POOL_OUTS];
    pthread_t thread;
    /* for the hand-out (pool_pick.h), under the pool's lock: the steps converted so far, in all
     * and by output type (a cpu's speed differs by type far more than a GPU's: IQ2_XXS's search
     * against Q4_K's formula), and the one in progress */
    uint64_t done_bytes, type_bytes[QK_TYPE_ID_LIMIT];
    double done_seconds, type_seconds[QK_TYPE_ID_LIMIT];
    int busy;
    double busy_since, busy_bytes, busy_rate;
} pool_worker;

typedef struct pool {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a step handed out, converted or written; a failure */
    const run *r;
    qk_model_tensor *tensors; /* the result's rows; workers read only the plan's fields */
    size_t n_tensors;
    const unsigned char *kept; /* per tensor: 1 where --resume kept it from an earlier run */
    const unsigned char *skip; /* per tensor: 1 where no worker converts it (copied, or kept) */
    size_t next_i;             /* the next step to hand out: tensor and row */
    int64_t next_row;
    uint64_t next_seq, written; /* steps handed out; steps written (the writer's next is `written`) */
    pool_out **ready;           /* converted steps by seq % n_ready (n_ready: all the outs) */
    size_t n_ready;
    int failed;
    int writer_stopped; /* the writer gave up for the failure above (the writer's own field) */
    uint64_t fail_seq;
    qk_status fail_st;
    char fail_msg[QK_ERROR_LEN];
    pool_worker *w;
    size_t n_w;
    qk_pool_worker_view *views; /* n_w: pool_takes_next's scratch */
} pool;

/* Keeps the failure of the earliest step. Called with the lock held. */
static void pool_fail(pool *pl, uint64_t seq, qk_status st, const char *msg) {
    if (pl->failed && pl->fail_seq <= seq) return;
    pl->failed = 1;
    pl->fail_seq = seq;
    pl->fail_st = st;
    snprintf(pl->fail_msg, sizeof pl->fail_msg, "%s", msg);
    pthread_cond_broadcast(&pl->changed);
}

/* Moves the hand-out past tensors no worker converts; 0 when no step is left. */
static int pool_has_step(pool *pl) {
    while (pl->next_i < pl->n_tensors && pl->skip[pl->next_i]) pl->next_i++;
    return pl->next_i < pl->n_tensors;
}

static pool_out *free_out(pool_worker *w) {
    for (int k = 0; k < POOL_OUTS; k++)
        if (!w->out[k].busy) return &w->out[k];
    return NULL;
}

/* The next step (from pl->next_i, next_row) for worker w. */
static step pool_next_step(const pool *pl, const pool_worker *w) {
    const size_t i = pl->next_i;
    return plan_step(&pl->tensors[i], pl->r->ie[i], pl->next_row, rows_per_step(&w->s, &pl->tensors[i]));
}

/* Worker w's input bytes a second on steps of output type `type`: over its steps of that type,
 * or over all its steps before the first of it; 0 before any. */
static double worker_rate(const pool_worker *w, qk_type type) {
    if ((unsigned)type < QK_TYPE_ID_LIMIT && w->type_seconds[type] > 0.0)
        return (double)w->type_bytes[type] / w->type_seconds[type];
    return w->done_seconds > 0.0 ? (double)w->done_bytes / w->done_seconds : 0.0;
}

/* Whether worker k, free, takes the next step (pool_pick.h): by every worker's speed so far.
 * Called with the lock held. */
static int pool_takes_next(const pool *pl, size_t k) {
    qk_pool_worker_view *v = pl->views;
    const size_t n = pl->n_w;
    const double now = qk_seconds();
    const qk_model_tensor *t = &pl->tensors[pl->next_i];
    for (size_t j = 0; j < n; j++) {
        const pool_worker *w = &pl->w[j];
        v[j].rate = worker_rate(w, t->type);
        v[j].busy = w->busy;
        v[j].free_in = 0.0;
        if (w->busy && w->busy_rate > 0.0) {
            const double left = w->busy_bytes / w->busy_rate - (now - w->busy_since);
            v[j].free_in = left > 0.0 ? left : 0.0;
        }
    }
    const step sp = pool_next_step(pl, &pl->w[k]);
    return qk_pool_takes(v, n, k, (double)step_src_bytes(t, &sp));
}

static void *pool_worker_main(void *arg) {
    pool_worker *w = arg;
    pool *pl = w->pool;
    const run *r = pl->r;
    const size_t k = (size_t)(w - pl->w);
    pthread_mutex_lock(&pl->lock);
    for (;;) {
        pool_out *o = NULL;
        while (!pl->failed && pool_has_step(pl)) {
            if ((o = free_out(w)) && pool_takes_next(pl, k)) break;
            o = NULL; /* none free, or a faster worker will take the step: wait for a change */
            pthread_cond_wait(&pl->changed, &pl->lock);
        }
        if (!o) break; /* a failure, or no step left */
        const size_t i = pl->next_i;
        const qk_model_tensor *t = &pl->tensors[i];
        o->busy = 1;
        o->seq = pl->next_seq++;
        o->i = i;
        o->sp = pool_next_step(pl, w);
        pl->next_row += o->sp.rows;
        if (pl->next_row == t->ne[1] * t->ne[2] * t->ne[3]) {
            pl->next_i++;
            pl->next_row = 0;
        }
        const uint64_t bytes = step_src_bytes(t, &o->sp);
        const double t0 = qk_seconds();
        w->busy = 1;
        w->busy_since = t0;
        w->busy_bytes = (double)bytes;
        w->busy_rate = worker_rate(w, t->type);
        pthread_cond_broadcast(&pl->changed); /* the step is taken: a declining worker looks at the next */
        pthread_mutex_unlock(&pl->lock);
        qk_status st = convert_step(&w->s, t, qk_gguf_tensor_at(r->in, r->pe[i].tensor), &o->sp, o->dst, &o->err);
        const double busy = qk_seconds() - t0;
        w->s.dev->seconds += busy;
        pthread_mutex_lock(&pl->lock);
        w->busy = 0;
        w->done_bytes += bytes;
        w->done_seconds += busy;
        if ((unsigned)t->type < QK_TYPE_ID_LIMIT) {
            w->type_bytes[t->type] += bytes;
            w->type_seconds[t->type] += busy;
        }
        if (st) {
            pool_fail(pl, o->seq, st, qk_last_error(w->s.ctx));
            break;
        }
        pl->ready[o->seq % pl->n_ready] = o;
        pthread_cond_broadcast(&pl->changed);
    }
    pthread_mutex_unlock(&pl->lock);
    return NULL;
}

/* The writer's side of one converted tensor: its steps, in order, as the workers finish them.
 * The time waiting for them is the calling thread's quantize stage. */
static qk_status pool_write_tensor(pool *pl, stream_state *s, qk_gguf_writer *w, size_t i, qk_model_tensor *t) {
    const int64_t total_rows = t->ne[1] * t->ne[2] * t->ne[3];
    for (int64_t row = 0; row < total_rows;) {
        qk_status st = check_cancel(s);
        if (st) return st;
        const double t0 = qk_seconds();
        pthread_mutex_lock(&pl->lock);
        pool_out *o = NULL;
        while (!pl->failed && !(o = pl->ready[pl->written % pl->n_ready])) pthread_cond_wait(&pl->changed, &pl->lock);
        const int failed = pl->failed;
        pthread_mutex_unlock(&pl->lock);
        if (failed) {
            pl->writer_stopped = 1; /* the pool's failure is reported, not this */
            return QK_ERR_BACKEND;
        }
        assert(o->seq == pl->written && o->i == i && o->sp.first_row == row);
        stage_end(&s->stats->quantize, t0, step_src_bytes(t, &o->sp));
        add_error(&s->acc, &o->err);
        st = write_step(s, w, i, t, &o->sp, o->dst);
        row += o->sp.rows;
        pthread_mutex_lock(&pl->lock);
        pl->ready[pl->written % pl->n_ready] = NULL;
        pl->written++;
        o->busy = 0;
        pthread_cond_broadcast(&pl->changed);
        pthread_mutex_unlock(&pl->lock);
        if (st) return st;
    }
    return QK_OK;
}

/* The writer: every tensor in output order; converted ones from the workers. Runs with s->ctx
 * NULL, so that its messages (the thread's own) do not meet worker 0's on ctx. */
static qk_status pool_write(pool *pl, run *r, qk_model_quantize_result *res) {
    stream_state *s = &r->s;
    for (size_t i = 0; i < res->n_tensors; i++) {
        qk_model_tensor *t = &res->tensors[i];
        const qk_gguf_tensor *src = qk_gguf_tensor_at(r->in, r->pe[i].tensor);
        const double t0 = qk_seconds();
        qk_status st;
        if (pl->kept[i]) { /* kept from an earlier run (--resume): not read */
            s->bytes_done += src->bytes;
            report(s, i, t->name, 1);
            continue;
        }
        report(s, i, t->name, 0);
        st = t->converted ? pool_write_tensor(pl, s, r->w[t->split], i, t) : copy_tensor(s, r->w[t->split], src, i);
        if (st) return st;
        qk_gguf_release_tensor(r->in, r->pe[i].tensor);
        tensor_done(s, i, t, t0);
    }
    return QK_OK;
}

/* The data pass on ctx and the extra contexts: contexts[k] is worker k's, and its row
 * res->devices[k]. kept[i]: tensor i kept by --resume. */
static qk_status stream_pool(qk_context *ctx, run *r, const qk_model_quantize_params *p, qk_model_quantize_result *res,
                             qk_context *const *contexts, size_t n_ctx, const unsigned char *kept, size_t buf_bytes) {
    stream_state *s = &r->s;
    pool pl;
    memset(&pl, 0, sizeof pl);
    pl.r = r;
    pl.tensors = res->tensors;
    pl.n_tensors = res->n_tensors;
    pl.n_w = n_ctx;
    pl.n_ready = n_ctx * POOL_OUTS;
    unsigned char *skip = calloc(res->n_tensors ? res->n_tensors : 1, 1);
    pl.kept = kept;
    pl.skip = skip;
    pl.w = calloc(n_ctx, sizeof *pl.w);
    pl.ready = calloc(pl.n_ready, sizeof *pl.ready);
    pl.views = calloc(n_ctx, sizeof *pl.views);
    qk_status st = QK_OK;
    if (!skip || !pl.w || !pl.ready || !pl.views) st = qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory");
    for (size_t i = 0; st == QK_OK && i < res->n_tensors; i++) skip[i] = kept[i] || !res->tensors[i].converted;
    for (size_t k = 0; st == QK_OK && k < n_ctx; k++) {
        pool_worker *w = &pl.w[k];
        w->pool = &pl;
        w->s = *s;
        w->s.ctx = contexts[k];
        w->s.stats = &w->stats;
        w->s.dev = &res->devices[k];
        w->s.dst = NULL;
        w->s.src_f32 = malloc(buf_bytes);
        w->s.check = p->measure_error ? malloc(buf_bytes) : NULL;
        int ok = w->s.src_f32 && (w->s.check || !p->measure_error);
        for (int j = 0; j < POOL_OUTS; j++) ok &= (w->out[j].dst = malloc(buf_bytes)) != NULL;
        if (!ok)
            st = qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory for %d workers' %zu-byte step buffers",
                         (int)n_ctx, buf_bytes);
    }
    size_t started = 0;
    if (st == QK_OK) {
        pthread_mutex_init(&pl.lock, NULL);
        pthread_cond_init(&pl.changed, NULL);
        for (; started < n_ctx; started++)
            if (pthread_create(&pl.w[started].thread, NULL, pool_worker_main, &pl.w[started]) != 0) break;
        if (started < n_ctx) {
            pthread_mutex_lock(&pl.lock);
            pool_fail(&pl, 0, QK_ERR_BACKEND, "cannot start a thread for each device");
            pthread_mutex_unlock(&pl.lock);
        }
        s->ctx = NULL;
        qk_status wst = pool_write(&pl, r, res);
        if (wst) {
            pthread_mutex_lock(&pl.lock);
            if (!pl.writer_stopped) /* its own failure, not the pool's */
                pool_fail(&pl, pl.written, wst, qk_last_error(NULL));
            pthread_mutex_unlock(&pl.lock);
        }
        for (size_t k = 0; k < started; k++) pthread_join(pl.w[k].thread, NULL);
        s->ctx = ctx;
        pthread_cond_destroy(&pl.changed);
        pthread_mutex_destroy(&pl.lock);
        if (pl.failed) st = qk_fail(ctx, pl.fail_st, "%s", pl.fail_msg);
    }
    for (size_t k = 0; pl.w && k < n_ctx; k++) {
        free(pl.w[k].s.src_f32);
        free(pl.w[k].s.check);
        for (int j = 0; j < POOL_OUTS; j++) free(pl.w[k].out[j].dst);
    }
    free(pl.w);
    free(pl.ready);
    free(pl.views);
    free(skip);
    return st;
}

/* --mem-limit: the step size that keeps host memory within p->mem_limit. Per step-sized buffer:
 * dst and src_f32, check with --report, each queue's pinned src and dst on the overlapped path, and
 * the mapped input pages of the steps not yet read and released (one a queue, or the one of the
 * synchronous path); besides them the writer's buffer and a margin for the process itself (code,
 * libraries, the plan, the metadata: measured at about 10 MB for the CLI on the CPU). With several
 * devices (n_workers > 1), per worker its POOL_OUTS outputs, src_f32, check with --report and the
 * pages of the step it reads; and the pages of the step the writer copies. */
#define MEM_LIMIT_MARGIN ((uint64_t)24 << 20)
static qk_status limit_chunk(qk_context *ctx, const qk_model_quantize_params *p, size_t widest, int any_overlapped,
                             size_t n_workers, size_t *chunk) {
    const uint64_t measure = p->measure_error ? 1 : 0,
                   buffers = n_workers > 1 ? n_workers * (POOL_OUTS + 2 + measure) + 1
                                           : 2 + measure + (any_overlapped ? 3 * QK_QUEUES : 1),
                   fixed = MEM_LIMIT_MARGIN + QK_GGUF_WRITE_BUFFER;
    const uint64_t need = fixed + buffers * (uint64_t)(widest ? widest : 1);
    if (p->mem_limit < need)
        return qk_fail(ctx, QK_ERR_INVALID_ARG,
                       "mem_limit %.1f MiB is too small: this run's %d step buffers of its widest row (%zu bytes) "
                       "and %.0f MiB besides need at least %.1f MiB",
                       (double)p->mem_limit / (1 << 20), (int)buffers, widest, (double)fixed / (1 << 20),
                       (double)need / (1 << 20));
    const uint64_t c = (p->mem_limit - fixed) / buffers;
    if (c < *chunk) *chunk = (size_t)c;
    return QK_OK;
}

/* contexts: ctx, then p->extra_contexts (n_ctx of them; res->devices has a row for each). */
static qk_status stream_data(qk_context *ctx, run *r, const qk_model_quantize_params *p, qk_model_quantize_result *res,
                             qk_context *const *contexts, size_t n_ctx) {
    stream_state *s = &r->s;
    s->ctx = ctx;
    s->p = p;
    s->stats = &res->stats;
    s->in = r->in;
    s->dev = &res->devices[0];
    s->chunk_bytes = p->chunk_bytes ? p->chunk_bytes : DEFAULT_CHUNK_BYTES;
    s->n_tensors = res->n_tensors;
    /* Buffers sized for the widest row of any converted tensor, at least one row. */
    size_t widest = 0;
    int any_overlapped = 0;
    for (size_t i = 0; i < res->n_tensors; i++) {
        const qk_model_tensor *t = &res->tensors[i];
        if (!t->converted) continue;
        size_t f32_row = (size_t)t->ne[0] * sizeof(float);
        if (f32_row > widest) widest = f32_row;
        any_overlapped |= n_ctx == 1 && overlapped(s, t);
    }
    if (p->mem_limit) {
        qk_status st = limit_chunk(ctx, p, widest, any_overlapped, n_ctx, &s->chunk_bytes);
        if (st) return st;
    }
    size_t buf_bytes = widest > s->chunk_bytes ? widest : s->chunk_bytes;
    s->bytes_total = res->in_bytes;
    s->t0 = qk_seconds();
    size_t *in_part = r->in_part = calloc((size_t)r->n_w, sizeof *in_part); /* tensors met, per part */
    if (!in_part) return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory");
    if (n_ctx > 1) {
        unsigned char *kept = calloc(res->n_tensors ? res->n_tensors : 1, 1);
        if (!kept) return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory");
        for (size_t i = 0; i < res->n_tensors; i++) {
            const int part = res->tensors[i].split;
            kept[i] = in_part[part]++ < qk_gguf_writer_resumed(r->w[part]);
        }
        qk_status st = stream_pool(ctx, r, p, res, contexts, n_ctx, kept, widest ? buf_bytes : 1);
        free(kept);
        assert(st != QK_OK || s->bytes_done == s->bytes_total);
        return st;
    }
    if (widest) {
        s->dst = malloc(buf_bytes);
        s->src_f32 = malloc(buf_bytes);
        s->check = p->measure_error ? malloc(buf_bytes) : NULL;
        if (!s->dst || !s->src_f32 || (p->measure_error && !s->check))
            return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory for %zu-byte staging buffers", buf_bytes);
    }
    for (int k = 0; any_overlapped && k < QK_QUEUES; k++) {
        qk_status st = ctx->backend->host_alloc(ctx, ctx->state, buf_bytes, &s->slots[k].src);
        if (st == QK_OK) st = ctx->backend->host_alloc(ctx, ctx->state, buf_bytes, &s->slots[k].dst);
        if (st) return st;
    }
    for (size_t i = 0; i < res->n_tensors; i++) {
        qk_model_tensor *t = &res->tensors[i];
        const qk_gguf_tensor *src = qk_gguf_tensor_at(r->in, r->pe[i].tensor);
        const double t0 = qk_seconds();
        qk_status st;
        if (in_part[t->split]++ < qk_gguf_writer_resumed(r->w[t->split])) {
            s->bytes_done += src->bytes; /* kept from an earlier run (--resume): not read */
            report(s, i, t->name, 1);
            continue;
        }
        if (overlapped(s, t)) {
            /* finished (tensor_done) by the completion of its last step, possibly later */
            if ((st = queue_tensor(s, r->w[t->split], src, t, r->ie[i], i, t0))) return st;
            qk_gguf_release_tensor(r->in, r->pe[i].tensor); /* all its bytes are in pinned buffers */
            continue;
        }
        if ((st = drain(s))) return st; /* writes stay in order */
        report(s, i, t->name, 0);
        st = t->converted ? convert_tensor(s, r->w[t->split], src, t, r->ie[i], i)
                          : copy_tensor(s, r->w[t->split], src, i);
        if (st) return st;
        qk_gguf_release_tensor(r->in, r->pe[i].tensor);
        tensor_done(s, i, t, t0);
    }
    qk_status st = drain(s);
    /* every input byte went through exactly once: progress ends at its total */
    assert(st != QK_OK || s->bytes_done == s->bytes_total);
    const qk_model_stats *t = &res->stats; /* one device: its time is the calling thread's stages */
    s->dev->seconds = t->read.seconds + t->convert.seconds + t->quantize.seconds + t->measure.seconds;
    return st;
}

/* stream_data, with each device's own time over it (its copies and kernels, internal.h) put into
 * its row of res->devices. */
static qk_status stream_data_timed(qk_context *ctx, run *r, const qk_model_quantize_params *p,
                                   qk_model_quantize_result *res, qk_context *const *contexts, size_t n_ctx) {
    qk_device_times *before = calloc(n_ctx, sizeof *before);
    if (!before) return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory");
    for (size_t k = 0; k < n_ctx; k++) before[k] = contexts[k]->times;
    const qk_status st = stream_data(ctx, r, p, res, contexts, n_ctx);
    for (size_t k = 0; k < n_ctx; k++) {
        const qk_device_times *b = &before[k], *a = &contexts[k]->times;
        qk_model_device_stats *d = &res->devices[k];
        d->h2d_seconds = a->h2d - b->h2d;
        d->kernel_seconds = a->kernel - b->kernel;
        d->d2h_seconds = a->d2h - b->d2h;
        d->h2d_bytes = a->h2d_bytes - b->h2d_bytes;
        d->d2h_bytes = a->d2h_bytes - b->d2h_bytes;
    }
    free(before);
    return st;
}

qk_status qk_model_quantize_run(qk_context *ctx, const qk_model_quantize_params *p, qk_model_quantize_result *res) {
    if (!ctx || !p || !res || !p->input || (!p->output && !p->dry_run) || !p->plan.ftype)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_model_quantize: input, output, preset and result are required");
    if (p->n_extra_contexts && !p->extra_contexts)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_model_quantize: %zu extra contexts but no array",
                       p->n_extra_contexts);
    memset(res, 0, sizeof *res);
    res->imatrix_entries = -1;
    double t0 = qk_seconds();
    run r;
    memset(&r, 0, sizeof r);
    /* the data pass's devices: ctx, then the extra ones (a row each in the result) */
    const size_t n_ctx = 1 + p->n_extra_contexts;
    qk_context **contexts = malloc(n_ctx * sizeof *contexts);
    res->devices = calloc(n_ctx, sizeof *res->devices);
    if (!contexts || !res->devices) {
        free(contexts);
        free(res->devices);
        res->devices = NULL;
        return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    res->n_devices = n_ctx;
    for (size_t k = 0; k < n_ctx; k++) {
        contexts[k] = k ? p->extra_contexts[k - 1] : ctx;
        qk_device_info info;
        if (qk_context_device(contexts[k], &info) == QK_OK)
            snprintf(res->devices[k].device, sizeof res->devices[k].device, "%s", info.id);
    }
    qk_status st = qk_gguf_open(p->input, &r.in);
    if (st) {
        forward_error(ctx, st);
        goto done;
    }
    if (p->imatrix_path) {
        st = qk_imatrix_load(p->imatrix_path, &r.im);
        if (st) {
            forward_error(ctx, st);
            goto done;
        }
        if (p->n_include) qk_imatrix_filter(r.im, p->include_weights, p->n_include, 1);
        if (p->n_exclude) qk_imatrix_filter(r.im, p->exclude_weights, p->n_exclude, 0);
        res->imatrix_entries = (int)r.im->n_entries;
    }
    st = plan_model(ctx, &r, p, res);
    if (st == QK_OK && p->output) st = check_output_not_input(ctx, p, res->n_splits);
    if (st == QK_OK && (p->target_bpw > 0 || p->target_bytes)) {
        const int planned_splits = res->n_splits;
        st = apply_target(ctx, &r, p, res);
        if (st == QK_OK && p->output && res->n_splits != planned_splits)
            st = check_output_not_input(ctx, p, res->n_splits);
    }
    if (st || p->dry_run) goto done;
    st = open_outputs(ctx, &r, p, res);
    if (st) goto done;
    st = stream_data_timed(ctx, &r, p, res, contexts, n_ctx);
    if (st) goto done;
    /* All parts complete before any appears under its name. */
    const double t_close = qk_seconds();
    for (int k = 0; k < r.n_w && st == QK_OK; k++)
        if (r.w[k] && (st = qk_gguf_writer_close(r.w[k]))) forward_error(ctx, st);
    for (int k = 0; k < r.n_w && st == QK_OK; k++)
        if (r.w[k] && (st = qk_gguf_writer_commit(r.w[k]))) forward_error(ctx, st);
    stage_end(&res->stats.write, t_close, 0);
done:
    res->seconds = res->stats.wall_seconds = qk_seconds() - t0;
    run_free(&r);
    free(contexts);
    if (st) qk_model_quantize_result_free(res);
    return st;
}
