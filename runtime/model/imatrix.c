/* Importance matrices: both file formats read into one sorted list of per-column means, and
 * written back (facts: docs/formats/GGUF.md §5). */
#include "imatrix.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_map.h"
#include "gguf.h"
#include "internal.h"

#define SUM2_SUFFIX     ".in_sum2"
#define SUM_SUFFIX      ".in_sum"
#define COUNTS_SUFFIX   ".counts"
#define KEY_DATASETS    "imatrix.datasets"
#define KEY_CHUNK_COUNT "imatrix.chunk_count"
#define KEY_CHUNK_SIZE  "imatrix.chunk_size"

/* ---- shared helpers ------------------------------------------------------------------------ */

/* Files are little-endian whatever the host; decoding byte by byte also makes unaligned
 * images (fuzzers, offsets inside a buffer) safe. */
static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static int32_t get_i32(const unsigned char *p) {
    uint32_t u = get_u32(p);
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}
static float get_f32(const unsigned char *p) {
    uint32_t u = get_u32(p);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}
static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}
static void put_f32(unsigned char *p, float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    put_u32(p, u);
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* Names in messages come from the file: control bytes would break the one-line message, and a
 * 1 KiB name would crowd out the rest. Used as show(name).s inside the qk_fail call. */
typedef struct shown {
    char s[80];
} shown;

static shown show(const char *name) {
    shown o;
    size_t i = 0, n = strlen(name);
    for (; i < n && i < sizeof o.s - 4; i++) {
        unsigned char ch = (unsigned char)name[i];
        o.s[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    if (i < n) {
        memcpy(o.s + i, "...", 3);
        i += 3;
    }
    o.s[i] = 0;
    return o;
}

static void entry_clear(qk_imatrix_entry *e) {
    free(e->name);
    free(e->values);
    free(e->means);
    e->name = NULL;
    e->values = NULL;
    e->means = NULL;
}

void qk_imatrix_free(qk_imatrix *im) {
    if (!im) return;
    for (size_t i = 0; i < im->n_entries; i++) entry_clear(&im->entries[i]);
    free(im->entries);
    free(im->dataset);
    free(im);
}

static qk_status new_imatrix(size_t capacity, const char *file, qk_imatrix **out) {
    qk_imatrix *im = calloc(1, sizeof *im);
    if (im) im->entries = calloc(capacity ? capacity : 1, sizeof *im->entries);
    if (!im || !im->entries) {
        free(im);
        return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu imatrix entries", file, capacity);
    }
    *out = im;
    return QK_OK;
}

static qk_status set_dataset(qk_imatrix *im, const char *s, size_t n, const char *file) {
    if (memchr(s, 0, n)) return qk_fail(NULL, QK_ERR_FORMAT, "%s: the imatrix dataset name contains a NUL byte", file);
    im->dataset = dup_bytes(s, n);
    if (!im->dataset) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", file);
    return QK_OK;
}

/* llama-quantize stops on a non-finite value; a negative one is no mean of squares either,
 * and the quantizers' weighted searches assume w >= 0. */
static qk_status check_values(const qk_imatrix_entry *e, const char *file) {
    int64_t n = e->n_mat * e->cols;
    for (int64_t i = 0; i < n; i++) {
        float v = e->values[i];
        if (isfinite(v) && v >= 0) continue;
        if (e->n_mat > 1)
            return qk_fail(
                NULL, QK_ERR_VALUE,
                "%s: imatrix entry '%s' value %lld (matrix %lld, column %lld) is %g; must be finite and >= 0", file,
                show(e->name).s, (long long)i, (long long)(i / e->cols), (long long)(i % e->cols), v);
        return qk_fail(NULL, QK_ERR_VALUE, "%s: imatrix entry '%s' value %lld is %g; must be finite and >= 0", file,
                       show(e->name).s, (long long)i, v);
    }
    return QK_OK;
}

static const char *type_name(qk_type t) {
    const char *n = qk_type_name(t);
    return n ? n : "an unknown type";
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const qk_imatrix_entry *)a)->name, ((const qk_imatrix_entry *)b)->name);
}

/* qk_imatrix_find relies on strcmp order; a duplicate would make lookups ambiguous (the
 * legacy reader of llama.cpp silently keeps the last one). */
static qk_status sort_entries(qk_imatrix *im, const char *file) {
    if (im->n_entries > 1) qsort(im->entries, im->n_entries, sizeof *im->entries, cmp_entry);
    for (size_t i = 1; i < im->n_entries; i++)
        if (strcmp(im->entries[i - 1].name, im->entries[i].name) == 0)
            return qk_fail(NULL, QK_ERR_FORMAT, "%s: duplicate imatrix entry '%s'", file, show(im->entries[i].name).s);
    return QK_OK;
}

