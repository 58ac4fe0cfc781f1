/* libFuzzer target for the GGUF reader: parse, then walk every accessor over every pair and
 * tensor, and check that the writer accepts everything the reader accepted. Any out-of-bounds
 * access is ASan's to report; a broken invariant traps. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

static void touch(const void *p, uint64_t n) {
    const unsigned char *b = p;
    if (n) sink += b[0] + b[n - 1];
}

static void walk_array(const qk_gguf_kv *kv) {
    qk_gguf_vtype elem;
    uint64_t count;
    const unsigned char *first;
    if (qk_gguf_kv_array(kv, &elem, &count, &first) != QK_OK) return;
    for (uint64_t k = 0; k < count; k = k < 16 ? k + 1 : (k < count - 1 ? count - 1 : count)) {
        int64_t v;
        const char *s;
        uint64_t n;
        if (qk_gguf_kv_array_int(kv, k, &v) == QK_OK) sink += (unsigned)v;
        if (qk_gguf_kv_array_string(kv, k, &s, &n) == QK_OK) touch(s, n);
    }
    int64_t v;
    qk_gguf_kv_array_int(kv, count, &v); /* one past the end: must fail, not read */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qk_gguf *g = NULL;
    if (qk_gguf_parse(data, size, "fuzz.gguf", &g) != QK_OK) {
        if (g) __builtin_trap();
        return 0;
    }
    qk_gguf_writer *w = NULL;
    if (qk_gguf_writer_create(&w) != QK_OK) __builtin_trap();
    char buf[256];
    for (size_t i = 0; i < qk_gguf_kv_count(g); i++) {
        const qk_gguf_kv *kv = qk_gguf_kv_at(g, i);
        if (!kv || qk_gguf_find_kv(g, kv->key) != kv) __builtin_trap();
        int64_t v;
        const char *s;
        uint64_t n;
        if (qk_gguf_kv_int(kv, &v) == QK_OK) sink += (unsigned)v;
        if (qk_gguf_kv_string(kv, &s, &n) == QK_OK) touch(s, n);
        walk_array(kv);
        qk_gguf_kv_format(kv, buf, sizeof buf);
        if (strlen(buf) >= sizeof buf) __builtin_trap();
        qk_gguf_kv_format(kv, buf, 7);
        sink += (unsigned)qk_gguf_get_int(g, kv->key, 0);
        qk_gguf_get_string(g, kv->key, buf, 16);
        if (qk_gguf_writer_copy_kv(w, kv) != QK_OK) __builtin_trap(); /* reader and writer agree */
    }
    const unsigned char *end = data + size;
    for (size_t i = 0; i < qk_gguf_tensor_count(g); i++) {
        const qk_gguf_tensor *t = qk_gguf_tensor_at(g, i);
        if (!t || qk_gguf_find_tensor(g, t->name) != t) __builtin_trap();
        if (t->data < data || t->data > end || t->bytes > (uint64_t)(end - t->data)) __builtin_trap();
        if (t->offset % qk_gguf_alignment(g)) __builtin_trap();
        touch(t->data, t->bytes);
        if (qk_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne) != QK_OK) __builtin_trap();
        if (qk_gguf_writer_tensor_bytes(w, i) != t->bytes) __builtin_trap();
        qk_gguf_release_tensor(g, i);
    }
    sink += (unsigned)qk_gguf_writer_file_bytes(w);
    qk_gguf_writer_free(w);
    qk_gguf_close(g);
    return 0;
}
