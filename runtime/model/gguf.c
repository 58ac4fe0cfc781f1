/* The GGUF reader (GGUF.md §1-§3): every count, length and offset is checked against the bytes
 * that are left before it is used, so a hostile or truncated file yields a one-line error and
 * never an out-of-bounds access. Also the value accessors and split file names. */
#include "gguf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "file_map.h"
#include "formats.h"
#include "gguf_io.h"
#include "internal.h"

typedef struct gguf_part {
    const unsigned char *base;
    size_t size;
    void *map; /* our mapping of the whole file, or NULL for a caller's image */
    size_t map_len;
} gguf_part;

struct qk_gguf {
    uint32_t version;
    size_t alignment;
    gguf_part *parts;
    int n_parts;
    qk_gguf_kv *kv;
    size_t n_kv;
    qk_gguf_tensor *tensors;
    size_t n_tensors;
    qk_gguf_names kv_index, tensor_index;
};

/* ---- shared helpers ------------------------------------------------------------------------ */

static const unsigned char fixed_sizes[QK_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

size_t qk_gguf_fixed_size(uint32_t type) { return type < QK_GGUF_VTYPE_COUNT ? fixed_sizes[type] : 0; }

const char *qk_gguf_vtype_name(qk_gguf_vtype t) {
    static const char *const names[QK_GGUF_VTYPE_COUNT] = {"UINT8",  "INT8",    "UINT16", "INT16",  "UINT32",
                                                           "INT32",  "FLOAT32", "BOOL",   "STRING", "ARRAY",
                                                           "UINT64", "INT64",   "FLOAT64"};
    return (unsigned)t < QK_GGUF_VTYPE_COUNT ? names[t] : "UNKNOWN";
}

qk_status qk_gguf_value_extent(const unsigned char *p, size_t avail, uint32_t type, int depth, size_t *len, char *why,
                               size_t why_len) {
    size_t fixed = qk_gguf_fixed_size(type);
    if (fixed) {
        if (avail < fixed) goto truncated;
        *len = fixed;
        return QK_OK;
    }
    if (type == QK_GGUF_STRING) {
        if (avail < 8) goto truncated;
        uint64_t n = qk_le64(p);
        if (n > QK_GGUF_MAX_COUNT) {
            snprintf(why, why_len, "string length %" PRIu64 " exceeds 2^30", n);
            return QK_ERR_FORMAT;
        }
        if (n > avail - 8) goto truncated;
        *len = 8 + (size_t)n;
        return QK_OK;
    }
    if (type != QK_GGUF_ARRAY) {
        snprintf(why, why_len, "unknown value type %" PRIu32, type);
        return QK_ERR_FORMAT;
    }
    if (depth >= QK_GGUF_MAX_NESTING) {
        snprintf(why, why_len, "arrays nested deeper than %d levels", QK_GGUF_MAX_NESTING);
        return QK_ERR_FORMAT;
    }
    if (avail < 12) goto truncated;
    uint32_t elem = qk_le32(p);
    uint64_t count = qk_le64(p + 4);
    if (elem >= QK_GGUF_VTYPE_COUNT) {
        snprintf(why, why_len, "array of unknown element type %" PRIu32, elem);
        return QK_ERR_FORMAT;
    }
    if (count > QK_GGUF_MAX_COUNT) {
        snprintf(why, why_len, "array count %" PRIu64 " exceeds 2^30", count);
        return QK_ERR_FORMAT;
    }
    /* Every element takes at least this many bytes, so a count the bytes cannot hold fails
     * here, before any loop runs for it. count <= 2^30 and min <= 12: no overflow. */
    size_t rest = avail - 12;
    size_t min = fixed_sizes[elem] ? fixed_sizes[elem] : elem == QK_GGUF_STRING ? 8 : 12;
    if (count * min > rest) goto truncated;
    if (fixed_sizes[elem]) {
        *len = 12 + (size_t)count * min;
        return QK_OK;
    }
    size_t pos = 12;
    for (uint64_t i = 0; i < count; i++) {
        size_t n;
        qk_status s = qk_gguf_value_extent(p + pos, avail - pos, elem, depth + 1, &n, why, why_len);
        if (s != QK_OK) return s;
        pos += n;
    }
    *len = pos;
    return QK_OK;
truncated:
    snprintf(why, why_len, "value runs past the end of the data");
    return QK_ERR_FORMAT;
}

/* ---- name index ------------------------------------------------------------------------------ */

static uint64_t name_hash(const char *s) { return qk_fnv1a64(QK_FNV1A64_INIT, s, strlen(s)); }

void qk_gguf_names_init(qk_gguf_names *ix, qk_gguf_name_fn name_of, const void *owner) {
    memset(ix, 0, sizeof *ix);
    ix->name_of = name_of;
    ix->owner = owner;
}

void qk_gguf_names_free(qk_gguf_names *ix) {
    free(ix->slots);
    ix->slots = NULL;
    ix->cap = ix->used = 0;
}

size_t qk_gguf_names_find(const qk_gguf_names *ix, const char *name) {
    if (!ix->cap) return SIZE_MAX;
    for (size_t i = (size_t)name_hash(name) & (ix->cap - 1);; i = (i + 1) & (ix->cap - 1)) {
        size_t v = ix->slots[i];
        if (!v) return SIZE_MAX;
        if (strcmp(ix->name_of(ix->owner, v - 1), name) == 0) return v - 1;
    }
}

static void names_place(size_t *slots, size_t cap, const char *name, size_t id) {
    size_t i = (size_t)name_hash(name) & (cap - 1);
    while (slots[i]) i = (i + 1) & (cap - 1);
    slots[i] = id + 1;
}

qk_status qk_gguf_names_add(qk_gguf_names *ix, size_t id) {
    if (2 * (ix->used + 1) > ix->cap) { /* keep the load at most 1/2 */
        size_t cap = ix->cap ? 2 * ix->cap : 16;
        size_t *slots = calloc(cap, sizeof *slots);
        if (!slots) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "out of memory for a name index of %zu entries", cap);
        for (size_t i = 0; i < ix->cap; i++)
            if (ix->slots[i]) names_place(slots, cap, ix->name_of(ix->owner, ix->slots[i] - 1), ix->slots[i] - 1);
        free(ix->slots);
        ix->slots = slots;
        ix->cap = cap;
    }
    names_place(ix->slots, ix->cap, ix->name_of(ix->owner, id), id);
    ix->used++;
    return QK_OK;
}

