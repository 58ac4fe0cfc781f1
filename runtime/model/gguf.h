/* GGUF files (facts: docs/formats/GGUF.md): a checked reader over memory-mapped files,
 * including split models, and a streaming writer that only ever exposes complete files.
 * qkern.h declares the public half (qk_gguf_open, the tensor list, the writer's calls, the
 * value types and the tensor record); this header adds what only the library uses: the raw
 * metadata pairs, in-memory images, split names and the writer's multi-file commit.
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

/* ---- reading (qkern.h has qk_gguf_open, the file facts and the tensor list) -------------- */

/* The checks of qk_gguf_open on a file image in memory (not copied: `data` must outlive the
 * handle). `name` is used in messages. Used by the fuzz targets and tests. */
qk_status qk_gguf_parse(const void *data, size_t size, const char *name, qk_gguf **out);

const qk_gguf_kv *qk_gguf_kv_at(const qk_gguf *g, size_t i);
/* The pair with this key, or NULL. */
const qk_gguf_kv *qk_gguf_find_kv(const qk_gguf *g, const char *key);

/* Tells the OS that the mapped pages of tensor i are no longer needed (streaming a model
 * larger than RAM). Harmless on an in-memory image. */
void qk_gguf_release_tensor(const qk_gguf *g, size_t i);
/* The same for bytes [off, off + bytes) of tensor t (one of g's), page by page: only the pages
 * wholly inside, so that a neighbour's bytes stay; qk_gguf_release_tensor takes the edges. A
 * streaming step's source, once read, so that host memory does not grow with a tensor's size. */
void qk_gguf_release_bytes(const qk_gguf *g, const qk_gguf_tensor *t, uint64_t off, uint64_t bytes);

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
/* A short printable form of a value (qk_gguf_kv_describe): "3", "llama", or for arrays the count,
 * element type and first few elements ("[151936 × STRING: "<unk>", "<s>", ...]"), nested
 * arrays alike. Long strings are cut, UTF-8 kept, other bytes shown as \xNN; always
 * NUL-terminated within buf_len. */
void qk_gguf_kv_format(const qk_gguf_kv *kv, char *buf, size_t buf_len);

/* ---- writing (qkern.h has the writer's public calls) ------------------------------------ */

/* The writer gathers metadata and small writes in a buffer of this many bytes. */
#define QK_GGUF_WRITE_BUFFER ((size_t)4 << 20)

/* Sets a pair (ggml semantics: an existing key is removed and the pair appended). `raw` is
 * the value's encoding as in qk_gguf_kv. general.alignment must be UINT32 and a power of two
 * (it sets the writer's alignment). */
qk_status qk_gguf_writer_set_kv(qk_gguf_writer *w, const char *key, qk_gguf_vtype type, const void *raw,
                                size_t raw_len);
qk_status qk_gguf_writer_copy_kv(qk_gguf_writer *w, const qk_gguf_kv *kv);
qk_status qk_gguf_writer_set_u16(qk_gguf_writer *w, const char *key, uint16_t v);
/* Removes a pair if present. */
void qk_gguf_writer_remove_kv(qk_gguf_writer *w, const char *key);
/* Sets the version written (2 or 3; default 3). */
qk_status qk_gguf_writer_set_version(qk_gguf_writer *w, uint32_t version);

/* The two halves of finish, for several files that must appear together (split output):
 * close every part (complete, synced, still under its temporary name), then commit each. */
qk_status qk_gguf_writer_close(qk_gguf_writer *w);
qk_status qk_gguf_writer_commit(qk_gguf_writer *w);
/* Resume mode, set before begin (qkern quantize --resume): the temporary survives a failure or a
 * signal, with a journal beside it (PATH.tmp.qkern.journal, journal.h) that records each tensor
 * once its bytes are synced. begin then keeps the leading tensors that an earlier run of the same
 * file recorded and whose bytes in the temporary still match (the rest, from the first missing or
 * damaged one, is written again); the data of the kept ones is not expected from the caller:
 * qk_gguf_writer_resumed says how many there are, and writing starts with the next one. The run
 * is the same when run_key (what decides the data beyond the header: the inputs, the imatrix)
 * and the header's exact bytes (metadata, tensor names, types, shapes and offsets) are; a journal
 * of another run is ignored and the file written from the start. commit removes the journal. */
void qk_gguf_writer_set_resume(qk_gguf_writer *w, uint64_t run_key);
/* After begin: leading tensors kept from an earlier run. */
size_t qk_gguf_writer_resumed(const qk_gguf_writer *w);
/* After begin: records found in the journal, tensors kept, and whether the journal was another run's. */
void qk_gguf_writer_resume_info(const qk_gguf_writer *w, size_t *journaled, size_t *resumed, int *other_run);
/* The temporary file's path while a file is being written, else NULL. */
const char *qk_gguf_writer_temp_path(const qk_gguf_writer *w);

/* Split file names: "PREFIX-%05d-of-%05d.gguf" (1-based). Returns 1 and fills prefix/no/count
 * when `path` has that form. */
int qk_gguf_split_name_parse(const char *path, char *prefix, size_t prefix_len, int *no, int *count);
void qk_gguf_split_name(char *out, size_t out_len, const char *prefix, int no, int count);

#endif