/* ---- legacy reader ------------------------------------------------------------------------- */

typedef struct cursor {
    const unsigned char *p;
    size_t left;
    size_t base_size;
} cursor;

static size_t cur_offset(const cursor *c) { return c->base_size - c->left; }

static int take_i32(cursor *c, int32_t *v) {
    if (c->left < 4) return 0;
    *v = get_i32(c->p);
    c->p += 4;
    c->left -= 4;
    return 1;
}

/* Smallest legacy entry: name_len, one name byte, ncall, nval, one value. */
#define LEGACY_MIN_ENTRY 17

static qk_status legacy_entry(cursor *c, int32_t idx, const char *file, qk_imatrix_entry *e) {
    int32_t name_len, ncall, nval;
    if (!take_i32(c, &name_len))
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: legacy imatrix truncated in entry %d (name length) at offset %zu",
                       file, idx, cur_offset(c));
    if (name_len <= 0 || name_len > QK_IMATRIX_MAX_NAME)
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: legacy imatrix entry %d has name length %d (must be 1..%d)", file, idx,
                       name_len, QK_IMATRIX_MAX_NAME);
    if ((size_t)name_len > c->left)
        return qk_fail(NULL, QK_ERR_FORMAT,
                       "%s: legacy imatrix entry %d: name of %d bytes at offset %zu runs past the end (%zu left)", file,
                       idx, name_len, cur_offset(c), c->left);
    if (memchr(c->p, 0, (size_t)name_len))
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: legacy imatrix entry %d: name contains a NUL byte", file, idx);
    e->name = dup_bytes((const char *)c->p, (size_t)name_len);
    if (!e->name) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", file);
    c->p += name_len;
    c->left -= (size_t)name_len;

    if (!take_i32(c, &ncall) || !take_i32(c, &nval))
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: legacy imatrix truncated in entry %d ('%s') before its value count",
                       file, idx, show(e->name).s);
    if (nval <= 0)
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: legacy imatrix entry %d ('%s') has %d values (must be > 0)", file, idx,
                       show(e->name).s, nval);
    size_t bytes;
    if (__builtin_mul_overflow((size_t)nval, (size_t)4, &bytes) || bytes > c->left)
        return qk_fail(NULL, QK_ERR_FORMAT,
                       "%s: legacy imatrix entry %d ('%s'): %d values at offset %zu run past the end (%zu bytes left)",
                       file, idx, show(e->name).s, nval, cur_offset(c), c->left);
    e->values = malloc(bytes);
    if (!e->values) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory for %d values", file, nval);
    e->n_mat = 1;
    e->cols = nval;
    for (int32_t i = 0; i < nval; i++) {
        float v = get_f32(c->p + (size_t)i * 4);
        /* The collector stores mean * ncall; ncall <= 0 means the values are already means. */
        e->values[i] = ncall > 0 ? v / (float)ncall : v;
    }
    c->p += bytes;
    c->left -= bytes;
    return check_values(e, file);
}

static qk_status parse_legacy(const unsigned char *data, size_t size, const char *file, qk_imatrix **out) {
    cursor c = {data, size, size};
    int32_t n_entries;
    if (!take_i32(&c, &n_entries))
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: not an imatrix file (%zu bytes: neither GGUF nor legacy)", file, size);
    if (n_entries <= 0)
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: legacy imatrix has %d entries (no data)", file, n_entries);
    if ((size_t)n_entries > c.left / LEGACY_MIN_ENTRY)
        return qk_fail(NULL, QK_ERR_FORMAT,
                       "%s: legacy imatrix claims %d entries but only %zu bytes follow (not an imatrix file?)", file,
                       n_entries, c.left);

    qk_imatrix *im = NULL;
    qk_status st = new_imatrix((size_t)n_entries, file, &im);
    if (st) return st;
    im->legacy = 1;
    for (int32_t i = 0; i < n_entries; i++) {
        im->n_entries++; /* counted first so qk_imatrix_free releases a partly read entry */
        st = legacy_entry(&c, i, file, &im->entries[i]);
        if (st) goto fail;
    }

    /* Optional trailer (newer writers): chunks processed and the dataset name. */
    if (c.left > 0) {
        int32_t last_chunk, dataset_len;
        if (!take_i32(&c, &last_chunk) || !take_i32(&c, &dataset_len)) {
            st = qk_fail(NULL, QK_ERR_FORMAT, "%s: legacy imatrix trailer truncated at offset %zu", file,
                         cur_offset(&c));
            goto fail;
        }
        if (last_chunk < 0 || dataset_len < 0 || (size_t)dataset_len > c.left) {
            st = qk_fail(NULL, QK_ERR_FORMAT,
                         "%s: legacy imatrix trailer is invalid (chunk count %d, dataset name of %d bytes, %zu left)",
                         file, last_chunk, dataset_len, c.left);
            goto fail;
        }
        if ((st = set_dataset(im, (const char *)c.p, (size_t)dataset_len, file))) goto fail;
        c.p += dataset_len;
        c.left -= (size_t)dataset_len;
        im->chunk_count = last_chunk;
        if (c.left > 0) {
            st =
                qk_fail(NULL, QK_ERR_FORMAT, "%s: %zu unexpected bytes after the legacy imatrix trailer", file, c.left);
            goto fail;
        }
    } else if ((st = set_dataset(im, "", 0, file))) {
        goto fail;
    }
    if ((st = sort_entries(im, file))) goto fail;
    *out = im;
    return QK_OK;
fail:
    qk_imatrix_free(im);
    return st;
}

