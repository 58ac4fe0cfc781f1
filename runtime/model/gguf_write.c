/* The GGUF writer (GGUF.md §1-§3): metadata and tensor infos are collected first, then the
 * file is streamed through one large buffer into PATH.tmp.qkern and renamed into place only
 * once complete and synced, so a reader never sees a partial model under the target name.
 * The temporary has a fixed name and is held under an exclusive flock from creation to rename:
 * a second writer of the same PATH fails at once instead of both "succeeding", and a temporary
 * left by a killed run is taken over (truncated) by the next, not piled up.
 * In resume mode (qk_gguf_writer_set_resume) the temporary outlives a killed or failed run, and
 * a journal beside it (journal.h) records each tensor whose bytes have reached the disk; the
 * next resuming run of the same file checks those bytes and writes only the rest. */
#include "gguf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats.h"
#include "gguf_io.h"
#include "internal.h"
#include "journal.h"

/* Metadata arrives in many small pieces and tensor data in multi-MB chunks: pieces are
 * gathered here, chunks at least this large go straight to the file. */
#define WBUF_BYTES QK_GGUF_WRITE_BUFFER

#define TEMP_SUFFIX ".tmp.qkern"

enum wstate { W_COLLECT, W_WRITING, W_CLOSED, W_DONE, W_FAILED };

struct qk_gguf_writer {
    uint32_t version;
    uint32_t alignment;
    qk_gguf_kv *kv;
    size_t n_kv, cap_kv;
    qk_gguf_tensor *tensors;
    size_t n_tensors, cap_tensors;
    qk_gguf_names names;
    enum wstate state;
    char *path, *tmp;
    int fd;   /* the temporary, open and locked from begin to commit */
    int live; /* its slot in the table qk_remove_partial_outputs reads, or -1 */
    unsigned char *buf;
    size_t buf_len;
    uint64_t written; /* bytes accepted into the file, buffered or not */
    size_t cur;       /* tensor receiving data */
    uint64_t cur_done;
    /* resume mode */
    int resume;
    uint64_t run_key; /* what decides the bytes beyond the header (qk_gguf_writer_set_resume) */
    int hash_only;    /* out_bytes only hashes into header_sum: the identity pass */
    uint64_t header_sum;
    uint64_t cur_sum; /* qk_fnv1a64 of the current tensor's bytes so far */
    int jfd;          /* the journal, or -1 */
    char *journal;    /* its name */
    size_t journaled; /* records found by begin */
    size_t resumed;   /* leading tensors found complete and kept */
    int other_run;    /* begin found a journal of another run */
};

static const char *writer_tensor_name(const void *owner, size_t id) {
    return ((const qk_gguf_writer *)owner)->tensors[id].name;
}

static const char *wname(const qk_gguf_writer *w) { return w && w->path ? w->path : "gguf writer"; }

qk_status qk_gguf_writer_create(qk_gguf_writer **out) {
    if (!out) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_gguf_writer_create: out is NULL");
    qk_gguf_writer *w = calloc(1, sizeof *w);
    *out = NULL;
    if (!w) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    w->version = QK_GGUF_VERSION;
    w->alignment = QK_GGUF_DEFAULT_ALIGNMENT;
    w->fd = -1;
    w->live = -1;
    w->jfd = -1;
    qk_gguf_names_init(&w->names, writer_tensor_name, w);
    *out = w;
    return QK_OK;
}

/* ---- the temporary file ------------------------------------------------------------------ */

/* The temporaries this process holds, for qk_remove_partial_outputs in a signal handler: it can
 * take no lock and call no allocator, so slots are static, claimed with a compare-and-swap, and
 * hold a copy of the name and the file's identity. The handler removes a name only while it
 * still is that file, so a slot read while it is being reused, or a name that another process
 * took over after our rename, is left alone. Beyond LIVE_SLOTS open temporaries the extra ones
 * are removed by the writer's own error paths only. */
#define LIVE_SLOTS 256
enum { SLOT_FREE, SLOT_FILLING, SLOT_LIVE };
static struct live_temp {
    atomic_int state;
    dev_t dev;
    ino_t ino;
    char path[PATH_MAX];
} live[LIVE_SLOTS];

static int live_add(const char *path, const struct stat *st) {
    size_t len = strlen(path);
    if (len >= PATH_MAX) return -1;
    for (int i = 0; i < LIVE_SLOTS; i++) {
        int expect = SLOT_FREE;
        if (!atomic_compare_exchange_strong(&live[i].state, &expect, SLOT_FILLING)) continue;
        memcpy(live[i].path, path, len + 1);
        live[i].dev = st->st_dev;
        live[i].ino = st->st_ino;
        atomic_store(&live[i].state, SLOT_LIVE);
        return i;
    }
    return -1;
}

