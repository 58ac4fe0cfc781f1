#include "target.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats.h"
#include "internal.h"

/* The candidates a size target picks from when none are named: every K-quant from Q2_K, the
 * I-quants from IQ2_XXS to IQ4_XS (IQ1_* and IQ4_NL left out: the first are too lossy to win
 * anywhere but the smallest budgets, the second is IQ4_XS's grid in bigger blocks), Q8_0, MXFP4. */
static const qk_type default_types[] = {
    QK_TYPE_Q2_K,  QK_TYPE_Q3_K,    QK_TYPE_Q4_K,  QK_TYPE_Q5_K,   QK_TYPE_Q6_K, QK_TYPE_IQ2_XXS, QK_TYPE_IQ2_XS,
    QK_TYPE_IQ2_S, QK_TYPE_IQ3_XXS, QK_TYPE_IQ3_S, QK_TYPE_IQ4_XS, QK_TYPE_Q8_0, QK_TYPE_MXFP4,
};

size_t qk_model_target_default_types(int *types, size_t max) {
    size_t n = sizeof default_types / sizeof default_types[0];
    for (size_t i = 0; i < n && i < max; i++) types[i] = (int)default_types[i];
    return n < max ? n : max;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int qk_target_candidates(qk_target_row *row, const int *types, size_t n_types, const qk_plan_options *opt,
                         const char *name, int64_t cols, int64_t rows, int has_entry) {
    int sorted[QK_TARGET_MAX_OPTIONS], n = 0;
    for (size_t k = 0; k < n_types && n < QK_TARGET_MAX_OPTIONS; k++) {
        const qk_format *f = qk_format_of(types[k]);
        if (!f || f->family == QK_FAMILY_FLOAT || cols % f->block_elems) continue;
        if ((f->needs_imatrix || qk_plan_needs_imatrix(opt, name, f->type)) && !has_entry) continue;
        sorted[n++] = types[k];
    }
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_int);
    row->n = 0;
    row->pinned = 0;
    for (int k = 0; k < n; k++) {
        if (k && sorted[k] == sorted[k - 1]) continue;
        row->opt[row->n++] = (qk_alloc_option){sorted[k], qk_type_row_bytes(sorted[k], cols) * (uint64_t)rows, -1.0};
    }
    return row->n;
}

/* ---- hashing ------------------------------------------------------------------------------- */

/* Eight bytes per multiply (about memory speed), each word folded in with a multiply-xorshift
 * mix; the tail is zero-padded and the length folded in, so "ab" + "" and "a" + "b" differ. */
static uint64_t mix(uint64_t h, uint64_t w) {
    h ^= w;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

uint64_t qk_target_hash(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = mix(h, w);
    }
    uint64_t w = 0;
    if (n > i) memcpy(&w, p + i, n - i);
    return mix(mix(h, w), (uint64_t)n);
}

/* ---- the state file -------------------------------------------------------------------------- */

/* Layout, little-endian as written by this host: magic (8 bytes), key, row count, then per row
 * its key (u64), its option count (u32; bit 31 set for a pinned row, whose one option is the
 * plan's type and not measured) and per option type (i32), bytes (u64), error (f64, negative:
 * not measured); last, the hash of everything before it, so a file cut short or altered is told
 * from a whole one. A shard's file (qk_target_state_merge) is the whole matrix with only its own
 * rows measured. Files of the first layout (magic ...EM1: one key for the whole model, no row
 * keys) are refused as another run's. */
static const char state_magic[8] = {'Q', 'K', 'T', 'G', 'T', 'E', 'M', '2'};
static const char state_magic_1[8] = {'Q', 'K', 'T', 'G', 'T', 'E', 'M', '1'};
#define PINNED_BIT   0x80000000u
#define ROW_HEAD     12 /* a row's key and option count */
#define OPTION_BYTES 20

typedef struct blob {
    unsigned char *p;
    size_t len, cap;
} blob;

static int blob_put(blob *b, const void *data, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        unsigned char *grown = realloc(b->p, cap);
        if (!grown) return 0;
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 1;
}