static const char *kv_name(const void *owner, size_t id) { return ((const qk_gguf *)owner)->kv[id].key; }
static const char *tensor_name(const void *owner, size_t id) { return ((const qk_gguf *)owner)->tensors[id].name; }

/* ---- parsing one file image -------------------------------------------------------------- */

typedef struct cursor {
    const unsigned char *p;
    size_t size, pos;
    const char *name;
} cursor;

/* Fails unless n more bytes are there; `what` (printf-style) says what was being read. */
static qk_status need(const cursor *c, uint64_t n, const char *what, ...) __attribute__((format(printf, 3, 4)));
static qk_status need(const cursor *c, uint64_t n, const char *what, ...) {
    if (n <= c->size - c->pos) return QK_OK;
    char buf[160];
    va_list ap;
    va_start(ap, what);
    vsnprintf(buf, sizeof buf, what, ap);
    va_end(ap);
    return qk_fail(NULL, QK_ERR_FORMAT,
                   "%s: %s at offset %zu needs %" PRIu64 " bytes, the file ends at %zu (truncated?)", c->name, buf,
                   c->pos, n, c->size);
}

/* A name (key or tensor name): length-checked, copied, NUL-terminated, no NUL inside. */
static qk_status read_name(cursor *c, uint64_t max, char *fixed_out, char **out, const char *what, uint64_t index) {
    qk_status s = need(c, 8, "the length of %s %" PRIu64, what, index);
    if (s != QK_OK) return s;
    uint64_t n = qk_le64(c->p + c->pos);
    if (n > max)
        return qk_fail(NULL, QK_ERR_FORMAT,
                       "%s: %s %" PRIu64 " at offset %zu is %" PRIu64 " bytes long (at most %" PRIu64 ")", c->name,
                       what, index, c->pos, n, max);
    c->pos += 8;
    if ((s = need(c, n, "%s %" PRIu64, what, index)) != QK_OK) return s;
    const unsigned char *src = c->p + c->pos;
    if (memchr(src, 0, (size_t)n))
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: %s %" PRIu64 " at offset %zu contains a NUL byte", c->name, what,
                       index, c->pos);
    char *dst = fixed_out;
    if (!dst && !(dst = malloc((size_t)n + 1)))
        return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory reading %s %" PRIu64, c->name, what, index);
    memcpy(dst, src, (size_t)n);
    dst[n] = 0;
    c->pos += (size_t)n;
    if (out) *out = dst;
    return QK_OK;
}

static qk_status read_kvs(cursor *c, qk_gguf *g, uint64_t n_kv) {
    /* The smallest pair: an 8-byte length, a 1-byte key, a type, a 1-byte value. */
    if (n_kv > (c->size - c->pos) / 14)
        return qk_fail(NULL, QK_ERR_FORMAT,
                       "%s: %" PRIu64 " metadata pairs cannot fit in the %zu bytes after the header", c->name, n_kv,
                       c->size - c->pos);
    g->kv = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kv);
    if (!g->kv) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory for %" PRIu64 " pairs", c->name, n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        qk_gguf_kv *kv = &g->kv[i];
        size_t at = c->pos;
        qk_status s = read_name(c, QK_GGUF_MAX_COUNT, NULL, &kv->key, "key of pair", i);
        if (s != QK_OK) return s;
        g->n_kv = i + 1; /* owns kv->key from here on */
        if (!kv->key[0])
            return qk_fail(NULL, QK_ERR_FORMAT, "%s: pair %" PRIu64 " at offset %zu has an empty key", c->name, i, at);
        if (qk_gguf_names_find(&g->kv_index, kv->key) != SIZE_MAX)
            return qk_fail(NULL, QK_ERR_FORMAT, "%s: duplicate key '%s' (pair %" PRIu64 " at offset %zu)", c->name,
                           kv->key, i, at);
        if ((s = qk_gguf_names_add(&g->kv_index, (size_t)i)) != QK_OK) return s;
        if ((s = need(c, 4, "the type of key '%s'", kv->key)) != QK_OK) return s;
        uint32_t type = qk_le32(c->p + c->pos);
        c->pos += 4;
        size_t len;
        char why[96];
        if (qk_gguf_value_extent(c->p + c->pos, c->size - c->pos, type, 0, &len, why, sizeof why) != QK_OK)
            return qk_fail(NULL, QK_ERR_FORMAT, "%s: key '%s' (value at offset %zu): %s", c->name, kv->key, c->pos,
                           why);
        kv->type = (qk_gguf_vtype)type;
        if (!(kv->raw = malloc(len)))
            return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory for the value of '%s' (%zu bytes)", c->name,
                           kv->key, len);
        memcpy(kv->raw, c->p + c->pos, len);
        kv->raw_len = len;
        c->pos += len;
    }
    return QK_OK;
}

