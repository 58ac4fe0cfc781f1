/* GGUF files (facts: docs/formats/GGUF.md): a checked reader over memory-mapped files,
 * including split models, and a streaming writer that only ever exposes complete files.
 *
 * Errors: every function returns qk_status and leaves a one-line message in
 * qk_last_error(NULL) (thread-local) that names the file and what was wrong. The reader
 * returns QK_ERR_FORMAT for a malformed file, QK_ERR_TYPE for a tensor type id that qkern does
 * not know (unknown, removed, or a ggml type outside qkern's table such as I32), QK_ERR_IO
 * when a file cannot be opened or mapped. */
#ifndef QK_GGUF_H
#define QK_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "qkern.h"

#define QK_GGUF_MAGIC             0x46554747u /* "GGUF" read as a little-endian uint32 */
#define QK_GGUF_VERSION           3
#define QK_GGUF_DEFAULT_ALIGNMENT 32
#define QK_GGUF_MAX_NAME          63 /* tensor names, bytes, without terminator (ggml's limit) */
#define QK_GGUF_MAX_DIMS          4

typedef enum qk_gguf_vtype {
    QK_GGUF_UINT8 = 0,
    QK_GGUF_INT8 = 1,
    QK_GGUF_UINT16 = 2,
    QK_GGUF_INT16 = 3,
    QK_GGUF_UINT32 = 4,
    QK_GGUF_INT32 = 5,
    QK_GGUF_FLOAT32 = 6,
    QK_GGUF_BOOL = 7,
    QK_GGUF_STRING = 8,
    QK_GGUF_ARRAY = 9,
    QK_GGUF_UINT64 = 10,
    QK_GGUF_INT64 = 11,
    QK_GGUF_FLOAT64 = 12,
    QK_GGUF_VTYPE_COUNT
} qk_gguf_vtype;

/* One metadata pair. The value is kept as its exact little-endian encoding as it appears
 * in a file after the type field (for a string: uint64 length + bytes; for an array:
 * element type + count + elements), so copying a pair to another file is a byte copy and
 * nested arrays need no special structure. */
typedef struct qk_gguf_kv {
    char *key; /* NUL-terminated, owned */
    qk_gguf_vtype type;
    unsigned char *raw; /* owned encoding of the value */
    size_t raw_len;
} qk_gguf_kv;

typedef struct qk_gguf_tensor {
    char name[QK_GGUF_MAX_NAME + 1];
    qk_type type;
    int n_dims;                   /* as stored (1..4) */
    int64_t ne[QK_GGUF_MAX_DIMS]; /* innermost first; absent dims are 1 */
    uint64_t offset;              /* within its file's data section */
    uint64_t bytes;               /* qk_type_row_bytes(type, ne[0]) * ne[1] * ne[2] * ne[3] */
    int split;                    /* index of the file (0 for a single file) */
    const unsigned char *data;    /* mapped bytes (reader) or NULL (writer) */
} qk_gguf_tensor;

/* ---- reading ----------------------------------------------------------------------------- */

typedef struct qk_gguf qk_gguf;

/* Opens and validates a GGUF file by memory-mapping it. A name of the form
 * PREFIX-00001-of-0000N.gguf opens all N parts: the tensors of every part in order, the
 * metadata of the first (split.* keys are kept in the metadata as read). Every count, size
 * and offset is checked against the file size before use. */
qk_status qk_gguf_open(const char *path, qk_gguf **out);
/* The same checks on a file image in memory (not copied: `data` must outlive the handle).
 * `name` is used in messages. Used by the fuzz targets and tests. */
qk_status qk_gguf_parse(const void *data, size_t size, const char *name, qk_gguf **out);
void qk_gguf_close(qk_gguf *g);

uint32_t qk_gguf_version(const qk_gguf *g);
size_t qk_gguf_alignment(const qk_gguf *g);
int qk_gguf_split_count(const qk_gguf *g);
/* Total bytes of the file(s) on disk (or of the image). */
uint64_t qk_gguf_file_bytes(const qk_gguf *g);