/* ---- GGUF reader --------------------------------------------------------------------------- */

static const qk_gguf_kv *required_kv(const qk_gguf *g, const char *key, const char *file, qk_status *st) {
    const qk_gguf_kv *kv = qk_gguf_find_kv(g, key);
    if (!kv)
        *st = qk_fail(NULL, QK_ERR_FORMAT, "%s: GGUF imatrix lacks the required key '%s' (llama-quantize needs it)",
                      file, key);
    return kv;
}

static qk_status read_chunk_key(const qk_gguf_kv *kv, const char *file, int64_t *out) {
    if (qk_gguf_kv_int(kv, out) != QK_OK || *out < 0)
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: key '%s' must be a non-negative integer", file, kv->key);
    return QK_OK;
}

static qk_status gguf_metadata(const qk_gguf *g, const char *file, qk_imatrix *im) {
    qk_status st = QK_OK;
    const qk_gguf_kv *ds = required_kv(g, KEY_DATASETS, file, &st);
    const qk_gguf_kv *cc = ds ? required_kv(g, KEY_CHUNK_COUNT, file, &st) : NULL;
    const qk_gguf_kv *cs = cc ? required_kv(g, KEY_CHUNK_SIZE, file, &st) : NULL;
    if (!cs) return st;

    qk_gguf_vtype elem;
    uint64_t count;
    const unsigned char *first;
    if (ds->type != QK_GGUF_ARRAY || qk_gguf_kv_array(ds, &elem, &count, &first) != QK_OK || elem != QK_GGUF_STRING)
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: key '%s' must be an array of strings", file, KEY_DATASETS);
    if (count > 0) {
        const char *s;
        uint64_t len;
        if (qk_gguf_kv_array_string(ds, 0, &s, &len) != QK_OK || len > SIZE_MAX - 1)
            return qk_fail(NULL, QK_ERR_FORMAT, "%s: key '%s': cannot read its first string", file, KEY_DATASETS);
        if ((st = set_dataset(im, s, (size_t)len, file))) return st;
    } else if ((st = set_dataset(im, "", 0, file))) {
        return st;
    }
    if ((st = read_chunk_key(cc, file, &im->chunk_count))) return st;
    return read_chunk_key(cs, file, &im->chunk_size);
}

/* The entry name of a tensor named `<entry><suffix>`, as a length; 0 if it lacks the suffix. */
static size_t strip_suffix(const char *name, const char *suffix) {
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && memcmp(name + n - s, suffix, s) == 0 ? n - s : 0;
}

/* Means are any finite number; a mean square below the mean's square is rounding (or a merge of
 * files), which the measure clamps. */
static qk_status check_means(const qk_imatrix_entry *e, const char *file) {
    for (int64_t i = 0; i < e->n_mat * e->cols; i++)
        if (!isfinite(e->means[i]))
            return qk_fail(
                NULL, QK_ERR_VALUE, "%s: imatrix entry '%s' mean %lld (matrix %lld, column %lld) is %g; must be finite",
                file, show(e->name).s, (long long)i, (long long)(i / e->cols), (long long)(i % e->cols), e->means[i]);
    return QK_OK;
}

/* `<name>.in_sum` / counts into e->means, e's values already read (so e->n_mat and e->cols hold
 * in_sum2's shape, which in_sum must have). */
