/* Private helpers shared by the GGUF reader (gguf.c) and writer (gguf_write.c): little-endian
 * field access, the checked walk over an encoded value, and a name index for uniqueness checks
 * and look-ups. */
#ifndef QK_GGUF_IO_H
#define QK_GGUF_IO_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

/* FNV-1a, 64 bits, continued from h (QK_FNV1A64_INIT to start): the name index's hash, and the
 * resume journal's checksum of a tensor's bytes (journal.h), which arrive in pieces. */
#define QK_FNV1A64_INIT 0xcbf29ce484222325ull
static inline uint64_t qk_fnv1a64(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* ggml's caps on string lengths and array counts; also ours on keys. */
#define QK_GGUF_MAX_COUNT (1ull << 30)
/* Arrays may hold arrays (the spec allows it); this bounds the reader's recursion. */
#define QK_GGUF_MAX_NESTING 16

static inline uint32_t qk_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t qk_le64(const unsigned char *p) { return (uint64_t)qk_le32(p) | (uint64_t)qk_le32(p + 4) << 32; }
static inline void qk_put_le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void qk_put_le64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Bytes of one value of a fixed-size type; 0 for STRING, ARRAY and unknown ids. */
size_t qk_gguf_fixed_size(uint32_t type);

/* Measures the encoded value of `type` at p (at most `avail` bytes) into *len. On malformed
 * input returns QK_ERR_FORMAT with a short reason in `why` (no file name: the caller adds the
 * context). `depth` is the current array nesting (0 for a pair's value). */
qk_status qk_gguf_value_extent(const unsigned char *p, size_t avail, uint32_t type, int depth, size_t *len, char *why,
                               size_t why_len);

/* An open-addressing index from NUL-terminated names to ids 0..n-1; the names live with the
 * owner and are fetched through `name_of`. */
typedef const char *(*qk_gguf_name_fn)(const void *owner, size_t id);
typedef struct qk_gguf_names {
    size_t *slots; /* id + 1, 0 = empty */
    size_t cap;    /* power of two, or 0 */
    size_t used;
    qk_gguf_name_fn name_of;
    const void *owner;
} qk_gguf_names;

void qk_gguf_names_init(qk_gguf_names *ix, qk_gguf_name_fn name_of, const void *owner);
void qk_gguf_names_free(qk_gguf_names *ix);
/* The id of `name`, or SIZE_MAX. */
size_t qk_gguf_names_find(const qk_gguf_names *ix, const char *name);
/* Adds id (its name must not be present yet); QK_ERR_OUT_OF_MEMORY if growing fails. */
qk_status qk_gguf_names_add(qk_gguf_names *ix, size_t id);

#endif