static qk_status read_alignment(const cursor *c, qk_gguf *g) {
    g->alignment = QK_GGUF_DEFAULT_ALIGNMENT;
    const qk_gguf_kv *kv = qk_gguf_find_kv(g, "general.alignment");
    if (!kv) return QK_OK;
    if (kv->type != QK_GGUF_UINT32)
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: general.alignment is %s, must be UINT32", c->name,
                       qk_gguf_vtype_name(kv->type));
    uint32_t a = qk_le32(kv->raw);
    if (a == 0 || (a & (a - 1)))
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: general.alignment %" PRIu32 " is not a power of two", c->name, a);
    g->alignment = a;
    return QK_OK;
}

/* Shape, type and byte size of one tensor info, ggml's checks. */
static qk_status check_tensor(const cursor *c, qk_gguf_tensor *t, uint32_t type_id) {
    for (int d = 0; d < QK_GGUF_MAX_DIMS; d++)
        if (t->ne[d] < 0)
            return qk_fail(NULL, QK_ERR_FORMAT, "%s: tensor '%s' has a negative dimension ne[%d] = %" PRId64, c->name,
                           t->name, d, t->ne[d]);
    const qk_format *f = type_id <= (uint32_t)INT32_MAX ? qk_format_of((int)type_id) : NULL;
    if (!f)
        return qk_fail(NULL, QK_ERR_TYPE, "%s: tensor '%s' has unknown or removed type id %" PRIu32, c->name, t->name,
                       type_id);
    t->type = f->type;
    if (t->ne[0] % f->block_elems)
        return qk_fail(NULL, QK_ERR_FORMAT,
                       "%s: tensor '%s' (%s) has ne[0] = %" PRId64 ", not a multiple of the block size %d", c->name,
                       t->name, f->name, t->ne[0], f->block_elems);
    int64_t elems = 1;
    uint64_t bytes;
    int over = __builtin_mul_overflow((uint64_t)(t->ne[0] / f->block_elems), (uint64_t)f->block_bytes, &bytes);
    for (int d = 0; d < QK_GGUF_MAX_DIMS; d++) over |= __builtin_mul_overflow(elems, t->ne[d], &elems);
    for (int d = 1; d < QK_GGUF_MAX_DIMS; d++) over |= __builtin_mul_overflow(bytes, (uint64_t)t->ne[d], &bytes);
    if (over || bytes > (uint64_t)INT64_MAX)
        return qk_fail(NULL, QK_ERR_FORMAT,
                       "%s: tensor '%s' shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "] overflows its size",
                       c->name, t->name, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
    t->bytes = bytes;
    return QK_OK;
}

static qk_status read_tensor_infos(cursor *c, qk_gguf *g, uint64_t n_tensors, int split) {
    /* The smallest info: name length, n_dims, one dimension, type, offset. */
    if (n_tensors > (c->size - c->pos) / 32)
        return qk_fail(NULL, QK_ERR_FORMAT,
                       "%s: %" PRIu64 " tensor infos cannot fit in the %zu bytes left at offset %zu", c->name,
                       n_tensors, c->size - c->pos, c->pos);
    g->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->tensors);
    if (!g->tensors)
        return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory for %" PRIu64 " tensors", c->name, n_tensors);
    for (uint64_t i = 0; i < n_tensors; i++) {
        qk_gguf_tensor *t = &g->tensors[i];
        qk_status s = read_name(c, QK_GGUF_MAX_NAME, t->name, NULL, "name of tensor", i);
        if (s != QK_OK) return s;
        g->n_tensors = i + 1;
        if (qk_gguf_names_find(&g->tensor_index, t->name) != SIZE_MAX)
            return qk_fail(NULL, QK_ERR_FORMAT, "%s: duplicate tensor name '%s' (tensor %" PRIu64 ")", c->name, t->name,
                           i);
        if ((s = qk_gguf_names_add(&g->tensor_index, (size_t)i)) != QK_OK) return s;
        if ((s = need(c, 4, "n_dims of tensor '%s'", t->name)) != QK_OK) return s;
        uint32_t n_dims = qk_le32(c->p + c->pos);
        if (n_dims < 1 || n_dims > QK_GGUF_MAX_DIMS)
            return qk_fail(NULL, QK_ERR_FORMAT, "%s: tensor '%s' has n_dims = %" PRIu32 " (must be 1..%d)", c->name,
                           t->name, n_dims, QK_GGUF_MAX_DIMS);
        c->pos += 4;
        if ((s = need(c, 8ull * n_dims + 12, "shape, type and offset of tensor '%s'", t->name)) != QK_OK) return s;
        t->n_dims = (int)n_dims;
        for (int d = 0; d < QK_GGUF_MAX_DIMS; d++)
            t->ne[d] = d < t->n_dims ? (int64_t)qk_le64(c->p + c->pos + 8 * d) : 1;
        c->pos += 8 * (size_t)n_dims;
        uint32_t type_id = qk_le32(c->p + c->pos);
        t->offset = qk_le64(c->p + c->pos + 4);
        c->pos += 12;
        t->split = split;
        if ((s = check_tensor(c, t, type_id)) != QK_OK) return s;
    }
    return QK_OK;
}