static qk_status gguf_means(const qk_gguf_tensor *sum, const qk_gguf_tensor *counts, const char *file,
                            qk_imatrix_entry *e) {
    if (sum->type != QK_TYPE_F32)
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: imatrix tensor '%s' must be F32 (found %s)", file, show(sum->name).s,
                       type_name(sum->type));
    if (sum->ne[0] != e->cols || sum->ne[1] != e->n_mat || sum->ne[2] != 1 || sum->ne[3] != 1)
        return qk_fail(NULL, QK_ERR_FORMAT,
                       "%s: imatrix tensor '%s' has shape [%lld, %lld, %lld, %lld]; expected [%lld, %lld] as its "
                       "'%s'",
                       file, show(sum->name).s, (long long)sum->ne[0], (long long)sum->ne[1], (long long)sum->ne[2],
                       (long long)sum->ne[3], (long long)e->cols, (long long)e->n_mat, SUM2_SUFFIX);
    size_t n = (size_t)e->cols * (size_t)e->n_mat;
    e->means = malloc(n * sizeof *e->means);
    if (!e->means) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu means", file, n);
    for (int64_t m = 0; m < e->n_mat; m++) {
        /* the counts were checked (finite, >= 0) with the values */
        float count = get_f32(counts->data + (size_t)m * 4);
        const unsigned char *row = sum->data + (size_t)m * (size_t)e->cols * 4;
        float *dst = e->means + (size_t)m * (size_t)e->cols;
        for (int64_t j = 0; j < e->cols; j++) dst[j] = count > 0 ? get_f32(row + (size_t)j * 4) / count : 0.0f;
    }
    return check_means(e, file);
}

static qk_status gguf_entry(const qk_gguf_tensor *sums, const qk_gguf_tensor *counts, size_t name_len, const char *file,
                            qk_imatrix_entry *e) {
    e->name = dup_bytes(sums->name, name_len);
    if (!e->name) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", file);
    if (sums->type != QK_TYPE_F32 || counts->type != QK_TYPE_F32)
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: imatrix tensors '%s' and '%s' must be F32 (found %s and %s)", file,
                       show(sums->name).s, show(counts->name).s, type_name(sums->type), type_name(counts->type));
    int64_t k = sums->ne[0], n_mat = sums->ne[1];
    if (k < 1 || n_mat < 1 || sums->ne[2] != 1 || sums->ne[3] != 1)
        return qk_fail(NULL, QK_ERR_FORMAT,
                       "%s: imatrix tensor '%s' has shape [%lld, %lld, %lld, %lld]; expected [K, n_mat] with both > 0",
                       file, show(sums->name).s, (long long)sums->ne[0], (long long)sums->ne[1], (long long)sums->ne[2],
                       (long long)sums->ne[3]);
    if (counts->ne[0] != 1 || counts->ne[1] != n_mat || counts->ne[2] != 1 || counts->ne[3] != 1)
        return qk_fail(NULL, QK_ERR_FORMAT,
                       "%s: imatrix tensor '%s' has shape [%lld, %lld, %lld, %lld]; expected [1, %lld]", file,
                       show(counts->name).s, (long long)counts->ne[0], (long long)counts->ne[1],
                       (long long)counts->ne[2], (long long)counts->ne[3], (long long)n_mat);
    /* The GGUF reader checked that both tensors lie inside the image, so k * n_mat floats exist. */
    size_t n = (size_t)k * (size_t)n_mat;
    e->values = malloc(n * sizeof *e->values);
    if (!e->values) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu values", file, n);
    e->n_mat = n_mat;
    e->cols = k;
    for (int64_t m = 0; m < n_mat; m++) {
        float count = get_f32(counts->data + (size_t)m * 4);
        if (!isfinite(count) || count < 0)
            return qk_fail(NULL, QK_ERR_VALUE, "%s: imatrix entry '%s' count %lld is %g; must be finite and >= 0", file,
                           show(e->name).s, (long long)m, count);
        const unsigned char *row = sums->data + (size_t)m * (size_t)k * 4;
        float *dst = e->values + (size_t)m * (size_t)k;
        /* A matrix that never saw input (an expert never routed) gets flat weights, as in
         * llama-quantize. */
        for (int64_t j = 0; j < k; j++) dst[j] = count > 0 ? get_f32(row + (size_t)j * 4) / count : 1.0f;
    }
    return check_values(e, file);
}