static void live_remove(int slot) {
    if (slot >= 0) atomic_store(&live[slot].state, SLOT_FREE);
}

int qk_remove_partial_outputs(void) {
    int removed = 0;
    for (int i = 0; i < LIVE_SLOTS; i++) {
        if (atomic_load(&live[i].state) != SLOT_LIVE) continue;
        struct stat st;
        if (stat(live[i].path, &st) == 0 && st.st_dev == live[i].dev && st.st_ino == live[i].ino &&
            unlink(live[i].path) == 0)
            removed++;
    }
    return removed;
}

void qk_gguf_writer_abort(qk_gguf_writer *w) {
    if (!w) return;
    if (w->fd >= 0) {
        /* removed while still locked: once closed, the name may already be another writer's;
         * in resume mode kept, with its journal, for the next run */
        if (w->tmp && !w->resume) unlink(w->tmp);
        close(w->fd);
    }
    if (w->jfd >= 0) close(w->jfd);
    w->jfd = -1;
    free(w->journal);
    w->journal = NULL;
    live_remove(w->live);
    w->live = -1;
    w->fd = -1;
    free(w->tmp);
    w->tmp = NULL;
    free(w->buf);
    w->buf = NULL;
    if (w->state != W_DONE) w->state = W_FAILED;
}

/* Every failure after begin ends the file: the temporary is removed before returning. */
static qk_status fail_file(qk_gguf_writer *w, qk_status s) {
    qk_gguf_writer_abort(w);
    return s;
}

static qk_status io_error(qk_gguf_writer *w, const char *what, int err) {
    int full = err == ENOSPC || err == EFBIG || err == EDQUOT;
    qk_status s = qk_fail(NULL, QK_ERR_IO, "%s: %s %s: %s%s", wname(w), what, w->tmp ? w->tmp : "", strerror(err),
                          !full       ? ""
                          : w->resume ? " (the partial file is kept for --resume)"
                                      : " (the partial file was removed)");
    return fail_file(w, s);
}

static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (k == 0) return EIO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static qk_status flush_buf(qk_gguf_writer *w) {
    int e = write_all(w->fd, w->buf, w->buf_len);
    w->buf_len = 0;
    return e ? io_error(w, "cannot write", e) : QK_OK;
}

static qk_status out_bytes(qk_gguf_writer *w, const void *p, size_t n) {
    if (w->hash_only) {
        w->header_sum = qk_fnv1a64(w->header_sum, p, n);
        w->written += n;
        return QK_OK;
    }
    if (n > WBUF_BYTES - w->buf_len) {
        qk_status s = flush_buf(w);
        if (s != QK_OK) return s;
    }
    if (n >= WBUF_BYTES) {
        int e = write_all(w->fd, p, n);
        if (e) return io_error(w, "cannot write", e);
    } else {
        memcpy(w->buf + w->buf_len, p, n);
        w->buf_len += n;
    }
    w->written += n;
    return QK_OK;
}

static qk_status out_zeros(qk_gguf_writer *w, uint64_t n) {
    static const unsigned char zeros[4096];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        qk_status s = out_bytes(w, zeros, k);
        if (s != QK_OK) return s;
        n -= k;
    }
    return QK_OK;
}

static qk_status out_u32(qk_gguf_writer *w, uint32_t v) {
    unsigned char b[4];
    qk_put_le32(b, v);
    return out_bytes(w, b, 4);
}

static qk_status out_u64(qk_gguf_writer *w, uint64_t v) {
    unsigned char b[8];
    qk_put_le64(b, v);
    return out_bytes(w, b, 8);
}

static qk_status out_string(qk_gguf_writer *w, const char *s) {
    size_t n = strlen(s);
    qk_status st = out_u64(w, n);
    return st == QK_OK ? out_bytes(w, s, n) : st;
}

/* mkstemp creates the file as 0600; a model should get the usual permissions. */
static mode_t file_mode(void) {
    mode_t mask = 022;
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[128];
        unsigned m;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Umask: %o", &m) == 1) mask = (mode_t)m;
        fclose(f);
    }
    return 0666 & ~mask;
}

/* ---- metadata ------------------------------------------------------------------------------ */

static qk_status need_collecting(const qk_gguf_writer *w, const char *what) {
    if (!w) return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: writer is NULL", what);
    if (w->state != W_COLLECT)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: %s after the file was begun", wname(w), what);
    return QK_OK;
}

static size_t find_kv(const qk_gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) return i;
    return SIZE_MAX;
}

