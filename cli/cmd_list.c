/* qkern types and qkern devices: two tables whose columns line up whatever their contents. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_COLS 8
#define CELL     160

/* A table of text cells printed with each column as wide as its widest cell: left-aligned
 * text, right-aligned numbers (align[c] = 'r'), markdown-style when `markdown`. */
typedef struct table {
    int n_cols, n_rows, cap_rows, markdown;
    const char *align;
    char (*cells)[MAX_COLS][CELL];
} table;

static int table_row(table *t, const char *const *cells) {
    if (t->n_rows == t->cap_rows) {
        int cap = t->cap_rows ? 2 * t->cap_rows : 64;
        void *p = realloc(t->cells, (size_t)cap * sizeof *t->cells);
        if (!p) return 0;
        t->cells = p;
        t->cap_rows = cap;
    }
    for (int c = 0; c < t->n_cols; c++) snprintf(t->cells[t->n_rows][c], CELL, "%s", cells[c]);
    t->n_rows++;
    return 1;
}

/* Row 0 is the header. */
static void table_print(const table *t) {
    int w[MAX_COLS] = {0};
    for (int r = 0; r < t->n_rows; r++)
        for (int c = 0; c < t->n_cols; c++) {
            int n = (int)strlen(t->cells[r][c]);
            if (n > w[c]) w[c] = n;
        }
    const char *sep = t->markdown ? " | " : "  ";
    for (int r = 0; r < t->n_rows; r++) {
        fputs(t->markdown ? "| " : "", stdout);
        for (int c = 0; c < t->n_cols; c++) {
            int right = t->align[c] == 'r';
            int pad = !t->markdown && !right && c + 1 == t->n_cols ? 0 : w[c]; /* no trailing blanks */
            printf(right ? "%*s" : "%-*s", pad, t->cells[r][c]);
            fputs(c + 1 < t->n_cols ? sep : (t->markdown ? " |" : ""), stdout);
        }
        fputc('\n', stdout);
        if (r == 0 && t->markdown) {
            fputc('|', stdout);
            for (int c = 0; c < t->n_cols; c++) {
                for (int k = 0; k < w[c] + 1; k++) fputc('-', stdout);
                fputs(t->align[c] == 'r' ? ":|" : "-|", stdout);
            }
            fputc('\n', stdout);
        }
    }
}

int cmd_types(int argc, char **argv) {
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: qkern types\n");
        return 2;
    }
    table t = {6, 0, 0, 1, "lrrrrl", NULL};
    const char *head[] = {"type", "id", "block", "bytes", "bpw", "imatrix"};
    int ok = table_row(&t, head);
    for (int i = 0; i < qk_type_count() && ok; i++) {
        qk_type_info ti;
        if (qk_type_get_info(qk_type_at(i), &ti) != QK_OK) continue;
        char id[16], block[16], bytes[16], bpw[32];
        snprintf(id, sizeof id, "%d", (int)ti.type);
        snprintf(block, sizeof block, "%d", ti.block_elems);
        snprintf(bytes, sizeof bytes, "%d", ti.block_bytes);
        snprintf(bpw, sizeof bpw, "%.4f", ti.bits_per_weight);
        const char *row[] = {ti.name, id,  block,
                             bytes,   bpw, ti.needs_imatrix ? "required" : (ti.uses_imatrix ? "used" : "-")};
        ok = table_row(&t, row);
    }
    if (ok) table_print(&t);
    free(t.cells);
    if (!ok) return cli_fail_message("types", "out of memory");
    return 0;
}

/* GPUs first, then the cpu, then software devices (qk_device_is_software); the library's order
 * within each. */
static int device_rank(int i, const qk_device_info *d) {
    return qk_device_is_software(i) ? 2 : d->kind == QK_DEVICE_CPU ? 1 : 0;
}

int cmd_devices(int argc, char **argv) {
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: qkern devices\n");
        return 2;
    }
    int n = qk_device_count();
    qk_device_info *d = calloc((size_t)(n > 0 ? n : 1), sizeof *d);
    if (!d) return cli_fail_message("devices", "out of memory");
    for (int i = 0; i < n; i++)
        if (qk_device_get(i, &d[i]) != QK_OK) {
            free(d);
            return cli_fail("devices", NULL);
        }
    table t = {5, 0, 0, 0, "lllrr", NULL};
    const char *head[] = {"device", "kind", "name", "memory", "units"};
    int ok = table_row(&t, head), any_software = 0;
    for (int rank = 0; rank < 3 && ok; rank++)
        for (int i = 0; i < n && ok; i++) {
            if (device_rank(i, &d[i]) != rank) continue;
            char mem[32], units[16];
            if (d[i].memory_bytes)
                snprintf(mem, sizeof mem, "%.1f GiB", (double)d[i].memory_bytes / 1073741824.0);
            else
                snprintf(mem, sizeof mem, "?");
            snprintf(units, sizeof units, "%d", d[i].compute_units);
            const char *kind = rank == 2 ? "software" : rank == 1 ? "CPU" : "GPU";
            const char *row[] = {d[i].id, kind, d[i].name, mem, units};
            ok = table_row(&t, row);
            any_software |= rank == 2;
        }
    if (ok) table_print(&t);
    if (ok && any_software)
        printf("software: a GPU API run on the CPU (slower than `cpu`; used only when named, e.g. --device "
               "vulkan:0)\n");
    free(t.cells);
    free(d);
    if (!ok) return cli_fail_message("devices", "out of memory");
    return 0;
}