static qk_status gguf_entries(const qk_gguf *g, const char *file, qk_imatrix *im) {
    size_t nt = qk_gguf_tensor_count(g);
    char other[QK_GGUF_MAX_NAME + 16];
    for (size_t i = 0; i < nt; i++) {
        const qk_gguf_tensor *t = qk_gguf_tensor_at(g, i);
        size_t len;
        qk_status st;
        if ((len = strip_suffix(t->name, SUM2_SUFFIX)) > 0) {
            snprintf(other, sizeof other, "%.*s%s", (int)len, t->name, COUNTS_SUFFIX);
            const qk_gguf_tensor *counts = qk_gguf_find_tensor(g, other);
            if (!counts)
                return qk_fail(NULL, QK_ERR_FORMAT, "%s: imatrix tensor '%s' has no matching '%s'", file,
                               show(t->name).s, show(other).s);
            im->n_entries++;
            qk_imatrix_entry *e = &im->entries[im->n_entries - 1];
            if ((st = gguf_entry(t, counts, len, file, e))) return st;
            snprintf(other, sizeof other, "%.*s%s", (int)len, t->name, SUM_SUFFIX);
            const qk_gguf_tensor *sum = qk_gguf_find_tensor(g, other);
            if (sum && (st = gguf_means(sum, counts, file, e))) return st;
        } else if ((len = strip_suffix(t->name, COUNTS_SUFFIX)) > 0) {
            snprintf(other, sizeof other, "%.*s%s", (int)len, t->name, SUM2_SUFFIX);
            if (!qk_gguf_find_tensor(g, other))
                return qk_fail(NULL, QK_ERR_FORMAT, "%s: imatrix tensor '%s' has no matching '%s'", file,
                               show(t->name).s, show(other).s);
        } else if (strcmp(t->name, SUM2_SUFFIX) == 0 || strcmp(t->name, COUNTS_SUFFIX) == 0) {
            return qk_fail(NULL, QK_ERR_FORMAT, "%s: imatrix tensor '%s' has an empty entry name", file,
                           show(t->name).s);
        }
        /* Anything else is not needed; `<name>.in_sum` is read with its in_sum2. */
    }
    if (im->n_entries == 0)
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: GGUF imatrix has no '<name>%s' tensors (no data)", file, SUM2_SUFFIX);
    return sort_entries(im, file);
}

static qk_status parse_gguf(const void *data, size_t size, const char *file, qk_imatrix **out) {
    qk_gguf *g;
    qk_status st = qk_gguf_parse(data, size, file, &g);
    if (st) return st;
    qk_imatrix *im = NULL;
    /* Every entry takes at least two tensors, so half the tensor count is enough room. */
    if ((st = new_imatrix(qk_gguf_tensor_count(g) / 2, file, &im))) goto done;
    if ((st = gguf_metadata(g, file, im)) || (st = gguf_entries(g, file, im))) {
        qk_imatrix_free(im);
        goto done;
    }
    *out = im;
done:
    qk_gguf_close(g);
    return st;
}

/* ---- entry points: parse, load, find, filter ----------------------------------------------- */

qk_status qk_imatrix_parse(const void *data, size_t size, const char *name, qk_imatrix **out) {
    if (!out) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_imatrix_parse: out is NULL");
    *out = NULL;
    if (!name) name = "imatrix";
    if (!data && size > 0) return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: no data", name);
    static const unsigned char empty[1];
    const unsigned char *p = data ? data : empty;
    if (size >= 4 && memcmp(p, "GGUF", 4) == 0) return parse_gguf(p, size, name, out);
    return parse_legacy(p, size, name, out);
}

qk_status qk_imatrix_load(const char *path, qk_imatrix **out) {
    if (!out || !path) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_imatrix_load: path or out is NULL");
    *out = NULL;
    qk_file_map m;
    qk_status st = qk_file_map_open(path, "the imatrix file", &m);
    if (st != QK_OK) return st;
    /* Everything parsed is copied out, so the mapping only lives for the parse. */
    st = qk_imatrix_parse(m.data, m.size, path, out);
    qk_file_map_close(&m);
    return st;
}

