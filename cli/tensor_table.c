/* Shapes and per-type totals as `qkern info` and `qkern quantize --dry-run` print them. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

void cli_shape(char *buf, size_t len, int n_dims, const int64_t *ne) {
    int used = snprintf(buf, len, "%lld", (long long)ne[0]);
    for (int d = 1; d < n_dims && used > 0 && (size_t)used < len; d++)
        used += snprintf(buf + used, len - (size_t)used, " x %lld", (long long)ne[d]);
}

/* Indexed like qk_type_at(), so the format table decides which types exist. */
struct cli_totals {
    uint64_t *tensors, *weights, *bytes;
    uint64_t all_tensors, all_weights, all_bytes;
};

cli_totals *cli_totals_new(void) {
    size_t n = (size_t)qk_type_count();
    cli_totals *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->tensors = calloc(n, sizeof *t->tensors);
    t->weights = calloc(n, sizeof *t->weights);
    t->bytes = calloc(n, sizeof *t->bytes);
    if (!t->tensors || !t->weights || !t->bytes) {
        cli_totals_free(t);
        return NULL;
    }
    return t;
}

void cli_totals_free(cli_totals *t) {
    if (!t) return;
    free(t->tensors);
    free(t->weights);
    free(t->bytes);
    free(t);
}

void cli_totals_add(cli_totals *t, qk_type type, const int64_t *ne, uint64_t bytes) {
    const uint64_t w = (uint64_t)ne[0] * (uint64_t)ne[1] * (uint64_t)ne[2] * (uint64_t)ne[3];
    for (int k = 0; k < qk_type_count(); k++)
        if (qk_type_at(k) == type) {
            t->tensors[k]++;
            t->weights[k] += w;
            t->bytes[k] += bytes;
        }
    t->all_tensors++;
    t->all_weights += w;
    t->all_bytes += bytes;
}

static void row(const char *name, uint64_t n, uint64_t w, uint64_t b) {
    printf("  %-10s %8llu %16llu %16llu %8.4f\n", name, (unsigned long long)n, (unsigned long long)w,
           (unsigned long long)b, w ? 8.0 * (double)b / (double)w : 0.0);
}

void cli_totals_print(const cli_totals *t) {
    printf("\n  %-10s %8s %16s %16s %8s\n", "type", "tensors", "weights", "bytes", "bpw");
    for (int k = 0; k < qk_type_count(); k++)
        if (t->tensors[k]) row(qk_type_name(qk_type_at(k)), t->tensors[k], t->weights[k], t->bytes[k]);
    row("total", t->all_tensors, t->all_weights, t->all_bytes);
}
