/* qkern info FILE: what a GGUF file holds: metadata, tensors, totals by type. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gguf.h"

#define QK_TYPE_COUNT_MAX 64 /* ggml type ids are below this */

static void usage(FILE *f) {
    fprintf(f, "usage: qkern info [--no-tensors] [--summary] FILE.gguf\n"
               "  Prints the metadata (long arrays summarized), one line per tensor (name, shape, type,\n"
               "  bytes), and the totals per type with bits per weight. Split models: name any part.\n"
               "  --no-tensors: leave out the tensor lines; --summary: only the totals.\n");
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    int tensors = 1, metadata = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--no-tensors")) {
            tensors = 0;
        } else if (!strcmp(argv[i], "--summary")) {
            tensors = metadata = 0;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "qkern: info: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    qk_gguf *g;
    if (qk_gguf_open(path, &g) != QK_OK) return cli_fail("info", NULL);

    size_t nkv = qk_gguf_kv_count(g), nt = qk_gguf_tensor_count(g);
    printf("%s: GGUF v%u, %d file%s, %llu bytes, alignment %zu, %zu metadata pairs, %zu tensors\n%s", path,
           qk_gguf_version(g), qk_gguf_split_count(g), qk_gguf_split_count(g) > 1 ? "s" : "",
           (unsigned long long)qk_gguf_file_bytes(g), qk_gguf_alignment(g), nkv, nt, metadata ? "\n" : "");
    for (size_t i = 0; metadata && i < nkv; i++) {
        const qk_gguf_kv *kv = qk_gguf_kv_at(g, i);
        char val[160];
        qk_gguf_kv_format(kv, val, sizeof val);
        printf("  %-44s %-8s %s\n", kv->key, qk_gguf_vtype_name(kv->type), val);
    }

    uint64_t by_type_n[QK_TYPE_COUNT_MAX] = {0}, by_type_w[QK_TYPE_COUNT_MAX] = {0}, by_type_b[QK_TYPE_COUNT_MAX] = {0};
    uint64_t all_w = 0, all_b = 0;
    if (tensors) printf("\n  %-44s %-26s %-8s %14s\n", "tensor", "shape", "type", "bytes");
    for (size_t i = 0; i < nt; i++) {
        const qk_gguf_tensor *t = qk_gguf_tensor_at(g, i);
        uint64_t w = (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
        if (tensors) {
            char shape[64];
            int used = snprintf(shape, sizeof shape, "%lld", (long long)t->ne[0]);
            for (int d = 1; d < t->n_dims && used > 0 && (size_t)used < sizeof shape; d++)
                used += snprintf(shape + used, sizeof shape - (size_t)used, " x %lld", (long long)t->ne[d]);
            printf("  %-44s %-26s %-8s %14llu\n", t->name, shape, qk_type_name(t->type), (unsigned long long)t->bytes);
        }
        if ((unsigned)t->type < QK_TYPE_COUNT_MAX) {
            by_type_n[t->type]++;
            by_type_w[t->type] += w;
            by_type_b[t->type] += t->bytes;
        }
        all_w += w;
        all_b += t->bytes;
    }
    printf("\n  %-10s %8s %16s %16s %8s\n", "type", "tensors", "weights", "bytes", "bpw");
    for (int k = 0; k < QK_TYPE_COUNT_MAX; k++)
        if (by_type_n[k])
            printf("  %-10s %8llu %16llu %16llu %8.4f\n", qk_type_name((qk_type)k), (unsigned long long)by_type_n[k],
                   (unsigned long long)by_type_w[k], (unsigned long long)by_type_b[k],
                   8.0 * (double)by_type_b[k] / (double)by_type_w[k]);
    printf("  %-10s %8zu %16llu %16llu %8.4f\n", "total", nt, (unsigned long long)all_w, (unsigned long long)all_b,
           all_w ? 8.0 * (double)all_b / (double)all_w : 0.0);
    qk_gguf_close(g);
    return 0;
}