static int encode(blob *b, uint64_t key, const qk_target_row *rows, size_t n) {
    uint64_t count = n;
    int ok = blob_put(b, state_magic, sizeof state_magic) && blob_put(b, &key, 8) && blob_put(b, &count, 8);
    for (size_t i = 0; ok && i < n; i++) {
        uint32_t k = (uint32_t)rows[i].n | (rows[i].pinned ? PINNED_BIT : 0);
        ok = blob_put(b, &rows[i].key, 8) && blob_put(b, &k, 4);
        for (int j = 0; ok && j < rows[i].n; j++) {
            int32_t type = rows[i].opt[j].type;
            ok =
                blob_put(b, &type, 4) && blob_put(b, &rows[i].opt[j].bytes, 8) && blob_put(b, &rows[i].opt[j].error, 8);
        }
    }
    uint64_t sum = ok ? qk_target_hash(QK_TARGET_HASH_SEED, b->p, b->len) : 0;
    return ok && blob_put(b, &sum, 8);
}

qk_status qk_target_state_save(const char *path, uint64_t key, const qk_target_row *rows, size_t n) {
    blob b = {0};
    if (!encode(&b, key, rows, n)) {
        free(b.p);
        return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "state file %s: out of host memory", path);
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(b.p, 1, b.len, f) == b.len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    if (f && fclose(f) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    free(b.p);
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        err = errno;
    }
    if (!ok) {
        if (f) remove(tmp);
        return qk_fail(NULL, QK_ERR_IO, "state file %s: cannot write it: %s", path, strerror(err));
    }
    return QK_OK;
}

/* Reads the whole of `path` into *in. *found = 0 (QK_OK, nothing read) when it does not exist;
 * *why says what is wrong with a file that is not a whole state file, else NULL. */
static qk_status state_read(const char *path, blob *in, int *found, const char **why) {
    *found = 0;
    *why = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return QK_OK;
        return qk_fail(NULL, QK_ERR_IO, "state file %s: %s", path, strerror(errno));
    }
    unsigned char buf[65536];
    size_t got;
    int ok = 1;
    while (ok && (got = fread(buf, 1, sizeof buf, f)) > 0) ok = blob_put(in, buf, got);
    ok = ok && !ferror(f);
    fclose(f);
    if (!ok) {
        free(in->p);
        in->p = NULL;
        return qk_fail(NULL, QK_ERR_IO, "state file %s: cannot read it", path);
    }
    *found = 1;
    uint64_t sum = 0;
    const int whole = in->len >= sizeof state_magic + 24;
    const int is_state = whole && !memcmp(in->p, state_magic, sizeof state_magic);
    if (is_state) memcpy(&sum, in->p + in->len - 8, 8);
    if (whole && !memcmp(in->p, state_magic_1, sizeof state_magic_1))
        *why = "was made for other tensor data, imatrix data or pinned tensors by an older qkern (one key for the "
               "whole model, none per tensor)";
    else if (!is_state)
        *why = "is not a qkern target state file";
    else if (sum != qk_target_hash(QK_TARGET_HASH_SEED, in->p, in->len - 8))
        *why = "is damaged or cut short (its checksum does not match)";
    return QK_OK;
}

qk_status qk_target_state_load(const char *path, uint64_t key, qk_target_row *rows, size_t n, int *found) {
    blob in = {0};
    const char *why;
    qk_status st = state_read(path, &in, found, &why);
    if (st || !*found) return st;
    *found = 0;
    uint64_t file_key = 0;
    if (!why) {
        memcpy(&file_key, in.p + 8, 8);
        blob want = {0};
        if (!encode(&want, key, rows, n)) {
            free(in.p);
            return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "state file %s: out of host memory", path);
        }
        /* Same key and the same rows (counts, types, bytes): then take its errors and row keys.
         * They sit at fixed offsets once the layout is known to agree. */
        if (file_key != key) {
            why = "was made for other tensor data, imatrix data or pinned tensors";
        } else if (want.len != in.len) {
            why = "holds other candidates for this model";
        } else {
            size_t at = 24;
            for (size_t i = 0; i < n && !why; i++) {
                if (memcmp(in.p + at + 8, want.p + at + 8, 4)) why = "holds other candidates for this model";
                at += ROW_HEAD;
                for (int j = 0; j < rows[i].n && !why; j++) {
                    if (memcmp(in.p + at, want.p + at, 12)) why = "holds other candidates for this model";
                    at += OPTION_BYTES;
                }
            }
        }
        free(want.p);
    }
    if (why) {
        free(in.p);
        return qk_fail(NULL, QK_ERR_INVALID_ARG,
                       "state file %s %s (key %016llx, this run's %016llx): remove it or name another --state-file",
                       path, why, (unsigned long long)file_key, (unsigned long long)key);
    }
    size_t at = 24;
    for (size_t i = 0; i < n; i++) {
        memcpy(&rows[i].key, in.p + at, 8);
        at += ROW_HEAD;
        for (int j = 0; j < rows[i].n; j++) {
            memcpy(&rows[i].opt[j].error, in.p + at + 12, 8);
            at += OPTION_BYTES;
        }
    }
    free(in.p);
    *found = 1;
    return QK_OK;
}