void qk_gguf_writer_remove_kv(qk_gguf_writer *w, const char *key) {
    if (!w || !key || w->state != W_COLLECT) return;
    size_t i = find_kv(w, key);
    if (i == SIZE_MAX) return;
    free(w->kv[i].key);
    free(w->kv[i].raw);
    memmove(&w->kv[i], &w->kv[i + 1], (w->n_kv - i - 1) * sizeof *w->kv);
    w->n_kv--;
    if (strcmp(key, "general.alignment") == 0) w->alignment = QK_GGUF_DEFAULT_ALIGNMENT;
}

qk_status qk_gguf_writer_set_kv(qk_gguf_writer *w, const char *key, qk_gguf_vtype type, const void *raw,
                                size_t raw_len) {
    qk_status s = need_collecting(w, "setting a key");
    if (s != QK_OK) return s;
    if (!key || !key[0]) return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: empty key", wname(w));
    if (strlen(key) > QK_GGUF_MAX_COUNT)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: key longer than 2^30 bytes", wname(w));
    if (!raw && raw_len) return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: key '%s' has no value", wname(w), key);
    /* The value must be exactly one well-formed encoding: what the reader will accept. */
    char why[96];
    size_t len = 0;
    if ((unsigned)type >= QK_GGUF_VTYPE_COUNT)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: key '%s' has unknown value type %u", wname(w), key,
                       (unsigned)type);
    if (qk_gguf_value_extent(raw ? raw : "", raw_len, type, 0, &len, why, sizeof why) != QK_OK)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: key '%s': %s", wname(w), key, why);
    if (len != raw_len)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: key '%s': a %s value of %zu bytes was given %zu", wname(w), key,
                       qk_gguf_vtype_name(type), len, raw_len);
    uint32_t alignment = w->alignment;
    if (strcmp(key, "general.alignment") == 0) {
        if (type != QK_GGUF_UINT32)
            return qk_fail(NULL, QK_ERR_TYPE, "%s: general.alignment must be UINT32, not %s", wname(w),
                           qk_gguf_vtype_name(type));
        alignment = qk_le32(raw);
        if (!alignment || (alignment & (alignment - 1)))
            return qk_fail(NULL, QK_ERR_VALUE, "%s: general.alignment %" PRIu32 " is not a power of two", wname(w),
                           alignment);
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        qk_gguf_kv *kv = realloc(w->kv, cap * sizeof *kv);
        if (!kv) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", wname(w));
        w->kv = kv;
        w->cap_kv = cap;
    }
    qk_gguf_kv kv = {strdup(key), type, malloc(raw_len ? raw_len : 1), raw_len};
    if (!kv.key || !kv.raw) {
        free(kv.key);
        free(kv.raw);
        return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", wname(w));
    }
    memcpy(kv.raw, raw, raw_len);
    qk_gguf_writer_remove_kv(w, key);
    w->kv[w->n_kv++] = kv;
    w->alignment = alignment;
    return QK_OK;
}

qk_status qk_gguf_writer_copy_kv(qk_gguf_writer *w, const qk_gguf_kv *kv) {
    if (!kv) return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: copying a NULL pair", wname(w));
    return qk_gguf_writer_set_kv(w, kv->key, kv->type, kv->raw, kv->raw_len);
}

qk_status qk_gguf_writer_set_u32(qk_gguf_writer *w, const char *key, uint32_t v) {
    unsigned char b[4];
    qk_put_le32(b, v);
    return qk_gguf_writer_set_kv(w, key, QK_GGUF_UINT32, b, 4);
}

qk_status qk_gguf_writer_set_i32(qk_gguf_writer *w, const char *key, int32_t v) {
    unsigned char b[4];
    qk_put_le32(b, (uint32_t)v);
    return qk_gguf_writer_set_kv(w, key, QK_GGUF_INT32, b, 4);
}

