/* qkern info FILE: what a GGUF file holds: metadata, tensors, totals by type. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

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
        char val[160];
        qk_gguf_kv_describe(g, i, val, sizeof val);
        printf("  %-44s %-8s %s\n", qk_gguf_kv_key(g, i), qk_gguf_vtype_name(qk_gguf_kv_type(g, i)), val);
    }

    cli_totals *tot = cli_totals_new();
    if (!tot) {
        qk_gguf_close(g);
        fprintf(stderr, "qkern: info: out of memory\n");
        return 1;
    }
    if (tensors) printf("\n  %-44s %-26s %-8s %14s\n", "tensor", "shape", "type", "bytes");
    for (size_t i = 0; i < nt; i++) {
        const qk_gguf_tensor *t = qk_gguf_tensor_at(g, i);
        if (tensors) {
            char shape[64];
            cli_shape(shape, sizeof shape, t->n_dims, t->ne);
            printf("  %-44s %-26s %-8s %14llu\n", t->name, shape, qk_type_name(t->type), (unsigned long long)t->bytes);
        }
        cli_totals_add(tot, t->type, t->ne, t->bytes);
    }
    cli_totals_print(tot);
    cli_totals_free(tot);
    qk_gguf_close(g);
    return 0;
}