/* ---- merging shards' files ---------------------------------------------------------------- */

/* The rows of a whole state file (state_read's): key and rows (the caller frees them); NULL
 * (no message) when the layout does not hold together. */
static const char *decode(const blob *in, uint64_t *key, qk_target_row **out, size_t *n_out) {
    uint64_t count;
    memcpy(key, in->p + 8, 8);
    memcpy(&count, in->p + 16, 8);
    const size_t end = in->len - 8;
    if (count > (end - 24) / ROW_HEAD) return "is damaged (its row count does not fit the file)";
    qk_target_row *rows = calloc(count ? (size_t)count : 1, sizeof *rows);
    if (!rows) return "is too large for this host's memory";
    size_t at = 24;
    for (size_t i = 0; i < count; i++) {
        uint32_t word;
        if (at + ROW_HEAD > end) {
            free(rows);
            return "is damaged (its rows end before their count)";
        }
        memcpy(&rows[i].key, in->p + at, 8);
        memcpy(&word, in->p + at + 8, 4);
        at += ROW_HEAD;
        const uint32_t k = word & ~PINNED_BIT;
        if (k > QK_TARGET_MAX_OPTIONS || at + OPTION_BYTES * (size_t)k > end) {
            free(rows);
            return "is damaged (a row does not fit the file)";
        }
        rows[i].n = (int)k;
        rows[i].pinned = (word & PINNED_BIT) != 0;
        for (uint32_t j = 0; j < k; j++, at += OPTION_BYTES) {
            int32_t type;
            memcpy(&type, in->p + at, 4);
            rows[i].opt[j].type = type;
            memcpy(&rows[i].opt[j].bytes, in->p + at + 4, 8);
            memcpy(&rows[i].opt[j].error, in->p + at + 12, 8);
        }
    }
    if (at != end) {
        free(rows);
        return "is damaged (its rows do not fill the file)";
    }
    *out = rows;
    *n_out = (size_t)count;
    return NULL;
}

int qk_target_row_measured(const qk_target_row *row) {
    int all = !row->pinned && row->n > 0;
    for (int j = 0; all && j < row->n; j++) all = row->opt[j].error >= 0;
    return all;
}