static int align_up(uint64_t x, uint64_t align, uint64_t *out) {
    uint64_t r = x % align;
    return __builtin_add_overflow(x, r ? align - r : 0, out);
}

/* ggml's layout rule (each tensor starts where the previous one's aligned size ends), except
 * that the last tensor's padding may be missing, as llama.cpp's mmap loader allows. */
static qk_status place_tensors(const cursor *c, qk_gguf *g) {
    uint64_t data_start;
    if (align_up(c->pos, g->alignment, &data_start))
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: data section offset overflows", c->name);
    uint64_t expect = 0;
    for (size_t i = 0; i < g->n_tensors; i++) {
        qk_gguf_tensor *t = &g->tensors[i];
        if (t->offset != expect)
            return qk_fail(NULL, QK_ERR_FORMAT, "%s: tensor '%s' has offset %" PRIu64 ", expected %" PRIu64, c->name,
                           t->name, t->offset, expect);
        uint64_t a, b;
        int over = __builtin_add_overflow(data_start, t->offset, &a);
        over |= __builtin_add_overflow(a, t->bytes, &b);
        if (over || b > c->size)
            return qk_fail(NULL, QK_ERR_FORMAT,
                           "%s: tensor '%s' data [%" PRIu64 ", %" PRIu64
                           "%s) lies beyond the end of the file (%zu bytes)",
                           c->name, t->name, a, b, over ? " (wrapped)" : "", c->size);
        t->data = c->p + a;
        uint64_t padded;
        if (align_up(t->bytes, g->alignment, &padded) || __builtin_add_overflow(expect, padded, &expect))
            return qk_fail(NULL, QK_ERR_FORMAT, "%s: tensor '%s' size overflows the data section", c->name, t->name);
    }
    return QK_OK;
}

static qk_gguf *gguf_new(void) {
    qk_gguf *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    qk_gguf_names_init(&g->kv_index, kv_name, g);
    qk_gguf_names_init(&g->tensor_index, tensor_name, g);
    g->alignment = QK_GGUF_DEFAULT_ALIGNMENT;
    return g;
}

static qk_status parse_image(const unsigned char *p, size_t size, const char *name, int split, qk_gguf *g) {
    cursor c = {p, size, 0, name};
    if (size < 4) return qk_fail(NULL, QK_ERR_FORMAT, "%s: %zu bytes is too small for a GGUF file", name, size);
    if (qk_le32(p) != QK_GGUF_MAGIC)
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: not a GGUF file (starts with %02x %02x %02x %02x, expected \"GGUF\")",
                       name, p[0], p[1], p[2], p[3]);
    c.pos = 4;
    qk_status s = need(&c, 20, "the header");
    if (s != QK_OK) return s;
    uint32_t version = qk_le32(p + 4);
    if (version != 2 && version != 3) {
        if (version && !(version & 0xffffu))
            return qk_fail(NULL, QK_ERR_FORMAT,
                           "%s: version field 0x%08" PRIx32 " looks byte-swapped (big-endian file?)", name, version);
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: GGUF version %" PRIu32 " is not supported (only 2 and 3)", name,
                       version);
    }
    g->version = version;
    int64_t n_tensors = (int64_t)qk_le64(p + 8), n_kv = (int64_t)qk_le64(p + 16);
    c.pos = 24;
    if (n_tensors < 0 || n_kv < 0)
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: negative count in the header (%" PRId64 " tensors, %" PRId64 " pairs)",
                       name, n_tensors, n_kv);
    if ((s = read_kvs(&c, g, (uint64_t)n_kv)) != QK_OK) return s;
    if ((s = read_alignment(&c, g)) != QK_OK) return s;
    if ((s = read_tensor_infos(&c, g, (uint64_t)n_tensors, split)) != QK_OK) return s;
    return place_tensors(&c, g);
}

/* ---- handles ------------------------------------------------------------------------------- */

void qk_gguf_close(qk_gguf *g) {
    if (!g) return;
    for (size_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].raw);
    }
    free(g->kv);
    free(g->tensors);
    qk_gguf_names_free(&g->kv_index);
    qk_gguf_names_free(&g->tensor_index);
    for (int i = 0; i < g->n_parts; i++)
        if (g->parts[i].map) munmap(g->parts[i].map, g->parts[i].map_len);
    free(g->parts);
    free(g);
}

qk_status qk_gguf_parse(const void *data, size_t size, const char *name, qk_gguf **out) {
    if (!out) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_gguf_parse: out is NULL");
    *out = NULL;
    if (!name) name = "(memory)";
    if (!data && size) return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: data is NULL", name);
    qk_gguf *g = gguf_new();
    if (!g || !(g->parts = calloc(1, sizeof *g->parts))) {
        qk_gguf_close(g);
        return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    }
    g->n_parts = 1;
    g->parts[0].base = data;
    g->parts[0].size = size;
    qk_status s = parse_image(data, size, name, 0, g);
    if (s != QK_OK) {
        qk_gguf_close(g);
        return s;
    }
    *out = g;
    return QK_OK;
}

static qk_status map_file(const char *path, gguf_part *part) {
    qk_file_map m;
    qk_status s = qk_file_map_open(path, NULL, &m);
    if (s != QK_OK) return s;
    part->base = m.data;
    part->size = m.size;
    part->map = m.map;
    part->map_len = m.size;
    return QK_OK;
}