qk_status qk_gguf_writer_set_u16(qk_gguf_writer *w, const char *key, uint16_t v) {
    unsigned char b[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    return qk_gguf_writer_set_kv(w, key, QK_GGUF_UINT16, b, 2);
}

qk_status qk_gguf_writer_set_f32(qk_gguf_writer *w, const char *key, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    unsigned char b[4];
    qk_put_le32(b, bits);
    return qk_gguf_writer_set_kv(w, key, QK_GGUF_FLOAT32, b, 4);
}

qk_status qk_gguf_writer_set_bool(qk_gguf_writer *w, const char *key, int v) {
    unsigned char b = v != 0;
    return qk_gguf_writer_set_kv(w, key, QK_GGUF_BOOL, &b, 1);
}

qk_status qk_gguf_writer_set_string(qk_gguf_writer *w, const char *key, const char *s) {
    if (!s) return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: key '%s': NULL string", wname(w), key ? key : "");
    size_t n = strlen(s);
    unsigned char *raw = malloc(8 + n);
    if (!raw) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", wname(w));
    qk_put_le64(raw, n);
    memcpy(raw + 8, s, n);
    qk_status st = qk_gguf_writer_set_kv(w, key, QK_GGUF_STRING, raw, 8 + n);
    free(raw);
    return st;
}

qk_status qk_gguf_writer_set_array(qk_gguf_writer *w, const char *key, qk_gguf_vtype elem, const void *elems,
                                   uint64_t count) {
    size_t size = qk_gguf_fixed_size(elem);
    if (!size)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: key '%s': set_array needs a fixed-size element type, not %s",
                       wname(w), key ? key : "", qk_gguf_vtype_name(elem));
    if (count > QK_GGUF_MAX_COUNT)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: key '%s': %" PRIu64 " elements exceed 2^30", wname(w),
                       key ? key : "", count);
    if (count && !elems)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: key '%s': no elements", wname(w), key ? key : "");
    size_t len = 12 + (size_t)count * size;
    unsigned char *raw = malloc(len);
    if (!raw) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", wname(w));
    qk_put_le32(raw, (uint32_t)elem);
    qk_put_le64(raw + 4, count);
    /* Host values to little-endian bytes, element by element. */
    const unsigned char *src = elems;
    for (uint64_t i = 0; i < count; i++) {
        unsigned char *dst = raw + 12 + i * size;
        uint64_t v = 0;
        switch (size) {
        case 1: v = src[i]; break;
        case 2: {
            uint16_t x;
            memcpy(&x, src + 2 * i, 2);
            v = x;
            break;
        }
        case 4: {
            uint32_t x;
            memcpy(&x, src + 4 * i, 4);
            v = x;
            break;
        }
        default: memcpy(&v, src + 8 * i, 8); break;
        }
        for (size_t k = 0; k < size; k++) dst[k] = (unsigned char)(v >> (8 * k));
    }
    qk_status st = qk_gguf_writer_set_kv(w, key, QK_GGUF_ARRAY, raw, len);
    free(raw);
    return st;
}

qk_status qk_gguf_writer_set_string_array(qk_gguf_writer *w, const char *key, const char *const *s, uint64_t count) {
    if (count > QK_GGUF_MAX_COUNT)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: key '%s': %" PRIu64 " elements exceed 2^30", wname(w),
                       key ? key : "", count);
    if (count && !s) return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: key '%s': no strings", wname(w), key ? key : "");
    size_t len = 12;
    for (uint64_t i = 0; i < count; i++) {
        if (!s[i])
            return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: key '%s': string %" PRIu64 " is NULL", wname(w),
                           key ? key : "", i);
        if (__builtin_add_overflow(len, 8 + strlen(s[i]), &len))
            return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: key '%s': strings too large", wname(w), key ? key : "");
    }
    unsigned char *raw = malloc(len);
    if (!raw) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory (%zu bytes)", wname(w), len);
    qk_put_le32(raw, QK_GGUF_STRING);
    qk_put_le64(raw + 4, count);
    size_t pos = 12;
    for (uint64_t i = 0; i < count; i++) {
        size_t n = strlen(s[i]);
        qk_put_le64(raw + pos, n);
        memcpy(raw + pos + 8, s[i], n);
        pos += 8 + n;
    }
    qk_status st = qk_gguf_writer_set_kv(w, key, QK_GGUF_ARRAY, raw, len);
    free(raw);
    return st;
}

qk_status qk_gguf_writer_set_version(qk_gguf_writer *w, uint32_t version) {
    qk_status s = need_collecting(w, "setting the version");
    if (s != QK_OK) return s;
    if (version != 2 && version != 3)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: GGUF version %" PRIu32 " cannot be written (2 or 3)", wname(w),
                       version);
    w->version = version;
    return QK_OK;
}

/* ---- tensor infos -------------------------------------------------------------------------- */