size_t qk_gguf_kv_count(const qk_gguf *g);
const qk_gguf_kv *qk_gguf_kv_at(const qk_gguf *g, size_t i);
/* The pair with this key, or NULL. */
const qk_gguf_kv *qk_gguf_find_kv(const qk_gguf *g, const char *key);

size_t qk_gguf_tensor_count(const qk_gguf *g);
const qk_gguf_tensor *qk_gguf_tensor_at(const qk_gguf *g, size_t i);
/* The tensor with this name, or NULL. */
const qk_gguf_tensor *qk_gguf_find_tensor(const qk_gguf *g, const char *name);
/* Tells the OS that the mapped pages of tensor i are no longer needed (streaming a model
 * larger than RAM). Harmless on an in-memory image. */
void qk_gguf_release_tensor(const qk_gguf *g, size_t i);

/* ---- metadata values ------------------------------------------------------------------------ */

/* Any integer value type (or BOOL) as int64/uint64; 0 and QK_OK, or QK_ERR_TYPE if the pair
 * is not an integer or the value does not fit. */
qk_status qk_gguf_kv_int(const qk_gguf_kv *kv, int64_t *out);
/* A STRING value: pointer into the encoding (not NUL-terminated) and its length. */
qk_status qk_gguf_kv_string(const qk_gguf_kv *kv, const char **s, uint64_t *len);
/* An ARRAY: element type, count, and a pointer to the first element's encoding. */
qk_status qk_gguf_kv_array(const qk_gguf_kv *kv, qk_gguf_vtype *elem, uint64_t *count, const unsigned char **first);
/* Element i of an array of integers (any integer element type), as int64. */
qk_status qk_gguf_kv_array_int(const qk_gguf_kv *kv, uint64_t i, int64_t *out);
/* Element i of an array of strings. Linear in i (strings have variable length). */
qk_status qk_gguf_kv_array_string(const qk_gguf_kv *kv, uint64_t i, const char **s, uint64_t *len);
/* Convenience: the integer at `key`, or `fallback` when the key is absent or not an integer.
 * An integer array yields its first element (per-layer hyper-parameters). */
int64_t qk_gguf_get_int(const qk_gguf *g, const char *key, int64_t fallback);
/* Convenience: a copy of the string at `key` into buf (truncated, NUL-terminated); returns
 * buf, or NULL if absent or not a string. */
const char *qk_gguf_get_string(const qk_gguf *g, const char *key, char *buf, size_t buf_len);
/* A short printable form of a value, for `qkern info`: "3", "llama", or for arrays the count,
 * element type and first few elements ("[151936 × STRING: "<unk>", "<s>", ...]"), nested
 * arrays alike. Long strings are cut, UTF-8 kept, other bytes shown as \xNN; always
 * NUL-terminated within buf_len. */
void qk_gguf_kv_format(const qk_gguf_kv *kv, char *buf, size_t buf_len);
const char *qk_gguf_vtype_name(qk_gguf_vtype t);

/* ---- writing ----------------------------------------------------------------------------- */

/* A writer first collects metadata and tensor infos, then streams tensor data in the order
 * the infos were added. It writes to PATH.tmp.XXXXXX beside the target and renames it into
 * place in qk_gguf_writer_finish only when every byte is written; qk_gguf_writer_abort (or
 * any failure) removes the temporary file. */
typedef struct qk_gguf_writer qk_gguf_writer;

qk_status qk_gguf_writer_create(qk_gguf_writer **out);
/* Releases the writer; a started, unfinished file is removed. NULL is ignored. */
void qk_gguf_writer_free(qk_gguf_writer *w);

/* Sets a pair (ggml semantics: an existing key is removed and the pair appended). `raw` is
 * the value's encoding as in qk_gguf_kv. general.alignment must be UINT32 and a power of two
 * (it sets the writer's alignment). */