/* Maps and parses one file into a fresh handle holding that one part. */
static qk_status open_one(const char *path, int split, qk_gguf **out) {
    qk_gguf *g = gguf_new();
    if (!g || !(g->parts = calloc(1, sizeof *g->parts))) {
        qk_gguf_close(g);
        return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    qk_status s = map_file(path, &g->parts[0]);
    if (s == QK_OK) {
        g->n_parts = 1;
        s = parse_image(g->parts[0].base, g->parts[0].size, path, split, g);
    }
    if (s != QK_OK) {
        qk_gguf_close(g);
        return s;
    }
    *out = g;
    return QK_OK;
}

/* A split key, when present, must be an integer equal to `want`. */
static qk_status check_split_key(const qk_gguf *g, const char *path, const char *key, int64_t want) {
    const qk_gguf_kv *kv = qk_gguf_find_kv(g, key);
    if (!kv) return QK_OK;
    int64_t v;
    if (qk_gguf_kv_int(kv, &v) != QK_OK)
        return qk_fail(NULL, QK_ERR_FORMAT, "%s: %s is %s, expected an integer", path, key,
                       qk_gguf_vtype_name(kv->type));
    if (v != want) return qk_fail(NULL, QK_ERR_FORMAT, "%s: %s is %" PRId64 ", expected %" PRId64, path, key, v, want);
    return QK_OK;
}

/* Moves the tensors (and the mapping) of part `src` to the end of `g`. */
static qk_status absorb_part(qk_gguf *g, qk_gguf *src, const char *path) {
    qk_gguf_tensor *t = realloc(g->tensors, (g->n_tensors + src->n_tensors + 1) * sizeof *t);
    gguf_part *parts = realloc(g->parts, (size_t)(g->n_parts + 1) * sizeof *parts);
    if (t) g->tensors = t;
    if (parts) g->parts = parts;
    if (!t || !parts) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    g->parts[g->n_parts++] = src->parts[0];
    src->n_parts = 0; /* the mapping now belongs to g */
    for (size_t i = 0; i < src->n_tensors; i++) {
        const char *name = src->tensors[i].name;
        size_t prev = qk_gguf_names_find(&g->tensor_index, name);
        if (prev != SIZE_MAX)
            return qk_fail(NULL, QK_ERR_FORMAT, "%s: tensor '%s' is also in split part %d", path, name,
                           g->tensors[prev].split + 1);
        g->tensors[g->n_tensors] = src->tensors[i];
        qk_status s = qk_gguf_names_add(&g->tensor_index, g->n_tensors);
        if (s != QK_OK) return s;
        g->n_tensors++;
    }
    return QK_OK;
}

static qk_status open_split(const char *path, const char *prefix, int count, qk_gguf **out) {
    size_t len = strlen(prefix) + 32;
    char *part_path = malloc(len);
    if (!part_path) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    qk_gguf *g = NULL, *p = NULL;
    qk_status s = QK_OK;
    for (int i = 0; i < count && s == QK_OK; i++) {
        qk_gguf_split_name(part_path, len, prefix, i + 1, count);
        if ((s = open_one(part_path, i, &p)) != QK_OK) break;
        if ((s = check_split_key(p, part_path, "split.no", i)) != QK_OK) break;
        if ((s = check_split_key(p, part_path, "split.count", count)) != QK_OK) break;
        if (i == 0) {
            g = p;
        } else {
            s = absorb_part(g, p, part_path);
            qk_gguf_close(p);
        }
        p = NULL;
    }
    qk_gguf_close(p);
    if (s == QK_OK) {
        /* The metadata (part 0's) must agree with the tensors found in all parts. */
        s = check_split_key(g, path, "split.tensors.count", (int64_t)g->n_tensors);
    }
    free(part_path);
    if (s != QK_OK) {
        qk_gguf_close(g);
        return s;
    }
    *out = g;
    return QK_OK;
}

qk_status qk_gguf_open(const char *path, qk_gguf **out) {
    if (!out) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_gguf_open: out is NULL");
    *out = NULL;
    if (!path) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_gguf_open: path is NULL");
    size_t len = strlen(path) + 1;
    char *prefix = malloc(len);
    if (!prefix) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    int no, count;
    qk_status s = qk_gguf_split_name_parse(path, prefix, len, &no, &count) ? open_split(path, prefix, count, out)
                                                                           : open_one(path, 0, out);
    free(prefix);
    return s;
}

uint32_t qk_gguf_version(const qk_gguf *g) { return g ? g->version : 0; }
size_t qk_gguf_alignment(const qk_gguf *g) { return g ? g->alignment : 0; }
int qk_gguf_split_count(const qk_gguf *g) { return g ? g->n_parts : 0; }

uint64_t qk_gguf_file_bytes(const qk_gguf *g) {
    uint64_t n = 0;
    for (int i = 0; g && i < g->n_parts; i++) n += g->parts[i].size;
    return n;
}

size_t qk_gguf_kv_count(const qk_gguf *g) { return g ? g->n_kv : 0; }
const qk_gguf_kv *qk_gguf_kv_at(const qk_gguf *g, size_t i) { return g && i < g->n_kv ? &g->kv[i] : NULL; }
const char *qk_gguf_kv_key(const qk_gguf *g, size_t i) { return g && i < g->n_kv ? g->kv[i].key : NULL; }
qk_gguf_vtype qk_gguf_kv_type(const qk_gguf *g, size_t i) {
    return g && i < g->n_kv ? g->kv[i].type : QK_GGUF_VTYPE_COUNT;
}

const qk_gguf_kv *qk_gguf_find_kv(const qk_gguf *g, const char *key) {
    if (!g || !key) return NULL;
    size_t i = qk_gguf_names_find(&g->kv_index, key);
    return i == SIZE_MAX ? NULL : &g->kv[i];
}

size_t qk_gguf_tensor_count(const qk_gguf *g) { return g ? g->n_tensors : 0; }
const qk_gguf_tensor *qk_gguf_tensor_at(const qk_gguf *g, size_t i) {
    return g && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const qk_gguf_tensor *qk_gguf_find_tensor(const qk_gguf *g, const char *name) {
    if (!g || !name) return NULL;
    size_t i = qk_gguf_names_find(&g->tensor_index, name);
    return i == SIZE_MAX ? NULL : &g->tensors[i];
}

void qk_gguf_release_tensor(const qk_gguf *g, size_t i) {
    if (!g || i >= g->n_tensors) return;
    const qk_gguf_tensor *t = &g->tensors[i];
    const gguf_part *part = &g->parts[t->split];
    if (!part->map || !t->bytes) return;
    /* The whole pages touching the tensor: the mapping is read-only and file-backed, so a
     * neighbour's page dropped here is simply read again from the file when next touched. */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)t->data & ~(page - 1);
    uintptr_t hi = ((uintptr_t)t->data + t->bytes + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)part->map + part->map_len + page - 1) & ~(page - 1);
    if (hi > end) hi = end;
    madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void qk_gguf_release_bytes(const qk_gguf *g, const qk_gguf_tensor *t, uint64_t off, uint64_t bytes) {
    if (!g || !t || t->split >= g->n_parts || !g->parts[t->split].map || off >= t->bytes) return;
    if (bytes > t->bytes - off) bytes = t->bytes - off;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), p = (uintptr_t)t->data + off;
    const uintptr_t lo = (p + page - 1) & ~(page - 1), hi = (p + bytes) & ~(page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* ---- values -------------------------------------------------------------------------------- */

static int is_integer(uint32_t type) {
    return type <= QK_GGUF_INT32 || type == QK_GGUF_BOOL || type == QK_GGUF_UINT64 || type == QK_GGUF_INT64;
}

/* Decodes one integer of `type` at p (fixed size already checked). */
static qk_status decode_int(uint32_t type, const unsigned char *p, int64_t *out) {
    switch (type) {
    case QK_GGUF_UINT8: *out = p[0]; return QK_OK;
    case QK_GGUF_INT8: *out = (int8_t)p[0]; return QK_OK;
    case QK_GGUF_BOOL: *out = p[0] != 0; return QK_OK;
    case QK_GGUF_UINT16: *out = (uint16_t)(p[0] | p[1] << 8); return QK_OK;
    case QK_GGUF_INT16: *out = (int16_t)(uint16_t)(p[0] | p[1] << 8); return QK_OK;
    case QK_GGUF_UINT32: *out = qk_le32(p); return QK_OK;
    case QK_GGUF_INT32: *out = (int32_t)qk_le32(p); return QK_OK;
    case QK_GGUF_INT64: *out = (int64_t)qk_le64(p); return QK_OK;
    case QK_GGUF_UINT64: {
        uint64_t v = qk_le64(p);
        if (v > (uint64_t)INT64_MAX)
            return qk_fail(NULL, QK_ERR_TYPE, "UINT64 value %" PRIu64 " does not fit an int64", v);
        *out = (int64_t)v;
        return QK_OK;
    }
    default: return qk_fail(NULL, QK_ERR_TYPE, "a %s value is not an integer", qk_gguf_vtype_name((qk_gguf_vtype)type));
    }
}

qk_status qk_gguf_kv_int(const qk_gguf_kv *kv, int64_t *out) {
    if (out) *out = 0;
    if (!kv || !out) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_gguf_kv_int: NULL argument");
    if (!is_integer(kv->type) || kv->raw_len < qk_gguf_fixed_size(kv->type))
        return qk_fail(NULL, QK_ERR_TYPE, "'%s' is %s, not an integer", kv->key, qk_gguf_vtype_name(kv->type));
    int64_t v;
    qk_status s = decode_int(kv->type, kv->raw, &v);
    if (s != QK_OK) return qk_fail(NULL, s, "'%s': UINT64 value does not fit an int64", kv->key);
    *out = v;
    return QK_OK;
}

qk_status qk_gguf_kv_string(const qk_gguf_kv *kv, const char **s, uint64_t *len) {
    if (s) *s = NULL;
    if (len) *len = 0;
    if (!kv || !s || !len) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_gguf_kv_string: NULL argument");
    if (kv->type != QK_GGUF_STRING || kv->raw_len < 8 || qk_le64(kv->raw) > kv->raw_len - 8)
        return qk_fail(NULL, QK_ERR_TYPE, "'%s' is %s, not a string", kv->key, qk_gguf_vtype_name(kv->type));
    *s = (const char *)kv->raw + 8;
    *len = qk_le64(kv->raw);
    return QK_OK;
}

qk_status qk_gguf_kv_array(const qk_gguf_kv *kv, qk_gguf_vtype *elem, uint64_t *count, const unsigned char **first) {
    if (elem) *elem = QK_GGUF_VTYPE_COUNT;
    if (count) *count = 0;
    if (first) *first = NULL;
    if (!kv) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_gguf_kv_array: kv is NULL");
    if (kv->type != QK_GGUF_ARRAY || kv->raw_len < 12)
        return qk_fail(NULL, QK_ERR_TYPE, "'%s' is %s, not an array", kv->key, qk_gguf_vtype_name(kv->type));
    if (elem) *elem = (qk_gguf_vtype)qk_le32(kv->raw);
    if (count) *count = qk_le64(kv->raw + 4);
    if (first) *first = kv->raw + 12;
    return QK_OK;
}

qk_status qk_gguf_kv_array_int(const qk_gguf_kv *kv, uint64_t i, int64_t *out) {
    if (out) *out = 0;
    qk_gguf_vtype elem;
    uint64_t count;
    const unsigned char *first;
    qk_status s = qk_gguf_kv_array(kv, &elem, &count, &first);
    if (s != QK_OK) return s;
    if (!out) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_gguf_kv_array_int: out is NULL");
    if (!is_integer(elem))
        return qk_fail(NULL, QK_ERR_TYPE, "'%s' is an array of %s, not of integers", kv->key, qk_gguf_vtype_name(elem));
    size_t size = qk_gguf_fixed_size(elem);
    if (i >= count || i >= (kv->raw_len - 12) / size)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "'%s': index %" PRIu64 " is beyond the %" PRIu64 " elements", kv->key,
                       i, count);
    int64_t v;
    if ((s = decode_int(elem, first + i * size, &v)) != QK_OK)
        return qk_fail(NULL, s, "'%s'[%" PRIu64 "]: UINT64 value does not fit an int64", kv->key, i);
    *out = v;
    return QK_OK;
}

qk_status qk_gguf_kv_array_string(const qk_gguf_kv *kv, uint64_t i, const char **s, uint64_t *len) {
    if (s) *s = NULL;
    if (len) *len = 0;
    qk_gguf_vtype elem;
    uint64_t count;
    const unsigned char *first;
    qk_status st = qk_gguf_kv_array(kv, &elem, &count, &first);
    if (st != QK_OK) return st;
    if (!s || !len) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_gguf_kv_array_string: NULL argument");
    if (elem != QK_GGUF_STRING)
        return qk_fail(NULL, QK_ERR_TYPE, "'%s' is an array of %s, not of strings", kv->key, qk_gguf_vtype_name(elem));
    if (i >= count)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "'%s': index %" PRIu64 " is beyond the %" PRIu64 " elements", kv->key,
                       i, count);
    size_t pos = 12;
    for (uint64_t k = 0;; k++) {
        if (kv->raw_len - pos < 8) break;
        uint64_t n = qk_le64(kv->raw + pos);
        if (n > kv->raw_len - pos - 8) break;
        if (k == i) {
            *s = (const char *)kv->raw + pos + 8;
            *len = n;
            return QK_OK;
        }
        pos += 8 + (size_t)n;
    }
    return qk_fail(NULL, QK_ERR_FORMAT, "'%s': string array encoding is truncated", kv->key);
}