qk_status qk_gguf_writer_add_tensor(qk_gguf_writer *w, const char *name, qk_type type, int n_dims, const int64_t *ne) {
    qk_status s = need_collecting(w, "adding a tensor");
    if (s != QK_OK) return s;
    if (!name || !ne) return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: tensor name or shape is NULL", wname(w));
    size_t len = strlen(name);
    if (len > QK_GGUF_MAX_NAME)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: tensor name '%s' is %zu bytes (at most %d)", wname(w), name, len,
                       QK_GGUF_MAX_NAME);
    if (qk_gguf_names_find(&w->names, name) != SIZE_MAX)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: duplicate tensor name '%s'", wname(w), name);
    if (n_dims < 1 || n_dims > QK_GGUF_MAX_DIMS)
        return qk_fail(NULL, QK_ERR_SHAPE, "%s: tensor '%s' has %d dimensions (1..%d)", wname(w), name, n_dims,
                       QK_GGUF_MAX_DIMS);
    const qk_format *f = qk_format_of((int)type);
    if (!f) return qk_fail(NULL, QK_ERR_TYPE, "%s: tensor '%s' has unknown type id %d", wname(w), name, (int)type);
    qk_gguf_tensor t;
    memset(&t, 0, sizeof t);
    memcpy(t.name, name, len + 1);
    t.type = type;
    for (int d = 0; d < QK_GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 0)
            return qk_fail(NULL, QK_ERR_SHAPE, "%s: tensor '%s' has ne[%d] = %" PRId64, wname(w), name, d, t.ne[d]);
    }
    if (t.ne[0] % f->block_elems)
        return qk_fail(NULL, QK_ERR_SHAPE, "%s: tensor '%s' (%s): ne[0] = %" PRId64 " is not a multiple of %d",
                       wname(w), name, f->name, t.ne[0], f->block_elems);
    int64_t elems = 1;
    uint64_t bytes;
    int over = __builtin_mul_overflow((uint64_t)(t.ne[0] / f->block_elems), (uint64_t)f->block_bytes, &bytes);
    for (int d = 0; d < QK_GGUF_MAX_DIMS; d++) over |= __builtin_mul_overflow(elems, t.ne[d], &elems);
    for (int d = 1; d < QK_GGUF_MAX_DIMS; d++) over |= __builtin_mul_overflow(bytes, (uint64_t)t.ne[d], &bytes);
    if (over || bytes > (uint64_t)INT64_MAX)
        return qk_fail(NULL, QK_ERR_SHAPE, "%s: tensor '%s': its size overflows", wname(w), name);
    t.bytes = bytes;
    /* ggml trims trailing dimensions of 1 (it tests "> 1", which would also drop a trailing 0
     * and so change an empty tensor's shape; "!= 1" is the same for every non-empty one). */
    t.n_dims = 1;
    for (int d = QK_GGUF_MAX_DIMS - 1; d >= 1; d--)
        if (t.ne[d] != 1) {
            t.n_dims = d + 1;
            break;
        }
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        qk_gguf_tensor *nt = realloc(w->tensors, cap * sizeof *nt);
        if (!nt) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", wname(w));
        w->tensors = nt;
        w->cap_tensors = cap;
    }
    w->tensors[w->n_tensors] = t;
    if ((s = qk_gguf_names_add(&w->names, w->n_tensors)) != QK_OK) return s;
    w->n_tensors++;
    return QK_OK;
}

uint64_t qk_gguf_writer_tensor_bytes(const qk_gguf_writer *w, size_t i) {
    return w && i < w->n_tensors ? w->tensors[i].bytes : 0;
}

static uint64_t padded(uint64_t x, uint32_t align) { return x + (align - x % align) % align; }

/* Header, metadata and tensor infos, before the padding. Sizes are bounded by what is held in
 * memory, so they cannot overflow 64 bits. */
static uint64_t header_bytes(const qk_gguf_writer *w) {
    uint64_t n = 4 + 4 + 8 + 8;
    for (size_t i = 0; i < w->n_kv; i++) n += 8 + strlen(w->kv[i].key) + 4 + w->kv[i].raw_len;
    for (size_t i = 0; i < w->n_tensors; i++)
        n += 8 + strlen(w->tensors[i].name) + 4 + 8 * (uint64_t)w->tensors[i].n_dims + 4 + 8;
    return n;
}

uint64_t qk_gguf_writer_file_bytes(const qk_gguf_writer *w) {
    if (!w) return 0;
    uint64_t n = padded(header_bytes(w), w->alignment);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (__builtin_add_overflow(n, padded(w->tensors[i].bytes, w->alignment), &n)) return UINT64_MAX;
    return n;
}

/* ---- streaming ----------------------------------------------------------------------------- */

/* Pads and moves past every tensor that has all its bytes (zero-byte tensors at once). */
static qk_status settle(qk_gguf_writer *w) {
    while (w->cur < w->n_tensors && w->cur_done == w->tensors[w->cur].bytes) {
        uint64_t b = w->tensors[w->cur].bytes;
        qk_status s = out_zeros(w, padded(b, w->alignment) - b);
        if (s != QK_OK) return s;
        if (w->jfd >= 0) { /* the record may claim only bytes that are on the disk */
            if ((s = flush_buf(w)) != QK_OK) return s;
            if (fdatasync(w->fd) != 0) return io_error(w, "cannot sync", errno);
            int e = qk_journal_append(w->jfd, w->cur, w->cur_sum);
            if (e) return io_error(w, "cannot write the journal of", e);
        }
        w->cur++;
        w->cur_done = 0;
        w->cur_sum = QK_FNV1A64_INIT;
    }
    return QK_OK;
}

