#include "target_curve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "internal.h"

size_t qk_target_curve_presets(const qk_ftype **list, size_t max) {
    size_t n_all, n = 0;
    const qk_ftype *all = qk_ftypes(&n_all);
    for (size_t i = 0; i < n_all; i++) {
        const qk_format *f = qk_format_of(all[i].default_type);
        if (all[i].alias_of || all[i].only_copy || !f || f->family == QK_FAMILY_FLOAT) continue;
        if (n < max) list[n] = &all[i];
        n++;
    }
    return n;
}

static const qk_alloc_option *find_option(const qk_target_row *row, int type) {
    for (int k = 0; k < row->n; k++)
        if (row->opt[k].type == type) return &row->opt[k];
    return NULL;
}

/* Row i's type under one preset: a candidate, an extra to measure (added when `add`), or the
 * reason it cannot be priced (then 0 is returned and `why` is set). */
static int place_type(const qk_target_plan_input *in, const qk_plan_options *opt, const qk_target_row *row,
                      qk_target_row *extra, size_t i, const int64_t cols_rows[2], int type, int add, char *why,
                      size_t why_len) {
    const char *name = in->names[i];
    const char *tname = qk_type_name((qk_type)type);
    if (row->pinned) {
        if (row->opt[0].type == type) return 1;
        snprintf(why, why_len, "gives %s to %s, which the target keeps as %s", tname, name,
                 qk_type_name((qk_type)row->opt[0].type));
        return 0;
    }
    if (find_option(row, type) || find_option(extra, type)) return 1;
    const qk_format *f = qk_format_of(type);
    if (!f || f->family == QK_FAMILY_FLOAT) {
        snprintf(why, why_len, "gives %s to %s: not a quantized type the target measures", tname, name);
        return 0;
    }
    if ((f->needs_imatrix || qk_plan_needs_imatrix(opt, name, f->type)) && !in->has_entry[i]) {
        snprintf(why, why_len, "needs imatrix data for %s (%s)", name, tname);
        return 0;
    }
    if (extra->n == QK_TARGET_MAX_OPTIONS) {
        snprintf(why, why_len, "too many types to measure for %s", name);
        return 0;
    }
    if (add)
        extra->opt[extra->n++] =
            (qk_alloc_option){type, qk_type_row_bytes((qk_type)type, cols_rows[0]) * (uint64_t)cols_rows[1], -1.0};
    return 1;
}

qk_status qk_target_presets_plan(const qk_target_plan_input *in, const qk_target_row *rows, size_t n,
                                 qk_target_row *extra, qk_model_preset_point *pp, size_t n_presets, int *types) {
    qk_plan_entry *e = malloc((n ? n : 1) * sizeof *e);
    if (!e) return qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "out of host memory planning the presets of %zu tensors", n);
    for (size_t k = 0; k < n_presets; k++) {
        qk_model_preset_point *p = &pp[k];
        qk_plan_options opt = *in->opt;
        opt.ftype = p->preset;
        if (qk_plan_build(in->model, &opt, in->tensors, n, e) != QK_OK) {
            snprintf(p->why, sizeof p->why, "its plan fails: %s", qk_last_error(NULL));
            continue;
        }
        /* every row checked before any extra is added: a preset left out costs no measuring */
        for (int add = 0; add < 2 && !p->why[0]; add++)
            for (size_t i = 0; i < n && !p->why[0]; i++) {
                const qk_plan_tensor *t = &in->tensors[e[i].tensor];
                /* the planner's order depends on names (and input_order) only, never on the preset */
                if (strcmp(t->name, in->names[i]) != 0) {
                    snprintf(p->why, sizeof p->why, "plans %s where the target has %s", t->name, in->names[i]);
                    break;
                }
                const int64_t cols_rows[2] = {t->ne[0], t->ne[1] * t->ne[2] * t->ne[3]};
                types[k * n + i] = (int)e[i].type;
                place_type(in, &opt, &rows[i], &extra[i], i, cols_rows, (int)e[i].type, add, p->why, sizeof p->why);
            }
    }
    free(e);
    return QK_OK;
}