int64_t qk_gguf_get_int(const qk_gguf *g, const char *key, int64_t fallback) {
    const qk_gguf_kv *kv = qk_gguf_find_kv(g, key);
    int64_t v;
    if (!kv) return fallback;
    if (kv->type == QK_GGUF_ARRAY) return qk_gguf_kv_array_int(kv, 0, &v) == QK_OK ? v : fallback;
    return qk_gguf_kv_int(kv, &v) == QK_OK ? v : fallback;
}

const char *qk_gguf_get_string(const qk_gguf *g, const char *key, char *buf, size_t buf_len) {
    const qk_gguf_kv *kv = qk_gguf_find_kv(g, key);
    const char *s;
    uint64_t n;
    if (!kv || !buf || !buf_len || qk_gguf_kv_string(kv, &s, &n) != QK_OK) return NULL;
    if (n > buf_len - 1) n = buf_len - 1;
    memcpy(buf, s, (size_t)n);
    buf[n] = 0;
    return buf;
}

/* ---- printable summaries ------------------------------------------------------------------- */

typedef struct outbuf {
    char *buf;
    size_t cap, len;
    int full; /* once something was cut, nothing after it may appear */
} outbuf;

/* Length of the well-formed UTF-8 sequence of 2..4 bytes at s (at most n bytes), else 0. */
static size_t utf8_len(const unsigned char *s, uint64_t n) {
    size_t len = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
    if (!len || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return len;
}

static void put(outbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(outbuf *o, const char *fmt, ...) {
    if (o->full) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (o->len + (size_t)n < o->cap) {
        o->len += (size_t)n;
        return;
    }
    /* Cut short: drop a multi-byte character that lost its tail. */
    o->full = 1;
    o->len = o->cap - 1;
    size_t i = o->len;
    while (i > 0 && o->len - i < 3 && ((unsigned char)o->buf[i - 1] & 0xc0) == 0x80) i--;
    if (i > 0) {
        unsigned char lead = (unsigned char)o->buf[i - 1];
        size_t want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
        if (o->len - (i - 1) < want) o->len = i - 1;
    }
    o->buf[o->len] = 0;
}

/* A string, quoted when inside an array; UTF-8 is kept, control and stray bytes escaped. */
static void put_string(outbuf *o, const unsigned char *s, uint64_t n, int quoted) {
    enum { MAX_SHOWN = 48 };
    if (quoted) put(o, "\"");
    uint64_t i = 0;
    while (i < n && i < MAX_SHOWN) {
        unsigned char ch = s[i];
        size_t k = ch >= 0x80 ? utf8_len(s + i, n - i) : 0;
        if (k) {
            put(o, "%.*s", (int)k, (const char *)s + i);
            i += k;
            continue;
        }
        if (ch >= 0x20 && ch < 0x7f && ch != '\\' && !(quoted && ch == '"'))
            put(o, "%c", ch);
        else
            put(o, "\\x%02x", ch);
        i++;
    }
    if (i < n) put(o, "...");
    if (quoted) put(o, "\"");
}

/* One value; `avail` bounds the encoding, and *used receives its length (0 when malformed). */
static void put_value(outbuf *o, uint32_t type, const unsigned char *p, size_t avail, int depth, size_t *used) {
    enum { SHOWN_ELEMS = 4 };
    char why[96];
    size_t len;
    *used = 0;
    if (qk_gguf_value_extent(p, avail, type, depth, &len, why, sizeof why) != QK_OK) {
        put(o, "<malformed: %s>", why);
        return;
    }
    *used = len;
    int64_t iv;
    switch (type) {
    case QK_GGUF_BOOL: put(o, "%s", p[0] ? "true" : "false"); return;
    case QK_GGUF_UINT64: put(o, "%" PRIu64, qk_le64(p)); return;
    case QK_GGUF_FLOAT32: {
        uint32_t bits = qk_le32(p);
        float f;
        memcpy(&f, &bits, 4);
        put(o, "%.9g", (double)f);
        return;
    }
    case QK_GGUF_FLOAT64: {
        uint64_t bits = qk_le64(p);
        double d;
        memcpy(&d, &bits, 8);
        put(o, "%.17g", d);
        return;
    }
    case QK_GGUF_STRING: put_string(o, p + 8, qk_le64(p), depth > 0); return;
    case QK_GGUF_ARRAY: {
        uint32_t elem = qk_le32(p);
        uint64_t count = qk_le64(p + 4);
        put(o, "[%" PRIu64 " \xc3\x97 %s", count, qk_gguf_vtype_name((qk_gguf_vtype)elem));
        size_t pos = 12;
        for (uint64_t i = 0; i < count && i < SHOWN_ELEMS; i++) {
            put(o, i ? ", " : ": ");
            size_t n;
            put_value(o, elem, p + pos, len - pos, depth + 1, &n);
            if (!n) break;
            pos += n;
        }
        put(o, count > SHOWN_ELEMS ? ", ...]" : "]");
        return;
    }
    default:
        if (decode_int(type, p, &iv) == QK_OK) put(o, "%" PRId64, iv);
        return;
    }
}

void qk_gguf_kv_format(const qk_gguf_kv *kv, char *buf, size_t buf_len) {
    if (!buf || !buf_len) return;
    buf[0] = 0;
    if (!kv || !kv->raw) return;
    outbuf o = {buf, buf_len, 0, 0};
    size_t used;
    put_value(&o, kv->type, kv->raw, kv->raw_len, 0, &used);
}

void qk_gguf_kv_describe(const qk_gguf *g, size_t i, char *buf, size_t buf_len) {
    qk_gguf_kv_format(qk_gguf_kv_at(g, i), buf, buf_len);
}

/* ---- split names --------------------------------------------------------------------------- */

/* Reads the decimal digits that end just before `end` (at least 5, as %05d writes them). */
static int digits_before(const char *start, const char *end, const char **begin, int *value) {
    const char *p = end;
    while (p > start && p[-1] >= '0' && p[-1] <= '9') p--;
    if (end - p < 5 || end - p > 9) return 0;
    int v = 0;
    for (const char *q = p; q < end; q++) v = v * 10 + (*q - '0');
    *begin = p;
    *value = v;
    return 1;
}

int qk_gguf_split_name_parse(const char *path, char *prefix, size_t prefix_len, int *no, int *count) {
    if (!path) return 0;
    size_t len = strlen(path);
    static const char ext[] = ".gguf", of[] = "-of-";
    if (len < sizeof ext - 1 || strcmp(path + len - (sizeof ext - 1), ext) != 0) return 0;
    const char *end = path + len - (sizeof ext - 1), *p;
    int n_no, n_count;
    if (!digits_before(path, end, &p, &n_count)) return 0;
    if (p - path < (ptrdiff_t)(sizeof of - 1) || memcmp(p - (sizeof of - 1), of, sizeof of - 1) != 0) return 0;
    end = p - (sizeof of - 1);
    if (!digits_before(path, end, &p, &n_no)) return 0;
    if (p == path || p[-1] != '-') return 0;
    if (n_count < 1 || n_no < 1 || n_no > n_count) return 0;
    size_t plen = (size_t)(p - 1 - path);
    if (prefix) {
        if (plen + 1 > prefix_len) return 0;
        memcpy(prefix, path, plen);
        prefix[plen] = 0;
    }
    if (no) *no = n_no;
    if (count) *count = n_count;
    return 1;
}

void qk_gguf_split_name(char *out, size_t out_len, const char *prefix, int no, int count) {
    if (out && out_len) snprintf(out, out_len, "%s-%05d-of-%05d.gguf", prefix ? prefix : "", no, count);
}