static qk_status write_header(qk_gguf_writer *w) {
    qk_status s = out_u32(w, QK_GGUF_MAGIC);
    if (s == QK_OK) s = out_u32(w, w->version);
    if (s == QK_OK) s = out_u64(w, w->n_tensors);
    if (s == QK_OK) s = out_u64(w, w->n_kv);
    for (size_t i = 0; i < w->n_kv && s == QK_OK; i++) {
        s = out_string(w, w->kv[i].key);
        if (s == QK_OK) s = out_u32(w, (uint32_t)w->kv[i].type);
        if (s == QK_OK) s = out_bytes(w, w->kv[i].raw, w->kv[i].raw_len);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors && s == QK_OK; i++) {
        qk_gguf_tensor *t = &w->tensors[i];
        t->offset = offset;
        offset += padded(t->bytes, w->alignment);
        s = out_string(w, t->name);
        if (s == QK_OK) s = out_u32(w, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims && s == QK_OK; d++) s = out_u64(w, (uint64_t)t->ne[d]);
        if (s == QK_OK) s = out_u32(w, (uint32_t)t->type);
        if (s == QK_OK) s = out_u64(w, t->offset);
    }
    /* qk_gguf_writer_file_bytes (the size promised before the file exists) counts the same */
    assert(s != QK_OK || w->written == header_bytes(w));
    if (s == QK_OK) s = out_zeros(w, padded(w->written, w->alignment) - w->written);
    return s;
}

/* ---- resume mode -------------------------------------------------------------------------- */

void qk_gguf_writer_set_resume(qk_gguf_writer *w, uint64_t run_key) {
    if (!w || w->state != W_COLLECT) return;
    w->resume = 1;
    w->run_key = run_key;
}

void qk_gguf_writer_resume_info(const qk_gguf_writer *w, size_t *journaled, size_t *resumed, int *other_run) {
    *journaled = w ? w->journaled : 0;
    *resumed = w ? w->resumed : 0;
    *other_run = w ? w->other_run : 0;
}

size_t qk_gguf_writer_resumed(const qk_gguf_writer *w) { return w ? w->resumed : 0; }

/* Where tensor i's data starts in the file (the file's end for i == n_tensors). */
static uint64_t data_at(const qk_gguf_writer *w, size_t i) {
    return i < w->n_tensors ? padded(header_bytes(w), w->alignment) + w->tensors[i].offset
                            : qk_gguf_writer_file_bytes(w);
}

/* How many of the first n tensors, in a row, the temporary holds as the journal says: their
 * bytes hash to sums[i] and their padding is zeros. */
static size_t verify_prefix(const qk_gguf_writer *w, const uint64_t *sums, size_t n) {
    enum { CHUNK = 1 << 20 };
    unsigned char *b = malloc(CHUNK);
    size_t i = 0;
    for (; b && i < n; i++) {
        const uint64_t at = data_at(w, i), bytes = w->tensors[i].bytes, total = padded(bytes, w->alignment);
        uint64_t h = QK_FNV1A64_INIT;
        int ok = 1;
        for (uint64_t done = 0; ok && done < total;) {
            size_t k = total - done < CHUNK ? (size_t)(total - done) : CHUNK;
            ssize_t got = pread(w->fd, b, k, (off_t)(at + done));
            if (got <= 0) {
                ok = got < 0 && errno == EINTR;
                continue;
            }
            for (size_t j = 0; j < (size_t)got; j++) /* padding: the bytes past the tensor's */
                if (done + j >= bytes && b[j]) ok = 0;
            uint64_t data = done < bytes ? bytes - done : 0;
            h = qk_fnv1a64(h, b, data < (uint64_t)got ? (size_t)data : (size_t)got);
            done += (uint64_t)got;
        }
        if (!ok || h != sums[i]) break;
    }
    free(b);
    return i;
}

/* The identity of this file's run, the journal's verdict on the temporary, and a fresh journal
 * holding what is kept; the temporary is cut after the kept tensors (or emptied). */