void qk_target_presets_evaluate(const qk_target_row *rows, const qk_target_row *extra, size_t n, uint64_t total_weights,
                                const int *types, qk_model_preset_point *pp, size_t n_presets) {
    const double w = total_weights ? (double)total_weights : 1.0;
    for (size_t k = 0; k < n_presets; k++) {
        qk_model_preset_point *p = &pp[k];
        p->evaluated = 0;
        p->allocation_error = -1.0;
        if (p->why[0]) continue;
        uint64_t bytes = 0;
        double error = 0.0;
        int only = 1;
        for (size_t i = 0; i < n; i++) {
            const int type = types[k * n + i];
            const qk_alloc_option *o = find_option(&rows[i], type);
            if (!o) {
                o = find_option(&extra[i], type);
                only = 0;
            }
            if (!o || o->error < 0) {
                snprintf(p->why, sizeof p->why, "%s of tensor %zu was not measured", qk_type_name((qk_type)type), i);
                break;
            }
            bytes += o->bytes;
            error += o->error;
        }
        if (p->why[0]) continue;
        p->evaluated = 1;
        p->candidates_only = only;
        p->point = (qk_model_curve_point){bytes, 8.0 * (double)bytes / w, error};
    }
}

static int cmp_point(const void *pa, const void *pb) {
    const qk_model_curve_point *a = pa, *b = pb;
    if (a->bytes != b->bytes) return a->bytes < b->bytes ? -1 : 1;
    return (a->error > b->error) - (a->error < b->error);
}

/* The allocation for one budget: *bytes and *error, as qk_target_choose sums them. */
static int solve(const qk_alloc_tensor *t, const qk_target_row *rows, size_t n, uint64_t budget, int *choice,
                 uint64_t *bytes, double *error) {
    int rc = qk_alloc_solve(t, n, budget, choice, NULL, NULL);
    *bytes = 0;
    *error = 0.0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        *bytes += rows[i].opt[choice[i]].bytes;
        *error += rows[i].opt[choice[i]].error;
    }
    return rc;
}

qk_status qk_target_curve(const qk_target_row *rows, size_t n, uint64_t total_weights, int n_steps,
                          uint64_t target_budget, qk_model_preset_point *pp, size_t n_presets,
                          qk_model_curve_point **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    const size_t cap = (size_t)(n_steps > 2 ? n_steps : 2) + 1 + n_presets;
    qk_alloc_tensor *t = calloc(n ? n : 1, sizeof *t);
    int *choice = calloc(n ? n : 1, sizeof *choice);
    qk_model_curve_point *pts = calloc(cap, sizeof *pts);
    qk_status st = QK_OK;
    if (!t || !choice || !pts) {
        st = qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "out of host memory for the curve of %zu tensors", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) t[i] = (qk_alloc_tensor){rows[i].opt, rows[i].n};
    uint64_t lo, hi;
    if (qk_alloc_solve(t, n, UINT64_MAX, choice, &lo, &hi) != 0) {
        st = qk_fail(NULL, QK_ERR_INVALID_ARG, "size target curve: the error matrix is not valid");
        goto done;
    }
    const double w = total_weights ? (double)total_weights : 1.0;
    size_t np = 0;
    for (size_t k = 0; k < cap; k++) {
        uint64_t budget;
        qk_model_preset_point *p = NULL;
        if (k < (size_t)n_steps) {
            /* the last step is hi itself, not a rounding short of it */
            budget = k + 1 == (size_t)n_steps ? hi : lo + (uint64_t)((double)(hi - lo) * (double)k / (n_steps - 1));
        } else if (k == (size_t)n_steps) {
            budget = target_budget;
        } else {
            p = &pp[k - (size_t)n_steps - 1];
            if (!p->evaluated) continue;
            budget = p->point.bytes;
        }
        if (budget < lo || budget > hi) continue;
        uint64_t bytes;
        double error;
        if (solve(t, rows, n, budget, choice, &bytes, &error) != 0) continue;
        if (p) p->allocation_error = error;
        pts[np++] = (qk_model_curve_point){bytes, 8.0 * (double)bytes / w, error};
    }
    qsort(pts, np, sizeof *pts, cmp_point);
    /* A greedy fill with more bytes can land above one with fewer: that point is no trade-off */
    size_t kept = 0;
    for (size_t k = 0; k < np; k++)
        if (kept == 0 || pts[k].error < pts[kept - 1].error) pts[kept++] = pts[k];
    *out = pts;
    *n_out = kept;
    pts = NULL;
done:
    free(t);
    free(choice);
    free(pts);
    return st;
}