qk_status qk_gguf_writer_set_kv(qk_gguf_writer *w, const char *key, qk_gguf_vtype type, const void *raw,
                                size_t raw_len);
qk_status qk_gguf_writer_copy_kv(qk_gguf_writer *w, const qk_gguf_kv *kv);
qk_status qk_gguf_writer_set_u32(qk_gguf_writer *w, const char *key, uint32_t v);
qk_status qk_gguf_writer_set_i32(qk_gguf_writer *w, const char *key, int32_t v);
qk_status qk_gguf_writer_set_u16(qk_gguf_writer *w, const char *key, uint16_t v);
qk_status qk_gguf_writer_set_f32(qk_gguf_writer *w, const char *key, float v);
qk_status qk_gguf_writer_set_bool(qk_gguf_writer *w, const char *key, int v);
qk_status qk_gguf_writer_set_string(qk_gguf_writer *w, const char *key, const char *s);
/* Arrays of fixed-size elements (elem not STRING/ARRAY): `count` elements at `elems`. */
qk_status qk_gguf_writer_set_array(qk_gguf_writer *w, const char *key, qk_gguf_vtype elem, const void *elems,
                                   uint64_t count);
qk_status qk_gguf_writer_set_string_array(qk_gguf_writer *w, const char *key, const char *const *s, uint64_t count);
/* Removes a pair if present. */
void qk_gguf_writer_remove_kv(qk_gguf_writer *w, const char *key);
/* Sets the version written (2 or 3; default 3). */
qk_status qk_gguf_writer_set_version(qk_gguf_writer *w, uint32_t version);

/* Adds a tensor info; ne has n_dims entries (1..4), trailing dims of 1 are trimmed as ggml
 * does. Checks name length and uniqueness, the type, ne[0] % block size, overflow. */
qk_status qk_gguf_writer_add_tensor(qk_gguf_writer *w, const char *name, qk_type type, int n_dims, const int64_t *ne);
/* Bytes the data of tensor i will take (without padding). */
uint64_t qk_gguf_writer_tensor_bytes(const qk_gguf_writer *w, size_t i);
/* Bytes of the whole file as it will be written. */
uint64_t qk_gguf_writer_file_bytes(const qk_gguf_writer *w);

/* Creates the temporary file beside `path` and writes the header, metadata and tensor infos.
 * Nothing may be added afterwards. */
qk_status qk_gguf_writer_begin(qk_gguf_writer *w, const char *path);
/* Appends the next `bytes` of tensor data. Data arrive in tensor order; each tensor must get
 * exactly its size (in any number of calls); padding is written automatically. */
qk_status qk_gguf_writer_write(qk_gguf_writer *w, const void *data, size_t bytes);
/* Checks that every tensor got all its bytes, flushes, syncs and renames into place:
 * qk_gguf_writer_close then qk_gguf_writer_commit. */
qk_status qk_gguf_writer_finish(qk_gguf_writer *w);
/* The two halves of finish, for several files that must appear together (split output):
 * close every part (complete, synced, still under its temporary name), then commit each. */
qk_status qk_gguf_writer_close(qk_gguf_writer *w);
qk_status qk_gguf_writer_commit(qk_gguf_writer *w);
/* Removes the temporary file (if any); the writer can only be freed afterwards. */
void qk_gguf_writer_abort(qk_gguf_writer *w);
/* The temporary file's path while a file is being written, else NULL. */
const char *qk_gguf_writer_temp_path(const qk_gguf_writer *w);

/* Split file names: "PREFIX-%05d-of-%05d.gguf" (1-based). Returns 1 and fills prefix/no/count
 * when `path` has that form. */
int qk_gguf_split_name_parse(const char *path, char *prefix, size_t prefix_len, int *no, int *count);
void qk_gguf_split_name(char *out, size_t out_len, const char *prefix, int no, int count);

#endif