const qk_imatrix_entry *qk_imatrix_find(const qk_imatrix *im, const char *name) {
    if (!im || !name) return NULL;
    size_t lo = 0, hi = im->n_entries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(im->entries[mid].name, name);
        if (c == 0) return &im->entries[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void qk_imatrix_filter(qk_imatrix *im, const char *const *substrings, size_t n, int include) {
    if (!im || !substrings || n == 0) return;
    size_t kept = 0;
    for (size_t i = 0; i < im->n_entries; i++) {
        int match = 0;
        for (size_t k = 0; k < n && !match; k++) match = substrings[k] && strstr(im->entries[i].name, substrings[k]);
        if (match == !!include) {
            im->entries[kept++] = im->entries[i];
        } else {
            entry_clear(&im->entries[i]);
        }
    }
    im->n_entries = kept;
}

/* ---- writers ------------------------------------------------------------------------------- */

static int cmp_entry_ptr(const void *a, const void *b) {
    return strcmp((*(const qk_imatrix_entry *const *)a)->name, (*(const qk_imatrix_entry *const *)b)->name);
}

/* The entries in name order, checked so that the file written is one our reader accepts. */
static qk_status writer_order(const qk_imatrix *im, const char *path, const qk_imatrix_entry ***out) {
    if (!im || im->n_entries == 0 || !im->entries)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: no imatrix entries to write", path);
    const qk_imatrix_entry **order = malloc(im->n_entries * sizeof *order);
    if (!order) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    qk_status st = QK_OK;
    for (size_t i = 0; i < im->n_entries && !st; i++) {
        const qk_imatrix_entry *e = &im->entries[i];
        int64_t n;
        order[i] = e;
        if (!e->name || !e->name[0] || !e->values || e->n_mat < 1 || e->cols < 1 ||
            __builtin_mul_overflow(e->n_mat, e->cols, &n) || n > (int64_t)(SIZE_MAX / 4))
            st = qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: imatrix entry %zu ('%s') has no name, no values or a bad shape",
                         path, i, e->name ? e->name : "");
        else if ((st = check_values(e, path)) == QK_OK && e->means)
            st = check_means(e, path);
    }
    if (!st) qsort(order, im->n_entries, sizeof *order, cmp_entry_ptr);
    for (size_t i = 1; i < im->n_entries && !st; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0)
            st = qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: duplicate imatrix entry '%s'", path, order[i]->name);
    if (st) {
        free(order);
        return st;
    }
    *out = order;
    return QK_OK;
}

static qk_status gguf_metadata_out(qk_gguf_writer *w, const qk_imatrix *im, const char *path) {
    if (im->chunk_count < 0 || im->chunk_count > UINT32_MAX || im->chunk_size < 0 || im->chunk_size > UINT32_MAX)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: chunk count %lld or chunk size %lld does not fit UINT32", path,
                       (long long)im->chunk_count, (long long)im->chunk_size);
    const char *dataset = im->dataset ? im->dataset : "";
    qk_status st;
    if ((st = qk_gguf_writer_set_string(w, "general.type", "imatrix"))) return st;
    if ((st = qk_gguf_writer_set_string_array(w, KEY_DATASETS, &dataset, 1))) return st;
    if ((st = qk_gguf_writer_set_u32(w, KEY_CHUNK_COUNT, (uint32_t)im->chunk_count))) return st;
    return qk_gguf_writer_set_u32(w, KEY_CHUNK_SIZE, (uint32_t)im->chunk_size);
}

/* Streams an entry's per-matrix values times the matrix's count (in_sum2 from values, in_sum from
 * means): `what` names them in the overflow message. */
static qk_status gguf_scaled_out(qk_gguf_writer *w, const qk_imatrix_entry *e, const float *v, const char *what,
                                 const float *counts, float dflt, unsigned char *buf, const char *path) {
    for (int64_t m = 0; m < e->n_mat; m++) {
        float c = counts ? counts[m] : dflt;
        for (int64_t j = 0; j < e->cols; j++) {
            float s = v[m * e->cols + j] * c;
            if (!isfinite(s))
                return qk_fail(NULL, QK_ERR_VALUE, "%s: imatrix entry '%s' %s %lld times count %g overflows", path,
                               e->name, what, (long long)(m * e->cols + j), c);
            put_f32(buf + (size_t)j * 4, s);
        }
        qk_status st = qk_gguf_writer_write(w, buf, (size_t)e->cols * 4);
        if (st) return st;
    }
    return QK_OK;
}

/* Streams one entry's in_sum2 (value * count), counts and, with means, in_sum (mean * count);
 * `counts` may be NULL (all `dflt`). */
static qk_status gguf_entry_out(qk_gguf_writer *w, const qk_imatrix_entry *e, const float *counts, float dflt,
                                unsigned char *buf, const char *path) {
    qk_status st = gguf_scaled_out(w, e, e->values, "value", counts, dflt, buf, path);
    if (st) return st;
    for (int64_t m = 0; m < e->n_mat; m++) put_f32(buf + (size_t)m * 4, counts ? counts[m] : dflt);
    if ((st = qk_gguf_writer_write(w, buf, (size_t)e->n_mat * 4)) || !e->means) return st;
    return gguf_scaled_out(w, e, e->means, "mean", counts, dflt, buf, path);
}