static qk_status resume_start(qk_gguf_writer *w) {
    w->hash_only = 1; /* the header's exact bytes: metadata and the plan (names, types, shapes, offsets) */
    w->header_sum = QK_FNV1A64_INIT;
    w->written = 0;
    (void)write_header(w); /* only hashes: cannot fail */
    w->hash_only = 0;
    w->written = 0;
    unsigned char key[16];
    qk_put_le64(key, w->run_key);
    qk_put_le64(key + 8, qk_gguf_writer_file_bytes(w));
    const uint64_t identity = qk_fnv1a64(w->header_sum, key, sizeof key);
    uint64_t *sums = malloc((w->n_tensors ? w->n_tensors : 1) * sizeof *sums);
    if (!sums) return fail_file(w, qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", wname(w)));
    qk_journal_read(w->journal, identity, sums, w->n_tensors, &w->journaled, &w->other_run);
    w->resumed = verify_prefix(w, sums, w->journaled);
    if (ftruncate(w->fd, w->resumed ? (off_t)data_at(w, w->resumed) : 0) != 0) {
        free(sums);
        return io_error(w, "cannot truncate", errno);
    }
    w->jfd = qk_journal_start(w->journal, identity, sums, w->resumed);
    int e = errno;
    free(sums);
    return w->jfd < 0 ? io_error(w, "cannot create the journal of", e) : QK_OK;
}

/* Opens (creating if need be) and exclusively locks the temporary `tmp`, retrying while the
 * name is renamed or removed under us by the writer that held it; 0 or an errno (EWOULDBLOCK:
 * another writer holds it). O_NOFOLLOW: a link planted under the name is refused. */
static int open_locked(const char *tmp, int *fd_out, struct stat *st) {
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd < 0) return errno;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            /* a file system without locks (some FUSE ones) still gets its file, unguarded */
            int unlockable = e == ENOLCK || e == EOPNOTSUPP || e == ENOSYS || e == EINVAL;
            if (unlockable && fstat(fd, st) == 0) {
                *fd_out = fd;
                return 0;
            }
            close(fd);
            return e;
        }
        struct stat named;
        if (fstat(fd, st) != 0) {
            int e = errno;
            close(fd);
            return e;
        }
        if (stat(tmp, &named) == 0 && named.st_dev == st->st_dev && named.st_ino == st->st_ino) {
            *fd_out = fd;
            return 0;
        }
        close(fd); /* we locked a file that has since been renamed into place or removed */
    }
    return EWOULDBLOCK;
}

qk_status qk_gguf_writer_begin(qk_gguf_writer *w, const char *path) {
    qk_status s = need_collecting(w, "beginning the file");
    if (s != QK_OK) return s;
    if (!path || !path[0]) return qk_fail(NULL, QK_ERR_INVALID_ARG, "gguf writer: no path");
    if (qk_gguf_writer_file_bytes(w) == UINT64_MAX)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: the file would exceed 2^64 bytes", path);
    size_t len = strlen(path);
    free(w->path);
    w->path = malloc(len + 1);
    w->tmp = malloc(len + sizeof TEMP_SUFFIX);
    w->buf = malloc(WBUF_BYTES);
    if (!w->path || !w->tmp || !w->buf) {
        s = qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        return fail_file(w, s);
    }
    memcpy(w->path, path, len + 1);
    memcpy(w->tmp, path, len);
    memcpy(w->tmp + len, TEMP_SUFFIX, sizeof TEMP_SUFFIX);
    /* A signal that comes while the file exists but is not yet in the table waits until it is
     * (on this thread; qk_remove_partial_outputs' note says how a program keeps it here). */
    struct stat st;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int e = open_locked(w->tmp, &w->fd, &st);
    if (!e && !w->resume) w->live = live_add(w->tmp, &st); /* resume mode keeps it on a signal */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        if (e == EWOULDBLOCK)
            s = qk_fail(NULL, QK_ERR_IO, "%s: already being written by another process (its temporary %s is locked)",
                        path, w->tmp);
        else
            s = qk_fail(NULL, QK_ERR_IO, "%s: cannot create the temporary file %s: %s", path, w->tmp, strerror(e));
        free(w->tmp); /* not ours: nothing to remove */
        w->tmp = NULL;
        return fail_file(w, s);
    }
    w->journal = malloc(strlen(w->tmp) + sizeof QK_JOURNAL_SUFFIX);
    if (!w->journal) return fail_file(w, qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "%s: out of memory", path));
    sprintf(w->journal, "%s%s", w->tmp, QK_JOURNAL_SUFFIX);
    if (w->resume) {
        if ((s = resume_start(w)) != QK_OK) return s;
    } else {
        (void)unlink(w->journal); /* an earlier resuming run's: its temporary is taken over */
        if (ftruncate(w->fd, 0) != 0) return io_error(w, "cannot truncate", errno);
    }
    if (fchmod(w->fd, file_mode()) != 0) return io_error(w, "cannot set the permissions of", errno);
    w->state = W_WRITING;
    if (lseek(w->fd, 0, SEEK_SET) != 0) return io_error(w, "cannot seek in", errno);
    if ((s = write_header(w)) != QK_OK) return s;
    if (w->resumed) { /* the header is rewritten (the same bytes); the kept tensors are not */
        if ((s = flush_buf(w)) != QK_OK) return s;
        w->written = data_at(w, w->resumed);
        if (lseek(w->fd, (off_t)w->written, SEEK_SET) < 0) return io_error(w, "cannot seek in", errno);
        w->cur = w->resumed;
    }
    w->cur_sum = QK_FNV1A64_INIT;
    return settle(w);
}

