/* A size target's curve (qkern.h's desc.target_curve): the total error the allocation reaches at
 * each budget over the reachable range, and the presets placed beside it, all from one error
 * matrix. The presets' types that are no candidate are measured as extra options: they are
 * priced, never chosen. Pure logic over the matrix and the planner: no files, no devices. */
#ifndef QK_TARGET_CURVE_H
#define QK_TARGET_CURVE_H

#include <stddef.h>
#include <stdint.h>

#include "plan.h"
#include "qkern.h"
#include "target.h"

/* The presets a curve places: those whose default type is quantized, without the aliases and
 * COPY, in qk_ftypes order. Writes at most `max`; returns how many there are. */
size_t qk_target_curve_presets(const qk_ftype **list, size_t max);

/* What planning a preset over the run's tensors needs. */
typedef struct qk_target_plan_input {
    const qk_plan_model *model;
    const qk_plan_options *opt;     /* the run's; each preset replaces its ftype */
    const qk_plan_tensor *tensors;  /* the planner's input, n of them (result rows come in the
                                       planner's order, which no preset changes) */
    const char *const *names;       /* result row i's name */
    const unsigned char *has_entry; /* result row i has imatrix data */
} qk_target_plan_input;

/* Plans each preset pp[k].preset over the n rows: its type for row i into types[k * n + i].
 * A type of a free row that is no candidate of rows[i] is added to extra[i] (error -1: to be
 * measured); a preset that cannot be priced exactly (its plan fails, a type needs imatrix data
 * the row lacks, it changes a row the target keeps) gets the reason in pp[k].why. Fails only
 * when out of memory. */
qk_status qk_target_presets_plan(const qk_target_plan_input *in, const qk_target_row *rows, size_t n,
                                 qk_target_row *extra, qk_model_preset_point *pp, size_t n_presets, int *types);

/* Prices the presets whose why is empty from the measured rows and extras: point, evaluated,
 * candidates_only. total_weights turns bytes into bits per weight. */
void qk_target_presets_evaluate(const qk_target_row *rows, const qk_target_row *extra, size_t n, uint64_t total_weights,
                                const int *types, qk_model_preset_point *pp, size_t n_presets);

/* Solves the allocation for n_steps budgets evenly spaced over the reachable range, the target's
 * budget and each evaluated preset's bytes (whose allocation_error it sets, or -1 outside the
 * range); *out (malloc'd, *n_out points) keeps the points no other beats with no more bytes,
 * ascending in bytes. QK_ERR_INVALID_ARG for a matrix the allocator refuses, QK_ERR_OUT_OF_MEMORY. */
qk_status qk_target_curve(const qk_target_row *rows, size_t n, uint64_t total_weights, int n_steps,
                          uint64_t target_budget, qk_model_preset_point *pp, size_t n_presets,
                          qk_model_curve_point **out, size_t *n_out);

#endif