qk_status qk_model_state_merge(const char *output, const char *const *inputs, size_t n_inputs, size_t *n_measured) {
    if (n_measured) *n_measured = 0;
    if (!output || !inputs || !n_inputs)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_model_state_merge: an output and at least one input are needed");
    qk_target_row *all = NULL, *rows = NULL;
    size_t n_all = 0, n = 0, *owner = NULL; /* owner[i]: the input that gave row i's errors */
    uint64_t key_all = 0, key = 0;
    qk_status st = QK_OK;
    for (size_t f = 0; f < n_inputs && st == QK_OK; f++) {
        const char *path = inputs[f];
        blob in = {0};
        int found;
        const char *why;
        if (!path) {
            st = qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_model_state_merge: input %zu is NULL", f);
            break;
        }
        if ((st = state_read(path, &in, &found, &why))) break;
        if (!found) why = "does not exist";
        if (!why) why = decode(&in, &key, &rows, &n);
        free(in.p);
        if (why) {
            st = qk_fail(NULL, QK_ERR_INVALID_ARG, "state file %s %s", path, why);
            break;
        }
        if (f == 0) {
            all = rows, n_all = n, key_all = key;
            rows = NULL;
            owner = malloc((n_all ? n_all : 1) * sizeof *owner);
            if (!owner) {
                st = qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "state files: out of host memory");
                break;
            }
            for (size_t i = 0; i < n_all; i++) owner[i] = qk_target_row_measured(&all[i]) ? 0 : SIZE_MAX;
            continue;
        }
        if (key != key_all) {
            st = qk_fail(NULL, QK_ERR_INVALID_ARG,
                         "state files %s and %s were made for other tensor data, imatrix data or pinned tensors (keys "
                         "%016llx, %016llx): merge the files of one model and one set of options",
                         inputs[0], path, (unsigned long long)key_all, (unsigned long long)key);
            break;
        }
        for (size_t i = 0; i < n_all && n == n_all && st == QK_OK; i++) {
            int same = rows[i].n == all[i].n && rows[i].pinned == all[i].pinned;
            for (int j = 0; same && j < rows[i].n; j++)
                same = rows[i].opt[j].type == all[i].opt[j].type && rows[i].opt[j].bytes == all[i].opt[j].bytes;
            if (!same) n = SIZE_MAX; /* reported below */
        }
        if (n != n_all) {
            st = qk_fail(NULL, QK_ERR_INVALID_ARG,
                         "state files %s and %s hold other candidates (--target-types) for the same model: merge the "
                         "files of one set of options",
                         inputs[0], path);
            break;
        }
        for (size_t i = 0; i < n_all && st == QK_OK; i++) {
            if (!qk_target_row_measured(&rows[i])) continue;
            if (owner[i] != SIZE_MAX) {
                st = qk_fail(NULL, QK_ERR_INVALID_ARG,
                             "state files %s and %s both hold the errors of tensor %zu of %zu: each shard's file once, "
                             "all made with the same --shard count",
                             inputs[owner[i]], path, i + 1, n_all);
                break;
            }
            owner[i] = f;
            all[i].key = rows[i].key;
            for (int j = 0; j < all[i].n; j++) all[i].opt[j].error = rows[i].opt[j].error;
        }
        free(rows);
        rows = NULL;
    }
    size_t missing = 0, first_missing = 0, measured = 0;
    for (size_t i = 0; st == QK_OK && i < n_all; i++) {
        if (all[i].pinned) continue;
        if (owner[i] == SIZE_MAX && !missing++) first_missing = i;
        measured += owner[i] != SIZE_MAX;
    }
    if (st == QK_OK && missing)
        st = qk_fail(NULL, QK_ERR_INVALID_ARG,
                     "the %zu state file(s) leave %zu of %zu tensors without errors (the first: tensor %zu of %zu, in "
                     "output order): is a shard's file missing, or one cut short by an interruption (run that shard "
                     "again)?",
                     n_inputs, missing, measured + missing, first_missing + 1, n_all);
    if (st == QK_OK) st = qk_target_state_save(output, key_all, all, n_all);
    if (st == QK_OK && n_measured) *n_measured = measured;
    free(rows);
    free(all);
    free(owner);
    return st;
}

/* ---- the budget ------------------------------------------------------------------------------ */

qk_status qk_target_choose(const qk_target_row *rows, size_t n, uint64_t total_weights, double target_bpw,
                           uint64_t target_bytes, int *choice, qk_target_result *out) {
    memset(out, 0, sizeof *out);
    qk_alloc_tensor *t = calloc(n ? n : 1, sizeof *t);
    if (!t) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "out of host memory for %zu tensors", n);
    for (size_t i = 0; i < n; i++) t[i] = (qk_alloc_tensor){rows[i].opt, rows[i].n};
    const double w = total_weights ? (double)total_weights : 1.0;
    double budget = target_bytes ? (double)target_bytes : floor(target_bpw * w / 8.0);
    out->budget = budget >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)budget;
    int rc = qk_alloc_solve(t, n, out->budget, choice, &out->min_bytes, &out->max_bytes);
    free(t);
    if (rc == -2) return qk_fail(NULL, QK_ERR_INVALID_ARG, "size target: the error matrix is not valid");
    if (rc == -1 || out->budget > out->max_bytes) {
        /* above the range the least-error mixture would undershoot the target: refused too,
         * so that a target is always met, not silently left behind */
        return qk_fail(NULL, QK_ERR_INVALID_ARG,
                       "size target %.4f bpw (%llu bytes of tensor data) is outside the reachable range %.4f to %.4f "
                       "bpw with these candidates and pinned tensors",
                       8.0 * (double)out->budget / w, (unsigned long long)out->budget, 8.0 * (double)out->min_bytes / w,
                       8.0 * (double)out->max_bytes / w);
    }
    for (size_t i = 0; i < n; i++) {
        out->bytes += rows[i].opt[choice[i]].bytes;
        out->error += rows[i].opt[choice[i]].error;
    }
    return QK_OK;
}