qk_status qk_gguf_writer_write(qk_gguf_writer *w, const void *data, size_t bytes) {
    if (!w) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_gguf_writer_write: writer is NULL");
    if (w->state != W_WRITING)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: writing data to a file that is not open for data", wname(w));
    if (!data && bytes) return fail_file(w, qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: data is NULL", wname(w)));
    const unsigned char *p = data;
    while (bytes) {
        if (w->cur >= w->n_tensors)
            return fail_file(
                w, qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: %zu bytes of data beyond the last tensor", wname(w), bytes));
        const qk_gguf_tensor *t = &w->tensors[w->cur];
        uint64_t left = t->bytes - w->cur_done;
        size_t take = bytes < left ? bytes : (size_t)left;
        qk_status s = out_bytes(w, p, take);
        if (s != QK_OK) return s;
        if (w->jfd >= 0) w->cur_sum = qk_fnv1a64(w->cur_sum, p, take);
        p += take;
        bytes -= take;
        w->cur_done += take;
        if ((s = settle(w)) != QK_OK) return s;
    }
    return QK_OK;
}

qk_status qk_gguf_writer_close(qk_gguf_writer *w) {
    if (!w) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_gguf_writer_close: writer is NULL");
    if (w->state != W_WRITING)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: closing a file that is not being written", wname(w));
    if (w->cur < w->n_tensors) {
        const qk_gguf_tensor *t = &w->tensors[w->cur];
        return fail_file(w, qk_fail(NULL, QK_ERR_INVALID_ARG,
                                    "%s: incomplete: tensor '%s' got %" PRIu64 " of its %" PRIu64
                                    " bytes (%zu of %zu tensors done)",
                                    wname(w), t->name, w->cur_done, t->bytes, w->cur, w->n_tensors));
    }
    qk_status s = flush_buf(w);
    if (s != QK_OK) return s;
    if (w->written != qk_gguf_writer_file_bytes(w))
        return fail_file(w, qk_fail(NULL, QK_ERR_IO, "%s: wrote %" PRIu64 " bytes, the layout says %" PRIu64, wname(w),
                                    w->written, qk_gguf_writer_file_bytes(w)));
    if (fsync(w->fd) != 0) return io_error(w, "cannot sync", errno);
    /* the file stays open, and locked, until commit renames it */
    free(w->buf);
    w->buf = NULL;
    w->state = W_CLOSED;
    return QK_OK;
}

/* Makes the rename itself durable. Best effort: some file systems refuse to sync a folder. */
static void sync_parent(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

qk_status qk_gguf_writer_commit(qk_gguf_writer *w) {
    if (!w) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_gguf_writer_commit: writer is NULL");
    if (w->state != W_CLOSED)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: commit needs a closed, complete file", wname(w));
    if (w->jfd >= 0) { /* before the rename: a journal left without its file would be stale */
        close(w->jfd);
        w->jfd = -1;
        if (unlink(w->journal) != 0) return io_error(w, "cannot remove the journal of", errno);
    }
    if (rename(w->tmp, w->path) != 0) return io_error(w, "cannot rename into place", errno);
    live_remove(w->live);
    w->live = -1;
    /* synced already: close cannot lose data, and the file is in place */
    (void)close(w->fd);
    w->fd = -1;
    free(w->tmp);
    w->tmp = NULL;
    w->state = W_DONE;
    sync_parent(w->path);
    return QK_OK;
}

qk_status qk_gguf_writer_finish(qk_gguf_writer *w) {
    qk_status s = qk_gguf_writer_close(w);
    return s == QK_OK ? qk_gguf_writer_commit(w) : s;
}

const char *qk_gguf_writer_temp_path(const qk_gguf_writer *w) { return w ? w->tmp : NULL; }

void qk_gguf_writer_free(qk_gguf_writer *w) {
    if (!w) return;
    qk_gguf_writer_abort(w);
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].raw);
    }
    free(w->kv);
    free(w->tensors);
    qk_gguf_names_free(&w->names);
    free(w->path);
    free(w);
}