qk_status qk_imatrix_save_gguf(const qk_imatrix *im, const float *const *counts, const char *path) {
    if (!path) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_imatrix_save_gguf: path is NULL");
    const qk_imatrix_entry **order;
    qk_status st = writer_order(im, path, &order);
    if (st) return st;

    int64_t rows = 0;
    if (!counts && (__builtin_mul_overflow(im->chunk_count, im->chunk_size, &rows) || rows < 0)) rows = INT64_MAX;
    float dflt = rows > 0 ? (float)rows : 1.0f;
    size_t buf_floats = 1;
    for (size_t i = 0; i < im->n_entries; i++) {
        const qk_imatrix_entry *e = &im->entries[i];
        if ((size_t)e->cols > buf_floats) buf_floats = (size_t)e->cols;
        if ((size_t)e->n_mat > buf_floats) buf_floats = (size_t)e->n_mat;
        if (counts && !counts[i]) {
            free(order);
            return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: no counts given for imatrix entry '%s'", path, e->name);
        }
        if (e->means && (st = check_means(e, path))) {
            free(order);
            return st;
        }
        for (int64_t m = 0; counts && m < e->n_mat; m++) {
            float c = counts[i][m];
            if (!isfinite(c) || c < 0) {
                free(order);
                return qk_fail(NULL, QK_ERR_VALUE, "%s: imatrix entry '%s' count %lld is %g; must be finite and >= 0",
                               path, e->name, (long long)m, c);
            }
        }
    }

    qk_gguf_writer *w = NULL;
    unsigned char *buf = malloc(buf_floats * 4);
    if (!buf) {
        st = qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        goto done;
    }
    if ((st = qk_gguf_writer_create(&w)) || (st = gguf_metadata_out(w, im, path))) goto done;
    char tname[QK_GGUF_MAX_NAME + 1];
    for (size_t i = 0; i < im->n_entries; i++) {
        const qk_imatrix_entry *e = order[i];
        if (strlen(e->name) + strlen(SUM2_SUFFIX) > QK_GGUF_MAX_NAME) {
            st = qk_fail(NULL, QK_ERR_INVALID_ARG,
                         "%s: imatrix entry '%s' is too long for a GGUF tensor name with '%s' (%d bytes at most)", path,
                         e->name, SUM2_SUFFIX, QK_GGUF_MAX_NAME);
            goto done;
        }
        int64_t ne_sums[2] = {e->cols, e->n_mat}, ne_counts[2] = {1, e->n_mat};
        snprintf(tname, sizeof tname, "%s%s", e->name, SUM2_SUFFIX);
        if ((st = qk_gguf_writer_add_tensor(w, tname, QK_TYPE_F32, 2, ne_sums))) goto done;
        snprintf(tname, sizeof tname, "%s%s", e->name, COUNTS_SUFFIX);
        if ((st = qk_gguf_writer_add_tensor(w, tname, QK_TYPE_F32, 2, ne_counts))) goto done;
        snprintf(tname, sizeof tname, "%s%s", e->name, SUM_SUFFIX);
        if (e->means && (st = qk_gguf_writer_add_tensor(w, tname, QK_TYPE_F32, 2, ne_sums))) goto done;
    }
    if ((st = qk_gguf_writer_begin(w, path))) goto done;
    for (size_t i = 0; i < im->n_entries; i++) {
        const float *c = counts ? counts[order[i] - im->entries] : NULL;
        if ((st = gguf_entry_out(w, order[i], c, dflt, buf, path))) goto done;
    }
    st = qk_gguf_writer_finish(w);
done:
    qk_gguf_writer_free(w); /* removes the temporary file of an unfinished write */
    free(buf);
    free(order);
    return st;
}

typedef struct legacy_out {
    FILE *f;
    const char *path;
    qk_status st;
} legacy_out;

static void out_bytes(legacy_out *o, const void *p, size_t n) {
    if (o->st == QK_OK && n > 0 && fwrite(p, 1, n, o->f) != n)
        o->st = qk_fail(NULL, QK_ERR_IO, "%s: write failed: %s", o->path, strerror(errno));
}
static void out_i32(legacy_out *o, int32_t v) {
    unsigned char b[4];
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    put_u32(b, u);
    out_bytes(o, b, 4);
}

static qk_status legacy_check(const qk_imatrix *im, const qk_imatrix_entry *const *order, const char *path) {
    if (im->n_entries > INT32_MAX || im->chunk_count < 0 || im->chunk_count > INT32_MAX)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: %zu entries or chunk count %lld do not fit the legacy format",
                       path, im->n_entries, (long long)im->chunk_count);
    if (im->dataset && strlen(im->dataset) > INT32_MAX)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: dataset name too long", path);
    float ncall = im->chunk_count > 0 ? (float)im->chunk_count : 1.0f;
    for (size_t i = 0; i < im->n_entries; i++) {
        const qk_imatrix_entry *e = order[i];
        if (strlen(e->name) > QK_IMATRIX_MAX_NAME || e->n_mat * e->cols > INT32_MAX)
            return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: imatrix entry '%s' is too large for the legacy format", path,
                           e->name);
        for (int64_t j = 0; j < e->n_mat * e->cols; j++)
            if (!isfinite(e->values[j] * ncall))
                return qk_fail(NULL, QK_ERR_VALUE, "%s: imatrix entry '%s' value %lld times ncall %g overflows", path,
                               e->name, (long long)j, ncall);
    }
    return QK_OK;
}

