/* A growable little-endian byte buffer for building files by hand in tests, independently of
 * the writers under test (GGUF, imatrix). */
#ifndef QK_BYTE_BUILDER_H
#define QK_BYTE_BUILDER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct bytes {
    unsigned char *p;
    size_t len, cap;
} bytes;

static inline void b_put(bytes *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) exit(2);
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}
static inline void b_uint(bytes *b, uint64_t v, int size) {
    unsigned char x[8];
    for (int i = 0; i < size; i++) x[i] = (unsigned char)(v >> (8 * i));
    b_put(b, x, (size_t)size);
}
static inline void b_u32(bytes *b, uint32_t v) { b_uint(b, v, 4); }
static inline void b_i32(bytes *b, int32_t v) { b_uint(b, (uint32_t)v, 4); }
static inline void b_u64(bytes *b, uint64_t v) { b_uint(b, v, 8); }
static inline void b_f32(bytes *b, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    b_u32(b, u);
}
/* A GGUF string: uint64 length, then the bytes. */
static inline void b_str(bytes *b, const char *s) {
    b_u64(b, strlen(s));
    b_put(b, s, strlen(s));
}
static inline void b_zeros(bytes *b, size_t n) {
    static const unsigned char z[64];
    while (n > 0) {
        size_t k = n < sizeof z ? n : sizeof z;
        b_put(b, z, k);
        n -= k;
    }
}
static inline void b_align(bytes *b, size_t a) { b_zeros(b, (a - b->len % a) % a); }
static inline void b_free(bytes *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

#endif