static void legacy_write_all(legacy_out *o, const qk_imatrix *im, const qk_imatrix_entry *const *order) {
    int32_t ncall = im->chunk_count > 0 ? (int32_t)im->chunk_count : 1;
    unsigned char b[4];
    out_i32(o, (int32_t)im->n_entries);
    for (size_t i = 0; i < im->n_entries && o->st == QK_OK; i++) {
        const qk_imatrix_entry *e = order[i];
        size_t len = strlen(e->name);
        int64_t n = e->n_mat * e->cols;
        out_i32(o, (int32_t)len);
        out_bytes(o, e->name, len);
        out_i32(o, ncall);
        out_i32(o, (int32_t)n);
        for (int64_t j = 0; j < n && o->st == QK_OK; j++) {
            put_f32(b, e->values[j] * (float)ncall);
            out_bytes(o, b, 4);
        }
    }
    const char *dataset = im->dataset ? im->dataset : "";
    out_i32(o, (int32_t)im->chunk_count);
    out_i32(o, (int32_t)strlen(dataset));
    out_bytes(o, dataset, strlen(dataset));
}

qk_status qk_imatrix_save_legacy(const qk_imatrix *im, const char *path) {
    if (!path) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_imatrix_save_legacy: path is NULL");
    const qk_imatrix_entry **order;
    qk_status st = writer_order(im, path, &order);
    if (st) return st;
    if ((st = legacy_check(im, order, path))) {
        free(order);
        return st;
    }

    size_t tlen = strlen(path) + 16;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(order);
        return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    snprintf(tmp, tlen, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    legacy_out o = {NULL, path, QK_OK};
    if (fd < 0) {
        o.st = qk_fail(NULL, QK_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        goto done;
    }
    /* mkstemp creates 0600; an imatrix is not secret, make it readable like other outputs. */
    if (fchmod(fd, 0644) != 0 || !(o.f = fdopen(fd, "wb"))) {
        o.st = qk_fail(NULL, QK_ERR_IO, "%s: cannot open %s: %s", path, tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto done;
    }
    legacy_write_all(&o, im, order);
    if (o.st == QK_OK && (fflush(o.f) != 0 || fsync(fileno(o.f)) != 0))
        o.st = qk_fail(NULL, QK_ERR_IO, "%s: cannot flush %s: %s", path, tmp, strerror(errno));
    if (fclose(o.f) != 0 && o.st == QK_OK)
        o.st = qk_fail(NULL, QK_ERR_IO, "%s: cannot close %s: %s", path, tmp, strerror(errno));
    if (o.st == QK_OK && rename(tmp, path) != 0)
        o.st = qk_fail(NULL, QK_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
    if (o.st != QK_OK) unlink(tmp);
done:
    free(tmp);
    free(order);
    return o.st;
}

/* ---- the public writer (qkern.h) ------------------------------------------------------------ */

qk_imatrix_write_desc qk_imatrix_write_default_desc(void) {
    qk_imatrix_write_desc d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    return d;
}

/* The caller's entries as the writers' in-memory imatrix (borrowed, not copied). */
qk_status qk_imatrix_write(const char *path, const qk_imatrix_write_desc *d) {
    if (!path || !d) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_imatrix_write: path and desc are required");
    /* a caller built before `means` was added passes the shorter struct: no means */
    const size_t before_means = offsetof(qk_imatrix_write_desc, means);
    if (d->struct_size < before_means)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_imatrix_write_desc.struct_size is %zu, expected %zu",
                       d->struct_size, sizeof *d);
    const float *const *means = d->struct_size >= sizeof *d ? d->means : NULL;
    if (means && d->legacy)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: the legacy imatrix format stores no mean activations", path);
    if (d->n_entries && !d->entries)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: %zu imatrix entries but no array", path, d->n_entries);
    const size_t n = d->n_entries;
    size_t with_counts = 0;
    for (size_t i = 0; i < n; i++) with_counts += d->entries[i].counts != NULL;
    if (with_counts && with_counts != n)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: counts given for %zu of %zu imatrix entries (all or none)", path,
                       with_counts, n);
    if (with_counts && d->legacy)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: the legacy imatrix format stores no counts", path);
    qk_imatrix im;
    memset(&im, 0, sizeof im);
    im.entries = calloc(n ? n : 1, sizeof *im.entries);
    const float **counts = with_counts ? calloc(n, sizeof *counts) : NULL;
    if (!im.entries || (with_counts && !counts)) {
        free(im.entries);
        free(counts);
        return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    for (size_t i = 0; i < n; i++) {
        const qk_imatrix_entry_desc *e = &d->entries[i];
        /* the writers only read them */
        im.entries[i] = (qk_imatrix_entry){(char *)e->name, e->n_mat, e->cols, (float *)e->values,
                                           means ? (float *)means[i] : NULL};
        if (counts) counts[i] = e->counts;
    }
    im.n_entries = n;
    im.dataset = (char *)d->dataset;
    im.chunk_count = d->chunk_count;
    im.chunk_size = d->chunk_size;
    qk_status st = d->legacy ? qk_imatrix_save_legacy(&im, path) : qk_imatrix_save_gguf(&im, counts, path);
    free(im.entries);
    free(counts);
    return st;
}
